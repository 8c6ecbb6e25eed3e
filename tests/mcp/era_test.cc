#include "custos/mcp/era.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "testing/matchers.h"

namespace custos::mcp {
namespace {

using ::custos::testing::StatusIs;
using ::testing::HasSubstr;

Json Meta(std::string version = "2026-07-28") {
  return {{"io.modelcontextprotocol/protocolVersion", version},
          {"io.modelcontextprotocol/clientCapabilities", Json::object()},
          {"io.modelcontextprotocol/clientInfo", {{"name", "c"}, {"version", "1"}}}};
}

Message Req(std::string method, Json params) {
  return Message::Request(1, std::move(method), std::move(params));
}

TEST(EraTest, StatelessEraIsEveryRevisionFrom20260728) {
  EXPECT_TRUE(IsStatelessEra("2026-07-28"));
  EXPECT_TRUE(IsStatelessEra("2027-01-01"));
  EXPECT_FALSE(IsStatelessEra("2025-11-25"));
  EXPECT_FALSE(IsStatelessEra("latest"));
  EXPECT_FALSE(IsStatelessEra(""));
}

TEST(EraTest, EnvelopeClaimIsTheProtocolVersionKey) {
  EXPECT_TRUE(HasEnvelopeClaim({{"_meta", Meta()}}));
  EXPECT_FALSE(HasEnvelopeClaim({{"_meta", {{"progressToken", 1}}}}));
  EXPECT_FALSE(HasEnvelopeClaim(Json::object()));
  EXPECT_FALSE(HasEnvelopeClaim(nullptr));
}

TEST(EraTest, ParsesAValidEnvelope) {
  Result<Envelope> e = ParseEnvelope({{"_meta", Meta()}});
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->protocol_version, "2026-07-28");
  EXPECT_EQ(e->client_info["name"], "c");
  // clientInfo is optional (the SDK demoted it to SHOULD).
  Json m = Meta();
  m.erase("io.modelcontextprotocol/clientInfo");
  EXPECT_TRUE(ParseEnvelope({{"_meta", m}}).ok());
}

TEST(EraTest, EnvelopeErrorsNameTheKey) {
  Json m = Meta();
  m.erase("io.modelcontextprotocol/clientCapabilities");
  Result<Envelope> e = ParseEnvelope({{"_meta", m}});
  EXPECT_THAT(e, StatusIs(Reason::kMcpEnvelopeInvalid));
  EXPECT_THAT(std::string(e.status().message()),
              HasSubstr("io.modelcontextprotocol/clientCapabilities: missing"));
  m = Meta();
  m["io.modelcontextprotocol/protocolVersion"] = 20260728;
  EXPECT_THAT(ParseEnvelope({{"_meta", m}}), StatusIs(Reason::kMcpEnvelopeInvalid));
  m = Meta();
  m["io.modelcontextprotocol/clientInfo"] = "me";
  EXPECT_THAT(ParseEnvelope({{"_meta", m}}), StatusIs(Reason::kMcpEnvelopeInvalid));
  EXPECT_THAT(ParseEnvelope(Json::object()), StatusIs(Reason::kMcpEnvelopeInvalid));
}

TEST(EraTest, UnknownStatelessRevisionIsUnsupported) {
  EXPECT_THAT(ParseEnvelope({{"_meta", Meta("2027-01-01")}}),
              StatusIs(Reason::kMcpVersionUnsupported));
  Message m = UnsupportedVersionError(4, "2027-01-01");
  EXPECT_EQ(m.error_code, -32022);
  EXPECT_EQ(m.error_data["supported"], Json::array({"2026-07-28"}));
  EXPECT_EQ(m.error_data["requested"], "2027-01-01");
}

TEST(EraTest, StripEnvelopeKeepsOtherMetaKeys) {
  Json m = Meta();
  m["progressToken"] = 3;
  Json p = StripEnvelope({{"name", "x"}, {"_meta", m}});
  EXPECT_EQ(p, (Json{{"name", "x"}, {"_meta", {{"progressToken", 3}}}}));
  EXPECT_EQ(StripEnvelope({{"_meta", Meta()}}), Json::object());
}

TEST(EraTest, EnvelopeMetaRoundTrips) {
  Envelope e;
  e.protocol_version = "2026-07-28";
  e.client_capabilities = {{"sampling", Json::object()}};
  Result<Envelope> back = ParseEnvelope({{"_meta", EnvelopeMeta(e)}});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->client_capabilities, e.client_capabilities);
  EXPECT_TRUE(back->client_info.is_null());
}

