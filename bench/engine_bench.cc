// Benchmarks of the record engine next to raw LMDB doing the same work, in one binary so
// that every engine/raw ratio comes from one run on one machine state.
//
// Each workload has an engine line and a raw_lmdb twin: the twin opens its own LMDB
// environment with the engine's flags and map size, stores records under the same keys
// ([collection id: u32 BE][primary key]) and values ([version][kind][document]) as the
// engine did before storage format 3 (docs/storage.md: the engine's records now end in an
// 8-byte checksum, which the twins neither store nor check, so engine/raw ratios include
// its cost), and does the same work with plain LMDB calls.
// Datasets are built once per process, on first use by a benchmark's fixture, and removed
// at exit. They live under $CAIRN_BENCH_DIR (default /var/tmp), which must be a real disk
// for the durable group-commit numbers to mean anything.
//
// Results, the command that produced them and the targets: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <lmdb.h>
#include <stdlib.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <span>
#include <string_view>
#include <vector>
#include <chrono>
#include <thread>

#include "cairn/engine/engine.h"
#include "flatbuffers/flexbuffers.h"
#include "merged.h"
#include "overlay.h"
#include "wal.h"

namespace cairn {
namespace {

constexpr uint32_t kRecords = 100'000;  // records in every pre-filled collection
constexpr uint32_t kRangeSize = 100;    // records per scan and per range query
constexpr size_t kOrderSize = 1 << 16;  // length of the precomputed random sequences
constexpr size_t kOrderMask = kOrderSize - 1;
constexpr size_t kDocMask = 4096 - 1;  // write benchmarks draw from 4096 documents
constexpr uint32_t kFillBatch = 100;   // records per transaction when filling
// Random upserts run on a write dataset before it is measured: the first ~20k write more
// bytes per commit (pages packed full by the fill split); then the rate holds steady.
constexpr uint32_t kWarmUpPuts = kRecords / 2;
constexpr std::string_view kCollection = "c";

// Ids of the raw twins' hand-built key spaces (the engine allocates its own).
constexpr uint32_t kRawCollectionId = 1;
constexpr uint32_t kRawGroupIndexId = 2;
constexpr uint32_t kRawScoreIndexId = 3;

// --- Setup helpers. A setup failure ends the process: no number is better than a wrong one.

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "engine_bench: %s\n", what.c_str());
  std::abort();
}
void CheckOk(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}
void CheckMdb(int rc, const std::string& what) {
  if (rc != 0) Die(what + ": " + mdb_strerror(rc));
}

std::string BenchRoot() {
  const char* dir = std::getenv("CAIRN_BENCH_DIR");
  return dir && *dir ? dir : "/var/tmp";
}

// A fresh folder under BenchRoot(), removed with its contents when this goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = BenchRoot() + "/cairn-bench-XXXXXX";
    if (!mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool OnTmpfs(const std::string& path) {
  struct statfs st;
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == 0x01021994;  // TMPFS_MAGIC
}

void StoreU32BE(char* p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8) p[i] = char(v & 0xff);
}
void StoreU64BE(char* p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = char(v & 0xff);
}
void StoreU64LE(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++, v >>= 8) p[i] = char(v & 0xff);
}

// Bytes this process has passed to write calls so far (Linux: "wchar" in /proc/self/io);
// 0 if unknown. LMDB writes a commit's dirty pages with pwrite, so the difference over a
// benchmark loop, per put, is the number of bytes each commit writes.
uint64_t WrittenBytes() {
  std::ifstream in("/proc/self/io");
  std::string name;
  uint64_t value;
  while (in >> name >> value) {
    if (name == "wchar:") return value;
  }
  return 0;
}

// Reports the bytes written per iteration since `start` (see WrittenBytes) as counter "wbytes".
void ReportWrittenBytes(benchmark::State& state, uint64_t start) {
  state.counters["wbytes"] =
      benchmark::Counter(double(WrittenBytes() - start), benchmark::Counter::kAvgIterations);
}

