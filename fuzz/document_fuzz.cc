// document_fuzz: the engine's check of untrusted documents (CheckDocument and
// CheckFlexBuffer, engine/src/document.cc), the gate every put goes through before a
// value is stored as a document and then read without checks by indexes, queries, the
// digest and FlexToJson.
//
// The input is the document's bytes (libFuzzer's buffer is exactly that size, so ASan
// sees any read past it). Asserts (abort on violation):
// - the depth limit is monotonic: a buffer that passes at depth d passes at d + 1, and
//   CheckDocument's verdict is CheckFlexBuffer's at kMaxDocumentDepth plus "root is a map";
// - everything the check accepts can be read without checks: a full walk of every value
//   through the FlexBuffers accessors (ASan), index-field extraction for paths made of the
//   document's own keys, and FlexToJson, which must print valid UTF-8 JSON;
// - a document that passes reads as JSON that parses back into a document, which prints
//   the same text (what `cairn get` shows can be put back as it is);
// - the check is deterministic.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/document.h"
#include "cairn/protocol/json.h"
#include "document.h"
#include "flatbuffers/flexbuffers.h"

namespace {

using namespace cairn;

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

// Reads every value below `r`, as an unchecking reader would; returns a sum so that the
// reads are not optimized away. Collects dotted paths of map keys into *paths.
uint64_t Walk(const flexbuffers::Reference& r, size_t depth, const std::string& path,
              std::vector<std::string>* paths) {
  FUZZ_CHECK(depth <= kMaxDocumentDepth);
  uint64_t sum = uint64_t(r.GetType());
  if (r.IsMap()) {
    auto m = r.AsMap();
    auto keys = m.Keys();
    auto values = m.Values();
    FUZZ_CHECK(keys.size() == values.size());
    for (size_t i = 0; i < values.size(); i++) {
      std::string key = keys[i].AsKey();
      sum += key.size();
      std::string sub = path.empty() ? key : path + "." + key;
      if (paths->size() < 16) paths->push_back(sub);
      sum += Walk(values[i], depth + 1, sub, paths);
    }
  } else if (r.IsString()) {
    auto s = r.AsString();
    for (size_t i = 0; i < s.length(); i++) sum += uint8_t(s.c_str()[i]);
    FUZZ_CHECK(s.c_str()[s.length()] == '\0');
  } else if (r.IsBlob()) {
    auto b = r.AsBlob();
    for (size_t i = 0; i < b.size(); i++) sum += b.data()[i];
  } else if (r.IsKey()) {
    sum += std::string_view(r.AsKey()).size();
  } else if (r.IsVector() || r.IsTypedVector() || r.IsFixedTypedVector()) {
    if (r.IsVector()) {
      auto v = r.AsVector();
      for (size_t i = 0; i < v.size(); i++) sum += Walk(v[i], depth + 1, path, paths);
    } else if (r.IsTypedVector()) {
      auto v = r.AsTypedVector();
      for (size_t i = 0; i < v.size(); i++) sum += Walk(v[i], depth + 1, path, paths);
    } else {
      auto v = r.AsFixedTypedVector();
      for (size_t i = 0; i < v.size(); i++) sum += Walk(v[i], depth + 1, path, paths);
    }
  } else if (r.IsFloat()) {
    double d = r.AsDouble();
    sum += d == d ? 1 : 2;
  } else {
    sum += uint64_t(r.AsInt64()) + r.AsUInt64() + (r.AsBool() ? 1 : 0);
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view doc(reinterpret_cast<const char*>(data), size);
  Status s = CheckDocument(doc);
  FUZZ_CHECK(s.code() == CheckDocument(doc).code());
  Status flex = CheckFlexBuffer(doc, kMaxDocumentDepth);
  if (s.ok()) FUZZ_CHECK(flex.ok());
  if (!s.ok()) FUZZ_CHECK(s.code() == Code::kBadRequest && !s.message().empty());
  // Monotonic in the depth limit, at a depth chosen by the input.
  size_t d = size ? data[0] % 70 : 1;
  if (CheckFlexBuffer(doc, d).ok()) FUZZ_CHECK(CheckFlexBuffer(doc, d + 1).ok());
  if (!flex.ok()) return 0;

  auto root = flexbuffers::GetRoot(data, size);
  if (!s.ok()) {
    FUZZ_CHECK(!root.IsMap());
    return 0;
  }
  FUZZ_CHECK(root.IsMap());
  std::vector<std::string> paths;
  volatile uint64_t sink = Walk(root, 1, "", &paths);
  (void)sink;

  // Index fields on the document's own keys (one field, and two together).
  std::string key;
  for (size_t i = 0; i < paths.size(); i++) {
    std::vector<internal::FieldPath> one{internal::ParsePath(paths[i])};
    key.clear();
    (void)internal::EncodeIndexFields(doc, one, &key);
    if (i + 1 < paths.size()) {
      one.push_back(internal::ParsePath(paths[i + 1]));
      key.clear();
      (void)internal::EncodeIndexFields(doc, one, &key);
    }
  }

  std::string json = FlexToJson(doc);
  FUZZ_CHECK(IsValidUtf8(json));
  FUZZ_CHECK(json.size() <= 32 * MaxExpandedSize(size));
  std::string again, error;
  if (!JsonToDocument(json, &again, &error)) {
    std::fprintf(stderr, "a checked document prints as JSON that does not parse back: %s\n%s\n",
                 error.c_str(), json.c_str());
    std::abort();
  }
  FUZZ_CHECK(CheckDocument(again).ok());
  FUZZ_CHECK(FlexToJson(again) == json);
  return 0;
}
