// The backup file (docs/storage.md, "Backups"): one snapshot of a database, as the
// Snapshot stream delivers it (a compacted LMDB data file), in a file that says what it
// holds and proves it is whole. Format version 1:
//
//   header   "CAIRNBAK", format version, snapshot format, commit, the epoch history,
//            the header's XXH3 checksum
//   chunks   "CHNK", length, offset, XXH3 of the data (seeded with the offset), data
//   trailer  "TRLR", size, chunk count, XXH3 of all the data, the trailer's checksum
//
// Integers are little-endian and fixed width. Size and whole checksum are in a trailer,
// not the header, because a backup may be written to a pipe (`cairn backup -`), which
// cannot seek back to fill them in once they are known.
//
// The writer takes the snapshot as it streams in; the reader checks every byte before
// it says yes; the restore never leaves a half-restored folder. No exceptions escape
// (but std::bad_alloc); errors are BackupStatus values with a message that says what is
// wrong and where. A leaf: the standard library and xxHash only (no LMDB, no engine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cairn {

// --- The format's constants.

inline constexpr std::string_view kBackupMagic = "CAIRNBAK";
inline constexpr uint32_t kBackupFormatVersion = 1;
// The snapshot format a backup holds (SnapshotBegin.format): 1 is a compacted LMDB data
// file (mdb_env_copyfd2 with MDB_CP_COMPACT), restored as data.mdb.
inline constexpr uint32_t kSnapshotFormatLmdb = 1;
// A chunk's data is 1 byte to 16 MiB, so that a reader never allocates more than that,
// whatever a damaged length announces. The writer splits longer pieces.
inline constexpr uint32_t kBackupMaxChunk = 16 << 20;
// At most this many epochs in the header's history (one per promotion).
inline constexpr uint32_t kBackupMaxEpochs = 65536;

inline constexpr size_t kBackupHeaderFixedSize = 32;  // before the epochs
inline constexpr size_t kBackupEpochSize = 24;
inline constexpr size_t kBackupChunkHeaderSize = 24;
inline constexpr size_t kBackupTrailerSize = 40;

// --- Errors.

enum class BackupErrorKind : uint8_t {
  kNone = 0,
  kIo,         // reading or writing a file or folder failed (the message has errno's text)
  kNotBackup,  // not a cairn backup at all (another format, an empty file)
  kTooNew,     // a backup of a format version this program does not read
  kDamaged,    // a cairn backup that fails a check: checksum, truncation, order, bounds
  kBadInput,   // the writer was given what a snapshot stream cannot be (order, checksums)
  kTarget,     // the restore's target folder: exists and is not empty, or is not a folder
  kCheck,      // the caller's check of a restored database (RestoreOptions::check) failed
};

class [[nodiscard]] BackupStatus {
 public:
  BackupStatus() = default;
  BackupStatus(BackupErrorKind kind, std::string message)
      : kind_(kind), message_(std::move(message)) {}

  bool ok() const { return kind_ == BackupErrorKind::kNone; }
  BackupErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

 private:
  BackupErrorKind kind_ = BackupErrorKind::kNone;
  std::string message_;
};

// A value or the error that stands in its place.
template <typename T>
class [[nodiscard]] BackupResult {
 public:
  BackupResult(T value) : v_(std::move(value)) {}
  BackupResult(BackupStatus error) : v_(std::move(error)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const BackupStatus& status() const {
    static const BackupStatus kOk;
    return ok() ? kOk : std::get<BackupStatus>(v_);
  }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, BackupStatus> v_;
};

// --- What a backup holds.

// One epoch of the database's history (the engine's EpochStart, which this leaf cannot
// include): commits from first_commit on were made by the primary of this epoch.
struct BackupEpoch {
  uint64_t epoch = 0;
  uint64_t id = 0;
  uint64_t first_commit = 0;
  bool operator==(const BackupEpoch&) const = default;
};

struct BackupInfo {
  uint32_t format_version = 0;
  uint32_t snapshot_format = 0;
  uint64_t commit = 0;  // the last commit the snapshot holds
  std::vector<BackupEpoch> history;
  uint64_t size = 0;        // bytes of snapshot data
  uint64_t chunks = 0;
  uint64_t checksum = 0;    // XXH3-64 of the data
  uint64_t file_bytes = 0;  // bytes of the backup file, header to trailer
};

// The checksums of the Snapshot stream and of the file, defined once: a chunk's is the
// XXH3-64 of its data seeded with its offset; the data's is the XXH3-64 of all of it.
uint64_t BackupChunkChecksum(uint64_t offset, std::string_view data);

class BackupDataChecksum {
 public:
  BackupDataChecksum();
  ~BackupDataChecksum();
  BackupDataChecksum(const BackupDataChecksum&) = delete;
  BackupDataChecksum& operator=(const BackupDataChecksum&) = delete;
  void Update(std::string_view data);
  uint64_t Digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// --- Writing.

// Writes a backup to a POSIX descriptor (a file, a pipe, standard output) as a snapshot
// streams in: Begin (SnapshotBegin), Chunk for each SnapshotChunk, End (SnapshotEnd).
// Checks what it is given: chunks in order with no gap, each stream checksum, and at the
// end the size and checksum of everything against what it saw; nothing inconsistent is
// written as if it were good. The trailer is written only by an End that matches, so a
// backup cut short by any failure (the writer's, the stream's, the process's) has no
// trailer and is refused by every reader. The first error is latched: later calls return
// it again. Does not own the descriptor.
class BackupWriter {
 public:
  // `name` says what the descriptor is, in messages ("backup.cairn", "standard output").
  explicit BackupWriter(int fd, std::string name = "the backup");
  ~BackupWriter();
  BackupWriter(const BackupWriter&) = delete;
  BackupWriter& operator=(const BackupWriter&) = delete;

