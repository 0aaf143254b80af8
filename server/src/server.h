// cairnd: accepts connections on IO threads (one io_context each), runs reads
// there, and sends writes to the writer thread. Start() binds and spawns the
// threads; Shutdown() drains gracefully; Wait() joins.
#pragma once

#include <asio.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "cairn/engine/engine.h"
#include "options.h"
#include "server_context.h"
#include "stats.h"
#include "checker.h"
#include "replicas.h"
#include "tls.h"

namespace cairn::server {

class Server {
 public:
  Server(ServerOptions options, std::unique_ptr<Engine> engine);
  ~Server();

  Status Start();
  asio::ip::tcp::endpoint endpoint() const { return endpoint_; }

  // Stops accepting, lets connections finish what they sent (up to the grace period),
  // commits what is queued, then stops the IO threads. Thread-safe; idempotent.
  void Shutdown();
  // Blocks until the IO threads have stopped, then closes the writer and the engine
  // (the io_contexts live on until the Server is destroyed).
  void Wait();

  // TLS (--tls-cert): reads the certificate, key and CA files again; new connections use
  // the new context, open ones keep theirs. On failure the old context stays and the
  // status says why. Thread-safe. A server without TLS answers kBadRequest.
  Status ReloadTls();

  // The io_context that runs signal handling and the acceptor.
  asio::io_context& main_context() { return *contexts_[0]; }

  // Replication: the engine and the commit feed a follower applies to and wakes, and the
  // follower itself (a replica's; before Start). Wait() calls `before_close` once the IO
  // threads have stopped and before the engine closes (to stop the follower).
  Engine& engine() { return *engine_; }
  CommitFeed& commits() { return commits_; }
  // Users and roles (auth.h). A replica calls UsersChanged after applying commits that
  // touched them: the store reloads, and connections of dropped users close.
  AuthStore& auth() { return *auth_; }
  void UsersChanged();
  void SetFollower(Follower* follower, std::function<void()> before_close) {
    ctx_.follower = follower;
    before_close_ = std::move(before_close);
  }

 private:
  void Accept();
  void Admit(asio::ip::tcp::socket socket);  // starts a connection, or refuses it at the limit
  void Reject(asio::ip::tcp::socket socket);
  void CheckDrained(std::chrono::steady_clock::time_point deadline);
  void StopContexts();
  void RefreshReplicas();  // every few seconds: ReplicaRegistry::Refresh

  ServerOptions options_;
  std::unique_ptr<Engine> engine_;
  ServerStats stats_;
  CommitFeed commits_;  // the engine's commit listener notifies it (and counts in stats_):
                        // Wait() stops the engine's writes before either goes
  std::unique_ptr<Tasks> tasks_;
  std::unique_ptr<Checker> checker_;
  std::unique_ptr<AuthStore> auth_;
  std::unique_ptr<AuthThrottle> throttle_;
  std::unique_ptr<TlsContexts> tls_;  // set with --tls-cert
  std::string tls_refusal_;  // the framed Error for a plaintext client on the TLS port,
                             // or for a TLS client on the plaintext port
  std::unique_ptr<ReplicaRegistry> replicas_;  // before contexts_: their timers refer to it
  ServerContext ctx_;
  std::function<void()> before_close_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> drain_timer_;
  std::unique_ptr<asio::steady_timer> replicas_timer_;
  asio::ip::tcp::endpoint endpoint_;
  size_t next_context_ = 0;
  std::atomic<bool> shutting_down_{false};
};

// Parses "HOST:PORT" ("[v6]:PORT" for IPv6 literals).
bool ParseHostPort(const std::string& s, std::string* host, std::string* port);

}  // namespace cairn::server