TEST(EraTest, StatelessResultsCarryResultTypeCacheFieldsAndServerInfo) {
  const Json info = {{"name", "g"}, {"version", "1"}};
  Json r = {{"tools", Json::array()}};
  ToStatelessResult("tools/list", info, &r);
  EXPECT_EQ(r["resultType"], "complete");
  EXPECT_EQ(r["ttlMs"], 0);
  EXPECT_EQ(r["cacheScope"], "private");
  EXPECT_EQ(r["_meta"]["io.modelcontextprotocol/serverInfo"], info);
  Json c = {{"content", Json::array()}};
  ToStatelessResult("tools/call", info, &c);
  EXPECT_EQ(c["resultType"], "complete");
  EXPECT_FALSE(c.contains("ttlMs"));
}

TEST(EraTest, FromStatelessResultStripsEraFieldsAndKeepsInputRequiredOfMultiRoundTripMethods) {
  Json r = {{"tools", Json::array()},
            {"resultType", "complete"},
            {"ttlMs", 5},
            {"cacheScope", "public"},
            {"_meta", {{"io.modelcontextprotocol/serverInfo", {{"name", "s"}}}}}};
  ASSERT_TRUE(FromStatelessResult("tools/list", &r).ok());
  EXPECT_EQ(r, (Json{{"tools", Json::array()}}));
  // tools/call, prompts/get and resources/read may ask for input: the gateway fulfils it.
  Json ir = {{"resultType", "input_required"},
             {"requestState", "s"},
             {"_meta", {{"io.modelcontextprotocol/serverInfo", {{"name", "s"}}}}}};
  ASSERT_TRUE(FromStatelessResult("tools/call", &ir).ok());
  EXPECT_EQ(ir, (Json{{"resultType", "input_required"}, {"requestState", "s"}}));
  // Other methods may not; an unknown resultType is refused everywhere.
  Json list_ir = {{"resultType", "input_required"}, {"requestState", "s"}};
  EXPECT_THAT(FromStatelessResult("tools/list", &list_ir), StatusIs(Reason::kMcpProtocolError));
  Json odd = {{"resultType", "task"}};
  EXPECT_THAT(FromStatelessResult("tools/call", &odd), StatusIs(Reason::kMcpProtocolError));
}

