// Crash safety: a child process commits transactions and reports each
// acknowledged commit; it is killed with SIGKILL mid-stream. After reopening,
// every acknowledged commit is present and no partial transaction is visible.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "test_util.h"

namespace cairn {
namespace {

using testing::Doc;
using testing::TempDir;
using testing::Txn;

struct Ack {
  uint64_t i;       // transaction number in the child's sequence
  uint64_t commit;  // the commit number the engine acknowledged
};

// Runs in the child: commits transaction i = start, start + 1... forever, each writing two
// records ("a<i>", "b<i>") and updating "counter", in batches of `batch`; reports each
// acknowledged transaction on `fd`.
[[noreturn]] void ChildWriter(const std::string& dir, Durability durability, int batch,
                              uint64_t start, int fd) {
  Options o;
  o.durability = durability;
  auto opened = Engine::Open(dir, o);
  if (!opened.ok()) _exit(2);
  Engine& db = **opened;
  for (uint64_t i = start;; i += batch) {
    std::vector<std::string> keys_a, keys_b, docs;
    std::vector<Transaction> txns(batch);
    keys_a.reserve(batch);
    keys_b.reserve(batch);
    docs.reserve(batch);
    for (int j = 0; j < batch; j++) {
      keys_a.push_back("a" + std::to_string(i + j));
      keys_b.push_back("b" + std::to_string(i + j));
      docs.push_back(Doc("{\"i\": " + std::to_string(i + j) + "}"));
    }
    std::vector<const Transaction*> ptrs;
    for (int j = 0; j < batch; j++) {
      txns[j].ops = {PutOp{"c", keys_a[j], docs[j]}, PutOp{"c", keys_b[j], docs[j]},
                     PutOp{"c", "counter", docs[j]}};
      ptrs.push_back(&txns[j]);
    }
    std::vector<TxnResult> results = db.ExecuteBatch(ptrs);
    for (int j = 0; j < batch; j++) {
      if (!results[j].status.ok()) _exit(3);
      Ack ack{i + j, results[j].commit};
      if (write(fd, &ack, sizeof ack) != sizeof ack) _exit(4);
    }
  }
}

// Starts the writer, collects acknowledgements until `want` arrived (or 20 s passed),
// then SIGKILLs it. Returns the acknowledgements.
std::vector<Ack> RunAndKill(const std::string& dir, Durability durability, int batch,
                            size_t want, uint64_t start = 0) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    ChildWriter(dir, durability, batch, start, fds[1]);
  }
  close(fds[1]);
  std::vector<Ack> acks;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  Ack ack;
  while (acks.size() < want && std::chrono::steady_clock::now() < deadline &&
         read(fds[0], &ack, sizeof ack) == sizeof ack) {
    acks.push_back(ack);
  }
  kill(pid, SIGKILL);
  // Acknowledgements already in the pipe were sent before the kill: they count too.
  while (read(fds[0], &ack, sizeof ack) == sizeof ack) acks.push_back(ack);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the writer died on its own, status " << status;
  return acks;
}

