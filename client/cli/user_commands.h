// Users, roles and permissions in the cairn command line (docs/security.md, "Managing
// users from the CLI"): the connection's credentials (--user, --password-file), the
// commands `user create|drop|grant|revoke|passwd`, `users`, `role create|drop|grant|revoke`
// and `roles`, and the parsing they need. Kept apart from main.cc, which holds the data
// commands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/client/client.h"

namespace cairn::cli {

// The exit codes these commands add to the CLI's usual ones (main.cc, kExitCodes).
enum UserExit : int {
  kUserExists = 4,   // a user or role that exists already
  kUserUnknown = 5,  // an unknown user or role
};

// A bad argument or input: exit 2, with this message.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- The connection's credentials.

// --user and --password-file, each defaulting to its variable ($CAIRN_USER,
// $CAIRN_PASSWORD_FILE): a flag beats the variable.
struct LoginArgs {
  std::string user;
  std::string password_file;
};

// The environment, as the options read it (tests pass their own).
using Env = std::function<std::string(const char* name)>;
std::string GetEnv(const char* name);

// Adds --user and --password-file to `app`'s top level.
void AddLoginOptions(CLI::App& app, LoginArgs* login, const Env& env = GetEnv);

// Asks for a password: shows `prompt` on stderr and reads one line without echo. nullopt
// when there is no terminal to ask on. PromptOnTerminal: standard input, if a terminal.
using Prompt = std::function<std::optional<std::string>(const std::string& prompt)>;
std::optional<std::string> PromptOnTerminal(const std::string& prompt);

// The password in `path`: its bytes less one trailing newline ("\n" or "\r\n"). Throws
// UsageError for a file that cannot be read, or holds no password.
std::string ReadPasswordFile(const std::string& path);

// Refuses a login that cannot be right whatever the command: a password file without a
// user. Throws UsageError. (ApplyLogin checks it too; this is for before the command runs.)
void CheckLogin(const LoginArgs& login);

// Sets options->user and ->password from the login: the password file, else a prompt on
// the terminal. Nothing without a user. Throws UsageError: a password file without a user,
// a user without a password file and no terminal to ask on, a file that cannot be read.
void ApplyLogin(const LoginArgs& login, client::ClientOptions* options,
                const Prompt& prompt = PromptOnTerminal);

// --- Grants.

// "PERM" (server-wide: users, backup, replication, stats, verify) or "PERM:PATTERN" (on
// collections: read, write, admin; PATTERN a collection name, or a prefix followed by
// '*'; '*' alone: every collection). Throws UsageError saying what is wrong.
client::Grant ParseGrant(std::string_view text);
// Back to that form: "read:orders*", "stats".
std::string GrantText(const client::Grant& grant);

// --- The commands.

struct UserCommands {
  CLI::App *user = nullptr, *user_create = nullptr, *user_drop = nullptr,
           *user_grant = nullptr, *user_revoke = nullptr, *user_passwd = nullptr,
           *users = nullptr;
  CLI::App *role = nullptr, *role_create = nullptr, *role_drop = nullptr,
           *role_grant = nullptr, *role_revoke = nullptr, *roles = nullptr;
  std::string name;                    // the user, or the role
  std::string role_name;               // user grant|revoke NAME ROLE
  std::vector<std::string> with_roles; // user create --role
  std::vector<std::string> grants;     // role create --grant
  std::string grant;                   // role grant|revoke ROLE PERM[:PATTERN]
  std::string new_password_file;       // user create|passwd --new-password-file
  uint32_t iterations = 0;             // user create|passwd --iterations (0: default)
  bool json = false;                   // users, roles --json

  // Whether one of these commands was chosen (after parsing).
  bool chosen() const;
};

// Adds the commands to `app`.
void AddUserCommands(CLI::App& app, UserCommands* commands);

// Runs the command chosen: checks its arguments (and asks for a new password) first, then
// connects through `connect`. Returns the exit code; throws UsageError for bad arguments
// and client::Error for the server's refusals (exit code: UserCommandExit).
int RunUserCommand(const UserCommands& commands,
                   const std::function<client::Client&(uint32_t iterations)>& connect,
                   const Prompt& prompt = PromptOnTerminal);

// The exit code of a server error in these commands: 5 for an unknown user or role, 4 for
// one that exists already, else `otherwise` (the CLI's usual code for it).
int UserCommandExit(client::ErrorCode code, int otherwise);

}  // namespace cairn::cli
