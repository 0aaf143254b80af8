// cairnd under bad input: broken framing, payloads that do not verify, unknown
// types, oversized fields, thousands of mutated frames, clients that vanish or
// never read, and more connections than allowed. After every case the server
// must still be running and serving a well-behaved client, and every bad frame
// must get the error docs/protocol.md promises (or a close where it says so).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "server_process.h"

namespace cairn {
namespace {

using flatbuffers::FlatBufferBuilder;
using testing::Connect;
using testing::Counters;
using testing::ErrorText;
using testing::ServerProcess;
using testing::TempDir;
using testing::WireClient;
namespace req = testing::req;

#if defined(__SANITIZE_ADDRESS__)
constexpr int kSlowdown = 4;  // sanitizers: fewer iterations
#else
constexpr int kSlowdown = 1;
#endif

// --- Bytes and frames.

std::string PayloadOf(const FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

std::string Header(uint32_t n) {
  std::string h(wire::kFrameHeaderSize, '\0');
  wire::StoreFrameHeader(h.data(), n);
  return h;
}

std::string Framed(std::string_view payload) {
  return Header(uint32_t(payload.size())).append(payload);
}

std::string Hex(std::string_view s, size_t max = 512) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; i++) {
    out.push_back(kDigits[uint8_t(s[i]) >> 4]);
    out.push_back(kDigits[uint8_t(s[i]) & 15]);
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string Str(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string(v->begin(), v->end()) : std::string();
}

// A RequestFrame whose union says `type` but carries no table.
std::string FrameWithoutBody(uint64_t id, wire::Request type) {
  FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequestFrame(fbb, id, type, 0));
  return PayloadOf(fbb);
}

// A Txn of `ops` (and `conds`), finished in `fbb`.
std::string TxnPayload(FlatBufferBuilder& fbb, uint64_t id,
                       const std::vector<flatbuffers::Offset<wire::Operation>>& ops,
                       const std::vector<flatbuffers::Offset<wire::Condition>>& conds = {}) {
  auto t = wire::CreateTxn(fbb, conds.empty() ? 0 : fbb.CreateVector(conds), fbb.CreateVector(ops));
  fbb.Finish(wire::CreateRequestFrame(fbb, id, wire::Request::Txn, t.Union()));
  return PayloadOf(fbb);
}

flatbuffers::Offset<wire::Operation> PutOp(FlatBufferBuilder& fbb, std::string_view coll,
                                           std::string_view key, std::string_view value,
                                           wire::ValueKind kind = wire::ValueKind::Raw,
                                           wire::PutMode mode = wire::PutMode::Upsert) {
  auto p = wire::CreatePut(fbb, fbb.CreateString(coll), req::Bytes(fbb, key),
                           req::Bytes(fbb, value), kind, mode);
  return wire::CreateOperation(fbb, wire::Op::Put, p.Union());
}

// --- What the server must answer (docs/protocol.md, "Transport and framing").

struct ExpectedResponse {
  uint64_t id = 0;
  std::optional<wire::ErrorCode> error;  // set when the error is known in advance
};

struct Expectation {
  std::vector<ExpectedResponse> responses;  // in order
  size_t unverified = 0;                    // frames answered BadRequest with id 0
  bool closed = false;                      // the server closes after the last response
};

// Runs the framing rules over a byte stream the client sends.
Expectation Simulate(std::string_view stream, uint32_t max_frame, bool hello_done) {
  Expectation e;
  for (;;) {
    std::string_view payload;
    size_t consumed = 0;
    switch (wire::ParseFrame(stream, max_frame, &payload, &consumed)) {
      case wire::FrameStatus::kNeedMore:
        return e;  // the server waits for the rest
      case wire::FrameStatus::kTooLarge:
        e.responses.push_back({0, wire::ErrorCode::TooLarge});
        e.closed = true;
        return e;
      case wire::FrameStatus::kEmpty:
        e.responses.push_back({0, wire::ErrorCode::BadRequest});
        e.unverified++;
        break;
      case wire::FrameStatus::kComplete: {
        if (!wire::VerifyRequestFrame(payload)) {
          e.responses.push_back({0, wire::ErrorCode::BadRequest});
          e.unverified++;
          break;
        }
        auto f = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
        bool hello = f->request_type() == wire::Request::Hello;
        if (!hello_done && !hello) {
          e.responses.push_back({f->id(), wire::ErrorCode::BadRequest});
          e.closed = true;
          return e;
        }
        if (hello && f->request_as_Hello() && f->request_as_Hello()->protocol_version() == 0) {
          e.responses.push_back({f->id(), wire::ErrorCode::BadRequest});
          e.closed = true;
          return e;
        }
        if (hello) hello_done = true;
        e.responses.push_back({f->id(), std::nullopt});
        break;
      }
    }
    stream.remove_prefix(consumed);
  }
}

// Reads what `e` expects, in order; `what` names the input in failure messages.
void ExpectExchange(WireClient& c, const Expectation& e, const std::string& what) {
  for (size_t i = 0; i < e.responses.size(); i++) {
    const ExpectedResponse& want = e.responses[i];
    auto r = c.Response();
    ASSERT_TRUE(r) << "no response " << i << " of " << e.responses.size() << " to " << what;
    EXPECT_EQ(r->id(), want.id) << "response " << i << " to " << what;
    if (want.error) {
      ASSERT_TRUE(r->error()) << "response " << i << " to " << what << ": " << ErrorText(r);
      EXPECT_EQ(r->error()->code(), *want.error) << ErrorText(r) << " to " << what;
    }
  }
  if (e.closed) {
    EXPECT_TRUE(c.ClosedByPeer()) << "not closed after " << what;
  }
}

::testing::AssertionResult IsError(const wire::ResponseFrame* r, uint64_t id, wire::ErrorCode code,
                                   std::string_view in_message = "") {
  if (!r) return ::testing::AssertionFailure() << "no response";
  if (r->id() != id) return ::testing::AssertionFailure() << "id " << r->id() << ", not " << id;
  if (!r->error() || r->error()->code() != code) {
    return ::testing::AssertionFailure()
           << "got " << ErrorText(r) << ", not " << wire::EnumNameErrorCode(code);
  }
  std::string msg = r->error()->message() ? r->error()->message()->str() : "";
  if (msg.find(in_message) == std::string::npos) {
    return ::testing::AssertionFailure() << "message '" << msg << "' lacks '" << in_message << "'";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult IsPong(const wire::ResponseFrame* r, uint64_t id) {
  if (!r) return ::testing::AssertionFailure() << "no response";
  if (r->id() != id) return ::testing::AssertionFailure() << "id " << r->id() << ", not " << id;
  if (!r->reply_as_Pong()) return ::testing::AssertionFailure() << ErrorText(r);
  return ::testing::AssertionSuccess();
}

// True while the process runs. ServerProcess::alive() uses kill(pid, 0), which also
// succeeds for a crashed server that nobody has reaped yet (a zombie).
bool Running(const ServerProcess& s) {
  std::ifstream in("/proc/" + std::to_string(s.pid()) + "/stat");
  std::string stat;
  if (s.pid() <= 0 || !std::getline(in, stat)) return false;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

// After a connection ended without an answer: whether the server died. Waits a moment,
// as a dying process's sockets close before it is gone.
bool Died(const ServerProcess& s) {
  for (int i = 0; i < 100 && Running(s); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !Running(s);
}

class BadInputTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    server_.reset();
    flags_ = flags;
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data" + std::to_string(starts_++)),
                                              std::move(flags));
    ASSERT_TRUE(server_->ready()) << server_->output();
  }

  uint16_t port() const { return server_->port(); }

  // The last lines the server printed (a crash report, for one).
  std::string Tail() {
    std::string out = server_->output();
    return out.size() > 4000 ? "..." + out.substr(out.size() - 4000) : out;
  }

  // The server is up and serves a well-behaved client: a ping, then a put and a get.
  void ExpectServing() {
    ASSERT_TRUE(Running(*server_)) << "cairnd is not running:\n" << Tail();
    auto c = Connect(port());
    ASSERT_TRUE(c->connected());
    std::string tag = "check-" + std::to_string(++checks_);
    auto r = c->Call(*req::Ping(1, tag));
    ASSERT_TRUE(IsPong(r, 1)) << Tail();
    EXPECT_EQ(Str(r->reply_as_Pong()->payload()), tag);
    r = c->Call(*req::CreateCollection(2, "health"));
    ASSERT_TRUE(r && (r->reply_as_Done() ||
                      (r->error() && r->error()->code() == wire::ErrorCode::AlreadyExists)))
        << ErrorText(r);
    std::string json = R"({"check":)" + std::to_string(checks_) + "}";
    req::TxnBuilder put;
    put.Put("health", tag, json);
    r = c->Call(put.Build(3));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    req::TxnBuilder get;
    get.Get("health", tag);
    r = c->Call(get.Build(4));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    auto res = r->reply_as_TxnReply()->results()->Get(0);
    ASSERT_TRUE(res->found());
    EXPECT_EQ(FlexToJson(Str(res->records()->Get(0)->value())), json);
  }

  // Waits until the server counts `n` open connections (it notices closes asynchronously).
  // With `flush_writer`, first makes a write: the writer keeps its last batch of jobs, and
  // with them the connections that sent them, until the next batch (see
  // ClosedConnectionIsReleasedAfterItsLastWrite).
  void ExpectOpenConnections(WireClient& c, uint64_t n, bool flush_writer = true) {
    if (flush_writer) {
      auto r = c.Call(*req::CreateCollection(990, "flush-the-writer"));
      EXPECT_TRUE(r && r->id() == 990) << ErrorText(r);
    }
    uint64_t open = 0;
    for (int i = 0; i < 150; i++) {
      open = Counters(c)["connections.open"];
      if (open == n) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "connections.open is " << open << ", not " << n;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::vector<std::string> flags_;
  int starts_ = 0;
  int checks_ = 0;
};

// --- Framing.

TEST_F(BadInputTest, TruncatedHeaderThenCloseIsHarmless) {
  Start();
  for (size_t n : {1, 2, 3}) {
    WireClient c(port());
    ASSERT_TRUE(c.SendRaw(std::string(n, '\x07')));
  }
  {
    auto c = Connect(port());
    ASSERT_TRUE(c->SendRaw("\x10\x00"));
  }
  // A partial header is not an error yet: the server waits for the rest.
  auto c = Connect(port());
  ASSERT_TRUE(c->SendRaw(std::string_view("\x08\x00", 2)));
  std::string payload;
  EXPECT_FALSE(c->Read(&payload, 300));
  EXPECT_FALSE(c->ClosedByPeer(200));
  c->Close();
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, ZeroLengthFrameIsBadRequestAndTheConnectionContinues) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->SendRaw(Header(0)));
  EXPECT_TRUE(IsError(c->Response(), 0, wire::ErrorCode::BadRequest, "empty"));
  ASSERT_TRUE(c->SendRaw(Header(0) + Header(0) + Header(0) + Framed(PayloadOf(*req::Ping(5)))));
  for (int i = 0; i < 3; i++) EXPECT_TRUE(IsError(c->Response(), 0, wire::ErrorCode::BadRequest));
  EXPECT_TRUE(IsPong(c->Response(), 5));

  // Before the handshake too: the frame carries no request, so it is not refused as one.
  WireClient early(port());
  ASSERT_TRUE(early.SendRaw(Header(0)));
  EXPECT_TRUE(IsError(early.Response(), 0, wire::ErrorCode::BadRequest));
  auto r = early.Call(*req::Hello(2));
  EXPECT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, FrameOverMaxFrameIsTooLargeThenClosed) {
  Start({"--max-frame", "64K"});
  {
    WireClient c(port());
    auto r = c.Call(*req::Hello(1));
    ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
    EXPECT_EQ(r->reply_as_HelloReply()->max_frame(), 64u << 10);
  }
  for (uint32_t n : {(64u << 10) + 1, 1u << 20, 0xffffffffu}) {
    auto c = Connect(port());
    ASSERT_TRUE(c->SendRaw(Header(n) + std::string(100, 'x')));
    EXPECT_TRUE(IsError(c->Response(), 0, wire::ErrorCode::TooLarge, std::to_string(n))) << n;
    EXPECT_TRUE(c->ClosedByPeer()) << n;
  }
  {  // Before the handshake as well.
    WireClient c(port());
    ASSERT_TRUE(c.SendRaw(Header(1u << 24)));
    EXPECT_TRUE(IsError(c.Response(), 0, wire::ErrorCode::TooLarge));
    EXPECT_TRUE(c.ClosedByPeer());
  }
  {  // A header alone, announcing too much, is enough.
    auto c = Connect(port());
    ASSERT_TRUE(c->SendRaw(Header(70000)));
    EXPECT_TRUE(IsError(c->Response(), 0, wire::ErrorCode::TooLarge));
    EXPECT_TRUE(c->ClosedByPeer());
  }
  // A frame of exactly max_frame bytes is accepted.
  std::string at_limit;
  for (size_t n = (64 << 10) - 100; n < (64 << 10); n++) {
    std::string p = PayloadOf(*req::Ping(9, std::string(n, 'p')));
    if (p.size() <= (64u << 10)) at_limit = p;
  }
  ASSERT_GE(at_limit.size(), (64u << 10) - 8);
  auto c = Connect(port());
  ASSERT_TRUE(c->SendRaw(Framed(at_limit)));
  auto r = c->Response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id(), 9u);  // a pong, or TooLarge if the pong would pass the limit
  EXPECT_TRUE(r->reply_as_Pong() || IsError(r, 9, wire::ErrorCode::TooLarge)) << ErrorText(r);
  EXPECT_TRUE(IsPong(c->Call(*req::Ping(10)), 10));
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, RandomGarbageGetsErrorsOrAClose) {
  constexpr uint32_t kMaxFrame = 64 << 10;
  Start({"--max-frame", "64K"});
  std::mt19937 rng(20240611);
  auto garbage = [&](size_t n) {
    std::string s(n, '\0');
    for (char& ch : s) ch = char(rng());
    return s;
  };
  const std::string ping = Framed(PayloadOf(*req::Ping(77, "after")));
  // Unframed garbage, before and after the handshake: its first four bytes are a length.
  int round = 0;
  for (size_t n : {1, 2, 3, 4, 5, 8, 64, 1000, 4096, 70000}) {
    for (bool hello : {false, true}) {
      std::string bytes = garbage(n);
      if (round++ % 3 == 0 && n >= 4) bytes[2] = bytes[3] = 0;  // a length under the limit
      std::unique_ptr<WireClient> c =
          hello ? Connect(port()) : std::make_unique<WireClient>(port());
      std::string stream = bytes + ping;
      ASSERT_TRUE(c->SendRaw(stream));
      ASSERT_NO_FATAL_FAILURE(ExpectExchange(*c, Simulate(stream, kMaxFrame, hello),
                                             std::to_string(n) + " bytes: " + Hex(bytes, 16)));
    }
  }
  // Framed garbage: well-formed headers around random payloads.
  for (int conn = 0; conn < 8; conn++) {
    auto c = Connect(port());
    std::string stream;
    for (int i = 0; i < 20; i++) {
      size_t n = 1 + rng() % (i % 4 == 0 ? 16 : 3000);
      stream += Framed(garbage(n));
    }
    stream += ping;
    Expectation e = Simulate(stream, kMaxFrame, true);
    ASSERT_EQ(e.responses.size(), 21u);
    ASSERT_TRUE(c->SendRaw(stream));
    ASSERT_NO_FATAL_FAILURE(ExpectExchange(*c, e, "framed garbage " + std::to_string(conn)));
    EXPECT_TRUE(IsPong(c->Call(*req::Ping(78)), 78));
  }
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, PayloadsThatDoNotVerifyAreBadRequest) {
  Start();
  auto c = Connect(port());
  std::vector<std::pair<std::string, std::string>> cases;  // name, payload
  std::string good = PayloadOf(*req::CreateCollection(4, "abcdefgh"));
  {  // the root offset points past the end
    std::string p = good;
    p[0] = char(0xf0);
    p[1] = char(0xff);
    cases.emplace_back("root offset out of range", p);
  }
  {  // a string without its terminating NUL
    std::string p = good;
    size_t at = p.find("abcdefgh");
    ASSERT_NE(at, std::string::npos);
    p[at + 8] = 'x';
    cases.emplace_back("unterminated string", p);
  }
  {  // a string whose length runs past the buffer
    std::string p = good;
    size_t at = p.find("abcdefgh");
    p[at - 1] = 0x7f;
    cases.emplace_back("string length out of range", p);
  }
  {  // a vtable claiming to be huge
    std::string p = PayloadOf(*req::Ping(4, "payload"));
    uint32_t root;
    std::memcpy(&root, p.data(), 4);
    int32_t vt;
    std::memcpy(&vt, p.data() + root, 4);
    size_t vtable = size_t(int64_t(root) - vt);
    p[vtable] = char(0xfe);
    p[vtable + 1] = char(0x7f);
    cases.emplace_back("vtable size out of range", p);
  }
  {  // a truncated message
    std::string p = PayloadOf(*req::Ping(4, std::string(100, 'p')));
    cases.emplace_back("truncated", p.substr(0, p.size() / 2));
  }
  cases.emplace_back("three bytes", "abc");
  cases.emplace_back("all zeros", std::string(64, '\0'));
  cases.emplace_back("all ones", std::string(64, '\xff'));
  uint64_t id = 100;
  for (const auto& [name, payload] : cases) {
    ASSERT_FALSE(wire::VerifyRequestFrame(payload)) << name << " should not verify";
    ASSERT_TRUE(c->SendRaw(Framed(payload) + Framed(PayloadOf(*req::Ping(++id)))));
    EXPECT_TRUE(IsError(c->Response(), 0, wire::ErrorCode::BadRequest, "not a valid")) << name;
    EXPECT_TRUE(IsPong(c->Response(), id)) << "after " << name;
  }
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// --- Unknown types and enum values.

TEST_F(BadInputTest, UnknownRequestTypeIsBadRequest) {
  Start();
  auto c = Connect(port());
  // The first number past the last request this build knows, and some far beyond.
  for (int type : {int(wire::Request::MAX) + 1, 100, 200, 255}) {
    FlatBufferBuilder fbb;
    auto body = wire::CreatePing(fbb, req::Bytes(fbb, "x"));
    fbb.Finish(
        wire::CreateRequestFrame(fbb, uint64_t(1000 + type), wire::Request(type), body.Union()));
    // The verifier passes unknown union members; the server must refuse them itself.
    ASSERT_TRUE(wire::VerifyRequestFrame(PayloadOf(fbb)));
    auto r = c->Call(fbb);
    EXPECT_TRUE(IsError(r, uint64_t(1000 + type), wire::ErrorCode::BadRequest,
                        "unknown request type " + std::to_string(type)));
  }
  // No request at all (type NONE).
  ASSERT_TRUE(c->SendRaw(Framed(FrameWithoutBody(7, wire::Request::NONE))));
  EXPECT_TRUE(IsError(c->Response(), 7, wire::ErrorCode::BadRequest, "unknown request type"));
  EXPECT_TRUE(IsPong(c->Call(*req::Ping(8)), 8));
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, UnknownEnumValuesInsideATxnAreBadRequest) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  struct Case {
    std::string name;
    std::string payload;
    std::string message;
  };
  std::vector<Case> cases;
  {
    FlatBufferBuilder fbb;
    auto g = wire::CreateGet(fbb, fbb.CreateString("c"), req::Bytes(fbb, "k"));
    std::vector ops = {wire::CreateOperation(fbb, wire::Op(99), g.Union())};
    cases.push_back({"op type 99, read-only", TxnPayload(fbb, 10, ops), "unknown operation"});
  }
  {
    FlatBufferBuilder fbb;
    auto put = PutOp(fbb, "c", "k", "v");
    auto g = wire::CreateGet(fbb, fbb.CreateString("c"), req::Bytes(fbb, "k"));
    std::vector ops = {put, wire::CreateOperation(fbb, wire::Op(99), g.Union())};
    cases.push_back({"op type 99 after a put", TxnPayload(fbb, 11, ops), "unknown operation"});
  }
  {
    FlatBufferBuilder fbb;
    std::vector ops = {wire::CreateOperation(fbb, wire::Op::NONE, 0)};
    cases.push_back({"op type NONE", TxnPayload(fbb, 12, ops), "unknown operation"});
  }
  {
    FlatBufferBuilder fbb;
    std::vector ops = {PutOp(fbb, "c", "k", "v", wire::ValueKind(7))};
    cases.push_back({"value kind 7", TxnPayload(fbb, 13, ops), "value kind"});
  }
  {
    FlatBufferBuilder fbb;
    std::vector ops = {PutOp(fbb, "c", "k", "v", wire::ValueKind::Raw, wire::PutMode(9))};
    cases.push_back({"put mode 9", TxnPayload(fbb, 14, ops), "put mode"});
  }
  {
    FlatBufferBuilder fbb;
    std::vector ops = {PutOp(fbb, "c", "k", "v")};
    std::vector conds = {wire::CreateCondition(fbb, wire::ConditionKind(9), fbb.CreateString("c"),
                                               req::Bytes(fbb, "k"))};
    cases.push_back({"condition kind 9", TxnPayload(fbb, 15, ops, conds), "condition kind"});
  }
  for (const Case& k : cases) {
    ASSERT_TRUE(wire::VerifyRequestFrame(k.payload)) << k.name;
    auto f = flatbuffers::GetRoot<wire::RequestFrame>(k.payload.data());
    ASSERT_TRUE(c->SendRaw(Framed(k.payload)));
    EXPECT_TRUE(IsError(c->Response(), f->id(), wire::ErrorCode::BadRequest, k.message)) << k.name;
  }
  // Nothing was written.
  req::TxnBuilder count;
  count.CountAll("c");
  auto r = c->Call(count.Build(20));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->count(), 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// A union's type field set with its table absent passes the FlatBuffers verifier
// (VerifyTable(nullptr) is true), so the server must check for the table itself. It
// does not: request_as_X() / op_as_X() return nullptr and connection.cc (IsWriteRequest,
// HandleHello, ExecuteRead, SubmitWrite) and convert.cc (DecodeOp) dereference it.
TEST_F(BadInputTest, UnionTypeWithoutItsTableIsBadRequest) {
  struct Case {
    std::string name;
    std::string payload;
  };
  std::vector<Case> cases;
  for (wire::Request type :
       {wire::Request::Hello, wire::Request::Ping, wire::Request::Txn,
        wire::Request::CreateCollection, wire::Request::DropCollection,
        wire::Request::DescribeCollection, wire::Request::CreateIndex, wire::Request::DropIndex,
        wire::Request::ListCollections, wire::Request::GetStats}) {
    cases.push_back(
        {std::string("request ") + wire::EnumNameRequest(type), FrameWithoutBody(50, type)});
  }
  for (wire::Op type : {wire::Op::Get, wire::Op::Put, wire::Op::Delete, wire::Op::Scan,
                        wire::Op::Query, wire::Op::Count}) {
    FlatBufferBuilder fbb;
    std::vector ops = {wire::CreateOperation(fbb, type, 0)};
    cases.push_back({std::string("operation ") + wire::EnumNameOp(type), TxnPayload(fbb, 50, ops)});
  }
  {
    FlatBufferBuilder fbb;
    auto spec = wire::CreateIndexSpec(fbb, fbb.CreateString("i"));
    auto ci = wire::CreateCreateIndex(fbb, 0, spec);
    fbb.Finish(wire::CreateRequestFrame(fbb, 50, wire::Request::CreateIndex, ci.Union()));
    cases.push_back({"CreateIndex without a collection", PayloadOf(fbb)});
  }
  Start();
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    ASSERT_TRUE(wire::VerifyRequestFrame(k.payload));
    bool crashed = false;
    {
      auto c = Connect(port());
      ASSERT_TRUE(c->SendRaw(Framed(k.payload)));
      auto r = c->Response();
      // ListCollections and GetStats need no fields. For the others an error (or a
      // reply that reads the absent table as empty) is fine; a crash is not.
      bool bodyless = k.name == "request ListCollections" || k.name == "request GetStats";
      if (!r) {
        crashed = Died(*server_);
        ADD_FAILURE() << "no response";
      } else {
        EXPECT_EQ(r->id(), 50u);
        if (bodyless) {
          EXPECT_FALSE(r->error()) << ErrorText(r);
        }
        EXPECT_FALSE(r->error() && r->error()->code() == wire::ErrorCode::Internal) << ErrorText(r);
      }
    }
    if (crashed || !Running(*server_)) {
      ADD_FAILURE() << "cairnd crashed on " << k.name << " (payload " << Hex(k.payload) << "):\n"
                    << Tail();
      ASSERT_NO_FATAL_FAILURE(Start());  // a fresh server for the next case
      continue;
    }
    ASSERT_NO_FATAL_FAILURE(ExpectServing());
  }
}

// --- Sizes.

TEST_F(BadInputTest, OversizedTransactionsAndKeysAreTooLarge) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  {  // 20,000 operations, reads then writes
    req::TxnBuilder reads;
    for (int i = 0; i < 20000; i++) reads.Get("c", "k");
    EXPECT_TRUE(IsError(c->Call(reads.Build(2)), 2, wire::ErrorCode::TooLarge, "10000"));
    req::TxnBuilder writes;
    for (int i = 0; i < 20000; i++) writes.Put("c", "k" + std::to_string(i), "{}");
    EXPECT_TRUE(IsError(c->Call(writes.Build(3)), 3, wire::ErrorCode::TooLarge, "10000"));
    req::TxnBuilder conds;
    for (int i = 0; i < 20000; i++) conds.If(wire::ConditionKind::Absent, "c", "k");
    conds.Put("c", "k", "{}");
    EXPECT_TRUE(IsError(c->Call(conds.Build(4)), 4, wire::ErrorCode::TooLarge));
  }
  {  // 10,000 operations are fine
    req::TxnBuilder reads;
    for (int i = 0; i < 10000; i++) reads.Get("c", "k");
    auto r = c->Call(reads.Build(5));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    EXPECT_EQ(r->reply_as_TxnReply()->results()->size(), 10000u);
  }
  const std::string huge(100 << 10, 'K');
  uint64_t id = 10;
  {
    req::TxnBuilder t;
    t.Put("c", huge, "{}");
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::TooLarge, "key"));
  }
  {
    req::TxnBuilder t;
    t.Get("c", huge);
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::TooLarge, "key"));
  }
  {
    req::TxnBuilder t;
    t.Delete("c", huge);
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::TooLarge, "key"));
  }
  {
    req::TxnBuilder t;
    t.If(wire::ConditionKind::Absent, "c", huge).Put("c", "k", "{}");
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::TooLarge, "key"));
  }
  {  // the boundary: 507 bytes is the largest key
    req::TxnBuilder t;
    t.Put("c", std::string(508, 'k'), "{}");
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::TooLarge));
    req::TxnBuilder ok;
    ok.Put("c", std::string(507, 'k'), "{}");
    auto r = c->Call(ok.Build(++id));
    EXPECT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  }
  {  // a scan bounded by a 100 KB key: any answer but a crash or an internal error
    FlatBufferBuilder fbb;
    auto lower = wire::CreateKeyBound(fbb, req::Bytes(fbb, huge));
    auto s = wire::CreateScan(fbb, fbb.CreateString("c"), lower);
    std::vector ops = {wire::CreateOperation(fbb, wire::Op::Scan, s.Union())};
    ASSERT_TRUE(c->SendRaw(Framed(TxnPayload(fbb, ++id, ops))));
    auto r = c->Response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->id(), id);
    EXPECT_FALSE(r->error() && r->error()->code() == wire::ErrorCode::Internal) << ErrorText(r);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, ValueOverMaxValueIsTooLarge) {
  Start({"--max-frame", "64K"});
  WireClient c(port());
  auto r = c.Call(*req::Hello(1));
  ASSERT_TRUE(r && r->reply_as_HelloReply()) << ErrorText(r);
  const uint32_t max_value = r->reply_as_HelloReply()->max_value();
  ASSERT_GT(max_value, 1000u);
  ASSERT_LT(max_value, 64u << 10);
  ASSERT_TRUE(c.Call(*req::CreateCollection(2, "c"))->reply_as_Done());
  for (size_t n : {size_t(max_value) + 1, size_t(max_value) + 4000}) {
    req::TxnBuilder t;
    t.PutDoc("c", "big", std::string(n, 'v'), wire::PutMode::Upsert, wire::ValueKind::Raw);
    EXPECT_TRUE(IsError(c.Call(t.Build(3)), 3, wire::ErrorCode::TooLarge, "value")) << n;
  }
  // The largest value is written and read back whole.
  req::TxnBuilder put;
  put.PutDoc("c", "big", std::string(max_value, 'v'), wire::PutMode::Upsert, wire::ValueKind::Raw);
  r = c.Call(put.Build(4));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  req::TxnBuilder get;
  get.Get("c", "big");
  r = c.Call(get.Build(5));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->records()->Get(0)->value()->size(),
            max_value);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// No response is larger than max_frame: one that would be is replaced by TooLarge.
