// The pipeline as a whole: every syscall kind has a deny and a bad-input path, policy reloads
// change decisions and are recorded, observe mode allows with the would-deny reason, and
// Explain() decides without recording or performing.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "custos/audit/verifier.h"
#include "testing/fake_http_server.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::CallJson;
using ::custos::testing::EchoHandler;
using ::custos::testing::FakeHttpServer;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::custos::testing::LoadPolicyOrDie;
using ::custos::testing::MakePolicy;
using ::custos::testing::PolicySpec;
using ::custos::testing::ReadFileIfExists;
using ::custos::testing::TomlString;
using ::custos::testing::WriteFileOrDie;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A target that passes the schema for each kind (what the kind's target must look like).
std::string TargetFor(SyscallKind k) {
  switch (k) {
    case SyscallKind::kMemoryBatch:
    case SyscallKind::kAgentRecv:
    case SyscallKind::kAuditCommit:
    case SyscallKind::kHumanApprove:
      return "";
    case SyscallKind::kAssert:
      return "labels_at_most";
    default:
      return "t";
  }
}

// Arguments that satisfy each kind's required fields.
Json ArgsFor(SyscallKind k) {
  switch (k) {
    case SyscallKind::kToolResponse:
      return {{"content", "x"}};
    case SyscallKind::kMemoryAlloc:
      return {{"value", 1}};
    case SyscallKind::kMemoryBatch:
      return {{"ops", Json::array()}};
    case SyscallKind::kHumanApprove:
      return {{"question", "q"}};
    case SyscallKind::kAgentSpawn:
      return {{"syscalls", Json::array()}};
    case SyscallKind::kAssert:
      return {{"labels", Json::array({"public"})}};
    default:
      return Json::object();
  }
}

class EveryKindTest : public ::testing::TestWithParam<SyscallKind> {
 protected:
  static void SetUpTestSuite() {
    harness_ = new KernelHarness();
    ASSERT_TRUE(harness_->Open(harness_->Spec()));
  }
  static void TearDownTestSuite() {
    delete harness_;
    harness_ = nullptr;
  }
  static KernelHarness* harness_;
};
KernelHarness* EveryKindTest::harness_ = nullptr;

TEST_P(EveryKindTest, AgentWithoutTheCapabilityIsDeniedBeforeAnyHandler) {
  const SyscallKind k = GetParam();
  SyscallResult r = harness_->Exec("nobody", std::string(SyscallName(k)), TargetFor(k), ArgsFor(k));
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  std::vector<audit::LogEntry> entries = harness_->EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].syscall, SyscallName(k));
  EXPECT_EQ(entries[0].reason, "capability_missing");
}

TEST_P(EveryKindTest, UnknownAgentIsDeniedBeforeAnyHandler) {
  const SyscallKind k = GetParam();
  SyscallResult r =
      harness_->Exec("mallory", std::string(SyscallName(k)), TargetFor(k), ArgsFor(k));
  EXPECT_THAT(r, IsDenied(Reason::kUnknownAgent, "capability"));
  EXPECT_EQ(harness_->EntriesFor(r.id).size(), 1u);
}

TEST_P(EveryKindTest, UnknownArgumentIsDeniedWithItsPointer) {
  const SyscallKind k = GetParam();
  Json args = ArgsFor(k);
  args["bogus"] = 1;
  SyscallResult r = harness_->Exec("worker", std::string(SyscallName(k)), TargetFor(k), args);
  EXPECT_THAT(r, IsDenied(Reason::kUnknownField, "schema"));
  EXPECT_EQ(r.decision.at, "/args/bogus");
  EXPECT_EQ(harness_->EntriesFor(r.id).size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, EveryKindTest, ::testing::ValuesIn(AllSyscalls()),
                         [](const ::testing::TestParamInfo<SyscallKind>& info) {
                           std::string n(SyscallName(info.param));
                           for (char& c : n) {
                             if (c == '.')
                               c = '_';
                           }
                           return n;
                         });

class PolicyReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "notes");
    spec_ = h_.Spec();
    ASSERT_TRUE(h_.Open(spec_));
  }
  PolicySpec spec_;
  KernelHarness h_;
};

