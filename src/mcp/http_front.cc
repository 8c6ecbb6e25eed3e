#include "custos/mcp/http_front.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "custos/crypto/random.h"
#include "custos/mcp/access_token.h"
#include "custos/mcp/era.h"
#include "custos/mcp/gateway.h"
#include "custos/mcp/http_get.h"
#include "custos/mcp/jsonrpc.h"
#include "custos/mcp/stdio_server.h"

namespace custos::mcp {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Now() {  // Unix seconds, for token times
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

// One event stream of a session (a POST answered as text/event-stream, or a GET stream): the
// connection it is on now, which a client that lost it replaces with GET + Last-Event-ID.
struct EventStream {
  std::string id;                    // 128 random bits: event ids are "<id>-<seq>"
  uint64_t next_seq = 1;             // 0 is the priming event's
  uint64_t dropped_through = 0;      // every event up to this seq has left the replay buffer
  std::shared_ptr<HttpExchange> ex;  // null once ended or taken over; may be closed
  bool ended = false;                // nothing more will be sent on it
  bool remembered = true;            // still resumable (Replay forgets the oldest streams)
};

// Replay is one session's resumable event streams (Streamable HTTP resumability, 2025-03-26 on).
// Every event carries `id: <stream id>-<seq>`; the stream id is random, so an event id names one
// stream of one session and the ids of one stream say nothing about another's. Sent events are
// kept in send order, at most `max_bytes` in all (the oldest leave first), for at most
// kMaxStreams streams (the oldest is forgotten first). A client that lost a stream's connection
// resumes it with GET + Last-Event-ID: the events after that id on *that* stream are replayed
// (never another stream's), and the stream goes on on the new connection (or ends there, if it
// had ended). If some of those events already left the buffer, nothing is replayed and the
// client is told (mcp_resume_unavailable): never a silent gap.
// Thread-safe; every write to a stream's connection happens under its lock, so events keep
// their order across a takeover. Lock order: Session::mu, Post::mu, then Replay::mu.
class Replay {
 public:
  static constexpr size_t kMaxStreams = 32;

