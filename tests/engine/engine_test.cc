// Unit tests of the engine's operations, conditions and errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace cairn {
namespace {

using testing::Doc;
using testing::Json;
using testing::OpenOrDie;
using testing::TempDir;
using testing::Txn;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenOrDie(dir_.path());
    ASSERT_TRUE(db_);
    ASSERT_TRUE(db_->CreateCollection("c").ok());
  }

  TxnResult Put(std::string_view key, std::string_view json, PutMode mode = PutMode::kUpsert) {
    doc_ = Doc(json);
    return db_->Execute(Txn({PutOp{"c", key, doc_, ValueKind::kDocument, mode}}));
  }
  TxnResult Del(std::string_view key) { return db_->Execute(Txn({DeleteOp{"c", key}})); }
  // The record's document as JSON, or "" if absent.
  std::string Get(std::string_view key, uint64_t* version = nullptr) {
    TxnResult r = db_->Execute(Txn({GetOp{"c", key}}));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    if (!r.status.ok() || !r.results[0].found) return "";
    if (version) *version = r.results[0].version;
    return Json(r.results[0].records[0].value);
  }
  // Keys of a scan, joined by commas.
  std::string ScanKeys(ScanSpec spec, std::string* continuation = nullptr) {
    spec.collection = "c";
    TxnResult r = db_->Execute(Txn({ScanOp{spec}}));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    if (!r.status.ok()) return "error";
    std::string keys;
    for (const Record& rec : r.results[0].records) keys += (keys.empty() ? "" : ",") + rec.key;
    if (continuation) *continuation = r.results[0].continuation;
    return keys;
  }

  TempDir dir_;
  std::unique_ptr<Engine> db_;
  std::string doc_;
};

TEST_F(EngineTest, PutThenGetReturnsDocumentAndVersion) {
  TxnResult w = Put("k1", R"({"a": 1, "b": "x"})");
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_GT(w.commit, 0u);
  EXPECT_EQ(w.results[0].version, w.commit);
  EXPECT_FALSE(w.results[0].found);
  uint64_t version = 0;
  EXPECT_EQ(Get("k1", &version), R"({"a":1,"b":"x"})");
  EXPECT_EQ(version, w.commit);
  EXPECT_EQ(db_->LastCommit(), w.commit);
}

