// Integration-test support: the real cairnd binary started on an ephemeral
// loopback port in a temporary folder, and a minimal test-only client that
// speaks the wire protocol over a plain blocking socket (so tests can also send
// broken bytes on purpose).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cairn/protocol/frame.h"
#include "cairn/protocol/json.h"
#include "cairn_generated.h"
#include "flatbuffers/flexbuffers.h"
#include "temp_dir.h"

#ifndef CAIRND_PATH
#error "CAIRND_PATH must name the cairnd binary"
#endif

namespace cairn::testing {

// A running cairnd. Stops it (SIGTERM, then SIGKILL after 10 s) when destroyed.
class ServerProcess {
 public:
  // Starts cairnd on 127.0.0.1:0 with `data_dir` and extra flags; waits until it has
  // written the port it bound to its --port-file (in a folder of this object's own).
  explicit ServerProcess(std::string data_dir, std::vector<std::string> flags = {},
                         std::string listen = "127.0.0.1:0")
      : data_dir_(std::move(data_dir)), port_file_(scratch_.Sub("port")) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(out[1], 2);
      close(out[0]);
      close(out[1]);
      // CAIRN_TEST_CAIRND runs the tests against another cairnd (an older build, to see a
      // test fail without the change it covers).
      const char* binary = std::getenv("CAIRN_TEST_CAIRND") ? std::getenv("CAIRN_TEST_CAIRND") : CAIRND_PATH;
      std::vector<std::string> args = {binary,      "--data",    data_dir_, "--listen",
                                       listen,      "--threads", "2",       "--port-file",
                                       port_file_};
      args.insert(args.end(), flags.begin(), flags.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    out_fd_ = out[0];
    // The file appears whole (cairnd renames it into place) once the listener is up. Until
    // then, or until cairnd exits (EOF on its output), keep reading what it prints.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline && port_ == 0) {
      std::ifstream in(port_file_);
      unsigned port = 0;
      if (in >> port && port > 0 && port < 65536) {
        port_ = uint16_t(port);
        break;
      }
      if (!ReadOutput(20)) break;
    }
    // Keep draining its output so that it never blocks on a full pipe.
    reader_ = std::thread([this] {
      while (ReadOutput(100)) {
      }
    });
  }

  ~ServerProcess() { Stop(); }

  uint16_t port() const { return port_; }
  const std::string& port_file() const { return port_file_; }
  pid_t pid() const { return pid_; }
  bool ready() const { return port_ != 0; }

  // Sends `sig` and waits for the exit; returns the wait status.
  int Stop(int sig = SIGTERM, std::chrono::seconds grace = std::chrono::seconds(10)) {
    if (pid_ <= 0) return status_;
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (waitpid(pid_, &status_, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    if (reader_.joinable()) reader_.join();
    close(out_fd_);
    return status_;
  }

  // Whether the server is still running (a crashed, unreaped server counts as dead).
  bool alive() {
    if (pid_ <= 0) return false;
    if (waitpid(pid_, &status_, WNOHANG) == pid_) {
      pid_ = -1;
      if (reader_.joinable()) reader_.join();
      close(out_fd_);
      return false;
    }
    return true;
  }

  // Resident memory of the server, from /proc.
  size_t RssKb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
    }
    return 0;
  }

  std::string output() {
    std::lock_guard lock(mu_);
    return output_;
  }

 private:
  // Appends what the server printed; false at EOF.
  bool ReadOutput(int timeout_ms) {
    pollfd p{out_fd_, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return r == 0;
    char buf[4096];
    ssize_t n = read(out_fd_, buf, sizeof buf);
    if (n <= 0) return false;
    std::lock_guard lock(mu_);
    output_.append(buf, size_t(n));
    return true;
  }

  TempDir scratch_;  // holds the port file
  std::string data_dir_;
  std::string port_file_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int status_ = 0;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::string output_;
  std::thread reader_;
};

// A blocking client socket that speaks frames.
class WireClient {
 public:
  // `source`: the local address to connect from (any of 127.0.0.0/8 is loopback), so that
  // a test can play clients of different addresses; nullptr: the kernel's choice.
  explicit WireClient(uint16_t port, const char* source = nullptr) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (source) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      inet_pton(AF_INET, source, &from.sin_addr);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
        close(fd_);
        fd_ = -1;
        return;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd_);
      fd_ = -1;
    }
    int one = 1;
    if (fd_ >= 0) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~WireClient() { Close(); }
  WireClient(const WireClient&) = delete;
  WireClient& operator=(const WireClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  bool SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(size_t(n));
    }
    return true;
  }

  static std::string Frame(const flatbuffers::FlatBufferBuilder& fbb) {
    std::string f(wire::kFrameHeaderSize, '\0');
    wire::StoreFrameHeader(f.data(), fbb.GetSize());
    f.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    return f;
  }
  bool Send(const flatbuffers::FlatBufferBuilder& fbb) { return SendRaw(Frame(fbb)); }

  // Reads one frame's payload; false on EOF, error or timeout.
  bool Read(std::string* payload, int timeout_ms = 10000) {
    char header[4];
    if (!ReadExactly(header, 4, timeout_ms)) return false;
    uint32_t n;
    std::memcpy(&n, header, 4);
    payload->resize(n);
    return ReadExactly(payload->data(), n, timeout_ms);
  }

  // Reads one response; nullptr (and a test failure) if none arrives or it does not verify.
  // The pointer is valid until the next Read/Response.
  const wire::ResponseFrame* Response(int timeout_ms = 10000) {
    if (!Read(&last_, timeout_ms)) return nullptr;
    EXPECT_TRUE(wire::VerifyResponseFrame(last_)) << "response does not verify";
    return flatbuffers::GetRoot<wire::ResponseFrame>(last_.data());
  }

  // True if the server closed the connection (EOF) within the timeout.
  bool ClosedByPeer(int timeout_ms = 5000) {
    char c;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        ssize_t n = recv(fd_, &c, 1, 0);
        if (n <= 0) return true;
      }
    }
    return false;
  }

  const wire::ResponseFrame* Call(const flatbuffers::FlatBufferBuilder& fbb) {
    if (!Send(fbb)) return nullptr;
    return Response();
  }

 private:
  bool ReadExactly(char* p, size_t n, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (n > 0) {
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                         deadline - std::chrono::steady_clock::now())
                         .count());
      if (left <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, left) <= 0) return false;
      ssize_t r = recv(fd_, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= size_t(r);
    }
    return true;
  }

  int fd_ = -1;
  std::string last_;
};

