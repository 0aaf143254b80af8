// The rules of docs/protocol.md that a client can only learn by trying, each checked
// against the real cairnd over a raw WireClient: the handshake's edges, which code
// each key violation gets, how errors count conditions and operations, counts, empty
// and cross-type ranges, the nesting limit of documents, names, request id 0, and the
// names GetStats reports.
#include <gtest/gtest.h>

#include <set>

#include "flatbuffers/flexbuffers.h"
#include "raw_lmdb.h"
#include "server_process.h"
#include "test_util.h"

namespace cairn {
namespace {

using flatbuffers::FlatBufferBuilder;
using testing::Connect;
using testing::ErrorText;
using testing::ServerProcess;
using testing::TempDir;
using testing::WireClient;
namespace req = testing::req;

// docs/protocol.md: maps and vectors a document may nest below its root map.
constexpr int kMaxNesting = 63;

// A FlexBuffer whose root is one value, written by `write`.
template <typename F>
std::string Flex(F write) {
  flexbuffers::Builder b;
  write(b);
  b.Finish();
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
}

class ProtocolRulesTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    flags.insert(flags.end(), {"--durability", "nosync"});
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), flags);
    ASSERT_TRUE(server_->ready()) << server_->output();
  }
  uint16_t port() const { return server_->port(); }

  // The error of `r`, or a failure.
  static ::testing::AssertionResult IsError(const wire::ResponseFrame* r, wire::ErrorCode code) {
    if (!r) return ::testing::AssertionFailure() << "no response";
    if (!r->error()) return ::testing::AssertionFailure() << "no error";
    if (r->error()->code() != code) return ::testing::AssertionFailure() << ErrorText(r);
    return ::testing::AssertionSuccess();
  }

  // The records of a one-operation transaction's reply, as their keys.
  static std::vector<std::string> Keys(const wire::ResponseFrame* r) {
    std::vector<std::string> keys;
    EXPECT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    if (!r || !r->reply_as_TxnReply()) return keys;
    auto recs = r->reply_as_TxnReply()->results()->Get(0)->records();
    if (recs) {
      for (const wire::Record* rec : *recs) keys.emplace_back(rec->key()->begin(), rec->key()->end());
    }
    return keys;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

// --- Handshake.

TEST_F(ProtocolRulesTest, TheHandshakeRequiredErrorCarriesTheRefusedRequestsId) {
  Start();
  WireClient c(port());
  auto r = c.Call(*req::Ping(77));
  ASSERT_TRUE(IsError(r, wire::ErrorCode::BadRequest));
  EXPECT_EQ(r->id(), 77u);
  EXPECT_NE(r->error()->message()->str().find("handshake required"), std::string::npos);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(ProtocolRulesTest, AFrameThatDoesNotVerifyBeforeHelloIsBadRequestAndTheConnectionGoesOn) {
  Start();
  WireClient c(port());
  std::string garbage(4, '\0');
  wire::StoreFrameHeader(garbage.data(), 8);
  garbage += "\xff\xff\xff\x7f garb";
  ASSERT_TRUE(c.SendRaw(garbage.substr(0, 12)));
  auto r = c.Response();
  ASSERT_TRUE(IsError(r, wire::ErrorCode::BadRequest));
  EXPECT_EQ(r->id(), 0u);
  r = c.Call(*req::Hello(5));
  ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
}

TEST_F(ProtocolRulesTest, ASecondHelloIsAnsweredAndRenegotiatesTheVersion) {
  Start();
  ASSERT_TRUE(server_->ready());
  auto c = Connect(port(), 3);
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  auto r = c->Call(*req::Get(2, "c", "k"));
  ASSERT_TRUE(r && r->reply_as_GetReply()) << ErrorText(r);
  // Hello again, at version 1: Get (version 2) is refused from then on.
  r = c->Call(*req::Hello(3, 1));
  ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_HelloReply()->protocol_version(), 1u);
  EXPECT_TRUE(IsError(c->Call(*req::Get(4, "c", "k")), wire::ErrorCode::BadRequest));
  r = c->Call(*req::Hello(5, 3));
  ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_HelloReply()->protocol_version(), 3u);
  r = c->Call(*req::Get(6, "c", "k"));
  EXPECT_TRUE(r && r->reply_as_GetReply()) << ErrorText(r);
  // A second Hello with version 0 is refused like a first one: the connection closes.
  EXPECT_TRUE(IsError(c->Call(*req::Hello(7, 0)), wire::ErrorCode::BadRequest));
  EXPECT_TRUE(c->ClosedByPeer());
}

