// custosd API v1 over real sockets: routing, authentication, the identity rule, admin endpoints,
// audit, reload, metrics and capability requests.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "custos/audit/verifier.h"
#include "server/server_fixture.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

Json Call(const std::string& kind, const std::string& target, Json args = Json::object(),
          const std::string& agent = "") {
  Json j = {{"run", "run-1"}, {"kind", kind}, {"args", std::move(args)}};
  if (!target.empty())
    j["target"] = target;
  if (!agent.empty())
    j["agent"] = agent;
  return j;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(s_.Start(s_.kernel().Spec())); }
  ServerHarness s_;
};

TEST_F(ApiTest, UnknownRouteIs404AndWrongMethodIs405WithAllow) {
  HttpReply r = s_.Call("worker", "GET", "/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorReason(r), "route_not_found");
  r = s_.Call("worker", "GET", "/v1/syscall");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(ErrorReason(r), "method_not_allowed");
  EXPECT_EQ(r.headers["allow"], "POST");
}

TEST_F(ApiTest, MissingOrUnknownCredentialsAre401) {
  const std::string body = Call("memory.alloc", "n", {{"value", 1}}).dump();
  HttpReply r = s_.Call("", "POST", "/v1/syscall", body);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorReason(r), "unauthenticated");
  EXPECT_THAT(r.headers["www-authenticate"], HasSubstr("Bearer"));
  RawConnection c = s_.Tcp();
  r = c.Call("POST", "/v1/syscall", body, "Authorization: Bearer ck_not_a_key\r\n");
  EXPECT_EQ(r.status, 401);
  r = c.Call("POST", "/v1/syscall", body, "Authorization: Basic d29ya2VyOng=\r\n");
  EXPECT_EQ(r.status, 401);
  // Probes need no credentials.
  EXPECT_EQ(s_.Call("", "GET", "/healthz").status, 200);
  EXPECT_EQ(s_.Call("", "GET", "/readyz").status, 200);
}