TEST(EraTest, InputRequiredIsParsedAndChecked) {
  const Json ok = {{"resultType", "input_required"},
                   {"requestState", "opaque"},
                   {"inputRequests",
                    {{"e", {{"method", "elicitation/create"}, {"params", {{"message", "m"}}}}},
                     {"r", {{"method", "roots/list"}}}}}};
  EXPECT_TRUE(IsInputRequired("prompts/get", ok));
  EXPECT_FALSE(IsInputRequired("tools/list", ok));
  Result<InputRequired> ir = ParseInputRequired(ok);
  ASSERT_TRUE(ir.ok()) << ir.status().ToString();
  ASSERT_EQ(ir->requests.size(), 2u);
  EXPECT_EQ(ir->requests[0].key, "e");
  EXPECT_EQ(ir->requests[0].method, "elicitation/create");
  EXPECT_EQ(ir->requests[1].params, Json::object());  // roots/list may omit its params
  EXPECT_EQ(ir->request_state, "opaque");
  auto refused = [](Json j) {
    Result<InputRequired> r = ParseInputRequired(j);
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_THAT(refused({{"resultType", "input_required"}}), HasSubstr("neither"));
  EXPECT_THAT(refused({{"requestState", 5}}), HasSubstr("requestState must be a string"));
  EXPECT_THAT(refused({{"inputRequests", {{"x", {{"method", "tools/call"}, {"params", {}}}}}}}),
              HasSubstr("is not an embedded"));
  EXPECT_THAT(refused({{"inputRequests", {{"x", {{"method", "sampling/createMessage"}}}}}}),
              HasSubstr("no params object"));
  Json many = Json::object();
  for (int i = 0; i <= static_cast<int>(kMaxInputRequests); ++i)
    many["k" + std::to_string(i)] = {{"method", "roots/list"}};
  EXPECT_THAT(refused({{"inputRequests", many}}), HasSubstr("more than"));
  // And the shape the gateway sends a stateless client.
  const Json made = MakeInputRequired({{"custos-1", "roots/list", Json::object()}}, "st");
  EXPECT_EQ(made["resultType"], "input_required");
  EXPECT_EQ(made["requestState"], "st");
  EXPECT_EQ(made["inputRequests"]["custos-1"]["method"], "roots/list");
  EXPECT_TRUE(ParseInputRequired(made).ok());
}

TEST(EraTest, GatewayEnvelopeReplacesAnyEnvelopeAndKeepsOtherMeta) {
  const Json p = WithGatewayEnvelope(
      {{"name", "t"},
       {"_meta",
        {{"progressToken", 7}, {"io.modelcontextprotocol/clientCapabilities", {{"x", 1}}}}}},
      {{"elicitation", Json::object()}});
  EXPECT_EQ(p["name"], "t");
  EXPECT_EQ(p["_meta"]["progressToken"], 7);
  EXPECT_EQ(p["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
  EXPECT_EQ(p["_meta"]["io.modelcontextprotocol/clientCapabilities"],
            (Json{{"elicitation", Json::object()}}));
  EXPECT_EQ(p["_meta"]["io.modelcontextprotocol/clientInfo"]["name"], "custos-mcp-gateway");
  EXPECT_EQ(WithGatewayEnvelope(Json::object(),
                                nullptr)["_meta"]["io.modelcontextprotocol/clientCapabilities"],
            Json::object());
}

TEST(EraTest, HeaderValuesAreEncodedAsTheSdkDoes) {
  EXPECT_EQ(EncodeMcpHeaderValue("fs.read_file"), "fs.read_file");
  EXPECT_EQ(EncodeMcpHeaderValue("file:///a b"), "file:///a b");
  EXPECT_EQ(EncodeMcpHeaderValue(""),
            "=?base64?"
            "?=");
  EXPECT_EQ(EncodeMcpHeaderValue(" x"), "=?base64?IHg=?=");
  EXPECT_EQ(EncodeMcpHeaderValue("caf\xc3\xa9"), "=?base64?Y2Fmw6k=?=");
  EXPECT_EQ(EncodeMcpHeaderValue("=?base64?x?="), "=?base64?PT9iYXNlNjQ/eD89?=");
  // What it encodes, the header check decodes back to the body's value.
  const Message m = Req("tools/call", {{"name", "caf\xc3\xa9"}, {"_meta", Meta()}});
  EXPECT_TRUE(
      ValidateMcpHttpHeaders({"2026-07-28", "tools/call", EncodeMcpHeaderValue("caf\xc3\xa9")}, m)
          .ok());
}

TEST(EraTest, ResourceNotFoundIsInvalidParamsInTheStatelessEra) {
  EXPECT_EQ(ErrorCodeForEra(-32002, true), -32602);
  EXPECT_EQ(ErrorCodeForEra(-32002, false), -32002);
  EXPECT_EQ(ErrorCodeForEra(-32601, true), -32601);
}

TEST(EraTest, StatelessMethodRegistry) {
  EXPECT_TRUE(IsStatelessMethod("server/discover"));
  EXPECT_TRUE(IsStatelessMethod("tools/call"));
  EXPECT_FALSE(IsStatelessMethod("initialize"));
  EXPECT_FALSE(IsStatelessMethod("ping"));
  EXPECT_FALSE(IsStatelessMethod("logging/setLevel"));
  EXPECT_FALSE(IsStatelessMethod("resources/subscribe"));
}

// ---- Streamable HTTP header rules ----

McpHttpHeaders H(std::optional<std::string> v, std::optional<std::string> m,
                 std::optional<std::string> n = std::nullopt) {
  return {std::move(v), std::move(m), std::move(n)};
}

TEST(McpHttpHeadersTest, MatchingHeadersPass) {
  Message m = Req("tools/call", {{"name", "fs.read"}, {"_meta", Meta()}});
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2026-07-28", "tools/call", "fs.read"), m).ok());
  // Optional whitespace around values is not part of them.
  EXPECT_TRUE(ValidateMcpHttpHeaders(H(" 2026-07-28", "tools/call\t", " fs.read "), m).ok());
  Message list = Req("tools/list", {{"_meta", Meta()}});
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2026-07-28", "tools/list"), list).ok());
}

TEST(McpHttpHeadersTest, MethodHeaderMustMatchTheBody) {
  Message m = Req("tools/list", {{"_meta", Meta()}});
  Status st = ValidateMcpHttpHeaders(H("2026-07-28", "tools/call"), m);
  EXPECT_THAT(st, StatusIs(Reason::kMcpHeaderMismatch));
  EXPECT_THAT(std::string(st.message()), HasSubstr("Mcp-Method header names \"tools/call\""));
  EXPECT_EQ(ErrorCodeFor(st), -32020);
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2026-07-28", std::nullopt), m),
              StatusIs(Reason::kMcpHeaderMismatch));
}

TEST(McpHttpHeadersTest, VersionHeaderMustBePresentAndMatchTheEnvelope) {
  Message m = Req("tools/list", {{"_meta", Meta()}});
  EXPECT_THAT(ValidateMcpHttpHeaders(H(std::nullopt, "tools/list"), m),
              StatusIs(Reason::kMcpHeaderMismatch));
  Status st = ValidateMcpHttpHeaders(H("2025-11-25", "tools/list"), m);
  EXPECT_THAT(st, StatusIs(Reason::kMcpHeaderMismatch));
  EXPECT_THAT(std::string(st.message()), HasSubstr("params._meta names \"2026-07-28\""));
}

TEST(McpHttpHeadersTest, NameHeaderMirrorsNameOrUri) {
  Message call = Req("tools/call", {{"name", "fs.read"}, {"_meta", Meta()}});
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2026-07-28", "tools/call"), call),
              StatusIs(Reason::kMcpHeaderMismatch));
  Status st = ValidateMcpHttpHeaders(H("2026-07-28", "tools/call", "fs.write"), call);
  EXPECT_THAT(st, StatusIs(Reason::kMcpHeaderMismatch));
  EXPECT_THAT(std::string(st.message()), HasSubstr("params.name is \"fs.read\""));
  Message read = Req("resources/read", {{"uri", "fs+file:///a"}, {"_meta", Meta()}});
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2026-07-28", "resources/read", "fs+file:///a"), read).ok());
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2026-07-28", "resources/read", "fs+file:///b"), read),
              StatusIs(Reason::kMcpHeaderMismatch));
  Message prompt = Req("prompts/get", {{"name", "p.x"}, {"_meta", Meta()}});
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2026-07-28", "prompts/get", "p.x"), prompt).ok());
}

