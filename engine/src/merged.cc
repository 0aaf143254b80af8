#include "merged.h"

#include <cstring>

#include "engine_impl.h"

namespace cairn::internal {

namespace {

// Bytewise, a prefix first: LMDB's default order for keys and for DUPSORT data.
int CompareBytes(std::string_view a, std::string_view b) {
  size_t n = a.size() < b.size() ? a.size() : b.size();
  int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);  // data() may be null if empty
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// Leaves the cursor at LMDB's first entry >= (key, data) (rc 0, *k and *v set) or returns
// MDB_NOTFOUND or an error.
int SeekAtLeast(MDB_cursor* cursor, bool dup, std::string_view key, std::string_view data,
                MDB_val* k, MDB_val* v) {
  // LMDB refuses empty keys (MDB_BAD_VALSIZE) and holds none: every entry is >= them.
  if (key.empty()) return mdb_cursor_get(cursor, k, v, MDB_FIRST);
  *k = Val(key);
  // Also with data empty (GET_BOTH_RANGE refuses it): the first pair of the first key >= key.
  if (!dup || data.empty()) return mdb_cursor_get(cursor, k, v, MDB_SET_RANGE);
  *v = Val(data);
  // The first data >= data among the key's duplicates; it leaves *k as given, hence
  // GET_CURRENT for views into LMDB.
  int rc = mdb_cursor_get(cursor, k, v, MDB_GET_BOTH_RANGE);
  if (rc == 0) return mdb_cursor_get(cursor, k, v, MDB_GET_CURRENT);
  if (rc != MDB_NOTFOUND) return rc;
  // No such key, or every data of it is < data: the first pair of the next key. (The
  // cursor's position after the failed GET_BOTH_RANGE is not relied on.)
  *k = Val(key);
  rc = mdb_cursor_get(cursor, k, v, MDB_SET_RANGE);
  if (rc == 0 && View(*k) == key) rc = mdb_cursor_get(cursor, k, v, MDB_NEXT_NODUP);
  return rc;
}

}  // namespace

Status MergedGet(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table,
                 std::string_view key, std::string_view* value, bool* found) {
  *value = {};
  *found = false;
  for (const OverlayAt& o : overlays) {
    Overlay::Found f = o.overlay->Get(table, key, o.at);
    if (f.state == Overlay::State::kValue) {
      *value = f.value;
      *found = true;
      return Status::Ok();
    }
    if (f.state == Overlay::State::kDeleted) return Status::Ok();
  }
  if (key.empty()) return Status::Ok();  // LMDB holds no empty key (and refuses to look)
  MDB_val k = Val(key), v{};
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  if (rc != 0) return MdbStatus(rc, "merged get");
  *value = View(v);
  *found = true;
  return Status::Ok();
}

void EncodeDupKey(std::string_view key, std::string_view data, std::string* out) {
  out->clear();
  out->reserve(key.size() + 2 + data.size() + 8);
  size_t start = 0;
  for (size_t i = 0; i < key.size(); i++) {
    if (key[i] == '\0') {
      out->append(key, start, i + 1 - start);  // up to and including the 0x00
      out->push_back('\xff');
      start = i + 1;
    }
  }
  out->append(key, start, key.size() - start);
  out->push_back('\0');
  out->push_back('\x01');
  out->append(data);
}

bool DecodeDupKey(std::string_view encoded, std::string* scratch, std::string_view* key,
                  std::string_view* data) {
  // The first 0x00 is an escape (0x00 0xFF) or the terminator (0x00 0x01).
  size_t zero = encoded.find('\0');
  if (zero == std::string_view::npos || zero + 1 >= encoded.size()) return false;
  if (encoded[zero + 1] == '\x01') {  // no 0x00 in the key: a view will do
    *key = encoded.substr(0, zero);
    *data = encoded.substr(zero + 2);
    return true;
  }
  scratch->clear();
  size_t start = 0;
  for (;;) {
    if (zero == std::string_view::npos || zero + 1 >= encoded.size()) return false;
    char next = encoded[zero + 1];
    if (next == '\x01') break;
    if (next != '\xff') return false;
    scratch->append(encoded, start, zero + 1 - start);  // the key's 0x00
    start = zero + 2;
    zero = encoded.find('\0', start);
  }
  scratch->append(encoded, start, zero - start);
  *key = *scratch;
  *data = encoded.substr(zero + 2);
  return true;
}

Status ApplyOverlay(MDB_txn* txn, MDB_dbi dbi, bool dup, const Overlay& overlay, uint32_t table,
                    uint64_t at, uint64_t* applied) {
  uint64_t n = 0;
  std::string scratch;
  Overlay::Iterator it = overlay.NewIterator(table, at);
  for (it.SeekToFirst(); it.Valid(); it.Next(), n++) {
    Overlay::Found f = it.found();
    std::string_view key = it.key(), data = f.value;
    if (dup && !DecodeDupKey(it.key(), &scratch, &key, &data)) {
      return Status(Code::kInternal, "checkpoint: an overlay key of a DUPSORT table is no pair");
    }
    if (key.empty()) return Status(Code::kInternal, "checkpoint: an empty key in the overlay");
    MDB_val k = Val(key), v = Val(data);
    int rc;
    if (f.state == Overlay::State::kValue) {
      rc = mdb_put(txn, dbi, &k, &v, dup ? MDB_NODUPDATA : 0);
      if (rc == MDB_KEYEXIST) rc = 0;  // the pair is there already
    } else {
      rc = mdb_del(txn, dbi, &k, dup ? &v : nullptr);
      if (rc == MDB_NOTFOUND) rc = 0;
    }
    if (rc != 0) return MdbStatus(rc, "checkpoint");
  }
  if (applied) *applied = n;
  return Status::Ok();
}

namespace merged_detail {

Merge::Merge(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table,
             bool dup)
    : dup_(dup), sources_(overlays.size() + 1) {
  iterators_.reserve(overlays.size());
  for (const OverlayAt& o : overlays) iterators_.push_back(o.overlay->NewIterator(table, o.at));
  if (int rc = mdb_cursor_open(txn, dbi, &cursor_); rc != 0) {
    cursor_ = nullptr;
    status_ = MdbStatus(rc, "merged cursor open");
  }
}

Merge::~Merge() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
}

int Merge::Compare(const Source& a, const Source& b) const {
  int c = CompareBytes(a.key, b.key);
  if (c != 0 || !dup_) return c;
  return CompareBytes(a.data, b.data);
}

void Merge::Fail(Status s) {
  if (status_.ok()) status_ = std::move(s);
  current_ = -1;
}

// --- The overlays' sources.

void Merge::LoadOverlay(size_t i) {
  const Overlay::Iterator& it = iterators_[i];
  Source& s = sources_[i];
  s.valid = it.Valid();
  if (!s.valid) return;
  Overlay::Found f = it.found();
  s.deleted = f.state == Overlay::State::kDeleted;
  if (!dup_) {
    s.key = it.key();
    s.data = f.value;
  } else if (!DecodeDupKey(it.key(), &s.scratch, &s.key, &s.data)) {
    s.valid = false;
    Fail(Status(Code::kInternal, "merged cursor: an overlay key of a DUPSORT table is no pair"));
  }
}

// --- LMDB's source.

void Merge::LoadLmdb(int rc, const MDB_val& k, const MDB_val& v, const char* what) {
  Source& s = sources_[lmdb()];
  s.deleted = false;
  s.valid = rc == 0;
  if (s.valid) {
    s.key = View(k);
    s.data = View(v);
  } else if (rc != MDB_NOTFOUND) {
    Fail(MdbStatus(rc, what));
  }
}

void Merge::LmdbMove(MDB_cursor_op op, const char* what) {
  MDB_val k{}, v{};
  int rc = mdb_cursor_get(cursor_, &k, &v, op);
  LoadLmdb(rc, k, v, what);
}

void Merge::LmdbLowerBound(std::string_view key, std::string_view data) {
  MDB_val k{}, v{};
  int rc = SeekAtLeast(cursor_, dup_, key, data, &k, &v);
  LoadLmdb(rc, k, v, "merged cursor seek");
}

// --- Either.

void Merge::SourceFirst(size_t i) {
  if (i < lmdb()) {
    iterators_[i].SeekToFirst();
    return LoadOverlay(i);
  }
  LmdbMove(MDB_FIRST, "merged cursor first");
}

void Merge::SourceLast(size_t i) {
  if (i < lmdb()) {
    iterators_[i].SeekToLast();
    return LoadOverlay(i);
  }
  LmdbMove(MDB_LAST, "merged cursor last");
}

void Merge::SourceSeek(size_t i, std::string_view key, std::string_view data) {
  if (i < lmdb()) {
    iterators_[i].Seek(dup_ ? std::string_view(target_) : key);
    return LoadOverlay(i);
  }
  LmdbLowerBound(key, data);
}

void Merge::SourceSeekForPrev(size_t i, std::string_view key, std::string_view data) {
  if (i < lmdb()) {
    iterators_[i].SeekForPrev(dup_ ? std::string_view(target_) : key);
    return LoadOverlay(i);
  }
  MDB_val k{}, v{};
  int rc;
  if (key.empty()) {
    rc = MDB_NOTFOUND;  // every entry of LMDB is > (empty key, anything)
  } else {
    rc = SeekAtLeast(cursor_, dup_, key, data, &k, &v);
    if (rc == 0) {
      bool equal = View(k) == key && (!dup_ || View(v) == data);
      if (!equal) rc = mdb_cursor_get(cursor_, &k, &v, MDB_PREV);
    } else if (rc == MDB_NOTFOUND) {
      rc = mdb_cursor_get(cursor_, &k, &v, MDB_LAST);
    }
  }
  LoadLmdb(rc, k, v, "merged cursor seek");
}

void Merge::SourceNext(size_t i) {
  if (i < lmdb()) {
    iterators_[i].Next();
    return LoadOverlay(i);
  }
  LmdbMove(MDB_NEXT, "merged cursor next");
}

void Merge::SourcePrev(size_t i) {
  if (i < lmdb()) {
    iterators_[i].Prev();
    return LoadOverlay(i);
  }
  LmdbMove(MDB_PREV, "merged cursor prev");
}

// --- The merge.

// The least (forward) or greatest entry of the sources; among equals, the newest source
// (the lowest index). A tombstone there hides the entry in every older source: all at it
// move past it, and the choice is made again.
void Merge::Settle(bool forward) {
  for (;;) {
    if (!status_.ok()) {
      current_ = -1;
      return;
    }
    int best = -1;
    for (size_t i = 0; i < sources_.size(); i++) {
      if (!sources_[i].valid) continue;
      if (best < 0) {
        best = int(i);
        continue;
      }
      int c = Compare(sources_[i], sources_[size_t(best)]);
      if (forward ? c < 0 : c > 0) best = int(i);
    }
    if (best < 0) {
      current_ = -1;
      return;
    }
    const Source& b = sources_[size_t(best)];
    for (size_t i = 0; i < sources_.size(); i++) {
      Source& s = sources_[i];
      s.at_current = s.valid && (&s == &b || Compare(s, b) == 0);
    }
    if (!b.deleted) {
      current_ = best;
      return;
    }
    for (size_t i = 0; i < sources_.size(); i++) {
      if (!sources_[i].at_current) continue;
      if (forward) {
        SourceNext(i);
      } else {
        SourcePrev(i);
      }
    }
  }
}

// LMDB alone (no overlay: every read until the write-ahead log is in the write path)
// has nothing to merge: its cursor's moves are the cursor's.
void Merge::SettleLmdbOnly() { current_ = status_.ok() && sources_[0].valid ? 0 : -1; }

void Merge::SeekToFirst() {
  if (!status_.ok()) return;
  if (iterators_.empty()) return SourceFirst(0), SettleLmdbOnly();
  for (size_t i = 0; i < sources_.size(); i++) SourceFirst(i);
  forward_ = true;
  Settle(/*forward=*/true);
}

void Merge::SeekToLast() {
  if (!status_.ok()) return;
  if (iterators_.empty()) return SourceLast(0), SettleLmdbOnly();
  for (size_t i = 0; i < sources_.size(); i++) SourceLast(i);
  forward_ = false;
  Settle(/*forward=*/false);
}

// The target may be a view of this cursor's own key() and data(): LMDB is positioned
// first (it changes no source's scratch), and the overlays then seek by target_ (DUPSORT)
// or by `key`, which then views LMDB's or an overlay's memory, neither changed by a seek.
void Merge::Seek(std::string_view key, std::string_view data) {
  if (!status_.ok()) return;
  if (iterators_.empty()) return SourceSeek(0, key, data), SettleLmdbOnly();
  if (dup_) EncodeDupKey(key, data, &target_);
  SourceSeek(lmdb(), key, data);
  for (size_t i = 0; i < lmdb(); i++) SourceSeek(i, key, data);
  forward_ = true;
  Settle(/*forward=*/true);
}

void Merge::SeekForPrev(std::string_view key, std::string_view data) {
  if (!status_.ok()) return;
  if (iterators_.empty()) return SourceSeekForPrev(0, key, data), SettleLmdbOnly();
  if (dup_) EncodeDupKey(key, data, &target_);
  SourceSeekForPrev(lmdb(), key, data);
  for (size_t i = 0; i < lmdb(); i++) SourceSeekForPrev(i, key, data);
  forward_ = false;
  Settle(/*forward=*/false);
}

void Merge::Next() {
  if (!Valid()) return;
  if (iterators_.empty()) return SourceNext(0), SettleLmdbOnly();
  if (forward_) {
    // Every source is at its first entry >= the current one: those at it move on.
    for (size_t i = 0; i < sources_.size(); i++) {
      if (sources_[i].at_current) SourceNext(i);
    }
  } else {
    // Every source is at its last entry <= the current one (or has none): one step
    // forward puts each at its first entry > it.
    for (size_t i = 0; i < sources_.size(); i++) {
      if (sources_[i].valid) {
        SourceNext(i);
      } else {
        SourceFirst(i);
      }
    }
    forward_ = true;
  }
  Settle(/*forward=*/true);
}

void Merge::Prev() {
  if (!Valid()) return;
  if (iterators_.empty()) return SourcePrev(0), SettleLmdbOnly();
  if (!forward_) {
    for (size_t i = 0; i < sources_.size(); i++) {
      if (sources_[i].at_current) SourcePrev(i);
    }
  } else {
    // Every source is at its first entry >= the current one (or has none): one step back
    // puts each at its last entry < it.
    for (size_t i = 0; i < sources_.size(); i++) {
      if (sources_[i].valid) {
        SourcePrev(i);
      } else {
        SourceLast(i);
      }
    }
    forward_ = false;
  }
  Settle(/*forward=*/false);
}

}  // namespace merged_detail
}  // namespace cairn::internal
