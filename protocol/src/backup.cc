#include "cairn/protocol/backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

// xxHash compiled into this file (static functions, renamed), so that cairn_protocol, an
// installed library, needs no libxxhash at link time; the results are the library's.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace cairn {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kChunkTag = "CHNK";
constexpr std::string_view kTrailerTag = "TRLR";

// --- Little-endian fields.

void Put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; i++) out->push_back(char(v >> (8 * i)));
}
void Put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; i++) out->push_back(char(v >> (8 * i)));
}
uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | uint8_t(p[i]);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | uint8_t(p[i]);
  return v;
}

uint64_t Hash(std::string_view data, uint64_t seed = 0) {
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

// --- Messages.

std::string Errno(int err) { return std::strerror(err); }

// "3 MiB", "512 KiB", "17 bytes".
std::string Human(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) v /= 1024, u++;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g %s", v, units[u]);
  return buf;
}

// Bytes of unknown origin, quoted for a message: printable ASCII as it is, the rest \xNN.
std::string Quoted(std::string_view bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

BackupStatus Damaged(std::string message) {
  return BackupStatus(BackupErrorKind::kDamaged, std::move(message));
}

// What a file that does not start with the magic is, as far as its first bytes say.
BackupStatus NotABackup(std::string_view start) {
  if (start.empty()) {
    return BackupStatus(BackupErrorKind::kNotBackup, "an empty file, not a cairn backup");
  }
  // An LMDB data file (what `mdb_copy` makes) starts with a meta page: a 16-byte page
  // header, then LMDB's magic 0xBEEFC0DE.
  if (start.size() >= 20 && Get32(start.data() + 16) == 0xBEEFC0DEu) {
    return BackupStatus(BackupErrorKind::kNotBackup,
                        "not a cairn backup: this is an LMDB data file (a data.mdb, as "
                        "mdb_copy makes), not a backup made by `cairn backup`");
  }
  return BackupStatus(BackupErrorKind::kNotBackup,
                      "not a cairn backup (it starts with " +
                          Quoted(start.substr(0, kBackupMagic.size())) + ", a backup with \"" +
                          std::string(kBackupMagic) + "\")");
}

// The history's order: epochs increase, and so (or they stay) do their first commits.
std::string HistoryProblem(std::span<const BackupEpoch> history) {
  for (size_t i = 1; i < history.size(); i++) {
    const BackupEpoch &a = history[i - 1], &b = history[i];
    if (b.epoch <= a.epoch || b.first_commit < a.first_commit) {
      return "the epoch history is out of order: epoch " + std::to_string(b.epoch) +
             " from commit " + std::to_string(b.first_commit) + " follows epoch " +
             std::to_string(a.epoch) + " from commit " + std::to_string(a.first_commit);
    }
  }
  return "";
}

// --- Descriptor I/O.

// At most this much per write(2). On the virtual machine of docs/storage.md's figures,
// writes of 128 KiB and more into the page cache were several times slower than writes
// of 64 KiB (dd of a 247 MB file: 0.09 s with bs=64K, 0.7 s with 128K to 4M; a restore:
// 0.8 s in writes of 1 MiB, 0.25 s in writes of 64 KiB), unless memory had just been
// freed. The likely cause is the host's taking back free guest memory (virtio-balloon
// free page reporting, which reports free blocks of 128 KiB and up): large writes get
// large page-cache folios from such blocks, which the host must fault in again.
// Elsewhere the extra system calls cost little (one per 64 KiB).
constexpr size_t kMaxWrite = 64 << 10;

// Writes all of `data`, through short writes and EINTR.
bool WriteFully(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), std::min(data.size(), kMaxWrite));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(size_t(n));
  }
  return true;
}

// Reads from a descriptor, counting what it has read (the position in the file).
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  // Reads up to `n` bytes into `out` (fewer only at the end of the file); *got says how many.
  BackupStatus Read(char* out, size_t n, size_t* got) {
    *got = 0;
    while (*got < n) {
      ssize_t r = ::read(fd_, out + *got, n - *got);
      if (r < 0) {
        if (errno == EINTR) continue;
        return BackupStatus(BackupErrorKind::kIo,
                            "cannot read the backup at byte " + std::to_string(pos_) + ": " +
                                Errno(errno));
      }
      if (r == 0) break;
      *got += size_t(r);
      pos_ += uint64_t(r);
    }
    return {};
  }

  uint64_t pos() const { return pos_; }

 private:
  int fd_;
  uint64_t pos_ = 0;
};

