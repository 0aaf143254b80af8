#include "connection.h"

#include <spdlog/spdlog.h>

#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "fault.h"
#include "follower.h"
#include "streams.h"

namespace cairn::server {

namespace {

// Responses buffered for a client that does not read them: past this the
// connection stops reading requests until the client catches up.
constexpr size_t kOutputLimit = 4 << 20;

// A write job: the request bytes (which the decoded transaction points into), the

}  // namespace


Status Stream::OnFrame(const wire::RequestFrame& frame, StreamOutput& out) {
  (void)out;
  return Status(Code::kBadRequest,
                std::string(wire::EnumNameRequest(frame.request_type())) +
                    " sent on a connection that carries a stream: open another connection");
}

class Connection::StreamPort : public StreamOutput {
 public:
  StreamPort(Connection& c, uint64_t id) : c_(c), id_(id) {}
  flatbuffers::FlatBufferBuilder& builder() override { return c_.fbb_; }
  void Send() override { c_.Send(id_); }
  void Fail(const Status& s) override {
    c_.SendError(id_, s);
    c_.CloseAfterFlush();
  }
  void End() override { c_.CloseAfterFlush(); }
  bool Full() const override { return c_.OutputFull() || c_.closed_ || c_.close_after_flush_; }
  uint64_t id() const override { return id_; }
  uint32_t protocol() const override { return c_.protocol_; }
  asio::any_io_executor executor() override { return c_.executor_; }
  void Wake() override {
    if (c_.stream_wake_posted_.exchange(true)) return;
    auto self = c_.weak_from_this().lock();
    if (!self) return;
    asio::post(c_.executor_, [self] {
      self->stream_wake_posted_ = false;
      self->GuardHandler("stream", [&] {
        self->ProduceStream();
        self->Flush();
      });
    });
  }
  std::string peer() const override {
    asio::error_code ec;
    auto ep = c_.socket_.remote_endpoint(ec);
    if (ec) return "unknown";
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

 private:
  Connection& c_;
  const uint64_t id_;
};

Connection::Connection(Transport socket, ServerContext& ctx)
    : socket_(std::move(socket)),
      executor_(socket_.get_executor()),
      ctx_(ctx),
      timer_(socket_.get_executor()),
      auth_timer_(socket_.get_executor()) {
  asio::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? "unknown" : ep.address().to_string();
  asio::ip::address a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  loopback_ = !ec && a.is_loopback();
}

Connection::~Connection() {
  if (stream_) {
    ctx_.stats->streams_open--;
    stream_->Stop();
  }
  ReleaseSlot();
  LeaveHandshakeList();
  ctx_.Unregister(this);
}

void Connection::Start() {
  // Registered by the acceptor (Server::Admit), which also took its slot.
  asio::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  last_activity_ = Clock::now();
  ArmTimer();
  if (ctx_.draining) return Drain();
  // The first bytes are looked at (TLS on a plaintext port, or the reverse), and with TLS
  // the handshake done, within the Hello deadline (the timer's: Close ends it).
  socket_.Start([self = shared_from_this()](const asio::error_code& ec) {
    self->GuardHandler("connection start", [&] { self->OnTransportStarted(ec); });
  });
}

void Connection::OnTransportStarted(const asio::error_code& ec) {
  if (closed_) return;
  if (ec) {
    if (ec == make_error_code(Transport::StartError::kPlaintextPeer)) {
      ctx_.stats->tls_plaintext_refused++;
      spdlog::debug("a plaintext cairn client on the TLS port: answered that TLS is required");
    } else if (ec == make_error_code(Transport::StartError::kTlsPeer)) {
      ctx_.stats->bad_frames++;
      spdlog::debug("a TLS client on the plaintext port: answered that TLS is not served");
    } else if (ec != asio::error::operation_aborted) {
      ctx_.stats->tls_handshake_failures++;
      spdlog::debug("TLS handshake with {} failed: {}", StreamPort(*this, 0).peer(),
                    socket_.start_failure().empty() ? ec.message() : socket_.start_failure());
    }
    return Close();
  }
  if (socket_.tls()) ctx_.stats->tls_handshakes++;
  if (!socket_.peer_identity().empty()) {
    ctx_.stats->tls_client_certs++;
    spdlog::debug("TLS connection from {} ({}), client certificate of '{}'",
                  StreamPort(*this, 0).peer(), socket_.cipher(), socket_.peer_identity());
    // A verified client certificate names its user (as etcd's --client-cert-auth): the
    // user whose name is the certificate's identity is authenticated, without a password.
    if (ctx_.auth && ctx_.auth->enabled()) {
      principal_ = ctx_.auth->Resolve(socket_.peer_identity());
      if (principal_) ctx_.stats->auth_ok++;
    }
  }
  DoRead();
  Flush();
}

void Connection::ReleaseSlot() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  ctx_.admitted.fetch_sub(1);
  ctx_.stats->connections_open--;
}

void Connection::LeaveHandshakeList() {
  std::lock_guard lock(ctx_.mu);
  if (handshake_pos_) ctx_.handshaking.erase(*handshake_pos_);
  handshake_pos_.reset();
}

void Connection::Displace() {
  asio::post(executor_, [self = shared_from_this()] {
    if (self->closed_ || self->HandshakeDone() || self->close_after_flush_) return;
    self->ctx_.stats->handshakes_displaced++;
    self->SendError(0, Status(Code::kUnavailable,
                              "too many connections without a handshake: closed to make room "
                              "for a newer one (send Hello at once)"));
    self->CloseAfterFlush();
  });
}

template <typename F>
void Connection::GuardHandler(const char* what, F&& handle) {
  try {
    handle();
  } catch (const std::exception& e) {
    ctx_.stats->internal_errors++;
    spdlog::error("internal error in a connection's {}: {}; closing the connection", what,
                  e.what());
    try {
      if (!closed_ && !close_after_flush_) {
        fbb_.Clear();
        SendError(0, Status(Code::kInternal, "internal error; the server log has the details"));
      }
      CloseAfterFlush();
    } catch (const std::exception&) {
      Close();
    }
  }
}

void Connection::Guarded(const char* what, const std::function<void()>& handle) {
  GuardHandler(what, handle);
}

void Connection::Drain() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->closed_ || self->draining_) return;
    self->draining_ = true;
    if (self->stream_) return self->CloseAfterFlush();  // a stream ends with the server
    asio::error_code ec;
    self->socket_.cancel(ec);  // ends the pending read
    self->MaybeFinish();
  });
}

