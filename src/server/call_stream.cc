#include "server/call_stream.h"

namespace custos::server {

std::string SseEvent(std::string_view name, const Json& data) {
  std::string out = "event: ";
  out += name;
  out += "\ndata: ";
  out += data.dump();
  out += "\n\n";
  return out;
}

void CallStream::Run(EventSink& sink) {
  kernel::ExecuteHooks hooks;
  hooks.on_decision = [this, &sink](const kernel::SyscallResult& so_far) {
    std::lock_guard<std::mutex> l(mu_);
    decided_ = true;
    id_ = so_far.id;
    effect_start_ = std::chrono::steady_clock::now();
    if (!finished_)
      sink.Write(SseEvent("decision", so_far.ToJson()));
  };
  hooks.on_output_bytes = [this](int64_t n) { output_bytes_.store(n); };
  if (stream_output_) {
    hooks.on_output = [this, &sink](std::string_view text, const labels::LabelSet& labels) {
      std::lock_guard<std::mutex> l(mu_);
      if (finished_)
        return;
      sink.Write(SseEvent("output", Json{{"offset", output_offset_},
                                         {"text", std::string(text)},
                                         {"labels", labels.ToJson()}}));
      output_offset_ += static_cast<int64_t>(text.size());
    };
  }
  const kernel::SyscallResult r = execute_(hooks);
  const Json body = shape_(r);
  std::lock_guard<std::mutex> l(mu_);
  if (finished_)
    return;
  if (!decided_) {
    // Refused before the pipeline (a schema failure): recorded all the same.
    const Json j = r.ToJson();
    sink.Write(SseEvent(
        "decision", Json{{"id", r.id}, {"decision", j["decision"]}, {"receipt", j["receipt"]}}));
  }
  sink.Write(SseEvent("result", body));
  finished_ = true;
}

void CallStream::Tick(EventSink& sink) {
  std::lock_guard<std::mutex> l(mu_);
  if (finished_)
    return;
  if (!decided_) {
    sink.Write(": waiting\n\n");  // keeps proxies and clients from timing out
    return;
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - effect_start_)
                           .count();
  sink.Write(
      SseEvent("progress",
               Json{{"id", id_}, {"elapsed_ms", elapsed}, {"output_bytes", output_bytes_.load()}}));
}

void CallStream::Expire(EventSink& sink) {
  std::lock_guard<std::mutex> l(mu_);
  if (finished_)
    return;
  finished_ = true;
  std::string message = "the stream timed out; the call goes on and its outcome is recorded";
  if (!id_.empty())
    message += ": POST /v1/explain {\"id\":\"" + id_ + "\"} shows it";
  sink.Write(SseEvent(
      "error",
      Json{{"error",
            {{"reason", ReasonName(Reason::kRequestTimeout)}, {"message", message}, {"at", ""}}}}));
}

}  // namespace custos::server
