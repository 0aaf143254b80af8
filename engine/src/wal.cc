// The write-ahead log (wal.h; docs/storage.md, "The write-ahead log").
#include "wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "coding.h"

namespace cairn::internal {

struct Wal::Segment {
  std::string name;
  uint64_t first_commit = 0;
  uint64_t size = 0;  // the size it was made with (its header says so)
  int fd = -1;
  int dsync_fd = -1;  // WalOptions::dsync_writes: the same file opened with O_DSYNC
  uint64_t end = 0;  // where its records end; guarded by Wal::mu_
  ~Segment() {
    if (fd >= 0) ::close(fd);
    if (dsync_fd >= 0) ::close(dsync_fd);
  }
};

namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'W', 'A', 'L'};
constexpr const char* kSpare = "spare.tmp";
constexpr size_t kNameDigits = 20;

uint64_t RecordSize(uint64_t payload) { return kWalRecordHeader + ((payload + 7) & ~uint64_t{7}); }

// A record: [checksum: u64][length: u32][type: u32][commit: u64][synced: u64][payload]
// [zeros to a multiple of 8], little-endian. The checksum covers the rest of the header
// and the payload (one contiguous run), seeded with the segment's first commit, so that a
// record copied into another segment does not check. (One-shot XXH3: the streaming
// XXH3_64bits_reset_withSeed of xxHash 0.8.1 reuses a state's custom secret when the
// state's old seed matches, and a state on the stack holds whatever was there before.)
constexpr size_t kLengthAt = 8, kTypeAt = 12, kCommitAt = 16, kSyncedAt = 24;

uint64_t RecordChecksum(uint64_t seed, const char* record, uint32_t length) {
  return XXH3_64bits_withSeed(record + 8, kWalRecordHeader - 8 + length, seed);
}

struct RecordHeader {
  uint64_t checksum;
  uint32_t length;
  uint32_t type;
  uint64_t commit;
  uint64_t synced;
};

RecordHeader LoadHeader(const char* p) {
  return RecordHeader{LoadU64LE(p), LoadU32LE(p + kLengthAt), LoadU32LE(p + kTypeAt),
                      LoadU64LE(p + kCommitAt), LoadU64LE(p + kSyncedAt)};
}

// Whether the bytes at `off` of `buf` (`size` bytes) hold a whole record that checks
// (any commit), for a segment whose first commit is `seed`.
bool Checks(const char* buf, uint64_t size, uint64_t off, uint64_t seed, RecordHeader* h) {
  if (off + kWalRecordHeader > size) return false;
  *h = LoadHeader(buf + off);
  if (h->type == 0 || h->length > kWalMaxRecord || off + RecordSize(h->length) > size) {
    return false;
  }
  return RecordChecksum(seed, buf + off, h->length) == h->checksum;
}

uint64_t RoundToPage(uint64_t size) { return (size + 4095) & ~uint64_t{4095}; }

std::string SegmentName(uint64_t first_commit) {
  char b[32];
  std::snprintf(b, sizeof b, "%020" PRIu64 ".wal", first_commit);
  return b;
}

bool ParseSegmentName(std::string_view name, uint64_t* first) {
  if (name.size() != kNameDigits + 4 || !name.ends_with(".wal")) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < kNameDigits; i++) {
    char c = name[i];
    if (c < '0' || c > '9') return false;
    if (v > (UINT64_MAX - uint64_t(c - '0')) / 10) return false;
    v = v * 10 + uint64_t(c - '0');
  }
  *first = v;
  return v > 0;
}

Status Errno(std::string_view what, const std::string& path) {
  return Status(Code::kInternal, std::string(what) + " " + path + ": " + std::strerror(errno));
}

Status PWriteAll(int fd, const char* p, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, off_t(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Errno("cannot write", path);
    p += w, n -= size_t(w), off += uint64_t(w);
  }
  return Status::Ok();
}

