// model.call against a fake OpenAI-compatible endpoint on loopback.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/fake_http_server.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::CannedResponse;
using ::custos::testing::EchoHandler;
using ::custos::testing::FakeHttpServer;
using ::custos::testing::HttpExchange;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::KernelHarness;
using ::custos::testing::OpenAiHandler;
using ::custos::testing::PolicySpec;
using ::custos::testing::WriteFileOrDie;
using ::testing::HasSubstr;

constexpr int64_t kTokensIn = 100000;  // [budgets.default] in the standard policy
constexpr int64_t kTokensOut = 100000;

class ModelCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "private notes\n");
    PolicySpec spec = h_.Spec();
    spec.connect = {web_.host_port()};
    spec.model_url = model_.url("/v1");
    ASSERT_TRUE(h_.Open(spec));
  }

  FakeHttpServer model_{OpenAiHandler("the answer is 42", 30, 11)};
  FakeHttpServer web_{EchoHandler()};
  KernelHarness h_;
};

TEST_F(ModelCallTest, OutputLabelsAreTheJoinOfTheInputs) {
  SyscallResult page = h_.Worker("network.send", web_.url("/article"));
  ASSERT_THAT(page, IsAllowed());
  SyscallResult notes = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  ASSERT_THAT(notes, IsAllowed());

  SyscallResult r = h_.Worker("model.call", "test-model", {{"prompt", "summarise"}},
                              {page.handle->id, notes.handle->id});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["text"], "the answer is 42");
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->kind, "model");
  const labels::LabelSet want = page.handle->labels.Join(notes.handle->labels);
  EXPECT_TRUE(r.handle->labels.Reaches(want)) << r.handle->labels.ToString();
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
  EXPECT_TRUE(r.handle->labels.HasTag("source:file"));
  EXPECT_TRUE(r.handle->labels.HasTag("source:127.0.0.1"));
  EXPECT_TRUE(r.handle->labels.HasTag("source:model:test-model"));

  // The endpoint got both inputs as context, and the prompt.
  ASSERT_EQ(model_.request_count(), 1u);
  Result<Json> body = ParseUntrustedJson(model_.requests()[0].body);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ((*body)["model"], "test-model");
  EXPECT_EQ((*body)["messages"].size(), 3u);
  EXPECT_THAT(model_.requests()[0].body, HasSubstr("private notes"));
}

TEST_F(ModelCallTest, PromptAloneIsLabeledUntrustedUnlessDeclared) {
  SyscallResult r = h_.Worker("model.call", "test-model", {{"prompt", "hi"}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);

  Json declared =
      ::custos::testing::CallJson("worker", "model.call", "test-model", {{"prompt", "hi"}});
  declared["labels"] = {"trusted", "private"};
  SyscallResult d = h_.Exec(declared);
  ASSERT_THAT(d, IsAllowed());
  EXPECT_EQ(d.handle->labels.integrity(), labels::Integrity::kTrusted);
  EXPECT_EQ(d.handle->labels.confidentiality(), labels::Confidentiality::kPrivate);
}

TEST_F(ModelCallTest, BudgetIsSettledToTheReportedUsage) {
  SyscallResult r =
      h_.Worker("model.call", "test-model", {{"prompt", "count to three"}, {"max_tokens", 64}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.usage[budget::Resource::kModelTokensIn], 30);
  EXPECT_EQ(r.usage[budget::Resource::kModelTokensOut], 11);
  EXPECT_EQ(r.frame["usage"]["prompt_tokens"], 30);
  // 30 tokens at 1000 micros/1k cost 30; 11 at 2000/1k round up to 22.
  EXPECT_EQ(r.usage[budget::Resource::kSpendMicros], 30 + 22);
  EXPECT_EQ(h_.Remaining("model_tokens_in"), kTokensIn - 30);
  EXPECT_EQ(h_.Remaining("model_tokens_out"), kTokensOut - 11);
  EXPECT_EQ(h_.Remaining("spend_micros"), 100000000 - 52);
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].usage["model_tokens_in"], 30);
  EXPECT_EQ(entries[1].usage["model_tokens_out"], 11);
}

TEST_F(ModelCallTest, ModelNotOnTheAllowListIsDenied) {
  SyscallResult r = h_.Worker("model.call", "gpt-5", {{"prompt", "hi"}});
  EXPECT_THAT(r, IsDenied(Reason::kModelNotAllowed, "policy"));
  EXPECT_EQ(model_.request_count(), 0u);
}

