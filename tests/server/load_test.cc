// cairnd under load: deep pipelining on one connection (ordering), many
// connections racing on one record (conditional writes), and many concurrent
// writers (group commit, and durability of every acknowledged write).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "server_process.h"

namespace cairn {
namespace {

using flatbuffers::FlatBufferBuilder;
using testing::Connect;
using testing::ErrorText;
using testing::ServerProcess;
using testing::TempDir;
using testing::WireClient;
namespace req = testing::req;

#if defined(__SANITIZE_ADDRESS__)
constexpr int kSlowdown = 5;  // sanitizers: fewer iterations
#else
constexpr int kSlowdown = 1;
#endif

std::string Str(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string(v->begin(), v->end()) : std::string();
}

// The integer field `name` of a document.
int64_t Field(const flatbuffers::Vector<uint8_t>* doc, const char* name) {
  return flexbuffers::GetRoot(doc->data(), doc->size()).AsMap()[name].AsInt64();
}

// Collects failures from several threads; reports at most a few of them.
class Failures {
 public:
  void Add(std::string what) {
    std::lock_guard lock(mu_);
    if (list_.size() < 20) list_.push_back(std::move(what));
    count_++;
  }
  void Report() {
    for (const std::string& f : list_) ADD_FAILURE() << f;
    if (count_ > list_.size()) ADD_FAILURE() << count_ - list_.size() << " more failures";
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> list_;
  size_t count_ = 0;
};

const FlatBufferBuilder& StatsRequest(FlatBufferBuilder& fbb, uint64_t id) {
  fbb.Finish(wire::CreateRequestFrame(fbb, id, wire::Request::GetStats,
                                      wire::CreateGetStats(fbb).Union()));
  return fbb;
}

// --- Ordering on one connection.

// What one pipelined request expects of its response.
struct Expect {
  enum Kind { kPut, kGet, kDelete, kScan, kPing, kPutGet } kind;
  std::string key;
  bool found = false;                   // get, delete, put: the key was present before
  int64_t seq = 0;                      // get: the value the last put before it wrote
  std::map<std::string, int64_t> scan;  // scan: every key present, with its value
  std::string payload;                  // ping
};

TEST(LoadTest, PipelinedRequestsOnOneConnectionTakeEffectAndAnswerInOrder) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), {"--durability", "nosync"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto c = Connect(server.port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "p"))->reply_as_Done());

  // The requests, with the model's prediction for each.
  const int n = 10000 / kSlowdown;
  std::mt19937 rng(42);
  std::vector<uint64_t> ids(n);
  std::iota(ids.begin(), ids.end(), uint64_t{1});
  std::shuffle(ids.begin(), ids.end(), rng);
  for (uint64_t& id : ids) id = id * 7919 + (id % 3) * (uint64_t{1} << 40);  // distinct, unordered
  std::vector<Expect> expect(n);
  std::vector<std::string> frames(n);
  std::map<std::string, int64_t> model;
  for (int i = 0; i < n; i++) {
    Expect& e = expect[i];
    e.key = "k" + std::to_string(rng() % 64);
    auto it = model.find(e.key);
    e.found = it != model.end();
    std::string json = R"({"seq": )" + std::to_string(i) + "}";
    int dice = int(rng() % 100);
    req::TxnBuilder t;
    if (dice < 35) {
      e.kind = Expect::kPut;
      t.Put("p", e.key, json);
      model[e.key] = i;
    } else if (dice < 65) {
      e.kind = Expect::kGet;
      if (e.found) e.seq = it->second;
      t.Get("p", e.key);
    } else if (dice < 75) {
      e.kind = Expect::kDelete;
      t.Delete("p", e.key);
      model.erase(e.key);
    } else if (dice < 82) {
      e.kind = Expect::kScan;
      e.scan = model;
      t.Scan("p");
    } else if (dice < 90) {  // a transaction reads its own write
      e.kind = Expect::kPutGet;
      e.seq = i;
      t.Put("p", e.key, json).Get("p", e.key);
      model[e.key] = i;
    } else {
      e.kind = Expect::kPing;
      e.payload = "ping " + std::to_string(i);
      frames[i] = WireClient::Frame(*req::Ping(ids[i], e.payload));
      continue;
    }
    frames[i] = WireClient::Frame(t.Build(ids[i]));
  }

