// The kernel-internal and tool syscalls: context.read, tool.describe, tool.invoke, tool.response,
// audit.commit and assert.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "custos/crypto/sha256.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::CallJson;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::KernelHarness;
using ::custos::testing::PolicySpec;
using ::custos::testing::WriteFileOrDie;
using ::testing::HasSubstr;

class KernelHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "0123456789abcdef");
    ASSERT_TRUE(h_.Open(h_.Spec()));
  }

  std::string ReadNotes() {
    SyscallResult r = h_.Worker("file.read", (h_.ws() / "notes.md").string());
    EXPECT_THAT(r, IsAllowed());
    return r.handle ? r.handle->id : "";
  }

  KernelHarness h_;
};

using ContextReadTest = KernelHandlersTest;

TEST_F(ContextReadTest, ReadsAHandleWithItsLabels) {
  const std::string h = ReadNotes();
  SyscallResult r = h_.Worker("context.read", h, {{"offset", 4}, {"limit", 6}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["text"], "456789");
  EXPECT_EQ(r.frame["total"], 16);
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->id, h);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(ContextReadTest, UnknownHandleIsRefused) {
  SyscallResult r = h_.Worker("context.read", "h_aaaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_THAT(r, IsDenied(Reason::kUnknownHandle, "resolve"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(ContextReadTest, AnotherAgentsHandleIsForeign) {
  const std::string h = ReadNotes();
  EXPECT_THAT(h_.Exec("reader", "context.read", h), IsDenied(Reason::kForeignHandle, "resolve"));
}

TEST_F(ContextReadTest, AnotherRunsHandleIsForeign) {
  const std::string h = ReadNotes();
  EXPECT_THAT(h_.Exec("worker", "context.read", h, Json::object(), {}, "run-2"),
              IsDenied(Reason::kForeignHandle, "resolve"));
}

TEST_F(ContextReadTest, OffsetOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("context.read", ReadNotes(), {{"offset", "4"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/offset");
}

TEST_F(ContextReadTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("lead", "context.read", "h_aaaaaaaaaaaaaaaaaaaaaaaaaa"),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

TEST(ContextReadExpiryTest, ExpiredHandleIsRefused) {
  FakeClock clock;
  KernelHarness h;
  WriteFileOrDie(h.ws() / "notes.md", "short-lived");
  KernelHarness::Options o;
  o.clock = &clock;
  o.handle_ttl_ms = 60'000;
  ASSERT_TRUE(h.Open(::custos::testing::MakePolicy(h.Spec()), o));
  SyscallResult read = h.Worker("file.read", (h.ws() / "notes.md").string());
  ASSERT_THAT(read, IsAllowed());
  EXPECT_THAT(h.Worker("context.read", read.handle->id), IsAllowed());
  clock.Advance(60'001);
  EXPECT_THAT(h.Worker("context.read", read.handle->id),
              IsDenied(Reason::kHandleExpired, "resolve"));
  SyscallResult as_input =
      h.Worker("file.write", (h.out() / "copy.txt").string(), Json::object(), {read.handle->id});
  EXPECT_THAT(as_input, IsDenied(Reason::kHandleExpired, "inputs"));
  EXPECT_EQ(as_input.decision.at, "/inputs/0");
  EXPECT_FALSE(std::filesystem::exists(h.out() / "copy.txt"));
  std::vector<audit::LogEntry> entries = h.EntriesFor(as_input.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, "handle_expired");
  // A fresh read still works.
  EXPECT_THAT(h.Worker("file.read", (h.ws() / "notes.md").string()), IsAllowed());
}

using ToolDescribeTest = KernelHandlersTest;

TEST_F(ToolDescribeTest, AllowedToolIsDescribed) {
  SyscallResult r = h_.Worker("tool.describe", "echo");
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["name"], "echo");
  EXPECT_EQ(r.frame["description"], "Echoes its input.");
  EXPECT_EQ(r.frame["input_schema"]["type"], "object");
}

TEST_F(ToolDescribeTest, RegisteredButNotAllowedToolIsDenied) {
  SyscallResult r = h_.Worker("tool.describe", "notallowed");
  EXPECT_THAT(r, IsDenied(Reason::kToolNotAllowed, "policy"));
  EXPECT_EQ(r.decision.rule, "tools.allow");
}

TEST_F(ToolDescribeTest, AllowedButUnregisteredToolFailsAtTheEffect) {
  EXPECT_THAT(h_.Worker("tool.describe", "unregistered"),
              IsDenied(Reason::kToolNotAllowed, "effect"));
}

TEST_F(ToolDescribeTest, ArgumentsAreUnknownFields) {
  SyscallResult r = h_.Worker("tool.describe", "echo", {{"verbose", true}});
  EXPECT_THAT(r, IsDenied(Reason::kUnknownField, "schema"));
  EXPECT_EQ(r.decision.at, "/args/verbose");
}

TEST_F(ToolDescribeTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "tool.describe", "echo"),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using ToolInvokeTest = KernelHandlersTest;

TEST_F(ToolInvokeTest, ToolRunsWithTheArgumentsAndItsOutputIsUntrustedExternal) {
  SyscallResult r = h_.Worker("tool.invoke", "echo", {{"arguments", {{"q", "custos"}}}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_THAT(r.frame["text"].get<std::string>(), HasSubstr("\"q\":\"custos\""));
  EXPECT_EQ(r.frame["exit_code"], 0);
  EXPECT_EQ(r.usage[budget::Resource::kToolCalls], 1);
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_TRUE(r.handle->labels.HasTag("external"));
  EXPECT_TRUE(r.handle->labels.HasTag("source:tool:echo"));
}

TEST_F(ToolInvokeTest, InputHandlesReachTheToolAndTheirLabelsTheOutput) {
  const std::string notes = ReadNotes();
  SyscallResult r = h_.Worker("tool.invoke", "echo", Json::object(), {notes});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_THAT(r.frame["text"].get<std::string>(), HasSubstr("0123456789abcdef"));
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(ToolInvokeTest, DenyListedToolIsDenied) {
  SyscallResult r = h_.Worker("tool.invoke", "danger.rm");
  EXPECT_THAT(r, IsDenied(Reason::kToolNotAllowed, "policy"));
  EXPECT_EQ(r.decision.rule, "tools.deny");
}

TEST_F(ToolInvokeTest, ToolNotOnTheAllowListIsDenied) {
  EXPECT_THAT(h_.Worker("tool.invoke", "notallowed"), IsDenied(Reason::kToolNotAllowed, "policy"));
}

TEST_F(ToolInvokeTest, PoisonedInputToTheToolIsAFlowViolation) {
  Json j = CallJson("worker", "tool.invoke", "echo", {{"arguments", {{"q", "x"}}}});
  j["labels"] = {"poisoned-suspect"};
  SyscallResult r = h_.Exec(j);
  EXPECT_THAT(r, IsDenied(Reason::kFlowViolation, "labels"));
  EXPECT_EQ(r.decision.rule, "no-poisoned-to-echo");
}

TEST_F(ToolInvokeTest, FailingToolIsAnEffectFailureWithItsStderr) {
  SyscallResult r = h_.Worker("tool.invoke", "fail");
  EXPECT_THAT(r, IsDenied(Reason::kEffectFailed, "effect"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("exited with status 3"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("broken"));
}

TEST_F(ToolInvokeTest, ArgumentsOfTheWrongTypeAreASchemaViolation) {
  SyscallResult r = h_.Worker("tool.invoke", "echo", {{"arguments", "q=x"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/arguments");
}

TEST_F(ToolInvokeTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "tool.invoke", "echo"),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

TEST(ToolInvokeBudgetTest, ToolCallsStopAtTheLimit) {
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.worker_budget = "tool_calls = 2";
  ASSERT_TRUE(h.Open(spec));
  EXPECT_THAT(h.Worker("tool.invoke", "echo"), IsAllowed());
  EXPECT_THAT(h.Worker("tool.invoke", "echo"), IsAllowed());
  SyscallResult r = h.Worker("tool.invoke", "echo");
  EXPECT_THAT(r, IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("tool_calls"));
}

using ToolResponseTest = KernelHandlersTest;

TEST_F(ToolResponseTest, ResponseBecomesAHandleNamingItsSource) {
  SyscallResult r = h_.Worker("tool.response", "search", {{"content", "result text"}});
  ASSERT_THAT(r, IsAllowed());
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->kind, "tool");
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_TRUE(r.handle->labels.HasTag("source:tool:search"));
  SyscallResult back = h_.Worker("context.read", r.handle->id);
  EXPECT_EQ(back.frame["text"], "result text");
}

TEST_F(ToolResponseTest, DeclaredLabelsAreKept) {
  Json j = CallJson("worker", "tool.response", "search", {{"content", "x"}});
  j["labels"] = {"trusted", "private"};
  SyscallResult r = h_.Exec(j);
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kTrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(ToolResponseTest, MissingContentIsASchemaViolation) {
  SyscallResult r = h_.Worker("tool.response", "search");
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/content");
}

TEST_F(ToolResponseTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "tool.response", "search", {{"content", "x"}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using AuditCommitTest = KernelHandlersTest;

TEST_F(AuditCommitTest, CommitReturnsADurableSequenceNumber) {
  SyscallResult before = h_.Worker("memory.alloc", "note", {{"value", 1}});
  ASSERT_THAT(before, IsAllowed());
  SyscallResult r = h_.Worker("audit.commit", "");
  ASSERT_THAT(r, IsAllowed());
  const int64_t durable = r.frame["durable_seq"].get<int64_t>();
  EXPECT_GE(durable, r.receipt.decision_seq);
  EXPECT_GT(durable, before.receipt.outcome_seq);
  // Everything up to it is in the store, and its hash is the one reported.
  store::LogQuery q;
  q.from_seq = durable;
  q.limit = 1;
  Result<std::vector<store::LogRow>> rows = h_.kernel().store().ReadLog(q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].hash, r.frame["head_hash"]);
}

TEST_F(AuditCommitTest, CommitWithATargetIsASchemaViolation) {
  SyscallResult r = h_.Worker("audit.commit", "now");
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(AuditCommitTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "audit.commit", ""),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using AssertTest = KernelHandlersTest;

TEST_F(AssertTest, LabelsAtMostHoldsForLowerInputs) {
  const std::string notes = ReadNotes();
  SyscallResult r = h_.Worker("assert", "labels_at_most",
                              {{"labels", {"trusted", "private", "source:file"}}}, {notes});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["holds"], true);
}

TEST_F(AssertTest, LabelsAtMostFailsForHigherInputs) {
  const std::string notes = ReadNotes();
  SyscallResult r =
      h_.Worker("assert", "labels_at_most", {{"labels", Json::array({"public"})}}, {notes});
  EXPECT_THAT(r, IsDenied(Reason::kAssertionFailed, "effect"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("private"));
}

TEST_F(AssertTest, BudgetRemainingHoldsAndFails) {
  SyscallResult ok =
      h_.Worker("assert", "budget_remaining", {{"resource", "tool_calls"}, {"at_least", 1000}});
  ASSERT_THAT(ok, IsAllowed());
  EXPECT_EQ(ok.frame["remaining"], 1000);
  EXPECT_THAT(
      h_.Worker("assert", "budget_remaining", {{"resource", "tool_calls"}, {"at_least", 1001}}),
      IsDenied(Reason::kAssertionFailed, "effect"));
  EXPECT_THAT(h_.Worker("assert", "budget_remaining", {{"resource", "gpu_hours"}, {"at_least", 1}}),
              IsDenied(Reason::kInvalidArgument, "effect"));
}

TEST_F(AssertTest, ContentHashHoldsAndFails) {
  const std::string notes = ReadNotes();
  const std::string good = crypto::Sha256("0123456789abcdef").Hex();
  EXPECT_THAT(h_.Worker("assert", "content_hash", {{"sha256", good}}, {notes}), IsAllowed());
  EXPECT_THAT(h_.Worker("assert", "content_hash", {{"sha256", std::string(64, '0')}}, {notes}),
              IsDenied(Reason::kAssertionFailed, "effect"));
}

TEST_F(AssertTest, DecisionAndOutcomeAreBothDurableWhenTheResultReturns) {
  // The decision of a read-only syscall is queued without its own fsync (decision 036); the
  // outcome's wait must cover it. Read the store directly, without Commit().
  SyscallResult r =
      h_.Worker("assert", "budget_remaining", {{"resource", "tool_calls"}, {"at_least", 1}});
  ASSERT_THAT(r, IsAllowed());
  ASSERT_GT(r.receipt.outcome_seq, r.receipt.decision_seq);
  store::LogQuery q;
  q.limit = 1'000'000;
  Result<std::vector<store::LogRow>> rows = h_.kernel().store().ReadLog(q);
  ASSERT_TRUE(rows.ok());
  ASSERT_GE(static_cast<int64_t>(rows->size()), r.receipt.outcome_seq);
  const store::LogRow& decision = (*rows)[r.receipt.decision_seq - 1];
  EXPECT_EQ(decision.seq, r.receipt.decision_seq);
  EXPECT_EQ(decision.hash, r.receipt.decision_hash);
  EXPECT_EQ((*rows)[r.receipt.outcome_seq - 1].hash, r.receipt.outcome_hash);
}

TEST_F(AssertTest, UnknownAssertionIsInvalid) {
  SyscallResult r = h_.Worker("assert", "always_true");
  EXPECT_THAT(r, IsDenied(Reason::kInvalidArgument, "resolve"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(AssertTest, MissingArgumentsAreASchemaViolation) {
  EXPECT_THAT(h_.Worker("assert", "labels_at_most"), IsDenied(Reason::kSchemaViolation, "resolve"));
  EXPECT_THAT(h_.Worker("assert", "content_hash", {{"sha256", "00"}}),
              IsDenied(Reason::kSchemaViolation, "resolve"));
}

TEST_F(AssertTest, AtLeastOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r =
      h_.Worker("assert", "budget_remaining", {{"resource", "tool_calls"}, {"at_least", "1"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/at_least");
}

TEST_F(AssertTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("nobody", "assert", "labels_at_most", {{"labels", Json::array({"public"})}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

}  // namespace
}  // namespace custos::kernel
