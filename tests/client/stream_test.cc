// libcairn's streams (Watcher, SnapshotReader) and Digest against a scripted stand-in
// for cairnd (fake_server.h): what the library makes of good streams, of damaged ones
// (a bad checksum, a gap, an end that disagrees, parts out of order, a cut), of errors,
// of an old server and of a server that outpaces its reader.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "cairn/client/client.h"
#include "fake_server.h"

namespace cairn::client {
namespace {

using testing::FakePeer;
using testing::FakeServer;
using namespace std::chrono_literals;

// --- Frames, as a server would build them.

using Fbb = flatbuffers::FlatBufferBuilder;

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(Fbb& fbb, std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string BeginFrame(uint64_t id, uint64_t commit, std::vector<EpochStart> history = {}) {
  Fbb fbb;
  std::vector<flatbuffers::Offset<wire::EpochStart>> h;
  for (const EpochStart& e : history) {
    h.push_back(wire::CreateEpochStart(fbb, e.epoch, e.id, e.first_commit));
  }
  auto b = wire::CreateSnapshotBegin(fbb, commit, 1, fbb.CreateVector(h));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::SnapshotBegin, b.Union()));
  return FakePeer::Frame(fbb);
}

uint64_t ChunkSum(uint64_t offset, std::string_view data) {
  return XXH3_64bits_withSeed(data.data(), data.size(), offset);
}

std::string ChunkFrame(uint64_t id, uint64_t offset, std::string_view data,
                       std::optional<uint64_t> checksum = std::nullopt) {
  Fbb fbb;
  auto c = wire::CreateSnapshotChunk(fbb, offset, Bytes(fbb, data),
                                     checksum ? *checksum : ChunkSum(offset, data));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::SnapshotChunk, c.Union()));
  return FakePeer::Frame(fbb);
}

std::string EndFrame(uint64_t id, uint64_t size, uint64_t checksum) {
  Fbb fbb;
  auto e = wire::CreateSnapshotEnd(fbb, size, checksum);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::SnapshotEnd, e.Union()));
  return FakePeer::Frame(fbb);
}

std::string ErrorFrame(uint64_t id, wire::ErrorCode code, std::string_view message,
                       uint64_t log_first = 0) {
  Fbb fbb;
  auto e = wire::CreateError(fbb, code, fbb.CreateString(message), -1, -1, log_first);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, e));
  return FakePeer::Frame(fbb);
}

// One change of a WatchEvents frame.
struct WireChange {
  uint64_t commit;
  std::string collection;
  uint8_t kind;  // Change::Kind
  std::string key, value;
  wire::ValueKind value_kind = wire::ValueKind::Document;
  std::optional<IndexSpec> index = std::nullopt;
  uint64_t time_ms = 1700000000000;
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
    v.push_back(wire::CreateWatchChange(fbb, c.commit, fbb.CreateString(c.collection), c.kind,
                                        c.key.empty() ? 0 : Bytes(fbb, c.key), c.value_kind,
                                        c.value.empty() ? 0 : Bytes(fbb, c.value), ix,
                                        c.time_ms));
  }
  auto ev = wire::CreateWatchEvents(fbb, fbb.CreateVector(v), through);
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::WatchEvents, ev.Union()));
  return FakePeer::Frame(fbb);
}

std::string Doc(std::string_view json) { return Document::FromJson(json).bytes(); }

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(rng());
  return s;
}

std::shared_ptr<Client> ConnectTo(const FakeServer& server) {
  ClientOptions o;
  o.address = server.address();
  o.connections = 1;
  return Client::Connect(o);
}

// Runs fn and returns the Error it threw (fails the test if it threw none).
template <typename F>
Error ErrorOf(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCode::kInternal, "no error");
}

