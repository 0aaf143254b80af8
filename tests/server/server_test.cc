// cairnd over the wire: handshake, every request kind, errors, shutdown.
#include <gtest/gtest.h>

#include <filesystem>

#include "command.h"
#include "server_process.h"

namespace cairn {
namespace {

using testing::Connect;
using testing::ErrorText;
using testing::ServerProcess;
using testing::TempDir;
using testing::WireClient;
namespace req = testing::req;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->ready()) << server_->output();
    client_ = Connect(server_->port());
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<WireClient> client_;
};

TEST_F(ServerTest, HelloReportsVersionAndLimits) {
  WireClient c(server_->port());
  auto r = c.Call(*req::Hello(7));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id(), 7u);
  auto h = r->reply_as_HelloReply();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->protocol_version(), 1u);
  EXPECT_EQ(h->max_frame(), 16u << 20);
  EXPECT_EQ(h->max_inflight(), 128u);
  EXPECT_EQ(h->max_key(), 507u);
  EXPECT_GT(h->max_value(), 0u);
  EXPECT_NE(h->server_version()->str().find("cairnd"), std::string::npos);
}

TEST_F(ServerTest, NewerClientVersionIsNegotiatedDown) {
  WireClient c(server_->port());
  auto r = c.Call(*req::Hello(1, wire::kProtocolVersion + 10));
  ASSERT_TRUE(r && r->reply_as_HelloReply());
  EXPECT_EQ(r->reply_as_HelloReply()->protocol_version(), wire::kProtocolVersion);
  WireClient old(server_->port());
  r = old.Call(*req::Hello(1, 1));
  ASSERT_TRUE(r && r->reply_as_HelloReply());
  EXPECT_EQ(r->reply_as_HelloReply()->protocol_version(), 1u) << "an older client keeps its version";
}

TEST_F(ServerTest, RequestBeforeHelloIsRefusedAndClosed) {
  WireClient c(server_->port());
  auto r = c.Call(*req::Ping(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id(), 3u);
  ASSERT_TRUE(r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);
  EXPECT_NE(r->error()->message()->str().find("Hello"), std::string::npos);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(ServerTest, PingEchoesPayloadAndId) {
  auto r = client_->Call(*req::Ping(42, "hello"));
  ASSERT_TRUE(r && r->reply_as_Pong()) << ErrorText(r);
  EXPECT_EQ(r->id(), 42u);
  auto p = r->reply_as_Pong()->payload();
  EXPECT_EQ(std::string(p->begin(), p->end()), "hello");
}

TEST_F(ServerTest, CollectionsAndRecordsRoundTrip) {
  auto r = client_->Call(*req::CreateCollection(1, "users"));
  ASSERT_TRUE(r && r->reply_as_Done()) << ErrorText(r);
  EXPECT_GT(r->reply_as_Done()->commit(), 0u);
  r = client_->Call(*req::CreateCollection(2, "users"));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::AlreadyExists);

  req::TxnBuilder put;
  put.Put("users", "alice", R"({"email": "a@x", "age": 30})");
  r = client_->Call(put.Build(3));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  uint64_t commit = r->reply_as_TxnReply()->commit();
  EXPECT_GT(commit, 0u);

  req::TxnBuilder get;
  get.Get("users", "alice").Get("users", "bob");
  r = client_->Call(get.Build(4));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  auto results = r->reply_as_TxnReply()->results();
  ASSERT_EQ(results->size(), 2u);
  ASSERT_TRUE(results->Get(0)->found());
  EXPECT_EQ(results->Get(0)->version(), commit);
  auto rec = results->Get(0)->records()->Get(0);
  EXPECT_EQ(FlexToJson(std::string_view(reinterpret_cast<const char*>(rec->value()->data()),
                                        rec->value()->size())),
            R"({"age":30,"email":"a@x"})");
  EXPECT_FALSE(results->Get(1)->found());
}

TEST_F(ServerTest, ConditionsAndErrorCodesCrossTheWire) {
  client_->Call(*req::CreateCollection(1, "c"));
  req::TxnBuilder t1;
  t1.Put("c", "k", R"({"n": 1})", wire::PutMode::Insert);
  auto r = client_->Call(t1.Build(2));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  uint64_t v = r->reply_as_TxnReply()->commit();

  req::TxnBuilder again;
  again.Put("c", "k", R"({"n": 2})", wire::PutMode::Insert);
  r = client_->Call(again.Build(3));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::AlreadyExists) << ErrorText(r);

  req::TxnBuilder stale;
  stale.If(wire::ConditionKind::VersionEquals, "c", "k", v + 1).Put("c", "k", R"({"n": 3})");
  r = client_->Call(stale.Build(4));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::ConditionFailed) << ErrorText(r);

  req::TxnBuilder fresh;
  fresh.If(wire::ConditionKind::VersionEquals, "c", "k", v).Put("c", "k", R"({"n": 3})");
  r = client_->Call(fresh.Build(5));
  EXPECT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);

  req::TxnBuilder missing;
  missing.Get("nope", "k");
  r = client_->Call(missing.Build(6));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::NotFound) << ErrorText(r);

  req::TxnBuilder bad_doc;
  bad_doc.PutDoc("c", "k2", "not a flexbuffer");
  r = client_->Call(bad_doc.Build(7));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest) << ErrorText(r);
  EXPECT_EQ(r->id(), 7u);
}

