#include "kernel/context.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

policy::Request MakePolicyRequest(const SyscallContext& ctx) {
  policy::Request r;
  r.agent = ctx.principal;
  r.kind = ctx.call.kind;
  r.target = ctx.target;
  r.host = ctx.host;
  r.port = ctx.port;
  r.address = ctx.address;
  r.destination = ctx.destination;
  r.labels = &ctx.input_labels;
  return r;
}

StageVerdict PolicyStage::Run(SyscallContext& ctx, Services&) const {
  ctx.decision = ctx.policy->Decide(MakePolicyRequest(ctx));
  ctx.decision.stage = std::string(name());
  switch (ctx.decision.verdict) {
    case Verdict::kAllow:
      return StageVerdict::kContinue;
    case Verdict::kRequireApproval:
      return StageVerdict::kNeedsApproval;
    case Verdict::kDeny:
      return StageVerdict::kDeny;
  }
  return StageVerdict::kDeny;
}

}  // namespace custos::kernel
