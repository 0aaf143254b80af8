// Users, roles and permissions end to end (docs/security.md): the real cairnd on loopback,
// spoken to frame by frame (so that what is refused, and how, is seen exactly), and through
// libcairn for the authenticated paths an application takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "cairn/client/client.h"
#include "cairn/protocol/scram.h"
#include "server_process.h"
#include "temp_dir.h"

namespace cairn::testing {
namespace {

using flatbuffers::FlatBufferBuilder;
using req::Fbb;

constexpr uint32_t kProtocol = 6;

Fbb CreateUser(uint64_t id, std::string_view name, std::string_view password,
               std::vector<std::string> roles) {
  scram::Credentials c = scram::MakeCredentials(password, scram::kMinIterations);
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto creds = wire::CreateCredentials(*fbb, req::Bytes(*fbb, c.salt), c.iterations,
                                       req::Bytes(*fbb, c.stored_key),
                                       req::Bytes(*fbb, c.server_key));
  std::vector<flatbuffers::Offset<flatbuffers::String>> rs;
  for (const std::string& r : roles) rs.push_back(fbb->CreateString(r));
  auto body = wire::CreateCreateUser(*fbb, fbb->CreateString(name), creds, fbb->CreateVector(rs));
  return req::Finish(std::move(fbb), id, wire::Request::CreateUser, body.Union());
}

Fbb DropUser(uint64_t id, std::string_view name) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto body = wire::CreateDropUser(*fbb, fbb->CreateString(name));
  return req::Finish(std::move(fbb), id, wire::Request::DropUser, body.Union());
}

Fbb GrantRole(uint64_t id, std::string_view user, std::string_view role, bool revoke = false) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto u = fbb->CreateString(user), r = fbb->CreateString(role);
  if (revoke) {
    return req::Finish(std::move(fbb), id, wire::Request::RevokeRole,
                       wire::CreateRevokeRole(*fbb, u, r).Union());
  }
  return req::Finish(std::move(fbb), id, wire::Request::GrantRole,
                     wire::CreateGrantRole(*fbb, u, r).Union());
}

Fbb CreateRole(uint64_t id, std::string_view name,
               std::vector<std::pair<std::string, std::string>> grants) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  std::vector<flatbuffers::Offset<wire::Grant>> gs;
  for (auto& [perm, coll] : grants) {
    gs.push_back(wire::CreateGrant(*fbb, fbb->CreateString(perm), fbb->CreateString(coll)));
  }
  auto body = wire::CreateCreateRole(*fbb, fbb->CreateString(name), fbb->CreateVector(gs));
  return req::Finish(std::move(fbb), id, wire::Request::CreateRole, body.Union());
}

Fbb Bare(uint64_t id, wire::Request type) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  fbb->Finish(wire::CreateRequestFrame(*fbb, id, type, 0));
  return fbb;
}

// A one-put transaction: Put(...)->Build(id).
std::unique_ptr<req::TxnBuilder> Put(std::string_view coll, std::string_view key,
                                std::string_view json) {
  auto t = std::make_unique<req::TxnBuilder>();
  t->Put(coll, key, json);
  return t;
}

// An AuthStart frame (id 2) carrying the client-first message.
Fbb AuthStart(std::string_view client_first) {
  auto fbb = std::make_unique<FlatBufferBuilder>();
  auto body = wire::CreateAuthStart(*fbb, fbb->CreateString(scram::kMechanism),
                                    req::Bytes(*fbb, client_first));
  return req::Finish(std::move(fbb), 2, wire::Request::AuthStart, body.Union());
}

