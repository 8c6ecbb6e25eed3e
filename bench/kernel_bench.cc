// Kernel decision benchmarks (issue 2 targets):
//   full decision (capability + policy + labels + budget + record, no effect), group and none
//   durability, 1 / 8 / 64 threads; and a full allowed syscall with a trivial effect.
// Each benchmark reports throughput (items_per_second) and, per thread, the median and p99 of the
// per-call latency it measured (counters p50_us / p99_us).

#include <benchmark/benchmark.h>

#include <map>
#include <mutex>

#include "bench_kernel.h"
#include "latency.h"

namespace {

using custos::bench::TimeCalls;
using custos::kernel::Kernel;
using custos::kernel::Syscall;

constexpr char kPolicy[] = R"(
[policy]
name = "bench"

[agents.agent]
syscalls = ["file.read", "assert", "memory.read"]

[fs]
read = ["/srv/allowed/**"]
deny = ["/srv/allowed/secret/**"]

[[flows]]
id = "no-untrusted-to-shell"
from = ["untrusted"]
to = ["tool:shell.*"]
action = "deny"
)";

// One kernel per durability for the whole process: the benchmark threads share it, as agents do.
Kernel& SharedKernel(custos::audit::Durability d) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<custos::bench::BenchKernel>> kernels;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<custos::bench::BenchKernel>& k = kernels[static_cast<int>(d)];
  if (!k)
    k = custos::bench::OpenBenchKernel("custos-bench-" + std::to_string(static_cast<int>(d)),
                                       kPolicy, d);
  return *k->kernel;
}

// A syscall by "agent" in run "bench", carrying the token the policy grants it.
Syscall MakeCall(Kernel& k, const char* kind, const char* target,
                 custos::Json args = custos::Json::object()) {
  return custos::bench::BenchCall("agent", kind, target, std::move(args),
                                  k.Grant("agent", "bench").value());
}

template <custos::audit::Durability D>
void BM_Decision(benchmark::State& state) {
  Kernel& k = SharedKernel(D);
  // A decision with no effect: the policy refuses it (no fs.read glob covers the canonical path),
  // and the refusal is recorded.
  const Syscall call = MakeCall(k, "file.read", "/etc/passwd");
  TimeCalls(state, [&] { return k.Execute(call); });
}

// Allowed, with a trivial effect: decision entry, effect, outcome entry.
// One per kernel: each kernel has its own token root.
const Syscall& AssertCall(Kernel& k) {
  static std::mutex mu;
  static std::map<Kernel*, Syscall> calls;
  std::lock_guard<std::mutex> lock(mu);
  auto it = calls.find(&k);
  if (it == calls.end()) {
    it = calls
             .emplace(&k, MakeCall(k, "assert", "budget_remaining",
                                   {{"resource", "tool_calls"}, {"at_least", 1}}))
             .first;
  }
  return it->second;
}

template <custos::audit::Durability D>
void BM_FullSyscall(benchmark::State& state) {
  Kernel& k = SharedKernel(D);
  const Syscall& call = AssertCall(k);
  TimeCalls(state, [&] { return k.Execute(call); });
}

// The decision stages alone (no record): capability, resolve, inputs, policy, labels, budget.
void BM_Explain(benchmark::State& state) {
  Kernel& k = SharedKernel(custos::audit::Durability::kNone);
  const Syscall& call = AssertCall(k);
  TimeCalls(state, [&] { return k.Explain(call); });
}

using custos::audit::Durability;
BENCHMARK(BM_Explain)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Decision<Durability::kNone>)
    ->Name("BM_Decision_None")
    ->UseRealTime()
    ->Threads(1)
    ->Threads(8)
    ->MinTime(1.0);
BENCHMARK(BM_Decision<Durability::kGroup>)
    ->Name("BM_Decision_Group")
    ->UseRealTime()
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->MinTime(1.0);
BENCHMARK(BM_FullSyscall<Durability::kNone>)
    ->Name("BM_FullSyscall_None")
    ->UseRealTime()
    ->Threads(1)
    ->MinTime(1.0);
BENCHMARK(BM_FullSyscall<Durability::kGroup>)
    ->Name("BM_FullSyscall_Group")
    ->UseRealTime()
    ->Threads(1)
    ->Threads(64)
    ->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
