// Engine::Verify: a consistency check of everything the engine stores, on one
// read snapshot. Used by tests after every batch and by operators (cairn verify).
#include <set>
#include <unordered_map>

#include "coding.h"
#include "document.h"
#include "engine_impl.h"

namespace cairn {

using internal::Catalog;
using internal::CollectionDesc;
using internal::IndexDesc;
using internal::View;

namespace {

constexpr size_t kMaxProblems = 200;

// A stored key for a problem's text, whole.
std::string Printable(std::string_view bytes) {
  return internal::Printable(bytes, std::string_view::npos);
}

class Checker {
 public:
  Checker(MDB_txn* txn, const internal::Dbs& dbs, const Engine::VerifyProgress& progress,
          VerifyReport* report)
      : txn_(txn), dbs_(dbs), progress_(progress), report_(report) {}

  void Problem(std::string p) {
    if (report_->problems.size() < kMaxProblems) report_->problems.push_back(std::move(p));
  }

  void Run() {
    Begin("catalog");
    if (Status s = internal::LoadCatalog(txn_, dbs_.meta, &catalog_); !s.ok()) {
      Problem("catalog: " + s.ToString());
      return;
    }
    seq_ = internal::LastCommitIn(txn_, dbs_);
    LoadCleanups();
    for (const auto& [name, c] : catalog_.collections) {
      live_collections_[c.id] = &c;
      for (const IndexDesc& ix : c.indexes) live_indexes_[ix.id] = {&c, &ix};
    }
    Begin("records");
    CheckRecords();
    Begin("index entries");
    CheckIndexEntries();
    Begin("change log");
    CheckLog();
  }

 private:
  void Begin(std::string_view part) {
    if (progress_) progress_(part);
  }

  void LoadCleanups() {
    Scan(dbs_.meta, internal::kCleanupPrefix, [&](std::string_view k, std::string_view) {
      if (k.size() == 6) pending_cleanup_.insert(internal::LoadU32BE(k.data() + 2));
    });
  }

  template <typename Fn>
  void Scan(MDB_dbi dbi, std::string_view prefix, Fn fn) {
    MDB_cursor* cur;
    if (mdb_cursor_open(txn_, dbi, &cur) != 0) return Problem("cannot open a cursor");
    MDB_val k = internal::Val(prefix), v;
    int rc = mdb_cursor_get(cur, &k, &v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
    // LMDB hands out keys in order (and, in the DUPSORT index, values in order within a
    // key); anything else means a branch page leads somewhere it should not, e.g. two
    // pointers to one leaf, which LMDB itself does not notice.
    const bool dups = dbi == dbs_.index;
    std::string prev_k, prev_v;
    bool first = true, in_order = true;
    for (; rc == 0 && View(k).starts_with(prefix); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      std::string_view key = View(k), val = View(v);
      if (!first && in_order) {
        int c = key.compare(prev_k);
        if (c < 0 || (c == 0 && (!dups || val <= prev_v))) {
          in_order = false;
          Problem("structurally damaged: keys out of order after '" + Printable(prev_k) +
                  "' (a damaged branch page); restore from a backup");
        }
      }
      first = false;
      prev_k.assign(key);
      if (dups) prev_v.assign(val);
      fn(key, val);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
      Problem(std::string("structurally damaged: reading the file failed (") + mdb_strerror(rc) +
              "); restore from a backup");
    }
    mdb_cursor_close(cur);
  }

  bool HasEntry(std::string_view ik, std::string_view pk) {
    MDB_cursor* cur;
    if (mdb_cursor_open(txn_, dbs_.index, &cur) != 0) return false;
    MDB_val k = internal::Val(ik), v = internal::Val(pk);
    bool found = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH) == 0;
    mdb_cursor_close(cur);
    return found;
  }

  // Whether the record stored under `rk` is intact (its checksum holds, or it is of format 2
  // and the upgrade has not reached it); reports it if not.
  bool Intact(const CollectionDesc& c, std::string_view rk, std::string_view stored,
              RecordView* rv) {
    if (internal::DecodeRecord(catalog_, rk, stored, rv)) return true;
    bool unsummed = !internal::HasChecksum(stored) && stored.size() >= internal::kRecordHeader;
    Problem("record '" + Printable(rk.substr(4)) + "' of " + c.name +
            (unsummed ? " has no checksum, though the upgrade to format 3 has passed it"
                      : " fails its checksum"));
    return false;
  }

