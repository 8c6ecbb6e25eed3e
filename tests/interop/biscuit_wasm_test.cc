// Interop with the independent Biscuit implementation @biscuit-auth/biscuit-wasm (the Rust
// reference compiled to WebAssembly, from npm; tests/interop/node/biscuit_peer.mjs drives it):
// tokens minted here verify, authorize and attenuate there, and tokens minted there (Ed25519 and
// secp256r1 roots) verify, authorize and attenuate here, with the same revocation ids. Both reject
// the same tampered tokens. The npm package is installed by the `interop_npm_ci` ctest fixture.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/builder.h"
#include "custos/caps/datalog.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "integration/cli_runner.h"
#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::caps {
namespace {

using ::custos::testing::IsOk;

constexpr char kAuthority[] =
    "right(\"file1\", \"read\");\nright(\"file2\", \"write\");\n"
    "check if time($t), $t < 2030-01-01T00:00:00Z;\n";

// The kernel-shaped request: one resource, one operation, the time; allow what a right grants.
std::string Authorizer(std::string_view resource, std::string_view operation) {
  return "resource(\"" + std::string(resource) + "\");\noperation(\"" + std::string(operation) +
         "\");\ntime(2026-11-22T00:00:00Z);\n" +
         "allow if right($r, $op), resource($r), operation($op);\n";
}

// One batch of requests to the wasm peer; one node start per call.
Json Peer(const Json& requests) {
  const std::string script =
      (testing::SourceDir() / "tests/interop/node/biscuit_peer.mjs").string();
  testing::CliResult r = testing::RunProgram(
      "/usr/bin/node", {"--experimental-wasm-modules", "--no-warnings", script}, requests.dump());
  EXPECT_EQ(r.code, 0) << r.err;
  Json out = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(out.is_array()) << "peer stdout: " << r.out << "\nstderr: " << r.err;
  return out;
}

Json PeerOne(Json request) {
  Json out = Peer(Json::array({std::move(request)}));
  return out.is_array() && out.size() == 1 ? out[0] : Json();
}

std::string Hex(const std::vector<uint8_t>& bytes) { return HexEncode(bytes); }

std::vector<uint8_t> Unhex(const Json& v) {
  EXPECT_TRUE(v.is_string()) << v.dump();
  auto bytes = HexDecode(v.is_string() ? v.get<std::string>() : "");
  EXPECT_THAT(bytes, IsOk());
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

Authorization MustAuthorize(const Biscuit& token, const std::string& code) {
  auto parsed = ParseAuthorizerCode(code);
  EXPECT_THAT(parsed, IsOk());
  auto result = Authorize(&token, *parsed);
  EXPECT_THAT(result, IsOk());
  return result.ok() ? *result : Authorization{};
}

std::vector<std::string> Strings(const Json& array) {
  std::vector<std::string> out;
  for (const Json& v : array)
    out.push_back(v.get<std::string>());
  return out;
}

TEST(BiscuitWasmInterop, CustosTokenVerifiesAuthorizesAndKeepsRevocationIdsInWasm) {
  SecretKey root = SecretKey::Generate();
  auto minted = Mint(root, kAuthority);
  ASSERT_THAT(minted, IsOk());
  auto attenuated = Attenuate(*minted, root.public_key(), "check if operation(\"read\");");
  ASSERT_THAT(attenuated, IsOk());
  auto ours = Biscuit::FromBytes(*attenuated, root.public_key());
  ASSERT_THAT(ours, IsOk());

  const std::string root_text = root.public_key().ToString();
  Json results = Peer(Json::array({
      {{"op", "verify"},
       {"root", root_text},
       {"token", Hex(*attenuated)},
       {"authorizer", Authorizer("file1", "read")}},
      {{"op", "verify"},
       {"root", root_text},
       {"token", Hex(*attenuated)},
       {"authorizer", Authorizer("file2", "write")}},
  }));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].value("authorized", false), true) << results[0].dump();
  EXPECT_EQ(Strings(results[0]["revocation_ids"]), ours->RevocationIds());
  ASSERT_EQ(results[0]["blocks"].size(), 2u);
  EXPECT_NE(results[0]["blocks"][0].get<std::string>().find("right(\"file1\", \"read\")"),
            std::string::npos);
  // The attenuation block's check fails there exactly as it does here.
  EXPECT_EQ(results[1].value("authorized", true), false) << results[1].dump();
  EXPECT_NE(results[1].value("error", "").find("operation(\\\"read\\\")"), std::string::npos)
      << results[1].dump();
  Authorization here = MustAuthorize(*ours, Authorizer("file2", "write"));
  ASSERT_EQ(here.failed_checks.size(), 1u);
  EXPECT_EQ(here.failed_checks[0].block_id, 1u);
  EXPECT_EQ(here.failed_checks[0].rule, "check if operation(\"read\")");
}

