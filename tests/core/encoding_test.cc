#include "custos/core/encoding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/matchers.h"

namespace custos {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

std::string AsString(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// RFC 4648 section 10 test vectors.
struct Vector {
  const char* in;
  const char* base32;  // lowercase, unpadded
  const char* base64;
};
constexpr Vector kRfc4648[] = {
    {"", "", ""},
    {"f", "my", "Zg=="},
    {"fo", "mzxq", "Zm8="},
    {"foo", "mzxw6", "Zm9v"},
    {"foob", "mzxw6yq", "Zm9vYg=="},
    {"fooba", "mzxw6ytb", "Zm9vYmE="},
    {"foobar", "mzxw6ytboi", "Zm9vYmFy"},
};

TEST(Base32Test, EncodesRfc4648Vectors) {
  for (const Vector& v : kRfc4648) {
    EXPECT_EQ(Base32Encode(AsBytes(v.in)), v.base32) << v.in;
  }
}

TEST(Base32Test, DecodesRfc4648Vectors) {
  for (const Vector& v : kRfc4648) {
    Result<std::vector<uint8_t>> r = Base32Decode(v.base32);
    ASSERT_THAT(r, IsOk()) << v.base32;
    EXPECT_EQ(AsString(*r), v.in);
  }
}

TEST(Base32Test, RejectsUppercaseAndPadding) {
  EXPECT_THAT(Base32Decode("MZXW6"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base32Decode("my======"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base32Decode("mzx1"), StatusIs(Reason::kInvalidArgument));
}

TEST(Base32Test, RejectsImpossibleLengths) {
  EXPECT_THAT(Base32Decode("m"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base32Decode("mzx"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base32Decode("mzxw6y"), StatusIs(Reason::kInvalidArgument));
}

TEST(Base32Test, RejectsNonZeroTrailingBits) {
  EXPECT_THAT(Base32Decode("mz"), StatusIs(Reason::kInvalidArgument));  // "my" is canonical
}

TEST(Base32Test, RoundTripsAllByteValues) {
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i)
    all[i] = static_cast<uint8_t>(i);
  for (size_t n = 0; n <= all.size(); n += 17) {
    std::span<const uint8_t> s(all.data(), n);
    Result<std::vector<uint8_t>> r = Base32Decode(Base32Encode(s));
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(*r, std::vector<uint8_t>(s.begin(), s.end()));
  }
}

TEST(Base64Test, EncodesRfc4648Vectors) {
  for (const Vector& v : kRfc4648) {
    EXPECT_EQ(Base64Encode(AsBytes(v.in)), v.base64) << v.in;
  }
}

TEST(Base64Test, DecodesRfc4648Vectors) {
  for (const Vector& v : kRfc4648) {
    Result<std::vector<uint8_t>> r = Base64Decode(v.base64);
    ASSERT_THAT(r, IsOk()) << v.base64;
    EXPECT_EQ(AsString(*r), v.in);
  }
}

TEST(Base64Test, UsesStandardAlphabet) {
  const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(Base64Encode(bytes), "+/+/");
  Result<std::vector<uint8_t>> r = Base64Decode("+/+/");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, std::vector<uint8_t>(std::begin(bytes), std::end(bytes)));
}

TEST(Base64Test, RejectsMissingOrMisplacedPadding) {
  EXPECT_THAT(Base64Decode("Zg"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("Zg="), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("Z==="), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("===="), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("Zg==Zg=="), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("Z=g="), StatusIs(Reason::kInvalidArgument));
}

TEST(Base64Test, RejectsUrlSafeAlphabetAndWhitespace) {
  EXPECT_THAT(Base64Decode("-_-_"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("Zm9v\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Base64Decode("Zm 9v"), StatusIs(Reason::kInvalidArgument));
}

TEST(Base64Test, RejectsNonZeroTrailingBits) {
  EXPECT_THAT(Base64Decode("Zh=="), StatusIs(Reason::kInvalidArgument));  // "Zg==" is canonical
  EXPECT_THAT(Base64Decode("Zm9="), StatusIs(Reason::kInvalidArgument));  // "Zm8=" is canonical
}

TEST(HexTest, EncodesLowercase) {
  const uint8_t bytes[] = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(HexEncode(bytes), "0001abff");
  EXPECT_EQ(HexEncode({}), "");
}

TEST(HexTest, RoundTrips) {
  Result<std::vector<uint8_t>> r = HexDecode("0001abff");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, (std::vector<uint8_t>{0x00, 0x01, 0xab, 0xff}));
}

TEST(HexTest, RejectsOddLengthUppercaseAndJunk) {
  EXPECT_THAT(HexDecode("abc"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(HexDecode("AB"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(HexDecode("0g"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(HexDecode("0x00"), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos
