#include "custos/policy/policy.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "policy/policy_internal.h"

namespace custos::policy {
namespace {

using internal::CompiledFlow;
using internal::CompiledRule;
using internal::Endpoint;
using internal::FlowTarget;
using internal::GlobIndex;
using internal::HostInfo;
using internal::IpAddress;

constexpr size_t kMaxQuoted = 200;
constexpr std::string_view kStage = "policy";

// A request value quoted in an explanation: bounded, with control bytes escaped, so a hostile
// target can neither flood the log nor forge lines in it.
std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const size_t n = std::min(s.size(), kMaxQuoted);
  out.reserve(n + 3);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxQuoted) {
    out += "...";
  }
  return out;
}

// A TOML basic string, for suggestions.
std::string Toml(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s.substr(0, 4 * kMaxQuoted)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

Decision Allow(std::string_view rule) {
  Decision d;
  d.verdict = Verdict::kAllow;
  d.stage.assign(kStage);
  d.rule.assign(rule);
  d.reason = Reason::kOk;
  return d;
}

Decision Deny(Reason reason, std::string_view rule, std::string explanation,
              std::string suggestion) {
  Decision d;
  d.verdict = Verdict::kDeny;
  d.stage.assign(kStage);
  d.rule.assign(rule);
  d.reason = reason;
  d.explanation = std::move(explanation);
  d.suggestion = std::move(suggestion);
  return d;
}

Decision NeedsApproval(std::string_view rule, std::string explanation) {
  Decision d;
  d.verdict = Verdict::kRequireApproval;
  d.stage.assign(kStage);
  d.rule.assign(rule);
  d.reason = Reason::kApprovalRequired;
  d.explanation = std::move(explanation);
  return d;
}

bool IsFileKind(SyscallKind k) {
  return k == SyscallKind::kFileRead || k == SyscallKind::kFileWrite ||
         k == SyscallKind::kFilePatch;
}
bool IsToolKind(SyscallKind k) {
  return k == SyscallKind::kToolInvoke || k == SyscallKind::kToolDescribe;
}

// What the kernel's path canonicalisation produces: absolute, no empty, "." or ".." segments,
// no trailing '/', no NUL. Anything else never reaches a deny-list check unrecognised.
bool IsCanonicalPath(std::string_view p) {
  if (p.empty() || p[0] != '/') {
    return false;
  }
  if (p.size() == 1) {
    return true;
  }
  if (p.back() == '/' || p.find('\0') != std::string_view::npos) {
    return false;
  }
  size_t start = 1;
  while (true) {
    const size_t slash = p.find('/', start);
    const std::string_view seg =
        p.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    start = slash + 1;
  }
}

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  for (const std::string& n : names) {
    if (n == name) {
      return true;
    }
  }
  return false;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return true;
}

const labels::LabelSet& Bottom() {
  static const labels::LabelSet kBottom;
  return kBottom;
}

std::string KindTarget(const Request& req) {
  return std::string(SyscallName(req.kind)) + " " + Quote(req.target);
}

bool InternalHost(const Policy::Impl& p, const HostInfo& host) {
  if (host.name.empty()) {
    return false;
  }
  if (p.net_internal_explicit) {
    // Only what the policy lists.
  } else if (host.is_ip) {
    if (internal::IsLoopbackAddress(host.ip)) {
      return true;
    }
  } else {
    constexpr std::string_view kLocal = ".localhost";
    if (IEquals(host.name, "localhost") ||
        (host.name.size() > kLocal.size() &&
         IEquals(host.name.substr(host.name.size() - kLocal.size()), kLocal))) {
      return true;
    }
  }
  for (const internal::HostPattern& hp : p.net_internal) {
    if (hp.MatchesHost(host)) {
      return true;
    }
  }
  return false;
}

