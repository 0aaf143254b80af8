#include "server.h"

#include <spdlog/spdlog.h>

#include "auth.h"
#include "auth_throttle.h"
#include "cairn/protocol/scram.h"
#include "connection.h"
#include "transport.h"
#include "user_requests.h"

namespace cairn::server {

Server::Server(ServerOptions options, std::unique_ptr<Engine> engine)
    : options_(std::move(options)), engine_(std::move(engine)) {
  unsigned n = options_.threads ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; i++) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
  // Writes group-commit in the engine's queue (Engine::Submit); after each group the
  // streams waiting for new commits are woken.
  engine_->SetCommitListener([this](const Engine::GroupCommitted& group) {
    if (group.transactions) stats_.batch_sizes.Record(group.transactions);
    if (!group.failure.empty()) {
      // Its writes are answered Internal; the reason is logged here, once per group.
      size_t n = std::max<size_t>(group.transactions, 1);
      stats_.internal_errors += n;
      spdlog::error("internal error running a {} on the writer ({} answered Internal): {}",
                    group.transactions ? "write" : "catalog change", n, group.failure);
    }
    commits_.Notify();
  });
  ctx_.commits = &commits_;
  replicas_ = std::make_unique<ReplicaRegistry>(*engine_, options_.replica_keep);
  ctx_.replicas = replicas_.get();
  tasks_ = std::make_unique<Tasks>();
  ctx_.tasks = tasks_.get();
  ctx_.engine = engine_.get();
  VerifierOptions verifier;
  verifier.exe = options_.verifier_exe;
  verifier.data_dir = engine_->dir();
  verifier.max_size = options_.engine.max_size;
  verifier.timeout = options_.verify_timeout;
  checker_ = std::make_unique<Checker>(std::move(verifier));
  ctx_.checker = checker_.get();
  ctx_.stats = &stats_;
  ctx_.options = &options_;
  auth_ = std::make_unique<AuthStore>(*engine_);
  throttle_ = std::make_unique<AuthThrottle>();
  ctx_.auth = auth_.get();
  ctx_.throttle = throttle_.get();
  ctx_.scram_secret = scram::RandomBytes(32);
  // A response holds at most this much record data, and a page at most this many records
  // (each costs some framing), so that every response fits in a frame.
  ctx_.limits.max_result_bytes = options_.max_frame / 2;
  ctx_.limits.default_scan_limit = std::max<uint32_t>(1, options_.max_frame / 256);
}

Server::~Server() {
  Shutdown();
  Wait();
  // Pending handlers (and the connections they hold) go with their io_contexts.
  acceptor_.reset();
  drain_timer_.reset();
  replicas_timer_.reset();
  guards_.clear();
  contexts_.clear();
}

bool ParseHostPort(const std::string& s, std::string* host, std::string* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size()) return false;
  *host = s.substr(0, colon);
  *port = s.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return !host->empty() && port->find_first_not_of("0123456789") == std::string::npos;
}

namespace {

std::string ErrorFrame(const Status& s) {
  flatbuffers::FlatBufferBuilder fbb;
  BuildError(fbb, 0, s, /*protocol=*/1);
  std::string frame(wire::kFrameHeaderSize, '\0');
  wire::StoreFrameHeader(frame.data(), fbb.GetSize());
  frame.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  return frame;
}

}  // namespace

Status Server::ReloadTls() {
  if (!tls_) return Status(Code::kBadRequest, "this server does not serve TLS (no --tls-cert)");
  Status s = tls_->Reload();
  (s.ok() ? stats_.tls_reloads : stats_.tls_reload_failures)++;
  return s;
}

void Server::UsersChanged() {
  auth_->Reload();
  RecheckUsers(ctx_);
}

