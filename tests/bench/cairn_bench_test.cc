// cairn-bench, the load generator, run as a benchmarking harness runs it: against a
// real cairnd, every workload, its JSON output, its exit codes, its errors.
#include <gtest/gtest.h>
#include <regex>

#include "cairn/client/client.h"
#include "command.h"
#include "server_process.h"

#ifndef CAIRN_BENCH_PATH
#error "CAIRN_BENCH_PATH must name the cairn-bench binary"
#endif

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::TempDir;

struct BenchRun : testing::CommandRun {
  // A number field of the JSON object printed with --json; -1 if absent.
  double Field(const std::string& name) const {
    std::smatch m;
    std::regex re("\"" + name + "\":(-?[0-9.]+)");
    return std::regex_search(out, m, re) ? std::stod(m[1]) : -1;
  }
};

class CairnBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"),
                                              std::vector<std::string>{"--durability", "nosync"});
    ASSERT_TRUE(server_->ready()) << server_->output();
    addr_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  BenchRun Bench(const std::string& args, const std::string& addr = "") {
    return {testing::RunCommand(std::string(CAIRN_BENCH_PATH) + " --addr " +
                                    (addr.empty() ? addr_ : addr) + " " + args,
                                dir_)};
  }
  // cairn-bench with no --addr, and `env` (NAME=VALUE ...) in its environment.
  BenchRun BenchWithEnv(const std::string& env, const std::string& args) {
    return {testing::RunCommand("env -u CAIRN_ADDR " + env + " " + CAIRN_BENCH_PATH + " " + args,
                                dir_)};
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string addr_;
};

TEST_F(CairnBenchTest, EveryWorkloadRunsItsRequestsWithoutErrors) {
  for (std::string w : {"get", "put", "mixed", "txn", "query", "ycsb-a", "ycsb-b", "ycsb-c",
                        "ycsb-d", "ycsb-e", "ycsb-f"}) {
    SCOPED_TRACE(w);
    BenchRun r = Bench("--workload " + w +
                       " --keys 500 --connections 3 --pipeline 4 --requests 600 --load --json");
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.Field("ops"), 600) << r.out;
    EXPECT_EQ(r.Field("errors"), 0) << r.out;
    EXPECT_GT(r.Field("ops_per_sec"), 0) << r.out;
    double p50 = r.Field("p50_us"), p99 = r.Field("p99_us"), p999 = r.Field("p999_us");
    EXPECT_GT(p50, 0) << r.out;
    EXPECT_LE(p50, p99) << r.out;
    EXPECT_LE(p99, p999) << r.out;
    EXPECT_LE(p999, r.Field("max_us")) << r.out;
  }
}

TEST_F(CairnBenchTest, LoadWritesEveryKeyAndQueryBuildsItsIndex) {
  BenchRun r = Bench("--workload query --keys 1234 --requests 10 --load --json");
  ASSERT_EQ(r.code, 0) << r.err;
  ClientOptions o;
  o.address = addr_;
  auto db = Client::Connect(o);
  EXPECT_EQ(db->Count("bench"), 1234u);
  std::optional<Record> last = db->Get("bench", "k000000000001233");
  ASSERT_TRUE(last);
  EXPECT_EQ((*last)["g"].AsInt(), 233);
  EXPECT_GE(last->value.size(), 90u) << "documents of about --value-size bytes";
  EXPECT_LE(last->value.size(), 110u);
  QueryOptions q;
  q.equal = {int64_t(233)};
  EXPECT_EQ(db->CountQuery("bench", "by_g", q), 2u) << "keys 233 and 1233";
}

TEST_F(CairnBenchTest, RunsForTheDurationAsked) {
  BenchRun r = Bench(
      "--workload mixed --keys 200 --connections 2 --pipeline 2 --duration 0.6 --load --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GE(r.Field("seconds"), 0.6) << r.out;
  EXPECT_LT(r.Field("seconds"), 5) << r.out;
  EXPECT_GT(r.Field("ops"), 0) << r.out;
  EXPECT_EQ(r.Field("threads"), 1);
}

TEST_F(CairnBenchTest, ErrorsAreCountedAndReported) {
  // No --load: the collection does not exist, so every request fails.
  BenchRun r = Bench("--workload get --collection missing --keys 10 --requests 50 --json");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(r.Field("errors"), 50) << r.out;
  EXPECT_EQ(r.Field("ops"), 0) << r.out;
  EXPECT_NE(r.err.find("50 errors (every request failed); first:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("collection 'missing' does not exist on the server: run once with --load"),
            std::string::npos)
      << r.err;
}

TEST_F(CairnBenchTest, EveryRequestFailingForADurationExitsNonZero) {
  BenchRun r = Bench("--workload put --collection missing --keys 10 --duration 0.3 --json");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(r.Field("ops"), 0) << r.out;
  EXPECT_GT(r.Field("errors"), 0) << r.out;
  EXPECT_NE(r.err.find("run once with --load"), std::string::npos) << r.err;
}

TEST_F(CairnBenchTest, AQueryWithoutItsIndexSaysToLoad) {
  ClientOptions o;
  o.address = addr_;
  Client::Connect(o)->CreateCollection("bench");  // the collection, not the index
  BenchRun r = Bench("--workload query --keys 10 --requests 5 --json");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("(or its index by_g) does not exist on the server: run once with --load"),
            std::string::npos)
      << r.err;
}

TEST_F(CairnBenchTest, OtherErrorsDoNotSuggestLoad) {
  // Values over the server's limit (a 64 KiB frame holds values up to 31 KiB): every put
  // fails, but not for a missing name.
  ServerProcess small(dir_.Sub("small"), {"--max-frame", "64K"});
  ASSERT_TRUE(small.ready()) << small.output();
  std::string addr = "127.0.0.1:" + std::to_string(small.port());
  ClientOptions o;
  o.address = addr;
  Client::Connect(o)->CreateCollection("bench");
  BenchRun r = Bench("--workload put --keys 10 --value-size 40000 --requests 3 --json", addr);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("too large"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("--load"), std::string::npos) << r.err;
}

TEST_F(CairnBenchTest, AddressFromCairnAddrWhenNoAddrFlag) {
  BenchRun r =
      BenchWithEnv("CAIRN_ADDR=" + addr_, "--workload put --keys 10 --requests 20 --load --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.Field("ops"), 20) << r.out;
  // --addr wins over the environment.
  r = BenchWithEnv("CAIRN_ADDR=127.0.0.1:1",
                   "--addr " + addr_ + " --workload put --keys 10 --requests 20 --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = BenchWithEnv("CAIRN_ADDR=127.0.0.1:1", "--workload put --keys 10 --requests 1");
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
}

TEST_F(CairnBenchTest, ThreadsShareTheConnections) {
  BenchRun r = Bench(
      "--workload get --keys 100 --threads 3 --connections 5 --pipeline 2 "
      "--requests 900 --load --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.Field("ops"), 900);
  EXPECT_EQ(r.Field("threads"), 3);
}

TEST_F(CairnBenchTest, BadArgumentsAndNoServerAreClearErrors) {
  BenchRun bad = Bench("--workload nope --requests 1");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE((bad.out + bad.err).find("workload"), std::string::npos) << bad.out << bad.err;

  BenchRun none = Bench("--workload get --requests 1", "127.0.0.1:1");
  EXPECT_EQ(none.code, 3) << none.out << none.err;
  EXPECT_NE(none.err.find("cannot reach cairnd"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace cairn::client
