// A database written by another format version, or an LMDB environment that is not
// cairn's, is refused at open and left as it was.
#include <gtest/gtest.h>
#include <lmdb.h>

#include <xxhash.h>

#include <filesystem>

#include "raw_lmdb.h"
#include "test_util.h"

namespace cairn {
namespace {

using testing::TempDir;

// Writes `value` under `key` in the named database `db` of the environment in `dir`,
// the way another program would.
void RawPut(const std::string& dir, const char* db, std::string_view key, std::string_view value) {
  MDB_env* env;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 16);
  mdb_env_set_mapsize(env, uint64_t{1} << 30);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0644), 0);
  MDB_txn* txn;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
  MDB_val k{key.size(), const_cast<char*>(key.data())}, v{value.size(), const_cast<char*>(value.data())};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

TEST(FormatTest, OtherFormatVersionIsRefusedAndKept) {
  TempDir dir;
  { ASSERT_TRUE(testing::OpenOrDie(dir.path())->CreateCollection("c").ok()); }
  RawPut(dir.path(), "meta", "#format", std::string("\0\0\0\0\0\0\0\x63", 8));  // format 99
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  EXPECT_NE(r.status().message().find("format 99"), std::string::npos) << r.status().message();
  // Put the version back: the data is still there.
  RawPut(dir.path(), "meta", "#format", std::string("\0\0\0\0\0\0\0\x03", 8));
  auto db = testing::OpenOrDie(dir.path());
  ASSERT_TRUE(db);
  EXPECT_TRUE(db->DescribeCollection("c").ok());
}

// Whether the environment in `dir` has a named database `db`, and the u64 BE at `key` in
// "meta" (0 if absent).
bool RawHas(const std::string& dir, const char* db) {
  MDB_env* env;
  mdb_env_create(&env);
  mdb_env_set_maxdbs(env, 16);
  mdb_env_set_mapsize(env, uint64_t{1} << 30);
  bool has = false;
  if (mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0644) == 0) {
    MDB_txn* txn;
    if (mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0) {
      MDB_dbi dbi;
      has = mdb_dbi_open(txn, db, 0, &dbi) == 0;
      mdb_txn_abort(txn);
    }
  }
  mdb_env_close(env);
  return has;
}

