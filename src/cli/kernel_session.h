#pragma once
// KernelSession opens a Kernel for one CLI command: on the user's data directory, or on a scratch
// directory that is removed afterwards (explain, tests).
//
// Confined to the CLI's main thread.

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "cli/config.h"
#include "custos/kernel/kernel.h"

namespace custos::cli {

class KernelSession {
 public:
  static Result<KernelSession> Open(const std::filesystem::path& data_dir,
                                    const std::string& policy_file, audit::Durability durability,
                                    const Config& config);
  static Result<KernelSession> OpenScratch(const std::string& policy_file);

  KernelSession(KernelSession&& o) noexcept
      : kernel_(std::move(o.kernel_)), scratch_(std::exchange(o.scratch_, {})) {}
  KernelSession& operator=(KernelSession&&) = delete;
  ~KernelSession();

  kernel::Kernel& kernel() { return *kernel_; }

 private:
  KernelSession() = default;
  std::unique_ptr<kernel::Kernel> kernel_;
  std::filesystem::path scratch_;  // removed on destruction when set
};

}  // namespace custos::cli
