// A full disk and the size cap: writes are refused with kDatabaseFull naming the folder,
// reads, deletes and drops keep working, writes resume by themselves once there is room,
// and nothing is latched. Disk tests run on a tmpfs they mount (skipped where mounting is
// not permitted); cap tests need nothing.
#include <errno.h>
#include <lmdb.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "small_fs.h"
#include "space.h"
#include "test_util.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;
using testing::OpenOrDie;
using testing::SmallFs;
using testing::Txn;

Status Put(Engine& db, std::string_view c, const std::string& key, size_t size) {
  std::string value(size, 'v');
  return db.Execute(Txn({PutOp{c, key, value, ValueKind::kRaw}})).status;
}

uint64_t CountOf(Engine& db, std::string_view c) {
  TxnResult r = db.Execute(Txn({CountOp{ScanSpec{.collection = c}}}));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  return r.status.ok() ? r.results.at(0).count : 0;
}

// Puts records of falling sizes into `c` until even the smallest is refused: the database
// is then as full as writes can make it. Returns how many were written; *refusal is the
// last error.
int FillToTheLastPage(Engine& db, std::string_view c, Status* refusal) {
  int written = 0;
  for (size_t size : {size_t{16} << 10, size_t{2} << 10, size_t{200}, size_t{10}}) {
    for (int i = 0; i < 100000; i++) {
      Status s = Put(db, c, "k" + std::to_string(written), size);
      if (!s.ok()) {
        *refusal = s;
        break;
      }
      written++;
    }
  }
  return written;
}

// The disk fills under the engine's own writes: writes are refused with a message about
// the disk and the folder, nothing latches, reads, deletes and a drop work, writes resume
// after deleting, and the database reopens intact.
TEST(DiskFullTest, FullDiskRefusesWritesAndStillReadsDeletesAndDrops) {
  SmallFs fs("8m");
  SKIP_UNLESS_MOUNTED(fs);
  const std::string dir = fs.Sub("db");
  auto db = OpenOrDie(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  ASSERT_TRUE(db->CreateCollection("d").ok());
  for (int i = 0; i < 40; i++) ASSERT_TRUE(Put(*db, "d", "d" + std::to_string(i), 8 << 10).ok());

  Status refusal;
  int written = FillToTheLastPage(*db, "c", &refusal);
  ASSERT_GT(written, 100);
  EXPECT_EQ(refusal.code(), Code::kDatabaseFull) << refusal.ToString();
  EXPECT_NE(refusal.message().find("disk holding database " + dir), std::string::npos)
      << refusal.ToString();
  EXPECT_NE(refusal.message().find("only deletes and drops"), std::string::npos);
  EXPECT_GT(db->Stats().full_refusals, 0u);

  // Not latched: reads see every acknowledged write; deletes and a drop commit.
  EXPECT_EQ(CountOf(*db, "c"), uint64_t(written));
  EXPECT_TRUE(db->Execute(Txn({GetOp{"c", "k0"}})).results.at(0).found);
  for (int i = 0; i < 20; i++) {
    TxnResult r = db->Execute(Txn({DeleteOp{"c", "k" + std::to_string(i)}}));
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.ToString();
  }
  ASSERT_TRUE(db->DropCollection("d").ok());
  db->WaitForBackgroundWork();
  // Deleting made room inside the file: writes resume, without a restart.
  Status again = Put(*db, "c", "again", 8 << 10);
  EXPECT_TRUE(again.ok()) << again.ToString();
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.problems.front());

  db.reset();
  db = OpenOrDie(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(CountOf(*db, "c"), uint64_t(written - 20 + again.ok()));
  EXPECT_FALSE(db->DescribeCollection("d").ok());
  v = db->Verify();
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.problems.front());
}

// Another program fills the disk: the engine's reserve is allocated space of its own, so
// deletes still commit; and once the other program frees its space, the next write is
// accepted. Prints the two times (full disk -> refused write; freed space -> accepted).
TEST(DiskFullTest, ReserveSurvivesAnotherProgramFillingTheDisk) {
  SmallFs fs("8m");
  SKIP_UNLESS_MOUNTED(fs);
  const std::string dir = fs.Sub("db");
  auto db = OpenOrDie(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  for (int i = 0; i < 200; i++) ASSERT_TRUE(Put(*db, "c", "k" + std::to_string(i), 4 << 10).ok());
  EXPECT_GE(db->Stats().preallocated_bytes, db->Stats().space_reserve);

  const std::string filler = fs.Sub("filler");
  ASSERT_GT(testing::FillDisk(filler), 0u);
  // Writes may still use what the engine allocated beyond its reserve (up to one reserve),
  // then they are refused.
  auto t0 = Clock::now();
  int extra = 0;
  Status refused;
  const int most = int(db->Stats().space_reserve / (4 << 10)) + 2;
  Clock::duration refusal_time{};
  for (; extra <= most; extra++) {
    auto t1 = Clock::now();
    refused = Put(*db, "c", "n" + std::to_string(extra), 4 << 10);
    refusal_time = Clock::now() - t1;
    if (!refused.ok()) break;
  }
  auto refuse_time = Clock::now() - t0;
  ASSERT_EQ(refused.code(), Code::kDatabaseFull) << refused.ToString();
  EXPECT_NE(refused.message().find("disk holding database " + dir), std::string::npos);

  // The space freed by another program: the next write is accepted.
  std::filesystem::remove(filler);
  t0 = Clock::now();
  Status accepted = Put(*db, "c", "n" + std::to_string(extra++), 4 << 10);
  refused = accepted;
  auto accept_time = Clock::now() - t0;
  EXPECT_TRUE(accepted.ok()) << accepted.ToString();
  auto us = [](auto d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); };
  std::printf(
      "full disk -> refused write: %lld us (%d writes accepted from the preallocation "
      "first; the refused one took %lld us); freed space -> accepted write: %lld us\n",
      static_cast<long long>(us(refuse_time)), extra - 1, static_cast<long long>(us(refusal_time)),
      static_cast<long long>(us(accept_time)));

  // Full again, by the other program: every delete commits from the reserve.
  ASSERT_GT(testing::FillDisk(filler), 0u);
  for (int i = 0; i <= most && refused.ok(); i++) {
    refused = Put(*db, "c", "n" + std::to_string(extra), 4 << 10);
    extra += refused.ok();
  }
  ASSERT_EQ(refused.code(), Code::kDatabaseFull) << refused.ToString();
  for (int i = 0; i < 100; i++) {
    TxnResult r = db->Execute(Txn({DeleteOp{"c", "k" + std::to_string(i)}}));
    ASSERT_TRUE(r.status.ok()) << "delete " << i << " on a full disk: " << r.status.ToString();
  }
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.problems.front());
  db.reset();
  std::filesystem::remove(filler);
  db = OpenOrDie(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(CountOf(*db, "c"), uint64_t(200 - 100 + extra));
  EXPECT_TRUE(db->Verify().ok());
}

