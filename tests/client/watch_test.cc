// libcairn's Watcher and Digest, and `cairn watch` / `cairn digest`, against the real
// cairnd: every change of concurrent writers exactly once, in commit order; a watcher
// restarted from through + 1 continues without gaps or repeats; a trimmed start gets
// LogTruncated with the oldest commit kept; the CLI prints the changes as JSON lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "cairn/client/client.h"
#include "cairn/protocol/json.h"
#include "command.h"
#include "server_process.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::TempDir;
using namespace std::chrono_literals;

// One change as the writers made it and as the watcher saw it.
struct Made {
  uint64_t commit;
  std::string key;
  Change::Kind kind;
  int64_t n;  // the document's "n" (puts)
  bool operator==(const Made&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Made& m) {
  return os << m.commit << ":" << ChangeKindName(m.kind) << ":" << m.key << ":" << m.n;
}

class WatchTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    flags.insert(flags.end(), {"--durability", "nosync"});
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), flags);
    ASSERT_TRUE(server_->ready()) << server_->output();
    ClientOptions o;
    o.address = address();
    o.connections = 4;
    db_ = Client::Connect(o);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  // `writers` threads, each making `each` single-write commits in "c" (puts of its own
  // keys and, every fourth, a delete of one it put) and some in "other", which a
  // watcher of "c" must not see; plus, every tenth, a transaction of three puts (one
  // commit, three changes). Returns what it made in "c", in commit order.
  std::vector<Made> Write(int writers, int each) {
    std::mutex mu;
    std::vector<Made> made;
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; w++) {
      threads.emplace_back([&, w] {
        for (int i = 0; i < each; i++) {
          std::string key = "w" + std::to_string(w) + "-" + std::to_string(i);
          std::vector<Made> mine;
          if (i % 10 == 9) {
            Txn t;
            for (int j = 0; j < 3; j++) {
              t.Put("c", key + "." + std::to_string(j), Document::Builder().Set("n", i * 10 + j).Build());
            }
            uint64_t commit = db_->Commit(t).commit;
            for (int j = 0; j < 3; j++) {
              mine.push_back({commit, key + "." + std::to_string(j), Change::Kind::kPut, i * 10 + j});
            }
          } else if (i % 4 == 3) {
            std::string victim = "w" + std::to_string(w) + "-" + std::to_string(i - 1);
            Txn t;
            t.Delete("c", victim);
            uint64_t commit = db_->Commit(t).commit;
            mine.push_back({commit, victim, Change::Kind::kDelete, 0});
          } else {
            uint64_t commit = db_->Put("c", key, Document::Builder().Set("n", i).Build());
            mine.push_back({commit, key, Change::Kind::kPut, i});
          }
          if (i % 3 == 0) db_->Put("other", key, Document::Builder().Set("n", i).Build());
          std::lock_guard lock(mu);
          made.insert(made.end(), mine.begin(), mine.end());
        }
      });
    }
    for (auto& t : threads) t.join();
    std::stable_sort(made.begin(), made.end(),
                     [](const Made& a, const Made& b) { return a.commit < b.commit; });
    return made;
  }

  // What a batch holds, as Made; checks the batch's own promises on the way.
  static void Take(const WatchBatch& b, std::vector<Made>* seen) {
    for (const Change& c : b.changes) {
      EXPECT_LE(c.commit, b.through) << "a batch holds whole commits only";
      EXPECT_EQ(c.collection, "c");
      EXPECT_GT(c.time_ms, 0u);
      int64_t n = 0;
      if (c.kind == Change::Kind::kPut) {
        Document d = c.document();
        n = d["n"].AsInt();
      }
      seen->push_back({c.commit, c.key, c.kind, n});
    }
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<Client> db_;
};

