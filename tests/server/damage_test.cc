// The real cairnd on damaged data files: a truncated file is refused at start with a clear
// message; `cairnd --verify` (offline) and VerifyDatabase (online, through libcairn) run the
// verifier in a child process, so that damage that kills it (a zeroed page: an LMDB
// assertion) becomes a report while cairnd, and the server's other requests, carry on.
#include "damage.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>

#include "cairn/client/client.h"
#include "command.h"
#include "server_process.h"
#include "verifier.h"

namespace cairn {
namespace {

using testing::CommandRun;
using testing::ServerProcess;
using testing::TempDir;

CommandRun Verify(const std::string& dir, const TempDir& scratch, const std::string& flags = "") {
  return testing::RunCommand(std::string(CAIRND_PATH) + " --verify --data " + dir + " " + flags,
                             scratch);
}

std::shared_ptr<client::Client> Connect(const ServerProcess& server) {
  client::ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(server.port());
  return client::Client::Connect(o);
}

// The processes whose parent is `pid` (from /proc/*/stat), zombies included.
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    pid_t p = atoi(e->d_name);
    if (p <= 0) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state;
    int ppid;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == pid) {
      out.push_back(p);
    }
  }
  closedir(d);
  return out;
}

TEST(CairndDamageTest, TruncatedFileIsRefusedAtStartWithAClearMessage) {
  TempDir dir;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data);
  testing::TruncateToHalf(data + "/data.mdb");
  ServerProcess server(data);
  EXPECT_FALSE(server.ready());
  int status = server.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << "died of signal " << WTERMSIG(status) << "\n"
                                 << server.output();
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::string out = server.output();
  EXPECT_NE(out.find(data + "/data.mdb is "), std::string::npos) << out;
  EXPECT_NE(out.find("truncated"), std::string::npos) << out;
  EXPECT_NE(out.find("restore from a backup"), std::string::npos) << out;
}

TEST(CairndVerifyTest, HealthyDatabaseVerifiesCleanOfflineAndOnlineAlike) {
  TempDir dir, scratch;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data, 300);
  CommandRun r = Verify(data, scratch);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("checked 300 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("consistent"), std::string::npos) << r.out;

  ServerProcess server(data);
  ASSERT_TRUE(server.ready()) << server.output();
  // While the server has the folder open: the child opens it read-only beside it.
  r = Verify(data, scratch, "--json");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(R"({"ok":true,"finished":true,"records":300,)"), std::string::npos) << r.out;
  auto db = Connect(server);
  db->Put("c", "one-more", client::Document::FromJson(R"({"n": 1})"));
  client::VerifyResult v = db->Verify();
  EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems[0]);
  EXPECT_EQ(v.records, 301u) << "the check sees the acknowledged write";
  EXPECT_TRUE(ChildrenOf(server.pid()).empty()) << "the verifier was reaped";
}

TEST(CairndVerifyTest, TruncatedFileIsReportedOffline) {
  TempDir dir, scratch;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data);
  testing::TruncateToHalf(data + "/data.mdb");
  CommandRun r = Verify(data, scratch);
  RecordProperty("report", r.out);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("cannot open the database"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truncated; restore from a backup"), std::string::npos) << r.out;
}

TEST(CairndVerifyTest, ZeroedPageIsReportedAsStructuralDamageOffline) {
  TempDir dir, scratch;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data);
  testing::ZeroSecondRecordsLeaf(data + "/data.mdb");
  CommandRun r = Verify(data, scratch);
  RecordProperty("report", r.out);
  ASSERT_NE(r.code, -1) << "cairnd --verify itself died\n" << r.err;
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("structurally damaged: the verifier "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("while checking the records; restore from a backup"), std::string::npos)
      << r.out;
  r = Verify(data, scratch, "--json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(R"({"ok":false,"finished":false,)"), std::string::npos) << r.out;
}

TEST(CairndVerifyTest, FlippedBranchPointerIsReportedOffline) {
  TempDir dir, scratch;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data);
  testing::FlipBranchPointer(data + "/data.mdb");
  CommandRun r = Verify(data, scratch);
  RecordProperty("report", r.out);
  ASSERT_NE(r.code, -1) << "cairnd --verify itself died\n" << r.err;
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("structurally damaged: reading the file failed (MDB_PAGE_NOTFOUND"),
            std::string::npos)
      << r.out;
}

