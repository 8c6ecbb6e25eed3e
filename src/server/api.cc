#include "custos/server/api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>

#include "custos/audit/checkpoint.h"
#include "custos/audit/entry_proof.h"
#include "custos/audit/merkle.h"
#include "custos/audit/verifier.h"
#include "custos/core/clock.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "custos/kernel/syscall.h"
#include "custos/policy/policy.h"
#include "server/call_stream.h"
#include "server/capabilities.h"
#include "server/shaping.h"

namespace custos::server {
namespace {

constexpr RouteInfo kRoutes[] = {
    {"GET", "/healthz", false, false},
    {"GET", "/readyz", false, false},
    {"GET", "/metrics", true, false},
    {"POST", "/v1/syscall", true, false},
    {"POST", "/v1/explain", true, false},
    {"POST", "/v1/request_capabilities", true, false},
    {"POST", "/v1/grant", true, true},
    {"POST", "/v1/revoke", true, true},
    {"POST", "/v1/invoke", true, false},
    {"POST", "/v1/expand", true, false},
    {"GET", "/v1/budgets", true, false},
    {"GET", "/v1/approvals", true, true},
    {"POST", "/v1/approvals/{id}", true, true},
    {"GET", "/v1/audit", true, false},
    {"GET", "/v1/audit/tail", true, false},
    {"POST", "/v1/audit/checkpoint", true, false},
    {"GET", "/v1/audit/prove/{seq}", true, false},
    {"POST", "/v1/admin/reload", true, true},
};

constexpr int64_t kMaxAuditLimit = 1000;
// Explain by id scans at most this many of the newest entries.
constexpr int64_t kExplainScanEntries = 200'000;

HttpResponse JsonResponse(int status, const Json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const size_t j = path.find('/', i);
    out.push_back(path.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos)
      break;
    i = j;
  }
  return out;
}

bool PathMatches(std::string_view pattern, std::string_view path,
                 std::vector<std::string>* params) {
  const std::vector<std::string_view> p = Segments(pattern), s = Segments(path);
  if (p.size() != s.size() || (!path.empty() && path.back() == '/' && path != "/"))
    return false;
  std::vector<std::string> got;
  for (size_t i = 0; i < p.size(); ++i) {
    if (!p[i].empty() && p[i].front() == '{') {
      got.emplace_back(s[i]);
    } else if (p[i] != s[i]) {
      return false;
    }
  }
  if (params != nullptr)
    *params = std::move(got);
  return true;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexDigitValue(s[i + 1]) >= 0 &&
               HexDigitValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigitValue(s[i + 1]) * 16 + HexDigitValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The value of `key` in a query string, percent-decoded; nullopt if absent.
std::optional<std::string> QueryParam(std::string_view query, std::string_view key) {
  size_t i = 0;
  while (i <= query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos)
      j = query.size();
    const std::string_view pair = query.substr(i, j - i);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      return PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    i = j + 1;
  }
  return std::nullopt;
}

Result<int64_t> IntParam(std::string_view query, std::string_view key, int64_t dflt, int64_t min,
                         int64_t max) {
  std::optional<std::string> v = QueryParam(query, key);
  if (!v)
    return dflt;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size() || n < min || n > max) {
    return Status(Reason::kInvalidArgument,
                  std::string(key) + " must be an integer in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "]",
                  "?" + std::string(key));
  }
  return n;
}

bool IsJsonContentType(std::string_view ct) {
  const size_t semi = ct.find(';');
  std::string_view base = ct.substr(0, semi);
  while (!base.empty() && base.back() == ' ')
    base.remove_suffix(1);
  std::string lower(base);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "application/json";
}

// True if an Accept header lists text/event-stream (a media range, any parameters, any case).
bool AcceptsEventStream(std::string_view accept) {
  size_t i = 0;
  while (i < accept.size()) {
    size_t j = accept.find(',', i);
    if (j == std::string_view::npos)
      j = accept.size();
    std::string_view range = accept.substr(i, j - i);
    range = range.substr(0, range.find(';'));
    while (!range.empty() && range.front() == ' ')
      range.remove_prefix(1);
    while (!range.empty() && range.back() == ' ')
      range.remove_suffix(1);
    std::string lower(range);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "text/event-stream")
      return true;
    i = j + 1;
  }
  return false;
}

std::string_view TransportOf(const HttpRequest& req) {
  if (!req.transport.empty())
    return req.transport;
  return req.peer ? "unix" : "tcp";
}

