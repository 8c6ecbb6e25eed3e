// DecodeDatalog + PrintBlock against the official samples: the printed text of each block must be
// the sample's `code` exactly, which checks decoding, symbol and public key interning and the
// printer together.

#include "custos/caps/datalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/core/encoding.h"
#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::caps {
namespace {

std::filesystem::path SamplesDir() {
  return ::custos::testing::SourceDir() / "tests" / "caps" / "testdata" / "biscuit-samples";
}

std::vector<uint8_t> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(DatalogPrinterTest, EveryAcceptedSampleBlockPrintsAsItsSampleCode) {
  std::ifstream in(SamplesDir() / "samples.json");
  const nlohmann::json samples = nlohmann::json::parse(in);
  Result<std::vector<uint8_t>> root_bytes =
      HexDecode(samples.at("root_public_key").get<std::string>());
  ASSERT_TRUE(root_bytes.ok());
  Result<PublicKey> root = PublicKey::FromBytes(Algorithm::kEd25519, *root_bytes);
  ASSERT_TRUE(root.ok());
  int printed = 0;
  for (const nlohmann::json& tc : samples.at("testcases")) {
    const std::string file = tc.at("filename");
    Result<Biscuit> token = Biscuit::FromBytes(ReadFile(SamplesDir() / file), *root);
    if (!token.ok()) {
      continue;  // the five format-error samples; samples_test.cc checks their errors
    }
    for (size_t i = 0; i < token->blocks().size(); ++i) {
      SCOPED_TRACE(file + " block " + std::to_string(i));
      Result<std::string> text = PrintBlock(*token, i);
      ASSERT_TRUE(text.ok()) << text.status();
      EXPECT_EQ(*text, tc.at("token").at(i).at("code").get<std::string>());
      ++printed;
    }
  }
  EXPECT_EQ(printed, 54);  // every block of the 33 accepted samples
}

Result<Biscuit> LoadSample(std::string_view file) {
  Result<std::vector<uint8_t>> root_bytes =
      HexDecode("1055c750b1a1505937af1537c626ba3263995c33a64758aaafb1275b0312e284");
  CUSTOS_CHECK(root_bytes.ok());
  Result<PublicKey> root = PublicKey::FromBytes(Algorithm::kEd25519, *root_bytes);
  CUSTOS_CHECK(root.ok());
  return Biscuit::FromBytes(ReadFile(SamplesDir() / file), *root);
}

std::vector<std::string> KeyStrings(const std::vector<PublicKey>& keys) {
  std::vector<std::string> out;
  for (const PublicKey& k : keys) {
    out.push_back(k.ToString());
  }
  return out;
}

TEST(BlockTablesTest, ThirdPartyBlocksUseOnlyTheirOwnTables) {
  Result<Biscuit> token = LoadSample("test026_public_keys_interning.bc");
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(token->blocks().size(), 5u);
  const std::string acdd =
      "ed25519/acdd6d5b53bfee478bf689f8e012fe7988bf755e3d7c5152947abc149bc20189";
  const std::string a060 =
      "ed25519/a060270db7e9c9f06e8f9cc33a64e99f6596af12cb01c4b638df8afc7b642463";
  const std::string f98d =
      "ed25519/f98da8c1cf907856431bfc3dc87531e0eaadba90f919edc232405b85877ef136";
  // Block 1 is third-party: its own two keys only.
  EXPECT_THAT(KeyStrings(TablesFor(*token, 1).public_keys), ::testing::ElementsAre(a060, acdd));
  // Block 4 is first-party: block 0's key, then its own, skipping the third-party blocks.
  EXPECT_THAT(KeyStrings(TablesFor(*token, 4).public_keys),
              ::testing::ElementsAre(acdd, a060, f98d));
}

TEST(BlockTablesTest, FirstPartySymbolsAccumulateAfterTheDefaults) {
  Result<Biscuit> token = LoadSample("test001_basic.bc");
  ASSERT_TRUE(token.ok()) << token.status();
  const BlockTables tables = TablesFor(*token, 1);
  EXPECT_EQ(tables.symbols.Get(0), "read");
  EXPECT_EQ(tables.symbols.Get(27), "query");
  EXPECT_EQ(tables.symbols.Get(28), std::nullopt);
  EXPECT_EQ(tables.symbols.Get(SymbolTable::kOffset), "file1");
  EXPECT_EQ(tables.symbols.Get(SymbolTable::kOffset + 2), "0");
  EXPECT_EQ(tables.symbols.Get(SymbolTable::kOffset + 3), std::nullopt);
  EXPECT_EQ(SymbolTable::DefaultSymbols().size(), 28u);
}

TEST(DatalogPrinterTest, PrintsTest001AsInTheSamplesReadme) {
  Result<Biscuit> token = LoadSample("test001_basic.bc");
  ASSERT_TRUE(token.ok()) << token.status();
  Result<std::string> authority = PrintBlock(*token, 0);
  ASSERT_TRUE(authority.ok()) << authority.status();
  EXPECT_EQ(*authority,
            "right(\"file1\", \"read\");\nright(\"file2\", \"read\");\n"
            "right(\"file1\", \"write\");\n");
  Result<std::string> block1 = PrintBlock(*token, 1);
  ASSERT_TRUE(block1.ok()) << block1.status();
  EXPECT_EQ(*block1, "check if resource($0), operation(\"read\"), right($0, \"read\");\n");
}

TEST(DatalogPrinterTest, UnknownSymbolIsAnError) {
  DatalogBlock block;
  block.facts.push_back(Predicate{.name = SymbolTable::kOffset + 5});
  EXPECT_THAT(PrintDatalog(block, SymbolTable(), {}),
              ::custos::testing::StatusIs(Reason::kTokenInvalid));
}

TEST(DatalogPrinterTest, MalformedExpressionIsAnError) {
  DatalogBlock block;
  Rule query;
  Op add{.kind = Op::Kind::kBinary, .binary = BinaryOp::kAdd};
  query.expressions.push_back({add});  // pops two values from an empty stack
  block.checks.push_back(Check{.queries = {query}});
  EXPECT_THAT(PrintDatalog(block, SymbolTable(), {}),
              ::custos::testing::StatusIs(Reason::kTokenInvalid));
}

TEST(DatalogDecodeTest, GarbageIsADeserializationError) {
  const std::vector<uint8_t> garbage = {0xff, 0xff, 0xff};
  EXPECT_THAT(DecodeDatalog(garbage), ::custos::testing::StatusIs(Reason::kTokenInvalid));
}

}  // namespace
}  // namespace custos::caps
