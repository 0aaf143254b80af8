// Checking untrusted FlexBuffers: documents, and the index values of queries.
//
// Every check costs time linear in the buffer's size. FlexBuffers may share a part
// between many references (a builder pools keys, strings and key vectors); each shared
// part is checked once. A buffer whose check would cost more than a few steps per byte
// (parts that overlap in ways no builder writes) is refused rather than checked.
// Thread-safe: the functions keep no state between calls.
#pragma once

#include <cstddef>
#include <string_view>

#include "cairn/engine/status.h"

namespace cairn {

// Levels a document may nest: its root map is level 1; each map, vector, string or blob
// inside a level is one level deeper.
inline constexpr size_t kMaxDocumentDepth = 64;

// ok if `bytes` is a well-formed FlexBuffer: every offset, size and type within the
// buffer, strings and keys terminated, every map's keys sorted (strcmp), distinct and as
// many as its values, at most `max_depth` levels (counted as above).
// kBadRequest otherwise, its message a predicate ("not a valid FlexBuffer (why)", "too
// costly to check: ...") to follow the name of what was checked. Alignment is not checked (LMDB stores values
// 2-byte aligned; x86-64 and arm64 read unaligned scalars).
Status CheckFlexBuffer(std::string_view bytes, size_t max_depth);

// CheckFlexBuffer with kMaxDocumentDepth, and a root that is a map. Every document is
// checked before it is stored (Engine::Execute, unless the caller did it already; see
// Transaction::documents_checked), so stored documents can be read without checks.
Status CheckDocument(std::string_view doc);

}  // namespace cairn
