// Kernel::RegisterToolProvider: remote tools are performed by their provider only inside the
// effect step of an allowed, recorded tool.invoke (INV-1, INV-4); refusals never reach it.

#include "custos/kernel/tool_provider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>

#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::StatusIs;

class CountingProvider final : public ToolProvider {
 public:
  Status Check(const std::string& target) const override {
    ++checks;
    if (target == "remote.hidden")
      return Status(Reason::kMcpDescriptorChanged, "hidden");
    return Status::Ok();
  }
  Result<ToolOutput> Invoke(const ToolCall& call) override {
    ++invokes;
    last_args = call.arguments;
    ToolOutput out;
    out.content = "result for " + call.target + " " + std::getenv("CUSTOS_TEST_TOKEN");
    out.frame = {{"text", out.content}};
    out.labels = labels::LabelSet::Untrusted();
    out.labels.AddTag("external");
    return out;
  }
  std::string SecretDestination(const std::string&) const override { return destination; }
  mutable std::atomic<int> checks{0};
  std::atomic<int> invokes{0};
  Json last_args;
  std::string destination = "mcp:remote";
};

constexpr const char* kPolicy = R"(
[policy]
name = "provider-test"
[agents.a]
syscalls = ["tool.invoke", "secret.open"]
[tools]
allow = ["remote.*"]
deny = ["remote.banned"]
[secrets.TOKEN]
source = "env:CUSTOS_TEST_TOKEN"
agents = ["a"]
[secrets.DEPLOY]
source = "env:CUSTOS_TEST_DEPLOY"
agents = ["a"]
destinations = ["mcp:remote", "mcp:ci-*"]
[[flows]]
id = "no-external-to-write"
from = ["external"]
to = ["tool:remote.write"]
)";

class ToolProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("CUSTOS_TEST_TOKEN", "sk_test_4f9a8b7c6d5e", 1);
    ::setenv("CUSTOS_TEST_DEPLOY", "dk_live_77aa88bb99cc", 1);
    ASSERT_TRUE(h_.Open(kPolicy));
    ASSERT_THAT(h_.kernel().RegisterToolProvider("remote.", provider_), StatusIs(Reason::kOk));
  }
  SyscallResult Call(const std::string& tool, Json args = Json::object(),
                     std::vector<std::string> inputs = {}) {
    return h_.Exec(::custos::testing::CallJson("a", "tool.invoke", tool,
                                               {{"arguments", std::move(args)}}, inputs));
  }
  ::custos::testing::KernelHarness h_;
  std::shared_ptr<CountingProvider> provider_ = std::make_shared<CountingProvider>();
};

TEST_F(ToolProviderTest, AllowedCallIsPerformedByTheProviderLabeledAndRedacted) {
  SyscallResult r = Call("remote.read", {{"q", 1}});
  ASSERT_TRUE(r.decision.allowed()) << r.ToJson().dump();
  EXPECT_EQ(provider_->invokes, 1);
  EXPECT_EQ(provider_->last_args, Json({{"q", 1}}));
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_TRUE(r.handle->labels.HasTag("external"));
  // The provider's frame carried the secret value: the caller sees it redacted.
  EXPECT_EQ(r.frame["text"].get<std::string>().find("sk_test_4f9a8b7c6d5e"), std::string::npos);
  EXPECT_GT(r.receipt.decision_seq, 0);
  EXPECT_GT(r.receipt.outcome_seq, r.receipt.decision_seq);
}

TEST_F(ToolProviderTest, RefusalsNeverReachTheProvider) {
  EXPECT_EQ(Call("remote.banned").decision.reason, Reason::kToolNotAllowed);
  SyscallResult hidden = Call("remote.hidden");
  EXPECT_EQ(hidden.decision.reason, Reason::kMcpDescriptorChanged);
  EXPECT_EQ(hidden.decision.stage, "resolve");
  EXPECT_GT(hidden.receipt.decision_seq, 0);  // recorded
  EXPECT_EQ(Call("remote.x", {{"k", "sk_test_4f9a8b7c6d5e"}}).decision.reason,
            Reason::kSecretInEgress);
  EXPECT_EQ(provider_->invokes, 0);
}

