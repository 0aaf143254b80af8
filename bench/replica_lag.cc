// cairn-replica-lag: a write load on a primary, paced or as fast as it goes, and the lag a
// replica reports for it (docs/benchmarks.md, "Replication"). The replica measures the lag
// itself: per applied batch, the time from its oldest commit on the primary (the commit's
// time stamp, ms) to the end of the ApplyLog that made it durable on the replica
// ("replication_lag" in its stats). Start the replica afresh for each run so that its
// summary holds this run alone.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "cairn/client/client.h"

using namespace cairn::client;
using Clock = std::chrono::steady_clock;

namespace {

std::shared_ptr<Client> Open(const std::string& addr) {
  ClientOptions o;
  o.address = addr;
  o.connections = 1;
  return Client::Connect(o);
}

const ServerStats::Latency* Find(const ServerStats& s, const std::string& name) {
  for (const auto& l : s.latencies) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

uint64_t Counter(const ServerStats& s, const std::string& name) {
  for (const auto& [n, v] : s.counters) {
    if (n == name) return v;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string primary = "127.0.0.1:7420", replica;
  double rate = 0, seconds = 10;
  int writers = 16;
  size_t value_size = 100;
  CLI::App app{"cairn-replica-lag: paced writes on a primary, lag as a replica reports it"};
  app.add_option("--primary", primary, "HOST:PORT of the primary")->capture_default_str();
  app.add_option("--replica", replica, "HOST:PORT of a replica of it (optional)");
  app.add_option("--rate", rate, "writes per second in all (0: as fast as the writers go)")
      ->capture_default_str();
  app.add_option("--writers", writers, "concurrent writers (one connection each)")
      ->capture_default_str();
  app.add_option("--seconds", seconds, "how long to write")->capture_default_str();
  app.add_option("--value-size", value_size, "bytes per document (about)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::atomic<uint64_t> done{0}, failed{0};
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; w++) {
    threads.emplace_back([&, w] {
      auto db = Open(primary);
      std::string pad(value_size, 'x');
      // Each writer keeps its share of the rate on a schedule of its own (no catch-up
      // bursts beyond one interval).
      const double interval = rate > 0 ? writers / rate : 0;
      auto next = Clock::now();
      for (uint64_t i = 0; Clock::now() < end; i++) {
        if (interval > 0) {
          next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
          auto now = Clock::now();
          if (next > now) std::this_thread::sleep_until(next);
          else if (now - next > std::chrono::milliseconds(100)) next = now;
        }
        try {
          db->Put("lag", "w" + std::to_string(w) + "-" + std::to_string(i % 10000),
                  Document::Builder().Set("i", i).Set("pad", pad).Build());
          done++;
        } catch (const std::exception&) {
          failed++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("{\"writes\":%llu,\"failed\":%llu,\"seconds\":%.2f,\"writes_per_s\":%.0f",
              (unsigned long long)done.load(), (unsigned long long)failed.load(), secs,
              double(done.load()) / secs);
  if (!replica.empty()) {
    auto p = Open(primary);
    auto r = Open(replica);
    uint64_t last = p->Stats().last_commit;
    // Let the replica finish what was sent (bounded).
    for (int i = 0; i < 500 && r->Stats().last_commit < last; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ServerStats s = r->Stats();
    if (const auto* l = Find(s, "replication_lag")) {
      std::printf(",\"lag_batches\":%llu,\"lag_ms_p50\":%.2f,\"lag_ms_p90\":%.2f,\"lag_ms_p99\":%.2f,"
                  "\"lag_ms_max\":%.2f",
                  (unsigned long long)l->count, l->p50 / 1000, l->p90 / 1000, l->p99 / 1000,
                  l->max / 1000);
    }
    std::printf(",\"replica_batches\":%llu,\"replica_commits\":%llu,\"replica_caught_up\":%s",
                (unsigned long long)Counter(s, "replication.applied_batches"),
                (unsigned long long)Counter(s, "replication.applied_commits"),
                s.last_commit >= last ? "true" : "false");
  }
  std::printf("}\n");
  return 0;
}
