// The record engine: collections of records in one LMDB environment, with
// secondary indexes maintained in the same transaction as their records, a
// change log, and group commit. No networking: the server sits on top.
//
// An Engine is safe to share between threads. Read transactions run
// concurrently from any number of threads; write transactions are serialized
// (LMDB has one writer) and group-commit: concurrent Execute calls, like the
// transactions of one ExecuteBatch, share one LMDB commit and one fsync.
//
// On-disk layout and formats: docs/storage.md.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/options.h"
#include "cairn/engine/status.h"
#include "cairn/engine/types.h"

struct MDB_txn;

namespace cairn {

namespace internal {
struct Catalog;
}

class ReadTxn;
class SnapshotCopy;
struct VerifyReport;

class Engine {
 public:
  // Opens the database in folder `dir`, creating the folder and the database if missing.
  // Refuses (kBadRequest) a folder that holds other files but no cairn database, a database
  // of an incompatible format, (kCorrupted) a data file shorter than its meta page says,
  // and (kUnavailable) a database another Engine of this process has open, or, unless
  // `options.read_only`, another process has open for writing. A read-only Engine may
  // share the database with one writer and any number of readers in other processes.
  static Result<std::unique_ptr<Engine>> Open(const std::string& dir, const Options& options);

  // Waits for background work to reach a safe point, flushes (kNoSync), closes LMDB.
  // REQUIRES: no ReadTxn or SnapshotCopy of this engine is alive, no call is running.
  ~Engine();

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // --- Catalog. Each call is one commit of its own (and one change-log entry).
  Status CreateCollection(std::string_view name);
  // A collection for the server's own records (cairnd keeps users and roles in `$users`
  // and `$roles`): the name is '$' followed by a valid collection name, which
  // CreateCollection refuses, so no client can create, and a server that refuses requests
  // naming '$' keeps them out of every client's reach. Otherwise an ordinary collection:
  // its records are written in transactions, logged, replicated, backed up and digested.
  // Ok if it exists already.
  Status CreateSystemCollection(std::string_view name);
  // Removes the collection at once; its records are reclaimed in the background.
  Status DropCollection(std::string_view name);
  std::vector<CollectionInfo> ListCollections() const;
  Result<CollectionInfo> DescribeCollection(std::string_view name) const;
  // On an empty collection the index is ready at once; otherwise it is kBuilding and the
  // background thread fills it in batches (writes continue meanwhile), then marks it ready.
  // A build interrupted by a restart resumes where it stopped.
  Status CreateIndex(std::string_view collection, const IndexSpec& spec);
  Status DropIndex(std::string_view collection, std::string_view index);

  // --- Transactions.
  // Runs one transaction. Read-only transactions run in an LMDB read transaction,
  // concurrently with everything. Writes from concurrent callers group-commit: a call
  // made while another commits waits, then commits together with every call that queued
  // meanwhile (up to Options::max_group_commit), in one LMDB commit and one fsync, each
  // succeeding or failing alone as in ExecuteBatch; a call made while nothing commits
  // commits at once on the caller's thread. Commit numbers follow the order of arrival.
  TxnResult Execute(const Transaction& txn);

  // --- Asynchronous writes (cairnd's path: its IO threads must not wait for a commit).
  // Queues a write transaction, to group-commit with every other queued write and Execute
  // call, in the order submitted. `txn` must stay alive until `done` runs. `done` gets the
  // result on the thread that commits (the engine's writer thread, started by the first
  // Submit, or an Execute caller leading the group), once the commit is as durable as
  // Options::durability makes it; it must not block and must not throw. A write it makes
  // runs at once, within the turn (so it must not wait for another thread's write). An
  // empty `done` is allowed (nothing is told). After StopWrites, `done` runs at once, on
  // the caller's thread, with kUnavailable.
  using WriteDone = std::function<void(TxnResult)>;
  void Submit(const Transaction& txn, WriteDone done);
  // A catalog change (calls of this engine's catalog functions), run alone in the queue's
  // order, between the transactions submitted before and after it. `done` gets its
  // status and, if ok, the last commit after it.
  using CatalogChange = std::function<Status(Engine&)>;
  void SubmitCatalog(CatalogChange change, WriteDone done);
  // Later writes (Submit, and Execute of a write) get kUnavailable, answered at once on
  // the caller's thread (so possibly before that caller's earlier writes still queued);
  // returns once every write queued before has been answered, and the writer thread has
  // stopped. Called by the destructor. Called from a callback or the listener, it only
  // refuses later writes (the destructor, which must not run there, waits).
  void StopWrites();
  // What the commit listener hears after each group of queued writes ran, whether or not
  // it committed, before their results are handed out.
  struct GroupCommitted {
    size_t transactions;      // 0 for a catalog change
    std::string_view failure;  // what an exception said, if the group threw (its writes
                               // are answered kInternal, "may or may not have been applied")
  };
  // Runs on the committing thread; must not block, and must not throw (an exception is
  // ignored). A write it makes runs at once, within the turn. Set it before the first
  // write.
  void SetCommitListener(std::function<void(const GroupCommitted&)> listener);