  explicit Replay(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Begins `head` on `ex` as a new stream; with `prime`, first an event with only its id (seq 0)
  // so the client can resume even before the first message (2025-11-25).
  std::shared_ptr<EventStream> Open(const std::shared_ptr<HttpExchange>& ex, HttpAnswer head,
                                    bool prime) {
    auto s = std::make_shared<EventStream>();
    s->id = crypto::RandomId("");
    s->ex = ex;
    std::lock_guard lock(mu_);
    ex->Begin(std::move(head));
    if (prime)
      ex->Write("id: " + s->id + "-0\ndata: \n\n");
    streams_.push_back(s);
    while (streams_.size() > kMaxStreams) {
      const std::shared_ptr<EventStream> oldest = streams_.front();
      Forget(oldest);
    }
    return s;
  }

  // One JSON-RPC message (one line) as the stream's next event: kept, and written if connected.
  void Send(EventStream& s, std::string_view json) {
    std::lock_guard lock(mu_);
    if (s.ended)
      return;
    const uint64_t seq = s.next_seq++;
    std::string e;
    e.reserve(json.size() + s.id.size() + 48);
    e += "id: ";
    e += s.id;
    e += '-';
    e += std::to_string(seq);
    e += "\nevent: message\ndata: ";
    e += json;
    e += "\n\n";
    if (s.ex != nullptr && !s.ex->closed())
      s.ex->Write(e);
    if (!s.remembered)
      return;
    if (e.size() > max_bytes_) {
      s.dropped_through = seq;
      return;
    }
    bytes_ += e.size();
    events_.push_back(Event{&s, seq, std::move(e)});
    while (bytes_ > max_bytes_) {
      Event& old = events_.front();
      old.stream->dropped_through = std::max(old.stream->dropped_through, old.seq);
      bytes_ -= old.bytes.size();
      events_.pop_front();
    }
  }

  // A comment (heartbeat): written if connected, never kept. True if it was written.
  bool Comment(EventStream& s, std::string_view text) {
    std::lock_guard lock(mu_);
    if (s.ended || s.ex == nullptr || s.ex->closed())
      return false;
    s.ex->Write(std::string(text));
    return true;
  }

  // No more events: the connection ends (a later resume replays what is kept, then ends).
  void End(EventStream& s) {
    std::lock_guard lock(mu_);
    s.ended = true;
    if (s.ex != nullptr)
      s.ex->End();
    s.ex.reset();
  }

  bool Connected(const EventStream& s) const {
    std::lock_guard lock(mu_);
    return s.ex != nullptr && !s.ex->closed();
  }

  // GET with Last-Event-ID: replays on `ex` the events after `last` on its stream and moves the
  // stream there (the old connection, if still open, is ended); an ended stream whose every event
  // the client has is answered 204. Returns the stream, or kMcpResumeUnavailable with nothing
  // sent on `ex`.
  Result<std::shared_ptr<EventStream>> Resume(std::string_view last,
                                              const std::shared_ptr<HttpExchange>& ex,
                                              HttpAnswer head) {
    const size_t dash = last.rfind('-');
    uint64_t seq = 0;
    bool numeric =
        dash != std::string_view::npos && dash + 1 < last.size() && last.size() - dash - 1 <= 19;
    for (size_t i = dash + 1; numeric && i < last.size(); ++i) {
      numeric = last[i] >= '0' && last[i] <= '9';
      seq = seq * 10 + static_cast<uint64_t>(last[i] - '0');
    }
    std::lock_guard lock(mu_);
    std::shared_ptr<EventStream> s;
    if (numeric) {
      const std::string_view id = last.substr(0, dash);
      for (const std::shared_ptr<EventStream>& c : streams_) {
        if (c->id == id)
          s = c;
      }
    }
    if (s == nullptr) {
      return Status(Reason::kMcpResumeUnavailable,
                    "Last-Event-ID names no event stream of this session (unknown, or forgotten: "
                    "a session remembers its last " +
                        std::to_string(kMaxStreams) + " streams)");
    }
    if (seq >= s->next_seq)
      return Status(Reason::kMcpResumeUnavailable, "Last-Event-ID names an event not sent yet");
    if (seq < s->dropped_through) {
      return Status(Reason::kMcpResumeUnavailable,
                    "the events after Last-Event-ID are no longer buffered (the session keeps " +
                        std::to_string(max_bytes_) + " bytes of events)");
    }
    if (s->ended && (s->next_seq == seq + 1)) {
      // Over, and the client has all of it: 204 (an EventSource stops reconnecting on 204; the
      // MCP SDK reconnects after a stream that ended in an error response, and stops here).
      HttpAnswer done;
      done.status = 204;
      ex->Respond(std::move(done));
      return s;
    }
    if (s->ex != nullptr && s->ex != ex)
      s->ex->End();
    ex->Begin(std::move(head));
    for (const Event& e : events_) {
      if (e.stream == s.get() && e.seq > seq)
        ex->Write(e.bytes);
    }
    if (s->ended) {
      ex->End();
      s->ex.reset();
    } else {
      s->ex = ex;
    }
    return s;
  }

  // Ends every stream (the session ended) and drops what is kept.
  void Close() {
    std::lock_guard lock(mu_);
    for (const std::shared_ptr<EventStream>& s : streams_) {
      s->ended = true;
      s->remembered = false;
      if (s->ex != nullptr)
        s->ex->End();
      s->ex.reset();
    }
    streams_.clear();
    events_.clear();
    bytes_ = 0;
  }

 private:
  struct Event {
    EventStream* stream;  // in streams_ (an event of a forgotten stream is dropped with it)
    uint64_t seq;
    std::string bytes;
  };

  void Forget(const std::shared_ptr<EventStream>& s) {  // REQUIRES: mu_ held
    for (auto it = events_.begin(); it != events_.end();) {
      if (it->stream == s.get()) {
        bytes_ -= it->bytes.size();
        it = events_.erase(it);
      } else {
        ++it;
      }
    }
    s->remembered = false;
    streams_.erase(std::find(streams_.begin(), streams_.end(), s));
  }

  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<EventStream>> streams_;  // oldest first
  std::deque<Event> events_;                          // send order
  size_t bytes_ = 0;
};

// One POST that carries requests: its responses (and, once it streams, the messages related to
// its calls) go back on it.
struct Post {
  std::mutex mu;
  Replay* replay = nullptr;             // the session's; outlives the post's use
  bool prime = false;                   // the session speaks 2025-11-25: prime its streams
  std::shared_ptr<HttpExchange> ex;     // until it answers or begins streaming
  std::shared_ptr<EventStream> stream;  // once it streams
  std::set<std::string> outstanding;    // request ids (dumped) not answered yet
  std::vector<std::string> collected;   // responses while still undecided between JSON and SSE
  std::vector<std::pair<std::string, std::string>> headers;  // Mcp-Session-Id on initialize
  bool was_array = false;
  bool streaming = false;
  bool done = false;
  // A stateless context's POST (one request): the id the front gave it toward the gateway.
  Json internal_id;
  std::string key;  // internal_id dumped; "" for a session's POST

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
      replay->Send(*stream, line);
    } else {
      collected.push_back(line);
    }
    if (!outstanding.empty())
      return false;
    done = true;
    if (streaming) {
      replay->End(*stream);
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
  // With `connected_only`, refuses (false) when the client is not connected to it right now; a
  // stream whose connection dropped otherwise keeps the message for the client's resume.
  bool Push(const std::string& line, bool connected_only) {
    std::lock_guard lock(mu);
    if (done)
      return false;
    if (!streaming) {
      if (ex == nullptr || ex->closed())
        return false;
      streaming = true;
      stream = replay->Open(ex, Head(), prime);
      ex.reset();
      for (const std::string& c : collected)
        replay->Send(*stream, c);
      collected.clear();
    } else if (connected_only && !replay->Connected(*stream)) {
      return false;
    }
    replay->Send(*stream, line);
    return true;
  }

  // Answers as an event stream from now on, before anything is sent (a stateless request: the
  // era cancels by closing the request's stream, which the transport notices only once it began).
  void StreamNow() {
    std::lock_guard lock(mu);
    if (done || streaming || ex == nullptr)
      return;
    streaming = true;
    stream = replay->Open(ex, Head(), prime);
    ex.reset();
  }

  void Abort() {
    std::lock_guard lock(mu);
    if (done)
      return;
    done = true;
    if (streaming) {
      replay->End(*stream);
    } else if (ex != nullptr) {
      ex->Respond(ErrorAnswer(Status(Reason::kMcpSessionNotFound, "the session ended")));
    }
    ex.reset();
  }
};

struct Session {
  explicit Session(size_t replay_bytes) : replay(replay_bytes) {}

