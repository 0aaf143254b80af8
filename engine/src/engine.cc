// Engine: opening and closing, the catalog, the write path (group commit),
// read transactions and the change log reader.
#include "cairn/engine/engine.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <unordered_map>
#include <utility>

#include "coding.h"
#include "engine_impl.h"
#include "idempotency.h"

namespace fs = std::filesystem;

namespace cairn {

using internal::Catalog;
using internal::CollectionDesc;
using internal::IndexDesc;
using internal::LogEntryBuilder;
using internal::MdbStatus;
using internal::Val;
using internal::View;
using internal::WriteTxn;

namespace {

constexpr const char* kLockFile = "cairn.lock";

Status PutMeta(MDB_txn* txn, MDB_dbi meta, std::string_view key, std::string_view value) {
  MDB_val k = Val(key), v = Val(value);
  return MdbStatus(mdb_put(txn, meta, &k, &v, 0), "meta put");
}

Status PutMetaU64(MDB_txn* txn, MDB_dbi meta, std::string_view key, uint64_t value) {
  char b[8];
  internal::StoreU64BE(b, value);
  return PutMeta(txn, meta, key, std::string_view(b, 8));
}

Status DelMeta(MDB_txn* txn, MDB_dbi meta, std::string_view key) {
  MDB_val k = Val(key);
  int rc = mdb_del(txn, meta, &k, nullptr);
  return rc == MDB_NOTFOUND ? Status::Ok() : MdbStatus(rc, "meta delete");
}

// A catalog change's entry (transactions' entries are written by CommitGroup). Adds the
// entry's size to *bytes.
Status AppendLogEntry(MDB_txn* txn, MDB_dbi log, uint64_t commit, LogEntryBuilder& b,
                      uint64_t time_ms, uint64_t* bytes) {
  char key[8];
  internal::StoreU64BE(key, commit);
  std::string_view entry = b.Finish(commit, time_ms);
  MDB_val k{8, key}, v = Val(entry);
  *bytes += entry.size();
  return MdbStatus(mdb_put(txn, log, &k, &v, MDB_APPEND), "change log");
}

// The data file must hold every page its meta page says the database has: LMDB maps the
// file, and the first read of a page past its end would kill the process with SIGBUS.
// mdb_env_open reads only the two meta pages (with pread, before mapping), so this runs
// after it and before anything reads a data page. The meta page is read before the file's
// size: a writer in another process may grow the file meanwhile, never shrink it, so a
// sound file never looks short.
Status CheckFileSize(MDB_env* env, const std::string& dir) {
  MDB_envinfo info;
  MDB_stat st;
  int fd = -1;
  if (int rc = mdb_env_info(env, &info); rc != 0) return MdbStatus(rc, "env info");
  if (int rc = mdb_env_stat(env, &st); rc != 0) return MdbStatus(rc, "env stat");
  if (int rc = mdb_env_get_fd(env, &fd); rc != 0) return MdbStatus(rc, "env fd");
  struct stat sb;
  if (::fstat(fd, &sb) != 0) {
    return Status(Code::kInternal, "cannot stat " + dir + "/data.mdb: " + std::strerror(errno));
  }
  const uint64_t pages = uint64_t(info.me_last_pgno) + 1;
  const uint64_t claimed = pages * st.ms_psize;
  if (uint64_t(sb.st_size) >= claimed) return Status::Ok();
  return Status(Code::kCorrupted,
                dir + "/data.mdb is " + std::to_string(sb.st_size) + " bytes, but its meta page " +
                    "(transaction " + std::to_string(info.me_last_txnid) + ") says it holds " +
                    std::to_string(pages) + " pages of " + std::to_string(st.ms_psize) +
                    " bytes (" + std::to_string(claimed) +
                    " bytes): the file was truncated; restore from a backup");
}

// LMDB forbids opening one environment twice in a process: closing either one drops the
// other's locks on lock.mdb. cairn.lock's flock keeps writers of different processes apart;
// this set keeps any two Engines of one process apart, read-only ones included.
class OpenFolders {
 public:
  using Id = std::pair<dev_t, ino_t>;
  static bool Add(Id id) {
    std::lock_guard lock(mu());
    return ids().insert(id).second;
  }
  static void Remove(Id id) {
    std::lock_guard lock(mu());
    ids().erase(id);
  }

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::set<Id>& ids() {
    static std::set<Id> s;
    return s;
  }
};

// Bytes of new pages a transaction may take, for the reserve; 0 for one that frees space
// (deletes only) or writes nothing. A put stores its key and value twice (the record and
// its change-log entry) and may copy a leaf page of each B+tree it touches. An estimate:
// a write that takes more near the cap or a full disk fails cleanly with kDatabaseFull.
uint64_t RoomNeeded(const Transaction& t, uint64_t page) {
  uint64_t need = 0;
  for (const Op& op : t.ops) {
    if (const PutOp* p = std::get_if<PutOp>(&op)) {
      need += 2 * (p->key.size() + p->value.size()) + 2 * page;
    }
  }
  return need == 0 ? 0 : need + 2 * page;  // the log's leaf and trimming
}

uint64_t NowMs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

}  // namespace

namespace internal {

Status LoadCatalog(MDB_txn* txn, MDB_dbi meta, Catalog* catalog) {
  MDB_cursor* cur;
  if (int rc = mdb_cursor_open(txn, meta, &cur); rc != 0) return MdbStatus(rc, "cursor");
  std::unordered_map<uint32_t, CollectionDesc*> by_id;
  Status status;
  MDB_val k = Val(kCollectionPrefix), v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (!key.starts_with(kCollectionPrefix)) break;
    std::string_view name = key.substr(kCollectionPrefix.size());
    CollectionDesc c;
    if (!DecodeCollection(name, View(v), &c)) {
      status = Status(Code::kInternal, "corrupt catalog entry for collection " + std::string(name));
      break;
    }
    auto& slot = catalog->collections[c.name];
    slot = std::move(c);
    by_id[slot.id] = &slot;
  }
  k = Val(kIndexPrefix);
  rc = status.ok() ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (!key.starts_with(kIndexPrefix)) break;
    key.remove_prefix(kIndexPrefix.size());
    IndexDesc ix;
    auto owner = key.size() > 4 ? by_id.find(LoadU32BE(key.data())) : by_id.end();
    if (owner == by_id.end() || !DecodeIndex(key.substr(4), View(v), &ix)) {
      status = Status(Code::kInternal, "corrupt catalog entry for an index");
      break;
    }
    owner->second->indexes.push_back(std::move(ix));
  }
  mdb_cursor_close(cur);
  // Records of formats 1 and 2 carry no checksum; format 3 records all do once the
  // upgrade's cursor is gone.
  if (ReadMetaU64(txn, meta, kMetaFormat) < 3) {
    catalog->checksum_upgrade.emplace();
  } else {
    k = Val(kMetaUpgrade);
    if (mdb_get(txn, meta, &k, &v) == 0) catalog->checksum_upgrade.emplace(View(v));
  }
  return status;
}

uint64_t LastCommitIn(MDB_txn* txn, const Dbs& dbs) {
  // The change log always holds the last commit's entry (retention keeps at least one),
  // so its last key is the last commit number; no counter is written per commit.
  MDB_cursor* cur;
  if (mdb_cursor_open(txn, dbs.log, &cur) != 0) return 0;
  MDB_val k, v;
  uint64_t last = 0;
  if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
    last = LoadU64BE(static_cast<const char*>(k.mv_data));
  }
  mdb_cursor_close(cur);
  return last;
}

}  // namespace internal

