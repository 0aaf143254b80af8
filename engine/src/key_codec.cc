#include "key_codec.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "coding.h"
#include "flatbuffers/flexbuffers.h"

namespace cairn::internal {
namespace {

// A double's bits, transformed so that unsigned comparison is numeric comparison.
uint64_t OrderedDoubleBits(double d) {
  if (d == 0) d = 0;  // -0.0 and 0.0 are one value
  if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();  // one NaN, above +inf
  uint64_t bits = std::bit_cast<uint64_t>(d);
  return (bits & (uint64_t{1} << 63)) ? ~bits : bits | (uint64_t{1} << 63);
}

// A number is encoded as the largest double d <= value, then value - d. For any value a
// double can hold the residual is 0; only integers beyond 2^53 have one, and it is below
// the spacing of doubles there (< 2^12 for magnitudes below 2^64).
void AppendNumber(double d, uint16_t residual, std::string* out) {
  char b[11];
  b[0] = char(kTagNumber);
  StoreU64BE(b + 1, OrderedDoubleBits(d));
  b[9] = char(residual >> 8);
  b[10] = char(residual);
  out->append(b, sizeof b);
}

// The largest double <= v, and v minus it.
void FloorDouble(__int128 v, double* d, uint16_t* residual) {
  double r = static_cast<double>(v);  // rounds to nearest
  // Doubles from the conversion are integral wherever they can differ from v (|v| >= 2^53),
  // and every uint64/int64 rounds into (-2^64, 2^64], so the cast back is exact.
  if (static_cast<__int128>(r) > v) r = std::nextafter(r, -INFINITY);
  *d = r;
  *residual = static_cast<uint16_t>(v - static_cast<__int128>(r));
}

void AppendEscaped(uint8_t tag, std::string_view v, std::string* out) {
  out->push_back(char(tag));
  size_t start = 0;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] == '\0') {
      out->append(v.data() + start, i - start);
      out->append("\x00\xff", 2);
      start = i + 1;
    }
  }
  out->append(v.data() + start, v.size() - start);
  out->append("\x00\x01", 2);  // terminator: sorts below any escaped 0x00 and any other byte
}

}  // namespace

void AppendNull(std::string* out) { out->push_back(char(kTagNull)); }
void AppendBool(bool v, std::string* out) { out->push_back(char(v ? kTagTrue : kTagFalse)); }

void AppendInt(int64_t v, std::string* out) {
  double d;
  uint16_t residual;
  FloorDouble(v, &d, &residual);
  AppendNumber(d, residual, out);
}

void AppendUint(uint64_t v, std::string* out) {
  double d;
  uint16_t residual;
  FloorDouble(v, &d, &residual);
  AppendNumber(d, residual, out);
}

void AppendDouble(double v, std::string* out) { AppendNumber(v, 0, out); }
void AppendString(std::string_view v, std::string* out) { AppendEscaped(kTagString, v, out); }
void AppendBlob(std::string_view v, std::string* out) { AppendEscaped(kTagBlob, v, out); }

void AppendIndexValue(const IndexValue& v, std::string* out) {
  struct Visitor {
    std::string* out;
    void operator()(std::monostate) const { AppendNull(out); }
    void operator()(bool b) const { AppendBool(b, out); }
    void operator()(int64_t i) const { AppendInt(i, out); }
    void operator()(uint64_t u) const { AppendUint(u, out); }
    void operator()(double d) const { AppendDouble(d, out); }
    void operator()(const std::string& s) const { AppendString(s, out); }
    void operator()(const Blob& b) const { AppendBlob(b.bytes, out); }
  };
  std::visit(Visitor{out}, v);
}

bool AppendFlexValue(const flexbuffers::Reference& ref, std::string* out) {
  switch (ref.GetType()) {
    case flexbuffers::FBT_NULL:
      AppendNull(out);
      return true;
    case flexbuffers::FBT_BOOL:
      AppendBool(ref.AsBool(), out);
      return true;
    case flexbuffers::FBT_INT:
    case flexbuffers::FBT_INDIRECT_INT:
      AppendInt(ref.AsInt64(), out);
      return true;
    case flexbuffers::FBT_UINT:
    case flexbuffers::FBT_INDIRECT_UINT:
      AppendUint(ref.AsUInt64(), out);
      return true;
    case flexbuffers::FBT_FLOAT:
    case flexbuffers::FBT_INDIRECT_FLOAT:
      AppendDouble(ref.AsDouble(), out);
      return true;
    case flexbuffers::FBT_STRING: {
      auto s = ref.AsString();
      AppendString(std::string_view(s.c_str(), s.length()), out);
      return true;
    }
    case flexbuffers::FBT_KEY: {
      const char* k = ref.AsKey();
      AppendString(std::string_view(k), out);
      return true;
    }
    case flexbuffers::FBT_BLOB: {
      auto b = ref.AsBlob();
      AppendBlob(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), out);
      return true;
    }
    default:
      return false;
  }
}

bool PrefixSuccessor(std::string* s) {
  while (!s->empty()) {
    unsigned char& last = reinterpret_cast<unsigned char&>(s->back());
    if (last != 0xff) {
      last++;
      return true;
    }
    s->pop_back();
  }
  return false;
}

}  // namespace cairn::internal
