// `cairnd --restore FILE --data DIR` on a real database: one made with the Engine, copied
// with LMDB's compacting copy (what the Snapshot stream sends) through a pipe into a
// BackupWriter, restored by the real cairnd, then compared with the original record by
// record, index entry by index entry, change-log entry by entry. And the restores it
// must refuse, each leaving DIR as it was.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <optional>
#include <lmdb.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "backup_files.h"
#include "cairn/engine/engine.h"
#include "command.h"
#include "raw_lmdb.h"
#include "test_util.h"

#ifndef CAIRND_PATH
#error "CAIRND_PATH must name the cairnd binary"
#endif

namespace cairn {
namespace {

using testing::CommandRun;
using testing::Doc;
using testing::Entries;
using testing::Exists;
using testing::TempDir;

// Every record of every collection, by collection.
using Dump = std::map<std::string, std::vector<Record>>;

Dump DumpAll(Engine& db) {
  Dump out;
  auto txn = db.BeginRead();
  EXPECT_TRUE(txn.ok());
  for (const CollectionInfo& c : db.ListCollections()) {
    std::vector<Record>& records = out[c.name];
    std::string continuation;
    Status s = txn->Scan(ScanSpec{.collection = c.name},
                         [&](const RecordView& r) { records.push_back(Record::From(r)); },
                         &continuation);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return out;
}

std::string Names(const std::vector<CollectionInfo>& collections) {
  std::string out;
  for (const CollectionInfo& c : collections) {
    out += c.name + "(" + std::to_string(c.created) + ")[";
    for (const IndexInfo& ix : c.indexes) {
      out += ix.spec.name + ":" + std::string(IndexStateName(ix.state)) + ",";
    }
    out += "] ";
  }
  return out;
}

class CairndRestoreTest : public ::testing::Test {
 protected:
  // A database with collections, indexes (one unique, one compound), documents and raw
  // values, replaced and deleted records, a dropped collection and an idempotency key.
  void SetUp() override {
    Options options;
    options.durability = Durability::kNoSync;  // hundreds of commits, no fsync each
    auto db = testing::OpenOrDie(source_, options);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->CreateCollection("users").ok());
    ASSERT_TRUE(db->CreateIndex("users", IndexSpec{"by_email", {"email"}, true}).ok());
    ASSERT_TRUE(db->CreateIndex("users", IndexSpec{"by_city_age", {"city", "age"}, false}).ok());
    std::vector<std::string> docs;
    for (int i = 0; i < 3000; i++) {
      docs.push_back(Doc("{\"email\": \"u" + std::to_string(i) + "@example.com\", \"age\": " +
                         std::to_string(i % 90) + ", \"city\": \"c" + std::to_string(i % 17) +
                         "\", \"bio\": \"" + std::string(100 + i % 200, 'x') + "\"}"));
    }
    std::vector<std::string> keys;
    for (int i = 0; i < 3000; i++) keys.push_back("user-" + std::to_string(i));
    for (int i = 0; i < 3000; i += 100) {
      Transaction t;
      for (int j = i; j < i + 100; j++) t.ops.push_back(PutOp{"users", keys[j], docs[j]});
      ASSERT_TRUE(db->Execute(t).status.ok());
    }
    for (int i = 0; i < 3000; i += 7) {
      ASSERT_TRUE(db->Execute(testing::Txn({DeleteOp{"users", keys[i]}})).status.ok());
    }
    std::string changed = Doc("{\"email\": \"new@example.com\", \"age\": 1, \"city\": \"x\"}");
    ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"users", keys[1], changed}})).status.ok());
    keyed_doc_ = Doc("{\"email\": \"k@example.com\"}");  // keyed_ views it
    keyed_.ops = {PutOp{"users", "keyed", keyed_doc_, ValueKind::kDocument, PutMode::kInsert}};
    keyed_.idempotency_key = "the-client's-retry-key";
    TxnResult first = db->Execute(keyed_);
    ASSERT_TRUE(first.status.ok());
    keyed_commit_ = first.commit;
    ASSERT_TRUE(db->CreateCollection("blobs").ok());
    for (int i = 0; i < 50; i++) {
      std::string value = testing::RandomBytes(5000, uint32_t(i));
      ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"blobs", "b" + std::to_string(i), value,
                                                   ValueKind::kRaw}}))
                      .status.ok());
    }
    ASSERT_TRUE(db->CreateCollection("gone").ok());
    ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"gone", "k", Doc("{}")}})).status.ok());
    ASSERT_TRUE(db->DropCollection("gone").ok());
    // Index builds are the background thread's: wait until both indexes are ready.
    for (int i = 0; i < 500; i++) {
      bool ready = true;
      auto users = db->DescribeCollection("users");
      ASSERT_TRUE(users.ok());
      for (const IndexInfo& ix : users->indexes) {
        ready = ready && ix.state == IndexState::kReady;
      }
      if (ready) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    commit_ = db->LastCommit();
    for (const EpochStart& e : db->History()) history_.push_back({e.epoch, e.id, e.first_commit});
    catalog_ = Names(db->ListCollections());
    records_ = DumpAll(*db);
  }

  // The snapshot as the Snapshot stream would carry it: LMDB's compacting copy of the
  // closed database, read from a pipe in 1 MiB pieces into a BackupWriter.
  void Backup(const std::string& path, uint64_t commit,
              std::optional<std::vector<BackupEpoch>> history = std::nullopt) {
    MDB_env* env;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ASSERT_EQ(mdb_env_open(env, source_.c_str(), MDB_RDONLY, 0644), 0);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    int copy_rc = -1;
    std::thread copier([&] {
      copy_rc = mdb_env_copyfd2(env, p[1], MDB_CP_COMPACT);
      ::close(p[1]);
    });
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    BackupWriter w(fd, path);
    EXPECT_TRUE(w.Begin(commit, kSnapshotFormatLmdb, history ? *history : history_).ok());
    std::string buf(1 << 20, '\0');
    uint64_t offset = 0;
    BackupDataChecksum all;
    for (ssize_t n; (n = ::read(p[0], buf.data(), buf.size())) > 0;) {
      std::string_view piece(buf.data(), size_t(n));
      all.Update(piece);
      BackupStatus s = w.Chunk(offset, piece, BackupChunkChecksum(offset, piece));
      EXPECT_TRUE(s.ok()) << s.message();
      offset += piece.size();
    }
    copier.join();
    ::close(p[0]);
    mdb_env_close(env);
    ASSERT_EQ(copy_rc, 0);
    BackupStatus s = w.End(offset, all.Digest());
    ASSERT_TRUE(s.ok()) << s.message();
    ::close(fd);
    snapshot_size_ = offset;
  }

  CommandRun Restore(const std::string& file, const std::string& dir) {
    return testing::RunCommand(std::string(CAIRND_PATH) + " --restore " + file + " --data " + dir,
                               scratch_);
  }

  TempDir scratch_;
  std::string source_ = scratch_.Sub("source"), backup_ = scratch_.Sub("db.cairnbak");
  std::vector<BackupEpoch> history_;  // the source's
  std::string keyed_doc_;
  Transaction keyed_;
  uint64_t keyed_commit_ = 0, commit_ = 0, snapshot_size_ = 0;
  std::string catalog_;
  Dump records_;
};