TEST_F(EngineTest, GetOfMissingRecordIsNotAnError) {
  TxnResult r = db_->Execute(Txn({GetOp{"c", "nope"}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.results[0].found);
  EXPECT_TRUE(r.results[0].records.empty());
}

TEST_F(EngineTest, CommitNumbersIncreaseByOnePerCommit) {
  uint64_t a = Put("a", "{}").commit;
  uint64_t b = Put("b", "{}").commit;
  uint64_t c = Put("a", R"({"x": 1})").commit;
  EXPECT_EQ(b, a + 1);
  EXPECT_EQ(c, b + 1);
  uint64_t v;
  Get("a", &v);
  EXPECT_EQ(v, c);
}

TEST_F(EngineTest, UpsertOverwritesAndReportsPreviousPresence) {
  Put("k", R"({"v": 1})");
  TxnResult w = Put("k", R"({"v": 2})");
  ASSERT_TRUE(w.status.ok());
  EXPECT_TRUE(w.results[0].found);
  EXPECT_EQ(Get("k"), R"({"v":2})");
}

TEST_F(EngineTest, InsertFailsWhenPresent) {
  ASSERT_TRUE(Put("k", R"({"v": 1})", PutMode::kInsert).status.ok());
  TxnResult w = Put("k", R"({"v": 2})", PutMode::kInsert);
  EXPECT_EQ(w.status.code(), Code::kAlreadyExists) << w.status.ToString();
  EXPECT_EQ(w.commit, 0u);
  EXPECT_EQ(Get("k"), R"({"v":1})");
}

TEST_F(EngineTest, ReplaceFailsWhenAbsent) {
  TxnResult w = Put("k", R"({"v": 1})", PutMode::kReplace);
  EXPECT_EQ(w.status.code(), Code::kNotFound) << w.status.ToString();
  EXPECT_EQ(Get("k"), "");
  Put("k", R"({"v": 1})");
  EXPECT_TRUE(Put("k", R"({"v": 2})", PutMode::kReplace).status.ok());
  EXPECT_EQ(Get("k"), R"({"v":2})");
}

TEST_F(EngineTest, DeleteRemovesAndReportsPresence) {
  Put("k", "{}");
  TxnResult d = Del("k");
  ASSERT_TRUE(d.status.ok());
  EXPECT_TRUE(d.results[0].found);
  EXPECT_GT(d.commit, 0u);
  EXPECT_EQ(Get("k"), "");
  uint64_t before = db_->LastCommit();
  TxnResult again = Del("k");
  ASSERT_TRUE(again.status.ok());
  EXPECT_FALSE(again.results[0].found);
  EXPECT_EQ(again.commit, 0u) << "deleting nothing commits nothing";
  EXPECT_EQ(db_->LastCommit(), before);
}

TEST_F(EngineTest, RawValuesRoundTrip) {
  std::string raw("\x00\x01\xffhello", 8);
  TxnResult w = db_->Execute(Txn({PutOp{"c", "raw", raw, ValueKind::kRaw}}));
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  TxnResult r = db_->Execute(Txn({GetOp{"c", "raw"}}));
  ASSERT_TRUE(r.results[0].found);
  EXPECT_EQ(r.results[0].records[0].kind, ValueKind::kRaw);
  EXPECT_EQ(r.results[0].records[0].value, raw);
}

TEST_F(EngineTest, InvalidDocumentsAreRefused) {
  for (std::string bad : {std::string(""), std::string("xx"), std::string("garbage bytes here"),
                          std::string("\x00\x00\x00\x00", 4)}) {
    TxnResult w = db_->Execute(Txn({PutOp{"c", "k", bad}}));
    EXPECT_EQ(w.status.code(), Code::kBadRequest) << w.status.ToString();
  }
  std::string not_a_map, err;
  ASSERT_TRUE(JsonToFlex("[1,2,3]", &not_a_map, &err));
  TxnResult w = db_->Execute(Txn({PutOp{"c", "k", not_a_map}}));
  EXPECT_EQ(w.status.code(), Code::kBadRequest);
  EXPECT_NE(w.status.message().find("not a map"), std::string::npos) << w.status.message();
  EXPECT_EQ(Get("k"), "");
}

TEST_F(EngineTest, KeyLimitsGiveClearErrors) {
  std::string max(kMaxKeySize, 'k');
  EXPECT_TRUE(Put(max, "{}").status.ok());
  EXPECT_EQ(Get(max), "{}");
  TxnResult w = Put(max + "k", "{}");
  EXPECT_EQ(w.status.code(), Code::kTooLarge);
  EXPECT_NE(w.status.message().find("507"), std::string::npos) << w.status.message();
  EXPECT_EQ(Put("", "{}").status.code(), Code::kBadRequest);
}

TEST_F(EngineTest, ValueSizeLimit) {
  TempDir dir;
  Options o;
  o.max_value_size = 1000;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string big(1001, 'x');
  TxnResult w = db->Execute(Txn({PutOp{"c", "k", big, ValueKind::kRaw}}));
  EXPECT_EQ(w.status.code(), Code::kTooLarge);
  EXPECT_TRUE(db->Execute(Txn({PutOp{"c", "k", big.substr(1), ValueKind::kRaw}})).status.ok());
}

TEST_F(EngineTest, OperationsOnMissingCollectionAreUnknownName) {
  std::string doc = Doc("{}");
  for (Op op : std::vector<Op>{GetOp{"nope", "k"}, PutOp{"nope", "k", doc}, DeleteOp{"nope", "k"},
                               ScanOp{ScanSpec{.collection = "nope"}},
                               QueryOp{QuerySpec{.collection = "nope", .index = "i"}}}) {
    TxnResult r = db_->Execute(Txn({GetOp{"c", "k"}, op}));
    // Not kNotFound: that is a missing record (a replace), which a client must tell apart
    // from a misspelt collection.
    EXPECT_EQ(r.status.code(), Code::kUnknownName) << r.status.ToString();
    EXPECT_NE(r.status.message().find("nope"), std::string::npos);
    EXPECT_EQ(r.status.failed_operation(), 1) << r.status.ToString();
    EXPECT_EQ(r.status.failed_condition(), -1);
  }
}

TEST_F(EngineTest, AFailedTransactionSaysWhichConditionOrOperationFailed) {
  Put("a", "{}");
  const std::string empty = Doc("{}");
  Transaction t =
      Txn({GetOp{"c", "a"}, PutOp{"c", "b", empty, ValueKind::kDocument, PutMode::kInsert}});
  t.conditions.push_back({Condition::kPresent, "c", "a"});
  t.conditions.push_back({Condition::kAbsent, "c", "a"});
  TxnResult r = db_->Execute(t);
  EXPECT_EQ(r.status.code(), Code::kConditionFailed);
  EXPECT_EQ(r.status.failed_condition(), 1) << r.status.ToString();
  EXPECT_EQ(r.status.failed_operation(), -1);
  EXPECT_NE(r.status.message().find("condition 1"), std::string::npos) << r.status.message();

  t.conditions.pop_back();
  ASSERT_TRUE(db_->Execute(t).status.ok());
  r = db_->Execute(t);  // b exists now: the insert fails, named as an insert
  EXPECT_EQ(r.status.code(), Code::kAlreadyExists);
  EXPECT_EQ(r.status.failed_operation(), 1) << r.status.ToString();
  EXPECT_EQ(r.status.failed_condition(), -1);
  EXPECT_NE(r.status.message().find("operation 1 (insert)"), std::string::npos)
      << r.status.message();
}

// --- Collections.

TEST_F(EngineTest, CollectionsCreateListDrop) {
  EXPECT_EQ(db_->CreateCollection("c").code(), Code::kAlreadyExists);
  ASSERT_TRUE(db_->CreateCollection("b").ok());
  auto list = db_->ListCollections();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "b");
  EXPECT_EQ(list[1].name, "c");
  Put("k", "{}");
  ASSERT_TRUE(db_->DropCollection("c").ok());
  EXPECT_EQ(db_->DropCollection("c").code(), Code::kUnknownName);
  EXPECT_EQ(db_->Execute(Txn({GetOp{"c", "k"}})).status.code(), Code::kUnknownName);
  // A new collection of the same name starts empty.
  ASSERT_TRUE(db_->CreateCollection("c").ok());
  EXPECT_EQ(Get("k"), "");
  db_->WaitForBackgroundWork();
  VerifyReport v = db_->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

TEST_F(EngineTest, BadCollectionNamesAreRefused) {
  for (std::string bad : {std::string(""), std::string("has space"), std::string("slash/"),
                          std::string(200, 'x'), std::string("nul\0x", 5)}) {
    EXPECT_EQ(db_->CreateCollection(bad).code(), Code::kBadRequest) << bad;
  }
}

TEST_F(EngineTest, SystemCollectionsNeedTheirOwnCallAndAreOtherwiseOrdinary) {
  EXPECT_EQ(db_->CreateCollection("$users").code(), Code::kBadRequest);
  EXPECT_EQ(db_->CreateSystemCollection("users").code(), Code::kBadRequest);
  EXPECT_EQ(db_->CreateSystemCollection("$").code(), Code::kBadRequest);
  EXPECT_EQ(db_->CreateSystemCollection("$has space").code(), Code::kBadRequest);
  ASSERT_TRUE(db_->CreateSystemCollection("$users").ok());
  uint64_t after_create = db_->LastCommit();
  ASSERT_TRUE(db_->CreateSystemCollection("$users").ok());  // exists: nothing committed
  EXPECT_EQ(db_->LastCommit(), after_create);
  std::string doc = Doc(R"({"roles":["admin"]})");
  TxnResult put = db_->Execute(Txn({PutOp{"$users", "alice", doc}}));
  ASSERT_TRUE(put.status.ok()) << put.status.ToString();
  TxnResult get = db_->Execute(Txn({GetOp{"$users", "alice"}}));
  ASSERT_TRUE(get.status.ok() && get.results[0].found);
  EXPECT_EQ(Json(get.results[0].records[0].value), R"({"roles":["admin"]})");
  // Logged like any write, so replicas and backups carry it.
  std::vector<LogEntry> log;
  ASSERT_TRUE(db_->ReadLog(after_create, 10, 1 << 20, &log).ok());
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().changes.at(0).collection, "$users");
  VerifyReport v = db_->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

TEST_F(EngineTest, DroppedCollectionDataIsReclaimedInTheBackground) {
  TempDir dir;
  Options o;
  o.background_batch = 7;  // several batches
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("big").ok());
  ASSERT_TRUE(db->CreateIndex("big", {"by_n", {"n"}}).ok());
  std::vector<std::string> docs;
  Transaction t;
  for (int i = 0; i < 100; i++) docs.push_back(Doc("{\"n\": " + std::to_string(i) + "}"));
  std::vector<std::string> keys;
  for (int i = 0; i < 100; i++) keys.push_back("k" + std::to_string(i));
  for (int i = 0; i < 100; i++) t.ops.push_back(PutOp{"big", keys[i], docs[i]});
  ASSERT_TRUE(db->Execute(t).status.ok());
  ASSERT_TRUE(db->DropCollection("big").ok());
  db->WaitForBackgroundWork();
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
  EXPECT_EQ(v.records, 0u);
  EXPECT_EQ(v.index_entries, 0u);
}

// --- Conditions and atomicity.

TEST_F(EngineTest, ConditionsGateTheWholeTransaction) {
  uint64_t v1 = Put("k", R"({"n": 1})").commit;
  std::string d2 = Doc(R"({"n": 2})");

  auto run = [&](Condition c) {
    return db_->Execute(Txn({PutOp{"c", "other", d2}}, {c}));
  };
  EXPECT_EQ(run({Condition::kAbsent, "c", "k"}).status.code(), Code::kConditionFailed);
  EXPECT_EQ(run({Condition::kPresent, "c", "missing"}).status.code(), Code::kConditionFailed);
  EXPECT_EQ(run({Condition::kVersionEquals, "c", "k", v1 + 100}).status.code(),
            Code::kConditionFailed);
  EXPECT_EQ(run({Condition::kVersionEquals, "c", "missing", v1}).status.code(),
            Code::kConditionFailed);
  EXPECT_EQ(Get("other"), "") << "a failed condition must leave no trace";

  EXPECT_TRUE(run({Condition::kPresent, "c", "k"}).status.ok());
  EXPECT_TRUE(run({Condition::kAbsent, "c", "missing"}).status.ok());
  TxnResult ok = run({Condition::kVersionEquals, "c", "k", v1});
  EXPECT_TRUE(ok.status.ok()) << ok.status.ToString();
}

TEST_F(EngineTest, ConditionFailureMessageSaysWhichAndWhy) {
  uint64_t v = Put("k", "{}").commit;
  TxnResult r = db_->Execute(Txn({DeleteOp{"c", "k"}},
                                 {{Condition::kPresent, "c", "k"},
                                  {Condition::kVersionEquals, "c", "k", v + 1}}));
  EXPECT_EQ(r.status.code(), Code::kConditionFailed);
  EXPECT_NE(r.status.message().find("condition 1"), std::string::npos) << r.status.message();
  EXPECT_NE(r.status.message().find("version " + std::to_string(v)), std::string::npos);
}

TEST_F(EngineTest, FailingOperationRollsBackEarlierOnes) {
  std::string d = Doc("{}");
  Put("exists", "{}");
  TxnResult r = db_->Execute(Txn({PutOp{"c", "new1", d}, DeleteOp{"c", "exists"},
                                  PutOp{"c", "exists2", d, ValueKind::kDocument, PutMode::kReplace}}));
  EXPECT_EQ(r.status.code(), Code::kNotFound);
  EXPECT_NE(r.status.message().find("operation 2"), std::string::npos) << r.status.message();
  EXPECT_TRUE(r.results.empty());
  EXPECT_EQ(Get("new1"), "");
  EXPECT_EQ(Get("exists"), "{}");
}

TEST_F(EngineTest, ReadsInATransactionSeeItsOwnWrites) {
  std::string d = Doc(R"({"x": 1})");
  TxnResult r = db_->Execute(Txn({PutOp{"c", "a", d}, GetOp{"c", "a"}, DeleteOp{"c", "a"},
                                  GetOp{"c", "a"}, CountOp{ScanSpec{.collection = "c"}}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.results[1].found);
  EXPECT_EQ(r.results[1].version, r.commit);
  EXPECT_FALSE(r.results[3].found);
  EXPECT_EQ(r.results[4].count, 0u);
}

TEST_F(EngineTest, ReadOnlyTransactionCannotWrite) {
  Put("a", R"({"n": 1})");
  auto read = db_->BeginRead();
  ASSERT_TRUE(read.ok());
  TxnResult r = read->Execute(Txn({GetOp{"c", "a"}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.results[0].found);
  std::string d = Doc(R"({"n": 2})");
  r = read->Execute(Txn({GetOp{"c", "a"}, PutOp{"c", "a", d}, DeleteOp{"c", "b"}}));
  EXPECT_EQ(r.status.code(), Code::kReadOnly) << r.status.ToString();
  EXPECT_TRUE(r.results.empty());
  EXPECT_EQ(Get("a"), R"({"n":1})");
}

// --- Scans.

class ScanTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    for (const char* k : {"a", "b", "c", "d", "e"}) ASSERT_TRUE(Put(k, "{}").status.ok());
  }
};

TEST_F(ScanTest, WholeCollectionInOrder) {
  EXPECT_EQ(ScanKeys({}), "a,b,c,d,e");
  EXPECT_EQ(ScanKeys({.reverse = true}), "e,d,c,b,a");
}

TEST_F(ScanTest, BoundsInclusiveAndExclusive) {
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"b", true}, .upper = KeyBound{"d", true}}), "b,c,d");
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"b", false}, .upper = KeyBound{"d", false}}), "c");
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"bb", true}}), "c,d,e");
  EXPECT_EQ(ScanKeys({.upper = KeyBound{"bb", true}}), "a,b");
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"b", false}, .upper = KeyBound{"d", false},
                      .reverse = true}),
            "c");
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"b", true}, .upper = KeyBound{"d", true},
                      .reverse = true}),
            "d,c,b");
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"x", true}}), "");
  EXPECT_EQ(ScanKeys({.lower = KeyBound{"d", true}, .upper = KeyBound{"b", true}}), "");
}

