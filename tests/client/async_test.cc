// libcairn's asynchronous calls, each with asio::use_future and with a callback, and the
// optimistic transaction's Insert, Replace, Query and Scan, against a real cairnd.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

#include "cairn/client/client.h"
#include "server_process.h"

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::TempDir;

// A completion handler that fulfils `p`: the callback form of a call.
template <typename T>
auto Fulfil(std::promise<T>& p) {
  return [&p](std::exception_ptr e, T v) { e ? p.set_exception(e) : p.set_value(std::move(v)); };
}

// Runs a call in callback form and waits for it.
template <typename T, typename Start>
T ViaCallback(Start start) {
  std::promise<T> p;
  std::future<T> f = p.get_future();
  start(Fulfil<T>(p));
  return f.get();
}

// Field "n" of a record read (-1: absent).
int64_t N(const std::optional<Record>& r) { return r ? (*r)["n"].AsInt() : -1; }

// The code of the Error that `f` (a future) delivers.
template <typename F>
ErrorCode CodeOf(F&& f) {
  try {
    f.get();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return ErrorCode::kOk;
}

class AsyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->ready()) << server_->output();
    ClientOptions o;
    o.address = "127.0.0.1:" + std::to_string(server_->port());
    db_ = Client::Connect(o);
    db_->CreateCollection("users");
  }

  Document Doc(int n) { return Document::Builder().Set("n", n).Set("team", n % 3).Build(); }
  void Fill(int count) {
    Txn t;
    for (int i = 0; i < count; i++) {
      char key[16];
      snprintf(key, sizeof key, "k%03d", i);
      t.Put("users", key, Doc(i));
    }
    db_->Commit(t);
  }
  std::vector<std::string> Names() {
    std::vector<std::string> names;
    for (const CollectionInfo& c : db_->ListCollections()) names.push_back(c.name);
    return names;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<Client> db_;
};

TEST_F(AsyncTest, CatalogCalls) {
  uint64_t a_made = db_->AsyncCreateCollection("a", asio::use_future).get();
  EXPECT_GT(ViaCallback<uint64_t>([&](auto h) { db_->AsyncCreateCollection("b", h); }), a_made)
      << "each catalog change its own commit";
  EXPECT_EQ(CodeOf(db_->AsyncCreateCollection("a", asio::use_future)), ErrorCode::kAlreadyExists);

  CollectionsPage page = db_->AsyncListCollections("", asio::use_future).get();
  std::vector<std::string> names;
  for (const auto& c : page.collections) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "users"})) << "in name order";
  EXPECT_TRUE(page.next.empty()) << "one page holds them all";
  page = ViaCallback<CollectionsPage>([&](auto h) { db_->AsyncListCollections("a", h); });
  ASSERT_EQ(page.collections.size(), 2u) << "after 'a'";
  EXPECT_EQ(page.collections[0].name, "b");

  db_->AsyncCreateIndex("a", {"by_n", {"n"}, true}, asio::use_future).get();
  ViaCallback<uint64_t>([&](auto h) { db_->AsyncCreateIndex("a", {"by_team", {"team"}, false}, h); });
  CollectionInfo a = db_->AsyncDescribeCollection("a", asio::use_future).get();
  EXPECT_EQ(a.name, "a");
  ASSERT_EQ(a.indexes.size(), 2u);
  EXPECT_EQ(a.indexes[0].spec.name, "by_n");
  EXPECT_TRUE(a.indexes[0].spec.unique);

  db_->AsyncDropIndex("a", "by_n", asio::use_future).get();
  ViaCallback<uint64_t>([&](auto h) { db_->AsyncDropIndex("a", "by_team", h); });
  a = ViaCallback<CollectionInfo>([&](auto h) { db_->AsyncDescribeCollection("a", h); });
  EXPECT_TRUE(a.indexes.empty());

  db_->AsyncDropCollection("a", asio::use_future).get();
  ViaCallback<uint64_t>([&](auto h) { db_->AsyncDropCollection("b", h); });
  EXPECT_EQ(Names(), (std::vector<std::string>{"users"}));
  EXPECT_THROW(db_->AsyncDescribeCollection("a", asio::use_future).get(), Error);
  EXPECT_THROW(ViaCallback<uint64_t>([&](auto h) { db_->AsyncDropCollection("a", h); }), Error);
}

