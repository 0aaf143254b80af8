#include "frame_buffer.h"

#include <algorithm>
#include <cstring>

namespace cairn::server {

std::pair<char*, size_t> FrameBuffer::Room(uint32_t max_frame) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (buf_.size() > 4 * kInitial) {
      buf_.resize(kInitial);  // give back the room a large frame needed
      buf_.shrink_to_fit();
    }
  }
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buf_.size()) {
    size_t cap = size_t(max_frame) + wire::kFrameHeaderSize;
    buf_.resize(std::max(buf_.size(), std::min(buf_.size() * 2, cap)));
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

wire::FrameStatus FrameBuffer::Next(uint32_t max_frame, std::string_view* payload) {
  size_t consumed = 0;
  wire::FrameStatus st = wire::ParseFrame(unparsed(), max_frame, payload, &consumed);
  if (st == wire::FrameStatus::kComplete || st == wire::FrameStatus::kEmpty) begin_ += consumed;
  return st;
}

bool FrameBuffer::HasFrame(uint32_t max_frame) const {
  std::string_view payload;
  size_t consumed;
  return wire::ParseFrame(unparsed(), max_frame, &payload, &consumed) != wire::FrameStatus::kNeedMore;
}

}  // namespace cairn::server
