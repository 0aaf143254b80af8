// CheckFlexBuffer / CheckDocument (cairn/engine/document.h): linear in the buffer's size
// whatever it shares, exact about nesting through shared parts, and accepting what the
// FlexBuffers library's own verifier accepts.
//
// The hostile buffers are written byte by byte (Raw below): no builder writes a vector
// referenced thousands of times, or vectors that overlap.
#include "cairn/engine/document.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cairn/protocol/json.h"
#include "flatbuffers/flexbuffers.h"
#include "flex_raw.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Raw;
using testing::SharedVectorDocument;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// {"v": [v1, ..., v(m-1)]}: vector i starts at the i-th word of one run of m words and ends
// where they end, so the vectors overlap and their elements add up to m*m/2.
std::string OverlappingVectorsDocument(size_t m) {
  Raw r;
  r.Align();
  r.U32(uint32_t(m));  // the size of a vector 0, never referenced
  size_t base = r.pos();
  for (size_t j = 0; j < m; j++) r.U32(uint32_t(m - j - 1));  // word j: the size of vector j+1
  r.Bytes(std::string(m, char(Raw::kInt)));  // type bytes: every vector's start here
  std::vector<Raw::Elem> refs;
  for (size_t i = 1; i < m; i++) refs.push_back(Raw::Ref(base + 4 * i));
  size_t parent = r.Vector(refs);
  return r.Root({{"v", Raw::Ref(parent)}});
}

bool LibraryAccepts(std::string_view buf, size_t max_depth = kMaxDocumentDepth) {
  auto data = reinterpret_cast<const uint8_t*>(buf.data());
  flexbuffers::Verifier v(data, buf.size(), nullptr, /*check_alignment=*/false, max_depth);
  return buf.size() >= 3 && v.VerifyBuffer();
}

TEST(CheckDocumentTest, VectorSharedManyTimesCostsLinearTime) {
  // About 512 KB: 65,536 references to one vector of 16,384 ints, a billion values written
  // out and a billion element visits for a walk that re-checks shared parts. Refused for
  // its size written out, in linear time.
  std::string doc = SharedVectorDocument(65536, 16384);
  ASSERT_GT(doc.size(), 400u << 10);
  auto start = Clock::now();
  Status s = CheckDocument(doc);
  double took = Seconds(start);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("too large written out"), std::string::npos) << s.message();
  EXPECT_LT(took, 0.5) << "a " << doc.size() << "-byte document took " << took << " s";
  std::printf("shared-vector document of %zu bytes refused in %.4f s\n", doc.size(), took);

  // 16,384 references to a vector of 256: the walk without memory runs out of its budget,
  // the memoized walk accepts (4.2 million values written out from 83 KB, within 64 per
  // byte). The library's verifier, for comparison, walks the vector every time.
  std::string small = SharedVectorDocument(16384, 256);
  start = Clock::now();
  bool lib = LibraryAccepts(small);
  double lib_took = Seconds(start);
  start = Clock::now();
  EXPECT_TRUE(CheckDocument(small).ok()) << CheckDocument(small).ToString();
  std::printf("%zu bytes: library verifier %.4f s (accepts: %d), CheckDocument %.6f s\n",
              small.size(), lib_took, int(lib), Seconds(start));
}

// {"v": [c x k]} with c a vector of n ints expands to 5 + k * (n + 1) units: the root map
// (1), its key vector and the key "v" (1 + 2), the vector of references (1), and k copies
// of c (n + 1 each).
uint64_t SharedVectorExpanded(size_t k, size_t n) { return 5 + uint64_t(k) * (n + 1); }

