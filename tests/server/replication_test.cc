// Replicas against the real cairnd (docs/replication.md): a replica bootstraps from a
// snapshot, follows the log under a concurrent load and converges (digests equal at the
// same commit) through SIGKILLs of either side, connections cut mid-snapshot and
// mid-stream (tests/support/tcp_proxy.h), an absence past --replica-log-keep; writes that
// wait for replicas; promotion, fencing and divergence; cascading. Every process is on
// loopback and every wait is bounded.
#include <gtest/gtest.h>

#include <set>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "cairn/client/client.h"
#include "command.h"
#include "server_process.h"
#include "tcp_proxy.h"
#include "test_util.h"

namespace cairn {
namespace {

using namespace std::chrono_literals;
using flatbuffers::FlatBufferBuilder;
using testing::Connect;
using testing::ErrorText;
using testing::ServerProcess;
using testing::TcpProxy;
using testing::TempDir;
using testing::WireClient;
namespace req = testing::req;

std::string Addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// The digest of a folder's database, opened read-only beside its server (or after it).
DatabaseDigest DigestOf(const std::string& dir) {
  Options ro;
  ro.read_only = true;
  auto e = Engine::Open(dir, ro);
  EXPECT_TRUE(e.ok()) << dir << ": " << e.status().ToString();
  if (!e.ok()) return {};
  auto d = (*e)->Digest();
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? *d : DatabaseDigest{};
}

struct Node {
  uint64_t last_commit = 0;
  std::map<std::string, uint64_t> counters;
};

// GetStats over protocol 5; nullopt if the node does not answer.
std::optional<Node> StatsOf(uint16_t port) {
  WireClient c(port);
  if (!c.connected()) return std::nullopt;
  auto h = c.Call(*req::Hello(1, 5));
  if (!h || h->error()) return std::nullopt;
  FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 2, wire::Request::GetStats,
                                      wire::CreateGetStats(fbb).Union()));
  auto r = c.Call(fbb);
  if (!r || !r->reply_as_Stats()) return std::nullopt;
  Node n;
  n.last_commit = r->reply_as_Stats()->last_commit();
  for (auto k : *r->reply_as_Stats()->counters()) n.counters[k->name()->str()] = k->value();
  return n;
}

uint64_t LastCommit(uint16_t port) {
  auto n = StatsOf(port);
  return n ? n->last_commit : 0;
}

// Waits until the replica is at the primary's last commit; false after `timeout`.
bool WaitConverged(uint16_t primary, uint16_t replica, std::chrono::milliseconds timeout = 15s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    uint64_t p = LastCommit(primary);
    if (p > 0 && LastCommit(replica) == p) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// The Replicas reply of a node (ListReplicas), copied out.
struct ReplicasView {
  std::string role, primary, error;
  uint64_t epoch = 0, last_commit = 0;
  struct Row {
    std::string name;
    uint64_t applied, lag_commits;
    bool connected;
  };
  std::vector<Row> rows;
};

std::optional<ReplicasView> ListReplicas(uint16_t port, wire::Request kind = wire::Request::ListReplicas,
                                         std::string* error = nullptr) {
  auto c = Connect(port, 5);
  FlatBufferBuilder fbb;
  auto body = kind == wire::Request::Promote ? wire::CreatePromote(fbb).Union()
                                             : wire::CreateListReplicas(fbb).Union();
  fbb.Finish(wire::CreateRequestFrame(fbb, 2, kind, body));
  auto r = c->Call(fbb);
  if (!r || !r->reply_as_Replicas()) {
    if (error) *error = ErrorText(r);
    return std::nullopt;
  }
  auto x = r->reply_as_Replicas();
  ReplicasView v;
  v.role = x->role() ? x->role()->str() : "";
  v.primary = x->primary() ? x->primary()->str() : "";
  v.error = x->error() ? x->error()->str() : "";
  v.epoch = x->epoch();
  v.last_commit = x->last_commit();
  if (x->replicas()) {
    for (auto i : *x->replicas()) {
      v.rows.push_back({i->name()->str(), i->applied(), i->lag_commits(), i->connected()});
    }
  }
  return v;
}

// A node's Digest as of commit `at` without waiting: {digest, commit}; nullopt if it is
// not at `at` (not there yet, or past it).
std::optional<std::pair<uint64_t, uint64_t>> DigestAt(uint16_t port, uint64_t at) {
  auto c = Connect(port, 5);
  FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 2, wire::Request::Digest,
                                      wire::CreateDigest(fbb, at, 0).Union()));
  auto r = c->Call(fbb);
  if (!r || !r->reply_as_DigestReply()) return std::nullopt;
  return std::make_pair(r->reply_as_DigestReply()->digest(), r->reply_as_DigestReply()->commit());
}

