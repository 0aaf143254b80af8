// A closed cairn database read and changed with plain LMDB calls, the way another program
// or a damaged disk would: for the format, upgrade and corruption tests. The layout it
// edits is docs/storage.md's.
#pragma once

#include <gtest/gtest.h>
#include <lmdb.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cairn::testing {

// One LMDB write transaction over the environment in `dir`, committed when this goes.
// REQUIRES: no Engine has the database open.
class RawLmdb {
 public:
  explicit RawLmdb(const std::string& dir) {
    ok_ = mdb_env_create(&env_) == 0;
    mdb_env_set_maxdbs(env_, 16);
    mdb_env_set_mapsize(env_, uint64_t{1} << 30);
    ok_ = ok_ && mdb_env_open(env_, dir.c_str(), 0, 0644) == 0 &&
          mdb_txn_begin(env_, nullptr, 0, &txn_) == 0;
    EXPECT_TRUE(ok_) << "cannot open " << dir << " with LMDB";
  }
  ~RawLmdb() {
    if (txn_) {
      EXPECT_EQ(mdb_txn_commit(txn_), 0);
    }
    mdb_env_close(env_);
  }
  RawLmdb(const RawLmdb&) = delete;
  RawLmdb& operator=(const RawLmdb&) = delete;

  std::map<std::string, std::string> All(const char* db) {
    std::map<std::string, std::string> out;
    MDB_cursor* cur;
    if (!ok_ || mdb_cursor_open(txn_, Dbi(db), &cur) != 0) return out;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      out.emplace(std::string(static_cast<char*>(k.mv_data), k.mv_size),
                  std::string(static_cast<char*>(v.mv_data), v.mv_size));
    }
    mdb_cursor_close(cur);
    return out;
  }
  std::optional<std::string> Get(const char* db, std::string_view key) {
    MDB_val k = Val(key), v;
    if (!ok_ || mdb_get(txn_, Dbi(db), &k, &v) != 0) return std::nullopt;
    return std::string(static_cast<char*>(v.mv_data), v.mv_size);
  }
  void Put(const char* db, std::string_view key, std::string_view value) {
    MDB_val k = Val(key), v = Val(value);
    EXPECT_EQ(mdb_put(txn_, Dbi(db), &k, &v, 0), 0);
  }
  void Del(const char* db, std::string_view key) {
    MDB_val k = Val(key);
    EXPECT_EQ(mdb_del(txn_, Dbi(db), &k, nullptr), 0);
  }

  // The key in the records database of the record with primary key `pk` (the collection id
  // prefix is the engine's to choose); empty if there is none.
  std::string RecordKey(std::string_view pk) {
    for (const auto& [k, v] : All("records")) {
      if (std::string_view(k).substr(4) == pk) return k;
    }
    ADD_FAILURE() << "no record " << pk;
    return "";
  }

 private:
  static MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
  MDB_dbi Dbi(const char* db) {
    MDB_dbi dbi = 0;
    EXPECT_EQ(mdb_dbi_open(txn_, db, 0, &dbi), 0) << db;
    return dbi;
  }

  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
  bool ok_ = false;
};

// Format 3 records: [version: u64 LE][kind | 0x80][payload][checksum: u64 LE].
inline constexpr size_t kRecordHeader = 9;
inline constexpr size_t kRecordTrailer = 8;

// The record as formats 1 and 2 stored it: [version][kind][payload], no checksum.
inline std::string WithoutChecksum(std::string_view stored) {
  std::string old(stored.substr(0, stored.size() - kRecordTrailer));
  old[8] = char(uint8_t(old[8]) & 0x7f);
  return old;
}

}  // namespace cairn::testing
