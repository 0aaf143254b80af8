// A connection's replication requests (docs/protocol.md, "Replication"): the Snapshot and
// Follow streams, ListReplicas, Promote, and the writes that wait for replicas (Txn.replicas).
#include <spdlog/spdlog.h>

#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "connection.h"
#include "follower.h"
#include "replicas.h"
#include "streams.h"

namespace cairn::server {

using flatbuffers::Offset;

namespace {

void BuildReplicas(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const ServerContext& ctx,
                   const std::vector<ReplicaRow>& rows, uint64_t epoch) {
  fbb.Clear();
  std::vector<Offset<wire::ReplicaInfo>> v;
  for (const ReplicaRow& r : rows) {
    v.push_back(wire::CreateReplicaInfo(fbb, fbb.CreateString(r.name), fbb.CreateString(r.address),
                                        r.applied, r.lag_commits, r.lag_ms, r.connected));
  }
  auto vec = fbb.CreateVector(v);
  bool replica = ctx.follower && ctx.follower->replica();
  auto role = fbb.CreateString(replica ? "replica" : "primary");
  auto primary = replica ? fbb.CreateString(ctx.follower->primary()) : Offset<flatbuffers::String>();
  std::string why = ctx.follower ? ctx.follower->state().error() : std::string();
  auto error = why.empty() ? Offset<flatbuffers::String>() : fbb.CreateString(why);
  auto reply = wire::CreateReplicas(fbb, vec, ctx.engine->LastCommit(), epoch, role, primary, error);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Replicas, reply.Union()));
}

}  // namespace

bool Connection::ExecuteReplication(const void* frame_ptr, Clock::time_point received) {
  auto f = static_cast<const wire::RequestFrame*>(frame_ptr);
  uint64_t id = f->id();
  switch (f->request_type()) {
    case wire::Request::Snapshot:
    case wire::Request::Follow: {
      auto stream = f->request_type() == wire::Request::Snapshot
                        ? MakeSnapshotStream(ctx_)
                        : MakeFollowStream(ctx_, f->request_as_Follow());
      if (!stream.ok()) {
        uint64_t first = stream.status().code() == Code::kLogTruncated
                             ? ctx_.engine->Stats().log_first : 0;
        if (stream.status().code() == Code::kDiverged) {
          spdlog::warn("refused a follower: {}", stream.status().message());
        }
        ctx_.stats->errors++;
        BuildError(fbb_, id, stream.status(), protocol_, first);
        Send(id);
        return true;
      }
      StartStream(id, std::move(stream).value());
      return true;
    }
    case wire::Request::ListReplicas:
      BuildReplicas(fbb_, id, ctx_, ctx_.replicas->List(), ctx_.engine->Stats().epoch);
      Send(id);
      Record(RequestKind::kStats, received);
      return true;
    case wire::Request::Promote: {
      if (!ctx_.follower || !ctx_.follower->replica()) {
        SendError(id, Status(Code::kBadRequest, "already a primary"));
        return true;
      }
      // On the follower's thread; until it answers, later requests wait (as behind a write).
      seq_.HandedOff();
      ctx_.follower->Promote([self = shared_from_this(), id, received](Result<EpochStart> r) {
        asio::post(self->executor_, [self, id, received, r = std::move(r)] {
          self->Guarded("promote", [&] {
            self->seq_.Answered();
            if (!self->closed_) {
              if (r.ok()) {
                BuildReplicas(self->fbb_, id, self->ctx_, self->ctx_.replicas->List(), r->epoch);
                self->Send(id);
              } else {
                self->SendError(id, r.status());
              }
            }
            self->Record(RequestKind::kWrite, received);
            self->AfterAnswers();
          });
        });
      });
      return true;
    }
    default:
      return false;
  }
}

// --- The synchronous acknowledgement.

