// The follower inside a replica (cairnd --replica-of HOST:PORT; docs/replication.md): on a
// thread and io_context of its own, it connects to the primary, bootstraps from a
// Snapshot when it has no data or its position left the primary's log, follows the log
// (Follow), applies the entries received in large batches (Engine::ApplyLog: one LMDB
// transaction and one fsync for many primary commits), acknowledges each batch, and
// reconnects with backoff. It speaks the wire protocol with the frame codec and the
// generated schema: cairnd never links libcairn.
//
// A bootstrap replaces the data file, which needs the engine closed: the follower writes
// the snapshot to <data>/.bootstrap/, checks it, and asks main to restart the server in
// place (SwapReady); main swaps the file in (FinishBootstrap) before it opens the engine
// again.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cairn/engine/engine.h"
#include "cairn/protocol/histogram.h"
#include "stream.h"

namespace cairn::server {

struct ExtraStats;

// What survives a restart in place (the server is rebuilt around a new engine after a
// bootstrap): counters, the lag, and why following stopped. Thread-safe.
struct ReplicaState {
  std::atomic<uint64_t> bootstraps{0};       // snapshots received and swapped in
  std::atomic<uint64_t> bootstrap_bytes{0};
  std::atomic<uint64_t> applied_batches{0};  // ApplyLog calls
  std::atomic<uint64_t> applied_commits{0};
  std::atomic<uint64_t> reconnects{0};       // sessions with the primary that ended early
  std::atomic<uint64_t> primary_last_commit{0};  // as the primary last said
  std::atomic<uint64_t> lag_ms{0};           // of the last batch applied (0 once caught up)
  std::atomic<bool> diverged{false};         // following stopped: see error()
  std::atomic<bool> promoted{false};         // Promote made this node a primary
  Histogram lag_us;                          // per batch: apply time - commit time of its first entry

  std::string error() const {
    std::lock_guard lock(mu);
    return error_;
  }
  void set_error(std::string e) {
    std::lock_guard lock(mu);
    error_ = std::move(e);
  }

 private:
  mutable std::mutex mu;
  std::string error_;
};

struct FollowerOptions {
  std::string primary;   // HOST:PORT
  std::string data_dir;
  std::string name;      // how the primary lists this replica
  std::string address;   // where this replica listens (informative)
  uint32_t max_frame = 16 << 20;
  size_t max_batch_entries = 4096;   // per ApplyLog
  size_t max_batch_bytes = 16 << 20;
  // How long a batch may wait for more commits once nothing more is waiting in the socket
  // (0: apply at once). Fewer fsyncs for a little lag: for a replica on the primary's disk.
  std::chrono::microseconds apply_delay{0};
  // Called (on the follower's thread) after a batch that wrote to a system collection
  // ('$users', '$roles'): the server reloads its users and roles (Server::UsersChanged).
  std::function<void()> on_system_change;
  // The primary's user for this replica (a role with `replication`), when it has users:
  // each connection to it authenticates with SCRAM-SHA-256 after its Hello.
  std::string user;
  std::string password;
};

class Follower {
 public:
  // `swap_ready` is called (on the follower's thread) once a checked snapshot waits in
  // <data>/.bootstrap/: the caller restarts the server, which swaps it in.
  Follower(FollowerOptions options, Engine& engine, CommitFeed& commits, ReplicaState& state,
           std::function<void()> swap_ready);
  ~Follower();  // Stop()s

  // `address`: where this replica listens (its name at the primary unless one was set).
  void Start(const std::string& address);
  // Ends the session and joins the thread. Idempotent.
  void Stop();

  // Whether this node still follows a primary (writes refused): until Promote.
  bool replica() const { return !state_.promoted.load(); }
  // Reads are refused while the first bootstrap is under way (there is no data yet).
  bool bootstrapping() const { return initial_bootstrap_.load(); }
  const std::string& primary() const { return options_.primary; }
  ReplicaState& state() { return state_; }

  // Stops following, starts a new epoch (Engine::StartEpoch) and lets writes in; then tells
  // the old primary, best effort, so that it fences itself. `done` is called on the
  // follower's thread.
  void Promote(std::function<void(Result<EpochStart>)> done);

  // Replication counters for GetStats.
  void AddStats(ExtraStats* out) const;

  // Before the engine opens: swaps in a snapshot that a bootstrap left complete in
  // <dir>/.bootstrap/, or removes an incomplete one. Errors name the file.
  static Status FinishBootstrap(const std::string& dir);

  // A replica's folder carries a marker (<dir>/replica-of, the primary's address) from
  // the first start with --replica-of until a promotion: a cairnd started on it without
  // --replica-of refuses to start, so that a replica's copy never takes writes under its
  // primary's epoch (which would diverge without the epochs telling). Empty: no marker.
  static std::string ReplicaMarker(const std::string& dir);

 private:
  class Session;
  asio::awaitable<void> Run();
  // A Snapshot into <data>/.bootstrap/, every chunk and the whole checked; *swap once it
  // is complete there.
  // Hello, and authentication when a user is set; `client` names this end to the primary.
  asio::awaitable<Status> Handshake(Session& s, const std::string& client);
  asio::awaitable<Status> Bootstrap(Session& s, bool* swap);
  // Follow from LastCommit() + 1 and apply what arrives, until the connection fails.
  asio::awaitable<Status> Follow(Session& s);
  asio::awaitable<Status> Apply(Session& s, std::vector<RawLogEntry>* batch);
  asio::awaitable<void> TellOldPrimary(uint64_t epoch);

  FollowerOptions options_;  // name and address complete once started
  Engine& engine_;
  CommitFeed& commits_;
  ReplicaState& state_;
  const std::function<void()> swap_ready_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
  asio::error_code ignored_;
  std::shared_ptr<Session> session_;  // the connection now (follower's thread)
  bool stopping_ = false;             // follower's thread
  bool need_bootstrap_ = false;       // follower's thread: the primary trimmed our position
  bool primary_empty_ = false;        // follower's thread: its snapshot held no commit
  std::atomic<bool> initial_bootstrap_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace cairn::server
