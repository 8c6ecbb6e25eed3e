// HttpServer: a downstream MCP server over Streamable HTTP (the gateway's HTTP back), with
// libcurl — the project's outbound HTTP library (decision 024). Per request: POST with
// `Accept: application/json, text/event-stream`, `Mcp-Session-Id` and `MCP-Protocol-Version`
// once known; the answer is JSON or an event stream whose messages before the response are the
// server's notifications and requests. A GET stream carries the server's other messages
// (reconnected with back-off; a 405 means the server has none). A 404 for a known session means
// it expired: the next call initializes again. Redirects are not followed. Connections are kept
// alive and reused: idle easy handles are pooled, each with its open connection.
//
// The 2026-07-28 era (decision 034): Start() first POSTs server/discover with the gateway's
// envelope; a server that lists 2026-07-28 is spoken to statelessly — no initialize, no session,
// no GET stream, the envelope on every request, and the Streamable HTTP header rules of the era
// on every POST (MCP-Protocol-Version and Mcp-Method always, Mcp-Name for tools/call,
// prompts/get and resources/read, Mcp-Param-* for the x-mcp-header arguments of a tool seen in
// the server's tools/list). Any other answer to the probe (an HTTP error such as 400/404/405, or
// a JSON-RPC error) means the 2025 eras and the initialize handshake.
//
// Decision 042: what a POST's event stream carries before its response is handed on with that
// request's id (the call it belongs to); a stateless server's subscriptions/listen stream is one
// long-lived POST on its own thread.

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "custos/mcp/downstream.h"
#include "custos/mcp/era.h"
#include "custos/mcp/stdio_server.h"

namespace custos::mcp {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// One HTTP exchange: the body is either JSON (collected) or server-sent events (parsed as they
// arrive and handed to on_message). Aborts when `stop` becomes true or a cap is exceeded.
struct Transfer {
  size_t max_bytes = 4 << 20;
  std::function<bool(const Message&)> on_message;  // false: stop reading (the answer is in)
  const std::atomic<bool>* stop = nullptr;
  std::string content_type;
  std::string session_id;
  std::string body;  // JSON body, or the SSE bytes not yet parsed
  std::string data;  // the current event's data
  bool sse = false;
  bool finished = false;  // on_message asked to stop
  bool too_large = false;
  bool bad_message = false;

  void Line(std::string_view line) {
    if (line.empty()) {
      if (!data.empty()) {
        Result<Message> m = ParseMessage(data, max_bytes);
        data.clear();
        if (!m.ok()) {
          bad_message = true;
          finished = true;
        } else if (on_message && !on_message(*m)) {
          finished = true;
        }
      }
      return;
    }
    if (line.starts_with("data:")) {
      std::string_view v = line.substr(5);
      if (!v.empty() && v[0] == ' ')
        v.remove_prefix(1);
      if (!data.empty())
        data += '\n';
      data += v;
      if (data.size() > max_bytes) {
        too_large = true;
        finished = true;
      }
    }
    // event:, id:, retry: and comments carry nothing the gateway uses.
  }

  size_t Write(const char* p, size_t n) {
    if (finished)
      return 0;
    if (!sse) {
      sse = content_type.find("text/event-stream") != std::string::npos;
    }
    body.append(p, n);
    if (!sse) {
      if (body.size() > max_bytes) {
        too_large = true;
        return 0;
      }
      return n;
    }
    size_t start = 0;
    for (size_t nl; !finished && (nl = body.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string_view line(body.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
      Line(line);
    }
    body.erase(0, start);
    if (body.size() > max_bytes)
      too_large = finished = true;
    return finished ? 0 : n;
  }

  static size_t OnWrite(char* p, size_t size, size_t n, void* self) {
    return static_cast<Transfer*>(self)->Write(p, size * n);
  }
  static size_t OnHeader(char* p, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    std::string_view h(p, size * n);
    const size_t colon = h.find(':');
    if (colon != std::string_view::npos) {
      std::string name(h.substr(0, colon));
      for (char& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string_view v = h.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
        v.remove_suffix(1);
      if (name == "content-type")
        t->content_type = Lower(v);
      else if (name == "mcp-session-id")
        t->session_id = std::string(v.substr(0, 256));
    }
    return size * n;
  }
  static int OnProgress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(self);
    return t->stop != nullptr && t->stop->load() ? 1 : 0;
  }
  static std::string Lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }
};

class HttpServer final : public Downstream {
 public:
  HttpServer(ServerConfig config, Callbacks cb) : config_(std::move(config)), cb_(std::move(cb)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }
  ~HttpServer() override {
    Stop();
    for (CURL* h : idle_)
      curl_easy_cleanup(h);
  }

