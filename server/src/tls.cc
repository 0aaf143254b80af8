#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <array>
#include <functional>

#include "cairn/protocol/frame.h"
#include "transport.h"

namespace cairn::server {

// --- Settings and contexts.

bool ParseClientAuth(const std::string& s, ClientAuth* out) {
  if (s == "none") *out = ClientAuth::kNone;
  else if (s == "optional") *out = ClientAuth::kOptional;
  else if (s == "require") *out = ClientAuth::kRequire;
  else return false;
  return true;
}

const char* ClientAuthName(ClientAuth a) {
  switch (a) {
    case ClientAuth::kNone: return "none";
    case ClientAuth::kOptional: return "optional";
    case ClientAuth::kRequire: return "require";
  }
  return "?";
}

Status CheckTlsOptions(const TlsOptions& o) {
  if (o.cert_file.empty() != o.key_file.empty()) {
    return Status(Code::kBadRequest, "--tls-cert and --tls-key go together");
  }
  if (!o.enabled() && (!o.ca_file.empty() || o.client_auth != ClientAuth::kNone)) {
    return Status(Code::kBadRequest, "--tls-ca and --tls-client-auth need --tls-cert and --tls-key");
  }
  if (o.client_auth != ClientAuth::kNone && o.ca_file.empty()) {
    return Status(Code::kBadRequest,
                  "--tls-client-auth " + std::string(ClientAuthName(o.client_auth)) +
                      " needs --tls-ca, the CA that client certificates are checked against");
  }
  return Status::Ok();
}

std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

namespace {

// TLS 1.2's suites: ephemeral ECDH key exchange (forward secrecy) and AEAD ciphers only.
// TLS 1.3's are all AEAD and forward-secret. The server's order decides: ChaCha20-Poly1305
// first, then AES-128-GCM (both as strong as needed; with OpenSSL 3.0 on the machine of
// docs/benchmarks.md "TLS", ChaCha20 ran at 1.8 times AES-128-GCM's rate on 2 KiB
// records), then AES-256-GCM.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr const char* kTls13Suites =
    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

Status Fail(const std::string& what, const std::string& file, const asio::error_code& ec) {
  ERR_clear_error();
  return Status(Code::kBadRequest, what + " " + file + ": " + ec.message());
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> MakeServerContext(const TlsOptions& o) {
  ERR_clear_error();
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(c, kTls13Suites) != 1) {
    return Status(Code::kInternal, "cannot configure TLS: " + OpenSslError());
  }
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  asio::error_code ec;
  ctx->use_certificate_chain_file(o.cert_file, ec);
  if (ec) return Fail("cannot load the certificate", o.cert_file, ec);
  ctx->use_private_key_file(o.key_file, asio::ssl::context::pem, ec);
  if (ec) return Fail("cannot load the private key", o.key_file, ec);
  if (SSL_CTX_check_private_key(c) != 1) {
    ERR_clear_error();
    return Status(Code::kBadRequest,
                  "the private key " + o.key_file + " does not match the certificate " + o.cert_file);
  }
  if (!o.ca_file.empty()) {
    ctx->load_verify_file(o.ca_file, ec);
    if (ec) return Fail("cannot load the client CA", o.ca_file, ec);
    // The CAs named in the CertificateRequest, so that a client with several
    // certificates can pick one that chains to them.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(c, names);
    }
  }
  static const unsigned char kSessionContext[] = "cairnd";
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);
  switch (o.client_auth) {
    case ClientAuth::kNone:
      ctx->set_verify_mode(asio::ssl::verify_none);
      break;
    case ClientAuth::kOptional:
      ctx->set_verify_mode(asio::ssl::verify_peer);
      break;
    case ClientAuth::kRequire:
      ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
      break;
  }
  ERR_clear_error();
  return ctx;
}

Status TlsContexts::Load() { return Reload(); }

Status TlsContexts::Reload() {
  auto ctx = MakeServerContext(options_);
  if (!ctx.ok()) return ctx.status();
  std::lock_guard lock(mu_);
  current_ = std::move(ctx).value();
  generation_++;
  return Status::Ok();
}

std::shared_ptr<asio::ssl::context> TlsContexts::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

uint64_t TlsContexts::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

// --- Transport.

namespace {

class StartCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "cairn.tls"; }
  std::string message(int e) const override {
    switch (Transport::StartError(e)) {
      case Transport::StartError::kPlaintextPeer:
        return "a plaintext cairn client on the TLS port";
      case Transport::StartError::kNotTls:
        return "the first bytes are not a TLS ClientHello";
      case Transport::StartError::kHandshake:
        return "TLS handshake failed";
      case Transport::StartError::kTlsPeer:
        return "a TLS client on the plaintext port";
    }
    return "TLS start failed";
  }
};

// The subject a verified certificate names: CN, else the first DNS name, else the first
// e-mail address of its subjectAltName.
std::string Identity(X509* cert) {
  std::string out;
  X509_NAME* subject = X509_get_subject_name(cert);
  int i = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (i >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n > 0) out.assign(reinterpret_cast<char*>(utf8), size_t(n));
    OPENSSL_free(utf8);
    if (!out.empty()) return out;
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  std::string dns, email;
  for (int k = 0; k < sk_GENERAL_NAME_num(names); k++) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, k);
    if ((g->type == GEN_DNS || g->type == GEN_EMAIL) && g->d.ia5) {
      std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.ia5)),
                    size_t(ASN1_STRING_length(g->d.ia5)));
      if (g->type == GEN_DNS && dns.empty()) dns = v;
      if (g->type == GEN_EMAIL && email.empty()) email = v;
    }
  }
  GENERAL_NAMES_free(names);
  return !dns.empty() ? dns : email;
}

}  // namespace

