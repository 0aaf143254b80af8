#include "cairn/client/document.h"

#include <algorithm>
#include <cstring>

#include "cairn/client/error.h"
#include "cairn/client/types.h"
#include "cairn/protocol/flex.h"
#include "cairn/protocol/json.h"

namespace cairn::client {

namespace {

const uint8_t* Data(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

bool Lookup(const flexbuffers::Map& map, std::string_view key, flexbuffers::Reference* out) {
  flexbuffers::TypedVector keys = map.Keys();
  size_t lo = 0, hi = keys.size();
  std::string k(key);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = std::strcmp(keys[mid].AsKey(), k.c_str());
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

void Push(flexbuffers::Builder& b, const Scalar& v) {
  struct Visitor {
    flexbuffers::Builder& b;
    void operator()(std::nullptr_t) const { b.Null(); }
    void operator()(bool x) const { b.Bool(x); }
    void operator()(int64_t x) const { b.Int(x); }
    void operator()(uint64_t x) const { b.UInt(x); }
    void operator()(double x) const { b.Double(x); }
    void operator()(const std::string& x) const { b.String(x); }
  };
  std::visit(Visitor{b}, v);
}

bool IsDocument(const std::string& bytes) {
  flexbuffers::Verifier v(Data(bytes), bytes.size(), nullptr, /*check_alignment=*/false, 64);
  return bytes.size() >= 3 && v.VerifyBuffer() && flexbuffers::GetRoot(Data(bytes), bytes.size()).IsMap();
}

Value Root(const std::string& bytes) { return Value(flexbuffers::GetRoot(Data(bytes), bytes.size())); }

// The field at a dotted path below `v`.
Value Path(Value v, std::string_view path) {
  while (true) {
    size_t dot = path.find('.');
    v = v[path.substr(0, dot)];
    if (dot == std::string_view::npos || !v.exists()) return v;
    path.remove_prefix(dot + 1);
  }
}

}  // namespace

std::string Value::AsString(std::string fallback) const {
  if (!present_) return fallback;
  if (ref_.IsString()) {
    auto s = ref_.AsString();
    return std::string(s.c_str(), s.length());
  }
  if (ref_.IsKey()) return ref_.AsKey();
  return fallback;
}

Value Value::operator[](std::string_view key) const {
  flexbuffers::Reference r;
  if (!is_map() || !Lookup(ref_.AsMap(), key, &r)) return Value();
  return Value(r);
}

Value Value::operator[](size_t index) const {
  if (!present_ || index >= FlexSize(ref_)) return Value();
  return Value(FlexElement(ref_, index));
}

size_t Value::size() const { return present_ ? FlexSize(ref_) : 0; }

std::string Value::ToJson() const {
  if (!present_) return "null";
  std::string out;
  AppendFlexJson(ref_, &out);
  return out;
}

Document::Document() {
  flexbuffers::Builder b;
  b.Map([] {});
  b.Finish();
  bytes_.assign(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetBuffer().size());
}

Document Document::FromJson(std::string_view json) {
  std::string bytes, error;
  if (!JsonToDocument(json, &bytes, &error)) throw Error(ErrorCode::kBadRequest, error);
  return Document(std::move(bytes));
}

Document Document::FromBytes(std::string bytes) {
  if (!IsDocument(bytes)) throw Error(ErrorCode::kBadRequest, "not a FlexBuffers map");
  return Document(std::move(bytes));
}

std::string Document::ToJson() const { return FlexToJson(bytes_); }

Value Document::root() const& { return Root(bytes_); }

Value Document::operator[](std::string_view path) const& { return Path(root(), path); }

Value Record::operator[](std::string_view path) const& {
  if (!IsDocument(value)) throw Error(ErrorCode::kBadRequest, "not a FlexBuffers map");
  return Path(Root(value), path);
}

Document::Builder::Builder() { start_ = fbb_.StartMap(); }

Document::Builder& Document::Builder::Set(std::string_view key, const Scalar& value) {
  keys_.emplace_back(key);
  fbb_.Key(keys_.back());
  Push(fbb_, value);
  return *this;
}

Document Document::Builder::Build() {
  std::vector<std::string> sorted = keys_;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw Error(ErrorCode::kBadRequest, "a key was set twice");
  }
  fbb_.EndMap(start_);
  fbb_.Finish();
  const auto& buf = fbb_.GetBuffer();
  return Document(std::string(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

std::string EncodeScalar(const Scalar& v) {
  flexbuffers::Builder b;
  Push(b, v);
  b.Finish();
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetBuffer().size());
}

std::string EncodeScalars(const std::vector<Scalar>& values) {
  flexbuffers::Builder b;
  size_t start = b.StartVector();
  for (const Scalar& v : values) Push(b, v);
  b.EndVector(start, false, false);
  b.Finish();
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetBuffer().size());
}

Scalar ScalarFromJson(std::string_view json) {
  std::string flex, error;
  if (!JsonToFlex(json, &flex, &error)) throw Error(ErrorCode::kBadRequest, error);
  auto r = flexbuffers::GetRoot(Data(flex), flex.size());
  switch (r.GetType()) {
    case flexbuffers::FBT_NULL: return nullptr;
    case flexbuffers::FBT_BOOL: return r.AsBool();
    case flexbuffers::FBT_INT: return r.AsInt64();
    case flexbuffers::FBT_UINT: return r.AsUInt64();
    case flexbuffers::FBT_FLOAT: return r.AsDouble();
    case flexbuffers::FBT_STRING: return r.AsString().str();
    default: throw Error(ErrorCode::kBadRequest, "expected a JSON scalar, not " + std::string(json));
  }
}

}  // namespace cairn::client
