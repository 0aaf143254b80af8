// AuthStore (server/src/auth.h) on a real engine, without sockets: users and roles as
// records of the database, the checks of each change, what a principal may do; and the
// per-source slow-down of failed attempts (auth_throttle.h).
#include <gtest/gtest.h>

#include "auth.h"
#include "auth_throttle.h"
#include "temp_dir.h"
#include "test_util.h"

namespace cairn::server {
namespace {

using cairn::testing::OpenOrDie;
using cairn::testing::TempDir;
using cairn::testing::Txn;

scram::Credentials Creds(std::string_view password) {
  return scram::MakeCredentials(password, scram::kMinIterations);
}

User MakeUser(std::string name, std::vector<std::string> roles) {
  return User{std::move(name), Creds("pw-" + std::to_string(roles.size())), std::move(roles)};
}

class AuthStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenOrDie(dir_.path());
    auth_ = std::make_unique<AuthStore>(*db_);
  }
  TempDir dir_;
  std::unique_ptr<Engine> db_;
  std::unique_ptr<AuthStore> auth_;
};

TEST_F(AuthStoreTest, NoUsersMeansAuthenticationOff) {
  EXPECT_FALSE(auth_->enabled());
  EXPECT_EQ(auth_->Resolve("alice"), nullptr);
  EXPECT_FALSE(auth_->Credentials("alice"));
  EXPECT_EQ(auth_->ListRoles().size(), BuiltinRoles().size());
}

TEST_F(AuthStoreTest, UsersAreRecordsThatSurviveAReopen) {
  User alice = MakeUser("alice", {"admin"});
  ASSERT_TRUE(auth_->CreateUser(*db_, alice).ok());
  EXPECT_TRUE(auth_->enabled());
  auto creds = auth_->Credentials("alice");
  ASSERT_TRUE(creds);
  EXPECT_EQ(creds->stored_key, alice.credentials.stored_key);
  EXPECT_EQ(creds->salt, alice.credentials.salt);
  // In the database, in the system collection: a fresh store on a reopened engine sees it.
  auth_.reset();
  db_.reset();
  db_ = OpenOrDie(dir_.path());
  auth_ = std::make_unique<AuthStore>(*db_);
  EXPECT_TRUE(auth_->enabled());
  ASSERT_TRUE(auth_->Credentials("alice"));
  EXPECT_EQ(auth_->Credentials("alice")->server_key, alice.credentials.server_key);
  auto p = auth_->Resolve("alice");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->roles, std::vector<std::string>{"admin"});
  // Never the password: the stored document holds salt, iterations and the two keys.
  TxnResult r = db_->Execute(Txn({GetOp{kUsersCollection, "alice"}}));
  ASSERT_TRUE(r.status.ok() && r.results[0].found);
  EXPECT_EQ(r.results[0].records[0].value.find("pw-1"), std::string::npos);
  VerifyReport v = db_->Verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
}

TEST_F(AuthStoreTest, TheFirstUserMustBeAbleToManageUsers) {
  Status s = auth_->CreateUser(*db_, MakeUser("reader", {"readonly"}));
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("admin"), std::string::npos) << s.message();
  EXPECT_FALSE(auth_->enabled());
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).ok());
  EXPECT_TRUE(auth_->CreateUser(*db_, MakeUser("reader", {"readonly"})).ok());
}

TEST_F(AuthStoreTest, BadChangesAreRefusedWithTheirReason) {
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).ok());
  EXPECT_EQ(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).code(), Code::kAlreadyExists);
  EXPECT_EQ(auth_->CreateUser(*db_, MakeUser("has space", {})).code(), Code::kBadRequest);
  EXPECT_EQ(auth_->CreateUser(*db_, MakeUser(std::string(65, 'a'), {})).code(),
            Code::kBadRequest);
  Status unknown_role = auth_->CreateUser(*db_, MakeUser("bob", {"nosuchrole"}));
  EXPECT_EQ(unknown_role.code(), Code::kUnknownName);
  EXPECT_NE(unknown_role.message().find("nosuchrole"), std::string::npos);
  User weak = MakeUser("weak", {});
  weak.credentials.iterations = 1000;
  EXPECT_EQ(auth_->CreateUser(*db_, weak).code(), Code::kBadRequest);
  User short_key = MakeUser("short", {});
  short_key.credentials.stored_key.resize(16);
  EXPECT_EQ(auth_->CreateUser(*db_, short_key).code(), Code::kBadRequest);
  EXPECT_EQ(auth_->DropUser(*db_, "nobody").code(), Code::kUnknownName);
  EXPECT_EQ(auth_->GrantRole(*db_, "root", "nosuchrole").code(), Code::kUnknownName);
  EXPECT_EQ(auth_->DropRole(*db_, "admin").code(), Code::kBadRequest);
  EXPECT_EQ(auth_->GrantPermission(*db_, "readonly", {kPermWrite, "*"}).code(),
            Code::kBadRequest);
  // Grants: a collection permission needs a pattern, a server one none, never both kinds.
  EXPECT_EQ(auth_->CreateRole(*db_, Role{"r1", {{kPermRead, ""}}}).code(), Code::kBadRequest);
  EXPECT_EQ(auth_->CreateRole(*db_, Role{"r2", {{kPermStats, "c"}}}).code(), Code::kBadRequest);
  EXPECT_EQ(auth_->CreateRole(*db_, Role{"r3", {{kPermRead | kPermStats, "c"}}}).code(),
            Code::kBadRequest);
  EXPECT_EQ(auth_->CreateRole(*db_, Role{"r4", {{kPermRead, "$users"}}}).code(),
            Code::kBadRequest);
  EXPECT_EQ(auth_->CreateRole(*db_, Role{"r5", {{kPermRead, "a*b"}}}).code(), Code::kBadRequest);
  EXPECT_EQ(auth_->CreateRole(*db_, Role{"readonly", {}}).code(), Code::kAlreadyExists);
  // None of them left a trace.
  EXPECT_EQ(auth_->ListUsers().size(), 1u);
  EXPECT_EQ(auth_->ListRoles().size(), BuiltinRoles().size());
}

