// The engine's side of replication (docs/storage.md, "Replication"): applying a
// primary's change log, the raw log reader, the epoch history and the fence, the
// refusal of writes on replicas and fenced primaries, and trimming the change log
// around a replica's hold.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "coding.h"
#include "engine_impl.h"
#include "idempotency.h"

namespace cairn {

using internal::Catalog;
using internal::ChangeView;
using internal::MdbStatus;
using internal::Val;
using internal::View;

namespace internal {

// --- The history as stored (meta kMetaHistory):
//   [version = 1][n: varint] n × ([epoch: u64 BE][id: u64 BE][first commit: u64 BE])
//   [XXH3-64 LE of everything before]

namespace {
constexpr uint8_t kHistoryVersion = 1;
constexpr uint64_t kMaxEpochs = 1 << 20;  // a sanity bound: one per promotion

// Epochs increase strictly, and their first commits never decrease (an epoch that made
// no commit is followed by one with the same first commit).
bool ValidHistory(const std::vector<EpochStart>& h) {
  if (h.empty() || h.front().epoch == 0 || h.front().first_commit == 0) return false;
  for (size_t i = 1; i < h.size(); i++) {
    if (h[i].epoch <= h[i - 1].epoch || h[i].first_commit < h[i - 1].first_commit) return false;
  }
  return true;
}
}  // namespace

std::string EncodeHistory(const std::vector<EpochStart>& history) {
  std::string out;
  out.push_back(char(kHistoryVersion));
  PutVarint(&out, history.size());
  for (const EpochStart& e : history) {
    PutU64BE(&out, e.epoch);
    PutU64BE(&out, e.id);
    PutU64BE(&out, e.first_commit);
  }
  PutU64LE(&out, XXH3_64bits(out.data(), out.size()));
  return out;
}

bool DecodeHistory(std::string_view stored, std::vector<EpochStart>* history) {
  if (stored.size() < 8) return false;
  std::string_view body = stored.substr(0, stored.size() - 8);
  if (LoadU64LE(stored.data() + body.size()) != XXH3_64bits(body.data(), body.size())) {
    return false;
  }
  ByteReader r(body);
  uint8_t version;
  uint64_t n;
  if (!r.U8(&version) || version != kHistoryVersion || !r.Varint(&n) || n > kMaxEpochs) {
    return false;
  }
  history->resize(n);
  for (EpochStart& e : *history) {
    if (!r.U64BE(&e.epoch) || !r.U64BE(&e.id) || !r.U64BE(&e.first_commit)) return false;
  }
  return r.empty() && ValidHistory(*history);
}

}  // namespace internal

namespace {

// A random epoch id: tells apart two nodes promoted to the same epoch number.
uint64_t RandomEpochId() {
  std::random_device rd;  // getrandom(2) in libstdc++
  uint64_t id = 0;
  while (id == 0) id = uint64_t(rd()) << 32 | rd();
  return id;
}

std::string U64BE(uint64_t v) {
  std::string s;
  internal::PutU64BE(&s, v);
  return s;
}

std::string DescribeEpoch(const EpochStart& e) {
  if (e.epoch == 0) return "the empty database";
  return "epoch " + std::to_string(e.epoch) + " (id " + std::to_string(e.id) + ", from commit " +
         std::to_string(e.first_commit) + ")";
}

// Errors of storage (room, LMDB limits, I/O) as opposed to an entry that does not fit
// the replica's data: those are the replica's own and go back as they are.
bool StorageError(Code code) {
  return code == Code::kDatabaseFull || code == Code::kTooLarge || code == Code::kInternal ||
         code == Code::kUnavailable;
}

}  // namespace

// --- Refusing writes.

Status Engine::Impl::WriteRefusal() const {
  if (replica_.load()) {
    return Status(Code::kReadOnly, "this database is a replica; writes go to its primary");
  }
  if (fenced_.load()) {
    uint64_t mine;
    {
      std::lock_guard lock(history_mu_);
      mine = history_.back().epoch;
    }
    return Status(Code::kReadOnly, "a newer primary (epoch " + std::to_string(fence_epoch_.load()) +
                                       ") exists: this database, of epoch " + std::to_string(mine) +
                                       ", no longer takes writes; they go to the new primary");
  }
  return Status::Ok();
}

std::vector<TxnResult> Engine::Impl::RefuseWrites(std::span<const Transaction* const> txns,
                                                  const Status& why) const {
  std::vector<TxnResult> results(txns.size());
  for (size_t i = 0; i < txns.size(); i++) {
    if (!txns[i]->read_only()) {
      results[i].status = why;
      continue;
    }
    // The catalog before the snapshot, as BeginRead takes them.
    auto catalog = this->catalog();
    MDB_txn* txn;
    if (Status s = AcquireReadTxn(&txn); !s.ok()) {
      results[i].status = s;
      continue;
    }
    results[i].status =
        internal::RunTransaction(ReadCtx(txn, catalog.get()), *txns[i], &results[i]);
    ReleaseReadTxn(txn);
  }
  return results;
}

// --- Applying a primary's change log.

namespace {

// What a batch of entries may take (SpaceReserve::Admit), estimated as the primary's
// write path estimates its transactions: twice each put's key and value (the record and
// the entry), two pages per put and per entry, and a catalog change's few pages. Entries
// that only delete or drop free space and may use the reserve, as on the primary.
uint64_t ApplyNeed(std::span<const ChangeView> changes, uint64_t page) {
  uint64_t need = 0;
  for (const ChangeView& c : changes) {
    if (c.kind == Change::kPut) need += 2 * (c.key.size() + c.value.size()) + 2 * page;
    if (c.kind == Change::kCreateCollection || c.kind == Change::kCreateIndex) {
      need += internal::kCatalogNeed;
    }
  }
  return need == 0 ? 0 : need + 2 * page;
}

std::string DescribeChange(const ChangeView& c) {
  using internal::Printable;
  switch (c.kind) {
    case Change::kPut:
      return "put of '" + Printable(c.key) + "' into '" + Printable(c.collection) + "'";
    case Change::kDelete:
      return "delete of '" + Printable(c.key) + "' from '" + Printable(c.collection) + "'";
    case Change::kCreateCollection:
      return "creation of collection '" + Printable(c.collection) + "'";
    case Change::kDropCollection:
      return "drop of collection '" + Printable(c.collection) + "'";
    case Change::kCreateIndex:
      return "creation of an index on '" + Printable(c.collection) + "'";
    case Change::kDropIndex:
      return "drop of index '" + Printable(c.index) + "' of '" + Printable(c.collection) + "'";
  }
  return "change";
}

}  // namespace

Status Engine::Impl::ApplyLog(std::span<const RawLogEntry> entries) {
  if (options_.read_only) return Status(Code::kReadOnly, "the database is open read-only");
  std::lock_guard lock(write_mu_);
  if (int f = fatal_rc_.load()) return FatalStatus(f);
  if (!replica_.load()) {
    return Status(Code::kBadRequest, "database " + dir_ +
                                         " is a primary's: it makes its own commits and applies "
                                         "no other database's change log");
  }
  if (entries.empty()) return Status::Ok();

  // Everything is checked before anything is written: the order, then each entry.
  for (size_t i = 0; i < entries.size(); i++) {
    uint64_t expected = last_commit_ + 1 + i;
    if (entries[i].commit == expected) continue;
    if (i == 0) {
      return Status(Code::kBadRequest,
                    "change-log entries must start at the commit after this replica's last (" +
                        std::to_string(last_commit_) + "): expected commit " +
                        std::to_string(expected) + ", got " + std::to_string(entries[i].commit));
    }
    return Status(Code::kBadRequest, "change-log entries must be consecutive: expected commit " +
                                         std::to_string(expected) + " after " +
                                         std::to_string(expected - 1) + ", got " +
                                         std::to_string(entries[i].commit));
  }
  thread_local std::vector<ChangeView> changes;
  thread_local std::vector<internal::LogHeader> headers;
  thread_local std::vector<size_t> ends;  // entry i's changes end at changes[ends[i]]
  changes.clear();
  headers.assign(entries.size(), {});
  ends.clear();
  bool catalog_changes = false;
  for (size_t i = 0; i < entries.size(); i++) {
    const RawLogEntry& e = entries[i];
    size_t begin = changes.size();
    if (!internal::DecodeLogChanges(e.commit, e.data, &headers[i], &changes)) {
      return Status(Code::kCorrupted, "the change-log entry of commit " + std::to_string(e.commit) +
                                          " (" + std::to_string(e.data.size()) +
                                          " bytes) fails its checksum or is malformed; nothing "
                                          "of this batch was applied");
    }
    if (changes.size() == begin) {
      return Status(Code::kCorrupted, "the change-log entry of commit " + std::to_string(e.commit) +
                                          " holds no change; nothing of this batch was applied");
    }
    for (size_t j = begin; j < changes.size(); j++) {
      catalog_changes = catalog_changes ||
                        (changes[j].kind != Change::kPut && changes[j].kind != Change::kDelete);
    }
    ends.push_back(changes.size());
  }
  if (uint64_t need = ApplyNeed(changes, space_.page()); need > 0) {
    if (Status s = space_.Admit(need); !s.ok()) {
      full_refusals_++;
      return s;
    }
  }

  internal::WriteTxn txn;
  if (int rc = txn.Begin(env_); rc != 0) return MdbStatus(rc, "begin");
  // Catalog changes edit a copy, published once the batch commits; the batch's later
  // entries see it.
  auto current = catalog();
  std::shared_ptr<Catalog> next;
  if (catalog_changes) next = std::make_shared<Catalog>(*current);
  const uint32_t saved_next_id = next_id_;
  internal::Ctx ctx = ReadCtx(txn.get(), next ? next.get() : current.get());
  ctx.log = &apply_scratch_;
  ctx.replay = true;
  bool wake = false;
  uint64_t appended = 0;
  auto fail = [&](Status s) {
    next_id_ = saved_next_id;
    return s;
  };
  for (size_t i = 0, j = 0; i < entries.size(); i++) {
    const RawLogEntry& e = entries[i];
    ctx.commit = e.commit;
    for (; j < ends[i]; j++) {
      const ChangeView& c = changes[j];
      apply_scratch_.Clear();
      OpResult r;
      Status s;
      switch (c.kind) {
        case Change::kPut:
          // Documents are checked again, so that nothing that could crash a reader is
          // stored, whatever reached the replica: the entry's checksum vouches only for its
          // transport.
          s = internal::PutRecord(
              ctx, PutOp{c.collection, c.key, c.value, c.value_kind, PutMode::kUpsert}, false, &r);
          break;
        case Change::kDelete:
          s = internal::DeleteRecord(ctx, DeleteOp{c.collection, c.key}, &r);
          // The primary logs only deletes of records it held.
          if (s.ok() && !r.found) s = Status(Code::kNotFound, "this replica has no such record");
          break;
        case Change::kCreateCollection:
          s = CreateCollectionIn(txn.get(), *next, c.collection, e.commit);
          break;
        case Change::kDropCollection:
          s = DropCollectionIn(txn.get(), *next, c.collection);
          wake = true;
          break;
        case Change::kCreateIndex: {
          IndexSpec spec;
          (void)internal::DecodeIndexSpec(c.index, &spec);  // checked by DecodeLogChanges
          s = CreateIndexIn(txn.get(), *next, c.collection, spec);
          wake = true;
          break;
        }
        case Change::kDropIndex:
          s = DropIndexIn(txn.get(), *next, c.collection, c.index);
          wake = true;
          break;
      }
      if (s.ok()) continue;
      std::string where = "commit " + std::to_string(e.commit) + " (" + DescribeChange(c) + ")";
      if (s.code() == Code::kDatabaseFull) s = s.WithContext("database " + dir_);
      if (StorageError(s.code())) return fail(s.WithContext("applying " + where));
      return fail(Status(Code::kCorrupted,
                         "cannot apply " + where + ": " + s.message() +
                             "; this replica no longer holds what its primary held before that "
                             "commit: bootstrap it again. Nothing of this batch was applied"));
    }
    // The entry itself, verbatim: the replica's log is its primary's.
    char key[8];
    internal::StoreU64BE(key, e.commit);
    MDB_val k{8, key}, v = Val(e.data);
    if (int rc = mdb_put(txn.get(), dbs_.log, &k, &v, MDB_APPEND); rc != 0) {
      return fail(MdbStatus(rc, "change log"));
    }
    appended += e.data.size();
  }
  const uint64_t last = entries.back().commit;
  uint64_t first = log_first_, trimmed = 0;
  Status s = TrimLog(txn.get(), last, entries.size(), appended, &first, &trimmed);
  if (s.ok()) s = CommitStatus(txn.Commit(), "commit");
  if (!s.ok()) return fail(s);

  CountLogBytes(appended, trimmed);
  log_first_ = first;
  last_commit_ = last;
  commits_ += entries.size();
  group_commits_++;
  applied_batches_++;
  // The entries' idempotency keys, as the primary remembered them; and stamps that never
  // go below theirs, so that the log stays in time order once this replica is promoted.
  for (size_t i = 0; i < entries.size(); i++) {
    const internal::LogHeader& h = headers[i];
    last_stamp_ms_ = std::max(last_stamp_ms_, h.time_ms);
    if (!h.idempotency_key.empty()) {
      idempotency_.Add(h.time_ms, internal::IdempotencyHash(h.idempotency_key), entries[i].commit);
    }
  }
  TrimIdempotency(first);
  if (next) PublishCatalog(std::move(next));
  if (wake) WakeBackground();
  return Status::Ok();
}

// --- Trimming the change log.

Status Engine::Impl::TrimLog(MDB_txn* txn, uint64_t last, size_t written, uint64_t appended,
                             uint64_t* first, uint64_t* trimmed) {
  *trimmed = 0;
  const uint64_t retention = std::max<uint64_t>(options_.log_retention, 1);
  uint64_t keep = last >= retention ? last - retention + 1 : 1;  // entries below it may go
  // A hold keeps more, while it is within both bounds and the entries it asks for are
  // still there; past either bound it is ignored, and the replica that set it must
  // bootstrap again.
  const uint64_t hold = log_hold_.load();
  if (hold != 0 && hold < keep && last - hold < options_.replica_log_keep &&
      (options_.replica_log_keep_bytes == 0 ||
       log_bytes_.load() + appended <= options_.replica_log_keep_bytes) &&
      hold >= log_first_.load()) {
    keep = hold;
  }
  // Incremental: a few entries per commit, more while the trimmed bytes fall short of
  // the appended ones (small old entries, large new ones), so that the log keeps up.
  const size_t budget = 2 * written + 8, cap = 16 * budget;
  internal::Cursor cur(txn, dbs_.log);
  if (cur.open_rc() != 0) return MdbStatus(cur.open_rc(), "cursor");
  int rc = cur.Get(MDB_FIRST);
  for (size_t n = 0; rc == 0; n++) {
    uint64_t commit = internal::LoadU64BE(cur.key().data());
    if (commit >= keep || n == cap || (n >= budget && *trimmed >= 2 * appended)) break;
    uint64_t size = cur.value().size();
    if ((rc = mdb_cursor_del(cur.get(), 0)) != 0) break;
    *trimmed += size;
    rc = cur.Get(MDB_FIRST);
  }
  *first = rc == 0 ? internal::LoadU64BE(cur.key().data()) : 0;
  return rc == 0 || rc == MDB_NOTFOUND ? Status::Ok() : MdbStatus(rc, "change log trim");
}

// --- The history and the fence.

Status Engine::Impl::LoadHistory(MDB_txn* txn) {
  MDB_val k = Val(internal::kMetaHistory), v;
  int rc = mdb_get(txn, dbs_.meta, &k, &v);
  std::vector<EpochStart> history;
  if (rc == 0) {
    if (!internal::DecodeHistory(View(v), &history)) {
      return Status(Code::kCorrupted, dir_ +
                                          ": the database's history (meta #history) is "
                                          "damaged; restore from a backup or a replica");
    }
  } else if (rc == MDB_NOTFOUND) {
    // A new database, or one made before histories: epoch 1 made every commit. A
    // read-only open cannot store an id, and says 0 (unknown).
    history = {EpochStart{1, options_.read_only ? 0 : RandomEpochId(), 1}};
    if (!options_.read_only) {
      std::string value = internal::EncodeHistory(history);
      MDB_val hv = Val(value);
      if ((rc = mdb_put(txn, dbs_.meta, &k, &hv, 0)) != 0) return MdbStatus(rc, "history");
    }
  } else {
    return MdbStatus(rc, "history");
  }
  fence_epoch_ = internal::ReadMetaU64(txn, dbs_.meta, internal::kMetaFence);
  MDB_val ok = Val(internal::kMetaEpochOwner), ov;
  if (mdb_get(txn, dbs_.meta, &ok, &ov) == 0) stored_owner_ = std::string(View(ov));
  SetHistory(std::move(history));
  return Status::Ok();
}

namespace {

// This folder's node id: read from its cairn.node, or made (random) and stored there
// durably on first use.
Result<std::string> NodeId(const std::string& dir) {
  std::string path = (std::filesystem::path(dir) / internal::kNodeFile).string();
  std::string id;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[64] = {};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    id.assign(buf, n);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string::npos) {
      return id;
    }
    return Status(Code::kCorrupted, path + " does not hold a node id (16 hex digits); remove "
                                           "it to give this folder a new one");
  }
  if (errno != ENOENT) return Status(Code::kInternal, "cannot read " + path + ": " + std::strerror(errno));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)RandomEpochId());
  id = hex;
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status(Code::kInternal, "cannot create " + tmp + ": " + std::strerror(errno));
  std::string line = id + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  ok = ok && ::rename(tmp.c_str(), path.c_str()) == 0;
  if (ok) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && ::fsync(dfd) == 0;
    if (dfd >= 0) ::close(dfd);
  }
  if (!ok) return Status(Code::kInternal, "cannot write " + path + ": " + std::strerror(errno));
  return id;
}

}  // namespace