// --- Request builders. Each returns a builder holding one finished RequestFrame.
namespace req {

using flatbuffers::FlatBufferBuilder;
using Fbb = std::unique_ptr<FlatBufferBuilder>;

inline Fbb Finish(Fbb fbb, uint64_t id, wire::Request type, flatbuffers::Offset<void> body) {
  fbb->Finish(wire::CreateRequestFrame(*fbb, id, type, body));
  return fbb;
}

inline Fbb Hello(uint64_t id = 1, uint32_t version = 1) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto h = wire::CreateHello(*fbb, version, fbb->CreateString("cairn-tests"));
  return Finish(std::move(fbb), id, wire::Request::Hello, h.Union());
}

inline Fbb Ping(uint64_t id, std::string_view payload = "") {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto p = wire::CreatePing(
      *fbb, fbb->CreateVector(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  return Finish(std::move(fbb), id, wire::Request::Ping, p.Union());
}

// A point read outside a transaction (protocol 2). A null `collection` leaves it unset.
inline Fbb Get(uint64_t id, const char* collection, std::string_view key) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto c = collection ? fbb->CreateString(collection) : flatbuffers::Offset<flatbuffers::String>();
  auto k = fbb->CreateVector(reinterpret_cast<const uint8_t*>(key.data()), key.size());
  auto g = wire::CreateGet(*fbb, c, k);
  return Finish(std::move(fbb), id, wire::Request::Get, g.Union());
}

inline Fbb CreateCollection(uint64_t id, std::string_view name) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto c = wire::CreateCreateCollection(*fbb, fbb->CreateString(name));
  return Finish(std::move(fbb), id, wire::Request::CreateCollection, c.Union());
}

inline Fbb DropCollection(uint64_t id, std::string_view name) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto c = wire::CreateDropCollection(*fbb, fbb->CreateString(name));
  return Finish(std::move(fbb), id, wire::Request::DropCollection, c.Union());
}

inline Fbb CreateIndex(uint64_t id, std::string_view coll, std::string_view name,
                       std::vector<std::string> fields, bool unique) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto spec = wire::CreateIndexSpec(*fbb, fbb->CreateString(name),
                                    fbb->CreateVectorOfStrings(fields), unique);
  auto c = wire::CreateCreateIndex(*fbb, fbb->CreateString(coll), spec);
  return Finish(std::move(fbb), id, wire::Request::CreateIndex, c.Union());
}

// ListCollections, from the first collection or (protocol 3) after `after`.
inline Fbb ListCollections(uint64_t id, std::string_view after = "") {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto l = wire::CreateListCollections(*fbb, after.empty() ? 0 : fbb->CreateString(after));
  return Finish(std::move(fbb), id, wire::Request::ListCollections, l.Union());
}

inline Fbb DescribeCollection(uint64_t id, std::string_view name) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto d = wire::CreateDescribeCollection(*fbb, fbb->CreateString(name));
  return Finish(std::move(fbb), id, wire::Request::DescribeCollection, d.Union());
}

