// custos serve (the custosd daemon, in this process) and custos apikey add.

#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "cli/config.h"
#include "cli/mcp_mount.h"
#include "custos/mcp/config.h"
#include "custos/mcp/http_front.h"
#include "custos/server/auth.h"
#include "custos/server/daemon.h"

namespace custos::cli {

void AddServeOptions(CLI::App* cmd, GlobalOptions& g, int* exit_code) {
  struct Flags {
    std::string policy, listen, socket, durability, tls_cert, tls_key, mcp_config;
    int threads = 0, workers = 0;
    bool no_socket = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--policy", f->policy, "Policy file (re-read on SIGHUP)")->required();
  cmd->add_option("--listen", f->listen,
                  "TCP HOST:PORT (port 0 = any; the ready line names it); a non-loopback "
                  "address needs TLS and API or agent keys");
  cmd->add_option("--tls-cert", f->tls_cert,
                  "PEM certificate chain: serve TLS on the TCP listener (overrides [server.tls])");
  cmd->add_option("--tls-key", f->tls_key, "PEM private key for --tls-cert (mode 0600)");
  cmd->add_option("--socket", f->socket,
                  "Unix socket path (default [server] socket, else $XDG_RUNTIME_DIR/custos.sock, "
                  "else DATA_DIR/custos.sock)");
  cmd->add_flag("--no-socket", f->no_socket, "Do not listen on a Unix socket");
  cmd->add_option("--threads", f->threads, "I/O threads (default 2)")->check(CLI::Range(1, 64));
  cmd->add_option("--workers", f->workers, "Kernel worker threads (default 16)")
      ->check(CLI::Range(1, 256));
  cmd->add_option(
         "--durability", f->durability,
         "none | group | fsync (default: [log] durability in DATA_DIR/config.toml, else group)")
      ->check(CLI::IsMember({"none", "group", "fsync"}));
  cmd->add_option("--mcp-config", f->mcp_config,
                  "gateway.toml: also serve the MCP gateway's Streamable HTTP front at /mcp "
                  "(authenticated like the API)");
  cmd->callback([&g, exit_code, f] {
    const std::filesystem::path dir = ResolveDataDir(g);
    Result<Config> config = LoadConfig(dir);
    if (!config.ok()) {
      *exit_code = Fail(config.status());
      return;
    }
    Result<audit::Durability> d = f->durability.empty()
                                      ? Result<audit::Durability>(config->durability)
                                      : audit::ParseDurability(f->durability);
    if (!d.ok()) {
      *exit_code = Fail(d.status());
      return;
    }
    server::DaemonOptions o;
    o.data_dir = dir;
    o.policy_file = f->policy;
    o.durability = *d;
    o.passphrase = PassphraseFromEnv();
    if (!f->listen.empty())
      o.listen = f->listen;
    if (f->no_socket) {
      o.socket = "";
    } else if (!f->socket.empty()) {
      o.socket = f->socket;
    }
    if (!f->tls_cert.empty())
      o.tls_cert = f->tls_cert;
    if (!f->tls_key.empty())
      o.tls_key = f->tls_key;
    if (f->threads > 0)
      o.threads = f->threads;
    if (f->workers > 0)
      o.workers = f->workers;
    if (!f->mcp_config.empty()) {
      Result<mcp::GatewayConfig> gw = mcp::LoadGatewayConfig(f->mcp_config);
      if (!gw.ok()) {
        *exit_code = Fail(gw.status());
        return;
      }
      o.mounts = [gw = *gw](kernel::Kernel& k) -> Result<server::DaemonOptions::Mounted> {
        mcp::HttpFrontOptions fo;
        fo.config = gw;
        fo.kernel = &k;
        CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<mcp::HttpFront> front,
                                mcp::HttpFront::Create(std::move(fo)));
        std::shared_ptr<mcp::HttpFront> shared = std::move(front);
        server::DaemonOptions::Mounted m;
        m.mounts = McpMounts(shared.get());
        m.stop = [shared] { shared->Shutdown(); };
        return m;
      };
    }
    const Status st = server::RunDaemon(o);
    *exit_code = st.ok() ? 0 : Fail(st);
  });
}

void RegisterServe(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* serve = app.add_subcommand(
      "serve", "Run custosd: the kernel as a local HTTP/JSON service (TCP loopback, Unix socket)");
  AddServeOptions(serve, g, exit_code);

  auto* apikey = app.add_subcommand("apikey", "API keys for custosd callers");
  apikey->require_subcommand(1);
  auto* add = apikey->add_subcommand(
      "add", "Mint a key for AGENT; prints it once (only its SHA-256 is stored)");
  static std::string agent;
  add->add_option("agent", agent, "The agent identity the key authenticates")->required();
  add->callback([&g, exit_code] {
    Result<std::string> key = server::AddApiKey(ResolveDataDir(g), agent);
    if (!key.ok()) {
      *exit_code = Fail(key.status());
      return;
    }
    std::printf("%s\n", key->c_str());
    *exit_code = 0;
  });

  auto* agentkey = app.add_subcommand(
      "agentkey", "Ed25519 public keys that custosd accepts for signed requests (decision 022)");
  agentkey->require_subcommand(1);
  auto* akadd = agentkey->add_subcommand(
      "add", "Register PUBKEY (64 hex chars) for AGENT; prints its key id");
  static std::string ak_agent, ak_key;
  akadd->add_option("agent", ak_agent, "The agent identity the key signs for")->required();
  akadd->add_option("pubkey", ak_key, "Ed25519 public key, hex")->required();
  akadd->callback([&g, exit_code] {
    Result<std::string> id = server::AddAgentKey(ResolveDataDir(g), ak_agent, ak_key);
    if (!id.ok()) {
      *exit_code = Fail(id.status());
      return;
    }
    std::printf("%s\n", id->c_str());
    *exit_code = 0;
  });
}

}  // namespace custos::cli
