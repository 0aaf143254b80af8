// Documents: FlexBuffers maps. Reading the fields that indexes are declared on (checking
// untrusted bytes is public: cairn/engine/document.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/document.h"
#include "cairn/engine/status.h"

namespace cairn::internal {

// A field path, split at dots: "address.city" -> {"address", "city"}.
using FieldPath = std::vector<std::string>;
FieldPath ParsePath(std::string_view dotted);

// Appends the encoded index key of `doc` for an index on `paths`: the encodings of the
// fields, in order. Returns false (out unspecified) if a field is missing or is a map or
// vector: such records are left out of the index.
// REQUIRES: CheckDocument(doc).ok()
bool EncodeIndexFields(std::string_view doc, const std::vector<FieldPath>& paths, std::string* out);

}  // namespace cairn::internal
