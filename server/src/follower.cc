#include "follower.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <spdlog/spdlog.h>

#include "cairn/protocol/codes.h"
#include "cairn/protocol/frame.h"
#include "cairn/protocol/scram.h"
#include "cairn_generated.h"
#include "convert.h"
#include "frame_buffer.h"
#include "replicas.h"
#include "server.h"

namespace cairn::server {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;

namespace {

constexpr auto kConnectTimeout = 3s;
// The primary sends a heartbeat every second: a silence this long is a dead connection.
constexpr auto kReadTimeout = 5s;
constexpr auto kBackoffFirst = 100ms;
constexpr auto kBackoffMax = 2s;
constexpr const char* kBootstrapDir = ".bootstrap";
constexpr const char* kMarker = "replica-of";
constexpr size_t kWritePiece = 64 << 10;

// The error a response carries, as a Status (Error.log_first in *log_first).
Status ErrorOf(const wire::ResponseFrame* r, uint64_t* log_first = nullptr) {
  const wire::Error* e = r->error();
  if (!e) return Status::Ok();
  if (log_first) *log_first = e->log_first();
  return Status(wire::FromWire(e->code()), std::string(View(e->message())));
}

Status Errno(const std::string& what) {
  return Status(Code::kInternal, what + ": " + std::strerror(errno));
}

Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync " + path);
  return Status::Ok();
}

}  // namespace

// --- The connection to the primary.

class Follower::Session {
 public:
  Session(asio::io_context& io, uint32_t max_frame)
      : socket_(io), timer_(io), wait_timer_(io), max_frame_(max_frame) {}