TEST_F(BadInputTest, ResponseOverMaxFrameIsTooLarge) {
  Start({"--max-frame", "64K"});
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  req::TxnBuilder fill;
  for (int i = 0; i < 1000; i++) {
    fill.PutDoc("c", std::to_string(i), "", wire::PutMode::Upsert, wire::ValueKind::Raw);
  }
  ASSERT_TRUE(c->Call(fill.Build(2))->reply_as_TxnReply());
  // Tiny records cost little of the result budget but much framing: 40 scans of
  // up to 256 records each hold far more than 64 KB of response.
  req::TxnBuilder scans;
  for (int i = 0; i < 40; i++) scans.Scan("c");
  ASSERT_TRUE(c->Send(scans.Build(3)));
  std::string payload;
  ASSERT_TRUE(c->Read(&payload));
  EXPECT_LE(payload.size(), 64u << 10);
  ASSERT_TRUE(wire::VerifyResponseFrame(payload));
  auto r = flatbuffers::GetRoot<wire::ResponseFrame>(payload.data());
  EXPECT_TRUE(IsError(r, 3, wire::ErrorCode::TooLarge)) << payload.size() << " bytes";
  // One scan fits.
  req::TxnBuilder one;
  one.Scan("c");
  r = c->Call(one.Build(4));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_GT(r->reply_as_TxnReply()->results()->Get(0)->records()->size(), 100u);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// --- Well-formed requests the engine refuses.

TEST_F(BadInputTest, MissingCollectionOrIndexIsNotFound) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  uint64_t id = 10;
  auto expect_not_found = [&](req::TxnBuilder& t, const char* what) {
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::NotFound)) << what;
  };
  req::TxnBuilder get, put, del, scan, query, count, cond, index;
  get.Get("nope", "k");
  expect_not_found(get, "get");
  put.Put("nope", "k", "{}");
  expect_not_found(put, "put");
  del.Delete("nope", "k");
  expect_not_found(del, "delete");
  scan.Scan("nope");
  expect_not_found(scan, "scan");
  query.Query("nope", "i", "[1]");
  expect_not_found(query, "query of a missing collection");
  index.Query("c", "nope", "[1]");
  expect_not_found(index, "query of a missing index");
  count.CountAll("nope");
  expect_not_found(count, "count");
  cond.If(wire::ConditionKind::Absent, "nope", "k").Put("c", "k", "{}");
  expect_not_found(cond, "condition");

  auto catalog = [&](FlatBufferBuilder& fbb, const char* what) {
    id++;
    EXPECT_TRUE(IsError(c->Call(fbb), id, wire::ErrorCode::NotFound)) << what;
  };
  {
    FlatBufferBuilder fbb;
    auto d = wire::CreateDropCollection(fbb, fbb.CreateString("nope"));
    fbb.Finish(wire::CreateRequestFrame(fbb, id + 1, wire::Request::DropCollection, d.Union()));
    catalog(fbb, "drop collection");
  }
  {
    FlatBufferBuilder fbb;
    auto d = wire::CreateDescribeCollection(fbb, fbb.CreateString("nope"));
    fbb.Finish(wire::CreateRequestFrame(fbb, id + 1, wire::Request::DescribeCollection, d.Union()));
    catalog(fbb, "describe collection");
  }
  {
    FlatBufferBuilder fbb;
    auto d = wire::CreateDropIndex(fbb, fbb.CreateString("c"), fbb.CreateString("nope"));
    fbb.Finish(wire::CreateRequestFrame(fbb, id + 1, wire::Request::DropIndex, d.Union()));
    catalog(fbb, "drop index");
  }
  id++;
  EXPECT_TRUE(IsError(c->Call(*req::CreateIndex(id, "nope", "i", {"a"}, false)), id,
                      wire::ErrorCode::NotFound))
      << "create index";
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, InvalidDocumentsNamesAndBoundsAreBadRequest) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  ASSERT_TRUE(c->Call(*req::CreateIndex(2, "c", "by_n", {"n"}, false))->reply_as_Done());
  uint64_t id = 10;
  auto expect_bad = [&](req::TxnBuilder& t, const std::string& what) {
    id++;
    EXPECT_TRUE(IsError(c->Call(t.Build(id)), id, wire::ErrorCode::BadRequest)) << what;
  };
  std::string vector_doc, number_doc, err;
  ASSERT_TRUE(JsonToFlex("[1, 2]", &vector_doc, &err));
  ASSERT_TRUE(JsonToFlex("12", &number_doc, &err));
  std::string truncated = testing::Doc(R"({"a": "some text", "b": [1, 2, 3]})");
  truncated.resize(truncated.size() - 3);
  for (const auto& [name, doc] :
       std::vector<std::pair<std::string, std::string>>{{"not a flexbuffer", "not a flexbuffer"},
                                                        {"empty", ""},
                                                        {"a vector", vector_doc},
                                                        {"a number", number_doc},
                                                        {"truncated", truncated},
                                                        {"zeros", std::string(32, '\0')}}) {
    req::TxnBuilder t;
    t.PutDoc("c", "k", doc);
    expect_bad(t, "document " + name);
  }
  req::TxnBuilder empty_key;
  empty_key.Put("c", "", "{}");
  expect_bad(empty_key, "empty key");
  req::TxnBuilder token;
  token.Scan("c", 0, "not a continuation token");
  expect_bad(token, "scan continuation");

  // Query 'equal' values that are not a vector or not a FlexBuffer.
  for (const auto& [name, equal] : std::vector<std::pair<std::string, std::string>>{
           {"number", number_doc}, {"garbage", "\x01\x02\x03\x04"}, {"empty", ""}}) {
    FlatBufferBuilder fbb;
    auto q = wire::CreateQuery(fbb, fbb.CreateString("c"), fbb.CreateString("by_n"),
                               req::Bytes(fbb, equal));
    std::vector ops = {wire::CreateOperation(fbb, wire::Op::Query, q.Union())};
    ASSERT_TRUE(c->SendRaw(Framed(TxnPayload(fbb, ++id, ops))));
    auto r = c->Response();
    // An empty vector field reads as absent (no equality): that one may succeed.
    if (name == "empty") {
      EXPECT_TRUE(r && r->id() == id) << ErrorText(r);
    } else {
      EXPECT_TRUE(IsError(r, id, wire::ErrorCode::BadRequest)) << "query equal " << name;
    }
  }
  // Bad collection and index names.
  for (std::string name : {std::string(""), std::string("a b"), std::string("a/b"),
                           std::string(129, 'n'), std::string("\xff\xfe")}) {
    id++;
    EXPECT_TRUE(IsError(c->Call(*req::CreateCollection(id, name)), id, wire::ErrorCode::BadRequest))
        << "collection name '" << name << "'";
  }
  id++;
  EXPECT_TRUE(
      IsError(c->Call(*req::CreateIndex(id, "c", "i", {}, false)), id, wire::ErrorCode::BadRequest))
      << "index without fields";
  // Nothing was written.
  req::TxnBuilder count;
  count.CountAll("c");
  auto r = c->Call(count.Build(++id));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_EQ(r->reply_as_TxnReply()->results()->Get(0)->count(), 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// A FlexBuffers typed vector is a vector too (Query.equal accepts it), but
// flexbuffers::Reference::AsVector() reads it as empty: the equality must not vanish.
TEST_F(BadInputTest, QueryEqualAsTypedVectorStillFilters) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  ASSERT_TRUE(c->Call(*req::CreateIndex(2, "c", "by_n", {"n"}, false))->reply_as_Done());
  req::TxnBuilder fill;
  fill.Put("c", "a", R"({"n": 1})").Put("c", "b", R"({"n": 2})").Put("c", "c", R"({"n": 3})");
  ASSERT_TRUE(c->Call(fill.Build(3))->reply_as_TxnReply());
  flexbuffers::Builder flex;
  flex.TypedVector([&] { flex.Int(2); });
  flex.Finish();
  std::string equal(reinterpret_cast<const char*>(flex.GetBuffer().data()), flex.GetSize());
  ASSERT_TRUE(flexbuffers::GetRoot(flex.GetBuffer()).IsTypedVector());
  FlatBufferBuilder fbb;
  auto q = wire::CreateQuery(fbb, fbb.CreateString("c"), fbb.CreateString("by_n"),
                             req::Bytes(fbb, equal));
  std::vector ops = {wire::CreateOperation(fbb, wire::Op::Query, q.Union())};
  ASSERT_TRUE(c->SendRaw(Framed(TxnPayload(fbb, 4, ops))));
  auto r = c->Response();
  ASSERT_TRUE(r);
  // Either refused, or n == 2 only; never all three records.
  if (!r->error()) {
    auto recs = r->reply_as_TxnReply()->results()->Get(0)->records();
    ASSERT_TRUE(recs);
    EXPECT_EQ(recs->size(), 1u) << "the typed vector [2] was ignored";
  } else {
    EXPECT_EQ(r->error()->code(), wire::ErrorCode::BadRequest) << ErrorText(r);
  }
}

