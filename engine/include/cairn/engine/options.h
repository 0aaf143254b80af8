// Options for opening an Engine.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace cairn {

struct Transaction;

// When a commit reaches the disk. Never renumber (stored in configs and stats).
enum class Durability : uint8_t {
  kSync = 0,        // fsync data and meta page at every commit: an acknowledged commit survives
                    // power loss. One fsync per group commit, however many transactions it holds.
  kNoMetaSync = 1,  // fsync data, not the meta page: a power loss may undo the last commits but
                    // never corrupts (LMDB's MDB_NOMETASYNC).
  kNoSync = 2,      // no fsync at commit; a background flush every flush_interval. A process crash
                    // loses nothing (the OS has the pages). An operating-system crash or power
                    // loss loses up to one interval, and may damage data.mdb: LMDB's MDB_NOSYNC
                    // keeps the file whole only where the filesystem writes pages in order,
                    // which ext4 and XFS do not promise (lmdb.h). After such a crash, check the
                    // database (cairnd --verify) before serving it. docs/storage.md,
                    // "Durability modes".
};

struct Options {
  // Cap on the database size. The LMDB map is reserved at this size (address space, not disk):
  // the data file grows with the data, and a write past the cap fails with kDatabaseFull,
  // leaving the database intact. Raising it takes effect at the next open.
  uint64_t max_size = uint64_t{64} << 30;

  // Room kept for transactions that free space (deletes, drops, cleanup after drops), so
  // that a database at its cap or on a full disk can still shrink: other writes get
  // kDatabaseFull when they would leave less than this below the cap or on the disk. On
  // the disk the room is real: data.mdb is allocated (fallocate) up to one or two reserves
  // ahead of its data, so other programs filling the disk cannot take it. 0: a 32nd of
  // the cap or of the filesystem, whichever is smaller, between 256 KiB and 64 MiB.
  uint64_t space_reserve = 0;

  Durability durability = Durability::kSync;
  // kNoSync only: how often the background thread flushes to disk.
  std::chrono::milliseconds flush_interval{1000};

  // The change log keeps at least the most recent `log_retention` commits; older entries are
  // trimmed a few at a time by later commits. Replicas further behind must bootstrap again.
  uint64_t log_retention = 1'000'000;
  // Entries a replica still needs (Engine::HoldLog) are kept past log_retention, but never
  // more than this many commits behind the last one, nor (replica_log_keep_bytes, 0: no
  // byte bound) more than this many bytes of entries: a replica further behind bootstraps
  // again, and a dead replica cannot fill the disk.
  uint64_t replica_log_keep = 10'000'000;
  uint64_t replica_log_keep_bytes = uint64_t{4} << 30;

  // A replica's database: writes other than ApplyLog get kReadOnly.
  bool replica = false;

  // Idempotency keys (Transaction::idempotency_key) are remembered at least this long,
  // unless more than idempotency_max_keys arrive in that time: then the oldest go first.
  // They live in their commits' change-log entries, so log_retention bounds them too. A
  // retry that comes later than that may apply its writes again. The engine keeps an
  // index of the remembered keys in memory, two flat arrays of at most about 112 bytes
  // per key (56 just before they double).
  std::chrono::seconds idempotency_retention{600};
  uint64_t idempotency_max_keys = 1'000'000;

  // Concurrent writes (Engine::Execute calls and Engine::Submit) share commits (and
  // fsyncs): at most this many transactions per group commit.
  uint32_t max_group_commit = 1024;

  // For tests of the callers' error handling only: called on the committing thread before
  // each group commit of queued writes, with its transactions. An exception it throws
  // fails the group as an internal error of the write path would (kInternal, "may or
  // may not have been applied"), and the engine goes on.
  std::function<void(std::span<const Transaction* const>)> before_group_commit;

  // Largest value (document or raw bytes) accepted by a write.
  size_t max_value_size = size_t{16} << 20;

  // Concurrent read transactions (LMDB reader slots); more readers get kUnavailable.
  uint32_t max_readers = 1024;

  // Building an index over existing records, and cleaning up after a drop, run in the
  // background in write transactions of this many records, so that other writes proceed
  // between batches.
  uint32_t background_batch = 1000;

  // How often stale reader slots (left by dead processes) are cleared.
  std::chrono::milliseconds reader_check_interval{10'000};

  // Open the database without writing to it: every write gets kReadOnly.
  bool read_only = false;
};

}  // namespace cairn
