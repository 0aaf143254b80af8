// Users, roles and permissions end to end (protocol 6; docs/security.md): libcairn's admin
// calls and the cairn CLI's user and role commands against the real cairnd. A server
// with no users asks for no authentication and takes the first user from loopback; from
// then on every connection authenticates, and each user may do what its roles grant.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <future>

#include "cairn/client/client.h"
#include "cairn/protocol/scram.h"
#include "command.h"
#include "server_process.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn::client {
namespace {

using cairn::testing::CommandRun;
using cairn::testing::ServerProcess;
using cairn::testing::TempDir;

class UserAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->ready());
    addr_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  // A client as `user` (none: unauthenticated), with cheap credentials for the users it
  // creates.
  std::shared_ptr<Client> As(const std::string& user = "", const std::string& password = "") {
    ClientOptions o;
    o.address = addr_;
    o.connections = 1;
    o.user = user;
    o.password = password;
    o.scram_iterations = scram::kMinIterations;
    return Client::Connect(o);
  }

  // The error of connecting as `user` and listing the collections (nullopt: it worked).
  std::optional<Error> LoginError(const std::string& user, const std::string& password) {
    try {
      As(user, password)->ListCollections();
      return std::nullopt;
    } catch (const Error& e) {
      return e;
    }
  }

  // Runs `cairn ARGS` against the server, with `env` ("NAME=VALUE ...").
  CommandRun Cairn(const std::string& args, const std::string& env = "") {
    return cairn::testing::RunCommand("env -u CAIRN_USER -u CAIRN_PASSWORD_FILE CAIRN_ADDR=" +
                                          addr_ + " " + env + " " CAIRN_CLI_PATH " " + args,
                                      dir_);
  }
  std::string File(const std::string& name, const std::string& bytes) {
    std::string path = dir_.Sub(name);
    std::ofstream(path) << bytes;
    return path;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string addr_;
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

// Users by name, each with its roles by name (whatever order the server lists them in).
std::string UsersText(std::vector<UserInfo> users) {
  std::sort(users.begin(), users.end(),
            [](const UserInfo& a, const UserInfo& b) { return a.name < b.name; });
  std::string out;
  for (UserInfo& u : users) {
    std::sort(u.roles.begin(), u.roles.end());
    out += u.name + " [";
    for (size_t i = 0; i < u.roles.size(); i++) out += (i ? "," : "") + u.roles[i];
    out += "] " + std::to_string(u.iterations) + "\n";
  }
  return out;
}

// A role's grants as "perm:collection" lines, sorted.
std::string GrantsText(const RoleInfo* r) {
  if (!r) return "(no such role)";
  std::vector<std::string> lines;
  for (const Grant& g : r->grants) lines.push_back(g.permission + ":" + g.collection);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

const RoleInfo* FindRole(const std::vector<RoleInfo>& roles, const std::string& name) {
  for (const RoleInfo& r : roles) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

TEST_F(UserAdminTest, EveryCallFromTheFirstUserToTheLast) {
  // No users: no authentication, and the first user comes over loopback.
  auto anon = As();
  EXPECT_TRUE(anon->ListUsers().empty());
  std::vector<RoleInfo> builtin = anon->ListRoles();
  for (const char* name : {"admin", "readwrite", "readonly", "replication"}) {
    const RoleInfo* r = FindRole(builtin, name);
    ASSERT_TRUE(r) << name;
    EXPECT_TRUE(r->builtin) << name;
  }
  EXPECT_EQ(GrantsText(FindRole(builtin, "readonly")), "read:*\n");
  uint64_t first = anon->CreateUser("root", "root pw", {"admin"});
  EXPECT_GT(first, 0u);

  // From now on every connection authenticates.
  std::optional<Error> e = LoginError("", "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kAuthFailed) << e->what();
  e = LoginError("root", "wrong");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kAuthFailed) << e->what();
  auto root = As("root", "root pw");
  root->CreateCollection("orders");

  // Roles: made, granted to, changed, listed, taken back, dropped.
  uint64_t made = root->CreateRole("orders_reader", {{"read", "orders*"}});
  EXPECT_GT(made, first);
  EXPECT_GT(root->CreateUser("bob", "bob pw", {"readonly"}), made);
  EXPECT_EQ(UsersText(root->ListUsers()), "bob [readonly] 4096\nroot [admin] 4096\n");
  root->GrantRole("bob", "orders_reader");
  EXPECT_EQ(UsersText(root->ListUsers()), "bob [orders_reader,readonly] 4096\nroot [admin] 4096\n");
  root->GrantPermission("orders_reader", {"stats"});
  root->GrantPermission("orders_reader", {"write", "orders"});
  std::vector<RoleInfo> roles = root->ListRoles();
  const RoleInfo* r = FindRole(roles, "orders_reader");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->builtin);
  EXPECT_EQ(GrantsText(r), "read:orders*\nstats:\nwrite:orders\n");
  root->RevokePermission("orders_reader", {"write", "orders"});
  roles = root->ListRoles();
  EXPECT_EQ(GrantsText(FindRole(roles, "orders_reader")), "read:orders*\nstats:\n");

  // Bob authenticates, and may read.
  auto bob = As("bob", "bob pw");
  EXPECT_EQ(bob->ListCollections().size(), 1u);
  root->RevokeRole("bob", "orders_reader");
  EXPECT_EQ(UsersText(root->ListUsers()), "bob [readonly] 4096\nroot [admin] 4096\n");
  root->DropRole("orders_reader");
  EXPECT_FALSE(FindRole(root->ListRoles(), "orders_reader"));

  // A new password: the old one no longer opens, the new one does.
  root->SetPassword("bob", "bob pw 2");
  e = LoginError("bob", "bob pw");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kAuthFailed) << e->what();
  EXPECT_FALSE(LoginError("bob", "bob pw 2"));
  // A user may change its own password.
  As("bob", "bob pw 2")->SetPassword("bob", "bob pw 3");
  EXPECT_FALSE(LoginError("bob", "bob pw 3"));

  // Dropped: it can no longer log in.
  root->DropUser("bob");
  e = LoginError("bob", "bob pw 3");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kAuthFailed) << e->what();
  EXPECT_EQ(UsersText(root->ListUsers()), "root [admin] 4096\n");
}