// --- Reading.

bool Connection::OutputFull() const { return out_.size() + out_writing_.size() >= kOutputLimit; }

bool Connection::CanParse() const {
  return !closed_ && !close_after_flush_ && inflight() < ctx_.options->max_inflight &&
         !OutputFull();
}

bool Connection::CanAccept() const { return CanParse() && !draining_; }

bool Connection::HasBufferedFrame() const { return in_.HasFrame(FrameLimit()); }

uint32_t Connection::FrameLimit() const {
  // Before authentication only the handshake's small frames are taken.
  return NeedsAuth() ? std::min(wire::kPreAuthMaxFrame, ctx_.options->max_frame)
                     : ctx_.options->max_frame;
}

void Connection::DoRead() {
  if (reading_ || closed_) return;
  if (!CanAccept()) {
    if (!draining_ && !close_after_flush_ && !backpressured_) {
      backpressured_ = true;
      ctx_.stats->backpressure++;
    }
    return;
  }
  backpressured_ = false;
  auto [room, size] = in_.Room(FrameLimit());
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(room, size),
      [self = shared_from_this()](const asio::error_code& ec, size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(const asio::error_code& ec, size_t n) {
  GuardHandler("read", [&] {
  reading_ = false;
  if (ec) {
    if (draining_ && ec == asio::error::operation_aborted) return MaybeFinish();
    // A TLS peer that closes without close_notify: between frames as an EOF; inside a
    // frame the frame is cut short (possibly by someone else), an error.
    if (Transport::IsTruncation(ec) && !in_.empty()) {
      spdlog::debug("TLS connection closed without close_notify inside a frame");
      return Close();
    }
    if (ec == asio::error::eof || Transport::IsTruncation(ec)) {
      // The client is done sending (it may have half-closed): finish and answer what it
      // sent, then close.
      draining_ = true;
      return MaybeFinish();
    }
    // Reset, or an aborted read at close: expected ends of a connection.
    if (ec != asio::error::operation_aborted) spdlog::debug("connection read: {}", ec.message());
    return Close();
  }
  ctx_.stats->bytes_in += n;
  in_.Filled(n);
  // Only complete frames count as activity (ProcessInput): a byte now and then does not
  // keep a connection open.
  ProcessInput();
  FinishTurn();
  DoRead();
  Flush();
  MaybeFinish();  // a read that completed just as a drain began
  });
}

void Connection::ProcessInput() {
  // Frames that arrived in one read arrived at one time.
  const Clock::time_point received = Clock::now();
  // Frames already read are answered even while draining: they were received.
  while (CanParse()) {
    std::string_view payload;
    switch (in_.Next(FrameLimit(), &payload)) {
      case wire::FrameStatus::kNeedMore:
        if (in_.empty()) {
          frame_started_.reset();
        } else if (!frame_started_) {
          frame_started_ = received;  // its deadline runs from now
          ArmTimer();
        }
        return;
      case wire::FrameStatus::kTooLarge: {
        // The stream cannot be trusted past this point: answer, then close.
        ctx_.stats->bad_frames++;
        uint32_t n;
        std::memcpy(&n, in_.unparsed().data(), 4);
        SendError(0, Status(Code::kTooLarge, "frame of " + std::to_string(n) +
                                                 " bytes is over the limit of " +
                                                 std::to_string(FrameLimit())));
        CloseAfterFlush();
        return;
      }
      case wire::FrameStatus::kEmpty:
        frame_started_.reset();
        last_activity_ = received;
        ctx_.stats->bad_frames++;
        ErrorInTurn(0, Status(Code::kBadRequest, "empty frame"));
        continue;
      case wire::FrameStatus::kComplete:
        frame_started_.reset();
        last_activity_ = received;
        HandleFrame(payload, received);
        continue;
    }
  }
}

void Connection::Record(RequestKind kind, Clock::time_point received) {
  // Responses leave when the turn ends: latencies are taken then, with one clock read.
  answered_.emplace_back(kind, received);
}

void Connection::FinishTurn() {
  snapshot_.reset();
  if (answered_.empty()) return;
  Clock::time_point now = Clock::now();
  for (const auto& [kind, received] : answered_) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - received);
    ctx_.stats->latency_ns[size_t(kind)].Record(uint64_t(ns.count()));
  }
  answered_.clear();
}

