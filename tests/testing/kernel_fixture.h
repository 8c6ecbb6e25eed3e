#pragma once
// KernelHarness opens a real Kernel over a temporary directory for kernel, invariant and canary
// tests: a workspace tree (ws/ readable, ws/out/ writable, outside/ neither), a data directory,
// and a policy written by MakePolicy() from a few knobs. It offers small builders for syscalls,
// reads the flight log back as decoded entries, and matchers that assert a decision's verdict,
// reason and stage and print the whole result when they fail.
//
// Confined to the test thread, except Kernel itself (thread-safe).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "custos/audit/log_entry.h"
#include "custos/audit/verifier.h"
#include "custos/core/json.h"
#include "custos/kernel/kernel.h"
#include "custos/kernel/token_wallet.h"
#include "custos/policy/policy.h"
#include "testing/temp_dir.h"

namespace custos::kernel {
// gtest prints results as their JSON.
inline void PrintTo(const SyscallResult& r, std::ostream* os) { *os << r.ToJson().dump(); }
}  // namespace custos::kernel

namespace custos::testing {

// The knobs of the standard test policy. Agents:
//   worker  — every syscall; may spawn "helper" and "scout"; budget from `worker_budget`;
//   reader  — file.read, context.read, memory.read, agent.recv, assert only;
//   helper, scout — spawn templates (syscalls = ["*"]);
//   lead    — agent.spawn (of scout), agent.send/recv, memory.alloc/read, tool.invoke, assert;
//   nobody  — no syscalls at all.
struct PolicySpec {
  std::string root;                       // canonical temp root; ws/ and ws/out/ live below
  std::vector<std::string> connect;       // net.connect entries ("127.0.0.1:PORT")
  std::string model_url;                  // OpenAI-compatible base URL, "" for none
  std::vector<std::string> secret_names;  // secrets "NAME" sourced from env:CUSTOS_TEST_<NAME>
  std::vector<std::string> secret_destinations;  // where every secret may be sent
  std::string mode = "enforce";
  int64_t approval_timeout_ms = 10'000;
  std::string worker_budget;  // TOML lines for [agents.worker.budget]
  std::string extra;          // appended TOML: [[rules]], [[approvals]], [[flows]], ...
};

inline std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

inline std::string TomlList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0)
      out += ", ";
    out += TomlString(v[i]);
  }
  return out + "]";
}

inline std::string SecretEnvName(const std::string& name) { return "CUSTOS_TEST_" + name; }

inline std::string MakePolicy(const PolicySpec& p) {
  std::string t;
  t += "[policy]\nname = \"kernel-test\"\nmode = " + TomlString(p.mode) +
       "\napproval_timeout_ms = " + std::to_string(p.approval_timeout_ms) + "\n\n";
  t += "[budgets.default]\nmodel_tokens_in = 100000\nmodel_tokens_out = 100000\n"
       "tool_calls = 1000\nwall_ms = 3600000\nnet_bytes_out = 10485760\n"
       "spend_micros = 100000000\n\n";
  t += "[agents.worker]\nsyscalls = [\"*\"]\nspawn = [\"helper\", \"scout\"]\n\n";
  if (!p.worker_budget.empty())
    t += "[agents.worker.budget]\n" + p.worker_budget + "\n\n";
  t += "[agents.reader]\nsyscalls = [\"file.read\", \"context.read\", \"memory.read\", "
       "\"agent.recv\", \"assert\"]\n\n";
  t += "[agents.helper]\nsyscalls = [\"*\"]\n\n[agents.scout]\nsyscalls = [\"*\"]\n\n";
  t += "[agents.lead]\nsyscalls = [\"agent.spawn\", \"agent.send\", \"agent.recv\", "
       "\"memory.alloc\", \"memory.read\", \"tool.invoke\", \"assert\"]\nspawn = [\"scout\"]\n\n";
  t += "[agents.nobody]\nsyscalls = []\n\n";
  t += "[fs]\nread = [" + TomlString(p.root + "/ws/**") + "]\nwrite = [" +
       TomlString(p.root + "/ws/out/**") + "]\ndeny = [" + TomlString(p.root + "/ws/private/**") +
       "]\n\n";
  t += "[net]\nconnect = " + TomlList(p.connect) + "\n\n";
  t += "[tools]\nallow = [\"echo\", \"fail\", \"marker\", \"unregistered\"]\ndeny = "
       "[\"danger.*\"]\n\n";
  t += "[[tools.registry]]\nname = \"echo\"\ncommand = [\"/bin/cat\"]\ndescription = \"Echoes its "
       "input.\"\ninput_schema = { type = \"object\" }\ntimeout_ms = 5000\n\n";
  t += "[[tools.registry]]\nname = \"fail\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; "
       "echo broken >&2; exit 3\"]\ndescription = \"Always fails.\"\n\n";
  // "marker" leaves root/tool-ran behind when it runs: INV-1 tests look for it.
  t += "[[tools.registry]]\nname = \"marker\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; "
       "echo ran > \\\"$0\\\"\", " +
       TomlString(p.root + "/tool-ran") + "]\n\n";
  t += "[[tools.registry]]\nname = \"danger.rm\"\ncommand = [\"/bin/true\"]\n\n";
  t += "[[tools.registry]]\nname = \"notallowed\"\ncommand = [\"/bin/true\"]\n\n";
  t += "[models]\nallow = [\"test-model\", \"test-*\"]\n";
  if (!p.model_url.empty()) {
    t += "\n[[models.endpoints]]\npattern = \"test-*\"\nurl = " + TomlString(p.model_url) +
         "\nmicros_per_1k_tokens_in = 1000\nmicros_per_1k_tokens_out = 2000\n";
  }
  t += "\n";
  for (const std::string& name : p.secret_names) {
    t += "[secrets." + name + "]\nsource = " + TomlString("env:" + SecretEnvName(name)) +
         "\nagents = [\"worker\"]\ndestinations = " + TomlList(p.secret_destinations) + "\n\n";
  }
  t += "[[flows]]\nid = \"no-secret-to-model\"\nfrom = [\"secret\"]\nto = [\"model\"]\n"
       "action = \"deny\"\n\n";
  t += "[[flows]]\nid = \"no-poisoned-to-echo\"\nfrom = [\"poisoned-suspect\"]\n"
       "to = [\"tool:echo\"]\naction = \"deny\"\n\n";
  t += p.extra;
  return t;
}

