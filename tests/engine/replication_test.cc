// The engine's side of replication and backups: snapshots (a hot compacted copy that is
// exactly its commit), the content digest, applying a primary's change log on a replica,
// the epoch history and the fence, and holding the log for replicas.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <span>
#include <thread>

#include "raw_lmdb.h"
#include "test_util.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using testing::Doc;
using testing::OpenOrDie;
using testing::RawLmdb;
using testing::TempDir;
using testing::Txn;
using Clock = std::chrono::steady_clock;

// --- Helpers.

// Durability does not change what these tests check; fsyncs would only slow them down.
// (ReplicaTest's replicas keep kSync where they apply only a few batches.)
Options NoSync() {
  Options o;
  o.durability = Durability::kNoSync;
  return o;
}

uint32_t Mix(uint64_t i) { return uint32_t((i * 0x9E3779B97F4A7C15ull) >> 40); }

// A deterministic mixed workload: step i makes the same change (or none) on any engine in
// the same state, so that two engines given the same steps hold the same data at the
// same commit numbers. Catalog changes (an index built over existing records, drops,
// re-creations), puts, deletes, raw values, multi-operation transactions with
// idempotency keys, and group commits with a failing member.
class Workload {
 public:
  explicit Workload(Engine* db) : db_(db) {}

  void Step(uint64_t i) {
    switch (i) {
      case 0:
        Check(db_->CreateCollection("users"));
        return;
      case 1:
        Check(db_->CreateCollection("events"));
        return;
      case 2:
        Check(db_->CreateCollection("tmp"));
        return;
      case 40:
        Check(db_->CreateIndex("users", {"by_age", {"age"}}));
        return;
      case 60:
        Check(db_->CreateIndex("users", {"by_email", {"email"}, true}));
        return;
      case 90:
        Check(db_->DropCollection("tmp"));
        return;
      case 100:
        Check(db_->CreateCollection("tmp"));
        return;
      case 150:
        Check(db_->DropIndex("users", "by_age"));
        return;
      case 170:
        Check(db_->CreateIndex("users", {"by_age_name", {"age", "name"}}));
        return;
      default:
        break;
    }
    uint32_t h = Mix(i);
    // "tmp" is gone between its drop and its re-creation.
    const std::string_view tmp = i > 90 && i < 100 ? "events" : "tmp";
    std::string user = "u" + std::to_string(h % 200);
    std::string doc = UserDoc(user, h, i);
    switch (i % 8) {
      case 0:
      case 1:
      case 2:
      case 3:
        Check(db_->Execute(Txn({PutOp{"users", user, doc}})).status);
        return;
      case 4:  // often of an absent record: then no commit
        Check(db_->Execute(Txn({DeleteOp{"users", user}})).status);
        return;
      case 5: {
        std::string key = "e" + std::to_string(i), raw(h % 300, char('a' + i % 26));
        Check(db_->Execute(Txn({PutOp{"events", key, raw, ValueKind::kRaw}})).status);
        return;
      }
      case 6: {
        std::string tkey = "t" + std::to_string(i % 50), ekey = "e" + std::to_string(i - 1);
        std::string tdoc = Doc(R"({"step": )" + std::to_string(i) + "}");
        std::string key = "key" + std::to_string(i);
        Transaction t = Txn({PutOp{tmp, tkey, tdoc}, DeleteOp{"events", ekey},
                             PutOp{"users", user, doc}, GetOp{"users", user}});
        t.idempotency_key = key;
        TxnResult r = db_->Execute(t);
        Check(r.status);
        keyed[key] = r;
        return;
      }
      case 7: {
        std::string other = "u" + std::to_string((h >> 8) % 200);
        std::string odoc = UserDoc(other, h >> 3, i);
        Transaction a = Txn({PutOp{"users", other, odoc}});
        // Fails (and commits nothing) when the record exists.
        Transaction b = Txn({PutOp{"users", user, doc, ValueKind::kDocument, PutMode::kInsert}});
        std::string tkey = "t" + std::to_string(h % 50);
        Transaction c = Txn({PutOp{tmp, tkey, odoc}});
        const Transaction* batch[] = {&a, &b, &c};
        for (const TxnResult& r : db_->ExecuteBatch(batch)) {
          if (r.status.code() != Code::kAlreadyExists) Check(r.status);
        }
        return;
      }
    }
  }

  void Run(uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; i++) Step(i);
  }

  // The results of the keyed transactions, by key.
  std::map<std::string, TxnResult> keyed;

 private:
  static std::string UserDoc(const std::string& user, uint32_t h, uint64_t i) {
    return Doc(R"({"age": )" + std::to_string(h % 90) + R"(, "email": ")" + user +
               R"(@example.com", "name": "n)" + std::to_string(i) + R"(", "pad": ")" +
               std::string(h % 64, 'p') + R"("})");
  }
  static void Check(const Status& s) { ASSERT_TRUE(s.ok()) << s.ToString(); }

  Engine* db_;
};

// Several MB of records (in 10 commits after the collection's), so that a copy takes long
// enough for writes to happen meanwhile, and passes the pipe's buffer.
void Bulk(Engine* db) {
  ASSERT_TRUE(db->CreateCollection("bulk").ok());
  for (int b = 0; b < 10; b++) {
    std::vector<std::string> keys, docs;
    for (int j = 0; j < 500; j++) {
      keys.push_back("b" + std::to_string(b * 500 + j));
      docs.push_back(Doc(R"({"n": )" + std::to_string(j) + R"(, "pad": ")" +
                         std::string(1000, char('a' + j % 26)) + R"("})"));
    }
    Transaction t;
    for (int j = 0; j < 500; j++) t.ops.push_back(PutOp{"bulk", keys[j], docs[j]});
    ASSERT_TRUE(db->Execute(t).status.ok());
  }
}

