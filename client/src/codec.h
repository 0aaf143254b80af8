// libcairn's codec: requests encoded as frames, responses decoded into the library's
// types. Internal: used by the library's sources, and by its tests and benchmarks through
// the cairn_client_internal target; never installed.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cairn/client/types.h"
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
// cairn::client::Error for an error response.
const wire::ResponseFrame* Response(std::string_view payload);

// --- Requests, framed with a fresh request id.
std::string EncodeTxn(const Txn& txn);
// A point read: a Get request when the server speaks protocol 2 or later, else the same
// as EncodeTxn of a one-operation Txn (without building the Txn).
std::string EncodeGet(std::string_view collection, std::string_view key, uint32_t protocol);
// The same as EncodeTxn of a one-write Txn (a put, insert or replace, conditioned on
// `if_version` if given), without building the Txn.
std::string EncodePut(std::string_view collection, std::string_view key, const Document& doc,
                      wire::PutMode mode = wire::PutMode::Upsert,
                      std::optional<uint64_t> if_version = std::nullopt);
std::string EncodePing();

// --- Responses. `request`: the frame sent (a GetReply does not repeat the key asked
// for); the decoders that do not need it ignore it.
TxnResult DecodeTxnResult(std::string_view payload, std::string_view request = {});
std::optional<Record> DecodeGet(std::string_view payload, std::string_view request);
uint64_t DecodeCommit(std::string_view payload, std::string_view request = {});
bool DecodePong(std::string_view payload, std::string_view request = {});
// The commit of a Done (catalog, user and role changes).
uint64_t DecodeDone(std::string_view payload, std::string_view request = {});

}  // namespace cairn::client::codec
