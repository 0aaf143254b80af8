// Server statistics: requests and operations by kind, latencies, group-commit
// batch sizes, connections and traffic. Updated lock-free from every thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cairn/protocol/histogram.h"

namespace cairn::server {

enum class RequestKind : uint8_t { kHello, kPing, kRead, kWrite, kCatalog, kStats, kVerify, kCount };
std::string_view RequestKindName(RequestKind k);

enum class OpKind : uint8_t { kGet, kPut, kDelete, kScan, kQuery, kCount, kNum };
std::string_view OpKindName(OpKind k);

struct ServerStats {
  std::array<Histogram, size_t(RequestKind::kCount)> latency_ns;  // by request kind
  std::array<std::atomic<uint64_t>, size_t(OpKind::kNum)> ops{};  // by operation kind
  Histogram batch_sizes;                                          // transactions per group commit
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> handshakes_displaced{0};  // closed before Hello to make room for a newcomer
  std::atomic<uint64_t> hello_timeouts{0};        // closed for sending no Hello in time
  std::atomic<uint64_t> frame_timeouts{0};        // closed for not completing a frame in time
  std::atomic<uint64_t> idle_timeouts{0};         // closed for sending no frame for the idle timeout
  std::atomic<uint64_t> internal_errors{0};       // requests whose handling threw (a bug: see the log)
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};       // requests answered with an error
  std::atomic<uint64_t> bad_frames{0};   // frames that did not verify or were malformed
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> backpressure{0};  // times a connection stopped reading at its limits
  std::atomic<uint64_t> watch_streams{0};  // Watch streams started
  std::atomic<uint64_t> streams_open{0};   // streams (of any kind) running now
  std::atomic<uint64_t> snapshot_streams{0};  // Snapshot streams started
  std::atomic<uint64_t> snapshot_bytes{0};    // bytes of snapshots sent whole
  std::atomic<uint64_t> follow_streams{0};    // Follow streams started
  std::atomic<uint64_t> auth_ok{0};            // connections that authenticated
  std::atomic<uint64_t> auth_failures{0};      // exchanges that failed (wrong password, ...)
  std::atomic<uint64_t> auth_required{0};      // requests refused for coming before authentication
  std::atomic<uint64_t> permission_denied{0};  // requests refused for want of a permission
  // TLS (tls.h): handshakes completed and failed, plaintext clients refused on the TLS
  // port, client certificates verified, context reloads done and refused.
  std::atomic<uint64_t> tls_handshakes{0};
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::atomic<uint64_t> tls_plaintext_refused{0};
  std::atomic<uint64_t> tls_client_certs{0};
  std::atomic<uint64_t> tls_reloads{0};
  std::atomic<uint64_t> tls_reload_failures{0};
};

// Counters and summaries that live outside ServerStats (replication: replicas.h,
// follower.h), added to a Stats reply.
struct ExtraStats {
  std::vector<std::pair<std::string, uint64_t>> counters;
  std::vector<std::pair<std::string, const Histogram*>> latencies;  // in microseconds
};

}  // namespace cairn::server
