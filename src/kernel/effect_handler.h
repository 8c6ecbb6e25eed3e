#pragma once
// EffectHandler performs one syscall kind. The pipeline calls Resolve() before the policy stage
// (to canonicalise the target the policy decides on), Egress() in the labels stage (the outgoing
// bytes the secret scan reads), MaxCost() in the budget stage, and Perform() only after an allow
// decision is in the log (INV-1, INV-4). Handlers hold no per-call state.
//
// Thread-safe: handlers are immutable; per-call data lives in SyscallContext.

#include <string>

#include "custos/budget/ledger.h"
#include "custos/core/result.h"
#include "custos/labels/label_set.h"
#include "kernel/context.h"
#include "kernel/services.h"

namespace custos::kernel {

// What an effect produced. If `content` is set, the kernel mints a handle for it with `labels`
// joined with the inputs' labels (INV-5).
struct EffectOutput {
  std::optional<std::string> content;
  std::string kind;            // handle kind: "file", "http", "tool", "model", ...
  labels::LabelSet labels;     // labels the source adds (e.g. untrusted, external)
  Json meta = Json::object();  // handle metadata (never secret bytes)
  Json frame;                  // what the caller sees directly (bounded by the kernel)
  budget::Amounts usage;       // actual use, settled against the reservation
  // Set when the output must not be shown in the frame (secret-labeled content).
  bool withhold_content = false;
  // Pre-minted handle (secret.open, human.approve declassification, agent.recv transfers).
  std::optional<store::HandleRecord> handle;
};

class EffectHandler {
 public:
  virtual ~EffectHandler() = default;

  // Fills ctx.target (and host/port/address/destination) from the call. Default: target as given.
  virtual Status Resolve(SyscallContext& ctx, Services& s) const;
  // Appends the bytes this call sends out of the kernel (for the secret scan). Default: none.
  virtual void Egress(const SyscallContext& ctx, Services& s, std::string* out) const;
  // True if the call carries raw caller data (labeled by declaration, untrusted by default).
  virtual bool CarriesRawData(const SyscallContext& ctx) const;
  // The most this call can use. Default: nothing.
  virtual budget::Amounts MaxCost(const SyscallContext& ctx, Services& s) const;

  // True if Perform() changes nothing — no I/O, no store write, no handle — so its decision
  // entry need not be durable before Perform() runs, only before the caller sees the result
  // (decision 036). Default: false. Only answer true for a handler that can never write.
  virtual bool ReadOnly(const SyscallContext& ctx) const;

  virtual Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const = 0;
};

// The handler for every kind; aborts if a kind has none (a test walks AllSyscalls()).
const EffectHandler& HandlerFor(SyscallKind kind);

}  // namespace custos::kernel
