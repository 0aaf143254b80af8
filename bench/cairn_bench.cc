// cairn-bench: a load generator for cairnd, in the manner of redis-benchmark,
// memtier and YCSB, built on libcairn's asynchronous API (so it measures what an
// application gets).
//
//   cairn-bench --addr 127.0.0.1:7420 --workload get --connections 50 --pipeline 16
//               --keys 100000 --value-size 100 --duration 10 --load
//
// Each of --threads threads owns one Client (one IO thread) with its share of the
// connections, and keeps connections x pipeline requests in flight: every
// completion records its latency and sends the next request. Latencies go into a
// histogram with bounded relative error; errors are counted, never dropped.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "cairn/client/client.h"
#include "cairn/protocol/histogram.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace cairn;
using namespace cairn::client;

// YCSB's scrambled zipfian generator (Gray et al., "Quickly generating billion-record
// synthetic databases"), over [0, n).
class Zipfian {
 public:
  explicit Zipfian(uint64_t n, double theta = 0.99) : n_(n), theta_(theta) {
    zetan_ = Zeta(n, theta);
    double zeta2 = Zeta(2, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1 - std::pow(2.0 / double(n), 1 - theta)) / (1 - zeta2 / zetan_);
  }
  uint64_t Next(std::mt19937_64& rng) const {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    double uz = u * zetan_;
    uint64_t v;
    if (uz < 1.0) {
      v = 0;
    } else if (uz < 1.0 + std::pow(0.5, theta_)) {
      v = 1;
    } else {
      v = uint64_t(double(n_) * std::pow(eta_ * u - eta_ + 1, alpha_));
    }
    // Scramble so that popular keys are spread over the key space (FNV-1a of v).
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h % n_;
  }

 private:
  static double Zeta(uint64_t n, double theta) {
    double sum = 0;
    for (uint64_t i = 0; i < n; i++) sum += 1 / std::pow(double(i + 1), theta);
    return sum;
  }
  uint64_t n_;
  double theta_, zetan_, alpha_, eta_;
};

struct Config {
  std::string addr = "127.0.0.1:7420";
  std::string workload = "get";
  double read_ratio = 0.9;
  int connections = 50;
  int pipeline = 1;
  int threads = 1;
  uint64_t keys = 100000;
  size_t value_size = 100;
  std::string distribution = "uniform";
  double duration = 10;
  uint64_t requests = 0;
  bool load = false;
  bool json = false;
  std::string collection = "bench";
  int txn_ops = 4;
  // TLS, as the cairn CLI's flags (docs/security.md).
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  void Apply(ClientOptions* o) const {
    o->tls = tls;
    o->tls_ca = tls_ca;
    o->tls_cert = tls_cert;
    o->tls_key = tls_key;
    o->tls_server_name = tls_server_name;
  }
};

// 16-byte keys, "k" + 15 digits (redis-benchmark's are "key:" + 12 digits).
struct Key {
  explicit Key(uint64_t i) {
    std::memcpy(buf, "k000000000000000", 16);
    for (size_t p = 16; p > 1 && i; i /= 10) buf[--p] = char('0' + i % 10);
  }
  operator std::string_view() const { return {buf, 16}; }
  char buf[16];
};

// The document written for key i, of about `size` bytes: {"g": i % 1000, "v": "xxxx..."}.
// There are 1,000 of them, built once (redis-benchmark sends one value throughout):
// building a document per request would make the load generator measure itself.
class Values {
 public:
  explicit Values(size_t size) {
    size_t pad = size > 24 ? size - 24 : 1;
    for (int64_t g = 0; g < kGroups; g++) {
      docs_.push_back(Document::Builder()
                          .Set("g", g)
                          .Set("v", std::string(pad, char('a' + g % 26)))
                          .Build());
    }
  }
  const Document& operator()(uint64_t i) const { return docs_[i % kGroups]; }
  static constexpr int64_t kGroups = 1000;

 private:
  std::vector<Document> docs_;
};

enum class Workload { kGet, kPut, kMixed, kTxn, kQuery, kYcsbA, kYcsbB, kYcsbC, kYcsbD, kYcsbE, kYcsbF };