// The same per write, for benchmarks whose iterations each make `per_iteration` writes.
void ReportWrittenBytesPerWrite(benchmark::State& state, uint64_t start, int64_t per_iteration) {
  state.counters["wbytes"] = benchmark::Counter(double(WrittenBytes() - start) /
                                                double(state.iterations() * per_iteration));
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

// --- The data: records "user00000042" -> a ~100-byte document
//   {"city": "city-042", "group": g, "name": "...", "score": s}
// In the pre-filled collections, group and score are two permutations of 0..kRecords-1, so an
// equality query on group matches exactly one record and a score range [s, s + 100) exactly
// 100 records, scattered over the key space.

std::string UserKey(uint32_t i) {
  char b[16];
  std::snprintf(b, sizeof b, "user%08u", i);
  return b;
}
int64_t GroupOf(uint32_t i) { return int64_t((uint64_t(i) * 7919 + 13) % kRecords); }
int64_t ScoreOf(uint32_t i) { return int64_t((uint64_t(i) * 48271 + 7) % kRecords); }

std::string MakeDoc(int64_t group, int64_t score, uint32_t city) {
  char city_name[16];
  std::snprintf(city_name, sizeof city_name, "city-%03u", city % 1000);
  flexbuffers::Builder fbb(128);
  fbb.Map([&] {
    fbb.String("city", city_name);
    fbb.Int("group", group);
    fbb.String("name", "a name of 24 characters.");
    fbb.Int("score", score);
  });
  fbb.Finish();
  const std::vector<uint8_t>& buf = fbb.GetBuffer();
  return std::string(reinterpret_cast<const char*>(buf.data()), buf.size());
}

// The raw twin's record key: [collection id: u32 BE][primary key], as the engine stores it.
std::string RawKey(std::string_view key) {
  std::string k(4, '\0');
  StoreU32BE(k.data(), kRawCollectionId);
  k.append(key);
  return k;
}

// The raw twin's index key for a non-negative integer: [index id: u32 BE][number tag]
// [u64 BE][2-byte residual] -- the engine's encoding for such values, and its size (15 bytes).
std::string RawIndexKey(uint32_t index_id, int64_t value) {
  char b[15];
  StoreU32BE(b, index_id);
  b[4] = char(0x30);
  StoreU64BE(b + 5, uint64_t(value));
  b[13] = b[14] = 0;
  return std::string(b, sizeof b);
}

// Writes a stored record value ([version: u64 LE][kind: u8][document]) into `p`.
constexpr size_t kRecordHeader = 9;
void WriteStoredValue(char* p, uint64_t version, std::string_view doc) {
  StoreU64LE(p, version);
  p[8] = 0;  // ValueKind::kDocument
  std::memcpy(p + kRecordHeader, doc.data(), doc.size());
}

// A fixed pseudo-random sequence of indexes below `bound`.
std::vector<uint32_t> RandomOrder(uint32_t bound, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> dist(0, bound - 1);
  std::vector<uint32_t> order(kOrderSize);
  for (uint32_t& o : order) o = dist(rng);
  return order;
}

// Documents with random group, score and city, for the write benchmarks.
std::vector<std::string> RandomDocs(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> dist(0, kRecords - 1);
  std::vector<std::string> docs;
  for (size_t i = 0; i < n; i++) docs.push_back(MakeDoc(dist(rng), dist(rng), dist(rng)));
  return docs;
}

// An endless random stream of upserts for the write benchmarks: which record, with which
// document. It carries on across benchmark runs and repetitions: a sequence that restarted
// would write records back with the documents they already hold, leaving the indexes alone.
class UpsertStream {
 public:
  explicit UpsertStream(uint32_t seed) : rng_(seed), docs_(RandomDocs(kDocMask + 1, seed + 1)) {}
  uint32_t NextRecord() { return uint32_t(rng_() % kRecords); }
  std::string_view NextDoc() { return docs_[rng_() & kDocMask]; }

 private:
  std::mt19937 rng_;
  std::vector<std::string> docs_;
};

const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (uint32_t i = 0; i < kRecords; i++) k.push_back(UserKey(i));
    return k;
  }();
  return keys;
}

// The raw twin's record keys, [collection id][key], for every record.
const std::vector<std::string>& RawKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const std::string& key : Keys()) k.push_back(RawKey(key));
    return k;
  }();
  return keys;
}

// --- Stores.

std::unique_ptr<Engine> OpenEngine(const std::string& dir, Durability durability) {
  Options options;
  options.durability = durability;
  auto r = Engine::Open(dir, options);
  CheckOk(r.status(), "open engine in " + dir);
  return std::move(r).value();
}

// Creates collection "c" with indexes on the first `indexes` of group, score, city, and
// fills it with records 0..kRecords-1, kFillBatch per transaction.
void FillEngine(Engine* db, int indexes) {
  CheckOk(db->CreateCollection(kCollection), "create collection");
  const char* fields[] = {"group", "score", "city"};
  for (int i = 0; i < indexes; i++) {
    CheckOk(db->CreateIndex(kCollection, IndexSpec{std::string("by_") + fields[i], {fields[i]}}),
            "create index");
  }
  const auto& keys = Keys();
  std::vector<std::string> docs;
  for (uint32_t start = 0; start < kRecords; start += kFillBatch) {
    docs.clear();
    for (uint32_t i = start; i < start + kFillBatch; i++) {
      docs.push_back(MakeDoc(GroupOf(i), ScoreOf(i), i));
    }
    Transaction t;
    t.ops.resize(kFillBatch);
    for (uint32_t i = start; i < start + kFillBatch; i++) {
      t.ops[i - start] = PutOp{kCollection, keys[i], docs[i - start]};
    }
    TxnResult r = db->Execute(t);
    CheckOk(r.status, "fill");
  }
  CheckOk(db->Sync(), "sync");
}

// A raw LMDB environment opened as the engine opens its own (MDB_NOTLS, same map size and
// reader slots), plus `flags`, with a "records" database and a DUPSORT "index" database.
class RawEnv {
 public:
  RawEnv(const std::string& dir, unsigned flags) {
    std::filesystem::create_directories(dir);
    CheckMdb(mdb_env_create(&env_), "env create");
    mdb_env_set_maxdbs(env_, 4);
    mdb_env_set_maxreaders(env_, Options{}.max_readers);
    CheckMdb(mdb_env_set_mapsize(env_, Options{}.max_size), "map size");
    CheckMdb(mdb_env_open(env_, dir.c_str(), MDB_NOTLS | flags, 0644), "env open " + dir);
    MDB_txn* txn;
    CheckMdb(mdb_txn_begin(env_, nullptr, 0, &txn), "begin");
    CheckMdb(mdb_dbi_open(txn, "records", MDB_CREATE, &records_), "open records");
    CheckMdb(mdb_dbi_open(txn, "index", MDB_CREATE | MDB_DUPSORT, &index_), "open index");
    CheckMdb(mdb_txn_commit(txn), "commit");
  }
  ~RawEnv() {
    mdb_env_sync(env_, 1);
    mdb_env_close(env_);
  }
  RawEnv(const RawEnv&) = delete;
  RawEnv& operator=(const RawEnv&) = delete;

