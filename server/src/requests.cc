#include "requests.h"

#include <array>

#include "auth.h"
#include "catalog_reply.h"
#include "connection.h"
#include "convert.h"
#include "server_context.h"
#include "user_requests.h"

namespace cairn::server {

namespace {

// --- Catalog jobs: what the writer runs for a catalog request.

Status CreateCollectionJob(const wire::RequestFrame& f, ServerContext&, CatalogJob* out) {
  std::string name(View(f.request_as_CreateCollection()->name()));
  *out = [name](Engine& e) { return e.CreateCollection(name); };
  return Status::Ok();
}

Status DropCollectionJob(const wire::RequestFrame& f, ServerContext&, CatalogJob* out) {
  std::string name(View(f.request_as_DropCollection()->name()));
  *out = [name](Engine& e) { return e.DropCollection(name); };
  return Status::Ok();
}

Status CreateIndexJob(const wire::RequestFrame& f, ServerContext& ctx, CatalogJob* out) {
  auto c = f.request_as_CreateIndex();
  std::string coll(View(c->collection()));
  IndexSpec spec;
  if (Status s = DecodeIndexSpec(c->index(), &spec); !s.ok()) return s;
  // Its collection's description must still fit in a reply (catalog_reply.h).
  *out = [coll, spec, max_frame = ctx.options->max_frame](Engine& e) {
    if (Status fits = CheckIndexFits(e, coll, spec, max_frame); !fits.ok()) return fits;
    return e.CreateIndex(coll, spec);
  };
  return Status::Ok();
}

Status DropIndexJob(const wire::RequestFrame& f, ServerContext&, CatalogJob* out) {
  auto d = f.request_as_DropIndex();
  std::string coll(View(d->collection())), name(View(d->name()));
  *out = [coll, name](Engine& e) { return e.DropIndex(coll, name); };
  return Status::Ok();
}

std::string_view NameOf(const flatbuffers::String* s) { return s ? View(s) : std::string_view(); }
std::string_view GetCollection(const wire::RequestFrame& f) {
  return NameOf(f.request_as_Get()->collection());
}
std::string_view CreateCollectionName(const wire::RequestFrame& f) {
  return NameOf(f.request_as_CreateCollection()->name());
}
std::string_view DropCollectionName(const wire::RequestFrame& f) {
  return NameOf(f.request_as_DropCollection()->name());
}
std::string_view DescribeCollectionName(const wire::RequestFrame& f) {
  return NameOf(f.request_as_DescribeCollection()->name());
}
std::string_view CreateIndexCollection(const wire::RequestFrame& f) {
  return NameOf(f.request_as_CreateIndex()->collection());
}
std::string_view DropIndexCollection(const wire::RequestFrame& f) {
  return NameOf(f.request_as_DropIndex()->collection());
}

}  // namespace

// The table. Connection's handlers are private: this is the one place that names them.
struct RequestTable {
  using R = wire::Request;
  using C = Connection;
  static constexpr size_t kSize = size_t(wire::Request::MAX) + 1;