// A gate the test opens for the script (bounded: a script never waits forever).
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait(std::chrono::seconds limit = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Reads a whole snapshot; the parts' data put together in *data.
struct ReadSnapshot {
  SnapshotBegin begin;
  std::string data;
  SnapshotEnd end;
  size_t chunks = 0;
};
ReadSnapshot ReadAll(SnapshotReader& r) {
  ReadSnapshot out;
  out.begin = std::get<SnapshotBegin>(r.Next());
  while (true) {
    SnapshotPart p = r.Next();
    if (auto* c = std::get_if<SnapshotChunk>(&p)) {
      EXPECT_EQ(c->offset, out.data.size());
      out.data += c->data;
      out.chunks++;
      continue;
    }
    out.end = std::get<SnapshotEnd>(p);
    return out;
  }
}

// --- Snapshot.

TEST(SnapshotStreamTest, DeliversBeginChunksAndEndInOrder) {
  const std::string data = RandomBytes(3 << 20, 1);
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    ASSERT_EQ(f.request_type(), wire::Request::Snapshot);
    std::string out = BeginFrame(f.id(), 4242, {{1, 11, 1}, {2, 22, 3000}});
    // Chunks of many sizes, several in one send, one sent a byte at a time.
    size_t pos = 0, size = 1;
    while (pos < data.size()) {
      size_t n = std::min(data.size() - pos, size);
      out += ChunkFrame(f.id(), pos, std::string_view(data).substr(pos, n));
      pos += n;
      size = size * 3 + 7;
      if (size > (256 << 10)) size = 100000;
      if (out.size() > (512 << 10)) {
        if (!peer.SendRaw(out)) return;
        out.clear();
      }
    }
    std::string tail = ChunkFrame(f.id(), pos, "") +
                       EndFrame(f.id(), data.size(), XXH3_64bits(data.data(), data.size()));
    if (!peer.SendRaw(out)) return;
    for (char c : tail) {
      if (!peer.SendRaw(std::string_view(&c, 1))) return;
    }
  });
  auto client = ConnectTo(server);
  SnapshotReader reader = client->Snapshot();
  ReadSnapshot got = ReadAll(reader);
  EXPECT_EQ(got.begin.commit, 4242u);
  EXPECT_EQ(got.begin.format, 1u);
  EXPECT_EQ(got.begin.history, (std::vector<EpochStart>{{1, 11, 1}, {2, 22, 3000}}));
  EXPECT_TRUE(got.data == data) << "the bytes differ";
  EXPECT_EQ(got.end.size, data.size());
  EXPECT_EQ(got.end.checksum, XXH3_64bits(data.data(), data.size()));
  EXPECT_TRUE(reader.complete());
  EXPECT_EQ(reader.bytes(), data.size());
  Error after = ErrorOf([&] { reader.Next(); });
  EXPECT_EQ(after.code(), ErrorCode::kBadRequest);
  EXPECT_NE(after.message().find("complete"), std::string::npos) << after.what();
}

// A snapshot stream that `damage` spoils; returns the reader's error, after checking
// that every good part before the damage was delivered first.
Error DamagedSnapshot(const std::function<std::string(uint64_t id, const std::string& data)>& damage,
                      size_t good_chunks) {
  const std::string data = RandomBytes(40000, 2);
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(damage(f.id(), data));
  });
  auto client = ConnectTo(server);
  SnapshotReader reader = client->Snapshot();
  size_t chunks = 0;
  try {
    std::get<SnapshotBegin>(reader.Next());
    while (true) {
      SnapshotPart p = reader.Next();
      if (std::holds_alternative<SnapshotChunk>(p)) {
        chunks++;
      } else {
        ADD_FAILURE() << "a damaged snapshot came to an end";
        break;
      }
    }
  } catch (const Error& e) {
    EXPECT_EQ(chunks, good_chunks) << e.what();
    EXPECT_FALSE(reader.complete());
    // The error stays: the reader never goes on after it.
    Error again = ErrorOf([&] { reader.Next(); });
    EXPECT_EQ(again.code(), e.code());
    return e;
  }
  return Error(ErrorCode::kInternal, "no error");
}

TEST(SnapshotStreamTest, ChunkWithABadChecksumIsRefused) {
  Error e = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        std::string flipped = data.substr(10000, 10000);
        uint64_t sum = ChunkSum(10000, flipped);
        flipped[5000] ^= 1;  // damaged after its checksum was made
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 10000)) +
               ChunkFrame(id, 10000, flipped, sum) + ChunkFrame(id, 20000, data.substr(20000)) +
               EndFrame(id, data.size(), XXH3_64bits(data.data(), data.size()));
      },
      1);
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_NE(e.message().find("offset 10000"), std::string::npos) << e.what();
  EXPECT_NE(e.message().find("checksum"), std::string::npos) << e.what();
}

TEST(SnapshotStreamTest, ChunkChecksumIsSeededWithItsOffset) {
  // The same bytes at another offset need another checksum: a chunk sent twice (or
  // at the wrong place) with its first checksum is refused.
  Error e = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        std::string piece = data.substr(0, 100);
        return BeginFrame(id, 7) + ChunkFrame(id, 0, piece) +
               ChunkFrame(id, 100, piece, ChunkSum(0, piece));
      },
      1);
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_NE(e.message().find("checksum"), std::string::npos) << e.what();
}

