// The write-ahead log (engine/src/wal.h): records across segments and reopens, and what
// recovery makes of a log cut by a power loss (every byte offset between what was synced
// and what was written, with bytes flipped in the cut record, pages persisted out of
// order) against damage to what had been synced, which it must refuse.
#include "wal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace cairn::internal {
namespace {

namespace fs = std::filesystem;
using cairn::testing::TempDir;

std::string Payload(uint64_t commit, size_t size) {
  std::string p(size, '\0');
  for (size_t i = 0; i < size; i++) p[i] = char((commit * 131 + i * 7) & 0xff);
  return p;
}

struct Record {
  uint64_t commit;
  uint32_t type;
  std::string payload;
};

std::vector<Record> ReadAll(const Wal& wal, uint64_t from = 1) {
  std::vector<Record> out;
  Status s = wal.Read(from, [&](uint64_t c, uint32_t t, std::string_view p) {
    out.push_back(Record{c, t, std::string(p)});
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::unique_ptr<Wal> OpenOk(const std::string& dir, const WalOptions& o,
                            WalRecovery* rec = nullptr) {
  std::unique_ptr<Wal> wal;
  Status s = Wal::Open(dir, o, &wal, rec);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return wal;
}

std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".wal") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

void ExpectRecords(const std::vector<Record>& got, uint64_t first, uint64_t last,
                   size_t (*size_of)(uint64_t)) {
  ASSERT_EQ(got.size(), last + 1 - first);
  for (size_t i = 0; i < got.size(); i++) {
    uint64_t c = first + i;
    ASSERT_EQ(got[i].commit, c);
    ASSERT_EQ(got[i].type, uint32_t(1 + c % 3));
    ASSERT_EQ(got[i].payload, Payload(c, size_of(c))) << "commit " << c;
  }
}

size_t VariedSize(uint64_t c) { return size_t((c * 2654435761u) % 3001); }
size_t SmallSize(uint64_t c) { return size_t(20 + c % 50); }

void AppendRange(Wal& wal, uint64_t first, uint64_t last, size_t (*size_of)(uint64_t)) {
  for (uint64_t c = first; c <= last; c++) {
    Status s = wal.Append(c, uint32_t(1 + c % 3), Payload(c, size_of(c)));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
}

class WalModes : public ::testing::TestWithParam<WalOptions::Preallocate> {};

TEST_P(WalModes, RecordsGoAcrossSegmentsAndSurviveReopening) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 16 << 10;
  o.preallocate = GetParam();
  uint64_t c = 100;  // an empty log starts wherever its first record says
  {
    auto wal = OpenOk(dir.path(), o);
    EXPECT_EQ(wal->first_commit(), 0u);
    std::mt19937 rng(7);
    while (c < 600) {
      uint64_t n = 1 + rng() % 20;
      AppendRange(*wal, c, c + n - 1, VariedSize);
      ASSERT_TRUE(wal->Write(rng() % 2 == 0).ok());
      c += n;
    }
    ASSERT_TRUE(wal->Sync().ok());
    EXPECT_EQ(wal->synced_commit(), c - 1);
    EXPECT_GT(wal->segments(), 20u);
    ExpectRecords(ReadAll(*wal, 100), 100, c - 1, VariedSize);
    ExpectRecords(ReadAll(*wal, 377), 377, c - 1, VariedSize);
  }
  WalRecovery rec;
  auto wal = OpenOk(dir.path(), o, &rec);
  EXPECT_FALSE(rec.cut);
  EXPECT_EQ(rec.first_commit, 100u);
  const uint64_t last = rec.last_commit;
  EXPECT_EQ(last, c - 1);
  ExpectRecords(ReadAll(*wal, 100), 100, last, VariedSize);
  // It goes on where it was.
  EXPECT_EQ(wal->Append(last + 2, 1, "x").code(), Code::kInternal);
  AppendRange(*wal, last + 1, last + 50, VariedSize);
  ASSERT_TRUE(wal->Write(true).ok());
  wal.reset();
  wal = OpenOk(dir.path(), o, &rec);
  EXPECT_EQ(rec.last_commit, last + 50);
  ExpectRecords(ReadAll(*wal, 100), 100, last + 50, VariedSize);
}

INSTANTIATE_TEST_SUITE_P(Preallocate, WalModes,
                         ::testing::Values(WalOptions::Preallocate::kZeroFill,
                                           WalOptions::Preallocate::kFallocate,
                                           WalOptions::Preallocate::kNone));

// O_DSYNC writes for synced batches, unsynced ones between them: the same log.
TEST(Wal, DsyncWritesMakeTheSameLog) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 8 << 10;
  o.dsync_writes = true;
  {
    auto wal = OpenOk(dir.path(), o);
    for (uint64_t c = 1; c <= 300; c += 10) {
      AppendRange(*wal, c, c + 9, VariedSize);
      bool sync = c % 20 == 1;
      ASSERT_TRUE(wal->Write(sync).ok());
      if (sync) {
        EXPECT_EQ(wal->synced_commit(), c + 9);
      }
    }
    ASSERT_TRUE(wal->Sync().ok());
    EXPECT_EQ(wal->synced_commit(), 300u);
  }
  WalRecovery rec;
  auto wal = OpenOk(dir.path(), o, &rec);
  EXPECT_FALSE(rec.cut);
  ExpectRecords(ReadAll(*wal), 1, 300, VariedSize);
}

TEST(Wal, ARecordLargerThanASegmentGetsASegmentOfItsOwn) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 8 << 10;
  auto wal = OpenOk(dir.path(), o);
  std::string big = Payload(2, 100 << 10);
  ASSERT_TRUE(wal->Append(1, 1, "a").ok());
  ASSERT_TRUE(wal->Append(2, 1, big).ok());
  ASSERT_TRUE(wal->Append(3, 1, "c").ok());
  ASSERT_TRUE(wal->Write(true).ok());
  // The big one's segment is rounded up to whole pages: commit 3 fits after it.
  EXPECT_EQ(wal->segments(), 2u);
  wal.reset();
  wal = OpenOk(dir.path(), o);
  auto got = ReadAll(*wal);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].payload, big);
  EXPECT_EQ(got[2].payload, "c");
}

