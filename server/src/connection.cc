#include "connection.h"

#include <spdlog/spdlog.h>

#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "catalog_reply.h"
#include "fault.h"
#include "follower.h"
#include "streams.h"

namespace cairn::server {

namespace {

constexpr size_t kInitialBuffer = 64 << 10;
// Responses buffered for a client that does not read them: past this the
// connection stops reading requests until the client catches up.
constexpr size_t kOutputLimit = 4 << 20;

const char* kServerVersion = "cairnd 0.1.0";

// A write job: the request bytes (which the decoded transaction points into), the
// connection to answer, and the request's bookkeeping.
class TxnJob : public WriteJob {
 public:
  using Done = std::function<void(TxnResult)>;
  TxnJob(std::string payload, Done done) : payload_(std::move(payload)), done_(std::move(done)) {}

  std::string_view payload() const { return payload_; }
  Transaction& transaction() { return txn_; }
  void set_catalog(std::function<Status(Engine&)> fn) { catalog_ = std::move(fn); }

  const Transaction* txn() const override { return catalog_ ? nullptr : &txn_; }
  Status RunCatalog(Engine& engine) override { return catalog_(engine); }
  void Complete(TxnResult result) override { done_(std::move(result)); }

 private:
  std::string payload_;
  Transaction txn_;
  std::function<Status(Engine&)> catalog_;
  Done done_;
};

const wire::RequestFrame* Frame(std::string_view payload) {
  return flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
}

bool IsWriteRequest(const wire::RequestFrame* f) {
  switch (f->request_type()) {
    case wire::Request::Txn:
      return TxnWrites(*f->request_as_Txn());
    case wire::Request::CreateCollection:
    case wire::Request::DropCollection:
    case wire::Request::CreateIndex:
    case wire::Request::DropIndex:
      return true;
    default:
      return false;
  }
}

// The protocol version that introduced a request.
uint32_t MinProtocol(wire::Request kind) {
  switch (kind) {
    case wire::Request::Get: return 2;
    case wire::Request::VerifyDatabase: return 3;
    case wire::Request::Snapshot:
    case wire::Request::Watch:
    case wire::Request::Follow:
    case wire::Request::FollowAck:
    case wire::Request::Digest:
    case wire::Request::ListReplicas:
    case wire::Request::Promote: return 5;
    default: return 1;
  }
}

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
      timer_(socket_.get_executor()) {
  in_.resize(kInitialBuffer);
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
    if (self->closed_ || self->hello_done_ || self->close_after_flush_) return;
    self->ctx_.stats->handshakes_displaced++;
    self->SendError(0, Status(Code::kUnavailable,
                              "too many connections without a handshake: closed to make room "
                              "for a newer one (send Hello at once)"));
    self->CloseAfterFlush();
  });
}

