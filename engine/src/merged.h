// Reads of LMDB merged with overlays: what a reader at commit C sees once the engine
// answers writes from the write-ahead log and applies them to LMDB later (a checkpoint).
// LMDB holds every commit up to the last checkpoint; the overlays (overlay.h) hold the
// commits after it, newest overlay first (usually two: the one being checkpointed and the
// current one). The view is exactly LMDB after applying every commit up to C:
//
//   for a key, the first overlay (newest first) with a version at its `at` decides: a value
//   is the key's value, a tombstone means the key does not exist; a key no overlay has is
//   answered by LMDB.
//
// Plain tables (the records database) map keys to values. DUPSORT tables (the index
// database) hold (key, data) pairs ordered by key then data; in an overlay each pair is ONE
// key, EncodeDupKey(key, data), that orders like the pair, present (an empty value) or
// deleted (a tombstone).
//
// Cursors take no lock and allocate only when made and when a key or seek target outgrows
// the buffers they keep. Not thread-safe: one cursor per thread, like an LMDB cursor.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/status.h"
#include "overlay.h"

namespace cairn::internal {

// An overlay read at commit `at` (a published commit; overlay.h).
struct OverlayAt {
  const Overlay* overlay;
  uint64_t at;
};

// A point read of a plain table. `table` is the overlays' table id for `dbi`; `overlays`
// are newest first. On success *found tells whether the key exists and *value is its
// value: a view into LMDB's memory (valid for the transaction, as mdb_get's) or into an
// overlay (valid while it lives). An LMDB error other than MDB_NOTFOUND is returned.
Status MergedGet(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table,
                 std::string_view key, std::string_view* value, bool* found);

// The overlay key of the DUPSORT pair (key, data), replacing *out: the key's bytes with
// 0x00 escaped as 0x00 0xFF, then 0x00 0x01, then the data's bytes as they are. Comparing
// two encodings bytewise (memcmp, a prefix first) orders them as their pairs are ordered
// by LMDB (key, then data, each memcmp with a prefix first).
void EncodeDupKey(std::string_view key, std::string_view data, std::string* out);
// The pair of an encoding. *data is a view into `encoded`; so is *key when the key has no
// 0x00 byte, else *key is a view into *scratch, which holds the unescaped key. False if
// `encoded` is no encoding (no terminator, or 0x00 followed by neither 0xFF nor 0x01).
bool DecodeDupKey(std::string_view encoded, std::string* scratch, std::string_view* key,
                  std::string_view* data);

// The checkpoint's step, for one table: writes into LMDB, through the write transaction
// `txn`, the version at `at` of every entry `overlay` holds for `table` (values put,
// tombstones deleted; deleting what is absent is no error). Afterwards `txn` read alone
// shows what `overlay` at `at` over it showed. In a DUPSORT table (`dup`) the overlay's
// keys are pairs (EncodeDupKey). *applied (if given) counts the entries written. An LMDB
// error stops it, the transaction then to be aborted.
Status ApplyOverlay(MDB_txn* txn, MDB_dbi dbi, bool dup, const Overlay& overlay, uint32_t table,
                    uint64_t at, uint64_t* applied = nullptr);

namespace merged_detail {

// The merge shared by both cursors. Sources are the overlays, newest first, then LMDB
// (the oldest, never a tombstone). Each source has its own position:
//   forward (after Seek, SeekToFirst or Next): each source is at its first entry >= the
//     current entry, or not valid if it has none;
//   reverse (after SeekForPrev, SeekToLast or Prev): each at its last entry <= it.
// The current entry is the least (greatest) of the sources' entries, taken from the
// newest source among those at it; a tombstone there skips the entry (the sources at it
// move on, and the choice repeats). Next in forward moves the sources at the current
// entry; Next after a reverse move first moves every source once forward (a source at
// its last entry <= current goes to its first > current; one with none goes to its first
// entry), after which every source is at its first entry > the old current entry; Prev
// is the mirror image. This is LevelDB's merging iterator with the deduplication of its
// DBIter folded in.
//
// In a DUPSORT table an entry is a pair: overlay keys are decoded to (key, data) and
// compared with LMDB's pairs as pairs.
class Merge {
 public:
  Merge(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table, bool dup);
  ~Merge();
  Merge(const Merge&) = delete;
  Merge& operator=(const Merge&) = delete;

  bool Valid() const { return current_ >= 0; }
  const Status& status() const { return status_; }
  // Views of the current entry, which needs Valid().
  std::string_view key() const { return sources_[size_t(current_)].key; }
  std::string_view data() const { return sources_[size_t(current_)].data; }

  void SeekToFirst();
  void SeekToLast();
  // Plain tables: `data` is ignored. DUPSORT tables: pairs (key, data).
  void Seek(std::string_view key, std::string_view data);
  void SeekForPrev(std::string_view key, std::string_view data);
  void Next();
  void Prev();

 private:
  struct Source {
    bool valid = false;
    bool deleted = false;     // an overlay's tombstone
    bool at_current = false;  // at the current entry (or at the candidate being chosen)
    std::string_view key;     // plain: the key; DUPSORT: the pair's key
    std::string_view data;    // plain: the value; DUPSORT: the pair's data
    std::string scratch;      // DUPSORT overlays: the unescaped key, when it has a 0x00
  };

