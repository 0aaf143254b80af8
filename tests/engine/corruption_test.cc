// Damage done to a closed database (one changed byte of a document, of a large raw value,
// of a record's key; a checksum stripped) is never served: every read and write that meets
// the record answers kCorrupted naming the collection and key, never the damaged bytes;
// the stats count it; Verify lists it. Undamaged records stay readable.
#include <gtest/gtest.h>

#include "raw_lmdb.h"
#include "test_util.h"

namespace cairn {
namespace {

using testing::Doc;
using testing::kRecordHeader;
using testing::RawLmdb;
using testing::TempDir;
using testing::Txn;

constexpr std::string_view kDigits = "31415926";
constexpr std::string_view kKeys[] = {"p1", "p2", "p3"};

class CorruptionTest : public ::testing::Test {
 protected:
  // people: p1..p3 documents (p2 holds kDigits), indexed by n; blobs: one 100 KiB value.
  void SetUp() override {
    auto db = testing::OpenOrDie(dir_.path());
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->CreateCollection("people").ok());
    ASSERT_TRUE(db->CreateIndex("people", {"by_n", {"n"}}).ok());
    ASSERT_TRUE(db->CreateCollection("blobs").ok());
    docs_ = {Doc(R"({"n": 1, "pin": "11111111"})"),
             Doc(R"({"n": 2, "pin": ")" + std::string(kDigits) + R"("})"),
             Doc(R"({"n": 3, "pin": "33333333"})")};
    big_.assign(100 * 1024, 'b');
    std::vector<Op> ops;  // (views of docs_ and kKeys)
    for (size_t i = 0; i < docs_.size(); i++) ops.push_back(PutOp{"people", kKeys[i], docs_[i]});
    PutOp blob{"blobs", "big", big_};
    blob.kind = ValueKind::kRaw;
    ops.push_back(blob);
    ASSERT_TRUE(db->Execute(Txn(std::move(ops))).status.ok());
    ASSERT_TRUE(db->Verify().ok());
  }

  // Replaces the stored value of record `pk` by what `edit` makes of it.
  template <typename Edit>
  void EditStored(std::string_view pk, Edit edit) {
    RawLmdb raw(dir_.path());
    std::string key = raw.RecordKey(pk);
    std::string stored = *raw.Get("records", key);
    edit(stored);
    raw.Put("records", key, stored);
  }

  std::unique_ptr<Engine> Reopen() { return testing::OpenOrDie(dir_.path()); }

