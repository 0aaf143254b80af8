// Byte-level encoding helpers for the engine's on-disk formats (docs/storage.md):
// big-endian integers (so that byte order is numeric order), varints, and
// length-prefixed byte strings, with a bounds-checked reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cairn::internal {

inline void PutU32BE(std::string* out, uint32_t v) {
  char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out->append(b, 4);
}
inline void PutU64BE(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; i++) b[i] = char(v >> (56 - 8 * i));
  out->append(b, 8);
}
inline void StoreU32BE(char* p, uint32_t v) {
  p[0] = char(v >> 24), p[1] = char(v >> 16), p[2] = char(v >> 8), p[3] = char(v);
}
inline void StoreU64BE(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = char(v >> (56 - 8 * i));
}
inline uint32_t LoadU32BE(const char* p) {
  auto u = reinterpret_cast<const uint8_t*>(p);
  return uint32_t(u[0]) << 24 | uint32_t(u[1]) << 16 | uint32_t(u[2]) << 8 | u[3];
}
inline uint64_t LoadU64BE(const char* p) {
  auto u = reinterpret_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | u[i];
  return v;
}
inline void StoreU32LE(char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = char(v >> (8 * i));
}
inline uint32_t LoadU32LE(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian hosts only (x86-64, arm64)
  return v;
}
inline void StoreU64LE(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = char(v >> (8 * i));
}
inline uint64_t LoadU64LE(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64, arm64)
  return v;
}
inline void PutU64LE(std::string* out, uint64_t v) {
  char b[8];
  StoreU64LE(b, v);
  out->append(b, 8);
}

inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(char(v | 0x80));
    v >>= 7;
  }
  out->push_back(char(v));
}
inline void PutBytes(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

// Reads what the Put* functions wrote. Every getter returns false on truncated or
// malformed input and leaves the reader in a failed state.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool U8(uint8_t* v) {
    if (in_.empty()) return Fail();
    *v = uint8_t(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32BE(uint32_t* v) {
    if (in_.size() < 4) return Fail();
    *v = LoadU32BE(in_.data());
    in_.remove_prefix(4);
    return true;
  }
  bool U64BE(uint64_t* v) {
    if (in_.size() < 8) return Fail();
    *v = LoadU64BE(in_.data());
    in_.remove_prefix(8);
    return true;
  }
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (in_.empty()) return Fail();
      uint8_t b = uint8_t(in_[0]);
      in_.remove_prefix(1);
      r |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = r;
        return true;
      }
    }
    return Fail();
  }
  bool Bytes(std::string_view* s) {
    uint64_t n;
    if (!Varint(&n) || n > in_.size()) return Fail();
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool Bytes(std::string* s) {
    std::string_view v;
    if (!Bytes(&v)) return false;
    s->assign(v);
    return true;
  }

  std::string_view rest() const { return in_; }
  bool empty() const { return in_.empty(); }
  bool failed() const { return failed_; }

 private:
  bool Fail() {
    failed_ = true;
    return false;
  }
  std::string_view in_;
  bool failed_ = false;
};

}  // namespace cairn::internal
