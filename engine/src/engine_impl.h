// Internals of the engine shared by its source files.
#pragma once

#include <lmdb.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cairn/engine/engine.h"
#include "catalog.h"
#include "changelog.h"
#include "idempotency.h"
#include "merged.h"
#include "space.h"

namespace cairn::internal {

// A lock for critical sections of a few instructions taken on every read (the read-txn
// pool, the catalog pointer): an uncontended lock and unlock are one atomic exchange and
// one store, where a pthread mutex costs about fifty instructions a pair, a sixth of what
// a point get adds to LMDB's own work. A waiter spins briefly, then yields. Nothing that
// can block or take long (allocation included) may run under it.
class SpinLock {
 public:
  void lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); spins++) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins++ >= 64) std::this_thread::yield();
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// --- LMDB glue. LMDB return codes become Status in exactly one place: MdbStatus.
inline MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}
Status MdbStatus(int rc, std::string_view what);

// An LMDB cursor, closed when it goes.
class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &c_); }
  ~Cursor() {
    if (c_) mdb_cursor_close(c_);
  }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  int open_rc() const { return rc_; }
  // Positions with `op`; returns LMDB's code (0, MDB_NOTFOUND or an error).
  int Get(MDB_cursor_op op) { return mdb_cursor_get(c_, &k_, &v_, op); }
  int Seek(MDB_cursor_op op, std::string_view key) {
    k_ = Val(key);
    return mdb_cursor_get(c_, &k_, &v_, op);
  }
  int SeekBoth(MDB_cursor_op op, std::string_view key, std::string_view data) {
    k_ = Val(key);
    v_ = Val(data);
    return mdb_cursor_get(c_, &k_, &v_, op);
  }
  std::string_view key() const { return View(k_); }
  std::string_view value() const { return View(v_); }
  MDB_cursor* get() { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
  MDB_val k_{}, v_{};
  int rc_ = 0;
};

// Aborts an LMDB write transaction unless committed.
class WriteTxn {
 public:
  ~WriteTxn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  int Begin(MDB_env* env, MDB_txn* parent = nullptr) {
    return mdb_txn_begin(env, parent, 0, &txn_);
  }
  int Commit() {
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    return rc;
  }
  void Abort() {
    mdb_txn_abort(txn_);
    txn_ = nullptr;
  }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
};

// The LMDB databases of an environment (docs/storage.md).
struct Dbs {
  MDB_dbi meta = 0;     // catalog and counters
  MDB_dbi records = 0;  // [collection id: u32 BE][primary key] -> record value
  MDB_dbi index = 0;    // DUPSORT: [index id: u32 BE][encoded values] -> primary key
  MDB_dbi log = 0;      // [commit: u64 BE] -> change-log entry (with idempotency keys)
};

// --- Records (docs/storage.md, "Records"). The stored value, since format 3:
//   [version: u64 LE][kind: u8 | kChecksummed][payload][checksum: u64 LE]
// checksum = XXH3-64 of [version][kind][payload], seeded with the XXH3-64 of the record's
// key in the records database ([collection id][primary key]): a changed byte of the key,
// version, kind or payload fails it. Formats 1 and 2 stored [version][kind][payload]; such
// records are read until the background upgrade rewrites them (Catalog::checksum_upgrade).
inline constexpr size_t kRecordHeader = 9;
inline constexpr size_t kRecordTrailer = 8;
inline constexpr uint8_t kChecksummed = 0x80;  // set in the kind byte of format 3 records
inline constexpr size_t StoredRecordSize(size_t value_size) {
  return kRecordHeader + value_size + kRecordTrailer;
}
// Writes a format 3 record, StoredRecordSize(value.size()) bytes, to `out`.
void EncodeRecord(std::string_view record_key, uint64_t version, ValueKind kind,
                  std::string_view value, char* out);
inline bool HasChecksum(std::string_view stored) {
  return stored.size() > 8 && (uint8_t(stored[8]) & kChecksummed) != 0;
}

