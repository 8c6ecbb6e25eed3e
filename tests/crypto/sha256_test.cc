#include "custos/crypto/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace custos::crypto {
namespace {

// FIPS 180-4 / NIST CSRC example vectors.
TEST(Sha256Test, EmptyStringVector) {
  EXPECT_EQ(Sha256(std::string_view()).Hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, AbcVector) {
  EXPECT_EQ(Sha256("abc").Hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockVector) {
  EXPECT_EQ(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").Hex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, MillionAVector) {
  EXPECT_EQ(Sha256(std::string(1000000, 'a')).Hex(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, SpanAndStringOverloadsAgree) {
  const uint8_t abc[] = {'a', 'b', 'c'};
  EXPECT_EQ(Sha256(std::span<const uint8_t>(abc)), Sha256("abc"));
}

TEST(Sha256HasherTest, IncrementalMatchesOneShot) {
  Sha256Hasher h;
  h.Update("abcdbcdecdefdefgefgh");
  h.Update(std::string_view());
  h.Update("fghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(h.Finish(), Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"));
}

TEST(Sha256HasherTest, FinishResetsForTheNextMessage) {
  Sha256Hasher h;
  h.Update("junk");
  (void)h.Finish();
  h.Update("abc");
  EXPECT_EQ(h.Finish(), Sha256("abc"));
  EXPECT_EQ(h.Finish(), Sha256(std::string_view()));
}

TEST(DigestTest, HexIsLowercase64Chars) {
  const std::string hex = Sha256("x").Hex();
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace custos::crypto
