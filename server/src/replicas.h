// The primary's view of its followers (docs/replication.md): who follows, how far each has
// applied (their FollowAck frames), which change-log entries must be kept for them
// (Engine::HoldLog), their lag, and the writes waiting for N of them to apply their
// commit (Txn.replicas: the synchronous acknowledgement).
//
// Thread-safe: Follow streams on any IO thread report to it, connections wait on it, and
// ListReplicas and GetStats read it.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cairn/engine/engine.h"

namespace cairn::server {

struct ReplicaRow {
  std::string name;
  std::string address;        // the follower's peer address
  uint64_t applied = 0;       // every commit <= applied is applied (durably) there
  uint64_t applied_time_ms = 0;  // the primary's time stamp of that commit
  uint64_t lag_commits = 0;
  uint64_t lag_ms = 0;
  bool connected = false;
  int64_t last_seen_ms = 0;   // wall clock, ms since 1970
};

class ReplicaRegistry {
 public:
  // `keep`: how long a follower that went away still holds the log (--replica-keep-seconds).
  ReplicaRegistry(Engine& engine, std::chrono::seconds keep);
  ~ReplicaRegistry();

  // A Follow stream started for follower `name` from commit `from`; returns the handle
  // its later calls pass. A follower of the same name that reconnects takes over its row.
  uint64_t Connect(const std::string& name, const std::string& address, uint64_t from);
  void Ack(uint64_t handle, uint64_t applied, uint64_t applied_time_ms);
  void Disconnect(uint64_t handle);

  // Followers seen within `keep`, by name, with their lag against `last_commit`. Forgets
  // those not seen for longer and lets go of the log they held.
  std::vector<ReplicaRow> List();
  // Forgets followers not seen within `keep` and updates the hold (the server calls it
  // every few seconds, so that a follower that never comes back lets go of the log).
  void Refresh();
  size_t connected() const;

  // The synchronous acknowledgement: calls `done(count, timed_out)` once, on `executor`,
  // when `n` followers have applied `commit` (count >= n, timed_out false) or when
  // `timeout` has passed (count < n, timed_out true).
  using Done = std::function<void(uint32_t count, bool timed_out)>;
  void WaitFor(uint64_t commit, uint32_t n, std::chrono::milliseconds timeout,
               asio::any_io_executor executor, Done done);
  uint32_t AppliedAtLeast(uint64_t commit) const;

  // Waits pending now (for stats).
  size_t waiting() const;
  uint64_t sync_timeouts() const { return sync_timeouts_.load(); }

 private:
  struct Follower {
    ReplicaRow row;
    uint64_t handle = 0;  // of the stream connected now (0: none)
  };
  struct Waiter;
  uint32_t CountLocked(uint64_t commit) const;
  void UpdateHoldLocked();
  void ExpireLocked(int64_t now_ms);
  void Fire(const std::shared_ptr<Waiter>& w, uint32_t count, bool timed_out);

  Engine& engine_;
  const std::chrono::seconds keep_;
  mutable std::mutex mu_;
  std::map<std::string, Follower> followers_;      // by name; guarded by mu_
  std::map<uint64_t, std::string> handles_;        // stream handle -> name; guarded by mu_
  std::list<std::shared_ptr<Waiter>> waiters_;     // guarded by mu_
  uint64_t next_handle_ = 1;
  std::atomic<uint64_t> sync_timeouts_{0};
};

// Wall clock in ms since 1970 (the change log's time stamps).
int64_t NowMs();

}  // namespace cairn::server
