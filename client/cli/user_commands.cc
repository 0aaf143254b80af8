#include "user_commands.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cairn/protocol/json.h"
#include "cairn/protocol/scram.h"

namespace cairn::cli {

namespace {

using client::ErrorCode;
using client::Grant;

constexpr std::string_view kCollectionPermissions[] = {"read", "write", "admin"};
constexpr std::string_view kServerPermissions[] = {"users", "backup", "replication", "stats",
                                                   "verify"};
constexpr const char* kPermissionList =
    "on collections: read, write, admin, as PERM:PATTERN; server-wide: users, backup, "
    "replication, stats, verify";

// A password file is a few bytes; anything larger is the wrong file.
constexpr size_t kMaxPasswordFile = 64 << 10;

std::string Text(std::string_view s) {
  std::string out;
  AppendJsonText(s, &out);
  return out;
}

template <size_t N>
bool OneOf(std::string_view word, const std::string_view (&list)[N]) {
  return std::find(std::begin(list), std::end(list), word) != std::end(list);
}

// --- Reading a password without echo. The terminal's settings are put back however the
// prompt ends, a signal (Ctrl-C) included.

struct termios g_saved_termios;
volatile std::sig_atomic_t g_termios_saved = 0;

void RestoreTerminalAndDie(int sig) {
  if (g_termios_saved) tcsetattr(0, TCSANOW, &g_saved_termios);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::string GrantJson(const Grant& g) {
  std::string out = "{\"permission\":" + Text(g.permission);
  if (!g.collection.empty()) out += ",\"collection\":" + Text(g.collection);
  return out + "}";
}

std::string ListJson(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); i++) out += (i ? "," : "") + Text(v[i]);
  return out + "]";
}

std::string GrantsJson(const std::vector<Grant>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); i++) out += (i ? "," : "") + GrantJson(v[i]);
  return out + "]";
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + PrintableText(s);
  return out.empty() ? "-" : out;
}

void PrintUsers(const std::vector<client::UserInfo>& users, bool json) {
  if (json) {
    for (const client::UserInfo& u : users) {
      std::printf("{\"name\":%s,\"roles\":%s,\"iterations\":%u}\n", Text(u.name).c_str(),
                  ListJson(u.roles).c_str(), unsigned(u.iterations));
    }
    return;
  }
  if (users.empty()) {
    std::printf("no users (the server does not ask for authentication)\n");
    return;
  }
  int name_w = 4, roles_w = 5;
  for (const client::UserInfo& u : users) {
    name_w = std::max(name_w, int(PrintableText(u.name).size()));
    roles_w = std::max(roles_w, int(Joined(u.roles).size()));
  }
  std::printf("%-*s  %-*s  %s\n", name_w, "NAME", roles_w, "ROLES", "ITERATIONS");
  for (const client::UserInfo& u : users) {
    std::printf("%-*s  %-*s  %u\n", name_w, PrintableText(u.name).c_str(), roles_w,
                Joined(u.roles).c_str(), unsigned(u.iterations));
  }
}

void PrintRoles(const std::vector<client::RoleInfo>& roles, bool json) {
  if (json) {
    for (const client::RoleInfo& r : roles) {
      std::printf("{\"name\":%s,\"builtin\":%s,\"grants\":%s}\n", Text(r.name).c_str(),
                  r.builtin ? "true" : "false", GrantsJson(r.grants).c_str());
    }
    return;
  }
  int name_w = 4;
  for (const client::RoleInfo& r : roles) name_w = std::max(name_w, int(PrintableText(r.name).size()));
  std::printf("%-*s  %-7s  %s\n", name_w, "NAME", "BUILTIN", "GRANTS");
  for (const client::RoleInfo& r : roles) {
    std::vector<std::string> grants;
    for (const Grant& g : r.grants) grants.push_back(GrantText(g));
    std::printf("%-*s  %-7s  %s\n", name_w, PrintableText(r.name).c_str(),
                r.builtin ? "yes" : "no", Joined(grants).c_str());
  }
}