TEST_F(ApiTest, SyscallWithApiKeyRunsThroughTheKernel) {
  HttpReply r = s_.Call("worker", "POST", "/v1/syscall",
                        Call("memory.alloc", "note", {{"value", {{"x", 1}}}}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json j = BodyJson(r);
  EXPECT_EQ(j["decision"]["verdict"], "allow") << r.body;
  EXPECT_GT(j["receipt"]["decision_seq"].get<int64_t>(), 0);
  // A deny is a result too: 200 with the decision.
  r = s_.Call("reader", "POST", "/v1/syscall", Call("memory.alloc", "n2", {{"value", 1}}).dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(BodyJson(r)["decision"]["reason"], "capability_missing") << r.body;
}

TEST_F(ApiTest, SocketPeerIsItsMappedIdentity) {
  RawConnection c = s_.Unix();
  ASSERT_TRUE(c.ok());
  HttpReply r = c.Call("POST", "/v1/syscall", Call("memory.alloc", "peer", {{"value", 2}}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow");
  // The peer is "worker", so it cannot act as reader.
  r = c.Call("POST", "/v1/syscall", Call("memory.read", "peer", Json::object(), "reader").dump());
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorReason(r), "identity_mismatch");
}

TEST_F(ApiTest, ActingAsAnotherAgentIs403AndRecordedAsADeny) {
  HttpReply r = s_.Call("reader", "POST", "/v1/syscall",
                        Call("memory.alloc", "x", {{"value", 1}}, "worker").dump());
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorReason(r), "identity_mismatch");
  bool recorded = false;
  for (const audit::LogEntry& e : s_.kernel().Log()) {
    if (e.stage == "identity" && e.reason == "identity_mismatch" && e.verdict == "deny") {
      recorded = true;
      EXPECT_THAT(e.explanation, HasSubstr("'reader'"));
    }
  }
  EXPECT_TRUE(recorded);
}

TEST_F(ApiTest, MalformedJsonIs400AndWrongContentTypeIs415) {
  HttpReply r = s_.Call("worker", "POST", "/v1/syscall", "{\"run\": ");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorReason(r), "malformed_json");
  EXPECT_THAT(BodyJson(r)["error"]["message"].get<std::string>(), HasSubstr("at byte"));
  r = s_.Call("worker", "POST", "/v1/syscall", "[1,2]");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorReason(r), "schema_violation");
  RawConnection c = s_.Tcp();
  c.Send(RawConnection::Format("POST", "/v1/syscall", "{}", s_.Auth("worker"), "text/plain"));
  r = c.Read();
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(ErrorReason(r), "unsupported_media_type");
  // A schema error inside a well-formed syscall is the kernel's recorded deny (200).
  r = s_.Call("worker", "POST", "/v1/syscall",
              Call("memory.alloc", "x", {{"value", 1}, {"bogus", 2}}).dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(BodyJson(r)["decision"]["reason"], "unknown_field");
  EXPECT_EQ(BodyJson(r)["decision"]["at"], "/args/bogus");
}

TEST_F(ApiTest, AdminEndpointsNeedAnAdmin) {
  HttpReply r = s_.Call("worker", "GET", "/v1/approvals");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorReason(r), "admin_required");
  r = s_.Call("lead", "GET", "/v1/approvals");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(BodyJson(r)["approvals"].is_array());
  EXPECT_EQ(s_.Call("worker", "POST", "/v1/admin/reload").status, 403);
}

TEST_F(ApiTest, AuditQueryIsScopedToTheCaller) {
  ASSERT_EQ(
      s_.Call("worker", "POST", "/v1/syscall", Call("memory.alloc", "a", {{"value", 1}}).dump())
          .status,
      200);
  ASSERT_EQ(s_.Call("reader", "POST", "/v1/syscall", Call("memory.read", "a").dump()).status, 200);
  ASSERT_TRUE(s_.kernel().kernel().Commit().ok());
  HttpReply r = s_.Call("reader", "GET", "/v1/audit?limit=50");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json mine = BodyJson(r)["entries"];
  ASSERT_FALSE(mine.empty());
  for (const Json& e : mine)
    EXPECT_EQ(e["agent"], "reader");
  EXPECT_EQ(ErrorReason(s_.Call("reader", "GET", "/v1/audit?agent=worker")), "identity_mismatch");
  r = s_.Call("lead", "GET", "/v1/audit?agent=worker&decision=allow&limit=1");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(BodyJson(r)["entries"].size(), 1u);
  EXPECT_EQ(BodyJson(r)["entries"][0]["agent"], "worker");
  EXPECT_TRUE(BodyJson(r).contains("next_from_seq"));
  EXPECT_EQ(ErrorReason(s_.Call("lead", "GET", "/v1/audit?limit=0")), "invalid_argument");
}

TEST_F(ApiTest, CheckpointThenProveAnEntry) {
  ASSERT_EQ(
      s_.Call("worker", "POST", "/v1/syscall", Call("memory.alloc", "p", {{"value", 1}}).dump())
          .status,
      200);
  HttpReply r = s_.Call("worker", "POST", "/v1/audit/checkpoint");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(BodyJson(r)["decision"]["verdict"], "allow") << r.body;
  // Entry 2 is the worker's memory.alloc decision (1 is kernel.start).
  r = s_.Call("worker", "GET", "/v1/audit/prove/2");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json p = BodyJson(r);
  EXPECT_EQ(p["seq"], 2);
  EXPECT_FALSE(p["root"].get<std::string>().empty());
  EXPECT_THAT(p["checkpoint"].get<std::string>(), HasSubstr("custos/"));
  // Entry 1 is not the worker's; entry 10^6 is not covered.
  EXPECT_EQ(ErrorReason(s_.Call("worker", "GET", "/v1/audit/prove/1")), "identity_mismatch");
  EXPECT_EQ(ErrorReason(s_.Call("worker", "GET", "/v1/audit/prove/1000000")), "invalid_argument");
  EXPECT_EQ(ErrorReason(s_.Call("worker", "GET", "/v1/audit/prove/x")), "invalid_argument");
}

TEST_F(ApiTest, ReloadRejectsABadPolicyAndRecordsAGoodOneWithBothHashes) {
  const std::string old_hash(s_.kernel().kernel().policy()->hash());
  WriteFileOrDie(s_.policy_file(), "[policy\nname = broken");
  HttpReply r = s_.Call("lead", "POST", "/v1/admin/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorReason(r), "policy_parse_error");
  EXPECT_EQ(std::string(s_.kernel().kernel().policy()->hash()), old_hash);  // still serving
  WriteFileOrDie(s_.policy_file(), s_.policy_text() + "\n[agents.extra]\nsyscalls = []\n");
  r = s_.Call("lead", "POST", "/v1/admin/reload");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(BodyJson(r)["old_policy_hash"], old_hash);
  const std::string new_hash = BodyJson(r)["policy_hash"];
  EXPECT_NE(new_hash, old_hash);
  bool recorded = false;
  for (const audit::LogEntry& e : s_.kernel().Log()) {
    if (e.syscall == "policy.reload") {
      recorded = true;
      EXPECT_EQ(e.policy_hash, new_hash);
      EXPECT_EQ(e.extra["old_policy_hash"], old_hash);
    }
  }
  EXPECT_TRUE(recorded);
}

TEST_F(ApiTest, ApprovalsAreListedAndAnsweredByAnAdmin) {
  // A second server whose policy makes memory.alloc wait for a person.
  ServerHarness s;
  PolicySpec spec = s.kernel().Spec();
  spec.extra =
      "[[approvals]]\nid = \"allocs-need-a-person\"\nsyscall = [\"memory.alloc\"]\n"
      "timeout_ms = 20000\nmessage = \"check allocations\"\n";
  ASSERT_TRUE(s.Start(spec));
  std::future<HttpReply> waiting = std::async(std::launch::async, [&] {
    return s.Call("worker", "POST", "/v1/syscall",
                  Call("memory.alloc", "gated", {{"value", 1}}).dump());
  });
  std::string id;
  for (int i = 0; i < 400 && id.empty(); ++i) {
    HttpReply l = s.Call("lead", "GET", "/v1/approvals");
    ASSERT_EQ(l.status, 200);
    if (!BodyJson(l)["approvals"].empty())
      id = BodyJson(l)["approvals"][0]["id"];
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(id.empty());
  // The kernel call is parked on a worker; the server keeps answering.
  EXPECT_EQ(s.Call("", "GET", "/healthz").status, 200);
  HttpReply a = s.Call("lead", "POST", "/v1/approvals/" + id, R"({"approve":true,"note":"ok"})");
  ASSERT_EQ(a.status, 200) << a.body;
  HttpReply done = waiting.get();
  ASSERT_EQ(done.status, 200);
  EXPECT_EQ(BodyJson(done)["decision"]["verdict"], "allow") << done.body;
  EXPECT_EQ(ErrorReason(s.Call("lead", "POST", "/v1/approvals/" + id, R"({"approve":false})")),
            "already_exists");
  EXPECT_EQ(ErrorReason(s.Call("lead", "POST", "/v1/approvals/nope", R"({"approve":false})")),
            "not_found");
}

TEST_F(ApiTest, ExplainDryRunsASyscallOrTracesAnActionId) {
  HttpReply r =
      s_.Call("reader", "POST", "/v1/explain", Call("memory.alloc", "x", {{"value", 1}}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(BodyJson(r)["decision"]["reason"], "capability_missing");
  HttpReply done =
      s_.Call("worker", "POST", "/v1/syscall", Call("memory.alloc", "x", {{"value", 1}}).dump());
  const std::string id = BodyJson(done)["id"];
  ASSERT_TRUE(s_.kernel().kernel().Commit().ok());
  r = s_.Call("worker", "POST", "/v1/explain", Json{{"id", id}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json entries = BodyJson(r)["entries"];
  ASSERT_GE(entries.size(), 1u);
  EXPECT_EQ(entries[0]["syscall_id"], id);
  EXPECT_EQ(ErrorReason(s_.Call("reader", "POST", "/v1/explain", Json{{"id", id}}.dump())),
            "identity_mismatch");
  EXPECT_EQ(ErrorReason(s_.Call("worker", "POST", "/v1/explain", R"({"id":"s_none"})")),
            "not_found");
}

TEST(ApiInvokeTest, InvokeShapesToolOutputAndExpandPagesThroughItsHandle) {
  ServerHarness s;
  PolicySpec spec = s.kernel().Spec();
  spec.extra =
      "[[tools.registry]]\nname = \"rows\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; "
      "echo '[{\\\"a\\\":1,\\\"b\\\":\\\"x\\\"},{\\\"a\\\":2,\\\"b\\\":\\\"y\\\"},"
      "{\\\"a\\\":3,\\\"b\\\":\\\"x\\\"}]'\"]\ndescription = \"Lists rows.\"\n";
  std::string policy = MakePolicy(spec);
  const std::string allow = "allow = [\"echo\", ";
  policy.replace(policy.find(allow), allow.size(), "allow = [\"rows\", \"echo\", ");
  spec.extra.clear();
  ASSERT_TRUE(s.Start(spec));
  WriteFileOrDie(s.policy_file(), policy);
  ASSERT_EQ(s.Call("lead", "POST", "/v1/admin/reload").status, 200);

  HttpReply r = s.Call("worker", "POST", "/v1/invoke",
                       R"({"tool":"rows","run":"run-1","args":{},"response_mode":"table"})");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = BodyJson(r);
  ASSERT_EQ(j["decision"]["verdict"], "allow") << r.body;
  EXPECT_EQ(j["response_mode"], "table");
  EXPECT_EQ(j["frame"]["columns"], Json::array({"a", "b"}));
  EXPECT_EQ(j["frame"]["total_rows"], 3);
  EXPECT_EQ(j["frame"]["rows"][1], Json::array({2, "y"}));
  const std::string handle = j["handle"]["id"];

  r = s.Call("worker", "POST", "/v1/invoke",
             R"({"tool":"rows","run":"run-1","response_mode":"handle"})");
  j = BodyJson(r);
  EXPECT_FALSE(j["frame"].contains("text"));
  EXPECT_TRUE(j["handle"].contains("id"));
  r = s.Call("worker", "POST", "/v1/invoke", R"({"tool":"rows","run":"run-1"})");
  EXPECT_EQ(BodyJson(r)["response_mode"], "summary");
  EXPECT_TRUE(BodyJson(r)["frame"].contains("summary")) << r.body;
  EXPECT_EQ(ErrorReason(s.Call("worker", "POST", "/v1/invoke",
                               R"({"tool":"rows","run":"run-1","response_mode":"all"})")),
            "invalid_argument");

  r = s.Call("worker", "POST", "/v1/expand",
             Json{{"handle", handle},
                  {"run", "run-1"},
                  {"filter", {{"b", "x"}}},
                  {"fields", {"a"}},
                  {"offset", 1},
                  {"limit", 5}}
                 .dump());
  ASSERT_EQ(r.status, 200) << r.body;
  j = BodyJson(r);
  ASSERT_EQ(j["decision"]["verdict"], "allow") << r.body;
  EXPECT_EQ(j["frame"]["matched"], 2);
  EXPECT_EQ(j["frame"]["rows"], Json::array({Json{{"a", 3}}}));
  // Another agent cannot expand the worker's handle: the kernel refuses it.
  r = s.Call("reader", "POST", "/v1/expand", Json{{"handle", handle}, {"run", "run-1"}}.dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "deny") << r.body;
}

TEST_F(ApiTest, AdminGrantsANarrowTokenAndRevocationReachesEveryCaller) {
  EXPECT_EQ(ErrorReason(s_.Call("worker", "POST", "/v1/grant", R"({"agent":"worker"})")),
            "admin_required");
  HttpReply g = s_.Call("lead", "POST", "/v1/grant",
                        R"({"agent":"worker","run":"run-1","syscalls":["memory.alloc"]})");
  ASSERT_EQ(g.status, 200) << g.body;
  const std::string token = BodyJson(g)["token"];
  ASSERT_FALSE(token.empty());
  Json call = Call("memory.alloc", "granted", {{"value", 1}});
  call["token"] = token;
  HttpReply r = s_.Call("worker", "POST", "/v1/syscall", call.dump());
  ASSERT_EQ(BodyJson(r)["decision"]["verdict"], "allow") << r.body;
  // The narrow token does not grant memory.read.
  Json read = Call("memory.read", "granted");
  read["token"] = token;
  EXPECT_EQ(BodyJson(s_.Call("worker", "POST", "/v1/syscall", read.dump()))["decision"]["verdict"],
            "deny");
  HttpReply rv = s_.Call("lead", "POST", "/v1/revoke", Json{{"token", token}}.dump());
  ASSERT_EQ(rv.status, 200) << rv.body;
  // Over TCP and over the socket (a second connection, a second "process"): refused.
  call["target"] = "after";
  r = s_.Call("worker", "POST", "/v1/syscall", call.dump());
  EXPECT_EQ(BodyJson(r)["decision"]["reason"], "token_revoked") << r.body;
  RawConnection u = s_.Unix();
  r = u.Call("POST", "/v1/syscall", call.dump());
  EXPECT_EQ(BodyJson(r)["decision"]["reason"], "token_revoked") << r.body;
  EXPECT_EQ(ErrorReason(s_.Call("lead", "POST", "/v1/revoke", R"({"token":"nonsense"})")),
            "token_invalid");
}

TEST_F(ApiTest, BudgetsShowTheCallersRemainingAmounts) {
  ServerHarness s;
  PolicySpec spec = s.kernel().Spec();
  spec.worker_budget = "tool_calls = 3";
  ASSERT_TRUE(s.Start(spec));
  HttpReply r = s.Call("worker", "GET", "/v1/budgets?run=run-1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(BodyJson(r)["remaining"]["tool_calls"], 3);
  ASSERT_EQ(s.Call("worker", "POST", "/v1/syscall",
                   Call("tool.invoke", "echo", {{"arguments", {{"a", 1}}}}).dump())
                .status,
            200);
  r = s.Call("worker", "GET", "/v1/budgets?run=run-1");
  EXPECT_EQ(BodyJson(r)["remaining"]["tool_calls"], 2) << r.body;
  EXPECT_EQ(ErrorReason(s.Call("worker", "GET", "/v1/budgets")), "schema_violation");
  // reader holds `assert`, so it reads its own (default) budgets.
  EXPECT_EQ(s.Call("reader", "GET", "/v1/budgets?run=run-1").status, 200);
}

TEST_F(ApiTest, MetricsCountDecisionsAndLatency) {
  ASSERT_EQ(
      s_.Call("worker", "POST", "/v1/syscall", Call("memory.alloc", "m", {{"value", 1}}).dump())
          .status,
      200);
  HttpReply r = s_.Call("worker", "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.headers["content-type"], HasSubstr("text/plain"));
  EXPECT_THAT(r.body, HasSubstr("custos_decisions_total{verdict=\"allow\",reason=\"ok\"} 1"));
  EXPECT_THAT(r.body, HasSubstr("custos_request_duration_seconds_bucket{le=\"+Inf\"}"));
  EXPECT_THAT(r.body, HasSubstr("custos_store_up 1"));
  EXPECT_THAT(r.body, HasSubstr("custos_connections "));
}

TEST_F(ApiTest, MetricsShowBudgetUseAndStoreHealthInValidPrometheusText) {
  HttpReply call = s_.Call("worker", "POST", "/v1/syscall",
                           Call("tool.invoke", "echo", {{"arguments", {{"a", 1}}}}).dump());
  ASSERT_EQ(call.status, 200) << call.body;
  ASSERT_EQ(BodyJson(call)["decision"]["verdict"], "allow") << call.body;
  HttpReply r = s_.Call("worker", "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body,
              HasSubstr("custos_budget_used{agent=\"worker\",resource=\"tool_calls\"} 1\n"));
  EXPECT_THAT(r.body,
              HasSubstr("custos_budget_limit{agent=\"worker\",resource=\"tool_calls\"} 1000\n"));
  EXPECT_THAT(r.body,
              HasSubstr("custos_budget_reserved{agent=\"worker\",resource=\"tool_calls\"} 0\n"));
  EXPECT_THAT(r.body, HasSubstr("custos_store_up 1\n"));
  EXPECT_THAT(r.body, HasSubstr("custos_store_read_seconds "));
  // Text format 0.0.4: every sample belongs to a family declared by # HELP and # TYPE before it,
  // names and labels are well formed, values are numbers.
  const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")"
                          R"((,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (-?[0-9.e+-]+|\+Inf)$)");
  std::set<std::string> helped, typed;
  std::istringstream lines(r.body);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) {
      helped.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
    } else {
      ASSERT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: " << line;
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string sfx = suffix;
        if (!typed.count(family) && family.size() > sfx.size() &&
            family.compare(family.size() - sfx.size(), sfx.size(), sfx) == 0)
          family = family.substr(0, family.size() - sfx.size());
      }
      EXPECT_TRUE(helped.count(family) && typed.count(family)) << line;
      ++samples;
    }
  }
  EXPECT_GT(samples, 20);
}

TEST_F(ApiTest, RequestCapabilitiesMatchesGoalWordsAgainstPolicyAndTools) {
  HttpReply r = s_.Call("worker", "POST", "/v1/request_capabilities",
                        R"({"goal":"echo this input back with a tool"})");
  ASSERT_EQ(r.status, 200) << r.body;
  bool echo = false, danger = false;
  const Json body = BodyJson(r);
  for (const Json& c : body["candidates"]) {
    echo |= c.value("target", std::string()) == "echo";
    danger |= c.value("target", std::string()).rfind("danger", 0) == 0;
  }
  EXPECT_TRUE(echo) << r.body;
  EXPECT_FALSE(danger) << "a tool the policy denies is never proposed";
  // reader holds no tool.invoke: no tool candidates.
  r = s_.Call("reader", "POST", "/v1/request_capabilities", R"({"goal":"echo input tool"})");
  const Json reader = BodyJson(r);
  for (const Json& c : reader["candidates"])
    EXPECT_NE(c["kind"], "tool.invoke");
  EXPECT_EQ(ErrorReason(s_.Call("worker", "POST", "/v1/request_capabilities", "{}")),
            "schema_violation");
}

TEST_F(ApiTest, AuditTailStreamsNewEntriesAsServerSentEvents) {
  RawConnection tail = s_.Tcp();
  ASSERT_TRUE(tail.Send(RawConnection::Format("GET", "/v1/audit/tail", "", s_.Auth("worker"))));
  std::string got = tail.ReadSome(5000);
  EXPECT_THAT(got, HasSubstr("text/event-stream"));
  ASSERT_EQ(
      s_.Call("worker", "POST", "/v1/syscall", Call("memory.alloc", "t", {{"value", 1}}).dump())
          .status,
      200);
  for (int i = 0; i < 50 && got.find("event: entry") == std::string::npos; ++i)
    got += tail.ReadSome(200);
  EXPECT_THAT(got, HasSubstr("event: entry"));
  EXPECT_THAT(got, HasSubstr("\"agent\":\"worker\""));
}

}  // namespace
}  // namespace custos::testing
