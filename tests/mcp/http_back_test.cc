// The gateway's Streamable HTTP back (a `url` server) against the stdio fixture behind a small
// HTTP endpoint (tests/mcp/fixtures/http_fixture_server.js): the same mediation, labels and
// sampling relay as a stdio server, and a server that goes away.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "custos/mcp/front.h"
#include "custos/mcp/gateway.h"
#include "testing/temp_dir.h"

namespace custos::mcp {
namespace {

std::string FixtureDir() {
  const char* src = std::getenv("CUSTOS_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/tests/mcp/fixtures/";
}

std::string Node() {
  for (const char* p : {"/usr/bin/node", "/usr/local/bin/node"}) {
    if (::access(p, X_OK) == 0)
      return p;
  }
  return "";
}

// Runs the HTTP fixture; url() is its endpoint once it printed it.
class HttpFixture {
 public:
  bool Start(const std::vector<std::string>& args = {}) {
    int out[2];
    if (::pipe(out) != 0)
      return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      const std::string script = FixtureDir() + "http_fixture_server.js";
      const std::string node = Node();
      std::vector<std::string> argv = {node, script};
      argv.insert(argv.end(), args.begin(), args.end());
      std::vector<char*> raw;
      for (std::string& a : argv)
        raw.push_back(a.data());
      raw.push_back(nullptr);
      ::execv(node.c_str(), raw.data());
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[256];
    if (f == nullptr || std::fgets(line, sizeof line, f) == nullptr)
      return false;
    std::string s(line);
    const size_t at = s.find("http://");
    if (at == std::string::npos)
      return false;
    url_ = s.substr(at, s.find_first_of("\r\n", at) - at);
    file_ = f;
    return true;
  }
  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (file_ != nullptr) {
      std::fclose(file_);
      file_ = nullptr;
    }
  }
  ~HttpFixture() { Kill(); }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  FILE* file_ = nullptr;
  std::string url_;
};

class HttpBackTest : public ::testing::Test {
 protected:
  virtual std::vector<std::string> FixtureArgs() const { return {}; }
  virtual std::string ServerExtra() const { return "client_capabilities = [\"sampling\"]\n"; }
  virtual Json ClientCapabilities() const { return {{"sampling", Json::object()}}; }
  // "" : the client speaks 2026-07-28 (no initialize).
  virtual std::string ClientVersion() const { return "2025-11-25"; }