  awaitable<Status> Connect(const std::string& hostport) {
    std::string host, port;
    if (!ParseHostPort(hostport, &host, &port)) {
      co_return Status(Code::kBadRequest, "--replica-of wants HOST:PORT, not '" + hostport + "'");
    }
    asio::ip::tcp::resolver resolver(socket_.get_executor());
    asio::error_code ec;
    auto results = co_await resolver.async_resolve(host, port, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return Status(Code::kUnavailable, "cannot resolve " + hostport + ": " + ec.message());
    Arm(kConnectTimeout);
    co_await asio::async_connect(socket_, results, asio::redirect_error(use_awaitable, ec));
    timer_.cancel();
    if (ec) co_return Status(Code::kUnavailable, "cannot connect to " + hostport + ": " + ec.message());
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    co_return Status::Ok();
  }

  awaitable<Status> Write(const flatbuffers::FlatBufferBuilder& fbb) {
    std::string frame(wire::kFrameHeaderSize, '\0');
    wire::StoreFrameHeader(frame.data(), fbb.GetSize());
    frame.append(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    asio::error_code ec;
    Arm(kReadTimeout);
    co_await asio::async_write(socket_, asio::buffer(frame), asio::redirect_error(use_awaitable, ec));
    timer_.cancel();
    if (ec) co_return Status(Code::kUnavailable, "sending to the primary: " + ec.message());
    co_return Status::Ok();
  }

  // The next response frame (verified), waiting at most kReadTimeout for each read.
  // The pointer is valid until the next call.
  awaitable<Status> Next(const wire::ResponseFrame** out) {
    for (;;) {
      Status s = Parse(out);
      if (!s.ok() || *out) co_return s;
      if (Status r = co_await ReadSome(); !r.ok()) co_return r;
    }
  }

  // Whether a whole frame is buffered, or bytes are waiting in the socket: then the
  // follower takes them into the current batch before applying it.
  bool HasFrame() const { return in_.HasFrame(max_frame_); }
  bool BytesWaiting() {
    asio::error_code ec;
    return socket_.available(ec) > 0 && !ec;
  }

  // Waits until bytes arrive, at most `d`; whether they did. Nothing is read.
  awaitable<bool> WaitReadable(std::chrono::steady_clock::duration d) {
    wait_timer_.expires_after(d);
    wait_timer_.async_wait([this, gen = ++wait_gen_](const asio::error_code& ec) {
      if (ec || gen != wait_gen_) return;
      asio::error_code ignored;
      socket_.cancel(ignored);  // only the wait below is pending on the socket
    });
    asio::error_code ec;
    co_await socket_.async_wait(asio::ip::tcp::socket::wait_read,
                                asio::redirect_error(use_awaitable, ec));
    ++wait_gen_;  // a timer that fired meanwhile must not cancel a later read
    wait_timer_.cancel();
    co_return !ec;
  }

  void Close() {
    asio::error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    timer_.cancel();
  }

 private:
  // A timeout for the operation about to start: closes the socket if it passes.
  void Arm(std::chrono::steady_clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([this, gen = ++gen_](const asio::error_code& ec) {
      if (ec || gen != gen_) return;
      timed_out_ = true;
      asio::error_code ignored;
      socket_.close(ignored);
    });
  }

  Status Parse(const wire::ResponseFrame** out) {
    *out = nullptr;
    std::string_view payload;
    switch (in_.Next(max_frame_, &payload)) {
      case wire::FrameStatus::kNeedMore:
        return Status::Ok();
      case wire::FrameStatus::kTooLarge:
        return Status(Code::kTooLarge, "the primary sent a frame over " +
                                           std::to_string(max_frame_) +
                                           " bytes: give this replica the primary's --max-frame");
      case wire::FrameStatus::kEmpty:
        return Status(Code::kBadRequest, "the primary sent an empty frame");
      case wire::FrameStatus::kComplete:
        break;
    }
    if (!wire::VerifyResponseFrame(payload)) {
      return Status(Code::kBadRequest, "the primary sent a frame that is not a valid ResponseFrame");
    }
    *out = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
    return Status::Ok();
  }

  awaitable<Status> ReadSome() {
    auto [room, size] = in_.Room(max_frame_);
    asio::error_code ec;
    Arm(kReadTimeout);
    size_t n = co_await socket_.async_read_some(asio::buffer(room, size),
                                                asio::redirect_error(use_awaitable, ec));
    timer_.cancel();
    if (timed_out_) co_return Status(Code::kTimeout, "the primary sent nothing for 5 s");
    if (ec == asio::error::eof) co_return Status(Code::kUnavailable, "the primary closed the connection");
    if (ec) co_return Status(Code::kUnavailable, "reading from the primary: " + ec.message());
    in_.Filled(n);
    co_return Status::Ok();
  }

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  asio::steady_timer wait_timer_;  // WaitReadable's
  const uint32_t max_frame_;
  uint64_t gen_ = 0, wait_gen_ = 0;
  bool timed_out_ = false;
  FrameBuffer in_;
};

// --- Follower.

Follower::Follower(FollowerOptions options, Engine& engine, CommitFeed& commits,
                   ReplicaState& state, std::function<void()> swap_ready)
    : options_(std::move(options)),
      engine_(engine),
      commits_(commits),
      state_(state),
      swap_ready_(std::move(swap_ready)),
      // Until the first bootstrap or Follow, an empty replica has nothing to serve.
      initial_bootstrap_(engine.LastCommit() == 0 && !state.promoted && !state.diverged) {}

Follower::~Follower() { Stop(); }

std::string Follower::ReplicaMarker(const std::string& dir) {
  fs::path path = fs::path(dir) / kMarker;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::string();
  std::ifstream in(path);
  std::string primary;
  std::getline(in, primary);
  return primary.empty() ? "an unknown primary" : primary;
}

// Written once (a temporary file renamed, then the folder synced) before following.
static Status WriteMarker(const std::string& dir, const std::string& primary) {
  fs::path target = fs::path(dir) / kMarker;
  std::error_code ec;
  if (fs::exists(target, ec)) return Status::Ok();
  std::string tmp = target.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << primary << "\n";
    if (!out.flush()) return Status(Code::kInternal, "cannot write " + tmp);
  }
  if (Status s = SyncPath(tmp, O_RDONLY); !s.ok()) return s;
  if (::rename(tmp.c_str(), target.c_str()) != 0) return Errno("rename " + tmp);
  return SyncPath(dir, O_RDONLY | O_DIRECTORY);
}

void Follower::Start(const std::string& address) {
  options_.address = address;
  if (options_.name.empty()) options_.name = address;
  if (!state_.promoted) {
    if (Status s = WriteMarker(options_.data_dir, options_.primary); !s.ok()) {
      spdlog::error("cannot mark {} as a replica's folder: {}", options_.data_dir, s.ToString());
    }
  }
  // A diverged or promoted node follows nothing, but its thread still serves Promote.
  if (!state_.promoted && !state_.diverged) asio::co_spawn(io_, Run(), asio::detached);
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      spdlog::error("replication stopped by an internal error: {}", e.what());
      state_.set_error(std::string("internal error: ") + e.what());
    }
  });
}

