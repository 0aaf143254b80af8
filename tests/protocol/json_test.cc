// The document codec: JSON <-> FlexBuffers.
#include "cairn/protocol/json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <set>

#include "flatbuffers/flexbuffers.h"
#include "strict_utf8.h"

namespace cairn {
namespace {

std::string Bytes(const flexbuffers::Builder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetBuffer().size());
}

std::string ParseError(std::string_view json) {
  std::string doc, err;
  EXPECT_FALSE(JsonToDocument(json, &doc, &err)) << json;
  return err;
}

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

// Every byte FlexToJson writes is valid UTF-8, and what it writes parses back to the same
// bytes: a document built the way the parser builds one (keys in order, untyped vectors)
// comes back byte for byte, whatever its strings, keys and blobs hold.
TEST(JsonTest, EveryKindOfValueRoundTripsByteForByte) {
  const std::string invalid("\xff\xfe\xc0\xaf", 4);
  const std::string with_nul("a\0b", 3);
  flexbuffers::Builder b;
  b.Map([&] {
    b.Key("$bytes");  // a user's key named like a tag
    b.Int(1);
    b.Key("blob");
    b.Blob(std::string("\x00\xff\x80", 3).data(), 3);
    b.Key("bool");
    b.Bool(false);
    b.Key("double");
    b.Double(-0.0);
    b.Key("empty_blob");
    b.Blob(nullptr, 0);
    b.Key("int");
    b.Int(-7);
    b.Key("map");
    b.Map([&] {
      b.Key("ok");
      b.String("text é");
      b.Key(std::string("\xe9t\xe9", 3));  // a Latin-1 key: not UTF-8
      b.Null();
    });
    b.Key("nul");
    b.String(with_nul);
    b.Key("s");
    b.String(invalid);
    b.Key("uint");
    b.UInt(18446744073709551615ull);
    b.Key("vec");
    b.Vector([&] {
      b.String(invalid);
      b.Blob("x", 1);
      b.Map([&] {
        b.Key("$map");
        b.String("not a tag");
      });
      b.Double(2.5);
    });
  });
  b.Finish();
  const std::string doc = Bytes(b);
  const std::string json = FlexToJson(doc);
  EXPECT_TRUE(IsValidUtf8(json)) << json;
  EXPECT_EQ(json,
            "{\"$map\":[[\"$bytes\",1],[\"blob\",{\"$bytes\":\"AP+A\"}],[\"bool\",false],"
            "[\"double\",-0.0],[\"empty_blob\",{\"$bytes\":\"\"}],[\"int\",-7],"
            "[\"map\",{\"$map\":[[\"ok\",\"text é\"],[{\"$string\":\"6XTp\"},null]]}],"
            "[\"nul\",\"a\\u0000b\"],[\"s\",{\"$string\":\"//7Arw==\"}],"
            "[\"uint\",18446744073709551615],"
            "[\"vec\",[{\"$string\":\"//7Arw==\"},{\"$bytes\":\"eA==\"},"
            "{\"$map\":[[\"$map\",\"not a tag\"]]},2.5]]]}");
  std::string back, err;
  ASSERT_TRUE(JsonToDocument(json, &back, &err)) << err;
  EXPECT_EQ(back, doc) << FlexToJson(back);
}

// Random documents, built the way the parser builds them, of every kind of value and of
// strings, keys and blobs of random bytes (NULs, text, tags' names and invalid UTF-8
// among them): each prints as valid UTF-8 JSON that parses back byte for byte.
TEST(JsonTest, RandomDocumentsRoundTripByteForByte) {
  std::mt19937_64 rng(10);
  auto bytes = [&](bool key) {
    static const std::string pieces[] = {"$bytes", "$string", "$map", "a", "é", "😀", "\\", "\"",
                                         "\n", "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82"};
    std::string out;
    for (size_t n = rng() % 4; n > 0; n--) {
      if (rng() % 3 == 0) {
        out += char(rng() % 256);
      } else {
        out += pieces[rng() % std::size(pieces)];
      }
    }
    if (key) out.erase(std::remove(out.begin(), out.end(), '\0'), out.end());
    return out;
  };
  std::function<void(flexbuffers::Builder&, int)> value = [&](flexbuffers::Builder& b, int depth) {
    switch (rng() % (depth < 4 ? 9 : 7)) {
      case 0: b.Null(); break;
      case 1: b.Bool(rng() % 2); break;
      case 2: b.Int(int64_t(rng())); break;
      case 3: b.UInt(rng() | (uint64_t{1} << 63)); break;  // the parser's uints
      case 4: {
        double d;
        uint64_t u = rng();
        std::memcpy(&d, &u, 8);
        b.Double(std::isfinite(d) ? d : 0.25);
        break;
      }
      case 5: b.String(bytes(false)); break;
      case 6: {
        std::string blob = bytes(false);
        b.Blob(blob.data(), blob.size());
        break;
      }
      case 7: {
        std::set<std::string> keys;  // in FlexBuffers' (bytewise) order, as the parser adds them
        for (size_t n = rng() % 4; n > 0; n--) keys.insert(bytes(true));
        size_t start = b.StartMap();
        for (const std::string& k : keys) {
          b.Key(k);
          value(b, depth + 1);
        }
        b.EndMap(start);
        break;
      }
      default: {
        size_t start = b.StartVector();
        for (size_t n = rng() % 4; n > 0; n--) value(b, depth + 1);
        b.EndVector(start, false, false);
      }
    }
  };
  for (int i = 0; i < 3000; i++) {
    flexbuffers::Builder b;
    size_t start = b.StartMap();
    std::set<std::string> keys;
    for (size_t n = rng() % 5; n > 0; n--) keys.insert(bytes(true));
    for (const std::string& k : keys) {
      b.Key(k);
      value(b, 1);
    }
    b.EndMap(start);
    b.Finish();
    const std::string doc = Bytes(b);
    const std::string json = FlexToJson(doc);
    ASSERT_TRUE(testing::IsStrictUtf8(json)) << json;
    std::string back, err;
    ASSERT_TRUE(JsonToDocument(json, &back, &err)) << err << " in " << json;
    ASSERT_EQ(back, doc) << json << " came back as " << FlexToJson(back);
  }
}

// Typed vectors, narrow floats and small uints are encodings the parser does not choose:
// they come back as the same values of the same kinds (docs/client.md), not the same bytes.
TEST(JsonTest, OtherEncodingsKeepTheirValues) {
  flexbuffers::Builder b;
  b.Map([&] {
    b.Key("f");
    b.Float(0.5f);
    b.Key("typed");
    b.TypedVector([&] {
      b.Int(1);
      b.Int(2);
    });
    b.Key("u");
    b.UInt(5);
  });
  b.Finish();
  std::string json = FlexToJson(Bytes(b));
  EXPECT_EQ(json, R"({"f":0.5,"typed":[1,2],"u":5})");
  EXPECT_EQ(RoundTrip(json), json);
}

TEST(JsonTest, TagsStandForBlobsStringsAndMaps) {
  std::string flex, err;
  ASSERT_TRUE(JsonToFlex(R"({"$bytes": "AP8="})", &flex, &err)) << err;
  auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size());
  ASSERT_TRUE(root.IsBlob());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(root.AsBlob().data()), root.AsBlob().size()),
            std::string("\0\xff", 2));
  ASSERT_TRUE(JsonToFlex(R"({"$string": "/w=="})", &flex, &err)) << err;
  root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size());
  ASSERT_TRUE(root.IsString());
  EXPECT_EQ(root.AsString().str(), "\xff");
  // A $string of valid UTF-8 is that string; it prints plain.
  EXPECT_EQ(RoundTrip(R"({"s": {"$string": "w6k="}})"), "{\"s\":\"é\"}");
  // $map pairs hold any key, the tags' names included; keys come out sorted.
  EXPECT_EQ(RoundTrip(R"({"$map": [["z", 1], [{"$string": "/w=="}, 2], ["$string", {}]]})"),
            R"({"$map":[["$string",{}],["z",1],[{"$string":"/w=="},2]]})");
  EXPECT_EQ(RoundTrip(R"({"$map": []})"), "{}");
  EXPECT_EQ(RoundTrip(R"({"$map": [["a", {"$bytes": ""}]]})"), R"({"a":{"$bytes":""}})");
}

