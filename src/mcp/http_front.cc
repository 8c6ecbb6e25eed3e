#include "custos/mcp/http_front.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "custos/crypto/random.h"
#include "custos/mcp/access_token.h"
#include "custos/mcp/gateway.h"
#include "custos/mcp/jsonrpc.h"
#include "custos/mcp/stdio_server.h"

namespace custos::mcp {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A transport error: the reason's HTTP status and a JSON-RPC error body naming the reason.
HttpAnswer ErrorAnswer(const Status& st, const Json& id = nullptr, int code = -32000) {
  HttpAnswer a;
  a.status = InfoOf(st.reason()).http_status;
  a.body = Message::Error(id, code, std::string(st.message()),
                          {{"reason", std::string(ReasonName(st.reason()))}})
               .Serialize();
  return a;
}

// True if the Accept header lists `type` (or a wildcard covering it).
bool Accepts(std::string_view accept, std::string_view type) {
  const std::string a = Lower(accept);
  const std::string major = std::string(type.substr(0, type.find('/'))) + "/*";
  size_t pos = 0;
  while (pos <= a.size()) {
    size_t end = a.find(',', pos);
    if (end == std::string::npos)
      end = a.size();
    std::string item = a.substr(pos, end - pos);
    item = item.substr(0, item.find(';'));
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item == type || item == "*/*" || item == major)
      return true;
    pos = end + 1;
  }
  return false;
}

// One POST that carries requests: its responses (and, once it streams, the messages related to
// its calls) go back on it.
struct Post {
  std::mutex mu;
  std::shared_ptr<HttpExchange> ex;
  std::set<std::string> outstanding;   // request ids (dumped) not answered yet
  std::vector<std::string> collected;  // responses while still undecided between JSON and SSE
  std::vector<std::pair<std::string, std::string>> headers;  // Mcp-Session-Id on initialize
  bool was_array = false;
  bool streaming = false;
  bool done = false;

  HttpAnswer Head() const {
    HttpAnswer h;
    h.content_type = "text/event-stream";
    h.headers = headers;
    h.headers.emplace_back("Cache-Control", "no-cache");
    return h;
  }

  // A response for `key`; true once every response of this POST went out.
  bool Deliver(const std::string& key, const std::string& line) {
    std::lock_guard lock(mu);
    if (done)
      return true;
    outstanding.erase(key);
    if (streaming) {
      ex->Write(SseEvent(line));
    } else {
      collected.push_back(line);
    }
    if (!outstanding.empty())
      return false;
    done = true;
    if (streaming) {
      ex->End();
    } else {
      HttpAnswer a;
      a.headers = headers;
      if (was_array) {
        a.body = "[";
        for (size_t i = 0; i < collected.size(); ++i)
          a.body += (i ? "," : "") + collected[i];
        a.body += "]";
      } else {
        a.body = collected.front();
      }
      ex->Respond(std::move(a));
    }
    ex.reset();
    return true;
  }

  // A request or notification related to this POST's calls: switches it to an event stream.
  bool Push(const std::string& line) {
    std::lock_guard lock(mu);
    if (done || ex == nullptr || ex->closed())
      return false;
    if (!streaming) {
      streaming = true;
      ex->Begin(Head());
      for (const std::string& c : collected)
        ex->Write(SseEvent(c));
      collected.clear();
    }
    ex->Write(SseEvent(line));
    return true;
  }

  void Abort() {
    std::lock_guard lock(mu);
    if (done)
      return;
    done = true;
    if (ex != nullptr) {
      if (streaming) {
        ex->End();
      } else {
        ex->Respond(ErrorAnswer(Status(Reason::kMcpSessionNotFound, "the session ended")));
      }
    }
    ex.reset();
  }
};