  MDB_env* env() const { return env_; }
  MDB_dbi records() const { return records_; }
  MDB_dbi index() const { return index_; }

  // Fills records 0..kRecords-1, with entries for the first `indexes` of the group and score
  // indexes.
  void Fill(int indexes) {
    const auto& keys = Keys();
    std::string stored;
    for (uint32_t start = 0; start < kRecords; start += kFillBatch) {
      MDB_txn* txn;
      CheckMdb(mdb_txn_begin(env_, nullptr, 0, &txn), "begin");
      for (uint32_t i = start; i < start + kFillBatch; i++) {
        std::string doc = MakeDoc(GroupOf(i), ScoreOf(i), i);
        stored.resize(kRecordHeader + doc.size());
        WriteStoredValue(stored.data(), 1, doc);
        std::string rk = RawKey(keys[i]);
        MDB_val k = Val(rk), v = Val(stored);
        CheckMdb(mdb_put(txn, records_, &k, &v, 0), "put");
        const std::pair<uint32_t, int64_t> entries[] = {{kRawGroupIndexId, GroupOf(i)},
                                                        {kRawScoreIndexId, ScoreOf(i)}};
        for (int x = 0; x < indexes; x++) {
          auto [id, value] = entries[x];
          std::string ik = RawIndexKey(id, value);
          MDB_val ikv = Val(ik), pk = Val(keys[i]);
          CheckMdb(mdb_put(txn, index_, &ikv, &pk, MDB_NODUPDATA), "index put");
        }
      }
      CheckMdb(mdb_txn_commit(txn), "commit");
    }
    CheckMdb(mdb_env_sync(env_, 1), "sync");
  }

  // Upserts record `n` with `doc` in a write transaction of its own. With `indexed`, also
  // maintains the group index by hand, as the engine does: reads the old record, moves its
  // index entry if the value changed, writes the record. Returns LMDB's code.
  // `docs.size()` upserts of records `ns` in one write transaction.
  int UpsertBatch(const std::vector<uint32_t>& ns, const std::vector<std::string_view>& docs) {
    MDB_txn* txn;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc != 0) return rc;
    for (size_t i = 0; i < ns.size() && rc == 0; i++) {
      MDB_val k = Val(RawKeys()[ns[i]]), v{kRecordHeader + docs[i].size(), nullptr};
      rc = mdb_put(txn, records_, &k, &v, MDB_RESERVE);
      if (rc == 0) WriteStoredValue(static_cast<char*>(v.mv_data), ++version_, docs[i]);
    }
    if (rc != 0) {
      mdb_txn_abort(txn);
      return rc;
    }
    return mdb_txn_commit(txn);
  }

  int Upsert(uint32_t n, std::string_view doc, bool indexed) {
    MDB_val k = Val(RawKeys()[n]), old;
    MDB_txn* txn;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc != 0) return rc;
    if (indexed && (rc = mdb_get(txn, records_, &k, &old)) == 0) {
      std::string_view old_doc(static_cast<const char*>(old.mv_data) + kRecordHeader,
                               old.mv_size - kRecordHeader);
      int64_t old_group = DocGroup(old_doc), new_group = DocGroup(doc);
      if (old_group != new_group) {
        std::string ik = RawIndexKey(kRawGroupIndexId, old_group);
        MDB_val ikv = Val(ik), pk = Val(Keys()[n]);
        rc = mdb_del(txn, index_, &ikv, &pk);
        ik = RawIndexKey(kRawGroupIndexId, new_group);
        ikv = Val(ik);
        pk = Val(Keys()[n]);
        if (rc == 0) rc = mdb_put(txn, index_, &ikv, &pk, MDB_NODUPDATA);
      }
    }
    MDB_val v{kRecordHeader + doc.size(), nullptr};
    if (rc == 0) rc = mdb_put(txn, records_, &k, &v, MDB_RESERVE);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return rc;
    }
    WriteStoredValue(static_cast<char*>(v.mv_data), ++version_, doc);
    return mdb_txn_commit(txn);
  }

 private:
  static int64_t DocGroup(std::string_view doc) {
    auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(doc.data()), doc.size());
    return root.AsMap()["group"].AsInt64();
  }

  MDB_env* env_ = nullptr;
  MDB_dbi records_ = 0, index_ = 0;
  uint64_t version_ = 1;
};

// The read dataset, shared by the get, query and scan benchmarks: the engine with indexes
// on group and score, and its raw twin with the same records and a hand-built index.
struct ReadData {
  TempDir dir;
  std::unique_ptr<Engine> db;
  std::unique_ptr<RawEnv> raw;
  std::vector<uint32_t> order = RandomOrder(kRecords, 1);
  std::vector<uint32_t> range_order = RandomOrder(kRecords - kRangeSize, 2);

