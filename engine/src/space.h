// Room for writes: the reserve below the size cap and on the disk that only
// transactions that free space (deletes, drops, cleanup after drops) may use, and
// what a storage error means (docs/storage.md, "A full disk and the size cap").
#pragma once

#include <lmdb.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/engine/status.h"

namespace cairn::internal {

// What an error code from an LMDB commit, flush or write means.
enum class StorageError : uint8_t {
  kOther,    // not a storage error: MdbStatus says what it is
  kNoSpace,  // the disk (or a quota, or a file size limit) has no room: goes away by itself
  kFatal,    // an I/O error or a damaged file: latched, every later write reports it
};

// rc: the code; disk_free: what the filesystem has free right after the error. EIO counts
// as no space when the disk is nearly full (below `nearly_full` bytes free): LMDB turns a
// short write into EIO, and a short write is what a filesystem that runs out of space
// mid-write returns.
StorageError ClassifyStorageError(int rc, uint64_t disk_free, uint64_t nearly_full);

// The room a write may take, one per open database (owned by the Engine).
// REQUIRES: Admit and CommitError hold the engine's write mutex (the writer allocates);
// reserve() and preallocated() may be called from any thread after Init.
class SpaceReserve {
 public:
  // Sizes the reserve (`reserve` bytes, or automatic if 0) and preallocates the disk's
  // share at the end of data.mdb. REQUIRES: `env` is open for writing; called once.
  void Init(MDB_env* env, std::string dir, uint64_t map_size, uint64_t reserve);

  // For a write that does not free space and may need up to `need` bytes of new pages:
  // Ok if it leaves the reserve whole below the cap and on the disk (extending the
  // preallocation if it must), else kDatabaseFull naming the cap or the disk. Far from
  // full this is arithmetic on the meta page; near full it also counts the free pages
  // inside data.mdb, which a write reuses before it grows the file.
  Status Admit(uint64_t need);

  // The Status of an error `rc` from `what` (a commit, a flush): kDatabaseFull for no
  // space; *fatal says whether it must be latched (the caller words that message).
  Status CommitError(int rc, std::string_view what, bool* fatal) const;

  uint64_t reserve() const { return reserve_; }
  uint64_t page() const { return page_; }
  // Bytes of data.mdb allocated on disk ahead of the pages in use (the disk's reserve).
  uint64_t preallocated() const;

  // Bytes of free pages a new write transaction can reuse: freelist entries older than
  // every reader. Reads the freelist (O(entries)); for use near full only.
  uint64_t ReusableBytes() const;

 private:
  uint64_t UsedBytes() const;   // pages in use, from the newest commit's meta page
  uint64_t DiskFree() const;    // bytes this process may still allocate on the disk
  bool Allocate(uint64_t end);  // preallocates data.mdb up to `end`; false if no room
  Status CapFull(uint64_t left) const;
  Status DiskFull(uint64_t free) const;

  MDB_env* env_ = nullptr;
  std::string dir_;
  int fd_ = -1;  // data.mdb (LMDB's descriptor)
  uint64_t page_ = 4096;
  uint64_t map_size_ = 0;  // the cap
  uint64_t reserve_ = 0;
  // data.mdb is allocated on disk up to here (a lower bound). Atomic for Stats (any thread).
  std::atomic<uint64_t> allocated_end_{0};
  bool preallocate_ = false;  // fallocate(FALLOC_FL_KEEP_SIZE) works on this filesystem
};

}  // namespace cairn::internal