// A one-put transaction that waits for `replicas` replicas.
void WaitingPut(FlatBufferBuilder& fbb, uint64_t id, std::string_view key, uint8_t replicas,
                uint32_t timeout_ms) {
  std::string doc = testing::Doc(R"({"n": 1})");
  auto put = wire::CreatePut(fbb, fbb.CreateString("c"), req::Bytes(fbb, key), req::Bytes(fbb, doc),
                             wire::ValueKind::Document, wire::PutMode::Upsert);
  auto op = wire::CreateOperation(fbb, wire::Op::Put, put.Union());
  auto t = wire::CreateTxn(fbb, 0, fbb.CreateVector(&op, 1), 0, replicas, timeout_ms);
  fbb.Finish(wire::CreateRequestFrame(fbb, id, wire::Request::Txn, t.Union()));
}

// The same on a raw connection, answered (so that a test sees the reply's fields).
const wire::TxnReply* WriteWaiting(WireClient& c, uint64_t id, std::string_view key,
                                   uint8_t replicas, uint32_t timeout_ms, std::string* error) {
  FlatBufferBuilder fbb;
  WaitingPut(fbb, id, key, replicas, timeout_ms);
  auto r = c.Call(fbb);
  if (!r || !r->reply_as_TxnReply()) {
    *error = ErrorText(r);
    return nullptr;
  }
  return r->reply_as_TxnReply();
}

// A write load from `threads` connections: puts (an indexed field that changes), deletes,
// and now and then a transaction of several writes, `per_thread` transactions each. Failed
// calls (a primary being killed) are retried on a new connection until `stop`.
class Load {
 public:
  Load(uint16_t port, int threads, int per_thread) : port_(port) {
    for (int t = 0; t < threads; t++) {
      threads_.emplace_back([this, t, per_thread] { Run(t, per_thread); });
    }
  }
  ~Load() { Join(); }
  void Join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  void Stop() { stop_ = true; }
  void SetPort(uint16_t p) { port_ = p; }
  uint64_t done() const { return done_; }
  uint64_t failed() const { return failed_; }

 private:
  void Run(int t, int n) {
    std::mt19937 rng(uint32_t(t * 7919 + 1));
    std::shared_ptr<client::Client> db;
    // Failures are retried, but not for ever: a server that refuses every write (fenced,
    // say) ends the load instead of hanging the test; the test's own checks then fail.
    auto give_up = std::chrono::steady_clock::now() + 60s;
    for (int i = 0; i < n && !stop_ && std::chrono::steady_clock::now() < give_up;) {
      try {
        if (!db) {
          client::ClientOptions o;
          o.address = Addr(port_);
          o.connections = 1;
          o.timeout = 3s;
          o.connect_timeout = 1s;
          db = client::Client::Connect(o);
        }
        std::string key = "k" + std::to_string(t) + "-" + std::to_string(rng() % 400);
        unsigned what = rng() % 10;
        if (what < 6) {
          db->Put("c", key, client::Document::Builder().Set("g", int64_t(rng() % 17)).Set("t", t).Build());
        } else if (what < 8) {
          db->Delete("c", key);
        } else {
          client::Txn txn;
          for (int k = 0; k < 3; k++) {
            txn.Put("c", key + "-" + std::to_string(k),
                    client::Document::Builder().Set("g", int64_t(rng() % 17)).Build());
          }
          txn.Delete("c", "k" + std::to_string(t) + "-" + std::to_string(rng() % 400));
          db->Commit(txn);
        }
        i++;
        done_++;
      } catch (const std::exception&) {
        failed_++;
        db.reset();
        std::this_thread::sleep_for(20ms);
      }
    }
  }

  std::atomic<uint16_t> port_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> done_{0}, failed_{0};
  std::vector<std::thread> threads_;
};

