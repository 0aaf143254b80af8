#include "requests.h"

#include <array>

#include "auth.h"
#include "catalog_reply.h"
#include "connection.h"
#include "convert.h"
#include "server_context.h"

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
        {R::Get, 2, false, false, Runs::kHere, Scope::kCollection, kPermRead, &C::OnGet, nullptr},
        {R::CreateCollection, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin,
         nullptr, &CreateCollectionJob},
        {R::DropCollection, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin,
         nullptr, &DropCollectionJob},
        {R::CreateIndex, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin, nullptr,
         &CreateIndexJob},
        {R::DropIndex, 1, false, false, Runs::kWriter, Scope::kCollection, kPermAdmin, nullptr,
         &DropIndexJob},
        // Lists only the collections the user may read.
        {R::ListCollections, 1, true, false, Runs::kHere, Scope::kNone, 0, &C::OnListCollections,
         nullptr},
        {R::DescribeCollection, 1, false, false, Runs::kHere, Scope::kCollection, kPermRead,
         &C::OnDescribeCollection, nullptr},
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

}  // namespace cairn::server
