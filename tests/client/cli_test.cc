// The cairn command line, driven as a user would: arguments, stdin, stdout, stderr
// and exit codes (0 ok, 1 absent / condition failed, 2 usage, 3 server/connection,
// 4 constraint violation, 5 unknown collection or index).
#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "cairn/client/client.h"
#include "cairn/protocol/json.h"
#include "command.h"
#include "flatbuffers/flexbuffers.h"
#include "server_process.h"
#include "strict_utf8.h"

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

  // libcairn, connected to the same server.
  std::shared_ptr<client::Client> Lib() {
    client::ClientOptions o;
    o.address = addr_;
    o.connections = 1;
    return client::Client::Connect(o);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string addr_;
};

// `s` as one shell word, whatever bytes it holds (but NUL).
std::string Sh(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The "document" of a record line that get or scan printed.
std::string DocumentOf(const std::string& line) {
  size_t at = line.find(",\"document\":");
  size_t end = line.rfind('}');
  if (at == std::string::npos || end == std::string::npos || end < at + 12) return "";
  return line.substr(at + 12, end - at - 12);
}

// Whether `out` is lines of valid UTF-8 JSON, each parsed by the strict parser.
::testing::AssertionResult JsonLines(const std::string& out) {
  if (!testing::IsStrictUtf8(out)) return ::testing::AssertionFailure() << "not UTF-8: " << out;
  std::stringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::string flex, err;
    if (!JsonToFlex(line, &flex, &err)) return ::testing::AssertionFailure() << err << ": " << line;
  }
  return ::testing::AssertionSuccess();
}

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

  EXPECT_EQ(Cairn("insert users ada '{}'").code, 4) << "already exists is a constraint";
  EXPECT_EQ(Cairn("replace users zed '{}'").code, 4) << "replace of an absent record";
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
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find("unique"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("drop-index c by_age").code, 0);
  EXPECT_EQ(Cairn("query c by_age --eq 21").code, 5) << "unknown index";
  r = Cairn("collections");
  EXPECT_NE(r.out.find("\"name\":\"c\""), std::string::npos);
  EXPECT_EQ(Cairn("drop-collection c").code, 0);
  EXPECT_EQ(Cairn("scan c").code, 5) << "unknown collection";
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
  EXPECT_EQ(r.out, "{\"loaded\":1234,\"failed\":0}\n") << r.err;
  EXPECT_EQ(Cairn("count people").out, "1234\n");
  EXPECT_EQ(Cairn("get people p1233").code, 0);
  {
    std::ofstream f(file);
    f << "{\"id\": \"x\"}\n{broken\n";
  }
  r = Cairn("load people " + file);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(":2:"), std::string::npos) << "names the bad line: " << r.err;
  EXPECT_EQ(r.out, "{\"loaded\":1,\"failed\":1}\n") << "the good line is loaded";
}

TEST_F(CliTest, LoadReportsEveryRejectedLineReadsStdinAndCanBeAtomic) {
  Cairn("create-collection u");
  ASSERT_EQ(Cairn("create-index u by_email email --unique").code, 0);
  std::string lines =
      "{\"id\": \"a\", \"email\": \"a@x\"}\n"
      "{\"id\": \"b\", \"email\": \"a@x\"}\n"   // 2: unique violation
      "{\"email\": \"c@x\"}\n"                    // 3: no key
      "{\"id\": \"d\", \"email\": \"d@x\"}\n"
      "not json\n";                                // 5
  CliRun r = Cairn("load u --atomic", lines);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("nothing loaded"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("count u").out, "0\n") << "--atomic: all or nothing";

  r = Cairn("load u -", lines);
  EXPECT_EQ(r.out, "{\"loaded\":2,\"failed\":3}\n") << r.err;
  EXPECT_NE(r.code, 0);
  for (const char* line : {"<stdin>:2:", "<stdin>:3:", "<stdin>:5:"}) {
    EXPECT_NE(r.err.find(line), std::string::npos) << line << " in " << r.err;
  }
  EXPECT_NE(r.err.find("unique"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("count u").out, "2\n");

  // --atomic over good lines: one transaction, so one commit for every record.
  r = Cairn("load v --atomic", "{\"id\": \"x\"}\n");
  EXPECT_EQ(r.code, 5) << "unknown collection: " << r.err;
  Cairn("create-collection v");
  r = Cairn("load v --atomic", "{\"id\": \"x\"}\n{\"id\": \"y\"}\n{\"id\": 3}\n");
  ASSERT_EQ(r.code, 0) << r.err;
  r = Cairn("scan v");
  std::regex version("\"version\":([0-9]+)");
  std::set<std::string> versions;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), version), end; it != end; ++it) {
    versions.insert((*it)[1]);
  }
  EXPECT_EQ(versions.size(), 1u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);
}

