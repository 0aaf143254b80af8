// The client's connections and calls: a pool of pipelined connections on one IO
// thread, with timeouts, reconnection and retries.
#include "cairn/client/client.h"

#include <future>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <random>
#include <thread>
#include <unordered_map>

#include "cairn/protocol/codes.h"
#include "cairn/protocol/frame.h"
#include "cairn/protocol/json.h"
#include "cairn/protocol/scram.h"
#include "cairn_generated.h"
#include "codec.h"
#include "stream_connection.h"
#include "tls.h"

namespace cairn::client {

namespace {

using Clock = std::chrono::steady_clock;

using CallPtr = std::shared_ptr<detail::Call>;

bool ParseAddress(const std::string& address, std::string* host, std::string* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return port->find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

class Connection;

class Client::Impl {
 public:
  explicit Impl(const ClientOptions& o)
      : options_(o), guard_(asio::make_work_guard(io_)) {}

  ~Impl() { Shutdown(); }

  void Shutdown();
  void CloseAll();  // IO thread: fail every call, close every connection
  void Submit(CallPtr call);
  void Dispatch(CallPtr call);  // IO thread
  void Retry(CallPtr call, const Error& why);  // IO thread

  ClientOptions options_;
  std::string host_, port_;
  std::shared_ptr<asio::ssl::context> tls_;  // null: plain TCP (tls.h)
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::shared_ptr<Connection>> conns_;  // IO thread
  size_t next_ = 0;                                  // IO thread
  bool closing_ = false;                             // IO thread
  bool delete_on_exit_ = false;  // set when the Client was destroyed on the IO thread
  std::thread thread_;
  std::mt19937_64 rng_{std::random_device{}()};      // IO thread
  std::atomic<uint32_t> protocol_{1};  // the last handshake's version: what to encode for
};

// A pipelined connection: frames go out as soon as they are submitted, responses are
// matched to calls by id. Everything runs on the client's IO thread.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(Client::Impl& impl)
      : impl_(impl), socket_(impl.io_, impl.tls_), resolver_(impl.io_), sweep_(impl.io_) {}

  void Send(CallPtr call) {
    if (state_ == kReady) {
      Write(call);
    } else {
      waiting_.push_back(std::move(call));
      if (state_ == kIdle) Connect();
    }
    ArmSweep();
  }

  void Connect() {
    if (state_ != kIdle) return;
    state_ = kConnecting;
    connect_deadline_ = Clock::now() + impl_.options_.connect_timeout;
    ArmSweep();
    auto self = shared_from_this();
    uint64_t gen = generation_;
    resolver_.async_resolve(impl_.host_, impl_.port_, [self, gen](const asio::error_code& ec,
                                                                  auto results) {
      if (gen != self->generation_) return;
      if (ec) return self->Fail(Error(ErrorCode::kConnectionFailed, "resolve: " + ec.message()));
      asio::async_connect(self->socket_.socket(), results, [self, gen](const asio::error_code& ec,
                                                                       const auto&) {
        if (gen != self->generation_) return;
        if (ec) return self->Fail(Error(ErrorCode::kConnectionFailed, ec.message()));
        asio::error_code ignored;
        self->socket_.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        const ClientOptions& o = self->impl_.options_;
        self->socket_.Handshake(o.tls_server_name.empty() ? self->impl_.host_ : o.tls_server_name,
                                [self, gen](const std::string& tls_error) {
                                  if (gen != self->generation_) return;
                                  if (!tls_error.empty()) {
                                    return self->Fail(Error(ErrorCode::kConnectionFailed, tls_error));
                                  }
                                  self->Handshake();
                                });
      });
    });
  }

  // Fails every call and closes the socket; calls are retried elsewhere unless `final`,
  // or unless authentication failed: retrying a wrong password is pointless, and feeds
  // the server's slow-down of failed attempts.
  void Fail(const Error& why, bool final = false) {
    generation_++;  // handlers of the abandoned socket see this and stand down
    // A closing client's IO thread ends when no work is left: a pending sweep would
    // hold it (and the process's exit) for up to one sweep period.
    if (final) sweep_.cancel();
    if (state_ == kIdle && inflight_.empty() && waiting_.empty()) return;
    state_ = kIdle;
    asio::error_code ignored;
    resolver_.cancel();
    socket_.Reset();
    out_.clear();
    // The abandoned socket's pending write is cancelled and never completes here (its
    // handler sees another generation): drop what it was writing, or it would go out
    // on the next connection.
    std::string().swap(out_writing_);
    writing_ = false;
    in_len_ = 0;
    hello_id_ = 0;
    auth_id_ = 0;
    scram_.reset();
    bool retry = !final && why.code() != ErrorCode::kAuthFailed;
    std::vector<CallPtr> calls;
    for (auto& c : inflight_) calls.push_back(std::move(c));
    for (auto& c : waiting_) calls.push_back(std::move(c));
    inflight_.clear();
    waiting_.clear();
    for (auto& c : calls) {
      if (!retry) {
        c->Fail(why);
      } else {
        impl_.Retry(c, why);
      }
    }
  }

  size_t load() const { return inflight_.size() + waiting_.size(); }
  bool ready() const { return state_ == kReady; }

 private:
  enum State { kIdle, kConnecting, kReady };

  void Handshake() {
    std::string hello = codec::Request(wire::Request::Hello, [&](flatbuffers::FlatBufferBuilder& fbb) {
      return wire::CreateHello(fbb, wire::kProtocolVersion,
                               fbb.CreateString(impl_.options_.client_name))
          .Union();
    });
    hello_id_ = codec::FrameId(hello);
    Enqueue(hello);
    Read();
  }

  void OnHelloReply(std::string_view payload) {
    try {
      auto r = codec::Response(payload);
      auto h = r->reply_as_HelloReply();
      if (!h) throw Error(ErrorCode::kProtocol, "expected HelloReply");
      max_frame_ = std::max<uint32_t>(h->max_frame(), wire::kMinMaxFrame);
      protocol_ = std::clamp<uint32_t>(h->protocol_version(), 1, wire::kProtocolVersion);
      impl_.protocol_.store(protocol_, std::memory_order_relaxed);
    } catch (const Error& e) {
      return Fail(e);
    }
    if (!impl_.options_.user.empty()) return StartAuth();
    Ready();
  }

  // SCRAM-SHA-256 (docs/security.md): AuthStart -> AuthChallenge, AuthContinue -> AuthOk,
  // whose server signature proves that the server knows the password too. The password
  // stays here; PBKDF2 runs once per connection, on the IO thread.
  void StartAuth() {
    if (protocol_ < 6) {
      return Fail(Error(ErrorCode::kAuthFailed, "the server does not support authentication"));
    }
    scram_ = std::make_unique<scram::Client>(impl_.options_.user, impl_.options_.password);
    std::string first = scram_->Start();
    std::string frame =
        codec::Request(wire::Request::AuthStart, [&](flatbuffers::FlatBufferBuilder& fbb) {
          auto mechanism = fbb.CreateString(scram::kMechanism.data(), scram::kMechanism.size());
          auto message =
              fbb.CreateVector(reinterpret_cast<const uint8_t*>(first.data()), first.size());
          return wire::CreateAuthStart(fbb, mechanism, message).Union();
        });
    auth_id_ = codec::FrameId(frame);
    Enqueue(frame);
  }

  void OnAuthReply(std::string_view payload) {
    auto text = [](const flatbuffers::Vector<uint8_t>* v) {
      return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
               : std::string_view();
    };
    try {
      auto r = codec::Response(payload);  // throws the server's error (AuthFailed: final)
      std::string error;
      if (auto c = r->reply_as_AuthChallenge()) {
        std::optional<std::string> final = scram_->Challenge(text(c->message()), &error);
        if (!final) throw Error(ErrorCode::kAuthFailed, "the server's challenge: " + error);
        std::string frame =
            codec::Request(wire::Request::AuthContinue, [&](flatbuffers::FlatBufferBuilder& fbb) {
              return wire::CreateAuthContinue(
                         fbb, fbb.CreateVector(reinterpret_cast<const uint8_t*>(final->data()),
                                               final->size()))
                  .Union();
            });
        auth_id_ = codec::FrameId(frame);
        Enqueue(frame);
        return;
      }
      auto ok = r->reply_as_AuthOk();
      if (!ok) throw Error(ErrorCode::kProtocol, "expected AuthChallenge or AuthOk");
      if (!scram_->Verify(text(ok->message()), &error)) {
        throw Error(ErrorCode::kAuthFailed, "the server could not prove it knows the password");
      }
    } catch (const Error& e) {
      return Fail(e);
    } catch (const std::exception& e) {  // OpenSSL failed
      return Fail(Error(ErrorCode::kAuthFailed, e.what()));
    }
    auth_id_ = 0;
    scram_.reset();
    Ready();
  }

  void Ready() {
    state_ = kReady;
    std::deque<CallPtr> waiting;
    waiting.swap(waiting_);
    for (auto& c : waiting) Write(c);
  }

  void Write(const CallPtr& call) {
    if (protocol_ < 2) {
      // Encoded for a newer server than this connection reached (one replaced by an older
      // cairnd since): send its protocol 1 form.
      if (std::optional<std::string> v1 = codec::DowngradeGet(call->frame)) {
        call->frame = std::move(*v1);
        call->id = codec::FrameId(call->frame);
      }
    }
    if (call->protocol > protocol_) {
      // An older server would refuse a request it does not know with a vaguer error.
      return call->Fail(Error(ErrorCode::kBadRequest,
                              std::string(call->name) + " needs a server that speaks protocol " +
                                  std::to_string(call->protocol) + "; this one speaks " +
                                  std::to_string(protocol_)));
    }
    if (call->frame.size() - wire::kFrameHeaderSize > max_frame_) {
      // The server would refuse it and close the connection, failing the calls beside it.
      return call->Fail(Error(ErrorCode::kTooLarge,
                              "request of " + std::to_string(call->frame.size()) +
                                  " bytes is over the server's limit of " +
                                  std::to_string(max_frame_)));
    }
    call->sent = true;
    inflight_.push_back(call);
    Enqueue(call->frame);
  }

  // Frames queued while the IO thread handles one batch of events go out together: the
  // flush runs after the current handler, in one write.
  void Enqueue(std::string_view frame) {
    out_.append(frame);
    if (flush_posted_ || writing_) return;
    flush_posted_ = true;
    asio::post(impl_.io_, [self = shared_from_this(), gen = generation_] {
      self->flush_posted_ = false;
      if (gen == self->generation_) self->Flush();
    });
  }

  void Flush() {
    if (writing_ || out_.empty()) return;
    writing_ = true;
    out_writing_.swap(out_);
    auto self = shared_from_this();
    socket_.async_write(asio::buffer(out_writing_),
                      [self, gen = generation_](const asio::error_code& ec, size_t) {
                        if (gen != self->generation_) return;
                        self->writing_ = false;
                        self->out_writing_.clear();
                        if (ec) return self->Lost(ec);
                        self->Flush();
                      });
  }

  void Lost(const asio::error_code& ec) {
    Fail(Error(ErrorCode::kConnectionFailed, "connection lost: " + ec.message()));
  }

  void Read() {
    if (in_.size() - in_len_ < 4096) in_.resize(std::max<size_t>(in_.size() * 2, 64 << 10));
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                            [self, gen = generation_](const asio::error_code& ec, size_t n) {
                              if (gen != self->generation_) return;
                              if (ec) return self->Lost(ec);
                              self->in_len_ += n;
                              self->Parse();
                            });
  }