void Follower::Stop() {
  if (stopped_.exchange(true)) return;
  asio::post(io_, [this] {
    stopping_ = true;
    if (session_) session_->Close();
  });
  // Anything still waiting (a backoff timer, a notice to an old primary) ends with the loop.
  asio::post(io_, [this] { io_.stop(); });
  work_.reset();
  if (thread_.joinable()) thread_.join();
}

awaitable<void> Follower::Run() {
  auto backoff = std::chrono::milliseconds(kBackoffFirst);
  while (!stopping_) {
    uint64_t before = engine_.LastCommit();
    uint64_t bootstraps = state_.bootstraps.load();
    session_ = std::make_shared<Session>(io_, options_.max_frame);
    std::shared_ptr<Session> s = session_;
    Status st = co_await s->Connect(options_.primary);
    if (st.ok()) st = co_await Handshake(*s, "cairnd replica " + options_.name);
    if (st.code() == Code::kAuthFailed) {
      spdlog::error("the primary {} refused this replica's credentials: {} (--replica-user, "
                    "--replica-password-file)", options_.primary, st.message());
    }
    bool swap = false;
    if (st.ok()) {
      if (need_bootstrap_ || (engine_.LastCommit() == 0 && !primary_empty_)) {
        st = co_await Bootstrap(*s, &swap);
      } else {
        st = co_await Follow(*s);
      }
    }
    s->Close();
    session_.reset();
    if (stopping_) break;
    if (st.ok() && !swap) continue;  // an empty primary: nothing to copy, follow it at once
    if (swap) {
      spdlog::info("bootstrap complete: restarting the server on the new data");
      swap_ready_();
      co_return;
    }
    if (st.code() == Code::kDiverged) {
      spdlog::error("REPLICATION STOPPED: {}", st.message());
      state_.diverged = true;
      state_.set_error(st.message());
      co_return;
    }
    if (st.code() == Code::kLogTruncated) {
      spdlog::warn("the primary no longer has this replica's next commit ({}); bootstrapping "
                   "again: {}", engine_.LastCommit() + 1, st.message());
      need_bootstrap_ = true;
      continue;  // at once: the primary is there
    }
    state_.reconnects++;
    if (engine_.LastCommit() != before || state_.bootstraps.load() != bootstraps) {
      backoff = kBackoffFirst;  // it was making progress: try again soon
    }
    spdlog::warn("replication from {}: {}; reconnecting in {} ms", options_.primary,
                 st.ToString(), backoff.count());
    asio::steady_timer t(io_, backoff);
    co_await t.async_wait(asio::redirect_error(use_awaitable, ignored_));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
  }
}