TEST_F(CliTest, AtomicLoadOverTheFrameLimitIsRefusedAndWritesNothing) {
  ServerProcess small(dir_.Sub("small"), {"--max-frame", "65536"});
  ASSERT_TRUE(small.ready());
  std::string addr = "127.0.0.1:" + std::to_string(small.port());
  Cairn("create-collection big", "", addr);
  std::string lines;
  for (int i = 0; i < 2000; i++) {
    lines += "{\"id\": \"k" + std::to_string(i) + "\", \"pad\": \"" + std::string(64, 'x') + "\"}\n";
  }
  CliRun r = Cairn("load big --atomic", lines, addr);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("does not fit in one transaction"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("count big", "", addr).out, "0\n");
  r = Cairn("load big", lines, addr);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Cairn("count big", "", addr).out, "2000\n");
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

TEST_F(CliTest, TxnRefusesUnknownKeysAndWritesNothing) {
  Cairn("create-collection c");
  Cairn("put c a '{}'");
  // A misspelt "conditions" used to commit the operations unconditionally.
  CliRun r = Cairn("txn", R"({"condtions": [{"kind": "absent", "collection": "c", "key": "a"}],
                              "ops": [{"op": "put", "collection": "c", "key": "b", "document": {}}]})");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'condtions'"), std::string::npos) << r.err;
  r = Cairn("txn", R"({"ops": [{"op": "put", "collection": "c", "key": "b", "documnet": {}}]})");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'documnet'"), std::string::npos) << r.err;
  r = Cairn("txn", R"({"conditions": [{"kind": "absent", "colection": "c", "key": "a"}],
                       "ops": [{"op": "put", "collection": "c", "key": "b", "document": {}}]})");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'colection'"), std::string::npos) << r.err;
  r = Cairn("txn", R"({"ops": [{"op": "delete", "collection": "c", "key": "a", "document": {}}]})");
  EXPECT_EQ(r.code, 2) << "a delete takes no document";
  EXPECT_EQ(Cairn("get c b").code, 1) << "nothing was written";
  EXPECT_EQ(Cairn("get c a").code, 0);
}

TEST_F(CliTest, TxnErrorsNameThePartAsTheUserWroteIt) {
  Cairn("create-collection c");
  Cairn("put c a '{}'");
  CliRun r = Cairn("txn", R"({"ops": [{"op": "get", "collection": "c", "key": "a"},
                                      {"op": "insert", "collection": "c", "key": "a", "document": {}}]})");
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find("ops[1] (insert c/a)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("(put)"), std::string::npos) << r.err;
  r = Cairn("txn", R"({"conditions": [{"kind": "present", "collection": "c", "key": "a"},
                                      {"kind": "absent", "collection": "c", "key": "a"}],
                       "ops": [{"op": "delete", "collection": "c", "key": "a"}]})");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("conditions[1] (absent c/a)"), std::string::npos) << r.err;
}

TEST_F(CliTest, CreateIndexWaitsForTheBuildAndFailsLoudlyOnDuplicates) {
  Cairn("create-collection u");
  std::string lines;
  for (int i = 0; i < 300; i++) {
    lines += "{\"id\": \"u" + std::to_string(i) + "\", \"email\": \"e" + std::to_string(i) + "\"}\n";
  }
  lines += "{\"id\": \"dup\", \"email\": \"e7\"}\n";
  ASSERT_EQ(Cairn("load u", lines).code, 0);
  CliRun r = Cairn("create-index u by_email email --unique");
  EXPECT_EQ(r.code, 4) << "a failed build is a constraint violation: " << r.out << r.err;
  EXPECT_NE(r.err.find("'dup'"), std::string::npos) << "names the clashing records: " << r.err;
  EXPECT_NE(r.err.find("'u7'"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  // A good build reports it is ready when the command returns.
  r = Cairn("create-index u by_e2 email");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"state\":\"ready\""), std::string::npos) << r.out;
  EXPECT_EQ(Cairn("query u by_e2 --eq e7 --page-info").out.find("\"next\":null") != std::string::npos, true);
  r = Cairn("create-index u by_e3 email --no-wait");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"commit\":"), std::string::npos) << r.out;
  // Idempotent forms.
  EXPECT_EQ(Cairn("create-index u by_e2 email").code, 4) << "exists";
  r = Cairn("create-index u by_e2 email --if-not-exists");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"created\":false"), std::string::npos) << r.out;
}

