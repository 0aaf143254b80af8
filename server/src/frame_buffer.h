// The bytes a connection has read and not yet parsed, and the policy by which that room
// grows and shrinks. No sockets: a reader asks for room (Room), says how much it filled
// (Filled), and takes complete frames out (Next).
//
// Growth: the buffer starts at 64 KiB and doubles as bytes arrive, never to what a frame
// header merely announces: a client that sends a large header and a trickle of bytes
// pins at most twice what it sent (and never more than one largest frame). Once it is
// empty again after a large frame, it shrinks back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "cairn/protocol/frame.h"

namespace cairn::server {

class FrameBuffer {
 public:
  static constexpr size_t kInitial = 64 << 10;

  FrameBuffer() : buf_(kInitial) {}

  // Room to read into, for frames of at most `max_frame` payload bytes. Moves unparsed
  // bytes to the front, grows (doubling, capped at one largest frame), or shrinks back
  // when empty. Never empty while a frame is incomplete and within the limit.
  std::pair<char*, size_t> Room(uint32_t max_frame);
  void Filled(size_t n) { end_ += n; }

  // The next frame: kComplete with *payload (valid until the next Room), kNeedMore,
  // kEmpty (a zero-length frame, consumed), or kTooLarge (the stream is unusable).
  wire::FrameStatus Next(uint32_t max_frame, std::string_view* payload);
  // Whether a complete (or bad) frame waits, without taking it.
  bool HasFrame(uint32_t max_frame) const;

  std::string_view unparsed() const { return std::string_view(buf_.data() + begin_, end_ - begin_); }
  bool empty() const { return begin_ == end_; }
  size_t capacity() const { return buf_.size(); }

 private:
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;  // [begin_, end_): read, not yet parsed
};

}  // namespace cairn::server
