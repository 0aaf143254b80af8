#include "document.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <unordered_map>

#include "flatbuffers/flexbuffers.h"
#include "key_codec.h"

namespace cairn {

namespace {

// Checks a FlexBuffer by walking it from the root, every offset, size and type byte
// bounds-checked before it is used.
//
// Cost. A walk without memory re-checks a part each time it is referenced: a vector
// referenced K times by a vector of K elements costs K squared (the FlexBuffers library's
// own Verifier does this; its reuse tracker, in 2.0.8, counts every reuse as a level of
// nesting, so that a part shared 64 times fails the depth limit, and it forgets how deep a
// shared part goes). So the check runs with a budget of steps (one per value, one per key
// byte scanned): first without memory and a budget of the buffer's size, which every
// buffer without shared parts fits in; if that runs out, again with a memo of the parts
// already checked (their position and packed type, with their height) and a budget of
// kCostPerByte steps per byte. A buffer that exhausts that too has parts that overlap
// (vectors whose elements are other vectors' elements, say), which no builder writes: it
// is refused.
//
// Expansion. Sharing also lets a small buffer stand for a huge one: a vector of K
// references to one vector of K elements is K squared values to every reader that writes
// the document out (FlexToJson, a client's decoder). So each part's expanded size, the
// size it has written out without sharing (one unit per value, one per byte of a string,
// blob or key, every reference counted), is computed along (memoized with the height),
// and a buffer whose expanded size passes `max_expanded` is refused, in the same linear
// time. The sums cannot overflow: each is checked against max_expanded as it grows.
class FlexCheck {
 public:
  // What a part spans: its levels (0 for scalars and keys) and its expanded size.
  struct Extent {
    uint8_t height = 0;
    uint64_t expanded = 0;
  };
  using Memo = std::unordered_map<uint64_t, Extent>;  // (position << 8 | packed type) -> extent

  FlexCheck(std::string_view bytes, size_t max_depth, uint64_t max_expanded, size_t budget,
            Memo* memo)
      : buf_(reinterpret_cast<const uint8_t*>(bytes.data())),
        size_(bytes.size()),
        max_depth_(max_depth),
        max_expanded_(max_expanded),
        budget_(budget),
        memo_(memo) {}

  bool Run() {
    if (size_ < 3) return Fail("shorter than 3 bytes");
    uint8_t width = buf_[size_ - 1];
    if (!ValidWidth(width) || size_ - 2 < width) return Fail("bad root width");
    Extent e;
    return Value(size_ - 2 - width, width, buf_[size_ - 2], 1, &e);
  }
  bool out_of_budget() const { return out_of_budget_; }
  bool too_expanded() const { return too_expanded_; }
  const char* error() const { return error_; }

 private:
  static bool ValidWidth(uint64_t w) { return w == 1 || w == 2 || w == 4 || w == 8; }
  bool InBounds(size_t at, uint64_t len) const { return at <= size_ && len <= size_ - at; }
  bool Fail(const char* why) {
    error_ = why;
    return false;
  }
  bool Spend(size_t steps) {
    if (steps > budget_) {
      out_of_budget_ = true;
      return Fail("too costly to check");
    }
    budget_ -= steps;
    return true;
  }
  // REQUIRES: InBounds(at, width)
  uint64_t Read(size_t at, uint8_t width) const {
    uint64_t v = 0;
    for (uint8_t i = 0; i < width; i++) v |= uint64_t(buf_[at + i]) << (8 * i);
    return v;
  }
  // The element count stored in the `width` bytes before `p`.
  bool Count(size_t p, uint8_t width, uint64_t* n) {
    if (p < width) return Fail("size before the buffer");
    *n = Read(p - width, width);
    return true;
  }
  bool Level(size_t level) { return level <= max_depth_ || Fail("nested too deeply"); }
  // Sets *e to a part with no parts of its own, of `units` (a value and its bytes) and
  // `height` (1 for strings, blobs and typed vectors, 0 otherwise), if within the bound.
  bool Leaf(uint64_t units, Extent* e, uint8_t height = 0) {
    e->height = height;
    e->expanded = units;
    return Within(units);
  }
  bool Within(uint64_t expanded) {
    if (expanded <= max_expanded_) return true;
    too_expanded_ = true;
    return Fail("too large written out");
  }
  // Adds `child` to `*sum`, within the bound (both terms are, so the sum cannot overflow).
  bool Add(const Extent& child, Extent* sum) {
    sum->height = std::max(sum->height, child.height);
    sum->expanded += child.expanded;
    return Within(sum->expanded);
  }