TEST_F(UserAdminTest, AsynchronousForms) {
  auto anon = As();
  uint64_t c1 = anon->AsyncCreateUser("root", "root pw", {"admin"}, asio::use_future).get();
  auto root = As("root", "root pw");
  Client::Channel ch = root->channel(0);
  std::future<uint64_t> role = ch.AsyncCreateRole("ops", {{"read", "*"}}, asio::use_future);
  std::future<uint64_t> user = ch.AsyncCreateUser("eve", "eve pw", {"ops"}, asio::use_future);
  std::future<uint64_t> grant = ch.AsyncGrantPermission("ops", {"stats"}, asio::use_future);
  uint64_t c2 = role.get(), c3 = user.get(), c4 = grant.get();
  EXPECT_LT(c1, c2);
  EXPECT_LT(c2, c3);
  EXPECT_LT(c3, c4);
  EXPECT_EQ(UsersText(root->AsyncListUsers(asio::use_future).get()),
            "eve [ops] 4096\nroot [admin] 4096\n");
  EXPECT_TRUE(FindRole(root->AsyncListRoles(asio::use_future).get(), "ops"));
  root->AsyncSetPassword("eve", "eve pw 2", asio::use_future).get();
  EXPECT_FALSE(LoginError("eve", "eve pw 2"));
  root->AsyncGrantRole("eve", "readonly", asio::use_future).get();
  root->AsyncRevokeRole("eve", "readonly", asio::use_future).get();
  root->AsyncRevokePermission("ops", {"stats"}, asio::use_future).get();
  root->AsyncDropUser("eve", asio::use_future).get();
  root->AsyncDropRole("ops", asio::use_future).get();
  EXPECT_EQ(UsersText(root->ListUsers()), "root [admin] 4096\n");
}

TEST_F(UserAdminTest, RefusalsNameTheirCause) {
  auto anon = As();
  // An unknown role: nothing is created, and the error names the role.
  Error e = ErrorOf([&] { anon->CreateUser("root", "pw", {"admin", "no_such_role"}); });
  EXPECT_TRUE(e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kUnknownName) << e.what();
  EXPECT_NE(e.message().find("no_such_role"), std::string::npos) << e.what();
  EXPECT_TRUE(anon->ListUsers().empty());

  anon->CreateUser("root", "root pw", {"admin"});
  auto root = As("root", "root pw");
  e = ErrorOf([&] { root->CreateUser("root", "other", {}); });
  EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists) << e.what();
  e = ErrorOf([&] { root->CreateUser("no spaces", "pw", {}); });
  EXPECT_EQ(e.code(), ErrorCode::kBadRequest) << e.what();
  e = ErrorOf([&] { root->CreateUser(std::string(65, 'a'), "pw", {}); });
  EXPECT_EQ(e.code(), ErrorCode::kBadRequest) << e.what();
  e = ErrorOf([&] { root->GrantRole("nobody", "readonly"); });
  EXPECT_NE(e.message().find("nobody"), std::string::npos) << e.what();
  e = ErrorOf([&] { root->DropRole("readonly"); });  // built in
  EXPECT_NE(e.code(), ErrorCode::kOk);

  // A readonly user may not manage users.
  root->CreateUser("reader", "reader pw", {"readonly"});
  auto reader = As("reader", "reader pw");
  e = ErrorOf([&] { reader->CreateUser("mallory", "pw", {"admin"}); });
  EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied) << e.what();
  e = ErrorOf([&] { reader->GrantRole("reader", "admin"); });
  EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied) << e.what();
  EXPECT_EQ(UsersText(root->ListUsers()), "reader [readonly] 4096\nroot [admin] 4096\n");
}

