// Token builders: mint, attenuate and seal, checked against the verifier (Biscuit::FromBytes), the
// printer (PrintBlock) and the authorizer (Authorize).

#include "custos/caps/builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "caps_pb/biscuit.pb.h"
#include "custos/caps/biscuit.h"
#include "custos/caps/datalog.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "testing/matchers.h"

namespace custos::caps {
namespace {

using ::custos::testing::StatusIs;

constexpr std::string_view kAuthority =
    "right(\"file1\", \"read\");\n"
    "right(\"file1\", \"write\");\n"
    "right(\"file2\", \"read\");\n"
    "can($f, $op) <- right($f, $op), resource($f), operation($op);\n"
    "check if time($t), $t < 2030-01-01T00:00:00Z;\n";

constexpr std::string_view kReadOnly = "check if operation(\"read\");\n";

// The authorizer of a request for `op` on `resource`.
Result<Authorization> AuthorizeRequest(const Biscuit& token, std::string_view resource,
                                       std::string_view op) {
  const std::string text = "resource(\"" + std::string(resource) + "\");\noperation(\"" +
                           std::string(op) +
                           "\");\ntime(2026-11-22T00:00:00Z);\n"
                           "allow if can($f, $op);\n";
  Result<AuthorizerCode> code = ParseAuthorizerCode(text);
  CUSTOS_CHECK(code.ok());
  return Authorize(&token, *code);
}

bool Allowed(const Biscuit& token, std::string_view resource, std::string_view op) {
  Result<Authorization> a = AuthorizeRequest(token, resource, op);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() && a->authorized();
}

class BuilderTest : public ::testing::Test {
 protected:
  SecretKey root_ = SecretKey::Generate();
};

TEST_F(BuilderTest, MintedTokenVerifiesAndPrintsBack) {
  Result<std::vector<uint8_t>> bytes = Mint(root_, kAuthority);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  FormatError error = FormatError::kDeserialization;
  Result<Biscuit> token = Biscuit::FromBytes(*bytes, root_.public_key(), &error);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(error, FormatError::kNone);
  ASSERT_EQ(token->blocks().size(), 1u);
  EXPECT_FALSE(token->sealed());
  EXPECT_EQ(token->blocks()[0].version, kBlockVersion);
  EXPECT_EQ(token->blocks()[0].signature_version, 1u);
  EXPECT_FALSE(token->root_key_id().has_value());
  Result<std::string> printed = PrintBlock(*token, 0);
  ASSERT_TRUE(printed.ok()) << printed.status();
  EXPECT_EQ(*printed, kAuthority);
}

TEST_F(BuilderTest, RootKeyIdIsCarried) {
  Result<std::vector<uint8_t>> bytes = Mint(root_, kAuthority, 7);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  Result<Biscuit> token = Biscuit::FromBytes(*bytes, root_.public_key());
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->root_key_id(), 7u);
}

TEST_F(BuilderTest, WrongRootKeyFails) {
  Result<std::vector<uint8_t>> bytes = Mint(root_, kAuthority);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const SecretKey other = SecretKey::Generate();
  FormatError error = FormatError::kNone;
  EXPECT_THAT(Biscuit::FromBytes(*bytes, other.public_key(), &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, FormatError::kInvalidSignature);
  EXPECT_THAT(Attenuate(*bytes, other.public_key(), kReadOnly), StatusIs(Reason::kTokenInvalid));
}

TEST_F(BuilderTest, AttenuationRestricts) {
  Result<std::vector<uint8_t>> minted = Mint(root_, kAuthority);
  ASSERT_TRUE(minted.ok()) << minted.status();
  Result<Biscuit> full = Biscuit::FromBytes(*minted, root_.public_key());
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_TRUE(Allowed(*full, "file1", "write"));
  EXPECT_TRUE(Allowed(*full, "file1", "read"));
  EXPECT_FALSE(Allowed(*full, "file2", "write"));

  Result<std::vector<uint8_t>> attenuated = Attenuate(*minted, root_.public_key(), kReadOnly);
  ASSERT_TRUE(attenuated.ok()) << attenuated.status();
  Result<Biscuit> token = Biscuit::FromBytes(*attenuated, root_.public_key());
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(token->blocks().size(), 2u);
  Result<std::string> printed = PrintBlock(*token, 1);
  ASSERT_TRUE(printed.ok()) << printed.status();
  EXPECT_EQ(*printed, kReadOnly);
  Result<std::string> authority = PrintBlock(*token, 0);
  ASSERT_TRUE(authority.ok()) << authority.status();
  EXPECT_EQ(*authority, kAuthority);

  EXPECT_TRUE(Allowed(*token, "file1", "read"));
  Result<Authorization> denied = AuthorizeRequest(*token, "file1", "write");
  ASSERT_TRUE(denied.ok()) << denied.status();
  EXPECT_FALSE(denied->authorized());
  ASSERT_EQ(denied->failed_checks.size(), 1u);
  EXPECT_EQ(denied->failed_checks[0].block_id, 1u);
  EXPECT_EQ(denied->failed_checks[0].rule, "check if operation(\"read\")");
}

TEST_F(BuilderTest, AttenuationCannotWiden) {
  Result<std::vector<uint8_t>> minted = Mint(root_, kAuthority);
  ASSERT_TRUE(minted.ok()) << minted.status();
  // The block reuses the authority's symbols ("right", "file2") and adds new ones ("exec").
  constexpr std::string_view kWiden =
      "right(\"file2\", \"write\");\n"
      "right(\"file3\", \"exec\");\n";
  Result<std::vector<uint8_t>> widened = Attenuate(*minted, root_.public_key(), kWiden);
  ASSERT_TRUE(widened.ok()) << widened.status();
  Result<Biscuit> token = Biscuit::FromBytes(*widened, root_.public_key());
  ASSERT_TRUE(token.ok()) << token.status();
  Result<std::string> printed = PrintBlock(*token, 1);
  ASSERT_TRUE(printed.ok()) << printed.status();
  EXPECT_EQ(*printed, kWiden);
  EXPECT_THAT(token->blocks()[1].symbols, ::testing::ElementsAre("file3", "exec"));
  EXPECT_TRUE(Allowed(*token, "file2", "read"));
  EXPECT_FALSE(Allowed(*token, "file2", "write"));
  EXPECT_FALSE(Allowed(*token, "file3", "exec"));
}

TEST_F(BuilderTest, ThreeBlocksKeepSymbolsConsistent) {
  Result<std::vector<uint8_t>> minted = Mint(root_, kAuthority);
  ASSERT_TRUE(minted.ok()) << minted.status();
  constexpr std::string_view kFirst =
      "check if resource($r), [\"file1\", \"file9\"].contains($r);\n";
  constexpr std::string_view kSecond =
      "check if resource(\"file9\") or operation(\"read\");\n"
      "reject if operation(\"delete\");\n";
  Result<std::vector<uint8_t>> one = Attenuate(*minted, root_.public_key(), kFirst);
  ASSERT_TRUE(one.ok()) << one.status();
  Result<std::vector<uint8_t>> two = Attenuate(*one, root_.public_key(), kSecond);
  ASSERT_TRUE(two.ok()) << two.status();
  Result<Biscuit> token = Biscuit::FromBytes(*two, root_.public_key());
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(token->blocks().size(), 3u);
  Result<std::string> first = PrintBlock(*token, 1);
  Result<std::string> second = PrintBlock(*token, 2);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, kFirst);
  EXPECT_EQ(*second, kSecond);
  EXPECT_THAT(token->blocks()[2].symbols, ::testing::ElementsAre("delete"));
  EXPECT_TRUE(Allowed(*token, "file1", "read"));
  EXPECT_FALSE(Allowed(*token, "file1", "write"));
  EXPECT_FALSE(Allowed(*token, "file2", "read"));
}

TEST_F(BuilderTest, TrustingScopeRoundTrips) {
  const SecretKey third = SecretKey::Generate();
  const std::string authority = "right(\"file1\", \"read\");\n";
  const std::string block = "check if right(\"file1\", \"read\") trusting authority, " +
                            third.public_key().ToString() + ";\n";
  Result<std::vector<uint8_t>> minted = Mint(root_, authority);
  ASSERT_TRUE(minted.ok()) << minted.status();
  Result<std::vector<uint8_t>> attenuated = Attenuate(*minted, root_.public_key(), block);
  ASSERT_TRUE(attenuated.ok()) << attenuated.status();
  Result<Biscuit> token = Biscuit::FromBytes(*attenuated, root_.public_key());
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(token->blocks()[1].public_keys.size(), 1u);
  EXPECT_EQ(token->blocks()[1].public_keys[0], third.public_key());
  Result<std::string> printed = PrintBlock(*token, 1);
  ASSERT_TRUE(printed.ok()) << printed.status();
  EXPECT_EQ(*printed, block);
}

TEST_F(BuilderTest, SealedTokenVerifiesButCannotBeAttenuated) {
  Result<std::vector<uint8_t>> minted = Mint(root_, kAuthority);
  ASSERT_TRUE(minted.ok()) << minted.status();
  Result<std::vector<uint8_t>> attenuated = Attenuate(*minted, root_.public_key(), kReadOnly);
  ASSERT_TRUE(attenuated.ok()) << attenuated.status();
  Result<std::vector<uint8_t>> sealed = Seal(*attenuated, root_.public_key());
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  Result<Biscuit> token = Biscuit::FromBytes(*sealed, root_.public_key());
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(token->sealed());
  EXPECT_TRUE(Allowed(*token, "file1", "read"));
  EXPECT_FALSE(Allowed(*token, "file1", "write"));
  EXPECT_THAT(Attenuate(*sealed, root_.public_key(), kReadOnly),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Seal(*sealed, root_.public_key()), StatusIs(Reason::kInvalidArgument));
}

TEST_F(BuilderTest, RevocationIdsDifferPerBlockAndAreStable) {
  Result<std::vector<uint8_t>> minted = Mint(root_, kAuthority);
  ASSERT_TRUE(minted.ok()) << minted.status();
  Result<std::vector<uint8_t>> attenuated = Attenuate(*minted, root_.public_key(), kReadOnly);
  ASSERT_TRUE(attenuated.ok()) << attenuated.status();
  Result<Biscuit> a = Biscuit::FromBytes(*attenuated, root_.public_key());
  Result<Biscuit> b = Biscuit::FromBytes(*attenuated, root_.public_key());
  Result<Biscuit> parent = Biscuit::FromBytes(*minted, root_.public_key());
  ASSERT_TRUE(a.ok() && b.ok() && parent.ok());
  const std::vector<std::string> ids = a->RevocationIds();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_EQ(ids[0].size(), 128u);  // hex of a 64-byte Ed25519 signature
  EXPECT_EQ(b->RevocationIds(), ids);
  // The attenuated token shares the authority id with its parent, so revoking it revokes both.
  EXPECT_EQ(parent->RevocationIds(), std::vector<std::string>{ids[0]});
  // A second attenuation of the same parent is a different block, with a different id.
  Result<std::vector<uint8_t>> sibling = Attenuate(*minted, root_.public_key(), kReadOnly);
  ASSERT_TRUE(sibling.ok()) << sibling.status();
  Result<Biscuit> s = Biscuit::FromBytes(*sibling, root_.public_key());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->RevocationIds()[0], ids[0]);
  EXPECT_NE(s->RevocationIds()[1], ids[1]);
}

