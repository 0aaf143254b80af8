// The order-preserving encoding of index values (docs/storage.md, "Index keys").
//
// Each value is encoded as a type tag followed by a body such that comparing two
// encodings bytewise (memcmp, as LMDB does) orders them as the values order:
//   null < false < true < numbers < strings < blobs
// Numbers of every kind (int64, uint64, double) share one numeric order and equal
// values share one encoding (1, 1u and 1.0 are the same index value; -0.0 == 0.0; NaN
// sorts above +infinity). Strings and blobs order bytewise. Encodings are
// self-delimiting, so a compound key (fields concatenated) orders part by part and a
// byte prefix of it is a prefix of its parts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/engine/types.h"

namespace flexbuffers {
class Reference;
}

namespace cairn::internal {

enum KeyTag : uint8_t {
  kTagNull = 0x10,
  kTagFalse = 0x20,
  kTagTrue = 0x21,
  kTagNumber = 0x30,
  kTagString = 0x40,
  kTagBlob = 0x50,
};

void AppendNull(std::string* out);
void AppendBool(bool v, std::string* out);
void AppendInt(int64_t v, std::string* out);
void AppendUint(uint64_t v, std::string* out);
void AppendDouble(double v, std::string* out);
void AppendString(std::string_view v, std::string* out);
void AppendBlob(std::string_view v, std::string* out);

void AppendIndexValue(const IndexValue& v, std::string* out);

// Appends the encoding of a document field. Returns false (appending nothing) if the
// value has no index encoding (a map or a vector).
bool AppendFlexValue(const flexbuffers::Reference& ref, std::string* out);

// Turns `s` into the smallest string greater than every string that starts with `s`.
// Returns false if there is none (s is empty or all 0xff bytes).
bool PrefixSuccessor(std::string* s);

}  // namespace cairn::internal
