// The backup file format (protocol/include/cairn/protocol/backup.h, docs/storage.md
// "Backups"): the writer against bad input, the reader against every kind of damage, and
// the restore, which must either put a whole database in place or leave the target as
// it was. The end-to-end restore of a real database through cairnd is restore_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "backup_files.h"
#include "cairn/engine/engine.h"
#include "temp_dir.h"
#include "test_util.h"

namespace cairn {
namespace {

using testing::BackupLayout;
using testing::Entries;
using testing::Exists;
using testing::MakeBackup;
using testing::RandomBytes;
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;

class BackupTest : public ::testing::Test {
 protected:
  // A small backup: 3500 bytes in chunks of 1000 (the last of 500), two epochs.
  void SetUp() override {
    data_ = RandomBytes(3500, 1);
    layout_.size = data_.size();
    MakeBackup(good_, data_);
    bytes_ = ReadBytes(good_);
    ASSERT_EQ(bytes_.size(), layout_.file());
  }

  // Reads `bytes` as a backup file; the data the sink saw goes to *seen.
  BackupResult<BackupInfo> Read(std::string_view bytes, std::string* seen = nullptr) {
    WriteBytes(scratch_, bytes);
    return ReadBackup(scratch_, [&](uint64_t offset, std::string_view data) {
      if (seen) {
        EXPECT_EQ(offset, seen->size());
        seen->append(data);
      }
      return BackupStatus();
    });
  }

  std::string Flipped(size_t at, char mask = 0x10) const {
    std::string b = bytes_;
    b[at] = char(b[at] ^ mask);
    return b;
  }

