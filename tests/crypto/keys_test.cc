#include "custos/crypto/keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "custos/core/encoding.h"
#include "custos/crypto/key_store.h"
#include "custos/crypto/sha256.h"
#include "testing/matchers.h"

namespace custos::crypto {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

std::vector<uint8_t> Hex(std::string_view h) { return HexDecode(h).value(); }

// RFC 8032 section 7.1, TEST 1.
constexpr std::string_view kRfcSeed =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr std::string_view kRfcPublic =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

SigningKey RfcKey() { return KeyStore::FromSeedForTest(Hex(kRfcSeed)).value(); }

TEST(SigningKeyTest, FromSeedDerivesRfc8032PublicKey) {
  SigningKey key = RfcKey();
  EXPECT_EQ(HexEncode(key.verifying_key().bytes()), kRfcPublic);
}

TEST(SigningKeyTest, SignVerifyRoundTrip) {
  Result<SigningKey> key = SigningKey::Generate();
  ASSERT_THAT(key, IsOk());
  Result<Signature> sig = key->Sign(SignContext::kReceipt, AsBytes("hello"));
  ASSERT_THAT(sig, IsOk());
  EXPECT_THAT(key->verifying_key().Verify(SignContext::kReceipt, AsBytes("hello"), *sig), IsOk());
}

TEST(SigningKeyTest, SignatureIsOverDomainSeparatedMessage) {
  // Pins the wire format for other verifiers: Ed25519 over "custos/v1/<context>\0" || msg.
  SigningKey key = RfcKey();
  Result<Signature> sig = key.Sign(SignContext::kCheckpoint, AsBytes("abc"));
  ASSERT_THAT(sig, IsOk());
  const std::string signed_bytes = std::string("custos/v1/checkpoint\0abc", 24);
  EXPECT_EQ(crypto_sign_verify_detached(sig->bytes.data(),
                                        reinterpret_cast<const uint8_t*>(signed_bytes.data()),
                                        signed_bytes.size(), key.verifying_key().bytes().data()),
            0);
  // Ed25519 is deterministic, so the same input always gives the same signature.
  EXPECT_EQ(key.Sign(SignContext::kCheckpoint, AsBytes("abc"))->bytes, sig->bytes);
}

TEST(SigningKeyTest, TamperedMessageIsTokenInvalid) {
  SigningKey key = RfcKey();
  Result<Signature> sig = key.Sign(SignContext::kCapabilityToken, AsBytes("grant:fs.read"));
  ASSERT_THAT(sig, IsOk());
  EXPECT_THAT(
      key.verifying_key().Verify(SignContext::kCapabilityToken, AsBytes("grant:fs.write"), *sig),
      StatusIs(Reason::kTokenInvalid));
}

TEST(SigningKeyTest, TamperedSignatureIsTokenInvalid) {
  SigningKey key = RfcKey();
  Signature sig = key.Sign(SignContext::kReceipt, AsBytes("m")).value();
  for (size_t i : {0u, 31u, 32u, 63u}) {
    Signature bad = sig;
    bad.bytes[i] ^= 0x01;
    EXPECT_THAT(key.verifying_key().Verify(SignContext::kReceipt, AsBytes("m"), bad),
                StatusIs(Reason::kTokenInvalid))
        << "byte " << i;
  }
}

TEST(SigningKeyTest, WrongContextIsTokenInvalid) {
  SigningKey key = RfcKey();
  Signature sig = key.Sign(SignContext::kReceipt, AsBytes("m")).value();
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kCheckpoint, AsBytes("m"), sig),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kCapabilityToken, AsBytes("m"), sig),
              StatusIs(Reason::kTokenInvalid));
}

TEST(SigningKeyTest, WrongKeyIsTokenInvalid) {
  SigningKey a = SigningKey::Generate().value();
  SigningKey b = SigningKey::Generate().value();
  Signature sig = a.Sign(SignContext::kTest, AsBytes("m")).value();
  EXPECT_THAT(b.verifying_key().Verify(SignContext::kTest, AsBytes("m"), sig),
              StatusIs(Reason::kTokenInvalid));
}