class ReplicationTest : public ::testing::Test {
 protected:
  std::unique_ptr<ServerProcess> StartPrimary(std::vector<std::string> flags = {},
                                              const std::string& name = "primary",
                                              std::string listen = "127.0.0.1:0") {
    flags.insert(flags.end(), {"--durability", "nosync", "--flush-interval", "100"});
    auto s = std::make_unique<ServerProcess>(dir_.Sub(name), flags, listen);
    EXPECT_TRUE(s->ready()) << s->output();
    return s;
  }
  std::unique_ptr<ServerProcess> StartReplica(uint16_t of, const std::string& name = "replica",
                                              std::vector<std::string> flags = {},
                                              std::string listen = "127.0.0.1:0") {
    flags.insert(flags.end(), {"--replica-of", Addr(of), "--durability", "nosync",
                               "--flush-interval", "100", "--replica-name", name});
    auto s = std::make_unique<ServerProcess>(dir_.Sub(name), flags, listen);
    EXPECT_TRUE(s->ready()) << s->output();
    return s;
  }
  void Schema(uint16_t port) {
    auto c = Connect(port, 5);
    ASSERT_TRUE(c->Call(*req::CreateCollection(2, "c"))->reply_as_Done());
    ASSERT_TRUE(c->Call(*req::CreateIndex(3, "c", "by_g", {"g"}, false))->reply_as_Done());
  }
  void ExpectSameData(const std::string& primary, const std::string& replica) {
    DatabaseDigest p = DigestOf(dir_.Sub(primary)), r = DigestOf(dir_.Sub(replica));
    EXPECT_GT(p.commit, 0u);
    EXPECT_EQ(p.commit, r.commit);
    EXPECT_EQ(p.digest, r.digest);
    EXPECT_EQ(p.records, r.records);
    EXPECT_EQ(p.index_entries, r.index_entries);
    EXPECT_EQ(p.collections, r.collections);
  }

  TempDir dir_;
};

// --- Bootstrap, follow, converge.

TEST_F(ReplicationTest, AReplicaBootstrapsFollowsServesReadsAndRefusesWrites) {
  auto primary = StartPrimary();
  Schema(primary->port());
  { Load load(primary->port(), 2, 300); }
  auto replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port())) << replica->output();
  { Load load(primary->port(), 2, 200); }
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port())) << replica->output();
  ExpectSameData("primary", "replica");

  auto stats = StatsOf(replica->port());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counters["replication.replica"], 1u);
  EXPECT_EQ(stats->counters["replication.bootstraps"], 1u);
  EXPECT_GT(stats->counters["replication.applied_batches"], 0u);
  EXPECT_EQ(stats->counters["replication.lag_commits"], 0u);

  // Reads are served, each saying the commit it saw; writes are refused, naming the primary.
  auto c = Connect(replica->port(), 5);
  auto r = c->Call(req::TxnBuilder().CountAll("c").Build(5));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->at(), LastCommit(replica->port()));
  r = c->Call(req::TxnBuilder().Put("c", "x", R"({"g": 1})").Build(6));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::ReadOnly);
  EXPECT_NE(ErrorText(r).find("replica of " + Addr(primary->port())), std::string::npos)
      << ErrorText(r);
  r = c->Call(*req::CreateCollection(7, "d"));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::ReadOnly);

  // The primary lists it; the replica says what it is.
  auto list = ListReplicas(primary->port());
  ASSERT_TRUE(list);
  EXPECT_EQ(list->role, "primary");
  ASSERT_EQ(list->rows.size(), 1u);
  EXPECT_EQ(list->rows[0].name, "replica");
  EXPECT_TRUE(list->rows[0].connected);
  EXPECT_EQ(list->rows[0].applied, LastCommit(primary->port()));
  auto mine = ListReplicas(replica->port());
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->role, "replica");
  EXPECT_EQ(mine->primary, Addr(primary->port()));
  // And a replica's own replica (cascading) follows from its log.
  auto cascade = StartReplica(replica->port(), "cascade");
  { Load load(primary->port(), 2, 100); }
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  ASSERT_TRUE(WaitConverged(primary->port(), cascade->port())) << cascade->output();
  ExpectSameData("primary", "cascade");
}

TEST_F(ReplicationTest, AReplicaOfAnEmptyPrimaryFollowsItFromTheFirstCommit) {
  auto primary = StartPrimary();
  auto replica = StartReplica(primary->port());
  // Nothing to copy: it follows at once (no bootstrap, no restart).
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline &&
         ListReplicas(primary->port())->rows.empty()) {
    std::this_thread::sleep_for(20ms);
  }
  Schema(primary->port());
  { Load load(primary->port(), 2, 100); }
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port())) << replica->output();
  ExpectSameData("primary", "replica");
  auto stats = StatsOf(replica->port());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counters["replication.bootstraps"], 0u);
  EXPECT_EQ(replica->output().find("restarting the server"), std::string::npos);
}

