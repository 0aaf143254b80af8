// The stream a connection talks over: a plain TCP socket, or TLS over one
// (asio::ssl::stream). It offers what Connection uses of its socket, with the
// socket's names (async_read_some, async_write, set_option, cancel, remote_endpoint,
// get_executor), plus the TLS start (Start: the sniff of the first bytes, then the
// handshake) and a bounded graceful close (Close).
//
// Threading: every operation on one Transport runs on its socket's executor, an
// io_context run by one thread (Server: one io_context per IO thread). That thread
// is the strand an asio::ssl::stream needs: its read, write, handshake and shutdown
// operations share one SSL object and are never run from two threads at once. A
// Transport is not thread-safe; nothing here posts to another executor.
//
// The TLS stream lives behind a shared_ptr so that a shutdown still in progress
// (Close) outlives the connection that started it: its handler and its timer hold
// the stream, not the connection.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <memory>
#include <string>
#include <utility>

namespace cairn::server {

// How long a TLS close waits for the peer's close_notify before it closes the socket.
inline constexpr std::chrono::milliseconds kTlsShutdownTimeout{1500};

class Transport {
 public:
  using Tcp = asio::ip::tcp;
  using TlsStream = asio::ssl::stream<Tcp::socket>;

  // Plain TCP. `tls_refusal`: the framed cairn Error sent to a peer whose first bytes
  // are a TLS ClientHello (empty: none, and no sniffing).
  explicit Transport(Tcp::socket socket, std::string tls_refusal = {})
      : plain_(std::move(socket)), refusal_(std::move(tls_refusal)) {}
  // TLS with `context` (the server's context at accept time: a reload makes new
  // connections use a new one, and this one keeps the one it started with).
  // `plaintext_reply`: the framed cairn Error sent to a peer whose first bytes are a
  // cairn frame rather than a TLS ClientHello (tls.cc).
  Transport(Tcp::socket socket, std::shared_ptr<asio::ssl::context> context,
            std::string plaintext_reply)
      : plain_(socket.get_executor()),
        context_(std::move(context)),
        tls_(std::make_shared<TlsStream>(std::move(socket), *context_)),
        refusal_(std::move(plaintext_reply)) {}
  Transport(Transport&&) = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  bool tls() const { return tls_ != nullptr; }
  // Ready for frames: plain, or TLS once the handshake has succeeded.
  bool established() const { return !tls_ || established_; }

  // Why Start failed (a category of our own; the OpenSSL reason is in the message).
  enum class StartError {
    kPlaintextPeer = 1,  // a cairn frame on the TLS port: answered in plaintext, closing
    kNotTls,             // other bytes that are not a ClientHello: closed
    kHandshake,          // the TLS handshake failed (details: start_failure())
    kTlsPeer,            // a TLS ClientHello on the plaintext port: answered, closing
  };
  static const std::error_category& category();

  // Peeks at the first bytes (MSG_PEEK: nothing is consumed), then calls `done(ec)`.
  // TLS: a ClientHello (0x16 0x03) goes on to the handshake; a cairn frame header gets
  // the plaintext reply and a close (kPlaintextPeer); anything else a close (kNotTls).
  // Plain: a ClientHello gets the TLS refusal and a close (kTlsPeer); anything else is
  // the client's first frame (no error). Bounded by the caller's timer: Close() ends it.
  // `done` must keep the Transport's owner alive.
  void Start(std::function<void(const asio::error_code&)> done);
  // The handshake's failure, for the log ("certificate verify failed: ...").
  const std::string& start_failure() const { return start_failure_; }

  // A verified client certificate's subject: its CN, else its first DNS name, else its
  // first e-mail address (subjectAltName). Empty without one. The authentication layer
  // maps it to the user of that name (docs/security.md, "TLS").
  const std::string& peer_identity() const { return peer_identity_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once established; empty for plain TCP.
  std::string cipher() const;

  // Whether a read error is a TLS peer's close without close_notify (the TCP
  // connection ended, the TLS session did not): clean between frames, a truncation
  // inside one.
  static bool IsTruncation(const asio::error_code& ec) {
    return ec == asio::ssl::error::stream_truncated;
  }

  asio::any_io_executor get_executor() { return plain_.get_executor(); }
  Tcp::socket& lowest_layer() { return tls_ ? tls_->next_layer() : plain_; }
  const Tcp::socket& lowest_layer() const { return tls_ ? tls_->next_layer() : plain_; }

  template <typename Option>
  void set_option(const Option& o, asio::error_code& ec) {
    lowest_layer().set_option(o, ec);
  }
  Tcp::endpoint remote_endpoint(asio::error_code& ec) const {
    return lowest_layer().remote_endpoint(ec);
  }
  // Ends pending reads and writes (operation_aborted).
  void cancel(asio::error_code& ec) { lowest_layer().cancel(ec); }

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& b, Handler&& h) {
    if (tls_) {
      tls_->async_read_some(b, std::forward<Handler>(h));
    } else {
      plain_.async_read_some(b, std::forward<Handler>(h));
    }
  }
  // Writes all of `b` (asio::async_write), then calls h(ec, n).
  template <typename Buffers, typename Handler>
  void async_write(const Buffers& b, Handler&& h) {
    writing_ = true;
    auto done = [this, h = std::forward<Handler>(h)](const asio::error_code& ec,
                                                     size_t n) mutable {
      writing_ = false;
      h(ec, n);
    };
    if (tls_) {
      asio::async_write(*tls_, b, std::move(done));
    } else {
      asio::async_write(plain_, b, std::move(done));
    }
  }

  // Closes. Plain: shutdown and close at once. TLS, established and no write in the
  // middle of a record: sends close_notify and waits for the peer's (or its close) for
  // at most kTlsShutdownTimeout, then closes the socket; pending reads end with
  // operation_aborted first. Otherwise closes at once. Idempotent.
  void Close();

 private:
  void Handshake(std::function<void(const asio::error_code&)> done);
  void OnHandshake(const asio::error_code& ec, std::function<void(const asio::error_code&)> done);
  void Refuse(Tcp::socket& socket);  // sends refusal_ on it (taking it) and closes

  Tcp::socket plain_;  // the socket (plain), or an unused one on the same executor (TLS)
  std::shared_ptr<asio::ssl::context> context_;
  std::shared_ptr<TlsStream> tls_;
  std::string refusal_;
  std::string start_failure_;
  std::string peer_identity_;
  bool established_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool handed_off_ = false;  // the socket went to the plaintext refusal
};

inline asio::error_code make_error_code(Transport::StartError e) {
  return {int(e), Transport::category()};
}

// Sends `frame` (a framed cairn Error), stops sending, and reads and drops what the peer
// sends until it closes or a second passes, then closes: closing with unread data would
// reset the connection and might destroy the error before the peer reads it.
void SendErrorAndClose(asio::ip::tcp::socket socket, std::string frame);

}  // namespace cairn::server