TEST(SigningKeyTest, AllZeroSeedIsKeyError) {
  const std::vector<uint8_t> zero(32, 0);
  EXPECT_THAT(KeyStore::FromSeedForTest(zero), StatusIs(Reason::kKeyError));
}

TEST(SigningKeyTest, ShortSeedIsKeyError) {
  EXPECT_THAT(KeyStore::FromSeedForTest(std::vector<uint8_t>(31, 7)), StatusIs(Reason::kKeyError));
  EXPECT_THAT(KeyStore::FromSeedForTest(std::vector<uint8_t>(33, 7)), StatusIs(Reason::kKeyError));
}

TEST(SigningKeyTest, GeneratedKeysDiffer) {
  EXPECT_NE(SigningKey::Generate()->id(), SigningKey::Generate()->id());
}

TEST(SigningKeyTest, MovedFromKeyRefusesToSign) {
  SigningKey a = RfcKey();
  SigningKey b = std::move(a);
  EXPECT_THAT(b.Sign(SignContext::kTest, AsBytes("m")), IsOk());
  EXPECT_THAT(a.Sign(SignContext::kTest, AsBytes("m")),  // NOLINT(bugprone-use-after-move)
              StatusIs(Reason::kKeyError));
}

TEST(SigningKeyTest, MoveAssignmentReleasesTheOldKey) {
  SigningKey a = RfcKey();
  SigningKey b = SigningKey::Generate().value();
  const KeyId rfc_id = a.id();
  b = std::move(a);
  EXPECT_EQ(b.id(), rfc_id);
  EXPECT_THAT(b.Sign(SignContext::kTest, AsBytes("m")), IsOk());
}

TEST(SigningKeyTest, ConcurrentSignAndVerify) {
  SigningKey key = RfcKey();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&key, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string msg = std::to_string(t) + ":" + std::to_string(i);
        Result<Signature> sig = key.Sign(SignContext::kReceipt, AsBytes(msg));
        ASSERT_TRUE(sig.ok());
        ASSERT_TRUE(key.verifying_key().Verify(SignContext::kReceipt, AsBytes(msg), *sig).ok());
      }
    });
  }
  for (std::thread& th : threads)
    th.join();
}

TEST(KeyIdTest, IsFirstEightBytesOfSha256OfPublicKey) {
  SigningKey key = RfcKey();
  const Digest d = Sha256(std::span<const uint8_t>(key.verifying_key().bytes()));
  EXPECT_EQ(key.id().hex, d.Hex().substr(0, 16));
  EXPECT_EQ(key.verifying_key().id(), key.id());
}

TEST(VerifyingKeyTest, FromBytesRoundTrips) {
  Result<VerifyingKey> vk = VerifyingKey::FromBytes(Hex(kRfcPublic));
  ASSERT_THAT(vk, IsOk());
  EXPECT_EQ(HexEncode(vk->bytes()), kRfcPublic);
}

TEST(VerifyingKeyTest, RejectsWrongLengthZeroAndInvalidPoints) {
  EXPECT_THAT(VerifyingKey::FromBytes(std::vector<uint8_t>(31, 1)), StatusIs(Reason::kKeyError));
  EXPECT_THAT(VerifyingKey::FromBytes(std::vector<uint8_t>(32, 0)), StatusIs(Reason::kKeyError));
  // The identity point (small order) and a non-canonical y >= p.
  std::vector<uint8_t> identity(32, 0);
  identity[0] = 1;
  EXPECT_THAT(VerifyingKey::FromBytes(identity), StatusIs(Reason::kKeyError));
  std::vector<uint8_t> non_canonical(32, 0xff);
  non_canonical[31] = 0x7f;
  EXPECT_THAT(VerifyingKey::FromBytes(non_canonical), StatusIs(Reason::kKeyError));
}

