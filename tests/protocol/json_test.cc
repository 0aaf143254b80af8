// The document codec: JSON <-> FlexBuffers.
#include "cairn/protocol/json.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

std::string RoundTrip(std::string_view json) {
  std::string doc, err;
  EXPECT_TRUE(JsonToDocument(json, &doc, &err)) << err;
  return FlexToJson(doc);
}

TEST(JsonTest, ObjectsRoundTripWithSortedKeys) {
  EXPECT_EQ(RoundTrip(R"({"b": 1, "a": "x", "c": {"z": [1, 2.5, "s", true, null]}})"),
            R"({"a":"x","b":1,"c":{"z":[1,2.5,"s",true,null]}})");
}

TEST(JsonTest, NumbersKeepTheirKind) {
  EXPECT_EQ(RoundTrip(R"({"i": -42, "f": 1.0, "e": 1e3, "big": 9223372036854775807})"),
            R"({"big":9223372036854775807,"e":1000.0,"f":1.0,"i":-42})");
}

TEST(JsonTest, StringsAreEscaped) {
  EXPECT_EQ(RoundTrip(R"({"s": "quote\" backslash\\ tab\t nl\n ctl\u0001 é"})"),
            R"({"s":"quote\" backslash\\ tab\t nl\n ctl\u0001 é"})");
}

TEST(JsonTest, MalformedJsonIsAnErrorWithAMessage) {
  std::string doc, err;
  for (std::string_view bad : {"", "{", "{\"a\":}", "{a: 1}", "nonsense", "{\"a\": 1,}x"}) {
    err.clear();
    EXPECT_FALSE(JsonToDocument(bad, &doc, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
}

TEST(JsonTest, NonObjectsAreNotDocuments) {
  std::string doc, err;
  EXPECT_FALSE(JsonToDocument("[1, 2]", &doc, &err));
  EXPECT_NE(err.find("object"), std::string::npos);
  EXPECT_TRUE(JsonToFlex("[1, 2]", &doc, &err));
  EXPECT_EQ(FlexToJson(doc), "[1,2]");
}

TEST(JsonTest, IntegersBeyondInt64BecomeUintsOrDoubles) {
  EXPECT_EQ(RoundTrip(R"({"u": 18446744073709551615, "i": -9223372036854775808})"),
            R"({"i":-9223372036854775808,"u":18446744073709551615})");
  // Past uint64 a number can only be a double.
  EXPECT_EQ(RoundTrip(R"({"d": 18446744073709551616})"), R"({"d":18446744073709551616.0})");
  std::string doc, err;
  EXPECT_FALSE(JsonToDocument(R"({"d": 1e999})", &doc, &err));
  EXPECT_NE(err.find("out of range"), std::string::npos) << err;
}

TEST(JsonTest, StrictJsonOnly) {
  std::string doc, err;
  for (std::string_view bad :
       {"{'a': 1}", "{\"a\": 01}", "{\"a\": 1,}", "[1,]", "{\"a\": .5}", "{\"a\": +1}",
        "{\"a\": \"tab\there\"}", "{\"a\": NaN}", "{\"a\": 1} x", "{\"a\": \"\\x\"}"}) {
    EXPECT_FALSE(JsonToDocument(bad, &doc, &err)) << bad;
  }
}

TEST(JsonTest, DuplicateKeysAreRefused) {
  std::string doc, err;
  EXPECT_FALSE(JsonToDocument(R"({"a": 1, "b": 2, "a": 3})", &doc, &err));
  EXPECT_NE(err.find("duplicate"), std::string::npos) << err;
}

TEST(JsonTest, UnicodeEscapesBecomeUtf8) {
  EXPECT_EQ(RoundTrip(R"({"s": "\u00e9\u20ac\ud83d\ude00\/"})"), "{\"s\":\"é€😀/\"}");
  std::string doc, err;
  EXPECT_FALSE(JsonToDocument(R"({"s": "\ud83d"})", &doc, &err)) << "lone surrogate";
}

TEST(JsonTest, NestingIsBounded) {
  std::string deep(1000, '[');
  deep += std::string(1000, ']');
  std::string flex, err;
  EXPECT_FALSE(JsonToFlex(deep, &flex, &err));
  EXPECT_NE(err.find("deep"), std::string::npos) << err;
  std::string ok = std::string(60, '[') + std::string(60, ']');
  EXPECT_TRUE(JsonToFlex(ok, &flex, &err)) << err;
}

TEST(JsonTest, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(Base64(""), "");
  EXPECT_EQ(Base64("f"), "Zg==");
  EXPECT_EQ(Base64("fo"), "Zm8=");
  EXPECT_EQ(Base64("foo"), "Zm9v");
  EXPECT_EQ(Base64("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64(std::string("\xff\x00\xfe", 3)), "/wD+");
}

}  // namespace
}  // namespace cairn
