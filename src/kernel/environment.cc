#include "kernel/environment.h"

#include "custos/effects/path.h"
#include "custos/effects/resolve.h"
#include "kernel/context.h"
#include "kernel/services.h"

namespace custos::kernel {
namespace {

class LiveEnv final : public Environment {
 public:
  Result<std::string> CanonicalPath(SyscallContext&, const std::string& path,
                                    bool must_exist) const override {
    // The canonical path is the entry's target: the log shows it without help.
    return effects::CanonicalPath(path, must_exist);
  }

  Result<std::vector<std::string>> ResolveHost(SyscallContext& ctx, const std::string& host,
                                               uint16_t port) const override {
    Result<std::vector<std::string>> ips = effects::ResolveHost(host, port);
    if (ips.ok()) {
      ctx.observed["address"] = ips->empty() ? std::string() : ips->front();
    } else {
      ctx.observed["resolve_error"] = std::string(ReasonName(ips.status().reason()));
    }
    return ips;
  }

  std::optional<std::string> FindSecret(SyscallContext&, const SecretVault& vault,
                                        std::string_view egress) const override {
    return vault.scanner().FindIn(egress);
  }
};

}  // namespace

const Environment& LiveEnvironment() {
  static const LiveEnv env;
  return env;
}

}  // namespace custos::kernel