// A record's key in the records database, built on the stack.
class RecordKey {
 public:
  RecordKey(uint32_t collection_id, std::string_view key);
  MDB_val val() { return MDB_val{size_, buf_}; }
  std::string_view view() const { return std::string_view(buf_, size_); }

 private:
  char buf_[4 + kMaxKeySize];
  size_t size_;
};

// Parses and checks the record stored under `record_key` ([collection id][primary key]).
// False if it is damaged: malformed, failing its checksum, or without one where `catalog`
// says every record has one. *out (views into `record_key` and `stored`) is set only on
// success.
bool DecodeRecord(const Catalog& catalog, std::string_view record_key, std::string_view stored,
                  RecordView* out);

// A printable rendering of a key or name for messages: bytes outside printable ASCII, and
// backslashes, as \xNN; at most `max_bytes` of it, then "...".
std::string Printable(std::string_view key, size_t max_bytes = 64);

// --- Index entries. An entry's key is [index id][encoded values], or when that would pass
// LMDB's key cap, [index id][first kIndexPrefixKept bytes of the encoding][XXH3 of the whole
// encoding], exactly kMaxIndexKey bytes long. Such truncated entries are checked against
// their record wherever the full value matters.
inline constexpr size_t kMaxIndexKey = 511;
inline constexpr size_t kIndexPrefixKept = kMaxIndexKey - 4 - 8;  // of the encoding
inline constexpr size_t kIndexComparable = 4 + kIndexPrefixKept;  // leading bytes that order
void MakeIndexKey(uint32_t index_id, std::string_view encoded, std::string* out);
inline bool IsTruncatedIndexKey(std::string_view key) { return key.size() == kMaxIndexKey; }

// Room a catalog change that creates something may take (a few pages of meta and log).
inline constexpr uint64_t kCatalogNeed = uint64_t{32} << 10;

// Everything an operation needs to run inside one LMDB transaction.
struct Ctx {
  MDB_txn* txn = nullptr;
  const Dbs* dbs = nullptr;
  const Catalog* catalog = nullptr;
  const Options* options = nullptr;
  // Write transactions only:
  uint64_t commit = 0;               // the number this transaction commits as
  LogEntryBuilder* log = nullptr;    // its change-log entry
  // A replica applying its primary's log (Engine::ApplyLog): writes store what the
  // primary accepted, so the checks that are the primary's to make (unique indexes, the
  // value size limit) are skipped. See docs/storage.md, "Applying the log".
  bool replay = false;
  // Counts reads that met damaged data and answered kCorrupted (EngineStats).
  std::atomic<uint64_t>* corrupted = nullptr;
  // Commits not yet in LMDB, newest first, that reads see over `txn` (merged.h); each
  // table's overlay id is its MDB_dbi.
  std::span<const OverlayAt> overlays;
  // Where the writes of records and index entries go (PutRecord, DeleteRecord,
  // UpdateIndexes): when set, into this overlay at `commit`, and `overlays` must begin
  // with it read at `commit`, so that a transaction reads its own writes; when null,
  // straight into `txn` (ApplyLog), and `overlays` must be empty. ExecuteBatch writes a
  // group into one overlay, takes a failed transaction's writes back (Overlay::Undo) and
  // applies the rest to LMDB before it commits.
  Overlay* writes = nullptr;
};

// The kCorrupted answer for a damaged record (counted in ctx.corrupted): names the
// collection and the key as stored, never the stored bytes.
Status DamagedRecord(const Ctx& ctx, const CollectionDesc& c, std::string_view key);

Status FindCollection(const Ctx& ctx, std::string_view name, const CollectionDesc** out);
Status GetRecord(const Ctx& ctx, const CollectionDesc& c, std::string_view key, RecordView* out,
                 bool* found);
Status ScanRecords(const Ctx& ctx, const ScanSpec& spec, const ReadTxn::Visitor& visit,
                   std::string* continuation, uint64_t* count_only);
Status QueryIndex(const Ctx& ctx, const QuerySpec& spec, const ReadTxn::Visitor& visit,
                  std::string* continuation, uint64_t* count_only);