  // A reader checks the responses while the requests go out without waiting.
  Failures failures;
  int answered = 0;
  std::thread reader([&] {
    std::map<std::string, uint64_t> versions;  // key -> commit of the last acknowledged put
    uint64_t last_commit = 0;
    for (; answered < n; answered++) {
      const int i = answered;
      const Expect& e = expect[i];
      auto r = c->Response(20000);
      if (!r) return failures.Add("no response " + std::to_string(i));
      std::string at = "response " + std::to_string(i) + " (" + e.key + "): ";
      if (r->id() != ids[i]) {
        return failures.Add(at + "id " + std::to_string(r->id()) + ", expected " +
                            std::to_string(ids[i]) + ": out of order");
      }
      if (e.kind == Expect::kPing) {
        if (!r->reply_as_Pong() || Str(r->reply_as_Pong()->payload()) != e.payload) {
          failures.Add(at + "bad pong: " + ErrorText(r));
        }
        continue;
      }
      auto reply = r->reply_as_TxnReply();
      if (!reply) {
        failures.Add(at + ErrorText(r));
        continue;
      }
      auto res = reply->results()->Get(0);
      switch (e.kind) {
        case Expect::kPut:
        case Expect::kPutGet:
        case Expect::kDelete: {
          if (e.kind != Expect::kPutGet && res->found() != e.found) {
            failures.Add(at + "found " + std::to_string(res->found()));
          }
          // Commits of one connection's writes increase in the order sent (a delete of
          // an absent key writes nothing: commit 0).
          bool wrote = e.kind != Expect::kDelete || e.found;
          if (wrote && reply->commit() <= last_commit) {
            failures.Add(at + "commit " + std::to_string(reply->commit()) + " after " +
                         std::to_string(last_commit));
          }
          if (!wrote && reply->commit() != 0) failures.Add(at + "a no-op delete committed");
          if (wrote) last_commit = reply->commit();
          if (e.kind == Expect::kDelete) {
            versions.erase(e.key);
          } else {
            versions[e.key] = reply->commit();
          }
          if (e.kind == Expect::kPutGet) {
            auto got = reply->results()->Get(1);
            if (!got->found() || Field(got->records()->Get(0)->value(), "seq") != e.seq) {
              failures.Add(at + "a transaction did not see its own write");
            }
          }
          break;
        }
        case Expect::kGet: {
          if (res->found() != e.found) {
            failures.Add(at + "found " + std::to_string(res->found()) + ", expected " +
                         std::to_string(e.found));
          } else if (e.found) {
            int64_t seq = Field(res->records()->Get(0)->value(), "seq");
            if (seq != e.seq) {
              failures.Add(at + "saw the put of request " + std::to_string(seq) +
                           ", not the last one before it, " + std::to_string(e.seq));
            }
            if (res->version() != versions[e.key]) {
              failures.Add(at + "version " + std::to_string(res->version()) + ", expected " +
                           std::to_string(versions[e.key]));
            }
          }
          break;
        }
        case Expect::kScan: {
          std::map<std::string, int64_t> got;
          if (res->records()) {
            for (auto rec : *res->records()) got[Str(rec->key())] = Field(rec->value(), "seq");
          }
          if (got != e.scan) {
            failures.Add(at + "scan saw " + std::to_string(got.size()) + " records, expected " +
                         std::to_string(e.scan.size()) + " (or other values)");
          }
          if (res->continuation()) failures.Add(at + "scan of 64 records was paged");
          break;
        }
        case Expect::kPing:
          break;
      }
    }
  });
  // Send in chunks of many frames each: the server sees deep pipelines.
  std::string chunk;
  for (int i = 0; i < n; i++) {
    chunk += frames[i];
    if (chunk.size() > (64 << 10) || i == n - 1) {
      if (!c->SendRaw(chunk)) {
        ADD_FAILURE() << "send failed at request " << i;
        break;
      }
      chunk.clear();
    }
  }
  reader.join();
  failures.Report();
  EXPECT_EQ(answered, n);