std::string Connection::TakeFrame(uint64_t id) {
  if (fbb_.GetSize() > ctx_.options->max_frame) {
    BuildError(fbb_, id, Status(Code::kTooLarge, "the response would pass the frame limit"),
               protocol_);
  }
  std::string frame(wire::kFrameHeaderSize, '\0');
  wire::StoreFrameHeader(frame.data(), fbb_.GetSize());
  frame.append(reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize());
  return frame;
}

bool Connection::HoldAnswer(uint64_t id, TxnResult& result, RequestKind kind,
                            Clock::time_point received, uint8_t replicas,
                            uint32_t replica_timeout_ms) {
  bool wait = replicas > 0 && kind == RequestKind::kWrite && result.status.ok() &&
              result.commit > 0 && ctx_.replicas;
  if (!wait && held_.empty()) return false;
  Held& h = held_.emplace_back();
  h.seq = next_held_++;
  h.kind = kind;
  h.received = received;
  if (!wait) {  // behind a held answer: answered in turn
    if (kind == RequestKind::kCatalog && result.status.ok()) {
      BuildDone(fbb_, id, result.commit);
    } else {
      BuildTxnReply(fbb_, id, result, protocol_);
    }
    if (!result.status.ok()) ctx_.stats->errors++;
    h.frame = TakeFrame(id);
    h.ready = true;
    return true;
  }
  auto timeout = replica_timeout_ms ? std::chrono::milliseconds(replica_timeout_ms)
                                    : ctx_.options->replica_timeout;
  ctx_.replicas->WaitFor(result.commit, replicas, timeout, executor_,
                         [self = shared_from_this(), seq = h.seq, id,
                          r = std::move(result)](uint32_t count, bool timed_out) {
                           self->Guarded("replica wait", [&] {
                             self->OnReplicated(seq, id, r, count, timed_out);
                           });
                         });
  return true;
}

void Connection::OnReplicated(uint64_t seq, uint64_t id, const TxnResult& result, uint32_t count,
                              bool timed_out) {
  for (Held& h : held_) {
    if (h.seq != seq) continue;
    BuildTxnReply(fbb_, id, result, protocol_, 0, uint8_t(std::min<uint32_t>(count, 255)),
                  timed_out);
    h.frame = TakeFrame(id);
    h.ready = true;
    break;
  }
  ReleaseHeld();
  AfterAnswers();
}

void Connection::ReleaseHeld() {
  while (!held_.empty() && held_.front().ready) {
    Held& h = held_.front();
    seq_.Answered();
    if (!closed_) out_.append(h.frame);
    Record(h.kind, h.received);
    held_.pop_front();
  }
}

// --- Stats.

void Connection::AddReplicationStats(ExtraStats* out) {
  if (ctx_.follower) ctx_.follower->AddStats(out);
  if (!ctx_.replicas) return;
  std::vector<ReplicaRow> rows = ctx_.replicas->List();
  uint64_t connected = 0, max_commits = 0, max_ms = 0;
  for (const ReplicaRow& r : rows) {
    connected += r.connected ? 1 : 0;
    max_commits = std::max(max_commits, r.lag_commits);
    max_ms = std::max(max_ms, r.lag_ms);
    out->counters.emplace_back("replica." + r.name + ".applied", r.applied);
    out->counters.emplace_back("replica." + r.name + ".lag_commits", r.lag_commits);
    out->counters.emplace_back("replica." + r.name + ".lag_ms", r.lag_ms);
  }
  out->counters.emplace_back("replicas.connected", connected);
  out->counters.emplace_back("replicas.known", rows.size());
  out->counters.emplace_back("replicas.lag_commits_max", max_commits);
  out->counters.emplace_back("replicas.lag_ms_max", max_ms);
  out->counters.emplace_back("replicas.sync_waiting", ctx_.replicas->waiting());
  out->counters.emplace_back("replicas.sync_timeouts", ctx_.replicas->sync_timeouts());
}

}  // namespace cairn::server