TEST_F(AuthStoreTest, NoChangeMayLeaveUsersThatNobodyCanManage) {
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).ok());
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("app", {"readwrite"})).ok());
  EXPECT_EQ(auth_->DropUser(*db_, "root").code(), Code::kBadRequest);
  EXPECT_EQ(auth_->RevokeRole(*db_, "root", "admin").code(), Code::kBadRequest);
  // A custom role with `users` can take over; then root may go.
  ASSERT_TRUE(auth_->CreateRole(*db_, Role{"useradmin", {{kPermUsers, ""}}}).ok());
  ASSERT_TRUE(auth_->GrantRole(*db_, "app", "useradmin").ok());
  EXPECT_EQ(auth_->DropRole(*db_, "useradmin").code(), Code::kBadRequest);  // held
  EXPECT_TRUE(auth_->DropUser(*db_, "root").ok());
  EXPECT_EQ(auth_->RevokePermission(*db_, "useradmin", {kPermUsers, ""}).code(),
            Code::kBadRequest);
  // The last user cannot be dropped either: that would switch authentication off.
  EXPECT_EQ(auth_->DropUser(*db_, "app").code(), Code::kBadRequest);
  EXPECT_TRUE(auth_->enabled());
}

TEST_F(AuthStoreTest, PrincipalsFollowRolesAndPatterns) {
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).ok());
  ASSERT_TRUE(auth_->CreateRole(*db_, Role{"app", {{kPermRead | kPermWrite, "app_*"},
                                                   {kPermRead, "shared"},
                                                   {kPermStats, ""}}})
                  .ok());
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("svc", {"app"})).ok());
  auto p = auth_->Resolve("svc");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->Allows(kPermWrite, "app_orders"));
  EXPECT_TRUE(p->Allows(kPermRead, "app_"));
  EXPECT_FALSE(p->Allows(kPermWrite, "ap"));
  EXPECT_FALSE(p->Allows(kPermAdmin, "app_orders"));
  EXPECT_TRUE(p->Allows(kPermRead, "shared"));
  EXPECT_FALSE(p->Allows(kPermWrite, "shared"));
  EXPECT_FALSE(p->Allows(kPermRead, "shared2"));
  EXPECT_TRUE(p->Allows(kPermStats));
  EXPECT_FALSE(p->Allows(kPermUsers));
  EXPECT_FALSE(p->Allows(kPermRead, "*"));  // not every collection
  auto root = auth_->Resolve("root");
  EXPECT_TRUE(root->Allows(kPermRead, "*"));
  EXPECT_TRUE(root->Allows(kPermAdmin, "anything"));
  EXPECT_TRUE(root->Allows(kPermVerify));
  // System collections match no pattern, even the admin's "*".
  EXPECT_FALSE(root->Allows(kPermRead, "$users"));
  // A change bumps the generation; a re-resolved principal sees it.
  uint64_t before = auth_->generation();
  ASSERT_TRUE(auth_->GrantPermission(*db_, "app", {kPermWrite, "shared"}).ok());
  EXPECT_GT(auth_->generation(), before);
  EXPECT_FALSE(p->Allows(kPermWrite, "shared"));  // the old one is a snapshot
  EXPECT_TRUE(auth_->Resolve("svc")->Allows(kPermWrite, "shared"));
  ASSERT_TRUE(auth_->RevokePermission(*db_, "app", {kPermRead | kPermWrite, "app_*"}).ok());
  EXPECT_FALSE(auth_->Resolve("svc")->Allows(kPermRead, "app_orders"));
  // A user with no role can do nothing.
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("nobody", {})).ok());
  auto none = auth_->Resolve("nobody");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->Allows(kPermRead, "shared"));
  EXPECT_FALSE(none->Allows(kPermStats));
  // Dropped: no principal at all.
  ASSERT_TRUE(auth_->DropUser(*db_, "svc").ok());
  EXPECT_EQ(auth_->Resolve("svc"), nullptr);
}