// Runs SCRAM on `c` (after its Hello). The final response: AuthOk, or the error.
const wire::ResponseFrame* Authenticate(WireClient& c, const std::string& user,
                                        const std::string& password) {
  scram::Client scram(user, password);
  auto r = c.Call(*AuthStart(scram.Start()));
  if (!r || r->error() || !r->reply_as_AuthChallenge()) return r;
  auto m = r->reply_as_AuthChallenge()->message();
  std::string error;
  std::optional<std::string> final =
      scram.Challenge(std::string_view(reinterpret_cast<const char*>(m->data()), m->size()), &error);
  EXPECT_TRUE(final) << error;
  if (!final) return nullptr;
  FlatBufferBuilder cont;
  cont.Finish(wire::CreateRequestFrame(
      cont, 3, wire::Request::AuthContinue,
      wire::CreateAuthContinue(cont, req::Bytes(cont, *final)).Union()));
  return c.Call(cont);
}

std::unique_ptr<WireClient> Login(uint16_t port, const std::string& user,
                                  const std::string& password) {
  auto c = Connect(port, kProtocol);
  auto r = Authenticate(*c, user, password);
  EXPECT_TRUE(r && !r->error() && r->reply_as_AuthOk()) << ErrorText(r);
  return c;
}

bool Ok(const wire::ResponseFrame* r) { return r && !r->error(); }

wire::ErrorCode CodeOf(const wire::ResponseFrame* r) {
  return r && r->error() ? r->error()->code() : wire::ErrorCode::Ok;
}

class UsersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->ready()) << server_->output();
  }
  // The first admin, over loopback on a server without users; then a logged-in admin.
  std::unique_ptr<WireClient> Bootstrap() {
    auto c = Connect(server_->port(), kProtocol);
    EXPECT_TRUE(Ok(c->Call(*CreateUser(10, "root", "root password", {"admin"}))));
    return Login(server_->port(), "root", "root password");
  }
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(UsersTest, WithoutUsersTheServerIsOpenButTheSystemCollectionsAreNot) {
  auto c = Connect(server_->port(), kProtocol);
  EXPECT_TRUE(Ok(c->Call(*req::CreateCollection(2, "orders"))));
  EXPECT_TRUE(Ok(c->Call(Put("orders", "k", R"({"a":1})")->Build(3))));
  // Authentication is off: an AuthStart is answered with why.
  ASSERT_TRUE(Ok(c->Call(*CreateUser(4, "root", "pw", {"admin"}))));
  // Now users exist; the system collections are out of reach even of the admin.
  auto admin = Login(server_->port(), "root", "pw");
  auto r = admin->Call(Put("$users", "mallory", R"({"roles":["admin"]})")->Build(5));
  EXPECT_EQ(CodeOf(r), wire::ErrorCode::PermissionDenied) << ErrorText(r);
  EXPECT_EQ(CodeOf(admin->Call(*req::Get(6, "$users", "root"))),
            wire::ErrorCode::PermissionDenied);
  EXPECT_EQ(CodeOf(admin->Call(*req::DropCollection(7, "$users"))),
            wire::ErrorCode::PermissionDenied);
  EXPECT_EQ(CodeOf(admin->Call(*req::DescribeCollection(8, "$roles"))),
            wire::ErrorCode::PermissionDenied);
  auto list = admin->Call(*req::ListCollections(9));
  ASSERT_TRUE(Ok(list)) << ErrorText(list);
  ASSERT_EQ(list->reply_as_Collections()->collections()->size(), 1u);
  EXPECT_EQ(list->reply_as_Collections()->collections()->Get(0)->name()->str(), "orders");
}

