#pragma once
// MCP protocol eras: the 2025 handshake eras (2025-03-26, 2025-06-18, 2025-11-25: initialize,
// sessions) and the stateless 2026-07-28 era (no initialize; server/discover; every request
// carries its protocol version, client capabilities and client info in params._meta; results
// carry resultType, and listings/reads carry the cache fields ttlMs and cacheScope). This file is
// the pure translation layer the gateway's front and back use (docs/mcp.md "Protocol eras",
// decision 025), and the header rules of the Streamable HTTP binding for the HTTP transport.
//
// The interop ground truth is @modelcontextprotocol/{client,server} 2.4.0 (the constants and
// rules below are those of its dist code; where it and the spec text differ, docs/mcp.md says so).
//
// Every refusal is a Status with a precise message: kMcpEnvelopeInvalid (JSON-RPC -32602) for a
// missing or malformed envelope key, kMcpVersionUnsupported (-32022, data {supported,
// requested}) for a revision the gateway does not speak, kMcpHeaderMismatch (-32020, HTTP 400)
// for a standard header that is missing or disagrees with the body.
//
// Thread-safe: free functions and plain values.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/mcp/jsonrpc.h"

namespace custos::mcp {

// The stateless revision, and the only one of its era the gateway speaks.
inline constexpr std::string_view kStatelessVersion = "2026-07-28";

// Reserved params._meta / result._meta keys of the 2026-07-28 era.
inline constexpr std::string_view kMetaProtocolVersion = "io.modelcontextprotocol/protocolVersion";
inline constexpr std::string_view kMetaClientInfo = "io.modelcontextprotocol/clientInfo";
inline constexpr std::string_view kMetaClientCapabilities =
    "io.modelcontextprotocol/clientCapabilities";
inline constexpr std::string_view kMetaLogLevel = "io.modelcontextprotocol/logLevel";
inline constexpr std::string_view kMetaServerInfo = "io.modelcontextprotocol/serverInfo";
inline constexpr std::string_view kMetaSubscriptionId = "io.modelcontextprotocol/subscriptionId";

// 2026-07-28 JSON-RPC error codes.
inline constexpr int kHeaderMismatch = -32020;
inline constexpr int kMissingClientCapability = -32021;
inline constexpr int kUnsupportedProtocolVersion = -32022;

// True for a revision of the stateless era (revisions are ISO dates: >= 2026-07-28).
bool IsStatelessEra(std::string_view version);

// The per-request envelope of a 2026-07-28 request.
struct Envelope {
  std::string protocol_version;
  Json client_capabilities = Json::object();
  Json client_info;  // null when the client sent none (the SDK makes it optional)
};

// Whether params._meta carries the protocol-version key: the message claims the stateless era
// (a malformed envelope behind a claim is an error, never a fall-back to the 2025 eras).
bool HasEnvelopeClaim(const Json& params);

// Validates the envelope of a request that claims it. kMcpEnvelopeInvalid names the first key
// that is missing or malformed (protocolVersion must be a string, clientCapabilities an object,
// clientInfo, when present, an object with string name and version); kMcpVersionUnsupported if
// the revision is not kStatelessVersion.
Result<Envelope> ParseEnvelope(const Json& params);

// The _meta object the gateway sends a 2026-07-28 server with every request.
Json EnvelopeMeta(const Envelope& e);

// params with the reserved envelope keys removed from _meta (other _meta keys — progressToken,
// traceparent, … — stay); _meta is dropped when nothing else is left in it.
Json StripEnvelope(const Json& params);

// The methods a 2026-07-28 peer serves; anything else (initialize, ping, logging/setLevel,
// resources/subscribe, …) does not exist in the era.
bool IsStatelessMethod(std::string_view method);

// A notification's _meta subscriptionId (null if it has none), removed from *n (and _meta with
// it when nothing else is left): what a listen stream stamps on the notifications it carries.
Json TakeSubscriptionId(Message* n);

// `params` with the gateway's own 2026-07-28 envelope in _meta (protocolVersion, clientInfo
// custos-mcp-gateway, and `client_capabilities` — an object, else {}), replacing any envelope
// keys already there; other _meta keys (progressToken, …) stay.
Json WithGatewayEnvelope(const Json& params, const Json& client_capabilities);

// The value of an Mcp-Name / Mcp-Param-* header for `value`, as SDK 2.4 encodes it: plain when
// it is non-empty visible ASCII (or tab) without surrounding whitespace, else
// "=?base64?<base64 of the UTF-8 bytes>?=".
std::string EncodeMcpHeaderValue(std::string_view value);

// Multi round-trip requests (2026-07-28): a tools/call, prompts/get or resources/read result
// with resultType "input_required" asks the client for input. Each entry of inputRequests is an
// embedded server -> client request (sampling/createMessage, elicitation/create, roots/list);
// the client retries the original request with inputResponses (the bare results, by the same
// keys) and a byte-exact echo of requestState.
inline constexpr size_t kMaxInputRequests = 16;  // per input_required result
struct InputRequest {
  std::string key;
  std::string method;
  Json params = Json::object();
};
struct InputRequired {
  std::vector<InputRequest> requests;
  std::optional<std::string> request_state;
};
// Whether `result` (answering `method`) is an input_required result.
bool IsInputRequired(std::string_view method, const Json& result);
// Parses and checks an input_required result: kMcpProtocolError naming the problem if it has
// neither inputRequests nor requestState, an entry is not one of the three embedded requests
// (params an object; only roots/list may omit them), a key is empty, there are more than
// kMaxInputRequests, or requestState is not a string.
Result<InputRequired> ParseInputRequired(const Json& result);
// The input_required result for a 2026-07-28 client.
Json MakeInputRequired(const std::vector<InputRequest>& requests, const std::string& request_state);

// Result translation for `method` (the JSON-RPC method the result answers).
//   ToStatelessResult: a result for a 2026-07-28 client: resultType "complete" (unless a
//     tools/call, prompts/get or resources/read result already names one), the cache fields of
//     cacheable results (tools/prompts/resources/templates lists, resources/read,
//     server/discover) — ttlMs 0, cacheScope "private", because what the gateway shows depends on
//     the policy and the session —, and _meta serverInfo; tools lose `execution` (the era deleted
//     tasks).
//   FromStatelessResult: a 2026-07-28 server's result for a 2025-era consumer: resultType, ttlMs,
//     cacheScope and _meta serverInfo removed. An input_required result of tools/call,
//     prompts/get or resources/read keeps its resultType, inputRequests and requestState (the
//     gateway fulfils it, decision 034); any other resultType is kMcpProtocolError.
void ToStatelessResult(std::string_view method, const Json& server_info, Json* result);
Status FromStatelessResult(std::string_view method, Json* result);

// A server's answer to `method` in the gateway's internal (2025-11-25) shapes: for a 2026-07-28
// server (`stateless`), a result goes through FromStatelessResult and becomes a JSON-RPC error
// (-32603, kMcpProtocolError's message) if that refuses it (an input_required result of the three
// multi round-trip methods is kept). Anything else is returned as is.
Message FromServerEra(std::string_view method, bool stateless, Message reply);

// JSON-RPC error code translation: a 2025-era -32002 (resource not found) is -32602 in the
// stateless era; the other codes are the same in both.
int ErrorCodeForEra(int code, bool stateless);

// The error a 2026-07-28 peer answers for a revision it does not speak (-32022, data {supported,
// requested}).
Message UnsupportedVersionError(const Json& id, std::string_view requested);

// ------------------------------------------------------------------------------------------------
// Streamable HTTP header rules (SEP-2243), for the HTTP transport to call once per POST after
// parsing the body and before dispatch. Header values as received (optional whitespace around
// them is ignored); nullopt when the header is absent.
struct McpHttpHeaders {
  std::optional<std::string> protocol_version;  // MCP-Protocol-Version
  std::optional<std::string> method;            // Mcp-Method
  std::optional<std::string> name;              // Mcp-Name
};

// Checks the headers against the parsed message. A message whose body claims the stateless era:
//   * a request needs MCP-Protocol-Version equal to the envelope's revision and Mcp-Method equal
//     to the body's method; tools/call and prompts/get need Mcp-Name equal to params.name,
//     resources/read to params.uri (a "=?base64?…?=" value is decoded first; an invalid one is
//     refused); a notification is checked only for the headers it carries;
//   * a header that is absent or disagrees is kMcpHeaderMismatch (-32020, HTTP 400) naming the
//     header and both values.
// A message without a claim is 2025-era traffic: an initialize sent with a 2026-07-28
// MCP-Protocol-Version header is kMcpHeaderMismatch; any other request whose header names a
// stateless revision lacks its envelope (kMcpEnvelopeInvalid); a header naming a revision the
// gateway does not speak is kMcpVersionUnsupported. Mcp-Method and Mcp-Name are not checked on
// 2025-era traffic (they did not exist). Responses are not checked.
Status ValidateMcpHttpHeaders(const McpHttpHeaders& headers, const Message& message);

// SEP-2243 custom headers: a tool's inputSchema may mark primitive properties with
// "x-mcp-header": "<Name>", and a client then mirrors the argument into `Mcp-Param-<Name>`.
struct McpParamHeader {
  std::vector<std::string> path;  // property names from the arguments' root
  std::string header;             // "Mcp-Param-<Name>"
  std::string type;               // "string", "integer", "number" or "boolean"
};

// The declarations of one tool's inputSchema. kMcpProtocolError naming the property when a
// declaration is invalid (as a client must then drop the tool): not reachable through a chain of
// "properties" (under items, anyOf, $defs, …), not an RFC 9110 token, not on a primitive-typed
// property, or not case-insensitively unique.
Result<std::vector<McpParamHeader>> ScanMcpParamHeaders(const Json& input_schema);

// Checks the Mcp-Param-* headers of a tools/call against the tool's declarations and the body's
// arguments: for every declared argument present (and not null) in the body, the header must be
// present and equal after decoding (=?base64?…?= decoded; integer/number compared numerically);
// an argument absent from the body needs no header. `header(name)` looks a header up by name,
// case-insensitively (nullopt when absent). Refusals are kMcpHeaderMismatch naming the header.
Status ValidateMcpParamHeaders(
    const std::vector<McpParamHeader>& declarations, const Json& arguments,
    const std::function<std::optional<std::string>(std::string_view name)>& header);

}  // namespace custos::mcp