// The DNS-rebinding and metadata guard: may a connection for `host`:`port` go to `address`?
// nullopt if it may. Applies whatever allowed the request (net.connect or a rule).
std::optional<Decision> AddressGuard(const Policy::Impl& p, const Request& req,
                                     const HostInfo& host) {
  IpAddress addr;
  if (!internal::ParseIp(req.address, &addr)) {
    return Deny(Reason::kAddressNotAllowed, "net.connect",
                "resolved address \"" + Quote(req.address) + "\" of host " + Quote(req.host) +
                    " is not an IP address",
                "");
  }
  for (const Endpoint& e : p.net_connect) {
    if (e.PortMatches(req.port) && e.host().CoversAddress(addr)) {
      return std::nullopt;
    }
  }
  const std::string_view special = internal::SpecialAddressClass(addr);
  const std::string ip = internal::FormatIp(addr);
  if (!special.empty()) {
    return Deny(Reason::kAddressNotAllowed, "net.connect",
                "host " + Quote(req.host) + " resolved to " + ip + ", a " + std::string(special) +
                    " address; only a net.connect entry naming that IP (or a CIDR covering it) "
                    "allows it",
                "[net]\nconnect = [" + Toml(internal::FormatEndpoint(ip, req.port)) + "]");
  }
  if (internal::IsPublicAddress(addr) || InternalHost(p, host)) {
    return std::nullopt;
  }
  return Deny(Reason::kAddressNotAllowed, "net.connect",
              "host " + Quote(req.host) + " resolved to " + ip +
                  ", which is not a public address, and the host is not in net.internal "
                  "(DNS-rebinding guard)",
              "[net]\ninternal = [" + Toml(host.name) + "]");
}

// net.deny, by host:port and, once resolved, by address.
std::optional<Decision> NetDenyList(const Policy::Impl& p, const Request& req,
                                    const HostInfo& host) {
  if (p.net_deny.empty()) {
    return std::nullopt;
  }
  IpAddress addr;
  const bool resolved = !req.address.empty() && internal::ParseIp(req.address, &addr);
  for (const Endpoint& e : p.net_deny) {
    if (e.Matches(host, req.port)) {
      return Deny(Reason::kDeniedByRule, "net.deny",
                  Quote(internal::FormatEndpoint(req.host, req.port)) + " matches net.deny entry " +
                      Toml(e.text()),
                  "# remove " + Toml(e.text()) + " from [net] deny to allow this host");
    }
    if (resolved && e.PortMatches(req.port) && e.host().CoversAddress(addr)) {
      return Deny(Reason::kDeniedByRule, "net.deny",
                  "host " + Quote(req.host) + " resolved to " + internal::FormatIp(addr) +
                      ", which matches net.deny entry " + Toml(e.text()),
                  "# remove " + Toml(e.text()) + " from [net] deny to allow this address");
    }
  }
  return std::nullopt;
}

Decision NetConnect(const Policy::Impl& p, const Request& req, const HostInfo& host) {
  const Endpoint* match = nullptr;
  for (const Endpoint& e : p.net_connect) {
    if (e.Matches(host, req.port)) {
      match = &e;
      break;
    }
  }
  if (match == nullptr) {
    const std::string ep = internal::FormatEndpoint(host.name, req.port);
    return Deny(Reason::kHostNotAllowed, "net.connect",
                "host:port " + Quote(ep) + " matches no net.connect entry",
                "[net]\nconnect = [" + Toml(ep) + "]");
  }
  if (!req.address.empty()) {
    if (std::optional<Decision> d = AddressGuard(p, req, host)) {
      return std::move(*d);
    }
  }
  return Allow("net.connect");
}