  // Checks every document the transaction puts (CheckDocument in document.h) as Execute
  // would, and fails as Execute would ("operation 2 (insert): document is ..."); values over
  // the size limit are left to Execute, which refuses them. Costs time linear in the
  // documents' size; thread-safe, touches no storage. Lets a caller check documents on its
  // own thread and set Transaction::documents_checked.
  Status CheckDocuments(const Transaction& txn) const;

  // Group commit: runs the transactions in order in one write transaction and commits
  // once. A transaction that fails leaves nothing behind and fails alone; the others
  // commit, each with its own commit number, in the order given.
  std::vector<TxnResult> ExecuteBatch(std::span<const Transaction* const> txns);

  // Starts a read transaction (a consistent snapshot). Its views stay valid until it ends.
  Result<ReadTxn> BeginRead() const;

  // --- Change log.
  // Appends to `out` the entries for commits >= `from`, in order, stopping after
  // `max_entries` entries or once `max_bytes` of changes have been read (at least one entry
  // is returned if any exists). kLogTruncated if `from` is older than the oldest entry kept.
  Status ReadLog(uint64_t from, size_t max_entries, size_t max_bytes,
                 std::vector<LogEntry>* out) const;

  // The stored form of the same entries (each with its checksum: docs/storage.md,
  // "Change log"), as a replica receives and stores them. Same limits and errors.
  Status ReadRawLog(uint64_t from, size_t max_entries, size_t max_bytes,
                    std::vector<RawLogEntry>* out) const;

  // The number of the last commit (0 for a new database).
  uint64_t LastCommit() const;

  // --- Replication and backups (docs/storage.md, "Backups" and "Replication").

  // Starts a hot, consistent, compacted copy of the database (LMDB's compacting copy of
  // one read snapshot) on a thread of its own, and returns once the snapshot is taken:
  // SnapshotCopy::commit() is the last commit it holds. Read the copy's bytes from
  // SnapshotCopy::fd() until end of file; writes go on meanwhile (they wait only while
  // the snapshot is being taken, well under a millisecond). kBadRequest on a read-only
  // engine, which cannot hold other processes' writers back.
  Result<std::unique_ptr<SnapshotCopy>> StartSnapshot() const;

  // A digest (XXH3-64) of the catalog, every record and every entry of the ready indexes,
  // as of one read snapshot, independent of how the data is laid out in LMDB: two
  // databases at the same commit have the same digest exactly when they hold the same
  // data. Reads the whole database (docs/storage.md, "Digest").
  Result<DatabaseDigest> Digest() const;

  // A replica's write path: applies the stored entries of consecutive commits starting at
  // LastCommit() + 1 in one LMDB transaction (one fsync), exactly as the primary made
  // them: records, indexes, the catalog, the entries themselves (so the replica's log is
  // the primary's, idempotency keys included) and the last commit, all or nothing. So a
  // replica killed at any moment resumes at LastCommit() + 1: nothing skipped, nothing
  // applied twice. kBadRequest if the commits are not the next ones; kCorrupted if an
  // entry fails its checksum or cannot be applied (the replica no longer holds what its
  // primary did: bootstrap again); kDatabaseFull as for other writes. Only on an engine
  // opened with Options::replica and not promoted since (kBadRequest on a primary's);
  // other writes on such an engine get kReadOnly.
  Status ApplyLog(std::span<const RawLogEntry> entries);

  // The history of this database: the epochs of its primaries, oldest first (a new
  // database starts epoch 1 at commit 1). Stored with the data, so snapshots, backups and
  // replicas carry it.
  std::vector<EpochStart> History() const;
  // The epoch that made commit `commit` in this history (the last epoch for a commit not
  // made yet).
  static EpochStart EpochOf(const std::vector<EpochStart>& history, uint64_t commit);
  // Whether a database at `commit` with history `mine` can follow one with history
  // `theirs`: its last commit was made by the same epoch there, and `theirs` has it.
  static bool OnHistory(const std::vector<EpochStart>& mine, uint64_t commit,
                        const std::vector<EpochStart>& theirs, uint64_t their_last);
  // A replica takes its primary's history (which extends its own): kDiverged if its last
  // commit was made by another epoch there, kBadRequest if `theirs` is malformed or this
  // is a primary's database.
  Status AdoptHistory(const std::vector<EpochStart>& theirs);
  // Starts a new epoch (the highest epoch heard of + 1, with a random id) whose first
  // commit is LastCommit() + 1, and clears any fence: this database becomes a primary's.
  Result<EpochStart> StartEpoch();
  // Records that epoch `epoch` exists elsewhere: if it is higher than this database's
  // last epoch, every later write gets kReadOnly (a fenced old primary) until StartEpoch.
  Status Fence(uint64_t epoch);
  uint64_t HighestEpochSeen() const;

