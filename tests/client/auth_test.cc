// libcairn's side of authentication (SCRAM-SHA-256 after the Hello, docs/security.md)
// against a scripted stand-in for cairnd (fake_server.h) that runs scram::Server: a good
// password opens the pool's connections and a stream's; a wrong password, an unknown user,
// a server that cannot prove it knows the password, a refusal on id 0 and a server too
// old to authenticate all fail with kAuthFailed, once, without retries.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "cairn/client/client.h"
#include "cairn/protocol/scram.h"
#include "fake_server.h"

namespace cairn::client {
namespace {

using testing::FakePeer;
using testing::FakeServer;
using namespace std::chrono_literals;
using Fbb = flatbuffers::FlatBufferBuilder;

std::string_view Text(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
           : std::string_view();
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(Fbb& fbb, std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

bool SendError(FakePeer& peer, uint64_t id, wire::ErrorCode code, std::string_view message) {
  Fbb fbb;
  auto e = wire::CreateError(fbb, code, fbb.CreateString(message));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, e));
  return peer.Send(fbb);
}

// The server's side of the exchange, and what it saw. One user, "alice".
struct AuthScript {
  std::mutex mu;
  scram::Credentials alice = scram::MakeCredentials("secret pw", scram::kMinIterations);
  bool forge_signature = false;
  bool refuse_on_id0 = false;
  std::atomic<int> starts{0}, successes{0}, failures{0};
  std::atomic<int> requests_after_auth{0};
  std::atomic<int> watches{0};
  std::string last_mechanism;

  void SetPassword(std::string_view pw) {
    std::lock_guard lock(mu);
    alice = scram::MakeCredentials(pw, scram::kMinIterations);
  }

  void operator()(FakePeer& peer, const wire::RequestFrame& f) {
    if (f.request_type() != wire::Request::AuthStart) {
      SendError(peer, f.id(), wire::ErrorCode::AuthFailed, "authentication required");
      return;
    }
    starts++;
    const wire::AuthStart* start = f.request_as_AuthStart();
    {
      std::lock_guard lock(mu);
      last_mechanism = start->mechanism() ? start->mechanism()->str() : "";
    }
    if (refuse_on_id0) {
      SendError(peer, 0, wire::ErrorCode::AuthFailed, "too many failed attempts from here");
      return;
    }
    scram::Server server("fake server secret", scram::kMinIterations);
    std::string error;
    std::optional<std::string> user = server.Receive(Text(start->message()), &error);
    if (!user) {
      failures++;
      SendError(peer, f.id(), wire::ErrorCode::AuthFailed, error);
      return;
    }
    std::optional<scram::Credentials> creds;
    if (*user == "alice") {
      std::lock_guard lock(mu);
      creds = alice;
    }
    std::string first = server.Challenge(creds);
    {
      Fbb fbb;
      auto c = wire::CreateAuthChallenge(fbb, Bytes(fbb, first));
      fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::AuthChallenge, c.Union()));
      if (!peer.Send(fbb)) return;
    }
    std::string payload;
    if (!peer.Read(&payload)) return;
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    if (!v.VerifyBuffer<wire::RequestFrame>(nullptr)) return;
    auto next = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
    const wire::AuthContinue* cont = next->request_as_AuthContinue();
    if (!cont) {
      SendError(peer, next->id(), wire::ErrorCode::AuthFailed, "expected AuthContinue");
      return;
    }
    std::optional<std::string> final = server.Finish(Text(cont->message()), &error);
    if (!final) {
      failures++;
      SendError(peer, next->id(), wire::ErrorCode::AuthFailed, error);
      return;
    }
    if (forge_signature) {
      // A server that does not know the ServerKey: a signature of the right shape.
      *final = "v=" + scram::Base64(std::string(32, 'x'));
    }
    successes++;
    {
      Fbb fbb;
      auto ok = wire::CreateAuthOk(fbb, Bytes(fbb, *final), fbb.CreateString(*user));
      fbb.Finish(wire::CreateResponseFrame(fbb, next->id(), 0, wire::Reply::AuthOk, ok.Union()));
      if (!peer.Send(fbb)) return;
    }
    // Authenticated: Ping is answered, anything else refused with a recognizable error.
    while (peer.Read(&payload, 30s)) {
      flatbuffers::Verifier v2(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
      if (!v2.VerifyBuffer<wire::RequestFrame>(nullptr)) return;
      auto r = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
      requests_after_auth++;
      if (r->request_type() == wire::Request::Ping) {
        Fbb fbb;
        fbb.Finish(wire::CreateResponseFrame(fbb, r->id(), 0, wire::Reply::Pong,
                                             wire::CreatePong(fbb).Union()));
        if (!peer.Send(fbb)) return;
      } else {
        // Refused, and the connection closed.
        if (r->request_type() == wire::Request::Watch) watches++;
        SendError(peer, r->id(), wire::ErrorCode::BadRequest, "fake cairnd: not served");
        return;
      }
    }
  }
};

struct Fixture {
  AuthScript script;
  FakeServer server{[this](FakePeer& p, const wire::RequestFrame& f) { script(p, f); }};