TEST_F(CliTest, ExitCodesTellCausesApart) {
  Cairn("create-collection c");
  Cairn("create-index c by_e e --unique");
  Cairn("put c a '{\"e\": 1}'");
  EXPECT_EQ(Cairn("get c nobody").code, 1) << "absent record";
  EXPECT_EQ(Cairn("put c a '{}' --if-version 999").code, 1) << "condition failed";
  EXPECT_EQ(Cairn("put c b '{\"e\": 1}'").code, 4) << "unique violation";
  EXPECT_EQ(Cairn("insert c a '{}'").code, 4) << "already exists";
  EXPECT_EQ(Cairn("replace c zz '{}'").code, 4) << "replace of an absent record";
  EXPECT_EQ(Cairn("create-collection c").code, 4) << "already exists";
  CliRun r = Cairn("get cc a");
  EXPECT_EQ(r.code, 5) << "unknown collection, not an absent record";
  EXPECT_NE(r.err.find("'cc'"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("query c by_x --eq 1").code, 5) << "unknown index";
  EXPECT_EQ(Cairn("drop-collection nope").code, 5);
  EXPECT_EQ(Cairn("drop-index c nope").code, 5);
  EXPECT_EQ(Cairn("get c").code, 2) << "usage";
  EXPECT_EQ(Cairn("ping", "", "127.0.0.1:1").code, 3) << "connection";
  // Idempotent catalog commands.
  r = Cairn("create-collection c --if-not-exists");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"collection\":\"c\",\"created\":false}\n");
  r = Cairn("drop-collection nope --if-exists");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"collection\":\"nope\",\"dropped\":false}\n");
  r = Cairn("drop-index c nope --if-exists");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"dropped\":false"), std::string::npos) << r.out;
  EXPECT_NE(Cairn("--help").out.find("5 unknown collection, index, user or role"), std::string::npos);
}

TEST_F(CliTest, EveryCommandPrintsJsonWithItsCommit) {
  std::regex created("^\\{\"collection\":\"c\",\"created\":true,\"commit\":[0-9]+\\}\n$");
  CliRun r = Cairn("create-collection c");
  EXPECT_TRUE(std::regex_match(r.out, created)) << r.out;
  r = Cairn("create-index c by_n n");
  EXPECT_NE(r.out.find("\"index\":\"by_n\",\"created\":true,\"state\":\"ready\",\"commit\":"),
            std::string::npos)
      << r.out;
  Cairn("put c a '{}'");
  r = Cairn("delete c a");
  EXPECT_TRUE(std::regex_match(r.out, std::regex("^\\{\"key\":\"a\",\"deleted\":true,\"commit\":[0-9]+\\}\n$")))
      << r.out;
  r = Cairn("drop-index c by_n");
  EXPECT_NE(r.out.find("\"dropped\":true,\"commit\":"), std::string::npos) << r.out;
  r = Cairn("drop-collection c");
  EXPECT_TRUE(std::regex_match(r.out, std::regex("^\\{\"collection\":\"c\",\"dropped\":true,\"commit\":[0-9]+\\}\n$")))
      << r.out;
}