// Who a refused request said it was, without any credential (decision 029).
std::string ClaimedBy(const HttpRequest& req) {
  if (!req.authorization.empty()) {
    const std::string_view a = req.authorization;
    const size_t space = a.find(' ');
    const std::string_view scheme = a.substr(0, space);
    if (space != std::string_view::npos && (scheme == "Bearer" || scheme == "bearer"))
      return AuthFailureLog::KeyHint(a.substr(space + 1));
    return "scheme:" + std::string(scheme.substr(0, 16));
  }
  if (req.signed_headers.any())
    return req.signed_headers.agent;
  if (req.peer)
    return "uid:" + std::to_string(req.peer->uid);
  return "";
}

Json EntryJson(const store::LogRow& row) {
  Result<Json> j = ParseUntrustedJson(row.canonical);
  return j.ok() ? *j : Json{{"seq", row.seq}, {"error", "entry does not parse"}};
}

}  // namespace

std::span<const RouteInfo> Routes() { return kRoutes; }

HttpResponse ErrorResponse(const Status& s) {
  const Reason reason = s.ok() ? Reason::kInternal : s.reason();
  HttpResponse r;
  r.status = InfoOf(reason).http_status;
  r.body = Json{{"error",
                 {{"reason", ReasonName(reason)},
                  {"message", std::string(s.message())},
                  {"at", std::string(s.at())}}}}
               .dump();
  return r;
}

Api::Api(kernel::Kernel* kernel, Metrics* metrics, ApiOptions options,
         std::shared_ptr<const Authenticator> auth)
    : kernel_(kernel),
      metrics_(metrics),
      options_(std::move(options)),
      auth_(std::move(auth)),
      wallet_(*kernel),
      auth_failures_(kernel, options_.config.limits.auth_failure_summary_ms) {}

std::shared_ptr<const Authenticator> Api::auth() const {
  std::lock_guard<std::mutex> l(auth_mu_);
  return auth_;
}

HttpResponse Api::Handle(const HttpRequest& req) {
  const size_t q = req.target.find('?');
  const std::string_view path = std::string_view(req.target).substr(0, q);
  const std::string_view query =
      q == std::string::npos ? std::string_view() : std::string_view(req.target).substr(q + 1);
  const RouteInfo* route = nullptr;
  std::vector<std::string> params;
  std::string allow;
  for (const RouteInfo& r : kRoutes) {
    std::vector<std::string> p;
    if (!PathMatches(r.pattern, path, &p))
      continue;
    if (r.method == req.method) {
      route = &r;
      params = std::move(p);
      break;
    }
    allow += (allow.empty() ? "" : ", ") + std::string(r.method);
  }
  if (route == nullptr) {
    if (allow.empty()) {
      return ErrorResponse(Status(Reason::kRouteNotFound, "no route for this path", "/path"));
    }
    HttpResponse r =
        ErrorResponse(Status(Reason::kMethodNotAllowed,
                             req.method + " is not allowed here; allowed: " + allow, "/method"));
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  Identity who;
  if (route->authenticated) {
    const std::shared_ptr<const Authenticator> a = auth();
    Result<Identity> id = Status(Reason::kUnauthenticated, "no credentials");
    if (!req.authorization.empty()) {
      id = a->FromAuthorization(req.authorization);
    } else if (req.signed_headers.any()) {
      const int64_t now_s = SystemClock().NowMillis() / 1000;
      id = a->FromSignature(req.signed_headers, req.method, req.target, req.body, now_s);
      if (id.ok()) {
        // Only verified requests reach the cache, so unauthenticated traffic cannot fill it.
        const Status fresh = replay_.Admit(req.signed_headers.agent, req.signed_headers.nonce,
                                           std::stoll(req.signed_headers.timestamp), now_s);
        if (!fresh.ok())
          id = fresh;
      }
    } else if (req.peer) {
      id = a->FromPeer(*req.peer);
    } else {
      id = a->FromAuthorization("");
    }
    if (!id.ok()) {
      auth_failures_.Note(id.status().reason(), TransportOf(req), ClaimedBy(req));
      HttpResponse r = ErrorResponse(id.status());
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"custosd\"");
      r.route = std::string(route->pattern);
      return r;
    }
    who = std::move(id).value();
    if (route->admin && !who.admin) {
      auth_failures_.Note(Reason::kAdminRequired, TransportOf(req), who.agent);
      HttpResponse r = ErrorResponse(
          Status(Reason::kAdminRequired, "'" + who.agent + "' is not in [server] admins"));
      r.route = std::string(route->pattern);
      return r;
    }
  }
  if (req.method == "POST" && !req.body.empty() && !IsJsonContentType(req.content_type)) {
    HttpResponse r = ErrorResponse(Status(Reason::kUnsupportedMediaType,
                                          "send the body as Content-Type: application/json",
                                          "/headers/content-type"));
    r.route = std::string(route->pattern);
    return r;
  }
  HttpResponse r = Dispatch(*route, params, query, req, who);
  r.route = std::string(route->pattern);
  return r;
}

