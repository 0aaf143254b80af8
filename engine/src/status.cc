#include "cairn/engine/status.h"

#include <lmdb.h>

#include <cerrno>

#include "cairn/engine/types.h"
#include "engine_impl.h"

namespace cairn {

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(CodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  Status s(code_, std::string(context) + ": " + message_);
  s.failed_condition_ = failed_condition_;
  s.failed_operation_ = failed_operation_;
  return s;
}

Status Status::AtCondition(size_t i) const {
  if (ok()) return *this;
  Status s = WithContext("condition " + std::to_string(i));
  s.failed_condition_ = int32_t(i);
  s.failed_operation_ = -1;
  return s;
}

Status Status::AtOperation(size_t i, std::string_view op_name) const {
  if (ok()) return *this;
  Status s = WithContext("operation " + std::to_string(i) + " (" + std::string(op_name) + ")");
  s.failed_condition_ = -1;
  s.failed_operation_ = int32_t(i);
  return s;
}

bool IsWrite(const Op& op) {
  return std::holds_alternative<PutOp>(op) || std::holds_alternative<DeleteOp>(op);
}

bool Transaction::read_only() const {
  for (const Op& op : ops) {
    if (IsWrite(op)) return false;
  }
  return true;
}

bool Change::operator==(const Change& o) const {
  auto same_index = [](const std::optional<IndexSpec>& a, const std::optional<IndexSpec>& b) {
    if (a.has_value() != b.has_value()) return false;
    return !a || (a->name == b->name && a->fields == b->fields && a->unique == b->unique);
  };
  return kind == o.kind && collection == o.collection && key == o.key &&
         value_kind == o.value_kind && value == o.value && same_index(index, o.index);
}

namespace internal {

Status MdbStatus(int rc, std::string_view what) {
  std::string where(what);
  switch (rc) {
    case 0:
      return Status::Ok();
    case MDB_MAP_FULL:
      return Status(Code::kDatabaseFull,
                    "the database reached its size cap (max_size); delete data or raise the cap");
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      // Mid-transaction (LMDB spilling pages of a large transaction); commits go through
      // SpaceReserve::CommitError, which names the folder.
      return Status(Code::kDatabaseFull, where + ": no space left on the disk (" +
                                             mdb_strerror(rc) + "); delete data or free space");
    case MDB_TXN_FULL:
      return Status(Code::kTooLarge, "transaction too large: it touches too many pages");
    case MDB_READERS_FULL:
      return Status(Code::kUnavailable, "too many concurrent readers");
    case MDB_BAD_VALSIZE:
      return Status(Code::kTooLarge, where + ": key or value size out of range");
    case EACCES:
      return Status(Code::kReadOnly, where + ": database is read-only");
    default:
      return Status(Code::kInternal, where + ": " + mdb_strerror(rc));
  }
}

}  // namespace internal
}  // namespace cairn