TEST_F(ProtocolRulesTest, RequestsSentRightAfterHelloAreServedAtTheVersionItAgrees) {
  Start();
  WireClient c(port());
  // Hello, then without waiting: a Ping and a Get (version 2), in one write.
  std::string bytes = WireClient::Frame(*req::Hello(1, 3)) + WireClient::Frame(*req::Ping(2, "x")) +
                      WireClient::Frame(*req::Get(3, "nope", "k"));
  ASSERT_TRUE(c.SendRaw(bytes));
  auto r = c.Response();
  ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
  r = c.Response();
  ASSERT_TRUE(r && r->reply_as_Pong()) << ErrorText(r);
  EXPECT_EQ(r->id(), 2u);
  r = c.Response();
  ASSERT_TRUE(IsError(r, wire::ErrorCode::UnknownName)) << "a Get judged as version 3";
  EXPECT_EQ(r->id(), 3u);
  // The same behind a Hello at version 1: the Get is refused, the connection goes on.
  WireClient old(port());
  ASSERT_TRUE(old.SendRaw(WireClient::Frame(*req::Hello(1, 1)) +
                          WireClient::Frame(*req::Get(2, "nope", "k")) +
                          WireClient::Frame(*req::Ping(3))));
  ASSERT_TRUE(old.Response());
  r = old.Response();
  ASSERT_TRUE(IsError(r, wire::ErrorCode::BadRequest));
  EXPECT_NE(r->error()->message()->str().find("needs protocol 2"), std::string::npos);
  r = old.Response();
  EXPECT_TRUE(r && r->reply_as_Pong()) << ErrorText(r);
}

TEST_F(ProtocolRulesTest, RequestId0IsServedButReadsLikeAConnectionLevelError) {
  Start();
  auto c = Connect(port());
  // A request may carry id 0, and its response does too; so does the error for a frame
  // as a whole (here, an empty one). A client that uses id 0 cannot tell them apart.
  ASSERT_TRUE(c->SendRaw(std::string(4, '\0') + WireClient::Frame(*req::Ping(0, "p"))));
  auto r = c->Response();
  ASSERT_TRUE(IsError(r, wire::ErrorCode::BadRequest));
  EXPECT_EQ(r->id(), 0u);
  r = c->Response();
  ASSERT_TRUE(r && r->reply_as_Pong()) << ErrorText(r);
  EXPECT_EQ(r->id(), 0u);
}

// --- Keys.

