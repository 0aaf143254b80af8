// Tests of group commit (Engine::ExecuteBatch): transactions of one batch share one LMDB
// commit, yet each succeeds or fails alone, gets its own commit number in batch order,
// sees the earlier ones, and has its own change-log entry.
#include <gtest/gtest.h>
#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "test_util.h"

namespace cairn {
namespace {

using testing::Doc;
using testing::Json;
using testing::OpenOrDie;
using testing::TempDir;
using testing::Txn;

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenOrDie(dir_.path());
    ASSERT_TRUE(db_);
    ASSERT_TRUE(db_->CreateCollection("c").ok());
    ASSERT_TRUE(db_->CreateIndex("c", {"by_email", {"email"}, true}).ok());
    ASSERT_TRUE(db_->CreateIndex("c", {"by_n", {"n"}}).ok());
  }

  // A document that lives as long as the test.
  std::string_view D(std::string_view json) {
    docs_.push_back(Doc(json));
    return docs_.back();
  }

  std::vector<TxnResult> Batch(const std::vector<Transaction>& txns) {
    std::vector<const Transaction*> ptrs;
    for (const Transaction& t : txns) ptrs.push_back(&t);
    return db_->ExecuteBatch(ptrs);
  }

  // Outcome of each transaction: "ok@<commit>", "ok" (committed nothing) or the code name.
  static std::string Outcomes(const std::vector<TxnResult>& results) {
    std::string out;
    for (const TxnResult& r : results) {
      if (!out.empty()) out += " ";
      if (!r.status.ok()) {
        out += CodeName(r.status.code());
        // A failed transaction reports no commit and no results.
        if (r.commit != 0 || !r.results.empty()) out += "(with results!)";
      } else {
        out += r.commit ? "ok@" + std::to_string(r.commit) : "ok";
      }
    }
    return out;
  }

  // Every record of "c" as "key@version=json", in key order.
  std::string State() {
    TxnResult r = db_->Execute(Txn({ScanOp{ScanSpec{.collection = "c"}}}));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    if (!r.status.ok()) return "error";
    std::string out;
    for (const Record& rec : r.results[0].records) {
      out += (out.empty() ? "" : " ") + rec.key + "@" + std::to_string(rec.version) + "=" +
             Json(rec.value);
    }
    return out;
  }

  // Keys of an index query, in index order.
  std::string QueryKeys(std::string_view index, std::vector<IndexValue> equal = {}) {
    TxnResult r = db_->Execute(
        Txn({QueryOp{QuerySpec{.collection = "c", .index = index, .equal = std::move(equal)}}}));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    if (!r.status.ok()) return "error";
    std::string out;
    for (const Record& rec : r.results[0].records) out += (out.empty() ? "" : ",") + rec.key;
    return out;
  }

  // The change log from `from` on, one "commit: change; change" line per entry.
  std::string LogFrom(uint64_t from) {
    std::vector<LogEntry> log;
    Status s = db_->ReadLog(from, 1000, size_t{1} << 30, &log);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::string out;
    for (const LogEntry& e : log) {
      out += std::to_string(e.commit) + ":";
      for (const Change& c : e.changes) {
        out += c.kind == Change::kPut      ? " put " + c.key + "=" + Json(c.value) + ";"
               : c.kind == Change::kDelete ? " delete " + c.key + ";"
                                           : " other;";
        if (c.collection != "c") out += "(wrong collection " + c.collection + ")";
      }
      out += "\n";
    }
    return out;
  }

  std::string At(uint64_t base, uint64_t delta) { return std::to_string(base + delta); }

  TempDir dir_;
  std::unique_ptr<Engine> db_;
  std::deque<std::string> docs_;
};

TEST_F(GroupCommitTest, FailuresInABatchLeaveNoTraceAndTheOthersCommitInOrder) {
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"c", "taken", D(R"({"email": "x@", "n": 0})")},
                                PutOp{"c", "present", D(R"({"email": "p@", "n": 0})")}}))
                  .status.ok());
  const uint64_t base = db_->LastCommit();
  const std::string before = State();
  const std::string long_key(kMaxKeySize + 1, 'k');
  const std::string not_a_doc = "definitely not a FlexBuffer";

  std::vector<Transaction> txns;
  // 0: ok.
  txns.push_back(Txn({PutOp{"c", "a", D(R"({"email": "a@", "n": 1})")}}));
  // 1: condition false.
  txns.push_back(Txn({PutOp{"c", "f1", D(R"({"email": "f1@", "n": 9})")}},
                     {{Condition::kAbsent, "c", "present"}}));
  // 2: ok.
  txns.push_back(Txn({PutOp{"c", "b", D(R"({"email": "b@", "n": 1})")}}));
  // 3: unique violation, after a write that must be undone.
  txns.push_back(Txn({PutOp{"c", "f2", D(R"({"email": "f2@", "n": 9})")},
                      PutOp{"c", "f2b", D(R"({"email": "x@", "n": 9})")}}));
  // 4: ok, two changes.
  txns.push_back(Txn({PutOp{"c", "c", D(R"({"email": "c@", "n": 2})")}, DeleteOp{"c", "present"}}));
  // 5: bad document bytes, after a write.
  txns.push_back(
      Txn({PutOp{"c", "f3", D(R"({"email": "f3@", "n": 9})")}, PutOp{"c", "f3b", not_a_doc}}));
  // 6: insert of a present key, after a write.
  txns.push_back(
      Txn({PutOp{"c", "f4", D(R"({"email": "f4@", "n": 9})")},
           PutOp{"c", "taken", D(R"({"n": 9})"), ValueKind::kDocument, PutMode::kInsert}}));
  // 7: write to a missing collection, after a write.
  txns.push_back(
      Txn({PutOp{"c", "f5", D(R"({"email": "f5@", "n": 9})")}, PutOp{"missing", "k", D("{}")}}));
  // 8: key too long, after a write holding a unique value...
  txns.push_back(
      Txn({PutOp{"c", "f6", D(R"({"email": "f6@", "n": 9})")}, PutOp{"c", long_key, D("{}")}}));
  // 9: ...which is free again for the next transaction.
  txns.push_back(Txn({PutOp{"c", "d", D(R"({"email": "f6@", "n": 2})")}}));
  // 10: a read in the batch commits nothing but sees the batch so far.
  txns.push_back(Txn({GetOp{"c", "a"}, GetOp{"c", "f1"}, CountOp{ScanSpec{.collection = "c"}}}));

  std::vector<TxnResult> r = Batch(txns);
  ASSERT_EQ(r.size(), txns.size());
  EXPECT_EQ(Outcomes(r), "ok@" + At(base, 1) + " condition failed ok@" + At(base, 2) +
                             " unique violation ok@" + At(base, 3) +
                             " bad request already exists unknown name too large ok@" + At(base, 4) +
                             " ok");
  EXPECT_EQ(db_->LastCommit(), base + 4);
  ASSERT_EQ(r[10].results.size(), 3u);
  EXPECT_TRUE(r[10].results[0].found);
  EXPECT_EQ(r[10].results[0].version, base + 1);
  EXPECT_FALSE(r[10].results[1].found);
  EXPECT_EQ(r[10].results[2].count, 5u) << "taken, a, b, c, d";
  EXPECT_TRUE(r[4].results[1].found) << "the delete found its record";
  EXPECT_EQ(r[4].results[1].version, base + 3);

  // The failed transactions left nothing: records, index entries, log entries.
  std::string v0 = before.substr(before.find("taken@") + 6);
  EXPECT_EQ(State(), "a@" + At(base, 1) + R"(={"email":"a@","n":1} b@)" + At(base, 2) +
                         R"(={"email":"b@","n":1} c@)" + At(base, 3) +
                         R"(={"email":"c@","n":2} d@)" + At(base, 4) +
                         R"(={"email":"f6@","n":2} taken@)" + v0);
  EXPECT_EQ(QueryKeys("by_email"), "a,b,c,d,taken");
  EXPECT_EQ(QueryKeys("by_email", {std::string("x@")}), "taken");
  EXPECT_EQ(QueryKeys("by_email", {std::string("f6@")}), "d");
  EXPECT_EQ(QueryKeys("by_n", {int64_t{9}}), "");
  EXPECT_EQ(QueryKeys("by_n"), "taken,a,b,c,d");
  EXPECT_EQ(LogFrom(base + 1), At(base, 1) + R"(: put a={"email":"a@","n":1};)" + "\n" +
                                   At(base, 2) + R"(: put b={"email":"b@","n":1};)" + "\n" +
                                   At(base, 3) +
                                   R"(: put c={"email":"c@","n":2}; delete present;)" + "\n" +
                                   At(base, 4) + R"(: put d={"email":"f6@","n":2};)" + "\n");
  VerifyReport v = db_->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

