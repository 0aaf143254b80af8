#include "auth_throttle.h"

#include <algorithm>

namespace cairn::server {

AuthThrottle::Clock::duration AuthThrottle::DelayFor(uint32_t failures) {
  if (failures == 0) return Clock::duration::zero();
  Clock::duration d = kFirstDelay;
  for (uint32_t i = 1; i < failures && d < kMaxDelay; i++) d *= 2;
  return std::min<Clock::duration>(d, kMaxDelay);
}

AuthThrottle::Clock::time_point AuthThrottle::Reserve(const std::string& source,
                                                      Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(source);
  if (it == entries_.end()) return now;  // no failures: nothing to remember
  Entry& e = it->second;
  if (now - e.last_seen >= kForget) {
    entries_.erase(it);
    return now;
  }
  Clock::time_point at = std::max(now, e.next);
  e.next = at + DelayFor(e.failures);
  e.last_seen = now;
  return at;
}

void AuthThrottle::Failed(const std::string& source, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = entries_.try_emplace(source);
  Entry& e = it->second;
  if (!inserted && now - e.last_seen >= kForget) e = Entry{};
  e.failures++;
  e.next = std::max(e.next, now + DelayFor(e.failures));
  e.last_seen = now;
  if (inserted && entries_.size() > max_sources_) Evict();
}

void AuthThrottle::Succeeded(const std::string& source) {
  std::lock_guard lock(mu_);
  entries_.erase(source);
}

void AuthThrottle::Evict() {
  auto oldest = entries_.begin();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.last_seen < oldest->second.last_seen) oldest = it;
  }
  entries_.erase(oldest);
}

size_t AuthThrottle::sources() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

uint32_t AuthThrottle::failures(const std::string& source) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(source);
  return it == entries_.end() ? 0 : it->second.failures;
}

}  // namespace cairn::server
