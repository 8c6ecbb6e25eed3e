#pragma once
// The decision stages, in pipeline order. Each is defined in its own file in this folder.

#include "custos/kernel/stage.h"

namespace custos::kernel {

// Who is asking, and may this agent make this kind of syscall at all (INV-2).
class CapabilityStage final : public Stage {
 public:
  std::string_view name() const override { return "capability"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// Canonicalises the target (paths, URLs + DNS, names) so policy decides on what will be used.
class ResolveStage final : public Stage {
 public:
  std::string_view name() const override { return "resolve"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// Loads input handles (owner, run, expiry) and joins their labels with the raw data's.
class InputsStage final : public Stage {
 public:
  std::string_view name() const override { return "inputs"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// Authorizes the verified token for this exact request (canonical resource, input labels) with
// the kernel as the Biscuit authorizer (INV-2). Reports as stage "capability".
class TokenAuthorizeStage final : public Stage {
 public:
  std::string_view name() const override { return "capability"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// The compiled policy: deny lists, rules, domain sections, approvals.
class PolicyStage final : public Stage {
 public:
  std::string_view name() const override { return "policy"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// Information flow: flow rules over the joined input labels, and the egress secret scan.
class LabelsStage final : public Stage {
 public:
  std::string_view name() const override { return "labels"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// Reserves the most the call can use, and checks the run's wall clock (INV-3).
class BudgetStage final : public Stage {
 public:
  std::string_view name() const override { return "budget"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

// Counts one use against the token's max_uses / rate caveats, last, so a call another stage
// refuses does not use up a token. Reports as stage "capability".
class TokenUseStage final : public Stage {
 public:
  std::string_view name() const override { return "capability"; }
  StageVerdict Run(SyscallContext& ctx, Services& s) const override;
};

}  // namespace custos::kernel
