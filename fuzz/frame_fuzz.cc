// frame_fuzz: what cairnd does with the bytes of a connection before the engine runs.
//
// Covers: the frame decoder (wire::ParseFrame) over a stream of frames, the FlatBuffers
// verifier (wire::VerifyRequestFrame) of each payload, and for every payload that passes,
// the conversion of its request into engine types (server/src/convert.cc: DecodeTxn with
// its operations, conditions, bounds and FlexBuffers index values; DecodeIndexSpec), the
// engine's checks of names and index specs, and the document check of every put
// (CheckTransactionDocuments, as cairnd runs it on the IO thread).
//
// Asserts (abort on violation):
// - ParseFrame says exactly what the 4-byte header says: kTooLarge iff the length is over
//   the limit, kEmpty iff it is 0, kNeedMore iff the bytes are short, and a complete
//   frame's payload is the announced bytes right after the header;
// - every view DecodeTxn leaves in the Transaction points into the payload (the server
//   runs the transaction straight from the received frame);
// - a decoded transaction has the frame's operations and conditions, and TxnWrites agrees
//   with Transaction::read_only; an idempotency key is only on a write;
// - Txn decoding is deterministic (decoding twice gives the same result).
// Each payload is copied into a buffer of its own exact size so that ASan catches a read
// past it (in the stream, the next frame's bytes would hide it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "cairn/engine/document.h"
#include "cairn/protocol/frame.h"
#include "catalog.h"
#include "document.h"
#include "convert.h"
#include "engine_impl.h"

namespace {

using namespace cairn;

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

std::string_view payload_bounds;

bool Inside(std::string_view v) {
  if (v.empty()) return true;
  const char* b = payload_bounds.data();
  return v.data() >= b && v.data() + v.size() <= b + payload_bounds.size();
}

void CheckScanViews(const ScanSpec& s) {
  FUZZ_CHECK(Inside(s.collection));
  FUZZ_CHECK(Inside(s.continuation));
  if (s.lower) FUZZ_CHECK(Inside(s.lower->key));
  if (s.upper) FUZZ_CHECK(Inside(s.upper->key));
}

void CheckQueryViews(const QuerySpec& q) {
  FUZZ_CHECK(Inside(q.collection));
  FUZZ_CHECK(Inside(q.index));
  FUZZ_CHECK(Inside(q.continuation));
  FUZZ_CHECK(q.equal.size() <= 16);
}

void CheckViews(const Transaction& t) {
  for (const Condition& c : t.conditions) {
    FUZZ_CHECK(Inside(c.collection));
    FUZZ_CHECK(Inside(c.key));
    FUZZ_CHECK(c.kind <= Condition::kVersionEquals);
  }
  for (const Op& op : t.ops) {
    if (auto* g = std::get_if<GetOp>(&op)) {
      FUZZ_CHECK(Inside(g->collection) && Inside(g->key));
    } else if (auto* p = std::get_if<PutOp>(&op)) {
      FUZZ_CHECK(Inside(p->collection) && Inside(p->key) && Inside(p->value));
      FUZZ_CHECK(p->mode <= PutMode::kReplace);
    } else if (auto* d = std::get_if<DeleteOp>(&op)) {
      FUZZ_CHECK(Inside(d->collection) && Inside(d->key));
    } else if (auto* s = std::get_if<ScanOp>(&op)) {
      CheckScanViews(s->spec);
    } else if (auto* q = std::get_if<QueryOp>(&op)) {
      CheckQueryViews(q->spec);
    } else if (auto* c = std::get_if<CountOp>(&op)) {
      if (auto* cs = std::get_if<ScanSpec>(&c->range)) CheckScanViews(*cs);
      if (auto* cq = std::get_if<QuerySpec>(&c->range)) CheckQueryViews(*cq);
    }
  }
  FUZZ_CHECK(Inside(t.idempotency_key));
}

void FuzzTxn(const wire::Txn& wt) {
  server::RequestLimits limits;
  limits.max_ops = 64;
  limits.max_result_bytes = 1 << 20;
  limits.default_scan_limit = 100;
  Transaction t;
  Status s = server::DecodeTxn(wt, limits, &t);
  Transaction again;
  Status s2 = server::DecodeTxn(wt, limits, &again);
  FUZZ_CHECK(s.code() == s2.code() && s.message() == s2.message());
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty());
    return;
  }
  CheckViews(t);
  FUZZ_CHECK(t.ops.size() == (wt.ops() ? wt.ops()->size() : 0));
  FUZZ_CHECK(t.conditions.size() == (wt.conditions() ? wt.conditions()->size() : 0));
  FUZZ_CHECK(server::TxnWrites(wt) == !t.read_only());
  FUZZ_CHECK(t.idempotency_key.empty() || !t.read_only());
  FUZZ_CHECK(t.ops.size() == again.ops.size());
  for (size_t i = 0; i < t.ops.size(); i++) FUZZ_CHECK(t.ops[i].index() == again.ops[i].index());
  // The document check of every put, as the connection runs it before the writer.
  Status docs = internal::CheckTransactionDocuments(t, 1 << 20);
  if (!docs.ok()) FUZZ_CHECK(!docs.message().empty());
}