TEST_F(ProtocolRulesTest, KeyAndIdempotencyKeyViolationsGetTheirCodes) {
  Start();
  auto c = Connect(port(), 3);
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  uint64_t id = 10;
  auto call = [&](req::TxnBuilder& t) { return c->Call(t.Build(++id)); };
  const std::string empty, longest(507, 'k'), over(508, 'k');
  struct Case {
    std::string name;
    std::function<void(req::TxnBuilder&, const std::string&)> build;
  };
  std::vector<Case> cases = {
      {"put", [](req::TxnBuilder& t, const std::string& k) { t.Put("c", k, "{}"); }},
      {"get", [](req::TxnBuilder& t, const std::string& k) { t.Get("c", k); }},
      {"delete", [](req::TxnBuilder& t, const std::string& k) { t.Delete("c", k); }},
      {"condition",
       [](req::TxnBuilder& t, const std::string& k) {
         t.If(wire::ConditionKind::Absent, "c", k).Put("c", "x", "{}");
       }},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    req::TxnBuilder e, o, l;
    k.build(e, empty);
    EXPECT_TRUE(IsError(call(e), wire::ErrorCode::BadRequest)) << "an empty key";
    k.build(o, over);
    EXPECT_TRUE(IsError(call(o), wire::ErrorCode::TooLarge)) << "a key of 508 bytes";
    k.build(l, longest);
    auto r = call(l);
    EXPECT_TRUE(r && r->reply_as_TxnReply()) << "507 bytes: " << ErrorText(r);
  }
  // The Get request (protocol 2) checks keys alike.
  EXPECT_TRUE(IsError(c->Call(*req::Get(++id, "c", empty)), wire::ErrorCode::BadRequest));
  EXPECT_TRUE(IsError(c->Call(*req::Get(++id, "c", over)), wire::ErrorCode::TooLarge));

  // Idempotency keys: 1 to 64 bytes, on transactions that write.
  for (const auto& [key, code] : std::vector<std::pair<std::string, wire::ErrorCode>>{
           {"", wire::ErrorCode::BadRequest},
           {std::string(65, 'i'), wire::ErrorCode::BadRequest},
           {std::string(64, 'i'), wire::ErrorCode::Ok},
           {"i", wire::ErrorCode::Ok}}) {
    SCOPED_TRACE("idempotency key of " + std::to_string(key.size()) + " bytes");
    req::TxnBuilder t;
    t.Put("c", "k", "{}").IdempotencyKey(key);
    auto r = call(t);
    if (code == wire::ErrorCode::Ok) {
      EXPECT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    } else {
      EXPECT_TRUE(IsError(r, code));
    }
  }
  req::TxnBuilder read;
  read.Get("c", "k").IdempotencyKey("i");
  EXPECT_TRUE(IsError(call(read), wire::ErrorCode::BadRequest)) << "a key on a read";
}

// --- Errors name the part of a transaction that failed, counted from 0.

TEST_F(ProtocolRulesTest, ConditionsAndOperationsAreCountedFrom0InErrors) {
  Start();
  auto c = Connect(port(), 3);
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  req::TxnBuilder conds;
  conds.If(wire::ConditionKind::Absent, "c", "a")
      .If(wire::ConditionKind::Present, "c", "b")
      .Put("c", "a", "{}");
  auto r = c->Call(conds.Build(2));
  ASSERT_TRUE(IsError(r, wire::ErrorCode::ConditionFailed));
  EXPECT_EQ(r->error()->message()->str().rfind("condition 1", 0), 0u) << ErrorText(r);
  EXPECT_EQ(r->error()->condition(), 1);
  EXPECT_EQ(r->error()->operation(), -1);
  req::TxnBuilder ops;
  ops.Put("c", "a", "{}").Put("nope", "b", "{}");
  r = c->Call(ops.Build(3));
  ASSERT_TRUE(IsError(r, wire::ErrorCode::UnknownName));
  EXPECT_EQ(r->error()->message()->str().rfind("operation 1 (put)", 0), 0u) << ErrorText(r);
  EXPECT_EQ(r->error()->operation(), 1);
  EXPECT_EQ(r->error()->condition(), -1);
}

// --- Counts and ranges.