TEST(Wal, AppendRefusesGapsRepeatsAndTypeZero) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 1 << 20;
  auto wal = OpenOk(dir.path(), o);
  EXPECT_EQ(wal->Append(0, 1, "x").code(), Code::kInternal);
  ASSERT_TRUE(wal->Append(5, 1, "x").ok());
  EXPECT_EQ(wal->Append(5, 1, "x").code(), Code::kInternal);
  EXPECT_EQ(wal->Append(7, 1, "x").code(), Code::kInternal);
  EXPECT_EQ(wal->Append(6, 0, "x").code(), Code::kInternal);
  ASSERT_TRUE(wal->Append(6, 1, "y").ok());
  ASSERT_TRUE(wal->Write(true).ok());
  auto got = ReadAll(*wal, 5);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].payload, "y");
}

TEST(Wal, ReadOnlySeesWrittenRecordsAndTrimDeletesWholeSegmentsBelow) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 4 << 10;
  auto wal = OpenOk(dir.path(), o);
  AppendRange(*wal, 1, 10, SmallSize);
  EXPECT_TRUE(ReadAll(*wal).empty());  // appended, not written
  ASSERT_TRUE(wal->Write(false).ok());
  EXPECT_EQ(ReadAll(*wal).size(), 10u);
  AppendRange(*wal, 11, 400, SmallSize);
  ASSERT_TRUE(wal->Write(true).ok());
  size_t before = wal->segments();
  ASSERT_GT(before, 5u);
  uint64_t bytes = wal->bytes();
  ASSERT_TRUE(wal->TrimBefore(200).ok());
  EXPECT_LT(wal->segments(), before);
  EXPECT_LT(wal->bytes(), bytes);
  EXPECT_LE(wal->first_commit(), 200u);  // commit 200 is kept
  EXPECT_GT(wal->first_commit(), 1u);
  EXPECT_EQ(Segments(dir.path()).size(), wal->segments());
  uint64_t first = wal->first_commit();
  ExpectRecords(ReadAll(*wal, first), first, 400, SmallSize);
  Status s = wal->Read(first - 1, [](uint64_t, uint32_t, std::string_view) { return true; });
  EXPECT_EQ(s.code(), Code::kLogTruncated);
  // Trimming past the end keeps the segment being written.
  ASSERT_TRUE(wal->TrimBefore(10'000).ok());
  EXPECT_EQ(wal->segments(), 1u);
  wal.reset();
  WalRecovery rec;
  wal = OpenOk(dir.path(), o, &rec);
  EXPECT_EQ(rec.last_commit, 400u);
  EXPECT_EQ(rec.first_commit, wal->first_commit());
}

TEST(Wal, ReadersRunWhileTheWriterAppends) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 8 << 10;
  auto wal = OpenOk(dir.path(), o);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      uint64_t expect = 1;
      Status s = wal->Read(1, [&](uint64_t c, uint32_t, std::string_view p) {
        EXPECT_EQ(c, expect++);
        EXPECT_EQ(p, Payload(c, SmallSize(c)));
        return true;
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
  });
  for (uint64_t c = 1; c <= 2000 && !HasFailure(); c += 10) {
    AppendRange(*wal, c, c + 9, SmallSize);
    EXPECT_TRUE(wal->Write(false).ok());
  }
  done = true;
  reader.join();
  ExpectRecords(ReadAll(*wal), 1, 2000, SmallSize);
}

