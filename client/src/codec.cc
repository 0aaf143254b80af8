// The client's side of the wire: building transactions, encoding requests as
// frames and decoding responses into the library's types.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

#include "cairn/client/detail/requests.h"
#include "cairn/client/types.h"
#include "cairn/protocol/codes.h"
#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "codec.h"

namespace cairn::client {

struct Txn::OpSpec {
  wire::Op type = wire::Op::NONE;
  std::string collection, key, value, index, continuation;
  ValueKind kind = ValueKind::kDocument;
  wire::PutMode mode = wire::PutMode::Upsert;
  ScanOptions scan;
  QueryOptions query;
  bool count_query = false;
};

struct Txn::ConditionSpec {
  wire::ConditionKind kind;
  std::string collection, key;
  uint64_t version = 0;
};

namespace {

std::shared_ptr<Txn::OpSpec> Op(wire::Op type, std::string_view collection, std::string_view key) {
  auto op = std::make_shared<Txn::OpSpec>();
  op->type = type;
  op->collection.assign(collection);
  op->key.assign(key);
  return op;
}

}  // namespace

Txn& Txn::Get(std::string_view collection, std::string_view key) {
  ops_.push_back(Op(wire::Op::Get, collection, key));
  return *this;
}

Txn& Txn::Put(std::string_view collection, std::string_view key, const Document& doc) {
  auto op = Op(wire::Op::Put, collection, key);
  op->value = doc.bytes();
  ops_.push_back(std::move(op));
  writes_ = true;
  return *this;
}

Txn& Txn::Insert(std::string_view collection, std::string_view key, const Document& doc) {
  Put(collection, key, doc);
  std::const_pointer_cast<OpSpec>(ops_.back())->mode = wire::PutMode::Insert;
  return *this;
}

Txn& Txn::Replace(std::string_view collection, std::string_view key, const Document& doc) {
  Put(collection, key, doc);
  std::const_pointer_cast<OpSpec>(ops_.back())->mode = wire::PutMode::Replace;
  return *this;
}

Txn& Txn::PutRaw(std::string_view collection, std::string_view key, std::string_view bytes) {
  auto op = Op(wire::Op::Put, collection, key);
  op->value.assign(bytes);
  op->kind = ValueKind::kRaw;
  ops_.push_back(std::move(op));
  writes_ = true;
  return *this;
}

Txn& Txn::Delete(std::string_view collection, std::string_view key) {
  ops_.push_back(Op(wire::Op::Delete, collection, key));
  writes_ = true;
  return *this;
}

Txn& Txn::Scan(std::string_view collection, const ScanOptions& o, std::string_view continuation) {
  auto op = Op(wire::Op::Scan, collection, "");
  op->scan = o;
  op->continuation.assign(continuation);
  ops_.push_back(std::move(op));
  return *this;
}

Txn& Txn::Query(std::string_view collection, std::string_view index, const QueryOptions& o,
                std::string_view continuation) {
  auto op = Op(wire::Op::Query, collection, "");
  op->index.assign(index);
  op->query = o;
  op->continuation.assign(continuation);
  ops_.push_back(std::move(op));
  return *this;
}

Txn& Txn::Count(std::string_view collection, const ScanOptions& o) {
  auto op = Op(wire::Op::Count, collection, "");
  op->scan = o;
  ops_.push_back(std::move(op));
  return *this;
}

Txn& Txn::CountQuery(std::string_view collection, std::string_view index, const QueryOptions& o) {
  auto op = Op(wire::Op::Count, collection, "");
  op->index.assign(index);
  op->query = o;
  op->count_query = true;
  ops_.push_back(std::move(op));
  return *this;
}

namespace {
std::shared_ptr<Txn::ConditionSpec> Cond(wire::ConditionKind kind, std::string_view collection,
                                         std::string_view key, uint64_t version) {
  auto c = std::make_shared<Txn::ConditionSpec>();
  c->kind = kind;
  c->collection.assign(collection);
  c->key.assign(key);
  c->version = version;
  return c;
}
}  // namespace

Txn& Txn::IfAbsent(std::string_view collection, std::string_view key) {
  conds_.push_back(Cond(wire::ConditionKind::Absent, collection, key, 0));
  return *this;
}
Txn& Txn::IfPresent(std::string_view collection, std::string_view key) {
  conds_.push_back(Cond(wire::ConditionKind::Present, collection, key, 0));
  return *this;
}
Txn& Txn::IfVersion(std::string_view collection, std::string_view key, uint64_t version) {
  conds_.push_back(Cond(wire::ConditionKind::VersionEquals, collection, key, version));
  return *this;
}

// --- Encoding.

namespace codec {

uint64_t NextRequestId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::string Frame(const flatbuffers::FlatBufferBuilder& fbb) {
  std::string f(wire::kFrameHeaderSize, '\0');
  wire::StoreFrameHeader(f.data(), fbb.GetSize());
  f.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  return f;
}

uint64_t FrameId(std::string_view frame) {
  auto f = flatbuffers::GetRoot<wire::RequestFrame>(frame.data() + wire::kFrameHeaderSize);
  return f->id();
}

std::string Request(wire::Request type,
                    const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>& body) {
  thread_local flatbuffers::FlatBufferBuilder fbb;  // reused: no buffer allocation per request
  fbb.Clear();
  auto b = body(fbb);
  fbb.Finish(wire::CreateRequestFrame(fbb, NextRequestId(), type, b));
  return Frame(fbb);
}

const wire::ResponseFrame* Response(std::string_view payload) {
  // Connection::Parse verified the payload before handing it over.
  auto r = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
  if (const wire::Error* e = r->error()) {
    throw Error(wire::FromWire(e->code()), e->message() ? e->message()->str() : "",
                e->condition(), e->operation(), e->log_first());
  }
  return r;
}

}  // namespace codec

namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

Offset<flatbuffers::Vector<uint8_t>> Bytes(FlatBufferBuilder& fbb, std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

Offset<wire::KeyBound> KeyBound(FlatBufferBuilder& fbb, const std::optional<Bound>& b) {
  if (!b) return 0;
  return wire::CreateKeyBound(fbb, Bytes(fbb, b->key), b->inclusive);
}

Offset<wire::ValueBound> ValueBound(FlatBufferBuilder& fbb, const std::optional<ScalarBound>& b) {
  if (!b) return 0;
  return wire::CreateValueBound(fbb, Bytes(fbb, EncodeScalar(b->value)), b->inclusive);
}

Offset<wire::Scan> EncodeScan(FlatBufferBuilder& fbb, const Txn::OpSpec& op) {
  const ScanOptions& o = op.scan;
  uint32_t page = o.page_size;
  if (o.limit && (!page || o.limit < page)) page = o.limit;
  return wire::CreateScan(fbb, fbb.CreateString(op.collection), KeyBound(fbb, o.from),
                          KeyBound(fbb, o.to), page, o.reverse,
                          op.continuation.empty() ? 0 : Bytes(fbb, op.continuation));
}

Offset<wire::Query> EncodeQuery(FlatBufferBuilder& fbb, const Txn::OpSpec& op) {
  const QueryOptions& o = op.query;
  uint32_t page = o.page_size;
  if (o.limit && (!page || o.limit < page)) page = o.limit;
  return wire::CreateQuery(fbb, fbb.CreateString(op.collection), fbb.CreateString(op.index),
                           o.equal.empty() ? 0 : Bytes(fbb, EncodeScalars(o.equal)),
                           ValueBound(fbb, o.from), ValueBound(fbb, o.to), page, o.reverse,
                           op.continuation.empty() ? 0 : Bytes(fbb, op.continuation));
}

// [microseconds since the epoch: u64 BE][random: 8 bytes]. The time first makes keys
// from all clients arrive roughly in order, so the server's key index grows at its end
// (one B+tree page per commit, not one random page per write); the random half makes
// them unique.
std::string IdempotencyKey() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
  std::string k(16, '\0');
  for (int i = 0; i < 8; i++) k[i] = char(us >> (56 - 8 * i));
  uint64_t r = rng();
  std::memcpy(k.data() + 8, &r, 8);
  return k;
}

}  // namespace

