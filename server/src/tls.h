// cairnd's TLS context (OpenSSL 3 through asio::ssl) and its reload.
//
// TlsContexts builds a server context from the files named by the options (certificate
// chain, key, and for mutual TLS the CA that client certificates must chain to) and
// hands the current one to each accepted connection. Reload() (cairnd runs it on
// SIGHUP) reads the files again into a new context: new connections get it, open ones
// keep the one they started with (a shared_ptr each), and a reload that fails (a
// missing file, a key that does not match its certificate) keeps the old context and
// says why. Thread-safe.
#pragma once

#include <asio/ssl.hpp>
#include <memory>
#include <mutex>
#include <string>

#include "cairn/engine/status.h"
#include "options.h"

namespace cairn::server {

// "none", "optional", "require"; false for anything else.
bool ParseClientAuth(const std::string& s, ClientAuth* out);
const char* ClientAuthName(ClientAuth a);

// Checks the combination of flags: cert and key together; a CA with client auth.
Status CheckTlsOptions(const TlsOptions& o);

// A server context from the files: TLS 1.2 at least (1.3 preferred, as OpenSSL
// negotiates the highest both sides have), forward-secret AEAD ciphers only for 1.2,
// the server's cipher order, no renegotiation, no compression, the key checked
// against the certificate, and the verification of client certificates that
// client_auth asks for.
Result<std::shared_ptr<asio::ssl::context>> MakeServerContext(const TlsOptions& o);

class TlsContexts {
 public:
  explicit TlsContexts(TlsOptions options) : options_(std::move(options)) {}

  // Builds the first context. A failure here is fatal to startup (the caller's).
  Status Load();
  // Builds a new context from the same files; on failure keeps the current one.
  Status Reload();
  // The context for a connection accepted now.
  std::shared_ptr<asio::ssl::context> Current() const;
  const TlsOptions& options() const { return options_; }
  // Successful loads, the first included.
  uint64_t generation() const;

 private:
  const TlsOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<asio::ssl::context> current_;  // guarded by mu_
  uint64_t generation_ = 0;                       // guarded by mu_
};

// The last OpenSSL error on this thread's queue, as text (and clears the queue).
std::string OpenSslError();

}  // namespace cairn::server