TEST_F(ProtocolRulesTest, CountIgnoresLimitAndPageSize) {
  Start({"--max-frame", "64K"});  // a page holds at most 64K / 256 = 256 records
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  ASSERT_TRUE(c->Call(*req::CreateIndex(2, "c", "by_g", {"g"}, false))->reply_as_Done());
  req::TxnBuilder fill;
  for (int i = 0; i < 600; i++) fill.Put("c", "k" + std::to_string(1000 + i), R"({"g": 1})");
  ASSERT_TRUE(c->Call(fill.Build(3))->reply_as_TxnReply());

  req::TxnBuilder page;
  page.Scan("c");
  auto r = c->Call(page.Build(4));
  EXPECT_EQ(Keys(r).size(), 256u) << "a scan without a limit gets one page";
  EXPECT_TRUE(r->reply_as_TxnReply()->results()->Get(0)->continuation());

  FlatBufferBuilder fbb;
  auto scan = wire::CreateScan(fbb, fbb.CreateString("c"), 0, 0, /*limit=*/5);
  std::string equal = Flex([](flexbuffers::Builder& b) { b.Vector([&] { b.Int(1); }); });
  auto query = wire::CreateQuery(fbb, fbb.CreateString("c"), fbb.CreateString("by_g"),
                                 req::Bytes(fbb, equal), 0, 0, /*limit=*/5);
  std::vector ops = {
      wire::CreateOperation(fbb, wire::Op::Count, wire::CreateCount(fbb, scan).Union()),
      wire::CreateOperation(fbb, wire::Op::Count, wire::CreateCount(fbb, 0, query).Union())};
  auto t = wire::CreateTxn(fbb, 0, fbb.CreateVector(ops));
  fbb.Finish(wire::CreateRequestFrame(fbb, 5, wire::Request::Txn, t.Union()));
  r = c->Call(fbb);
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->count(), 600u) << "count of a scan, limit 5";
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(1)->count(), 600u) << "count of a query, limit 5";
}

TEST_F(ProtocolRulesTest, ALowerBoundAboveTheUpperGivesAnEmptyResult) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  ASSERT_TRUE(c->Call(*req::CreateIndex(2, "c", "by_n", {"n"}, false))->reply_as_Done());
  req::TxnBuilder fill;
  for (int i = 0; i < 10; i++) fill.Put("c", std::string(1, char('a' + i)), "{\"n\": " + std::to_string(i) + "}");
  ASSERT_TRUE(c->Call(fill.Build(3))->reply_as_TxnReply());
  uint64_t id = 10;
  for (bool reverse : {false, true}) {
    SCOPED_TRACE(reverse ? "reverse" : "forward");
    FlatBufferBuilder fbb;
    auto lo = wire::CreateKeyBound(fbb, req::Bytes(fbb, "h"));
    auto hi = wire::CreateKeyBound(fbb, req::Bytes(fbb, "c"));
    auto scan = wire::CreateScan(fbb, fbb.CreateString("c"), lo, hi, 0, reverse);
    std::string seven = Flex([](flexbuffers::Builder& b) { b.Int(7); });
    std::string two = Flex([](flexbuffers::Builder& b) { b.Int(2); });
    auto qlo = wire::CreateValueBound(fbb, req::Bytes(fbb, seven));
    auto qhi = wire::CreateValueBound(fbb, req::Bytes(fbb, two));
    auto query = wire::CreateQuery(fbb, fbb.CreateString("c"), fbb.CreateString("by_n"), 0, qlo,
                                   qhi, 0, reverse);
    auto lo2 = wire::CreateKeyBound(fbb, req::Bytes(fbb, "h"));
    auto hi2 = wire::CreateKeyBound(fbb, req::Bytes(fbb, "c"));
    auto counted = wire::CreateScan(fbb, fbb.CreateString("c"), lo2, hi2);
    std::vector ops = {
        wire::CreateOperation(fbb, wire::Op::Scan, scan.Union()),
        wire::CreateOperation(fbb, wire::Op::Query, query.Union()),
        wire::CreateOperation(fbb, wire::Op::Count, wire::CreateCount(fbb, counted).Union())};
    auto t = wire::CreateTxn(fbb, 0, fbb.CreateVector(ops));
    fbb.Finish(wire::CreateRequestFrame(fbb, ++id, wire::Request::Txn, t.Union()));
    auto r = c->Call(fbb);
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    for (size_t i = 0; i < 2; i++) {
      const wire::OpResult* res = r->reply_as_TxnReply()->results()->Get(uint32_t(i));
      EXPECT_TRUE(!res->records() || res->records()->size() == 0) << "operation " << i;
      EXPECT_FALSE(res->continuation()) << "operation " << i;
    }
    EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(2)->count(), 0u);
  }
}

