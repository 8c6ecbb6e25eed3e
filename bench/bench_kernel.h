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

// `/tmp/<name>-<pid>`, removed if it exists.
inline std::filesystem::path FreshBenchDir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

// A kernel on `dir` under `policy_toml` + kUnlimitedBudgets.
inline std::unique_ptr<kernel::Kernel> OpenBenchKernel(const std::filesystem::path& dir,
                                                       const std::string& policy_toml,
                                                       audit::Durability durability) {
  kernel::KernelOptions o;
  o.data_dir = dir;
  o.policy = BenchPolicy(policy_toml);
  o.durability = durability;
  o.notice = [](const std::string&) {};
  return kernel::Kernel::Open(std::move(o)).value();
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
