// The user and role requests (protocol 6; docs/security.md): what the writer runs for each
// change (a CatalogJob, as requests.h's table wants), and the replies of ListUsers and
// ListRoles. The checks of names, credentials and grants are AuthStore's (auth.h).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include "auth.h"
#include "requests.h"

namespace cairn::server {

Status CreateUserJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status DropUserJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status SetPasswordJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status GrantRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status RevokeRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status CreateRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status DropRoleJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status GrantPermissionJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);
Status RevokePermissionJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out);

// Users (names, roles, iterations: never credentials) and roles, each in one reply.
void BuildUsersReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                     const std::vector<User>& users);
void BuildRolesReply(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                     const std::vector<Role>& roles);

// After users or roles changed: every open connection checks that its user still exists
// (and closes if not). Role changes need nothing here: a connection re-resolves its user
// at its next request when AuthStore's generation moved.
void RecheckUsers(ServerContext& ctx);

}  // namespace cairn::server