inline std::shared_ptr<const policy::Policy> LoadPolicyOrDie(const std::string& toml) {
  Result<std::shared_ptr<const policy::Policy>> p = policy::Policy::LoadString(toml, "test.toml");
  if (!p.ok()) {
    ADD_FAILURE() << "policy does not load: " << p.status().ToString() << "\n" << toml;
    return nullptr;
  }
  return *p;
}

inline void WriteFileOrDie(const std::filesystem::path& p, const std::string& body) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << body;
  ASSERT_TRUE(static_cast<bool>(out)) << p;
}

inline std::optional<std::string> ReadFileIfExists(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One syscall as JSON, for ExecuteJson.
inline Json CallJson(const std::string& agent, const std::string& kind, const std::string& target,
                     Json args = Json::object(), std::vector<std::string> inputs = {},
                     const std::string& run = "run-1") {
  Json j = {{"v", 1}, {"agent", agent}, {"run", run}, {"kind", kind}, {"args", std::move(args)}};
  if (!target.empty())
    j["target"] = target;
  if (!inputs.empty())
    j["inputs"] = std::move(inputs);
  return j;
}

class KernelHarness {
 public:
  struct Options {
    audit::Durability durability = audit::Durability::kGroup;
    const Clock* clock = nullptr;
    int64_t approval_poll_ms = 5;
    int64_t handle_ttl_ms = 24 * 3600 * 1000;
  };

  KernelHarness() : root_(std::filesystem::canonical(tmp_.path())) {
    std::filesystem::create_directories(root_ / "ws" / "out");
    std::filesystem::create_directories(root_ / "ws" / "private");
    std::filesystem::create_directories(root_ / "outside");
    std::filesystem::create_directories(root_ / "tools");
  }

  // The spec with root filled in, for tests to adjust before Open().
  PolicySpec Spec() const {
    PolicySpec s;
    s.root = root_.string();
    return s;
  }

  // Opens the kernel with `policy_toml`. Fails the test (and returns false) if it cannot.
  // Opens (or reopens, after closing the current kernel) over the same data directory.
  bool Open(const std::string& policy_toml, Options o) {
    wallet_.reset();
    kernel_.reset();
    std::shared_ptr<const policy::Policy> p = LoadPolicyOrDie(policy_toml);
    if (p == nullptr)
      return false;
    kernel::KernelOptions ko;
    ko.data_dir = root_ / "data";
    ko.policy = std::move(p);
    ko.durability = o.durability;
    ko.clock = o.clock;
    ko.approval_poll_ms = o.approval_poll_ms;
    ko.handle_ttl_ms = o.handle_ttl_ms;
    ko.notice = [](const std::string&) {};
    Result<std::unique_ptr<kernel::Kernel>> k = kernel::Kernel::Open(std::move(ko));
    if (!k.ok()) {
      ADD_FAILURE() << "kernel does not open: " << k.status().ToString();
      return false;
    }
    kernel_ = std::move(k).value();
    wallet_ = std::make_unique<kernel::TokenWallet>(*kernel_);
    return true;
  }
  bool Open(const std::string& policy_toml) { return Open(policy_toml, Options{}); }
  bool Open(const PolicySpec& spec) { return Open(MakePolicy(spec)); }

  void Close() {
    wallet_.reset();
    kernel_.reset();
  }

  kernel::Kernel& kernel() { return *kernel_; }
  // The capability tokens Exec() attaches: Kernel::Grant for policy agents, the token agent.spawn
  // returned for children. A call that names its own "token" keeps it.
  kernel::TokenWallet& wallet() { return *wallet_; }
  std::string TokenFor(const std::string& agent, const std::string& run = "run-1") {
    return wallet_->TokenFor(agent, run);
  }
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path ws() const { return root_ / "ws"; }
  std::filesystem::path out() const { return root_ / "ws" / "out"; }

  kernel::SyscallResult Exec(const Json& j) {
    Json call = j;
    wallet_->Attach(call);
    kernel::SyscallResult r = kernel_->ExecuteJson(call.dump());
    wallet_->Observe(call, r);
    return r;
  }
  // Exactly as given: no token is attached.
  kernel::SyscallResult ExecRaw(const Json& j) { return kernel_->ExecuteJson(j.dump()); }
  kernel::SyscallResult Exec(const std::string& agent, const std::string& kind,
                             const std::string& target, Json args = Json::object(),
                             std::vector<std::string> inputs = {},
                             const std::string& run = "run-1") {
    return Exec(CallJson(agent, kind, target, std::move(args), std::move(inputs), run));
  }
  // As the all-powerful test agent.
  kernel::SyscallResult Worker(const std::string& kind, const std::string& target,
                               Json args = Json::object(), std::vector<std::string> inputs = {}) {
    return Exec("worker", kind, target, std::move(args), std::move(inputs));
  }

  // Every log entry so far, decoded, after making the log durable.
  std::vector<audit::LogEntry> Log() {
    std::vector<audit::LogEntry> out;
    EXPECT_TRUE(kernel_->Commit().ok());
    store::LogQuery q;
    q.limit = 1'000'000;
    Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(q);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok())
      return out;
    for (const store::LogRow& row : *rows) {
      Result<audit::LogEntry> e = audit::DecodeEntry(row);
      EXPECT_TRUE(e.ok()) << e.status().ToString();
      if (e.ok())
        out.push_back(std::move(e).value());
    }
    return out;
  }
  std::vector<store::LogRow> Rows() {
    EXPECT_TRUE(kernel_->Commit().ok());
    store::LogQuery q;
    q.limit = 1'000'000;
    Result<std::vector<store::LogRow>> rows = kernel_->store().ReadLog(q);
    return rows.ok() ? *rows : std::vector<store::LogRow>{};
  }

  // The entries recorded for one syscall id, in log order.
  std::vector<audit::LogEntry> EntriesFor(const std::string& syscall_id) {
    std::vector<audit::LogEntry> out;
    for (audit::LogEntry& e : Log()) {
      if (e.syscall_id == syscall_id)
        out.push_back(std::move(e));
    }
    return out;
  }

  // Waits (up to `timeout`) for a pending approval and returns its id, "" if none appeared.
  std::string WaitForPendingApproval(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      Result<std::vector<store::Approval>> pending = kernel_->store().ListApprovals("pending");
      if (pending.ok() && !pending->empty())
        return pending->front().id;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return "";
  }

  // The remaining amount of `resource` for (agent, run), via the assert syscall.
  int64_t Remaining(const std::string& resource, const std::string& agent = "worker",
                    const std::string& run = "run-1") {
    kernel::SyscallResult r = Exec(agent, "assert", "budget_remaining",
                                   {{"resource", resource}, {"at_least", 0}}, {}, run);
    EXPECT_TRUE(r.decision.allowed()) << r.ToJson().dump();
    if (!r.decision.allowed())
      return -1;
    return r.frame.value("remaining", int64_t{-1});
  }

 private:
  TempDir tmp_;
  std::filesystem::path root_;
  std::unique_ptr<kernel::Kernel> kernel_;
  std::unique_ptr<kernel::TokenWallet> wallet_;
};

// --- matchers -------------------------------------------------------------------------------

MATCHER(IsAllowed, "is allowed") { return arg.decision.verdict == Verdict::kAllow; }

MATCHER_P2(IsDenied, reason, stage,
           "is denied with " + std::string(ReasonName(reason)) + " at stage " +
               std::string(stage)) {
  return arg.decision.verdict == Verdict::kDeny && arg.decision.reason == reason &&
         arg.decision.stage == stage;
}

MATCHER_P(HasAt, at, "has at " + std::string(at)) {
  *result_listener << "at is \"" << arg.decision.at << "\"";
  return arg.decision.at == at;
}

// The deny entry recorded for a refused syscall, if exactly one decision entry exists for it.
inline const audit::LogEntry* FindDecision(const std::vector<audit::LogEntry>& entries) {
  const audit::LogEntry* found = nullptr;
  for (const audit::LogEntry& e : entries) {
    if (e.type == "decision")
      found = &e;
  }
  return found;
}

}  // namespace custos::testing
