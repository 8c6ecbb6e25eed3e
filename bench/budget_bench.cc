// Budget ledger benchmarks: one Reserve + Settle cycle per iteration (what every external syscall
// costs in the budget stage), with all threads on one account (worst contention: one agent's
// parallel tool calls) or each thread on its own account (many agents).

#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "custos/budget/ledger.h"

namespace custos::budget {
namespace {

std::unique_ptr<Ledger> g_ledger;

Amounts Unlimited() {
  Amounts a;
  a.v.fill(kUnlimited);
  return a;
}

Amounts Cost() {
  Amounts a;
  a[Resource::kToolCalls] = 1;
  a[Resource::kModelTokensIn] = 1000;
  a[Resource::kWallMs] = 30'000;
  return a;
}

Amounts Used() {
  Amounts a;
  a[Resource::kToolCalls] = 1;
  a[Resource::kModelTokensIn] = 412;
  a[Resource::kWallMs] = 1'250;
  return a;
}

void RunReserveSettle(benchmark::State& state, bool shared_account) {
  if (state.thread_index() == 0) {
    g_ledger = std::make_unique<Ledger>();
  }
  // Accounts are opened inside the timed loop's first pass by each thread (Open is idempotent),
  // after thread 0 has built the ledger: Google Benchmark starts all threads' loops together.
  const AccountKey key{shared_account ? "agent" : "agent-" + std::to_string(state.thread_index()),
                       "run-1"};
  const Amounts cost = Cost();
  const Amounts used = Used();
  bool opened = false;
  for (auto _ : state) {
    if (!opened) {
      g_ledger->Open(key, Unlimited()).IgnoreError();
      opened = true;
    }
    Result<ReservationId> id = g_ledger->Reserve(key, cost);
    if (!id.ok()) {
      state.SkipWithError(id.status().ToString().c_str());
      break;
    }
    g_ledger->Settle(*id, used).IgnoreError();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    g_ledger.reset();
  }
}

void BM_Ledger_ReserveSettle_SharedAccount(benchmark::State& state) {
  RunReserveSettle(state, /*shared_account=*/true);
}
void BM_Ledger_ReserveSettle_AccountPerThread(benchmark::State& state) {
  RunReserveSettle(state, /*shared_account=*/false);
}

BENCHMARK(BM_Ledger_ReserveSettle_SharedAccount)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->UseRealTime();
BENCHMARK(BM_Ledger_ReserveSettle_AccountPerThread)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->UseRealTime();

// A refused reservation (exhausted budget) must be as cheap as a granted one.
void BM_Ledger_ReserveRefused(benchmark::State& state) {
  Ledger ledger;
  const AccountKey key{"agent", "run-1"};
  ledger.Open(key, Amounts{}).IgnoreError();
  const Amounts cost = Cost();
  for (auto _ : state) {
    Result<ReservationId> id = ledger.Reserve(key, cost);
    benchmark::DoNotOptimize(id.ok());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ledger_ReserveRefused);

}  // namespace
}  // namespace custos::budget

BENCHMARK_MAIN();