HttpResponse Api::Dispatch(const RouteInfo& route, const std::vector<std::string>& params,
                           std::string_view query, const HttpRequest& req, const Identity& who) {
  const std::string_view p = route.pattern;
  if (p == "/healthz")
    return Health();
  if (p == "/readyz")
    return Ready();
  if (p == "/metrics")
    return MetricsText();
  if (p == "/v1/syscall")
    return Syscall(req, who);
  if (p == "/v1/explain")
    return Explain(req, who);
  if (p == "/v1/request_capabilities")
    return RequestCapabilities(req, who);
  if (p == "/v1/grant")
    return Grant(req, who);
  if (p == "/v1/revoke")
    return Revoke(req, who);
  if (p == "/v1/invoke")
    return Invoke(req, who);
  if (p == "/v1/expand")
    return Expand(req, who);
  if (p == "/v1/budgets")
    return Budgets(query, who);
  if (p == "/v1/approvals")
    return ListApprovals(query);
  if (p == "/v1/approvals/{id}")
    return AnswerApproval(params.at(0), req, who);
  if (p == "/v1/audit")
    return AuditQuery(query, who);
  if (p == "/v1/audit/tail")
    return AuditTail(query, who);
  if (p == "/v1/audit/checkpoint")
    return AuditCheckpoint(req, who);
  if (p == "/v1/audit/prove/{seq}")
    return AuditProve(params.at(0), who);
  if (p == "/v1/admin/reload")
    return AdminReload();
  return ErrorResponse(Status(Reason::kInternal, "route has no handler"));
}

Result<Json> Api::BodyObject(const HttpRequest& req) {
  JsonLimits limits;
  limits.max_bytes = options_.config.limits.max_body_bytes;
  CUSTOS_ASSIGN_OR_RETURN(Json j, ParseUntrustedJson(req.body, limits));
  if (!j.is_object())
    return Status(Reason::kSchemaViolation, "the body must be a JSON object", "");
  return j;
}

Status Api::BindAgent(Json* call, const Identity& who, bool record) {
  auto it = call->find("agent");
  if (it == call->end()) {
    (*call)["agent"] = who.agent;
    return Status::Ok();
  }
  if (it->is_string() && it->get<std::string>() == who.agent)
    return Status::Ok();
  Status refused(
      Reason::kIdentityMismatch,
      "the caller is '" + who.agent + "' (" + who.via + "); an agent may only act as itself",
      "/agent");
  if (record)
    kernel_->RecordRefusal(*call, "identity", refused);
  return refused;
}

HttpResponse Api::Syscall(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok()) {
    // Malformed input from an authenticated caller still leaves a trace in the log.
    kernel_->RecordRefusal(Json{{"agent", who.agent}}, "schema", body.status());
    metrics_->Decided("deny", ReasonName(body.status().reason()));
    return ErrorResponse(body.status());
  }
  Json call = std::move(body).value();
  if (Status st = BindAgent(&call, who, /*record=*/true); !st.ok()) {
    metrics_->Decided("deny", ReasonName(st.reason()));
    return ErrorResponse(st);
  }
  // The body is the syscall as the library takes it, so streaming is asked for by Accept only.
  return Respond(std::move(call), AcceptsEventStream(req.accept), /*stream_output=*/true,
                 [](const kernel::SyscallResult& r) { return r.ToJson(); });
}

kernel::SyscallResult Api::ExecuteCall(const Json& call, const kernel::ExecuteHooks& hooks) {
  std::string kind_name;
  Result<kernel::Syscall> parsed = kernel::ParseSyscall(call, &kind_name);
  kernel::SyscallResult result;
  if (parsed.ok()) {
    wallet_.Attach(*parsed);
    result = kernel_->Execute(*parsed, hooks);
    wallet_.Observe(*parsed, result);
  } else {
    result = kernel_->RecordRefusal(call, "schema", parsed.status());
  }
  metrics_->Decided(VerdictName(result.decision.verdict), ReasonName(result.decision.reason));
  return result;
}

HttpResponse Api::Respond(Json call, bool stream, bool stream_output,
                          std::function<Json(const kernel::SyscallResult&)> shape) {
  if (!stream)
    return JsonResponse(200, shape(ExecuteCall(call, kernel::ExecuteHooks{})));
  // Nothing runs yet: the transport starts the stream, then runs the call on a worker.
  HttpResponse r;
  r.content_type = "text/event-stream";
  r.events = std::make_shared<CallStream>(
      [this, call = std::move(call)](const kernel::ExecuteHooks& hooks) {
        return ExecuteCall(call, hooks);
      },
      std::move(shape), stream_output);
  return r;
}