TEST_F(ScanTest, ScansStayInsideTheirCollection) {
  ASSERT_TRUE(db_->CreateCollection("a_before").ok());
  ASSERT_TRUE(db_->CreateCollection("z_after").ok());
  std::string d = Doc("{}");
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"a_before", "zz", d}, PutOp{"z_after", "0", d}})).status.ok());
  EXPECT_EQ(ScanKeys({}), "a,b,c,d,e");
  EXPECT_EQ(ScanKeys({.reverse = true}), "e,d,c,b,a");
}

TEST_F(ScanTest, LimitAndContinuationPageThroughEverything) {
  for (bool reverse : {false, true}) {
    std::string all, token;
    int pages = 0;
    do {
      ScanSpec spec{.limit = 2, .reverse = reverse};
      std::string page_token = token;
      spec.continuation = page_token;
      std::string keys = ScanKeys(spec, &token);
      all += (all.empty() || keys.empty() ? "" : ",") + keys;
      pages++;
    } while (!token.empty() && pages < 10);
    EXPECT_EQ(all, reverse ? "e,d,c,b,a" : "a,b,c,d,e");
    EXPECT_EQ(pages, 3) << "2+2+1, and no empty last page";
  }
}

TEST_F(ScanTest, ExactLimitGivesNoContinuation) {
  std::string token;
  EXPECT_EQ(ScanKeys({.limit = 5}, &token), "a,b,c,d,e");
  EXPECT_TRUE(token.empty());
}

