// Documents: what records hold. A Document is a FlexBuffers map, convertible to
// and from JSON, and readable field by field without parsing the whole value.
// Documents are values (copyable, immutable once built) and safe to share
// between threads for reading.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "flatbuffers/flexbuffers.h"

namespace cairn::client {

// A scalar value: what index queries compare, and what Document::Builder sets.
// Integers and floats compare numerically with each other in indexes.
using Scalar = std::variant<std::nullptr_t, bool, int64_t, uint64_t, double, std::string>;

// A field of a document, read in place: a view into the bytes of the Document (or
// Record) it was read from, valid while that object lives and is not changed. Reading a
// field of a temporary is therefore refused at compile time (Document::operator[] and
// Record::operator[] are deleted for rvalues).
class Value {
 public:
  Value() = default;  // a missing field
  explicit Value(flexbuffers::Reference ref) : ref_(ref), present_(true) {}

  bool exists() const { return present_; }
  bool is_null() const { return present_ && ref_.IsNull(); }
  bool is_bool() const { return present_ && ref_.IsBool(); }
  bool is_int() const { return present_ && (ref_.IsInt() || ref_.IsUInt()); }
  bool is_number() const { return present_ && ref_.IsNumeric(); }
  bool is_string() const { return present_ && (ref_.IsString() || ref_.IsKey()); }
  bool is_map() const { return present_ && ref_.IsMap(); }
  bool is_array() const { return present_ && ref_.IsAnyVector() && !ref_.IsMap(); }

  // Conversions; a missing or mismatched field gives the fallback.
  int64_t AsInt(int64_t fallback = 0) const { return is_number() ? ref_.AsInt64() : fallback; }
  uint64_t AsUint(uint64_t fallback = 0) const { return is_number() ? ref_.AsUInt64() : fallback; }
  double AsDouble(double fallback = 0) const { return is_number() ? ref_.AsDouble() : fallback; }
  bool AsBool(bool fallback = false) const { return is_bool() ? ref_.AsBool() : fallback; }
  std::string AsString(std::string fallback = "") const;
  // A map field's member, or an array's element; missing when absent.
  Value operator[](std::string_view key) const;
  Value operator[](size_t index) const;
  size_t size() const;  // elements of an array or map; 0 otherwise
  std::string ToJson() const;

  const flexbuffers::Reference& ref() const { return ref_; }

 private:
  flexbuffers::Reference ref_{nullptr, 1, flexbuffers::NullPackedType()};
  bool present_ = false;
};

class Document {
 public:
  Document();  // {}

  // Parses a JSON object, with the tags of docs/client.md ("Bytes in JSON") for blobs,
  // strings that are not UTF-8 and maps with such keys. Throws cairn::Error (kBadRequest)
  // on malformed JSON, invalid UTF-8, a misused tag or a non-object.
  static Document FromJson(std::string_view json);
  // Adopts FlexBuffers bytes whose root is a map. Throws cairn::Error (kBadRequest) otherwise.
  static Document FromBytes(std::string bytes);

  const std::string& bytes() const { return bytes_; }
  // Valid UTF-8 JSON that FromJson reads back to the same values (docs/client.md).
  std::string ToJson() const;

  // The field at a dotted path ("address.city"); missing if any part is absent. The
  // Value points into this Document's bytes, so these are for Documents that outlive it:
  // on a temporary (`record.document()["email"]`, which would dangle once the statement
  // ends) they do not compile. Read `record["email"]` (Record::operator[]) or keep the
  // Document: `Document d = record.document(); d["email"]`.
  Value operator[](std::string_view path) const&;
  Value operator[](std::string_view path) const&& = delete;
  Value root() const&;
  Value root() const&& = delete;

  bool operator==(const Document& o) const { return bytes_ == o.bytes_; }

  // Builds a flat document field by field (nested ones: FromJson):
  //   Document d = Document::Builder().Set("name", "ada").Set("age", 36).Build();
  class Builder {
   public:
    Builder();
    Builder& Set(std::string_view key, const Scalar& value);
    template <std::integral T>
    Builder& Set(std::string_view key, T value) {
      if constexpr (std::is_same_v<T, bool>) {
        return Set(key, Scalar(value));
      } else if constexpr (std::is_signed_v<T>) {
        return Set(key, Scalar(int64_t(value)));
      } else {
        return Set(key, Scalar(uint64_t(value)));
      }
    }
    template <std::floating_point T>
    Builder& Set(std::string_view key, T value) {
      return Set(key, Scalar(double(value)));
    }
    Builder& Set(std::string_view key, const char* value) {
      return Set(key, Scalar(std::string(value)));
    }
    Builder& Set(std::string_view key, std::string_view value) {
      return Set(key, Scalar(std::string(value)));
    }
    Builder& Set(std::string_view key, const std::string& value) { return Set(key, Scalar(value)); }
    Document Build();

   private:
    flexbuffers::Builder fbb_;
    size_t start_;
    std::vector<std::string> keys_;
  };

 private:
  explicit Document(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string bytes_;
};

// Encodes a scalar as a FlexBuffer whose root is that value (the wire form of index values).
std::string EncodeScalar(const Scalar& v);
// Encodes scalars as a FlexBuffer vector.
std::string EncodeScalars(const std::vector<Scalar>& v);
// Parses a JSON scalar ("42", "\"x\"", "null", {"$string": "<base64>"}...). Throws
// cairn::Error (kBadRequest).
Scalar ScalarFromJson(std::string_view json);

}  // namespace cairn::client