TEST_F(UsersTest, OnceAUserExistsEveryConnectionMustAuthenticate) {
  auto admin = Bootstrap();
  auto anon = Connect(server_->port(), kProtocol);
  auto r = anon->Call(*req::Ping(5));
  EXPECT_EQ(CodeOf(r), wire::ErrorCode::AuthFailed) << ErrorText(r);
  EXPECT_NE(ErrorText(r).find("before authentication"), std::string::npos) << ErrorText(r);
  // Wrong password and unknown user: the same answer, and the connection is closed.
  auto wrong = Connect(server_->port(), kProtocol);
  auto w = Authenticate(*wrong, "root", "not the password");
  EXPECT_EQ(CodeOf(w), wire::ErrorCode::AuthFailed);
  std::string wrong_text = ErrorText(w);
  EXPECT_TRUE(wrong->ClosedByPeer());
  auto unknown = Connect(server_->port(), kProtocol);
  auto u = Authenticate(*unknown, "nobody", "whatever");
  EXPECT_EQ(CodeOf(u), wire::ErrorCode::AuthFailed);
  EXPECT_EQ(ErrorText(u), wrong_text);
  EXPECT_TRUE(unknown->ClosedByPeer());
  // The counters (the admin holds `stats`).
  auto counters = Counters(*admin);
  EXPECT_GE(counters["auth.failures"], 2u);
  EXPECT_GE(counters["auth.ok"], 1u);
  EXPECT_GE(counters["auth.required"], 1u);
}

TEST_F(UsersTest, BeforeAuthenticationOnlySmallFramesAreRead) {
  auto admin = Bootstrap();
  auto anon = Connect(server_->port(), kProtocol);
  std::string big(8 * 1024, 'x');
  anon->Send(*req::Ping(5, big));
  // The frame is over the pre-authentication limit: an error, then the connection closes.
  const wire::ResponseFrame* r = anon->Response(5000);
  if (r) {
    EXPECT_NE(CodeOf(r), wire::ErrorCode::Ok);
  }
  EXPECT_TRUE(anon->ClosedByPeer());
  // The same frame is fine once authenticated.
  auto r2 = admin->Call(*req::Ping(6, big));
  EXPECT_TRUE(Ok(r2)) << ErrorText(r2);
}

TEST_F(UsersTest, PermissionsGateEachRequestAndATransactionIsRefusedWhole) {
  auto admin = Bootstrap();
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(2, "orders"))));
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(3, "audit"))));
  ASSERT_TRUE(Ok(admin->Call(*CreateRole(4, "orders_rw", {{"read", "orders"},
                                                          {"write", "orders"},
                                                          {"read", "audit"}}))));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(5, "app", "app pw", {"orders_rw"}))));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(6, "idle", "idle pw", {}))));
  auto app = Login(server_->port(), "app", "app pw");
  EXPECT_TRUE(Ok(app->Call(Put("orders", "o1", R"({"n":1})")->Build(7))));
  // One operation it may not do: nothing of the transaction happens.
  req::TxnBuilder t;
  t.Put("orders", "o2", R"({"n":2})");
  t.Put("audit", "a1", R"({"n":2})");
  auto r = app->Call(t.Build(8));
  ASSERT_EQ(CodeOf(r), wire::ErrorCode::PermissionDenied) << ErrorText(r);
  EXPECT_NE(ErrorText(r).find("'write' on collection 'audit'"), std::string::npos) << ErrorText(r);
  EXPECT_NE(ErrorText(r).find("app"), std::string::npos);
  auto got = admin->Call(*req::Get(9, "orders", "o2"));
  ASSERT_TRUE(Ok(got));
  EXPECT_FALSE(got->reply_as_GetReply()->found());
  // Catalog and server-wide requests need their own permissions.
  EXPECT_EQ(CodeOf(app->Call(*req::DropCollection(10, "orders"))),
            wire::ErrorCode::PermissionDenied);
  EXPECT_EQ(CodeOf(app->Call(*Bare(11, wire::Request::GetStats))),
            wire::ErrorCode::PermissionDenied);
  EXPECT_EQ(CodeOf(app->Call(*Bare(12, wire::Request::ListUsers))),
            wire::ErrorCode::PermissionDenied);
  EXPECT_EQ(CodeOf(app->Call(*CreateUser(13, "x", "pw", {"admin"}))),
            wire::ErrorCode::PermissionDenied);
  // ListCollections shows only what the user may read.
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(14, "secret"))));
  auto list = app->Call(*req::ListCollections(15));
  ASSERT_TRUE(Ok(list));
  std::vector<std::string> names;
  for (auto c : *list->reply_as_Collections()->collections()) names.push_back(c->name()->str());
  EXPECT_EQ(names, (std::vector<std::string>{"audit", "orders"}));
  // A user without roles may only ping.
  auto idle = Login(server_->port(), "idle", "idle pw");
  EXPECT_TRUE(Ok(idle->Call(*req::Ping(16))));
  EXPECT_EQ(CodeOf(idle->Call(*req::Get(17, "orders", "o1"))), wire::ErrorCode::PermissionDenied);
  auto empty = idle->Call(*req::ListCollections(18));
  ASSERT_TRUE(Ok(empty));
  EXPECT_EQ(empty->reply_as_Collections()->collections()->size(), 0u);
  EXPECT_GE(Counters(*admin)["auth.permission_denied"], 6u);
}