  Status Start() override {
    std::lock_guard start(start_mu_);
    {
      std::lock_guard lock(mu_);
      if (ready_)
        return Status::Ok();
      if (NowMs() < next_start_ms_) {
        return Status(Reason::kMcpServerUnavailable,
                      "MCP server '" + config_.name + "' is backing off after: " + last_error_);
      }
    }
    {
      Result<bool> modern = Discover();
      if (!modern.ok())
        return Failed(modern.status());
      if (*modern) {
        if (cb_.on_event) {
          cb_.on_event("mcp.server.started", {{"server", config_.name},
                                              {"protocol_version", std::string(kStatelessVersion)},
                                              {"transport", "http"}});
        }
        return Status::Ok();
      }
    }
    Json client_caps = Json::object();
    for (const std::string& c : config_.client_capabilities)
      client_caps[c] = Json::object();
    const Message init =
        Message::Request(Json(NextId()), "initialize",
                         {{"protocolVersion", std::string(kLatestVersion)},
                          {"capabilities", client_caps},
                          {"clientInfo", {{"name", "custos-mcp-gateway"}, {"version", "0.1.0"}}}});
    std::string sid;
    Result<Message> r = Exchange(init, config_.startup_timeout_ms, nullptr, &sid);
    if (!r.ok())
      return Failed(r.status());
    if (r->type != Message::Type::kResponse)
      return Failed(Unavailable("refused initialize: " + r->error_message.substr(0, 256)));
    const std::string v = r->result.is_object() ? r->result.value("protocolVersion", "") : "";
    if (!IsSupportedVersion(v)) {
      return Failed(Status(Reason::kMcpVersionUnsupported,
                           "MCP server '" + config_.name + "' speaks protocol version '" +
                               v.substr(0, 32) + "', which the gateway does not"));
    }
    {
      std::lock_guard lock(mu_);
      session_ = sid;
      version_ = v;
      stateless_ = false;
      capabilities_ = r->result.value("capabilities", Json::object());
      server_info_ = r->result.value("serverInfo", Json::object());
      ready_ = true;
      backoff_ms_ = 100;
    }
    CUSTOS_RETURN_IF_ERROR(Notify("notifications/initialized", nullptr));
    StartGetStream();
    if (cb_.on_event) {
      cb_.on_event("mcp.server.started",
                   {{"server", config_.name}, {"protocol_version", v}, {"transport", "http"}});
    }
    return Status::Ok();
  }

  Result<Message> Call(const std::string& method, const Json& params,
                       const std::function<void(int64_t)>& on_sent) override {
    CUSTOS_RETURN_IF_ERROR(Start());
    if (!stateless())
      return CallInEra(method, params, on_sent);
    // The stateless era: methods it removed are not sent; every request carries the envelope.
    if (!IsStatelessMethod(method)) {
      return Message::Error(nullptr, kMethodNotFound,
                            "'" + method.substr(0, 64) + "' does not exist in protocol revision " +
                                std::string(kStatelessVersion) + ", which server '" + config_.name +
                                "' speaks");
    }
    Json offered;
    {
      std::lock_guard lock(mu_);
      offered = offered_;
    }
    CUSTOS_ASSIGN_OR_RETURN(Message reply,
                            CallInEra(method, WithGatewayEnvelope(params, offered), on_sent));
    if (method == "tools/list" && reply.type == Message::Type::kResponse)
      LearnParamHeaders(reply.result);
    return FromServerEra(method, true, std::move(reply));
  }

