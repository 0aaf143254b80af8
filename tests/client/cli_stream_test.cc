// The cairn command line's stream commands (watch, digest) against a scripted stand-in
// for cairnd (fake_server.h): what they print for each kind of change, how they end
// (--count, a reader that goes away, SIGINT) and what they say when the stream fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iterator>

#include "cairn/client/client.h"
#include "cairn/protocol/backup.h"
#include "command.h"
#include "fake_server.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn {
namespace {

using testing::FakePeer;
using testing::FakeServer;
using testing::TempDir;
using namespace std::chrono_literals;
using Fbb = flatbuffers::FlatBufferBuilder;

struct WireChange {
  uint64_t commit;
  std::string collection;
  uint8_t kind;
  std::string key, value;
  wire::ValueKind value_kind = wire::ValueKind::Document;
  std::optional<client::IndexSpec> index = std::nullopt;
};

std::string EventsFrame(uint64_t id, const std::vector<WireChange>& changes, uint64_t through) {
  Fbb fbb;
  std::vector<flatbuffers::Offset<wire::WatchChange>> v;
  for (const WireChange& c : changes) {
    flatbuffers::Offset<wire::IndexSpec> ix;
    if (c.index) {
      ix = wire::CreateIndexSpec(fbb, fbb.CreateString(c.index->name),
                                 fbb.CreateVectorOfStrings(c.index->fields), c.index->unique);
    }
    auto bytes = [&](const std::string& s) {
      return s.empty() ? 0 : fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    };
    v.push_back(wire::CreateWatchChange(fbb, c.commit, fbb.CreateString(c.collection), c.kind,
                                        bytes(c.key), c.value_kind, bytes(c.value), ix,
                                        1000 + c.commit));
  }
  auto ev = wire::CreateWatchEvents(fbb, fbb.CreateVector(v), through);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::WatchEvents, ev.Union()));
  return FakePeer::Frame(fbb);
}

std::string ErrorFrame(uint64_t id, wire::ErrorCode code, std::string_view message,
                       uint64_t log_first = 0) {
  Fbb fbb;
  auto e = wire::CreateError(fbb, code, fbb.CreateString(message), -1, -1, log_first);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, e));
  return FakePeer::Frame(fbb);
}

std::string Doc(std::string_view json) { return client::Document::FromJson(json).bytes(); }

std::string BeginFrame(uint64_t id, uint64_t commit, uint32_t format = 1) {
  Fbb fbb;
  auto e = wire::CreateEpochStart(fbb, 2, 0xabc, 40);
  auto b = wire::CreateSnapshotBegin(fbb, commit, format, fbb.CreateVector(&e, 1));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::SnapshotBegin, b.Union()));
  return FakePeer::Frame(fbb);
}

std::string ChunkFrame(uint64_t id, uint64_t offset, std::string_view data, bool damage = false) {
  Fbb fbb;
  uint64_t sum = BackupChunkChecksum(offset, data);
  std::string bytes(data);
  if (damage) bytes[bytes.size() / 2] ^= 4;
  auto c = wire::CreateSnapshotChunk(
      fbb, offset, fbb.CreateVector(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
      sum);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::SnapshotChunk, c.Union()));
  return FakePeer::Frame(fbb);
}

std::string EndFrame(uint64_t id, std::string_view data) {
  Fbb fbb;
  BackupDataChecksum sum;
  sum.Update(data);
  auto e = wire::CreateSnapshotEnd(fbb, data.size(), sum.Digest());
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::SnapshotEnd, e.Union()));
  return FakePeer::Frame(fbb);
}

