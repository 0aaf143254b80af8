// FlexBuffers vectors come in three encodings (untyped, typed, fixed-size typed)
// that FlexBuffers reads through different accessors; a reader that uses only
// AsVector() sees the typed ones as empty. These read all three alike.
#pragma once

#include <cstddef>

#include "flatbuffers/flexbuffers.h"

namespace cairn {

// Elements in a vector of any encoding (a map's values for a map); 0 for scalars.
inline size_t FlexSize(const flexbuffers::Reference& r) {
  if (r.IsVector() || r.IsMap()) return r.AsVector().size();
  if (r.IsTypedVector()) return r.AsTypedVector().size();
  if (r.IsFixedTypedVector()) return r.AsFixedTypedVector().size();
  return 0;
}

// REQUIRES: i < FlexSize(r)
inline flexbuffers::Reference FlexElement(const flexbuffers::Reference& r, size_t i) {
  if (r.IsTypedVector()) return r.AsTypedVector()[i];
  if (r.IsFixedTypedVector()) return r.AsFixedTypedVector()[i];
  return r.AsVector()[i];
}

}  // namespace cairn