// Trims beside readers: a reader that started before a trim reads its segments to the end
// (it holds their descriptors); one that asks for a trimmed commit is told so.
TEST(Wal, ReadersRunWhileTheWriterTrims) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 4 << 10;
  auto wal = OpenOk(dir.path(), o);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0}, truncated{0};
  std::thread reader([&] {
    while (!done.load()) {
      uint64_t from = wal->first_commit();
      if (from == 0) continue;
      uint64_t expect = from;
      Status s = wal->Read(from, [&](uint64_t c, uint32_t, std::string_view p) {
        EXPECT_EQ(c, expect++);
        EXPECT_EQ(p, Payload(c, SmallSize(c)));
        return true;
      });
      if (s.code() == Code::kLogTruncated) {
        truncated++;  // trimmed between first_commit() and Read
      } else {
        EXPECT_TRUE(s.ok()) << s.ToString();
        reads++;
      }
    }
  });
  for (uint64_t c = 1; c <= 3000 && !HasFailure(); c += 10) {
    AppendRange(*wal, c, c + 9, SmallSize);
    EXPECT_TRUE(wal->Write(false).ok());
    if (c > 500) {
      EXPECT_TRUE(wal->TrimBefore(c - 400).ok());
    }
  }
  done = true;
  reader.join();
  EXPECT_GT(reads.load(), 0u);
  const uint64_t first = wal->first_commit();
  EXPECT_GT(first, 1u);
  ExpectRecords(ReadAll(*wal, first), first, 3000, SmallSize);
}

TEST(Wal, TheNextSegmentIsTheOnePreparedAhead) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 4 << 10;
  auto wal = OpenOk(dir.path(), o);
  AppendRange(*wal, 1, 1, SmallSize);
  ASSERT_TRUE(wal->Write(true).ok());
  for (int i = 0; i < 500 && !wal->spare_ready(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(wal->spare_ready());
  struct stat spare;
  ASSERT_EQ(::stat(dir.Sub("spare.tmp").c_str(), &spare), 0);
  uint64_t c = 2;
  while (wal->segments() < 2) {
    AppendRange(*wal, c, c, SmallSize);
    ASSERT_TRUE(wal->Write(false).ok());
    c++;
  }
  struct stat used;
  ASSERT_EQ(::stat(Segments(dir.path()).back().c_str(), &used), 0);
  EXPECT_EQ(used.st_ino, spare.st_ino) << "the new segment is the spare, renamed";
  ExpectRecords(ReadAll(*wal), 1, c - 1, SmallSize);
}

// A crash just after a new segment was made (or while its first record was written)
// leaves a last segment without a record: recovery deletes it, and the segment made for
// the next record, under the same name, is the only one of that name.
TEST(WalRecovery, ALastSegmentWithoutRecordsIsReplacedNotDoubled) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 4 << 10;
  o.prepare_ahead = false;
  uint64_t c = 1;
  {
    auto wal = OpenOk(dir.path(), o);
    while (wal->segments() < 2) {
      AppendRange(*wal, c, c, SmallSize);
      c++;
    }
    ASSERT_TRUE(wal->Write(true).ok());
  }
  auto segs = Segments(dir.path());
  ASSERT_EQ(segs.size(), 2u);
  const uint64_t next = c - 1;  // the first (and only) commit of the second segment
  std::string second = ReadFile(segs[1]);
  std::fill(second.begin() + kWalSegmentHeader, second.end(), '\0');  // its record torn
  WriteFile(segs[1], second);
  WalRecovery rec;
  auto wal = OpenOk(dir.path(), o, &rec);
  ASSERT_TRUE(wal);
  EXPECT_EQ(rec.last_commit, next - 1);
  EXPECT_EQ(Segments(dir.path()).size(), 1u) << "the empty segment is gone";
  // A record too large for what is left of the first segment gets a segment under the
  // name the deleted one had.
  std::string big = Payload(next, 8000);
  ASSERT_TRUE(wal->Append(next, 1, big).ok());
  AppendRange(*wal, next + 1, next + 2, SmallSize);
  ASSERT_TRUE(wal->Write(true).ok());
  ASSERT_EQ(wal->segments(), 3u);  // the first, the big record's, and the next
  // Trims the first segment only: had the deleted segment stayed on the list, its name
  // would have taken the big record's file with it.
  ASSERT_TRUE(wal->TrimBefore(next).ok());
  EXPECT_EQ(wal->segments(), 2u);
  EXPECT_EQ(Segments(dir.path()).size(), 2u);
  wal.reset();
  wal = OpenOk(dir.path(), o, &rec);
  EXPECT_EQ(rec.first_commit, next);
  EXPECT_EQ(rec.last_commit, next + 2);
  auto got = ReadAll(*wal, next);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].payload, big);
}

