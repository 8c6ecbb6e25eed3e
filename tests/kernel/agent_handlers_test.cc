// agent.spawn / agent.send / agent.recv: attenuated children with carved budgets, and mailboxes
// whose messages keep their labels.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "private notes\n");
    ASSERT_TRUE(h_.Open(h_.Spec()));
  }

  SyscallResult Spawn(const std::string& parent, const std::string& child,
                      std::vector<std::string> syscalls, Json budget = nullptr) {
    Json args = {{"syscalls", syscalls}};
    if (!budget.is_null())
      args["budget"] = std::move(budget);
    return h_.Exec(parent, "agent.spawn", child, std::move(args));
  }

  KernelHarness h_;
};

using AgentSpawnTest = AgentTest;

TEST_F(AgentSpawnTest, ChildGetsTheSubsetItAskedFor) {
  SyscallResult r = Spawn("worker", "helper", {"memory.alloc", "memory.read", "tool.invoke"});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.rule, "agents.worker.spawn");
  EXPECT_EQ(r.frame["parent"], "worker");
  EXPECT_EQ(r.frame["syscalls"], Json({"tool.invoke", "memory.alloc", "memory.read"}));

  EXPECT_THAT(h_.Exec("helper", "memory.alloc", "note", {{"value", 1}}), IsAllowed());
  SyscallResult outside = h_.Exec("helper", "file.read", (h_.ws() / "notes.md").string());
  EXPECT_THAT(outside, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_EQ(outside.decision.rule, "spawn");
}

TEST_F(AgentSpawnTest, ChildAskingForMoreThanItsParentHoldsIsRefused) {
  SyscallResult r = Spawn("lead", "scout", {"memory.read", "file.write"});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "effect"));
  EXPECT_EQ(r.decision.at, "/args/syscalls/1");
  // Nothing was spawned: "scout" in this run is still only the policy template.
  EXPECT_THAT(Spawn("lead", "scout", {"memory.read"}), IsAllowed());
}

