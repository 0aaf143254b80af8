// Errors of the client library.
//
// Style, for the whole library: calls that fail THROW cairn::Error (synchronous calls
// directly; asynchronous calls through their completion: the handler's
// std::exception_ptr, the future's get(), or the coroutine's co_await). Outcomes that
// are answers, not failures, are values: Get() of an absent record returns an empty
// std::optional, Delete() returns whether the record existed.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cairn/common/codes.h"

namespace cairn::client {

// The server's error codes (docs/protocol.md), plus the client's own (kTimeout,
// kConnectionFailed, kProtocol): one enum shared with the engine and the wire
// (cairn/common/codes.h). Never renumber.
using ErrorCode = cairn::Code;

inline std::string_view ErrorCodeName(ErrorCode code) { return cairn::CodeName(code); }

class Error : public std::runtime_error {
 public:
  // `condition`, `operation`: which part of a transaction failed (from 0), or -1.
  // `log_first`: see log_first().
  Error(ErrorCode code, const std::string& message, int32_t condition = -1,
        int32_t operation = -1, uint64_t log_first = 0)
      : std::runtime_error(std::string(ErrorCodeName(code)) + ": " + message),
        code_(code),
        condition_(condition),
        operation_(operation),
        log_first_(log_first),
        message_(message) {}

  ErrorCode code() const { return code_; }
  // The transaction's condition (or operation) that failed, counted from 0 in the
  // order they were added to the Txn; -1 when the error is not about one of them.
  int32_t condition() const { return condition_; }
  int32_t operation() const { return operation_; }
  // kLogTruncated (a Watch from a commit the server no longer keeps): the oldest commit
  // its change log still holds, where a watch can start again; 0 if the log is empty or
  // the server did not say (protocol 4 and older).
  uint64_t log_first() const { return log_first_; }
  // The message alone (what() also names the code).
  const std::string& message() const { return message_; }
  // True for errors where retrying the same call later may succeed.
  bool transient() const {
    return code_ == ErrorCode::kUnavailable || code_ == ErrorCode::kTimeout ||
           code_ == ErrorCode::kConnectionFailed;
  }

 private:
  ErrorCode code_;
  int32_t condition_, operation_;
  uint64_t log_first_;
  std::string message_;
};

}  // namespace cairn::client
