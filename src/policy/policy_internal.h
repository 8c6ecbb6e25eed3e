#pragma once
// The compiled form of a policy (Policy::Impl) and the loader that builds it. Shared by
// loader.cc (parse, validate, compile) and policy.cc (Decide, FlowDecide, accessors); tests use
// it to reach the pieces directly.
//
// Thread-compatible: an Impl is immutable once LoadImpl() returns it.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/glob.h"
#include "custos/core/result.h"
#include "custos/core/syscall_kind.h"
#include "custos/labels/label_set.h"
#include "custos/policy/policy.h"
#include "policy/glob_index_internal.h"
#include "policy/net_internal.h"

namespace custos::policy {
namespace internal {

// Separators for target globs: '/' for paths, URLs (network.send) and model names; '.' for tool,
// secret and agent names.
inline constexpr char kPathSeparator = '/';
inline constexpr char kNameSeparator = '.';
char TargetSeparator(SyscallKind k);

// Builtin limits when neither the agent nor [budgets.default] sets one.
inline constexpr BudgetLimits kBuiltinBudget = {
    .model_tokens_in = 200'000,
    .model_tokens_out = 50'000,
    .tool_calls = 200,
    .wall_ms = 600'000,
    .net_bytes_out = 10 << 20,
    .spend_micros = 1'000'000,
};
inline constexpr int64_t kDefaultApprovalTimeoutMs = 300'000;

// A tool pattern: "*", an exact name, or "prefix.*" (every name under "prefix.", any depth).
struct ToolPattern {
  enum class Kind : uint8_t { kAny, kExact, kPrefix };
  Kind kind = Kind::kExact;
  std::string text;  // as written
  std::string key;   // kExact: the name; kPrefix: "prefix." (with the dot)

  static Result<ToolPattern> Parse(std::string_view text);
  bool Matches(std::string_view name) const;
};

// A set of tool patterns with exact names hashed.
class ToolMatcher {
 public:
  void Add(ToolPattern p);
  // The first pattern that matches, or nullptr.
  const ToolPattern* Match(std::string_view name) const;
  bool empty() const { return patterns_.empty(); }

 private:
  std::vector<ToolPattern> patterns_;
  StringMap<size_t> exact_;
  std::vector<size_t> wild_;  // indexes of kAny / kPrefix patterns
};

// Validates a tool name (no wildcards, printable ASCII without spaces or quotes, <= 128 bytes).
bool IsValidToolName(std::string_view name);

struct CompiledRule {
  std::string id;
  Verdict effect = Verdict::kDeny;
  std::string message;
  std::vector<std::string> targets;  // as compiled (after ~/ expansion); empty: any target
  std::vector<std::string> agents;   // empty: any agent
  std::optional<labels::LabelSet> labels_reach;
  std::optional<labels::LabelSet> labels_below;
  std::string at;  // "file:line:col" of the rule, for explanations
};

struct CompiledApproval {
  std::string id;
  std::vector<std::string> agents;  // empty: any agent
  std::string message;
  std::string at;
};

struct FlowTarget {
  enum class Kind : uint8_t {
    kTool,         // tool:<pattern>       tool.invoke
    kNetExternal,  // net:external         network.send to a non-internal host
    kNet,          // net:<host[:port]>    network.send
    kModel,        // model, model:<glob>  model.call
    kFileWrite,    // file.write:<glob>    file.write, file.patch
    kSecret,       // secret:<glob>        secret.open
    kSyscall,      // syscall:<kind>       any syscall of that kind
    kAgent,        // agent:<glob>         agent.send, agent.spawn
  };
  Kind kind = Kind::kSyscall;
  std::string text;  // as written
  std::optional<ToolPattern> tool;
  std::optional<Endpoint> net;
  std::optional<Glob> glob;  // absent for a bare "model"
  SyscallKind syscall = SyscallKind::kAssert;
};

struct CompiledFlow {
  std::string id;
  labels::LabelSet from;
  std::string from_text;  // the names as written, comma-joined
  std::vector<FlowTarget> to;
  Verdict action = Verdict::kDeny;
  std::string message;
};

// Loads and compiles a policy document. `json` selects the parser.
Result<std::unique_ptr<Policy::Impl>> LoadImpl(std::string_view text, std::string_view origin,
                                               bool json);

}  // namespace internal

struct Policy::Impl {
  std::string name;
  std::string hash;
  bool observe = false;
  int64_t default_approval_timeout_ms = internal::kDefaultApprovalTimeoutMs;

  std::vector<AgentSpec> agents;
  internal::StringMap<size_t> agent_index;

  // [fs]: ids are positions in the *_text vectors.
  internal::GlobIndex fs_read, fs_write, fs_deny;
  std::vector<std::string> fs_read_text, fs_write_text, fs_deny_text;

  // [net]
  std::vector<internal::Endpoint> net_connect, net_deny;
  std::vector<internal::HostPattern> net_internal;
  // True when the policy lists net.internal itself: then exactly those hosts are internal, and
  // loopback is not implied (a demo or test can treat loopback servers as the outside world).
  bool net_internal_explicit = false;

  // [tools]
  internal::ToolMatcher tools_allow, tools_deny;
  std::vector<ToolSpec> tools;
  internal::StringMap<size_t> tool_index;

  // [models]
  internal::GlobIndex models_allow;
  std::vector<std::string> models_allow_text;
  std::vector<ModelEndpoint> model_endpoints;
  std::vector<Glob> model_endpoint_globs;

  // [secrets]
  std::vector<SecretSpec> secrets;
  std::vector<std::string> secret_rule_ids;  // "secrets.<name>"
  std::vector<std::vector<internal::Endpoint>> secret_destinations;
  // "mcp:<server glob>" destinations: the MCP servers (behind the gateway) a secret may reach.
  std::vector<std::vector<Glob>> secret_mcp_servers;
  internal::StringMap<size_t> secret_index;

  // [[rules]], indexed per syscall kind; ids in the indexes are positions in `rules`.
  std::vector<internal::CompiledRule> rules;
  std::array<internal::GlobIndex, kSyscallKindCount> rule_index;

  // [[approvals]], indexed the same way.
  std::vector<internal::CompiledApproval> approvals;
  std::array<internal::GlobIndex, kSyscallKindCount> approval_index;

  // [[flows]], evaluated in order.
  std::vector<internal::CompiledFlow> flows;

  // Rule, flow and approval ids that can yield require_approval -> timeout.
  internal::StringMap<int64_t> approval_timeouts;

  // Compiled agents.<name>.spawn patterns, by agent index.
  std::vector<std::vector<Glob>> spawn_globs;
  // Precomputed rule ids "agents.<name>.spawn" and "agents.<name>.syscalls", by agent index.
  std::vector<std::string> spawn_rule_ids;
  std::vector<std::string> syscalls_rule_ids;
};

}  // namespace custos::policy