// --- Opening and closing.

Status Engine::Impl::Open() {
  std::error_code ec;
  if (!fs::exists(dir_, ec)) {
    if (options_.read_only) return Status(Code::kNotFound, "no database in " + dir_);
    fs::create_directories(dir_, ec);
    if (ec) return Status(Code::kInternal, "cannot create " + dir_ + ": " + ec.message());
  } else if (!fs::is_directory(dir_, ec)) {
    return Status(Code::kBadRequest, dir_ + " is not a folder");
  }

  struct stat dir_stat;
  if (::stat(dir_.c_str(), &dir_stat) != 0) {
    return Status(Code::kInternal, "cannot stat " + dir_ + ": " + std::strerror(errno));
  }
  if (!OpenFolders::Add({dir_stat.st_dev, dir_stat.st_ino})) {
    return Status(Code::kUnavailable,
                  "database " + dir_ + " is in use by this process (another Engine has it open)");
  }
  folder_id_ = {dir_stat.st_dev, dir_stat.st_ino};

  // One writer per database: two would corrupt the commit numbering. A read-only Engine
  // takes no lock, so that it can check a database a server is using (cairnd --verify):
  // LMDB's own reader table (lock.mdb) serves readers of every process.
  std::string lock_path = (fs::path(dir_) / kLockFile).string();
  if (!options_.read_only) {
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
      return Status(Code::kInternal, "cannot open " + lock_path + ": " + std::strerror(errno));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {};
      ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
      std::string holder = n > 0 ? std::string(pid, size_t(n)) : "unknown";
      while (!holder.empty() && holder.back() == '\n') holder.pop_back();
      return Status(Code::kUnavailable,
                    "database " + dir_ + " is in use by another process (pid " + holder + ")");
    }
    std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, me.data(), me.size(), 0) < 0) {
      return Status(Code::kInternal, "cannot write " + lock_path + ": " + std::strerror(errno));
    }
  }

  if (!fs::exists(fs::path(dir_) / "data.mdb", ec)) {
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      std::string name = entry.path().filename().string();
      if (name != kLockFile && name != "lock.mdb" && name != internal::kNodeFile) {
        return Status(Code::kBadRequest, "folder " + dir_ + " holds other files (" + name +
                                             ") and no cairn database; refusing to use it");
      }
    }
    if (options_.read_only) return Status(Code::kNotFound, "no database in " + dir_);
  } else if (fs::file_size(fs::path(dir_) / "data.mdb", ec) == 0 && !ec) {
    // LMDB would take an empty file for a new database and start one over whatever was
    // lost. Only a crash in the first moments of a new database leaves this honestly.
    return Status(Code::kCorrupted, dir_ + "/data.mdb is empty: restore it from a backup, or "
                                           "remove it to start a new database");
  }

  if (int rc = mdb_env_create(&env_); rc != 0) return MdbStatus(rc, "env create");
  mdb_env_set_maxdbs(env_, 8);
  mdb_env_set_maxreaders(env_, options_.max_readers);
  uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  uint64_t map_size = std::max<uint64_t>(options_.max_size, 64 * page);
  mdb_env_set_mapsize(env_, (map_size + page - 1) / page * page);
  unsigned flags = MDB_NOTLS;
  if (options_.durability == Durability::kNoMetaSync) flags |= MDB_NOMETASYNC;
  if (options_.durability == Durability::kNoSync) flags |= MDB_NOSYNC;
  if (options_.read_only) flags |= MDB_RDONLY;
  int rc = mdb_env_open(env_, dir_.c_str(), flags, 0644);
  if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
    return Status(Code::kBadRequest, dir_ + "/data.mdb is not a database this build can read (" +
                                         mdb_strerror(rc) + ")");
  }
  if (rc != 0) return MdbStatus(rc, "open " + dir_);
  if (Status s = CheckFileSize(env_, dir_); !s.ok()) return s;
  int dead = 0;
  if (mdb_reader_check(env_, &dead) == 0) stale_readers_cleared_ += uint64_t(dead);

  MDB_txn* txn;
  if ((rc = mdb_txn_begin(env_, nullptr, options_.read_only ? MDB_RDONLY : 0, &txn)) != 0) {
    return MdbStatus(rc, "begin");
  }
  auto fail = [&](Status s) {
    mdb_txn_abort(txn);
    return s;
  };
  MDB_dbi main;
  MDB_stat st;
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &main)) != 0 || (rc = mdb_stat(txn, main, &st)) != 0) {
    return fail(MdbStatus(rc, "open"));
  }
  const bool fresh = st.ms_entries == 0;
  if (fresh && options_.read_only) return fail(Status(Code::kNotFound, "no database in " + dir_));
  const unsigned create = fresh ? MDB_CREATE : 0;
  if ((rc = mdb_dbi_open(txn, "meta", create, &dbs_.meta)) != 0) {
    return fail(rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE
                    ? Status(Code::kBadRequest, dir_ + " holds an LMDB database that is not cairn's")
                    : MdbStatus(rc, "open meta"));
  }
  if (fresh) {
    Status s = PutMeta(txn, dbs_.meta, internal::kMetaMagic, internal::kMagicValue);
    if (s.ok()) s = PutMetaU64(txn, dbs_.meta, internal::kMetaFormat, internal::kFormatVersion);
    if (s.ok()) s = PutMetaU64(txn, dbs_.meta, internal::kMetaNextId, 1);
    if (!s.ok()) return fail(s);
  } else {
    MDB_val k = Val(internal::kMetaMagic), v;
    if (mdb_get(txn, dbs_.meta, &k, &v) != 0 || View(v) != internal::kMagicValue) {
      return fail(Status(Code::kBadRequest, dir_ + " holds an LMDB database that is not cairn's"));
    }
    uint64_t format = internal::ReadMetaU64(txn, dbs_.meta, internal::kMetaFormat);
    if (format == 1 && !options_.read_only) {
      // Format 1 kept idempotency keys in two databases of their own; format 2 keeps them
      // in the change-log entries. Its records, indexes and log are read as they are.
      for (const char* name : {"idem", "idem_order"}) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(txn, name, 0, &dbi);
        if (rc == 0) rc = mdb_drop(txn, dbi, 1);
        if (rc != 0 && rc != MDB_NOTFOUND) return fail(MdbStatus(rc, "upgrade"));
      }
      format = 2;
    }
    if (format == 2 && !options_.read_only) {
      // Format 3 adds a checksum to every record. The background thread rewrites the
      // records of format 2 in batches, from a cursor kept under kMetaUpgrade; until it
      // has passed a record, that record is read without a checksum.
      Status s = PutMeta(txn, dbs_.meta, internal::kMetaUpgrade, "");
      if (s.ok()) s = PutMetaU64(txn, dbs_.meta, internal::kMetaFormat, internal::kFormatVersion);
      if (!s.ok()) return fail(s);
      format = internal::kFormatVersion;
    }
    if (format != internal::kFormatVersion && !(format < 3 && format > 0 && options_.read_only)) {
      return fail(Status(Code::kBadRequest,
                         dir_ + " holds a cairn database of format " + std::to_string(format) +
                             "; this build reads format " +
                             std::to_string(internal::kFormatVersion)));
    }
  }
  if ((rc = mdb_dbi_open(txn, "records", create, &dbs_.records)) != 0 ||
      (rc = mdb_dbi_open(txn, "index", create | MDB_DUPSORT, &dbs_.index)) != 0 ||
      (rc = mdb_dbi_open(txn, "log", create, &dbs_.log)) != 0) {
    return fail(MdbStatus(rc, "open databases"));
  }
  last_commit_ = internal::LastCommitIn(txn, dbs_);
  next_id_ = uint32_t(internal::ReadMetaU64(txn, dbs_.meta, internal::kMetaNextId));
  auto catalog = std::make_shared<Catalog>();
  if (Status s = internal::LoadCatalog(txn, dbs_.meta, catalog.get()); !s.ok()) return fail(s);
  catalog_ = std::move(catalog);
  {
    MDB_cursor* cur;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(txn, dbs_.log, &cur)) != 0) return fail(MdbStatus(rc, "cursor"));
    if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) {
      log_first_ = internal::LoadU64BE(static_cast<const char*>(k.mv_data));
    }
    mdb_cursor_close(cur);
  }
  if (!options_.read_only) {
    if (Status s = LoadIdempotency(txn); !s.ok()) return fail(s);
  }
  if (Status s = LoadHistory(txn); !s.ok()) return fail(s);
  replica_ = options_.replica;
  if ((rc = mdb_txn_commit(txn)) != 0) return MdbStatus(rc, "open commit");
  if (!options_.read_only) {
    MDB_envinfo info;
    mdb_env_info(env_, &info);
    space_.Init(env_, dir_, info.me_mapsize, options_.space_reserve);
    // LMDB's reader table is a sparse file mapped into memory: the first use of a slot on
    // a page never written needs a page of disk, and on a full disk that is a SIGBUS, not
    // an error. Allocate the whole table now.
    // The descriptor stays open until the environment is closed (~Impl): closing it now
    // would drop LMDB's fcntl lock on lock.mdb, so that another process's reader check
    // (a verifier, a read-only open) took this one for dead and cleared its reader slots.
    reader_table_fd_ = ::open((fs::path(dir_) / "lock.mdb").c_str(), O_RDWR | O_CLOEXEC);
    struct stat st;
    // Best effort (a full disk at open). Not posix_fallocate, whose fallback where the
    // filesystem lacks fallocate writes bytes into the live table.
    if (reader_table_fd_ >= 0 && ::fstat(reader_table_fd_, &st) == 0 && st.st_size > 0) {
      (void)::fallocate(reader_table_fd_, 0, 0, st.st_size);
    }
  }
  cleanup_batch_ = options_.background_batch;
  return Status::Ok();
}

