// Benchmarks of libcairn, the native client.
//
// BM_Codec_*, BM_Doc_*, BM_Txn_*: what the client spends per request in process, with no
// network: encoding the request frame (codec::EncodeGet and EncodePut, exactly what
// AsyncGet/AsyncPut/Get/Put call; EncodeTxn of a built Txn, what Commit calls), verifying
// and decoding the server's TxnReply (wire::VerifyResponseFrame, codec::DecodeGet,
// codec::DecodeCommit), plus the public document helpers an application calls around them.
//
// BM_AsyncGet, BM_AsyncPut, BM_SyncGet: the throughput of ONE Client object, with a pool of
// 1, 4 or 16 connections, against a cairnd this binary starts itself (CAIRND_PATH, a
// fresh data folder under $CAIRN_BENCH_DIR, default /var/tmp, `--durability nosync`),
// filled with 10,000 records of ~100 bytes. The async lines keep up to 256 calls in flight
// from the benchmark thread (callbacks free the slots; see Window); the sync lines call
// Get() from 1 or 8 threads (BM_SyncGetCallback: the same, waiting on an AsyncGet callback
// instead). Each network line also reports where the CPU went, in this process (the
// benchmark threads and the client's threads) and in cairnd (see CpuMeter), and the heap
// allocations per request.
//
// Results, the command that produced them and the machine: docs/benchmarks.md, "libcairn".
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cairn/client/client.h"
#include "codec.h"  // libcairn's codec (cairn_client_internal)
#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "flatbuffers/flatbuffers.h"

// --- Heap allocations. Every operator new in this process (the client library's included)
// is counted, in a counter per thread (no contention, no allocation to register one), so
// that the lines can report allocations per request: a figure the shared machine cannot
// disturb.
namespace {
constexpr int kAllocSlots = 256;
struct alignas(64) AllocSlot {
  std::atomic<uint64_t> n{0};
};
AllocSlot g_alloc_slots[kAllocSlots + 1];  // the last one is shared by any further threads
std::atomic<int> g_alloc_next{0};
thread_local int t_alloc_slot = -1;

inline void CountAlloc() {
  if (t_alloc_slot < 0) {
    int i = g_alloc_next.fetch_add(1, std::memory_order_relaxed);
    t_alloc_slot = i < kAllocSlots ? i : kAllocSlots;
  }
  std::atomic<uint64_t>& n = g_alloc_slots[t_alloc_slot].n;
  if (t_alloc_slot < kAllocSlots) {
    n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
  } else {
    n.fetch_add(1, std::memory_order_relaxed);
  }
}

uint64_t Allocations() {
  uint64_t sum = 0;
  for (auto& s : g_alloc_slots) sum += s.n.load(std::memory_order_relaxed);
  return sum;
}
}  // namespace

