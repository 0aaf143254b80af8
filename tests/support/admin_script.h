// A script for FakeServer (fake_server.h) that plays cairnd's side of user and role
// administration (protocol 6): it authenticates the logins it is given with
// scram::Server (none given: no authentication, as on a server with no users), records
// every admin request as a line of text, and answers each change with Done (or the error
// it is told to send) and ListUsers / ListRoles with what it holds. For tests of libcairn's
// admin calls and of the cairn CLI's user and role commands without cairnd.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cairn/client/types.h"
#include "cairn/protocol/scram.h"
#include "fake_server.h"

namespace cairn::testing {

class AdminScript {
 public:
  using Fbb = flatbuffers::FlatBufferBuilder;

  // A user that may authenticate. With none, nothing asks for authentication.
  void AddLogin(const std::string& user, const std::string& password) {
    std::lock_guard lock(mu_);
    logins_[user] = scram::MakeCredentials(password, scram::kMinIterations);
  }
  // What ListUsers and ListRoles answer.
  void SetUsers(std::vector<client::UserInfo> users) {
    std::lock_guard lock(mu_);
    users_ = std::move(users);
  }
  void SetRoles(std::vector<client::RoleInfo> roles) {
    std::lock_guard lock(mu_);
    roles_ = std::move(roles);
  }
  // Every request after this is answered with this error.
  void FailWith(wire::ErrorCode code, std::string message) {
    std::lock_guard lock(mu_);
    error_ = {code, std::move(message)};
  }

  // The admin requests received, one line each ("CreateUser bob [readonly] i=4096").
  std::string seen() {
    std::lock_guard lock(mu_);
    std::string out;
    for (const std::string& s : seen_) out += s + "\n";
    return out;
  }
  // The credentials of the last CreateUser or SetPassword.
  std::optional<scram::Credentials> last_credentials() {
    std::lock_guard lock(mu_);
    return last_credentials_;
  }
  // The user the last connection authenticated as ("" for none).
  std::string authenticated_as() {
    std::lock_guard lock(mu_);
    return authenticated_as_;
  }
  uint64_t last_commit() {
    std::lock_guard lock(mu_);
    return commit_;
  }

  void operator()(FakePeer& peer, const wire::RequestFrame& first) {
    std::string payload;
    const wire::RequestFrame* f = &first;
    bool needs_login;
    {
      std::lock_guard lock(mu_);
      needs_login = !logins_.empty();
    }
    if (f->request_type() == wire::Request::AuthStart) {
      if (!Authenticate(peer, *f)) return;
      if (!Next(peer, &payload, &f)) return;
    } else if (needs_login) {
      SendError(peer, f->id(), wire::ErrorCode::AuthFailed, "authentication required");
      return;
    }
    while (true) {
      if (!Answer(peer, *f)) return;
      if (!Next(peer, &payload, &f)) return;
    }
  }

  // Whether `credentials` let `user` log in with `password` (a whole exchange, in process).
  static bool Opens(const scram::Credentials& credentials, const std::string& user,
                    const std::string& password) {
    scram::Client c(user, password);
    scram::Server s("secret", scram::kMinIterations);
    std::string error;
    if (!s.Receive(c.Start(), &error)) return false;
    std::optional<std::string> final = c.Challenge(s.Challenge(credentials), &error);
    if (!final) return false;
    std::optional<std::string> server_final = s.Finish(*final, &error);
    return server_final && c.Verify(*server_final, &error);
  }

 private:
  static std::string_view Text(const flatbuffers::Vector<uint8_t>* v) {
    return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
             : std::string_view();
  }
  static std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
  static flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(Fbb& fbb, std::string_view s) {
    return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  static bool SendError(FakePeer& peer, uint64_t id, wire::ErrorCode code, std::string_view m) {
    Fbb fbb;
    auto e = wire::CreateError(fbb, code, fbb.CreateString(m));
    fbb.Finish(wire::CreateResponseFrame(fbb, id, e));
    return peer.Send(fbb);
  }
  static bool Next(FakePeer& peer, std::string* payload, const wire::RequestFrame** f) {
    if (!peer.Read(payload, std::chrono::seconds(30))) return false;
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(payload->data()), payload->size());
    if (!v.VerifyBuffer<wire::RequestFrame>(nullptr)) return false;
    *f = flatbuffers::GetRoot<wire::RequestFrame>(payload->data());
    return true;
  }