TEST_F(CliTest, PagesOfScansAndQueriesCanBeContinued) {
  Cairn("create-collection c");
  Cairn("create-index c by_n n");
  for (int i = 0; i < 7; i++) Cairn("put c k" + std::to_string(i) + " '{\"n\": " + std::to_string(i % 2) + "}'");
  CliRun r = Cairn("scan c --limit 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex("--after ([A-Za-z0-9+/=_-]+)"))) << r.err;
  std::string keys;
  std::string token = m[1];
  for (int page = 0; page < 5 && !token.empty(); page++) {
    r = Cairn("scan c --limit 3 --page-info --after '" + token + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    std::smatch next;
    ASSERT_TRUE(std::regex_search(r.out, next, std::regex("\\{\"next\":(null|\"([^\"]+)\")\\}\n$"))) << r.out;
    token = next[2];
    const std::regex key("\"key\":\"(k[0-9])\"");
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), key), end; it != end; ++it) {
      keys += (*it)[1];
    }
  }
  EXPECT_EQ(keys, "k3k4k5k6") << "page 2 onwards, each record once";
  r = Cairn("scan c");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 7) << "without --limit: everything";
  EXPECT_TRUE(r.err.empty()) << r.err;
  r = Cairn("scan c --limit 2 --all");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 7) << "--all: every page";
  EXPECT_TRUE(r.err.empty()) << r.err;

  // A query's second page.
  r = Cairn("query c by_n --eq 1 --limit 2 --page-info");
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\\{\"next\":\"([^\"]+)\"\\}\n$"))) << r.out;
  r = Cairn("query c by_n --eq 1 --limit 2 --after '" + std::string(m[1]) + "'");
  EXPECT_NE(r.out.find("\"key\":\"k5\""), std::string::npos) << r.out;
  EXPECT_EQ(Cairn("scan c --after '!!'").code, 2) << "a bad token is a usage error";
}

TEST_F(CliTest, QueryTakesAnEqualityPrefixAndARangeOnTheNextField) {
  Cairn("create-collection o");
  Cairn("create-index o by_status_total status,total");
  int totals[] = {5, 15, 25, 35};
  for (int i = 0; i < 4; i++) {
    Cairn("put o a" + std::to_string(i) + " '{\"status\": \"open\", \"total\": " + std::to_string(totals[i]) + "}'");
    Cairn("put o b" + std::to_string(i) + " '{\"status\": \"paid\", \"total\": " + std::to_string(totals[i]) + "}'");
  }
  CliRun r = Cairn("query o by_status_total --eq open --from 10 --to 30");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_NE(r.out.find("\"key\":\"a1\""), std::string::npos);
  EXPECT_NE(r.out.find("\"key\":\"a2\""), std::string::npos);
  EXPECT_EQ(Cairn("count o --index by_status_total --eq open --from 10").out, "3\n");
}