TEST(McpHttpHeadersTest, NameHeaderBase64Sentinel) {
  Message call = Req("tools/call", {{"name", "é"}, {"_meta", Meta()}});
  // "é" is C3 A9 → "w6k=".
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2026-07-28", "tools/call", "=?base64?w6k=?="), call).ok());
  Status st = ValidateMcpHttpHeaders(H("2026-07-28", "tools/call", "=?base64?w6k?="), call);
  EXPECT_THAT(st, StatusIs(Reason::kMcpHeaderMismatch));
  EXPECT_THAT(std::string(st.message()), HasSubstr("invalid =?base64?"));
  // Valid base64 of bytes that are not UTF-8.
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2026-07-28", "tools/call", "=?base64?/w==?="), call),
              StatusIs(Reason::kMcpHeaderMismatch));
}

TEST(McpHttpHeadersTest, NotificationsAreCheckedOnlyForTheHeadersTheyCarry) {
  Message n =
      Message::Notification("notifications/cancelled", {{"requestId", 1}, {"_meta", Meta()}});
  EXPECT_TRUE(ValidateMcpHttpHeaders(H(std::nullopt, std::nullopt), n).ok());
  EXPECT_THAT(ValidateMcpHttpHeaders(H(std::nullopt, "notifications/progress"), n),
              StatusIs(Reason::kMcpHeaderMismatch));
}

TEST(McpHttpHeadersTest, LegacyTrafficRules) {
  Message init = Req("initialize", {{"protocolVersion", "2025-11-25"}});
  EXPECT_TRUE(ValidateMcpHttpHeaders(H(std::nullopt, std::nullopt), init).ok());
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2026-07-28", std::nullopt), init),
              StatusIs(Reason::kMcpHeaderMismatch));
  Message list = Req("tools/list", Json::object());
  // Mcp-Method did not exist in the 2025 eras: not checked there.
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2025-06-18", "whatever"), list).ok());
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2026-07-28", "tools/list"), list),
              StatusIs(Reason::kMcpEnvelopeInvalid));
  EXPECT_THAT(ValidateMcpHttpHeaders(H("2024-01-01", std::nullopt), list),
              StatusIs(Reason::kMcpVersionUnsupported));
  Message resp = Message::Response(1, Json::object());
  EXPECT_TRUE(ValidateMcpHttpHeaders(H("2024-01-01", "x"), resp).ok());
}

TEST(McpHttpHeadersTest, MalformedClaimIsAnEnvelopeError) {
  Json m = Meta();
  m["io.modelcontextprotocol/protocolVersion"] = 1;
  EXPECT_THAT(
      ValidateMcpHttpHeaders(H("2026-07-28", "tools/list"), Req("tools/list", {{"_meta", m}})),
      StatusIs(Reason::kMcpEnvelopeInvalid));
}

