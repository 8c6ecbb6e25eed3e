// The Datalog engine and authorizer on authorizer code alone (token scoping is covered by the
// official samples in samples_test.cc), and the text parser's syntax and errors.

#include "custos/caps/datalog_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "custos/caps/datalog_parser.h"
#include "testing/matchers.h"

namespace custos::caps {
namespace {

using ::custos::testing::StatusIs;
using ::testing::HasSubstr;

// Default limits with a roomy clock: the facts and iteration caps stay, but a test not about time
// must not fail because a loaded CI core took over 1 ms (e.g. compiling a regex).
RunLimits RoomyClock() {
  RunLimits limits;
  limits.max_time = std::chrono::seconds(5);
  return limits;
}

Result<Authorization> AuthorizeText(std::string_view text, DatalogError* error = nullptr,
                                    const RunLimits& limits = RoomyClock()) {
  Result<AuthorizerCode> code = ParseAuthorizerCode(text);
  CUSTOS_CHECK(code.ok());
  return Authorize(nullptr, *code, limits, error);
}

TEST(DatalogEngineTest, RulesReachAFixpointAndPoliciesMatchInOrder) {
  Result<Authorization> r = AuthorizeText(R"(
    edge(1, 2); edge(2, 3); edge(3, 4);
    path($a, $b) <- edge($a, $b);
    path($a, $c) <- path($a, $b), edge($b, $c);
    deny if path(4, $x);
    allow if path(1, 4);
    deny if true;
  )");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->authorized());
  EXPECT_EQ(r->policy, 1u);
}

TEST(DatalogEngineTest, DenyAndNoMatchingPolicyAreOutcomesNotErrors) {
  Result<Authorization> deny =
      AuthorizeText("user(\"bob\"); deny if user(\"bob\"); allow if true;");
  ASSERT_TRUE(deny.ok()) << deny.status();
  EXPECT_EQ(deny->outcome, Authorization::Outcome::kDeny);
  EXPECT_EQ(deny->policy, 0u);
  EXPECT_FALSE(deny->authorized());

  Result<Authorization> none = AuthorizeText("allow if user($u);");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->outcome, Authorization::Outcome::kNoMatchingPolicy);
  EXPECT_FALSE(none->authorized());
}

TEST(DatalogEngineTest, FailedChecksAreReportedWithTheirText) {
  Result<Authorization> r = AuthorizeText(R"(
    n(1); n(2);
    check if n(3) or n(2);
    check all n($x), $x < 2;
    reject if n($x), $x > 1;
    check if n($x), $x.type() == "integer";
    allow if true;
  )");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->failed_checks.size(), 2u);
  EXPECT_EQ(r->failed_checks[0].check_id, 1u);
  EXPECT_FALSE(r->failed_checks[0].block_id.has_value());
  EXPECT_EQ(r->failed_checks[0].rule, "check all n($x), $x < 2");
  EXPECT_EQ(r->failed_checks[1].rule, "reject if n($x), $x > 1");
  EXPECT_FALSE(r->authorized());
}

TEST(DatalogEngineTest, ExpressionsFollowTheSpecification) {
  Result<Authorization> r = AuthorizeText(R"(
    check if "file42.txt".matches("^file[0-9]+\\.txt$");
    check if !"file.txt".matches("^x");
    check if 2024-1 == 2023, 7 / 2 == 3, -7 + 10 == 3, 6 & 3 == 2, 6 | 1 == 7, 6 ^ 3 == 5;
    check if "a" + "b" === "ab", "abc".length() == 3, hex:00ff.length() == 2;
    check if 2024-01-01T00:00:00Z > 2023-12-31T23:59:59Z;
    check if 2024-01-01T01:00:00+01:00 == 2024-01-01T00:00:00Z;
    check if {1, 2}.union({3}) == {3, 2, 1}, {1, 2}.contains({1});
    check if [1, 2].get(5) == null, {"k": [1]}.get("k").contains(1);
    check if (1 / 0).try_or(true);
    check if false && (1 / 0 == 1) || true;
    check if [1, 2, 3].all($x -> $x > 0), !{1, 2}.any($y -> $y > 2);
    allow if true;
  )");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->authorized()) << (r->failed_checks.empty() ? "" : r->failed_checks[0].rule);
}

TEST(DatalogEngineTest, ExpressionErrorsAbortAuthorization) {
  DatalogError error = DatalogError::kNone;
  EXPECT_THAT(AuthorizeText("check if 1 / 0 == 1; allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kDivideByZero);
  EXPECT_THAT(AuthorizeText("check if 1 === \"a\"; allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kInvalidType);
  EXPECT_THAT(AuthorizeText("check if 1 + 1; allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kInvalidType);
  EXPECT_THAT(AuthorizeText("check if true.extern::nope(); allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kUnknownFunction);
  EXPECT_THAT(AuthorizeText("check if \"a\".matches(\"(\"); allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kInvalidType);
}

TEST(DatalogEngineTest, RulesMustBindEveryVariableTheyUse) {
  DatalogError error = DatalogError::kNone;
  Result<Authorization> r = AuthorizeText("a(1); b($x) <- a($y); allow if true;", &error);
  EXPECT_THAT(r, StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kInvalidRule);
  EXPECT_THAT(r.status().message(), HasSubstr("rule 0: b($x) <- a($y)"));
  EXPECT_THAT(AuthorizeText("check if a($x), $y > 1; allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kInvalidRule);
}

TEST(DatalogEngineTest, ClosureParametersMayNotShadowVariables) {
  DatalogError error = DatalogError::kNone;
  EXPECT_THAT(AuthorizeText("n(1); check if n($x), [1].any($x -> $x > 0); allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kShadowedVariable);
  // Rejected before evaluation, even where lazy evaluation would never reach the closure.
  EXPECT_THAT(
      AuthorizeText("check if false && [1].any($y -> [2].any($y -> true)); allow if true;", &error),
      StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kShadowedVariable);
}

TEST(DatalogEngineTest, RunLimitsStopExplodingOrSlowPrograms) {
  std::string facts;
  for (int i = 0; i < 20; ++i) {
    facts += "v(" + std::to_string(i) + ");";
  }
  // Time is not the limit under test here (sanitizer builds are slow).
  RunLimits roomy;
  roomy.max_time = std::chrono::seconds(5);
  DatalogError error = DatalogError::kNone;
  EXPECT_THAT(
      AuthorizeText(facts + "p($a, $b, $c) <- v($a), v($b), v($c); allow if true;", &error, roomy),
      StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kTooManyFacts);

  std::string chain;
  for (int i = 0; i < 30; ++i) {
    chain += "e(" + std::to_string(i) + ", " + std::to_string(i + 1) + ");";
  }
  chain += "p($a, $b) <- e($a, $b); p($a, $c) <- p($a, $b), e($b, $c); allow if true;";
  RunLimits few_iterations = roomy;
  few_iterations.max_iterations = 5;
  EXPECT_THAT(AuthorizeText(chain, &error, few_iterations), StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kTooManyIterations);

  RunLimits no_time;
  no_time.max_time = std::chrono::microseconds(0);
  EXPECT_THAT(AuthorizeText(chain, &error, no_time), StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kTimeout);

  Result<Authorization> ok = AuthorizeText(chain, &error, roomy);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->authorized());

  std::string wide = "check if v(0)";
  for (int i = 0; i < 64; ++i) {
    wide += ", v(0)";
  }
  EXPECT_THAT(AuthorizeText(facts + wide + "; allow if true;", &error),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kMalformed);
}

TEST(DatalogEngineTest, NestedClosuresAreBoundedByTime) {
  // 20^4 closure evaluations, each cheap: the wall-time limit stops it.
  std::string set = "{";
  for (int i = 0; i < 20; ++i) {
    set += (i == 0 ? "" : ", ") + std::to_string(i);
  }
  set += "}";
  DatalogError error = DatalogError::kNone;
  RunLimits tight;
  tight.max_time = std::chrono::microseconds(200);
  EXPECT_THAT(AuthorizeText("check if " + set + ".all($a -> " + set + ".all($b -> " + set +
                                ".all($c -> " + set +
                                ".all($d -> $a + $b + $c + $d >= 0))));"
                                " allow if true;",
                            &error, tight),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(error, DatalogError::kTimeout);
}

TEST(DatalogParserTest, ParsesEveryStatementKind) {
  Result<AuthorizerCode> code = ParseAuthorizerCode(R"(
    // a comment
    trusting authority, previous;
    right("file1", "read");
    can($f) <- right($f, "read") trusting ed25519/acdd6d5b53bfee478bf689f8e012fe7988bf755e3d7c5152947abc149bc20189;
    check if can("file1");
    check all can($f), $f.starts_with("file");
    reject if right($f, "write");
    allow if true;
    deny if can($f) or right($f, $op);
  )");
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(code->block.facts.size(), 1u);
  EXPECT_EQ(code->block.rules.size(), 1u);
  EXPECT_EQ(code->block.checks.size(), 3u);
  EXPECT_EQ(code->block.scopes.size(), 2u);
  ASSERT_EQ(code->policies.size(), 2u);
  EXPECT_EQ(code->policies[1].kind, Policy::Kind::kDeny);
  EXPECT_EQ(code->policies[1].queries.size(), 2u);
  ASSERT_EQ(code->public_keys.size(), 1u);

  SymbolTable symbols;
  symbols.Extend(code->symbols);
  Result<std::string> printed = PrintDatalog(code->block, symbols, code->public_keys);
  ASSERT_TRUE(printed.ok()) << printed.status();
  EXPECT_EQ(*printed,
            "trusting authority, previous;\n"
            "right(\"file1\", \"read\");\n"
            "can($f) <- right($f, \"read\") trusting "
            "ed25519/acdd6d5b53bfee478bf689f8e012fe7988bf755e3d7c5152947abc149bc20189;\n"
            "check if can(\"file1\");\n"
            "check all can($f), $f.starts_with(\"file\");\n"
            "reject if right($f, \"write\");\n");
}

TEST(DatalogParserTest, ErrorsNameLineAndColumn) {
  EXPECT_THAT(ParseAuthorizerCode("right(\"a\");\ncheck if right(\"a\"\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseAuthorizerCode("right(\"a\");\ncheck if right(\"a\"\n").status().message(),
              HasSubstr("parse error at 3:1: expected ')'"));
  EXPECT_THAT(ParseAuthorizerCode("a(1)\nb(2);").status().message(),
              HasSubstr("parse error at 2:1: expected ';'"));
  EXPECT_THAT(ParseAuthorizerCode("check if a(99999999999999999999);").status().message(),
              HasSubstr("parse error at 1:12: integer out of range"));
  EXPECT_THAT(ParseAuthorizerCode("a($x);").status().message(),
              HasSubstr("a fact cannot contain variables"));
  EXPECT_THAT(ParseAuthorizerCode("check if t(2024-13-01T00:00:00Z);").status().message(),
              HasSubstr("invalid RFC 3339 date"));
  EXPECT_THAT(ParseAuthorizerCode("check if 1.frobnicate(2);").status().message(),
              HasSubstr("unknown method 'frobnicate'"));
  EXPECT_THAT(ParseAuthorizerCode("check if \"abc;").status().message(),
              HasSubstr("unterminated string"));
  EXPECT_THAT(ParseAuthorizerCode("check if " + std::string(200, '(') + "1").status().message(),
              HasSubstr("nesting too deep"));
}

}  // namespace
}  // namespace custos::caps
