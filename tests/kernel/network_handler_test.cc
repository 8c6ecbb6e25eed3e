// network.send and secret.open through the whole kernel, against loopback servers on port 0.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "custos/crypto/random.h"
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
using ::custos::testing::PolicySpec;
using ::custos::testing::RedirectHandler;
using ::custos::testing::SecretEnvName;
using ::custos::testing::TextHandler;
using ::testing::HasSubstr;
using ::testing::Not;

class NetworkSendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PolicySpec spec = h_.Spec();
    spec.connect = {allowed_.host_port(), hopper_.host_port()};
    ASSERT_TRUE(h_.Open(spec));
  }

  FakeHttpServer allowed_{EchoHandler()};
  FakeHttpServer elsewhere_{TextHandler("you should never see this")};
  // /hop redirects to the allowed server, /away to a host the policy does not allow.
  FakeHttpServer hopper_{[this](const HttpExchange& req) {
    CannedResponse r;
    r.status = 302;
    r.headers = "Location: " +
                (req.target == "/hop" ? allowed_.url("/landed") : elsewhere_.url("/collect")) +
                "\r\n";
    return r;
  }};
  KernelHarness h_;
};

TEST_F(NetworkSendTest, AllowedLoopbackServerAnswersAndTheResultIsUntrusted) {
  SyscallResult r = h_.Worker("network.send", allowed_.url("/page?q=1"));
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.rule, "net.connect");
  EXPECT_EQ(r.frame["status"], 200);
  EXPECT_THAT(r.frame["text"].get<std::string>(), HasSubstr("GET\n"));
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->kind, "http");
  EXPECT_EQ(r.handle->labels.integrity(), labels::Integrity::kUntrusted);
  EXPECT_TRUE(r.handle->labels.HasTag("source:127.0.0.1"));
  ASSERT_EQ(allowed_.request_count(), 1u);
  EXPECT_EQ(allowed_.requests()[0].target, "/page?q=1");
  EXPECT_GT(r.usage[budget::Resource::kNetBytesOut], 0);
}

TEST_F(NetworkSendTest, PostBodyReachesTheServer) {
  SyscallResult r =
      h_.Worker("network.send", allowed_.url("/submit"),
                {{"method", "POST"}, {"body", "name=custos"}, {"headers", {{"X-Test", "yes"}}}});
  ASSERT_THAT(r, IsAllowed());
  ASSERT_EQ(allowed_.request_count(), 1u);
  const HttpExchange got = allowed_.requests()[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.body, "name=custos");
  EXPECT_THAT(got.head, HasSubstr("X-Test: yes"));
}

TEST_F(NetworkSendTest, BodyMayComeFromInputHandles) {
  SyscallResult page = h_.Worker("network.send", allowed_.url("/first"));
  ASSERT_THAT(page, IsAllowed());
  SyscallResult r =
      h_.Worker("network.send", allowed_.url("/second"), {{"method", "POST"}}, {page.handle->id});
  ASSERT_THAT(r, IsAllowed());
  ASSERT_EQ(allowed_.request_count(), 2u);
  EXPECT_THAT(allowed_.requests()[1].body, HasSubstr("GET\n"));
}

TEST_F(NetworkSendTest, HostNotInNetConnectIsDeniedAndNeverContacted) {
  SyscallResult r =
      h_.Worker("network.send", elsewhere_.url("/collect"), {{"method", "POST"}, {"body", "data"}});
  EXPECT_THAT(r, IsDenied(Reason::kHostNotAllowed, "policy"));
  EXPECT_EQ(r.decision.rule, "net.connect");
  EXPECT_FALSE(r.decision.suggestion.empty());
  EXPECT_EQ(elsewhere_.request_count(), 0u);
}

TEST_F(NetworkSendTest, CloudMetadataAddressIsDenied) {
  SyscallResult r = h_.Worker("network.send", "http://169.254.169.254/latest/meta-data/");
  EXPECT_THAT(r, IsDenied(Reason::kHostNotAllowed, "policy"));
}

TEST_F(NetworkSendTest, RedirectToAnAllowedHostIsFollowed) {
  SyscallResult r = h_.Worker("network.send", hopper_.url("/hop"));
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.frame["url"], allowed_.url("/landed"));
  ASSERT_EQ(allowed_.request_count(), 1u);
  EXPECT_EQ(allowed_.requests()[0].target, "/landed");
}

