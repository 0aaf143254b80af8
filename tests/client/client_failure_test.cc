// libcairn when things go wrong: the server killed and restarted under a running
// client, a server that stops answering, a peer that never completes the handshake.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "cairn/client/client.h"
#include "server_process.h"

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::TempDir;

// A socket listening on a free loopback port, which goes in *port.
int ListenOnLoopback(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

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
  uint16_t port;
  int fd = ListenOnLoopback(&port);
  ClientOptions o = At(port);
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
}  // namespace cairn::client

namespace cairn::client {
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
}  // namespace cairn::client

namespace cairn::client {
namespace {

// A stand-in for cairnd: it speaks protocol 2 on its first `v2_connections` connections
// and protocol 1 (no Get request) on the later ones, as an older cairnd does; answers
// one-get transactions and (protocol 2) Get requests with a record, and refuses Get
// requests on protocol 1. It counts what it saw.
class OldServer {
 public:
  explicit OldServer(int v2_connections) : v2_left_(v2_connections) {
    fd_ = ListenOnLoopback(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~OldServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  // Closes the connection being served after its next answer.
  void DropAfterNextAnswer() { drop_ = true; }

  std::atomic<int> gets{0}, txns{0}, connections{0};

 private:
  void Serve() {
    while (true) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      connections++;
      uint32_t version = v2_left_-- > 0 ? 2 : 1;
      while (Answer(c, version)) {
      }
      close(c);
    }
  }

  // Reads one request and answers it; false when the connection is over.
  bool Answer(int c, uint32_t version) {
    char header[4];
    if (recv(c, header, 4, MSG_WAITALL) != 4) return false;
    uint32_t n;
    std::memcpy(&n, header, 4);
    std::string payload(n, '\0');
    if (recv(c, payload.data(), n, MSG_WAITALL) != ssize_t(n)) return false;
    auto f = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
    flatbuffers::FlatBufferBuilder fbb;
    switch (f->request_type()) {
      case wire::Request::Hello: {
        auto h = wire::CreateHelloReply(fbb, version, fbb.CreateString("old cairnd"), 1 << 20,
                                        128, 1 << 20, 507);
        fbb.Finish(wire::CreateResponseFrame(fbb, f->id(), 0, wire::Reply::HelloReply, h.Union()));
        break;
      }
      case wire::Request::Ping:
        fbb.Finish(wire::CreateResponseFrame(fbb, f->id(), 0, wire::Reply::Pong,
                                             wire::CreatePong(fbb).Union()));
        break;
      case wire::Request::Txn: {
        txns++;
        auto get = f->request_as_Txn()->ops()->Get(0)->op_as_Get();
        auto key = fbb.CreateVector(get->key()->data(), get->key()->size());
        auto doc = Document::Builder().Set("old", true).Build();
        auto value = fbb.CreateVector(reinterpret_cast<const uint8_t*>(doc.bytes().data()),
                                      doc.bytes().size());
        auto rec = wire::CreateRecord(fbb, key, 7, wire::ValueKind::Document, value);
        auto result = wire::CreateOpResult(fbb, true, 7, fbb.CreateVector(&rec, 1));
        auto reply = wire::CreateTxnReply(fbb, 0, fbb.CreateVector(&result, 1));
        fbb.Finish(
            wire::CreateResponseFrame(fbb, f->id(), 0, wire::Reply::TxnReply, reply.Union()));
        break;
      }
      case wire::Request::Get:
        gets++;
        if (version >= 2) {
          auto doc = Document::Builder().Set("new", true).Build();
          auto value = fbb.CreateVector(reinterpret_cast<const uint8_t*>(doc.bytes().data()),
                                        doc.bytes().size());
          auto reply = wire::CreateGetReply(fbb, true, 9, wire::ValueKind::Document, value);
          fbb.Finish(
              wire::CreateResponseFrame(fbb, f->id(), 0, wire::Reply::GetReply, reply.Union()));
          break;
        }
        [[fallthrough]];
      default: {
        auto e = wire::CreateError(fbb, wire::ErrorCode::BadRequest,
                                   fbb.CreateString("unknown request type"));
        fbb.Finish(wire::CreateResponseFrame(fbb, f->id(), e));
      }
    }
    std::string out = testing::WireClient::Frame(fbb);
    if (send(c, out.data(), out.size(), MSG_NOSIGNAL) != ssize_t(out.size())) return false;
    return !drop_.exchange(false);
  }

  int fd_;
  uint16_t port_;
  std::atomic<int> v2_left_;
  std::atomic<bool> drop_{false};
  std::thread thread_;
};

TEST(ClientProtocolTest, PointReadsOfAProtocolOneServerGoAsTransactions) {
  OldServer old(/*v2_connections=*/0);
  ClientOptions o = At(old.port());
  o.connections = 1;
  auto client = Client::Connect(o);
  EXPECT_EQ(client->protocol(), 1u);
  std::optional<Record> r = client->Get("c", "k1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, "k1");
  EXPECT_EQ(r->version, 7u);
  EXPECT_TRUE((*r)["old"].AsBool());
  r = client->channel(0).AsyncGet("c", "k2", asio::use_future).get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, "k2");
  EXPECT_EQ(old.txns, 2);
  EXPECT_EQ(old.gets, 0);
}

TEST(ClientProtocolTest, PointReadsOfAProtocolTwoServerGoAsGetRequests) {
  OldServer server(/*v2_connections=*/100);
  ClientOptions o = At(server.port());
  o.connections = 1;  // the stand-in serves one connection at a time
  auto client = Client::Connect(o);
  EXPECT_EQ(client->protocol(), 2u);
  std::optional<Record> r = client->Get("c", "k1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, "k1") << "the key comes from the request";
  EXPECT_EQ(r->version, 9u);
  EXPECT_TRUE((*r)["new"].AsBool());
  r = client->channel(1).AsyncGet("c", "k2", asio::use_future).get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, "k2");
  EXPECT_EQ(server.gets, 2);
  EXPECT_EQ(server.txns, 0);
}

TEST(ClientProtocolTest, ServerReplacedByAnOlderOneGetsTheOlderForm) {
  // The first connection reaches a protocol 2 server, which goes away; its replacement
  // speaks protocol 1. A get encoded for protocol 2 meanwhile is sent in the older form.
  OldServer old(/*v2_connections=*/1);
  ClientOptions o = At(old.port());
  o.connections = 1;
  auto client = Client::Connect(o);
  EXPECT_EQ(client->protocol(), 2u);
  old.DropAfterNextAnswer();
  client->Ping();  // answered, then the connection is closed
  std::optional<Record> r = client->Get("c", "k3");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, "k3");
  EXPECT_EQ(client->protocol(), 1u);
  EXPECT_EQ(old.connections, 2);
  EXPECT_EQ(old.gets, 0) << "no Get request may reach a protocol 1 server";
  EXPECT_EQ(old.txns, 1);
}

}  // namespace
}  // namespace cairn::client
