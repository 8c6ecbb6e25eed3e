#pragma once
// Policy is a compiled, immutable snapshot of a policy file (TOML, or JSON with the same schema;
// docs/policy.md is the reference). Load() validates everything up front and reports the first
// error with file:line:col and the offending key in Status::at(); a Policy that loaded is complete
// and consistent. Decide() is pure: no I/O, no allocation on the allow path, no locks, and it
// never throws. Rules are compiled into per-syscall indexes (exact-target hash maps plus a
// literal-prefix index for globs), so evaluation does not scan every rule.
//
// Evaluation order, written once in Policy::Decide():
//   1. absolute deny lists (fs.deny, net.deny, tools.deny): a match denies (kDeniedByRule /
//      kToolNotAllowed), whatever else says;
//   2. [[rules]] in file order, first match wins (allow | deny | require_approval);
//   3. the domain section of the syscall (fs.read/fs.write, net.connect, tools.allow,
//      models.allow, secrets, agents.<a>.spawn); kernel-internal syscalls (IsExternalEffect()
//      false) are allowed here;
//   4. otherwise deny with kNoMatchingRule (default deny).
// Then, for an allow, [[approvals]] may turn it into require_approval.
// Information-flow rules ([[flows]]) are evaluated separately by FlowDecide() in the labels stage.
//
// Thread-safe: immutable after Load(); share via std::shared_ptr<const Policy>.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/decision.h"
#include "custos/core/result.h"
#include "custos/core/syscall_kind.h"
#include "custos/labels/label_set.h"

namespace custos::policy {

// Budget limits per agent per run. 0 means "none allowed"; a missing limit is unlimited only if
// the policy says `unlimited = true` for that agent (default: every field has a finite default).
struct BudgetLimits {
  int64_t model_tokens_in = 0;
  int64_t model_tokens_out = 0;
  int64_t tool_calls = 0;
  int64_t wall_ms = 0;
  int64_t net_bytes_out = 0;
  int64_t spend_micros = 0;  // millionths of the account currency
};

struct AgentSpec {
  std::string name;
  SyscallSet syscalls;                 // the agent's capability: which syscall kinds it may make
  std::vector<std::string> may_spawn;  // child agent names it may spawn
  BudgetLimits budget;
};

struct SecretSpec {
  std::string name;
  std::string source;               // "env:NAME" | "file:/path"
  std::vector<std::string> agents;  // who may open it
  // Where it may be sent: endpoints ("api.x.com:443") and MCP servers ("mcp:github", a name
  // glob), the latter for secret handles in MCP tool arguments (the gateway's servers).
  std::vector<std::string> destinations;
};

struct ModelEndpoint {
  std::string pattern;  // model glob
  std::string url;      // OpenAI-compatible base URL
  int64_t micros_per_1k_tokens_in = 0;
  int64_t micros_per_1k_tokens_out = 0;
};

struct ToolSpec {
  std::string name;
  std::vector<std::string> command;  // argv; the args JSON is written to stdin
  std::string description;
  Json input_schema;  // JSON Schema object, may be null
  int64_t timeout_ms = 10'000;
  std::vector<std::string> labels;  // labels of the tool's output, default untrusted+external
};

// What the policy stage looks at. All views must outlive the Decide() call.
struct Request {
  std::string_view agent;  // the principal the policy is written for (root of a spawn tree)
  SyscallKind kind;
  std::string_view target;       // canonical path, URL host:port, tool name, model, secret, agent
  std::string_view host;         // network.send: lowercase host, "" otherwise
  uint16_t port = 0;             // network.send
  std::string_view address;      // network.send: resolved IP text, "" before resolution
  std::string_view destination;  // secret.open: where the secret will be sent ("host:port")
  const labels::LabelSet* labels = nullptr;  // joined input labels, may be null
};

// A flow verdict for the labels stage.
struct FlowResult {
  Verdict verdict = Verdict::kAllow;
  std::string rule;         // flow rule id
  std::string explanation;  // e.g. "inputs are [untrusted,external]; flow 'x' forbids untrusted ->
                            // tool:shell.*"
};

class Policy {
 public:
  // `origin` names the source in errors ("policy.toml"). Format by extension or content
  // (a document starting with '{' is JSON).
  static Result<std::shared_ptr<const Policy>> LoadFile(const std::filesystem::path& path);
  static Result<std::shared_ptr<const Policy>> LoadString(std::string_view text,
                                                          std::string_view origin);

  // Steps 1-4 above plus approvals. Never fails: an internal problem is a deny.
  Decision Decide(const Request& req) const;
  // Information-flow rules against the joined input labels.
  FlowResult FlowDecide(const Request& req) const;
  // True if `host` is internal per net.internal (default: loopback and the policy's
  // `net.internal` list); "net:external" in flows means !IsInternalHost.
  bool IsInternalHost(std::string_view host) const;

  const AgentSpec* FindAgent(std::string_view name) const;
  const SecretSpec* FindSecret(std::string_view name) const;
  const ModelEndpoint* FindModel(std::string_view model) const;
  const ToolSpec* FindTool(std::string_view name) const;
  // Approval timeout for a require_approval decision made by `rule`, in ms.
  int64_t ApprovalTimeoutMs(std::string_view rule) const;
  const std::vector<SecretSpec>& secrets() const;
  const std::vector<ToolSpec>& tools() const;

  std::string_view name() const;
  // SHA-256 hex of the canonical policy document: recorded with every decision.
  std::string_view hash() const;
  // "observe" mode: decisions that would deny are logged as would-deny but allowed (for rollout).
  bool observe_mode() const;

  ~Policy();

  struct Impl;
  explicit Policy(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::policy
