#pragma once
// RunDaemon is `custosd` and `custos serve`: it opens the kernel over a data directory and a
// policy file, reads [server] from DATA_DIR/config.toml (flags override it), starts the server,
// prints one line per listener and then "custosd: ready" on stdout, and serves until SIGTERM or
// SIGINT. SIGHUP reloads the policy and the API keys (a bad policy is rejected and the old one
// keeps serving). On SIGTERM it drains in-flight requests, commits the log and returns 0.
//
// Confined to the calling (main) thread; it blocks the three signals in every thread it starts.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "custos/audit/log_writer.h"
#include "custos/core/status.h"
#include "custos/kernel/kernel.h"
#include "custos/server/server.h"

namespace custos::server {

struct DaemonOptions {
  std::filesystem::path data_dir;
  std::filesystem::path policy_file;
  std::optional<std::string> listen;  // overrides [server] listen
  std::optional<std::string> socket;  // overrides [server] socket; "" disables the socket
  std::optional<int> threads, workers;
  std::optional<std::filesystem::path> tls_cert, tls_key;  // override [server.tls]
  std::optional<audit::Durability> durability;             // default: [log] durability, else group
  std::optional<std::string> passphrase;
  // Routes served outside the Api (custosd's /mcp, the MCP gateway's Streamable HTTP front), made
  // once the kernel is open. Every request to a mount must authenticate like an API request
  // (socket peer or API key; 401 unauthenticated otherwise). `stop` runs before the server stops.
  struct Mounted {
    std::vector<Mount> mounts;
    std::function<void()> stop;
  };
  std::function<Result<Mounted>(kernel::Kernel&)> mounts;
};

// Returns when the daemon has stopped: OK after a signal, else why it could not start.
Status RunDaemon(const DaemonOptions& options);

}  // namespace custos::server
