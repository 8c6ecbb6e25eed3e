#pragma once
// ExecuteHooks let a caller watch one Kernel::Execute() while it runs (custosd streams a
// long-running tool.invoke as server-sent events, decision 028). Every hook is optional (null =
// not called) and is called on the thread running Execute(); hooks must not block and must not
// call back into the kernel. They observe only: nothing a hook does changes the decision, the
// effect, what is recorded or what Execute() returns, so a caller that goes away mid-call (a
// disconnected client) loses nothing — the outcome is still recorded and the budget settled.
//
// INV-6: on_output receives output the kernel has already redacted. The stream redactor
// (src/kernel/stream_redactor.h) emits complete lines as they end when no secret value contains a
// line feed, and otherwise holds back a tail longer than any spelling of any secret; it never
// cuts inside an occurrence, so a secret split across the pieces the program wrote is redacted
// exactly as in the final frame. Output is offered only for tool commands whose result labels are
// not secret, and at most max_frame_bytes of it (the final frame's bound); if the effect fails,
// what is still held back is dropped.
//
// Thread-compatible: a hooks object belongs to one call.

#include <cstdint>
#include <functional>
#include <string_view>

#include "custos/kernel/syscall.h"
#include "custos/labels/label_set.h"

namespace custos::kernel {

struct ExecuteHooks {
  // After the (final) decision entry is in the log and before any effect starts: the result so
  // far — id, decision, receipt.decision_seq/decision_hash, approval_id. Called exactly once for
  // every call Execute() records, allowed or denied. A read-only syscall's decision is durable
  // only together with its outcome (decision 036), so for it the hook runs after the effect.
  std::function<void(const SyscallResult& so_far)> on_decision;
  // While the effect runs: how many bytes of output the effect has produced so far (tool
  // commands; other effects do not report).
  std::function<void(int64_t output_bytes)> on_output_bytes;
  // While the effect runs: the next piece of redacted output text, with the labels the output
  // will carry (INV-5). Tool commands only; see above.
  std::function<void(std::string_view text, const labels::LabelSet& labels)> on_output;
};

}  // namespace custos::kernel