Workload ParseWorkload(const std::string& w) {
  static const std::pair<const char*, Workload> names[] = {
      {"get", Workload::kGet},      {"put", Workload::kPut},      {"mixed", Workload::kMixed},
      {"txn", Workload::kTxn},      {"query", Workload::kQuery},  {"ycsb-a", Workload::kYcsbA},
      {"ycsb-b", Workload::kYcsbB}, {"ycsb-c", Workload::kYcsbC}, {"ycsb-d", Workload::kYcsbD},
      {"ycsb-e", Workload::kYcsbE}, {"ycsb-f", Workload::kYcsbF}};
  for (const auto& [name, w2] : names) {
    if (w == name) return w2;
  }
  throw std::invalid_argument("unknown workload " + w);
}

// A missing collection or index: UnknownName from a protocol 3 server, NotFound from
// older ones (where NotFound is also a replace of an absent record, which cairn-bench
// never sends).
bool IsUnknownName(const Error& e) {
  return e.code() == ErrorCode::kUnknownName ||
         (e.code() == ErrorCode::kNotFound &&
          e.message().find("does not exist") != std::string::npos);
}

struct Totals {
  std::atomic<uint64_t> ops{0}, errors{0}, issued{0};
  Histogram latency_ns;
  std::mutex mu;
  std::condition_variable cv;  // signalled when a driver is done
  std::string first_error;     // guarded by mu
  bool first_error_unknown_name = false;  // a missing collection or index; guarded by mu
  int drivers_done = 0;        // guarded by mu
};

// One thread's share: a Client with `connections` connections, and `pipeline` requests
// in flight on each, as redis-benchmark and memtier keep them: a request is bound to a
// connection (a Client::Channel), and its completion sends the next one on the same
// connection. Everything runs on the client's IO thread once started.
class Driver {
 public:
  Driver(const Config& c, int index, int connections, Totals* totals, const Zipfian* zipf,
         const Values* values)
      : c_(c), workload_(ParseWorkload(c.workload)), totals_(totals), zipf_(zipf),
        values_(*values), rng_(0x5eed + index) {
    ClientOptions o;
    o.address = c.addr;
    o.connections = size_t(std::max(1, connections));
    o.client_name = "cairn-bench";
    c.Apply(&o);
    client_ = Client::Connect(o);
    connections_ = std::max(1, connections);
    // Inserted keys (ycsb-d, ycsb-e) lie past the loaded ones, apart for each thread and
    // each run, so that runs against the same database do not insert the same keys.
    uint64_t run = std::random_device{}() & 0xffff;
    next_insert_ = c.keys + (run << 32) + (uint64_t(index) << 26);
  }

