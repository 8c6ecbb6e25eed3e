// MCP gateway latency (issue 6 target: added latency of a tools/call through the gateway vs
// direct, p50 <= 0.3 ms, p99 <= 2 ms over stdio). Both benchmarks call the fixture server's `echo`
// tool (node, tests/mcp/fixtures/fixture_server.js): Direct with our own stdio client, Gateway
// through InProcessClient → Gateway → Kernel (group durability: the decision is recorded before
// the call) → the same kind of server. The added latency is the difference of the medians.
// Counters p50_us / p99_us per call.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "cli/mcp_mount.h"
#include "custos/kernel/kernel.h"
#include "custos/mcp/front.h"
#include "custos/mcp/gateway.h"
#include "custos/mcp/http_front.h"
#include "custos/mcp/stdio_server.h"
#include "custos/policy/policy.h"
#include "custos/server/server.h"
#include "mcp_http_fixture.h"

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

// ---- Streamable HTTP (issue 6 targets over HTTP: added latency p50 <= 0.3 ms, p99 <= 2 ms;
// throughput through the HTTP front >= 5k calls/s against a fast fixture server) -------------
//
// One process holds the three parties, each on its own loopback sockets:
//   EchoServer (mcp_http_fixture.h): a Streamable HTTP MCP server on custosd's transport whose
//     `echo` costs a few microseconds, so the server is never the bottleneck;
//   the gateway: a kernel (group durability: each decision is durable before the call) with the
//     HTTP front mounted on its own server::Server, exactly as `custos mcp serve` builds it, and
//     the EchoServer as its one HTTP back server ("b");
//   the load client: McpHttpClient (keep-alive, TCP_NODELAY), one thread per connection.
// HttpDirect calls the EchoServer itself, HttpGateway the same server through the gateway, with
// the same client in the same run: the added latency is the difference of the two rows' p50/p99.
// The throughput rows open one MCP session and drive it from 64 connections at once (a fixed
// count of calls, bounded in time too) and report calls/s (items_per_second), p50/p99 and
// failures; the Direct throughput row shows what the server alone sustains.

struct HttpSetup {
  std::filesystem::path dir;
  std::unique_ptr<bench::EchoServer> echo;
  std::unique_ptr<kernel::Kernel> kernel;
  std::unique_ptr<mcp::HttpFront> front;
  server::Metrics metrics;
  std::unique_ptr<server::Server> server;
  std::string error;