BackupStatus Truncated(uint64_t pos, const std::string& where) {
  return Damaged("truncated after " + Human(pos) + " (" + std::to_string(pos) + " bytes), " +
                 where + ": the backup has no trailer");
}

using HeaderSink = std::function<BackupStatus(const BackupInfo&)>;

// ReadBackup, with a call once the header has passed its checks (the restore checks the
// snapshot format there, before it creates anything).
BackupResult<BackupInfo> ReadFrom(int fd, const HeaderSink& on_header, const BackupSink& sink) {
  Reader in(fd);
  BackupInfo info;
  size_t got = 0;

  // The header: its fixed part, the epochs, its checksum.
  std::string header(kBackupHeaderFixedSize, '\0');
  if (BackupStatus s = in.Read(header.data(), header.size(), &got); !s.ok()) return s;
  std::string_view start(header.data(), got);
  if (got < kBackupMagic.size() || start.substr(0, kBackupMagic.size()) != kBackupMagic) {
    if (got > 0 && kBackupMagic.substr(0, got) == start) return Truncated(in.pos(), "in the header");
    return NotABackup(start);
  }
  if (got < 12) return Truncated(in.pos(), "in the header");
  info.format_version = Get32(&header[8]);
  if (info.format_version == 0) {
    return Damaged("the header says format version 0, which no backup has (the header is "
                   "damaged)");
  }
  if (info.format_version > kBackupFormatVersion) {
    return BackupStatus(BackupErrorKind::kTooNew,
                        "backup format " + std::to_string(info.format_version) +
                            " is newer than this program, which reads format " +
                            std::to_string(kBackupFormatVersion) +
                            " (or the header is damaged)");
  }
  if (got < header.size()) return Truncated(in.pos(), "in the header");
  info.snapshot_format = Get32(&header[12]);
  info.commit = Get64(&header[16]);
  uint32_t epochs = Get32(&header[24]);
  uint32_t reserved = Get32(&header[28]);
  if (epochs > kBackupMaxEpochs) {
    return Damaged("the header says it holds " + std::to_string(epochs) + " epochs, more than the " +
                   std::to_string(kBackupMaxEpochs) + " a backup can (the header is damaged)");
  }
  header.resize(kBackupHeaderFixedSize + size_t(epochs) * kBackupEpochSize + 8);
  size_t rest = header.size() - kBackupHeaderFixedSize;
  if (BackupStatus s = in.Read(&header[kBackupHeaderFixedSize], rest, &got); !s.ok()) return s;
  if (got < rest) return Truncated(in.pos(), "in the header");
  const size_t covered = header.size() - 8;
  const uint64_t header_checksum = Hash(std::string_view(header.data(), covered));
  if (Get64(&header[covered]) != header_checksum) {
    return Damaged("header: checksum mismatch (the header is damaged)");
  }
  if (reserved != 0) return Damaged("header: the reserved field is " + std::to_string(reserved) + ", not 0");
  if (info.snapshot_format == 0) return Damaged("header: snapshot format 0, which no snapshot has");
  for (uint32_t i = 0; i < epochs; i++) {
    const char* p = &header[kBackupHeaderFixedSize + size_t(i) * kBackupEpochSize];
    info.history.push_back(BackupEpoch{Get64(p), Get64(p + 8), Get64(p + 16)});
  }
  if (std::string why = HistoryProblem(info.history); !why.empty()) return Damaged("header: " + why);
  if (on_header) {
    if (BackupStatus s = on_header(info); !s.ok()) return s;
  }

  // Chunks, up to the trailer.
  BackupDataChecksum data_checksum;
  std::string data;
  char head[kBackupTrailerSize];
  static_assert(kBackupTrailerSize >= kBackupChunkHeaderSize);
  auto after = [&] {
    return info.chunks == 0 ? std::string("after the header")
                            : "after chunk " + std::to_string(info.chunks - 1);
  };
  while (true) {
    const uint64_t at = in.pos();
    if (BackupStatus s = in.Read(head, 8, &got); !s.ok()) return s;
    if (got == 0) return Truncated(in.pos(), after());
    if (got < 8) {
      // As far as the few bytes there say, a chunk's header or the trailer.
      std::string_view part(head, std::min<size_t>(got, 4));
      std::string where = kTrailerTag.substr(0, part.size()) == part ? "in the trailer"
                          : kChunkTag.substr(0, part.size()) == part
                              ? "in chunk " + std::to_string(info.chunks) + "'s header"
                              : "in what follows " + after().substr(6);
      return Truncated(in.pos(), where);
    }
    std::string_view tag(head, 4);
    if (tag == kTrailerTag) break;
    if (tag != kChunkTag) {
      return Damaged("at byte " + std::to_string(at) + " of the file (" + after() +
                     "): neither a chunk nor the trailer (it starts with " + Quoted(tag) +
                     "): the file is damaged");
    }
    const std::string chunk = "chunk " + std::to_string(info.chunks);
    if (BackupStatus s = in.Read(head + 8, kBackupChunkHeaderSize - 8, &got); !s.ok()) return s;
    if (got < kBackupChunkHeaderSize - 8) return Truncated(in.pos(), "in " + chunk + "'s header");
    const uint32_t length = Get32(head + 4);
    const uint64_t offset = Get64(head + 8);
    const uint64_t checksum = Get64(head + 16);
    if (length == 0 || length > kBackupMaxChunk) {
      return Damaged(chunk + " at byte " + std::to_string(at) + " of the file: its length " +
                     std::to_string(length) + " is out of bounds (1 byte to " +
                     Human(kBackupMaxChunk) + "): the file is damaged");
    }
    if (offset != info.size) {
      return Damaged(chunk + " says it is at offset " + std::to_string(offset) +
                     ", but the chunks before it end at " + std::to_string(info.size) +
                     " (damaged, or chunks missing or out of place)");
    }
    data.resize(length);
    if (BackupStatus s = in.Read(data.data(), length, &got); !s.ok()) return s;
    if (got < length) {
      return Truncated(in.pos(), "in " + chunk + "'s data (offset " + std::to_string(offset) + ")");
    }
    if (BackupChunkChecksum(offset, data) != checksum) {
      return Damaged(chunk + " at offset " + std::to_string(offset) + ": checksum mismatch");
    }
    if (sink) {
      if (BackupStatus s = sink(offset, data); !s.ok()) return s;
    }
    data_checksum.Update(data);
    info.size += length;
    info.chunks++;
  }

  // The trailer, and nothing after it.
  if (BackupStatus s = in.Read(head + 8, kBackupTrailerSize - 8, &got); !s.ok()) return s;
  if (got < kBackupTrailerSize - 8) return Truncated(in.pos(), "in the trailer");
  const std::string_view trailer(head, kBackupTrailerSize);
  if (Get64(head + 32) != Hash(trailer.substr(0, 32), header_checksum)) {
    return Damaged("trailer: checksum mismatch (the trailer is damaged, or belongs to another "
                   "backup's header)");
  }
  if (Get32(head + 4) != 0) {
    return Damaged("trailer: the reserved field is " + std::to_string(Get32(head + 4)) + ", not 0");
  }
  const uint64_t size = Get64(head + 8), chunks = Get64(head + 16), checksum = Get64(head + 24);
  if (size != info.size || chunks != info.chunks) {
    return Damaged("the trailer says " + std::to_string(size) + " bytes in " +
                   std::to_string(chunks) + " chunks, but the file holds " +
                   std::to_string(info.size) + " bytes in " + std::to_string(info.chunks));
  }
  info.checksum = data_checksum.Digest();
  if (checksum != info.checksum) {
    return Damaged("the data's checksum " + Hex(info.checksum) + " is not the trailer's " +
                   Hex(checksum));
  }
  info.file_bytes = in.pos();
  char extra;
  if (BackupStatus s = in.Read(&extra, 1, &got); !s.ok()) return s;
  if (got != 0) {
    return Damaged("bytes follow the trailer, from byte " + std::to_string(info.file_bytes) +
                   " on: they are not part of the backup (two files joined, or damage)");
  }
  return info;
}

}  // namespace