// Engine::CheckDocuments.
Status CheckTransactionDocuments(const Transaction& txn, size_t max_value_size);
// Runs a transaction's conditions and operations; fills `result->results` on success.
Status RunTransaction(const Ctx& ctx, const Transaction& txn, TxnResult* result);
// One put or delete, as a transaction's operation runs it (logged into ctx.log).
Status PutRecord(const Ctx& ctx, const PutOp& op, bool document_checked, OpResult* r);
Status DeleteRecord(const Ctx& ctx, const DeleteOp& op, OpResult* r);

// Index maintenance for one record write: old and new values (nullptr if absent).
Status UpdateIndexes(const Ctx& ctx, const CollectionDesc& c, std::string_view key,
                     const RecordView* old_record, ValueKind new_kind, std::string_view new_value);
// Whether another record than `key` holds `encoded` in unique index `ix`; sets *holder.
Status FindUniqueHolder(const Ctx& ctx, const CollectionDesc& c, const IndexDesc& ix,
                        std::string_view index_key, std::string_view encoded,
                        std::string_view key, std::string* holder);

// Reads the catalog as stored in the meta database.
Status LoadCatalog(MDB_txn* txn, MDB_dbi meta, Catalog* catalog);

// The content digest of what `txn` sees (digest.cc; docs/storage.md, "Digest"). Damaged
// records answer kCorrupted (counted in *corrupted).
Status DigestIn(MDB_txn* txn, const Dbs& dbs, std::atomic<uint64_t>* corrupted,
                DatabaseDigest* out);

// A database's history as stored in the meta database (kMetaHistory), and back.
std::string EncodeHistory(const std::vector<EpochStart>& history);
bool DecodeHistory(std::string_view stored, std::vector<EpochStart>* history);

// The last commit number visible in `txn`: the change log's last key (0: none yet).
uint64_t LastCommitIn(MDB_txn* txn, const Dbs& dbs);

// Reads a key from the meta database as a u64; 0 if absent.
uint64_t ReadMetaU64(MDB_txn* txn, MDB_dbi meta, std::string_view key);

}  // namespace cairn::internal

namespace cairn {

class Engine::Impl {
 public:
  Impl(std::string dir, Options options) : dir_(std::move(dir)), options_(std::move(options)) {
    read_pool_.reserve(kReadPoolSize);
  }
  ~Impl();

  Status Open();

  // Catalog changes: `fn` edits `next` (a copy of the catalog) and writes meta records in
  // `txn`, logging into `log`. Committed as one commit; `next` published on success.
  using CatalogEdit = std::function<Status(MDB_txn* txn, internal::Catalog& next,
                                           internal::LogEntryBuilder& log)>;
  // `need`: bytes of new pages the change may take; 0 for one that frees space (drops),
  // which may use the reserve.
  Status CommitCatalogChange(const CatalogEdit& fn, uint64_t need);
  uint32_t AllocateId(MDB_txn* txn);
  // The catalog changes themselves, in `txn` and on `next`: shared by the catalog calls
  // and ApplyLog, so that a replica changes its catalog exactly as its primary did.
  // `commit`: the commit that makes the change.
  Status CreateCollectionIn(MDB_txn* txn, internal::Catalog& next, std::string_view name,
                            uint64_t commit);
  Status DropCollectionIn(MDB_txn* txn, internal::Catalog& next, std::string_view name);
  Status CreateIndexIn(MDB_txn* txn, internal::Catalog& next, std::string_view collection,
                       const IndexSpec& spec);
  Status DropIndexIn(MDB_txn* txn, internal::Catalog& next, std::string_view collection,
                     std::string_view index);

  std::vector<TxnResult> ExecuteBatch(std::span<const Transaction* const> txns);
  // One LMDB commit of `txns` (ExecuteBatch's; REQUIRES: write_mu_ held), their results
  // into results[0..n). `refused`: empty, or for each transaction what admission said.
  // Sets *split, leaving the results to be made anew, when a storage error voided the
  // group's LMDB transaction and it holds more than one transaction.
  void CommitGroup(std::span<const Transaction* const> txns, std::span<const Status> refused,
                   TxnResult* results, bool* split);