TEST(BiscuitWasmInterop, WasmAttenuatesCustosTokenAndCustosEnforcesTheNewBlock) {
  SecretKey root = SecretKey::Generate();
  auto minted = Mint(root, kAuthority);
  ASSERT_THAT(minted, IsOk());
  Json r = PeerOne({{"op", "attenuate"},
                    {"root", root.public_key().ToString()},
                    {"token", Hex(*minted)},
                    {"code", "check if resource(\"file1\");"}});
  ASSERT_TRUE(r.contains("token")) << r.dump();
  auto token = Biscuit::FromBytes(Unhex(r["token"]), root.public_key());
  ASSERT_THAT(token, IsOk());
  ASSERT_EQ(token->blocks().size(), 2u);
  auto printed = PrintBlock(*token, 1);
  ASSERT_THAT(printed, IsOk());
  EXPECT_EQ(*printed, "check if resource(\"file1\");\n");

  EXPECT_TRUE(MustAuthorize(*token, Authorizer("file1", "read")).authorized());
  Authorization denied = MustAuthorize(*token, Authorizer("file2", "write"));
  EXPECT_FALSE(denied.authorized());
  ASSERT_EQ(denied.failed_checks.size(), 1u);
  EXPECT_EQ(denied.failed_checks[0].block_id, 1u);

  // And the wasm-attenuated token attenuates further here, offline.
  auto again = Attenuate(Unhex(r["token"]), root.public_key(), "check if operation(\"write\");");
  ASSERT_THAT(again, IsOk());
  Json v = PeerOne({{"op", "verify"},
                    {"root", root.public_key().ToString()},
                    {"token", Hex(*again)},
                    {"authorizer", Authorizer("file1", "read")}});
  EXPECT_EQ(v.value("authorized", true), false) << v.dump();
  EXPECT_EQ(v["blocks"].size(), 3u);
}

class WasmMintedToken : public ::testing::TestWithParam<const char*> {};

TEST_P(WasmMintedToken, VerifiesAuthorizesAndMatchesRevocationIdsInCustos) {
  Json kp = PeerOne({{"op", "keypair"}, {"algorithm", GetParam()}});
  ASSERT_TRUE(kp.contains("public")) << kp.dump();
  auto root = PublicKey::FromString(kp["public"].get<std::string>());
  ASSERT_THAT(root, IsOk());

  Json minted = PeerOne({{"op", "mint"}, {"private", kp["private"]}, {"code", kAuthority}});
  ASSERT_TRUE(minted.contains("token")) << minted.dump();
  Json results = Peer(Json::array({
      {{"op", "attenuate"},
       {"root", kp["public"]},
       {"token", minted["token"]},
       {"code", "check if operation(\"read\");"}},
  }));
  ASSERT_TRUE(results[0].contains("token")) << results[0].dump();
  const std::vector<uint8_t> bytes = Unhex(results[0]["token"]);
  Json v = PeerOne({{"op", "verify"},
                    {"root", kp["public"]},
                    {"token", results[0]["token"]},
                    {"authorizer", Authorizer("file1", "read")}});

  auto token = Biscuit::FromBytes(bytes, *root);
  ASSERT_THAT(token, IsOk());
  ASSERT_EQ(token->blocks().size(), 2u);
  EXPECT_EQ(token->RevocationIds(), Strings(v["revocation_ids"]));
  auto authority = PrintBlock(*token, 0);
  ASSERT_THAT(authority, IsOk());
  EXPECT_EQ(*authority, kAuthority);
  EXPECT_TRUE(MustAuthorize(*token, Authorizer("file1", "read")).authorized());
  EXPECT_FALSE(MustAuthorize(*token, Authorizer("file2", "write")).authorized());
  EXPECT_FALSE(MustAuthorize(*token, Authorizer("file3", "read")).authorized());
}

