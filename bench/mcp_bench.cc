// MCP gateway latency (issue 6 target: added latency of a tools/call through the gateway vs
// direct, p50 <= 0.3 ms, p99 <= 2 ms over stdio). Both benchmarks call the fixture server's `echo`
// tool (node, tests/mcp/fixtures/fixture_server.js): Direct with our own stdio client, Gateway
// through InProcessClient → Gateway → Kernel (group durability: the decision is recorded before
// the call) → the same kind of server. The added latency is the difference of the medians.
// Counters p50_us / p99_us per call.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "custos/kernel/kernel.h"
#include "custos/mcp/front.h"
#include "custos/mcp/gateway.h"
#include "custos/mcp/stdio_server.h"
#include "custos/policy/policy.h"

namespace {

using namespace custos;

std::string Fixture() {
  const char* src = std::getenv("CUSTOS_SOURCE_DIR");
  return std::string(src != nullptr ? src : CUSTOS_SOURCE_DIR_DEFAULT) +
         "/tests/mcp/fixtures/fixture_server.js";
}

mcp::ServerConfig FixtureConfig(const std::string& name) {
  mcp::ServerConfig c;
  c.name = name;
  c.argv = {"/usr/bin/node", Fixture()};
  c.timeout_ms = 10'000;
  return c;
}

void Report(benchmark::State& state, std::vector<int64_t>& ns) {
  if (ns.empty())
    return;
  std::sort(ns.begin(), ns.end());
  state.counters["p50_us"] = ns[ns.size() / 2] / 1000.0;
  state.counters["p99_us"] = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)] / 1000.0;
  state.SetItemsProcessed(static_cast<int64_t>(ns.size()));
}

template <typename Fn>
void TimeCalls(benchmark::State& state, Fn&& fn) {
  std::vector<int64_t> ns;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    bool ok = fn();
    auto t1 = std::chrono::steady_clock::now();
    if (!ok) {
      state.SkipWithError("call failed");
      return;
    }
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  Report(state, ns);
}

void BM_McpToolsCall_Direct(benchmark::State& state) {
  mcp::StdioServer s(FixtureConfig("direct"), {});
  if (!s.Start().ok()) {
    state.SkipWithError("fixture server does not start (node?)");
    return;
  }
  const Json params = {{"name", "echo"}, {"arguments", {{"x", 1}}}};
  TimeCalls(state, [&] {
    Result<mcp::Message> r = s.Call("tools/call", params);
    return r.ok() && r->type == mcp::Message::Type::kResponse;
  });
}
BENCHMARK(BM_McpToolsCall_Direct)->UseRealTime();

void BM_McpToolsCall_Gateway(benchmark::State& state) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("custos-mcp-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Result<std::shared_ptr<const policy::Policy>> p = policy::Policy::LoadString(
      "[policy]\nname = \"bench\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
      "[agents.mcp-client.budget]\nunlimited = true\n[tools]\nallow = [\"a.*\"]\n",
      "bench.toml");
  kernel::KernelOptions ko;
  ko.data_dir = dir / "data";
  ko.policy = *p;
  ko.notice = [](const std::string&) {};
  Result<std::unique_ptr<kernel::Kernel>> k = kernel::Kernel::Open(std::move(ko));
  if (!k.ok()) {
    state.SkipWithError("kernel does not open");
    return;
  }
  {
    mcp::InProcessClient client;
    mcp::GatewayOptions o;
    o.config.agent = "mcp-client";
    o.config.servers = {FixtureConfig("a")};
    o.kernel = k->get();
    o.send = client.Sink();
    Result<std::unique_ptr<mcp::Gateway>> g = mcp::Gateway::Create(std::move(o));
    if (!g.ok()) {
      state.SkipWithError("gateway does not start");
      return;
    }
    client.Attach(g->get());
    (void)client.Request("initialize", {{"protocolVersion", "2025-11-25"},
                                        {"capabilities", Json::object()},
                                        {"clientInfo", {{"name", "b"}, {"version", "1"}}}});
    const Json params = {{"name", "a.echo"}, {"arguments", {{"x", 1}}}};
    TimeCalls(state, [&] {
      Result<mcp::Message> r = client.Request("tools/call", params);
      return r.ok() && r->type == mcp::Message::Type::kResponse;
    });
    (*g)->Shutdown();
  }
  k->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_McpToolsCall_Gateway)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