TEST_F(ServerTest, ScanPagesWithContinuations) {
  client_->Call(*req::CreateCollection(1, "c"));
  req::TxnBuilder fill;
  for (int i = 0; i < 25; i++) fill.Put("c", "k" + std::to_string(100 + i), "{}");
  ASSERT_TRUE(client_->Call(fill.Build(2))->reply_as_TxnReply());

  std::vector<std::string> keys;
  std::string token;
  int pages = 0;
  do {
    req::TxnBuilder scan;
    scan.Scan("c", 10, token);
    auto r = client_->Call(scan.Build(3 + pages));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    auto res = r->reply_as_TxnReply()->results()->Get(0);
    for (auto rec : *res->records()) keys.emplace_back(rec->key()->begin(), rec->key()->end());
    token = res->continuation() ? std::string(res->continuation()->begin(),
                                              res->continuation()->end())
                                : "";
    pages++;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(keys.size(), 25u);
  EXPECT_EQ(keys.front(), "k100");
  EXPECT_EQ(keys.back(), "k124");
}

TEST_F(ServerTest, IndexesOverTheWire) {
  client_->Call(*req::CreateCollection(1, "u"));
  auto r = client_->Call(*req::CreateIndex(2, "u", "by_email", {"email"}, true));
  ASSERT_TRUE(r && r->reply_as_Done()) << ErrorText(r);
  req::TxnBuilder fill;
  fill.Put("u", "a", R"({"email": "a@x"})").Put("u", "b", R"({"email": "b@x"})");
  ASSERT_TRUE(client_->Call(fill.Build(3))->reply_as_TxnReply());

  req::TxnBuilder q;
  q.Query("u", "by_email", R"(["b@x"])").CountAll("u");
  r = client_->Call(q.Build(4));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  auto res = r->reply_as_TxnReply()->results();
  ASSERT_EQ(res->Get(0)->records()->size(), 1u);
  EXPECT_EQ(res->Get(0)->records()->Get(0)->key()->Get(0), 'b');
  EXPECT_EQ(res->Get(1)->count(), 2u);

  req::TxnBuilder dup;
  dup.Put("u", "c", R"({"email": "a@x"})");
  r = client_->Call(dup.Build(5));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::UniqueViolation) << ErrorText(r);

  req::TxnBuilder no_index;
  no_index.Query("u", "nope", R"(["x"])");
  r = client_->Call(no_index.Build(6));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::NotFound) << ErrorText(r);
}