  // Asserts `s` is kCorrupted naming the collection and key, and none of `hidden`.
  static void ExpectCorrupted(const Status& s, std::string_view collection, std::string_view key,
                              std::string_view hidden = "") {
    EXPECT_EQ(s.code(), Code::kCorrupted) << s.ToString();
    EXPECT_NE(s.message().find("'" + std::string(collection) + "'"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("'" + std::string(key) + "'"), std::string::npos) << s.message();
    if (!hidden.empty()) {
      EXPECT_EQ(s.message().find(hidden), std::string::npos) << s.message();
    }
  }

  // Runs `t` and returns its status, checking that a failure returns no records.
  static Status Run(Engine* db, const Transaction& t) {
    TxnResult r = db->Execute(t);
    if (!r.status.ok()) {
      EXPECT_TRUE(r.results.empty());
    }
    return r.status;
  }

  static QuerySpec ByN() {
    QuerySpec q;
    q.collection = "people";
    q.index = "by_n";
    return q;
  }
  static ScanSpec All(std::string_view collection) {
    ScanSpec s;
    s.collection = collection;
    return s;
  }

  TempDir dir_;
  std::vector<std::string> docs_;
  std::string big_;
};

TEST_F(CorruptionTest, ChangedDigitInADocumentIsCorruptedOnEveryPath) {
  EditStored("p2", [](std::string& stored) {
    size_t at = stored.find(kDigits);
    ASSERT_NE(at, std::string::npos);
    stored[at + 3]++;  // 31415926 -> 31425926: still a valid document
  });
  auto db = Reopen();
  const std::string damaged = "31425926";

  auto read = db->BeginRead();
  ASSERT_TRUE(read.ok());
  RecordView rv;
  bool found = false;
  ExpectCorrupted(read->Get("people", "p2", &rv, &found), "people", "p2", damaged);
  std::vector<std::string> seen;
  auto visit = [&](const RecordView& r) { seen.emplace_back(r.key); };
  ExpectCorrupted(read->Scan(All("people"), visit, nullptr), "people", "p2", damaged);
  ExpectCorrupted(read->Query(ByN(), visit, nullptr), "people", "p2", damaged);
  EXPECT_EQ(seen, (std::vector<std::string>{"p1", "p1"})) << "the scan and query stop at p2";

  ExpectCorrupted(Run(db.get(), Txn({GetOp{"people", "p2"}})), "people", "p2", damaged);
  ExpectCorrupted(Run(db.get(), Txn({ScanOp{All("people")}})), "people", "p2", damaged);
  ExpectCorrupted(Run(db.get(), Txn({QueryOp{ByN()}})), "people", "p2", damaged);
  // Writes that would act on the damaged record: replace, upsert, delete, a condition.
  std::string doc = Doc(R"({"n": 9})");
  PutOp replace{"people", "p2", doc};
  replace.mode = PutMode::kReplace;
  ExpectCorrupted(Run(db.get(), Txn({replace})), "people", "p2");
  ExpectCorrupted(Run(db.get(), Txn({PutOp{"people", "p2", doc}})), "people", "p2");
  ExpectCorrupted(Run(db.get(), Txn({DeleteOp{"people", "p2"}})), "people", "p2");
  ExpectCorrupted(Run(db.get(), Txn({PutOp{"people", "p9", doc}},
                                    {Condition{Condition::kPresent, "people", "p2"}})),
                  "people", "p2");
  EXPECT_EQ(db->Stats().corrupted_reads, 10u);

  // Counting by key reads no values: the record is still counted.
  auto count = read->Count(All("people"));
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 3u);
  // The other records are served.
  ASSERT_TRUE(read->Get("people", "p3", &rv, &found).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(rv.value, docs_[2]);

  VerifyReport report = db->Verify();
  EXPECT_EQ(report.problems,
            (std::vector<std::string>{"record 'p2' of people fails its checksum"}));
}

TEST_F(CorruptionTest, ChangedByteOfALargeRawValueIsCorrupted) {
  EditStored("big", [](std::string& stored) { stored[kRecordHeader + 50'000] = 'X'; });
  auto db = Reopen();
  ExpectCorrupted(Run(db.get(), Txn({GetOp{"blobs", "big"}})), "blobs", "big", "X");
  ExpectCorrupted(Run(db.get(), Txn({ScanOp{All("blobs")}})), "blobs", "big", "X");
  EXPECT_EQ(db->Stats().corrupted_reads, 2u);
  EXPECT_EQ(db->Verify().problems,
            (std::vector<std::string>{"record 'big' of blobs fails its checksum"}));
}

TEST_F(CorruptionTest, ChangedKeyByteServesNoPhantomKey) {
  {
    RawLmdb raw(dir_.path());
    std::string key = raw.RecordKey("p3");
    std::string stored = *raw.Get("records", key);
    raw.Del("records", key);
    key.back() = '7';  // p3 -> p7
    raw.Put("records", key, stored);
  }
  auto db = Reopen();
  ExpectCorrupted(Run(db.get(), Txn({GetOp{"people", "p7"}})), "people", "p7");
  ExpectCorrupted(Run(db.get(), Txn({ScanOp{All("people")}})), "people", "p7");
  // The index entry of p3 finds no record: the query says so rather than skip it.
  Status q = Run(db.get(), Txn({QueryOp{ByN()}}));
  ExpectCorrupted(q, "people", "p3");
  EXPECT_NE(q.message().find("'by_n'"), std::string::npos) << q.message();
  TxnResult gone = db->Execute(Txn({GetOp{"people", "p3"}}));
  ASSERT_TRUE(gone.status.ok());
  EXPECT_FALSE(gone.results[0].found);
  EXPECT_EQ(db->Stats().corrupted_reads, 3u);
  EXPECT_EQ(db->Verify().problems,
            (std::vector<std::string>{"record 'p7' of people fails its checksum",
                                      "index by_n has an entry for missing record 'p3'"}));
}

TEST_F(CorruptionTest, RecordStrippedOfItsChecksumIsCorrupted) {
  // A record in the layout of format 2 (the marker bit of its kind cleared, the checksum
  // cut off) in a database whose every record has a checksum: damage, not an old record.
  EditStored("p1", [](std::string& stored) { stored = testing::WithoutChecksum(stored); });
  auto db = Reopen();
  ExpectCorrupted(Run(db.get(), Txn({GetOp{"people", "p1"}})), "people", "p1");
  EXPECT_EQ(db->Verify().problems,
            (std::vector<std::string>{
                "record 'p1' of people has no checksum, though the upgrade to format 3 has "
                "passed it"}));
}

TEST_F(CorruptionTest, IndexBuildFailsAtADamagedRecord) {
  EditStored("p2", [](std::string& stored) { stored.back() ^= 1; });  // the checksum itself
  auto db = Reopen();
  ASSERT_TRUE(db->CreateIndex("people", {"by_pin", {"pin"}}).ok());
  db->WaitForBackgroundWork();
  // An index cannot hold a damaged value: the build fails and says which record stopped it.
  auto info = db->DescribeCollection("people");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->indexes.size(), 2u);
  EXPECT_EQ(info->indexes[1].spec.name, "by_pin");
  EXPECT_EQ(info->indexes[1].state, IndexState::kFailed);
  EXPECT_NE(info->indexes[1].error.find("'p2' in collection 'people' is damaged"),
            std::string::npos)
      << info->indexes[1].error;
  EXPECT_EQ(db->Stats().corrupted_reads, 1u);
}

}  // namespace
}  // namespace cairn
