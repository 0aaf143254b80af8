// libcairn: the native client of cairnd.
//
//   auto db = cairn::Client::Connect({.address = "127.0.0.1:7420"});
//   db->Put("users", "ada", cairn::Document::FromJson(R"({"email": "ada@x"})"));
//   std::optional<cairn::Record> r = db->Get("users", "ada");
//
// A Client is safe to share between threads. It keeps a small pool of
// connections (ClientOptions::connections) and pipelines many requests on each;
// responses are matched by request id. Calls on one Client may complete in any
// order; a synchronous call returns only once its effect is committed, so calls
// made one after another from one thread take effect in that order.
//
// Errors: every call that fails throws cairn::Error (see error.h); asynchronous
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

#include "cairn/client/document.h"
#include "cairn/common/codes.h"
#include "cairn/client/error.h"

namespace cairn::client {

namespace detail {
// One call in flight: its encoded request, and what to do with the answer (one
// allocation per call, holding the caller's completion handler). Internal to libcairn.
struct Call {
  virtual ~Call() = default;
  // The answer: a response payload or an error. Runs once, on the client's IO thread.
  virtual void Complete(std::exception_ptr e, std::string_view payload) = 0;
  void Finish(std::exception_ptr e, std::string_view payload = {}) {
    if (finished) return;
    finished = true;
    Complete(e, payload);
  }
  void Fail(const Error& e) { Finish(std::make_exception_ptr(e)); }

  std::string frame;
  uint64_t id = 0;
  bool write = false;
  bool resendable = true;  // false: may not be sent again once sent (no idempotency key)
  bool sent = false;       // written to a connection at least once
  std::chrono::steady_clock::time_point deadline;
  int attempts = 0;
  bool finished = false;
  size_t channel = SIZE_MAX;  // else: goes over connection channel % pool size (Client::Channel)
};

template <typename F>
struct CallWith final : Call {
  explicit CallWith(F f) : fn(std::move(f)) {}
  void Complete(std::exception_ptr e, std::string_view payload) override { fn(e, payload, frame); }
  F fn;  // fn(error, response payload, request frame)
};

// decode(payload, request) or decode(payload), whichever the decoder takes.
template <typename Decode>
auto RunDecode(const Decode& decode, std::string_view payload, std::string_view request) {
  if constexpr (std::is_invocable_v<const Decode&, std::string_view, std::string_view>) {
    return decode(payload, request);
  } else {
    return decode(payload);
  }
}
}  // namespace detail

struct ClientOptions {
  std::string address = "127.0.0.1:7420";  // HOST:PORT
  size_t connections = 2;                    // the pool; requests spread over it
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{30000};  // per call, retries included
  int max_attempts = 4;                      // sends per call when connections fail
  std::chrono::milliseconds retry_backoff{50};  // doubled after each failed attempt
  std::string client_name = "libcairn";
};

// One enum each with the engine and the wire (cairn/common/codes.h).
using cairn::IndexState;
using cairn::IndexStateName;
using cairn::ValueKind;

struct Record {
  std::string key;
  uint64_t version = 0;  // the commit that last wrote it
  ValueKind kind = ValueKind::kDocument;
  std::string value;     // FlexBuffers map bytes, or raw bytes

