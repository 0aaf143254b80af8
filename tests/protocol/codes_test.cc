// Every outcome code, value kind and index state across the layers: the shared enums
// (cairn/common/codes.h, what the engine and libcairn use), the wire's generated enums
// (protocol/cairn.fbs), cairnd's error responses and libcairn's reading of them.
#include "cairn/common/codes.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "cairn/client/error.h"
#include "cairn/engine/status.h"
#include "cairn/protocol/codes.h"
#include "cairn/protocol/frame.h"
#include "cairn_generated.h"
#include "codec.h"    // libcairn's codec (cairn_client_internal)
#include "convert.h"  // cairnd's conversions

namespace cairn {
namespace {

// "NotFound" and "not found", "ReadOnly" and "read-only": the same letters.
std::string Letters(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalpha(static_cast<unsigned char>(c))) out += char(std::tolower(c));
  }
  return out;
}

bool Named(Code c) { return CodeName(c) != "unknown"; }

TEST(CodesTest, EveryServerCodeIsOnTheWireUnderItsNumberAndName) {
  int server_codes = 0, client_codes = 0;
  for (int v = 0; v < 256; v++) {
    Code code = Code(uint8_t(v));
    std::string wire_name = wire::EnumNameErrorCode(wire::ErrorCode(uint8_t(v)));
    SCOPED_TRACE("code " + std::to_string(v) + " (" + std::string(CodeName(code)) + ", wire '" +
                 wire_name + "')");
    if (v < kFirstClientCode) {
      // A server code exists on both sides or on neither, under the same name.
      EXPECT_EQ(Named(code), !wire_name.empty());
      if (Named(code) && !wire_name.empty()) {
        EXPECT_EQ(Letters(CodeName(code)), Letters(wire_name));
        server_codes++;
      }
    } else {
      EXPECT_TRUE(wire_name.empty()) << "libcairn's own codes never go on the wire";
      client_codes += Named(code);
    }
  }
  EXPECT_EQ(server_codes, int(std::size(wire::EnumValuesErrorCode())));
  EXPECT_EQ(client_codes, 3);  // kTimeout, kConnectionFailed, kProtocol
}

TEST(CodesTest, EveryServerCodeReachesTheClientAsItself) {
  // An engine Status, as cairnd answers it (server::BuildError), read by libcairn
  // (codec::Response throws the client's Error).
  for (wire::ErrorCode w : wire::EnumValuesErrorCode()) {
    Code code = wire::FromWire(w);
    if (code == Code::kOk) continue;
    SCOPED_TRACE(std::string(CodeName(code)));
    EXPECT_EQ(server::ToWire(code, wire::kProtocolVersion), w);
    EXPECT_EQ(wire::ToWire(code), w);
    flatbuffers::FlatBufferBuilder fbb;
    server::BuildError(fbb, 42, Status(code, "the message"), wire::kProtocolVersion);
    std::string_view payload(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    ASSERT_TRUE(wire::VerifyResponseFrame(payload));
    try {
      client::codec::Response(payload);
      ADD_FAILURE() << "an error response must throw";
    } catch (const client::Error& e) {
      EXPECT_EQ(e.code(), code);
      EXPECT_EQ(e.code(), client::ErrorCode(code));
      EXPECT_EQ(e.message(), "the message");
      EXPECT_EQ(e.condition(), -1);
      EXPECT_EQ(e.operation(), -1);
      EXPECT_EQ(client::ErrorCodeName(e.code()), CodeName(code));
    }
  }
}

TEST(CodesTest, CodesNewerThanAConnectionAreSentAsTheCodeTheyRefine) {
  // A client of an older version cannot know the newer codes; it gets the code it would
  // have got before they existed.
  EXPECT_EQ(server::ToWire(Code::kUnknownName, 2), wire::ErrorCode::NotFound);
  EXPECT_EQ(server::ToWire(Code::kUnknownName, 3), wire::ErrorCode::UnknownName);
  for (uint32_t v : {1u, 2u, 3u}) {
    EXPECT_EQ(server::ToWire(Code::kCorrupted, v), wire::ErrorCode::Internal) << "version " << v;
  }
  EXPECT_EQ(server::ToWire(Code::kCorrupted, 4), wire::ErrorCode::Corrupted);
}

TEST(CodesTest, ValueKindsAndIndexStatesMatchTheWire) {
  for (wire::ValueKind w : wire::EnumValuesValueKind()) {
    ValueKind k = wire::FromWire(w);
    EXPECT_EQ(wire::ToWire(k), w);
    EXPECT_EQ(Letters(wire::EnumNameValueKind(w)), k == ValueKind::kDocument ? "document" : "raw");
  }
  EXPECT_EQ(std::size(wire::EnumValuesValueKind()), 2u);
  for (wire::IndexState w : wire::EnumValuesIndexState()) {
    IndexState s = wire::FromWire(w);
    EXPECT_EQ(wire::ToWire(s), w);
    EXPECT_EQ(Letters(wire::EnumNameIndexState(w)), Letters(IndexStateName(s)));
  }
  EXPECT_EQ(std::size(wire::EnumValuesIndexState()), 3u);
}

}  // namespace
}  // namespace cairn