// --- Checksums.

uint64_t BackupChunkChecksum(uint64_t offset, std::string_view data) { return Hash(data, offset); }

struct BackupDataChecksum::State {
  XXH3_state_t xxh;
};

BackupDataChecksum::BackupDataChecksum() : state_(std::make_unique<State>()) {
  XXH3_64bits_reset(&state_->xxh);
}
BackupDataChecksum::~BackupDataChecksum() = default;

void BackupDataChecksum::Update(std::string_view data) {
  XXH3_64bits_update(&state_->xxh, data.data(), data.size());
}

uint64_t BackupDataChecksum::Digest() const { return XXH3_64bits_digest(&state_->xxh); }

// --- BackupWriter.

BackupWriter::BackupWriter(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
BackupWriter::~BackupWriter() = default;

BackupStatus BackupWriter::Fail(BackupStatus s) {
  state_ = State::kFailed;
  error_ = s;
  return s;
}

BackupStatus BackupWriter::WriteAll(std::string_view head, std::string_view body) {
  if (!WriteFully(fd_, head) || !WriteFully(fd_, body)) {
    return Fail(BackupStatus(BackupErrorKind::kIo, "cannot write to " + name_ + ": " + Errno(errno)));
  }
  file_bytes_ += head.size() + body.size();
  return {};
}

BackupStatus BackupWriter::Begin(uint64_t commit, uint32_t snapshot_format,
                                 std::span<const BackupEpoch> history) {
  if (state_ == State::kFailed) return error_;
  if (state_ != State::kNew) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput, "the backup has begun already"));
  }
  if (snapshot_format == 0) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput, "snapshot format 0 is no snapshot format"));
  }
  if (history.size() > kBackupMaxEpochs) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             "the history has " + std::to_string(history.size()) +
                                 " epochs, more than a backup holds (" +
                                 std::to_string(kBackupMaxEpochs) + ")"));
  }
  if (std::string why = HistoryProblem(history); !why.empty()) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput, why));
  }
  std::string header(kBackupMagic);
  Put32(&header, kBackupFormatVersion);
  Put32(&header, snapshot_format);
  Put64(&header, commit);
  Put32(&header, uint32_t(history.size()));
  Put32(&header, 0);
  for (const BackupEpoch& e : history) {
    Put64(&header, e.epoch);
    Put64(&header, e.id);
    Put64(&header, e.first_commit);
  }
  header_checksum_ = Hash(header);
  Put64(&header, header_checksum_);
  if (BackupStatus s = WriteAll(header, {}); !s.ok()) return s;
  state_ = State::kData;
  return {};
}

