// The requests of user and role administration (protocol 6; docs/security.md) and the
// decoding of their answers: Done for every change, Users and Roles for the lists.
// Declared in cairn/client/detail/requests.h, beside the catalog's.
#include <openssl/crypto.h>

#include <stdexcept>

#include "cairn/client/detail/requests.h"
#include "cairn/protocol/scram.h"
#include "cairn_generated.h"
#include "codec.h"

namespace cairn::client {

namespace {

using detail::Request;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

// The protocol that brought users and roles.
constexpr uint32_t kUsersProtocol = 6;
// The most iterations a client accepts in a challenge (protocol/src/scram.cc): credentials
// with more could never be used to log in.
constexpr uint32_t kMaxIterations = 10'000'000;

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

std::vector<std::string> Strings(const flatbuffers::Vector<Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (!v) return out;
  for (const flatbuffers::String* s : *v) out.push_back(Str(s));
  return out;
}

Offset<flatbuffers::Vector<uint8_t>> Bytes(FlatBufferBuilder& fbb, std::string_view s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

Offset<wire::Grant> EncodeGrant(FlatBufferBuilder& fbb, const Grant& g) {
  return wire::CreateGrant(fbb, fbb.CreateString(g.permission), fbb.CreateString(g.collection));
}

// A change: a write that carries no idempotency key, so never sent twice, answered by Done.
Request<uint64_t> Edit(const char* name, wire::Request type,
                         const std::function<Offset<void>(FlatBufferBuilder&)>& body) {
  Request<uint64_t> r{codec::Request(type, body), true, false, &codec::DecodeDone};
  r.protocol = kUsersProtocol;
  r.name = name;
  return r;
}

template <typename T>
Request<T> Refused(const char* name, const std::string& why) {
  Request<T> r;
  r.protocol = kUsersProtocol;
  r.name = name;
  r.refused = std::make_exception_ptr(Error(ErrorCode::kBadRequest, std::string(name) + ": " + why));
  return r;
}

// The credentials of `password` (a fresh salt), or why they cannot be made.
std::optional<scram::Credentials> Derive(std::string_view password, uint32_t iterations,
                                         std::string* why) {
  if (password.empty()) {
    *why = "the password is empty";
    return std::nullopt;
  }
  if (iterations < scram::kMinIterations || iterations > kMaxIterations) {
    *why = "scram_iterations must be from " + std::to_string(scram::kMinIterations) + " to " +
           std::to_string(kMaxIterations) + ", not " + std::to_string(iterations);
    return std::nullopt;
  }
  try {
    return scram::MakeCredentials(password, iterations);
  } catch (const std::exception& e) {  // OpenSSL failed
    *why = e.what();
    return std::nullopt;
  }
}

Offset<wire::Credentials> EncodeCredentials(FlatBufferBuilder& fbb, scram::Credentials& c) {
  auto out = wire::CreateCredentials(fbb, Bytes(fbb, c.salt), c.iterations,
                                     Bytes(fbb, c.stored_key), Bytes(fbb, c.server_key));
  // What the server keeps stays in the frame only.
  OPENSSL_cleanse(c.stored_key.data(), c.stored_key.size());
  OPENSSL_cleanse(c.server_key.data(), c.server_key.size());
  return out;
}

std::vector<UserInfo> DecodeUsers(std::string_view payload, std::string_view) {
  auto u = codec::Response(payload)->reply_as_Users();
  if (!u) throw Error(ErrorCode::kProtocol, "expected Users");
  std::vector<UserInfo> out;
  if (!u->users()) return out;
  for (const wire::UserInfo* i : *u->users()) {
    out.push_back(UserInfo{Str(i->name()), Strings(i->roles()), i->iterations()});
  }
  return out;
}

std::vector<RoleInfo> DecodeRoles(std::string_view payload, std::string_view) {
  auto r = codec::Response(payload)->reply_as_Roles();
  if (!r) throw Error(ErrorCode::kProtocol, "expected Roles");
  std::vector<RoleInfo> out;
  if (!r->roles()) return out;
  for (const wire::RoleInfo* i : *r->roles()) {
    RoleInfo role{Str(i->name()), i->builtin(), {}};
    if (i->grants()) {
      for (const wire::Grant* g : *i->grants()) {
        role.grants.push_back(Grant{Str(g->permission()), Str(g->collection())});
      }
    }
    out.push_back(std::move(role));
  }
  return out;
}

template <typename T>
Request<T> Listing(const char* name, wire::Request type,
                const std::function<Offset<void>(FlatBufferBuilder&)>& body,
                T (*decode)(std::string_view, std::string_view)) {
  Request<T> r{codec::Request(type, body), false, true, decode};
  r.protocol = kUsersProtocol;
  r.name = name;
  return r;
}

}  // namespace

namespace detail {

Request<uint64_t> CreateUserRequest(std::string_view name, std::string_view password,
                                    const std::vector<std::string>& roles, uint32_t iterations) {
  std::string why;
  std::optional<scram::Credentials> c = Derive(password, iterations, &why);
  if (!c) return Refused<uint64_t>("CreateUser", why);
  return Edit("CreateUser", wire::Request::CreateUser, [&](FlatBufferBuilder& fbb) {
    auto n = fbb.CreateString(name);
    auto creds = EncodeCredentials(fbb, *c);
    return wire::CreateCreateUser(fbb, n, creds, fbb.CreateVectorOfStrings(roles)).Union();
  });
}

Request<uint64_t> DropUserRequest(std::string_view name) {
  return Edit("DropUser", wire::Request::DropUser, [&](FlatBufferBuilder& fbb) {
    return wire::CreateDropUser(fbb, fbb.CreateString(name)).Union();
  });
}

Request<uint64_t> SetPasswordRequest(std::string_view name, std::string_view password,
                                     uint32_t iterations) {
  std::string why;
  std::optional<scram::Credentials> c = Derive(password, iterations, &why);
  if (!c) return Refused<uint64_t>("SetPassword", why);
  return Edit("SetPassword", wire::Request::SetPassword, [&](FlatBufferBuilder& fbb) {
    auto n = fbb.CreateString(name);
    return wire::CreateSetPassword(fbb, n, EncodeCredentials(fbb, *c)).Union();
  });
}

Request<uint64_t> GrantRoleRequest(std::string_view user, std::string_view role) {
  return Edit("GrantRole", wire::Request::GrantRole, [&](FlatBufferBuilder& fbb) {
    return wire::CreateGrantRole(fbb, fbb.CreateString(user), fbb.CreateString(role)).Union();
  });
}

Request<uint64_t> RevokeRoleRequest(std::string_view user, std::string_view role) {
  return Edit("RevokeRole", wire::Request::RevokeRole, [&](FlatBufferBuilder& fbb) {
    return wire::CreateRevokeRole(fbb, fbb.CreateString(user), fbb.CreateString(role)).Union();
  });
}

Request<std::vector<UserInfo>> ListUsersRequest() {
  return Listing<std::vector<UserInfo>>(
      "ListUsers", wire::Request::ListUsers,
      [](FlatBufferBuilder& fbb) { return wire::CreateListUsers(fbb).Union(); }, &DecodeUsers);
}

Request<uint64_t> CreateRoleRequest(std::string_view name, const std::vector<Grant>& grants) {
  return Edit("CreateRole", wire::Request::CreateRole, [&](FlatBufferBuilder& fbb) {
    auto n = fbb.CreateString(name);
    std::vector<Offset<wire::Grant>> v;
    for (const Grant& g : grants) v.push_back(EncodeGrant(fbb, g));
    return wire::CreateCreateRole(fbb, n, fbb.CreateVector(v)).Union();
  });
}

Request<uint64_t> DropRoleRequest(std::string_view name) {
  return Edit("DropRole", wire::Request::DropRole, [&](FlatBufferBuilder& fbb) {
    return wire::CreateDropRole(fbb, fbb.CreateString(name)).Union();
  });
}

Request<uint64_t> GrantPermissionRequest(std::string_view role, const Grant& grant) {
  return Edit("GrantPermission", wire::Request::GrantPermission, [&](FlatBufferBuilder& fbb) {
    auto r = fbb.CreateString(role);
    return wire::CreateGrantPermission(fbb, r, EncodeGrant(fbb, grant)).Union();
  });
}

Request<uint64_t> RevokePermissionRequest(std::string_view role, const Grant& grant) {
  return Edit("RevokePermission", wire::Request::RevokePermission, [&](FlatBufferBuilder& fbb) {
    auto r = fbb.CreateString(role);
    return wire::CreateRevokePermission(fbb, r, EncodeGrant(fbb, grant)).Union();
  });
}

Request<std::vector<RoleInfo>> ListRolesRequest() {
  return Listing<std::vector<RoleInfo>>(
      "ListRoles", wire::Request::ListRoles,
      [](FlatBufferBuilder& fbb) { return wire::CreateListRoles(fbb).Union(); }, &DecodeRoles);
}

}  // namespace detail

}  // namespace cairn::client