  static std::array<const RequestRow*, kSize> Build() {
    static const RequestRow rows[] = {
        // kind, since, bare, before_auth, runs, scope, permission, handler, job
        {R::Hello, 1, false, true, Runs::kHere, Scope::kNone, 0, &C::OnHello, nullptr},
        {R::Ping, 1, false, false, Runs::kHere, Scope::kNone, 0, &C::OnPing, nullptr},
        {R::Txn, 1, false, false, Runs::kWriterIfWrites, Scope::kTxn, kPermRead, &C::OnTxnRead,
         nullptr},
        {R::Get, 2, false, false, Runs::kHere, Scope::kCollection, kPermRead, &C::OnGet, nullptr,
         &GetCollection},
        {R::CreateCollection, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin,
         nullptr, &CreateCollectionJob, &CreateCollectionName},
        {R::DropCollection, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin,
         nullptr, &DropCollectionJob, &DropCollectionName},
        {R::CreateIndex, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin, nullptr,
         &CreateIndexJob, &CreateIndexCollection},
        {R::DropIndex, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin, nullptr,
         &DropIndexJob, &DropIndexCollection},
        // Lists only the collections the user may read.
        {R::ListCollections, 1, true, false, Runs::kHere, Scope::kNone, 0, &C::OnListCollections,
         nullptr},
        {R::DescribeCollection, 1, false, false, Runs::kHere, Scope::kCollection, kPermRead,
         &C::OnDescribeCollection, nullptr, &DescribeCollectionName},
        {R::GetStats, 1, true, false, Runs::kHere, Scope::kServer, kPermStats, &C::OnGetStats,
         nullptr},
        {R::VerifyDatabase, 3, true, false, Runs::kAside, Scope::kServer, kPermVerify,
         &C::OnVerifyDatabase, nullptr},
        {R::Digest, 5, true, false, Runs::kAside, Scope::kServer, kPermVerify, &C::OnDigest,
         nullptr},
        {R::Watch, 5, false, false, Runs::kStream, Scope::kWatch, kPermRead, &C::OnWatch, nullptr},
        {R::Snapshot, 5, true, false, Runs::kStream, Scope::kServer, kPermBackup,
         &C::OnReplication, nullptr},
        {R::Follow, 5, false, false, Runs::kStream, Scope::kServer, kPermReplication,
         &C::OnReplication, nullptr},
        {R::FollowAck, 5, false, false, Runs::kHere, Scope::kServer, kPermReplication,
         &C::OnFollowAck, nullptr},
        {R::ListReplicas, 5, true, false, Runs::kHere, Scope::kServer, kPermReplication,
         &C::OnReplication, nullptr},
        {R::Promote, 5, true, false, Runs::kAside, Scope::kServer, kPermReplication,
         &C::OnReplication, nullptr},
        // The SCRAM exchange (auth.h, docs/security.md).
        {R::AuthStart, 6, false, true, Runs::kHere, Scope::kNone, 0, &C::OnAuthStart, nullptr},
        {R::AuthContinue, 6, false, true, Runs::kHere, Scope::kNone, 0, &C::OnAuthContinue,
         nullptr},
        // Users and roles (auth.h, user_requests.h): changes on the writer, in transactions.
        {R::CreateUser, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &CreateUserJob},
        {R::DropUser, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &DropUserJob},
        {R::SetPassword, 6, false, false, Runs::kWriter, Scope::kOwnPassword, kPermUsers, nullptr,
         &SetPasswordJob},
        {R::GrantRole, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &GrantRoleJob},
        {R::RevokeRole, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &RevokeRoleJob},
        {R::CreateRole, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &CreateRoleJob},
        {R::DropRole, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &DropRoleJob},
        {R::GrantPermission, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers, nullptr,
         &GrantPermissionJob},
        {R::RevokePermission, 6, false, false, Runs::kWriter, Scope::kServer, kPermUsers,
         nullptr, &RevokePermissionJob},
        {R::ListUsers, 6, true, false, Runs::kHere, Scope::kServer, kPermUsers, &C::OnListUsers,
         nullptr},
        {R::ListRoles, 6, true, false, Runs::kHere, Scope::kServer, kPermUsers, &C::OnListRoles,
         nullptr},
    };
    std::array<const RequestRow*, kSize> index{};
    for (const RequestRow& r : rows) index[size_t(r.kind)] = &r;
    return index;
  }