TEST_F(ProtocolRulesTest, IndexRangesCrossTypeBoundaries) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  ASSERT_TRUE(c->Call(*req::CreateIndex(2, "c", "by_v", {"v"}, false))->reply_as_Done());
  // One record per kind of value, keys in the order the values sort.
  auto doc = [](auto write) {
    flexbuffers::Builder b;
    b.Map([&] { write(b); });
    b.Finish();
    return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
  };
  req::TxnBuilder fill;
  fill.PutDoc("c", "01 null", doc([](flexbuffers::Builder& b) { b.Null("v"); }))
      .PutDoc("c", "02 false", doc([](flexbuffers::Builder& b) { b.Bool("v", false); }))
      .PutDoc("c", "03 true", doc([](flexbuffers::Builder& b) { b.Bool("v", true); }))
      .PutDoc("c", "04 -1", doc([](flexbuffers::Builder& b) { b.Int("v", -1); }))
      .PutDoc("c", "05 2.5", doc([](flexbuffers::Builder& b) { b.Double("v", 2.5); }))
      .PutDoc("c", "06 7u", doc([](flexbuffers::Builder& b) { b.UInt("v", 7); }))
      .PutDoc("c", "07 empty string", doc([](flexbuffers::Builder& b) { b.String("v", ""); }))
      .PutDoc("c", "08 b", doc([](flexbuffers::Builder& b) { b.String("v", "b"); }))
      .PutDoc("c", "09 blob", doc([](flexbuffers::Builder& b) { b.Blob("v", "\0", 1); }))
      .PutDoc("c", "10 no v", doc([](flexbuffers::Builder& b) { b.Int("w", 1); }))
      .PutDoc("c", "11 map", doc([](flexbuffers::Builder& b) { b.Map("v", [] {}); }));
  ASSERT_TRUE(c->Call(fill.Build(3))->reply_as_TxnReply());

  uint64_t id = 10;
  auto query = [&](std::optional<std::pair<std::string, bool>> lower,
                   std::optional<std::pair<std::string, bool>> upper) {
    FlatBufferBuilder fbb;
    flatbuffers::Offset<wire::ValueBound> lo, hi;
    if (lower) lo = wire::CreateValueBound(fbb, req::Bytes(fbb, lower->first), lower->second);
    if (upper) hi = wire::CreateValueBound(fbb, req::Bytes(fbb, upper->first), upper->second);
    auto q = wire::CreateQuery(fbb, fbb.CreateString("c"), fbb.CreateString("by_v"), 0, lo, hi);
    std::vector ops = {wire::CreateOperation(fbb, wire::Op::Query, q.Union())};
    auto t = wire::CreateTxn(fbb, 0, fbb.CreateVector(ops));
    fbb.Finish(wire::CreateRequestFrame(fbb, ++id, wire::Request::Txn, t.Union()));
    return Keys(c->Call(fbb));
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(query(std::nullopt, std::nullopt),
            (V{"01 null", "02 false", "03 true", "04 -1", "05 2.5", "06 7u", "07 empty string",
               "08 b", "09 blob"}))
      << "null < false < true < numbers < strings < blobs; no field or a map: not indexed";
  std::string t = Flex([](flexbuffers::Builder& b) { b.Bool(true); });
  std::string b = Flex([](flexbuffers::Builder& b) { b.String("b"); });
  std::string five = Flex([](flexbuffers::Builder& b) { b.Int(5); });
  std::string null = Flex([](flexbuffers::Builder& b) { b.Null(); });
  EXPECT_EQ(query(std::pair{t, false}, std::pair{b, false}), (V{"04 -1", "05 2.5", "06 7u", "07 empty string"}))
      << "(true, \"b\"): every number and the strings below \"b\"";
  EXPECT_EQ(query(std::pair{five, true}, std::nullopt), (V{"06 7u", "07 empty string", "08 b", "09 blob"}))
      << ">= 5: the numbers from 5, then every string and blob";
  EXPECT_EQ(query(std::nullopt, std::pair{null, true}), (V{"01 null"}));
}