BackupStatus BackupWriter::Chunk(uint64_t offset, std::string_view data, uint64_t checksum) {
  if (state_ == State::kData && BackupChunkChecksum(offset, data) != checksum) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             "the snapshot's chunk at offset " + std::to_string(offset) + " (" +
                                 std::to_string(data.size()) +
                                 " bytes) fails its checksum: it was damaged on its way"));
  }
  return Chunk(offset, data);
}

BackupStatus BackupWriter::Chunk(uint64_t offset, std::string_view data) {
  if (state_ == State::kFailed) return error_;
  if (state_ != State::kData) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             state_ == State::kNew ? "a chunk before the backup's Begin"
                                                   : "a chunk after the backup's End"));
  }
  if (offset != data_bytes_) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             "the snapshot's chunk at offset " + std::to_string(offset) +
                                 " does not follow the previous one, which ended at " +
                                 std::to_string(data_bytes_) + " (a gap or an overlap)"));
  }
  while (!data.empty()) {
    std::string_view piece = data.substr(0, kBackupMaxChunk);
    data.remove_prefix(piece.size());
    std::string head(kChunkTag);
    Put32(&head, uint32_t(piece.size()));
    Put64(&head, data_bytes_);
    Put64(&head, BackupChunkChecksum(data_bytes_, piece));
    if (BackupStatus s = WriteAll(head, piece); !s.ok()) return s;
    data_checksum_.Update(piece);
    data_bytes_ += piece.size();
    chunks_++;
  }
  return {};
}

