// The Streamable HTTP front (HttpFront) against our fixture server: sessions, the transport's
// headers, Origin, JSON vs event-stream answers, per-session taint. Requests go straight to
// HttpFront::Handle with a recording exchange (the Beast transport is covered by the SDK peer
// test, mcp_peers_http, and by the server's own tests).

#include "custos/mcp/http_front.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "custos/mcp/access_token.h"
#include "custos/mcp/jsonrpc.h"
#include "custos/store/store.h"
#include "testing/fake_http_server.h"
#include "testing/temp_dir.h"

namespace custos::mcp {
namespace {

using ::testing::HasSubstr;

std::string Fixture() {
  const char* src = std::getenv("CUSTOS_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/tests/mcp/fixtures/fixture_server.js";
}

std::string Node() {
  for (const char* p : {"/usr/bin/node", "/usr/local/bin/node"}) {
    if (::access(p, X_OK) == 0)
      return p;
  }
  return "";
}

// Records what the front answers; Wait* block until it has.
class FakeExchange final : public HttpExchange {
 public:
  void Respond(HttpAnswer a) override {
    std::lock_guard lock(mu_);
    answer_ = std::move(a);
    responded_ = true;
    cv_.notify_all();
  }
  void Begin(HttpAnswer head) override {
    std::lock_guard lock(mu_);
    answer_ = std::move(head);
    began_ = true;
    cv_.notify_all();
  }
  void Write(std::string chunk) override {
    std::lock_guard lock(mu_);
    if (closed_.load())
      return;
    body_ += chunk;
    cv_.notify_all();
  }
  void End() override {
    std::lock_guard lock(mu_);
    ended_ = true;
    cv_.notify_all();
  }
  bool closed() const override { return closed_.load(); }
  // The client went away: later writes are not seen by it (the front must notice via closed()).
  void Close() { closed_.store(true); }
  // The client went away and the transport noticed (as it does once a stream began).
  void Hangup() {
    Close();
    std::function<void()> fn;
    {
      std::lock_guard lock(mu_);
      fn = std::move(on_close_);
    }
    if (fn)
      fn();
  }
  void OnClose(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    on_close_ = std::move(fn);
  }

  // The whole answer (JSON) or, for a stream, its head once it ended.
  HttpAnswer WaitDone(int ms = 10'000) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return responded_ || ended_; });
    return answer_;
  }
  bool WaitBody(std::string_view needle, int ms = 10'000) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms),
                        [&] { return body_.find(needle) != std::string::npos; });
  }
  std::string body() {
    std::lock_guard lock(mu_);
    return body_;
  }
  bool began() {
    std::lock_guard lock(mu_);
    return began_;
  }
  bool ended() {
    std::lock_guard lock(mu_);
    return ended_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  HttpAnswer answer_;
  std::string body_;
  bool responded_ = false, began_ = false, ended_ = false;
  std::function<void()> on_close_;
  std::atomic<bool> closed_{false};
};

std::string Header(const HttpAnswer& a, const std::string& name) {
  for (const auto& [k, v] : a.headers) {
    if (k == name)
      return v;
  }
  return "";
}

std::string ReasonOf(const HttpAnswer& a) {
  Result<Json> j = ParseUntrustedJson(a.body);
  if (!j.ok() || !j->contains("error"))
    return "";
  return (*j)["error"]["data"].value("reason", "");
}

class HttpFrontTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Node().empty())
      GTEST_SKIP() << "node is not installed";
    std::ofstream(dir_.path() / "policy.toml")
        << "[policy]\nname = \"http-test\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
           "[tools]\nallow = [\"a.*\", \"b.*\"]\n"
           "[[flows]]\nid = \"no-external-to-writes\"\nfrom = [\"external\"]\n"
           "to = [\"tool:a.write_file\"]\n";
    std::ofstream(dir_.path() / "gateway.toml")
        << "[gateway]\npolicy = \"policy.toml\"\n[http]\nallowed_origins = "
           "[\"http://localhost:5173\"]\nmax_sessions = 3\n[[servers]]\nname = \"a\"\ncommand = \""
        << Node() << "\"\nargs = [\"" << Fixture() << "\"" << server_args_
        << "]\ntimeout_ms = 5000\nclient_capabilities = [\"sampling\"]\n"
        << extra_servers_;
    Result<GatewayConfig> cfg = LoadGatewayConfig(dir_.path() / "gateway.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    Result<std::shared_ptr<const policy::Policy>> p = policy::Policy::LoadFile(cfg->policy_file);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    kernel::KernelOptions ko;
    ko.data_dir = dir_.path() / "data";
    ko.policy = *p;
    ko.durability = audit::Durability::kNone;
    ko.notice = [](const std::string&) {};
    Result<std::unique_ptr<kernel::Kernel>> k = kernel::Kernel::Open(std::move(ko));
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    kernel_ = std::move(k).value();
    HttpFrontOptions fo;
    fo.config = *cfg;
    fo.kernel = kernel_.get();
    fo.heartbeat_ms = 100;
    Result<std::unique_ptr<HttpFront>> f = HttpFront::Create(std::move(fo));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    front_ = std::move(f).value();
  }
  void TearDown() override {
    if (front_)
      front_->Shutdown();
    front_.reset();
    kernel_.reset();
  }

  HttpRequest Post(const Json& body, const std::string& session = "",
                   const std::string& version = "2025-11-25") {
    HttpRequest r;
    r.method = "POST";
    r.target = "/mcp";
    r.headers = {{"content-type", "application/json"},
                 {"accept", "application/json, text/event-stream"}};
    if (!session.empty())
      r.headers.emplace_back("mcp-session-id", session);
    if (!version.empty())
      r.headers.emplace_back("mcp-protocol-version", version);
    r.body = body.dump();
    return r;
  }

  std::pair<HttpAnswer, std::shared_ptr<FakeExchange>> Send(HttpRequest r) {
    auto ex = std::make_shared<FakeExchange>();
    front_->Handle(std::move(r), ex);
    return {ex->WaitDone(), ex};
  }