template <typename F>
void Connection::GuardRequest(uint64_t id, std::string_view kind, F&& handle) {
  size_t handed_off = writes_in_flight_;
  try {
    handle();
  } catch (const std::exception& e) {
    ctx_.stats->internal_errors++;
    snapshot_.reset();
    fbb_.Clear();
    bool unknown = writes_in_flight_ != handed_off;
    spdlog::error("internal error handling a {} request (id {}): {}{}", kind, id, e.what(),
                  unknown ? "; closing its connection" : "");
    SendError(id, Status(Code::kInternal, "internal error handling this " + std::string(kind) +
                                              " request; the server log has the details"));
    if (unknown) CloseAfterFlush();
  }
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

bool Connection::HasBufferedFrame() const {
  std::string_view payload;
  size_t consumed;
  return wire::ParseFrame(std::string_view(in_.data() + in_begin_, in_end_ - in_begin_),
                          ctx_.options->max_frame, &payload, &consumed) !=
         wire::FrameStatus::kNeedMore;
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
  if (in_begin_ == in_end_ && in_.size() > 4 * kInitialBuffer) {
    in_.resize(kInitialBuffer);  // give back the room a large frame needed
    in_.shrink_to_fit();
    in_begin_ = in_end_ = 0;
  }
  // Make room: move unparsed bytes to the front, and grow the buffer for a large frame.
  if (in_begin_ > 0) {
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  if (in_end_ == in_.size()) {
    // Grow by doubling as bytes arrive, never to what a header merely announces: a
    // client that sends a large header and a trickle of bytes pins at most twice what it
    // sent.
    in_.resize(std::min(in_.size() * 2, size_t(ctx_.options->max_frame) + wire::kFrameHeaderSize));
  }
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
      [self = shared_from_this()](const asio::error_code& ec, size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(const asio::error_code& ec, size_t n) {
  GuardHandler("read", [&] {
  reading_ = false;
  if (ec) {
    if (draining_ && ec == asio::error::operation_aborted) return MaybeFinish();
    // A TLS peer that closes without close_notify: between frames as an EOF; inside a
    // frame the frame is cut short (possibly by someone else), an error.
    if (Transport::IsTruncation(ec) && in_end_ > in_begin_) {
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
  in_end_ += n;
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
    std::string_view avail(in_.data() + in_begin_, in_end_ - in_begin_);
    std::string_view payload;
    size_t consumed = 0;
    switch (wire::ParseFrame(avail, ctx_.options->max_frame, &payload, &consumed)) {
      case wire::FrameStatus::kNeedMore:
        if (avail.empty()) {
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
        std::memcpy(&n, avail.data(), 4);
        SendError(0, Status(Code::kTooLarge, "frame of " + std::to_string(n) +
                                                 " bytes is over the limit of " +
                                                 std::to_string(ctx_.options->max_frame)));
        CloseAfterFlush();
        return;
      }
      case wire::FrameStatus::kEmpty:
        frame_started_.reset();
        last_activity_ = received;
        ctx_.stats->bad_frames++;
        ErrorInTurn(0, Status(Code::kBadRequest, "empty frame"));
        in_begin_ += consumed;
        continue;
      case wire::FrameStatus::kComplete:
        frame_started_.reset();
        last_activity_ = received;
        in_begin_ += consumed;
        HandleFrame(payload, received);
        continue;
    }
  }
}

void Connection::HandleFrame(std::string_view payload, Clock::time_point received) {
  ctx_.stats->requests++;
  if (!wire::VerifyRequestFrame(payload)) {
    ctx_.stats->bad_frames++;
    ErrorInTurn(0, Status(Code::kBadRequest, "frame is not a valid RequestFrame"));
    return;
  }
  if (stream_) return StreamFrame(payload);
  const wire::RequestFrame* f = Frame(payload);
  // The verifier accepts a union whose type is set and whose table is absent; only the
  // requests without fields can do without it.
  if (f->request_type() != wire::Request::NONE && !f->request() &&
      f->request_type() != wire::Request::ListCollections &&
      f->request_type() != wire::Request::GetStats &&
      f->request_type() != wire::Request::VerifyDatabase &&
      f->request_type() != wire::Request::Snapshot &&
      f->request_type() != wire::Request::Digest &&
      f->request_type() != wire::Request::ListReplicas &&
      f->request_type() != wire::Request::Promote) {
    ctx_.stats->bad_frames++;
    ErrorInTurn(f->id(), Status(Code::kBadRequest, "request without its table"));
    return;
  }
  if (!hello_done_ && f->request_type() != wire::Request::Hello) {
    SendError(f->id(), Status(Code::kBadRequest, "handshake required: send Hello first"));
    CloseAfterFlush();
    return;
  }
  if (uint32_t need = MinProtocol(f->request_type()); need > protocol_) {
    ErrorInTurn(f->id(), Status(Code::kBadRequest,
                                std::string(wire::EnumNameRequest(f->request_type())) +
                                    " needs protocol " + std::to_string(need) +
                                    "; this connection agreed on " + std::to_string(protocol_)));
    return;
  }
  // Requests take effect in order: a request waits while an earlier one waits, and a
  // read waits for this connection's earlier writes.
  bool write = IsWriteRequest(f);
  if (f->request_type() == wire::Request::Ping) {
    InjectFault("connection", View(f->request_as_Ping()->payload()));
  }
  if (backlog_.empty() && (write || writes_in_flight_ == 0)) {
    GuardRequest(f->id(), wire::EnumNameRequest(f->request_type()), [&] {
      if (write) {
        SubmitWrite(std::string(payload), received);
      } else {
        ExecuteRead(f, received);
      }
    });
  } else {
    backlog_.push_back(Pending{std::string(payload), received, std::nullopt, 0});
  }
}

void Connection::ErrorInTurn(uint64_t id, const Status& s) {
  if (backlog_.empty() && writes_in_flight_ == 0) return SendError(id, s);
  backlog_.push_back(Pending{std::string(), Clock::now(), s, id});
}

void Connection::Pump() {
  // Once the connection is being closed (a refused handshake), nothing more runs.
  while (!backlog_.empty() && !closed_ && !close_after_flush_) {
    if (stream_) {  // frames sent behind the stream's request go to the stream
      Pending next = std::move(backlog_.front());
      backlog_.pop_front();
      if (next.error) {
        SendError(next.error_id, *next.error);
      } else {
        StreamFrame(next.payload);
      }
      continue;
    }
    Pending& p = backlog_.front();
    bool write = !p.error && IsWriteRequest(Frame(p.payload));
    if (!write && writes_in_flight_ > 0) return;
    Pending next = std::move(p);
    backlog_.pop_front();
    if (next.error) {
      SendError(next.error_id, *next.error);
      continue;
    }
    const wire::RequestFrame* f = Frame(next.payload);
    GuardRequest(f->id(), wire::EnumNameRequest(f->request_type()), [&] {
      if (write) {
        SubmitWrite(std::move(next.payload), next.received);
      } else {
        ExecuteRead(f, next.received);
      }
    });
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

void Connection::HandleHello(uint64_t id, const void* hello_ptr) {
  auto hello = static_cast<const wire::Hello*>(hello_ptr);
  if (hello->protocol_version() < 1) {
    SendError(id, Status(Code::kBadRequest, "protocol version " +
                                                std::to_string(hello->protocol_version()) +
                                                " is not supported; this server speaks 1 to " +
                                                std::to_string(wire::kProtocolVersion)));
    CloseAfterFlush();
    return;
  }
  if (!hello_done_) LeaveHandshakeList();
  hello_done_ = true;
  protocol_ = std::min(hello->protocol_version(), wire::kProtocolVersion);
  if (hello->client_name()) {
    spdlog::debug("client '{}' connected", View(hello->client_name()));
  }
  fbb_.Clear();
  auto reply = wire::CreateHelloReply(
      fbb_, protocol_, fbb_.CreateString(kServerVersion), ctx_.options->max_frame, ctx_.options->max_inflight,
      uint32_t(ctx_.engine->options().max_value_size), uint32_t(kMaxKeySize));
  fbb_.Finish(wire::CreateResponseFrame(fbb_, id, 0, wire::Reply::HelloReply, reply.Union()));
  Send(id);
}

void Connection::ExecuteRead(const void* frame_ptr, Clock::time_point received) {
  auto f = static_cast<const wire::RequestFrame*>(frame_ptr);
  uint64_t id = f->id();
  switch (f->request_type()) {
    case wire::Request::Hello:
      HandleHello(id, f->request_as_Hello());
      Record(RequestKind::kHello, received);
      return;
    case wire::Request::Ping: {
      InjectFault("read", View(f->request_as_Ping()->payload()));
      BuildPong(fbb_, id, View(f->request_as_Ping()->payload()));
      Send(id);
      Record(RequestKind::kPing, received);
      return;
    }
    case wire::Request::Txn: {
      if (ctx_.follower && ctx_.follower->bootstrapping()) {
        SendError(id, Status(Code::kUnavailable, "this replica is bootstrapping (copying its "
                                                 "primary's data); try again shortly"));
        Record(RequestKind::kRead, received);
        return;
      }
      txn_.conditions.clear();
      txn_.ops.clear();
      txn_.idempotency_key = {};
      Status s = DecodeTxn(*f->request_as_Txn(), ctx_.limits, &txn_);
      ReadTxn* read = s.ok() ? Snapshot(&s) : nullptr;
      if (read) {
        CountOps(txn_, ctx_.stats);
        if (OnlyGets(txn_)) {
          s = BuildGetsReply(fbb_, id, *read, txn_);
        } else {
          TxnResult r = read->Execute(txn_);
          s = r.status;
          if (s.ok()) BuildTxnReply(fbb_, id, r, protocol_, read->commit());
        }
      }
      SendOrError(id, s);
      Record(RequestKind::kRead, received);
      return;
    }
    case wire::Request::Get: {
      ctx_.stats->ops[size_t(OpKind::kGet)].fetch_add(1, std::memory_order_relaxed);
      Status s;
      if (ctx_.follower && ctx_.follower->bootstrapping()) {
        s = Status(Code::kUnavailable,
                   "this replica is bootstrapping (copying its primary's data); try again shortly");
      }
      ReadTxn* read = s.ok() ? Snapshot(&s) : nullptr;
      if (read) s = BuildGetReply(fbb_, id, *read, *f->request_as_Get());
      SendOrError(id, s);
      Record(RequestKind::kRead, received);
      return;
    }
    case wire::Request::ListCollections: {
      auto l = f->request_as_ListCollections();  // may be absent: no fields set
      SendOrError(id, BuildCollectionsPage(fbb_, id, ctx_.engine->ListCollections(),
                                           l ? View(l->after()) : std::string_view(),
                                           /*paged=*/protocol_ >= 3, ctx_.options->max_frame));
      Record(RequestKind::kCatalog, received);
      return;
    }
    case wire::Request::DescribeCollection: {
      auto d = f->request_as_DescribeCollection();
      auto info = ctx_.engine->DescribeCollection(View(d->name()));
      SendOrError(id, info.ok() ? BuildDescription(fbb_, id, *info, ctx_.options->max_frame)
                                : info.status());
      Record(RequestKind::kCatalog, received);
      return;
    }
    case wire::Request::GetStats: {
      ExtraStats extra;
      AddReplicationStats(&extra);
      BuildStats(fbb_, id, *ctx_.stats, ctx_.engine->Stats(), &extra);
      Send(id);
      Record(RequestKind::kStats, received);
      return;
    }
    case wire::Request::VerifyDatabase: {
      // On the checker thread; until it answers, this connection's later reads wait
      // (as behind a write), so responses still leave in order.
      writes_in_flight_++;
      ctx_.checker->Submit([self = shared_from_this(), id, received](VerifyReport report) {
        asio::post(self->executor_, [self, id, received, report = std::move(report)] {
          self->OnVerified(id, report, received);
        });
      });
      return;
    }
    case wire::Request::Digest: {
      // On the tasks thread (it reads the whole database); later reads wait for it.
      auto d = f->request_as_Digest();
      uint64_t at = d ? d->at() : 0;
      auto wait = std::chrono::milliseconds(d ? d->wait_ms() : 0);
      writes_in_flight_++;
      ctx_.tasks->Submit([self = shared_from_this(), id, received, at, wait](bool stopping) {
        Result<DatabaseDigest> r =
            stopping ? Result<DatabaseDigest>(Status(Code::kUnavailable, "the server is stopping"))
                     : DigestAt(*self->ctx_.engine, at, wait);
        asio::post(self->executor_, [self, id, received, r = std::move(r)] {
          self->OnDigest(id, r, received);
        });
      });
      return;
    }
    case wire::Request::Watch: {
      auto stream = MakeWatchStream(ctx_, f->request_as_Watch());
      if (!stream.ok()) {
        uint64_t first = stream.status().code() == Code::kLogTruncated
                             ? ctx_.engine->Stats().log_first : 0;
        ctx_.stats->errors++;
        BuildError(fbb_, id, stream.status(), protocol_, first);
        return Send(id);
      }
      ctx_.stats->watch_streams++;
      return StartStream(id, std::move(stream).value());
    }
    case wire::Request::FollowAck:
      return SendError(id, Status(Code::kBadRequest, "FollowAck outside a Follow stream"));
    case wire::Request::Snapshot:
    case wire::Request::Follow:
    case wire::Request::ListReplicas:
    case wire::Request::Promote:
      ExecuteReplication(f, received);
      return;
    default:
      SendError(id, Status(Code::kBadRequest,
                           "unknown request type " + std::to_string(int(f->request_type()))));
  }
}

void Connection::SubmitWrite(std::string payload, Clock::time_point received) {
  auto self = shared_from_this();
  const wire::RequestFrame* f = Frame(payload);
  uint64_t id = f->id();
  RequestKind kind =
      f->request_type() == wire::Request::Txn ? RequestKind::kWrite : RequestKind::kCatalog;
  uint8_t replicas = 0;
  uint32_t replica_timeout_ms = 0;
  if (f->request_type() == wire::Request::Txn) {
    replicas = f->request_as_Txn()->replicas();
    replica_timeout_ms = f->request_as_Txn()->replica_timeout_ms();
  }
  if (ctx_.follower && ctx_.follower->replica()) {
    Status s(Code::kReadOnly, "this server is a replica of " + ctx_.follower->primary() +
                                  "; send writes there");
    if (writes_in_flight_ == 0) return SendError(id, s);
    backlog_.push_front(Pending{std::string(), received, s, id});
    return;
  }
  auto job = std::make_unique<TxnJob>(
      std::move(payload), [self, id, kind, received, replicas, replica_timeout_ms](TxnResult r) {
        self->WriteDone(id, std::move(r), kind, received, replicas, replica_timeout_ms);
      });
  f = Frame(job->payload());  // the job's copy, which outlives this call
  Status s;
  switch (f->request_type()) {
    case wire::Request::Txn:
      s = DecodeTxn(*f->request_as_Txn(), ctx_.limits, &job->transaction());
      if (s.ok()) CountOps(job->transaction(), ctx_.stats);
      InjectFault("decode", job->transaction().idempotency_key);
      // Documents are checked here, on this connection's IO thread, not on the writer: a
      // large or costly document then delays its own connection, not every writer.
      if (s.ok()) s = ctx_.engine->CheckDocuments(job->transaction());
      job->transaction().documents_checked = true;
      break;
    case wire::Request::CreateCollection: {
      std::string name(View(f->request_as_CreateCollection()->name()));
      job->set_catalog([name](Engine& e) { return e.CreateCollection(name); });
      break;
    }
    case wire::Request::DropCollection: {
      std::string name(View(f->request_as_DropCollection()->name()));
      job->set_catalog([name](Engine& e) { return e.DropCollection(name); });
      break;
    }
    case wire::Request::CreateIndex: {
      auto c = f->request_as_CreateIndex();
      std::string coll(View(c->collection()));
      IndexSpec spec;
      s = DecodeIndexSpec(c->index(), &spec);
      // Its collection's description must still fit in a reply (catalog_reply.h).
      job->set_catalog([coll, spec, max_frame = ctx_.options->max_frame](Engine& e) {
        if (Status fits = CheckIndexFits(e, coll, spec, max_frame); !fits.ok()) return fits;
        return e.CreateIndex(coll, spec);
      });
      break;
    }
    case wire::Request::DropIndex: {
      auto d = f->request_as_DropIndex();
      std::string coll(View(d->collection())), name(View(d->name()));
      job->set_catalog([coll, name](Engine& e) { return e.DropIndex(coll, name); });
      break;
    }
    default:
      s = Status(Code::kInternal, "not a write request");
  }
  if (!s.ok()) {
    if (writes_in_flight_ == 0) return SendError(id, s);
    // Earlier writes are still out: answer in turn, ahead of whatever waits behind this.
    backlog_.push_front(Pending{std::string(), received, s, id});
    return;
  }
  writes_in_flight_++;
  ctx_.writer->Submit(std::move(job));
}

void Connection::WriteDone(uint64_t id, TxnResult result, RequestKind kind,
                           Clock::time_point received, uint8_t replicas,
                           uint32_t replica_timeout_ms) {
  bool first;
  {
    std::lock_guard lock(finished_mu_);
    first = finished_.empty();
    finished_.push_back(
        Finished{id, std::move(result), kind, received, replicas, replica_timeout_ms});
  }
  // A group commit finishes many writes of a connection at once: one hand-off for them.
  if (first) asio::post(executor_, [self = shared_from_this()] { self->OnWritesDone(); });
}

void Connection::OnWritesDone() {
  GuardHandler("write results", [&] {
  {
    std::lock_guard lock(finished_mu_);
    finished_taken_.swap(finished_);
  }
  for (Finished& f : finished_taken_) {
    if (HoldAnswer(f.id, f.result, f.kind, f.received, f.replicas, f.replica_timeout_ms)) continue;
    writes_in_flight_--;
    if (!closed_) {
      if (f.kind == RequestKind::kCatalog && f.result.status.ok()) {
        BuildDone(fbb_, f.id, f.result.commit);
      } else {
        BuildTxnReply(fbb_, f.id, f.result, protocol_);
      }
      if (!f.result.status.ok()) ctx_.stats->errors++;
      Send(f.id);
    }
    Record(f.kind, f.received);
  }
  finished_taken_.clear();
  ReleaseHeld();
  AfterAnswers();
  });
}

void Connection::OnVerified(uint64_t id, const VerifyReport& report,
                            Clock::time_point received) {
  GuardHandler("verify report", [&] {
  writes_in_flight_--;
  if (!closed_) {
    BuildVerifyReply(fbb_, id, report);
    Send(id);
  }
  Record(RequestKind::kVerify, received);
  AfterAnswers();
  });
}

void Connection::OnDigest(uint64_t id, const Result<DatabaseDigest>& digest,
                          Clock::time_point received) {
  GuardHandler("digest", [&] {
  writes_in_flight_--;
  if (!closed_) {
    if (digest.ok()) {
      BuildDigestReply(fbb_, id, *digest);
      Send(id);
    } else {
      SendError(id, digest.status());
    }
  }
  Record(RequestKind::kVerify, received);
  AfterAnswers();
  });
}

void Connection::AfterAnswers() {
  Pump();
  ProcessInput();
  FinishTurn();
  DoRead();
  Flush();
  MaybeFinish();
}

ReadTxn* Connection::Snapshot(Status* error) {
  if (!snapshot_) {
    auto r = ctx_.engine->BeginRead();
    if (!r.ok()) {
      *error = r.status();
      return nullptr;
    }
    snapshot_.emplace(std::move(r).value());
  }
  return &*snapshot_;
}

// --- Streams.

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
  const wire::RequestFrame* f = Frame(payload);
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
  if (draining_ && !closed_ && !reading_ && backlog_.empty() && writes_in_flight_ == 0 &&
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
  backlog_.clear();
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
  if (!hello_done_) t = std::min(t, accepted_ + o.hello_timeout);
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
  if (!hello_done_ && now - accepted_ >= o.hello_timeout) {
    return Timeout(ctx_.stats->hello_timeouts,
                   "no Hello within " + std::to_string(o.hello_timeout.count()) +
                       " s of connecting");
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