// A snapshot of `data` in chunks of 64 KiB; `damage_chunk` (if any) is sent damaged;
// the stream stops before its end with `cut`.
std::string SnapshotFrames(uint64_t id, const std::string& data, int damage_chunk = -1,
                           bool cut = false) {
  std::string out = BeginFrame(id, 1234);
  int i = 0;
  for (size_t off = 0; off < data.size(); off += 65536, i++) {
    out += ChunkFrame(id, off, std::string_view(data).substr(off, 65536), i == damage_chunk);
  }
  if (!cut) out += EndFrame(id, data);
  return out;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = char((i * 131) ^ (i >> 9));
  return s;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// What a backup file holds: its info, and its data put together.
std::pair<BackupResult<BackupInfo>, std::string> ReadBack(const std::string& file) {
  std::string data;
  auto r = ReadBackup(file, [&](uint64_t, std::string_view d) {
    data += d;
    return BackupStatus();
  });
  return {std::move(r), data};
}

class CliStreamTest : public ::testing::Test {
 protected:
  testing::CommandRun Cairn(const FakeServer& server, const std::string& args) {
    return testing::RunCommand("CAIRN_ADDR=" + server.address() + " " CAIRN_CLI_PATH " " + args,
                               dir_);
  }
  TempDir dir_;
};

// The stream of every kind of change the CLI prints.
void SendEveryKind(FakePeer& peer, uint64_t id) {
  peer.SendRaw(EventsFrame(id,
                           {{5, "c", 0, "ada", Doc(R"({"email": "ada@x", "n": 1})")},
                            {5, "c", 0, std::string("\xff\xfe", 2), Doc(R"({"blob": 1})")}},
                           4));
  peer.SendRaw(EventsFrame(id,
                           {{5, "c", 1, "bob", ""},
                            {6, "c", 0, "raw", std::string("\x00\x01\xff", 3), wire::ValueKind::Raw},
                            {7, "c", 4, "", "", wire::ValueKind::Document,
                             client::IndexSpec{"by_email", {"email"}, true}},
                            {8, "c", 5, "", "", wire::ValueKind::Document,
                             client::IndexSpec{"by_n", {}, false}},
                            {9, "c", 3, "", ""},
                            {10, "c", 2, "", ""}},
                           10));
  peer.ClosedByClient(10s);
}

TEST_F(CliStreamTest, WatchPrintsEveryKindOfChangeAsAJsonLine) {
  std::atomic<uint64_t> from{0};
  std::string collection;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    from = f.request_as_Watch()->from();
    collection = f.request_as_Watch()->collection()->str();
    SendEveryKind(peer, f.id());
  });
  testing::CommandRun r = Cairn(server, "watch c --from 5 --count 8");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(from, 5u);
  EXPECT_EQ(collection, "c");
  EXPECT_EQ(r.out,
            R"({"commit":5,"collection":"c","op":"put","key":"ada","value":{"email":"ada@x","n":1},"time_ms":1005})"
            "\n"
            R"({"commit":5,"collection":"c","op":"put","key":{"$string":"//4="},"value":{"blob":1},"time_ms":1005})"
            "\n"
            R"({"commit":5,"collection":"c","op":"delete","key":"bob","time_ms":1005})"
            "\n"
            R"({"commit":6,"collection":"c","op":"put","key":"raw","value":{"$bytes":"AAH/"},"time_ms":1006})"
            "\n"
            R"({"commit":7,"collection":"c","op":"create_index","index":{"name":"by_email","fields":["email"],"unique":true},"time_ms":1007})"
            "\n"
            R"({"commit":8,"collection":"c","op":"drop_index","index":{"name":"by_n"},"time_ms":1008})"
            "\n"
            R"({"commit":9,"collection":"c","op":"drop_collection","time_ms":1009})"
            "\n"
            R"({"commit":10,"collection":"c","op":"create_collection","time_ms":1010})"
            "\n");
}

TEST_F(CliStreamTest, WatchCountStopsAfterThatManyChanges) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) { SendEveryKind(peer, f.id()); });
  testing::CommandRun r = Cairn(server, "watch c --from 5 --count 2");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
}

TEST_F(CliStreamTest, WatchEndsQuietlyWhenItsReaderGoesAway) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    for (uint64_t c = 1; c < 100000; c++) {
      if (!peer.SendRaw(EventsFrame(f.id(), {{c, "c", 0, "k", Doc("{}")}}, c))) return;
    }
  });
  std::string status = dir_.Sub("status");
  testing::CommandRun r = testing::RunCommand(
      "{ (CAIRN_ADDR=" + server.address() + " " CAIRN_CLI_PATH " watch c --from 1; echo $? >" +
          status + ") | head -3; }",
      dir_);
  // `head` took three lines and left; cairn saw EPIPE and ended without a message.
  std::ifstream in(status);
  int code = -1;
  in >> code;
  EXPECT_EQ(code, 0);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST_F(CliStreamTest, WatchStopsCleanlyOnSigint) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(EventsFrame(f.id(), {{3, "c", 0, "k", Doc("{}")}}, 3));
    peer.ClosedByClient(10s);
  });
  std::string out = dir_.Sub("watch.out"), err = dir_.Sub("watch.err");
  pid_t pid = fork();
  if (pid == 0) {
    setenv("CAIRN_ADDR", server.address().c_str(), 1);
    freopen(out.c_str(), "w", stdout);
    freopen(err.c_str(), "w", stderr);
    execl(CAIRN_CLI_PATH, CAIRN_CLI_PATH, "watch", "c", "--from", "3", nullptr);
    _exit(127);
  }
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (slurp(out).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of stopping";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(slurp(out), R"({"commit":3,"collection":"c","op":"put","key":"k","value":{},"time_ms":1003})"
                        "\n");
  EXPECT_NE(slurp(err).find("--from 4"), std::string::npos) << slurp(err);
}