TEST_F(ServerTest, GetRequestAnswersAPointReadAndItsErrors) {
  client_ = testing::Connect(server_->port(), 2);
  ASSERT_TRUE(client_->Call(*req::CreateCollection(1, "users"))->reply_as_Done());
  req::TxnBuilder put;
  put.Put("users", "alice", R"({"age": 30})");
  // Pipelined: the put, then a get of what it writes, then a get of an absent key. The
  // first get follows the put on this connection, so it must see it.
  ASSERT_TRUE(client_->Send(put.Build(2)));
  ASSERT_TRUE(client_->Send(*req::Get(3, "users", "alice")));
  ASSERT_TRUE(client_->Send(*req::Get(4, "users", "bob")));
  auto r = client_->Response();
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  uint64_t commit = r->reply_as_TxnReply()->commit();
  r = client_->Response();
  ASSERT_TRUE(r && r->reply_as_GetReply()) << ErrorText(r);
  EXPECT_EQ(r->id(), 3u);
  auto g = r->reply_as_GetReply();
  ASSERT_TRUE(g->found());
  EXPECT_EQ(g->version(), commit);
  EXPECT_EQ(g->kind(), wire::ValueKind::Document);
  EXPECT_EQ(FlexToJson(std::string_view(reinterpret_cast<const char*>(g->value()->data()),
                                        g->value()->size())),
            R"({"age":30})");
  r = client_->Response();
  ASSERT_TRUE(r && r->reply_as_GetReply()) << ErrorText(r);
  EXPECT_EQ(r->id(), 4u);
  EXPECT_FALSE(r->reply_as_GetReply()->found());
  EXPECT_FALSE(r->reply_as_GetReply()->value());

  struct Case {
    const char* collection;
    std::string key;
    wire::ErrorCode code;
    const char* says;
  } cases[] = {
      {"nope", "k", wire::ErrorCode::NotFound, "nope"},
      {nullptr, "k", wire::ErrorCode::BadRequest, "collection"},
      {"users", "", wire::ErrorCode::BadRequest, "key"},
      {"users", std::string(600, 'k'), wire::ErrorCode::TooLarge, "key"},
  };
  uint64_t id = 10;
  for (const Case& c : cases) {
    r = client_->Call(*req::Get(id, c.collection, c.key));
    ASSERT_TRUE(r && r->error()) << c.says;
    EXPECT_EQ(r->id(), id);
    EXPECT_EQ(r->error()->code(), c.code) << r->error()->message()->str();
    EXPECT_NE(r->error()->message()->str().find(c.says), std::string::npos)
        << r->error()->message()->str();
    id++;
  }
  // A Get without its table is refused like any request without one.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 20, wire::Request::Get, 0));
  r = client_->Call(fbb);
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);
  // The connection still serves.
  r = client_->Call(*req::Get(21, "users", "alice"));
  ASSERT_TRUE(r && r->reply_as_GetReply() && r->reply_as_GetReply()->found()) << ErrorText(r);
}

TEST_F(ServerTest, ARequestTheAgreedVersionLacksIsRefusedAndTheConnectionGoesOn) {
  ASSERT_TRUE(client_->Call(*req::CreateCollection(1, "users"))->reply_as_Done());
  // client_ agreed on protocol 1, which has no Get request.
  auto r = client_->Call(*req::Get(2, "users", "alice"));
  ASSERT_TRUE(r && r->error()) << ErrorText(r);
  EXPECT_EQ(r->id(), 2u);
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);
  EXPECT_NE(ErrorText(r).find("needs protocol 2"), std::string::npos) << ErrorText(r);
  r = client_->Call(*req::Ping(3));
  EXPECT_TRUE(r && r->reply_as_Pong()) << ErrorText(r);
}

TEST_F(ServerTest, AMissingCollectionIsUnknownNameFromProtocol3AndNotFoundBefore) {
  ASSERT_TRUE(client_->Call(*req::CreateCollection(1, "users"))->reply_as_Done());
  auto v3 = testing::Connect(server_->port(), 3);
  req::TxnBuilder missing;
  missing.Get("users", "a").Get("nope", "k");
  auto r = v3->Call(missing.Build(2));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::UnknownName) << ErrorText(r);
  EXPECT_EQ(r->error()->operation(), 1) << "the failed operation, counted from 0";
  EXPECT_EQ(r->error()->condition(), -1);
  r = client_->Call(missing.Build(3));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::NotFound) << "protocol 1 has no UnknownName";
  r = v3->Call(*req::DropCollection(4, "nope"));
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::UnknownName) << ErrorText(r);

  // A replace of an absent record is NotFound on every version.
  req::TxnBuilder replace;
  replace.Put("users", "zed", "{}", wire::PutMode::Replace);
  r = v3->Call(replace.Build(5));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::NotFound) << ErrorText(r);
  EXPECT_EQ(r->error()->operation(), 0);

  // A failed condition names its index.
  req::TxnBuilder cond;
  cond.If(wire::ConditionKind::Absent, "users", "a")
      .If(wire::ConditionKind::Present, "users", "a")
      .Put("users", "b", "{}");
  r = v3->Call(cond.Build(6));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::ConditionFailed) << ErrorText(r);
  EXPECT_EQ(r->error()->condition(), 1);
  EXPECT_EQ(r->error()->operation(), -1);
}