  void Parse() {
    size_t pos = 0;
    uint64_t gen = generation_;
    while (true) {
      std::string_view payload;
      size_t consumed = 0;
      auto st = wire::ParseFrame(std::string_view(in_.data() + pos, in_len_ - pos),
                                 max_frame_ + (1 << 20), &payload, &consumed);
      if (st == wire::FrameStatus::kNeedMore) break;
      if (st != wire::FrameStatus::kComplete || !wire::VerifyResponseFrame(payload)) {
        return Fail(Error(ErrorCode::kProtocol, "the server sent a malformed frame"));
      }
      pos += consumed;
      auto r = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
      uint64_t id = r->id();
      if (id == hello_id_ && state_ == kConnecting) {
        OnHelloReply(payload);
      } else if (auth_id_ != 0 && id == auth_id_ && state_ == kConnecting) {
        OnAuthReply(payload);
      } else if (id == 0) {
        // A connection-level error: the connection is over.
        const wire::Error* e = r->error();
        return Fail(Error(e ? wire::FromWire(e->code()) : ErrorCode::kProtocol,
                          e && e->message() ? e->message()->str() : "connection error"));
      } else {
        // Responses come in request order: the answered call is at the front, behind
        // calls that timed out meanwhile.
        while (!inflight_.empty() && inflight_.front()->finished) inflight_.pop_front();
        auto it = inflight_.begin();
        if (it != inflight_.end() && (*it)->id != id) {
          it = std::find_if(inflight_.begin(), inflight_.end(),
                            [id](const CallPtr& c) { return c->id == id; });
        }
        if (it != inflight_.end()) {
          CallPtr c = std::move(*it);
          inflight_.erase(it);
          c->Finish(nullptr, payload);
        }  // else: a response to a call that timed out; dropped
      }
      if (gen != generation_ || state_ == kIdle) return;  // failed meanwhile
    }
    std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
    in_len_ -= pos;
    Read();
  }

