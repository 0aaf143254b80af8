// cairnd's settings, from its command line (main.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "cairn/engine/options.h"
#include "cairn/protocol/frame.h"

namespace cairn::server {

// TLS (tls.h, docs/security.md "TLS"): on when cert_file is set.
enum class ClientAuth { kNone, kOptional, kRequire };

struct TlsOptions {
  std::string cert_file;  // PEM: the server's certificate, then its chain
  std::string key_file;   // PEM: its private key
  std::string ca_file;    // PEM: CAs that client certificates are checked against
  ClientAuth client_auth = ClientAuth::kNone;
  bool enabled() const { return !cert_file.empty(); }
};

struct ServerOptions {
  std::string data_dir = "./cairn-data";
  std::string listen = "127.0.0.1:7420";  // port 0: any free port (logged when ready)
  unsigned threads = 0;                   // IO threads; 0: one per core
  uint32_t max_connections = 1024;        // more are answered with an error and closed
  uint32_t max_frame = wire::kDefaultMaxFrame;  // largest request or response payload
  uint32_t max_inflight = 128;            // per connection; the server stops reading past it
  // Connections that have not completed the handshake (sent Hello) may hold at most this
  // many of the max_connections; past it a newcomer takes the place of the oldest. 0: half.
  uint32_t max_handshaking = 0;
  std::chrono::seconds idle_timeout{300};  // connections without a complete frame this long are closed
  std::chrono::seconds hello_timeout{10};  // a connection must send Hello within this of connecting
  std::chrono::seconds frame_timeout{30};  // a frame must arrive whole within this of its first byte
  std::chrono::seconds shutdown_grace{10};  // how long a graceful stop waits for clients
  Options engine;                          // durability, size cap, log retention...
  // VerifyDatabase runs this binary (cairnd itself) as a child: verifier.h.
  std::string verifier_exe = "/proc/self/exe";
  std::chrono::milliseconds verify_timeout{std::chrono::minutes(10)};  // then it is killed
  // Replication (docs/replication.md). A replica follows replica_of (HOST:PORT).
  std::string replica_of;
  std::string replica_name;  // how the primary lists this replica; empty: its listen address
  std::string replica_user;  // the primary's user this replica follows it as (auth on there)
  // A follower that went away still holds the change log this long (within
  // Options::replica_log_keep); then it bootstraps again if it comes back.
  std::chrono::seconds replica_keep{3600};
  // A Txn with `replicas` but no replica_timeout_ms waits at most this long.
  std::chrono::milliseconds replica_timeout{5000};
  TlsOptions tls;
  // Protected mode (docs/security.md, "Safe defaults"): a server without users is open to
  // whoever connects, so it only listens on loopback unless this is set (--insecure).
  bool insecure = false;
};

}  // namespace cairn::server
