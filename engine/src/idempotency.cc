#include "idempotency.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
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
  if (count_ == ring_.size()) {
    // Double the ring, unrolling it so that the oldest entry is first.
    std::vector<Entry> bigger(std::max<size_t>(ring_.size() * 2, kMinSlots / 2));
    for (size_t i = 0; i < count_; i++) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_.swap(bigger);
    head_ = 0;
  }
  if (2 * (count_ + 1) > slots_.size()) Resize(std::max(slots_.size() * 2, kMinSlots));
  ring_[(head_ + count_) & (ring_.size() - 1)] = Entry{time_ms, hash, commit};
  count_++;
  Insert(hash, commit);
}

void IdempotencyIndex::Find(uint64_t hash, std::vector<uint64_t>* commits) const {
  commits->clear();
  if (slots_.empty()) return;
  const size_t mask = slots_.size() - 1;
  for (size_t i = Home(hash); slots_[i].commit != 0; i = (i + 1) & mask) {
    if (slots_[i].hash == hash) commits->push_back(slots_[i].commit);
  }
}

void IdempotencyIndex::Trim(uint64_t horizon_ms, uint64_t max_keys, uint64_t first_commit) {
  while (count_ > 0) {
    const Entry& e = ring_[head_];
    if (e.time_ms >= horizon_ms && count_ <= max_keys && e.commit >= first_commit) break;
    Erase(e.hash, e.commit);
    head_ = (head_ + 1) & (ring_.size() - 1);
    count_--;
  }
  // Give memory back after a burst: halve the table when it is under an eighth full.
  if (slots_.size() > kMinSlots && 8 * count_ < slots_.size()) Resize(slots_.size() / 2);
}

void IdempotencyIndex::Insert(uint64_t hash, uint64_t commit) {
  const size_t mask = slots_.size() - 1;
  size_t i = Home(hash);
  while (slots_[i].commit != 0) i = (i + 1) & mask;
  slots_[i] = Slot{hash, commit};
}

void IdempotencyIndex::Erase(uint64_t hash, uint64_t commit) {
  const size_t mask = slots_.size() - 1;
  size_t i = Home(hash);
  while (slots_[i].commit != commit) {
    if (slots_[i].commit == 0) return;  // not there (never: every entry was inserted)
    i = (i + 1) & mask;
  }
  // Backward shift: move later members of the run into the hole when their home is not
  // between the hole and them (cyclically), so that every key stays reachable from its
  // home without tombstones.
  for (size_t j = (i + 1) & mask; slots_[j].commit != 0; j = (j + 1) & mask) {
    size_t home = Home(slots_[j].hash);
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    i = j;
  }
  slots_[i] = Slot{};
}

void IdempotencyIndex::Resize(size_t slots) {
  slots_.assign(slots, Slot{});
  for (size_t k = 0; k < count_; k++) {
    const Entry& e = ring_[(head_ + k) & (ring_.size() - 1)];
    Insert(e.hash, e.commit);
  }
  // The ring is not shrunk: at most twice the peak count, it holds 24 bytes a key.
}

}  // namespace cairn::internal
