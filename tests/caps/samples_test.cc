// Conformance: every official Biscuit sample (tests/caps/testdata/biscuit-samples) through the
// token layer. For each sample the layer must either accept the token or fail with exactly the
// format-level error the sample expects, and a token it accepts must have the expected blocks
// (version, symbols, public keys, external key) and revocation ids.
//
// Samples whose expected outcome is decided by Datalog authorization are then authorized: the
// sample's authorizer code is parsed and run against the token, and the outcome (matching policy,
// the exact failed checks, or the execution error) must be the expected one, for every sample.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "custos/core/encoding.h"
#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::caps {
namespace {

using ::custos::testing::StatusIs;
using ::testing::ElementsAreArray;

// The extern function the upstream sample harness registers for test035: `x.extern::test()` is x,
// `a.extern::test(b)` on strings says whether they are equal.
Result<DatalogValue> TestExtern(const DatalogValue& left, const DatalogValue* right) {
  if (right == nullptr) {
    return left;
  }
  if (left.kind != DatalogValue::Kind::kString || right->kind != DatalogValue::Kind::kString) {
    return Status(Reason::kInvalidArgument, "extern::test expects strings");
  }
  DatalogValue out;
  out.kind = DatalogValue::Kind::kString;
  out.text = left.text == right->text ? "equal strings" : "different strings";
  return out;
}

std::filesystem::path SamplesDir() {
  return ::custos::testing::SourceDir() / "tests" / "caps" / "testdata" / "biscuit-samples";
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

    for (const auto& [name, validation] : tc.at("validations").items()) {
      SCOPED_TRACE("validation '" + name + "'");
      const FormatError expected = ExpectedFormatError(validation.at("result"));
      EXPECT_EQ(FormatErrorName(error), FormatErrorName(expected));
      if (expected != FormatError::kNone) {
        EXPECT_THAT(token, StatusIs(Reason::kTokenInvalid));
        continue;
      }
      ASSERT_TRUE(token.ok()) << token.status();
      std::vector<std::string> want_ids;
      for (const nlohmann::json& id : validation.at("revocation_ids")) {
        want_ids.push_back(id.get<std::string>());
      }
      EXPECT_THAT(token->RevocationIds(), ElementsAreArray(want_ids));
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

  EXPECT_EQ(accepted, 33);
  EXPECT_EQ(rejected, 5);
}

std::vector<FailedCheck> ExpectedChecks(const nlohmann::json& checks) {
  std::vector<FailedCheck> out;
  for (const nlohmann::json& c : checks) {
    FailedCheck f;
    const nlohmann::json& body = c.contains("Block") ? c["Block"] : c.at("Authorizer");
    if (c.contains("Block")) {
      f.block_id = body.at("block_id").get<size_t>();
    }
    f.check_id = body.at("check_id").get<size_t>();
    f.rule = body.at("rule").get<std::string>();
    out.push_back(std::move(f));
  }
  return out;
}

std::string Describe(const std::vector<FailedCheck>& checks) {
  std::string out;
  for (const FailedCheck& c : checks) {
    out += (c.block_id ? "block " + std::to_string(*c.block_id) : std::string("authorizer")) +
           " check " + std::to_string(c.check_id) + ": " + c.rule + "\n";
  }
  return out;
}

DatalogError ExpectedExecutionError(const std::string& name) {
  static const std::map<std::string, DatalogError> kErrors = {
      {"Overflow", DatalogError::kOverflow},
      {"DivideByZero", DatalogError::kDivideByZero},
      {"InvalidType", DatalogError::kInvalidType},
      {"ShadowedVariable", DatalogError::kShadowedVariable},
  };
  auto it = kErrors.find(name);
  if (it == kErrors.end()) {
    ADD_FAILURE() << "sample expects an execution error this test does not map: " << name;
    return DatalogError::kMalformed;
  }
  return it->second;
}

// Runs one validation's authorizer code against `token` and compares with the expected result.
// Adds the number of world facts compared to `*facts_compared`.
void ExpectAuthorization(const Biscuit& token, const nlohmann::json& validation,
                         size_t* facts_compared) {
  Result<AuthorizerCode> code =
      ParseAuthorizerCode(validation.at("authorizer_code").get<std::string>());
  ASSERT_TRUE(code.ok()) << code.status();
  code->externs.emplace("test", TestExtern);
  RunLimits limits;
  limits.max_time = std::chrono::milliseconds(500);  // generous: CI cores are shared
  DatalogError error = DatalogError::kNone;
  std::vector<WorldFact> world;
  Result<Authorization> got = Authorize(&token, *code, limits, &error, &world);
  const nlohmann::json& result = validation.at("result");

  // The world after the fixpoint holds exactly the sample's facts, with the same origins.
  if (got.ok() && validation.contains("world") && !validation["world"].is_null()) {
    std::set<std::string> want_facts;
    for (const nlohmann::json& group : validation["world"].at("facts")) {
      std::string origin;
      for (const nlohmann::json& o : group.at("origin")) {
        origin += o.is_null() ? "authorizer," : std::to_string(o.get<size_t>()) + ",";
      }
      for (const nlohmann::json& f : group.at("facts")) {
        want_facts.insert(origin + " " + f.get<std::string>());
      }
    }
    std::set<std::string> got_facts;
    for (const WorldFact& f : world) {
      std::string origin = f.authorizer ? "authorizer," : "";
      for (size_t b : f.blocks) {
        origin += std::to_string(b) + ",";
      }
      got_facts.insert(origin + " " + f.text);
    }
    EXPECT_THAT(got_facts, ElementsAreArray(want_facts));
    *facts_compared += want_facts.size();
  }

  if (result.contains("Ok")) {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->outcome, Authorization::Outcome::kAllow) << Describe(got->failed_checks);
    EXPECT_EQ(got->policy, result["Ok"].get<size_t>());
    EXPECT_THAT(got->failed_checks, ElementsAreArray(std::vector<FailedCheck>{}))
        << Describe(got->failed_checks);
    return;
  }
  const nlohmann::json& err = result.at("Err");
  if (err.contains("Execution")) {
    EXPECT_FALSE(got.ok());
    EXPECT_EQ(DatalogErrorName(error),
              DatalogErrorName(ExpectedExecutionError(err["Execution"].get<std::string>())))
        << (got.ok() ? std::string("authorized") : got.status().message());
    return;
  }
  const nlohmann::json& logic = err.at("FailedLogic");
  if (logic.contains("InvalidBlockRule")) {
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(DatalogErrorName(error), DatalogErrorName(DatalogError::kInvalidBlockRule));
    const nlohmann::json& rule = logic["InvalidBlockRule"];
    EXPECT_THAT(got.status().message(),
                ::testing::HasSubstr("rule " + std::to_string(rule.at(0).get<size_t>()) + ": " +
                                     rule.at(1).get<std::string>()));
    return;
  }
  ASSERT_TRUE(got.ok()) << got.status();
  if (logic.contains("NoMatchingPolicy")) {
    EXPECT_EQ(got->outcome, Authorization::Outcome::kNoMatchingPolicy);
    EXPECT_EQ(Describe(got->failed_checks),
              Describe(ExpectedChecks(logic["NoMatchingPolicy"].at("checks"))));
    return;
  }
  const nlohmann::json& unauthorized = logic.at("Unauthorized");
  const nlohmann::json& policy = unauthorized.at("policy");
  if (policy.contains("Allow")) {
    EXPECT_EQ(got->outcome, Authorization::Outcome::kAllow);
    EXPECT_EQ(got->policy, policy["Allow"].get<size_t>());
  } else {
    EXPECT_EQ(got->outcome, Authorization::Outcome::kDeny);
    EXPECT_EQ(got->policy, policy.at("Deny").get<size_t>());
  }
  EXPECT_EQ(Describe(got->failed_checks), Describe(ExpectedChecks(unauthorized.at("checks"))));
  EXPECT_FALSE(got->authorized());
}

TEST(BiscuitSamplesTest, EveryAuthorizationSampleReproducesItsExpectedResult) {
  const nlohmann::json samples = LoadSamples();
  const PublicKey root = RootKey(samples);
  int validations = 0;
  size_t facts_compared = 0;
  for (const nlohmann::json& tc : samples.at("testcases")) {
    const std::string file = tc.at("filename");
    SCOPED_TRACE(file);
    Result<Biscuit> token = Biscuit::FromBytes(ReadFile(SamplesDir() / file), root);
    for (const auto& [name, validation] : tc.at("validations").items()) {
      SCOPED_TRACE("validation '" + name + "'");
      if (ExpectedFormatError(validation.at("result")) != FormatError::kNone) {
        continue;  // decided by the token layer (previous test)
      }
      ASSERT_TRUE(token.ok()) << token.status();
      ExpectAuthorization(*token, validation, &facts_compared);
      ++validations;
    }
  }
  EXPECT_EQ(validations, 45);
  EXPECT_GT(facts_compared, 100u);
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

namespace custos::caps {
namespace {

// The text parser reads back everything the printer writes: every block of every accepted sample,
// printed, parsed as Datalog text and printed again, is unchanged; and no prefix of it crashes the
// parser.
TEST(BiscuitSamplesTest, EveryPrintedBlockParsesBackToTheSameText) {
  const nlohmann::json samples = LoadSamples();
  const PublicKey root = RootKey(samples);
  int blocks = 0;
  for (const nlohmann::json& tc : samples.at("testcases")) {
    const std::string file = tc.at("filename");
    Result<Biscuit> token = Biscuit::FromBytes(ReadFile(SamplesDir() / file), root);
    if (!token.ok()) {
      continue;
    }
    for (size_t i = 0; i < token->blocks().size(); ++i) {
      SCOPED_TRACE(file + " block " + std::to_string(i));
      Result<std::string> printed = PrintBlock(*token, i);
      ASSERT_TRUE(printed.ok()) << printed.status();
      Result<AuthorizerCode> parsed = ParseAuthorizerCode(*printed);
      ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << *printed;
      SymbolTable symbols;
      symbols.Extend(parsed->symbols);
      Result<std::string> reprinted = PrintDatalog(parsed->block, symbols, parsed->public_keys);
      ASSERT_TRUE(reprinted.ok()) << reprinted.status();
      EXPECT_EQ(*reprinted, *printed);
      for (size_t cut = 0; cut < printed->size(); ++cut) {
        ParseAuthorizerCode(std::string_view(*printed).substr(0, cut)).status().IgnoreError();
      }
      ++blocks;
    }
  }
  EXPECT_GT(blocks, 50);
}

// Robustness: seeded random mutations of every printed block, parsed and (when they parse) run as
// authorizer code with tight limits, never crash or hang; every run ends in an outcome or an error.
TEST(BiscuitSamplesTest, MutatedProgramsParseAndRunSafely) {
  const nlohmann::json samples = LoadSamples();
  const PublicKey root = RootKey(samples);
  std::mt19937 rng(20261122);
  static constexpr std::string_view kAlphabet = "(){}[],;.$:\"=!<>&|^+-*/ 0123456789abcxyz\n";
  RunLimits limits;
  limits.max_time = std::chrono::milliseconds(2);
  int parsed = 0;
  for (const nlohmann::json& tc : samples.at("testcases")) {
    Result<Biscuit> token =
        Biscuit::FromBytes(ReadFile(SamplesDir() / tc.at("filename").get<std::string>()), root);
    if (!token.ok()) {
      continue;
    }
    for (size_t i = 0; i < token->blocks().size(); ++i) {
      Result<std::string> printed = PrintBlock(*token, i);
      ASSERT_TRUE(printed.ok()) << printed.status();
      for (int round = 0; round < 200; ++round) {
        std::string text = *printed + "allow if true;\n";
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits && !text.empty(); ++e) {
          const size_t at = rng() % text.size();
          switch (rng() % 3) {
            case 0:
              text[at] = kAlphabet[rng() % kAlphabet.size()];
              break;
            case 1:
              text.erase(at, 1 + rng() % 4);
              break;
            default:
              text.insert(at, text.substr(rng() % text.size(), 1 + rng() % 8));
          }
        }
        Result<AuthorizerCode> code = ParseAuthorizerCode(text);
        if (!code.ok()) {
          EXPECT_THAT(code.status().message(), ::testing::StartsWith("parse error at "));
          continue;
        }
        ++parsed;
        Authorize(&*token, *code, limits).status().IgnoreError();
      }
    }
  }
  EXPECT_GT(parsed, 100);
}

}  // namespace
}  // namespace custos::caps