  // Times out calls past their deadline, and a connect that takes too long.
  void ArmSweep() {
    if (sweeping_) return;
    sweeping_ = true;
    sweep_.expires_after(std::chrono::milliseconds(50));
    sweep_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      self->sweeping_ = false;
      if (!ec) self->Sweep();
    });
  }

  void Sweep() {
    auto now = Clock::now();
    if (state_ == kConnecting && now > connect_deadline_) {
      Fail(Error(ErrorCode::kConnectionFailed, "connect timed out"));
    }
    auto expire = [&](const CallPtr& c) {
      if (now < c->deadline) return false;
      c->Fail(Error(ErrorCode::kTimeout,
                    c->write ? "no answer in time; the write may or may not have been applied"
                             : "no answer in time"));
      return true;
    };
    // Expired calls stay in inflight_ (finished) until their turn at the front comes.
    for (const CallPtr& c : inflight_) {
      if (!c->finished) expire(c);
    }
    while (!inflight_.empty() && inflight_.front()->finished) inflight_.pop_front();
    std::erase_if(waiting_, expire);
    if (!inflight_.empty() || !waiting_.empty() || state_ == kConnecting) ArmSweep();
  }

  Client::Impl& impl_;
  internal::ClientTransport socket_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer sweep_;
  State state_ = kIdle;
  uint64_t generation_ = 0;  // bumped when a socket is abandoned; stale handlers check it
  uint64_t hello_id_ = 0;
  uint64_t auth_id_ = 0;                   // the auth request being answered
  std::unique_ptr<scram::Client> scram_;   // during authentication
  uint32_t max_frame_ = wire::kDefaultMaxFrame;
  uint32_t protocol_ = 1;  // agreed in the handshake
  Clock::time_point connect_deadline_;
  bool sweeping_ = false;
  std::deque<CallPtr> inflight_;  // sent, in order; answers come back in this order
  std::deque<CallPtr> waiting_;
  std::string out_, out_writing_;
  bool writing_ = false;
  bool flush_posted_ = false;
  std::vector<char> in_;
  size_t in_len_ = 0;
};