TEST_F(AgentSpawnTest, ChildCannotSpawnWhatItsParentCannot) {
  ASSERT_THAT(Spawn("worker", "helper", {"agent.spawn", "memory.read"}), IsAllowed());
  SyscallResult r = Spawn("helper", "scout", {"memory.read", "file.write"});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "effect"));
  EXPECT_THAT(Spawn("helper", "scout", {"memory.read"}), IsAllowed());
  EXPECT_THAT(h_.Exec("scout", "memory.alloc", "note", {{"value", 1}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

TEST_F(AgentSpawnTest, ChildBudgetIsCarvedFromTheParent) {
  const int64_t before = h_.Remaining("tool_calls");
  ASSERT_THAT(Spawn("worker", "helper", {"tool.invoke", "assert"}, {{"tool_calls", 2}}),
              IsAllowed());
  // The parent sees the carve.
  EXPECT_EQ(h_.Remaining("tool_calls"), before - 2);
  EXPECT_EQ(h_.Remaining("tool_calls", "helper"), 2);
  // The child cannot exceed it.
  EXPECT_THAT(h_.Exec("helper", "tool.invoke", "echo", {{"arguments", {{"n", 1}}}}), IsAllowed());
  EXPECT_THAT(h_.Exec("helper", "tool.invoke", "echo", {{"arguments", {{"n", 2}}}}), IsAllowed());
  EXPECT_THAT(h_.Exec("helper", "tool.invoke", "echo", {{"arguments", {{"n", 3}}}}),
              IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_EQ(h_.Remaining("tool_calls", "helper"), 0);
  EXPECT_EQ(h_.Remaining("tool_calls"), before - 2);
}

TEST_F(AgentSpawnTest, ParentMaySpawnSeveralChildren) {
  ASSERT_THAT(Spawn("worker", "helper", {"memory.read"}), IsAllowed());
  EXPECT_THAT(Spawn("worker", "scout", {"memory.read"}), IsAllowed());
}

TEST(AgentSpawnWallClockTest, ChildWallClockEndsNoLaterThanItsParents) {
  FakeClock clock;
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.worker_budget = "wall_ms = 10000";
  KernelHarness::Options o;
  o.clock = &clock;
  ASSERT_TRUE(h.Open(::custos::testing::MakePolicy(spec), o));
  auto spawn = [&](const std::string& child, Json budget) {
    Json args = {{"syscalls", Json::array({"memory.read", "assert"})}};
    if (!budget.is_null())
      args["budget"] = std::move(budget);
    return h.Exec("worker", "agent.spawn", child, std::move(args));
  };
  SyscallResult short_lived = spawn("helper", {{"wall_ms", 1000}});
  ASSERT_THAT(short_lived, IsAllowed());
  EXPECT_EQ(short_lived.frame["budget"]["wall_ms"], 1000);
  SyscallResult capped = spawn("scout", {{"wall_ms", 50000}});
  ASSERT_THAT(capped, IsAllowed());
  EXPECT_EQ(capped.frame["budget"]["wall_ms"], 10000);

  clock.Advance(1001);
  EXPECT_THAT(h.Exec("helper", "memory.read", "x"), IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_THAT(h.Exec("scout", "memory.read", "x"), IsDenied(Reason::kNotFound, "effect"));
  EXPECT_THAT(h.Worker("memory.read", "x"), IsDenied(Reason::kNotFound, "effect"));
  clock.Advance(9000);
  EXPECT_THAT(h.Exec("scout", "memory.read", "x"), IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_THAT(h.Worker("memory.read", "x"), IsDenied(Reason::kBudgetExhausted, "budget"));
}

TEST_F(AgentSpawnTest, CarveLargerThanTheParentHasIsRefused) {
  SyscallResult r = Spawn("worker", "helper", {"tool.invoke"}, {{"tool_calls", 100000}});
  EXPECT_THAT(r, IsDenied(Reason::kBudgetExhausted, "effect"));
  EXPECT_THAT(h_.Exec("helper", "memory.read", "x"), IsDenied(Reason::kNotFound, "effect"))
      << "a failed spawn must leave the policy template untouched";
}

TEST_F(AgentSpawnTest, SpawningTheSameChildTwiceIsRefused) {
  ASSERT_THAT(Spawn("worker", "helper", {"memory.read"}), IsAllowed());
  EXPECT_THAT(Spawn("worker", "helper", {"memory.read"}),
              IsDenied(Reason::kAlreadyExists, "effect"));
}

TEST_F(AgentSpawnTest, ChildNotInTheSpawnListIsDenied) {
  SyscallResult r = Spawn("lead", "helper", {"memory.read"});
  EXPECT_THAT(r, IsDenied(Reason::kNoMatchingRule, "policy"));
  EXPECT_EQ(r.decision.rule, "agents.lead.spawn");
}

TEST_F(AgentSpawnTest, UnknownSyscallNameIsRefused) {
  SyscallResult r = Spawn("worker", "helper", {"shell.exec"});
  EXPECT_THAT(r, IsDenied(Reason::kUnknownSyscall, "effect"));
  EXPECT_EQ(r.decision.at, "/args/syscalls/0");
}

TEST_F(AgentSpawnTest, UnknownBudgetResourceIsAnUnknownField) {
  SyscallResult r = Spawn("worker", "helper", {"memory.read"}, {{"gpu_hours", 1}});
  EXPECT_THAT(r, IsDenied(Reason::kUnknownField, "effect"));
  EXPECT_EQ(r.decision.at, "/args/budget/gpu_hours");
}

TEST_F(AgentSpawnTest, MissingSyscallsIsASchemaViolation) {
  SyscallResult r = h_.Worker("agent.spawn", "helper", Json::object());
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/syscalls");
}

TEST_F(AgentSpawnTest, ChildStaysAttenuatedAcrossAKernelRestart) {
  SyscallResult spawned = Spawn("worker", "helper", {"memory.read", "memory.alloc", "tool.invoke"},
                                {{"tool_calls", 5}});
  ASSERT_THAT(spawned, IsAllowed());
  ASSERT_TRUE(h_.Open(h_.Spec()));  // a new kernel over the same store: the child comes from it
  // The child keeps the token its spawn returned (same identity, so the same token root).
  h_.wallet().Observe(CallJson("worker", "agent.spawn", "helper"), spawned);
  // Still the child, never the template (which holds every syscall)...
  EXPECT_THAT(h_.Exec("helper", "file.read", (h_.ws() / "notes.md").string()),
              IsDenied(Reason::kCapabilityMissing, "capability"));
  // ...and its carve is not in this process's ledger: it gets nothing (not even wall time)
  // rather than something unaccounted.
  EXPECT_THAT(h_.Exec("helper", "tool.invoke", "echo"),
              IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_THAT(h_.Exec("helper", "memory.alloc", "note", {{"value", 1}}),
              IsDenied(Reason::kBudgetExhausted, "budget"));
}

TEST_F(AgentSpawnTest, RuleMaySpawnAChildThatIsNotAPolicyAgent) {
  PolicySpec spec = h_.Spec();
  spec.extra =
      "[[rules]]\nid = \"spawn-subs\"\neffect = \"allow\"\n"
      "when = { syscall = [\"agent.spawn\"], target = \"sub-*\" }\n";
  ASSERT_TRUE(h_.Open(spec));
  SyscallResult r = Spawn("worker", "sub-1", {"memory.read"});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.rule, "spawn-subs");
  EXPECT_THAT(h_.Exec("sub-1", "memory.read", "x"), IsDenied(Reason::kNotFound, "effect"));
  EXPECT_THAT(h_.Exec("sub-2", "memory.read", "x"), IsDenied(Reason::kUnknownAgent, "capability"));
}

TEST_F(AgentSpawnTest, AgentThatAlreadyActedInTheRunCannotBeSpawned) {
  ASSERT_THAT(h_.Exec("helper", "memory.alloc", "note", {{"value", 1}}), IsAllowed());
  EXPECT_THAT(Spawn("worker", "helper", {"memory.read"}),
              IsDenied(Reason::kAlreadyExists, "effect"));
}

TEST_F(AgentSpawnTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(Spawn("reader", "helper", {"memory.read"}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using AgentSendTest = AgentTest;

TEST_F(AgentSendTest, MessagesArriveInOrderThenTheMailboxIsEmpty) {
  ASSERT_THAT(h_.Worker("agent.send", "reader", {{"message", "first"}}), IsAllowed());
  ASSERT_THAT(h_.Worker("agent.send", "reader", {{"message", "second"}}), IsAllowed());
  SyscallResult one = h_.Exec("reader", "agent.recv", "");
  ASSERT_THAT(one, IsAllowed());
  EXPECT_EQ(one.frame["from"], "worker");
  EXPECT_EQ(one.frame["message"]["text"], "first");
  SyscallResult two = h_.Exec("reader", "agent.recv", "");
  ASSERT_THAT(two, IsAllowed());
  EXPECT_EQ(two.frame["message"]["text"], "second");
  EXPECT_THAT(h_.Exec("reader", "agent.recv", ""), IsDenied(Reason::kMailboxEmpty, "effect"));
}

TEST_F(AgentSendTest, LabelsTravelWithTheMessage) {
  SyscallResult notes = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  ASSERT_THAT(notes, IsAllowed());
  ASSERT_THAT(h_.Worker("agent.send", "reader", Json::object(), {notes.handle->id}), IsAllowed());
  Json declared = CallJson("worker", "agent.send", "reader", {{"message", "from the web"}});
  declared["labels"] = {"untrusted", "external"};
  ASSERT_THAT(h_.Exec(declared), IsAllowed());

  SyscallResult first = h_.Exec("reader", "agent.recv", "");
  ASSERT_THAT(first, IsAllowed());
  EXPECT_EQ(first.frame["message"]["text"], "private notes\n");
  EXPECT_TRUE(first.handle->labels.Reaches(notes.handle->labels));
  SyscallResult second = h_.Exec("reader", "agent.recv", "");
  ASSERT_THAT(second, IsAllowed());
  EXPECT_EQ(second.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_TRUE(second.handle->labels.HasTag("external"));
  // The recipient owns its copy and may read it back with the same labels.
  SyscallResult again = h_.Exec("reader", "context.read", second.handle->id);
  ASSERT_THAT(again, IsAllowed());
  EXPECT_EQ(again.handle->labels, second.handle->labels);
}

TEST_F(AgentSendTest, MailboxesArePerRecipient) {
  ASSERT_THAT(h_.Worker("agent.send", "reader", {{"message", "for reader"}}), IsAllowed());
  EXPECT_THAT(h_.Exec("lead", "agent.recv", ""), IsDenied(Reason::kMailboxEmpty, "effect"));
  EXPECT_THAT(h_.Exec("reader", "agent.recv", "", Json::object(), {}, "run-2"),
              IsDenied(Reason::kMailboxEmpty, "effect"));
}

TEST_F(AgentSendTest, SendToAnUnknownAgentIsRefused) {
  SyscallResult r = h_.Worker("agent.send", "ghost", {{"message", "boo"}});
  EXPECT_THAT(r, IsDenied(Reason::kUnknownAgent, "effect"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(AgentSendTest, SendWithoutAMessageIsASchemaViolation) {
  SyscallResult r = h_.Worker("agent.send", "reader");
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_THAT(h_.Exec("reader", "agent.recv", ""), IsDenied(Reason::kMailboxEmpty, "effect"));
}

TEST_F(AgentSendTest, MessageOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("agent.send", "reader", {{"message", {{"text", "x"}}}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/message");
}

TEST_F(AgentSendTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("reader", "agent.send", "worker", {{"message", "x"}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

using AgentRecvTest = AgentTest;

TEST_F(AgentRecvTest, RecvWithATargetIsASchemaViolation) {
  SyscallResult r = h_.Exec("reader", "agent.recv", "worker");
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(AgentRecvTest, AgentWithoutTheCapabilityIsDenied) {
  EXPECT_THAT(h_.Exec("nobody", "agent.recv", ""),
              IsDenied(Reason::kCapabilityMissing, "capability"));
}

TEST_F(AgentRecvTest, SpawnedChildReceivesFromItsParent) {
  ASSERT_THAT(Spawn("worker", "helper", {"agent.recv"}), IsAllowed());
  ASSERT_THAT(h_.Worker("agent.send", "helper", {{"message", "go"}}), IsAllowed());
  SyscallResult r = h_.Exec("helper", "agent.recv", "");
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["message"]["text"], "go");
}

}  // namespace
}  // namespace custos::kernel