TEST_F(ScanTest, ByteBudgetStopsAScanButAlwaysMakesProgress) {
  std::string token;
  EXPECT_EQ(ScanKeys({.max_bytes = 1}, &token), "a");
  EXPECT_FALSE(token.empty());
}

TEST_F(ScanTest, ForeignContinuationIsRefused) {
  ASSERT_TRUE(db_->CreateCollection("other").ok());
  std::string token;
  ScanKeys({.limit = 1}, &token);
  TxnResult r = db_->Execute(Txn({ScanOp{ScanSpec{.collection = "other", .continuation = token}}}));
  EXPECT_EQ(r.status.code(), Code::kBadRequest);
  r = db_->Execute(Txn({ScanOp{ScanSpec{.collection = "c", .continuation = "garbage"}}}));
  EXPECT_EQ(r.status.code(), Code::kBadRequest);
}

// Found by fuzz/token_fuzz: a scan token whose position is longer than a primary key
// reached LMDB's seek, which failed with kTooLarge; it is a bad token.
TEST_F(ScanTest, TokenWithAPositionLongerThanAKeyIsRefused) {
  std::string token;
  ScanKeys({.limit = 1}, &token);
  ASSERT_GE(token.size(), 5u);
  std::string bad = token.substr(0, 5) + std::string(kMaxKeySize + 1, 'k');
  for (bool reverse : {false, true}) {
    TxnResult r = db_->Execute(
        Txn({ScanOp{ScanSpec{.collection = "c", .reverse = reverse, .continuation = bad}}}));
    EXPECT_EQ(r.status.code(), Code::kBadRequest) << r.status.ToString();
  }
  // The longest key is a position like any other.
  std::string longest = token.substr(0, 5) + std::string(kMaxKeySize, 'k');
  TxnResult r = db_->Execute(Txn({ScanOp{ScanSpec{.collection = "c", .continuation = longest}}}));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
}