  ClientOptions Options(std::string user, std::string password, size_t connections = 1) {
    ClientOptions o;
    o.address = server.address();
    o.connections = connections;
    o.connect_timeout = 5000ms;
    o.timeout = 10000ms;
    o.user = std::move(user);
    o.password = std::move(password);
    return o;
  }
};

Error ConnectError(const ClientOptions& o) {
  try {
    Client::Connect(o);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "Connect succeeded";
  return Error(ErrorCode::kInternal, "");
}

TEST(ClientAuthTest, RightPasswordAuthenticatesEveryConnection) {
  Fixture f;
  auto client = Client::Connect(f.Options("alice", "secret pw", 3));
  for (int i = 0; i < 20; i++) client->Ping();
  // Every connection of the pool authenticates once, and then carries calls.
  for (int i = 0; i < 100 && f.script.successes < 3; i++) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(f.script.successes, 3);
  EXPECT_EQ(f.script.failures, 0);
  EXPECT_EQ(f.script.requests_after_auth, 21);  // Connect's Ping too
  std::lock_guard lock(f.script.mu);
  EXPECT_EQ(f.script.last_mechanism, "SCRAM-SHA-256");
}

TEST(ClientAuthTest, WithoutAUserNoAuthentication) {
  Fixture f;
  // The fake refuses any request before AuthStart with AuthFailed: a client without a
  // user sends none, and its first non-Ping call fails without retries.
  auto client = Client::Connect(f.Options("", ""));  // Ping is the fake's own
  EXPECT_EQ(f.script.starts, 0);
  try {
    client->Stats();
    ADD_FAILURE() << "Stats succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
  }
}

TEST(ClientAuthTest, WrongPasswordFailsOnceAndIsNotRetried) {
  Fixture f;
  ClientOptions o = f.Options("alice", "secret pW");
  o.max_attempts = 4;
  Error e = ConnectError(o);
  EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
  EXPECT_NE(e.message().find("wrong password or unknown user"), std::string::npos) << e.what();
  EXPECT_NE(e.message().find("'alice'"), std::string::npos) << e.what();
  std::this_thread::sleep_for(300ms);  // past every retry backoff
  EXPECT_EQ(f.script.starts, 1);
  EXPECT_EQ(f.script.failures, 1);
  EXPECT_EQ(f.server.connections(), 1);
}

TEST(ClientAuthTest, UnknownUserFailsLikeAWrongPassword) {
  Fixture f;
  Error unknown = ConnectError(f.Options("bob", "secret pw"));
  Error wrong = ConnectError(f.Options("alice", "nope"));
  EXPECT_EQ(unknown.code(), ErrorCode::kAuthFailed);
  EXPECT_NE(unknown.message().find("wrong password or unknown user"), std::string::npos);
  EXPECT_EQ(unknown.message().substr(unknown.message().find(": ")),
            wrong.message().substr(wrong.message().find(": ")));
  EXPECT_EQ(f.script.starts, 2);
}

TEST(ClientAuthTest, InvalidUserNameIsRefusedByTheServer) {
  Fixture f;
  Error e = ConnectError(f.Options("no spaces", "pw"));
  EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
  EXPECT_NE(e.message().find("invalid user name"), std::string::npos) << e.what();
}

TEST(ClientAuthTest, ServerThatCannotProveItKnowsThePasswordIsRefused) {
  Fixture f;
  f.script.forge_signature = true;
  ClientOptions o = f.Options("alice", "secret pw");
  Error e = ConnectError(o);
  EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
  EXPECT_NE(e.message().find("the server could not prove it knows the password"),
            std::string::npos)
      << e.what();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(f.script.starts, 1);
  // The client sent nothing after the forged AuthOk.
  EXPECT_EQ(f.script.requests_after_auth, 0);
}

TEST(ClientAuthTest, ConnectionLevelAuthFailedIsNotRetried) {
  Fixture f;
  f.script.refuse_on_id0 = true;
  Error e = ConnectError(f.Options("alice", "secret pw"));
  EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
  EXPECT_NE(e.message().find("too many failed attempts"), std::string::npos) << e.what();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(f.script.starts, 1);
}

TEST(ClientAuthTest, EveryWaitingCallFailsWithAuthFailed) {
  Fixture f;
  auto client = Client::Connect(f.Options("alice", "secret pw"));
  // The password changes; the connection is cut (the fake closes after one non-Ping
  // request), and calls made meanwhile wait for a reconnection that fails to
  // authenticate: each fails with kAuthFailed, none is retried.
  f.script.SetPassword("new pw");
  EXPECT_THROW(client->Stats(), Error);  // "not served", and the fake closes
  int before = f.script.starts;
  // The five calls are made in one step of the client's IO thread, so that all of them
  // wait for the same reconnection: made one by one from this thread, a late one could
  // come after that attempt failed and rightly start another.
  std::vector<std::future<bool>> calls;
  std::promise<void> submitted;
  asio::post(client->executor(), [&] {
    for (int i = 0; i < 5; i++) calls.push_back(client->AsyncPing(asio::use_future));
    submitted.set_value();
  });
  submitted.get_future().wait();
  for (auto& c : calls) {
    try {
      c.get();
      ADD_FAILURE() << "a ping succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
    }
  }
  EXPECT_EQ(f.script.starts - before, 1);
}

TEST(ClientAuthTest, OldServerCannotAuthenticate) {
  AuthScript script;
  FakeServer server([&](FakePeer& p, const wire::RequestFrame& f) { script(p, f); }, 5);
  ClientOptions o;
  o.address = server.address();
  o.connections = 1;
  o.user = "alice";
  o.password = "secret pw";
  Error e = ConnectError(o);
  EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
  EXPECT_NE(e.message().find("the server does not support authentication"), std::string::npos)
      << e.what();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(script.starts, 0);
  EXPECT_EQ(server.connections(), 1);
}

TEST(ClientAuthTest, StreamConnectionsAuthenticate) {
  Fixture f;
  auto client = Client::Connect(f.Options("alice", "secret pw"));
  int before = f.script.successes;
  {
    Watcher w = client->Watch({.collection = "c"});
    try {
      w.Next();
      ADD_FAILURE() << "the fake served a watch";
    } catch (const Error& e) {
      // The request reached the server after the exchange: its answer, not an auth error.
      EXPECT_EQ(e.code(), ErrorCode::kBadRequest) << e.what();
      EXPECT_NE(e.message().find("not served"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(f.script.successes - before, 1);
  EXPECT_EQ(f.script.watches, 1);

  // With a password the server no longer takes, the stream fails with kAuthFailed.
  f.script.SetPassword("rotated");
  Watcher w = client->Watch({.collection = "c"});
  try {
    w.Next();
    ADD_FAILURE() << "the watch started";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
    EXPECT_NE(e.message().find("wrong password or unknown user"), std::string::npos);
  }
  EXPECT_EQ(f.script.watches, 1);
}

TEST(ClientAuthTest, StreamRefusesAForgedServerSignature) {
  Fixture f;
  auto client = Client::Connect(f.Options("alice", "secret pw"));
  f.script.forge_signature = true;
  Watcher w = client->Watch({.collection = "c"});
  try {
    w.Next();
    ADD_FAILURE() << "the watch started";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAuthFailed) << e.what();
    EXPECT_NE(e.message().find("could not prove"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.script.watches, 0);
}

}  // namespace
}  // namespace cairn::client