awaitable<Status> Follower::Handshake(Session& s, const std::string& client) {
  flatbuffers::FlatBufferBuilder fbb;
  auto hello = wire::CreateHello(fbb, wire::kProtocolVersion, fbb.CreateString(client));
  fbb.Finish(wire::CreateRequestFrame(fbb, 1, wire::Request::Hello, hello.Union()));
  Status st = co_await s.Write(fbb);
  const wire::ResponseFrame* r = nullptr;
  if (st.ok()) st = co_await s.Next(&r);
  if (st.ok()) st = ErrorOf(r);
  if (!st.ok()) co_return st;
  uint32_t version = r->reply_type() == wire::Reply::HelloReply
                         ? r->reply_as_HelloReply()->protocol_version() : 0;
  if (version < 5) {
    co_return Status(Code::kBadRequest, "the primary does not speak protocol 5 (replication)");
  }
  if (options_.user.empty()) co_return Status::Ok();
  if (version < 6) {
    co_return Status(Code::kBadRequest, "the primary does not speak protocol 6 (authentication), "
                                        "so --replica-user cannot be used with it");
  }
  // SCRAM-SHA-256 (docs/security.md): the same exchange as libcairn's.
  scram::Client scram(options_.user, options_.password);
  std::string first = scram.Start();
  auto bytes = [&](const std::string& m) {
    return fbb.CreateVector(reinterpret_cast<const uint8_t*>(m.data()), m.size());
  };
  fbb.Clear();
  auto start = wire::CreateAuthStart(fbb, fbb.CreateString(scram::kMechanism), bytes(first));
  fbb.Finish(wire::CreateRequestFrame(fbb, 2, wire::Request::AuthStart, start.Union()));
  st = co_await s.Write(fbb);
  if (st.ok()) st = co_await s.Next(&r);
  if (st.ok()) st = ErrorOf(r);
  if (!st.ok()) co_return st;
  if (!r->reply_as_AuthChallenge()) co_return Status(Code::kBadRequest, "no AuthChallenge");
  std::string error;
  std::optional<std::string> final = scram.Challenge(View(r->reply_as_AuthChallenge()->message()),
                                                     &error);
  if (!final) co_return Status(Code::kAuthFailed, "the primary's challenge: " + error);
  fbb.Clear();
  auto cont = wire::CreateAuthContinue(fbb, bytes(*final));
  fbb.Finish(wire::CreateRequestFrame(fbb, 3, wire::Request::AuthContinue, cont.Union()));
  st = co_await s.Write(fbb);
  if (st.ok()) st = co_await s.Next(&r);
  if (st.ok()) st = ErrorOf(r);
  if (!st.ok()) co_return st;
  if (!r->reply_as_AuthOk() || !scram.Verify(View(r->reply_as_AuthOk()->message()), &error)) {
    co_return Status(Code::kAuthFailed, "the primary did not prove it knows this replica's "
                                        "credentials: " + error);
  }
  co_return Status::Ok();
}

// --- Bootstrap.