TEST_F(AsyncTest, Stats) {
  db_->Put("users", "x", Doc(1));
  ServerStats s = db_->AsyncStats(asio::use_future).get();
  EXPECT_GT(s.last_commit, 0u);
  EXPECT_GT(s.db_max_bytes, 0u);
  ServerStats t = ViaCallback<ServerStats>([&](auto h) { db_->AsyncStats(h); });
  EXPECT_GE(t.last_commit, s.last_commit);
  EXPECT_FALSE(t.counters.empty());
}

TEST_F(AsyncTest, Verify) {
  db_->CreateIndex("users", {"by_team", {"team"}, false});
  Fill(12);
  VerifyResult v = db_->AsyncVerify(asio::use_future).get();
  EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems[0]);
  EXPECT_EQ(v.records, 12u);
  EXPECT_EQ(v.index_entries, 12u);
  VerifyResult w = ViaCallback<VerifyResult>([&](auto h) { db_->channel(0).AsyncVerify(h); });
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(w.records, 12u);
  EXPECT_GE(w.log_entries, v.log_entries);
}

TEST_F(AsyncTest, InsertReplacePutDelete) {
  uint64_t v1 = db_->AsyncInsert("users", "ada", Doc(1), asio::use_future).get();
  EXPECT_GT(v1, 0u);
  EXPECT_EQ(CodeOf(db_->AsyncInsert("users", "ada", Doc(2), asio::use_future)),
            ErrorCode::kAlreadyExists);
  uint64_t vb = ViaCallback<uint64_t>([&](auto h) { db_->AsyncInsert("users", "bob", Doc(3), h); });
  EXPECT_GT(vb, v1);
  EXPECT_THROW(ViaCallback<uint64_t>([&](auto h) { db_->AsyncInsert("users", "bob", Doc(3), h); }),
               Error);

  uint64_t v2 = db_->AsyncReplace("users", "ada", Doc(4), asio::use_future).get();
  EXPECT_GT(v2, vb);
  EXPECT_EQ(db_->Get("users", "ada")->version, v2);
  EXPECT_EQ(CodeOf(db_->AsyncReplace("users", "nobody", Doc(5), asio::use_future)),
            ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf(db_->AsyncReplace("users", "ada", Doc(5), v1, asio::use_future)),
            ErrorCode::kConditionFailed);
  uint64_t v3 = ViaCallback<uint64_t>([&](auto h) { db_->AsyncReplace("users", "ada", Doc(6), v2, h); });
  EXPECT_EQ(N(db_->Get("users", "ada")), 6);

  EXPECT_EQ(CodeOf(db_->AsyncPut("users", "ada", Doc(7), v2, asio::use_future)),
            ErrorCode::kConditionFailed);
  uint64_t v4 = ViaCallback<uint64_t>([&](auto h) { db_->AsyncPut("users", "ada", Doc(7), v3, h); });
  EXPECT_GT(v4, v3);
  uint64_t v5 = db_->AsyncPut("users", "ada", Doc(8), v4, asio::use_future).get();
  EXPECT_GT(v5, v4);

  EXPECT_EQ(CodeOf(db_->AsyncDelete("users", "ada", v4, asio::use_future)),
            ErrorCode::kConditionFailed);
  EXPECT_TRUE(db_->AsyncDelete("users", "ada", v5, asio::use_future).get());
  EXPECT_FALSE(db_->AsyncDelete("users", "ada", asio::use_future).get());
  EXPECT_TRUE(ViaCallback<bool>([&](auto h) { db_->AsyncDelete("users", "bob", h); }));
  EXPECT_FALSE(ViaCallback<bool>([&](auto h) { db_->AsyncDelete("users", "bob", h); }));
  EXPECT_EQ(db_->Count("users"), 0u);
}