// --- Power loss and damage. One segment holds `synced` records on disk and then
// `unsynced` more that were written but not yet synced.
struct Cut {
  TempDir dir;
  WalOptions o;
  std::string segment;         // its path
  std::string bytes;           // its content after the writes
  std::vector<uint64_t> ends;  // ends[c]: offset after commit c's record (ends[0]: first)
  std::vector<uint64_t> data_ends;  // the same without the padding
  uint64_t synced_end = 0, written_end = 0;

  Cut(uint64_t synced, uint64_t unsynced, uint64_t group) { Build(synced, unsynced, group); }
  void Build(uint64_t synced, uint64_t unsynced, uint64_t group) {
    o.segment_size = 64 << 10;
    o.prepare_ahead = false;
    auto wal = OpenOk(dir.path(), o);
    ends.push_back(kWalSegmentHeader);
    data_ends.push_back(kWalSegmentHeader);
    auto add = [&](uint64_t c) {
      ASSERT_TRUE(wal->Append(c, uint32_t(1 + c % 3), Payload(c, SmallSize(c))).ok());
      data_ends.push_back(ends.back() + kWalRecordHeader + SmallSize(c));
      ends.push_back(ends.back() + kWalRecordHeader + ((SmallSize(c) + 7) & ~size_t{7}));
    };
    for (uint64_t c = 1; c <= synced; c++) {
      add(c);
      if (c % group == 0 || c == synced) {
        ASSERT_TRUE(wal->Write(true).ok());
      }
    }
    for (uint64_t c = synced + 1; c <= synced + unsynced; c++) add(c);
    ASSERT_TRUE(wal->Write(false).ok());
    wal.reset();
    segment = Segments(dir.path()).at(0);
    bytes = ReadFile(segment);
    synced_end = ends[synced];
    written_end = ends.back();
  }
  // The segment as a power loss may leave it: `bytes` with `lost` ranges back to zero.
  void Install(const std::string& content) const { WriteFile(segment, content); }
  uint64_t LastWhole(uint64_t cut) const {
    uint64_t c = 0;
    while (c + 1 < ends.size() && data_ends[c + 1] <= cut) c++;  // padding is not checked
    return c;
  }
};