TEST_F(ScanTest, CountHonoursBounds) {
  TxnResult r = db_->Execute(Txn({CountOp{ScanSpec{.collection = "c"}},
                                  CountOp{ScanSpec{.collection = "c",
                                                   .lower = KeyBound{"b", false},
                                                   .upper = KeyBound{"e", true}}}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.results[0].count, 5u);
  EXPECT_EQ(r.results[1].count, 3u);
}

TEST_F(ScanTest, ReadTxnViewsAndSnapshotIsolation) {
  auto read = db_->BeginRead();
  ASSERT_TRUE(read.ok());
  uint64_t at = read->commit();
  Put("f", "{}");  // after the snapshot
  std::vector<std::string> keys;
  std::string token;
  ASSERT_TRUE(read->Scan({.collection = "c"}, [&](const RecordView& r) { keys.emplace_back(r.key); },
                         &token)
                  .ok());
  EXPECT_EQ(keys.size(), 5u) << "the snapshot does not see later commits";
  EXPECT_EQ(read->commit(), at);
  RecordView rv;
  bool found;
  ASSERT_TRUE(read->Get("c", "f", &rv, &found).ok());
  EXPECT_FALSE(found);
  EXPECT_EQ(Get("f"), "{}");
}

// --- Opening.

TEST(EngineOpenTest, ReopenKeepsDataCatalogAndCommitNumber) {
  TempDir dir;
  uint64_t last;
  std::string d = Doc(R"({"name": "x"})");
  {
    auto db = OpenOrDie(dir.path());
    ASSERT_TRUE(db->CreateCollection("c").ok());
    ASSERT_TRUE(db->CreateIndex("c", {"by_name", {"name"}, true}).ok());
    ASSERT_TRUE(db->Execute(Txn({PutOp{"c", "k", d}})).status.ok());
    last = db->LastCommit();
  }
  auto db = OpenOrDie(dir.path());
  EXPECT_EQ(db->LastCommit(), last);
  auto info = db->DescribeCollection("c");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->indexes.size(), 1u);
  EXPECT_TRUE(info->indexes[0].spec.unique);
  TxnResult w = db->Execute(Txn({PutOp{"c", "k2", d}}));
  EXPECT_EQ(w.status.code(), Code::kUniqueViolation);
  EXPECT_EQ(db->Execute(Txn({PutOp{"c", "k3", Doc("{}")}})).commit, last + 1);
}

TEST(EngineOpenTest, SecondOpenOfTheSameFolderIsRefused) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  auto second = Engine::Open(dir.path(), {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  db.reset();
  EXPECT_TRUE(Engine::Open(dir.path(), {}).ok()) << "the lock goes with the engine";
}

TEST(EngineOpenTest, FolderWithOtherFilesIsRefused) {
  TempDir dir;
  std::ofstream(dir.Sub("notes.txt")) << "precious";
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  std::ifstream in(dir.Sub("notes.txt"));
  std::string s;
  in >> s;
  EXPECT_EQ(s, "precious");
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("data.mdb")));
}

