// Custos vs the independent Biscuit implementation (@biscuit-auth/biscuit-wasm, Rust compiled to
// WebAssembly, run by node from tests/interop/node): verify + authorize the same 2-block token
// against the same request, measured in one run. The second row's `ratio_vs_custos` counter is the
// wasm median divided by Custos's median (above 1: Custos is faster).
//
//   ./caps_wasm_bench          (needs `npm ci` in tests/interop/node; scripts/bench.sh does it)

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/builder.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
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

struct Fixture {
  SecretKey root = SecretKey::Generate();
  std::vector<uint8_t> token =
      Attenuate(Mint(root, kAuthority).value(), root.public_key(), kCheck).value();
};

const Fixture& F() {
  static const Fixture f;
  return f;
}

double custos_median_ns = 0;

void BM_CapsVsWasm_Custos(benchmark::State& state) {
  const AuthorizerCode code = ParseAuthorizerCode(kRequest).value();
  custos_median_ns = bench::TimeCalls(state, [&] {
    Result<Biscuit> parsed = Biscuit::FromBytes(F().token, F().root.public_key());
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
                         {"root", F().root.public_key().ToString()},
                         {"token", HexEncode(F().token)},
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
