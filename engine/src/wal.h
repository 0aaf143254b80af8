// The write-ahead log: numbered records in preallocated segment files, each record with
// its length, its commit number and an XXH3 checksum, appended in batches (one write and
// at most one fdatasync per group commit), read back in order, and recovered after a
// crash by cutting a torn tail at its last whole record. docs/storage.md, "The
// write-ahead log", describes the format in prose.
//
// What a record holds is the caller's (the engine's change-log entries; architecture.md,
// "The write path to come"); the log knows only its type (a nonzero number the caller
// defines) and bytes.
//
// Torn tails and damage. A power loss may persist any subset of the pages written since
// the last fdatasync, in any order; damage to what had been synced is something else and
// must never be cut silently. Each record carries the commit up to which the log was
// synced when it was written. At recovery, the first record that fails its checks ends
// the log, unless some later record in the segment says that the failed one had been
// synced before it was written: then the log is damaged in the middle, and Open fails
// naming the segment and the offset. A cut tail is overwritten with zeros before the log
// is written again, so that no stale record past it can ever be read as a new one.
//
// Threads: Append, Write, Sync and TrimBefore belong to one writer at a time (the
// engine's). Read may run on any thread, concurrently with the writer; it sees what
// Write has written.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cairn/engine/status.h"

namespace cairn::internal {

inline constexpr uint32_t kWalFormatVersion = 1;
inline constexpr size_t kWalSegmentHeader = 64;
inline constexpr size_t kWalRecordHeader = 32;
inline constexpr uint64_t kWalMaxRecord = uint64_t{1} << 30;

struct WalOptions {
  // Size of a segment file; a record larger than that gets a segment of its own size.
  uint64_t segment_size = uint64_t{64} << 20;
  // How a new segment's space is reserved. kZeroFill writes zeros over the whole file
  // before it is used, so that later writes overwrite allocated blocks and each
  // fdatasync flushes data only (no extent or size change to journal). kFallocate
  // reserves the blocks without writing them (cheap to create; the first write of each
  // block still changes the file's metadata). kNone grows the file as it is written.
  enum class Preallocate : uint8_t { kZeroFill, kFallocate, kNone };
  Preallocate preallocate = Preallocate::kZeroFill;
  // Prepare the next segment on a thread of the log's own while the current one fills,
  // so that moving to a new segment does not wait for its preallocation.
  bool prepare_ahead = true;
  // A synced batch is written through a descriptor opened with O_DSYNC (one pwrite that
  // returns once the data is on disk) instead of pwrite then fdatasync. Under test: which
  // is faster depends on the kernel and the disk (docs/benchmarks.md).
  bool dsync_writes = false;
};

// What Open found.
struct WalRecovery {
  uint64_t first_commit = 0;  // 0: the log holds no record
  uint64_t last_commit = 0;
  size_t segments = 0;
  // A torn tail that was cut: where (segment file name and offset), and how many bytes
  // were cleared (from the cut to the last byte that was not zero).
  bool cut = false;
  std::string cut_segment;
  uint64_t cut_offset = 0;
  uint64_t cut_bytes = 0;
};

class Wal {
 public:
  // Opens (creating `dir` if needed) and recovers the log. A log without records takes
  // its first record's commit number from the first Append.
  static Status Open(const std::string& dir, const WalOptions& options,
                     std::unique_ptr<Wal>* out, WalRecovery* recovery);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Adds a record to the batch that the next Write writes. `commit` must follow the last
  // one appended (any number, if the log has none); `type` is nonzero. Records appended
  // but not written when the log is destroyed are dropped, as a crash would drop them.
  // (A record that does not fit in the segment writes and syncs the batch before it, to
  // finish the segment.)
  Status Append(uint64_t commit, uint32_t type, std::string_view payload);
  // Writes the batch (one pwrite while it fits in the segment); with `sync`, then
  // fdatasyncs it: on success every record appended so far is on disk. On failure the
  // records of the batch may or may not be on disk, and the log refuses further writes.
  // Reopening in the same process does not tell: after a failed fdatasync Linux may keep
  // the pages in its cache marked clean, so recovery would read back, and a new
  // fdatasync pass, records that never reached the disk. The caller must treat a failure
  // as fatal to the process (as PostgreSQL does since its fsync trouble of 2018).
  Status Write(bool sync);
  // Write(true): the periodic flush of a mode that does not sync per batch.
  Status Sync();
  // Deletes the segments whose records all precede `commit`; the segment being written
  // is never deleted.
  Status TrimBefore(uint64_t commit);

  // Calls `visit` for each record from commit `from` on, in order, up to the last one
  // written when Read began, until `visit` returns false. kLogTruncated if `from`
  // precedes the first record kept; records are checked again as they are read
  // (kCorrupted, naming the segment and offset).
  using Visitor = std::function<bool(uint64_t commit, uint32_t type, std::string_view payload)>;
  Status Read(uint64_t from, const Visitor& visit) const;

  uint64_t first_commit() const;    // 0 if empty
  uint64_t last_commit() const;     // the last appended (0 if none); the writer's only
  uint64_t written_commit() const;  // the last written by Write
  uint64_t synced_commit() const;   // the last known on disk
  size_t segments() const;
  uint64_t bytes() const;  // the records' bytes in all segments, headers included
  // Whether the next segment has been prepared (prepare_ahead), for benchmarks and tests.
  bool spare_ready() const;

  struct Segment;

 private:
  Wal(std::string dir, const WalOptions& options);
  Status Recover(WalRecovery* recovery);
  Status RecoverSegment(size_t i, uint64_t* expected, WalRecovery* recovery);
  Status StartSegment(uint64_t first_commit, uint64_t min_size);
  Status CreateSegmentFile(const std::string& path, uint64_t size);
  Status FlushBatch(bool sync);
  void PrepareLoop();
  Status Broken(Status s);

  const std::string dir_;
  const WalOptions options_;

  mutable std::mutex mu_;  // guards segments_ and the counters Read and the getters see
  std::vector<std::shared_ptr<Segment>> segments_;
  uint64_t first_commit_ = 0;
  uint64_t written_commit_ = 0;
  uint64_t synced_commit_ = 0;
  uint64_t bytes_ = 0;

  // The writer's own state.
  uint64_t last_commit_ = 0;
  uint64_t tail_ = 0;  // where the next record of the last segment goes
  std::string batch_;  // encoded records not yet written, for the last segment
  Status broken_;

  // The spare segment, prepared ahead.
  mutable std::mutex spare_mu_;
  std::condition_variable spare_cv_;
  bool spare_wanted_ = false;
  bool spare_ready_ = false;
  bool stopping_ = false;
  Status spare_status_;
  std::thread preparer_;
};

}  // namespace cairn::internal