TEST_F(CliStreamTest, WatchFromATrimmedCommitNamesTheOldestKept) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(ErrorFrame(f.id(), wire::ErrorCode::LogTruncated, "trimmed", 120));
  });
  testing::CommandRun r = Cairn(server, "watch c --from 3");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("commit 3 is no longer in the server's change log"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--from 120"), std::string::npos) << r.err;
}

TEST_F(CliStreamTest, WatchThatLosesItsServerSaysWhereToResume) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(EventsFrame(f.id(), {{3, "c", 0, "k", Doc("{}")}}, 7));
  });  // then the connection closes
  testing::CommandRun r = Cairn(server, "watch c --from 3");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  EXPECT_NE(r.err.find("--from 8"), std::string::npos) << r.err;
}

TEST_F(CliStreamTest, WatchArgumentsAreChecked) {
  FakeServer server([&](FakePeer&, const wire::RequestFrame&) {});
  EXPECT_EQ(Cairn(server, "watch").code, 2);
  EXPECT_EQ(Cairn(server, "watch c --all-collections").code, 2);
  testing::CommandRun r = Cairn(server, "watch c --key-base64 --prefix '*'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--prefix"), std::string::npos) << r.err;
  EXPECT_EQ(server.requests(wire::Request::Watch), 0);
}

TEST_F(CliStreamTest, WatchAllCollectionsAndAPrefixInBase64) {
  std::promise<std::pair<bool, std::string>> asked;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    const wire::Watch* w = f.request_as_Watch();
    asked.set_value({w->collection() != nullptr,
                     std::string(reinterpret_cast<const char*>(w->prefix()->data()),
                                 w->prefix()->size())});
    peer.SendRaw(EventsFrame(f.id(), {{2, "d", 0, "k", Doc("{}")}}, 2));
    peer.ClosedByClient(10s);
  });
  testing::CommandRun r = Cairn(server, "watch --all-collections --key-base64 --prefix //4= --count 1");
  EXPECT_EQ(r.code, 0) << r.err;
  auto [has_collection, prefix] = asked.get_future().get();
  EXPECT_FALSE(has_collection);
  EXPECT_EQ(prefix, std::string("\xff\xfe", 2));
}

// --- backup.

TEST_F(CliStreamTest, BackupWritesAFileThatVerifiesAndHoldsTheSnapshot) {
  const std::string data = Pattern(1 << 20);
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    ASSERT_EQ(f.request_type(), wire::Request::Snapshot);
    peer.SendRaw(SnapshotFrames(f.id(), data));
  });
  std::string file = dir_.Sub("db.backup");
  testing::CommandRun r = Cairn(server, "backup " + file);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"commit\":1234,\"size\":1048576"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "") << "no progress when stderr is not a terminal";
  EXPECT_FALSE(Exists(file + ".partial"));
  auto [info, back] = ReadBack(file);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->commit, 1234u);
  EXPECT_EQ(info->snapshot_format, kSnapshotFormatLmdb);
  EXPECT_EQ(info->history, (std::vector<BackupEpoch>{{2, 0xabc, 40}}));
  EXPECT_EQ(info->size, data.size());
  EXPECT_TRUE(back == data);

  // Another backup to the same FILE replaces it once it is whole.
  testing::CommandRun again = Cairn(server, "backup " + file);
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_TRUE(ReadBack(file).first.ok());
}

TEST_F(CliStreamTest, BackupToStandardOutputWritesOnlyTheBackupThere) {
  const std::string data = Pattern(300000);
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(SnapshotFrames(f.id(), data));
  });
  testing::CommandRun r = Cairn(server, "backup -");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("backup of commit 1234 written"), std::string::npos) << r.err;
  std::string file = dir_.Sub("from-stdout");
  std::ofstream(file) << r.out;
  auto [info, back] = ReadBack(file);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_TRUE(back == data);
}

