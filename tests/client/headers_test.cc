// libcairn's client.h and the engine's engine.h in one translation unit (a program that
// embeds an engine and talks to a cairnd, or a test of both): the client's types live in
// cairn::client, the engine's in cairn, so the two sets of records, results and catalog
// descriptions do not collide.
#include "cairn/client/client.h"
#include "cairn/engine/engine.h"

#include <gtest/gtest.h>

#include <type_traits>

namespace {

static_assert(!std::is_same_v<cairn::Record, cairn::client::Record>);
static_assert(!std::is_same_v<cairn::TxnResult, cairn::client::TxnResult>);
static_assert(!std::is_same_v<cairn::CollectionInfo, cairn::client::CollectionInfo>);
// What both layers speak is one type each (cairn/common/codes.h).
static_assert(std::is_same_v<cairn::client::ErrorCode, cairn::Code>);
static_assert(std::is_same_v<cairn::client::ValueKind, cairn::ValueKind>);
static_assert(std::is_same_v<cairn::client::IndexState, cairn::IndexState>);

TEST(HeadersTest, ClientAndEngineTypesLiveSideBySide) {
  // An engine record copied into a client record, field by field, as a program holding
  // both would.
  cairn::Record engine{"ada", 7, cairn::ValueKind::kDocument,
                       cairn::client::Document::FromJson(R"({"email": "ada@x"})").bytes()};
  cairn::client::Record client{engine.key, engine.version, cairn::client::ValueKind::kDocument,
                               engine.value};
  EXPECT_EQ(client.key, "ada");
  EXPECT_EQ(client.version, 7u);
  cairn::client::Document d = client.document();
  EXPECT_EQ(d["email"].AsString(), "ada@x");

  cairn::IndexSpec engine_spec{"by_email", {"email"}, true};
  cairn::client::IndexSpec client_spec{engine_spec.name, engine_spec.fields, engine_spec.unique};
  EXPECT_EQ(client_spec.fields, engine_spec.fields);
  cairn::IndexInfo engine_index{engine_spec, cairn::IndexState::kBuilding, ""};
  cairn::client::IndexInfo client_index{client_spec, engine_index.state, ""};
  EXPECT_EQ(cairn::client::IndexStateName(client_index.state), "building");

  cairn::OpResult engine_op;
  engine_op.records.push_back(engine);
  cairn::client::OpResult client_op;
  client_op.count = engine_op.records.size();
  EXPECT_EQ(client_op.count, 1u);

  cairn::Status st(cairn::Code::kNotFound, "no such collection");
  cairn::client::Error e(st.code(), st.message());  // the engine's code is the client's
  EXPECT_EQ(e.code(), cairn::client::ErrorCode::kNotFound);
  EXPECT_EQ(e.message(), st.message());
  EXPECT_EQ(std::string(e.what()), st.ToString());
}

}  // namespace
