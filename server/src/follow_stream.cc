// The Follow stream (docs/protocol.md, "Follow"): a replica's position is checked against
// this server's history, then the stored change-log entries from its position on are sent
// as they are committed, read from the log only while the connection's output has room.
// The follower's FollowAck frames go to the registry (replicas.h), which holds the log
// for it and answers the writes that wait for replicas.
#include <spdlog/spdlog.h>

#include "cairn_generated.h"
#include "convert.h"
#include "replicas.h"
#include "streams.h"

namespace cairn::server {
namespace {

using flatbuffers::Offset;

constexpr size_t kEntriesPerFrame = 4096;
constexpr auto kHeartbeat = std::chrono::seconds(1);

std::string Epoch(uint64_t epoch, uint64_t id) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llu (id %016llx)", (unsigned long long)epoch,
                (unsigned long long)id);
  return buf;
}

class FollowStream : public Stream {
 public:
  FollowStream(ServerContext& ctx, uint64_t from, std::string name, std::string address)
      : ctx_(ctx),
        next_(from),
        name_(std::move(name)),
        address_(std::move(address)),
        // A frame's entries stay well under the frame limit (an entry larger than that
        // cannot be sent at all: Produce says so).
        budget_(ctx.options->max_frame / 4) {}

  void Produce(StreamOutput& out) override {
    if (!began_) Begin(out);
    if (ctx_.engine->History().size() != history_size_) {
      // This node was promoted (a new epoch): the follower must learn the new history
      // from a FollowBegin before it gets the new epoch's commits. It reconnects.
      spdlog::info("history changed: ending the Follow stream of {} so that it starts over",
                   name_);
      return out.End();
    }
    while (!out.Full()) {
      if (next_ > ctx_.engine->LastCommit()) return;  // caught up: wait for a commit
      entries_.clear();
      Status s = ctx_.engine->ReadRawLog(next_, kEntriesPerFrame, budget_, &entries_);
      if (s.code() == Code::kLogTruncated) return Truncated(out);
      if (!s.ok()) return out.Fail(s);
      if (entries_.empty()) return;
      Send(out, entries_);
      if (!sent_ok_) return;
      next_ = entries_.back().commit + 1;
    }
  }

  Status OnFrame(const wire::RequestFrame& frame, StreamOutput& out) override {
    if (frame.request_type() != wire::Request::FollowAck || !frame.request_as_FollowAck()) {
      return Stream::OnFrame(frame, out);
    }
    auto ack = frame.request_as_FollowAck();
    if (ack->applied() >= next_) {
      return Status(Code::kBadRequest, "FollowAck for commit " + std::to_string(ack->applied()) +
                                           ", which was not sent yet");
    }
    ctx_.replicas->Ack(handle_, ack->applied(), ack->applied_time_ms());
    return Status::Ok();
  }

  void OnTick(StreamOutput& out) override {
    // A heartbeat: the follower learns the primary's last commit (its lag), and a dead
    // peer is found by the write.
    if (began_ && std::chrono::steady_clock::now() - last_sent_ >= kHeartbeat && !out.Full()) {
      std::vector<RawLogEntry> none;
      Send(out, none);
    }
  }

  void Stop() override {
    if (subscription_) ctx_.commits->Unsubscribe(*subscription_);
    subscription_.reset();
    if (handle_) ctx_.replicas->Disconnect(handle_);
    handle_ = 0;
  }

