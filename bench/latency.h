#pragma once
// Per-call latency for Google Benchmark: time each call, then report p50/p99 (µs) as counters and
// the call count as items, the shape scripts/bench_report.py reads into docs/BENCHMARKS.md.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace custos::bench {

// Sorts `ns` and sets p50_us / p99_us / items processed; returns the median in ns (0 if empty).
inline double ReportLatency(benchmark::State& state, std::vector<int64_t>& ns) {
  if (ns.empty())
    return 0;
  std::sort(ns.begin(), ns.end());
  const double p50 = static_cast<double>(ns[ns.size() / 2]);
  state.counters["p50_us"] = benchmark::Counter(p50 / 1000.0, benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] = benchmark::Counter(
      ns[std::min(ns.size() - 1, ns.size() * 99 / 100)] / 1000.0, benchmark::Counter::kAvgThreads);
  state.SetItemsProcessed(static_cast<int64_t>(ns.size()));
  return p50;
}

// Times each call of `fn` (its result kept alive) and reports; returns the median in ns.
template <typename Fn>
double TimeCalls(benchmark::State& state, Fn&& fn) {
  std::vector<int64_t> ns;
  ns.reserve(1 << 16);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = fn();
    const auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(r);
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  return ReportLatency(state, ns);
}

}  // namespace custos::bench