  TempDir dir_;
  std::string good_ = dir_.Sub("good.cairnbak"), scratch_ = dir_.Sub("scratch.cairnbak");
  std::string data_, bytes_;
  BackupLayout layout_;
};

// --- The round trip.

TEST_F(BackupTest, RoundTripThroughWriterAndReader) {
  std::string seen;
  auto r = Read(bytes_, &seen);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(seen, data_);
  EXPECT_EQ(r->format_version, kBackupFormatVersion);
  EXPECT_EQ(r->snapshot_format, kSnapshotFormatLmdb);
  EXPECT_EQ(r->commit, 42u);
  EXPECT_EQ(r->history, (std::vector<BackupEpoch>{{1, 7, 1}, {2, 9, 30}}));
  EXPECT_EQ(r->size, 3500u);
  EXPECT_EQ(r->chunks, 4u);
  EXPECT_EQ(r->file_bytes, bytes_.size());
  BackupDataChecksum all;
  all.Update(data_);
  EXPECT_EQ(r->checksum, all.Digest());
}

TEST_F(BackupTest, ManyChunksOfEverySizeThroughAPipe) {
  // A writer on one end of a pipe (as `cairn backup -` writes to standard output), the
  // reader on the other: neither side can seek.
  std::string data = RandomBytes(3 << 20, 2);
  std::vector<size_t> sizes;
  std::mt19937 rng(3);
  for (size_t at = 0; at < data.size();) {
    size_t n = std::min<size_t>(data.size() - at, 1 + rng() % 9000);
    sizes.push_back(n);
    at += n;
  }
  ASSERT_GT(sizes.size(), 500u);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::thread writer([&] {
    BackupWriter w(p[1], "the pipe");
    EXPECT_TRUE(w.Begin(7, kSnapshotFormatLmdb, std::vector<BackupEpoch>{{1, 5, 1}}).ok());
    BackupDataChecksum all;
    size_t at = 0;
    for (size_t n : sizes) {
      std::string_view piece(data.data() + at, n);
      EXPECT_TRUE(w.Chunk(at, piece).ok());
      all.Update(piece);
      at += n;
    }
    EXPECT_TRUE(w.End(at, all.Digest()).ok());
    EXPECT_EQ(w.chunks(), sizes.size());
    ::close(p[1]);
  });
  std::string seen;
  auto r = ReadBackup(p[0], [&](uint64_t, std::string_view d) {
    seen.append(d);
    return BackupStatus();
  });
  writer.join();
  ::close(p[0]);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->chunks, sizes.size());
  EXPECT_EQ(r->commit, 7u);
  EXPECT_TRUE(seen == data);
}

TEST_F(BackupTest, PiecesLongerThanTheChunkBoundAreSplit) {
  std::string data = RandomBytes(kBackupMaxChunk + 5, 4);
  MakeBackup(good_, data, data.size());
  std::string seen;
  size_t pieces = 0;
  auto r = ReadBackup(good_, [&](uint64_t, std::string_view d) {
    EXPECT_LE(d.size(), kBackupMaxChunk);
    pieces++;
    seen.append(d);
    return BackupStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(pieces, 2u);
  EXPECT_EQ(r->chunks, 2u);
  EXPECT_TRUE(seen == data);
}

TEST_F(BackupTest, AnEmptySnapshotAndAnEmptyHistoryAreAFormatMatter) {
  MakeBackup(good_, "", 1000, 0, {});
  auto r = ReadBackup(good_);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size, 0u);
  EXPECT_EQ(r->chunks, 0u);
  EXPECT_TRUE(r->history.empty());
}

TEST_F(BackupTest, TheSinkCanStopTheReading) {
  auto r = ReadBackup(good_, [&](uint64_t offset, std::string_view) {
    if (offset >= 2000) return BackupStatus(BackupErrorKind::kIo, "disk full, say");
    return BackupStatus();
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "disk full, say");
}

// --- The writer refuses input a snapshot stream cannot be.

TEST_F(BackupTest, WriterRefusesChunksOutOfOrderAndLatchesTheError) {
  std::string path = dir_.Sub("w.cairnbak");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  BackupWriter w(fd, path);
  BackupStatus early = w.Chunk(0, "abc");
  EXPECT_EQ(early.kind(), BackupErrorKind::kBadInput);
  EXPECT_EQ(early.message(), "a chunk before the backup's Begin");
  // Latched: even a correct Begin now gets the first error.
  EXPECT_EQ(w.Begin(1, kSnapshotFormatLmdb, {}).message(), early.message());
  ::close(fd);

  auto refused = [&](auto&& steps) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    BackupWriter w(fd, path);
    EXPECT_TRUE(w.Begin(1, kSnapshotFormatLmdb, {}).ok());
    BackupStatus s = steps(w);
    ::close(fd);
    // Whatever went wrong, the file has no trailer: no reader takes it for a backup.
    auto r = ReadBackup(path);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("no trailer"), std::string::npos) << r.status().message();
    return s;
  };
  BackupStatus gap = refused([](BackupWriter& w) {
    EXPECT_TRUE(w.Chunk(0, "abc").ok());
    return w.Chunk(4, "def");
  });
  EXPECT_EQ(gap.kind(), BackupErrorKind::kBadInput);
  EXPECT_EQ(gap.message(), "the snapshot's chunk at offset 4 does not follow the previous one, "
                           "which ended at 3 (a gap or an overlap)");
  BackupStatus overlap = refused([](BackupWriter& w) {
    EXPECT_TRUE(w.Chunk(0, "abc").ok());
    return w.Chunk(2, "cdef");
  });
  EXPECT_EQ(overlap.kind(), BackupErrorKind::kBadInput);
  BackupStatus damaged = refused([](BackupWriter& w) {
    return w.Chunk(0, "abc", BackupChunkChecksum(0, "abd"));
  });
  EXPECT_EQ(damaged.message(), "the snapshot's chunk at offset 0 (3 bytes) fails its checksum: "
                               "it was damaged on its way");
  // A chunk's checksum is seeded with its offset: the right bytes at the wrong place fail.
  BackupStatus moved = refused([](BackupWriter& w) {
    EXPECT_TRUE(w.Chunk(0, "abc").ok());
    return w.Chunk(3, "abc", BackupChunkChecksum(0, "abc"));
  });
  EXPECT_EQ(moved.kind(), BackupErrorKind::kBadInput);
  BackupStatus short_end = refused([](BackupWriter& w) {
    EXPECT_TRUE(w.Chunk(0, "abc").ok());
    BackupDataChecksum all;
    all.Update("abc");
    return w.End(4, all.Digest());
  });
  EXPECT_EQ(short_end.message(), "the snapshot says it is 4 bytes, but 3 arrived");
  BackupStatus bad_sum = refused([](BackupWriter& w) {
    EXPECT_TRUE(w.Chunk(0, "abc").ok());
    return w.End(3, 12345);
  });
  EXPECT_EQ(bad_sum.kind(), BackupErrorKind::kBadInput);
  EXPECT_NE(bad_sum.message().find("damaged on their way"), std::string::npos);
}

TEST_F(BackupTest, WriterRefusesABadHeaderAndCallsOutOfTurn) {
  int fd = ::open(scratch_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  {
    BackupWriter w(fd);
    BackupStatus s = w.Begin(5, kSnapshotFormatLmdb, std::vector<BackupEpoch>{{2, 1, 1}, {2, 3, 4}});
    EXPECT_EQ(s.kind(), BackupErrorKind::kBadInput);
    EXPECT_EQ(s.message(), "the epoch history is out of order: epoch 2 from commit 4 follows "
                           "epoch 2 from commit 1");
  }
  {
    BackupWriter w(fd);
    EXPECT_EQ(w.Begin(5, kSnapshotFormatLmdb, std::vector<BackupEpoch>{{1, 1, 9}, {2, 3, 4}}).kind(),
              BackupErrorKind::kBadInput);
  }
  {
    BackupWriter w(fd);
    EXPECT_EQ(w.Begin(5, 0, {}).kind(), BackupErrorKind::kBadInput);
  }
  {
    BackupWriter w(fd);
    std::vector<BackupEpoch> many(kBackupMaxEpochs + 1);
    for (size_t i = 0; i < many.size(); i++) many[i] = {i + 1, 0, 1};
    EXPECT_EQ(w.Begin(5, kSnapshotFormatLmdb, many).kind(), BackupErrorKind::kBadInput);
  }
  {
    BackupWriter w(fd);
    EXPECT_EQ(w.End(0, 0).message(), "the backup's End before its Begin");
  }
  {
    BackupWriter w(fd);
    ASSERT_TRUE(w.Begin(5, kSnapshotFormatLmdb, {}).ok());
    EXPECT_EQ(w.Begin(5, kSnapshotFormatLmdb, {}).message(), "the backup has begun already");
  }
  {
    BackupWriter w(fd);
    BackupDataChecksum none;
    ASSERT_TRUE(w.Begin(5, kSnapshotFormatLmdb, {}).ok());
    ASSERT_TRUE(w.End(0, none.Digest()).ok());
    EXPECT_EQ(w.Chunk(0, "x").message(), "a chunk after the backup's End");
  }
  ::close(fd);
  // Nothing was written by the refused Begins (the file holds the two good headers and
  // the one trailer of the last two writers).
  EXPECT_EQ(ReadBytes(scratch_).size(), 2 * (kBackupHeaderFixedSize + 8) + kBackupTrailerSize);
}

TEST_F(BackupTest, WriterReportsWhatItCannotWrite) {
  int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  BackupWriter w(fd, "/dev/full");
  BackupStatus s = w.Begin(1, kSnapshotFormatLmdb, {});
  EXPECT_EQ(s.kind(), BackupErrorKind::kIo);
  EXPECT_EQ(s.message(), "cannot write to /dev/full: No space left on device");
  ::close(fd);

  // A pipe whose reader went away (cairn backup - | a program that died).
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[0]);
  auto old = ::signal(SIGPIPE, SIG_IGN);
  BackupWriter to_pipe(p[1], "standard output");
  EXPECT_EQ(to_pipe.Begin(1, kSnapshotFormatLmdb, {}).message(),
            "cannot write to standard output: Broken pipe");
  ::signal(SIGPIPE, old);
  ::close(p[1]);
}

// --- The reader refuses damage, with a message that says what and where.

TEST_F(BackupTest, EveryFlippedByteIsRefused) {
  for (size_t at = 0; at < bytes_.size(); at++) {
    for (char mask : {char(0x01), char(0x80)}) {
      auto r = Read(Flipped(at, mask));
      EXPECT_FALSE(r.ok()) << "a flip of byte " << at << " passed";
    }
  }
}

TEST_F(BackupTest, AFlippedByteInAChunkNamesTheChunkAndItsOffset) {
  std::string seen;
  auto r = Read(Flipped(layout_.data_at(2) + 17), &seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), BackupErrorKind::kDamaged);
  EXPECT_EQ(r.status().message(), "chunk 2 at offset 2000: checksum mismatch");
  EXPECT_EQ(seen, data_.substr(0, 2000));  // the sink never saw the damaged chunk
  // The chunk's own checksum field, and its offset, damaged.
  EXPECT_EQ(Read(Flipped(layout_.chunk_at(1) + 16)).status().message(),
            "chunk 1 at offset 1000: checksum mismatch");
  EXPECT_EQ(Read(Flipped(layout_.chunk_at(1) + 9)).status().message(),
            "chunk 1 says it is at offset 5096, but the chunks before it end at 1000 (damaged, "
            "or chunks missing or out of place)");
  // Its length: past the bound is refused before anything is allocated.
  std::string huge = bytes_;
  huge[layout_.chunk_at(1) + 7] = char(0x40);
  EXPECT_EQ(Read(huge).status().message(),
            "chunk 1 at byte " + std::to_string(layout_.chunk_at(1)) +
                " of the file: its length 1073742824 is out of bounds (1 byte to 16 MiB): the "
                "file is damaged");
  EXPECT_EQ(Read(Flipped(layout_.chunk_at(3), 0x20)).status().message(),
            "at byte " + std::to_string(layout_.chunk_at(3)) +
                " of the file (after chunk 2): neither a chunk nor the trailer (it starts "
                "with \"cHNK\"): the file is damaged");
}

