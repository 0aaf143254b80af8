// json_fuzz: the JSON <-> FlexBuffers codec (protocol/src/json.cc), which the cairn CLI and
// applications feed with text from anywhere, and the text helpers beside it.
//
// Asserts (abort on violation), for any input:
// - whatever JsonToFlex accepts is a well-formed FlexBuffer (the engine's own check,
//   CheckFlexBuffer) and prints (FlexToJson) as valid UTF-8;
// - printing is a fixed point: parse(print(x)) succeeds and prints the same text, and
//   from then on stores the same bytes (the first print may reorder keys: see below);
// - JsonToDocument accepts exactly the inputs JsonToFlex accepts whose root is a map;
// - DecodeBase64 accepts only canonical base64: Base64 of what it decoded is its input;
//   and Base64 of any bytes decodes to those bytes;
// - AppendJsonString of any bytes is JSON that parses back to a string (or a $string tag)
//   holding those bytes; AppendJsonText, PrintableText are valid UTF-8;
//   PrintableText has no control characters;
// - ValidUtf8Prefix is a valid UTF-8 prefix that cannot be extended by one sequence.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cairn/engine/document.h"
#include "cairn/protocol/json.h"
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

flexbuffers::Reference Root(const std::string& flex) {
  return flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size());
}

void FuzzJson(std::string_view in) {
  std::string flex, error;
  bool ok = JsonToFlex(in, &flex, &error);
  std::string doc, doc_error;
  bool doc_ok = JsonToDocument(in, &doc, &doc_error);
  if (!ok) {
    FUZZ_CHECK(!error.empty());
    FUZZ_CHECK(!doc_ok);
    return;
  }
  // The parser nests at most 64 levels; strings add one in the checker's count.
  FUZZ_CHECK(CheckFlexBuffer(flex, 130).ok());
  FUZZ_CHECK(doc_ok == Root(flex).IsMap());
  if (doc_ok) FUZZ_CHECK(doc == flex);

  std::string printed = FlexToJson(flex);
  FUZZ_CHECK(IsValidUtf8(printed));
  std::string flex2;
  error.clear();
  if (!JsonToFlex(printed, &flex2, &error)) {
    std::fprintf(stderr, "printed JSON does not parse: %s\n%s\n", error.c_str(), printed.c_str());
    std::abort();
  }
  std::string printed2 = FlexToJson(flex2);
  FUZZ_CHECK(printed2 == printed);
  // Bytes: the parser's buffer holds keys in the order the text gave them (the builder
  // sorts only the map's key vector), and the printer writes them sorted, so x and
  // parse(print(x)) differ in layout when x's keys were not in order. Once printed, the
  // bytes are a fixed point: parse(print(y)) == y for y = parse(print(x)).
  std::string flex3;
  FUZZ_CHECK(JsonToFlex(printed2, &flex3, &error));
  FUZZ_CHECK(flex3 == flex2);
}

void FuzzText(std::string_view in) {
  std::string decoded;
  if (DecodeBase64(in, &decoded)) FUZZ_CHECK(Base64(decoded) == in);
  std::string b64 = Base64(in);
  FUZZ_CHECK(DecodeBase64(b64, &decoded) && decoded == in);

  size_t prefix = ValidUtf8Prefix(in);
  FUZZ_CHECK(prefix <= in.size());
  FUZZ_CHECK(IsValidUtf8(in.substr(0, prefix)));
  if (prefix < in.size()) {
    for (size_t n = 1; n <= 4 && prefix + n <= in.size(); n++) {
      FUZZ_CHECK(!IsValidUtf8(in.substr(0, prefix + n)));
    }
  }

  std::string printable = PrintableText(in);
  FUZZ_CHECK(IsValidUtf8(printable));
  for (unsigned char c : printable) FUZZ_CHECK(c >= 0x20 && c != 0x7f);

  std::string text;
  AppendJsonText(in, &text);
  FUZZ_CHECK(IsValidUtf8(text));

  // A string of any bytes, in an array (a root string would be a document-less value).
  std::string json = "[";
  AppendJsonString(in, &json);
  json += "]";
  FUZZ_CHECK(IsValidUtf8(json));
  std::string flex, error;
  if (!JsonToFlex(json, &flex, &error)) {
    std::fprintf(stderr, "AppendJsonString does not parse: %s\n", error.c_str());
    std::abort();
  }
  auto v = Root(flex).AsVector();
  FUZZ_CHECK(v.size() == 1 && v[0].IsString());
  auto s = v[0].AsString();
  FUZZ_CHECK(std::string_view(s.c_str(), s.length()) == in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  FuzzJson(in);
  FuzzText(in);
  return 0;
}
