#pragma once
// Downstream is one MCP server the gateway talks to, whatever its transport: StdioServer (a child
// process) or HttpServer (Streamable HTTP). Both make the same promises: Call() fails and never
// hangs (timeout_ms), a server error is an answer and not a failure, caps on message size, and
// callbacks for the server's notifications and requests (run on a transport thread; they must not
// block on this server). MakeDownstream() picks the transport from the config (`url` or
// `command`).
//
// Thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/mcp/config.h"
#include "custos/mcp/jsonrpc.h"

namespace custos::mcp {

class Downstream {
 public:
  // `call` is the id of the gateway's request whose answer carried the message (a Streamable
  // HTTP POST's event stream), or 0 when nothing says which call it belongs to (stdio, the GET
  // stream, a listen stream).
  struct Callbacks {
    std::function<void(const Message&, int64_t call)> on_notification;
    std::function<void(const Message&, int64_t call)> on_request;  // server → client request
    // Also "mcp.server.started" after every (re)start's handshake, and
    // "mcp.server.listen_ended" when the server's listen stream ends other than by
    // StopListening(), Listen() or Stop() (the server closed it, exited, or the connection
    // dropped).
    std::function<void(const std::string& event, const Json& details)> on_event;
  };

  virtual ~Downstream() = default;
  // Connects (starts, initializes) if needed. OK if ready.
  virtual Status Start() = 0;
  // A request and the server's answer (kResponse or kError). `on_sent` gets the request's id.
  virtual Result<Message> Call(const std::string& method, const Json& params,
                               const std::function<void(int64_t)>& on_sent = nullptr) = 0;
  // Ends a pending Call() now (kMcpCancelled) and tells the server (notifications/cancelled).
  virtual void Cancel(int64_t id, const std::string& reason) = 0;
  virtual Status Notify(const std::string& method, const Json& params) = 0;
  // Answers a server → client request.
  virtual Status Respond(const Message& response) = 0;
  virtual void Stop() = 0;
  // The server's subscriptions/listen stream (2026-07-28 servers only): sends the request with
  // `params` (the envelope added) and returns the server's first answer, its
  // notifications/subscriptions/acknowledged as a kResponse whose result is the
  // acknowledgement's params, or its error. The stream then stays open: the change
  // notifications on it go to on_notification without the subscriptionId stamp. One stream per
  // server: a Listen() ends the previous one. A 2025 server gets no request (-32601).
  virtual Result<Message> Listen(const Json& params) = 0;
  // Ends the listen stream, if one is open (notifications/cancelled, or the POST aborted).
  virtual void StopListening() = 0;
  // The client capabilities declared to a stateless (2026-07-28) server in every later request's
  // envelope ({} until set): the gateway sets the config's client_capabilities that its client
  // declared too, so a server asks (input_required) only for input the gateway can obtain. A 2025
  // server is told config.client_capabilities at initialize instead.
  virtual void OfferClientCapabilities(const Json& capabilities) = 0;

  virtual const ServerConfig& config() const = 0;
  virtual std::string protocol_version() const = 0;
  // Whether the server speaks the stateless 2026-07-28 era (no initialize; an envelope per
  // request).
  virtual bool stateless() const = 0;
  virtual Json capabilities() const = 0;
  virtual Json server_info() const = 0;
};

std::unique_ptr<Downstream> MakeDownstream(ServerConfig config, Downstream::Callbacks callbacks);

}  // namespace custos::mcp