  // Starts the window; returns once every request has completed after `stop`.
  void Run(std::atomic<bool>* stop) {
    stop_ = stop;
    {
      std::lock_guard lock(mu_);
      inflight_ = connections_ * c_.pipeline;  // each slot ends with a Finish()
    }
    asio::post(client_->executor(), [this] {
      for (int p = 0; p < c_.pipeline; p++) {
        for (int i = 0; i < connections_; i++) Issue(client_->channel(size_t(i)));
      }
    });
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return inflight_ == 0; });
    }
    std::lock_guard lock(totals_->mu);
    totals_->drivers_done++;
    totals_->cv.notify_all();
  }

 private:
  using Channel = Client::Channel;

  uint64_t PickKey() {
    if (zipf_) return zipf_->Next(rng_);
    return std::uniform_int_distribution<uint64_t>(0, c_.keys - 1)(rng_);
  }
  bool Coin(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  bool ShouldStop() {
    if (stop_->load(std::memory_order_relaxed)) return true;
    if (c_.requests && totals_->issued.fetch_add(1) >= c_.requests) return true;
    return false;
  }

  void Done(Channel ch, Clock::time_point t0, std::exception_ptr e) {
    totals_->latency_ns.Record(uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
    if (e) {
      totals_->errors++;
      try {
        std::rethrow_exception(e);
      } catch (const Error& ex) {
        std::lock_guard lock(totals_->mu);
        if (totals_->first_error.empty()) {
          totals_->first_error = ex.what();
          totals_->first_error_unknown_name = IsUnknownName(ex);
        }
      } catch (const std::exception& ex) {
        std::lock_guard lock(totals_->mu);
        if (totals_->first_error.empty()) totals_->first_error = ex.what();
      }
    } else {
      totals_->ops++;
    }
    Issue(ch);
  }

  // Sends the next request of a slot on `ch`, or ends the slot.
  void Issue(Channel ch) {
    if (ShouldStop()) return Finish();
    auto t0 = Clock::now();
    auto done = [this, ch, t0](std::exception_ptr e, auto&&...) { Done(ch, t0, e); };
    const std::string& coll = c_.collection;
    switch (workload_) {
      case Workload::kGet:
      case Workload::kYcsbC:
        return Get(ch, done);
      case Workload::kPut:
        return Put(ch, done);
      case Workload::kMixed:
        return Coin(c_.read_ratio) ? Get(ch, done) : Put(ch, done);
      case Workload::kYcsbA:
        return Coin(0.5) ? Get(ch, done) : Put(ch, done);
      case Workload::kYcsbB:
        return Coin(0.95) ? Get(ch, done) : Put(ch, done);
      case Workload::kYcsbD:
        return Coin(0.95) ? Get(ch, done) : Insert(ch, done);
      case Workload::kYcsbE: {
        if (!Coin(0.95)) return Insert(ch, done);
        ScanOptions s;
        s.from = Bound{std::string(Key(PickKey())), true};
        s.limit = uint32_t(std::uniform_int_distribution<int>(1, 100)(rng_));
        ch.AsyncCommit(Txn().Scan(coll, s), done);
        return;
      }
      case Workload::kYcsbF: {
        if (Coin(0.5)) return Get(ch, done);
        // Read-modify-write as YCSB does it: a read, then an update of the same record
        // (not atomic, as in YCSB; one operation, two round trips).
        uint64_t k = PickKey();
        ch.AsyncGet(coll, Key(k), [this, ch, t0, k](std::exception_ptr e, std::optional<Record>) {
          if (e) return Done(ch, t0, e);
          Channel c = ch;
          c.AsyncPut(c_.collection, Key(k), values_(k + 1),
                     [this, ch, t0](std::exception_ptr e, uint64_t) { Done(ch, t0, e); });
        });
        return;
      }
      case Workload::kTxn: {
        Txn t;
        for (int i = 0; i + 1 < c_.txn_ops; i++) t.Get(coll, Key(PickKey()));
        uint64_t k = PickKey();
        t.Put(coll, Key(k), values_(k));
        ch.AsyncCommit(t, done);
        return;
      }
      case Workload::kQuery: {
        QueryOptions q;
        q.equal = {int64_t(PickKey() % Values::kGroups)};
        q.limit = 10;
        ch.AsyncCommit(Txn().Query(coll, "by_g", q), done);
        return;
      }
    }
  }

  template <typename F>
  void Get(Channel ch, F& done) {
    ch.AsyncGet(c_.collection, Key(PickKey()), done);
  }
  template <typename F>
  void Put(Channel ch, F& done) {
    uint64_t k = PickKey();
    ch.AsyncPut(c_.collection, Key(k), values_(k), done);
  }
  template <typename F>
  void Insert(Channel ch, F& done) {
    uint64_t k = next_insert_++;
    ch.AsyncCommit(Txn().Insert(c_.collection, Key(k), values_(k)), done);
  }

  void Finish() {
    std::lock_guard lock(mu_);
    if (--inflight_ == 0) cv_.notify_all();
  }

  const Config& c_;
  const Workload workload_;
  Totals* totals_;
  const Zipfian* zipf_;  // nullptr: uniform
  const Values& values_;
  std::mt19937_64 rng_;
  std::shared_ptr<Client> client_;
  int connections_ = 1;
  uint64_t next_insert_;
  std::atomic<bool>* stop_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  int inflight_ = 0;  // slots still sending; guarded by mu_
};

// Creates the collection (and the index the query workload uses) and writes every key.
void Load(const Config& c, const Values& values) {
  ClientOptions o;
  o.address = c.addr;
  o.connections = 2;
  o.client_name = "cairn-bench-load";
  c.Apply(&o);
  auto db = Client::Connect(o);
  try {
    db->CreateCollection(c.collection);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAlreadyExists) throw;
  }
  if (c.workload == "query") {
    try {
      db->CreateIndex(c.collection, {"by_g", {"g"}, false});
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kAlreadyExists) throw;
    }
  }
  auto t0 = Clock::now();
  const uint64_t batch = 200;
  std::vector<std::future<TxnResult>> inflight;
  for (uint64_t i = 0; i < c.keys; i += batch) {
    Txn t;
    for (uint64_t k = i; k < std::min(c.keys, i + batch); k++) t.Put(c.collection, Key(k), values(k));
    inflight.push_back(db->AsyncCommit(t, asio::use_future));
    if (inflight.size() >= 8) {
      for (auto& f : inflight) f.get();
      inflight.clear();
    }
  }
  for (auto& f : inflight) f.get();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!c.json) std::fprintf(stderr, "loaded %llu keys in %.1f s\n", (unsigned long long)c.keys, s);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{
      "cairn-bench: load generator for cairnd. Exit status: 0 if every request succeeded, 1 if "
      "any failed (the count and the first error are printed), 3 if cairnd cannot be reached "
      "or --load fails"};
  app.add_option("--addr", c.addr, "HOST:PORT of cairnd (if not given: $CAIRN_ADDR, else this)")
      ->envname("CAIRN_ADDR")
      ->capture_default_str();
  app.add_flag("--tls", c.tls, "connect with TLS");
  app.add_option("--tls-ca", c.tls_ca, "CA (PEM) for the server's certificate; implies --tls")
      ->envname("CAIRN_TLS_CA");
  app.add_option("--tls-cert", c.tls_cert, "client certificate (PEM); implies --tls")
      ->envname("CAIRN_TLS_CERT");
  app.add_option("--tls-key", c.tls_key, "its key (PEM)")->envname("CAIRN_TLS_KEY");
  app.add_option("--tls-server-name", c.tls_server_name,
                 "name the server's certificate must have (default: the host of --addr)")
      ->envname("CAIRN_TLS_SERVER_NAME");
  app.add_option("--workload", c.workload,
                 "get, put, mixed, txn, query, ycsb-a ... ycsb-f")
      ->check(CLI::IsMember({"get", "put", "mixed", "txn", "query", "ycsb-a", "ycsb-b", "ycsb-c",
                             "ycsb-d", "ycsb-e", "ycsb-f"}))
      ->capture_default_str();
  app.add_option("--read-ratio", c.read_ratio, "mixed: share of reads")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--connections", c.connections, "connections in all")->check(CLI::Range(1, 10000))->capture_default_str();
  app.add_option("--pipeline", c.pipeline, "requests in flight per connection")->check(CLI::Range(1, 10000))->capture_default_str();
  app.add_option("--threads", c.threads, "client threads (each one Client, one IO thread)")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--keys", c.keys, "key space")->check(CLI::Range(uint64_t(1), uint64_t(1) << 40))->capture_default_str();
  app.add_option("--value-size", c.value_size, "bytes per document (about)")->capture_default_str();
  app.add_option("--distribution", c.distribution, "uniform or zipfian")->check(CLI::IsMember({"uniform", "zipfian"}))->capture_default_str();
  auto* dur = app.add_option("--duration", c.duration, "seconds to run")->capture_default_str();
  app.add_option("--requests", c.requests, "stop after this many requests instead")->excludes(dur);
  app.add_flag("--load", c.load, "populate the key space first, in batches");
  app.add_flag("--json", c.json, "print one JSON object");
  app.add_option("--collection", c.collection, "collection to use")->capture_default_str();
  app.add_option("--txn-ops", c.txn_ops, "txn: operations per transaction (gets, then a put)")->check(CLI::Range(1, 1000))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  c.threads = std::min(c.threads, c.connections);

  try {
    Values values(c.value_size);
    if (c.load) Load(c, values);
    std::optional<Zipfian> zipf;
    if (c.distribution == "zipfian") zipf.emplace(c.keys);
    Totals totals;
    std::vector<std::unique_ptr<Driver>> drivers;
    for (int t = 0; t < c.threads; t++) {
      int conns = c.connections / c.threads + (t < c.connections % c.threads ? 1 : 0);
      drivers.push_back(
          std::make_unique<Driver>(c, t, conns, &totals, zipf ? &*zipf : nullptr, &values));
    }
    std::atomic<bool> stop{false};
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (auto& d : drivers) threads.emplace_back([&d, &stop] { d->Run(&stop); });
    bool tty = isatty(2) && !c.json;
    uint64_t last_ops = 0;
    double last_print = 0;
    auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(c.duration));
    while (true) {
      {
        // Wake for the progress line, the end of the duration, or the drivers being done
        // (with --requests they stop by themselves).
        std::unique_lock lock(totals.mu);
        auto wake = std::min(Clock::now() + std::chrono::milliseconds(250),
                             c.requests ? Clock::time_point::max() : deadline);
        totals.cv.wait_until(lock, wake, [&] { return totals.drivers_done == c.threads; });
        if (totals.drivers_done == c.threads) break;
      }
      double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      if (tty && elapsed - last_print >= 1.0) {
        uint64_t ops = totals.ops;
        std::fprintf(stderr, "\r%5.0f s  %10.0f ops/s  errors %llu   ", elapsed,
                     double(ops - last_ops) / (elapsed - last_print), (unsigned long long)totals.errors.load());
        last_ops = ops;
        last_print = elapsed;
      }
      if (!c.requests && Clock::now() >= deadline) break;
    }
    stop = true;
    for (auto& t : threads) t.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    if (tty) std::fprintf(stderr, "\r%60s\r", "");
    const Histogram& h = totals.latency_ns;
    auto us = [&](double q) { return double(h.Percentile(q)) / 1e3; };
    double ops_per_sec = double(totals.ops) / elapsed;
    if (c.json) {
      std::printf(
          "{\"workload\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"threads\":%d,\"keys\":%llu,"
          "\"value_size\":%zu,\"distribution\":\"%s\",\"seconds\":%.3f,\"ops\":%llu,"
          "\"ops_per_sec\":%.1f,\"errors\":%llu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
          "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}\n",
          c.workload.c_str(), c.connections, c.pipeline, c.threads, (unsigned long long)c.keys,
          c.value_size, c.distribution.c_str(), elapsed, (unsigned long long)totals.ops.load(),
          ops_per_sec, (unsigned long long)totals.errors.load(), us(0.5), us(0.9), us(0.99),
          us(0.999), double(h.max()) / 1e3, h.Mean() / 1e3);
    } else {
      std::printf("workload %s: %d connections x pipeline %d, %d thread(s), %llu keys, %zu-byte values, %s\n",
                  c.workload.c_str(), c.connections, c.pipeline, c.threads, (unsigned long long)c.keys,
                  c.value_size, c.distribution.c_str());
      std::printf("  %llu ops in %.2f s: %.0f ops/s, %llu errors\n", (unsigned long long)totals.ops.load(),
                  elapsed, ops_per_sec, (unsigned long long)totals.errors.load());
      std::printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us(0.5), us(0.9),
                  us(0.99), us(0.999), double(h.max()) / 1e3);
    }
    if (totals.errors) {
      std::fprintf(stderr, "cairn-bench: %llu errors%s; first: %s\n",
                   (unsigned long long)totals.errors.load(),
                   totals.ops == 0 ? " (every request failed)" : "", totals.first_error.c_str());
      if (totals.first_error_unknown_name) {
        std::fprintf(stderr,
                     "cairn-bench: collection '%s'%s does not exist on the server: run once "
                     "with --load to create it and write the --keys records\n",
                     c.collection.c_str(), c.workload == "query" ? " (or its index by_g)" : "");
      }
    }
    return totals.errors ? 1 : 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "cairn-bench: %s\n", e.what());
    return 3;
  }
}
