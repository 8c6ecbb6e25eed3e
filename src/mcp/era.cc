#include "custos/mcp/era.h"

#include <array>
#include <cstdlib>
#include <map>

#include "custos/core/encoding.h"
#include "custos/mcp/stdio_server.h"

namespace custos::mcp {
namespace {

constexpr std::array<std::string_view, 10> kStatelessMethods = {
    "tools/call",          "tools/list",          "prompts/get",
    "prompts/list",        "resources/list",      "resources/templates/list",
    "resources/read",      "completion/complete", "server/discover",
    "subscriptions/listen"};

constexpr std::array<std::string_view, 6> kCacheableMethods = {
    "tools/list",     "prompts/list",   "resources/list", "resources/templates/list",
    "resources/read", "server/discover"};

// Methods whose 2026-07-28 results may carry a resultType other than "complete".
constexpr std::array<std::string_view, 3> kExtendedResultMethods = {"tools/call", "prompts/get",
                                                                    "resources/read"};

template <size_t N>
bool In(const std::array<std::string_view, N>& set, std::string_view v) {
  for (std::string_view s : set) {
    if (s == v)
      return true;
  }
  return false;
}

Status EnvelopeError(std::string_view key, std::string_view problem) {
  return Status(Reason::kMcpEnvelopeInvalid, "invalid _meta envelope for protocol revision " +
                                                 std::string(kStatelessVersion) + ": " +
                                                 std::string(key) + ": " + std::string(problem));
}

Status Mismatch(std::string what) { return Status(Reason::kMcpHeaderMismatch, std::move(what)); }

// RFC 9110 optional whitespace (SP / HTAB) around a field value.
std::string_view StripOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  return v;
}

// Quotes a peer-supplied value for a message: bounded, JSON-escaped.
std::string Quote(std::string_view v) {
  return Json(std::string(v.substr(0, 128))).dump(-1, ' ', true, Json::error_handler_t::replace);
}

// An Mcp-Name value: plain, or "=?base64?<canonical base64 of UTF-8>?=".
std::optional<std::string> DecodeHeaderValue(std::string_view v) {
  constexpr std::string_view kPrefix = "=?base64?";
  constexpr std::string_view kSuffix = "?=";
  if (!(v.size() >= kPrefix.size() + kSuffix.size() && v.starts_with(kPrefix) &&
        v.ends_with(kSuffix))) {
    return std::string(v);
  }
  Result<std::vector<uint8_t>> raw =
      Base64Decode(v.substr(kPrefix.size(), v.size() - kPrefix.size() - kSuffix.size()));
  if (!raw.ok())
    return std::nullopt;
  std::string s(raw->begin(), raw->end());
  if (!IsValidUtf8(s))
    return std::nullopt;
  return s;
}

// The body field Mcp-Name mirrors for `method`, or nullptr.
const char* NameField(std::string_view method) {
  if (method == "tools/call" || method == "prompts/get")
    return "name";
  if (method == "resources/read")
    return "uri";
  return nullptr;
}

const Json* MetaOf(const Json& params) {
  if (!params.is_object())
    return nullptr;
  auto it = params.find("_meta");
  return it != params.end() && it->is_object() ? &*it : nullptr;
}

}  // namespace

bool IsStatelessEra(std::string_view version) {
  // ISO dates compare chronologically as strings; a non-date never claims the era.
  return version.size() == 10 && version >= kStatelessVersion;
}

bool HasEnvelopeClaim(const Json& params) {
  const Json* meta = MetaOf(params);
  return meta != nullptr && meta->contains(kMetaProtocolVersion);
}

Result<Envelope> ParseEnvelope(const Json& params) {
  const Json* meta = MetaOf(params);
  if (meta == nullptr)
    return EnvelopeError("_meta", "missing");
  Envelope e;
  auto v = meta->find(kMetaProtocolVersion);
  if (v == meta->end())
    return EnvelopeError(kMetaProtocolVersion, "missing");
  if (!v->is_string())
    return EnvelopeError(kMetaProtocolVersion, "expected a string");
  auto caps = meta->find(kMetaClientCapabilities);
  if (caps == meta->end())
    return EnvelopeError(kMetaClientCapabilities, "missing");
  if (!caps->is_object())
    return EnvelopeError(kMetaClientCapabilities, "expected an object");
  if (auto info = meta->find(kMetaClientInfo); info != meta->end()) {
    if (!info->is_object() || !info->contains("name") || !(*info)["name"].is_string() ||
        !info->contains("version") || !(*info)["version"].is_string()) {
      return EnvelopeError(kMetaClientInfo, "expected an object with string name and version");
    }
    e.client_info = *info;
  }
  if (auto lvl = meta->find(kMetaLogLevel); lvl != meta->end() && !lvl->is_string())
    return EnvelopeError(kMetaLogLevel, "expected a string");
  e.protocol_version = v->get<std::string>();
  if (e.protocol_version != kStatelessVersion) {
    return Status(Reason::kMcpVersionUnsupported,
                  "protocol revision " + Quote(e.protocol_version) +
                      " is not supported; the stateless revision the gateway speaks is " +
                      std::string(kStatelessVersion));
  }
  e.client_capabilities = *caps;
  return e;
}

