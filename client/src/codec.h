// Internal helpers shared by the client's sources.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cairn_generated.h"
#include "flatbuffers/flatbuffers.h"

namespace cairn::client::codec {

uint64_t NextRequestId();
// A framed RequestFrame with a fresh id and the body `body` builds.
std::string Request(wire::Request type,
                    const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>& body);
// The protocol 1 form of a point read: a Txn of one Get.
std::string TxnGet(std::string_view collection, std::string_view key);
// A framed Get request (protocol 2) rewritten as the one-get Txn of protocol 1, with a
// fresh id; nullopt if `frame` is not a Get request.
std::optional<std::string> DowngradeGet(std::string_view frame);
// The id of a framed request.
uint64_t FrameId(std::string_view frame);
// A response payload, already verified by the connection that read it; throws
// cairn::Error for an error response.
const wire::ResponseFrame* Response(std::string_view payload);

}  // namespace cairn::client::codec