TEST(CheckDocumentTest, ExpansionIsBoundedExactlyAtTheLimit) {
  // For each vector length, the largest k within the bound is accepted and k + 1 (one more
  // reference: 5 more bytes stored, n + 1 more units) is refused. Past n + 1 = 5 * 64 each
  // reference adds more than the bound grows, so the margin shrinks with k and flips once.
  for (size_t n : {1000, 5000, 20000}) {
    auto margin = [n](size_t k) {
      return int64_t(MaxExpandedSize(SharedVectorDocument(k, n).size())) -
             int64_t(SharedVectorExpanded(k, n));
    };
    // About 5 bytes per reference (4 + its type byte, padded to 4): start below the flip.
    size_t fixed = SharedVectorDocument(0, n).size();
    size_t k = (64 * fixed + kExpansionAllowance) / (n + 1 - 64 * 5);
    k = k > 8 ? k - 8 : 0;
    ASSERT_GE(margin(k), 0) << "n " << n << " k " << k;
    while (margin(k + 1) >= 0) k++;
    std::string fits = SharedVectorDocument(k, n), over = SharedVectorDocument(k + 1, n);
    EXPECT_TRUE(CheckDocument(fits).ok()) << "n " << n << " k " << k << ": "
                                          << CheckDocument(fits).ToString();
    Status s = CheckDocument(over);
    EXPECT_EQ(s.code(), Code::kBadRequest) << "n " << n << " k " << k + 1;
    EXPECT_NE(s.message().find("too large written out"), std::string::npos) << s.message();
    // What is accepted is what FlexToJson writes out: bounded by the same count.
    EXPECT_LT(FlexToJson(fits).size(), 4 * SharedVectorExpanded(k, n));
    // Verify's check is well-formedness only: a large document is not a damaged one.
    EXPECT_TRUE(CheckDocument(over, Expansion::kUnbounded).ok());
  }
  // Below 320 units a reference, the bound grows faster than the document: any k fits.
  EXPECT_TRUE(CheckDocument(SharedVectorDocument(100000, 64)).ok());
}

TEST(CheckDocumentTest, SharedStringsAndKeysCountAtEveryReference) {
  // A string of 60,000 bytes referenced 100 times: 6 MB written out from 60 KB.
  flexbuffers::Builder b(1024, flexbuffers::BUILDER_FLAG_SHARE_ALL);
  std::string big(60000, 'x');
  b.Map([&] {
    b.Vector("v", [&] {
      for (int i = 0; i < 100; i++) b.String(big);
    });
  });
  b.Finish();
  std::string doc(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
  ASSERT_LT(doc.size(), 61000u) << "the builder shared the string";
  Status s = CheckDocument(doc);
  EXPECT_NE(s.message().find("too large written out"), std::string::npos) << s.ToString();
  // The same, referenced 50 times: 3 MB from 60 KB is within 64 per byte plus 64 KiB.
  flexbuffers::Builder fifty(1024, flexbuffers::BUILDER_FLAG_SHARE_ALL);
  fifty.Map([&] {
    fifty.Vector("v", [&] {
      for (int i = 0; i < 50; i++) fifty.String(big);
    });
  });
  fifty.Finish();
  std::string ok(reinterpret_cast<const char*>(fifty.GetBuffer().data()), fifty.GetSize());
  EXPECT_TRUE(CheckDocument(ok).ok()) << CheckDocument(ok).ToString();
}

// Found by fuzz/document_fuzz (the campaign of 2026-12-02): 1,165 bytes, accepted, that
// FlexToJson wrote out as 2,686,444,102 bytes of JSON in 9.6 s. Every input kept in
// fuzz/findings/document_fuzz is refused now, or writes out within the bound.
TEST(CheckDocumentTest, FuzzFindingsAreRefusedOrWriteOutWithinTheBound) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CAIRN_FUZZ_FINDINGS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    files++;
    auto start = Clock::now();
    Status s = CheckDocument(doc);
    EXPECT_LT(Seconds(start), 0.5) << entry.path();
    if (s.ok()) {
      EXPECT_LT(FlexToJson(doc).size(), 32 * MaxExpandedSize(doc.size())) << entry.path();
    } else {
      std::printf("%s: %s\n", entry.path().filename().c_str(), s.message().c_str());
    }
    if (entry.path().filename() == "amplification.flex") {
      EXPECT_EQ(doc.size(), 1165u);
      EXPECT_NE(s.message().find("too large written out"), std::string::npos) << s.ToString();
    }
  }
  EXPECT_GE(files, 1) << "no findings in " << CAIRN_FUZZ_FINDINGS;
}

TEST(CheckDocumentTest, OverlappingVectorsAreRefusedQuickly) {
  // 20,000 vectors whose elements overlap: 2 * 10^8 element visits in 200 KB, and no part is
  // referenced twice, so remembering checked parts does not help. Refused, in linear time.
  std::string doc = OverlappingVectorsDocument(20000);
  ASSERT_GT(doc.size(), 150u << 10);
  auto start = Clock::now();
  Status s = CheckDocument(doc);
  double took = Seconds(start);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("too costly"), std::string::npos) << s.message();
  EXPECT_LT(took, 0.5);
  // A small one is valid and cheap enough: it is checked, not refused.
  EXPECT_TRUE(CheckDocument(OverlappingVectorsDocument(8)).ok());
  EXPECT_TRUE(LibraryAccepts(OverlappingVectorsDocument(8)));
}

