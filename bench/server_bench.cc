// custosd under load (issue 5): keep-alive clients sending POST /v1/syscall to an in-process
// Server (the same transport, worker pool and API as the daemon) over loopback TCP and the Unix
// socket, with group durability; and the same syscall called in-process from as many threads, so
// the sidecar/in-process ratio comes from one run. The syscall is `assert budget_remaining`: an
// allowed decision with an effect-free handler (decision entry, trivial effect, outcome entry).
//
// Each benchmark is one iteration of a fixed request count spread over N connections (threads);
// it reports items/s over wall time and p50/p99 of the per-request latency seen by the clients.
// BM_Server_Soak runs a longer fixed count ($CUSTOS_SOAK_REQUESTS, default 200000) in ten rounds
// and reports the process RSS after warm-up, after the first round and at the end.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "custos/kernel/kernel.h"
#include "custos/kernel/token_wallet.h"
#include "custos/policy/policy.h"
#include "custos/server/api.h"
#include "custos/server/auth.h"
#include "custos/server/metrics.h"
#include "custos/server/server.h"
#include "testing/http_client.h"

namespace {

using custos::Json;
using custos::testing::HttpReply;
using custos::testing::RawConnection;

constexpr char kPolicy[] = R"(
[policy]
name = "server-bench"
[agents.agent]
syscalls = ["assert"]
)";

const Json& CallJson() {
  static const Json j = {{"run", "bench"},
                         {"kind", "assert"},
                         {"target", "budget_remaining"},
                         {"args", {{"resource", "tool_calls"}, {"at_least", 1}}}};
  return j;
}

struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<custos::kernel::Kernel> kernel;
  custos::server::Metrics metrics;
  std::unique_ptr<custos::server::Api> api;
  std::unique_ptr<custos::server::Server> server;
  std::string key;

  Fixture() {
    dir = std::filesystem::temp_directory_path() /
          ("custos-server-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "data");
    std::filesystem::permissions(dir / "data", std::filesystem::perms::owner_all);
    { std::ofstream(dir / "policy.toml") << kPolicy; }
    custos::kernel::KernelOptions o;
    o.data_dir = dir / "data";
    o.policy = custos::policy::Policy::LoadString(kPolicy, "bench.toml").value();
    o.durability = custos::audit::Durability::kGroup;
    o.notice = [](const std::string&) {};
    kernel = custos::kernel::Kernel::Open(std::move(o)).value();
    key = custos::server::AddApiKey(dir / "data", "agent").value();
    custos::server::ServerConfig config;
    config.peers = {{static_cast<uint32_t>(::getuid()), "agent"}};
    custos::server::ApiOptions ao;
    ao.data_dir = dir / "data";
    ao.policy_file = dir / "policy.toml";
    ao.config = config;
    api = std::make_unique<custos::server::Api>(
        kernel.get(), &metrics, ao,
        std::make_shared<const custos::server::Authenticator>(
            custos::server::Authenticator::Load(dir / "data", config).value()));
    custos::server::ServerOptions so;
    so.listen = "127.0.0.1:0";
    so.socket = dir / "bench.sock";
    so.threads = 2;
    so.workers = 64;
    so.limits.max_connections = 1024;
    server = custos::server::Server::Start(api.get(), &metrics, so).value();
  }
  ~Fixture() {
    server.reset();
    api.reset();
    kernel.reset();
    std::filesystem::remove_all(dir);
  }
};

Fixture& Shared() {
  static Fixture f;
  return f;
}

void Report(benchmark::State& state, std::vector<int64_t>& ns, double seconds) {
  if (ns.empty())
    return;
  std::sort(ns.begin(), ns.end());
  state.counters["p50_us"] = static_cast<double>(ns[ns.size() / 2]) / 1000.0;
  state.counters["p99_us"] =
      static_cast<double>(ns[std::min(ns.size() - 1, ns.size() * 99 / 100)]) / 1000.0;
  state.counters["items_per_second"] = static_cast<double>(ns.size()) / seconds;
  state.SetItemsProcessed(static_cast<int64_t>(ns.size()));
}

// Runs `per_thread` calls of `call(thread_index)` on each of `threads` threads; returns the
// per-call latencies and the wall time.
template <typename MakeCaller>
double RunThreads(int threads, int per_thread, MakeCaller make, std::vector<int64_t>* all,
                  std::atomic<int>* failures) {
  std::vector<std::vector<int64_t>> lat(static_cast<size_t>(threads));
  std::vector<std::thread> ts;
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      auto call = make(t);
      auto& mine = lat[static_cast<size_t>(t)];
      mine.reserve(static_cast<size_t>(per_thread));
      for (int i = 0; i < per_thread; ++i) {
        const auto a = std::chrono::steady_clock::now();
        if (!call())
          failures->fetch_add(1);
        mine.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - a)
                           .count());
      }
    });
  }
  for (std::thread& t : ts)
    t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& v : lat)
    all->insert(all->end(), v.begin(), v.end());
  return secs;
}

