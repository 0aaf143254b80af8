// token_fuzz: the continuation tokens of scans and queries. A token is opaque to clients
// but comes back from them untrusted; the engine decodes it where it resumes a page
// (ScanRecords and QueryIndex in engine/src/records.cc: [kind][u32 id][position], a
// query's position being [varint length][index key][primary key]) and seeks LMDB cursors
// with it. So this harness runs real scans and queries on a real engine (a small
// database in a temporary folder, made once: a collection of 40 records and two indexes,
// with values of every kind, repeated values, and strings long enough that their index
// keys are truncated) with specs and tokens made from the input: tokens of any bytes, and
// tokens of the right kind and id whose position is any bytes.
//
// Asserts (abort on violation), for any token:
// - the page is either refused with kBadRequest or is a run of the records the same
//   scan or query returns without a token: no record outside the range, none twice, none
//   out of order;
// - for a scan, exactly the records after the token's position (forward), or before it
//   (reverse), as far as the limit;
// - a page stopped by its limit returns a token that resumes right after its last record,
//   and that token is accepted.
#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cairn/engine/engine.h"
#include "cairn/protocol/json.h"
#include "coding.h"

namespace {

using namespace cairn;

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

std::unique_ptr<Engine> engine;
std::string dir;
uint32_t collection_id = 0;
std::vector<uint32_t> index_ids;
std::vector<std::string> keys;

// Index values for the documents and for the specs.
std::vector<IndexValue> Pool() {
  return {std::monostate(), false, true, int64_t{-2}, int64_t{0}, int64_t{1}, uint64_t{1},
          2.5, int64_t{5}, std::string("a"), std::string("b"), std::string("m"),
          std::string(600, 'x'), std::string(600, 'x') + "y", std::string(600, 'x') + "z",
          Blob{"\x00\x01"}};
}

std::string ValueJson(const IndexValue& v) {
  switch (v.index()) {
    case 0: return "null";
    case 1: return std::get<bool>(v) ? "true" : "false";
    case 2: return std::to_string(std::get<int64_t>(v));
    case 3: return std::to_string(std::get<uint64_t>(v));
    case 4: return "2.5";
    case 5: return "\"" + std::get<std::string>(v) + "\"";
    default: return R"({"$bytes": "AAE="})";
  }
}

void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "token_fuzz setup: %s: %s\n", what, s.ToString().c_str());
  std::abort();
}

void RemoveDir() {
  engine.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void Setup() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "cairn-token-fuzz-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) std::abort();
  dir = tmpl;
  Options o;
  o.max_size = uint64_t{256} << 20;
  o.durability = Durability::kNoSync;
  auto e = Engine::Open(dir, o);
  if (!e.ok()) Die("open", e.status());
  engine = std::move(e).value();
  // After the open: handlers run in reverse, so the engine closes before the engine's own
  // statics (its registry of open folders, made by the first open) are destroyed.
  std::atexit(RemoveDir);
  if (Status s = engine->CreateCollection("c"); !s.ok()) Die("collection", s);
  if (Status s = engine->CreateIndex("c", IndexSpec{"by_v", {"v"}, false}); !s.ok()) Die("index", s);
  if (Status s = engine->CreateIndex("c", IndexSpec{"by_vw", {"v", "w"}, false}); !s.ok()) {
    Die("index", s);
  }
  std::vector<IndexValue> pool = Pool();
  std::vector<std::string> docs;
  Transaction t;
  for (int i = 0; i < 40; i++) {
    char k[8];
    std::snprintf(k, sizeof k, "k%02d", i);
    keys.emplace_back(k);
  }
  keys.push_back(std::string("k\x00z", 3));
  keys.push_back("k\xff");
  docs.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); i++) {
    std::string json = "{\"v\": " + ValueJson(pool[i % pool.size()]) +
                       ", \"w\": " + std::to_string(i % 3) + "}";
    std::string doc, error;
    if (!JsonToDocument(json, &doc, &error)) std::abort();
    docs.push_back(std::move(doc));
  }
  for (size_t i = 0; i < keys.size(); i++) {
    t.ops.emplace_back(std::in_place_type<PutOp>, PutOp{"c", keys[i], docs[i]});
  }
  if (TxnResult r = engine->Execute(t); !r.status.ok()) Die("put", r.status);
  std::sort(keys.begin(), keys.end());
  // The ids the tokens carry: read back from tokens the engine hands out.
  auto read = engine->BeginRead();
  if (!read.ok()) Die("read", read.status());
  ScanSpec scan{"c"};
  scan.limit = 1;
  std::string token;
  if (Status s = read->Scan(scan, [](const RecordView&) {}, &token); !s.ok()) Die("scan", s);
  internal::ByteReader r(token);
  uint8_t kind;
  if (!r.U8(&kind) || !r.U32BE(&collection_id)) std::abort();
  for (const char* name : {"by_v", "by_vw"}) {
    QuerySpec q{"c", name};
    q.limit = 1;
    if (Status s = read->Query(q, [](const RecordView&) {}, &token); !s.ok()) Die("query", s);
    uint32_t id;
    internal::ByteReader qr(token);
    if (!qr.U8(&kind) || !qr.U32BE(&id)) std::abort();
    index_ids.push_back(id);
  }
}