const std::error_category& Transport::category() {
  static const StartCategory c;
  return c;
}

void Transport::Start(std::function<void(const asio::error_code&)> done) {
  if (!tls_ && refusal_.empty()) {
    asio::post(plain_.get_executor(), [done = std::move(done)] { done({}); });
    return;
  }
  // Nothing is consumed: the handshake (or the connection) reads the bytes itself.
  auto s = tls_;  // kept alive while the wait is pending
  lowest_layer().async_wait(
      Tcp::socket::wait_read, [this, s, done = std::move(done)](const asio::error_code& ec) mutable {
        if (ec || closed_) return done(ec ? ec : asio::error::operation_aborted);
        std::array<unsigned char, 4> b{};
        asio::error_code pec;
        size_t n = lowest_layer().receive(asio::buffer(b), Tcp::socket::message_peek, pec);
        if (pec || n == 0) return done(pec ? pec : asio::error::eof);
        // A TLS record of the handshake type (0x16) of TLS major version 3.
        bool hello = b[0] == 0x16 && (n < 2 || b[1] == 0x03);
        if (!tls_) {
          // Strictly a ClientHello here: a trickled cairn frame of 22 bytes starts 0x16 too.
          if (!hello || n < 2) return done({});
          Refuse(plain_);
          return done(make_error_code(StartError::kTlsPeer));
        }
        if (hello) return Handshake(std::move(done));
        uint32_t len = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 |
                       uint32_t(b[3]) << 24;
        // A cairn client's first frame is its Hello: a few dozen bytes.
        if (n == 4 && len > 0 && len <= wire::kMinMaxFrame) {
          Refuse(tls_->next_layer());
          return done(make_error_code(StartError::kPlaintextPeer));
        }
        done(make_error_code(StartError::kNotTls));
      });
}

void Transport::Refuse(Tcp::socket& socket) {
  handed_off_ = true;
  SendErrorAndClose(std::move(socket), std::move(refusal_));
}

void Transport::Handshake(std::function<void(const asio::error_code&)> done) {
  auto s = tls_;
  s->async_handshake(asio::ssl::stream_base::server,
                     [this, s, done = std::move(done)](const asio::error_code& ec) mutable {
                       OnHandshake(ec, std::move(done));
                     });
}

void Transport::OnHandshake(const asio::error_code& ec,
                            std::function<void(const asio::error_code&)> done) {
  SSL* ssl = tls_->native_handle();
  if (ec || closed_) {
    if (!ec) return done(asio::error::operation_aborted);
    start_failure_ = ec.message();
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      start_failure_ += std::string(" (client certificate: ") +
                        X509_verify_cert_error_string(verify) + ")";
    }
    ERR_clear_error();
    return done(ec);
  }
  established_ = true;
  if (X509* cert = SSL_get0_peer_certificate(ssl); cert && SSL_get_verify_result(ssl) == X509_V_OK) {
    peer_identity_ = Identity(cert);
  }
  done({});
}

std::string Transport::cipher() const {
  if (!tls_ || !established_) return {};
  SSL* ssl = tls_->native_handle();
  return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

void Transport::Close() {
  if (closed_) return;
  closed_ = true;
  if (handed_off_) return;
  asio::error_code ignored;
  if (!tls_) {
    plain_.shutdown(Tcp::socket::shutdown_both, ignored);
    plain_.close(ignored);
    return;
  }
  auto s = tls_;
  // Before the handshake there is no session to close; in the middle of a record there
  // is no clean way to end it.
  if (!established_ || writing_) {
    s->next_layer().close(ignored);
    return;
  }
  s->next_layer().cancel(ignored);  // a pending read ends (its handler is queued first)
  auto timer = std::make_shared<asio::steady_timer>(get_executor(), kTlsShutdownTimeout);
  asio::post(get_executor(), [s, timer] {
    // A peer that never answers close_notify: the socket is closed at the timeout,
    // which ends the shutdown.
    timer->async_wait([s](const asio::error_code& ec) {
      asio::error_code ignored;
      if (!ec) s->next_layer().close(ignored);
    });
    s->async_shutdown([s, timer](const asio::error_code&) {
      timer->cancel();
      asio::error_code ignored;
      s->next_layer().close(ignored);
    });
  });
}

void SendErrorAndClose(asio::ip::tcp::socket socket, std::string frame) {
  auto sock = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
  auto bytes = std::make_shared<std::string>(std::move(frame));
  asio::async_write(*sock, asio::buffer(*bytes), [sock, bytes](const asio::error_code& ec, size_t) {
    asio::error_code ignored;
    if (ec) return sock->close(ignored);
    sock->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    auto timer = std::make_shared<asio::steady_timer>(sock->get_executor(), std::chrono::seconds(1));
    timer->async_wait([sock](const asio::error_code&) {
      asio::error_code ignored;
      sock->close(ignored);
    });
    auto buf = std::make_shared<std::array<char, 512>>();
    auto drain = std::make_shared<std::function<void(const asio::error_code&, size_t)>>();
    *drain = [sock, timer, buf, drain](const asio::error_code& ec, size_t) {
      if (ec) {
        timer->cancel();
        asio::error_code ignored;
        sock->close(ignored);
        *drain = nullptr;  // breaks the cycle through the captured `drain`
        return;
      }
      sock->async_read_some(asio::buffer(*buf), *drain);
    };
    sock->async_read_some(asio::buffer(*buf), *drain);
  });
}

}  // namespace cairn::server
