// custosd as a process: the ready line, SIGTERM draining an in-flight request and committing the
// log, SIGHUP reload, two agent processes drawing from one budget through one daemon, and the MCP
// gateway mounted at /mcp (--mcp-config).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "custos/server/auth.h"
#include "integration/cli_runner.h"
#include "server/server_fixture.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

// A custosd child process; killed (SIGKILL) if the test did not stop it.
class Daemon {
 public:
  bool Start(const std::filesystem::path& data_dir, const std::filesystem::path& policy,
             const std::filesystem::path& socket, const std::vector<std::string>& extra = {}) {
    int out[2];
    if (::pipe(out) != 0)
      return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      const std::string bin = CUSTOSD_BIN_PATH;
      std::vector<std::string> args = {
          bin,        "--data-dir",  data_dir.string(), "--policy",      policy.string(),
          "--listen", "127.0.0.1:0", "--socket",        socket.string(), "--workers",
          "4"};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (std::string& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = ::fdopen(out[0], "r");
    char line[512];
    while (std::fgets(line, sizeof(line), out_) != nullptr) {
      const std::string l = line;
      if (l.rfind("custosd: listening on tcp ", 0) == 0)
        port_ = static_cast<uint16_t>(std::stoi(l.substr(l.rfind(':') + 1)));
      if (l.rfind("custosd: ready", 0) == 0)
        return port_ != 0;
    }
    return false;
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr)
      std::fclose(out_);
  }
  // Sends `sig`; for SIGTERM waits for the exit and returns the exit status.
  int Signal(int sig) {
    ::kill(pid_, sig);
    if (sig != SIGTERM)
      return 0;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  uint16_t port_ = 0;
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::canonical(tmp_.path());
    data_ = root_ / "data";
    std::filesystem::create_directories(root_ / "ws" / "out");
    std::filesystem::create_directories(data_);
    std::filesystem::permissions(data_, std::filesystem::perms::owner_all);
  }
  PolicySpec Spec() {
    PolicySpec s;
    s.root = root_.string();
    return s;
  }
  std::string Key(const std::string& agent) {
    Result<std::string> k = server::AddApiKey(data_, agent);
    EXPECT_TRUE(k.ok());
    return k.ok() ? *k : "";
  }
  bool StartDaemon(const PolicySpec& spec) {
    WriteFileOrDie(root_ / "policy.toml", MakePolicy(spec));
    return d_.Start(data_, root_ / "policy.toml", root_ / "d.sock");
  }
  HttpReply Post(const std::string& key, const std::string& target, const Json& body) {
    RawConnection c = RawConnection::Tcp(d_.port());
    return c.Call("POST", target, body.dump(), "Authorization: Bearer " + key + "\r\n");
  }

  TempDir tmp_;
  std::filesystem::path root_, data_;
  Daemon d_;
};