  Result<Message> CallInEra(const std::string& method, const Json& params,
                            const std::function<void(int64_t)>& on_sent) {
    const int64_t id = NextId();
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(mu_);
      cancels_[id] = cancel;
    }
    if (on_sent)
      on_sent(id);
    Result<Message> r = Exchange(Message::Request(Json(id), method, params), config_.timeout_ms,
                                 cancel.get(), nullptr);
    {
      std::lock_guard lock(mu_);
      cancels_.erase(id);
    }
    if (cancel->load())
      return Status(Reason::kMcpCancelled, "the client cancelled the request");
    if (!r.ok() && r.status().reason() == Reason::kEffectTimeout) {
      if (!stateless())  // a stateless server's request ends with its HTTP exchange
        Notify("notifications/cancelled", {{"requestId", id}, {"reason", "timeout"}}).IgnoreError();
      return Unavailable("did not answer " + method + " within " +
                         std::to_string(config_.timeout_ms) + " ms");
    }
    return r;
  }

  void Cancel(int64_t id, const std::string& reason) override {
    {
      std::lock_guard lock(mu_);
      auto it = cancels_.find(id);
      if (it == cancels_.end())
        return;
      it->second->store(true);
    }
    if (!stateless())  // aborting the transfer is a stateless server's cancellation
      Notify("notifications/cancelled", {{"requestId", id}, {"reason", reason}}).IgnoreError();
  }

  Status Notify(const std::string& method, const Json& params) override {
    return Post(Message::Notification(method, params));
  }
  Status Respond(const Message& response) override {
    if (stateless()) {
      return Status(Reason::kMcpProtocolError, "MCP server '" + config_.name + "' speaks " +
                                                   std::string(kStatelessVersion) +
                                                   ", which has no server-to-client requests");
    }
    return Post(response);
  }
  void OfferClientCapabilities(const Json& capabilities) override {
    std::lock_guard lock(mu_);
    offered_ = capabilities.is_object() ? capabilities : Json::object();
  }

  Result<Message> Listen(const Json& params) override {
    CUSTOS_RETURN_IF_ERROR(Start());
    if (!stateless()) {
      return Message::Error(nullptr, kMethodNotFound,
                            "MCP server '" + config_.name + "' speaks " + protocol_version() +
                                ", which has no subscriptions/listen");
    }
    std::lock_guard call(listen_call_mu_);
    EndListen();
    Json offered;
    {
      std::lock_guard lock(mu_);
      offered = offered_;
    }
    auto ls = std::make_shared<ListenStream>();
    const Message req = Message::Request(Json(NextId()), "subscriptions/listen",
                                         WithGatewayEnvelope(params, offered));
    listen_ = ls;
    ls->thread = std::thread([this, ls, req] { RunListen(*ls, req); });
    std::unique_lock lock(ls->mu);
    if (ls->cv.wait_for(lock, std::chrono::milliseconds(config_.timeout_ms),
                        [&] { return ls->answer.has_value(); })) {
      return *ls->answer;
    }
    lock.unlock();
    EndListen();
    return Unavailable("did not acknowledge subscriptions/listen within " +
                       std::to_string(config_.timeout_ms) + " ms");
  }

  void StopListening() override {
    std::lock_guard call(listen_call_mu_);
    EndListen();
  }

