#include "cairn/protocol/json.h"

#include "cairn/protocol/flex.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "flatbuffers/flexbuffers.h"
#include "flatbuffers/util.h"

namespace cairn {
namespace {

// The names of the tags (json.h). An object with a member of one of these names is a tag.
constexpr std::string_view kBytesTag = "$bytes";
constexpr std::string_view kStringTag = "$string";
constexpr std::string_view kMapTag = "$map";

bool IsTagName(std::string_view key) {
  return key == kBytesTag || key == kStringTag || key == kMapTag;
}

// The length of the valid UTF-8 sequence that starts `s`, or 0 if it does not start with
// one. flatbuffers::FromUTF8 has the strict rules but reads up to 4 bytes whatever the
// length, so it is given a copy padded with NULs (which end any truncated sequence).
size_t Utf8SequenceLength(std::string_view s) {
  if (s.empty()) return 0;
  if (uint8_t(s[0]) < 0x80) return 1;
  char buf[5] = {};
  size_t n = std::min<size_t>(4, s.size());
  std::memcpy(buf, s.data(), n);
  const char* p = buf;
  if (flatbuffers::FromUTF8(&p) < 0) return 0;
  size_t used = size_t(p - buf);
  return used <= n ? used : 0;
}

// Appends `s` quoted and escaped; `s` must be valid UTF-8.
void AppendQuoted(std::string_view s, std::string* out) {
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

// Appends {"<tag>":"<base64 of bytes>"}.
void AppendTagged(std::string_view tag, std::string_view bytes, std::string* out) {
  out->append("{\"");
  out->append(tag);
  out->append("\":\"");
  out->append(Base64(bytes));
  out->append("\"}");
}

// `s` with each byte that is not part of valid UTF-8 (and, if `controls`, each control
// character) as the text \xNN.
std::string ReplaceUnprintable(std::string_view s, bool controls) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8SequenceLength(s.substr(i));
    unsigned char ch = uint8_t(s[i]);
    if (n == 0 || (controls && (ch < 0x20 || ch == 0x7f))) {
      char b[8];
      snprintf(b, sizeof b, "\\x%02x", ch);
      out.append(b);
      i++;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
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
      AppendTagged(kBytesTag,
                   std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), out);
      return;
    }
    case flexbuffers::FBT_MAP: {
      auto m = r.AsMap();
      auto keys = m.Keys();
      auto values = m.Values();
      // A key that a plain object cannot hold (not UTF-8, or a tag's name): the map is
      // written as {"$map": [[KEY, VALUE], ...]}.
      bool plain = true;
      for (size_t i = 0; i < m.size() && plain; i++) {
        std::string_view k = keys[i].AsKey();
        plain = IsValidUtf8(k) && !IsTagName(k);
      }
      out->append(plain ? "{" : "{\"$map\":[");
      for (size_t i = 0; i < m.size(); i++) {
        if (i) out->push_back(',');
        if (plain) {
          AppendQuoted(keys[i].AsKey(), out);  // checked above
        } else {
          out->push_back('[');
          AppendJsonString(keys[i].AsKey(), out);
        }
        out->push_back(plain ? ':' : ',');
        AppendValue(values[i], out, depth + 1);
        if (!plain) out->push_back(']');
      }
      out->append(plain ? "}" : "]}");
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
  if (IsValidUtf8(s)) {
    AppendQuoted(s, out);
  } else {
    AppendTagged(kStringTag, s, out);
  }
}

void AppendJsonText(std::string_view s, std::string* out) {
  if (IsValidUtf8(s)) {
    AppendQuoted(s, out);
  } else {
    AppendQuoted(ReplaceUnprintable(s, /*controls=*/false), out);
  }
}

std::string PrintableText(std::string_view s) { return ReplaceUnprintable(s, /*controls=*/true); }

size_t ValidUtf8Prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII, eight bytes at a time: most text is.
    if (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080u) == 0) {
        i += 8;
        continue;
      }
    }
    if (uint8_t(s[i]) < 0x80) {
      i++;
      continue;
    }
    size_t n = Utf8SequenceLength(s.substr(i));
    if (n == 0) break;
    i += n;
  }
  return i;
}

