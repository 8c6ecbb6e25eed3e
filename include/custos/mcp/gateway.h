#pragma once
// Gateway is the MCP gateway: it speaks MCP with one client (the front) and with every configured
// downstream server (the back), and turns every client request that reaches a server into a
// kernel syscall, so each one is decided, labeled, budgeted and recorded, and the call to the
// server is the syscall's effect (INV-1). Servers are registered as kernel ToolProviders under
// "<server>." prefixes.
//
// Mapping (docs/mcp.md): tools/call of "srv.tool" is tool.invoke target "srv.tool" with the tool's
// arguments; every other server-bound method is tool.invoke target "srv.<method>" (e.g.
// "fs.resources/read") with the method's params as arguments. Tools and prompts are namespaced
// "srv.name"; resource URIs "srv+<uri>". List results are aggregated with opaque gateway cursors.
// Methods the gateway does not know are refused with -32601 and never forwarded.
//
// Protocol eras (decisions 019, 025; era.h): the client's era is chosen by its first initialize
// (2025-03-26 / 2025-06-18 / 2025-11-25) or its first request carrying the 2026-07-28 _meta
// envelope, and kept for the connection; each server's era is its own (StdioServer,
// HttpServer). Internally the gateway works in 2025-11-25 shapes and translates at the edges.
// Multi round-trip requests are translated both ways (decision 034): a stateless server's
// input_required is asked of the client (each embedded request a srv.client/<method> syscall)
// and the call retried; a server request during a stateless client's call answers that call
// with input_required and a requestState sealed with a per-session key, bound to the run,
// agent, method and params (kMcpRequestStateInvalid otherwise).
//
// Security behaviour:
//   * every syscall carries a capability token: the gateway holds a kernel::TokenWallet and
//     presents the token Kernel::Grant mints for its agent (config.agent) bound to the session's
//     run. The token is minted when the session opens (Create) and kept; once it is revoked the
//     kernel refuses every later call (token_revoked) before anything reaches a server, and the
//     gateway does not mint a replacement until the policy is reloaded. An agent the policy does
//     not define gets no token, so its calls are refused (token_missing or unknown_agent);
//   * every output is labeled by its server's trust (untrusted + external + source:mcp:<srv>), and
//     poisoned-suspect if it contains injection markers; the session keeps one handle per distinct
//     label set it has been shown and passes them as inputs of every later syscall, so the
//     policy's flow rules see what the client's context has been exposed to;
//   * descriptor pinning: a tool whose descriptor hash differs from the pinned one is hidden and
//     refused (mcp_descriptor_changed) until `custos mcp approve`; the change is recorded;
//   * tools with no annotations and no classification in gateway.toml are hidden and refused
//     (mcp_tool_unclassified);
//   * the kernel's egress scan refuses arguments carrying a secret, and redacts secrets in results.
//
// Thread-safe: HandleLine() may be called from one reader thread while requests run on worker
// threads; `send` is called with whole lines, serialised.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "custos/core/result.h"
#include "custos/kernel/kernel.h"
#include "custos/mcp/config.h"

namespace custos::mcp {

struct GatewayOptions {
  GatewayConfig config;
  kernel::Kernel* kernel = nullptr;  // REQUIRES: outlives the gateway
  std::string run;                   // the client session's run id (generated if empty)
  std::function<void(const std::string& line)> send;  // to the client, one line per message
  // Optional: a message that belongs to one client request in flight (a server's request or log
  // message that arrived on the stream of that call, an HTTP back's POST), with that request's
  // id (JSON, dumped), so a front can send it where that request is answered. Unset: `send`.
  std::function<void(const std::string& line, const std::string& related)> send_related;
};

class Gateway {
 public:
  // Registers one tool provider per server and starts every server (in parallel). A server that
  // fails to start is reported through the log and retried on first use; Create fails only on a
  // registration conflict.
  static Result<std::unique_ptr<Gateway>> Create(GatewayOptions options);
  ~Gateway();

  // One line from the client (without its newline).
  void HandleLine(std::string_view line);
  // Sends the client an error response (the front's own refusals, e.g. an oversize line).
  void SendError(const Json& id, int code, const std::string& message);
  // Waits for in-flight requests, then stops the servers.
  void Shutdown();

  const std::string& run() const;
  // The inputSchema of the tool the client knows as `name` ("srv.tool"), as last listed and
  // usable (pinned, classified); nullopt when the gateway has not seen such a usable tool yet.
  // For the HTTP front's Mcp-Param-* header checks (SEP-2243).
  std::optional<Json> ToolInputSchema(std::string_view name) const;

  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Approves the current descriptor of `tool` ("srv.name") recorded as pending in `store`: its hash
// becomes the pin. kNotFound if nothing is pending for it.
Status ApprovePendingDescriptor(store::Store& store, const std::string& tool);

}  // namespace custos::mcp
