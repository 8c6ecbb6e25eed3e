#include "custos/mcp/front.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace custos::mcp {

Status RunStdioFront(Gateway& gateway, int in_fd, size_t max_line_bytes) {
  std::string buf;
  bool skipping = false;  // inside an oversize line: drop bytes until its newline
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(in_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Status(Reason::kIoError, "cannot read the client's input");
    if (n == 0)
      break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (skipping) {
        skipping = false;
        continue;
      }
      gateway.HandleLine(std::string_view(buf.data() + start, nl - start));
    }
    buf.erase(0, start);
    if (buf.size() > max_line_bytes) {
      if (!skipping) {
        gateway.SendError(nullptr, kInvalidRequest,
                          "message over " + std::to_string(max_line_bytes) + " bytes");
      }
      skipping = true;
      buf.clear();
    }
  }
  if (!buf.empty() && !skipping)
    gateway.HandleLine(buf);
  return Status::Ok();
}

std::function<void(const std::string&)> InProcessClient::Sink() {
  return [this](const std::string& line) { OnLine(line); };
}

void InProcessClient::OnLine(const std::string& line) {
  if (!line.empty() && line.front() == '[') {  // a 2025-03-26 batch's responses
    Result<Batch> batch = ParseBatch(line);
    if (!batch.ok())
      return;
    {
      std::lock_guard lock(mu_);
      batch_lines_.push_back(line);
    }
    for (const Message& m : batch->messages)
      OnLine(m.Serialize());
    return;
  }
  Result<Message> m = ParseMessage(line);
  if (!m.ok())
    return;
  std::lock_guard lock(mu_);
  if (m->is_response()) {
    const std::string key = m->id.dump();  // before the move below
    responses_[key] = std::move(m).value();
  } else {
    notifications_.push_back(std::move(m).value());
  }
  cv_.notify_all();
}

Result<Message> InProcessClient::Request(const std::string& method, const Json& params,
                                         int64_t timeout_ms) {
  int64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
  }
  gateway_->HandleLine(Message::Request(id, method, params).Serialize());
  return WaitFor(id, timeout_ms);
}

void InProcessClient::Notify(const std::string& method, const Json& params) {
  gateway_->HandleLine(Message::Notification(method, params).Serialize());
}

void InProcessClient::SendRaw(const std::string& line) { gateway_->HandleLine(line); }

Result<Message> InProcessClient::WaitFor(const Json& id, int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  const std::string key = id.dump();
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return responses_.count(key) != 0; })) {
    return Status(Reason::kEffectTimeout, "no response from the gateway");
  }
  Message m = std::move(responses_[key]);
  responses_.erase(key);
  return m;
}

std::vector<std::string> InProcessClient::TakeBatchLines() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.swap(batch_lines_);
  return out;
}

std::vector<Message> InProcessClient::TakeNotifications() {
  std::lock_guard lock(mu_);
  std::vector<Message> out;
  out.swap(notifications_);
  return out;
}

}  // namespace custos::mcp