Engine::Impl::~Impl() {
  StopBackground();
  std::vector<MDB_txn*> pooled;
  {
    std::lock_guard lock(pool_mu_);
    pooled.swap(read_pool_);
  }
  for (MDB_txn* t : pooled) mdb_txn_abort(t);
  if (env_) {
    if (options_.durability != Durability::kSync && !options_.read_only) mdb_env_sync(env_, 1);
    mdb_env_close(env_);
  }
  if (reader_table_fd_ >= 0) ::close(reader_table_fd_);  // after LMDB let go of its locks
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  if (folder_id_) OpenFolders::Remove(*folder_id_);
}

Status Engine::Impl::CommitStatus(int rc, std::string_view what) {
  if (rc == 0) return Status::Ok();
  bool fatal = false;
  Status s = space_.CommitError(rc, what, &fatal);
  if (!fatal) return s;
  int expected = 0;
  fatal_rc_.compare_exchange_strong(expected, rc);
  return FatalStatus(fatal_rc_.load());
}

Status Engine::Impl::FatalStatus(int rc) const {
  std::string why = mdb_strerror(rc);
  switch (rc) {
    case EIO:
      return Status(Code::kInternal,
                    "the disk holding database " + dir_ + " reported an I/O error (" + why +
                        ") while it had space free, so the disk or its connection failed: "
                        "writes are stopped until a restart. Check the device (kernel log, "
                        "SMART), then restart and run verify");
    case MDB_CORRUPTED:
      return Status(Code::kInternal,
                    "data.mdb in " + dir_ + " holds a damaged page (" + why +
                        "): writes are stopped. Restart, run verify, and restore from a backup "
                        "or a replica if it reports problems");
    default:
      return Status(Code::kInternal,
                    "the database " + dir_ + " hit a fatal storage error (" + why +
                        "): writes are stopped until a restart. Check the disk, then restart "
                        "and run verify");
  }
}

// --- Catalog.

Status Engine::Impl::CommitCatalogChange(const CatalogEdit& fn, uint64_t need) {
  if (options_.read_only) return Status(Code::kReadOnly, "the database is open read-only");
  std::lock_guard lock(write_mu_);
  if (int f = fatal_rc_.load()) return FatalStatus(f);
  if (Status s = WriteRefusal(); !s.ok()) return s;
  if (need > 0) {
    if (Status s = space_.Admit(need); !s.ok()) {
      full_refusals_++;
      return s;
    }
  }
  WriteTxn txn;
  if (int rc = txn.Begin(env_); rc != 0) return MdbStatus(rc, "begin");
  auto next = std::make_shared<Catalog>(*catalog());
  uint32_t saved_next_id = next_id_;
  log_builder_.Clear();
  Status s = fn(txn.get(), *next, log_builder_);
  uint64_t commit = last_commit_ + 1;
  uint64_t first = log_first_, appended = 0, trimmed = 0;
  if (s.ok()) {
    s = AppendLogEntry(txn.get(), dbs_.log, commit, log_builder_, NextStamp(), &appended);
  }
  if (s.ok()) s = TrimLog(txn.get(), commit, 0, appended, &first, &trimmed);
  if (s.ok()) s = CommitStatus(txn.Commit(), "commit");
  if (!s.ok()) {
    next_id_ = saved_next_id;
    return s;
  }
  CountLogBytes(appended, trimmed);
  log_first_ = first;
  last_commit_ = commit;
  commits_++;
  group_commits_++;
  TrimIdempotency(first);
  PublishCatalog(std::move(next));
  return Status::Ok();
}

uint32_t Engine::Impl::AllocateId(MDB_txn* txn) {
  uint32_t id = next_id_++;
  (void)PutMetaU64(txn, dbs_.meta, internal::kMetaNextId, next_id_);  // same txn; checked at commit
  return id;
}

namespace {
Status ScheduleCleanup(MDB_txn* txn, MDB_dbi meta, uint32_t id, internal::CleanupKind kind) {
  char v = char(kind);
  return PutMeta(txn, meta, internal::CleanupMetaKey(id), std::string_view(&v, 1));
}
}  // namespace

Status Engine::Impl::CreateCollectionIn(MDB_txn* txn, Catalog& next, std::string_view name,
                                        uint64_t commit) {
  if (next.Find(name)) {
    return Status(Code::kAlreadyExists, "collection '" + std::string(name) + "' already exists");
  }
  CollectionDesc c;
  c.id = AllocateId(txn);
  c.name.assign(name);
  c.created = commit;
  if (Status s = PutMeta(txn, dbs_.meta, internal::CollectionMetaKey(name),
                         internal::EncodeCollection(c));
      !s.ok()) {
    return s;
  }
  next.collections.emplace(c.name, std::move(c));
  return Status::Ok();
}

Status Engine::Impl::DropCollectionIn(MDB_txn* txn, Catalog& next, std::string_view name) {
  auto it = next.collections.find(name);
  if (it == next.collections.end()) {
    return Status(Code::kUnknownName, "collection '" + std::string(name) + "' does not exist");
  }
  MDB_dbi meta = dbs_.meta;
  const CollectionDesc& c = it->second;
  Status s = DelMeta(txn, meta, internal::CollectionMetaKey(name));
  if (s.ok()) s = ScheduleCleanup(txn, meta, c.id, internal::CleanupKind::kRecords);
  for (const IndexDesc& ix : c.indexes) {
    if (s.ok()) s = DelMeta(txn, meta, internal::IndexMetaKey(c.id, ix.spec.name));
    if (s.ok()) s = ScheduleCleanup(txn, meta, ix.id, internal::CleanupKind::kIndexEntries);
  }
  if (!s.ok()) return s;
  next.collections.erase(it);
  return Status::Ok();
}

