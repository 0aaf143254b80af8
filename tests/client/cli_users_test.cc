// The cairn command line's users, roles and login (client/cli/user_commands.h): the
// parsing on its own (grants, password files, flags against variables, prompts), then the
// cairn binary against a scripted stand-in for cairnd (admin_script.h): what each command
// sends and prints, its exit codes, and passwords asked for without echo on a terminal.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "admin_script.h"
#include "command.h"
#include "user_commands.h"

#ifndef CAIRN_CLI_PATH
#error "CAIRN_CLI_PATH must name the cairn binary"
#endif

namespace cairn {
namespace {

using testing::AdminScript;
using testing::CommandRun;
using testing::FakePeer;
using testing::FakeServer;
using testing::TempDir;

std::string Write(const TempDir& dir, const std::string& name, const std::string& bytes) {
  std::string path = dir.Sub(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// What ParseGrant makes of `text`: "PERM COLLECTION", or "error: MESSAGE".
std::string Parsed(std::string_view text) {
  try {
    client::Grant g = cli::ParseGrant(text);
    return g.permission + " " + g.collection;
  } catch (const cli::UsageError& e) {
    return std::string("error: ") + e.what();
  }
}

std::string ReadOrError(const std::string& path) {
  try {
    return cli::ReadPasswordFile(path);
  } catch (const cli::UsageError& e) {
    return std::string("error: ") + e.what();
  }
}

// --- The parsing, called directly.

TEST(CliUsersParsingTest, GrantsArePermOnAPatternOrAServerWidePerm) {
  EXPECT_EQ(Parsed("read:orders"), "read orders");
  EXPECT_EQ(Parsed("write:logs_*"), "write logs_*");
  EXPECT_EQ(Parsed("admin:*"), "admin *");
  EXPECT_EQ(Parsed("read:a:b"), "read a:b");  // the first colon splits: names may hold more
  for (const char* p : {"users", "backup", "replication", "stats", "verify"}) {
    EXPECT_EQ(Parsed(p), std::string(p) + " ");
  }
  EXPECT_EQ(cli::GrantText({"read", "orders*"}), "read:orders*");
  EXPECT_EQ(cli::GrantText({"stats", ""}), "stats");
  EXPECT_EQ(cli::GrantText(cli::ParseGrant("write:x*")), "write:x*");
}

TEST(CliUsersParsingTest, BadGrantsSayWhatIsWrong) {
  auto error = [](std::string_view text) {
    std::string r = Parsed(text);
    EXPECT_EQ(r.rfind("error: ", 0), 0u) << text << " -> " << r;
    return r;
  };
  EXPECT_NE(error("raed:orders").find("unknown permission 'raed'"), std::string::npos);
  EXPECT_NE(error("raed:orders").find("read, write, admin"), std::string::npos);
  EXPECT_NE(error("").find("unknown permission ''"), std::string::npos);
  EXPECT_NE(error("READ:x").find("unknown permission 'READ'"), std::string::npos);
  EXPECT_NE(error("read").find("write read:NAME, read:PREFIX* or read:*"), std::string::npos);
  EXPECT_NE(error("read:").find("a permission on collections"), std::string::npos);
  EXPECT_NE(error("stats:x").find("'stats' is a server-wide permission"), std::string::npos);
  EXPECT_NE(error("users:").find("takes no collection"), std::string::npos);
  EXPECT_NE(error("read:a*b").find("'*' only at its end"), std::string::npos);
  EXPECT_NE(error("read:**").find("'*' only at its end"), std::string::npos);
}

TEST(CliUsersParsingTest, PasswordFilesLoseOneTrailingNewline) {
  TempDir dir;
  EXPECT_EQ(ReadOrError(Write(dir, "plain", "s3cret")), "s3cret");
  EXPECT_EQ(ReadOrError(Write(dir, "nl", "s3cret\n")), "s3cret");
  EXPECT_EQ(ReadOrError(Write(dir, "crlf", "s3cret\r\n")), "s3cret");
  EXPECT_EQ(ReadOrError(Write(dir, "two", "s3cret\n\n")), "s3cret\n");
  EXPECT_EQ(ReadOrError(Write(dir, "inner", " a b\tc \n")), " a b\tc ");
  EXPECT_EQ(ReadOrError(Write(dir, "bytes", std::string("\xff\x00x", 3))), std::string("\xff\x00x", 3));
}

TEST(CliUsersParsingTest, AnEmptyMissingOrUnreadablePasswordFileIsAnError) {
  TempDir dir;
  std::string empty = Write(dir, "empty", "");
  EXPECT_EQ(ReadOrError(empty), "error: the password file " + empty + " is empty");
  std::string newline = Write(dir, "newline", "\n");
  EXPECT_EQ(ReadOrError(newline), "error: the password file " + newline + " is empty");
  EXPECT_EQ(ReadOrError(dir.Sub("missing")),
            "error: cannot read the password file " + dir.Sub("missing") +
                ": No such file or directory");
  EXPECT_EQ(ReadOrError(dir.path()),
            "error: cannot read the password file " + dir.path() + ": Is a directory");
  EXPECT_NE(ReadOrError(Write(dir, "big", std::string(100 << 10, 'x'))).find("larger than 64 KiB"),
            std::string::npos);
}

struct Login {
  std::string user, password_file;
};

// The login that `args` give with the environment `env`.
Login LoginFrom(const std::string& args, std::map<std::string, std::string> env) {
  CLI::App app;
  cli::LoginArgs login;
  cli::AddLoginOptions(app, &login, [&](const char* name) { return env[name]; });
  app.parse(args, false);
  return {login.user, login.password_file};
}

TEST(CliUsersParsingTest, FlagsBeatTheirVariables) {
  std::map<std::string, std::string> env = {{"CAIRN_USER", "alice"},
                                            {"CAIRN_PASSWORD_FILE", "/env/pw"}};
  Login l = LoginFrom("", env);
  EXPECT_EQ(l.user, "alice");
  EXPECT_EQ(l.password_file, "/env/pw");
  l = LoginFrom("--user carol", env);
  EXPECT_EQ(l.user, "carol");
  EXPECT_EQ(l.password_file, "/env/pw");
  l = LoginFrom("--password-file /flag/pw", env);
  EXPECT_EQ(l.user, "alice");
  EXPECT_EQ(l.password_file, "/flag/pw");
  l = LoginFrom("--user carol --password-file /flag/pw", env);
  EXPECT_EQ(l.user, "carol");
  EXPECT_EQ(l.password_file, "/flag/pw");
  l = LoginFrom("", {});
  EXPECT_EQ(l.user, "");
  EXPECT_EQ(l.password_file, "");
}

std::string ApplyOrError(const cli::LoginArgs& login, client::ClientOptions* o,
                         const cli::Prompt& prompt) {
  try {
    cli::ApplyLogin(login, o, prompt);
    return "user=" + o->user + " password=" + o->password;
  } catch (const cli::UsageError& e) {
    return std::string("error: ") + e.what();
  }
}

TEST(CliUsersParsingTest, TheLoginsPasswordFromItsFileOrAPrompt) {
  TempDir dir;
  std::string file = Write(dir, "pw", "from file\n");
  std::vector<std::string> asked;
  std::optional<std::string> answer;
  cli::Prompt prompt = [&](const std::string& p) {
    asked.push_back(p);
    return answer;
  };
  client::ClientOptions o;
  EXPECT_EQ(ApplyOrError({"alice", file}, &o, prompt), "user=alice password=from file");
  EXPECT_TRUE(asked.empty());

  // No file: asked for on the terminal, or an error when there is none.
  answer = "typed";
  o = {};
  EXPECT_EQ(ApplyOrError({"alice", ""}, &o, prompt), "user=alice password=typed");
  EXPECT_EQ(asked, std::vector<std::string>{"password of 'alice': "});
  answer = std::nullopt;
  o = {};
  EXPECT_EQ(ApplyOrError({"alice", ""}, &o, prompt),
            "error: --user alice needs a password: give --password-file FILE (or "
            "$CAIRN_PASSWORD_FILE); standard input is not a terminal to ask on");
  answer = "";
  EXPECT_EQ(ApplyOrError({"alice", ""}, &o, prompt), "error: no password given for 'alice'");

  // No user: nothing to do, but a password file without one is a mistake.
  o = {};
  EXPECT_EQ(ApplyOrError({"", ""}, &o, prompt), "user= password=");
  EXPECT_NE(ApplyOrError({"", file}, &o, prompt).find("without a user"), std::string::npos);
  // A bad file is reported as such, not replaced by a prompt.
  EXPECT_NE(ApplyOrError({"alice", dir.Sub("nope")}, &o, prompt).find("cannot read"),
            std::string::npos);
}

TEST(CliUsersParsingTest, CommandsAndTheirOptions) {
  auto parse = [](const std::string& args) {
    auto app = std::make_unique<CLI::App>();
    auto c = std::make_unique<cli::UserCommands>();
    cli::AddUserCommands(*app, c.get());
    app->parse(args, false);
    return std::make_pair(std::move(app), std::move(c));
  };
  auto [a1, c1] = parse("user create --role readonly bob --role ops --new-password-file /f "
                        "--iterations 5000");
  EXPECT_TRUE(c1->chosen());
  EXPECT_TRUE(*c1->user_create);
  EXPECT_EQ(c1->name, "bob");
  EXPECT_EQ(c1->with_roles, (std::vector<std::string>{"readonly", "ops"}));
  EXPECT_EQ(c1->new_password_file, "/f");
  EXPECT_EQ(c1->iterations, 5000u);
  auto [a2, c2] = parse("role create r --grant read:a* --grant stats");
  EXPECT_EQ(c2->grants, (std::vector<std::string>{"read:a*", "stats"}));
  auto [a3, c3] = parse("role revoke r write:x");
  EXPECT_TRUE(*c3->role_revoke);
  EXPECT_EQ(c3->name, "r");
  EXPECT_EQ(c3->grant, "write:x");
  auto [a4, c4] = parse("users --json");
  EXPECT_TRUE(c4->json);
  EXPECT_THROW(parse("user passwd bob --iterations 100"), CLI::ParseError);
  EXPECT_THROW(parse("user grant bob"), CLI::ParseError);
  EXPECT_THROW(parse("user"), CLI::ParseError);
}

// --- The cairn binary against the stand-in.

class CliUsersTest : public ::testing::Test {
 protected:
  explicit CliUsersTest(uint32_t protocol = wire::kProtocolVersion)
      : server_([this](FakePeer& p, const wire::RequestFrame& f) { script_(p, f); }, protocol) {}

  // Runs `cairn ARGS` with CAIRN_ADDR set to the stand-in, no login variables but `env`
  // ("NAME=VALUE ..."), and stdin from a file (not a terminal).
  CommandRun Cairn(const std::string& args, const std::string& env = "") {
    return testing::RunCommand("env -u CAIRN_USER -u CAIRN_PASSWORD_FILE CAIRN_ADDR=" +
                                   server_.address() + " " + env + " " CAIRN_CLI_PATH " " + args,
                               dir_);
  }
  std::string File(const std::string& name, const std::string& bytes) {
    return Write(dir_, name, bytes);
  }

  TempDir dir_;
  AdminScript script_;
  FakeServer server_;
};

TEST_F(CliUsersTest, UserCreateSendsCredentialsOfTheNewPasswordFile) {
  std::string pw = File("bob.pw", "s3cret\n");
  CommandRun r = Cairn("user create bob --role readonly --role ops --new-password-file " + pw +
                       " --iterations 4096");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"user\":\"bob\",\"created\":true,\"roles\":[\"readonly\",\"ops\"],\"commit\":41}\n");
  EXPECT_EQ(script_.seen(), "CreateUser bob [readonly,ops] i=4096\n");
  std::optional<scram::Credentials> c = script_.last_credentials();
  ASSERT_TRUE(c);
  EXPECT_TRUE(AdminScript::Opens(*c, "bob", "s3cret"));
  EXPECT_FALSE(AdminScript::Opens(*c, "bob", "s3cret\n"));
  // The password is nowhere on the command line, and not printed.
  EXPECT_EQ(r.out.find("s3cret"), std::string::npos);
  EXPECT_EQ(r.err.find("s3cret"), std::string::npos);

  r = Cairn("user passwd bob --new-password-file " + File("new.pw", "n3w"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"user\":\"bob\",\"password_changed\":true,\"commit\":42}\n");
  c = script_.last_credentials();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->iterations, scram::kDefaultIterations);
  EXPECT_TRUE(AdminScript::Opens(*c, "bob", "n3w"));
}

TEST_F(CliUsersTest, EveryCommandSendsItsRequestAndPrintsItsResult) {
  std::string out;
  for (const char* args : {"user grant bob admin", "user revoke bob admin",
                           "role create ops --grant read:orders* --grant stats", "role create empty",
                           "role grant ops write:logs", "role revoke ops verify", "role drop empty",
                           "user drop bob"}) {
    CommandRun r = Cairn(args);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    out += r.out;
  }
  EXPECT_EQ(out,
            "{\"user\":\"bob\",\"role\":\"admin\",\"granted\":true,\"commit\":41}\n"
            "{\"user\":\"bob\",\"role\":\"admin\",\"revoked\":true,\"commit\":42}\n"
            "{\"role\":\"ops\",\"created\":true,\"grants\":[{\"permission\":\"read\",\"collection\":"
            "\"orders*\"},{\"permission\":\"stats\"}],\"commit\":43}\n"
            "{\"role\":\"empty\",\"created\":true,\"grants\":[],\"commit\":44}\n"
            "{\"role\":\"ops\",\"grant\":{\"permission\":\"write\",\"collection\":\"logs\"},"
            "\"granted\":true,\"commit\":45}\n"
            "{\"role\":\"ops\",\"grant\":{\"permission\":\"verify\"},\"revoked\":true,\"commit\":46}\n"
            "{\"role\":\"empty\",\"dropped\":true,\"commit\":47}\n"
            "{\"user\":\"bob\",\"dropped\":true,\"commit\":48}\n");
  EXPECT_EQ(script_.seen(),
            "GrantRole bob admin\nRevokeRole bob admin\nCreateRole ops [read:orders*,stats]\n"
            "CreateRole empty []\nGrantPermission ops write:logs\nRevokePermission ops verify\n"
            "DropRole empty\nDropUser bob\n");
}

TEST_F(CliUsersTest, UsersAndRolesPrintATableOrJsonLines) {
  script_.SetUsers({{"ada", {"admin"}, 15000}, {"bob.smith@x", {"readonly", "ops"}, 4096}});
  script_.SetRoles({{"admin", true, {{"admin", "*"}, {"users", ""}}},
                    {"ops", false, {{"read", "orders*"}, {"stats", ""}}},
                    {"nothing", false, {}}});
  CommandRun r = Cairn("users");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME         ROLES         ITERATIONS\n"
            "ada          admin         15000\n"
            "bob.smith@x  readonly,ops  4096\n");
  r = Cairn("users --json");
  EXPECT_EQ(r.out,
            "{\"name\":\"ada\",\"roles\":[\"admin\"],\"iterations\":15000}\n"
            "{\"name\":\"bob.smith@x\",\"roles\":[\"readonly\",\"ops\"],\"iterations\":4096}\n");
  r = Cairn("roles");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME     BUILTIN  GRANTS\n"
            "admin    yes      admin:*,users\n"
            "ops      no       read:orders*,stats\n"
            "nothing  no       -\n");
  r = Cairn("roles --json");
  EXPECT_EQ(r.out,
            "{\"name\":\"admin\",\"builtin\":true,\"grants\":[{\"permission\":\"admin\","
            "\"collection\":\"*\"},{\"permission\":\"users\"}]}\n"
            "{\"name\":\"ops\",\"builtin\":false,\"grants\":[{\"permission\":\"read\","
            "\"collection\":\"orders*\"},{\"permission\":\"stats\"}]}\n"
            "{\"name\":\"nothing\",\"builtin\":false,\"grants\":[]}\n");
  script_.SetUsers({});
  EXPECT_EQ(Cairn("users").out, "no users (the server does not ask for authentication)\n");
  EXPECT_EQ(Cairn("users --json").out, "");
}

TEST_F(CliUsersTest, RefusalsExitWithTheirCode) {
  std::string pw = File("pw", "pw");
  script_.FailWith(wire::ErrorCode::PermissionDenied, "user 'ro' may not manage users");
  CommandRun r = Cairn("user create bob --new-password-file " + pw);
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_EQ(r.err, "cairn: permission denied: user 'ro' may not manage users\n");
  script_.FailWith(wire::ErrorCode::NotFound, "role 'nope' does not exist");
  r = Cairn("user grant bob nope");
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_NE(r.err.find("role 'nope' does not exist"), std::string::npos) << r.err;
  script_.FailWith(wire::ErrorCode::AlreadyExists, "user 'bob' exists already");
  EXPECT_EQ(Cairn("user create bob --new-password-file " + pw).code, 4);
  script_.FailWith(wire::ErrorCode::BadRequest, "invalid role name");
  EXPECT_EQ(Cairn("role create 'a b'").code, 2);
}

TEST_F(CliUsersTest, LoginFromFlagsOrVariablesAndFlagsWin) {
  script_.AddLogin("alice", "alice pw");
  script_.AddLogin("carol", "carol pw");
  std::string alice = File("alice.pw", "alice pw\n"), carol = File("carol.pw", "carol pw\n");
  CommandRun r = Cairn("users", "CAIRN_USER=alice CAIRN_PASSWORD_FILE=" + alice);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(script_.authenticated_as(), "alice");
  r = Cairn("--user carol --password-file " + carol + " users",
            "CAIRN_USER=alice CAIRN_PASSWORD_FILE=" + alice);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(script_.authenticated_as(), "carol");
  r = Cairn("users --password-file " + alice, "CAIRN_USER=alice");  // after the command too
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(script_.authenticated_as(), "alice");

  // Without a login the stand-in refuses; with a wrong password, authentication fails.
  r = Cairn("users");
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_NE(r.err.find("authentication required"), std::string::npos) << r.err;
  r = Cairn("--user alice --password-file " + carol + " users");
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_NE(r.err.find("cannot authenticate to cairnd at"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("as 'alice': wrong password or unknown user"), std::string::npos) << r.err;
}

TEST_F(CliUsersTest, PasswordProblemsAreUsageErrorsBeforeConnecting) {
  auto usage = [&](const std::string& args, const std::string& env, const std::string& says) {
    CommandRun r = Cairn(args, env);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << args << ": " << r.err;
  };
  usage("--user alice --password-file " + dir_.Sub("missing") + " users", "",
        "cannot read the password file " + dir_.Sub("missing") + ": No such file or directory");
  usage("--user alice --password-file " + File("empty", "") + " users", "", "is empty");
  usage("users", "CAIRN_USER=alice CAIRN_PASSWORD_FILE=" + File("nl", "\n"), "is empty");
  usage("--user alice users", "", "standard input is not a terminal to ask on");
  usage("users", "CAIRN_PASSWORD_FILE=" + File("pw", "pw"), "without a user");
  // The new user's password is not the global --password-file: that is the login's, and
  // without a --user it is refused rather than taken for the new user's.
  usage("user create bob --password-file " + File("pw", "pw"), "",
        "without a user (--user or $CAIRN_USER) to connect as; the password of a user being "
        "created or changed is --new-password-file");
  usage("user create bob", "", "give --new-password-file FILE");
  usage("user passwd bob", "", "give --new-password-file FILE");
  usage("user create 'no spaces' --new-password-file " + File("pw", "pw"), "",
        "is not a valid user name");
  usage("user create bob --iterations 100 --new-password-file " + File("pw", "pw"), "",
        "not in range");
  usage("role create r --grant raed:x", "", "unknown permission 'raed'");
  usage("role grant r stats:x", "", "server-wide");
  usage("role revoke r read", "", "read:PREFIX*");
  usage("role grant r read:a*b", "", "only at its end");
  EXPECT_EQ(server_.connections(), 0);
  EXPECT_EQ(script_.seen(), "");
}

TEST_F(CliUsersTest, MisspeltCommandsAndSubcommandsAreNamed) {
  std::string pw = File("pw", "pw");
  auto named = [&](const std::string& args, const std::string& says) {
    CommandRun r = Cairn(args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_EQ(r.err, "cairn: " + says + "\n") << args;
  };
  named("userss", "unknown command 'userss'; did you mean 'users'?");
  named("user crate bob", "unknown command 'user crate'; did you mean 'user create'?");
  named("role grnt r stats", "unknown command 'role grnt'; did you mean 'role grant'?");
  named("user frobnicate", "unknown command 'user frobnicate'; cairn user --help lists them");
  // Options that take a value are skipped, the top level's before and after a group.
  named("--user alice --password-file " + pw + " --addr x:1 rolesz",
        "unknown command 'rolesz'; did you mean 'roles'?");
  named("user --user alice crate bob", "unknown command 'user crate'; did you mean 'user create'?");
  EXPECT_EQ(server_.connections(), 0);
}

class CliUsersOldServerTest : public CliUsersTest {
 protected:
  CliUsersOldServerTest() : CliUsersTest(5) {}
};

TEST_F(CliUsersOldServerTest, AServerOlderThanProtocol6IsNamed) {
  CommandRun r = Cairn("users");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err, "cairn: bad request: ListUsers needs a server that speaks protocol 6; this one "
                   "speaks 5\n");
  EXPECT_EQ(script_.seen(), "");
}

// Runs cairn on a pseudo-terminal; `answers`: for each prompt (a text the output must show
// first), the line to type. Returns what the terminal showed and the exit code.
std::pair<std::string, int> OnTerminal(const std::vector<std::string>& args,
                                       const std::vector<std::pair<std::string, std::string>>& answers) {
  int fd;
  pid_t pid = forkpty(&fd, nullptr, nullptr, nullptr);
  if (pid == 0) {
    unsetenv("CAIRN_USER");
    unsetenv("CAIRN_PASSWORD_FILE");
    std::vector<char*> argv = {const_cast<char*>(CAIRN_CLI_PATH)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  std::string shown;
  auto read_until = [&](const std::string& what, int ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (what.empty() || shown.find(what) == std::string::npos) {
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                         deadline - std::chrono::steady_clock::now())
                         .count());
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, left) <= 0) return;
      char buf[512];
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) return;
      shown.append(buf, size_t(n));
    }
  };
  size_t at = 0;
  for (const auto& [prompt, line] : answers) {
    read_until(prompt, 10000);
    size_t found = shown.find(prompt, at);
    EXPECT_NE(found, std::string::npos) << "no prompt '" << prompt << "' in: " << shown;
    at = found == std::string::npos ? at : found + prompt.size();
    std::string typed = line + "\n";
    EXPECT_EQ(write(fd, typed.data(), typed.size()), ssize_t(typed.size()));
  }
  read_until("", 10000);  // to the end (EOF or EIO once cairn exits)
  int status = 0;
  waitpid(pid, &status, 0);
  close(fd);
  return {shown, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST_F(CliUsersTest, PasswordsAreAskedForWithoutEchoOnATerminal) {
  script_.AddLogin("alice", "alice pw");
  auto [shown, code] = OnTerminal(
      {"--addr", server_.address(), "--user", "alice", "user", "create", "bob", "--iterations",
       "4096"},
      {{"new password for 'bob': ", "typed secret"},
       {"the same again: ", "typed secret"},
       {"password of 'alice': ", "alice pw"}});
  EXPECT_EQ(code, 0) << shown;
  EXPECT_EQ(shown.find("typed secret"), std::string::npos) << "echoed: " << shown;
  EXPECT_EQ(shown.find("alice pw"), std::string::npos) << "echoed: " << shown;
  EXPECT_NE(shown.find("\"created\":true"), std::string::npos) << shown;
  EXPECT_EQ(script_.authenticated_as(), "alice");
  std::optional<scram::Credentials> c = script_.last_credentials();
  ASSERT_TRUE(c);
  EXPECT_TRUE(AdminScript::Opens(*c, "bob", "typed secret"));

  // Two different answers: nothing is sent.
  std::tie(shown, code) = OnTerminal({"--addr", server_.address(), "user", "passwd", "bob"},
                                     {{"new password for 'bob': ", "one"},
                                      {"the same again: ", "two"}});
  EXPECT_EQ(code, 2) << shown;
  EXPECT_NE(shown.find("the two passwords differ; nothing was changed"), std::string::npos) << shown;
  EXPECT_EQ(script_.seen(), "CreateUser bob [] i=4096\n");
}

}  // namespace
}  // namespace cairn