TEST(EngineOpenTest, NonLmdbDataFileIsRefusedNotOverwritten) {
  TempDir dir;
  std::string garbage(64 * 1024, 'g');
  std::ofstream(dir.Sub("data.mdb"), std::ios::binary) << garbage;
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kBadRequest) << r.status().ToString();
  EXPECT_EQ(std::filesystem::file_size(dir.Sub("data.mdb")), garbage.size());
}

TEST(EngineOpenTest, FolderIsCreatedWhenMissing) {
  TempDir dir;
  auto db = OpenOrDie(dir.Sub("a/b/c"));
  ASSERT_TRUE(db);
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("a/b/c/data.mdb")));
}

TEST(EngineOpenTest, ReadOnlyOpenRefusesWrites) {
  TempDir dir;
  { ASSERT_TRUE(OpenOrDie(dir.path())->CreateCollection("c").ok()); }
  Options o;
  o.read_only = true;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->CreateCollection("d").code(), Code::kReadOnly);
  std::string d = Doc("{}");
  EXPECT_EQ(db->Execute(Txn({PutOp{"c", "k", d}})).status.code(), Code::kReadOnly);
  EXPECT_TRUE(db->Execute(Txn({GetOp{"c", "k"}})).status.ok());
}

// --- Database full.

TEST(EngineFullTest, WritesPastTheCapFailCleanlyAndTheDatabaseStaysUsable) {
  TempDir dir;
  Options o;
  o.max_size = 2 << 20;  // 2 MiB
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string value(4000, 'v');
  int written = 0;
  Status last;
  for (int i = 0; i < 10000; i++) {
    std::string key = "k" + std::to_string(i);
    TxnResult r = db->Execute(Txn({PutOp{"c", key, value, ValueKind::kRaw}}));
    if (!r.status.ok()) {
      last = r.status;
      break;
    }
    written++;
  }
  ASSERT_EQ(last.code(), Code::kDatabaseFull) << last.ToString();
  ASSERT_GT(written, 10);
  // Everything acknowledged is readable; deletes make room again.
  TxnResult c = db->Execute(Txn({CountOp{ScanSpec{.collection = "c"}}}));
  ASSERT_TRUE(c.status.ok());
  EXPECT_EQ(c.results[0].count, uint64_t(written));
  for (int i = 0; i < written / 2; i++) {
    std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(db->Execute(Txn({DeleteOp{"c", key}})).status.ok()) << i;
  }
  EXPECT_TRUE(db->Execute(Txn({PutOp{"c", "again", value, ValueKind::kRaw}})).status.ok());
  EXPECT_TRUE(db->Verify().ok());
  db.reset();
  auto reopened = OpenOrDie(dir.path(), o);
  EXPECT_TRUE(reopened->Verify().ok());
}