  ReadData() {
    db = OpenEngine(dir.Sub("engine"), Durability::kNoSync);
    FillEngine(db.get(), 2);
    db->WaitForBackgroundWork();
    raw = std::make_unique<RawEnv>(dir.Sub("raw"), MDB_NOSYNC);
    raw->Fill(/*indexes=*/2);
  }
};

// Upserts record `n` with `doc` through `put`, the only operation of `t`.
Status EngineUpsert(Engine* db, Transaction& t, PutOp& put, uint32_t n, std::string_view doc) {
  put.key = Keys()[n];
  put.value = doc;
  return db->Execute(t).status;
}

// A write dataset: the engine with `indexes` indexes (durability kNoSync), or raw LMDB with
// MDB_NOSYNC, both pre-filled with kRecords records, then warmed up by kWarmUpPuts random
// upserts and flushed, so that the measured writes meet a steady state rather than the
// tightly packed pages of the fill, and no writeback of the setup's pages.
struct PutData {
  TempDir dir;
  std::unique_ptr<Engine> db;
  std::unique_ptr<RawEnv> raw;
  UpsertStream upserts{3};
};

// A durable (sync) dataset for group commit, initially empty.
struct SyncData {
  TempDir dir;
  std::unique_ptr<Engine> db;
  std::unique_ptr<RawEnv> raw;
  UpsertStream upserts{5};
};

// Every dataset, built on first use and dropped (closed, then deleted) at the end of main.
struct Datasets {
  std::unique_ptr<ReadData> read;
  std::map<int, std::unique_ptr<PutData>> put;  // see Puts()
  std::unique_ptr<SyncData> sync;
};
Datasets& AllDatasets() {
  static Datasets d;
  return d;
}

ReadData& Reads() {
  auto& d = AllDatasets().read;
  if (!d) d = std::make_unique<ReadData>();
  return *d;
}

// `which`: >= 0, the engine with that many indexes; -1 - n, raw LMDB with n indexes (0 or 1).
PutData& Puts(int which) {
  auto& d = AllDatasets().put[which];
  if (!d) {
    d = std::make_unique<PutData>();
    if (which >= 0) {
      d->db = OpenEngine(d->dir.Sub("engine"), Durability::kNoSync);
      FillEngine(d->db.get(), which);
      d->db->WaitForBackgroundWork();
      Transaction t;
      t.ops.resize(1);
      t.ops[0] = PutOp{kCollection, {}, {}};
      PutOp& put = std::get<PutOp>(t.ops[0]);
      for (uint32_t i = 0; i < kWarmUpPuts; i++) {
        CheckOk(EngineUpsert(d->db.get(), t, put, d->upserts.NextRecord(), d->upserts.NextDoc()),
                "warm-up");
      }
      CheckOk(d->db->Sync(), "sync");
    } else {
      d->raw = std::make_unique<RawEnv>(d->dir.Sub("raw"), MDB_NOSYNC);
      d->raw->Fill(/*indexes=*/-1 - which);
      for (uint32_t i = 0; i < kWarmUpPuts; i++) {
        CheckMdb(d->raw->Upsert(d->upserts.NextRecord(), d->upserts.NextDoc(), which < -1),
                 "warm-up");
      }
      CheckMdb(mdb_env_sync(d->raw->env(), 1), "sync");
    }
  }
  return *d;
}

SyncData& Syncs() {
  // The threads of a multi-threaded benchmark each set their fixture up.
  static std::mutex mu;
  std::lock_guard lock(mu);
  auto& d = AllDatasets().sync;
  if (!d) {
    d = std::make_unique<SyncData>();
    if (OnTmpfs(d->dir.path())) {
      std::fprintf(stderr,
                   "engine_bench: WARNING: %s is on tmpfs; durable commits cost nothing "
                   "there. Set CAIRN_BENCH_DIR to a folder on a real disk.\n",
                   d->dir.path().c_str());
    }
    d->db = OpenEngine(d->dir.Sub("engine"), Durability::kSync);
    CheckOk(d->db->CreateCollection(kCollection), "create collection");
    d->raw = std::make_unique<RawEnv>(d->dir.Sub("raw"), 0);
  }
  return *d;
}

void DropDatasets() { AllDatasets() = Datasets(); }

// --- Point get: a random existing key, one read transaction per lookup.

class BM_Get : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State&) override { d_ = &Reads(); }

 protected:
  ReadData* d_ = nullptr;
};

