#include "changelog.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "catalog.h"
#include "coding.h"

namespace cairn::internal {
namespace {

// 1: [1][changes]; 2: [2][time ms: u64 BE][idempotency key: bytes][remembered: bytes]
// [changes]. Both end with the checksum. Format 1 entries are still read.
constexpr uint8_t kLogFormat = 2;

uint64_t Checksum(uint64_t commit, std::string_view body) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  char c[8];
  StoreU64BE(c, commit);
  XXH3_64bits_update(&state, c, sizeof c);
  XXH3_64bits_update(&state, body.data(), body.size());
  return XXH3_64bits_digest(&state);
}

}  // namespace

void LogEntryBuilder::Put(std::string_view collection, std::string_view key, ValueKind kind,
                          std::string_view value) {
  body_.push_back(char(Change::kPut));
  PutBytes(&body_, collection);
  PutBytes(&body_, key);
  body_.push_back(char(kind));
  PutBytes(&body_, value);
  count_++;
}

void LogEntryBuilder::Delete(std::string_view collection, std::string_view key) {
  body_.push_back(char(Change::kDelete));
  PutBytes(&body_, collection);
  PutBytes(&body_, key);
  count_++;
}

void LogEntryBuilder::CreateCollection(std::string_view collection) {
  body_.push_back(char(Change::kCreateCollection));
  PutBytes(&body_, collection);
  count_++;
}

void LogEntryBuilder::DropCollection(std::string_view collection) {
  body_.push_back(char(Change::kDropCollection));
  PutBytes(&body_, collection);
  count_++;
}

void LogEntryBuilder::CreateIndex(std::string_view collection, const IndexSpec& spec) {
  body_.push_back(char(Change::kCreateIndex));
  PutBytes(&body_, collection);
  PutBytes(&body_, EncodeIndexSpec(spec));
  count_++;
}

void LogEntryBuilder::DropIndex(std::string_view collection, std::string_view index) {
  body_.push_back(char(Change::kDropIndex));
  PutBytes(&body_, collection);
  PutBytes(&body_, index);
  count_++;
}

std::string_view LogEntryBuilder::Finish(uint64_t commit, uint64_t time_ms,
                                         std::string_view idempotency_key,
                                         std::string_view remembered) {
  entry_.clear();
  entry_.push_back(char(kLogFormat));
  PutU64BE(&entry_, time_ms);
  PutBytes(&entry_, idempotency_key);
  PutBytes(&entry_, remembered);
  entry_ += body_;
  PutU64LE(&entry_, Checksum(commit, entry_));
  return entry_;
}

namespace {

// Checks the checksum and reads the header; leaves `r` at the first change.
bool ReadHeader(uint64_t commit, std::string_view stored, LogHeader* h, ByteReader* r) {
  if (stored.size() < 9) return false;
  std::string_view body = stored.substr(0, stored.size() - 8);
  if (LoadU64LE(stored.data() + body.size()) != Checksum(commit, body)) return false;
  *r = ByteReader(body);
  uint8_t format;
  if (!r->U8(&format)) return false;
  *h = LogHeader();
  if (format == 1) return true;
  return format == 2 && r->U64BE(&h->time_ms) && r->Bytes(&h->idempotency_key) &&
         r->Bytes(&h->remembered);
}

}  // namespace

bool DecodeLogHeader(uint64_t commit, std::string_view stored, LogHeader* out) {
  ByteReader r{std::string_view()};
  return ReadHeader(commit, stored, out, &r);
}

bool DecodeLogChanges(uint64_t commit, std::string_view stored, LogHeader* header,
                      std::vector<ChangeView>* changes) {
  ByteReader r{std::string_view()};
  if (!ReadHeader(commit, stored, header, &r)) return false;
  while (!r.empty()) {
    ChangeView c;
    uint8_t kind;
    if (!r.U8(&kind) || !r.Bytes(&c.collection)) return false;
    c.kind = Change::Kind(kind);
    switch (c.kind) {
      case Change::kPut: {
        uint8_t vk;
        if (!r.Bytes(&c.key) || !r.U8(&vk) || vk > 1 || !r.Bytes(&c.value)) return false;
        c.value_kind = ValueKind(vk);
        break;
      }
      case Change::kDelete:
        if (!r.Bytes(&c.key)) return false;
        break;
      case Change::kCreateCollection:
      case Change::kDropCollection:
        break;
      case Change::kCreateIndex: {
        IndexSpec spec;
        if (!r.Bytes(&c.index) || !DecodeIndexSpec(c.index, &spec)) return false;
        break;
      }
      case Change::kDropIndex:
        if (!r.Bytes(&c.index)) return false;
        break;
      default:
        return false;
    }
    changes->push_back(c);
  }
  return true;
}

bool DecodeLogEntry(uint64_t commit, std::string_view stored, LogEntry* out) {
  LogHeader h;
  thread_local std::vector<ChangeView> views;
  views.clear();
  if (!DecodeLogChanges(commit, stored, &h, &views)) return false;
  out->commit = commit;
  out->time_ms = h.time_ms;
  out->changes.clear();
  for (const ChangeView& v : views) {
    Change c;
    c.kind = v.kind;
    c.collection.assign(v.collection);
    c.key.assign(v.key);
    c.value_kind = v.value_kind;
    c.value.assign(v.value);
    if (v.kind == Change::kCreateIndex) {
      c.index.emplace();
      (void)DecodeIndexSpec(v.index, &*c.index);  // checked by DecodeLogChanges
    } else if (v.kind == Change::kDropIndex) {
      c.index.emplace();
      c.index->name.assign(v.index);
    }
    out->changes.push_back(std::move(c));
  }
  return true;
}

}  // namespace cairn::internal