auto HttpCaller(bool unix_socket) {
  return [unix_socket](int) {
    Fixture& f = Shared();
    auto c = std::make_shared<RawConnection>(
        unix_socket ? RawConnection::Unix(f.server->socket_path().string())
                    : RawConnection::Tcp(f.server->tcp_port()));
    // The socket peer is mapped by uid; TCP sends the API key.
    const std::string req =
        RawConnection::Format("POST", "/v1/syscall", CallJson().dump(),
                              unix_socket ? "" : "Authorization: Bearer " + f.key + "\r\n");
    return [c, req] {
      if (!c->Send(req))
        return false;
      const HttpReply r = c->Read();
      return r.status == 200 && r.body.find("\"verdict\":\"allow\"") != std::string::npos;
    };
  };
}

void BM_Server(benchmark::State& state, bool unix_socket) {
  const int conns = static_cast<int>(state.range(0));
  const int total = static_cast<int>(state.range(1));
  Shared();
  std::vector<int64_t> ns;
  std::atomic<int> failures{0};
  double secs = 0;
  for (auto _ : state)
    secs = RunThreads(conns, total / conns, HttpCaller(unix_socket), &ns, &failures);
  state.counters["failures"] = failures.load();
  Report(state, ns, secs);
}

void BM_Server_Tcp(benchmark::State& state) { BM_Server(state, false); }
void BM_Server_Unix(benchmark::State& state) { BM_Server(state, true); }

// The same syscall through the library, from as many threads as the sidecar had connections. Like
// the daemon, the caller attaches the agent's capability token (a TokenWallet grant, minted once
// and reused), so both paths do the same kernel work: every effectful syscall needs a token.
void BM_InProcess(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int total = static_cast<int>(state.range(1));
  Fixture& f = Shared();
  Json j = CallJson();
  j["agent"] = "agent";
  custos::kernel::Syscall call = custos::kernel::ParseSyscall(j).value();
  custos::kernel::TokenWallet wallet(*f.kernel);
  wallet.Attach(call);
  if (call.token.empty()) {
    state.SkipWithError("the wallet minted no token for the agent");
    return;
  }
  std::vector<int64_t> ns;
  std::atomic<int> failures{0};
  double secs = 0;
  for (auto _ : state) {
    secs = RunThreads(
        threads, total / threads,
        [&](int) { return [&] { return f.kernel->Execute(call).decision.allowed(); }; }, &ns,
        &failures);
  }
  state.counters["failures"] = failures.load();
  Report(state, ns, secs);
}

int64_t RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::atoll(line.c_str() + 6);
  }
  return 0;
}

void BM_Server_Soak(benchmark::State& state) {
  const char* env = std::getenv("CUSTOS_SOAK_REQUESTS");
  const int total = env != nullptr ? std::atoi(env) : 200'000;
  constexpr int kConns = 64;
  // Ten rounds; latencies are kept for the current round only, so the client's own memory does not
  // grow with the request count and the RSS figures are the daemon's (same process) plus a
  // constant.
  constexpr int kRounds = 10;
  Shared();
  // Warm up first so the start figure includes the steady-state buffers and thread stacks.
  std::vector<int64_t> ns;
  std::atomic<int> failures{0};
  RunThreads(kConns, 100, HttpCaller(false), &ns, &failures);
  const int64_t rss_start = RssKb();
  int64_t rss_first_round = 0;
  double secs = 0;
  for (auto _ : state) {
    for (int r = 0; r < kRounds; ++r) {
      ns.clear();
      secs += RunThreads(kConns, total / kConns / kRounds, HttpCaller(false), &ns, &failures);
      if (r == 0)
        rss_first_round = RssKb();
    }
  }
  state.counters["rss_start_kb"] = static_cast<double>(rss_start);
  state.counters["rss_round1_kb"] = static_cast<double>(rss_first_round);
  state.counters["rss_end_kb"] = static_cast<double>(RssKb());
  state.counters["failures"] = failures.load();
  Report(state, ns, secs);  // p50/p99 of the last round
  const int64_t done = static_cast<int64_t>(total / kConns / kRounds) * kConns * kRounds;
  state.counters["items_per_second"] = static_cast<double>(done) / secs;
  state.SetItemsProcessed(done);
}

}  // namespace

BENCHMARK(BM_Server_Tcp)->Args({1, 2000})->Args({64, 20000})->Iterations(1)->UseRealTime();
BENCHMARK(BM_Server_Unix)->Args({1, 2000})->Args({64, 20000})->Iterations(1)->UseRealTime();
BENCHMARK(BM_InProcess)->Args({1, 2000})->Args({64, 20000})->Iterations(1)->UseRealTime();
BENCHMARK(BM_Server_Soak)->Iterations(1)->UseRealTime();

BENCHMARK_MAIN();