Status Engine::Impl::CreateIndexIn(MDB_txn* txn, Catalog& next, std::string_view collection,
                                   const IndexSpec& spec) {
  auto it = next.collections.find(collection);
  if (it == next.collections.end()) {
    return Status(Code::kUnknownName,
                  "collection '" + std::string(collection) + "' does not exist");
  }
  CollectionDesc& c = it->second;
  if (c.FindIndex(spec.name)) {
    return Status(Code::kAlreadyExists, "index '" + spec.name + "' already exists on '" +
                                            c.name + "'");
  }
  IndexDesc ix;
  ix.id = AllocateId(txn);
  ix.spec = spec;
  for (const std::string& f : spec.fields) ix.paths.push_back(internal::ParsePath(f));
  // An empty collection needs no build.
  std::string prefix;
  internal::PutU32BE(&prefix, c.id);
  MDB_cursor* cur;
  if (int rc = mdb_cursor_open(txn, dbs_.records, &cur); rc != 0) return MdbStatus(rc, "cursor");
  MDB_val k = Val(prefix), v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  bool empty = rc != 0 || !View(k).starts_with(prefix);
  mdb_cursor_close(cur);
  ix.state = empty ? IndexState::kReady : IndexState::kBuilding;
  if (Status s = PutMeta(txn, dbs_.meta, internal::IndexMetaKey(c.id, spec.name),
                         internal::EncodeIndex(ix));
      !s.ok()) {
    return s;
  }
  // Kept in name order, as a reload from the meta database lists them.
  auto at = std::lower_bound(
      c.indexes.begin(), c.indexes.end(), ix.spec.name,
      [](const IndexDesc& d, const std::string& n) { return d.spec.name < n; });
  c.indexes.insert(at, std::move(ix));
  return Status::Ok();
}

Status Engine::Impl::DropIndexIn(MDB_txn* txn, Catalog& next, std::string_view collection,
                                 std::string_view index) {
  auto it = next.collections.find(collection);
  if (it == next.collections.end()) {
    return Status(Code::kUnknownName,
                  "collection '" + std::string(collection) + "' does not exist");
  }
  CollectionDesc& c = it->second;
  auto ix = std::find_if(c.indexes.begin(), c.indexes.end(),
                         [&](const IndexDesc& d) { return d.spec.name == index; });
  if (ix == c.indexes.end()) {
    return Status(Code::kUnknownName, "index '" + std::string(index) + "' does not exist on '" +
                                       c.name + "'");
  }
  Status s = DelMeta(txn, dbs_.meta, internal::IndexMetaKey(c.id, index));
  if (s.ok()) s = ScheduleCleanup(txn, dbs_.meta, ix->id, internal::CleanupKind::kIndexEntries);
  if (!s.ok()) return s;
  c.indexes.erase(ix);
  return Status::Ok();
}

Status Engine::CreateCollection(std::string_view name) {
  if (Status s = internal::CheckName("collection", name); !s.ok()) return s;
  return impl_->CommitCatalogChange([&](MDB_txn* txn, Catalog& next, LogEntryBuilder& log) {
    Status s = impl_->CreateCollectionIn(txn, next, name, impl_->last_commit_ + 1);
    if (s.ok()) log.CreateCollection(name);
    return s;
  }, internal::kCatalogNeed);
}

Status Engine::CreateSystemCollection(std::string_view name) {
  if (name.empty() || name[0] != '$') {
    return Status(Code::kBadRequest, "a system collection's name starts with '$'");
  }
  if (Status s = internal::CheckName("collection", name.substr(1)); !s.ok()) return s;
  if (DescribeCollection(name).ok()) return Status::Ok();
  return impl_->CommitCatalogChange([&](MDB_txn* txn, Catalog& next, LogEntryBuilder& log) {
    Status s = impl_->CreateCollectionIn(txn, next, name, impl_->last_commit_ + 1);
    if (s.ok()) log.CreateCollection(name);
    return s;
  }, internal::kCatalogNeed);
}

Status Engine::DropCollection(std::string_view name) {
  Status s = impl_->CommitCatalogChange([&](MDB_txn* txn, Catalog& next, LogEntryBuilder& log) {
    Status s = impl_->DropCollectionIn(txn, next, name);
    if (s.ok()) log.DropCollection(name);
    return s;
  }, /*need=*/0);
  if (s.ok()) impl_->WakeBackground();
  return s;
}

Status Engine::CreateIndex(std::string_view collection, const IndexSpec& spec) {
  if (Status s = internal::CheckIndexSpec(spec); !s.ok()) return s;
  Status s = impl_->CommitCatalogChange([&](MDB_txn* txn, Catalog& next, LogEntryBuilder& log) {
    Status s = impl_->CreateIndexIn(txn, next, collection, spec);
    if (s.ok()) log.CreateIndex(collection, spec);
    return s;
  }, internal::kCatalogNeed);
  if (s.ok()) impl_->WakeBackground();
  return s;
}

Status Engine::DropIndex(std::string_view collection, std::string_view index) {
  Status s = impl_->CommitCatalogChange([&](MDB_txn* txn, Catalog& next, LogEntryBuilder& log) {
    Status s = impl_->DropIndexIn(txn, next, collection, index);
    if (s.ok()) log.DropIndex(collection, index);
    return s;
  }, /*need=*/0);
  if (s.ok()) impl_->WakeBackground();
  return s;
}

namespace {
CollectionInfo Describe(const CollectionDesc& c) {
  CollectionInfo info{c.name, c.created, {}};
  for (const IndexDesc& ix : c.indexes) info.indexes.push_back({ix.spec, ix.state, ix.error});
  return info;
}
}  // namespace

std::vector<CollectionInfo> Engine::ListCollections() const {
  auto catalog = impl_->catalog();
  std::vector<CollectionInfo> out;
  for (const auto& [name, c] : catalog->collections) out.push_back(Describe(c));
  return out;
}

Result<CollectionInfo> Engine::DescribeCollection(std::string_view name) const {
  auto catalog = impl_->catalog();
  const CollectionDesc* c = catalog->Find(name);
  if (!c) return Status(Code::kUnknownName, "collection '" + std::string(name) + "' does not exist");
  return Describe(*c);
}

// --- The write path.

