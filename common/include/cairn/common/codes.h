// The enums every layer speaks, in one place: outcome codes (the engine's Status, the
// wire's ErrorCode, libcairn's Error), record value kinds and index states.
//
// The wire schema (protocol/cairn.fbs) cannot include a C++ header, so its enums repeat
// these numbers; cairn/protocol/codes.h checks them at compile time and holds the only
// conversions. To add a code: add it here (and to CodeName), to cairn.fbs, and to the
// checks in cairn/protocol/codes.h; tests/protocol/codes_test.cc walks every value.
//
// A leaf: includes nothing but the standard library.
#pragma once

#include <cstdint>
#include <string_view>

namespace cairn {

// Outcome codes. Below 100: what a server answers, each on the wire under the same
// number. 100 and up: libcairn's own, never sent. Never renumber.
enum class Code : uint8_t {
  kOk = 0,
  kNotFound = 1,          // a record is missing where that is an error (replace)
  kAlreadyExists = 2,     // create of something that exists; insert of a present key
  kConditionFailed = 3,   // a transaction's condition did not hold
  kUniqueViolation = 4,   // a write would give two records one value of a unique index
  kBadRequest = 5,        // malformed input: bad name, bad document, bad bounds...
  kTooLarge = 6,          // a key, value or transaction over a limit
  kDatabaseFull = 7,      // the size cap or the disk is full; reads, deletes, drops still work
  kReadOnly = 8,          // a write sent to a read-only database
  kUnavailable = 9,       // busy or not ready (index still building, too many readers)
  kInternal = 10,         // a bug or storage failure (corruption, I/O error)
  kLogTruncated = 11,     // the change log no longer holds the requested commit
  kUnknownName = 12,      // the collection or index named does not exist (protocol 3)
  kCorrupted = 13,        // stored data failed its checksum or is malformed (protocol 4)
  kDiverged = 14,         // a follower's history is not its primary's (protocol 5)
  kPermissionDenied = 15, // the connection's user may not do this (protocol 6)
  kAuthFailed = 16,       // authentication failed or is required first (protocol 6)
  // libcairn's own:
  kTimeout = 100,           // no answer within the call's timeout
  kConnectionFailed = 101,  // could not connect, or lost the connection and gave up retrying
  kProtocol = 102,          // the server sent something the client cannot read
};

// The first of libcairn's own codes; every code below it is a server's.
inline constexpr uint8_t kFirstClientCode = 100;

// "not found", "unique violation", ...; "unknown" for a number that is no code.
constexpr std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kConditionFailed: return "condition failed";
    case Code::kUniqueViolation: return "unique violation";
    case Code::kBadRequest: return "bad request";
    case Code::kTooLarge: return "too large";
    case Code::kDatabaseFull: return "database full";
    case Code::kReadOnly: return "read-only";
    case Code::kUnavailable: return "unavailable";
    case Code::kInternal: return "internal";
    case Code::kLogTruncated: return "log truncated";
    case Code::kUnknownName: return "unknown name";
    case Code::kCorrupted: return "corrupted";
    case Code::kDiverged: return "diverged";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kAuthFailed: return "auth failed";
    case Code::kTimeout: return "timeout";
    case Code::kConnectionFailed: return "connection failed";
    case Code::kProtocol: return "protocol error";
  }
  return "unknown";
}

// What a record's value is. Stored on disk and sent on the wire: never renumber.
enum class ValueKind : uint8_t {
  kDocument = 0,  // a FlexBuffers map; indexable
  kRaw = 1,       // opaque bytes; never indexed
};

// A secondary index's state. Stored in the catalog and sent on the wire: never renumber.
enum class IndexState : uint8_t {
  kBuilding = 0,  // being filled from existing records; not queryable yet
  kReady = 1,
  kFailed = 2,  // the build met a unique violation; see its error; drop it
};

constexpr std::string_view IndexStateName(IndexState s) {
  switch (s) {
    case IndexState::kBuilding: return "building";
    case IndexState::kReady: return "ready";
    case IndexState::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace cairn