TEST_F(ReplicationTest, ConvergesUnderLoadThroughReplicaAndPrimaryKills) {
  // 8 connections, 8 x 2500 = 20,000 transactions: puts, deletes and multi-write
  // transactions over an index, while the replica is SIGKILLed four times and the
  // primary once.
  auto primary = StartPrimary();
  Schema(primary->port());
  const uint16_t primary_port = primary->port();
  auto replica = StartReplica(primary_port);
  const std::string replica_listen = Addr(replica->port());
  Load load(primary_port, 8, 2500);
  // Kills at points of the load's progress (not of time: the machine's pace varies).
  auto at = [&](uint64_t done) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (load.done() < done && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
  };
  for (int kill = 0; kill < 4; kill++) {
    at(2500 + kill * 3500);
    replica->Stop(SIGKILL);
    std::this_thread::sleep_for(50ms);
    replica = StartReplica(primary_port, "replica", {}, replica_listen);
    ASSERT_TRUE(replica->ready()) << replica->output();
  }
  at(16000);
  primary->Stop(SIGKILL);
  std::this_thread::sleep_for(100ms);
  primary = StartPrimary({}, "primary", Addr(primary_port));
  ASSERT_TRUE(primary->ready());
  load.Join();
  EXPECT_EQ(load.done(), 20'000u);
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port(), 20s)) << replica->output();
  ExpectSameData("primary", "replica");
  auto stats = StatsOf(replica->port());
  ASSERT_TRUE(stats);
  EXPECT_GT(stats->counters["replication.reconnects"], 0u);  // the primary went away once
  // Large batches: far fewer ApplyLog calls than commits.
  EXPECT_GT(stats->counters["replication.applied_commits"], 1000u);
  EXPECT_LT(stats->counters["replication.applied_batches"] * 4,
            stats->counters["replication.applied_commits"]);
}

TEST_F(ReplicationTest, AnApplyDelayGathersCommitsIntoFewerBatches) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto replica = StartReplica(primary->port(), "replica", {"--replica-apply-delay", "40"});
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  auto before = StatsOf(replica->port());
  ASSERT_TRUE(before);
  // One writer, one commit at a time: without a delay each would be a batch of its own.
  auto c = Connect(primary->port(), 5);
  for (int i = 0; i < 200; i++) {
    auto r = c->Call(req::TxnBuilder().Put("c", "d" + std::to_string(i), R"({"g": 1})").Build(10 + i));
    ASSERT_TRUE(r && !r->error()) << ErrorText(r);
  }
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  ExpectSameData("primary", "replica");
  auto after = StatsOf(replica->port());
  ASSERT_TRUE(after);
  uint64_t commits = after->counters["replication.applied_commits"] -
                     before->counters["replication.applied_commits"];
  uint64_t batches = after->counters["replication.applied_batches"] -
                     before->counters["replication.applied_batches"];
  EXPECT_EQ(commits, 200u);
  EXPECT_LE(batches * 4, commits) << batches << " batches";
}

TEST_F(ReplicationTest, RecoversFromConnectionsCutMidSnapshotAndMidStream) {
  auto primary = StartPrimary();
  Schema(primary->port());
  {
    // A database of a few MB, so that the snapshot spans many chunks.
    auto c = Connect(primary->port(), 5);
    std::string big(4000, 'x');
    for (int i = 0; i < 1500; i++) {
      auto r = c->Call(req::TxnBuilder()
                           .Put("c", "big" + std::to_string(i), R"({"g": 1, "pad": ")" + big + "\"}")
                           .Build(10 + i));
      ASSERT_TRUE(r && !r->error()) << ErrorText(r);
    }
  }
  TcpProxy proxy(primary->port());
  proxy.CutAfter(1 << 20);  // the first connections die 1 MiB into the snapshot
  auto replica = StartReplica(proxy.port());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (proxy.cuts() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(proxy.cuts(), 3u);
  EXPECT_EQ(LastCommit(replica->port()), 0u);  // still nothing: every snapshot was cut
  {
    // Meanwhile it has no data to serve: reads say why, writes say where to go.
    auto c = Connect(replica->port(), 5);
    auto r = c->Call(*req::Get(2, "c", "big1"));
    ASSERT_TRUE(r && r->error());
    EXPECT_EQ(r->error()->code(), wire::ErrorCode::Unavailable);
    EXPECT_NE(ErrorText(r).find("bootstrapping"), std::string::npos) << ErrorText(r);
    r = c->Call(req::TxnBuilder().CountAll("c").Build(3));
    ASSERT_TRUE(r && r->error());
    EXPECT_EQ(r->error()->code(), wire::ErrorCode::Unavailable);
  }
  proxy.CutAfter(0);
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port())) << replica->output();
  // Mid-stream: cut the Follow connection while a load runs, several times.
  Load load(primary->port(), 4, 400);
  for (int i = 0; i < 5; i++) {
    std::this_thread::sleep_for(300ms);
    proxy.CutAll();
  }
  load.Join();
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port())) << replica->output();
  ExpectSameData("primary", "replica");
  auto stats = StatsOf(replica->port());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counters["replication.bootstraps"], 1u);
  EXPECT_GE(stats->counters["replication.reconnects"], 3u);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("replica") + "/.bootstrap"));
}

