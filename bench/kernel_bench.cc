// Kernel decision benchmarks (issue 2 targets):
//   full decision (capability + policy + labels + budget + record, no effect), group and none
//   durability, 1 / 8 / 64 threads; and a full allowed syscall with a trivial effect.
// Each benchmark reports throughput (items_per_second) and, per thread, the median and p99 of the
// per-call latency it measured (counters p50_us / p99_us).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "custos/kernel/kernel.h"
#include "custos/policy/policy.h"

namespace {

using custos::kernel::Kernel;
using custos::kernel::KernelOptions;
using custos::kernel::Syscall;

constexpr char kPolicy[] = R"(
[policy]
name = "bench"

[agents.agent]
syscalls = ["file.read", "assert", "memory.read"]

[budgets.default]
model_tokens_in = 1000000
model_tokens_out = 1000000
tool_calls = 1000000
wall_ms = 86400000
net_bytes_out = 1000000000
spend_micros = 1000000000

[fs]
read = ["/srv/allowed/**"]
deny = ["/srv/allowed/secret/**"]

[[flows]]
id = "no-untrusted-to-shell"
from = ["untrusted"]
to = ["tool:shell.*"]
action = "deny"
)";

struct Bench {
  std::filesystem::path dir;
  std::unique_ptr<Kernel> kernel;
};

// One kernel per (durability) for the whole process: the benchmark threads share it, as agents do.
Kernel& SharedKernel(custos::audit::Durability d) {
  static std::mutex mu;
  static std::map<int, Bench> kernels;
  std::lock_guard<std::mutex> lock(mu);
  Bench& b = kernels[static_cast<int>(d)];
  if (!b.kernel) {
    b.dir = std::filesystem::temp_directory_path() / ("custos-bench-" + std::to_string(::getpid()) +
                                                      "-" + std::to_string(static_cast<int>(d)));
    std::filesystem::remove_all(b.dir);
    KernelOptions o;
    o.data_dir = b.dir;
    o.policy = custos::policy::Policy::LoadString(kPolicy, "bench.toml").value();
    o.durability = d;
    o.notice = [](const std::string&) {};
    b.kernel = Kernel::Open(std::move(o)).value();
  }
  return *b.kernel;
}

// A syscall by "agent" in run "bench", carrying the token the policy grants it.
Syscall MakeCall(Kernel& k, const char* kind, const char* target,
                 custos::Json args = custos::Json::object()) {
  custos::Json j = {
      {"agent", "agent"}, {"run", "bench"}, {"kind", kind}, {"target", target}, {"args", args}};
  Syscall call = custos::kernel::ParseSyscall(j).value();
  call.token = k.Grant("agent", "bench").value();
  return call;
}

void Report(benchmark::State& state, std::vector<int64_t>& ns) {
  if (ns.empty())
    return;
  std::sort(ns.begin(), ns.end());
  state.counters["p50_us"] =
      benchmark::Counter(ns[ns.size() / 2] / 1000.0, benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] = benchmark::Counter(
      ns[std::min(ns.size() - 1, ns.size() * 99 / 100)] / 1000.0, benchmark::Counter::kAvgThreads);
  state.SetItemsProcessed(static_cast<int64_t>(ns.size()));
}

// Times each call of `fn` and reports throughput and per-call p50/p99.
template <typename Fn>
void TimeCalls(benchmark::State& state, Fn&& fn) {
  std::vector<int64_t> ns;
  ns.reserve(1 << 16);
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = fn();
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(r);
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  Report(state, ns);
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