  // Engine::Execute's write path: group commit of concurrent callers, as leveldb's
  // DBImpl::Write does it. Each caller queues; the one at the front leads: it takes the
  // queue (up to Options::max_group_commit), runs it as one ExecuteBatch on its own
  // thread, hands each caller its result and wakes the next front. A caller that finds
  // the queue empty commits at once, on its own thread, with no hand-off.
  //
  // Submit and SubmitCatalog queue writes that no caller waits for; when one of those is
  // at the front and nobody leads, the engine's writer thread leads, until the queue is
  // empty. A caller of Execute leads until its own write's group is done, then hands
  // over to the new front. Writes made from inside a turn (a catalog change, a callback,
  // the listener) run at once as part of it (a thread-local marks the leading thread).
  struct QueuedWrite;
  TxnResult ExecuteQueued(const Transaction& txn);
  void Enqueue(std::unique_ptr<QueuedWrite> write);
  // REQUIRES: lock holds queue_mu_, leading_ set by this thread. `mine`: the caller's own
  // write, led until its group is done (nullptr on the writer thread, which leads until
  // the queue is empty). Clears leading_ and wakes the next leader however it ends.
  void Lead(std::unique_lock<std::mutex>& lock, QueuedWrite* mine);
  // Runs one group (consecutive transactions, or one catalog change): their results.
  // Sets *failure to what an exception said, if one was thrown.
  std::vector<TxnResult> RunGroup(const std::vector<QueuedWrite*>& group, std::string* failure);
  void WriterThread();
  Engine* self_ = nullptr;  // the Engine this is the Impl of (catalog changes take it)
  std::function<void(const Engine::GroupCommitted&)> commit_listener_;
  std::mutex queue_mu_;
  std::deque<QueuedWrite*> queue_;      // guarded by queue_mu_; the front leads
  bool leading_ = false;                // guarded by queue_mu_: some thread leads a turn
  bool writes_stopped_ = false;         // guarded by queue_mu_
  // The writer thread's: an unled submitted write at the front, or a stop; also what
  // StopWrites waits on for the queue to drain.
  std::condition_variable writer_cv_;
  std::thread writer_;                  // started by the first Submit

  std::shared_ptr<const internal::Catalog> catalog() const {
    std::lock_guard lock(catalog_mu_);
    return catalog_;
  }
  void PublishCatalog(std::shared_ptr<const internal::Catalog> c) {
    {
      std::lock_guard lock(catalog_mu_);
      catalog_.swap(c);
    }
    // `c` now holds the old catalog; if it was the last reference, it is freed here,
    // outside the lock.
  }

  // Read transactions, pooled: reset when released, renewed when taken again.
  Status AcquireReadTxn(MDB_txn** txn) const;
  void ReleaseReadTxn(MDB_txn* txn) const;

  internal::Ctx ReadCtx(MDB_txn* txn, const internal::Catalog* catalog) const {
    internal::Ctx ctx;
    ctx.txn = txn;
    ctx.dbs = &dbs_;
    ctx.catalog = catalog;
    ctx.options = &options_;
    ctx.corrupted = &corrupted_reads_;
    return ctx;
  }

  // Calls `fn(commit, stored entry)` for the change-log entries from `from` on, within the
  // limits of Engine::ReadLog, in one read transaction.
  using LogVisitor = std::function<Status(uint64_t commit, std::string_view stored)>;
  Status VisitLog(uint64_t from, size_t max_entries, size_t max_bytes,
                  const LogVisitor& fn) const;
  Status ReadLog(uint64_t from, size_t max_entries, size_t max_bytes,
                 std::vector<LogEntry>* out) const;
  EngineStats Stats() const;
  VerifyReport Verify(const VerifyProgress& progress) const;

  // --- Replication (replication.cc).