Decision SecretCheck(const Policy::Impl& p, const Request& req) {
  auto it = p.secret_index.find(req.target);
  if (it == p.secret_index.end()) {
    return Deny(Reason::kSecretNotAllowed, "secrets",
                "secret " + Quote(req.target) + " is not defined in the policy",
                "[secrets." + Quote(req.target) + "]\nsource = \"env:NAME\"\nagents = [" +
                    Toml(req.agent) + "]");
  }
  const SecretSpec& s = p.secrets[it->second];
  const std::string& rule = p.secret_rule_ids[it->second];
  if (!Contains(s.agents, req.agent)) {
    return Deny(Reason::kSecretNotAllowed, rule,
                "agent " + Quote(req.agent) + " is not in secrets." + s.name + ".agents",
                "[secrets." + s.name + "]\nagents = [" + Toml(req.agent) + "]");
  }
  if (req.destination.starts_with("mcp:")) {
    // An MCP server behind the gateway (a secret handle in a tool's arguments).
    const std::string_view server = std::string_view(req.destination).substr(4);
    for (const Glob& g : p.secret_mcp_servers[it->second]) {
      if (g.Matches(server))
        return Allow(rule);
    }
    return Deny(Reason::kSecretNotAllowed, rule,
                "MCP server " + Quote(std::string(server)) + " matches no secrets." + s.name +
                    ".destinations \"mcp:...\" entry",
                "[secrets." + s.name + "]\ndestinations = [" + Toml(req.destination) + "]");
  }
  if (!req.destination.empty()) {
    std::string_view host;
    uint16_t port = 0;
    if (!internal::SplitHostPort(req.destination, &host, &port)) {
      return Deny(Reason::kSecretNotAllowed, rule,
                  "destination " + Quote(req.destination) + " is not host:port", "");
    }
    const HostInfo info = internal::MakeHostInfo(host);
    bool ok = false;
    for (const Endpoint& e : p.secret_destinations[it->second]) {
      if (e.Matches(info, port)) {
        ok = true;
        break;
      }
    }
    if (!ok) {
      return Deny(Reason::kSecretNotAllowed, rule,
                  "destination " + Quote(req.destination) + " matches no secrets." + s.name +
                      ".destinations entry",
                  "[secrets." + s.name + "]\ndestinations = [" + Toml(req.destination) + "]");
    }
  }
  return Allow(rule);
}

// Step 3: the syscall's domain section.
Decision Domain(const Policy::Impl& p, const Request& req, const AgentSpec& agent,
                size_t agent_index, const HostInfo& host) {
  switch (req.kind) {
    case SyscallKind::kFileRead:
      if (p.fs_read.First(req.target) != GlobIndex::kNone) {
        return Allow("fs.read");
      }
      return Deny(Reason::kPathNotAllowed, "fs.read",
                  "path " + Quote(req.target) + " matches no fs.read glob",
                  "[fs]\nread = [" + Toml(req.target) + "]");
    case SyscallKind::kFileWrite:
    case SyscallKind::kFilePatch:
      if (p.fs_write.First(req.target) != GlobIndex::kNone) {
        return Allow("fs.write");
      }
      return Deny(Reason::kPathNotAllowed, "fs.write",
                  "path " + Quote(req.target) + " matches no fs.write glob",
                  "[fs]\nwrite = [" + Toml(req.target) + "]");
    case SyscallKind::kNetworkSend:
      return NetConnect(p, req, host);
    case SyscallKind::kToolInvoke:
    case SyscallKind::kToolDescribe:
      if (p.tools_allow.Match(req.target) != nullptr) {
        return Allow("tools.allow");
      }
      return Deny(Reason::kToolNotAllowed, "tools.allow",
                  "tool " + Quote(req.target) + " matches no tools.allow pattern",
                  "[tools]\nallow = [" + Toml(req.target) + "]");
    case SyscallKind::kModelCall:
      if (p.models_allow.First(req.target) != GlobIndex::kNone) {
        return Allow("models.allow");
      }
      return Deny(Reason::kModelNotAllowed, "models.allow",
                  "model " + Quote(req.target) + " matches no models.allow glob",
                  "[models]\nallow = [" + Toml(req.target) + "]");
    case SyscallKind::kSecretOpen:
      return SecretCheck(p, req);
    case SyscallKind::kAgentSpawn:
      for (const Glob& g : p.spawn_globs[agent_index]) {
        if (g.Matches(req.target)) {
          return Allow(p.spawn_rule_ids[agent_index]);
        }
      }
      return Deny(Reason::kNoMatchingRule, p.spawn_rule_ids[agent_index],
                  "agent " + Quote(agent.name) + " may not spawn " + Quote(req.target) +
                      " (not in agents." + agent.name + ".spawn)",
                  "[agents." + agent.name + "]\nspawn = [" + Toml(req.target) + "]");
    default:
      break;
  }
  if (!IsExternalEffect(req.kind)) {
    return Allow("kernel.internal");
  }
  return Deny(Reason::kNoMatchingRule, "default",
              "no rule allows " + KindTarget(req) + " (default deny)", "");
}

