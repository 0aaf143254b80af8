#include "convert.h"

#include <thread>

#include "cairn/engine/document.h"
#include "cairn/protocol/codes.h"
#include "cairn/protocol/flex.h"
#include "flatbuffers/flexbuffers.h"

namespace cairn::server {

using flatbuffers::Offset;

std::string_view RequestKindName(RequestKind k) {
  static constexpr std::string_view kNames[] = {"hello", "ping",    "read",
                                                "write", "catalog", "stats",
                                                "verify"};
  return kNames[size_t(k)];
}

std::string_view OpKindName(OpKind k) {
  static constexpr std::string_view kNames[] = {"get", "put", "delete", "scan", "query", "count"};
  return kNames[size_t(k)];
}

namespace {

Status Bad(std::string message) { return Status(Code::kBadRequest, std::move(message)); }

Status DecodeValue(const flexbuffers::Reference& r, IndexValue* out) {
  switch (r.GetType()) {
    case flexbuffers::FBT_NULL: *out = std::monostate(); return Status::Ok();
    case flexbuffers::FBT_BOOL: *out = r.AsBool(); return Status::Ok();
    case flexbuffers::FBT_INT:
    case flexbuffers::FBT_INDIRECT_INT: *out = r.AsInt64(); return Status::Ok();
    case flexbuffers::FBT_UINT:
    case flexbuffers::FBT_INDIRECT_UINT: *out = r.AsUInt64(); return Status::Ok();
    case flexbuffers::FBT_FLOAT:
    case flexbuffers::FBT_INDIRECT_FLOAT: *out = r.AsDouble(); return Status::Ok();
    case flexbuffers::FBT_KEY: *out = std::string(r.AsKey()); return Status::Ok();
    case flexbuffers::FBT_STRING: {
      auto s = r.AsString();
      *out = std::string(s.c_str(), s.length());
      return Status::Ok();
    }
    case flexbuffers::FBT_BLOB: {
      auto b = r.AsBlob();
      *out = Blob{std::string(reinterpret_cast<const char*>(b.data()), b.size())};
      return Status::Ok();
    }
    default:
      return Bad("index values are null, booleans, numbers, strings or blobs");
  }
}

// A FlexBuffer from the wire, verified before it is read.
Status Flex(const flatbuffers::Vector<uint8_t>* v, flexbuffers::Reference* root) {
  auto data = v->data();
  // The same linear check as documents get; index values nest far less.
  if (Status s = CheckFlexBuffer(View(v), 16); !s.ok()) return Bad("index value is " + s.message());
  *root = flexbuffers::GetRoot(data, v->size());
  return Status::Ok();
}

Status DecodeValueBound(const wire::ValueBound* b, std::optional<ValueBound>* out) {
  if (!b) return Status::Ok();
  if (!b->value()) return Bad("value bound without a value");
  flexbuffers::Reference root;
  if (Status s = Flex(b->value(), &root); !s.ok()) return s;
  ValueBound vb;
  vb.inclusive = b->inclusive();
  if (Status s = DecodeValue(root, &vb.value); !s.ok()) return s;
  *out = std::move(vb);
  return Status::Ok();
}

std::optional<KeyBound> DecodeKeyBound(const wire::KeyBound* b) {
  if (!b) return std::nullopt;
  return KeyBound{View(b->key()), b->inclusive()};
}

Status Collection(const flatbuffers::String* s, std::string_view* out) {
  if (!s) return Bad("missing collection name");
  *out = View(s);
  return Status::Ok();
}

Status DecodeScan(const wire::Scan& s, const RequestLimits& limits, ScanSpec* out) {
  if (Status st = Collection(s.collection(), &out->collection); !st.ok()) return st;
  out->lower = DecodeKeyBound(s.lower());
  out->upper = DecodeKeyBound(s.upper());
  out->limit = s.limit() ? s.limit() : limits.default_scan_limit;
  if (limits.default_scan_limit) out->limit = std::min(out->limit, limits.default_scan_limit);
  out->reverse = s.reverse();
  out->continuation = View(s.continuation());
  return Status::Ok();
}

Status DecodeQuery(const wire::Query& q, const RequestLimits& limits, QuerySpec* out) {
  if (Status st = Collection(q.collection(), &out->collection); !st.ok()) return st;
  if (!q.index()) return Bad("query without an index name");
  out->index = View(q.index());
  if (q.equal()) {
    flexbuffers::Reference root;
    if (Status s = Flex(q.equal(), &root); !s.ok()) return s;
    if (!root.IsVector() && !root.IsTypedVector() && !root.IsFixedTypedVector()) {
      return Bad("query 'equal' is not a vector");
    }
    size_t n = FlexSize(root);
    if (n > 16) return Bad("query 'equal' has more values than an index has fields");
    for (size_t i = 0; i < n; i++) {
      IndexValue v;
      if (Status s = DecodeValue(FlexElement(root, i), &v); !s.ok()) return s;
      out->equal.push_back(std::move(v));
    }
  }
  if (Status s = DecodeValueBound(q.lower(), &out->lower); !s.ok()) return s;
  if (Status s = DecodeValueBound(q.upper(), &out->upper); !s.ok()) return s;
  out->limit = q.limit() ? q.limit() : limits.default_scan_limit;
  if (limits.default_scan_limit) out->limit = std::min(out->limit, limits.default_scan_limit);
  out->reverse = q.reverse();
  out->continuation = View(q.continuation());
  return Status::Ok();
}

Status DecodeOp(const wire::Operation* o, const RequestLimits& limits, Op* out) {
  if (!o) return Bad("null operation");
  // The verifier accepts a union whose type is set and whose table is absent.
  if (o->op_type() != wire::Op::NONE && !o->op()) return Bad("operation without its table");
  switch (o->op_type()) {
    case wire::Op::Get: {
      auto g = o->op_as_Get();
      GetOp op;
      if (Status s = Collection(g->collection(), &op.collection); !s.ok()) return s;
      op.key = View(g->key());
      *out = op;
      return Status::Ok();
    }
    case wire::Op::Put: {
      auto p = o->op_as_Put();
      PutOp op;
      if (Status s = Collection(p->collection(), &op.collection); !s.ok()) return s;
      op.key = View(p->key());
      op.value = View(p->value());
      if (p->kind() > wire::ValueKind::Raw) return Bad("unknown value kind");
      if (p->mode() > wire::PutMode::Replace) return Bad("unknown put mode");
      op.kind = wire::FromWire(p->kind());
      op.mode = PutMode(p->mode());
      *out = op;
      return Status::Ok();
    }
    case wire::Op::Delete: {
      auto d = o->op_as_Delete();
      DeleteOp op;
      if (Status s = Collection(d->collection(), &op.collection); !s.ok()) return s;
      op.key = View(d->key());
      *out = op;
      return Status::Ok();
    }
    case wire::Op::Scan: {
      ScanOp op;
      if (Status s = DecodeScan(*o->op_as_Scan(), limits, &op.spec); !s.ok()) return s;
      *out = std::move(op);
      return Status::Ok();
    }
    case wire::Op::Query: {
      QueryOp op;
      if (Status s = DecodeQuery(*o->op_as_Query(), limits, &op.spec); !s.ok()) return s;
      *out = std::move(op);
      return Status::Ok();
    }
    case wire::Op::Count: {
      auto c = o->op_as_Count();
      if (bool(c->scan()) == bool(c->query())) return Bad("count needs exactly one of scan, query");
      CountOp op;
      RequestLimits no_limit;
      if (c->scan()) {
        ScanSpec spec;
        if (Status s = DecodeScan(*c->scan(), no_limit, &spec); !s.ok()) return s;
        op.range = spec;
      } else {
        QuerySpec spec;
        if (Status s = DecodeQuery(*c->query(), no_limit, &spec); !s.ok()) return s;
        op.range = std::move(spec);
      }
      *out = std::move(op);
      return Status::Ok();
    }
    default:
      return Bad("unknown operation type " + std::to_string(int(o->op_type())));
  }
}

}  // namespace

Status DecodeTxn(const wire::Txn& t, const RequestLimits& limits, Transaction* out) {
  size_t nops = t.ops() ? t.ops()->size() : 0;
  size_t nconds = t.conditions() ? t.conditions()->size() : 0;
  if (nops > limits.max_ops || nconds > limits.max_ops) {
    return Status(Code::kTooLarge, "a transaction holds at most " +
                                       std::to_string(limits.max_ops) +
                                       " operations and as many conditions");
  }
  out->conditions.reserve(nconds);
  for (size_t i = 0; i < nconds; i++) {
    const wire::Condition* c = t.conditions()->Get(i);
    if (!c) return Bad("null condition").AtCondition(i);
    if (c->kind() > wire::ConditionKind::VersionEquals) {
      return Bad("unknown condition kind").AtCondition(i);
    }
    Condition cond;
    cond.kind = Condition::Kind(c->kind());
    if (Status s = Collection(c->collection(), &cond.collection); !s.ok()) {
      return s.AtCondition(i);
    }
    cond.key = View(c->key());
    cond.version = c->version();
    out->conditions.push_back(cond);
  }
  out->ops.resize(nops);
  for (size_t i = 0; i < nops; i++) {
    const wire::Operation* o = t.ops()->Get(i);
    if (Status s = DecodeOp(o, limits, &out->ops[i]); !s.ok()) {
      return s.AtOperation(i, o ? wire::EnumNameOp(o->op_type()) : "null");
    }
  }
  out->max_result_bytes = limits.max_result_bytes;
  if (const auto* key = t.idempotency_key()) {
    // A present but empty key would otherwise read as no key, and a retry carrying it
    // would be applied twice; a key on a read would be remembered for nothing.
    if (key->size() == 0) return Bad("an idempotency key is 1 to 64 bytes, not empty");
    if (out->read_only()) {
      return Bad("an idempotency key on a transaction that writes nothing (no put or delete)");
    }
    out->idempotency_key = View(key);
  }
  return Status::Ok();
}

bool TxnWrites(const wire::Txn& t) {
  if (!t.ops()) return false;
  for (const wire::Operation* o : *t.ops()) {
    if (o && (o->op_type() == wire::Op::Put || o->op_type() == wire::Op::Delete)) return true;
  }
  return false;
}

void CountOps(const Transaction& t, ServerStats* stats) {
  for (const Op& op : t.ops) {
    stats->ops[op.index()].fetch_add(1, std::memory_order_relaxed);
  }
}

Status DecodeIndexSpec(const wire::IndexSpec* spec, IndexSpec* out) {
  if (!spec || !spec->name()) return Bad("missing index spec or name");
  out->name.assign(View(spec->name()));
  out->unique = spec->unique();
  if (spec->fields()) {
    for (const flatbuffers::String* f : *spec->fields()) {
      if (!f) return Bad("null index field");
      out->fields.emplace_back(View(f));
    }
  }
  return Status::Ok();
}

wire::ErrorCode ToWire(Code code, uint32_t protocol) {
  if (code == Code::kUnknownName && protocol < 3) return wire::ErrorCode::NotFound;
  if (code == Code::kCorrupted && protocol < 4) return wire::ErrorCode::Internal;
  if (code == Code::kDiverged && protocol < 5) return wire::ErrorCode::BadRequest;
  // Access control came with protocol 6; an older client on a server with users can only
  // have failed to authenticate.
  if (code == Code::kPermissionDenied && protocol < 6) return wire::ErrorCode::BadRequest;
  if (code == Code::kAuthFailed && protocol < 6) return wire::ErrorCode::BadRequest;
  // The enums share their numbering (cairn/protocol/codes.h checks it).
  return wire::ToWire(code);
}

void BuildError(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const Status& s,
                uint32_t protocol, uint64_t log_first) {
  fbb.Clear();
  auto msg = fbb.CreateString(s.message());
  auto err = wire::CreateError(fbb, ToWire(s.code(), protocol), msg, s.failed_condition(),
                               s.failed_operation(), log_first);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, err));
}