  void Stop() override {
    StopListening();
    std::thread get;
    std::string sid;
    {
      std::lock_guard lock(mu_);
      stopping_.store(true);
      get = std::move(get_thread_);
      sid = session_;
      ready_ = false;
      stateless_ = false;
      session_.clear();
    }
    if (get.joinable())
      get.join();
    if (!sid.empty()) {
      // Ends the server's session (best effort; a server may answer 405).
      Transfer t;
      Perform("DELETE", "", sid, 2'000, &t).IgnoreError();
    }
    stopping_.store(false);
  }

  const ServerConfig& config() const override { return config_; }
  std::string protocol_version() const override {
    std::lock_guard lock(mu_);
    return version_;
  }
  bool stateless() const override {
    std::lock_guard lock(mu_);
    return stateless_;
  }
  Json capabilities() const override {
    std::lock_guard lock(mu_);
    return capabilities_;
  }
  Json server_info() const override {
    std::lock_guard lock(mu_);
    return server_info_;
  }

 private:
  int64_t NextId() {
    std::lock_guard lock(mu_);
    return next_id_++;
  }

  // POSTs server/discover (REQUIRES: start_mu_ held). True, with the server's state set, when
  // it lists 2026-07-28; false when it answered anything else over HTTP (a 2025 server: 400,
  // 404, 405, a JSON-RPC error, a result without the revision); an error when it did not answer.
  Result<bool> Discover() {
    const Message probe = Message::Request(Json(NextId()), "server/discover",
                                           WithGatewayEnvelope(Json::object(), Json::object()));
    long status = 0;
    Result<Message> r = Exchange(probe, config_.startup_timeout_ms, nullptr, nullptr, &status);
    if (!r.ok())
      return status >= 400 ? Result<bool>(false) : Result<bool>(r.status());
    if (r->type != Message::Type::kResponse || !r->result.is_object())
      return false;
    const Json versions = r->result.value("supportedVersions", Json());
    bool offered = false;
    for (const Json& v : versions.is_array() ? versions : Json::array())
      offered = offered || (v.is_string() && v.get_ref<const std::string&>() == kStatelessVersion);
    if (!offered)
      return false;
    const Json meta = r->result.value("_meta", Json::object());
    std::lock_guard lock(mu_);
    session_.clear();
    version_ = std::string(kStatelessVersion);
    stateless_ = true;
    capabilities_ = r->result.value("capabilities", Json::object());
    server_info_ = meta.is_object() ? meta.value(std::string(kMetaServerInfo), Json::object())
                                    : Json::object();
    ready_ = true;
    backoff_ms_ = 100;
    return true;
  }

  // The Mcp-Param-* declarations of every tool in a tools/list page (the server checks them).
  void LearnParamHeaders(const Json& result) {
    if (!result.contains("tools") || !result["tools"].is_array())
      return;
    std::lock_guard lock(mu_);
    for (const Json& t : result["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
        continue;
      Result<std::vector<McpParamHeader>> d =
          ScanMcpParamHeaders(t.value("inputSchema", Json::object()));
      if (d.ok() && !d->empty() && param_headers_.size() < 4096)
        param_headers_[t["name"].get<std::string>()] = std::move(d).value();
      else
        param_headers_.erase(t["name"].get<std::string>());
    }
  }

  // The era's standard headers for a request carrying the envelope (SEP-2243, as SDK 2.4 sends
  // them): MCP-Protocol-Version and Mcp-Method from the body, Mcp-Name for the three methods
  // that name something, Mcp-Param-* for a tool's declared arguments.
  std::vector<std::string> StatelessHeaders(const Message& m) const {
    std::vector<std::string> h;
    if (!m.is_request() || !HasEnvelopeClaim(m.params))
      return h;
    const Json& v = m.params["_meta"][std::string(kMetaProtocolVersion)];
    h.push_back("MCP-Protocol-Version: " + (v.is_string() ? v.get<std::string>() : ""));
    h.push_back("Mcp-Method: " + m.method);
    const char* field = m.method == "resources/read"                              ? "uri"
                        : (m.method == "tools/call" || m.method == "prompts/get") ? "name"
                                                                                  : nullptr;
    if (field != nullptr && m.params.contains(field) && m.params[field].is_string())
      h.push_back("Mcp-Name: " + EncodeMcpHeaderValue(m.params[field].get<std::string>()));
    if (m.method == "tools/call" && m.params.contains("name") && m.params["name"].is_string()) {
      std::lock_guard lock(mu_);
      auto it = param_headers_.find(m.params["name"].get<std::string>());
      const Json args = m.params.value("arguments", Json::object());
      for (const McpParamHeader& d :
           it == param_headers_.end() ? std::vector<McpParamHeader>() : it->second) {
        const Json* a = &args;
        for (const std::string& k : d.path)
          a = a != nullptr && a->is_object() && a->contains(k) ? &(*a)[k] : nullptr;
        if (a == nullptr || a->is_null() || a->is_object() || a->is_array())
          continue;
        const std::string value = a->is_string()    ? a->get<std::string>()
                                  : a->is_boolean() ? (a->get<bool>() ? "true" : "false")
                                                    : a->dump();
        h.push_back(d.header + ": " + EncodeMcpHeaderValue(value));
      }
    }
    return h;
  }

  Status Unavailable(const std::string& why) const {
    return Status(Reason::kMcpServerUnavailable, "MCP server '" + config_.name + "' " + why);
  }

  Status Failed(Status st) {
    std::lock_guard lock(mu_);
    last_error_ = std::string(st.message()).substr(0, 256);
    next_start_ms_ = NowMs() + backoff_ms_;
    backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 10'000);
    return st;
  }

  // Runs one HTTP request. Non-2xx is an error naming the status (404 of a known session: the
  // session expired, and the server is marked for a new initialize).
  // Easy handles are pooled: a handle keeps its connection to the server open (HTTP/1.1
  // keep-alive), so a call costs no TCP handshake or libcurl setup. curl_easy_reset() clears every
  // option but keeps the live connection.
  struct Lease {
    HttpServer* owner;
    CURL* h;
    ~Lease() {
      if (h != nullptr)
        owner->Release(h);
    }
    CURL* get() const { return h; }
  };
  Lease Acquire() {
    {
      std::lock_guard lock(idle_mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        curl_easy_reset(h);
        return Lease{this, h};
      }
    }
    return Lease{this, curl_easy_init()};
  }
  void Release(CURL* h) {
    std::lock_guard lock(idle_mu_);
    if (idle_.size() < kMaxIdleHandles) {
      idle_.push_back(h);
    } else {
      curl_easy_cleanup(h);
    }
  }

  Status Perform(const char* method, const std::string& body, const std::string& sid,
                 int64_t timeout_ms, Transfer* t, long* status_out = nullptr,
                 const std::vector<std::string>& extra = {}) {
    Lease c = Acquire();
    if (c.get() == nullptr)
      return Status(Reason::kInternal, "curl_easy_init failed");
    curl_slist* raw = nullptr;
    raw = curl_slist_append(raw, "Accept: application/json, text/event-stream");
    if (method == std::string_view("POST"))
      raw = curl_slist_append(raw, "Content-Type: application/json");
    if (!sid.empty())
      raw = curl_slist_append(raw, ("Mcp-Session-Id: " + sid).c_str());
    if (extra.empty()) {
      const std::string v = protocol_version();
      if (!v.empty() && !stateless())
        raw = curl_slist_append(raw, ("MCP-Protocol-Version: " + v).c_str());
    }
    for (const std::string& h : extra) {
      if (h.find_first_of("\r\n") == std::string::npos)  // never a header injection
        raw = curl_slist_append(raw, h.c_str());
    }
    std::unique_ptr<curl_slist, SlistDeleter> headers(raw);
    CURL* h = c.get();
    curl_easy_setopt(h, CURLOPT_URL, config_.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (method == std::string_view("POST")) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    if (timeout_ms > 0)
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5'000L);
    t->max_bytes = config_.max_message_bytes;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Transfer::OnWrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Transfer::OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    const CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status_out != nullptr)
      *status_out = status;
    if (t->too_large) {
      return Status(Reason::kMcpProtocolError, "MCP server '" + config_.name + "' sent over " +
                                                   std::to_string(config_.max_message_bytes) +
                                                   " bytes");
    }
    if (t->bad_message)
      return Status(Reason::kMcpProtocolError,
                    "MCP server '" + config_.name + "' sent a message that is not JSON-RPC");
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return Status(Reason::kEffectTimeout, "timeout");
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t->finished) &&
        rc != CURLE_ABORTED_BY_CALLBACK) {
      return Unavailable(std::string("is unreachable: ") + curl_easy_strerror(rc));
    }
    if (status == 404 && !sid.empty()) {
      std::lock_guard lock(mu_);
      if (session_ == sid) {
        ready_ = false;
        session_.clear();
      }
      return Unavailable("ended its session (404); it is initialized again on the next call");
    }
    if (rc == CURLE_OK && (status < 200 || status > 299))
      return Unavailable("answered HTTP " + std::to_string(status));
    return Status::Ok();
  }