namespace codec {

std::string EncodeTxn(const Txn& txn) {
  return codec::Request(wire::Request::Txn, [&](FlatBufferBuilder& fbb) {
    std::vector<Offset<wire::Operation>> ops;
    for (const auto& op : txn.ops()) {
      Offset<void> body;
      switch (op->type) {
        case wire::Op::Get:
          body = wire::CreateGet(fbb, fbb.CreateString(op->collection), Bytes(fbb, op->key)).Union();
          break;
        case wire::Op::Put:
          body = wire::CreatePut(fbb, fbb.CreateString(op->collection), Bytes(fbb, op->key),
                                 Bytes(fbb, op->value), wire::ToWire(op->kind), op->mode)
                     .Union();
          break;
        case wire::Op::Delete:
          body = wire::CreateDelete(fbb, fbb.CreateString(op->collection), Bytes(fbb, op->key))
                     .Union();
          break;
        case wire::Op::Scan:
          body = EncodeScan(fbb, *op).Union();
          break;
        case wire::Op::Query:
          body = EncodeQuery(fbb, *op).Union();
          break;
        case wire::Op::Count:
          body = op->count_query ? wire::CreateCount(fbb, 0, EncodeQuery(fbb, *op)).Union()
                                 : wire::CreateCount(fbb, EncodeScan(fbb, *op)).Union();
          break;
        default:
          break;
      }
      ops.push_back(wire::CreateOperation(fbb, op->type, body));
    }
    std::vector<Offset<wire::Condition>> conds;
    for (const auto& c : txn.conditions()) {
      conds.push_back(wire::CreateCondition(fbb, c->kind, fbb.CreateString(c->collection),
                                            Bytes(fbb, c->key), c->version));
    }
    // Writes carry an idempotency key, so that a retry after a lost connection cannot
    // apply them twice.
    Offset<flatbuffers::Vector<uint8_t>> idem;
    if (txn.writes()) idem = Bytes(fbb, IdempotencyKey());
    return wire::CreateTxn(fbb, conds.empty() ? 0 : fbb.CreateVector(conds), fbb.CreateVector(ops),
                           idem, txn.replicas(), uint32_t(txn.replica_timeout().count()))
        .Union();
  });
}

std::string TxnGet(std::string_view collection, std::string_view key) {
  return Request(wire::Request::Txn, [&](FlatBufferBuilder& fbb) {
    auto get = wire::CreateGet(fbb, fbb.CreateString(collection), Bytes(fbb, key));
    auto op = wire::CreateOperation(fbb, wire::Op::Get, get.Union());
    return wire::CreateTxn(fbb, 0, fbb.CreateVector(&op, 1)).Union();
  });
}

std::optional<std::string> DowngradeGet(std::string_view frame) {
  auto f = flatbuffers::GetRoot<wire::RequestFrame>(frame.data() + wire::kFrameHeaderSize);
  const wire::Get* get = f->request_as_Get();
  if (!get) return std::nullopt;
  std::string_view collection(get->collection() ? get->collection()->c_str() : "",
                              get->collection() ? get->collection()->size() : 0);
  std::string_view key(get->key() ? reinterpret_cast<const char*>(get->key()->data()) : "",
                       get->key() ? get->key()->size() : 0);
  return TxnGet(collection, key);
}

std::string EncodeGet(std::string_view collection, std::string_view key, uint32_t protocol) {
  if (protocol < 2) return TxnGet(collection, key);
  return Request(wire::Request::Get, [&](FlatBufferBuilder& fbb) {
    return wire::CreateGet(fbb, fbb.CreateString(collection), Bytes(fbb, key)).Union();
  });
}

std::string EncodePut(std::string_view collection, std::string_view key, const Document& doc,
                      wire::PutMode mode, std::optional<uint64_t> if_version) {
  return Request(wire::Request::Txn, [&](FlatBufferBuilder& fbb) {
    Offset<flatbuffers::Vector<Offset<wire::Condition>>> conds;
    if (if_version) {
      auto c = wire::CreateCondition(fbb, wire::ConditionKind::VersionEquals,
                                     fbb.CreateString(collection), Bytes(fbb, key), *if_version);
      conds = fbb.CreateVector(&c, 1);
    }
    auto put = wire::CreatePut(fbb, fbb.CreateString(collection), Bytes(fbb, key),
                               Bytes(fbb, doc.bytes()), wire::ValueKind::Document, mode);
    auto op = wire::CreateOperation(fbb, wire::Op::Put, put.Union());
    return wire::CreateTxn(fbb, conds, fbb.CreateVector(&op, 1), Bytes(fbb, IdempotencyKey()))
        .Union();
  });
}

std::string EncodePing() {
  return Request(wire::Request::Ping,
                 [](FlatBufferBuilder& fbb) { return wire::CreatePing(fbb).Union(); });
}

}  // namespace codec

