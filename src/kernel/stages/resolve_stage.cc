#include "kernel/effect_handler.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

StageVerdict ResolveStage::Run(SyscallContext& ctx, Services& s) const {
  Status st = HandlerFor(ctx.call.kind).Resolve(ctx, s);
  if (!st.ok()) {
    if (st.at().empty())
      st = st.WithAtPrefix("/target");
    ctx.decision = Decision::Deny(std::string(name()), st);
    return StageVerdict::kDeny;
  }
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
