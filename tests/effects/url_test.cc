#include "custos/effects/url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "testing/matchers.h"

namespace custos::effects {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

TEST(ParseUrlTest, ParsesAndNormalisesAnHttpsUrl) {
  auto u = ParseUrl("HTTPS://API.Example.COM/v1/items?q=1&r=2#frag");
  ASSERT_THAT(u, IsOk());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path_and_query, "/v1/items?q=1&r=2");
  EXPECT_FALSE(u->host_is_ip);
  EXPECT_EQ(u->ToString(), "https://api.example.com/v1/items?q=1&r=2");
}

TEST(ParseUrlTest, DefaultsAndExplicitPorts) {
  auto u = ParseUrl("http://example.com");
  ASSERT_THAT(u, IsOk());
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->path_and_query, "/");
  auto v = ParseUrl("http://example.com:8080?x");
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->port, 8080);
  EXPECT_EQ(v->path_and_query, "/?x");
  EXPECT_EQ(v->ToString(), "http://example.com:8080/?x");
  auto w = ParseUrl("https://example.com:443/");
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(w->ToString(), "https://example.com/");
}

TEST(ParseUrlTest, IpLiterals) {
  auto v4 = ParseUrl("http://127.0.0.1:9/");
  ASSERT_THAT(v4, IsOk());
  EXPECT_TRUE(v4->host_is_ip);
  EXPECT_EQ(v4->host, "127.0.0.1");
  auto v6 = ParseUrl("http://[0:0:0:0:0:0:0:1]:8080/x");
  ASSERT_THAT(v6, IsOk());
  EXPECT_TRUE(v6->host_is_ip);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ToString(), "http://[::1]:8080/x");
  auto mapped = ParseUrl("http://[::FFFF:169.254.169.254]/");
  ASSERT_THAT(mapped, IsOk());
  EXPECT_EQ(mapped->host, "::ffff:169.254.169.254");
}

TEST(ParseUrlTest, RemovesDotSegments) {
  auto u = ParseUrl("http://h.test/a/b/../c/./d/..");
  ASSERT_THAT(u, IsOk());
  EXPECT_EQ(u->path_and_query, "/a/c/");
  auto v = ParseUrl("http://h.test/../../etc/passwd?x=/../y");
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->path_and_query, "/etc/passwd?x=/../y");
}

TEST(ParseUrlTest, NormalisesPercentEncoding) {
  auto u = ParseUrl("http://h.test/%7euser/%2f%41?a=%3d%7E&b={x}");
  ASSERT_THAT(u, IsOk());
  EXPECT_EQ(u->path_and_query, "/~user/%2FA?a=%3D~&b=%7Bx%7D");
}

TEST(ParseUrlTest, RejectsWhatItCannotNormalise) {
  const char* bad[] = {
      "ftp://example.com/",
      "file:///etc/passwd",
      "gopher://h/",
      "//example.com/",
      "example.com/path",
      "http://",
      "http:///path",
      "http://user:pw@example.com/",
      "http://user@example.com/",
      "http://example.com@evil.test/",
      "http://example.com:0/",
      "http://example.com:65536/",
      "http://example.com:/",
      "http://example.com:80a/",
      "http://example.com:-1/",
      "http://exa mple.com/",
      "http://example.com/a b",
      "http://example.com/\t",
      "http://example.com/\x7f",
      "http://ex\xc3\xa4mple.com/",
      "http://exa_mple.com/",
      "http://example.com./",
      "http://.example.com/",
      "http://example..com/",
      "http://-example.com/",
      "http://example-.com/",
      "http://127.1/",
      "http://2130706433/",
      "http://0x7f.0.0.1/",
      "http://0177.0.0.1/",
      "http://01.2.3.4/",
      "http://256.1.1.1/",
      "http://1.2.3.4.5/",
      "http://foo.0x1f/",
      "http://[fe80::1%25eth0]/",
      "http://[::1/",
      "http://[127.0.0.1]/",
      "http://[::1]x/",
      "http://example.com\\@evil.test/",
      "http://example.com/%zz",
      "http://example.com/%4",
      "http://example.com/%2e%2e/admin",
      "http://example.com/a/.%2E/admin",
      "http://example.com/%2e/x",
  };
  for (const char* b : bad) {
    EXPECT_THAT(ParseUrl(b), StatusIs(Reason::kInvalidArgument)) << b;
  }
}

TEST(ParseUrlTest, RejectsOverlongUrls) {
  EXPECT_THAT(ParseUrl("http://h.test/" + std::string(kMaxUrlBytes, 'a')),
              StatusIs(Reason::kInvalidArgument));
}

TEST(ParseUrlTest, AcceptsPunycodeAndLongLabels) {
  EXPECT_THAT(ParseUrl("https://xn--bcher-kva.example/"), IsOk());
  EXPECT_THAT(ParseUrl("https://" + std::string(63, 'a') + ".test/"), IsOk());
  EXPECT_THAT(ParseUrl("https://" + std::string(64, 'a') + ".test/"),
              StatusIs(Reason::kInvalidArgument));
}

TEST(ParseUrlTest, SameOriginComparesSchemeHostAndPort) {
  Url a = ParseUrl("https://h.test/a").value();
  EXPECT_TRUE(a.SameOrigin(ParseUrl("https://H.test:443/b").value()));
  EXPECT_FALSE(a.SameOrigin(ParseUrl("http://h.test/a").value()));
  EXPECT_FALSE(a.SameOrigin(ParseUrl("https://h.test:8443/a").value()));
  EXPECT_FALSE(a.SameOrigin(ParseUrl("https://g.test/a").value()));
}

TEST(ResolveReferenceTest, ResolvesRelativeForms) {
  Url base = ParseUrl("http://h.test:8080/a/b/c?q=1").value();
  EXPECT_EQ(ResolveReference(base, "d").value().ToString(), "http://h.test:8080/a/b/d");
  EXPECT_EQ(ResolveReference(base, "../d?x").value().ToString(), "http://h.test:8080/a/d?x");
  EXPECT_EQ(ResolveReference(base, "/root").value().ToString(), "http://h.test:8080/root");
  EXPECT_EQ(ResolveReference(base, "?z=2").value().ToString(), "http://h.test:8080/a/b/c?z=2");
  EXPECT_EQ(ResolveReference(base, "//other.test/p").value().ToString(), "http://other.test/p");
  EXPECT_EQ(ResolveReference(base, "HTTPS://x.test/y#f").value().ToString(), "https://x.test/y");
  EXPECT_EQ(ResolveReference(base, "").value().ToString(), "http://h.test:8080/a/b/c?q=1");
  EXPECT_EQ(ResolveReference(base, "../../../../x").value().ToString(), "http://h.test:8080/x");
}

TEST(ResolveReferenceTest, RejectsUnacceptableTargets) {
  Url base = ParseUrl("http://h.test/a").value();
  EXPECT_THAT(ResolveReference(base, "ftp://x.test/"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ResolveReference(base, "javascript:alert(1)"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ResolveReference(base, "//u:p@x.test/"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ResolveReference(base, "http://169.254.169.254.nip.io@x/"),
              StatusIs(Reason::kInvalidArgument));
}

TEST(CanonicalHostTest, ValidatesBareHosts) {
  EXPECT_EQ(CanonicalHost("Example.COM").value(), "example.com");
  EXPECT_EQ(CanonicalHost("2001:DB8::1").value(), "2001:db8::1");
  EXPECT_THAT(CanonicalHost("[::1]"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalHost("a b"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalHost(""), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos::effects
