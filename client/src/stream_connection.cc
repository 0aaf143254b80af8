// A connection that carries one stream: handshake, the stream's request, then frames.
#include "stream_connection.h"

#include <algorithm>
#include <cstring>

#include "cairn/protocol/codes.h"
#include "cairn/protocol/frame.h"
#include "cairn/protocol/scram.h"
#include "cairn_generated.h"
#include "codec.h"

namespace cairn::client::internal {

namespace {

using Clock = std::chrono::steady_clock;

// The read buffer starts at this and doubles while a frame does not fit.
constexpr size_t kMinBuffer = 256 << 10;
constexpr size_t kMinFree = 64 << 10;

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

StreamConnection::StreamConnection(const StreamTarget& target, std::string request,
                                   std::string what, std::chrono::milliseconds idle_timeout)
    : target_(target),
      request_(std::move(request)),
      request_id_(codec::FrameId(request_)),
      what_(std::move(what)),
      idle_timeout_(idle_timeout),
      socket_(*target.io, target.tls),
      resolver_(*target.io),
      timer_(*target.io) {}

StreamConnection::~StreamConnection() = default;

// --- Connecting.

void StreamConnection::Start() {
  if (state_ != State::kIdle) return;
  state_ = State::kConnecting;
  deadline_ = Clock::now() + target_.options.connect_timeout;
  ArmTimer();
  auto self = shared_from_this();
  resolver_.async_resolve(
      target_.host, target_.port, [self](const asio::error_code& ec, auto results) {
        if (self->ended_) return;
        if (ec) {
          return self->Fail(Error(ErrorCode::kConnectionFailed,
                                  "cannot resolve " + self->target_.host + ": " + ec.message()));
        }
        asio::async_connect(self->socket_.socket(), results,
                            [self](const asio::error_code& ec, const auto&) {
                              if (self->ended_) return;
                              if (ec) {
                                return self->Fail(Error(
                                    ErrorCode::kConnectionFailed,
                                    "cannot reach cairnd at " + self->target_.options.address +
                                        ": " + ec.message()));
                              }
                              const ClientOptions& o = self->target_.options;
                              self->socket_.Handshake(
                                  o.tls_server_name.empty() ? self->target_.host : o.tls_server_name,
                                  [self](const std::string& tls_error) {
                                    if (self->ended_) return;
                                    if (!tls_error.empty()) {
                                      return self->Fail(Error(ErrorCode::kConnectionFailed,
                                                              "cannot reach cairnd at " +
                                                                  self->target_.options.address +
                                                                  ": " + tls_error));
                                    }
                                    self->OnConnected();
                                  });
                            });
      });
}

void StreamConnection::OnConnected() {
  asio::error_code ignored;
  socket_.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  state_ = State::kHello;
  std::string hello =
      codec::Request(wire::Request::Hello, [&](flatbuffers::FlatBufferBuilder& fbb) {
        return wire::CreateHello(fbb, wire::kProtocolVersion,
                                 fbb.CreateString(target_.options.client_name))
            .Union();
      });
  hello_id_ = codec::FrameId(hello);
  Send(std::move(hello));
  Read();
}

void StreamConnection::OnHelloReply(const wire::ResponseFrame& r) {
  if (const wire::Error* e = r.error()) {
    return Fail(Error(wire::FromWire(e->code()),
                      "the server refused the handshake: " +
                          (e->message() ? e->message()->str() : std::string())));
  }
  const wire::HelloReply* h = r.reply_as_HelloReply();
  if (!h) return Fail(Error(ErrorCode::kProtocol, "expected a HelloReply"));
  if (h->protocol_version() < kStreamProtocol) {
    return Fail(Error(ErrorCode::kBadRequest,
                      "the server speaks protocol " + std::to_string(h->protocol_version()) +
                          "; streams need " + std::to_string(kStreamProtocol)));
  }
  max_frame_ = std::max<uint32_t>(h->max_frame(), wire::kMinMaxFrame);
  if (target_.options.user.empty()) return StartStreaming();
  if (h->protocol_version() < 6) {
    return Fail(Error(ErrorCode::kAuthFailed, "the server does not support authentication"));
  }
  state_ = State::kAuth;
  scram_ = std::make_unique<scram::Client>(target_.options.user, target_.options.password);
  std::string first = scram_->Start();
  std::string frame =
      codec::Request(wire::Request::AuthStart, [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto mechanism = fbb.CreateString(scram::kMechanism.data(), scram::kMechanism.size());
        auto message =
            fbb.CreateVector(reinterpret_cast<const uint8_t*>(first.data()), first.size());
        return wire::CreateAuthStart(fbb, mechanism, message).Union();
      });
  auth_id_ = codec::FrameId(frame);
  Send(std::move(frame));
}

void StreamConnection::OnAuthReply(const wire::ResponseFrame& r) {
  if (const wire::Error* e = r.error()) {
    return Fail(Error(wire::FromWire(e->code()), e->message() ? e->message()->str() : ""));
  }
  auto text = [](const flatbuffers::Vector<uint8_t>* v) {
    return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
             : std::string_view();
  };
  std::string error;
  try {
    if (const wire::AuthChallenge* c = r.reply_as_AuthChallenge()) {
      std::optional<std::string> final = scram_->Challenge(text(c->message()), &error);
      if (!final) return Fail(Error(ErrorCode::kAuthFailed, "the server's challenge: " + error));
      std::string frame =
          codec::Request(wire::Request::AuthContinue, [&](flatbuffers::FlatBufferBuilder& fbb) {
            return wire::CreateAuthContinue(
                       fbb, fbb.CreateVector(reinterpret_cast<const uint8_t*>(final->data()),
                                             final->size()))
                .Union();
          });
      auth_id_ = codec::FrameId(frame);
      return Send(std::move(frame));
    }
    const wire::AuthOk* ok = r.reply_as_AuthOk();
    if (!ok) return Fail(Error(ErrorCode::kProtocol, "expected AuthChallenge or AuthOk"));
    if (!scram_->Verify(text(ok->message()), &error)) {
      return Fail(
          Error(ErrorCode::kAuthFailed, "the server could not prove it knows the password"));
    }
  } catch (const std::exception& e) {  // OpenSSL failed
    return Fail(Error(ErrorCode::kAuthFailed, e.what()));
  }
  scram_.reset();
  StartStreaming();
}

void StreamConnection::StartStreaming() {
  state_ = State::kStreaming;
  deadline_ = Clock::now() + idle_timeout_;
  Send(request_);
}

void StreamConnection::Send(std::string frame) {
  // Two frames in all: Hello, then the request once the HelloReply is in. Each write owns
  // its bytes until its handler runs.
  auto bytes = std::make_shared<std::string>(std::move(frame));
  auto self = shared_from_this();
  socket_.async_write(asio::buffer(*bytes),
                    [self, bytes](const asio::error_code& ec, size_t) {
                      if (self->ended_) return;
                      if (ec) {
                        self->Fail(Error(ErrorCode::kConnectionFailed,
                                         "connection lost: " + ec.message()));
                      }
                    });
}

// --- Reading.

void StreamConnection::Resume() {
  paused_ = false;
  Read();
}

void StreamConnection::Read() {
  if (reading_ || paused_ || ended_) return;
  if (in_.size() - in_len_ < kMinFree) in_.resize(std::max(in_.size() * 2, kMinBuffer));
  reading_ = true;
  if (state_ == State::kStreaming) deadline_ = Clock::now() + idle_timeout_;
  ArmTimer();
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                          [self](const asio::error_code& ec, size_t n) { self->OnRead(ec, n); });
}

void StreamConnection::OnRead(const asio::error_code& ec, size_t n) {
  reading_ = false;
  if (ended_) return;
  // A TLS server that closes without close_notify ends the stream as an EOF would.
  if (ec == asio::error::eof || ClientTransport::IsTruncation(ec)) {
    if (state_ != State::kStreaming) {
      return Fail(Error(ErrorCode::kConnectionFailed,
                        "the server closed the connection during the handshake"));
    }
    if (in_len_ > 0) {
      return Fail(Error(ErrorCode::kConnectionFailed,
                        "the server closed the connection in the middle of a frame"));
    }
    return End(nullptr);
  }
  if (ec) return Fail(Error(ErrorCode::kConnectionFailed, "connection lost: " + ec.message()));
  in_len_ += n;
  if (state_ == State::kStreaming) deadline_ = Clock::now() + idle_timeout_;
  Parse();
}

void StreamConnection::Parse() {
  auto self = shared_from_this();  // the stream's callbacks may close it
  // Until the handshake is done the server's limit is not known: the default bounds it.
  uint32_t limit = (max_frame_ ? max_frame_ : wire::kDefaultMaxFrame) + (1 << 20);
  size_t pos = 0;
  while (!ended_) {
    std::string_view payload;
    size_t consumed = 0;
    auto st = wire::ParseFrame(std::string_view(in_.data() + pos, in_len_ - pos), limit,
                               &payload, &consumed);
    if (st == wire::FrameStatus::kNeedMore) break;
    if (st != wire::FrameStatus::kComplete) {
      return Fail(Error(ErrorCode::kProtocol,
                        st == wire::FrameStatus::kTooLarge
                            ? "the server announced a frame over " + std::to_string(limit) +
                                  " bytes"
                            : std::string("the server sent an empty frame")));
    }
    pos += consumed;
    Frame(payload);
  }
  if (ended_) return;
  std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
  in_len_ -= pos;
  Read();
  AfterFrames();
}

void StreamConnection::Frame(std::string_view payload) {
  if (!wire::VerifyResponseFrame(payload)) {
    return Fail(Error(ErrorCode::kProtocol, "the server sent a malformed frame"));
  }
  const auto* r = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
  if (r->id() == 0) {
    // A connection-level error: the connection is over.
    const wire::Error* e = r->error();
    return Fail(Error(e ? wire::FromWire(e->code()) : ErrorCode::kProtocol,
                      e && e->message() ? e->message()->str() : "connection error"));
  }
  if (state_ == State::kHello) {
    if (r->id() != hello_id_) {
      return Fail(Error(ErrorCode::kProtocol, "a frame before the HelloReply"));
    }
    return OnHelloReply(*r);
  }
  if (state_ == State::kAuth) {
    if (r->id() != auth_id_) return Fail(Error(ErrorCode::kProtocol, "a frame before AuthOk"));
    return OnAuthReply(*r);
  }
  if (r->id() != request_id_) {
    return Fail(Error(ErrorCode::kProtocol,
                      "a frame for request " + std::to_string(r->id()) + " on the " + what_ +
                          " stream of request " + std::to_string(request_id_)));
  }
  if (const wire::Error* e = r->error()) {
    return Fail(Error(wire::FromWire(e->code()), e->message() ? e->message()->str() : "",
                      e->condition(), e->operation(), e->log_first()));
  }
  try {
    OnFrame(*r);
  } catch (const Error& e) {
    Fail(e);
  } catch (const std::exception& e) {
    Fail(Error(ErrorCode::kProtocol, std::string("the ") + what_ + " stream: " + e.what()));
  }
}

// --- Ending.

void StreamConnection::Close(const Error& why) { Fail(why); }

void StreamConnection::End(std::exception_ptr error) {
  if (ended_) return;
  ended_ = true;
  state_ = State::kEnded;
  asio::error_code ignored;
  resolver_.cancel();
  timer_.cancel();
  socket_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.Close();
  std::vector<char>().swap(in_);
  in_len_ = 0;
  OnEnd(error);
}

void StreamConnection::ArmTimer() {
  if (ended_) return;
  // A wait for a later deadline (the connect's) is replaced by one for an earlier one.
  if (timer_armed_ && armed_for_ <= deadline_) return;
  timer_armed_ = true;
  armed_for_ = deadline_;
  uint64_t gen = ++timer_gen_;
  timer_.expires_at(deadline_);  // cancels the wait before, whose handler then stands down
  timer_.async_wait([self = shared_from_this(), gen](const asio::error_code&) {
    if (gen != self->timer_gen_) return;
    self->timer_armed_ = false;
    self->OnTimer();
  });
}

void StreamConnection::OnTimer() {
  if (ended_) return;
  bool waiting = state_ != State::kStreaming || reading_;
  if (!waiting) return;  // paused by the caller: no deadline
  if (Clock::now() < deadline_) return ArmTimer();
  if (state_ != State::kStreaming) {
    return Fail(Error(ErrorCode::kConnectionFailed,
                      "cannot reach cairnd at " + target_.options.address + ": no handshake in " +
                          Millis(target_.options.connect_timeout)));
  }
  Fail(Error(ErrorCode::kTimeout,
             "nothing from the server on the " + what_ + " stream for " + Millis(idle_timeout_)));
}

}  // namespace cairn::client::internal