// Reads the copy into `dir`/data.mdb, at most `limit` bytes; returns Finish's status.
Status SaveSnapshot(SnapshotCopy& copy, const std::string& dir, size_t limit = SIZE_MAX,
                    size_t* copied = nullptr) {
  fs::create_directories(dir);
  int out = ::open((dir + "/data.mdb").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_GE(out, 0);
  std::vector<char> buf(1 << 16);
  size_t total = 0;
  while (total < limit) {
    ssize_t n = ::read(copy.fd(), buf.data(), std::min(buf.size(), limit - total));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    EXPECT_EQ(::write(out, buf.data(), size_t(n)), n);
    total += size_t(n);
  }
  ::close(out);
  if (copied) *copied = total;
  return copy.Finish();
}

// A replica of `primary` made from a snapshot, in `dir`; its commit in *commit.
std::unique_ptr<Engine> Bootstrap(Engine& primary, const std::string& dir, uint64_t* commit,
                                  Options options = {}) {
  auto copy = primary.StartSnapshot();
  EXPECT_TRUE(copy.ok()) << copy.status().ToString();
  if (!copy.ok()) return nullptr;
  Status s = SaveSnapshot(**copy, dir);
  EXPECT_TRUE(s.ok()) << s.ToString();
  *commit = (*copy)->commit();
  options.replica = true;
  return OpenOrDie(dir, options);
}

// Applies the primary's log from the replica's next commit, in batches of the given
// sizes (cycling), until the replica has the primary's last commit. Reopens the replica
// every `reopen_every` batches (0: never), as a replica killed between batches restarts.
void Follow(Engine& primary, std::unique_ptr<Engine>& replica, const std::string& dir,
            std::vector<size_t> sizes, int reopen_every = 0, Options options = {}) {
  options.replica = true;
  for (int n = 0; replica->LastCommit() < primary.LastCommit(); n++) {
    std::vector<RawLogEntry> batch;
    Status read = primary.ReadRawLog(replica->LastCommit() + 1, sizes[n % sizes.size()],
                                     size_t{1} << 30, &batch);
    ASSERT_TRUE(read.ok()) << read.ToString();
    ASSERT_FALSE(batch.empty());
    Status s = replica->ApplyLog(batch);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(replica->LastCommit(), batch.back().commit);
    if (reopen_every && n % reopen_every == reopen_every - 1) {
      replica.reset();
      replica = OpenOrDie(dir, options);
      ASSERT_TRUE(replica);
    }
  }
}

DatabaseDigest DigestOf(Engine& db) {
  db.WaitForBackgroundWork();  // index states are part of the digest
  auto d = db.Digest();
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? *d : DatabaseDigest{};
}

void ExpectSameDigest(Engine& a, Engine& b) {
  DatabaseDigest da = DigestOf(a), db = DigestOf(b);
  EXPECT_EQ(da.commit, db.commit);
  EXPECT_EQ(da.digest, db.digest);
  EXPECT_EQ(da.collections, db.collections);
  EXPECT_EQ(da.records, db.records);
  EXPECT_EQ(da.index_entries, db.index_entries);
}

void ExpectVerified(Engine& db) {
  VerifyReport v = db.Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

std::string U64BE(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = char(v >> (56 - 8 * i));
  return s;
}

// --- Snapshots.

TEST(SnapshotTest, CopyUnderConcurrentWritesIsExactlyItsCommit) {
  TempDir dir;
  Options fast;
  fast.durability = Durability::kNoSync;
  auto source = OpenOrDie(dir.Sub("source"), fast);
  Bulk(source.get());
  const uint64_t base = source->LastCommit();
  Workload(source.get()).Run(0, 300);

  // Writes go on, on another thread, while the snapshot is taken and copied.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> steps{300};
  std::thread writer([&] {
    Workload w(source.get());
    while (!stop.load() || steps.load() < 2000) w.Step(steps++);
  });
  while (steps.load() < 600) std::this_thread::yield();
  auto start = Clock::now();
  auto copy = source->StartSnapshot();
  auto taken = Clock::now() - start;
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  const uint64_t commit = (*copy)->commit();
  EXPECT_EQ((*copy)->history(), source->History());
  size_t bytes = 0;
  Status saved = SaveSnapshot(**copy, dir.Sub("copy"), SIZE_MAX, &bytes);
  const uint64_t after_copy = source->LastCommit();
  // More snapshots while the writes go on, each exactly at its commit: the race this
  // guards against (a snapshot taken a commit later than it says) needs a commit to land
  // in a window of microseconds, so one try alone could miss it.
  for (int i = 0; i < 4; i++) {
    auto more = source->StartSnapshot();
    ASSERT_TRUE(more.ok());
    std::string sub = dir.Sub("more" + std::to_string(i));
    ASSERT_TRUE(SaveSnapshot(**more, sub).ok());
    auto opened = OpenOrDie(sub);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->LastCommit(), (*more)->commit());
  }
  stop = true;
  writer.join();
  ASSERT_TRUE(saved.ok()) << saved.ToString();
  EXPECT_GT(after_copy, commit) << "writes went on during the copy";
  EXPECT_LT(taken, std::chrono::seconds(1));
  std::printf(
      "snapshot of %zu bytes at commit %llu, taken in %lld us\n", bytes,
      static_cast<unsigned long long>(commit),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(taken).count()));

  auto restored = OpenOrDie(dir.Sub("copy"));
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->LastCommit(), commit);
  // Opened as a primary's, the copy starts an epoch of its own after the snapshot's
  // history (docs/storage.md, "Copies start an epoch of their own").
  std::vector<EpochStart> history = restored->History();
  ASSERT_EQ(history.size(), (*copy)->history().size() + 1);
  EXPECT_TRUE(std::equal((*copy)->history().begin(), (*copy)->history().end(), history.begin()));
  EXPECT_EQ(history.back().epoch, (*copy)->history().back().epoch + 1);
  EXPECT_EQ(history.back().first_commit, commit + 1);
  EXPECT_TRUE(restored->Stats().epoch_started_at_open);
  ExpectVerified(*restored);

  // The source as it was at `commit`: the same steps on a new engine, up to that commit.
  auto model = OpenOrDie(dir.Sub("model"), fast);
  Bulk(model.get());
  ASSERT_EQ(model->LastCommit(), base);
  Workload w(model.get());
  for (uint64_t i = 0; model->LastCommit() < commit; i++) w.Step(i);
  ASSERT_EQ(model->LastCommit(), commit) << "a snapshot holds whole group commits";
  ExpectSameDigest(*restored, *model);
}

TEST(SnapshotTest, ReaderThatStopsEarlyEndsTheCopyWithoutHanging) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  Bulk(db.get());
  {
    // Destroyed unread: the copying thread's write fails (EPIPE, not SIGPIPE: this test
    // process keeps SIGPIPE's default action, which would kill it).
    auto copy = db->StartSnapshot();
    ASSERT_TRUE(copy.ok());
    char buf[4096];
    ASSERT_GT(::read((*copy)->fd(), buf, sizeof buf), 0);
    // Writes are not held up by a copy whose reader is slow.
    auto start = Clock::now();
    std::string d = Doc("{}");
    ASSERT_TRUE(db->Execute(Txn({PutOp{"bulk", "during", d}})).status.ok());
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
    start = Clock::now();
    copy->reset();
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  }
  // Finish before the end: the copy is reported incomplete.
  auto copy = db->StartSnapshot();
  ASSERT_TRUE(copy.ok());
  Status s = SaveSnapshot(**copy, dir.Sub("partial"), 100 << 10);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("stopped before its end"), std::string::npos) << s.ToString();
  EXPECT_EQ((*copy)->fd(), -1);
  // A later snapshot is whole.
  auto again = db->StartSnapshot();
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(SaveSnapshot(**again, dir.Sub("whole")).ok());
  auto whole = OpenOrDie(dir.Sub("whole"));
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->LastCommit(), db->LastCommit());
  ExpectSameDigest(*whole, *db);
}

