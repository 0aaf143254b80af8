// JSON <-> FlexBuffers: how documents (FlexBuffers maps) are written and read
// by people, tools and tests. No I/O; safe to call from any thread.
#pragma once

#include <string>
#include <string_view>

namespace flexbuffers {
class Reference;
}

namespace cairn {

// Parses a JSON object into a document. Returns false and sets *error on malformed JSON or
// when the value is not an object. Integers become FlexBuffers ints (uints above INT64_MAX),
// numbers with a fraction or exponent become doubles.
bool JsonToDocument(std::string_view json, std::string* doc, std::string* error);

// Parses any JSON value into a FlexBuffer whose root is that value.
bool JsonToFlex(std::string_view json, std::string* flex, std::string* error);

// Renders a FlexBuffer as compact JSON. Map keys come out sorted (FlexBuffers keeps
// them so); blobs as base64 strings; NaN and infinities as null, as JSON has no
// spelling for them. The input must be a valid FlexBuffer (see CheckDocument).
std::string FlexToJson(std::string_view flex);

// Appends the JSON rendering of one FlexBuffers value (as FlexToJson does for a root).
void AppendFlexJson(const flexbuffers::Reference& value, std::string* out);

// Standard base64 (RFC 4648, with padding): how blobs and other bytes appear in JSON.
std::string Base64(std::string_view bytes);

// Appends `s` to *out as a quoted, escaped JSON string.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace cairn