// --- Documents.

TEST_F(ProtocolRulesTest, DocumentsNestAtMost63MapsOrVectorsBelowTheRoot) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  // The root map, then `depth` maps inside one another: {"a": {"a": ... {}}}.
  auto nested = [](int depth) {
    flexbuffers::Builder b;
    std::function<void(int)> map = [&](int left) {
      if (left == 0) return;
      b.Map("a", [&] { map(left - 1); });
    };
    b.Map([&] { map(depth); });
    b.Finish();
    return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
  };
  req::TxnBuilder ok;
  ok.PutDoc("c", "k", nested(kMaxNesting));
  auto r = c->Call(ok.Build(2));
  EXPECT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  req::TxnBuilder deep;
  deep.PutDoc("c", "k", nested(kMaxNesting + 1));
  r = c->Call(deep.Build(3));
  ASSERT_TRUE(IsError(r, wire::ErrorCode::BadRequest));
}

// --- Names.

TEST_F(ProtocolRulesTest, CollectionAndIndexNamesAndFieldPaths) {
  Start();
  auto c = Connect(port());
  uint64_t id = 0;
  auto create = [&](const std::string& name) { return c->Call(*req::CreateCollection(++id, name)); };
  for (std::string good : {std::string("a"), std::string(128, 'n'), std::string("Az09_.-"),
                           std::string(".hidden"), std::string("-"), std::string("Users"),
                           std::string("users")}) {
    auto r = create(good);
    EXPECT_TRUE(r && r->reply_as_Done()) << "'" << good << "': " << ErrorText(r);
  }
  for (std::string bad : {std::string(""), std::string(129, 'n'), std::string("a b"),
                          std::string("a/b"), std::string("caf\xc3\xa9"), std::string("a:b")}) {
    EXPECT_TRUE(IsError(create(bad), wire::ErrorCode::BadRequest)) << "'" << bad << "'";
  }
  auto index = [&](const std::string& name, std::vector<std::string> fields) {
    return c->Call(*req::CreateIndex(++id, "a", name, std::move(fields), false));
  };
  std::vector<std::string> sixteen, seventeen;
  for (int i = 0; i < 17; i++) (i < 16 ? sixteen : seventeen).push_back("f" + std::to_string(i));
  seventeen.insert(seventeen.begin(), sixteen.begin(), sixteen.end());
  EXPECT_TRUE(index(std::string(128, 'i'), {"x"})->reply_as_Done());
  EXPECT_TRUE(index("i.2-_", {std::string(256, 'p')})->reply_as_Done());
  EXPECT_TRUE(index("nested", {"address.city"})->reply_as_Done());
  EXPECT_TRUE(index("sixteen", sixteen)->reply_as_Done());
  EXPECT_TRUE(IsError(index(std::string(129, 'i'), {"x"}), wire::ErrorCode::BadRequest));
  EXPECT_TRUE(IsError(index("a b", {"x"}), wire::ErrorCode::BadRequest));
  EXPECT_TRUE(IsError(index("none", {}), wire::ErrorCode::BadRequest));
  EXPECT_TRUE(IsError(index("seventeen", seventeen), wire::ErrorCode::BadRequest));
  EXPECT_TRUE(IsError(index("long", {std::string(257, 'p')}), wire::ErrorCode::BadRequest));
  for (std::string path : {"", "a..b", ".a", "a."}) {
    EXPECT_TRUE(IsError(index("p", {path}), wire::ErrorCode::BadRequest)) << "'" << path << "'";
  }
  // An index name is per collection.
  EXPECT_TRUE(c->Call(*req::CreateIndex(++id, "users", "nested", {"x"}, false))->reply_as_Done());
}

// --- Stats.

