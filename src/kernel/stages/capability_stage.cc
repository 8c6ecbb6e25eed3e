#include "kernel/context.h"
#include "kernel/services.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

StageVerdict CapabilityStage::Run(SyscallContext& ctx, Services& s) const {
  Result<AgentState> agent = s.FindAgent(*ctx.policy, ctx.call.run, ctx.call.agent);
  if (!agent.ok()) {
    ctx.decision = Decision::Deny(std::string(name()), agent.status(), "",
                                  "[agents." + ctx.call.agent + "]\nsyscalls = [\"" +
                                      std::string(SyscallName(ctx.call.kind)) + "\"]");
    return StageVerdict::kDeny;
  }
  ctx.principal = agent->principal;
  ctx.syscalls = agent->syscalls;
  if (!ctx.syscalls.Contains(ctx.call.kind)) {
    std::string who = agent->parent.empty() ? "agent '" + agent->name + "'"
                                            : "child agent '" + agent->name + "' (spawned by '" +
                                                  agent->parent + "')";
    ctx.decision = Decision::Deny(
        std::string(name()),
        Status(Reason::kCapabilityMissing,
               who + " holds no capability for " + std::string(SyscallName(ctx.call.kind))),
        agent->parent.empty() ? "agents." + agent->name + ".syscalls" : "spawn",
        agent->parent.empty() ? "[agents." + agent->name + "]\nsyscalls = [..., \"" +
                                    std::string(SyscallName(ctx.call.kind)) + "\"]"
                              : "");
    return StageVerdict::kDeny;
  }
  Result<budget::AccountKey> account = s.Account(*ctx.policy, *agent, ctx.call.run);
  if (!account.ok()) {
    ctx.decision = Decision::Deny(std::string(name()), account.status());
    return StageVerdict::kDeny;
  }
  ctx.account = std::move(account).value();
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