TEST(SnapshotStreamTest, GapAndOverlapAreRefused) {
  Error gap = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 1000)) +
               ChunkFrame(id, 2000, data.substr(2000, 1000));
      },
      1);
  EXPECT_EQ(gap.code(), ErrorCode::kProtocol);
  EXPECT_NE(gap.message().find("a gap"), std::string::npos) << gap.what();
  EXPECT_NE(gap.message().find("1000"), std::string::npos) << gap.what();

  Error overlap = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 1000)) +
               ChunkFrame(id, 500, data.substr(500, 1000));
      },
      1);
  EXPECT_EQ(overlap.code(), ErrorCode::kProtocol);
  EXPECT_NE(overlap.message().find("an overlap"), std::string::npos) << overlap.what();
}

TEST(SnapshotStreamTest, StreamCutBeforeItsEndIsAnError) {
  Error cut = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 1000)) +
               ChunkFrame(id, 1000, data.substr(1000, 1000));  // then the server closes
      },
      2);
  EXPECT_EQ(cut.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(cut.message().find("after 2000 bytes"), std::string::npos) << cut.what();
  EXPECT_NE(cut.message().find("before its end"), std::string::npos) << cut.what();

  // Cut inside a frame: its first half arrived.
  Error mid = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        std::string chunk = ChunkFrame(id, 1000, data.substr(1000, 1000));
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 1000)) +
               chunk.substr(0, chunk.size() / 2);
      },
      1);
  EXPECT_EQ(mid.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(mid.message().find("middle of a frame"), std::string::npos) << mid.what();
}

TEST(SnapshotStreamTest, ServerThatClosesBeforeBeginningIsAnError) {
  FakeServer server([](FakePeer&, const wire::RequestFrame&) {});
  auto client = ConnectTo(server);
  SnapshotReader reader = client->Snapshot();
  Error e = ErrorOf([&] { reader.Next(); });
  EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(e.message().find("before the snapshot began"), std::string::npos) << e.what();
}

TEST(SnapshotStreamTest, EndThatDisagreesWithTheBytesIsRefused) {
  Error size = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data) +
               EndFrame(id, data.size() + 1, XXH3_64bits(data.data(), data.size()));
      },
      1);
  EXPECT_EQ(size.code(), ErrorCode::kProtocol);
  EXPECT_NE(size.message().find("40001 bytes"), std::string::npos) << size.what();

  // Every chunk matches its own checksum and the sizes add up, but a chunk's bytes are
  // not the snapshot's (changed before its checksum was made): only the end's checksum
  // of the whole can tell.
  Error sum = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        std::string other = data.substr(100);
        other[7] ^= 1;
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 100)) +
               ChunkFrame(id, 100, other) +
               EndFrame(id, 40000, XXH3_64bits(data.data(), data.size()));
      },
      2);
  EXPECT_EQ(sum.code(), ErrorCode::kProtocol);
  EXPECT_NE(sum.message().find("checksum does not match"), std::string::npos) << sum.what();
}

TEST(SnapshotStreamTest, PartsOutOfOrderAreRefused) {
  Error before = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return ChunkFrame(id, 0, data.substr(0, 10)) + BeginFrame(id, 7);
      },
      0);
  EXPECT_EQ(before.code(), ErrorCode::kProtocol);
  EXPECT_NE(before.message().find("before SnapshotBegin"), std::string::npos) << before.what();

  Error twice = DamagedSnapshot(
      [](uint64_t id, const std::string&) { return BeginFrame(id, 7) + BeginFrame(id, 8); }, 0);
  EXPECT_EQ(twice.code(), ErrorCode::kProtocol);

  Error other = DamagedSnapshot(
      [](uint64_t id, const std::string&) {
        return BeginFrame(id, 7) + EventsFrame(id, {}, 3);
      },
      0);
  EXPECT_EQ(other.code(), ErrorCode::kProtocol);
  EXPECT_NE(other.message().find("WatchEvents"), std::string::npos) << other.what();
}

TEST(SnapshotStreamTest, FrameAfterTheEndIsRefusedButTheEndStands) {
  // A whole, checked snapshot is delivered even if the server then misbehaves: the
  // frame after the end is not data, and the copy was complete.
  const std::string data = RandomBytes(5000, 3);
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(BeginFrame(f.id(), 7) + ChunkFrame(f.id(), 0, data) +
                 EndFrame(f.id(), data.size(), XXH3_64bits(data.data(), data.size())) +
                 ChunkFrame(f.id(), data.size(), "more"));
  });
  auto client = ConnectTo(server);
  SnapshotReader reader = client->Snapshot();
  ReadSnapshot got = ReadAll(reader);
  EXPECT_TRUE(got.data == data);
  EXPECT_TRUE(reader.complete());
}