TEST_F(BuilderTest, TamperedOrSplicedBlocksFail) {
  Result<std::vector<uint8_t>> minted = Mint(root_, kAuthority);
  Result<std::vector<uint8_t>> other = Mint(root_, "right(\"file1\", \"write\");");
  ASSERT_TRUE(minted.ok() && other.ok());
  Result<std::vector<uint8_t>> attenuated = Attenuate(*minted, root_.public_key(), kReadOnly);
  ASSERT_TRUE(attenuated.ok()) << attenuated.status();
  pb::Biscuit proto;
  ASSERT_TRUE(proto.ParseFromArray(attenuated->data(), static_cast<int>(attenuated->size())));

  // Changing a byte of the signed attenuation payload breaks its signature.
  pb::Biscuit tampered = proto;
  tampered.mutable_blocks(0)->mutable_block()->back() ^= 0x01;
  std::string bytes = tampered.SerializeAsString();
  FormatError error = FormatError::kNone;
  EXPECT_FALSE(Biscuit::FromBytes(std::vector<uint8_t>(bytes.begin(), bytes.end()),
                                  root_.public_key(), &error)
                   .ok());
  EXPECT_EQ(error, FormatError::kInvalidSignature);

  // Moving the attenuation block (and its proof) onto another token of the same root fails: the
  // signature covers the previous block's signature.
  pb::Biscuit spliced;
  ASSERT_TRUE(spliced.ParseFromArray(other->data(), static_cast<int>(other->size())));
  *spliced.add_blocks() = proto.blocks(0);
  *spliced.mutable_proof() = proto.proof();
  bytes = spliced.SerializeAsString();
  EXPECT_FALSE(Biscuit::FromBytes(std::vector<uint8_t>(bytes.begin(), bytes.end()),
                                  root_.public_key(), &error)
                   .ok());
  EXPECT_EQ(error, FormatError::kInvalidSignature);
}