std::vector<TxnResult> Engine::Impl::ExecuteBatch(std::span<const Transaction* const> txns) {
  std::vector<TxnResult> results(txns.size());
  auto fail_all = [&](const Status& s) {
    for (TxnResult& r : results) {
      if (r.status.ok()) r = TxnResult{s, 0, {}};
    }
    return std::move(results);
  };
  if (txns.empty()) return results;
  if (options_.read_only) {
    for (size_t i = 0; i < txns.size(); i++) {
      results[i].status = Status(Code::kReadOnly, "the database is open read-only");
    }
    return results;
  }

  std::unique_lock lock(write_mu_);
  if (int f = fatal_rc_.load()) return fail_all(FatalStatus(f));
  if (Status s = WriteRefusal(); !s.ok()) {
    lock.unlock();
    return RefuseWrites(txns, s);
  }
  // Room: far from full, one sum and one comparison for the batch. Near the cap or a full
  // disk, transactions that free space run and the others are admitted in order while they
  // fit; the rest get kDatabaseFull without running.
  std::vector<Status> refused;
  {
    uint64_t need = 0;
    for (const Transaction* t : txns) need += RoomNeeded(*t, space_.page());
    if (need > 0 && !space_.Admit(need).ok()) {
      refused.resize(txns.size());
      uint64_t admitted = 0;
      for (size_t i = 0; i < txns.size(); i++) {
        uint64_t n = RoomNeeded(*txns[i], space_.page());
        if (n == 0) continue;
        refused[i] = space_.Admit(admitted + n);
        if (refused[i].ok()) {
          admitted += n;
        } else {
          full_refusals_++;
        }
      }
    }
  }
  bool split = false;
  CommitGroup(txns, refused, results.data(), &split);
  if (split) {
    // A storage error (the map full, LMDB's limit of dirty pages) struck the group's
    // LMDB transaction as a whole: each transaction commits alone instead, so that it
    // fails alone if at all.
    for (size_t i = 0; i < txns.size(); i++) {
      // An error that latched (CommitStatus) fails the rest unrun, as it fails later
      // batches.
      if (int f = fatal_rc_.load()) {
        results[i] = TxnResult{FatalStatus(f), 0, {}};
        continue;
      }
      bool ignored;
      CommitGroup(txns.subspan(i, 1),
                  refused.empty() ? std::span<const Status>() : std::span(&refused[i], 1),
                  &results[i], &ignored);
    }
  }
  for (const TxnResult& r : results) replays_ += r.replayed;
  return results;
}

void Engine::Impl::CommitGroup(std::span<const Transaction* const> txns,
                               std::span<const Status> refused, TxnResult* results,
                               bool* split) {
  *split = false;
  auto fail_all = [&](const Status& s) {
    for (size_t i = 0; i < txns.size(); i++) {
      if (results[i].status.ok()) results[i] = TxnResult{s, 0, {}};
    }
  };
  // Each transaction of the group must fail alone: its writes go into the group's overlay
  // at its own commit (Ctx::writes), where the transaction reads them and those of the
  // group's earlier transactions, and a failure takes them back (Overlay::Undo). Only its
  // change-log entry goes into LMDB at once; the overlay is applied to LMDB at the end,
  // in the same LMDB transaction, which commits the group once.
  const bool single = txns.size() == 1;
  auto catalog = this->catalog();
  internal::Overlay overlay;
  WriteTxn top;
  if (int rc = top.Begin(env_); rc != 0) return fail_all(MdbStatus(rc, "begin"));
  uint64_t commit = last_commit_;
  // This batch's idempotency keys, added to the index once the batch commits; and which
  // transactions replayed one of them.
  struct PendingKey {
    uint64_t hash;
    std::string_view key;
    size_t index;
    uint64_t time_ms;
  };
  std::vector<PendingKey> pending;
  // Which of `pending` committed in this batch, found by hash: an open-addressing table
  // (indexes into `pending`, linear probing, at most half full), made on the batch's first
  // keyed transaction.
  std::vector<uint32_t>& slots = batch_key_slots_;
  size_t slot_mask = 0;
  auto find_pending = [&](uint64_t hash, std::string_view key) -> const PendingKey* {
    if (!slot_mask) return nullptr;
    for (size_t at = hash & slot_mask; slots[at] != UINT32_MAX; at = (at + 1) & slot_mask) {
      const PendingKey& p = pending[slots[at]];
      if (p.hash == hash && p.key == key) return &p;
    }
    return nullptr;
  };
  std::vector<size_t> replay_of(txns.size(), SIZE_MAX);
  uint64_t appended = 0;  // bytes of the log entries that stand
  // The group's change-log entries, one after the other, and their sizes: written to LMDB
  // after the records, so that the records take the pages earlier commits freed (they are
  // read often; the log's entries seldom).
  group_log_.clear();
  if (group_log_.capacity() > (size_t{8} << 20)) std::string().swap(group_log_);  // a big one
  group_entries_.clear();
  for (size_t i = 0; i < txns.size(); i++) {
    TxnResult& r = results[i];
    r = TxnResult();
    const Transaction& t = *txns[i];
    std::string_view idem_key = t.read_only() ? std::string_view() : t.idempotency_key;
    if (idem_key.size() > internal::kMaxIdempotencyKey) {
      r.status = Status(Code::kBadRequest, "idempotency keys are at most 64 bytes");
      continue;
    }
    uint64_t idem_hash = 0;
    if (!idem_key.empty()) {
      // A transaction seen before, in this batch or an earlier commit: answer with what
      // it got then. It writes nothing.
      idem_hash = internal::IdempotencyHash(idem_key);
      if (const PendingKey* same = find_pending(idem_hash, idem_key)) {
        r = results[same->index];
        r.replayed = true;
        replay_of[i] = same->index;
        continue;
      }
      bool found = false;
      r.status = FindRemembered(top.get(), idem_key, idem_hash, &found, &r);
      if (r.status.ok() && found) {
        r.replayed = true;
        continue;
      }
      if (!r.status.ok()) continue;
    }
    if (!refused.empty() && !refused[i].ok()) {
      r.status = refused[i];
      continue;
    }
    log_builder_.Clear();
    internal::Ctx ctx = ReadCtx(top.get(), catalog.get());
    ctx.commit = commit + 1;
    ctx.log = &log_builder_;
    const internal::OverlayAt own{&overlay, commit + 1};
    ctx.overlays = std::span(&own, 1);
    ctx.writes = &overlay;
    r.status = internal::RunTransaction(ctx, t, &r);
    bool wrote = r.status.ok() && !log_builder_.empty();
    uint64_t entry_bytes = 0;
    if (wrote) {
      // The key and the result are remembered in the commit's own log entry.
      uint64_t now = NextStamp();
      remembered_.clear();
      if (!idem_key.empty()) {
        internal::EncodeRemembered(r, &remembered_);
        pending.push_back(PendingKey{idem_hash, idem_key, i, now});
      }
      std::string_view entry = log_builder_.Finish(commit + 1, now, idem_key, remembered_);
      group_log_.append(entry);
      group_entries_.push_back(entry.size());
      entry_bytes = entry.size();
    }
    if (!r.status.ok()) {
      overlay.Undo(commit + 1);  // false if it wrote nothing: nothing to take back
      r.results.clear();
      continue;
    }
    if (wrote) {
      r.commit = ++commit;
      appended += entry_bytes;
      if (!pending.empty() && pending.back().index == i) {
        if (!slot_mask) {
          size_t size = 16;
          while (size < 2 * txns.size()) size *= 2;
          slots.assign(size, UINT32_MAX);
          slot_mask = size - 1;
        }
        size_t at = pending.back().hash & slot_mask;
        while (slots[at] != UINT32_MAX) at = (at + 1) & slot_mask;
        slots[at] = uint32_t(pending.size() - 1);
      }
    }
  }

  if (commit == last_commit_) return;  // nothing written: no commit, no fsync
  auto fail_written = [&](const Status& s) {
    for (size_t i = 0; i < txns.size(); i++) {
      TxnResult& r = results[i];
      // A replay of an earlier batch's commit stands; one of this batch's does not.
      bool earlier_replay = r.replayed && replay_of[i] == SIZE_MAX;
      if (r.status.ok() && r.commit && !earlier_replay) r = TxnResult{s, 0, {}};
    }
  };
  Status s = internal::ApplyOverlay(top.get(), dbs_.records, false, overlay, dbs_.records, commit);
  if (s.ok()) {
    s = internal::ApplyOverlay(top.get(), dbs_.index, true, overlay, dbs_.index, commit);
  }
  for (size_t e = 0, offset = 0; e < group_entries_.size() && s.ok(); e++) {
    char key[8];
    internal::StoreU64BE(key, last_commit_ + 1 + e);
    MDB_val k{8, key}, v{group_entries_[e], group_log_.data() + offset};
    s = MdbStatus(mdb_put(top.get(), dbs_.log, &k, &v, MDB_APPEND), "change log");
    offset += group_entries_[e];
  }
  uint64_t first = log_first_, trimmed = 0;
  size_t written = commit - last_commit_;
  if (s.ok()) s = TrimLog(top.get(), commit, written, appended, &first, &trimmed);
  if (!s.ok()) {
    if (!single) {
      *split = true;
      return;
    }
    if (s.code() == Code::kDatabaseFull) s = s.WithContext("database " + dir_);
    return fail_written(s);
  }
  s = CommitStatus(top.Commit(), "commit");
  if (!s.ok()) return fail_written(s);
  for (const PendingKey& p : pending) idempotency_.Add(p.time_ms, p.hash, results[p.index].commit);
  TrimIdempotency(first);
  CountLogBytes(appended, trimmed);
  log_first_ = first;
  last_commit_ = commit;
  commits_ += written;
  group_commits_++;
}

