#include "auth.h"

#include <flatbuffers/flexbuffers.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <utility>

namespace cairn::server {

namespace {

constexpr std::array<std::pair<std::string_view, uint32_t>, 8> kPermissionNames{{
    {"read", kPermRead},
    {"write", kPermWrite},
    {"admin", kPermAdmin},
    {"users", kPermUsers},
    {"backup", kPermBackup},
    {"replication", kPermReplication},
    {"stats", kPermStats},
    {"verify", kPermVerify},
}};

// The stored form of users and roles (docs/security.md, "How users and roles are stored"):
// FlexBuffers maps, so that they are documents like any other (checked, verified, digested),
// with a format version of their own.
constexpr uint64_t kRecordVersion = 1;

std::string_view AsView(flexbuffers::Reference r) {
  if (r.IsString()) {
    flexbuffers::String s = r.AsString();
    return {s.c_str(), s.length()};
  }
  if (r.IsBlob()) {
    flexbuffers::Blob b = r.AsBlob();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  return {};
}

std::vector<std::string> Strings(flexbuffers::Reference r) {
  std::vector<std::string> out;
  if (!r.IsVector()) return out;
  flexbuffers::Vector v = r.AsVector();
  for (size_t i = 0; i < v.size(); i++) out.emplace_back(AsView(v[i]));
  return out;
}

void AddStrings(flexbuffers::Builder& b, const char* key, const std::vector<std::string>& list) {
  size_t start = b.StartVector(key);
  for (const std::string& s : list) b.String(s);
  b.EndVector(start, false, false);
}

std::vector<std::string> Names(uint32_t bits) {
  std::vector<std::string> out;
  for (auto [name, bit] : kPermissionNames) {
    if (bits & bit) out.emplace_back(name);
  }
  return out;
}

std::string EncodeUser(const User& u) {
  flexbuffers::Builder b;
  size_t root = b.StartMap();
  b.UInt("format", kRecordVersion);
  b.Key("salt");
  b.Blob(u.credentials.salt.data(), u.credentials.salt.size());
  b.UInt("iterations", u.credentials.iterations);
  b.Key("stored_key");
  b.Blob(u.credentials.stored_key.data(), u.credentials.stored_key.size());
  b.Key("server_key");
  b.Blob(u.credentials.server_key.data(), u.credentials.server_key.size());
  AddStrings(b, "roles", u.roles);
  b.EndMap(root);
  b.Finish();
  return std::string(b.GetBuffer().begin(), b.GetBuffer().end());
}

std::optional<User> DecodeUser(std::string_view key, std::string_view value) {
  auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(value.data()), value.size());
  if (!root.IsMap()) return std::nullopt;
  flexbuffers::Map m = root.AsMap();
  if (m["format"].AsUInt64() != kRecordVersion) return std::nullopt;
  User u;
  u.name.assign(key);
  u.credentials.salt.assign(AsView(m["salt"]));
  u.credentials.iterations = uint32_t(m["iterations"].AsUInt64());
  u.credentials.stored_key.assign(AsView(m["stored_key"]));
  u.credentials.server_key.assign(AsView(m["server_key"]));
  u.roles = Strings(m["roles"]);
  if (u.credentials.stored_key.size() != 32 || u.credentials.server_key.size() != 32 ||
      u.credentials.iterations < scram::kMinIterations || u.credentials.salt.empty()) {
    return std::nullopt;
  }
  return u;
}

std::string EncodeRole(const Role& r) {
  flexbuffers::Builder b;
  size_t root = b.StartMap();
  b.UInt("format", kRecordVersion);
  size_t grants = b.StartVector("grants");
  for (const Grant& g : r.grants) {
    size_t one = b.StartMap();
    b.String("collection", g.pattern);
    AddStrings(b, "permissions", Names(g.permissions));
    b.EndMap(one);
  }
  b.EndVector(grants, false, false);
  b.EndMap(root);
  b.Finish();
  return std::string(b.GetBuffer().begin(), b.GetBuffer().end());
}

std::optional<Role> DecodeRole(std::string_view key, std::string_view value) {
  auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(value.data()), value.size());
  if (!root.IsMap()) return std::nullopt;
  flexbuffers::Map m = root.AsMap();
  if (m["format"].AsUInt64() != kRecordVersion || !m["grants"].IsVector()) return std::nullopt;
  Role r;
  r.name.assign(key);
  flexbuffers::Vector grants = m["grants"].AsVector();
  for (size_t i = 0; i < grants.size(); i++) {
    if (!grants[i].IsMap()) return std::nullopt;
    flexbuffers::Map g = grants[i].AsMap();
    Grant grant;
    grant.pattern.assign(AsView(g["collection"]));
    for (const std::string& p : Strings(g["permissions"])) {
      std::optional<uint32_t> bit = ParsePermission(p);
      if (!bit) return std::nullopt;  // a newer server's permission: fail closed
      grant.permissions |= *bit;
    }
    r.grants.push_back(std::move(grant));
  }
  return r;
}

bool ValidPattern(std::string_view p) {
  if (p == "*") return true;
  if (!p.empty() && p.back() == '*') p.remove_suffix(1);
  if (p.empty() || p.size() > 128) return false;
  return std::all_of(p.begin(), p.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.';
  });
}