TEST_F(BackupTest, AFlippedByteInTheHeader) {
  // The commit, an epoch, the header's own checksum: the header checksum.
  for (size_t at : {size_t(16), size_t(40), layout_.header() - 1}) {
    auto r = Read(Flipped(at));
    EXPECT_EQ(r.status().kind(), BackupErrorKind::kDamaged) << at;
    EXPECT_EQ(r.status().message(), "header: checksum mismatch (the header is damaged)") << at;
  }
  // The magic: not a backup at all.
  auto magic = Read(Flipped(2));
  EXPECT_EQ(magic.status().kind(), BackupErrorKind::kNotBackup);
  EXPECT_EQ(magic.status().message(),
            "not a cairn backup (it starts with \"CAYRNBAK\", a backup with \"CAIRNBAK\")");
  // The epoch count, past its bound: refused before it is allocated.
  auto count = Read(Flipped(27, 0x40));
  EXPECT_EQ(count.status().message(), "the header says it holds 1073741826 epochs, more than "
                                      "the 65536 a backup can (the header is damaged)");
}

TEST_F(BackupTest, AFlippedByteInTheTrailer) {
  for (size_t at = layout_.trailer(); at < layout_.file(); at++) {
    auto r = Read(Flipped(at));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().kind(), BackupErrorKind::kDamaged) << at;
    if (at >= layout_.trailer() + 4) {
      EXPECT_EQ(r.status().message(), "trailer: checksum mismatch (the trailer is damaged, or "
                                      "belongs to another backup's header)") << at;
    }
  }
}