void Client::Impl::Submit(CallPtr call) {
  asio::post(io_, [this, call = std::move(call)]() mutable { Dispatch(std::move(call)); });
}

void Client::Impl::Dispatch(CallPtr call) {
  if (call->refused) return call->Finish(call->refused);
  if (closing_) return call->Fail(Error(ErrorCode::kConnectionFailed, "the client is closed"));
  call->attempts++;
  if (call->channel != detail::kAnyChannel) {
    // A channel's calls keep to their connection, in order (reconnecting it if need be).
    auto& c = conns_[call->channel % conns_.size()];
    return c->Send(std::move(call));
  }
  // Round robin, preferring a connection that is up.
  std::shared_ptr<Connection> pick;
  for (size_t i = 0; i < conns_.size(); i++) {
    auto& c = conns_[(next_ + i) % conns_.size()];
    if (c->ready()) {
      pick = c;
      next_ = (next_ + i + 1) % conns_.size();
      break;
    }
  }
  if (!pick) pick = conns_[next_++ % conns_.size()];
  pick->Send(std::move(call));
}

void Client::Impl::Retry(CallPtr call, const Error& why) {
  if (closing_) return call->Fail(Error(ErrorCode::kConnectionFailed, "the client is closed"));
  auto delay = options_.retry_backoff * (1 << std::min(call->attempts - 1, 5));
  // Whatever the connection died of, for this call the outcome is a lost connection: its
  // write may or may not have been applied. (The server's reason is in the message.)
  std::string unknown = call->write && call->sent ? "; the write may or may not have been applied"
                                                  : "";
  if (call->sent && !call->resendable) {
    // No idempotency key (catalog changes): sending it again could apply it twice.
    return call->Fail(Error(ErrorCode::kConnectionFailed, why.message() + unknown));
  }
  if (call->attempts >= options_.max_attempts || Clock::now() + delay >= call->deadline) {
    return call->Fail(Error(why.code() == ErrorCode::kTimeout ? ErrorCode::kTimeout
                                                              : ErrorCode::kConnectionFailed,
                            why.message() + " (after " + std::to_string(call->attempts) +
                                " attempt" + (call->attempts == 1 ? "" : "s") + ")" + unknown));
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, delay);
  timer->async_wait([this, timer, call](const asio::error_code&) { Dispatch(call); });
}

