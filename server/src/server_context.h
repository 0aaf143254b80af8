// What every connection shares: the engine, the writer, statistics, settings,
// and the registry of open connections (for a graceful shutdown).
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cairn/engine/engine.h"
#include "convert.h"
#include "options.h"
#include "stats.h"
#include "stream.h"
#include "tasks.h"
#include "checker.h"

namespace cairn::server {

class AuthStore;
class AuthThrottle;
class Connection;
class Follower;
class ReplicaRegistry;

struct ServerContext {
  Engine* engine = nullptr;
  Checker* checker = nullptr;
  CommitFeed* commits = nullptr;  // wakes streams waiting for new commits
  ReplicaRegistry* replicas = nullptr;  // this server's followers (replicas.h)
  Follower* follower = nullptr;         // set on a replica (--replica-of): follower.h
  Tasks* tasks = nullptr;         // requests that read the whole database (Digest)
  ServerStats* stats = nullptr;
  const ServerOptions* options = nullptr;
  AuthStore* auth = nullptr;         // users and roles (auth.h)
  AuthThrottle* throttle = nullptr;  // slows password guessing (auth_throttle.h)
  std::string scram_secret;          // per process: mock salts for unknown users (scram.h)
  RequestLimits limits;
  std::atomic<bool> draining{false};

  // Connections admitted and not yet closed: taken by the acceptor before a connection
  // starts (so a burst of accepts cannot pass --max-connections), released once by the
  // connection when it closes (or is destroyed unclosed).
  std::atomic<uint32_t> admitted{0};

  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // guarded by mu
  // Admitted connections that have not completed their handshake (Hello, and
  // authentication on a server with users), oldest first, with their source address
  // (guarded by mu). A connection leaves it when its handshake is done or it closes, or
  // when a newcomer finds the list at --max-handshaking and takes the place of the oldest
  // connection of the source that holds the most of it (Server::Admit).
  struct Handshaking {
    std::weak_ptr<Connection> connection;
    std::string source;
  };
  using HandshakeList = std::list<Handshaking>;
  HandshakeList handshaking;

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