TEST_F(ProtocolRulesTest, StatsReportTheDocumentedCountersAndLatencies) {
  Start();
  auto c = Connect(port());
  FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 1, wire::Request::GetStats, wire::CreateGetStats(fbb).Union()));
  auto r = c->Call(fbb);
  ASSERT_TRUE(r && r->reply_as_Stats()) << ErrorText(r);
  std::set<std::string> counters, latencies;
  for (const wire::Counter* k : *r->reply_as_Stats()->counters()) counters.insert(k->name()->str());
  for (const wire::Latency* l : *r->reply_as_Stats()->latencies()) latencies.insert(l->op()->str());
  // docs/protocol.md, "Stats": keep the two in step.
  EXPECT_EQ(counters,
            (std::set<std::string>{"ops.get", "ops.put", "ops.delete", "ops.scan", "ops.query",
                                   "ops.count", "connections.open", "connections.total",
                                   "connections.refused", "connections.displaced",
                                   "timeouts.hello", "timeouts.frame", "timeouts.idle",
                                   "errors.internal", "requests", "errors", "bad_frames",
                                   "bytes.in", "bytes.out", "backpressure", "commits",
                                   "idempotent_replays", "idempotency_keys", "group_commits",
                                   "log.first", "readers.used", "corrupted_reads", "streams.open",
                                   "streams.watch", "streams.snapshot", "streams.follow",
                                   "snapshot.bytes", "epoch", "epoch.highest_seen", "fenced",
                                   "log.hold", "replicas.connected", "replicas.known",
                                   "replicas.lag_commits_max", "replicas.lag_ms_max",
                                   "replicas.sync_waiting", "replicas.sync_timeouts",
                                   "tls.handshakes", "tls.handshake_failures",
                                   "tls.plaintext_refused", "tls.client_certs", "tls.reloads",
                                   "tls.reload_failures", "auth.ok", "auth.failures",
                                   "auth.required", "auth.permission_denied"}));
  EXPECT_EQ(latencies,
            (std::set<std::string>{"hello", "ping", "read", "write", "catalog", "stats", "verify"}));
  EXPECT_EQ(r->reply_as_Stats()->batch_sizes()->op()->str(), "group_commit_batch");
}

// --- Damaged data (docs/storage.md, "What damage looks like").

TEST_F(ProtocolRulesTest, ADamagedRecordIsCorruptedOnProtocolFourAndInternalBefore) {
  const std::string data = dir_.Sub("data");
  {
    auto db = testing::OpenOrDie(data);
    ASSERT_TRUE(db && db->CreateCollection("c").ok());
    std::string doc = testing::Doc(R"({"pin": "31415926"})");
    ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"c", "k", doc}})).status.ok());
  }
  {
    testing::RawLmdb raw(data);  // one digit changed, with the server stopped
    std::string key = raw.RecordKey("k");
    std::string stored = *raw.Get("records", key);
    size_t at = stored.find("31415926");
    ASSERT_NE(at, std::string::npos);
    stored[at + 3]++;
    raw.Put("records", key, stored);
  }
  Start();
  auto v4 = Connect(port(), 4);
  for (int get_request = 1; get_request >= 0; get_request--) {  // Get, then a Txn of a get
    req::TxnBuilder txn;
    auto r = get_request ? v4->Call(*req::Get(2, "c", "k")) : v4->Call(txn.Get("c", "k").Build(3));
    ASSERT_TRUE(IsError(r, wire::ErrorCode::Corrupted));
    std::string message = r->error()->message()->str();
    EXPECT_NE(message.find("record 'k' in collection 'c'"), std::string::npos) << message;
    EXPECT_EQ(message.find("31425926"), std::string::npos) << "no damaged bytes: " << message;
  }
  auto v3 = Connect(port(), 3);
  ASSERT_TRUE(IsError(v3->Call(*req::Get(2, "c", "k")), wire::ErrorCode::Internal));

  EXPECT_EQ(testing::Counters(*v4)["corrupted_reads"], 3u);
}

}  // namespace
}  // namespace cairn