TEST_F(CairndRestoreTest, RestoresEveryRecordIndexEntryAndLogEntry) {
  Backup(backup_, commit_);
  std::string target = scratch_.Sub("restored/db");
  CommandRun run = Restore(backup_, target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("restored commit " + std::to_string(commit_) + " (epoch 1) into " +
                         target + "/data.mdb"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("MB/s"), std::string::npos) << run.out;
  // The data file alone: the engine check's reader table is not left behind.
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
  EXPECT_EQ(testing::ReadBytes(target + "/data.mdb").size(), snapshot_size_);

  // Byte for byte, every LMDB database: catalog and meta, records, index entries, the
  // change log (with its idempotency keys).
  {
    testing::RawLmdb original(source_), restored(target);
    for (const char* db : {"meta", "records", "index", "log"}) {
      auto a = original.All(db), b = restored.All(db);
      EXPECT_FALSE(a.empty()) << db;
      EXPECT_TRUE(a == b) << db << ": " << a.size() << " entries, restored " << b.size();
    }
  }
  // And as the engine sees it, opened for writing, as cairnd will.
  auto db = testing::OpenOrDie(target);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->LastCommit(), commit_);
  EXPECT_EQ(Names(db->ListCollections()), catalog_);
  Dump restored = DumpAll(*db);
  ASSERT_EQ(restored.size(), records_.size());
  for (const auto& [name, records] : records_) {
    EXPECT_TRUE(restored[name] == records) << name;
  }
  EXPECT_EQ(restored["users"].size(), 3000u - 429 + 1);
  EXPECT_EQ(restored["blobs"].size(), 50u);
  // The unique index is whole: a query finds a record by its email, and a second record
  // with the same email is refused.
  TxnResult q = db->Execute(testing::Txn(
      {QueryOp{QuerySpec{.collection = "users", .index = "by_email", .equal = {std::string("u2@example.com")}}}}));
  ASSERT_TRUE(q.status.ok()) << q.status.ToString();
  ASSERT_EQ(q.results[0].records.size(), 1u);
  EXPECT_EQ(q.results[0].records[0].key, "user-2");
  TxnResult dup = db->Execute(
      testing::Txn({PutOp{"users", "other", Doc("{\"email\": \"u2@example.com\"}")}}));
  EXPECT_EQ(dup.status.code(), Code::kUniqueViolation);
  // The idempotency key came with the log: the client's retry is answered, not re-applied.
  TxnResult retry = db->Execute(keyed_);
  ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(retry.commit, keyed_commit_);
  // And the restored database takes new writes after the backup's last commit.
  TxnResult next = db->Execute(testing::Txn({PutOp{"users", "after", Doc("{\"email\": \"a@b\"}")}}));
  ASSERT_TRUE(next.status.ok());
  EXPECT_EQ(next.commit, commit_ + 1);
}

