#pragma once
// Environment is what a decision reads from the world outside the kernel and its store: the
// canonical form of a path (symlinks, `..`), the address a host name resolves to, and whether
// outgoing bytes contain the value of a secret (the values come from the environment or files).
// Everything else a decision reads is the request, the policy, the clock and kernel state that
// the flight log lets a replay rebuild. The live environment asks the world and notes in
// ctx.observed what the decision depended on that the log does not otherwise show (the resolved
// address), so a replay (src/kernel/replay.cc) can answer from the record instead
// (docs/decisions/012-deterministic-replay.md).
//
// Thread-safe: implementations are immutable or confined to one replay.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/result.h"

namespace custos::kernel {

struct SyscallContext;
class SecretVault;

class Environment {
 public:
  virtual ~Environment() = default;
  // effects::CanonicalPath for ctx's call: kNotFound, kPathEscape, ... as that function says.
  virtual Result<std::string> CanonicalPath(SyscallContext& ctx, const std::string& path,
                                            bool must_exist) const = 0;
  // The addresses `host` resolves to, first one used. The live environment records the first
  // address (or the failure's reason) in ctx.observed.
  virtual Result<std::vector<std::string>> ResolveHost(SyscallContext& ctx, const std::string& host,
                                                       uint16_t port) const = 0;
  // The name of a secret of `vault` whose value occurs in `egress`, if any.
  virtual std::optional<std::string> FindSecret(SyscallContext& ctx, const SecretVault& vault,
                                                std::string_view egress) const = 0;
};

// The real world: the filesystem, DNS and the vault's scanner.
const Environment& LiveEnvironment();

}  // namespace custos::kernel