namespace {
Offset<flatbuffers::Vector<uint8_t>> Bytes(flatbuffers::FlatBufferBuilder& fbb,
                                          std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
}  // namespace

void BuildTxnReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const TxnResult& r,
                   uint32_t protocol, uint64_t at, uint8_t replicas, bool replica_timeout) {
  if (!r.status.ok()) return BuildError(fbb, id, r.status, protocol);
  fbb.Clear();
  std::vector<Offset<wire::OpResult>> results;
  results.reserve(r.results.size());
  std::vector<Offset<wire::Record>> records;
  for (const OpResult& op : r.results) {
    Offset<flatbuffers::Vector<Offset<wire::Record>>> recs;
    if (!op.records.empty()) {
      records.clear();
      for (const Record& rec : op.records) {
        auto key = Bytes(fbb, rec.key);
        auto value = Bytes(fbb, rec.value);
        records.push_back(
            wire::CreateRecord(fbb, key, rec.version, wire::ToWire(rec.kind), value));
      }
      recs = fbb.CreateVector(records);
    }
    Offset<flatbuffers::Vector<uint8_t>> cont;
    if (!op.continuation.empty()) cont = Bytes(fbb, op.continuation);
    results.push_back(wire::CreateOpResult(fbb, op.found, op.version, recs, op.count, cont));
  }
  auto vec = fbb.CreateVector(results);
  auto reply =
      wire::CreateTxnReply(fbb, r.commit, vec, at ? at : r.commit, replicas, replica_timeout);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::TxnReply, reply.Union()));
}