  // REQUIRES: kind == kDocument
  Document document() const { return Document::FromBytes(value); }
};

struct Bound {
  std::string key;  // primary key (scans)
  bool inclusive = true;
};
struct ScalarBound {
  Scalar value;  // index value (queries)
  bool inclusive = true;
};

struct ScanOptions {
  std::optional<Bound> from;  // low end
  std::optional<Bound> to;    // high end
  uint32_t limit = 0;         // in all, across pages; 0: everything
  bool reverse = false;
  uint32_t page_size = 0;     // records per request; 0: the server's choice
};

struct QueryOptions {
  std::vector<Scalar> equal;         // values of the index's first fields
  std::optional<ScalarBound> from;   // range on the next field
  std::optional<ScalarBound> to;
  uint32_t limit = 0;
  bool reverse = false;
  uint32_t page_size = 0;
};

// A transaction: conditions, then operations, all or nothing.
class Txn {
 public:
  Txn& Get(std::string_view collection, std::string_view key);
  Txn& Put(std::string_view collection, std::string_view key, const Document& doc);
  Txn& Insert(std::string_view collection, std::string_view key, const Document& doc);
  Txn& Replace(std::string_view collection, std::string_view key, const Document& doc);
  Txn& PutRaw(std::string_view collection, std::string_view key, std::string_view bytes);
  Txn& Delete(std::string_view collection, std::string_view key);
  // One page of a scan or query (continuation: from a previous page's OpResult).
  Txn& Scan(std::string_view collection, const ScanOptions& o, std::string_view continuation = "");
  Txn& Query(std::string_view collection, std::string_view index, const QueryOptions& o,
             std::string_view continuation = "");
  Txn& Count(std::string_view collection, const ScanOptions& o = {});
  Txn& CountQuery(std::string_view collection, std::string_view index, const QueryOptions& o);

  Txn& IfAbsent(std::string_view collection, std::string_view key);
  Txn& IfPresent(std::string_view collection, std::string_view key);
  Txn& IfVersion(std::string_view collection, std::string_view key, uint64_t version);

  bool writes() const { return writes_; }
  bool empty() const { return ops_.empty(); }

  struct OpSpec;        // defined in the library
  struct ConditionSpec;
  const std::vector<std::shared_ptr<const OpSpec>>& ops() const { return ops_; }
  const std::vector<std::shared_ptr<const ConditionSpec>>& conditions() const { return conds_; }

 private:
  std::vector<std::shared_ptr<const OpSpec>> ops_;
  std::vector<std::shared_ptr<const ConditionSpec>> conds_;
  bool writes_ = false;
};

struct OpResult {
  bool found = false;     // get: exists; put: existed before; delete: existed
  uint64_t version = 0;   // get: its version; put/delete: the transaction's commit
  std::vector<Record> records;
  uint64_t count = 0;
  std::string continuation;  // more to read when not empty
};

struct TxnResult {
  uint64_t commit = 0;  // 0 when nothing was written
  std::vector<OpResult> results;
};

struct IndexSpec {
  std::string name;
  std::vector<std::string> fields;
  bool unique = false;
};
struct IndexInfo {
  IndexSpec spec;
  IndexState state = IndexState::kReady;  // IndexStateName: "building", "ready", "failed"
  std::string error;
};
struct CollectionInfo {
  std::string name;
  uint64_t created = 0;
  std::vector<IndexInfo> indexes;
};

struct ServerStats {
  std::vector<std::pair<std::string, uint64_t>> counters;
  struct Latency {
    std::string name;
    uint64_t count = 0;
    double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  };
  std::vector<Latency> latencies;  // microseconds
  Latency batch_sizes;             // transactions per group commit
  uint64_t last_commit = 0, db_used_bytes = 0, db_file_bytes = 0, db_max_bytes = 0;
  std::string ToJson() const;
};

// What Client::Verify found: every index entry checked against its record and back,
// unique indexes, documents, the change log.
struct VerifyResult {
  bool ok() const { return problems.empty(); }
  std::vector<std::string> problems;  // human-readable; at most a few hundred
  uint64_t records = 0, index_entries = 0, log_entries = 0;
};

class Client;

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
  // Reads through the client (seeing this transaction's own staged writes).
  std::optional<Record> Get(std::string_view collection, std::string_view key);
  void Put(std::string_view collection, std::string_view key, const Document& doc);
  void Delete(std::string_view collection, std::string_view key);
  int attempt() const { return attempt_; }