TEST_F(ModelCallTest, MissingPromptFailsAtTheEffectAndIsRefunded) {
  SyscallResult r = h_.Worker("model.call", "test-model");
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_EQ(model_.request_count(), 0u);
  EXPECT_EQ(h_.Remaining("model_tokens_out"), kTokensOut);
}

TEST_F(ModelCallTest, MalformedMessageIsASchemaViolation) {
  SyscallResult r = h_.Worker("model.call", "test-model",
                              {{"messages", Json::array({{{"role", "user"}, {"content", 7}}})}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_EQ(r.decision.at, "/args/messages/0");
  EXPECT_EQ(model_.request_count(), 0u);
}

TEST_F(ModelCallTest, MaxTokensOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("model.call", "test-model", {{"prompt", "x"}, {"max_tokens", "9"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/max_tokens");
}

TEST_F(ModelCallTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r = h_.Exec("reader", "model.call", "test-model", {{"prompt", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_EQ(model_.request_count(), 0u);
}

TEST(ModelCallBudgetTest, CallThatCouldExceedTheBudgetIsRefusedBeforeTheEndpoint) {
  FakeHttpServer model(OpenAiHandler("x", 1, 1));
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = model.url("/v1");
  spec.worker_budget = "model_tokens_out = 50";
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("model.call", "test-model", {{"prompt", "x"}, {"max_tokens", 51}});
  EXPECT_THAT(r, IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_EQ(model.request_count(), 0u);
  EXPECT_THAT(h.Worker("model.call", "test-model", {{"prompt", "x"}, {"max_tokens", 50}}),
              IsAllowed());
}

TEST(ModelCallEndpointTest, ModelWithoutAnEndpointFailsAtTheEffect) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  SyscallResult r = h.Worker("model.call", "test-model", {{"prompt", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kModelNotAllowed, "effect"));
  EXPECT_EQ(h.Remaining("model_tokens_in"), kTokensIn);
}

TEST(ModelCallEndpointTest, EndpointErrorIsAnEffectFailureAndNothingIsCharged) {
  FakeHttpServer model([](const HttpExchange&) {
    CannedResponse r;
    r.status = 500;
    r.body = "overloaded";
    return r;
  });
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = model.url("/v1");
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("model.call", "test-model", {{"prompt", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kEffectFailed, "effect"));
  EXPECT_EQ(h.Remaining("model_tokens_in"), kTokensIn);
  EXPECT_EQ(h.Remaining("model_tokens_out"), kTokensOut);
}

TEST(ModelCallEndpointTest, MalformedUsageIsChargedTheWholeReservation) {
  // A hostile or broken endpoint must neither crash the kernel nor under-report.
  FakeHttpServer model([](const HttpExchange&) {
    CannedResponse r;
    r.body = R"({"choices":[{"message":{"role":"assistant","content":"ok"}}],)"
             R"("usage":{"prompt_tokens":"many","completion_tokens":null}})";
    return r;
  });
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = model.url("/v1");
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("model.call", "test-model", {{"prompt", "x"}, {"max_tokens", 40}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.usage[budget::Resource::kModelTokensOut], 40);
  EXPECT_GT(r.usage[budget::Resource::kModelTokensIn], 0);
  EXPECT_EQ(h.Remaining("model_tokens_out"), kTokensOut - 40);
}

TEST(ModelCallEndpointTest, UsageAboveTheReservationIsReportedAndChargedTheReservation) {
  FakeHttpServer model(OpenAiHandler("long", 5, 1000));
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = model.url("/v1");
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("model.call", "test-model", {{"prompt", "x"}, {"max_tokens", 20}});
  EXPECT_THAT(r, IsDenied(Reason::kBudgetExhausted, "effect"));
  EXPECT_EQ(h.Remaining("model_tokens_out"), kTokensOut - 20);
}

TEST(ModelCallEndpointTest, ResponseWithoutChoicesIsAnEffectFailure) {
  FakeHttpServer model([](const HttpExchange&) {
    CannedResponse r;
    r.body = R"({"usage":"none"})";
    return r;
  });
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = model.url("/v1");
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("model.call", "test-model", {{"prompt", "x"}});
  EXPECT_THAT(r, IsDenied(Reason::kEffectFailed, "effect"));
  // And the kernel keeps serving.
  EXPECT_THAT(h.Worker("audit.commit", ""), IsAllowed());
}

}  // namespace
}  // namespace custos::kernel