bool OnlyGets(const Transaction& t) {
  if (!t.conditions.empty() || t.ops.empty()) return false;
  for (const Op& op : t.ops) {
    if (!std::holds_alternative<GetOp>(op)) return false;
  }
  return true;
}

Status BuildGetsReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, ReadTxn& read,
                      const Transaction& t) {
  fbb.Clear();
  thread_local std::vector<Offset<wire::OpResult>> results;
  results.clear();
  size_t budget = t.max_result_bytes ? t.max_result_bytes : SIZE_MAX;
  for (size_t i = 0; i < t.ops.size(); i++) {
    const GetOp& g = std::get<GetOp>(t.ops[i]);
    RecordView rv;
    bool found = false;
    Status s = read.Get(g.collection, g.key, &rv, &found);
    if (s.ok() && found && rv.key.size() + rv.value.size() > budget) {
      s = Status(Code::kTooLarge,
                 "the results exceed the response limit; split the transaction or page the scan");
    }
    if (!s.ok()) return s.AtOperation(i, "get");
    if (!found) {
      results.push_back(wire::CreateOpResult(fbb));
      continue;
    }
    budget -= rv.key.size() + rv.value.size();
    auto key = Bytes(fbb, rv.key);
    auto value = Bytes(fbb, rv.value);
    auto rec = wire::CreateRecord(fbb, key, rv.version, wire::ToWire(rv.kind), value);
    auto recs = fbb.CreateVector(&rec, 1);
    results.push_back(wire::CreateOpResult(fbb, true, rv.version, recs));
  }
  auto vec = fbb.CreateVector(results);
  auto reply = wire::CreateTxnReply(fbb, 0, vec, read.commit());
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::TxnReply, reply.Union()));
  return Status::Ok();
}

