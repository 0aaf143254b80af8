// The connection's ordering rules and frame buffer, without sockets
// (server/src/sequencer.h, server/src/frame_buffer.h).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "frame_buffer.h"
#include "sequencer.h"

namespace cairn::server {
namespace {

using Item = Sequencer::Item;

Item Request(std::string name, bool write) {
  return Item{std::move(name), Sequencer::Clock::now(), write, std::nullopt, 0};
}
Item ErrorItem(uint64_t id) {
  return Item{std::string(), Sequencer::Clock::now(), false, Status(Code::kBadRequest, "bad"), id};
}

TEST(SequencerTest, ReadsRunAtOnceWhenNothingIsOut) {
  Sequencer s;
  EXPECT_TRUE(s.MayRun(false));
  EXPECT_TRUE(s.MayRun(true));
  EXPECT_TRUE(s.MayAnswer());
  EXPECT_TRUE(s.idle());
}

TEST(SequencerTest, WritesPipelineButAReadWaitsForEveryEarlierWrite) {
  Sequencer s;
  s.HandedOff();  // write 1 with the writer
  EXPECT_TRUE(s.MayRun(true)) << "a second write goes to the writer behind the first";
  s.HandedOff();  // write 2
  EXPECT_FALSE(s.MayRun(false)) << "a read must see both writes";
  EXPECT_FALSE(s.MayAnswer());
  s.Wait(Request("read", false));
  EXPECT_FALSE(s.MayRun(true)) << "a write behind a waiting read waits too";
  s.Wait(Request("write 3", true));
  EXPECT_EQ(s.inflight(), 4u);
  EXPECT_FALSE(s.Next()) << "the read cannot run while writes are out";
  s.Answered();
  EXPECT_FALSE(s.Next());
  s.Answered();
  auto next = s.Next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->payload, "read");
  next = s.Next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->payload, "write 3");
  EXPECT_FALSE(s.Next());
  EXPECT_TRUE(s.idle());
}

TEST(SequencerTest, AWriteAtTheFrontRunsWhileOtherWritesAreOut) {
  Sequencer s;
  s.HandedOff();
  s.Wait(Request("write", true));
  auto next = s.Next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->payload, "write");
}

TEST(SequencerTest, ErrorsAreAnsweredInTheirTurn) {
  Sequencer s;
  s.HandedOff();           // a write is out
  s.Wait(ErrorItem(7));    // a bad frame after it
  s.Wait(Request("read", false));
  EXPECT_FALSE(s.Next()) << "the error's answer must not overtake the write's";
  s.Answered();
  auto e = s.Next();
  ASSERT_TRUE(e && e->error);
  EXPECT_EQ(e->error_id, 7u);
  auto r = s.Next();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload, "read");
}

TEST(SequencerTest, AnErrorFoundInTurnGoesAheadOfLaterRequests) {
  Sequencer s;
  s.HandedOff();                  // write 1 out
  s.Wait(Request("read", false));  // arrived after write 2 was taken up
  s.WaitFirst(ErrorItem(2));       // write 2 did not decode: answered before the read
  s.Answered();
  auto e = s.Next();
  ASSERT_TRUE(e && e->error);
  EXPECT_EQ(e->error_id, 2u);
  auto r = s.Next();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload, "read");
}

TEST(SequencerTest, TakeIgnoresWhatIsOut) {
  Sequencer s;
  s.HandedOff();
  s.Wait(Request("frame for the stream", false));
  EXPECT_FALSE(s.Next());
  auto t = s.Take();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->payload, "frame for the stream");
  EXPECT_FALSE(s.Take());
}

// --- FrameBuffer

std::string Framed(std::string_view payload) {
  std::string f(wire::kFrameHeaderSize, '\0');
  wire::StoreFrameHeader(f.data(), uint32_t(payload.size()));
  return f + std::string(payload);
}

