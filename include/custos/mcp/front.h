#pragma once
// Fronts of the gateway: how a client's bytes reach Gateway::HandleLine().
//
// RunStdioFront() reads newline-delimited JSON-RPC from `in_fd` until end of file, handing each
// line to the gateway; a line over `max_line_bytes` is answered with a JSON-RPC parse error and
// skipped (the stream resynchronises at the next newline). Returns when the input ends.
//
// InProcessClient drives a gateway from code (the demo, the scorecard, tests): Request() sends
// one request and waits for the response with the same id; notifications the gateway sends are
// kept and can be taken with TakeNotifications().
//
// RunStdioFront: confined to the calling thread. InProcessClient: thread-safe.

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/mcp/gateway.h"
#include "custos/mcp/jsonrpc.h"

namespace custos::mcp {

Status RunStdioFront(Gateway& gateway, int in_fd, size_t max_line_bytes = kDefaultMaxMessageBytes);

class InProcessClient {
 public:
  InProcessClient() = default;
  // The sink to put in GatewayOptions::send. REQUIRES: *this outlives the gateway's use of it.
  std::function<void(const std::string&)> Sink();
  void Attach(Gateway* gateway) { gateway_ = gateway; }

  // Sends a request and waits up to `timeout_ms` for its response message.
  Result<Message> Request(const std::string& method, const Json& params,
                          int64_t timeout_ms = 20'000);
  void Notify(const std::string& method, const Json& params);
  // Sends a raw line and returns the next message without an id match (for malformed input).
  std::vector<Message> TakeNotifications();
  // Sends `line` verbatim (for tests of malformed input); responses are collected by id.
  void SendRaw(const std::string& line);
  // Waits for a response with `id` (JSON-encoded id) after SendRaw.
  Result<Message> WaitFor(const Json& id, int64_t timeout_ms = 20'000);
  // The array lines received (a 2025-03-26 batch's responses, also filed by id).
  std::vector<std::string> TakeBatchLines();

 private:
  void OnLine(const std::string& line);
  Gateway* gateway_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Message> responses_;  // by id.dump()
  std::vector<Message> notifications_;
  std::vector<std::string> batch_lines_;
  int64_t next_id_ = 1;
};

}  // namespace custos::mcp
