// cairn-roundtrip: round-trip latency of one connection to cairnd (ping, point
// get, durable put), next to a plain TCP ping-pong of the same size on the same
// machine (the floor), and the group-commit batch sizes under many concurrent
// writers. Starts its own cairnd (--cairnd PATH) in a temporary folder on the
// real disk, or measures a running one (--addr HOST:PORT).
//
//   cairn-roundtrip --cairnd build/server/cairnd [--count 20000] [--writers 64]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cairn/protocol/frame.h"
#include "cairn/protocol/histogram.h"
#include "cairn/protocol/json.h"
#include "cairn_generated.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace cairn;

int Dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    perror("connect");
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w, n -= size_t(w);
  }
  return true;
}
bool ReadAll(int fd, char* p, size_t n) {
  while (n) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r, n -= size_t(r);
  }
  return true;
}

std::string Frame(const flatbuffers::FlatBufferBuilder& fbb) {
  std::string f(4, '\0');
  wire::StoreFrameHeader(f.data(), fbb.GetSize());
  f.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  return f;
}

// Sends a frame and reads one response frame back; the payload lands in *resp.
bool RoundTrip(int fd, const std::string& frame, std::string* resp) {
  if (!WriteAll(fd, frame.data(), frame.size())) return false;
  char h[4];
  if (!ReadAll(fd, h, 4)) return false;
  uint32_t n;
  std::memcpy(&n, h, 4);
  resp->resize(n);
  return ReadAll(fd, resp->data(), n);
}

const wire::ResponseFrame* Call(int fd, const flatbuffers::FlatBufferBuilder& fbb,
                                std::string* resp) {
  if (!RoundTrip(fd, Frame(fbb), resp)) return nullptr;
  return flatbuffers::GetRoot<wire::ResponseFrame>(resp->data());
}

int Handshake(uint16_t port) {
  int fd = Dial(port);
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 1, wire::Request::Hello,
                                      wire::CreateHello(fbb, 1, fbb.CreateString("roundtrip")).Union()));
  std::string resp;
  auto r = Call(fd, fbb, &resp);
  if (!r || r->error()) {
    fprintf(stderr, "handshake failed\n");
    exit(1);
  }
  return fd;
}

