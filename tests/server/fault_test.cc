// Faults injected into cairnd-faults (cairnd built with server/src/fault.h's hooks): a
// request whose handling throws is answered Internal, logged with its kind and counted;
// the connection goes on, or is closed when its state is unknown; others are unaffected.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "server_process.h"

namespace cairn {
namespace {

using namespace testing;

::testing::AssertionResult IsInternal(const wire::ResponseFrame* r, uint64_t id) {
  if (!r) return ::testing::AssertionFailure() << "no response";
  if (r->id() != id) return ::testing::AssertionFailure() << "id " << r->id() << ", not " << id;
  if (!r->error() || r->error()->code() != wire::ErrorCode::Internal) {
    return ::testing::AssertionFailure() << "not an Internal error";
  }
  return ::testing::AssertionSuccess();
}

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->ready()) << server_->output();
    c_ = Connect(server_->port());
    ASSERT_TRUE(c_->Call(*req::CreateCollection(2, "c"))->reply_as_Done());
  }
  // The server log's lines that mention `what`, once `expected` of them have arrived or
  // after 5 s: the log reaches the test through a pipe that a thread of its own reads, so
  // a line written before a response may arrive after it.
  size_t LogLines(const std::string& what, size_t expected) {
    auto count = [&] {
      std::string out = server_->output();
      size_t n = 0;
      for (size_t at = out.find(what); at != std::string::npos; at = out.find(what, at + 1)) n++;
      return n;
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (count() < expected && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // A little longer, so that a line too many shows too.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return count();
  }
  void ExpectServing() {
    auto other = Connect(server_->port());
    auto r = other->Call(*req::Ping(5, "ok"));
    EXPECT_TRUE(r && r->reply_as_Pong());
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<WireClient> c_;
};

TEST_F(FaultTest, ARequestThatThrowsIsAnsweredInternalAndTheConnectionGoesOn) {
  // Before, the exception reached the IO thread's loop: logged, never answered.
  EXPECT_TRUE(IsInternal(c_->Call(*req::Ping(10, "cairn-fault:read")), 10));
  auto r = c_->Call(*req::Ping(11, "after"));
  EXPECT_TRUE(r && r->id() == 11 && r->reply_as_Pong());
  // Pipelined: the one behind it is answered, in order.
  c_->Send(*req::Ping(12, "cairn-fault:read"));
  c_->Send(*req::Ping(13, "behind"));
  EXPECT_TRUE(IsInternal(c_->Response(), 12));
  r = c_->Response();
  EXPECT_TRUE(r && r->id() == 13 && r->reply_as_Pong());
  EXPECT_EQ(Counters(*c_)["errors.internal"], 2u);
  EXPECT_EQ(LogLines("internal error handling a Ping request", 2), 2u) << server_->output();
}

TEST_F(FaultTest, AThrowOutsideARequestAnswersInternalAndClosesTheConnection) {
  EXPECT_TRUE(IsInternal(c_->Call(*req::Ping(10, "cairn-fault:connection")), 0));
  EXPECT_TRUE(c_->ClosedByPeer());
  ExpectServing();
  auto c = Connect(server_->port());
  EXPECT_EQ(Counters(*c)["errors.internal"], 1u);
  EXPECT_EQ(LogLines("closing the connection", 1), 1u) << server_->output();
}

TEST_F(FaultTest, AWriteThatThrowsWhileDecodedOrOnTheWriterIsAnsweredInternal) {
  for (const char* point : {"cairn-fault:decode", "cairn-fault:writer"}) {
    req::TxnBuilder put;
    put.Put("c", "k", R"({"a": 1})").IdempotencyKey(point);
    EXPECT_TRUE(IsInternal(c_->Call(put.Build(20)), 20)) << point;
    req::TxnBuilder next;
    next.Put("c", "k2", R"({"a": 2})");
    auto r = c_->Call(next.Build(21));
    EXPECT_TRUE(r && r->id() == 21 && r->reply_as_TxnReply()) << point;
  }
  EXPECT_EQ(Counters(*c_)["errors.internal"], 2u);
  EXPECT_EQ(LogLines("internal error handling a Txn request", 1), 1u) << server_->output();
  EXPECT_EQ(LogLines("internal error running a write on the writer", 1), 1u) << server_->output();
  ExpectServing();
}

}  // namespace
}  // namespace cairn