// A secret handle reference ({{h_...}}) in the arguments: substituted at the effect boundary
// toward the provider's destination ("mcp:remote") when the secret's policy lists it; the log
// keeps the reference, never the value.
TEST_F(ToolProviderTest, SecretHandlesAreSubstitutedOnlyTowardAllowedDestinations) {
  SyscallResult open = h_.Exec(
      ::custos::testing::CallJson("a", "secret.open", "DEPLOY", {{"destination", "mcp:remote"}}));
  ASSERT_TRUE(open.decision.allowed()) << open.ToJson().dump();
  const std::string ref = "{{" + open.handle->id + "}}";
  SyscallResult r = Call("remote.deploy", {{"auth", "Bearer " + ref}, {"n", {ref}}});
  ASSERT_TRUE(r.decision.allowed()) << r.ToJson().dump();
  EXPECT_EQ(provider_->last_args["auth"], "Bearer dk_live_77aa88bb99cc");
  EXPECT_EQ(provider_->last_args["n"][0], "dk_live_77aa88bb99cc");
  for (const store::LogRow& row : h_.Rows())
    EXPECT_EQ(row.canonical.find("dk_live_77aa88bb99cc"), std::string::npos) << row.canonical;

  // Another server: a recorded deny before anything runs.
  provider_->destination = "mcp:elsewhere";
  SyscallResult other = Call("remote.deploy", {{"auth", ref}});
  EXPECT_EQ(other.decision.reason, Reason::kSecretNotAllowed) << other.ToJson().dump();
  EXPECT_EQ(other.decision.stage, "resolve");
  provider_->destination = "mcp:ci-runner";  // matches the "mcp:ci-*" glob
  EXPECT_TRUE(Call("remote.deploy", {{"auth", ref}}).decision.allowed());
  // A provider naming no destination takes no secrets.
  provider_->destination = "";
  EXPECT_EQ(Call("remote.deploy", {{"auth", ref}}).decision.reason, Reason::kSecretNotAllowed);
  EXPECT_EQ(provider_->invokes, 2);

  // A secret whose policy lists no MCP destination, and a handle of another run.
  provider_->destination = "mcp:remote";
  SyscallResult token = h_.Exec(::custos::testing::CallJson("a", "secret.open", "TOKEN"));
  ASSERT_TRUE(token.decision.allowed()) << token.ToJson().dump();
  EXPECT_EQ(Call("remote.deploy", {{"auth", "{{" + token.handle->id + "}}"}}).decision.reason,
            Reason::kSecretNotAllowed);
  SyscallResult foreign = h_.Exec(::custos::testing::CallJson(
      "a", "tool.invoke", "remote.deploy", {{"arguments", {{"auth", ref}}}}, {}, "run-2"));
  EXPECT_EQ(foreign.decision.reason, Reason::kForeignHandle);
  EXPECT_EQ(provider_->invokes, 2);
}

TEST_F(ToolProviderTest, OutputLabelsFlowIntoLaterCallsThroughInputs) {
  SyscallResult first = Call("remote.read");
  ASSERT_TRUE(first.handle.has_value());
  SyscallResult w = Call("remote.write", Json::object(), {first.handle->id});
  EXPECT_EQ(w.decision.reason, Reason::kFlowViolation);
  EXPECT_EQ(provider_->invokes, 1);
  EXPECT_TRUE(Call("remote.write").decision.allowed());
}

TEST_F(ToolProviderTest, PrefixesMustBeWellFormedAndDisjoint) {
  EXPECT_THAT(h_.kernel().RegisterToolProvider("remote.", provider_),
              StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(h_.kernel().RegisterToolProvider("remote.sub.", provider_),
              StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(h_.kernel().RegisterToolProvider("nodot", provider_),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(h_.kernel().UnregisterToolProvider("remote."), StatusIs(Reason::kOk));
  // Unregistered: the policy has no command for it, so the effect fails and nothing is invoked.
  EXPECT_FALSE(Call("remote.read").decision.allowed());
  EXPECT_EQ(provider_->invokes, 0);
  EXPECT_THAT(h_.kernel().UnregisterToolProvider("remote."), StatusIs(Reason::kNotFound));
}

TEST_F(ToolProviderTest, EventsAreRecordedRedacted) {
  ASSERT_THAT(h_.kernel().RecordEvent("mcp.test", {{"note", "sk_test_4f9a8b7c6d5e leaked"}}),
              StatusIs(Reason::kOk));
  ASSERT_TRUE(h_.kernel().Commit().ok());
  bool found = false;
  for (const store::LogRow& r : h_.Rows()) {
    if (r.canonical.find("mcp.test") == std::string::npos)
      continue;
    found = true;
    EXPECT_EQ(r.canonical.find("sk_test_4f9a8b7c6d5e"), std::string::npos);
    EXPECT_NE(r.canonical.find("[redacted:TOKEN]"), std::string::npos);
  }
  EXPECT_TRUE(found);
}

TEST_F(ToolProviderTest, RedactSecretsRedactsEveryStringKeysIncluded) {
  const Json in = {{"msg", "token sk_test_4f9a8b7c6d5e"},
                   {"sk_test_4f9a8b7c6d5e", {1, "x sk_test_4f9a8b7c6d5e"}},
                   {"n", 7}};
  const Json out = h_.kernel().RedactSecrets(in);
  EXPECT_EQ(out.dump().find("sk_test_4f9a8b7c6d5e"), std::string::npos);
  EXPECT_EQ(out["msg"], "token [redacted:TOKEN]");
  ASSERT_TRUE(out.contains("[redacted:TOKEN]"));
  EXPECT_EQ(out["[redacted:TOKEN]"][0], 1);
  EXPECT_EQ(out["[redacted:TOKEN]"][1], "x [redacted:TOKEN]");
  EXPECT_EQ(out["n"], 7);
  EXPECT_EQ(h_.kernel().RedactSecrets("plain"), "plain");
}

}  // namespace
}  // namespace custos::kernel
