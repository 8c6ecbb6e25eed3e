#include <gtest/gtest.h>

#include "policy/net_internal.h"
#include "testing/matchers.h"

namespace custos::policy::internal {
namespace {

using custos::testing::IsOk;
using custos::testing::StatusIs;

IpAddress Ip(std::string_view s) {
  IpAddress ip;
  EXPECT_TRUE(ParseIp(s, &ip)) << s;
  return ip;
}

TEST(IpAddressTest, ParsesV4V6AndBrackets) {
  IpAddress ip;
  EXPECT_TRUE(ParseIp("192.0.2.1", &ip));
  EXPECT_TRUE(ip.v4);
  EXPECT_TRUE(ParseIp("[2001:db8::1]", &ip));
  EXPECT_FALSE(ip.v4);
  for (std::string_view bad : {"", "1.2.3", "1.2.3.256", "01.2.3.4", "127.1", "0x7f.0.0.1",
                               "2130706433", "fe80::1%eth0", "::g", "[::1", "1.2.3.4 "}) {
    EXPECT_FALSE(ParseIp(bad, &ip)) << bad;
  }
}

TEST(IpAddressTest, MappedV6IsStoredAsV4) {
  EXPECT_EQ(Ip("::ffff:127.0.0.1"), Ip("127.0.0.1"));
  EXPECT_EQ(FormatIp(Ip("::ffff:10.1.2.3")), "10.1.2.3");
  EXPECT_EQ(FormatIp(Ip("2001:db8:0::1")), "2001:db8::1");
}

TEST(IpAddressTest, PrefixMatching) {
  EXPECT_TRUE(IpInPrefix(Ip("10.20.3.4"), Ip("10.20.0.0"), 16));
  EXPECT_FALSE(IpInPrefix(Ip("10.21.3.4"), Ip("10.20.0.0"), 16));
  EXPECT_TRUE(IpInPrefix(Ip("172.31.255.255"), Ip("172.16.0.0"), 12));
  EXPECT_FALSE(IpInPrefix(Ip("172.32.0.0"), Ip("172.16.0.0"), 12));
  EXPECT_TRUE(IpInPrefix(Ip("1.2.3.4"), Ip("0.0.0.0"), 0));
  EXPECT_FALSE(IpInPrefix(Ip("::1"), Ip("0.0.0.0"), 0));  // families never mix
  EXPECT_TRUE(IpInPrefix(Ip("fe80::1234"), Ip("fe80::"), 10));
  EXPECT_TRUE(IpInPrefix(Ip("febf::1"), Ip("fe80::"), 10));
  EXPECT_FALSE(IpInPrefix(Ip("fec0::1"), Ip("fe80::"), 10));
}

TEST(IpAddressTest, PublicAddresses) {
  for (std::string_view pub : {"8.8.8.8", "140.82.112.5", "1.1.1.1", "2606:4700::1111",
                               "2a00:1450:4001::200e", "64:ff9b::808:808", "2002:808:808::1"}) {
    EXPECT_TRUE(IsPublicAddress(Ip(pub))) << pub;
  }
  for (std::string_view priv : {"0.0.0.0",
                                "10.0.0.1",
                                "100.64.0.1",
                                "127.0.0.1",
                                "169.254.169.254",
                                "172.16.0.1",
                                "192.0.0.192",
                                "192.0.2.1",
                                "192.168.0.1",
                                "198.18.0.1",
                                "198.51.100.1",
                                "203.0.113.1",
                                "224.0.0.1",
                                "240.0.0.1",
                                "255.255.255.255",
                                "::",
                                "::1",
                                "fc00::1",
                                "fd00:ec2::254",
                                "fe80::1",
                                "ff02::1",
                                "2001:db8::1",
                                "2001:0::1",
                                "64:ff9b::7f00:1",
                                "2002:a00:1::1",
                                "::ffff:10.0.0.1",
                                "100::1"}) {
    EXPECT_FALSE(IsPublicAddress(Ip(priv))) << priv;
  }
}

TEST(IpAddressTest, SpecialAddresses) {
  EXPECT_EQ(SpecialAddressClass(Ip("169.254.169.254")), "link-local");
  EXPECT_EQ(SpecialAddressClass(Ip("fe80::1")), "link-local");
  EXPECT_EQ(SpecialAddressClass(Ip("100.100.100.200")), "cloud metadata");
  EXPECT_EQ(SpecialAddressClass(Ip("fd00:ec2::254")), "cloud metadata");
  EXPECT_EQ(SpecialAddressClass(Ip("0.0.0.0")), "unspecified");
  EXPECT_EQ(SpecialAddressClass(Ip("::")), "unspecified");
  EXPECT_EQ(SpecialAddressClass(Ip("239.1.1.1")), "multicast");
  EXPECT_EQ(SpecialAddressClass(Ip("ff05::2")), "multicast");
  EXPECT_EQ(SpecialAddressClass(Ip("255.255.255.255")), "broadcast");
  EXPECT_EQ(SpecialAddressClass(Ip("64:ff9b::a9fe:a9fe")),
            "link-local");  // NAT64 of 169.254.169.254
  EXPECT_FALSE(IsSpecialAddress(Ip("10.0.0.1")));
  EXPECT_FALSE(IsSpecialAddress(Ip("127.0.0.1")));
  EXPECT_FALSE(IsSpecialAddress(Ip("8.8.8.8")));
}

TEST(HostPatternTest, KindsAndMatching) {
  auto m = [](std::string_view pattern, std::string_view host) {
    Result<HostPattern> p = HostPattern::Parse(pattern);
    EXPECT_THAT(p, IsOk()) << pattern;
    return p.ok() && p->MatchesHost(MakeHostInfo(host));
  };
  EXPECT_TRUE(m("*", "anything.example"));
  EXPECT_TRUE(m("*", "10.0.0.1"));
  EXPECT_FALSE(m("*", ""));
  EXPECT_TRUE(m("Example.COM", "example.com"));
  EXPECT_TRUE(m("example.com", "EXAMPLE.com."));
  EXPECT_FALSE(m("example.com", "www.example.com"));
  EXPECT_TRUE(m("*.example.com", "a.example.com"));
  EXPECT_TRUE(m("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(m("*.example.com", "example.com"));
  EXPECT_FALSE(m("*.example.com", "badexample.com"));
  EXPECT_TRUE(m("127.0.0.1", "127.0.0.1"));
  EXPECT_TRUE(m("127.0.0.1", "::ffff:127.0.0.1"));
  EXPECT_FALSE(m("127.0.0.1", "localhost"));
  EXPECT_TRUE(m("::1", "[::1]"));
  EXPECT_TRUE(m("[::1]", "0::1"));
  EXPECT_TRUE(m("10.0.0.0/8", "10.255.0.1"));
  EXPECT_FALSE(m("10.0.0.0/8", "11.0.0.1"));
  EXPECT_FALSE(m("10.0.0.0/8", "ten.example"));
  EXPECT_TRUE(m("fd00::/8", "fdff::1"));
  EXPECT_TRUE(m("::ffff:10.0.0.0/104", "10.3.3.3"));
  EXPECT_FALSE(m("example.com", "10.0.0.1"));
}

TEST(HostPatternTest, CoversAddressOnlyForIpPatterns) {
  EXPECT_TRUE(HostPattern::Parse("10.0.0.0/8")->CoversAddress(Ip("10.1.1.1")));
  EXPECT_TRUE(HostPattern::Parse("10.1.1.1")->CoversAddress(Ip("10.1.1.1")));
  EXPECT_FALSE(HostPattern::Parse("10.1.1.1")->CoversAddress(Ip("10.1.1.2")));
  EXPECT_FALSE(HostPattern::Parse("*")->CoversAddress(Ip("10.1.1.1")));
  EXPECT_FALSE(HostPattern::Parse("*.example.com")->CoversAddress(Ip("10.1.1.1")));
}

TEST(HostPatternTest, RejectsMalformedPatterns) {
  for (std::string_view bad : {"", "a.*.b", "*.", "*.*.com", "ex ample.com", "a..b", ".a", "a.",
                               "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "x/8", "::1/129",
                               "::ffff:10.0.0.0/8", "1.2.3", "[::1", "::g"}) {
    EXPECT_THAT(HostPattern::Parse(bad), StatusIs(Reason::kPolicyBadPattern)) << bad;
  }
  EXPECT_THAT(HostPattern::Parse(std::string(64, 'a') + ".com"),
              StatusIs(Reason::kPolicyBadPattern));
}

TEST(EndpointTest, ParsesPortsAndBrackets) {
  Result<Endpoint> e = Endpoint::Parse("API.example.com:443", true);
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->text(), "api.example.com:443");
  EXPECT_TRUE(e->Matches(MakeHostInfo("api.example.com"), 443));
  EXPECT_FALSE(e->Matches(MakeHostInfo("api.example.com"), 444));
  Result<Endpoint> any = Endpoint::Parse("[fd00::/8]:*", true);
  ASSERT_THAT(any, IsOk());
  EXPECT_TRUE(any->Matches(MakeHostInfo("fd00::1"), 1));
  EXPECT_TRUE(any->Matches(MakeHostInfo("[fd00::1]"), 65535));
  Result<Endpoint> noport = Endpoint::Parse("evil.example", false);
  ASSERT_THAT(noport, IsOk());
  EXPECT_TRUE(noport->Matches(MakeHostInfo("evil.example"), 80));
  EXPECT_THAT(Endpoint::Parse("evil.example", true), StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(Endpoint::Parse("::1:80", false), StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(Endpoint::Parse("[::1]:080", true), StatusIs(Reason::kPolicyBadPattern));
}

TEST(EndpointTest, SplitHostPort) {
  std::string_view host;
  uint16_t port = 0;
  EXPECT_TRUE(SplitHostPort("api.x.com:443", &host, &port));
  EXPECT_EQ(host, "api.x.com");
  EXPECT_EQ(port, 443);
  EXPECT_TRUE(SplitHostPort("[::1]:8080", &host, &port));
  EXPECT_EQ(host, "[::1]");
  EXPECT_EQ(port, 8080);
  for (std::string_view bad :
       {"api.x.com", "::1:80", "[::1]", "[::1]80", ":80", "h:", "h:99999", "h:-1"}) {
    EXPECT_FALSE(SplitHostPort(bad, &host, &port)) << bad;
  }
  EXPECT_EQ(FormatEndpoint("::1", 80), "[::1]:80");
  EXPECT_EQ(FormatEndpoint("[::1]", 80), "[::1]:80");
  EXPECT_EQ(FormatEndpoint("a.b", 443), "a.b:443");
}

}  // namespace
}  // namespace custos::policy::internal
