// A connection that carries one stream (docs/protocol.md, "Streams"): it connects,
// says Hello (protocol 5 at least), sends the stream's one request, then reads the
// server's frames for it until the stream ends. Internal to libcairn (the Watcher and
// the SnapshotReader are built on it, stream.cc).
//
// Everything runs on one io_context's thread (the client's IO thread): the derived
// stream turns frames into parts and hands them to its caller. Reading stops while the
// stream says it holds enough (Pause), so a caller that does not take what arrives
// leaves it in the server (TCP flow control), not in this process's memory.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cairn/client/error.h"
#include "cairn/client/stream.h"
#include "cairn/client/types.h"
#include "tls.h"

namespace cairn::wire {
struct ResponseFrame;
}
namespace cairn::scram {
class Client;
}

namespace cairn::client::internal {

// Where a stream connects, and the thread it runs on.
struct StreamTarget {
  asio::io_context* io = nullptr;
  ClientOptions options;
  std::string host, port;
  std::thread::id io_thread;
  std::shared_ptr<asio::ssl::context> tls;  // the client's TLS context; null: plain TCP
};

// The oldest protocol version that has streams.
inline constexpr uint32_t kStreamProtocol = 5;

class StreamConnection : public std::enable_shared_from_this<StreamConnection> {
 public:
  // `request`: the framed RequestFrame to send after the handshake. `what` names the
  // stream in messages ("watch", "snapshot").
  StreamConnection(const StreamTarget& target, std::string request, std::string what,
                   std::chrono::milliseconds idle_timeout);
  virtual ~StreamConnection();
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  // IO thread: starts connecting.
  void Start();
  // IO thread: ends the stream with `why` (OnEnd is called with it, if it was not over).
  void Close(const Error& why);

  const StreamTarget& target() const { return target_; }
  bool OnIoThread() const { return std::this_thread::get_id() == target_.io_thread; }
  // Runs fn on the IO thread: inline when called there, else posted.
  template <typename F>
  void Run(F fn) {
    if (OnIoThread()) {
      fn();
    } else {
      asio::post(*target_.io, std::move(fn));
    }
  }

 protected:
  // A frame of the stream's request (verified; not an error frame). Throw Error to end
  // the stream with it.
  virtual void OnFrame(const wire::ResponseFrame& frame) = 0;
  // Called once, when the stream is over: `error` is why, or null when the server
  // closed the connection after everything it sent was handled (what that means is the
  // stream's to say). Nothing is read afterwards.
  virtual void OnEnd(std::exception_ptr error) = 0;
  // After the frames of one read were handled (the time to hand parts to the caller).
  virtual void AfterFrames() {}

  // Flow control: no further read until Resume.
  void Pause() { paused_ = true; }
  void Resume();
  bool ended() const { return ended_; }
  // The largest frame payload the server said it sends (from the handshake).
  uint32_t max_frame() const { return max_frame_; }
  const std::string& what() const { return what_; }

 private:
  enum class State : uint8_t { kIdle, kConnecting, kHello, kAuth, kStreaming, kEnded };

  void OnConnected();
  void OnHelloReply(const wire::ResponseFrame& r);
  // SCRAM-SHA-256 when the options name a user (docs/security.md), as the pool's
  // connections do; then the stream's request.
  void OnAuthReply(const wire::ResponseFrame& r);
  void StartStreaming();
  void Send(std::string frame);
  void Read();
  void OnRead(const asio::error_code& ec, size_t n);
  void Parse();
  void Frame(std::string_view payload);
  void End(std::exception_ptr error);
  void Fail(const Error& e) { End(std::make_exception_ptr(e)); }
  void ArmTimer();
  void OnTimer();

  StreamTarget target_;
  std::string request_;
  uint64_t request_id_ = 0;
  uint64_t hello_id_ = 0;
  uint64_t auth_id_ = 0;
  std::unique_ptr<scram::Client> scram_;
  const std::string what_;
  const std::chrono::milliseconds idle_timeout_;

  ClientTransport socket_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer timer_;
  State state_ = State::kIdle;
  bool ended_ = false;
  bool paused_ = false;
  bool reading_ = false;
  bool timer_armed_ = false;
  uint64_t timer_gen_ = 0;  // of the timer's current wait; earlier waits' handlers stand down
  std::chrono::steady_clock::time_point armed_for_;
  std::chrono::steady_clock::time_point deadline_;  // of the connect, or of the read
  uint32_t max_frame_ = 0;

  std::vector<char> in_;
  size_t in_len_ = 0;
};

// The streams (stream.cc): built, and started on the IO thread.
std::shared_ptr<detail::WatchState> StartWatch(const StreamTarget& target, const WatchOptions& o);
std::shared_ptr<detail::SnapshotState> StartSnapshot(const StreamTarget& target,
                                                     const SnapshotOptions& o);

}  // namespace cairn::client::internal