TEST_F(UsersTest, RoleChangesApplyToOpenConnectionsAndDroppingAUserClosesThem) {
  auto admin = Bootstrap();
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(2, "c"))));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(3, "bob", "bob pw", {"readonly"}))));
  auto bob = Login(server_->port(), "bob", "bob pw");
  EXPECT_EQ(CodeOf(bob->Call(Put("c", "k", "{}")->Build(4))), wire::ErrorCode::PermissionDenied);
  ASSERT_TRUE(Ok(admin->Call(*GrantRole(5, "bob", "readwrite"))));
  EXPECT_TRUE(Ok(bob->Call(Put("c", "k", "{}")->Build(6))));  // the same connection, at once
  ASSERT_TRUE(Ok(admin->Call(*GrantRole(7, "bob", "readwrite", /*revoke=*/true))));
  EXPECT_EQ(CodeOf(bob->Call(Put("c", "k", "{}")->Build(8))), wire::ErrorCode::PermissionDenied);
  ASSERT_TRUE(Ok(admin->Call(*DropUser(9, "bob"))));
  // Closed without a request of its own (an AuthFailed frame may come first).
  EXPECT_TRUE(bob->ClosedByPeer());
  auto again = Connect(server_->port(), kProtocol);
  EXPECT_EQ(CodeOf(Authenticate(*again, "bob", "bob pw")), wire::ErrorCode::AuthFailed);
}

TEST_F(UsersTest, AStreamEndsWhenItsUserLosesThePermissionItNeeds) {
  auto admin = Bootstrap();
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(2, "c"))));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(3, "w", "w pw", {"readonly"}))));
  auto watcher = Login(server_->port(), "w", "w pw");
  FlatBufferBuilder w;
  w.Finish(wire::CreateRequestFrame(w, 40, wire::Request::Watch,
                                    wire::CreateWatch(w, w.CreateString("c")).Union()));
  ASSERT_TRUE(watcher->Send(w));
  ASSERT_TRUE(Ok(admin->Call(Put("c", "k1", "{}")->Build(4))));
  // Another role change leaves it running.
  ASSERT_TRUE(Ok(admin->Call(*GrantRole(5, "w", "readwrite"))));
  ASSERT_TRUE(Ok(admin->Call(*GrantRole(6, "w", "readwrite", /*revoke=*/true))));
  bool saw_k1 = false;
  const wire::ResponseFrame* r = nullptr;
  for (int i = 0; i < 10 && !saw_k1; i++) {
    r = watcher->Response();
    ASSERT_TRUE(Ok(r)) << ErrorText(r);
    auto events = r->reply_as_WatchEvents();
    if (!events || !events->changes()) continue;
    for (auto ch : *events->changes()) saw_k1 |= ch->key() && ch->key()->size() == 2;
  }
  EXPECT_TRUE(saw_k1);
  // Without read on c, the stream ends with the reason, under its own id.
  ASSERT_TRUE(Ok(admin->Call(*GrantRole(7, "w", "readonly", /*revoke=*/true))));
  for (int i = 0; i < 10; i++) {
    r = watcher->Response();
    if (!r || r->error()) break;
  }
  ASSERT_TRUE(r && r->error()) << "the stream went on";
  EXPECT_EQ(r->id(), 40u);
  EXPECT_EQ(CodeOf(r), wire::ErrorCode::PermissionDenied) << ErrorText(r);
  EXPECT_NE(ErrorText(r).find("'read' on collection 'c'"), std::string::npos) << ErrorText(r);
  EXPECT_TRUE(watcher->ClosedByPeer());
}

