// Status and Result: how every fallible engine call reports its outcome.
//
// The engine never throws for expected outcomes (a missing record, a failed
// condition, a full database). It throws only std::bad_alloc. A Status is
// cheap to copy when ok (no allocation).
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "cairn/common/codes.h"

namespace cairn {

// Code and CodeName: cairn/common/codes.h (shared with the wire and libcairn).

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "unique violation: ..." for logs and tests.
  std::string ToString() const;

  // Prefixes the message with context ("operation 2: ...").
  Status WithContext(std::string_view context) const;

  // Which part of a transaction failed, counted from 0; -1 when the error is not
  // about one condition or operation. Set by the engine on a transaction's error.
  int32_t failed_condition() const { return failed_condition_; }
  int32_t failed_operation() const { return failed_operation_; }
  // The same error, marked as caused by condition (or operation) `i`, with a context
  // prefix ("condition 1: ..."; "operation 0 (insert): ...").
  Status AtCondition(size_t i) const;
  Status AtOperation(size_t i, std::string_view op_name) const;

 private:
  Code code_ = Code::kOk;
  int32_t failed_condition_ = -1;
  int32_t failed_operation_ = -1;
  std::string message_;
};

// A value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return v_.index() == 0; }
  // REQUIRES: ok()
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // The error; an ok Status when there is a value.
  Status status() const { return ok() ? Status() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cairn
