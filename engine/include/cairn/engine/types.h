// The vocabulary of the engine: records, index values, operations, transactions
// and their results. Plain structs; see engine.h for what runs them.
//
// Fields of type std::string_view in requests (Op, Condition, ScanSpec...) point
// into memory the caller owns and must keep alive for the duration of the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cairn/common/codes.h"
#include "cairn/engine/status.h"

namespace cairn {

// Largest primary key, in bytes (LMDB's 511-byte key cap minus the 4-byte collection prefix).
inline constexpr size_t kMaxKeySize = 507;

// ValueKind and IndexState: cairn/common/codes.h (shared with the wire and libcairn).

// A record read inside a transaction. The views point into the database and are
// valid only until the transaction that produced them ends.
struct RecordView {
  std::string_view key{};
  uint64_t version = 0;  // commit number of the last write to this record
  ValueKind kind = ValueKind::kDocument;
  std::string_view value{};
};

// An owned copy of a record.
struct Record {
  std::string key{};
  uint64_t version = 0;
  ValueKind kind = ValueKind::kDocument;
  std::string value{};

  static Record From(const RecordView& v) {
    return Record{std::string(v.key), v.version, v.kind, std::string(v.value)};
  }
  bool operator==(const Record&) const = default;
};

// A value as secondary indexes see it. Integers and floats compare numerically with
// each other (1 == 1.0; -0.0 == 0.0; NaN sorts above +infinity). Across types:
// null < false < true < numbers < strings < blobs.
struct Blob {
  std::string bytes{};
  bool operator==(const Blob&) const = default;
};
using IndexValue = std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string, Blob>;

// A primary-key bound.
struct KeyBound {
  std::string_view key{};
  bool inclusive = true;
};

// A scan of a collection by primary key, in key order (bytewise).
struct ScanSpec {
  std::string_view collection{};
  std::optional<KeyBound> lower{};  // the low end, whatever the direction
  std::optional<KeyBound> upper{};  // the high end
  uint32_t limit = 0;             // at most this many records; 0: no limit
  bool reverse = false;           // from high to low
  std::string_view continuation{};  // from a previous page's result; empty: start
  size_t max_bytes = 0;           // stop once keys + values exceed this; 0: no budget
};

// An index-value bound.
struct ValueBound {
  IndexValue value{};
  bool inclusive = true;
};

// A query of a secondary index: the first `equal.size()` fields of the index equal the
// given values; optionally the next field lies between `lower` and `upper`. Results come
// in index order, then primary-key order. One exception: index keys longer than LMDB's
// key limit are ordered by their first 499 encoded bytes, so values that share those
// bytes come back together but in an unspecified order among themselves
// (docs/storage.md, "Values too long for a key"). Membership is always exact.
struct QuerySpec {
  std::string_view collection{};
  std::string_view index{};
  std::vector<IndexValue> equal{};
  std::optional<ValueBound> lower{};
  std::optional<ValueBound> upper{};
  uint32_t limit = 0;
  bool reverse = false;
  std::string_view continuation{};
  size_t max_bytes = 0;
};

// Operations of a transaction.
struct GetOp {
  std::string_view collection{};
  std::string_view key{};
};
enum class PutMode : uint8_t {
  kUpsert = 0,   // put: write whether present or not
  kInsert = 1,   // fails with kAlreadyExists if present
  kReplace = 2,  // fails with kNotFound if absent
};
struct PutOp {
  std::string_view collection{};
  std::string_view key{};
  std::string_view value{};
  ValueKind kind = ValueKind::kDocument;
  PutMode mode = PutMode::kUpsert;
};
struct DeleteOp {
  std::string_view collection{};
  std::string_view key{};
};
struct ScanOp {
  ScanSpec spec{};
};
struct QueryOp {
  QuerySpec spec{};
};
// Counts the records a scan or a query would return (limit and max_bytes ignored).
struct CountOp {
  std::variant<ScanSpec, QuerySpec> range{};
};
using Op = std::variant<GetOp, PutOp, DeleteOp, ScanOp, QueryOp, CountOp>;

bool IsWrite(const Op& op);

struct Condition {
  enum Kind : uint8_t { kAbsent = 0, kPresent = 1, kVersionEquals = 2 };  // never renumber
  Kind kind = kPresent;
  std::string_view collection{};
  std::string_view key{};
  uint64_t version = 0;  // kVersionEquals only
};

// A transaction: every condition is checked, then the operations run in order, all or
// nothing. Reads see the transaction's own earlier writes.
struct Transaction {
  std::vector<Condition> conditions{};
  std::vector<Op> ops{};
  // Caps the bytes (keys + values) of records the reads return, all operations together:
  // scans and queries stop there with a continuation (each returns at least one record);
  // a read that finds the cap already reached fails the transaction with kTooLarge.
  // 0: no cap.
  size_t max_result_bytes = 0;
  // When set (1 to 64 bytes) on a transaction that writes: the engine remembers the key
  // with the result, in the same commit, and a later transaction carrying the same key
  // gets that result back without running (a retry cannot apply writes twice). Keys are
  // kept for Options::idempotency_retention.
  std::string_view idempotency_key{};
  // Set only by a caller that has already passed every document this transaction puts
  // through Engine::CheckDocuments (cairnd does, on the connection's IO thread, so that a
  // costly document delays its own connection and not the writer): the engine then skips
  // its own check. A document stored unchecked can make every later reader of it fail or
  // crash: leave this false otherwise.
  bool documents_checked = false;

