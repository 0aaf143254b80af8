// A strict UTF-8 check written straight from RFC 3629's table of well-formed byte
// sequences, independently of the codec's validator: tests use it as the reference.
#pragma once

#include <cstdint>
#include <string_view>

namespace cairn::testing {

inline bool IsStrictUtf8(std::string_view s) {
  auto at = [&](size_t j) { return j < s.size() ? int(uint8_t(s[j])) : -1; };
  auto in = [&](size_t j, int lo, int hi) { return at(j) >= lo && at(j) <= hi; };
  for (size_t i = 0; i < s.size();) {
    int c = at(i);
    auto tail = [&](size_t from, size_t n) {
      for (size_t k = from; k < i + n; k++) {
        if (!in(k, 0x80, 0xbf)) return false;
      }
      return true;
    };
    size_t n = 0;
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = tail(i + 1, 2) ? 2 : 0;
    } else if (c == 0xe0) {
      n = in(i + 1, 0xa0, 0xbf) && tail(i + 2, 3) ? 3 : 0;
    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
      n = tail(i + 1, 3) ? 3 : 0;
    } else if (c == 0xed) {
      n = in(i + 1, 0x80, 0x9f) && tail(i + 2, 3) ? 3 : 0;
    } else if (c == 0xf0) {
      n = in(i + 1, 0x90, 0xbf) && tail(i + 2, 4) ? 4 : 0;
    } else if (c >= 0xf1 && c <= 0xf3) {
      n = tail(i + 1, 4) ? 4 : 0;
    } else if (c == 0xf4) {
      n = in(i + 1, 0x80, 0x8f) && tail(i + 2, 4) ? 4 : 0;
    }
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace cairn::testing
