#include "user_requests.h"

#include "connection.h"
#include "convert.h"
#include "server_context.h"

namespace cairn::server {

namespace {

std::string Str(const flatbuffers::String* s) { return s ? std::string(View(s)) : std::string(); }

Status DecodeCredentials(const wire::Credentials* c, scram::Credentials* out) {
  if (!c) return Status(Code::kBadRequest, "credentials are missing");
  out->salt.assign(View(c->salt()));
  out->iterations = c->iterations();
  out->stored_key.assign(View(c->stored_key()));
  out->server_key.assign(View(c->server_key()));
  return Status::Ok();  // AuthStore checks sizes and iterations
}

Status DecodeGrant(const wire::Grant* g, Grant* out) {
  if (!g) return Status(Code::kBadRequest, "the grant is missing");
  std::string name = Str(g->permission());
  std::optional<uint32_t> bit = ParsePermission(name);
  if (!bit) {
    return Status(Code::kBadRequest,
                  "unknown permission '" + name + "'; the permissions are read, write, admin "
                  "(on collections) and users, backup, replication, stats, verify (server-wide)");
  }
  out->permissions = *bit;
  out->pattern = Str(g->collection());
  return Status::Ok();
}

// The job: the change on the writer, then every connection checks its user.
template <typename Change>
CatalogJob UserChange(ServerContext& ctx, Change change) {
  return [&ctx, change = std::move(change)](Engine& e) {
    Status s = change(*ctx.auth, e);
    if (s.ok()) RecheckUsers(ctx);
    return s;
  };
}

}  // namespace

Status CreateUserJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_CreateUser();
  User u;
  u.name = Str(r->name());
  if (Status s = DecodeCredentials(r->credentials(), &u.credentials); !s.ok()) return s;
  if (r->roles()) {
    for (const flatbuffers::String* role : *r->roles()) u.roles.push_back(Str(role));
  }
  *out = UserChange(ctx, [u](AuthStore& a, Engine& e) { return a.CreateUser(e, u); });
  return Status::Ok();
}

Status DropUserJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  std::string name = Str(f.request_as_DropUser()->name());
  *out = UserChange(ctx, [name](AuthStore& a, Engine& e) { return a.DropUser(e, name); });
  return Status::Ok();
}

Status SetPasswordJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_SetPassword();
  std::string name = Str(r->name());
  scram::Credentials c;
  if (Status s = DecodeCredentials(r->credentials(), &c); !s.ok()) return s;
  *out = UserChange(ctx, [name, c](AuthStore& a, Engine& e) { return a.SetPassword(e, name, c); });
  return Status::Ok();
}

Status GrantRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_GrantRole();
  std::string user = Str(r->user()), role = Str(r->role());
  *out = UserChange(ctx,
                    [user, role](AuthStore& a, Engine& e) { return a.GrantRole(e, user, role); });
  return Status::Ok();
}

Status RevokeRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_RevokeRole();
  std::string user = Str(r->user()), role = Str(r->role());
  *out = UserChange(ctx,
                    [user, role](AuthStore& a, Engine& e) { return a.RevokeRole(e, user, role); });
  return Status::Ok();
}

Status CreateRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_CreateRole();
  Role role;
  role.name = Str(r->name());
  if (r->grants()) {
    for (const wire::Grant* g : *r->grants()) {
      Grant grant;
      if (Status s = DecodeGrant(g, &grant); !s.ok()) return s;
      role.grants.push_back(std::move(grant));
    }
  }
  *out = UserChange(ctx, [role](AuthStore& a, Engine& e) { return a.CreateRole(e, role); });
  return Status::Ok();
}

Status DropRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  std::string name = Str(f.request_as_DropRole()->name());
  *out = UserChange(ctx, [name](AuthStore& a, Engine& e) { return a.DropRole(e, name); });
  return Status::Ok();
}

Status GrantPermissionJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_GrantPermission();
  std::string role = Str(r->role());
  Grant g;
  if (Status s = DecodeGrant(r->grant(), &g); !s.ok()) return s;
  *out = UserChange(ctx,
                    [role, g](AuthStore& a, Engine& e) { return a.GrantPermission(e, role, g); });
  return Status::Ok();
}

Status RevokePermissionJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto r = f.request_as_RevokePermission();
  std::string role = Str(r->role());
  Grant g;
  if (Status s = DecodeGrant(r->grant(), &g); !s.ok()) return s;
  *out = UserChange(ctx,
                    [role, g](AuthStore& a, Engine& e) { return a.RevokePermission(e, role, g); });
  return Status::Ok();
}

namespace {

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> StringList(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<std::string>& list) {
  std::vector<flatbuffers::Offset<flatbuffers::String>> out;
  for (const std::string& s : list) out.push_back(fbb.CreateString(s));
  return fbb.CreateVector(out);
}

}  // namespace

void BuildUsersReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                     const std::vector<User>& users) {
  fbb.Clear();
  std::vector<flatbuffers::Offset<wire::UserInfo>> list;
  for (const User& u : users) {
    auto name = fbb.CreateString(u.name);
    auto roles = StringList(fbb, u.roles);
    list.push_back(wire::CreateUserInfo(fbb, name, roles, u.credentials.iterations));
  }
  auto reply = wire::CreateUsers(fbb, fbb.CreateVector(list));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Users, reply.Union()));
}

void BuildRolesReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                     const std::vector<Role>& roles) {
  fbb.Clear();
  std::vector<flatbuffers::Offset<wire::RoleInfo>> list;
  for (const Role& r : roles) {
    std::vector<flatbuffers::Offset<wire::Grant>> grants;
    for (const Grant& g : r.grants) {
      // One wire Grant per permission bit, as a client grants them.
      for (uint32_t bit = 1; bit != 0 && bit <= g.permissions; bit <<= 1) {
        if (!(g.permissions & bit)) continue;
        auto perm = fbb.CreateString(PermissionName(bit));
        auto coll = fbb.CreateString(g.pattern);
        grants.push_back(wire::CreateGrant(fbb, perm, coll));
      }
    }
    auto name = fbb.CreateString(r.name);
    auto gv = fbb.CreateVector(grants);
    list.push_back(wire::CreateRoleInfo(fbb, name, r.builtin, gv));
  }
  auto reply = wire::CreateRoles(fbb, fbb.CreateVector(list));
  fbb.Finish(wire::CreateResponseFrame(fbb, id, 0, wire::Reply::Roles, reply.Union()));
}

void RecheckUsers(ServerContext& ctx) {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(ctx.mu);
    for (auto& [ptr, weak] : ctx.connections) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->RecheckUser();
}

}  // namespace cairn::server
