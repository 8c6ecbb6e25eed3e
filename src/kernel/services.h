#pragma once
// Services is what stages and effect handlers may use: the store, the budget ledger, the log
// writer, handle minting and unsealing, secrets, and the registry of spawned agents. It is the
// only path from a handler to persistent state, which keeps INV-1 auditable: grep for Services.
//
// Thread-safe: every member is thread-safe or guarded here.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "custos/audit/log_writer.h"
#include "custos/budget/ledger.h"
#include "custos/core/clock.h"
#include "custos/crypto/keys.h"
#include "custos/effects/secret_scanner.h"
#include "custos/kernel/kernel.h"
#include "custos/kernel/token_authority.h"
#include "custos/labels/label_set.h"
#include "custos/policy/policy.h"
#include "custos/store/store.h"

namespace custos::kernel {

// An agent as the capability stage sees it: a policy agent, or a child spawned in one run.
struct AgentState {
  std::string name;
  std::string principal;  // the policy agent at the root of its spawn tree
  SyscallSet syscalls;
  std::string parent;  // "" for policy agents
};

// The values of the policy's secrets, loaded from their sources, plus the egress scanner built
// over them. Rebuilt on policy reload. Secret bytes live only here and inside sealed handles.
class SecretVault {
 public:
  // Loads every secret it can; a secret whose source is missing is skipped (secret.open of it
  // then fails with kNotFound), and its name is reported in *missing.
  static std::shared_ptr<const SecretVault> Load(const policy::Policy& policy,
                                                 std::vector<std::string>* missing);
  const std::string* Find(std::string_view name) const;
  const effects::SecretScanner& scanner() const { return *scanner_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
  std::unique_ptr<effects::SecretScanner> scanner_;
};

class Services;
class Environment;

// CallPin pins the policy and secret-vault snapshots for one syscall on the calling thread: while
// it lives, Services::policy() and vault() on this thread return the pinned pair without taking
// the policy lock, and every stage of the call sees the same policy and the vault built from it,
// even if a reload swaps them meanwhile.
// Confined: construct and destroy on the same thread, nested pins restore the outer one.
class CallPin {
 public:
  explicit CallPin(const Services& s);
  ~CallPin();
  CallPin(const CallPin&) = delete;
  CallPin& operator=(const CallPin&) = delete;

  struct Pinned {
    const Services* owner = nullptr;
    std::shared_ptr<const policy::Policy> policy;
    std::shared_ptr<const SecretVault> vault;
  };

 private:
  Pinned pinned_;
  Pinned* prev_;
};

class Services {
 public:
  Services(KernelOptions options, std::unique_ptr<store::Store> store,
           std::unique_ptr<crypto::SigningKey> identity);
  ~Services();

  Status Start();  // opens the log writer and loads secrets

  // Forgets what one kernel process holds only in memory (budget accounts and reservations, run
  // clocks, the cache of spawned agents), as a restart does; the store keeps the rest. For a
  // replay crossing a `kernel.start` entry (kernel/replay.h).
  // REQUIRES: no call in flight.
  void ForgetProcessState();

  const KernelOptions& options() const { return options_; }
  const Clock& clock() const { return *options_.clock; }
  store::Store& store() { return *store_; }
  budget::Ledger& ledger() { return *ledger_; }
  audit::LogWriter& log() { return *writer_; }
  const crypto::SigningKey& identity() const { return *identity_; }
  // The token root key is derived from the identity (decision 008).
  TokenAuthority& tokens() { return *tokens_; }
  // The world a decision reads (paths, DNS, secret values): LiveEnvironment() unless a replay
  // installed its own record-backed one with UseEnvironment().
  const Environment& env() const { return *env_; }
  // REQUIRES: before any call runs; `env` outlives this Services.
  void UseEnvironment(const Environment* env) { env_ = env; }

  std::shared_ptr<const policy::Policy> policy() const;
  std::shared_ptr<const SecretVault> vault() const;
  void SetPolicy(std::shared_ptr<const policy::Policy> p);

  // Resolves an agent in a run. kUnknownAgent if neither the policy nor a spawn knows it.
  Result<AgentState> FindAgent(const policy::Policy& p, const std::string& run,
                               const std::string& name);
  Status RegisterChild(const std::string& run, const AgentState& child, const Json& budget);

  // Opens the budget account of (agent, run) with the principal's limits, once.
  Result<budget::AccountKey> Account(const policy::Policy& p, const AgentState& agent,
                                     const std::string& run);
  // Milliseconds since the account was opened (the run's wall clock for this agent).
  int64_t AccountAgeMs(const budget::AccountKey& key) const;
  // A spawned child's wall clock is a deadline (its parent's, or earlier if the spawn said so),
  // not an amount carved from the parent: time passes for parent and children alike, so dividing
  // it would let a parent spawn only one child.
  void SetWallDeadline(const budget::AccountKey& key, int64_t deadline_ms);
  // Milliseconds left on the account's wall clock (<= 0 when it has run out): the deadline of a
  // child, else the account's wall_ms limit minus its age.
  int64_t WallRemainingMs(const budget::AccountKey& key, const budget::AccountStatus& status) const;

  // Seals `content` and stores a new handle owned by (agent, run).
  Result<store::HandleRecord> MintHandle(const std::string& agent, const std::string& run,
                                         const std::string& kind, std::string_view content,
                                         const labels::LabelSet& labels, const Json& meta);
  // Loads a handle for use by (agent, run): kUnknownHandle, kHandleExpired, kForeignHandle.
  Result<store::HandleRecord> LoadHandle(const std::string& id, const std::string& agent,
                                         const std::string& run);
  Result<std::string> Unseal(const store::HandleRecord& h);

  // Tool providers (Kernel::RegisterToolProvider): the provider whose prefix starts `target`.
  Status AddToolProvider(const std::string& prefix, std::shared_ptr<ToolProvider> provider);
  Status RemoveToolProvider(const std::string& prefix);
  std::shared_ptr<ToolProvider> FindToolProvider(std::string_view target) const;
  std::string SealPayload(std::string_view bytes, std::string_view ad) const;
  // Seals `content` as the value of handle `id` (what MintHandle stores), for a replay that
  // substitutes a recorded result (kernel/replay.h). Never stores anything itself.
  std::string SealHandleContent(std::string_view content, std::string_view id) const;

 private:
  KernelOptions options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<crypto::SigningKey> identity_;
  std::unique_ptr<crypto::AeadKey> handle_key_;
  std::unique_ptr<crypto::AeadKey> payload_key_;
  std::unique_ptr<TokenAuthority> tokens_;
  std::unique_ptr<budget::Ledger> ledger_ = std::make_unique<budget::Ledger>();
  std::unique_ptr<audit::LogWriter> writer_;
  const Environment* env_;

  friend class CallPin;
  mutable std::mutex policy_mu_;  // guards the two snapshots (swapped, never mutated)
  std::shared_ptr<const policy::Policy> policy_;
  std::shared_ptr<const SecretVault> vault_;

  mutable std::shared_mutex providers_mu_;
  std::map<std::string, std::shared_ptr<ToolProvider>, std::less<>> providers_;  // by prefix

  mutable std::shared_mutex agents_mu_;
  std::unordered_map<std::string, AgentState> children_;        // key: run + '\n' + name
  std::unordered_map<std::string, int64_t> account_opened_ms_;  // key: agent + '\n' + run
  std::unordered_map<std::string, int64_t> wall_deadline_ms_;   // key: agent + '\n' + run
};

}  // namespace custos::kernel
