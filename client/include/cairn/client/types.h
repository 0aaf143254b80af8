// libcairn's value types: options, records, transactions, results, catalog
// descriptions, statistics. Everything here is in namespace cairn::client; see client.h
// for the calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cairn/client/document.h"
#include "cairn/client/error.h"
#include "cairn/common/codes.h"

namespace cairn::client {

struct ClientOptions {
  std::string address = "127.0.0.1:7420";  // HOST:PORT
  size_t connections = 2;                    // the pool; requests spread over it
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{30000};  // per call, retries included
  int max_attempts = 4;                      // sends per call when connections fail
  std::chrono::milliseconds retry_backoff{50};  // doubled after each failed attempt
  std::string client_name = "libcairn";

  // Authentication (docs/security.md): with a user set, every connection authenticates
  // with SCRAM-SHA-256 right after its Hello. The password stays in this process.
  std::string user = {};
  std::string password = {};
  // PBKDF2 iterations of the credentials that CreateUser and SetPassword derive from a
  // password (4096 to 10 million; the default is scram::kDefaultIterations). Every
  // connection of that user then runs as many (about 3.5 ms of CPU at 15000), and so does
  // each guess of an offline attack on stolen credentials.
  uint32_t scram_iterations = 15000;

  // TLS: on when `tls` is set (or any file below is given). The server's certificate is
  // checked against `tls_ca` (a PEM file; empty: the system's store) and its name against
  // `tls_server_name` (empty: the host of `address`). A client certificate for mutual TLS:
  // `tls_cert` and `tls_key` (PEM files).
  bool tls = false;
  std::string tls_ca = {};
  std::string tls_cert = {};
  std::string tls_key = {};
  std::string tls_server_name = {};
};

// One enum each with the engine and the wire (cairn/common/codes.h).
using cairn::IndexState;
using cairn::IndexStateName;
using cairn::ValueKind;

struct Record {
  std::string key;
  uint64_t version = 0;  // the commit that last wrote it
  ValueKind kind = ValueKind::kDocument;
  std::string value;     // FlexBuffers map bytes, or raw bytes

  // A copy of the value as a Document. REQUIRES: kind == kDocument (throws kBadRequest
  // if the value is not a FlexBuffers map).
  Document document() const { return Document::FromBytes(value); }
  // The field at a dotted path of the document, read in place from this record's own
  // bytes (no copy): the Value is valid while the record lives and `value` is not
  // changed. Not on a temporary Record (deleted: the Value would dangle). REQUIRES and
  // throws as document().
  Value operator[](std::string_view path) const&;
  Value operator[](std::string_view path) const&& = delete;
};

struct Bound {
  std::string key;  // primary key (scans)
  bool inclusive = true;
};
struct ScalarBound {
  Scalar value;  // index value (queries)
  bool inclusive = true;
};

struct ScanOptions {
  std::optional<Bound> from;  // low end
  std::optional<Bound> to;    // high end
  uint32_t limit = 0;         // in all, across pages; 0: everything
  bool reverse = false;
  uint32_t page_size = 0;     // records per request; 0: the server's choice
};

struct QueryOptions {
  std::vector<Scalar> equal;         // values of the index's first fields
  std::optional<ScalarBound> from;   // range on the next field
  std::optional<ScalarBound> to;
  uint32_t limit = 0;
  bool reverse = false;
  uint32_t page_size = 0;
};

// A transaction: conditions, then operations, all or nothing.
class Txn {
 public:
  Txn& Get(std::string_view collection, std::string_view key);
  Txn& Put(std::string_view collection, std::string_view key, const Document& doc);
  Txn& Insert(std::string_view collection, std::string_view key, const Document& doc);
  Txn& Replace(std::string_view collection, std::string_view key, const Document& doc);
  Txn& PutRaw(std::string_view collection, std::string_view key, std::string_view bytes);
  Txn& Delete(std::string_view collection, std::string_view key);
  // One page of a scan or query (continuation: from a previous page's OpResult).
  Txn& Scan(std::string_view collection, const ScanOptions& o, std::string_view continuation = "");
  Txn& Query(std::string_view collection, std::string_view index, const QueryOptions& o,
             std::string_view continuation = "");
  Txn& Count(std::string_view collection, const ScanOptions& o = {});
  Txn& CountQuery(std::string_view collection, std::string_view index, const QueryOptions& o);

  Txn& IfAbsent(std::string_view collection, std::string_view key);
  Txn& IfPresent(std::string_view collection, std::string_view key);
  Txn& IfVersion(std::string_view collection, std::string_view key, uint64_t version);

