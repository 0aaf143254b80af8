// The engine's background thread: index builds and cleanup after drops, in
// batches (each its own short write transaction, so client writes interleave),
// the periodic flush of kNoSync, and clearing stale reader slots.
#include <algorithm>
#include <cerrno>
#include <chrono>

#include "coding.h"
#include "document.h"
#include "engine_impl.h"

namespace cairn {

using internal::Catalog;
using internal::CollectionDesc;
using internal::IndexDesc;
using internal::MdbStatus;
using internal::Val;
using internal::View;

void Engine::Impl::StartBackground() {
  {
    std::lock_guard lock(bg_mu_);
    bg_idle_ = false;  // a build interrupted by a restart may be waiting
  }
  bg_thread_ = std::thread([this] {
    using Clock = std::chrono::steady_clock;
    auto next_flush = Clock::now() + options_.flush_interval;
    auto next_check = Clock::now() + options_.reader_check_interval;
    std::unique_lock lock(bg_mu_);
    while (!bg_stop_) {
      bg_wake_ = false;
      lock.unlock();
      bool worked = CleanupBatch();
      worked = BuildIndexBatch() || worked;
      worked = UpgradeBatch() || worked;
      auto now = Clock::now();
      if (options_.durability == Durability::kNoSync && now >= next_flush) {
        (void)CommitStatus(mdb_env_sync(env_, 1), "flush");  // latches an I/O error
        next_flush = now + options_.flush_interval;
      }
      if (now >= next_check) {
        int dead = 0;
        if (mdb_reader_check(env_, &dead) == 0) stale_readers_cleared_ += uint64_t(dead);
        next_check = now + options_.reader_check_interval;
      }
      lock.lock();
      if (worked || bg_wake_ || bg_stop_) continue;
      bg_idle_ = true;
      idle_cv_.notify_all();
      auto deadline = next_check;
      if (options_.durability == Durability::kNoSync) deadline = std::min(deadline, next_flush);
      bg_cv_.wait_until(lock, deadline, [&] { return bg_stop_ || bg_wake_; });
    }
    bg_idle_ = true;
    idle_cv_.notify_all();
  });
}

void Engine::Impl::StopBackground() {
  {
    std::lock_guard lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
}

void Engine::Impl::WakeBackground() {
  {
    std::lock_guard lock(bg_mu_);
    bg_wake_ = true;
    bg_idle_ = false;
  }
  bg_cv_.notify_all();
}

void Engine::Impl::WaitForBackgroundWork() {
  std::unique_lock lock(bg_mu_);
  idle_cv_.wait(lock, [&] { return bg_idle_ || bg_stop_ || !bg_thread_.joinable(); });
}

bool Engine::Impl::BuildIndexBatch() {
  std::lock_guard lock(write_mu_);
  if (fatal_rc_) return false;
  auto catalog = this->catalog();
  const CollectionDesc* coll = nullptr;
  const IndexDesc* index = nullptr;
  for (const auto& [name, c] : catalog->collections) {
    for (const IndexDesc& ix : c.indexes) {
      if (ix.state == IndexState::kBuilding) {
        coll = &c;
        index = &ix;
        break;
      }
    }
    if (index) break;
  }
  if (!index) return false;
  // A build adds entries: it must leave the reserve alone. Refused, it waits for the next
  // wake-up or reader check (Options::reader_check_interval) and tries again.
  if (!space_.Admit(uint64_t(options_.background_batch) * 128 + (uint64_t{64} << 10)).ok()) {
    full_refusals_++;
    return false;
  }

  MDB_txn* txn;
  if (mdb_txn_begin(env_, nullptr, 0, &txn) != 0) return false;
  internal::Ctx ctx = ReadCtx(txn, catalog.get());
  IndexDesc next = *index;
  std::string prefix, start, enc, ik, holder;
  internal::PutU32BE(&prefix, coll->id);
  start = prefix + (index->cursor_set ? index->cursor : "");
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbs_.records, &cur);
  MDB_val k = Val(start), v;
  if (rc == 0) {
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && index->cursor_set && View(k) == start) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  Status status;
  bool done = false;
  for (uint32_t n = 0; n < options_.background_batch; n++) {
    if (rc != 0 || !View(k).starts_with(prefix)) {
      done = rc == 0 || rc == MDB_NOTFOUND;
      if (!done) status = MdbStatus(rc, "index build");
      break;
    }
    std::string_view pk = View(k).substr(4);
    RecordView rv;
    if (!internal::DecodeRecord(*catalog, View(k), View(v), &rv)) {
      // The index cannot hold a damaged record's values: the build fails, saying which.
      next.state = IndexState::kFailed;
      next.error = internal::DamagedRecord(ctx, *coll, pk).message();
      break;
    }
    enc.clear();
    if (rv.kind == ValueKind::kDocument && internal::EncodeIndexFields(rv.value, index->paths, &enc)) {
      internal::MakeIndexKey(index->id, enc, &ik);
      if (index->spec.unique) {
        status = internal::FindUniqueHolder(ctx, *coll, *index, ik, enc, pk, &holder);
        if (!status.ok()) break;
        if (!holder.empty()) {
          next.state = IndexState::kFailed;
          next.error = "records '" + holder + "' and '" + std::string(pk) +
                       "' have the same value, so the index cannot be unique";
          break;
        }
      }
      MDB_val ikv = Val(ik), pkv = Val(pk);
      int prc = mdb_put(txn, dbs_.index, &ikv, &pkv, MDB_NODUPDATA);
      if (prc != 0 && prc != MDB_KEYEXIST) {
        status = MdbStatus(prc, "index build");
        break;
      }
    }
    next.cursor.assign(pk);
    next.cursor_set = true;
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  if (cur) mdb_cursor_close(cur);
  if (!status.ok()) {
    // A storage error (say, a full database): retry later rather than spin.
    mdb_txn_abort(txn);
    return false;
  }
  if (done && next.state == IndexState::kBuilding) {
    next.state = IndexState::kReady;
    next.cursor.clear();
    next.cursor_set = false;
  }
  std::string meta_key = internal::IndexMetaKey(coll->id, index->spec.name);
  std::string meta_value = internal::EncodeIndex(next);
  MDB_val mk = Val(meta_key), mv = Val(meta_value);
  rc = mdb_put(txn, dbs_.meta, &mk, &mv, 0);
  if (rc == 0) {
    rc = mdb_txn_commit(txn);
    (void)CommitStatus(rc, "index build");
  } else {
    mdb_txn_abort(txn);
  }
  if (rc != 0) return false;
  auto updated = std::make_shared<Catalog>(*catalog);
  for (IndexDesc& ix : updated->collections.at(coll->name).indexes) {
    if (ix.id == next.id) ix = next;
  }
  PublishCatalog(std::move(updated));
  return true;
}

bool Engine::Impl::CleanupBatch() {
  std::lock_guard lock(write_mu_);
  if (fatal_rc_) return false;
  MDB_txn* txn;
  if (mdb_txn_begin(env_, nullptr, 0, &txn) != 0) return false;
  MDB_cursor* meta_cur;
  if (mdb_cursor_open(txn, dbs_.meta, &meta_cur) != 0) {
    mdb_txn_abort(txn);
    return false;
  }
  MDB_val k = Val(internal::kCleanupPrefix), v;
  int rc = mdb_cursor_get(meta_cur, &k, &v, MDB_SET_RANGE);
  std::string meta_key(rc == 0 ? View(k) : std::string_view());
  std::string kind(rc == 0 ? View(v) : std::string_view());
  mdb_cursor_close(meta_cur);
  if (rc != 0 || !meta_key.starts_with(internal::kCleanupPrefix) || meta_key.size() != 6 ||
      kind.size() != 1) {
    mdb_txn_abort(txn);
    return false;
  }
  bool records = internal::CleanupKind(kind[0]) == internal::CleanupKind::kRecords;
  MDB_dbi dbi = records ? dbs_.records : dbs_.index;
  std::string prefix = meta_key.substr(internal::kCleanupPrefix.size());
  MDB_cursor* cur = nullptr;
  rc = mdb_cursor_open(txn, dbi, &cur);
  // Cleanup frees space, so it may use the reserve; but on a full disk even deleting
  // needs new pages (copy on write), so a batch that finds no room is halved and retried.
  const uint32_t batch = std::max<uint32_t>(cleanup_batch_, 1);
  uint32_t n = 0;
  while (rc == 0 && n < batch) {
    k = Val(prefix);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc != 0 || !View(k).starts_with(prefix)) break;
    rc = mdb_cursor_del(cur, records ? 0 : MDB_NODUPDATA);
    n++;
  }
  if (cur) mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return ShrinkCleanup(rc);
  }
  if (n < batch) {  // nothing left under this prefix
    MDB_val mk = Val(meta_key);
    rc = mdb_del(txn, dbs_.meta, &mk, nullptr);
  } else {
    rc = 0;
  }
  if (rc == 0) {
    rc = mdb_txn_commit(txn);
    if (Status s = CommitStatus(rc, "cleanup"); !s.ok()) return ShrinkCleanup(rc);
  } else {
    mdb_txn_abort(txn);
    return ShrinkCleanup(rc);
  }
  cleanup_batch_ = std::min(options_.background_batch, 2 * batch);
  return true;
}