TEST_F(CairndRestoreTest, FromStandardInputIntoAnEmptyFolder) {
  Backup(backup_, commit_);
  std::string target = scratch_.Sub("empty");
  ASSERT_EQ(::mkdir(target.c_str(), 0700), 0);
  CommandRun run = testing::RunCommand(std::string(CAIRND_PATH) + " --restore - --data " + target,
                                       scratch_, testing::ReadBytes(backup_));
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("cairnd --restore standard input"), std::string::npos) << run.out;
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
  auto db = testing::OpenOrDie(target);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->LastCommit(), commit_);
}

TEST_F(CairndRestoreTest, AHeaderThatNamesAnotherCommitIsRefused) {
  // Every byte is as the writer was given it, but the header's commit is not the
  // snapshot's: only opening the database can tell.
  Backup(backup_, commit_ + 1);
  ASSERT_TRUE(ReadBackup(backup_).ok());
  std::string target = scratch_.Sub("new/db");
  CommandRun run = Restore(backup_, target);
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, "cairnd: cannot restore " + backup_ + " into " + target +
                         ": the restored database's last commit is " + std::to_string(commit_) +
                         ", but the backup's header says " + std::to_string(commit_ + 1) +
                         ": the snapshot is not the one the header describes\n");
  EXPECT_FALSE(Exists(scratch_.Sub("new")));
}

TEST_F(CairndRestoreTest, AHeaderThatNamesAnotherHistoryIsRefused) {
  std::vector<BackupEpoch> other = history_;
  other.back().id ^= 1;
  Backup(backup_, commit_, other);
  std::string target = scratch_.Sub("new/db");
  CommandRun run = Restore(backup_, target);
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("epoch history is not the one the backup's header describes"),
            std::string::npos)
      << run.err;
  EXPECT_FALSE(Exists(scratch_.Sub("new")));
}

TEST_F(CairndRestoreTest, ASoundBackupOfSomethingElseIsRefused) {
  testing::MakeBackup(backup_, testing::RandomBytes(1 << 16, 3));
  std::string target = scratch_.Sub("db");
  CommandRun run = Restore(backup_, target);
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("the restored database does not open: "), std::string::npos) << run.err;
  EXPECT_FALSE(Exists(target));
  EXPECT_EQ(Entries(scratch_.path()),
            (std::set<std::string>{"db.cairnbak", "source", "stdin", "stdout", "stderr"}));
}

TEST_F(CairndRestoreTest, RefusesDamageAndANonEmptyFolderAndLeavesThemAsTheyWere) {
  Backup(backup_, commit_);
  std::string bytes = testing::ReadBytes(backup_);
  bytes[bytes.size() / 2] ^= 4;
  std::string damaged = scratch_.Sub("damaged.cairnbak");
  testing::WriteBytes(damaged, bytes);
  std::string target = scratch_.Sub("db");
  CommandRun bad = Restore(damaged, target);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find(": checksum mismatch"), std::string::npos) << bad.err;
  EXPECT_FALSE(Exists(target));

  // The source database's own folder is not empty.
  CommandRun over = Restore(backup_, source_);
  EXPECT_EQ(over.code, 1);
  EXPECT_NE(over.err.find(source_ + " is not empty"), std::string::npos) << over.err;
  auto db = testing::OpenOrDie(source_);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->LastCommit(), commit_);

  CommandRun no_data = testing::RunCommand(std::string(CAIRND_PATH) + " --restore " + backup_, scratch_);
  EXPECT_EQ(no_data.code, 2);
  EXPECT_EQ(no_data.err, "cairnd: --restore needs --data DIR, the folder to restore into\n");
}

}  // namespace
}  // namespace cairn
