#pragma once
// GatewayConfig is gateway.toml: which downstream MCP servers the gateway fronts, how each is
// started and trusted, and which policy decides for the client. LoadGatewayConfig() validates the
// whole file before anything starts and fails on the first problem with kMcpConfigError (or
// kNotFound for a missing file), `at()` = "file:line:col" of the offending key or value:
//
//   [gateway]
//   policy = "policy.toml"        # required; relative paths are relative to this file
//   data_dir = "/var/lib/custos"  # optional (else the CLI's data directory)
//   agent = "mcp-client"          # the policy agent the client acts as (default "mcp-client")
//   pin = "first-use"             # "first-use" (pin on first sight) | "approve" (pin only when a
//                                 #   person runs `custos mcp approve`)
//   namespaces = true             # false: the client sees the server's own names ("tool", not
//                                 #   "fs.tool"); only with exactly one server. The kernel target
//                                 #   and the policy keep the server prefix either way.
//   secrets = ["deploy_token"]    # the client may ask handles of these (custos.open_secret)
//
//   [[servers]]
//   name = "fs"                   # [a-z][a-z0-9-]{0,31}: tools become "fs.<tool>"
//   command = "node"              # absolute, or looked up in the gateway's PATH at load
//   args = ["server.js", "/srv"]
//   env = ["HOME"]                # variables copied from the gateway's environment; nothing else
//   set_env = { LOG_LEVEL = "1" } # fixed values
//   cwd = "/"                     # absolute
//   trust = "untrusted"           # "untrusted" (default): output untrusted+external;
//                                 # "trusted": output trusted (still tagged with its source)
//   timeout_ms = 30000            # per request
//   startup_timeout_ms = 10000    # spawn + initialize
//   max_message_bytes = 4194304
//   max_notifications_per_sec = 50
//   read_only = ["read_file"]     # classification of tools the server does not annotate
//   consequential = ["write_file"]
//   client_capabilities = ["sampling"]  # offered to the server: "sampling", "elicitation", "roots"
//
//   [http]                        # the Streamable HTTP front (`custos mcp serve`, custosd /mcp)
//   allowed_origins = ["http://localhost:5173"]  # a request with another Origin is 403; a
//                                 #   request without Origin (not a browser) is allowed
//   max_sessions = 16             # open MCP sessions (each runs its own servers); more: 503
//   session_idle_ms = 1800000     # a session with no request and no open stream this long ends
//   [http.auth]                   # optional: bearer access tokens (JWT, ES256 or EdDSA) required
//   resource = "http://127.0.0.1:7310/mcp"   # tokens' aud must contain it
//   issuer = "https://auth.example.com"      # tokens' iss must equal it
//   jwks_file = "jwks.json"       # the issuer's public keys (relative to this file)
//   leeway_s = 60                 # clock skew allowed for exp/nbf
//   [http.auth.subjects]          # optional: token subject → policy agent (decision 033)
//   "alice@example" = "researcher"  # her sessions act as agent researcher (own budget, grants)
//   "*" = "mcp-client"            # every other subject; without "*" they are refused (403)
//
//   url = "http://127.0.0.1:3001/mcp"  # instead of command: a Streamable HTTP server. http:// only
//                                 #   to a loopback host; https:// anywhere (certificate verified)
//                                 #   (decision 024); command/args/env/set_env/cwd do not apply
//
// Thread-compatible: a plain value.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::mcp {

enum class ServerTrust { kUntrusted, kTrusted };
enum class PinMode { kFirstUse, kApprove };

struct ServerConfig {
  std::string name;
  std::vector<std::string> argv;  // argv[0] absolute; empty for a `url` server
  std::string url;                // Streamable HTTP server (decision 024); "" for stdio
  std::vector<std::string> env;   // names copied from the gateway's environment
  std::map<std::string, std::string> set_env;
  std::string cwd = "/";
  ServerTrust trust = ServerTrust::kUntrusted;
  int64_t timeout_ms = 30'000;
  int64_t startup_timeout_ms = 10'000;
  size_t max_message_bytes = 4 << 20;
  int64_t max_notifications_per_sec = 50;
  std::vector<std::string> read_only;
  std::vector<std::string> consequential;
  // Client capabilities offered to the server ("sampling", "elicitation", "roots"); each request
  // the server then makes is a syscall the policy decides (target "srv.client/<method>").
  std::vector<std::string> client_capabilities;
};

struct HttpAuthConfig {  // [http.auth]: OAuth 2.1 resource server (decision 023)
  bool enabled = false;
  std::string resource;           // this endpoint's URI; tokens' `aud` must contain it
  std::string issuer;             // tokens' `iss`; named in the protected resource metadata
  Json jwks;                      // the issuer's keys (jwks_file = "jwks.json", read at load), or
  std::string jwks_url;           // where to fetch them (jwks_url; http:// only to a loopback host)
  int64_t jwks_refresh_s = 3600;  // refetched after this long, or for an unknown kid
  int64_t leeway_s = 60;
  // [http.auth.subjects] "sub" = "agent" (decision 033): each mapped token subject acts as its own
  // policy agent; "*" maps every other subject. Empty: every subject acts as GatewayConfig::agent.
  // Not empty and no "*": an unmapped subject is refused (mcp_subject_unmapped).
  std::map<std::string, std::string> subjects;
};

struct HttpFrontConfig {
  std::vector<std::string> allowed_origins;  // exact "scheme://host[:port]" values
  size_t max_sessions = 16;
  int64_t session_idle_ms = 30 * 60 * 1000;
  HttpAuthConfig auth;
};

struct GatewayConfig {
  std::filesystem::path policy_file;
  std::filesystem::path data_dir;  // empty: the caller decides
  std::string agent = "mcp-client";
  PinMode pin = PinMode::kFirstUse;
  bool namespaces = true;
  // Secrets the client may ask a handle of with the gateway's own tool custos.open_secret: a
  // recorded secret.open bound to "mcp:<server>"; the handle is substituted only toward servers
  // the secret's policy lists. Empty: no such tool.
  std::vector<std::string> secrets;
  std::vector<ServerConfig> servers;
  HttpFrontConfig http;
};

Result<GatewayConfig> LoadGatewayConfig(const std::filesystem::path& file);
// `origin` names the text in errors; relative paths resolve against `base_dir`.
Result<GatewayConfig> ParseGatewayConfig(std::string_view text, std::string_view origin,
                                         const std::filesystem::path& base_dir);

// True if `name` is a valid server name ([a-z][a-z0-9-]{0,31}).
bool ValidServerName(std::string_view name);

}  // namespace custos::mcp