TEST_F(GroupCommitTest, LaterTransactionsSeeEarlierOnesOfTheSameBatch) {
  const uint64_t base = db_->LastCommit();
  std::vector<Transaction> txns;
  txns.push_back(Txn({PutOp{"c", "k", D(R"({"n": 1})")}}));
  // Its condition holds only if transaction 0 is visible, at its commit number.
  txns.push_back(
      Txn({PutOp{"c", "k", D(R"({"n": 2})")}}, {{Condition::kVersionEquals, "c", "k", base + 1}}));
  txns.push_back(Txn({GetOp{"c", "k"}}));
  txns.push_back(Txn({PutOp{"c", "k", D("{}"), ValueKind::kDocument, PutMode::kInsert}}));
  txns.push_back(Txn({PutOp{"c", "u1", D(R"({"email": "e@"})")}}));
  // The unique value taken by transaction 4 is taken for this one too.
  txns.push_back(Txn({PutOp{"c", "u2", D(R"({"email": "e@"})")}}));
  txns.push_back(Txn({DeleteOp{"c", "k"}}, {{Condition::kVersionEquals, "c", "k", base + 2}}));
  txns.push_back(Txn({GetOp{"c", "k"}}, {{Condition::kPresent, "c", "k"}}));
  txns.push_back(Txn({PutOp{"c", "k", D(R"({"n": 3})"), ValueKind::kDocument, PutMode::kInsert}},
                     {{Condition::kAbsent, "c", "k"}}));

  std::vector<TxnResult> r = Batch(txns);
  ASSERT_EQ(r.size(), txns.size());
  EXPECT_EQ(Outcomes(r), "ok@" + At(base, 1) + " ok@" + At(base, 2) + " ok already exists ok@" +
                             At(base, 3) + " unique violation ok@" + At(base, 4) +
                             " condition failed ok@" + At(base, 5));
  ASSERT_EQ(r[1].results.size(), 1u);
  EXPECT_TRUE(r[1].results[0].found);
  EXPECT_EQ(r[1].results[0].version, base + 2);
  ASSERT_TRUE(r[2].results.at(0).found);
  EXPECT_EQ(r[2].results[0].version, base + 2);
  EXPECT_EQ(Json(r[2].results[0].records.at(0).value), R"({"n":2})");
  EXPECT_TRUE(r[6].results.at(0).found);
  EXPECT_FALSE(r[8].results.at(0).found);
  EXPECT_EQ(State(), "k@" + At(base, 5) + R"(={"n":3} u1@)" + At(base, 3) + R"(={"email":"e@"})");
  EXPECT_EQ(LogFrom(base + 1), At(base, 1) + R"(: put k={"n":1};)" + "\n" + At(base, 2) +
                                   R"(: put k={"n":2};)" + "\n" + At(base, 3) +
                                   R"(: put u1={"email":"e@"};)" + "\n" + At(base, 4) +
                                   ": delete k;\n" + At(base, 5) + R"(: put k={"n":3};)" + "\n");
}

TEST_F(GroupCommitTest, FailureBetweenTwoWritesOfOneKeyDoesNotDisturbThem) {
  const uint64_t base = db_->LastCommit();
  std::vector<Transaction> txns;
  txns.push_back(Txn({PutOp{"c", "k", D(R"({"email": "one@", "n": 1})")}}));
  // Writes k, then fails: k must stay as transaction 0 left it.
  txns.push_back(Txn({PutOp{"c", "k", D(R"({"email": "two@", "n": 2})")},
                      PutOp{"c", "absent", D("{}"), ValueKind::kDocument, PutMode::kReplace}}));
  txns.push_back(Txn({PutOp{"c", "k", D(R"({"email": "three@", "n": 3})")}},
                     {{Condition::kVersionEquals, "c", "k", base + 1}}));
  std::vector<TxnResult> r = Batch(txns);
  EXPECT_EQ(Outcomes(r), "ok@" + At(base, 1) + " not found ok@" + At(base, 2));
  ASSERT_EQ(r[2].results.size(), 1u);
  EXPECT_TRUE(r[2].results[0].found);
  EXPECT_EQ(State(), "k@" + At(base, 2) + R"(={"email":"three@","n":3})");
  EXPECT_EQ(QueryKeys("by_email"), "k");
  EXPECT_EQ(QueryKeys("by_email", {std::string("one@")}), "");
  EXPECT_EQ(QueryKeys("by_email", {std::string("two@")}), "");
  EXPECT_EQ(QueryKeys("by_n", {int64_t{3}}), "k");
  EXPECT_EQ(QueryKeys("by_n", {int64_t{2}}), "");
  EXPECT_EQ(LogFrom(base + 1), At(base, 1) + R"(: put k={"email":"one@","n":1};)" + "\n" +
                                   At(base, 2) + R"(: put k={"email":"three@","n":3};)" + "\n");
  VerifyReport v = db_->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

TEST_F(GroupCommitTest, StatsCountOneGroupCommitPerBatch) {
  EngineStats s0 = db_->Stats();
  std::vector<Transaction> txns;
  txns.push_back(Txn({PutOp{"c", "a", D("{}")}}));
  txns.push_back(Txn({PutOp{"c", "b", D("{}")}}, {{Condition::kPresent, "c", "nope"}}));
  txns.push_back(Txn({PutOp{"c", "b", D("{}")}}));
  txns.push_back(Txn({GetOp{"c", "a"}}));
  txns.push_back(Txn({PutOp{"c", "c", D("{}")}, DeleteOp{"c", "a"}}));
  ASSERT_EQ(Outcomes(Batch(txns)), "ok@" + At(s0.last_commit, 1) + " condition failed ok@" +
                                       At(s0.last_commit, 2) + " ok ok@" + At(s0.last_commit, 3));
  EngineStats s1 = db_->Stats();
  EXPECT_EQ(s1.commits, s0.commits + 3);
  EXPECT_EQ(s1.group_commits, s0.group_commits + 1);
  EXPECT_EQ(s1.last_commit, s0.last_commit + 3);

  txns.clear();
  txns.push_back(Txn({PutOp{"c", "d", D("{}")}}));
  txns.push_back(Txn({PutOp{"c", "e", D("{}")}}));
  ASSERT_EQ(Outcomes(Batch(txns)), "ok@" + At(s0.last_commit, 4) + " ok@" + At(s0.last_commit, 5));
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"c", "f", D("{}")}})).status.ok());
  EngineStats s2 = db_->Stats();
  EXPECT_EQ(s2.commits, s1.commits + 3);
  EXPECT_EQ(s2.group_commits, s1.group_commits + 2);
}