  HttpSetup() {
    dir = std::filesystem::temp_directory_path() /
          ("custos-mcp-http-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    echo = bench::EchoServer::Start(/*threads=*/1, /*workers=*/4);
    if (echo == nullptr) {
      error = "the echo server does not start";
      return;
    }
    Result<std::shared_ptr<const policy::Policy>> p = policy::Policy::LoadString(
        "[policy]\nname = \"bench\"\n[agents.mcp-client]\nsyscalls = [\"tool.invoke\"]\n"
        "[agents.mcp-client.budget]\nunlimited = true\n[tools]\nallow = [\"b.*\"]\n",
        "bench.toml");
    kernel::KernelOptions ko;
    ko.data_dir = dir / "data";
    ko.policy = *p;
    // $CUSTOS_BENCH_DURABILITY=none shows what the log's fsync costs (not a configuration to run).
    const char* d = std::getenv("CUSTOS_BENCH_DURABILITY");
    ko.durability = d != nullptr && std::string_view(d) == "none" ? audit::Durability::kNone
                                                                  : audit::Durability::kGroup;
    ko.notice = [](const std::string&) {};
    Result<std::unique_ptr<kernel::Kernel>> k = kernel::Kernel::Open(std::move(ko));
    if (!k.ok()) {
      error = "kernel does not open: " + k.status().ToString();
      return;
    }
    kernel = std::move(k).value();
    mcp::HttpFrontOptions fo;
    fo.config.agent = "mcp-client";
    mcp::ServerConfig b;
    b.name = "b";
    b.url = echo->url();
    b.timeout_ms = 10'000;
    fo.config.servers = {b};
    fo.kernel = kernel.get();
    Result<std::unique_ptr<mcp::HttpFront>> f = mcp::HttpFront::Create(std::move(fo));
    if (!f.ok()) {
      error = "the HTTP front does not start: " + f.status().ToString();
      return;
    }
    front = std::move(f).value();
    server::ServerOptions so;  // `custos mcp serve`'s transport, with room for 64 connections
    so.listen = "127.0.0.1:0";
    so.limits.max_connections = 1024;
    so.workers = 16;
    so.mounts = cli::McpMounts(front.get());
    Result<std::unique_ptr<server::Server>> s = server::Server::Start(nullptr, &metrics, so);
    if (!s.ok()) {
      error = "the front's transport does not start: " + s.status().ToString();
      return;
    }
    server = std::move(s).value();
  }
  ~HttpSetup() {
    if (front)
      front->Shutdown();  // releases the streams before their server goes
    if (server)
      server->Shutdown();
    server.reset();
    front.reset();
    kernel.reset();
    echo.reset();
    std::filesystem::remove_all(dir);
  }
  uint16_t gateway_port() const { return server->tcp_port(); }
};

HttpSetup& Http() {
  static HttpSetup s;
  return s;
}

// Latency over one connection: Direct to the echo server, or through the gateway.
void McpHttpLatency(benchmark::State& state, bool gateway) {
  HttpSetup& h = Http();
  if (!h.error.empty()) {
    state.SkipWithError(h.error.c_str());
    return;
  }
  bench::McpHttpClient c;
  if (!c.Open(gateway ? h.gateway_port() : h.echo->port())) {
    state.SkipWithError("initialize over HTTP failed");
    return;
  }
  const std::string tool = gateway ? "b.echo" : "echo";
  for (int i = 0; i < 20; ++i)  // warm-up: first sight of the tool, caches, connections
    (void)c.Call(tool, i);
  int64_t id = 100;
  TimeCalls(state, [&] { return c.Call(tool, ++id); });
}

void BM_McpToolsCall_HttpDirect(benchmark::State& state) { McpHttpLatency(state, false); }
void BM_McpToolsCall_HttpGateway(benchmark::State& state) { McpHttpLatency(state, true); }
BENCHMARK(BM_McpToolsCall_HttpDirect)->UseRealTime()->Iterations(3000);
BENCHMARK(BM_McpToolsCall_HttpGateway)->UseRealTime()->Iterations(3000);

// Throughput: `conns` connections of one MCP session, `total` calls in all (each connection
// stops early after kMaxSeconds), on a fixed count so the run is bounded.
constexpr double kMaxSeconds = 20;

void McpHttpThroughput(benchmark::State& state, bool gateway) {
  const int conns = static_cast<int>(state.range(0));
  const int total = static_cast<int>(state.range(1));
  HttpSetup& h = Http();
  if (!h.error.empty()) {
    state.SkipWithError(h.error.c_str());
    return;
  }
  const uint16_t port = gateway ? h.gateway_port() : h.echo->port();
  const std::string tool = gateway ? "b.echo" : "echo";
  bench::McpHttpClient first;
  if (!first.Open(port)) {
    state.SkipWithError("initialize over HTTP failed");
    return;
  }
  (void)first.Call(tool, 0);
  std::vector<std::vector<int64_t>> lat(static_cast<size_t>(conns));
  std::atomic<int64_t> failures{0}, done{0};
  double secs = 0;
  for (auto _ : state) {
    std::vector<std::thread> ts;
    const auto t0 = std::chrono::steady_clock::now();
    const auto deadline = t0 + std::chrono::duration<double>(kMaxSeconds);
    for (int t = 0; t < conns; ++t) {
      ts.emplace_back([&, t] {
        bench::McpHttpClient c;
        if (!c.Open(port, first.session())) {
          failures.fetch_add(total / conns);
          return;
        }
        auto& mine = lat[static_cast<size_t>(t)];
        mine.reserve(static_cast<size_t>(total / conns));
        for (int i = 0; i < total / conns && std::chrono::steady_clock::now() < deadline; ++i) {
          const auto a = std::chrono::steady_clock::now();
          if (!c.Call(tool, int64_t{t} * 1'000'000 + i + 1))
            failures.fetch_add(1);
          mine.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - a)
                             .count());
          done.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (std::thread& t : ts)
      t.join();
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::vector<int64_t> all;
  for (auto& v : lat)
    all.insert(all.end(), v.begin(), v.end());
  Report(state, all);
  state.counters["items_per_second"] = static_cast<double>(done.load()) / secs;
  state.counters["failures"] = static_cast<double>(failures.load());
}

void BM_McpHttpFront_Throughput(benchmark::State& state) { McpHttpThroughput(state, true); }
void BM_McpHttpDirect_Throughput(benchmark::State& state) { McpHttpThroughput(state, false); }
BENCHMARK(BM_McpHttpDirect_Throughput)
    ->ArgNames({"conn", "calls"})
    ->Args({64, 20000})
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_McpHttpFront_Throughput)
    ->ArgNames({"conn", "calls"})
    ->Args({64, 20000})
    ->Iterations(1)
    ->UseRealTime();

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