// For an allow: [[approvals]] may turn it into require_approval.
void ApplyApprovals(const Policy::Impl& p, const Request& req, Decision* d) {
  const GlobIndex& index = p.approval_index[static_cast<size_t>(req.kind)];
  if (index.empty()) {
    return;
  }
  const uint32_t id = index.First(req.target, [&](uint32_t i) {
    const auto& agents = p.approvals[i].agents;
    return agents.empty() || Contains(agents, req.agent);
  });
  if (id == GlobIndex::kNone) {
    return;
  }
  const internal::CompiledApproval& a = p.approvals[id];
  std::string explanation = "approval '" + a.id + "' requires a person to approve " +
                            KindTarget(req) + " (allowed by " + d->rule + ")";
  if (!a.message.empty()) {
    explanation += ": " + a.message;
  }
  *d = NeedsApproval(a.id, std::move(explanation));
}

bool FlowTargetMatches(const Policy::Impl& p, const FlowTarget& t, const Request& req) {
  switch (t.kind) {
    case FlowTarget::Kind::kTool:
      return req.kind == SyscallKind::kToolInvoke && t.tool->Matches(req.target);
    case FlowTarget::Kind::kNetExternal:
      return req.kind == SyscallKind::kNetworkSend &&
             !InternalHost(p, internal::MakeHostInfo(req.host));
    case FlowTarget::Kind::kNet:
      return req.kind == SyscallKind::kNetworkSend &&
             t.net->Matches(internal::MakeHostInfo(req.host), req.port);
    case FlowTarget::Kind::kModel:
      return req.kind == SyscallKind::kModelCall && (!t.glob || t.glob->Matches(req.target));
    case FlowTarget::Kind::kFileWrite:
      return (req.kind == SyscallKind::kFileWrite || req.kind == SyscallKind::kFilePatch) &&
             t.glob->Matches(req.target);
    case FlowTarget::Kind::kSecret:
      return req.kind == SyscallKind::kSecretOpen && t.glob->Matches(req.target);
    case FlowTarget::Kind::kSyscall:
      return req.kind == t.syscall;
    case FlowTarget::Kind::kAgent:
      return (req.kind == SyscallKind::kAgentSend || req.kind == SyscallKind::kAgentSpawn) &&
             t.glob->Matches(req.target);
  }
  return false;
}

}  // namespace

Policy::Policy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Policy::~Policy() = default;

Result<std::shared_ptr<const Policy>> Policy::LoadString(std::string_view text,
                                                         std::string_view origin) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  const bool json = first != std::string_view::npos && text[first] == '{';
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<Impl> impl, internal::LoadImpl(text, origin, json));
  return std::shared_ptr<const Policy>(std::make_shared<Policy>(std::move(impl)));
}

Result<std::shared_ptr<const Policy>> Policy::LoadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(Reason::kIoError, "cannot open policy file: " + std::string(strerror(errno)),
                  path.string());
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    return Status(Reason::kIoError, "cannot read policy file", path.string());
  }
  const std::string ext = path.extension().string();
  if (ext == ".json" || ext == ".toml") {
    CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<Impl> impl,
                            internal::LoadImpl(text, path.string(), ext == ".json"));
    return std::shared_ptr<const Policy>(std::make_shared<Policy>(std::move(impl)));
  }
  return LoadString(text, path.string());
}

