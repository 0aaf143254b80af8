// Record and index operations inside one LMDB transaction: reads (get, scan,
// query, count), writes (put, delete) with index maintenance, conditions, and
// running a whole transaction.
// The record checksum runs on every read: XXH3 inlined (xxhash.h's own option) rather
// than called through the shared library.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "coding.h"
#include "document.h"
#include "engine_impl.h"
#include "key_codec.h"

namespace cairn::internal {

RecordKey::RecordKey(uint32_t collection_id, std::string_view key) : size_(4 + key.size()) {
  assert(key.size() <= kMaxKeySize);
  StoreU32BE(buf_, collection_id);
  std::memcpy(buf_ + 4, key.data(), key.size());
}

namespace {

// The largest encoding buffer a thread keeps between writes (PutRecordInOverlay).
constexpr size_t kKeptEncodeBuffer = size_t{1} << 20;

uint64_t RecordChecksum(std::string_view record_key, std::string_view body) {
  return XXH3_64bits_withSeed(body.data(), body.size(),
                              XXH3_64bits(record_key.data(), record_key.size()));
}

}  // namespace

void EncodeRecord(std::string_view record_key, uint64_t version, ValueKind kind,
                  std::string_view value, char* out) {
  StoreU64LE(out, version);
  out[8] = char(uint8_t(kind) | kChecksummed);
  std::memcpy(out + kRecordHeader, value.data(), value.size());
  size_t body = kRecordHeader + value.size();
  StoreU64LE(out + body, RecordChecksum(record_key, std::string_view(out, body)));
}

bool DecodeRecord(const Catalog& catalog, std::string_view record_key, std::string_view stored,
                  RecordView* out) {
  // On every read: plain pointer arithmetic, the lengths checked once.
  assert(record_key.size() >= 4);
  const char* p = stored.data();
  const size_t n = stored.size();
  if (n < kRecordHeader) return false;
  uint8_t kind = uint8_t(p[8]);
  size_t value_size = n - kRecordHeader;
  if (kind & kChecksummed) [[likely]] {
    if (value_size < kRecordTrailer) return false;
    value_size -= kRecordTrailer;
    const size_t body = n - kRecordTrailer;
    if (LoadU64LE(p + body) != RecordChecksum(record_key, std::string_view(p, body))) return false;
    kind &= uint8_t(~kChecksummed);
  } else if (!catalog.MayLackChecksum(record_key)) {
    return false;  // a record of format 2 where the upgrade has passed, or a damaged kind
  }
  if (kind > 1) return false;
  out->key = std::string_view(record_key.data() + 4, record_key.size() - 4);
  out->version = LoadU64LE(p);
  out->kind = ValueKind(kind);
  out->value = std::string_view(p + kRecordHeader, value_size);
  return true;
}

std::string Printable(std::string_view key, size_t max_bytes) {
  std::string out;
  for (unsigned char ch : key.substr(0, max_bytes)) {
    if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
      out.push_back(char(ch));
    } else {
      char b[5];
      snprintf(b, sizeof b, "\\x%02x", ch);
      out += b;
    }
  }
  if (key.size() > max_bytes) out += "...";
  return out;
}

Status DamagedRecord(const Ctx& ctx, const CollectionDesc& c, std::string_view key) {
  if (ctx.corrupted) ctx.corrupted->fetch_add(1, std::memory_order_relaxed);
  return Status(Code::kCorrupted, "record '" + Printable(key) + "' in collection '" + c.name +
                                      "' is damaged on disk (it fails its checksum) and is not "
                                      "served; restore it from a backup");
}

void MakeIndexKey(uint32_t index_id, std::string_view encoded, std::string* out) {
  out->clear();
  PutU32BE(out, index_id);
  if (4 + encoded.size() < kMaxIndexKey) {
    out->append(encoded);
  } else {
    out->append(encoded.substr(0, kIndexPrefixKept));
    PutU64BE(out, XXH3_64bits(encoded.data(), encoded.size()));
  }
}

uint64_t ReadMetaU64(MDB_txn* txn, MDB_dbi meta, std::string_view key) {
  MDB_val k = Val(key), v;
  if (mdb_get(txn, meta, &k, &v) != 0 || v.mv_size != 8) return 0;
  return LoadU64BE(static_cast<const char*>(v.mv_data));
}