  // Opens a session; returns its id.
  std::string Open(const Json& capabilities = Json::object(),
                   const std::string& version = "2025-11-25") {
    HttpRequest r = Post({{"jsonrpc", "2.0"},
                          {"id", 1},
                          {"method", "initialize"},
                          {"params",
                           {{"protocolVersion", version},
                            {"capabilities", capabilities},
                            {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}},
                         "", "");
    auto [a, ex] = Send(std::move(r));
    EXPECT_EQ(a.status, 200) << a.body;
    const std::string sid = Header(a, "Mcp-Session-Id");
    EXPECT_FALSE(sid.empty());
    auto [n, ex2] =
        Send(Post({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, sid, version));
    EXPECT_EQ(n.status, 202);
    return sid;
  }

  Json Call(const std::string& sid, int id, const std::string& tool, const Json& args) {
    auto [a, ex] = Send(Post({{"jsonrpc", "2.0"},
                              {"id", id},
                              {"method", "tools/call"},
                              {"params", {{"name", tool}, {"arguments", args}}}},
                             sid));
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.content_type, "application/json");
    Result<Json> j = ParseUntrustedJson(a.body);
    return j.ok() ? *j : Json();
  }

  // The client's answer "hi" to the gateway's sampling request `id`, POSTed; its HTTP status.
  int AnswerSampling(const std::string& sid, const Json& id) {
    return Send(Post(Message::Response(id, {{"role", "assistant"},
                                            {"content", {{"type", "text"}, {"text", "hi"}}},
                                            {"model", "m"}})
                         .ToJson(),
                     sid))
        .first.status;
  }

  // Starts a tools/call (id 7) of the fixture's ask_client, which asks the client for sampling,
  // and returns its exchange without waiting for the answer.
  std::shared_ptr<FakeExchange> StartAskClient(const std::string& sid) {
    auto ex = std::make_shared<FakeExchange>();
    front_->Handle(Post({{"jsonrpc", "2.0"},
                         {"id", 7},
                         {"method", "tools/call"},
                         {"params", {{"name", "a.ask_client"}, {"arguments", Json::object()}}}},
                        sid),
                   ex);
    return ex;
  }

  // A 2026-07-28 request: no session, the envelope in params._meta, and the era's headers
  // (MCP-Protocol-Version, Mcp-Method, Mcp-Name) agreeing with the body.
  HttpRequest StatelessPost(const Json& id, const std::string& method, Json params = Json::object(),
                            const Json& caps = Json::object()) {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2026-07-28";
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
    HttpRequest r = Post({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}},
                         "", "2026-07-28");
    r.headers.emplace_back("mcp-method", method);
    if (params.contains("name"))
      r.headers.emplace_back("mcp-name", params["name"].get<std::string>());
    return r;
  }

  // Starts a request without waiting for its answer.
  std::shared_ptr<FakeExchange> Start(HttpRequest r) {
    auto ex = std::make_shared<FakeExchange>();
    front_->Handle(std::move(r), ex);
    return ex;
  }

  // The JSON-RPC messages of an event-stream body, in order.
  static std::vector<Json> Events(const std::string& body) {
    std::vector<Json> out;
    for (size_t at = body.find("data: "); at != std::string::npos;
         at = body.find("data: ", at + 1)) {
      const size_t end = body.find('\n', at);
      Result<Json> j = ParseUntrustedJson(body.substr(at + 6, end - at - 6));
      if (j.ok())
        out.push_back(*j);
    }
    return out;
  }

  // A stateless call's response (the last message of its stream).
  Json StatelessCall(const Json& id, const std::string& tool, const Json& args,
                     const Json& extra = Json::object()) {
    Json params = extra;
    params["name"] = tool;
    params["arguments"] = args;
    auto [a, ex] = Send(StatelessPost(id, "tools/call", params, {{"sampling", Json::object()}}));
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(a.content_type, "text/event-stream");
    std::vector<Json> events = Events(ex->body());
    return events.empty() ? Json() : events.back();
  }

  std::string server_args_;    // more arguments of the fixture server, set by a derived fixture
  std::string extra_servers_;  // more [[servers]] tables (named "b"), set by a derived fixture
  custos::testing::TempDir dir_;
  std::unique_ptr<kernel::Kernel> kernel_;
  std::unique_ptr<HttpFront> front_;
};

TEST_F(HttpFrontTest, InitializeIssuesASessionThatLaterRequestsMustCarry) {
  const std::string sid = Open();
  EXPECT_THAT(sid, ::testing::StartsWith("mcps_"));
  Json r = Call(sid, 2, "a.echo", {{"x", 1}});
  EXPECT_EQ(r["result"]["content"][0]["text"], R"({"x":1})") << r;

  auto [none, e1] = Send(Post({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}}));
  EXPECT_EQ(none.status, 400);
  EXPECT_EQ(ReasonOf(none), "mcp_session_required");
  auto [unknown, e2] = Send(Post({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}}, "mcps_x"));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(ReasonOf(unknown), "mcp_session_not_found");
}

TEST_F(HttpFrontTest, DeleteEndsTheSessionAndItsIdIsThen404) {
  const std::string sid = Open();
  EXPECT_EQ(front_->session_count(), 1u);
  HttpRequest del;
  del.method = "DELETE";
  del.target = "/mcp";
  del.headers = {{"mcp-session-id", sid}};
  auto [a, ex] = Send(del);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(front_->session_count(), 0u);
  auto [b, ex2] = Send(Post({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}}, sid));
  EXPECT_EQ(b.status, 404);
  EXPECT_EQ(ReasonOf(b), "mcp_session_not_found");
}

TEST_F(HttpFrontTest, OriginOutsideTheAllowListIs403) {
  HttpRequest r = Post({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}});
  r.headers.emplace_back("origin", "http://evil.example");
  auto [a, ex] = Send(r);
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(ReasonOf(a), "mcp_origin_refused");
  EXPECT_EQ(front_->session_count(), 0u);

  const std::string sid = Open();
  HttpRequest ok = Post({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, sid);
  ok.headers.emplace_back("origin", "http://localhost:5173");
  auto [b, ex2] = Send(ok);
  EXPECT_EQ(b.status, 200) << b.body;

  // Same origin on a loopback Host is this endpoint's own page; a rebinding page sends its own
  // name as Host and Origin, and a loopback Host with another origin is still refused.
  auto with = [&](const std::string& host, const std::string& origin, int id) {
    HttpRequest q = Post({{"jsonrpc", "2.0"}, {"id", id}, {"method", "ping"}}, sid);
    q.headers.emplace_back("host", host);
    q.headers.emplace_back("origin", origin);
    return Send(q).first.status;
  };
  EXPECT_EQ(with("127.0.0.1:7411", "http://127.0.0.1:7411", 3), 200);
  EXPECT_EQ(with("[::1]:7411", "http://[::1]:7411", 4), 200);
  EXPECT_EQ(with("evil.example:7411", "http://evil.example:7411", 5), 403);
  EXPECT_EQ(with("127.0.0.1:7411", "http://127.0.0.1:9999", 6), 403);
}

