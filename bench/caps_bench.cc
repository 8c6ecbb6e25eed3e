// Caps token benchmarks: mint, attenuate, and verify + authorize a 2-block token.
//
//   ./caps_bench --benchmark_filter=Caps

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/builder.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"

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

}  // namespace
}  // namespace custos::caps

BENCHMARK_MAIN();