awaitable<Status> Follower::Bootstrap(Session& s, bool* swap) {
  initial_bootstrap_ = engine_.LastCommit() == 0;
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, 2, wire::Request::Snapshot,
                                      wire::CreateSnapshot(fbb).Union()));
  if (Status st = co_await s.Write(fbb); !st.ok()) co_return st;
  const wire::ResponseFrame* r = nullptr;
  if (Status st = co_await s.Next(&r); !st.ok()) co_return st;
  if (Status st = ErrorOf(r); !st.ok()) co_return st;
  auto begin = r->reply_as_SnapshotBegin();
  if (!begin) co_return Status(Code::kBadRequest, "the primary answered Snapshot without SnapshotBegin");
  if (begin->format() != 1) {
    co_return Status(Code::kBadRequest, "the primary's snapshot format " +
                                            std::to_string(begin->format()) +
                                            " is not one this replica reads (1)");
  }
  const uint64_t commit = begin->commit();
  if (commit == 0 && engine_.LastCommit() == 0) {
    // The primary has no commit yet: there is nothing to copy, and following it from
    // commit 1 gives the same database.
    primary_empty_ = true;
    co_return Status::Ok();
  }
  spdlog::info("bootstrapping from {}: snapshot at commit {}", options_.primary, commit);

  fs::path dir = fs::path(options_.data_dir) / kBootstrapDir;
  std::error_code fec;
  fs::remove_all(dir, fec);
  fs::create_directories(dir, fec);
  if (fec) co_return Status(Code::kInternal, "cannot create " + dir.string() + ": " + fec.message());
  std::string part = (dir / "data.mdb.part").string();
  int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) co_return Errno("open " + part);
  XXH3_state_t* sum = XXH3_createState();
  XXH3_64bits_reset(sum);
  uint64_t offset = 0;
  Status st;
  auto started = std::chrono::steady_clock::now();
  for (;;) {
    if (st = co_await s.Next(&r); !st.ok()) break;
    if (st = ErrorOf(r); !st.ok()) break;
    if (auto c = r->reply_as_SnapshotChunk()) {
      std::string_view data = View(c->data());
      if (c->offset() != offset) {
        st = Status(Code::kCorrupted, "snapshot chunk at offset " + std::to_string(c->offset()) +
                                          ", expected " + std::to_string(offset));
        break;
      }
      if (XXH3_64bits_withSeed(data.data(), data.size(), offset) != c->checksum()) {
        st = Status(Code::kCorrupted, "snapshot chunk at offset " + std::to_string(offset) +
                                          " fails its checksum");
        break;
      }
      XXH3_64bits_update(sum, data.data(), data.size());
      while (!data.empty()) {
        // In pieces of 64 KiB: on the development VM larger writes into the page cache
        // are several times slower (the backup restore found the same).
        ssize_t n = ::write(fd, data.data(), std::min<size_t>(data.size(), kWritePiece));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          st = Errno("write " + part);
          break;
        }
        data.remove_prefix(size_t(n));
      }
      if (!st.ok()) break;
      offset += c->data() ? c->data()->size() : 0;
      continue;
    }
    if (auto e = r->reply_as_SnapshotEnd()) {
      if (e->size() != offset || e->checksum() != XXH3_64bits_digest(sum)) {
        st = Status(Code::kCorrupted, "the snapshot received (" + std::to_string(offset) +
                                          " bytes) does not match its end (" +
                                          std::to_string(e->size()) + " bytes, checksum)");
      }
      break;
    }
    st = Status(Code::kBadRequest, "unexpected reply in a snapshot stream");
    break;
  }
  XXH3_freeState(sum);
  if (st.ok() && ::fsync(fd) != 0) st = Errno("fsync " + part);
  ::close(fd);
  std::string whole = (dir / "data.mdb").string();
  if (st.ok() && ::rename(part.c_str(), whole.c_str()) != 0) st = Errno("rename " + part);
  if (st.ok()) st = SyncPath(dir.string(), O_RDONLY | O_DIRECTORY);
  if (st.ok()) {
    // The bytes are the primary's; that they make a database of this build's format is
    // checked by opening it.
    Options ro;
    ro.read_only = true;
    ro.max_size = engine_.options().max_size;
    auto check = Engine::Open(dir.string(), ro);
    if (!check.ok()) {
      st = Status(Code::kCorrupted, "the snapshot received does not open: " + check.status().ToString());
    } else if ((*check)->LastCommit() != commit) {
      st = Status(Code::kCorrupted, "the snapshot received holds commit " +
                                        std::to_string((*check)->LastCommit()) + ", not " +
                                        std::to_string(commit));
    }
  }
  if (!st.ok()) {
    fs::remove_all(dir, fec);
    co_return st;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("snapshot received: {} bytes at commit {} in {:.2f} s ({:.0f} MB/s)", offset, commit,
               secs, secs > 0 ? double(offset) / 1e6 / secs : 0.0);
  state_.bootstraps++;
  state_.bootstrap_bytes += offset;
  *swap = true;
  co_return Status::Ok();
}

