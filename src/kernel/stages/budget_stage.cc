#include "kernel/effect_handler.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {

StageVerdict BudgetStage::Run(SyscallContext& ctx, Services& s) const {
  Result<budget::AccountStatus> status = s.ledger().Get(ctx.account);
  if (!status.ok()) {
    ctx.decision = Decision::Deny(std::string(name()), status.status());
    return StageVerdict::kDeny;
  }
  const int64_t wall_left = s.WallRemainingMs(ctx.account, *status);
  if (wall_left <= 0) {
    ctx.decision = Decision::Deny(
        std::string(name()),
        Status(Reason::kBudgetExhausted,
               "wall_ms: this agent's wall clock in the run has run out (" +
                   std::to_string(s.AccountAgeMs(ctx.account)) + " ms since its first call, " +
                   std::to_string(-wall_left) + " ms past its end)"),
        "budget.wall_ms");
    return StageVerdict::kDeny;
  }
  ctx.reserve = HandlerFor(ctx.call.kind).MaxCost(ctx, s);
  if (ctx.reserve.IsZero())
    return StageVerdict::kContinue;
  Result<budget::ReservationId> id = s.ledger().Reserve(ctx.account, ctx.reserve);
  if (!id.ok()) {
    ctx.decision =
        Decision::Deny(std::string(name()), id.status(), "budget",
                       "[agents." + ctx.principal + ".budget]  # raise the limit named above");
    return StageVerdict::kDeny;
  }
  ctx.reservation = *id;
  return StageVerdict::kContinue;
}

}  // namespace custos::kernel