// Engine::Execute from many threads, and Engine::Submit and SubmitCatalog: writes queued
// to group-commit, answered in the order queued. The tests hold a group back with
// Options::before_group_commit (Gate) where they need writes to be queued behind it, so
// that nothing depends on how long an fsync takes.
class SubmitTest : public ::testing::Test {
 protected:
  // Holds the first group it sees (or every group, until opened) on the committing thread.
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int held = 0;  // groups that reached it
    void Hold() {
      std::unique_lock lock(mu);
      held++;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return open; });
    }
    void Open() {
      std::lock_guard lock(mu);
      open = true;
      cv.notify_all();
    }
    bool WaitHeld() {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, std::chrono::seconds(30), [&] { return held > 0; });
    }
  };
  // Collects results by index; Wait() returns once `n` arrived.
  struct Results {
    std::mutex mu;
    std::condition_variable cv;
    std::map<int, TxnResult> got;
    std::vector<int> order;  // indexes in the order their callbacks ran
    Engine::WriteDone At(int i) {
      return [this, i](TxnResult r) {
        std::lock_guard lock(mu);
        got[i] = std::move(r);
        order.push_back(i);
        cv.notify_all();
      };
    }
    bool Wait(size_t n) {
      std::unique_lock lock(mu);
      return cv.wait_for(lock, std::chrono::seconds(30), [&] { return got.size() >= n; });
    }
    size_t Count() {
      std::lock_guard lock(mu);
      return got.size();
    }
  };

  void Open(Options options = {}) {
    db_ = OpenOrDie(dir_.path(), options);
    ASSERT_TRUE(db_);
    ASSERT_TRUE(db_->CreateCollection("c").ok());
  }
  // Options whose before_group_commit holds groups at gate_ until it opens.
  Options Gated() {
    Options options;
    options.before_group_commit = [this](std::span<const Transaction* const>) { gate_.Hold(); };
    return options;
  }
  // A put of `key` whose key and value live as long as the test (a queued transaction
  // views them until it is answered).
  const Transaction& Put(const std::string& key, std::vector<Condition> cond = {}) {
    std::lock_guard lock(held_mu_);
    strings_.push_back(key);
    std::string_view k = strings_.back();
    strings_.push_back(Doc(R"({"k": ")" + key + R"("})"));
    txns_.push_back(Txn({PutOp{"c", k, strings_.back()}}, std::move(cond)));
    return txns_.back();
  }
  // The key commit `commit` put, from the change log.
  std::string KeyOf(uint64_t commit) {
    std::vector<LogEntry> log;
    if (!db_->ReadLog(commit, 1, size_t{1} << 20, &log).ok() || log.empty() ||
        log[0].commit != commit || log[0].changes.size() != 1) {
      return "?";
    }
    return log[0].changes[0].key;
  }

  // Declared before db_, so that they outlive it: a test that fails early leaves writes
  // whose callbacks and views the engine's destructor still reaches.
  TempDir dir_;
  Gate gate_;
  Results results_;
  std::mutex held_mu_;
  std::deque<Transaction> txns_;
  std::deque<std::string> strings_;
  std::unique_ptr<Engine> db_;
};

TEST_F(SubmitTest, ConcurrentExecuteCallsShareCommitsAndEachGetsItsOwnResult) {
  // 8 threads, 60 writes each (every 6th refused by its condition). The first group is
  // held until every thread has called Execute, so the others queue behind it and commit
  // together: fewer LMDB commits than commits. Each call gets its own outcome: the commit
  // it is told is the one that put its key.
  std::atomic<int> arrived{0};
  constexpr int kThreads = 8, kEach = 60;
  Options options;
  options.before_group_commit = [&](std::span<const Transaction* const>) {
    if (gate_.open) return;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (arrived < kThreads && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let them queue
    gate_.open = true;
  };
  Open(options);
  size_t largest = 0;
  std::mutex largest_mu;
  db_->SetCommitListener([&](const Engine::GroupCommitted& g) {
    std::lock_guard lock(largest_mu);
    largest = std::max(largest, g.transactions);
  });
  EngineStats s0 = db_->Stats();
  std::vector<std::vector<std::pair<uint64_t, std::string>>> commits(kThreads);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; i++) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        bool refuse = i % 6 == 5;
        std::vector<Condition> cond;
        if (refuse) cond.push_back({Condition::kPresent, "c", "nope"});
        const Transaction& txn = Put(key, cond);
        if (i == 0) arrived++;
        TxnResult r = db_->Execute(txn);
        if (refuse) {
          wrong += r.status.code() != Code::kConditionFailed || r.commit != 0;
        } else if (!r.status.ok()) {
          wrong++;
        } else {
          commits[t].emplace_back(r.commit, key);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EngineStats s1 = db_->Stats();
  const uint64_t written = kThreads * (kEach - kEach / 6);
  EXPECT_EQ(s1.commits - s0.commits, written);
  std::printf("%llu commits in %llu LMDB commits from %d threads, largest group %zu\n",
              (unsigned long long)(s1.commits - s0.commits),
              (unsigned long long)(s1.group_commits - s0.group_commits), kThreads, largest);
  EXPECT_GE(largest, 2u) << "the writes queued behind the held group did not share a commit";
  EXPECT_LT(s1.group_commits - s0.group_commits, written);
  std::vector<uint64_t> all;
  for (const auto& c : commits) {
    for (const auto& [commit, key] : c) {
      EXPECT_EQ(KeyOf(commit), key) << "a caller was told another's commit";
      all.push_back(commit);
    }
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), written);
  for (size_t i = 0; i < all.size(); i++) ASSERT_EQ(all[i], s0.last_commit + 1 + i);
}

TEST_F(SubmitTest, SubmittedWritesAreAnsweredInOrderAndShareCommits) {
  Open(Gated());
  std::atomic<size_t> groups{0}, grouped{0};
  db_->SetCommitListener([&](const Engine::GroupCommitted& g) {
    groups++;
    grouped += g.transactions;
  });
  constexpr int kWrites = 2000;
  uint64_t base = db_->LastCommit();
  for (int i = 0; i < kWrites; i++) {
    std::vector<Condition> cond;
    if (i % 10 == 9) cond.push_back({Condition::kPresent, "c", "nope"});  // refused alone
    db_->Submit(Put("k" + std::to_string(i), cond), results_.At(i));
    if (i == 0) {
      ASSERT_TRUE(gate_.WaitHeld());  // the rest queue behind the first
    }
  }
  gate_.Open();
  ASSERT_TRUE(results_.Wait(kWrites));
  // Answered in submission order; the accepted ones numbered in that order, no gaps.
  std::lock_guard lock(results_.mu);
  EXPECT_TRUE(std::is_sorted(results_.order.begin(), results_.order.end()));
  uint64_t next = base + 1;
  for (int i = 0; i < kWrites; i++) {
    const TxnResult& r = results_.got[i];
    if (i % 10 == 9) {
      EXPECT_EQ(r.status.code(), Code::kConditionFailed) << i;
    } else {
      ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.ToString();
      EXPECT_EQ(r.commit, next++) << i;
    }
  }
  EXPECT_EQ(db_->LastCommit(), next - 1);
  EXPECT_EQ(grouped.load(), size_t(kWrites));
  // One held, then the 1,999 queued behind it in groups of at most 1,024.
  EXPECT_EQ(groups.load(), 3u);
}