Status Follower::FinishBootstrap(const std::string& data_dir) {
  fs::path dir = fs::path(data_dir) / kBootstrapDir;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::Ok();
  fs::path whole = dir / "data.mdb";
  if (fs::exists(whole, ec)) {
    // LMDB's lock file describes the old data file's readers; it is rebuilt at open.
    fs::remove(fs::path(data_dir) / "lock.mdb", ec);
    fs::path target = fs::path(data_dir) / "data.mdb";
    if (::rename(whole.c_str(), target.c_str()) != 0) return Errno("rename " + whole.string());
    if (Status s = SyncPath(data_dir, O_RDONLY | O_DIRECTORY); !s.ok()) return s;
    spdlog::info("bootstrap: the snapshot in {} replaced {}", whole.string(), target.string());
  } else {
    spdlog::info("bootstrap: removing the incomplete snapshot in {}", dir.string());
  }
  fs::remove_all(dir, ec);
  if (ec) return Status(Code::kInternal, "cannot remove " + dir.string() + ": " + ec.message());
  return Status::Ok();
}

// --- Following.

awaitable<Status> Follower::Follow(Session& s) {
  const uint64_t last = engine_.LastCommit();
  std::vector<EpochStart> mine = engine_.History();
  EpochStart at = Engine::EpochOf(mine, last);
  flatbuffers::FlatBufferBuilder fbb;
  auto follow = wire::CreateFollow(fbb, last + 1, at.epoch, at.id, fbb.CreateString(options_.name),
                                   fbb.CreateString(options_.address), engine_.HighestEpochSeen());
  fbb.Finish(wire::CreateRequestFrame(fbb, 3, wire::Request::Follow, follow.Union()));
  if (Status st = co_await s.Write(fbb); !st.ok()) co_return st;
  const wire::ResponseFrame* r = nullptr;
  if (Status st = co_await s.Next(&r); !st.ok()) co_return st;
  if (Status st = ErrorOf(r); !st.ok()) co_return st;
  auto begin = r->reply_as_FollowBegin();
  if (!begin) co_return Status(Code::kBadRequest, "the primary answered Follow without FollowBegin");
  std::vector<EpochStart> theirs;
  if (begin->history()) {
    for (auto e : *begin->history()) theirs.push_back(EpochStart{e->epoch(), e->id(), e->first_commit()});
  }
  if (!Engine::OnHistory(mine, last, theirs, begin->last_commit())) {
    co_return Status(Code::kDiverged,
                     "this replica's commit " + std::to_string(last) + " of epoch " +
                         std::to_string(at.epoch) + " is not on the history of the primary " +
                         options_.primary + " (its last commit " +
                         std::to_string(begin->last_commit()) + ")");
  }
  if (theirs != mine) {
    if (Status st = engine_.AdoptHistory(theirs); !st.ok()) {
      co_return Status(Code::kDiverged, "taking the primary's history: " + st.ToString());
    }
  }
  state_.primary_last_commit = begin->last_commit();
  initial_bootstrap_ = false;
  need_bootstrap_ = false;
  primary_empty_ = false;
  spdlog::info("following {} from commit {} (its last: {})", options_.primary, last + 1,
               begin->last_commit());

  std::vector<RawLogEntry> batch;
  size_t bytes = 0;
  std::chrono::steady_clock::time_point batch_started;
  for (;;) {
    if (Status st = co_await s.Next(&r); !st.ok()) co_return st;
    if (Status st = ErrorOf(r); !st.ok()) co_return st;
    auto entries = r->reply_as_LogEntries();
    if (!entries) co_return Status(Code::kBadRequest, "unexpected reply in a Follow stream");
    state_.primary_last_commit = entries->last_commit();
    if (entries->entries()) {
      for (auto e : *entries->entries()) {
        uint64_t expected = engine_.LastCommit() + 1 + batch.size();
        if (e->commit() != expected) {
          co_return Status(Code::kBadRequest, "the primary sent commit " +
                                                  std::to_string(e->commit()) + ", expected " +
                                                  std::to_string(expected));
        }
        std::string_view data = View(e->data());
        if (batch.empty()) batch_started = std::chrono::steady_clock::now();
        batch.push_back(RawLogEntry{e->commit(), std::string(data)});
        bytes += data.size();
      }
    }
    if (batch.empty()) {
      if (entries->last_commit() <= engine_.LastCommit()) state_.lag_ms = 0;
      continue;
    }
    // Everything already received goes into this batch, up to its bounds: while one
    // batch is being applied (one fsync) the next accumulates in the socket.
    bool room = batch.size() < options_.max_batch_entries && bytes < options_.max_batch_bytes;
    bool more = s.HasFrame() || s.BytesWaiting();
    if (more && room) continue;
    if (room && options_.apply_delay.count() > 0) {
      // --replica-apply-delay: wait a little for more commits before paying an fsync.
      auto waited = std::chrono::steady_clock::now() - batch_started;
      if (waited < options_.apply_delay && co_await s.WaitReadable(options_.apply_delay - waited)) {
        continue;
      }
    }
    if (Status st = co_await Apply(s, &batch); !st.ok()) co_return st;
    bytes = 0;
  }
}