  // Why writes other than ApplyLog are refused (kReadOnly), or ok: a replica's database,
  // or a fenced one (a newer epoch exists). REQUIRES: write_mu_ held.
  Status WriteRefusal() const;
  // Answers a batch refused as a whole: each transaction that writes gets `why`; the
  // read-only ones run on a read snapshot.
  std::vector<TxnResult> RefuseWrites(std::span<const Transaction* const> txns,
                                      const Status& why) const;
  Status ApplyLog(std::span<const RawLogEntry> entries);
  // At open: the history and the fence from the meta database; a database without a
  // history (made before there were any) is given one, epoch 1 from commit 1.
  Status LoadHistory(MDB_txn* txn);
  // Writes meta records in a write transaction of their own that makes no commit (the
  // history and the fence are this node's, not data: docs/storage.md, "Replication").
  // Durable when it returns, whatever Options::durability. REQUIRES: write_mu_ held.
  Status WriteNodeMeta(const std::vector<std::pair<std::string_view, std::string>>& puts);
  // At a writer's open, after LoadHistory: this folder's node id (made on first use), and
  // if the history's last epoch was started by another node (the data is a copy: a
  // restored backup, a replica's bootstrap, a copied data.mdb) and this engine is not a
  // replica's, a new epoch of this node's own, so that its writes can never pass for the
  // other node's (docs/storage.md, "Copies start an epoch of their own").
  Status ClaimEpoch();
  std::string node_id_;      // set at a writer's open
  std::string stored_owner_;  // meta #epoch_owner as the open found it
  bool copy_started_epoch_ = false;  // ClaimEpoch started one at this open
  // Sets history_ and the fence flag. REQUIRES: write_mu_ held, or the open.
  void SetHistory(std::vector<EpochStart> history);
  std::vector<EpochStart> History() const;
  Status AdoptHistory(const std::vector<EpochStart>& theirs);
  Result<EpochStart> StartEpoch();
  Status Fence(uint64_t epoch);
  uint64_t HighestEpochSeen() const;

  // Trims the change log in `txn`, a write transaction that appended `written` entries of
  // `appended` bytes up to commit `last`: up to 2 × written + 8 entries (more, up to 16
  // times that, while the trimmed bytes are short of twice the appended ones) of those
  // older than log_retention commits, or than the hold (HoldLog) while the hold is within
  // replica_log_keep and replica_log_keep_bytes. Sets *first to the oldest commit left
  // and *trimmed to the bytes removed; the caller applies both once `txn` commits.
  Status TrimLog(MDB_txn* txn, uint64_t last, size_t written, uint64_t appended,
                 uint64_t* first, uint64_t* trimmed);
  // After a commit that appended `appended` bytes of entries and trimmed `trimmed`.
  void CountLogBytes(uint64_t appended, uint64_t trimmed) {
    uint64_t bytes = log_bytes_.load(std::memory_order_relaxed) + appended;
    log_bytes_.store(bytes - std::min(trimmed, bytes), std::memory_order_relaxed);
  }

  // Background work (background.cc).
  void StartBackground();
  void StopBackground();
  void WakeBackground();
  void WaitForBackgroundWork();
  bool BuildIndexBatch();  // true if it did work
  bool CleanupBatch();     // true if it did work (or should try again at once)
  bool ShrinkCleanup(int rc);  // after a failed cleanup batch: whether to retry, smaller
  bool UpgradeBatch();     // true if it did work: adds checksums to format 2 records

  // The Status of `rc` from a commit or flush (`what`). Latches a fatal storage error
  // (an I/O error on a disk with space, MDB_PANIC, MDB_CORRUPTED): every later write
  // reports it. No space is not latched: it goes away when space is freed.
  Status CommitStatus(int rc, std::string_view what);
  // What every write gets once a fatal error `rc` was latched: what happened, what to check.
  Status FatalStatus(int rc) const;

  const std::string dir_;
  const Options options_;
  MDB_env* env_ = nullptr;
  internal::Dbs dbs_;
  int lock_fd_ = -1;                                   // cairn.lock, writers only
  // lock.mdb, opened to allocate it (writers only) and kept open until LMDB has closed
  // it: closing any descriptor of a file drops every fcntl lock the process holds on it,
  // and LMDB's lock on lock.mdb is how other processes tell that this one is alive.
  int reader_table_fd_ = -1;
  std::optional<std::pair<dev_t, ino_t>> folder_id_;  // while registered in OpenFolders

