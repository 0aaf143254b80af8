// libcairn against a real cairnd: every call, threads, async forms, failures.
#include "cairn/client/client.h"

#include <gtest/gtest.h>

#include <future>
#include <set>
#include <thread>

#include "server_process.h"

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::TempDir;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), flags_);
    ASSERT_TRUE(server_->ready()) << server_->output();
    client_ = Client::Connect(Options());
    client_->CreateCollection("users");
  }
  ClientOptions Options() {
    ClientOptions o;
    o.address = "127.0.0.1:" + std::to_string(server_->port());
    return o;
  }

  std::vector<std::string> flags_;
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<Client> client_;
};

TEST_F(ClientTest, PutGetDeleteRoundTrip) {
  uint64_t v = client_->Put("users", "ada", Document::FromJson(R"({"email": "ada@x", "age": 36})"));
  EXPECT_GT(v, 0u);
  auto r = client_->Get("users", "ada");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, v);
  Document d = r->document();
  EXPECT_EQ(d["email"].AsString(), "ada@x");
  EXPECT_EQ(d["age"].AsInt(), 36);
  EXPECT_FALSE(d["nope"].exists());
  EXPECT_FALSE(client_->Get("users", "bob"));
  EXPECT_TRUE(client_->Delete("users", "ada"));
  EXPECT_FALSE(client_->Delete("users", "ada"));
  EXPECT_FALSE(client_->Get("users", "ada"));
}

TEST_F(ClientTest, ErrorsCarryServerCodeAndMessage) {
  client_->Insert("users", "ada", Document::FromJson("{}"));
  try {
    client_->Insert("users", "ada", Document::FromJson("{}"));
    FAIL() << "insert of a present key must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
    EXPECT_NE(e.message().find("ada"), std::string::npos) << e.message();
  }
  try {
    client_->Get("nope", "k");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnknownName) << "a missing collection is not a missing record";
  }
  uint64_t v = client_->Put("users", "x", Document::FromJson("{}"));
  EXPECT_THROW(client_->Put("users", "x", Document::FromJson("{}"), v + 5), Error);
  EXPECT_GT(client_->Put("users", "x", Document::FromJson("{}"), v), v);
}

TEST_F(ClientTest, ScanPagesTransparently) {
  Txn t;
  for (int i = 0; i < 250; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%04d", i);
    t.Put("users", key, Document::Builder().Set("n", i).Build());
  }
  client_->Commit(t);
  ScanOptions o;
  o.page_size = 7;
  std::vector<Record> all = client_->Scan("users", o).ToVector();
  ASSERT_EQ(all.size(), 250u);
  for (int i = 0; i < 250; i++) EXPECT_EQ(all[i]["n"].AsInt(), i);
  o.limit = 20;
  o.reverse = true;
  auto some = client_->Scan("users", o).ToVector();
  ASSERT_EQ(some.size(), 20u);
  EXPECT_EQ(some[0].key, "k0249");
  EXPECT_EQ(client_->Count("users"), 250u);
}

TEST_F(ClientTest, IndexQueriesPageTransparently) {
  client_->CreateIndex("users", {"by_age", {"age"}, false});
  Txn t;
  for (int i = 0; i < 100; i++) {
    t.Put("users", "u" + std::to_string(i), Document::Builder().Set("age", i % 10).Build());
  }
  client_->Commit(t);
  QueryOptions q;
  q.equal = {int64_t{3}};
  q.page_size = 3;
  auto threes = client_->Query("users", "by_age", q).ToVector();
  EXPECT_EQ(threes.size(), 10u);
  QueryOptions range;
  range.from = ScalarBound{int64_t{2}, true};
  range.to = ScalarBound{int64_t{4}, false};
  EXPECT_EQ(client_->CountQuery("users", "by_age", range), 20u);
  auto info = client_->DescribeCollection("users");
  ASSERT_EQ(info.indexes.size(), 1u);
  EXPECT_EQ(info.indexes[0].state, IndexState::kReady);
}

TEST_F(ClientTest, AsyncCallbackFutureAndCoroutine) {
  std::promise<uint64_t> p;
  client_->AsyncPut("users", "a", Document::FromJson(R"({"x": 1})"),
                    [&](std::exception_ptr e, uint64_t commit) {
                      if (e) {
                        p.set_exception(e);
                      } else {
                        p.set_value(commit);
                      }
                    });
  uint64_t commit = p.get_future().get();
  EXPECT_GT(commit, 0u);

  std::future<std::optional<Record>> f = client_->AsyncGet("users", "a", asio::use_future);
  auto r = f.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, commit);

  asio::io_context io;
  std::optional<Record> from_coroutine;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        from_coroutine = co_await client_->AsyncGet("users", "a", asio::use_awaitable);
        co_await client_->AsyncPing(asio::use_awaitable);
      },
      asio::detached);
  io.run();
  ASSERT_TRUE(from_coroutine);
  EXPECT_EQ(from_coroutine->key, "a");

  auto bad = client_->AsyncGet("nope", "a", asio::use_future);
  EXPECT_THROW(bad.get(), Error);
}