Status CheckGrant(const Grant& g) {
  if (g.permissions == 0) return Status(Code::kBadRequest, "a grant needs a permission");
  bool server = (g.permissions & kServerPerms) != 0, coll = (g.permissions & kCollectionPerms) != 0;
  if (server && coll) {
    return Status(Code::kBadRequest,
                  "a grant holds either collection or server-wide permissions, not both");
  }
  if (server && !g.pattern.empty()) {
    return Status(Code::kBadRequest, "server-wide permission '" + Names(g.permissions)[0] +
                                         "' takes no collection");
  }
  if (coll && !ValidPattern(g.pattern)) {
    return Status(Code::kBadRequest,
                  "permission '" + Names(g.permissions)[0] + "' needs a collection: a name, a "
                  "prefix followed by '*', or '*' (not '" + g.pattern + "')");
  }
  return Status::Ok();
}

Status CheckName(std::string_view what, std::string_view name) {
  if (scram::ValidUserName(name)) return Status::Ok();
  return Status(Code::kBadRequest, std::string(what) + " name '" + std::string(name) +
                                       "' must be 1 to 64 of letters, digits, '_', '-', '.', '@'");
}

Status CheckCredentials(const scram::Credentials& c) {
  if (c.iterations < scram::kMinIterations) {
    return Status(Code::kBadRequest, "credentials need at least " +
                                         std::to_string(scram::kMinIterations) +
                                         " PBKDF2 iterations, not " + std::to_string(c.iterations));
  }
  if (c.iterations > 10'000'000) {
    return Status(Code::kBadRequest, "credentials of more than 10,000,000 iterations would "
                                     "make every login of this user cost seconds");
  }
  if (c.salt.size() < 16 || c.salt.size() > 256) {
    return Status(Code::kBadRequest, "credentials need a salt of 16 to 256 bytes");
  }
  if (c.stored_key.size() != 32 || c.server_key.size() != 32) {
    return Status(Code::kBadRequest, "credentials need a 32-byte StoredKey and ServerKey "
                                     "(SCRAM-SHA-256)");
  }
  return Status::Ok();
}

Status UnknownUser(std::string_view name) {
  return Status(Code::kUnknownName, "user '" + std::string(name) + "' does not exist");
}
Status UnknownRole(std::string_view name) {
  return Status(Code::kUnknownName, "role '" + std::string(name) + "' does not exist");
}

const Role* FindRole(const std::vector<Role>& stored, std::string_view name) {
  for (const Role& r : BuiltinRoles()) {
    if (r.name == name) return &r;
  }
  auto it = std::lower_bound(stored.begin(), stored.end(), name,
                             [](const Role& r, std::string_view n) { return r.name < n; });
  return it != stored.end() && it->name == name ? &*it : nullptr;
}

template <typename T>
typename std::vector<T>::iterator FindNamed(std::vector<T>& v, std::string_view name) {
  auto it = std::lower_bound(v.begin(), v.end(), name,
                             [](const T& x, std::string_view n) { return x.name < n; });
  return it != v.end() && it->name == name ? it : v.end();
}

// Whether some user of `users` holds the `users` permission through `roles`.
bool SomeoneManagesUsers(const std::vector<User>& users, const std::vector<Role>& roles) {
  for (const User& u : users) {
    for (const std::string& rn : u.roles) {
      const Role* r = FindRole(roles, rn);
      if (!r) continue;
      for (const Grant& g : r->grants) {
        if (g.permissions & kPermUsers) return true;
      }
    }
  }
  return false;
}

}  // namespace