// docs/storage.md, "Copies start an epoch of their own": a copy of a database opened as
// a primary's can never write in the epoch of the node it was copied from, so that the two
// cannot later pass for one history; the node itself and a replica keep their epoch.
TEST(SnapshotTest, ACopyOpenedAsAPrimaryStartsAnEpochOfItsOwn) {
  TempDir dir;
  auto db = OpenOrDie(dir.Sub("source"));
  ASSERT_TRUE(db->CreateCollection("c").ok());
  const std::vector<EpochStart> original = db->History();
  db.reset();
  db = OpenOrDie(dir.Sub("source"));
  EXPECT_EQ(db->History(), original) << "the node itself, restarted, keeps its epoch";
  EXPECT_FALSE(db->Stats().epoch_started_at_open);

  auto copy = db->StartSnapshot();
  ASSERT_TRUE(copy.ok());
  ASSERT_TRUE(SaveSnapshot(**copy, dir.Sub("replica")).ok());
  copy = db->StartSnapshot();
  ASSERT_TRUE(SaveSnapshot(**copy, dir.Sub("primary")).ok());
  {
    Options o;
    o.replica = true;
    auto replica = OpenOrDie(dir.Sub("replica"), o);
    EXPECT_EQ(replica->History(), original) << "a replica's copy follows the primary's epochs";
    EXPECT_FALSE(replica->Stats().epoch_started_at_open);
  }
  auto other = OpenOrDie(dir.Sub("primary"));
  std::vector<EpochStart> h = other->History();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], original[0]);
  EXPECT_EQ(h[1].epoch, 2u);
  EXPECT_EQ(h[1].first_commit, db->LastCommit() + 1);
  EXPECT_TRUE(other->Stats().epoch_started_at_open);
  // Its writes are its epoch's: a replica of the source that saw them would diverge.
  ASSERT_TRUE(other->CreateCollection("mine").ok());
  EXPECT_FALSE(Engine::OnHistory(other->History(), other->LastCommit(), db->History(),
                                 db->LastCommit() + 1));
  // Reopened, it is its own node now: no further epoch.
  other.reset();
  other = OpenOrDie(dir.Sub("primary"));
  EXPECT_EQ(other->History().size(), 2u);
  EXPECT_FALSE(other->Stats().epoch_started_at_open);
  // The replica's copy, later opened as a primary's (a forgotten --replica-of), starts
  // one too.
  auto former = OpenOrDie(dir.Sub("replica"));
  EXPECT_EQ(former->History().size(), 2u);
  EXPECT_TRUE(former->Stats().epoch_started_at_open);
}

TEST(SnapshotTest, ReadOnlyEngineRefusesToSnapshot) {
  TempDir dir;
  { ASSERT_TRUE(OpenOrDie(dir.path())->CreateCollection("c").ok()); }
  Options ro;
  ro.read_only = true;
  auto db = OpenOrDie(dir.path(), ro);
  auto copy = db->StartSnapshot();
  ASSERT_FALSE(copy.ok());
  EXPECT_EQ(copy.status().code(), Code::kBadRequest);
}

// --- Digest.

// Builds the same data in `db` as BuildTwin does, with the commits in the same order, but
// each bulk transaction's puts in the opposite order and with records written and deleted
// again in between (another page layout), another log retention and idempotency keys
// (neither in the digest). `variant` changes one thing.
enum class Variant { kSame, kValueByte, kVersions, kIndexSpec };
void BuildTwin(Engine* db, bool reversed, Variant variant = Variant::kSame) {
  ASSERT_TRUE(db->CreateCollection("a").ok());
  ASSERT_TRUE(db->CreateCollection("b").ok());
  std::vector<std::string> keys, docs;
  for (int i = 0; i < 800; i++) {
    keys.push_back("k" + std::to_string(i));
    docs.push_back(Doc(R"({"n": )" + std::to_string(i % 97) + R"(, "s": ")" +
                       std::string(50 + i % 200, 'x') + R"("})"));
  }
  Transaction t;
  std::string junk = Doc(R"({"junk": true})");
  std::vector<std::string> junk_keys;
  for (int i = 0; i < 300; i++) junk_keys.push_back("k" + std::to_string(i) + "-junk");
  for (int j = 0; j < 800; j++) {
    int i = reversed ? 799 - j : j;
    t.ops.push_back(PutOp{"a", keys[i], docs[i]});
    if (reversed && j < 300) t.ops.push_back(PutOp{"a", junk_keys[j], junk});
  }
  if (reversed) {
    for (int j = 0; j < 300; j++) t.ops.push_back(DeleteOp{"a", junk_keys[j]});
    t.idempotency_key = "twin";
  }
  ASSERT_TRUE(db->Execute(t).status.ok());
  ASSERT_TRUE(db->CreateIndex("a", {"by_n", {"n"}}).ok());
  // kIndexSpec: the same entries, of a unique index.
  ASSERT_TRUE(db->CreateIndex("b", {"by_n", {"n"}, variant == Variant::kIndexSpec}).ok());
  std::string one = Doc(R"({"n": 1, "s": "aaaa"})");
  std::string other =
      Doc(variant == Variant::kValueByte ? R"({"n": 1, "s": "aaab"})" : R"({"n": 1, "s": "aaaa"})");
  std::string two = Doc(R"({"n": 2})");
  // x = one, y = two, x = other (one, or one byte off it). kVersions writes y first:
  // the same records at the end, y at another version.
  if (variant == Variant::kVersions) {
    ASSERT_TRUE(db->Execute(Txn({PutOp{"b", "y", two}})).status.ok());
    ASSERT_TRUE(db->Execute(Txn({PutOp{"b", "x", one}})).status.ok());
  } else {
    ASSERT_TRUE(db->Execute(Txn({PutOp{"b", "x", one}})).status.ok());
    ASSERT_TRUE(db->Execute(Txn({PutOp{"b", "y", two}})).status.ok());
  }
  ASSERT_TRUE(db->Execute(Txn({PutOp{"b", "x", other}})).status.ok());
  db->WaitForBackgroundWork();
}