 private:
  friend class Client;
  explicit OptimisticTxn(Client* c, int attempt) : client_(c), attempt_(attempt) {}
  struct Read {
    std::string collection, key;
    uint64_t version;  // 0: absent
  };
  struct Write {
    std::string collection, key;
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

class Client {
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
  // Catalog changes return their commit number. CreateIndex returns once the index
  // exists: over existing records it is `building` until the server has filled it
  // (DescribeCollection tells; a unique index over duplicates ends `failed`).
  uint64_t CreateCollection(std::string_view name);
  uint64_t DropCollection(std::string_view name);
  std::vector<CollectionInfo> ListCollections();
  CollectionInfo DescribeCollection(std::string_view name);
  uint64_t CreateIndex(std::string_view collection, const IndexSpec& spec);
  uint64_t DropIndex(std::string_view collection, std::string_view index);

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

  // Runs fn(OptimisticTxn&) and commits its writes conditioned on what it read; on a
  // conflict, runs it again (up to options.max_attempts, with backoff). Returns fn's
  // result. Throws cairn::Error (kConditionFailed) when the attempts run out, or
  // whatever fn throws.
  template <typename F>
  auto Transact(F&& fn, const TransactOptions& options = {})
      -> decltype(fn(std::declval<OptimisticTxn&>()));