std::string PingFrame(uint64_t id) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, id, wire::Request::Ping, wire::CreatePing(fbb).Union()));
  return Frame(fbb);
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(flatbuffers::FlatBufferBuilder& fbb,
                                                       std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string TxnFrame(uint64_t id, wire::Op type, flatbuffers::FlatBufferBuilder& fbb,
                     flatbuffers::Offset<void> op) {
  std::vector<flatbuffers::Offset<wire::Operation>> ops{wire::CreateOperation(fbb, type, op)};
  auto t = wire::CreateTxn(fbb, 0, fbb.CreateVector(ops));
  fbb.Finish(wire::CreateRequestFrame(fbb, id, wire::Request::Txn, t.Union()));
  return Frame(fbb);
}

std::string GetFrame(uint64_t id, const std::string& key) {
  flatbuffers::FlatBufferBuilder fbb;
  auto g = wire::CreateGet(fbb, fbb.CreateString("bench"), Bytes(fbb, key));
  return TxnFrame(id, wire::Op::Get, fbb, g.Union());
}

std::string PutFrame(uint64_t id, const std::string& key, const std::string& doc) {
  flatbuffers::FlatBufferBuilder fbb;
  auto p = wire::CreatePut(fbb, fbb.CreateString("bench"), Bytes(fbb, key), Bytes(fbb, doc));
  return TxnFrame(id, wire::Op::Put, fbb, p.Union());
}

struct Result {
  std::string name;
  Histogram h;  // nanoseconds
};

void Print(const Result& r, double floor_p50) {
  double p50 = double(r.h.Percentile(0.5)) / 1e3, p99 = double(r.h.Percentile(0.99)) / 1e3;
  printf("| %-28s | %8llu | %8.1f | %8.1f | %8.1f | %6.2fx |\n", r.name.c_str(),
         (unsigned long long)r.h.count(), r.h.Mean() / 1e3, p50, p99,
         floor_p50 > 0 ? p50 / floor_p50 : 1.0);
}

// Times `count` round trips of `make(i)` frames on `fd`.
template <typename Make>
void Measure(int fd, int count, Make make, Result* out) {
  std::string resp;
  for (int i = 0; i < count; i++) {
    std::string frame = make(i);
    auto t0 = Clock::now();
    if (!RoundTrip(fd, frame, &resp)) {
      fprintf(stderr, "%s: connection lost\n", out->name.c_str());
      exit(1);
    }
    out->h.Record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
    auto r = flatbuffers::GetRoot<wire::ResponseFrame>(resp.data());
    if (r->error()) {
      fprintf(stderr, "%s: %s\n", out->name.c_str(), r->error()->message()->c_str());
      exit(1);
    }
  }
}

// A plain TCP echo of fixed-size messages: the floor for any request/response protocol.
void TcpPingPong(int count, size_t size, Result* out) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  listen(lfd, 1);
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::thread echo([&] {
    int c = accept(lfd, nullptr, nullptr);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string buf(size, '\0');
    while (ReadAll(c, buf.data(), size) && WriteAll(c, buf.data(), size)) {
    }
    close(c);
  });
  int fd = Dial(ntohs(a.sin_port));
  std::string msg(size, 'x'), back(size, '\0');
  for (int i = 0; i < count; i++) {
    auto t0 = Clock::now();
    WriteAll(fd, msg.data(), size);
    ReadAll(fd, back.data(), size);
    out->h.Record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  }
  close(fd);
  echo.join();
  close(lfd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string cairnd, addr, dir = "/var/tmp";
  int count = 20000, writers = 64, seconds = 3;
  CLI::App app{"cairn-roundtrip: one-connection latency and group commit, next to TCP"};
  app.add_option("--cairnd", cairnd, "cairnd binary to start (in a temporary folder)");
  app.add_option("--addr", addr, "HOST:PORT of a running cairnd instead");
  app.add_option("--dir", dir, "where the temporary data folder goes (a real disk)")->capture_default_str();
  app.add_option("--count", count, "round trips per measurement")->capture_default_str();
  app.add_option("--writers", writers, "concurrent writers for the group-commit measurement")->capture_default_str();
  app.add_option("--seconds", seconds, "duration of the group-commit measurement")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (cairnd.empty() == addr.empty()) {
    fprintf(stderr, "give exactly one of --cairnd and --addr\n");
    return 2;
  }

  pid_t pid = -1;
  uint16_t port = 0;
  std::string data;
  if (!cairnd.empty()) {
    data = dir + "/cairn-roundtrip-" + std::to_string(getpid());
    int out[2];
    if (pipe(out) != 0) return 1;
    pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(out[1], 2);
      execl(cairnd.c_str(), cairnd.c_str(), "--data", data.c_str(), "--listen", "127.0.0.1:0",
            nullptr);
      _exit(127);
    }
    close(out[1]);
    std::string log;
    char buf[512];
    std::regex ready("listening on [0-9.]+:([0-9]+)");
    std::smatch m;
    while (!std::regex_search(log, m, ready)) {
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) {
        fprintf(stderr, "cairnd did not start:\n%s\n", log.c_str());
        return 1;
      }
      log.append(buf, size_t(n));
    }
    port = uint16_t(std::stoi(m[1]));
  } else {
    port = uint16_t(std::stoi(addr.substr(addr.rfind(':') + 1)));
  }

  int fd = Handshake(port);
  std::string resp;
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestFrame(fbb, 2, wire::Request::CreateCollection,
                                        wire::CreateCreateCollection(fbb, fbb.CreateString("bench")).Union()));
    Call(fd, fbb, &resp);
  }
  std::string doc, err;
  JsonToDocument(R"({"name": "benchmark user", "email": "user@example.com", "age": 42, "city": "Lyon"})",
                 &doc, &err);
  const int keys = 10000;
  for (int i = 0; i < keys; i += 1) {
    if (!RoundTrip(fd, PutFrame(uint64_t(i), "user" + std::to_string(i), doc), &resp)) return 1;
  }

  // Warm up, then measure.
  Result warm{"warmup", {}};
  Measure(fd, 2000, [](int i) { return PingFrame(uint64_t(i)); }, &warm);
  Result tcp{"tcp ping-pong (68 B)", {}};
  TcpPingPong(count, 68, &tcp);
  Result ping{"cairn ping", {}};
  Measure(fd, count, [](int i) { return PingFrame(uint64_t(i)); }, &ping);
  Result get{"cairn get (1 record)", {}};
  Measure(fd, count, [&](int i) { return GetFrame(uint64_t(i), "user" + std::to_string((i * 7919) % keys)); }, &get);
  Result put{"cairn put (sync, 1 writer)", {}};
  Measure(fd, std::min(count, 5000), [&](int i) { return PutFrame(uint64_t(i), "user" + std::to_string(i % keys), doc); }, &put);

  printf("\n| measurement                  |    count |  mean us |   p50 us |   p99 us | p50/tcp |\n");
  printf("|------------------------------|----------|----------|----------|----------|---------|\n");
  double floor = double(tcp.h.Percentile(0.5)) / 1e3;
  for (const Result* r : {&tcp, &ping, &get, &put}) Print(*r, floor);

  // Group commit: many connections each doing durable single-record puts.
  auto commit_counters = [&](uint64_t* commits, uint64_t* groups) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestFrame(fbb, 3, wire::Request::GetStats,
                                        wire::CreateGetStats(fbb).Union()));
    auto r = Call(fd, fbb, &resp);
    for (auto c : *r->reply_as_Stats()->counters()) {
      if (c->name()->str() == "commits") *commits = c->value();
      if (c->name()->str() == "group_commits") *groups = c->value();
    }
  };
  uint64_t commits0 = 0, groups0 = 0;
  commit_counters(&commits0, &groups0);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  Histogram write_latency;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; w++) {
    threads.emplace_back([&, w] {
      int c = Handshake(port);
      std::string r;
      for (uint64_t i = 0; !stop; i++) {
        auto t0 = Clock::now();
        if (!RoundTrip(c, PutFrame(i, "w" + std::to_string(w) + "-" + std::to_string(i % 1000), doc), &r)) break;
        write_latency.Record(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
        done++;
      }
      close(c);
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  uint64_t commits = 0, groups = 0;
  commit_counters(&commits, &groups);
  commits -= commits0;
  groups -= groups0;
  printf("\n%d writers, durable puts for %d s: %.0f writes/s, p50 %.0f us, p99 %.0f us\n", writers,
         seconds, double(done) / seconds, double(write_latency.Percentile(0.5)) / 1e3,
         double(write_latency.Percentile(0.99)) / 1e3);
  printf("group commit: %llu commits in %llu LMDB commits, mean batch %.1f\n",
         (unsigned long long)commits, (unsigned long long)groups,
         groups ? double(commits) / double(groups) : 0.0);
  close(fd);
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    std::filesystem::remove_all(data);
  }
  return 0;
}
