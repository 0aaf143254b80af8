// Slow and hostile clients against the real cairnd: connections that trickle bytes, a
// burst of accepts at the connection limit, and documents that are costly to check.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "flex_raw.h"
#include "server_process.h"

namespace cairn {
namespace {

using namespace testing;
using Clock = std::chrono::steady_clock;

bool IsHelloReply(const wire::ResponseFrame* r) { return r && r->reply_as_HelloReply(); }

// Connections that send `bytes` one byte every `every`, until the server closes them.
class Tricklers {
 public:
  Tricklers(uint16_t port, size_t n, std::string bytes) : bytes_(std::move(bytes)) {
    for (size_t i = 0; i < n; i++) {
      conns_.push_back(std::make_unique<WireClient>(port));
      sent_.push_back(0);
      closed_at_.push_back(std::nullopt);
    }
  }
  // Sends the next byte on every open connection and notes those the server closed.
  void Tick() {
    for (size_t i = 0; i < conns_.size(); i++) {
      if (closed_at_[i]) continue;
      Poll(i);
      if (!closed_at_[i] && sent_[i] < bytes_.size()) {
        conns_[i]->SendRaw(std::string_view(bytes_).substr(sent_[i]++, 1));
      }
    }
  }
  void Poll(size_t i) {
    pollfd p{conns_[i]->fd(), POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return;
    char buf[4096];
    ssize_t n = recv(conns_[i]->fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) closed_at_[i] = Clock::now();  // error frames before the close are read and dropped
  }
  size_t closed() const {
    return size_t(std::count_if(closed_at_.begin(), closed_at_.end(), [](auto& t) { return bool(t); }));
  }
  size_t size() const { return conns_.size(); }

 private:
  std::string bytes_;
  std::vector<std::unique_ptr<WireClient>> conns_;
  std::vector<size_t> sent_;
  std::vector<std::optional<Clock::time_point>> closed_at_;
};

class HostileClientsTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags) {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), std::move(flags));
    ASSERT_TRUE(server_->ready()) << server_->output();
  }
  uint16_t port() const { return server_->port(); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(HostileClientsTest, TricklersBeforeHelloCannotLockNewcomersOutAndAreClosedByTheDeadline) {
  // 200 connections at --max-connections 200 each send a Hello one byte a second. Before,
  // every byte reset the idle timer (300 s) and they held every slot: newcomers were refused.
  Start({"--max-connections", "200", "--hello-timeout", "2"});
  std::string hello = WireClient::Frame(*req::Hello(1));
  Tricklers t(port(), 200, hello);
  auto start = Clock::now();
  t.Tick();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  t.Tick();
  // Newcomers that send Hello at once get in, and are served.
  std::vector<std::unique_ptr<WireClient>> newcomers;
  for (int i = 0; i < 10; i++) {
    auto c = std::make_unique<WireClient>(port());
    auto r = c->Call(*req::Hello(1));
    ASSERT_TRUE(IsHelloReply(r)) << "newcomer " << i << " was not let in";
    r = c->Call(*req::Ping(2, "hi"));
    ASSERT_TRUE(r && r->reply_as_Pong()) << i;
    newcomers.push_back(std::move(c));
  }
  // Every trickler is closed by the Hello deadline (2 s) or made room for a newer one;
  // none lasts until its Hello is complete (about 30 s at a byte a second).
  while (t.closed() < t.size() && Clock::now() - start < std::chrono::seconds(8)) {
    t.Tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(t.closed(), t.size());
  auto counters = Counters(*newcomers[0]);
  EXPECT_GT(counters["timeouts.hello"], 0u);
  EXPECT_EQ(counters["timeouts.hello"] + counters["connections.displaced"] +
                counters["connections.refused"],
            200u);
  EXPECT_EQ(counters["connections.open"], 10u);
  std::printf("200 tricklers: closed by the Hello deadline %llu, displaced %llu, refused %llu, "
              "all gone after %.1f s\n",
              (unsigned long long)counters["timeouts.hello"],
              (unsigned long long)counters["connections.displaced"],
              (unsigned long long)counters["connections.refused"],
              std::chrono::duration<double>(Clock::now() - start).count());
}

TEST_F(HostileClientsTest, AFrameTrickledAfterHelloIsClosedByTheFrameDeadline) {
  // The bytes of a frame do not reset the idle timer; a frame must arrive within
  // --frame-timeout of its first byte.
  Start({"--frame-timeout", "2", "--idle-timeout", "60"});
  std::vector<std::unique_ptr<WireClient>> slow;
  for (int i = 0; i < 5; i++) slow.push_back(Connect(port()));
  std::string ping = WireClient::Frame(*req::Ping(7, std::string(100, 'x')));
  auto start = Clock::now();
  std::vector<bool> closed(slow.size(), false);
  size_t sent = 0;
  while (std::count(closed.begin(), closed.end(), true) < long(slow.size()) &&
         Clock::now() - start < std::chrono::seconds(8)) {
    for (size_t i = 0; i < slow.size(); i++) {
      if (closed[i]) continue;
      pollfd p{slow[i]->fd(), POLLIN, 0};
      if (poll(&p, 1, 0) > 0) {
        std::string payload;
        // The error frame, then the close.
        if (slow[i]->Read(&payload, 100)) {
          auto r = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
          EXPECT_TRUE(r->error() && r->error()->code() == wire::ErrorCode::Unavailable &&
                      std::string(r->error()->message()->c_str()).find("frame") != std::string::npos);
        }
        closed[i] = slow[i]->ClosedByPeer(1000);
        continue;
      }
      slow[i]->SendRaw(std::string_view(ping).substr(sent, 1));
    }
    sent = std::min(sent + 1, ping.size() - 1);  // never completes the frame
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  double took = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(std::count(closed.begin(), closed.end(), true), long(slow.size()));
  EXPECT_LT(took, 5.0);
  auto c = Connect(port());
  EXPECT_EQ(Counters(*c)["timeouts.frame"], slow.size());
}

TEST_F(HostileClientsTest, ABurstOfAcceptsNeverPassesMaxConnections) {
  // Before, the count was taken on the connection's IO thread after the acceptor had checked
  // it: bursts admitted 214 and 227 at a cap of 200. Every round here connects 160 at once
  // from 8 threads to a cap of 20 and counts the HelloReplies.
  Start({"--max-connections", "20"});
  for (int round = 0; round < 5; round++) {
    std::atomic<int> admitted{0}, ready{0};
    std::atomic<bool> go{false};
    std::vector<std::unique_ptr<WireClient>> held[8];
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; t++) {
      threads.emplace_back([&, t] {
        ready++;
        while (!go) std::this_thread::yield();
        std::vector<std::unique_ptr<WireClient>> conns;
        for (int i = 0; i < 20; i++) conns.push_back(std::make_unique<WireClient>(port()));
        for (auto& c : conns) c->Send(*req::Hello(1));
        for (auto& c : conns) {
          if (IsHelloReply(c->Response(5000))) {
            admitted++;
            held[t].push_back(std::move(c));  // keep it open until the round ends
          }
        }
      });
    }
    while (ready < 8) std::this_thread::yield();
    go = true;
    for (auto& th : threads) th.join();
    EXPECT_LE(admitted.load(), 20) << "round " << round;
    EXPECT_GT(admitted.load(), 0) << "round " << round;
    for (auto& h : held) h.clear();
    // Wait until the server has seen them go.
    for (int i = 0; i < 200; i++) {
      auto c = std::make_unique<WireClient>(port());
      auto r = c->Call(*req::Hello(1));
      if (IsHelloReply(r) && Counters(*c)["connections.open"] == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

TEST_F(HostileClientsTest, ACostlyDocumentDelaysOnlyItsOwnConnection) {
  // Documents of about 400 KB that share parts, checked on their connection's IO thread in
  // linear time, not on the writer thread (where a walk that re-checks shared parts stalled
  // every connection's writes for seconds): one whose vector references a vector of 16,384
  // elements 81,920 times (1.3 * 10^9 values written out) is refused for its size written
  // out; one that references a vector of 256 as often (21 million values, within 64 per
  // byte stored) is accepted.
  Start({"--durability", "nosync"});
  auto writer = Connect(port());
  ASSERT_TRUE(writer->Call(*req::CreateCollection(2, "c"))->reply_as_Done());
  auto small_writes = [&](int n, std::chrono::seconds budget) {
    std::vector<double> ms;
    auto until = Clock::now() + budget;
    for (int i = 0; i < n && Clock::now() < until; i++) {
      req::TxnBuilder put;
      put.Put("c", "k" + std::to_string(i), R"({"n": 1})");
      auto t0 = Clock::now();
      auto r = writer->Call(put.Build(10 + i));
      EXPECT_TRUE(r && r->reply_as_TxnReply());
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    return ms;
  };
  std::vector<double> before = small_writes(100, std::chrono::seconds(10));

  std::string bomb = SharedVectorDocument(81920, 16384);
  std::string shared = SharedVectorDocument(81920, 256);
  std::atomic<bool> stop{false};
  std::atomic<int> hostile_answered{0};
  std::thread hostile([&] {
    auto c = Connect(port());
    for (uint64_t id = 100; !stop; id++) {
      bool refuse = id % 2 == 0;
      req::TxnBuilder put;
      put.PutDoc("c", "hostile", refuse ? bomb : shared);
      auto r = c->Call(put.Build(id));
      if (!r) break;
      if (refuse) {
        EXPECT_TRUE(r->error() && r->error()->code() == wire::ErrorCode::BadRequest &&
                    ErrorText(r).find("too large written out") != std::string::npos)
            << ErrorText(r);
      } else {
        EXPECT_TRUE(r->reply_as_TxnReply()) << "a valid document within the bound: accepted; "
                                            << ErrorText(r);
      }
      hostile_answered++;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::vector<double> during = small_writes(100, std::chrono::seconds(5));
  stop = true;
  int hostile_docs = hostile_answered.load();
  hostile.join();

  double b = MedianMs(before), d = MedianMs(during);
  std::printf("small writes' median latency: %.3f ms before, %.3f ms while another connection "
              "sent %d documents of %zu KB (%zu writes)\n",
              b, d, hostile_docs, bomb.size() >> 10, during.size());
  ASSERT_GE(during.size(), 20u) << "writes stalled: " << during.size() << " in 5 s";
  EXPECT_LT(d, 5 * b + 25) << "before " << b << " ms, during " << d << " ms";
  EXPECT_GT(hostile_docs, 1) << "both documents answered";
}

}  // namespace
}  // namespace cairn