TEST(SignContextTest, NamesAreDistinct) {
  const SignContext all[] = {SignContext::kCheckpoint, SignContext::kReceipt,
                             SignContext::kCapabilityToken, SignContext::kKeyRotation,
                             SignContext::kTest};
  std::set<std::string_view> names;
  for (SignContext c : all)
    EXPECT_TRUE(names.insert(SignContextName(c)).second);
  EXPECT_EQ(SignContextName(SignContext::kCapabilityToken), "capability_token");
}

TEST(AeadKeyTest, SealOpenRoundTrip) {
  AeadKey k = AeadKey::Generate();
  const std::string sealed = k.Seal("payload", "ad");
  EXPECT_EQ(sealed.size(), 24u + 7u + 16u);
  Result<std::string> opened = k.Open(sealed, "ad");
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, "payload");
}

TEST(AeadKeyTest, EmptyPlaintextRoundTrips) {
  AeadKey k = AeadKey::Generate();
  EXPECT_EQ(k.Open(k.Seal("", ""), "").value(), "");
}

TEST(AeadKeyTest, NoncesAreFresh) {
  AeadKey k = AeadKey::Generate();
  EXPECT_NE(k.Seal("same", ""), k.Seal("same", ""));
}

TEST(AeadKeyTest, WrongAdIsLogCorrupt) {
  AeadKey k = AeadKey::Generate();
  EXPECT_THAT(k.Open(k.Seal("p", "ad1"), "ad2"), StatusIs(Reason::kLogCorrupt));
}

TEST(AeadKeyTest, ChangedByteIsLogCorrupt) {
  AeadKey k = AeadKey::Generate();
  const std::string sealed = k.Seal("payload", "");
  for (size_t i = 0; i < sealed.size(); i += 5) {
    std::string bad = sealed;
    bad[i] ^= 0x40;
    EXPECT_THAT(k.Open(bad, ""), StatusIs(Reason::kLogCorrupt)) << "byte " << i;
  }
}

TEST(AeadKeyTest, WrongKeyAndTruncationAreLogCorrupt) {
  AeadKey a = AeadKey::Generate();
  AeadKey b = AeadKey::Generate();
  const std::string sealed = a.Seal("payload", "");
  EXPECT_THAT(b.Open(sealed, ""), StatusIs(Reason::kLogCorrupt));
  EXPECT_THAT(a.Open(sealed.substr(0, 39), ""), StatusIs(Reason::kLogCorrupt));
  EXPECT_THAT(a.Open("", ""), StatusIs(Reason::kLogCorrupt));
}

TEST(AeadKeyTest, DeriveFromIsDeterministicPerPurpose) {
  SigningKey key = RfcKey();
  AeadKey a1 = AeadKey::DeriveFrom(key, "store-payloads");
  AeadKey a2 = AeadKey::DeriveFrom(key, "store-payloads");
  AeadKey other = AeadKey::DeriveFrom(key, "secrets");
  const std::string sealed = a1.Seal("x", "");
  EXPECT_THAT(a2.Open(sealed, ""), IsOk());
  EXPECT_THAT(other.Open(sealed, ""), StatusIs(Reason::kLogCorrupt));
}

TEST(AeadKeyTest, DeriveFromDependsOnTheSigningKey) {
  SigningKey k1 = RfcKey();
  SigningKey k2 = SigningKey::Generate().value();
  const std::string sealed = AeadKey::DeriveFrom(k1, "p").Seal("x", "");
  EXPECT_THAT(AeadKey::DeriveFrom(k2, "p").Open(sealed, ""), StatusIs(Reason::kLogCorrupt));
}

TEST(AeadKeyTest, MovedKeyStillOpens) {
  AeadKey a = AeadKey::Generate();
  const std::string sealed = a.Seal("x", "");
  AeadKey b = std::move(a);
  EXPECT_THAT(b.Open(sealed, ""), IsOk());
  AeadKey c = AeadKey::Generate();
  c = std::move(b);
  EXPECT_THAT(c.Open(sealed, ""), IsOk());
}

}  // namespace
}  // namespace custos::crypto