HttpResponse Api::Explain(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  Json j = std::move(body).value();
  if (j.size() == 1 && j.contains("id") && j["id"].is_string()) {
    // An action id: the recorded trace (decision and outcome entries) of that syscall.
    const std::string id = j["id"].get<std::string>();
    const std::string needle = "\"syscall_id\":" + Json(id).dump();
    Result<std::optional<store::LogRow>> last = kernel_->store().LastLog();
    if (!last.ok())
      return ErrorResponse(last.status());
    store::LogQuery q;
    q.from_seq = std::max<int64_t>(1, (*last ? (*last)->seq : 0) - kExplainScanEntries + 1);
    q.limit = 5000;
    Json entries = Json::array();
    while (true) {
      Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(q);
      if (!rows.ok())
        return ErrorResponse(rows.status());
      for (const store::LogRow& row : *rows) {
        if (row.canonical.find(needle) == std::string::npos)
          continue;
        if (!who.admin && row.agent != who.agent) {
          return ErrorResponse(
              Status(Reason::kIdentityMismatch, "that action belongs to another agent", "/id"));
        }
        entries.push_back(EntryJson(row));
      }
      if (rows->size() < static_cast<size_t>(q.limit))
        break;
      q.from_seq = rows->back().seq + 1;
    }
    if (entries.empty()) {
      return ErrorResponse(Status(
          Reason::kNotFound, "no recorded action has this id (among the newest entries)", "/id"));
    }
    return JsonResponse(200, Json{{"id", id}, {"entries", entries}});
  }
  if (Status st = BindAgent(&j, who, /*record=*/false); !st.ok())
    return ErrorResponse(st);
  Result<kernel::Syscall> call = kernel::ParseSyscall(j);
  if (!call.ok())
    return ErrorResponse(call.status());
  kernel::SyscallResult shown;
  kernel::Syscall dry = *call;
  wallet_.Attach(dry);
  shown.decision = kernel_->Explain(dry);
  Json out = shown.ToJson();
  return JsonResponse(200, Json{{"decision", out["decision"]}});
}

kernel::SyscallResult Api::ExecuteBound(Json call, const Identity& who, Status* refused) {
  if (Status st = BindAgent(&call, who, /*record=*/true); !st.ok()) {
    metrics_->Decided("deny", ReasonName(st.reason()));
    *refused = st;
    return {};
  }
  return ExecuteCall(call, kernel::ExecuteHooks{});
}

HttpResponse Api::Grant(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  const Json& j = *body;
  if (!j.contains("agent") || !j["agent"].is_string())
    return ErrorResponse(Status(Reason::kSchemaViolation, "agent must be a string", "/agent"));
  if (j.contains("run") && !j["run"].is_string())
    return ErrorResponse(Status(Reason::kSchemaViolation, "run must be a string", "/run"));
  kernel::GrantOptions o;
  for (const char* k : {"syscalls", "resource_prefixes"}) {
    if (!j.contains(k))
      continue;
    const std::string key(k);
    if (!j[key].is_array()) {
      return ErrorResponse(
          Status(Reason::kSchemaViolation, key + " must be an array of strings", "/" + key));
    }
    for (size_t i = 0; i < j[key].size(); ++i) {
      if (!j[key][i].is_string()) {
        return ErrorResponse(Status(Reason::kSchemaViolation, key + " must be an array of strings",
                                    "/" + key + "/" + std::to_string(i)));
      }
      (key == "syscalls" ? o.syscalls : o.resource_prefixes)
          .push_back(j[key][i].get<std::string>());
    }
  }
  for (const char* k : {"ttl_ms", "max_uses", "rate_count", "rate_window_ms"}) {
    if (!j.contains(k))
      continue;
    const std::string key(k);
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0) {
      return ErrorResponse(
          Status(Reason::kSchemaViolation, key + " must be a non-negative integer", "/" + key));
    }
    const int64_t v = j[key].get<int64_t>();
    if (key == "ttl_ms") {
      o.ttl_ms = v;
    } else if (key == "max_uses") {
      o.max_uses = v;
    } else if (key == "rate_count") {
      o.rate_count = v;
    } else {
      o.rate_window_ms = v;
    }
  }
  const std::string agent = j["agent"].get<std::string>();
  const std::string run = j.value("run", std::string());
  Result<std::string> token = kernel_->Grant(agent, run, o);
  if (!token.ok())
    return ErrorResponse(token.status());
  return JsonResponse(
      200, Json{{"agent", agent}, {"run", run}, {"token", *token}, {"granted_by", who.agent}});
}

