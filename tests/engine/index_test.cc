// Unit tests of secondary indexes: queries (equality, ranges, compound keys, paging),
// counts, unique indexes, index maintenance, long values, background builds and drops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "flatbuffers/flexbuffers.h"
#include "test_util.h"

namespace cairn {
namespace {

using testing::Doc;
using testing::Json;
using testing::OpenOrDie;
using testing::TempDir;
using testing::Txn;

IndexValue S(std::string s) { return IndexValue(std::move(s)); }
IndexValue I(int64_t i) { return IndexValue(i); }
IndexValue U(uint64_t u) { return IndexValue(u); }
IndexValue D(double d) { return IndexValue(d); }
IndexValue Null() { return IndexValue(std::monostate{}); }

ValueBound Incl(IndexValue v) { return ValueBound{std::move(v), true}; }
ValueBound Excl(IndexValue v) { return ValueBound{std::move(v), false}; }

// "k007" for Key("k", 7, 3).
std::string Key(std::string_view prefix, int i, int width) {
  char b[32];
  std::snprintf(b, sizeof b, "%0*d", width, i);
  return std::string(prefix) + b;
}

std::string Join(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& k : keys) out += (out.empty() ? "" : ",") + k;
  return out;
}

// A document holding one string field.
std::string StringDoc(std::string_view field, std::string_view s) {
  return Doc("{\"" + std::string(field) + "\": \"" + std::string(s) + "\"}");
}

// A document holding one unsigned integer field, built directly: the JSON codec is not
// under test here.
std::string UintDoc(const std::string& field, uint64_t v) {
  flexbuffers::Builder b;
  b.Map([&] { b.UInt(field.c_str(), v); });
  b.Finish();
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetBuffer().size());
}

// One transaction putting docs[i] at keys[i] in collection "c".
Transaction PutMany(const std::vector<std::string>& keys, const std::vector<std::string>& docs) {
  Transaction t;
  for (size_t i = 0; i < keys.size(); i++) {
    t.ops.emplace_back(std::in_place_type<PutOp>, PutOp{"c", keys[i], docs[i]});
  }
  return t;
}

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o;
    o.durability = Durability::kNoSync;  // fast commits; tests of builds reopen with kSync
    db_ = OpenOrDie(dir_.path(), o);
    ASSERT_TRUE(db_);
    ASSERT_TRUE(db_->CreateCollection("c").ok());
  }

  // Closes the engine and opens the same database with `options`.
  void Reopen(const Options& options) {
    db_.reset();
    db_ = OpenOrDie(dir_.path(), options);
    ASSERT_TRUE(db_);
  }

  Status CreateIndex(std::string name, std::vector<std::string> fields, bool unique = false) {
    return db_->CreateIndex("c", IndexSpec{std::move(name), std::move(fields), unique});
  }

  TxnResult Put(std::string_view key, std::string_view json, PutMode mode = PutMode::kUpsert) {
    std::string doc = Doc(json);
    return db_->Execute(Txn({PutOp{"c", key, doc, ValueKind::kDocument, mode}}));
  }
  TxnResult PutDoc(std::string_view key, std::string_view doc) {
    return db_->Execute(Txn({PutOp{"c", key, doc}}));
  }
  TxnResult Del(std::string_view key) { return db_->Execute(Txn({DeleteOp{"c", key}})); }

  // Keys of a query's records, joined by commas; "!<code name>" if the query fails.
  std::string Keys(QuerySpec spec, std::string* continuation = nullptr) {
    if (spec.collection.empty()) spec.collection = "c";
    TxnResult r = db_->Execute(Txn({QueryOp{spec}}));
    if (continuation) continuation->clear();
    if (!r.status.ok()) return "!" + std::string(CodeName(r.status.code()));
    std::vector<std::string> keys;
    for (const Record& rec : r.results[0].records) keys.push_back(rec.key);
    if (continuation) *continuation = r.results[0].continuation;
    return Join(keys);
  }

  // The keys of an equality query on a one-field index.
  std::string Eq(std::string_view index, IndexValue v) {
    return Keys({.index = index, .equal = {std::move(v)}});
  }

  // Pages through a query; every page must be non-empty. Sets *pages (0 if nothing matches).
  std::string PageAll(QuerySpec spec, int* pages) {
    std::string all, token;
    *pages = 0;
    do {
      std::string page_token = token;
      spec.continuation = page_token;
      std::string keys = Keys(spec, &token);
      if (!keys.empty() && keys[0] == '!') return keys;
      if (keys.empty() && token.empty() && *pages == 0) return "";  // nothing at all
      EXPECT_FALSE(keys.empty()) << "empty page after " << *pages << " pages: " << all;
      all += (all.empty() || keys.empty() ? "" : ",") + keys;
      ++*pages;
    } while (!token.empty() && *pages < 10000);
    return all;
  }

  // The count of a query's records; -1 - code on error.
  int64_t Count(QuerySpec spec) {
    if (spec.collection.empty()) spec.collection = "c";
    TxnResult r = db_->Execute(Txn({CountOp{spec}}));
    if (!r.status.ok()) return -1 - int64_t(r.status.code());
    return int64_t(r.results[0].count);
  }

  // The state of an index ("building", "ready", "failed"), or "absent".
  std::string State(std::string_view index, std::string* error = nullptr) {
    auto c = db_->DescribeCollection("c");
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return "no collection";
    for (const IndexInfo& ix : c->indexes) {
      if (ix.spec.name == index) {
        if (error) *error = ix.error;
        return std::string(IndexStateName(ix.state));
      }
    }
    return "absent";
  }

  // Verifies the database; returns the report.
  VerifyReport Verified() {
    VerifyReport v = db_->Verify();
    EXPECT_TRUE(v.ok()) << v.problems.size() << " problems, first: "
                        << (v.problems.empty() ? "" : v.problems.front());
    return v;
  }

  TempDir dir_;
  std::unique_ptr<Engine> db_;
};

// --- Equality.