TEST(CheckDocumentTest, SharedKeysAndKeyVectorsFromTheBuilderAreAccepted) {
  // 5,000 maps with the same keys, every key and key vector shared (the builder's pooling):
  // the walk without memory runs out of its budget, the memoized one accepts. (The library's
  // reuse tracker refuses this: in 2.0.8 every reuse counts as one more level of nesting.)
  flexbuffers::Builder b(1024, flexbuffers::BUILDER_FLAG_SHARE_ALL);
  b.Map([&] {
    b.Vector("items", [&] {
      for (int i = 0; i < 5000; i++) {
        b.Map([&] {
          b.Int("a_rather_long_field_name_shared_by_every_item", i);
          b.String("another_long_field_name_for_the_name", "same");
        });
      }
    });
  });
  b.Finish();
  std::string doc(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
  EXPECT_TRUE(CheckDocument(doc).ok()) << CheckDocument(doc).ToString();
  EXPECT_TRUE(LibraryAccepts(doc));
  std::vector<uint8_t> tracker;
  flexbuffers::Verifier with_tracker(reinterpret_cast<const uint8_t*>(doc.data()), doc.size(),
                                     &tracker, false, kMaxDocumentDepth);
  EXPECT_FALSE(with_tracker.VerifyBuffer()) << "the library's tracker no longer leaks depth: "
                                               "it could replace CheckFlexBuffer's memo";
}

// Found by fuzz/document_fuzz: a map whose keys are out of order passed the check, and
// then read inconsistently: readers find fields by binary search (an index on "u" missed
// the record's "u"), while FlexToJson showed every key, in stored order. Repeated keys gave
// a field two values. Both are refused now; what builders write is not.
TEST(CheckDocumentTest, MapKeysMustBeSortedAndDistinct) {
  flexbuffers::Builder b;
  b.Map([&] {
    b.Int("a", 1);
    b.Int("b", 2);
    b.Int("c", 3);
  });
  b.Finish();
  std::string good(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
  ASSERT_TRUE(CheckDocument(good).ok()) << CheckDocument(good).ToString();
  // The key strings are stored in the order they were given; the key vector points at
  // them sorted. Rewriting their bytes reorders (or repeats) the keys without moving them.
  size_t a = good.find(std::string("a\0", 2)), c = good.find(std::string("c\0", 2));
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(c, std::string::npos);
  std::string unsorted = good;
  std::swap(unsorted[a], unsorted[c]);  // keys "c", "b", "a"
  Status s = CheckDocument(unsorted);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("map keys not sorted"), std::string::npos) << s.ToString();
  std::string repeated = good;
  repeated[a] = 'b';  // keys "b", "b", "c"
  s = CheckDocument(repeated);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("map keys not sorted, or repeated"), std::string::npos)
      << s.ToString();
  // The same deep inside a document, and as the fuzzer found it (keys "", "ype!d", "u").
  std::string nested, error;
  ASSERT_TRUE(JsonToDocument(R"({"x": [{"y": {"a": 1, "b": 2, "c": 3}}]})", &nested, &error));
  ASSERT_TRUE(CheckDocument(nested).ok());
  size_t na = nested.find(std::string("a\0", 2)), nc = nested.find(std::string("c\0", 2));
  std::swap(nested[na], nested[nc]);
  EXPECT_EQ(CheckDocument(nested).code(), Code::kBadRequest);
  const unsigned char found[] = {
      0x66, 0x00, 0x74, 0x79, 0x70, 0x65, 0x21, 0x64, 0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x75,
      0x00, 0x03, 0x10, 0x0f, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x1b, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
      0x0e, 0x28, 0x06, 0x0f, 0x26, 0x01};
  EXPECT_EQ(CheckDocument(std::string(reinterpret_cast<const char*>(found), sizeof found)).code(),
            Code::kBadRequest);
}

// A chain of `n` vectors, each holding the next (the last holds an int); returns the first.
size_t Chain(Raw& r, size_t n, std::optional<size_t> last_target = std::nullopt) {
  size_t p = last_target ? r.Vector({Raw::Ref(*last_target)}) : r.Vector({Raw::Int(1)});
  for (size_t i = 1; i < n; i++) p = r.Vector({Raw::Ref(p)});
  return p;
}