Status PReadAll(int fd, char* p, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("cannot read", path);
    if (r == 0) return Status(Code::kCorrupted, path + " is shorter than its records");
    p += r, n -= size_t(r), off += uint64_t(r);
  }
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", dir);
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? Status::Ok() : Errno("cannot sync", dir);
}

void EncodeSegmentHeader(char* h, uint64_t first_commit, uint64_t size) {
  std::memset(h, 0, kWalSegmentHeader);
  std::memcpy(h, kMagic, 8);
  StoreU32LE(h + 8, kWalFormatVersion);
  StoreU32LE(h + 12, uint32_t(kWalSegmentHeader));
  StoreU64LE(h + 16, first_commit);
  StoreU64LE(h + 24, size);
  StoreU64LE(h + 56, XXH3_64bits(h, 56));
}

}  // namespace

Wal::Wal(std::string dir, const WalOptions& options) : dir_(std::move(dir)), options_(options) {}

Wal::~Wal() {
  if (preparer_.joinable()) {
    {
      std::lock_guard lock(spare_mu_);
      stopping_ = true;
    }
    spare_cv_.notify_all();
    preparer_.join();
  }
}

Status Wal::Open(const std::string& dir, const WalOptions& options, std::unique_ptr<Wal>* out,
                 WalRecovery* recovery) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("cannot create", dir);
  std::unique_ptr<Wal> wal(new Wal(dir, options));
  WalRecovery ignored;
  if (!recovery) recovery = &ignored;
  *recovery = WalRecovery();
  if (Status s = wal->Recover(recovery); !s.ok()) return s;
  if (options.prepare_ahead) {
    wal->preparer_ = std::thread([w = wal.get()] { w->PrepareLoop(); });
    if (!wal->segments_.empty()) {
      std::lock_guard lock(wal->spare_mu_);
      wal->spare_wanted_ = true;
    }
    wal->spare_cv_.notify_all();
  }
  *out = std::move(wal);
  return Status::Ok();
}

Status Wal::Recover(WalRecovery* recovery) {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return Errno("cannot open", dir_);
  std::vector<std::pair<uint64_t, std::string>> found;
  std::vector<std::string> leftovers;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    uint64_t first = 0;
    if (ParseSegmentName(name, &first)) {
      found.emplace_back(first, std::string(name));
    } else if (name.ends_with(".tmp")) {
      leftovers.emplace_back(name);  // a segment being prepared when the process stopped
    }
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());

  for (auto& [first, name] : found) {
    auto seg = std::make_shared<Segment>();
    seg->name = name;
    seg->first_commit = first;
    std::string path = dir_ + "/" + name;
    seg->fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (seg->fd < 0) return Errno("cannot open", path);
    segments_.push_back(std::move(seg));
  }
  uint64_t expected = 0;
  for (size_t i = 0; i < segments_.size(); i++) {
    if (Status s = RecoverSegment(i, &expected, recovery); !s.ok()) return s;
  }
  for (const std::string& name : leftovers) ::unlink((dir_ + "/" + name).c_str());
  if (segments_.empty()) return Status::Ok();
  // A last segment without a record (made just before a crash, or whose first record was
  // torn) goes: the next record's segment takes its name.
  if (segments_.back()->end == kWalSegmentHeader) {
    const std::string path = dir_ + "/" + segments_.back()->name;
    if (::unlink(path.c_str()) != 0) return Errno("cannot delete", path);
    segments_.pop_back();
    if (Status s = SyncDir(dir_); !s.ok()) return s;
    if (segments_.empty()) return Status::Ok();  // the first Append decides where it starts
  }
  last_commit_ = written_commit_ = synced_commit_ = expected - 1;
  first_commit_ = segments_.front()->first_commit;
  for (auto& seg : segments_) bytes_ += seg->end;
  tail_ = segments_.back()->end;
  // What survived a crash of the process alone may still be only in the page cache.
  if (::fdatasync(segments_.back()->fd) != 0) return Errno("cannot sync", segments_.back()->name);
  recovery->first_commit = first_commit_;
  recovery->last_commit = last_commit_;
  recovery->segments = segments_.size();
  return Status::Ok();
}

