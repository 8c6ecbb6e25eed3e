#include "custos/effects/patch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "testing/matchers.h"

namespace custos::effects {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kFile =
    "line1\n"
    "line2\n"
    "line3\n"
    "line4\n"
    "line5\n"
    "line6\n"
    "line7\n"
    "line8\n";

TEST(ApplyUnifiedDiffTest, AppliesAGitDiff) {
  std::string diff =
      "diff --git a/f.txt b/f.txt\n"
      "index 1111111..2222222 100644\n"
      "--- a/f.txt\n"
      "+++ b/f.txt\n"
      "@@ -2,3 +2,3 @@ section\n"
      " line2\n"
      "-line3\n"
      "+LINE3\n"
      " line4\n";
  auto r = ApplyUnifiedDiff(kFile, diff);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "line1\nline2\nLINE3\nline4\nline5\nline6\nline7\nline8\n");
}

TEST(ApplyUnifiedDiffTest, AppliesSeveralHunks) {
  std::string diff =
      "--- a/f\n+++ b/f\n"
      "@@ -1,2 +1,3 @@\n"
      " line1\n"
      "+inserted\n"
      " line2\n"
      "@@ -7,2 +8,1 @@\n"
      " line7\n"
      "-line8\n";
  auto r = ApplyUnifiedDiff(kFile, diff);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "line1\ninserted\nline2\nline3\nline4\nline5\nline6\nline7\n");
}

TEST(ApplyUnifiedDiffTest, AppliesAtAUniqueOffsetWhenLineNumbersAreStale) {
  std::string diff =
      "@@ -1,3 +1,3 @@\n"
      " line5\n"
      "-line6\n"
      "+six\n"
      " line7\n";
  auto r = ApplyUnifiedDiff(kFile, diff);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "line1\nline2\nline3\nline4\nline5\nsix\nline7\nline8\n");
}

TEST(ApplyUnifiedDiffTest, ContextMismatchNamesTheHunkAndLine) {
  std::string diff =
      "@@ -1,2 +1,2 @@\n"
      " line1\n"
      "+x\n"
      "@@ -3,2 +4,2 @@\n"
      " line3\n"
      "-not-line4\n"
      "+new\n";
  auto r = ApplyUnifiedDiff(kFile, diff);
  ASSERT_THAT(r, StatusIs(Reason::kInvalidArgument));
}

