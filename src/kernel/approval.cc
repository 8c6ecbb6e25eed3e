#include "kernel/approval.h"

#include <chrono>
#include <thread>

namespace custos::kernel {

Status AwaitApproval(const std::string& id, Services& s, std::string* answered_by) {
  const auto poll = std::chrono::milliseconds(std::max<int64_t>(1, s.options().approval_poll_ms));
  while (true) {
    CUSTOS_ASSIGN_OR_RETURN(store::Approval a, s.store().GetApproval(id));
    if (a.state == "approved") {
      *answered_by = a.answered_by;
      return Status::Ok();
    }
    if (a.state == "denied") {
      *answered_by = a.answered_by;
      const bool by_timeout = a.answered_by == "timeout";
      return Status(by_timeout ? Reason::kApprovalTimeout : Reason::kApprovalDenied,
                    by_timeout ? "nobody answered approval " + id + " before its deadline"
                               : "approval " + id + " was denied by " + a.answered_by +
                                     (a.note.empty() ? "" : ": " + a.note));
    }
    if (s.clock().NowMillis() >= a.deadline_ms) {
      // Expire it; if a person answered in the same instant, their answer wins on the next read.
      Status st =
          s.store().AnswerApproval(id, false, "timeout", "deadline passed", s.clock().NowMillis());
      if (!st.ok() && st.reason() != Reason::kAlreadyExists)
        return st;
      continue;
    }
    std::this_thread::sleep_for(poll);
  }
}

Decision WaitForApproval(const SyscallContext& ctx, Services& s) {
  std::string by;
  Status st = AwaitApproval(ctx.approval_id, s, &by);
  if (!st.ok())
    return Decision::Deny("approval", st, ctx.decision.rule);
  Decision d = Decision::Allow("approval", ctx.decision.rule);
  d.explanation = "approved by " + by;
  return d;
}

}  // namespace custos::kernel