TEST_F(BackupTest, TheTrailerIsBoundToItsHeader) {
  // Another backup's header (a later commit) on this backup's chunks and trailer: each
  // part is sound, the whole is refused.
  std::string other = dir_.Sub("other.cairnbak");
  MakeBackup(other, data_, 1000, 43);
  std::string spliced = ReadBytes(other).substr(0, layout_.header()) + bytes_.substr(layout_.header());
  auto r = Read(spliced);
  EXPECT_EQ(r.status().message(), "trailer: checksum mismatch (the trailer is damaged, or "
                                  "belongs to another backup's header)");
}

TEST_F(BackupTest, TruncatedAnywhereIsRefused) {
  for (size_t n = 0; n < bytes_.size(); n++) {
    auto r = Read(std::string_view(bytes_).substr(0, n));
    ASSERT_FALSE(r.ok()) << "truncated to " << n << " bytes, it passed";
    EXPECT_NE(r.status().kind(), BackupErrorKind::kIo) << n;
    if (n > kBackupMagic.size()) {
      EXPECT_NE(r.status().message().find("no trailer"), std::string::npos)
          << n << ": " << r.status().message();
    }
  }
  EXPECT_EQ(Read(bytes_.substr(0, layout_.data_at(1) + 10)).status().message(),
            "truncated after 1.119 KiB (1146 bytes), in chunk 1's data (offset 1000): the "
            "backup has no trailer");
  EXPECT_EQ(Read(bytes_.substr(0, layout_.chunk_at(2))).status().message(),
            "truncated after 2.086 KiB (2136 bytes), after chunk 1: the backup has no trailer");
  EXPECT_EQ(Read(bytes_.substr(0, layout_.trailer())).status().message(),
            "truncated after 3.598 KiB (3684 bytes), after chunk 3: the backup has no trailer");
  EXPECT_EQ(Read(bytes_.substr(0, 20)).status().message(),
            "truncated after 20 bytes (20 bytes), in the header: the backup has no trailer");
}