TEST_F(CliTest, AStringBoundThatLooksLikeANumberIsWarnedAbout) {
  Cairn("create-collection p");
  Cairn("create-index p by_price price");
  Cairn("put p a '{\"price\": 12}'");
  CliRun r = Cairn("query p by_price --from '\"10\"'");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("warning: --from is the string \"10\""), std::string::npos) << r.err;
  r = Cairn("query p by_price --from 10");
  EXPECT_NE(r.out.find("\"key\":\"a\""), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(CliTest, VersionUnknownCommandsAndFlagsAfterTheSubcommand) {
  CliRun r = Cairn("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("cairn ", 0), 0u) << r.out;
  r = Cairn("gett c k");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'gett'; did you mean 'get'?"), std::string::npos) << r.err;
  Cairn("create-collection c");
  Cairn("put c k '{}'");
  // --addr after the subcommand; the environment points nowhere.
  r = testing::RunCommand("CAIRN_ADDR=127.0.0.1:1 " CAIRN_CLI_PATH " get c k --addr " + addr_, dir_);
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(CliTest, AOneShotCommandExitsOnceItsReplyIsPrinted) {
  // libcairn's IO thread used to wait for its 50 ms sweep timer before the process could
  // exit. Compared with the same binary's start and exit alone (--version, no
  // connection), a ping now adds a round trip and a handshake: a few ms, not 50. The
  // fastest of ten runs of each is compared, so that noise and sanitizers cancel out.
  auto fastest = [&](const std::string& args) {
    double best = 1e9;
    for (int i = 0; i < 10; i++) {
      auto t0 = std::chrono::steady_clock::now();
      EXPECT_EQ(Cairn(args).code, 0) << args;
      best = std::min(best, std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  double ping = fastest("ping"), version = fastest("--version");
  EXPECT_LT(ping - version, 30.0) << "ms: ping " << ping << ", --version " << version;
}

TEST_F(CliTest, VerifyChecksTheServersDatabase) {
  Cairn("create-collection c");
  Cairn("create-index c by_n n");
  for (int i = 0; i < 5; i++) Cairn("put c k" + std::to_string(i) + " '{\"n\": " + std::to_string(i) + "}'");
  CliRun r = Cairn("verify");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("{\"ok\":true,\"records\":5,\"index_entries\":5,"), std::string::npos) << r.out;

  // Damage one change-log entry with the server stopped: verify reports it.
  server_->Stop();
  {
    MDB_env* env;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, uint64_t{1} << 30);
    ASSERT_EQ(mdb_env_open(env, dir_.Sub("data").c_str(), 0, 0644), 0);
    MDB_txn* txn;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi log;
    ASSERT_EQ(mdb_dbi_open(txn, "log", 0, &log), 0);
    MDB_cursor* cur;
    ASSERT_EQ(mdb_cursor_open(txn, log, &cur), 0);
    MDB_val key, v;
    ASSERT_EQ(mdb_cursor_get(cur, &key, &v, MDB_LAST), 0);
    std::string k(static_cast<const char*>(key.mv_data), key.mv_size);
    std::string bad(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_cursor_close(cur);
    bad[bad.size() / 2] ^= 0x5a;
    MDB_val nk{k.size(), k.data()}, nv{bad.size(), bad.data()};
    ASSERT_EQ(mdb_put(txn, log, &nk, &nv, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
  ASSERT_TRUE(server_->ready());
  addr_ = "127.0.0.1:" + std::to_string(server_->port());
  r = Cairn("verify");
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("\"ok\":false"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("problem"), std::string::npos) << r.err;
}

TEST_F(CliTest, MissingServerIsAConnectionError) {
  CliRun r = Cairn("ping", "", "127.0.0.1:1");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  // Bad arguments are reported as such even without a server.
  EXPECT_EQ(Cairn("put c k '{bad'", "", "127.0.0.1:1").code, 2);
}

// Bytes that are not UTF-8, stored through libcairn: get and scan print valid JSON, and
// put of what get printed stores the same bytes, of the same types.
TEST_F(CliTest, BytesThatAreNotUtf8RoundTripThroughGetAndPut) {
  auto db = Lib();
  db->CreateCollection("b");
  flexbuffers::Builder fb;  // keys in order and untyped vectors, as the JSON parser builds
  fb.Map([&] {
    fb.Key("$bytes");  // a user's key named like a tag
    fb.String("x");
    fb.Key("blob");
    fb.Blob(std::string("\0\xff", 2).data(), 2);
    fb.Key("list");
    fb.Vector([&] {
      fb.String("\xc0\xaf");  // an overlong '/'
      fb.Int(1);
    });
    fb.Key("name");
    fb.String("caf\xe9");  // Latin-1
    fb.Key("nested");
    fb.Map([&] {
      fb.Key("ok");
      fb.String("é");
      fb.Key("\xff");
      fb.Null();
    });
  });
  fb.Finish();
  const std::string doc(reinterpret_cast<const char*>(fb.GetBuffer().data()), fb.GetBuffer().size());
  db->Put("b", "k", client::Document::FromBytes(doc));
  const std::string odd_key("\xff\xfek", 3);
  db->Put("b", odd_key, client::Document::FromJson(R"({"n": 1})"));

  CliRun r = Cairn("get b k");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(JsonLines(r.out));
  EXPECT_NE(r.out.find(R"(["blob",{"$bytes":"AP8="}])"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"(["name",{"$string":"Y2Fm6Q=="}])"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"([{"$string":"/w=="},null])"), std::string::npos) << r.out;

  std::string printed = DocumentOf(r.out);
  r = Cairn("put b k2 " + Sh(printed));
  ASSERT_EQ(r.code, 0) << r.err;
  auto back = db->Get("b", "k2");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->value, doc) << "put stores what get printed, byte for byte: "
                              << DocumentOf(Cairn("get b k2").out);

  // A key that is not UTF-8: scan prints it as {"$string": ...}; --key-base64 finds it.
  r = Cairn("scan b");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(JsonLines(r.out));
  const std::string line = R"({"key":{"$string":"//5r"},"version":)";
  ASSERT_NE(r.out.find(line), std::string::npos) << r.out;
  std::string scanned = r.out.substr(r.out.find(line));
  scanned = scanned.substr(0, scanned.find('\n') + 1);
  r = Cairn("get b --key-base64 //5r");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, scanned);
  r = Cairn("scan b --key-base64 --from //5r");
  EXPECT_EQ(r.out, scanned) << "key bounds in base64";
  r = Cairn("put b --key-base64 //5r '{\"n\": 2}'");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(JsonLines(r.out));
  EXPECT_EQ(r.out.rfind(R"({"key":{"$string":"//5r"},"version":)", 0), 0u) << r.out;
  auto rewritten = db->Get("b", odd_key);
  ASSERT_TRUE(rewritten);
  EXPECT_EQ((*rewritten)["n"].AsInt(), 2);
  r = Cairn("txn", R"({"ops": [{"op": "get", "collection": "b", "key": {"$string": "//5r"}}]})");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("records":[{"key":{"$string":"//5r"})"), std::string::npos) << r.out;
  r = Cairn("get b --key-base64 'not base64'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("base64"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("count b --index by_n --key-base64 --from AA==").code, 2)
      << "--key-base64 is for keys";
}

TEST_F(CliTest, InvalidUtf8JsonIsRefusedAndStoresNothing) {
  Cairn("create-collection b");
  // A raw Latin-1 byte, and a lone surrogate escape.
  CliRun r = Cairn("put b k " + Sh("{\"n\": 1,\n \"s\": \"caf\xe9\"}"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("invalid JSON at line 2, column 11 (byte 19): invalid UTF-8 (byte 0xe9)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("{\"$string\": \"<base64>\"}"), std::string::npos) << "says what to write";
  EXPECT_TRUE(testing::IsStrictUtf8(r.err)) << r.err;
  r = Cairn("put b k '{\"s\": \"\\ud800\"}'");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("lone high surrogate"), std::string::npos) << r.err;
  r = Cairn("txn", "{\"ops\": [{\"op\": \"put\", \"collection\": \"b\", \"key\": \"k\", "
                   "\"document\": {\"s\": \"\xff\"}}]}");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("invalid UTF-8"), std::string::npos) << r.err;
  r = Cairn("load b", "{\"id\": \"a\"}\n{\"id\": \"k\", \"s\": \"\xc0\xaf\"}\n");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("<stdin>:2: invalid JSON at line 1, column 19 (byte 18)"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("get b k").code, 1) << "nothing stored under k";
  EXPECT_EQ(Cairn("count b").out, "1\n") << "only the good line of the load";

  // The same bytes written with the convention are taken, as a string.
  r = Cairn(R"(put b k '{"s": {"$string": "Y2Fm6Q=="}, "b": {"$bytes": "/w=="}}')");
  ASSERT_EQ(r.code, 0) << r.err;
  auto got = Lib()->Get("b", "k");
  ASSERT_TRUE(got);
  EXPECT_TRUE((*got)["s"].ref().IsString());
  EXPECT_EQ((*got)["s"].AsString(), "caf\xe9");
  EXPECT_TRUE((*got)["b"].ref().IsBlob());
  r = Cairn(R"(put b k '{"a": {"$bytes": "/w==", "more": 1}}')");
  EXPECT_EQ(r.code, 2) << "a tag mixed with other members";
  EXPECT_NE(r.err.find("$map"), std::string::npos) << r.err;
}

// Messages on stderr and text in JSON output quote user bytes safely.
TEST_F(CliTest, MessagesAboutKeysThatAreNotUtf8AreValidUtf8) {
  auto db = Lib();
  db->CreateCollection("u");
  db->Put("u", std::string("\xff" "a", 2), client::Document::FromJson(R"({"e": 1})"));
  db->Put("u", std::string("\xfe" "b", 2), client::Document::FromJson(R"({"e": 1})"));
  CliRun r = Cairn("get u --key-base64 /w==");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(testing::IsStrictUtf8(r.err)) << r.err;
  EXPECT_NE(r.err.find("not found: u/\\xff"), std::string::npos) << r.err;
  // A unique build over duplicates names the clashing records: their keys are not UTF-8.
  r = Cairn("create-index u by_e e --unique");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_TRUE(testing::IsStrictUtf8(r.err)) << r.err;
  EXPECT_NE(r.err.find("\\xff"), std::string::npos) << r.err;
  r = Cairn("indexes u");
  EXPECT_TRUE(JsonLines(r.out)) << r.out;
  EXPECT_NE(r.out.find("\"error\":"), std::string::npos) << r.out;
  // A server message quoting a key, and an argument CLI11 quotes.
  r = Cairn("insert u --key-base64 /2E= '{}'");
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_TRUE(testing::IsStrictUtf8(r.err)) << r.err;
  r = Cairn("get u k " + Sh("extra\xff\x1b[2J"));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(testing::IsStrictUtf8(r.err)) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "no control characters: " << r.err;
}

}  // namespace
}  // namespace cairn
