// Engine::Digest: an XXH3-64 digest of the catalog, the records and the entries of the
// ready indexes, over a canonical serialization that does not depend on how LMDB lays
// the data out nor on the database's internal ids (docs/storage.md, "Digest").
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "coding.h"
#include "engine_impl.h"

namespace cairn {

using internal::Catalog;
using internal::CollectionDesc;
using internal::IndexDesc;

namespace internal {

namespace {

// Version 1 of the serialization. Each item starts with a tag byte; strings are
// length-prefixed and integers fixed-width, so that two different databases never
// serialize to the same bytes.
constexpr std::string_view kDigestMagic = "cairn-digest-1";
enum Tag : char {
  kCollectionTag = 'C',
  kIndexSpecTag = 'I',
  kRecordTag = 'R',
  kIndexEntriesTag = 'X',
  kEntryTag = 'E',
  kEndTag = 'Z',
};

// Feeds XXH3's streaming state through a buffer of bounded size: one update call per
// 64 KiB instead of several per record.
class Hasher {
 public:
  Hasher() {
    XXH3_64bits_reset(&state_);
    buf_.reserve(kFlushAt + 1024);
  }
  void Tag(char t) { buf_.push_back(t); }
  void U8(uint8_t v) { buf_.push_back(char(v)); }
  void U64(uint64_t v) { PutU64BE(&buf_, v); }
  void Bytes(std::string_view s) {
    U64(s.size());
    if (s.size() > kFlushAt) {
      Flush();
      XXH3_64bits_update(&state_, s.data(), s.size());
      return;
    }
    buf_.append(s);
    if (buf_.size() >= kFlushAt) Flush();
  }
  uint64_t Digest() {
    Flush();
    return XXH3_64bits_digest(&state_);
  }

 private:
  static constexpr size_t kFlushAt = 64 << 10;
  void Flush() {
    XXH3_64bits_update(&state_, buf_.data(), buf_.size());
    buf_.clear();
  }
  XXH3_state_t state_;
  std::string buf_;
};

void HashSpec(Hasher& h, const IndexDesc& ix) {
  h.Tag(kIndexSpecTag);
  h.Bytes(ix.spec.name);
  h.U8(ix.spec.unique ? 1 : 0);
  h.U64(ix.spec.fields.size());
  for (const std::string& f : ix.spec.fields) h.Bytes(f);
  // The state, not the error text: which two records a failed build names depends on
  // when it ran.
  h.U8(uint8_t(ix.state));
}

}  // namespace

Status DigestIn(MDB_txn* txn, const Dbs& dbs, std::atomic<uint64_t>* corrupted,
                DatabaseDigest* out) {
  // The catalog as this snapshot stores it (not the in-memory one, which may be newer).
  Catalog catalog;
  if (Status s = LoadCatalog(txn, dbs.meta, &catalog); !s.ok()) return s;
  *out = DatabaseDigest{};
  out->commit = LastCommitIn(txn, dbs);
  Ctx ctx;
  ctx.txn = txn;
  ctx.dbs = &dbs;
  ctx.catalog = &catalog;
  ctx.corrupted = corrupted;
  Hasher h;
  h.Bytes(kDigestMagic);
  // Collections in name order; in each, its indexes in name order (as the catalog keeps
  // both), its records in key order, then the entries of each ready index in order.
  for (const auto& [name, c] : catalog.collections) {
    out->collections++;
    h.Tag(kCollectionTag);
    h.Bytes(name);
    h.U64(c.created);
    h.U64(c.indexes.size());
    for (const IndexDesc& ix : c.indexes) HashSpec(h, ix);

    std::string prefix;
    PutU32BE(&prefix, c.id);
    Cursor cur(txn, dbs.records);
    if (cur.open_rc() != 0) return MdbStatus(cur.open_rc(), "cursor");
    int rc = cur.Seek(MDB_SET_RANGE, prefix);
    for (; rc == 0 && cur.key().starts_with(prefix); rc = cur.Get(MDB_NEXT)) {
      RecordView rv;
      if (!DecodeRecord(catalog, cur.key(), cur.value(), &rv)) {
        return DamagedRecord(ctx, c, cur.key().substr(4));
      }
      out->records++;
      h.Tag(kRecordTag);
      h.Bytes(rv.key);
      h.U64(rv.version);
      h.U8(uint8_t(rv.kind));
      h.Bytes(rv.value);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return MdbStatus(rc, "digest of records");

    for (const IndexDesc& ix : c.indexes) {
      if (ix.state != IndexState::kReady) continue;  // its entries are this node's progress
      h.Tag(kIndexEntriesTag);
      h.Bytes(ix.spec.name);
      std::string ix_prefix;
      PutU32BE(&ix_prefix, ix.id);
      Cursor entries(txn, dbs.index);
      if (entries.open_rc() != 0) return MdbStatus(entries.open_rc(), "cursor");
      rc = entries.Seek(MDB_SET_RANGE, ix_prefix);
      for (; rc == 0 && entries.key().starts_with(ix_prefix); rc = entries.Get(MDB_NEXT)) {
        out->index_entries++;
        h.Tag(kEntryTag);
        h.Bytes(entries.key().substr(4));  // the encoded values, without the index's id
        h.Bytes(entries.value());          // the primary key
      }
      if (rc != 0 && rc != MDB_NOTFOUND) return MdbStatus(rc, "digest of index entries");
    }
  }
  h.Tag(kEndTag);
  h.U64(out->collections);
  h.U64(out->records);
  h.U64(out->index_entries);
  out->digest = h.Digest();
  return Status::Ok();
}

}  // namespace internal

Result<DatabaseDigest> Engine::Digest() const {
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  return read->Digest();
}

Result<DatabaseDigest> ReadTxn::Digest() {
  DatabaseDigest d;
  if (Status s = internal::DigestIn(txn_, engine_->dbs_, &engine_->corrupted_reads_, &d); !s.ok()) {
    return s;
  }
  return d;
}

}  // namespace cairn
