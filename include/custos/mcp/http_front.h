#pragma once
// HttpFront is the gateway's Streamable HTTP front (the MCP transport of revisions 2025-03-26,
// 2025-06-18 and 2025-11-25): one MCP endpoint (`path`, default "/mcp") on which
//   * POST carries one JSON-RPC message (or a batch, 2025-03-26 only). Notifications and responses
//     are answered 202 with no body; requests are answered with `application/json` when the
//     gateway has nothing else to say during the call, or with a `text/event-stream` that carries
//     the gateway's requests/notifications for that call (progress, sampling, elicitation, roots)
//     and ends with the response(s);
//   * GET opens the session's server→client event stream (one per session; a second is 409):
//     list_changed and resources/updated notifications, and client requests made while no POST is
//     open. Before any GET stream was opened they are dropped (counted in the session); once one
//     was, they are kept for its resume while its client is away;
//   * GET with Last-Event-ID resumes a stream whose connection was lost (a POST's or the GET
//     stream): every event carries `id: <stream>-<seq>` (the stream part is 128 random bits, so
//     ids are not guessable across streams or sessions), the events after that id on that stream
//     are replayed and the stream goes on there. A session keeps `replay_bytes` of sent events
//     (oldest dropped first) for its last 32 streams; an unknown id, or one whose following events
//     were dropped, is 409 mcp_resume_unavailable with nothing replayed (never a silent gap); an
//     ended stream whose every event the client has is 204.
//     Streams of 2025-11-25 sessions start with a priming event (an id, empty data);
//   * DELETE ends the session: its gateway shuts down and its servers stop.
// Sessions: initialize (alone in its POST, without Mcp-Session-Id) opens one and the response
// carries `Mcp-Session-Id`; every later request must carry it (400 mcp_session_required without,
// 404 mcp_session_not_found for an unknown or ended one). Each session is its own Gateway: its own
// run, capability token, taint and server processes, as one `custos mcp stdio` process would be.
// Stateless requests (2026-07-28, decision 038): a POST without Mcp-Session-Id whose one request
// carries the `_meta` envelope (or whose MCP-Protocol-Version is 2026-07-28) needs no session.
// Its MCP-Protocol-Version / Mcp-Method / Mcp-Name headers must agree with the body, and a
// tools/call's Mcp-Param-* headers with the arguments the pinned schema marks x-mcp-header (else
// 400 mcp_header_mismatch, -32020). It runs in its principal's context — one Gateway per token
// subject (one in all without [http.auth]), so taint spans the principal's requests — under an
// id the front assigns (clients may reuse theirs), and is answered as an event stream at once
// (server/discover: JSON); the client closing that stream cancels the request.
// Headers: `MCP-Protocol-Version`, when present, must be a supported revision and the one the
// session negotiated (400 mcp_version_unsupported; absent means 2025-03-26, as the spec says);
// POST needs `Accept` listing application/json and text/event-stream, GET text/event-stream (406
// mcp_not_acceptable) and POST `Content-Type: application/json` (415). A request whose `Origin`
// is not in [http] allowed_origins is 403 mcp_origin_refused (DNS rebinding); a request without
// Origin is not from a browser and is allowed. Transport errors have a JSON-RPC error body with
// `data.reason`.
//
// OAuth 2.1 resource server ([http.auth], decision 023): every request needs
// `Authorization: Bearer <JWT>` that AccessTokenVerifier accepts (else 401 mcp_token_invalid with
// `WWW-Authenticate: Bearer
// resource_metadata="<origin>/.well-known/oauth-protected-resource<path>"` and, for a bad token,
// error="invalid_token"); the metadata (RFC 9728) is served at that path; a session is bound to its
// initialize token's `sub` (another subject: 403 mcp_session_forbidden). Tokens are never passed to
// servers. With [http.auth.subjects] (decision 033) a session acts as the policy agent its
// subject maps to (else the "*" entry; else initialize is 403 mcp_subject_unmapped); without it,
// as [gateway] agent.
//
// The front owns no sockets: a transport (custosd's Beast server through a mount, see
// `custos mcp serve`) hands it requests and an HttpExchange to answer through. Binding is the
// transport's business (loopback only).
//
// Thread-safe: Handle() from many worker threads at once; it may block while a session starts
// its servers (initialize), never while a call runs.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "custos/core/result.h"
#include "custos/kernel/kernel.h"
#include "custos/mcp/config.h"

namespace custos::mcp {

struct HttpRequest {
  std::string method;
  std::string target;                                        // path and query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  // The first header called `name` (lower-case), "" if absent.
  std::string_view Header(std::string_view name) const;
};

struct HttpAnswer {  // a whole response, or the head of a stream
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// How the front answers one request: Respond() once, or Begin() (a text/event-stream head), any
// number of Write()s and End(). Implementations queue and never block. Thread-safe.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void Respond(HttpAnswer answer) = 0;
  virtual void Begin(HttpAnswer head) = 0;
  virtual void Write(std::string chunk) = 0;
  virtual void End() = 0;
  virtual bool closed() const = 0;
  // Runs once when the client goes away after Begin().
  virtual void OnClose(std::function<void()> fn) = 0;
};

struct HttpFrontOptions {
  GatewayConfig config;
  kernel::Kernel* kernel = nullptr;  // REQUIRES: outlives the front
  std::string path = "/mcp";
  int64_t heartbeat_ms = 15'000;  // a comment on open GET streams; also reaps idle sessions
  // Resumption: the bytes of sent events one session keeps for GET + Last-Event-ID.
  size_t replay_bytes = 1 << 20;
};

class HttpFront {
 public:
  static Result<std::unique_ptr<HttpFront>> Create(HttpFrontOptions options);
  ~HttpFront();  // Shutdown()

  void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange);
  // Ends every session (their gateways shut down) and releases every exchange. Idempotent.
  void Shutdown();
  size_t session_count() const;
  // The paths to mount: the endpoint, and with [http.auth] the RFC 9728 metadata path.
  std::vector<std::string> paths() const;

  struct Impl;

 private:
  explicit HttpFront(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One server-sent event carrying `json` (a JSON-RPC message on one line).
std::string SseEvent(std::string_view json);

}  // namespace custos::mcp
