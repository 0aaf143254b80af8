// libcairn's user and role administration (protocol 6) against a scripted stand-in for
// cairnd (admin_script.h): every call, synchronous and asynchronous, sends its request and
// returns the answer; CreateUser and SetPassword send credentials that open with the
// password and no other, never the password; the server's errors keep their code; a
// server older than protocol 6 and bad arguments fail without anything being sent.
#include <gtest/gtest.h>

#include <future>

#include "admin_script.h"
#include "cairn/client/client.h"

namespace cairn::client {
namespace {

using testing::AdminScript;
using testing::FakePeer;
using testing::FakeServer;
using namespace std::chrono_literals;

struct Fixture {
  explicit Fixture(uint32_t protocol = wire::kProtocolVersion)
      : server([this](FakePeer& p, const wire::RequestFrame& f) { script(p, f); }, protocol) {}

  std::shared_ptr<Client> Connect(uint32_t iterations = scram::kMinIterations) {
    ClientOptions o;
    o.address = server.address();
    o.connections = 1;
    o.timeout = 10000ms;
    o.scram_iterations = iterations;
    return Client::Connect(o);
  }

  AdminScript script;
  FakeServer server;
};

template <typename F>
Error ErrorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCode::kInternal, "none");
}

std::string UsersText(const std::vector<UserInfo>& users) {
  std::string out;
  for (const UserInfo& u : users) {
    out += u.name + " [";
    for (size_t i = 0; i < u.roles.size(); i++) out += (i ? "," : "") + u.roles[i];
    out += "] " + std::to_string(u.iterations) + "\n";
  }
  return out;
}

std::string RolesText(const std::vector<RoleInfo>& roles) {
  std::string out;
  for (const RoleInfo& r : roles) {
    out += r.name + (r.builtin ? " builtin [" : " [");
    for (size_t i = 0; i < r.grants.size(); i++) {
      out += (i ? "," : "") + r.grants[i].permission + ":" + r.grants[i].collection;
    }
    out += "]\n";
  }
  return out;
}

TEST(AdminRequestsTest, ChangesAreWritesThatAreNeverSentTwice) {
  // Like catalog changes: no idempotency key, so a lost connection fails them instead of
  // sending them again; the lists are reads, resent freely.
  auto check = [](const auto& r, bool write, const char* name) {
    EXPECT_EQ(r.write, write) << name;
    EXPECT_EQ(r.resendable, !write) << name;
    EXPECT_EQ(r.protocol, 6u) << name;
    EXPECT_STREQ(r.name, name);
    EXPECT_FALSE(r.refused) << name;
  };
  check(detail::CreateUserRequest("bob", "pw", {"readonly"}, scram::kMinIterations), true,
        "CreateUser");
  check(detail::DropUserRequest("bob"), true, "DropUser");
  check(detail::SetPasswordRequest("bob", "pw", scram::kMinIterations), true, "SetPassword");
  check(detail::GrantRoleRequest("bob", "r"), true, "GrantRole");
  check(detail::RevokeRoleRequest("bob", "r"), true, "RevokeRole");
  check(detail::CreateRoleRequest("r", {{"read", "*"}}), true, "CreateRole");
  check(detail::DropRoleRequest("r"), true, "DropRole");
  check(detail::GrantPermissionRequest("r", {"stats"}), true, "GrantPermission");
  check(detail::RevokePermissionRequest("r", {"stats"}), true, "RevokePermission");
  check(detail::ListUsersRequest(), false, "ListUsers");
  check(detail::ListRolesRequest(), false, "ListRoles");
}

