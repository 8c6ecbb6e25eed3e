#pragma once
// Stage is one step of the decision pipeline (STYLE.md "Pipeline stage"). A stage reads and
// extends the SyscallContext and says what happens next; the pipeline (src/kernel/pipeline.cc)
// owns the order and the iteration, no stage calls the next.
//   kContinue        — go on to the next stage;
//   kDeny            — stop; the stage has set ctx.decision to a deny, which is recorded;
//   kNeedsApproval   — the stage has set ctx.decision to require_approval; the pipeline asks a
//                      human after the remaining stages pass.
//
// Thread-safe: stages are stateless (or hold shared const data).

#include <string_view>

namespace custos::kernel {

struct SyscallContext;
class Services;

enum class StageVerdict { kContinue, kDeny, kNeedsApproval };

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string_view name() const = 0;
  virtual StageVerdict Run(SyscallContext& ctx, Services& services) const = 0;
};

}  // namespace custos::kernel