  bool Authenticate(FakePeer& peer, const wire::RequestFrame& f) {
    scram::Server server("fake server secret", scram::kMinIterations);
    std::string error;
    std::optional<std::string> user = server.Receive(Text(f.request_as_AuthStart()->message()), &error);
    if (!user) return SendError(peer, f.id(), wire::ErrorCode::AuthFailed, error), false;
    std::optional<scram::Credentials> creds;
    {
      std::lock_guard lock(mu_);
      if (logins_.count(*user)) creds = logins_[*user];
    }
    {
      Fbb fbb;
      auto c = wire::CreateAuthChallenge(fbb, Bytes(fbb, server.Challenge(creds)));
      fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::AuthChallenge, c.Union()));
      if (!peer.Send(fbb)) return false;
    }
    std::string payload;
    const wire::RequestFrame* next = nullptr;
    if (!Next(peer, &payload, &next) || !next->request_as_AuthContinue()) return false;
    std::optional<std::string> final =
        server.Finish(Text(next->request_as_AuthContinue()->message()), &error);
    if (!final) return SendError(peer, next->id(), wire::ErrorCode::AuthFailed, error), false;
    {
      std::lock_guard lock(mu_);
      authenticated_as_ = *user;
    }
    Fbb fbb;
    auto ok = wire::CreateAuthOk(fbb, Bytes(fbb, *final), fbb.CreateString(*user));
    fbb.Finish(wire::CreateResponseFrame(fbb, next->id(), 0, wire::Reply::AuthOk, ok.Union()));
    return peer.Send(fbb);
  }

  static std::string Roles(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
    std::string out = "[";
    if (v) {
      for (size_t i = 0; i < v->size(); i++) out += (i ? "," : "") + v->Get(i)->str();
    }
    return out + "]";
  }
  static std::string GrantText(const wire::Grant* g) {
    if (!g) return "(none)";
    std::string c = Str(g->collection());
    return Str(g->permission()) + (c.empty() ? "" : ":" + c);
  }

  // Answers one request; false once the connection is to end.
  bool Answer(FakePeer& peer, const wire::RequestFrame& f) {
    std::string line;
    const wire::Credentials* creds = nullptr;
    switch (f.request_type()) {
      case wire::Request::Ping: {
        Fbb fbb;
        fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::Pong,
                                             wire::CreatePong(fbb).Union()));
        return peer.Send(fbb);
      }
      case wire::Request::CreateUser: {
        auto r = f.request_as_CreateUser();
        creds = r->credentials();
        line = "CreateUser " + Str(r->name()) + " " + Roles(r->roles()) +
               " i=" + std::to_string(creds ? creds->iterations() : 0);
        break;
      }
      case wire::Request::SetPassword: {
        auto r = f.request_as_SetPassword();
        creds = r->credentials();
        line = "SetPassword " + Str(r->name()) + " i=" + std::to_string(creds ? creds->iterations() : 0);
        break;
      }
      case wire::Request::DropUser: line = "DropUser " + Str(f.request_as_DropUser()->name()); break;
      case wire::Request::GrantRole:
        line = "GrantRole " + Str(f.request_as_GrantRole()->user()) + " " +
               Str(f.request_as_GrantRole()->role());
        break;
      case wire::Request::RevokeRole:
        line = "RevokeRole " + Str(f.request_as_RevokeRole()->user()) + " " +
               Str(f.request_as_RevokeRole()->role());
        break;
      case wire::Request::ListUsers: line = "ListUsers"; break;
      case wire::Request::CreateRole: {
        auto r = f.request_as_CreateRole();
        line = "CreateRole " + Str(r->name()) + " [";
        if (r->grants()) {
          for (size_t i = 0; i < r->grants()->size(); i++) {
            line += (i ? "," : "") + GrantText(r->grants()->Get(i));
          }
        }
        line += "]";
        break;
      }
      case wire::Request::DropRole: line = "DropRole " + Str(f.request_as_DropRole()->name()); break;
      case wire::Request::GrantPermission:
        line = "GrantPermission " + Str(f.request_as_GrantPermission()->role()) + " " +
               GrantText(f.request_as_GrantPermission()->grant());
        break;
      case wire::Request::RevokePermission:
        line = "RevokePermission " + Str(f.request_as_RevokePermission()->role()) + " " +
               GrantText(f.request_as_RevokePermission()->grant());
        break;
      case wire::Request::ListRoles: line = "ListRoles"; break;
      default:
        return SendError(peer, f.id(), wire::ErrorCode::BadRequest, "fake cairnd: not served");
    }
    std::lock_guard lock(mu_);
    seen_.push_back(line);
    if (creds) {
      last_credentials_ = scram::Credentials{std::string(Text(creds->salt())), creds->iterations(),
                                             std::string(Text(creds->stored_key())),
                                             std::string(Text(creds->server_key()))};
    }
    if (error_) return SendError(peer, f.id(), error_->first, error_->second);
    Fbb fbb;
    if (f.request_type() == wire::Request::ListUsers) {
      std::vector<flatbuffers::Offset<wire::UserInfo>> v;
      for (const client::UserInfo& u : users_) {
        v.push_back(wire::CreateUserInfo(fbb, fbb.CreateString(u.name),
                                         fbb.CreateVectorOfStrings(u.roles), u.iterations));
      }
      auto reply = wire::CreateUsers(fbb, fbb.CreateVector(v));
      fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::Users, reply.Union()));
    } else if (f.request_type() == wire::Request::ListRoles) {
      std::vector<flatbuffers::Offset<wire::RoleInfo>> v;
      for (const client::RoleInfo& r : roles_) {
        std::vector<flatbuffers::Offset<wire::Grant>> grants;
        for (const client::Grant& g : r.grants) {
          grants.push_back(wire::CreateGrant(fbb, fbb.CreateString(g.permission),
                                             fbb.CreateString(g.collection)));
        }
        v.push_back(wire::CreateRoleInfo(fbb, fbb.CreateString(r.name), r.builtin,
                                         fbb.CreateVector(grants)));
      }
      auto reply = wire::CreateRoles(fbb, fbb.CreateVector(v));
      fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::Roles, reply.Union()));
    } else {
      auto done = wire::CreateDone(fbb, ++commit_);
      fbb.Finish(wire::CreateResponseFrame(fbb, f.id(), 0, wire::Reply::Done, done.Union()));
    }
    return peer.Send(fbb);
  }

  std::mutex mu_;
  std::map<std::string, scram::Credentials> logins_;
  std::vector<client::UserInfo> users_;
  std::vector<client::RoleInfo> roles_;
  std::optional<std::pair<wire::ErrorCode, std::string>> error_;
  std::vector<std::string> seen_;
  std::optional<scram::Credentials> last_credentials_;
  std::string authenticated_as_;
  uint64_t commit_ = 40;
};

}  // namespace cairn::testing