void Client::Impl::Shutdown() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] { CloseAll(); });
  guard_.reset();
  thread_.join();
}

void Client::Impl::CloseAll() {
  closing_ = true;
  for (auto& c : conns_) c->Fail(Error(ErrorCode::kConnectionFailed, "the client is closed"), true);
  conns_.clear();
}

// --- Client.

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() {
  if (impl_ && impl_->thread_.get_id() == std::this_thread::get_id()) {
    // The last reference went away in a completion handler, on the IO thread itself:
    // that thread cannot be joined from here, and the io_context it runs cannot be
    // destroyed under it. Close everything now; the thread frees the rest when run()
    // returns.
    Impl* impl = impl_.release();
    impl->CloseAll();
    impl->guard_.reset();
    impl->thread_.detach();
    impl->delete_on_exit_ = true;
  }
}

std::shared_ptr<Client> Client::Connect(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (!ParseAddress(options.address, &impl->host_, &impl->port_)) {
    throw Error(ErrorCode::kBadRequest, "address must be HOST:PORT, not '" + options.address + "'");
  }
  impl->tls_ = internal::MakeClientTlsContext(options);
  size_t n = std::max<size_t>(1, options.connections);
  for (size_t i = 0; i < n; i++) impl->conns_.push_back(std::make_shared<Connection>(*impl));
  Impl* raw = impl.get();
  impl->thread_ = std::thread([raw] {
    while (true) {
      try {
        raw->io_.run();
        if (raw->delete_on_exit_) delete raw;  // the Client went away on this thread
        return;
      } catch (const std::exception& e) {
        // A completion handler of the application threw; the client keeps serving.
        std::fprintf(stderr, "libcairn: exception from a completion handler: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "libcairn: exception from a completion handler\n");
      }
    }
  });
  asio::post(raw->io_, [raw] {
    for (auto& c : raw->conns_) c->Connect();
  });
  std::shared_ptr<Client> client(new Client(std::move(impl)));
  try {
    client->Ping();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kAuthFailed) {
      throw Error(e.code(), "cannot authenticate to cairnd at " + options.address + " as '" +
                                options.user + "': " + e.message());
    }
    throw Error(e.code() == ErrorCode::kTimeout ? ErrorCode::kConnectionFailed : e.code(),
                "cannot reach cairnd at " + options.address + ": " + e.message());
  }
  return client;
}

asio::any_io_executor Client::executor() const { return impl_->io_.get_executor(); }
const ClientOptions& Client::options() const { return impl_->options_; }
uint32_t Client::protocol() const { return impl_->protocol_.load(std::memory_order_relaxed); }

void detail::Submit(Client& client, std::shared_ptr<Call> call, size_t channel) {
  Client::Impl& impl = *client.impl_;
  if (!call->refused) call->id = codec::FrameId(call->frame);
  call->channel = channel;
  call->deadline = Clock::now() + impl.options_.timeout + call->extra_time;
  if (impl.thread_.get_id() == std::this_thread::get_id()) {
    impl.Dispatch(std::move(call));
  } else {
    impl.Submit(std::move(call));
  }
}

asio::any_io_executor detail::DefaultExecutor(const Client& client) { return client.executor(); }

namespace {

void CheckNotIoThread(const std::thread& t) {
  if (t.get_id() == std::this_thread::get_id()) {
    throw Error(ErrorCode::kBadRequest,
                "a synchronous call from the client's own IO thread would deadlock; use the "
                "asynchronous form");
  }
}

// The synchronous form of a call: waits for the result or rethrows the error. The promise
// is completed on the IO thread itself (asio::use_future would hop through another
// thread pool first).
template <typename T>
T Wait(Client& client, const std::thread& io_thread, detail::Request<T> request) {
  CheckNotIoThread(io_thread);
  std::promise<T> promise;
  std::future<T> result = promise.get_future();
  auto decode = request.decode;
  auto call = std::make_shared<detail::CallWith<
      std::function<void(std::exception_ptr, std::string_view, std::string_view)>>>(
      [&promise, decode](std::exception_ptr e, std::string_view payload, std::string_view frame) {
        if (e) return promise.set_exception(e);
        try {
          promise.set_value(decode(payload, frame));
        } catch (...) {
          promise.set_exception(std::current_exception());
        }
      });
  detail::Prepare(*call, request);
  detail::Submit(client, std::move(call), detail::kAnyChannel);
  return result.get();
}

}  // namespace

