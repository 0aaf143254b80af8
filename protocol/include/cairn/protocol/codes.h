// Where the wire meets the shared enums (cairn/common/codes.h). cairn.fbs numbers its
// ErrorCode, ValueKind and IndexState like cairn::Code, cairn::ValueKind and
// cairn::IndexState; the checks below stop the build when the two disagree, and the
// conversions are the only place that casts between them (cairnd's convert.cc,
// libcairn's codec). tests/protocol/codes_test.cc walks every value across both.
#pragma once

#include <cstdint>

#include "cairn/common/codes.h"
#include "cairn_generated.h"

namespace cairn::wire {

#define CAIRN_SAME_NUMBER(wire_value, shared_value)                   \
  static_assert(uint8_t(wire_value) == uint8_t(shared_value),         \
                #wire_value " and " #shared_value " must share their number")

CAIRN_SAME_NUMBER(ErrorCode::Ok, Code::kOk);
CAIRN_SAME_NUMBER(ErrorCode::NotFound, Code::kNotFound);
CAIRN_SAME_NUMBER(ErrorCode::AlreadyExists, Code::kAlreadyExists);
CAIRN_SAME_NUMBER(ErrorCode::ConditionFailed, Code::kConditionFailed);
CAIRN_SAME_NUMBER(ErrorCode::UniqueViolation, Code::kUniqueViolation);
CAIRN_SAME_NUMBER(ErrorCode::BadRequest, Code::kBadRequest);
CAIRN_SAME_NUMBER(ErrorCode::TooLarge, Code::kTooLarge);
CAIRN_SAME_NUMBER(ErrorCode::DatabaseFull, Code::kDatabaseFull);
CAIRN_SAME_NUMBER(ErrorCode::ReadOnly, Code::kReadOnly);
CAIRN_SAME_NUMBER(ErrorCode::Unavailable, Code::kUnavailable);
CAIRN_SAME_NUMBER(ErrorCode::Internal, Code::kInternal);
CAIRN_SAME_NUMBER(ErrorCode::LogTruncated, Code::kLogTruncated);
CAIRN_SAME_NUMBER(ErrorCode::UnknownName, Code::kUnknownName);
CAIRN_SAME_NUMBER(ErrorCode::Corrupted, Code::kCorrupted);
CAIRN_SAME_NUMBER(ErrorCode::Diverged, Code::kDiverged);
CAIRN_SAME_NUMBER(ErrorCode::PermissionDenied, Code::kPermissionDenied);
CAIRN_SAME_NUMBER(ErrorCode::AuthFailed, Code::kAuthFailed);
// A code added to cairn.fbs must be added to cairn::Code (and checked above) too.
CAIRN_SAME_NUMBER(ErrorCode::MAX, Code::kAuthFailed);
static_assert(uint8_t(ErrorCode::MAX) < kFirstClientCode, "server codes stay below 100");

CAIRN_SAME_NUMBER(ValueKind::Document, cairn::ValueKind::kDocument);
CAIRN_SAME_NUMBER(ValueKind::Raw, cairn::ValueKind::kRaw);
CAIRN_SAME_NUMBER(ValueKind::MAX, cairn::ValueKind::kRaw);

CAIRN_SAME_NUMBER(IndexState::Building, cairn::IndexState::kBuilding);
CAIRN_SAME_NUMBER(IndexState::Ready, cairn::IndexState::kReady);
CAIRN_SAME_NUMBER(IndexState::Failed, cairn::IndexState::kFailed);
CAIRN_SAME_NUMBER(IndexState::MAX, cairn::IndexState::kFailed);

#undef CAIRN_SAME_NUMBER

// REQUIRES: a server's code (below kFirstClientCode): libcairn's own never go on the wire.
constexpr ErrorCode ToWire(Code c) { return ErrorCode(uint8_t(c)); }
// A code this build does not know (from a newer peer) keeps its number; CodeName calls
// it "unknown".
constexpr Code FromWire(ErrorCode c) { return Code(uint8_t(c)); }

constexpr ValueKind ToWire(cairn::ValueKind k) { return ValueKind(uint8_t(k)); }
constexpr cairn::ValueKind FromWire(ValueKind k) { return cairn::ValueKind(uint8_t(k)); }

constexpr IndexState ToWire(cairn::IndexState s) { return IndexState(uint8_t(s)); }
constexpr cairn::IndexState FromWire(IndexState s) { return cairn::IndexState(uint8_t(s)); }

}  // namespace cairn::wire
