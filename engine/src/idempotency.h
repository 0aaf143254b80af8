// Idempotency keys: a write transaction that carries a key is remembered, with its
// result, in the same LMDB transaction as its writes. A transaction that arrives
// again with the same key (a client's retry after a lost connection) gets the
// stored result and changes nothing. docs/storage.md, "Idempotency keys".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/engine/types.h"

namespace cairn::internal {

inline constexpr size_t kMaxIdempotencyKey = 64;

// The stored value: [time: u64 BE, ms since the epoch][commit: u64 BE][result].
std::string EncodeRemembered(uint64_t time_ms, const TxnResult& r);
bool DecodeRemembered(std::string_view stored, uint64_t* time_ms, TxnResult* r);

// Key of the retention index: [time: u64 BE][idempotency key].
std::string RetentionKey(uint64_t time_ms, std::string_view key);

}  // namespace cairn::internal