TEST_F(UsersTest, ListsShowNamesRolesAndGrantsButNeverCredentials) {
  auto admin = Bootstrap();
  ASSERT_TRUE(Ok(admin->Call(*CreateRole(2, "app", {{"read", "app_*"}, {"stats", ""}}))));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(3, "svc", "pw", {"app", "readonly"}))));
  auto users = admin->Call(*Bare(4, wire::Request::ListUsers));
  ASSERT_TRUE(Ok(users)) << ErrorText(users);
  auto list = users->reply_as_Users()->users();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(list->Get(0)->name()->str(), "root");
  EXPECT_EQ(list->Get(1)->name()->str(), "svc");
  EXPECT_EQ(list->Get(1)->roles()->size(), 2u);
  EXPECT_EQ(list->Get(1)->iterations(), scram::kMinIterations);
  auto roles = admin->Call(*Bare(5, wire::Request::ListRoles));
  ASSERT_TRUE(Ok(roles));
  bool found = false;
  for (auto r : *roles->reply_as_Roles()->roles()) {
    if (r->name()->str() != "app") continue;
    found = true;
    EXPECT_FALSE(r->builtin());
    ASSERT_EQ(r->grants()->size(), 2u);
    EXPECT_EQ(r->grants()->Get(0)->permission()->str(), "read");
    EXPECT_EQ(r->grants()->Get(0)->collection()->str(), "app_*");
    EXPECT_EQ(r->grants()->Get(1)->permission()->str(), "stats");
  }
  EXPECT_TRUE(found);
  // Bad input gets its reason; the server goes on.
  auto bad = admin->Call(*CreateRole(6, "r", {{"fly", "x"}}));
  EXPECT_EQ(CodeOf(bad), wire::ErrorCode::BadRequest);
  EXPECT_NE(ErrorText(bad).find("unknown permission 'fly'"), std::string::npos) << ErrorText(bad);
  EXPECT_EQ(CodeOf(admin->Call(*CreateUser(7, "svc", "pw", {}))), wire::ErrorCode::AlreadyExists);
  EXPECT_EQ(CodeOf(admin->Call(*CreateUser(8, "x", "pw", {"nosuch"}))),
            wire::ErrorCode::UnknownName);
  EXPECT_EQ(CodeOf(admin->Call(*DropUser(9, "root"))), wire::ErrorCode::BadRequest);  // last admin
  EXPECT_TRUE(Ok(admin->Call(*req::Ping(10))));
}

TEST_F(UsersTest, UsersLiveInTheDatabaseAcrossARestart) {
  {
    auto admin = Bootstrap();
    ASSERT_TRUE(Ok(admin->Call(*CreateUser(2, "svc", "svc pw", {"readwrite"}))));
  }
  server_->Stop();
  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
  ASSERT_TRUE(server_->ready()) << server_->output();
  auto anon = Connect(server_->port(), kProtocol);
  EXPECT_EQ(CodeOf(anon->Call(*req::Ping(3))), wire::ErrorCode::AuthFailed);
  auto svc = Login(server_->port(), "svc", "svc pw");
  EXPECT_TRUE(Ok(svc->Call(*req::Ping(4))));
}

