// Caps token benchmarks: mint, attenuate, and verify + authorize a 2-block token; and the
// kernel's token path (kernel::TokenAuthority): first sight (signatures verified, blocks decoded)
// and repeat sight (verification cache hit) of verify + authorize for a typical request.
//
//   ./caps_bench --benchmark_filter=Caps
//   ./caps_bench --benchmark_filter=KernelToken
//   ./caps_bench --benchmark_filter=CapsVsWasm   (Custos vs @biscuit-auth/biscuit-wasm, same run)

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/builder.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "custos/caps/token_text.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "custos/kernel/token_authority.h"
#include "latency.h"

namespace custos::caps {
namespace {

constexpr std::string_view kAuthority =
    "right(\"file1\", \"read\");\n"
    "right(\"file1\", \"write\");\n"
    "can($f, $op) <- right($f, $op), resource($f), operation($op);\n";
constexpr std::string_view kCheck = "check if operation(\"read\");\n";
constexpr std::string_view kRequest =
    "resource(\"file1\");\noperation(\"read\");\nallow if can($f, $op);\n";

const SecretKey& Root() {
  static const SecretKey root = SecretKey::Generate();
  return root;
}

void BM_Caps_Mint(benchmark::State& state) {
  for (auto _ : state) {
    Result<std::vector<uint8_t>> token = Mint(Root(), kAuthority);
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_Caps_Mint);

void BM_Caps_Attenuate(benchmark::State& state) {
  const std::vector<uint8_t> minted = Mint(Root(), kAuthority).value();
  for (auto _ : state) {
    Result<std::vector<uint8_t>> token = Attenuate(minted, Root().public_key(), kCheck);
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_Caps_Attenuate);

// Attenuating a token already verified (what agent.spawn does with the caller's cached token).
void BM_Caps_AttenuateVerified(benchmark::State& state) {
  const std::vector<uint8_t> minted = Mint(Root(), kAuthority).value();
  const Biscuit verified = Biscuit::FromBytes(minted, Root().public_key()).value();
  for (auto _ : state) {
    Result<std::vector<uint8_t>> token = AttenuateVerified(minted, verified, kCheck);
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_Caps_AttenuateVerified);

void BM_Caps_VerifyAuthorize2Blocks(benchmark::State& state) {
  const std::vector<uint8_t> minted = Mint(Root(), kAuthority).value();
  const std::vector<uint8_t> token = Attenuate(minted, Root().public_key(), kCheck).value();
  const AuthorizerCode code = ParseAuthorizerCode(kRequest).value();
  for (auto _ : state) {
    Result<Biscuit> parsed = Biscuit::FromBytes(token, Root().public_key());
    Result<Authorization> a = Authorize(&parsed.value(), code);
    if (!a.ok() || !a->authorized()) {
      state.SkipWithError("not authorized");
      break;
    }
  }
  state.counters["token_bytes"] = static_cast<double>(token.size());
}
BENCHMARK(BM_Caps_VerifyAuthorize2Blocks);

// --- the kernel's token path ---

constexpr std::string_view kGrant =
    "right(\"file.read\");\nright(\"file.write\");\nright(\"memory.read\");\n"
    "check if principal(\"worker\");\ncheck if run(\"run-1\");\n"
    "check if time($time), $time <= 2099-01-01T00:00:00Z;\n";
constexpr std::string_view kSpawnBlock =
    "check if agent(\"helper\");\ncheck if operation(\"file.read\") or "
    "operation(\"memory.read\");\ncheck if resource($r), $r.starts_with(\"/ws/\");\n";

kernel::TokenRequest TypicalRequest() {
  kernel::TokenRequest r;
  r.operation = "file.read";
  r.resource = "/ws/src/main.cc";
  r.agent = "helper";
  r.principal = "worker";
  r.run = "run-1";
  r.now_ms = 1'800'000'000'000;
  r.labels = {"trusted", "private"};
  return r;
}

// A 2-block token (grant + spawn block) in text form, `n` distinct ones.
std::vector<std::string> SpawnTokens(kernel::TokenAuthority& a, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(a.Attenuate(a.Mint(kGrant).value(), kSpawnBlock).value());
  }
  return out;
}

void Verified(benchmark::State& state, kernel::TokenAuthority& a, const std::string& token,
              const kernel::TokenRequest& r) {
  Result<std::shared_ptr<const kernel::VerifiedToken>> v = a.Verify(token);
  if (!v.ok() || !a.Authorize(**v, r).ok()) {
    state.SkipWithError("not authorized");
  }
}

// First sight: every token is new to the cache (512 distinct tokens through 16 entries).
void BM_KernelToken_FirstSight(benchmark::State& state) {
  kernel::TokenAuthority a(SecretKey::Generate(), kernel::TokenCache::kShards);
  const std::vector<std::string> tokens = SpawnTokens(a, 512);
  const kernel::TokenRequest r = TypicalRequest();
  size_t i = 0;
  for (auto _ : state) {
    Verified(state, a, tokens[i++ % tokens.size()], r);
  }
  state.counters["token_bytes"] = static_cast<double>(tokens[0].size());
}
BENCHMARK(BM_KernelToken_FirstSight);

// Repeat sight: the same token again (cache hit); revocation is the store's, not measured here.
void BM_KernelToken_RepeatSight(benchmark::State& state) {
  kernel::TokenAuthority a(SecretKey::Generate());
  const std::string token = SpawnTokens(a, 1).front();
  const kernel::TokenRequest r = TypicalRequest();
  Verified(state, a, token, r);
  for (auto _ : state) {
    Verified(state, a, token, r);
  }
}
BENCHMARK(BM_KernelToken_RepeatSight);

// The authorizer alone over a prepared 2-block token.
void BM_KernelToken_AuthorizeOnly(benchmark::State& state) {
  kernel::TokenAuthority a(SecretKey::Generate());
  const std::string token = SpawnTokens(a, 1).front();
  const kernel::TokenRequest r = TypicalRequest();
  const std::shared_ptr<const kernel::VerifiedToken> v = a.Verify(token).value();
  for (auto _ : state) {
    Status st = a.Authorize(*v, r);
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_KernelToken_AuthorizeOnly);

// Custos vs the independent Biscuit implementation (@biscuit-auth/biscuit-wasm, Rust compiled to
// WebAssembly, run by node from tests/interop/node): verify + authorize the same 2-block token
// against the same request, measured in one run. The second row's `ratio_vs_custos` counter is the
// wasm median divided by Custos's median (above 1: Custos is faster). Needs `npm ci` in
// tests/interop/node (scripts/bench.sh does it).
const std::vector<uint8_t>& WasmToken() {
  static const std::vector<uint8_t> token =
      Attenuate(Mint(Root(), kAuthority).value(), Root().public_key(), kCheck).value();
  return token;
}

double custos_median_ns = 0;

void BM_CapsVsWasm_Custos(benchmark::State& state) {
  const AuthorizerCode code = ParseAuthorizerCode(kRequest).value();
  custos_median_ns = bench::TimeCalls(state, [&] {
    Result<Biscuit> parsed = Biscuit::FromBytes(WasmToken(), Root().public_key());
    return parsed.ok() && Authorize(&*parsed, code).value().authorized();
  });
}
BENCHMARK(BM_CapsVsWasm_Custos);

// Runs the peer's `bench` op once (n verify+authorize calls, median of 50-call batches).
void BM_CapsVsWasm_BiscuitWasm(benchmark::State& state) {
  const std::string src = std::getenv("CUSTOS_SOURCE_DIR") != nullptr
                              ? std::getenv("CUSTOS_SOURCE_DIR")
                              : CUSTOS_SOURCE_DIR;
  const std::string req_path = "/tmp/custos-wasm-bench-" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream req(req_path);
    req << Json::array({{{"op", "bench"},
                         {"root", Root().public_key().ToString()},
                         {"token", HexEncode(WasmToken())},
                         {"authorizer", std::string(kRequest)},
                         {"n", 5000}}})
               .dump();
  }
  const std::string cmd = "/usr/bin/node --experimental-wasm-modules --no-warnings " + src +
                          "/tests/interop/node/biscuit_peer.mjs < " + req_path + " 2>/dev/null";
  for (auto _ : state) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
      state.SkipWithError("cannot start node");
      break;
    }
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      out.append(buf, n);
    ::pclose(p);
    Json r = Json::parse(out, nullptr, /*allow_exceptions=*/false);
    if (!r.is_array() || r.empty() || !r[0].contains("median_ns")) {
      state.SkipWithError(("wasm peer failed (run npm ci in tests/interop/node): " + out).c_str());
      break;
    }
    const double wasm_ns = r[0]["median_ns"].get<double>();
    state.counters["p50_us"] = wasm_ns / 1000.0;
    state.counters["items_per_second"] = 1e9 / wasm_ns;
    if (custos_median_ns > 0)
      state.counters["ratio_vs_custos"] = wasm_ns / custos_median_ns;
  }
  std::remove(req_path.c_str());
}
BENCHMARK(BM_CapsVsWasm_BiscuitWasm)->Iterations(1);

}  // namespace
}  // namespace custos::caps

BENCHMARK_MAIN();