BackupStatus BackupWriter::End(uint64_t size, uint64_t checksum) {
  if (state_ == State::kFailed) return error_;
  if (state_ != State::kData) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             state_ == State::kNew ? "the backup's End before its Begin"
                                                   : "the backup has ended already"));
  }
  if (size != data_bytes_) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             "the snapshot says it is " + std::to_string(size) + " bytes, but " +
                                 std::to_string(data_bytes_) + " arrived"));
  }
  const uint64_t digest = data_checksum_.Digest();
  if (checksum != digest) {
    return Fail(BackupStatus(BackupErrorKind::kBadInput,
                             "the snapshot's checksum " + Hex(checksum) +
                                 " is not that of the bytes that arrived (" + Hex(digest) +
                                 "): they were damaged on their way"));
  }
  std::string trailer(kTrailerTag);
  Put32(&trailer, 0);
  Put64(&trailer, data_bytes_);
  Put64(&trailer, chunks_);
  Put64(&trailer, digest);
  Put64(&trailer, Hash(trailer, header_checksum_));
  if (BackupStatus s = WriteAll(trailer, {}); !s.ok()) return s;
  struct stat st;
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && ::fsync(fd_) != 0) {
    return Fail(BackupStatus(BackupErrorKind::kIo, "cannot fsync " + name_ + ": " + Errno(errno)));
  }
  state_ = State::kDone;
  return {};
}

// --- ReadBackup.

BackupResult<BackupInfo> ReadBackup(int fd, const BackupSink& sink) { return ReadFrom(fd, {}, sink); }

BackupResult<BackupInfo> ReadBackup(const std::string& path, const BackupSink& sink) {
  if (path == "-") return ReadBackup(0, sink);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return BackupStatus(BackupErrorKind::kIo, "cannot open " + path + ": " + Errno(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  BackupResult<BackupInfo> r = ReadBackup(fd, sink);
  ::close(fd);
  return r;
}

// --- RestoreBackup.

namespace {

BackupStatus IoError(const std::string& what, int err) {
  return BackupStatus(BackupErrorKind::kIo, what + ": " + Errno(err));
}

// The first entry of a folder other than "." and ".." (and `except`), or "" if none.
BackupStatus FirstEntry(const std::string& dir, const std::string& except, std::string* first) {
  first->clear();
  DIR* d = ::opendir(dir.c_str());
  if (!d) return IoError("cannot read the folder " + dir, errno);
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == except) continue;
    *first = name;
    break;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0 && first->empty()) return IoError("cannot read the folder " + dir, err);
  return {};
}

BackupStatus SyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open " + path + " to fsync it", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return IoError("cannot fsync " + path, err);
  return {};
}

// rename(2) that refuses to replace `to` (where the filesystem can say so).
int RenameNoReplace(const std::string& from, const std::string& to) {
  int rc = ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
    // No RENAME_NOREPLACE here: rename(2) still replaces only an empty folder, never a
    // file (for data.mdb, look first: the window is the one between these two calls).
    if (::access(to.c_str(), F_OK) == 0) {
      errno = EEXIST;
      return -1;
    }
    rc = ::rename(from.c_str(), to.c_str());
  }
  return rc;
}

std::string RandomSuffix() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 6; i++) s += kChars[rd() % (sizeof kChars - 1)];
  return s;
}

// One restore: where it writes, what it made, how it publishes or undoes it.
class Restore {
 public:
  Restore(fs::path dir, bool exists)
      : dir_(std::move(dir)),
        parent_(dir_.has_parent_path() ? dir_.parent_path() : fs::path(".")),
        exists_(exists) {}
  ~Restore() {
    if (data_fd_ >= 0) ::close(data_fd_);
  }