  // The value stored in `parent_width` bytes at `at` (in bounds), of packed type `packed`
  // (type << 2 | log2 of its width), at nesting `level`. Sets *e to what it spans.
  bool Value(size_t at, uint8_t parent_width, uint8_t packed, size_t level, Extent* e) {
    if (!Spend(1)) return false;
    auto type = flexbuffers::Type(packed >> 2);
    if (flexbuffers::IsInline(type)) return Leaf(1, e);
    uint64_t off = Read(at, parent_width);
    if (off > at) return Fail("offset before the buffer");
    return Part(at - off, type, uint8_t(1u << (packed & 3)), level, e);
  }

  // The part at `p` of `type` whose elements (or size) are `width` bytes wide.
  bool Part(size_t p, flexbuffers::Type type, uint8_t width, size_t level, Extent* e) {
    using namespace flexbuffers;
    uint64_t n;
    switch (type) {
      case FBT_INDIRECT_INT:
      case FBT_INDIRECT_UINT:
      case FBT_INDIRECT_FLOAT:
        return (InBounds(p, width) || Fail("scalar past the end")) && Leaf(1, e);
      case FBT_STRING:
      case FBT_BLOB:
        if (!Level(level) || !Count(p, width, &n)) return false;
        if (!InBounds(p, n + (type == FBT_STRING))) return Fail("string or blob past the end");
        if (type == FBT_STRING && buf_[p + n] != 0) return Fail("string not terminated");
        return Leaf(1 + n, e, 1);
      case FBT_VECTOR_INT:
      case FBT_VECTOR_UINT:
      case FBT_VECTOR_FLOAT:
      case FBT_VECTOR_BOOL:
        if (!Level(level) || !Count(p, width, &n)) return false;
        if (n > size_ || !InBounds(p, n * width)) return Fail("vector past the end");
        return Leaf(1 + n, e, 1);
      case FBT_KEY:
      case FBT_MAP:
      case FBT_VECTOR:
      case FBT_VECTOR_KEY:
      case FBT_VECTOR_STRING_DEPRECATED:
        return Shared(p, type, width, level, e);
      default:
        if (type >= FBT_VECTOR_INT2 && type <= FBT_VECTOR_FLOAT4) {
          uint64_t len = (type - FBT_VECTOR_INT2) / 3 + 2;
          return (InBounds(p, len * width) || Fail("vector past the end")) && Leaf(1 + len, e);
        }
        return Fail("unknown type");
    }
  }

  // The parts whose check costs more than a constant: checked once when memo_ is set.
  bool Shared(size_t p, flexbuffers::Type type, uint8_t width, size_t level, Extent* e) {
    uint64_t key = uint64_t(p) << 8 | uint64_t(type) << 2 | uint64_t(std::countr_zero(width));
    if (memo_) {
      if (auto it = memo_->find(key); it != memo_->end()) {
        *e = it->second;
        // Checked before at another level: it must fit below this one too.
        return e->height == 0 || level + e->height - 1 <= max_depth_ || Fail("nested too deeply");
      }
    }
    if (!Check(p, type, width, level, e)) return false;
    if (memo_) memo_->emplace(key, *e);
    return true;
  }

