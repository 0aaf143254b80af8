// Helpers for engine tests: opening an engine, building transactions.
#pragma once

#include "cairn/engine/engine.h"
#include "temp_dir.h"

namespace cairn::testing {

inline std::unique_ptr<Engine> OpenOrDie(const std::string& dir, const Options& options = {}) {
  auto r = Engine::Open(dir, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

inline Transaction Txn(std::vector<Op> ops, std::vector<Condition> conditions = {}) {
  Transaction t;
  t.ops = std::move(ops);
  t.conditions = std::move(conditions);
  return t;
}

}  // namespace cairn::testing