  // POSTs a notification or response: the server answers 202.
  Status Post(const Message& m) {
    std::string sid;
    {
      std::lock_guard lock(mu_);
      sid = session_;
    }
    Transfer t;
    return Perform("POST", m.Serialize(), sid, config_.timeout_ms, &t);
  }

  // POSTs a request and returns its response; messages before it go to the callbacks.
  Result<Message> Exchange(const Message& req, int64_t timeout_ms, const std::atomic<bool>* cancel,
                           std::string* session_out, long* status_out = nullptr) {
    std::string sid;
    {
      std::lock_guard lock(mu_);
      sid = session_;
    }
    std::optional<Message> answer;
    const std::string key = req.id.dump();
    // What the server sends on this POST's stream belongs to this call.
    const int64_t call = req.id.is_number_integer() ? req.id.get<int64_t>() : 0;
    Transfer t;
    t.stop = cancel;
    t.on_message = [&](const Message& m) {
      if (m.is_response() && m.id.dump() == key) {
        answer = m;
        return false;
      }
      Dispatch(m, call);
      return true;
    };
    CUSTOS_RETURN_IF_ERROR(
        Perform("POST", req.Serialize(), sid, timeout_ms, &t, status_out, StatelessHeaders(req)));
    if (session_out != nullptr)
      *session_out = t.session_id;
    if (answer)
      return *answer;
    if (!t.sse) {
      Result<Message> m = ParseMessage(t.body, config_.max_message_bytes);
      if (!m.ok() || !m->is_response() || m->id.dump() != key)
        return Status(Reason::kMcpProtocolError,
                      "MCP server '" + config_.name + "' answered without the response");
      return m;
    }
    if (cancel != nullptr && cancel->load())
      return Status(Reason::kMcpCancelled, "cancelled");
    return Unavailable("closed the event stream before answering");
  }

