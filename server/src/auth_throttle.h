// Slows password guessing: authentication attempts from one source address are answered
// one after another, spaced by a delay that doubles with each failure from that address
// (100 ms after the first, up to 10 s), and is forgotten after a success or 10 minutes
// without failures. Attempts from other addresses are not affected.
//
// Bounded: at most `max_sources` addresses are remembered; past it the one seen longest
// ago is forgotten. Thread-safe (connections on every IO thread use one).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace cairn::server {

class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFirstDelay{100};
  static constexpr std::chrono::milliseconds kMaxDelay{10000};
  static constexpr std::chrono::minutes kForget{10};

  explicit AuthThrottle(size_t max_sources = 4096) : max_sources_(max_sources) {}

  // When an attempt from `source` starting now may be answered (now if it has no recent
  // failures). Takes that turn: the next attempt from the source comes a delay after it.
  Clock::time_point Reserve(const std::string& source, Clock::time_point now);
  void Failed(const std::string& source, Clock::time_point now);
  void Succeeded(const std::string& source);

  size_t sources() const;
  uint32_t failures(const std::string& source) const;  // recent failures (tests, logs)

 private:
  struct Entry {
    uint32_t failures = 0;
    Clock::time_point next;       // the earliest time the next attempt is answered
    Clock::time_point last_seen;  // the last failure or reservation
  };
  static Clock::duration DelayFor(uint32_t failures);
  void Evict();  // REQUIRES: mu_ held

  const size_t max_sources_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
};

}  // namespace cairn::server
