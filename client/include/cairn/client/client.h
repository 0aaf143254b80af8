// libcairn: the native client of cairnd.
//
//   auto db = cairn::client::Client::Connect({.address = "127.0.0.1:7420"});
//   db->Put("users", "ada", cairn::client::Document::FromJson(R"({"email": "ada@x"})"));
//   std::optional<cairn::client::Record> r = db->Get("users", "ada");
//
// A Client is safe to share between threads. It keeps a small pool of
// connections (ClientOptions::connections) and pipelines many requests on each;
// responses are matched by request id. Calls on one Client may complete in any
// order; a synchronous call returns only once its effect is committed, so calls
// made one after another from one thread take effect in that order.
//
// Errors: every call that fails throws cairn::client::Error (see error.h); asynchronous
// calls deliver it through their completion. Asynchronous calls follow Asio's
// completion-token model: pass a callback `void(std::exception_ptr, T)`,
// `asio::use_future`, or `asio::use_awaitable`. Handlers run on their associated
// executor, by default the client's own IO thread: do not block there, and do not
// make synchronous calls from it.
//
// Failures: every call has a timeout. A dropped connection is reconnected; calls
// whose outcome is unknown are retried, writes with an idempotency key, so that
// the server applies a write at most once even when it is sent twice.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cairn/client/detail/call.h"
#include "cairn/client/detail/requests.h"
#include "cairn/client/document.h"
#include "cairn/client/error.h"
#include "cairn/client/stream.h"
#include "cairn/client/types.h"

namespace cairn::client {

class Client;
namespace internal {
struct StreamTarget;  // client/src/stream_connection.h
}

// Iterates a scan or query page by page (continuations handled inside). Input
// iterator; each page is fetched synchronously when the previous one is used up.
class RecordStream {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Record;
    using difference_type = std::ptrdiff_t;
    using pointer = const Record*;
    using reference = const Record&;
    iterator() = default;
    explicit iterator(RecordStream* s) : s_(s) {}
    reference operator*() const { return s_->page_[s_->pos_]; }
    pointer operator->() const { return &s_->page_[s_->pos_]; }
    iterator& operator++() {
      s_->Advance();
      return *this;
    }
    void operator++(int) { s_->Advance(); }
    bool operator==(const iterator& o) const { return done() == o.done(); }

   private:
    bool done() const { return !s_ || s_->done_; }
    RecordStream* s_ = nullptr;
  };

  iterator begin() {
    if (!started_) Fetch();
    return iterator(this);
  }
  iterator end() { return iterator(); }

  // Collects everything left.
  std::vector<Record> ToVector();

 private:
  friend class Client;
  RecordStream(Client* c, std::function<Txn(std::string_view)> make, uint32_t limit)
      : client_(c), make_(std::move(make)), limit_(limit) {}
  void Fetch();
  void Advance();

  Client* client_;
  std::function<Txn(std::string_view)> make_;  // builds the request for a continuation
  std::vector<Record> page_;
  size_t pos_ = 0;
  std::string continuation_;
  uint32_t limit_;
  uint64_t returned_ = 0;
  bool started_ = false;
  bool done_ = false;
};

// What the function passed to Client::Transact sees: reads are recorded with their
// versions, writes are staged; commit sends the writes conditioned on those versions.
class OptimisticTxn {
 public:
  // Reads through the client, seeing this transaction's own staged writes; the version
  // read (or the absence) becomes a condition of the commit.
  std::optional<Record> Get(std::string_view collection, std::string_view key);
  // Index and key-range reads through the client (every page; QueryOptions::limit and
  // ScanOptions::limit cap the whole read). Each record returned is recorded like a Get:
  // the commit is conditioned on its version, so the transaction retries if any of them
  // changed. Not protected: records that would newly enter the range (phantoms). These
  // reads do NOT see this transaction's staged writes.
  std::vector<Record> Query(std::string_view collection, std::string_view index,
                            const QueryOptions& options);
  std::vector<Record> Scan(std::string_view collection, const ScanOptions& options = {});