TEST_F(AsyncTest, ScanPagesAndCounts) {
  Fill(25);
  ScanOptions o;
  o.page_size = 10;
  // Follow the continuations: 10, 10, 5.
  std::vector<std::string> keys;
  std::vector<size_t> pages;
  RecordPage page = db_->AsyncScan("users", o, asio::use_future).get();
  while (true) {
    pages.push_back(page.records.size());
    for (const Record& r : page.records) keys.push_back(r.key);
    if (page.continuation.empty()) break;
    page = ViaCallback<RecordPage>([&](auto h) { db_->AsyncScan("users", o, page.continuation, h); });
  }
  ASSERT_EQ(keys.size(), 25u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(pages.front(), 10u);
  EXPECT_EQ(pages.size(), 3u);

  ScanOptions range;
  range.from = Bound{"k010", true};
  range.to = Bound{"k020", false};
  range.reverse = true;
  page = ViaCallback<RecordPage>([&](auto h) { db_->AsyncScan("users", range, h); });
  ASSERT_EQ(page.records.size(), 10u);
  EXPECT_EQ(page.records.front().key, "k019");
  EXPECT_TRUE(page.continuation.empty());

  EXPECT_EQ(db_->AsyncCount("users", asio::use_future).get(), 25u);
  EXPECT_EQ(ViaCallback<uint64_t>([&](auto h) { db_->AsyncCount("users", range, h); }), 10u);
  EXPECT_EQ(db_->AsyncCount("users", range, asio::use_future).get(), 10u);
  EXPECT_EQ(ViaCallback<uint64_t>([&](auto h) { db_->AsyncCount("users", h); }), 25u);
  EXPECT_THROW(db_->AsyncCount("nope", asio::use_future).get(), Error);
}

TEST_F(AsyncTest, QueryPagesAndCounts) {
  db_->CreateIndex("users", {"by_team", {"team"}, false});
  Fill(30);  // teams 0, 1, 2: ten each
  QueryOptions q;
  q.equal = {int64_t{1}};
  q.page_size = 4;
  std::vector<int64_t> ns;
  RecordPage page = ViaCallback<RecordPage>([&](auto h) { db_->AsyncQuery("users", "by_team", q, h); });
  while (true) {
    EXPECT_LE(page.records.size(), 4u);
    for (const Record& r : page.records) ns.push_back(r["n"].AsInt());
    if (page.continuation.empty()) break;
    page = db_->AsyncQuery("users", "by_team", q, page.continuation, asio::use_future).get();
  }
  EXPECT_EQ(ns, (std::vector<int64_t>{1, 4, 7, 10, 13, 16, 19, 22, 25, 28}));

  QueryOptions range;
  range.from = ScalarBound{int64_t{1}, true};
  EXPECT_EQ(db_->AsyncCountQuery("users", "by_team", range, asio::use_future).get(), 20u);
  EXPECT_EQ(ViaCallback<uint64_t>([&](auto h) { db_->AsyncCountQuery("users", "by_team", q, h); }),
            10u);
  EXPECT_THROW(db_->AsyncQuery("users", "nope", q, asio::use_future).get(), Error);
}

TEST_F(AsyncTest, ChannelsOfferEveryCallInOrder) {
  // Pipelined on one channel: each read sees the writes made before it on the channel.
  Client::Channel ch = db_->channel(1);
  auto created = ch.AsyncCreateCollection("c", asio::use_future);
  auto inserted = ch.AsyncInsert("c", "a", Doc(1), asio::use_future);
  auto counted = ch.AsyncCount("c", asio::use_future);
  auto replaced = ch.AsyncReplace("c", "a", Doc(2), asio::use_future);
  auto scanned = ch.AsyncScan("c", {}, asio::use_future);
  auto deleted = ch.AsyncDelete("c", "a", asio::use_future);
  auto counted_after = ch.AsyncCount("c", {}, asio::use_future);
  created.get();
  uint64_t v = inserted.get();
  EXPECT_EQ(counted.get(), 1u);
  EXPECT_GT(replaced.get(), v);
  RecordPage page = scanned.get();
  ASSERT_EQ(page.records.size(), 1u);
  EXPECT_EQ(page.records[0]["n"].AsInt(), 2);
  EXPECT_TRUE(deleted.get());
  EXPECT_EQ(counted_after.get(), 0u);
  EXPECT_EQ(ch.AsyncDescribeCollection("c", asio::use_future).get().name, "c");
  EXPECT_GT(ch.AsyncStats(asio::use_future).get().last_commit, 0u);
}

TEST_F(AsyncTest, CoroutinesAwaitEveryKindOfResult) {
  Fill(5);
  asio::io_context io;
  uint64_t count = 0;
  RecordPage page;
  bool deleted = false;
  ScanOptions two;
  two.limit = 2;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await db_->AsyncCreateCollection("co", asio::use_awaitable);
        count = co_await db_->AsyncCount("users", asio::use_awaitable);
        page = co_await db_->AsyncScan("users", two, asio::use_awaitable);
        deleted = co_await db_->AsyncDelete("users", "k000", asio::use_awaitable);
      },
      asio::detached);
  io.run();
  EXPECT_EQ(count, 5u);
  EXPECT_EQ(page.records.size(), 2u);
  EXPECT_TRUE(deleted);
  EXPECT_EQ(db_->DescribeCollection("co").name, "co");
}