struct Session {
  std::string id;
  std::unique_ptr<Gateway> gateway;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Post>> posts;     // by request id (dumped)
  std::map<std::string, std::shared_ptr<Post>> progress;  // by progress token (dumped)
  std::shared_ptr<HttpExchange> get_stream;
  std::string version;  // negotiated revision, from the initialize response
  std::string subject;  // the access token's `sub` at initialize (OAuth only)
  Clock::time_point last_used = Clock::now();
  int64_t dropped = 0;
  bool ended = false;

  void ForgetPost(const std::shared_ptr<Post>& p) {  // REQUIRES: mu held
    for (auto it = progress.begin(); it != progress.end();) {
      it = it->second == p ? progress.erase(it) : std::next(it);
    }
  }

  void ToStream(const std::string& line) {  // REQUIRES: mu held
    if (get_stream != nullptr && !get_stream->closed()) {
      get_stream->Write(SseEvent(line));
    } else {
      ++dropped;
    }
  }

  // Everything the gateway sends this session's client (one line per message, serialised).
  void OnLine(const std::string& line) {
    if (!line.empty() && line.front() == '[') {
      // A 2025-03-26 batch's responses in one array: each goes to its POST, which assembles
      // its own array (or stream).
      Result<Batch> batch = ParseBatch(line);
      if (batch.ok()) {
        for (const Message& each : batch->messages)
          OnLine(each.Serialize());
      }
      return;
    }
    Result<Message> m = ParseMessage(line);
    if (!m.ok())
      return;
    std::lock_guard lock(mu);
    if (m->is_response()) {
      const std::string key = m->id.dump();
      if (version.empty() && m->type == Message::Type::kResponse && m->result.is_object() &&
          m->result.contains("protocolVersion") && m->result["protocolVersion"].is_string()) {
        version = m->result["protocolVersion"].get<std::string>();
      }
      auto it = posts.find(key);
      if (it == posts.end()) {
        ToStream(line);
        return;
      }
      std::shared_ptr<Post> p = it->second;
      posts.erase(it);
      if (p->Deliver(key, line))
        ForgetPost(p);
      return;
    }
    if (m->is_notification()) {
      if (m->method == "notifications/progress" && m->params.is_object() &&
          m->params.contains("progressToken")) {
        auto it = progress.find(m->params["progressToken"].dump());
        if (it != progress.end() && it->second->Push(line))
          return;
      }
      if (m->method != "notifications/message") {
        ToStream(line);
        return;
      }
    }
    // A request to the client (sampling, elicitation, roots) or a server's log message: it
    // happens during a call, so on an open POST when there is one (the SDK reads every
    // stream), else on the GET stream.
    for (auto& [k, p] : posts) {
      if (p->Push(line))
        return;
    }
    ToStream(line);
  }

  void End() {
    std::map<std::string, std::shared_ptr<Post>> open;
    std::shared_ptr<HttpExchange> stream;
    {
      std::lock_guard lock(mu);
      if (ended)
        return;
      ended = true;
      open.swap(posts);
      progress.clear();
      stream = std::move(get_stream);
    }
    for (auto& [k, p] : open)
      p->Abort();
    if (stream != nullptr)
      stream->End();
    if (gateway != nullptr)
      gateway->Shutdown();
  }
};

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name)
      return v;
  }
  return {};
}

std::string SseEvent(std::string_view json) {
  std::string e;
  e.reserve(json.size() + 24);
  e += "event: message\ndata: ";
  e += json;
  e += "\n\n";
  return e;
}

struct HttpFront::Impl {
  HttpFrontOptions options;
  std::optional<AccessTokenVerifier> verifier;  // set when [http.auth] is configured
  std::string metadata_path;                    // "/.well-known/oauth-protected-resource/mcp"
  std::string metadata_url;