TEST_F(SubmitTest, CatalogChangesRunInQueueOrderBetweenTransactions) {
  Open();
  std::string doc = Doc(R"({"a": 1})");
  Transaction before = Txn({PutOp{"c2", "k", doc}});
  Transaction after = Txn({PutOp{"c2", "k", doc}});
  db_->Submit(before, results_.At(0));
  db_->SubmitCatalog([](Engine& e) { return e.CreateCollection("c2"); }, results_.At(1));
  db_->Submit(after, results_.At(2));
  // A catalog change that writes a transaction of its own (as cairnd's user changes do)
  // runs it in its own turn instead of waiting behind itself.
  std::string doc2 = Doc(R"({"b": 2})");
  db_->SubmitCatalog(
      [&](Engine& e) {
        Status s = e.CreateCollection("c3");
        if (!s.ok()) return s;
        return e.Execute(Txn({PutOp{"c3", "own", doc2}})).status;
      },
      results_.At(3));
  ASSERT_TRUE(results_.Wait(4));
  std::lock_guard lock(results_.mu);
  EXPECT_EQ(results_.got[0].status.code(), Code::kUnknownName) << "ran before the collection";
  ASSERT_TRUE(results_.got[1].status.ok()) << results_.got[1].status.ToString();
  ASSERT_TRUE(results_.got[2].status.ok()) << results_.got[2].status.ToString();
  EXPECT_EQ(results_.got[1].commit + 1, results_.got[2].commit);
  ASSERT_TRUE(results_.got[3].status.ok()) << results_.got[3].status.ToString();
  EXPECT_EQ(results_.got[3].commit, results_.got[2].commit + 2) << "the collection, then its put";
}

TEST_F(SubmitTest, WritesFromCallbacksAndTheListenerRunInTheirTurn) {
  Open();
  std::atomic<int> listener_writes{0};
  const Transaction& from_listener = Put("from-listener");
  db_->SetCommitListener([&](const Engine::GroupCommitted&) {
    if (listener_writes++ == 0) {
      EXPECT_TRUE(db_->Execute(from_listener).status.ok());
    }
  });
  const Transaction& first = Put("first");
  const Transaction& from_callback = Put("from-callback");
  std::atomic<bool> callback_wrote{false};
  db_->Submit(first, [&](TxnResult r) {
    EXPECT_TRUE(r.status.ok());
    callback_wrote = db_->Execute(from_callback).status.ok();
    results_.At(0)(std::move(r));
  });
  ASSERT_TRUE(results_.Wait(1)) << "a write from inside the turn waited behind itself";
  EXPECT_TRUE(callback_wrote.load());
  // Both ran; later writes go on.
  EXPECT_TRUE(db_->Execute(Put("after")).status.ok());
  auto read = db_->BeginRead();
  ASSERT_TRUE(read.ok());
  for (const char* key : {"first", "from-listener", "from-callback", "after"}) {
    RecordView v;
    bool found = false;
    EXPECT_TRUE(read->Get("c", key, &v, &found).ok());
    EXPECT_TRUE(found) << key;
  }
}

TEST_F(SubmitTest, AnEmptyCallbackOrChangeDoesNotStallTheQueue) {
  Open();
  db_->Submit(Put("fire-and-forget"), {});
  EXPECT_TRUE(db_->Execute(Put("next")).status.ok()) << "returned: the queue moved on";
  db_->SubmitCatalog({}, results_.At(0));
  ASSERT_EQ(results_.Count(), 1u);
  EXPECT_EQ(results_.got[0].status.code(), Code::kBadRequest);
  EXPECT_TRUE(db_->Execute(Put("last")).status.ok());
}

