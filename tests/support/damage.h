// Damage done on purpose to a closed (or idle) database's data.mdb, for the tests of what
// cairnd does with damaged files: a database with enough records that the records B+tree
// has a branch root, and the few pieces of LMDB 0.9's page layout (lmdb's mdb.c: MDB_page,
// MDB_meta, MDB_node; 64-bit) needed to find that tree's pages without LMDB.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cairn/engine/engine.h"
#include "test_util.h"

namespace cairn::testing {

// Page header: pgno u64 @0, pad u16 @8, flags u16 @10, lower u16 @12, upper u16 @14, then
// the u16 offsets of the nodes. A meta page's MDB_meta starts at 16: the page size is the
// free DB's md_pad (@40), the main DB's root @128, the last page @136, the txnid @144.
struct LmdbFile {
  static constexpr uint16_t kBranch = 0x01, kLeaf = 0x02;

  explicit LmdbFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(fd_, 0) << path_;
    std::vector<char> m0 = Read(0, 4096), m1 = Read(4096, 4096);
    meta_ = U64(m1.data() + 144) > U64(m0.data() + 144) ? m1 : m0;
    psize_ = U32(meta_.data() + 40);
    EXPECT_EQ(psize_, 4096u) << "tests assume 4 KiB pages";
  }
  ~LmdbFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  uint32_t psize() const { return psize_; }
  uint64_t last_page() const { return U64(meta_.data() + 136); }
  std::vector<char> Page(uint64_t pgno) { return Read(pgno * psize_, psize_); }
  void WritePage(uint64_t pgno, const std::vector<char>& bytes) {
    ASSERT_EQ(::pwrite(fd_, bytes.data(), bytes.size(), off_t(pgno * psize_)),
              ssize_t(bytes.size()));
  }
  void ZeroPage(uint64_t pgno) { WritePage(pgno, std::vector<char>(psize_, '\0')); }

  static uint16_t Flags(const std::vector<char>& p) { return U16(p.data() + 10); }
  static size_t Keys(const std::vector<char>& p) { return (U16(p.data() + 12) - 16u) / 2; }
  static size_t Node(const std::vector<char>& p, size_t i) { return U16(p.data() + 16 + 2 * i); }
  static std::string NodeKey(const std::vector<char>& p, size_t i) {
    size_t n = Node(p, i);
    return std::string(p.data() + n + 8, U16(p.data() + n + 6));
  }
  // A branch node's child: lo u16, hi u16, flags u16 make up the page number.
  static uint64_t Child(const std::vector<char>& p, size_t i) {
    size_t n = Node(p, i);
    return U16(p.data() + n) | uint64_t(U16(p.data() + n + 2)) << 16 |
           uint64_t(U16(p.data() + n + 4)) << 32;
  }

  // The root page of a named database: its MDB_db (md_root @40) is the data of the node
  // named `name` in the main database's root, a leaf while there are few databases.
  uint64_t Root(const std::string& name) {
    std::vector<char> main = Page(U64(meta_.data() + 128));
    EXPECT_EQ(Flags(main) & kLeaf, kLeaf);
    for (size_t i = 0; i < Keys(main); i++) {
      if (NodeKey(main, i) != name) continue;
      size_t n = Node(main, i);
      return U64(main.data() + n + 8 + name.size() + 40);
    }
    ADD_FAILURE() << "no database " << name;
    return 0;
  }

  static uint16_t U16(const char* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
  }
  static uint32_t U32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  static uint64_t U64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }

 private:
  std::vector<char> Read(uint64_t off, size_t n) {
    std::vector<char> b(n);
    EXPECT_EQ(::pread(fd_, b.data(), n, off_t(off)), ssize_t(n)) << path_ << " at " << off;
    return b;
  }
  std::string path_;
  int fd_ = -1;
  std::vector<char> meta_;
  uint32_t psize_ = 0;
};

// A database in `dir` with collection "c" holding `n` documents "rec-00000"... in one
// commit (so no stale copies of its pages lie around), then closed.
inline void MakeDatabase(const std::string& dir, int n = 2000) {
  auto db = OpenOrDie(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::vector<std::string> keys, docs;
  std::vector<Op> ops;
  keys.reserve(size_t(n));
  docs.reserve(size_t(n));
  for (int i = 0; i < n; i++) {
    char k[16];
    std::snprintf(k, sizeof k, "rec-%05d", i);
    keys.push_back(k);
    docs.push_back(
        Doc("{\"n\": " + std::to_string(i) + ", \"pad\": \"some bytes to fill pages\"}"));
  }
  for (int i = 0; i < n; i++) ops.push_back(PutOp{"c", keys[size_t(i)], docs[size_t(i)]});
  ASSERT_TRUE(db->Execute(Txn(std::move(ops))).status.ok());
}

// The records tree's root must be a branch for the damage below to land where intended.
// Returns its page number and fills *root.
inline uint64_t RecordsBranchRoot(LmdbFile& f, std::vector<char>* root) {
  uint64_t pgno = f.Root("records");
  *root = f.Page(pgno);
  EXPECT_EQ(LmdbFile::Flags(*root), LmdbFile::kBranch) << "records root is not a branch page";
  EXPECT_GE(LmdbFile::Keys(*root), 3u);
  return pgno;
}

// Zeroes the records tree's second leaf: a full scan steps into it from the first (LMDB
// asserts that it is a leaf), and a point read of one of its keys lands on it. Returns the
// primary key of its first record, which a read must not answer with data.
inline std::string ZeroSecondRecordsLeaf(const std::string& data_mdb) {
  LmdbFile f(data_mdb);
  std::vector<char> root;
  RecordsBranchRoot(f, &root);
  uint64_t leaf = LmdbFile::Child(root, 1);
  std::vector<char> page = f.Page(leaf);
  EXPECT_EQ(LmdbFile::Flags(page), LmdbFile::kLeaf);
  std::string key = LmdbFile::NodeKey(page, 0);  // [collection id: u32 BE][primary key]
  f.ZeroPage(leaf);
  return key.size() > 4 ? key.substr(4) : "";
}

// Flips a bit of the page number of the records root's second child: the pointer now leads
// 2^32 pages further, past the end of the file.
inline void FlipBranchPointer(const std::string& data_mdb) {
  LmdbFile f(data_mdb);
  std::vector<char> root;
  uint64_t pgno = RecordsBranchRoot(f, &root);
  root[LmdbFile::Node(root, 1) + 4] ^= 0x01;
  f.WritePage(pgno, root);
}

// Makes the records root's third child pointer lead to the second child's page, as a
// damaged branch page might: both pointers now lead to one leaf, and the third leaf is
// unreachable. LMDB cannot tell; the verifier must (its keys come round again).
inline void PointTwoBranchesAtOneLeaf(const std::string& data_mdb) {
  LmdbFile f(data_mdb);
  std::vector<char> root;
  uint64_t pgno = RecordsBranchRoot(f, &root);
  size_t from = LmdbFile::Node(root, 1), to = LmdbFile::Node(root, 2);
  std::memcpy(root.data() + to, root.data() + from, 6);  // lo, hi, flags: the page number
  f.WritePage(pgno, root);
}

inline void TruncateToHalf(const std::string& path) {
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
}

}  // namespace cairn::testing