// A stream that fails in any way leaves no FILE, no FILE.partial, and an older FILE as
// it was.
TEST_F(CliStreamTest, BackupThatFailsLeavesNothingBehind) {
  const std::string data = Pattern(500000);
  struct Case {
    const char* name;
    std::function<std::string(uint64_t)> frames;
    const char* says;
  };
  std::vector<Case> cases = {
      {"damaged chunk", [&](uint64_t id) { return SnapshotFrames(id, data, 3); }, "checksum"},
      {"cut before the end", [&](uint64_t id) { return SnapshotFrames(id, data, -1, true); },
       "before its end"},
      {"server error",
       [&](uint64_t id) {
         return BeginFrame(id, 9) + ErrorFrame(id, wire::ErrorCode::Internal, "copy failed: EIO");
       },
       "copy failed: EIO"},
      {"unknown format", [&](uint64_t id) { return BeginFrame(id, 9, 2) + EndFrame(id, ""); },
       "format 2"},
  };
  std::string file = dir_.Sub("kept.backup");
  std::ofstream(file) << "an older backup";
  for (const Case& c : cases) {
    FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
      peer.SendRaw(c.frames(f.id()));
    });
    testing::CommandRun r = Cairn(server, "backup " + file);
    EXPECT_EQ(r.code, 3) << c.name;
    EXPECT_NE(r.err.find("backup failed; no file was written"), std::string::npos) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.name << ": " << r.err;
    EXPECT_EQ(r.out, "") << c.name;
    EXPECT_FALSE(Exists(file + ".partial")) << c.name;
    EXPECT_EQ(Slurp(file), "an older backup") << c.name;

    // To standard output: what was written has no trailer, and is refused.
    testing::CommandRun piped = Cairn(server, "backup -");
    EXPECT_EQ(piped.code, 3) << c.name;
    EXPECT_NE(piped.err.find("is incomplete"), std::string::npos) << c.name << ": " << piped.err;
    std::string out = dir_.Sub("piped");
    std::ofstream(out) << piped.out;
    EXPECT_FALSE(ReadBackup(out).ok()) << c.name;
  }
}

TEST_F(CliStreamTest, BackupRefusesAPartialFileThatExists) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(SnapshotFrames(f.id(), Pattern(1000)));
  });
  std::string file = dir_.Sub("b.backup");
  std::ofstream(file + ".partial") << "another backup's";
  testing::CommandRun r = Cairn(server, "backup " + file);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find(file + ".partial exists"), std::string::npos) << r.err;
  EXPECT_EQ(Slurp(file + ".partial"), "another backup's");
  EXPECT_FALSE(Exists(file));
  EXPECT_EQ(server.requests(wire::Request::Snapshot), 0);
}

TEST_F(CliStreamTest, BackupInterruptedBySigintLeavesNothingAndSaysSo) {
  const std::string data = Pattern(200000);
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(SnapshotFrames(f.id(), data, -1, /*cut=*/true));
    peer.ClosedByClient(10s);  // the rest never comes
  });
  std::string file = dir_.Sub("i.backup"), err = dir_.Sub("i.err");
  pid_t pid = fork();
  if (pid == 0) {
    setenv("CAIRN_ADDR", server.address().c_str(), 1);
    freopen("/dev/null", "w", stdout);
    freopen(err.c_str(), "w", stderr);
    execl(CAIRN_CLI_PATH, CAIRN_CLI_PATH, "backup", file.c_str(), nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!Exists(file + ".partial") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  std::this_thread::sleep_for(100ms);
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << status;
  EXPECT_FALSE(Exists(file));
  EXPECT_FALSE(Exists(file + ".partial"));
  EXPECT_NE(Slurp(err).find("interrupted: no backup was written"), std::string::npos) << Slurp(err);
}

// --- digest.

TEST_F(CliStreamTest, DigestPrintsTheCommitTheDigestAndTheCounts) {
  std::atomic<uint64_t> at{0};
  std::atomic<uint32_t> wait_ms{0};
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    at = f.request_as_Digest()->at();
    wait_ms = f.request_as_Digest()->wait_ms();
    Fbb fbb;
    auto r = wire::CreateDigestReply(fbb, 77, 0x00dcba9876543210ull, 3, 1000, 2500);
    fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::DigestReply, r.Union()));
    peer.Send(fbb);
    peer.ClosedByClient(10s);
  });
  testing::CommandRun r = Cairn(server, "digest");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "commit 77 digest 00dcba9876543210 (3 collections, 1000 records, 2500 index entries)\n");
  r = Cairn(server, "digest --at 77 --wait 1.5 --json");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, R"({"commit":77,"digest":"00dcba9876543210","collections":3,"records":1000,"index_entries":2500})"
                   "\n");
  EXPECT_EQ(at, 77u);
  EXPECT_EQ(wait_ms, 1500u);
  EXPECT_EQ(Cairn(server, "digest --wait 2").code, 2) << "--wait without --at";
}

TEST_F(CliStreamTest, DigestRefusedByTheServerExitsWithItsMessage) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(ErrorFrame(f.id(), wire::ErrorCode::ConditionFailed,
                            "commit 5 is in the past: the database is at 9"));
    peer.ClosedByClient(10s);
  });
  testing::CommandRun r = Cairn(server, "digest --at 5");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("commit 5 is in the past"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cairn