TEST_F(NetworkSendTest, RedirectFromAnAllowedHostToADeniedHostFails) {
  SyscallResult r = h_.Worker("network.send", hopper_.url("/away"));
  EXPECT_THAT(r, IsDenied(Reason::kRedirectDenied, "effect"));
  EXPECT_EQ(hopper_.request_count(), 1u);
  EXPECT_EQ(elsewhere_.request_count(), 0u);
  EXPECT_FALSE(r.handle.has_value());
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].type, "outcome");
  EXPECT_EQ(entries[1].reason, "redirect_denied");
}

TEST_F(NetworkSendTest, UnknownMethodIsASchemaViolation) {
  SyscallResult r = h_.Worker("network.send", allowed_.url("/x"), {{"method", "TRACE"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "resolve"));
  EXPECT_EQ(r.decision.at, "/args/method");
  EXPECT_EQ(allowed_.request_count(), 0u);
}

TEST_F(NetworkSendTest, NonStringHeaderValueIsASchemaViolation) {
  SyscallResult r = h_.Worker("network.send", allowed_.url("/x"), {{"headers", {{"X-N", 5}}}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "resolve"));
  EXPECT_EQ(r.decision.at, "/args/headers/X-N");
  EXPECT_EQ(allowed_.request_count(), 0u);
}

TEST_F(NetworkSendTest, HeadersThatAreNotAnObjectAreASchemaViolation) {
  SyscallResult r = h_.Worker("network.send", allowed_.url("/x"), {{"headers", "X: y"}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/headers");
}

TEST_F(NetworkSendTest, NonHttpUrlIsInvalid) {
  SyscallResult r = h_.Worker("network.send", "ftp://127.0.0.1/file");
  EXPECT_THAT(r, IsDenied(Reason::kInvalidArgument, "resolve"));
  EXPECT_EQ(r.decision.at, "/target");
}

TEST_F(NetworkSendTest, AgentWithoutTheCapabilityIsDenied) {
  SyscallResult r = h_.Exec("reader", "network.send", allowed_.url("/x"));
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_EQ(allowed_.request_count(), 0u);
}

TEST(NetworkSendAddressTest, MetadataAddressIsDeniedEvenUnderAWildcardConnect) {
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.connect = {"*:80"};
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("network.send", "http://169.254.169.254/latest/meta-data/");
  EXPECT_THAT(r, IsDenied(Reason::kAddressNotAllowed, "policy"));
}

TEST(NetworkSendBudgetTest, BytesOverTheBudgetAreRefusedBeforeSending) {
  FakeHttpServer server(EchoHandler());
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.connect = {server.host_port()};
  spec.worker_budget = "net_bytes_out = 600";
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("network.send", server.url("/upload"),
                             {{"method", "POST"}, {"body", std::string(2000, 'x')}});
  EXPECT_THAT(r, IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_EQ(server.request_count(), 0u);
}

class SecretOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = "sk-" + crypto::RandomId("t") + crypto::RandomId("u");
    ::setenv(SecretEnvName("api_key").c_str(), secret_.c_str(), 1);
    PolicySpec spec = h_.Spec();
    spec.connect = {api_.host_port(), other_.host_port()};
    spec.secret_names = {"api_key", "unset_key"};
    spec.secret_destinations = {api_.host_port()};
    ::unsetenv(SecretEnvName("unset_key").c_str());
    ASSERT_TRUE(h_.Open(spec));
  }
  void TearDown() override { ::unsetenv(SecretEnvName("api_key").c_str()); }

  std::string OpenHandle() {
    SyscallResult r = h_.Worker("secret.open", "api_key", {{"destination", api_.host_port()}});
    EXPECT_THAT(r, IsAllowed());
    return r.handle ? r.handle->id : "";
  }

  std::string secret_;
  FakeHttpServer api_{EchoHandler()};
  FakeHttpServer other_{EchoHandler()};
  KernelHarness h_;
};

TEST_F(SecretOpenTest, HandleCarriesNoSecretBytes) {
  SyscallResult r = h_.Worker("secret.open", "api_key", {{"destination", api_.host_port()}});
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.decision.rule, "secrets.api_key");
  ASSERT_TRUE(r.handle.has_value());
  EXPECT_EQ(r.handle->kind, "secret");
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kSecret);
  EXPECT_EQ(r.frame["handle"], r.handle->id);
  EXPECT_THAT(r.ToJson().dump(), Not(HasSubstr(secret_)));
}

