// Conformance: every official Biscuit sample (tests/caps/testdata/biscuit-samples) through the
// token layer. For each sample the layer must either accept the token or fail with exactly the
// format-level error the sample expects, and a token it accepts must have the expected blocks
// (version, symbols, public keys, external key) and revocation ids.
//
// Samples whose expected outcome is decided by Datalog authorization are listed in kNeedsDatalog:
// for them only the token layer is asserted until the Datalog engine exists (issue 3).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/core/encoding.h"
#include "testing/matchers.h"

namespace custos::caps {
namespace {

using ::custos::testing::StatusIs;
using ::testing::ElementsAreArray;

// Samples whose validations are authorization results (success, or a Datalog/execution error) that
// this test does not execute yet: the token layer must accept them, and their revocation ids and
// decoded blocks are checked, but their authorizer code is not run.
constexpr std::string_view kNeedsDatalog[] = {
    "test001_basic.bc",
    "test007_scoped_rules.bc",
    "test008_scoped_checks.bc",
    "test009_expired_token.bc",
    "test010_authorizer_scope.bc",
    "test011_authorizer_authority_caveats.bc",
    "test012_authority_caveats.bc",
    "test013_block_rules.bc",
    "test014_regex_constraint.bc",
    "test015_multi_queries_caveats.bc",
    "test016_caveat_head_name.bc",
    "test017_expressions.bc",
    "test018_unbound_variables_in_rule.bc",
    "test019_generating_ambient_from_variables.bc",
    "test020_sealed.bc",
    "test021_parsing.bc",
    "test022_default_symbols.bc",
    "test023_execution_scope.bc",
    "test024_third_party.bc",
    "test025_check_all.bc",
    "test026_public_keys_interning.bc",
    "test027_integer_wraparound.bc",
    "test028_expressions_v4.bc",
    "test029_reject_if.bc",
    "test030_null.bc",
    "test031_heterogeneous_equal.bc",
    "test032_laziness_closures.bc",
    "test033_typeof.bc",
    "test034_array_map.bc",
    "test035_ffi.bc",
    "test036_secp256r1.bc",
    "test037_secp256r1_third_party.bc",
    "test038_try_op.bc",
};

std::filesystem::path SamplesDir() {
  std::filesystem::path root;
  if (const char* env = std::getenv("CUSTOS_SOURCE_DIR"); env != nullptr && *env != '\0') {
    root = env;
  } else {
    root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  }
  return root / "tests" / "caps" / "testdata" / "biscuit-samples";
}

std::vector<uint8_t> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json LoadSamples() {
  std::ifstream in(SamplesDir() / "samples.json");
  return nlohmann::json::parse(in);
}

PublicKey RootKey(const nlohmann::json& samples) {
  Result<std::vector<uint8_t>> bytes = HexDecode(samples.at("root_public_key").get<std::string>());
  CUSTOS_CHECK(bytes.ok());
  Result<PublicKey> key = PublicKey::FromBytes(Algorithm::kEd25519, *bytes);
  CUSTOS_CHECK(key.ok());
  return *key;
}

// The format-level error a validation result expects, or kNone when the token layer must accept
// the token (the result is Ok, or an error raised by Datalog or its execution).
FormatError ExpectedFormatError(const nlohmann::json& result) {
  if (!result.contains("Err") || !result["Err"].contains("Format")) {
    return FormatError::kNone;
  }
  const nlohmann::json& format = result["Err"]["Format"];
  if (format.contains("Signature") && format["Signature"].contains("InvalidSignature")) {
    return FormatError::kInvalidSignature;
  }
  if (format.contains("BlockSignatureDeserializationError")) {
    return FormatError::kBlockSignatureDeserialization;
  }
  if (format.contains("UnknownPublicKey")) {
    return FormatError::kUnknownRootKey;
  }
  ADD_FAILURE() << "sample expects a format error this test does not map: " << format.dump();
  return FormatError::kDeserialization;
}

TEST(BiscuitSamplesTest, EverySampleMatchesItsExpectedTokenLayerOutcome) {
  const nlohmann::json samples = LoadSamples();
  const PublicKey root = RootKey(samples);
  const std::set<std::string_view> needs_datalog(std::begin(kNeedsDatalog),
                                                 std::end(kNeedsDatalog));
  std::set<std::string> seen_needing_datalog;
  int accepted = 0;
  int rejected = 0;

  ASSERT_EQ(samples.at("testcases").size(), 38u);
  for (const nlohmann::json& tc : samples.at("testcases")) {
    const std::string file = tc.at("filename");
    SCOPED_TRACE(file);
    const std::vector<uint8_t> bytes = ReadFile(SamplesDir() / file);
    ASSERT_FALSE(bytes.empty());

    FormatError error = FormatError::kDeserialization;
    Result<Biscuit> token = Biscuit::FromBytes(bytes, root, &error);

    bool datalog_decides = false;
    for (const auto& [name, validation] : tc.at("validations").items()) {
      SCOPED_TRACE("validation '" + name + "'");
      const FormatError expected = ExpectedFormatError(validation.at("result"));
      EXPECT_EQ(FormatErrorName(error), FormatErrorName(expected));
      if (expected != FormatError::kNone) {
        EXPECT_THAT(token, StatusIs(Reason::kTokenInvalid));
        continue;
      }
      datalog_decides = true;
      ASSERT_TRUE(token.ok()) << token.status();
      std::vector<std::string> want_ids;
      for (const nlohmann::json& id : validation.at("revocation_ids")) {
        want_ids.push_back(id.get<std::string>());
      }
      EXPECT_THAT(token->RevocationIds(), ElementsAreArray(want_ids));
    }
    if (datalog_decides) {
      seen_needing_datalog.insert(file);
    }
    if (!token.ok()) {
      ++rejected;
      continue;
    }
    ++accepted;

    // The decoded blocks match the sample's description of the token.
    const nlohmann::json& want_blocks = tc.at("token");
    ASSERT_EQ(token->blocks().size(), want_blocks.size());
    for (size_t i = 0; i < want_blocks.size(); ++i) {
      SCOPED_TRACE("block " + std::to_string(i));
      const Block& got = token->blocks()[i];
      const nlohmann::json& want = want_blocks[i];
      EXPECT_EQ(got.version, want.at("version").get<uint32_t>());
      EXPECT_THAT(got.symbols,
                  ElementsAreArray(want.at("symbols").get<std::vector<std::string>>()));
      std::vector<std::string> keys;
      for (const PublicKey& k : got.public_keys) {
        keys.push_back(k.ToString());
      }
      EXPECT_THAT(keys, ElementsAreArray(want.at("public_keys").get<std::vector<std::string>>()));
      if (want.at("external_key").is_null()) {
        EXPECT_FALSE(got.external_key.has_value());
      } else {
        ASSERT_TRUE(got.external_key.has_value());
        EXPECT_EQ(got.external_key->ToString(), want.at("external_key").get<std::string>());
      }
    }
  }

  // kNeedsDatalog names exactly the samples whose outcome the token layer cannot decide alone.
  EXPECT_THAT(seen_needing_datalog, ElementsAreArray(needs_datalog));
  EXPECT_EQ(accepted, 33);
  EXPECT_EQ(rejected, 5);
}

TEST(BiscuitSamplesTest, SealedSampleIsSealedAndOthersAreAttenuable) {
  const nlohmann::json samples = LoadSamples();
  const PublicKey root = RootKey(samples);
  Result<Biscuit> sealed = Biscuit::FromBytes(ReadFile(SamplesDir() / "test020_sealed.bc"), root);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_TRUE(sealed->sealed());
  Result<Biscuit> basic = Biscuit::FromBytes(ReadFile(SamplesDir() / "test001_basic.bc"), root);
  ASSERT_TRUE(basic.ok()) << basic.status();
  EXPECT_FALSE(basic->sealed());
}

}  // namespace
}  // namespace custos::caps
