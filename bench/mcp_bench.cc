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
#include <thread>
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

// Cold start (issue 6 target: gateway start to the first tools/list answer across 5 stdio servers
// <= 1.5x the slowest server's own start to its first tools/list). Each iteration, on a fresh data
// directory:
//   direct:  the 5 fixture servers started at once, each timed from spawn to its own first
//            tools/list answer (Start() = spawn + server/discover probe + initialize); the
//            slowest of the 5 is the iteration's baseline;
//   gateway: `custos mcp stdio` spawned as a server would be (same StdioServer client) with a
//            gateway.toml naming the same 5 servers, timed from spawn to the answer of its first
//            tools/list (which the gateway mediates as 5 recorded syscalls). The process opens
//            the kernel, starts the 5 servers in parallel, pins their descriptors, then answers.
// Counters (medians over the iterations): gateway_ms, slowest_server_ms, ratio.
constexpr int kColdServers = 5;

int64_t MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

bool StartAndList(mcp::StdioServer& s) {
  if (!s.Start().ok())
    return false;
  Result<mcp::Message> r = s.Call("tools/list", Json::object());
  return r.ok() && r->type == mcp::Message::Type::kResponse;
}

// Arg 0 ("restart"): the gateway's data directory already exists and holds the descriptor pins
// (an untimed first run made them): what every start after the first one costs. Arg 1
// ("first_run"): a fresh data directory each iteration, so the kernel creates its store and
// identity and every descriptor is pinned (and recorded) on first sight.
void BM_McpColdStart_5Servers(benchmark::State& state) {
  const bool first_run = state.range(0) == 1;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("custos-mcp-cold-" + std::to_string(::getpid()));
  std::vector<double> gateway_us, slowest_us;
  int iteration = 0;
  bool warmed = false;
  for (auto _ : state) {
    const std::filesystem::path it = dir / std::to_string(first_run ? iteration++ : 0);
    std::filesystem::create_directories(it);
    std::ofstream(it / "policy.toml")
        << "[policy]\nname = \"cold\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
           "[tools]\nallow = [\"s0.*\", \"s1.*\", \"s2.*\", \"s3.*\", \"s4.*\"]\n";
    std::ofstream gw(it / "gateway.toml");
    gw << "[gateway]\npolicy = \"" << (it / "policy.toml").string() << "\"\ndata_dir = \""
       << (it / "data").string() << "\"\n";
    for (int i = 0; i < kColdServers; ++i) {
      gw << "[[servers]]\nname = \"s" << i << "\"\ncommand = \"/usr/bin/node\"\nargs = [\""
         << Fixture() << "\"]\n";
    }
    gw.close();

    // Direct: 5 servers at once, each timing its own start to first tools/list.
    std::vector<std::unique_ptr<mcp::StdioServer>> servers;
    for (int i = 0; i < kColdServers; ++i)
      servers.push_back(std::make_unique<mcp::StdioServer>(FixtureConfig("s" + std::to_string(i)),
                                                           mcp::StdioServer::Callbacks{}));
    std::vector<int64_t> own(kColdServers, -1);
    {
      std::vector<std::thread> ts;
      for (int i = 0; i < kColdServers; ++i) {
        ts.emplace_back([&, i] {
          const auto t0 = std::chrono::steady_clock::now();
          if (StartAndList(*servers[i]))
            own[i] = MsSince(t0);
        });
      }
      for (std::thread& t : ts)
        t.join();
    }
    servers.clear();
    if (std::find(own.begin(), own.end(), -1) != own.end()) {
      state.SkipWithError("a fixture server does not start (node?)");
      break;
    }

    // Gateway: the custos binary as a server of ours.
    mcp::ServerConfig g;
    g.name = "gateway";
    g.argv = {CUSTOS_BIN, "mcp", "stdio", "--config", (it / "gateway.toml").string()};
    g.startup_timeout_ms = 60'000;
    g.timeout_ms = 60'000;
    if (!first_run && !warmed) {
      state.PauseTiming();
      mcp::StdioServer warm(g, {});
      warmed = StartAndList(warm);
      state.ResumeTiming();
    }
    int64_t via = -1;
    {
      mcp::StdioServer gateway(g, {});
      const auto t0 = std::chrono::steady_clock::now();
      if (StartAndList(gateway))
        via = MsSince(t0);
    }
    if (via < 0) {
      state.SkipWithError("the gateway does not start or list");
      break;
    }
    gateway_us.push_back(static_cast<double>(via));
    slowest_us.push_back(static_cast<double>(*std::max_element(own.begin(), own.end())));
  }
  std::filesystem::remove_all(dir);
  if (gateway_us.empty())
    return;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double gm = median(gateway_us), sm = median(slowest_us);
  state.counters["gateway_ms"] = gm / 1000.0;
  state.counters["slowest_server_ms"] = sm / 1000.0;
  state.counters["ratio"] = gm / sm;
}
BENCHMARK(BM_McpColdStart_5Servers)
    ->ArgName("first_run")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