INSTANTIATE_TEST_SUITE_P(Roots, WasmMintedToken, ::testing::Values("ed25519", "secp256r1"));

TEST(BiscuitWasmInterop, SealedTokensVerifyBothWays) {
  SecretKey root = SecretKey::Generate();
  const std::string root_text = root.public_key().ToString();
  auto minted = Mint(root, kAuthority);
  ASSERT_THAT(minted, IsOk());
  auto sealed = Seal(*minted, root.public_key());
  ASSERT_THAT(sealed, IsOk());

  Json results = Peer(Json::array({
      {{"op", "verify"},
       {"root", root_text},
       {"token", Hex(*sealed)},
       {"authorizer", Authorizer("file1", "read")}},
      {{"op", "attenuate"},
       {"root", root_text},
       {"token", Hex(*sealed)},
       {"code", "check if true;"}},
      {{"op", "seal"}, {"root", root_text}, {"token", Hex(*minted)}},
  }));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].value("authorized", false), true) << results[0].dump();
  EXPECT_TRUE(results[1].contains("error")) << "wasm attenuated a sealed token: " << results[1];
  ASSERT_TRUE(results[2].contains("token")) << results[2].dump();
  auto theirs = Biscuit::FromBytes(Unhex(results[2]["token"]), root.public_key());
  ASSERT_THAT(theirs, IsOk());
  EXPECT_TRUE(theirs->sealed());
  EXPECT_TRUE(MustAuthorize(*theirs, Authorizer("file1", "read")).authorized());
}

TEST(BiscuitWasmInterop, BothRejectTamperedTokensAndWrongRootKeys) {
  SecretKey root = SecretKey::Generate();
  SecretKey other = SecretKey::Generate();
  auto minted = Mint(root, kAuthority);
  ASSERT_THAT(minted, IsOk());
  std::vector<uint8_t> flipped = *minted;
  flipped[flipped.size() / 2] ^= 0x01;
  std::vector<uint8_t> truncated(minted->begin(), minted->end() - 10);

  Json results = Peer(Json::array({
      {{"op", "verify"},
       {"root", root.public_key().ToString()},
       {"token", Hex(flipped)},
       {"authorizer", Authorizer("file1", "read")}},
      {{"op", "verify"},
       {"root", root.public_key().ToString()},
       {"token", Hex(truncated)},
       {"authorizer", Authorizer("file1", "read")}},
      {{"op", "verify"},
       {"root", other.public_key().ToString()},
       {"token", Hex(*minted)},
       {"authorizer", Authorizer("file1", "read")}},
  }));
  ASSERT_EQ(results.size(), 3u);
  for (const Json& r : results) {
    EXPECT_TRUE(r.contains("error") && !r.contains("authorized")) << r.dump();
  }
  EXPECT_FALSE(Biscuit::FromBytes(flipped, root.public_key()).ok());
  EXPECT_FALSE(Biscuit::FromBytes(truncated, root.public_key()).ok());
  EXPECT_FALSE(Biscuit::FromBytes(*minted, other.public_key()).ok());
}

}  // namespace
}  // namespace custos::caps
