#include "custos/effects/resolve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/matchers.h"

namespace custos::effects {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

TEST(ResolveHostTest, IpLiteralsAreReturnedWithoutALookup) {
  auto v4 = ResolveHost("192.0.2.1", 80);
  ASSERT_THAT(v4, IsOk());
  EXPECT_EQ(*v4, std::vector<std::string>{"192.0.2.1"});
  auto v6 = ResolveHost("2001:DB8::0:1", 443);
  ASSERT_THAT(v6, IsOk());
  EXPECT_EQ(*v6, std::vector<std::string>{"2001:db8::1"});
}

TEST(ResolveHostTest, LocalhostResolvesToLoopback) {
  auto r = ResolveHost("localhost", 80);
  ASSERT_THAT(r, IsOk());
  ASSERT_FALSE(r->empty());
  for (const std::string& ip : *r) {
    EXPECT_EQ(ClassifyAddress(ip), AddressClass::kLoopback) << ip;
  }
}

TEST(ResolveHostTest, RejectsBadHostsAndPorts) {
  EXPECT_THAT(ResolveHost("bad host", 80), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ResolveHost("2130706433", 80), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ResolveHost("localhost", 0), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos::effects