TEST_F(IndexTest, EqualityFindsEveryRecordOfAValueInKeyOrder) {
  ASSERT_TRUE(CreateIndex("by_city", {"city"}).ok());
  EXPECT_EQ(State("by_city"), "ready") << "an index on an empty collection is ready at once";
  for (const char* k : {"k3", "k1", "b", "k2", "x"}) {
    std::string city = k[0] == 'b' ? "Bergen" : k[0] == 'x' ? "Oslo2" : "Oslo";
    ASSERT_TRUE(Put(k, "{\"city\": \"" + city + "\", \"key\": \"" + k + "\"}").status.ok());
  }
  EXPECT_EQ(Eq("by_city", S("Oslo")), "k1,k2,k3");
  EXPECT_EQ(Eq("by_city", S("Bergen")), "b");
  EXPECT_EQ(Eq("by_city", S("Oslo2")), "x");
  EXPECT_EQ(Eq("by_city", S("Osl")), "");
  EXPECT_EQ(Eq("by_city", S("Paris")), "");
  EXPECT_EQ(Eq("by_city", I(1)), "");
  EXPECT_EQ(Keys({.index = "by_city", .equal = {S("Oslo")}, .reverse = true}), "k3,k2,k1");
  EXPECT_EQ(Keys({.index = "by_city"}), "b,k1,k2,k3,x");

  // The query returns whole records.
  TxnResult r = db_->Execute(
      Txn({QueryOp{QuerySpec{.collection = "c", .index = "by_city", .equal = {S("Bergen")}}}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.results[0].records.size(), 1u);
  EXPECT_EQ(Json(r.results[0].records[0].value), R"({"city":"Bergen","key":"b"})");
  EXPECT_EQ(r.results[0].records[0].kind, ValueKind::kDocument);
  EXPECT_GT(r.results[0].records[0].version, 0u);
  EXPECT_TRUE(r.results[0].continuation.empty());

  EXPECT_EQ(Keys({.index = "nope"}), "!unknown name");
  EXPECT_EQ(Keys({.collection = "nope", .index = "by_city"}), "!unknown name");
  EXPECT_EQ(Verified().index_entries, 5u);
}

TEST_F(IndexTest, MissingFieldsAreNotIndexedButNullIs) {
  ASSERT_TRUE(CreateIndex("by_v", {"v"}).ok());
  ASSERT_TRUE(Put("a", R"({"v": null})").status.ok());
  ASSERT_TRUE(Put("b", R"({})").status.ok());
  ASSERT_TRUE(Put("c", R"({"w": 1})").status.ok());
  ASSERT_TRUE(Put("d", R"({"v": 0})").status.ok());
  ASSERT_TRUE(Put("e", R"({"v": false})").status.ok());
  ASSERT_TRUE(Put("f", R"({"v": [1, 2]})").status.ok());
  ASSERT_TRUE(Put("g", R"({"v": {"x": 1}})").status.ok());
  ASSERT_TRUE(Put("h", R"({"v": null, "w": 2})").status.ok());
  ASSERT_TRUE(Put("i", R"({"v": true})").status.ok());

  EXPECT_EQ(Eq("by_v", Null()), "a,h");
  EXPECT_EQ(Eq("by_v", false), "e");
  EXPECT_EQ(Eq("by_v", true), "i");
  EXPECT_EQ(Eq("by_v", I(0)), "d");
  // null < false < true < numbers; maps, vectors and missing fields are left out.
  EXPECT_EQ(Keys({.index = "by_v"}), "a,h,e,i,d");
  EXPECT_EQ(Count({.index = "by_v"}), 5);
  EXPECT_EQ(Verified().index_entries, 5u);
}

TEST_F(IndexTest, NestedPathsFollowMapsOnly) {
  ASSERT_TRUE(CreateIndex("by_city", {"address.city"}).ok());
  ASSERT_TRUE(Put("a", R"({"address": {"city": "Oslo"}})").status.ok());
  ASSERT_TRUE(Put("b", R"({"address": "Oslo"})").status.ok());
  ASSERT_TRUE(Put("c", R"({"address": {"zip": 1}})").status.ok());
  ASSERT_TRUE(Put("d", R"({"address.city": "Oslo"})").status.ok());
  ASSERT_TRUE(Put("e", R"({"address": {"city": "Oslo", "zip": 2}})").status.ok());
  ASSERT_TRUE(Put("f", R"({"address": {"city": {"name": "Oslo"}}})").status.ok());
  EXPECT_EQ(Eq("by_city", S("Oslo")), "a,e");
  EXPECT_EQ(Count({.index = "by_city"}), 2);
  Verified();
}

// --- Numbers.

TEST_F(IndexTest, IntsAndFloatsCompareNumerically) {
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(Put("neg", R"({"n": -1.5})").status.ok());
  ASSERT_TRUE(Put("i1", R"({"n": 1})").status.ok());
  ASSERT_TRUE(Put("i2", R"({"n": 2})").status.ok());
  ASSERT_TRUE(Put("f2", R"({"n": 2.0})").status.ok());
  ASSERT_TRUE(Put("f25", R"({"n": 2.5})").status.ok());
  ASSERT_TRUE(Put("i3", R"({"n": 3})").status.ok());
  ASSERT_TRUE(Put("i10", R"({"n": 10})").status.ok());
  ASSERT_TRUE(PutDoc("umax", UintDoc("n", 18446744073709551615u)).status.ok());

  EXPECT_EQ(Eq("by_n", D(2.0)), "f2,i2");
  EXPECT_EQ(Eq("by_n", I(2)), "f2,i2");
  EXPECT_EQ(Eq("by_n", U(2)), "f2,i2");
  EXPECT_EQ(Eq("by_n", D(2.5)), "f25");
  EXPECT_EQ(Eq("by_n", D(2.25)), "");
  EXPECT_EQ(Eq("by_n", U(18446744073709551615u)), "umax");
  EXPECT_EQ(Eq("by_n", D(18446744073709551616.0)), "") << "2^64 is above UINT64_MAX";
  EXPECT_EQ(Keys({.index = "by_n"}), "neg,i1,f2,i2,f25,i3,i10,umax");
  EXPECT_EQ(Keys({.index = "by_n", .lower = Incl(D(1.5)), .upper = Incl(I(3))}), "f2,i2,f25,i3");
  EXPECT_EQ(Keys({.index = "by_n", .lower = Excl(I(2)), .upper = Excl(D(3.0))}), "f25");
  EXPECT_EQ(Keys({.index = "by_n", .lower = Incl(D(-2)), .upper = Excl(U(1))}), "neg");
  EXPECT_EQ(Keys({.index = "by_n", .lower = Excl(D(3.0)), .upper = Incl(D(1e300))}), "i10,umax");
  Verified();
}

TEST_F(IndexTest, ZeroSignAndIntegersBeyondDoublePrecision) {
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(Put("z", R"({"n": 0})").status.ok());
  ASSERT_TRUE(Put("mz", R"({"n": -0.0})").status.ok());
  ASSERT_TRUE(Put("d53", R"({"n": 9007199254740992.0})").status.ok());  // 2^53 as a double
  ASSERT_TRUE(Put("i53", R"({"n": 9007199254740992})").status.ok());
  ASSERT_TRUE(Put("p53", R"({"n": 9007199254740993})").status.ok());  // not a double
  EXPECT_EQ(Eq("by_n", I(0)), "mz,z");
  EXPECT_EQ(Eq("by_n", D(-0.0)), "mz,z");
  EXPECT_EQ(Eq("by_n", D(9007199254740992.0)), "d53,i53");
  EXPECT_EQ(Eq("by_n", I(9007199254740993)), "p53");
  EXPECT_EQ(Keys({.index = "by_n", .lower = Excl(D(9007199254740992.0))}), "p53");
  EXPECT_EQ(Keys({.index = "by_n", .upper = Excl(I(9007199254740993))}), "mz,z,d53,i53");
}

// --- Ranges.

class IndexRangeTest : public IndexTest {
 protected:
  void SetUp() override {
    IndexTest::SetUp();
    ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
    for (int i = 1; i <= 5; i++) {
      ASSERT_TRUE(Put("r" + std::to_string(i), "{\"n\": " + std::to_string(i) + "}").status.ok());
    }
    ASSERT_TRUE(Put("s", R"({"n": "x"})").status.ok());
    ASSERT_TRUE(Put("z", R"({"n": null})").status.ok());
  }
  std::string Range(std::optional<ValueBound> lower, std::optional<ValueBound> upper,
                    bool reverse = false) {
    return Keys({.index = "by_n", .lower = lower, .upper = upper, .reverse = reverse});
  }
};

TEST_F(IndexRangeTest, InclusiveAndExclusiveBounds) {
  EXPECT_EQ(Range(Incl(I(2)), Incl(I(4))), "r2,r3,r4");
  EXPECT_EQ(Range(Excl(I(2)), Excl(I(4))), "r3");
  EXPECT_EQ(Range(Excl(I(2)), Incl(I(4))), "r3,r4");
  EXPECT_EQ(Range(Incl(I(2)), Excl(I(4))), "r2,r3");
  EXPECT_EQ(Range(Incl(D(2.5)), Incl(D(3.5))), "r3");
  EXPECT_EQ(Range(Incl(I(3)), Incl(I(3))), "r3");
}

TEST_F(IndexRangeTest, OneSidedRangesFollowTheCrossTypeOrder) {
  // null < numbers < strings: a lower bound alone reaches the strings, an upper one the null.
  EXPECT_EQ(Range(Incl(I(4)), std::nullopt), "r4,r5,s");
  EXPECT_EQ(Range(Excl(I(4)), std::nullopt), "r5,s");
  EXPECT_EQ(Range(Incl(I(6)), std::nullopt), "s");
  EXPECT_EQ(Range(std::nullopt, Incl(I(2))), "z,r1,r2");
  EXPECT_EQ(Range(std::nullopt, Excl(I(2))), "z,r1");
  EXPECT_EQ(Range(Incl(I(1)), Excl(S(""))), "r1,r2,r3,r4,r5") << "all the numbers";
  EXPECT_EQ(Range(std::nullopt, std::nullopt), "z,r1,r2,r3,r4,r5,s");
}

TEST_F(IndexRangeTest, ReverseRanges) {
  EXPECT_EQ(Range(Incl(I(2)), Incl(I(4)), true), "r4,r3,r2");
  EXPECT_EQ(Range(Excl(I(2)), Excl(I(4)), true), "r3");
  EXPECT_EQ(Range(Excl(I(1)), Incl(I(4)), true), "r4,r3,r2");
  EXPECT_EQ(Range(Incl(I(4)), std::nullopt, true), "s,r5,r4");
  EXPECT_EQ(Range(std::nullopt, Incl(I(2)), true), "r2,r1,z");
  EXPECT_EQ(Range(std::nullopt, std::nullopt, true), "s,r5,r4,r3,r2,r1,z");
  EXPECT_EQ(Range(Incl(I(6)), Incl(I(9)), true), "");
}

TEST_F(IndexRangeTest, EmptyAndInvertedRangesAreEmptyNotErrors) {
  EXPECT_EQ(Range(Excl(I(3)), Excl(I(3))), "");
  EXPECT_EQ(Range(Excl(I(3)), Incl(I(3))), "");
  EXPECT_EQ(Range(Incl(I(3)), Excl(I(3))), "");
  EXPECT_EQ(Range(Incl(I(6)), Incl(I(100))), "");
  EXPECT_EQ(Range(Incl(I(4)), Incl(I(2))), "");
  EXPECT_EQ(Range(Incl(I(4)), Incl(I(2)), true), "");
  EXPECT_EQ(Range(Incl(S("y")), Incl(I(1))), "");
  EXPECT_EQ(Count({.index = "by_n", .lower = Incl(I(4)), .upper = Incl(I(2))}), 0);
}

TEST_F(IndexRangeTest, CountsOverRanges) {
  EXPECT_EQ(Count({.index = "by_n"}), 7);
  EXPECT_EQ(Count({.index = "by_n", .lower = Incl(I(2)), .upper = Incl(I(4))}), 3);
  EXPECT_EQ(Count({.index = "by_n", .lower = Excl(I(2)), .upper = Excl(I(4))}), 1);
  EXPECT_EQ(Count({.index = "by_n", .lower = Incl(I(4))}), 3);
  EXPECT_EQ(Count({.index = "by_n", .upper = Excl(I(2))}), 2);
  EXPECT_EQ(Count({.index = "by_n", .equal = {I(3)}}), 1);
  EXPECT_EQ(Count({.index = "by_n", .equal = {I(7)}}), 0);
  // Limit, byte budget and direction do not change a count.
  EXPECT_EQ(Count({.index = "by_n", .limit = 1, .reverse = true, .max_bytes = 1}), 7);
  EXPECT_EQ(Count({.index = "nope"}), -1 - int64_t(Code::kUnknownName));
  EXPECT_EQ(Count({.index = "by_n", .equal = {I(1), I(2)}}), -1 - int64_t(Code::kBadRequest));

  auto read = db_->BeginRead();
  ASSERT_TRUE(read.ok());
  Result<uint64_t> n = read->Count(QuerySpec{
      .collection = "c", .index = "by_n", .lower = Incl(I(1)), .upper = Incl(S("x"))});
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 6u);
}

// --- Compound indexes.

class CompoundIndexTest : public IndexTest {
 protected:
  void SetUp() override {
    IndexTest::SetUp();
    ASSERT_TRUE(CreateIndex("by_name", {"last", "first", "age"}).ok());
    ASSERT_TRUE(Put("a", R"({"last": "Ng", "first": "Al", "age": 30})").status.ok());
    ASSERT_TRUE(Put("b", R"({"last": "Ng", "first": "Al", "age": 25})").status.ok());
    ASSERT_TRUE(Put("c", R"({"last": "Ng", "first": "Bo", "age": 40})").status.ok());
    ASSERT_TRUE(Put("d", R"({"last": "Ngo", "first": "Al", "age": 30})").status.ok());
    // Concatenated, "N" + "gAl" spells "Ng" + "Al": the parts must stay apart.
    ASSERT_TRUE(Put("e", R"({"last": "N", "first": "gAl", "age": 30})").status.ok());
    ASSERT_TRUE(Put("f", R"({"last": "Ng", "first": "Cy"})").status.ok());  // no age
    ASSERT_TRUE(Put("g", R"({"last": "Ng", "first": "Cy", "age": 35})").status.ok());
    ASSERT_TRUE(Put("h", R"({"last": "Ng", "first": "Al", "age": 30})").status.ok());
  }
};

TEST_F(CompoundIndexTest, EqualityOnTheWholeKeyAndOnPrefixes) {
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al"), I(30)}}), "a,h");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al"), I(25)}}), "b");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al"), I(31)}}), "");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al")}}), "b,a,h");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng")}}), "b,a,h,c,g");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng")}, .reverse = true}), "g,c,h,a,b")
      << "reverse index order, each value's keys reversed too";
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("N")}}), "e");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ngo")}}), "d");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Cy")}}), "g") << "f has no age";
  EXPECT_EQ(Keys({.index = "by_name"}), "e,b,a,h,c,g,d");
  EXPECT_EQ(Count({.index = "by_name", .equal = {S("Ng")}}), 5);
  EXPECT_EQ(Verified().index_entries, 7u);
}

TEST_F(CompoundIndexTest, PrefixThenRangeOnTheNextField) {
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng")}, .lower = Incl(S("Al")),
                  .upper = Incl(S("Bo"))}),
            "b,a,h,c");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng")}, .lower = Excl(S("Al"))}), "c,g");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng")}, .upper = Excl(S("Bo"))}), "b,a,h");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng")}, .lower = Incl(S("B")),
                  .upper = Excl(S("D")), .reverse = true}),
            "g,c");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al")}, .lower = Incl(I(26)),
                  .upper = Incl(I(40))}),
            "a,h");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al")}, .lower = Excl(I(30))}), "");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al")}, .upper = Incl(I(30)),
                  .reverse = true}),
            "h,a,b");
  // A range on the first field covers every entry of the values in it.
  EXPECT_EQ(Keys({.index = "by_name", .lower = Incl(S("N")), .upper = Incl(S("Ng"))}),
            "e,b,a,h,c,g");
  EXPECT_EQ(Keys({.index = "by_name", .lower = Excl(S("N")), .upper = Excl(S("Ngo"))}),
            "b,a,h,c,g");
  EXPECT_EQ(Count({.index = "by_name", .equal = {S("Ng")}, .lower = Incl(S("Al")),
                   .upper = Incl(S("Bo"))}),
            4);
}

TEST_F(CompoundIndexTest, TooManyValuesOrARangeAfterTheLastFieldIsABadRequest) {
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al"), I(30), I(1)}}),
            "!bad request");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al"), I(30)}, .lower = Incl(I(1))}),
            "!bad request");
  EXPECT_EQ(Keys({.index = "by_name", .equal = {S("Ng"), S("Al"), I(30)}, .upper = Incl(I(1))}),
            "!bad request");
  EXPECT_EQ(Count({.index = "by_name", .equal = {S("Ng"), S("Al"), I(30), I(1)}}),
            -1 - int64_t(Code::kBadRequest));
  TxnResult r = db_->Execute(Txn({QueryOp{QuerySpec{
      .collection = "c", .index = "by_name", .equal = {S("a"), S("b"), S("c"), S("d")}}}}));
  EXPECT_EQ(r.status.code(), Code::kBadRequest);
  EXPECT_NE(r.status.message().find("3 fields"), std::string::npos) << r.status.message();
}

// --- Paging.

class IndexPagingTest : public IndexTest {
 protected:
  void SetUp() override {
    IndexTest::SetUp();
    ASSERT_TRUE(CreateIndex("by_v", {"v"}).ok());
    ASSERT_TRUE(CreateIndex("by_w", {"w"}).ok());
    ASSERT_TRUE(Put("a0", R"({"v": "before"})").status.ok());
    ASSERT_TRUE(Put("a1", R"({"v": "before"})").status.ok());
    // Written out of key order.
    for (int i = 0; i < 25; i++) {
      int j = (i * 7) % 25;
      ASSERT_TRUE(Put(Key("p", j, 2), R"({"v": "same", "w": 1})").status.ok());
      expected_.push_back(Key("p", i, 2));
    }
    ASSERT_TRUE(Put("z0", R"({"v": "zafter"})").status.ok());
    ASSERT_TRUE(Put("z1", R"({"v": "zafter"})").status.ok());
  }
  std::vector<std::string> expected_;  // p00..p24
};

TEST_F(IndexPagingTest, LimitAndContinuationPageThroughDuplicates) {
  std::vector<std::string> reversed(expected_.rbegin(), expected_.rend());
  for (uint32_t limit : {1u, 4u, 5u, 7u, 24u, 25u, 26u}) {
    for (bool reverse : {false, true}) {
      int pages = 0;
      std::string all = PageAll(
          {.index = "by_v", .equal = {S("same")}, .limit = limit, .reverse = reverse}, &pages);
      EXPECT_EQ(all, Join(reverse ? reversed : expected_)) << "limit " << limit;
      EXPECT_EQ(pages, int((25 + limit - 1) / limit))
          << "limit " << limit << ": no empty last page";
    }
  }
}

TEST_F(IndexPagingTest, PagingAcrossValuesOfARange) {
  std::vector<std::string> all_keys = {"a0", "a1"};
  all_keys.insert(all_keys.end(), expected_.begin(), expected_.end());
  all_keys.push_back("z0");
  all_keys.push_back("z1");
  std::vector<std::string> reversed(all_keys.rbegin(), all_keys.rend());
  for (uint32_t limit : {1u, 2u, 3u, 10u}) {
    int pages = 0;
    EXPECT_EQ(PageAll({.index = "by_v", .lower = Incl(S("before")), .upper = Incl(S("zafter")),
                       .limit = limit},
                      &pages),
              Join(all_keys));
    EXPECT_EQ(pages, int((29 + limit - 1) / limit));
    EXPECT_EQ(PageAll({.index = "by_v", .limit = limit, .reverse = true}, &pages),
              Join(reversed));
    EXPECT_EQ(pages, int((29 + limit - 1) / limit));
  }
  // Without bounds but with an exclusive lower bound inside the duplicates' value.
  int pages = 0;
  EXPECT_EQ(PageAll({.index = "by_v", .lower = Excl(S("same")), .limit = 1}, &pages), "z0,z1");
  EXPECT_EQ(pages, 2);
}

TEST_F(IndexPagingTest, ContinuationSurvivesWritesBetweenPages) {
  // Forward: the record the token points at, and the next, are deleted; one is added after.
  std::string token;
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S("same")}, .limit = 3}, &token), "p00,p01,p02");
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(Del("p02").status.ok());
  ASSERT_TRUE(Del("p03").status.ok());
  ASSERT_TRUE(Put("p015", R"({"v": "same"})").status.ok());  // before the token: not seen
  ASSERT_TRUE(Put("p025", R"({"v": "same"})").status.ok());  // after it: seen
  std::string t1 = token;
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S("same")}, .limit = 3, .continuation = t1},
                 &token),
            "p025,p04,p05");

  // Reverse.
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S("same")}, .limit = 3, .reverse = true}, &token),
            "p24,p23,p22");
  ASSERT_TRUE(Del("p22").status.ok());
  ASSERT_TRUE(Del("p21").status.ok());
  ASSERT_TRUE(Put("p225", R"({"v": "same"})").status.ok());  // above the token: not seen
  ASSERT_TRUE(Put("p215", R"({"v": "same"})").status.ok());  // below it: seen
  std::string t2 = token;
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S("same")}, .limit = 3, .reverse = true,
                  .continuation = t2}),
            "p215,p20,p19");
  Verified();
}

// A forward page whose token's record is gone, but not its value's other records: the
// next page starts at the following record of that value, and its own token is sound.
TEST_F(IndexTest, ForwardContinuationFromADeletedRecordOfALiveValue) {
  ASSERT_TRUE(CreateIndex("by_v", {"v"}).ok());
  // Index keys and documents of similar sizes (heap-allocated, same malloc size class).
  std::string v(50, 'v');
  for (const char* k : {"a", "b", "c", "d", "e"}) {
    ASSERT_TRUE(PutDoc(k, StringDoc("v", v)).status.ok());
  }
  std::string token;
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S(v)}, .limit = 1}, &token), "a");
  std::string all = "a";
  ASSERT_TRUE(Del("a").status.ok());
  for (int page = 0; page < 10 && !token.empty(); page++) {
    std::string t = token;
    std::string keys =
        Keys({.index = "by_v", .equal = {S(v)}, .limit = 1, .continuation = t}, &token);
    all += "," + keys;
  }
  EXPECT_EQ(all, "a,b,c,d,e");
}

TEST_F(IndexPagingTest, ContinuationSurvivesTheDeletionOfItsWholeValue) {
  // Forward: the page ends on the last record of "before"; every "before" record goes.
  std::string token;
  EXPECT_EQ(Keys({.index = "by_v", .limit = 2}, &token), "a0,a1");
  ASSERT_TRUE(Del("a0").status.ok());
  ASSERT_TRUE(Del("a1").status.ok());
  std::string t1 = token;
  EXPECT_EQ(Keys({.index = "by_v", .limit = 2, .continuation = t1}), "p00,p01");

  // Reverse: the page ends on the first record of "zafter"; the value is replaced.
  EXPECT_EQ(Keys({.index = "by_v", .limit = 2, .reverse = true}, &token), "z1,z0");
  ASSERT_TRUE(Put("z0", R"({"v": "other"})").status.ok());
  ASSERT_TRUE(Put("z1", R"({"v": "other"})").status.ok());
  std::string t2 = token;
  EXPECT_EQ(Keys({.index = "by_v", .limit = 2, .reverse = true, .continuation = t2}),
            "p24,p23");
  Verified();
}

TEST_F(IndexPagingTest, ForeignOrGarbageContinuationIsRefused) {
  std::string v_token, w_token, scan_token;
  ASSERT_EQ(Keys({.index = "by_v", .limit = 1}, &v_token), "a0");
  ASSERT_EQ(Keys({.index = "by_w", .limit = 1}, &w_token), "p00");
  TxnResult s = db_->Execute(Txn({ScanOp{ScanSpec{.collection = "c", .limit = 1}}}));
  ASSERT_TRUE(s.status.ok());
  scan_token = s.results[0].continuation;
  ASSERT_FALSE(scan_token.empty());

  EXPECT_EQ(Keys({.index = "by_w", .continuation = v_token}), "!bad request");
  EXPECT_EQ(Keys({.index = "by_v", .continuation = w_token}), "!bad request");
  EXPECT_EQ(Keys({.index = "by_v", .continuation = scan_token}), "!bad request");
  EXPECT_EQ(Keys({.index = "by_v", .continuation = "garbage"}), "!bad request");
  EXPECT_EQ(Keys({.index = "by_v", .continuation = v_token.substr(0, 3)}), "!bad request");
  // A query token is not a scan token either.
  TxnResult r = db_->Execute(Txn({ScanOp{ScanSpec{.collection = "c", .continuation = v_token}}}));
  EXPECT_EQ(r.status.code(), Code::kBadRequest);
  // The right token still works.
  EXPECT_EQ(Keys({.index = "by_v", .limit = 1, .continuation = v_token}), "a1");
}

// Found by fuzz/token_fuzz: a token of the right kind and index whose position is longer
// than any index entry (or whose primary key is empty or too long) reached LMDB's seek,
// which failed with kTooLarge; it is a bad token.
TEST_F(IndexPagingTest, TokenWithAPositionNoEntryCanHaveIsRefused) {
  std::string v_token;
  ASSERT_EQ(Keys({.index = "by_v", .limit = 1}, &v_token), "a0");
  std::string id = v_token.substr(1, 4);
  auto token = [&](std::string_view at_key, std::string_view pk) {
    std::string t = "Q" + id;
    size_t n = at_key.size();
    for (; n >= 0x80; n >>= 7) t.push_back(char(n | 0x80));
    t.push_back(char(n));
    return t.append(at_key).append(pk);
  };
  std::string long_key = id + std::string(600, '\x40');
  EXPECT_EQ(Keys({.index = "by_v", .limit = 1, .continuation = token(long_key, "a0")}),
            "!bad request");
  EXPECT_EQ(Keys({.index = "by_v", .limit = 1, .continuation = token(id + "\x40", std::string(600, 'k'))}),
            "!bad request");
  EXPECT_EQ(Keys({.index = "by_v", .limit = 1, .continuation = token(id + "\x40", "")}),
            "!bad request");
  // A position of sizes LMDB takes, though not an entry, still resumes after it.
  EXPECT_NE(Keys({.index = "by_v", .limit = 1, .continuation = token(id + "\x40", "a0")})[0], '!');
}

TEST_F(IndexPagingTest, ContinuationNeverLeadsOutsideTheQueryRange) {
  // A token from one range of the index, passed to a query of another range of the same
  // index, must not yield records outside the second range.
  std::string low_token, high_token;
  ASSERT_EQ(Keys({.index = "by_v", .equal = {S("before")}, .limit = 1}, &low_token), "a0");
  ASSERT_EQ(Keys({.index = "by_v", .equal = {S("zafter")}, .limit = 1, .reverse = true},
                 &high_token),
            "z1");
  std::string fwd = Keys({.index = "by_v", .equal = {S("zafter")}, .continuation = low_token});
  EXPECT_TRUE(fwd == "!bad request" || fwd == "z0,z1" || fwd.empty()) << fwd;
  std::string rev = Keys({.index = "by_v", .equal = {S("before")}, .reverse = true,
                          .continuation = high_token});
  EXPECT_TRUE(rev == "!bad request" || rev == "a1,a0" || rev.empty()) << rev;
}

TEST_F(IndexPagingTest, ByteBudgetStopsAPageButAlwaysMakesProgress) {
  size_t record = 3 + Doc(R"({"v": "same", "w": 1})").size();  // key + value
  int pages = 0;
  EXPECT_EQ(PageAll({.index = "by_v", .equal = {S("same")}, .max_bytes = 1}, &pages),
            Join(expected_));
  EXPECT_EQ(pages, 25);
  EXPECT_EQ(PageAll({.index = "by_v", .equal = {S("same")}, .max_bytes = 2 * record}, &pages),
            Join(expected_));
  EXPECT_EQ(pages, 13) << "two records a page";
  EXPECT_EQ(PageAll({.index = "by_v", .equal = {S("same")}, .reverse = true,
                     .max_bytes = 2 * record + 1},
                    &pages),
            Join(std::vector<std::string>(expected_.rbegin(), expected_.rend())));
  EXPECT_EQ(pages, 9) << "three records a page";
  std::string token;
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S("same")}, .limit = 2, .max_bytes = 1 << 20},
                 &token),
            "p00,p01");
  EXPECT_FALSE(token.empty());
  EXPECT_EQ(Keys({.index = "by_v", .equal = {S("same")}, .max_bytes = 1 << 20}, &token),
            Join(expected_));
  EXPECT_TRUE(token.empty());
}

// --- Unique indexes.

TEST_F(IndexTest, UniqueViolationLeavesNoTrace) {
  ASSERT_TRUE(CreateIndex("by_email", {"email"}, true).ok());
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(Put("a", R"({"email": "x@", "n": 1})").status.ok());
  uint64_t last = db_->LastCommit();

  TxnResult r = Put("b", R"({"email": "x@", "n": 2})");
  EXPECT_EQ(r.status.code(), Code::kUniqueViolation) << r.status.ToString();
  EXPECT_NE(r.status.message().find("by_email"), std::string::npos) << r.status.message();
  EXPECT_NE(r.status.message().find("'a'"), std::string::npos) << r.status.message();
  EXPECT_EQ(r.commit, 0u);
  EXPECT_TRUE(r.results.empty());

  // A transaction whose later operation violates the index leaves nothing either.
  std::string c = Doc(R"({"email": "y@", "n": 3})"), d = Doc(R"({"email": "x@", "n": 4})");
  std::string a2 = Doc(R"({"email": "w@", "n": 5})");
  r = db_->Execute(Txn({PutOp{"c", "c", c}, PutOp{"c", "a", a2}, PutOp{"c", "d", d},
                        PutOp{"c", "e", c}}));
  EXPECT_EQ(r.status.code(), Code::kUniqueViolation) << r.status.ToString();
  EXPECT_NE(r.status.message().find("operation 3"), std::string::npos) << r.status.message();
  EXPECT_EQ(db_->LastCommit(), last);

  TxnResult get = db_->Execute(Txn({GetOp{"c", "b"}, GetOp{"c", "c"}, GetOp{"c", "a"}}));
  ASSERT_TRUE(get.status.ok());
  EXPECT_FALSE(get.results[0].found);
  EXPECT_FALSE(get.results[1].found);
  EXPECT_EQ(Json(get.results[2].records.at(0).value), R"({"email":"x@","n":1})");
  EXPECT_EQ(Eq("by_email", S("x@")), "a");
  EXPECT_EQ(Eq("by_email", S("y@")), "");
  EXPECT_EQ(Eq("by_email", S("w@")), "");
  EXPECT_EQ(Keys({.index = "by_n"}), "a");
  VerifyReport v = Verified();
  EXPECT_EQ(v.records, 1u);
  EXPECT_EQ(v.index_entries, 2u);
}

TEST_F(IndexTest, UniqueViolationInABatchAbortsOnlyItsTransaction) {
  ASSERT_TRUE(CreateIndex("by_email", {"email"}, true).ok());
  std::string q = Doc(R"({"email": "q@"})"), other = Doc(R"({"email": "o@"})");
  Transaction t1 = Txn({PutOp{"c", "e", q}});
  Transaction t2 = Txn({PutOp{"c", "g", other}, PutOp{"c", "f", q}});
  Transaction t3 = Txn({PutOp{"c", "h", other}});
  std::vector<const Transaction*> batch{&t1, &t2, &t3};
  std::vector<TxnResult> rs = db_->ExecuteBatch(batch);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_TRUE(rs[0].status.ok()) << rs[0].status.ToString();
  EXPECT_EQ(rs[1].status.code(), Code::kUniqueViolation) << rs[1].status.ToString();
  EXPECT_TRUE(rs[2].status.ok()) << rs[2].status.ToString() << ": g was rolled back";
  EXPECT_EQ(Eq("by_email", S("q@")), "e");
  EXPECT_EQ(Eq("by_email", S("o@")), "h");
  EXPECT_EQ(Verified().index_entries, 2u);
}

