#include "custos/effects/address.h"

#include <gtest/gtest.h>

namespace custos::effects {
namespace {

struct Case {
  const char* ip;
  AddressClass cls;
};

TEST(ClassifyAddressTest, ClassifiesIpv4) {
  const Case cases[] = {
      {"8.8.8.8", AddressClass::kPublic},           {"1.1.1.1", AddressClass::kPublic},
      {"127.0.0.1", AddressClass::kLoopback},       {"127.255.255.254", AddressClass::kLoopback},
      {"10.0.0.1", AddressClass::kPrivate},         {"172.16.0.1", AddressClass::kPrivate},
      {"172.31.255.255", AddressClass::kPrivate},   {"172.32.0.1", AddressClass::kPublic},
      {"192.168.1.1", AddressClass::kPrivate},      {"100.64.0.1", AddressClass::kPrivate},
      {"100.127.255.255", AddressClass::kPrivate},  {"100.128.0.1", AddressClass::kPublic},
      {"169.254.1.1", AddressClass::kLinkLocal},    {"169.254.169.254", AddressClass::kMetadata},
      {"169.254.170.2", AddressClass::kMetadata},   {"100.100.100.200", AddressClass::kMetadata},
      {"168.63.129.16", AddressClass::kMetadata},   {"192.0.0.192", AddressClass::kMetadata},
      {"0.0.0.0", AddressClass::kUnspecified},      {"0.1.2.3", AddressClass::kUnspecified},
      {"224.0.0.1", AddressClass::kMulticast},      {"239.255.255.250", AddressClass::kMulticast},
      {"255.255.255.255", AddressClass::kReserved}, {"240.0.0.1", AddressClass::kReserved},
      {"192.0.2.10", AddressClass::kReserved},      {"198.18.0.1", AddressClass::kReserved},
      {"203.0.113.7", AddressClass::kReserved},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClassifyAddress(c.ip), c.cls) << c.ip;
  }
}

TEST(ClassifyAddressTest, ClassifiesIpv6) {
  const Case cases[] = {
      {"2606:4700:4700::1111", AddressClass::kPublic},
      {"::1", AddressClass::kLoopback},
      {"0:0:0:0:0:0:0:1", AddressClass::kLoopback},
      {"::", AddressClass::kUnspecified},
      {"fe80::1", AddressClass::kLinkLocal},
      {"febf::1", AddressClass::kLinkLocal},
      {"fc00::1", AddressClass::kPrivate},
      {"fd12:3456::1", AddressClass::kPrivate},
      {"fec0::1", AddressClass::kPrivate},
      {"fd00:ec2::254", AddressClass::kMetadata},
      {"FD00:EC2:0::254", AddressClass::kMetadata},
      {"ff02::1", AddressClass::kMulticast},
      {"2001:db8::1", AddressClass::kReserved},
      {"2001:0:4136:e378:8000:63bf:3fff:fdd2", AddressClass::kReserved},
      {"100::1", AddressClass::kReserved},
      {"4000::1", AddressClass::kReserved},
      {"64:ff9b:1::1", AddressClass::kPrivate},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClassifyAddress(c.ip), c.cls) << c.ip;
  }
}

TEST(ClassifyAddressTest, EmbeddedIpv4IsClassifiedAsIpv4) {
  const Case cases[] = {
      {"::ffff:127.0.0.1", AddressClass::kLoopback},
      {"::ffff:7f00:1", AddressClass::kLoopback},
      {"::ffff:169.254.169.254", AddressClass::kMetadata},
      {"::ffff:10.1.2.3", AddressClass::kPrivate},
      {"::ffff:8.8.8.8", AddressClass::kPublic},
      {"::127.0.0.1", AddressClass::kLoopback},
      {"64:ff9b::169.254.169.254", AddressClass::kMetadata},
      {"64:ff9b::8.8.8.8", AddressClass::kPublic},
      {"2002:a9fe:a9fe::1", AddressClass::kMetadata},
      {"2002:7f00:1::", AddressClass::kLoopback},
      {"2002:808:808::1", AddressClass::kPublic},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClassifyAddress(c.ip), c.cls) << c.ip;
  }
}

TEST(ClassifyAddressTest, NonAddressesAreInvalid) {
  const char* bad[] = {"",          "localhost",  "1.2.3",      "1.2.3.4.5", "01.2.3.4",
                       "256.0.0.1", "[::1]",      "fe80::1%lo", "::g",       " 1.2.3.4",
                       "1.2.3.4 ",  "2130706433", "0x7f000001"};
  for (const char* b : bad) {
    EXPECT_EQ(ClassifyAddress(b), AddressClass::kInvalid) << b;
  }
}

TEST(CanonicalIpTest, OneSpellingPerAddress) {
  EXPECT_EQ(CanonicalIp("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  EXPECT_EQ(CanonicalIp("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(CanonicalIp("010.0.0.1"), std::nullopt);
  EXPECT_EQ(AddressClassName(AddressClass::kMetadata), "metadata");
}

}  // namespace
}  // namespace custos::effects
