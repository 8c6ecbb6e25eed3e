// AccessTokenVerifier's JWKS fetching (jwks_url): the first fetch, rotation, rate limiting of
// refetches for unknown kids, refresh of stale keys, failures. A fake fetcher and explicit
// clock values keep every case deterministic; HttpGet against a real loopback server is covered
// at the end.

#include "custos/mcp/access_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "custos/mcp/http_get.h"
#include "testing/fake_http_server.h"

namespace custos::mcp {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'800'000'000;  // Unix seconds: the tests' clock

struct Ed25519 {
  Ed25519() { crypto_sign_keypair(pk, sk); }
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  Json Jwk(const std::string& kid) const {
    return {{"kty", "OKP"},
            {"crv", "Ed25519"},
            {"kid", kid},
            {"x", Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(pk), 32))}};
  }
  std::string Sign(const std::string& kid, int64_t now) const {
    const Json h = {{"alg", "EdDSA"}, {"kid", kid}};
    const Json c = {{"iss", "https://issuer.example"},
                    {"aud", "http://127.0.0.1:7310/mcp"},
                    {"sub", "alice"},
                    {"exp", now + 300}};
    const std::string input = Base64UrlEncode(h.dump()) + "." + Base64UrlEncode(c.dump());
    unsigned char s[crypto_sign_BYTES];
    crypto_sign_detached(s, nullptr, reinterpret_cast<const unsigned char*>(input.data()),
                         input.size(), sk);
    return input + "." + Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(s), 64));
  }
};

class JwksFetchTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }

  AccessTokenVerifier Make() {
    AccessTokenConfig c;
    c.resource = "http://127.0.0.1:7310/mcp";
    c.issuer = "https://issuer.example";
    c.fetch_jwks = [this]() -> Result<std::string> {
      ++fetches_;
      if (!fail_.empty())
        return Status(Reason::kMcpServerUnavailable, fail_);
      return jwks_.dump();
    };
    c.refresh_s = 3600;
    c.retry_s = 30;
    Result<AccessTokenVerifier> v = AccessTokenVerifier::Create(std::move(c), kT0);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return std::move(v).value();
  }

  Json jwks_ = Json::object();
  std::string fail_;
  int fetches_ = 0;
  Ed25519 one_, two_;
};

TEST_F(JwksFetchTest, KeysAreFetchedAtStartAndARotationIsPickedUp) {
  jwks_ = {{"keys", {one_.Jwk("k1")}}};
  AccessTokenVerifier v = Make();
  EXPECT_EQ(fetches_, 1);
  Result<AccessToken> t = v.Verify(one_.Sign("k1", kT0), kT0);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->subject, "alice");
  EXPECT_EQ(fetches_, 1) << "a known key needs no fetch";

  // The issuer rotates to k2: a token under k2 makes the verifier fetch again (once the retry
  // interval since the last fetch has passed), and k1 is gone with the old set.
  jwks_ = {{"keys", {two_.Jwk("k2")}}};
  EXPECT_TRUE(v.Verify(two_.Sign("k2", kT0 + 31), kT0 + 31).ok());
  EXPECT_EQ(fetches_, 2);
  Result<AccessToken> old = v.Verify(one_.Sign("k1", kT0 + 31), kT0 + 31);
  EXPECT_EQ(old.status().reason(), Reason::kMcpTokenInvalid);
}

TEST_F(JwksFetchTest, UnknownKidsDoNotMakeTheVerifierHammerTheIssuer) {
  jwks_ = {{"keys", {one_.Jwk("k1")}}};
  AccessTokenVerifier v = Make();
  for (int i = 0; i < 100; ++i) {
    Result<AccessToken> t = v.Verify(two_.Sign("made-up-" + std::to_string(i), kT0 + 40), kT0 + 40);
    EXPECT_EQ(t.status().reason(), Reason::kMcpTokenInvalid);
  }
  EXPECT_EQ(fetches_, 2) << "one refetch per retry interval, however many unknown kids";
  EXPECT_FALSE(v.Verify(two_.Sign("made-up", kT0 + 80), kT0 + 80).ok());
  EXPECT_EQ(fetches_, 3);
}