TEST_F(HttpFrontTest, AcceptContentTypeAndMethodAreChecked) {
  const std::string sid = Open();
  HttpRequest r = Post({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, sid);
  r.headers[1].second = "application/json";  // no text/event-stream
  auto [a, e1] = Send(r);
  EXPECT_EQ(a.status, 406);
  EXPECT_EQ(ReasonOf(a), "mcp_not_acceptable");

  HttpRequest t = Post({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, sid);
  t.headers[0].second = "text/plain";
  auto [b, e2] = Send(t);
  EXPECT_EQ(b.status, 415);

  HttpRequest g;
  g.method = "GET";
  g.target = "/mcp";
  g.headers = {{"accept", "application/json"}, {"mcp-session-id", sid}};
  auto [c, e3] = Send(g);
  EXPECT_EQ(c.status, 406);

  HttpRequest put = Post(Json::object(), sid);
  put.method = "PUT";
  auto [d, e4] = Send(put);
  EXPECT_EQ(d.status, 405);
  EXPECT_EQ(Header(d, "Allow"), "GET, POST, DELETE");

  auto [bad, e5] = Send([&] {
    HttpRequest x = Post(Json::object(), sid);
    x.body = "{not json";
    return x;
  }());
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("-32700"));
}

TEST_F(HttpFrontTest, ProtocolVersionHeaderMustBeARevisionTheGatewaySpeaks) {
  const std::string sid = Open();
  auto [a, e1] = Send(Post({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, sid, "1999-01-01"));
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(ReasonOf(a), "mcp_version_unsupported");
  EXPECT_THAT(a.body, HasSubstr("1999-01-01"));
  // The stateless era is not served over HTTP: refused with the same reason.
  auto [s, e4] = Send(Post({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, sid, "2026-07-28"));
  EXPECT_EQ(s.status, 400);
  EXPECT_EQ(ReasonOf(s), "mcp_version_unsupported");
  // Another supported revision than the session's (decision 031): served, in the session's era.
  auto [b, e2] = Send(Post({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}}, sid, "2025-03-26"));
  EXPECT_EQ(b.status, 200);
  EXPECT_THAT(b.body, HasSubstr("\"id\":3"));
  auto [c, e3] = Send(Post({{"jsonrpc", "2.0"}, {"id", 4}, {"method", "ping"}}, sid, ""));
  EXPECT_EQ(c.status, 200);  // absent: the spec's backwards-compatible default
}

TEST_F(HttpFrontTest, ServerRequestDuringACallTurnsThePostIntoAnEventStream) {
  const std::string sid = Open({{"sampling", Json::object()}});
  auto ex = StartAskClient(sid);
  // The gateway's sampling request arrives on this POST's stream...
  ASSERT_TRUE(ex->WaitBody("sampling/createMessage")) << ex->body();
  EXPECT_TRUE(ex->began());
  const std::string body = ex->body();
  EXPECT_THAT(body, ::testing::StartsWith("id: ")) << "a 2025-11-25 stream is primed";
  const size_t data = body.find("data: {");
  ASSERT_NE(data, std::string::npos);
  Result<Message> req = ParseMessage(body.substr(data + 6, body.find('\n', data) - data - 6));
  ASSERT_TRUE(req.ok());
  EXPECT_TRUE(req->is_request());
  // ...the client answers with a POST of its own (202), and the call's result ends the stream.
  EXPECT_EQ(AnswerSampling(sid, req->id), 202);
  ASSERT_TRUE(ex->WaitBody("\"id\":7"));
  HttpAnswer head = ex->WaitDone();
  EXPECT_TRUE(ex->ended());
  EXPECT_EQ(head.content_type, "text/event-stream");
}

TEST_F(HttpFrontTest, ServerLogsDuringACallGoOutOnThePostsEventStream) {
  const std::string sid = Open();
  auto ex = std::make_shared<FakeExchange>();
  front_->Handle(Post({{"jsonrpc", "2.0"},
                       {"id", 8},
                       {"method", "tools/call"},
                       {"params", {{"name", "a.log"}, {"arguments", Json::object()}}}},
                      sid),
                 ex);
  ASSERT_TRUE(ex->WaitBody("\"id\":8"));
  HttpAnswer head = ex->WaitDone();
  EXPECT_EQ(head.content_type, "text/event-stream");
  const std::string body = ex->body();
  // Three log messages, tagged with the server, all before the response.
  size_t count = 0;
  for (size_t at = body.find("notifications/message"); at != std::string::npos;
       at = body.find("notifications/message", at + 1)) {
    ++count;
    EXPECT_LT(at, body.find("\"id\":8"));
  }
  EXPECT_EQ(count, 3u);
  EXPECT_THAT(body, HasSubstr("\"logger\":\"a.db\""));
}

TEST_F(HttpFrontTest, A20250326BatchIsAnsweredWithOneArray) {
  const std::string sid = Open(Json::object(), "2025-03-26");
  auto [a, e1] =
      Send(Post(Json::array({{{"jsonrpc", "2.0"}, {"id", 21}, {"method", "ping"}},
                             {{"jsonrpc", "2.0"},
                              {"id", 22},
                              {"method", "tools/call"},
                              {"params", {{"name", "a.echo"}, {"arguments", {{"k", 2}}}}}}}),
                sid, "2025-03-26"));
  EXPECT_EQ(a.status, 200);
  Result<Json> arr = ParseUntrustedJson(a.body);
  ASSERT_TRUE(arr.ok()) << a.body;
  ASSERT_TRUE(arr->is_array()) << a.body;
  ASSERT_EQ(arr->size(), 2u);
  std::set<int> ids;
  for (const Json& r : *arr) {
    ids.insert(r["id"].get<int>());
    EXPECT_TRUE(r.contains("result")) << r.dump();
  }
  EXPECT_EQ(ids, (std::set<int>{21, 22}));
}

TEST_F(HttpFrontTest, GetOpensOneEventStreamPerSession) {
  const std::string sid = Open();
  HttpRequest g;
  g.method = "GET";
  g.target = "/mcp";
  g.headers = {{"accept", "text/event-stream"}, {"mcp-session-id", sid}};
  auto ex = std::make_shared<FakeExchange>();
  front_->Handle(g, ex);
  EXPECT_TRUE(ex->began());
  EXPECT_TRUE(ex->WaitBody(": keep-alive"));  // heartbeats every heartbeat_ms
  auto [second, e2] = Send(g);
  EXPECT_EQ(second.status, 409);
}

TEST_F(HttpFrontTest, EachSessionHasItsOwnTaint) {
  const std::string tainted = Open();
  const std::string clean = Open();
  EXPECT_EQ(front_->session_count(), 2u);
  // External content enters one session only...
  Json page = Call(tainted, 2, "a.fetch_page", {{"url", "https://example.com"}});
  EXPECT_TRUE(page.contains("result")) << page;
  Json refused = Call(tainted, 3, "a.write_file", {{"path", "x"}, {"content", "y"}});
  ASSERT_TRUE(refused.contains("error")) << refused;
  EXPECT_EQ(refused["error"]["data"]["reason"], "flow_violation");
  // ...the other session's writes are still allowed.
  Json ok = Call(clean, 2, "a.write_file", {{"path", "x"}, {"content", "y"}});
  EXPECT_TRUE(ok.contains("result")) << ok;
}

TEST_F(HttpFrontTest, SessionsBeyondMaxSessionsAre503) {
  Open();
  Open();
  Open();
  auto [a, ex] = Send(Post({{"jsonrpc", "2.0"},
                            {"id", 1},
                            {"method", "initialize"},
                            {"params",
                             {{"protocolVersion", "2025-11-25"},
                              {"capabilities", Json::object()},
                              {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}},
                           "", ""));
  EXPECT_EQ(a.status, 503);
  EXPECT_EQ(ReasonOf(a), "unavailable");
}

// ---- Resumption (Last-Event-ID) ----------------------------------------------------------------

// The ids of the events (SSE `id:` fields) in `body`, in order.
std::vector<std::string> EventIds(const std::string& body) {
  std::vector<std::string> ids;
  for (size_t p = body.find("id: "); p != std::string::npos; p = body.find("\nid: ", p + 1)) {
    const size_t start = body[p] == '\n' ? p + 5 : p + 4;
    ids.push_back(body.substr(start, body.find('\n', start) - start));
    if (body[p] != '\n')
      p = start;
  }
  return ids;
}

HttpRequest Get(const std::string& sid, const std::string& last_event_id = "") {
  HttpRequest g;
  g.method = "GET";
  g.target = "/mcp";
  g.headers = {{"accept", "text/event-stream"}, {"mcp-session-id", sid}};
  if (!last_event_id.empty())
    g.headers.emplace_back("last-event-id", last_event_id);
  return g;
}

size_t Count(const std::string& s, std::string_view needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1))
    ++n;
  return n;
}

TEST_F(HttpFrontTest, AResumedGetStreamReplaysWhatTheClientMissedThenGoesOn) {
  const std::string sid = Open();
  auto first = std::make_shared<FakeExchange>();
  front_->Handle(Get(sid), first);
  ASSERT_TRUE(first->began());
  // Primed: an id before any message, so even a client that saw nothing can resume.
  const std::vector<std::string> primed = EventIds(first->body());
  ASSERT_EQ(primed.size(), 1u) << first->body();
  EXPECT_THAT(primed[0], ::testing::EndsWith("-0"));
  // The fixture's `changed` announces two things, each an event: resources/updated, then
  // tools/list_changed.
  Call(sid, 2, "a.changed", Json::object());
  ASSERT_TRUE(first->WaitBody("list_changed")) << first->body();
  const std::vector<std::string> seen = EventIds(first->body());
  ASSERT_EQ(seen.size(), 3u) << first->body();
  // The client loses the connection; two more calls announce four events meanwhile.
  first->Close();
  Call(sid, 3, "a.changed", Json::object());
  Call(sid, 4, "a.changed", Json::object());
  // Resume from the last event it saw: the four it missed, in order, then the stream goes on.
  auto second = std::make_shared<FakeExchange>();
  for (int i = 0; i < 100 && Count(second->body(), "list_changed") < 2; ++i) {
    second = std::make_shared<FakeExchange>();
    front_->Handle(Get(sid, seen.back()), second);
    ASSERT_TRUE(second->began()) << second->WaitDone().body;
    if (Count(second->body(), "list_changed") < 2)  // relayed after the call's answer: wait
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Count(second->body(), "list_changed"), 2u) << second->body();
  const std::vector<std::string> replayed = EventIds(second->body());
  ASSERT_EQ(replayed.size(), 4u) << second->body();
  const std::string stream = seen.back().substr(0, seen.back().rfind('-'));
  for (size_t i = 0; i < replayed.size(); ++i)
    EXPECT_EQ(replayed[i], stream + "-" + std::to_string(3 + i));
  EXPECT_FALSE(second->ended());
  Call(sid, 5, "a.changed", Json::object());
  ASSERT_TRUE(second->WaitBody(stream + "-8")) << second->body();
  // The resumed stream is the session's GET stream: a fresh GET is still 409.
  auto [dup, e3] = Send(Get(sid));
  EXPECT_EQ(dup.status, 409);
}

TEST_F(HttpFrontTest, AResumedPostStreamDeliversTheCallsResponse) {
  const std::string sid = Open({{"sampling", Json::object()}});
  auto post = StartAskClient(sid);
  ASSERT_TRUE(post->WaitBody("sampling/createMessage")) << post->body();
  const std::string body = post->body();
  const std::vector<std::string> ids = EventIds(body);
  ASSERT_EQ(ids.size(), 2u) << body;  // the priming event and the sampling request
  // The POST's connection drops before the call's answer; the client answers the sampling
  // request, and the call's response is kept for it.
  post->Close();
  const size_t data = body.find("data: {");
  Result<Message> req = ParseMessage(body.substr(data + 6, body.find('\n', data) - data - 6));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(AnswerSampling(sid, req->id), 202);
  // GET + Last-Event-ID resumes the POST's stream (not the session's GET stream): the response
  // arrives there and the stream ends, as the POST's would have.
  std::shared_ptr<FakeExchange> resumed;
  for (int i = 0; i < 100; ++i) {
    resumed = std::make_shared<FakeExchange>();
    front_->Handle(Get(sid, ids[1]), resumed);
    if (resumed->body().find("\"id\":7") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(resumed->WaitBody("\"id\":7")) << resumed->body();
  resumed->WaitDone();  // the stream ends right after the response
  EXPECT_EQ(Count(resumed->body(), "sampling/createMessage"), 0u) << "seen before: not replayed";
  EXPECT_TRUE(resumed->ended());
  EXPECT_EQ(EventIds(resumed->body()).front(), ids[1].substr(0, ids[1].rfind('-')) + "-2");
  // Resuming after its last event: the stream is over and the client has everything: 204, so
  // the client stops reconnecting.
  auto [over, e3] = Send(Get(sid, EventIds(resumed->body()).back()));
  EXPECT_EQ(over.status, 204) << resumed->body() << over.body;
  EXPECT_TRUE(over.body.empty());
  // It was a POST stream: the session's GET stream slot is still free.
  auto get = std::make_shared<FakeExchange>();
  front_->Handle(Get(sid), get);
  EXPECT_TRUE(get->began());
}

TEST_F(HttpFrontTest, AnUnknownOrForeignLastEventIdReplaysNothing) {
  const std::string a = Open(), b = Open();
  auto stream = std::make_shared<FakeExchange>();
  front_->Handle(Get(a), stream);
  const std::vector<std::string> ids = EventIds(stream->body());
  ASSERT_EQ(ids.size(), 1u);
  const std::string sid_part = ids[0].substr(0, ids[0].rfind('-'));
  for (const auto& [session, id] : std::vector<std::pair<std::string, std::string>>{
           {b, ids[0]},                          // session a's stream, asked on session b
           {a, sid_part + "-9"},                 // an event not sent yet
           {a, "abcdefghijklmnopqrstuvwxyz-0"},  // no such stream
           {a, "garbage"},
           {a, sid_part + "-"},
       }) {
    auto [r, ex] = Send(Get(session, id));
    EXPECT_EQ(r.status, 409) << id;
    EXPECT_EQ(ReasonOf(r), "mcp_resume_unavailable") << id;
    EXPECT_FALSE(ex->began()) << id;
  }
}

TEST_F(HttpFrontTest, TheReplayBufferIsBoundedAndAGapIsRefusedNotSkipped) {
  // A front that keeps ~1 event per session: three events while away cannot all be replayed.
  front_->Shutdown();
  front_.reset();
  Result<GatewayConfig> cfg = LoadGatewayConfig(dir_.path() / "gateway.toml");
  ASSERT_TRUE(cfg.ok());
  HttpFrontOptions fo;
  fo.config = *cfg;
  fo.kernel = kernel_.get();
  fo.replay_bytes = 200;
  Result<std::unique_ptr<HttpFront>> f = HttpFront::Create(std::move(fo));
  ASSERT_TRUE(f.ok());
  front_ = std::move(f).value();
  const std::string sid = Open();
  auto first = std::make_shared<FakeExchange>();
  front_->Handle(Get(sid), first);
  const std::string primed = EventIds(first->body()).at(0);
  first->Close();
  for (int i = 0; i < 3; ++i)
    Call(sid, 10 + i, "a.changed", Json::object());
  // Wait until the third announcement is in (the event after the priming one is then gone).
  const std::string stream = primed.substr(0, primed.rfind('-'));
  for (int i = 0; i < 100; ++i) {
    auto probe = std::make_shared<FakeExchange>();
    front_->Handle(Get(sid, stream + "-2"), probe);
    if (probe->began() && probe->body().find("list_changed") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto [gap, ex] = Send(Get(sid, primed));
  EXPECT_EQ(gap.status, 409) << gap.body;
  EXPECT_EQ(ReasonOf(gap), "mcp_resume_unavailable");
  EXPECT_THAT(gap.body, HasSubstr("no longer buffered"));
}

// ---- The 2026-07-28 era on the HTTP front (decision 038) ----------------------------------------

TEST_F(HttpFrontTest, StatelessRequestsNeedNoSessionAndKeepTheirOwnIds) {
  auto [d, e1] = Send(StatelessPost(1, "server/discover"));
  EXPECT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(Header(d, "Mcp-Session-Id"), "") << "the era has no sessions";
  Result<Json> disc = ParseUntrustedJson(d.body);
  ASSERT_TRUE(disc.ok()) << d.body;
  EXPECT_EQ((*disc)["id"], 1);
  EXPECT_EQ((*disc)["result"]["supportedVersions"], Json::array({"2026-07-28"}));

  // Two clients of one principal use the same id at once: each gets its own answer.
  auto hanging =
      Start(StatelessPost(5, "tools/call", {{"name", "a.hang"}, {"arguments", Json::object()}}));
  Json echo = StatelessCall(5, "a.echo", {{"x", 1}});
  EXPECT_EQ(echo["id"], 5) << echo;
  EXPECT_EQ(echo["result"]["content"][0]["text"], R"({"x":1})") << echo;
  EXPECT_EQ(echo["result"]["resultType"], "complete") << echo;
  EXPECT_TRUE(hanging->began()) << "a stateless request streams at once (its cancellation)";
  EXPECT_FALSE(hanging->ended());
  EXPECT_EQ(front_->session_count(), 1u) << "one context for the principal";

  // Closing the request's stream is the era's cancellation: the call ends, and is recorded so.
  hanging->Hangup();
  bool cancelled = false;
  for (int i = 0; i < 250 && !cancelled; ++i) {
    ASSERT_TRUE(kernel_->Commit().ok());
    Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(store::LogQuery{});
    ASSERT_TRUE(rows.ok());
    for (const store::LogRow& row : *rows)
      cancelled = cancelled || row.reason == "mcp_cancelled";
    if (!cancelled)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(cancelled) << "the hung call's outcome records its cancellation";
}

TEST_F(HttpFrontTest, StatelessHeadersMustAgreeWithTheBody) {
  HttpRequest wrong = StatelessPost(2, "tools/call", {{"name", "a.echo"}});
  for (auto& [k, v] : wrong.headers) {
    if (k == "mcp-method")
      v = "tools/list";
  }
  auto [a, e1] = Send(wrong);
  EXPECT_EQ(a.status, 400) << a.body;
  EXPECT_EQ(ReasonOf(a), "mcp_header_mismatch");
  Result<Json> j = ParseUntrustedJson(a.body);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["error"]["code"], -32020);
  EXPECT_EQ((*j)["id"], 2);
  EXPECT_THAT(a.body, HasSubstr("Mcp-Method"));

  HttpRequest unnamed = StatelessPost(3, "tools/call", {{"name", "a.echo"}});
  std::erase_if(unnamed.headers, [](const auto& h) { return h.first == "mcp-name"; });
  auto [b, e2] = Send(unnamed);
  EXPECT_EQ(b.status, 400);
  EXPECT_EQ(ReasonOf(b), "mcp_header_mismatch");
  EXPECT_THAT(b.body, HasSubstr("Mcp-Name"));

  // The era's header without its envelope.
  auto [c, e3] =
      Send(Post({{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/list"}}, "", "2026-07-28"));
  EXPECT_EQ(c.status, 400) << c.body;
  EXPECT_EQ(ReasonOf(c), "mcp_envelope_invalid");
  EXPECT_EQ(front_->session_count(), 0u) << "refused before any context started";
}

TEST_F(HttpFrontTest, AStatelessPrincipalsRequestsShareOneTaint) {
  // External content reaches the context on one POST; a write on another POST is refused...
  Json page = StatelessCall(1, "a.fetch_page", {{"url", "https://example.com"}});
  EXPECT_TRUE(page.contains("result")) << page;
  Json refused = StatelessCall(2, "a.write_file", {{"path", "x"}, {"content", "y"}});
  ASSERT_TRUE(refused.contains("error")) << refused;
  EXPECT_EQ(refused["error"]["data"]["reason"], "flow_violation") << refused;
  // ...while a 2025 session, which has its own taint, may still write.
  const std::string sid = Open();
  Json ok = Call(sid, 2, "a.write_file", {{"path", "x"}, {"content", "y"}});
  EXPECT_TRUE(ok.contains("result")) << ok;
  EXPECT_EQ(front_->session_count(), 2u);
}

TEST_F(HttpFrontTest, AServersRequestReachesAStatelessHttpClientAsInputRequired) {
  Json first = StatelessCall(11, "a.ask_client", Json::object());
  ASSERT_EQ(first["result"]["resultType"], "input_required") << first;
  EXPECT_EQ(first["id"], 11);
  const Json& requests = first["result"]["inputRequests"];
  ASSERT_EQ(requests.size(), 1u) << first;
  const std::string key = requests.begin().key();
  EXPECT_EQ(requests[key]["method"], "sampling/createMessage");
  const Json state = first["result"]["requestState"];
  ASSERT_TRUE(state.is_string());

  // The retry is another POST with another id, carrying the answer and the gateway's state.
  Json answer = {
      {"role", "assistant"}, {"content", {{"type", "text"}, {"text", "hi"}}}, {"model", "m"}};
  Json done = StatelessCall(12, "a.ask_client", Json::object(),
                            {{"inputResponses", {{key, answer}}}, {"requestState", state}});
  EXPECT_EQ(done["id"], 12) << done;
  EXPECT_EQ(done["result"]["content"][0]["text"], "hi") << done;

  // The state is spent: replaying it is refused.
  Json again = StatelessCall(13, "a.ask_client", Json::object(),
                             {{"inputResponses", {{key, answer}}}, {"requestState", state}});
  EXPECT_EQ(again["error"]["data"]["reason"], "mcp_request_state_invalid") << again;
}

TEST_F(HttpFrontTest, AListenStreamOverHttpCarriesChangesUnderTheClientsId) {
  auto listen = Start(StatelessPost("L1", "subscriptions/listen",
                                    {{"notifications", {{"toolsListChanged", true}}}}));
  ASSERT_TRUE(listen->WaitBody("notifications/subscriptions/acknowledged")) << listen->body();
  EXPECT_THAT(listen->body(), HasSubstr(R"("io.modelcontextprotocol/subscriptionId":"L1")"));
  Json changed = StatelessCall(2, "a.changed", Json::object());
  EXPECT_TRUE(changed.contains("result")) << changed;
  ASSERT_TRUE(listen->WaitBody("notifications/tools/list_changed")) << listen->body();
  for (const Json& e : Events(listen->body()))
    EXPECT_EQ(e["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "L1") << e;
  EXPECT_FALSE(listen->ended()) << "a listen stream lasts until the client closes it";
  listen->Hangup();
}

// A second fixture server, "b".
class HttpFrontTwoServersTest : public HttpFrontTest {
 protected:
  HttpFrontTwoServersTest() {
    extra_servers_ = "[[servers]]\nname = \"b\"\ncommand = \"" + Node() + "\"\nargs = [\"" +
                     Fixture() + "\"]\ntimeout_ms = 5000\n";
  }
};

TEST_F(HttpFrontTwoServersTest, AServerRequestGoesOnThePostOfTheCallItBelongsTo) {
  const std::string sid = Open({{"sampling", Json::object()}});
  // POST 1 waits for server b; POST 7's call is the only one in flight to server a, so a's
  // sampling request belongs to it (decision 042), though POST 1 opened first.
  auto hang = std::make_shared<FakeExchange>();
  front_->Handle(Post({{"jsonrpc", "2.0"},
                       {"id", 1},
                       {"method", "tools/call"},
                       {"params", {{"name", "b.hang"}, {"arguments", Json::object()}}}},
                      sid),
                 hang);
  auto ask = StartAskClient(sid);
  ASSERT_TRUE(ask->WaitBody("sampling/createMessage")) << ask->body();
  EXPECT_THAT(hang->body(), ::testing::Not(HasSubstr("sampling/createMessage")));
  const std::string body = ask->body();
  const size_t data = body.find("data: {");
  ASSERT_NE(data, std::string::npos);
  Result<Message> req = ParseMessage(body.substr(data + 6, body.find('\n', data) - data - 6));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(AnswerSampling(sid, req->id), 202);
  EXPECT_TRUE(ask->WaitBody("\"id\":7"));
  auto [c, e3] = Send(
      Post(Message::Notification("notifications/cancelled", {{"requestId", 1}}).ToJson(), sid));
  EXPECT_EQ(c.status, 202);
}

class HttpFrontStatelessServerTest : public HttpFrontTest {
 protected:
  HttpFrontStatelessServerTest() { server_args_ = ", \"--stateless\""; }
};

TEST_F(HttpFrontStatelessServerTest, McpParamHeadersMustMirrorTheToolsDeclaredArguments) {
  auto [list, e1] = Send(StatelessPost(1, "tools/list"));
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_THAT(Events(e1->body()).back().dump(), HasSubstr("x-mcp-header"));
  auto call = [&](int id, const std::string& header) {
    HttpRequest r = StatelessPost(id, "tools/call",
                                  {{"name", "a.region"}, {"arguments", {{"region", "eu-west"}}}});
    if (!header.empty())
      r.headers.emplace_back("mcp-param-region", header);
    return Send(std::move(r));
  };
  auto [wrong, e2] = call(2, "us-east");
  EXPECT_EQ(wrong.status, 400) << wrong.body;
  EXPECT_EQ(ReasonOf(wrong), "mcp_header_mismatch");
  EXPECT_THAT(wrong.body, HasSubstr("Mcp-Param-Region"));
  auto [missing, e3] = call(3, "");
  EXPECT_EQ(missing.status, 400) << missing.body;
  auto [right, e4] = call(4, "eu-west");
  EXPECT_EQ(right.status, 200) << right.body;
  EXPECT_EQ(Events(e4->body()).back()["result"]["content"][0]["text"], "region eu-west");
}

}  // namespace
}  // namespace custos::mcp

// ---- OAuth 2.1 resource server ([http.auth]) ------------------------------------------------

namespace custos::mcp {
namespace {

constexpr const char* kResource = "http://127.0.0.1:7310/mcp";
constexpr const char* kIssuer = "https://auth.example.com";

std::string B64(const unsigned char* p, size_t n) {
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(p), n));
}

class HttpFrontAuthTest : public HttpFrontTest {
 protected:
  void SetUp() override {
    if (Node().empty())
      GTEST_SKIP() << "node is not installed";
    ASSERT_EQ(sodium_init() >= 0, true);
    crypto_sign_keypair(ed_pk_, ed_sk_);
    ec_ = EVP_EC_gen("P-256");
    ASSERT_NE(ec_, nullptr);
    unsigned char pub[65];
    size_t len = 0;
    ASSERT_EQ(EVP_PKEY_get_octet_string_param(ec_, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len),
              1);
    ASSERT_EQ(len, 65u);
    const Json jwks = {
        {"keys",
         {{{"kty", "OKP"}, {"crv", "Ed25519"}, {"kid", "ed"}, {"x", B64(ed_pk_, 32)}},
          {{"kty", "EC"},
           {"crv", "P-256"},
           {"kid", "ec"},
           {"x", B64(pub + 1, 32)},
           {"y", B64(pub + 33, 32)}}}}};
    std::ofstream(dir_.path() / "jwks.json") << jwks.dump();
    std::ofstream(dir_.path() / "policy.toml")
        << "[policy]\nname = \"auth-test\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
        << policy_extra_ << "[tools]\nallow = [\"a.*\"]\n";
    std::ofstream(dir_.path() / "gateway.toml")
        << "[gateway]\npolicy = \"policy.toml\"\n[http.auth]\nresource = \"" << kResource
        << "\"\nissuer = \"" << kIssuer << "\"\n"
        << (jwks_url_.empty() ? "jwks_file = \"jwks.json\"" : "jwks_url = \"" + jwks_url_ + "\"")
        << "\n"
        << auth_extra_ << "[[servers]]\nname = "
        << "\"a\"\ncommand = \"" << Node() << "\"\nargs = [\"" << Fixture() << "\"]\n";
    Result<GatewayConfig> cfg = LoadGatewayConfig(dir_.path() / "gateway.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    Result<std::shared_ptr<const policy::Policy>> p = policy::Policy::LoadFile(cfg->policy_file);
    ASSERT_TRUE(p.ok());
    kernel::KernelOptions ko;
    ko.data_dir = dir_.path() / "data";
    ko.policy = *p;
    ko.durability = audit::Durability::kNone;
    ko.notice = [](const std::string&) {};
    Result<std::unique_ptr<kernel::Kernel>> k = kernel::Kernel::Open(std::move(ko));
    ASSERT_TRUE(k.ok());
    kernel_ = std::move(k).value();
    HttpFrontOptions fo;
    fo.config = *cfg;
    fo.kernel = kernel_.get();
    Result<std::unique_ptr<HttpFront>> f = HttpFront::Create(std::move(fo));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    front_ = std::move(f).value();
  }
  void TearDown() override {
    HttpFrontTest::TearDown();
    EVP_PKEY_free(ec_);
  }

  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  Json Claims(const std::string& sub = "alice") {
    return {{"iss", kIssuer}, {"aud", kResource}, {"sub", sub}, {"exp", Now() + 300}};
  }
  std::string Sign(const std::string& alg, const Json& claims, const std::string& kid = "") {
    Json h = {{"alg", alg}, {"typ", "at+jwt"}};
    if (!kid.empty())
      h["kid"] = kid;
    const std::string input = Base64UrlEncode(h.dump()) + "." + Base64UrlEncode(claims.dump());
    std::string sig;
    if (alg == "EdDSA") {
      unsigned char s[crypto_sign_BYTES];
      crypto_sign_detached(s, nullptr, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size(), ed_sk_);
      sig.assign(reinterpret_cast<char*>(s), sizeof s);
    } else {
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      unsigned char der[80];
      size_t der_len = sizeof der;
      EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, ec_);
      EVP_DigestSign(ctx, der, &der_len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size());
      EVP_MD_CTX_free(ctx);
      const unsigned char* p = der;
      ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len));
      unsigned char rs[64];
      BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
      BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
      ECDSA_SIG_free(es);
      sig.assign(reinterpret_cast<char*>(rs), 64);
    }
    return input + "." + Base64UrlEncode(sig);
  }
  HttpRequest Init(const std::string& token) {
    HttpRequest r = Post({{"jsonrpc", "2.0"},
                          {"id", 1},
                          {"method", "initialize"},
                          {"params",
                           {{"protocolVersion", "2025-11-25"},
                            {"capabilities", Json::object()},
                            {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}},
                         "", "");
    if (!token.empty())
      r.headers.emplace_back("authorization", "Bearer " + token);
    return r;
  }

  // Set by a derived fixture's constructor: TOML after [http.auth]'s keys, and more agents; the
  // issuer's JWKS URL (instead of jwks_file).
  std::string auth_extra_, policy_extra_, jwks_url_;
  unsigned char ed_pk_[crypto_sign_PUBLICKEYBYTES];
  unsigned char ed_sk_[crypto_sign_SECRETKEYBYTES];
  EVP_PKEY* ec_ = nullptr;
};

TEST_F(HttpFrontAuthTest, NoTokenIs401WithTheResourceMetadataChallenge) {
  auto [a, ex] = Send(Init(""));
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(ReasonOf(a), "mcp_token_invalid");
  EXPECT_EQ(Header(a, "WWW-Authenticate"),
            "Bearer resource_metadata=\"http://127.0.0.1:7310/.well-known/"
            "oauth-protected-resource/mcp\"");
  HttpRequest md;
  md.method = "GET";
  md.target = "/.well-known/oauth-protected-resource/mcp";
  auto [m, ex2] = Send(md);
  EXPECT_EQ(m.status, 200);
  Result<Json> j = ParseUntrustedJson(m.body);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["resource"], kResource);
  EXPECT_EQ((*j)["authorization_servers"][0], kIssuer);
  EXPECT_EQ(front_->paths().size(), 2u);
}

TEST_F(HttpFrontAuthTest, ValidEdDsaAndEs256TokensOpenSessions) {
  auto [a, e1] = Send(Init(Sign("EdDSA", Claims(), "ed")));
  EXPECT_EQ(a.status, 200) << a.body;
  auto [b, e2] = Send(Init(Sign("ES256", Claims(), "ec")));
  EXPECT_EQ(b.status, 200) << b.body;
  auto [c, e3] = Send(Init(Sign("ES256", Claims())));  // no kid: the only EC key
  EXPECT_EQ(c.status, 200) << c.body;
}

TEST_F(HttpFrontAuthTest, BadTokensAre401InvalidToken) {
  Json wrong_aud = Claims();
  wrong_aud["aud"] = "http://127.0.0.1:9999/mcp";
  Json expired = Claims();
  expired["exp"] = Now() - 3600;
  Json future = Claims();
  future["nbf"] = Now() + 3600;
  Json wrong_iss = Claims();
  wrong_iss["iss"] = "https://evil.example.com";
  Json no_exp = Claims();
  no_exp.erase("exp");
  std::string tampered = Sign("EdDSA", Claims(), "ed");
  // Another base64url letter (flipping a bit could make a character outside the alphabet, which
  // is refused as malformed JWS, not as a bad signature).
  char& c = tampered[tampered.rfind('.') + 5];
  c = c == 'A' ? 'B' : 'A';
  const std::string none =
      Base64UrlEncode(R"({"alg":"none"})") + "." + Base64UrlEncode(Claims().dump()) + ".";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Sign("EdDSA", wrong_aud, "ed"), "audience"},
      {Sign("EdDSA", expired, "ed"), "expired"},
      {Sign("ES256", future, "ec"), "nbf"},
      {Sign("EdDSA", wrong_iss, "ed"), "issuer"},
      {Sign("EdDSA", no_exp, "ed"), "exp"},
      {tampered, "signature"},
      {Sign("EdDSA", Claims(), "ec"), "key"},  // an Ed25519 signature under the EC key's kid
      {none, "alg"},
      {"not-a-jwt", "JWS"},
  };
  for (const auto& [token, why] : cases) {
    auto [a, ex] = Send(Init(token));
    EXPECT_EQ(a.status, 401) << why;
    EXPECT_EQ(ReasonOf(a), "mcp_token_invalid") << why;
    EXPECT_THAT(a.body, HasSubstr(why));
    EXPECT_THAT(Header(a, "WWW-Authenticate"), HasSubstr("error=\"invalid_token\"")) << why;
  }
  EXPECT_EQ(front_->session_count(), 0u);
}

TEST_F(HttpFrontAuthTest, ASessionIsBoundToItsTokensSubject) {
  auto [a, e1] = Send(Init(Sign("EdDSA", Claims("alice"), "ed")));
  ASSERT_EQ(a.status, 200);
  const std::string sid = Header(a, "Mcp-Session-Id");
  HttpRequest other = Post({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, sid);
  other.headers.emplace_back("authorization", "Bearer " + Sign("EdDSA", Claims("mallory"), "ed"));
  auto [b, e2] = Send(other);
  EXPECT_EQ(b.status, 403);
  EXPECT_EQ(ReasonOf(b), "mcp_session_forbidden");
  HttpRequest same = Post({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}}, sid);
  same.headers.emplace_back("authorization", "Bearer " + Sign("ES256", Claims("alice"), "ec"));
  auto [c, e3] = Send(same);
  EXPECT_EQ(c.status, 200) << c.body;
}

// The issuer's keys fetched from its JWKS URL (here a loopback server serving jwks.json).
class HttpFrontJwksUrlTest : public HttpFrontAuthTest {
 protected:
  HttpFrontJwksUrlTest()
      : issuer_([this](const custos::testing::HttpExchange& req) {
          ++fetches_;
          custos::testing::CannedResponse r;
          std::ifstream in(dir_.path() / "jwks.json");
          r.body.assign(std::istreambuf_iterator<char>(in), {});
          r.status = req.target == "/jwks.json" ? 200 : 404;
          return r;
        }) {
    jwks_url_ = issuer_.url("/jwks.json");
  }
  custos::testing::FakeHttpServer issuer_;
  std::atomic<int> fetches_{0};
};

TEST_F(HttpFrontJwksUrlTest, TokensVerifyWithKeysFetchedFromTheIssuer) {
  EXPECT_EQ(fetches_.load(), 1) << "fetched when the front starts";
  auto [a, e1] = Send(Init(Sign("EdDSA", Claims(), "ed")));
  EXPECT_EQ(a.status, 200) << a.body;
  auto [b, e2] = Send(Init(Sign("ES256", Claims(), "ec")));
  EXPECT_EQ(b.status, 200) << b.body;
  auto [c, e3] = Send(Init(Sign("EdDSA", Claims(), "unknown-kid")));
  EXPECT_EQ(c.status, 401);
  EXPECT_EQ(fetches_.load(), 1) << "an unknown kid right after a fetch does not fetch again";
}

// ---- [http.auth.subjects]: each token subject acts as its own policy agent (decision 033) -------

class HttpFrontSubjectsTest : public HttpFrontAuthTest {
 protected:
  HttpFrontSubjectsTest() {
    auth_extra_ = "[http.auth.subjects]\n\"alice\" = \"researcher\"\n\"bob\" = \"reviewer\"\n";
    // researcher may call tools; reviewer may not (it has no tool.invoke).
    policy_extra_ =
        "[agents.researcher]\nsyscalls = [\"tool.invoke\"]\n"
        "[agents.reviewer]\nsyscalls = [\"assert\"]\n";
  }

  std::string OpenAs(const std::string& subject) {
    auto [a, ex] = Send(Init(Sign("EdDSA", Claims(subject), "ed")));
    EXPECT_EQ(a.status, 200) << a.body;
    return Header(a, "Mcp-Session-Id");
  }
  Json CallAs(const std::string& subject, const std::string& sid, int id) {
    HttpRequest r = Post({{"jsonrpc", "2.0"},
                          {"id", id},
                          {"method", "tools/call"},
                          {"params", {{"name", "a.echo"}, {"arguments", {{"who", subject}}}}}},
                         sid);
    r.headers.emplace_back("authorization", "Bearer " + Sign("EdDSA", Claims(subject), "ed"));
    auto [a, ex] = Send(std::move(r));
    EXPECT_EQ(a.status, 200) << a.body;
    Result<Json> j = ParseUntrustedJson(a.body);
    return j.ok() ? *j : Json();
  }
  // The tool.invoke decisions of `agent` in the flight log, as "verdict/reason" strings.
  std::vector<std::string> Decisions(const std::string& agent) {
    EXPECT_TRUE(kernel_->Commit().ok());  // the kernel runs with durability none: write the tail
    store::LogQuery q;
    q.agent = agent;
    Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(q);
    EXPECT_TRUE(rows.ok());
    std::vector<std::string> out;
    for (const store::LogRow& row : rows.ok() ? *rows : std::vector<store::LogRow>{}) {
      if (row.type == "decision" && row.canonical.find("a.echo") != std::string::npos)
        out.push_back(row.verdict + "/" + row.reason);
    }
    return out;
  }
};

TEST_F(HttpFrontSubjectsTest, EachMappedSubjectActsAsItsOwnAgent) {
  const std::string alice = OpenAs("alice"), bob = OpenAs("bob");
  ASSERT_FALSE(alice.empty());
  ASSERT_FALSE(bob.empty());
  Json a = CallAs("alice", alice, 2);
  EXPECT_EQ(a["result"]["content"][0]["text"], R"({"who":"alice"})") << a;
  Json b = CallAs("bob", bob, 2);
  EXPECT_EQ(b["error"]["code"], -32010) << b;
  EXPECT_EQ(b["error"]["data"]["reason"], "capability_missing") << b;
  EXPECT_EQ(b["error"]["data"]["rule"], "agents.reviewer.syscalls") << b;
  EXPECT_THAT(Decisions("researcher"), ::testing::ElementsAre("allow/ok"));
  EXPECT_THAT(Decisions("reviewer"), ::testing::ElementsAre("deny/capability_missing"));
  EXPECT_THAT(Decisions("mcp-client"), ::testing::IsEmpty()) << "nobody acted as [gateway] agent";
}

TEST_F(HttpFrontSubjectsTest, AnUnmappedSubjectIsRefusedWithoutASession) {
  auto [a, ex] = Send(Init(Sign("EdDSA", Claims("mallory"), "ed")));
  EXPECT_EQ(a.status, 403) << a.body;
  EXPECT_EQ(ReasonOf(a), "mcp_subject_unmapped");
  EXPECT_THAT(a.body, HasSubstr("mallory"));
  EXPECT_EQ(front_->session_count(), 0u);
}

TEST_F(HttpFrontSubjectsTest, StatelessRequestsRunInTheirSubjectsOwnContext) {
  auto as = [&](const std::string& subject, int id) {
    HttpRequest r =
        StatelessPost(id, "tools/call", {{"name", "a.echo"}, {"arguments", {{"who", subject}}}});
    r.headers.emplace_back("authorization", "Bearer " + Sign("EdDSA", Claims(subject), "ed"));
    return Send(std::move(r));
  };
  auto [a, e1] = as("alice", 1);
  EXPECT_EQ(a.status, 200) << a.body;
  EXPECT_THAT(e1->body(), HasSubstr(R"(\"who\":\"alice\")"));
  auto [b, e2] = as("bob", 1);
  EXPECT_EQ(b.status, 200) << b.body;
  EXPECT_THAT(e2->body(), HasSubstr("capability_missing"));
  EXPECT_EQ(front_->session_count(), 2u) << "one context per subject";
  auto [m, e3] = as("mallory", 1);
  EXPECT_EQ(m.status, 403) << m.body;
  EXPECT_EQ(ReasonOf(m), "mcp_subject_unmapped");
  EXPECT_THAT(Decisions("researcher"), ::testing::ElementsAre("allow/ok"));
  EXPECT_THAT(Decisions("reviewer"), ::testing::ElementsAre("deny/capability_missing"));
}

class HttpFrontSubjectsFallbackTest : public HttpFrontSubjectsTest {
 protected:
  HttpFrontSubjectsFallbackTest() {
    auth_extra_ = "[http.auth.subjects]\n\"alice\" = \"researcher\"\n\"*\" = \"mcp-client\"\n";
  }
};

TEST_F(HttpFrontSubjectsFallbackTest, TheStarEntryMapsEveryOtherSubject) {
  const std::string carol = OpenAs("carol");
  ASSERT_FALSE(carol.empty());
  Json c = CallAs("carol", carol, 2);
  EXPECT_EQ(c["result"]["content"][0]["text"], R"({"who":"carol"})") << c;
  EXPECT_THAT(Decisions("mcp-client"), ::testing::ElementsAre("allow/ok"));
  EXPECT_THAT(Decisions("researcher"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace custos::mcp