TEST(SnapshotStreamTest, ErrorFrameEndsTheStreamWithTheServersError) {
  Error e = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return BeginFrame(id, 7) + ChunkFrame(id, 0, data.substr(0, 10)) +
               ErrorFrame(id, wire::ErrorCode::Corrupted, "page 7 is damaged");
      },
      1);
  EXPECT_EQ(e.code(), ErrorCode::kCorrupted);
  EXPECT_EQ(e.message(), "page 7 is damaged");
}

TEST(SnapshotStreamTest, MalformedAndMisaddressedFramesAreRefused) {
  Error junk = DamagedSnapshot(
      [](uint64_t id, const std::string&) {
        std::string f = BeginFrame(id, 7);
        return f + std::string("\x08\x00\x00\x00garbage!", 12);
      },
      0);
  EXPECT_EQ(junk.code(), ErrorCode::kProtocol);
  EXPECT_NE(junk.message().find("malformed"), std::string::npos) << junk.what();

  Error other_id = DamagedSnapshot(
      [](uint64_t id, const std::string& data) {
        return BeginFrame(id, 7) + ChunkFrame(id + 1000, 0, data.substr(0, 10));
      },
      0);
  EXPECT_EQ(other_id.code(), ErrorCode::kProtocol);
  EXPECT_NE(other_id.message().find("a frame for request"), std::string::npos) << other_id.what();
}

// A reader that does not read holds at most its read-ahead: the rest stays in the
// server (whose sends stop), and everything arrives once the reader goes on.
TEST(SnapshotStreamTest, ReaderThatPausesPausesTheServer) {
  const size_t total = 96 << 20, chunk = 256 << 10;
  const std::string piece = RandomBytes(chunk, 4);
  std::atomic<size_t> accepted{0};
  std::atomic<bool> stalled{false};
  Gate go;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    XXH3_state_t* whole = XXH3_createState();
    XXH3_64bits_reset(whole);
    if (!peer.SendRaw(BeginFrame(f.id(), 9))) return;
    for (size_t off = 0; off < total; off += chunk) {
      XXH3_64bits_update(whole, piece.data(), piece.size());
      std::string frame = ChunkFrame(f.id(), off, piece);
      std::string_view rest = frame;
      while (!rest.empty()) {
        size_t n = peer.SendSome(rest, 500ms);
        accepted += n;
        rest.remove_prefix(n);
        if (n == 0 && !stalled) {
          stalled = true;  // the client stopped reading: wait until the test has looked
          if (!go.Wait()) return;
        }
        if (server.stopping()) return;
      }
    }
    peer.SendRaw(EndFrame(f.id(), total, XXH3_64bits_digest(whole)));
    XXH3_freeState(whole);
  });
  auto client = ConnectTo(server);
  SnapshotReader reader = client->Snapshot();
  std::get<SnapshotBegin>(reader.Next());
  std::get<SnapshotChunk>(reader.Next());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!stalled && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(stalled) << "the server never had to wait";
  // 8 MiB of read-ahead and the sockets' buffers: far less than the snapshot.
  EXPECT_LT(accepted.load(), size_t(40) << 20);
  go.Open();
  size_t bytes = chunk;
  while (true) {
    SnapshotPart p = reader.Next();
    if (auto* c = std::get_if<SnapshotChunk>(&p)) {
      bytes += c->data.size();
      continue;
    }
    EXPECT_EQ(std::get<SnapshotEnd>(p).size, total);
    break;
  }
  EXPECT_EQ(bytes, total);
}

TEST(SnapshotStreamTest, ServerSilentForTheIdleTimeoutTimesOut) {
  Gate done;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(BeginFrame(f.id(), 7));
    done.Wait();
  });
  auto client = ConnectTo(server);
  SnapshotReader reader = client->Snapshot({.idle_timeout = 300ms});
  std::get<SnapshotBegin>(reader.Next());
  auto t0 = std::chrono::steady_clock::now();
  Error e = ErrorOf([&] { reader.Next(); });
  done.Open();
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_NE(e.message().find("300 ms"), std::string::npos) << e.what();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

// --- Old servers and connection failures.