// The password for user create or passwd: --new-password-file, or asked twice.
std::string NewPassword(const UserCommands& c, const std::string& command, const Prompt& prompt) {
  if (!c.new_password_file.empty()) return ReadPasswordFile(c.new_password_file);
  std::optional<std::string> first = prompt("new password for '" + c.name + "': ");
  if (!first) {
    throw UsageError(command + " needs the password of '" + c.name +
                     "': give --new-password-file FILE (standard input is not a terminal to "
                     "ask on)");
  }
  if (first->empty()) throw UsageError("no password given; nothing was changed");
  std::optional<std::string> again = prompt("the same again: ");
  if (!again || *again != *first) throw UsageError("the two passwords differ; nothing was changed");
  return *first;
}

void CheckUserName(const std::string& name) {
  if (!scram::ValidUserName(name)) {
    throw UsageError("'" + name + "' is not a valid user name: 1 to 64 of letters, digits, "
                     "'_', '-', '.', '@'");
  }
}

}  // namespace

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void AddLoginOptions(CLI::App& app, LoginArgs* login, const Env& env) {
  login->user = env("CAIRN_USER");
  login->password_file = env("CAIRN_PASSWORD_FILE");
  app.add_option("--user", login->user,
                 "Authenticate as this user (or $CAIRN_USER), with the password in "
                 "--password-file, else asked for on the terminal");
  app.add_option("--password-file", login->password_file,
                 "The file holding the password of --user (or $CAIRN_PASSWORD_FILE); one "
                 "trailing newline is ignored. There is no option for the password itself "
                 "(ps would show it). Not the password of a user being created or changed: "
                 "that is --new-password-file");
}

std::optional<std::string> PromptOnTerminal(const std::string& prompt) {
  if (!isatty(0)) return std::nullopt;
  // Echo goes off before the prompt shows, so that nothing typed after it is ever echoed.
  struct termios quiet;
  bool restore = tcgetattr(0, &g_saved_termios) == 0;
  struct sigaction on_signal {}, old_int {}, old_term {};
  if (restore) {
    g_termios_saved = 1;
    on_signal.sa_handler = RestoreTerminalAndDie;
    sigemptyset(&on_signal.sa_mask);
    sigaction(SIGINT, &on_signal, &old_int);
    sigaction(SIGTERM, &on_signal, &old_term);
    quiet = g_saved_termios;
    quiet.c_lflag &= ~tcflag_t(ECHO);
    tcsetattr(0, TCSAFLUSH, &quiet);
  }
  std::fprintf(stderr, "cairn: %s", prompt.c_str());
  std::fflush(stderr);
  std::string line;
  char ch;
  while (true) {
    ssize_t n = ::read(0, &ch, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || ch == '\n') break;
    line += ch;
  }
  if (restore) {
    tcsetattr(0, TCSANOW, &g_saved_termios);
    g_termios_saved = 0;
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
  std::fputc('\n', stderr);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string ReadPasswordFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw UsageError("cannot read the password file " + path + ": " + std::strerror(errno));
  }
  std::string bytes;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw UsageError("cannot read the password file " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    bytes.append(buf, size_t(n));
    if (bytes.size() > kMaxPasswordFile) {
      ::close(fd);
      throw UsageError("the password file " + path + " is larger than 64 KiB: not a password");
    }
  }
  ::close(fd);
  if (!bytes.empty() && bytes.back() == '\n') {
    bytes.pop_back();
    if (!bytes.empty() && bytes.back() == '\r') bytes.pop_back();
  }
  if (bytes.empty()) throw UsageError("the password file " + path + " is empty");
  return bytes;
}

void CheckLogin(const LoginArgs& login) {
  if (login.user.empty() && !login.password_file.empty()) {
    throw UsageError("a password file (--password-file or $CAIRN_PASSWORD_FILE) without a "
                     "user (--user or $CAIRN_USER) to connect as; the password of a user "
                     "being created or changed is --new-password-file");
  }
}

void ApplyLogin(const LoginArgs& login, client::ClientOptions* options, const Prompt& prompt) {
  CheckLogin(login);
  if (login.user.empty()) return;
  options->user = login.user;
  if (!login.password_file.empty()) {
    options->password = ReadPasswordFile(login.password_file);
    return;
  }
  std::optional<std::string> password = prompt("password of '" + login.user + "': ");
  if (!password) {
    throw UsageError("--user " + login.user + " needs a password: give --password-file FILE "
                     "(or $CAIRN_PASSWORD_FILE); standard input is not a terminal to ask on");
  }
  if (password->empty()) throw UsageError("no password given for '" + login.user + "'");
  options->password = std::move(*password);
}

