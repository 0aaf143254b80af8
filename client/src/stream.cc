// The Watcher and the SnapshotReader: a stream connection (stream_connection.h) whose
// frames are checked and turned into the parts their callers take.
#include "cairn/client/stream.h"

#include <atomic>
#include <deque>
#include <future>

#include "cairn/client/client.h"
#include "cairn/protocol/backup.h"
#include "cairn/protocol/codes.h"
#include "cairn_generated.h"
#include "codec.h"
#include "stream_connection.h"

namespace cairn::client {

namespace {

// What a stream reads ahead of its caller before it stops reading (and the server,
// whose output then fills, pauses).
constexpr size_t kReadAhead = 8 << 20;

std::string Str(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string(reinterpret_cast<const char*>(v->data()), v->size()) : std::string();
}

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

std::string ReplyName(const wire::ResponseFrame& r) {
  return r.reply_type() == wire::Reply::NONE ? "an empty reply"
                                             : wire::EnumNameReply(r.reply_type());
}

// A stream call's answer, on the IO thread: the caller's completion runs last, after
// the stream's state is consistent again (the caller's handler may call in again).
template <typename T>
void Complete(std::unique_ptr<detail::Completion<T>> c, std::exception_ptr e, T value) {
  c->Complete(e, std::move(value));
}

void CheckNotIoThread(const internal::StreamConnection& s) {
  if (s.OnIoThread()) {
    throw Error(ErrorCode::kBadRequest,
                "a synchronous call from the client's own IO thread would deadlock; use the "
                "asynchronous form");
  }
}

// The synchronous form of a stream call. The promise is completed on the IO thread.
template <typename T, typename Start>
T WaitFor(const internal::StreamConnection& s, Start start) {
  CheckNotIoThread(s);
  std::promise<T> promise;
  std::future<T> result = promise.get_future();
  auto done = [&promise](std::exception_ptr e, T value) {
    if (e) return promise.set_exception(e);
    promise.set_value(std::move(value));
  };
  start(std::unique_ptr<detail::Completion<T>>(
      new detail::CompletionWith<T, decltype(done)>(std::move(done))));
  return result.get();
}

}  // namespace

std::string_view ChangeKindName(Change::Kind kind) {
  switch (kind) {
    case Change::Kind::kPut: return "put";
    case Change::Kind::kDelete: return "delete";
    case Change::Kind::kCreateCollection: return "create_collection";
    case Change::Kind::kDropCollection: return "drop_collection";
    case Change::Kind::kCreateIndex: return "create_index";
    case Change::Kind::kDropIndex: return "drop_index";
  }
  return "unknown";
}

// --- Watch.

namespace detail {

class WatchState final : public internal::StreamConnection {
 public:
  WatchState(const internal::StreamTarget& target, const WatchOptions& o, std::string request)
      : StreamConnection(target, std::move(request), "watch", o.idle_timeout),
        from_(o.from),
        through_(o.from ? o.from - 1 : 0),
        delivered_(through_) {}

  // IO thread.
  void Next(std::unique_ptr<Completion<WatchBatch>> c) {
    if (waiting_) {
      return Complete(std::move(c), std::make_exception_ptr(Error(
                                        ErrorCode::kBadRequest,
                                        "Watcher::Next called while another call waits")),
                      WatchBatch{});
    }
    waiting_ = std::move(c);
    Deliver();
  }

  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

 private:
  void OnFrame(const wire::ResponseFrame& r) override {
    const wire::WatchEvents* ev = r.reply_as_WatchEvents();
    if (!ev) throw Error(ErrorCode::kProtocol, "expected WatchEvents, not " + ReplyName(r));
    uint64_t through = ev->through();
    if (through < through_) {
      throw Error(ErrorCode::kProtocol, "the watch stream went back from commit " +
                                            std::to_string(through_) + " to " +
                                            std::to_string(through));
    }
    if (ev->changes()) {
      for (const wire::WatchChange* w : *ev->changes()) Add(*w);
    }
    through_ = through;
    // The changes of commits up to `through` are whole: ready for the caller.
    size_t whole = 0;
    while (whole < partial_.size() && partial_[whole].commit <= through_) whole++;
    for (size_t i = 0; i < whole; i++) {
      ready_bytes_ += Size(partial_[i]);
      partial_bytes_ -= Size(partial_[i]);
      ready_.push_back(std::move(partial_[i]));
    }
    partial_.erase(partial_.begin(), partial_.begin() + whole);
    if (ready_bytes_ >= kReadAhead) Pause();
  }