bool DecodeBase64(std::string_view in, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->clear();
  if (in.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') pad++;
  std::string_view digits = in.substr(0, in.size() - pad);
  out->reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : digits) {
    int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(char((acc >> bits) & 0xff));
    }
  }
  // One spelling per byte string: the bits after the last byte are zero.
  return (acc & ((1u << bits) - 1)) == 0;
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
    bool ok = Value(0);
    SkipSpace();
    if (ok && pos_ != in_.size()) ok = Fail("trailing characters");
    if (!ok) *error = "invalid JSON at " + Where(error_pos_) + ": " + error_;
    return ok;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool Fail(std::string why) {
    if (error_.empty()) {
      error_ = std::move(why);
      error_pos_ = pos_;
    }
    return false;
  }
  // "line L, column C (byte N)": lines and columns count from 1, columns in bytes.
  std::string Where(size_t pos) const {
    pos = std::min(pos, in_.size());
    std::string_view before = in_.substr(0, pos);
    size_t line = 1 + size_t(std::count(before.begin(), before.end(), '\n'));
    size_t line_start = before.rfind('\n');
    size_t column = 1 + pos - (line_start == std::string_view::npos ? 0 : line_start + 1);
    return "line " + std::to_string(line) + ", column " + std::to_string(column) + " (byte " +
           std::to_string(pos) + ")";
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

  // An object: a plain map, or a tag (json.h) when its first member is named as one.
  bool Object(int depth) {
    pos_++;  // {
    SkipSpace();
    if (pos_ < in_.size() && in_[pos_] == '}') {
      pos_++;
      b_->EndMap(b_->StartMap());
      return true;
    }
    std::string key;
    if (!MemberName(&key)) return false;
    if (IsTagName(key)) return Tag(key, depth);
    size_t start = b_->StartMap();
    std::vector<std::string> keys;
    while (true) {
      if (key.find('\0') != std::string::npos) return Fail("a key holds a NUL character");
      b_->Key(key);
      keys.push_back(std::move(key));
      if (!Value(depth + 1)) return false;
      SkipSpace();
      if (pos_ < in_.size() && in_[pos_] == '}') {
        pos_++;
        break;
      }
      if (pos_ >= in_.size() || in_[pos_] != ',') return Fail("expected ',' or '}'");
      pos_++;
      SkipSpace();
      size_t at = pos_;
      key.clear();
      if (!MemberName(&key)) return false;
      if (IsTagName(key)) {
        pos_ = at;
        return Fail(NotAlone(key));
      }
    }
    if (!CheckUnique(&keys)) return false;
    b_->EndMap(start);
    return true;
  }

  // A member's name and the ':' after it; leaves pos_ at the value.
  bool MemberName(std::string* key) {
    if (pos_ >= in_.size() || in_[pos_] != '"') return Fail("expected a quoted key");
    if (!String(key)) return false;
    SkipSpace();
    if (pos_ >= in_.size() || in_[pos_] != ':') return Fail("expected ':'");
    pos_++;
    SkipSpace();
    return true;
  }

  static std::string NotAlone(std::string_view tag) {
    return "an object with a \"" + std::string(tag) +
           "\" member is a tag and has no other member (a map with that key is written "
           "{\"$map\": [[\"" + std::string(tag) + "\", VALUE], ...]})";
  }

  bool CheckUnique(std::vector<std::string>* keys) {
    std::sort(keys->begin(), keys->end());
    if (std::adjacent_find(keys->begin(), keys->end()) != keys->end()) {
      return Fail("duplicate key in an object");
    }
    return true;
  }

  // The tag named `tag`, its value at pos_; then the object's closing brace.
  bool Tag(const std::string& tag, int depth) {
    if (tag == kMapTag) {
      if (!TaggedMap(depth)) return false;
    } else {
      std::string bytes;
      if (!Base64String(tag, &bytes)) return false;
      if (tag == kBytesTag) {
        b_->Blob(bytes.data(), bytes.size());
      } else {
        b_->String(bytes);
      }
    }
    SkipSpace();
    if (pos_ < in_.size() && in_[pos_] == ',') return Fail(NotAlone(tag));
    if (pos_ >= in_.size() || in_[pos_] != '}') return Fail("expected '}' after the \"" + tag + "\" tag");
    pos_++;
    return true;
  }

  // A JSON string holding base64, decoded into *bytes.
  bool Base64String(std::string_view tag, std::string* bytes) {
    std::string text;
    if (pos_ >= in_.size() || in_[pos_] != '"' || !String(&text) || !DecodeBase64(text, bytes)) {
      return Fail("\"" + std::string(tag) +
                  "\" takes a string of standard base64 (RFC 4648, with padding)");
    }
    return true;
  }

  // {"$map": [[KEY, VALUE], ...]}: the array of pairs at pos_. A KEY is a JSON string or
  // {"$string": "<base64>"}.
  bool TaggedMap(int depth) {
    const char* shape = "\"$map\" takes an array of [KEY, VALUE] pairs";
    if (pos_ >= in_.size() || in_[pos_] != '[') return Fail(shape);
    pos_++;
    size_t start = b_->StartMap();
    std::vector<std::string> keys;
    SkipSpace();
    if (pos_ < in_.size() && in_[pos_] == ']') {
      pos_++;
      b_->EndMap(start);
      return true;
    }
    while (true) {
      if (pos_ >= in_.size() || in_[pos_] != '[') return Fail(shape);
      pos_++;
      SkipSpace();
      std::string key;
      if (!PairKey(&key)) return false;
      if (key.find('\0') != std::string::npos) return Fail("a key holds a NUL character");
      SkipSpace();
      if (pos_ >= in_.size() || in_[pos_] != ',') return Fail(shape);
      pos_++;
      SkipSpace();
      b_->Key(key);
      keys.push_back(std::move(key));
      if (!Value(depth + 1)) return false;
      SkipSpace();
      if (pos_ >= in_.size() || in_[pos_] != ']') return Fail(shape);
      pos_++;
      SkipSpace();
      if (pos_ < in_.size() && in_[pos_] == ',') {
        pos_++;
        SkipSpace();
        continue;
      }
      if (pos_ < in_.size() && in_[pos_] == ']') {
        pos_++;
        break;
      }
      return Fail(shape);
    }
    if (!CheckUnique(&keys)) return false;
    b_->EndMap(start);
    return true;
  }

  bool PairKey(std::string* key) {
    if (pos_ < in_.size() && in_[pos_] == '"') return String(key);
    const char* shape = "a \"$map\" key is a string or {\"$string\": \"<base64>\"}";
    if (pos_ >= in_.size() || in_[pos_] != '{') return Fail(shape);
    pos_++;
    SkipSpace();
    std::string tag;
    if (pos_ >= in_.size() || in_[pos_] != '"' || !String(&tag) || tag != kStringTag) {
      return Fail(shape);
    }
    SkipSpace();
    if (pos_ >= in_.size() || in_[pos_] != ':') return Fail("expected ':'");
    pos_++;
    SkipSpace();
    if (!Base64String(kStringTag, key)) return false;
    SkipSpace();
    if (pos_ >= in_.size() || in_[pos_] != '}') return Fail(shape);
    pos_++;
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
      if (c < 0x20) {
        pos_--;
        return Fail("control character in a string");
      }
      if (c >= 0x80) {
        pos_--;
        size_t n = Utf8SequenceLength(in_.substr(pos_));
        if (n == 0) {
          char why[128];
          snprintf(why, sizeof why,
                   "invalid UTF-8 (byte 0x%02x) in a string; bytes that are not UTF-8 are "
                   "written {\"$string\": \"<base64>\"}",
                   c);
          return Fail(why);
        }
        out->append(in_.substr(pos_, n));
        pos_ += n;
        continue;
      }
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
          size_t escape = pos_ - 2;
          auto lone = [&](const char* which) {
            pos_ = escape;
            return Fail(std::string("a lone ") + which +
                        " surrogate escape is not UTF-8 text; bytes that are not UTF-8 are "
                        "written {\"$string\": \"<base64>\"}");
          };
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {  // a surrogate pair
            uint32_t lo;
            if (in_.substr(pos_, 2) != "\\u") return lone("high");
            pos_ += 2;
            if (!Hex4(&lo)) return false;
            if (lo < 0xdc00 || lo > 0xdfff) return lone("high");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            return lone("low");
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
  size_t error_pos_ = 0;  // where error_ was found
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