TEST_F(IndexTest, UniqueIndexAllowsRewritingAndMovingValues) {
  ASSERT_TRUE(CreateIndex("by_email", {"email"}, true).ok());
  ASSERT_TRUE(Put("a", R"({"email": "x@", "v": 1})").status.ok());
  ASSERT_TRUE(Put("b", R"({"email": "y@"})").status.ok());
  // A record rewritten with its own value.
  TxnResult r = Put("a", R"({"email": "x@", "v": 2})");
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  r = Put("a", R"({"email": "x@", "v": 3})", PutMode::kReplace);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();

  // Moving a value in one transaction: first away from a, then to b.
  std::string a_away = Doc(R"({"email": "w@"})"), b_to_x = Doc(R"({"email": "x@"})");
  r = db_->Execute(Txn({PutOp{"c", "a", a_away}, PutOp{"c", "b", b_to_x}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Eq("by_email", S("x@")), "b");
  EXPECT_EQ(Eq("by_email", S("w@")), "a");
  EXPECT_EQ(Eq("by_email", S("y@")), "");

  // Uniqueness holds after every operation: taking the value before it is freed fails.
  std::string a_to_x = Doc(R"({"email": "x@"})"), b_away = Doc(R"({"email": "v@"})");
  r = db_->Execute(Txn({PutOp{"c", "a", a_to_x}, PutOp{"c", "b", b_away}}));
  EXPECT_EQ(r.status.code(), Code::kUniqueViolation) << r.status.ToString();
  EXPECT_EQ(Eq("by_email", S("x@")), "b");

  // Delete, then take the value, in one transaction.
  r = db_->Execute(Txn({DeleteOp{"c", "b"}, PutOp{"c", "a", a_to_x}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Eq("by_email", S("x@")), "a");
  EXPECT_EQ(Eq("by_email", S("w@")), "");

  // A delete frees the value for a later write.
  ASSERT_TRUE(Del("a").status.ok());
  EXPECT_EQ(Eq("by_email", S("x@")), "");
  r = Put("c", R"({"email": "x@"})", PutMode::kInsert);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Eq("by_email", S("x@")), "c");
  EXPECT_EQ(Verified().index_entries, 1u);
}

TEST_F(IndexTest, UniqueIndexSeesEqualNumbersNullsButNotMissingFields) {
  ASSERT_TRUE(CreateIndex("u", {"n"}, true).ok());
  ASSERT_TRUE(Put("a", R"({"n": 1})").status.ok());
  EXPECT_EQ(Put("b", R"({"n": 1.0})").status.code(), Code::kUniqueViolation);
  EXPECT_TRUE(Put("b", R"({"n": 1.5})").status.ok());
  // Records without the field are not in the index, so any number of them may exist.
  EXPECT_TRUE(Put("m1", R"({})").status.ok());
  EXPECT_TRUE(Put("m2", R"({"x": 1})").status.ok());
  EXPECT_TRUE(Put("m3", R"({"n": [1]})").status.ok());
  // A stored null is a value like any other.
  EXPECT_TRUE(Put("n1", R"({"n": null})").status.ok());
  EXPECT_EQ(Put("n2", R"({"n": null})").status.code(), Code::kUniqueViolation);
  EXPECT_EQ(Keys({.index = "u"}), "n1,a,b");
  Verified();
}

TEST_F(IndexTest, CompoundUniqueIndexComparesWholeKeys) {
  ASSERT_TRUE(CreateIndex("u", {"a", "b"}, true).ok());
  ASSERT_TRUE(Put("k1", R"({"a": "x", "b": 1})").status.ok());
  EXPECT_TRUE(Put("k2", R"({"a": "x", "b": 2})").status.ok());
  EXPECT_TRUE(Put("k3", R"({"a": "y", "b": 1})").status.ok());
  EXPECT_TRUE(Put("k4", R"({"a": "x"})").status.ok()) << "not in the index";
  EXPECT_EQ(Put("k5", R"({"a": "x", "b": 1.0})").status.code(), Code::kUniqueViolation);
  EXPECT_EQ(Keys({.index = "u", .equal = {S("x")}}), "k1,k2");
  Verified();
}

// --- Maintenance.

TEST_F(IndexTest, IndexFollowsUpdatesDeletesAndRawValues) {
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(Put("a", R"({"n": 1})").status.ok());
  ASSERT_TRUE(Put("a", R"({"n": 2})").status.ok());
  EXPECT_EQ(Eq("by_n", I(1)), "");
  EXPECT_EQ(Eq("by_n", I(2)), "a");
  ASSERT_TRUE(Put("a", R"({"m": 2})").status.ok());
  EXPECT_EQ(Eq("by_n", I(2)), "") << "the field went away";
  ASSERT_TRUE(Put("a", R"({"n": 3})").status.ok());
  EXPECT_EQ(Eq("by_n", I(3)), "a");

  // A raw value is never indexed, even when its bytes are a valid document.
  std::string bytes = Doc(R"({"n": 3})");
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"c", "a", bytes, ValueKind::kRaw}})).status.ok());
  EXPECT_EQ(Eq("by_n", I(3)), "");
  std::string four = Doc(R"({"n": 4})");
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"c", "r", four, ValueKind::kRaw}})).status.ok());
  EXPECT_EQ(Eq("by_n", I(4)), "");
  EXPECT_EQ(Keys({.index = "by_n"}), "");
  EXPECT_EQ(Verified().index_entries, 0u);

  // Raw back to a document.
  ASSERT_TRUE(Put("a", R"({"n": 5})").status.ok());
  EXPECT_EQ(Eq("by_n", I(5)), "a");
  ASSERT_TRUE(Put("b", R"({"n": 5})").status.ok());
  EXPECT_EQ(Eq("by_n", I(5)), "a,b");

  // Delete; delete and re-put in one transaction.
  ASSERT_TRUE(Del("a").status.ok());
  EXPECT_EQ(Eq("by_n", I(5)), "b");
  std::string seven = Doc(R"({"n": 7})");
  ASSERT_TRUE(db_->Execute(Txn({DeleteOp{"c", "b"}, PutOp{"c", "b", seven}})).status.ok());
  EXPECT_EQ(Keys({.index = "by_n"}), "b");
  EXPECT_EQ(Eq("by_n", I(7)), "b");
  // Put then delete in one transaction leaves nothing.
  ASSERT_TRUE(db_->Execute(Txn({PutOp{"c", "t", seven}, DeleteOp{"c", "t"}})).status.ok());
  EXPECT_EQ(Eq("by_n", I(7)), "b");
  VerifyReport v = Verified();
  EXPECT_EQ(v.records, 2u);
  EXPECT_EQ(v.index_entries, 1u);
}

TEST_F(IndexTest, EveryIndexOfACollectionIsMaintained) {
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(CreateIndex("by_s", {"s"}).ok());
  ASSERT_TRUE(CreateIndex("by_ns", {"n", "s"}, true).ok());
  ASSERT_TRUE(Put("a", R"({"n": 1, "s": "x"})").status.ok());
  ASSERT_TRUE(Put("b", R"({"n": 1, "s": "y"})").status.ok());
  ASSERT_TRUE(Put("a", R"({"n": 2, "s": "y"})").status.ok());
  EXPECT_EQ(Eq("by_n", I(1)), "b");
  EXPECT_EQ(Eq("by_n", I(2)), "a");
  EXPECT_EQ(Eq("by_s", S("y")), "a,b");
  EXPECT_EQ(Eq("by_s", S("x")), "");
  EXPECT_EQ(Keys({.index = "by_ns"}), "b,a");
  ASSERT_TRUE(Put("a", R"({"n": 2})").status.ok());
  EXPECT_EQ(Eq("by_s", S("y")), "b");
  EXPECT_EQ(Keys({.index = "by_ns"}), "b");
  EXPECT_EQ(Verified().index_entries, 4u);
}

// --- Long values: encodings past LMDB's key size are stored as a prefix and a hash.

class LongValueTest : public IndexTest {
 protected:
  static std::string Long(char tail, size_t size) {
    std::string s(550, 'p');
    s.append(size - s.size(), tail);
    return s;
  }
};

TEST_F(LongValueTest, EqualityFindsExactlyTheRightRecord) {
  ASSERT_TRUE(CreateIndex("by_s", {"s"}).ok());
  ASSERT_TRUE(CreateIndex("u_s", {"s"}, true).ok());
  std::vector<std::pair<std::string, std::string>> values = {
      {"a600", Long('a', 600)},
      {"b600", Long('a', 599) + "b"},  // differs from a600 in its last byte only
      {"c1000", Long('b', 1000)},
      {"d5000", Long('c', 5000)},
      {"e550", std::string(550, 'p')},  // the shared prefix itself
      {"f503", std::string(503, 'm')},  // the longest that fits untruncated
      {"g504", std::string(504, 'm')},  // the shortest that does not
      {"h505", std::string(505, 'm')},
      {"short", "p"},
  };
  for (const auto& [k, s] : values) {
    ASSERT_TRUE(PutDoc(k, StringDoc("s", s)).status.ok()) << k;
  }
  // A second record with a600's value, in the non-unique index only.
  ASSERT_TRUE(PutDoc("a600bis", StringDoc("other", "x")).status.ok());
  for (const auto& [k, s] : values) {
    EXPECT_EQ(Eq("u_s", S(s)), k) << s.size();
    EXPECT_EQ(Count({.index = "u_s", .equal = {S(s)}}), 1) << k;
  }
  EXPECT_EQ(Eq("by_s", S(Long('a', 601))), "");
  EXPECT_EQ(Eq("by_s", S(Long('a', 598) + "b")), "");
  EXPECT_EQ(Eq("by_s", S(Long('c', 4999))), "");
  EXPECT_EQ(Eq("by_s", S(std::string(551, 'p'))), "");

  // Duplicates of a long value, in key order.
  ASSERT_TRUE(db_->DropIndex("c", "u_s").ok());
  ASSERT_TRUE(PutDoc("a600bis", StringDoc("s", Long('a', 600))).status.ok());
  ASSERT_TRUE(PutDoc("a600ter", StringDoc("s", Long('a', 600))).status.ok());
  EXPECT_EQ(Eq("by_s", S(Long('a', 600))), "a600,a600bis,a600ter");
  EXPECT_EQ(Keys({.index = "by_s", .equal = {S(Long('a', 600))}, .reverse = true}),
            "a600ter,a600bis,a600");
  int pages = 0;
  EXPECT_EQ(PageAll({.index = "by_s", .equal = {S(Long('a', 600))}, .limit = 1}, &pages),
            "a600,a600bis,a600ter");
  EXPECT_EQ(pages, 3);

  // Updates and deletes remove the truncated entries.
  ASSERT_TRUE(PutDoc("a600bis", StringDoc("s", Long('c', 5000))).status.ok());
  ASSERT_TRUE(Del("a600ter").status.ok());
  EXPECT_EQ(Eq("by_s", S(Long('a', 600))), "a600");
  EXPECT_EQ(Eq("by_s", S(Long('c', 5000))), "a600bis,d5000");
  db_->WaitForBackgroundWork();
  EXPECT_EQ(Verified().index_entries, 10u);
}