  bool read_only() const;
};

struct OpResult {
  // get: the record exists; delete: it existed; put: it existed before.
  bool found = false;
  // get: the record's version; put/delete: the commit number of this transaction.
  uint64_t version = 0;
  // get (at most one), scan, query.
  std::vector<Record> records{};
  // count.
  uint64_t count = 0;
  // scan, query: non-empty when more results may follow; pass it back to continue.
  std::string continuation{};
};

struct TxnResult {
  Status status{};
  // The commit number given to this transaction; 0 if it wrote nothing or failed.
  uint64_t commit = 0;
  // One per operation when status is ok; empty otherwise.
  std::vector<OpResult> results{};
  // The result was remembered from an earlier transaction with the same idempotency
  // key; nothing ran now.
  bool replayed = false;
};

// Catalog descriptions.
struct IndexSpec {
  std::string name{};
  std::vector<std::string> fields{};  // dotted paths into the document: "address.city"
  bool unique = false;
};

struct IndexInfo {
  IndexSpec spec{};
  IndexState state = IndexState::kReady;
  std::string error{};
};

struct CollectionInfo {
  std::string name{};
  uint64_t created = 0;  // commit number of its creation
  std::vector<IndexInfo> indexes{};
};

// The change log: one entry per commit.
struct Change {
  enum Kind : uint8_t {  // stored in the log: never renumber
    kPut = 0,
    kDelete = 1,
    kCreateCollection = 2,
    kDropCollection = 3,
    kCreateIndex = 4,
    kDropIndex = 5,
  };
  Kind kind = kPut;
  std::string collection{};
  std::string key{};  // kPut, kDelete: the record's key
  ValueKind value_kind = ValueKind::kDocument;
  std::string value{};            // kPut: the new value
  std::optional<IndexSpec> index;  // kCreateIndex (whole spec), kDropIndex (name only)

  bool operator==(const Change&) const;
};

struct LogEntry {
  uint64_t commit = 0;
  std::vector<Change> changes{};
  uint64_t time_ms = 0;  // when it committed, ms since the epoch (0: not recorded)
};

// A change-log entry in its stored form (with its checksum), for replicas.
struct RawLogEntry {
  uint64_t commit = 0;
  std::string data{};
};

// One epoch of a database's history (Engine::History): commits from first_commit on were
// made by the primary of this epoch, up to the next epoch's first_commit.
struct EpochStart {
  uint64_t epoch = 0;
  uint64_t id = 0;  // random, chosen when the epoch starts
  uint64_t first_commit = 0;
  bool operator==(const EpochStart&) const = default;
};

struct DatabaseDigest {
  uint64_t commit = 0;  // the snapshot's last commit
  uint64_t digest = 0;
  uint64_t collections = 0;
  uint64_t records = 0;
  uint64_t index_entries = 0;
};

struct EngineStats {
  uint64_t last_commit = 0;
  uint64_t map_size = 0;         // the size cap (bytes)
  uint64_t used_bytes = 0;       // pages in use (bytes)
  uint64_t file_bytes = 0;       // size of the data file
  uint64_t log_first = 0;        // oldest commit still in the change log (0: empty)
  uint32_t readers_used = 0;     // reader slots in use
  uint32_t max_readers = 0;
  uint64_t commits = 0;          // since open
  uint64_t group_commits = 0;    // LMDB write transactions that held >= 1 commit, since open
  uint64_t replays = 0;          // transactions answered from their idempotency key, since open
  uint64_t idempotency_keys = 0; // keys remembered now
  uint64_t stale_readers_cleared = 0;  // reader slots of dead processes freed, since open
  // Reads and writes answered kCorrupted because a record failed its checksum or an index
  // entry had no record, since open (Verify's findings are not counted).
  uint64_t corrupted_reads = 0;
  // Whether records written before format 3 may still lack a checksum (the background
  // upgrade is not done).
  bool checksum_upgrade_pending = false;
  uint64_t space_reserve = 0;    // room kept for deletes and drops (bytes; Options::space_reserve)
  uint64_t preallocated_bytes = 0;  // data.mdb allocated on disk ahead of its pages
  uint64_t full_refusals = 0;    // writes refused to keep the reserve, since open
  uint64_t epoch = 0;            // of the last epoch in the history
  uint64_t highest_epoch_seen = 0;
  bool fenced = false;           // a higher epoch exists: writes refused
  // This open found the data to be a copy made on another node (a restored backup, a
  // replica's snapshot, a copied data.mdb) and, as a primary's, started an epoch of its
  // own (docs/storage.md, "Copies start an epoch of their own").
  bool epoch_started_at_open = false;
  uint64_t log_hold = 0;         // oldest commit kept for replicas (0: none held)
  uint64_t log_bytes = 0;        // bytes of change-log entries kept (replica_log_keep_bytes)
  uint64_t applied_batches = 0;  // ApplyLog calls that committed, since open
};

}  // namespace cairn