// --- Optimistic transactions: Insert, Replace, Query, Scan.

TEST_F(AsyncTest, OptimisticInsertOfAnAbsentRecord) {
  int attempts = 0;
  bool inserted = db_->Transact([&](OptimisticTxn& t) {
    attempts++;
    if (t.Get("users", "ada")) return false;
    if (t.attempt() == 1) db_->Insert("users", "ada", Doc(99));  // another writer wins
    t.Insert("users", "ada", Doc(1));
    return true;
  });
  // The first attempt read "ada" absent; the other insert broke that condition, so the
  // function ran again and saw the record.
  EXPECT_FALSE(inserted);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(N(db_->Get("users", "ada")), 99);

  db_->Transact([&](OptimisticTxn& t) {
    EXPECT_FALSE(t.Get("users", "bob"));
    t.Insert("users", "bob", Doc(2));
    EXPECT_EQ(N(t.Get("users", "bob")), 2) << "the staged insert is seen";
  });
  EXPECT_EQ(N(db_->Get("users", "bob")), 2);
}

TEST_F(AsyncTest, OptimisticInsertAndReplaceFailLikeTheirCalls) {
  db_->Put("users", "ada", Doc(1));
  int attempts = 0;
  // Not read first: the insert is what checks, and its failure is not a conflict.
  try {
    db_->Transact([&](OptimisticTxn& t) {
      attempts++;
      t.Put("users", "other", Doc(5));
      t.Insert("users", "ada", Doc(2));
    });
    FAIL() << "insert of a present record must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists) << e.what();
  }
  EXPECT_EQ(attempts, 1);
  EXPECT_FALSE(db_->Get("users", "other")) << "all or nothing";

  EXPECT_THROW(db_->Transact([&](OptimisticTxn& t) { t.Replace("users", "nobody", Doc(3)); }),
               Error);
  try {
    db_->Transact([&](OptimisticTxn& t) {
      t.Put("users", "new", Doc(3));
      t.Insert("users", "new", Doc(4));  // present by the write staged before it
    });
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
  }

  // Replace of a record read: conditioned on the version read, so a concurrent change
  // makes the function run again.
  int runs = 0;
  db_->Transact([&](OptimisticTxn& t) {
    runs++;
    auto r = t.Get("users", "ada");
    if (t.attempt() == 1) db_->Put("users", "ada", Doc(50));
    t.Replace("users", "ada", Doc(int((*r)["n"].AsInt()) + 1));
  });
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(N(db_->Get("users", "ada")), 51);
}

TEST_F(AsyncTest, OptimisticQueryAndScanRecordWhatTheyRead) {
  db_->CreateIndex("users", {"by_team", {"team"}, false});
  Fill(9);  // k000..k008, teams 0, 1, 2
  QueryOptions q;
  q.equal = {int64_t{2}};
  int runs = 0;
  int64_t total = db_->Transact([&](OptimisticTxn& t) {
    runs++;
    int64_t sum = 0;
    for (const Record& r : t.Query("users", "by_team", q)) sum += r["n"].AsInt();  // 2 + 5 + 8
    // Another writer changes a record the query returned: the commit's condition fails.
    if (t.attempt() == 1) db_->Put("users", "k005", Document::Builder().Set("n", 105).Set("team", 2).Build());
    t.Put("users", "total", Document::Builder().Set("n", sum).Build());
    return sum;
  });
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(total, 2 + 105 + 8);
  EXPECT_EQ(N(db_->Get("users", "total")), total);

  runs = 0;
  db_->Transact([&](OptimisticTxn& t) {
    runs++;
    auto first = t.Get("users", "k001");
    if (t.attempt() == 1) db_->Put("users", "k001", Doc(1001));
    // The scan meets k001 at a newer version than the Get: the transaction read two
    // versions of one record, so it runs again at once.
    ScanOptions o;
    o.from = Bound{"k000", true};
    o.to = Bound{"k002", true};
    std::vector<Record> all = t.Scan("users", o);
    EXPECT_EQ(all.size(), 3u);
    t.Put("users", "seen", Doc(int(all.size())));
    (void)first;
  });
  EXPECT_EQ(runs, 2);
}

}  // namespace
}  // namespace cairn::client