awaitable<Status> Follower::Apply(Session& s, std::vector<RawLogEntry>* batch) {
  if (stopping_) co_return Status(Code::kUnavailable, "stopping");
  const uint64_t first = batch->front().commit;
  if (Status st = engine_.ApplyLog(*batch); !st.ok()) {
    co_return Status(st.code() == Code::kDiverged ? Code::kDiverged : Code::kUnavailable,
                     "applying commits " + std::to_string(first) + " to " +
                         std::to_string(batch->back().commit) + ": " + st.ToString());
  }
  state_.applied_batches++;
  state_.applied_commits += batch->size();
  // Entries name their collections verbatim (docs/storage.md): a batch that never names a
  // system collection left users and roles as they were. A false match costs a reload.
  bool system = std::any_of(batch->begin(), batch->end(), [](const RawLogEntry& e) {
    return e.data.find("$users") != std::string::npos || e.data.find("$roles") != std::string::npos;
  });
  batch->clear();
  if (system && options_.on_system_change) options_.on_system_change();
  commits_.Notify();  // watchers and followers of this replica
  const uint64_t applied = engine_.LastCommit();
  // The lag of this batch: how long ago its oldest commit was made on the primary.
  int64_t now = NowMs();
  uint64_t first_ms = 0, last_ms = 0;
  std::vector<LogEntry> e;
  if (engine_.ReadLog(first, 1, 1, &e).ok() && !e.empty()) first_ms = e[0].time_ms;
  e.clear();
  if (engine_.ReadLog(applied, 1, 1, &e).ok() && !e.empty()) last_ms = e[0].time_ms;
  if (first_ms > 0) {
    uint64_t lag = uint64_t(std::max<int64_t>(0, now - int64_t(first_ms)));
    state_.lag_us.Record(lag * 1000);
    state_.lag_ms = applied >= state_.primary_last_commit.load() ? 0 : lag;
  }
  flatbuffers::FlatBufferBuilder fbb;
  auto ack = wire::CreateFollowAck(fbb, applied, last_ms);
  fbb.Finish(wire::CreateRequestFrame(fbb, 4, wire::Request::FollowAck, ack.Union()));
  co_return co_await s.Write(fbb);
}

// --- Promotion.

