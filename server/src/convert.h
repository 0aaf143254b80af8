// Translation between wire messages (protocol/cairn.fbs) and engine calls.
// The only place that knows both.
#pragma once

#include <chrono>
#include <string>

#include "cairn/engine/engine.h"
#include "cairn_generated.h"
#include "flatbuffers/flatbuffers.h"
#include "stats.h"

namespace cairn::server {

// Limits on what one request may ask for.
struct RequestLimits {
  size_t max_ops = 10'000;         // operations (and conditions) per transaction
  size_t max_result_bytes = 0;     // keys + values returned by one transaction
  uint32_t default_scan_limit = 0; // records per scan/query page when the client sets none
};

// Fills *out from `t`. Views in *out point into the message `t` belongs to.
Status DecodeTxn(const wire::Txn& t, const RequestLimits& limits, Transaction* out);
Status DecodeIndexSpec(const wire::IndexSpec* spec, IndexSpec* out);

// Whether a transaction message writes (has a put or delete).
bool TxnWrites(const wire::Txn& t);

// Counts the operations of a transaction into stats.
void CountOps(const Transaction& t, ServerStats* stats);

// The wire code of `code` for a connection that agreed on `protocol`: codes newer than
// the connection's version are sent as the older code they refine (UnknownName, added
// in 3, is NotFound to 1 and 2; Corrupted, added in 4, is Internal to 1 to 3).
wire::ErrorCode ToWire(Code code, uint32_t protocol);

// Response builders: each clears `fbb` and finishes a ResponseFrame in it. `protocol`:
// the version the connection agreed on (before the handshake: 1).
// `log_first`: for kLogTruncated, the oldest commit the log holds (Error.log_first).
void BuildError(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const Status& s,
                uint32_t protocol, uint64_t log_first = 0);
// `at`: the commit the transaction's reads saw (a read-only one: its snapshot's; 0: the
// transaction's own commit).
// `replicas`, `replica_timeout`: a write that waited for replicas (Txn.replicas).
void BuildTxnReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const TxnResult& r,
                   uint32_t protocol, uint64_t at = 0, uint8_t replicas = 0,
                   bool replica_timeout = false);
// Whether a transaction is only gets, without conditions: it can be answered straight
// from the snapshot's views (BuildGetsReply), without copying records twice.
bool OnlyGets(const Transaction& t);
// Runs such a transaction on `read` and builds its reply; a non-ok Status means nothing
// was built and the caller answers with the error.
Status BuildGetsReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, ReadTxn& read,
                      const Transaction& t);
// A Get request (protocol 2): runs it on `read` and builds its GetReply; a non-ok Status
// means nothing was built and the caller answers with the error.
Status BuildGetReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, ReadTxn& read,
                     const wire::Get& get);
void BuildDone(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, uint64_t commit);
// `next`: set on a page of ListCollections that more collections follow (catalog_reply.h).
void BuildCollections(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                      const std::vector<CollectionInfo>& collections, std::string_view next = {});
void BuildDigestReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const DatabaseDigest& d);
// The digest once the engine has reached commit `at` (0: now), waiting up to `wait` for
// it; kUnavailable if it was not reached in time, kConditionFailed if the database is past
// it (a digest is of the current state only).
Result<DatabaseDigest> DigestAt(Engine& engine, uint64_t at, std::chrono::milliseconds wait);
void BuildVerifyReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const VerifyReport& r);
void BuildPong(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, std::string_view payload);
void BuildStats(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const ServerStats& stats,
                const EngineStats& engine, const ExtraStats* extra = nullptr);

inline std::string_view View(const flatbuffers::String* s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}
inline std::string_view View(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
           : std::string_view();
}

}  // namespace cairn::server