TEST(DigestTest, EqualDataGivesEqualDigestsWhateverTheLayoutIdsAndLog) {
  TempDir dir;
  auto a = OpenOrDie(dir.Sub("a"));
  BuildTwin(a.get(), false);
  {
    // Other internal ids: b's counter starts elsewhere.
    { OpenOrDie(dir.Sub("b")); }
    RawLmdb raw(dir.Sub("b"));
    raw.Put("meta", "#next_id", U64BE(1000));
  }
  Options b_options;
  b_options.log_retention = 3;
  auto b = OpenOrDie(dir.Sub("b"), b_options);
  BuildTwin(b.get(), true);
  EXPECT_NE(a->Stats().log_first, b->Stats().log_first);
  DatabaseDigest da = DigestOf(*a);
  EXPECT_EQ(da.commit, a->LastCommit());
  EXPECT_EQ(da.collections, 2u);
  EXPECT_EQ(da.records, 802u);
  EXPECT_EQ(da.index_entries, 802u);
  ExpectSameDigest(*a, *b);
  // One snapshot, taken by hand, gives the same digest.
  auto read = a->BeginRead();
  ASSERT_TRUE(read.ok());
  auto at = read->Digest();
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->digest, da.digest);
}

TEST(DigestTest, EachDifferenceChangesTheDigest) {
  TempDir dir;
  auto base = OpenOrDie(dir.Sub("base"));
  BuildTwin(base.get(), false);
  const DatabaseDigest want = DigestOf(*base);
  for (Variant v : {Variant::kValueByte, Variant::kVersions, Variant::kIndexSpec}) {
    std::string sub = "v" + std::to_string(int(v));
    auto db = OpenOrDie(dir.Sub(sub));
    BuildTwin(db.get(), false, v);
    DatabaseDigest got = DigestOf(*db);
    EXPECT_EQ(got.commit, want.commit) << sub;
    EXPECT_EQ(got.records, want.records) << sub;
    EXPECT_NE(got.digest, want.digest) << sub;
  }
  // An index entry gone missing (the data of `base` otherwise).
  base.reset();
  fs::copy(dir.Sub("base"), dir.Sub("missing"));
  fs::remove(dir.Sub("missing") + "/cairn.lock");
  {
    RawLmdb raw(dir.Sub("missing"));
    auto entries = raw.All("index");
    ASSERT_FALSE(entries.empty());
    raw.Del("index", entries.rbegin()->first);  // one value held by one record ("y": n 2)
  }
  auto missing = OpenOrDie(dir.Sub("missing"));
  DatabaseDigest got = DigestOf(*missing);
  EXPECT_EQ(got.index_entries + 1, want.index_entries);
  EXPECT_NE(got.digest, want.digest);
  EXPECT_FALSE(missing->Verify().ok());
}

TEST(DigestTest, DamagedRecordIsReportedNotDigested) {
  TempDir dir;
  {
    auto db = OpenOrDie(dir.path());
    ASSERT_TRUE(db->CreateCollection("c").ok());
    std::string d = Doc(R"({"v": "value"})");
    ASSERT_TRUE(db->Execute(Txn({PutOp{"c", "k", d}})).status.ok());
  }
  {
    RawLmdb raw(dir.path());
    std::string key = raw.RecordKey("k");
    std::string stored = *raw.Get("records", key);
    stored[testing::kRecordHeader + 2] ^= 1;
    raw.Put("records", key, stored);
  }
  auto db = OpenOrDie(dir.path());
  auto d = db->Digest();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kCorrupted);
  EXPECT_EQ(db->Stats().corrupted_reads, 1u);
}

// --- Applying a primary's log.

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_ = OpenOrDie(dir_.Sub("primary"), NoSync());
    ASSERT_TRUE(primary_);
  }
  std::string ReplicaDir() const { return dir_.Sub("replica"); }
  // Primary's entries from `from`, `n` of them.
  std::vector<RawLogEntry> Entries(uint64_t from, size_t n) {
    std::vector<RawLogEntry> out;
    Status s = primary_->ReadRawLog(from, n, size_t{1} << 30, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Engine> primary_;
};

TEST_F(ReplicaTest, ReplicaFollowsMixedWorkloadInBatchesAcrossRestarts) {
  Workload w(primary_.get());
  // The replica applies the drop and re-creation of a collection, the drop of an index
  // and an index built over existing records.
  w.Run(0, 70);
  uint64_t start;
  auto replica = Bootstrap(*primary_, ReplicaDir(), &start, NoSync());
  ASSERT_TRUE(replica);
  ASSERT_EQ(replica->LastCommit(), start);
  w.Run(70, 1200);
  ASSERT_GT(primary_->LastCommit(), start + 500);

  Follow(*primary_, replica, ReplicaDir(), {1, 7, 64, 1000, 3, 200}, /*reopen_every=*/3, NoSync());
  EXPECT_EQ(replica->LastCommit(), primary_->LastCommit());
  ExpectSameDigest(*primary_, *replica);
  ExpectVerified(*primary_);
  ExpectVerified(*replica);

  // The replica's log is its primary's, byte for byte.
  std::vector<RawLogEntry> mine, theirs;
  ASSERT_TRUE(replica->ReadRawLog(start + 1, 100000, size_t{1} << 30, &mine).ok());
  ASSERT_TRUE(primary_->ReadRawLog(start + 1, 100000, size_t{1} << 30, &theirs).ok());
  ASSERT_EQ(mine.size(), theirs.size());
  for (size_t i = 0; i < mine.size(); i++) {
    ASSERT_EQ(mine[i].commit, theirs[i].commit);
    ASSERT_EQ(mine[i].data, theirs[i].data) << "commit " << mine[i].commit;
  }
  // Its catalog too, index states included.
  auto users = replica->DescribeCollection("users");
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->indexes.size(), 2u);
  EXPECT_EQ(users->indexes[0].spec.name, "by_age_name");
  EXPECT_EQ(users->indexes[0].state, IndexState::kReady);
  EXPECT_EQ(users->indexes[1].spec.name, "by_email");
  EXPECT_TRUE(users->indexes[1].spec.unique);
}