  // --- Asynchronous calls: completion signature void(std::exception_ptr, T).
  // Spread over the pool's connections; calls may take effect in any order (use a
  // Channel for order).
  template <typename Token>
  auto AsyncCommit(const Txn& txn, Token&& token) {
    return Channel(this, kAnyChannel).AsyncCommit(txn, std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncGet(std::string_view collection, std::string_view key, Token&& token) {
    return Channel(this, kAnyChannel).AsyncGet(collection, key, std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncPut(std::string_view collection, std::string_view key, const Document& doc,
                Token&& token) {
    return Channel(this, kAnyChannel).AsyncPut(collection, key, doc, std::forward<Token>(token));
  }
  template <typename Token>
  auto AsyncPing(Token&& token) {
    return Channel(this, kAnyChannel).AsyncPing(std::forward<Token>(token));
  }

  // An ordered lane of asynchronous calls. The calls made through one channel travel
  // over one connection of the pool (channel i: connection i % connections) in the
  // order they are made, and the server applies a connection's requests in order: so
  // they take effect in that order while pipelined, without waiting for each other (a
  // put and then a get of the same record, both in flight, read what the put wrote).
  // That holds while the connection stays up: if it drops, the calls it carried are
  // sent again after a backoff, and calls made meanwhile may take effect before them.
  // A Channel is a small value; it is valid as long as its Client. (The Client's own
  // Async* calls go through a Channel that is bound to no connection.)
  class Channel {
   public:
    template <typename Token>
    auto AsyncCommit(const Txn& txn, Token&& token) {
      return client_->Initiate<TxnResult>(EncodeTxn(txn), txn.writes(), &DecodeTxnResult,
                                          index_, std::forward<Token>(token));
    }
    template <typename Token>
    auto AsyncGet(std::string_view collection, std::string_view key, Token&& token) {
      return client_->Initiate<std::optional<Record>>(
          EncodeGet(collection, key, client_->protocol()), false, &DecodeGet, index_,
          std::forward<Token>(token));
    }
    template <typename Token>
    auto AsyncPut(std::string_view collection, std::string_view key, const Document& doc,
                  Token&& token) {
      return client_->Initiate<uint64_t>(EncodePut(collection, key, doc), true, &DecodeCommit,
                                         index_, std::forward<Token>(token));
    }
    template <typename Token>
    auto AsyncPing(Token&& token) {
      return client_->Initiate<bool>(EncodePing(), false, &DecodePong, index_,
                                     std::forward<Token>(token));
    }
    size_t index() const { return index_; }

   private:
    friend class Client;
    Channel(Client* client, size_t index) : client_(client), index_(index) {}
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

  // Sends an encoded request (retrying per the options); `call` is completed on the IO
  // thread with the response payload or the error.
  // `channel`: the Channel the call belongs to, or kAnyChannel.
  static constexpr size_t kAnyChannel = SIZE_MAX;
  void Submit(std::shared_ptr<detail::Call> call, std::string request, bool write,
              size_t channel = kAnyChannel);
  template <typename F>
  void Submit(std::string request, bool write, size_t channel, F done) {
    Submit(std::make_shared<detail::CallWith<F>>(std::move(done)), std::move(request), write,
           channel);
  }

  template <typename T, typename Decode, typename Token>
  auto Initiate(std::string request, bool write, Decode decode, size_t channel, Token&& token) {
    return asio::async_initiate<Token, void(std::exception_ptr, T)>(
        [this, decode, channel](auto handler, std::string request, bool write) {
          // The handler's executor counts this call as outstanding work until it completes.
          auto ex = asio::prefer(asio::get_associated_executor(handler, executor()),
                                 asio::execution::outstanding_work.tracked);
          Submit(std::move(request), write, channel,
                 [handler = std::move(handler), ex, decode](
                     std::exception_ptr e, std::string_view payload,
                     std::string_view request) mutable {
                   T value{};
                   if (!e) {
                     try {
                       value = detail::RunDecode(decode, payload, request);
                     } catch (...) {
                       e = std::current_exception();
                     }
                   }
                   // Inline when the handler's executor is the IO thread (the default).
                   asio::dispatch(ex, [h = std::move(handler), e, value = std::move(value)]() mutable {
                     h(e, std::move(value));
                   });
                 });
        },
        token, std::move(request), write);
  }

  // Synchronous form of Initiate: waits for the result or rethrows the error. The promise
  // is completed on the IO thread itself (asio::use_future would hop through another
  // thread pool first).
  // `resendable`: whether the request may be sent again after a lost connection (reads,
  // and writes that carry an idempotency key).
  template <typename T, typename Decode>
  T Call(std::string request, bool write, Decode decode, bool resendable = true) {
    std::promise<T> promise;
    std::future<T> result = promise.get_future();
    auto call = std::make_shared<detail::CallWith<
        std::function<void(std::exception_ptr, std::string_view, std::string_view)>>>(
        [&promise, decode](std::exception_ptr e, std::string_view payload,
                           std::string_view request) {
          if (e) return promise.set_exception(e);
          try {
            promise.set_value(detail::RunDecode(decode, payload, request));
          } catch (...) {
            promise.set_exception(std::current_exception());
          }
        });
    call->resendable = resendable;
    Submit(std::move(call), std::move(request), write);
    return result.get();
  }

  // Wire encoding and decoding (client/src/codec.cc). Requests are framed payloads with
  // a fresh request id.
  static std::string EncodeTxn(const Txn& txn);
  // A point read: a Get request when the server speaks protocol 2 or later, else the
  // same as EncodeTxn of a one-operation Txn (without building the Txn).
  static std::string EncodeGet(std::string_view collection, std::string_view key,
                               uint32_t protocol);
  // The same as EncodeTxn of a one-operation Txn, without building the Txn.
  static std::string EncodePut(std::string_view collection, std::string_view key,
                               const Document& doc);
  static std::string EncodePing();
  static TxnResult DecodeTxnResult(std::string_view payload);
  // `request`: the frame sent (a GetReply does not repeat the key asked for).
  static std::optional<Record> DecodeGet(std::string_view payload, std::string_view request);
  static uint64_t DecodeCommit(std::string_view payload);
  static bool DecodePong(std::string_view payload);

  void Backoff(int attempt, const TransactOptions& options);
  void CommitOptimistic(OptimisticTxn& t);

  friend class RecordStream;
  friend class OptimisticTxn;
  std::unique_ptr<Impl> impl_;
};

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