TEST_F(ReplicationTest, AReplicaAwayPastTheLogKeepBootstrapsAgainAndTheLogStaysBounded) {
  // The log keeps 200 commits for replicas; by default (log_retention) it would keep more:
  // make retention small too, so that the hold is what keeps entries.
  auto primary = StartPrimary({"--log-retention", "50", "--replica-log-keep", "200"});
  Schema(primary->port());
  auto replica = StartReplica(primary->port());
  { Load load(primary->port(), 2, 100); }
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  replica->Stop();
  // While it is away, up to 200 commits are held for it ...
  { Load load(primary->port(), 1, 120); }
  auto held = StatsOf(primary->port());
  ASSERT_TRUE(held);
  EXPECT_GT(held->counters["log.hold"], 0u);
  EXPECT_LE(held->counters["log.first"], held->counters["log.hold"]);
  // ... and no more: past the bound the log is trimmed whatever the replica needs.
  { Load load(primary->port(), 2, 600); }
  auto trimmed = StatsOf(primary->port());
  ASSERT_TRUE(trimmed);
  EXPECT_LE(trimmed->last_commit - trimmed->counters["log.first"], 200u + 64u)
      << "log.first " << trimmed->counters["log.first"] << ", last " << trimmed->last_commit;
  replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port())) << replica->output();
  ExpectSameData("primary", "replica");
  auto stats = StatsOf(replica->port());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counters["replication.bootstraps"], 1u);  // again, in this process
  EXPECT_NE(replica->output().find("bootstrapping again"), std::string::npos);
}

TEST_F(ReplicationTest, AReplicaGoneLongerThanTheKeepTimeHoldsNothing) {
  auto primary = StartPrimary({"--replica-keep-seconds", "1"});
  Schema(primary->port());
  auto replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  // The hold follows the replica's acknowledgement, which may come just after it
  // converged.
  std::optional<Node> held;
  for (auto until = std::chrono::steady_clock::now() + 5s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(20ms)) {
    held = StatsOf(primary->port());
    if (held && held->counters["log.hold"] > 0) break;
  }
  ASSERT_TRUE(held);
  EXPECT_GT(held->counters["log.hold"], 0u);
  replica->Stop();
  // Once a second has passed, the registry's next look (at GetStats here, or its timer
  // every 5 s) forgets the replica and lets go of the log.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<Node> now;
  while (std::chrono::steady_clock::now() < deadline) {
    now = StatsOf(primary->port());
    if (now && now->counters["log.hold"] == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(now);
  EXPECT_EQ(now->counters["log.hold"], 0u);
  EXPECT_EQ(now->counters["replicas.known"], 0u);
}

// --- The synchronous acknowledgement.

TEST_F(ReplicationTest, AWriteWaitsForItsReplicasOrTimesOutWithADistinctResult) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  auto c = Connect(primary->port(), 5);
  for (int i = 0; i < 20; i++) {
    std::string error;
    auto t = WriteWaiting(*c, 100 + i, "sync" + std::to_string(i), 1, 5000, &error);
    ASSERT_TRUE(t) << error;
    EXPECT_EQ(t->replicas(), 1);
    EXPECT_FALSE(t->replica_timeout());
    // Answered only once the replica has it: it is there now, the same data as here.
    const uint64_t commit = t->commit();
    auto p = DigestAt(primary->port(), commit), r = DigestAt(replica->port(), commit);
    ASSERT_TRUE(p && r) << "no digest at commit " << commit;
    EXPECT_EQ(p->first, r->first);
    EXPECT_EQ(p->second, commit);
    EXPECT_EQ(r->second, commit);
  }
  // Pipelined: the requests behind a waiting write, a plain write and a read, are answered
  // after it, in order.
  {
    FlatBufferBuilder w;
    WaitingPut(w, 301, "first", 1, 5000);
    ASSERT_TRUE(c->Send(w));
    ASSERT_TRUE(c->Send(req::TxnBuilder().Put("c", "second", R"({"g": 1})").Build(302)));
    ASSERT_TRUE(c->Send(*req::Ping(303)));
    for (uint64_t id : {301u, 302u, 303u}) {
      auto r = c->Response();
      ASSERT_TRUE(r && !r->error()) << ErrorText(r);
      EXPECT_EQ(r->id(), id);
      if (id == 301) {
        EXPECT_EQ(r->reply_as_TxnReply()->replicas(), 1);
      }
    }
  }
  replica->Stop();
  auto started = std::chrono::steady_clock::now();
  std::string error;
  auto t = WriteWaiting(*c, 400, "nobody", 1, 300, &error);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(t) << error;
  EXPECT_TRUE(t->replica_timeout());
  EXPECT_EQ(t->replicas(), 0);
  EXPECT_GT(t->commit(), 0u);  // durable here all the same
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  // Asking for more replicas than exist times out the same way.
  replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  t = WriteWaiting(*c, 401, "two", 2, 200, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_TRUE(t->replica_timeout());
  EXPECT_EQ(t->replicas(), 1);
  auto stats = StatsOf(primary->port());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counters["replicas.sync_timeouts"], 2u);
}

// --- Promotion, fencing, divergence.

// Several replicas of one primary: each follows on its own, the primary lists both, and
// a write may wait for both.
TEST_F(ReplicationTest, TwoReplicasOfOnePrimaryFollowAndAWriteCanWaitForBoth) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto one = StartReplica(primary->port(), "one");
  auto two = StartReplica(primary->port(), "two");
  { Load load(primary->port(), 2, 200); }
  ASSERT_TRUE(WaitConverged(primary->port(), one->port())) << one->output();
  ASSERT_TRUE(WaitConverged(primary->port(), two->port())) << two->output();
  auto c = Connect(primary->port(), 5);
  std::string error;
  auto t = WriteWaiting(*c, 7, "both", 2, 5000, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->replicas(), 2);
  EXPECT_FALSE(t->replica_timeout());
  auto p = DigestAt(primary->port(), t->commit());
  auto a = DigestAt(one->port(), t->commit()), b = DigestAt(two->port(), t->commit());
  ASSERT_TRUE(p && a && b);
  EXPECT_EQ(a->first, p->first);
  EXPECT_EQ(b->first, p->first);
  auto v = ListReplicas(primary->port());
  ASSERT_TRUE(v);
  std::set<std::string> names;
  for (const auto& row : v->rows) {
    EXPECT_TRUE(row.connected) << row.name;
    names.insert(row.name);
  }
  EXPECT_EQ(names, (std::set<std::string>{"one", "two"}));
}

