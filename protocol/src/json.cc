#include "cairn/protocol/json.h"

#include "cairn/protocol/flex.h"

#include <algorithm>
#include <charconv>
#include <vector>
#include <cmath>

#include "flatbuffers/flexbuffers.h"

namespace cairn {
namespace {

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
      out->push_back('"');
      out->append(Base64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size())));
      out->push_back('"');
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
        out->push_back('[');
        for (size_t i = 0, n = FlexSize(r); i < n; i++) {
          if (i) out->push_back(',');
          AppendValue(FlexElement(r, i), out, depth + 1);
        }
        out->push_back(']');
        return;
      }
      out->append("null");
  }
}

}  // namespace

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  auto byte = [&](size_t j) { return uint32_t(uint8_t(in[j])); };
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(n >> s) & 63]);
  }
  if (size_t rest = in.size() - i) {
    uint32_t n = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

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

namespace {

// A strict JSON (RFC 8259) parser that builds FlexBuffers directly. Written here
// rather than taken from flatbuffers::Parser, which accepts non-JSON and turns
// integers outside int64 into 0.
class JsonParser {
 public:
  JsonParser(std::string_view in, flexbuffers::Builder* b) : in_(in), b_(b) {}

  bool Parse(std::string* error) {
    SkipSpace();
    if (!Value(0)) {
      *error = "invalid JSON at byte " + std::to_string(pos_) + ": " + error_;
      return false;
    }
    SkipSpace();
    if (pos_ != in_.size()) {
      *error = "invalid JSON at byte " + std::to_string(pos_) + ": trailing characters";
      return false;
    }
    return true;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool Fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  void SkipSpace() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r')) {
      pos_++;
    }
  }
  bool Literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return Fail("unknown literal");
    pos_ += word.size();
    return true;
  }

  bool Value(int depth) {
    if (depth > kMaxDepth) return Fail("nested too deeply");
    if (pos_ >= in_.size()) return Fail("unexpected end");
    switch (in_[pos_]) {
      case '{': return Object(depth);
      case '[': return Array(depth);
      case '"': {
        std::string s;
        if (!String(&s)) return false;
        b_->String(s);
        return true;
      }
      case 't': if (!Literal("true")) return false; b_->Bool(true); return true;
      case 'f': if (!Literal("false")) return false; b_->Bool(false); return true;
      case 'n': if (!Literal("null")) return false; b_->Null(); return true;
      default: return Number();
    }
  }

  bool Object(int depth) {
    pos_++;  // {
    size_t start = b_->StartMap();
    std::vector<std::string> keys;
    SkipSpace();
    if (pos_ < in_.size() && in_[pos_] == '}') {
      pos_++;
      b_->EndMap(start);
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= in_.size() || in_[pos_] != '"') return Fail("expected a quoted key");
      std::string key;
      if (!String(&key)) return false;
      if (key.find('\0') != std::string::npos) return Fail("a key holds a NUL character");
      keys.push_back(key);
      SkipSpace();
      if (pos_ >= in_.size() || in_[pos_] != ':') return Fail("expected ':'");
      pos_++;
      SkipSpace();
      b_->Key(key);
      if (!Value(depth + 1)) return false;
      SkipSpace();
      if (pos_ < in_.size() && in_[pos_] == ',') {
        pos_++;
        continue;
      }
      if (pos_ < in_.size() && in_[pos_] == '}') {
        pos_++;
        break;
      }
      return Fail("expected ',' or '}'");
    }
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) {
      return Fail("duplicate key in an object");
    }
    b_->EndMap(start);
    return true;
  }

  bool Array(int depth) {
    pos_++;  // [
    size_t start = b_->StartVector();
    SkipSpace();
    if (pos_ < in_.size() && in_[pos_] == ']') {
      pos_++;
      b_->EndVector(start, false, false);
      return true;
    }
    while (true) {
      SkipSpace();
      if (!Value(depth + 1)) return false;
      SkipSpace();
      if (pos_ < in_.size() && in_[pos_] == ',') {
        pos_++;
        continue;
      }
      if (pos_ < in_.size() && in_[pos_] == ']') {
        pos_++;
        break;
      }
      return Fail("expected ',' or ']'");
    }
    b_->EndVector(start, false, false);
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(char(cp));
    } else if (cp < 0x800) {
      out->push_back(char(0xc0 | (cp >> 6)));
      out->push_back(char(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(char(0xe0 | (cp >> 12)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(char(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(char(0xf0 | (cp >> 18)));
      out->push_back(char(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(char(0x80 | (cp & 0x3f)));
    }
  }

  bool Hex4(uint32_t* v) {
    if (pos_ + 4 > in_.size()) return Fail("short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
      char c = in_[pos_++];
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') *v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') *v |= uint32_t(c - 'A' + 10);
      else return Fail("bad hex digit in \\u escape");
    }
    return true;
  }

  bool String(std::string* out) {
    pos_++;  // opening quote
    while (true) {
      if (pos_ >= in_.size()) return Fail("unterminated string");
      unsigned char c = uint8_t(in_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return Fail("control character in a string");
      if (c != '\\') {
        out->push_back(char(c));
        continue;
      }
      if (pos_ >= in_.size()) return Fail("unterminated escape");
      switch (in_[pos_++]) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {  // a surrogate pair
            uint32_t lo;
            if (in_.substr(pos_, 2) != "\\u") return Fail("lone high surrogate");
            pos_ += 2;
            if (!Hex4(&lo)) return false;
            if (lo < 0xdc00 || lo > 0xdfff) return Fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            return Fail("lone low surrogate");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Fail("unknown escape");
      }
    }
  }

  // Integers become int64 (or uint64 above INT64_MAX); anything with a fraction or an
  // exponent, or an integer beyond uint64, becomes a double.
  bool Number() {
    size_t start = pos_;
    if (pos_ < in_.size() && in_[pos_] == '-') pos_++;
    if (pos_ >= in_.size() || !isdigit(uint8_t(in_[pos_]))) return Fail("unexpected character");
    if (in_[pos_] == '0' && pos_ + 1 < in_.size() && isdigit(uint8_t(in_[pos_ + 1]))) {
      return Fail("leading zero in a number");
    }
    while (pos_ < in_.size() && isdigit(uint8_t(in_[pos_]))) pos_++;
    bool integer = true;
    if (pos_ < in_.size() && in_[pos_] == '.') {
      integer = false;
      pos_++;
      if (pos_ >= in_.size() || !isdigit(uint8_t(in_[pos_]))) return Fail("digit expected after '.'");
      while (pos_ < in_.size() && isdigit(uint8_t(in_[pos_]))) pos_++;
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      integer = false;
      pos_++;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) pos_++;
      if (pos_ >= in_.size() || !isdigit(uint8_t(in_[pos_]))) return Fail("digit expected in exponent");
      while (pos_ < in_.size() && isdigit(uint8_t(in_[pos_]))) pos_++;
    }
    const char* first = in_.data() + start;
    const char* last = in_.data() + pos_;
    if (integer) {
      int64_t i;
      if (auto r = std::from_chars(first, last, i); r.ec == std::errc() && r.ptr == last) {
        b_->Int(i);
        return true;
      }
      uint64_t u;
      if (*first != '-') {
        if (auto r = std::from_chars(first, last, u); r.ec == std::errc() && r.ptr == last) {
          b_->UInt(u);
          return true;
        }
      }
    }
    double d;
    auto r = std::from_chars(first, last, d);
    if (r.ptr != last || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range)) {
      return Fail("bad number");
    }
    if (r.ec == std::errc::result_out_of_range) return Fail("number out of range");
    b_->Double(d);
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
  flexbuffers::Builder* b_;
  std::string error_;
};

}  // namespace

bool JsonToFlex(std::string_view json, std::string* flex, std::string* error) {
  flexbuffers::Builder builder;
  if (!JsonParser(json, &builder).Parse(error)) return false;
  builder.Finish();
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

void AppendFlexJson(const flexbuffers::Reference& value, std::string* out) {
  AppendValue(value, out, 0);
}

std::string FlexToJson(std::string_view flex) {
  std::string out;
  AppendValue(flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size()),
              &out, 0);
  return out;
}

}  // namespace cairn
