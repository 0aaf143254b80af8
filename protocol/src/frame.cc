#include "cairn/protocol/frame.h"

#include "cairn_generated.h"

namespace cairn::wire {

FrameStatus ParseFrame(std::string_view in, uint32_t max_payload, std::string_view* payload,
                       size_t* consumed) {
  if (in.size() < kFrameHeaderSize) return FrameStatus::kNeedMore;
  auto b = reinterpret_cast<const uint8_t*>(in.data());
  uint32_t n = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
  if (n > max_payload) return FrameStatus::kTooLarge;
  if (n == 0) {
    *consumed = kFrameHeaderSize;
    return FrameStatus::kEmpty;
  }
  if (in.size() - kFrameHeaderSize < n) return FrameStatus::kNeedMore;
  *payload = in.substr(kFrameHeaderSize, n);
  *consumed = kFrameHeaderSize + n;
  return FrameStatus::kComplete;
}

namespace {
// Depth: our messages nest about six tables deep. Tables: a frame may hold many
// operations, but each costs bytes, so the count is bounded by the frame size anyway.
constexpr flatbuffers::uoffset_t kMaxDepth = 16;
constexpr flatbuffers::uoffset_t kMaxTables = 1 << 20;
}  // namespace

bool VerifyRequestFrame(std::string_view payload) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                          kMaxDepth, kMaxTables, /*check_alignment=*/false);
  return v.VerifyBuffer<RequestFrame>(nullptr);
}

bool VerifyResponseFrame(std::string_view payload) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                          kMaxDepth, kMaxTables, /*check_alignment=*/false);
  return v.VerifyBuffer<ResponseFrame>(nullptr);
}

}  // namespace cairn::wire