void CheckAfterCrash(const std::string& dir, const std::vector<Ack>& acks) {
  ASSERT_FALSE(acks.empty());
  auto db = testing::OpenOrDie(dir);
  ASSERT_TRUE(db);
  VerifyReport v = db->Verify();
  ASSERT_TRUE(v.ok()) << v.problems.front();

  // Every acknowledged transaction is there, at the acknowledged commit.
  uint64_t max_commit = 0;
  for (const Ack& a : acks) {
    std::string ka = "a" + std::to_string(a.i);
    TxnResult r = db->Execute(Txn({GetOp{"c", ka}}));
    ASSERT_TRUE(r.status.ok());
    ASSERT_TRUE(r.results[0].found) << "acknowledged transaction " << a.i << " lost";
    EXPECT_EQ(r.results[0].version, a.commit);
    max_commit = std::max(max_commit, a.commit);
  }
  EXPECT_GE(db->LastCommit(), max_commit);

  // No partial transaction: a<i> and b<i> come together, and "counter" holds the last one.
  std::map<std::string, uint64_t> seen;
  uint64_t highest = 0;
  size_t a_count = 0, b_count = 0;
  ReadTxn read = db->BeginRead().value();
  Status s = read.Scan({.collection = "c"}, [&](const RecordView& r) {
    if (r.key == "counter") return;
    (r.key[0] == 'a' ? a_count : b_count)++;
    uint64_t i = std::stoull(std::string(r.key.substr(1)));
    highest = std::max(highest, i);
    std::string other = (r.key[0] == 'a' ? "b" : "a") + std::string(r.key.substr(1));
    seen[other] += 0;  // make sure the partner exists below
    seen[std::string(r.key)] = r.version;
  }, nullptr);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(a_count, b_count);
  for (const auto& [key, version] : seen) {
    EXPECT_NE(version, 0u) << key << " is missing its partner: a partial transaction is visible";
  }
  RecordView counter;
  bool found;
  ASSERT_TRUE(read.Get("c", "counter", &counter, &found).ok());
  ASSERT_TRUE(found);
  EXPECT_EQ(counter.version, db->LastCommit());
  EXPECT_EQ(testing::Json(counter.value), "{\"i\":" + std::to_string(highest) + "}");
}

void Prepare(const std::string& dir) {
  auto db = testing::OpenOrDie(dir);
  ASSERT_TRUE(db->CreateCollection("c").ok());
}

TEST(CrashTest, AcknowledgedCommitsSurviveSigkill) {
  TempDir dir;
  Prepare(dir.path());
  CheckAfterCrash(dir.path(), RunAndKill(dir.path(), Durability::kSync, 1, 300));
}

TEST(CrashTest, AcknowledgedGroupCommitsSurviveSigkill) {
  TempDir dir;
  Prepare(dir.path());
  CheckAfterCrash(dir.path(), RunAndKill(dir.path(), Durability::kSync, 16, 2000));
}

// Without fsync a process crash still loses nothing: the kernel holds the pages.
TEST(CrashTest, NoSyncSurvivesAProcessCrash) {
  TempDir dir;
  Prepare(dir.path());
  CheckAfterCrash(dir.path(), RunAndKill(dir.path(), Durability::kNoSync, 8, 3000));
}

// Killed repeatedly, reopened each time: the database keeps going.
TEST(CrashTest, RepeatedCrashesAndRestarts) {
  TempDir dir;
  Prepare(dir.path());
  std::vector<Ack> all;
  for (uint64_t round = 0; round < 3; round++) {
    std::vector<Ack> acks = RunAndKill(dir.path(), Durability::kSync, 4, 100, round * 1000000);
    all.insert(all.end(), acks.begin(), acks.end());
    CheckAfterCrash(dir.path(), all);
  }
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A process killed while it holds a read transaction leaves its LMDB reader slot
// behind. The next engine to open the database (the only one: cairn.lock) starts
// with the slot free: LMDB resets the reader table when no other process has the
// environment open, and the stale-reader check (at open, then every
// reader_check_interval) frees slots of dead processes otherwise (e.g. while an LMDB
// tool keeps the environment open).
TEST(CrashTest, StaleReaderOfAKilledProcessDoesNotLinger) {
  testing::TempDir dir;
  Prepare(dir.path());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    auto db = Engine::Open(dir.path(), {});
    if (!db.ok()) _exit(2);
    auto read = (*db)->BeginRead();
    if (!read.ok()) _exit(3);
    char c = 'r';
    if (write(fds[1], &c, 1) != 1) _exit(4);
    pause();  // holds the read transaction until killed
    _exit(0);
  }
  close(fds[1]);
  char c;
  ASSERT_EQ(read(fds[0], &c, 1), 1);
  close(fds[0]);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  auto db = testing::OpenOrDie(dir.path());
  ASSERT_TRUE(db);
  EXPECT_EQ(db->Stats().readers_used, 0u) << "the dead reader's slot is not in use";
  EXPECT_TRUE(db->Verify().ok());
  // Readers keep working, and their slots are reused.
  for (int i = 0; i < 10; i++) ASSERT_TRUE(db->BeginRead().ok());
  EXPECT_LE(db->Stats().readers_used, 1u);
}

}  // namespace
}  // namespace cairn