void Connection::AfterAnswers() {
  Pump();
  ProcessInput();
  FinishTurn();
  DoRead();
  Flush();
  MaybeFinish();
}

void Connection::StartStream(uint64_t id, std::unique_ptr<Stream> stream) {
  ctx_.stats->streams_open++;
  stream_port_ = std::make_unique<StreamPort>(*this, id);
  stream_ = std::move(stream);
  next_tick_ = Clock::now() + std::chrono::seconds(1);
  ArmTimer();
  ProduceStream();
}

void Connection::ProduceStream() {
  if (!stream_ || closed_ || close_after_flush_ || OutputFull()) return;
  stream_->Produce(*stream_port_);
}

void Connection::StreamFrame(std::string_view payload) {
  auto f = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
  Status s = stream_->OnFrame(*f, *stream_port_);
  if (!s.ok()) stream_port_->Fail(s);
}

// --- Writing.

void Connection::Send(uint64_t id) {
  if (closed_) return;
  if (fbb_.GetSize() > ctx_.options->max_frame) {
    return SendError(id, Status(Code::kTooLarge, "the response would pass the frame limit; "
                                                 "split the transaction or page the scan"));
  }
  char header[wire::kFrameHeaderSize];
  wire::StoreFrameHeader(header, fbb_.GetSize());
  out_.append(header, sizeof header);
  out_.append(reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize());
}

void Connection::SendOrError(uint64_t id, const Status& s) {
  if (s.ok()) return Send(id);
  SendError(id, s);
}

void Connection::SendError(uint64_t id, const Status& s) {
  ctx_.stats->errors++;
  BuildError(fbb_, id, s, protocol_);
  Send(id);
}

void Connection::Flush() {
  if (writing_ || out_.empty() || closed_ || !socket_.established()) return;
  out_writing_.swap(out_);
  writing_ = true;
  last_write_progress_ = Clock::now();
  socket_.async_write(asio::buffer(out_writing_),
                      [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                        self->OnWritten(ec, n);
                      });
}