Json EnvelopeMeta(const Envelope& e) {
  Json m = {{std::string(kMetaProtocolVersion), e.protocol_version},
            {std::string(kMetaClientCapabilities),
             e.client_capabilities.is_object() ? e.client_capabilities : Json::object()}};
  if (!e.client_info.is_null())
    m[std::string(kMetaClientInfo)] = e.client_info;
  return m;
}

Json StripEnvelope(const Json& params) {
  if (MetaOf(params) == nullptr)
    return params;
  Json out = params;
  Json& meta = out["_meta"];
  for (std::string_view k :
       {kMetaProtocolVersion, kMetaClientCapabilities, kMetaClientInfo, kMetaLogLevel}) {
    meta.erase(std::string(k));
  }
  if (meta.empty())
    out.erase("_meta");
  return out;
}

bool IsStatelessMethod(std::string_view method) { return In(kStatelessMethods, method); }

Json TakeSubscriptionId(Message* n) {
  if (!n->params.is_object() || !n->params.contains("_meta") || !n->params["_meta"].is_object())
    return Json();
  Json& meta = n->params["_meta"];
  const std::string key(kMetaSubscriptionId);
  if (!meta.contains(key))
    return Json();
  Json id = std::move(meta[key]);
  meta.erase(key);
  if (meta.empty())
    n->params.erase("_meta");
  return id;
}

Json WithGatewayEnvelope(const Json& params, const Json& client_capabilities) {
  Envelope e;
  e.protocol_version = std::string(kStatelessVersion);
  e.client_capabilities = client_capabilities.is_object() ? client_capabilities : Json::object();
  e.client_info = {{"name", "custos-mcp-gateway"}, {"version", "0.1.0"}};
  Json p = StripEnvelope(params.is_object() ? params : Json::object());
  Json meta = p.contains("_meta") && p["_meta"].is_object() ? p["_meta"] : Json::object();
  const Json envelope = EnvelopeMeta(e);
  for (auto it = envelope.begin(); it != envelope.end(); ++it)
    meta[it.key()] = it.value();
  p["_meta"] = std::move(meta);
  return p;
}

std::string EncodeMcpHeaderValue(std::string_view value) {
  bool plain = !value.empty() && value.front() != ' ' && value.front() != '\t' &&
               value.back() != ' ' && value.back() != '\t' &&
               !(value.starts_with("=?base64?") && value.ends_with("?="));
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    plain = plain && (u == 9 || (u >= 32 && u <= 126));
  }
  if (plain)
    return std::string(value);
  return "=?base64?" + Base64Encode(AsBytes(value)) + "?=";
}

bool IsInputRequired(std::string_view method, const Json& result) {
  return In(kExtendedResultMethods, method) && result.is_object() &&
         result.value("resultType", Json()) == "input_required";
}

Result<InputRequired> ParseInputRequired(const Json& result) {
  auto bad = [](std::string why) {
    return Status(Reason::kMcpProtocolError, "invalid input_required result: " + std::move(why));
  };
  InputRequired out;
  if (auto st = result.find("requestState"); st != result.end()) {
    if (!st->is_string())
      return bad("requestState must be a string");
    out.request_state = st->get<std::string>();
  }
  if (auto reqs = result.find("inputRequests"); reqs != result.end()) {
    if (!reqs->is_object())
      return bad("inputRequests must be an object");
    if (reqs->size() > kMaxInputRequests)
      return bad("more than " + std::to_string(kMaxInputRequests) + " inputRequests");
    for (auto it = reqs->begin(); it != reqs->end(); ++it) {
      const Json& e = it.value();
      const std::string method =
          e.is_object() && e.contains("method") && e["method"].is_string() ? e["method"] : "";
      if (it.key().empty() || it.key().size() > 256)
        return bad("an inputRequests key is empty or over 256 bytes");
      if (method != "sampling/createMessage" && method != "elicitation/create" &&
          method != "roots/list") {
        return bad("inputRequests " + Quote(it.key()) +
                   " is not an embedded sampling/createMessage, elicitation/create or roots/list "
                   "request");
      }
      const Json params = e.value("params", Json());
      if (!params.is_object() && !(params.is_null() && method == "roots/list"))
        return bad("inputRequests " + Quote(it.key()) + " has no params object");
      out.requests.push_back({it.key(), method, params.is_object() ? params : Json::object()});
    }
  }
  if (out.requests.empty() && !out.request_state)
    return bad("it carries neither inputRequests nor requestState");
  return out;
}

