// Test-only fault injection. Compiled in only with CAIRN_FAULT_INJECTION, which the
// tests' cairnd-faults binary defines; cairnd itself has none of it (the calls are empty
// inline functions), so no request can trigger it in production.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace cairn::server {

// Throws std::out_of_range (as a damaged leaf made string_view::substr do) when `tag` is
// "cairn-fault:" followed by `point`. The tests put the tag in a Ping's payload or a
// transaction's idempotency key.
#ifdef CAIRN_FAULT_INJECTION
inline void InjectFault(std::string_view point, std::string_view tag) {
  constexpr std::string_view kPrefix = "cairn-fault:";
  if (tag.size() == kPrefix.size() + point.size() && tag.starts_with(kPrefix) &&
      tag.substr(kPrefix.size()) == point) {
    throw std::out_of_range("injected fault at " + std::string(point));
  }
}
#else
inline void InjectFault(std::string_view, std::string_view) {}
#endif

}  // namespace cairn::server