  size_t lmdb() const { return iterators_.size(); }  // the index of LMDB's source
  int Compare(const Source& a, const Source& b) const;
  // Positions source i; refreshes its views.
  void SourceFirst(size_t i);
  void SourceLast(size_t i);
  void SourceSeek(size_t i, std::string_view key, std::string_view data);
  void SourceSeekForPrev(size_t i, std::string_view key, std::string_view data);
  void SourceNext(size_t i);
  void SourcePrev(size_t i);
  void LoadOverlay(size_t i);
  // LMDB's source after an mdb_cursor_get that gave rc and, if 0, k and v.
  void LoadLmdb(int rc, const MDB_val& k, const MDB_val& v, const char* what);
  // Moves LMDB's cursor by `op` and loads its source.
  void LmdbMove(MDB_cursor_op op, const char* what);
  // Positions LMDB's source at its first entry >= (key, data).
  void LmdbLowerBound(std::string_view key, std::string_view data);
  // Chooses the current entry from the sources' positions (least or greatest).
  void Settle(bool forward);
  void SettleLmdbOnly();
  void Fail(Status s);

  const bool dup_;
  MDB_cursor* cursor_ = nullptr;
  std::vector<Overlay::Iterator> iterators_;
  // The overlays' sources, then LMDB's: inline up to three, so that a cursor allocates
  // nothing when made (a scan or a query makes one).
  class Sources {
   public:
    explicit Sources(size_t n)
        : heap_(n > kInline ? std::make_unique<Source[]>(n) : nullptr),
          p_(heap_ ? heap_.get() : inline_),
          n_(n) {}
    Source& operator[](size_t i) { return p_[i]; }
    const Source& operator[](size_t i) const { return p_[i]; }
    size_t size() const { return n_; }

   private:
    static constexpr size_t kInline = 3;
    Source inline_[kInline];
    std::unique_ptr<Source[]> heap_;
    Source* p_;
    size_t n_;
  };
  Sources sources_;  // iterators_.size() + 1
  int current_ = -1;             // the source of the current entry, -1 if not valid
  bool forward_ = true;
  std::string target_;  // DUPSORT: a seek target's encoding
  Status status_;
};

}  // namespace merged_detail

// A cursor over a plain (non-DUPSORT) table: LMDB's `dbi` under the overlays (newest first)
// for overlay table `table`. Initially not valid. Keys a tombstone hides are skipped; a key
// in several sources appears once, with the newest source's value. Next and Prev need
// Valid() (they do nothing otherwise) and may change direction freely. A seek's target may
// be a view of the cursor's own key() (and data()).
//
// key() and value() need Valid(); they are views into LMDB (valid as long as LMDB's own:
// for the transaction, in a write transaction until its next write) or into an overlay
// (valid while it lives). On an LMDB error (opening the cursor, or any
// mdb_cursor_get result other than MDB_NOTFOUND) the cursor becomes not valid and status()
// holds the error; it then stays not valid whatever it is asked. The transaction and the
// overlays must outlive the cursor, and a write through `txn` while it is open is not
// allowed.
class MergedCursor {
 public:
  MergedCursor(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table)
      : m_(txn, dbi, overlays, table, false) {}

  bool Valid() const { return m_.Valid(); }
  const Status& status() const { return m_.status(); }
  void SeekToFirst() { m_.SeekToFirst(); }
  void SeekToLast() { m_.SeekToLast(); }
  void Seek(std::string_view key) { m_.Seek(key, {}); }                // the first key >= key
  void SeekForPrev(std::string_view key) { m_.SeekForPrev(key, {}); }  // the last <= key
  void Next() { m_.Next(); }
  void Prev() { m_.Prev(); }
  std::string_view key() const { return m_.key(); }
  std::string_view value() const { return m_.data(); }

 private:
  merged_detail::Merge m_;
};

// A cursor over a DUPSORT table, yielding its (key, data) pairs in order, LMDB's merged with
// the overlays' (keys made by EncodeDupKey). As MergedCursor otherwise; key() is a view
// into LMDB, an overlay, or the cursor (an overlay's key with a 0x00 byte), valid until the
// cursor moves.
class MergedDupCursor {
 public:
  MergedDupCursor(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table)
      : m_(txn, dbi, overlays, table, true) {}

  bool Valid() const { return m_.Valid(); }
  const Status& status() const { return m_.status(); }
  void SeekToFirst() { m_.SeekToFirst(); }
  void SeekToLast() { m_.SeekToLast(); }
  // The first pair >= (key, data); with data empty, the first pair whose key is >= key.
  void Seek(std::string_view key, std::string_view data = {}) { m_.Seek(key, data); }
  // The last pair <= (key, data); with data empty, the last pair whose key is < key (the
  // index's data, primary keys, are never empty).
  void SeekForPrev(std::string_view key, std::string_view data = {}) { m_.SeekForPrev(key, data); }
  void Next() { m_.Next(); }
  void Prev() { m_.Prev(); }
  std::string_view key() const { return m_.key(); }
  std::string_view data() const { return m_.data(); }

 private:
  merged_detail::Merge m_;
};

}  // namespace cairn::internal