TEST(CairndVerifyTest, TwoBranchPointersToOneLeafAreReportedOffline) {
  TempDir dir, scratch;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data);
  testing::PointTwoBranchesAtOneLeaf(data + "/data.mdb");
  CommandRun r = Verify(data, scratch);
  RecordProperty("report", r.out);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("structurally damaged: keys out of order after '\\x00\\x00\\x00\\x01rec-"),
            std::string::npos)
      << r.out;
}

TEST(CairndVerifyTest, OnlineCheckOfAZeroedPageReportsAndTheServerKeepsServing) {
  TempDir dir;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data);
  ServerProcess server(data);
  ASSERT_TRUE(server.ready()) << server.output();
  auto db = Connect(server);
  ASSERT_TRUE(db->Get("c", "rec-00000"));
  // An idle server reads no records page: the first to read the zeroed one is the check.
  std::string key = testing::ZeroSecondRecordsLeaf(data + "/data.mdb");
  ASSERT_FALSE(key.empty());

  client::VerifyResult v = db->Verify();
  ASSERT_FALSE(v.ok());
  RecordProperty("problem", v.problems[0]);
  EXPECT_NE(v.problems[0].find("structurally damaged: the verifier "), std::string::npos)
      << v.problems[0];
  EXPECT_NE(v.problems[0].find("restore from a backup"), std::string::npos) << v.problems[0];
  EXPECT_TRUE(server.alive()) << server.output();
  EXPECT_TRUE(ChildrenOf(server.pid()).empty()) << "the verifier was reaped";
  db->Ping();
  ASSERT_TRUE(db->Get("c", "rec-00000")) << "records on sound pages are still served";
  // A record on the zeroed page is an error, never data (nor "not found").
  EXPECT_THROW(db->Get("c", key), client::Error) << key;
  db->Ping();
  EXPECT_TRUE(server.alive()) << server.output();
}

TEST(CairndVerifyTest, CheckPastItsDeadlineIsStoppedAndSaysSo) {
  TempDir dir, scratch;
  std::string data = dir.Sub("db");
  testing::MakeDatabase(data, 100);
  // 1 ms: the child cannot even start and open the database in that time.
  CommandRun r = Verify(data, scratch, "--verify-timeout 0.001");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("not checked to the end: the verifier was still at work"), std::string::npos)
      << r.out;

  ServerProcess server(data, {"--verify-timeout", "0.001"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto db = Connect(server);
  client::VerifyResult v = db->Verify();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.problems[0].find("not checked to the end"), std::string::npos) << v.problems[0];
  EXPECT_TRUE(ChildrenOf(server.pid()).empty()) << "the killed verifier was reaped";
  db->Ping();
}

// The report on the child's stdout: versioned, escaped, complete only with its end line.
TEST(VerifyReportFormatTest, RoundTripsAndRefusesWhatIsCutShortOrUnknown) {
  std::string text;
  server::AppendLine(&text, "cairn-verify", "1");
  server::AppendLine(&text, "part", "records");
  server::AppendLine(&text, "problem", "two\nlines and a \\ backslash");
  server::AppendLine(&text, "later-tag", "skipped by version 1");
  server::AppendLine(&text, "counts", "3 4 5");
  std::string whole = text;
  server::AppendLine(&whole, "end", "");

  VerifyReport r;
  std::string part;
  ASSERT_TRUE(server::ParseReport(whole, &r, &part));
  EXPECT_EQ(part, "records");
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "two\nlines and a \\ backslash");
  EXPECT_EQ(r.records + r.index_entries * 10 + r.log_entries * 100, 543u);

  VerifyReport cut;
  EXPECT_FALSE(server::ParseReport(text, &cut, &part)) << "no end line";
  EXPECT_FALSE(server::ParseReport(whole.substr(0, whole.size() - 1), &cut, &part))
      << "an end line without its newline";
  std::string v2 = whole;
  v2.replace(0, 14, "cairn-verify 2");
  EXPECT_FALSE(server::ParseReport(v2, &cut, &part)) << "another version";
}

}  // namespace
}  // namespace cairn
