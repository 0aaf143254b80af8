// A database written by another format version, or an LMDB environment that is not
// cairn's, is refused at open and left as it was.
#include <gtest/gtest.h>
#include <lmdb.h>

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
  RawPut(dir.path(), "meta", "#format", std::string("\0\0\0\0\0\0\0\x01", 8));
  auto db = testing::OpenOrDie(dir.path());
  ASSERT_TRUE(db);
  EXPECT_TRUE(db->DescribeCollection("c").ok());
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
