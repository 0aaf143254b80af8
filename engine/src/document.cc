#include "document.h"

#include <cstring>

#include "flatbuffers/flexbuffers.h"
#include "key_codec.h"

namespace cairn::internal {

Status CheckDocument(std::string_view doc) {
  auto data = reinterpret_cast<const uint8_t*>(doc.data());
  // Alignment is not checked: LMDB stores values 2-byte aligned, and x86-64 and arm64 read
  // unaligned scalars. The depth limit bounds the recursion of readers.
  flexbuffers::Verifier verifier(data, doc.size(), nullptr, /*check_alignment=*/false,
                                 /*max_depth=*/64);
  if (doc.size() < 3 || !verifier.VerifyBuffer()) {
    return Status(Code::kBadRequest, "document is not a valid FlexBuffer");
  }
  if (!flexbuffers::GetRoot(data, doc.size()).IsMap()) {
    return Status(Code::kBadRequest, "document is not a map");
  }
  return Status::Ok();
}

FieldPath ParsePath(std::string_view dotted) {
  FieldPath path;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    path.emplace_back(dotted.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return path;
}

namespace {

// Looks `key` up in `map`. Unlike Map::operator[], tells a missing key (false) from a
// stored null.
bool Lookup(const flexbuffers::Map& map, const std::string& key, flexbuffers::Reference* out) {
  flexbuffers::TypedVector keys = map.Keys();
  size_t lo = 0, hi = keys.size();
  while (lo < hi) {  // keys are sorted by strcmp
    size_t mid = lo + (hi - lo) / 2;
    int c = std::strcmp(keys[mid].AsKey(), key.c_str());
    if (c == 0) {
      *out = map.Values()[mid];
      return true;
    }
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return false;
}

}  // namespace

bool EncodeIndexFields(std::string_view doc, const std::vector<FieldPath>& paths,
                       std::string* out) {
  auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(doc.data()), doc.size());
  for (const FieldPath& path : paths) {
    flexbuffers::Reference ref = root;
    for (const std::string& part : path) {
      if (!ref.IsMap() || !Lookup(ref.AsMap(), part, &ref)) return false;
    }
    if (!AppendFlexValue(ref, out)) return false;
  }
  return true;
}

}  // namespace cairn::internal
