// Framing of the wire protocol (docs/protocol.md): every message is
//   [payload length: u32 little-endian][payload: one FlatBuffer]
// The codec does no I/O: it looks at bytes and says what they hold, so the
// server, the client and the fuzz tests share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cairn::wire {

// 2 added the Get request and its GetReply (a point read outside a transaction).
// 3 added the UnknownName error code, the failed condition/operation in Error, and
// the Verify request.
// 4 added the Corrupted error code.
// 5 added streams (Snapshot, Watch, Follow), Digest and the replication requests.
// 6 added authentication (AuthStart, AuthContinue), users and roles, PermissionDenied
// and AuthFailed.
inline constexpr uint32_t kProtocolVersion = 6;
inline constexpr size_t kFrameHeaderSize = 4;
// Default and bounds for the largest payload (server --max-frame).
inline constexpr uint32_t kDefaultMaxFrame = 16 << 20;
inline constexpr uint32_t kMinMaxFrame = 64 << 10;
// The largest frame a server takes from a connection that has not authenticated yet (its
// Hello and the SCRAM messages are a few hundred bytes).
inline constexpr uint32_t kPreAuthMaxFrame = 4 << 10;

enum class FrameStatus {
  kComplete,  // a whole frame: *payload and *consumed are set
  kNeedMore,  // not enough bytes yet
  kEmpty,     // a zero-length payload: skip *consumed bytes; no message can be that short
  kTooLarge,  // the header announces more than max_payload: the stream cannot be trusted
};

// Looks at the start of `in`.
FrameStatus ParseFrame(std::string_view in, uint32_t max_payload, std::string_view* payload,
                       size_t* consumed);

inline void StoreFrameHeader(char* out, uint32_t payload_size) {
  out[0] = char(payload_size);
  out[1] = char(payload_size >> 8);
  out[2] = char(payload_size >> 16);
  out[3] = char(payload_size >> 24);
}

// Checks a payload with the FlatBuffers verifier (bounded depth and table count)
// before any field is read.
bool VerifyRequestFrame(std::string_view payload);
bool VerifyResponseFrame(std::string_view payload);

}  // namespace cairn::wire
