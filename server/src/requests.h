// The request table: one row per request kind, saying everything the connection needs to
// know about it before it runs: since which protocol version it exists, whether it may
// come without its table, whether it may be sent before authentication, where it runs
// (here, on the IO thread; on the writer; on another thread; as a stream), the permission
// it needs, and its handler. Adding a request is adding a row (requests.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

#include "cairn/engine/engine.h"
#include "cairn_generated.h"

namespace cairn::server {

class Connection;
struct ServerContext;

enum class Runs : uint8_t {
  kHere,            // answered on the connection's IO thread, in turn
  kWriter,          // a writer job (catalog changes, user and role changes)
  kWriterIfWrites,  // a Txn: on the writer if it writes, else here
  kAside,           // on another thread (checker, tasks); later requests wait for it
  kStream,          // starts a stream that takes over the connection
};

// Where the permission a row needs applies.
enum class Scope : uint8_t {
  kNone,         // nothing beyond an authenticated user (Ping, Hello, the auth exchange...)
  kServer,       // a server-wide permission
  kCollection,   // the permission on the collection the request names
  kTxn,          // a transaction: read or write on each collection it touches
  kWatch,        // read on each collection watched (every collection: on "*")
  kOwnPassword,  // `users`, or the connection's own user (SetPassword)
};

// A catalog job: the function the writer runs for a catalog request, made from its frame
// (with the request's own validation: a bad request fails here, before the writer).
using CatalogJob = std::function<Status(Engine&)>;

struct RequestRow {
  wire::Request kind;
  uint32_t since;    // the protocol version that introduced it
  bool bare;         // may arrive without its table (no fields to set)
  bool before_auth;  // may be sent before the connection authenticated
  Runs runs;
  Scope scope;
  uint32_t permission;  // a Permission bit (auth.h); for kTxn and kWatch: kPermRead
  // kHere, kAside, kStream, and kWriterIfWrites when the Txn only reads: the handler.
  void (Connection::*handler)(const wire::RequestFrame& f, std::chrono::steady_clock::time_point);
  // kWriter: builds the job (nullptr for Txn, which the connection decodes itself).
  Status (*job)(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
  // Scope::kCollection: the collection the request names.
  std::string_view (*collection)(const wire::RequestFrame& f) = nullptr;
};

// The row of a request kind; nullptr for a kind this server does not know.
const RequestRow* FindRequest(wire::Request kind);
// Whether this request goes to the writer.
bool GoesToWriter(const RequestRow& row, const wire::RequestFrame& f);

struct Principal;
// Whether `user` may send this request (PermissionDenied naming the permission and the
// collection if not). `user` nullptr: the server has no users (everything but the system
// collections is open; protected mode keeps such a server on loopback). A request that
// names a system collection ('$') is refused whoever sends it.
Status CheckAccess(const RequestRow& row, const Principal* user, const wire::RequestFrame& f);

}  // namespace cairn::server