TEST_F(ServerTest, EmptyIdempotencyKeysAndKeysOnReadsAreRefused) {
  ASSERT_TRUE(client_->Call(*req::CreateCollection(1, "users"))->reply_as_Done());
  req::TxnBuilder empty_key;
  empty_key.Put("users", "a", R"({"n": 1})").IdempotencyKey("");
  auto r = client_->Call(empty_key.Build(2));
  ASSERT_TRUE(r && r->error()) << "an empty key must not read as no key";
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);
  EXPECT_NE(ErrorText(r).find("empty"), std::string::npos) << ErrorText(r);

  req::TxnBuilder read_key;
  read_key.Get("users", "a").IdempotencyKey("k1");
  r = client_->Call(read_key.Build(3));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);
  EXPECT_NE(ErrorText(r).find("writes nothing"), std::string::npos) << ErrorText(r);

  req::TxnBuilder long_key;
  long_key.Put("users", "a", R"({"n": 1})").IdempotencyKey(std::string(65, 'k'));
  r = client_->Call(long_key.Build(4));
  ASSERT_TRUE(r && r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest);

  // Nothing was written by any of them; a proper key is applied once.
  req::TxnBuilder count;
  count.CountAll("users");
  r = client_->Call(count.Build(5));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->count(), 0u);
  req::TxnBuilder keyed;
  keyed.Put("users", "a", R"({"n": 1})").IdempotencyKey("k2");
  r = client_->Call(keyed.Build(6));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  uint64_t commit = r->reply_as_TxnReply()->commit();
  r = client_->Call(keyed.Build(7));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->commit(), commit) << "a repeat is answered, not applied";
}

TEST_F(ServerTest, StatsCountWhatHappened) {
  client_->Call(*req::CreateCollection(1, "c"));
  req::TxnBuilder put;
  put.Put("c", "k", "{}");
  client_->Call(put.Build(2));
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 9, wire::Request::GetStats,
                                      wire::CreateGetStats(fbb).Union()));
  auto r = client_->Call(fbb);
  ASSERT_TRUE(r && r->reply_as_Stats()) << ErrorText(r);
  auto s = r->reply_as_Stats();
  EXPECT_EQ(s->last_commit(), 2u);
  EXPECT_GT(s->db_used_bytes(), 0u);
  std::map<std::string, uint64_t> counters;
  for (auto c : *s->counters()) counters[c->name()->str()] = c->value();
  EXPECT_EQ(counters["ops.put"], 1u);
  EXPECT_EQ(counters["connections.open"], 1u);
  EXPECT_GE(s->batch_sizes()->count(), 1u);
}

TEST_F(ServerTest, GracefulShutdownKeepsAcknowledgedWritesAndExitsZero) {
  client_->Call(*req::CreateCollection(1, "c"));
  // Pipeline writes, read some acknowledgements, then stop the server.
  const int n = 200;
  for (int i = 0; i < n; i++) {
    req::TxnBuilder t;
    t.Put("c", "k" + std::to_string(i), "{}");
    ASSERT_TRUE(client_->Send(t.Build(100 + i)));
  }
  int acked = 0;
  for (; acked < 50; acked++) ASSERT_TRUE(client_->Response());
  int status = server_->Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << server_->output();
  // In-flight requests were finished and answered before the connection closed.
  while (client_->Response(2000)) acked++;
  EXPECT_EQ(acked, n);

  ServerProcess again(dir_.Sub("data"));
  ASSERT_TRUE(again.ready());
  auto c = Connect(again.port());
  req::TxnBuilder count;
  count.CountAll("c");
  auto r = c->Call(count.Build(1));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->count(), uint64_t(n));
}