  // Every record is intact, has a sane version and a valid document, and has the index
  // entries its indexes need.
  void CheckRecords() {
    std::string enc, ik;
    Scan(dbs_.records, "", [&](std::string_view k, std::string_view v) {
      report_->records++;
      if (k.size() < 5) return Problem("record key too short");
      uint32_t cid = internal::LoadU32BE(k.data());
      std::string_view pk = k.substr(4);
      auto live = live_collections_.find(cid);
      if (live == live_collections_.end()) {
        if (!pending_cleanup_.count(cid)) {
          Problem("record of unknown collection " + std::to_string(cid));
        }
        return;
      }
      RecordView rv;
      if (!Intact(*live->second, k, v, &rv)) return;
      if (rv.version == 0 || rv.version > seq_) {
        Problem("record version " + std::to_string(rv.version) + " outside [1, " +
                std::to_string(seq_) + "]");
      }
      // Well-formed is what it must be; a document large written out is not damaged.
      if (rv.kind == ValueKind::kDocument &&
          !CheckDocument(rv.value, Expansion::kUnbounded).ok()) {
        return Problem("record with an invalid document in " + live->second->name);
      }
      for (const IndexDesc& ix : live->second->indexes) {
        if (ix.state == IndexState::kFailed) continue;
        // A building index covers the records up to its cursor (and maybe more).
        if (ix.state == IndexState::kBuilding && (!ix.cursor_set || pk > ix.cursor)) continue;
        enc.clear();
        if (rv.kind != ValueKind::kDocument || !internal::EncodeIndexFields(rv.value, ix.paths, &enc)) {
          continue;
        }
        internal::MakeIndexKey(ix.id, enc, &ik);
        if (!HasEntry(ik, pk)) {
          Problem("record '" + Printable(pk) + "' of " + live->second->name +
                  " misses its entry in index " + ix.spec.name);
        }
      }
    });
  }

  // Every index entry points at a record whose document gives exactly that entry; unique
  // indexes hold each value once.
  void CheckIndexEntries() {
    std::string enc, ik;
    std::string prev_key, prev_full;
    uint32_t prev_id = 0;
    Scan(dbs_.index, "", [&](std::string_view k, std::string_view pk) {
      report_->index_entries++;
      if (k.size() < 5) return Problem("index key too short");
      uint32_t iid = internal::LoadU32BE(k.data());
      auto live = live_indexes_.find(iid);
      if (live == live_indexes_.end()) {
        if (!pending_cleanup_.count(iid)) Problem("entry of unknown index " + std::to_string(iid));
        return;
      }
      const auto& [c, ix] = live->second;
      if (ix->state == IndexState::kFailed) return;
      std::string rk;
      internal::PutU32BE(&rk, c->id);
      rk.append(pk);
      MDB_val rkv = internal::Val(rk), rv_raw;
      if (mdb_get(txn_, dbs_.records, &rkv, &rv_raw) != 0) {
        return Problem("index " + ix->spec.name + " has an entry for missing record '" +
                       Printable(pk) + "'");
      }
      RecordView rv;
      enc.clear();
      // A damaged record is reported by CheckRecords; its entries cannot be checked.
      if (!internal::DecodeRecord(catalog_, rk, View(rv_raw), &rv)) return;
      if (rv.kind != ValueKind::kDocument ||
          !internal::EncodeIndexFields(rv.value, ix->paths, &enc)) {
        return Problem("index " + ix->spec.name + " has an entry for record '" + Printable(pk) +
                       "', which has no value for it");
      }
      internal::MakeIndexKey(ix->id, enc, &ik);
      if (ik != k) {
        return Problem("index " + ix->spec.name + " entry for '" + Printable(pk) +
                       "' does not match the record's value");
      }
      if (ix->spec.unique && ix->state == IndexState::kReady && iid == prev_id &&
          prev_full == enc) {
        Problem("unique index " + ix->spec.name + " holds one value twice (record '" +
                Printable(pk) + "')");
      }
      prev_id = iid;
      prev_full = enc;
    });
  }

  // The log holds consecutive commits, each with a valid checksum, ending at the last commit.
  void CheckLog() {
    uint64_t prev = 0;
    Scan(dbs_.log, "", [&](std::string_view k, std::string_view v) {
      report_->log_entries++;
      if (k.size() != 8) return Problem("change-log key of the wrong size");
      uint64_t commit = internal::LoadU64BE(k.data());
      if (prev && commit != prev + 1) {
        Problem("change log jumps from " + std::to_string(prev) + " to " + std::to_string(commit));
      }
      LogEntry e;
      if (!internal::DecodeLogEntry(commit, v, &e)) {
        Problem("change-log entry " + std::to_string(commit) + " is corrupt");
      }
      prev = commit;
    });
    if (prev != 0 && prev != seq_) {
      Problem("change log ends at " + std::to_string(prev) + ", last commit is " +
              std::to_string(seq_));
    }
  }

  MDB_txn* txn_;
  const internal::Dbs& dbs_;
  const Engine::VerifyProgress& progress_;
  VerifyReport* report_;
  uint64_t seq_ = 0;
  Catalog catalog_;  // as stored in this snapshot
  std::set<uint32_t> pending_cleanup_;
  std::unordered_map<uint32_t, const CollectionDesc*> live_collections_;
  std::unordered_map<uint32_t, std::pair<const CollectionDesc*, const IndexDesc*>> live_indexes_;
};

}  // namespace

VerifyReport Engine::Impl::Verify(const VerifyProgress& progress) const {
  VerifyReport report;
  MDB_txn* txn;
  if (Status s = AcquireReadTxn(&txn); !s.ok()) {
    report.problems.push_back("cannot begin a read transaction: " + s.ToString());
    return report;
  }
  Checker(txn, dbs_, progress, &report).Run();
  ReleaseReadTxn(txn);
  return report;
}

}  // namespace cairn