TEST(AdminRequestsTest, EveryCallSendsItsRequestAndReturnsItsAnswer) {
  Fixture f;
  f.script.SetUsers({{"ada", {"admin"}, 15000}, {"bob", {"readonly", "ops"}, 4096}});
  f.script.SetRoles({{"admin", true, {{"admin", "*"}, {"users", ""}}},
                     {"ops", false, {{"read", "orders*"}, {"stats", ""}}}});
  auto c = f.Connect();
  EXPECT_EQ(c->CreateUser("bob", "pw", {"readonly", "ops"}), 41u);
  EXPECT_EQ(c->SetPassword("bob", "pw2"), 42u);
  EXPECT_EQ(c->GrantRole("bob", "admin"), 43u);
  EXPECT_EQ(c->RevokeRole("bob", "admin"), 44u);
  EXPECT_EQ(c->CreateRole("ops", {{"read", "orders*"}, {"stats"}}), 45u);
  EXPECT_EQ(c->CreateRole("empty"), 46u);
  EXPECT_EQ(c->GrantPermission("ops", {"write", "logs"}), 47u);
  EXPECT_EQ(c->RevokePermission("ops", {"verify"}), 48u);
  EXPECT_EQ(c->DropRole("empty"), 49u);
  EXPECT_EQ(c->DropUser("bob"), 50u);
  EXPECT_EQ(UsersText(c->ListUsers()), "ada [admin] 15000\nbob [readonly,ops] 4096\n");
  EXPECT_EQ(RolesText(c->ListRoles()), "admin builtin [admin:*,users:]\nops [read:orders*,stats:]\n");
  EXPECT_EQ(f.script.seen(),
            "CreateUser bob [readonly,ops] i=4096\n"
            "SetPassword bob i=4096\n"
            "GrantRole bob admin\n"
            "RevokeRole bob admin\n"
            "CreateRole ops [read:orders*,stats]\n"
            "CreateRole empty []\n"
            "GrantPermission ops write:logs\n"
            "RevokePermission ops verify\n"
            "DropRole empty\n"
            "DropUser bob\n"
            "ListUsers\n"
            "ListRoles\n");
}

TEST(AdminRequestsTest, CredentialsOpenWithThePasswordAndNoOther) {
  Fixture f;
  auto c = f.Connect(5000);
  c->CreateUser("bob", "correct horse", {});
  std::optional<scram::Credentials> made = f.script.last_credentials();
  ASSERT_TRUE(made);
  EXPECT_EQ(made->iterations, 5000u);
  EXPECT_GE(made->salt.size(), 16u);
  EXPECT_EQ(made->stored_key.size(), 32u);
  EXPECT_EQ(made->server_key.size(), 32u);
  EXPECT_TRUE(AdminScript::Opens(*made, "bob", "correct horse"));
  EXPECT_FALSE(AdminScript::Opens(*made, "bob", "correct horsE"));

  // A new password: a new salt, and the old password no longer opens.
  c->SetPassword("bob", "battery staple");
  std::optional<scram::Credentials> changed = f.script.last_credentials();
  ASSERT_TRUE(changed);
  EXPECT_NE(changed->salt, made->salt);
  EXPECT_TRUE(AdminScript::Opens(*changed, "bob", "battery staple"));
  EXPECT_FALSE(AdminScript::Opens(*changed, "bob", "correct horse"));
}

TEST(AdminRequestsTest, DefaultIterationsAreScramsDefault) {
  Fixture f;
  ClientOptions o;
  o.address = f.server.address();
  o.connections = 1;
  EXPECT_EQ(o.scram_iterations, scram::kDefaultIterations);
  Client::Connect(o)->CreateUser("bob", "pw");
  EXPECT_EQ(f.script.seen(), "CreateUser bob [] i=15000\n");
}

TEST(AdminRequestsTest, AsynchronousFormsOnTheClientAndOnAChannel) {
  Fixture f;
  f.script.SetUsers({{"bob", {"readonly"}, 4096}});
  f.script.SetRoles({{"readonly", true, {{"read", "*"}}}});
  auto c = f.Connect();
  EXPECT_EQ(c->AsyncCreateUser("bob", "pw", {"readonly"}, asio::use_future).get(), 41u);
  EXPECT_EQ(c->AsyncSetPassword("bob", "pw2", asio::use_future).get(), 42u);
  EXPECT_EQ(c->AsyncGrantRole("bob", "r", asio::use_future).get(), 43u);
  EXPECT_EQ(c->AsyncRevokeRole("bob", "r", asio::use_future).get(), 44u);
  Client::Channel ch = c->channel(0);
  // In order on one channel, without waiting for each other.
  std::future<uint64_t> created = ch.AsyncCreateRole("r", {{"read", "a*"}}, asio::use_future);
  std::future<uint64_t> granted = ch.AsyncGrantPermission("r", {"backup"}, asio::use_future);
  std::future<uint64_t> revoked = ch.AsyncRevokePermission("r", {"read", "a*"}, asio::use_future);
  std::future<uint64_t> dropped = ch.AsyncDropRole("r", asio::use_future);
  EXPECT_EQ(created.get(), 45u);
  EXPECT_EQ(granted.get(), 46u);
  EXPECT_EQ(revoked.get(), 47u);
  EXPECT_EQ(dropped.get(), 48u);
  EXPECT_EQ(c->AsyncDropUser("bob", asio::use_future).get(), 49u);
  EXPECT_EQ(UsersText(c->AsyncListUsers(asio::use_future).get()), "bob [readonly] 4096\n");
  std::promise<std::vector<RoleInfo>> roles;
  c->AsyncListRoles([&](std::exception_ptr e, std::vector<RoleInfo> r) {
    if (e) return roles.set_exception(e);
    roles.set_value(std::move(r));
  });
  EXPECT_EQ(RolesText(roles.get_future().get()), "readonly builtin [read:*]\n");
  EXPECT_EQ(f.script.seen(),
            "CreateUser bob [readonly] i=4096\nSetPassword bob i=4096\nGrantRole bob r\n"
            "RevokeRole bob r\nCreateRole r [read:a*]\nGrantPermission r backup\n"
            "RevokePermission r read:a*\nDropRole r\nDropUser bob\nListUsers\nListRoles\n");
}

