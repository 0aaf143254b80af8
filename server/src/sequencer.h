// The order of one connection's requests, without sockets (tests/server/sequencer_test.cc).
//
// Requests take effect in the order they were sent. A write may start while earlier
// writes are still with the writer (the writer keeps their order); a read, and anything
// answered on the connection's own thread, waits until every earlier write (and every
// earlier request handed to another thread: Verify, Digest) has been answered, so that it
// sees them and its answer leaves after theirs. A request that arrives while another waits
// waits behind it. Errors found before a request could run (a bad frame, a write that does
// not decode) are answered in the same order.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "cairn/engine/status.h"

namespace cairn::server {

class Sequencer {
 public:
  using Clock = std::chrono::steady_clock;
  struct Item {
    std::string payload;  // the frame's payload (empty for an error)
    Clock::time_point received;
    bool write = false;            // goes to the writer
    std::optional<Status> error;   // set: answer this error in its turn instead
    uint64_t error_id = 0;         // the id to answer it with
  };

  // Whether a request may run at once (nothing waits ahead of it, and for anything but a
  // write, nothing is out on another thread).
  bool MayRun(bool write) const { return waiting_.empty() && (write || out_ == 0); }
  // Whether an error found now may be answered at once.
  bool MayAnswer() const { return waiting_.empty() && out_ == 0; }

  void Wait(Item item) { waiting_.push_back(std::move(item)); }
  // An error of a request that was running in turn but could not be handed over (a write
  // that does not decode, behind writes still out): it is answered before anything that
  // arrived after it.
  void WaitFirst(Item item) { waiting_.push_front(std::move(item)); }

  // The next waiting item that may run now (errors may always be answered once they are at
  // the front and nothing is out, writes once they are at the front), or nullopt.
  std::optional<Item> Next();

  // The front item whatever is out (a connection that carries a stream passes every later
  // frame to it).
  std::optional<Item> Take();

  void HandedOff() { out_++; }  // a request went to another thread
  void Answered() { out_--; }   // ... and its answer is back
  size_t out() const { return out_; }
  size_t waiting() const { return waiting_.size(); }
  size_t inflight() const { return waiting_.size() + out_; }
  bool idle() const { return waiting_.empty() && out_ == 0; }
  void Clear() { waiting_.clear(); }

 private:
  std::deque<Item> waiting_;
  size_t out_ = 0;  // handed to the writer, the checker or the tasks thread
};

}  // namespace cairn::server