  static const RequestRow* Find(wire::Request kind) {
    static const std::array<const RequestRow*, kSize> index = Build();
    size_t i = size_t(kind);
    return i < kSize ? index[i] : nullptr;
  }
};

const RequestRow* FindRequest(wire::Request kind) { return RequestTable::Find(kind); }

bool GoesToWriter(const RequestRow& row, const wire::RequestFrame& f) {
  switch (row.runs) {
    case Runs::kWriter: return true;
    case Runs::kWriterIfWrites: return TxnWrites(*f.request_as_Txn());
    default: return false;
  }
}

namespace {

Status Denied(const Principal& user, uint32_t permission, std::string_view collection) {
  std::string what = collection.empty() ? "the server permission '" +
                                              std::string(PermissionName(permission)) + "'"
                                        : "'" + std::string(PermissionName(permission)) +
                                              "' on collection '" + std::string(collection) + "'";
  return Status(Code::kPermissionDenied, "user '" + user.user + "' lacks " + what);
}

Status Reserved(std::string_view collection) {
  return Status(Code::kPermissionDenied, "collection '" + std::string(collection) +
                                             "' is reserved for the server");
}

// Read or write on one collection.
Status Need(const Principal* user, uint32_t permission, std::string_view collection) {
  if (IsSystemCollection(collection)) return Reserved(collection);
  if (!user || user->Allows(permission, collection)) return Status::Ok();
  return Denied(*user, permission, collection);
}

Status CheckTxn(const Principal* user, const wire::Txn& t) {
  if (t.conditions()) {
    for (const wire::Condition* c : *t.conditions()) {
      if (Status s = Need(user, kPermRead, NameOf(c->collection())); !s.ok()) return s;
    }
  }
  if (!t.ops()) return Status::Ok();
  for (const wire::Operation* op : *t.ops()) {
    if (!op->op()) continue;  // a union type without its table: the decoder refuses it
    std::string_view coll;
    uint32_t perm = kPermRead;
    switch (op->op_type()) {
      case wire::Op::Get: coll = NameOf(op->op_as_Get()->collection()); break;
      case wire::Op::Put: coll = NameOf(op->op_as_Put()->collection()); perm = kPermWrite; break;
      case wire::Op::Delete:
        coll = NameOf(op->op_as_Delete()->collection());
        perm = kPermWrite;
        break;
      case wire::Op::Scan: coll = NameOf(op->op_as_Scan()->collection()); break;
      case wire::Op::Query: coll = NameOf(op->op_as_Query()->collection()); break;
      case wire::Op::Count: {
        auto c = op->op_as_Count();
        coll = c->scan() ? NameOf(c->scan()->collection())
                         : c->query() ? NameOf(c->query()->collection()) : std::string_view();
        break;
      }
      default: continue;  // malformed: the decoder refuses it
    }
    if (Status s = Need(user, perm, coll); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status CheckAccess(const RequestRow& row, const Principal* user, const wire::RequestFrame& f) {
  switch (row.scope) {
    case Scope::kNone:
      return Status::Ok();
    case Scope::kServer:
      if (!user || user->Allows(row.permission)) return Status::Ok();
      return Denied(*user, row.permission, {});
    case Scope::kCollection:
      return Need(user, row.permission, row.collection(f));
    case Scope::kTxn:
      return CheckTxn(user, *f.request_as_Txn());
    case Scope::kWatch: {
      std::string_view coll = NameOf(f.request_as_Watch()->collection());
      if (!coll.empty()) return Need(user, kPermRead, coll);
      // Every collection, catalog changes included: only for who may read them all.
      if (!user || user->Allows(kPermRead, "*")) return Status::Ok();
      return Status(Code::kPermissionDenied,
                    "user '" + user->user + "' lacks 'read' on every collection ('*'), which a "
                    "Watch of all collections needs; watch one collection instead");
    }
    case Scope::kOwnPassword:
      if (!user || user->Allows(kPermUsers)) return Status::Ok();
      if (NameOf(f.request_as_SetPassword()->name()) == user->user) return Status::Ok();
      return Denied(*user, kPermUsers, {});
  }
  return Status(Code::kInternal, "request row without a scope");
}

}  // namespace cairn::server