TEST_F(BackupTest, TruncatedBigBackupSaysHowFarItGot) {
  std::string data = RandomBytes(4 << 20, 5);
  MakeBackup(good_, data, 1 << 20);
  std::string cut = ReadBytes(good_).substr(0, 3 << 20);
  auto r = Read(cut);
  EXPECT_EQ(r.status().message(), "truncated after 3 MiB (3145728 bytes), in chunk 2's data "
                                  "(offset 2097152): the backup has no trailer");
}

TEST_F(BackupTest, AnEmptyFileAndFilesOfOtherFormatsAreNotBackups) {
  auto empty = Read("");
  EXPECT_EQ(empty.status().kind(), BackupErrorKind::kNotBackup);
  EXPECT_EQ(empty.status().message(), "an empty file, not a cairn backup");

  auto random = Read(RandomBytes(5000, 6));
  EXPECT_EQ(random.status().kind(), BackupErrorKind::kNotBackup);
  EXPECT_EQ(random.status().message().rfind("not a cairn backup (it starts with \"", 0), 0u);

  auto text = Read("hello, world\n");
  EXPECT_EQ(text.status().message(),
            "not a cairn backup (it starts with \"hello, w\", a backup with \"CAIRNBAK\")");

  // A raw data.mdb, as `mdb_copy` makes it: what backups were before there were backups.
  TempDir db;
  {
    auto engine = testing::OpenOrDie(db.path());
    ASSERT_TRUE(engine->CreateCollection("c").ok());
  }
  auto mdb = Read(ReadBytes(db.Sub("data.mdb")));
  EXPECT_EQ(mdb.status().kind(), BackupErrorKind::kNotBackup);
  EXPECT_EQ(mdb.status().message(), "not a cairn backup: this is an LMDB data file (a data.mdb, "
                                    "as mdb_copy makes), not a backup made by `cairn backup`");
}

TEST_F(BackupTest, ANewerFormatVersionIsNamed) {
  std::string newer = bytes_;
  newer[8] = 7;
  auto r = Read(newer);
  EXPECT_EQ(r.status().kind(), BackupErrorKind::kTooNew);
  EXPECT_EQ(r.status().message(), "backup format 7 is newer than this program, which reads "
                                  "format 1 (or the header is damaged)");
  newer[8] = 0;
  EXPECT_EQ(Read(newer).status().kind(), BackupErrorKind::kDamaged);
}

TEST_F(BackupTest, BytesAfterTheTrailerAreRefused) {
  auto one = Read(bytes_ + "x");
  EXPECT_EQ(one.status().kind(), BackupErrorKind::kDamaged);
  EXPECT_EQ(one.status().message(),
            "bytes follow the trailer, from byte " + std::to_string(bytes_.size()) +
                " on: they are not part of the backup (two files joined, or damage)");
  EXPECT_FALSE(Read(bytes_ + bytes_).ok());
}

TEST_F(BackupTest, AFileThatCannotBeOpened) {
  auto r = ReadBackup(dir_.Sub("missing.cairnbak"));
  EXPECT_EQ(r.status().kind(), BackupErrorKind::kIo);
  EXPECT_EQ(r.status().message(),
            "cannot open " + dir_.Sub("missing.cairnbak") + ": No such file or directory");
}

// --- Restore.

class RestoreTest : public BackupTest {
 protected:
  // What a target folder holds: its names and the bytes of its files.
  std::map<std::string, std::string> Holds(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const std::string& name : Entries(dir)) out[name] = ReadBytes(dir + "/" + name);
    return out;
  }

  // The bad files every restore must refuse.
  std::vector<std::pair<std::string, std::string>> BadFiles() {
    std::string newer = bytes_;
    newer[8] = 2;
    TempDir db;
    {
      auto engine = testing::OpenOrDie(db.path());
      EXPECT_TRUE(engine->CreateCollection("c").ok());
    }
    return {
        {"a flipped byte in a chunk", Flipped(layout_.data_at(3) + 1)},
        {"a flipped byte in the header", Flipped(20)},
        {"a flipped byte in the trailer", Flipped(layout_.trailer() + 12)},
        {"truncated in a chunk", bytes_.substr(0, layout_.data_at(2) + 100)},
        {"truncated before the trailer", bytes_.substr(0, layout_.trailer())},
        {"truncated in the trailer", bytes_.substr(0, layout_.file() - 1)},
        {"an empty file", ""},
        {"random bytes", RandomBytes(10000, 8)},
        {"a raw data.mdb", ReadBytes(db.Sub("data.mdb"))},
        {"a newer format", newer},
        {"bytes after the trailer", bytes_ + "\n"},
    };
  }
};

