// libcairn when things go wrong: the server killed and restarted under a running
// client, a server that stops answering, a peer that never completes the handshake.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <future>
#include <thread>

#include "cairn/client/client.h"
#include "server_process.h"

namespace cairn {
namespace {

using testing::ServerProcess;
using testing::TempDir;

ClientOptions At(uint16_t port) {
  ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(port);
  return o;
}

// Inserts of distinct keys go on while the server is SIGKILLed and restarted on the
// same port. Every insert eventually succeeds; none is applied twice (a duplicate would
// answer AlreadyExists); every acknowledged insert is there afterwards.
TEST(ClientFailureTest, ServerRestartUnderARunningClientLosesAndDuplicatesNothing) {
  TempDir dir;
  auto server = std::make_unique<ServerProcess>(dir.Sub("data"));
  ASSERT_TRUE(server->ready());
  uint16_t port = server->port();
  ClientOptions o = At(port);
  o.timeout = std::chrono::seconds(60);
  o.max_attempts = 200;
  o.retry_backoff = std::chrono::milliseconds(10);
  auto client = Client::Connect(o);
  client->CreateCollection("c");

  const int writers = 4, each = 300;
  std::atomic<int> done{0}, duplicates{0}, errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; w++) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < each; i++) {
        std::string key = "w" + std::to_string(w) + "-" + std::to_string(i);
        try {
          client->Insert("c", key, Document::Builder().Set("i", i).Build());
          done++;
        } catch (const Error& e) {
          (e.code() == ErrorCode::kAlreadyExists ? duplicates : errors)++;
          ADD_FAILURE() << key << ": " << e.what();
        }
      }
    });
  }
  // Kill the server while the inserts are flowing, then bring it back on the same port.
  while (done < writers * each / 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server->Stop(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server = std::make_unique<ServerProcess>(dir.Sub("data"), std::vector<std::string>{},
                                           "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(server->ready()) << server->output();
  for (auto& t : threads) t.join();

  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(done, writers * each);
  EXPECT_EQ(client->Count("c"), uint64_t(writers * each));
  ServerStats stats = client->Stats();
  for (auto& [name, value] : stats.counters) {
    if (name == "idempotent_replays") RecordProperty("idempotent_replays", std::to_string(value));
  }
}

TEST(ClientFailureTest, CallsTimeOutWhenTheServerStopsAnswering) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.ready());
  ClientOptions o = At(server.port());
  o.timeout = std::chrono::milliseconds(500);
  auto client = Client::Connect(o);
  client->CreateCollection("c");
  kill(server.pid(), SIGSTOP);
  // kill() returns before the signal lands: wait until the server is really stopped.
  for (int i = 0; i < 2000; i++) {
    std::ifstream stat("/proc/" + std::to_string(server.pid()) + "/stat");
    std::string pid, comm, state;
    stat >> pid >> comm >> state;
    if (state == "T") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto t0 = std::chrono::steady_clock::now();
  try {
    client->Get("c", "k");
    ADD_FAILURE() << "a stopped server cannot answer";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout) << e.what();
  }
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(waited, std::chrono::seconds(3));
  EXPECT_GE(waited, std::chrono::milliseconds(400));
  kill(server.pid(), SIGCONT);
  EXPECT_FALSE(client->Get("c", "k")) << "the client recovers once the server answers again";
}

TEST(ClientFailureTest, PeerThatNeverAnswersTheHandshakeFailsTheConnect) {
  // A socket that listens but never accepts: the kernel completes TCP handshakes, and
  // then nothing answers.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ClientOptions o = At(ntohs(a.sin_port));
  o.connect_timeout = std::chrono::milliseconds(200);
  o.timeout = std::chrono::milliseconds(1500);
  auto t0 = std::chrono::steady_clock::now();
  try {
    Client::Connect(o);
    ADD_FAILURE() << "nothing answers there";
  } catch (const Error& e) {
    EXPECT_TRUE(e.code() == ErrorCode::kConnectionFailed || e.code() == ErrorCode::kTimeout)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  close(fd);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A request over the server's frame limit fails alone, locally, with kTooLarge: it is
// never sent (the server would close the connection, failing the calls beside it).
TEST(ClientLimitsTest, OversizedRequestFailsAloneWithoutHurtingOthers) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), {"--max-frame", "64K"});
  ASSERT_TRUE(server.ready());
  auto client = Client::Connect(At(server.port()));
  client->CreateCollection("c");
  std::string big(100 << 10, 'x');
  std::vector<std::future<uint64_t>> small;
  for (int i = 0; i < 200; i++) {
    small.push_back(client->AsyncPut("c", "k" + std::to_string(i),
                                     Document::Builder().Set("i", i).Build(), asio::use_future));
    if (i == 100) {
      auto f = client->AsyncPut("c", "big", Document::Builder().Set("pad", big).Build(),
                                asio::use_future);
      try {
        f.get();
        ADD_FAILURE() << "a 100 KiB request cannot pass a 64 KiB limit";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kTooLarge) << e.what();
      }
    }
  }
  for (auto& f : small) EXPECT_NO_THROW(f.get());
  EXPECT_EQ(client->Count("c"), 200u);
  EXPECT_FALSE(client->Get("c", "big"));
}

// The last reference to a Client may go away inside one of its completion handlers
// (which run on the client's own IO thread).
TEST(ClientLifetimeTest, ClientReleasedInsideItsOwnHandler) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.ready());
  for (int round = 0; round < 3; round++) {
    auto client = Client::Connect(At(server.port()));
    std::promise<void> done;
    Client* raw = client.get();
    raw->AsyncPing([c = std::move(client), &done](std::exception_ptr e, bool) mutable {
      EXPECT_FALSE(e);
      c.reset();  // the Client is destroyed here, on its IO thread
      done.set_value();
    });
    done.get_future().get();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the IO threads wind down
}

// A handler bound to the application's io_context counts as work there until it runs:
// run() does not return early.
TEST(ClientLifetimeTest, PendingCallKeepsTheHandlersExecutorBusy) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.ready());
  auto client = Client::Connect(At(server.port()));
  asio::io_context app;
  bool called = false;
  client->AsyncPing(asio::bind_executor(app, [&](std::exception_ptr e, bool) {
    EXPECT_FALSE(e);
    called = true;
  }));
  app.run();  // returns once the callback ran, not before
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace cairn
