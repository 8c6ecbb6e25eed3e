// Effects building-block benchmarks: the per-call cost the kernel pays around an effect.
//   secret scanning (FindIn / Redact) over 4 KiB..1 MiB against 10 and 100 secrets, with and
//   without percent-encoding in the input; path canonicalisation; URL parsing; address
//   classification; unified-diff application; process spawn.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "custos/effects/address.h"
#include "custos/effects/command.h"
#include "custos/effects/patch.h"
#include "custos/effects/path.h"
#include "custos/effects/secret_scanner.h"
#include "custos/effects/url.h"

namespace {

using custos::effects::SecretScanner;

SecretScanner MakeScanner(int n) {
  std::vector<std::pair<std::string, std::string>> secrets;
  for (int i = 0; i < n; ++i) {
    secrets.emplace_back("s" + std::to_string(i), "sk-bench-" + std::to_string(i * 104729 + 7));
  }
  return SecretScanner::Create(secrets).value();
}

std::string Text(size_t bytes, bool percent) {
  const std::string line = percent ? "GET /search?q=hello%20world&lang=en%2Dus HTTP/1.1 ok\n"
                                   : "{\"role\":\"tool\",\"content\":\"The quick brown fox\"}\n";
  std::string out;
  while (out.size() < bytes) {
    out += line;
  }
  out.resize(bytes);
  return out;
}

void BM_SecretScanner_FindIn(benchmark::State& state) {
  SecretScanner s = MakeScanner(static_cast<int>(state.range(1)));
  std::string text = Text(static_cast<size_t>(state.range(0)), state.range(2) != 0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.FindIn(text));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_SecretScanner_FindIn)
    ->ArgNames({"bytes", "secrets", "percent"})
    ->Args({4 << 10, 10, 0})
    ->Args({64 << 10, 100, 0})
    ->Args({64 << 10, 100, 1})
    ->Args({1 << 20, 100, 0});

void BM_SecretScanner_Redact_64KiB(benchmark::State& state) {
  SecretScanner s = MakeScanner(100);
  std::string text = Text(64 << 10, false);
  for (size_t i = 0; i < 20; ++i) {
    text.replace(i * 3000, 12, "sk-bench-" + std::to_string(i * 104729 + 7));
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.Redact(text));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * (64 << 10));
}
BENCHMARK(BM_SecretScanner_Redact_64KiB);

void BM_CanonicalPath_Depth6(benchmark::State& state) {
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("custos-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "a/b/c/d/e");
  std::ofstream(root / "a/b/c/d/e/f.txt") << "x";
  const std::string p = (root / "a/b/../b/c/d/e/f.txt").string();
  for (auto _ : state) {
    benchmark::DoNotOptimize(custos::effects::CanonicalPath(p, true));
  }
  std::filesystem::remove_all(root);
}
BENCHMARK(BM_CanonicalPath_Depth6);

void BM_ParseUrl(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        custos::effects::ParseUrl("https://API.example.com:8443/v1/a/../items/%7e?q=1&r=%2f"));
  }
}
BENCHMARK(BM_ParseUrl);

void BM_ClassifyAddress(benchmark::State& state) {
  const char* ips[] = {"8.8.8.8", "169.254.169.254", "::ffff:10.0.0.1", "2606:4700::1111"};
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(custos::effects::ClassifyAddress(ips[i++ & 3]));
  }
}
BENCHMARK(BM_ClassifyAddress);

void BM_ApplyUnifiedDiff_1000Lines(benchmark::State& state) {
  std::string file;
  for (int i = 0; i < 1000; ++i) {
    file += "line " + std::to_string(i) + "\n";
  }
  std::string diff = "--- a/f\n+++ b/f\n";
  for (int h = 0; h < 10; ++h) {
    int at = h * 100 + 50;
    diff += "@@ -" + std::to_string(at) + ",3 +" + std::to_string(at) + ",3 @@\n";
    diff += " line " + std::to_string(at - 1) + "\n";
    diff += "-line " + std::to_string(at) + "\n";
    diff += "+LINE " + std::to_string(at) + "\n";
    diff += " line " + std::to_string(at + 1) + "\n";
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(custos::effects::ApplyUnifiedDiff(file, diff));
  }
}
BENCHMARK(BM_ApplyUnifiedDiff_1000Lines);

void BM_RunCommand_True(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(custos::effects::RunCommand({"/bin/true"}, "", {}));
  }
}
BENCHMARK(BM_RunCommand_True)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