TEST_F(DaemonTest, SigtermDrainsInFlightRequestsAndCommitsTheLog) {
  PolicySpec spec = Spec();
  spec.extra =
      "[[tools.registry]]\nname = \"slow\"\ncommand = [\"/bin/sh\", \"-c\", \"sleep 0.4; cat\"]\n"
      "description = \"Takes a while.\"\n";
  // "slow" must be allowed too: rewrite the allow list.
  std::string policy = MakePolicy(spec);
  const std::string allow = "allow = [\"echo\", ";
  policy.replace(policy.find(allow), allow.size(), "allow = [\"slow\", \"echo\", ");
  WriteFileOrDie(root_ / "policy.toml", policy);
  const std::string key = Key("worker");
  ASSERT_TRUE(d_.Start(data_, root_ / "policy.toml", root_ / "d.sock"));
  std::future<HttpReply> in_flight = std::async(std::launch::async, [&] {
    return Post(key, "/v1/syscall",
                {{"run", "r"},
                 {"kind", "tool.invoke"},
                 {"target", "slow"},
                 {"args", {{"arguments", {{"x", 1}}}}}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(d_.Signal(SIGTERM), 0);
  const HttpReply r = in_flight.get();
  ASSERT_EQ(r.status, 200) << "the in-flight request was dropped";
  EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow") << r.body;
  EXPECT_GT(BodyJson(r)["receipt"].value("outcome_seq", 0), 0) << r.body;
  EXPECT_FALSE(std::filesystem::exists(root_ / "d.sock"));
  const CliResult v = RunCustos({"--data-dir", data_.string(), "audit", "verify"});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

TEST_F(DaemonTest, SighupReloadsAndABadPolicyKeepsTheOldOne) {
  const std::string key = Key("worker");
  ASSERT_TRUE(StartDaemon(Spec()));
  const Json call = {
      {"run", "r"}, {"kind", "memory.alloc"}, {"target", "a"}, {"args", {{"value", 1}}}};
  ASSERT_EQ(BodyJson(Post(key, "/v1/syscall", call))["decision"]["verdict"], "allow");
  WriteFileOrDie(root_ / "policy.toml", "not = [valid");
  d_.Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Json second = call;
  second["target"] = "b";
  EXPECT_EQ(BodyJson(Post(key, "/v1/syscall", second))["decision"]["verdict"], "allow");
  // A policy that takes memory.alloc away from worker: the next call is denied.
  PolicySpec spec = Spec();
  std::string narrower = MakePolicy(spec);
  const std::string all = "[agents.worker]\nsyscalls = [\"*\"]";
  narrower.replace(narrower.find(all), all.size(), "[agents.worker]\nsyscalls = [\"assert\"]");
  WriteFileOrDie(root_ / "policy.toml", narrower);
  d_.Signal(SIGHUP);
  std::string verdict;
  for (int i = 0; i < 50 && verdict != "deny"; ++i) {
    second["target"] = "c" + std::to_string(i);
    verdict = BodyJson(Post(key, "/v1/syscall", second))["decision"]["verdict"];
    if (verdict != "deny")
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(verdict, "deny");
  EXPECT_EQ(d_.Signal(SIGTERM), 0);
}

// weaver-kernel's most-asked problem: N worker processes, one budget. A worker and the helper it
// spawned run as separate processes with their own credentials, hammering tool.invoke at the same
// time; the daemon holds the one ledger, so together they get exactly the parent's budget.
TEST_F(DaemonTest, TwoAgentProcessesShareOneBudget) {
  PolicySpec spec = Spec();
  spec.worker_budget = "tool_calls = 10";
  const std::string worker = Key("worker"), helper = Key("helper");
  ASSERT_TRUE(StartDaemon(spec));
  HttpReply spawn =
      Post(worker, "/v1/syscall",
           {{"run", "r"},
            {"kind", "agent.spawn"},
            {"target", "helper"},
            {"args", {{"syscalls", {"tool.invoke"}}, {"budget", {{"tool_calls", 4}}}}}});
  ASSERT_EQ(BodyJson(spawn)["decision"]["verdict"], "allow") << spawn.body;
  constexpr int kAttempts = 12;
  pid_t kids[2];
  const std::string keys[2] = {worker, helper};
  for (int k = 0; k < 2; ++k) {
    kids[k] = ::fork();
    if (kids[k] == 0) {
      int allowed = 0;
      RawConnection c = RawConnection::Tcp(d_.port());
      for (int i = 0; i < kAttempts; ++i) {
        const Json call = {{"run", "r"},
                           {"kind", "tool.invoke"},
                           {"target", "echo"},
                           {"args", {{"arguments", {{"i", i}}}}}};
        HttpReply r =
            c.Call("POST", "/v1/syscall", call.dump(), "Authorization: Bearer " + keys[k] + "\r\n");
        Result<Json> j = ParseUntrustedJson(r.body);
        if (r.status != 200 || !j.ok())
          ::_exit(100);
        const std::string verdict = (*j)["decision"]["verdict"];
        const std::string reason = (*j)["decision"]["reason"];
        if (verdict == "allow")
          ++allowed;
        else if (reason != "budget_exhausted")
          ::_exit(101);
      }
      ::_exit(allowed);
    }
  }
  int allowed[2];
  for (int k = 0; k < 2; ++k) {
    int status = 0;
    ::waitpid(kids[k], &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    allowed[k] = WEXITSTATUS(status);
    ASSERT_LT(allowed[k], 100) << "child " << k << " saw an unexpected answer";
  }
  EXPECT_EQ(allowed[1], 4) << "the helper gets exactly its carve";
  EXPECT_EQ(allowed[0], 6) << "the worker gets the rest of the one budget";
  EXPECT_EQ(allowed[0] + allowed[1], 10) << "never more than the one budget";
  EXPECT_EQ(d_.Signal(SIGTERM), 0);
}

// One revocation list for every process: an admin revokes the worker's token through the API,
// and a separate helper process presenting the token its spawn derived from it is refused too.
TEST_F(DaemonTest, TwoAgentProcessesShareOneRevocationList) {
  WriteFileOrDie(data_ / "config.toml", "[server]\nadmins = [\"lead\"]\n");
  const std::string worker = Key("worker"), helper = Key("helper"), lead = Key("lead");
  ASSERT_TRUE(StartDaemon(Spec()));
  HttpReply grant = Post(lead, "/v1/grant", {{"agent", "worker"}, {"run", "r"}});
  ASSERT_EQ(grant.status, 200) << grant.body;
  const std::string token = BodyJson(grant)["token"];
  const std::filesystem::path child_token_file = root_ / "child.token";
  // Runs `body` in a child process (its own sockets) and returns its exit code.
  auto in_process = [](const std::function<int()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0)
      ::_exit(body());
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
  };
  // The verdict/reason of one syscall sent with `token` as `key`: 0 allow, 1 token_revoked, 2
  // anything else.
  auto call_with = [this](const std::string& key, const std::string& agent_token) {
    RawConnection c = RawConnection::Tcp(d_.port());
    const Json call = {{"run", "r"},
                       {"kind", "memory.alloc"},
                       {"target", "k"},
                       {"args", {{"value", 1}}},
                       {"token", agent_token}};
    HttpReply r =
        c.Call("POST", "/v1/syscall", call.dump(), "Authorization: Bearer " + key + "\r\n");
    Result<Json> j = ParseUntrustedJson(r.body);
    if (r.status != 200 || !j.ok())
      return 2;
    if ((*j)["decision"]["verdict"] == "allow")
      return 0;
    return (*j)["decision"]["reason"] == "token_revoked" ? 1 : 2;
  };
  // Process A (worker): spawns the helper with the granted token and hands over the child token.
  ASSERT_EQ(
      in_process([&] {
        RawConnection c = RawConnection::Tcp(d_.port());
        const Json spawn = {{"run", "r"},
                            {"kind", "agent.spawn"},
                            {"target", "helper"},
                            {"token", token},
                            {"args", {{"syscalls", {"memory.alloc"}}}}};
        HttpReply r =
            c.Call("POST", "/v1/syscall", spawn.dump(), "Authorization: Bearer " + worker + "\r\n");
        Result<Json> j = ParseUntrustedJson(r.body);
        if (!j.ok() || (*j)["decision"]["verdict"] != "allow" || !(*j)["frame"].contains("token"))
          return 3;
        WriteFileOrDie(child_token_file, (*j)["frame"]["token"].get<std::string>());
        return call_with(worker, token);
      }),
      0);
  std::string child_token;
  std::getline(std::ifstream(child_token_file), child_token);
  ASSERT_FALSE(child_token.empty());
  // Process B (helper) works with the derived token before the revocation...
  EXPECT_EQ(in_process([&] { return call_with(helper, child_token); }), 0);
  HttpReply revoke = Post(lead, "/v1/revoke", {{"token", token}, {"note", "test"}});
  ASSERT_EQ(revoke.status, 200) << revoke.body;
  // ... and after it, both processes are refused token_revoked.
  EXPECT_EQ(in_process([&] { return call_with(helper, child_token); }), 1);
  EXPECT_EQ(in_process([&] { return call_with(worker, token); }), 1);
  EXPECT_EQ(d_.Signal(SIGTERM), 0);
}

}  // namespace

namespace {

std::string Node() {
  for (const char* p : {"/usr/bin/node", "/usr/local/bin/node"}) {
    if (::access(p, X_OK) == 0)
      return p;
  }
  return "";
}

// One MCP Streamable HTTP POST to custosd's /mcp; `auth` is an Authorization value or "".
HttpReply McpPost(RawConnection& c, const Json& body, const std::string& session,
                  const std::string& auth) {
  std::string h = "Accept: application/json, text/event-stream\r\n";
  if (!auth.empty())
    h += "Authorization: " + auth + "\r\n";
  if (!session.empty())
    h += "Mcp-Session-Id: " + session + "\r\nMCP-Protocol-Version: 2025-11-25\r\n";
  if (!c.Send(RawConnection::Format("POST", "/mcp", body.dump(), h)))
    return {};
  return c.Read();
}

Json Initialize() {
  return {{"jsonrpc", "2.0"},
          {"id", 1},
          {"method", "initialize"},
          {"params",
           {{"protocolVersion", "2025-11-25"},
            {"capabilities", Json::object()},
            {"clientInfo", {{"name", "daemon-test"}, {"version", "1"}}}}}};
}

}  // namespace

// custosd --mcp-config serves the gateway's Streamable HTTP front at /mcp on its own listeners,
// authenticated like the API: 401 (with WWW-Authenticate) without credentials, an API key over
// TCP or the socket peer's uid on the Unix socket; the session's calls are kernel syscalls in the
// daemon's flight log.
TEST_F(DaemonTest, McpMountServesAuthenticatedSessionsAndRecordsTheirCalls) {
  if (Node().empty())
    GTEST_SKIP() << "node is not installed";
  const char* src = std::getenv("CUSTOS_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "ctest sets CUSTOS_SOURCE_DIR";
  WriteFileOrDie(data_ / "config.toml", "[server]\nadmins = [\"lead\"]\n[server.peers]\n\"" +
                                            std::to_string(::getuid()) + "\" = \"worker\"\n");
  const std::string worker = Key("worker"), lead = Key("lead");
  WriteFileOrDie(root_ / "policy.toml",
                 "[policy]\nname = \"mcp-mount\"\n[agents.worker]\nsyscalls = [\"assert\"]\n"
                 "[agents.lead]\nsyscalls = [\"assert\"]\n"
                 "[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n[tools]\nallow = [\"a.*\"]\n");
  WriteFileOrDie(root_ / "gateway.toml",
                 "[gateway]\npolicy = \"policy.toml\"\n[[servers]]\n"
                 "name = \"a\"\ncommand = \"" +
                     Node() + "\"\nargs = [\"" + std::string(src) +
                     "/tests/mcp/fixtures/fixture_server.js\"]\n");
  ASSERT_TRUE(d_.Start(data_, root_ / "policy.toml", root_ / "d.sock",
                       {"--mcp-config", (root_ / "gateway.toml").string()}));

  // No credentials over TCP: refused before any session exists.
  {
    RawConnection c = RawConnection::Tcp(d_.port());
    HttpReply r = McpPost(c, Initialize(), "", "");
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.headers["www-authenticate"], "Bearer");
    r = McpPost(c, Initialize(), "", "Bearer not-a-key");
    EXPECT_EQ(r.status, 401) << r.body;
  }

  // An API key over TCP: initialize, tools/list, tools/call.
  std::string session;
  {
    RawConnection c = RawConnection::Tcp(d_.port());
    const std::string auth = "Bearer " + worker;
    HttpReply r = McpPost(c, Initialize(), "", auth);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(BodyJson(r)["result"]["protocolVersion"], "2025-11-25") << r.body;
    session = r.headers["mcp-session-id"];
    ASSERT_FALSE(session.empty());
    r = McpPost(c, {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, session, auth);
    EXPECT_EQ(r.status, 202);
    r = McpPost(c, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}}, session, auth);
    ASSERT_EQ(r.status, 200) << r.body;
    bool listed = false;
    const Json tools = BodyJson(r)["result"]["tools"];
    for (const Json& t : tools)
      listed = listed || t.value("name", "") == "a.echo";
    EXPECT_TRUE(listed) << r.body;
    r = McpPost(c,
                {{"jsonrpc", "2.0"},
                 {"id", 3},
                 {"method", "tools/call"},
                 {"params", {{"name", "a.echo"}, {"arguments", {{"mark", "over-tcp"}}}}}},
                session, auth);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_THAT(r.body, HasSubstr("over-tcp"));
    // The session id alone is not a credential.
    r = McpPost(c, {{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/list"}}, session, "");
    EXPECT_EQ(r.status, 401) << r.body;
  }

  // The socket peer (this uid is mapped to worker) needs no header; same session, new connection.
  {
    RawConnection c = RawConnection::Unix((root_ / "d.sock").string());
    HttpReply r =
        McpPost(c,
                {{"jsonrpc", "2.0"},
                 {"id", 5},
                 {"method", "tools/call"},
                 {"params", {{"name", "a.echo"}, {"arguments", {{"mark", "over-unix"}}}}}},
                session, "");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_THAT(r.body, HasSubstr("over-unix"));
  }

  // Both calls are allowed tool.invoke decisions of the gateway's agent in the daemon's log.
  {
    RawConnection c = RawConnection::Tcp(d_.port());
    HttpReply r = c.Call("GET", "/v1/audit?agent=mcp-client&limit=1000", "",
                         "Authorization: Bearer " + lead + "\r\n");
    ASSERT_EQ(r.status, 200) << r.body;
    int calls = 0;
    const Json entries = BodyJson(r)["entries"];
    for (const Json& e : entries) {
      if (e.value("type", "") == "decision" && e.value("target", "") == "a.echo" &&
          e.value("verdict", "") == "allow" && e.value("agent", "") == "mcp-client")
        ++calls;
    }
    EXPECT_EQ(calls, 2) << r.body.substr(0, 4000);
  }
  EXPECT_EQ(d_.Signal(SIGTERM), 0);
  const CliResult v = RunCustos({"--data-dir", data_.string(), "audit", "verify"});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

}  // namespace custos::testing
