// Idempotency keys: a write transaction that carries a key is remembered, with its
// result, in its own change-log entry (written in the same LMDB transaction as its
// writes). A transaction that arrives again with the same key (a client's retry after
// a lost connection) gets that result and changes nothing. docs/storage.md,
// "Idempotency keys".
//
// The engine finds a key's entry through an in-memory index from the key's hash to the
// commit numbers that carried it, rebuilt from the log when the database opens. The
// index is touched only by the writer (under the engine's write lock) and at open.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/types.h"

namespace cairn::internal {

inline constexpr size_t kMaxIdempotencyKey = 64;

// A transaction's operation results as remembered (its commit number is the log entry's
// key): [n: varint] then per operation [found: u8][version: varint][count: varint]
// [continuation: bytes][records: varint] and per record [key: bytes][version: varint]
// [kind: u8][value: bytes]. Encode replaces *out.
void EncodeRemembered(const TxnResult& r, std::string* out);
bool DecodeRemembered(std::string_view stored, TxnResult* r);

uint64_t IdempotencyHash(std::string_view key);

// The index: a ring of (time, hash, commit) in commit order, for trimming oldest first,
// and an open-addressing hash table (linear probing, at most half full, deletion by
// backward shift, so no tombstones) from hash to commit. Both are flat arrays that
// double (or halve) as the count of keys does: no allocation per key, one or two cache
// lines per lookup. Hashes are seeded per process (IdempotencyHash), so clients cannot
// choose keys that crowd one run of the table.
class IdempotencyIndex {
 public:
  // Remembers that commit `commit` (> 0), made at `time_ms`, carried a key of hash
  // `hash`. Commits are added in increasing order.
  void Add(uint64_t time_ms, uint64_t hash, uint64_t commit);
  // The commits whose key has hash `hash` (nearly always zero or one).
  void Find(uint64_t hash, std::vector<uint64_t>* commits) const;
  // Forgets, oldest first, keys made before `horizon_ms`, keys beyond `max_keys`, and
  // keys of commits older than `first_commit` (no longer in the change log).
  void Trim(uint64_t horizon_ms, uint64_t max_keys, uint64_t first_commit);
  size_t size() const { return count_; }
  // Bytes held by the two arrays.
  size_t memory() const { return ring_.size() * sizeof(Entry) + slots_.size() * sizeof(Slot); }

 private:
  struct Entry {
    uint64_t time_ms, hash, commit;
  };
  struct Slot {
    uint64_t hash = 0;
    uint64_t commit = 0;  // 0: empty
  };
  static constexpr size_t kMinSlots = 64;
  void Insert(uint64_t hash, uint64_t commit);
  void Erase(uint64_t hash, uint64_t commit);
  void Resize(size_t slots);  // rehashes every key into `slots` slots (a power of two)
  size_t Home(uint64_t hash) const { return size_t(hash) & (slots_.size() - 1); }

  std::vector<Entry> ring_;  // a power of two; entries [head_, head_ + count_) modulo size
  size_t head_ = 0;
  size_t count_ = 0;
  std::vector<Slot> slots_;  // a power of two, or empty; at most half full
};

}  // namespace cairn::internal