std::optional<uint32_t> ParsePermission(std::string_view name) {
  for (auto [n, bit] : kPermissionNames) {
    if (n == name) return bit;
  }
  return std::nullopt;
}

std::string_view PermissionName(uint32_t bit) {
  for (auto [n, b] : kPermissionNames) {
    if (b == bit) return n;
  }
  return "unknown";
}

bool MatchesPattern(std::string_view pattern, std::string_view collection) {
  if (IsSystemCollection(collection) || pattern.empty()) return false;
  if (pattern.back() == '*') {
    pattern.remove_suffix(1);
    return collection.substr(0, pattern.size()) == pattern;
  }
  return pattern == collection;
}

const std::vector<Role>& BuiltinRoles() {
  static const std::vector<Role> roles = {
      {"admin", {{kCollectionPerms, "*"}, {kServerPerms, ""}}, true},
      {"readonly", {{kPermRead, "*"}}, true},
      {"readwrite", {{kPermRead | kPermWrite, "*"}}, true},
      {"replication", {{kPermReplication | kPermBackup, ""}}, true},
  };
  return roles;
}

bool Principal::Allows(uint32_t permission, std::string_view collection) const {
  bool server = (permission & kServerPerms) != 0;
  for (const Grant& g : grants) {
    if (!(g.permissions & permission)) continue;
    if (server ? g.pattern.empty() : MatchesPattern(g.pattern, collection)) return true;
  }
  return false;
}

AuthStore::AuthStore(Engine& engine) : engine_(engine) { Reload(); }

std::optional<scram::Credentials> AuthStore::Credentials(std::string_view user) {
  std::lock_guard lock(mu_);
  auto it = FindNamed(users_, user);
  if (it == users_.end()) return std::nullopt;
  return it->credentials;
}

std::shared_ptr<const Principal> AuthStore::Resolve(std::string_view user) {
  std::lock_guard lock(mu_);
  auto it = FindNamed(users_, user);
  if (it == users_.end()) return nullptr;
  auto p = std::make_shared<Principal>();
  p->user = it->name;
  p->roles = it->roles;
  p->generation = generation_.load(std::memory_order_relaxed);
  for (const std::string& rn : it->roles) {
    if (const Role* r = FindRole(roles_, rn)) {
      p->grants.insert(p->grants.end(), r->grants.begin(), r->grants.end());
    }
  }
  return p;
}

namespace {

// Every record of a collection (none if it does not exist).
template <typename T, typename Decode>
std::vector<T> LoadAll(Engine& engine, std::string_view collection, Decode decode) {
  std::vector<T> out;
  std::string continuation;
  do {
    Transaction t;
    ScanSpec spec;
    spec.collection = collection;
    spec.continuation = continuation;
    t.ops.push_back(ScanOp{spec});
    TxnResult r = engine.Execute(t);
    if (r.status.code() == Code::kUnknownName) return out;
    if (!r.status.ok()) {
      // Fail closed: no user can authenticate until this is repaired.
      spdlog::error("reading {}: {}; authentication is refused until this is resolved",
                    collection, r.status.ToString());
      return out;
    }
    for (const Record& rec : r.results[0].records) {
      if (std::optional<T> x = decode(rec.key, rec.value)) {
        out.push_back(std::move(*x));
      } else {
        spdlog::error("{} record '{}' is not in a format this server reads; ignored", collection,
                      rec.key);
      }
    }
    continuation = std::move(r.results[0].continuation);
  } while (!continuation.empty());
  return out;
}

}  // namespace

