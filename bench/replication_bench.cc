// A replica's write path (Engine::ApplyLog) next to the primary's (ExecuteBatch), in one
// binary: entries applied per second at batches of 1, 64 and 1024 commits, durable
// (kSync: one fsync per batch) and not (kNoSync: the CPU cost), against the primary
// committing the same single-put transactions in group commits of the same size. A
// replica keeps up with its primary when it applies at least as fast as the primary
// commits. Also the time a snapshot holds writes back (StartSnapshot).
//
// Folders live under $CAIRN_BENCH_DIR (default /var/tmp), which must be a real disk for
// the durable numbers to mean anything. Results: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cairn/engine/engine.h"
#include "cairn/protocol/json.h"

namespace cairn {
namespace {

constexpr size_t kPool = 1 << 17;    // entries made once and applied by every run
constexpr uint32_t kKeys = 100'000;  // random keys they put
constexpr std::string_view kCollection = "c";

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "replication_bench: %s\n", what.c_str());
  std::abort();
}
void CheckOk(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

std::string BenchRoot() {
  const char* dir = std::getenv("CAIRN_BENCH_DIR");
  return dir && *dir ? dir : "/var/tmp";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = BenchRoot() + "/cairn-replication-bench-XXXXXX";
    if (!mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::unique_ptr<Engine> Open(const std::string& dir, Options o) {
  auto r = Engine::Open(dir, o);
  CheckOk(r.status(), "open " + dir);
  return std::move(r).value();
}

// ~100-byte documents, as engine_bench writes.
std::vector<std::string> Docs() {
  std::vector<std::string> docs;
  std::mt19937 rng(1);
  for (int i = 0; i < 1024; i++) {
    std::string json = R"({"group": )" + std::to_string(rng() % 1000) + R"(, "score": )" +
                       std::to_string(rng() % 100000) + R"(, "name": "user-)" +
                       std::to_string(rng()) + R"(", "tags": ["a", "b"], "active": true})";
    std::string doc, error;
    if (!JsonToDocument(json, &doc, &error)) Die(error);
    docs.push_back(std::move(doc));
  }
  return docs;
}

// Commits `batch` single-put transactions (random keys, random documents) in one
// ExecuteBatch on `db`.
void PutBatch(Engine* db, size_t batch, std::mt19937& rng, const std::vector<std::string>& docs,
              std::vector<std::string>& keys) {
  std::vector<Transaction> txns(batch);
  std::vector<const Transaction*> ptrs;
  keys.resize(batch);
  for (size_t i = 0; i < batch; i++) {
    keys[i] = "k" + std::to_string(rng() % kKeys);
    txns[i].ops.push_back(PutOp{kCollection, keys[i], docs[rng() % docs.size()]});
    ptrs.push_back(&txns[i]);
  }
  for (const TxnResult& r : db->ExecuteBatch(ptrs)) CheckOk(r.status, "put");
}

// The entries of a primary that created the collection and then committed kPool
// single-put transactions: what every ApplyLog run applies, from commit 1.
const std::vector<RawLogEntry>& Pool() {
  static std::vector<RawLogEntry> pool = [] {
    TempDir dir;
    Options o;
    o.durability = Durability::kNoSync;
    auto db = Open(dir.Sub("primary"), o);
    CheckOk(db->CreateCollection(kCollection), "create");
    std::mt19937 rng(7);
    auto docs = Docs();
    std::vector<std::string> keys;
    while (db->LastCommit() < kPool + 1) PutBatch(db.get(), 1000, rng, docs, keys);
    std::vector<RawLogEntry> out;
    while (out.size() < kPool + 1) {
      CheckOk(db->ReadRawLog(out.size() + 1, kPool, size_t{1} << 30, &out), "read log");
    }
    out.resize(kPool + 1);
    return out;
  }();
  return pool;
}