  void SetUp() override {
    if (Node().empty())
      GTEST_SKIP() << "node is not installed";
    ASSERT_TRUE(fixture_.Start(FixtureArgs()));
    std::ofstream(dir_.path() / "policy.toml")
        << "[policy]\nname = \"back-test\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
           "[tools]\nallow = [\"a.*\"]\n"
           "[[flows]]\nid = \"no-external-to-writes\"\nfrom = [\"external\"]\n"
           "to = [\"tool:a.write_file\"]\n";
    std::ofstream(dir_.path() / "gateway.toml")
        << "[gateway]\npolicy = \"policy.toml\"\n[[servers]]\nname = \"a\"\nurl = \""
        << fixture_.url() << "\"\ntimeout_ms = 3000\n"
        << ServerExtra();
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
    client_ = std::make_unique<InProcessClient>();
    GatewayOptions o;
    o.config = *cfg;
    o.kernel = kernel_.get();
    o.send = client_->Sink();
    o.send_related = [this, sink = client_->Sink()](const std::string& line,
                                                    const std::string& related) {
      {
        std::lock_guard lock(related_mu_);
        related_[Json::parse(line).value("method", "")].push_back(related);
      }
      sink(line);
    };
    Result<std::unique_ptr<Gateway>> g = Gateway::Create(std::move(o));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gateway_ = std::move(g).value();
    client_->Attach(gateway_.get());
    if (ClientVersion().empty())
      return;
    Result<Message> init =
        client_->Request("initialize", {{"protocolVersion", ClientVersion()},
                                        {"capabilities", ClientCapabilities()},
                                        {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    ASSERT_TRUE(init.ok());
  }
  void TearDown() override {
    if (gateway_)
      gateway_->Shutdown();
    gateway_.reset();
    kernel_.reset();
  }

  Message Call(const std::string& tool, const Json& args) {
    Result<Message> m = client_->Request("tools/call", {{"name", tool}, {"arguments", args}});
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : Message::Error(nullptr, 0, "no response");
  }

  // The client requests (ids dumped) the gateway said messages belong to, by method.
  std::vector<std::string> Related(const std::string& method) {
    std::lock_guard lock(related_mu_);
    return related_[method];
  }

  // Two calls of `tool` at once (the fixture's *_pair tools answer once both are in), with
  // `params` added; their responses.
  std::vector<Message> CallPair(const std::string& tool, const std::vector<Json>& params) {
    std::vector<Json> ids = {"pair-1", "pair-2"};
    for (size_t i = 0; i < 2; ++i) {
      Json p = params[i];
      p["name"] = tool;
      p["arguments"] = Json::object();
      client_->SendRaw(Message::Request(ids[i], "tools/call", p).Serialize());
    }
    std::vector<Message> out;
    for (const Json& id : ids) {
      Result<Message> m = client_->WaitFor(id);
      EXPECT_TRUE(m.ok());
      out.push_back(m.ok() ? *m : Message::Error(nullptr, 0, "no response"));
    }
    return out;
  }

  HttpFixture fixture_;
  std::mutex related_mu_;
  std::map<std::string, std::vector<std::string>> related_;
  custos::testing::TempDir dir_;
  std::unique_ptr<kernel::Kernel> kernel_;
  std::unique_ptr<InProcessClient> client_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(HttpBackTest, ToolsAreListedAndCalledThroughTheKernel) {
  Result<Message> list = client_->Request("tools/list", Json::object());
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names;
  for (const Json& t : list->result["tools"])
    names.push_back(t["name"]);
  EXPECT_THAT(names, ::testing::Contains("a.echo"));
  Message m = Call("a.echo", {{"x", 1}});
  ASSERT_EQ(m.type, Message::Type::kResponse) << m.error_message;
  EXPECT_EQ(m.result["content"][0]["text"], R"({"x":1})");
}

TEST_F(HttpBackTest, OutputIsLabeledExternalSoFlowRulesApply) {
  Message page = Call("a.fetch_page", {{"url", "https://example.com"}});
  ASSERT_EQ(page.type, Message::Type::kResponse) << page.error_message;
  Message w = Call("a.write_file", {{"path", "x"}, {"content", "y"}});
  ASSERT_EQ(w.type, Message::Type::kError);
  EXPECT_EQ(w.error_data["reason"], "flow_violation");
}

TEST_F(HttpBackTest, ServerRequestOnTheEventStreamReachesTheClient) {
  std::thread answer([this] {
    for (int i = 0; i < 200; ++i) {
      for (const Message& n : client_->TakeNotifications()) {
        if (n.is_request() && n.method == "sampling/createMessage") {
          client_->SendRaw(Message::Response(n.id, {{"role", "assistant"},
                                                    {"content", {{"type", "text"}, {"text", "hi"}}},
                                                    {"model", "m"}})
                               .Serialize());
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Message m = Call("a.ask_client", Json::object());
  answer.join();
  ASSERT_EQ(m.type, Message::Type::kResponse) << m.error_message;
  EXPECT_THAT(m.result.dump(), ::testing::HasSubstr("hi"));
}

TEST_F(HttpBackTest, AServerRequestOnACallsStreamBelongsToThatCall) {
  // Both calls are in flight when the server asks: each request came on its call's POST, so the
  // gateway says which call it belongs to (a front puts it on that call's stream).
  std::thread answer([this] {
    int answered = 0;
    for (int i = 0; i < 300 && answered < 2; ++i) {
      for (const Message& n : client_->TakeNotifications()) {
        if (n.is_request() && n.method == "sampling/createMessage") {
          client_->SendRaw(Message::Response(n.id, {{"role", "assistant"},
                                                    {"content", {{"type", "text"}, {"text", "hi"}}},
                                                    {"model", "m"}})
                               .Serialize());
          ++answered;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::vector<Message> done = CallPair("a.ask_pair", {Json::object(), Json::object()});
  answer.join();
  for (const Message& m : done)
    EXPECT_THAT(m.result.dump(), ::testing::HasSubstr("hi"));
  std::vector<std::string> related = Related("sampling/createMessage");
  std::sort(related.begin(), related.end());
  EXPECT_EQ(related, (std::vector<std::string>{R"("pair-1")", R"("pair-2")"}));
}

TEST_F(HttpBackTest, AServerThatIsGoneFailsTheCallWithServerUnavailable) {
  fixture_.Kill();
  Message m = Call("a.echo", {{"x", 1}});
  ASSERT_EQ(m.type, Message::Type::kError);
  EXPECT_EQ(m.error_code, kServerUnavailable);
}

// A 2026-07-28 server over HTTP (decision 034): the fixture refuses a request that carries a
// session id or whose MCP-Protocol-Version / Mcp-Method / Mcp-Name headers disagree with the
// body, refuses initialize and requests without the envelope, and needs the elicitation
// capability in the envelope for needs_input.
class StatelessHttpBackTest : public HttpBackTest {
 protected:
  std::vector<std::string> FixtureArgs() const override { return {"--stateless"}; }
  std::string ServerExtra() const override { return "client_capabilities = [\"elicitation\"]\n"; }
  Json ClientCapabilities() const override { return {{"elicitation", Json::object()}}; }
};

TEST_F(StatelessHttpBackTest, ProbedWithDiscoverAndSpokenToWithoutASession) {
  // Answering at all shows the probe, the envelope and the headers were right (the fixture
  // refuses initialize, envelope-less requests, session ids and mismatched headers).
  Message meta = Call("a.meta", Json::object());
  ASSERT_EQ(meta.type, Message::Type::kResponse) << meta.error_message;
  const Json sent = Json::parse(meta.result["content"][0]["text"].get<std::string>());
  EXPECT_EQ(sent["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
  EXPECT_EQ(sent["io.modelcontextprotocol/clientInfo"]["name"], "custos-mcp-gateway");
  // The client declared elicitation and the config offers it: so does the envelope.
  EXPECT_EQ(sent["io.modelcontextprotocol/clientCapabilities"],
            (Json{{"elicitation", Json::object()}}));
  // 2025 shapes for the 2025 client; Mcp-Name carries a resource URI too.
  Result<Message> read = client_->Request("resources/read", {{"uri", "a+fixture://doc"}});
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->type, Message::Type::kResponse) << read->error_message;
  EXPECT_FALSE(read->result.contains("resultType"));
  EXPECT_FALSE(read->result.contains("ttlMs"));
  EXPECT_EQ(read->result["contents"][0]["uri"], "a+fixture://doc");
  Result<Message> prompt =
      client_->Request("prompts/get", {{"name", "a.greet"}, {"arguments", {{"who", "x"}}}});
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ(prompt->type, Message::Type::kResponse) << prompt->error_message;
  // A tool's x-mcp-header argument is mirrored in its Mcp-Param-* header (learned from the
  // server's tools/list), base64-encoded when it is not plain visible ASCII.
  Message region = Call("a.region", {{"region", "eu-west"}});
  ASSERT_EQ(region.type, Message::Type::kResponse) << region.error_message;
  EXPECT_EQ(region.result["content"][0]["text"], "region eu-west");
  Message spaced = Call("a.region", {{"region", " caf\xc3\xa9 "}});
  ASSERT_EQ(spaced.type, Message::Type::kResponse) << spaced.error_message;
}

TEST_F(StatelessHttpBackTest, InputRequiredIsFulfilledOverHttpToo) {
  std::thread answer([this] {
    for (int i = 0; i < 200; ++i) {
      for (const Message& n : client_->TakeNotifications()) {
        if (n.is_request() && n.method == "elicitation/create") {
          client_->SendRaw(Message::Response(n.id, {{"action", "accept"}, {"content", {{"ok", 1}}}})
                               .Serialize());
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Message m = Call("a.needs_input", Json::object());
  answer.join();
  ASSERT_EQ(m.type, Message::Type::kResponse) << m.error_message;
  EXPECT_EQ(m.result["content"][0]["text"], R"(answered: {"action":"accept","content":{"ok":1}})");
}

TEST_F(StatelessHttpBackTest, TheGatewaysListenStreamCarriesTheServersChanges) {
  // The stream is opened when the server starts (a long-lived POST); the fixture's `listens`
  // shows it.
  auto open_listens = [this] {
    for (int i = 0; i < 200; ++i) {
      Message m = Call("a.listens", Json::object());
      const Json open = m.type == Message::Type::kResponse
                            ? Json::parse(m.result["content"][0].value("text", ""), nullptr, false)
                            : Json();
      if (open.is_array() && !open.empty())
        return open;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Json::array();
  };
  auto wait_for = [this](const std::string& method) -> std::optional<Message> {
    for (int i = 0; i < 200; ++i) {
      for (Message& n : client_->TakeNotifications()) {
        if (n.method == method)
          return n;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  };
  ASSERT_EQ(open_listens().size(), 1u);
  Message changed = Call("a.changed", Json::object());
  ASSERT_EQ(changed.type, Message::Type::kResponse) << changed.error_message;
  std::optional<Message> change = wait_for("notifications/tools/list_changed");
  ASSERT_TRUE(change.has_value());
  EXPECT_FALSE(change->params.is_object() && change->params.contains("_meta"));
  // A resource subscription reopens it with the URI; the server's update reaches the client.
  Result<Message> sub = client_->Request("resources/subscribe", {{"uri", "a+fixture://doc"}});
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->type, Message::Type::kResponse) << sub->error_message;
  Json open = open_listens();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0]["resourceSubscriptions"], Json::array({"fixture://doc"}));
  ASSERT_EQ(Call("a.changed", Json::object()).type, Message::Type::kResponse);
  std::optional<Message> updated = wait_for("notifications/resources/updated");
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->params["uri"], "a+fixture://doc");
  // The server ends the stream: the gateway reopens it.
  ASSERT_EQ(Call("a.end_listens", Json::object()).type, Message::Type::kResponse);
  EXPECT_EQ(open_listens().size(), 1u);
}

// A 2026-07-28 client through a 2025 server over HTTP: a server request or log message on a
// call's stream belongs to that call, even with several calls in flight (decision 034's
// "exactly one in flight" rule is for stdio and the GET stream).
class StatelessClientHttpBackTest : public HttpBackTest {
 protected:
  std::string ClientVersion() const override { return ""; }
  static Json With2026(Json params, Json meta = Json::object()) {
    meta["io.modelcontextprotocol/protocolVersion"] = "2026-07-28";
    meta["io.modelcontextprotocol/clientCapabilities"] = {{"sampling", Json::object()}};
    meta["io.modelcontextprotocol/clientInfo"] = {{"name", "t"}, {"version", "1"}};
    params["_meta"] = std::move(meta);
    return params;
  }
};

TEST_F(StatelessClientHttpBackTest, ServerRequestsOfConcurrentCallsBecomeTheirInputRequired) {
  std::vector<Message> done =
      CallPair("a.ask_pair", {With2026(Json::object()), With2026(Json::object())});
  for (const Message& m : done) {
    ASSERT_EQ(m.type, Message::Type::kResponse) << m.error_message;
    EXPECT_EQ(m.result["resultType"], "input_required") << m.result.dump();
  }
}

TEST_F(StatelessClientHttpBackTest, ALogOnACallsStreamFollowsThatCallsLevel) {
  // Only the first call asks for logs: the second's messages are not relayed.
  std::vector<Message> done = CallPair(
      "a.log_pair", {With2026(Json::object(), {{"io.modelcontextprotocol/logLevel", "debug"}}),
                     With2026(Json::object())});
  for (const Message& m : done)
    ASSERT_EQ(m.type, Message::Type::kResponse) << m.error_message;
  std::vector<std::string> data;
  for (const Message& n : client_->TakeNotifications()) {
    if (n.method == "notifications/message")
      data.push_back(n.params.value("data", ""));
  }
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0], data[1]);
  EXPECT_EQ(data[1], data[2]);
  EXPECT_EQ(Related("notifications/message"), std::vector<std::string>(3, R"("pair-1")"));
}

}  // namespace
}  // namespace custos::mcp
