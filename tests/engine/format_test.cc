// A database written by another format version, or an LMDB environment that is not
// cairn's, is refused at open and left as it was.
#include <gtest/gtest.h>
#include <lmdb.h>

#include <xxhash.h>

#include <filesystem>

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
  RawPut(dir.path(), "meta", "#format", std::string("\0\0\0\0\0\0\0\x02", 8));
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