TEST(StreamConnectionTest, ServerOlderThanProtocolFiveIsRefusedClearly) {
  FakeServer server([](FakePeer&, const wire::RequestFrame&) { ADD_FAILURE() << "request sent"; },
                    /*protocol=*/4);
  auto client = ConnectTo(server);
  EXPECT_EQ(client->protocol(), 4u);
  SnapshotReader reader = client->Snapshot();
  Error e = ErrorOf([&] { reader.Next(); });
  EXPECT_EQ(e.code(), ErrorCode::kBadRequest);
  EXPECT_EQ(e.message(), "the server speaks protocol 4; streams need 5");
  Watcher w = client->Watch({.collection = "c"});
  EXPECT_EQ(ErrorOf([&] { w.Next(); }).message(), "the server speaks protocol 4; streams need 5");
  Error d = ErrorOf([&] { client->Digest(); });
  EXPECT_EQ(d.code(), ErrorCode::kBadRequest);
  EXPECT_EQ(server.requests(wire::Request::Snapshot) + server.requests(wire::Request::Watch), 0);
}

TEST(StreamConnectionTest, StreamThatCannotConnectFailsAtItsFirstCall) {
  FakeServer server([](FakePeer&, const wire::RequestFrame&) {});
  auto client = ConnectTo(server);
  server.StopListening();  // the pool's connection is up; a new one is refused
  Watcher w = client->Watch({.collection = "c"});
  Error e = ErrorOf([&] { w.Next(); });
  EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(e.message().find("cannot reach cairnd at " + server.address()), std::string::npos)
      << e.what();
  client->Ping();  // the pool is not affected
}

// --- Watch.

TEST(WatchStreamTest, RequestCarriesTheOptions) {
  std::promise<std::tuple<std::string, std::string, uint64_t>> sent;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    const wire::Watch* w = f.request_as_Watch();
    ASSERT_NE(w, nullptr);
    sent.set_value({w->collection() ? w->collection()->str() : "<absent>",
                    w->prefix() ? std::string(reinterpret_cast<const char*>(w->prefix()->data()),
                                              w->prefix()->size())
                                : "<absent>",
                    w->from()});
    peer.SendRaw(EventsFrame(f.id(), {}, 41));
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "orders", .prefix = std::string("o\0/", 3), .from = 41});
  EXPECT_EQ(w.through(), 40u);
  auto [collection, prefix, from] = sent.get_future().get();
  EXPECT_EQ(collection, "orders");
  EXPECT_EQ(prefix, std::string("o\0/", 3));
  EXPECT_EQ(from, 41u);
  WatchBatch b = w.Next();
  EXPECT_TRUE(b.changes.empty());
  EXPECT_EQ(b.through, 41u);

  // Every collection, from now: both fields absent.
  std::promise<std::tuple<std::string, std::string, uint64_t>> sent2;
  FakeServer all([&](FakePeer&, const wire::RequestFrame& f) {
    const wire::Watch* w = f.request_as_Watch();
    sent2.set_value({w->collection() ? "present" : "<absent>", w->prefix() ? "present" : "<absent>",
                     w->from()});
  });
  auto c2 = ConnectTo(all);
  Watcher w2 = c2->Watch();
  auto [c, p, f] = sent2.get_future().get();
  EXPECT_EQ(c, "<absent>");
  EXPECT_EQ(p, "<absent>");
  EXPECT_EQ(f, 0u);
}