TEST(WalRecovery, APowerLossAtAnyByteKeepsEverySyncedRecordAndNoHalfRecord) {
  Cut cut(/*synced=*/20, /*unsynced=*/8, /*group=*/5);
  ASSERT_FALSE(HasFatalFailure());
  for (uint64_t at = cut.synced_end; at <= cut.written_end; at++) {
    // 0: the bytes past `at` did not reach the disk; 1: and a byte flipped in the part of
    // the cut record that did; 2: and a byte flipped in the last whole record, when it
    // was not synced.
    for (int flip = 0; flip < 3; flip++) {
      std::string content = cut.bytes;
      std::fill(content.begin() + ptrdiff_t(at), content.begin() + ptrdiff_t(cut.written_end),
                '\0');
      uint64_t whole = cut.LastWhole(at);
      uint64_t expect = whole;
      if (flip == 1) {
        if (at <= cut.ends[whole]) continue;  // the cut is between records
        content[size_t((cut.ends[whole] + at) / 2)] ^= 0x5a;
      } else if (flip == 2) {
        if (cut.ends[whole - 1] < cut.synced_end) continue;  // that record was synced
        content[size_t(cut.ends[whole - 1] + kWalRecordHeader + 5)] ^= 0x5a;
        expect = whole - 1;
      }
      SCOPED_TRACE("cut at " + std::to_string(at) + ", flip " + std::to_string(flip));
      cut.Install(content);
      WalRecovery rec;
      auto wal = OpenOk(cut.dir.path(), cut.o, &rec);
      ASSERT_TRUE(wal);
      ASSERT_EQ(rec.last_commit, expect);
      ExpectRecords(ReadAll(*wal), 1, expect, SmallSize);
      EXPECT_EQ(rec.cut, at > cut.ends[expect]);
      std::string after = ReadFile(cut.segment).substr(size_t(cut.ends[expect]));
      EXPECT_EQ(after, std::string(after.size(), '\0')) << "a cut tail is zeroed";
      // The cut is final: appending again and reopening finds only the new records.
      AppendRange(*wal, expect + 1, expect + 3, VariedSize);
      ASSERT_TRUE(wal->Write(true).ok());
      wal.reset();
      wal = OpenOk(cut.dir.path(), cut.o, &rec);
      ASSERT_EQ(rec.last_commit, expect + 3);
      EXPECT_FALSE(rec.cut);
      auto got = ReadAll(*wal);
      ASSERT_EQ(got.size(), expect + 3);
      EXPECT_EQ(got.back().payload, Payload(expect + 3, VariedSize(expect + 3)));
      if (HasFatalFailure()) return;
    }
  }
}

TEST(WalRecovery, PagesOfAnUnsyncedBatchPersistedOutOfOrderAreATornTail) {
  Cut cut(/*synced=*/10, /*unsynced=*/60, /*group=*/10);
  ASSERT_FALSE(HasFatalFailure());
  // The first page written after the sync did not reach the disk, later ones did.
  uint64_t page = (cut.synced_end / 512 + 1) * 512;
  ASSERT_LT(page + 512, cut.written_end);
  std::string content = cut.bytes;
  std::fill(content.begin() + ptrdiff_t(page), content.begin() + ptrdiff_t(page + 512), '\0');
  cut.Install(content);
  WalRecovery rec;
  auto wal = OpenOk(cut.dir.path(), cut.o, &rec);
  ASSERT_TRUE(wal);
  uint64_t whole = cut.LastWhole(page);
  EXPECT_EQ(rec.last_commit, whole);
  EXPECT_GE(whole, 10u);
  EXPECT_TRUE(rec.cut);
  EXPECT_GT(rec.cut_bytes, 512u);  // the records past the hole are gone too
  AppendRange(*wal, whole + 1, whole + 1, SmallSize);
  ASSERT_TRUE(wal->Write(true).ok());
  wal.reset();
  wal = OpenOk(cut.dir.path(), cut.o, &rec);
  EXPECT_EQ(rec.last_commit, whole + 1);
}

TEST(WalRecovery, DamageToASyncedRecordIsRefusedNamingTheSegmentAndOffset) {
  Cut cut(/*synced=*/30, /*unsynced=*/0, /*group=*/5);
  ASSERT_FALSE(HasFatalFailure());
  for (uint64_t c : {1u, 12u, 26u}) {
    for (int how = 0; how < 2; how++) {
      std::string content = cut.bytes;
      uint64_t at = cut.ends[c - 1];
      if (how == 0) {
        content[size_t(at + kWalRecordHeader + 3)] ^= 0x01;  // one bit of the payload
      } else {
        std::fill(content.begin() + ptrdiff_t(at),
                  content.begin() + ptrdiff_t(at + kWalRecordHeader), '\0');  // a zeroed header
      }
      cut.Install(content);
      std::unique_ptr<Wal> wal;
      Status s = Wal::Open(cut.dir.path(), cut.o, &wal, nullptr);
      if (c > 25) {
        // Nothing after commits 26-30 says they were synced: indistinguishable from a torn
        // tail, they are cut (the log knows no more than what its records say).
        ASSERT_TRUE(s.ok()) << s.ToString();
        EXPECT_EQ(wal->last_commit(), c - 1);
        cut.Install(cut.bytes);
        continue;
      }
      EXPECT_EQ(s.code(), Code::kCorrupted) << "commit " << c;
      EXPECT_NE(s.message().find(cut.segment), std::string::npos) << s.message();
      EXPECT_NE(s.message().find("offset " + std::to_string(at)), std::string::npos)
          << s.message();
      // The log is left as it was: nothing was cut.
      EXPECT_EQ(ReadFile(cut.segment), content);
    }
  }
}

