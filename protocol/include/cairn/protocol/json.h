// JSON <-> FlexBuffers: how documents (FlexBuffers maps) are written and read
// by people, tools and tests. No I/O; safe to call from any thread.
//
// JSON text is UTF-8 and its strings hold text, while FlexBuffers also holds blobs and
// strings or keys of any bytes. Those are written with a tag, an object of one member
// (docs/client.md, "Bytes in JSON"):
//
//   {"$bytes": "<base64>"}            a blob
//   {"$string": "<base64>"}           a string whose bytes are not valid UTF-8
//   {"$map": [[KEY, VALUE], ...]}     a map with a key that is not valid UTF-8, or a key
//                                     named "$bytes", "$string" or "$map"; each KEY is a
//                                     JSON string or {"$string": "<base64>"}
//
// FlexToJson writes these forms exactly where a plain JSON value could not say the same
// thing, so its output is always valid UTF-8 JSON, and JsonToDocument of that output
// stores the same values with the same types and the same bytes in every string, key and
// blob. An object with a member named "$bytes", "$string" or "$map" is always a tag, and
// must have no other member. Base64 is standard (RFC 4648, padded).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace flexbuffers {
class Reference;
}

namespace cairn {

// Parses a JSON object into a document. Returns false and sets *error on malformed JSON,
// invalid UTF-8 (raw bytes or a lone surrogate escape), a misused tag, or when the value
// is not an object; the error names the line, column and byte offset. Integers become
// FlexBuffers ints (uints above INT64_MAX), numbers with a fraction or exponent become
// doubles, tags what they stand for.
bool JsonToDocument(std::string_view json, std::string* doc, std::string* error);

// Parses any JSON value into a FlexBuffer whose root is that value.
bool JsonToFlex(std::string_view json, std::string* flex, std::string* error);

// Renders a FlexBuffer as compact, valid UTF-8 JSON. Map keys come out sorted
// (FlexBuffers keeps them so); blobs, strings that are not UTF-8 and maps whose keys
// cannot be plain JSON keys as the tags above; NaN and infinities as null, as JSON has no
// spelling for them. The input must be a valid FlexBuffer (see CheckDocument).
std::string FlexToJson(std::string_view flex);

// Appends the JSON rendering of one FlexBuffers value (as FlexToJson does for a root).
void AppendFlexJson(const flexbuffers::Reference& value, std::string* out);

// Appends bytes as the JSON of a string holding them: a quoted, escaped string when they
// are valid UTF-8, else {"$string": "<base64>"}. Lossless; for data (record keys,
// document strings).
void AppendJsonString(std::string_view s, std::string* out);

// Appends text meant for people (a message, a name) as a quoted JSON string, always: a
// byte that is not part of valid UTF-8 appears as the four characters \xNN. Lossy.
void AppendJsonText(std::string_view s, std::string* out);

// `s` with every byte that is not part of valid UTF-8, and every control character, as
// the four characters \xNN: safe to print on a terminal or in a log line.
std::string PrintableText(std::string_view s);

// The length of the longest prefix of `s` that is valid UTF-8 (strict: no overlong forms,
// no surrogates, nothing above U+10FFFF); s.size() when all of it is.
size_t ValidUtf8Prefix(std::string_view s);
inline bool IsValidUtf8(std::string_view s) { return ValidUtf8Prefix(s) == s.size(); }

// Standard base64 (RFC 4648, with padding): how blobs and other bytes appear in JSON.
std::string Base64(std::string_view bytes);
// Decodes standard, padded base64 into *out. Returns false for anything else (another
// alphabet, missing padding, white space, bits set after the last byte).
bool DecodeBase64(std::string_view base64, std::string* out);

}  // namespace cairn