// Runs in a child process: opens the replica in `dir` and applies `entries` from its
// next commit on, in batches of 1 to 64, reporting each acknowledged batch's last
// commit on `fd`, until the entries run out (then it waits to be killed).
[[noreturn]] void ChildApplier(const std::string& dir, const std::vector<RawLogEntry>& entries,
                               int fd) {
  Options o;
  o.replica = true;  // kSync: an acknowledged batch is on the disk
  auto opened = Engine::Open(dir, o);
  if (!opened.ok()) _exit(2);
  Engine& db = **opened;
  std::mt19937 rng(uint32_t(db.LastCommit()));
  size_t next = size_t(db.LastCommit() - entries.front().commit + 1);
  while (next < entries.size()) {
    size_t n = std::min<size_t>(1 + rng() % 64, entries.size() - next);
    if (!db.ApplyLog(std::span(entries).subspan(next, n)).ok()) _exit(3);
    next += n;
    uint64_t acked = db.LastCommit();
    if (::write(fd, &acked, sizeof acked) != sizeof acked) _exit(4);
  }
  for (;;) ::pause();
}

TEST_F(ReplicaTest, ReplicaKilledWhileApplyingResumesWhereItWas) {
  Workload w(primary_.get());
  w.Run(0, 30);
  uint64_t start;
  auto replica = Bootstrap(*primary_, ReplicaDir(), &start, NoSync());
  replica.reset();
  w.Run(30, 3000);
  std::vector<RawLogEntry> entries;
  ASSERT_TRUE(primary_->ReadRawLog(start + 1, 1 << 20, size_t{1} << 30, &entries).ok());
  ASSERT_EQ(entries.back().commit, primary_->LastCommit());
  // No engine is open while the children run (fork copies one thread only).
  primary_.reset();

  for (int round = 0; round < 4; round++) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      ChildApplier(ReplicaDir(), entries, fds[1]);
    }
    ::close(fds[1]);
    uint64_t acked = 0, a;
    size_t acks = 0;
    while (acks < 8 && ::read(fds[0], &a, sizeof a) == sizeof a) acked = a, acks++;
    ::kill(pid, SIGKILL);
    while (::read(fds[0], &a, sizeof a) == sizeof a) acked = a;
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the applier failed on its own, status " << status;
    Options o;
    o.replica = true;
    auto reopened = OpenOrDie(ReplicaDir(), o);
    ASSERT_TRUE(reopened);
    EXPECT_GE(reopened->LastCommit(), acked) << "an acknowledged batch was lost";
    ExpectVerified(*reopened);
  }
  Options o = NoSync();
  o.replica = true;
  replica = OpenOrDie(ReplicaDir(), o);
  ASSERT_TRUE(replica->ApplyLog(std::span(entries).subspan(replica->LastCommit() - start)).ok());
  primary_ = OpenOrDie(dir_.Sub("primary"), NoSync());
  ExpectSameDigest(*primary_, *replica);
}

TEST_F(ReplicaTest, BatchesThatDoNotFollowOnAreRefusedAndChangeNothing) {
  Workload w(primary_.get());
  w.Run(0, 50);
  uint64_t start;
  auto replica = Bootstrap(*primary_, ReplicaDir(), &start);
  w.Run(50, 150);
  auto batch = Entries(start + 1, 10);
  ASSERT_EQ(batch.size(), 10u);
  ASSERT_TRUE(replica->ApplyLog(batch).ok());
  EXPECT_EQ(replica->Stats().applied_batches, 1u);
  const DatabaseDigest before = DigestOf(*replica);

  // Again: already applied.
  Status again = replica->ApplyLog(batch);
  EXPECT_EQ(again.code(), Code::kBadRequest);
  EXPECT_NE(again.message().find("expected commit " + std::to_string(start + 11) + ", got " +
                                 std::to_string(start + 1)),
            std::string::npos)
      << again.ToString();
  // A gap.
  auto later = Entries(start + 13, 5);
  Status gap = replica->ApplyLog(later);
  EXPECT_EQ(gap.code(), Code::kBadRequest) << gap.ToString();
  // A hole inside a batch.
  auto next = Entries(start + 11, 5);
  next.erase(next.begin() + 2);
  Status hole = replica->ApplyLog(next);
  EXPECT_EQ(hole.code(), Code::kBadRequest);
  EXPECT_NE(hole.message().find("consecutive"), std::string::npos) << hole.ToString();

  // A flipped byte in the fourth entry: the three before it are not applied either.
  next = Entries(start + 11, 5);
  next[3].data[next[3].data.size() / 2] ^= 0x20;
  Status corrupt = replica->ApplyLog(next);
  EXPECT_EQ(corrupt.code(), Code::kCorrupted);
  EXPECT_NE(corrupt.message().find("commit " + std::to_string(start + 14)), std::string::npos)
      << corrupt.ToString();
  // Truncated, or under another commit's number (the checksum covers the number).
  auto cut = Entries(start + 11, 1);
  cut[0].data.resize(cut[0].data.size() - 1);
  EXPECT_EQ(replica->ApplyLog(cut).code(), Code::kCorrupted);

  EXPECT_EQ(replica->LastCommit(), start + 10);
  EXPECT_EQ(replica->Stats().applied_batches, 1u);
  DatabaseDigest after = DigestOf(*replica);
  EXPECT_EQ(after.digest, before.digest);
  EXPECT_EQ(after.commit, before.commit);

  // The right batch still applies; then the rest.
  ASSERT_TRUE(replica->ApplyLog(Entries(start + 11, 5)).ok());
  Follow(*primary_, replica, ReplicaDir(), {100});
  ExpectSameDigest(*primary_, *replica);
}