TEST(ApplyUnifiedDiffTest, MismatchMessageNamesHunkLineAndQuotesOnlyTheDiff) {
  std::string diff =
      "@@ -3,2 +3,2 @@\n"
      " line3\n"
      "-not-line4\n"
      "+new\n";
  auto r = ApplyUnifiedDiff(kFile, diff);
  ASSERT_THAT(r, StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("hunk 1"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("line 4"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not-line4"));
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("\"line4\"")));
}

TEST(ApplyUnifiedDiffTest, AmbiguousRelocationIsRefused) {
  std::string file = "a\nx\nb\na\nx\nb\n";
  std::string diff =
      "@@ -10,3 +10,3 @@\n"
      " a\n"
      "-x\n"
      "+y\n"
      " b\n";
  auto r = ApplyUnifiedDiff(file, diff);
  ASSERT_THAT(r, StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("ambiguous"));
}

TEST(ApplyUnifiedDiffTest, CreatesContentFromAnEmptyFile) {
  auto r = ApplyUnifiedDiff("", "--- /dev/null\n+++ b/new\n@@ -0,0 +1,2 @@\n+a\n+b\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "a\nb\n");
}

TEST(ApplyUnifiedDiffTest, DeletesEverything) {
  auto r = ApplyUnifiedDiff("a\nb\n", "@@ -1,2 +0,0 @@\n-a\n-b\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "");
}

TEST(ApplyUnifiedDiffTest, HonoursNoNewlineMarkers) {
  std::string diff =
      "@@ -1,2 +1,2 @@\n"
      " a\n"
      "-b\n"
      "\\ No newline at end of file\n"
      "+c\n"
      "\\ No newline at end of file\n";
  auto r = ApplyUnifiedDiff("a\nb", diff);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "a\nc");
}

TEST(ApplyUnifiedDiffTest, AddsTheMissingFinalNewline) {
  std::string diff =
      "@@ -1,2 +1,2 @@\n"
      " a\n"
      "-b\n"
      "\\ No newline at end of file\n"
      "+b\n";
  auto r = ApplyUnifiedDiff("a\nb", diff);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "a\nb\n");
}

TEST(ApplyUnifiedDiffTest, NoNewlineMarkerMustMatchTheFile) {
  std::string diff =
      "@@ -1,1 +1,1 @@\n"
      "-a\n"
      "\\ No newline at end of file\n"
      "+b\n";
  EXPECT_THAT(ApplyUnifiedDiff("a\n", diff), StatusIs(Reason::kInvalidArgument));
}

TEST(ApplyUnifiedDiffTest, OmittedCountMeansOne) {
  auto r = ApplyUnifiedDiff("a\nb\n", "@@ -2 +2 @@\n-b\n+B\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "a\nB\n");
}

TEST(ApplyUnifiedDiffTest, EmptyLineInAHunkIsEmptyContext) {
  auto r = ApplyUnifiedDiff("a\n\nb\n", "@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "a\n\nc\n");
}

TEST(ApplyUnifiedDiffTest, CarriageReturnsMustMatch) {
  EXPECT_THAT(ApplyUnifiedDiff("a\r\nb\r\n", "@@ -1 +1 @@\n-a\n+x\n"),
              StatusIs(Reason::kInvalidArgument));
  auto r = ApplyUnifiedDiff("a\r\nb\r\n", "@@ -1 +1 @@\n-a\r\n+x\r\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "x\r\nb\r\n");
}

TEST(ApplyUnifiedDiffTest, MalformedDiffsAreInvalidArgument) {
  EXPECT_THAT(ApplyUnifiedDiff(kFile, ""), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ApplyUnifiedDiff(kFile, "just text\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ApplyUnifiedDiff(kFile, "@@ -1,x +1 @@\n line1\n"),
              StatusIs(Reason::kInvalidArgument));
  // Truncated: the header promises three old lines.
  EXPECT_THAT(ApplyUnifiedDiff(kFile, "@@ -1,3 +1,3 @@\n line1\n"),
              StatusIs(Reason::kInvalidArgument));
  // More lines than the header says.
  EXPECT_THAT(ApplyUnifiedDiff(kFile, "@@ -1,1 +1,1 @@\n line1\n-line2\n"),
              StatusIs(Reason::kInvalidArgument));
  // A bad line type.
  EXPECT_THAT(ApplyUnifiedDiff(kFile, "@@ -1,1 +1,1 @@\n*line1\n"),
              StatusIs(Reason::kInvalidArgument));
}

TEST(ApplyUnifiedDiffTest, SecondFileIsRefused) {
  std::string diff =
      "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-line1\n+x\n"
      "--- a/g\n+++ b/g\n@@ -1 +1 @@\n-y\n+z\n";
  auto r = ApplyUnifiedDiff(kFile, diff);
  ASSERT_THAT(r, StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("more than one file"));
}

TEST(ApplyUnifiedDiffTest, OverlappingHunksAreRefused) {
  std::string diff =
      "@@ -1,2 +1,2 @@\n line1\n-line2\n+two\n"
      "@@ -2,1 +2,1 @@\n-line2\n+deux\n";
  EXPECT_THAT(ApplyUnifiedDiff(kFile, diff), StatusIs(Reason::kInvalidArgument));
}

TEST(ApplyEditsTest, ReplacesEachUniqueOccurrence) {
  auto r = ApplyEdits("alpha beta gamma", {{"alpha", "A"}, {"gamma", "G"}});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "A beta G");
}

TEST(ApplyEditsTest, EditsApplyToTheOriginalNotToEachOther) {
  auto r = ApplyEdits("one two", {{"one", "two"}, {"two", "three"}});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, "two three");
}

TEST(ApplyEditsTest, MissingOldTextIsInvalidArgument) {
  auto r = ApplyEdits("abc", {{"abc", "x"}, {"zzz", "y"}});
  ASSERT_THAT(r, StatusIs(Reason::kInvalidArgument));
  EXPECT_EQ(r.status().at(), "/1");
}

TEST(ApplyEditsTest, RepeatedOldTextIsInvalidArgument) {
  auto r = ApplyEdits("ab ab", {{"ab", "x"}});
  ASSERT_THAT(r, StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("more than once"));
  // Overlapping self-occurrences count too.
  EXPECT_THAT(ApplyEdits("aaa", {{"aa", "b"}}), StatusIs(Reason::kInvalidArgument));
}

TEST(ApplyEditsTest, OverlappingEditsAreInvalidArgument) {
  EXPECT_THAT(ApplyEdits("abcdef", {{"abcd", "x"}, {"cdef", "y"}}),
              StatusIs(Reason::kInvalidArgument));
}

TEST(ApplyEditsTest, EmptyOldTextIsInvalidArgument) {
  EXPECT_THAT(ApplyEdits("abc", {{"", "x"}}), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos::effects