TEST_F(ReplicationTest, PromotionFencesTheOldPrimaryWhichThenFollowsTheNewOne) {
  auto primary = StartPrimary();
  Schema(primary->port());
  const uint16_t old_port = primary->port();
  auto replica = StartReplica(old_port, "replica");
  { Load load(old_port, 2, 200); }
  ASSERT_TRUE(WaitConverged(old_port, replica->port()));

  std::string error;
  auto promoted = ListReplicas(replica->port(), wire::Request::Promote, &error);
  ASSERT_TRUE(promoted) << error;
  EXPECT_EQ(promoted->role, "primary");
  EXPECT_EQ(promoted->epoch, 2u);
  // A primary is promoted once.
  EXPECT_FALSE(ListReplicas(replica->port(), wire::Request::Promote, &error));
  EXPECT_NE(error.find("already a primary"), std::string::npos) << error;
  // The new primary takes writes ...
  {
    auto c = Connect(replica->port(), 5);
    auto r = c->Call(req::TxnBuilder().Put("c", "after", R"({"g": 2})").Build(5));
    ASSERT_TRUE(r && !r->error()) << ErrorText(r);
  }
  // ... and told the old one, which fenced itself and refuses writes.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = StatsOf(old_port);
    if (st && st->counters["fenced"] == 1) break;
    std::this_thread::sleep_for(20ms);
  }
  auto c = Connect(old_port, 5);
  auto r = c->Call(req::TxnBuilder().Put("c", "stale", R"({"g": 3})").Build(6));
  ASSERT_TRUE(r && r->error()) << "the old primary still takes writes";
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::ReadOnly) << ErrorText(r);
  c.reset();

  // Restarted as a replica of the new primary, it follows: its history is a prefix.
  primary->Stop();
  auto follower = StartReplica(replica->port(), "primary", {}, Addr(old_port));
  ASSERT_TRUE(WaitConverged(replica->port(), follower->port())) << follower->output();
  ExpectSameData("replica", "primary");
  auto v = ListReplicas(follower->port());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->epoch, 2u);
  EXPECT_TRUE(v->error.empty()) << v->error;
}