TEST(FormatTest, FormatOneIsUpgradedInPlace) {
  // Format 1 kept idempotency keys in databases "idem" and "idem_order"; format 2 keeps
  // them in the change log. Records, indexes and log entries of format 1 stay as they are.
  TempDir dir;
  {
    auto db = testing::OpenOrDie(dir.path());
    ASSERT_TRUE(db->CreateCollection("c").ok());
    ASSERT_TRUE(db->CreateIndex("c", {"by_n", {"n"}}).ok());
    ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"c", "k", testing::Doc(R"({"n": 7})")}})).status.ok());
  }
  RawPut(dir.path(), "meta", "#format", std::string("\0\0\0\0\0\0\0\x01", 8));
  RawPut(dir.path(), "idem", "some-key", "old result");
  // A log entry as format 1 wrote it: [1][changes][XXH3 of commit BE ++ the bytes before].
  uint64_t next = 4;
  {
    std::string body("\x01\x01\x01" "c" "\x04" "gone", 9);  // format 1, delete c/gone
    std::string hashed(8, '\0');
    for (int i = 0; i < 8; i++) hashed[size_t(i)] = char(next >> (56 - 8 * i));
    hashed += body;
    uint64_t sum = XXH3_64bits(hashed.data(), hashed.size());
    std::string entry = body + std::string(reinterpret_cast<const char*>(&sum), 8);  // LE
    RawPut(dir.path(), "log", hashed.substr(0, 8), entry);
  }
  RawPut(dir.path(), "idem_order", "old order", "");
  ASSERT_TRUE(RawHas(dir.path(), "idem"));
  {
    // Read-only: read as it is, not upgraded.
    Options ro;
    ro.read_only = true;
    auto db = testing::OpenOrDie(dir.path(), ro);
    auto read = db->BeginRead();
    ASSERT_TRUE(read.ok());
    RecordView r;
    bool found = false;
    ASSERT_TRUE(read->Get("c", "k", &r, &found).ok());
    EXPECT_TRUE(found);
  }
  EXPECT_TRUE(RawHas(dir.path(), "idem"));
  auto db = testing::OpenOrDie(dir.path());
  EXPECT_FALSE(RawHas(dir.path(), "idem"));
  EXPECT_FALSE(RawHas(dir.path(), "idem_order"));
  std::vector<LogEntry> log;
  Status read = db->ReadLog(1, 100, 1 << 20, &log);
  ASSERT_TRUE(read.ok()) << read.ToString();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[3].commit, next);
  ASSERT_EQ(log[3].changes.size(), 1u) << "a format 1 entry is still read";
  EXPECT_EQ(log[3].changes[0].kind, Change::kDelete);
  EXPECT_EQ(log[3].changes[0].key, "gone");
  EXPECT_EQ(log[3].time_ms, 0u);
  std::string doc = testing::Doc(R"({"n": 8})");  // the transaction holds views of it
  Transaction t = testing::Txn({PutOp{"c", "k2", doc}});
  t.idempotency_key = "after-upgrade";
  ASSERT_TRUE(db->Execute(t).status.ok());
  EXPECT_TRUE(db->Execute(t).replayed);
  EXPECT_TRUE(db->Verify().ok());
  db.reset();
  db = testing::OpenOrDie(dir.path());  // format 2 now: opens as it is
  EXPECT_TRUE(db->Execute(t).replayed);
}

// A database of format 2 with 40 records of collection c (k00..k39, indexed by n): built
// by the engine, then every record rewritten in format 2's layout and the format set back.
void MakeFormatTwo(const std::string& dir) {
  {
    auto db = testing::OpenOrDie(dir);
    ASSERT_TRUE(db->CreateCollection("c").ok());
    ASSERT_TRUE(db->CreateIndex("c", {"by_n", {"n"}}).ok());
    for (int i = 0; i < 40; i++) {
      char key[16];
      snprintf(key, sizeof key, "k%02d", i);
      std::string doc = testing::Doc("{\"n\": " + std::to_string(i) + "}");
      ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"c", key, doc}})).status.ok());
    }
  }
  testing::RawLmdb raw(dir);
  for (const auto& [k, v] : raw.All("records")) raw.Put("records", k, testing::WithoutChecksum(v));
  raw.Put("meta", "#format", std::string("\0\0\0\0\0\0\0\x02", 8));
}

// Every record of c, read through the engine, is k00..k39 with its own n; and the index
// finds each.
void ExpectAllRecords(Engine* db) {
  auto read = db->BeginRead();
  ASSERT_TRUE(read.ok());
  for (int i = 0; i < 40; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%02d", i);
    RecordView rv;
    bool found = false;
    Status s = read->Get("c", key, &rv, &found);
    ASSERT_TRUE(s.ok() && found) << key << ": " << s.ToString();
    EXPECT_EQ(rv.value, testing::Doc("{\"n\": " + std::to_string(i) + "}")) << key;
  }
  QuerySpec q;
  q.collection = "c";
  q.index = "by_n";
  size_t n = 0;
  ASSERT_TRUE(read->Query(q, [&](const RecordView&) { n++; }, nullptr).ok());
  EXPECT_EQ(n, 40u);
}

// How many stored records carry the checksum marker, and the stored format.
std::pair<size_t, std::string> RawState(const std::string& dir) {
  testing::RawLmdb raw(dir);
  size_t summed = 0;
  for (const auto& [k, v] : raw.All("records")) summed += (uint8_t(v[8]) & 0x80) != 0;
  return {summed, raw.Get("meta", "#format").value_or("")};
}

