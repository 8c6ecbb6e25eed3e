#pragma once
// Checked-in test vectors (docs/spec/vectors/): locating them, and comparing a generated vector
// document with the checked-in file. With CUSTOS_REGEN_VECTORS=1 the file is rewritten instead
// (the test then skips), so an intended format change is one command and a reviewable diff.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "custos/core/json.h"

namespace custos::testing {

// $CUSTOS_SOURCE_DIR (set by ctest), else the repository root derived from this header's path.
inline std::filesystem::path SourceDir() {
  if (const char* env = std::getenv("CUSTOS_SOURCE_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

inline std::filesystem::path VectorFile(std::string_view name) {
  return SourceDir() / "docs" / "spec" / "vectors" / std::string(name);
}

// Reads a checked-in vector file; fails the test if it is missing.
inline std::string ReadVectorFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing " << path << " (generate it with CUSTOS_REGEN_VECTORS=1)";
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Expects the file at `path` to be exactly `generated.dump(2) + "\n"`. `spec` names the document
// to update when the format changes on purpose.
inline void ExpectVectorFileMatches(const std::filesystem::path& path, const Json& generated,
                                    std::string_view spec) {
  if (const char* regen = std::getenv("CUSTOS_REGEN_VECTORS");
      regen != nullptr && std::string(regen) == "1") {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << generated.dump(2) << "\n";
    ASSERT_TRUE(out.good()) << "cannot write " << path;
    GTEST_SKIP() << "regenerated " << path;
  }
  const std::string text = ReadVectorFile(path);
  Json checked_in = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(checked_in.is_discarded()) << path << " is not valid JSON";
  EXPECT_EQ(checked_in, generated) << "the format changed; if intended, update " << spec
                                   << " and regenerate with CUSTOS_REGEN_VECTORS=1";
  // The file is exactly what the generator writes, so reviews see real diffs.
  EXPECT_EQ(text, generated.dump(2) + "\n");
}

}  // namespace custos::testing
