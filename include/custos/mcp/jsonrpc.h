#pragma once
// JSON-RPC 2.0 framing for MCP: one message per line (the stdio transport; a message never
// contains a raw newline), classified into request, notification, response or error response.
// ParseMessage() accepts exactly what JSON-RPC 2.0 and MCP allow and nothing else:
//   * "jsonrpc" must be "2.0";
//   * a request has a string or integer "id" (MCP forbids null ids) and a string "method";
//   * a notification has a "method" and no "id";
//   * a response has an "id" and exactly one of "result" / "error" ({code:int, message:string});
//   * "params", when present, is an object or (JSON-RPC only, never in MCP) an array — arrays
//     are refused;
//   * batches (a top-level array) are a separate call, ParseBatch(), because only the 2025-03-26
//     era allows them.
// Every refusal is kMcpProtocolError (or the JSON parser's own reason: kPayloadTooLarge,
// kNestingTooDeep, kInvalidUtf8, kMalformedJson) with a message that never quotes the input.
//
// Thread-safe: free functions and plain values.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::mcp {

// JSON-RPC and MCP error codes the gateway sends.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kResourceNotFound = -32002;  // MCP: resources/read of an unknown URI
// Gateway-specific (the -32000..-32099 server range): a kernel refusal, and a downstream
// server that is down or did not answer. The error's data names the reason code.
inline constexpr int kDenied = -32010;
inline constexpr int kServerUnavailable = -32011;

inline constexpr size_t kDefaultMaxMessageBytes = 4 << 20;

struct Message {
  enum class Type { kRequest, kNotification, kResponse, kError };
  Type type = Type::kNotification;
  Json id;  // string or integer; null for notifications
  std::string method;
  Json params;  // object or null
  Json result;
  int error_code = 0;
  std::string error_message;
  Json error_data;

  bool is_request() const { return type == Type::kRequest; }
  bool is_notification() const { return type == Type::kNotification; }
  bool is_response() const { return type == Type::kResponse || type == Type::kError; }

  Json ToJson() const;
  // One line, no trailing newline.
  std::string Serialize() const;

  static Message Request(Json id, std::string method, Json params);
  static Message Notification(std::string method, Json params);
  static Message Response(Json id, Json result);
  static Message Error(Json id, int code, std::string message, Json data = nullptr);
};

// Parses one already-decoded JSON value as a single message.
Result<Message> MessageFromJson(const Json& j);
// Parses one line of text. REQUIRES: no trailing newline.
Result<Message> ParseMessage(std::string_view line, size_t max_bytes = kDefaultMaxMessageBytes);

// Parses a line that may hold a batch (2025-03-26 only). A non-array line yields one message.
// An empty batch is kMcpProtocolError. Elements that fail to parse are returned as errors in
// `bad` (with their id when one could be read, else null), so the caller can answer each.
struct Batch {
  std::vector<Message> messages;
  std::vector<std::pair<Json, Status>> bad;
  bool was_array = false;
};
Result<Batch> ParseBatch(std::string_view line, size_t max_bytes = kDefaultMaxMessageBytes);

// The JSON-RPC error code a gateway Status maps to.
int ErrorCodeFor(const Status& st);

}  // namespace custos::mcp