void Client::Ping() { Wait(*this, impl_->thread_, detail::PingRequest()); }
ServerStats Client::Stats() { return Wait(*this, impl_->thread_, detail::StatsRequest()); }
VerifyResult Client::Verify() {
  if (protocol() < 3) {
    throw Error(ErrorCode::kBadRequest, "Verify needs a server that speaks protocol 3");
  }
  return Wait(*this, impl_->thread_, detail::VerifyRequest());
}
ReplicasInfo Client::ListReplicas() {
  if (protocol() < 5) throw Error(ErrorCode::kBadRequest, "ListReplicas needs a server that speaks protocol 5");
  return Wait(*this, impl_->thread_, detail::ListReplicasRequest());
}
ReplicasInfo Client::Promote() {
  if (protocol() < 5) throw Error(ErrorCode::kBadRequest, "Promote needs a server that speaks protocol 5");
  return Wait(*this, impl_->thread_, detail::PromoteRequest());
}
uint64_t Client::CreateCollection(std::string_view name) {
  return Wait(*this, impl_->thread_, detail::CreateCollectionRequest(name));
}
uint64_t Client::DropCollection(std::string_view name) {
  return Wait(*this, impl_->thread_, detail::DropCollectionRequest(name));
}
std::vector<CollectionInfo> Client::ListCollections() {
  std::vector<CollectionInfo> all;
  std::string after;
  while (true) {
    CollectionsPage page = Wait(*this, impl_->thread_, detail::ListCollectionsRequest(after));
    for (CollectionInfo& c : page.collections) all.push_back(std::move(c));
    if (page.next.empty()) return all;
    if (page.next <= after) {
      throw Error(ErrorCode::kProtocol, "a collection page that does not advance");
    }
    after = std::move(page.next);
  }
}
CollectionInfo Client::DescribeCollection(std::string_view name) {
  return Wait(*this, impl_->thread_, detail::DescribeCollectionRequest(name));
}
uint64_t Client::CreateIndex(std::string_view collection, const IndexSpec& spec) {
  return Wait(*this, impl_->thread_, detail::CreateIndexRequest(collection, spec));
}
uint64_t Client::DropIndex(std::string_view collection, std::string_view index) {
  return Wait(*this, impl_->thread_, detail::DropIndexRequest(collection, index));
}
static_assert(ClientOptions{}.scram_iterations == scram::kDefaultIterations);

uint64_t Client::CreateUser(std::string_view name, std::string_view password,
                            const std::vector<std::string>& roles) {
  return Wait(*this, impl_->thread_,
              detail::CreateUserRequest(name, password, roles, options().scram_iterations));
}
uint64_t Client::DropUser(std::string_view name) {
  return Wait(*this, impl_->thread_, detail::DropUserRequest(name));
}
uint64_t Client::SetPassword(std::string_view name, std::string_view password) {
  return Wait(*this, impl_->thread_,
              detail::SetPasswordRequest(name, password, options().scram_iterations));
}
uint64_t Client::GrantRole(std::string_view user, std::string_view role) {
  return Wait(*this, impl_->thread_, detail::GrantRoleRequest(user, role));
}
uint64_t Client::RevokeRole(std::string_view user, std::string_view role) {
  return Wait(*this, impl_->thread_, detail::RevokeRoleRequest(user, role));
}
std::vector<UserInfo> Client::ListUsers() {
  return Wait(*this, impl_->thread_, detail::ListUsersRequest());
}
uint64_t Client::CreateRole(std::string_view name, const std::vector<Grant>& grants) {
  return Wait(*this, impl_->thread_, detail::CreateRoleRequest(name, grants));
}
uint64_t Client::DropRole(std::string_view name) {
  return Wait(*this, impl_->thread_, detail::DropRoleRequest(name));
}
uint64_t Client::GrantPermission(std::string_view role, const Grant& grant) {
  return Wait(*this, impl_->thread_, detail::GrantPermissionRequest(role, grant));
}
uint64_t Client::RevokePermission(std::string_view role, const Grant& grant) {
  return Wait(*this, impl_->thread_, detail::RevokePermissionRequest(role, grant));
}
std::vector<RoleInfo> Client::ListRoles() {
  return Wait(*this, impl_->thread_, detail::ListRolesRequest());
}

