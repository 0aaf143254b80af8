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

}  // namespace
}  // namespace cairn
