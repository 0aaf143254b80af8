// cairnd on a full disk, through libcairn: a write gets DatabaseFull on the wire with a
// message naming the folder, reads, deletes and a drop work, writes resume after
// deleting, and a restarted cairnd has every acknowledged write. The disk is a tmpfs the
// test mounts (skipped, saying so, where mounting is not permitted).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "cairn/client/client.h"
#include "server_process.h"
#include "small_fs.h"

namespace cairn::client {
namespace {

using testing::ServerProcess;
using testing::SmallFs;

std::shared_ptr<Client> ConnectTo(const ServerProcess& server) {
  ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(server.port());
  return Client::Connect(o);
}

Document Padded(int n) {
  return Document::Builder().Set("n", n).Set("pad", std::string(4000, 'p')).Build();
}

TEST(ServerDiskFullTest, FullDiskIsDatabaseFullAndDeletesDropsAndRestartWork) {
  SmallFs fs("8m");
  SKIP_UNLESS_MOUNTED(fs);
  const std::string data = fs.Sub("data");
  int written = 0;
  {
    ServerProcess server(data);
    ASSERT_TRUE(server.ready()) << server.output();
    auto db = ConnectTo(server);
    db->CreateCollection("c");
    db->CreateCollection("d");
    for (int i = 0; i < 20; i++) db->Put("d", "d" + std::to_string(i), Padded(i));
    std::optional<Error> refusal;
    using Clock = std::chrono::steady_clock;
    Clock::duration refused_in{};
    for (; written < 5000; written++) {
      auto t0 = Clock::now();
      try {
        db->Put("c", "k" + std::to_string(written), Padded(written));
      } catch (const Error& e) {
        refused_in = Clock::now() - t0;
        refusal = e;
        break;
      }
    }
    ASSERT_TRUE(refusal) << "8 MiB never filled";
    EXPECT_EQ(refusal->code(), ErrorCode::kDatabaseFull) << refusal->what();
    EXPECT_NE(std::string(refusal->what()).find("disk holding database " + data), std::string::npos)
        << refusal->what();
    ASSERT_GT(written, 100);

    // Reads, deletes and a drop on the full disk.
    EXPECT_EQ(db->Count("c"), uint64_t(written));
    EXPECT_TRUE(db->Get("c", "k0"));
    for (int i = 0; i < written / 2; i++) {
      EXPECT_TRUE(db->Delete("c", "k" + std::to_string(i))) << i;
    }
    db->DropCollection("d");
    // Writes resume by themselves.
    auto t0 = Clock::now();
    db->Put("c", "again", Padded(-1));
    auto accepted_in = Clock::now() - t0;
    auto us = [](auto d) {
      return static_cast<long long>(
          std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    std::printf(
        "through cairnd: refused write answered in %lld us; first write after deleting "
        "answered in %lld us\n",
        us(refused_in), us(accepted_in));
    EXPECT_TRUE(db->Verify().ok());
  }
  // A restarted cairnd on the same disk has every acknowledged write.
  ServerProcess server(data);
  ASSERT_TRUE(server.ready()) << server.output();
  auto db = ConnectTo(server);
  EXPECT_EQ(db->Count("c"), uint64_t(written - written / 2 + 1));
  EXPECT_TRUE(db->Get("c", "again"));
  EXPECT_FALSE(db->Get("c", "k0"));
  EXPECT_TRUE(db->Get("c", "k" + std::to_string(written - 1)));
  VerifyResult v = db->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

}  // namespace
}  // namespace cairn::client