TEST_F(WatchTest, SeesEveryChangeOfConcurrentWritersOnceInCommitOrder) {
  Start();
  db_->CreateCollection("c");
  uint64_t from = db_->CreateCollection("other") + 1;
  Watcher w = db_->Watch({.collection = "c", .from = from});
  // The watcher reads while the writers write.
  std::vector<Made> seen;
  std::thread reader([&] {
    while (seen.empty() || seen.back().key != "end") Take(w.Next(), &seen);
  });
  std::vector<Made> made = Write(4, 150);
  // A last change, which tells the reader that it has everything (a heartbeat that does
  // not move `through` completes no Next, so it could not wait for a commit number).
  uint64_t end = db_->Put("c", "end", Document::Builder().Set("n", -1).Build());
  made.push_back({end, "end", Change::Kind::kPut, -1});
  reader.join();
  EXPECT_EQ(seen, made);
  for (size_t i = 1; i < seen.size(); i++) {
    ASSERT_LE(seen[i - 1].commit, seen[i].commit) << "commit order";
  }
}

TEST_F(WatchTest, RestartFromThroughPlusOneHasNoGapsOrRepeats) {
  Start();
  db_->CreateCollection("c");
  uint64_t from = db_->CreateCollection("other") + 1;
  std::vector<Made> made, seen;
  std::thread writer([&] {
    made = Write(2, 200);
    uint64_t last = db_->Put("c", "end", Document::Builder().Set("n", -1).Build());
    made.push_back({last, "end", Change::Kind::kPut, -1});
  });
  auto done = [&] { return !seen.empty() && seen.back().key == "end"; };
  // Watchers one after another, each closed after a few batches, in the middle of the
  // stream; the next starts from through + 1 of the last batch its predecessor returned.
  int watchers = 0;
  uint64_t next = from;
  while (!done()) {
    Watcher w = db_->Watch({.collection = "c", .from = next});
    watchers++;
    for (int i = 0; i < 3 && !done(); i++) {
      WatchBatch b = w.Next();
      Take(b, &seen);
      next = b.through + 1;
    }
  }
  writer.join();
  EXPECT_GT(watchers, 2);
  EXPECT_EQ(seen, made);
}

TEST_F(WatchTest, TrimmedStartIsLogTruncatedWithTheOldestCommitKept) {
  Start({"--log-retention", "10"});
  db_->CreateCollection("c");
  for (int i = 0; i < 100; i++) db_->Put("c", "k" + std::to_string(i), Document::Builder().Set("n", i).Build());
  Watcher w = db_->Watch({.collection = "c", .from = 2});
  uint64_t first = 0;
  try {
    w.Next();
    ADD_FAILURE() << "a watch from a trimmed commit";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLogTruncated) << e.what();
    first = e.log_first();
  }
  EXPECT_GT(first, 2u);
  EXPECT_LE(first, db_->Stats().last_commit);
  // From the commit it names, the watch works, and starts there.
  Watcher again = db_->Watch({.collection = "c", .from = first});
  WatchBatch b = again.Next();
  ASSERT_FALSE(b.changes.empty());
  EXPECT_EQ(b.changes.front().commit, first);

  // The CLI says the same in its terms.
  testing::CommandRun r = testing::RunCommand(
      "CAIRN_ADDR=" + address() + " " CAIRN_CLI_PATH " watch c --from 2", dir_);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("--from " + std::to_string(first)), std::string::npos) << r.err;
}

TEST_F(WatchTest, WatchFromNowSeesOnlyLaterCommits) {
  Start();
  db_->CreateCollection("c");
  db_->Put("c", "before", Document::Builder().Set("n", 0).Build());
  Watcher w = db_->Watch({.collection = "c"});
  // "From now" is when the server takes the request, which a put right after may beat:
  // put until the watcher sees one.
  uint64_t later = 0;
  std::vector<Made> seen;
  std::future<WatchBatch> next = w.AsyncNext(asio::use_future);
  for (int i = 0; i < 100 && seen.empty(); i++) {
    later = db_->Put("c", "after", Document::Builder().Set("n", 1).Build());
    if (next.wait_for(100ms) == std::future_status::ready) {
      Take(next.get(), &seen);
      if (seen.empty()) next = w.AsyncNext(asio::use_future);
    }
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().key, "after");
  EXPECT_LE(seen.front().commit, later);
}