  // A 2026-07-28 context (decision 038) rather than a session: it has no id a client could
  // name, and serves every stateless request of one principal (token subject), each on its own
  // POST. Its requests reach the gateway under ids (and progress tokens) the front assigns, since
  // the clients' own may collide; the maps give the clients' back.
  bool stateless = false;
  std::map<std::string, Json> client_ids;     // internal request id (dumped) → client's id
  std::map<std::string, Json> client_tokens;  // internal progress token (dumped) → client's
  std::set<std::string> log_keys;             // internal ids of requests whose _meta asked for logs
  uint64_t next_internal = 1;

  std::string id;
  std::unique_ptr<Gateway> gateway;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Post>> posts;     // by request id (dumped)
  std::map<std::string, std::shared_ptr<Post>> progress;  // by progress token (dumped)
  Replay replay;
  // The standalone GET stream last opened; it keeps (bounded) what is sent while its client is
  // away, for a resume.
  std::shared_ptr<EventStream> get_stream;
  std::string version;  // negotiated revision, from the initialize response
  std::string subject;  // the access token's `sub` at initialize (OAuth only)
  Clock::time_point last_used = Clock::now();
  int64_t dropped = 0;
  bool ended = false;

  void ForgetPost(const std::shared_ptr<Post>& p) {  // REQUIRES: mu held
    for (auto it = progress.begin(); it != progress.end();) {
      if (it->second == p) {
        client_tokens.erase(it->first);
        it = progress.erase(it);
      } else {
        ++it;
      }
    }
    if (!p->key.empty()) {
      client_ids.erase(p->key);
      log_keys.erase(p->key);
    }
  }