IndexValue TakeValue(FuzzedDataProvider& p) {
  static const std::vector<IndexValue> pool = Pool();
  if (p.ConsumeIntegralInRange<int>(0, 7) == 0) return p.ConsumeRandomLengthString(8);
  return pool[p.ConsumeIntegralInRange<size_t>(0, pool.size() - 1)];
}

std::string TakeKey(FuzzedDataProvider& p) {
  if (p.ConsumeBool()) return keys[p.ConsumeIntegralInRange<size_t>(0, keys.size() - 1)];
  return p.ConsumeRandomLengthString(8);
}

// A token: any bytes, or the right kind and id and a position of any bytes (for a query,
// an index key made of the index's id and encoded-looking bytes, then a primary key).
std::string TakeToken(FuzzedDataProvider& p, bool query, uint32_t id) {
  int mode = p.ConsumeIntegralInRange<int>(0, 3);
  if (mode == 0) return p.ConsumeRandomLengthString(64);
  std::string t(1, query ? 'Q' : 'S');
  if (mode == 1) id = p.ConsumeIntegral<uint32_t>();
  internal::PutU32BE(&t, id);
  if (!query) {
    t += mode == 3 ? TakeKey(p) : p.ConsumeRandomLengthString(600);
    return t;
  }
  std::string at;
  internal::PutU32BE(&at, mode == 3 ? id : p.ConsumeIntegral<uint32_t>());
  at += p.ConsumeRandomLengthString(600);
  internal::PutBytes(&t, at);
  t += mode == 3 ? TakeKey(p) : p.ConsumeRandomLengthString(600);
  return t;
}

using Page = std::vector<std::string>;

Status RunScan(ReadTxn& read, const ScanSpec& spec, Page* page, std::string* token) {
  page->clear();
  return read.Scan(spec, [&](const RecordView& r) { page->emplace_back(r.key); }, token);
}
Status RunQuery(ReadTxn& read, const QuerySpec& spec, Page* page, std::string* token) {
  page->clear();
  return read.Query(spec, [&](const RecordView& r) { page->emplace_back(r.key); }, token);
}

// Where `page` starts as a run in `full`; fails the run if it is not one.
size_t RunStart(const Page& full, const Page& page) {
  if (page.empty()) return full.size();
  auto it = std::find(full.begin(), full.end(), page[0]);
  FUZZ_CHECK(it != full.end());
  size_t at = size_t(it - full.begin());
  FUZZ_CHECK(at + page.size() <= full.size());
  for (size_t i = 0; i < page.size(); i++) FUZZ_CHECK(full[at + i] == page[i]);
  return at;
}