TEST_F(SubmitTest, SubmitAndExecuteFromManyThreadsKeepEachSubmittersOrder) {
  Open();
  constexpr int kThreads = 6, kEach = 150;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; i++) {
        const Transaction& txn = Put(std::to_string(t) + "-" + std::to_string(i));
        if (t % 2 == 0) {
          bad += !db_->Execute(txn).status.ok();
        } else {
          db_->Submit(txn, results_.At(t * kEach + i));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(results_.Wait(size_t(kThreads / 2 * kEach)));
  EXPECT_EQ(bad.load(), 0);
  std::lock_guard lock(results_.mu);
  std::map<int, uint64_t> last_commit;  // per submitting thread
  for (int i : results_.order) {
    const TxnResult& r = results_.got[i];
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.ToString();
    int t = i / kEach;
    EXPECT_GT(r.commit, last_commit[t]) << "thread " << t << "'s writes answered out of order";
    last_commit[t] = r.commit;
  }
  EXPECT_EQ(db_->Stats().commits, uint64_t(kThreads * kEach) + 1);  // + the collection
}

TEST_F(SubmitTest, StopWritesRunsWhatIsQueuedThenRefuses) {
  Open();
  for (int i = 0; i < 200; i++) db_->Submit(Put("k" + std::to_string(i)), results_.At(i));
  db_->StopWrites();
  ASSERT_EQ(results_.Count(), 200u) << "StopWrites returned before the queue ran";
  {
    std::lock_guard lock(results_.mu);
    for (auto& [i, r] : results_.got) EXPECT_TRUE(r.status.ok()) << i;
  }
  const Transaction& late = Put("late");
  db_->Submit(late, results_.At(1000));
  ASSERT_EQ(results_.Count(), 201u) << "answered at once";
  EXPECT_EQ(results_.got[1000].status.code(), Code::kUnavailable);
  EXPECT_EQ(db_->Execute(late).status.code(), Code::kUnavailable);
  auto read = db_->BeginRead();  // reads go on
  ASSERT_TRUE(read.ok());
  RecordView v;
  bool found = false;
  EXPECT_TRUE(read->Get("c", "k199", &v, &found).ok());
  EXPECT_TRUE(found);
}

TEST_F(SubmitTest, StopWritesWaitsForWritesAnExecuteCallerLeads) {
  // The writer thread's first group is held; an Execute caller queues behind it, then 50
  // submitted writes behind that, whose callbacks are slow. When the gate opens, the
  // Execute caller leads them all (its group is everything queued behind it) and runs
  // their callbacks on its thread after they left the queue. StopWrites must wait for
  // those callbacks, not only for the queue to be empty.
  Open(Gated());
  db_->Submit(Put("first"), results_.At(100));
  ASSERT_TRUE(gate_.WaitHeld());
  const Transaction& led = Put("led");
  std::thread leader([&] { EXPECT_TRUE(db_->Execute(led).status.ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // it queues first
  for (int i = 0; i < 50; i++) {
    db_->Submit(Put("s" + std::to_string(i)), [this, i](TxnResult r) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      results_.At(i)(std::move(r));
    });
  }
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    db_->StopWrites();
    stopped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(stopped.load()) << "StopWrites returned while writes were queued";
  gate_.Open();
  stopper.join();
  EXPECT_EQ(results_.Count(), 51u) << "StopWrites returned before every queued write was answered";
  leader.join();
  std::lock_guard lock(results_.mu);
  for (auto& [i, r] : results_.got) EXPECT_TRUE(r.status.ok()) << i << ": " << r.status.ToString();
}

TEST_F(SubmitTest, AMixOfEveryKindOfWriteFromManyThreadsIsAllAnswered) {
  // 8 threads for about two seconds, each choosing at random: Execute, Submit, or a
  // catalog change, with groups of at most 3 so that leadership changes hands often.
  // Every write must be answered (a lost wake-up would leave one waiting: the test
  // waits at most 30 s for them), each submitter's in its order.
  Options options;
  options.max_group_commit = 3;
  Open(options);
  constexpr int kThreads = 8;
  std::atomic<int> submitted{0}, executed{0}, bad{0};
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng{uint32_t(t)};
      for (int i = 0; std::chrono::steady_clock::now() < until && i < 20000; i++) {
        int index = t * 20000 + i;
        switch (rng() % 8) {
          case 0:
            submitted++;
            db_->SubmitCatalog(
                [t, i](Engine& e) {
                  return e.CreateCollection("x" + std::to_string(t) + "_" + std::to_string(i));
                },
                results_.At(index));
            break;
          case 1:
          case 2:
          case 3:
            executed++;
            bad += !db_->Execute(Put(std::to_string(index))).status.ok();
            break;
          default:
            submitted++;
            db_->Submit(Put(std::to_string(index)), results_.At(index));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(results_.Wait(size_t(submitted.load())))
      << results_.Count() << " of " << submitted.load() << " submitted writes answered";
  EXPECT_EQ(bad.load(), 0);
  std::lock_guard lock(results_.mu);
  std::map<int, uint64_t> last;  // per thread: its answers come in its order
  for (int index : results_.order) {
    const TxnResult& r = results_.got[index];
    EXPECT_TRUE(r.status.ok()) << index << ": " << r.status.ToString();
    int t = index / 20000;
    EXPECT_GT(r.commit, last[t]) << "thread " << t;
    last[t] = r.commit;
  }
  std::printf("%d submitted, %d executed\n", submitted.load(), executed.load());
}

TEST_F(SubmitTest, AGroupThatThrowsIsAnsweredInternalAndTheEngineGoesOn) {
  // A group of three, held until all are queued, one of them the one the hook throws on:
  // all three are answered kInternal (the group as a whole failed), the listener hears why
  // once, nothing was written, and the next writes commit.
  Options options;
  options.before_group_commit = [this](std::span<const Transaction* const> txns) {
    gate_.Hold();
    for (const Transaction* t : txns) {
      if (t->idempotency_key == "boom") throw std::runtime_error("injected");
    }
  };
  Open(options);
  std::vector<std::string> failures;
  std::mutex failures_mu;
  db_->SetCommitListener([&](const Engine::GroupCommitted& g) {
    std::lock_guard lock(failures_mu);
    if (!g.failure.empty()) failures.emplace_back(g.failure);
  });
  db_->Submit(Put("first"), results_.At(0));  // held alone
  ASSERT_TRUE(gate_.WaitHeld());
  Transaction& boom = txns_.emplace_back(Put("boom"));
  boom.idempotency_key = "boom";
  db_->Submit(Put("innocent-1"), results_.At(1));
  db_->Submit(boom, results_.At(2));
  db_->Submit(Put("innocent-2"), results_.At(3));
  gate_.Open();
  ASSERT_TRUE(results_.Wait(4));
  {
    std::lock_guard lock(results_.mu);
    EXPECT_TRUE(results_.got[0].status.ok());
    for (int i : {1, 2, 3}) {
      EXPECT_EQ(results_.got[i].status.code(), Code::kInternal) << i;
      EXPECT_NE(results_.got[i].status.message().find("may or may not"), std::string::npos);
    }
  }
  {
    std::lock_guard lock(failures_mu);
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0], "injected");
  }
  auto read = db_->BeginRead();
  ASSERT_TRUE(read.ok());
  RecordView v;
  bool found = true;
  EXPECT_TRUE(read->Get("c", "innocent-1", &v, &found).ok());
  EXPECT_FALSE(found) << "the hook throws before the group runs";
  EXPECT_TRUE(db_->Execute(Put("after")).status.ok());
  EXPECT_EQ(db_->Execute(boom).status.code(), Code::kInternal) << "Execute's groups too";
}

TEST_F(GroupCommitTest, BatchOfOnlyFailuresOrReadsCommitsNothing) {
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"c", "k", D(R"({"email": "k@"})")}})).status.ok());
  const uint64_t base = db_->LastCommit();
  const EngineStats s0 = db_->Stats();
  auto unchanged = [&](const char* what) {
    EXPECT_EQ(db_->LastCommit(), base) << what;
    EngineStats s = db_->Stats();
    EXPECT_EQ(s.commits, s0.commits) << what;
    EXPECT_EQ(s.group_commits, s0.group_commits) << what;
    EXPECT_EQ(LogFrom(base + 1), "") << what;
  };

  std::vector<Transaction> failures;
  failures.push_back(Txn({PutOp{"c", "x", D("{}")}}, {{Condition::kAbsent, "c", "k"}}));
  failures.push_back(Txn({PutOp{"c", "k", D("{}"), ValueKind::kDocument, PutMode::kInsert}}));
  failures.push_back(Txn({PutOp{"c", "y", D(R"({"email": "k@"})")}}));
  EXPECT_EQ(Outcomes(Batch(failures)), "condition failed already exists unique violation");
  unchanged("failures");

  std::vector<Transaction> reads;
  reads.push_back(Txn({GetOp{"c", "k"}}));
  reads.push_back(Txn({ScanOp{ScanSpec{.collection = "c"}}, CountOp{ScanSpec{.collection = "c"}}}));
  reads.push_back(Txn({DeleteOp{"c", "not-there"}}));  // a write op that writes nothing
  std::vector<TxnResult> r = Batch(reads);
  EXPECT_EQ(Outcomes(r), "ok ok ok");
  ASSERT_EQ(r[1].results.size(), 2u);
  EXPECT_EQ(r[1].results[0].records.size(), 1u);
  EXPECT_EQ(r[1].results[1].count, 1u);
  EXPECT_FALSE(r[2].results.at(0).found);
  unchanged("reads");

  EXPECT_TRUE(db_->ExecuteBatch({}).empty());
  unchanged("empty batch");

  // No commit number was used up.
  EXPECT_EQ(db_->Execute(Txn({PutOp{"c", "z", D("{}")}})).commit, base + 1);
  EXPECT_EQ(State().substr(0, 2), "k@");
}

