#include "custos/crypto/random.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>

namespace custos::crypto {
namespace {

TEST(RandomIdTest, IsPrefixPlus26LowercaseBase32) {
  const std::string id = RandomId("h_");
  EXPECT_THAT(id, ::testing::MatchesRegex("h_[a-z2-7]{26}"));
}

TEST(RandomIdTest, IdsDoNotRepeat) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(ids.insert(RandomId("x")).second);
}

TEST(RandomBytesTest, FillsTheWholeBuffer) {
  // 64 zero bytes after filling has probability 2^-512.
  std::array<uint8_t, 64> buf{};
  RandomBytes(buf);
  bool any_nonzero = false;
  for (uint8_t b : buf)
    any_nonzero = any_nonzero || b != 0;
  EXPECT_TRUE(any_nonzero);
}

TEST(RandomBytesTest, EmptySpanIsFine) { RandomBytes({}); }

}  // namespace
}  // namespace custos::crypto
