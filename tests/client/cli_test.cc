// The cairn command line, driven as a user would: arguments, stdin, stdout, stderr
// and exit codes (0 ok, 1 not found / condition failed, 2 usage, 3 server/connection).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>

#include "command.h"
#include "server_process.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn {
namespace {

using testing::ServerProcess;
using testing::TempDir;

using CliRun = testing::CommandRun;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->ready());
    addr_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  // Runs `cairn ARGS` with CAIRN_ADDR set and `input` on stdin.
  CliRun Cairn(const std::string& args, const std::string& input = "",
               const std::string& addr = "") {
    return testing::RunCommand(
        "CAIRN_ADDR=" + (addr.empty() ? addr_ : addr) + " " CAIRN_CLI_PATH " " + args, dir_,
        input);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string addr_;
};

TEST_F(CliTest, PingAndStats) {
  CliRun r = Cairn("ping");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"ok\":true"), std::string::npos) << r.out;
  r = Cairn("stats");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"last_commit\":"), std::string::npos) << r.out;
}

TEST_F(CliTest, RecordsLifecycle) {
  EXPECT_EQ(Cairn("create-collection users").code, 0);
  CliRun r = Cairn("put users ada '{\"email\": \"ada@x\", \"age\": 36}'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"key\":\"ada\",\"version\":2}\n");
  r = Cairn("get users ada");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "{\"key\":\"ada\",\"version\":2,\"document\":{\"age\":36,\"email\":\"ada@x\"}}\n");
  r = Cairn("get users nobody");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;

  EXPECT_EQ(Cairn("insert users ada '{}'").code, 3) << "already exists is a server error";
  EXPECT_EQ(Cairn("replace users zed '{}'").code, 1) << "replace of an absent record";
  EXPECT_EQ(Cairn("put users ada '{\"age\": 37}' --if-version 999").code, 1);
  EXPECT_EQ(Cairn("put users ada '{\"age\": 37}' --if-version 2").code, 0);
  EXPECT_EQ(Cairn("delete users ada --if-version 2").code, 1);
  EXPECT_EQ(Cairn("delete users ada").code, 0);
  EXPECT_EQ(Cairn("delete users ada").code, 1);
}

TEST_F(CliTest, ScanQueryCountAndIndexes) {
  Cairn("create-collection c");
  EXPECT_EQ(Cairn("create-index c by_age age").code, 0);
  EXPECT_EQ(Cairn("create-index c by_email email --unique").code, 0);
  for (int i = 0; i < 5; i++) {
    std::string k = "k" + std::to_string(i);
    Cairn("put c " + k + " '{\"age\": " + std::to_string(20 + i % 2) + ", \"email\": \"" + k +
          "@x\"}'");
  }
  CliRun r = Cairn("scan c --from k1 --to k3");
  EXPECT_EQ(r.out,
            "{\"key\":\"k1\",\"version\":5,\"document\":{\"age\":21,\"email\":\"k1@x\"}}\n"
            "{\"key\":\"k2\",\"version\":6,\"document\":{\"age\":20,\"email\":\"k2@x\"}}\n"
            "{\"key\":\"k3\",\"version\":7,\"document\":{\"age\":21,\"email\":\"k3@x\"}}\n");
  r = Cairn("scan c --reverse --limit 2");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  EXPECT_EQ(r.out.substr(0, 13), "{\"key\":\"k4\",\"");
  r = Cairn("query c by_age --eq 21");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  r = Cairn("query c by_email --eq '\"k2@x\"'");
  EXPECT_NE(r.out.find("\"key\":\"k2\""), std::string::npos) << r.out;
  EXPECT_EQ(Cairn("count c").out, "5\n");
  EXPECT_EQ(Cairn("count c --index by_age --from 20 --to 20").out, "3\n");
  r = Cairn("indexes c");
  EXPECT_NE(r.out.find("{\"name\":\"by_email\",\"fields\":[\"email\"],\"unique\":true,\"state\":\"ready\"}"),
            std::string::npos)
      << r.out;
  r = Cairn("put c dup '{\"email\": \"k1@x\"}'");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("unique"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("drop-index c by_age").code, 0);
  EXPECT_EQ(Cairn("query c by_age --eq 21").code, 1) << "not found";
  r = Cairn("collections");
  EXPECT_NE(r.out.find("\"name\":\"c\""), std::string::npos);
  EXPECT_EQ(Cairn("drop-collection c").code, 0);
  EXPECT_EQ(Cairn("scan c").code, 1);
}

TEST_F(CliTest, TransactionFromStdin) {
  Cairn("create-collection c");
  CliRun r = Cairn("txn",
                R"({"conditions": [{"kind": "absent", "collection": "c", "key": "a"}],
                    "ops": [{"op": "put", "collection": "c", "key": "a", "document": {"n": 1}},
                            {"op": "get", "collection": "c", "key": "a"}]})");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"commit\":2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"document\":{\"n\":1}"), std::string::npos) << r.out;
  r = Cairn("txn", R"({"conditions": [{"kind": "absent", "collection": "c", "key": "a"}],
                       "ops": [{"op": "delete", "collection": "c", "key": "a"}]})");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("condition"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("txn", R"({"ops": [{"op": "frob", "collection": "c"}]})").code, 2);
  EXPECT_EQ(Cairn("txn", "not json").code, 2);
}

TEST_F(CliTest, LoadJsonLines) {
  Cairn("create-collection people");
  std::string file = dir_.Sub("people.jsonl");
  {
    std::ofstream f(file);
    for (int i = 0; i < 1234; i++) f << "{\"id\": \"p" << i << "\", \"n\": " << i << "}\n";
  }
  CliRun r = Cairn("load people " + file + " --batch 100");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("loaded 1234 records"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("count people").out, "1234\n");
  EXPECT_EQ(Cairn("get people p1233").code, 0);
  {
    std::ofstream f(file);
    f << "{\"id\": \"x\"}\n{broken\n";
  }
  r = Cairn("load people " + file);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(":2:"), std::string::npos) << "names the bad line: " << r.err;
}

TEST_F(CliTest, BadInputAndUsageErrors) {
  Cairn("create-collection c");
  CliRun r = Cairn("put c k '{bad json'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("invalid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("put c k '[1, 2]'").code, 2) << "a document must be an object";
  EXPECT_EQ(Cairn("get c").code, 2) << "missing argument";
  EXPECT_EQ(Cairn("frobnicate").code, 2);
  EXPECT_EQ(Cairn("").code, 2);
  EXPECT_EQ(Cairn("create-collection 'bad name'").code, 2);
  EXPECT_EQ(Cairn("--help").code, 0);
}

TEST_F(CliTest, MissingServerIsAConnectionError) {
  CliRun r = Cairn("ping", "", "127.0.0.1:1");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  // Bad arguments are reported as such even without a server.
  EXPECT_EQ(Cairn("put c k '{bad'", "", "127.0.0.1:1").code, 2);
}

}  // namespace
}  // namespace cairn
