// The allow path of Policy::Decide() must not allocate (include/custos/policy/policy.h). This
// binary replaces the global operator new with a counting one; the counter is only read around
// the calls under test.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "custos/policy/policy.h"

// Sanitizers interpose operator new themselves; counting is meaningless there, so the
// replacement is compiled out and the allocation tests skip.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CUSTOS_COUNTING_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CUSTOS_COUNTING_NEW 0
#endif
#endif
#ifndef CUSTOS_COUNTING_NEW
#define CUSTOS_COUNTING_NEW 1
#endif

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

#if CUSTOS_COUNTING_NEW
// noinline: GCC would otherwise inline free() into delete-expressions and warn that it pairs with
// operator new (-Wmismatched-new-delete), which is exactly what a replacement does.
[[gnu::noinline]] void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) { return operator new(n); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace custos::policy {
namespace {

std::shared_ptr<const Policy> LoadWithRules() {
  std::string text = R"(
[policy]
name = "alloc"
[agents.coder]
syscalls = ["*"]
[fs]
read = ["/srv/work/**"]
write = ["/srv/work/out/**"]
deny = ["**/.env"]
[net]
connect = ["api.github.com:443", "*.example.com:443", "10.0.0.0/8:5432"]
deny = ["evil.example"]
internal = ["db.corp"]
[tools]
allow = ["git.*", "search"]
deny = ["git.push_force"]
[models]
allow = ["gpt-4o*"]
[secrets.k]
source = "env:K"
agents = ["coder"]
destinations = ["api.github.com:443"]
)";
  for (int i = 0; i < 200; ++i) {
    const std::string n = std::to_string(i);
    text += "[[rules]]\nid = \"r" + n + "\"\neffect = \"" + (i % 3 == 0 ? "deny" : "allow") +
            "\"\nwhen = { syscall = [\"file.read\"], target = \"/data/p" + n +
            "/**\", agent = [\"coder\"], labels_below = [\"private\"] }\n";
  }
  text +=
      "[[rules]]\nid = \"lit\"\neffect = \"allow\"\n"
      "when = { syscall = [\"file.read\"], target = \"/data/literal.txt\" }\n";
  Result<std::shared_ptr<const Policy>> p = Policy::LoadString(text, "alloc.toml");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(p).value() : nullptr;
}

long AllocationsDuring(const Policy& p, const Request& r, Verdict* verdict) {
  const long before = g_allocations.load();
  Decision d = p.Decide(r);
  const long after = g_allocations.load();
  *verdict = d.verdict;
  return after - before;
}

TEST(PolicyAllocationTest, AllowPathDoesNotAllocate) {
  if (!CUSTOS_COUNTING_NEW) {
    GTEST_SKIP() << "operator new is the sanitizer's";
  }
  auto p = LoadWithRules();
  ASSERT_NE(p, nullptr);
  const labels::LabelSet labels;  // bottom; built before counting
  struct Case {
    SyscallKind kind;
    std::string_view target;
    std::string_view host;
    uint16_t port;
    std::string_view address;
  };
  const Case cases[] = {
      {SyscallKind::kFileRead, "/srv/work/src/main.cc", "", 0, ""},  // fs.read
      {SyscallKind::kFileRead, "/data/p199/x", "", 0, ""},           // rule r199 via trie
      {SyscallKind::kFileRead, "/data/literal.txt", "", 0, ""},      // exact-target rule
      {SyscallKind::kFileWrite, "/srv/work/out/a", "", 0, ""},       // fs.write
      {SyscallKind::kNetworkSend, "", "api.github.com", 443, "140.82.112.5"},
      {SyscallKind::kNetworkSend, "", "10.1.2.3", 5432, "10.1.2.3"},  // CIDR, private IP
      {SyscallKind::kNetworkSend, "", "x.example.com", 443, "2606:4700::1111"},
      {SyscallKind::kToolInvoke, "git.status", "", 0, ""},
      {SyscallKind::kToolDescribe, "search", "", 0, ""},
      {SyscallKind::kModelCall, "gpt-4o-mini", "", 0, ""},
      {SyscallKind::kSecretOpen, "k", "", 0, ""},
      {SyscallKind::kMemoryWrite, "obj", "", 0, ""},  // kernel.internal
  };
  for (const Case& c : cases) {
    Request r;
    r.agent = "coder";
    r.kind = c.kind;
    r.target = c.target;
    r.host = c.host;
    r.port = c.port;
    r.address = c.address;
    r.labels = &labels;
    Verdict v = Verdict::kDeny;
    EXPECT_EQ(AllocationsDuring(*p, r, &v), 0) << SyscallName(c.kind) << " " << c.target << c.host;
    EXPECT_EQ(v, Verdict::kAllow) << SyscallName(c.kind) << " " << c.target << c.host;
  }
}

TEST(PolicyAllocationTest, FlowDecideAllowDoesNotAllocate) {
  if (!CUSTOS_COUNTING_NEW) {
    GTEST_SKIP() << "operator new is the sanitizer's";
  }
  Result<std::shared_ptr<const Policy>> p = Policy::LoadString(R"(
[policy]
name = "f"
[agents.a]
syscalls = ["*"]
[[flows]]
id = "u"
from = ["untrusted"]
to = ["tool:shell.*", "net:external", "model"]
)",
                                                               "f.toml");
  ASSERT_TRUE(p.ok()) << p.status();
  const labels::LabelSet clean;
  Request r;
  r.agent = "a";
  r.kind = SyscallKind::kToolInvoke;
  r.target = "shell.exec";
  r.labels = &clean;
  const long before = g_allocations.load();
  FlowResult f = (*p)->FlowDecide(r);
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_EQ(f.verdict, Verdict::kAllow);
}

TEST(PolicyAllocationTest, CounterSeesAllocations) {
  if (!CUSTOS_COUNTING_NEW) {
    GTEST_SKIP() << "operator new is the sanitizer's";
  }
  const long before = g_allocations.load();
  std::string s(100, 'x');
  EXPECT_GT(g_allocations.load() - before, 0);
  EXPECT_EQ(s.size(), 100u);
}

}  // namespace
}  // namespace custos::policy