TEST(GroupCommitConcurrencyTest, ConcurrentBatchesAndSnapshotReaders) {
  constexpr int kWriters = 4;
  constexpr int kReaders = 2;
  constexpr int kBatches = 200;
  TempDir dir;
  Options o;
  o.durability = Durability::kNoSync;
  o.flush_interval = std::chrono::hours(1);
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  ASSERT_TRUE(db->CreateIndex("c", {"by_t", {"t"}}).ok());
  const uint64_t base = db->LastCommit();
  const EngineStats s0 = db->Stats();

  std::atomic<int> writers_left{kWriters};
  std::vector<std::string> errors(kWriters + kReaders);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; t++) {
    threads.emplace_back([&, t] {
      const std::string tag = "w" + std::to_string(t) + "-";
      const std::string counter = "counter-" + std::to_string(t);
      std::string doc = Doc("{\"t\": " + std::to_string(t) + "}");
      uint64_t counter_version = 0;
      for (int i = 0; i < kBatches && errors[t].empty(); i++) {
        // Two inserts, a failing insert (it sees the first), and a counter update that
        // holds only if the thread's previous batch is what it thinks.
        std::string a = tag + std::to_string(i) + "a", b = tag + std::to_string(i) + "b";
        std::string n = Doc("{\"n\": " + std::to_string(i) + "}");
        Condition cond = i == 0
                             ? Condition{Condition::kAbsent, "c", counter}
                             : Condition{Condition::kVersionEquals, "c", counter, counter_version};
        std::vector<Transaction> txns;
        txns.push_back(Txn({PutOp{"c", a, doc, ValueKind::kDocument, PutMode::kInsert}}));
        txns.push_back(Txn({PutOp{"c", b, doc, ValueKind::kDocument, PutMode::kInsert}}));
        txns.push_back(Txn({PutOp{"c", a, doc, ValueKind::kDocument, PutMode::kInsert}}));
        txns.push_back(Txn({PutOp{"c", counter, n}}, {cond}));
        std::vector<const Transaction*> ptrs;
        for (const Transaction& x : txns) ptrs.push_back(&x);
        std::vector<TxnResult> r = db->ExecuteBatch(ptrs);
        uint64_t c = r.size() == 4 ? r[0].commit : 0;
        if (r.size() != 4 || !r[0].status.ok() || !r[1].status.ok() ||
            r[2].status.code() != Code::kAlreadyExists || !r[3].status.ok() || c == 0 ||
            r[1].commit != c + 1 || r[2].commit != 0 || r[3].commit != c + 2) {
          errors[t] = "batch " + std::to_string(i) + " of writer " + std::to_string(t) +
                      " did not commit as expected";
        } else {
          counter_version = r[3].commit;
        }
      }
      writers_left--;
    });
  }
  for (int t = 0; t < kReaders; t++) {
    threads.emplace_back([&, t] {
      std::string& error = errors[kWriters + t];
      uint64_t last_seen = 0;
      int snapshots = 0;
      while (error.empty() && (writers_left > 0 || snapshots < 5)) {
        snapshots++;
        auto read = db->BeginRead();
        if (!read.ok()) {
          error = "BeginRead: " + read.status().ToString();
          break;
        }
        if (read->commit() < last_seen) error = "snapshots went back in time";
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // let writers run too
        last_seen = read->commit();
        // A batch is all or nothing: each writer's records and its counter agree.
        int keys[kWriters] = {};
        std::string token;
        Status s = read->Scan(
            {.collection = "c"},
            [&](const RecordView& rv) {
              if (rv.key.starts_with("w")) keys[rv.key[1] - '0']++;
            },
            &token);
        if (!s.ok()) error = "scan: " + s.ToString();
        for (int w = 0; w < kWriters && error.empty(); w++) {
          std::string key = "counter-" + std::to_string(w);
          RecordView rv;
          bool found = false;
          if (!read->Get("c", key, &rv, &found).ok()) error = "get failed";
          std::string json = found ? Json(rv.value) : "";  // {"n":<last batch>}
          int batches = found ? std::stoi(json.substr(json.find(':') + 1)) + 1 : 0;
          if (keys[w] != 2 * batches) {
            error = "writer " + std::to_string(w) + ": " + std::to_string(keys[w]) +
                    " records but " + std::to_string(batches) + " batches in one snapshot";
          }
          Result<uint64_t> n =
              read->Count(QuerySpec{.collection = "c", .index = "by_t", .equal = {int64_t{w}}});
          if (!n.ok() || *n != uint64_t(keys[w])) {
            error = "index by_t disagrees with the records for writer " + std::to_string(w);
          }
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");

  const uint64_t total = uint64_t(kWriters) * kBatches;
  EXPECT_EQ(db->LastCommit(), base + 3 * total);
  EngineStats s = db->Stats();
  EXPECT_EQ(s.commits, s0.commits + 3 * total);
  EXPECT_EQ(s.group_commits, s0.group_commits + total);
  TxnResult count = db->Execute(Txn({CountOp{ScanSpec{.collection = "c"}}}));
  ASSERT_TRUE(count.status.ok());
  EXPECT_EQ(count.results[0].count, 2 * total + kWriters);
  std::vector<LogEntry> log;
  ASSERT_TRUE(db->ReadLog(base + 1, 100000, size_t{1} << 30, &log).ok());
  ASSERT_EQ(log.size(), 3 * total);
  for (size_t i = 0; i < log.size(); i++) ASSERT_EQ(log[i].commit, base + 1 + i);
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
  EXPECT_EQ(v.records, 2 * total + kWriters);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

using testing::Doc;
using testing::OpenOrDie;
using testing::TempDir;

TEST(IdempotencyTest, RetryWithTheSameKeyReturnsTheFirstResultAndWritesNothing) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d1 = Doc(R"({"n": 1})"), d2 = Doc(R"({"n": 2})");
  Transaction insert;
  insert.ops = {PutOp{"c", "k", d1, ValueKind::kDocument, PutMode::kInsert}, GetOp{"c", "k"}};
  insert.idempotency_key = "retry-me-0001";
  TxnResult first = db->Execute(insert);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_FALSE(first.replayed);
  uint64_t last = db->LastCommit();

  // The same insert again would fail (the key exists); with its key it gets the first result.
  TxnResult again = db->Execute(insert);
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.commit, first.commit);
  ASSERT_EQ(again.results.size(), 2u);
  EXPECT_EQ(again.results[0].version, first.results[0].version);
  EXPECT_EQ(again.results[1].records, first.results[1].records);
  EXPECT_EQ(db->LastCommit(), last) << "a replay commits nothing";

  // In a batch, next to the original: still applied once.
  Transaction other;
  other.ops = {PutOp{"c", "k2", d2}};
  other.idempotency_key = "retry-me-0002";
  std::vector<const Transaction*> batch = {&other, &insert, &other};
  auto results = db->ExecuteBatch(batch);
  EXPECT_FALSE(results[0].replayed);
  EXPECT_TRUE(results[1].replayed);
  EXPECT_TRUE(results[2].replayed);
  EXPECT_EQ(results[2].commit, results[0].commit);
  EXPECT_EQ(db->LastCommit(), last + 1);
  EXPECT_EQ(db->Stats().replays, 3u);

  // Survives a reopen.
  db.reset();
  db = OpenOrDie(dir.path());
  EXPECT_TRUE(db->Execute(insert).replayed);
  EXPECT_TRUE(db->Verify().ok());
}

// Many keyed transactions in one batch, keys repeating: each key applies once, at its
// first transaction that succeeds; a failed one leaves its key to the next that carries it.
TEST(IdempotencyTest, KeysRepeatedWithinABatchApplyOnceEach) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  constexpr int kTxns = 300, kKeys = 40;
  std::vector<std::string> keys, rec;
  for (int i = 0; i < kTxns; i++) {
    keys.push_back("key-" + std::to_string(i % kKeys));
    rec.push_back("r" + std::to_string(i));
  }
  std::vector<Transaction> txns(kTxns);
  std::vector<const Transaction*> batch;
  for (int i = 0; i < kTxns; i++) {
    txns[i].ops = {PutOp{"c", rec[i], d}};
    // The first transaction of keys 0-9 fails (a condition on a record nobody writes).
    if (i < 10) txns[i].conditions = {{Condition::kPresent, "c", "missing"}};
    txns[i].idempotency_key = keys[i];
    batch.push_back(&txns[i]);
  }
  uint64_t before = db->LastCommit();
  auto results = db->ExecuteBatch(batch);
  std::map<std::string, int> first_ok;  // key -> the transaction that applied it
  for (int i = 0; i < kTxns; i++) {
    if (i < 10) {
      EXPECT_EQ(results[i].status.code(), Code::kConditionFailed) << i;
      continue;
    }
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.ToString();
    auto [it, fresh] = first_ok.emplace(keys[i], i);
    EXPECT_EQ(results[i].replayed, !fresh) << i;
    EXPECT_EQ(results[i].commit, results[it->second].commit) << i;
  }
  EXPECT_EQ(first_ok.size(), size_t(kKeys));
  EXPECT_EQ(db->LastCommit(), before + kKeys);
  auto read = db->BeginRead();
  ASSERT_TRUE(read.ok());
  for (int i = 0; i < kTxns; i++) {
    RecordView rv;
    bool found = false;
    ASSERT_TRUE(read->Get("c", rec[i], &rv, &found).ok());
    bool applied = i >= 10 && first_ok[keys[i]] == i;
    EXPECT_EQ(found, applied) << i;
  }
}

TEST(IdempotencyTest, FailedTransactionsAreNotRemembered) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  Transaction t;
  t.conditions = {{Condition::kPresent, "c", "gate"}};
  t.ops = {PutOp{"c", "k", d}};
  t.idempotency_key = "key";
  EXPECT_EQ(db->Execute(t).status.code(), Code::kConditionFailed);
  ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"c", "gate", d}})).status.ok());
  TxnResult r = db->Execute(t);
  EXPECT_TRUE(r.status.ok()) << "a failed attempt leaves the key free";
  EXPECT_FALSE(r.replayed);
  t.idempotency_key = std::string_view("0123456789012345678901234567890123456789012345678901234567890123456789");
  EXPECT_EQ(db->Execute(t).status.code(), Code::kBadRequest);
}