  // The bearer token's subject, or the 401 answer (RFC 6750 / RFC 9728 WWW-Authenticate).
  Result<std::string> Authenticate(const HttpRequest& req, HttpAnswer* refusal) const {
    if (!verifier)
      return std::string();
    const std::string_view h = req.Header("authorization");
    std::string challenge = "Bearer resource_metadata=\"" + metadata_url + "\"";
    Status st = Status(Reason::kMcpTokenInvalid, "an access token is required");
    if (h.size() > 7 && Lower(h.substr(0, 7)) == "bearer ") {
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      Result<AccessToken> t = verifier->Verify(h.substr(7), now);
      if (t.ok())
        return t->subject;
      st = t.status();
      challenge += ", error=\"invalid_token\"";
    }
    *refusal = ErrorAnswer(st);
    refusal->headers.emplace_back("WWW-Authenticate", challenge);
    return st;
  }

  HttpAnswer Metadata() const {
    HttpAnswer a;
    const AccessTokenConfig& c = verifier->config();
    a.body = Json{{"resource", c.resource},
                  {"authorization_servers", Json::array({c.issuer})},
                  {"bearer_methods_supported", Json::array({"header"})}}
                 .dump();
    return a;
  }
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Session>> sessions;  // guarded by mu
  size_t starting = 0;                                       // sessions being created
  bool closed = false;
  std::condition_variable cv;
  std::thread reaper;

