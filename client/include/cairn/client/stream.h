// libcairn's streams (protocol 5): a Watcher follows the changes of the server's
// commits; a SnapshotReader copies a hot, consistent snapshot of its database (what
// `cairn backup` writes into a backup file). Included by client.h.
//
//   cairn::client::Watcher w = db->Watch({.collection = "orders", .from = resume_at});
//   for (;;) {
//     cairn::client::WatchBatch b = w.Next();        // or co_await w.AsyncNext(asio::use_awaitable)
//     for (const cairn::client::Change& c : b.changes) Apply(c);
//     Save(b.through + 1);                           // where to resume
//   }
//
// Each stream has a connection of its own (a stream takes its connection over: the
// server sends nothing else on it), opened by the Client::Watch or Client::Snapshot
// call and closed by Close() or the destructor. Streams do not reconnect by themselves
// (below); the Client's pooled calls are not affected by them.
//
// Errors: like the other calls, cairn::client::Error (synchronous forms throw it;
// asynchronous ones deliver it through the completion). An error ends the stream: every
// later call fails with the same error.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "cairn/client/detail/call.h"
#include "cairn/client/document.h"
#include "cairn/client/error.h"
#include "cairn/client/types.h"

namespace cairn::client {

class Client;

namespace detail {
class WatchState;
class SnapshotState;
}  // namespace detail

// --- Watch.

struct WatchOptions {
  // The collection whose changes to follow; empty: every collection, catalog changes
  // (collections and indexes created and dropped) included. A collection that does not
  // exist yet may be watched: its changes appear once it is created.
  std::string collection{};
  // Only records whose key starts with these bytes (catalog changes are not filtered).
  std::string prefix{};
  // The first commit to deliver; 0: the commits made from now on. A commit the server's
  // change log no longer holds fails with kLogTruncated (Error::log_first: the oldest
  // one it still holds).
  uint64_t from = 0;
  // The server sends a heartbeat every few seconds while nothing changes: a watcher that
  // hears nothing at all for this long (while it reads) fails with kTimeout.
  std::chrono::milliseconds idle_timeout{30000};
};

// One change of one commit.
struct Change {
  enum class Kind : uint8_t {  // the wire's numbers (WatchChange.kind)
    kPut = 0,
    kDelete = 1,
    kCreateCollection = 2,
    kDropCollection = 3,
    kCreateIndex = 4,
    kDropIndex = 5,
    // A newer server may send kinds this library does not know: they are passed on
    // with their number (ChangeKindName says "unknown").
  };
  uint64_t commit = 0;
  std::string collection{};
  Kind kind = Kind::kPut;
  std::string key{};                        // kPut, kDelete: the record's key
  ValueKind value_kind = ValueKind::kDocument;
  std::string value{};                      // kPut: the new value (FlexBuffers map or raw bytes)
  std::optional<IndexSpec> index{};         // kCreateIndex: the spec; kDropIndex: the name only
  uint64_t time_ms = 0;                     // when the commit was made (ms since 1970, the primary's clock)

  // A copy of a put's value as a Document. REQUIRES: kind == kPut and value_kind ==
  // kDocument (throws kBadRequest if the value is not a FlexBuffers map).
  Document document() const { return Document::FromBytes(value); }
};

// "put", "delete", "create_collection", "drop_collection", "create_index", "drop_index",
// or "unknown".
std::string_view ChangeKindName(Change::Kind kind);

// What Watcher::Next returns: the changes of whole commits, in commit order, and how far
// the stream has come. Every commit <= `through` has been delivered, including commits
// with nothing for this watcher; resume with WatchOptions::from = through + 1 and
// nothing is repeated or skipped. Every change here has commit <= through (a commit whose
// changes the server splits over several frames is held back until it is whole). A
// batch may be empty: the server's heartbeat, or commits with nothing for this watcher,
// moved `through` on.
struct WatchBatch {
  std::vector<Change> changes{};
  uint64_t through = 0;
};

// Follows the server's commits from WatchOptions::from on (Client::Watch). A movable
// handle; it keeps its Client alive. Next/AsyncNext may be called by one caller at a time
// (a call made while another waits fails with kBadRequest). Memory is bounded: what the
// caller has not taken yet is read ahead up to a few MiB, then the connection is not
// read, and the server pauses the stream (TCP flow control).
//
// A watcher does not reconnect by itself: the caller knows where it stopped (the last
// batch's through + 1) and whether that position is durable on its side, which the
// library cannot know; a reconnect inside the library would either repeat changes or
// skip them. After a failure (kConnectionFailed, kTimeout, a restarted server), watch
// again with `from = through + 1`.
class Watcher {
 public:
  Watcher() = default;
  Watcher(Watcher&&) noexcept = default;
  Watcher& operator=(Watcher&& other) noexcept;
  ~Watcher();  // Close()