Decision Policy::Decide(const Request& req) const {
  const Impl& p = *impl_;
  const auto kind_index = static_cast<size_t>(req.kind);
  if (kind_index >= static_cast<size_t>(kSyscallKindCount)) {
    return Deny(Reason::kUnknownSyscall, "default",
                "syscall kind " + std::to_string(kind_index) + " is unknown", "");
  }

  // 0. The principal must be a policy agent holding this syscall kind.
  auto agent_it = p.agent_index.find(req.agent);
  if (agent_it == p.agent_index.end()) {
    return Deny(
        Reason::kUnknownAgent, "agents",
        "agent " + Quote(req.agent) + " is not defined in the policy",
        "[agents." + Quote(req.agent) + "]\nsyscalls = [" + Toml(SyscallName(req.kind)) + "]");
  }
  const size_t agent_index = agent_it->second;
  const AgentSpec& agent = p.agents[agent_index];
  if (!agent.syscalls.Contains(req.kind)) {
    return Deny(
        Reason::kCapabilityMissing, p.syscalls_rule_ids[agent_index],
        "agent " + Quote(agent.name) + " may not make " + std::string(SyscallName(req.kind)) +
            " (not in agents." + agent.name + ".syscalls)",
        "[agents." + agent.name + "]\nsyscalls = [..., " + Toml(SyscallName(req.kind)) + "]");
  }

  // 1. Absolute deny lists.
  HostInfo host;
  if (IsFileKind(req.kind)) {
    const std::string_view section = req.kind == SyscallKind::kFileRead ? "fs.read" : "fs.write";
    if (!IsCanonicalPath(req.target)) {
      return Deny(Reason::kPathNotAllowed, section,
                  "path " + Quote(req.target) + " is not a canonical absolute path", "");
    }
    if (const uint32_t id = p.fs_deny.First(req.target); id != GlobIndex::kNone) {
      return Deny(Reason::kDeniedByRule, "fs.deny",
                  "path " + Quote(req.target) + " matches fs.deny glob " + Toml(p.fs_deny_text[id]),
                  "# remove " + Toml(p.fs_deny_text[id]) + " from [fs] deny to allow this path");
    }
  } else if (req.kind == SyscallKind::kNetworkSend) {
    host = internal::MakeHostInfo(req.host);
    if (host.name.empty()) {
      return Deny(Reason::kHostNotAllowed, "net.connect", "network.send names no host", "");
    }
    if (std::optional<Decision> d = NetDenyList(p, req, host)) {
      return std::move(*d);
    }
  } else if (IsToolKind(req.kind)) {
    if (const internal::ToolPattern* t = p.tools_deny.Match(req.target)) {
      return Deny(Reason::kToolNotAllowed, "tools.deny",
                  "tool " + Quote(req.target) + " matches tools.deny pattern " + Toml(t->text),
                  "# remove " + Toml(t->text) + " from [tools] deny to allow this tool");
    }
  }

  // 2. [[rules]], first match wins.
  const labels::LabelSet& labels = req.labels != nullptr ? *req.labels : Bottom();
  const uint32_t rule_id = p.rule_index[kind_index].First(req.target, [&](uint32_t i) {
    const CompiledRule& r = p.rules[i];
    if (!r.agents.empty() && !Contains(r.agents, req.agent)) {
      return false;
    }
    if (r.labels_reach && !labels.Reaches(*r.labels_reach)) {
      return false;
    }
    if (r.labels_below && !r.labels_below->Reaches(labels)) {
      return false;
    }
    return true;
  });
  Decision d;
  if (rule_id != GlobIndex::kNone) {
    const CompiledRule& r = p.rules[rule_id];
    if (r.effect == Verdict::kDeny) {
      std::string explanation = "rule '" + r.id + "' denies " + KindTarget(req);
      if (!r.message.empty()) {
        explanation += ": " + r.message;
      }
      return Deny(Reason::kDeniedByRule, r.id, std::move(explanation),
                  "# rule " + Toml(r.id) + " (" + r.at +
                      ") denies this explicitly; narrow its `when` or remove it");
    }
    // Rules cannot widen two guards: the address guard and a secret's agents/destinations.
    if (req.kind == SyscallKind::kNetworkSend && !req.address.empty()) {
      if (std::optional<Decision> g = AddressGuard(p, req, host)) {
        return std::move(*g);
      }
    }
    if (req.kind == SyscallKind::kSecretOpen) {
      Decision s = SecretCheck(p, req);
      if (!s.allowed()) {
        return s;
      }
    }
    if (r.effect == Verdict::kRequireApproval) {
      std::string explanation =
          "rule '" + r.id + "' requires a person to approve " + KindTarget(req);
      if (!r.message.empty()) {
        explanation += ": " + r.message;
      }
      return NeedsApproval(r.id, std::move(explanation));
    }
    d = Allow(r.id);
  } else {
    // 3. The domain section; 4. default deny.
    d = Domain(p, req, agent, agent_index, host);
    if (!d.allowed()) {
      return d;
    }
  }
  ApplyApprovals(p, req, &d);
  return d;
}

