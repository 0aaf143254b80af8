// A connection's requests: how a frame becomes a request (the table in requests.cc), the
// order they run in (sequencer.h), and the handlers of the requests answered here.
#include <spdlog/spdlog.h>

#include "auth.h"
#include "auth_throttle.h"
#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "catalog_reply.h"
#include "user_requests.h"
#include "connection.h"
#include "fault.h"
#include "follower.h"
#include "requests.h"
#include "streams.h"

namespace cairn::server {

namespace {

const char* kServerVersion = "cairnd 0.1.0";

// A write handed to the engine's queue: the request's bytes (the transaction views them),
// the decoded transaction or the catalog change, until the engine answers.
class WriteJob {
 public:
  explicit WriteJob(std::string payload) : payload_(std::move(payload)) {}
  std::string_view payload() const { return payload_; }
  Transaction& transaction() { return txn_; }
  CatalogJob& catalog() { return catalog_; }

 private:
  std::string payload_;
  Transaction txn_;
  CatalogJob catalog_;
};

const wire::RequestFrame* Frame(std::string_view payload) {
  return flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
}


}  // namespace

// --- From a frame to a request, in order.

void Connection::HandleFrame(std::string_view payload, Clock::time_point received) {
  ctx_.stats->requests++;
  if (!wire::VerifyRequestFrame(payload)) {
    ctx_.stats->bad_frames++;
    ErrorInTurn(0, Status(Code::kBadRequest, "frame is not a valid RequestFrame"));
    return;
  }
  if (stream_) return StreamFrame(payload);
  const wire::RequestFrame* f = Frame(payload);
  const RequestRow* row = FindRequest(f->request_type());
  if (!row) {
    ErrorInTurn(f->id(), Status(Code::kBadRequest, "unknown request type " +
                                                       std::to_string(int(f->request_type()))));
    return;
  }
  // The verifier accepts a union whose type is set and whose table is absent; only the
  // requests without fields can do without it.
  if (!f->request() && !row->bare) {
    ctx_.stats->bad_frames++;
    ErrorInTurn(f->id(), Status(Code::kBadRequest, "request without its table"));
    return;
  }
  if (!hello_done_ && row->kind != wire::Request::Hello) {
    SendError(f->id(), Status(Code::kBadRequest, "handshake required: send Hello first"));
    CloseAfterFlush();
    return;
  }
  if (row->since > protocol_) {
    ErrorInTurn(f->id(), Status(Code::kBadRequest,
                                std::string(wire::EnumNameRequest(f->request_type())) +
                                    " needs protocol " + std::to_string(row->since) +
                                    "; this connection agreed on " + std::to_string(protocol_)));
    return;
  }
  if (f->request_type() == wire::Request::Ping) {
    InjectFault("connection", View(f->request_as_Ping()->payload()));
  }
  bool write = GoesToWriter(*row, *f);
  if (seq_.MayRun(write)) {
    Run(*row, f, payload, nullptr, received);
  } else {
    seq_.Wait(Sequencer::Item{std::string(payload), received, write, std::nullopt, 0});
  }
}

void Connection::Run(const RequestRow& row, const wire::RequestFrame* f, std::string_view payload,
                     std::string* owned, Clock::time_point received) {
  GuardRequest(f->id(), wire::EnumNameRequest(f->request_type()), [&] {
    if (Status s = Admit(row, *f); !s.ok()) {
      if (s.code() == Code::kAuthFailed) return AuthFail(f->id(), s.message());
      ctx_.stats->permission_denied++;
      return SendError(f->id(), s);
    }
    if (GoesToWriter(row, *f)) {
      SubmitWrite(row, owned ? std::move(*owned) : std::string(payload), received);
    } else {
      if (row.runs == Runs::kStream) {
        // Kept to check again when users or roles change (RecheckUser).
        stream_row_ = &row;
        stream_request_.assign(payload);
      }
      (this->*row.handler)(*f, received);
    }
  });
}

void Connection::ErrorInTurn(uint64_t id, const Status& s) {
  if (seq_.MayAnswer()) return SendError(id, s);
  seq_.Wait(Sequencer::Item{std::string(), Clock::now(), false, s, id});
}

void Connection::Pump() {
  // Once the connection is being closed (a refused handshake), nothing more runs.
  while (!closed_ && !close_after_flush_) {
    // Frames sent behind a stream's request go to the stream.
    std::optional<Sequencer::Item> next = stream_ ? seq_.Take() : seq_.Next();
    if (!next) return;
    if (next->error) {
      SendError(next->error_id, *next->error);
    } else if (stream_) {
      StreamFrame(next->payload);
    } else {
      const wire::RequestFrame* f = Frame(next->payload);
      Run(*FindRequest(f->request_type()), f, next->payload, &next->payload, next->received);
    }
  }
}

template <typename F>
void Connection::GuardRequest(uint64_t id, std::string_view kind, F&& handle) {
  size_t handed_off = seq_.out();
  try {
    handle();
  } catch (const std::exception& e) {
    ctx_.stats->internal_errors++;
    snapshot_.reset();
    fbb_.Clear();
    bool unknown = seq_.out() != handed_off;
    spdlog::error("internal error handling a {} request (id {}): {}{}", kind, id, e.what(),
                  unknown ? "; closing its connection" : "");
    SendError(id, Status(Code::kInternal, "internal error handling this " + std::string(kind) +
                                              " request; the server log has the details"));
    if (unknown) CloseAfterFlush();
  }
}

// --- Requests answered here.

void Connection::OnHello(const wire::RequestFrame& f, Clock::time_point received) {
  auto hello = f.request_as_Hello();
  uint64_t id = f.id();
  Record(RequestKind::kHello, received);
  if (hello->protocol_version() < 1) {
    SendError(id, Status(Code::kBadRequest, "protocol version " +
                                                std::to_string(hello->protocol_version()) +
                                                " is not supported; this server speaks 1 to " +
                                                std::to_string(wire::kProtocolVersion)));
    CloseAfterFlush();
    return;
  }
  hello_done_ = true;
  protocol_ = std::min(hello->protocol_version(), wire::kProtocolVersion);
  if (HandshakeDone()) LeaveHandshakeList();  // else once authenticated
  if (hello->client_name()) {
    spdlog::debug("client '{}' connected", View(hello->client_name()));
  }
  fbb_.Clear();
  auto reply = wire::CreateHelloReply(
      fbb_, protocol_, fbb_.CreateString(kServerVersion), ctx_.options->max_frame,
      ctx_.options->max_inflight, uint32_t(ctx_.engine->options().max_value_size),
      uint32_t(kMaxKeySize));
  fbb_.Finish(wire::CreateResponseFrame(fbb_, id, 0, wire::Reply::HelloReply, reply.Union()));
  Send(id);
}

void Connection::OnPing(const wire::RequestFrame& f, Clock::time_point received) {
  InjectFault("read", View(f.request_as_Ping()->payload()));
  BuildPong(fbb_, f.id(), View(f.request_as_Ping()->payload()));
  Send(f.id());
  Record(RequestKind::kPing, received);
}

Status Connection::ReadableNow() {
  if (ctx_.follower && ctx_.follower->bootstrapping()) {
    return Status(Code::kUnavailable, "this replica is bootstrapping (copying its primary's "
                                      "data); try again shortly");
  }
  return Status::Ok();
}

void Connection::OnTxnRead(const wire::RequestFrame& f, Clock::time_point received) {
  uint64_t id = f.id();
  Record(RequestKind::kRead, received);
  Status s = ReadableNow();
  if (s.ok()) {
    txn_.conditions.clear();
    txn_.ops.clear();
    txn_.idempotency_key = {};
    s = DecodeTxn(*f.request_as_Txn(), ctx_.limits, &txn_);
  }
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
}

void Connection::OnGet(const wire::RequestFrame& f, Clock::time_point received) {
  ctx_.stats->ops[size_t(OpKind::kGet)].fetch_add(1, std::memory_order_relaxed);
  Record(RequestKind::kRead, received);
  Status s = ReadableNow();
  ReadTxn* read = s.ok() ? Snapshot(&s) : nullptr;
  if (read) s = BuildGetReply(fbb_, f.id(), *read, *f.request_as_Get());
  SendOrError(f.id(), s);
}

void Connection::OnListCollections(const wire::RequestFrame& f, Clock::time_point received) {
  auto l = f.request_as_ListCollections();  // may be absent: no fields set
  // The server's own collections are never listed; with users, only those the user may read.
  std::vector<CollectionInfo> all = ctx_.engine->ListCollections();
  std::erase_if(all, [&](const CollectionInfo& c) {
    return IsSystemCollection(c.name) || (principal_ && !principal_->Allows(kPermRead, c.name));
  });
  SendOrError(f.id(), BuildCollectionsPage(fbb_, f.id(), std::move(all),
                                           l ? View(l->after()) : std::string_view(),
                                           /*paged=*/protocol_ >= 3, ctx_.options->max_frame));
  Record(RequestKind::kCatalog, received);
}

void Connection::OnListUsers(const wire::RequestFrame& f, Clock::time_point received) {
  BuildUsersReply(fbb_, f.id(), ctx_.auth->ListUsers());
  Send(f.id());
  Record(RequestKind::kCatalog, received);
}

void Connection::OnListRoles(const wire::RequestFrame& f, Clock::time_point received) {
  BuildRolesReply(fbb_, f.id(), ctx_.auth->ListRoles());
  Send(f.id());
  Record(RequestKind::kCatalog, received);
}

void Connection::OnDescribeCollection(const wire::RequestFrame& f, Clock::time_point received) {
  auto info = ctx_.engine->DescribeCollection(View(f.request_as_DescribeCollection()->name()));
  SendOrError(f.id(), info.ok() ? BuildDescription(fbb_, f.id(), *info, ctx_.options->max_frame)
                                : info.status());
  Record(RequestKind::kCatalog, received);
}

void Connection::OnGetStats(const wire::RequestFrame& f, Clock::time_point received) {
  ExtraStats extra;
  AddReplicationStats(&extra);
  BuildStats(fbb_, f.id(), *ctx_.stats, ctx_.engine->Stats(), &extra);
  Send(f.id());
  Record(RequestKind::kStats, received);
}

void Connection::OnVerifyDatabase(const wire::RequestFrame& f, Clock::time_point received) {
  // On the checker thread; until it answers, this connection's later requests wait (as
  // behind a write), so responses still leave in order.
  seq_.HandedOff();
  ctx_.checker->Submit([self = shared_from_this(), id = f.id(), received](VerifyReport report) {
    asio::post(self->executor_, [self, id, received, report = std::move(report)] {
      self->OnVerified(id, report, received);
    });
  });
}

void Connection::OnDigest(const wire::RequestFrame& f, Clock::time_point received) {
  // On the tasks thread (it reads the whole database); later requests wait for it.
  auto d = f.request_as_Digest();
  uint64_t at = d ? d->at() : 0;
  auto wait = std::chrono::milliseconds(d ? d->wait_ms() : 0);
  seq_.HandedOff();
  ctx_.tasks->Submit([self = shared_from_this(), id = f.id(), received, at, wait](bool stopping) {
    Result<DatabaseDigest> r =
        stopping ? Result<DatabaseDigest>(Status(Code::kUnavailable, "the server is stopping"))
                 : DigestAt(*self->ctx_.engine, at, wait);
    asio::post(self->executor_, [self, id, received, r = std::move(r)] {
      self->OnDigestDone(id, r, received);
    });
  });
}

void Connection::OnWatch(const wire::RequestFrame& f, Clock::time_point) {
  auto stream = MakeWatchStream(ctx_, f.request_as_Watch());
  if (!stream.ok()) {
    uint64_t first =
        stream.status().code() == Code::kLogTruncated ? ctx_.engine->Stats().log_first : 0;
    ctx_.stats->errors++;
    BuildError(fbb_, f.id(), stream.status(), protocol_, first);
    return Send(f.id());
  }
  ctx_.stats->watch_streams++;
  StartStream(f.id(), std::move(stream).value());
}

void Connection::OnFollowAck(const wire::RequestFrame& f, Clock::time_point) {
  SendError(f.id(), Status(Code::kBadRequest, "FollowAck outside a Follow stream"));
}

void Connection::OnReplication(const wire::RequestFrame& f, Clock::time_point received) {
  ExecuteReplication(&f, received);
}

// --- Authentication (docs/security.md, "SCRAM-SHA-256").

bool Connection::NeedsAuth() const { return ctx_.auth && ctx_.auth->enabled() && !principal_; }

Status Connection::Admit(const RequestRow& row, const wire::RequestFrame& f) {
  if (row.before_auth) return Status::Ok();
  if (principal_ && ctx_.auth->generation() != principal_->generation) {
    // Users or roles changed: what this user may do now.
    std::string user = principal_->user;
    principal_ = ctx_.auth->Resolve(user);
    if (!principal_) return Status(Code::kAuthFailed, "user '" + user + "' was dropped");
  }
  if (!principal_ && NeedsAuth()) {
    ctx_.stats->auth_required++;
    return Status(Code::kAuthFailed,
                  std::string(wire::EnumNameRequest(f.request_type())) +
                      " before authentication: this server has users; connect with a user and "
                      "password (cairn --user, ClientOptions::user)");
  }
  if (row.kind == wire::Request::CreateUser && !principal_ && !loopback_) {
    // A server without users is open; its first user is made where only its own host can.
    return Status(Code::kPermissionDenied,
                  "this server has no users yet: create the first one over loopback (cairn "
                  "user create on the server's host) or with cairnd --init-admin");
  }
  return CheckAccess(row, principal_.get(), f);
}

void Connection::AuthFail(uint64_t id, const std::string& why) {
  ctx_.stats->auth_failures++;
  scram_.reset();
  SendError(id, Status(Code::kAuthFailed, why));
  CloseAfterFlush();
}

void Connection::OnAuthStart(const wire::RequestFrame& f, Clock::time_point received) {
  Record(RequestKind::kHello, received);
  auto a = f.request_as_AuthStart();
  uint64_t id = f.id();
  if (!ctx_.auth || !ctx_.auth->enabled()) {
    return AuthFail(id, "this server has no users, so authentication is off; create the first "
                        "admin with cairnd --init-admin, or cairn user create over loopback");
  }
  if (principal_ || scram_) return AuthFail(id, "AuthStart sent twice on one connection");
  if (View(a->mechanism()) != scram::kMechanism) {
    return AuthFail(id, "mechanism '" + std::string(View(a->mechanism())) +
                            "' is not offered; this server offers " + std::string(scram::kMechanism));
  }
  scram_ = std::make_unique<scram::Server>(ctx_.scram_secret, scram::kDefaultIterations);
  std::string error;
  std::optional<std::string> user = scram_->Receive(View(a->message()), &error);
  if (!user) return AuthFail(id, "bad client-first message: " + error);
  std::string challenge = scram_->Challenge(ctx_.auth->Credentials(*user));
  // An address that failed recently waits its turn (AuthThrottle); others go on meanwhile.
  Clock::time_point now = Clock::now(), at = ctx_.throttle->Reserve(peer_, now);
  if (at <= now) return SendChallenge(id, challenge);
  seq_.HandedOff();  // later frames wait behind this answer
  auth_timer_.expires_at(at);
  auth_timer_.async_wait([self = shared_from_this(), id, challenge](const asio::error_code& ec) {
    self->Guarded("authentication", [&] {
      self->seq_.Answered();
      if (ec || self->closed_) return;
      self->SendChallenge(id, challenge);
      self->AfterAnswers();
    });
  });
}

void Connection::SendChallenge(uint64_t id, const std::string& message) {
  fbb_.Clear();
  auto bytes = fbb_.CreateVector(reinterpret_cast<const uint8_t*>(message.data()), message.size());
  auto reply = wire::CreateAuthChallenge(fbb_, bytes);
  fbb_.Finish(wire::CreateResponseFrame(fbb_, id, 0, wire::Reply::AuthChallenge, reply.Union()));
  Send(id);
}

void Connection::OnAuthContinue(const wire::RequestFrame& f, Clock::time_point received) {
  Record(RequestKind::kHello, received);
  uint64_t id = f.id();
  if (!scram_) return AuthFail(id, "AuthContinue without an AuthStart before it");
  std::string error;
  std::optional<std::string> final = scram_->Finish(View(f.request_as_AuthContinue()->message()),
                                                    &error);
  std::string user = scram_->user();
  if (final) principal_ = ctx_.auth->Resolve(user);
  if (!final || !principal_) {
    ctx_.throttle->Failed(peer_, Clock::now());
    spdlog::warn("authentication failed for user '{}' from {} ({} recent failures from there)",
                 user, peer_, ctx_.throttle->failures(peer_));
    return AuthFail(id, "authentication failed: wrong password or unknown user");
  }
  scram_.reset();
  ctx_.throttle->Succeeded(peer_);
  ctx_.stats->auth_ok++;
  LeaveHandshakeList();
  spdlog::debug("user '{}' authenticated from {}", user, peer_);
  fbb_.Clear();
  auto message = fbb_.CreateVector(reinterpret_cast<const uint8_t*>(final->data()), final->size());
  std::vector<flatbuffers::Offset<flatbuffers::String>> roles;
  for (const std::string& r : principal_->roles) roles.push_back(fbb_.CreateString(r));
  auto reply = wire::CreateAuthOk(fbb_, message, fbb_.CreateString(user), fbb_.CreateVector(roles));
  fbb_.Finish(wire::CreateResponseFrame(fbb_, id, 0, wire::Reply::AuthOk, reply.Union()));
  Send(id);
}

void Connection::RecheckUser() {
  asio::post(executor_, [self = shared_from_this()] {
    self->Guarded("user check", [&] {
      if (self->closed_ || !self->principal_) return;
      auto now = self->ctx_.auth->Resolve(self->principal_->user);
      if (!now) {
        self->SendError(0, Status(Code::kAuthFailed,
                                  "user '" + self->principal_->user + "' was dropped"));
        return self->CloseAfterFlush();
      }
      // A stream has no next request to be checked at: its own request is checked again,
      // and a stream its user may no longer run ends with the reason.
      if (!self->stream_ || !self->stream_row_) return;
      auto f = flatbuffers::GetRoot<wire::RequestFrame>(self->stream_request_.data());
      if (Status s = CheckAccess(*self->stream_row_, now.get(), *f); !s.ok()) {
        self->ctx_.stats->permission_denied++;
        self->SendError(f->id(), s);
        self->CloseAfterFlush();
      }
    });
  });
}

// --- Writes.

void Connection::SubmitWrite(const RequestRow& row, std::string payload,
                             Clock::time_point received) {
  auto self = shared_from_this();
  const wire::RequestFrame* f = Frame(payload);
  uint64_t id = f->id();
  RequestKind kind = row.kind == wire::Request::Txn ? RequestKind::kWrite : RequestKind::kCatalog;
  uint8_t replicas = 0;
  uint32_t replica_timeout_ms = 0;
  if (row.kind == wire::Request::Txn) {
    replicas = f->request_as_Txn()->replicas();
    replica_timeout_ms = f->request_as_Txn()->replica_timeout_ms();
  }
  auto refuse = [&](const Status& s) {
    if (seq_.out() == 0) return SendError(id, s);
    // Earlier writes are still out: answer in turn, ahead of whatever waits behind this.
    seq_.WaitFirst(Sequencer::Item{std::string(), received, false, s, id});
  };
  if (ctx_.follower && ctx_.follower->replica()) {
    return refuse(Status(Code::kReadOnly, "this server is a replica of " +
                                              ctx_.follower->primary() + "; send writes there"));
  }
  auto job = std::make_shared<WriteJob>(std::move(payload));
  f = Frame(job->payload());  // the job's copy, which lives until the engine answers
  Status s;
  if (row.kind == wire::Request::Txn) {
    s = DecodeTxn(*f->request_as_Txn(), ctx_.limits, &job->transaction());
    if (s.ok()) CountOps(job->transaction(), ctx_.stats);
    InjectFault("decode", job->transaction().idempotency_key);
    // Documents are checked here, on this connection's IO thread, not on the writer: a
    // large or costly document then delays its own connection, not every writer.
    if (s.ok()) s = ctx_.engine->CheckDocuments(job->transaction());
    job->transaction().documents_checked = true;
  } else {
    s = row.job(*f, ctx_, &job->catalog());
  }
  if (!s.ok()) return refuse(s);
  seq_.HandedOff();
  // Runs on the thread that committed (the engine's writer, or an Execute caller leading
  // the group); holds the job until then.
  // (A group that threw is counted and logged by the server's commit listener.)
  auto done = [self, job, id, kind, received, replicas, replica_timeout_ms](TxnResult r) {
    self->WriteDone(id, std::move(r), kind, received, replicas, replica_timeout_ms);
  };
  if (row.kind == wire::Request::Txn) {
    ctx_.engine->Submit(job->transaction(), std::move(done));
  } else {
    ctx_.engine->SubmitCatalog(job->catalog(), std::move(done));
  }
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
  Guarded("write results", [&] {
  {
    std::lock_guard lock(finished_mu_);
    finished_taken_.swap(finished_);
  }
  for (Finished& f : finished_taken_) {
    if (HoldAnswer(f.id, f.result, f.kind, f.received, f.replicas, f.replica_timeout_ms)) continue;
    seq_.Answered();
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
  Guarded("verify report", [&] {
  seq_.Answered();
  if (!closed_) {
    BuildVerifyReply(fbb_, id, report);
    Send(id);
  }
  Record(RequestKind::kVerify, received);
  AfterAnswers();
  });
}

void Connection::OnDigestDone(uint64_t id, const Result<DatabaseDigest>& digest,
                          Clock::time_point received) {
  Guarded("digest", [&] {
  seq_.Answered();
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


}  // namespace cairn::server