  // The next batch: completes once the stream has moved on (at least one change, or a
  // heartbeat that advanced `through`), with everything ready by then. Completion
  // signature void(std::exception_ptr, WatchBatch): a callback, asio::use_future or
  // asio::use_awaitable; the handler runs on its associated executor (by default the
  // client's IO thread). Throws kBadRequest at once on a watcher that is not open.
  template <typename Token>
  auto AsyncNext(Token&& token) {
    return detail::InitiateStream<WatchBatch>(
        Executor(), [s = state_](auto completion) { NextBatch(s, std::move(completion)); },
        std::forward<Token>(token));
  }
  // The same, waiting (not from the client's IO thread).
  WatchBatch Next();

  // Ends the stream and closes its connection; a call waiting fails with
  // kConnectionFailed ("the watcher is closed"). Idempotent; also on a moved-from watcher.
  void Close();
  bool is_open() const { return state_ != nullptr; }
  // The last `through` delivered (from - 1 before the first batch; 0 if from was 0).
  uint64_t through() const;

 private:
  friend class Client;
  Watcher(std::shared_ptr<Client> client, std::shared_ptr<detail::WatchState> state)
      : client_(std::move(client)), state_(std::move(state)) {}
  asio::any_io_executor Executor() const;
  static void NextBatch(const std::shared_ptr<detail::WatchState>& state,
                        std::unique_ptr<detail::Completion<WatchBatch>> completion);

  std::shared_ptr<Client> client_;
  std::shared_ptr<detail::WatchState> state_;
};

// --- Snapshot.

struct SnapshotOptions {
  // A snapshot that makes no progress (no byte from the server while reading) for this
  // long fails with kTimeout.
  std::chrono::milliseconds idle_timeout{30000};
};

// One epoch of the server's history (docs/protocol.md, "Epochs"): commits from
// first_commit on were made by the primary of this epoch.
struct EpochStart {
  uint64_t epoch = 0;
  uint64_t id = 0;
  uint64_t first_commit = 0;
  bool operator==(const EpochStart&) const = default;
};

// The first part of a snapshot: what it holds.
struct SnapshotBegin {
  uint64_t commit = 0;   // the last commit the snapshot holds
  uint32_t format = 0;   // 1: a compacted LMDB data file (docs/protocol.md, "Snapshot")
  std::vector<EpochStart> history{};
};
// The bytes at `offset`, checked against their checksum and for their place: each
// chunk starts where the previous one ended.
struct SnapshotChunk {
  uint64_t offset = 0;
  std::string data{};
  uint64_t checksum = 0;  // XXH3-64 of data seeded with offset (as the server sent it)
};
// The last part, delivered only once `size` and `checksum` matched every byte delivered.
struct SnapshotEnd {
  uint64_t size = 0;
  uint64_t checksum = 0;  // XXH3-64 of all the bytes
};
using SnapshotPart = std::variant<SnapshotBegin, SnapshotChunk, SnapshotEnd>;

// Reads a snapshot of the server's database (Client::Snapshot): one SnapshotBegin, the
// SnapshotChunks in order, one SnapshotEnd; after that, Next fails with kBadRequest
// ("the snapshot is complete"). Anything out of place fails the reader, never yields a
// short copy: a chunk whose checksum does not match, a gap or overlap, an end whose size
// or checksum disagrees with the bytes, a part out of order (kProtocol); a connection
// that ends before SnapshotEnd (kConnectionFailed). The server paces the stream to the
// reader: chunks are read ahead up to a few MiB, no more. A movable handle; it keeps its
// Client alive. One caller at a time.
class SnapshotReader {
 public:
  SnapshotReader() = default;
  SnapshotReader(SnapshotReader&&) noexcept = default;
  SnapshotReader& operator=(SnapshotReader&& other) noexcept;
  ~SnapshotReader();  // Close()

  // Completion signature void(std::exception_ptr, SnapshotPart).
  template <typename Token>
  auto AsyncNext(Token&& token) {
    return detail::InitiateStream<SnapshotPart>(
        Executor(), [s = state_](auto completion) { NextPart(s, std::move(completion)); },
        std::forward<Token>(token));
  }
  SnapshotPart Next();

  void Close();
  bool is_open() const { return state_ != nullptr; }
  bool complete() const;   // SnapshotEnd was delivered
  uint64_t bytes() const;  // snapshot bytes delivered so far

 private:
  friend class Client;
  SnapshotReader(std::shared_ptr<Client> client, std::shared_ptr<detail::SnapshotState> state)
      : client_(std::move(client)), state_(std::move(state)) {}
  asio::any_io_executor Executor() const;
  static void NextPart(const std::shared_ptr<detail::SnapshotState>& state,
                       std::unique_ptr<detail::Completion<SnapshotPart>> completion);

  std::shared_ptr<Client> client_;
  std::shared_ptr<detail::SnapshotState> state_;
};

// --- Digest.

// Client::Digest: the content digest of the server's database at one commit (docs/
// storage.md, "Digest"): two nodes at the same commit have the same digest exactly when
// they hold the same data.
struct DatabaseDigest {
  uint64_t commit = 0;  // the commit the digest was computed at
  uint64_t digest = 0;  // XXH3-64
  uint64_t collections = 0;
  uint64_t records = 0;
  uint64_t index_entries = 0;
};

}  // namespace cairn::client
