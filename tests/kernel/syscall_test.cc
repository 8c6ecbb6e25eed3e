// Parse and schema: every malformed request is refused with an exact reason and JSON pointer, the
// refusal is recorded in the flight log, and the kernel keeps serving the next call.

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
using ::custos::testing::WriteFileOrDie;

struct BadRequest {
  std::string name;
  std::string text;  // raw request text
  Reason reason;
  std::string stage;
  std::string at;  // expected JSON pointer ("" = none expected)
};

std::string Deep(int depth) {
  std::string inner = "1";
  for (int i = 0; i < depth; ++i)
    inner = "[" + inner + "]";
  return R"({"agent":"worker","run":"run-1","kind":"memory.alloc","target":"t","args":{"value":)" +
         inner + "}}";
}

std::vector<BadRequest> BadRequests() {
  const std::string ok_head = R"("agent":"worker","run":"run-1",)";
  return {
      {"MalformedJson", R"({"agent":"worker",)", Reason::kMalformedJson, "schema", ""},
      {"NotAnObject", R"(["file.read"])", Reason::kSchemaViolation, "schema", ""},
      {"UnknownSyscall", "{" + ok_head + R"("kind":"shell.exec","target":"ls"})",
       Reason::kUnknownSyscall, "schema", "/kind"},
      {"UnknownTopLevelField", "{" + ok_head + R"("kind":"audit.commit","sudo":true})",
       Reason::kUnknownField, "schema", "/sudo"},
      {"UnknownArgsField",
       "{" + ok_head + R"("kind":"memory.read","target":"x","args":{"bogus":1}})",
       Reason::kUnknownField, "schema", "/args/bogus"},
      {"MissingAgent", R"({"run":"run-1","kind":"audit.commit"})", Reason::kSchemaViolation,
       "schema", "/agent"},
      {"MissingKind", "{" + ok_head + R"("target":"x"})", Reason::kSchemaViolation, "schema",
       "/kind"},
      {"MissingTarget", "{" + ok_head + R"("kind":"file.read"})", Reason::kSchemaViolation,
       "schema", "/target"},
      {"WrongTypeArgs", "{" + ok_head + R"("kind":"memory.read","target":"x","args":"all"})",
       Reason::kSchemaViolation, "schema", "/args"},
      {"WrongTypeInputs", "{" + ok_head + R"("kind":"memory.read","target":"x","inputs":"h_x"})",
       Reason::kSchemaViolation, "schema", "/inputs"},
      {"WrongTypeAgent", R"({"agent":7,"run":"run-1","kind":"audit.commit"})",
       Reason::kSchemaViolation, "schema", "/agent"},
      {"BadAgentName", R"({"agent":"../etc","run":"run-1","kind":"audit.commit"})",
       Reason::kSchemaViolation, "schema", "/agent"},
      {"UnsupportedVersion", R"({"v":2,)" + ok_head + R"("kind":"audit.commit"})",
       Reason::kUnsupportedVersion, "schema", "/v"},
      {"OversizeTarget",
       "{" + ok_head + R"("kind":"file.read","target":")" + std::string(5000, 'a') + "\"}",
       Reason::kPayloadTooLarge, "schema", "/target"},
      {"OversizeIntent",
       "{" + ok_head + R"("kind":"audit.commit","intent":")" + std::string(5000, 'a') + "\"}",
       Reason::kPayloadTooLarge, "schema", "/intent"},
      {"InvalidUtf8", "{" + ok_head + "\"kind\":\"memory.read\",\"target\":\"\xff\xfe\"}",
       Reason::kInvalidUtf8, "schema", ""},
      {"NestingTooDeep", Deep(40), Reason::kNestingTooDeep, "schema", ""},
      {"UnknownLabel", "{" + ok_head + R"("kind":"audit.commit","labels":["Not A Tag!"]})",
       Reason::kInvalidArgument, "schema", "/labels/0"},
      {"NulInTarget", "{" + ok_head + R"("kind":"memory.read","target":"a\u0000b"})",
       Reason::kInvalidArgument, "schema", "/target"},
      {"UnknownAgent", R"({"agent":"mallory","run":"run-1","kind":"audit.commit"})",
       Reason::kUnknownAgent, "capability", ""},
      {"CapabilityMissing", R"({"agent":"reader","run":"run-1","kind":"audit.commit"})",
       Reason::kCapabilityMissing, "capability", ""},
      {"UnknownHandle",
       "{" + ok_head +
           R"("kind":"assert","target":"labels_at_most","args":{"labels":["public"]},)"
           R"("inputs":["h_aaaaaaaaaaaaaaaaaaaaaaaaaa"]})",
       Reason::kUnknownHandle, "inputs", "/inputs/0"},
      {"GarbageHandle",
       "{" + ok_head +
           R"("kind":"assert","target":"labels_at_most","args":{"labels":["public"]},)"
           R"("inputs":["not-a-handle"]})",
       Reason::kUnknownHandle, "inputs", "/inputs/0"},
      {"TokenMissing", "{" + ok_head + R"("kind":"audit.commit","token":""})",
       Reason::kTokenMissing, "capability", "/token"},
      {"TokenGarbage", "{" + ok_head + R"("kind":"audit.commit","token":"%%%"})",
       Reason::kTokenInvalid, "capability", "/token"},
      {"OversizeToken",
       "{" + ok_head + R"("kind":"audit.commit","token":")" + std::string(20000, 'A') + "\"}",
       Reason::kPayloadTooLarge, "schema", "/token"},
  };
}