  // The synchronous acknowledgement (protocol 5; docs/replication.md): the server answers
  // this write only once `n` replicas have applied it, or after `timeout` (0: the server's
  // default, 5 s); TxnResult::replica_timeout then says so. Either way the write is
  // durable on the primary: a timeout is not a failure to retry.
  Txn& WaitForReplicas(uint8_t n, std::chrono::milliseconds timeout = {}) {
    replicas_ = n;
    replica_timeout_ = timeout;
    return *this;
  }
  uint8_t replicas() const { return replicas_; }
  std::chrono::milliseconds replica_timeout() const { return replica_timeout_; }

  bool writes() const { return writes_; }
  bool empty() const { return ops_.empty(); }

  struct OpSpec;        // defined in the library
  struct ConditionSpec;
  const std::vector<std::shared_ptr<const OpSpec>>& ops() const { return ops_; }
  const std::vector<std::shared_ptr<const ConditionSpec>>& conditions() const { return conds_; }

 private:
  std::vector<std::shared_ptr<const OpSpec>> ops_;
  std::vector<std::shared_ptr<const ConditionSpec>> conds_;
  bool writes_ = false;
  uint8_t replicas_ = 0;
  std::chrono::milliseconds replica_timeout_{0};
};

struct OpResult {
  bool found = false;     // get: exists; put: existed before; delete: existed
  uint64_t version = 0;   // get: its version; put/delete: the transaction's commit
  std::vector<Record> records;
  uint64_t count = 0;
  std::string continuation;  // more to read when not empty
};

// One page of a scan or query (AsyncScan, AsyncQuery; RecordStream pages inside).
struct RecordPage {
  std::vector<Record> records;  // may be empty while `continuation` is not
  std::string continuation;     // pass it back for the next page; empty: the end
};

struct TxnResult {
  uint64_t commit = 0;  // 0 when nothing was written
  std::vector<OpResult> results;
  // Protocol 5: the commit the transaction's reads saw (the server's last commit when
  // its snapshot was taken; on a replica, how far it had applied). 0 from older servers.
  uint64_t at = 0;
  // A write with Txn::WaitForReplicas: how many replicas had applied it when answered,
  // and whether the wait ended by its timeout (then fewer than asked).
  uint8_t replicas = 0;
  bool replica_timeout = false;
};

struct IndexSpec {
  std::string name;
  std::vector<std::string> fields;
  bool unique = false;
};
struct IndexInfo {
  IndexSpec spec;
  IndexState state = IndexState::kReady;  // IndexStateName: "building", "ready", "failed"
  std::string error;
};
struct CollectionInfo {
  std::string name;
  uint64_t created = 0;
  std::vector<IndexInfo> indexes;
};

// One page of the collection list, in name order; `next`: where the next page starts
// (empty: this was the last). Client::ListCollections gathers every page.
struct CollectionsPage {
  std::vector<CollectionInfo> collections;
  std::string next;
};

struct ServerStats {
  std::vector<std::pair<std::string, uint64_t>> counters;
  struct Latency {
    std::string name;
    uint64_t count = 0;
    double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  };
  std::vector<Latency> latencies;  // microseconds
  Latency batch_sizes;             // transactions per group commit
  uint64_t last_commit = 0, db_used_bytes = 0, db_file_bytes = 0, db_max_bytes = 0;
  std::string ToJson() const;
};

// Client::ListReplicas: a node's role and the followers it serves.
struct ReplicaStatus {
  std::string name;
  std::string address;   // the follower's peer address
  uint64_t applied = 0;  // its last acknowledged commit
  uint64_t lag_commits = 0, lag_ms = 0;
  bool connected = false;
};
struct ReplicasInfo {
  std::string role;      // "primary" or "replica"
  std::string primary;   // a replica: the primary it follows
  std::string error;     // a replica that stopped following: why
  uint64_t last_commit = 0, epoch = 0;
  std::vector<ReplicaStatus> replicas;
};

// Users, roles and permissions (protocol 6; docs/security.md).

// A permission that a role grants. On collections: "read", "write" or "admin" (indexes,
// create, drop) on `collection`, a name or a prefix followed by '*' ("*": every
// collection). Server-wide, with `collection` empty: "users", "backup", "replication",
// "stats", "verify".
struct Grant {
  std::string permission;
  std::string collection = {};
  bool operator==(const Grant&) const = default;
};

// Client::ListUsers: a user, its roles, and the PBKDF2 iterations of its credentials
// (never the credentials themselves).
struct UserInfo {
  std::string name;
  std::vector<std::string> roles;
  uint32_t iterations = 0;
};

// Client::ListRoles: a role and what it grants. Built-in roles (admin, readwrite,
// readonly, replication) cannot be changed or dropped.
struct RoleInfo {
  std::string name;
  bool builtin = false;
  std::vector<Grant> grants;
};

// What Client::Verify found: every index entry checked against its record and back,
// unique indexes, documents, the change log.
struct VerifyResult {
  bool ok() const { return problems.empty(); }
  std::vector<std::string> problems;  // human-readable; at most a few hundred
  uint64_t records = 0, index_entries = 0, log_entries = 0;
};

}  // namespace cairn::client