TEST(WalRecovery, DamageInAFullSegmentOrAMissingSegmentIsRefused) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 4 << 10;
  {
    auto wal = OpenOk(dir.path(), o);
    AppendRange(*wal, 1, 300, SmallSize);
    ASSERT_TRUE(wal->Write(true).ok());
  }
  auto segs = Segments(dir.path());
  ASSERT_GE(segs.size(), 4u);
  std::string original = ReadFile(segs[1]);
  std::string damaged = original;
  damaged[kWalSegmentHeader + kWalRecordHeader + 1] ^= 0x10;
  WriteFile(segs[1], damaged);
  std::unique_ptr<Wal> wal;
  Status s = Wal::Open(dir.path(), o, &wal, nullptr);
  EXPECT_EQ(s.code(), Code::kCorrupted);
  EXPECT_NE(s.message().find(segs[1]), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("offset 64"), std::string::npos) << s.message();

  WriteFile(segs[1], original);
  fs::remove(segs[2]);
  s = Wal::Open(dir.path(), o, &wal, nullptr);
  EXPECT_EQ(s.code(), Code::kCorrupted);
  EXPECT_NE(s.message().find(segs[1]), std::string::npos) << s.message();
}

TEST(WalRecovery, ADamagedHeaderOrAnotherFormatVersionIsRefused) {
  Cut cut(/*synced=*/5, /*unsynced=*/0, /*group=*/5);
  ASSERT_FALSE(HasFatalFailure());
  std::string content = cut.bytes;
  content[20] ^= 1;  // the first commit, under the header's checksum
  cut.Install(content);
  std::unique_ptr<Wal> wal;
  Status s = Wal::Open(cut.dir.path(), cut.o, &wal, nullptr);
  EXPECT_EQ(s.code(), Code::kCorrupted);
  EXPECT_NE(s.message().find("header"), std::string::npos) << s.message();

  // A later version, written consistently (its checksum right): refused by name.
  content = cut.bytes;
  content[8] = 2;
  uint64_t sum = XXH3_64bits(content.data(), 56);
  std::memcpy(content.data() + 56, &sum, 8);
  cut.Install(content);
  s = Wal::Open(cut.dir.path(), cut.o, &wal, nullptr);
  EXPECT_EQ(s.code(), Code::kCorrupted);
  EXPECT_NE(s.message().find("format version 2"), std::string::npos) << s.message();
}

TEST(WalRecovery, LeftoverSpareAndTemporaryFilesAreRemoved) {
  TempDir dir;
  WalOptions o;
  o.segment_size = 4 << 10;
  {
    auto wal = OpenOk(dir.path(), o);
    AppendRange(*wal, 1, 25, SmallSize);
    ASSERT_TRUE(wal->Write(true).ok());
    AppendRange(*wal, 26, 50, SmallSize);  // written once 1-25 were synced: they vouch
    ASSERT_TRUE(wal->Write(true).ok());
  }
  WriteFile(dir.Sub("00000000000000000999.wal.tmp"), "half made");
  WriteFile(dir.Sub("spare.tmp"), "half made too");
  // Not while the log is refused: an open that fails changes nothing.
  auto segs = Segments(dir.path());
  std::string first = ReadFile(segs[0]);
  std::string damaged = first;
  damaged[kWalSegmentHeader + kWalRecordHeader] ^= 1;
  WriteFile(segs[0], damaged);
  std::unique_ptr<Wal> refused;
  ASSERT_EQ(Wal::Open(dir.path(), o, &refused, nullptr).code(), Code::kCorrupted);
  EXPECT_TRUE(fs::exists(dir.Sub("spare.tmp")));
  WriteFile(segs[0], first);
  auto wal = OpenOk(dir.path(), o);
  EXPECT_FALSE(fs::exists(dir.Sub("00000000000000000999.wal.tmp")));
  ExpectRecords(ReadAll(*wal), 1, 50, SmallSize);
}

}  // namespace
}  // namespace cairn::internal