TEST_F(SecretOpenTest, HandleInAHeaderTowardTheAllowedDestinationIsSubstituted) {
  const std::string handle = OpenHandle();
  SyscallResult r = h_.Worker("network.send", api_.url("/v1/me"),
                              {{"headers", {{"Authorization", "Bearer {{" + handle + "}}"}}}});
  ASSERT_THAT(r, IsAllowed());
  ASSERT_EQ(api_.request_count(), 1u);
  EXPECT_THAT(api_.requests()[0].head, HasSubstr("Authorization: Bearer " + secret_));
  // The server echoed the header back; the kernel must not hand the secret to the caller.
  EXPECT_THAT(r.ToJson().dump(), Not(HasSubstr(secret_)));
}

TEST_F(SecretOpenTest, HandleInAHeaderTowardAnotherDestinationIsDenied) {
  const std::string handle = OpenHandle();
  SyscallResult r = h_.Worker("network.send", other_.url("/steal"),
                              {{"headers", {{"Authorization", "Bearer {{" + handle + "}}"}}}});
  EXPECT_THAT(r, IsDenied(Reason::kSecretNotAllowed, "resolve"));
  EXPECT_EQ(other_.request_count(), 0u);
}

TEST_F(SecretOpenTest, HandleAsARequestBodyIsDenied) {
  const std::string handle = OpenHandle();
  SyscallResult r = h_.Worker("network.send", other_.url("/steal"), {{"method", "POST"}}, {handle});
  EXPECT_EQ(r.decision.verdict, Verdict::kDeny) << r.ToJson().dump();
  EXPECT_EQ(other_.request_count(), 0u);
}

TEST_F(SecretOpenTest, DestinationOutsideTheSecretsListIsDenied) {
  SyscallResult r = h_.Worker("secret.open", "api_key", {{"destination", "evil.example:443"}});
  EXPECT_THAT(r, IsDenied(Reason::kSecretNotAllowed, "policy"));
  EXPECT_EQ(r.decision.rule, "secrets.api_key");
  EXPECT_FALSE(r.handle.has_value());
}

TEST_F(SecretOpenTest, AgentNotInTheSecretsAgentsIsDenied) {
  SyscallResult r = h_.Exec("helper", "secret.open", "api_key");
  EXPECT_THAT(r, IsDenied(Reason::kSecretNotAllowed, "policy"));
}

TEST_F(SecretOpenTest, UndefinedSecretIsDenied) {
  SyscallResult r = h_.Worker("secret.open", "no_such_secret");
  EXPECT_THAT(r, IsDenied(Reason::kSecretNotAllowed, "policy"));
}

TEST_F(SecretOpenTest, SecretWithoutAValueFailsAtTheEffect) {
  SyscallResult r = h_.Worker("secret.open", "unset_key");
  EXPECT_THAT(r, IsDenied(Reason::kNotFound, "effect"));
}

TEST_F(SecretOpenTest, DestinationOfTheWrongTypeIsASchemaViolation) {
  SyscallResult r = h_.Worker("secret.open", "api_key", {{"destination", 443}});
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "schema"));
  EXPECT_EQ(r.decision.at, "/args/destination");
}

TEST_F(SecretOpenTest, SecretHandleCannotBeReadBack) {
  const std::string handle = OpenHandle();
  SyscallResult r = h_.Worker("context.read", handle);
  EXPECT_THAT(r, IsDenied(Reason::kSecretNotAllowed, "resolve"));
  EXPECT_THAT(r.ToJson().dump(), Not(HasSubstr(secret_)));
}

TEST_F(SecretOpenTest, AnotherAgentsSecretHandleIsForeign) {
  const std::string handle = OpenHandle();
  SyscallResult r = h_.Exec("helper", "network.send", api_.url("/v1/me"),
                            {{"headers", {{"Authorization", "Bearer {{" + handle + "}}"}}}});
  EXPECT_THAT(r, IsDenied(Reason::kForeignHandle, "resolve"));
  EXPECT_EQ(api_.request_count(), 0u);
}

}  // namespace
}  // namespace custos::kernel
