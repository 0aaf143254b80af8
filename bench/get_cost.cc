// The cost of one point get, for counting instructions: fills a collection of small
// documents, then runs `gets` point gets (BeginRead + ReadTxn::Get of a pseudo-random
// existing key, as engine_bench's BM_Get/engine does) inside GetLoop, and prints the CPU
// time per get. Instructions per get (docs/benchmarks.md, "Record checksums"):
//
//   valgrind --tool=callgrind --toggle-collect='*GetLoop*' build/bench/get_cost 20000 100000
//
// then divide the "Collected" count by the number of gets (20000). The map is capped at
// 1 GiB, which valgrind can reserve (the default cap, 64 GiB, it cannot).
#include <time.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cairn/engine/engine.h"
#include "flatbuffers/flexbuffers.h"

namespace {

double CpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e9 + double(t.tv_nsec);
}

// The measured loop; callgrind collects inside it only. False if a get failed.
[[gnu::noinline]] bool GetLoop(cairn::Engine& db, const std::vector<std::string>& keys,
                               const std::vector<uint32_t>& order, size_t gets) {
  for (size_t i = 0; i < gets; i++) {
    auto txn = db.BeginRead();
    cairn::RecordView rv;
    bool found = false;
    if (!txn.ok() || !txn->Get("c", keys[order[i % order.size()]], &rv, &found).ok() || !found) {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t gets = argc > 1 ? std::stoul(argv[1]) : 1000000;
  const uint32_t records = argc > 2 ? uint32_t(std::stoul(argv[2])) : 100000;
  char tmpl[] = "/var/tmp/cairn-get-cost-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  const std::string dir = tmpl;
  int rc = 0;
  {
    cairn::Options o;
    o.durability = cairn::Durability::kNoSync;
    o.max_size = uint64_t{1} << 30;
    auto opened = cairn::Engine::Open(dir + "/db", o);
    if (!opened.ok() || !(*opened)->CreateCollection("c").ok()) return 1;
    cairn::Engine& db = **opened;
    std::vector<std::string> keys, docs;
    for (uint32_t i = 0; i < records; i++) {
      char k[16];
      std::snprintf(k, sizeof k, "key-%08u", i);
      keys.emplace_back(k);
      flexbuffers::Builder b;
      b.Map([&] {
        b.String("city", "city-" + std::to_string(i % 1000));
        b.Int("group", i % 100);
        b.String("name", "name-of-record-" + std::to_string(i) + "-padding-pad");
        b.Int("score", (i * 7919) % 100000);
      });
      b.Finish();
      docs.emplace_back(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
    }
    for (uint32_t i = 0; i < records && rc == 0; i += 100) {
      cairn::Transaction t;
      for (uint32_t j = i; j < std::min(records, i + 100); j++) {
        t.ops.push_back(cairn::PutOp{"c", keys[j], docs[j]});
      }
      if (!db.Execute(t).status.ok()) rc = 1;
    }
    std::mt19937 rng(42);
    std::vector<uint32_t> order(1 << 16);
    for (auto& x : order) x = uint32_t(rng() % records);
    const double t0 = CpuNs();
    if (rc == 0 && !GetLoop(db, keys, order, gets)) rc = 2;
    const double t1 = CpuNs();
    if (rc == 0) std::printf("%.1f ns/get over %zu gets\n", (t1 - t0) / double(gets), gets);
  }
  std::filesystem::remove_all(dir);
  return rc;
}
