// `cairn verify-backup FILE` and `cairn restore FILE --data DIR`, driven as a user would:
// exit codes (0 ok, 2 usage or a target that is not new or empty, 3 a file that cannot be
// read, 6 a damaged backup or not a backup), stdout's JSON, stderr's message. No server.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "backup_files.h"
#include "command.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn {
namespace {

using testing::BackupLayout;
using testing::CommandRun;
using testing::Entries;
using testing::Exists;
using testing::TempDir;

class BackupCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = testing::RandomBytes(3500, 11);
    layout_.size = data_.size();
    testing::MakeBackup(good_, data_);
    bytes_ = testing::ReadBytes(good_);
  }

  CommandRun Cairn(const std::string& args, const std::string& input = "") {
    return testing::RunCommand(CAIRN_CLI_PATH " " + args, scratch_, input);
  }

  std::string Bad(const std::string& name, const std::string& bytes) {
    std::string path = dir_.Sub(name);
    testing::WriteBytes(path, bytes);
    return path;
  }

  TempDir dir_, scratch_;  // the command's stdin, stdout and stderr go to scratch_
  std::string good_ = dir_.Sub("good.cairnbak");
  std::string data_, bytes_;
  BackupLayout layout_;
};

TEST_F(BackupCliTest, VerifyBackupPrintsWhatTheBackupHolds) {
  CommandRun r = Cairn("verify-backup " + good_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ok\":true,\"file\":\"" + good_ + "\",\"format\":1,\"snapshot_format\":1,"
                   "\"commit\":42,\"size\":3500,\"chunks\":4,\"epoch\":2,\"history\":["
                   "{\"epoch\":1,\"id\":7,\"first_commit\":1},{\"epoch\":2,\"id\":9,"
                   "\"first_commit\":30}]}\n");
  EXPECT_EQ(r.err, "");
  CommandRun piped = Cairn("verify-backup -", bytes_);
  EXPECT_EQ(piped.code, 0) << piped.err;
  EXPECT_NE(piped.out.find("\"file\":\"standard input\""), std::string::npos) << piped.out;
}

TEST_F(BackupCliTest, VerifyBackupRefusesDamageWithExit6AndSaysWhere) {
  std::string flipped = bytes_;
  flipped[layout_.data_at(2) + 5] ^= 1;
  std::string path = Bad("flipped.cairnbak", flipped);
  CommandRun r = Cairn("verify-backup " + path);
  EXPECT_EQ(r.code, 6);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "cairn: " + path + ": chunk 2 at offset 2000: checksum mismatch\n");

  std::string truncated = Bad("truncated.cairnbak", bytes_.substr(0, layout_.trailer() + 3));
  CommandRun t = Cairn("verify-backup " + truncated);
  EXPECT_EQ(t.code, 6);
  EXPECT_EQ(t.err, "cairn: " + truncated + ": truncated after 3.601 KiB (3687 bytes), in the "
                   "trailer: the backup has no trailer\n");

  std::string newer = bytes_;
  newer[8] = 3;
  CommandRun n = Cairn("verify-backup " + Bad("newer.cairnbak", newer));
  EXPECT_EQ(n.code, 6);
  EXPECT_NE(n.err.find("backup format 3 is newer than this program"), std::string::npos) << n.err;

  CommandRun random = Cairn("verify-backup " + Bad("random", testing::RandomBytes(100, 1)));
  EXPECT_EQ(random.code, 6);
  EXPECT_NE(random.err.find(": not a cairn backup (it starts with \""), std::string::npos);
  CommandRun empty = Cairn("verify-backup -");
  EXPECT_EQ(empty.code, 6);
  EXPECT_EQ(empty.err, "cairn: standard input: an empty file, not a cairn backup\n");
}

TEST_F(BackupCliTest, AFileThatCannotBeReadIsExit3) {
  CommandRun r = Cairn("verify-backup " + dir_.Sub("nope"));
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "cairn: cannot open " + dir_.Sub("nope") + ": No such file or directory\n");
  CommandRun restore = Cairn("restore " + dir_.Sub("nope") + " --data " + dir_.Sub("db"));
  EXPECT_EQ(restore.code, 3);
  EXPECT_FALSE(Exists(dir_.Sub("db")));
}

TEST_F(BackupCliTest, RestoreIntoANewFolder) {
  std::string target = dir_.Sub("restored/db");
  CommandRun r = Cairn("restore " + good_ + " --data " + target);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"restored\":true,\"file\":\"" + good_ + "\",\"data\":\"" + target +
                            "\",\"format\":1,\"snapshot_format\":1,\"commit\":42,\"size\":3500,",
                        0),
            0u)
      << r.out;
  EXPECT_NE(r.out.find(",\"mb_per_s\":"), std::string::npos) << r.out;
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
  EXPECT_EQ(testing::ReadBytes(target + "/data.mdb"), data_);
  // From standard input, into an empty folder.
  std::string empty = dir_.Sub("empty");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  CommandRun piped = Cairn("restore - --data " + empty, bytes_);
  ASSERT_EQ(piped.code, 0) << piped.err;
  EXPECT_EQ(testing::ReadBytes(empty + "/data.mdb"), data_);
}

TEST_F(BackupCliTest, RestoreRefusesANonEmptyFolderWithExit2) {
  std::string target = dir_.Sub("db");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  testing::WriteBytes(target + "/data.mdb", "live data");
  CommandRun r = Cairn("restore " + good_ + " --data " + target);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "cairn: " + target + " is not empty (it holds data.mdb); restore into a new "
                   "folder or an empty one (nothing was changed)\n");
  EXPECT_EQ(testing::ReadBytes(target + "/data.mdb"), "live data");
  EXPECT_EQ(Entries(target), (std::set<std::string>{"data.mdb"}));
}

TEST_F(BackupCliTest, RestoreRefusesABadBackupWithExit6AndLeavesNothing) {
  std::string flipped = bytes_;
  flipped[layout_.trailer() + 20] ^= 1;
  std::string path = Bad("flipped.cairnbak", flipped);
  std::string target = dir_.Sub("new/db");
  CommandRun r = Cairn("restore " + path + " --data " + target);
  EXPECT_EQ(r.code, 6);
  EXPECT_EQ(r.err, "cairn: " + path + ": trailer: checksum mismatch (the trailer is damaged, or "
                   "belongs to another backup's header)\n");
  EXPECT_FALSE(Exists(dir_.Sub("new")));
  std::string empty = dir_.Sub("empty");
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  CommandRun into_empty = Cairn("restore - --data " + empty, bytes_.substr(0, 2000));
  EXPECT_EQ(into_empty.code, 6);
  EXPECT_TRUE(Entries(empty).empty());
}

TEST_F(BackupCliTest, RestoreNeedsDataAndSaysItDoesNotCheckTheDatabase) {
  CommandRun r = Cairn("restore " + good_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--data is required"), std::string::npos) << r.err;
  CommandRun help = Cairn("restore --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("does not open the database to check its last commit"), std::string::npos)
      << help.out;
  // The commands are known to the misspelling check.
  CommandRun typo = Cairn("verify-bakup " + good_);
  EXPECT_EQ(typo.code, 2);
  EXPECT_EQ(typo.err, "cairn: unknown command 'verify-bakup'; did you mean 'verify-backup'?\n");
}

}  // namespace
}  // namespace cairn