Status Engine::CheckDocuments(const Transaction& txn) const {
  return internal::CheckTransactionDocuments(txn, options().max_value_size);
}

// A write in the queue: a transaction or a catalog change, either waited for by the
// thread that queued it (Execute: `waiter`) or answered through `done` (Submit).
struct Engine::Impl::QueuedWrite {
  const Transaction* txn = nullptr;
  Engine::CatalogChange catalog;  // set for a catalog change
  Engine::WriteDone done;         // a submitted write's callback; the queue owns the write
  bool waiter = false;            // an Execute caller waits for this one
  TxnResult result;
  bool finished = false;          // a waiter's: result is set; guarded by queue_mu_
  std::condition_variable cv;     // a waiter's: finished, or its turn to lead
};

namespace {

TxnResult Unavailable() {
  return TxnResult{Status(Code::kUnavailable, "the engine is stopping: no more writes"), 0, {}};
}

// The engine whose queue this thread leads: a write made from inside its turn (a catalog
// change that writes a transaction, as cairnd's user changes do, a callback, the commit
// listener) runs at once as part of that turn, instead of queuing behind itself.
thread_local const void* t_leading = nullptr;

class Leading {
 public:
  explicit Leading(const void* engine) : saved_(t_leading) { t_leading = engine; }
  ~Leading() { t_leading = saved_; }

 private:
  const void* saved_;
};

}  // namespace

std::vector<TxnResult> Engine::Impl::RunGroup(const std::vector<QueuedWrite*>& group,
                                              std::string* failure) {
  try {
    if (group.front()->catalog) {
      TxnResult r;
      r.status = group.front()->catalog(*self_);
      if (r.status.ok()) r.commit = last_commit_;
      return {std::move(r)};
    }
    std::vector<const Transaction*> txns;
    txns.reserve(group.size());
    for (QueuedWrite* w : group) txns.push_back(w->txn);
    if (options_.before_group_commit) options_.before_group_commit(txns);
    return ExecuteBatch(txns);
  } catch (const std::exception& e) {
    // The engine throws nothing but bad_alloc (and a test's before_group_commit): whether
    // the group committed is unknown. The listener hears why; callers get a plain error.
    *failure = e.what();
    if (failure->empty()) *failure = "an exception";
    return std::vector<TxnResult>(
        group.size(),
        TxnResult{Status(Code::kInternal, std::string("internal error running this ") +
                                              (group.front()->catalog ? "catalog change"
                                                                      : "write") +
                                              "; it may or may not have been applied"),
                  0,
                  {}});
  }
}

void Engine::Impl::Lead(std::unique_lock<std::mutex>& lock, QueuedWrite* mine) {
  Leading leading(this);
  // However this ends (an exception from a callback, bad_alloc), leadership passes on:
  // to the waiter at the front, or to the writer thread (a submitted write at the
  // front, or StopWrites waiting for the queue to drain).
  struct HandOver {
    Impl* impl;
    std::unique_lock<std::mutex>& lock;
    ~HandOver() {
      if (!lock.owns_lock()) lock.lock();
      impl->leading_ = false;
      if (!impl->queue_.empty() && impl->queue_.front()->waiter) {
        impl->queue_.front()->cv.notify_one();
      } else {
        impl->writer_cv_.notify_all();
      }
    }
  } hand_over{this, lock};
  const size_t max = std::max<uint32_t>(options_.max_group_commit, 1);
  // Room for a whole group up front: once a group ran, nothing before its writes leave
  // the queue may throw, or the next leader would run them again.
  std::vector<QueuedWrite*> group, answered;
  group.reserve(max);
  answered.reserve(max);
  bool mine_done = false;
  while (!queue_.empty() && !mine_done) {
    group.clear();
    if (queue_.front()->catalog) {
      group.push_back(queue_.front());
    } else {
      for (QueuedWrite* w : queue_) {
        if (w->catalog || group.size() == max) break;
        group.push_back(w);
      }
    }
    lock.unlock();  // others queue behind this group while it commits
    std::string failure;
    std::vector<TxnResult> results = RunGroup(group, &failure);
    if (commit_listener_) {
      try {
        commit_listener_(GroupCommitted{group.front()->catalog ? 0 : group.size(), failure});
      } catch (const std::exception&) {
        // A listener must not throw; the writes are answered all the same.
      }
    }
    // Results are moved in without the lock: until `finished` is set under it (or its
    // callback runs), a write's result is read by no one else.
    answered.clear();
    for (size_t i = 0; i < group.size(); i++) {
      group[i]->result = std::move(results[i]);
      if (!group[i]->waiter) answered.push_back(group[i]);
    }
    lock.lock();
    for (QueuedWrite* w : group) {
      queue_.pop_front();
      mine_done |= w == mine;
      if (w->waiter) {
        w->finished = true;
        if (w != mine) w->cv.notify_one();
      }
    }
    if (!answered.empty()) {
      // Still leading: the next group waits until these are answered, so a submitter's
      // callbacks run in the order it submitted.
      lock.unlock();
      for (QueuedWrite* w : answered) {
        try {
          w->done(std::move(w->result));
        } catch (const std::exception&) {
          // A callback must not throw; the others are answered all the same.
        }
        delete w;
      }
      lock.lock();
    }
  }
}

TxnResult Engine::Impl::ExecuteQueued(const Transaction& txn) {
  if (t_leading == this) {
    const Transaction* one = &txn;
    return std::move(ExecuteBatch(std::span(&one, 1))[0]);
  }
  QueuedWrite me;
  me.txn = &txn;
  me.waiter = true;
  std::unique_lock lock(queue_mu_);
  if (writes_stopped_) return Unavailable();
  queue_.push_back(&me);
  // A leader that takes this write finishes it; one that leaves it queued wakes it at the
  // front, to lead the next group. Nobody leading and the queue empty: lead at once.
  me.cv.wait(lock, [&] { return me.finished || (!leading_ && queue_.front() == &me); });
  if (!me.finished) {
    leading_ = true;
    Lead(lock, &me);
  }
  return std::move(me.result);
}