  void Dispatch(const Message& m, int64_t call) {
    if (m.is_notification() && cb_.on_notification) {
      cb_.on_notification(m, call);
    } else if (m.is_request() && cb_.on_request) {
      cb_.on_request(m, call);
    }
  }

  // The listen stream: one long-lived POST on its own thread, whose event stream carries the
  // acknowledgement and then the stamped change notifications.
  struct ListenStream {
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::condition_variable cv;
    bool acked = false;                     // guarded by mu
    std::optional<Result<Message>> answer;  // guarded by mu: what Listen() returns
    std::thread thread;
  };

  void RunListen(ListenStream& ls, const Message& req) {
    const std::string key = req.id.dump();
    Transfer t;
    t.stop = &ls.stop;
    t.on_message = [&](const Message& received) {
      if (received.is_response()) {
        if (received.id.dump() != key)
          return true;
        std::lock_guard lock(ls.mu);
        if (!ls.acked) {  // a refusal; after the acknowledgement, the server ending the stream
          ls.answer = received;
          ls.cv.notify_all();
        }
        return false;
      }
      Message m = received;
      const Json sub = m.is_notification() ? TakeSubscriptionId(&m) : Json();
      if (m.method == "notifications/subscriptions/acknowledged") {
        std::lock_guard lock(ls.mu);
        if (sub.dump() == key && !ls.acked) {
          ls.acked = true;
          ls.answer = Message::Response(req.id, m.params);
          ls.cv.notify_all();
        }
        return true;
      }
      if (sub.is_null() || sub.dump() == key)
        Dispatch(m, 0);
      return true;
    };
    Status st = Perform("POST", req.Serialize(), "", 0, &t, nullptr, StatelessHeaders(req));
    bool ended = false;
    {
      std::lock_guard lock(ls.mu);
      if (!ls.answer.has_value()) {
        Result<Message> body = ParseMessage(t.body, config_.max_message_bytes);
        if (!st.ok())
          ls.answer = st;
        else if (!t.sse && body.ok() && body->is_response() && body->id.dump() == key)
          ls.answer = std::move(body).value();  // a refusal as a JSON body
        else
          ls.answer = Unavailable("ended subscriptions/listen without acknowledging it");
        ls.cv.notify_all();
      }
      ended = ls.acked && !ls.stop.load();
    }
    if (ended && cb_.on_event) {
      cb_.on_event("mcp.server.listen_ended",
                   {{"server", config_.name},
                    {"why", st.ok() ? "the server ended the stream" : std::string(st.message())}});
    }
  }