TEST_F(UsersTest, WatchingEveryCollectionNeverShowsTheSystemCollections) {
  auto admin = Bootstrap();
  auto created = admin->Call(*req::CreateCollection(2, "c"));
  ASSERT_TRUE(Ok(created) && created->reply_as_Done());
  uint64_t from = created->reply_as_Done()->commit() + 1;  // the user's record is after it
  auto watcher = Login(server_->port(), "root", "root password");
  FlatBufferBuilder w;
  w.Finish(wire::CreateRequestFrame(w, 3, wire::Request::Watch,
                                    wire::CreateWatch(w, 0, 0, from).Union()));
  ASSERT_TRUE(watcher->Send(w));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(4, "svc", "svc pw", {"readwrite"}))));
  ASSERT_TRUE(Ok(admin->Call(Put("c", "after", "{}")->Build(5))));
  // The next change the watcher sees is the put to c, not the user record before it.
  for (int i = 0; i < 10; i++) {
    auto r = watcher->Response();
    ASSERT_TRUE(Ok(r)) << ErrorText(r);
    auto events = r->reply_as_WatchEvents();
    if (!events || !events->changes() || events->changes()->size() == 0) continue;
    for (auto ch : *events->changes()) {
      EXPECT_EQ(ch->collection()->str().find('$'), std::string::npos) << ch->collection()->str();
    }
    bool saw_put = false;
    for (auto ch : *events->changes()) saw_put |= ch->key() && std::string(ch->key()->begin(), ch->key()->end()) == "after";
    if (saw_put) return;
  }
  FAIL() << "the watch never showed the put";
}

TEST_F(UsersTest, FailedLoginsSlowThatSourceNotAuthenticatedConnections) {
  auto admin = Bootstrap();
  for (int i = 0; i < 3; i++) {
    auto c = Connect(server_->port(), kProtocol);
    EXPECT_EQ(CodeOf(Authenticate(*c, "root", "guess " + std::to_string(i))),
              wire::ErrorCode::AuthFailed);
  }
  // The next attempt from this address waits its turn (hundreds of ms after 3 failures);
  // meanwhile the authenticated connection is answered.
  auto guesser = Connect(server_->port(), kProtocol);
  scram::Client scram("root", "guess 4");
  auto start = AuthStart(scram.Start());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(guesser->Send(*start));
  EXPECT_TRUE(Ok(admin->Call(*req::Ping(3))));
  auto pong_at = std::chrono::steady_clock::now();
  auto challenge = guesser->Response();
  auto challenge_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(challenge && challenge->reply_as_AuthChallenge()) << ErrorText(challenge);
  EXPECT_GE(challenge_at - t0, std::chrono::milliseconds(150));
  EXPECT_LT(pong_at, challenge_at);
}

// A database without users must not be served beyond loopback by accident.
TEST(ProtectedMode, AServerWithoutUsersRefusesANonLoopbackAddress) {
  TempDir dir;
  ServerProcess refused(dir.Sub("data"), {}, "0.0.0.0:0");
  EXPECT_FALSE(refused.ready());
  int status = refused.Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  EXPECT_NE(refused.output().find("--insecure"), std::string::npos) << refused.output();
  ServerProcess insecure(dir.Sub("data"), {"--insecure"}, "0.0.0.0:0");
  EXPECT_TRUE(insecure.ready()) << insecure.output();
}