void Engine::Impl::Enqueue(std::unique_ptr<QueuedWrite> write) {
  std::unique_lock lock(queue_mu_);
  if (writes_stopped_) {
    lock.unlock();
    write->done(Unavailable());
    return;
  }
  if (!writer_.joinable()) writer_ = std::thread([this] { WriterThread(); });
  queue_.push_back(write.release());
  if (!leading_ && queue_.front() == queue_.back()) writer_cv_.notify_all();
}

void Engine::Impl::WriterThread() {
  std::unique_lock lock(queue_mu_);
  while (true) {
    writer_cv_.wait(lock, [&] {
      return (!leading_ && !queue_.empty() && !queue_.front()->waiter) ||
             (writes_stopped_ && !leading_ && queue_.empty());
    });
    if (queue_.empty()) return;  // stopped, and everything queued has been answered
    leading_ = true;
    Lead(lock, nullptr);
  }
}

void Engine::Submit(const Transaction& txn, WriteDone done) {
  auto w = std::make_unique<Impl::QueuedWrite>();
  w->txn = &txn;
  w->done = done ? std::move(done) : [](TxnResult) {};
  impl_->Enqueue(std::move(w));
}

void Engine::SubmitCatalog(CatalogChange change, WriteDone done) {
  if (!done) done = [](TxnResult) {};
  if (!change) {
    done(TxnResult{Status(Code::kBadRequest, "an empty catalog change"), 0, {}});
    return;
  }
  auto w = std::make_unique<Impl::QueuedWrite>();
  w->catalog = std::move(change);
  w->done = std::move(done);
  impl_->Enqueue(std::move(w));
}

void Engine::StopWrites() {
  std::unique_lock lock(impl_->queue_mu_);
  impl_->writes_stopped_ = true;
  if (t_leading == impl_.get()) return;  // from inside a turn: the destructor waits
  // Every write already queued is answered, by whoever leads it.
  impl_->writer_cv_.wait(lock, [&] { return impl_->queue_.empty() && !impl_->leading_; });
  std::thread writer;
  writer.swap(impl_->writer_);
  lock.unlock();
  impl_->writer_cv_.notify_all();
  if (writer.joinable()) writer.join();
}

void Engine::SetCommitListener(std::function<void(const GroupCommitted&)> listener) {
  impl_->commit_listener_ = std::move(listener);
}

TxnResult Engine::Execute(const Transaction& txn) {
  if (txn.read_only()) {
    auto read = BeginRead();
    if (!read.ok()) return TxnResult{read.status(), 0, {}};
    return read->Execute(txn);
  }
  return impl_->ExecuteQueued(txn);
}

std::vector<TxnResult> Engine::ExecuteBatch(std::span<const Transaction* const> txns) {
  return impl_->ExecuteBatch(txns);
}

// --- Read transactions.

Status Engine::Impl::AcquireReadTxn(MDB_txn** txn) const {
  {
    std::lock_guard lock(pool_mu_);
    if (!read_pool_.empty()) {
      *txn = read_pool_.back();
      read_pool_.pop_back();
    } else {
      *txn = nullptr;
    }
  }
  int rc;
  if (*txn) {
    rc = mdb_txn_renew(*txn);
    if (rc != 0) {
      mdb_txn_abort(*txn);
      *txn = nullptr;
    }
  } else {
    rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, txn);
  }
  return MdbStatus(rc, "read begin");
}

void Engine::Impl::ReleaseReadTxn(MDB_txn* txn) const {
  mdb_txn_reset(txn);
  {
    std::lock_guard lock(pool_mu_);
    if (read_pool_.size() < kReadPoolSize) {
      read_pool_.push_back(txn);
      return;
    }
  }
  mdb_txn_abort(txn);  // the pool is full; outside the lock, as it frees memory
}

Result<ReadTxn> Engine::BeginRead() const {
  // The catalog is taken before the snapshot, so the snapshot is at least as new as the
  // catalog: an index the catalog calls ready is complete in the snapshot.
  auto catalog = impl_->catalog();
  MDB_txn* txn;
  if (Status s = impl_->AcquireReadTxn(&txn); !s.ok()) return s;
  return ReadTxn(impl_.get(), txn, std::move(catalog));
}

ReadTxn::ReadTxn(const Engine::Impl* engine, MDB_txn* txn,
                 std::shared_ptr<const internal::Catalog> catalog)
    : engine_(engine), txn_(txn), catalog_(std::move(catalog)) {}

ReadTxn::ReadTxn(ReadTxn&& o) noexcept
    : engine_(o.engine_), txn_(std::exchange(o.txn_, nullptr)), catalog_(std::move(o.catalog_)) {}

ReadTxn& ReadTxn::operator=(ReadTxn&& o) noexcept {
  if (this != &o) {
    Release();
    engine_ = o.engine_;
    txn_ = std::exchange(o.txn_, nullptr);
    catalog_ = std::move(o.catalog_);
  }
  return *this;
}

ReadTxn::~ReadTxn() { Release(); }

void ReadTxn::Release() {
  if (txn_) engine_->ReleaseReadTxn(txn_);
  txn_ = nullptr;
}

Status ReadTxn::Get(std::string_view collection, std::string_view key, RecordView* out,
                    bool* found) {
  internal::Ctx ctx = engine_->ReadCtx(txn_, catalog_.get());
  const CollectionDesc* c;
  if (Status s = internal::FindCollection(ctx, collection, &c); !s.ok()) return s;
  return internal::GetRecord(ctx, *c, key, out, found);
}

Status ReadTxn::Scan(const ScanSpec& spec, const Visitor& visit, std::string* continuation) {
  return internal::ScanRecords(engine_->ReadCtx(txn_, catalog_.get()), spec, visit, continuation,
                               nullptr);
}

Status ReadTxn::Query(const QuerySpec& spec, const Visitor& visit, std::string* continuation) {
  return internal::QueryIndex(engine_->ReadCtx(txn_, catalog_.get()), spec, visit, continuation,
                              nullptr);
}

Result<uint64_t> ReadTxn::Count(const std::variant<ScanSpec, QuerySpec>& range) {
  Transaction t;
  t.ops.push_back(CountOp{range});
  TxnResult r = Execute(t);
  if (!r.status.ok()) return r.status;
  return r.results[0].count;
}

TxnResult ReadTxn::Execute(const Transaction& txn) {
  TxnResult r;
  r.status = internal::RunTransaction(engine_->ReadCtx(txn_, catalog_.get()), txn, &r);
  return r;
}

uint64_t ReadTxn::commit() const {
  return internal::LastCommitIn(txn_, engine_->dbs_);
}

// --- Change log, stats, misc.

// --- Idempotency keys.

uint64_t Engine::Impl::NextStamp() {
  last_stamp_ms_ = std::max(last_stamp_ms_, NowMs());
  return last_stamp_ms_;
}

uint64_t Engine::Impl::IdempotencyHorizon() {
  uint64_t retention_ms = uint64_t(options_.idempotency_retention.count()) * 1000;
  uint64_t now = NextStamp();
  return now - std::min(now, retention_ms);
}

void Engine::Impl::TrimIdempotency(uint64_t first_commit) {
  idempotency_.Trim(IdempotencyHorizon(), options_.idempotency_max_keys, first_commit);
  idempotency_keys_ = idempotency_.size();
}