TEST(FormatTest, FormatTwoGetsChecksumsInPlaceInTheBackground) {
  TempDir dir;
  MakeFormatTwo(dir.path());
  const std::string two("\0\0\0\0\0\0\0\x02", 8), three("\0\0\0\0\0\0\0\x03", 8);
  {
    // Read-only: read as it is, not upgraded.
    Options ro;
    ro.read_only = true;
    auto db = testing::OpenOrDie(dir.path(), ro);
    ExpectAllRecords(db.get());
    EXPECT_TRUE(db->Verify().ok()) << db->Verify().problems[0];
  }
  EXPECT_EQ(RawState(dir.path()), std::make_pair(size_t{0}, two));
  {
    Options small;
    small.background_batch = 7;  // six batches
    auto db = testing::OpenOrDie(dir.path(), small);
    ExpectAllRecords(db.get());  // before, during or after the upgrade
    db->WaitForBackgroundWork();
    EXPECT_FALSE(db->Stats().checksum_upgrade_pending);
    ExpectAllRecords(db.get());
    VerifyReport report = db->Verify();
    EXPECT_TRUE(report.ok()) << report.problems[0];
    EXPECT_EQ(report.records, 40u);
  }
  EXPECT_EQ(RawState(dir.path()), std::make_pair(size_t{40}, three));
  testing::RawLmdb raw(dir.path());
  EXPECT_FALSE(raw.Get("meta", "#checksum_upgrade")) << "the upgrade's cursor is gone";
}

TEST(FormatTest, UpgradeInterruptedByACrashIsReadableAndResumes) {
  // The state a crash between two upgrade batches leaves (each batch commits its records
  // with the cursor): format 3, records up to k14 rewritten, the cursor at k14.
  TempDir dir;
  MakeFormatTwo(dir.path());
  {
    testing::RawLmdb raw(dir.path());
    std::string cursor = raw.RecordKey("k14");
    raw.Put("meta", "#format", std::string("\0\0\0\0\0\0\0\x03", 8));
    raw.Put("meta", "#checksum_upgrade", cursor);
  }
  {
    // The records up to the cursor as the upgrade wrote them: from an upgraded copy (the
    // same keys, as the same calls built it).
    TempDir done;
    MakeFormatTwo(done.path());
    { testing::OpenOrDie(done.path())->WaitForBackgroundWork(); }
    std::map<std::string, std::string> summed = testing::RawLmdb(done.path()).All("records");
    testing::RawLmdb raw(dir.path());
    std::string cursor = *raw.Get("meta", "#checksum_upgrade");
    for (const auto& [k, v] : summed) {
      if (k <= cursor) raw.Put("records", k, v);
    }
  }
  EXPECT_EQ(RawState(dir.path()).first, 15u);
  {
    Options ro;
    ro.read_only = true;
    auto db = testing::OpenOrDie(dir.path(), ro);
    ExpectAllRecords(db.get());
    EXPECT_TRUE(db->Stats().checksum_upgrade_pending);
    VerifyReport report = db->Verify();
    EXPECT_TRUE(report.ok()) << report.problems[0];
  }
  {
    auto db = testing::OpenOrDie(dir.path());
    db->WaitForBackgroundWork();
    ExpectAllRecords(db.get());
    EXPECT_FALSE(db->Stats().checksum_upgrade_pending);
    EXPECT_TRUE(db->Verify().ok());
  }
  EXPECT_EQ(RawState(dir.path()).first, 40u);
}

TEST(FormatTest, AnotherProgramsLmdbEnvironmentIsRefused) {
  TempDir dir;
  RawPut(dir.path(), "theirs", "key", "value");
  auto size = std::filesystem::file_size(dir.Sub("data.mdb"));
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  EXPECT_NE(r.status().message().find("not cairn's"), std::string::npos) << r.status().message();
  EXPECT_EQ(std::filesystem::file_size(dir.Sub("data.mdb")), size);
}

}  // namespace
}  // namespace cairn