Status BuildGetReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, ReadTxn& read,
                     const wire::Get& get) {
  std::string_view collection;
  if (Status s = Collection(get.collection(), &collection); !s.ok()) return s;
  RecordView rv;
  bool found = false;
  if (Status s = read.Get(collection, View(get.key()), &rv, &found); !s.ok()) return s;
  fbb.Clear();
  Offset<wire::GetReply> reply;
  if (found) {
    // A value is at most max_value bytes, below the frame limit: it always fits.
    reply = wire::CreateGetReply(fbb, true, rv.version, wire::ToWire(rv.kind),
                                 Bytes(fbb, rv.value), read.commit());
  } else {
    reply = wire::CreateGetReply(fbb, false, 0, wire::ValueKind::Document, 0, read.commit());
  }
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::GetReply, reply.Union()));
  return Status::Ok();
}

void BuildDigestReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const DatabaseDigest& d) {
  fbb.Clear();
  auto reply = wire::CreateDigestReply(fbb, d.commit, d.digest, d.collections, d.records,
                                       d.index_entries);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::DigestReply, reply.Union()));
}

Result<DatabaseDigest> DigestAt(Engine& engine, uint64_t at, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (at && engine.LastCommit() < at && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (at && engine.LastCommit() < at) {
    return Status(Code::kUnavailable, "the database is at commit " +
                                          std::to_string(engine.LastCommit()) + "; commit " +
                                          std::to_string(at) + " was not reached within " +
                                          std::to_string(wait.count()) + " ms");
  }
  auto d = engine.Digest();
  if (d.ok() && at && d->commit != at) {
    return Status(Code::kConditionFailed,
                  "the database is at commit " + std::to_string(d->commit) + ", past " +
                      std::to_string(at) + ": a digest is of the current state only (compare "
                      "nodes while writes are paused)");
  }
  return d;
}

void BuildVerifyReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const VerifyReport& r) {
  fbb.Clear();
  auto problems = fbb.CreateVectorOfStrings(r.problems);
  auto reply = wire::CreateDatabaseReport(fbb, problems, r.records, r.index_entries, r.log_entries);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::DatabaseReport, reply.Union()));
}