// --- Durability settings.

TEST(EngineDurabilityTest, EverySettingKeepsDataAcrossReopen) {
  for (Durability d : {Durability::kSync, Durability::kNoMetaSync, Durability::kNoSync}) {
    TempDir dir;
    Options o;
    o.durability = d;
    o.flush_interval = std::chrono::milliseconds(10);
    {
      auto db = OpenOrDie(dir.path(), o);
      ASSERT_TRUE(db->CreateCollection("c").ok());
      std::string doc = Doc(R"({"a": 1})");
      ASSERT_TRUE(db->Execute(Txn({PutOp{"c", "k", doc}})).status.ok());
      ASSERT_TRUE(db->Sync().ok());
    }
    auto db = OpenOrDie(dir.path(), o);
    TxnResult r = db->Execute(Txn({GetOp{"c", "k"}}));
    EXPECT_TRUE(r.results.at(0).found) << int(d);
  }
}

// --- Change log.

TEST_F(EngineTest, ChangeLogRecordsEveryCommitInOrder) {
  uint64_t start = db_->LastCommit() + 1;
  Put("a", R"({"n": 1})");
  Del("a");
  ASSERT_TRUE(db_->CreateIndex("c", {"by_n", {"n"}}).ok());
  std::vector<LogEntry> log;
  ASSERT_TRUE(db_->ReadLog(start, 100, 1 << 20, &log).ok());
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].commit, start);
  ASSERT_EQ(log[0].changes.size(), 1u);
  EXPECT_EQ(log[0].changes[0].kind, Change::kPut);
  EXPECT_EQ(log[0].changes[0].key, "a");
  EXPECT_EQ(Json(log[0].changes[0].value), R"({"n":1})");
  EXPECT_EQ(log[1].changes[0].kind, Change::kDelete);
  EXPECT_EQ(log[2].changes[0].kind, Change::kCreateIndex);
  EXPECT_EQ(log[2].changes[0].index->fields, std::vector<std::string>{"n"});
  // The first commit of the database created the collection.
  log.clear();
  ASSERT_TRUE(db_->ReadLog(1, 1, 1 << 20, &log).ok());
  EXPECT_EQ(log.at(0).changes.at(0).kind, Change::kCreateCollection);
  EXPECT_EQ(log.at(0).changes.at(0).collection, "c");
}