  // Guarded by write_mu_: the write path (one writer at a time).
  std::mutex write_mu_;
  uint32_t next_id_ = 1;
  internal::LogEntryBuilder log_builder_;
  internal::IdempotencyIndex idempotency_;  // keys of recent commits -> their commits
  std::atomic<uint64_t> idempotency_keys_{0};  // idempotency_.size(), for Stats()
  // The time stamped on the last log entry. Stamps never go back, even when the wall
  // clock does, so that the log is in time order and retention by time can stop at the
  // first entry that is too old.
  uint64_t last_stamp_ms_ = 0;
  uint64_t NextStamp();
  // Keys stamped before this are past Options::idempotency_retention.
  uint64_t IdempotencyHorizon();
  std::string remembered_;  // a keyed transaction's result, encoded for its log entry
  std::vector<uint32_t> batch_key_slots_;  // ExecuteBatch's table of the batch's keys
  std::string group_log_;                  // CommitGroup's change-log entries, end to end
  std::vector<size_t> group_entries_;      // and their sizes, by commit from last_commit_ + 1
  // Forgets idempotency keys past their retention, the key cap, or the log (first commit
  // still in it).
  void TrimIdempotency(uint64_t first_commit);

  // The remembered result of the transaction that carried `key` before, if any: looked
  // up through idempotency_ and read from its change-log entry in `txn`.
  Status FindRemembered(MDB_txn* txn, std::string_view key, uint64_t hash, bool* found,
                        TxnResult* result) const;
  // Fills idempotency_ from the change log (at open).
  Status LoadIdempotency(MDB_txn* txn);

  std::atomic<uint64_t> log_first_{0};  // oldest commit in the log, 0 if empty; written under write_mu_
  std::atomic<uint64_t> last_commit_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> group_commits_{0};
  std::atomic<uint64_t> replays_{0};
  std::atomic<uint64_t> stale_readers_cleared_{0};
  mutable std::atomic<uint64_t> corrupted_reads_{0};
  std::atomic<int> fatal_rc_{0};
  internal::SpaceReserve space_;  // guarded by write_mu_
  std::atomic<uint64_t> full_refusals_{0};  // writes refused to keep the reserve
  uint32_t cleanup_batch_ = 0;    // background thread only: shrinks while cleanup finds no room

  // Replication state (replication.cc). Whether this Engine follows a primary: from
  // Options::replica, cleared by StartEpoch (Options are const).
  std::atomic<bool> replica_{false};
  // The history (meta kMetaHistory) and the highest epoch heard of (kMetaFence), written
  // under write_mu_; history_ is read under history_mu_ from any thread.
  mutable std::mutex history_mu_;
  std::vector<EpochStart> history_;
  std::atomic<uint64_t> fence_epoch_{0};  // stored: the highest epoch heard of (0: none)
  std::atomic<bool> fenced_{false};       // fence_epoch_ > the history's last epoch
  std::atomic<uint64_t> log_hold_{0};     // HoldLog
  std::atomic<uint64_t> log_bytes_{0};    // bytes of change-log entries; written under write_mu_
  std::atomic<uint64_t> applied_batches_{0};
  internal::LogEntryBuilder apply_scratch_;  // ApplyLog: the record code logs into it

  mutable internal::SpinLock catalog_mu_;
  std::shared_ptr<const internal::Catalog> catalog_;

  // Pooled read transactions. The vector's capacity is reserved at open (kReadPoolSize),
  // so a push under the spin lock never allocates.
  static constexpr size_t kReadPoolSize = 64;
  mutable internal::SpinLock pool_mu_;
  mutable std::vector<MDB_txn*> read_pool_;

  // Background thread state, guarded by bg_mu_.
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;    // wakes the background thread
  std::condition_variable idle_cv_;  // signalled when background work may have finished
  bool bg_stop_ = false;
  bool bg_wake_ = false;
  bool bg_idle_ = true;
  std::thread bg_thread_;
};

}  // namespace cairn