  void ToStream(const std::string& line) {  // REQUIRES: mu held
    if (get_stream != nullptr) {
      replay.Send(*get_stream, line);
    } else {
      ++dropped;
    }
  }

  bool GetConnected() const {  // REQUIRES: mu held
    return get_stream != nullptr && replay.Connected(*get_stream);
  }

  // Everything the gateway sends this session's client (one line per message, serialised).
  // `related`: the client request (id dumped) the message belongs to, if the gateway knows.
  void OnLine(const std::string& line, const std::string& related = "") {
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
    if (stateless) {
      OnStatelessMessage(std::move(m).value());
      return;
    }
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
        if (it != progress.end() && it->second->Push(line, false))
          return;
      }
      if (m->method != "notifications/message") {
        ToStream(line);
        return;
      }
    }
    // A request to the client (sampling, elicitation, roots) or a server's log message: it
    // happens during a call, so on a POST the client is connected to when there is one (the SDK
    // reads every stream), else on the GET stream if connected, else kept on a POST stream for
    // the client's resume. One that belongs to a call goes on that call's POST first.
    if (auto it = posts.find(related); !related.empty() && it != posts.end()) {
      if (it->second->Push(line, true))
        return;
    }
    for (auto& [k, p] : posts) {
      if (p->Push(line, true))
        return;
    }
    if (!GetConnected()) {
      for (auto& [k, p] : posts) {
        if (p->Push(line, false))
          return;
      }
    }
    ToStream(line);
  }

  // A message for a stateless context's clients. Each belongs to one POST — by its request's
  // internal id, its progress token, or the listen stream's subscription id — and goes out with
  // the client's own id or token; one that belongs to no open POST is dropped (the era has no
  // standalone stream). Log messages go to a connected POST whose request asked for logs.
  // Stateless clients are sent no requests (a server's becomes input_required, decision 034).
  // REQUIRES: mu held.
  void OnStatelessMessage(Message m) {
    auto restore = [this](const std::string& key, Json* id) -> std::shared_ptr<Post> {
      auto it = posts.find(key);
      auto c = client_ids.find(key);
      if (it == posts.end() || c == client_ids.end())
        return nullptr;
      *id = c->second;
      return it->second;
    };
    if (m.is_response()) {
      const std::string key = m.id.dump();
      std::shared_ptr<Post> p = restore(key, &m.id);
      if (p == nullptr)
        return;
      posts.erase(key);
      if (p->Deliver(key, m.Serialize()))
        ForgetPost(p);
      return;
    }
    if (!m.is_notification() || !m.params.is_object())
      return;
    if (m.method == "notifications/progress" && m.params.contains("progressToken")) {
      const std::string token = m.params["progressToken"].dump();
      auto it = progress.find(token);
      auto c = client_tokens.find(token);
      if (it == progress.end() || c == client_tokens.end())
        return;
      m.params["progressToken"] = c->second;
      it->second->Push(m.Serialize(), false);
      return;
    }
    const std::string sub_key(kMetaSubscriptionId);
    if (m.params.contains("_meta") && m.params["_meta"].is_object() &&
        m.params["_meta"].contains(sub_key)) {
      Json& sub = m.params["_meta"][sub_key];
      if (std::shared_ptr<Post> p = restore(sub.dump(), &sub))
        p->Push(m.Serialize(), false);
      return;
    }
    if (m.method == "notifications/message") {
      const std::string line = m.Serialize();
      for (const std::string& key : log_keys) {
        auto it = posts.find(key);
        if (it != posts.end() && it->second->Push(line, true))
          return;
      }
    }
  }