  // Writes the header. The history must be in order (epochs increasing, first commits
  // not decreasing) and at most kBackupMaxEpochs long.
  BackupStatus Begin(uint64_t commit, uint32_t snapshot_format,
                     std::span<const BackupEpoch> history);
  // The snapshot's bytes at `offset`, which must be where the previous chunk ended (0 for
  // the first). Any length; pieces longer than kBackupMaxChunk become several chunks in
  // the file. An empty piece writes nothing.
  BackupStatus Chunk(uint64_t offset, std::string_view data);
  // The same, first checking the stream's checksum (SnapshotChunk.checksum).
  BackupStatus Chunk(uint64_t offset, std::string_view data, uint64_t checksum);
  // Checks `size` and `checksum` (SnapshotEnd) against the data written, then writes the
  // trailer and, if the descriptor is a regular file, fsyncs it.
  BackupStatus End(uint64_t size, uint64_t checksum);

  uint64_t data_bytes() const { return data_bytes_; }
  uint64_t file_bytes() const { return file_bytes_; }
  uint64_t chunks() const { return chunks_; }

 private:
  enum class State : uint8_t { kNew, kData, kDone, kFailed };
  BackupStatus Fail(BackupStatus s);
  BackupStatus WriteAll(std::string_view head, std::string_view body);

  int fd_;
  std::string name_;
  State state_ = State::kNew;
  BackupStatus error_;
  uint64_t header_checksum_ = 0;
  uint64_t data_bytes_ = 0, file_bytes_ = 0, chunks_ = 0;
  BackupDataChecksum data_checksum_;
};

// --- Reading.

// Called with each chunk's data, in order, once that chunk has passed its own checks
// (the backup as a whole is good only if ReadBackup then returns ok). An error it returns
// stops the reading and is returned as is.
using BackupSink = std::function<BackupStatus(uint64_t offset, std::string_view data)>;

// Reads a backup from `fd` to its end and checks everything: magic, format version,
// header checksum, each chunk's bounds, offset and checksum, the trailer's checksum,
// size, chunk count and data checksum, and that nothing follows the trailer. `sink` may
// be empty (a check only). Errors name what is wrong and where: "chunk 12 at offset
// 25165824: checksum mismatch", "truncated after 3 MiB ...: no trailer", "not a cairn
// backup (...)", "backup format 7 is newer than this program, which reads format 1".
BackupResult<BackupInfo> ReadBackup(int fd, const BackupSink& sink = {});
// The same for a file; "-" is standard input. A file that cannot be opened is kIo.
BackupResult<BackupInfo> ReadBackup(const std::string& path, const BackupSink& sink = {});

// --- Restoring.

struct RestoreOptions {
  // Called once the whole backup has been read, checked and written to disk, with the
  // temporary folder that holds it (a data.mdb) before it becomes `dir`: an error here
  // stops the restore and the folder is removed. cairnd opens the database there to
  // check its last commit; a lock.mdb the check leaves is removed afterwards.
  std::function<BackupStatus(const std::string& folder, const BackupInfo& info)> check;
};

struct RestoreInfo {
  BackupInfo backup;
  std::string data_file;  // DIR/data.mdb
  double seconds = 0;     // reading, checking, writing and syncing
};

// Restores the backup at `path` ("-": standard input) as the database folder `dir`.
// `dir` must not exist, or be an empty folder: anything else is refused and left as it
// is. Missing parent folders are created (and removed again if the restore fails). The
// backup is read and checked into a temporary folder (a new `dir`: ".NAME.restore-XXXXXX"
// beside it, renamed to `dir` at the end; an existing empty `dir`: ".restore-XXXXXX" in
// it, whose data.mdb is renamed into `dir`, so that the folder's owner, mode and mount
// stay), fsynced (file and folders) before and after the rename. On any error the
// temporary folder is removed and `dir` is as it was: never half-restored.
BackupResult<RestoreInfo> RestoreBackup(const std::string& path, const std::string& dir,
                                        const RestoreOptions& options = {});

}  // namespace cairn