// The set of records in ranges bounded by and covering long values (order aside).
TEST_F(LongValueTest, RangesHoldExactlyTheRightRecords) {
  ASSERT_TRUE(CreateIndex("by_s", {"s"}).ok());
  std::map<std::string, std::string> values = {
      {"a", Long('a', 600)},   {"b", Long('a', 599) + "b"}, {"c", Long('b', 1000)},
      {"d", Long('c', 5000)},  {"e", std::string(550, 'p')}, {"f", Long('a', 700)},
      {"g", Long('d', 600)},   {"h", "p"},                  {"i", "q"},
      {"j", std::string(503, 'p')}, {"k", std::string(504, 'p')},
  };
  for (const auto& [k, s] : values) ASSERT_TRUE(PutDoc(k, StringDoc("s", s)).status.ok());
  auto expect = [&](std::optional<ValueBound> lo, std::optional<ValueBound> hi) {
    std::vector<std::string> keys;
    for (const auto& [k, s] : values) {
      bool above = !lo || (lo->inclusive ? s >= std::get<std::string>(lo->value)
                                         : s > std::get<std::string>(lo->value));
      bool below = !hi || (hi->inclusive ? s <= std::get<std::string>(hi->value)
                                         : s < std::get<std::string>(hi->value));
      if (above && below) keys.push_back(k);
    }
    return keys;
  };
  auto sorted = [](std::string keys) {
    std::vector<std::string> v;
    std::stringstream in(keys);
    for (std::string k; std::getline(in, k, ',');) v.push_back(k);
    std::sort(v.begin(), v.end());
    EXPECT_TRUE(std::adjacent_find(v.begin(), v.end()) == v.end()) << "duplicates: " << keys;
    return v;
  };
  std::vector<std::pair<std::optional<ValueBound>, std::optional<ValueBound>>> ranges = {
      {Incl(S(Long('a', 600))), Incl(S(Long('b', 1000)))},
      {Excl(S(Long('a', 600))), Excl(S(Long('b', 1000)))},
      {Incl(S(Long('a', 599) + "b")), Incl(S(Long('a', 599) + "b"))},
      {Excl(S(Long('a', 599) + "b")), std::nullopt},
      {std::nullopt, Excl(S(Long('a', 600)))},
      {std::nullopt, Incl(S(Long('a', 650)))},
      {Incl(S(Long('a', 601))), Incl(S(Long('c', 4000)))},
      {Incl(S(std::string(503, 'p'))), Incl(S(std::string(504, 'p')))},
      {Excl(S(std::string(550, 'p'))), Excl(S("q"))},
      {Incl(S("p")), Incl(S(std::string(505, 'p')))},
      {Incl(S(Long('z', 600))), std::nullopt},
      {std::nullopt, std::nullopt},
  };
  for (size_t i = 0; i < ranges.size(); i++) {
    const auto& [lo, hi] = ranges[i];
    std::vector<std::string> want = expect(lo, hi);
    EXPECT_EQ(sorted(Keys({.index = "by_s", .lower = lo, .upper = hi})), want) << "range " << i;
    EXPECT_EQ(sorted(Keys({.index = "by_s", .lower = lo, .upper = hi, .reverse = true})), want)
        << "reverse range " << i;
    EXPECT_EQ(Count({.index = "by_s", .lower = lo, .upper = hi}), int64_t(want.size()))
        << "range " << i;
    for (bool reverse : {false, true}) {
      int pages = 0;
      std::string paged = PageAll(
          {.index = "by_s", .lower = lo, .upper = hi, .limit = 2, .reverse = reverse}, &pages);
      EXPECT_EQ(sorted(paged), want) << "paged range " << i << (reverse ? " reverse" : "");
      EXPECT_EQ(pages, int((want.size() + 1) / 2)) << "range " << i;
    }
  }
  Verified();
}

// Results come in index order (types.h, QuerySpec), for long values too.
// Long values are ordered by their first 499 encoded bytes (docs/storage.md): values
// that differ earlier come in value order; values that share those bytes come back
// together, in hash order among themselves.
TEST_F(LongValueTest, LongValuesOrderByTheirLeadingBytes) {
  ASSERT_TRUE(CreateIndex("by_s", {"s"}).ok());
  ASSERT_TRUE(CreateIndex("by_sn", {"s", "n"}).ok());
  auto sorted = [](std::string keys) {
    std::vector<std::string> v;
    std::stringstream in(keys);
    for (std::string k; std::getline(in, k, ',');) v.push_back(k);
    std::sort(v.begin(), v.end());
    return Join(v);
  };
  // Keys in reverse of the values' order, so key order cannot pass for value order.
  ASSERT_TRUE(PutDoc("d3", StringDoc("s", std::string(600, 'a'))).status.ok());
  ASSERT_TRUE(PutDoc("d2", StringDoc("s", std::string(1000, 'b'))).status.ok());
  ASSERT_TRUE(PutDoc("d1", StringDoc("s", std::string(5000, 'c'))).status.ok());
  ASSERT_TRUE(PutDoc("d0", StringDoc("s", "d")).status.ok());
  EXPECT_EQ(Keys({.index = "by_s"}), "d3,d2,d1,d0");
  EXPECT_EQ(Keys({.index = "by_s", .reverse = true}), "d0,d1,d2,d3");

  // Values sharing a 550-byte prefix: one group, exact membership, any order inside.
  ASSERT_TRUE(PutDoc("k5", StringDoc("s", Long('a', 600))).status.ok());
  ASSERT_TRUE(PutDoc("k4", StringDoc("s", Long('a', 599) + "b")).status.ok());
  ASSERT_TRUE(PutDoc("k3", StringDoc("s", Long('b', 1000))).status.ok());
  ASSERT_TRUE(PutDoc("k2", StringDoc("s", Long('c', 5000))).status.ok());
  ASSERT_TRUE(PutDoc("k1", StringDoc("s", Long('d', 600))).status.ok());
  ASSERT_TRUE(PutDoc("k0", StringDoc("s", Long('e', 600))).status.ok());
  EXPECT_EQ(sorted(Keys({.index = "by_s", .lower = Incl(S(Long('a', 600))),
                         .upper = Incl(S(Long('c', 5000)))})),
            "k2,k3,k4,k5");
  EXPECT_EQ(sorted(Keys({.index = "by_s", .lower = Excl(S(Long('a', 600))),
                         .upper = Excl(S(Long('e', 600)))})),
            "k1,k2,k3,k4");
  // The group sorts by its shared prefix ('p...'), after every value starting below 'p'.
  std::string all = Keys({.index = "by_s"});
  EXPECT_EQ(all.substr(0, 12), "d3,d2,d1,d0,") << all;
  EXPECT_EQ(sorted(all.substr(12)), "k0,k1,k2,k3,k4,k5") << all;

  // A compound key after a long first field: the right records for each second field.
  std::string l = Long('x', 1000);
  for (int n = 1; n <= 5; n++) {
    std::string doc = Doc("{\"s\": \"" + l + "\", \"n\": " + std::to_string(n) + "}");
    ASSERT_TRUE(PutDoc("x" + std::to_string(n), doc).status.ok());
  }
  EXPECT_EQ(sorted(Keys({.index = "by_sn", .equal = {S(l)}})), "x1,x2,x3,x4,x5");
  EXPECT_EQ(sorted(Keys({.index = "by_sn", .equal = {S(l)}, .lower = Incl(I(2)),
                         .upper = Incl(I(4))})),
            "x2,x3,x4");
}

