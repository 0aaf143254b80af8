// keycodec_fuzz: the order-preserving encoding of index values (engine/src/key_codec.cc),
// which turns values from untrusted documents and queries into LMDB keys.
//
// The input is split (FuzzedDataProvider) into index values of every kind (null, bools,
// int64, uint64, doubles from any 64 bits, strings and blobs of any bytes) and into raw
// bytes. Asserts (abort on violation):
// - order preservation: for two values a and b, memcmp of their encodings has the sign of
//   the values' order (null < false < true < numbers < strings < blobs; numbers of every
//   kind in one exact numeric order, NaN above +inf and equal to itself, -0 == 0; strings
//   and blobs bytewise), so equal values, and only those, share an encoding;
// - compound keys: the concatenation of two encodings orders as the pairs do;
// - encode -> decode round trips: the reference decoder below (the format of
//   docs/storage.md, "Index keys", written out independently; the engine itself never
//   decodes keys) reads back a value equal to the one encoded and consumes exactly its
//   encoding, also when it is followed by other bytes;
// - decoding arbitrary bytes never crashes, and whatever it accepts re-encodes to the same
//   bytes (encodings are canonical);
// - a document field encodes (AppendFlexValue) as the same value given to a query
//   (AppendIndexValue);
// - PrefixSuccessor gives a string above every extension of its input, and fails only
//   for empty or all-0xff input.
#include <fuzzer/FuzzedDataProvider.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "flatbuffers/flexbuffers.h"
#include "key_codec.h"

namespace {

using namespace cairn;
using namespace cairn::internal;

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

using i128 = __int128;

int Sign(int64_t x) { return (x > 0) - (x < 0); }

// A number: an exact integer, or a double.
struct Num {
  bool is_int;
  i128 i;
  double d;
};

// The exact order of an integer and a double; NaN above everything, and equal to NaN.
int CmpIntDouble(i128 i, double x) {
  if (std::isnan(x)) return -1;
  if (x >= 18446744073709551616.0) return -1;  // 2^64: above every uint64
  if (x < -9223372036854775808.0) return 1;    // below every int64
  double t = std::trunc(x);
  i128 ti = i128(t);
  if (i != ti) return i < ti ? -1 : 1;
  double frac = x - t;
  return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

int CmpNum(const Num& a, const Num& b) {
  if (a.is_int && b.is_int) return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
  if (a.is_int) return CmpIntDouble(a.i, b.d);
  if (b.is_int) return -CmpIntDouble(b.i, a.d);
  bool an = std::isnan(a.d), bn = std::isnan(b.d);
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  return a.d < b.d ? -1 : a.d > b.d ? 1 : 0;
}

int Rank(const IndexValue& v) {
  switch (v.index()) {
    case 0: return 0;                           // null
    case 1: return std::get<bool>(v) ? 2 : 1;  // false, true
    case 2: case 3: case 4: return 3;           // numbers
    case 5: return 4;                           // string
    default: return 5;                          // blob
  }
}

Num AsNum(const IndexValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return {true, *i, 0};
  if (auto* u = std::get_if<uint64_t>(&v)) return {true, *u, 0};
  return {false, 0, std::get<double>(v)};
}

int Cmp(const IndexValue& a, const IndexValue& b) {
  int ra = Rank(a), rb = Rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 3) return CmpNum(AsNum(a), AsNum(b));
  if (ra == 4) return Sign(std::get<std::string>(a).compare(std::get<std::string>(b)));
  if (ra == 5) return Sign(std::get<Blob>(a).bytes.compare(std::get<Blob>(b).bytes));
  return 0;
}

std::string Encode(const IndexValue& v) {
  std::string out;
  AppendIndexValue(v, &out);
  return out;
}

// --- The reference decoder. Reads one value from the front of *in.

std::optional<std::string> DecodeEscaped(std::string_view* in) {
  std::string out;
  for (size_t i = 0; i < in->size(); i++) {
    char c = (*in)[i];
    if (c != '\0') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= in->size()) return std::nullopt;
    uint8_t next = uint8_t((*in)[i + 1]);
    if (next == 0x01) {
      in->remove_prefix(i + 2);
      return out;
    }
    if (next != 0xff) return std::nullopt;
    out.push_back('\0');
    i++;
  }
  return std::nullopt;
}