Json MakeInputRequired(const std::vector<InputRequest>& requests,
                       const std::string& request_state) {
  Json reqs = Json::object();
  for (const InputRequest& r : requests)
    reqs[r.key] = {{"method", r.method}, {"params", r.params}};
  Json out = {{"resultType", "input_required"}, {"requestState", request_state}};
  if (!reqs.empty())
    out["inputRequests"] = std::move(reqs);
  return out;
}

void ToStatelessResult(std::string_view method, const Json& server_info, Json* result) {
  if (!result->is_object())
    *result = Json::object();
  Json& r = *result;
  const bool keep_type =
      In(kExtendedResultMethods, method) && r.contains("resultType") && r["resultType"].is_string();
  if (!keep_type)
    r["resultType"] = "complete";
  // Deleted vocabulary of the era: tools' execution (tasks).
  if (method == "tools/list" && r.contains("tools") && r["tools"].is_array()) {
    for (Json& t : r["tools"]) {
      if (t.is_object())
        t.erase("execution");
    }
  }
  if (r["resultType"] == "complete" && In(kCacheableMethods, method)) {
    r["ttlMs"] = 0;
    r["cacheScope"] = "private";
  } else {
    r.erase("ttlMs");
    r.erase("cacheScope");
  }
  if (!r.contains("_meta") || !r["_meta"].is_object())
    r["_meta"] = Json::object();
  r["_meta"][std::string(kMetaServerInfo)] = server_info;
}

Status FromStatelessResult(std::string_view method, Json* result) {
  if (!result->is_object())
    return Status::Ok();
  Json& r = *result;
  if (IsInputRequired(method, r)) {
    // Fulfilled by the gateway (decision 034): the fields the retry needs stay.
    if (auto m = r.find("_meta"); m != r.end() && m->is_object()) {
      m->erase(std::string(kMetaServerInfo));
      if (m->empty())
        r.erase(m);
    }
    return Status::Ok();
  }
  if (auto t = r.find("resultType"); t != r.end()) {
    if (!t->is_string() || t->get_ref<const std::string&>() != "complete") {
      return Status(Reason::kMcpProtocolError,
                    "the server answered " + std::string(method) + " with resultType " +
                        Quote(t->is_string() ? t->get<std::string>() : t->dump()) +
                        "; the gateway carries complete results, and input_required only for "
                        "tools/call, prompts/get and resources/read");
    }
    r.erase(t);
  }
  r.erase("ttlMs");
  r.erase("cacheScope");
  if (auto m = r.find("_meta"); m != r.end() && m->is_object()) {
    m->erase(std::string(kMetaServerInfo));
    if (m->empty())
      r.erase(m);
  }
  return Status::Ok();
}

Message FromServerEra(std::string_view method, bool stateless, Message reply) {
  if (!stateless || reply.type != Message::Type::kResponse)
    return reply;
  Status st = FromStatelessResult(method, &reply.result);
  if (!st.ok()) {
    return Message::Error(reply.id, kInternalError, std::string(st.message()),
                          {{"reason", std::string(ReasonName(st.reason()))}});
  }
  return reply;
}

int ErrorCodeForEra(int code, bool stateless) {
  if (stateless && code == kResourceNotFound)
    return kInvalidParams;
  return code;
}

Message UnsupportedVersionError(const Json& id, std::string_view requested) {
  return Message::Error(id, kUnsupportedProtocolVersion,
                        "Unsupported protocol version: " + std::string(requested.substr(0, 64)),
                        {{"supported", Json::array({std::string(kStatelessVersion)})},
                         {"requested", std::string(requested.substr(0, 64))}});
}

