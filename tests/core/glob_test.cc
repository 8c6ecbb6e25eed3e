#include "custos/core/glob.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "testing/matchers.h"

namespace custos {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

bool M(std::string_view pattern, std::string_view text, char sep = '/') {
  Result<Glob> g = Glob::Compile(pattern, sep);
  EXPECT_THAT(g, IsOk()) << pattern;
  return g.ok() && g->Matches(text);
}

TEST(GlobTest, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(M("/etc/hosts", "/etc/hosts"));
  EXPECT_FALSE(M("/etc/hosts", "/etc/hosts2"));
  EXPECT_FALSE(M("/etc/hosts", "/etc/host"));
  Result<Glob> g = Glob::Compile("/etc/hosts");
  ASSERT_THAT(g, IsOk());
  EXPECT_TRUE(g->is_literal());
  EXPECT_EQ(g->literal_prefix(), "/etc/hosts");
}

TEST(GlobTest, StarDoesNotCrossSeparator) {
  EXPECT_TRUE(M("/a/*", "/a/b"));
  EXPECT_TRUE(M("/a/*", "/a/"));
  EXPECT_FALSE(M("/a/*", "/a/b/c"));
  EXPECT_TRUE(M("/a/*.txt", "/a/notes.txt"));
  EXPECT_FALSE(M("/a/*.txt", "/a/sub/notes.txt"));
  EXPECT_TRUE(M("/a/*/c", "/a/b/c"));
  EXPECT_FALSE(M("/a/*/c", "/a/b/x/c"));
}

TEST(GlobTest, StarBacktracksWithinSegment) {
  EXPECT_TRUE(M("/*a*b", "/xaxaxb"));
  EXPECT_TRUE(M("/*.tar.gz", "/x.tar.tar.gz"));
  EXPECT_FALSE(M("/*.tar.gz", "/x.tar.gz/y"));
  EXPECT_TRUE(M("*ab*ab", "abababab"));
}

TEST(GlobTest, QuestionMatchesOneNonSeparator) {
  EXPECT_TRUE(M("/a?c", "/abc"));
  EXPECT_FALSE(M("/a?c", "/ac"));
  EXPECT_FALSE(M("/a?c", "/abbc"));
  EXPECT_FALSE(M("/a?c", "/a/c"));
}

TEST(GlobTest, DoubleStarCrossesSeparators) {
  EXPECT_TRUE(M("/a/**", "/a/b/c/d"));
  EXPECT_TRUE(M("/a/**", "/a/"));
  EXPECT_FALSE(M("/a/**", "/a"));
  EXPECT_FALSE(M("/a/**", "/ab"));
  EXPECT_TRUE(M("/a/**.txt", "/a/b/c.txt"));
  EXPECT_TRUE(M("/**", "/"));
}

TEST(GlobTest, DoubleStarMatchesZeroSegments) {
  EXPECT_TRUE(M("/a/**/b", "/a/b"));
  EXPECT_TRUE(M("/a/**/b", "/a/x/b"));
  EXPECT_TRUE(M("/a/**/b", "/a/x/y/z/b"));
  EXPECT_FALSE(M("/a/**/b", "/a/xb"));
  EXPECT_FALSE(M("/a/**/b", "/ab"));
  EXPECT_FALSE(M("/a/**/b", "/a/b/c"));
}

TEST(GlobTest, DoubleStarSegmentCombinesWithStar) {
  EXPECT_TRUE(M("/src/**/*.cc", "/src/main.cc"));
  EXPECT_TRUE(M("/src/**/*.cc", "/src/a/b/main.cc"));
  EXPECT_FALSE(M("/src/**/*.cc", "/src/a/b/main.h"));
  EXPECT_FALSE(M("/src/**/*.cc", "/src/a/main.cc/x"));
  EXPECT_TRUE(M("/a/**/b/**/c", "/a/b/c"));
  EXPECT_TRUE(M("/a/**/b/**/c", "/a/x/b/y/b/z/c"));
}

TEST(GlobTest, StarFallsBackToEarlierDoubleStar) {
  // The `*` cannot cross '/', so the `**` must take the extra segment.
  EXPECT_TRUE(M("/**x*y", "/x/xay"));
  EXPECT_FALSE(M("/**x*y", "/x/ay"));
  EXPECT_TRUE(M("**a*b", "a/a/ab"));
}

TEST(GlobTest, SeparatorIsConfigurable) {
  EXPECT_TRUE(M("*.example.com", "api.example.com", '.'));
  EXPECT_FALSE(M("*.example.com", "a.b.example.com", '.'));
  EXPECT_FALSE(M("*.example.com", "example.com", '.'));
  EXPECT_TRUE(M("**.example.com", "a.b.example.com", '.'));
  EXPECT_TRUE(M("fs.*", "fs.read", '.'));
  EXPECT_TRUE(M("/a/*", "/a/b.c", '.') == false);
  EXPECT_TRUE(M("a/*", "a/b/c", '.'));
}

TEST(GlobTest, RejectsClassesBracesAndEscapes) {
  for (const char* bad : {"/a/[bc]", "/a/]", "/a/{b,c}", "/a/}", "/a/\\*"}) {
    EXPECT_THAT(Glob::Compile(bad), StatusIs(Reason::kPolicyBadPattern)) << bad;
  }
}

TEST(GlobTest, RejectsTripleStarAndEmpty) {
  EXPECT_THAT(Glob::Compile("/a/***"), StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(Glob::Compile(""), StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(Glob::Compile(std::string_view("/a\0b", 4)), StatusIs(Reason::kPolicyBadPattern));
}

TEST(GlobTest, LiteralPrefixStopsAtFirstWildcard) {
  Result<Glob> g = Glob::Compile("/work/src/**/*.cc");
  ASSERT_THAT(g, IsOk());
  EXPECT_FALSE(g->is_literal());
  EXPECT_EQ(g->literal_prefix(), "/work/src/");
  EXPECT_EQ(g->pattern(), "/work/src/**/*.cc");
  Result<Glob> q = Glob::Compile("/tmp/f?le");
  ASSERT_THAT(q, IsOk());
  EXPECT_EQ(q->literal_prefix(), "/tmp/f");
  Result<Glob> s = Glob::Compile("*");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->literal_prefix(), "");
}

TEST(GlobTest, PathologicalPatternFinishesQuickly) {
  // Exponential for a naive recursive matcher; quadratic at worst here.
  const std::string text(5000, 'a');
  EXPECT_FALSE(M("/**a*a*a*a*a*a*a*a*a*b", "/" + text));
  EXPECT_FALSE(M("**a**a**a**a**a**b", text));
  EXPECT_TRUE(M("**a**a**a**a**a**a", text));
}

TEST(GlobTest, EmptyTextOnlyMatchesStarPatterns) {
  EXPECT_TRUE(M("*", ""));
  EXPECT_TRUE(M("**", ""));
  EXPECT_FALSE(M("?", ""));
  EXPECT_FALSE(M("/", ""));
}

}  // namespace
}  // namespace custos
