#include "cairn/protocol/json.h"

#include <charconv>
#include <cmath>

#include "flatbuffers/flexbuffers.h"
#include "flatbuffers/idl.h"

namespace cairn {
namespace {

void AppendBase64(std::string_view in, std::string* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out->push_back('"');
  size_t i = 0;
  auto byte = [&](size_t j) { return uint32_t(uint8_t(in[j])); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6) out->push_back(kAlphabet[(n >> s) & 63]);
  }
  if (size_t rest = in.size() - i) {
    uint32_t n = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out->push_back(kAlphabet[(n >> 18) & 63]);
    out->push_back(kAlphabet[(n >> 12) & 63]);
    out->push_back(rest == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    out->push_back('=');
  }
  out->push_back('"');
}

void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string_view s(buf, size_t(end - buf));
  out->append(s);
  // Keep doubles recognisable as such when read back: 1.0, not 1.
  if (s.find_first_of(".eE") == std::string_view::npos) out->append(".0");
}

void AppendValue(const flexbuffers::Reference& r, std::string* out, int depth) {
  if (depth > 64) {
    out->append("null");
    return;
  }
  switch (r.GetType()) {
    case flexbuffers::FBT_NULL:
      out->append("null");
      return;
    case flexbuffers::FBT_BOOL:
      out->append(r.AsBool() ? "true" : "false");
      return;
    case flexbuffers::FBT_INT:
    case flexbuffers::FBT_INDIRECT_INT:
      out->append(std::to_string(r.AsInt64()));
      return;
    case flexbuffers::FBT_UINT:
    case flexbuffers::FBT_INDIRECT_UINT:
      out->append(std::to_string(r.AsUInt64()));
      return;
    case flexbuffers::FBT_FLOAT:
    case flexbuffers::FBT_INDIRECT_FLOAT:
      AppendDouble(r.AsDouble(), out);
      return;
    case flexbuffers::FBT_KEY:
      AppendJsonString(r.AsKey(), out);
      return;
    case flexbuffers::FBT_STRING: {
      auto s = r.AsString();
      AppendJsonString(std::string_view(s.c_str(), s.length()), out);
      return;
    }
    case flexbuffers::FBT_BLOB: {
      auto b = r.AsBlob();
      AppendBase64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), out);
      return;
    }
    case flexbuffers::FBT_MAP: {
      auto m = r.AsMap();
      auto keys = m.Keys();
      auto values = m.Values();
      out->push_back('{');
      for (size_t i = 0; i < m.size(); i++) {
        if (i) out->push_back(',');
        AppendJsonString(keys[i].AsKey(), out);
        out->push_back(':');
        AppendValue(values[i], out, depth + 1);
      }
      out->push_back('}');
      return;
    }
    default:
      if (r.IsVector() || r.IsTypedVector() || r.IsFixedTypedVector()) {
        auto v = r.AsVector();
        out->push_back('[');
        for (size_t i = 0; i < v.size(); i++) {
          if (i) out->push_back(',');
          AppendValue(v[i], out, depth + 1);
        }
        out->push_back(']');
        return;
      }
      out->append("null");
  }
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (ch < 0x20) {
          char b[8];
          snprintf(b, sizeof b, "\\u%04x", ch);
          out->append(b);
        } else {
          out->push_back(char(ch));
        }
    }
  }
  out->push_back('"');
}

bool JsonToFlex(std::string_view json, std::string* flex, std::string* error) {
  flatbuffers::IDLOptions opts;
  opts.strict_json = true;
  flatbuffers::Parser parser(opts);
  flexbuffers::Builder builder;
  std::string source(json);  // the parser wants a NUL-terminated string
  if (!parser.ParseFlexBuffer(source.c_str(), nullptr, &builder)) {
    *error = "invalid JSON: " + parser.error_;
    return false;
  }
  const auto& buf = builder.GetBuffer();
  flex->assign(reinterpret_cast<const char*>(buf.data()), buf.size());
  return true;
}

bool JsonToDocument(std::string_view json, std::string* doc, std::string* error) {
  if (!JsonToFlex(json, doc, error)) return false;
  auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(doc->data()), doc->size());
  if (!root.IsMap()) {
    *error = "a document must be a JSON object";
    return false;
  }
  return true;
}

std::string FlexToJson(std::string_view flex) {
  std::string out;
  AppendValue(flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size()),
              &out, 0);
  return out;
}

}  // namespace cairn
