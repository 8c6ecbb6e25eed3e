#include "custos/mcp/jsonrpc.h"

namespace custos::mcp {
namespace {

Status Bad(std::string msg) { return Status(Reason::kMcpProtocolError, std::move(msg)); }

bool ValidId(const Json& id) { return id.is_string() || id.is_number_integer(); }

}  // namespace

Json Message::ToJson() const {
  Json j = {{"jsonrpc", "2.0"}};
  switch (type) {
    case Type::kRequest:
      j["id"] = id;
      j["method"] = method;
      if (!params.is_null())
        j["params"] = params;
      break;
    case Type::kNotification:
      j["method"] = method;
      if (!params.is_null())
        j["params"] = params;
      break;
    case Type::kResponse:
      j["id"] = id;
      j["result"] = result.is_null() ? Json::object() : result;
      break;
    case Type::kError: {
      j["id"] = id;
      Json e = {{"code", error_code}, {"message", error_message}};
      if (!error_data.is_null())
        e["data"] = error_data;
      j["error"] = std::move(e);
      break;
    }
  }
  return j;
}

std::string Message::Serialize() const {
  // dump() escapes control characters, so the line never holds a raw newline; invalid UTF-8 from
  // a peer was refused at parse time, and replace keeps our own output well-formed regardless.
  return ToJson().dump(-1, ' ', false, Json::error_handler_t::replace);
}

Message Message::Request(Json id, std::string method, Json params) {
  Message m;
  m.type = Type::kRequest;
  m.id = std::move(id);
  m.method = std::move(method);
  m.params = std::move(params);
  return m;
}

Message Message::Notification(std::string method, Json params) {
  Message m;
  m.type = Type::kNotification;
  m.method = std::move(method);
  m.params = std::move(params);
  return m;
}

Message Message::Response(Json id, Json result) {
  Message m;
  m.type = Type::kResponse;
  m.id = std::move(id);
  m.result = std::move(result);
  return m;
}

Message Message::Error(Json id, int code, std::string message, Json data) {
  Message m;
  m.type = Type::kError;
  m.id = std::move(id);
  m.error_code = code;
  m.error_message = std::move(message);
  m.error_data = std::move(data);
  return m;
}

Result<Message> MessageFromJson(const Json& j) {
  if (!j.is_object())
    return Bad("a JSON-RPC message must be an object");
  auto v = j.find("jsonrpc");
  if (v == j.end() || !v->is_string() || v->get_ref<const std::string&>() != "2.0")
    return Bad("\"jsonrpc\" must be \"2.0\"");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "jsonrpc" && k != "id" && k != "method" && k != "params" && k != "result" &&
        k != "error") {
      return Bad("unknown member \"" + JsonPointerToken(k).substr(0, 64) + "\"");
    }
  }
  Message m;
  const bool has_id = j.contains("id");
  if (has_id) {
    m.id = j.at("id");
    if (!ValidId(m.id))
      return Bad("\"id\" must be a string or an integer");
  }
  if (auto meth = j.find("method"); meth != j.end()) {
    if (!meth->is_string() || meth->get_ref<const std::string&>().empty())
      return Bad("\"method\" must be a non-empty string");
    if (j.contains("result") || j.contains("error"))
      return Bad("a request cannot carry \"result\" or \"error\"");
    m.method = meth->get<std::string>();
    if (auto p = j.find("params"); p != j.end()) {
      if (!p->is_object())
        return Bad("\"params\" must be an object");
      m.params = *p;
    }
    m.type = has_id ? Message::Type::kRequest : Message::Type::kNotification;
    return m;
  }
  if (!has_id)
    return Bad("a message needs a \"method\" or an \"id\"");
  if (j.contains("params"))
    return Bad("a response cannot carry \"params\"");
  const bool has_result = j.contains("result");
  const bool has_error = j.contains("error");
  if (has_result == has_error)
    return Bad("a response needs exactly one of \"result\" and \"error\"");
  if (has_result) {
    m.type = Message::Type::kResponse;
    m.result = j.at("result");
    return m;
  }
  const Json& e = j.at("error");
  if (!e.is_object() || !e.contains("code") || !e.at("code").is_number_integer() ||
      !e.contains("message") || !e.at("message").is_string()) {
    return Bad("\"error\" needs an integer \"code\" and a string \"message\"");
  }
  m.type = Message::Type::kError;
  m.error_code = e.at("code").get<int>();
  m.error_message = e.at("message").get<std::string>();
  if (e.contains("data"))
    m.error_data = e.at("data");
  return m;
}

Result<Message> ParseMessage(std::string_view line, size_t max_bytes) {
  JsonLimits lim;
  lim.max_bytes = max_bytes;
  lim.max_string_bytes = max_bytes;
  lim.max_depth = 64;
  CUSTOS_ASSIGN_OR_RETURN(Json j, ParseUntrustedJson(line, lim));
  if (j.is_array())
    return Bad("batches are not allowed in this protocol version");
  return MessageFromJson(j);
}

Result<Batch> ParseBatch(std::string_view line, size_t max_bytes) {
  JsonLimits lim;
  lim.max_bytes = max_bytes;
  lim.max_string_bytes = max_bytes;
  lim.max_depth = 64;
  CUSTOS_ASSIGN_OR_RETURN(Json j, ParseUntrustedJson(line, lim));
  Batch b;
  if (!j.is_array()) {
    CUSTOS_ASSIGN_OR_RETURN(Message m, MessageFromJson(j));
    b.messages.push_back(std::move(m));
    return b;
  }
  b.was_array = true;
  if (j.empty())
    return Bad("an empty batch");
  for (const Json& e : j) {
    Result<Message> m = MessageFromJson(e);
    if (m.ok()) {
      b.messages.push_back(std::move(m).value());
    } else {
      Json id = (e.is_object() && e.contains("id") && ValidId(e.at("id"))) ? e.at("id") : Json();
      b.bad.emplace_back(std::move(id), m.status());
    }
  }
  return b;
}

int ErrorCodeFor(const Status& st) {
  switch (st.reason()) {
    case Reason::kMcpUnknownMethod:
      return kMethodNotFound;
    case Reason::kMalformedJson:
    case Reason::kInvalidUtf8:
    case Reason::kNestingTooDeep:
      return kParseError;
    case Reason::kMcpProtocolError:
    case Reason::kPayloadTooLarge:
      return kInvalidRequest;
    case Reason::kSchemaViolation:
    case Reason::kInvalidArgument:
    case Reason::kMcpEnvelopeInvalid:
      return kInvalidParams;
    case Reason::kMcpHeaderMismatch:
      return -32020;  // 2026-07-28 HeaderMismatch (era.h kHeaderMismatch)
    case Reason::kMcpVersionUnsupported:
      return -32022;  // 2026-07-28 UnsupportedProtocolVersion
    case Reason::kMcpServerUnavailable:
    case Reason::kEffectTimeout:
      return kServerUnavailable;
    default:
      return InfoOf(st.reason()).cls == ReasonClass::kPermissionDenied ? kDenied : kInternalError;
  }
}

}  // namespace custos::mcp