Status Engine::Impl::ClaimEpoch() {
  auto id = NodeId(dir_);
  if (!id.ok()) return id.status();
  node_id_ = *id;
  const std::string& owner = stored_owner_;  // read by LoadHistory
  if (owner.empty()) {
    // A database made before owners were recorded, or a new one: its epochs are this
    // node's.
    std::lock_guard lock(write_mu_);
    return WriteNodeMeta({{internal::kMetaEpochOwner, node_id_}});
  }
  if (owner == node_id_ || replica_) return Status::Ok();
  auto e = StartEpoch();
  if (!e.ok()) return e.status();
  copy_started_epoch_ = true;
  return Status::Ok();
}

void Engine::Impl::SetHistory(std::vector<EpochStart> history) {
  uint64_t last_epoch = history.back().epoch;
  {
    std::lock_guard lock(history_mu_);
    history_ = std::move(history);
  }
  fenced_ = fence_epoch_.load() > last_epoch;
}

Status Engine::Impl::WriteNodeMeta(
    const std::vector<std::pair<std::string_view, std::string>>& puts) {
  internal::WriteTxn txn;
  if (int rc = txn.Begin(env_); rc != 0) return MdbStatus(rc, "begin");
  for (const auto& [key, value] : puts) {
    MDB_val k = Val(key), v = Val(value);
    if (int rc = mdb_put(txn.get(), dbs_.meta, &k, &v, 0); rc != 0)
      return MdbStatus(rc, "meta put");
  }
  if (Status s = CommitStatus(txn.Commit(), "commit"); !s.ok()) return s;
  // An epoch or a fence that a power loss could undo would let two primaries write.
  if (options_.durability != Durability::kSync) {
    return CommitStatus(mdb_env_sync(env_, 1), "flush");
  }
  return Status::Ok();
}

