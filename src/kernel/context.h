#pragma once
// SyscallContext is the per-call state that flows through the pipeline stages. Stages read what
// earlier stages filled in and add their own part; nothing here outlives one Execute().
//
// Confined: one thread (the caller's) for the whole call.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "custos/audit/log_writer.h"
#include "custos/budget/ledger.h"
#include "custos/core/decision.h"
#include "custos/kernel/execute_hooks.h"
#include "custos/kernel/syscall.h"
#include "custos/kernel/token_authority.h"
#include "custos/labels/label_set.h"
#include "custos/policy/policy.h"
#include "custos/store/store.h"

namespace custos::kernel {

struct SyscallContext {
  explicit SyscallContext(const Syscall& c) : call(c) {}

  const Syscall& call;
  std::shared_ptr<const policy::Policy> policy;
  int64_t now_ms = 0;

  // Explain(): decide without side effects (token uses are checked, not counted).
  bool explain = false;
  // The caller's observers (Kernel::Execute with hooks); null when nobody watches.
  const ExecuteHooks* hooks = nullptr;

  // capability: who the policy is written for, and what this agent may ask for.
  std::string principal;
  SyscallSet syscalls;
  std::shared_ptr<const VerifiedToken> token;  // verified, unrevoked; authorized later

  // resolve: the canonical form of the target that policy decides on.
  std::string target;  // canonical path, URL, tool, model, ...
  std::string host;
  uint16_t port = 0;
  std::string address;      // network.send: the one resolved IP the effect will connect to
  std::string destination;  // secret.open: "host:port" the secret is for
  // What the decision read from the world that the entry would not otherwise show (the resolved
  // address); recorded as the decision entry's extra.observed (kernel/environment.h). Null if none.
  Json observed;

  // labels: inputs by handle, and whether the call carries raw caller data.
  std::vector<store::HandleRecord> input_handles;
  labels::LabelSet input_labels;
  bool has_raw_data = false;

  // budget.
  budget::AccountKey account;
  budget::Amounts reserve;
  std::optional<budget::ReservationId> reservation;

  // the decision and its log entry.
  Decision decision;
  std::string approval_id;
  audit::Appended decision_entry;
};

}  // namespace custos::kernel