TEST_F(ReplicaTest, EntryThatDoesNotFitTheReplicasDataIsRefusedWhole) {
  ASSERT_TRUE(primary_->CreateCollection("c").ok());
  std::string d = Doc(R"({"a": 1})");
  ASSERT_TRUE(primary_->Execute(Txn({PutOp{"c", "k", d}})).status.ok());
  uint64_t start;
  auto replica = Bootstrap(*primary_, ReplicaDir(), &start);
  replica.reset();
  {
    // The replica loses the record behind its primary's back.
    RawLmdb raw(ReplicaDir());
    raw.Del("records", raw.RecordKey("k"));
  }
  Options o;
  o.replica = true;
  replica = OpenOrDie(ReplicaDir(), o);
  ASSERT_TRUE(primary_->Execute(Txn({PutOp{"c", "j", d}})).status.ok());
  ASSERT_TRUE(primary_->Execute(Txn({DeleteOp{"c", "k"}})).status.ok());
  Status s = replica->ApplyLog(Entries(start + 1, 2));
  EXPECT_EQ(s.code(), Code::kCorrupted);
  EXPECT_NE(s.message().find("delete of 'k' from 'c'"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("bootstrap it again"), std::string::npos) << s.ToString();
  EXPECT_EQ(replica->LastCommit(), start);
  auto read = replica->BeginRead();
  bool found = true;
  RecordView rv;
  ASSERT_TRUE(read->Get("c", "j", &rv, &found).ok());
  EXPECT_FALSE(found) << "nothing of the batch was applied";
}

TEST_F(ReplicaTest, ReplicaRefusesWritesUntilPromotedThenRemembersItsPrimarysKeys) {
  Workload w(primary_.get());
  w.Run(0, 20);
  uint64_t start;
  auto replica = Bootstrap(*primary_, ReplicaDir(), &start);
  w.Run(20, 300);
  ASSERT_FALSE(w.keyed.empty());
  Follow(*primary_, replica, ReplicaDir(), {50});

  std::string d = Doc("{}");
  TxnResult put = replica->Execute(Txn({PutOp{"users", "x", d}}));
  EXPECT_EQ(put.status.code(), Code::kReadOnly);
  EXPECT_NE(put.status.message().find("this database is a replica; writes go to its primary"),
            std::string::npos)
      << put.status.ToString();
  EXPECT_EQ(replica->CreateCollection("new").code(), Code::kReadOnly);
  EXPECT_EQ(replica->DropCollection("users").code(), Code::kReadOnly);
  EXPECT_EQ(replica->CreateIndex("users", {"i", {"x"}}).code(), Code::kReadOnly);
  // A keyed retry is refused too, not answered from the log, until promotion.
  const auto& [key, original] = *w.keyed.rbegin();
  Transaction again = Txn({PutOp{"users", "other", d}});
  again.idempotency_key = key;
  EXPECT_EQ(replica->Execute(again).status.code(), Code::kReadOnly);
  // Reads in a batch still run.
  Transaction get = Txn({GetOp{"users", "u1"}});
  const Transaction* batch[] = {&get, &again};
  auto results = replica->ExecuteBatch(batch);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status.ToString();
  EXPECT_EQ(results[1].status.code(), Code::kReadOnly);
  // The primary refuses ApplyLog.
  Status apply = primary_->ApplyLog(Entries(primary_->LastCommit(), 1));
  EXPECT_EQ(apply.code(), Code::kBadRequest);
  EXPECT_NE(apply.message().find("primary"), std::string::npos) << apply.ToString();

  // Promoted: writes are taken, and a retry of a transaction the old primary committed
  // is answered with its result.
  auto epoch = replica->StartEpoch();
  ASSERT_TRUE(epoch.ok()) << epoch.status().ToString();
  TxnResult replayed = replica->Execute(again);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status.ToString();
  EXPECT_TRUE(replayed.replayed);
  EXPECT_EQ(replayed.commit, original.commit);
  ASSERT_EQ(replayed.results.size(), original.results.size());
  for (size_t i = 0; i < original.results.size(); i++) {
    EXPECT_EQ(replayed.results[i].version, original.results[i].version);
    EXPECT_EQ(replayed.results[i].records, original.results[i].records);
  }
  TxnResult fresh = replica->Execute(Txn({PutOp{"users", "x", d}}));
  ASSERT_TRUE(fresh.status.ok()) << fresh.status.ToString();
  EXPECT_EQ(fresh.commit, primary_->LastCommit() + 1);
  EXPECT_EQ(replica->ApplyLog(Entries(primary_->LastCommit(), 1)).code(), Code::kBadRequest);
}

TEST_F(ReplicaTest, FullReplicaRefusesTheBatchAndStaysConsistent) {
  ASSERT_TRUE(primary_->CreateCollection("c").ok());
  uint64_t start;
  Options small = NoSync();
  small.max_size = 2 << 20;
  small.space_reserve = 256 << 10;
  auto replica = Bootstrap(*primary_, ReplicaDir(), &start, small);
  ASSERT_TRUE(replica);
  std::string big = Doc(R"({"pad": ")" + std::string(8000, 'x') + R"("})");
  for (int i = 0; i < 600; i++) {  // about 5 MB
    std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(primary_->Execute(Txn({PutOp{"c", key, big}})).status.ok());
  }
  Status s;
  uint64_t before = 0;
  while (replica->LastCommit() < primary_->LastCommit()) {
    before = replica->LastCommit();
    s = replica->ApplyLog(Entries(before + 1, 20));
    if (!s.ok()) break;
  }
  ASSERT_EQ(s.code(), Code::kDatabaseFull) << s.ToString();
  EXPECT_EQ(replica->LastCommit(), before) << "nothing of the refused batch";
  ExpectVerified(*replica);
  // With a higher cap it resumes where it stopped.
  replica.reset();
  Options o = NoSync();
  o.max_size = 64 << 20;
  o.replica = true;
  replica = OpenOrDie(ReplicaDir(), o);
  Follow(*primary_, replica, ReplicaDir(), {20}, 0, o);
  ExpectSameDigest(*primary_, *replica);
}

// --- Epochs and the fence.

TEST(HistoryTest, NewDatabaseStartsEpochOneAndKeepsIt) {
  TempDir dir;
  std::vector<EpochStart> h;
  {
    auto db = OpenOrDie(dir.path());
    h = db->History();
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].epoch, 1u);
    EXPECT_NE(h[0].id, 0u);
    EXPECT_EQ(h[0].first_commit, 1u);
    EXPECT_EQ(db->HighestEpochSeen(), 1u);
    EXPECT_EQ(db->Stats().epoch, 1u);
    EXPECT_FALSE(db->Stats().fenced);
  }
  auto db = OpenOrDie(dir.path());
  EXPECT_EQ(db->History(), h);
  db.reset();
  // A database made before histories gets one, with an id of its own.
  {
    RawLmdb raw(dir.path());
    raw.Del("meta", "#history");
  }
  db = OpenOrDie(dir.path());
  ASSERT_EQ(db->History().size(), 1u);
  EXPECT_EQ(db->History()[0].epoch, 1u);
  EXPECT_NE(db->History()[0].id, h[0].id);
  db.reset();
  // A damaged history stops the open, rather than letting a diverged replica follow.
  {
    RawLmdb raw(dir.path());
    std::string stored = *raw.Get("meta", "#history");
    stored[3] ^= 1;
    raw.Put("meta", "#history", stored);
  }
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupted);
  EXPECT_NE(r.status().message().find("history"), std::string::npos);
}