  void End() {
    std::map<std::string, std::shared_ptr<Post>> open;
    {
      std::lock_guard lock(mu);
      if (ended)
        return;
      ended = true;
      open.swap(posts);
      progress.clear();
      get_stream.reset();
    }
    for (auto& [k, p] : open)
      p->Abort();
    replay.Close();
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
      Result<AccessToken> t = verifier->Verify(h.substr(7), Now());
      if (t.ok())
        return t->subject;
      st = t.status();
      challenge += ", error=\"invalid_token\"";
    }
    *refusal = ErrorAnswer(st);
    refusal->headers.emplace_back("WWW-Authenticate", challenge);
    return st;
  }

  // The policy agent a token subject acts as (decision 033): [http.auth.subjects] by exact
  // subject, else its "*" entry, else refused; without the table (or without [http.auth]) every
  // session acts as [gateway] agent.
  Result<std::string> AgentFor(const std::string& subject) const {
    const std::map<std::string, std::string>& m = options.config.http.auth.subjects;
    if (!verifier || m.empty())
      return options.config.agent;
    if (auto it = m.find(subject); it != m.end())
      return it->second;
    if (auto it = m.find("*"); it != m.end())
      return it->second;
    return Status(Reason::kMcpSubjectUnmapped,
                  "token subject '" + subject.substr(0, 128) +
                      "' has no entry in gateway.toml [http.auth.subjects]");
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
  std::map<std::string, std::shared_ptr<Session>> contexts;  // stateless, by subject; mu
  std::mutex context_mu;                                     // held while a context starts
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
    if (req.Header("mcp-session-id").empty() && !batch->was_array && batch->messages.size() == 1 &&
        (HasEnvelopeClaim(batch->messages[0].params) ||
         IsStatelessEra(req.Header("mcp-protocol-version")))) {
      Stateless(req, subject, std::move(batch->messages[0]), ex);
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
    post->replay = &session.replay;
    post->was_array = batch->was_array;
    {
      std::lock_guard lock(session.mu);
      post->prime = session.version == "2025-11-25";
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

  // Starts a session, or with `stateless` the context of `subject` (decision 038): its agent,
  // its gateway and servers; both count against max_sessions. Registered once started.
  Result<std::shared_ptr<Session>> StartSession(const std::string& subject, bool stateless) {
    {
      std::lock_guard lock(mu);
      const size_t open = sessions.size() + contexts.size() + starting;
      if (closed || open >= options.config.http.max_sessions) {
        return Status(Reason::kUnavailable,
                      "too many MCP sessions (max " +
                          std::to_string(options.config.http.max_sessions) +
                          ", stateless contexts included); end one with DELETE");
      }
      ++starting;
    }
    Result<std::string> agent = AgentFor(subject);
    if (!agent.ok()) {
      std::lock_guard lock(mu);
      --starting;
      return agent.status();
    }
    auto session = std::make_shared<Session>(stateless ? 0 : options.replay_bytes);
    session->stateless = stateless;
    session->id = crypto::RandomId(stateless ? "mcpx_" : "mcps_");
    session->subject = subject;
    std::weak_ptr<Session> weak = session;
    GatewayOptions go;
    go.config = options.config;
    go.config.agent = *agent;
    go.kernel = options.kernel;
    go.send = [weak](const std::string& line) {
      if (std::shared_ptr<Session> s = weak.lock())
        s->OnLine(line);
    };
    go.send_related = [weak](const std::string& line, const std::string& related) {
      if (std::shared_ptr<Session> s = weak.lock())
        s->OnLine(line, related);
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
        (stateless ? contexts[subject] : sessions[session->id]) = session;
    }
    if (!g.ok())
      return g.status();
    if (verifier) {  // who opened it, as whom (the session id itself is a credential: not logged)
      Json details = {
          {"subject", subject.substr(0, 256)}, {"agent", *agent}, {"run", session->gateway->run()}};
      if (stateless)
        details["stateless"] = true;
      options.kernel->RecordEvent("mcp.session.opened", details).IgnoreError();
    }
    if (shutting) {
      session->End();
      return Status(Reason::kUnavailable, "the gateway is shutting down");
    }
    return session;
  }

  // The stateless context of `subject`, started on its first request.
  Result<std::shared_ptr<Session>> Context(const std::string& subject) {
    auto find = [&]() -> std::shared_ptr<Session> {
      std::lock_guard lock(mu);
      auto it = contexts.find(subject);
      return it == contexts.end() ? nullptr : it->second;
    };
    std::shared_ptr<Session> c = find();
    if (c == nullptr) {
      std::lock_guard create(context_mu);  // one start per subject, not one per request
      c = find();
      if (c == nullptr) {
        CUSTOS_ASSIGN_OR_RETURN(c, StartSession(subject, true));
      }
    }
    return c;
  }

  // A POST without Mcp-Session-Id whose one request claims 2026-07-28 (decision 038): the
  // headers must agree with the body (SEP-2243, Mcp-Param-* included), then the request runs in
  // its principal's context under an id of the front's, and its answer streams at once.
  void Stateless(const HttpRequest& req, const std::string& subject, Message m,
                 const std::shared_ptr<HttpExchange>& ex) {
    auto header = [&req](std::string_view name) -> std::optional<std::string> {
      const std::string_view v = req.Header(Lower(name));
      return v.empty() ? std::nullopt : std::optional<std::string>(std::string(v));
    };
    Status st = ValidateMcpHttpHeaders(
        {header("mcp-protocol-version"), header("mcp-method"), header("mcp-name")}, m);
    if (!st.ok()) {
      ex->Respond(ErrorAnswer(st, m.id, ErrorCodeFor(st)));
      return;
    }
    if (!m.is_request()) {
      // Without a session a notification has nothing to act on (the era cancels by closing the
      // request's stream), and stateless clients are sent no requests to answer.
      HttpAnswer a;
      a.status = 202;
      ex->Respond(std::move(a));
      return;
    }
    Result<std::shared_ptr<Session>> c = Context(subject);
    if (!c.ok()) {
      ex->Respond(ErrorAnswer(c.status(), m.id));
      return;
    }
    std::shared_ptr<Session> session = std::move(c).value();
    if (m.method == "tools/call" && m.params.is_object() && m.params.contains("name") &&
        m.params["name"].is_string()) {
      const std::optional<Json> schema =
          session->gateway->ToolInputSchema(m.params["name"].get<std::string>());
      Result<std::vector<McpParamHeader>> declared = std::vector<McpParamHeader>();
      if (schema)
        declared = ScanMcpParamHeaders(*schema);
      if (declared.ok() && !declared->empty()) {
        st =
            ValidateMcpParamHeaders(*declared, m.params.value("arguments", Json::object()), header);
        if (!st.ok()) {
          ex->Respond(ErrorAnswer(st, m.id, ErrorCodeFor(st)));
          return;
        }
      }
    }
    auto post = std::make_shared<Post>();
    post->ex = ex;
    post->replay = &session->replay;
    {
      std::lock_guard lock(session->mu);
      if (session->ended) {
        ex->Respond(ErrorAnswer(Status(Reason::kUnavailable, "the gateway is shutting down")));
        return;
      }
      session->last_used = Clock::now();
      const std::string n = std::to_string(session->next_internal++);
      post->internal_id = Json("custos-h" + n);
      post->key = post->internal_id.dump();
      post->outstanding.insert(post->key);
      session->client_ids[post->key] = m.id;
      session->posts[post->key] = post;
      m.id = post->internal_id;
      if (m.params.is_object() && m.params.contains("_meta") && m.params["_meta"].is_object()) {
        Json& meta = m.params["_meta"];
        if (meta.contains("progressToken")) {
          const Json token = Json("custos-p" + n);
          session->client_tokens[token.dump()] = meta["progressToken"];
          session->progress[token.dump()] = post;
          meta["progressToken"] = token;
        }
        if (meta.contains(std::string(kMetaLogLevel)))
          session->log_keys.insert(post->key);
      }
      if (m.method != "server/discover")
        post->StreamNow();
    }
    session->gateway->HandleLine(m.Serialize());
    std::weak_ptr<Session> weak_session = session;
    std::weak_ptr<Post> weak_post = post;
    // After the request reached the gateway, so a cancellation always finds it there.
    ex->OnClose([weak_session, weak_post] {
      // The client closed the request's stream: in this era, its cancellation.
      std::shared_ptr<Session> s = weak_session.lock();
      std::shared_ptr<Post> p = weak_post.lock();
      if (s == nullptr || p == nullptr)
        return;
      {
        std::lock_guard lock(s->mu);
        auto it = s->posts.find(p->key);
        if (it == s->posts.end() || it->second != p)
          return;  // answered (or the context ended)
        s->posts.erase(it);
        s->ForgetPost(p);
      }
      p->Abort();
      s->gateway->HandleLine(
          Message::Notification(
              "notifications/cancelled",
              {{"requestId", p->internal_id}, {"reason", "the client closed the request's stream"}})
              .Serialize());
    });
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
    Result<std::shared_ptr<Session>> started = StartSession(subject, false);
    if (!started.ok()) {
      ex->Respond(ErrorAnswer(started.status(), batch.messages[0].id));
      return;
    }
    std::shared_ptr<Session> session = std::move(started).value();
    auto post = std::make_shared<Post>();
    post->ex = ex;
    post->replay = &session->replay;
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
    HttpAnswer head;
    head.content_type = "text/event-stream";
    head.headers.emplace_back("Cache-Control", "no-cache");
    const std::string_view last = req.Header("last-event-id");
    {
      std::lock_guard lock(session->mu);
      if (!last.empty()) {
        // A resume: of the GET stream or of a POST's; the events after `last` on it, then on.
        Result<std::shared_ptr<EventStream>> r = session->replay.Resume(last, ex, std::move(head));
        if (!r.ok()) {
          ex->Respond(ErrorAnswer(r.status()));
          return;
        }
      } else {
        if (session->GetConnected()) {
          ex->Respond(ErrorAnswer(
              Status(Reason::kAlreadyExists, "this session already has an open GET stream")));
          return;
        }
        session->get_stream =
            session->replay.Open(ex, std::move(head), session->version == "2025-11-25");
      }
    }
    std::weak_ptr<Session> weak = session;
    ex->OnClose([weak] {
      std::shared_ptr<Session> s = weak.lock();
      if (s == nullptr)
        return;
      std::lock_guard lock(s->mu);
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
      for (auto* all : {&sessions, &contexts}) {
        for (auto it = all->begin(); it != all->end();) {
          Session& s = *it->second;
          std::lock_guard sl(s.mu);
          const bool streaming =
              s.get_stream != nullptr && s.replay.Comment(*s.get_stream, ": keep-alive\n\n");
          const bool busy = !s.posts.empty() || streaming;
          if (!busy &&
              now - s.last_used > std::chrono::milliseconds(options.config.http.session_idle_ms)) {
            idle.push_back(it->second);
            it = all->erase(it);
          } else {
            ++it;
          }
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
    if (!auth.jwks_url.empty()) {
      ac.fetch_jwks = [url = auth.jwks_url] { return HttpGet(url, 1 << 20, 10'000); };
      ac.refresh_s = auth.jwks_refresh_s;
    }
    CUSTOS_ASSIGN_OR_RETURN(AccessTokenVerifier v,
                            AccessTokenVerifier::Create(std::move(ac), Now()));
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
    for (auto& [subject, c] : f.contexts)
      sessions[c->id] = c;
    f.contexts.clear();
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
  return impl_->sessions.size() + impl_->contexts.size();
}

}  // namespace custos::mcp