Status Engine::Impl::FindRemembered(MDB_txn* txn, std::string_view key, uint64_t hash,
                                    bool* found, TxnResult* result) const {
  *found = false;
  thread_local std::vector<uint64_t> commits;
  idempotency_.Find(hash, &commits);
  std::sort(commits.begin(), commits.end(), std::greater<>());  // the newest holder wins
  for (uint64_t c : commits) {
    char k[8];
    internal::StoreU64BE(k, c);
    MDB_val kv{8, k}, v;
    int rc = mdb_get(txn, dbs_.log, &kv, &v);
    if (rc == MDB_NOTFOUND) continue;  // trimmed from the log since: forgotten
    if (rc != 0) return MdbStatus(rc, "idempotency lookup");
    internal::LogHeader h;
    if (!internal::DecodeLogHeader(c, View(v), &h)) {
      return Status(Code::kInternal, "change-log entry " + std::to_string(c) + " is corrupt");
    }
    if (h.idempotency_key != key) continue;  // another key with the same hash
    if (!internal::DecodeRemembered(h.remembered, result)) {
      return Status(Code::kInternal,
                    "corrupt idempotency record in change-log entry " + std::to_string(c));
    }
    result->commit = c;
    result->status = Status::Ok();
    *found = true;
    return Status::Ok();
  }
  return Status::Ok();
}

Status Engine::Impl::LoadIdempotency(MDB_txn* txn) {
  // From the newest entry back (stamps never decrease along the log), until the
  // retention time or the key cap is reached.
  struct Found {
    uint64_t time_ms, hash, commit;
  };
  std::vector<Found> found;
  MDB_cursor* cur;
  if (int rc = mdb_cursor_open(txn, dbs_.log, &cur); rc != 0) return MdbStatus(rc, "cursor");
  MDB_val k, v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  uint64_t horizon = 0, bytes = 0;
  bool newest = true;
  while (rc == 0 && found.size() < options_.idempotency_max_keys) {
    uint64_t commit = internal::LoadU64BE(static_cast<const char*>(k.mv_data));
    internal::LogHeader h;
    // A corrupt entry ends the search (Verify reports it): the keys before it are
    // forgotten, which is better than a database that cannot open.
    if (!internal::DecodeLogHeader(commit, View(v), &h)) break;
    if (newest) {  // later stamps continue from its time
      last_stamp_ms_ = h.time_ms;
      horizon = IdempotencyHorizon();
      newest = false;
    }
    if (h.time_ms < horizon) break;  // so are all older ones
    if (!h.idempotency_key.empty()) {
      found.push_back(Found{h.time_ms, internal::IdempotencyHash(h.idempotency_key), commit});
    }
    bytes += v.mv_size;
    rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
  }
  // The rest of the walk only adds up the entries' sizes (for replica_log_keep_bytes):
  // a value's size is in its leaf node, so large entries' overflow pages are not read.
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) bytes += v.mv_size;
  mdb_cursor_close(cur);
  log_bytes_ = bytes;
  if (rc != 0 && rc != MDB_NOTFOUND) return MdbStatus(rc, "change log");
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    idempotency_.Add(it->time_ms, it->hash, it->commit);
  }
  idempotency_keys_ = idempotency_.size();
  return Status::Ok();
}

Status Engine::Impl::VisitLog(uint64_t from, size_t max_entries, size_t max_bytes,
                              const LogVisitor& fn) const {
  MDB_txn* txn;
  if (Status s = AcquireReadTxn(&txn); !s.ok()) return s;
  struct Release {
    const Impl* impl;
    MDB_txn* txn;
    ~Release() { impl->ReleaseReadTxn(txn); }
  } release{this, txn};
  from = std::max<uint64_t>(from, 1);
  uint64_t last = internal::LastCommitIn(txn, dbs_);
  if (from > last) return Status::Ok();
  internal::Cursor cur(txn, dbs_.log);
  if (cur.open_rc() != 0) return MdbStatus(cur.open_rc(), "cursor");
  char key[8];
  internal::StoreU64BE(key, from);
  int rc = cur.Seek(MDB_SET_RANGE, std::string_view(key, 8));
  if (rc != 0 || internal::LoadU64BE(cur.key().data()) != from) {
    return Status(Code::kLogTruncated, "commit " + std::to_string(from) +
                                           " is no longer in the change log");
  }
  size_t bytes = 0;
  for (size_t n = 0; rc == 0 && n < max_entries && (n == 0 || bytes < max_bytes); n++) {
    if (Status s = fn(internal::LoadU64BE(cur.key().data()), cur.value()); !s.ok()) return s;
    bytes += cur.value().size();
    rc = cur.Get(MDB_NEXT);
  }
  return rc == 0 || rc == MDB_NOTFOUND ? Status::Ok() : MdbStatus(rc, "change log");
}

Status Engine::Impl::ReadLog(uint64_t from, size_t max_entries, size_t max_bytes,
                             std::vector<LogEntry>* out) const {
  return VisitLog(from, max_entries, max_bytes, [&](uint64_t commit, std::string_view stored) {
    LogEntry e;
    if (!internal::DecodeLogEntry(commit, stored, &e)) {
      return Status(Code::kInternal, "change-log entry " + std::to_string(commit) + " is corrupt");
    }
    out->push_back(std::move(e));
    return Status::Ok();
  });
}

EngineStats Engine::Impl::Stats() const {
  EngineStats s;
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &st);
  s.last_commit = last_commit_;
  s.map_size = info.me_mapsize;
  s.used_bytes = uint64_t(info.me_last_pgno + 1) * st.ms_psize;
  std::error_code ec;
  s.file_bytes = fs::file_size(fs::path(dir_) / "data.mdb", ec);
  s.log_first = log_first_;
  s.readers_used = info.me_numreaders;
  s.max_readers = info.me_maxreaders;
  s.commits = commits_;
  s.group_commits = group_commits_;
  s.replays = replays_;
  s.stale_readers_cleared = stale_readers_cleared_;
  s.idempotency_keys = idempotency_keys_;
  s.corrupted_reads = corrupted_reads_;
  s.checksum_upgrade_pending = catalog()->checksum_upgrade.has_value();
  s.full_refusals = full_refusals_;
  {
    std::lock_guard lock(history_mu_);
    s.epoch = history_.empty() ? 0 : history_.back().epoch;
    s.highest_epoch_seen = std::max(s.epoch, fence_epoch_.load());
  }
  s.fenced = fenced_;
  s.epoch_started_at_open = copy_started_epoch_;
  s.log_hold = log_hold_;
  s.log_bytes = log_bytes_;
  s.applied_batches = applied_batches_;
  if (!options_.read_only) {
    s.space_reserve = space_.reserve();
    s.preallocated_bytes = space_.preallocated();
  }
  return s;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->self_ = this; }
Engine::~Engine() { StopWrites(); }

Result<std::unique_ptr<Engine>> Engine::Open(const std::string& dir, const Options& options) {
  auto impl = std::make_unique<Impl>(dir, options);
  if (Status s = impl->Open(); !s.ok()) return s;
  if (!options.read_only) {
    if (Status s = impl->ClaimEpoch(); !s.ok()) return s;
    impl->StartBackground();
  }
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Status Engine::ReadLog(uint64_t from, size_t max_entries, size_t max_bytes,
                       std::vector<LogEntry>* out) const {
  return impl_->ReadLog(from, max_entries, max_bytes, out);
}

uint64_t Engine::LastCommit() const { return impl_->last_commit_; }
EngineStats Engine::Stats() const { return impl_->Stats(); }
Status Engine::Sync() { return MdbStatus(mdb_env_sync(impl_->env_, 1), "sync"); }
void Engine::WaitForBackgroundWork() { impl_->WaitForBackgroundWork(); }
VerifyReport Engine::Verify(const VerifyProgress& progress) const {
  return impl_->Verify(progress);
}
const Options& Engine::options() const { return impl_->options_; }
const std::string& Engine::dir() const { return impl_->dir_; }

}  // namespace cairn
