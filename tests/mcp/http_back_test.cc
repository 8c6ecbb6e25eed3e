// The gateway's Streamable HTTP back (a `url` server) against the stdio fixture behind a small
// HTTP endpoint (tests/mcp/fixtures/http_fixture_server.js): the same mediation, labels and
// sampling relay as a stdio server, and a server that goes away.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

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
    Result<std::unique_ptr<Gateway>> g = Gateway::Create(std::move(o));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gateway_ = std::move(g).value();
    client_->Attach(gateway_.get());
    Result<Message> init =
        client_->Request("initialize", {{"protocolVersion", "2025-11-25"},
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

  HttpFixture fixture_;
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
  // Methods the era removed are answered by the gateway.
  Result<Message> sub = client_->Request("resources/subscribe", {{"uri", "a+fixture://doc"}});
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->error_code, kMethodNotFound);
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

}  // namespace
}  // namespace custos::mcp