TEST_F(RestoreTest, IntoANewFolderWithMissingParents) {
  std::string target = dir_.Sub("a/b/db");
  auto r = RestoreBackup(good_, target);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->backup.commit, 42u);
  EXPECT_EQ(r->backup.size, data_.size());
  EXPECT_EQ(r->data_file, target + "/data.mdb");
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
  EXPECT_EQ(ReadBytes(target + "/data.mdb"), data_);
  // Nothing else beside it: the temporary folder became the database folder.
  EXPECT_EQ(Entries(dir_.Sub("a/b")), (std::set<std::string>{"db"}));
}

TEST_F(RestoreTest, IntoAnEmptyFolderWhichStaysTheSameFolder) {
  std::string target = dir_.Sub("db");
  ASSERT_EQ(::mkdir(target.c_str(), 0750), 0);
  struct stat before, after;
  ASSERT_EQ(::stat(target.c_str(), &before), 0);
  auto r = RestoreBackup(good_, target + "/");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(::stat(target.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // its owner, mode and mount are the operator's
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
  EXPECT_EQ(ReadBytes(target + "/data.mdb"), data_);
}

TEST_F(RestoreTest, ANonEmptyFolderOrAFileIsRefusedAndLeftAsItIs) {
  std::string target = dir_.Sub("db");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  WriteBytes(target + "/notes.txt", "mine");
  auto r = RestoreBackup(good_, target);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), BackupErrorKind::kTarget);
  EXPECT_EQ(r.status().message(), target + " is not empty (it holds notes.txt); restore into a "
                                           "new folder or an empty one (nothing was changed)");
  EXPECT_EQ(Holds(target), (std::map<std::string, std::string>{{"notes.txt", "mine"}}));

  auto file = RestoreBackup(good_, target + "/notes.txt");
  EXPECT_EQ(file.status().kind(), BackupErrorKind::kTarget);
  EXPECT_EQ(file.status().message(),
            target + "/notes.txt exists and is not a folder; restore into a new folder or an "
                     "empty one (nothing was changed)");
  EXPECT_EQ(Holds(target), (std::map<std::string, std::string>{{"notes.txt", "mine"}}));
}

TEST_F(RestoreTest, EveryBadFileIsRefusedAndTheTargetLeftUntouched) {
  for (const auto& [what, bytes] : BadFiles()) {
    SCOPED_TRACE(what);
    std::string bad = dir_.Sub("bad.cairnbak");
    WriteBytes(bad, bytes);
    TempDir place;
    // A target that does not exist (nor its parent), one that is empty, one that holds a file.
    std::string absent = place.Sub("new/db"), empty = place.Sub("empty"), full = place.Sub("full");
    ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(full.c_str(), 0755), 0);
    WriteBytes(full + "/data.mdb", "the database that was there");
    for (const std::string& target : {absent, empty, full}) {
      auto r = RestoreBackup(bad, target);
      EXPECT_FALSE(r.ok()) << target;
    }
    EXPECT_FALSE(Exists(place.Sub("new")));  // not even the parent it would have made
    EXPECT_TRUE(Entries(empty).empty());
    EXPECT_EQ(Holds(full), (std::map<std::string, std::string>{
                               {"data.mdb", "the database that was there"}}));
    EXPECT_EQ(Entries(place.path()), (std::set<std::string>{"empty", "full"}));
  }
}

TEST_F(RestoreTest, ADamagedChunkLateInTheFileLeavesNothingBehind) {
  // The restore has written most of the data when it meets the damage.
  std::string data = RandomBytes(3 << 20, 9);
  MakeBackup(good_, data, 64 << 10);
  std::string bytes = ReadBytes(good_);
  bytes[bytes.size() - 1000] ^= 1;
  WriteBytes(good_, bytes);
  std::string empty = dir_.Sub("empty");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  auto r = RestoreBackup(good_, empty);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "chunk 47 at offset 3080192: checksum mismatch");
  EXPECT_TRUE(Entries(empty).empty());
  auto fresh = RestoreBackup(good_, dir_.Sub("fresh"));
  EXPECT_FALSE(fresh.ok());
  EXPECT_EQ(Entries(dir_.path()), (std::set<std::string>{"empty", "good.cairnbak"}));
}