  bool Check(size_t p, flexbuffers::Type type, uint8_t width, size_t level, Extent* e) {
    using namespace flexbuffers;
    if (type == FBT_KEY) {
      if (p >= size_) return Fail("key past the end");
      size_t room = std::min(size_ - p, budget_ + 1);
      auto end = static_cast<const uint8_t*>(std::memchr(buf_ + p, 0, room));
      if (!end) return room == size_ - p ? Fail("key not terminated") : Spend(room);
      size_t len = size_t(end - (buf_ + p));
      return Spend(len) && Leaf(1 + len, e);
    }
    if (!Level(level)) return false;
    uint64_t n;
    if (!Count(p, width, &n)) return false;
    Extent sum{0, 1}, child;
    if (type == FBT_MAP || type == FBT_VECTOR) {
      // n elements of `width` bytes, then n type bytes.
      if (n > size_ || !InBounds(p, n * (width + 1))) return Fail("vector past the end");
      for (uint64_t i = 0; i < n; i++) {
        if (!Value(p + i * width, width, buf_[p + n * width + i], level + 1, &child)) return false;
        if (!Add(child, &sum)) return false;
      }
      if (type == FBT_MAP) {
        // Before the size: the keys vector's offset and width. The keys sit at the map's level.
        if (p < 3 * size_t(width)) return Fail("map header before the buffer");
        size_t at = p - 3 * size_t(width);
        // Readers take the width's low byte (flexbuffers::Map::Keys), so the check does too.
        uint64_t off = Read(at, width), key_width = uint8_t(Read(at + width, width));
        if (off > at) return Fail("offset before the buffer");
        if (!ValidWidth(key_width)) return Fail("bad key vector width");
        // Written out, every key is written with its value; the keys' height is not the map's.
        Extent keys;
        if (!Shared(at - off, FBT_VECTOR_KEY, uint8_t(key_width), level, &keys)) return false;
        if (!Add(Extent{0, keys.expanded}, &sum)) return false;
        if (!SortedKeys(at - off, uint8_t(key_width), n)) return false;
      }
    } else {
      // A typed vector of keys (or, deprecated, of strings with 1-byte sizes): n offsets.
      if (n > size_ || !InBounds(p, n * width)) return Fail("vector past the end");
      uint8_t elem = type == FBT_VECTOR_KEY ? uint8_t(FBT_KEY << 2) : uint8_t(FBT_STRING << 2);
      for (uint64_t i = 0; i < n; i++) {
        if (!Value(p + i * width, width, elem, level + 1, &child)) return false;
        if (!Add(child, &sum)) return false;
      }
    }
    sum.height = uint8_t(sum.height + 1);
    *e = sum;
    return true;
  }

  // A map's keys (the checked key vector at `p`, of `width`-byte offsets) must be sorted
  // by strcmp and distinct, and as many as its values: readers find fields by binary
  // search (flexbuffers::Map, index fields), so a map out of order would hide fields that
  // FlexToJson shows, and duplicates would give a field two values. Every builder sorts
  // (flexbuffers::Builder::EndMap). Checked once per key vector when memo_ is set, at one
  // step per byte compared.
  bool SortedKeys(size_t p, uint8_t width, uint64_t values) {
    uint64_t n = Read(p - width, width);  // Shared checked it
    if (n != values) return Fail("map with more keys than values or fewer");
    // FBT_NULL parts do not exist (null is inline): the memo's entry for "keys sorted".
    uint64_t key = uint64_t(p) << 8 | uint64_t(std::countr_zero(width));
    if (memo_ && memo_->count(key)) return true;
    const uint8_t* prev = nullptr;
    for (uint64_t i = 0; i < n; i++) {
      size_t at = p + i * width;
      const uint8_t* k = buf_ + (at - Read(at, width));  // in bounds and terminated
      if (prev) {
        size_t j = 0;
        while (prev[j] != 0 && prev[j] == k[j]) j++;
        if (!Spend(j + 1)) return false;
        if (prev[j] >= k[j]) return Fail("map keys not sorted, or repeated");
      }
      prev = k;
    }
    if (memo_) memo_->emplace(key, Extent{});
    return true;
  }

