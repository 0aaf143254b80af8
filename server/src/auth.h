// Users, roles and permissions (docs/security.md).
//
// Users and roles are records of the database itself, in the system collections
// `$users` and `$roles` (names no client can create or name: the engine refuses '$'
// from requests, and the server refuses any request that names one). They are written in
// ordinary engine transactions, on the writer thread, so the change log, backups, replicas
// and the digest carry them like any other data.
//
// AuthStore keeps a resolved copy in memory; every change (here, or a replica applying its
// primary's log) bumps a generation, and connections re-resolve their principal at their
// next request when it moved: role changes apply to open connections at once, and nothing
// is looked up, let alone hashed, per request otherwise.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cairn/engine/engine.h"
#include "cairn/protocol/scram.h"

namespace cairn::server {

// Permission bits. The first three apply to collections, the rest server-wide.
enum Permission : uint32_t {
  kPermRead = 1u << 0,
  kPermWrite = 1u << 1,
  kPermAdmin = 1u << 2,  // create, drop, indexes
  kPermUsers = 1u << 8,  // manage users and roles
  kPermBackup = 1u << 9,
  kPermReplication = 1u << 10,
  kPermStats = 1u << 11,
  kPermVerify = 1u << 12,
};
inline constexpr uint32_t kCollectionPerms = kPermRead | kPermWrite | kPermAdmin;
inline constexpr uint32_t kServerPerms =
    kPermUsers | kPermBackup | kPermReplication | kPermStats | kPermVerify;

// "read" -> kPermRead ...; nullopt for an unknown name.
std::optional<uint32_t> ParsePermission(std::string_view name);
std::string_view PermissionName(uint32_t bit);  // one bit

inline constexpr std::string_view kUsersCollection = "$users";
inline constexpr std::string_view kRolesCollection = "$roles";
// Whether a collection name is reserved for the server (starts with '$').
inline bool IsSystemCollection(std::string_view name) { return !name.empty() && name[0] == '$'; }

// One grant: `permissions` (collection bits) on the collections matching `pattern`, or
// server-wide bits with an empty pattern.
struct Grant {
  uint32_t permissions = 0;
  std::string pattern;  // a name, or a prefix ending in '*'; "*": every (non-system) collection
  bool operator==(const Grant&) const = default;
};
// Whether `pattern` matches `collection`. System collections never match.
bool MatchesPattern(std::string_view pattern, std::string_view collection);

struct Role {
  std::string name;
  std::vector<Grant> grants;
  bool builtin = false;  // admin, readwrite, readonly, replication
};
// The built-in roles, which are not stored and cannot be changed or dropped.
const std::vector<Role>& BuiltinRoles();

struct User {
  std::string name;
  scram::Credentials credentials;
  std::vector<std::string> roles;
};

// What one authenticated user may do, resolved from its roles at one generation.
struct Principal {
  std::string user;
  std::vector<std::string> roles;
  std::vector<Grant> grants;  // the union of its roles' grants
  uint64_t generation = 0;
  // Whether the user holds `permission` (one bit) on `collection` (collection bits), or
  // server-wide (server bits; collection ignored).
  bool Allows(uint32_t permission, std::string_view collection = {}) const;
};

class AuthStore {
 public:
  explicit AuthStore(Engine& engine);

  // Authentication is on once one user exists. Cheap (an atomic).
  bool enabled() const { return user_count_.load(std::memory_order_acquire) > 0; }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // The stored credentials of a user; nullopt if there is no such user.
  std::optional<scram::Credentials> Credentials(std::string_view user);
  // The user's principal now; nullptr if the user does not exist (any more).
  std::shared_ptr<const Principal> Resolve(std::string_view user);

  // Reloads from the database (at open, after a commit that changed users or roles, and on
  // a replica after it applied its primary's log). Bumps the generation.
  void Reload();

  // Changes. Each runs on the writer thread (a catalog job: Writer, WriteJob::RunCatalog)
  // as one engine transaction, then reloads. Errors: BadRequest (a bad name, too few
  // iterations, an unknown permission), AlreadyExists, NotFound (the user or role), and
  // for roles: builtin roles cannot change; a role still held by a user cannot be dropped.
  Status CreateUser(Engine& e, const User& user);
  Status DropUser(Engine& e, std::string_view name);
  Status SetPassword(Engine& e, std::string_view name, const scram::Credentials& c);
  Status GrantRole(Engine& e, std::string_view user, std::string_view role);
  Status RevokeRole(Engine& e, std::string_view user, std::string_view role);
  Status CreateRole(Engine& e, const Role& role);
  Status DropRole(Engine& e, std::string_view name);
  Status GrantPermission(Engine& e, std::string_view role, const Grant& grant);
  Status RevokePermission(Engine& e, std::string_view role, const Grant& grant);

  std::vector<User> ListUsers();  // by name; credentials included (the server strips them)
  std::vector<Role> ListRoles();  // built-in first, then stored, by name

 private:
  std::pair<std::vector<User>, std::vector<Role>> Snapshot();

  Engine& engine_;
  std::mutex mu_;
  std::vector<User> users_;  // guarded by mu_, sorted by name
  std::vector<Role> roles_;  // guarded by mu_, stored roles sorted by name
  std::atomic<size_t> user_count_{0};
  std::atomic<uint64_t> generation_{1};
};

}  // namespace cairn::server
