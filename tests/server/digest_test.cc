// The Digest request (docs/protocol.md, "Digest") against real cairnd processes: two
// servers holding the same data give the same digest however it got there; any change
// of data changes it; `at` waits for a commit not reached and refuses one passed.
#include <gtest/gtest.h>

#include <thread>

#include "cairn/client/client.h"
#include "server_process.h"
#include "test_util.h"

namespace cairn {
namespace {

using flatbuffers::FlatBufferBuilder;
using testing::Connect;
using testing::ErrorText;
using testing::ServerProcess;
using testing::TempDir;

std::unique_ptr<FlatBufferBuilder> DigestRequest(uint64_t id, uint64_t at = 0, uint32_t wait_ms = 0) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto d = wire::CreateDigest(*fbb, at, wait_ms);
  fbb->Finish(wire::CreateRequestFrame(*fbb, id, wire::Request::Digest, d.Union()));
  return fbb;
}

class DigestTest : public ::testing::Test {
 protected:
  std::unique_ptr<ServerProcess> StartServer(const std::string& name) {
    auto s = std::make_unique<ServerProcess>(dir_.Sub(name), std::vector<std::string>{"--durability", "nosync"});
    EXPECT_TRUE(s->ready()) << s->output();
    return s;
  }
  static std::shared_ptr<client::Client> ClientOf(const ServerProcess& s) {
    client::ClientOptions o;
    o.address = "127.0.0.1:" + std::to_string(s.port());
    return client::Client::Connect(o);
  }
  // The reply to a Digest request, or a failure.
  static std::pair<uint64_t, uint64_t> Digest(const ServerProcess& s) {
    auto c = Connect(s.port(), 5);
    const wire::ResponseFrame* r = c->Call(*DigestRequest(1));
    EXPECT_TRUE(r && r->reply_as_DigestReply()) << ErrorText(r);
    if (!r || !r->reply_as_DigestReply()) return {0, 0};
    return {r->reply_as_DigestReply()->commit(), r->reply_as_DigestReply()->digest()};
  }

  TempDir dir_;
};

// Two servers given the same commits hold the same data (versions included): equal
// digests, at the same commit. (That the digest ignores the physical layout, internal ids
// and the order things were built in is checked in tests/engine/replication_test.cc.)
TEST_F(DigestTest, SameCommitsSameDigestAndAnyChangeShows) {
  auto a = StartServer("a");
  auto b = StartServer("b");
  for (auto* s : {a.get(), b.get()}) {
    auto c = ClientOf(*s);
    c->CreateCollection("users");
    c->CreateCollection("orders");
    for (int i = 0; i < 300; i++) {
      c->Put("users", "u" + std::to_string(i),
             client::Document::FromJson("{\"city\":\"c" + std::to_string(i % 7) + "\"}"));
    }
    c->CreateIndex("users", client::IndexSpec{"by_city", {"city"}, false});
    c->Put("orders", "o1", client::Document::FromJson("{\"n\":1}"));
    c->Delete("users", "u5");
  }
  // Wait for the index builds (a digest covers ready indexes only).
  for (auto* s : {a.get(), b.get()}) {
    auto c = ClientOf(*s);
    for (int i = 0; i < 500 && c->DescribeCollection("users").indexes[0].state != IndexState::kReady; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto [commit_a, digest_a] = Digest(*a);
  auto [commit_b, digest_b] = Digest(*b);
  EXPECT_EQ(commit_a, commit_b);
  EXPECT_EQ(digest_a, digest_b);
  EXPECT_EQ(Digest(*a).second, digest_a) << "stable while nothing changes";
  // One value differs: the digests differ, at the same commit.
  auto ca = ClientOf(*a), cb = ClientOf(*b);
  ca->Put("orders", "o1", client::Document::FromJson("{\"n\":2}"));
  cb->Put("orders", "o1", client::Document::FromJson("{\"n\":3}"));
  auto [ca2, da2] = Digest(*a);
  auto [cb2, db2] = Digest(*b);
  EXPECT_EQ(ca2, cb2);
  EXPECT_NE(da2, db2);
  EXPECT_NE(da2, digest_a);
}

TEST_F(DigestTest, AtWaitsForACommitNotReachedAndRefusesOnePassed) {
  auto a = StartServer("a");
  auto ca = ClientOf(*a);
  ca->CreateCollection("c");
  uint64_t last = ca->Put("c", "k", client::Document::FromJson("{}"));
  auto c = Connect(a->port(), 5);
  // Exactly at: fine.
  const wire::ResponseFrame* r = c->Call(*DigestRequest(1, last));
  ASSERT_TRUE(r && r->reply_as_DigestReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_DigestReply()->commit(), last);
  EXPECT_EQ(r->reply_as_DigestReply()->records(), 1u);
  EXPECT_EQ(r->reply_as_DigestReply()->collections(), 1u);
  // Past: refused, naming both.
  r = c->Call(*DigestRequest(2, last - 1));
  ASSERT_TRUE(r && r->error()) << ErrorText(r);
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::ConditionFailed);
  EXPECT_NE(r->error()->message()->str().find("past"), std::string::npos) << ErrorText(r);
  // Not reached in time.
  auto t0 = std::chrono::steady_clock::now();
  r = c->Call(*DigestRequest(3, last + 1, 200));
  ASSERT_TRUE(r && r->error()) << ErrorText(r);
  EXPECT_EQ(r->error()->code(), wire::ErrorCode::Unavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(190));
  // Reached while it waits.
  ASSERT_TRUE(c->Send(*DigestRequest(4, last + 1, 10000)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ca->Put("c", "k2", client::Document::FromJson("{}"));
  r = c->Response();
  ASSERT_TRUE(r && r->reply_as_DigestReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_DigestReply()->commit(), last + 1);
  // Other connections are served while a digest waits.
  ASSERT_TRUE(c->Send(*DigestRequest(5, last + 100, 2000)));
  EXPECT_NO_THROW(ca->Get("c", "k"));
  r = c->Response();
  ASSERT_TRUE(r && r->error()) << ErrorText(r);
}

}  // namespace
}  // namespace cairn
