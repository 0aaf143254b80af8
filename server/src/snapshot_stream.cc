// The Snapshot stream (docs/protocol.md, "Snapshot"): a hot, consistent, compacted copy of
// the database (Engine::StartSnapshot), sent as SnapshotBegin, SnapshotChunks and
// SnapshotEnd. The copy is read from its pipe only while the connection's output has
// room, so a slow client holds back LMDB's copying thread, not the server's memory.
#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "cairn_generated.h"
#include "convert.h"
#include "streams.h"

namespace cairn::server {
namespace {

using flatbuffers::Offset;

// Bytes per SnapshotChunk: large enough that framing costs nothing, small enough for
// any --max-frame (64 KiB at least).
constexpr size_t kChunk = size_t{1} << 20;

Offset<flatbuffers::Vector<Offset<wire::EpochStart>>> History(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<EpochStart>& history) {
  std::vector<Offset<wire::EpochStart>> v;
  for (const EpochStart& e : history) {
    v.push_back(wire::CreateEpochStart(fbb, e.epoch, e.id, e.first_commit));
  }
  return fbb.CreateVector(v);
}

class SnapshotStream : public Stream {
 public:
  SnapshotStream(ServerContext& ctx, std::unique_ptr<SnapshotCopy> copy)
      : ctx_(ctx),
        copy_(std::move(copy)),
        chunk_size_(std::min(kChunk, size_t(ctx.options->max_frame) / 2)),
        state_(XXH3_createState()) {
    XXH3_64bits_reset(state_);
    buf_.resize(chunk_size_);
  }
  ~SnapshotStream() override {
    Stop();
    XXH3_freeState(state_);
  }

  void Produce(StreamOutput& out) override {
    if (!began_) Begin(out);
    while (!out.Full() && !done_) {
      // Fill a chunk from the pipe; the pipe is non-blocking, and an empty one is waited
      // for (the copying thread is behind the socket).
      while (filled_ < chunk_size_) {
        ssize_t n = ::read(copy_->fd(), buf_.data() + filled_, chunk_size_ - filled_);
        if (n > 0) {
          filled_ += size_t(n);
          continue;
        }
        if (n == 0) {
          eof_ = true;
          break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WaitForPipe(out);
        return Failed(out, Status(Code::kInternal,
                                  std::string("reading the snapshot: ") + std::strerror(errno)));
      }
      if (filled_ > 0) SendChunk(out);
      if (eof_) return Finish(out);
    }
  }

  void Stop() override {
    if (pipe_) {
      pipe_->release();  // the descriptor is the copy's
      pipe_.reset();
    }
    copy_.reset();  // stops the copy if it is still running
  }

 private:
  void Begin(StreamOutput& out) {
    began_ = true;
    int flags = ::fcntl(copy_->fd(), F_GETFL);
    if (flags >= 0) ::fcntl(copy_->fd(), F_SETFL, flags | O_NONBLOCK);
    pipe_ = std::make_unique<asio::posix::stream_descriptor>(out.executor(), copy_->fd());
    auto& fbb = out.builder();
    fbb.Clear();
    auto begin = wire::CreateSnapshotBegin(fbb, copy_->commit(), 1, History(fbb, copy_->history()));
    fbb.Finish(
        wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::SnapshotBegin, begin.Union()));
    out.Send();
    spdlog::info("snapshot for {}: commit {}", out.peer(), copy_->commit());
  }

  void WaitForPipe(StreamOutput& out) {
    if (waiting_) return;
    waiting_ = true;
    pipe_->async_wait(asio::posix::stream_descriptor::wait_read,
                      [this, &out](const asio::error_code& ec) {
                        if (ec) return;  // stopped: the stream is going away
                        waiting_ = false;
                        out.Wake();
                      });
  }

  void SendChunk(StreamOutput& out) {
    auto& fbb = out.builder();
    fbb.Clear();
    std::string_view data(buf_.data(), filled_);
    uint64_t sum = XXH3_64bits_withSeed(data.data(), data.size(), offset_);
    XXH3_64bits_update(state_, data.data(), data.size());
    auto bytes = fbb.CreateVector(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    auto chunk = wire::CreateSnapshotChunk(fbb, offset_, bytes, sum);
    fbb.Finish(
        wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::SnapshotChunk, chunk.Union()));
    out.Send();
    offset_ += filled_;
    filled_ = 0;
  }

  void Finish(StreamOutput& out) {
    done_ = true;
    if (pipe_) {
      pipe_->release();
      pipe_.reset();
    }
    Status s = copy_->Finish();
    if (!s.ok()) return Failed(out, s);
    auto& fbb = out.builder();
    fbb.Clear();
    auto end = wire::CreateSnapshotEnd(fbb, offset_, XXH3_64bits_digest(state_));
    fbb.Finish(wire::CreateResponseFrame(fbb, out.id(), 0, wire::Reply::SnapshotEnd, end.Union()));
    out.Send();
    ctx_.stats->snapshot_bytes += offset_;
    spdlog::info("snapshot for {} sent: {} bytes at commit {}", out.peer(), offset_,
                 copy_->commit());
    out.End();
  }

  void Failed(StreamOutput& out, const Status& s) {
    done_ = true;
    spdlog::warn("snapshot for {} failed: {}", out.peer(), s.ToString());
    out.Fail(s);
  }

  ServerContext& ctx_;
  std::unique_ptr<SnapshotCopy> copy_;
  const size_t chunk_size_;
  XXH3_state_t* state_;
  std::unique_ptr<asio::posix::stream_descriptor> pipe_;  // for waiting on the pipe
  std::vector<char> buf_;
  size_t filled_ = 0;
  uint64_t offset_ = 0;
  bool began_ = false, waiting_ = false, eof_ = false, done_ = false;
};

}  // namespace

Result<std::unique_ptr<Stream>> MakeSnapshotStream(ServerContext& ctx) {
  auto copy = ctx.engine->StartSnapshot();
  if (!copy.ok()) return copy.status();
  ctx.stats->snapshot_streams++;
  return std::unique_ptr<Stream>(std::make_unique<SnapshotStream>(ctx, std::move(copy).value()));
}

}  // namespace cairn::server