class SyscallParseTest : public ::testing::TestWithParam<BadRequest> {
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
KernelHarness* SyscallParseTest::harness_ = nullptr;

TEST_P(SyscallParseTest, BadRequestIsDeniedRecordedAndTheKernelKeepsServing) {
  const BadRequest& bad = GetParam();
  KernelHarness& h = *harness_;
  // Requests that parse carry the agent's token (unless they name one), so that each is refused
  // for its own defect and not for a missing token.
  std::string text = bad.text;
  Json j = Json::parse(bad.text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    h.wallet().Attach(j);
    text = j.dump();
  }
  SyscallResult r = h.kernel().ExecuteJson(text);
  EXPECT_THAT(r, IsDenied(bad.reason, bad.stage));
  if (!bad.at.empty()) {
    EXPECT_EQ(r.decision.at, bad.at);
  }
  EXPECT_FALSE(r.handle.has_value());
  EXPECT_TRUE(r.frame.is_null());
  EXPECT_GT(r.receipt.decision_seq, 0);
  EXPECT_EQ(r.receipt.outcome_seq, 0);

  // Exactly one entry, a deny with the same reason, at the seq the receipt names.
  std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].type, "decision");
  EXPECT_EQ(entries[0].verdict, "deny");
  EXPECT_EQ(entries[0].reason, std::string(ReasonName(bad.reason)));
  EXPECT_EQ(entries[0].stage, bad.stage);
  EXPECT_EQ(entries[0].seq, r.receipt.decision_seq);

  // The next well-formed call goes through.
  EXPECT_THAT(h.Worker("memory.alloc", "note", {{"value", bad.name}}), IsAllowed());
}

INSTANTIATE_TEST_SUITE_P(AllBadRequests, SyscallParseTest, ::testing::ValuesIn(BadRequests()),
                         [](const ::testing::TestParamInfo<BadRequest>& info) {
                           return info.param.name;
                         });

TEST(SyscallParseLogTest, UnknownSyscallIsRecordedUnderItsRawName) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  SyscallResult r = h.kernel().ExecuteJson(
      R"({"agent":"worker","run":"run-1","kind":"shell.exec","target":"rm -rf /"})");
  EXPECT_THAT(r, IsDenied(Reason::kUnknownSyscall, "schema"));
  std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].syscall, "shell.exec");
  EXPECT_EQ(entries[0].agent, "worker");
  EXPECT_EQ(entries[0].extra["at"], "/kind");
  EXPECT_FALSE(entries[0].req_hash.empty());
}

TEST(SyscallParseLogTest, ForeignHandleInInputsIsRefused) {
  KernelHarness h;
  WriteFileOrDie(h.ws() / "a.txt", "a");
  ASSERT_TRUE(h.Open(h.Spec()));
  SyscallResult read = h.Worker("file.read", (h.ws() / "a.txt").string());
  ASSERT_THAT(read, IsAllowed());
  SyscallResult r = h.Exec("reader", "assert", "labels_at_most",
                           {{"labels", Json::array({"private"})}}, {read.handle->id});
  EXPECT_THAT(r, IsDenied(Reason::kForeignHandle, "inputs"));
  EXPECT_EQ(r.decision.at, "/inputs/0");
  std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, "foreign_handle");
  EXPECT_THAT(h.Exec("reader", "assert", "labels_at_most", {{"labels", Json::array({"public"})}}),
              IsAllowed());
}

TEST(SyscallParseLogTest, LibraryCallWithAWrongTypedArgumentIsDeniedNotThrown) {
  // Execute() is the library entry point (gateways build Syscall values directly): it must apply
  // the same schema as ExecuteJson and never throw.
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  Syscall call;
  call.agent = "worker";
  call.run = "run-1";
  call.kind = SyscallKind::kFileWrite;
  call.target = (h.out() / "x.txt").string();
  call.args = {{"content", 42}};
  SyscallResult r = h.kernel().Execute(call);
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/content");
  EXPECT_FALSE(std::filesystem::exists(h.out() / "x.txt"));
  ASSERT_EQ(h.EntriesFor(r.id).size(), 1u);

  call.args = {{"content", "ok"}, {"sudo", true}};
  EXPECT_THAT(h.kernel().Execute(call), IsDenied(Reason::kUnknownField, "schema"));
  EXPECT_FALSE(std::filesystem::exists(h.out() / "x.txt"));
}

TEST(SyscallParseLogTest, LibraryCallWithAnOutOfRangeKindIsDeniedAndRecorded) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  Syscall call;
  call.agent = "worker";
  call.run = "run-1";
  call.kind = static_cast<SyscallKind>(200);
  call.target = "x";
  SyscallResult r = h.kernel().Execute(call);
  EXPECT_THAT(r, IsDenied(Reason::kUnknownSyscall, "schema"));
  ASSERT_EQ(h.EntriesFor(r.id).size(), 1u);
  EXPECT_THAT(h.Worker("audit.commit", ""), IsAllowed());
}

TEST(SyscallParseLogTest, CallerIdIsKeptAndUsedInTheLog) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  Json j = CallJson("worker", "memory.alloc", "note", {{"value", 1}});
  j["id"] = "req-42";
  SyscallResult r = h.Exec(j);
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.id, "req-42");
  EXPECT_EQ(h.EntriesFor("req-42").size(), 2u);
}

}  // namespace
}  // namespace custos::kernel