TEST_F(RestoreTest, TheCheckSeesTheDataBeforeItIsPutInPlace) {
  std::string target = dir_.Sub("db");
  std::string seen_folder;
  RestoreOptions options;
  options.check = [&](const std::string& folder, const BackupInfo& info) {
    seen_folder = folder;
    EXPECT_EQ(info.commit, 42u);
    EXPECT_EQ(ReadBytes(folder + "/data.mdb"), data_);
    EXPECT_FALSE(Exists(target));
    WriteBytes(folder + "/lock.mdb", "a reader table");  // as an Engine open leaves
    return BackupStatus();
  };
  auto r = RestoreBackup(good_, target, options);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(seen_folder.rfind(dir_.Sub(".db.restore-"), 0), 0u) << seen_folder;
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
}

TEST_F(RestoreTest, AFailedCheckLeavesTheTargetAsItWas) {
  RestoreOptions options;
  options.check = [&](const std::string&, const BackupInfo&) {
    return BackupStatus(BackupErrorKind::kDamaged, "the last commit is 41, the backup says 42");
  };
  auto r = RestoreBackup(good_, dir_.Sub("x/y/db"), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), BackupErrorKind::kCheck);
  EXPECT_EQ(r.status().message(), "the last commit is 41, the backup says 42");
  EXPECT_FALSE(Exists(dir_.Sub("x")));
  std::string empty = dir_.Sub("empty");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  EXPECT_FALSE(RestoreBackup(good_, empty, options).ok());
  EXPECT_TRUE(Entries(empty).empty());
}

TEST_F(RestoreTest, SomethingWrittenIntoTheTargetMeanwhileWins) {
  std::string empty = dir_.Sub("empty");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  RestoreOptions options;
  options.check = [&](const std::string&, const BackupInfo&) {
    WriteBytes(empty + "/data.mdb", "a server started here meanwhile");
    return BackupStatus();
  };
  auto r = RestoreBackup(good_, empty, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), BackupErrorKind::kTarget);
  EXPECT_EQ(ReadBytes(empty + "/data.mdb"), "a server started here meanwhile");
  EXPECT_EQ(Entries(empty), (std::set<std::string>{"data.mdb"}));

  std::string fresh = dir_.Sub("fresh");
  options.check = [&](const std::string&, const BackupInfo&) {
    EXPECT_EQ(::mkdir(fresh.c_str(), 0755), 0);
    WriteBytes(fresh + "/other", "x");
    return BackupStatus();
  };
  auto again = RestoreBackup(good_, fresh, options);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().kind(), BackupErrorKind::kTarget);
  EXPECT_EQ(Entries(fresh), (std::set<std::string>{"other"}));
}

TEST_F(RestoreTest, RefusedBeforeAnythingIsCreated) {
  auto missing = RestoreBackup(dir_.Sub("missing.cairnbak"), dir_.Sub("p/db"));
  EXPECT_EQ(missing.status().kind(), BackupErrorKind::kIo);
  auto empty_snapshot = dir_.Sub("empty.cairnbak");
  MakeBackup(empty_snapshot, "");
  auto nothing = RestoreBackup(empty_snapshot, dir_.Sub("p/db"));
  EXPECT_EQ(nothing.status().message(),
            "the backup holds no data (0 bytes): there is nothing to restore");
  auto other_format = dir_.Sub("format2.cairnbak");
  MakeBackup(other_format, data_, 1000, 42, {}, 2);
  EXPECT_TRUE(ReadBackup(other_format).ok());  // a sound file, of a snapshot format...
  auto unknown = RestoreBackup(other_format, dir_.Sub("p/db"));
  EXPECT_EQ(unknown.status().kind(), BackupErrorKind::kTooNew);  // ...this program cannot restore
  EXPECT_EQ(unknown.status().message(), "the backup holds a snapshot of format 2, which this "
                                        "program cannot restore (it restores format 1)");
  EXPECT_FALSE(Exists(dir_.Sub("p")));
}

}  // namespace
}  // namespace cairn