TEST_F(BuilderTest, RejectsBadInput) {
  EXPECT_THAT(Mint(root_, "right(\"a\""), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(Mint(root_, "allow if true;"), StatusIs(Reason::kInvalidArgument));
  const std::vector<uint8_t> short_seed(31, 0);
  EXPECT_THAT(SecretKey::FromSeed(short_seed), StatusIs(Reason::kInvalidArgument));
  const std::vector<uint8_t> garbage = {1, 2, 3};
  EXPECT_THAT(Attenuate(garbage, root_.public_key(), kReadOnly), StatusIs(Reason::kTokenInvalid));
}

TEST_F(BuilderTest, SeedDeterminesPublicKey) {
  const std::vector<uint8_t> seed(SecretKey::kSeedBytes, 7);
  Result<SecretKey> a = SecretKey::FromSeed(seed);
  Result<SecretKey> b = SecretKey::FromSeed(seed);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->public_key(), b->public_key());
  EXPECT_TRUE(SecretMatchesPublicKey(a->seed(), a->public_key()));
  const std::vector<uint8_t> message = {'m'};
  EXPECT_EQ(a->public_key().Verify(message, a->Sign(message)), FormatError::kNone);
  SecretKey moved = std::move(a.value());
  EXPECT_TRUE(SecretMatchesPublicKey(moved.seed(), moved.public_key()));
}

}  // namespace
}  // namespace custos::caps