TEST_F(LongValueTest, CompoundKeyWithALongFirstField) {
  ASSERT_TRUE(CreateIndex("by_sn", {"s", "n"}).ok());
  std::string l1 = Long('a', 1000), l2 = Long('a', 999) + "b";
  for (int n = 1; n <= 5; n++) {
    for (const auto& [tag, s] : {std::pair{"x", l1}, std::pair{"y", l2}}) {
      std::string doc = Doc("{\"s\": \"" + s + "\", \"n\": " + std::to_string(n) + "}");
      ASSERT_TRUE(PutDoc(std::string(tag) + std::to_string(n), doc).status.ok());
    }
  }
  auto sorted = [](std::string keys) {
    std::vector<std::string> v;
    std::stringstream in(keys);
    for (std::string k; std::getline(in, k, ',');) v.push_back(k);
    std::sort(v.begin(), v.end());
    return Join(v);
  };
  EXPECT_EQ(Keys({.index = "by_sn", .equal = {S(l1), I(3)}}), "x3");
  EXPECT_EQ(Keys({.index = "by_sn", .equal = {S(l2), I(3)}}), "y3");
  EXPECT_EQ(sorted(Keys({.index = "by_sn", .equal = {S(l1)}})), "x1,x2,x3,x4,x5");
  EXPECT_EQ(sorted(Keys({.index = "by_sn", .equal = {S(l2)}, .lower = Incl(I(2)),
                         .upper = Excl(I(5))})),
            "y2,y3,y4");
  EXPECT_EQ(Count({.index = "by_sn", .equal = {S(l1)}, .lower = Excl(I(2))}), 3);
  int pages = 0;
  EXPECT_EQ(sorted(PageAll({.index = "by_sn", .equal = {S(l2)}, .limit = 2}, &pages)),
            "y1,y2,y3,y4,y5");
  EXPECT_EQ(pages, 3);
  Verified();
}

TEST_F(LongValueTest, UniqueIndexComparesWholeLongValues) {
  ASSERT_TRUE(CreateIndex("u_s", {"s"}, true).ok());
  std::string v1000 = Long('q', 1000);
  std::string v1000b = v1000;
  v1000b[650] = 'r';  // differs only after byte 600
  std::string v5000 = Long('q', 5000);
  std::string v5000b = v5000;
  v5000b[4999] = 'r';
  ASSERT_TRUE(PutDoc("a", StringDoc("s", v1000)).status.ok());
  ASSERT_TRUE(PutDoc("b", StringDoc("s", v1000b)).status.ok());
  ASSERT_TRUE(PutDoc("c", StringDoc("s", v5000)).status.ok());
  ASSERT_TRUE(PutDoc("d", StringDoc("s", v5000b)).status.ok());
  ASSERT_TRUE(PutDoc("e", StringDoc("s", Long('q', 600))).status.ok());

  TxnResult r = PutDoc("x", StringDoc("s", v1000));
  EXPECT_EQ(r.status.code(), Code::kUniqueViolation) << r.status.ToString();
  EXPECT_NE(r.status.message().find("'a'"), std::string::npos) << r.status.message();
  r = PutDoc("x", StringDoc("s", v5000b));
  EXPECT_EQ(r.status.code(), Code::kUniqueViolation) << r.status.ToString();
  EXPECT_NE(r.status.message().find("'d'"), std::string::npos) << r.status.message();
  EXPECT_EQ(PutDoc("x", StringDoc("s", Long('q', 600))).status.code(), Code::kUniqueViolation);
  // Rewriting a record with its own long value is fine.
  r = PutDoc("c", Doc("{\"s\": \"" + v5000 + "\", \"more\": 1}"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  // Moving a long value: a lets go of it, x takes it.
  std::string away = StringDoc("s", "short"), take = StringDoc("s", v1000);
  r = db_->Execute(Txn({PutOp{"c", "a", away}, PutOp{"c", "x", take}}));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Eq("u_s", S(v1000)), "x");
  EXPECT_EQ(Eq("u_s", S(v1000b)), "b");
  EXPECT_EQ(Eq("u_s", S(v5000)), "c");
  EXPECT_EQ(Eq("u_s", S(v5000b)), "d");
  EXPECT_EQ(Eq("u_s", S("short")), "a");
  VerifyReport v = Verified();
  EXPECT_EQ(v.records, 6u);
  EXPECT_EQ(v.index_entries, 6u);
}

// --- Building an index over existing records.

class IndexBuildTest : public IndexTest {
 protected:
  // Writes `n` records k000.. with {"n": i % 10, "i": i} in one transaction.
  void Fill(int n) {
    std::vector<std::string> keys, docs;
    for (int i = 0; i < n; i++) {
      keys.push_back(Key("k", i, 3));
      docs.push_back(Doc("{\"n\": " + std::to_string(i % 10) + ", \"i\": " +
                         std::to_string(i) + "}"));
      model_[keys.back()] = i % 10;
    }
    ASSERT_TRUE(db_->Execute(PutMany(keys, docs)).status.ok());
  }
  // Checks every value's query against the model.
  void ExpectMatchesModel(std::string_view index) {
    std::map<int64_t, std::vector<std::string>> by_value;
    for (const auto& [k, n] : model_) by_value[n].push_back(k);
    std::vector<std::string> all;
    for (const auto& [n, keys] : by_value) {
      EXPECT_EQ(Eq(index, I(n)), Join(keys)) << "n = " << n;
      all.insert(all.end(), keys.begin(), keys.end());
    }
    EXPECT_EQ(Keys({.index = index}), Join(all));
    EXPECT_EQ(Count({.index = index}), int64_t(model_.size()));
  }
  std::map<std::string, int64_t> model_;  // key -> n, for records in the index
};

TEST_F(IndexBuildTest, IndexOnAPopulatedCollectionBuildsInTheBackground) {
  Options o;
  o.background_batch = 3;
  Reopen(o);
  Fill(300);
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  EXPECT_EQ(State("by_n"), "building") << "100 batches cannot be done yet";
  std::string q = Eq("by_n", I(3));
  EXPECT_TRUE(q == "!unavailable" || State("by_n") == "ready") << q;
  int64_t count = Count({.index = "by_n"});
  EXPECT_TRUE(count == -1 - int64_t(Code::kUnavailable) || State("by_n") == "ready") << count;
  TxnResult r = db_->Execute(
      Txn({QueryOp{QuerySpec{.collection = "c", .index = "by_n", .equal = {I(3)}}}}));
  if (!r.status.ok()) {
    EXPECT_EQ(r.status.code(), Code::kUnavailable);
    EXPECT_NE(r.status.message().find("building"), std::string::npos) << r.status.message();
  }
  Verified();  // a partial build is consistent
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("by_n"), "ready");
  ExpectMatchesModel("by_n");
  VerifyReport v = Verified();
  EXPECT_EQ(v.index_entries, 300u);
}

TEST_F(IndexBuildTest, WritesDuringABuildLeaveAnExactIndex) {
  Options o;
  o.background_batch = 3;
  Reopen(o);
  Fill(300);
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_EQ(State("by_n"), "building");
  int while_building = 0;
  std::string raw = "raw";
  for (int i = 0; i < 120; i++) {
    int j = (i * 37) % 300;  // all over the key space, above and below the build's cursor
    std::string key = Key("k", j, 3);
    if (State("by_n") == "building") while_building++;
    TxnResult r;
    switch (i % 6) {
      case 0:  // change the value
        r = Put(key, "{\"n\": " + std::to_string(100 + j % 3) + "}");
        model_[key] = 100 + j % 3;
        break;
      case 1:
        r = Del(key);
        model_.erase(key);
        break;
      case 2:  // a new record between existing ones
        key += "x";
        r = Put(key, "{\"n\": " + std::to_string(j % 10) + "}");
        model_[key] = j % 10;
        break;
      case 3:  // the field goes away
        r = Put(key, R"({"m": 1})");
        model_.erase(key);
        break;
      case 4:  // raw
        r = db_->Execute(Txn({PutOp{"c", key, raw, ValueKind::kRaw}}));
        model_.erase(key);
        break;
      case 5:  // delete and re-create in one transaction
        std::string d = Doc("{\"n\": 200}");
        r = db_->Execute(Txn({DeleteOp{"c", key}, PutOp{"c", key, d}}));
        model_[key] = 200;
        break;
    }
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.ToString();
    if (i % 40 == 0) Verified();
  }
  RecordProperty("writes_while_building", while_building);
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("by_n"), "ready");
  ExpectMatchesModel("by_n");
  VerifyReport v = Verified();
  EXPECT_EQ(v.index_entries, model_.size());
}

TEST_F(IndexBuildTest, UniqueBuildOverDuplicatesFailsAndCanBeDropped) {
  Options o;
  o.background_batch = 3;
  Reopen(o);
  Fill(30);  // n = i % 10: k003, k013 and k023 share n = 3
  ASSERT_TRUE(CreateIndex("u_n", {"n"}, true).ok());
  db_->WaitForBackgroundWork();
  std::string error;
  EXPECT_EQ(State("u_n", &error), "failed");
  EXPECT_NE(error.find("'k000'"), std::string::npos) << error;
  EXPECT_NE(error.find("'k010'"), std::string::npos) << error;
  TxnResult r = db_->Execute(
      Txn({QueryOp{QuerySpec{.collection = "c", .index = "u_n", .equal = {I(3)}}}}));
  EXPECT_EQ(r.status.code(), Code::kUnavailable) << r.status.ToString();
  EXPECT_NE(r.status.message().find("k010"), std::string::npos) << r.status.message();
  EXPECT_EQ(Count({.index = "u_n"}), -1 - int64_t(Code::kUnavailable));
  // Writes go on; the failed index no longer constrains them.
  EXPECT_TRUE(Put("k999", R"({"n": 3})").status.ok());
  EXPECT_TRUE(Del("k013").status.ok());
  model_["k999"] = 3;
  model_.erase("k013");
  Verified();
  // The failure outlives a restart, and the build is not retried.
  Reopen(o);
  std::string error_after;
  EXPECT_EQ(State("u_n", &error_after), "failed");
  EXPECT_EQ(error_after, error);
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("u_n"), "failed");

  ASSERT_TRUE(db_->DropIndex("c", "u_n").ok());
  EXPECT_EQ(State("u_n"), "absent");
  EXPECT_EQ(Eq("u_n", I(3)), "!unknown name");
  db_->WaitForBackgroundWork();
  EXPECT_EQ(Verified().index_entries, 0u);

  // The same name, not unique this time.
  ASSERT_TRUE(CreateIndex("u_n", {"n"}).ok());
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("u_n"), "ready");
  EXPECT_EQ(Eq("u_n", I(3)), "k003,k023,k999");
  ExpectMatchesModel("u_n");
  EXPECT_EQ(Verified().index_entries, 30u);
}