void* operator new(std::size_t n) {
  CountAlloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t al) {
  CountAlloc();
  size_t a = std::max(size_t(al), sizeof(void*));
  if (void* p = std::aligned_alloc(a, (std::max<size_t>(n, 1) + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
// GCC inlines these into callers and then sees free() of what operator new returned; that
// is this file's own pairing (operator new above is malloc), not a mismatch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

#ifndef CAIRND_PATH
#error "CAIRND_PATH must name the cairnd binary"
#endif

namespace cairn::client {
namespace {

// The library's own codec (client/src/codec.h, through cairn_client_internal): the
// benchmarks time exactly what the calls run.
using codec::DecodeCommit;
using codec::DecodeGet;
using codec::EncodeGet;
using codec::EncodePut;
using codec::EncodeTxn;

constexpr std::string_view kCollection = "bench";
constexpr uint32_t kRecords = 10'000;
constexpr uint32_t kFillBatch = 100;  // records per transaction when filling
constexpr int kWindow = 256;          // async calls kept in flight
constexpr size_t kDocs = 64;          // distinct documents the put lines cycle through

// --- Helpers. A setup failure ends the process: no number is better than a wrong one.

void StopServer();

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "client_bench: %s\n", what.c_str());
  StopServer();
  std::abort();
}

std::string BenchRoot() {
  const char* dir = std::getenv("CAIRN_BENCH_DIR");
  return dir && *dir ? dir : "/var/tmp";
}

std::string Key(uint32_t i) {
  char b[16];
  std::snprintf(b, sizeof b, "user%08u", i);
  return b;
}

// A document of about 100 bytes (the size is printed in the run's context).
Document MakeDoc(uint32_t i) {
  char name[32], email[48], city[16];
  std::snprintf(name, sizeof name, "benchmark user %05u", i % 100'000);
  std::snprintf(email, sizeof email, "user%08u@example.com", i);
  std::snprintf(city, sizeof city, "city-%03u", i % 1000);
  return Document::Builder()
      .Set("name", std::string_view(name))
      .Set("email", std::string_view(email))
      .Set("age", int64_t(20 + i % 60))
      .Set("city", std::string_view(city))
      .Build();
}

// A fixed pseudo-random sequence per benchmark thread.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint32_t Next(uint32_t n) {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return uint32_t(s_ % n);
  }

 private:
  uint64_t s_;
};

// --- The server: started on first use, stopped at exit.
//
// It is forked from a keeper thread that lives until StopServer(), so that the child's
// PR_SET_PDEATHSIG (which fires when the forking *thread* ends) only kills cairnd when
// this process dies, whichever benchmark thread asked for the server first.

struct ServerState {
  std::mutex mu;
  bool started = false;
  pid_t pid = -1;
  uint16_t port = 0;
  std::string dir;
  std::thread keeper;
  std::mutex keeper_mu;
  std::condition_variable keeper_cv;
  bool keeper_stop = false;
  std::map<size_t, std::shared_ptr<Client>> clients;  // by pool size
};

ServerState& TheServer() {
  static ServerState* s = new ServerState;  // never destroyed: used from Die() too
  return *s;
}

pid_t ForkServer(const std::string& dir, const std::vector<std::string>& extra = {}) {
  std::string log = dir + "/cairnd.log", data = dir + "/data";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    if (!f || dup2(fileno(stdout), 2) < 0) _exit(127);
    std::vector<std::string> args = {CAIRND_PATH, "--data", data, "--listen", "127.0.0.1:0",
                                     "--durability", "nosync"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(CAIRND_PATH, argv.data());
    _exit(127);
  }
  return pid;
}

uint16_t WaitReady(pid_t pid, const std::string& dir) {
  std::regex ready("cairnd ready: listening on 127\\.0\\.0\\.1:([0-9]+)");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(dir + "/cairnd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    std::smatch m;
    if (std::regex_search(text, m, ready)) return uint16_t(std::stoi(m[1]));
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) Die("cairnd exited before it was ready:\n" + text);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Die("cairnd was not ready within 30 s");
}

void Fill(Client& c) {
  c.CreateCollection(kCollection);
  for (uint32_t i = 0; i < kRecords; i += kFillBatch) {
    Txn t;
    for (uint32_t j = i; j < i + kFillBatch; j++) t.Put(kCollection, Key(j), MakeDoc(j));
    c.Commit(t);
  }
  if (c.Count(kCollection) != kRecords) Die("the fill did not leave 10,000 records");
}

// Starts cairnd and fills it (once). Caller holds TheServer().mu.
void StartServerLocked() {
  ServerState& s = TheServer();
  if (s.started) return;
  s.started = true;
  std::string tmpl = BenchRoot() + "/cairn-cbench-XXXXXX";
  if (!mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
  s.dir = tmpl;
  std::mutex m;
  std::condition_variable cv;
  bool forked = false;
  s.keeper = std::thread([&s, &m, &cv, &forked] {
    pid_t pid = ForkServer(s.dir);
    {
      std::lock_guard l(m);
      s.pid = pid;
      forked = true;
    }
    cv.notify_all();
    std::unique_lock l(s.keeper_mu);
    s.keeper_cv.wait(l, [&s] { return s.keeper_stop; });
  });
  {
    std::unique_lock l(m);
    cv.wait(l, [&] { return forked; });
  }
  if (s.pid < 0) Die(std::string("fork: ") + std::strerror(errno));
  s.port = WaitReady(s.pid, s.dir);
  std::fprintf(stderr, "client_bench: cairnd pid %d on 127.0.0.1:%u, data in %s\n", int(s.pid),
               unsigned(s.port), s.dir.c_str());
  auto c = Client::Connect({.address = "127.0.0.1:" + std::to_string(s.port), .connections = 4});
  try {
    Fill(*c);
  } catch (const Error& e) {
    Die(std::string("fill: ") + e.what());
  }
}

void StopServer() {
  ServerState& s = TheServer();
  s.clients.clear();  // close connections first
  if (s.pid > 0) {
    kill(s.pid, SIGTERM);
    int status;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (waitpid(s.pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(s.pid, SIGKILL);
        waitpid(s.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    s.pid = -1;
  }
  if (s.keeper.joinable()) {
    {
      std::lock_guard l(s.keeper_mu);
      s.keeper_stop = true;
    }
    s.keeper_cv.notify_all();
    s.keeper.join();
  }
  if (!s.dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(s.dir, ec);
    s.dir.clear();
  }
}

// The shared Client with a pool of `connections`, connected once and kept for the run.
Client& ClientFor(size_t connections) {
  ServerState& s = TheServer();
  std::lock_guard l(s.mu);
  StartServerLocked();
  auto& c = s.clients[connections];
  if (!c) {
    try {
      c = Client::Connect(
          {.address = "127.0.0.1:" + std::to_string(s.port), .connections = connections});
    } catch (const Error& e) {
      Die(std::string("connect: ") + e.what());
    }
  }
  return *c;
}

// --- CPU accounting of both processes, from /proc/PID/task/*/schedstat: per thread, the
// nanoseconds on a CPU and the number of times it was switched onto one.

struct ThreadStat {
  uint64_t cpu_ns = 0;
  uint64_t runs = 0;
};

std::map<int, ThreadStat> Threads(pid_t pid) {
  std::map<int, ThreadStat> out;
  std::string base = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(base.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(base + "/" + e->d_name + "/schedstat");
    ThreadStat t;
    uint64_t wait_ns;
    if (in >> t.cpu_ns >> wait_ns >> t.runs) out[std::atoi(e->d_name)] = t;
  }
  closedir(d);
  return out;
}

uint64_t ProcessCpu(pid_t pid) {
  clockid_t clk;
  timespec ts{};
  if (clock_getcpuclockid(pid, &clk) != 0 || clock_gettime(clk, &ts) != 0) return 0;
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

// Counters, set on thread 0's state, for each process (cli_: this one, the benchmark
// threads and the client's IO thread; srv_: cairnd):
//   *_cores    CPU used, in cores (CPU seconds per wall-clock second)
//   *_top_thr  the busiest thread's share of one core
//   *_us/op    CPU microseconds per request
//   *_sw/op    times a thread was switched onto a CPU, per request (wake-ups)
//   cli_allocs/op  operator new calls in this process per request (harness included: the
//                  async lines' callbacks allocate nothing; BM_SyncGetCallback's promise does)
class CpuMeter {
 public:
  void Start() {
    server_ = TheServer().pid;
    wall_ = std::chrono::steady_clock::now();
    self_cpu_ = ProcessCpu(0);
    server_cpu_ = ProcessCpu(server_);
    self_threads_ = Threads(getpid());
    server_threads_ = Threads(server_);
    allocs_ = Allocations();
  }

  void Stop(benchmark::State& state, uint64_t items) {
    uint64_t allocs = Allocations() - allocs_;
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
    double self = double(ProcessCpu(0) - self_cpu_) / 1e9;
    double server = double(ProcessCpu(server_) - server_cpu_) / 1e9;
    double ops = double(std::max<uint64_t>(items, 1));
    // Over the threads alive at both ends: the busiest one's CPU seconds, and all switches.
    auto delta = [](const std::map<int, ThreadStat>& before, const std::map<int, ThreadStat>& after,
                    double* top, double* runs) {
      uint64_t t = 0, r = 0;
      for (auto& [tid, now] : after) {
        auto it = before.find(tid);
        if (it == before.end()) continue;
        t = std::max(t, now.cpu_ns - it->second.cpu_ns);
        r += now.runs - it->second.runs;
      }
      *top = double(t) / 1e9;
      *runs = double(r);
    };
    double self_top, self_runs, server_top, server_runs;
    delta(self_threads_, Threads(getpid()), &self_top, &self_runs);
    delta(server_threads_, Threads(server_), &server_top, &server_runs);
    state.counters["cli_cores"] = self / wall;
    state.counters["srv_cores"] = server / wall;
    state.counters["cli_top_thr"] = self_top / wall;
    state.counters["srv_top_thr"] = server_top / wall;
    state.counters["cli_us/op"] = self * 1e6 / ops;
    state.counters["srv_us/op"] = server * 1e6 / ops;
    state.counters["cli_sw/op"] = self_runs / ops;
    state.counters["srv_sw/op"] = server_runs / ops;
    state.counters["cli_allocs/op"] = double(allocs) / ops;
  }

 private:
  pid_t server_ = -1;
  std::chrono::steady_clock::time_point wall_;
  uint64_t self_cpu_ = 0, server_cpu_ = 0;
  std::map<int, ThreadStat> self_threads_, server_threads_;
  uint64_t allocs_ = 0;
};

// Operator new calls per iteration of an in-process line.
class AllocMeter {
 public:
  AllocMeter() : start_(Allocations()) {}
  void Stop(benchmark::State& state) {
    state.counters["allocs"] =
        double(Allocations() - start_) / double(std::max<int64_t>(state.iterations(), 1));
  }

 private:
  uint64_t start_;
};

// ============================================================================================
// In process: encoding and decoding, no network.

const std::vector<std::string>& Keys() {
  static auto* keys = [] {
    auto* v = new std::vector<std::string>;
    for (uint32_t i = 0; i < kRecords; i++) v->push_back(Key(i));
    return v;
  }();
  return *keys;
}

const std::vector<Document>& Docs() {
  static auto* docs = [] {
    auto* v = new std::vector<Document>;
    for (uint32_t i = 0; i < kDocs; i++) v->push_back(MakeDoc(i * 7919));
    return v;
  }();
  return *docs;
}

// The payload of the server's answer to a one-get transaction that found its record, built
// the way cairnd builds it (server/src/convert.cc, BuildTxnReply).
// cairnd's answer to a get of key 1234: a GetReply (protocol 2), or the TxnReply of a
// one-get transaction (protocol 1), built as cairnd's BuildGetReply / BuildGetsReply do.
std::string GetReplyPayload(uint32_t protocol) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::string& doc = Docs()[0].bytes();
  auto v = fbb.CreateVector(reinterpret_cast<const uint8_t*>(doc.data()), doc.size());
  if (protocol >= 2) {
    auto reply = wire::CreateGetReply(fbb, true, 4321, wire::ValueKind::Document, v);
    fbb.Finish(wire::CreateResponseFrame(fbb, 77, 0, wire::Reply::GetReply, reply.Union()));
    return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  }
  std::string key = Key(1234);
  auto k = fbb.CreateVector(reinterpret_cast<const uint8_t*>(key.data()), key.size());
  std::vector<flatbuffers::Offset<wire::Record>> recs = {
      wire::CreateRecord(fbb, k, 4321, wire::ValueKind::Document, v)};
  auto rv = fbb.CreateVector(recs);
  std::vector<flatbuffers::Offset<wire::OpResult>> results = {
      wire::CreateOpResult(fbb, true, 4321, rv, 0, 0)};
  auto reply = wire::CreateTxnReply(fbb, 0, fbb.CreateVector(results));
  fbb.Finish(wire::CreateResponseFrame(fbb, 77, 0, wire::Reply::TxnReply, reply.Union()));
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

std::string PutReplyPayload() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::OpResult>> results = {
      wire::CreateOpResult(fbb, true, 98765, 0, 0, 0)};
  auto reply = wire::CreateTxnReply(fbb, 98765, fbb.CreateVector(results));
  fbb.Finish(wire::CreateResponseFrame(fbb, 78, 0, wire::Reply::TxnReply, reply.Union()));
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

// What AsyncGet/Get do before sending: EncodeGet (a fresh request id, the frame header),
// for a server of protocol 2 (a Get request) or 1 (a one-get Txn).
void BM_Codec_EncodeGet(benchmark::State& state) {
  const uint32_t protocol = uint32_t(state.range(0));
  const auto& keys = Keys();
  uint32_t i = 0;
  size_t bytes = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    std::string frame = EncodeGet(kCollection, keys[i++ % kRecords], protocol);
    bytes = frame.size();
    benchmark::DoNotOptimize(frame);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["frame_bytes"] = double(bytes);
}
BENCHMARK(BM_Codec_EncodeGet)->ArgName("protocol")->Arg(1)->Arg(2);

// What AsyncPut/Put do before sending: EncodePut, with its 16-byte idempotency key.
void BM_Codec_EncodePut(benchmark::State& state) {
  const auto& keys = Keys();
  const auto& docs = Docs();
  uint32_t i = 0;
  size_t bytes = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    std::string frame = EncodePut(kCollection, keys[i % kRecords], docs[i % kDocs]);
    i++;
    bytes = frame.size();
    benchmark::DoNotOptimize(frame);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["frame_bytes"] = double(bytes);
}
BENCHMARK(BM_Codec_EncodePut);

// The general path (Commit, AsyncCommit) for the same one-operation transactions: building
// the Txn (an OpSpec per operation, the document copied) and EncodeTxn.
void BM_Codec_EncodeTxnGet(benchmark::State& state) {
  const auto& keys = Keys();
  uint32_t i = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    std::string frame = EncodeTxn(Txn().Get(kCollection, keys[i++ % kRecords]));
    benchmark::DoNotOptimize(frame);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Codec_EncodeTxnGet);

void BM_Codec_EncodeTxnPut(benchmark::State& state) {
  const auto& keys = Keys();
  const auto& docs = Docs();
  uint32_t i = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    std::string frame = EncodeTxn(Txn().Put(kCollection, keys[i % kRecords], docs[i % kDocs]));
    i++;
    benchmark::DoNotOptimize(frame);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Codec_EncodeTxnPut);

// What the IO thread does to every response before handing it to the call
// (Connection::Parse): the FlatBuffers verifier.
void BM_Codec_VerifyGetReply(benchmark::State& state) {
  std::string payload = GetReplyPayload(uint32_t(state.range(0)));
  AllocMeter allocs;
  for (auto _ : state) {
    bool ok = wire::VerifyResponseFrame(payload);
    if (!ok) {
      state.SkipWithError("the reply does not verify");
      break;
    }
    benchmark::DoNotOptimize(ok);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Codec_VerifyGetReply)->ArgName("protocol")->Arg(1)->Arg(2);

// What a get's completion does with the (verified) payload: read the TxnReply, copy the
// record out.
void BM_Codec_DecodeGet(benchmark::State& state) {
  const uint32_t protocol = uint32_t(state.range(0));
  std::string payload = GetReplyPayload(protocol);
  std::string request = EncodeGet(kCollection, Key(1234), protocol);
  AllocMeter allocs;
  for (auto _ : state) {
    std::optional<Record> r = DecodeGet(payload, request);
    if (!r || r->version != 4321) {
      state.SkipWithError("DecodeGet did not return the record");
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["payload_bytes"] = double(payload.size());
}
BENCHMARK(BM_Codec_DecodeGet)->ArgName("protocol")->Arg(1)->Arg(2);

void BM_Codec_DecodePut(benchmark::State& state) {
  std::string payload = PutReplyPayload();
  AllocMeter allocs;
  for (auto _ : state) {
    uint64_t commit = DecodeCommit(payload);
    if (commit != 98765) {
      state.SkipWithError("DecodeCommit did not return the commit");
      break;
    }
    benchmark::DoNotOptimize(commit);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["payload_bytes"] = double(payload.size());
}
BENCHMARK(BM_Codec_DecodePut);

// The parts, through the public API only.

void BM_Txn_BuildGet(benchmark::State& state) {
  const auto& keys = Keys();
  uint32_t i = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    Txn t;
    t.Get(kCollection, keys[i++ % kRecords]);
    benchmark::DoNotOptimize(t);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Txn_BuildGet);

void BM_Txn_BuildPut(benchmark::State& state) {
  const auto& keys = Keys();
  const auto& docs = Docs();
  uint32_t i = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    Txn t;
    t.Put(kCollection, keys[i % kRecords], docs[i % kDocs]);
    i++;
    benchmark::DoNotOptimize(t);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Txn_BuildPut);

// Document::Builder with the benchmark's four fields (formatting the strings included).
void BM_Doc_Builder(benchmark::State& state) {
  uint32_t i = 0;
  size_t bytes = 0;
  AllocMeter allocs;
  for (auto _ : state) {
    Document d = MakeDoc(i++);
    bytes = d.bytes().size();
    benchmark::DoNotOptimize(d);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["doc_bytes"] = double(bytes);
}
BENCHMARK(BM_Doc_Builder);

void BM_Doc_FromJson(benchmark::State& state) {
  std::string json = Docs()[0].ToJson();
  AllocMeter allocs;
  for (auto _ : state) {
    Document d = Document::FromJson(json);
    benchmark::DoNotOptimize(d);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
  state.counters["json_bytes"] = double(json.size());
}
BENCHMARK(BM_Doc_FromJson);

// Record::document() (a copy of the bytes and the root check) and reading two fields.
void BM_Doc_RecordDocument(benchmark::State& state) {
  std::optional<Record> r = DecodeGet(GetReplyPayload(2), EncodeGet(kCollection, Key(1234), 2));
  if (!r) {
    state.SkipWithError("no record");
    return;
  }
  AllocMeter allocs;
  for (auto _ : state) {
    Document d = r->document();
    int64_t age = d["age"].AsInt();
    std::string city = d["city"].AsString();
    benchmark::DoNotOptimize(age);
    benchmark::DoNotOptimize(city);
  }
  allocs.Stop(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Doc_RecordDocument);

// ============================================================================================
// Against cairnd: one Client, a pool of state.range(0) connections.

// The calls in flight. When all kWindow slots are taken, the benchmark thread sleeps until
// half of them are free again, then refills: the window holds 128-256 calls, and the
// completions wake the benchmark thread once per 128 calls rather than once per call (a
// waiter woken per call, or a spinning std::counting_semaphore, made the harness a large
// share of the client process's CPU). Static: completions run on the client's IO thread and
// must never touch a benchmark's stack after the last one.
struct Window {
  std::atomic<int> inflight{0};
  std::atomic<int> target{0};  // the waiter wakes when inflight <= target
  std::atomic<bool> waiting{false};
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> errors{0};
  std::string first_error;  // guarded by mu

  // Blocks until at most `t` calls are in flight.
  void WaitFor(int t) {
    if (inflight.load() <= t) return;
    std::unique_lock l(mu);
    target = t;
    waiting = true;
    cv.wait(l, [&] { return inflight.load() <= t; });
    waiting = false;
  }
};
Window& TheWindow() {
  static auto* w = new Window;
  return *w;
}

// Called once per completed call, on the IO thread.
void Done(std::exception_ptr e) {
  Window& w = TheWindow();
  if (e && w.errors.fetch_add(1) == 0) {
    std::lock_guard l(w.mu);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      w.first_error = x.what();
    }
  }
  int now = w.inflight.fetch_sub(1) - 1;
  if (w.waiting.load() && now <= w.target.load()) {
    std::lock_guard l(w.mu);  // the waiter is either before its check or in wait()
    w.cv.notify_one();
  }
}

// Runs `issue(n)` once per iteration with at most kWindow calls outstanding; each call's
// completion must call Done() exactly once. The last iteration waits for every call to
// complete, so that the timed region covers all the work counted.
template <typename Issue>
void Pipelined(benchmark::State& state, Issue issue) {
  Window& w = TheWindow();
  w.errors = 0;
  CpuMeter meter;
  meter.Start();
  uint64_t n = 0;
  const uint64_t last = uint64_t(state.max_iterations);
  for (auto _ : state) {
    if (w.inflight.load() >= kWindow) w.WaitFor(kWindow / 2);
    w.inflight++;
    issue(n);
    if (++n == last) w.WaitFor(0);
  }
  w.WaitFor(0);  // stopped early: still wait for the calls in flight
  meter.Stop(state, n);
  state.SetItemsProcessed(int64_t(n));
  if (w.errors) {
    std::lock_guard l(w.mu);
    state.SkipWithError(("calls failed, first: " + w.first_error).c_str());
  }
}

void BM_AsyncGet(benchmark::State& state) {
  Client& c = ClientFor(size_t(state.range(0)));
  const auto& keys = Keys();
  Rng rng(1);
  std::atomic<uint64_t> misses{0};
  Pipelined(state, [&](uint64_t) {
    c.AsyncGet(kCollection, keys[rng.Next(kRecords)],
               [&misses](std::exception_ptr e, std::optional<Record> r) {
                 if (!e && !r) misses++;
                 Done(e);
               });
  });
  if (misses) state.SkipWithError("a get did not find its record");
}
BENCHMARK(BM_AsyncGet)->ArgName("conns")->Arg(1)->Arg(4)->Arg(16)->UseRealTime();

void BM_AsyncPut(benchmark::State& state) {
  Client& c = ClientFor(size_t(state.range(0)));
  const auto& keys = Keys();
  const auto& docs = Docs();
  Rng rng(2);
  Pipelined(state, [&](uint64_t n) {
    c.AsyncPut(kCollection, keys[rng.Next(kRecords)], docs[n % kDocs],
               [](std::exception_ptr e, uint64_t) { Done(e); });
  });
}
BENCHMARK(BM_AsyncPut)->ArgName("conns")->Arg(1)->Arg(4)->Arg(16)->UseRealTime();

// --- The floor: the same gets without libcairn, over one blocking socket speaking the wire
// protocol, with frames encoded before the timed loop and replies only checked for an
// error. What the library adds per request is the difference to these lines.

class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Die(std::string("raw connect: ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestFrame(
        fbb, 1, wire::Request::Hello,
        wire::CreateHello(fbb, wire::kProtocolVersion, fbb.CreateString("client_bench-raw"))
            .Union()));
    Send(Framed(fbb));
    ReadFrames([](std::string_view) {});
  }
  ~RawConnection() { close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  static std::string Framed(const flatbuffers::FlatBufferBuilder& fbb) {
    std::string f(wire::kFrameHeaderSize, '\0');
    wire::StoreFrameHeader(f.data(), fbb.GetSize());
    f.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    return f;
  }

  void Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) Die(std::string("raw send: ") + std::strerror(errno));
      bytes.remove_prefix(size_t(n));
    }
  }

  // Blocks until at least one whole frame is in; calls f(payload) for each; returns how many.
  template <typename F>
  size_t ReadFrames(F f) {
    while (true) {
      size_t pos = 0, frames = 0;
      while (true) {
        std::string_view payload;
        size_t consumed = 0;
        auto st = wire::ParseFrame(std::string_view(in_).substr(pos), wire::kDefaultMaxFrame,
                                   &payload, &consumed);
        if (st != wire::FrameStatus::kComplete) break;
        f(payload);
        pos += consumed;
        frames++;
      }
      in_.erase(0, pos);
      if (frames) return frames;
      char buf[64 << 10];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) Die("raw recv: the server closed the connection");
      in_.append(buf, size_t(n));
    }
  }

 private:
  int fd_ = -1;
  std::string in_;
};

// Get frames for random existing keys, encoded once.
const std::vector<std::string>& RawGetFrames() {
  static auto* frames = [] {
    auto* v = new std::vector<std::string>;
    Rng rng(4);
    for (uint64_t i = 0; i < 4096; i++) {
      flatbuffers::FlatBufferBuilder fbb;
      std::string key = Key(rng.Next(kRecords));
      auto get = wire::CreateGet(
          fbb, fbb.CreateString(kCollection),
          fbb.CreateVector(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
      auto op = wire::CreateOperation(fbb, wire::Op::Get, get.Union());
      auto txn = wire::CreateTxn(fbb, 0, fbb.CreateVector(&op, 1));
      fbb.Finish(wire::CreateRequestFrame(fbb, 100 + i, wire::Request::Txn, txn.Union()));
      v->push_back(RawConnection::Framed(fbb));
    }
    return v;
  }();
  return *frames;
}

bool RawReplyOk(std::string_view payload) {
  auto r = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
  return !r->error() && r->reply_type() == wire::Reply::TxnReply;
}

// One get at a time: the round trip a synchronous call cannot beat.
void BM_RawGet_Sync(benchmark::State& state) {
  ClientFor(1);  // starts the server
  RawConnection conn(TheServer().port);
  const auto& frames = RawGetFrames();
  uint64_t n = 0, bad = 0;
  CpuMeter meter;
  meter.Start();
  for (auto _ : state) {
    conn.Send(frames[n++ % frames.size()]);
    conn.ReadFrames([&](std::string_view p) { bad += !RawReplyOk(p); });
  }
  meter.Stop(state, n);
  state.SetItemsProcessed(int64_t(n));
  if (bad) state.SkipWithError("a raw get failed");
}
BENCHMARK(BM_RawGet_Sync)->UseRealTime();

// kWindow gets in flight on one connection, from one thread: each time replies come in, as
// many new frames go out, in one write. An iteration is one reply.
void BM_RawGet_Pipelined(benchmark::State& state) {
  ClientFor(1);
  RawConnection conn(TheServer().port);
  const auto& frames = RawGetFrames();
  const uint64_t total = uint64_t(state.max_iterations);
  uint64_t sent = 0, bad = 0;
  std::string batch;
  auto send = [&](uint64_t k) {
    batch.clear();
    for (uint64_t i = 0; i < k; i++) batch += frames[sent++ % frames.size()];
    conn.Send(batch);
  };
  CpuMeter meter;
  meter.Start();
  uint64_t unused = 0;  // replies read, not yet counted by an iteration
  send(std::min<uint64_t>(kWindow, total));
  for (auto _ : state) {
    if (unused == 0) {
      unused = conn.ReadFrames([&](std::string_view p) { bad += !RawReplyOk(p); });
      send(std::min(unused, total - sent));
    }
    unused--;
  }
  meter.Stop(state, total);
  state.SetItemsProcessed(state.iterations());
  if (bad) state.SkipWithError("a raw get failed");
}
BENCHMARK(BM_RawGet_Pipelined)->UseRealTime();

// Synchronous Get() in a loop from each of state.threads() threads sharing the Client.
void BM_SyncGet(benchmark::State& state) {
  Client& c = ClientFor(size_t(state.range(0)));
  const auto& keys = Keys();
  Rng rng(3 + uint64_t(state.thread_index()));
  CpuMeter meter;
  if (state.thread_index() == 0) meter.Start();
  uint64_t n = 0;
  try {
    for (auto _ : state) {
      std::optional<Record> r = c.Get(kCollection, keys[rng.Next(kRecords)]);
      if (!r) {
        state.SkipWithError("a get did not find its record");
        break;
      }
      n++;
    }
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
  if (state.thread_index() == 0) meter.Stop(state, n * uint64_t(state.threads()));
  state.SetItemsProcessed(int64_t(n));
}
BENCHMARK(BM_SyncGet)
    ->ArgName("conns")
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

// A synchronous get built on AsyncGet: the callback, which runs on the client's IO thread,
// hands the record straight to the waiting thread. Client::Get waits on asio::use_future
// instead, whose completion asio runs on its system_executor (a pool of its own threads):
// the difference between the two lines is the cost of that extra hop.
void BM_SyncGetCallback(benchmark::State& state) {
  Client& c = ClientFor(size_t(state.range(0)));
  const auto& keys = Keys();
  Rng rng(3 + uint64_t(state.thread_index()));
  CpuMeter meter;
  if (state.thread_index() == 0) meter.Start();
  uint64_t n = 0;
  for (auto _ : state) {
    // Shared with the callback: the waiter may wake and leave before set_value returns.
    auto p = std::make_shared<std::promise<std::optional<Record>>>();
    auto f = p->get_future();
    c.AsyncGet(kCollection, keys[rng.Next(kRecords)],
               [p](std::exception_ptr e, std::optional<Record> r) {
                 if (e) {
                   p->set_exception(e);
                 } else {
                   p->set_value(std::move(r));
                 }
               });
    try {
      if (!f.get()) {
        state.SkipWithError("a get did not find its record");
        break;
      }
    } catch (const Error& e) {
      state.SkipWithError(e.what());
      break;
    }
    n++;
  }
  if (state.thread_index() == 0) meter.Stop(state, n * uint64_t(state.threads()));
  state.SetItemsProcessed(int64_t(n));
}
BENCHMARK(BM_SyncGetCallback)
    ->ArgName("conns")
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

// Connections per second: Client::Connect (TCP, Hello, and with auth=1 the SCRAM-SHA-256
// exchange: PBKDF2 at the default 15,000 iterations on the client), one Ping, close. With
// auth=1 against a cairnd of its own with one user (--init-admin), so that the other
// benchmarks' server stays open; auth=0 against that one.
struct AuthServer {
  std::string dir;
  pid_t pid = -1;
  uint16_t port = 0;
  ~AuthServer() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      int status;
      waitpid(pid, &status, 0);
    }
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

AuthServer& TheAuthServer() {
  static AuthServer s;
  if (s.pid > 0) return s;
  std::string tmpl = BenchRoot() + "/cairn-abench-XXXXXX";
  if (!mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
  s.dir = tmpl;
  std::ofstream(s.dir + "/pw") << "bench password\n";
  s.pid = ForkServer(s.dir, {"--init-admin", "bench", "--admin-password-file", s.dir + "/pw"});
  if (s.pid < 0) Die(std::string("fork: ") + std::strerror(errno));
  s.port = WaitReady(s.pid, s.dir);
  return s;
}

void BM_ConnectPingClose(benchmark::State& state) {
  bool auth = state.range(0) != 0;
  uint16_t port;
  if (auth) {
    port = TheAuthServer().port;
  } else {
    std::lock_guard l(TheServer().mu);
    StartServerLocked();
    port = TheServer().port;
  }
  ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(port);
  o.connections = 1;
  if (auth) {
    o.user = "bench";
    o.password = "bench password";
  }
  uint64_t n = 0;
  for (auto _ : state) {
    try {
      auto c = Client::Connect(o);
      c->Ping();
    } catch (const Error& e) {
      Die(std::string("connect: ") + e.what());
    }
    n++;
  }
  state.SetItemsProcessed(int64_t(n));
}
BENCHMARK(BM_ConnectPingClose)->ArgName("auth")->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace cairn::client

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("doc_bytes", std::to_string(cairn::client::Docs()[0].bytes().size()));
  benchmark::AddCustomContext("records", std::to_string(cairn::client::kRecords));
  benchmark::AddCustomContext("async_window", std::to_string(cairn::client::kWindow));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  cairn::client::StopServer();
  return 0;
}