void Connection::OnWritten(const asio::error_code& ec, size_t n) {
  GuardHandler("write", [&] {
  writing_ = false;
  out_writing_.clear();
  if (ec) {
    spdlog::debug("connection write: {}", ec.message());
    return Close();
  }
  ctx_.stats->bytes_out += n;
  if (close_after_flush_ && out_.empty()) return Close();
  ProduceStream();
  ProcessInput();
  FinishTurn();
  DoRead();
  Flush();
  MaybeFinish();
  });
}

void Connection::CloseAfterFlush() {
  close_after_flush_ = true;
  // Before the TLS handshake is done nothing can be sent: closed at once.
  if ((!writing_ && out_.empty()) || !socket_.established()) return Close();
  Flush();
}

void Connection::MaybeFinish() {
  if (draining_ && !closed_ && !reading_ && seq_.idle() &&
      !writing_ && out_.empty() && (close_after_flush_ || !HasBufferedFrame())) {
    Close();
  }
}

void Connection::Close() {
  if (closed_) return;
  closed_ = true;
  if (stream_) {
    ctx_.stats->streams_open--;
    stream_->Stop();
    // Close may run inside the stream's own call (Fail): destroy it after that returns.
    asio::post(executor_, [stream = std::move(stream_), port = std::move(stream_port_)] {});
  }
  socket_.Close();  // TLS: close_notify, bounded (transport.h)
  timer_.cancel();
  seq_.Clear();
  snapshot_.reset();
  ReleaseSlot();
  LeaveHandshakeList();
  ctx_.Unregister(this);
}

// --- Deadlines.

Connection::Clock::time_point Connection::NextDeadline() const {
  const ServerOptions& o = *ctx_.options;
  Clock::time_point t = last_activity_ + o.idle_timeout;
  if (writing_) t = std::min(t, last_write_progress_ + o.idle_timeout);
  if (!HandshakeDone()) t = std::min(t, accepted_ + o.hello_timeout);
  if (frame_started_) t = std::min(t, *frame_started_ + o.frame_timeout);
  if (stream_) t = std::min(t, next_tick_);
  return t;
}

void Connection::ArmTimer() {
  if (closed_) return;
  timer_.expires_at(NextDeadline());  // cancels the wait pending, if any
  timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
    if (!ec) self->GuardHandler("timer", [&] { self->OnTimer(ec); });
  });
}

void Connection::Timeout(std::atomic<uint64_t>& counter, const std::string& why) {
  counter++;
  spdlog::debug("closing a connection: {}", why);
  SendError(0, Status(Code::kUnavailable, why));
  CloseAfterFlush();
}

void Connection::OnTimer(const asio::error_code& ec) {
  if (ec || closed_ || close_after_flush_) return;
  const ServerOptions& o = *ctx_.options;
  Clock::time_point now = Clock::now();
  if (writing_ && now - last_write_progress_ >= o.idle_timeout) {
    // The client has not read its responses for a whole idle period.
    spdlog::debug("closing a connection whose client stopped reading");
    return Close();
  }
  if (!HandshakeDone() && now - accepted_ >= o.hello_timeout) {
    return Timeout(ctx_.stats->hello_timeouts,
                   std::string(hello_done_ ? "not authenticated" : "no Hello") + " within " +
                       std::to_string(o.hello_timeout.count()) + " s of connecting");
  }
  if (frame_started_) {
    if (!reading_) {
      frame_started_ = now;  // the server is not reading (backpressure): not the client's delay
    } else if (now - *frame_started_ >= o.frame_timeout) {
      return Timeout(ctx_.stats->frame_timeouts,
                     "frame not completed within " + std::to_string(o.frame_timeout.count()) +
                         " s of its first byte");
    }
  }
  if (stream_) {  // a stream may wait for commits for hours: no idle timeout
    if (now >= next_tick_) {
      next_tick_ = now + std::chrono::seconds(1);
      stream_->OnTick(*stream_port_);
      Flush();
    }
    return ArmTimer();
  }
  bool busy = inflight() > 0 || writing_;
  if (!busy && now - last_activity_ >= o.idle_timeout) {
    return Timeout(ctx_.stats->idle_timeouts, "idle timeout");
  }
  if (busy) last_activity_ = now;
  ArmTimer();
}

}  // namespace cairn::server