TEST_F(WatchTest, CliWatchCountPrintsTheChangesAsJsonLines) {
  Start();
  uint64_t created = db_->CreateCollection("c");
  uint64_t put = db_->Put("c", "ada", Document::FromJson(R"({"email": "ada@x", "tags": ["a"]})"));
  uint64_t raw = db_->Commit(Txn().PutRaw("c", "blob", std::string("\x01\x02", 2))).commit;
  uint64_t del = db_->Commit(Txn().Delete("c", "ada")).commit;
  db_->CreateCollection("elsewhere");
  db_->Put("elsewhere", "x", Document::FromJson("{}"));
  uint64_t ix = db_->CreateIndex("c", {"by_email", {"email"}, true});
  testing::CommandRun r = testing::RunCommand(
      "CAIRN_ADDR=" + address() + " " CAIRN_CLI_PATH " watch c --from " + std::to_string(created) +
          " --count 5",
      dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  auto expect = [](const std::string& line, const std::string& head, const std::string& tail) {
    EXPECT_EQ(line.rfind(head, 0), 0u) << line;
    EXPECT_NE(line.find(tail), std::string::npos) << line;
    EXPECT_NE(line.find(",\"time_ms\":"), std::string::npos) << line;
  };
  auto c = [](uint64_t commit) { return "{\"commit\":" + std::to_string(commit) + ","; };
  expect(lines[0], c(created) + R"("collection":"c","op":"create_collection")", "");
  expect(lines[1], c(put) + R"("collection":"c","op":"put","key":"ada","value":{"email":"ada@x","tags":["a"]})", "");
  expect(lines[2], c(raw) + R"("collection":"c","op":"put","key":"blob","value":{"$bytes":"AQI="})", "");
  expect(lines[3], c(del) + R"("collection":"c","op":"delete","key":"ada")", "");
  expect(lines[4], c(ix) + R"("collection":"c","op":"create_index","index":{"name":"by_email","fields":["email"],"unique":true})", "");
}

TEST_F(WatchTest, DigestFollowsTheDataAndTheCliPrintsWhatTheLibrarySees) {
  Start();
  db_->CreateCollection("c");
  db_->Put("c", "a", Document::Builder().Set("n", 1).Build());
  DatabaseDigest d1 = db_->Digest();
  EXPECT_EQ(d1.commit, db_->Stats().last_commit);
  EXPECT_EQ(d1.collections, 1u);
  EXPECT_EQ(d1.records, 1u);
  db_->Put("c", "b", Document::Builder().Set("n", 2).Build());
  DatabaseDigest d2 = db_->Digest();
  EXPECT_NE(d2.digest, d1.digest);
  EXPECT_EQ(d2.records, 2u);
  db_->Delete("c", "b");
  DatabaseDigest d3 = db_->Digest(0, {});
  EXPECT_EQ(d3.digest, d1.digest) << "the same data, the same digest";
  EXPECT_GT(d3.commit, d1.commit);

  testing::CommandRun r = testing::RunCommand(
      "CAIRN_ADDR=" + address() + " " CAIRN_CLI_PATH " digest --json", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d3.digest);
  EXPECT_EQ(r.out, "{\"commit\":" + std::to_string(d3.commit) + ",\"digest\":\"" + hex +
                       "\",\"collections\":1,\"records\":1,\"index_entries\":0}\n");
  // A commit in the past is refused; one in the future is waited for, then refused.
  r = testing::RunCommand("CAIRN_ADDR=" + address() + " " CAIRN_CLI_PATH " digest --at 1", dir_);
  EXPECT_EQ(r.code, 1) << "a condition failed: the database is past commit 1";
  EXPECT_FALSE(r.err.empty());
  auto t0 = std::chrono::steady_clock::now();
  Error e(ErrorCode::kOk, "");
  try {
    db_->Digest(d3.commit + 100, 300ms);
  } catch (const Error& x) {
    e = x;
  }
  EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
  // Waiting for a commit that comes in time.
  std::future<DatabaseDigest> waiting = db_->AsyncDigest(d3.commit + 1, 10s, asio::use_future);
  std::this_thread::sleep_for(50ms);
  uint64_t put = db_->Put("c", "b", Document::Builder().Set("n", 2).Build());
  DatabaseDigest d4 = waiting.get();
  EXPECT_EQ(d4.commit, put);
  EXPECT_EQ(d4.records, 2u);
  EXPECT_NE(d4.digest, d2.digest) << "b's version is part of the digest";
}

}  // namespace
}  // namespace cairn::client