// At the size cap: filled to the last page writes can take, a delete and a drop still
// commit (the reserve below the cap), and writes resume after deleting.
TEST(CapFullTest, DeletesAndDropsWorkAtTheCapAndWritesResume) {
  testing::TempDir tmp;
  const std::string dir = tmp.Sub("db");
  Options o;
  o.max_size = 2 << 20;
  auto db = OpenOrDie(dir, o);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  ASSERT_TRUE(db->CreateCollection("d").ok());
  ASSERT_TRUE(db->CreateIndex("c", {"by_x", {"x"}}).ok());
  for (int i = 0; i < 20; i++) ASSERT_TRUE(Put(*db, "d", "d" + std::to_string(i), 4 << 10).ok());

  Status refusal;
  int written = FillToTheLastPage(*db, "c", &refusal);
  ASSERT_GT(written, 20);
  EXPECT_EQ(refusal.code(), Code::kDatabaseFull) << refusal.ToString();
  EXPECT_NE(refusal.message().find("database " + dir + " is at its size cap"), std::string::npos)
      << refusal.ToString();
  EXPECT_EQ(db->CreateCollection("e").code(), Code::kDatabaseFull);

  EXPECT_EQ(CountOf(*db, "c"), uint64_t(written));
  TxnResult del = db->Execute(Txn({DeleteOp{"c", "k0"}}));
  EXPECT_TRUE(del.status.ok()) << "a delete at the cap: " << del.status.ToString();
  Status drop = db->DropCollection("d");
  EXPECT_TRUE(drop.ok()) << "a drop at the cap: " << drop.ToString();
  db->WaitForBackgroundWork();
  for (int i = 1; i < written / 2; i++) {
    ASSERT_TRUE(db->Execute(Txn({DeleteOp{"c", "k" + std::to_string(i)}})).status.ok()) << i;
  }
  Status again = Put(*db, "c", "again", 4 << 10);
  EXPECT_TRUE(again.ok()) << again.ToString();
  EXPECT_TRUE(db->Verify().ok());
  db.reset();
  db = OpenOrDie(dir, o);
  ASSERT_TRUE(db);
  EXPECT_EQ(CountOf(*db, "c"), uint64_t(written - written / 2 + 1));
  EXPECT_TRUE(db->Verify().ok());
}

// Which errors latch: no space goes away by itself; an I/O error on a disk with space
// free, a panic or a damaged page does not.
TEST(StorageErrorTest, NoSpaceIsNotLatchedAndRealErrorsAre) {
  using internal::ClassifyStorageError;
  using internal::StorageError;
  const uint64_t nearly_full = 1 << 20;
  EXPECT_EQ(ClassifyStorageError(ENOSPC, 1 << 30, nearly_full), StorageError::kNoSpace);
  EXPECT_EQ(ClassifyStorageError(EDQUOT, 1 << 30, nearly_full), StorageError::kNoSpace);
  EXPECT_EQ(ClassifyStorageError(EFBIG, 1 << 30, nearly_full), StorageError::kNoSpace);
  // LMDB turns a short write (the disk ran out mid-write) into EIO.
  EXPECT_EQ(ClassifyStorageError(EIO, 4096, nearly_full), StorageError::kNoSpace);
  EXPECT_EQ(ClassifyStorageError(EIO, 1 << 30, nearly_full), StorageError::kFatal);
  EXPECT_EQ(ClassifyStorageError(MDB_PANIC, 0, nearly_full), StorageError::kFatal);
  EXPECT_EQ(ClassifyStorageError(MDB_CORRUPTED, 0, nearly_full), StorageError::kFatal);
  EXPECT_EQ(ClassifyStorageError(MDB_MAP_FULL, 0, nearly_full), StorageError::kOther);
}

}  // namespace
}  // namespace cairn