TEST_F(AuthStoreTest, ListsAreSortedAndRolesComeBuiltInFirst) {
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).ok());
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("bob", {"readwrite", "readonly", "readonly"})).ok());
  ASSERT_TRUE(auth_->CreateRole(*db_, Role{"zeta", {}}).ok());
  ASSERT_TRUE(auth_->CreateRole(*db_, Role{"alpha", {}}).ok());
  std::vector<User> users = auth_->ListUsers();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].name, "bob");
  EXPECT_EQ(users[0].roles, (std::vector<std::string>{"readonly", "readwrite"}));
  std::vector<Role> roles = auth_->ListRoles();
  ASSERT_EQ(roles.size(), BuiltinRoles().size() + 2);
  EXPECT_TRUE(roles[0].builtin);
  EXPECT_EQ(roles[BuiltinRoles().size()].name, "alpha");
  EXPECT_EQ(roles.back().name, "zeta");
  // Granting a held role, or revoking one not held, changes nothing and is no error.
  uint64_t commit = db_->LastCommit();
  EXPECT_TRUE(auth_->GrantRole(*db_, "bob", "readonly").ok());
  EXPECT_TRUE(auth_->RevokeRole(*db_, "bob", "admin").ok());
  EXPECT_EQ(db_->LastCommit(), commit);
}

TEST_F(AuthStoreTest, SetPasswordReplacesTheCredentials) {
  ASSERT_TRUE(auth_->CreateUser(*db_, MakeUser("root", {"admin"})).ok());
  scram::Credentials next = Creds("new password");
  ASSERT_TRUE(auth_->SetPassword(*db_, "root", next).ok());
  EXPECT_EQ(auth_->Credentials("root")->stored_key, next.stored_key);
  EXPECT_EQ(auth_->SetPassword(*db_, "nobody", next).code(), Code::kUnknownName);
}

TEST(MatchesPattern, NamesPrefixesAndStar) {
  EXPECT_TRUE(MatchesPattern("orders", "orders"));
  EXPECT_FALSE(MatchesPattern("orders", "orders2"));
  EXPECT_TRUE(MatchesPattern("ord*", "orders"));
  EXPECT_TRUE(MatchesPattern("ord*", "ord"));
  EXPECT_FALSE(MatchesPattern("ord*", "or"));
  EXPECT_TRUE(MatchesPattern("*", "x"));
  EXPECT_FALSE(MatchesPattern("*", "$users"));
  EXPECT_FALSE(MatchesPattern("$*", "$roles"));
  EXPECT_FALSE(MatchesPattern("", "x"));
}

TEST(AuthThrottle, FailuresSpaceTheNextAttemptsOfThatSourceOnly) {
  using Clock = AuthThrottle::Clock;
  AuthThrottle t;
  Clock::time_point now = Clock::now();
  EXPECT_EQ(t.Reserve("10.0.0.1", now), now);  // no failure yet: at once
  t.Failed("10.0.0.1", now);
  EXPECT_EQ(t.failures("10.0.0.1"), 1u);
  Clock::time_point first = t.Reserve("10.0.0.1", now);
  EXPECT_GE(first - now, AuthThrottle::kFirstDelay);
  t.Failed("10.0.0.1", now);
  Clock::time_point second = t.Reserve("10.0.0.1", now);
  EXPECT_GE(second - now, 2 * AuthThrottle::kFirstDelay);  // the turn after the first
  t.Failed("10.0.0.1", now);
  Clock::time_point third = t.Reserve("10.0.0.1", now);
  EXPECT_GE(third - now, 4 * AuthThrottle::kFirstDelay);
  EXPECT_EQ(t.Reserve("10.0.0.2", now), now);  // another source is unaffected
  // A success forgets the source.
  t.Succeeded("10.0.0.1");
  EXPECT_EQ(t.failures("10.0.0.1"), 0u);
  Clock::time_point later = now + std::chrono::hours(2);
  EXPECT_EQ(t.Reserve("10.0.0.1", later), later);
}

TEST(AuthThrottle, TheDelayIsCappedAndFailuresAreForgotten) {
  using Clock = AuthThrottle::Clock;
  AuthThrottle t;
  Clock::time_point now = Clock::now();
  for (int i = 0; i < 40; i++) t.Failed("h", now);
  Clock::time_point a = t.Reserve("h", now);
  Clock::time_point b = t.Reserve("h", now);
  EXPECT_LE(b - a, AuthThrottle::kMaxDelay);
  EXPECT_GE(b - a, AuthThrottle::kMaxDelay / 2);
  Clock::time_point much_later = b + AuthThrottle::kForget + std::chrono::seconds(1);
  EXPECT_EQ(t.Reserve("h", much_later), much_later);
}

TEST(AuthThrottle, RemembersABoundedNumberOfSources) {
  AuthThrottle t(64);
  auto now = AuthThrottle::Clock::now();
  for (int i = 0; i < 1000; i++) t.Failed("10.1." + std::to_string(i), now);
  EXPECT_LE(t.sources(), 64u);
}

}  // namespace
}  // namespace cairn::server