BENCHMARK_DEFINE_F(BM_Get, engine)(benchmark::State& state) {
  const auto& keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[d_->order[i++ & kOrderMask]];
    auto txn = d_->db->BeginRead();
    RecordView rv;
    bool found = false;
    if (!txn.ok() || !txn->Get(kCollection, key, &rv, &found).ok() || !found) {
      state.SkipWithError("get failed");
      break;
    }
    benchmark::DoNotOptimize(rv.value.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// Execute(Txn{GetOp}): the generic path, which copies the record into an OpResult.
BENCHMARK_DEFINE_F(BM_Get, engine_execute)(benchmark::State& state) {
  const auto& keys = Keys();
  Transaction t;
  t.ops.push_back(GetOp{kCollection, {}});
  GetOp& get = std::get<GetOp>(t.ops[0]);
  size_t i = 0;
  for (auto _ : state) {
    get.key = keys[d_->order[i++ & kOrderMask]];
    TxnResult r = d_->db->Execute(t);
    if (!r.status.ok() || !r.results[0].found) {
      state.SkipWithError("get failed");
      break;
    }
    benchmark::DoNotOptimize(r.results[0].records[0].value.data());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_DEFINE_F(BM_Get, raw_lmdb)(benchmark::State& state) {
  MDB_txn* txn;
  CheckMdb(mdb_txn_begin(d_->raw->env(), nullptr, MDB_RDONLY, &txn), "read begin");
  mdb_txn_reset(txn);
  const auto& raw_keys = RawKeys();
  size_t i = 0;
  for (auto _ : state) {
    MDB_val k = Val(raw_keys[d_->order[i++ & kOrderMask]]), v;
    int rc = mdb_txn_renew(txn);
    if (rc == 0) rc = mdb_get(txn, d_->raw->records(), &k, &v);
    if (rc != 0) {
      state.SkipWithError(mdb_strerror(rc));
      break;
    }
    benchmark::DoNotOptimize(v.mv_data);
    mdb_txn_reset(txn);
  }
  mdb_txn_abort(txn);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_REGISTER_F(BM_Get, engine);
BENCHMARK_REGISTER_F(BM_Get, engine_execute);
BENCHMARK_REGISTER_F(BM_Get, raw_lmdb);

// --- Put: upsert of a ~100-byte document under a random existing key, one write
// transaction per put, no fsync (kNoSync / MDB_NOSYNC), so that this measures CPU.

// range(0) is the number of indexes: maintained by the engine, or by hand in the raw twin.
class EnginePut : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State& state) override { d_ = &Puts(int(state.range(0))); }

 protected:
  PutData* d_ = nullptr;
};
class RawPut : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State& state) override { d_ = &Puts(-1 - int(state.range(0))); }

 protected:
  PutData* d_ = nullptr;
};

BENCHMARK_DEFINE_F(EnginePut, engine)(benchmark::State& state) {
  Transaction t;
  t.ops.resize(1);
  t.ops[0] = PutOp{kCollection, {}, {}};
  PutOp& put = std::get<PutOp>(t.ops[0]);
  const uint64_t written = WrittenBytes();
  for (auto _ : state) {
    Status s = EngineUpsert(d_->db.get(), t, put, d_->upserts.NextRecord(), d_->upserts.NextDoc());
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  ReportWrittenBytes(state, written);
  state.SetItemsProcessed(state.iterations());
}

// The raw twin: a plain put into one database; with one index (for reference, no target),
// the index maintained by hand as the engine does it (RawEnv::Upsert).
BENCHMARK_DEFINE_F(RawPut, raw_lmdb)(benchmark::State& state) {
  const bool indexed = state.range(0) > 0;
  const uint64_t written = WrittenBytes();
  for (auto _ : state) {
    int rc = d_->raw->Upsert(d_->upserts.NextRecord(), d_->upserts.NextDoc(), indexed);
    if (rc != 0) {
      state.SkipWithError(mdb_strerror(rc));
      break;
    }
  }
  ReportWrittenBytes(state, written);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_REGISTER_F(EnginePut, engine)
    ->Name("BM_Put/engine")
    ->ArgName("indexes")
    ->Arg(0)
    ->Arg(1)
    ->Arg(3);
BENCHMARK_REGISTER_F(RawPut, raw_lmdb)->Name("BM_Put/raw_lmdb")->ArgName("indexes")->Arg(0)->Arg(1);

// --- Batched puts, as cairnd's writer commits them under load: ExecuteBatch of
// range(0) single-put transactions (random existing keys, no index, kNoSync), each with a
// 16-byte idempotency key as libcairn sends them ([microseconds: u64 BE][random]) when
// range(1) is 1. The raw twin puts as many records in one transaction. CPU time; items
// are writes.

std::string ClientIdempotencyKey(std::mt19937_64& rng) {
  uint64_t us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
  std::string k(16, '\0');
  for (int i = 0; i < 8; i++) k[size_t(i)] = char(us >> (56 - 8 * i));
  uint64_t r = rng();
  std::memcpy(k.data() + 8, &r, 8);
  return k;
}

// Each iteration: ExecuteBatch of `batch` single-put transactions from `upserts`, each with
// a client-style idempotency key if `keyed`. Items are writes.
void RunPutBatches(benchmark::State& state, Engine* db, UpsertStream& upserts, size_t batch,
                   bool keyed) {
  const auto& keys = Keys();
  std::vector<Transaction> txns(batch);
  std::vector<std::string> idem(batch);
  std::vector<const Transaction*> ptrs;
  for (Transaction& t : txns) {
    t.ops.push_back(PutOp{kCollection, {}, {}});
    ptrs.push_back(&t);
  }
  std::mt19937_64 rng(7);
  const uint64_t written = WrittenBytes();
  for (auto _ : state) {
    for (size_t i = 0; i < batch; i++) {
      PutOp& put = std::get<PutOp>(txns[i].ops[0]);
      put.key = keys[upserts.NextRecord()];
      put.value = upserts.NextDoc();
      if (keyed) {
        idem[i] = ClientIdempotencyKey(rng);
        txns[i].idempotency_key = idem[i];
      }
    }
    std::vector<TxnResult> results = db->ExecuteBatch(ptrs);
    for (const TxnResult& r : results) {
      if (!r.status.ok()) state.SkipWithError(r.status.ToString().c_str());
    }
    if (state.error_occurred()) break;
  }
  state.SetItemsProcessed(state.iterations() * int64_t(batch));
  ReportWrittenBytesPerWrite(state, written, int64_t(batch));
}

BENCHMARK_DEFINE_F(EnginePut, batch)(benchmark::State& state) {
  RunPutBatches(state, d_->db.get(), d_->upserts, size_t(state.range(1)), state.range(2) != 0);
}

BENCHMARK_DEFINE_F(RawPut, batch)(benchmark::State& state) {
  const size_t batch = size_t(state.range(1));
  std::vector<uint32_t> ns(batch);
  std::vector<std::string_view> docs(batch);
  const uint64_t written = WrittenBytes();
  for (auto _ : state) {
    for (size_t i = 0; i < batch; i++) {
      ns[i] = d_->upserts.NextRecord();
      docs[i] = d_->upserts.NextDoc();
    }
    if (int rc = d_->raw->UpsertBatch(ns, docs); rc != 0) {
      state.SkipWithError(mdb_strerror(rc));
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * int64_t(batch));
  ReportWrittenBytesPerWrite(state, written, int64_t(batch));
}

BENCHMARK_REGISTER_F(EnginePut, batch)
    ->Name("BM_BatchPut/engine")
    ->ArgNames({"indexes", "batch", "keyed"})
    ->Args({0, 64, 0})
    ->Args({0, 64, 1})
    ->Args({0, 800, 1});
BENCHMARK_REGISTER_F(RawPut, batch)
    ->Name("BM_BatchPut/raw_lmdb")
    ->ArgNames({"indexes", "batch"})
    ->Args({0, 64})
    ->Args({0, 800});

// --- Index queries: equality on a non-unique index matching one record, and a range
// matching 100 records; one read transaction per query. The raw twin walks its hand-built
// index with MDB_SET_RANGE + MDB_NEXT and looks each record up by primary key.

class BM_Query : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State&) override { d_ = &Reads(); }

 protected:
  // A raw query: the records whose index entry lies in [lo, hi); returns how many, or -1.
  int64_t RawQuery(MDB_txn* txn, std::string_view lo, std::string_view hi) {
    MDB_cursor* cur;
    if (mdb_txn_renew(txn) != 0) return -1;
    if (mdb_cursor_open(txn, d_->raw->index(), &cur) != 0) {
      mdb_txn_reset(txn);
      return -1;
    }
    int64_t n = 0;
    std::string rk = RawKey("");
    MDB_val k = Val(lo), pk;
    int rc = mdb_cursor_get(cur, &k, &pk, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &pk, MDB_NEXT)) {
      if (std::string_view(static_cast<const char*>(k.mv_data), k.mv_size) >= hi) break;
      rk.resize(4);
      rk.append(static_cast<const char*>(pk.mv_data), pk.mv_size);
      MDB_val rkv = Val(rk), v;
      if (mdb_get(txn, d_->raw->records(), &rkv, &v) != 0) {
        rc = -1;
        break;
      }
      benchmark::DoNotOptimize(v.mv_data);
      n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_reset(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? n : -1;
  }

  ReadData* d_ = nullptr;
};

BENCHMARK_DEFINE_F(BM_Query, eq_engine)(benchmark::State& state) {
  QuerySpec spec;
  spec.collection = kCollection;
  spec.index = "by_group";
  spec.equal.push_back(int64_t{0});
  int64_t n = 0;
  ReadTxn::Visitor visit = [&n](const RecordView& rv) {
    benchmark::DoNotOptimize(rv.value.data());
    n++;
  };
  size_t i = 0;
  for (auto _ : state) {
    spec.equal[0] = GroupOf(d_->order[i++ & kOrderMask]);
    n = 0;
    auto txn = d_->db->BeginRead();
    if (!txn.ok() || !txn->Query(spec, visit, nullptr).ok() || n != 1) {
      state.SkipWithError("query failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_DEFINE_F(BM_Query, eq_raw_lmdb)(benchmark::State& state) {
  MDB_txn* txn;
  CheckMdb(mdb_txn_begin(d_->raw->env(), nullptr, MDB_RDONLY, &txn), "read begin");
  mdb_txn_reset(txn);
  size_t i = 0;
  for (auto _ : state) {
    int64_t g = GroupOf(d_->order[i++ & kOrderMask]);
    std::string lo = RawIndexKey(kRawGroupIndexId, g), hi = RawIndexKey(kRawGroupIndexId, g + 1);
    if (RawQuery(txn, lo, hi) != 1) {
      state.SkipWithError("query failed");
      break;
    }
  }
  mdb_txn_abort(txn);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_DEFINE_F(BM_Query, range_engine)(benchmark::State& state) {
  QuerySpec spec;
  spec.collection = kCollection;
  spec.index = "by_score";
  spec.lower = ValueBound{int64_t{0}, true};
  spec.upper = ValueBound{int64_t{0}, false};
  int64_t n = 0;
  ReadTxn::Visitor visit = [&n](const RecordView& rv) {
    benchmark::DoNotOptimize(rv.value.data());
    n++;
  };
  size_t i = 0;
  for (auto _ : state) {
    int64_t s = d_->range_order[i++ & kOrderMask];
    spec.lower->value = s;
    spec.upper->value = s + kRangeSize;
    n = 0;
    auto txn = d_->db->BeginRead();
    if (!txn.ok() || !txn->Query(spec, visit, nullptr).ok() || n != kRangeSize) {
      state.SkipWithError("query failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kRangeSize);
}

BENCHMARK_DEFINE_F(BM_Query, range_raw_lmdb)(benchmark::State& state) {
  MDB_txn* txn;
  CheckMdb(mdb_txn_begin(d_->raw->env(), nullptr, MDB_RDONLY, &txn), "read begin");
  mdb_txn_reset(txn);
  size_t i = 0;
  for (auto _ : state) {
    int64_t s = d_->range_order[i++ & kOrderMask];
    std::string lo = RawIndexKey(kRawScoreIndexId, s);
    std::string hi = RawIndexKey(kRawScoreIndexId, s + kRangeSize);
    if (RawQuery(txn, lo, hi) != kRangeSize) {
      state.SkipWithError("query failed");
      break;
    }
  }
  mdb_txn_abort(txn);
  state.SetItemsProcessed(state.iterations() * kRangeSize);
}

BENCHMARK_REGISTER_F(BM_Query, eq_engine);
BENCHMARK_REGISTER_F(BM_Query, eq_raw_lmdb);
BENCHMARK_REGISTER_F(BM_Query, range_engine);
BENCHMARK_REGISTER_F(BM_Query, range_raw_lmdb);

// --- Scan: 100 consecutive records from a random key, one read transaction per scan.

class BM_Scan : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State&) override { d_ = &Reads(); }

 protected:
  ReadData* d_ = nullptr;
};

BENCHMARK_DEFINE_F(BM_Scan, engine)(benchmark::State& state) {
  const auto& keys = Keys();
  ScanSpec spec;
  spec.collection = kCollection;
  spec.lower = KeyBound{};
  spec.limit = kRangeSize;
  int64_t n = 0;
  ReadTxn::Visitor visit = [&n](const RecordView& rv) {
    benchmark::DoNotOptimize(rv.value.data());
    n++;
  };
  std::string continuation;
  size_t i = 0;
  for (auto _ : state) {
    spec.lower->key = keys[d_->range_order[i++ & kOrderMask]];
    n = 0;
    auto txn = d_->db->BeginRead();
    if (!txn.ok() || !txn->Scan(spec, visit, &continuation).ok() || n != kRangeSize) {
      state.SkipWithError("scan failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kRangeSize);
}

BENCHMARK_DEFINE_F(BM_Scan, raw_lmdb)(benchmark::State& state) {
  MDB_txn* txn;
  CheckMdb(mdb_txn_begin(d_->raw->env(), nullptr, MDB_RDONLY, &txn), "read begin");
  mdb_txn_reset(txn);
  const auto& raw_keys = RawKeys();
  size_t i = 0;
  for (auto _ : state) {
    MDB_val k = Val(raw_keys[d_->range_order[i++ & kOrderMask]]), v;
    MDB_cursor* cur = nullptr;
    int rc = mdb_txn_renew(txn);
    if (rc == 0) rc = mdb_cursor_open(txn, d_->raw->records(), &cur);
    if (rc == 0) rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    uint32_t n = 0;
    while (rc == 0) {
      benchmark::DoNotOptimize(v.mv_data);
      if (++n == kRangeSize) break;
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    mdb_txn_reset(txn);
    if (n != kRangeSize) {
      state.SkipWithError("scan failed");
      break;
    }
  }
  mdb_txn_abort(txn);
  state.SetItemsProcessed(state.iterations() * kRangeSize);
}

// The raw twin's scan through MergedCursor (engine/src/merged.h): `range(0)` 0, no overlay
// (the LMDB-only path every read takes today); 1, one empty overlay (the general merge
// with nothing to merge); 2, one overlay holding a new version of every 100th record
// (what a reader pays while commits wait for a checkpoint).
BENCHMARK_DEFINE_F(BM_Scan, merged)(benchmark::State& state) {
  const int mode = int(state.range(0));
  internal::Overlay overlay;
  if (mode == 2) {
    const auto& raw_keys = RawKeys();
    for (size_t i = 0; i < raw_keys.size(); i += 100) {
      overlay.Put(d_->raw->records(), raw_keys[i], std::string(120, 'o'), 1);
    }
  }
  internal::OverlayAt at{&overlay, 1};
  std::span<const internal::OverlayAt> overlays;
  if (mode > 0) overlays = std::span(&at, 1);
  MDB_txn* txn;
  CheckMdb(mdb_txn_begin(d_->raw->env(), nullptr, MDB_RDONLY, &txn), "read begin");
  mdb_txn_reset(txn);
  const auto& raw_keys = RawKeys();
  size_t i = 0;
  for (auto _ : state) {
    CheckMdb(mdb_txn_renew(txn), "renew");
    uint32_t n = 0;
    {
      internal::MergedCursor cur(txn, d_->raw->records(), overlays, d_->raw->records());
      for (cur.Seek(raw_keys[d_->range_order[i++ & kOrderMask]]); cur.Valid(); cur.Next()) {
        benchmark::DoNotOptimize(cur.value().data());
        if (++n == kRangeSize) break;
      }
    }
    mdb_txn_reset(txn);
    if (n != kRangeSize) {
      state.SkipWithError("scan failed");
      break;
    }
  }
  mdb_txn_abort(txn);
  state.SetItemsProcessed(state.iterations() * kRangeSize);
}

BENCHMARK_REGISTER_F(BM_Scan, engine);
BENCHMARK_REGISTER_F(BM_Scan, raw_lmdb);
BENCHMARK_REGISTER_F(BM_Scan, merged)->ArgName("overlays")->Arg(0)->Arg(1)->Arg(2);

// --- Group commit under kSync (fsync at every LMDB commit): ExecuteBatch of 1, 8 or 64
// single-put transactions, against 64 separate durable raw commits of one put each.
// Wall-clock time (the fsync is not CPU time); items are writes.

class BM_GroupCommit : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State&) override { d_ = &Syncs(); }

 protected:
  SyncData* d_ = nullptr;
};

BENCHMARK_DEFINE_F(BM_GroupCommit, engine)(benchmark::State& state) {
  RunPutBatches(state, d_->db.get(), d_->upserts, size_t(state.range(0)), /*keyed=*/false);
}

// `range(0)` durable commits of one put each.
BENCHMARK_DEFINE_F(BM_GroupCommit, raw_lmdb_separate)(benchmark::State& state) {
  const int64_t commits = state.range(0);
  const uint64_t written = WrittenBytes();
  for (auto _ : state) {
    for (int64_t c = 0; c < commits; c++) {
      int rc = d_->raw->Upsert(d_->upserts.NextRecord(), d_->upserts.NextDoc(), false);
      if (rc != 0) {
        state.SkipWithError(mdb_strerror(rc));
        break;
      }
    }
    if (state.error_occurred()) break;
  }
  state.SetItemsProcessed(state.iterations() * commits);
  ReportWrittenBytesPerWrite(state, written, commits);
}

// Durable single-put transactions from `threads` threads calling Engine::Execute at once
// (each with its own stream of upserts): concurrent calls share commits and fsyncs.
// Items are writes, over all threads.
BENCHMARK_DEFINE_F(BM_GroupCommit, execute)(benchmark::State& state) {
  UpsertStream upserts(100 + uint32_t(state.thread_index()));
  Transaction t;
  t.ops.resize(1);
  t.ops[0] = PutOp{kCollection, {}, {}};
  PutOp& put = std::get<PutOp>(t.ops[0]);
  for (auto _ : state) {
    Status s = EngineUpsert(d_->db.get(), t, put, upserts.NextRecord(), upserts.NextDoc());
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// The write-ahead log's share of a durable group commit (engine/src/wal.h): `batch`
// records of 200 bytes (a put's change-log entry) appended, written and fdatasynced, in
// segments prepared ahead by zero-fill (0), fallocate (1) or not at all (2, the file grows);
// dsync:1 writes a synced batch through an O_DSYNC descriptor instead of pwrite + fdatasync.
// Set against BM_GroupCommit/engine at the same batch (the engine's whole durable
// ExecuteBatch today): what the flush would cost. The first segment and its spare are
// made before the timing starts. Items are records.
void BM_GroupCommitWal(benchmark::State& state) {
  TempDir dir;
  internal::WalOptions o;
  o.preallocate = internal::WalOptions::Preallocate(state.range(1));
  o.dsync_writes = state.range(2) != 0;
  std::unique_ptr<internal::Wal> wal;
  CheckOk(internal::Wal::Open(dir.Sub("wal"), o, &wal, nullptr), "open the log");
  const std::string record(200, 'r');
  const int64_t batch = state.range(0);
  uint64_t commit = 0;
  CheckOk(wal->Append(++commit, 1, record), "append");
  CheckOk(wal->Write(true), "write");
  while (!wal->spare_ready()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const uint64_t written = WrittenBytes();
  for (auto _ : state) {
    for (int64_t i = 0; i < batch; i++) CheckOk(wal->Append(++commit, 1, record), "append");
    CheckOk(wal->Write(true), "write");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  ReportWrittenBytesPerWrite(state, written, batch);
}
BENCHMARK(BM_GroupCommitWal)
    ->ArgNames({"batch", "preallocate", "dsync"})
    ->ArgsProduct({{1, 8, 64}, {0, 1, 2}, {0}})
    ->ArgsProduct({{1, 8, 64}, {0}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_REGISTER_F(BM_GroupCommit, execute)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_REGISTER_F(BM_GroupCommit, engine)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_REGISTER_F(BM_GroupCommit, raw_lmdb_separate)
    ->ArgName("commits")
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cairn

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("cairn_bench_dir", cairn::BenchRoot());
  benchmark::AddCustomContext("records", std::to_string(cairn::kRecords));
  benchmark::AddCustomContext("document_bytes",
                              std::to_string(cairn::MakeDoc(12345, 67890, 42).size()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  cairn::DropDatasets();
  return 0;
}