HttpResponse Api::Revoke(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  const Json& j = *body;
  if (!j.contains("token") || !j["token"].is_string()) {
    return ErrorResponse(Status(Reason::kSchemaViolation,
                                "token must be a token or a revocation id (hex)", "/token"));
  }
  const std::string note = "by " + who.agent + ": " + j.value("note", std::string());
  Result<std::string> id = kernel_->Revoke(j["token"].get<std::string>(), note);
  if (!id.ok())
    return ErrorResponse(id.status());
  return JsonResponse(200, Json{{"revoked", true}, {"revocation_id", *id}});
}

HttpResponse Api::Invoke(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  const Json& j = *body;
  Result<std::string> mode = ParseResponseMode(j);
  if (!mode.ok())
    return ErrorResponse(mode.status());
  for (const char* k : {"tool", "run"}) {
    if (!j.contains(k) || !j[k].is_string()) {
      return ErrorResponse(Status(Reason::kSchemaViolation, std::string(k) + " must be a string",
                                  "/" + std::string(k)));
    }
  }
  Json call = {{"run", j["run"]},
               {"kind", "tool.invoke"},
               {"target", j["tool"]},
               {"args", {{"arguments", j.value("args", Json::object())}}}};
  for (const char* k : {"agent", "token", "intent", "inputs"}) {
    if (j.contains(k))
      call[k] = j[k];
  }
  bool stream = AcceptsEventStream(req.accept);
  if (j.contains("stream")) {
    if (!j["stream"].is_boolean())
      return ErrorResponse(
          Status(Reason::kSchemaViolation, "stream must be true or false", "/stream"));
    stream = stream || j["stream"].get<bool>();
  }
  if (Status st = BindAgent(&call, who, /*record=*/true); !st.ok()) {
    metrics_->Decided("deny", ReasonName(st.reason()));
    return ErrorResponse(st);
  }
  // Output events only in raw mode: a stream never shows more than the final frame would.
  const bool stream_output = *mode == "raw";
  return Respond(std::move(call), stream, stream_output,
                 [mode = *mode](const kernel::SyscallResult& r) {
                   Json out = r.ToJson();
                   out["response_mode"] = mode;
                   if (!r.frame.is_null())
                     out["frame"] = ShapeFrame(r.frame, mode);
                   return out;
                 });
}

HttpResponse Api::Expand(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  const Json& j = *body;
  for (const char* k : {"handle", "run"}) {
    if (!j.contains(k) || !j[k].is_string()) {
      return ErrorResponse(Status(Reason::kSchemaViolation, std::string(k) + " must be a string",
                                  "/" + std::string(k)));
    }
  }
  Result<ExpandQuery> q = ParseExpandQuery(j);
  if (!q.ok())
    return ErrorResponse(q.status());
  // Reading the handle is a context.read syscall: decided (ownership, labels) and recorded.
  Json call = {{"run", j["run"]}, {"kind", "context.read"}, {"target", j["handle"]}};
  if (j.contains("agent"))
    call["agent"] = j["agent"];
  Status refused;
  kernel::SyscallResult r = ExecuteBound(std::move(call), who, &refused);
  if (!refused.ok())
    return ErrorResponse(refused);
  Json out = r.ToJson();
  if (!r.decision.allowed() || !r.frame.is_object() || !r.frame.contains("text")) {
    return JsonResponse(200, out);
  }
  const std::string text = r.frame["text"].get<std::string>();
  const bool truncated = r.frame.value("truncated", false);
  Json rows = truncated ? Json() : ExpandRows(text, *q);
  if (rows.is_null()) {
    // Not a (complete) JSON array: page through lines instead; filter and fields do not apply.
    Json lines = Json::array();
    int64_t n = 0;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos)
        end = text.size();
      if (n >= q->offset && static_cast<int64_t>(lines.size()) < q->limit)
        lines.push_back(text.substr(start, end - start));
      ++n;
      start = end + 1;
    }
    rows = {{"lines", lines}, {"total_lines", n}, {"offset", q->offset}, {"limit", q->limit}};
    if (truncated)
      rows["truncated"] = true;
  }
  rows["labels"] = r.frame.value("labels", Json::array());
  out["frame"] = rows;
  return JsonResponse(200, out);
}