void FuzzPayload(std::string_view payload) {
  if (!wire::VerifyRequestFrame(payload)) return;
  auto f = flatbuffers::GetRoot<wire::RequestFrame>(payload.data());
  // As connection.cc: a union type without its table is refused, except for the requests
  // without fields; those (and every other) are read through their accessors only.
  switch (f->request_type()) {
    case wire::Request::Txn:
      if (auto t = f->request_as_Txn()) FuzzTxn(*t);
      break;
    case wire::Request::Hello:
      if (auto h = f->request_as_Hello()) {
        FUZZ_CHECK(Inside(server::View(h->client_name())));
        (void)h->protocol_version();
      }
      break;
    case wire::Request::Get:
      if (auto g = f->request_as_Get()) {
        FUZZ_CHECK(Inside(server::View(g->collection())) && Inside(server::View(g->key())));
      }
      break;
    case wire::Request::Ping:
      if (auto p = f->request_as_Ping()) FUZZ_CHECK(Inside(server::View(p->payload())));
      break;
    case wire::Request::CreateCollection:
      if (auto c = f->request_as_CreateCollection()) {
        (void)internal::CheckName("collection", server::View(c->name()));
      }
      break;
    case wire::Request::CreateIndex:
      if (auto c = f->request_as_CreateIndex()) {
        (void)internal::CheckName("collection", server::View(c->collection()));
        IndexSpec spec;
        if (server::DecodeIndexSpec(c->index(), &spec).ok()) {
          FUZZ_CHECK(c->index() && c->index()->name());
          FUZZ_CHECK(spec.fields.size() == (c->index()->fields() ? c->index()->fields()->size() : 0));
          if (internal::CheckIndexSpec(spec).ok()) {
            for (const std::string& field : spec.fields) (void)internal::ParsePath(field);
          }
        }
      }
      break;
    case wire::Request::DropIndex:
      if (auto d = f->request_as_DropIndex()) {
        FUZZ_CHECK(Inside(server::View(d->collection())) && Inside(server::View(d->name())));
      }
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr uint32_t kMax = wire::kMinMaxFrame;
  while (true) {
    std::string_view payload;
    size_t consumed = 0;
    wire::FrameStatus st = wire::ParseFrame(in, kMax, &payload, &consumed);
    if (in.size() < 4) {
      FUZZ_CHECK(st == wire::FrameStatus::kNeedMore);
      return 0;
    }
    uint32_t n;
    std::memcpy(&n, in.data(), 4);  // little-endian hosts only (as the build)
    if (n > kMax) {
      FUZZ_CHECK(st == wire::FrameStatus::kTooLarge);
      return 0;  // the server closes the connection
    }
    if (n == 0) {
      FUZZ_CHECK(st == wire::FrameStatus::kEmpty && consumed == 4);
      in.remove_prefix(consumed);
      continue;
    }
    if (in.size() - 4 < n) {
      FUZZ_CHECK(st == wire::FrameStatus::kNeedMore);
      return 0;
    }
    FUZZ_CHECK(st == wire::FrameStatus::kComplete);
    FUZZ_CHECK(consumed == 4 + size_t(n) && payload.size() == n && payload.data() == in.data() + 4);
    // A buffer of the payload's own size, aligned as the server's input buffer is not
    // guaranteed to be (the verifier is told not to check alignment).
    auto own = std::make_unique<char[]>(payload.size());
    std::memcpy(own.get(), payload.data(), payload.size());
    payload_bounds = std::string_view(own.get(), payload.size());
    FuzzPayload(payload_bounds);
    in.remove_prefix(consumed);
  }
}