TEST(WatchStreamTest, ChangesSplitOverFramesComeAsWholeCommits) {
  Gate first_taken, heartbeat_taken;
  IndexSpec spec{"by_email", {"email", "name"}, true};
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    uint64_t id = f.id();
    // Commit 5's changes in two frames: the first does not move `through` past 4.
    peer.SendRaw(EventsFrame(id, {{5, "c", 0, "a", Doc(R"({"n": 1})")},
                                  {5, "c", 0, "b", Doc(R"({"n": 2})")}},
                             4));
    std::this_thread::sleep_for(50ms);  // the client has read the partial commit alone
    peer.SendRaw(EventsFrame(id, {{5, "c", 1, "old", ""},
                                  {6, "c", 0, "raw", std::string("\xff\x00", 2),
                                   wire::ValueKind::Raw}},
                             6));
    if (!first_taken.Wait()) return;
    peer.SendRaw(EventsFrame(id, {}, 8));  // a heartbeat: 7 and 8 had nothing for us
    if (!heartbeat_taken.Wait()) return;
    peer.SendRaw(EventsFrame(id, {{9, "c", 4, "", "", wire::ValueKind::Document, spec},
                                  {10, "c", 5, "", "", wire::ValueKind::Document,
                                   IndexSpec{"by_age", {}, false}},
                                  {11, "c", 3, "", ""}},
                             11));
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c", .from = 5});

  WatchBatch b = w.Next();
  EXPECT_EQ(b.through, 6u);
  ASSERT_EQ(b.changes.size(), 4u);
  EXPECT_EQ(b.changes[0].commit, 5u);
  EXPECT_EQ(b.changes[0].kind, Change::Kind::kPut);
  EXPECT_EQ(b.changes[0].key, "a");
  EXPECT_EQ(b.changes[0].collection, "c");
  Document first = b.changes[0].document();
  EXPECT_EQ(first["n"].AsInt(), 1);
  EXPECT_EQ(b.changes[0].time_ms, 1700000000000u);
  EXPECT_EQ(b.changes[1].key, "b");
  EXPECT_EQ(b.changes[2].kind, Change::Kind::kDelete);
  EXPECT_EQ(b.changes[2].key, "old");
  EXPECT_TRUE(b.changes[2].value.empty());
  EXPECT_EQ(b.changes[3].commit, 6u);
  EXPECT_EQ(b.changes[3].value_kind, ValueKind::kRaw);
  EXPECT_EQ(b.changes[3].value, std::string("\xff\x00", 2));
  EXPECT_EQ(w.through(), 6u);
  first_taken.Open();

  b = w.Next();
  EXPECT_TRUE(b.changes.empty()) << "a heartbeat";
  EXPECT_EQ(b.through, 8u);
  heartbeat_taken.Open();

  b = w.Next();
  EXPECT_EQ(b.through, 11u);
  ASSERT_EQ(b.changes.size(), 3u);
  EXPECT_EQ(b.changes[0].kind, Change::Kind::kCreateIndex);
  ASSERT_TRUE(b.changes[0].index);
  EXPECT_EQ(b.changes[0].index->name, "by_email");
  EXPECT_EQ(b.changes[0].index->fields, (std::vector<std::string>{"email", "name"}));
  EXPECT_TRUE(b.changes[0].index->unique);
  EXPECT_EQ(b.changes[1].kind, Change::Kind::kDropIndex);
  EXPECT_EQ(b.changes[1].index->name, "by_age");
  EXPECT_EQ(b.changes[2].kind, Change::Kind::kDropCollection);
  EXPECT_EQ(ChangeKindName(b.changes[2].kind), "drop_collection");

  // Then the server ends the stream: the caller is told where to resume.
  Error end = ErrorOf([&] { w.Next(); });
  EXPECT_EQ(end.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(end.message().find("from commit 12"), std::string::npos) << end.what();
}

TEST(WatchStreamTest, PartialCommitIsNotDeliveredWhenTheStreamBreaks) {
  // A commit whose changes were only partly sent is not handed over: resuming from
  // through + 1 then delivers it whole, exactly once.
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(EventsFrame(f.id(), {{3, "c", 0, "a", Doc("{}")}}, 3) +
                 EventsFrame(f.id(), {{4, "c", 0, "b", Doc("{}")}}, 3));
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c", .from = 3});
  std::vector<uint64_t> commits;
  uint64_t through = 0;
  try {
    while (true) {
      WatchBatch b = w.Next();
      for (const Change& c : b.changes) commits.push_back(c.commit);
      through = b.through;
    }
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
  }
  EXPECT_EQ(commits, std::vector<uint64_t>{3});
  EXPECT_EQ(through, 3u);
}

TEST(WatchStreamTest, LogTruncatedCarriesTheOldestCommitKept) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(ErrorFrame(f.id(), wire::ErrorCode::LogTruncated,
                            "commit 3 is no longer in the change log; the oldest kept is 17", 17));
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c", .from = 3});
  Error e = ErrorOf([&] { w.Next(); });
  EXPECT_EQ(e.code(), ErrorCode::kLogTruncated);
  EXPECT_EQ(e.log_first(), 17u);
  EXPECT_NE(e.message().find("oldest kept is 17"), std::string::npos);
  // The stream is over: the same error again.
  Error again = ErrorOf([&] { w.Next(); });
  EXPECT_EQ(again.code(), ErrorCode::kLogTruncated);
  EXPECT_EQ(again.log_first(), 17u);
}

