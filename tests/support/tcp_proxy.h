// A small TCP proxy for tests, on loopback: accepts on an ephemeral port and forwards each
// connection to a target port, both ways, on one thread (poll). It can cut every
// connection now (CutAll), or each new one once it has carried a number of bytes from the
// target (CutAfter): a connection severed mid-snapshot or mid-stream.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cairn::testing {

class TcpProxy {
 public:
  explicit TcpProxy(uint16_t target) : target_(target) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      throw std::runtime_error("proxy: cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~TcpProxy() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (Pair& p : pairs_) Close(p);
    ::close(listen_fd_);
  }

  uint16_t port() const { return port_; }
  // Closes every connection open now (both sides).
  void CutAll() { cut_all_ = true; }
  // Each connection accepted from now on is cut once `bytes` have come from the target
  // (0: never).
  void CutAfter(uint64_t bytes) { cut_after_ = bytes; }
  uint64_t cuts() const { return cuts_; }
  uint64_t accepted() const { return accepted_; }

 private:
  struct Pair {
    int client = -1, server = -1;
    uint64_t down = 0;       // bytes from the target so far
    uint64_t cut_after = 0;  // as set when accepted
  };

  static void Close(Pair& p) {
    if (p.client >= 0) ::close(p.client);
    if (p.server >= 0) ::close(p.server);
    p.client = p.server = -1;
  }

  int ConnectTarget() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(target_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // Moves what is readable from `from` to `to` (blocking write: loopback, small).
  static bool Forward(int from, int to, uint64_t* counted) {
    char buf[64 << 10];
    ssize_t n = ::recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::send(to, buf + off, size_t(n - off), MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += w;
    }
    if (counted) *counted += uint64_t(n);
    return true;
  }

  void Run() {
    while (!stop_) {
      if (cut_all_.exchange(false)) {
        for (Pair& p : pairs_) {
          if (p.client >= 0) cuts_++;
          Close(p);
        }
      }
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (Pair& p : pairs_) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.server, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) < 0) continue;
      if (fds[0].revents & POLLIN) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          int s = ConnectTarget();
          if (s < 0) {
            ::close(c);
          } else {
            accepted_++;
            pairs_.push_back(Pair{c, s, 0, cut_after_.load()});
          }
        }
      }
      for (size_t i = 0; i < pairs_.size() && 1 + 2 * i + 1 < fds.size(); i++) {
        Pair& p = pairs_[i];
        bool ok = true;
        if (fds[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)) ok = Forward(p.client, p.server, nullptr);
        if (ok && (fds[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR))) {
          ok = Forward(p.server, p.client, &p.down);
        }
        if (ok && p.cut_after != 0 && p.down >= p.cut_after) {
          ok = false;
          cuts_++;
        }
        if (!ok) Close(p);
      }
      std::erase_if(pairs_, [](const Pair& p) { return p.client < 0; });
    }
  }

  const uint16_t target_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<Pair> pairs_;  // the proxy thread's
  std::atomic<bool> stop_{false}, cut_all_{false};
  std::atomic<uint64_t> cut_after_{0}, cuts_{0}, accepted_{0};
  std::thread thread_;
};

}  // namespace cairn::testing
