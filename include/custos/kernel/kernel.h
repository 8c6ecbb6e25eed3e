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
#include "custos/budget/ledger.h"
#include "custos/core/clock.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"
#include "custos/kernel/execute_hooks.h"
#include "custos/kernel/syscall.h"
#include "custos/kernel/tool_provider.h"
#include "custos/policy/policy.h"
#include "custos/store/store.h"

namespace custos::kernel {

// What Kernel::Grant puts in a token beyond the agent's policy entry
// (docs/spec/capability-token.md). Every field narrows; none can widen what `[agents.NAME]
// syscalls` grants.
struct GrantOptions {
  // The syscall kinds granted: a subset of the policy entry's; empty = all of them. A kind the
  // policy does not grant is kCapabilityMissing.
  std::vector<std::string> syscalls;
  // If not empty, the token is good only for targets starting with one of these (canonical form:
  // absolute paths, URLs, tool and model names).
  std::vector<std::string> resource_prefixes;
  int64_t ttl_ms = 0;          // > 0: the token expires this long after the grant
  int64_t max_uses = 0;        // > 0: at most this many uses, counted in the store
  int64_t rate_count = 0;      // > 0 with rate_window_ms: at most rate_count uses per window
  int64_t rate_window_ms = 0;  //
};

struct KernelOptions {
  std::filesystem::path data_dir;  // keys, store, sealed payloads; created 0700 if missing
  std::shared_ptr<const policy::Policy> policy;
  audit::Durability durability = audit::Durability::kGroup;
  // Automatic signed checkpoints of the flight log (docs/spec/checkpoint.md): every N entries or
  // T ms after the first uncovered entry, whichever comes first; 0 disables that trigger.
  // audit.commit and shutdown always checkpoint.
  int64_t checkpoint_every_entries = 1000;
  int64_t checkpoint_every_ms = 1000;
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
  // The same, with observers called while the call runs (execute_hooks.h): the decision as soon
  // as it is recorded, then the effect's progress. The result is the one Execute(call) returns.
  SyscallResult Execute(const Syscall& call, const ExecuteHooks& hooks);
  // Parse + Execute; a parse failure is recorded as a deny with the raw kind if it had one.
  SyscallResult ExecuteJson(std::string_view text);

  // Records a refusal decided before the pipeline (custosd: the request acts for an agent other
  // than its authenticated caller) as a deny at `stage` with `why`, exactly as a parse failure is
  // recorded: the raw request is hashed and sealed beside the entry. Returns that deny.
  SyscallResult RecordRefusal(const Json& raw, const std::string& stage, const Status& why);

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

  // `value` with every string (object keys included) redacted as results and log entries are:
  // each secret value the vault knows, in any spelling the scanner recognises, becomes
  // "[redacted:<name>]" (INV-6). For what a gateway relays outside a syscall's frame (an MCP
  // server's log messages). Numbers, booleans and null are unchanged.
  Json RedactSecrets(const Json& value);

  // Forces everything logged so far to be durable.
  Result<audit::Appended> Commit();

  // Capability tokens (INV-2, docs/spec/capability-token.md). Every syscall must carry a token
  // (Syscall::token) minted by this kernel's token root key, unrevoked, unexpired, whose checks
  // pass for exactly that request and which grants its kind; the policy must allow it as well.
  //
  // Grant mints a token for policy agent `agent`, bound to `run` ("" = any run), granting the
  // syscall kinds of its `[agents.NAME]` entry narrowed by `options`. Errors: kUnknownAgent for an
  // agent the policy does not define (spawned children get their token from agent.spawn),
  // kCapabilityMissing for a syscall the policy does not grant, kInvalidArgument for a bad option.
  // The grant is recorded in the flight log (its revocation id, never the token).
  Result<std::string> Grant(const std::string& agent, const std::string& run,
                            const GrantOptions& options = {});
  // Mints a token whose authority block is `authority_datalog` as written (operators and tests;
  // docs/spec/capability-token.md lists the vocabulary the kernel's authorizer understands).
  // kInvalidArgument for Datalog that does not parse or holds policies. Recorded like Grant.
  Result<std::string> MintToken(std::string_view authority_datalog);
  // Revokes a token given as its text (its last block: the token and everything attenuated from
  // it) or as one revocation id (lowercase hex, as `custos token inspect` prints). Persisted in the
  // store, so every kernel sharing it refuses the token on its next use (kTokenRevoked). Errors:
  // kTokenInvalid for text that is neither a revocation id nor a token of this kernel's root.
  // Recorded as a `token.revoke` event. Returns the revocation id written.
  Result<std::string> Revoke(std::string_view token_or_id, const std::string& note = "");
  // The public half of the token root key, "ed25519/<hex>" (what `custos token verify` needs).
  std::string token_root_public_key() const;

  store::Store& store();
  const crypto::VerifyingKey& identity() const;
  // Every budget account (agent, run) with its limit, used and reserved amounts (for metrics).
  std::vector<std::pair<budget::AccountKey, budget::AccountStatus>> BudgetAccounts() const;

 private:
  struct Impl;
  explicit Kernel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::kernel