TEST(ProtectedMode, InitAdminCreatesTheFirstUserBeforeServing) {
  TempDir dir;
  std::string pw_file = dir.Sub("pw");
  std::ofstream(pw_file) << "s3cret admin\n";
  auto start = [&] {
    return std::make_unique<ServerProcess>(
        dir.Sub("data"),
        std::vector<std::string>{"--init-admin", "root", "--admin-password-file", pw_file},
        "0.0.0.0:0");
  };
  auto server = start();
  ASSERT_TRUE(server->ready()) << server->output();
  auto anon = Connect(server->port(), kProtocol);
  EXPECT_EQ(CodeOf(anon->Call(*req::Ping(2))), wire::ErrorCode::AuthFailed);
  auto root = Login(server->port(), "root", "s3cret admin");  // the newline is not part of it
  EXPECT_TRUE(Ok(root->Call(*req::Ping(3))));
  // Through libcairn too.
  client::ClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(server->port());
  o.user = "root";
  o.password = "s3cret admin";
  auto client = client::Client::Connect(o);
  EXPECT_NO_THROW(client->CreateCollection("c"));
  // A restart with the same flags is no error: the user exists.
  root.reset();
  anon.reset();
  client.reset();
  server->Stop();
  server = start();
  ASSERT_TRUE(server->ready()) << server->output();
  Login(server->port(), "root", "s3cret admin");
  // An empty password file is refused.
  server->Stop();
  std::ofstream(pw_file, std::ios::trunc) << "";
  ServerProcess empty(dir.Sub("data2"), {"--init-admin", "root", "--admin-password-file", pw_file});
  EXPECT_FALSE(empty.ready());
  empty.Stop();
  EXPECT_NE(empty.output().find("is empty"), std::string::npos) << empty.output();
}