namespace {

Status CheckKey(std::string_view key) {
  if (key.empty()) return Status(Code::kBadRequest, "empty primary key");
  if (key.size() > kMaxKeySize) {
    return Status(Code::kTooLarge, "primary key of " + std::to_string(key.size()) +
                                       " bytes; the limit is " + std::to_string(kMaxKeySize));
  }
  return Status::Ok();
}

// Continuation tokens (opaque to clients): [kind][u32 id][position]. The id ties a token
// to the collection or index it came from.
constexpr char kScanToken = 'S';
constexpr char kQueryToken = 'Q';

std::string ScanToken(uint32_t collection_id, std::string_view key) {
  std::string t(1, kScanToken);
  PutU32BE(&t, collection_id);
  t.append(key);
  return t;
}

std::string QueryToken(uint32_t index_id, std::string_view index_key, std::string_view pk) {
  std::string t(1, kQueryToken);
  PutU32BE(&t, index_id);
  PutBytes(&t, index_key);
  t.append(pk);
  return t;
}

Status BadToken() {
  return Status(Code::kBadRequest, "continuation token does not belong to this scan or query");
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

Status FindCollection(const Ctx& ctx, std::string_view name, const CollectionDesc** out) {
  *out = ctx.catalog->Find(name);
  if (*out == nullptr) {
    return Status(Code::kUnknownName, "collection '" + Printable(name) + "' does not exist");
  }
  return Status::Ok();
}

Status GetRecord(const Ctx& ctx, const CollectionDesc& c, std::string_view key, RecordView* out,
                 bool* found) {
  if (Status s = CheckKey(key); !s.ok()) return s;
  RecordKey rk(c.id, key);
  std::string_view stored;
  if (Status s = MergedGet(ctx.txn, ctx.dbs->records, ctx.overlays, ctx.dbs->records, rk.view(),
                           &stored, found);
      !s.ok() || !*found) {
    return s;
  }
  if (!DecodeRecord(*ctx.catalog, rk.view(), stored, out)) return DamagedRecord(ctx, c, key);
  out->key = key;  // the caller's, not rk's: rk dies on return
  return Status::Ok();
}

// --- Scans by primary key.

Status ScanRecords(const Ctx& ctx, const ScanSpec& spec, const ReadTxn::Visitor& visit,
                   std::string* continuation, uint64_t* count_only) {
  const CollectionDesc* c;
  if (Status s = FindCollection(ctx, spec.collection, &c); !s.ok()) return s;
  if (continuation) continuation->clear();

  // Bounds in the records database's key space: [prefix][pk].
  std::string prefix;
  PutU32BE(&prefix, c->id);
  std::string lo = prefix, hi;
  bool lo_inclusive = true, hi_inclusive = false;
  if (spec.lower) {
    lo.append(spec.lower->key);
    lo_inclusive = spec.lower->inclusive;
  }
  if (spec.upper) {
    hi = prefix;
    hi.append(spec.upper->key);
    hi_inclusive = spec.upper->inclusive;
  } else {
    hi = prefix;
    PrefixSuccessor(&hi);  // ids are small: always exists
  }
  if (!spec.continuation.empty()) {
    ByteReader r(spec.continuation);
    uint8_t kind;
    uint32_t id;
    if (!r.U8(&kind) || kind != kScanToken || !r.U32BE(&id) || id != c->id) return BadToken();
    // The position is a primary key: longer, LMDB would refuse the seek (kTooLarge).
    if (r.rest().size() > kMaxKeySize) return BadToken();
    std::string at = prefix;
    at.append(r.rest());
    if (!spec.reverse && at >= lo) {
      lo = std::move(at);
      lo_inclusive = false;
    } else if (spec.reverse && at <= hi) {
      hi = std::move(at);
      hi_inclusive = false;
    }
  }
  auto above_lo = [&](std::string_view k) { return lo_inclusive ? k >= lo : k > lo; };
  auto below_hi = [&](std::string_view k) { return hi_inclusive ? k <= hi : k < hi; };

  MergedCursor cur(ctx.txn, ctx.dbs->records, ctx.overlays, ctx.dbs->records);
  if (!spec.reverse) {
    cur.Seek(lo);
    if (cur.Valid() && !above_lo(cur.key())) cur.Next();
  } else {
    cur.SeekForPrev(hi);
    if (cur.Valid() && !below_hi(cur.key())) cur.Prev();
  }

  uint64_t n = 0;
  size_t bytes = 0;
  std::string_view last;  // LMDB's or an overlay's: valid while the transaction is
  for (; cur.Valid(); spec.reverse ? cur.Prev() : cur.Next()) {
    std::string_view k = cur.key();
    if (spec.reverse ? !above_lo(k) : !below_hi(k)) break;
    if (count_only) {
      n++;
      continue;
    }
    if ((spec.limit && n == spec.limit) || (spec.max_bytes && bytes >= spec.max_bytes)) {
      *continuation = ScanToken(c->id, last.substr(4));
      break;
    }
    RecordView rv;
    if (!DecodeRecord(*ctx.catalog, k, cur.value(), &rv)) return DamagedRecord(ctx, *c, k.substr(4));
    visit(rv);
    n++;
    bytes += k.size() - 4 + rv.value.size();
    last = k;
  }
  if (!cur.status().ok()) return cur.status();
  if (count_only) *count_only = n;
  return Status::Ok();
}

// --- Index queries.

namespace {

Status FindReadyIndex(const CollectionDesc& c, std::string_view name, const IndexDesc** out) {
  *out = c.FindIndex(name);
  if (*out == nullptr) {
    return Status(Code::kUnknownName,
                  "index '" + Printable(name) + "' does not exist on '" + c.name + "'");
  }
  if ((*out)->state == IndexState::kBuilding) {
    return Status(Code::kUnavailable, "index '" + (*out)->spec.name + "' is still building");
  }
  if ((*out)->state == IndexState::kFailed) {
    return Status(Code::kUnavailable,
                  "index '" + (*out)->spec.name + "' failed to build: " + (*out)->error);
  }
  return Status::Ok();
}

// The full (untruncated) key of the index entry for the record at `pk`, from its document.
Status FullIndexKey(const Ctx& ctx, const CollectionDesc& c, const IndexDesc& ix,
                    std::string_view pk, std::string* out, bool* present) {
  RecordView rv;
  bool found;
  if (Status s = GetRecord(ctx, c, pk, &rv, &found); !s.ok()) return s;
  out->clear();
  PutU32BE(out, ix.id);
  *present = found && rv.kind == ValueKind::kDocument && EncodeIndexFields(rv.value, ix.paths, out);
  return Status::Ok();
}

int Compare(std::string_view a, std::string_view b) { return a.compare(b); }

// An index entry whose record is missing, or does not hold the entry's value: the index or
// the record's key is damaged.
Status EntryWithoutRecord(const Ctx& ctx, const CollectionDesc& c, const IndexDesc& ix,
                          std::string_view pk) {
  if (ctx.corrupted) ctx.corrupted->fetch_add(1, std::memory_order_relaxed);
  return Status(Code::kCorrupted, "index '" + ix.spec.name + "' of collection '" + c.name +
                                      "' has an entry for record '" + Printable(pk) +
                                      "', which does not hold its value; the index or the "
                                      "record is damaged on disk");
}

}  // namespace

Status QueryIndex(const Ctx& ctx, const QuerySpec& spec, const ReadTxn::Visitor& visit,
                  std::string* continuation, uint64_t* count_only) {
  const CollectionDesc* c;
  if (Status s = FindCollection(ctx, spec.collection, &c); !s.ok()) return s;
  const IndexDesc* ix;
  if (Status s = FindReadyIndex(*c, spec.index, &ix); !s.ok()) return s;
  if (continuation) continuation->clear();
  size_t nfields = ix->paths.size();
  if (spec.equal.size() > nfields) {
    return Status(Code::kBadRequest, "query gives " + std::to_string(spec.equal.size()) +
                                         " values for an index of " + std::to_string(nfields) +
                                         " fields");
  }
  if ((spec.lower || spec.upper) && spec.equal.size() == nfields) {
    return Status(Code::kBadRequest, "a range needs a field after the equal ones");
  }

  // The range [lo, hi) of full entry keys ([id][encoded values]) that match.
  std::string prefix;
  PutU32BE(&prefix, ix->id);
  for (const IndexValue& v : spec.equal) AppendIndexValue(v, &prefix);
  std::string lo = prefix, hi = prefix;
  bool has_hi = true;
  if (spec.lower) {
    AppendIndexValue(spec.lower->value, &lo);
    if (!spec.lower->inclusive) PrefixSuccessor(&lo);
  }
  if (spec.upper) {
    AppendIndexValue(spec.upper->value, &hi);
    if (spec.upper->inclusive) has_hi = PrefixSuccessor(&hi);
  } else {
    has_hi = PrefixSuccessor(&hi);
  }
  if (has_hi && hi <= lo) {  // an empty range: no token can come from it
    return spec.continuation.empty() ? Status::Ok() : BadToken();
  }

  // Entries order by their stored key, whose first kIndexComparable bytes equal those of the
  // full key. Bounds no longer than that are exact on stored keys; longer ones are applied
  // to the stored prefix, and entries near them checked against the full key.
  const bool lo_exact = lo.size() <= kIndexComparable;
  const bool hi_exact = hi.size() <= kIndexComparable;
  std::string_view lo_cmp = std::string_view(lo).substr(0, kIndexComparable);
  std::string_view hi_cmp = std::string_view(hi).substr(0, kIndexComparable);
  auto past_hi = [&](std::string_view k) {  // no entry at or after k matches
    if (!has_hi) return false;
    return hi_exact ? Compare(k, hi) >= 0 : Compare(k.substr(0, kIndexComparable), hi_cmp) > 0;
  };
  auto before_lo = [&](std::string_view k) {  // no entry at or before k matches
    return lo_exact ? Compare(k, lo) < 0 : Compare(k.substr(0, kIndexComparable), lo_cmp) < 0;
  };

  MergedDupCursor cur(ctx.txn, ctx.dbs->index, ctx.overlays, ctx.dbs->index);
  if (!spec.continuation.empty()) {
    ByteReader r(spec.continuation);
    uint8_t kind;
    uint32_t id;
    std::string_view at_key;
    if (!r.U8(&kind) || kind != kQueryToken || !r.U32BE(&id) || id != ix->id ||
        !r.Bytes(&at_key) || !StartsWith(at_key, std::string_view(prefix).substr(0, 4))) {
      return BadToken();
    }
    // The position is an index entry (its key, then a primary key), of sizes LMDB holds.
    if (at_key.size() > kMaxIndexKey || r.rest().empty() || r.rest().size() > kMaxKeySize) {
      return BadToken();
    }
    // A token names the last entry returned, which lies inside this query's range.
    if (before_lo(at_key) || past_hi(at_key)) return BadToken();
    // Just after (forward) or before (reverse) the entry (at_key, at_pk), which may be
    // gone since.
    std::string_view at_pk = r.rest();
    if (!spec.reverse) {
      cur.Seek(at_key, at_pk);
      if (cur.Valid() && cur.key() == at_key && cur.data() == at_pk) cur.Next();
    } else {
      cur.SeekForPrev(at_key, at_pk);
      if (cur.Valid() && cur.key() == at_key && cur.data() == at_pk) cur.Prev();
    }
  } else if (!spec.reverse) {
    cur.Seek(lo_exact ? std::string_view(lo) : lo_cmp);
  } else {
    // The last entry whose key is below the upper bound (of stored keys, for an inexact
    // one: below the successor of its comparable prefix).
    std::string start;
    bool bounded = has_hi;
    if (has_hi) {
      start = hi_exact ? hi : std::string(hi_cmp);
      if (!hi_exact) bounded = PrefixSuccessor(&start);
    }
    if (bounded) {
      cur.SeekForPrev(start);
    } else {
      cur.SeekToLast();
    }
  }

  uint64_t n = 0;
  size_t bytes = 0;
  // The last entry returned, for a continuation: views into LMDB last as long as the
  // transaction, those of an overlay's entry only until the cursor moves (then copied).
  std::string_view last_key, last_pk;
  std::string last_key_copy, last_pk_copy;
  std::string full;
  for (; cur.Valid(); spec.reverse ? cur.Prev() : cur.Next()) {
    std::string_view k = cur.key(), pk = cur.data();
    if (spec.reverse ? before_lo(k) : past_hi(k)) break;
    // Exact membership: needed only for entries near an inexact bound.
    if (!lo_exact || !hi_exact) {
      std::string_view f = k;
      if (IsTruncatedIndexKey(k)) {
        bool present;
        if (Status s = FullIndexKey(ctx, *c, *ix, pk, &full, &present); !s.ok()) return s;
        if (!present) return EntryWithoutRecord(ctx, *c, *ix, pk);
        f = full;
      }
      if (Compare(f, lo) < 0 || (has_hi && Compare(f, hi) >= 0)) continue;
    }
    if (count_only) {
      n++;
      continue;
    }
    if ((spec.limit && n == spec.limit) || (spec.max_bytes && bytes >= spec.max_bytes)) {
      *continuation = QueryToken(ix->id, last_key, last_pk);
      break;
    }
    RecordView rv;
    bool found;
    if (Status s = GetRecord(ctx, *c, pk, &rv, &found); !s.ok()) return s;
    if (!found) return EntryWithoutRecord(ctx, *c, *ix, pk);
    visit(rv);
    n++;
    bytes += pk.size() + rv.value.size();
    last_key = k;
    last_pk = pk;
    if (!ctx.overlays.empty()) {
      last_key = last_key_copy.assign(k);
      last_pk = last_pk_copy.assign(pk);
    }
  }
  if (!cur.status().ok()) return cur.status();
  if (count_only) *count_only = n;
  return Status::Ok();
}

// --- The writes themselves: into the writer's overlay, or into LMDB (Ctx::writes).

namespace {

Status OverlayFull() {
  return Status(Code::kInternal, "the overlay refused a write (a commit older than its last)");
}

Status PutIndexEntry(const Ctx& ctx, std::string_view index_key, std::string_view pk) {
  if (ctx.writes) {
    thread_local std::string pair;
    EncodeDupKey(index_key, pk, &pair);
    return ctx.writes->Put(ctx.dbs->index, pair, {}, ctx.commit) ? Status::Ok() : OverlayFull();
  }
  MDB_val k = Val(index_key), v = Val(pk);
  int rc = mdb_put(ctx.txn, ctx.dbs->index, &k, &v, MDB_NODUPDATA);
  return rc == 0 || rc == MDB_KEYEXIST ? Status::Ok() : MdbStatus(rc, "index put");
}

Status DeleteIndexEntry(const Ctx& ctx, std::string_view index_key, std::string_view pk) {
  if (ctx.writes) {
    thread_local std::string pair;
    EncodeDupKey(index_key, pk, &pair);
    return ctx.writes->Delete(ctx.dbs->index, pair, ctx.commit) ? Status::Ok() : OverlayFull();
  }
  MDB_val k = Val(index_key), v = Val(pk);
  int rc = mdb_del(ctx.txn, ctx.dbs->index, &k, &v);
  return rc == 0 || rc == MDB_NOTFOUND ? Status::Ok() : MdbStatus(rc, "index delete");
}

}  // namespace

// --- Index maintenance.

Status FindUniqueHolder(const Ctx& ctx, const CollectionDesc& c, const IndexDesc& ix,
                        std::string_view index_key, std::string_view encoded,
                        std::string_view key, std::string* holder) {
  holder->clear();
  MergedDupCursor cur(ctx.txn, ctx.dbs->index, ctx.overlays, ctx.dbs->index);
  cur.Seek(index_key);
  std::string full;
  for (; cur.Valid() && cur.key() == index_key; cur.Next()) {
    std::string_view pk = cur.data();
    if (pk == key) continue;
    if (!IsTruncatedIndexKey(index_key)) {
      holder->assign(pk);
      return Status::Ok();
    }
    // A truncated key: the same stored key may hide different values.
    bool present;
    if (Status s = FullIndexKey(ctx, c, ix, pk, &full, &present); !s.ok()) return s;
    if (present && std::string_view(full).substr(4) == encoded) {
      holder->assign(pk);
      return Status::Ok();
    }
  }
  return cur.status();
}

Status UpdateIndexes(const Ctx& ctx, const CollectionDesc& c, std::string_view key,
                     const RecordView* old_record, ValueKind new_kind, std::string_view new_value) {
  // Every check comes before the first change. The writer's transactions need not rely
  // on it (a failure takes back the commit's writes: Overlay::Undo), but ApplyLog writes
  // LMDB directly.
  struct Change {
    uint32_t id;
    std::string old_ik, new_ik;  // empty: no entry before / after
  };
  thread_local std::vector<Change> changes;
  changes.clear();
  std::string old_enc, new_enc;
  for (const IndexDesc& ix : c.indexes) {
    if (!ix.maintained()) continue;
    old_enc.clear();
    new_enc.clear();
    bool had = old_record && old_record->kind == ValueKind::kDocument &&
               EncodeIndexFields(old_record->value, ix.paths, &old_enc);
    bool has = new_kind == ValueKind::kDocument && !new_value.empty() &&
               EncodeIndexFields(new_value, ix.paths, &new_enc);
    if (had && has && old_enc == new_enc) continue;
    Change& ch = changes.emplace_back();
    ch.id = ix.id;
    if (had) MakeIndexKey(ix.id, old_enc, &ch.old_ik);
    if (has) {
      MakeIndexKey(ix.id, new_enc, &ch.new_ik);
      // On a replica the primary has checked: an index still building here may hold an
      // entry that the primary's build had not reached when it accepted the write.
      if (ix.spec.unique && !ctx.replay) {
        // The record's own old entry does not count (FindUniqueHolder skips `key`).
        std::string holder;
        if (Status s = FindUniqueHolder(ctx, c, ix, ch.new_ik, new_enc, key, &holder); !s.ok()) {
          return s;
        }
        if (!holder.empty()) {
          return Status(Code::kUniqueViolation, "unique index '" + ix.spec.name + "' of '" +
                                                    c.name + "' already holds this value, for '" +
                                                    Printable(holder) + "'");
        }
      }
    }
  }
  for (const Change& ch : changes) {
    if (!ch.old_ik.empty()) {
      if (Status s = DeleteIndexEntry(ctx, ch.old_ik, key); !s.ok()) return s;
    }
    if (!ch.new_ik.empty()) {
      if (Status s = PutIndexEntry(ctx, ch.new_ik, key); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

// --- Writes.

namespace {

Status CheckPutMode(const CollectionDesc& c, const PutOp& op, bool found) {
  if (found && op.mode == PutMode::kInsert) {
    return Status(Code::kAlreadyExists,
                  "record '" + Printable(op.key) + "' already exists in '" + c.name + "'");
  }
  if (!found && op.mode == PutMode::kReplace) {
    return Status(Code::kNotFound,
                  "record '" + Printable(op.key) + "' does not exist in '" + c.name + "'");
  }
  return Status::Ok();
}

// PutRecord's write into the writer's overlay, after the checks of the value.
Status PutRecordInOverlay(const Ctx& ctx, const CollectionDesc& c, const PutOp& op,
                          OpResult* r) {
  RecordView old;
  bool found;
  if (Status s = GetRecord(ctx, c, op.key, &old, &found); !s.ok()) return s;
  if (Status s = CheckPutMode(c, op, found); !s.ok()) return s;
  if (!c.indexes.empty()) {
    if (Status s = UpdateIndexes(ctx, c, op.key, found ? &old : nullptr, op.kind, op.value);
        !s.ok()) {
      return s;
    }
  }
  RecordKey rk(c.id, op.key);
  // Encoded into a buffer the thread keeps, so that a put allocates nothing here; one
  // that held a large value is given back, so that no thread keeps megabytes for good.
  thread_local std::string stored;
  stored.resize(StoredRecordSize(op.value.size()));
  EncodeRecord(rk.view(), ctx.commit, op.kind, op.value, stored.data());
  bool put = ctx.writes->Put(ctx.dbs->records, rk.view(), stored, ctx.commit);
  if (stored.capacity() > kKeptEncodeBuffer) std::string().swap(stored);
  if (!put) return OverlayFull();
  ctx.log->Put(c.name, op.key, op.kind, op.value);
  r->found = found;
  r->version = ctx.commit;
  return Status::Ok();
}

}  // namespace

Status PutRecord(const Ctx& ctx, const PutOp& op, bool document_checked, OpResult* r) {
  const CollectionDesc* c;
  if (Status s = FindCollection(ctx, op.collection, &c); !s.ok()) return s;
  if (Status s = CheckKey(op.key); !s.ok()) return s;
  // A replica stores what its primary accepted, whatever its own limit.
  if (!ctx.replay && op.value.size() > ctx.options->max_value_size) {
    return Status(Code::kTooLarge, "value of " + std::to_string(op.value.size()) +
                                       " bytes; the limit is " +
                                       std::to_string(ctx.options->max_value_size));
  }
  if (op.kind == ValueKind::kDocument) {
    if (!document_checked) {
      if (Status s = CheckDocument(op.value); !s.ok()) return s;
    }
  } else if (op.kind != ValueKind::kRaw) {
    return Status(Code::kBadRequest, "unknown value kind");
  }

  if (ctx.writes) return PutRecordInOverlay(ctx, *c, op, r);
  // Straight into LMDB: a cursor finds the old record, then writes there, one descent of
  // the B+tree when the record exists.
  assert(ctx.overlays.empty());
  RecordKey rk(c->id, op.key);
  MDB_val k = rk.val(), v;
  MDB_cursor* cur;
  if (int rc = mdb_cursor_open(ctx.txn, ctx.dbs->records, &cur); rc != 0) {
    return MdbStatus(rc, "cursor");
  }
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> closer(cur, mdb_cursor_close);
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET);  // MDB_SET leaves k on rk's bytes
  if (rc != 0 && rc != MDB_NOTFOUND) return MdbStatus(rc, "get");
  const bool found = rc == 0;
  RecordView old;
  if (found && !DecodeRecord(*ctx.catalog, rk.view(), View(v), &old)) {
    return DamagedRecord(ctx, *c, op.key);
  }
  if (Status s = CheckPutMode(*c, op, found); !s.ok()) return s;
  if (!c->indexes.empty()) {
    if (Status s = UpdateIndexes(ctx, *c, op.key, found ? &old : nullptr, op.kind, op.value);
        !s.ok()) {
      return s;
    }
  }

  // A cursor that found the key still stands on it, and LMDB checks the cursor's page
  // before descending the tree again (an absent key is searched for anew).
  MDB_val nv{StoredRecordSize(op.value.size()), nullptr};
  rc = mdb_cursor_put(cur, &k, &nv, MDB_RESERVE);
  if (rc == 0) EncodeRecord(rk.view(), ctx.commit, op.kind, op.value, static_cast<char*>(nv.mv_data));
  if (rc != 0) return MdbStatus(rc, "put");

  ctx.log->Put(c->name, op.key, op.kind, op.value);
  r->found = found;
  r->version = ctx.commit;
  return Status::Ok();
}

Status DeleteRecord(const Ctx& ctx, const DeleteOp& op, OpResult* r) {
  const CollectionDesc* c;
  if (Status s = FindCollection(ctx, op.collection, &c); !s.ok()) return s;
  RecordView old;
  bool found;
  if (Status s = GetRecord(ctx, *c, op.key, &old, &found); !s.ok()) return s;
  r->found = found;
  if (!found) return Status::Ok();
  if (!c->indexes.empty()) {
    if (Status s = UpdateIndexes(ctx, *c, op.key, &old, ValueKind::kDocument, {}); !s.ok()) {
      return s;
    }
  }
  RecordKey rk(c->id, op.key);
  if (ctx.writes) {
    if (!ctx.writes->Delete(ctx.dbs->records, rk.view(), ctx.commit)) return OverlayFull();
  } else {
    MDB_val k = rk.val();
    int rc = mdb_del(ctx.txn, ctx.dbs->records, &k, nullptr);
    if (rc != 0) return MdbStatus(rc, "delete");
  }
  ctx.log->Delete(c->name, op.key);
  r->version = ctx.commit;
  return Status::Ok();
}

namespace {

Status CheckCondition(const Ctx& ctx, const Condition& cond) {
  const CollectionDesc* c;
  if (Status s = FindCollection(ctx, cond.collection, &c); !s.ok()) return s;
  RecordView rv;
  bool found;
  if (Status s = GetRecord(ctx, *c, cond.key, &rv, &found); !s.ok()) return s;
  std::string what = "record '" + Printable(cond.key) + "' in '" + c->name + "'";
  switch (cond.kind) {
    case Condition::kAbsent:
      if (found) {
        return Status(Code::kConditionFailed,
                      what + " is present (version " + std::to_string(rv.version) + ")");
      }
      return Status::Ok();
    case Condition::kPresent:
      if (!found) return Status(Code::kConditionFailed, what + " is absent");
      return Status::Ok();
    case Condition::kVersionEquals:
      if (!found) {
        return Status(Code::kConditionFailed,
                      what + " is absent, not at version " + std::to_string(cond.version));
      }
      if (rv.version != cond.version) {
        return Status(Code::kConditionFailed, what + " is at version " +
                                                  std::to_string(rv.version) + ", not " +
                                                  std::to_string(cond.version));
      }
      return Status::Ok();
  }
  return Status(Code::kBadRequest, "unknown condition kind");
}

Status ResponseTooLarge() {
  return Status(Code::kTooLarge,
                "the results exceed the response limit; split the transaction or page the scan");
}

// Runs one operation. `budget` is what is left of the transaction's result bytes.
Status RunOp(const Ctx& ctx, const Op& op, bool documents_checked, OpResult* r, size_t* budget) {
  size_t used = 0;
  auto copy_into = [r, &used](const RecordView& rv) {
    r->records.push_back(Record::From(rv));
    used += rv.key.size() + rv.value.size();
  };
  // Scans and queries stop at the budget (and return a continuation); they always
  // return at least one record, so they may pass it by one.
  auto budgeted = [&](auto spec) {
    if (*budget == 0) return std::optional<decltype(spec)>();
    if (*budget != SIZE_MAX) {
      spec.max_bytes = spec.max_bytes ? std::min(spec.max_bytes, *budget) : *budget;
    }
    return std::optional<decltype(spec)>(spec);
  };
  auto charge = [&] { *budget -= std::min(*budget, used); };
  switch (op.index()) {
    case 0: {
      const auto& get = std::get<GetOp>(op);
      const CollectionDesc* c;
      if (Status s = FindCollection(ctx, get.collection, &c); !s.ok()) return s;
      RecordView rv;
      if (Status s = GetRecord(ctx, *c, get.key, &rv, &r->found); !s.ok()) return s;
      if (r->found) {
        if (rv.key.size() + rv.value.size() > *budget) return ResponseTooLarge();
        r->version = rv.version;
        copy_into(rv);
        charge();
      }
      return Status::Ok();
    }
    case 1:
      if (!ctx.log) return Status(Code::kReadOnly, "write in a read-only transaction");
      return PutRecord(ctx, std::get<PutOp>(op), documents_checked, r);
    case 2:
      if (!ctx.log) return Status(Code::kReadOnly, "write in a read-only transaction");
      return DeleteRecord(ctx, std::get<DeleteOp>(op), r);
    case 3: {
      auto spec = budgeted(std::get<ScanOp>(op).spec);
      if (!spec) return ResponseTooLarge();
      Status s = ScanRecords(ctx, *spec, copy_into, &r->continuation, nullptr);
      charge();
      return s;
    }
    case 4: {
      auto spec = budgeted(std::get<QueryOp>(op).spec);
      if (!spec) return ResponseTooLarge();
      Status s = QueryIndex(ctx, *spec, copy_into, &r->continuation, nullptr);
      charge();
      return s;
    }
    case 5: {
      const auto& range = std::get<CountOp>(op).range;
      if (range.index() == 0) {
        return ScanRecords(ctx, std::get<ScanSpec>(range), copy_into, nullptr, &r->count);
      }
      return QueryIndex(ctx, std::get<QuerySpec>(range), copy_into, nullptr, &r->count);
    }
  }
  return Status(Code::kBadRequest, "unknown operation");
}

}  // namespace

// The operation as a client names it: a put in insert mode is an insert.
std::string_view OpName(const Op& op) {
  if (const PutOp* p = std::get_if<PutOp>(&op)) {
    if (p->mode == PutMode::kInsert) return "insert";
    if (p->mode == PutMode::kReplace) return "replace";
  }
  static constexpr std::string_view kNames[] = {"get", "put", "delete", "scan", "query", "count"};
  return kNames[op.index()];
}

Status CheckTransactionDocuments(const Transaction& txn, size_t max_value_size) {
  for (size_t i = 0; i < txn.ops.size(); i++) {
    const PutOp* p = std::get_if<PutOp>(&txn.ops[i]);
    if (!p || p->kind != ValueKind::kDocument || p->value.size() > max_value_size) continue;
    if (Status s = CheckDocument(p->value); !s.ok()) return s.AtOperation(i, OpName(txn.ops[i]));
  }
  return Status::Ok();
}

Status RunTransaction(const Ctx& ctx, const Transaction& txn, TxnResult* result) {
  for (size_t i = 0; i < txn.conditions.size(); i++) {
    if (Status s = CheckCondition(ctx, txn.conditions[i]); !s.ok()) {
      return s.AtCondition(i);
    }
  }
  result->results.resize(txn.ops.size());
  size_t budget = txn.max_result_bytes ? txn.max_result_bytes : SIZE_MAX;
  for (size_t i = 0; i < txn.ops.size(); i++) {
    if (Status s = RunOp(ctx, txn.ops[i], txn.documents_checked, &result->results[i], &budget); !s.ok()) {
      result->results.clear();
      return s.AtOperation(i, OpName(txn.ops[i]));
    }
  }
  return Status::Ok();
}

}  // namespace cairn::internal
