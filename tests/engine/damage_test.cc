// Damaged data files at open: a truncated file is refused with a clear error (LMDB would
// die of SIGBUS on the first page past the end), and the rules for who may open a
// database read-only while another has it (cairnd --verify runs beside a server).
#include "damage.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace cairn {
namespace {

using testing::TempDir;

TEST(EngineDamageTest, TruncatedDataFileIsRefusedAtOpenWithBothSizes) {
  TempDir dir;
  testing::MakeDatabase(dir.path());
  std::string data = dir.Sub("data.mdb");
  uint64_t before = std::filesystem::file_size(data);
  testing::TruncateToHalf(data);
  for (bool read_only : {false, true}) {
    Options o;
    o.read_only = read_only;
    auto r = Engine::Open(dir.path(), o);
    ASSERT_FALSE(r.ok()) << "read_only " << read_only;
    EXPECT_EQ(r.status().code(), Code::kCorrupted);
    const std::string m = r.status().message();
    EXPECT_NE(m.find(data), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(before / 2) + " bytes"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(before) + " bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("restore from a backup"), std::string::npos) << m;
  }
  EXPECT_EQ(std::filesystem::file_size(data), before / 2) << "nothing was written";
}

TEST(EngineDamageTest, FileCutShortByOnePageIsRefused) {
  TempDir dir;
  testing::MakeDatabase(dir.path(), 200);
  std::string data = dir.Sub("data.mdb");
  std::filesystem::resize_file(data, std::filesystem::file_size(data) - 4096);
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupted) << r.status().ToString();
}

TEST(EngineDamageTest, EmptyDataFileIsRefusedNotTakenForANewDatabase) {
  TempDir dir;
  testing::MakeDatabase(dir.path(), 10);
  std::filesystem::resize_file(dir.Sub("data.mdb"), 0);
  auto r = Engine::Open(dir.path(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupted);
  EXPECT_NE(r.status().message().find("data.mdb is empty"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(std::filesystem::file_size(dir.Sub("data.mdb")), 0u) << "nothing was written";
}

TEST(EngineDamageTest, ZeroedMetaPageIsRefusedAtOpen) {
  for (uint64_t page : {0, 1}) {
    TempDir dir;
    testing::MakeDatabase(dir.path(), 10);
    { testing::LmdbFile(dir.Sub("data.mdb")).ZeroPage(page); }
    auto r = Engine::Open(dir.path(), {});
    ASSERT_FALSE(r.ok()) << "meta page " << page;
    EXPECT_EQ(r.status().code(), Code::kBadRequest) << r.status().ToString();
    EXPECT_NE(r.status().message().find("not a database this build can read"), std::string::npos)
        << r.status().ToString();
  }
}

TEST(EngineOpenTest, ReadOnlyOpenInTheSameProcessIsRefused) {
  // LMDB forbids two environments on one file in a process: closing one would drop the
  // other's locks.
  TempDir dir;
  auto db = testing::OpenOrDie(dir.path());
  ASSERT_TRUE(db);
  Options ro;
  ro.read_only = true;
  auto second = Engine::Open(dir.path(), ro);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  EXPECT_NE(second.status().message().find("in use by this process"), std::string::npos)
      << second.status().ToString();
  db.reset();
  EXPECT_TRUE(Engine::Open(dir.path(), ro).ok()) << "the registration goes with the engine";
}

TEST(EngineOpenTest, ReadOnlyOpenInAnotherProcessSharesTheDatabaseWithItsWriter) {
  TempDir dir;
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();  // before this process opens anything
  if (pid == 0) {
    close(go[1]);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(10);
    Options ro;
    ro.read_only = true;
    auto db = Engine::Open(dir.path(), ro);
    if (!db.ok()) _exit(11);
    VerifyReport v = (*db)->Verify();
    _exit(v.ok() && v.records == 3 ? 0 : 12);
  }
  close(go[0]);
  auto db = testing::OpenOrDie(dir.path());
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->CreateCollection("c").ok());
  std::string d = testing::Doc("{}");
  for (const char* k : {"a", "b", "c"}) {
    ASSERT_TRUE(db->Execute(testing::Txn({PutOp{"c", k, d}})).status.ok());
  }
  ASSERT_EQ(write(go[1], "x", 1), 1);
  close(go[1]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: no go; 11: open refused; 12: wrong report";
  // And the writer is unharmed.
  EXPECT_TRUE(db->Execute(testing::Txn({PutOp{"c", "d", d}})).status.ok());
  EXPECT_TRUE(db->Verify().ok());
}

TEST(EngineVerifyTest, ProgressNamesEachPartInOrder) {
  TempDir dir;
  testing::MakeDatabase(dir.path(), 10);
  auto db = testing::OpenOrDie(dir.path());
  std::string parts;
  VerifyReport v = db->Verify([&](std::string_view p) { parts += std::string(p) + ";"; });
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(parts, "catalog;records;index entries;change log;");
}

}  // namespace
}  // namespace cairn