  // Staged; sent at commit, in the order staged, after the conditions. Put writes whether
  // the record exists or not; Insert fails the commit with kAlreadyExists if the record
  // exists at that point (including by a write staged earlier here), Replace with
  // kNotFound if it does not. A record this transaction read is covered by the read's
  // condition first: if it changed meanwhile, the function runs again instead.
  void Put(std::string_view collection, std::string_view key, const Document& doc);
  void Insert(std::string_view collection, std::string_view key, const Document& doc);
  void Replace(std::string_view collection, std::string_view key, const Document& doc);
  void Delete(std::string_view collection, std::string_view key);
  int attempt() const { return attempt_; }

 private:
  friend class Client;
  explicit OptimisticTxn(Client* c, int attempt) : client_(c), attempt_(attempt) {}
  // Records a read; throws kConditionFailed (the function runs again) when the same
  // record was read before at another version.
  void Saw(std::string_view collection, std::string_view key, uint64_t version);
  struct Read {
    std::string collection, key;
    uint64_t version;  // 0: absent
  };
  enum class Mode : uint8_t { kPut, kInsert, kReplace, kDelete };
  struct Write {
    std::string collection, key;
    Mode mode;
    std::optional<Document> doc;  // nullopt: delete
  };
  Client* client_;
  int attempt_;
  std::vector<Read> reads_;
  std::vector<Write> writes_;
};

struct TransactOptions {
  int max_attempts = 100;
  std::chrono::milliseconds backoff{1};       // first retry delay, doubled up to max_backoff
  std::chrono::milliseconds max_backoff{50};  // with random jitter
};

// The asynchronous calls: one for each synchronous call of Client (Transact aside),
// offered by a Client (spread over its connections) and by a Client::Channel (in order,
// on one connection). Completion signature void(std::exception_ptr, T), where T is what
// the synchronous call returns (AsyncPing gives a bool, AsyncScan and AsyncQuery one
// RecordPage): pass a callback,
// asio::use_future or asio::use_awaitable. The error is the cairn::client::Error the
// synchronous call would throw. Arguments are copied into the request before the call
// returns: they need not outlive it.
template <typename Lane>
class AsyncCalls {
 public:
  // bool: always true.
  template <typename Token>
  auto AsyncPing(Token&& token) {
    return Run(detail::PingRequest(), std::forward<Token>(token));
  }
  // ServerStats.
  template <typename Token>
  auto AsyncStats(Token&& token) {
    return Run(detail::StatsRequest(), std::forward<Token>(token));
  }
  // VerifyResult (Client::Verify; a server that speaks protocol 3 or later, else the
  // server refuses it).
  template <typename Token>
  auto AsyncVerify(Token&& token) {
    return Run(detail::VerifyRequest(), std::forward<Token>(token));
  }
  // DatabaseDigest (Client::Digest; protocol 5).
  template <typename Token>
  auto AsyncDigest(uint64_t at, std::chrono::milliseconds wait, Token&& token) {
    return Run(detail::DigestRequest(at, wait), std::forward<Token>(token));
  }

