// Replay benchmark (issue 4 target: replay ≥ 200k decisions/s).
//   BM_Replay_Decisions/decisions:N/decode_threads:T: `custos audit replay` of a generated log of
//   N decisions with T decoding threads beside the deciding one, end to end
//   from the SQLite store: read rows, open and parse each sealed request, decide it through the
//   kernel's pipeline, settle its outcome. The mix is effect-free: allowed asserts (with their
//   outcomes), asserts whose effect fails, capability and policy denials.
// items_per_second = decisions replayed per second. The log is generated once per process (a
// kernel with durability none), outside the timed loop.
//   ./replay_bench --benchmark_min_time=0.1

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <map>

#include "bench_kernel.h"
#include "custos/crypto/key_store.h"
#include "custos/kernel/replay.h"

namespace {

using custos::kernel::Kernel;

constexpr char kPolicy[] = R"(
[policy]
name = "replay-bench"

[agents.agent]
syscalls = ["file.read", "assert", "memory.read"]

[agents.nobody]
syscalls = []

[fs]
read = ["/srv/allowed/**"]
)";

struct Log {
  std::unique_ptr<custos::bench::BenchKernel> bench;
  Kernel* kernel = nullptr;
  int64_t decisions = 0;
};

// One generated log per size for the whole process.
Log& LogOf(int64_t decisions) {
  static std::map<int64_t, Log> logs;
  Log& l = logs[decisions];
  if (l.kernel)
    return l;
  l.bench = custos::bench::OpenBenchKernel("custos-replay-bench-" + std::to_string(decisions),
                                           kPolicy, custos::audit::Durability::kNone);
  l.kernel = l.bench->kernel.get();
  // "agent" presents its grant, so its calls get past the capability stage; "nobody" has no
  // grant and presents none.
  const std::string token = l.kernel->Grant("agent", "bench").value();
  auto call = [&](const char* agent, const char* kind, const char* target, custos::Json args) {
    const std::string& t = std::string_view(agent) == "agent" ? token : std::string();
    l.kernel->Execute(custos::bench::BenchCall(agent, kind, target, std::move(args), t));
  };
  for (int64_t i = 0; i < decisions; ++i) {
    switch (i % 8) {
      case 0:  // refused by the capability stage (no token)
        call("nobody", "assert", "labels_at_most", {{"labels", {"trusted"}}});
        break;
      case 1:  // refused by the policy (no fs.read glob)
        call("agent", "memory.read", "missing-object", custos::Json::object());
        break;
      default:  // allowed, with an outcome
        call("agent", "assert", "labels_at_most", {{"labels", {"trusted"}}});
        break;
    }
  }
  (void)l.kernel->Commit();
  l.decisions = decisions;
  return l;
}

double ProcessCpuMicros() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

void BM_Replay_Decisions(benchmark::State& state) {
  Log& l = LogOf(state.range(0));
  auto policy = custos::bench::BenchPolicy(kPolicy);
  int64_t replayed = 0;
  double process_cpu_us = 0;
  for (auto _ : state) {
    state.PauseTiming();
    custos::crypto::SigningKey key =
        custos::crypto::KeyStore::Load(l.bench->dir / "identity.key", std::nullopt).value();
    state.ResumeTiming();
    custos::kernel::ReplayOptions o;
    o.policy = policy;
    o.decode_threads = static_cast<int>(state.range(1));
    const double before = ProcessCpuMicros();
    custos::Result<custos::kernel::ReplayReport> r =
        custos::kernel::ReplayLog(l.kernel->store(), std::move(key), o);
    process_cpu_us += ProcessCpuMicros() - before;
    if (!r.ok() || r->same != l.decisions) {
      state.SkipWithError("replay failed or differed");
      return;
    }
    replayed += r->decisions;
  }
  state.SetItemsProcessed(replayed);
  // CPU of every thread of the process per decision: what the replay costs whatever else the
  // machine runs (two idle cores replay at most 2 / cpu_us_per_decision million decisions/s).
  state.counters["cpu_us_per_decision"] = replayed > 0 ? process_cpu_us / replayed : 0;
}

BENCHMARK(BM_Replay_Decisions)
    ->ArgNames({"decisions", "decode_threads"})
    ->Args({100'000, 1})
    ->Args({100'000, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
