// Human approvals: human.approve (with and without declassification) and [[approvals]] rules
// that make an effect wait for a person. Answers come from another thread through
// Kernel::AnswerApproval, as `custos approvals approve` does from another process.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::CallJson;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::custos::testing::PolicySpec;
using ::custos::testing::ReadFileIfExists;
using ::custos::testing::TomlString;
using ::custos::testing::WriteFileOrDie;

class HumanApproveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "private notes\n");
    ASSERT_TRUE(h_.Open(h_.Spec()));
  }

  // Runs `call` on another thread, answers the approval it creates, and returns the result.
  SyscallResult AskAndAnswer(const Json& call, bool approve, std::string* question = nullptr) {
    std::future<SyscallResult> pending =
        std::async(std::launch::async, [&] { return h_.Exec(call); });
    const std::string id = h_.WaitForPendingApproval();
    EXPECT_FALSE(id.empty()) << "no approval appeared";
    if (!id.empty()) {
      if (question != nullptr)
        *question = h_.kernel().store().GetApproval(id)->question;
      EXPECT_THAT(h_.kernel().AnswerApproval(id, approve, "alice", approve ? "" : "not today"),
                  IsOk());
    }
    return pending.get();
  }

  KernelHarness h_;
};

TEST_F(HumanApproveTest, ApprovalAnsweredFromAnotherThreadAllows) {
  std::string question;
  SyscallResult r = AskAndAnswer(
      CallJson("worker", "human.approve", "", {{"question", "may I deploy?"}}), true, &question);
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(question, "may I deploy?");
  EXPECT_EQ(r.frame["approved_by"], "alice");
  EXPECT_FALSE(r.frame["approval_id"].get<std::string>().empty());
}

TEST_F(HumanApproveTest, DeniedApprovalIsApprovalDenied) {
  SyscallResult r =
      AskAndAnswer(CallJson("worker", "human.approve", "", {{"question", "rm -rf?"}}), false);
  EXPECT_THAT(r, IsDenied(Reason::kApprovalDenied, "effect"));
  EXPECT_NE(r.decision.explanation.find("not today"), std::string::npos) << r.decision.explanation;
}

TEST_F(HumanApproveTest, ApprovedDeclassificationMintsAHandleWithLowerLabels) {
  SyscallResult notes = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  ASSERT_THAT(notes, IsAllowed());
  ASSERT_EQ(notes.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);

  SyscallResult r = AskAndAnswer(
      CallJson("worker", "human.approve", "",
               {{"question", "publish the notes?"}, {"declassify", {"trusted", "public"}}},
               {notes.handle->id}),
      true);
  ASSERT_THAT(r, IsAllowed());
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_NE(r.handle->id, notes.handle->id);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPublic);
  EXPECT_EQ(r.frame["declassified"]["from"], notes.handle->id);
  // The original keeps its labels; the new one reads back with the lowered ones.
  SyscallResult old_read = h_.Worker("context.read", notes.handle->id);
  EXPECT_EQ(old_read.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
  SyscallResult new_read = h_.Worker("context.read", r.handle->id);
  ASSERT_THAT(new_read, IsAllowed());
  EXPECT_EQ(new_read.frame["text"], "private notes\n");
  EXPECT_EQ(new_read.handle->labels.confidentiality(), labels::Confidentiality::kPublic);
  // The outcome records the lowered labels.
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].blob, r.handle->id);
  EXPECT_THAT(entries[1].labels, ::testing::Contains("public"));
}

TEST_F(HumanApproveTest, DeniedDeclassificationMintsNothing) {
  SyscallResult notes = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  SyscallResult r =
      AskAndAnswer(CallJson("worker", "human.approve", "",
                            {{"question", "publish?"}, {"declassify", Json::array({"public"})}},
                            {notes.handle->id}),
                   false);
  EXPECT_THAT(r, IsDenied(Reason::kApprovalDenied, "effect"));
  EXPECT_FALSE(r.handle.has_value());
}

