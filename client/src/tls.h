// libcairn's TLS: the client context made from ClientOptions, and the stream a
// connection talks over (a plain TCP socket, or TLS over one). Internal to libcairn:
// the public headers do not include <asio/ssl.hpp>.
//
// Threading: a ClientTransport is used on the client's IO thread only (one thread runs
// the client's io_context), which is the strand asio::ssl::stream needs.
//
// The TLS stream lives behind a shared_ptr that every pending operation's handler
// holds: a connection that abandons its socket (Reset, after a failure) may do so with
// operations still queued, and those must find the stream alive when they run.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "cairn/client/types.h"

namespace cairn::client::internal {

// Whether the options ask for TLS: `tls`, or any of its files or its server name.
bool TlsWanted(const ClientOptions& o);
// A client context: TLS 1.2 at least, the server's certificate verified against
// tls_ca (or the system's CAs), the client certificate and key if given. nullptr when
// TlsWanted is false. Throws Error(kBadRequest) naming a file that cannot be used.
std::shared_ptr<asio::ssl::context> MakeClientTlsContext(const ClientOptions& o);

class ClientTransport {
 public:
  using Tcp = asio::ip::tcp;
  using TlsStream = asio::ssl::stream<Tcp::socket>;

  // Plain TCP when `tls` is null.
  ClientTransport(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls);

  bool tls() const { return tls_ != nullptr; }
  Tcp::socket& socket() { return stream_ ? stream_->next_layer() : plain_; }

  // After the TCP connect: the TLS handshake (SNI and the certificate's name checked
  // against `server_name`: RFC 6125, asio::ssl::host_name_verification); at once for
  // plain TCP. `done("")` on success, else done(why): a message for the user that says
  // what failed ("TLS handshake failed: certificate has expired").
  void Handshake(const std::string& server_name, std::function<void(const std::string&)> done);

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& b, Handler&& h) {
    if (stream_) {
      stream_->async_read_some(b, [s = stream_, h = std::forward<Handler>(h)](
                                      const asio::error_code& ec, size_t n) mutable { h(ec, n); });
    } else {
      plain_.async_read_some(b, std::forward<Handler>(h));
    }
  }
  template <typename Buffers, typename Handler>
  void async_write(const Buffers& b, Handler&& h) {
    if (stream_) {
      asio::async_write(*stream_, b, [s = stream_, h = std::forward<Handler>(h)](
                                         const asio::error_code& ec, size_t n) mutable { h(ec, n); });
    } else {
      asio::async_write(plain_, b, std::forward<Handler>(h));
    }
  }

  // A TLS peer's close without close_notify: clean where a plain EOF would be.
  static bool IsTruncation(const asio::error_code& ec) {
    return ec == asio::ssl::error::stream_truncated;
  }

  // Closes the socket (no close_notify: the server takes a TCP close as the end
  // between frames). Pending operations end with an error.
  void Close();
  // Closes, and starts over with a new socket (for the next connect).
  void Reset();

 private:
  asio::io_context& io_;
  std::shared_ptr<asio::ssl::context> tls_;
  Tcp::socket plain_;
  std::shared_ptr<TlsStream> stream_;
};

}  // namespace cairn::client::internal