// --- ApplyLog: each iteration applies range(0) entries in one call; range(1) is 1 for
// kSync. Wall-clock time; items are entries (commits).

void BM_ApplyLog(benchmark::State& state) {
  const auto& pool = Pool();
  const size_t batch = size_t(state.range(0));
  TempDir dir;
  Options o;
  o.replica = true;
  o.durability = state.range(1) ? Durability::kSync : Durability::kNoSync;
  auto replica = Open(dir.Sub("replica"), o);
  CheckOk(replica->ApplyLog(std::span(pool).subspan(0, 1)), "apply the collection");
  size_t next = 1;
  for (auto _ : state) {
    if (next + batch > pool.size()) {
      state.SkipWithError("the pool of entries ran out: fewer iterations");
      break;
    }
    Status s = replica->ApplyLog(std::span(pool).subspan(next, batch));
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    next += batch;
  }
  state.SetItemsProcessed(state.iterations() * int64_t(batch));
}

// The primary's twin: ExecuteBatch of range(0) single-put transactions, each its own
// commit, under the same durability.
void BM_PrimaryCommit(benchmark::State& state) {
  const size_t batch = size_t(state.range(0));
  TempDir dir;
  Options o;
  o.durability = state.range(1) ? Durability::kSync : Durability::kNoSync;
  auto db = Open(dir.Sub("primary"), o);
  CheckOk(db->CreateCollection(kCollection), "create");
  std::mt19937 rng(7);
  auto docs = Docs();
  std::vector<std::string> keys;
  for (auto _ : state) PutBatch(db.get(), batch, rng, docs, keys);
  state.SetItemsProcessed(state.iterations() * int64_t(batch));
}

// Iterations fixed so that every run fits in the pool (durable batches of one are slow).
#define CAIRN_REPLICATION_ARGS(fn)                                                             \
  BENCHMARK(fn)->ArgNames({"batch", "sync"})->Args({1, 1})->Iterations(500)->UseRealTime();    \
  BENCHMARK(fn)->ArgNames({"batch", "sync"})->Args({64, 1})->Iterations(300)->UseRealTime();   \
  BENCHMARK(fn)->ArgNames({"batch", "sync"})->Args({1024, 1})->Iterations(100)->UseRealTime(); \
  BENCHMARK(fn)->ArgNames({"batch", "sync"})->Args({1, 0})->Iterations(20000)->UseRealTime();  \
  BENCHMARK(fn)->ArgNames({"batch", "sync"})->Args({64, 0})->Iterations(1000)->UseRealTime();  \
  BENCHMARK(fn)->ArgNames({"batch", "sync"})->Args({1024, 0})->Iterations(100)->UseRealTime()
CAIRN_REPLICATION_ARGS(BM_ApplyLog);
CAIRN_REPLICATION_ARGS(BM_PrimaryCommit);

// --- StartSnapshot: how long writes wait while a snapshot is taken (it holds the write
// lock until LMDB's copy has begun its read transaction), on a database of range(0)
// records of ~100 bytes. The copy is then stopped unread.

void BM_StartSnapshot(benchmark::State& state) {
  TempDir dir;
  Options o;
  o.durability = Durability::kNoSync;
  auto db = Open(dir.Sub("db"), o);
  CheckOk(db->CreateCollection(kCollection), "create");
  std::mt19937 rng(7);
  auto docs = Docs();
  std::vector<std::string> keys;
  while (db->LastCommit() < uint64_t(state.range(0))) PutBatch(db.get(), 1000, rng, docs, keys);
  for (auto _ : state) {
    auto copy = db->StartSnapshot();
    if (!copy.ok()) {
      state.SkipWithError(copy.status().ToString().c_str());
      break;
    }
    state.PauseTiming();
    copy->reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_StartSnapshot)
    ->ArgName("records")
    ->Arg(1000)
    ->Arg(100'000)
    ->Iterations(50)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cairn

BENCHMARK_MAIN();