bool Engine::Impl::ShrinkCleanup(int rc) {
  // Out of room (or a transaction too large): fewer records per batch, down to one; then
  // wait for the next wake-up or reader check.
  bool room = rc == MDB_MAP_FULL || rc == MDB_TXN_FULL || rc == ENOSPC || rc == EDQUOT ||
              rc == EFBIG || rc == EIO;
  if (!room || fatal_rc_ || cleanup_batch_ <= 1) return false;
  cleanup_batch_ /= 2;
  return true;  // try again at once
}

bool Engine::Impl::UpgradeBatch() {
  // Rewrites up to background_batch records of format 2 (without a checksum) in the order
  // of the records database, from the persisted cursor, in one write transaction with the
  // cursor's new position: a crash leaves the cursor and the records in step.
  std::lock_guard lock(write_mu_);
  if (fatal_rc_) return false;
  auto catalog = this->catalog();
  if (!catalog->checksum_upgrade) return false;
  internal::WriteTxn txn;
  if (txn.Begin(env_) != 0) return false;
  const std::string& from = *catalog->checksum_upgrade;
  // Read the batch first, then write: a put may move the cursor's page.
  std::vector<std::pair<std::string, std::string>> rewrites;  // record key, new value
  std::string last = from;
  bool done = false;
  {
    internal::Cursor cur(txn.get(), dbs_.records);
    if (cur.open_rc() != 0) return false;
    int rc = from.empty() ? cur.Get(MDB_FIRST) : cur.Seek(MDB_SET_RANGE, from);
    if (rc == 0 && !from.empty() && cur.key() == from) rc = cur.Get(MDB_NEXT);
    for (uint32_t n = 0; n < options_.background_batch && rc == 0; n++) {
      std::string_view key = cur.key(), stored = cur.value();
      RecordView rv;
      // A damaged record is left as it is, for Verify to report.
      if (!internal::HasChecksum(stored) && internal::DecodeRecord(*catalog, key, stored, &rv)) {
        std::string value(internal::StoredRecordSize(rv.value.size()), '\0');
        internal::EncodeRecord(key, rv.version, rv.kind, rv.value, value.data());
        rewrites.emplace_back(key, std::move(value));
      }
      last.assign(key);
      rc = cur.Get(MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return false;
    done = rc == MDB_NOTFOUND;
  }
  // The rewrites grow every record by its checksum: they must leave the reserve for
  // deletes and drops alone, like an index build. Refused, the upgrade waits for the next
  // wake-up or reader check and tries again; old records read as they are meanwhile.
  uint64_t need = uint64_t{64} << 10;
  for (const auto& [key, value] : rewrites) need += 2 * (key.size() + value.size());
  if (!rewrites.empty() && !space_.Admit(need).ok()) {
    full_refusals_++;
    return false;
  }
  for (auto& [key, value] : rewrites) {
    MDB_val k = Val(key), v = Val(value);
    if (mdb_put(txn.get(), dbs_.records, &k, &v, 0) != 0) return false;  // retried later
  }
  MDB_val mk = Val(internal::kMetaUpgrade), mv = Val(last);
  int rc = done ? mdb_del(txn.get(), dbs_.meta, &mk, nullptr)
                : mdb_put(txn.get(), dbs_.meta, &mk, &mv, 0);
  if (rc != 0) return false;
  if (!CommitStatus(txn.Commit(), "checksum upgrade").ok()) return false;
  auto updated = std::make_shared<Catalog>(*catalog);
  if (done) {
    updated->checksum_upgrade.reset();
  } else {
    updated->checksum_upgrade = std::move(last);
  }
  PublishCatalog(std::move(updated));
  return true;
}

}  // namespace cairn