TEST_F(ReplicationTest, AReplicaOfAPromotedReplicaFollowsIntoTheNewEpoch) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto middle = StartReplica(primary->port(), "middle");
  auto leaf = StartReplica(middle->port(), "leaf");
  { Load load(primary->port(), 2, 100); }
  ASSERT_TRUE(WaitConverged(primary->port(), leaf->port())) << leaf->output();
  std::string error;
  ASSERT_TRUE(ListReplicas(middle->port(), wire::Request::Promote, &error)) << error;
  { Load load(middle->port(), 2, 100); }
  ASSERT_TRUE(WaitConverged(middle->port(), leaf->port())) << leaf->output();
  ExpectSameData("middle", "leaf");
  auto v = ListReplicas(leaf->port());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->epoch, 2u);
  EXPECT_TRUE(v->error.empty()) << v->error;
}

TEST_F(ReplicationTest, AnOldPrimaryWithCommitsOfItsOwnRefusesToFollowWithDiverged) {
  auto primary = StartPrimary();
  Schema(primary->port());
  const uint16_t old_port = primary->port();
  auto replica = StartReplica(old_port, "replica");
  { Load load(old_port, 2, 100); }
  ASSERT_TRUE(WaitConverged(old_port, replica->port()));
  // The old primary is away when the replica is promoted: it never hears of epoch 2, and
  // takes writes of its own once back (what a failover must prevent; docs/replication.md).
  primary->Stop();
  std::string error;
  ASSERT_TRUE(ListReplicas(replica->port(), wire::Request::Promote, &error)) << error;
  // The promoted node tries to tell the old primary of its epoch; it must have given up
  // before the old primary is back, or that one fences itself and takes no writes.
  auto told = std::chrono::steady_clock::now() + 10s;
  while (replica->output().find("could not tell the old primary") == std::string::npos &&
         std::chrono::steady_clock::now() < told) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_NE(replica->output().find("could not tell the old primary"), std::string::npos);
  primary = StartPrimary({}, "primary", Addr(old_port));
  {
    Load load(old_port, 1, 20);
    load.Join();
    ASSERT_EQ(load.done(), 20u) << "the old primary took no writes of its own";
  }
  primary->Stop();

  auto follower = StartReplica(replica->port(), "primary", {}, Addr(old_port));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  std::optional<ReplicasView> v;
  while (std::chrono::steady_clock::now() < deadline) {
    v = ListReplicas(follower->port());
    if (v && !v->error.empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(v);
  EXPECT_EQ(v->role, "replica");
  EXPECT_NE(v->error.find("diverged"), std::string::npos) << v->error;
  auto fs = StatsOf(follower->port());
  ASSERT_TRUE(fs);
  EXPECT_EQ(fs->counters["replication.diverged"], 1u);
  EXPECT_NE(follower->output().find("REPLICATION STOPPED"), std::string::npos);
  // It keeps serving reads, and takes no writes.
  auto fc = Connect(follower->port(), 5);
  auto g = fc->Call(req::TxnBuilder().CountAll("c").Build(3));
  ASSERT_TRUE(g && g->reply_as_TxnReply()) << ErrorText(g);
  g = fc->Call(req::TxnBuilder().Put("c", "x", R"({"g": 1})").Build(4));
  ASSERT_TRUE(g && g->error());
  EXPECT_EQ(g->error()->code(), wire::ErrorCode::ReadOnly);
  // The new primary is not fenced by it.
  auto np = StatsOf(replica->port());
  ASSERT_TRUE(np);
  EXPECT_EQ(np->counters["fenced"], 0u);
}

// --- libcairn.

TEST_F(ReplicationTest, LibcairnListsReplicasWaitsForThemAndPromotes) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  client::ClientOptions o;
  o.address = Addr(primary->port());
  auto db = client::Client::Connect(o);
  client::Txn txn;
  txn.Put("c", "k", client::Document::Builder().Set("g", 1).Build()).WaitForReplicas(1, 5s);
  client::TxnResult r = db->Commit(txn);
  EXPECT_EQ(r.replicas, 1);
  EXPECT_FALSE(r.replica_timeout);
  EXPECT_GE(LastCommit(replica->port()), r.commit);
  client::ReplicasInfo info = db->ListReplicas();
  EXPECT_EQ(info.role, "primary");
  EXPECT_EQ(info.epoch, 1u);
  ASSERT_EQ(info.replicas.size(), 1u);
  EXPECT_EQ(info.replicas[0].name, "replica");
  EXPECT_TRUE(info.replicas[0].connected);
  EXPECT_EQ(info.replicas[0].applied, r.commit);
  try {
    db->Promote();
    ADD_FAILURE() << "a primary promoted";
  } catch (const client::Error& e) {
    EXPECT_EQ(e.code(), client::ErrorCode::kBadRequest);
  }
  o.address = Addr(replica->port());
  auto rdb = client::Client::Connect(o);
  try {
    rdb->Put("c", "x", client::Document::Builder().Set("g", 1).Build());
    ADD_FAILURE() << "a replica took a write";
  } catch (const client::Error& e) {
    EXPECT_EQ(e.code(), client::ErrorCode::kReadOnly);
  }
  client::ReplicasInfo p = rdb->Promote();
  EXPECT_EQ(p.role, "primary");
  EXPECT_EQ(p.epoch, 2u);
  EXPECT_GT(rdb->Put("c", "x", client::Document::Builder().Set("g", 1).Build()), r.commit);
}

TEST_F(ReplicationTest, TheCommandLineListsReplicasAndPromotes) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto replica = StartReplica(primary->port());
  ASSERT_TRUE(WaitConverged(primary->port(), replica->port()));
  TempDir scratch;
  auto cairn = [&](uint16_t port, const std::string& args) {
    return testing::RunCommand(std::string(CAIRN_CLI_PATH) + " --addr " + Addr(port) + " " + args,
                               scratch);
  };
  auto table = cairn(primary->port(), "replicas");
  EXPECT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("primary, epoch 1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("LAG_COMMITS"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("replica "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(" yes"), std::string::npos) << table.out;
  auto json = cairn(replica->port(), "replicas --json");
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_NE(json.out.find("\"role\":\"replica\""), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"primary\":\"" + Addr(primary->port()) + "\""), std::string::npos)
      << json.out;
  auto refused = cairn(primary->port(), "promote");
  EXPECT_EQ(refused.code, 2) << refused.out;
  EXPECT_NE(refused.err.find("already a primary"), std::string::npos) << refused.err;
  // A replica's folder is not started as a primary's by mistake: its copy would take
  // writes under its primary's epoch.
  replica->Stop();
  ServerProcess wrong(dir_.Sub("replica"));
  EXPECT_FALSE(wrong.ready());
  EXPECT_NE(wrong.output().find("holds a replica of " + Addr(primary->port())), std::string::npos)
      << wrong.output();
  replica = StartReplica(primary->port(), "replica", {}, Addr(replica->port()));
  auto promoted = cairn(replica->port(), "promote");
  EXPECT_EQ(promoted.code, 0) << promoted.err;
  EXPECT_NE(promoted.out.find("\"role\":\"primary\",\"epoch\":2"), std::string::npos)
      << promoted.out;
  // Once promoted, it starts as a primary (of epoch 2) without --replica-of.
  const uint16_t port = replica->port();
  replica->Stop();
  ServerProcess again(dir_.Sub("replica"), {}, Addr(port));
  ASSERT_TRUE(again.ready()) << again.output();
  auto w = cairn(again.port(), "put c after '{\"g\": 1}'");
  EXPECT_EQ(w.code, 0) << w.err;
}

