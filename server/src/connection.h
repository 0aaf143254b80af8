// One client connection: the socket, its timers, and the step after every event (parse
// what arrived, run what may run, flush). What a request is and needs is in the request
// table (requests.h); the order requests run in is the sequencer's (sequencer.h); the bytes
// read and not yet parsed are the frame buffer's (frame_buffer.h). The handlers of the
// requests answered here are in connection_requests.cc, the replication ones in
// connection_replicas.cc.
//
// Threading: every member is touched only on the connection's executor (one
// io_context, run by one thread), but for finished_ (under finished_mu_) and the
// constant executor_, which the writer thread uses to hand over write results
// (WriteDone). The connection is kept alive by shared_ptrs
// held by pending Asio operations and write jobs.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "auth.h"
#include "flatbuffers/flatbuffers.h"
#include "frame_buffer.h"
#include "sequencer.h"
#include "server_context.h"
#include "stream.h"
#include "transport.h"

namespace cairn::server {

struct RequestRow;
struct RequestTable;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Transport socket, ServerContext& ctx);
  ~Connection();

  void Start();  // REQUIRES: running on executor()
  asio::any_io_executor executor() { return socket_.get_executor(); }
  // Graceful shutdown: stop reading; finish what was received; close. Thread-safe.
  void Drain();

  // The acceptor's bookkeeping of connections still in the handshake (ServerContext).
  // REQUIRES: ctx.mu held.
  void EnterHandshakeList(ServerContext::HandshakeList::iterator pos) { handshake_pos_ = pos; }
  void LeftHandshakeList() { handshake_pos_.reset(); }
  // Closes the connection, unless its Hello was answered meanwhile, to make room for a
  // newer one. Thread-safe.
  void Displace();
  // Closes it now, stopping its stream (which lets go of what it holds of the engine: a
  // snapshot being copied). REQUIRES: the IO threads have stopped (Server::Wait).
  void CloseStopped() { Close(); }

 private:
  using Clock = std::chrono::steady_clock;
  void OnTransportStarted(const asio::error_code& ec);  // TLS: the handshake's end
  void DoRead();
  void OnRead(const asio::error_code& ec, size_t n);
  void ProcessInput();          // parses and handles the complete frames buffered
  void HandleFrame(std::string_view payload, Clock::time_point received);
  // Runs a request whose turn it is. `owned`: the payload's own string, if it has one to give.
  void Run(const RequestRow& row, const wire::RequestFrame* f, std::string_view payload,
           std::string* owned, Clock::time_point received);
  void Pump();                  // runs the waiting requests that may now run
  void SubmitWrite(const RequestRow& row, std::string payload, Clock::time_point received);

  // The handlers of the request table (requests.cc).
  friend struct RequestTable;
  void OnHello(const wire::RequestFrame& f, Clock::time_point received);
  void OnPing(const wire::RequestFrame& f, Clock::time_point received);
  void OnTxnRead(const wire::RequestFrame& f, Clock::time_point received);
  void OnGet(const wire::RequestFrame& f, Clock::time_point received);
  void OnListCollections(const wire::RequestFrame& f, Clock::time_point received);
  void OnDescribeCollection(const wire::RequestFrame& f, Clock::time_point received);
  void OnGetStats(const wire::RequestFrame& f, Clock::time_point received);
  void OnVerifyDatabase(const wire::RequestFrame& f, Clock::time_point received);
  void OnDigest(const wire::RequestFrame& f, Clock::time_point received);
  void OnWatch(const wire::RequestFrame& f, Clock::time_point received);
  void OnFollowAck(const wire::RequestFrame& f, Clock::time_point received);
  void OnReplication(const wire::RequestFrame& f, Clock::time_point received);
  void OnAuthStart(const wire::RequestFrame& f, Clock::time_point received);
  void OnAuthContinue(const wire::RequestFrame& f, Clock::time_point received);
  void OnListUsers(const wire::RequestFrame& f, Clock::time_point received);
  void OnListRoles(const wire::RequestFrame& f, Clock::time_point received);

  // Authentication (docs/security.md). Whether this connection must still authenticate:
  // the server has users and it has not.
  bool NeedsAuth() const;
  // Hello answered, and authenticated if the server has users.
  bool HandshakeDone() const { return hello_done_ && !NeedsAuth(); }
  // Whether the connection's user may send this request now (re-resolving the user if
  // users or roles changed since); AuthFailed ends the connection.
  Status Admit(const RequestRow& row, const wire::RequestFrame& f);
  void AuthFail(uint64_t id, const std::string& why);
  void SendChallenge(uint64_t id, const std::string& message);
  // Closes the connection if its user was dropped, or if its stream (Watch, Snapshot,
  // Follow) is one the user may no longer run. Thread-safe (posts).
 public:
  void RecheckUser();

 private:
  // Whether reads can be served now (not on a replica that is bootstrapping).
  Status ReadableNow();

  // Writer thread: queues a finished write's result; the first of a run posts
  // OnWritesDone, which answers all that are queued by then (one turn, one flush).
  // `replicas`, `replica_timeout_ms`: the write's Txn.replicas (0: answer at once).
  void WriteDone(uint64_t id, TxnResult result, RequestKind kind, Clock::time_point received,
                 uint8_t replicas = 0, uint32_t replica_timeout_ms = 0);
  void OnWritesDone();
  // A Verify request's report, back from the checker thread.
  void OnVerified(uint64_t id, const VerifyReport& report, Clock::time_point received);
  // A Digest request's outcome, back from the tasks thread.
  void OnDigestDone(uint64_t id, const Result<DatabaseDigest>& digest, Clock::time_point received);
  // After answers arrive from another thread: run what waited for them, read on, flush.
  void AfterAnswers();

  // Replication requests (connection_replicas.cc): Snapshot, Follow, ListReplicas,
  // Promote. Returns false if `frame` is none of them.
  bool ExecuteReplication(const void* frame, Clock::time_point received);
  // The synchronous acknowledgement: a write answered only once replicas have its commit.
  // Its answer, and every answer after it, is held (in order) until then; such a write
  // stays handed off (seq_) so that later reads wait too.
  struct Held {
    uint64_t seq = 0;
    bool ready = false;
    std::string frame;  // header and payload, once ready
    RequestKind kind = RequestKind::kWrite;
    Clock::time_point received;
  };
  // Whether a finished write must be held; if so takes it (waits or queues its answer).
  bool HoldAnswer(uint64_t id, TxnResult& result, RequestKind kind, Clock::time_point received,
                  uint8_t replicas, uint32_t replica_timeout_ms);
  void OnReplicated(uint64_t seq, uint64_t id, const TxnResult& result, uint32_t count,
                    bool timed_out);
  void ReleaseHeld();  // sends the held answers that are ready, from the front
  std::string TakeFrame(uint64_t id);  // the response in fbb_, framed (or an error if too large)
  void AddReplicationStats(ExtraStats* out);

  // Streams (stream.h): once started, the connection carries only the stream's frames.
  void StartStream(uint64_t id, std::unique_ptr<Stream> stream);
  void ProduceStream();  // lets the stream send while the output has room
  void StreamFrame(const std::string_view payload);  // a client frame after the start
  class StreamPort;
  friend class StreamPort;

  // Appends the response in fbb_ to the output (or an error if it is too large).
  void Send(uint64_t id);
  void SendError(uint64_t id, const Status& s);
  // Send(id) if `s` is ok (the reply is in fbb_), else SendError.
  void SendOrError(uint64_t id, const Status& s);
  // Answers a frame-level error in request order: now if nothing is ahead of it.
  void ErrorInTurn(uint64_t id, const Status& s);
  void Flush();
  void OnWritten(const asio::error_code& ec, size_t n);
  void Close();
  // The snapshot for reads in this turn, taken on first use; nullptr (and *error set)
  // if none can be had.
  ReadTxn* Snapshot(Status* error);
  void CloseAfterFlush();
  void MaybeFinish();  // closes once draining and idle
  // One timer for the deadlines: Hello (from accepting), the frame being received (from its
  // first byte), idle (from the last complete frame), and a client that does not read.
  Clock::time_point NextDeadline() const;
  void ArmTimer();
  void OnTimer(const asio::error_code& ec);
  void Timeout(std::atomic<uint64_t>& counter, const std::string& why);
  void LeaveHandshakeList();  // once the handshake is done or the connection ends
  void ReleaseSlot();         // gives back the admission slot, once

  // Runs one request's handling. If it throws (a bug), answers Internal for that request,
  // logs and counts it; the connection goes on unless the request had been handed to
  // another thread (its state is then unknown, and the connection is closed).
  template <typename F>
  void GuardRequest(uint64_t id, std::string_view kind, F&& handle);
  // Runs an event handler. If it throws outside any request, the connection's state is
  // unknown: answers Internal (id 0), logs, counts, and closes.
  template <typename F>
  void GuardHandler(const char* what, F&& handle);
  // The same for files that do not see the template's definition.
  void Guarded(const char* what, const std::function<void()>& handle);

  // Whether buffered frames may be parsed now (limits), and whether the socket may be read
  // (the same, and not draining).
  bool CanParse() const;
  bool CanAccept() const;
  bool HasBufferedFrame() const;  // a complete (or bad) frame waits in in_
  uint32_t FrameLimit() const;    // the largest frame payload accepted now
  bool OutputFull() const;
  size_t inflight() const { return seq_.inflight(); }
  void Record(RequestKind kind, Clock::time_point received);
  // Ends a turn of the event loop: releases the read snapshot, records latencies.
  void FinishTurn();

  Transport socket_;  // plain TCP or TLS (transport.h)
  const asio::any_io_executor executor_;  // the socket's, for other threads to post to
  ServerContext& ctx_;
  asio::steady_timer timer_;
  Clock::time_point accepted_ = Clock::now();
  Clock::time_point last_activity_;        // when the last complete frame arrived
  std::optional<Clock::time_point> frame_started_;  // a partial frame is buffered since
  Clock::time_point last_write_progress_;  // when the socket last took response bytes

  FrameBuffer in_;             // bytes read, not yet parsed
  std::string out_;            // responses waiting for the socket
  std::string out_writing_;    // responses being written
  flatbuffers::FlatBufferBuilder fbb_;
  // The read snapshot shared by the reads handled in one turn of the event loop (taken
  // after this connection's earlier writes committed; released before going back to
  // the loop), and a transaction reused for decoding.
  std::optional<ReadTxn> snapshot_;
  Transaction txn_;
  std::vector<std::pair<RequestKind, Clock::time_point>> answered_;  // this turn's, for stats

  // This connection's requests in order: those waiting their turn, and those out on the
  // writer or another thread (reads wait for them).
  Sequencer seq_;

  // Results of writes, handed over by the writer thread.
  struct Finished {
    uint64_t id;
    TxnResult result;
    RequestKind kind;
    Clock::time_point received;
    uint8_t replicas = 0;
    uint32_t replica_timeout_ms = 0;
  };
  std::mutex finished_mu_;
  std::vector<Finished> finished_;        // guarded by finished_mu_
  std::vector<Finished> finished_taken_;  // IO thread: the run being answered
  bool reading_ = false;
  bool backpressured_ = false;  // reading paused at the limits (counted once per pause)
  bool writing_ = false;
  bool hello_done_ = false;
  uint32_t protocol_ = 1;  // agreed in the handshake; 1 until then
  bool draining_ = false;
  bool close_after_flush_ = false;
  bool closed_ = false;
  bool holds_slot_ = true;  // of ctx_.admitted
  std::deque<Held> held_;  // answers waiting for replicas, and those behind them
  uint64_t next_held_ = 1;
  std::unique_ptr<StreamPort> stream_port_;
  std::unique_ptr<Stream> stream_;  // set once a stream started; then nothing else runs
  const RequestRow* stream_row_ = nullptr;  // the stream's request, checked again when
  std::string stream_request_;              // users or roles change (RecheckUser)
  std::atomic<bool> stream_wake_posted_{false};
  Clock::time_point next_tick_;
  std::shared_ptr<const Principal> principal_;  // set once authenticated
  std::unique_ptr<scram::Server> scram_;        // the exchange under way
  asio::steady_timer auth_timer_;               // holds an answer back (AuthThrottle)
  std::string peer_;                            // the client's address, for logs and throttling
  bool loopback_ = false;                       // the client connected over loopback
  // Where this connection is in ctx_.handshaking, if it is; guarded by ctx_.mu.
  std::optional<ServerContext::HandshakeList::iterator> handshake_pos_;
};

}  // namespace cairn::server