  const uint8_t* buf_;
  const size_t size_;
  const size_t max_depth_;
  const uint64_t max_expanded_;
  size_t budget_;
  Memo* memo_;
  bool out_of_budget_ = false;
  bool too_expanded_ = false;
  const char* error_ = "";
};

// Steps per byte the memoized check may take: a buffer without overlapping parts takes at
// most about two (a step per value, which is at least one byte, and per key byte).
constexpr size_t kCostPerByte = 4;

}  // namespace

uint64_t MaxExpandedSize(size_t bytes) {
  return kMaxExpansionPerByte * uint64_t(bytes) + kExpansionAllowance;
}

Status CheckFlexBuffer(std::string_view bytes, size_t max_depth, Expansion expansion) {
  if (max_depth > 200) max_depth = 200;  // heights are kept in a byte
  uint64_t max_expanded =
      expansion == Expansion::kBounded ? MaxExpandedSize(bytes.size()) : UINT64_MAX / 2;
  auto refused = [&](const FlexCheck& check) {
    if (check.too_expanded()) {
      return Status(Code::kBadRequest,
                    "too large written out: its shared parts expand to more than " +
                        std::to_string(max_expanded) + " values and bytes (" +
                        std::to_string(kMaxExpansionPerByte) + " per byte stored, plus " +
                        std::to_string(kExpansionAllowance) + ")");
    }
    return Status(Code::kBadRequest, std::string("not a valid FlexBuffer (") + check.error() + ")");
  };
  FlexCheck quick(bytes, max_depth, max_expanded, bytes.size() + 64, nullptr);
  if (quick.Run()) return Status::Ok();
  if (!quick.out_of_budget()) return refused(quick);
  // Shared parts: check each once. The memo holds at most one entry per part checked.
  FlexCheck::Memo memo;
  FlexCheck full(bytes, max_depth, max_expanded, kCostPerByte * bytes.size() + 64, &memo);
  if (full.Run()) return Status::Ok();
  if (full.out_of_budget()) {
    return Status(Code::kBadRequest,
                  "too costly to check: its parts overlap in a way no FlexBuffers builder writes");
  }
  return refused(full);
}

Status CheckDocument(std::string_view doc, Expansion expansion) {
  if (Status s = CheckFlexBuffer(doc, kMaxDocumentDepth, expansion); !s.ok()) {
    return Status(Code::kBadRequest, "document is " + s.message());
  }
  if (!flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(doc.data()), doc.size()).IsMap()) {
    return Status(Code::kBadRequest, "document is not a map");
  }
  return Status::Ok();
}

}  // namespace cairn

namespace cairn::internal {

FieldPath ParsePath(std::string_view dotted) {
  FieldPath path;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    path.emplace_back(dotted.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return path;
}

namespace {

// Looks `key` up in `map`. Unlike Map::operator[], tells a missing key (false) from a
// stored null.
bool Lookup(const flexbuffers::Map& map, const std::string& key, flexbuffers::Reference* out) {
  flexbuffers::TypedVector keys = map.Keys();
  size_t lo = 0, hi = keys.size();
  while (lo < hi) {  // keys are sorted by strcmp
    size_t mid = lo + (hi - lo) / 2;
    int c = std::strcmp(keys[mid].AsKey(), key.c_str());
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

}  // namespace

bool EncodeIndexFields(std::string_view doc, const std::vector<FieldPath>& paths,
                       std::string* out) {
  auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(doc.data()), doc.size());
  for (const FieldPath& path : paths) {
    flexbuffers::Reference ref = root;
    for (const std::string& part : path) {
      if (!ref.IsMap() || !Lookup(ref.AsMap(), part, &ref)) return false;
    }
    if (!AppendFlexValue(ref, out)) return false;
  }
  return true;
}

}  // namespace cairn::internal