TEST_F(EngineTest, ChangeLogReaderHonoursLimits) {
  for (int i = 0; i < 10; i++) Put("k" + std::to_string(i), R"({"pad": "xxxxxxxxxxxxxxxx"})");
  std::vector<LogEntry> log;
  ASSERT_TRUE(db_->ReadLog(2, 3, 1 << 20, &log).ok());
  EXPECT_EQ(log.size(), 3u);
  log.clear();
  ASSERT_TRUE(db_->ReadLog(2, 100, 1, &log).ok());
  EXPECT_EQ(log.size(), 1u) << "a byte budget still returns one entry";
  log.clear();
  ASSERT_TRUE(db_->ReadLog(db_->LastCommit() + 1, 100, 1 << 20, &log).ok());
  EXPECT_TRUE(log.empty());
}

TEST(ChangeLogRetentionTest, OldEntriesAreTrimmedAndReportedAsTruncated) {
  TempDir dir;
  Options o;
  o.log_retention = 10;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  for (int i = 0; i < 100; i++) {
    std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(db->Execute(Txn({PutOp{"c", key, d}})).status.ok());
  }
  std::vector<LogEntry> log;
  Status s = db->ReadLog(1, 1000, 1 << 20, &log);
  EXPECT_EQ(s.code(), Code::kLogTruncated) << s.ToString();
  log.clear();
  uint64_t last = db->LastCommit();
  ASSERT_TRUE(db->ReadLog(last - 9, 1000, 1 << 20, &log).ok());
  EXPECT_EQ(log.size(), 10u);
  VerifyReport v = db->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
  EXPECT_LE(v.log_entries, 20u) << "retention is bounded";
  EXPECT_EQ(db->Stats().log_first, last - v.log_entries + 1);
}

}  // namespace
}  // namespace cairn
