#pragma once
// Pipeline runs one syscall end to end. The order of the stages is written once, here and in
// pipeline.cc; record runs for refusals too.
//
// Thread-safe: immutable; per-call state lives in SyscallContext.

#include <memory>
#include <vector>

#include "custos/kernel/execute_hooks.h"
#include "custos/kernel/stage.h"
#include "custos/kernel/syscall.h"
#include "kernel/services.h"

namespace custos::kernel {

class Pipeline {
 public:
  Pipeline();
  ~Pipeline();

  // `hooks` (optional) observe the call (execute_hooks.h).
  SyscallResult Execute(const Syscall& call, Services& s,
                        const ExecuteHooks* hooks = nullptr) const;
  // The decision alone: no record, no effect, reservations released.
  Decision Explain(const Syscall& call, Services& s) const;
  // Records a syscall that failed to parse (so malformed input leaves a trace) and returns the
  // deny. `kind_name` is the raw kind if the request had one; `stage` names who refused it
  // ("schema" for the parser, "identity" when custosd refused a caller acting for another agent).
  SyscallResult RecordParseFailure(const Status& st, const Json* raw, const std::string& kind_name,
                                   Services& s, const std::string& stage = "schema") const;

  // Runs the stages and settles the verdict (allow unless a stage said otherwise, observe mode,
  // redaction): no record, no effect; a reservation the budget stage made is left in
  // ctx.reservation for the caller to settle or cancel. Used by Execute, Explain and the
  // Replayer (kernel/replay.h), which runs it against a record-backed Services.
  void Decide(SyscallContext& ctx, Services& s) const;

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
};

}  // namespace custos::kernel