  // The final state is the model's.
  req::TxnBuilder scan;
  scan.Scan("p");
  auto r = c->Call(scan.Build(1));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  std::map<std::string, int64_t> final_state;
  auto recs = r->reply_as_TxnReply()->results()->Get(0)->records();
  if (recs) {
    for (auto rec : *recs) final_state[Str(rec->key())] = Field(rec->value(), "seq");
  }
  EXPECT_EQ(final_state, model);
}

// --- Conditional increments from many connections.

TEST(LoadTest, ConditionalIncrementsFromManyConnectionsAddUp) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), {"--durability", "nosync"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto setup = Connect(server.port());
  ASSERT_TRUE(setup->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  req::TxnBuilder init;
  init.Put("c", "counter", R"({"n": 0})");
  ASSERT_TRUE(setup->Call(init.Build(2))->reply_as_TxnReply());

  const int threads = 32, goal = 30 / (kSlowdown > 1 ? 3 : 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  std::atomic<int> successes{0}, conflicts{0};
  Failures failures;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&, t] {
      auto c = std::make_unique<WireClient>(server.port());
      if (!c->Call(*req::Hello(1))) return failures.Add("no handshake");
      uint64_t id = uint64_t(t) << 32;
      for (int done = 0; done < goal && std::chrono::steady_clock::now() < deadline;) {
        req::TxnBuilder get;
        get.Get("c", "counter");
        auto r = c->Call(get.Build(++id));
        if (!r || !r->reply_as_TxnReply()) return failures.Add("get: " + ErrorText(r));
        auto res = r->reply_as_TxnReply()->results()->Get(0);
        if (!res->found()) return failures.Add("the counter vanished");
        uint64_t version = res->version();
        int64_t n = Field(res->records()->Get(0)->value(), "n");
        req::TxnBuilder put;
        put.If(wire::ConditionKind::VersionEquals, "c", "counter", version)
            .Put("c", "counter", R"({"n": )" + std::to_string(n + 1) + "}");
        r = c->Call(put.Build(++id));
        if (r && r->reply_as_TxnReply()) {
          done++;
          successes++;
        } else if (r && r->error() && r->error()->code() == wire::ErrorCode::ConditionFailed) {
          conflicts++;
        } else {
          return failures.Add("put: " + ErrorText(r));
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  failures.Report();

  req::TxnBuilder get;
  get.Get("c", "counter");
  auto r = setup->Call(get.Build(3));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  auto res = r->reply_as_TxnReply()->results()->Get(0);
  ASSERT_TRUE(res->found());
  std::cout << "conditional increments: " << successes << " succeeded, " << conflicts
            << " retried after ConditionFailed\n";
  EXPECT_EQ(Field(res->records()->Get(0)->value(), "n"), successes.load());
  EXPECT_EQ(successes.load(), threads * goal) << "the time limit cut the run short";
  EXPECT_GT(conflicts.load(), 0) << "the connections never raced";
}

// --- Many concurrent writers.

TEST(LoadTest, ConcurrentWritersAreGroupCommittedAndEveryAcknowledgedWriteSurvives) {
  TempDir dir;
  auto server = std::make_unique<ServerProcess>(dir.Sub("data"));
  ASSERT_TRUE(server->ready()) << server->output();
  auto setup = Connect(server->port());
  ASSERT_TRUE(setup->Call(*req::CreateCollection(1, "w"))->reply_as_Done());

  const int writers = 64;
  std::vector<std::atomic<int>> acked(writers);
  std::atomic<bool> stop{false};
  Failures failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; t++) {
    threads.emplace_back([&, t] {
      auto c = std::make_unique<WireClient>(server->port());
      if (!c->Call(*req::Hello(1))) return failures.Add("no handshake");
      for (int i = 0; !stop; i++) {
        char key[32];
        std::snprintf(key, sizeof key, "w%02d-%07d", t, i);
        req::TxnBuilder put;
        put.Put("w", key, R"({"t": )" + std::to_string(t) + R"(, "i": )" + std::to_string(i) + "}");
        auto r = c->Call(put.Build(uint64_t(i) + 1));
        if (!r) return;  // the server is gone
        if (!r->reply_as_TxnReply()) return failures.Add(std::string(key) + ": " + ErrorText(r));
        acked[t] = i + 1;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));

  // Group commit at work: read the batch sizes while the writers run.
  FlatBufferBuilder fbb;
  auto r = setup->Call(StatsRequest(fbb, 2));
  ASSERT_TRUE(r && r->reply_as_Stats()) << ErrorText(r);
  auto stats = r->reply_as_Stats();
  auto batches = stats->batch_sizes();
  ASSERT_TRUE(batches);
  std::map<std::string, uint64_t> counters;
  for (auto counter : *stats->counters()) counters[counter->name()->str()] = counter->value();
  double mean = batches->count() ? double(counters["commits"]) / double(batches->count()) : 0;
  std::cout << "group commit with " << writers << " writers: " << batches->count()
            << " batches, mean " << mean << " transactions, p50 " << batches->p50_us() << ", p99 "
            << batches->p99_us() << ", max " << batches->max_us() << "\n";
  ::testing::Test::RecordProperty("batches", std::to_string(batches->count()));
  ::testing::Test::RecordProperty("batch_mean", std::to_string(mean));
  ::testing::Test::RecordProperty("batch_p50", std::to_string(batches->p50_us()));
  ::testing::Test::RecordProperty("batch_max", std::to_string(batches->max_us()));
  EXPECT_GT(std::max(batches->p99_us(), batches->max_us()), 1.0)
      << "no group commit ever held more than one transaction";

  // Kill the server under load: what it acknowledged must be on disk.
  setup.reset();
  int status = server->Stop(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(status)) << status;
  stop = true;
  for (auto& t : threads) t.join();
  failures.Report();
  int total = 0;
  for (auto& a : acked) total += a;
  std::cout << total << " writes acknowledged before the kill\n";
  ASSERT_GT(total, writers);

  server = std::make_unique<ServerProcess>(dir.Sub("data"));
  ASSERT_TRUE(server->ready()) << server->output();
  auto c = Connect(server->port());
  std::vector<std::vector<int>> present(writers);
  std::string token;
  int pages = 0;
  do {
    req::TxnBuilder scan;
    scan.Scan("w", 0, token);
    r = c->Call(scan.Build(uint64_t(10 + pages)));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    auto res = r->reply_as_TxnReply()->results()->Get(0);
    if (res->records()) {
      for (auto rec : *res->records()) {
        int64_t t = Field(rec->value(), "t"), i = Field(rec->value(), "i");
        ASSERT_TRUE(t >= 0 && t < writers);
        present[size_t(t)].push_back(int(i));
      }
    }
    token = Str(res->continuation());
  } while (!token.empty() && ++pages < 1000);
  for (int t = 0; t < writers; t++) {
    std::vector<int>& got = present[size_t(t)];
    std::sort(got.begin(), got.end());
    // Writes 0..acked-1 are there, and at most the one in flight at the kill beyond them.
    int a = acked[t];
    ASSERT_GE(got.size(), size_t(a)) << "writer " << t << " lost acknowledged writes";
    for (int i = 0; i < int(got.size()); i++) ASSERT_EQ(got[size_t(i)], i) << "writer " << t;
    EXPECT_LE(got.size(), size_t(a) + 1) << "writer " << t;
  }
}

}  // namespace
}  // namespace cairn