inline flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(FlatBufferBuilder& fbb,
                                                              std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// One-operation transactions and a general builder.
class TxnBuilder {
 public:
  TxnBuilder& Get(std::string_view coll, std::string_view key) {
    auto g = wire::CreateGet(fbb_, fbb_.CreateString(coll), Bytes(fbb_, key));
    ops_.push_back(wire::CreateOperation(fbb_, wire::Op::Get, g.Union()));
    return *this;
  }
  TxnBuilder& PutDoc(std::string_view coll, std::string_view key, std::string_view doc,
                     wire::PutMode mode = wire::PutMode::Upsert,
                     wire::ValueKind kind = wire::ValueKind::Document) {
    auto p = wire::CreatePut(fbb_, fbb_.CreateString(coll), Bytes(fbb_, key), Bytes(fbb_, doc),
                             kind, mode);
    ops_.push_back(wire::CreateOperation(fbb_, wire::Op::Put, p.Union()));
    return *this;
  }
  TxnBuilder& Put(std::string_view coll, std::string_view key, std::string_view json,
                  wire::PutMode mode = wire::PutMode::Upsert) {
    return PutDoc(coll, key, Doc(json), mode);
  }
  TxnBuilder& Delete(std::string_view coll, std::string_view key) {
    auto d = wire::CreateDelete(fbb_, fbb_.CreateString(coll), Bytes(fbb_, key));
    ops_.push_back(wire::CreateOperation(fbb_, wire::Op::Delete, d.Union()));
    return *this;
  }
  TxnBuilder& Scan(std::string_view coll, uint32_t limit = 0, std::string_view continuation = "",
                   bool reverse = false) {
    auto s = wire::CreateScan(fbb_, fbb_.CreateString(coll), 0, 0, limit, reverse,
                              continuation.empty() ? 0 : Bytes(fbb_, continuation));
    ops_.push_back(wire::CreateOperation(fbb_, wire::Op::Scan, s.Union()));
    return *this;
  }
  // Equality query; `equal_json` is a JSON array of values.
  TxnBuilder& Query(std::string_view coll, std::string_view index, std::string_view equal_json,
                    uint32_t limit = 0) {
    std::string flex, err;
    EXPECT_TRUE(JsonToFlex(equal_json, &flex, &err)) << err;
    auto q = wire::CreateQuery(fbb_, fbb_.CreateString(coll), fbb_.CreateString(index),
                               Bytes(fbb_, flex), 0, 0, limit);
    ops_.push_back(wire::CreateOperation(fbb_, wire::Op::Query, q.Union()));
    return *this;
  }
  TxnBuilder& CountAll(std::string_view coll) {
    auto s = wire::CreateScan(fbb_, fbb_.CreateString(coll));
    auto c = wire::CreateCount(fbb_, s);
    ops_.push_back(wire::CreateOperation(fbb_, wire::Op::Count, c.Union()));
    return *this;
  }
  TxnBuilder& If(wire::ConditionKind kind, std::string_view coll, std::string_view key,
                 uint64_t version = 0) {
    conds_.push_back(
        wire::CreateCondition(fbb_, kind, fbb_.CreateString(coll), Bytes(fbb_, key), version));
    return *this;
  }
  // A present key, even an empty one (nullopt: no key).
  TxnBuilder& IdempotencyKey(std::optional<std::string> key) {
    key_ = std::move(key);
    return *this;
  }
  const FlatBufferBuilder& Build(uint64_t id) {
    auto t = wire::CreateTxn(fbb_, fbb_.CreateVector(conds_), fbb_.CreateVector(ops_),
                             key_ ? Bytes(fbb_, *key_) : 0);
    fbb_.Finish(wire::CreateRequestFrame(fbb_, id, wire::Request::Txn, t.Union()));
    return fbb_;
  }

 private:
  FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<wire::Operation>> ops_;
  std::vector<flatbuffers::Offset<wire::Condition>> conds_;
  std::optional<std::string> key_;
};

}  // namespace req

// A connected client that has done the handshake, agreeing on `version`.
inline std::unique_ptr<WireClient> Connect(uint16_t port, uint32_t version = 1) {
  auto c = std::make_unique<WireClient>(port);
  EXPECT_TRUE(c->connected());
  auto r = c->Call(*req::Hello(1, version));
  EXPECT_TRUE(r && !r->error() && r->reply_type() == wire::Reply::HelloReply);
  return c;
}

inline std::string ErrorText(const wire::ResponseFrame* r) {
  if (!r) return "no response";
  if (!r->error()) return "ok";
  return std::string(wire::EnumNameErrorCode(r->error()->code())) + ": " +
         (r->error()->message() ? r->error()->message()->str() : "");
}

// The server's counters (GetStats), by name; empty, with a test failure, if it answers
// anything else.
inline std::map<std::string, uint64_t> Counters(WireClient& c) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 999, wire::Request::GetStats,
                                      wire::CreateGetStats(fbb).Union()));
  std::map<std::string, uint64_t> out;
  auto r = c.Call(fbb);
  EXPECT_TRUE(r && r->reply_as_Stats()) << ErrorText(r);
  if (!r || !r->reply_as_Stats()) return out;
  for (auto counter : *r->reply_as_Stats()->counters()) {
    out[counter->name()->str()] = counter->value();
  }
  return out;
}

}  // namespace cairn::testing