// --- Mutated frames.

// Real requests of every kind, to mutate.
std::vector<std::string> SeedPayloads() {
  std::vector<std::string> seeds;
  seeds.push_back(PayloadOf(*req::Ping(101, "ping payload")));
  seeds.push_back(PayloadOf(*req::Hello(102)));
  seeds.push_back(PayloadOf(*req::CreateCollection(103, "fz2")));
  seeds.push_back(PayloadOf(*req::CreateIndex(104, "fz", "by_s", {"s", "n"}, true)));
  {
    req::TxnBuilder t;
    t.If(wire::ConditionKind::Absent, "fz", "k9")
        .Put("fz", "k1", R"({"n": 1, "s": "x", "a": {"b": [1, 2.5, "z"]}})")
        .Get("fz", "k1");
    seeds.push_back(PayloadOf(t.Build(105)));
  }
  {
    req::TxnBuilder t;
    t.Scan("fz", 5, "", true).CountAll("fz").Get("fz", "k3");
    seeds.push_back(PayloadOf(t.Build(106)));
  }
  {
    req::TxnBuilder t;
    t.Query("fz", "by_n", "[1]", 3).Delete("fz", "k2");
    seeds.push_back(PayloadOf(t.Build(107)));
  }
  {  // bounds of every kind, and a count of a query
    FlatBufferBuilder fbb;
    std::string lo, hi, eq, err;
    EXPECT_TRUE(JsonToFlex("0", &lo, &err) && JsonToFlex("\"zz\"", &hi, &err) &&
                JsonToFlex("[]", &eq, &err));
    auto q = wire::CreateQuery(fbb, fbb.CreateString("fz"), fbb.CreateString("by_n"),
                               req::Bytes(fbb, eq),
                               wire::CreateValueBound(fbb, req::Bytes(fbb, lo), true),
                               wire::CreateValueBound(fbb, req::Bytes(fbb, hi), false), 10, false);
    auto cnt = wire::CreateCount(fbb, 0, q);
    auto s = wire::CreateScan(fbb, fbb.CreateString("fz"),
                              wire::CreateKeyBound(fbb, req::Bytes(fbb, "k0")),
                              wire::CreateKeyBound(fbb, req::Bytes(fbb, "k8"), false), 4);
    auto q2 = wire::CreateQuery(fbb, fbb.CreateString("fz"), fbb.CreateString("by_n"), 0,
                                wire::CreateValueBound(fbb, req::Bytes(fbb, lo)));
    std::vector ops = {wire::CreateOperation(fbb, wire::Op::Count, cnt.Union()),
                       wire::CreateOperation(fbb, wire::Op::Scan, s.Union()),
                       wire::CreateOperation(fbb, wire::Op::Query, q2.Union())};
    seeds.push_back(TxnPayload(fbb, 108, ops));
  }
  {
    FlatBufferBuilder fbb;
    auto d = wire::CreateDropCollection(fbb, fbb.CreateString("gone"));
    fbb.Finish(wire::CreateRequestFrame(fbb, 109, wire::Request::DropCollection, d.Union()));
    seeds.push_back(PayloadOf(fbb));
  }
  {
    FlatBufferBuilder fbb;
    auto d = wire::CreateDropIndex(fbb, fbb.CreateString("fz"), fbb.CreateString("nope"));
    fbb.Finish(wire::CreateRequestFrame(fbb, 110, wire::Request::DropIndex, d.Union()));
    seeds.push_back(PayloadOf(fbb));
  }
  {
    FlatBufferBuilder fbb;
    auto d = wire::CreateDescribeCollection(fbb, fbb.CreateString("fz"));
    fbb.Finish(wire::CreateRequestFrame(fbb, 111, wire::Request::DescribeCollection, d.Union()));
    seeds.push_back(PayloadOf(fbb));
  }
  {
    FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestFrame(fbb, 112, wire::Request::ListCollections,
                                        wire::CreateListCollections(fbb).Union()));
    seeds.push_back(PayloadOf(fbb));
  }
  {
    FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateRequestFrame(fbb, 113, wire::Request::GetStats,
                                        wire::CreateGetStats(fbb).Union()));
    seeds.push_back(PayloadOf(fbb));
  }
  return seeds;
}

