// The Datalog printer writes text the parser reads back as the same program, and it cannot be made
// to print text that says something other than what the block holds (`custos token inspect`).

#include <gtest/gtest.h>

#include <string>

#include "custos/caps/datalog.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "testing/matchers.h"

namespace custos::caps {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

std::string PrintParsed(const AuthorizerCode& code) {
  SymbolTable symbols;
  symbols.Extend(code.symbols);
  auto printed = PrintDatalog(code.block, symbols, code.public_keys);
  EXPECT_THAT(printed, IsOk());
  return printed.ok() ? *printed : "";
}

TEST(DatalogPrint, StringsWithQuotesBackslashesAndControlsRoundTrip) {
  const std::string text =
      "note(\"say \\\"hi\\\" \\\\ then\\nnext\\tcol\\r\\u{1f}\\u{7f} \\u{e9}\");\n";
  auto code = ParseAuthorizerCode(text);
  ASSERT_THAT(code, IsOk());
  // The parsed string holds the unescaped bytes; \u{e9} is UTF-8 encoded. Tab prints raw.
  ASSERT_EQ(code->symbols.size(), 2u);  // "note" is not a default symbol, then the string
  EXPECT_EQ(code->symbols[1], "say \"hi\" \\ then\nnext\tcol\r\x1f\x7f \xc3\xa9");

  const std::string printed = PrintParsed(*code);
  EXPECT_EQ(printed, "note(\"say \\\"hi\\\" \\\\ then\\nnext\tcol\\r\\u{1f}\\u{7f} \xc3\xa9\");\n");
  auto again = ParseAuthorizerCode(printed);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->symbols, code->symbols);
}

TEST(DatalogPrint, AStringCannotEndItsLiteralEarly) {
  // Without escaping this would print as two statements, the second a check that always passes.
  auto code = ParseAuthorizerCode("right(\"a\\\"); check if true; //\");");
  ASSERT_THAT(code, IsOk());
  EXPECT_EQ(PrintParsed(*code), "right(\"a\\\"); check if true; //\");\n");
}

TEST(DatalogPrint, BadUnicodeEscapesAreParseErrors) {
  for (const char* bad :
       {"a(\"\\u1f\");", "a(\"\\u{}\");", "a(\"\\u{110000}\");", "a(\"\\u{d800}\");",
        "a(\"\\u{1234567}\");", "a(\"\\u{12\");", "a(\"\\u{zz}\");"}) {
    EXPECT_THAT(ParseAuthorizerCode(bad), StatusIs(Reason::kInvalidArgument)) << bad;
  }
}

TEST(DatalogPrint, ASymbolThatIsNotANameIsNotPrintedAsOne) {
  // A token's symbol table is written by whoever appended the block: a predicate "named" with
  // Datalog syntax must not print as that syntax.
  SymbolTable symbols;
  symbols.Extend(std::vector<std::string>{"right(\"x\"); check if true; //"});
  DatalogBlock block;
  Predicate fact;
  fact.name = SymbolTable::kOffset;
  block.facts.push_back(fact);
  auto printed = PrintDatalog(block, symbols, {});
  EXPECT_FALSE(printed.ok());
  EXPECT_NE(std::string(printed.status().message()).find("not one"), std::string::npos)
      << printed.status().message();
}

}  // namespace
}  // namespace custos::caps

namespace custos::caps {
namespace {

TEST(DatalogParserLimits, DeepNegationIsAnErrorNotAStackOverflow) {
  // Found by datalog_parser_fuzz: each `!` recursed without a depth check.
  const std::string text = "check if " + std::string(200000, '!') + "true;";
  auto code = ParseAuthorizerCode(text);
  EXPECT_THAT(code, ::custos::testing::StatusIs(Reason::kInvalidArgument));
  EXPECT_NE(std::string(code.status().message()).find("nesting too deep"), std::string::npos);
  // Within the cap it still parses.
  EXPECT_THAT(ParseAuthorizerCode("check if !!!!true;"), ::custos::testing::IsOk());
}

}  // namespace
}  // namespace custos::caps