template <typename Spec, typename Run>
void CheckPaging(ReadTxn& read, Spec spec, const Page& full, const Page& page, size_t at,
                 const std::string& next, Run run) {
  if (spec.limit && page.size() == spec.limit && at + page.size() < full.size()) {
    FUZZ_CHECK(!next.empty());
  }
  if (next.empty()) return;
  FUZZ_CHECK(spec.limit && page.size() == spec.limit);
  spec.continuation = next;
  Page second;
  std::string after;
  Status s = run(read, spec, &second, &after);
  FUZZ_CHECK(s.ok());
  if (!second.empty()) FUZZ_CHECK(RunStart(full, second) == at + page.size());
}

void FuzzScan(ReadTxn& read, FuzzedDataProvider& p) {
  ScanSpec spec{"c"};
  std::string lo = TakeKey(p), hi = TakeKey(p);
  if (p.ConsumeBool()) spec.lower = KeyBound{lo, p.ConsumeBool()};
  if (p.ConsumeBool()) spec.upper = KeyBound{hi, p.ConsumeBool()};
  spec.reverse = p.ConsumeBool();
  Page full, page;
  std::string next;
  FUZZ_CHECK(RunScan(read, spec, &full, &next).ok() && next.empty());
  spec.limit = p.ConsumeIntegralInRange<uint32_t>(0, 4);
  std::string token = TakeToken(p, false, collection_id);
  spec.continuation = token;
  Status s = RunScan(read, spec, &page, &next);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == Code::kBadRequest);
    return;
  }
  // The records past the token's position, in the scan's direction.
  // (An empty token is no token: the first page.)
  FUZZ_CHECK(token.empty() || token.size() >= 5);
  std::string pos = token.empty() ? std::string() : token.substr(5);
  Page expect;
  for (const std::string& k : full) {
    if (token.empty() || (spec.reverse ? k < pos : k > pos)) expect.push_back(k);
  }
  if (spec.limit && expect.size() > spec.limit) expect.resize(spec.limit);
  FUZZ_CHECK(page == expect);
  size_t at = RunStart(full, page);
  CheckPaging(read, spec, full, page, at, next, RunScan);
}

void FuzzQuery(ReadTxn& read, FuzzedDataProvider& p) {
  size_t which = p.ConsumeIntegralInRange<size_t>(0, 1);
  QuerySpec spec{"c", which == 0 ? "by_v" : "by_vw"};
  size_t nequal = p.ConsumeIntegralInRange<size_t>(0, which + 1);
  for (size_t i = 0; i < nequal; i++) spec.equal.push_back(TakeValue(p));
  if (p.ConsumeBool()) spec.lower = ValueBound{TakeValue(p), p.ConsumeBool()};
  if (p.ConsumeBool()) spec.upper = ValueBound{TakeValue(p), p.ConsumeBool()};
  spec.reverse = p.ConsumeBool();
  Page full, page;
  std::string next;
  if (!RunQuery(read, spec, &full, &next).ok()) return;  // a spec the index cannot answer
  FUZZ_CHECK(next.empty());
  std::vector<std::string> sorted = full;
  std::sort(sorted.begin(), sorted.end());
  FUZZ_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  spec.limit = p.ConsumeIntegralInRange<uint32_t>(0, 4);
  spec.continuation = "";
  std::string token = TakeToken(p, true, index_ids[which]);
  spec.continuation = token;
  Status s = RunQuery(read, spec, &page, &next);
  if (!s.ok()) {
    if (s.code() != Code::kBadRequest) {
      std::fprintf(stderr, "query with a token: %s\n", s.ToString().c_str());
      std::abort();
    }
    return;
  }
  if (spec.limit) FUZZ_CHECK(page.size() <= spec.limit);
  size_t at = RunStart(full, page);
  CheckPaging(read, spec, full, page, at, next, RunQuery);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  auto read = engine->BeginRead();
  FUZZ_CHECK(read.ok());
  if (p.ConsumeBool()) {
    FuzzScan(*read, p);
  } else {
    FuzzQuery(*read, p);
  }
  return 0;
}