TEST(HistoryTest, EpochOfAndOnHistory) {
  const std::vector<EpochStart> one = {{1, 11, 1}};
  const std::vector<EpochStart> two = {{1, 11, 1}, {2, 22, 51}};
  const std::vector<EpochStart> other = {{1, 99, 1}};
  const std::vector<EpochStart> skipped = {{1, 11, 1}, {2, 22, 51}, {3, 33, 51}};
  EXPECT_EQ(Engine::EpochOf(one, 0), EpochStart{});
  EXPECT_EQ(Engine::EpochOf(two, 50), (EpochStart{1, 11, 1}));
  EXPECT_EQ(Engine::EpochOf(two, 51), (EpochStart{2, 22, 51}));
  EXPECT_EQ(Engine::EpochOf(two, 1000), (EpochStart{2, 22, 51})) << "not made yet: the last";
  EXPECT_EQ(Engine::EpochOf(skipped, 51), (EpochStart{3, 33, 51})) << "epoch 2 made none";

  // The empty database follows anyone.
  EXPECT_TRUE(Engine::OnHistory(one, 0, other, 0));
  EXPECT_TRUE(Engine::OnHistory(other, 0, two, 100));
  // Behind, in the same epoch.
  EXPECT_TRUE(Engine::OnHistory(one, 40, two, 100));
  EXPECT_TRUE(Engine::OnHistory(one, 50, two, 100)) << "promoted right after its last";
  // Ahead of the other.
  EXPECT_FALSE(Engine::OnHistory(one, 40, one, 39));
  // Commits the other made in a later epoch: diverged.
  EXPECT_FALSE(Engine::OnHistory(one, 60, two, 100));
  // Another database altogether.
  EXPECT_FALSE(Engine::OnHistory(other, 10, one, 100));
  EXPECT_FALSE(Engine::OnHistory(two, 60, skipped, 60));
  EXPECT_TRUE(Engine::OnHistory(two, 50, skipped, 60));
}

TEST(HistoryTest, PromotionStartsAnEpochAndAReplicaAdoptsOrRefusesItsHistory) {
  TempDir dir;
  auto primary = OpenOrDie(dir.Sub("p"));
  ASSERT_TRUE(primary->CreateCollection("c").ok());
  std::string d = Doc("{}");
  for (int i = 0; i < 10; i++) {
    std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(primary->Execute(Txn({PutOp{"c", key, d}})).status.ok());
  }
  uint64_t at;
  auto a = Bootstrap(*primary, dir.Sub("a"), &at);  // will be promoted
  auto b = Bootstrap(*primary, dir.Sub("b"), &at);  // follows the new primary
  auto c = Bootstrap(*primary, dir.Sub("c"), &at);  // applies one more of the old primary's
  EXPECT_EQ(a->History(), primary->History()) << "snapshots carry the history";
  ASSERT_TRUE(primary->Execute(Txn({PutOp{"c", "late", d}})).status.ok());
  ASSERT_TRUE(c->ApplyLog([&] {
                 std::vector<RawLogEntry> e;
                 EXPECT_TRUE(primary->ReadRawLog(at + 1, 1, 1 << 20, &e).ok());
                 return e;
               }())
                  .ok());

  auto epoch = a->StartEpoch();
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(epoch->epoch, 2u);
  EXPECT_EQ(epoch->first_commit, at + 1);
  EXPECT_NE(epoch->id, primary->History()[0].id);
  std::vector<EpochStart> h = a->History();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], primary->History()[0]);
  EXPECT_EQ(h[1], *epoch);
  EXPECT_EQ(a->Stats().epoch, 2u);
  ASSERT_TRUE(a->Execute(Txn({PutOp{"c", "new", d}})).status.ok());

  // b is at `at`, which epoch 1 made in both histories: it takes a's.
  EXPECT_TRUE(Engine::OnHistory(b->History(), b->LastCommit(), h, a->LastCommit()));
  ASSERT_TRUE(b->AdoptHistory(h).ok());
  EXPECT_EQ(b->History(), h);
  // c applied commit at + 1 from epoch 1, which a's history says epoch 2 made.
  EXPECT_FALSE(Engine::OnHistory(c->History(), c->LastCommit(), h, a->LastCommit()));
  Status diverged = c->AdoptHistory(h);
  EXPECT_EQ(diverged.code(), Code::kDiverged);
  EXPECT_NE(diverged.message().find("diverged"), std::string::npos) << diverged.ToString();
  EXPECT_EQ(c->History(), primary->History());
  // Malformed histories, and a primary taking another's.
  EXPECT_EQ(b->AdoptHistory({}).code(), Code::kBadRequest);
  EXPECT_EQ(b->AdoptHistory({{2, 1, 1}, {1, 1, 5}}).code(), Code::kBadRequest);
  EXPECT_EQ(a->AdoptHistory(h).code(), Code::kBadRequest);

  // All of it survives a restart; reopened without Options::replica, a promoted database
  // is a primary.
  a.reset();
  b.reset();
  a = OpenOrDie(dir.Sub("a"));
  EXPECT_EQ(a->History(), h);
  EXPECT_TRUE(a->Execute(Txn({PutOp{"c", "after", d}})).status.ok());
  Options replica;
  replica.replica = true;
  b = OpenOrDie(dir.Sub("b"), replica);
  EXPECT_EQ(b->History(), h);
}

TEST(HistoryTest, FenceStopsWritesUntilANewEpochAndSurvivesRestart) {
  TempDir dir;
  auto db = OpenOrDie(dir.path());
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc("{}");
  ASSERT_TRUE(db->Execute(Txn({PutOp{"c", "k", d}})).status.ok());
  ASSERT_TRUE(db->Fence(1).ok());  // its own epoch: nothing changes
  EXPECT_TRUE(db->Execute(Txn({PutOp{"c", "k", d}})).status.ok());

  ASSERT_TRUE(db->Fence(3).ok());
  TxnResult r = db->Execute(Txn({PutOp{"c", "k", d}}));
  EXPECT_EQ(r.status.code(), Code::kReadOnly);
  EXPECT_NE(r.status.message().find("a newer primary (epoch 3) exists"), std::string::npos)
      << r.status.ToString();
  EXPECT_EQ(db->CreateCollection("d").code(), Code::kReadOnly);
  EXPECT_EQ(db->DropCollection("c").code(), Code::kReadOnly);
  EXPECT_TRUE(db->Execute(Txn({GetOp{"c", "k"}})).status.ok()) << "reads go on";
  EXPECT_TRUE(db->Stats().fenced);
  EXPECT_EQ(db->Stats().highest_epoch_seen, 3u);
  EXPECT_EQ(db->HighestEpochSeen(), 3u);
  ASSERT_TRUE(db->Fence(2).ok());
  EXPECT_EQ(db->HighestEpochSeen(), 3u) << "never goes down";

  db.reset();
  db = OpenOrDie(dir.path());
  EXPECT_TRUE(db->Stats().fenced);
  EXPECT_EQ(db->Execute(Txn({PutOp{"c", "k", d}})).status.code(), Code::kReadOnly);

  auto epoch = db->StartEpoch();
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(epoch->epoch, 4u) << "above every epoch heard of";
  EXPECT_FALSE(db->Stats().fenced);
  EXPECT_TRUE(db->Execute(Txn({PutOp{"c", "k", d}})).status.ok());
  db.reset();
  db = OpenOrDie(dir.path());
  EXPECT_FALSE(db->Stats().fenced);
  EXPECT_EQ(db->Stats().epoch, 4u);
}

