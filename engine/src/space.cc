// Room for writes: the reserve for transactions that free space, below the cap and on
// the disk, and the classification of storage errors (docs/storage.md).
#include "space.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine_impl.h"  // MdbStatus

namespace cairn::internal {

namespace {

constexpr uint64_t kMinReserve = uint64_t{256} << 10;
constexpr uint64_t kMaxReserve = uint64_t{64} << 20;

std::string Human(uint64_t bytes) {
  char b[32];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(b, sizeof b, "%.1f GiB", double(bytes) / double(uint64_t{1} << 30));
  } else if (bytes >= (uint64_t{1} << 20)) {
    std::snprintf(b, sizeof b, "%.1f MiB", double(bytes) / double(uint64_t{1} << 20));
  } else {
    std::snprintf(b, sizeof b, "%llu KiB", static_cast<unsigned long long>(bytes >> 10));
  }
  return b;
}

// Bytes the filesystem holding `fd` lets this process allocate (root may use the
// blocks reserved for root), and its size. UINT64_MAX when unknown.
void FsSpace(int fd, uint64_t* free, uint64_t* total) {
  struct statvfs st;
  if (fd < 0 || ::fstatvfs(fd, &st) != 0) {
    *free = *total = UINT64_MAX;
    return;
  }
  uint64_t blocks = ::geteuid() == 0 ? st.f_bfree : st.f_bavail;
  *free = uint64_t(blocks) * st.f_frsize;
  *total = uint64_t(st.f_blocks) * st.f_frsize;
}

// Collects the oldest snapshot any reader holds, from mdb_reader_list's lines
// ("pid thread txnid", txnid "-" for a slot without a snapshot).
int OldestReader(const char* line, void* ctx) {
  unsigned long long txnid;
  int pid;
  char tid[32];
  if (std::sscanf(line, "%d %31s %llu", &pid, tid, &txnid) == 3) {
    auto* oldest = static_cast<uint64_t*>(ctx);
    *oldest = std::min<uint64_t>(*oldest, txnid);
  }
  return 0;
}

}  // namespace

StorageError ClassifyStorageError(int rc, uint64_t disk_free, uint64_t nearly_full) {
  switch (rc) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return StorageError::kNoSpace;
    case EIO:
      return disk_free < nearly_full ? StorageError::kNoSpace : StorageError::kFatal;
    case MDB_PANIC:
    case MDB_CORRUPTED:
      return StorageError::kFatal;
    default:
      return StorageError::kOther;
  }
}

void SpaceReserve::Init(MDB_env* env, std::string dir, uint64_t map_size, uint64_t reserve) {
  env_ = env;
  dir_ = std::move(dir);
  map_size_ = map_size;
  MDB_stat st;
  if (mdb_env_stat(env_, &st) == 0) page_ = st.ms_psize;
  mdb_filehandle_t fd;
  fd_ = mdb_env_get_fd(env_, &fd) == 0 ? fd : -1;
  uint64_t free, total;
  FsSpace(fd_, &free, &total);
  if (reserve == 0) {
    reserve = std::clamp(std::min(map_size_, total) / 32, kMinReserve, kMaxReserve);
  }
  reserve_ = (reserve + page_ - 1) / page_ * page_;
  struct stat fs;
  if (fd_ >= 0 && ::fstat(fd_, &fs) == 0) allocated_end_ = uint64_t(fs.st_size);
#ifdef FALLOC_FL_KEEP_SIZE
  // Probe once: a filesystem without fallocate falls back to counting statvfs's free space,
  // which keeps the reserve from this engine's own writes but not from other programs.
  preallocate_ = fd_ >= 0;
  if (preallocate_ && ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, off_t(page_)) != 0) {
    preallocate_ = errno != EOPNOTSUPP && errno != ENOSYS;
  }
#endif
  if (preallocate_) Allocate(UsedBytes() + 2 * reserve_);  // if the disk is full: later
}

uint64_t SpaceReserve::UsedBytes() const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return (uint64_t(info.me_last_pgno) + 1) * page_;
}

uint64_t SpaceReserve::DiskFree() const {
  uint64_t free, total;
  FsSpace(fd_, &free, &total);
  return free;
}