  // Creates what the data goes into: missing parents, the temporary folder, its data.mdb.
  BackupStatus Prepare() {
    if (!exists_) {
      if (BackupStatus s = MakeParents(); !s.ok()) return s;
    }
    fs::path base = exists_ ? dir_ / ".restore-"
                            : parent_ / ("." + dir_.filename().string() + ".restore-");
    for (int attempt = 0;; attempt++) {
      fs::path candidate = base.string() + RandomSuffix();
      if (::mkdir(candidate.c_str(), 0777) == 0) {
        temp_ = candidate;
        break;
      }
      if (errno != EEXIST || attempt == 100) {
        return IoError("cannot create the folder " + candidate.string(), errno);
      }
    }
    std::string file = (temp_ / "data.mdb").string();
    data_fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (data_fd_ < 0) return IoError("cannot create " + file, errno);
    return {};
  }

  BackupStatus Write(std::string_view data) {
    if (data_fd_ < 0) {
      if (BackupStatus s = Prepare(); !s.ok()) return s;
    }
    if (!WriteFully(data_fd_, data)) {
      return IoError("cannot write " + (temp_ / "data.mdb").string(), errno);
    }
    return {};
  }

  // Makes the written file durable, ready for the caller's check.
  BackupStatus Finish() {
    if (::fsync(data_fd_) != 0) return IoError("cannot fsync " + (temp_ / "data.mdb").string(), errno);
    int rc = ::close(data_fd_);
    data_fd_ = -1;
    if (rc != 0) return IoError("cannot close " + (temp_ / "data.mdb").string(), errno);
    return {};
  }

  const fs::path& temp() const { return temp_; }

  // The temporary folder becomes the database folder.
  BackupStatus Publish() {
    // A check may have opened the database there: its reader table is not part of it.
    std::string lock = (temp_ / "lock.mdb").string();
    if (::unlink(lock.c_str()) != 0 && errno != ENOENT) return IoError("cannot remove " + lock, errno);
    if (BackupStatus s = SyncPath(temp_.string()); !s.ok()) return s;
    if (!exists_) {
      if (RenameNoReplace(temp_.string(), dir_.string()) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
          return BackupStatus(BackupErrorKind::kTarget,
                              dir_.string() + " appeared while the backup was being restored; "
                              "it was left as it is");
        }
        return IoError("cannot rename " + temp_.string() + " to " + dir_.string(), errno);
      }
      temp_.clear();
      if (BackupStatus s = SyncPath(parent_.string()); !s.ok()) return Published(s);
      return {};
    }
    std::string first;
    if (BackupStatus s = FirstEntry(dir_.string(), temp_.filename().string(), &first); !s.ok()) return s;
    if (!first.empty()) {
      return BackupStatus(BackupErrorKind::kTarget,
                          dir_.string() + " is no longer empty (it holds " + first +
                              "): something wrote there while the backup was being restored; "
                              "nothing was restored");
    }
    std::string from = (temp_ / "data.mdb").string(), to = (dir_ / "data.mdb").string();
    if (RenameNoReplace(from, to) != 0) {
      if (errno == EEXIST) {
        return BackupStatus(BackupErrorKind::kTarget,
                            to + " appeared while the backup was being restored; it was left "
                                 "as it is");
      }
      return IoError("cannot rename " + from + " to " + to, errno);
    }
    if (BackupStatus s = SyncPath(dir_.string()); !s.ok()) return Published(s);
    if (::rmdir(temp_.c_str()) != 0) return Published(IoError("cannot remove " + temp_.string(), errno));
    temp_.clear();
    if (BackupStatus s = SyncPath(dir_.string()); !s.ok()) return Published(s);
    return {};
  }

  // Undoes everything this restore made (after a failure before Publish succeeded).
  void Abandon() {
    if (data_fd_ >= 0) ::close(data_fd_);
    data_fd_ = -1;
    std::error_code ec;
    if (!temp_.empty()) fs::remove_all(temp_, ec);
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) ::rmdir(it->c_str());
    created_.clear();
  }

 private:
  // The folders above `dir` that do not exist, made from the top down, each made durable
  // in its parent.
  BackupStatus MakeParents() {
    std::vector<fs::path> missing;
    for (fs::path p = parent_; !p.empty() && p != p.root_path(); p = p.parent_path()) {
      struct stat st;
      if (::stat(p.c_str(), &st) == 0) break;
      if (errno != ENOENT) return IoError("cannot look at " + p.string(), errno);
      missing.push_back(p);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (::mkdir(it->c_str(), 0777) != 0) {
        if (errno == EEXIST) continue;
        return IoError("cannot create the folder " + it->string(), errno);
      }
      created_.push_back(*it);
      fs::path above = it->has_parent_path() ? it->parent_path() : fs::path(".");
      if (BackupStatus s = SyncPath(above.string()); !s.ok()) return s;
    }
    return {};
  }

  // An error after the database was put in place: it is whole, but maybe not durable.
  BackupStatus Published(const BackupStatus& s) {
    created_.clear();  // they hold the restored database now
    return BackupStatus(s.kind(), "the database was restored into " + dir_.string() +
                                      ", but not made durable: " + s.message());
  }

  fs::path dir_;
  fs::path parent_;
  bool exists_;
  fs::path temp_;
  int data_fd_ = -1;
  std::vector<fs::path> created_;
};