  // Keeps change-log entries from `commit` on (a replica still needs them), within
  // Options::replica_log_keep and replica_log_keep_bytes: past either, the hold is
  // ignored. 0 lets go. Thread-safe.
  void HoldLog(uint64_t commit);

  EngineStats Stats() const;

  // Flushes to disk now (useful with kNoSync).
  Status Sync();

  // Blocks until no index is building and no dropped data awaits cleanup.
  void WaitForBackgroundWork();

  // Checks every record's checksum, every index entry against its record and back,
  // unique indexes for duplicates, every document's encoding, and the change log's order
  // and checksums.
  // `progress`, if set, is called with the name of each part as the check begins it
  // ("catalog", "records", "index entries", "change log"), so that a caller watching
  // from outside can tell where a check that died on a damaged file was.
  //
  // Reading a structurally damaged file (a zeroed page, flipped page numbers) can make
  // LMDB abort or the process die of SIGBUS: run this in a process of its own when the
  // file is in doubt (cairnd does; docs/storage.md, "Damaged files").
  using VerifyProgress = std::function<void(std::string_view part)>;
  VerifyReport Verify(const VerifyProgress& progress = {}) const;

  const Options& options() const;
  const std::string& dir() const;

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A snapshot being copied (Engine::StartSnapshot). Destroying it stops the copy (closes
// the pipe, so the copying thread's next write fails, and joins it): it never waits for
// a reader.
class SnapshotCopy {
 public:
  virtual ~SnapshotCopy() = default;
  virtual uint64_t commit() const = 0;
  virtual const std::vector<EpochStart>& history() const = 0;
  // The read end of a pipe the copy is written to: read until end of file. -1 after
  // Finish.
  virtual int fd() const = 0;
  // After end of file: whether the copy completed (closes the pipe and joins the copying
  // thread). Only an ok Finish makes the bytes read a whole database. Called before the
  // end, it stops the copy and reports it incomplete.
  virtual Status Finish() = 0;
};

struct VerifyReport {
  bool ok() const { return problems.empty(); }
  std::vector<std::string> problems;  // human-readable, at most a few hundred
  uint64_t records = 0;
  uint64_t index_entries = 0;
  uint64_t log_entries = 0;
};

// A consistent read-only snapshot. Move-only; not safe to share between threads
// (use one per thread). Views it returns die with it.
class ReadTxn {
 public:
  ReadTxn(ReadTxn&&) noexcept;
  ReadTxn& operator=(ReadTxn&&) noexcept;
  ~ReadTxn();

  // Sets *found and, when found, *out. kNotFound if the collection does not exist;
  // kCorrupted if the record fails its checksum (then *out is not set). Scan and Query
  // stop with kCorrupted at the first damaged record (docs/storage.md).
  Status Get(std::string_view collection, std::string_view key, RecordView* out, bool* found);

  // Calls `visit` for each record in range, in order. Sets *continuation to a token for
  // the next page when a limit or byte budget stopped the scan early, else clears it.
  // REQUIRES: `continuation` is not the string spec.continuation views.
  using Visitor = std::function<void(const RecordView&)>;
  Status Scan(const ScanSpec& spec, const Visitor& visit, std::string* continuation);
  Status Query(const QuerySpec& spec, const Visitor& visit, std::string* continuation);
  Result<uint64_t> Count(const std::variant<ScanSpec, QuerySpec>& range);

  // Runs a read-only transaction (conditions and reads) on this snapshot. A transaction
  // with a write fails with kReadOnly and changes nothing.
  TxnResult Execute(const Transaction& txn);

  // The last commit visible in this snapshot.
  uint64_t commit() const;

  // The content digest of this snapshot (Engine::Digest): of the database at commit().
  Result<DatabaseDigest> Digest();

 private:
  friend class Engine;
  ReadTxn(const Engine::Impl* engine, MDB_txn* txn,
          std::shared_ptr<const internal::Catalog> catalog);
  void Release();

  const Engine::Impl* engine_ = nullptr;
  MDB_txn* txn_ = nullptr;  // owned: returned to the engine's pool when this ends
  std::shared_ptr<const internal::Catalog> catalog_;
};

}  // namespace cairn
