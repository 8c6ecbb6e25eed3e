#pragma once
// CallStream is the EventSource of a streamed /v1/invoke or /v1/syscall (decision 028). Events,
// in this order:
//   decision — {"id","decision","receipt":{"decision_seq","decision_hash"}[, "approval_id"]} as
//              soon as the decision entry is in the log, before the effect starts;
//   progress — {"elapsed_ms","output_bytes"} every stream_progress_ms while the effect runs
//              (before the decision, e.g. waiting for an approval, a ": waiting" comment);
//   output   — {"offset","text","labels"}: redacted output as it comes (tool commands, only when
//              asked for; see kernel/execute_hooks.h for how secrets stay out of it);
//   result   — exactly the body the same request answers without streaming; or
//   error    — {"error":{"reason","message","at"}} if the stream timed out first.
// Nothing a client does to the stream (reading slowly, going away) reaches the kernel call: it
// runs to its recorded outcome either way.
//
// Thread-safe: one mutex orders every event, so Tick() on an I/O thread never slips a progress
// event before the decision or after the result.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "custos/core/json.h"
#include "custos/kernel/execute_hooks.h"
#include "custos/server/api.h"

namespace custos::server {

// One server-sent event: "event: NAME\ndata: JSON\n\n" (JSON dumps have no newline).
std::string SseEvent(std::string_view name, const Json& data);

class CallStream final : public EventSource {
 public:
  using Execute = std::function<kernel::SyscallResult(const kernel::ExecuteHooks&)>;
  using Shape = std::function<Json(const kernel::SyscallResult&)>;

  // `stream_output`: send output events (else progress only).
  CallStream(Execute execute, Shape shape, bool stream_output)
      : execute_(std::move(execute)), shape_(std::move(shape)), stream_output_(stream_output) {}

  void Run(EventSink& sink) override;
  void Tick(EventSink& sink) override;
  void Expire(EventSink& sink) override;

 private:
  Execute execute_;
  Shape shape_;
  bool stream_output_;
  std::mutex mu_;
  bool decided_ = false;   // GUARDED_BY(mu_)
  bool finished_ = false;  // GUARDED_BY(mu_): result or error sent; nothing after it
  std::string id_;         // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point effect_start_;  // GUARDED_BY(mu_)
  int64_t output_offset_ = 0;                           // GUARDED_BY(mu_)
  std::atomic<int64_t> output_bytes_{0};
};

}  // namespace custos::server
