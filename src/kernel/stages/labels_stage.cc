#include "kernel/effect_handler.h"
#include "kernel/environment.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

policy::Request MakePolicyRequest(const SyscallContext& ctx);

StageVerdict LabelsStage::Run(SyscallContext& ctx, Services& s) const {
  // Egress first: a secret's bytes leaving the kernel are blocked whatever the labels say.
  std::string egress;
  HandlerFor(ctx.call.kind).Egress(ctx, s, &egress);
  if (!egress.empty()) {
    if (std::optional<std::string> hit = s.env().FindSecret(ctx, *s.vault(), egress)) {
      ctx.decision = Decision::Deny(
          std::string(name()),
          Status(Reason::kSecretInEgress, "outgoing data contains the value of secret '" + *hit +
                                              "'; pass the secret as a handle to an allowed "
                                              "destination instead"),
          "egress.secret_scan");
      return StageVerdict::kDeny;
    }
  }
  policy::FlowResult flow = ctx.policy->FlowDecide(MakePolicyRequest(ctx));
  if (flow.verdict == Verdict::kAllow)
    return StageVerdict::kContinue;
  if (flow.verdict == Verdict::kRequireApproval) {
    // A flow needing approval turns an allow into require_approval; it never lowers a deny.
    ctx.decision.verdict = Verdict::kRequireApproval;
    ctx.decision.stage = std::string(name());
    ctx.decision.rule = flow.rule;
    ctx.decision.reason = Reason::kApprovalRequired;
    ctx.decision.explanation = flow.explanation;
    return StageVerdict::kNeedsApproval;
  }
  ctx.decision = Decision::Deny(std::string(name()),
                                Status(Reason::kFlowViolation, flow.explanation), flow.rule,
                                "# flows are deliberate; to allow one value through, have a person "
                                "declassify it with human.approve");
  return StageVerdict::kDeny;
}

}  // namespace custos::kernel