void BuildDone(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, uint64_t commit) {
  fbb.Clear();
  auto done = wire::CreateDone(fbb, commit);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Done, done.Union()));
}

void BuildCollections(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                      const std::vector<CollectionInfo>& collections, std::string_view next) {
  fbb.Clear();
  std::vector<Offset<wire::CollectionInfo>> infos;
  for (const CollectionInfo& c : collections) {
    std::vector<Offset<wire::IndexInfo>> indexes;
    for (const IndexInfo& ix : c.indexes) {
      auto spec = wire::CreateIndexSpec(fbb, fbb.CreateString(ix.spec.name),
                                        fbb.CreateVectorOfStrings(ix.spec.fields), ix.spec.unique);
      indexes.push_back(wire::CreateIndexInfo(fbb, spec, wire::ToWire(ix.state),
                                              ix.error.empty() ? 0 : fbb.CreateString(ix.error)));
    }
    infos.push_back(wire::CreateCollectionInfo(fbb, fbb.CreateString(c.name), c.created,
                                               fbb.CreateVector(indexes)));
  }
  auto list = fbb.CreateVector(infos);
  auto reply = wire::CreateCollections(fbb, list, next.empty() ? 0 : fbb.CreateString(next));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Collections, reply.Union()));
}

void BuildPong(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, std::string_view payload) {
  fbb.Clear();
  Offset<flatbuffers::Vector<uint8_t>> p;
  if (!payload.empty()) p = Bytes(fbb, payload);
  auto pong = wire::CreatePong(fbb, p);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Pong, pong.Union()));
}