  void EndListen() {  // REQUIRES: listen_call_mu_ held
    std::shared_ptr<ListenStream> ls = std::move(listen_);
    listen_.reset();
    if (ls == nullptr)
      return;
    ls->stop.store(true);  // aborts the transfer (within libcurl's progress interval)
    if (ls->thread.joinable())
      ls->thread.join();
  }

  // The server → client stream: reconnected with back-off until Stop(); a 405 means none.
  void StartGetStream() {
    std::lock_guard lock(mu_);
    if (get_thread_.joinable())
      return;
    get_thread_ = std::thread([this] {
      int64_t backoff = 100;
      while (!stopping_.load()) {
        std::string sid;
        {
          std::lock_guard l(mu_);
          if (!ready_)
            break;
          sid = session_;
        }
        Transfer t;
        t.stop = &stopping_;
        t.on_message = [this](const Message& m) {
          Dispatch(m, 0);
          return true;
        };
        long status = 0;
        const int64_t began = NowMs();
        Status st = Perform("GET", "", sid, 0, &t, &status);
        if (status == 405 || stopping_.load())
          break;
        if (NowMs() - began > 10'000)
          backoff = 100;
        for (int64_t slept = 0; slept < backoff && !stopping_.load(); slept += 50)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        backoff = std::min<int64_t>(backoff * 2, 10'000);
        (void)st;
      }
    });
  }

  const ServerConfig config_;
  const Callbacks cb_;
  std::mutex start_mu_;
  mutable std::mutex mu_;
  bool ready_ = false;
  std::string session_;
  std::string version_;
  bool stateless_ = false;  // the server lists 2026-07-28 (Discover)
  Json offered_ = Json::object();
  std::map<std::string, std::vector<McpParamHeader>> param_headers_;  // by tool name
  Json capabilities_;
  Json server_info_;
  int64_t next_id_ = 1;
  int64_t backoff_ms_ = 100;
  int64_t next_start_ms_ = 0;
  std::string last_error_;
  std::map<int64_t, std::shared_ptr<std::atomic<bool>>> cancels_;
  std::atomic<bool> stopping_{false};
  std::thread get_thread_;
  std::mutex listen_call_mu_;             // serialises Listen()/StopListening()
  std::shared_ptr<ListenStream> listen_;  // guarded by listen_call_mu_
  static constexpr size_t kMaxIdleHandles = 64;
  std::mutex idle_mu_;
  std::vector<CURL*> idle_;  // guarded by idle_mu_
};

}  // namespace

std::unique_ptr<Downstream> MakeDownstream(ServerConfig config, Downstream::Callbacks callbacks) {
  if (!config.url.empty())
    return std::make_unique<HttpServer>(std::move(config), std::move(callbacks));
  return std::make_unique<StdioServer>(std::move(config), std::move(callbacks));
}

}  // namespace custos::mcp
