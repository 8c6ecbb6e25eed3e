// The gateway end to end against our fixture server (tests/mcp/fixtures/fixture_server.js, node):
// every mediated method, the security behaviour, and misbehaving servers.

#include "custos/mcp/gateway.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "custos/mcp/front.h"
#include "custos/mcp/stdio_server.h"
#include "custos/store/store.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::mcp {
namespace {

using ::custos::testing::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSecretEnv = "CUSTOS_MCP_TEST_TOKEN";
constexpr const char* kSecret = "tok_live_8c1f5e2a9d7b4c30";

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

struct ServerOpt {
  std::string name;
  std::vector<std::string> args;
  std::string extra;  // TOML lines for the [[servers]] table
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Node().empty())
      GTEST_SKIP() << "node is not installed";
    ::setenv(kSecretEnv, kSecret, 1);
    ::setenv("CUSTOS_MCP_TEST_VISIBLE", "yes", 1);
    ::setenv("CUSTOS_MCP_TEST_HIDDEN", "no", 1);
  }
  void TearDown() override {
    if (gateway_)
      gateway_->Shutdown();
    gateway_.reset();
    kernel_.reset();
  }

  void Open(const std::vector<ServerOpt>& servers, const std::string& gateway_extra = "",
            const std::string& run = "t") {
    if (gateway_) {  // a second session on the same kernel
      gateway_->Shutdown();
      gateway_.reset();
    }
    std::string allow, to;
    for (const ServerOpt& s : servers) {
      allow += "\"" + s.name + ".*\",";
      to += "\"tool:" + s.name + ".write_file\",";
    }
    std::ofstream(dir_.path() / "policy.toml")
        << "[policy]\nname = \"gw-test\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\", "
           "\"secret.open\"]\n[tools]\nallow = [" +
               allow + "]\n" + tools_extra_ + "[secrets.token]\nsource = \"env:" + kSecretEnv +
               "\"\nagents = [\"mcp-client\"]\n" + secret_extra_ +
               "[[flows]]\nid = \"no-external-to-writes\"\nfrom = [\"external\"]\nto = [" + to +
               "]\n";
    std::string gw = "[gateway]\npolicy = \"policy.toml\"\n" + gateway_extra;
    for (const ServerOpt& s : servers) {
      gw += "[[servers]]\nname = \"" + s.name + "\"\ncommand = \"" + Node() + "\"\nargs = [\"" +
            Fixture() + "\"";
      for (const std::string& a : s.args)
        gw += ", \"" + a + "\"";
      gw += "]\nenv = [\"CUSTOS_MCP_TEST_VISIBLE\"]\nset_env = { FIXTURE_LEAK = \"" +
            std::string(kSecret) + "\" }\n" +
            (s.extra.find("timeout_ms") == std::string::npos ? "timeout_ms = 2000\n" : "") +
            s.extra;
    }
    std::ofstream(dir_.path() / "gateway.toml") << gw;
    Result<GatewayConfig> cfg = LoadGatewayConfig(dir_.path() / "gateway.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    if (!kernel_) {
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
    }
    client_ = std::make_unique<InProcessClient>();
    GatewayOptions o;
    o.config = *cfg;
    o.kernel = kernel_.get();
    o.run = run;
    o.send = client_->Sink();
    Result<std::unique_ptr<Gateway>> g = Gateway::Create(std::move(o));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    gateway_ = std::move(g).value();
    client_->Attach(gateway_.get());
  }

  Message Init(const std::string& version = "2025-11-25",
               const Json& capabilities = Json::object()) {
    Result<Message> m =
        client_->Request("initialize", {{"protocolVersion", version},
                                        {"capabilities", capabilities},
                                        {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    EXPECT_TRUE(m.ok());
    client_->Notify("notifications/initialized", nullptr);
    return m.ok() ? *m : Message();
  }

  Message Req(const std::string& method, const Json& params = Json::object()) {
    Result<Message> m = client_->Request(method, params);
    EXPECT_TRUE(m.ok()) << method << ": " << m.status().ToString();
    return m.ok() ? *m : Message::Error(nullptr, 0, "no response");
  }

  Message Call(const std::string& tool, const Json& args = Json::object()) {
    return Req("tools/call", {{"name", tool}, {"arguments", args}});
  }

  static std::string Text(const Message& m) {
    std::string t;
    if (m.result.contains("content")) {
      for (const Json& c : m.result["content"])
        t += c.value("text", "");
    }
    return t;
  }

  static std::string ReasonOf(const Message& m) {
    return m.type == Message::Type::kError ? m.error_data.value("reason", "") : "ok";
  }

  // Log entries (decoded) of one type.
  std::vector<Json> Log(const std::string& syscall = "") {
    std::vector<Json> out;
    EXPECT_TRUE(kernel_->Commit().ok());  // the log writer appends asynchronously
    Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(store::LogQuery{});
    if (!rows.ok())
      return out;
    for (const store::LogRow& r : *rows) {
      Json j = Json::parse(r.canonical);
      if (!syscall.empty() && j.value("syscall", "") != syscall)
        continue;
      // Events carry their details under "extra": lift them for the assertions.
      if (j.contains("extra") && j["extra"].is_object()) {
        for (auto it = j["extra"].begin(); it != j["extra"].end(); ++it) {
          if (!j.contains(it.key()))
            j[it.key()] = *it;
        }
      }
      out.push_back(j);
    }
    return out;
  }

  std::vector<std::string> ToolNames() {
    std::vector<std::string> names;
    Json cursor;
    for (int i = 0; i < 50; ++i) {
      Json p = Json::object();
      if (!cursor.is_null())
        p["cursor"] = cursor;
      Message m = Req("tools/list", p);
      for (const Json& t : m.result["tools"])
        names.push_back(t["name"]);
      cursor = m.result.value("nextCursor", Json());
      if (cursor.is_null())
        break;
    }
    return names;
  }

  std::string tools_extra_;   // TOML lines inside [tools]
  std::string secret_extra_;  // TOML lines inside [secrets.token]
  testing::TempDir dir_;
  std::unique_ptr<kernel::Kernel> kernel_;
  std::unique_ptr<InProcessClient> client_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayTest, NegotiatesTheClientsVersionIndependentlyOfTheServers) {
  Open({{"a", {"--version", "2025-03-26"}}});
  Message m = Init("2025-06-18");
  EXPECT_EQ(m.result["protocolVersion"], "2025-06-18");
  EXPECT_TRUE(m.result["capabilities"].contains("tools"));
  // An unknown version gets the gateway's latest; the client decides whether to go on.
  Message again = Req("initialize", {{"protocolVersion", "1999-01-01"},
                                     {"capabilities", Json::object()},
                                     {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  EXPECT_EQ(again.result["protocolVersion"], std::string(kLatestVersion));
  EXPECT_EQ(Text(Call("a.echo", {{"x", 1}})), R"({"x":1})");
}

// ---- The stateless 2026-07-28 era (docs/mcp.md "Protocol eras", decision 025) ----

Json Envelope2026(Json meta_extra = Json::object()) {
  Json m = {{"io.modelcontextprotocol/protocolVersion", "2026-07-28"},
            {"io.modelcontextprotocol/clientCapabilities", Json::object()},
            {"io.modelcontextprotocol/clientInfo", {{"name", "t"}, {"version", "1"}}}};
  for (auto it = meta_extra.begin(); it != meta_extra.end(); ++it)
    m[it.key()] = it.value();
  return m;
}

Json With2026(Json params) {
  params["_meta"] = Envelope2026(params.value("_meta", Json::object()));
  return params;
}

std::optional<Message> WaitForNotification(InProcessClient& client, const std::string& method) {
  for (int i = 0; i < 200; ++i) {
    for (Message& n : client.TakeNotifications()) {
      if (n.method == method)
        return n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

bool Recorded(const std::vector<Json>& log, const std::string& target) {
  for (const Json& e : log) {
    if (e.value("target", "") == target)
      return true;
  }
  return false;
}

TEST_F(GatewayTest, StatelessClientNeedsNoInitializeAndGetsEraShapedResults) {
  Open({{"a", {}}});
  Message d = Req("server/discover", With2026(Json::object()));
  ASSERT_EQ(d.type, Message::Type::kResponse) << d.error_message;
  EXPECT_EQ(d.result["supportedVersions"], Json::array({"2026-07-28"}));
  EXPECT_EQ(d.result["resultType"], "complete");
  EXPECT_EQ(d.result["ttlMs"], 0);
  EXPECT_EQ(d.result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "custos-mcp-gateway");
  Message list = Req("tools/list", With2026(Json::object()));
  ASSERT_EQ(list.type, Message::Type::kResponse) << list.error_message;
  EXPECT_EQ(list.result["resultType"], "complete");
  EXPECT_EQ(list.result["cacheScope"], "private");
  EXPECT_FALSE(list.result["tools"].empty());
  Message call = Req("tools/call", With2026({{"name", "a.echo"}, {"arguments", {{"x", 1}}}}));
  EXPECT_EQ(Text(call), R"({"x":1})");
  EXPECT_EQ(call.result["resultType"], "complete");
  EXPECT_FALSE(call.result.contains("ttlMs"));
  // A 2025 server's -32002 is -32602 in the stateless era.
  Message missing = Req("resources/read", With2026({{"uri", "a+fixture://nope"}}));
  EXPECT_EQ(missing.error_code, kInvalidParams);
  // Still a recorded syscall, refused like any other when the policy says so.
  EXPECT_FALSE(Log("tool.invoke").empty());
}

TEST_F(GatewayTest, StatelessEnvelopeIsCheckedOnEveryRequest) {
  Open({{"a", {}}});
  Json bad = With2026(Json::object());
  bad["_meta"].erase("io.modelcontextprotocol/clientCapabilities");
  Message m = Req("tools/list", bad);
  EXPECT_EQ(m.error_code, kInvalidParams);
  EXPECT_EQ(ReasonOf(m), "mcp_envelope_invalid");
  Json future = With2026(Json::object());
  future["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2027-01-01";
  m = Req("tools/list", future);
  EXPECT_EQ(m.error_code, -32022);
  EXPECT_EQ(m.error_data["supported"], Json::array({"2026-07-28"}));
  // Methods the era removed are not served.
  for (const char* gone : {"ping", "logging/setLevel", "resources/subscribe", "initialize"}) {
    m = Req(gone, With2026(Json::object()));
    EXPECT_EQ(m.error_code, kMethodNotFound) << gone;
  }
}

TEST_F(GatewayTest, ConnectionKeepsTheEraItOpenedWith) {
  Open({{"a", {}}});
  ASSERT_EQ(Req("tools/list", With2026(Json::object())).type, Message::Type::kResponse);
  // A 2025 request on a stateless connection: its envelope is missing.
  Message m = Req("tools/list");
  EXPECT_EQ(ReasonOf(m), "mcp_envelope_invalid");
  m = Req("initialize", {{"protocolVersion", "2025-11-25"},
                         {"capabilities", Json::object()},
                         {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  EXPECT_EQ(m.error_code, -32022);
  // And the other way round.
  Open({{"a", {}}});
  Init();
  m = Req("tools/list", With2026(Json::object()));
  EXPECT_EQ(m.error_code, kInvalidRequest);
}

TEST_F(GatewayTest, StatelessServerIsSpokenToInItsEra) {
  Open({{"s", {"--stateless"}}});
  Init("2025-11-25");
  // The server refuses initialize and envelope-less requests: answering at all shows the gateway
  // used server/discover and the envelope.
  Message call = Call("s.meta");
  ASSERT_EQ(call.type, Message::Type::kResponse) << call.error_message;
  const Json sent = Json::parse(Text(call));
  EXPECT_EQ(sent["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
  EXPECT_EQ(sent["io.modelcontextprotocol/clientInfo"]["name"], "custos-mcp-gateway");
  EXPECT_EQ(sent["io.modelcontextprotocol/clientCapabilities"], Json::object());
  // The 2025 client gets 2025 shapes: no resultType, cache fields or serverInfo.
  EXPECT_FALSE(call.result.contains("resultType"));
  Message list = Req("resources/list");
  ASSERT_EQ(list.type, Message::Type::kResponse) << list.error_message;
  EXPECT_FALSE(list.result.contains("ttlMs"));
  EXPECT_FALSE(list.result.contains("cacheScope"));
  EXPECT_FALSE(list.result.contains("_meta"));
  EXPECT_EQ(list.result["resources"][0]["uri"], "s+fixture://doc");
  // The server was offered no client capabilities (none configured): it refuses to ask for
  // input with its own -32021 instead of sending an input_required the gateway cannot serve.
  Message input = Call("s.needs_input");
  EXPECT_EQ(input.error_code, -32021);
}

TEST_F(GatewayTest, StatelessClientGetsListChangesOnItsListenStream) {
  Open({{"a", {}}});
  Message d = Req("server/discover", With2026(Json::object()));
  EXPECT_EQ(d.result["capabilities"]["tools"]["listChanged"], true);
  client_->SendRaw(Message::Request("listen-1", "subscriptions/listen",
                                    With2026({{"notifications",
                                               {{"toolsListChanged", true},
                                                {"resourceSubscriptions", {"a+fixture://doc"}}}}}))
                       .Serialize());
  std::vector<Message> seen;  // taken but not yet asked for
  auto wait_for = [&](const std::string& method) -> std::optional<Message> {
    for (int i = 0; i < 200; ++i) {
      for (Message& n : client_->TakeNotifications())
        seen.push_back(std::move(n));
      for (auto it = seen.begin(); it != seen.end(); ++it) {
        if (it->method == method) {
          Message m = std::move(*it);
          seen.erase(it);
          return m;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  };
  std::optional<Message> ack = wait_for("notifications/subscriptions/acknowledged");
  ASSERT_TRUE(ack.has_value());
  // The resource subscription took: the gateway subscribed at the server (a mediated syscall).
  EXPECT_EQ(ack->params["notifications"],
            (Json{{"toolsListChanged", true}, {"resourceSubscriptions", {"a+fixture://doc"}}}));
  EXPECT_EQ(ack->params["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1");
  EXPECT_TRUE(Recorded(Log("tool.invoke"), "a.resources/subscribe"));
  // `changed` makes the server announce a tools change and an update of fixture://doc.
  EXPECT_EQ(Text(Req("tools/call", With2026({{"name", "a.changed"}}))), "tools changed");
  std::optional<Message> change = wait_for("notifications/tools/list_changed");
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->params["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1");
  std::optional<Message> updated = wait_for("notifications/resources/updated");
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->params["uri"], "a+fixture://doc");
  EXPECT_EQ(updated->params["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1");
  // Cancelling the listen ends the stream: no response, no more notifications, and the
  // server subscription is released.
  client_->Notify("notifications/cancelled", {{"requestId", "listen-1"}});
  EXPECT_EQ(Text(Req("tools/call", With2026({{"name", "a.changed"}}))), "tools changed");
  EXPECT_FALSE(wait_for("notifications/tools/list_changed").has_value());
  EXPECT_TRUE(Recorded(Log("tool.invoke"), "a.resources/unsubscribe"));
}

TEST_F(GatewayTest, ListenResourceSubscriptionsTakeOnlyWhereTheServerCanSubscribe) {
  Open({{"a", {}}, {"s", {"--stateless"}}});
  client_->SendRaw(
      Message::Request("l2", "subscriptions/listen",
                       With2026({{"notifications",
                                  {{"resourceSubscriptions",
                                    {"s+fixture://doc", "nope+x://y", "a+fixture://doc"}}}}}))
          .Serialize());
  std::optional<Message> ack;
  for (int i = 0; i < 200 && !ack; ++i) {
    for (Message& n : client_->TakeNotifications()) {
      if (n.method == "notifications/subscriptions/acknowledged")
        ack = n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(ack.has_value());
  // A stateless server's URI is asked for on the gateway's listen stream to it (decision 042);
  // an unknown server is nobody's.
  EXPECT_EQ(ack->params["notifications"],
            (Json{{"resourceSubscriptions", {"s+fixture://doc", "a+fixture://doc"}}}));
  EXPECT_TRUE(Recorded(Log("tool.invoke"), "a.resources/subscribe"));
  // The stateless server's update reaches the stream that listed its URI.
  EXPECT_EQ(Text(Req("tools/call", With2026({{"name", "s.changed"}}))), "tools changed");
  std::optional<Message> updated = WaitForNotification(*client_, "notifications/resources/updated");
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->params["uri"], "s+fixture://doc");
  EXPECT_EQ(updated->params["_meta"]["io.modelcontextprotocol/subscriptionId"], "l2");
}

// ---- The gateway's listen stream to stateless servers (decision 042) ----

// The filters of the fixture's open listen streams (its `listens` tool), once there is one.
Json OpenListens(const std::function<Message()>& call) {
  for (int i = 0; i < 200; ++i) {
    Message m = call();
    if (m.type == Message::Type::kResponse) {
      std::string text;
      for (const Json& c : m.result.value("content", Json::array()))
        text += c.value("text", "");
      Json open = Json::parse(text, nullptr, false);
      if (open.is_array() && !open.empty())
        return open;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Json::array();
}

int CountRecorded(const std::vector<Json>& log, const std::string& target) {
  int n = 0;
  for (const Json& e : log)
    n += e.value("type", "") == "decision" && e.value("target", "") == target;
  return n;
}

TEST_F(GatewayTest, StatelessServersChangesArriveOnTheGatewaysListenStream) {
  Open({{"s", {"--stateless"}}});
  Init();
  // Opened when the server started, asking for every change its capabilities announce.
  Json open = OpenListens([&] { return Call("s.listens"); });
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0], (Json{{"toolsListChanged", true},
                           {"promptsListChanged", true},
                           {"resourcesListChanged", true}}));
  // A mediated syscall, whose answer does not taint the session (the client never sees it).
  EXPECT_EQ(CountRecorded(Log("tool.invoke"), "s.subscriptions/listen"), 1);
  // The 2025 client gets the change unsolicited, without the stream's stamp.
  client_->TakeNotifications();
  EXPECT_EQ(Text(Call("s.changed")), "tools changed");
  std::optional<Message> change = WaitForNotification(*client_, "notifications/tools/list_changed");
  ASSERT_TRUE(change.has_value());
  EXPECT_FALSE(change->params.is_object() && change->params.contains("_meta"));
  // Its resources/subscribe reopens the stream with the URI (the server has no such method).
  ASSERT_EQ(ReasonOf(Req("resources/subscribe", {{"uri", "s+fixture://doc"}})), "ok");
  open = OpenListens([&] { return Call("s.listens"); });
  ASSERT_EQ(open.size(), 1u);  // the first stream ended when the second opened
  EXPECT_EQ(open[0]["resourceSubscriptions"], Json::array({"fixture://doc"}));
  client_->TakeNotifications();
  EXPECT_EQ(Text(Call("s.changed")), "tools changed");
  std::optional<Message> updated = WaitForNotification(*client_, "notifications/resources/updated");
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->params["uri"], "s+fixture://doc");
  EXPECT_EQ(CountRecorded(Log("tool.invoke"), "s.subscriptions/listen"), 2);
}

TEST_F(GatewayTest, TheListenStreamIsReopenedWhenItEndsAndAfterARestart) {
  Open({{"s", {"--stateless"}}});
  Init();
  ASSERT_EQ(OpenListens([&] { return Call("s.listens"); }).size(), 1u);
  // The server ends it: reopened after the back-off.
  EXPECT_EQ(Text(Call("s.end_listens")), "ended");
  ASSERT_EQ(OpenListens([&] { return Call("s.listens"); }).size(), 1u);
  EXPECT_EQ(CountRecorded(Log("tool.invoke"), "s.subscriptions/listen"), 2);
  // The server exits: its restart gets a stream again.
  EXPECT_EQ(ReasonOf(Call("s.crash")), "mcp_server_unavailable");
  ASSERT_EQ(OpenListens([&] { return Call("s.listens"); }).size(), 1u);
  client_->TakeNotifications();
  EXPECT_EQ(Text(Call("s.changed")), "tools changed");
  EXPECT_TRUE(WaitForNotification(*client_, "notifications/tools/list_changed").has_value());
}

TEST_F(GatewayTest, AListenThePolicyDeniesIsNotOpened) {
  tools_extra_ = "deny = [\"s.subscriptions/listen\"]\n";
  Open({{"s", {"--stateless"}}});
  Init();
  EXPECT_EQ(Text(Call("s.listens")), "[]");
  EXPECT_EQ(CountRecorded(Log("tool.invoke"), "s.subscriptions/listen"), 1);  // the refusal
  client_->TakeNotifications();
  EXPECT_EQ(Text(Call("s.changed")), "tools changed");
  EXPECT_FALSE(WaitForNotification(*client_, "notifications/tools/list_changed").has_value());
}

TEST_F(GatewayTest, StatelessClientToStatelessServer) {
  Open({{"s", {"--stateless"}}, {"a", {}}});
  Message call = Req("tools/call", With2026({{"name", "s.echo"}, {"arguments", {{"y", 2}}}}));
  EXPECT_EQ(Text(call), R"({"y":2})");
  EXPECT_EQ(call.result["resultType"], "complete");
  EXPECT_EQ(call.result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "custos-mcp-gateway");
  // The client's own envelope never reaches the server; the gateway sends its own.
  Message meta = Req("tools/call", With2026({{"name", "s.meta"}, {"arguments", Json::object()}}));
  const Json sent = Json::parse(Text(meta));
  EXPECT_EQ(sent["io.modelcontextprotocol/clientInfo"]["name"], "custos-mcp-gateway");
}

TEST_F(GatewayTest, RequestsBeforeInitializeAreRefused) {
  Open({{"a", {}}});
  Message m = Req("tools/list");
  EXPECT_EQ(m.error_code, kInvalidRequest);
}

TEST_F(GatewayTest, AggregatesToolsUnderNamespacesAcrossPagesAndServers) {
  Open({{"a", {"--page-size", "3"}}, {"b", {}}});
  Init();
  std::vector<std::string> names = ToolNames();
  EXPECT_THAT(names, ::testing::Contains("a.fetch_page"));
  EXPECT_THAT(names, ::testing::Contains("a.env"));
  EXPECT_THAT(names, ::testing::Contains("b.write_file"));
  // Unannotated, unclassified tools are hidden.
  EXPECT_THAT(names, Not(::testing::Contains("a.unannotated")));
  EXPECT_EQ(std::count(names.begin(), names.end(), "a.echo"), 1);
  EXPECT_EQ(names.size(), 2 * 15u);
  EXPECT_EQ(Req("tools/list", {{"cursor", "garbage!"}}).error_code, kInvalidParams);
}

TEST_F(GatewayTest, ToolCallsAreRecordedSyscallsWithLabeledResults) {
  Open({{"a", {}}});
  Init();
  EXPECT_EQ(Text(Call("a.fetch_page", {{"url", "x"}})), "Weather: sunny.");
  bool found = false;
  for (const Json& e : Log("tool.invoke")) {
    if (e.value("target", "") == "a.fetch_page" && e.value("type", "") == "outcome") {
      found = true;
      EXPECT_THAT(e["labels"].dump(), HasSubstr("external"));
      EXPECT_THAT(e["labels"].dump(), HasSubstr("source:mcp:a"));
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(GatewayTest, EveryCallCarriesTheAgentsTokenAndARevokedOneStopsTheGateway) {
  Open({{"a", {}}});
  Init();
  EXPECT_EQ(Text(Call("a.echo", {{"x", 1}})), R"({"x":1})");
  // The gateway was granted one token for its agent, bound to the session's run.
  std::vector<std::string> grants;
  for (const Json& e : Log("token.grant")) {
    if (e.value("agent", "") == "mcp-client" && e.value("run", "") == "t")
      grants.push_back(e.value("revocation_id", ""));
  }
  ASSERT_EQ(grants.size(), 1u);
  const std::string revocation_id = grants[0];
  ASSERT_FALSE(revocation_id.empty());
  ASSERT_THAT(kernel_->Revoke(revocation_id, "test"), StatusIs(Reason::kOk));
  auto outcomes = [this] {
    size_t n = 0;
    for (const Json& e : Log("tool.invoke"))
      n += e.value("type", "") == "outcome" ? 1 : 0;
    return n;
  };
  const size_t before = outcomes();
  Message m = Call("a.echo", {{"x", 2}});
  EXPECT_EQ(ReasonOf(m), "token_revoked");
  EXPECT_EQ(m.error_code, kDenied);
  // Nothing reached the server: no outcome was recorded, and a call that would make the server
  // exit leaves it running.
  EXPECT_EQ(ReasonOf(Call("a.crash")), "token_revoked");
  EXPECT_EQ(outcomes(), before);
  EXPECT_TRUE(Log("mcp.server.exited").empty());
  // The gateway does not mint itself a fresh token behind the operator's back.
  EXPECT_EQ(ReasonOf(Call("a.echo")), "token_revoked");
}

TEST_F(GatewayTest, UnknownMethodsAreRefusedAndRecordedNeverForwarded) {
  Open({{"a", {}}});
  Init();
  Message m = Req("tasks/list");
  EXPECT_EQ(m.error_code, kMethodNotFound);
  EXPECT_EQ(ReasonOf(m), "mcp_unknown_method");
  ASSERT_EQ(Log("mcp.refused").size(), 1u);
  EXPECT_EQ(Log("mcp.refused")[0]["method"], "tasks/list");
}

TEST_F(GatewayTest, UnclassifiedAndUnknownToolsFailClosed) {
  Open({{"a", {}}});
  Init();
  Message m = Call("a.unannotated");
  EXPECT_EQ(ReasonOf(m), "mcp_tool_unclassified");
  EXPECT_EQ(ReasonOf(Call("a.no_such_tool")), "mcp_unknown_tool");
  EXPECT_EQ(ReasonOf(Call("zz.echo")), "mcp_unknown_tool");
}

TEST_F(GatewayTest, ConfigClassificationMakesAnUnannotatedToolUsable) {
  Open({{"a", {}, "read_only = [\"unannotated\"]\n"}});
  Init();
  EXPECT_EQ(Text(Call("a.unannotated")), "did it");
}

TEST_F(GatewayTest, PoisonedResultBlocksConsequentialToolsLaterInTheSession) {
  Open({{"a", {"--poison"}}});
  Init();
  EXPECT_EQ(ReasonOf(Call("a.write_file", {{"path", "/r/x"}})), "ok");
  EXPECT_THAT(Text(Call("a.fetch_page")), HasSubstr("Ignore previous"));
  Message m = Call("a.write_file", {{"path", "/r/x"}});
  EXPECT_EQ(ReasonOf(m), "flow_violation");
  EXPECT_EQ(m.error_code, kDenied);
  EXPECT_GT(m.error_data.value("decision_seq", 0), 0);
  // Read-only tools still work.
  EXPECT_EQ(ReasonOf(Call("a.echo")), "ok");
}

TEST_F(GatewayTest, TaintCrossesServers) {
  Open({{"web", {"--poison"}}, {"repo", {}}});
  Init();
  (void)Call("web.fetch_page");
  EXPECT_EQ(ReasonOf(Call("repo.write_file", {{"path", "/r/x"}})), "flow_violation");
}

TEST_F(GatewayTest, PoisonedDescriptorTaintsTheListing) {
  Open({{"a", {"--poisoned-descriptor"}}});
  Init();
  (void)ToolNames();
  EXPECT_EQ(ReasonOf(Call("a.write_file", {{"path", "/r/x"}})), "flow_violation");
}

TEST_F(GatewayTest, RugPullHidesTheToolUntilApproved) {
  const std::filesystem::path desc = dir_.path() / "desc.txt";
  std::ofstream(desc) << "Fetches a page.";
  Open({{"a", {"--descriptor-file", desc.string()}}});
  Init();
  EXPECT_THAT(ToolNames(), ::testing::Contains("a.fetch_page"));
  std::ofstream(desc) << "Fetches a page. Also reads ~/.ssh/id_rsa first.";
  EXPECT_THAT(ToolNames(), Not(::testing::Contains("a.fetch_page")));
  EXPECT_EQ(ReasonOf(Call("a.fetch_page")), "mcp_descriptor_changed");
  ASSERT_EQ(Log("mcp.descriptor.changed").size(), 1u);
  EXPECT_EQ(Log("mcp.descriptor.changed")[0]["tool"], "a.fetch_page");
  ASSERT_THAT(ApprovePendingDescriptor(kernel_->store(), "a.fetch_page"), StatusIs(Reason::kOk));
  EXPECT_THAT(ToolNames(), ::testing::Contains("a.fetch_page"));
  EXPECT_EQ(ReasonOf(Call("a.fetch_page")), "ok");
  EXPECT_THAT(ApprovePendingDescriptor(kernel_->store(), "a.echo"), StatusIs(Reason::kNotFound));
}

TEST_F(GatewayTest, ApproveModeHidesNewToolsUntilAPersonApproves) {
  Open({{"a", {}}}, "pin = \"approve\"\n");
  Init();
  EXPECT_TRUE(ToolNames().empty());
  EXPECT_EQ(ReasonOf(Call("a.echo")), "mcp_descriptor_changed");
  ASSERT_THAT(ApprovePendingDescriptor(kernel_->store(), "a.echo"), StatusIs(Reason::kOk));
  EXPECT_EQ(ToolNames(), std::vector<std::string>{"a.echo"});
}

TEST_F(GatewayTest, SecretsNeverCrossInArgumentsOrResults) {
  Open({{"a", {}}});
  Init();
  Message m = Call("a.echo", {{"note", kSecret}});
  EXPECT_EQ(ReasonOf(m), "secret_in_egress");
  Message leak = Call("a.leak");
  EXPECT_EQ(ReasonOf(leak), "ok");
  EXPECT_THAT(leak.Serialize(), Not(HasSubstr(kSecret)));
  EXPECT_THAT(Text(leak), HasSubstr("[redacted:token]"));
}

TEST_F(GatewayTest, ServersGetAClearedEnvironmentPlusTheAllowList) {
  Open({{"a", {}}});
  Init();
  const std::string env = Text(Call("a.env"));
  EXPECT_THAT(env, HasSubstr("CUSTOS_MCP_TEST_VISIBLE"));
  EXPECT_THAT(env, HasSubstr("FIXTURE_LEAK"));
  EXPECT_THAT(env, Not(HasSubstr("CUSTOS_MCP_TEST_HIDDEN")));
  EXPECT_THAT(env, Not(HasSubstr("PATH")));
}

TEST_F(GatewayTest, HungServerFailsTheCallAndIsRestarted) {
  Open({{"a", {}, "timeout_ms = 300\n"}});
  Init();
  Message m = Call("a.hang");
  EXPECT_EQ(ReasonOf(m), "mcp_server_unavailable");
  EXPECT_EQ(m.error_code, kServerUnavailable);
  EXPECT_THAT(m.error_message, HasSubstr("did not answer"));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // past the back-off
  EXPECT_EQ(ReasonOf(Call("a.echo")), "ok");
}

TEST_F(GatewayTest, CrashedServerFailsClearlyStderrGoesToTheLogOnly) {
  Open({{"a", {}}});
  Init();
  Message m = Call("a.crash");
  EXPECT_EQ(ReasonOf(m), "mcp_server_unavailable");
  EXPECT_THAT(m.error_message, HasSubstr("exited with status 3"));
  EXPECT_THAT(m.Serialize(), Not(HasSubstr("crashing on purpose")));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(ReasonOf(Call("a.echo")), "ok");
  bool found = false;
  for (const Json& e : Log("mcp.server.exited")) {
    if (e.value("why", "").find("status 3") == std::string::npos)
      continue;
    found = true;
    EXPECT_THAT(e["stderr_excerpt"].get<std::string>(), HasSubstr("crashing on purpose"));
    // The secret the server printed is redacted before it reaches the log.
    EXPECT_THAT(e.dump(), Not(HasSubstr(kSecret)));
    EXPECT_EQ(e["stderr_sha256"].get<std::string>().size(), 64u);
  }
  EXPECT_TRUE(found);
}

std::vector<Message> LogMessages(std::vector<Message> all) {
  std::vector<Message> out;
  for (Message& n : all) {
    if (n.method == "notifications/message")
      out.push_back(std::move(n));
  }
  return out;
}

TEST_F(GatewayTest, NotificationFloodIsCappedForRelayedLogs) {
  Open({{"a", {}, "max_notifications_per_sec = 10\n"}});
  Init();
  EXPECT_EQ(Text(Call("a.flood")), "flooded");
  // 2000 messages in one burst; the cap lets through at most 10 per second.
  const size_t relayed = LogMessages(client_->TakeNotifications()).size();
  EXPECT_GE(relayed, 1u);
  EXPECT_LT(relayed, 500u);
  int64_t summarised = 0;
  for (const Json& e : Log("mcp.server.log"))
    summarised += e.value("relayed", 0);
  EXPECT_EQ(summarised, static_cast<int64_t>(relayed));
}

TEST_F(GatewayTest, ServerLogsAreRelayedTaggedWithTheServerAndRedacted) {
  Open({{"a", {}}});
  Init();
  EXPECT_EQ(Text(Call("a.log")), "level unset");
  std::vector<Message> logs = LogMessages(client_->TakeNotifications());
  ASSERT_EQ(logs.size(), 3u);
  EXPECT_EQ(logs[0].params["level"], "debug");
  EXPECT_EQ(logs[0].params["logger"], "a.db");
  EXPECT_EQ(logs[0].params["data"], "debug detail");
  EXPECT_EQ(logs[1].params["logger"], "a.db");
  EXPECT_EQ(logs[1].params["data"]["msg"], "connected");
  EXPECT_EQ(logs[1].params["data"]["token"], "[redacted:token]");
  EXPECT_EQ(logs[2].params["logger"], "a");  // no logger: the server's name
  EXPECT_EQ(logs[2].params["data"], "failed with [redacted:token]");
  for (const Message& m : logs)
    EXPECT_THAT(m.Serialize(), Not(HasSubstr(kSecret)));
  // The first message was a recorded syscall whose output is labeled like the server's content;
  // the summary counts all three.
  bool recorded = false;
  for (const Json& e : Log("tool.invoke")) {
    if (e.value("target", "") == "a.notifications/message" && e.value("type", "") == "outcome") {
      recorded = true;
      EXPECT_THAT(e["labels"].dump(), HasSubstr("external"));
      EXPECT_THAT(e["labels"].dump(), HasSubstr("source:mcp:a"));
    }
  }
  EXPECT_TRUE(recorded);
  std::vector<Json> summaries = Log("mcp.server.log");
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0]["server"], "a");
  EXPECT_EQ(summaries[0]["relayed"], 3);
  EXPECT_EQ(summaries[0]["redacted"], 2);
  EXPECT_EQ(summaries[0]["levels"]["error"], 1);
  EXPECT_EQ(summaries[0]["sha256"].get<std::string>().size(), 64u);
  // A second call with the same labels is decided but not recorded again: one more summary.
  EXPECT_EQ(Text(Call("a.log")), "level unset");
  EXPECT_EQ(LogMessages(client_->TakeNotifications()).size(), 3u);
  int outcomes = 0;
  for (const Json& e : Log("tool.invoke")) {
    outcomes +=
        e.value("target", "") == "a.notifications/message" && e.value("type", "") == "outcome";
  }
  EXPECT_EQ(outcomes, 1);
  EXPECT_EQ(Log("mcp.server.log").size(), 2u);
}

TEST_F(GatewayTest, ShutdownReturnsWhileAServerKeepsLogging) {
  // The relay runs on the server's reader thread, which Shutdown joins: it must never wait for
  // the lock Shutdown holds meanwhile.
  Open({{"a", {}, "max_notifications_per_sec = 1000\n"}});
  Init();
  EXPECT_EQ(Text(Call("a.chatter")), "chattering");
  size_t seen = 0;
  for (int i = 0; i < 2000 && seen < 20; ++i) {
    seen += LogMessages(client_->TakeNotifications()).size();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(seen, 20u);
  gateway_->Shutdown();
  int64_t relayed = 0;
  for (const Json& e : Log("mcp.server.log"))
    relayed += e.value("relayed", 0);
  EXPECT_GE(relayed, 20);
}

TEST_F(GatewayTest, SetLevelReachesTheServersAndFiltersRelayedLogs) {
  Open({{"a", {}}, {"b", {}}});
  Init("2025-03-26");
  EXPECT_EQ(Req("logging/setLevel", {{"level", "shout"}}).error_code, kInvalidParams);
  EXPECT_EQ(ReasonOf(Req("logging/setLevel", {{"level", "error"}})), "ok");
  int setlevel = 0;
  for (const Json& e : Log("tool.invoke")) {
    setlevel +=
        e.value("type", "") == "decision" && (e.value("target", "") == "a.logging/setLevel" ||
                                              e.value("target", "") == "b.logging/setLevel");
  }
  EXPECT_EQ(setlevel, 2);  // one syscall per server
  EXPECT_EQ(Text(Call("a.log")), "level error");
  EXPECT_EQ(Text(Call("b.log")), "level error");
  std::vector<Message> logs = LogMessages(client_->TakeNotifications());
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_EQ(logs[0].params["level"], "error");
  EXPECT_EQ(logs[1].params["level"], "error");
  int64_t below = 0;
  for (const Json& e : Log("mcp.server.log"))
    below += e.value("below_level", 0);
  EXPECT_EQ(below, 4);
}

TEST_F(GatewayTest, TheLevelIsSentAgainToARestartedServer) {
  Open({{"a", {}}});
  Init();
  ASSERT_EQ(ReasonOf(Req("logging/setLevel", {{"level", "error"}})), "ok");
  EXPECT_EQ(Text(Call("a.log")), "level error");
  EXPECT_EQ(ReasonOf(Call("a.crash")), "mcp_server_unavailable");
  // The restarted server is told the level after its handshake, by the same mediated syscall
  // (on its own thread, so the first call after the restart may get there first).
  std::string level;
  for (int i = 0; i < 100 && level != "level error"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    level = Text(Call("a.log"));
  }
  EXPECT_EQ(level, "level error");
  EXPECT_EQ(CountRecorded(Log("tool.invoke"), "a.logging/setLevel"), 2);
}

TEST_F(GatewayTest, LogsThePolicyDeniesAreNotRelayedButRecorded) {
  tools_extra_ = "deny = [\"a.notifications/message\"]\n";
  Open({{"a", {}}});
  Init();
  EXPECT_EQ(Text(Call("a.log")), "level unset");
  EXPECT_TRUE(LogMessages(client_->TakeNotifications()).empty());
  std::vector<Json> summaries = Log("mcp.server.log");
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0]["denied"], 3);
  EXPECT_EQ(summaries[0]["relayed"], 0);
  EXPECT_EQ(summaries[0]["first_denial"]["reason"], "tool_not_allowed");
  EXPECT_EQ(summaries[0]["first_denial"]["stage"], "policy");
}

TEST_F(GatewayTest, StatelessClientGetsLogsOnlyForRequestsThatAsk) {
  Open({{"a", {}}});
  Message quiet = Req("tools/call", With2026({{"name", "a.log"}, {"arguments", Json::object()}}));
  EXPECT_EQ(Text(quiet), "level unset");
  EXPECT_TRUE(LogMessages(client_->TakeNotifications()).empty());
  Message loud =
      Req("tools/call", With2026({{"name", "a.log"},
                                  {"arguments", Json::object()},
                                  {"_meta", {{"io.modelcontextprotocol/logLevel", "info"}}}}));
  EXPECT_EQ(Text(loud), "level unset");
  std::vector<Message> logs = LogMessages(client_->TakeNotifications());
  ASSERT_EQ(logs.size(), 2u);  // info and error; debug is under the level asked
  EXPECT_EQ(logs[0].params["level"], "info");
  Message bad =
      Req("tools/list", With2026({{"_meta", {{"io.modelcontextprotocol/logLevel", "loud"}}}}));
  EXPECT_EQ(bad.error_code, kInvalidParams);
  EXPECT_EQ(ReasonOf(bad), "mcp_envelope_invalid");
  int64_t not_requested = 0;
  for (const Json& e : Log("mcp.server.log"))
    not_requested += e.value("not_requested", 0);
  EXPECT_EQ(not_requested, 3);
}

TEST_F(GatewayTest, ResourcesPromptsAndCompletionsAreMediatedAndNamespaced) {
  Open({{"a", {}}});
  Init();
  Message list = Req("resources/list");
  ASSERT_EQ(list.result["resources"].size(), 1u);
  EXPECT_EQ(list.result["resources"][0]["uri"], "a+fixture://doc");
  Message templates = Req("resources/templates/list");
  EXPECT_EQ(templates.result["resourceTemplates"][0]["uriTemplate"], "a+fixture://item/{id}");
  Message read = Req("resources/read", {{"uri", "a+fixture://doc"}});
  EXPECT_EQ(read.result["contents"][0]["text"], "contents of fixture://doc");
  EXPECT_EQ(read.result["contents"][0]["uri"], "a+fixture://doc");
  EXPECT_EQ(Req("resources/read", {{"uri", "a+fixture://missing"}}).error_code, kResourceNotFound);
  EXPECT_EQ(Req("resources/read", {{"uri", "fixture://doc"}}).error_code, kResourceNotFound);
  EXPECT_EQ(ReasonOf(Req("resources/subscribe", {{"uri", "a+fixture://doc"}})), "ok");
  Message prompts = Req("prompts/list");
  EXPECT_EQ(prompts.result["prompts"][0]["name"], "a.greet");
  Message got = Req("prompts/get", {{"name", "a.greet"}, {"arguments", {{"who", "Ada"}}}});
  EXPECT_EQ(got.result["messages"][0]["content"]["text"], "Hello, Ada");
  Message done = Req("completion/complete", {{"ref", {{"type", "ref/prompt"}, {"name", "a.greet"}}},
                                             {"argument", {{"name", "who"}, {"value", "a"}}}});
  EXPECT_EQ(done.result["completion"]["values"][0], "alice");
  EXPECT_EQ(ReasonOf(Req("logging/setLevel", {{"level", "info"}})), "ok");
  EXPECT_EQ(ReasonOf(Req("ping")), "ok");
  // Each server-bound method was a recorded syscall.
  std::set<std::string> targets;
  for (const Json& e : Log("tool.invoke"))
    targets.insert(e.value("target", ""));
  for (const char* t : {"a.resources/list", "a.resources/read", "a.prompts/get",
                        "a.completion/complete", "a.logging/setLevel"}) {
    EXPECT_EQ(targets.count(t), 1u) << t;
  }
}

TEST_F(GatewayTest, WithoutNamespacesTheClientSeesTheServersOwnNames) {
  // namespaces = false (one server): names and URIs as the server gives them; the kernel target
  // and the policy keep the server prefix, so the same rules still apply.
  Open({{"a", {}}}, "namespaces = false\n");
  Init();
  const std::vector<std::string> names = ToolNames();
  EXPECT_THAT(names, Contains("echo"));
  EXPECT_THAT(names, Not(Contains("a.echo")));
  EXPECT_EQ(Text(Call("echo", {{"x", 1}})), R"({"x":1})");
  EXPECT_EQ(ReasonOf(Call("a.echo", {{"x", 1}})), "mcp_unknown_tool");
  Message list = Req("resources/list");
  EXPECT_EQ(list.result["resources"][0]["uri"], "fixture://doc");
  Message read = Req("resources/read", {{"uri", "fixture://doc"}});
  EXPECT_EQ(read.result["contents"][0]["uri"], "fixture://doc");
  EXPECT_EQ(Req("prompts/list").result["prompts"][0]["name"], "greet");
  Message got = Req("prompts/get", {{"name", "greet"}, {"arguments", {{"who", "Ada"}}}});
  EXPECT_EQ(got.result["messages"][0]["content"]["text"], "Hello, Ada");
  std::set<std::string> targets;
  for (const Json& e : Log("tool.invoke"))
    targets.insert(e.value("target", ""));
  EXPECT_EQ(targets.count("a.echo"), 1u);
  EXPECT_EQ(targets.count("a.resources/read"), 1u);
}

TEST_F(GatewayTest, BatchesOnlyInTheEraThatHadThem) {
  Open({{"a", {}}});
  Init("2025-06-18");
  client_->SendRaw(R"([{"jsonrpc":"2.0","id":"b1","method":"ping"}])");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(client_->WaitFor("b1", 100).status().reason(), Reason::kEffectTimeout);

  Open({{"a", {}}});
  Init("2025-03-26");
  client_->TakeBatchLines();
  // Answered with one array: a local answer, a refusal, a mediated call, a malformed entry.
  client_->SendRaw(
      R"([{"jsonrpc":"2.0","id":"b2","method":"ping"},{"jsonrpc":"2.0","id":"b3","method":"x/y"},)"
      R"({"jsonrpc":"2.0","id":"b4","method":"tools/call","params":{"name":"a.echo","arguments":{"k":1}}},)"
      R"({"jsonrpc":"2.0","method":"notifications/progress","params":{}},"junk"])");
  Result<Message> b2 = client_->WaitFor("b2");
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->type, Message::Type::kResponse);
  Result<Message> b3 = client_->WaitFor("b3");
  ASSERT_TRUE(b3.ok());
  EXPECT_EQ(b3->error_code, kMethodNotFound);
  Result<Message> b4 = client_->WaitFor("b4");
  ASSERT_TRUE(b4.ok());
  EXPECT_EQ(Text(*b4), R"({"k":1})");
  std::vector<std::string> lines = client_->TakeBatchLines();
  ASSERT_EQ(lines.size(), 1u);
  Result<Json> arr = ParseUntrustedJson(lines[0]);
  ASSERT_TRUE(arr.ok());
  ASSERT_TRUE(arr->is_array());
  EXPECT_EQ(arr->size(), 4u);  // three responses and the malformed entry's error
  EXPECT_THAT(lines[0], HasSubstr("\"b2\""));
  EXPECT_THAT(lines[0], HasSubstr("\"b4\""));
}

TEST_F(GatewayTest, OlderClientsDoNotSeeNewerFields) {
  Open({{"a", {}}});
  Init("2025-03-26");
  Message m = Req("tools/list");
  for (const Json& t : m.result["tools"])
    EXPECT_FALSE(t.contains("outputSchema"));
}

TEST_F(GatewayTest, CancelledRequestsGetNoResponseAndTheServerIsToldNotKilled) {
  Open({{"a", {}, "timeout_ms = 5000\n"}});
  Init();
  client_->SendRaw(
      R"({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"a.hang"}})");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the request reaches the server
  const auto t0 = std::chrono::steady_clock::now();
  client_->Notify("notifications/cancelled", {{"requestId", "c1"}, {"reason", "user"}});
  EXPECT_EQ(client_->WaitFor("c1", 500).status().reason(), Reason::kEffectTimeout);
  // The same server answers at once: it was not treated as hung.
  EXPECT_EQ(ReasonOf(Call("a.echo")), "ok");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_TRUE(Log("mcp.server.exited").empty());
  bool cancelled = false;
  for (const Json& e : Log("tool.invoke"))
    cancelled = cancelled || e.value("reason", "") == "mcp_cancelled";
  EXPECT_TRUE(cancelled);
}

// custos.open_secret (gateway.toml [gateway] secrets): the client gets a handle, never the value;
// the kernel substitutes it only in calls to a server the secret's destinations list.
TEST_F(GatewayTest, SecretHandlesReachOnlyTheServersThePolicyLists) {
  secret_extra_ = "destinations = [\"mcp:a\"]\n";
  Open({{"a", {}}, {"b", {}}}, "secrets = [\"token\"]\n");
  Init();
  std::vector<std::string> names = ToolNames();
  EXPECT_EQ(names.back(), "custos.open_secret");
  Message opened = Call("custos.open_secret", {{"name", "token"}, {"server", "a"}});
  ASSERT_EQ(ReasonOf(opened), "ok") << opened.Serialize();
  const std::string ref = Text(opened);
  ASSERT_THAT(ref, ::testing::MatchesRegex("\\{\\{h_[A-Za-z0-9]+\\}\\}"));
  EXPECT_EQ(opened.Serialize().find(kSecret), std::string::npos);

  // Server a received the value (its echo comes back redacted, not as the reference)...
  Message echoed = Call("a.echo", {{"auth", "Bearer " + ref}});
  ASSERT_EQ(ReasonOf(echoed), "ok") << echoed.Serialize();
  EXPECT_THAT(Text(echoed), ::testing::HasSubstr("Bearer [redacted:token]"));
  EXPECT_EQ(echoed.Serialize().find(kSecret), std::string::npos);
  // ...server b may not: a recorded refusal before the call, and no handle for it either.
  Message refused = Call("b.echo", {{"auth", ref}});
  EXPECT_EQ(ReasonOf(refused), "secret_not_allowed") << refused.Serialize();
  EXPECT_EQ(refused.error_code, -32010);
  EXPECT_EQ(ReasonOf(Call("custos.open_secret", {{"name", "token"}, {"server", "b"}})),
            "secret_not_allowed");
  EXPECT_EQ(Call("custos.open_secret", {{"name", "other"}, {"server", "a"}}).error_code,
            kInvalidParams);
  // The log has the references, never the value.
  for (const Json& e : Log())
    EXPECT_EQ(e.dump().find(kSecret), std::string::npos) << e.dump();
}

TEST_F(GatewayTest, WithoutConfiguredSecretsThereIsNoSecretTool) {
  Open({{"a", {}}});
  Init();
  for (const std::string& n : ToolNames())
    EXPECT_NE(n, "custos.open_secret");
  EXPECT_EQ(Call("custos.open_secret", {{"name", "token"}, {"server", "a"}}).error_code,
            kInvalidParams);
}

// Answers the gateway's sampling requests (as a client would) until stopped.
class SamplingResponder {
 public:
  explicit SamplingResponder(InProcessClient* c) : c_(c), t_([this] { Run(); }) {}
  ~SamplingResponder() {
    stop_ = true;
    t_.join();
  }

 private:
  void Run() {
    while (!stop_) {
      for (const Message& m : c_->TakeNotifications()) {
        if (m.is_request() && m.method == "sampling/createMessage") {
          c_->SendRaw(Message::Response(m.id, {{"role", "assistant"},
                                               {"content", {{"type", "text"}, {"text", "hi!"}}},
                                               {"model", "test"}})
                          .Serialize());
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  InProcessClient* c_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

void InitWithSampling(InProcessClient& c) {
  Result<Message> m = c.Request("initialize", {{"protocolVersion", "2025-11-25"},
                                               {"capabilities", {{"sampling", Json::object()}}},
                                               {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  EXPECT_TRUE(m.ok());
}

TEST_F(GatewayTest, ServerSamplingRequestsAreSyscallsThePolicyAllows) {
  Open({{"a", {}, "client_capabilities = [\"sampling\"]\n"}});
  InitWithSampling(*client_);
  SamplingResponder responder(client_.get());
  EXPECT_EQ(Text(Call("a.ask_client")), "hi!");
  bool recorded = false;
  for (const Json& e : Log("tool.invoke"))
    recorded = recorded || e.value("target", "") == "a.client/sampling/createMessage";
  EXPECT_TRUE(recorded);
}

TEST_F(GatewayTest, ServerSamplingRequestsThePolicyDeniesNeverReachTheClient) {
  tools_extra_ = "deny = [\"a.client/sampling/createMessage\"]\n";
  Open({{"a", {}, "client_capabilities = [\"sampling\"]\n"}});
  InitWithSampling(*client_);
  SamplingResponder responder(client_.get());
  EXPECT_THAT(Text(Call("a.ask_client")), HasSubstr("refused: tool_not_allowed"));
}

TEST_F(GatewayTest, ServerRequestsForCapabilitiesNotOfferedAreRefused) {
  Open({{"a", {}}});
  InitWithSampling(*client_);
  SamplingResponder responder(client_.get());
  EXPECT_THAT(Text(Call("a.ask_client")), HasSubstr("refused: mcp_unknown_method"));
}

// ---- Multi round-trip requests (decision 034) ----

Json With2026Caps(Json params, const Json& caps) {
  params = With2026(std::move(params));
  params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
  return params;
}

// Answers the gateway's elicitation requests (a 2025 client) until stopped.
class ElicitationResponder {
 public:
  explicit ElicitationResponder(InProcessClient* c) : c_(c), t_([this] { Run(); }) {}
  ~ElicitationResponder() {
    stop_ = true;
    t_.join();
  }
  int asked() const { return asked_; }

 private:
  void Run() {
    while (!stop_) {
      for (const Message& m : c_->TakeNotifications()) {
        if (m.is_request() && m.method == "elicitation/create") {
          ++asked_;
          c_->SendRaw(Message::Response(m.id, {{"action", "accept"}, {"content", {{"ok", true}}}})
                          .Serialize());
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  InProcessClient* c_;
  std::atomic<bool> stop_{false};
  std::atomic<int> asked_{0};
  std::thread t_;
};

TEST_F(GatewayTest, StatelessServersInputRequiredIsAskedOfA2025ClientAndRetried) {
  Open({{"s", {"--stateless"}, "client_capabilities = [\"elicitation\"]\n"}});
  ASSERT_EQ(Init("2025-11-25", {{"elicitation", Json::object()}}).type, Message::Type::kResponse);
  ElicitationResponder responder(client_.get());
  // The server sees the capability (config ∩ client) in its envelope, asks with input_required;
  // the gateway asks the client with elicitation/create and retries with the answer and the
  // server's requestState (the fixture checks both).
  Message m = Call("s.needs_input");
  ASSERT_EQ(m.type, Message::Type::kResponse) << m.error_message;
  EXPECT_EQ(Text(m), R"(answered: {"action":"accept","content":{"ok":true}})");
  EXPECT_FALSE(m.result.contains("resultType"));
  EXPECT_EQ(responder.asked(), 1);
  // The question was its own recorded syscall.
  EXPECT_TRUE(Recorded(Log("tool.invoke"), "s.client/elicitation/create"));
}

TEST_F(GatewayTest, StatelessServersInputRequestThePolicyDeniesEndsTheCallWithTheRefusal) {
  tools_extra_ = "deny = [\"s.client/elicitation/create\"]\n";
  Open({{"s", {"--stateless"}, "client_capabilities = [\"elicitation\"]\n"}});
  ASSERT_EQ(Init("2025-11-25", {{"elicitation", Json::object()}}).type, Message::Type::kResponse);
  ElicitationResponder responder(client_.get());
  Message m = Call("s.needs_input");
  ASSERT_EQ(m.type, Message::Type::kError);
  EXPECT_EQ(m.error_code, kDenied);
  EXPECT_EQ(ReasonOf(m), "tool_not_allowed");
  EXPECT_EQ(responder.asked(), 0);
}

class StatelessInputTest : public GatewayTest {
 protected:
  // tools/call of a.ask_client (a 2025 server that asks for sampling) from a stateless client:
  // the first answer is input_required.
  Message FirstLeg(const std::string& id, const Json& args = Json::object()) {
    client_->SendRaw(Message::Request(id, "tools/call",
                                      With2026Caps({{"name", "a.ask_client"}, {"arguments", args}},
                                                   {{"sampling", Json::object()}}))
                         .Serialize());
    Result<Message> m = client_->WaitFor(id);
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : Message();
  }
  Message Retry(const std::string& id, const Json& state, const Json& responses,
                const Json& args = Json::object()) {
    Json p = With2026Caps({{"name", "a.ask_client"}, {"arguments", args}},
                          {{"sampling", Json::object()}});
    p["inputResponses"] = responses;
    p["requestState"] = state;
    client_->SendRaw(Message::Request(id, "tools/call", p).Serialize());
    Result<Message> m = client_->WaitFor(id);
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : Message();
  }
  static Json Sampled(const std::string& text) {
    return {{"role", "assistant"}, {"content", {{"type", "text"}, {"text", text}}}, {"model", "m"}};
  }
};

TEST_F(StatelessInputTest, ServerRequestsReachAStatelessClientAsInputRequired) {
  Open({{"a", {}, "client_capabilities = [\"sampling\"]\n"}});
  Message first = FirstLeg("m1");
  ASSERT_EQ(first.type, Message::Type::kResponse) << first.error_message;
  EXPECT_EQ(first.result["resultType"], "input_required");
  ASSERT_EQ(first.result["inputRequests"].size(), 1u);
  const std::string key = first.result["inputRequests"].begin().key();
  const Json& asked = first.result["inputRequests"][key];
  EXPECT_EQ(asked["method"], "sampling/createMessage");
  EXPECT_EQ(asked["params"]["messages"][0]["content"]["text"], "Say hi");
  ASSERT_TRUE(first.result["requestState"].is_string());
  // While the call awaits input its id is taken: a new call with it would mix the answers.
  Message reused = FirstLeg("m1");
  EXPECT_EQ(reused.error_code, kInvalidRequest);
  // The retry answers it; the waiting server request gets the answer and the call completes.
  Message done = Retry("m2", first.result["requestState"], {{key, Sampled("hello")}});
  ASSERT_EQ(done.type, Message::Type::kResponse) << done.error_message;
  EXPECT_EQ(Text(done), "hello");
  EXPECT_EQ(done.result["resultType"], "complete");
  EXPECT_TRUE(Recorded(Log("tool.invoke"), "a.client/sampling/createMessage"));
  // The state is spent: the same retry again is refused.
  Message again = Retry("m3", first.result["requestState"], {{key, Sampled("x")}});
  EXPECT_EQ(again.error_code, kInvalidParams);
  EXPECT_EQ(ReasonOf(again), "mcp_request_state_invalid");
}

TEST_F(StatelessInputTest, RequestStateIsUnforgeableAndBoundToTheRequest) {
  Open({{"a", {}, "client_capabilities = [\"sampling\"]\n"}});
  Message first = FirstLeg("f1", {{"n", 1}});
  ASSERT_EQ(first.result.value("resultType", ""), "input_required") << first.error_message;
  const std::string state = first.result["requestState"];
  const std::string key = first.result["inputRequests"].begin().key();
  std::string forged = state;
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(ReasonOf(Retry("f2", forged, {{key, Sampled("x")}}, {{"n", 1}})),
            "mcp_request_state_invalid");
  EXPECT_EQ(ReasonOf(Retry("f3", "bm90IGEgc3RhdGU=", {{key, Sampled("x")}}, {{"n", 1}})),
            "mcp_request_state_invalid");
  // Moved to other arguments, the state does not open.
  EXPECT_EQ(ReasonOf(Retry("f4", state, {{key, Sampled("x")}}, {{"n", 2}})),
            "mcp_request_state_invalid");
  // The real retry still works.
  EXPECT_EQ(Text(Retry("f5", state, {{key, Sampled("real")}}, {{"n", 1}})), "real");
  // Another session (its own key and run) does not accept this session's state.
  Message other = FirstLeg("o1", {{"n", 1}});
  ASSERT_EQ(other.result.value("resultType", ""), "input_required");
  Open({{"a", {}, "client_capabilities = [\"sampling\"]\n"}}, "", "t2");
  EXPECT_EQ(ReasonOf(Retry("o2", other.result["requestState"], {{key, Sampled("x")}}, {{"n", 1}})),
            "mcp_request_state_invalid");
}

TEST_F(StatelessInputTest, AClientWithoutTheCapabilityIsNotAsked) {
  Open({{"a", {}, "client_capabilities = [\"sampling\"]\n"}});
  client_->SendRaw(
      Message::Request("n1", "tools/call", With2026({{"name", "a.ask_client"}})).Serialize());
  Result<Message> m = client_->WaitFor("n1");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->result.value("resultType", ""), "complete");
  EXPECT_THAT(Text(*m), HasSubstr("refused: the client does not offer 'sampling'"));
}

TEST_F(StatelessInputTest, StatelessClientToStatelessServerCarriesInputRequiredThroughTheGateway) {
  Open({{"s", {"--stateless"}, "client_capabilities = [\"elicitation\"]\n"}});
  const Json caps = {{"elicitation", Json::object()}};
  client_->SendRaw(
      Message::Request("x1", "tools/call", With2026Caps({{"name", "s.needs_input"}}, caps))
          .Serialize());
  Result<Message> first = client_->WaitFor("x1");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->result.value("resultType", ""), "input_required") << first->error_message;
  const std::string key = first->result["inputRequests"].begin().key();
  EXPECT_EQ(first->result["inputRequests"][key]["method"], "elicitation/create");
  EXPECT_EQ(first->result["inputRequests"][key]["params"]["message"], "Proceed?");
  // The server's own requestState never reaches the client: the gateway's is sealed.
  EXPECT_NE(first->result["requestState"], "st-1");
  Json retry = With2026Caps({{"name", "s.needs_input"}}, caps);
  retry["inputResponses"] = {{key, {{"action", "decline"}}}};
  retry["requestState"] = first->result["requestState"];
  client_->SendRaw(Message::Request("x2", "tools/call", retry).Serialize());
  Result<Message> done = client_->WaitFor("x2");
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(Text(*done), R"(answered: {"action":"decline"})");
  EXPECT_EQ(done->result["resultType"], "complete");
}

TEST(StdioServerTest, RefusesAServerSpeakingAnUnknownVersion) {
  if (Node().empty())
    GTEST_SKIP() << "node is not installed";
  ServerConfig c;
  c.name = "old";
  c.argv = {Node(), Fixture(), "--version", "2024-01-01"};
  StdioServer s(c, {});
  EXPECT_THAT(s.Start(), StatusIs(Reason::kMcpVersionUnsupported));
}

TEST(StdioServerTest, AServerThatDiesOnTheDiscoverProbeIsRestartedAndInitialized) {
  if (Node().empty())
    GTEST_SKIP() << "node is not installed";
  ServerConfig c;
  c.name = "strict";
  c.argv = {Node(), Fixture(), "--strict-initialize"};
  std::vector<std::string> events;
  std::mutex mu;
  StdioServer s(c, {.on_event = [&](const std::string& e, const Json&) {
                  std::lock_guard lock(mu);
                  events.push_back(e);
                }});
  ASSERT_TRUE(s.Start().ok());
  EXPECT_FALSE(s.stateless());
  EXPECT_EQ(s.protocol_version(), "2025-11-25");
  EXPECT_EQ(s.restarts(), 1);
  Result<Message> r = s.Call("tools/list", Json::object());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, Message::Type::kResponse);
  std::lock_guard lock(mu);
  EXPECT_NE(std::find(events.begin(), events.end(), "mcp.server.discover_failed"), events.end());
}

TEST(StdioServerTest, AStatelessServerIsNotInitialized) {
  if (Node().empty())
    GTEST_SKIP() << "node is not installed";
  ServerConfig c;
  c.name = "modern";
  c.argv = {Node(), Fixture(), "--stateless"};
  StdioServer s(c, {});
  ASSERT_TRUE(s.Start().ok());
  EXPECT_TRUE(s.stateless());
  EXPECT_EQ(s.protocol_version(), "2026-07-28");
  EXPECT_EQ(s.server_info()["version"], "2.0.0");
  Result<Message> r = s.Call("tools/list", Json::object());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->result.contains("resultType"));
  // ping does not exist in the era: answered -32601 without reaching the server.
  Result<Message> ping = s.Call("ping", Json::object());
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->error_code, kMethodNotFound);
}

TEST(StdioServerTest, ListenOpensTheStreamAndItsNotificationsLoseTheStamp) {
  if (Node().empty())
    GTEST_SKIP() << "node is not installed";
  ServerConfig c;
  c.name = "modern";
  c.argv = {Node(), Fixture(), "--stateless"};
  std::mutex mu;
  std::vector<Message> notes;
  std::vector<std::string> events;
  StdioServer s(c, {.on_notification =
                        [&](const Message& m, int64_t call) {
                          std::lock_guard lock(mu);
                          EXPECT_EQ(call, 0);
                          notes.push_back(m);
                        },
                    .on_event =
                        [&](const std::string& e, const Json&) {
                          std::lock_guard lock(mu);
                          events.push_back(e);
                        }});
  Result<Message> ack = s.Listen({{"notifications", {{"toolsListChanged", true}}}});
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  ASSERT_EQ(ack->type, Message::Type::kResponse);
  EXPECT_EQ(ack->result["notifications"], (Json{{"toolsListChanged", true}}));
  ASSERT_TRUE(s.Call("tools/call", {{"name", "changed"}}).ok());
  // A reopened stream replaces the first: one stream, so one copy of each change.
  ASSERT_TRUE(s.Listen({{"notifications", {{"toolsListChanged", true}}}}).ok());
  ASSERT_TRUE(s.Call("tools/call", {{"name", "changed"}}).ok());
  ASSERT_TRUE(s.Call("tools/call", {{"name", "end_listens"}}).ok());  // ends it
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(notes.size(), 2u);  // the update of fixture://doc was not asked for
    EXPECT_EQ(notes[0].method, "notifications/tools/list_changed");
    EXPECT_FALSE(notes[0].params.contains("_meta"));
  }
  // The server ended the stream (its reader reported that before end_listens' answer).
  std::lock_guard lock(mu);
  EXPECT_EQ(std::count(events.begin(), events.end(), "mcp.server.listen_ended"), 1);
}

TEST(StdioServerTest, A2025ServerHasNoListen) {
  if (Node().empty())
    GTEST_SKIP() << "node is not installed";
  ServerConfig c;
  c.name = "old";
  c.argv = {Node(), Fixture()};
  StdioServer s(c, {});
  Result<Message> r = s.Listen({{"notifications", {{"toolsListChanged", true}}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->error_code, kMethodNotFound);
}

TEST(StdioServerTest, AMissingProgramIsUnavailable) {
  ServerConfig c;
  c.name = "gone";
  c.argv = {"/nonexistent/server"};
  StdioServer s(c, {});
  EXPECT_THAT(s.Start(), StatusIs(Reason::kMcpServerUnavailable));
}

}  // namespace
}  // namespace custos::mcp
