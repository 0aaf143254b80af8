// Test-only fault injection. Compiled in only with CAIRN_FAULT_INJECTION, which the
// tests' cairnd-faults binary defines; cairnd itself has none of it (the calls are empty
// inline functions), so no request can trigger it in production.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "cairn/engine/options.h"
#include "cairn/engine/types.h"

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

// The point "writer": a transaction whose idempotency key is "cairn-fault:writer" makes
// its group commit throw on the engine's committing thread (Options::before_group_commit).
inline void InstallWriterFault([[maybe_unused]] Options* options) {
#ifdef CAIRN_FAULT_INJECTION
  options->before_group_commit = [](std::span<const Transaction* const> txns) {
    for (const Transaction* t : txns) InjectFault("writer", t->idempotency_key);
  };
#endif
}

}  // namespace cairn::server
