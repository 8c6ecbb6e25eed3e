// Signed requests (decision 022): an agent's Ed25519 key over the canonical request, with a
// bounded clock skew and a replay cache; each failure is a distinct 401 reason.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "custos/core/clock.h"
#include "custos/core/encoding.h"
#include "custos/crypto/keys.h"
#include "server/server_fixture.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

int64_t NowSeconds() { return SystemClock().NowMillis() / 1000; }

std::string Alloc(const std::string& name) {
  return Json{
      {"run", "run-1"}, {"kind", "memory.alloc"}, {"target", name}, {"args", {{"value", 1}}}}
      .dump();
}

// The Custos-* header lines for one request signed by `key` as `agent`.
std::string SignedHeaderLines(const crypto::SigningKey& key, const std::string& agent,
                              const std::string& method, const std::string& target,
                              const std::string& body, int64_t ts, const std::string& nonce) {
  const std::string canonical =
      server::CanonicalRequest(method, target, agent, std::to_string(ts), nonce, body);
  crypto::Signature sig =
      key.Sign(crypto::SignContext::kSignedRequest,
               std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(canonical.data()),
                                        canonical.size()))
          .value();
  return "Custos-Agent: " + agent + "\r\nCustos-Timestamp: " + std::to_string(ts) +
         "\r\nCustos-Nonce: " + nonce + "\r\nCustos-Signature: " + HexEncode(sig.bytes) + "\r\n";
}

class SignedRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(s_.Start(s_.kernel().Spec()));
    key_.emplace(crypto::SigningKey::Generate().value());
    Result<std::string> id =
        server::AddAgentKey(s_.data_dir(), "worker", HexEncode(key_->verifying_key().bytes()));
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(*id, key_->id().hex);
    ASSERT_TRUE(s_.api().Reload().ok());
  }
  HttpReply Send(const std::string& method, const std::string& target, const std::string& body,
                 const std::string& header_lines) {
    RawConnection c = s_.Tcp();
    return c.Call(method, target, body, header_lines);
  }

  ServerHarness s_;
  std::optional<crypto::SigningKey> key_;
};

