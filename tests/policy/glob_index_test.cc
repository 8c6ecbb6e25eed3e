#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "policy/glob_index_internal.h"

namespace custos::policy::internal {
namespace {

Glob G(std::string_view p, char sep = '/') { return Glob::Compile(p, sep).value(); }

TEST(GlobIndexTest, IndexPrefixIsConservative) {
  EXPECT_EQ(IndexPrefix("/a/b", '/'), "/a/b");
  EXPECT_EQ(IndexPrefix("/a/b*", '/'), "/a/b");
  EXPECT_EQ(IndexPrefix("/a/**", '/'), "/a");  // "/a/**" may match "/a"
  EXPECT_EQ(IndexPrefix("/a/?", '/'), "/a/");
  EXPECT_EQ(IndexPrefix("**/x", '/'), "");
  EXPECT_EQ(IndexPrefix("git.**", '.'), "git");
}

TEST(GlobIndexTest, ReturnsTheLowestMatchingId) {
  GlobIndex index;
  index.Add(G("/data/**"), '/', 5);
  index.Add(G("/data/x/*"), '/', 2);
  index.Add(G("/data/x/f"), '/', 7);
  index.AddAny(9);
  index.Finish();
  EXPECT_EQ(index.First("/data/x/f"), 2u);
  EXPECT_EQ(index.First("/data/y"), 5u);
  EXPECT_EQ(index.First("/other"), 9u);
  EXPECT_EQ(index.First("/data/x/f", [](uint32_t id) { return id != 2; }), 5u);
  EXPECT_EQ(index.First("/data/x/f", [](uint32_t id) { return id == 7; }), 7u);
  EXPECT_EQ(index.First("/data/x/f", [](uint32_t) { return false; }), GlobIndex::kNone);
  EXPECT_EQ(index.size(), 4u);
}

TEST(GlobIndexTest, EmptyIndexMatchesNothing) {
  GlobIndex index;
  index.Finish();
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.First("/x"), GlobIndex::kNone);
}

// Differential: the index must return exactly what a linear first-match scan returns.
TEST(GlobIndexTest, AgreesWithALinearScan) {
  std::mt19937 rng(42);
  const std::vector<std::string> parts = {"a", "b", "ab", "*", "**", "?", "x.y", "c*"};
  auto random_pattern = [&] {
    std::string p;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      p += "/";
      p += parts[rng() % parts.size()];
    }
    return p;
  };
  const std::vector<std::string> words = {"a", "b", "ab", "abc", "x.y", "c", "cc", ""};
  auto random_path = [&] {
    std::string p;
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) {
      p += "/";
      p += words[rng() % words.size()];
    }
    return p;
  };
  for (int round = 0; round < 50; ++round) {
    std::vector<Glob> globs;
    GlobIndex index;
    for (uint32_t id = 0; id < 40; ++id) {
      Result<Glob> g = Glob::Compile(random_pattern(), '/');
      if (!g.ok()) {
        continue;
      }
      globs.push_back(g.value());
      index.Add(globs.back(), '/', static_cast<uint32_t>(globs.size() - 1));
    }
    index.Finish();
    for (int q = 0; q < 200; ++q) {
      const std::string path = random_path();
      uint32_t expected = GlobIndex::kNone;
      for (uint32_t i = 0; i < globs.size(); ++i) {
        if (globs[i].Matches(path)) {
          expected = i;
          break;
        }
      }
      ASSERT_EQ(index.First(path), expected) << path;
    }
  }
}

}  // namespace
}  // namespace custos::policy::internal