DatabaseDigest Client::Digest(uint64_t at, std::chrono::milliseconds wait) {
  if (protocol() < internal::kStreamProtocol) {
    throw Error(ErrorCode::kBadRequest, "Digest needs a server that speaks protocol 5");
  }
  return Wait(*this, impl_->thread_, detail::DigestRequest(at, wait));
}

// --- Streams.

internal::StreamTarget Client::Target() const {
  return {&impl_->io_, impl_->options_, impl_->host_, impl_->port_, impl_->thread_.get_id(),
          impl_->tls_};
}

Watcher Client::Watch(const WatchOptions& options) {
  return Watcher(shared_from_this(), internal::StartWatch(Target(), options));
}

SnapshotReader Client::Snapshot(const SnapshotOptions& options) {
  return SnapshotReader(shared_from_this(), internal::StartSnapshot(Target(), options));
}

TxnResult Client::Commit(const Txn& txn) { return Wait(*this, impl_->thread_, detail::CommitRequest(txn)); }
std::optional<Record> Client::Get(std::string_view collection, std::string_view key) {
  return Wait(*this, impl_->thread_, detail::GetRequest(collection, key, protocol()));
}
uint64_t Client::Put(std::string_view collection, std::string_view key, const Document& doc,
                     std::optional<uint64_t> if_version) {
  return Wait(*this, impl_->thread_, detail::PutRequest(collection, key, doc, if_version));
}
uint64_t Client::Insert(std::string_view collection, std::string_view key, const Document& doc) {
  return Wait(*this, impl_->thread_, detail::InsertRequest(collection, key, doc));
}
uint64_t Client::Replace(std::string_view collection, std::string_view key, const Document& doc,
                         std::optional<uint64_t> if_version) {
  return Wait(*this, impl_->thread_, detail::ReplaceRequest(collection, key, doc, if_version));
}
bool Client::Delete(std::string_view collection, std::string_view key,
                    std::optional<uint64_t> if_version) {
  return Wait(*this, impl_->thread_, detail::DeleteRequest(collection, key, if_version));
}
uint64_t Client::Count(std::string_view collection, const ScanOptions& options) {
  return Wait(*this, impl_->thread_, detail::CountRequest(collection, options));
}
uint64_t Client::CountQuery(std::string_view collection, std::string_view index,
                            const QueryOptions& options) {
  return Wait(*this, impl_->thread_, detail::CountQueryRequest(collection, index, options));
}

RecordStream Client::Scan(std::string_view collection, const ScanOptions& options) {
  std::string coll(collection);
  return RecordStream(
      this,
      [coll, options](std::string_view continuation) {
        return Txn().Scan(coll, options, continuation);
      },
      options.limit);
}

RecordStream Client::Query(std::string_view collection, std::string_view index,
                           const QueryOptions& options) {
  std::string coll(collection), ix(index);
  return RecordStream(
      this,
      [coll, ix, options](std::string_view continuation) {
        return Txn().Query(coll, ix, options, continuation);
      },
      options.limit);
}

// --- Paging.

void RecordStream::Fetch() {
  started_ = true;
  do {
    TxnResult r = client_->Commit(make_(continuation_));
    OpResult& op = r.results.at(0);
    page_ = std::move(op.records);
    continuation_ = std::move(op.continuation);
  } while (page_.empty() && !continuation_.empty());
  pos_ = 0;
  if (limit_ && page_.size() > limit_ - returned_) page_.resize(limit_ - returned_);
  done_ = page_.empty();
}

void RecordStream::Advance() {
  pos_++;
  returned_++;
  if (limit_ && returned_ >= limit_) {
    done_ = true;
  } else if (pos_ >= page_.size()) {
    if (continuation_.empty()) {
      done_ = true;
    } else {
      Fetch();
    }
  }
}

std::vector<Record> RecordStream::ToVector() {
  std::vector<Record> out;
  for (auto it = begin(); it != end(); ++it) out.push_back(*it);
  return out;
}

// --- Optimistic transactions.

void OptimisticTxn::Saw(std::string_view collection, std::string_view key, uint64_t version) {
  for (const Read& rd : reads_) {
    if (rd.collection == collection && rd.key == key) {
      if (rd.version != version) {
        throw Error(ErrorCode::kConditionFailed,
                    "'" + std::string(key) + "' in '" + std::string(collection) +
                        "' changed while the transaction read it");
      }
      return;
    }
  }
  reads_.push_back({std::string(collection), std::string(key), version});
}