TEST_F(SignedRequestTest, AValidSignatureAuthenticatesTheAgentOnce) {
  const std::string body = Alloc("signed");
  const std::string h = SignedHeaderLines(*key_, "worker", "POST", "/v1/syscall", body,
                                          NowSeconds(), "nonce-0000000000000001");
  HttpReply r = Send("POST", "/v1/syscall", body, h);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow");
  // The same bytes again: a replay.
  r = Send("POST", "/v1/syscall", body, h);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorReason(r), "nonce_replayed");
  // A GET with a query is signed over path and query.
  r = Send("GET", "/v1/budgets?run=run-1", "",
           SignedHeaderLines(*key_, "worker", "GET", "/v1/budgets?run=run-1", "", NowSeconds(),
                             "nonce-0000000000000002"));
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(SignedRequestTest, EachFailureHasItsOwnReason) {
  const std::string body = Alloc("x");
  const int64_t now = NowSeconds();
  // Body changed after signing.
  HttpReply r = Send("POST", "/v1/syscall", Alloc("y"),
                     SignedHeaderLines(*key_, "worker", "POST", "/v1/syscall", body, now,
                                       "nonce-tampered-body-01"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorReason(r), "signature_invalid");
  // Signed for another path.
  r = Send("POST", "/v1/syscall", body,
           SignedHeaderLines(*key_, "worker", "POST", "/v1/explain", body, now,
                             "nonce-other-path-0001"));
  EXPECT_EQ(ErrorReason(r), "signature_invalid");
  // Another key claiming to be worker.
  crypto::SigningKey other = crypto::SigningKey::Generate().value();
  r = Send("POST", "/v1/syscall", body,
           SignedHeaderLines(other, "worker", "POST", "/v1/syscall", body, now,
                             "nonce-other-key-00001"));
  EXPECT_EQ(ErrorReason(r), "signature_invalid");
  // Stale and future timestamps.
  r = Send("POST", "/v1/syscall", body,
           SignedHeaderLines(*key_, "worker", "POST", "/v1/syscall", body, now - 120,
                             "nonce-stale-000000001"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorReason(r), "signature_stale");
  r = Send("POST", "/v1/syscall", body,
           SignedHeaderLines(*key_, "worker", "POST", "/v1/syscall", body, now + 120,
                             "nonce-future-00000001"));
  EXPECT_EQ(ErrorReason(r), "signature_stale");
  // An agent with no registered key.
  r = Send("POST", "/v1/syscall", body,
           SignedHeaderLines(*key_, "reader", "POST", "/v1/syscall", body, now,
                             "nonce-unknown-agent-1"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorReason(r), "unknown_agent_key");
  // A missing header, and a short nonce.
  r = Send("POST", "/v1/syscall", body, "Custos-Agent: worker\r\n");
  EXPECT_EQ(ErrorReason(r), "signature_invalid");
  EXPECT_THAT(BodyJson(r)["error"]["at"].get<std::string>(), HasSubstr("/headers/custos-"));
  r = Send("POST", "/v1/syscall", body,
           SignedHeaderLines(*key_, "worker", "POST", "/v1/syscall", body, now, "short"));
  EXPECT_EQ(ErrorReason(r), "signature_invalid");
  // Refusals are counted like other authentication failures.
  EXPECT_THAT(s_.metrics().Render(true, 0),
              HasSubstr("custos_http_responses_total{route=\"/v1/syscall\",code=\"401\"} 8"));
}

TEST_F(SignedRequestTest, ASignedAgentMayOnlyActAsItself) {
  Json call = BodyJson(HttpReply{200, {}, Alloc("z")});
  call["agent"] = "reader";
  const std::string body = call.dump();
  HttpReply r = Send("POST", "/v1/syscall", body,
                     SignedHeaderLines(*key_, "worker", "POST", "/v1/syscall", body, NowSeconds(),
                                       "nonce-identity-000001"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorReason(r), "identity_mismatch");
}

TEST(ReplayCacheTest, BoundedAndForgetsNoncesOutsideTheWindow) {
  server::ReplayCache c(2);
  const int64_t now = 1'000'000;
  EXPECT_TRUE(c.Admit("a", "n1", now, now).ok());
  EXPECT_EQ(c.Admit("a", "n1", now, now).reason(), Reason::kNonceReplayed);
  EXPECT_TRUE(c.Admit("b", "n1", now, now).ok());                          // per agent
  EXPECT_EQ(c.Admit("a", "n2", now, now).reason(), Reason::kUnavailable);  // full: fail closed
  // Once the timestamps can no longer pass the skew check, their nonces are dropped.
  const int64_t later = now + server::kSignatureSkewSeconds + 1;
  EXPECT_TRUE(c.Admit("a", "n2", later, later).ok());
  EXPECT_EQ(c.size(), 1u);
}

TEST(AgentKeyTest, BadKeysAndAWritableKeyFileAreRefused) {
  TempDir d;
  EXPECT_EQ(server::AddAgentKey(d.path(), "a", "abcd").status().reason(), Reason::kInvalidArgument);
  EXPECT_EQ(server::AddAgentKey(d.path(), "a b", std::string(64, '1')).status().reason(),
            Reason::kInvalidArgument);
  crypto::SigningKey k = crypto::SigningKey::Generate().value();
  ASSERT_TRUE(server::AddAgentKey(d.path(), "a", HexEncode(k.verifying_key().bytes())).ok());
  struct stat st {};
  ASSERT_EQ(::stat((d.path() / "agent_keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<server::Authenticator> a = server::Authenticator::Load(d.path(), {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->agent_key_count(), 1u);
  ASSERT_EQ(::chmod((d.path() / "agent_keys").c_str(), 0620), 0);
  EXPECT_EQ(server::Authenticator::Load(d.path(), {}).status().reason(), Reason::kKeyError);
}

}  // namespace
}  // namespace custos::testing