// Flips, overwrites, inserts and deletes a few bytes.
std::string Mutate(std::string p, std::mt19937& rng) {
  int edits = 1 + int(rng() % 4);
  for (int i = 0; i < edits && !p.empty(); i++) {
    size_t at = rng() % p.size();
    switch (rng() % 7) {
      case 0:
        p[at] = char(p[at] ^ (1 << (rng() % 8)));
        break;
      case 1:
        p[at] = char(rng());
        break;
      case 2:
        p[at] = (rng() & 1) ? '\0' : '\xff';
        break;
      case 3:
        p.insert(p.begin() + long(at), char(rng()));
        break;
      case 4:
        if (p.size() > 1) p.erase(p.begin() + long(at));
        break;
      case 5: {  // a small number where an offset or a length may be
        uint32_t v = rng() % 64;
        for (size_t k = 0; k < 4 && at + k < p.size(); k++) p[at + k] = char(v >> (8 * k));
        break;
      }
      case 6: {  // a copied run, as a reordered field would make
        size_t from = rng() % p.size(), n = 1 + rng() % 16;
        n = std::min({n, p.size() - from, p.size() - at});
        std::memmove(p.data() + at, p.data() + from, n);
        break;
      }
    }
  }
  return p;
}

TEST_F(BadInputTest, MutatedFramesGetAResponseOrAClose) {
  constexpr uint32_t kMaxFrame = 16 << 20;
  Start({"--durability", "nosync"});
  {
    auto c = Connect(port());
    ASSERT_TRUE(c->Call(*req::CreateCollection(1, "fz"))->reply_as_Done());
    ASSERT_TRUE(c->Call(*req::CreateIndex(2, "fz", "by_n", {"n"}, false))->reply_as_Done());
    req::TxnBuilder fill;
    for (int i = 0; i < 10; i++) {
      fill.Put("fz", "k" + std::to_string(i), R"({"n": )" + std::to_string(i) + "}");
    }
    ASSERT_TRUE(c->Call(fill.Build(3))->reply_as_TxnReply());
  }
  const std::vector<std::string> seeds = SeedPayloads();
  for (const std::string& s : seeds) ASSERT_TRUE(wire::VerifyRequestFrame(s));

  // One frame at a time, so that a crash points at its frame. CAIRN_FUZZ_SEED picks
  // another sequence of mutations.
  const char* seed = std::getenv("CAIRN_FUZZ_SEED");
  std::mt19937 rng(seed ? unsigned(std::atoi(seed)) : 7u);
  const int lockstep = 20000 / kSlowdown;
  auto c = Connect(port());
  int verified = 0;
  for (int i = 0; i < lockstep; i++) {
    std::string p = Mutate(seeds[rng() % seeds.size()], rng);
    if (p.empty()) continue;
    std::string frame = Framed(p);
    Expectation e = Simulate(frame, kMaxFrame, true);
    ASSERT_EQ(e.responses.size(), 1u);
    verified += e.unverified == 0;
    ASSERT_TRUE(c->SendRaw(frame)) << "frame " << i << ": " << Hex(p);
    auto r = c->Response();
    if (!r) {
      ADD_FAILURE() << "no response to mutated frame " << i << " (" << Hex(p) << ")"
                    << (Died(*server_) ? "; cairnd crashed:\n" + Tail() : "");
      return;
    }
    EXPECT_EQ(r->id(), e.responses[0].id) << Hex(p);
    if (e.responses[0].error) {
      EXPECT_TRUE(r->error() && r->error()->code() == *e.responses[0].error)
          << ErrorText(r) << " to " << Hex(p);
    }
    EXPECT_FALSE(r->error() && r->error()->code() == wire::ErrorCode::Internal)
        << ErrorText(r) << " to " << Hex(p);
    if (e.closed) {
      EXPECT_TRUE(c->ClosedByPeer()) << Hex(p);
      c = Connect(port());
    }
  }
  // Enough mutations still verify to reach the request handlers.
  EXPECT_GT(verified, lockstep / 20);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());

  // Pipelined, on several connections at once. Responses are compared as a multiset:
  // their order is the subject of ErrorsComeBackInRequestOrder.
  const int threads = 4, batches = 100 / kSlowdown, batch = 32;
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&, t] {
      std::mt19937 trng((seed ? unsigned(std::atoi(seed)) : 7u) * 1000 + unsigned(t));
      auto fail = [&](std::string msg) {
        std::lock_guard lock(mu);
        failures.push_back(std::move(msg));
      };
      auto conn = std::make_unique<WireClient>(port());
      if (!conn->Call(*req::Hello(1))) return fail("no handshake");
      for (int b = 0; b < batches; b++) {
        std::string stream;
        Expectation e;
        std::vector<std::string> sent;
        for (int i = 0; i < batch && !e.closed; i++) {
          std::string p = Mutate(seeds[trng() % seeds.size()], trng);
          if (p.empty()) continue;
          stream += Framed(p);
          sent.push_back(p);
          e = Simulate(stream, kMaxFrame, true);
        }
        if (!conn->SendRaw(stream)) return fail("send failed in batch " + std::to_string(b));
        std::multiset<uint64_t> want, got;
        for (const ExpectedResponse& x : e.responses) want.insert(x.id);
        size_t bad_frames = 0;
        for (size_t i = 0; i < e.responses.size(); i++) {
          auto r = conn->Response();
          if (!r) {
            std::string frames;
            for (const std::string& s : sent) frames += "\n  " + Hex(s);
            return fail("response " + std::to_string(i) + " of " +
                        std::to_string(e.responses.size()) + " missing in batch " +
                        std::to_string(b) + "; the batch was:" + frames);
          }
          got.insert(r->id());
          bad_frames +=
              r->id() == 0 && r->error() && r->error()->code() == wire::ErrorCode::BadRequest;
        }
        if (got != want) fail("the ids answered differ from the ids sent");
        if (bad_frames < e.unverified) fail("frames that do not verify were not all refused");
        if (e.closed) {
          if (!conn->ClosedByPeer()) fail("not closed after a refused Hello");
          conn = std::make_unique<WireClient>(port());
          if (!conn->Call(*req::Hello(1))) return fail("no handshake");
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  for (const std::string& f : failures) ADD_FAILURE() << f;
  ASSERT_TRUE(Running(*server_)) << Tail();
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// --- Ordering of error responses.

// docs/protocol.md: "Responses on one connection come back in the order the requests
// were sent." That includes requests refused before they reach the engine. The server
// sends those errors at once (connection.cc: HandleFrame for a payload that does not
// verify, SubmitWrite when a write fails to decode) while earlier writes of the same
// connection are still with the writer, so the errors overtake their answers.
TEST_F(BadInputTest, ErrorsComeBackInRequestOrder) {
  Start();
  auto c = Connect(port());
  ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
  // Writes in flight, then a write the server refuses while decoding it.
  std::string stream;
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 20; i++) {
    req::TxnBuilder t;
    t.Put("c", "k" + std::to_string(i), "{}");
    stream += Framed(PayloadOf(t.Build(100 + i)));
    ids.push_back(100 + i);
  }
  {
    FlatBufferBuilder fbb;
    std::vector ops = {PutOp(fbb, "c", "bad", "v", wire::ValueKind(7))};
    stream += Framed(TxnPayload(fbb, 500, ops));
    ids.push_back(500);
  }
  {
    req::TxnBuilder t;
    for (int i = 0; i < 10001; i++) t.Put("c", "x", "{}");
    stream += Framed(PayloadOf(t.Build(501)));
    ids.push_back(501);
  }
  // A payload that does not verify (answered with id 0), then one more write.
  stream += Framed("this is not a flatbuffer");
  ids.push_back(0);
  {
    req::TxnBuilder t;
    t.Put("c", "last", "{}");
    stream += Framed(PayloadOf(t.Build(600)));
    ids.push_back(600);
  }
  ASSERT_TRUE(c->SendRaw(stream));
  std::vector<uint64_t> got;
  for (size_t i = 0; i < ids.size(); i++) {
    auto r = c->Response();
    ASSERT_TRUE(r) << "response " << i;
    got.push_back(r->id());
  }
  EXPECT_EQ(got, ids);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// --- Handshake.

TEST_F(BadInputTest, HelloWithVersionZeroIsRefused) {
  Start();
  {
    WireClient c(port());
    EXPECT_TRUE(IsError(c.Call(*req::Hello(3, 0)), 3, wire::ErrorCode::BadRequest, "version"));
    EXPECT_TRUE(c.ClosedByPeer());
  }
  {  // a second Hello, after a good one
    auto c = Connect(port());
    EXPECT_TRUE(IsError(c->Call(*req::Hello(4, 0)), 4, wire::ErrorCode::BadRequest, "version"));
    EXPECT_TRUE(c->ClosedByPeer());
  }
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// A refused Hello closes the connection (docs/protocol.md, "Handshake"), so requests
// pipelined after it are not run. The server runs them when the Hello waited behind a
// write: Pump() (connection.cc) keeps executing the backlog after HandleHello called
// CloseAfterFlush(), as it stops only once the connection is closed.
TEST_F(BadInputTest, RequestsAfterARefusedHelloAreNotRun) {
  Start();
  ASSERT_NO_FATAL_FAILURE(ExpectServing());  // creates the collection "health"
  {  // a second Hello pipelined behind a write, with a write after it
    auto c = Connect(port());
    req::TxnBuilder before, after;
    before.Put("health", "before", "{}");
    after.Put("health", "after", "{}");
    ASSERT_TRUE(c->SendRaw(WireClient::Frame(before.Build(5)) +
                           WireClient::Frame(*req::Hello(6, 0)) +
                           WireClient::Frame(after.Build(7))));
    auto r = c->Response();
    EXPECT_TRUE(r && r->id() == 5 && r->reply_as_TxnReply()) << ErrorText(r);
    EXPECT_TRUE(IsError(c->Response(), 6, wire::ErrorCode::BadRequest, "version"));
    EXPECT_TRUE(c->ClosedByPeer());
  }
  // A write from another connection goes to the writer after anything that connection
  // submitted, so a read after it sees all that was run.
  auto c = Connect(port());
  req::TxnBuilder sync;
  sync.Put("health", "sync", "{}");
  ASSERT_TRUE(c->Call(sync.Build(8))->reply_as_TxnReply());
  req::TxnBuilder get;
  get.Get("health", "before").Get("health", "after");
  auto r = c->Call(get.Build(9));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_TRUE(r->reply_as_TxnReply()->results()->Get(0)->found());
  EXPECT_FALSE(r->reply_as_TxnReply()->results()->Get(1)->found())
      << "a write sent after the refused Hello was run";
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// --- Clients that misbehave.

TEST_F(BadInputTest, ClientVanishingMidFrameIsHarmless) {
  Start();
  ASSERT_NO_FATAL_FAILURE(ExpectServing());  // creates the collection "health"
  auto watcher = Connect(port());
  std::string put;
  {
    req::TxnBuilder t;
    t.Put("health", "never", "{}");
    put = Framed(PayloadOf(t.Build(5)));
  }
  for (size_t cut : {size_t(5), put.size() / 2, put.size() - 1}) {
    auto c = Connect(port());
    ASSERT_TRUE(c->SendRaw(std::string_view(put).substr(0, cut)));
    c->Close();
  }
  {  // the start of a large frame
    auto c = Connect(port());
    ASSERT_TRUE(c->SendRaw(Header(8 << 20) + std::string(3 << 20, 'z')));
    c->Close();
  }
  {  // before the handshake
    WireClient c(port());
    ASSERT_TRUE(c.SendRaw(Header(1000) + std::string(500, 'h')));
  }
  ExpectOpenConnections(*watcher, 1);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
  // The torn put was not applied.
  req::TxnBuilder get;
  get.Get("health", "never");
  auto r = watcher->Call(get.Build(6));
  ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  EXPECT_FALSE(r->reply_as_TxnReply()->results()->Get(0)->found());
}

// Clients that announce large frames and send only their start must not make the
// server hold much more memory than they sent. DoRead() (connection.cc) grows the input
// buffer straight to the announced size once the first 64 KiB are in, so each such
// client pins (and zeroes) up to max_frame (16 MiB) for 64 KiB of traffic.
TEST_F(BadInputTest, PartialLargeFramesDoNotPinMemory) {
  Start();
  const size_t rss_before = server_->RssKb();
  const int clients = 40;
  std::vector<std::unique_ptr<WireClient>> open;
  for (int i = 0; i < clients; i++) {
    open.push_back(Connect(port()));
    ASSERT_TRUE(open.back()->SendRaw(Header((16 << 20) - 64) + std::string(70000, 'x')));
  }
  // Let the server read what they sent.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t growth_kb = int64_t(server_->RssKb()) - int64_t(rss_before);
  std::cout << clients << " clients sent 70 KB each of a 16 MB frame: server RSS grew by "
            << growth_kb / 1024 << " MB\n";
  EXPECT_LT(growth_kb, 100 << 10) << "the server holds " << growth_kb / clients
                                  << " KB per client that sent 70 KB";
  open.clear();
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

// A closed connection is released (stats: connections.open) once the server has seen
// the close, whatever it did before. The writer thread keeps the jobs of its last group
// commit (writer.cc, `jobs`, cleared only when the next batch comes), and each job holds
// a shared_ptr to its connection, so the last connection to write lives on, with its
// buffers and its request, until some other write arrives.
TEST_F(BadInputTest, ClosedConnectionIsReleasedAfterItsLastWrite) {
  Start();
  auto watcher = Connect(port());
  {
    auto c = Connect(port());
    ASSERT_TRUE(c->Call(*req::CreateCollection(1, "c"))->reply_as_Done());
    req::TxnBuilder put;
    put.PutDoc("c", "k", std::string(1 << 20, 'v'), wire::PutMode::Upsert, wire::ValueKind::Raw);
    ASSERT_TRUE(c->Call(put.Build(2))->reply_as_TxnReply());
  }
  ExpectOpenConnections(*watcher, 1, /*flush_writer=*/false);
}

// Fills collection `coll` with `n` raw records of `size` bytes.
void Fill(WireClient& c, std::string_view coll, int n, size_t size) {
  auto r = c.Call(*req::CreateCollection(1, coll));
  ASSERT_TRUE(r && r->reply_as_Done()) << ErrorText(r);
  const int per_txn = 50;
  for (int i = 0; i < n; i += per_txn) {
    req::TxnBuilder t;
    for (int j = i; j < std::min(n, i + per_txn); j++) {
      char key[16];
      std::snprintf(key, sizeof key, "k%05d", j);
      t.PutDoc(coll, key, std::string(size, char('a' + j % 26)), wire::PutMode::Upsert,
               wire::ValueKind::Raw);
    }
    r = c.Call(t.Build(2));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
  }
}

TEST_F(BadInputTest, ClientVanishingWhileResponsesAreWrittenIsHarmless) {
  Start();
  auto watcher = Connect(port());
  ASSERT_NO_FATAL_FAILURE(Fill(*watcher, "big", 200, 10 << 10));  // ~2 MB
  req::TxnBuilder scan;
  scan.Scan("big");
  std::string frame = WireClient::Frame(scan.Build(9));
  {  // the full scan returns everything in one response
    auto r = watcher->Call(scan.Build(9));
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    ASSERT_EQ(r->reply_as_TxnReply()->results()->Get(0)->records()->size(), 200u);
  }
  for (int round = 0; round < 3; round++) {
    auto c = Connect(port());
    std::string stream;
    for (int i = 0; i < 50; i++) stream += frame;
    ASSERT_TRUE(c->SendRaw(stream));
    // Let the server start writing, read a little, and vanish.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (round == 1) {
      std::string payload;
      ASSERT_TRUE(c->Read(&payload));
    }
    if (round == 2) {  // a reset rather than a close
      linger l{1, 0};
      setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    c->Close();
  }
  ExpectOpenConnections(*watcher, 1);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, ClientThatNeverReadsIsHeldBackWhileOthersAreServed) {
  Start({"--max-inflight", "16", "--durability", "nosync"});
  auto other = Connect(port());
  ASSERT_NO_FATAL_FAILURE(Fill(*other, "big", 64, 1 << 10));  // scans of ~70 KB
  const size_t rss_before = server_->RssKb();
  ASSERT_GT(rss_before, 0u);

  auto stuck = Connect(port());
  timeval timeout{1, 0};
  ASSERT_EQ(setsockopt(stuck->fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout), 0);
  // Requests of ~600 bytes (a 480-byte lower bound below every key) so that the
  // kernel's socket buffers cannot swallow them all.
  const int n = 20000;
  auto scan_frame = [](uint64_t id) {
    FlatBufferBuilder fbb;
    auto lower = wire::CreateKeyBound(fbb, req::Bytes(fbb, std::string(480, '\0')));
    auto s = wire::CreateScan(fbb, fbb.CreateString("big"), lower);
    std::vector ops = {wire::CreateOperation(fbb, wire::Op::Scan, s.Union())};
    return Framed(TxnPayload(fbb, id, ops));
  };
  {  // the request does what it should
    ASSERT_TRUE(other->SendRaw(scan_frame(1)));
    auto r = other->Response();
    ASSERT_TRUE(r && r->reply_as_TxnReply()) << ErrorText(r);
    ASSERT_EQ(r->reply_as_TxnReply()->results()->Get(0)->records()->size(), 64u);
  }
  std::atomic<int> sent{0};
  std::atomic<bool> done{false};
  std::thread pusher([&] {
    for (int i = 0; i < n; i++) {
      if (!stuck->SendRaw(scan_frame(uint64_t(i) + 1))) break;
      sent++;
    }
    done = true;
  });
  size_t rss_max = rss_before;
  int checks = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(25);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    rss_max = std::max(rss_max, server_->RssKb());
    auto r = other->Call(*req::Ping(uint64_t(1000 + checks)));
    ASSERT_TRUE(IsPong(r, uint64_t(1000 + checks))) << "the other client was not served";
    checks++;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  pusher.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  rss_max = std::max(rss_max, server_->RssKb());
  std::cout << "never-reading client: " << sent << " of " << n << " requests sent; server RSS "
            << rss_before / 1024 << " MB -> max " << rss_max / 1024 << " MB\n";
  EXPECT_LT(sent.load(), n) << "the server never stopped reading the client that does not read";
  EXPECT_LT(rss_max - rss_before, size_t(200) << 10) << "server memory grew without bound";
  // Others are served meanwhile (the stuck client is still connected).
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
  EXPECT_GE(Counters(*other)["backpressure"], 1u);
  ExpectOpenConnections(*other, 2);

  stuck->Close();
  ExpectOpenConnections(*other, 1);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

TEST_F(BadInputTest, ConnectionsPastTheLimitAreRefused) {
  Start({"--max-connections", "20"});
  std::vector<std::unique_ptr<WireClient>> open;
  for (int i = 0; i < 20; i++) {
    open.push_back(Connect(port()));
    ASSERT_TRUE(open.back()->connected());
  }
  for (int i = 20; i < 25; i++) {
    WireClient extra(port());
    ASSERT_TRUE(extra.connected());
    EXPECT_TRUE(IsError(extra.Response(), 0, wire::ErrorCode::Unavailable, "too many")) << i;
    EXPECT_TRUE(extra.ClosedByPeer()) << i;
  }
  // The 20 still work.
  for (size_t i = 0; i < open.size(); i++) {
    EXPECT_TRUE(IsPong(open[i]->Call(*req::Ping(i + 1)), i + 1)) << i;
  }
  // After five leave, five new ones are accepted (once the server has seen them go).
  for (int i = 0; i < 5; i++) open.pop_back();
  int accepted = 0;
  for (int attempt = 0; attempt < 200 && accepted < 5; attempt++) {
    auto c = std::make_unique<WireClient>(port());
    auto r = c->Call(*req::Hello(1));
    if (r && r->reply_as_HelloReply()) {
      open.push_back(std::move(c));
      accepted++;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_EQ(accepted, 5);
  {  // full again
    WireClient extra(port());
    EXPECT_TRUE(IsError(extra.Response(), 0, wire::ErrorCode::Unavailable));
  }
  auto counters = Counters(*open.front());
  EXPECT_EQ(counters["connections.open"], 20u);
  EXPECT_GE(counters["connections.refused"], 6u);
  open.resize(10);
  ExpectOpenConnections(*open.front(), 10);
  ASSERT_NO_FATAL_FAILURE(ExpectServing());
}

}  // namespace
}  // namespace cairn