FlowResult Policy::FlowDecide(const Request& req) const {
  FlowResult out;
  const Impl& p = *impl_;
  if (p.flows.empty()) {
    return out;
  }
  const labels::LabelSet& labels = req.labels != nullptr ? *req.labels : Bottom();
  const CompiledFlow* approval = nullptr;
  const FlowTarget* approval_target = nullptr;
  for (const CompiledFlow& f : p.flows) {
    if (!labels.Reaches(f.from)) {
      continue;
    }
    const FlowTarget* hit = nullptr;
    for (const FlowTarget& t : f.to) {
      if (FlowTargetMatches(p, t, req)) {
        hit = &t;
        break;
      }
    }
    if (hit == nullptr) {
      continue;
    }
    if (f.action == Verdict::kDeny) {
      out.verdict = Verdict::kDeny;
      out.rule = f.id;
      out.explanation = "inputs are [" + labels.ToString() + "]; flow '" + f.id + "' forbids " +
                        f.from_text + " -> " + hit->text;
      if (!f.message.empty()) {
        out.explanation += ": " + f.message;
      }
      return out;
    }
    if (approval == nullptr) {
      approval = &f;
      approval_target = hit;
    }
  }
  if (approval != nullptr) {
    out.verdict = Verdict::kRequireApproval;
    out.rule = approval->id;
    out.explanation = "inputs are [" + labels.ToString() + "]; flow '" + approval->id +
                      "' requires a person to approve " + approval->from_text + " -> " +
                      approval_target->text;
    if (!approval->message.empty()) {
      out.explanation += ": " + approval->message;
    }
  }
  return out;
}

bool Policy::IsInternalHost(std::string_view host) const {
  return InternalHost(*impl_, internal::MakeHostInfo(host));
}

const AgentSpec* Policy::FindAgent(std::string_view name) const {
  auto it = impl_->agent_index.find(name);
  return it == impl_->agent_index.end() ? nullptr : &impl_->agents[it->second];
}

const SecretSpec* Policy::FindSecret(std::string_view name) const {
  auto it = impl_->secret_index.find(name);
  return it == impl_->secret_index.end() ? nullptr : &impl_->secrets[it->second];
}

const ModelEndpoint* Policy::FindModel(std::string_view model) const {
  for (size_t i = 0; i < impl_->model_endpoints.size(); ++i) {
    if (impl_->model_endpoint_globs[i].Matches(model)) {
      return &impl_->model_endpoints[i];
    }
  }
  return nullptr;
}

const ToolSpec* Policy::FindTool(std::string_view name) const {
  auto it = impl_->tool_index.find(name);
  return it == impl_->tool_index.end() ? nullptr : &impl_->tools[it->second];
}

int64_t Policy::ApprovalTimeoutMs(std::string_view rule) const {
  auto it = impl_->approval_timeouts.find(rule);
  return it == impl_->approval_timeouts.end() ? impl_->default_approval_timeout_ms : it->second;
}

const std::vector<SecretSpec>& Policy::secrets() const { return impl_->secrets; }
const std::vector<ToolSpec>& Policy::tools() const { return impl_->tools; }
std::string_view Policy::name() const { return impl_->name; }
std::string_view Policy::hash() const { return impl_->hash; }
bool Policy::observe_mode() const { return impl_->observe; }

}  // namespace custos::policy