// `dir` as a restore may use it: a path to a folder that does not exist, or to an empty one.
BackupStatus CheckTarget(const fs::path& dir, bool* exists) {
  const std::string name = dir.string();
  const std::string leave = "; restore into a new folder or an empty one (nothing was changed)";
  struct stat st;
  if (::stat(name.c_str(), &st) != 0) {
    if (errno != ENOENT) return IoError("cannot look at " + name, errno);
    if (::lstat(name.c_str(), &st) == 0) {
      return BackupStatus(BackupErrorKind::kTarget,
                          name + " is a symbolic link to something that does not exist" + leave);
    }
    std::string last = dir.filename().string();
    if (last == "." || last == "..") {
      return BackupStatus(BackupErrorKind::kTarget, name + " is not a folder name" + leave);
    }
    *exists = false;
    return {};
  }
  if (!S_ISDIR(st.st_mode)) {
    return BackupStatus(BackupErrorKind::kTarget, name + " exists and is not a folder" + leave);
  }
  std::string first;
  if (BackupStatus s = FirstEntry(name, "", &first); !s.ok()) return s;
  if (!first.empty()) {
    return BackupStatus(BackupErrorKind::kTarget,
                        name + " is not empty (it holds " + first + ")" + leave);
  }
  *exists = true;
  return {};
}

}  // namespace

BackupResult<RestoreInfo> RestoreBackup(const std::string& path, const std::string& dir_arg,
                                        const RestoreOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (dir_arg.empty()) return BackupStatus(BackupErrorKind::kTarget, "no folder to restore into");
  fs::path dir = fs::path(dir_arg).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "db/" is "db"
  bool exists = false;
  if (BackupStatus s = CheckTarget(dir, &exists); !s.ok()) return s;

  int fd = 0;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoError("cannot open " + path, errno);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  Restore restore(dir, exists);
  auto on_header = [&](const BackupInfo& info) -> BackupStatus {
    if (info.snapshot_format != kSnapshotFormatLmdb) {
      return BackupStatus(BackupErrorKind::kTooNew,
                          "the backup holds a snapshot of format " +
                              std::to_string(info.snapshot_format) +
                              ", which this program cannot restore (it restores format " +
                              std::to_string(kSnapshotFormatLmdb) + ")");
    }
    return {};
  };
  BackupResult<BackupInfo> read =
      ReadFrom(fd, on_header, [&](uint64_t, std::string_view data) { return restore.Write(data); });
  if (fd != 0) ::close(fd);
  auto fail = [&](BackupStatus s) {
    restore.Abandon();
    return s;
  };
  if (!read.ok()) return fail(read.status());
  if (read->size == 0) {
    return fail(Damaged("the backup holds no data (0 bytes): there is nothing to restore"));
  }
  if (BackupStatus s = restore.Finish(); !s.ok()) return fail(s);
  if (options.check) {
    if (BackupStatus s = options.check(restore.temp().string(), *read); !s.ok()) {
      return fail(BackupStatus(BackupErrorKind::kCheck, s.message()));
    }
  }
  if (BackupStatus s = restore.Publish(); !s.ok()) return fail(s);
  RestoreInfo info;
  info.backup = std::move(read).value();
  info.data_file = (dir / "data.mdb").string();
  info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return info;
}

}  // namespace cairn