TEST(WatchStreamTest, StreamThatGoesBackIsRefused) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(EventsFrame(f.id(), {{10, "c", 0, "a", Doc("{}")}}, 10) +
                 EventsFrame(f.id(), {}, 9));
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c", .from = 10});
  Error e = ErrorOf([&] {
    while (true) w.Next();
  });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_NE(e.message().find("went back from commit 10 to 9"), std::string::npos) << e.what();

}

TEST(WatchStreamTest, ChangeOutOfOrderIsRefused) {
  for (int variant = 0; variant < 3; variant++) {
    FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
      uint64_t id = f.id();
      if (variant == 0) {  // a commit delivered already comes again
        peer.SendRaw(EventsFrame(id, {{10, "c", 0, "a", Doc("{}")}}, 10) +
                     EventsFrame(id, {{10, "c", 0, "b", Doc("{}")}}, 11));
      } else if (variant == 1) {  // before `from`
        peer.SendRaw(EventsFrame(id, {{8, "c", 0, "a", Doc("{}")}}, 10));
      } else {  // commits out of order within a frame
        peer.SendRaw(EventsFrame(id, {{12, "c", 0, "a", Doc("{}")}, {11, "c", 0, "b", Doc("{}")}},
                                 12));
      }
    });
    auto client = ConnectTo(server);
    Watcher w = client->Watch({.collection = "c", .from = 10});
    Error e = ErrorOf([&] {
      while (true) w.Next();
    });
    EXPECT_EQ(e.code(), ErrorCode::kProtocol) << variant << ": " << e.what();
    EXPECT_NE(e.message().find("out of order"), std::string::npos) << variant << ": " << e.what();
  }
}

TEST(WatchStreamTest, AsynchronousFormsCallbackFutureAndCoroutine) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    for (uint64_t commit = 1; commit <= 3; commit++) {
      peer.SendRaw(EventsFrame(f.id(), {{commit, "c", 0, "k" + std::to_string(commit), Doc("{}")}},
                               commit));
      std::this_thread::sleep_for(20ms);
    }
    peer.ClosedByClient(5s);
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c", .from = 1});

  std::promise<WatchBatch> by_callback;
  w.AsyncNext([&](std::exception_ptr e, WatchBatch b) {
    if (e) return by_callback.set_exception(e);
    by_callback.set_value(std::move(b));
  });
  WatchBatch b1 = by_callback.get_future().get();
  ASSERT_FALSE(b1.changes.empty());
  EXPECT_EQ(b1.changes[0].key, "k1");

  std::vector<std::string> keys;
  for (const Change& c : b1.changes) keys.push_back(c.key);
  while (b1.through < 2 || keys.size() < 2) {
    WatchBatch b = w.AsyncNext(asio::use_future).get();
    for (const Change& c : b.changes) keys.push_back(c.key);
    b1.through = b.through;
  }

  asio::io_context io;
  std::vector<std::string> more;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        while (more.size() + keys.size() < 3) {
          WatchBatch b = co_await w.AsyncNext(asio::use_awaitable);
          for (const Change& c : b.changes) more.push_back(c.key);
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  for (auto& k : more) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"k1", "k2", "k3"}));

  // A second call while one waits is refused; Close fails the one waiting.
  std::future<WatchBatch> waiting = w.AsyncNext(asio::use_future);
  Error twice = ErrorOf([&] { w.AsyncNext(asio::use_future).get(); });
  EXPECT_EQ(twice.code(), ErrorCode::kBadRequest);
  w.Close();
  Error closed = ErrorOf([&] { waiting.get(); });
  EXPECT_EQ(closed.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(closed.message().find("closed"), std::string::npos) << closed.what();
  EXPECT_FALSE(w.is_open());
  EXPECT_EQ(ErrorOf([&] { w.Next(); }).code(), ErrorCode::kBadRequest);
  EXPECT_THROW(w.AsyncNext(asio::use_future), Error);
}

TEST(WatchStreamTest, SynchronousNextFromTheIoThreadIsRefused) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(EventsFrame(f.id(), {}, 1));
    peer.ClosedByClient(5s);
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c"});
  std::promise<ErrorCode> code;
  asio::post(client->executor(), [&] {
    try {
      w.Next();
      code.set_value(ErrorCode::kOk);
    } catch (const Error& e) {
      code.set_value(e.code());
    }
  });
  EXPECT_EQ(code.get_future().get(), ErrorCode::kBadRequest);
}