 private:
  void Begin(StreamOutput& out) {
    began_ = true;
    subscription_ = ctx_.commits->Subscribe([&out] { out.Wake(); });
    std::string peer = out.peer();
    handle_ = ctx_.replicas->Connect(name_.empty() ? peer : name_, peer, next_);
    auto& fbb = out.builder();
    fbb.Clear();
    std::vector<Offset<wire::EpochStart>> v;
    std::vector<EpochStart> history = ctx_.engine->History();
    history_size_ = history.size();
    for (const EpochStart& e : history) {
      v.push_back(wire::CreateEpochStart(fbb, e.epoch, e.id, e.first_commit));
    }
    auto hist = fbb.CreateVector(v);
    auto begin = wire::CreateFollowBegin(fbb, hist, ctx_.engine->LastCommit());
    fbb.Finish(
        wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::FollowBegin, begin.Union()));
    out.Send();
    spdlog::info("replica {} ({}) follows from commit {}", name_, peer, next_);
  }

  void Send(StreamOutput& out, const std::vector<RawLogEntry>& entries) {
    auto& fbb = out.builder();
    fbb.Clear();
    std::vector<Offset<wire::LogEntryData>> v;
    v.reserve(entries.size());
    for (const RawLogEntry& e : entries) {
      auto data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(e.data.data()), e.data.size());
      v.push_back(wire::CreateLogEntryData(fbb, e.commit, data));
    }
    auto vec = fbb.CreateVector(v);
    auto msg = wire::CreateLogEntries(fbb, vec, ctx_.engine->LastCommit(), uint64_t(NowMs()));
    fbb.Finish(wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::LogEntries, msg.Union()));
    sent_ok_ = true;
    if (fbb.GetSize() > ctx_.options->max_frame) {
      // Only one entry can be that large (the budget stops a frame before it).
      sent_ok_ = false;
      return out.Fail(Status(Code::kTooLarge,
                             "the change-log entry of commit " + std::to_string(entries[0].commit) +
                                 " does not fit in a frame of " +
                                 std::to_string(ctx_.options->max_frame) +
                                 " bytes: raise --max-frame on this server"));
    }
    out.Send();
    last_sent_ = std::chrono::steady_clock::now();
  }

  void Truncated(StreamOutput& out) {
    uint64_t first = ctx_.engine->Stats().log_first;
    Status s(Code::kLogTruncated,
             "commit " + std::to_string(next_) + " is no longer in the change log (the oldest "
             "kept is " + std::to_string(first) + "): bootstrap again from a snapshot");
    BuildError(out.builder(), out.id(), s, out.protocol(), first);
    out.Send();
    out.End();
  }

  ServerContext& ctx_;
  uint64_t next_;  // the first commit not yet sent
  const std::string name_, address_;
  const size_t budget_;
  std::vector<RawLogEntry> entries_;
  bool began_ = false, sent_ok_ = true;
  size_t history_size_ = 0;  // of the history sent in FollowBegin
  uint64_t handle_ = 0;  // in ctx_.replicas
  std::optional<uint64_t> subscription_;
  std::chrono::steady_clock::time_point last_sent_ = std::chrono::steady_clock::now();
};

}  // namespace

Result<std::unique_ptr<Stream>> MakeFollowStream(ServerContext& ctx, const wire::Follow* f) {
  Engine& engine = *ctx.engine;
  std::vector<EpochStart> history = engine.History();
  uint64_t own_epoch = history.empty() ? 0 : history.back().epoch;
  if (f->highest_epoch() > own_epoch) {
    // A node has been promoted past this one: this server must take no more writes.
    if (Status s = engine.Fence(f->highest_epoch()); !s.ok()) return s;
    spdlog::warn("a follower reports epoch {}, higher than this server's {}: fenced, writes are "
                 "refused from now on",
                 f->highest_epoch(), own_epoch);
    return Status(Code::kDiverged,
                  "this server's epoch " + std::to_string(own_epoch) +
                      " is older than epoch " + std::to_string(f->highest_epoch()) +
                      " the follower has heard of: this server is fenced; follow the newer "
                      "primary");
  }
  if (f->from() == 0) return Status(Code::kBadRequest, "Follow.from must be at least 1");
  uint64_t at = f->from() - 1;  // the follower's last applied commit
  uint64_t last = engine.LastCommit();
  if (at > last) {
    return Status(Code::kDiverged,
                  "the follower is at commit " + std::to_string(at) + " of epoch " +
                      Epoch(f->epoch(), f->epoch_id()) + ", past this server's last commit " +
                      std::to_string(last) + ": the histories diverged; bootstrap the follower again "
                      "(a new data folder) to follow this server");
  }
  if (at > 0) {
    EpochStart ours = Engine::EpochOf(history, at);
    if (ours.epoch != f->epoch() || ours.id != f->epoch_id()) {
      return Status(Code::kDiverged,
                    "commit " + std::to_string(at) + " was made by epoch " +
                        Epoch(f->epoch(), f->epoch_id()) + " on the follower and by epoch " +
                        Epoch(ours.epoch, ours.id) +
                        " here: the histories diverged; bootstrap the follower again (a new "
                        "data folder) to follow this server");
    }
  }
  if (f->from() <= last) {
    std::vector<RawLogEntry> probe;
    if (Status s = engine.ReadRawLog(f->from(), 1, 1, &probe); !s.ok()) return s;
  }
  ctx.stats->follow_streams++;
  return std::unique_ptr<Stream>(std::make_unique<FollowStream>(
      ctx, f->from(), std::string(View(f->name())), std::string(View(f->address()))));
}

}  // namespace cairn::server