Status Wal::RecoverSegment(size_t i, uint64_t* expected, WalRecovery* recovery) {
  Segment& seg = *segments_[i];
  const bool last = i + 1 == segments_.size();
  const std::string path = dir_ + "/" + seg.name;
  struct stat st;
  if (::fstat(seg.fd, &st) != 0) return Errno("cannot stat", path);
  std::string buf(size_t(st.st_size), '\0');
  if (Status s = PReadAll(seg.fd, buf.data(), buf.size(), 0, path); !s.ok()) return s;
  const char* p = buf.data();
  const uint64_t size = buf.size();

  auto damaged = [&](uint64_t off, const std::string& why) {
    return Status(Code::kCorrupted, "write-ahead log segment " + path + " is damaged at offset " +
                                        std::to_string(off) + ": " + why);
  };
  // A named segment was renamed into place only after its header was synced.
  if (size < kWalSegmentHeader || std::memcmp(p, kMagic, 8) != 0 ||
      LoadU64LE(p + 56) != XXH3_64bits(p, 56)) {
    return damaged(0, "its header does not check");
  }
  if (uint32_t v = LoadU32LE(p + 8); v != kWalFormatVersion) {
    return Status(Code::kCorrupted, "write-ahead log segment " + path + " has format version " +
                                        std::to_string(v) + "; this build reads version " +
                                        std::to_string(kWalFormatVersion));
  }
  if (LoadU64LE(p + 16) != seg.first_commit) {
    return damaged(16, "its header names first commit " + std::to_string(LoadU64LE(p + 16)));
  }
  seg.size = LoadU64LE(p + 24);
  if (*expected != 0 && seg.first_commit != *expected) {
    return Status(Code::kCorrupted,
                  "write-ahead log segment " + path + " starts at commit " +
                      std::to_string(seg.first_commit) + " but the segment before it ends at " +
                      std::to_string(*expected - 1));
  }
  *expected = seg.first_commit;

  uint64_t off = kWalSegmentHeader;
  RecordHeader h;
  while (Checks(p, size, off, seg.first_commit, &h) && h.commit == *expected) {
    off += RecordSize(h.length);
    ++*expected;
  }
  seg.end = off;
  if (!last) {
    // A segment is synced whole before the next one gets a record: whatever fails its
    // checks here is damage, unless the next segment goes on from it.
    uint64_t next = segments_[i + 1]->first_commit;
    if (next == *expected) return Status::Ok();
    return damaged(off, "commit " + std::to_string(*expected) +
                            " does not check, and the next segment starts at commit " +
                            std::to_string(next));
  }

  // The log ends here, unless a later record was written after this one was synced.
  for (uint64_t y = off + 8; y + kWalRecordHeader <= size; y += 8) {
    uint64_t synced = LoadU64LE(p + y + kSyncedAt);
    if (synced < *expected || LoadU32LE(p + y + kTypeAt) == 0) continue;  // cheap rejects
    if (Checks(p, size, y, seg.first_commit, &h) && h.commit > *expected) {
      return damaged(off, "commit " + std::to_string(*expected) +
                              " does not check, and the record of commit " +
                              std::to_string(h.commit) + " at offset " + std::to_string(y) +
                              " was written after it had been synced");
    }
  }
  // A torn tail: zero it, so that nothing past the cut is read again.
  uint64_t stop = size;
  while (stop > off && p[stop - 1] == 0) stop--;
  if (stop > off) {
    std::string zeros(stop - off, '\0');
    if (Status s = PWriteAll(seg.fd, zeros.data(), zeros.size(), off, path); !s.ok()) return s;
    if (::fdatasync(seg.fd) != 0) return Errno("cannot sync", path);
    recovery->cut = true;
    recovery->cut_segment = seg.name;
    recovery->cut_offset = off;
    recovery->cut_bytes = stop - off;
  }
  return Status::Ok();
}

