// Reading fields of documents and records, and what the compiler refuses: a Value is a
// view into the bytes it was read from, so reading one from a temporary Document or
// Record (`record.document()["email"]`, which would read freed memory after the
// statement) must not compile. The ASan build runs the runtime half.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "cairn/client/client.h"

namespace cairn::client {
namespace {

// Whether a field can be read from an expression of type T (an rvalue for a non-reference
// T, an lvalue for T&).
template <typename T>
constexpr bool kFieldReadable = requires(T&& t) { static_cast<T&&>(t)["email"]; };
template <typename T>
constexpr bool kRootReadable = requires(T&& t) { static_cast<T&&>(t).root(); };
// The form of issue 9: a field of the Document a record hands out.
template <typename R>
constexpr bool kFieldOfDocumentCopyReadable = requires(const R& r) { r.document()["email"]; };

static_assert(kFieldReadable<Document&>);
static_assert(kFieldReadable<const Document&>);
static_assert(!kFieldReadable<Document>, "a field of a temporary Document would dangle");
static_assert(!kFieldReadable<const Document>);
static_assert(kRootReadable<const Document&>);
static_assert(!kRootReadable<Document>);
static_assert(kFieldReadable<Record&>);
static_assert(kFieldReadable<const Record&>);
static_assert(!kFieldReadable<Record>, "a field of a temporary Record would dangle");
static_assert(!kFieldOfDocumentCopyReadable<Record>);
// A Value read from a lvalue may itself be read further (it views the same bytes).
static_assert(kFieldReadable<Value>);

Record MakeRecord(std::string key, std::string_view json) {
  return Record{std::move(key), 3, ValueKind::kDocument, Document::FromJson(json).bytes()};
}

TEST(DocumentTest, RecordFieldsAreReadInPlaceFromTheRecordsBytes) {
  Record r = MakeRecord("ada", R"({"email": "ada@x", "age": 36, "address": {"city": "London"}})");
  Value email = r["email"];
  Value city = r["address.city"];
  // The temporaries of these statements are gone; the values view r.value.
  std::vector<std::string> noise(64, std::string(200, 'x'));  // reuse of freed memory, if any
  EXPECT_EQ(email.AsString(), "ada@x");
  EXPECT_EQ(city.AsString(), "London");
  EXPECT_EQ(r["age"].AsInt(), 36);
  EXPECT_FALSE(r["nope"].exists());
  EXPECT_FALSE(r["address.nope"].exists());
  EXPECT_FALSE(r["email.deeper"].exists());
  EXPECT_GE(email.ref().AsString().c_str(), r.value.data());
  EXPECT_LT(email.ref().AsString().c_str(), r.value.data() + r.value.size()) << "read in place";

  // A copy of the record has its own bytes.
  Record copy = r;
  Value copied = copy["email"];
  r = MakeRecord("bob", R"({"email": "bob@x"})");
  EXPECT_EQ(copied.AsString(), "ada@x");
  EXPECT_EQ(r["email"].AsString(), "bob@x");
}

TEST(DocumentTest, AKeptDocumentIsTheOtherSafeForm) {
  std::optional<Record> r = MakeRecord("ada", R"({"email": "ada@x", "tags": ["a", "b"]})");
  Document d = r->document();
  Value tags = d["tags"];
  Value root = d.root();
  r.reset();  // the document is a copy: its fields outlive the record
  EXPECT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[1].AsString(), "b");
  EXPECT_EQ(root["email"].AsString(), "ada@x");
  const Document& cd = d;
  EXPECT_EQ(cd["email"].AsString(), "ada@x");
}

TEST(DocumentTest, RecordFieldsOfBytesThatAreNoDocumentThrow) {
  Record raw{"k", 1, ValueKind::kRaw, "not flexbuffers"};
  EXPECT_THROW(raw["email"], Error);
  EXPECT_THROW(raw.document(), Error);
  Record empty{"k", 1, ValueKind::kDocument, ""};
  try {
    empty["x"];
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadRequest);
  }
}

}  // namespace
}  // namespace cairn::client