TEST_F(HumanApproveTest, DeclassifyWithoutExactlyOneInputIsASchemaViolation) {
  SyscallResult r =
      h_.Worker("human.approve", "", {{"question", "q"}, {"declassify", Json::array({"public"})}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_EQ(r.decision.at, "/inputs");
  Result<std::vector<store::Approval>> all = h_.kernel().store().ListApprovals("");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST_F(HumanApproveTest, MissingQuestionIsASchemaViolation) {
  SyscallResult r = h_.Worker("human.approve", "", Json::object());
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/question");
}

TEST_F(HumanApproveTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r = h_.Exec("reader", "human.approve", "", {{"question", "q"}});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
}

TEST(HumanApproveTimeoutTest, UnansweredApprovalTimesOut) {
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.approval_timeout_ms = 150;
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("human.approve", "", {{"question", "anyone?"}});
  EXPECT_THAT(r, IsDenied(Reason::kApprovalTimeout, "effect"));
  Result<std::vector<store::Approval>> all = h.kernel().store().ListApprovals("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, "denied");
  EXPECT_EQ((*all)[0].answered_by, "timeout");
}

class ApprovalRuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PolicySpec spec = h_.Spec();
    spec.extra =
        "[[approvals]]\nid = \"writes-need-a-person\"\nsyscall = [\"file.write\"]\n"
        "target = " +
        TomlString(h_.out().string() + "/gated/**") +
        "\ntimeout_ms = 10000\nmessage = \"a person checks gated writes\"\n\n"
        "[[approvals]]\nid = \"nobody-is-watching\"\nsyscall = [\"file.write\"]\n"
        "target = " +
        TomlString(h_.out().string() + "/unwatched/**") + "\ntimeout_ms = 150\n";
    fs::create_directories(h_.out() / "gated");
    fs::create_directories(h_.out() / "unwatched");
    ASSERT_TRUE(h_.Open(spec));
  }

  Json GatedWrite(const std::string& name) {
    Json j = CallJson("worker", "file.write", (h_.out() / "gated" / name).string(),
                      {{"content", "gated content"}});
    j["intent"] = "write the release notes";
    return j;
  }

  KernelHarness h_;
};

TEST_F(ApprovalRuleTest, ApprovedWriteWaitsThenHappens) {
  std::future<SyscallResult> pending =
      std::async(std::launch::async, [&] { return h_.Exec(GatedWrite("a.txt")); });
  const std::string id = h_.WaitForPendingApproval();
  ASSERT_FALSE(id.empty());
  // Nothing is written while a person has not answered.
  EXPECT_FALSE(fs::exists(h_.out() / "gated" / "a.txt"));
  Result<store::Approval> a = h_.kernel().store().GetApproval(id);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->question, "write the release notes");
  EXPECT_EQ(a->rule, "writes-need-a-person");
  EXPECT_EQ(a->syscall, "file.write");
  ASSERT_THAT(h_.kernel().AnswerApproval(id, true, "bob", ""), IsOk());
  SyscallResult r = pending.get();
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.stage, "approval");
  EXPECT_EQ(r.approval_id, id);
  EXPECT_EQ(ReadFileIfExists(h_.out() / "gated" / "a.txt"), "gated content");

  // require_approval, then the allow that points at it, then the outcome.
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].verdict, "require_approval");
  EXPECT_EQ(entries[0].reason, "approval_required");
  EXPECT_EQ(entries[1].verdict, "allow");
  EXPECT_EQ(entries[1].decision_seq, entries[0].seq);
  EXPECT_EQ(entries[2].type, "outcome");
  EXPECT_EQ(entries[2].decision_seq, entries[1].seq);
}

TEST_F(ApprovalRuleTest, DeniedWriteNeverHappens) {
  std::future<SyscallResult> pending =
      std::async(std::launch::async, [&] { return h_.Exec(GatedWrite("b.txt")); });
  const std::string id = h_.WaitForPendingApproval();
  ASSERT_FALSE(id.empty());
  ASSERT_THAT(h_.kernel().AnswerApproval(id, false, "bob", "no"), IsOk());
  SyscallResult r = pending.get();
  EXPECT_THAT(r, IsDenied(Reason::kApprovalDenied, "approval"));
  EXPECT_EQ(r.decision.rule, "writes-need-a-person");
  EXPECT_FALSE(fs::exists(h_.out() / "gated" / "b.txt"));
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].verdict, "deny");
  EXPECT_EQ(entries[1].reason, "approval_denied");
}

TEST_F(ApprovalRuleTest, UnansweredWriteTimesOutAndNeverHappens) {
  SyscallResult r =
      h_.Worker("file.write", (h_.out() / "unwatched" / "c.txt").string(), {{"content", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kApprovalTimeout, "approval"));
  EXPECT_EQ(r.decision.rule, "nobody-is-watching");
  EXPECT_FALSE(fs::exists(h_.out() / "unwatched" / "c.txt"));
}

TEST_F(ApprovalRuleTest, WritesOutsideTheGatedTreeDoNotWait) {
  SyscallResult r = h_.Worker("file.write", (h_.out() / "free.txt").string(), {{"content", "x"}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.stage, "policy");
  EXPECT_TRUE(r.approval_id.empty());
}

TEST_F(ApprovalRuleTest, AnsweringTwiceIsRefused) {
  std::future<SyscallResult> pending =
      std::async(std::launch::async, [&] { return h_.Exec(GatedWrite("d.txt")); });
  const std::string id = h_.WaitForPendingApproval();
  ASSERT_FALSE(id.empty());
  ASSERT_THAT(h_.kernel().AnswerApproval(id, true, "bob", ""), IsOk());
  EXPECT_THAT(pending.get(), IsAllowed());
  EXPECT_THAT(h_.kernel().AnswerApproval(id, false, "mallory", ""),
              ::custos::testing::StatusIs(Reason::kAlreadyExists));
}

}  // namespace
}  // namespace custos::kernel
