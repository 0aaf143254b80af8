// A stand-in for cairnd that tests script frame by frame: it listens on a loopback port,
// answers Hello (with the protocol version the test asks for) and Ping by itself, and
// hands every other request to the test's script, which sends whatever frames it wants
// (good ones, damaged ones, none) and returns; the connection is then closed. For tests
// of what a client makes of what a server sends: streams, errors, cuts.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "flatbuffers/flatbuffers.h"

namespace cairn::testing {

// One accepted connection, as the script sees it.
class FakePeer {
 public:
  explicit FakePeer(int fd) : fd_(fd) {}

  // Sends a finished builder as one frame; false once the client has gone.
  bool Send(const flatbuffers::FlatBufferBuilder& fbb) { return SendRaw(Frame(fbb)); }
  bool SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(size_t(n));
    }
    return true;
  }
  // Sends what fits without blocking for long: bytes taken (< size when the client's
  // side is full for `patience`).
  size_t SendSome(std::string_view bytes, std::chrono::milliseconds patience) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, int(patience.count())) <= 0) break;
      ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n <= 0) break;
      sent += size_t(n);
    }
    return sent;
  }
  // Reads one more request frame (false when the connection ended or `timeout` passed).
  bool Read(std::string* payload, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto recv_all = [&](char* p, size_t n) {
      while (n > 0) {
        pollfd pfd{fd_, POLLIN, 0};
        if (poll(&pfd, 1, int(timeout.count())) <= 0) return false;
        ssize_t r = recv(fd_, p, n, 0);
        if (r <= 0) return false;
        p += r;
        n -= size_t(r);
      }
      return true;
    };
    char header[4];
    if (!recv_all(header, 4)) return false;
    uint32_t n;
    std::memcpy(&n, header, 4);
    if (n > (64u << 20)) return false;
    payload->assign(n, '\0');
    return recv_all(payload->data(), n);
  }
  // Whether the client closed its side (within `timeout`).
  bool ClosedByClient(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, int(timeout.count())) <= 0) return false;
    char c;
    return recv(fd_, &c, 1, MSG_PEEK) <= 0;
  }
  int fd() const { return fd_; }

  static std::string Frame(const flatbuffers::FlatBufferBuilder& fbb) {
    std::string f(wire::kFrameHeaderSize, '\0');
    wire::StoreFrameHeader(f.data(), fbb.GetSize());
    f.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    return f;
  }

 private:
  int fd_;
};

class FakeServer {
 public:
  // script(peer, request payload): the request is a verified RequestFrame that is neither
  // Hello nor Ping.
  using Script = std::function<void(FakePeer&, const wire::RequestFrame&)>;

  explicit FakeServer(Script script, uint32_t protocol = wire::kProtocolVersion,
                      uint32_t max_frame = 1 << 20)
      : script_(std::move(script)), protocol_(protocol), max_frame_(max_frame) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 16);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this, fd = fd_] { Accept(fd); });
  }

  ~FakeServer() {
    stopping_ = true;
    StopListening();
    {
      std::lock_guard lock(mu_);
      for (int c : open_) shutdown(c, SHUT_RDWR);  // ends reads and sends under way
    }
    for (auto& t : threads_) t.join();
  }

  // New connections are refused from now on; those open go on.
  void StopListening() {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    fd_ = -1;
    acceptor_.join();
  }

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  bool stopping() const { return stopping_; }
  int connections() const { return connections_; }
  // Requests handed to the script, by kind.
  int requests(wire::Request kind) const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (wire::Request k : seen_) n += k == kind;
    return n;
  }

 private:
  void Accept(int fd) {
    while (true) {
      int c = accept(fd, nullptr, nullptr);
      if (c < 0) return;
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      connections_++;
      std::lock_guard lock(mu_);
      open_.push_back(c);
      threads_.emplace_back([this, c] {
        Serve(c);
        std::lock_guard lock(mu_);
        std::erase(open_, c);
        close(c);
      });
    }
  }

  void Serve(int c) {
    FakePeer peer(c);
    std::string payload;
    while (!stopping_ && peer.Read(&payload, std::chrono::seconds(60))) {
      flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
      if (!v.VerifyBuffer<wire::RequestFrame>(nullptr)) return;
      auto f = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
      flatbuffers::FlatBufferBuilder fbb;
      if (f->request_type() == wire::Request::Hello) {
        auto h = wire::CreateHelloReply(fbb, protocol_, fbb.CreateString("fake cairnd"),
                                        max_frame_, 128, 1 << 20, 507);
        fbb.Finish(wire::CreateResponseFrame(fbb, f->id(), 0, wire::Reply::HelloReply, h.Union()));
        if (!peer.Send(fbb)) return;
      } else if (f->request_type() == wire::Request::Ping) {
        fbb.Finish(wire::CreateResponseFrame(fbb, f->id(), 0, wire::Reply::Pong,
                                             wire::CreatePong(fbb).Union()));
        if (!peer.Send(fbb)) return;
      } else {
        {
          std::lock_guard lock(mu_);
          seen_.push_back(f->request_type());
        }
        script_(peer, *f);
        return;
      }
    }
  }

  Script script_;
  uint32_t protocol_, max_frame_;
  int fd_;
  uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<int> open_;
  std::vector<wire::Request> seen_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace cairn::testing
