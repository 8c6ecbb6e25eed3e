#include <gtest/gtest.h>

#include "custos/kernel/syscall.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

void ExpectSameAsJsonTree(const Json& j) {
  Result<Syscall> s = ParseSyscall(j);
  ASSERT_TRUE(s.ok()) << s.status();
  Result<std::string> fast = CanonicalRequest(*s);
  Result<std::string> tree = CanonicalJson(s->ToJson());
  ASSERT_TRUE(fast.ok()) << fast.status();
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(*fast, *tree);
}

TEST(CanonicalRequestTest, MatchesTheCanonicalJsonOfTheRequestTree) {
  ExpectSameAsJsonTree({{"agent", "a"}, {"run", "r"}, {"kind", "audit.commit"}});
  ExpectSameAsJsonTree(
      {{"agent", "a"},
       {"run", "r"},
       {"id", "req-1"},
       {"kind", "network.send"},
       {"target", "https://example.com/p?q=\"x\"\n"},
       {"args",
        {{"method", "POST"}, {"body", "é \u0001 ✓ 𝄞"}, {"headers", {{"b", "2"}, {"a", "1"}}}}},
       {"inputs", {"h_aaaaaaaaaaaaaaaaaaaaaaaaaa", "h_bbbbbbbbbbbbbbbbbbbbbbbbbb"}},
       {"labels", {"untrusted", "external", "source:x"}},
       {"intent", "fetch \\ the page"}});
  ExpectSameAsJsonTree({{"agent", "a"},
                        {"run", "r"},
                        {"kind", "memory.alloc"},
                        {"target", "note"},
                        {"args", {{"value", {{"z", {1, 2, {{"y", nullptr}}}}, {"a", true}}}}}});
}

TEST(ValidateSyscallTest, RejectsOutOfRangeKindsAndMistypedArgumentsBuiltInCode) {
  Syscall s;
  s.agent = "a";
  s.run = "r";
  s.kind = static_cast<SyscallKind>(200);
  EXPECT_THAT(ValidateSyscall(s), testing::StatusIs(Reason::kUnknownSyscall));
  s.kind = SyscallKind::kFileRead;
  s.target = "/tmp/x";
  s.args = {{"max_bytes", "ten"}};
  EXPECT_THAT(ValidateSyscall(s), testing::StatusIs(Reason::kSchemaViolation));
  s.args = {{"max_bytes", 10}};
  EXPECT_THAT(ValidateSyscall(s), testing::IsOk());
}

}  // namespace
}  // namespace custos::kernel
