// Bad input for the token layer: truncated, oversized, re-ordered, re-keyed and tampered tokens,
// each rejected with its precise FormatError. Tokens are either official samples mutated at the
// protobuf level or minted here with libsodium (signature payload version 0), so the tests do not
// depend on a Custos token builder.

#include "custos/caps/biscuit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "caps_pb/biscuit.pb.h"
#include "custos/core/encoding.h"
#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::caps {
namespace {

using ::custos::testing::StatusIs;

constexpr std::string_view kSampleRootKey =
    "1055c750b1a1505937af1537c626ba3263995c33a64758aaafb1275b0312e284";

std::filesystem::path SamplesDir() {
  return ::custos::testing::SourceDir() / "tests" / "caps" / "testdata" / "biscuit-samples";
}

std::string ReadSample(std::string_view name) {
  std::ifstream in(SamplesDir() / name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

pb::Biscuit SampleProto(std::string_view name) {
  pb::Biscuit token;
  CUSTOS_CHECK(token.ParseFromString(ReadSample(name)));
  return token;
}

PublicKey Ed25519Key(std::span<const uint8_t> bytes) {
  Result<PublicKey> key = PublicKey::FromBytes(Algorithm::kEd25519, bytes);
  CUSTOS_CHECK(key.ok());
  return *key;
}

PublicKey SampleRoot() {
  Result<std::vector<uint8_t>> bytes = HexDecode(kSampleRootKey);
  CUSTOS_CHECK(bytes.ok());
  return Ed25519Key(*bytes);
}

std::span<const uint8_t> AsSpan(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Parses `token` against the samples' root key and returns the FormatError.
FormatError ParseError(const pb::Biscuit& token) {
  const std::string bytes = token.SerializeAsString();
  FormatError error = FormatError::kNone;
  Biscuit::FromBytes(AsSpan(bytes), SampleRoot(), &error).IgnoreError();
  return error;
}

// An Ed25519 key pair for minting test tokens.
struct KeyPair {
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  KeyPair() {
    CUSTOS_CHECK(sodium_init() >= 0);
    crypto_sign_keypair(pk.data(), sk.data());
  }
  std::string Seed() const { return std::string(reinterpret_cast<const char*>(sk.data()), 32); }
};

// Appends a block signed with signature payload version 0: payload || alg(LE32) || next key.
void AppendBlock(pb::SignedBlock* out, const pb::Block& block, const KeyPair& signer,
                 const KeyPair& next) {
  const std::string payload = block.SerializeAsString();
  std::string to_sign = payload;
  to_sign.append(4, '\0');  // Ed25519 = 0
  to_sign.append(reinterpret_cast<const char*>(next.pk.data()), next.pk.size());
  std::array<uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(to_sign.data()),
                       to_sign.size(), signer.sk.data());
  out->set_block(payload);
  out->mutable_nextkey()->set_algorithm(pb::PublicKey::Ed25519);
  out->mutable_nextkey()->set_key(reinterpret_cast<const char*>(next.pk.data()), next.pk.size());
  out->set_signature(reinterpret_cast<const char*>(sig.data()), sig.size());
}

pb::Block DatalogBlock(uint32_t version, std::vector<std::string> symbols) {
  pb::Block block;
  block.set_version(version);
  for (const std::string& s : symbols) {
    block.add_symbols(s);
  }
  return block;
}

// Mints a token from `blocks` (authority first) under a fresh root; returns its bytes and root.
std::pair<std::string, PublicKey> Mint(const std::vector<pb::Block>& blocks) {
  KeyPair root;
  pb::Biscuit token;
  KeyPair signer = root;
  for (size_t i = 0; i < blocks.size(); ++i) {
    KeyPair next;
    AppendBlock(i == 0 ? token.mutable_authority() : token.add_blocks(), blocks[i], signer, next);
    signer = next;
  }
  token.mutable_proof()->set_nextsecret(signer.Seed());
  return {token.SerializeAsString(), Ed25519Key(root.pk)};
}

TEST(BiscuitTest, MintedTokenVerifiesAndDecodesItsBlocks) {
  auto [bytes, root] = Mint({DatalogBlock(3, {"file1"}), DatalogBlock(6, {"file2"})});
  Result<Biscuit> token = Biscuit::FromBytes(AsSpan(bytes), root);
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(token->blocks().size(), 2u);
  EXPECT_EQ(token->blocks()[1].version, 6u);
  EXPECT_THAT(token->blocks()[1].symbols, ::testing::ElementsAre("file2"));
  EXPECT_EQ(token->RevocationIds()[0], HexEncode(token->blocks()[0].signature));
}

TEST(BiscuitTest, OversizedTokenIsRejectedWithPayloadTooLarge) {
  std::vector<uint8_t> bytes(Biscuit::kMaxTokenBytes + 1, 0);
  FormatError error = FormatError::kNone;
  EXPECT_THAT(Biscuit::FromBytes(bytes, SampleRoot(), &error), StatusIs(Reason::kPayloadTooLarge));
  EXPECT_EQ(error, FormatError::kPayloadTooLarge);
}

TEST(BiscuitTest, TooManyBlocksAreRejectedWithPayloadTooLarge) {
  pb::Biscuit token = SampleProto("test001_basic.bc");
  while (token.blocks_size() < static_cast<int>(Biscuit::kMaxBlocks)) {
    *token.add_blocks() = token.blocks(0);
  }
  EXPECT_EQ(ParseError(token), FormatError::kPayloadTooLarge);
}

TEST(BiscuitTest, TruncatedTokenIsRejectedWithDeserialization) {
  const std::string bytes = ReadSample("test001_basic.bc");
  for (size_t len : {size_t{0}, size_t{1}, bytes.size() / 2, bytes.size() - 1}) {
    FormatError error = FormatError::kNone;
    Result<Biscuit> token = Biscuit::FromBytes(AsSpan(bytes).first(len), SampleRoot(), &error);
    EXPECT_THAT(token, StatusIs(Reason::kTokenInvalid)) << len;
    EXPECT_NE(error, FormatError::kNone) << len;
  }
  FormatError error = FormatError::kNone;
  Biscuit::FromBytes(AsSpan(bytes).first(bytes.size() / 2), SampleRoot(), &error).IgnoreError();
  EXPECT_EQ(error, FormatError::kDeserialization);
}

TEST(BiscuitTest, EveryFlippedBitIsRejectedOrHarmless) {
  // A flipped bit either breaks decoding/verification or lands in bytes no signature covers
  // (protobuf framing that decodes to the same token); it never yields a different accepted token.
  const std::string bytes = ReadSample("test001_basic.bc");
  Result<Biscuit> original = Biscuit::FromBytes(AsSpan(bytes), SampleRoot());
  ASSERT_TRUE(original.ok());
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string mutated = bytes;
    mutated[i] = static_cast<char>(mutated[i] ^ 0x01);
    Result<Biscuit> token = Biscuit::FromBytes(AsSpan(mutated), SampleRoot());
    if (token.ok()) {
      EXPECT_EQ(token->RevocationIds(), original->RevocationIds()) << i;
    }
  }
}

TEST(BiscuitTest, WrongRootKeyIsRejectedWithInvalidSignature) {
  KeyPair other;
  FormatError error = FormatError::kNone;
  const std::string bytes = ReadSample("test001_basic.bc");
  EXPECT_THAT(Biscuit::FromBytes(AsSpan(bytes), Ed25519Key(other.pk), &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, FormatError::kInvalidSignature);
}

TEST(BiscuitTest, UnknownRootKeyIdIsRejectedWithUnknownRootKey) {
  pb::Biscuit token = SampleProto("test001_basic.bc");
  token.set_rootkeyid(7);
  const std::string bytes = token.SerializeAsString();
  std::optional<uint32_t> asked;
  RootKeyResolver resolver = [&asked](std::optional<uint32_t> id) -> std::optional<PublicKey> {
    asked = id;
    if (id == 1u) {
      return SampleRoot();
    }
    return std::nullopt;
  };
  FormatError error = FormatError::kNone;
  EXPECT_THAT(Biscuit::FromBytes(AsSpan(bytes), resolver, &error), StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, FormatError::kUnknownRootKey);
  EXPECT_EQ(asked, 7u);

  token.set_rootkeyid(1);
  const std::string known = token.SerializeAsString();
  Result<Biscuit> ok = Biscuit::FromBytes(AsSpan(known), resolver);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->root_key_id(), 1u);
}

TEST(BiscuitTest, ChangedBlockPayloadIsRejectedWithInvalidSignature) {
  pb::Biscuit token = SampleProto("test001_basic.bc");
  std::string* payload = token.mutable_blocks(0)->mutable_block();
  (*payload)[payload->size() - 1] = static_cast<char>((*payload)[payload->size() - 1] ^ 0x40);
  EXPECT_EQ(ParseError(token), FormatError::kInvalidSignature);
}

TEST(BiscuitTest, RemovedOrDuplicatedBlockIsRejectedWithInvalidSignature) {
  pb::Biscuit removed = SampleProto("test001_basic.bc");
  removed.clear_blocks();
  EXPECT_EQ(ParseError(removed), FormatError::kInvalidSignature);

  pb::Biscuit duplicated = SampleProto("test001_basic.bc");
  *duplicated.add_blocks() = duplicated.blocks(0);
  EXPECT_EQ(ParseError(duplicated), FormatError::kInvalidSignature);
}

TEST(BiscuitTest, BlockFromAnotherTokenIsRejectedWithInvalidSignature) {
  // A block lifted from another token does not verify under this token's chain.
  pb::Biscuit a = SampleProto("test024_third_party.bc");
  pb::Biscuit b = SampleProto("test026_public_keys_interning.bc");
  *a.mutable_blocks(0) = b.blocks(0);
  EXPECT_EQ(ParseError(a), FormatError::kInvalidSignature);
}

TEST(BiscuitTest, WrongProofSecretIsRejectedWithInvalidSignature) {
  pb::Biscuit token = SampleProto("test001_basic.bc");
  KeyPair other;
  token.mutable_proof()->set_nextsecret(other.Seed());
  EXPECT_EQ(ParseError(token), FormatError::kInvalidSignature);

  pb::Biscuit p256 = SampleProto("test036_secp256r1.bc");
  p256.mutable_proof()->set_nextsecret(other.Seed());
  EXPECT_EQ(ParseError(p256), FormatError::kInvalidSignature);
}

TEST(BiscuitTest, TamperedSealIsRejectedWithInvalidSignature) {
  pb::Biscuit token = SampleProto("test020_sealed.bc");
  std::string* seal = token.mutable_proof()->mutable_finalsignature();
  (*seal)[0] = static_cast<char>((*seal)[0] ^ 0x01);
  EXPECT_EQ(ParseError(token), FormatError::kInvalidSignature);
}

TEST(BiscuitTest, ForgedThirdPartySignatureIsRejectedWithInvalidSignature) {
  pb::Biscuit token = SampleProto("test024_third_party.bc");
  std::string* sig = token.mutable_blocks(0)->mutable_externalsignature()->mutable_signature();
  (*sig)[5] = static_cast<char>((*sig)[5] ^ 0x01);
  EXPECT_EQ(ParseError(token), FormatError::kInvalidSignature);
}

TEST(BiscuitTest, ExternalSignatureOnAuthorityIsRejected) {
  pb::Biscuit token = SampleProto("test024_third_party.bc");
  *token.mutable_authority()->mutable_externalsignature() = token.blocks(0).externalsignature();
  EXPECT_EQ(ParseError(token), FormatError::kExternalSignatureOnAuthority);
}

TEST(BiscuitTest, UnknownSignatureVersionIsRejectedWithUnsupportedVersion) {
  pb::Biscuit token = SampleProto("test038_try_op.bc");
  token.mutable_authority()->set_version(2);
  EXPECT_EQ(ParseError(token), FormatError::kUnsupportedVersion);
}

TEST(BiscuitTest, ShortSignatureIsRejectedWithBlockSignatureDeserialization) {
  pb::Biscuit token = SampleProto("test001_basic.bc");
  token.mutable_authority()->set_signature("short");
  EXPECT_EQ(ParseError(token), FormatError::kBlockSignatureDeserialization);
}

TEST(BiscuitTest, BadNextKeyIsRejectedWithInvalidKey) {
  pb::Biscuit token = SampleProto("test001_basic.bc");
  token.mutable_authority()->mutable_nextkey()->set_key("too short");
  EXPECT_EQ(ParseError(token), FormatError::kInvalidKey);
}

TEST(BiscuitTest, BlockVersionOutsideTheSupportedRangeIsRejected) {
  for (uint32_t version : {0u, 2u, 7u}) {
    auto [bytes, root] = Mint({DatalogBlock(version, {})});
    FormatError error = FormatError::kNone;
    EXPECT_THAT(Biscuit::FromBytes(AsSpan(bytes), root, &error), StatusIs(Reason::kTokenInvalid));
    EXPECT_EQ(error, FormatError::kUnsupportedVersion) << version;
  }
}

TEST(BiscuitTest, FirstPartyBlocksRedeclaringASymbolAreRejectedWithSymbolTableOverlap) {
  auto [bytes, root] = Mint({DatalogBlock(3, {"a", "b"}), DatalogBlock(3, {"b"})});
  FormatError error = FormatError::kNone;
  EXPECT_THAT(Biscuit::FromBytes(AsSpan(bytes), root, &error), StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, FormatError::kSymbolTableOverlap);
}

TEST(BiscuitTest, UndecodableBlockPayloadIsRejectedWithDeserialization) {
  KeyPair root;
  KeyPair next;
  pb::Biscuit token;
  pb::Block block = DatalogBlock(3, {});
  AppendBlock(token.mutable_authority(), block, root, next);
  // Re-sign garbage as the payload: the signature holds, the Block does not decode.
  const std::string garbage = "\xff\xff\xff";
  std::string to_sign = garbage;
  to_sign.append(4, '\0');
  to_sign.append(reinterpret_cast<const char*>(next.pk.data()), next.pk.size());
  std::array<uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(to_sign.data()),
                       to_sign.size(), root.sk.data());
  token.mutable_authority()->set_block(garbage);
  token.mutable_authority()->set_signature(reinterpret_cast<const char*>(sig.data()), sig.size());
  token.mutable_proof()->set_nextsecret(next.Seed());
  const std::string bytes = token.SerializeAsString();
  FormatError error = FormatError::kNone;
  EXPECT_THAT(Biscuit::FromBytes(AsSpan(bytes), Ed25519Key(root.pk), &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, FormatError::kDeserialization);
}

TEST(PublicKeyTest, ParsesAndPrintsTheSampleKeyForms) {
  for (std::string_view text :
       {"ed25519/acdd6d5b53bfee478bf689f8e012fe7988bf755e3d7c5152947abc149bc20189",
        "secp256r1/025e918fd4463832aea2823dfd9716a36b4d9b1377bd53dd82ddf4c0bc75ed6bbf"}) {
    Result<PublicKey> key = PublicKey::FromString(text);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(key->ToString(), text);
  }
}

TEST(PublicKeyTest, RejectsMalformedKeysWithTokenInvalid) {
  // x = 1 is not the x-coordinate of any P-256 point (1 - 3 + b is a quadratic non-residue).
  for (std::string_view text :
       {"ed25519/acdd", "rsa/00", "ed25519", "ed25519/zz",
        "secp256r1/020000000000000000000000000000000000000000000000000000000000000001"}) {
    EXPECT_THAT(PublicKey::FromString(text), StatusIs(Reason::kTokenInvalid)) << text;
  }
}

TEST(FormatErrorTest, SizeCapsMapToPayloadTooLargeAndTheRestToTokenInvalid) {
  EXPECT_EQ(FormatErrorStatus(FormatError::kPayloadTooLarge, "x").reason(),
            Reason::kPayloadTooLarge);
  Status s = FormatErrorStatus(FormatError::kInvalidSignature, "block signature", "/authority");
  EXPECT_EQ(s.reason(), Reason::kTokenInvalid);
  EXPECT_EQ(s.message(), "invalid_signature: block signature");
  EXPECT_EQ(s.at(), "/authority");
}

}  // namespace
}  // namespace custos::caps
