// IdempotencyIndex (engine/src/idempotency.h): the flat hash table and ring of remembered
// keys, against a plain model, with hashes chosen to collide and to crowd runs of the
// table (the deletion by backward shift is where an open-addressing table goes wrong).
#include "idempotency.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace cairn::internal {
namespace {

struct ModelEntry {
  uint64_t time_ms, hash, commit;
};

std::vector<uint64_t> ModelFind(const std::deque<ModelEntry>& model, uint64_t hash) {
  std::vector<uint64_t> out;
  for (const ModelEntry& e : model) {
    if (e.hash == hash) out.push_back(e.commit);
  }
  return out;
}

void ModelTrim(std::deque<ModelEntry>* model, uint64_t horizon, uint64_t max_keys,
               uint64_t first_commit) {
  while (!model->empty()) {
    const ModelEntry& e = model->front();
    if (e.time_ms >= horizon && model->size() <= max_keys && e.commit >= first_commit) break;
    model->pop_front();
  }
}

// Runs random adds and trims; `hash_of` picks each key's hash from a random number.
void RunAgainstModel(uint64_t seed, uint64_t (*hash_of)(uint64_t)) {
  std::mt19937_64 rng(seed);
  IdempotencyIndex index;
  std::deque<ModelEntry> model;
  uint64_t commit = 0, now = 1000;
  std::vector<uint64_t> got;
  size_t peak = 0;
  for (int step = 0; step < 60000; step++) {
    uint64_t r = rng();
    if (r % 100 < 70) {
      // Add a burst, sometimes large, so that the table doubles and later halves.
      int n = r % 1000 == 0 ? 5000 : 1 + int(r % 3);
      for (int i = 0; i < n; i++) {
        commit += 1 + rng() % 3;
        now += rng() % 2;
        uint64_t h = hash_of(rng());
        index.Add(now, h, commit);
        model.push_back({now, h, commit});
      }
    } else {
      // Trim by time, by count or by first commit.
      uint64_t horizon = 0, max_keys = UINT64_MAX, first = 0;
      switch (r % 3) {
        case 0: horizon = now - std::min<uint64_t>(now, rng() % 400); break;
        case 1: max_keys = rng() % 3000; break;
        default: first = commit - std::min<uint64_t>(commit, rng() % 2000); break;
      }
      index.Trim(horizon, max_keys, first);
      ModelTrim(&model, horizon, max_keys, first);
    }
    peak = std::max(peak, model.size());
    ASSERT_EQ(index.size(), model.size()) << "seed " << seed << " step " << step;
    // Look up a few hashes: ones present, and random ones.
    for (int q = 0; q < 4; q++) {
      uint64_t h = q < 2 && !model.empty() ? model[rng() % model.size()].hash : hash_of(rng());
      index.Find(h, &got);
      std::vector<uint64_t> want = ModelFind(model, h);
      std::sort(got.begin(), got.end());
      ASSERT_EQ(got, want) << "seed " << seed << " step " << step << " hash " << h;
    }
  }
  EXPECT_GT(peak, 4000u) << "the table never grew much";
  // Everything trimmed: the table gives its memory back (down to its minimum).
  size_t before = index.memory();
  index.Trim(UINT64_MAX, 0, 0);
  index.Trim(UINT64_MAX, 0, 0);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_LT(index.memory(), before);
  index.Find(hash_of(1), &got);
  EXPECT_TRUE(got.empty());
}

TEST(IdempotencyIndexTest, MatchesAModelWithWellMixedHashes) {
  RunAgainstModel(1, [](uint64_t r) { return r; });
}

TEST(IdempotencyIndexTest, MatchesAModelWhenHashesCollide) {
  // 40 distinct hashes: many commits per hash, one long run per hash.
  RunAgainstModel(2, [](uint64_t r) { return uint64_t((r % 40) * 0x9e3779b97f4a7c15ull); });
}

TEST(IdempotencyIndexTest, MatchesAModelWhenHomesCrowdAndWrap) {
  // Hashes whose low bits (the home slot) fall in a few slots near the end of the table,
  // so that runs wrap around its end and cross each other.
  RunAgainstModel(3, [](uint64_t r) { return uint64_t((r << 12) | (0xff0 + r % 16) | 0xfff000); });
}

}  // namespace
}  // namespace cairn::internal