TEST_F(IndexBuildTest, UniqueBuildOverDistinctValuesSucceeds) {
  Options o;
  o.background_batch = 3;
  Reopen(o);
  Fill(50);
  ASSERT_TRUE(CreateIndex("u_i", {"i"}, true).ok());
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("u_i"), "ready");
  EXPECT_EQ(Eq("u_i", I(42)), "k042");
  EXPECT_EQ(Put("new", R"({"i": 42})").status.code(), Code::kUniqueViolation);
  EXPECT_EQ(Verified().index_entries, 50u);
}

// A write during a unique build either meets the entries built so far (and fails), or comes
// first and makes the build fail: never a ready index holding a value twice.
TEST_F(IndexBuildTest, UniqueBuildAndConcurrentWritesAgree) {
  Options o;
  o.background_batch = 3;
  Reopen(o);
  Fill(300);
  ASSERT_TRUE(CreateIndex("u_i", {"i"}, true).ok());
  TxnResult low = Put("new_low", R"({"i": 0})");    // k000 is in the first batch
  TxnResult high = Put("new_high", R"({"i": 299})");  // k299 is in the last
  for (const TxnResult* r : {&low, &high}) {
    EXPECT_TRUE(r->status.ok() || r->status.code() == Code::kUniqueViolation)
        << r->status.ToString();
  }
  db_->WaitForBackgroundWork();
  std::string error;
  std::string state = State("u_i", &error);
  RecordProperty("low", std::string(CodeName(low.status.code())));
  RecordProperty("high", std::string(CodeName(high.status.code())));
  if (low.status.ok() || high.status.ok()) {
    EXPECT_EQ(state, "failed");
    if (high.status.ok() && !low.status.ok()) {
      EXPECT_NE(error.find("'new_high'"), std::string::npos) << error;
      EXPECT_NE(error.find("'k299'"), std::string::npos) << error;
    }
  } else {
    EXPECT_EQ(state, "ready");
    EXPECT_EQ(Eq("u_i", I(0)), "k000");
    EXPECT_EQ(Eq("u_i", I(299)), "k299");
    EXPECT_EQ(Count({.index = "u_i"}), 300);
  }
  Verified();
}

TEST_F(IndexBuildTest, BuildResumesAfterRestart) {
  Options o;
  o.background_batch = 1;
  o.durability = Durability::kNoSync;  // 2000 batches, each a commit
  Reopen(o);
  {
    std::vector<std::string> keys, docs;
    for (int i = 0; i < 2000; i++) {
      keys.push_back(Key("k", i, 4));
      docs.push_back(Doc("{\"n\": " + std::to_string(i % 50) + "}"));
      model_[keys.back()] = i % 50;
    }
    ASSERT_TRUE(db_->Execute(PutMany(keys, docs)).status.ok());
  }
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  db_.reset();  // stops the build after its current batch

  // Read-only, nothing runs in the background: the state is as the build left it.
  Options ro = o;
  ro.read_only = true;
  Reopen(ro);
  std::string state = State("by_n");
  RecordProperty("state_after_close", state);
  ASSERT_TRUE(state == "building" || state == "ready") << state;
  if (state == "building") {
    EXPECT_EQ(Eq("by_n", I(7)), "!unavailable");
    VerifyReport v = Verified();
    EXPECT_LT(v.index_entries, 2000u);
  }

  // Writable again: the build resumes; writes go on meanwhile.
  Reopen(o);
  ASSERT_TRUE(Del("k0007").status.ok());
  ASSERT_TRUE(Put("k1957", R"({"n": 49})").status.ok());
  ASSERT_TRUE(Put("k1999x", R"({"n": 7})").status.ok());
  model_.erase("k0007");
  model_["k1957"] = 49;
  model_["k1999x"] = 7;
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("by_n"), "ready");
  std::vector<std::string> sevens;
  for (const auto& [k, n] : model_) {
    if (n == 7) sevens.push_back(k);
  }
  EXPECT_EQ(Eq("by_n", I(7)), Join(sevens));
  EXPECT_EQ(Count({.index = "by_n"}), 2000);
  EXPECT_EQ(Count({.index = "by_n", .equal = {I(49)}}), 41);
  VerifyReport v = Verified();
  EXPECT_EQ(v.index_entries, 2000u);
  EXPECT_EQ(v.records, 2000u);
}

// --- Dropping and declaring indexes.

TEST_F(IndexTest, DroppedIndexIsGoneAndANewOneOfTheSameNameStartsFresh) {
  ASSERT_TRUE(CreateIndex("idx", {"n"}).ok());
  ASSERT_TRUE(Put("a", R"({"n": 1, "m": 5})").status.ok());
  ASSERT_TRUE(Put("b", R"({"n": 5, "m": 1})").status.ok());
  ASSERT_TRUE(Put("c", R"({"n": 5})").status.ok());
  ASSERT_TRUE(db_->DropIndex("c", "idx").ok());
  EXPECT_EQ(State("idx"), "absent");
  EXPECT_EQ(Eq("idx", I(5)), "!unknown name");
  EXPECT_EQ(Count({.index = "idx"}), -1 - int64_t(Code::kUnknownName));
  EXPECT_EQ(db_->DropIndex("c", "idx").code(), Code::kUnknownName);
  // Writes after the drop do not touch its entries.
  ASSERT_TRUE(Put("d", R"({"n": 5, "m": 5})").status.ok());

  ASSERT_TRUE(CreateIndex("idx", {"m"}).ok());
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("idx"), "ready");
  EXPECT_EQ(Eq("idx", I(5)), "a,d");
  EXPECT_EQ(Eq("idx", I(1)), "b");
  EXPECT_EQ(Keys({.index = "idx"}), "b,a,d");
  VerifyReport v = Verified();
  EXPECT_EQ(v.index_entries, 3u) << "the old entries were cleaned up";
}

TEST_F(IndexTest, DropWhileBuildingLeavesNothingBehind) {
  Options o;
  o.background_batch = 3;
  Reopen(o);
  std::vector<std::string> keys, docs;
  for (int i = 0; i < 200; i++) {
    keys.push_back(Key("k", i, 3));
    docs.push_back(Doc("{\"n\": " + std::to_string(i) + "}"));
  }
  ASSERT_TRUE(db_->Execute(PutMany(keys, docs)).status.ok());
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(CreateIndex("keep", {"n"}).ok());
  ASSERT_TRUE(Del("k100").status.ok());
  ASSERT_TRUE(db_->DropIndex("c", "by_n").ok());
  db_->WaitForBackgroundWork();
  EXPECT_EQ(State("by_n"), "absent");
  EXPECT_EQ(State("keep"), "ready");
  EXPECT_EQ(Count({.index = "keep"}), 199);
  EXPECT_EQ(Verified().index_entries, 199u);
}

TEST_F(IndexTest, DuplicateAndMalformedIndexSpecsAreRefused) {
  ASSERT_TRUE(CreateIndex("idx", {"n"}).ok());
  EXPECT_EQ(CreateIndex("idx", {"n"}).code(), Code::kAlreadyExists);
  EXPECT_EQ(CreateIndex("idx", {"m"}, true).code(), Code::kAlreadyExists);
  EXPECT_EQ(CreateIndex("noinput", {}).code(), Code::kBadRequest);
  for (std::string name : {std::string(""), std::string("has space"), std::string("a/b"),
                           std::string(129, 'x'), std::string("nul\0x", 5)}) {
    EXPECT_EQ(CreateIndex(name, {"n"}).code(), Code::kBadRequest) << name;
  }
  for (std::string field : {std::string(""), std::string("a..b"), std::string(".a"),
                            std::string("a."), std::string("."), std::string(257, 'f')}) {
    Status s = CreateIndex("bad", {field});
    EXPECT_EQ(s.code(), Code::kBadRequest) << field << ": " << s.ToString();
  }
  EXPECT_EQ(CreateIndex("bad", {"ok", "a..b"}).code(), Code::kBadRequest);
  std::vector<std::string> fields;
  for (int i = 0; i < 16; i++) fields.push_back("f" + std::to_string(i));
  EXPECT_TRUE(CreateIndex("sixteen", fields).ok());
  fields.push_back("f16");
  EXPECT_EQ(CreateIndex("seventeen", fields).code(), Code::kBadRequest);
  EXPECT_EQ(db_->CreateIndex("nope", {"i", {"n"}}).code(), Code::kUnknownName);
  EXPECT_EQ(db_->DropIndex("nope", "idx").code(), Code::kUnknownName);
  EXPECT_EQ(State("bad"), "absent");
  auto info = db_->DescribeCollection("c");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->indexes.size(), 2u);
  Verified();
}

TEST_F(IndexTest, IndexesSurviveReopen) {
  ASSERT_TRUE(CreateIndex("by_n", {"n"}).ok());
  ASSERT_TRUE(CreateIndex("u", {"u"}, true).ok());
  ASSERT_TRUE(Put("a", R"({"n": 1, "u": "x"})").status.ok());
  ASSERT_TRUE(Put("b", R"({"n": 1, "u": "y"})").status.ok());
  Reopen({});
  EXPECT_EQ(State("by_n"), "ready");
  EXPECT_EQ(Eq("by_n", I(1)), "a,b");
  EXPECT_EQ(Put("c", R"({"u": "x"})").status.code(), Code::kUniqueViolation);
  Verified();
}

}  // namespace
}  // namespace cairn