Status Wal::CreateSegmentFile(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", path);
  Status s;
  switch (options_.preallocate) {
    case WalOptions::Preallocate::kZeroFill: {
      std::string zeros(std::min<uint64_t>(size, 1 << 20), '\0');
      for (uint64_t off = 0; off < size && s.ok(); off += zeros.size()) {
        s = PWriteAll(fd, zeros.data(), size_t(std::min<uint64_t>(zeros.size(), size - off)),
                      off, path);
      }
      break;
    }
    case WalOptions::Preallocate::kFallocate:
      if (int rc = ::posix_fallocate(fd, 0, off_t(size)); rc != 0) {
        errno = rc;
        s = Errno("cannot allocate", path);
      }
      break;
    case WalOptions::Preallocate::kNone:
      break;
  }
  if (s.ok() && ::fdatasync(fd) != 0) s = Errno("cannot sync", path);
  ::close(fd);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

void Wal::PrepareLoop() {
  std::unique_lock lock(spare_mu_);
  while (true) {
    spare_cv_.wait(lock, [&] { return stopping_ || spare_wanted_; });
    if (stopping_) return;
    spare_wanted_ = false;
    if (spare_ready_) continue;  // not taken since it was made
    lock.unlock();
    Status s = CreateSegmentFile(dir_ + "/" + kSpare, RoundToPage(options_.segment_size));
    lock.lock();
    spare_ready_ = s.ok();
    spare_status_ = s;
  }
}

Status Wal::StartSegment(uint64_t first_commit, uint64_t min_size) {
  const uint64_t spare_size = RoundToPage(options_.segment_size);
  const uint64_t size = std::max(spare_size, RoundToPage(min_size));
  auto seg = std::make_shared<Segment>();
  seg->name = SegmentName(first_commit);
  seg->first_commit = first_commit;
  seg->size = size;
  const std::string path = dir_ + "/" + seg->name;
  if (!segments_.empty() && segments_.back()->first_commit >= first_commit) {
    return Status(Code::kInternal, "write-ahead log: a segment for commit " +
                                       std::to_string(first_commit) + " after one for " +
                                       std::to_string(segments_.back()->first_commit));
  }
  const std::string from = path + ".tmp";
  bool spare = false;
  {
    // Taken under its own name before the preparer may start the next spare.
    std::lock_guard lock(spare_mu_);
    if (spare_ready_ && size == spare_size) {
      spare_ready_ = false;
      std::string spare_path = dir_ + "/" + kSpare;
      spare = ::rename(spare_path.c_str(), from.c_str()) == 0;
    }
  }
  if (!spare) {
    if (Status s = CreateSegmentFile(from, size); !s.ok()) return s;
  }
  // The header goes in before the name: a segment under its name always has one.
  seg->fd = ::open(from.c_str(), O_RDWR | O_CLOEXEC);
  if (seg->fd < 0) return Errno("cannot open", from);
  char h[kWalSegmentHeader];
  EncodeSegmentHeader(h, first_commit, size);
  if (Status s = PWriteAll(seg->fd, h, sizeof h, 0, from); !s.ok()) return s;
  if (::fdatasync(seg->fd) != 0) return Errno("cannot sync", from);
  if (::rename(from.c_str(), path.c_str()) != 0) return Errno("cannot rename", from);
  if (Status s = SyncDir(dir_); !s.ok()) return s;
  seg->end = kWalSegmentHeader;
  {
    std::lock_guard lock(mu_);
    segments_.push_back(std::move(seg));
    bytes_ += kWalSegmentHeader;
    if (first_commit_ == 0) first_commit_ = first_commit;
  }
  tail_ = kWalSegmentHeader;
  if (options_.prepare_ahead) {
    {
      std::lock_guard lock(spare_mu_);
      spare_wanted_ = true;
    }
    spare_cv_.notify_all();
  }
  return Status::Ok();
}

Status Wal::Broken(Status s) {
  broken_ = s.WithContext("the write-ahead log takes no more writes");
  return s;
}

Status Wal::Append(uint64_t commit, uint32_t type, std::string_view payload) {
  if (!broken_.ok()) return broken_;
  if (type == 0) return Status(Code::kInternal, "write-ahead log: a record of type 0");
  if (payload.size() > kWalMaxRecord) {
    return Status(Code::kTooLarge, "write-ahead log records are at most 1 GiB");
  }
  if (commit == 0 || (last_commit_ != 0 && commit != last_commit_ + 1)) {
    return Status(Code::kInternal, "write-ahead log: commit " + std::to_string(commit) +
                                       " appended after " + std::to_string(last_commit_));
  }
  const uint64_t need = RecordSize(payload.size());
  if (segments_.empty() || tail_ + batch_.size() + need > segments_.back()->size) {
    // The segment is full: finish it (on disk before anything goes in the next one, so
    // that only the last segment can have a torn tail), then start the next.
    if (!segments_.empty()) {
      if (Status s = FlushBatch(true); !s.ok()) return Broken(s);
    }
    if (Status s = StartSegment(commit, kWalSegmentHeader + need); !s.ok()) return Broken(s);
  }
  size_t at = batch_.size();
  batch_.resize(at + size_t(need));
  char* r = batch_.data() + at;
  StoreU32LE(r + kLengthAt, uint32_t(payload.size()));
  StoreU32LE(r + kTypeAt, type);
  StoreU64LE(r + kCommitAt, commit);
  StoreU64LE(r + kSyncedAt, synced_commit_);
  std::memcpy(r + kWalRecordHeader, payload.data(), payload.size());
  // The padding is zero (resize) and outside the checksum.
  StoreU64LE(r, RecordChecksum(segments_.back()->first_commit, r, uint32_t(payload.size())));
  last_commit_ = commit;
  return Status::Ok();
}

Status Wal::FlushBatch(bool sync) {
  Segment& seg = *segments_.back();
  const std::string path = dir_ + "/" + seg.name;
  // With O_DSYNC the batch's own pwrite makes it durable, but nothing written before it:
  // only when everything before is synced.
  bool dsync = sync && options_.dsync_writes && !batch_.empty() &&
               synced_commit_ == written_commit_;
  if (dsync && seg.dsync_fd < 0) {
    seg.dsync_fd = ::open(path.c_str(), O_RDWR | O_DSYNC | O_CLOEXEC);
    if (seg.dsync_fd < 0) return Errno("cannot open", path);
  }
  if (!batch_.empty()) {
    if (Status s = PWriteAll(dsync ? seg.dsync_fd : seg.fd, batch_.data(), batch_.size(), tail_,
                             path);
        !s.ok()) {
      return s;
    }
    tail_ += batch_.size();
    std::lock_guard lock(mu_);
    seg.end = tail_;
    bytes_ += batch_.size();
    written_commit_ = last_commit_;
    batch_.clear();
  }
  if (sync && synced_commit_ < written_commit_) {
    if (!dsync && ::fdatasync(seg.fd) != 0) return Errno("cannot sync", path);
    std::lock_guard lock(mu_);
    synced_commit_ = written_commit_;
  }
  return Status::Ok();
}

Status Wal::Write(bool sync) {
  if (!broken_.ok()) return broken_;
  if (segments_.empty()) return Status::Ok();
  if (Status s = FlushBatch(sync); !s.ok()) return Broken(s);
  return Status::Ok();
}

Status Wal::Sync() { return Write(true); }

Status Wal::TrimBefore(uint64_t commit) {
  size_t n = 0;
  while (n + 1 < segments_.size() && segments_[n + 1]->first_commit <= commit) n++;
  if (n == 0) return Status::Ok();
  // Oldest first, so that a failure leaves the log whole from where it stopped. Readers
  // that hold a segment keep its descriptor until they are done with it.
  size_t gone = 0;
  Status s;
  for (; gone < n; gone++) {
    std::string path = dir_ + "/" + segments_[gone]->name;
    if (::unlink(path.c_str()) != 0) {
      s = Errno("cannot delete", path);
      break;
    }
  }
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < gone; i++) bytes_ -= segments_[i]->end;
    segments_.erase(segments_.begin(), segments_.begin() + ptrdiff_t(gone));
    first_commit_ = segments_.front()->first_commit;
  }
  // Unlinked oldest first: where the filesystem keeps the order of its metadata changes
  // (ext4, XFS), a crash may bring back the oldest segments, which are whole, but never
  // leaves a gap. Synced, so that the space is freed for good.
  if (s.ok()) s = SyncDir(dir_);
  return s;
}