// --- Decoding.

namespace {

std::string Str(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string(reinterpret_cast<const char*>(v->data()), v->size()) : std::string();
}

const wire::TxnReply* TxnReplyOf(std::string_view payload) {
  auto r = codec::Response(payload);
  auto t = r->reply_as_TxnReply();
  if (!t) throw Error(ErrorCode::kProtocol, "expected a TxnReply");
  return t;
}

}  // namespace

namespace codec {

TxnResult DecodeTxnResult(std::string_view payload, std::string_view) {
  auto t = TxnReplyOf(payload);
  TxnResult out;
  out.commit = t->commit();
  out.at = t->at();
  out.replicas = t->replicas();
  out.replica_timeout = t->replica_timeout();
  if (t->results()) {
    for (const wire::OpResult* r : *t->results()) {
      OpResult op;
      op.found = r->found();
      op.version = r->version();
      op.count = r->count();
      op.continuation = Str(r->continuation());
      if (r->records()) {
        for (const wire::Record* rec : *r->records()) {
          op.records.push_back(
              Record{Str(rec->key()), rec->version(), wire::FromWire(rec->kind()), Str(rec->value())});
        }
      }
      out.results.push_back(std::move(op));
    }
  }
  return out;
}

std::optional<Record> DecodeGet(std::string_view payload, std::string_view request) {
  auto resp = codec::Response(payload);
  if (const wire::GetReply* g = resp->reply_as_GetReply()) {
    if (!g->found()) return std::nullopt;
    // The reply does not repeat the key: take it from the request (built by EncodeGet).
    auto req = flatbuffers::GetRoot<wire::RequestFrame>(request.data() + wire::kFrameHeaderSize);
    const wire::Get* get = req->request_as_Get();
    if (!get) throw Error(ErrorCode::kProtocol, "a GetReply to a request that is not a Get");
    return Record{Str(get->key()), g->version(), wire::FromWire(g->kind()), Str(g->value())};
  }
  auto t = TxnReplyOf(payload);
  if (!t->results() || t->results()->size() == 0) return std::nullopt;
  const wire::OpResult* r = t->results()->Get(0);
  if (!r->found() || !r->records() || r->records()->size() == 0) return std::nullopt;
  const wire::Record* rec = r->records()->Get(0);
  return Record{Str(rec->key()), rec->version(), wire::FromWire(rec->kind()), Str(rec->value())};
}

uint64_t DecodeCommit(std::string_view payload, std::string_view) {
  return TxnReplyOf(payload)->commit();
}

bool DecodePong(std::string_view payload, std::string_view) {
  auto r = Response(payload);
  if (!r->reply_as_Pong()) throw Error(ErrorCode::kProtocol, "expected a Pong");
  return true;
}

uint64_t DecodeDone(std::string_view payload, std::string_view) {
  auto r = Response(payload);
  auto d = r->reply_as_Done();
  if (!d) throw Error(ErrorCode::kProtocol, "expected Done");
  return d->commit();
}

}  // namespace codec