void Follower::Promote(std::function<void(Result<EpochStart>)> done) {
  asio::post(io_, [this, done = std::move(done)] {
    if (state_.promoted) return done(Status(Code::kBadRequest, "already a primary"));
    // The session is suspended in a read or write (never inside ApplyLog, which runs on
    // this thread): closing it ends following here and now.
    stopping_ = true;
    if (session_) session_->Close();
    auto epoch = engine_.StartEpoch();
    if (!epoch.ok()) {
      spdlog::error("promotion failed: {}; this node no longer follows its primary",
                    epoch.status().ToString());
      state_.set_error("promotion failed: " + epoch.status().ToString());
      return done(epoch.status());
    }
    state_.promoted = true;
    initial_bootstrap_ = false;
    // The folder is a primary's now (of a new epoch): it may be started without
    // --replica-of.
    std::error_code ec;
    fs::remove(fs::path(options_.data_dir) / kMarker, ec);
    if (Status s = SyncPath(options_.data_dir, O_RDONLY | O_DIRECTORY); !s.ok() || ec) {
      spdlog::warn("promoted, but the replica marker in {} may remain: {}", options_.data_dir,
                   ec ? ec.message() : s.ToString());
    }
    spdlog::warn("PROMOTED: this node is a primary now, epoch {} from commit {}; it no longer "
                 "follows {}",
                 epoch->epoch, epoch->first_commit, options_.primary);
    done(*epoch);
    asio::co_spawn(io_, TellOldPrimary(epoch->epoch), asio::detached);
  });
}

// Best effort: a Follow that carries the new epoch makes the old primary fence itself
// (follow_stream.cc); it answers Diverged. If it is down, it learns the epoch when it
// comes back as a replica of this node, or from any follower that has heard of it.
awaitable<void> Follower::TellOldPrimary(uint64_t epoch) {
  Session s(io_, options_.max_frame);
  Status st = co_await s.Connect(options_.primary);
  if (st.ok()) st = co_await Handshake(s, "cairnd promote");
  if (st.ok()) {
    flatbuffers::FlatBufferBuilder fbb;
    const wire::ResponseFrame* r = nullptr;
    {
      auto f = wire::CreateFollow(fbb, 1, 0, 0, fbb.CreateString(options_.name),
                                  fbb.CreateString(options_.address), epoch);
      fbb.Finish(wire::CreateRequestFrame(fbb, 2, wire::Request::Follow, f.Union()));
      st = co_await s.Write(fbb);
    }
    if (st.ok()) st = co_await s.Next(&r);
    if (st.ok()) st = ErrorOf(r);
  }
  s.Close();
  if (st.code() == Code::kDiverged) {
    spdlog::info("the old primary {} was told of epoch {} and fenced itself", options_.primary, epoch);
  } else {
    spdlog::warn("could not tell the old primary {} of epoch {} ({}): make sure it takes no "
                 "writes (docs/replication.md, \"After a failover\")",
                 options_.primary, epoch, st.ok() ? "it did not refuse" : st.ToString());
  }
}

// --- Stats.

void Follower::AddStats(ExtraStats* out) const {
  uint64_t last = engine_.LastCommit();
  uint64_t primary = state_.primary_last_commit.load();
  bool following = !state_.promoted.load();
  out->counters.emplace_back("replication.replica", following ? 1 : 0);
  out->counters.emplace_back("replication.lag_commits", following && primary > last ? primary - last : 0);
  out->counters.emplace_back("replication.lag_ms", following ? state_.lag_ms.load() : 0);
  out->counters.emplace_back("replication.primary_last_commit", primary);
  out->counters.emplace_back("replication.bootstraps", state_.bootstraps.load());
  out->counters.emplace_back("replication.bootstrap_bytes", state_.bootstrap_bytes.load());
  out->counters.emplace_back("replication.applied_batches", state_.applied_batches.load());
  out->counters.emplace_back("replication.applied_commits", state_.applied_commits.load());
  out->counters.emplace_back("replication.reconnects", state_.reconnects.load());
  out->counters.emplace_back("replication.diverged", state_.diverged.load() ? 1 : 0);
  out->latencies.emplace_back("replication_lag", &state_.lag_us);
}

}  // namespace cairn::server