TEST(ServerDrainTest, FramesAlreadyReceivedAreAnsweredAtShutdown) {
  // 200 writes arrive in one segment while the server admits 8 at a time: most wait,
  // parsed or not, in its input buffer when SIGTERM comes. Received is received: every
  // one is answered and committed before the server exits.
  TempDir dir;
  ServerProcess server(dir.Sub("data"), {"--max-inflight", "8"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto c = Connect(server.port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  const int n = 200;
  std::string frames;
  for (int i = 0; i < n; i++) {
    req::TxnBuilder t;
    t.Put("c", "k" + std::to_string(i), "{}");
    frames += WireClient::Frame(t.Build(100 + i));
  }
  ASSERT_TRUE(c->SendRaw(frames));
  ASSERT_TRUE(c->Response());
  int status = server.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << server.output();
  int acked = 1;
  while (c->Response(2000)) acked++;
  EXPECT_EQ(acked, n);

  ServerProcess again(dir.Sub("data"));
  ASSERT_TRUE(again.ready());
  auto c2 = Connect(again.port());
  req::TxnBuilder count;
  count.CountAll("c");
  auto r = c2->Call(count.Build(1));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->count(), uint64_t(n));
}

TEST_F(ServerTest, SecondServerOnTheSameFolderRefusesToStart) {
  ServerProcess second(dir_.Sub("data"));
  EXPECT_FALSE(second.ready());
  int status = second.Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << second.output();
  EXPECT_NE(second.output().find("in use"), std::string::npos) << second.output();
  // The first one is unaffected.
  EXPECT_TRUE(client_->Call(*req::Ping(1)));
}

TEST(ServerStartTest, ForeignFolderIsRefused) {
  TempDir dir;
  std::ofstream(dir.Sub("important.txt")) << "data";
  ServerProcess s(dir.path());
  EXPECT_FALSE(s.ready());
  s.Stop();
  EXPECT_NE(s.output().find("no cairn database"), std::string::npos) << s.output();
}

// Catalog replies against a small frame: many collections, many indexes.
class CatalogReplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        dir_.Sub("data"), std::vector<std::string>{"--max-frame", "64K", "--durability", "nosync"});
    ASSERT_TRUE(server_->ready()) << server_->output();
  }

  // `n` collections with names of 128 characters (their number, then padding), pipelined.
  std::vector<std::string> CreateCollections(int n) {
    auto c = Connect(server_->port());
    std::vector<std::string> names;
    for (int i = 0; i < n; i++) {
      std::string name = std::to_string(100000 + i);
      name.resize(128, 'x');
      names.push_back(name);
      EXPECT_TRUE(c->Send(*req::CreateCollection(uint64_t(i), name)));
    }
    for (int i = 0; i < n; i++) {
      auto r = c->Response();
      EXPECT_TRUE(r && r->reply_as_Done()) << ErrorText(r);
    }
    return names;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CatalogReplyTest, ListCollectionsComesInPagesThatFitTheFrameOnProtocol3) {
  // About 140 bytes each: 600 take more than one 64 KiB frame.
  std::vector<std::string> names = CreateCollections(600);
  auto c = Connect(server_->port(), 3);
  std::vector<std::string> listed;
  std::string after;
  int pages = 0;
  while (true) {
    auto r = c->Call(*req::ListCollections(uint64_t(pages), after));
    ASSERT_TRUE(r && r->reply_as_Collections()) << ErrorText(r);
    auto list = r->reply_as_Collections();
    ASSERT_TRUE(list->collections() && list->collections()->size() > 0);
    for (const wire::CollectionInfo* ci : *list->collections()) listed.push_back(ci->name()->str());
    pages++;
    if (!list->next()) break;
    EXPECT_EQ(list->next()->str(), listed.back()) << "next names the page's last collection";
    after = list->next()->str();
    ASSERT_LT(pages, 100);
  }
  EXPECT_GE(pages, 2);
  EXPECT_EQ(listed, names) << "every collection once, in name order";
}

TEST_F(CatalogReplyTest, AListTooLargeForOneFrameBeforeProtocol3IsTooLargeAndSaysWhy) {
  CreateCollections(600);
  auto c = Connect(server_->port(), 2);
  auto r = c->Call(*req::ListCollections(1));
  ASSERT_TRUE(r && r->error()) << ErrorText(r);
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::TooLarge);
  std::string m = r->error()->message()->str();
  EXPECT_NE(m.find("600 collections"), std::string::npos) << m;
  EXPECT_NE(m.find("protocol 3"), std::string::npos) << m;
  EXPECT_NE(m.find("--max-frame"), std::string::npos) << m;
  EXPECT_EQ(m.find("split the transaction"), std::string::npos) << m;
  // A short list still comes whole.
  TempDir other;
  ServerProcess small(other.Sub("data"), {"--max-frame", "64K"});
  ASSERT_TRUE(small.ready());
  auto c2 = Connect(small.port(), 2);
  ASSERT_TRUE(c2->Call(*req::CreateCollection(1, "a"))->reply_as_Done());
  r = c2->Call(*req::ListCollections(2));
  ASSERT_TRUE(r && r->reply_as_Collections()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_Collections()->collections()->size(), 1u);
  EXPECT_FALSE(r->reply_as_Collections()->next());
}

