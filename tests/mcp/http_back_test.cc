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
  bool Start() {
    int out[2];
    if (::pipe(out) != 0)
      return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      const std::string script = FixtureDir() + "http_fixture_server.js";
      const std::string node = Node();
      ::execl(node.c_str(), node.c_str(), script.c_str(), static_cast<char*>(nullptr));
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
  void SetUp() override {
    if (Node().empty())
      GTEST_SKIP() << "node is not installed";
    ASSERT_TRUE(fixture_.Start());
    std::ofstream(dir_.path() / "policy.toml")
        << "[policy]\nname = \"back-test\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
           "[tools]\nallow = [\"a.*\"]\n"
           "[[flows]]\nid = \"no-external-to-writes\"\nfrom = [\"external\"]\n"
           "to = [\"tool:a.write_file\"]\n";
    std::ofstream(dir_.path() / "gateway.toml")
        << "[gateway]\npolicy = \"policy.toml\"\n[[servers]]\nname = \"a\"\nurl = \""
        << fixture_.url() << "\"\ntimeout_ms = 3000\nclient_capabilities = [\"sampling\"]\n";
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
                                        {"capabilities", {{"sampling", Json::object()}}},
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

}  // namespace
}  // namespace custos::mcp