TEST(WatchStreamTest, WatcherKeepsItsClientAlive) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    std::this_thread::sleep_for(100ms);
    peer.SendRaw(EventsFrame(f.id(), {{1, "c", 0, "k", Doc("{}")}}, 1));
    peer.ClosedByClient(5s);
  });
  Watcher w;
  {
    auto client = ConnectTo(server);
    w = client->Watch({.collection = "c", .from = 1});
  }  // the application's last reference to the client
  WatchBatch b = w.Next();
  ASSERT_EQ(b.changes.size(), 1u);
  EXPECT_EQ(b.changes[0].key, "k");
}

TEST(WatchStreamTest, WatcherThatNeverReadsHoldsBoundedMemory) {
  // The server sends as fast as it can; the watcher takes nothing. What it accepts is
  // bounded by the read-ahead and the sockets, not by what the server has.
  const std::string value = Doc(R"({"pad": ")" + std::string(60000, 'x') + R"("})");
  std::atomic<size_t> accepted{0};
  std::atomic<bool> stalled{false};
  Gate go;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    for (uint64_t commit = 1; commit < 4000 && !server.stopping(); commit++) {
      std::string frame = EventsFrame(f.id(), {{commit, "c", 0, "k", value}}, commit);
      std::string_view rest = frame;
      while (!rest.empty() && !server.stopping()) {
        size_t n = peer.SendSome(rest, 500ms);
        accepted += n;
        rest.remove_prefix(n);
        if (n == 0 && !stalled) {
          stalled = true;
          if (!go.Wait()) return;
        }
      }
    }
  });
  auto client = ConnectTo(server);
  Watcher w = client->Watch({.collection = "c", .from = 1});
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!stalled && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(stalled);
  EXPECT_LT(accepted.load(), size_t(40) << 20);
  go.Open();
  // Reading resumes the stream.
  uint64_t through = 0;
  while (through < 2000) through = w.Next().through;
}

TEST(WatchStreamTest, CommitThatNeverEndsIsRefusedNotBuffered) {
  // Changes of one commit beyond what any commit can hold (the frame limit) without the
  // commit's end: a broken server, refused before it can fill the client's memory.
  const std::string value = Doc(R"({"pad": ")" + std::string(60000, 'x') + R"("})");
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    for (int i = 0; i < 200 && !server.stopping(); i++) {
      if (!peer.SendRaw(EventsFrame(f.id(), {{5, "c", 0, "k" + std::to_string(i), value}}, 4))) {
        return;
      }
    }
    peer.ClosedByClient(5s);
  });
  auto client = ConnectTo(server);  // max_frame 1 MiB: a commit is at most about that
  Watcher w = client->Watch({.collection = "c", .from = 5});
  Error e = ErrorOf([&] { w.Next(); });
  EXPECT_EQ(e.code(), ErrorCode::kProtocol);
  EXPECT_NE(e.message().find("without the commit's end"), std::string::npos) << e.what();
}

// --- Digest.

TEST(DigestTest, AsksAtACommitAndReadsTheReply) {
  std::promise<std::pair<uint64_t, uint32_t>> asked;
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    const wire::Digest* d = f.request_as_Digest();
    ASSERT_NE(d, nullptr);
    asked.set_value({d->at(), d->wait_ms()});
    Fbb fbb;
    auto r = wire::CreateDigestReply(fbb, 77, 0xfedcba9876543210ull, 3, 1000, 2500);
    fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::DigestReply, r.Union()));
    peer.Send(fbb);
    peer.ClosedByClient(5s);
  });
  auto client = ConnectTo(server);
  DatabaseDigest d = client->Digest(77, 2500ms);
  EXPECT_EQ(d.commit, 77u);
  EXPECT_EQ(d.digest, 0xfedcba9876543210ull);
  EXPECT_EQ(d.collections, 3u);
  EXPECT_EQ(d.records, 1000u);
  EXPECT_EQ(d.index_entries, 2500u);
  auto [at, wait] = asked.get_future().get();
  EXPECT_EQ(at, 77u);
  EXPECT_EQ(wait, 2500u);
}

TEST(DigestTest, ServersRefusalIsTheError) {
  FakeServer server([&](FakePeer& peer, const wire::RequestFrame& f) {
    peer.SendRaw(ErrorFrame(f.id(), wire::ErrorCode::Unavailable,
                            "commit 90 not reached within 100 ms (at 80)"));
    peer.ClosedByClient(5s);
  });
  auto client = ConnectTo(server);
  Error e = ErrorOf([&] { client->AsyncDigest(90, 100ms, asio::use_future).get(); });
  EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  EXPECT_NE(e.message().find("not reached"), std::string::npos);
}

}  // namespace
}  // namespace cairn::client