TEST(JsonTest, MisusedTagsAreRefusedByName) {
  for (std::string_view bad : {R"({"a": {"$bytes": "AA==", "b": 1}})",
                               R"({"a": {"b": 1, "$bytes": "AA=="}})",
                               R"({"a": 1, "$map": []})"}) {
    std::string err = ParseError(bad);
    EXPECT_NE(err.find("is a tag and has no other member"), std::string::npos) << err;
    EXPECT_NE(err.find("{\"$map\": [["), std::string::npos) << "says how to write it: " << err;
  }
  for (std::string_view bad :
       {R"({"a": {"$bytes": 1}})", R"({"a": {"$bytes": "AP8"}})", R"({"a": {"$bytes": "AP9="}})",
        R"({"a": {"$bytes": "AP-_"}})", R"({"a": {"$string": "A P8="}})"}) {
    std::string err = ParseError(bad);
    EXPECT_NE(err.find("standard base64"), std::string::npos) << bad << ": " << err;
  }
  for (std::string_view bad : {R"({"$map": {"a": 1}})", R"({"$map": [["a"]]})",
                               R"({"$map": [["a", 1, 2]]})", R"({"$map": [[1, 2]]})",
                               R"({"$map": [["a", 1],]})", R"({"$map": [["a", 1] ["b", 2]]})",
                               R"({"$map": [[{"$bytes": "AA=="}, 2]]})"}) {
    std::string err = ParseError(bad);
    EXPECT_NE(err.find("$map"), std::string::npos) << bad << ": " << err;
  }
  EXPECT_NE(ParseError(R"({"$map": [["a", 1], ["a", 2]]})").find("duplicate"), std::string::npos);
  EXPECT_NE(ParseError(R"({"$map": [[{"$string": "YQBi"}, 1]]})").find("NUL"), std::string::npos);
}