Status Server::Start() {
  if (options_.tls.enabled()) {
    if (Status s = CheckTlsOptions(options_.tls); !s.ok()) return s;
    tls_ = std::make_unique<TlsContexts>(options_.tls);
    if (Status s = tls_->Load(); !s.ok()) return s;
    tls_refusal_ = ErrorFrame(Status(Code::kUnavailable,
                                     "this server requires TLS: connect with TLS (cairn --tls, "
                                     "ClientOptions::tls)"));
  } else {
    tls_refusal_ = ErrorFrame(Status(Code::kBadRequest,
                                     "this server does not serve TLS: connect without TLS, or "
                                     "start cairnd with --tls-cert and --tls-key"));
  }
  std::string host, port;
  if (!ParseHostPort(options_.listen, &host, &port)) {
    return Status(Code::kBadRequest, "--listen wants HOST:PORT, not '" + options_.listen + "'");
  }
  asio::error_code ec;
  asio::ip::tcp::resolver resolver(main_context());
  auto results = resolver.resolve(host, port, asio::ip::tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Status(Code::kBadRequest, "cannot resolve " + options_.listen + ": " + ec.message());
  }
  asio::ip::tcp::endpoint ep = *results.begin();
  // A replica that has yet to copy a primary with users (it follows as one) will have them.
  bool users_coming = !options_.replica_of.empty() && !options_.replica_user.empty() &&
                      engine_->LastCommit() == 0;
  if (!auth_->enabled() && !ep.address().is_loopback() && !options_.insecure && !users_coming) {
    return Status(Code::kBadRequest,
                  "this database has no users, so anyone who can reach " + options_.listen +
                      " could read, change and drop everything: create the first admin "
                      "(cairnd --init-admin NAME --password-file FILE, or cairn user create "
                      "over loopback), listen on loopback (127.0.0.1), or pass --insecure to "
                      "serve without authentication (docs/security.md)");
  }
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(main_context());
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kUnavailable, "cannot listen on " + options_.listen + ": " + ec.message());
  endpoint_ = acceptor_->local_endpoint();
  Accept();
  replicas_timer_ = std::make_unique<asio::steady_timer>(main_context());
  RefreshReplicas();
  for (auto& c : contexts_) {
    threads_.emplace_back([ctx = c.get()] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          // A handler threw: a bug. Log it and keep serving the other connections.
          spdlog::error("unexpected exception in an IO thread: {}", e.what());
        }
      }
    });
  }
  return Status::Ok();
}

void Server::Accept() {
  asio::io_context& target = *contexts_[next_context_++ % contexts_.size()];
  acceptor_->async_accept(target, [this](const asio::error_code& ec, asio::ip::tcp::socket s) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
      spdlog::warn("accept: {}", ec.message());
      // Out of file descriptors and the like: pause briefly rather than spin.
      auto t = std::make_shared<asio::steady_timer>(main_context(), std::chrono::milliseconds(50));
      t->async_wait([this, t](const asio::error_code&) {
        if (acceptor_->is_open()) Accept();
      });
      return;
    }
    Admit(std::move(s));
    Accept();
  });
}

namespace {

// The oldest entry of the source address holding the most entries (among equals, the one
// that got there first): a flood from one address displaces its own connections, not those of
// everyone else. Linear in the list, which --max-handshaking bounds.
ServerContext::HandshakeList::iterator Busiest(ServerContext::HandshakeList& list) {
  std::unordered_map<std::string_view, size_t> count;
  std::string_view busiest;
  size_t most = 0;
  for (const auto& h : list) {
    size_t n = ++count[h.source];
    if (n > most) {
      most = n;
      busiest = h.source;
    }
  }
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->source == busiest) return it;
  }
  return list.begin();
}

}  // namespace

