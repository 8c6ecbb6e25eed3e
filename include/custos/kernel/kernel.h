#pragma once
// Kernel is the agent security kernel: every effect an agent has goes through Execute(), which
// runs the pipeline written once in src/kernel/pipeline.cc:
//
//   parse → schema → capability → resolve → policy → labels → budget → [approval]
//     → record(decision) → effect → record(outcome)
//
// Guarantees (DESIGN.md invariants, tests in tests/invariants/):
//  - INV-1 effects run only inside effect handlers, after an allow decision;
//  - INV-3 budgets are reserved before the effect and settled after, atomically;
//  - INV-4 the decision entry is in the log (per the durability mode) before the effect starts;
//    refusals are recorded too;
//  - INV-5 every value handed out carries at least the join of its inputs' labels;
//  - INV-6 secret bytes never appear in a result, a log entry or an error;
//  - INV-7 any internal failure ends in a recorded deny.
// Execute() never throws and never returns an error Status: a failure is a Decision with a reason.
//
// Thread-safe: one Kernel serves any number of threads. Policy is an immutable snapshot swapped
// atomically by ReloadPolicy(); readers never block.

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "custos/audit/log_writer.h"
#include "custos/core/clock.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"
#include "custos/kernel/syscall.h"
#include "custos/kernel/tool_provider.h"
#include "custos/policy/policy.h"
#include "custos/store/store.h"

namespace custos::kernel {

struct KernelOptions {
  std::filesystem::path data_dir;  // keys, store, sealed payloads; created 0700 if missing
  std::shared_ptr<const policy::Policy> policy;
  audit::Durability durability = audit::Durability::kGroup;
  const Clock* clock = nullptr;   // default SystemClock()
  int64_t approval_poll_ms = 50;  // how often a waiting syscall checks for an answer
  // Passphrase of an encrypted identity file (else the file must be unencrypted).
  std::optional<std::string> passphrase;
  size_t max_frame_bytes = 64 * 1024;
  size_t max_effect_bytes = 16 * 1024 * 1024;  // file/http/tool output cap
  int64_t handle_ttl_ms = 24 * 3600 * 1000;
  // Where informational messages go (e.g. "created a new identity"); default stderr.
  std::function<void(const std::string&)> notice;
};

class Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Open(KernelOptions options);
  ~Kernel();

  SyscallResult Execute(const Syscall& call);
  // Parse + Execute; a parse failure is recorded as a deny with the raw kind if it had one.
  SyscallResult ExecuteJson(std::string_view text);

  // Runs the decision stages for `call` without recording it or performing anything: what
  // Execute() would decide now (`custos explain`). Budget reservations are released.
  Decision Explain(const Syscall& call);

  // Validates nothing itself: `policy` is already a loaded Policy. Records the change.
  Status ReloadPolicy(std::shared_ptr<const policy::Policy> policy);
  std::shared_ptr<const policy::Policy> policy() const;

  // Answers a pending approval (the CLI does the same through the store from another process).
  Status AnswerApproval(const std::string& id, bool approve, const std::string& by,
                        const std::string& note);

  // Routes tool.invoke syscalls whose target starts with `prefix` (which must end with '.', e.g.
  // "fs.") to `provider` (see tool_provider.h). kAlreadyExists if the prefix is taken,
  // kInvalidArgument for an empty prefix or one without the trailing dot.
  Status RegisterToolProvider(const std::string& prefix, std::shared_ptr<ToolProvider> provider);
  // Removes the provider of `prefix` (kNotFound if none): later calls to its tools are tool.invoke
  // of unregistered tools again (denied unless the policy registers a command). Calls already in
  // their effect keep their reference and finish.
  Status UnregisterToolProvider(const std::string& prefix);

  // Appends an "event" entry (type "event", syscall `name`, `details` in its extra fields) to the
  // flight log, redacted like every entry: what a gateway observed outside any one syscall (a
  // downstream server restarted, a tool descriptor changed). Never carries payloads.
  Status RecordEvent(const std::string& name, const Json& details);

  // Forces everything logged so far to be durable.
  Result<audit::Appended> Commit();

  store::Store& store();
  const crypto::VerifyingKey& identity() const;

 private:
  struct Impl;
  explicit Kernel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::kernel