void Feed(FrameBuffer& b, std::string_view bytes, uint32_t max_frame) {
  while (!bytes.empty()) {
    auto [room, size] = b.Room(max_frame);
    ASSERT_GT(size, 0u);
    size_t n = std::min(size, bytes.size());
    std::memcpy(room, bytes.data(), n);
    b.Filled(n);
    bytes.remove_prefix(n);
  }
}

TEST(FrameBufferTest, FramesComeOutWholeAcrossReads) {
  FrameBuffer b;
  std::string two = Framed("hello") + Framed("world!");
  std::string_view p;
  Feed(b, std::string_view(two).substr(0, 3), 1024);
  EXPECT_EQ(b.Next(1024, &p), wire::FrameStatus::kNeedMore);
  EXPECT_FALSE(b.HasFrame(1024));
  Feed(b, std::string_view(two).substr(3), 1024);
  EXPECT_TRUE(b.HasFrame(1024));
  ASSERT_EQ(b.Next(1024, &p), wire::FrameStatus::kComplete);
  EXPECT_EQ(p, "hello");
  ASSERT_EQ(b.Next(1024, &p), wire::FrameStatus::kComplete);
  EXPECT_EQ(p, "world!");
  EXPECT_EQ(b.Next(1024, &p), wire::FrameStatus::kNeedMore);
  EXPECT_TRUE(b.empty());
}

TEST(FrameBufferTest, AHeaderOverTheLimitIsRefusedBeforeItsBytes) {
  FrameBuffer b;
  char header[wire::kFrameHeaderSize];
  wire::StoreFrameHeader(header, 5000);
  Feed(b, std::string_view(header, sizeof header), 4096);
  std::string_view p;
  EXPECT_EQ(b.Next(4096, &p), wire::FrameStatus::kTooLarge);
  EXPECT_EQ(b.Next(8192, &p), wire::FrameStatus::kNeedMore) << "within a larger limit it waits";
}

TEST(FrameBufferTest, GrowsByDoublingAsBytesArriveNotToWhatAHeaderAnnounces) {
  const uint32_t max_frame = 16 << 20;
  FrameBuffer b;
  char header[wire::kFrameHeaderSize];
  wire::StoreFrameHeader(header, max_frame);  // announces 16 MiB
  Feed(b, std::string_view(header, sizeof header), max_frame);
  EXPECT_EQ(b.capacity(), FrameBuffer::kInitial) << "a header alone does not grow the buffer";
  // Send 200 KiB of the frame: the buffer holds at most twice what arrived.
  Feed(b, std::string(200 << 10, 'x'), max_frame);
  EXPECT_LE(b.capacity(), 2 * ((200 << 10) + sizeof header));
  std::string_view p;
  EXPECT_EQ(b.Next(max_frame, &p), wire::FrameStatus::kNeedMore);
}

TEST(FrameBufferTest, ShrinksBackOnceALargeFrameIsTaken) {
  FrameBuffer b;
  std::string big = Framed(std::string(1 << 20, 'y'));
  Feed(b, big, 2 << 20);
  EXPECT_GT(b.capacity(), 4 * FrameBuffer::kInitial);
  std::string_view p;
  ASSERT_EQ(b.Next(2 << 20, &p), wire::FrameStatus::kComplete);
  EXPECT_EQ(p.size(), size_t(1 << 20));
  b.Room(2 << 20);
  EXPECT_EQ(b.capacity(), FrameBuffer::kInitial);
}

TEST(FrameBufferTest, EmptyFramesAreConsumed) {
  FrameBuffer b;
  Feed(b, Framed("") + Framed("x"), 1024);
  std::string_view p;
  EXPECT_EQ(b.Next(1024, &p), wire::FrameStatus::kEmpty);
  ASSERT_EQ(b.Next(1024, &p), wire::FrameStatus::kComplete);
  EXPECT_EQ(p, "x");
}

}  // namespace
}  // namespace cairn::server
