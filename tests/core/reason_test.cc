#include "custos/core/reason.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace custos {
namespace {

bool IsSnakeCase(std::string_view s) {
  if (s.empty() || s.front() < 'a' || s.front() > 'z' || s.back() == '_')
    return false;
  char prev = 0;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok || (c == '_' && prev == '_'))
      return false;
    prev = c;
  }
  return true;
}

TEST(ReasonTest, NamesAreUniqueSnakeCase) {
  std::set<std::string_view> names;
  for (const ReasonInfo& info : AllReasons()) {
    EXPECT_TRUE(IsSnakeCase(info.name)) << info.name;
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name " << info.name;
  }
}

TEST(ReasonTest, NumbersAreUnique) {
  std::set<uint16_t> numbers;
  for (const ReasonInfo& info : AllReasons()) {
    EXPECT_TRUE(numbers.insert(static_cast<uint16_t>(info.reason)).second)
        << "duplicate number " << static_cast<int>(info.reason) << " (" << info.name << ")";
  }
}

TEST(ReasonTest, NameRoundTrips) {
  for (const ReasonInfo& info : AllReasons()) {
    EXPECT_EQ(ReasonName(info.reason), info.name);
    EXPECT_EQ(ReasonFromName(info.name), info.reason);
    EXPECT_EQ(&InfoOf(info.reason), &info);
  }
  EXPECT_EQ(ReasonFromName("no_such_reason"), std::nullopt);
}

TEST(ReasonTest, EveryReasonIsDocumentedWithAValidHttpStatus) {
  for (const ReasonInfo& info : AllReasons()) {
    EXPECT_FALSE(info.doc.empty()) << info.name;
    EXPECT_GE(info.http_status, 200) << info.name;
    EXPECT_LE(info.http_status, 599) << info.name;
  }
}

TEST(ReasonTest, OnlyOkHasOkClassAndExitCodeZero) {
  for (const ReasonInfo& info : AllReasons()) {
    const bool is_ok = info.reason == Reason::kOk;
    EXPECT_EQ(info.cls == ReasonClass::kOk, is_ok) << info.name;
    EXPECT_EQ(ExitCodeOf(info.reason) == 0, is_ok) << info.name;
  }
}

TEST(ReasonTest, ClassNamesAreSnakeCase) {
  for (const ReasonInfo& info : AllReasons()) {
    EXPECT_TRUE(IsSnakeCase(ReasonClassName(info.cls))) << info.name;
  }
}

}  // namespace
}  // namespace custos