namespace {
Offset<wire::Latency> Summary(flatbuffers::FlatBufferBuilder& fbb, std::string_view name,
                              const Histogram& h, double scale) {
  return wire::CreateLatency(fbb, fbb.CreateString(name), h.count(),
                             double(h.Percentile(0.5)) * scale, double(h.Percentile(0.9)) * scale,
                             double(h.Percentile(0.99)) * scale,
                             double(h.Percentile(0.999)) * scale, double(h.max()) * scale);
}
}  // namespace

void BuildStats(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const ServerStats& stats,
                const EngineStats& engine, const ExtraStats* extra) {
  fbb.Clear();
  std::vector<Offset<wire::Counter>> counters;
  auto counter = [&](std::string_view name, uint64_t v) {
    counters.push_back(wire::CreateCounter(fbb, fbb.CreateString(name), v));
  };
  for (size_t i = 0; i < size_t(OpKind::kNum); i++) {
    counter(std::string("ops.") + std::string(OpKindName(OpKind(i))), stats.ops[i].load());
  }
  counter("connections.open", stats.connections_open);
  counter("connections.total", stats.connections_total);
  counter("connections.refused", stats.connections_refused);
  counter("connections.displaced", stats.handshakes_displaced);
  counter("timeouts.hello", stats.hello_timeouts);
  counter("auth.ok", stats.auth_ok);
  counter("auth.failures", stats.auth_failures);
  counter("auth.required", stats.auth_required);
  counter("auth.permission_denied", stats.permission_denied);
  counter("timeouts.frame", stats.frame_timeouts);
  counter("timeouts.idle", stats.idle_timeouts);
  counter("errors.internal", stats.internal_errors);
  counter("requests", stats.requests);
  counter("errors", stats.errors);
  counter("bad_frames", stats.bad_frames);
  counter("bytes.in", stats.bytes_in);
  counter("bytes.out", stats.bytes_out);
  counter("backpressure", stats.backpressure);
  counter("streams.open", stats.streams_open);
  counter("streams.watch", stats.watch_streams);
  counter("commits", engine.commits);
  counter("idempotent_replays", engine.replays);
  counter("idempotency_keys", engine.idempotency_keys);
  counter("group_commits", engine.group_commits);
  counter("log.first", engine.log_first);
  counter("readers.used", engine.readers_used);
  counter("corrupted_reads", engine.corrupted_reads);
  counter("streams.snapshot", stats.snapshot_streams);
  counter("streams.follow", stats.follow_streams);
  counter("snapshot.bytes", stats.snapshot_bytes);
  counter("tls.handshakes", stats.tls_handshakes);
  counter("tls.handshake_failures", stats.tls_handshake_failures);
  counter("tls.plaintext_refused", stats.tls_plaintext_refused);
  counter("tls.client_certs", stats.tls_client_certs);
  counter("tls.reloads", stats.tls_reloads);
  counter("tls.reload_failures", stats.tls_reload_failures);
  counter("epoch", engine.epoch);
  counter("epoch.highest_seen", engine.highest_epoch_seen);
  counter("fenced", engine.fenced ? 1 : 0);
  counter("log.hold", engine.log_hold);
  if (extra) {
    for (const auto& [name, v] : extra->counters) counter(name, v);
  }
  std::vector<Offset<wire::Latency>> latencies;
  for (size_t i = 0; i < size_t(RequestKind::kCount); i++) {
    latencies.push_back(Summary(fbb, RequestKindName(RequestKind(i)), stats.latency_ns[i], 1e-3));
  }
  if (extra) {
    for (const auto& [name, h] : extra->latencies) latencies.push_back(Summary(fbb, name, *h, 1));
  }
  auto batches = Summary(fbb, "group_commit_batch", stats.batch_sizes, 1);
  auto cv = fbb.CreateVector(counters);
  auto lv = fbb.CreateVector(latencies);
  auto reply = wire::CreateStats(fbb, cv, lv, batches, engine.last_commit, engine.used_bytes,
                                 engine.file_bytes, engine.map_size);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Stats, reply.Union()));
}

}  // namespace cairn::server