std::optional<IndexValue> Decode(std::string_view* in) {
  if (in->empty()) return std::nullopt;
  uint8_t tag = uint8_t((*in)[0]);
  in->remove_prefix(1);
  switch (tag) {
    case kTagNull: return IndexValue(std::monostate());
    case kTagFalse: return IndexValue(false);
    case kTagTrue: return IndexValue(true);
    case kTagNumber: {
      if (in->size() < 10) return std::nullopt;
      const char* start = in->data();
      uint64_t u = 0;
      for (int i = 0; i < 8; i++) u = u << 8 | uint8_t((*in)[i]);
      uint16_t residual = uint16_t(uint8_t((*in)[8]) << 8 | uint8_t((*in)[9]));
      in->remove_prefix(10);
      uint64_t bits = (u >> 63) ? u ^ (uint64_t{1} << 63) : ~u;
      double d = std::bit_cast<double>(bits);
      if (residual == 0) return IndexValue(d);
      // Only integers beyond 2^53 carry a residual: d is integral there.
      // Only integers beyond 2^53 carry a residual: d is integral there, and the residual
      // is below the spacing of doubles at d (else the encoder would have picked another d).
      if (!std::isfinite(d) || std::fabs(d) > 2e19 || std::fabs(d) < 9007199254740992.0) {
        return std::nullopt;
      }
      i128 v = i128(d) + residual;
      IndexValue out;
      if (v >= 0 && v <= i128(std::numeric_limits<uint64_t>::max())) {
        out = uint64_t(v);
      } else if (v < 0 && v >= i128(std::numeric_limits<int64_t>::min())) {
        out = int64_t(v);
      } else {
        return std::nullopt;
      }
      std::string again = Encode(out);
      if (std::string_view(again).substr(1) != std::string_view(start, 10)) return std::nullopt;
      return out;
    }
    case kTagString: {
      auto s = DecodeEscaped(in);
      if (!s) return std::nullopt;
      return IndexValue(std::move(*s));
    }
    case kTagBlob: {
      auto s = DecodeEscaped(in);
      if (!s) return std::nullopt;
      return IndexValue(Blob{std::move(*s)});
    }
    default: return std::nullopt;
  }
}

IndexValue TakeValue(FuzzedDataProvider& p) {
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return std::monostate();
    case 1: return p.ConsumeBool();
    case 2: return p.ConsumeIntegral<int64_t>();
    case 3: return p.ConsumeIntegral<uint64_t>();
    case 4: return std::bit_cast<double>(p.ConsumeIntegral<uint64_t>());
    case 5: return double(p.ConsumeIntegral<int64_t>());  // integral doubles: near the ints
    case 6: return p.ConsumeRandomLengthString(64);
    default: return Blob{p.ConsumeRandomLengthString(64)};
  }
}

// The same value in a FlexBuffer, as a document field would hold it.
std::string AsFlex(const IndexValue& v) {
  flexbuffers::Builder b;
  switch (v.index()) {
    case 0: b.Null(); break;
    case 1: b.Bool(std::get<bool>(v)); break;
    case 2: b.Int(std::get<int64_t>(v)); break;
    case 3: b.UInt(std::get<uint64_t>(v)); break;
    case 4: b.Double(std::get<double>(v)); break;
    case 5: {
      const std::string& s = std::get<std::string>(v);
      b.String(s.data(), s.size());
      break;
    }
    default: {
      const std::string& s = std::get<Blob>(v).bytes;
      b.Blob(s.data(), s.size());
      break;
    }
  }
  b.Finish();
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
}

void CheckRoundTrip(const IndexValue& v, const std::string& enc, std::string_view tail) {
  std::string both = enc + std::string(tail);
  std::string_view in = both;
  auto back = Decode(&in);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(Cmp(*back, v) == 0);
  FUZZ_CHECK(in.size() == tail.size());
  FUZZ_CHECK(Encode(*back) == enc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  IndexValue a = TakeValue(p), b = TakeValue(p), c = TakeValue(p), d = TakeValue(p);
  std::string ea = Encode(a), eb = Encode(b), ec = Encode(c), ed = Encode(d);

  // Order, and equality exactly when the values are equal.
  FUZZ_CHECK(Sign(ea.compare(eb)) == Cmp(a, b));
  FUZZ_CHECK(Sign(ec.compare(ed)) == Cmp(c, d));
  // Compound keys (a, c) and (b, d) order as the pairs.
  int pair = Cmp(a, b) != 0 ? Cmp(a, b) : Cmp(c, d);
  FUZZ_CHECK(Sign((ea + ec).compare(eb + ed)) == pair);

  std::string rest = p.ConsumeRemainingBytesAsString();
  CheckRoundTrip(a, ea, eb);
  CheckRoundTrip(b, eb, rest);
  CheckRoundTrip(c, ec, "");

  // A document field encodes as the query value does.
  std::string flex = AsFlex(a);
  std::string from_doc;
  FUZZ_CHECK(AppendFlexValue(
      flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size()), &from_doc));
  FUZZ_CHECK(from_doc == ea);

  // Arbitrary bytes: decoding never crashes; what it accepts is canonical.
  std::string_view in = rest;
  while (!in.empty()) {
    std::string_view before = in;
    auto v = Decode(&in);
    if (!v) break;
    std::string_view used = before.substr(0, before.size() - in.size());
    // Non-canonical spellings the decoder reads (a NaN or -0.0 of other bits) are not
    // what the encoder writes: they must encode to a different string of the same value.
    std::string again = Encode(*v);
    if (again != used) {
      std::string_view a2 = again;
      auto w = Decode(&a2);
      FUZZ_CHECK(w && Cmp(*w, *v) == 0 && a2.empty());
      FUZZ_CHECK(std::holds_alternative<double>(*v));
    }
  }

  // PrefixSuccessor.
  std::string s = rest.substr(0, 16);
  std::string succ = s;
  if (PrefixSuccessor(&succ)) {
    FUZZ_CHECK(succ > s);
    FUZZ_CHECK(succ > s + std::string(8, '\xff'));
    FUZZ_CHECK(succ.size() <= s.size());
  } else {
    FUZZ_CHECK(s.find_first_not_of('\xff') == std::string::npos);
  }
  return 0;
}