  Status CheckOrigin(const HttpRequest& req) const {
    const std::string_view origin = req.Header("origin");
    if (origin.empty())
      return Status::Ok();
    const auto& allowed = options.config.http.allowed_origins;
    if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end())
      return Status::Ok();
    // Same origin on a loopback name: a page served from this very endpoint. A rebinding page
    // has its own origin (the attacker's name), so it never matches; the Host must be loopback.
    const std::string_view host = req.Header("host");
    const std::string_view name = host.substr(
        0, host.rfind(':') == std::string_view::npos || host.ends_with("]") ? host.size()
                                                                            : host.rfind(':'));
    const bool loopback_host = name == "127.0.0.1" || name == "localhost" || name == "[::1]";
    if (loopback_host && origin == "http://" + std::string(host))
      return Status::Ok();
    return Status(Reason::kMcpOriginRefused, "Origin '" + std::string(origin.substr(0, 128)) +
                                                 "' is not in gateway.toml [http] allowed_origins");
  }

  Result<std::shared_ptr<Session>> FindSession(const HttpRequest& req, const std::string& subject) {
    const std::string_view id = req.Header("mcp-session-id");
    if (id.empty())
      return Status(Reason::kMcpSessionRequired, "Mcp-Session-Id header is required");
    std::shared_ptr<Session> s;
    {
      std::lock_guard lock(mu);
      auto it = sessions.find(std::string(id));
      if (it != sessions.end())
        s = it->second;
    }
    if (s == nullptr)
      return Status(Reason::kMcpSessionNotFound, "no such session (unknown or ended)");
    std::lock_guard lock(s->mu);
    if (s->ended)
      return Status(Reason::kMcpSessionNotFound, "no such session (unknown or ended)");
    if (s->subject != subject)
      return Status(Reason::kMcpSessionForbidden, "this session belongs to another subject");
    s->last_used = Clock::now();
    // The header names a revision; absent means 2025-03-26. Any revision the gateway speaks is
    // accepted, and the session is still served in the one it negotiated (decision 031).
    const std::string_view v = req.Header("mcp-protocol-version");
    if (!v.empty() && !IsSupportedVersion(v)) {
      return Status(Reason::kMcpVersionUnsupported,
                    "MCP-Protocol-Version '" + std::string(v.substr(0, 32)) +
                        "' is not a revision this gateway serves over HTTP (2025-11-25, "
                        "2025-06-18, 2025-03-26); this session negotiated '" +
                        s->version + "'");
    }
    return s;
  }

  void DoPost(const HttpRequest& req, const std::string& subject,
              const std::shared_ptr<HttpExchange>& ex) {
    const std::string ct = Lower(req.Header("content-type"));
    if (ct.substr(0, ct.find(';')) != "application/json") {
      ex->Respond(ErrorAnswer(Status(Reason::kUnsupportedMediaType,
                                     "POST body must be Content-Type application/json")));
      return;
    }
    const std::string_view accept = req.Header("accept");
    if (!Accepts(accept, "application/json") || !Accepts(accept, "text/event-stream")) {
      ex->Respond(ErrorAnswer(Status(Reason::kMcpNotAcceptable,
                                     "Accept must list application/json and text/event-stream")));
      return;
    }
    Result<Batch> batch = ParseBatch(req.body);
    if (!batch.ok()) {
      ex->Respond(ErrorAnswer(batch.status(), nullptr, ErrorCodeFor(batch.status())));
      return;
    }
    if (!batch->bad.empty()) {
      const auto& [id, st] = batch->bad.front();
      ex->Respond(ErrorAnswer(st, id, ErrorCodeFor(st)));
      return;
    }
    const bool init = std::any_of(batch->messages.begin(), batch->messages.end(),
                                  [](const Message& m) { return m.method == "initialize"; });
    if (init) {
      Initialize(req, subject, std::move(batch).value(), ex);
      return;
    }
    Result<std::shared_ptr<Session>> s = FindSession(req, subject);
    if (!s.ok()) {
      ex->Respond(ErrorAnswer(s.status()));
      return;
    }
    Session& session = **s;
    auto post = std::make_shared<Post>();
    post->ex = ex;
    post->was_array = batch->was_array;
    {
      std::lock_guard lock(session.mu);
      if (batch->was_array && session.version != "2025-03-26") {
        ex->Respond(ErrorAnswer(
            Status(Reason::kMcpProtocolError,
                   "JSON-RPC batches are not allowed in protocol version " + session.version),
            nullptr, kInvalidRequest));
        return;
      }
      for (const Message& m : batch->messages) {
        if (!m.is_request())
          continue;
        const std::string key = m.id.dump();
        if (session.posts.count(key) != 0 || !post->outstanding.insert(key).second) {
          ex->Respond(ErrorAnswer(
              Status(Reason::kMcpProtocolError, "request id " + key + " is already in flight"),
              m.id, kInvalidRequest));
          return;
        }
      }
      for (const Message& m : batch->messages) {
        if (!m.is_request())
          continue;
        session.posts[m.id.dump()] = post;
        if (m.params.is_object() && m.params.contains("_meta") && m.params["_meta"].is_object() &&
            m.params["_meta"].contains("progressToken")) {
          session.progress[m.params["_meta"]["progressToken"].dump()] = post;
        }
      }
    }
    const bool has_requests = !post->outstanding.empty();
    session.gateway->HandleLine(req.body);
    if (!has_requests) {
      HttpAnswer a;
      a.status = 202;
      ex->Respond(std::move(a));
    }
  }

  void Initialize(const HttpRequest& req, const std::string& subject, Batch batch,
                  const std::shared_ptr<HttpExchange>& ex) {
    if (batch.was_array || batch.messages.size() != 1) {
      ex->Respond(ErrorAnswer(
          Status(Reason::kMcpProtocolError, "initialize must be the only message of its request"),
          nullptr, kInvalidRequest));
      return;
    }
    if (!req.Header("mcp-session-id").empty()) {
      ex->Respond(ErrorAnswer(
          Status(Reason::kMcpProtocolError, "initialize opens a session; send it without one"),
          batch.messages[0].id, kInvalidRequest));
      return;
    }
    {
      std::lock_guard lock(mu);
      if (closed || sessions.size() + starting >= options.config.http.max_sessions) {
        ex->Respond(ErrorAnswer(
            Status(Reason::kUnavailable, "too many MCP sessions (max " +
                                             std::to_string(options.config.http.max_sessions) +
                                             "); end one with DELETE")));
        return;
      }
      ++starting;
    }
    auto session = std::make_shared<Session>();
    session->id = crypto::RandomId("mcps_");
    session->subject = subject;
    std::weak_ptr<Session> weak = session;
    GatewayOptions go;
    go.config = options.config;
    go.kernel = options.kernel;
    go.send = [weak](const std::string& line) {
      if (std::shared_ptr<Session> s = weak.lock())
        s->OnLine(line);
    };
    Result<std::unique_ptr<Gateway>> g = Gateway::Create(std::move(go));
    if (g.ok())
      session->gateway = std::move(g).value();
    bool shutting = false;
    {
      std::lock_guard lock(mu);
      --starting;
      shutting = closed;
      if (g.ok() && !closed)
        sessions[session->id] = session;
    }
    if (!g.ok()) {
      ex->Respond(ErrorAnswer(g.status()));
      return;
    }
    if (shutting) {
      session->End();
      ex->Respond(ErrorAnswer(Status(Reason::kUnavailable, "the gateway is shutting down")));
      return;
    }
    auto post = std::make_shared<Post>();
    post->ex = ex;
    post->headers.emplace_back("Mcp-Session-Id", session->id);
    const Message& m = batch.messages[0];
    post->outstanding.insert(m.id.dump());
    {
      std::lock_guard lock(session->mu);
      session->posts[m.id.dump()] = post;
    }
    session->gateway->HandleLine(req.body);
  }

  void Get(const HttpRequest& req, const std::string& subject,
           const std::shared_ptr<HttpExchange>& ex) {
    if (!Accepts(req.Header("accept"), "text/event-stream")) {
      ex->Respond(
          ErrorAnswer(Status(Reason::kMcpNotAcceptable, "GET needs Accept: text/event-stream")));
      return;
    }
    Result<std::shared_ptr<Session>> s = FindSession(req, subject);
    if (!s.ok()) {
      ex->Respond(ErrorAnswer(s.status()));
      return;
    }
    std::shared_ptr<Session> session = *s;
    {
      std::lock_guard lock(session->mu);
      if (session->get_stream != nullptr && !session->get_stream->closed()) {
        ex->Respond(ErrorAnswer(
            Status(Reason::kAlreadyExists, "this session already has an open GET stream")));
        return;
      }
      session->get_stream = ex;
      HttpAnswer head;
      head.content_type = "text/event-stream";
      head.headers.emplace_back("Cache-Control", "no-cache");
      ex->Begin(std::move(head));
    }
    std::weak_ptr<Session> weak = session;
    std::weak_ptr<HttpExchange> wex = ex;
    ex->OnClose([weak, wex] {
      std::shared_ptr<Session> s = weak.lock();
      if (s == nullptr)
        return;
      std::lock_guard lock(s->mu);
      if (s->get_stream != nullptr && s->get_stream == wex.lock())
        s->get_stream.reset();
      s->last_used = Clock::now();
    });
  }

  void Delete(const HttpRequest& req, const std::string& subject,
              const std::shared_ptr<HttpExchange>& ex) {
    Result<std::shared_ptr<Session>> s = FindSession(req, subject);
    if (!s.ok()) {
      ex->Respond(ErrorAnswer(s.status()));
      return;
    }
    {
      std::lock_guard lock(mu);
      sessions.erase((*s)->id);
    }
    (*s)->End();
    HttpAnswer a;
    a.status = 200;
    ex->Respond(std::move(a));
  }

  // Heartbeats on GET streams, and sessions idle past session_idle_ms end.
  void Reap() {
    std::unique_lock lock(mu);
    while (!closed) {
      cv.wait_for(lock, std::chrono::milliseconds(options.heartbeat_ms));
      if (closed)
        break;
      std::vector<std::shared_ptr<Session>> idle;
      const auto now = Clock::now();
      for (auto it = sessions.begin(); it != sessions.end();) {
        Session& s = *it->second;
        std::lock_guard sl(s.mu);
        if (s.get_stream != nullptr && !s.get_stream->closed())
          s.get_stream->Write(": keep-alive\n\n");
        const bool busy = !s.posts.empty() || s.get_stream != nullptr;
        if (!busy &&
            now - s.last_used > std::chrono::milliseconds(options.config.http.session_idle_ms)) {
          idle.push_back(it->second);
          it = sessions.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (auto& s : idle)
        s->End();
      lock.lock();
    }
  }
};

HttpFront::HttpFront(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpFront::~HttpFront() { Shutdown(); }

Result<std::unique_ptr<HttpFront>> HttpFront::Create(HttpFrontOptions options) {
  if (options.kernel == nullptr)
    return Status(Reason::kInvalidArgument, "the HTTP front needs a kernel");
  if (options.path.empty() || options.path[0] != '/')
    return Status(Reason::kInvalidArgument, "the MCP endpoint path must start with '/'");
  auto impl = std::make_unique<Impl>();
  const HttpAuthConfig& auth = options.config.http.auth;
  if (auth.enabled) {
    AccessTokenConfig ac;
    ac.resource = auth.resource;
    ac.issuer = auth.issuer;
    ac.jwks = auth.jwks;
    ac.leeway_s = auth.leeway_s;
    CUSTOS_ASSIGN_OR_RETURN(AccessTokenVerifier v, AccessTokenVerifier::Create(std::move(ac)));
    impl->verifier.emplace(std::move(v));
    // RFC 9728 §3.1: the well-known suffix goes between the host and the resource's path.
    const size_t host_end = auth.resource.find('/', auth.resource.find("://") + 3);
    const std::string origin = auth.resource.substr(0, host_end);
    const std::string rpath = host_end == std::string::npos ? "" : auth.resource.substr(host_end);
    impl->metadata_path = "/.well-known/oauth-protected-resource" + (rpath == "/" ? "" : rpath);
    impl->metadata_url = origin + impl->metadata_path;
  }
  impl->options = std::move(options);
  Impl* p = impl.get();
  impl->reaper = std::thread([p] { p->Reap(); });
  return std::unique_ptr<HttpFront>(new HttpFront(std::move(impl)));
}

void HttpFront::Handle(HttpRequest req, std::shared_ptr<HttpExchange> ex) {
  Impl& f = *impl_;
  const std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
  if (f.verifier && path == f.metadata_path) {
    if (req.method != "GET") {
      HttpAnswer a = ErrorAnswer(Status(Reason::kMethodNotAllowed, "metadata is GET only"));
      a.headers.emplace_back("Allow", "GET");
      ex->Respond(std::move(a));
      return;
    }
    ex->Respond(f.Metadata());
    return;
  }
  if (path != f.options.path) {
    ex->Respond(
        ErrorAnswer(Status(Reason::kRouteNotFound, "the MCP endpoint is " + f.options.path)));
    return;
  }
  if (Status st = f.CheckOrigin(req); !st.ok()) {
    ex->Respond(ErrorAnswer(st));
    return;
  }
  HttpAnswer refusal;
  Result<std::string> subject = f.Authenticate(req, &refusal);
  if (!subject.ok()) {
    ex->Respond(std::move(refusal));
    return;
  }
  if (req.method == "POST") {
    f.DoPost(req, *subject, ex);
  } else if (req.method == "GET") {
    f.Get(req, *subject, ex);
  } else if (req.method == "DELETE") {
    f.Delete(req, *subject, ex);
  } else {
    HttpAnswer a = ErrorAnswer(
        Status(Reason::kMethodNotAllowed, "the MCP endpoint takes POST, GET and DELETE"));
    a.headers.emplace_back("Allow", "GET, POST, DELETE");
    ex->Respond(std::move(a));
  }
}

void HttpFront::Shutdown() {
  Impl& f = *impl_;
  std::map<std::string, std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(f.mu);
    if (f.closed && !f.reaper.joinable())
      return;
    f.closed = true;
    sessions.swap(f.sessions);
    f.cv.notify_all();
  }
  if (f.reaper.joinable())
    f.reaper.join();
  for (auto& [id, s] : sessions)
    s->End();
}

std::vector<std::string> HttpFront::paths() const {
  std::vector<std::string> p = {impl_->options.path};
  if (impl_->verifier)
    p.push_back(impl_->metadata_path);
  return p;
}

size_t HttpFront::session_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.size();
}

}  // namespace custos::mcp