std::vector<EpochStart> Engine::Impl::History() const {
  std::lock_guard lock(history_mu_);
  return history_;
}

uint64_t Engine::Impl::HighestEpochSeen() const {
  std::lock_guard lock(history_mu_);
  return std::max(history_.back().epoch, fence_epoch_.load());
}

Status Engine::Impl::AdoptHistory(const std::vector<EpochStart>& theirs) {
  if (options_.read_only) return Status(Code::kReadOnly, "the database is open read-only");
  if (!internal::ValidHistory(theirs)) {
    return Status(Code::kBadRequest,
                  "the primary's history is malformed (epochs must increase, "
                  "their first commits never decrease)");
  }
  std::lock_guard lock(write_mu_);
  if (int f = fatal_rc_.load()) return FatalStatus(f);
  // A primary that took another's history would make commits in an epoch not its own.
  if (!replica_.load()) {
    return Status(Code::kBadRequest, "only a replica takes its primary's history; database " +
                                         dir_ + " is a primary's");
  }
  std::vector<EpochStart> mine = History();
  const uint64_t last = last_commit_;
  EpochStart my_epoch = EpochOf(mine, last), their_epoch = EpochOf(theirs, last);
  if (my_epoch != their_epoch) {
    return Status(Code::kDiverged,
                  "this database's last commit " + std::to_string(last) + " was made by " +
                      DescribeEpoch(my_epoch) + ", but the primary's history has commit " +
                      std::to_string(last) + " from " + DescribeEpoch(their_epoch) +
                      ": the histories diverged. Bootstrap this replica again from the primary "
                      "(its commits that the primary lacks are then lost)");
  }
  if (mine == theirs) return Status::Ok();
  if (Status s = WriteNodeMeta({{internal::kMetaHistory, internal::EncodeHistory(theirs)}});
      !s.ok()) {
    return s;
  }
  SetHistory(theirs);
  return Status::Ok();
}