TEST_F(PolicyReloadTest, ReloadChangesDecisionsAndIsRecorded) {
  const std::string path = (h_.ws() / "notes.md").string();
  const std::string old_hash(h_.kernel().policy()->hash());
  SyscallResult before = h_.Worker("file.read", path);
  ASSERT_THAT(before, IsAllowed());

  PolicySpec stricter = spec_;
  stricter.extra =
      "[[rules]]\nid = \"no-notes\"\neffect = \"deny\"\nwhen = { syscall = "
      "[\"file.read\"], target = " +
      TomlString(path) + " }\n";
  std::shared_ptr<const policy::Policy> p = LoadPolicyOrDie(MakePolicy(stricter));
  ASSERT_NE(p, nullptr);
  const std::string new_hash(p->hash());
  ASSERT_NE(new_hash, old_hash);
  ASSERT_THAT(h_.kernel().ReloadPolicy(p), IsOk());

  SyscallResult after = h_.Worker("file.read", path);
  EXPECT_THAT(after, IsDenied(Reason::kDeniedByRule, "policy"));
  EXPECT_EQ(after.decision.rule, "no-notes");

  std::vector<audit::LogEntry> log = h_.Log();
  const audit::LogEntry* reload = nullptr;
  for (const audit::LogEntry& e : log) {
    if (e.type == "event" && e.syscall == "policy.reload")
      reload = &e;
  }
  ASSERT_NE(reload, nullptr);
  EXPECT_EQ(reload->policy_hash, new_hash);
  EXPECT_EQ(reload->extra["old_policy_hash"], old_hash);
  // Each decision names the policy it was made under, and the reload sits between them.
  std::vector<audit::LogEntry> b = h_.EntriesFor(before.id), a = h_.EntriesFor(after.id);
  ASSERT_FALSE(b.empty());
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(b[0].policy_hash, old_hash);
  EXPECT_EQ(a[0].policy_hash, new_hash);
  EXPECT_LT(b.back().seq, reload->seq);
  EXPECT_LT(reload->seq, a[0].seq);
}

TEST_F(PolicyReloadTest, ReloadWithoutAPolicyIsRefused) {
  EXPECT_THAT(h_.kernel().ReloadPolicy(nullptr),
              ::custos::testing::StatusIs(Reason::kInvalidArgument));
}

TEST(ObserveModeTest, WouldDenyIsAllowedWithTheReasonRecorded) {
  KernelHarness h;
  WriteFileOrDie(h.root() / "outside" / "x.txt", "outside");
  PolicySpec spec = h.Spec();
  spec.mode = "observe";
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("file.read", (h.root() / "outside" / "x.txt").string());
  ASSERT_EQ(r.decision.verdict, Verdict::kAllow) << r.ToJson().dump();
  EXPECT_EQ(r.decision.reason, Reason::kPathNotAllowed);
  EXPECT_THAT(r.decision.explanation, StartsWith("observe mode, would deny: "));
  EXPECT_EQ(r.frame["text"], "outside");
  std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].verdict, "allow");
  EXPECT_EQ(entries[0].reason, "path_not_allowed");
  EXPECT_THAT(entries[0].explanation, HasSubstr("would deny"));
}