// --- Bad input.

TEST_F(ReplicationTest, FollowRequestsThatCannotBeServedAreRefusedClearly) {
  auto primary = StartPrimary();
  Schema(primary->port());
  auto follow = [&](uint64_t from, uint64_t epoch, uint64_t epoch_id) {
    auto c = Connect(primary->port(), 5);
    FlatBufferBuilder fbb;
    auto f = wire::CreateFollow(fbb, from, epoch, epoch_id, fbb.CreateString("t"));
    fbb.Finish(wire::CreateRequestFrame(fbb, 9, wire::Request::Follow, f.Union()));
    auto r = c->Call(fbb);
    return r && r->error() ? std::make_pair(r->error()->code(), ErrorText(r))
                           : std::make_pair(wire::ErrorCode::Ok, ErrorText(r));
  };
  EXPECT_EQ(follow(0, 1, 0).first, wire::ErrorCode::BadRequest);
  // Ahead of the primary: not its history.
  auto ahead = follow(1000, 1, 0);
  EXPECT_EQ(ahead.first, wire::ErrorCode::Diverged);
  EXPECT_NE(ahead.second.find("past this server's last commit"), std::string::npos) << ahead.second;
  // A commit made by another epoch.
  auto other = follow(2, 7, 42);
  EXPECT_EQ(other.first, wire::ErrorCode::Diverged);
  EXPECT_NE(other.second.find("epoch 7"), std::string::npos) << other.second;
  // FollowAck outside a stream, and an ack for a commit not sent.
  auto c = Connect(primary->port(), 5);
  FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 3, wire::Request::FollowAck,
                                      wire::CreateFollowAck(fbb, 1, 0).Union()));
  auto r = c->Call(fbb);
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);
  // On a primary, Promote is refused.
  std::string error;
  EXPECT_FALSE(ListReplicas(primary->port(), wire::Request::Promote, &error));
  EXPECT_NE(error.find("already a primary"), std::string::npos) << error;
}

}  // namespace
}  // namespace cairn
