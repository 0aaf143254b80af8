#include "idempotency.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <random>

#include "coding.h"

namespace cairn::internal {

void EncodeRemembered(const TxnResult& r, std::string* out_string) {
  std::string& out = *out_string;
  out.clear();
  PutVarint(&out, r.results.size());
  for (const OpResult& op : r.results) {
    out.push_back(op.found ? 1 : 0);
    PutVarint(&out, op.version);
    PutVarint(&out, op.count);
    PutBytes(&out, op.continuation);
    PutVarint(&out, op.records.size());
    for (const Record& rec : op.records) {
      PutBytes(&out, rec.key);
      PutVarint(&out, rec.version);
      out.push_back(char(rec.kind));
      PutBytes(&out, rec.value);
    }
  }
}

bool DecodeRemembered(std::string_view stored, TxnResult* r) {
  ByteReader in(stored);
  uint64_t n;
  if (!in.Varint(&n) || n > stored.size()) return false;
  r->results.resize(n);
  for (OpResult& op : r->results) {
    uint8_t found;
    uint64_t records;
    if (!in.U8(&found) || !in.Varint(&op.version) || !in.Varint(&op.count) ||
        !in.Bytes(&op.continuation) || !in.Varint(&records) || records > stored.size()) {
      return false;
    }
    op.found = found != 0;
    op.records.resize(records);
    for (Record& rec : op.records) {
      uint8_t kind;
      if (!in.Bytes(&rec.key) || !in.Varint(&rec.version) || !in.U8(&kind) || kind > 1 ||
          !in.Bytes(&rec.value)) {
        return false;
      }
      rec.kind = ValueKind(kind);
    }
  }
  return in.empty();
}

uint64_t IdempotencyHash(std::string_view key) {
  // Seeded per process (the index lives in memory only), so that clients choosing keys
  // cannot pile them into one bucket of the writer's hash table.
  static const uint64_t seed = std::random_device{}() * 0x9e3779b97f4a7c15ull ^ std::random_device{}();
  return XXH3_64bits_withSeed(key.data(), key.size(), seed);
}

void IdempotencyIndex::Add(uint64_t time_ms, uint64_t hash, uint64_t commit) {
  order_.push_back(Entry{time_ms, hash, commit});
  by_hash_.emplace(hash, commit);
}

void IdempotencyIndex::Find(uint64_t hash, std::vector<uint64_t>* commits) const {
  commits->clear();
  auto [begin, end] = by_hash_.equal_range(hash);
  for (auto it = begin; it != end; ++it) commits->push_back(it->second);
}

void IdempotencyIndex::Trim(uint64_t horizon_ms, uint64_t max_keys, uint64_t first_commit) {
  while (!order_.empty()) {
    const Entry& e = order_.front();
    if (e.time_ms >= horizon_ms && order_.size() <= max_keys && e.commit >= first_commit) break;
    auto [begin, end] = by_hash_.equal_range(e.hash);
    for (auto it = begin; it != end; ++it) {
      if (it->second == e.commit) {
        by_hash_.erase(it);
        break;
      }
    }
    order_.pop_front();
  }
}

}  // namespace cairn::internal
