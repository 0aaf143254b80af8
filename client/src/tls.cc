#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cairn/client/error.h"

namespace cairn::client::internal {

bool TlsWanted(const ClientOptions& o) {
  return o.tls || !o.tls_ca.empty() || !o.tls_cert.empty() || !o.tls_key.empty() ||
         !o.tls_server_name.empty();
}

std::shared_ptr<asio::ssl::context> MakeClientTlsContext(const ClientOptions& o) {
  if (!TlsWanted(o)) return nullptr;
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    throw Error(ErrorCode::kBadRequest, "a TLS client certificate needs its key: set both "
                                        "tls_cert and tls_key (--tls-cert, --tls-key)");
  }
  ERR_clear_error();
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  auto fail = [](const std::string& what, const std::string& file, const asio::error_code& ec) {
    ERR_clear_error();
    return Error(ErrorCode::kBadRequest, what + " " + file + ": " + ec.message());
  };
  asio::error_code ec;
  if (!o.tls_ca.empty()) {
    ctx->load_verify_file(o.tls_ca, ec);
    if (ec) throw fail("cannot load the TLS CA file", o.tls_ca, ec);
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) throw fail("cannot load the system's CA certificates", "", ec);
  }
  if (!o.tls_cert.empty()) {
    ctx->use_certificate_chain_file(o.tls_cert, ec);
    if (ec) throw fail("cannot load the TLS client certificate", o.tls_cert, ec);
    ctx->use_private_key_file(o.tls_key, asio::ssl::context::pem, ec);
    if (ec) throw fail("cannot load the TLS client key", o.tls_key, ec);
    if (SSL_CTX_check_private_key(c) != 1) {
      ERR_clear_error();
      throw Error(ErrorCode::kBadRequest, "the TLS client key " + o.tls_key +
                                              " does not match the certificate " + o.tls_cert);
    }
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

ClientTransport::ClientTransport(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls)
    : io_(io), tls_(std::move(tls)), plain_(io) {
  if (tls_) stream_ = std::make_shared<TlsStream>(io_, *tls_);
}

void ClientTransport::Close() {
  asio::error_code ignored;
  socket().close(ignored);
}

void ClientTransport::Reset() {
  Close();
  if (tls_) {
    stream_ = std::make_shared<TlsStream>(io_, *tls_);  // the old one lives in its handlers
  } else {
    plain_ = Tcp::socket(io_);
  }
}

namespace {

// Why the server's certificate was refused, as far as the verify callback saw it.
struct VerifyNote {
  bool name_mismatch = false;
};

}  // namespace

void ClientTransport::Handshake(const std::string& server_name,
                                std::function<void(const std::string&)> done) {
  if (!stream_) {
    asio::post(io_, [done = std::move(done)] { done(""); });
    return;
  }
  auto s = stream_;
  SSL* ssl = s->native_handle();
  asio::error_code ec;
  bool is_address = (asio::ip::make_address(server_name, ec), !ec);
  // SNI carries host names only (RFC 6066), never an address.
  if (!is_address) SSL_set_tlsext_host_name(ssl, server_name.c_str());
  auto note = std::make_shared<VerifyNote>();
  asio::ssl::host_name_verification check(server_name);
  s->set_verify_callback([check, note](bool preverified, asio::ssl::verify_context& vc) {
    bool ok = check(preverified, vc);
    if (preverified && !ok) note->name_mismatch = true;  // the chain was fine; the name not
    return ok;
  });
  s->async_handshake(
      asio::ssl::stream_base::client,
      [s, note, server_name, done = std::move(done)](const asio::error_code& ec) {
        if (!ec) return done("");
        std::string why = "TLS handshake failed: ";
        long verify = SSL_get_verify_result(s->native_handle());
        if (note->name_mismatch) {
          why += "the server's certificate is not valid for the name '" + server_name +
                 "' (set tls_server_name / --tls-server-name to the name it has)";
        } else if (verify != X509_V_OK) {
          why += std::string("the server's certificate was refused: ") +
                 X509_verify_cert_error_string(verify);
        } else if (ec == asio::error::operation_aborted) {
          why += "cancelled";
        } else {
          why += ec.message() + "; is the server serving TLS?";
        }
        ERR_clear_error();
        done(why);
      });
}

}  // namespace cairn::client::internal