TEST(CheckDocumentTest, NestingThroughASharedPartIsCountedWhereverItIsReferenced) {
  // {"a": <shared>x65536, "b": A (40 levels), "c": B (b_levels) -> A}. "a" makes the check
  // remember parts; A is checked under "b" first (levels 2 to 41), then met again under
  // "c" at level 2 + b_levels: 64 levels at most.
  auto doc = [](size_t b_levels) {
    Raw r;
    size_t child = r.Vector(std::vector<Raw::Elem>(64, Raw::Int(0)));
    size_t shared = r.Vector(std::vector<Raw::Elem>(65536, Raw::Ref(child)));
    size_t a = Chain(r, 40);
    size_t b = Chain(r, b_levels, a);
    return r.Root({{"a", Raw::Ref(shared)}, {"b", Raw::Ref(a)}, {"c", Raw::Ref(b)}});
  };
  EXPECT_TRUE(CheckDocument(doc(23)).ok()) << CheckDocument(doc(23)).ToString();  // 64 levels
  Status deep = CheckDocument(doc(24));                                            // 65
  EXPECT_EQ(deep.code(), Code::kBadRequest);
  EXPECT_NE(deep.message().find("nested too deeply"), std::string::npos) << deep.message();
  EXPECT_TRUE(LibraryAccepts(doc(23)));
  EXPECT_FALSE(LibraryAccepts(doc(24)));
}

TEST(CheckDocumentTest, ACycleIsRefused) {
  // A vector that holds itself: offset 0 from its only element to ... its own first element.
  Raw r;
  size_t v = r.Vector({Raw::Int(0)});
  std::string doc = r.Root({{"v", Raw::Ref(v)}});
  // Point the element back at the vector itself (offset 0 from the element, at v).
  for (int i = 0; i < 4; i++) doc[v + i] = 0;
  doc[v + 4] = char(Raw::kVector);
  EXPECT_EQ(CheckDocument(doc).code(), Code::kBadRequest);
  EXPECT_FALSE(LibraryAccepts(doc));
}

TEST(CheckDocumentTest, AgreesWithTheLibraryOnMutatedDocuments) {
  // Random edits of valid documents. Whatever CheckFlexBuffer accepts, the library's
  // verifier accepts too, and it can be read whole (under ASan an out-of-bounds read would
  // fail here). What the library accepts and CheckFlexBuffer does not is a laxity of the
  // library's (2.0.8): a string whose terminator byte is not 0 (it checks only that the
  // byte is in the buffer), a key with no terminator (its loop returns at the first
  // non-zero byte), a deprecated vector of strings whose elements it checks as keys, a map
  // whose keys are out of order or repeated, or not as many as its values.
  std::vector<std::string> seeds;
  for (const char* json :
       {R"({"a": 1, "b": [1, 2.5, "x", null, true], "c": {"d": {"e": "deep"}}})",
        R"({"name": "cairn", "tags": ["x", "y", "z"], "n": -70000, "f": 1e300})",
        R"({"k": [[1, 2], [3, 4], {"x": "y"}], "blob": "aGVsbG8="})"}) {
    std::string doc, error;
    ASSERT_TRUE(JsonToFlex(json, &doc, &error)) << json << ": " << error;
    seeds.push_back(doc);
  }
  uint64_t seed = 20261201;
  std::mt19937_64 rng(seed);
  int library_accepts = 0, we_accept = 0, library_laxities = 0;
  for (int round = 0; round < 20000; round++) {
    std::string doc = seeds[rng() % seeds.size()];
    int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; e++) doc[rng() % doc.size()] = char(rng());
    bool lib = LibraryAccepts(doc);
    Status ours = CheckFlexBuffer(doc, kMaxDocumentDepth);
    library_accepts += lib;
    we_accept += ours.ok();
    if (ours.ok()) {
      EXPECT_TRUE(lib) << "seed " << seed << " round " << round;
      (void)FlexToJson(doc);
    } else if (lib) {
      library_laxities++;
      const std::string& m = ours.message();
      EXPECT_TRUE(m.find("string not terminated") != std::string::npos ||
                  m.find("key not terminated") != std::string::npos ||
                  m.find("string or blob past the end") != std::string::npos ||
                  m.find("map keys not sorted") != std::string::npos ||
                  m.find("more keys than values") != std::string::npos)
          << "seed " << seed << " round " << round << ": " << m;
    }
  }
  std::printf("of 20000 mutations: library accepts %d, CheckFlexBuffer %d (%d refused for "
              "the library's laxities)\n",
              library_accepts, we_accept, library_laxities);
  EXPECT_GT(we_accept, 1000);
}

}  // namespace
}  // namespace cairn