// A replica follows a primary with users as a user of its own, and has the primary's
// users: they are records of the database, carried by the snapshot and the log.
TEST(ReplicaAuth, AReplicaFollowsAsItsUserAndServesThePrimarysUsers) {
  TempDir dir;
  std::string root_pw = dir.Sub("root.pw"), repl_pw = dir.Sub("repl.pw"), bad_pw = dir.Sub("bad");
  std::ofstream(root_pw) << "root secret\n";
  std::ofstream(repl_pw) << "replication secret\n";
  std::ofstream(bad_pw) << "wrong\n";
  ServerProcess primary(dir.Sub("primary"), {"--init-admin", "root", "--admin-password-file",
                                             root_pw, "--durability", "nosync"});
  ASSERT_TRUE(primary.ready()) << primary.output();
  auto admin = Login(primary.port(), "root", "root secret");
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(2, "c"))));
  ASSERT_TRUE(Ok(admin->Call(Put("c", "k", "{}")->Build(3))));
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(4, "repl", "replication secret", {"replication"}))));
  std::string of = "127.0.0.1:" + std::to_string(primary.port());
  ServerProcess replica(dir.Sub("replica"),
                        {"--replica-of", of, "--replica-user", "repl", "--replica-password-file",
                         repl_pw, "--replica-name", "r1", "--durability", "nosync"});
  ASSERT_TRUE(replica.ready()) << replica.output();
  // Polls `check` on a fresh logged-in connection to the replica for up to 20 s.
  auto eventually = [&](const std::string& user, const std::string& pw, auto check) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      auto c = Connect(replica.port(), kProtocol);
      auto r = Authenticate(*c, user, pw);
      if (Ok(r) && check(*c)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  auto has = [](std::string key) {
    return [key](WireClient& c) {
      auto r = c.Call(*req::Get(9, "c", key));
      return Ok(r) && r->reply_as_GetReply()->found();
    };
  };
  EXPECT_TRUE(eventually("root", "root secret", has("k"))) << replica.output();
  // A user created on the primary now reaches the replica through the log.
  ASSERT_TRUE(Ok(admin->Call(*CreateUser(5, "late", "late pw", {"readonly"}))));
  ASSERT_TRUE(Ok(admin->Call(Put("c", "k2", "{}")->Build(6))));
  EXPECT_TRUE(eventually("late", "late pw", has("k2"))) << replica.output();
  // The replica's clients need credentials as the primary's do.
  auto anon = Connect(replica.port(), kProtocol);
  EXPECT_EQ(CodeOf(anon->Call(*req::Get(7, "c", "k"))), wire::ErrorCode::AuthFailed);
  // A replica with the wrong password does not follow, and says why.
  ServerProcess refused(dir.Sub("replica2"),
                        {"--replica-of", of, "--replica-user", "repl", "--replica-password-file",
                         bad_pw, "--replica-name", "r2", "--durability", "nosync"});
  ASSERT_TRUE(refused.ready()) << refused.output();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (refused.output().find("refused this replica's credentials") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(refused.output().find("refused this replica's credentials"), std::string::npos)
      << refused.output();
}


double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A flood of connections from one address that never authenticate (each says Hello and
// holds on) neither slows an authenticated client nor keeps a new one from another
// address from logging in: they count against --max-handshaking, where a newcomer takes
// the place of the oldest connection of the address that holds the most.
TEST(UnauthenticatedFlood, AuthenticatedClientsAreServedThroughIt) {
  TempDir dir;
  std::string pw = dir.Sub("pw");
  std::ofstream(pw) << "admin pw\n";
  ServerProcess server(dir.Sub("data"), {"--init-admin", "root", "--admin-password-file", pw,
                                         "--max-connections", "64", "--durability", "nosync"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto admin = Login(server.port(), "root", "admin pw");
  ASSERT_TRUE(Ok(admin->Call(*req::CreateCollection(2, "c"))));
  auto pings = [&](int n) {
    std::vector<double> ms;
    for (int i = 0; i < n; i++) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = admin->Call(*req::Get(uint64_t(100 + i), "c", "k"));
      EXPECT_TRUE(Ok(r)) << ErrorText(r);
      if (!Ok(r)) break;
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                             t0).count());
    }
    return ms;
  };
  std::vector<double> before = pings(200);
  std::atomic<bool> stop{false};
  std::atomic<int> opened{0};
  std::vector<std::thread> flood;
  struct Joiner {  // the flood stops and is joined however the test ends
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{stop, flood};
  for (int t = 0; t < 4; t++) {
    flood.emplace_back([&] {
      std::vector<std::unique_ptr<WireClient>> held;
      for (int i = 0; !stop && i < 20000; i++) {  // until the pings are done
        auto c = std::make_unique<WireClient>(server.port(), "127.0.0.2");  // one source
        if (!c->connected()) continue;
        opened++;
        c->Send(*req::Hello(1, kProtocol));
        held.push_back(std::move(c));
        if (held.size() > 100) held.erase(held.begin());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<double> during = pings(200);
  // A new client logs in while the flood goes on. Its connection may be refused while
  // every slot is held by flood connections being displaced (each is closed on its own
  // IO thread, and frees its slot then): it tries again.
  int attempts = 0;
  bool in = false;
  for (; attempts < 100 && !in; attempts++) {
    auto newcomer = std::make_unique<WireClient>(server.port());
    auto hello = newcomer->Call(*req::Hello(1, kProtocol));
    if (!Ok(hello)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    // Between its Hello and the end of its exchange it is still in the handshake, but
    // from another address than the flood's: the flood displaces its own connections.
    auto auth = Authenticate(*newcomer, "root", "admin pw");
    EXPECT_TRUE(Ok(auth)) << ErrorText(auth);
    if (!Ok(auth)) break;
    EXPECT_TRUE(Ok(newcomer->Call(*req::Ping(7))));
    in = true;
  }
  stop = true;
  EXPECT_TRUE(in) << "a new client could not log in during the flood in " << attempts
                  << " attempts";
  for (auto& t : flood) t.join();
  ASSERT_EQ(during.size(), 200u);
  double b = MedianMs(before), d = MedianMs(during);
  std::sort(during.begin(), during.end());
  std::printf("authenticated reads' median latency: %.3f ms before, %.3f ms during a flood of "
              "%d unauthenticated connections (max %.1f ms); a new client logged in at "
              "attempt %d\n",
              b, d, opened.load(), during.back(), attempts);
  EXPECT_GT(opened.load(), 64);
  EXPECT_LT(d, 10 * b + 25) << "before " << b << " ms, during " << d << " ms";
  EXPECT_TRUE(Ok(admin->Call(*req::Ping(8))));  // never displaced
}

}  // namespace
}  // namespace cairn::testing