HttpResponse Api::Budgets(std::string_view query, const Identity& who) {
  const std::optional<std::string> run = QueryParam(query, "run");
  if (!run || run->empty())
    return ErrorResponse(Status(Reason::kSchemaViolation, "run is required", "?run"));
  // Each figure is an `assert budget_remaining` syscall of the caller: read through the kernel,
  // decided and recorded like any other call, so a budget read is never a side channel.
  Json remaining = Json::object();
  for (int i = 0; i < budget::kResourceCount; ++i) {
    const std::string name(budget::ResourceName(static_cast<budget::Resource>(i)));
    Result<kernel::Syscall> call =
        kernel::ParseSyscall(Json{{"agent", who.agent},
                                  {"run", *run},
                                  {"kind", "assert"},
                                  {"target", "budget_remaining"},
                                  {"args", {{"resource", name}, {"at_least", 0}}}});
    if (!call.ok())
      return ErrorResponse(call.status());
    wallet_.Attach(*call);
    const kernel::SyscallResult r = kernel_->Execute(*call);
    metrics_->Decided(VerdictName(r.decision.verdict), ReasonName(r.decision.reason));
    if (!r.decision.allowed()) {
      return ErrorResponse(Status(r.decision.reason, r.decision.explanation, "/" + name));
    }
    const int64_t left = r.frame.value("remaining", int64_t{0});
    // Resources the policy does not budget are unlimited (the ledger's kUnlimited, minus use).
    remaining[name] = left > budget::kUnlimited / 2 ? Json("unlimited") : Json(left);
  }
  return JsonResponse(200, Json{{"agent", who.agent}, {"run", *run}, {"remaining", remaining}});
}

HttpResponse Api::ListApprovals(std::string_view query) {
  const std::string state = QueryParam(query, "state").value_or("pending");
  if (state != "pending" && state != "approved" && state != "denied" && state != "expired" &&
      state != "all") {
    return ErrorResponse(Status(Reason::kInvalidArgument,
                                "state is pending | approved | denied | expired | all", "?state"));
  }
  Result<std::vector<store::Approval>> list =
      kernel_->store().ListApprovals(state == "all" ? "" : state);
  if (!list.ok())
    return ErrorResponse(list.status());
  Json out = Json::array();
  for (const store::Approval& a : *list) {
    out.push_back({{"id", a.id},
                   {"agent", a.agent},
                   {"run", a.run},
                   {"syscall", a.syscall},
                   {"target", a.target},
                   {"rule", a.rule},
                   {"question", a.question},
                   {"state", a.state},
                   {"answered_by", a.answered_by},
                   {"note", a.note},
                   {"created_ms", a.created_ms},
                   {"deadline_ms", a.deadline_ms},
                   {"answered_ms", a.answered_ms}});
  }
  return JsonResponse(200, Json{{"approvals", out}});
}

HttpResponse Api::AnswerApproval(const std::string& id, const HttpRequest& req,
                                 const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  const Json& j = *body;
  if (!j.contains("approve") || !j["approve"].is_boolean()) {
    return ErrorResponse(
        Status(Reason::kSchemaViolation, "approve must be true or false", "/approve"));
  }
  std::string note;
  if (j.contains("note")) {
    if (!j["note"].is_string())
      return ErrorResponse(Status(Reason::kSchemaViolation, "note must be a string", "/note"));
    note = j["note"].get<std::string>();
  }
  const bool approve = j["approve"].get<bool>();
  if (Status st = kernel_->AnswerApproval(id, approve, who.agent, note); !st.ok())
    return ErrorResponse(st);
  return JsonResponse(200, Json{{"id", id}, {"state", approve ? "approved" : "denied"}});
}

HttpResponse Api::AuditQuery(std::string_view query, const Identity& who) {
  Result<int64_t> from = IntParam(query, "from_seq", 1, 1, INT64_MAX);
  Result<int64_t> limit = IntParam(query, "limit", 100, 1, kMaxAuditLimit);
  Result<int64_t> offset = IntParam(query, "offset", 0, 0, 1'000'000);
  Result<int64_t> since = IntParam(query, "since_ms", 0, 0, INT64_MAX);
  Result<int64_t> until = IntParam(query, "until_ms", INT64_MAX, 0, INT64_MAX);
  for (const Result<int64_t>* r : {&from, &limit, &offset, &since, &until}) {
    if (!r->ok())
      return ErrorResponse(r->status());
  }
  store::LogQuery q;
  q.from_seq = *from;
  q.agent = QueryParam(query, "agent").value_or("");
  q.run = QueryParam(query, "run").value_or("");
  q.verdict = QueryParam(query, "decision").value_or(QueryParam(query, "verdict").value_or(""));
  if (!who.admin) {
    if (!q.agent.empty() && q.agent != who.agent) {
      return ErrorResponse(Status(Reason::kIdentityMismatch,
                                  "only admins may read another agent's entries", "?agent"));
    }
    q.agent = who.agent;
  }
  // Time filtering happens here, so page through the store until the page is full.
  Json entries = Json::array();
  int64_t skipped = 0, next = q.from_seq;
  q.limit = 1000;
  bool more = true;
  while (more && static_cast<int64_t>(entries.size()) < *limit) {
    Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(q);
    if (!rows.ok())
      return ErrorResponse(rows.status());
    more = rows->size() == static_cast<size_t>(q.limit);
    for (const store::LogRow& row : *rows) {
      next = row.seq + 1;
      if (row.time_ms < *since || row.time_ms > *until)
        continue;
      if (skipped < *offset) {
        ++skipped;
        continue;
      }
      entries.push_back(EntryJson(row));
      if (static_cast<int64_t>(entries.size()) >= *limit) {
        more = true;
        break;
      }
    }
    if (!rows->empty())
      q.from_seq = next;
  }
  Json out = {{"entries", entries}};
  if (more)
    out["next_from_seq"] = next;
  return JsonResponse(200, out);
}