TEST(ObserveModeTest, CapabilityChecksStillEnforce) {
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.mode = "observe";
  ASSERT_TRUE(h.Open(spec));
  EXPECT_THAT(h.Exec("reader", "file.write", (h.out() / "x").string(), {{"content", "x"}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_FALSE(fs::exists(h.out() / "x"));
}

TEST(ObserveModeTest, BudgetsStillEnforceOnWouldDenyCalls) {
  // A call observe mode lets through must still reserve and settle its budget (INV-3).
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.mode = "observe";
  spec.worker_budget = "tool_calls = 1";
  ASSERT_TRUE(h.Open(spec));
  // "notallowed" is registered but not on tools.allow: a would-deny.
  SyscallResult first = h.Worker("tool.invoke", "notallowed");
  ASSERT_EQ(first.decision.verdict, Verdict::kAllow) << first.ToJson().dump();
  EXPECT_EQ(first.decision.reason, Reason::kToolNotAllowed);
  EXPECT_THAT(h.Worker("tool.invoke", "notallowed"), IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_EQ(h.Remaining("tool_calls"), 0);
}

TEST(ObserveModeTest, SecretEgressIsStillBlocked) {
  FakeHttpServer server(EchoHandler());
  const std::string secret = "observe-mode-secret-0123456789";
  ::setenv(::custos::testing::SecretEnvName("obs_key").c_str(), secret.c_str(), 1);
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.mode = "observe";
  spec.connect = {server.host_port()};
  spec.secret_names = {"obs_key"};
  spec.secret_destinations = {"api.example.com:443"};
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r =
      h.Worker("network.send", server.url("/x"), {{"method", "POST"}, {"body", "k=" + secret}});
  EXPECT_THAT(r, IsDenied(Reason::kSecretInEgress, "labels"));
  EXPECT_EQ(server.request_count(), 0u);
  ::unsetenv(::custos::testing::SecretEnvName("obs_key").c_str());
}

TEST(ExplainTest, ExplainDecidesWithoutRecordingOrPerforming) {
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.worker_budget = "tool_calls = 1";
  ASSERT_TRUE(h.Open(spec));
  const std::string token = h.TokenFor("worker");  // granting is recorded; explaining is not
  const int64_t before = *h.kernel().store().LogCount();
  Syscall call;
  call.agent = "worker";
  call.run = "run-1";
  call.token = token;
  call.kind = SyscallKind::kFileWrite;
  call.target = (h.out() / "x.txt").string();
  call.args = {{"content", "x"}};
  Decision d = h.kernel().Explain(call);
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(d.rule, "fs.write");
  call.target = (h.ws() / "x.txt").string();
  d = h.kernel().Explain(call);
  EXPECT_EQ(d.reason, Reason::kPathNotAllowed);
  EXPECT_FALSE(fs::exists(h.out() / "x.txt"));
  // Reservations made while explaining are released.
  Syscall tool;
  tool.agent = "worker";
  tool.run = "run-1";
  tool.token = token;
  tool.kind = SyscallKind::kToolInvoke;
  tool.target = "echo";
  EXPECT_TRUE(h.kernel().Explain(tool).allowed());
  EXPECT_TRUE(h.kernel().Explain(tool).allowed());
  ASSERT_TRUE(h.kernel().Commit().ok());
  EXPECT_EQ(*h.kernel().store().LogCount(), before);
  EXPECT_EQ(h.Remaining("tool_calls"), 1);
}

TEST(KernelReopenTest, LogContinuesAndVerifiesAcrossRestarts) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  ASSERT_THAT(h.Worker("memory.alloc", "note", {{"id", "a"}, {"value", 1}}), IsAllowed());
  ASSERT_TRUE(h.Open(h.Spec()));  // closes the first kernel, opens a second on the same data
  ASSERT_THAT(h.Worker("memory.read", "a"), IsAllowed());
  ASSERT_TRUE(h.kernel().Commit().ok());
  audit::VerifyReport report = audit::VerifyStore(h.kernel().store());
  EXPECT_THAT(report.status, IsOk());
  std::vector<audit::LogEntry> log = h.Log();
  int starts = 0;
  for (const audit::LogEntry& e : log)
    starts += e.syscall == "kernel.start" ? 1 : 0;
  EXPECT_EQ(starts, 2);
}

}  // namespace
}  // namespace custos::kernel