Result<EpochStart> Engine::Impl::StartEpoch() {
  if (options_.read_only) return Status(Code::kReadOnly, "the database is open read-only");
  std::lock_guard lock(write_mu_);
  if (int f = fatal_rc_.load()) return FatalStatus(f);
  std::vector<EpochStart> history = History();
  EpochStart e{HighestEpochSeen() + 1, RandomEpochId(), last_commit_ + 1};
  history.push_back(e);
  // The fence goes up with the epoch: this node has now heard of its own.
  if (Status s = WriteNodeMeta({{internal::kMetaHistory, internal::EncodeHistory(history)},
                                {internal::kMetaFence, U64BE(e.epoch)},
                                {internal::kMetaEpochOwner, node_id_}});
      !s.ok()) {
    return s;
  }
  fence_epoch_ = e.epoch;
  SetHistory(std::move(history));
  replica_ = false;
  return e;
}

Status Engine::Impl::Fence(uint64_t epoch) {
  if (options_.read_only) return Status(Code::kReadOnly, "the database is open read-only");
  std::lock_guard lock(write_mu_);
  if (epoch <= HighestEpochSeen()) return Status::Ok();  // nothing new
  if (int f = fatal_rc_.load()) return FatalStatus(f);
  if (Status s = WriteNodeMeta({{internal::kMetaFence, U64BE(epoch)}}); !s.ok()) return s;
  fence_epoch_ = epoch;
  std::lock_guard history_lock(history_mu_);
  fenced_ = epoch > history_.back().epoch;
  return Status::Ok();
}

