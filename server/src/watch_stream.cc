// The Watch stream (docs/protocol.md, "Watch"): the changes of every commit from a given
// one on, filtered by collection and key prefix, read from the change log as the client
// takes them. Nothing is queued for a watcher but what the connection's output holds:
// a watcher that does not read stops the stream (the log keeps its place), and one that
// falls behind the log's retention is ended with LogTruncated.
#include <spdlog/spdlog.h>

#include "auth.h"
#include "cairn/protocol/codes.h"
#include "cairn_generated.h"
#include "convert.h"
#include "streams.h"

namespace cairn::server {
namespace {

using flatbuffers::Offset;

// Entries read from the log per step, and the bytes of changes a frame carries before it
// is sent (the rest of a commit's changes follow in the next frame).
constexpr size_t kEntriesPerRead = 256;
constexpr auto kHeartbeat = std::chrono::seconds(5);

class WatchStream : public Stream {
 public:
  WatchStream(ServerContext& ctx, std::string collection, std::string prefix, uint64_t next)
      : ctx_(ctx),
        collection_(std::move(collection)),
        prefix_(std::move(prefix)),
        next_(next),
        budget_(ctx.options->max_frame / 4) {}

  void Produce(StreamOutput& out) override {
    if (!subscription_) {
      // Wakes this stream after every commit (StreamOutput::Wake coalesces).
      subscription_ = ctx_.commits->Subscribe([&out] { out.Wake(); });
    }
    while (!out.Full()) {
      if (pending_.empty() || pos_ == pending_.size()) {
        if (next_ > ctx_.engine->LastCommit()) return;  // caught up: wait for a commit
        pending_.clear();
        pos_ = 0;
        change_ = 0;
        Status s = ctx_.engine->ReadLog(next_, kEntriesPerRead, budget_, &pending_);
        if (s.code() == Code::kLogTruncated) return Truncated(out);
        if (!s.ok()) return out.Fail(s);
        if (pending_.empty()) return;
      }
      SendSome(out);
    }
  }

  void OnTick(StreamOutput& out) override {
    // A heartbeat: the watcher learns how far it is (and a dead peer is found by the write).
    if (std::chrono::steady_clock::now() - last_sent_ >= kHeartbeat && !out.Full()) {
      auto& fbb = out.builder();
      fbb.Clear();
      auto ev = wire::CreateWatchEvents(fbb, 0, next_ - 1);
      fbb.Finish(wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::WatchEvents, ev.Union()));
      out.Send();
      last_sent_ = std::chrono::steady_clock::now();
    }
  }

  void Stop() override {
    if (subscription_) ctx_.commits->Unsubscribe(*subscription_);
    subscription_.reset();
  }

 private:
  bool Matches(const Change& c) const {
    // The server's own records (users, roles: credentials) are never watched.
    if (IsSystemCollection(c.collection)) return false;
    if (!collection_.empty() && c.collection != collection_) return false;
    if (c.kind != Change::kPut && c.kind != Change::kDelete) return true;
    return std::string_view(c.key).substr(0, prefix_.size()) == prefix_;
  }

  // One frame: changes from pending_[pos_] on until the byte budget; `through` says how far.
  void SendSome(StreamOutput& out) {
    auto& fbb = out.builder();
    fbb.Clear();
    std::vector<Offset<wire::WatchChange>> changes;
    size_t bytes = 0;
    uint64_t through = next_ - 1;
    while (pos_ < pending_.size() && bytes < budget_) {
      const LogEntry& e = pending_[pos_];
      for (; change_ < e.changes.size() && bytes < budget_; change_++) {
        const Change& c = e.changes[change_];
        if (!Matches(c)) continue;
        bytes += 64 + c.collection.size() + c.key.size() + c.value.size();
        changes.push_back(BuildChange(fbb, e, c));
      }
      if (change_ < e.changes.size()) break;  // the rest of this commit in the next frame
      through = e.commit;
      next_ = e.commit + 1;
      pos_++;
      change_ = 0;
    }
    auto vec = fbb.CreateVector(changes);
    auto ev = wire::CreateWatchEvents(fbb, vec, through);
    fbb.Finish(wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::WatchEvents, ev.Union()));
    if (changes.empty() && std::chrono::steady_clock::now() - last_sent_ < kHeartbeat) {
      return;  // nothing for this watcher: it learns of the progress at the next heartbeat
    }
    out.Send();
    last_sent_ = std::chrono::steady_clock::now();
  }

  static Offset<wire::WatchChange> BuildChange(flatbuffers::FlatBufferBuilder& fbb,
                                               const LogEntry& e, const Change& c) {
    auto coll = fbb.CreateString(c.collection);
    Offset<flatbuffers::Vector<uint8_t>> key, value;
    if (c.kind == Change::kPut || c.kind == Change::kDelete) {
      key = fbb.CreateVector(reinterpret_cast<const uint8_t*>(c.key.data()), c.key.size());
    }
    if (c.kind == Change::kPut) {
      value = fbb.CreateVector(reinterpret_cast<const uint8_t*>(c.value.data()), c.value.size());
    }
    Offset<wire::IndexSpec> index;
    if (c.index) {
      index = wire::CreateIndexSpec(fbb, fbb.CreateString(c.index->name),
                                    fbb.CreateVectorOfStrings(c.index->fields), c.index->unique);
    }
    return wire::CreateWatchChange(fbb, e.commit, coll, uint8_t(c.kind), key,
                                   wire::ToWire(c.value_kind), value, index, e.time_ms);
  }

  void Truncated(StreamOutput& out) {
    uint64_t first = ctx_.engine->Stats().log_first;
    Status s(Code::kLogTruncated,
             "commit " + std::to_string(next_) + " is no longer in the change log; the oldest "
             "kept is " + std::to_string(first) + " (watch again from there, or from 0 for "
             "new commits only)");
    BuildError(out.builder(), out.id(), s, out.protocol(), first);
    out.Send();
    out.End();
  }

  ServerContext& ctx_;
  const std::string collection_, prefix_;
  uint64_t next_;           // the first commit not yet delivered
  const size_t budget_;
  std::vector<LogEntry> pending_;  // read from the log, not all sent yet
  size_t pos_ = 0, change_ = 0;    // the next entry of pending_ and change in it
  std::optional<uint64_t> subscription_;
  std::chrono::steady_clock::time_point last_sent_ = std::chrono::steady_clock::now();
};

}  // namespace

Result<std::unique_ptr<Stream>> MakeWatchStream(ServerContext& ctx, const wire::Watch* w) {
  std::string collection(w ? View(w->collection()) : std::string_view());
  std::string prefix(w ? View(w->prefix()) : std::string_view());
  uint64_t from = w ? w->from() : 0;
  uint64_t last = ctx.engine->LastCommit();
  if (from == 0) from = last + 1;
  if (!collection.empty()) {
    auto info = ctx.engine->DescribeCollection(collection);
    // A collection that does not exist yet may be created later: watching it is allowed,
    // but a name that can never exist is refused.
    if (!info.ok() && info.status().code() != Code::kUnknownName &&
        info.status().code() != Code::kNotFound) {
      return info.status();
    }
  }
  if (from <= last) {
    std::vector<LogEntry> probe;
    Status s = ctx.engine->ReadLog(from, 1, 1, &probe);
    if (!s.ok()) return s;
  }
  return std::unique_ptr<Stream>(
      std::make_unique<WatchStream>(ctx, std::move(collection), std::move(prefix), from));
}

}  // namespace cairn::server
