#include "custos/caps/token_text.h"
#include "kernel/context.h"
#include "kernel/services.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {
namespace {

StageVerdict Deny(SyscallContext& ctx, std::string_view stage, Status st,
                  const std::string& rule = "", const std::string& suggestion = "") {
  ctx.decision = Decision::Deny(std::string(stage), std::move(st), rule, suggestion);
  return StageVerdict::kDeny;
}

}  // namespace

// Who is asking (the agent must exist), then the token (INV-2): present, well-formed, signed by
// this kernel's token root, no block revoked. What the token allows for this exact request is
// decided by TokenAuthorizeStage once the target is canonical; here the policy's own list of the
// agent's syscall kinds is checked too (token AND policy).
StageVerdict CapabilityStage::Run(SyscallContext& ctx, Services& s) const {
  Result<AgentState> agent = s.FindAgent(*ctx.policy, ctx.call.run, ctx.call.agent);
  if (!agent.ok()) {
    return Deny(ctx, name(), agent.status(), "",
                "[agents." + ctx.call.agent + "]\nsyscalls = [\"" +
                    std::string(SyscallName(ctx.call.kind)) + "\"]");
  }
  ctx.principal = agent->principal;
  ctx.syscalls = agent->syscalls;

  if (ctx.call.token.empty()) {
    return Deny(
        ctx, name(),
        Status(Reason::kTokenMissing,
               "the syscall carries no capability token; every syscall needs one", "/token"),
        "", "custos token mint --agent " + agent->principal);
  }
  Result<std::shared_ptr<const VerifiedToken>> token = s.tokens().Verify(ctx.call.token);
  if (!token.ok()) {
    Status st = token.status();
    return Deny(ctx, name(), Status(st.reason(), std::string(st.message()), "/token"));
  }
  Result<std::optional<std::string>> revoked = s.store().FirstRevoked((*token)->revocation_ids);
  if (!revoked.ok()) {
    return Deny(ctx, name(), revoked.status());  // fail closed: unknown revocation state
  }
  if (*revoked) {
    size_t block = 0;
    while (block < (*token)->revocation_ids.size() &&
           (*token)->revocation_ids[block] != **revoked) {
      ++block;
    }
    return Deny(ctx, name(),
                Status(Reason::kTokenRevoked,
                       "the token's block " + std::to_string(block) + " was revoked (id " +
                           (*revoked)->substr(0, 16) + "...)",
                       "/token"));
  }
  ctx.token = std::move(token).value();

  if (!ctx.syscalls.Contains(ctx.call.kind)) {
    std::string who = agent->parent.empty() ? "agent '" + agent->name + "'"
                                            : "child agent '" + agent->name + "' (spawned by '" +
                                                  agent->parent + "')";
    return Deny(ctx, name(),
                Status(Reason::kCapabilityMissing,
                       who + " holds no capability for " + std::string(SyscallName(ctx.call.kind))),
                agent->parent.empty() ? "agents." + agent->name + ".syscalls" : "spawn",
                agent->parent.empty() ? "[agents." + agent->name + "]\nsyscalls = [..., \"" +
                                            std::string(SyscallName(ctx.call.kind)) + "\"]"
                                      : "");
  }
  Result<budget::AccountKey> account = s.Account(*ctx.policy, *agent, ctx.call.run);
  if (!account.ok()) {
    return Deny(ctx, name(), account.status());
  }
  ctx.account = std::move(account).value();
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