std::optional<Record> OptimisticTxn::Get(std::string_view collection, std::string_view key) {
  for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
    if (it->collection == collection && it->key == key) {
      if (!it->doc) return std::nullopt;
      return Record{std::string(key), 0, ValueKind::kDocument, it->doc->bytes()};
    }
  }
  std::optional<Record> r = client_->Get(collection, key);
  Saw(collection, key, r ? r->version : 0);
  return r;
}

std::vector<Record> OptimisticTxn::Query(std::string_view collection, std::string_view index,
                                         const QueryOptions& options) {
  std::vector<Record> out = client_->Query(collection, index, options).ToVector();
  for (const Record& r : out) Saw(collection, r.key, r.version);
  return out;
}

std::vector<Record> OptimisticTxn::Scan(std::string_view collection, const ScanOptions& options) {
  std::vector<Record> out = client_->Scan(collection, options).ToVector();
  for (const Record& r : out) Saw(collection, r.key, r.version);
  return out;
}

void OptimisticTxn::Put(std::string_view collection, std::string_view key, const Document& doc) {
  writes_.push_back({std::string(collection), std::string(key), Mode::kPut, doc});
}

void OptimisticTxn::Insert(std::string_view collection, std::string_view key,
                           const Document& doc) {
  writes_.push_back({std::string(collection), std::string(key), Mode::kInsert, doc});
}

void OptimisticTxn::Replace(std::string_view collection, std::string_view key,
                            const Document& doc) {
  writes_.push_back({std::string(collection), std::string(key), Mode::kReplace, doc});
}

void OptimisticTxn::Delete(std::string_view collection, std::string_view key) {
  writes_.push_back({std::string(collection), std::string(key), Mode::kDelete, std::nullopt});
}

void Client::CommitOptimistic(OptimisticTxn& t) {
  if (t.writes_.empty()) return;
  Txn txn;
  for (const auto& r : t.reads_) {
    if (r.version) {
      txn.IfVersion(r.collection, r.key, r.version);
    } else {
      txn.IfAbsent(r.collection, r.key);
    }
  }
  for (const auto& w : t.writes_) {
    switch (w.mode) {
      case OptimisticTxn::Mode::kPut: txn.Put(w.collection, w.key, *w.doc); break;
      case OptimisticTxn::Mode::kInsert: txn.Insert(w.collection, w.key, *w.doc); break;
      case OptimisticTxn::Mode::kReplace: txn.Replace(w.collection, w.key, *w.doc); break;
      case OptimisticTxn::Mode::kDelete: txn.Delete(w.collection, w.key); break;
    }
  }
  Commit(txn);
}

void Client::Backoff(int attempt, const TransactOptions& options) {
  auto cap = std::min(options.max_backoff, options.backoff * (1 << std::min(attempt - 1, 16)));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(cap).count();
  if (us > 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int64_t>(0, us)(rng)));
  }
}

std::string ServerStats::ToJson() const {
  std::string out = "{";
  auto num = [&](std::string_view k, double v, bool comma = true) {
    AppendJsonString(k, &out);
    char b[64];
    snprintf(b, sizeof b, ":%.1f", v);
    out += b;
    if (comma) out += ",";
  };
  auto integer = [&](std::string_view k, uint64_t v, bool comma = true) {
    AppendJsonString(k, &out);
    out += ":" + std::to_string(v);
    if (comma) out += ",";
  };
  integer("last_commit", last_commit);
  integer("db_used_bytes", db_used_bytes);
  integer("db_file_bytes", db_file_bytes);
  integer("db_max_bytes", db_max_bytes);
  out += "\"counters\":{";
  for (size_t i = 0; i < counters.size(); i++) {
    integer(counters[i].first, counters[i].second, i + 1 < counters.size());
  }
  out += "},\"latency_us\":{";
  auto lat = [&](const Latency& l, bool comma) {
    AppendJsonString(l.name, &out);
    out += ":{";
    integer("count", l.count);
    num("p50", l.p50);
    num("p90", l.p90);
    num("p99", l.p99);
    num("p999", l.p999);
    num("max", l.max, false);
    out += comma ? "}," : "}";
  };
  for (size_t i = 0; i < latencies.size(); i++) lat(latencies[i], i + 1 < latencies.size());
  out += "},\"group_commit_batch\":{";
  integer("count", batch_sizes.count);
  num("p50", batch_sizes.p50);
  num("p99", batch_sizes.p99);
  num("max", batch_sizes.max, false);
  out += "}}";
  return out;
}

}  // namespace cairn::client