  // A change in commit order, after everything delivered, held until its commit is whole.
  void Add(const wire::WatchChange& w) {
    uint64_t last = partial_.empty() ? through_ : partial_.back().commit;
    if (w.commit() <= through_ || w.commit() < last || w.commit() < from_) {
      throw Error(ErrorCode::kProtocol,
                  "a change of commit " + std::to_string(w.commit()) +
                      " out of order in the watch stream (after commit " +
                      std::to_string(last) + ", through " + std::to_string(through_) + ")");
    }
    Change c;
    c.commit = w.commit();
    c.collection = Str(w.collection());
    c.kind = Change::Kind(w.kind());
    c.key = Str(w.key());
    c.value_kind = wire::FromWire(w.value_kind());
    c.value = Str(w.value());
    if (const wire::IndexSpec* ix = w.index()) {
      IndexSpec spec{Str(ix->name()), {}, ix->unique()};
      if (ix->fields()) {
        for (const flatbuffers::String* f : *ix->fields()) spec.fields.push_back(Str(f));
      }
      c.index = std::move(spec);
    }
    c.time_ms = w.time_ms();
    partial_bytes_ += Size(c);
    partial_.push_back(std::move(c));
    // One commit's changes came in one request frame: more than that is not a commit.
    size_t bound = 2 * size_t(max_frame()) + (1 << 20);
    if (partial_bytes_ > bound) {
      throw Error(ErrorCode::kProtocol,
                  "the changes of commit " + std::to_string(partial_.front().commit) +
                      " go on past " + std::to_string(bound) + " bytes without the commit's end");
    }
  }

  static size_t Size(const Change& c) {
    return sizeof(Change) + c.collection.size() + c.key.size() + c.value.size();
  }

  void AfterFrames() override { Deliver(); }

  void OnEnd(std::exception_ptr e) override {
    partial_.clear();  // never whole now: the caller resumes from through + 1
    partial_bytes_ = 0;
    error_ = e ? e
               : std::make_exception_ptr(Error(
                     ErrorCode::kConnectionFailed,
                     "the server ended the watch stream (it may be shutting down); watch again "
                     "from commit " +
                         std::to_string(through_ + 1)));
    Deliver();
  }

  // Hands the caller what is ready: whole commits first, then the error that ended the
  // stream, if any.
  void Deliver() {
    if (!waiting_) return;
    if (!ready_.empty() || through_ > delivered()) {
      WatchBatch b;
      b.changes.reserve(ready_.size());
      for (Change& c : ready_) b.changes.push_back(std::move(c));
      ready_.clear();
      ready_bytes_ = 0;
      b.through = through_;
      delivered_.store(through_, std::memory_order_relaxed);
      if (!ended()) Resume();
      return Complete(std::move(waiting_), nullptr, std::move(b));
    }
    if (error_) Complete(std::move(waiting_), error_, WatchBatch{});
  }

  const uint64_t from_;
  uint64_t through_;                 // the server's: every commit <= it has been sent
  std::atomic<uint64_t> delivered_;  // the last `through` handed to the caller
  std::deque<Change> ready_;         // whole commits not yet taken
  std::vector<Change> partial_;      // changes of commits > through_, in order
  size_t ready_bytes_ = 0, partial_bytes_ = 0;
  std::unique_ptr<Completion<WatchBatch>> waiting_;
  std::exception_ptr error_;
};

// --- Snapshot.

class SnapshotState final : public internal::StreamConnection {
 public:
  SnapshotState(const internal::StreamTarget& target, const SnapshotOptions& o,
                std::string request)
      : StreamConnection(target, std::move(request), "snapshot", o.idle_timeout) {}

  void Next(std::unique_ptr<Completion<SnapshotPart>> c) {
    if (waiting_) {
      return Complete(std::move(c), std::make_exception_ptr(Error(
                                        ErrorCode::kBadRequest,
                                        "SnapshotReader::Next called while another call waits")),
                      SnapshotPart{});
    }
    waiting_ = std::move(c);
    Deliver();
  }

