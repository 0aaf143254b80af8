// Checking untrusted FlexBuffers: documents, and the index values of queries.
//
// Every check costs time linear in the buffer's size. FlexBuffers may share a part
// between many references (a builder pools keys, strings and key vectors); each shared
// part is checked once. A buffer whose check would cost more than a few steps per byte
// (parts that overlap in ways no builder writes) is refused rather than checked.
//
// Sharing also lets a small buffer stand for a huge one (a vector of a thousand references
// to one vector of a thousand elements is a million values to whoever writes it out, as
// FlexToJson does). A buffer's expanded size is its size written out without sharing: one
// unit per value and one per byte of each string, blob and key, counted at every
// reference. It is bounded by MaxExpandedSize, unless the caller asks otherwise.
// Thread-safe: the functions keep no state between calls.
#pragma once

#include <cstddef>
#include <string_view>

#include "cairn/engine/status.h"

namespace cairn {

// Levels a document may nest: its root map is level 1; each map, vector, string or blob
// inside a level is one level deeper.
inline constexpr size_t kMaxDocumentDepth = 64;

// The bound on a buffer's expanded size: kMaxExpansionPerByte units per byte stored, plus
// kExpansionAllowance. A document built without sharing (or with the keys shared, as
// JsonToDocument builds) expands to about its size, or to about its JSON's size; only keys
// of hundreds of bytes repeated in many maps, or parts referenced many times, come near.
inline constexpr uint64_t kMaxExpansionPerByte = 64;
inline constexpr uint64_t kExpansionAllowance = 64 << 10;
uint64_t MaxExpandedSize(size_t bytes);

enum class Expansion {
  kBounded,    // refuse a buffer whose expanded size passes MaxExpandedSize (what puts get)
  kUnbounded,  // well-formedness only (Verify: a stored document is not damaged for being
               // large when written out, and documents stored before the bound may be)
};

// ok if `bytes` is a well-formed FlexBuffer: every offset, size and type within the
// buffer, strings and keys terminated, every map's keys sorted (strcmp), distinct and as
// many as its values, at most `max_depth` levels (counted as above), and an expanded size
// within MaxExpandedSize(bytes.size()) if `expansion` is kBounded.
// kBadRequest otherwise, its message a predicate ("not a valid FlexBuffer (why)", "too
// costly to check: ...", "too large written out: ...") to follow the name of what was
// checked. Alignment is not checked (LMDB stores values
// 2-byte aligned; x86-64 and arm64 read unaligned scalars).
Status CheckFlexBuffer(std::string_view bytes, size_t max_depth,
                       Expansion expansion = Expansion::kBounded);

// CheckFlexBuffer with kMaxDocumentDepth, and a root that is a map. Every document is
// checked before it is stored (Engine::Execute, unless the caller did it already; see
// Transaction::documents_checked), so stored documents can be read without checks.
Status CheckDocument(std::string_view doc, Expansion expansion = Expansion::kBounded);

}  // namespace cairn
