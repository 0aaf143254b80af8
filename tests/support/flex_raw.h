// FlexBuffers written byte by byte, for tests of the document check: shapes no builder
// writes (a vector referenced thousands of times, vectors that overlap).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flatbuffers/flexbuffers.h"

namespace cairn::testing {

// A FlexBuffer written by hand, every offset and size 4 bytes wide.
class Raw {
 public:
  struct Elem {
    uint32_t value = 0;   // an inline int, or
    size_t target = 0;    // the position of the part referenced
    uint8_t packed = kInt;
  };
  static constexpr uint8_t kInt = flexbuffers::FBT_INT << 2 | 2;
  static constexpr uint8_t kVector = flexbuffers::FBT_VECTOR << 2 | 2;
  static constexpr uint8_t kMap = flexbuffers::FBT_MAP << 2 | 2;
  static Elem Int(uint32_t v) { return Elem{v, 0, kInt}; }
  static Elem Ref(size_t target, uint8_t packed = kVector) { return Elem{0, target, packed}; }

  size_t pos() const { return b_.size(); }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; i++) b_.push_back(char(v >> (8 * i)));
  }
  void Bytes(const std::string& s) { b_.append(s); }
  void Align() {
    while (b_.size() % 4) b_.push_back(0);
  }
  size_t Key(const std::string& k) {
    size_t p = pos();
    b_.append(k).push_back('\0');
    return p;
  }
  // Writes an untyped vector (with `keys`: a map whose keys vector is at `keys`); returns
  // its position (the first element).
  size_t Vector(const std::vector<Elem>& elems, std::optional<size_t> keys = std::nullopt) {
    Align();
    if (keys) {
      U32(uint32_t(pos() - *keys));
      U32(4);
    }
    U32(uint32_t(elems.size()));
    size_t p = pos();
    for (size_t i = 0; i < elems.size(); i++) {
      const Elem& e = elems[i];
      U32(e.packed == kInt ? e.value : uint32_t(p + 4 * i - e.target));
    }
    for (const Elem& e : elems) b_.push_back(char(e.packed));
    return p;
  }
  // A map of `fields` (names in sorted order), made the root; returns the buffer.
  std::string Root(const std::vector<std::pair<std::string, Elem>>& fields) {
    std::vector<size_t> names;
    for (const auto& f : fields) names.push_back(Key(f.first));
    Align();
    U32(uint32_t(names.size()));
    size_t keys = pos();
    for (size_t i = 0; i < names.size(); i++) U32(uint32_t(keys + 4 * i - names[i]));
    std::vector<Elem> values;
    for (const auto& f : fields) values.push_back(f.second);
    size_t map = Vector(values, keys);
    U32(uint32_t(pos() - map));
    b_.push_back(char(kMap));
    b_.push_back(4);
    return std::move(b_);
  }

 private:
  std::string b_;
};

// {"v": [c, c, ..., c]}: one vector c of `n` ints referenced `k` times. The library's
// verifier walks c k times.
inline std::string SharedVectorDocument(size_t k, size_t n) {
  Raw r;
  size_t child = r.Vector(std::vector<Raw::Elem>(n, Raw::Int(0)));
  size_t parent = r.Vector(std::vector<Raw::Elem>(k, Raw::Ref(child)));
  return r.Root({{"v", Raw::Ref(parent)}});
}

}  // namespace cairn::testing