TEST(AdminRequestsTest, TheServersErrorsKeepTheirCodeAndMessage) {
  Fixture f;
  auto c = f.Connect();
  f.script.FailWith(wire::ErrorCode::PermissionDenied, "user 'ro' may not manage users");
  Error e = ErrorOf([&] { c->CreateUser("bob", "pw", {}); });
  EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied) << e.what();
  EXPECT_EQ(e.message(), "user 'ro' may not manage users");
  try {
    c->AsyncListUsers(asio::use_future).get();
    ADD_FAILURE() << "listed";
  } catch (const Error& a) {
    EXPECT_EQ(a.code(), ErrorCode::kPermissionDenied) << a.what();
  }
  f.script.FailWith(wire::ErrorCode::NotFound, "role 'nope' does not exist");
  e = ErrorOf([&] { c->GrantRole("bob", "nope"); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(e.message().find("'nope'"), std::string::npos) << e.what();
}

TEST(AdminRequestsTest, AServerOlderThanProtocol6IsRefusedWithoutSending) {
  Fixture f(5);
  auto c = f.Connect();
  EXPECT_EQ(c->protocol(), 5u);
  Error e = ErrorOf([&] { c->CreateUser("bob", "pw", {"readonly"}); });
  EXPECT_EQ(e.code(), ErrorCode::kBadRequest);
  EXPECT_EQ(e.message(), "CreateUser needs a server that speaks protocol 6; this one speaks 5");
  e = ErrorOf([&] { c->ListRoles(); });
  EXPECT_EQ(e.message(), "ListRoles needs a server that speaks protocol 6; this one speaks 5");
  try {
    c->AsyncDropUser("bob", asio::use_future).get();
    ADD_FAILURE() << "dropped";
  } catch (const Error& a) {
    EXPECT_EQ(a.message(), "DropUser needs a server that speaks protocol 6; this one speaks 5");
  }
  c->Ping();  // the connection is still up: nothing was sent that it did not know
  EXPECT_EQ(f.script.seen(), "");
  EXPECT_EQ(f.server.connections(), 1);
}

TEST(AdminRequestsTest, BadArgumentsFailThroughTheCompletionUnsent) {
  Fixture f;
  auto c = f.Connect();
  Error e = ErrorOf([&] { c->CreateUser("bob", "", {}); });
  EXPECT_EQ(e.code(), ErrorCode::kBadRequest);
  EXPECT_EQ(e.message(), "CreateUser: the password is empty");
  std::promise<std::exception_ptr> got;
  c->AsyncSetPassword("bob", "", [&](std::exception_ptr ep, uint64_t) { got.set_value(ep); });
  std::exception_ptr ep = got.get_future().get();
  ASSERT_TRUE(ep);
  e = ErrorOf([&] { std::rethrow_exception(ep); });
  EXPECT_EQ(e.message(), "SetPassword: the password is empty");

  auto weak = f.Connect(100);
  e = ErrorOf([&] { weak->CreateUser("bob", "pw", {}); });
  EXPECT_EQ(e.code(), ErrorCode::kBadRequest);
  EXPECT_NE(e.message().find("scram_iterations must be from 4096 to 10000000, not 100"),
            std::string::npos)
      << e.what();
  EXPECT_EQ(f.script.seen(), "");
}

}  // namespace
}  // namespace cairn::client
