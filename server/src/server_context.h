// What every connection shares: the engine, the writer, statistics, settings,
// and the registry of open connections (for a graceful shutdown).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "cairn/engine/engine.h"
#include "convert.h"
#include "options.h"
#include "stats.h"
#include "checker.h"
#include "writer.h"

namespace cairn::server {

class Connection;

struct ServerContext {
  Engine* engine = nullptr;
  Writer* writer = nullptr;
  Checker* checker = nullptr;
  ServerStats* stats = nullptr;
  const ServerOptions* options = nullptr;
  RequestLimits limits;
  std::atomic<bool> draining{false};

  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // guarded by mu

  void Register(const std::shared_ptr<Connection>& c) {
    std::lock_guard lock(mu);
    connections.emplace(c.get(), c);
  }
  void Unregister(Connection* c) {
    std::lock_guard lock(mu);
    connections.erase(c);
  }
  size_t open_connections() {
    std::lock_guard lock(mu);
    return connections.size();
  }
};

}  // namespace cairn::server
