// Policy evaluation cost. The 1,000-rule policy is generated: rules over file paths (globs with
// distinct literal prefixes, some exact targets), tools and hosts, for several agents and with
// label conditions, so lookups exercise the exact map, the prefix trie and the accept checks.
//
//   ./build/policy_bench --benchmark_filter=PolicyEval

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "custos/policy/policy.h"

namespace custos::policy {
namespace {

std::string Policy1000() {
  std::string t = R"(
[policy]
name = "bench-1000"
[agents.coder]
syscalls = ["*"]
[agents.reviewer]
syscalls = ["*"]
[fs]
read = ["/srv/work/**", "/usr/share/**"]
write = ["/srv/work/out/**"]
deny = ["**/.env", "**/.git/config"]
[net]
connect = ["api.github.com:443", "*.githubusercontent.com:443", "10.0.0.0/8:5432"]
deny = ["evil.example"]
internal = ["*.corp.example"]
[tools]
allow = ["git.*", "search", "fs.read_file"]
deny = ["git.push_force"]
[models]
allow = ["gpt-4o*", "claude-*"]
)";
  for (int i = 0; i < 1000; ++i) {
    const std::string n = std::to_string(i);
    const char* effect = (i % 4 == 0) ? "deny" : (i % 4 == 1 ? "require_approval" : "allow");
    std::string when;
    switch (i % 5) {
      case 0:
        when = "syscall = [\"file.read\", \"file.write\"], target = \"/data/proj" + n + "/**\"";
        break;
      case 1:
        when = "syscall = [\"file.read\"], target = \"/data/exact/" + n + ".txt\"";
        break;
      case 2:
        when = "syscall = [\"tool.invoke\"], target = \"mcp" + n + ".*\", agent = [\"reviewer\"]";
        break;
      case 3:
        when = "syscall = [\"network.send\"], target = \"https://api" + n + ".example.com/**\"";
        break;
      default:
        when = "syscall = [\"file.read\"], target = \"/data/lab" + n +
               "/*.md\", labels_reach = [\"untrusted\"]";
        break;
    }
    t += "[[rules]]\nid = \"r" + n + "\"\neffect = \"" + effect + "\"\nwhen = { " + when + " }\n";
  }
  return t;
}

std::shared_ptr<const Policy> Load1000() {
  static std::shared_ptr<const Policy> policy = [] {
    Result<std::shared_ptr<const Policy>> p = Policy::LoadString(Policy1000(), "bench.toml");
    if (!p.ok()) {
      std::fprintf(stderr, "%s\n", p.status().ToString().c_str());
      std::abort();
    }
    return std::move(p).value();
  }();
  return policy;
}

void Run(benchmark::State& state, const Request& r, Verdict expected) {
  auto p = Load1000();
  if (p->Decide(r).verdict != expected) {
    state.SkipWithError("unexpected verdict");
    return;
  }
  for (auto _ : state) {
    Decision d = p->Decide(r);
    benchmark::DoNotOptimize(d);
  }
}

const labels::LabelSet& Clean() {
  static const labels::LabelSet l;
  return l;
}

Request Base(SyscallKind k, std::string_view target) {
  Request r;
  r.agent = "coder";
  r.kind = k;
  r.target = target;
  r.labels = &Clean();
  return r;
}

// A path that falls through all 1,000 rules to the fs.read section: the common allow path.
void BM_PolicyEval_1000Rules(benchmark::State& state) {
  Run(state, Base(SyscallKind::kFileRead, "/srv/work/src/kernel/pipeline.cc"), Verdict::kAllow);
}
BENCHMARK(BM_PolicyEval_1000Rules);

// A glob rule deep in the file (rule 995) matched through the prefix trie.
void BM_PolicyEval_1000Rules_GlobRuleHit(benchmark::State& state) {
  Run(state, Base(SyscallKind::kFileRead, "/data/proj995/src/a.cc"), Verdict::kAllow);
}
BENCHMARK(BM_PolicyEval_1000Rules_GlobRuleHit);

// An exact-target rule (rule 991) found in the hash map.
void BM_PolicyEval_1000Rules_ExactRuleHit(benchmark::State& state) {
  Run(state, Base(SyscallKind::kFileRead, "/data/exact/991.txt"), Verdict::kAllow);
}
BENCHMARK(BM_PolicyEval_1000Rules_ExactRuleHit);

void BM_PolicyEval_1000Rules_ToolAllow(benchmark::State& state) {
  Run(state, Base(SyscallKind::kToolInvoke, "git.status"), Verdict::kAllow);
}
BENCHMARK(BM_PolicyEval_1000Rules_ToolAllow);

void BM_PolicyEval_1000Rules_NetAllowResolved(benchmark::State& state) {
  Request r = Base(SyscallKind::kNetworkSend, "https://raw.githubusercontent.com/acme/app/main/x");
  r.host = "raw.githubusercontent.com";
  r.port = 443;
  r.address = "185.199.108.133";
  Run(state, r, Verdict::kAllow);
}
BENCHMARK(BM_PolicyEval_1000Rules_NetAllowResolved);

// The deny path builds an explanation and a suggestion: it allocates by design.
void BM_PolicyEval_1000Rules_DenyWithExplanation(benchmark::State& state) {
  Run(state, Base(SyscallKind::kFileRead, "/etc/shadow"), Verdict::kDeny);
}
BENCHMARK(BM_PolicyEval_1000Rules_DenyWithExplanation);

void BM_PolicyEval_1000Rules_FlowDecide(benchmark::State& state) {
  auto p = Load1000();
  const Request r = Base(SyscallKind::kToolInvoke, "git.status");
  for (auto _ : state) {
    FlowResult f = p->FlowDecide(r);
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(BM_PolicyEval_1000Rules_FlowDecide);

void BM_PolicyLoad_1000Rules(benchmark::State& state) {
  const std::string text = Policy1000();
  for (auto _ : state) {
    Result<std::shared_ptr<const Policy>> p = Policy::LoadString(text, "bench.toml");
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_PolicyLoad_1000Rules)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace custos::policy

BENCHMARK_MAIN();