TEST_F(ClientTest, PipelinedAsyncCallsAllComplete) {
  const int n = 2000;
  std::vector<std::future<uint64_t>> puts;
  for (int i = 0; i < n; i++) {
    puts.push_back(client_->AsyncPut("users", "p" + std::to_string(i),
                                     Document::Builder().Set("i", i).Build(), asio::use_future));
  }
  std::set<uint64_t> commits;
  for (auto& f : puts) commits.insert(f.get());
  EXPECT_EQ(commits.size(), size_t(n)) << "each write its own commit";
  EXPECT_EQ(client_->Count("users"), uint64_t(n));
}

TEST_F(ClientTest, ChannelCallsTakeEffectInTheOrderMade) {
  // A put and then a get of the same record, both in flight at once, on one channel:
  // the get must read that put. Spread over a pool of 4 connections (what calls
  // without a channel get), gets would overtake puts sent on other connections.
  ClientOptions o = Options();
  o.connections = 4;
  auto db = Client::Connect(o);
  const int n = 300;
  std::vector<std::future<uint64_t>> puts;
  std::vector<std::future<std::optional<Record>>> gets;
  std::vector<Client::Channel> channels = {db->channel(0), db->channel(1), db->channel(6)};
  for (int i = 0; i < n; i++) {
    Client::Channel& ch = channels[size_t(i) % channels.size()];
    std::string key = "c" + std::to_string(i % channels.size());
    puts.push_back(ch.AsyncPut("users", key, Document::Builder().Set("i", i).Build(),
                               asio::use_future));
    gets.push_back(ch.AsyncGet("users", key, asio::use_future));
  }
  for (int i = 0; i < n; i++) {
    uint64_t v = puts[size_t(i)].get();
    std::optional<Record> r = gets[size_t(i)].get();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->version, v) << "the get issued after put " << i << " read another version";
    EXPECT_EQ((*r)["i"].AsInt(), i);
  }
  EXPECT_EQ(db->channel(6).index(), 6u);
  // Channels reach every call form: a transaction and a ping.
  auto t = db->channel(2).AsyncCommit(Txn().Get("users", "c0"), asio::use_future).get();
  ASSERT_EQ(t.results.size(), 1u);
  EXPECT_TRUE(t.results[0].found);
  EXPECT_TRUE(db->channel(3).AsyncPing(asio::use_future).get());
}

TEST_F(ClientTest, ManyThreadsShareOneClient) {
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; i++) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        try {
          uint64_t v = client_->Put("users", key, Document::Builder().Set("i", i).Build());
          auto r = client_->Get("users", key);
          if (!r || r->version != v) errors++;
        } catch (const Error&) {
          errors++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(client_->Count("users"), 800u);
}

TEST_F(ClientTest, OptimisticIncrementsFromSixteenThreads) {
  client_->Put("users", "counter", Document::Builder().Set("n", 0).Build());
  const int threads = 16, each = 500;
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < each; i++) {
        try {
          client_->Transact([](OptimisticTxn& tx) {
            auto r = tx.Get("users", "counter");
            int64_t n = r ? (*r)["n"].AsInt() : 0;
            tx.Put("users", "counter", Document::Builder().Set("n", n + 1).Build());
          }, TransactOptions{.max_attempts = 1000});
        } catch (const Error& e) {
          failures++;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures, 0);
  std::optional<Record> counter = client_->Get("users", "counter");
  ASSERT_TRUE(counter);
  EXPECT_EQ((*counter)["n"].AsInt(), threads * each);
}

TEST(ClientCatalogTest, ListCollectionsGathersEveryPageOfALongList) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), {"--max-frame", "64K", "--durability", "nosync"});
  ASSERT_TRUE(server.ready()) << server.output();
  ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(server.port());
  auto db = Client::Connect(o);
  // 128-character names: 600 of them do not fit in one 64 KiB reply.
  std::vector<std::string> names;
  for (int i = 0; i < 600; i++) {
    std::string name = std::to_string(100000 + i);
    name.resize(128, 'x');
    names.push_back(name);
  }
  for (const std::string& name : names) db->CreateCollection(name);
  std::vector<CollectionInfo> listed = db->ListCollections();
  ASSERT_EQ(listed.size(), names.size());
  for (size_t i = 0; i < names.size(); i++) EXPECT_EQ(listed[i].name, names[i]);
}

TEST(ClientConnectTest, MissingServerIsAClearError) {
  ClientOptions o;
  o.address = "127.0.0.1:1";  // nothing listens there
  o.timeout = std::chrono::milliseconds(2000);
  try {
    Client::Connect(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cairn::client