  bool complete() const { return complete_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  enum class Stage : uint8_t { kBegin, kChunks, kEnd };

  void OnFrame(const wire::ResponseFrame& r) override {
    if (stage_ == Stage::kEnd) {
      throw Error(ErrorCode::kProtocol, "the server sent " + ReplyName(r) + " after SnapshotEnd");
    }
    switch (r.reply_type()) {
      case wire::Reply::SnapshotBegin: return OnBegin(*r.reply_as_SnapshotBegin());
      case wire::Reply::SnapshotChunk: return OnChunk(*r.reply_as_SnapshotChunk());
      case wire::Reply::SnapshotEnd: return OnEndFrame(*r.reply_as_SnapshotEnd());
      default:
        throw Error(ErrorCode::kProtocol, "expected a snapshot part, not " + ReplyName(r));
    }
  }

  void OnBegin(const wire::SnapshotBegin& b) {
    if (stage_ != Stage::kBegin) throw Error(ErrorCode::kProtocol, "a second SnapshotBegin");
    SnapshotBegin part{b.commit(), b.format(), {}};
    if (b.history()) {
      for (const wire::EpochStart* e : *b.history()) {
        part.history.push_back(EpochStart{e->epoch(), e->id(), e->first_commit()});
      }
    }
    stage_ = Stage::kChunks;
    Push(std::move(part), 0);
  }

  void OnChunk(const wire::SnapshotChunk& c) {
    if (stage_ != Stage::kChunks) {
      throw Error(ErrorCode::kProtocol, "a SnapshotChunk before SnapshotBegin");
    }
    std::string where = "the snapshot chunk at offset " + std::to_string(c.offset());
    if (c.offset() != received_) {
      throw Error(ErrorCode::kProtocol,
                  where + " does not follow the bytes before it, which end at " +
                      std::to_string(received_) + " (" +
                      (c.offset() > received_ ? "a gap" : "an overlap") + ")");
    }
    std::string data = Str(c.data());
    // The stream's checksums are the backup file's (one definition, protocol/backup.h).
    if (BackupChunkChecksum(c.offset(), data) != c.checksum()) {
      throw Error(ErrorCode::kProtocol, where + " (" + std::to_string(data.size()) +
                                            " bytes) fails its checksum: damaged in transit");
    }
    whole_.Update(data);
    received_ += data.size();
    size_t n = data.size();
    Push(SnapshotChunk{c.offset(), std::move(data), c.checksum()}, n);
  }

  void OnEndFrame(const wire::SnapshotEnd& e) {
    if (stage_ != Stage::kChunks) {
      throw Error(ErrorCode::kProtocol, "a SnapshotEnd before SnapshotBegin");
    }
    if (e.size() != received_) {
      throw Error(ErrorCode::kProtocol, "the snapshot's end says " + std::to_string(e.size()) +
                                            " bytes, but " + std::to_string(received_) +
                                            " arrived");
    }
    if (whole_.Digest() != e.checksum()) {
      throw Error(ErrorCode::kProtocol,
                  "the snapshot's checksum does not match its " + std::to_string(received_) +
                      " bytes, although every chunk matched its own");
    }
    stage_ = Stage::kEnd;
    Push(SnapshotEnd{e.size(), e.checksum()}, 0);
  }

  void Push(SnapshotPart part, size_t n) {
    ready_.push_back(std::move(part));
    ready_bytes_ += n;
    if (ready_bytes_ >= kReadAhead) Pause();
  }

  void AfterFrames() override { Deliver(); }

  void OnEnd(std::exception_ptr e) override {
    // Whole: how the connection ended does not matter; what is ready is still delivered.
    if (stage_ == Stage::kEnd) return Deliver();
    error_ = e ? e
               : std::make_exception_ptr(Error(
                     ErrorCode::kConnectionFailed,
                     stage_ == Stage::kBegin
                         ? std::string("the server closed the connection before the snapshot began")
                         : "the server closed the connection after " +
                               std::to_string(received_) +
                               " bytes of the snapshot, before its end"));
    Deliver();
  }

  // Parts in order; after the last, the error that ended the stream (if any).
  void Deliver() {
    if (!waiting_) return;
    if (!ready_.empty()) {
      SnapshotPart part = std::move(ready_.front());
      ready_.pop_front();
      if (auto* c = std::get_if<SnapshotChunk>(&part)) {
        ready_bytes_ -= c->data.size();
        bytes_.fetch_add(c->data.size(), std::memory_order_relaxed);
      }
      if (std::holds_alternative<SnapshotEnd>(part)) complete_.store(true);
      if (!ended() && ready_bytes_ < kReadAhead) Resume();
      return Complete(std::move(waiting_), nullptr, std::move(part));
    }
    if (error_) return Complete(std::move(waiting_), error_, SnapshotPart{});
    if (stage_ == Stage::kEnd) {
      Complete(std::move(waiting_),
               std::make_exception_ptr(
                   Error(ErrorCode::kBadRequest, "the snapshot is complete: nothing follows its end")),
               SnapshotPart{});
    }
  }

  BackupDataChecksum whole_;  // of every byte checked so far
  Stage stage_ = Stage::kBegin;
  uint64_t received_ = 0;  // bytes of chunks checked
  std::deque<SnapshotPart> ready_;
  size_t ready_bytes_ = 0;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<bool> complete_{false};
  std::unique_ptr<Completion<SnapshotPart>> waiting_;
  std::exception_ptr error_;
};

}  // namespace detail

// --- Starting streams (Client::Watch, Client::Snapshot).

namespace internal {

std::shared_ptr<detail::WatchState> StartWatch(const StreamTarget& target,
                                               const WatchOptions& o) {
  std::string request =
      codec::Request(wire::Request::Watch, [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto collection = o.collection.empty() ? 0 : fbb.CreateString(o.collection);
        auto prefix = o.prefix.empty()
                          ? 0
                          : fbb.CreateVector(reinterpret_cast<const uint8_t*>(o.prefix.data()),
                                             o.prefix.size());
        return wire::CreateWatch(fbb, collection, prefix, o.from).Union();
      });
  auto s = std::make_shared<detail::WatchState>(target, o, std::move(request));
  s->Run([s] { s->Start(); });
  return s;
}

std::shared_ptr<detail::SnapshotState> StartSnapshot(const StreamTarget& target,
                                                     const SnapshotOptions& o) {
  std::string request = codec::Request(wire::Request::Snapshot, [](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateSnapshot(fbb).Union();
  });
  auto s = std::make_shared<detail::SnapshotState>(target, o, std::move(request));
  s->Run([s] { s->Start(); });
  return s;
}

}  // namespace internal

// --- Watcher.

Watcher& Watcher::operator=(Watcher&& other) noexcept {
  if (this != &other) {
    Close();
    client_ = std::move(other.client_);
    state_ = std::move(other.state_);
  }
  return *this;
}

Watcher::~Watcher() { Close(); }

void Watcher::Close() {
  if (!state_) return;
  {
    auto s = std::move(state_);
    s->Run([s] { s->Close(Error(ErrorCode::kConnectionFailed, "the watcher is closed")); });
  }
  // The Client goes last, after this handle's reference to the stream: if it is the
  // last one, its IO thread runs the Close posted above (and the handlers it cancels,
  // which hold the stream's last references) before the io_context goes; a stream that
  // outlived it would close its socket on a destroyed io_context.
  client_.reset();
}

uint64_t Watcher::through() const { return state_ ? state_->delivered() : 0; }

asio::any_io_executor Watcher::Executor() const {
  if (!client_) throw Error(ErrorCode::kBadRequest, "the watcher is not open");
  return client_->executor();
}

void Watcher::NextBatch(const std::shared_ptr<detail::WatchState>& state,
                        std::unique_ptr<detail::Completion<WatchBatch>> completion) {
  // Always posted, even from the IO thread: a handler that asks for the next batch
  // gets it from a fresh turn of the loop, not by recursion.
  asio::post(*state->target().io, [state, c = std::move(completion)]() mutable {
    state->Next(std::move(c));
  });
}

WatchBatch Watcher::Next() {
  if (!state_) throw Error(ErrorCode::kBadRequest, "the watcher is not open");
  return WaitFor<WatchBatch>(*state_, [this](auto c) { NextBatch(state_, std::move(c)); });
}

// --- SnapshotReader.

SnapshotReader& SnapshotReader::operator=(SnapshotReader&& other) noexcept {
  if (this != &other) {
    Close();
    client_ = std::move(other.client_);
    state_ = std::move(other.state_);
  }
  return *this;
}

SnapshotReader::~SnapshotReader() { Close(); }

void SnapshotReader::Close() {
  if (!state_) return;
  {
    auto s = std::move(state_);
    s->Run([s] { s->Close(Error(ErrorCode::kConnectionFailed, "the snapshot reader is closed")); });
  }
  client_.reset();  // last, as in Watcher::Close
}

bool SnapshotReader::complete() const { return state_ && state_->complete(); }
uint64_t SnapshotReader::bytes() const { return state_ ? state_->bytes() : 0; }

asio::any_io_executor SnapshotReader::Executor() const {
  if (!client_) throw Error(ErrorCode::kBadRequest, "the snapshot reader is not open");
  return client_->executor();
}

void SnapshotReader::NextPart(const std::shared_ptr<detail::SnapshotState>& state,
                              std::unique_ptr<detail::Completion<SnapshotPart>> completion) {
  asio::post(*state->target().io, [state, c = std::move(completion)]() mutable {
    state->Next(std::move(c));
  });
}

SnapshotPart SnapshotReader::Next() {
  if (!state_) throw Error(ErrorCode::kBadRequest, "the snapshot reader is not open");
  return WaitFor<SnapshotPart>(*state_, [this](auto c) { NextPart(state_, std::move(c)); });
}

}  // namespace cairn::client