namespace {

using codec::DecodeDone;

std::vector<CollectionInfo> DecodeCollections(std::string_view payload, std::string_view) {
  auto r = codec::Response(payload);
  auto c = r->reply_as_Collections();
  if (!c) throw Error(ErrorCode::kProtocol, "expected Collections");
  std::vector<CollectionInfo> out;
  if (!c->collections()) return out;
  for (const wire::CollectionInfo* ci : *c->collections()) {
    CollectionInfo info;
    info.name = ci->name() ? ci->name()->str() : "";
    info.created = ci->created();
    if (ci->indexes()) {
      for (const wire::IndexInfo* ix : *ci->indexes()) {
        IndexInfo ii;
        if (ix->spec()) {
          ii.spec.name = ix->spec()->name() ? ix->spec()->name()->str() : "";
          ii.spec.unique = ix->spec()->unique();
          if (ix->spec()->fields()) {
            for (auto f : *ix->spec()->fields()) ii.spec.fields.push_back(f->str());
          }
        }
        ii.state = wire::FromWire(ix->state());
        ii.error = ix->error() ? ix->error()->str() : "";
        info.indexes.push_back(std::move(ii));
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

CollectionsPage DecodeCollectionsPage(std::string_view payload, std::string_view request) {
  CollectionsPage page;
  page.collections = DecodeCollections(payload, request);
  auto c = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data())->reply_as_Collections();
  if (c->next()) page.next = c->next()->str();
  return page;
}

ServerStats DecodeStats(std::string_view payload, std::string_view) {
  auto r = codec::Response(payload);
  auto s = r->reply_as_Stats();
  if (!s) throw Error(ErrorCode::kProtocol, "expected Stats");
  ServerStats out;
  auto latency = [](const wire::Latency* l) {
    ServerStats::Latency x;
    if (!l) return x;
    x.name = l->op() ? l->op()->str() : "";
    x.count = l->count();
    x.p50 = l->p50_us(), x.p90 = l->p90_us(), x.p99 = l->p99_us(), x.p999 = l->p999_us();
    x.max = l->max_us();
    return x;
  };
  if (s->counters()) {
    for (auto c : *s->counters()) out.counters.emplace_back(c->name()->str(), c->value());
  }
  if (s->latencies()) {
    for (auto l : *s->latencies()) out.latencies.push_back(latency(l));
  }
  out.batch_sizes = latency(s->batch_sizes());
  out.last_commit = s->last_commit();
  out.db_used_bytes = s->db_used_bytes();
  out.db_file_bytes = s->db_file_bytes();
  out.db_max_bytes = s->db_max_bytes();
  return out;
}

std::string NameRequest(wire::Request type, std::string_view name) {
  return codec::Request(type, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto n = fbb.CreateString(name);
    switch (type) {
      case wire::Request::CreateCollection: return wire::CreateCreateCollection(fbb, n).Union();
      case wire::Request::DropCollection: return wire::CreateDropCollection(fbb, n).Union();
      default: return wire::CreateDescribeCollection(fbb, n).Union();
    }
  });
}


VerifyResult DecodeReport(std::string_view payload, std::string_view) {
  auto r = codec::Response(payload)->reply_as_DatabaseReport();
  if (!r) throw Error(ErrorCode::kProtocol, "expected a DatabaseReport");
  VerifyResult v;
  if (r->problems()) {
    for (const flatbuffers::String* p : *r->problems()) v.problems.push_back(p ? p->str() : "");
  }
  v.records = r->records();
  v.index_entries = r->index_entries();
  v.log_entries = r->log_entries();
  return v;
}

DatabaseDigest DecodeDigest(std::string_view payload, std::string_view) {
  auto d = codec::Response(payload)->reply_as_DigestReply();
  if (!d) throw Error(ErrorCode::kProtocol, "expected a DigestReply");
  return {d->commit(), d->digest(), d->collections(), d->records(), d->index_entries()};
}

ReplicasInfo DecodeReplicas(std::string_view payload, std::string_view) {
  auto r = codec::Response(payload)->reply_as_Replicas();
  if (!r) throw Error(ErrorCode::kProtocol, "expected Replicas");
  auto text = [](const flatbuffers::String* t) { return t ? t->str() : std::string(); };
  ReplicasInfo out;
  out.role = text(r->role());
  out.primary = text(r->primary());
  out.error = text(r->error());
  out.last_commit = r->last_commit();
  out.epoch = r->epoch();
  if (r->replicas()) {
    for (const wire::ReplicaInfo* i : *r->replicas()) {
      out.replicas.push_back(ReplicaStatus{text(i->name()), text(i->address()), i->applied(),
                                           i->lag_commits(), i->lag_ms(), i->connected()});
    }
  }
  return out;
}

CollectionInfo DecodeCollection(std::string_view payload, std::string_view request) {
  std::vector<CollectionInfo> v = DecodeCollections(payload, request);
  if (v.empty()) throw Error(ErrorCode::kProtocol, "empty description");
  return std::move(v[0]);
}

// The first operation's result of a TxnReply.
const wire::OpResult* FirstResult(std::string_view payload) {
  auto t = TxnReplyOf(payload);
  if (!t->results() || t->results()->size() == 0) {
    throw Error(ErrorCode::kProtocol, "a TxnReply without the operation's result");
  }
  return t->results()->Get(0);
}

bool DecodeFound(std::string_view payload, std::string_view) {
  return FirstResult(payload)->found();
}

uint64_t DecodeCount(std::string_view payload, std::string_view) {
  return FirstResult(payload)->count();
}

RecordPage DecodePage(std::string_view payload, std::string_view) {
  const wire::OpResult* r = FirstResult(payload);
  RecordPage page;
  page.continuation = Str(r->continuation());
  if (r->records()) {
    page.records.reserve(r->records()->size());
    for (const wire::Record* rec : *r->records()) {
      page.records.push_back(
          Record{Str(rec->key()), rec->version(), wire::FromWire(rec->kind()), Str(rec->value())});
    }
  }
  return page;
}

}  // namespace

// --- The requests behind the calls (cairn/client/detail/requests.h).

namespace detail {

Request<bool> PingRequest() { return {codec::EncodePing(), false, true, &codec::DecodePong}; }

Request<ServerStats> StatsRequest() {
  return {codec::Request(wire::Request::GetStats,
                         [](FlatBufferBuilder& fbb) { return wire::CreateGetStats(fbb).Union(); }),
          false, true, &DecodeStats};
}

Request<VerifyResult> VerifyRequest() {
  return {codec::Request(wire::Request::VerifyDatabase,
                         [](FlatBufferBuilder& fbb) {
                           return wire::CreateVerifyDatabase(fbb).Union();
                         }),
          false, true, &DecodeReport};
}

Request<DatabaseDigest> DigestRequest(uint64_t at, std::chrono::milliseconds wait) {
  uint32_t wait_ms = uint32_t(std::clamp<int64_t>(wait.count(), 0, UINT32_MAX));
  Request<DatabaseDigest> r{codec::Request(wire::Request::Digest,
                                           [&](FlatBufferBuilder& fbb) {
                                             return wire::CreateDigest(fbb, at, wait_ms).Union();
                                           }),
                            false, true, &DecodeDigest};
  r.extra_time = std::chrono::milliseconds(wait_ms);
  return r;
}

Request<ReplicasInfo> ListReplicasRequest() {
  return {codec::Request(wire::Request::ListReplicas,
                         [](FlatBufferBuilder& fbb) { return wire::CreateListReplicas(fbb).Union(); }),
          false, true, &DecodeReplicas};
}

// Not resent after a lost connection: whether it took effect is for the caller to check.
Request<ReplicasInfo> PromoteRequest() {
  return {codec::Request(wire::Request::Promote,
                         [](FlatBufferBuilder& fbb) { return wire::CreatePromote(fbb).Union(); }),
          true, false, &DecodeReplicas};
}

Request<uint64_t> CreateCollectionRequest(std::string_view name) {
  return {NameRequest(wire::Request::CreateCollection, name), true, false, &DecodeDone};
}

Request<uint64_t> DropCollectionRequest(std::string_view name) {
  return {NameRequest(wire::Request::DropCollection, name), true, false, &DecodeDone};
}

Request<CollectionsPage> ListCollectionsRequest(std::string_view after) {
  return {codec::Request(wire::Request::ListCollections,
                         [&](FlatBufferBuilder& fbb) {
                           return wire::CreateListCollections(
                                      fbb, after.empty() ? 0 : fbb.CreateString(after))
                               .Union();
                         }),
          false, true, &DecodeCollectionsPage};
}

Request<CollectionInfo> DescribeCollectionRequest(std::string_view name) {
  return {NameRequest(wire::Request::DescribeCollection, name), false, true, &DecodeCollection};
}

Request<uint64_t> CreateIndexRequest(std::string_view collection, const IndexSpec& spec) {
  return {codec::Request(wire::Request::CreateIndex,
                         [&](FlatBufferBuilder& fbb) {
                           auto s = wire::CreateIndexSpec(fbb, fbb.CreateString(spec.name),
                                                          fbb.CreateVectorOfStrings(spec.fields),
                                                          spec.unique);
                           return wire::CreateCreateIndex(fbb, fbb.CreateString(collection), s)
                               .Union();
                         }),
          true, false, &DecodeDone};
}

Request<uint64_t> DropIndexRequest(std::string_view collection, std::string_view index) {
  return {codec::Request(wire::Request::DropIndex,
                         [&](FlatBufferBuilder& fbb) {
                           return wire::CreateDropIndex(fbb, fbb.CreateString(collection),
                                                        fbb.CreateString(index))
                               .Union();
                         }),
          true, false, &DecodeDone};
}

Request<TxnResult> CommitRequest(const Txn& txn) {
  return {codec::EncodeTxn(txn), txn.writes(), true, &codec::DecodeTxnResult};
}

Request<std::optional<Record>> GetRequest(std::string_view collection, std::string_view key,
                                          uint32_t protocol) {
  return {codec::EncodeGet(collection, key, protocol), false, true, &codec::DecodeGet};
}

Request<uint64_t> PutRequest(std::string_view collection, std::string_view key,
                             const Document& doc, std::optional<uint64_t> if_version) {
  return {codec::EncodePut(collection, key, doc, wire::PutMode::Upsert, if_version), true, true,
          &codec::DecodeCommit};
}

Request<uint64_t> InsertRequest(std::string_view collection, std::string_view key,
                                const Document& doc) {
  return {codec::EncodePut(collection, key, doc, wire::PutMode::Insert), true, true,
          &codec::DecodeCommit};
}

Request<uint64_t> ReplaceRequest(std::string_view collection, std::string_view key,
                                 const Document& doc, std::optional<uint64_t> if_version) {
  return {codec::EncodePut(collection, key, doc, wire::PutMode::Replace, if_version), true, true,
          &codec::DecodeCommit};
}

Request<bool> DeleteRequest(std::string_view collection, std::string_view key,
                            std::optional<uint64_t> if_version) {
  Txn t;
  if (if_version) t.IfVersion(collection, key, *if_version);
  return {codec::EncodeTxn(t.Delete(collection, key)), true, true, &DecodeFound};
}

Request<RecordPage> ScanRequest(std::string_view collection, const ScanOptions& options,
                          std::string_view continuation) {
  return {codec::EncodeTxn(Txn().Scan(collection, options, continuation)), false, true,
          &DecodePage};
}

Request<RecordPage> QueryRequest(std::string_view collection, std::string_view index,
                           const QueryOptions& options, std::string_view continuation) {
  return {codec::EncodeTxn(Txn().Query(collection, index, options, continuation)), false, true,
          &DecodePage};
}

Request<uint64_t> CountRequest(std::string_view collection, const ScanOptions& options) {
  return {codec::EncodeTxn(Txn().Count(collection, options)), false, true, &DecodeCount};
}

Request<uint64_t> CountQueryRequest(std::string_view collection, std::string_view index,
                                    const QueryOptions& options) {
  return {codec::EncodeTxn(Txn().CountQuery(collection, index, options)), false, true,
          &DecodeCount};
}

}  // namespace detail

}  // namespace cairn::client
