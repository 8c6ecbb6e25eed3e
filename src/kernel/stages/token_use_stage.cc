#include "kernel/context.h"
#include "kernel/services.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

// Each caveat block's count lives in the store under that block's revocation id, so every token
// containing the block shares it (attenuating a single-use token does not reset it). Explain
// checks without counting.
StageVerdict TokenUseStage::Run(SyscallContext& ctx, Services& s) const {
  if (ctx.token == nullptr) {
    ctx.decision = Decision::Deny(std::string(name()),
                                  Status(Reason::kInternal, "no verified token in the context"));
    return StageVerdict::kDeny;
  }
  for (const TokenCaveat& c : ctx.token->caveats) {
    Status st = s.store().CountTokenUse(c.id, c.limits, ctx.now_ms, ctx.explain);
    if (!st.ok()) {
      ctx.decision = Decision::Deny(std::string(name()),
                                    Status(st.reason(), "block " + std::to_string(c.block) + ": " +
                                                            std::string(st.message())),
                                    "token");
      return StageVerdict::kDeny;
    }
  }
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