// --- Engine's calls.

Status Engine::ReadRawLog(uint64_t from, size_t max_entries, size_t max_bytes,
                          std::vector<RawLogEntry>* out) const {
  return impl_->VisitLog(from, max_entries, max_bytes, [&](uint64_t commit, std::string_view data) {
    // Checked here too, so that a damaged entry is named where it is, not by the replica.
    internal::LogHeader h;
    if (!internal::DecodeLogHeader(commit, data, &h)) {
      impl_->corrupted_reads_++;
      return Status(Code::kCorrupted, "the change-log entry of commit " + std::to_string(commit) +
                                          " fails its checksum; it is not sent");
    }
    out->push_back(RawLogEntry{commit, std::string(data)});
    return Status::Ok();
  });
}

Status Engine::ApplyLog(std::span<const RawLogEntry> entries) { return impl_->ApplyLog(entries); }

std::vector<EpochStart> Engine::History() const { return impl_->History(); }

EpochStart Engine::EpochOf(const std::vector<EpochStart>& history, uint64_t commit) {
  // Commit 0 is the empty database, before any epoch: common to every history.
  EpochStart out{};
  if (commit == 0) return out;
  for (const EpochStart& e : history) {
    if (e.first_commit > commit) break;
    out = e;
  }
  return out;
}

bool Engine::OnHistory(const std::vector<EpochStart>& mine, uint64_t commit,
                       const std::vector<EpochStart>& theirs, uint64_t their_last) {
  return commit <= their_last && EpochOf(mine, commit) == EpochOf(theirs, commit);
}

Status Engine::AdoptHistory(const std::vector<EpochStart>& theirs) {
  return impl_->AdoptHistory(theirs);
}
Result<EpochStart> Engine::StartEpoch() { return impl_->StartEpoch(); }
Status Engine::Fence(uint64_t epoch) { return impl_->Fence(epoch); }
uint64_t Engine::HighestEpochSeen() const { return impl_->HighestEpochSeen(); }
void Engine::HoldLog(uint64_t commit) { impl_->log_hold_ = commit; }

}  // namespace cairn