TEST_F(CatalogReplyTest, AnIndexThatWouldMakeItsCollectionTooLargeToDescribeIsRefused) {
  auto c = Connect(server_->port(), 3);
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  // Indexes of 16 fields of 256 characters: about 4 KiB each to describe.
  int created = 0;
  const wire::ResponseFrame* r = nullptr;
  for (int i = 0; i < 40; i++) {
    std::vector<std::string> fields;
    for (int f = 0; f < 16; f++) {
      std::string path = "i" + std::to_string(i) + "f" + std::to_string(f);
      path.resize(256, 'p');
      fields.push_back(path);
    }
    r = c->Call(*req::CreateIndex(uint64_t(10 + i), "c", "ix" + std::to_string(i), fields, false));
    ASSERT_TRUE(r);
    if (r->error()) break;
    created++;
  }
  ASSERT_TRUE(r->error()) << "all 40 indexes were created";
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::TooLarge);
  std::string m = r->error()->message()->str();
  EXPECT_NE(m.find("collection 'c'"), std::string::npos) << m;
  EXPECT_NE(m.find("drop an index"), std::string::npos) << m;
  EXPECT_NE(m.find("--max-frame"), std::string::npos) << m;
  EXPECT_GT(created, 5);
  // What was created can still be described, and listed.
  r = c->Call(*req::DescribeCollection(100, "c"));
  ASSERT_TRUE(r && r->reply_as_Collections()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_Collections()->collections()->Get(0)->indexes()->size(), size_t(created));
  r = c->Call(*req::ListCollections(101));
  ASSERT_TRUE(r && r->reply_as_Collections()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_Collections()->collections()->size(), 1u);
}

TEST(ServerStartTest, VersionFlagPrintsTheVersionTheHandshakeAnnounces) {
  TempDir dir;
  testing::CommandRun v = testing::RunCommand(std::string(CAIRND_PATH) + " --version", dir);
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  ServerProcess s(dir.Sub("data"));
  ASSERT_TRUE(s.ready()) << s.output();
  WireClient c(s.port());
  auto r = c.Call(*req::Hello());
  ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
  EXPECT_EQ(v.out, r->reply_as_HelloReply()->server_version()->str() + "\n");
}

TEST(ServerStartTest, PortFileHoldsTheBoundPortOnceListeningAndGoesAtAStop) {
  TempDir dir;
  ServerProcess s(dir.Sub("data"));  // --listen 127.0.0.1:0 --port-file ...
  ASSERT_TRUE(s.ready()) << s.output();
  std::ifstream in(s.port_file());
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, std::to_string(s.port()) + "\n");
  EXPECT_NE(s.output().find("listening on 127.0.0.1:" + std::to_string(s.port())),
            std::string::npos)
      << s.output();
  // Written whole: no temporary file is left beside it.
  auto folder = std::filesystem::path(s.port_file()).parent_path();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(folder), {}), 1);
  // The port in the file is the server's, listening already.
  EXPECT_TRUE(Connect(s.port())->Call(*req::Ping(1)));
  int status = s.Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << s.output();
  EXPECT_FALSE(std::filesystem::exists(s.port_file()));
}

TEST(ServerStartTest, APortFileThatCannotBeWrittenStopsTheServer) {
  TempDir dir;
  testing::CommandRun r = testing::RunCommand(
      std::string(CAIRND_PATH) + " --data " + dir.Sub("data") +
          " --listen 127.0.0.1:0 --port-file " + dir.Sub("no/such/folder/port"),
      dir);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("port file"), std::string::npos) << r.out << r.err;
}

TEST(ServerStartTest, IdleConnectionsAreClosed) {
  TempDir dir;
  ServerProcess s(dir.path(), {"--idle-timeout", "1"});
  ASSERT_TRUE(s.ready());
  auto c = Connect(s.port());
  auto r = c->Response(5000);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->error());
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::Unavailable);
  EXPECT_TRUE(c->ClosedByPeer());
}

}  // namespace
}  // namespace cairn