  // Catalog changes: uint64_t, the change's commit. Like the synchronous calls, they are
  // never sent twice (see docs/client.md).
  template <typename Token>
  auto AsyncCreateCollection(std::string_view name, Token&& token) {
    return Run(detail::CreateCollectionRequest(name), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncDropCollection(std::string_view name, Token&& token) {
    return Run(detail::DropCollectionRequest(name), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncCreateIndex(std::string_view collection, const IndexSpec& spec, Token&& token) {
    return Run(detail::CreateIndexRequest(collection, spec), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncDropIndex(std::string_view collection, std::string_view index, Token&& token) {
    return Run(detail::DropIndexRequest(collection, index), std::forward<Token>(token));
  }
  // CollectionsPage: one page of the list, from `after` (a previous page's `next`; empty:
  // the first). Older servers send the whole list in one page.
  template <typename Token>
  auto AsyncListCollections(std::string_view after, Token&& token) {
    return Run(detail::ListCollectionsRequest(after), std::forward<Token>(token));
  }
  // CollectionInfo.
  template <typename Token>
  auto AsyncDescribeCollection(std::string_view name, Token&& token) {
    return Run(detail::DescribeCollectionRequest(name), std::forward<Token>(token));
  }

  // Users, roles and permissions (protocol 6; Client::CreateUser...). Changes: uint64_t,
  // the change's commit; like catalog changes they are never sent twice. AsyncCreateUser
  // and AsyncSetPassword derive the credentials (PBKDF2, ClientOptions::scram_iterations
  // rounds) before they return, on the calling thread.
  template <typename Token>
  auto AsyncCreateUser(std::string_view name, std::string_view password,
                       const std::vector<std::string>& roles, Token&& token) {
    return Run(detail::CreateUserRequest(name, password, roles, iterations()),
               std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncDropUser(std::string_view name, Token&& token) {
    return Run(detail::DropUserRequest(name), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncSetPassword(std::string_view name, std::string_view password, Token&& token) {
    return Run(detail::SetPasswordRequest(name, password, iterations()),
               std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncGrantRole(std::string_view user, std::string_view role, Token&& token) {
    return Run(detail::GrantRoleRequest(user, role), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncRevokeRole(std::string_view user, std::string_view role, Token&& token) {
    return Run(detail::RevokeRoleRequest(user, role), std::forward<Token>(token));
  }
  // std::vector<UserInfo>.
  template <typename Token>
  auto AsyncListUsers(Token&& token) {
    return Run(detail::ListUsersRequest(), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncCreateRole(std::string_view name, const std::vector<Grant>& grants, Token&& token) {
    return Run(detail::CreateRoleRequest(name, grants), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncDropRole(std::string_view name, Token&& token) {
    return Run(detail::DropRoleRequest(name), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncGrantPermission(std::string_view role, const Grant& grant, Token&& token) {
    return Run(detail::GrantPermissionRequest(role, grant), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncRevokePermission(std::string_view role, const Grant& grant, Token&& token) {
    return Run(detail::RevokePermissionRequest(role, grant), std::forward<Token>(token));
  }
  // std::vector<RoleInfo>.
  template <typename Token>
  auto AsyncListRoles(Token&& token) {
    return Run(detail::ListRolesRequest(), std::forward<Token>(token));
  }

  // std::optional<Record>: empty when absent.
  template <typename Token>
  auto AsyncGet(std::string_view collection, std::string_view key, Token&& token) {
    return Run(detail::GetRequest(collection, key, lane().protocol()), std::forward<Token>(token));
  }
  // uint64_t: the commit, the record's new version. `if_version`: only if the record is
  // at that version (kConditionFailed otherwise).
  template <typename Token>
  auto AsyncPut(std::string_view collection, std::string_view key, const Document& doc,
                Token&& token) {
    return Run(detail::PutRequest(collection, key, doc, std::nullopt), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncPut(std::string_view collection, std::string_view key, const Document& doc,
                std::optional<uint64_t> if_version, Token&& token) {
    return Run(detail::PutRequest(collection, key, doc, if_version), std::forward<Token>(token));
  }
  // uint64_t: the commit. kAlreadyExists if the record exists.
  template <typename Token>
  auto AsyncInsert(std::string_view collection, std::string_view key, const Document& doc,
                   Token&& token) {
    return Run(detail::InsertRequest(collection, key, doc), std::forward<Token>(token));
  }
  // uint64_t: the commit. kNotFound if the record does not exist.
  template <typename Token>
  auto AsyncReplace(std::string_view collection, std::string_view key, const Document& doc,
                    Token&& token) {
    return Run(detail::ReplaceRequest(collection, key, doc, std::nullopt),
               std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncReplace(std::string_view collection, std::string_view key, const Document& doc,
                    std::optional<uint64_t> if_version, Token&& token) {
    return Run(detail::ReplaceRequest(collection, key, doc, if_version),
               std::forward<Token>(token));
  }
  // bool: whether the record existed.
  template <typename Token>
  auto AsyncDelete(std::string_view collection, std::string_view key, Token&& token) {
    return Run(detail::DeleteRequest(collection, key, std::nullopt), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncDelete(std::string_view collection, std::string_view key,
                   std::optional<uint64_t> if_version, Token&& token) {
    return Run(detail::DeleteRequest(collection, key, if_version), std::forward<Token>(token));
  }

  // RecordPage: ONE page of a scan or query (Scan and Query page inside; these leave the
  // paging to the caller). Pass the page's continuation back for the next one; an empty
  // continuation is the end. The page holds at most options.page_size records (the
  // server's choice if 0) and at most options.limit (if not 0): the limit applies to
  // this page, not to the pages together.
  template <typename Token>
  auto AsyncScan(std::string_view collection, const ScanOptions& options, Token&& token) {
    return Run(detail::ScanRequest(collection, options, ""), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncScan(std::string_view collection, const ScanOptions& options,
                 std::string_view continuation, Token&& token) {
    return Run(detail::ScanRequest(collection, options, continuation),
               std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncQuery(std::string_view collection, std::string_view index,
                  const QueryOptions& options, Token&& token) {
    return Run(detail::QueryRequest(collection, index, options, ""), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncQuery(std::string_view collection, std::string_view index,
                  const QueryOptions& options, std::string_view continuation, Token&& token) {
    return Run(detail::QueryRequest(collection, index, options, continuation),
               std::forward<Token>(token));
  }
  // uint64_t: the records a scan (or a query of an index) would return.
  template <typename Token>
  auto AsyncCount(std::string_view collection, Token&& token) {
    return Run(detail::CountRequest(collection, {}), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncCount(std::string_view collection, const ScanOptions& options, Token&& token) {
    return Run(detail::CountRequest(collection, options), std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncCountQuery(std::string_view collection, std::string_view index,
                       const QueryOptions& options, Token&& token) {
    return Run(detail::CountQueryRequest(collection, index, options), std::forward<Token>(token));
  }

  // TxnResult: a transaction (Client::Commit).
  template <typename Token>
  auto AsyncCommit(const Txn& txn, Token&& token) {
    return Run(detail::CommitRequest(txn), std::forward<Token>(token));
  }

 private:
  Client& lane() { return static_cast<Lane*>(this)->lane_client(); }
  uint32_t iterations();  // lane().options().scram_iterations (Client is incomplete here)
  template <typename T, typename Token>
  auto Run(detail::Request<T> request, Token&& token) {
    return detail::Initiate<T>(lane(), std::move(request), static_cast<Lane*>(this)->lane_index(),
                               std::forward<Token>(token));
  }
};

// A Client is always held by a shared_ptr (Connect): the streams it opens (Watch,
// Snapshot) keep it alive.
class Client : public AsyncCalls<Client>, public std::enable_shared_from_this<Client> {
 public:
  // Connects the pool (at least one connection must come up). Throws cairn::Error.
  static std::shared_ptr<Client> Connect(const ClientOptions& options);
  ~Client();  // closes connections; pending calls fail with kConnectionFailed

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // --- Synchronous calls (throw cairn::Error).
  void Ping();
  ServerStats Stats();
  // Checks the server's database for consistency (protocol 3). Reads all of it: as
  // slow as the database is large; the call's timeout applies.
  VerifyResult Verify();
  // Replication (protocol 5; docs/replication.md). ListReplicas: this node's role and the
  // followers it serves. Promote: makes a replica a primary with a new epoch (kBadRequest
  // on a primary).
  ReplicasInfo ListReplicas();
  ReplicasInfo Promote();
  // Catalog changes return their commit number. CreateIndex returns once the index
  // exists: over existing records it is `building` until the server has filled it
  // (DescribeCollection tells; a unique index over duplicates ends `failed`).
  uint64_t CreateCollection(std::string_view name);
  uint64_t DropCollection(std::string_view name);
  std::vector<CollectionInfo> ListCollections();
  CollectionInfo DescribeCollection(std::string_view name);
  uint64_t CreateIndex(std::string_view collection, const IndexSpec& spec);
  uint64_t DropIndex(std::string_view collection, std::string_view index);

  // Users, roles and permissions (protocol 6; docs/security.md): each needs the server
  // permission `users` (a user may always change its own password), and a server with no
  // users takes the first CreateUser from loopback only. Changes return their commit and,
  // like catalog changes, are never sent twice (after a lost connection, check with
  // ListUsers / ListRoles). A server older than protocol 6: kBadRequest, unsent.
  //
  // CreateUser and SetPassword derive the credentials the server stores (a fresh salt,
  // ClientOptions::scram_iterations PBKDF2 rounds: a few ms of this thread) and send only
  // them: the password never leaves this process. An empty password is kBadRequest.
  // Unknown roles, users that exist already, names that are not 1 to 64 of letters,
  // digits, '_', '-', '.', '@': the server's errors (kNotFound, kAlreadyExists,
  // kBadRequest), naming the culprit. SetPassword of this client's own user does not
  // change ClientOptions::password: connections it opens later would fail to
  // authenticate; connect a new Client with the new password.
  uint64_t CreateUser(std::string_view name, std::string_view password,
                      const std::vector<std::string>& roles = {});
  uint64_t DropUser(std::string_view name);  // also closes the user's connections
  uint64_t SetPassword(std::string_view name, std::string_view password);
  uint64_t GrantRole(std::string_view user, std::string_view role);
  uint64_t RevokeRole(std::string_view user, std::string_view role);
  std::vector<UserInfo> ListUsers();
  uint64_t CreateRole(std::string_view name, const std::vector<Grant>& grants = {});
  uint64_t DropRole(std::string_view name);  // refused while a user holds it
  uint64_t GrantPermission(std::string_view role, const Grant& grant);
  uint64_t RevokePermission(std::string_view role, const Grant& grant);
  std::vector<RoleInfo> ListRoles();

  std::optional<Record> Get(std::string_view collection, std::string_view key);
  // Each returns the commit number, which is the record's new version. `if_version`:
  // only if the record is at that version (kConditionFailed otherwise).
  uint64_t Put(std::string_view collection, std::string_view key, const Document& doc,
               std::optional<uint64_t> if_version = std::nullopt);
  uint64_t Insert(std::string_view collection, std::string_view key, const Document& doc);
  uint64_t Replace(std::string_view collection, std::string_view key, const Document& doc,
                   std::optional<uint64_t> if_version = std::nullopt);
  // Whether the record existed.
  bool Delete(std::string_view collection, std::string_view key,
              std::optional<uint64_t> if_version = std::nullopt);

  RecordStream Scan(std::string_view collection, const ScanOptions& options = {});
  RecordStream Query(std::string_view collection, std::string_view index,
                     const QueryOptions& options);
  uint64_t Count(std::string_view collection, const ScanOptions& options = {});
  uint64_t CountQuery(std::string_view collection, std::string_view index,
                      const QueryOptions& options);

  TxnResult Commit(const Txn& txn);

  // The content digest of the server's database (protocol 5; docs/storage.md,
  // "Digest"): at its last commit, or, with `at`, at that commit: the server waits up to
  // `wait` to reach it (a replica catching up) and fails with kUnavailable if it has not
  // by then, kConditionFailed if it is already past it (a digest is of the state the
  // database is in, read in one snapshot). Reads the whole database: as slow as it is
  // large; the call's timeout applies, on top of `wait`.
  DatabaseDigest Digest(uint64_t at = 0, std::chrono::milliseconds wait = {});

  // --- Streams (stream.h; protocol 5): each on a connection of its own, outside the
  // pool. Both return at once: the connection comes up in the background, and a failure
  // to connect is the first Next's error.

  // Follows the changes of the server's commits from options.from on.
  Watcher Watch(const WatchOptions& options = {});
  // A hot, consistent, compacted copy of the server's database (what a backup holds).
  SnapshotReader Snapshot(const SnapshotOptions& options = {});

  // Runs fn(OptimisticTxn&) and commits its writes conditioned on what it read; on a
  // conflict, runs it again (up to options.max_attempts, with backoff). Returns fn's
  // result. Throws cairn::Error (kConditionFailed) when the attempts run out, or
  // whatever fn throws.
  template <typename F>
  auto Transact(F&& fn, const TransactOptions& options = {})
      -> decltype(fn(std::declval<OptimisticTxn&>()));

  // --- Asynchronous calls: the Async* members of AsyncCalls<Client> (above), spread over
  // the pool's connections; calls may take effect in any order (use a Channel for order).

  // An ordered lane of asynchronous calls. The calls made through one channel travel
  // over one connection of the pool (channel i: connection i % connections) in the
  // order they are made, and the server applies a connection's requests in order: so
  // they take effect in that order while pipelined, without waiting for each other (a
  // put and then a get of the same record, both in flight, read what the put wrote).
  // That holds while the connection stays up: if it drops, the calls it carried are
  // sent again after a backoff, and calls made meanwhile may take effect before them.
  // A Channel is a small value; it is valid as long as its Client. It offers the same
  // Async* calls as the Client (AsyncCalls<Channel>).
  class Channel : public AsyncCalls<Channel> {
   public:
    size_t index() const { return index_; }

   private:
    friend class Client;
    friend class AsyncCalls<Channel>;
    Channel(Client* client, size_t index) : client_(client), index_(index) {}
    Client& lane_client() const { return *client_; }
    size_t lane_index() const { return index_; }
    Client* client_;
    size_t index_;
  };
  // REQUIRES: index < SIZE_MAX
  Channel channel(size_t index) { return Channel(this, index); }

  // The executor handlers run on by default (the client's IO thread).
  asio::any_io_executor executor() const;

  const ClientOptions& options() const;
  // The protocol version the server agreed to in the handshake (wire::kProtocolVersion
  // at most).
  uint32_t protocol() const;

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);

  friend class AsyncCalls<Client>;
  Client& lane_client() { return *this; }
  static size_t lane_index() { return detail::kAnyChannel; }

  friend void detail::Submit(Client& client, std::shared_ptr<detail::Call> call, size_t channel);

  internal::StreamTarget Target() const;  // where its streams connect
  void Backoff(int attempt, const TransactOptions& options);
  void CommitOptimistic(OptimisticTxn& t);

  friend class RecordStream;
  friend class OptimisticTxn;
  std::unique_ptr<Impl> impl_;
};

template <typename Lane>
uint32_t AsyncCalls<Lane>::iterations() {
  return lane().options().scram_iterations;
}

template <typename F>
auto Client::Transact(F&& fn, const TransactOptions& options)
    -> decltype(fn(std::declval<OptimisticTxn&>())) {
  for (int attempt = 1;; attempt++) {
    OptimisticTxn t(this, attempt);
    try {
      if constexpr (std::is_void_v<decltype(fn(t))>) {
        fn(t);
        CommitOptimistic(t);
        return;
      } else {
        auto result = fn(t);
        CommitOptimistic(t);
        return result;
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kConditionFailed || attempt >= options.max_attempts) {
        if (e.code() == ErrorCode::kConditionFailed) {
          throw Error(ErrorCode::kConditionFailed,
                      "gave up after " + std::to_string(attempt) +
                          " attempts: other writers kept changing what the transaction read");
        }
        throw;
      }
    }
    Backoff(attempt, options);
  }
}

}  // namespace cairn::client