void Server::Admit(asio::ip::tcp::socket socket) {
  // The slot is taken here, before the connection starts on its own IO thread, so that the
  // count never passes the limit however many accepts complete at once.
  if (ctx_.admitted.fetch_add(1) >= options_.max_connections) {
    ctx_.admitted.fetch_sub(1);
    return Reject(std::move(socket));
  }
  stats_.connections_open++;
  stats_.connections_total++;
  // The TLS context current at accept: a reload affects the connections accepted after it.
  asio::error_code ec;
  auto peer = socket.remote_endpoint(ec);
  std::string source = ec ? std::string() : peer.address().to_string();
  Transport transport = tls_ ? Transport(std::move(socket), tls_->Current(), tls_refusal_)
                             : Transport(std::move(socket), tls_refusal_);
  auto c = std::make_shared<Connection>(std::move(transport), ctx_);  // owns the slot now
  std::shared_ptr<Connection> displaced;
  {
    std::lock_guard lock(ctx_.mu);
    ctx_.connections.emplace(c.get(), c);
    // Connections still in the handshake hold at most their share: past it the oldest
    // makes room, so that a flood of connections that never send Hello cannot keep real
    // clients out (each would still be closed at its Hello deadline).
    size_t share = options_.max_handshaking ? options_.max_handshaking
                                            : std::max<uint32_t>(1, options_.max_connections / 2);
    while (ctx_.handshaking.size() >= share && !displaced) {
      auto victim = Busiest(ctx_.handshaking);
      displaced = victim->connection.lock();
      ctx_.handshaking.erase(victim);
      if (displaced) displaced->LeftHandshakeList();
    }
    c->EnterHandshakeList(
        ctx_.handshaking.insert(ctx_.handshaking.end(), {c, std::move(source)}));
  }
  if (displaced) displaced->Displace();
  // The connection lives on its socket's io_context: start it there.
  asio::dispatch(c->executor(), [c] { c->Start(); });
}

void Server::Reject(asio::ip::tcp::socket socket) {
  stats_.connections_refused++;
  if (tls_) {
    // No handshake is spent on a connection refused, and a TLS client cannot read a
    // plaintext error: closed at once (the client sees the handshake end).
    asio::error_code ignored;
    socket.close(ignored);
    return;
  }
  SendErrorAndClose(std::move(socket),
                    ErrorFrame(Status(Code::kUnavailable,
                                      "too many connections (limit " +
                                          std::to_string(options_.max_connections) + ")")));
}

void Server::RefreshReplicas() {
  replicas_->Refresh();
  replicas_timer_->expires_after(std::chrono::seconds(5));
  replicas_timer_->async_wait([this](const asio::error_code& ec) {
    if (!ec && !shutting_down_) RefreshReplicas();
  });
}

void Server::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  asio::post(main_context(), [this] {
    ctx_.draining = true;
    asio::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    if (replicas_timer_) replicas_timer_->cancel();
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard lock(ctx_.mu);
      for (auto& [ptr, weak] : ctx_.connections) {
        if (auto c = weak.lock()) open.push_back(std::move(c));
      }
    }
    spdlog::info("shutting down: {} connection(s) to drain", open.size());
    for (auto& c : open) c->Drain();
    drain_timer_ = std::make_unique<asio::steady_timer>(main_context());
    CheckDrained(std::chrono::steady_clock::now() + options_.shutdown_grace);
  });
}

void Server::CheckDrained(std::chrono::steady_clock::time_point deadline) {
  size_t open = ctx_.open_connections();
  if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
    if (open) spdlog::warn("shutdown grace period over; closing {} connection(s)", open);
    return StopContexts();
  }
  drain_timer_->expires_after(std::chrono::milliseconds(20));
  drain_timer_->async_wait([this, deadline](const asio::error_code& ec) {
    if (!ec) CheckDrained(deadline);
  });
}

void Server::StopContexts() {
  for (auto& g : guards_) g.reset();
  for (auto& c : contexts_) c->stop();
}

void Server::Wait() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  // Connections the grace period left open: their streams must let go of the engine
  // (a snapshot copy reads it on a thread of its own) before it closes.
  std::vector<std::shared_ptr<Connection>> left;
  {
    std::lock_guard lock(ctx_.mu);
    for (auto& [ptr, weak] : ctx_.connections) {
      if (auto c = weak.lock()) left.push_back(std::move(c));
    }
  }
  for (auto& c : left) c->CloseStopped();
  left.clear();
  if (before_close_) std::exchange(before_close_, nullptr)();
  if (checker_) checker_->Stop();
  if (tasks_) tasks_->Stop();
  if (engine_) engine_->StopWrites();  // commits whatever is still queued
  // The io_contexts stay until the destructor: objects of the caller's (a signal_set)
  // may still use them.
  checker_.reset();
  replicas_.reset();
  tasks_.reset();
  engine_.reset();
}

}  // namespace cairn::server