TEST(IdempotencyTest, KeysAreForgottenPastTheCap) {
  TempDir dir;
  Options o;
  o.idempotency_max_keys = 10;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  std::vector<std::string> keys;
  for (int i = 0; i < 100; i++) keys.push_back("idem-" + std::to_string(i));
  for (int i = 0; i < 100; i++) {
    Transaction t;
    t.ops = {PutOp{"c", keys[i], d}};
    t.idempotency_key = keys[i];
    ASSERT_TRUE(db->Execute(t).status.ok());
  }
  EXPECT_LE(db->Stats().idempotency_keys, 12u);
  Transaction recent;
  recent.ops = {PutOp{"c", keys[99], d}};
  recent.idempotency_key = keys[99];
  EXPECT_TRUE(db->Execute(recent).replayed);
  Transaction old;
  old.ops = {PutOp{"c", keys[0], d}};
  old.idempotency_key = keys[0];
  EXPECT_FALSE(db->Execute(old).replayed) << "the oldest keys are forgotten first";
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A full map strikes in the middle of a batch: the transactions that fit commit, the
// others fail alone with kDatabaseFull, and nothing half-written remains.
TEST(GroupCommitFullTest, BatchThatFillsTheMapCommitsWhatFits) {
  testing::TempDir dir;
  Options o;
  o.max_size = 2 << 20;
  auto db = testing::OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  ASSERT_TRUE(db->CreateIndex("c", {"by_n", {"n"}}).ok());
  std::string big(300 << 10, 'x');
  std::vector<std::string> keys, docs;
  for (int i = 0; i < 12; i++) {
    keys.push_back("k" + std::to_string(i));
    docs.push_back(testing::Doc("{\"n\": " + std::to_string(i) + ", \"pad\": \"" + big + "\"}"));
  }
  std::vector<Transaction> txns(12);
  std::vector<const Transaction*> ptrs;
  for (int i = 0; i < 12; i++) {
    txns[i].ops = {PutOp{"c", keys[i], docs[i]}};
    ptrs.push_back(&txns[i]);
  }
  auto results = db->ExecuteBatch(ptrs);
  int ok = 0, full = 0;
  for (const TxnResult& r : results) {
    if (r.status.ok()) {
      ok++;
    } else {
      EXPECT_EQ(r.status.code(), Code::kDatabaseFull) << r.status.ToString();
      full++;
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(full, 0);
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
  TxnResult count = db->Execute(testing::Txn({CountOp{ScanSpec{.collection = "c"}}}));
  EXPECT_EQ(count.results.at(0).count, uint64_t(ok));
  for (int i = 0; i < 12; i++) {
    TxnResult g = db->Execute(testing::Txn({GetOp{"c", keys[i]}}));
    EXPECT_EQ(g.results.at(0).found, results[i].status.ok()) << i;
  }
}

TEST(GroupCommitFullTest, KeyedTransactionsAcrossARestartedBatchAreRememberedOnce) {
  // A full map strikes a transaction running in the batch's top transaction, so the batch
  // starts over with every transaction nested. Keyed transactions before and after it,
  // and a retry of one of them in the same batch, must come out as if run once.
  testing::TempDir dir;
  Options o;
  o.max_size = 2 << 20;
  auto db = testing::OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string small = testing::Doc(R"({"n": 1})");
  std::string big = testing::Doc("{\"pad\": \"" + std::string(300 << 10, 'x') + "\"}");
  std::vector<Transaction> txns;
  std::vector<std::string> keys;
  for (int i = 0; i < 14; i++) keys.push_back("k" + std::to_string(i));
  for (int i = 0; i < 14; i++) {
    Transaction t;
    // Every third transaction is small and keyed; the others big (some will not fit).
    t.ops = {PutOp{"c", keys[size_t(i)], i % 3 == 0 ? small : big}};
    if (i % 3 == 0) t.idempotency_key = keys[size_t(i)];
    txns.push_back(t);
  }
  txns.push_back(txns[0]);  // a retry of the first, in the same batch
  std::vector<const Transaction*> ptrs;
  for (const Transaction& t : txns) ptrs.push_back(&t);
  auto results = db->ExecuteBatch(ptrs);
  int full = 0;
  for (size_t i = 0; i + 1 < results.size(); i++) {
    if (!results[i].status.ok()) {
      EXPECT_EQ(results[i].status.code(), Code::kDatabaseFull);
      full++;
    }
    if (i % 3 == 0) {
      EXPECT_TRUE(results[i].status.ok()) << "small transaction " << i;
    }
    EXPECT_FALSE(results[i].replayed) << i;
  }
  ASSERT_GT(full, 0) << "the map must fill for this test to mean anything";
  EXPECT_TRUE(results.back().replayed);
  EXPECT_EQ(results.back().commit, results[0].commit);
  // Each keyed transaction is remembered with the commit it got.
  for (int i = 0; i < 14; i += 3) {
    TxnResult again = db->Execute(txns[size_t(i)]);
    EXPECT_TRUE(again.replayed) << i;
    EXPECT_EQ(again.commit, results[size_t(i)].commit) << i;
  }
  EXPECT_TRUE(db->Verify().ok());
}

TEST(GroupCommitFullTest, AGroupTooBigForTheRoomLeftCommitsEachTransactionAlone) {
  // Deletes pass admission (they free space), but a group of them touching many leaves
  // needs a new page per leaf until it commits: more than the reserve at the cap. The
  // group's LMDB transaction fails as a whole; each delete then commits alone and fits.
  testing::TempDir dir;
  Options o;
  o.max_size = 2 << 20;
  o.space_reserve = 64 << 10;
  o.log_retention = 10;  // the log does not hold the cap's pages
  auto db = testing::OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string value(1000, 'v');
  auto key = [](int i) {
    char b[16];
    snprintf(b, sizeof b, "k%05d", i);
    return std::string(b);
  };
  int written = 0;
  for (;; written++) {
    TxnResult r = db->Execute(Txn({PutOp{"c", key(written), value, ValueKind::kRaw}}));
    if (!r.status.ok()) {
      ASSERT_EQ(r.status.code(), Code::kDatabaseFull) << r.status.ToString();
      break;
    }
  }
  ASSERT_GT(written, 400);
  std::vector<std::string> keys;  // the operations' views point here
  for (int i = 0; i < written; i += 4) keys.push_back(key(i));
  std::vector<Transaction> txns;
  for (const std::string& k : keys) txns.push_back(Txn({DeleteOp{"c", k}}));
  std::vector<const Transaction*> ptrs;
  for (const Transaction& t : txns) ptrs.push_back(&t);
  uint64_t groups = db->Stats().group_commits;
  auto results = db->ExecuteBatch(ptrs);
  for (size_t i = 0; i < results.size(); i++) {
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.ToString();
    EXPECT_TRUE(results[i].results.at(0).found) << i;
  }
  // One commit each: the group as one did not fit.
  EXPECT_EQ(db->Stats().group_commits - groups, txns.size());
  for (size_t i = 1; i < results.size(); i++) {
    EXPECT_EQ(results[i].commit, results[i - 1].commit + 1);
  }
  TxnResult count = db->Execute(testing::Txn({CountOp{ScanSpec{.collection = "c"}}}));
  EXPECT_EQ(count.results.at(0).count, uint64_t(written) - txns.size());
  std::string k0 = key(0), k1 = key(1);
  TxnResult gone = db->Execute(Txn({GetOp{"c", k0}, GetOp{"c", k1}}));
  EXPECT_FALSE(gone.results.at(0).found);
  EXPECT_TRUE(gone.results.at(1).found);
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

TEST(ChangeLogTest, ACorruptEntryDoesNotKeepTheDatabaseFromOpening) {
  testing::TempDir dir;
  std::string doc = testing::Doc("{}");
  uint64_t corrupt = 0;
  {
    auto db = testing::OpenOrDie(dir.path());
    ASSERT_TRUE(db->CreateCollection("c").ok());
    for (int i = 0; i < 5; i++) {
      std::string record = "k" + std::to_string(i), key = "key" + std::to_string(i);
      Transaction t = testing::Txn({PutOp{"c", record, doc}});  // views of both strings
      t.idempotency_key = key;
      TxnResult r = db->Execute(t);
      ASSERT_TRUE(r.status.ok());
      if (i == 2) corrupt = r.commit;
    }
  }
  // Flip a byte of one entry, as a bad disk would.
  {
    MDB_env* env;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, uint64_t{1} << 30);
    ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0644), 0);
    MDB_txn* txn;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi log;
    ASSERT_EQ(mdb_dbi_open(txn, "log", 0, &log), 0);
    char k[8];
    for (int i = 0; i < 8; i++) k[i] = char(corrupt >> (56 - 8 * i));
    MDB_val key{8, k}, v;
    ASSERT_EQ(mdb_get(txn, log, &key, &v), 0);
    std::string bad(static_cast<const char*>(v.mv_data), v.mv_size);
    bad[bad.size() / 2] ^= 0x5a;
    MDB_val nv{bad.size(), bad.data()};
    ASSERT_EQ(mdb_put(txn, log, &key, &nv, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  auto db = testing::OpenOrDie(dir.path());
  ASSERT_TRUE(db) << "the database opens";
  EXPECT_FALSE(db->Verify().ok()) << "Verify reports the entry";
  // Keys of entries after the corrupt one are still known; the others are forgotten.
  Transaction t4 = testing::Txn({PutOp{"c", "k4", doc}});
  t4.idempotency_key = "key4";
  EXPECT_TRUE(db->Execute(t4).replayed);
  Transaction t1 = testing::Txn({PutOp{"c", "k1", doc}});
  t1.idempotency_key = "key1";
  EXPECT_FALSE(db->Execute(t1).replayed);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

using testing::Doc;
using testing::OpenOrDie;
using testing::TempDir;

Transaction KeyedPut(const std::string& key, const std::string& doc) {
  Transaction t;
  t.ops = {PutOp{"c", key, doc}};
  t.idempotency_key = key;
  return t;
}

TEST(IdempotencyTest, KeysLastAsLongAsTheirChangeLogEntry) {
  // The result is read back from the commit's log entry: once the log drops the entry,
  // the key is forgotten, whatever the key cap.
  TempDir dir;
  Options o;
  o.log_retention = 5;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  std::vector<std::string> keys;
  for (int i = 0; i < 30; i++) keys.push_back("key-" + std::to_string(i));
  for (const std::string& k : keys) ASSERT_TRUE(db->Execute(KeyedPut(k, d)).status.ok());
  EXPECT_LE(db->Stats().idempotency_keys, 5u);
  EXPECT_TRUE(db->Execute(KeyedPut(keys[29], d)).replayed);
  TxnResult old = db->Execute(KeyedPut(keys[0], d));
  EXPECT_TRUE(old.status.ok());
  EXPECT_FALSE(old.replayed) << "its log entry is gone";
}

TEST(IdempotencyTest, KeysAreForgottenPastTheRetentionTime) {
  TempDir dir;
  Options o;
  o.idempotency_retention = std::chrono::seconds(0);
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  ASSERT_TRUE(db->Execute(KeyedPut("a", d)).status.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(db->Execute(KeyedPut("b", d)).status.ok());  // trims what is older than now
  EXPECT_FALSE(db->Execute(KeyedPut("a", d)).replayed);
}

TEST(IdempotencyTest, TheIndexIsRebuiltFromTheLogAtOpen) {
  TempDir dir;
  Options o;
  o.idempotency_max_keys = 50;
  std::string d = Doc(R"({"v": 1})");
  std::vector<uint64_t> commits;
  {
    auto db = OpenOrDie(dir.path(), o);
    ASSERT_TRUE(db->CreateCollection("c").ok());
    for (int i = 0; i < 120; i++) {
      // Some transactions without a key in between.
      if (i % 3 == 0) {
        ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"c", "plain", d}})).status.ok());
      }
      TxnResult r = db->Execute(KeyedPut("k" + std::to_string(i), d));
      ASSERT_TRUE(r.status.ok());
      commits.push_back(r.commit);
    }
  }
  auto db = OpenOrDie(dir.path(), o);
  EXPECT_EQ(db->Stats().idempotency_keys, 50u) << "the newest keys, up to the cap";
  for (int i : {70, 100, 119}) {
    TxnResult r = db->Execute(KeyedPut("k" + std::to_string(i), d));
    EXPECT_TRUE(r.replayed) << i;
    EXPECT_EQ(r.commit, commits[size_t(i)]) << i;
  }
  EXPECT_FALSE(db->Execute(KeyedPut("k10", d)).replayed);
  EXPECT_TRUE(db->Verify().ok());
}

TEST(ChangeLogTest, EntriesCarryTheirCommitTime) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  uint64_t before = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
  ASSERT_TRUE(db->CreateCollection("c").ok());
  ASSERT_TRUE(db->Execute(KeyedPut("a", Doc("{}"))).status.ok());
  uint64_t after = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  std::vector<LogEntry> log;
  ASSERT_TRUE(db->ReadLog(1, 10, 1 << 20, &log).ok());
  ASSERT_EQ(log.size(), 2u);
  for (const LogEntry& e : log) {
    EXPECT_GE(e.time_ms, before);
    EXPECT_LE(e.time_ms, after);
  }
}

}  // namespace
}  // namespace cairn