Grant ParseGrant(std::string_view text) {
  size_t colon = text.find(':');
  std::string permission(text.substr(0, colon));
  std::string pattern(colon == std::string_view::npos ? "" : text.substr(colon + 1));
  if (OneOf(permission, kServerPermissions)) {
    if (colon != std::string_view::npos) {
      throw UsageError("'" + permission + "' is a server-wide permission: it takes no "
                       "collection (write " + permission + ", not " + std::string(text) + ")");
    }
    return Grant{permission, ""};
  }
  if (!OneOf(permission, kCollectionPermissions)) {
    throw UsageError("unknown permission '" + permission + "' in '" + std::string(text) +
                     "' (" + kPermissionList + ")");
  }
  if (pattern.empty()) {
    throw UsageError("'" + permission + "' is a permission on collections: write " + permission +
                     ":NAME, " + permission + ":PREFIX* or " + permission +
                     ":* (every collection)");
  }
  size_t star = pattern.find('*');
  if (star != std::string::npos && star + 1 != pattern.size()) {
    throw UsageError("'" + pattern + "': a pattern is a collection name, or a prefix followed "
                     "by '*' ('*' only at its end)");
  }
  return Grant{permission, pattern};
}

std::string GrantText(const Grant& g) {
  return g.collection.empty() ? g.permission : g.permission + ":" + g.collection;
}

bool UserCommands::chosen() const {
  for (const CLI::App* c : {user, users, role, roles}) {
    if (c && *c) return true;
  }
  return false;
}

void AddUserCommands(CLI::App& app, UserCommands* c) {
  auto add_new_password = [c](CLI::App* cmd) {
    cmd->add_option("--new-password-file", c->new_password_file,
                    "The file holding the new password (one trailing newline ignored); "
                    "without it, it is asked for twice on the terminal. Not --password-file, "
                    "which is the password of --user, the user this command connects as");
    cmd->add_option("--iterations", c->iterations,
                    "PBKDF2 iterations of the stored credentials (default 15000): each "
                    "connection of the user costs as many, and so does each guess of an "
                    "offline attack")
        ->check(CLI::Range(4096u, 10000000u));
  };

  c->user = app.add_subcommand(
      "user", "Manage users: create, drop, grant, revoke, passwd (needs the permission 'users')");
  c->user->require_subcommand(1);
  c->user_create = c->user->add_subcommand(
      "create", "Create a user; the first one over loopback, on a server with no users (which "
                "asks for no authentication until then)");
  c->user_create->add_option("NAME", c->name, "1 to 64 of letters, digits, _ - . @")->required();
  c->user_create
      ->add_option("--role", c->with_roles,
                   "A role it holds (repeat for more): admin, readwrite, readonly, "
                   "replication, or one made with role create")
      ->allow_extra_args(false);
  add_new_password(c->user_create);
  c->user_drop = c->user->add_subcommand("drop", "Drop a user (its connections are closed)");
  c->user_drop->add_option("NAME", c->name)->required();
  c->user_grant = c->user->add_subcommand("grant", "Give a user a role");
  c->user_grant->add_option("NAME", c->name)->required();
  c->user_grant->add_option("ROLE", c->role_name)->required();
  c->user_revoke = c->user->add_subcommand("revoke", "Take a role from a user");
  c->user_revoke->add_option("NAME", c->name)->required();
  c->user_revoke->add_option("ROLE", c->role_name)->required();
  c->user_passwd = c->user->add_subcommand(
      "passwd", "Change a user's password (a user may always change its own)");
  c->user_passwd->add_option("NAME", c->name)->required();
  add_new_password(c->user_passwd);
  c->users = app.add_subcommand("users", "List users: name, roles, iterations");
  c->users->add_flag("--json", c->json, "One JSON line per user instead of a table");

  c->role = app.add_subcommand(
      "role", "Manage roles: create, drop, grant, revoke (needs the permission 'users'). A "
              "GRANT is PERM:PATTERN on collections (read, write, admin; PATTERN a name, "
              "PREFIX* or *) or a server-wide PERM (users, backup, replication, stats, verify)");
  c->role->require_subcommand(1);
  c->role_create = c->role->add_subcommand("create", "Create a role");
  c->role_create->add_option("NAME", c->name)->required();
  c->role_create
      ->add_option("--grant", c->grants,
                   "PERM:PATTERN or PERM, a permission it grants (repeat for more): "
                   "read:orders, write:logs_*, admin:*, stats")
      ->allow_extra_args(false);
  c->role_drop = c->role->add_subcommand("drop", "Drop a role (refused while a user holds it)");
  c->role_drop->add_option("NAME", c->name)->required();
  c->role_grant = c->role->add_subcommand("grant", "Add a permission to a role");
  c->role_grant->add_option("ROLE", c->name)->required();
  c->role_grant->add_option("GRANT", c->grant, "PERM:PATTERN or PERM")->required();
  c->role_revoke = c->role->add_subcommand("revoke", "Remove a permission from a role");
  c->role_revoke->add_option("ROLE", c->name)->required();
  c->role_revoke->add_option("GRANT", c->grant, "PERM:PATTERN or PERM")->required();
  c->roles = app.add_subcommand("roles", "List roles: name, built-in, grants");
  c->roles->add_flag("--json", c->json, "One JSON line per role instead of a table");
}