Status Wal::Read(uint64_t from, const Visitor& visit) const {
  std::vector<std::shared_ptr<Segment>> segs;
  std::vector<uint64_t> ends;
  uint64_t first, written;
  {
    std::lock_guard lock(mu_);
    segs = segments_;
    for (auto& seg : segs) ends.push_back(seg->end);
    first = first_commit_;
    written = written_commit_;
  }
  if (first == 0 || from > written) return Status::Ok();
  if (from < first) {
    return Status(Code::kLogTruncated, "the write-ahead log starts at commit " +
                                           std::to_string(first) + ", after " +
                                           std::to_string(from));
  }
  size_t i = 0;
  while (i + 1 < segs.size() && segs[i + 1]->first_commit <= from) i++;
  std::string buf;
  for (; i < segs.size(); i++) {
    const Segment& seg = *segs[i];
    const std::string path = dir_ + "/" + seg.name;
    uint64_t expected = seg.first_commit;
    auto damaged = [&](uint64_t off) {
      return Status(Code::kCorrupted, "write-ahead log segment " + path +
                                          " is damaged at offset " + std::to_string(off) +
                                          " (commit " + std::to_string(expected) + ")");
    };
    // `buf` holds the segment's bytes from `chunk_at`, read in chunks of at least 1 MiB;
    // a record that does not fit in one is read whole.
    uint64_t chunk_at = kWalSegmentHeader, off = kWalSegmentHeader;
    buf.clear();
    while (off < ends[i]) {
      const uint64_t have = chunk_at + buf.size();
      uint64_t need = kWalRecordHeader;
      if (off + need <= have) {
        need = RecordSize(LoadU32LE(buf.data() + (off - chunk_at) + kLengthAt));
      }
      if (off + need > have) {
        if (off + need > ends[i]) return damaged(off);
        buf.resize(size_t(std::min(std::max<uint64_t>(need, 1 << 20), ends[i] - off)));
        if (Status s = PReadAll(seg.fd, buf.data(), buf.size(), off, path); !s.ok()) return s;
        chunk_at = off;
        continue;
      }
      RecordHeader h;
      if (!Checks(buf.data(), buf.size(), off - chunk_at, seg.first_commit, &h) ||
          h.commit != expected) {
        return damaged(off);
      }
      if (h.commit >= from) {
        const char* payload = buf.data() + (off - chunk_at) + kWalRecordHeader;
        if (!visit(h.commit, h.type, std::string_view(payload, h.length))) return Status::Ok();
      }
      if (h.commit == written) return Status::Ok();
      off += RecordSize(h.length);
      expected++;
    }
  }
  return Status::Ok();
}

uint64_t Wal::first_commit() const {
  std::lock_guard lock(mu_);
  return first_commit_;
}
uint64_t Wal::last_commit() const { return last_commit_; }
uint64_t Wal::written_commit() const {
  std::lock_guard lock(mu_);
  return written_commit_;
}
uint64_t Wal::synced_commit() const {
  std::lock_guard lock(mu_);
  return synced_commit_;
}
size_t Wal::segments() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}
uint64_t Wal::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}
bool Wal::spare_ready() const {
  std::lock_guard lock(spare_mu_);
  return spare_ready_;
}

}  // namespace cairn::internal
