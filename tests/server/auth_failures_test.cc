// Refused authentication is recorded (decision 029): a flood of bad requests becomes one
// `auth.failures` summary entry per interval with counts by reason, transport and claimed
// identity, never the presented credential, and the log still verifies.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "custos/audit/verifier.h"
#include "server/server_fixture.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The `extra` of every auth.failures event entry, oldest first; *all_text gets every row.
std::vector<Json> Summaries(ServerHarness& s, std::string* all_text = nullptr) {
  store::LogQuery q;
  q.limit = 10000;
  Result<std::vector<store::LogRow>> rows = s.kernel().kernel().store().ReadLog(q);
  std::vector<Json> out;
  for (const store::LogRow& r : rows.ok() ? *rows : std::vector<store::LogRow>{}) {
    if (all_text != nullptr)
      *all_text += r.canonical + "\n";
    Result<Json> j = ParseUntrustedJson(r.canonical);
    if (j.ok() && j->value("type", "") == "event" && j->value("syscall", "") == "auth.failures")
      out.push_back((*j)["extra"]);
  }
  return out;
}

int64_t CountOf(const Json& summary, const std::string& reason, const std::string& transport,
                const std::string& claimed) {
  for (const Json& g : summary["groups"]) {
    if (g["reason"] == reason && g["transport"] == transport && g.value("claimed", "") == claimed)
      return g["count"].get<int64_t>();
  }
  return 0;
}

const char kBody[] = R"({"run":"r","kind":"memory.alloc","target":"n","args":{"value":1}})";

TEST(AuthFailureLogTest, ManyRefusalsBecomeOneSummaryWithCountsAndNoCredentials) {
  ServerHarness s;
  server::ServerLimits limits;
  limits.auth_failure_summary_ms = 3'600'000;  // nothing is due during the test
  ASSERT_TRUE(s.Start(s.kernel().Spec(), limits));
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(s.Call("", "POST", "/v1/syscall", kBody).status, 401);
  RawConnection c = s.Tcp();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(
        c.Call("POST", "/v1/syscall", kBody, "Authorization: Bearer ck_bogus_key_123\r\n").status,
        401);
  }
  for (int i = 0; i < 3; ++i) {
    RawConnection t = s.Tcp();
    const HttpReply r = t.Call("POST", "/v1/syscall", kBody,
                               "Custos-Agent: mallory\r\nCustos-Timestamp: 1\r\nCustos-Nonce: "
                               "abcdefghijklmnop\r\nCustos-Signature: 00\r\n");
    EXPECT_EQ(r.status, 401);
  }
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(s.Call("worker", "POST", "/v1/admin/reload").status, 403);
  RawConnection u = s.Unix();  // mapped peer: fine; its refusal comes from a bad key
  EXPECT_EQ(u.Call("POST", "/v1/syscall", kBody, "Authorization: Bearer nope\r\n").status, 401);

  EXPECT_TRUE(Summaries(s).empty()) << "nothing is written before the interval ends";
  s.api().FlushAuthFailures();
  std::string text;
  const std::vector<Json> got = Summaries(s, &text);
  ASSERT_EQ(got.size(), 1u);
  const Json& sum = got[0];
  EXPECT_EQ(sum["total"], 15) << sum.dump();
  EXPECT_EQ(CountOf(sum, "unauthenticated", "tcp", ""), 5) << sum.dump();
  EXPECT_EQ(
      CountOf(sum, "unauthenticated", "tcp", server::AuthFailureLog::KeyHint("ck_bogus_key_123")),
      4)
      << sum.dump();
  int64_t signed_refusals = 0;
  for (const Json& g : sum["groups"]) {
    if (g.value("claimed", "") == "mallory")
      signed_refusals += g["count"].get<int64_t>();
  }
  EXPECT_EQ(signed_refusals, 3) << sum.dump();
  EXPECT_EQ(CountOf(sum, "admin_required", "tcp", "worker"), 2) << sum.dump();
  EXPECT_EQ(CountOf(sum, "unauthenticated", "unix", server::AuthFailureLog::KeyHint("nope")), 1)
      << sum.dump();
  // Never the key itself.
  EXPECT_THAT(text, Not(HasSubstr("ck_bogus_key_123")));
  // A second flush with nothing pending writes nothing.
  s.api().FlushAuthFailures();
  EXPECT_EQ(Summaries(s).size(), 1u);
  const audit::VerifyReport v = audit::VerifyStore(s.kernel().kernel().store());
  EXPECT_TRUE(v.status.ok()) << v.status;
}

TEST(AuthFailureLogTest, ADueWindowIsWrittenByTheNextRefusalOrTheDaemonsTick) {
  ServerHarness s;
  server::ServerLimits limits;
  limits.auth_failure_summary_ms = 1;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), limits));
  EXPECT_EQ(s.Call("", "POST", "/v1/syscall", kBody).status, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The next refusal writes the due window first, then starts a new one.
  EXPECT_EQ(s.Call("", "POST", "/v1/syscall", kBody).status, 401);
  std::vector<Json> got = Summaries(s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["total"], 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.api().FlushAuthFailuresIfDue();
  got = Summaries(s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1]["total"], 1);
}

}  // namespace
}  // namespace custos::testing