int RunUserCommand(const UserCommands& c,
                   const std::function<client::Client&(uint32_t iterations)>& connect,
                   const Prompt& prompt) {
  auto done = [](const std::string& fields) { std::printf("{%s}\n", fields.c_str()); };
  auto commit = [](uint64_t n) { return ",\"commit\":" + std::to_string(n); };
  const std::string user = "\"user\":" + Text(c.name), role = "\"role\":" + Text(c.name);

  if (*c.users) {
    PrintUsers(connect(0).ListUsers(), c.json);
  } else if (*c.roles) {
    PrintRoles(connect(0).ListRoles(), c.json);
  } else if (*c.user_create) {
    CheckUserName(c.name);
    std::string password = NewPassword(c, "user create", prompt);
    uint64_t n = connect(c.iterations).CreateUser(c.name, password, c.with_roles);
    done(user + ",\"created\":true,\"roles\":" + ListJson(c.with_roles) + commit(n));
  } else if (*c.user_passwd) {
    CheckUserName(c.name);
    std::string password = NewPassword(c, "user passwd", prompt);
    uint64_t n = connect(c.iterations).SetPassword(c.name, password);
    done(user + ",\"password_changed\":true" + commit(n));
  } else if (*c.user_drop) {
    done(user + ",\"dropped\":true" + commit(connect(0).DropUser(c.name)));
  } else if (*c.user_grant) {
    uint64_t n = connect(0).GrantRole(c.name, c.role_name);
    done(user + ",\"role\":" + Text(c.role_name) + ",\"granted\":true" + commit(n));
  } else if (*c.user_revoke) {
    uint64_t n = connect(0).RevokeRole(c.name, c.role_name);
    done(user + ",\"role\":" + Text(c.role_name) + ",\"revoked\":true" + commit(n));
  } else if (*c.role_create) {
    std::vector<Grant> grants;
    for (const std::string& g : c.grants) grants.push_back(ParseGrant(g));
    uint64_t n = connect(0).CreateRole(c.name, grants);
    done(role + ",\"created\":true,\"grants\":" + GrantsJson(grants) + commit(n));
  } else if (*c.role_drop) {
    done(role + ",\"dropped\":true" + commit(connect(0).DropRole(c.name)));
  } else if (*c.role_grant || *c.role_revoke) {
    Grant g = ParseGrant(c.grant);
    bool grant = bool(*c.role_grant);
    uint64_t n = grant ? connect(0).GrantPermission(c.name, g)
                       : connect(0).RevokePermission(c.name, g);
    done(role + ",\"grant\":" + GrantJson(g) + (grant ? ",\"granted\":true" : ",\"revoked\":true") +
         commit(n));
  }
  return 0;
}

int UserCommandExit(ErrorCode code, int otherwise) {
  switch (code) {
    case ErrorCode::kNotFound:
    case ErrorCode::kUnknownName: return kUserUnknown;
    case ErrorCode::kAlreadyExists: return kUserExists;
    default: return otherwise;
  }
}

}  // namespace cairn::cli