// --- Holding the log.

TEST(LogHoldTest, HoldKeepsEntriesWithinTheCommitBound) {
  TempDir dir;
  Options o = NoSync();
  o.log_retention = 10;
  o.replica_log_keep = 50;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = Doc(R"({"pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})");
  auto put = [&] {
    std::string key = "k" + std::to_string(db->LastCommit());
    ASSERT_TRUE(db->Execute(Txn({PutOp{"c", key, d}})).status.ok());
  };
  while (db->LastCommit() < 4) put();
  db->HoldLog(5);
  EXPECT_EQ(db->Stats().log_hold, 5u);
  std::vector<LogEntry> log;
  while (db->LastCommit() < 54) {  // 49 commits behind the last at most
    put();
    log.clear();
    ASSERT_TRUE(db->ReadLog(5, 1, 1 << 20, &log).ok()) << "at " << db->LastCommit();
  }
  EXPECT_EQ(db->Stats().log_first, 5u) << "entries before the hold went by retention";
  put();  // 50 behind: past the bound, the hold is ignored
  log.clear();
  EXPECT_EQ(db->ReadLog(5, 1, 1 << 20, &log).code(), Code::kLogTruncated);
  for (int i = 0; i < 20; i++) put();
  EXPECT_EQ(db->Stats().log_first, db->LastCommit() - 9) << "back to retention";

  // Let go: trimming resumes.
  uint64_t hold = db->LastCommit() - 5;
  db->HoldLog(hold);
  for (int i = 0; i < 20; i++) put();
  EXPECT_EQ(db->Stats().log_first, hold);
  db->HoldLog(0);
  for (int i = 0; i < 3; i++) put();  // 10 entries trimmed per commit
  EXPECT_EQ(db->Stats().log_first, db->LastCommit() - 9);
  EXPECT_EQ(db->Stats().log_hold, 0u);
  ExpectVerified(*db);
}

// The byte total of the log's entries, read back.
uint64_t LogBytes(Engine& db) {
  std::vector<RawLogEntry> entries;
  EXPECT_TRUE(db.ReadRawLog(db.Stats().log_first, 1 << 20, size_t{1} << 40, &entries).ok());
  uint64_t n = 0;
  for (const RawLogEntry& e : entries) n += e.data.size();
  return n;
}

TEST(LogHoldTest, HoldNeverKeepsMoreThanTheByteBoundPlusTheTrimmingLag) {
  TempDir dir;
  Options o = NoSync();
  o.log_retention = 10;
  o.replica_log_keep_bytes = 32 << 10;
  auto db = OpenOrDie(dir.path(), o);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  db->HoldLog(2);
  uint64_t largest = 0, max_bytes = 0;
  std::vector<std::string> docs;
  for (int i = 0; i < 400; i++) {
    // Entries of varied size, some large.
    docs.push_back(Doc(R"({"pad": ")" + std::string(100 + (i * 37) % 1500, 'x') + R"("})"));
    std::string key = "k" + std::to_string(i);
    TxnResult r = db->Execute(Txn({PutOp{"c", key, docs.back()}}));
    ASSERT_TRUE(r.status.ok());
    uint64_t bytes = db->Stats().log_bytes;
    max_bytes = std::max(max_bytes, bytes);
    largest = std::max<uint64_t>(largest, docs.back().size() + 64);
  }
  std::vector<LogEntry> log;
  EXPECT_EQ(db->ReadLog(2, 1, 1 << 20, &log).code(), Code::kLogTruncated);
  // The bound is checked before each commit's own entry is added: one entry of lag.
  EXPECT_LE(max_bytes, o.replica_log_keep_bytes + largest);
  EXPECT_GT(max_bytes, o.replica_log_keep_bytes / 2) << "the hold did keep entries";
  EXPECT_EQ(db->Stats().log_bytes, LogBytes(*db));
  const uint64_t bytes = db->Stats().log_bytes;
  db.reset();
  db = OpenOrDie(dir.path(), o);
  EXPECT_EQ(db->Stats().log_bytes, bytes) << "recounted at open";
}

TEST(LogHoldTest, ReplicaTrimsItsOwnLogByItsOwnRetention) {
  TempDir dir;
  auto primary = OpenOrDie(dir.Sub("p"), NoSync());
  Workload w(primary.get());
  w.Run(0, 10);
  uint64_t start;
  Options o = NoSync();
  o.log_retention = 20;
  auto replica = Bootstrap(*primary, dir.Sub("r"), &start, o);
  w.Run(10, 400);
  Follow(*primary, replica, dir.Sub("r"), {1, 5}, 0, o);
  const uint64_t kept = replica->LastCommit() - replica->Stats().log_first + 1;
  EXPECT_GE(kept, 20u);
  EXPECT_LE(kept, 30u);
  EXPECT_EQ(replica->Stats().log_bytes, LogBytes(*replica));
  EXPECT_EQ(primary->Stats().log_first, 1u);
}

// --- The raw log.

TEST(RawLogTest, DamagedEntryIsNamedAndNotSent) {
  TempDir dir;
  {
    auto db = OpenOrDie(dir.path());
    ASSERT_TRUE(db->CreateCollection("c").ok());
    std::string d = Doc(R"({"v": 1})");
    for (int i = 0; i < 3; i++) ASSERT_TRUE(db->Execute(Txn({PutOp{"c", "k", d}})).status.ok());
  }
  {
    RawLmdb raw(dir.path());
    std::string entry = *raw.Get("log", U64BE(3));
    entry[entry.size() / 2] ^= 4;
    raw.Put("log", U64BE(3), entry);
  }
  auto db = OpenOrDie(dir.path());
  std::vector<RawLogEntry> out;
  Status s = db->ReadRawLog(1, 10, 1 << 20, &out);
  EXPECT_EQ(s.code(), Code::kCorrupted);
  EXPECT_NE(s.message().find("commit 3"), std::string::npos) << s.ToString();
  ASSERT_EQ(out.size(), 2u) << "the entries before it";
  out.clear();
  ASSERT_TRUE(db->ReadRawLog(4, 10, 1 << 20, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].commit, 4u);
}

}  // namespace
}  // namespace cairn