TEST(JsonTest, InvalidUtf8IsRefusedSayingWhere) {
  const std::string bad_sequences[] = {
      "\xff", "\x80", "\xc0\xaf",          // not a lead byte, a lone continuation, overlong '/'
      "\xe0\x80\xaf", "\xf0\x80\x80\xaf",  // overlong
      "\xed\xa0\x80",                     // a surrogate, encoded
      "\xf4\x90\x80\x80",                 // above U+10FFFF
      "\xe2\x82",                         // truncated, at the end of the string
      "\xc3(",                             // a lead byte without its continuation
  };
  for (const std::string& seq : bad_sequences) {
    std::string err = ParseError("{\"ab\": \"x" + seq + "\"}");
    EXPECT_NE(err.find("line 1, column 10 (byte 9): invalid UTF-8"), std::string::npos) << err;
    EXPECT_NE(err.find("$string"), std::string::npos) << "says what to write: " << err;
    err = ParseError("{\"x" + seq + "\": 1}");
    EXPECT_NE(err.find("(byte 3): invalid UTF-8"), std::string::npos) << "in a key: " << err;
  }
  EXPECT_NE(ParseError("{\n  \"a\": \"\xff\"\n}").find("line 2, column 9 (byte 10)"),
            std::string::npos);
  for (std::string_view escape : {R"(\ud800)", R"(\udc00)", R"(\ud800\u0041)", R"(\ud83d\ud83d)"}) {
    std::string err = ParseError("{\"a\": \"x" + std::string(escape) + "\"}");
    EXPECT_NE(err.find("(byte 8): a lone"), std::string::npos) << escape << ": " << err;
  }
  // Valid text of every length, up to U+10FFFF.
  EXPECT_EQ(RoundTrip("{\"s\": \"\x7f \xc2\x80 \xdf\xbf \xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf\"}"),
            "{\"s\":\"\x7f \xc2\x80 \xdf\xbf \xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf\"}");
}

TEST(JsonTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));
  EXPECT_TRUE(IsValidUtf8("é€😀\xf4\x8f\xbf\xbf"));
  EXPECT_EQ(ValidUtf8Prefix("ab\xff" "cd"), 2u);
  EXPECT_EQ(ValidUtf8Prefix("é\xe2\x82"), 2u) << "a truncated sequence at the end";
  EXPECT_EQ(ValidUtf8Prefix("\xed\x9f\xbf\xed\xa0\x80"), 3u) << "U+D7FF, then a surrogate";
  EXPECT_EQ(ValidUtf8Prefix("\xf8\x88\x80\x80\x80"), 0u) << "five-byte forms";
}

// The validator against RFC 3629's table (strict_utf8.h): every sequence of up to three
// bytes, and random four- and five-byte ones weighted towards lead and continuation bytes.
TEST(JsonTest, Utf8ValidationAgreesWithTheRfcTable) {
  auto check = [](std::string_view s) {
    ASSERT_EQ(IsValidUtf8(s), testing::IsStrictUtf8(s)) << Base64(s);
  };
  std::string s;
  for (int a = 0; a < 256; a++) {
    for (int b = 0; b < 256; b++) {
      s = {char(a), char(b)};
      check(s);
      if (a < 0xc0) continue;  // three bytes after a lead byte; the rest fail at byte one or two
      for (int c = 0; c < 256; c++) {
        s = {char(a), char(b), char(c)};
        check(s);
      }
    }
  }
  std::mt19937 rng(10);
  const int interesting[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                             0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4,
                             0xf5, 0xf8, 0xff};
  for (int i = 0; i < 200000; i++) {
    s.assign(4 + rng() % 2, '\0');
    for (char& ch : s) {
      ch = char(rng() % 2 ? interesting[rng() % std::size(interesting)] : 0x80 | (rng() % 64));
    }
    check(s);
  }
}

TEST(JsonTest, TextForPeopleIsAlwaysValidUtf8) {
  std::string out;
  AppendJsonText("caf\xe9 \"x\"", &out);
  EXPECT_EQ(out, R"("caf\\xe9 \"x\"")");
  out.clear();
  AppendJsonString("caf\xe9", &out);
  EXPECT_EQ(out, R"({"$string":"Y2Fm6Q=="})") << "data is lossless";
  EXPECT_EQ(PrintableText("k\xff\x1b[2J\n é"), "k\\xff\\x1b[2J\\x0a é");
}

TEST(JsonTest, DecodeBase64IsStrict) {
  std::string out;
  for (std::string_view s : {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYmFy", "/wD+"}) {
    ASSERT_TRUE(DecodeBase64(s, &out)) << s;
    EXPECT_EQ(Base64(out), s);
  }
  for (std::string_view s : {"Zg", "Zg=", "Zh==", "Z===", "====", "Zm9v\n", "-_==", "Zg==Zg=="}) {
    EXPECT_FALSE(DecodeBase64(s, &out)) << s;
  }
}

}  // namespace
}  // namespace cairn