Status ValidateMcpHttpHeaders(const McpHttpHeaders& headers, const Message& m) {
  if (m.is_response())
    return Status::Ok();
  // Present headers, stripped (optional<string> rather than optional<string_view>: GCC 12 warns
  // falsely about the latter's payload).
  auto strip = [](const std::optional<std::string>& h) -> std::optional<std::string> {
    if (!h)
      return std::nullopt;
    return std::string(StripOws(*h));
  };
  const std::optional<std::string> hv = strip(headers.protocol_version);
  const std::optional<std::string> hm = strip(headers.method);
  const std::optional<std::string> hn = strip(headers.name);

  if (!HasEnvelopeClaim(m.params)) {
    // 2025-era traffic.
    if (hv && IsStatelessEra(*hv)) {
      if (m.method == "initialize") {
        return Mismatch(
            "an initialize request (the 2025 handshake) was sent with "
            "MCP-Protocol-Version " +
            Quote(*hv));
      }
      if (m.is_request()) {
        return Status(Reason::kMcpEnvelopeInvalid,
                      "the MCP-Protocol-Version header names " + Quote(*hv) +
                          " but params._meta carries no " + std::string(kMetaProtocolVersion));
      }
      return Status::Ok();
    }
    if (hv && !IsSupportedVersion(*hv)) {
      return Status(Reason::kMcpVersionUnsupported, "the MCP-Protocol-Version header names " +
                                                        Quote(*hv) +
                                                        ", which the gateway does not speak");
    }
    return Status::Ok();
  }

  const Json& claimed = (*MetaOf(m.params))[std::string(kMetaProtocolVersion)];
  const std::string body_version = claimed.is_string() ? claimed.get<std::string>() : "";
  if (!claimed.is_string())
    return EnvelopeError(kMetaProtocolVersion, "expected a string");
  if (hv && *hv != body_version) {
    return Mismatch("the MCP-Protocol-Version header names " + Quote(*hv) +
                    " but params._meta names " + Quote(body_version));
  }
  if (hm && *hm != m.method) {
    return Mismatch("the Mcp-Method header names " + Quote(*hm) + " but the body's method is " +
                    Quote(m.method));
  }
  if (!m.is_request())
    return Status::Ok();  // notifications: only the headers they carry are checked
  if (!hv) {
    return Mismatch("the body names protocol revision " + Quote(body_version) +
                    " but the MCP-Protocol-Version header is absent");
  }
  if (!hm) {
    return Mismatch("the body names method " + Quote(m.method) +
                    " but the Mcp-Method header is absent");
  }
  const char* field = NameField(m.method);
  if (field == nullptr)
    return Status::Ok();
  const Json* body = m.params.is_object() && m.params.contains(field) ? &m.params[field] : nullptr;
  const bool body_has = body != nullptr && body->is_string();
  if (!hn) {
    if (!body_has)
      return Status::Ok();  // nothing to mirror: params validation refuses the body later
    return Mismatch("params." + std::string(field) + " is " + Quote(body->get<std::string>()) +
                    " but the Mcp-Name header is absent");
  }
  const std::optional<std::string> decoded = DecodeHeaderValue(*hn);
  if (!decoded)
    return Mismatch("the Mcp-Name header carries an invalid =?base64?…?= value");
  if (body_has && *decoded != body->get_ref<const std::string&>()) {
    return Mismatch("the Mcp-Name header names " + Quote(*decoded) + " but params." +
                    std::string(field) + " is " + Quote(body->get<std::string>()));
  }
  return Status::Ok();
}