void AuthStore::Reload() {
  std::vector<User> users = LoadAll<User>(engine_, kUsersCollection, DecodeUser);
  std::vector<Role> roles = LoadAll<Role>(engine_, kRolesCollection, DecodeRole);
  std::lock_guard lock(mu_);
  users_ = std::move(users);  // scans come in key order: sorted by name
  roles_ = std::move(roles);
  user_count_.store(users_.size(), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

namespace {

// One change: the records to put (kUpsert) or delete, in one transaction.
struct Change {
  std::vector<std::pair<std::string, std::string>> put_users, put_roles;
  std::vector<std::string> delete_users, delete_roles;
};

Status Commit(Engine& e, const Change& c) {
  for (std::string_view coll : {kUsersCollection, kRolesCollection}) {
    if (Status s = e.CreateSystemCollection(coll); !s.ok()) return s;
  }
  Transaction t;
  for (const auto& [k, v] : c.put_users) t.ops.push_back(PutOp{kUsersCollection, k, v});
  for (const std::string& k : c.delete_users) t.ops.push_back(DeleteOp{kUsersCollection, k});
  for (const auto& [k, v] : c.put_roles) t.ops.push_back(PutOp{kRolesCollection, k, v});
  for (const std::string& k : c.delete_roles) t.ops.push_back(DeleteOp{kRolesCollection, k});
  return e.Execute(t).status;
}

// Every change ends here: its transaction, then the reload (also after a failed commit,
// so that the copy in memory is what the database holds).
Status CommitAndReload(AuthStore& a, Engine& e, const Change& c) {
  Status s = Commit(e, c);
  a.Reload();
  return s;
}

Status LockedOut() {
  return Status(Code::kBadRequest,
                "no user would be left who may manage users (the 'users' permission, as the "
                "built-in role 'admin' has); grant it to another user first");
}

}  // namespace

// Each change works on a copy of the users and roles, checks it, commits it, reloads.
// Changes run on the writer thread, one at a time, so the copy cannot go stale.
std::pair<std::vector<User>, std::vector<Role>> AuthStore::Snapshot() {
  std::lock_guard lock(mu_);
  return {users_, roles_};
}

Status AuthStore::CreateUser(Engine& e, const User& user) {
  if (Status s = CheckName("user", user.name); !s.ok()) return s;
  if (Status s = CheckCredentials(user.credentials); !s.ok()) return s;
  auto [users, roles] = Snapshot();
  if (FindNamed(users, user.name) != users.end()) {
    return Status(Code::kAlreadyExists, "user '" + user.name + "' already exists");
  }
  User u = user;
  std::sort(u.roles.begin(), u.roles.end());
  u.roles.erase(std::unique(u.roles.begin(), u.roles.end()), u.roles.end());
  for (const std::string& r : u.roles) {
    if (!FindRole(roles, r)) return UnknownRole(r);
  }
  users.push_back(u);
  if (!SomeoneManagesUsers(users, roles)) {
    return Status(Code::kBadRequest, "the first user must be able to manage users: give '" +
                                         u.name + "' the role 'admin' (or one with 'users')");
  }
  return CommitAndReload(*this, e, Change{{{u.name, EncodeUser(u)}}, {}, {}, {}});
}

Status AuthStore::DropUser(Engine& e, std::string_view name) {
  auto [users, roles] = Snapshot();
  auto it = FindNamed(users, name);
  if (it == users.end()) return UnknownUser(name);
  users.erase(it);
  // Dropping the last user would turn authentication off: refused like any lock-out.
  if (!SomeoneManagesUsers(users, roles)) return LockedOut();
  return CommitAndReload(*this, e, Change{{}, {}, {std::string(name)}, {}});
}

Status AuthStore::SetPassword(Engine& e, std::string_view name, const scram::Credentials& c) {
  if (Status s = CheckCredentials(c); !s.ok()) return s;
  auto [users, roles] = Snapshot();
  auto it = FindNamed(users, name);
  if (it == users.end()) return UnknownUser(name);
  it->credentials = c;
  return CommitAndReload(*this, e, Change{{{it->name, EncodeUser(*it)}}, {}, {}, {}});
}

Status AuthStore::GrantRole(Engine& e, std::string_view user, std::string_view role) {
  auto [users, roles] = Snapshot();
  auto it = FindNamed(users, user);
  if (it == users.end()) return UnknownUser(user);
  if (!FindRole(roles, role)) return UnknownRole(role);
  auto pos = std::lower_bound(it->roles.begin(), it->roles.end(), role);
  if (pos != it->roles.end() && *pos == role) return Status::Ok();  // held already
  it->roles.insert(pos, std::string(role));
  return CommitAndReload(*this, e, Change{{{it->name, EncodeUser(*it)}}, {}, {}, {}});
}

Status AuthStore::RevokeRole(Engine& e, std::string_view user, std::string_view role) {
  auto [users, roles] = Snapshot();
  auto it = FindNamed(users, user);
  if (it == users.end()) return UnknownUser(user);
  if (!FindRole(roles, role)) return UnknownRole(role);
  auto pos = std::find(it->roles.begin(), it->roles.end(), role);
  if (pos == it->roles.end()) return Status::Ok();  // not held: nothing to do
  it->roles.erase(pos);
  if (!SomeoneManagesUsers(users, roles)) return LockedOut();
  return CommitAndReload(*this, e, Change{{{it->name, EncodeUser(*it)}}, {}, {}, {}});
}

Status AuthStore::CreateRole(Engine& e, const Role& role) {
  if (Status s = CheckName("role", role.name); !s.ok()) return s;
  for (const Grant& g : role.grants) {
    if (Status s = CheckGrant(g); !s.ok()) return s;
  }
  auto [users, roles] = Snapshot();
  if (FindRole(roles, role.name)) {
    return Status(Code::kAlreadyExists, "role '" + role.name + "' already exists");
  }
  Role r{role.name, role.grants, false};
  return CommitAndReload(*this, e, Change{{}, {{r.name, EncodeRole(r)}}, {}, {}});
}

namespace {

Status Builtin(std::string_view role) {
  return Status(Code::kBadRequest, "role '" + std::string(role) +
                                       "' is built in and cannot be changed or dropped");
}

}  // namespace

Status AuthStore::DropRole(Engine& e, std::string_view name) {
  auto [users, roles] = Snapshot();
  const Role* r = FindRole(roles, name);
  if (!r) return UnknownRole(name);
  if (r->builtin) return Builtin(name);
  for (const User& u : users) {
    if (std::find(u.roles.begin(), u.roles.end(), name) != u.roles.end()) {
      return Status(Code::kBadRequest, "role '" + std::string(name) + "' is held by user '" +
                                           u.name + "'; revoke it first");
    }
  }
  return CommitAndReload(*this, e, Change{{}, {}, {}, {std::string(name)}});
}

Status AuthStore::GrantPermission(Engine& e, std::string_view role, const Grant& grant) {
  if (Status s = CheckGrant(grant); !s.ok()) return s;
  auto [users, roles] = Snapshot();
  const Role* found = FindRole(roles, role);
  if (!found) return UnknownRole(role);
  if (found->builtin) return Builtin(role);
  Role r = *found;
  for (Grant& g : r.grants) {
    if (g.pattern == grant.pattern && ((g.permissions & kServerPerms) != 0) ==
                                          ((grant.permissions & kServerPerms) != 0)) {
      if ((g.permissions | grant.permissions) == g.permissions) return Status::Ok();
      g.permissions |= grant.permissions;
      return CommitAndReload(*this, e, Change{{}, {{r.name, EncodeRole(r)}}, {}, {}});
    }
  }
  r.grants.push_back(grant);
  return CommitAndReload(*this, e, Change{{}, {{r.name, EncodeRole(r)}}, {}, {}});
}

Status AuthStore::RevokePermission(Engine& e, std::string_view role, const Grant& grant) {
  if (Status s = CheckGrant(grant); !s.ok()) return s;
  auto [users, roles] = Snapshot();
  auto it = FindNamed(roles, role);
  if (it == roles.end()) return FindRole(roles, role) ? Builtin(role) : UnknownRole(role);
  bool changed = false;
  for (Grant& g : it->grants) {
    if (g.pattern != grant.pattern || !(g.permissions & grant.permissions)) continue;
    g.permissions &= ~grant.permissions;
    changed = true;
  }
  if (!changed) return Status::Ok();  // not granted: nothing to do
  std::erase_if(it->grants, [](const Grant& g) { return g.permissions == 0; });
  if (!SomeoneManagesUsers(users, roles)) return LockedOut();
  return CommitAndReload(*this, e, Change{{}, {{it->name, EncodeRole(*it)}}, {}, {}});
}

std::vector<User> AuthStore::ListUsers() {
  std::lock_guard lock(mu_);
  return users_;
}

std::vector<Role> AuthStore::ListRoles() {
  std::vector<Role> out = BuiltinRoles();
  std::lock_guard lock(mu_);
  out.insert(out.end(), roles_.begin(), roles_.end());
  return out;
}

}  // namespace cairn::server
