// libcairn's SnapshotReader and `cairn backup` against the real cairnd: a snapshot read
// while writers write is whole and consistent (restored and served, it holds the commit
// its SnapshotBegin named and passes the server's consistency check); a backup of a quiet
// server, restored with cairnd --restore, has the primary's digest; a backup taken under
// load, restored and made a replica of the primary, converges to the primary's digest.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "cairn/client/client.h"
#include "cairn/protocol/backup.h"
#include "command.h"
#include "server_process.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::TempDir;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"),
                                              std::vector<std::string>{"--durability", "nosync"});
    ASSERT_TRUE(server_->ready()) << server_->output();
    db_ = Connect(server_->port());
    db_->CreateCollection("c");
    db_->CreateIndex("c", {"by_n", {"n"}, false});
    for (int i = 0; i < 2000; i++) {
      db_->Put("c", "k" + std::to_string(i),
               Document::Builder().Set("n", i).Set("pad", std::string(500, 'x')).Build());
    }
  }

  static std::shared_ptr<Client> Connect(uint16_t port) {
    ClientOptions o;
    o.address = "127.0.0.1:" + std::to_string(port);
    o.connections = 2;
    return Client::Connect(o);
  }

  // The snapshot into a backup file through BackupWriter; its SnapshotBegin.
  SnapshotBegin BackUp(const std::string& file) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_GE(fd, 0);
    BackupWriter writer(fd, file);
    SnapshotReader r = db_->Snapshot();
    SnapshotBegin begin;
    begin = std::get<SnapshotBegin>(r.Next());
    std::vector<BackupEpoch> history;
    for (const EpochStart& e : begin.history) history.push_back({e.epoch, e.id, e.first_commit});
    EXPECT_TRUE(writer.Begin(begin.commit, begin.format, history).ok());
    while (true) {
      SnapshotPart p = r.Next();
      if (auto* c = std::get_if<SnapshotChunk>(&p)) {
        BackupStatus s = writer.Chunk(c->offset, c->data, c->checksum);
        EXPECT_TRUE(s.ok()) << s.message();
        continue;
      }
      const SnapshotEnd& end = std::get<SnapshotEnd>(p);
      BackupStatus s = writer.End(end.size, end.checksum);
      EXPECT_TRUE(s.ok()) << s.message();
      EXPECT_EQ(end.size, r.bytes());
      break;
    }
    ::close(fd);
    return begin;
  }

  // cairnd --restore FILE --data DIR, then a server on DIR (with `flags`).
  std::unique_ptr<ServerProcess> Restore(const std::string& file, const std::string& dir,
                                         std::vector<std::string> flags = {}) {
    const char* binary = std::getenv("CAIRN_TEST_CAIRND") ? std::getenv("CAIRN_TEST_CAIRND") : CAIRND_PATH;
    testing::CommandRun r = testing::RunCommand(
        std::string(binary) + " --restore " + file + " --data " + dir, dir_);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto s = std::make_unique<ServerProcess>(dir, flags);
    EXPECT_TRUE(s->ready()) << s->output();
    return s;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<Client> db_;
};

TEST_F(SnapshotTest, SnapshotUnderWritesIsWholeAndConsistent) {
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop; i++) {
      db_->Put("c", "w" + std::to_string(i % 3000), Document::Builder().Set("n", i).Build());
      if (i % 7 == 0) db_->Delete("c", "k" + std::to_string(i % 2000));
      written++;
    }
  });
  while (written < 100) std::this_thread::yield();
  SnapshotBegin begin = BackUp(dir_.Sub("under-load.cairnbak"));
  stop = true;
  writer.join();
  EXPECT_GT(begin.commit, 2000u);
  EXPECT_FALSE(begin.history.empty());
  auto restored = Restore(dir_.Sub("under-load.cairnbak"), dir_.Sub("restored"));
  auto copy = Connect(restored->port());
  EXPECT_EQ(copy->Stats().last_commit, begin.commit) << "the commit SnapshotBegin named";
  VerifyResult v = copy->Verify();
  EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems[0]);
}

TEST_F(SnapshotTest, CliBackupOfAQuietServerRestoresToTheSameDigest) {
  std::string file = dir_.Sub("quiet.cairnbak");
  testing::CommandRun r = testing::RunCommand(
      "CAIRN_ADDR=127.0.0.1:" + std::to_string(server_->port()) + " " CAIRN_CLI_PATH " backup " +
          file,
      dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  DatabaseDigest primary = db_->Digest();
  EXPECT_NE(r.out.find("\"commit\":" + std::to_string(primary.commit)), std::string::npos) << r.out;
  auto restored = Restore(file, dir_.Sub("restored"));
  DatabaseDigest copy = Connect(restored->port())->Digest();
  EXPECT_EQ(copy.commit, primary.commit);
  EXPECT_EQ(copy.digest, primary.digest);
  EXPECT_EQ(copy.records, primary.records);
  EXPECT_EQ(copy.index_entries, primary.index_entries);
}

// The backup holds exactly its commit: restored, and then following the primary from that
// commit on (as a replica seeded from the backup) while the load goes on, it ends with the
// primary's digest. A backup holding more or less than its commit says would apply the
// log's commits on the wrong state, and differ.
TEST_F(SnapshotTest, BackupUnderLoadRestoredAndFollowingConvergesToThePrimarysDigest) {
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop; i++) {
      db_->Put("c", "w" + std::to_string(i % 3000), Document::Builder().Set("n", i).Build());
      if (i % 5 == 0) db_->Delete("c", "k" + std::to_string(i % 2000));
      written++;
    }
  });
  while (written < 200) std::this_thread::yield();
  std::string file = dir_.Sub("load.cairnbak");
  testing::CommandRun r = testing::RunCommand(
      "CAIRN_ADDR=127.0.0.1:" + std::to_string(server_->port()) + " " CAIRN_CLI_PATH " backup " +
          file,
      dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  while (written < 1500) std::this_thread::yield();  // the primary moves on
  auto replica = Restore(file, dir_.Sub("seeded"),
                         {"--replica-of", "127.0.0.1:" + std::to_string(server_->port())});
  auto copy = Connect(replica->port());
  while (written < 3000) std::this_thread::yield();
  stop = true;
  writer.join();
  uint64_t last = db_->Stats().last_commit;
  DatabaseDigest primary = db_->Digest(last);
  DatabaseDigest seeded = copy->Digest(last, std::chrono::seconds(20));
  EXPECT_EQ(seeded.commit, primary.commit);
  EXPECT_EQ(seeded.digest, primary.digest);
  EXPECT_EQ(seeded.records, primary.records);
  // It followed from the backup's commit, not from a bootstrap of its own.
  ServerStats stats = copy->Stats();
  uint64_t bootstraps = ~uint64_t{0};
  for (const auto& [name, value] : stats.counters) {
    if (name == "replication.bootstraps") bootstraps = value;
  }
  EXPECT_EQ(bootstraps, 0u);
}

}  // namespace
}  // namespace cairn::client