// ---- Mcp-Param-* (x-mcp-header) ----

const Json kSqlSchema = Json::parse(R"({
  "type": "object",
  "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "limit": {"type": "integer", "x-mcp-header": "Limit"},
    "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}}},
    "query": {"type": "string"}
  }
})");

std::function<std::optional<std::string>(std::string_view)> Headers(
    std::map<std::string, std::string> h) {
  return [h = std::move(h)](std::string_view name) -> std::optional<std::string> {
    for (const auto& [k, v] : h) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return std::nullopt;
  };
}

TEST(McpParamHeadersTest, ScansDeclarationsThroughProperties) {
  Result<std::vector<McpParamHeader>> d = ScanMcpParamHeaders(kSqlSchema);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d->size(), 3u);
  auto dry = std::find_if(d->begin(), d->end(),
                          [](const McpParamHeader& h) { return h.header == "Mcp-Param-Dry"; });
  ASSERT_NE(dry, d->end());
  EXPECT_EQ(dry->path, (std::vector<std::string>{"opts", "dry"}));
  EXPECT_EQ(dry->type, "boolean");
}

TEST(McpParamHeadersTest, InvalidDeclarationsAreRefused) {
  auto scan = [](const char* schema) { return ScanMcpParamHeaders(Json::parse(schema)); };
  EXPECT_THAT(scan(R"({"properties":{"a":{"type":"object","x-mcp-header":"A"}}})"),
              StatusIs(Reason::kMcpProtocolError));
  EXPECT_THAT(scan(R"({"properties":{"a":{"type":"string","x-mcp-header":"A B"}}})"),
              StatusIs(Reason::kMcpProtocolError));
  EXPECT_THAT(scan(R"({"properties":{"a":{"type":"string","x-mcp-header":"X"},
                                     "b":{"type":"string","x-mcp-header":"x"}}})"),
              StatusIs(Reason::kMcpProtocolError));
  EXPECT_THAT(scan(R"({"properties":{"a":{"type":"array",
                     "items":{"type":"string","x-mcp-header":"I"}}}})"),
              StatusIs(Reason::kMcpProtocolError));
  EXPECT_THAT(scan(R"({"anyOf":[{"properties":{"a":{"type":"string","x-mcp-header":"A"}}}]})"),
              StatusIs(Reason::kMcpProtocolError));
}

TEST(McpParamHeadersTest, HeadersMustMirrorTheArguments) {
  const std::vector<McpParamHeader> d = ScanMcpParamHeaders(kSqlSchema).value();
  const Json args = {{"region", "us-west1"}, {"limit", 42}, {"opts", {{"dry", true}}}};
  EXPECT_TRUE(ValidateMcpParamHeaders(d, args,
                                      Headers({{"mcp-param-region", "us-west1"},
                                               {"Mcp-Param-Limit", "42.0"},
                                               {"Mcp-Param-Dry", "true"}}))
                  .ok());
  Status st = ValidateMcpParamHeaders(d, args,
                                      Headers({{"Mcp-Param-Region", "eu-west1"},
                                               {"Mcp-Param-Limit", "42"},
                                               {"Mcp-Param-Dry", "true"}}));
  EXPECT_THAT(st, StatusIs(Reason::kMcpHeaderMismatch));
  EXPECT_THAT(std::string(st.message()), HasSubstr("Mcp-Param-Region header decodes to"));
  st = ValidateMcpParamHeaders(d, args, Headers({{"Mcp-Param-Region", "us-west1"}}));
  EXPECT_THAT(st, StatusIs(Reason::kMcpHeaderMismatch));
  EXPECT_THAT(std::string(st.message()), HasSubstr("Mcp-Param-Limit header is absent"));
  // An argument the body does not carry needs no header.
  EXPECT_TRUE(ValidateMcpParamHeaders(d, {{"query", "select 1"}}, Headers({})).ok());
  // Base64 sentinel: " padded " → IHBhZGRlZCA=.
  EXPECT_TRUE(ValidateMcpParamHeaders(d, {{"region", " padded "}},
                                      Headers({{"Mcp-Param-Region", "=?base64?IHBhZGRlZCA=?="}}))
                  .ok());
  EXPECT_THAT(ValidateMcpParamHeaders(d, {{"region", "x"}},
                                      Headers({{"Mcp-Param-Region", "=?base64?!!?="}})),
              StatusIs(Reason::kMcpHeaderMismatch));
}

}  // namespace
}  // namespace custos::mcp