HttpResponse Api::AuditTail(std::string_view query, const Identity& who) {
  Result<int64_t> from = IntParam(query, "from_seq", 0, 0, INT64_MAX);
  if (!from.ok())
    return ErrorResponse(from.status());
  std::string agent = QueryParam(query, "agent").value_or("");
  if (!who.admin) {
    if (!agent.empty() && agent != who.agent) {
      return ErrorResponse(Status(Reason::kIdentityMismatch,
                                  "only admins may read another agent's entries", "?agent"));
    }
    agent = who.agent;
  }
  int64_t start = *from;
  if (start == 0) {  // default: only what is appended from now on
    Result<std::optional<store::LogRow>> last = kernel_->store().LastLog();
    if (!last.ok())
      return ErrorResponse(last.status());
    start = (*last ? (*last)->seq : 0) + 1;
  }
  HttpResponse r;
  r.content_type = "text/event-stream";
  r.stream_tail = true;
  r.tail_from_seq = start;
  r.tail_agent = agent;
  return r;
}

std::string Api::TailEvents(int64_t* from_seq, const std::string& agent, int max) {
  store::LogQuery q;
  q.from_seq = *from_seq;
  q.limit = max;
  q.agent = agent;
  Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(q);
  if (!rows.ok())
    return "event: error\ndata: " + ErrorResponse(rows.status()).body + "\n\n";
  std::string out;
  for (const store::LogRow& row : *rows) {
    out += "id: " + std::to_string(row.seq) + "\nevent: entry\ndata: " + row.canonical + "\n\n";
    *from_seq = row.seq + 1;
  }
  return out;
}

HttpResponse Api::AuditCheckpoint(const HttpRequest& req, const Identity& who) {
  // Through the kernel: audit.commit is a syscall, decided by policy and recorded like any other.
  Json call = {{"agent", who.agent}, {"run", "custosd"}, {"kind", "audit.commit"}};
  if (!req.body.empty()) {
    Result<Json> body = BodyObject(req);
    if (!body.ok())
      return ErrorResponse(body.status());
    if (body->contains("run")) {
      if (!(*body)["run"].is_string())
        return ErrorResponse(Status(Reason::kSchemaViolation, "run must be a string", "/run"));
      call["run"] = (*body)["run"];
    }
  }
  Result<kernel::Syscall> parsed = kernel::ParseSyscall(call);
  if (!parsed.ok())
    return ErrorResponse(parsed.status());
  wallet_.Attach(*parsed);
  const kernel::SyscallResult result = kernel_->Execute(*parsed);
  metrics_->Decided(VerdictName(result.decision.verdict), ReasonName(result.decision.reason));
  return JsonResponse(200, result.ToJson());
}

HttpResponse Api::AuditProve(const std::string& seq_text, const Identity& who) {
  int64_t seq = 0;
  auto [p, ec] = std::from_chars(seq_text.data(), seq_text.data() + seq_text.size(), seq);
  if (ec != std::errc() || p != seq_text.data() + seq_text.size() || seq < 1) {
    return ErrorResponse(
        Status(Reason::kInvalidArgument, "seq must be a positive integer", "/path/seq"));
  }
  // A caller may see proofs of its own entries only; admins any. The ownership check comes after
  // the proof so "not covered" and "not yours" don't leak which seqs exist to whom.
  Result<audit::EntryInclusion> proof =
      audit::ProveEntry(kernel_->store(), kernel_->identity(), seq);
  if (!proof.ok()) {
    Status st = proof.status();
    if (st.reason() == Reason::kInvalidArgument)
      st = Status(st.reason(), std::string(st.message()), "/path/seq");
    return ErrorResponse(st);
  }
  if (!who.admin && proof->agent != who.agent) {
    return ErrorResponse(Status(Reason::kIdentityMismatch,
                                "entry " + std::to_string(seq) + " belongs to another agent",
                                "/path/seq"));
  }
  return JsonResponse(200, proof->ToJson());
}