namespace {

constexpr std::array<std::string_view, 18> kUnreachableKeywords = {"items",
                                                                   "prefixItems",
                                                                   "contains",
                                                                   "additionalProperties",
                                                                   "unevaluatedProperties",
                                                                   "unevaluatedItems",
                                                                   "propertyNames",
                                                                   "patternProperties",
                                                                   "dependentSchemas",
                                                                   "oneOf",
                                                                   "anyOf",
                                                                   "allOf",
                                                                   "not",
                                                                   "if",
                                                                   "then",
                                                                   "else",
                                                                   "$defs",
                                                                   "definitions"};

bool IsToken(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok)
      return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

std::string PathName(const std::vector<std::string>& path) {
  if (path.empty())
    return "<root>";
  std::string out;
  for (const std::string& p : path)
    out += (out.empty() ? "" : ".") + p;
  return out;
}

Status ScanNode(const Json& node, std::vector<std::string>& path, bool reachable,
                std::map<std::string, std::string>& seen, std::vector<McpParamHeader>& out) {
  if (!node.is_object())
    return Status::Ok();
  auto bad = [&](std::string why) {
    return Status(Reason::kMcpProtocolError,
                  "inputSchema " + Quote(PathName(path)) + ": x-mcp-header " + why);
  };
  if (auto h = node.find("x-mcp-header"); h != node.end()) {
    if (!reachable || path.empty())
      return bad("is only permitted on properties reached through 'properties' alone");
    if (!h->is_string() || !IsToken(h->get_ref<const std::string&>()))
      return bad("must be a non-empty RFC 9110 token");
    const std::string name = h->get<std::string>();
    const std::string type =
        node.value("type", Json()).is_string() ? node["type"].get<std::string>() : "";
    if (type != "string" && type != "integer" && type != "number" && type != "boolean")
      return bad("is only permitted on string, integer, number or boolean properties");
    auto [it, fresh] = seen.emplace(Lower(name), name);
    if (!fresh)
      return bad(Quote(name) + " is not unique (also declared as " + Quote(it->second) + ")");
    out.push_back({path, "Mcp-Param-" + name, type});
  }
  if (auto props = node.find("properties"); props != node.end() && props->is_object()) {
    for (auto it = props->begin(); it != props->end(); ++it) {
      path.push_back(it.key());
      Status st = ScanNode(it.value(), path, reachable, seen, out);
      path.pop_back();
      CUSTOS_RETURN_IF_ERROR(st);
    }
  }
  for (std::string_view k : kUnreachableKeywords) {
    auto sub = node.find(k);
    if (sub == node.end())
      continue;
    path.push_back("<" + std::string(k) + ">");
    Status st = Status::Ok();
    if (sub->is_array()) {
      for (const Json& b : *sub) {
        if (st.ok())
          st = ScanNode(b, path, false, seen, out);
      }
    } else if (k == "patternProperties" || k == "dependentSchemas" || k == "$defs" ||
               k == "definitions") {
      for (auto it = sub->begin(); sub->is_object() && it != sub->end(); ++it) {
        if (st.ok())
          st = ScanNode(it.value(), path, false, seen, out);
      }
    } else {
      st = ScanNode(*sub, path, false, seen, out);
    }
    path.pop_back();
    CUSTOS_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

// "^-?\d+(\.\d+)?$"
bool CanonicalDecimal(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-')
    ++i;
  const size_t int_start = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    ++i;
  if (i == int_start)
    return false;
  if (i == s.size())
    return true;
  if (s[i] != '.')
    return false;
  const size_t frac_start = ++i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    ++i;
  return i == s.size() && i > frac_start;
}

}  // namespace

Result<std::vector<McpParamHeader>> ScanMcpParamHeaders(const Json& input_schema) {
  std::vector<McpParamHeader> out;
  std::vector<std::string> path;
  std::map<std::string, std::string> seen;
  CUSTOS_RETURN_IF_ERROR(ScanNode(input_schema, path, true, seen, out));
  return out;
}

Status ValidateMcpParamHeaders(
    const std::vector<McpParamHeader>& declarations, const Json& arguments,
    const std::function<std::optional<std::string>(std::string_view name)>& header) {
  for (const McpParamHeader& d : declarations) {
    const Json* v = &arguments;
    for (const std::string& k : d.path) {
      if (!v->is_object() || !v->contains(k)) {
        v = nullptr;
        break;
      }
      v = &(*v)[k];
    }
    if (v == nullptr || v->is_null())
      continue;  // nothing in the body: no header expected
    std::string body;
    if (v->is_string())
      body = v->get<std::string>();
    else if (v->is_boolean())
      body = v->get<bool>() ? "true" : "false";
    else if (v->is_number())
      body = v->dump();
    else
      continue;  // not a primitive: the schema check refuses the body
    const std::optional<std::string> raw = header(d.header);
    if (!raw) {
      return Mismatch("the body carries " + PathName(d.path) + "=" + Quote(body) + " but the " +
                      d.header + " header is absent");
    }
    const std::optional<std::string> decoded = DecodeHeaderValue(StripOws(*raw));
    if (!decoded)
      return Mismatch("the " + d.header + " header carries an invalid =?base64?…?= value");
    const bool numeric =
        (d.type == "integer" || d.type == "number") && v->is_number() && CanonicalDecimal(*decoded);
    const bool equal =
        numeric ? std::strtod(decoded->c_str(), nullptr) == v->get<double>() : *decoded == body;
    if (!equal) {
      return Mismatch("the " + d.header + " header decodes to " + Quote(*decoded) +
                      " but the body carries " + PathName(d.path) + "=" + Quote(body));
    }
  }
  return Status::Ok();
}

}  // namespace custos::mcp