TEST_F(JwksFetchTest, StaleKeysAreRefreshedSoARemovedKeyStopsVerifying) {
  jwks_ = {{"keys", {one_.Jwk("k1"), two_.Jwk("k2")}}};
  AccessTokenVerifier v = Make();
  EXPECT_TRUE(v.Verify(two_.Sign("k2", kT0 + 100), kT0 + 100).ok());
  jwks_ = {{"keys", {one_.Jwk("k1")}}};  // k2 withdrawn (compromised)
  EXPECT_TRUE(v.Verify(two_.Sign("k2", kT0 + 200), kT0 + 200).ok()) << "not refreshed yet";
  EXPECT_EQ(fetches_, 1);
  EXPECT_FALSE(v.Verify(two_.Sign("k2", kT0 + 3600), kT0 + 3600).ok());
  EXPECT_EQ(fetches_, 2);
  EXPECT_TRUE(v.Verify(one_.Sign("k1", kT0 + 3601), kT0 + 3601).ok());
}

TEST_F(JwksFetchTest, AFailedFetchRefusesTokensNamingWhyAndIsRetriedLater) {
  fail_ = "issuer down";
  AccessTokenVerifier v = Make();
  Result<AccessToken> t = v.Verify(one_.Sign("k1", kT0), kT0);
  EXPECT_EQ(t.status().reason(), Reason::kMcpTokenInvalid);
  EXPECT_THAT(t.status().message(), HasSubstr("issuer down"));
  fail_.clear();
  jwks_ = {{"keys", {one_.Jwk("k1")}}};
  EXPECT_TRUE(v.Verify(one_.Sign("k1", kT0 + 30), kT0 + 30).ok());
  // A later failure keeps the keys that were fetched.
  fail_ = "issuer down again";
  EXPECT_TRUE(v.Verify(one_.Sign("k1", kT0 + 4000), kT0 + 4000).ok());
}

TEST_F(JwksFetchTest, AFetchedSetSkipsKeyTypesItCannotUseButAFileMayNot) {
  const Json rsa = {{"kty", "RSA"}, {"kid", "r1"}, {"n", "AQAB"}, {"e", "AQAB"}};
  jwks_ = {{"keys", {rsa, one_.Jwk("k1")}}};
  AccessTokenVerifier v = Make();
  EXPECT_TRUE(v.Verify(one_.Sign("k1", kT0), kT0).ok());

  AccessTokenConfig file;
  file.resource = "http://127.0.0.1:7310/mcp";
  file.issuer = "https://issuer.example";
  file.jwks = jwks_;
  Result<AccessTokenVerifier> f = AccessTokenVerifier::Create(std::move(file), kT0);
  EXPECT_EQ(f.status().reason(), Reason::kMcpConfigError);
  EXPECT_THAT(f.status().message(), HasSubstr("r1"));
}

TEST(HttpGetTest, FetchesA200BodyAndRefusesRedirectsErrorsAndOversizeBodies) {
  testing::FakeHttpServer server([](const testing::HttpExchange& req) {
    testing::CannedResponse r;
    if (req.target == "/jwks") {
      r.body = R"({"keys":[]})";
    } else if (req.target == "/moved") {
      r.status = 302;
      r.headers = "Location: /jwks\r\n";
    } else if (req.target == "/big") {
      r.body = std::string(2048, 'x');
    } else {
      r.status = 404;
    }
    return r;
  });
  Result<std::string> ok = HttpGet(server.url("/jwks"), 1024, 5000);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, R"({"keys":[]})");
  EXPECT_THAT(HttpGet(server.url("/moved"), 1024, 5000).status().message(), HasSubstr("HTTP 302"));
  EXPECT_THAT(HttpGet(server.url("/nope"), 1024, 5000).status().message(), HasSubstr("HTTP 404"));
  EXPECT_THAT(HttpGet(server.url("/big"), 1024, 5000).status().message(),
              HasSubstr("over 1024 bytes"));
}

}  // namespace
}  // namespace custos::mcp
