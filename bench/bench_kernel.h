#pragma once
// Kernel set-up shared by the kernel benchmarks: a kernel on a fresh directory under /tmp with a
// policy given as TOML (plus budgets large enough never to refuse), and syscalls built from JSON.
// Aborts (value() on an error) on a set-up failure: a benchmark that cannot set up has no figure.

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "custos/core/json.h"
#include "custos/kernel/kernel.h"
#include "custos/policy/policy.h"

namespace custos::bench {

// Appended to every benchmark policy: no benchmark should measure a budget refusal.
inline constexpr char kUnlimitedBudgets[] = R"(
[budgets.default]
model_tokens_in = 1000000
model_tokens_out = 1000000
tool_calls = 1000000000
wall_ms = 86400000
net_bytes_out = 1000000000
spend_micros = 1000000000
)";

// `policy_toml` + kUnlimitedBudgets, loaded.
inline std::shared_ptr<const policy::Policy> BenchPolicy(const std::string& policy_toml) {
  return policy::Policy::LoadString(policy_toml + kUnlimitedBudgets, "bench.toml").value();
}

// A kernel on its own directory `/tmp/<name>-<pid>`, which is removed before and after.
struct BenchKernel {
  std::filesystem::path dir;
  std::unique_ptr<kernel::Kernel> kernel;
  BenchKernel() = default;
  BenchKernel(const BenchKernel&) = delete;
  BenchKernel& operator=(const BenchKernel&) = delete;
  ~BenchKernel() {
    kernel.reset();
    std::filesystem::remove_all(dir);
  }
};

// A kernel under `policy_toml` + kUnlimitedBudgets.
inline std::unique_ptr<BenchKernel> OpenBenchKernel(const std::string& name,
                                                    const std::string& policy_toml,
                                                    audit::Durability durability) {
  auto b = std::make_unique<BenchKernel>();
  b->dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(b->dir);
  kernel::KernelOptions o;
  o.data_dir = b->dir;
  o.policy = BenchPolicy(policy_toml);
  o.durability = durability;
  o.notice = [](const std::string&) {};
  b->kernel = kernel::Kernel::Open(std::move(o)).value();
  return b;
}

// A syscall by `agent` in run "bench", presenting `token` (none if empty).
inline kernel::Syscall BenchCall(const char* agent, const char* kind, const char* target, Json args,
                                 const std::string& token) {
  Json j = {{"agent", agent}, {"run", "bench"}, {"kind", kind}, {"target", target}, {"args", args}};
  kernel::Syscall call = kernel::ParseSyscall(j).value();
  call.token = token;
  return call;
}

}  // namespace custos::bench
