// Streams: requests answered with many frames (Snapshot, Watch, Follow; docs/protocol.md,
// "Streams"). A stream takes over its connection once it starts: the connection then
// carries only the stream's frames, and passes the client's later frames to it (a
// follower's FollowAck). It ends when the stream says so or the connection closes.
//
// The connection drives the stream on its own thread: it calls Produce whenever the
// output has room (after the stream starts, after the socket took buffered output, after
// Wake), and the stream sends until the output is Full or it has nothing to send. So a
// stream's memory is bounded by the connection's output limit whatever the client's
// pace: what a slow client has not taken stays where it came from (the LMDB snapshot
// being copied, the change log).
#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "cairn/engine/status.h"
#include "flatbuffers/flatbuffers.h"

namespace cairn::wire {
struct RequestFrame;
}

namespace cairn::server {

// What a stream sees of its connection. Every call but Wake on the connection's thread.
class StreamOutput {
 public:
  virtual ~StreamOutput() = default;
  // Build a ResponseFrame with id() into builder(), then Send() it.
  virtual flatbuffers::FlatBufferBuilder& builder() = 0;
  virtual void Send() = 0;
  // Sends an error for the stream's request and ends the stream (closes after flushing).
  virtual void Fail(const Status& s) = 0;
  // The stream is complete: flush what was sent, then close the connection.
  virtual void End() = 0;
  // Output is over its limit: stop sending; Produce is called again once it drains.
  virtual bool Full() const = 0;
  virtual uint64_t id() const = 0;          // the stream's request id
  virtual uint32_t protocol() const = 0;
  virtual asio::any_io_executor executor() = 0;
  // Thread-safe: Produce will be called soon on the connection's thread (coalesced).
  virtual void Wake() = 0;
  // The client's address, "127.0.0.1:51234".
  virtual std::string peer() const = 0;
};

class Stream {
 public:
  virtual ~Stream() = default;
  // Send what is ready, until out.Full() or nothing is left for now.
  virtual void Produce(StreamOutput& out) = 0;
  // A frame the client sent after the stream began (verified). Default: refused.
  virtual Status OnFrame(const wire::RequestFrame& frame, StreamOutput& out);
  // About once a second while the stream lasts (a chance to send a heartbeat).
  virtual void OnTick(StreamOutput& out) { (void)out; }
  // The connection is closing: release resources (the stream is destroyed after).
  virtual void Stop() {}
};

// Commits made by this server (the writer's group commits, catalog changes, a replica's
// applied batches) wake the streams that wait for them. Notify costs one atomic load while
// nobody listens.
class CommitFeed {
 public:
  using Listener = std::function<void()>;  // cheap and thread-safe: it only posts
  uint64_t Subscribe(Listener l) {
    std::lock_guard lock(mu_);
    uint64_t id = next_++;
    listeners_.emplace(id, std::move(l));
    count_.store(listeners_.size(), std::memory_order_release);
    return id;
  }
  void Unsubscribe(uint64_t id) {
    std::lock_guard lock(mu_);
    listeners_.erase(id);
    count_.store(listeners_.size(), std::memory_order_release);
  }
  void Notify() {
    if (count_.load(std::memory_order_acquire) == 0) return;
    std::lock_guard lock(mu_);
    for (auto& [id, l] : listeners_) l();
  }

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, Listener> listeners_;
  uint64_t next_ = 1;
  std::atomic<size_t> count_{0};
};

}  // namespace cairn::server
