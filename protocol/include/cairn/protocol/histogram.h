// A latency histogram with bounded relative error (HdrHistogram's idea): values
// are counted in buckets whose width is 1/32 of their magnitude, so every
// percentile it reports is within ~3% of the true one, in fixed memory. Shared by
// the server's statistics and the load generator. Record() is thread-safe and
// lock-free; Summarize() may run concurrently with it.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace cairn {

class Histogram {
 public:
  static constexpr int kSubBits = 5;  // 32 sub-buckets per power of two
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = kSub * (64 - kSubBits + 1);

  void Record(uint64_t v) {
    counts_[Bucket(v)].fetch_add(1, std::memory_order_relaxed);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
    total_.fetch_add(1, std::memory_order_relaxed);
  }

  // Adds another histogram's counts to this one (not atomic as a whole).
  void Merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; i++) {
      if (uint64_t c = o.counts_[i].load(std::memory_order_relaxed)) {
        counts_[i].fetch_add(c, std::memory_order_relaxed);
      }
    }
    total_.fetch_add(o.total_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    uint64_t om = o.max_.load(std::memory_order_relaxed);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (om > m && !max_.compare_exchange_weak(m, om, std::memory_order_relaxed)) {
    }
  }

  uint64_t count() const { return total_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_.load(std::memory_order_relaxed); }

  // The value at quantile q (0..1): the upper edge of the bucket holding it, capped at max.
  uint64_t Percentile(double q) const {
    uint64_t total = count();
    if (total == 0) return 0;
    uint64_t rank = uint64_t(q * double(total));
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen > rank) {
        uint64_t hi = UpperEdge(i);
        return hi < max() ? hi : max();
      }
    }
    return max();
  }

  double Mean() const {
    uint64_t total = 0;
    double sum = 0;
    for (int i = 0; i < kBuckets; i++) {
      uint64_t c = counts_[i].load(std::memory_order_relaxed);
      total += c;
      sum += double(c) * double(Midpoint(i));
    }
    return total ? sum / double(total) : 0;
  }

  void Reset() {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
    total_.store(0);
    max_.store(0);
  }

  static int Bucket(uint64_t v) {
    if (v < uint64_t(kSub)) return int(v);
    int msb = 63 - std::countl_zero(v);  // >= kSubBits
    int shift = msb - kSubBits;
    return (shift + 1) * kSub + int((v >> shift) & (kSub - 1));
  }
  // Values in bucket i lie in [LowerEdge(i), UpperEdge(i)].
  static uint64_t LowerEdge(int i) {
    if (i < kSub) return uint64_t(i);
    int shift = i / kSub - 1;
    return (uint64_t(kSub) + uint64_t(i % kSub)) << shift;
  }
  static uint64_t UpperEdge(int i) {
    if (i < kSub) return uint64_t(i);
    int shift = i / kSub - 1;
    return LowerEdge(i) + ((uint64_t{1} << shift) - 1);
  }
  static uint64_t Midpoint(int i) { return LowerEdge(i) + (UpperEdge(i) - LowerEdge(i)) / 2; }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace cairn