uint64_t SpaceReserve::preallocated() const {
  uint64_t used = UsedBytes();
  return allocated_end_ > used ? allocated_end_ - used : 0;
}

bool SpaceReserve::Allocate(uint64_t end) {
#ifdef FALLOC_FL_KEEP_SIZE
  if (end <= allocated_end_) return true;
  uint64_t from = allocated_end_ / page_ * page_;
  if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, off_t(from), off_t(end - from)) != 0) {
    return false;  // what it may have allocated before failing is not counted
  }
  allocated_end_ = end;
  return true;
#else
  (void)end;
  return false;
#endif
}

uint64_t SpaceReserve::ReusableBytes() const {
  // A page freed by the commit with id T is reused by a later write once no reader sees a
  // snapshot older than T + 1 (LMDB also keeps the last snapshot whole): entries below the
  // oldest of the last commit and every reader's snapshot.
  MDB_txn* txn;
  if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) != 0) return 0;
  uint64_t oldest = mdb_txn_id(txn);  // the newest commit: our own reader is not older
  mdb_reader_list(env_, OldestReader, &oldest);
  uint64_t pages = 0;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn, 0 /* FREE_DBI */, &cur) == 0) {
    MDB_val k, v;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      if (k.mv_size != sizeof(size_t) || v.mv_size < sizeof(size_t)) break;
      size_t id, count;
      std::memcpy(&id, k.mv_data, sizeof id);
      if (id >= oldest) break;  // keys are in txn id order
      std::memcpy(&count, v.mv_data, sizeof count);
      pages += count;
    }
    mdb_cursor_close(cur);
  }
  mdb_txn_abort(txn);
  return pages * page_;
}

Status SpaceReserve::Admit(uint64_t need) {
  const uint64_t used = UsedBytes();
  const uint64_t want = need + reserve_;
  uint64_t reusable = UINT64_MAX;  // counted once, only if the cap or the disk is near
  auto inside = [&] {
    if (reusable == UINT64_MAX) reusable = ReusableBytes();
    return reusable;
  };
  // The cap: pages below it, and free pages inside the file.
  uint64_t cap_left = map_size_ > used ? map_size_ - used : 0;
  if (cap_left < want && cap_left + inside() < want) return CapFull(cap_left + inside());
  // The disk: space allocated to data.mdb ahead of its pages, grown a reserve at a time.
  if (preallocate_) {
    if (allocated_end_ >= used + want) return Status::Ok();
    if (Allocate(used + want + reserve_) || Allocate(used + want)) return Status::Ok();
    uint64_t ahead = allocated_end_ > used ? allocated_end_ - used : 0;
    if (ahead + inside() >= want) return Status::Ok();
  } else {
    uint64_t free = DiskFree();
    if (free == UINT64_MAX || free >= want || free + inside() >= want) return Status::Ok();
  }
  return DiskFull(DiskFree());
}

Status SpaceReserve::CapFull(uint64_t left) const {
  return Status(Code::kDatabaseFull,
                "database " + dir_ + " is at its size cap (max_size " + Human(map_size_) + ", " +
                    Human(left) + " left, " + Human(reserve_) +
                    " of it kept for deletes and drops): only deletes and drops are accepted "
                    "until data is deleted or the cap is raised");
}

Status SpaceReserve::DiskFull(uint64_t free) const {
  std::string left = free == UINT64_MAX ? std::string("unknown") : Human(free);
  return Status(Code::kDatabaseFull,
                "the disk holding database " + dir_ + " is full (" + left + " free, " +
                    Human(reserve_) +
                    " kept for deletes and drops): only deletes and drops are accepted until "
                    "space is freed on that disk or data is deleted");
}

Status SpaceReserve::CommitError(int rc, std::string_view what, bool* fatal) const {
  uint64_t free = DiskFree();
  // A short write leaves less free than the rest of the write; some slack for what other
  // programs free meanwhile.
  uint64_t nearly_full = std::max<uint64_t>(uint64_t{1} << 20, 2 * reserve_);
  StorageError kind = ClassifyStorageError(rc, free, nearly_full);
  *fatal = kind == StorageError::kFatal;
  if (kind == StorageError::kNoSpace) return DiskFull(free).WithContext(what);
  return MdbStatus(rc, what);
}

}  // namespace cairn::internal