TEST_F(UserAdminTest, TheCommandLineFromTheFirstUserToTheLast) {
  std::string root_pw = File("root.pw", "root pw\n"), bob_pw = File("bob.pw", "bob pw\n"),
              bob_new = File("bob.new", "bob pw 2\n");
  // The first user, over loopback to a server with no users.
  CommandRun r = Cairn("user create root --role admin --iterations 4096 --new-password-file " +
                       root_pw);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("{\"user\":\"root\",\"created\":true,\"roles\":[\"admin\"],\"commit\":"),
            std::string::npos)
      << r.out;
  r = Cairn("users");
  EXPECT_EQ(r.code, 7) << r.err;  // authentication is on now

  const std::string as_root = "CAIRN_USER=root CAIRN_PASSWORD_FILE=" + root_pw;
  auto ok = [&](const std::string& args, const std::string& env) {
    CommandRun run = Cairn(args, env);
    EXPECT_EQ(run.code, 0) << args << ": " << run.err;
    return run.out;
  };
  EXPECT_EQ(ok("users --json", as_root),
            "{\"name\":\"root\",\"roles\":[\"admin\"],\"iterations\":4096}\n");
  ok("role create ops --grant read:orders* --grant stats", as_root);
  ok("role grant ops write:orders", as_root);
  ok("role revoke ops stats", as_root);
  std::string roles = ok("roles --json", as_root);
  EXPECT_NE(roles.find("{\"name\":\"ops\",\"builtin\":false,\"grants\":["), std::string::npos)
      << roles;
  EXPECT_NE(roles.find("{\"permission\":\"read\",\"collection\":\"orders*\"}"), std::string::npos);
  EXPECT_NE(roles.find("{\"permission\":\"write\",\"collection\":\"orders\"}"), std::string::npos);
  size_t ops = roles.find("{\"name\":\"ops\"");
  ASSERT_NE(ops, std::string::npos) << roles;
  std::string ops_line = roles.substr(ops, roles.find('\n', ops) - ops);
  EXPECT_EQ(ops_line.find("stats"), std::string::npos) << ops_line;  // revoked
  EXPECT_NE(ok("roles", as_root).find("readonly"), std::string::npos);
  ok("user create bob --role readonly --iterations 4096 --new-password-file " + bob_pw, as_root);
  ok("user grant bob ops", as_root);
  std::string table = ok("users", as_root);
  EXPECT_EQ(table.rfind("NAME  ROLES         ITERATIONS\n", 0), 0u) << table;
  EXPECT_TRUE(table.find("bob   ops,readonly  4096\n") != std::string::npos ||
              table.find("bob   readonly,ops  4096\n") != std::string::npos)
      << table;
  EXPECT_NE(table.find("root  admin         4096\n"), std::string::npos) << table;
  ok("user revoke bob ops", as_root);

  // Bob logs in with flags, and a readonly user may not create users.
  EXPECT_EQ(Cairn("--user bob --password-file " + bob_pw + " collections").code, 0);
  r = Cairn("--user bob --password-file " + bob_pw + " user create mallory --new-password-file " +
            bob_pw);
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.err;

  // passwd: the old password fails, the new one works.
  ok("user passwd bob --iterations 4096 --new-password-file " + bob_new, as_root);
  r = Cairn("--user bob --password-file " + bob_pw + " collections");
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_NE(r.err.find("wrong password or unknown user"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("--user bob --password-file " + bob_new + " collections").code, 0);

  // Refusals and their exit codes.
  r = Cairn("user create carol --role no_such_role --new-password-file " + bob_pw, as_root);
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_NE(r.err.find("no_such_role"), std::string::npos) << r.err;
  EXPECT_EQ(Cairn("user create bob --new-password-file " + bob_pw, as_root).code, 4);
  EXPECT_EQ(Cairn("role create 'bad name'", as_root).code, 2);

  ok("role drop ops", as_root);
  ok("user drop bob", as_root);
  EXPECT_EQ(Cairn("--user bob --password-file " + bob_new + " collections").code, 7);
  EXPECT_EQ(ok("users --json", as_root),
            "{\"name\":\"root\",\"roles\":[\"admin\"],\"iterations\":4096}\n");
}

}  // namespace
}  // namespace cairn::client
