#include "custos/mcp/jsonrpc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/matchers.h"

namespace custos::mcp {
namespace {

using ::custos::testing::StatusIs;

TEST(JsonRpcTest, ClassifiesRequestsNotificationsResponsesAndErrors) {
  Result<Message> r = ParseMessage(R"({"jsonrpc":"2.0","id":7,"method":"ping"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_request());
  EXPECT_EQ(r->id, Json(7));
  r = ParseMessage(R"({"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"cursor":"x"}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->id, Json("a"));
  EXPECT_EQ(r->params["cursor"], "x");
  r = ParseMessage(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_notification());
  r = ParseMessage(R"({"jsonrpc":"2.0","id":1,"result":{"tools":[]}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, Message::Type::kResponse);
  r = ParseMessage(R"({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, Message::Type::kError);
  EXPECT_EQ(r->error_code, -32601);
}

TEST(JsonRpcTest, RefusesWhatJsonRpcOrMcpForbids) {
  for (const char* bad : {
           R"({"id":1,"method":"ping"})",                               // no jsonrpc
           R"({"jsonrpc":"1.0","id":1,"method":"ping"})",               // wrong version
           R"({"jsonrpc":"2.0","id":null,"method":"ping"})",            // null id (MCP)
           R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})",             // fractional id
           R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})",  // positional params
           R"({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}})",
           R"({"jsonrpc":"2.0","id":1})",                                     // neither
           R"({"jsonrpc":"2.0","id":1,"method":"ping","extra":1})",           // unknown member
           R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}})",  // bad error
           R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])",                   // batch
       }) {
    EXPECT_THAT(ParseMessage(bad), StatusIs(Reason::kMcpProtocolError)) << bad;
  }
  EXPECT_THAT(ParseMessage("{nope"), StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(ParseMessage(std::string(100, ' ') + "{}", 50), StatusIs(Reason::kPayloadTooLarge));
}

TEST(JsonRpcTest, BatchesKeepGoodMessagesAndReportBadOnesWithTheirIds) {
  Result<Batch> b = ParseBatch(
      R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":3}])");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->was_array);
  ASSERT_EQ(b->messages.size(), 1u);
  ASSERT_EQ(b->bad.size(), 1u);
  EXPECT_EQ(b->bad[0].first, Json(2));
  EXPECT_THAT(ParseBatch("[]"), StatusIs(Reason::kMcpProtocolError));
}

TEST(JsonRpcTest, SerializesOneLineThatParsesBack) {
  Message m = Message::Error(Json("x"), kDenied, "no\nway", {{"reason", "flow_violation"}});
  const std::string line = m.Serialize();
  EXPECT_EQ(line.find('\n'), std::string::npos);
  Result<Message> back = ParseMessage(line);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->error_message, "no\nway");
  EXPECT_EQ(back->error_data["reason"], "flow_violation");
}

TEST(JsonRpcTest, MapsGatewayReasonsToJsonRpcCodes) {
  EXPECT_EQ(ErrorCodeFor(Status(Reason::kMcpUnknownMethod, "")), kMethodNotFound);
  EXPECT_EQ(ErrorCodeFor(Status(Reason::kMalformedJson, "")), kParseError);
  EXPECT_EQ(ErrorCodeFor(Status(Reason::kFlowViolation, "")), kDenied);
  EXPECT_EQ(ErrorCodeFor(Status(Reason::kMcpServerUnavailable, "")), kServerUnavailable);
}

}  // namespace
}  // namespace custos::mcp