Result<Json> Api::Reload() {
  std::lock_guard<std::mutex> l(reload_mu_);
  // Validate everything before changing anything: a bad policy or key file keeps the old ones.
  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const policy::Policy> p,
                          policy::Policy::LoadFile(options_.policy_file));
  CUSTOS_ASSIGN_OR_RETURN(Authenticator a, Authenticator::Load(options_.data_dir, options_.config));
  const std::string old_hash(kernel_->policy()->hash());
  const std::string new_hash(p->hash());
  const std::string name(p->name());
  CUSTOS_RETURN_IF_ERROR(kernel_->ReloadPolicy(std::move(p)));
  {
    std::lock_guard<std::mutex> al(auth_mu_);
    auth_ = std::make_shared<const Authenticator>(std::move(a));
  }
  return Json{{"policy", name}, {"policy_hash", new_hash}, {"old_policy_hash", old_hash}};
}

HttpResponse Api::AdminReload() {
  Result<Json> r = Reload();
  if (!r.ok())
    return ErrorResponse(r.status());
  return JsonResponse(200, *r);
}

HttpResponse Api::Health() { return JsonResponse(200, Json{{"status", "ok"}}); }

HttpResponse Api::Ready() {
  if (draining())
    return ErrorResponse(Status(Reason::kUnavailable, "shutting down"));
  Result<int64_t> n = kernel_->store().LogCount();
  if (!n.ok())
    return ErrorResponse(n.status());
  return JsonResponse(200, Json{{"status", "ready"}, {"log_entries", *n}});
}

HttpResponse Api::MetricsText() {
  const auto t0 = std::chrono::steady_clock::now();
  Result<int64_t> n = kernel_->store().LogCount();
  StoreHealth store;
  store.read_micros =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  store.ok = n.ok();
  store.log_entries = n.ok() ? *n : 0;
  // Per agent and resource, summed over runs: run ids are caller-chosen and unbounded, agent
  // names come from the policy.
  std::map<std::pair<std::string, int>, BudgetFigure> sums;
  for (const auto& [key, st] : kernel_->BudgetAccounts()) {
    for (int i = 0; i < budget::kResourceCount; ++i) {
      BudgetFigure& f = sums[{key.agent, i}];
      f.agent = key.agent;
      f.resource = std::string(budget::ResourceName(static_cast<budget::Resource>(i)));
      f.used += st.used.v[static_cast<size_t>(i)];
      f.reserved += st.reserved.v[static_cast<size_t>(i)];
      const int64_t limit = st.limit.v[static_cast<size_t>(i)];
      if (limit != budget::kUnlimited) {
        f.limit += limit;
        f.limited = true;
      }
    }
  }
  std::vector<BudgetFigure> budgets;
  budgets.reserve(sums.size());
  for (auto& [k, f] : sums)
    budgets.push_back(std::move(f));
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = metrics_->Render(store, budgets);
  return r;
}

HttpResponse Api::RequestCapabilities(const HttpRequest& req, const Identity& who) {
  Result<Json> body = BodyObject(req);
  if (!body.ok())
    return ErrorResponse(body.status());
  const Json& j = *body;
  if (!j.contains("goal") || !j["goal"].is_string()) {
    return ErrorResponse(
        Status(Reason::kSchemaViolation, "goal must be a string describing the task", "/goal"));
  }
  int64_t limit = 10;
  if (j.contains("limit")) {
    if (!j["limit"].is_number_integer() || j["limit"].get<int64_t>() < 1 ||
        j["limit"].get<int64_t>() > 100) {
      return ErrorResponse(
          Status(Reason::kSchemaViolation, "limit must be an integer in [1, 100]", "/limit"));
    }
    limit = j["limit"].get<int64_t>();
  }
  const std::vector<Candidate> c = MatchCapabilities(
      *kernel_->policy(), who.agent, j["goal"].get<std::string>(), static_cast<size_t>(limit));
  Json out = Json::array();
  for (const Candidate& k : c) {
    Json e = {{"kind", k.kind}, {"score", k.score}, {"why", k.why}};
    if (!k.target.empty())
      e["target"] = k.target;
    if (!k.description.empty())
      e["description"] = k.description;
    out.push_back(std::move(e));
  }
  return JsonResponse(200, Json{{"agent", who.agent}, {"candidates", out}});
}

}  // namespace custos::server
