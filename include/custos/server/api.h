#pragma once
// Api is custosd's HTTP/JSON surface, version 1 (decision 016), independent of the transport:
// it takes a parsed request plus what the transport knows about the caller and returns a
// response. The transport (server.h) owns sockets, limits and timeouts; Api owns routing,
// content types, authentication, the identity rule and the handlers.
//
// Order of checks for every request (each failure is {"error":{"reason","message","at"}} with the
// reason's HTTP status): route (404 route_not_found / 405 method_not_allowed with Allow) →
// authentication (401 unauthenticated, or for a signed request signature_invalid /
// signature_stale / nonce_replayed / unknown_agent_key; /healthz and /readyz are open) → admin
// (403 admin_required) → content type of a body (415 unsupported_media_type) → JSON (400
// malformed_json with `at`) → identity: a syscall's `agent` must be the caller (403
// identity_mismatch, recorded in the flight log as a deny at stage "identity"); a missing agent
// is the caller.
//
// A syscall that reaches the kernel answers 200 with SyscallResult::ToJson(), whatever the
// verdict: a deny is a result, not a transport error. A syscall without a capability token gets
// the caller's own grant attached (kernel::TokenWallet); admins mint narrower tokens with
// POST /v1/grant and revoke with POST /v1/revoke.
//
// Thread-safe: Handle() runs on many worker threads at once; the kernel is thread-safe and the
// authenticator is swapped whole under a mutex on reload.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "custos/core/result.h"
#include "custos/kernel/kernel.h"
#include "custos/kernel/token_wallet.h"
#include "custos/server/auth.h"
#include "custos/server/auth_failures.h"
#include "custos/server/metrics.h"

namespace custos::server {

// One registered route; the OpenAPI test checks docs/api/openapi.yaml against this table.
struct RouteInfo {
  std::string_view method;   // "GET" | "POST"
  std::string_view pattern;  // "/v1/approvals/{id}": a {name} matches one path segment
  bool authenticated;
  bool admin;
};

std::span<const RouteInfo> Routes();

struct HttpRequest {
  std::string method;
  std::string accept;  // the Accept header, "" if absent ("text/event-stream": stream the call)
  std::string target;  // path and query, as sent
  std::string content_type;
  std::string authorization;     // the Authorization header, "" if absent
  SignedHeaders signed_headers;  // Custos-Agent/-Timestamp/-Nonce/-Signature (decision 022)
  std::string body;
  std::optional<PeerCred> peer;  // set on the Unix socket
  std::string transport;         // "tcp" | "tls" | "unix" (for the auth-failure summary)
};

// Where a streamed response writes server-sent events. Thread-safe: Write() queues the bytes on
// the connection and never blocks; writes after the client went away are dropped.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Write(std::string events) = 0;  // one or more complete SSE events
  virtual bool closed() const = 0;             // the client went away
};

// The body of a streamed call (decision 028): the transport writes the head, runs Run() on a
// worker and calls Tick() every stream_progress_ms while it runs; if stream_timeout_ms passes
// first it calls Expire() and ends the response (Run() still finishes and is recorded). The
// connection closes after the last event.
// Thread-safe: Tick() and Expire() run on an I/O thread while Run() runs on a worker.
class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual void Run(EventSink& sink) = 0;
  virtual void Tick(EventSink& sink) = 0;
  virtual void Expire(EventSink& sink) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string route = "unmatched";  // the matched pattern, for metrics
  // Set by GET /v1/audit/tail: after the response head the transport streams server-sent events
  // from TailEvents() until the client goes away or the server drains.
  bool stream_tail = false;
  int64_t tail_from_seq = 0;
  std::string tail_agent;  // "" = every agent (admins only)
  // Set by a streamed /v1/invoke or /v1/syscall: nothing has run yet; the transport sends the
  // head (status, content type) and then the events `events` produces.
  std::shared_ptr<EventSource> events;
};

// The error body for `s` ({"error":{"reason","message","at"}}) with the reason's HTTP status.
HttpResponse ErrorResponse(const Status& s);

struct ApiOptions {
  std::filesystem::path data_dir;
  std::filesystem::path policy_file;  // what POST /v1/admin/reload and SIGHUP re-read
  ServerConfig config;
};

class Api {
 public:
  // REQUIRES: `kernel` and `metrics` outlive the Api.
  Api(kernel::Kernel* kernel, Metrics* metrics, ApiOptions options,
      std::shared_ptr<const Authenticator> auth);
  ~Api() { auth_failures_.Flush(); }  // a pending summary is written, never dropped

  // Routes, authenticates and runs one request. May block on the kernel (group commit, an
  // approval): call it from a worker thread, never from an I/O thread.
  HttpResponse Handle(const HttpRequest& req);

  // Re-reads the policy file and the API keys; the new policy is validated before it replaces the
  // old one, so a bad file leaves the old policy serving. The kernel records the change with both
  // policy hashes. Returns {"policy_hash","old_policy_hash","policy"} or the load error.
  Result<Json> Reload();

  // Server-sent events for entries with seq >= *from_seq (of `agent`, or all if ""), at most
  // `max` of them; advances *from_seq. "" if there is nothing new.
  std::string TailEvents(int64_t* from_seq, const std::string& agent, int max);

  // Refused authentication, coalesced into one flight-log entry per interval (decision 029).
  // The daemon calls FlushAuthFailuresIfDue() periodically and FlushAuthFailures() at shutdown;
  // mounts that authenticate through the daemon report their refusals with NoteAuthFailure().
  void NoteAuthFailure(Reason reason, std::string_view transport, std::string_view claimed) {
    auth_failures_.Note(reason, transport, claimed);
  }
  void FlushAuthFailuresIfDue() { auth_failures_.FlushIfDue(); }
  void FlushAuthFailures() { auth_failures_.Flush(); }

  // Readiness: the store answers and the server is not draining.
  void SetDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

 private:
  HttpResponse Dispatch(const RouteInfo& route, const std::vector<std::string>& params,
                        std::string_view query, const HttpRequest& req, const Identity& who);
  HttpResponse Syscall(const HttpRequest& req, const Identity& who);
  HttpResponse Explain(const HttpRequest& req, const Identity& who);
  HttpResponse Grant(const HttpRequest& req, const Identity& who);
  HttpResponse Revoke(const HttpRequest& req, const Identity& who);
  HttpResponse Invoke(const HttpRequest& req, const Identity& who);
  HttpResponse Expand(const HttpRequest& req, const Identity& who);
  HttpResponse Budgets(std::string_view query, const Identity& who);
  // Applies the identity rule to `call`, then executes it (a schema failure is a recorded deny).
  // *refused is set (and nothing executed) when the caller acts for another agent.
  kernel::SyscallResult ExecuteBound(Json call, const Identity& who, Status* refused);
  // Executes a call whose agent is already bound (parse, token, kernel, metrics), with `hooks`.
  kernel::SyscallResult ExecuteCall(const Json& call, const kernel::ExecuteHooks& hooks);
  // The response for an executed call: `shape` of its result, either now (one JSON body) or as a
  // stream of events when the request asks for one (decision 028).
  HttpResponse Respond(Json call, bool stream, bool stream_output,
                       std::function<Json(const kernel::SyscallResult&)> shape);
  HttpResponse ListApprovals(std::string_view query);
  HttpResponse AnswerApproval(const std::string& id, const HttpRequest& req, const Identity& who);
  HttpResponse AuditQuery(std::string_view query, const Identity& who);
  HttpResponse AuditTail(std::string_view query, const Identity& who);
  HttpResponse AuditCheckpoint(const HttpRequest& req, const Identity& who);
  HttpResponse AuditProve(const std::string& seq_text, const Identity& who);
  HttpResponse AdminReload();
  HttpResponse Health();
  HttpResponse Ready();
  HttpResponse MetricsText();
  HttpResponse RequestCapabilities(const HttpRequest& req, const Identity& who);

  // Parses the body as a JSON object; the error response otherwise.
  Result<Json> BodyObject(const HttpRequest& req);
  // Applies the identity rule to a syscall object: fills a missing agent, refuses another one.
  Status BindAgent(Json* call, const Identity& who, bool record);
  std::shared_ptr<const Authenticator> auth() const;

  kernel::Kernel* kernel_;
  Metrics* metrics_;
  ApiOptions options_;
  mutable std::mutex auth_mu_;
  std::shared_ptr<const Authenticator> auth_;  // GUARDED_BY(auth_mu_)
  std::mutex reload_mu_;                       // one reload at a time
  std::atomic<bool> draining_{false};
  // Capability tokens of authenticated callers that present none: the daemon has already
  // established who the caller is, so it attaches that agent's policy grant for the run (or the
  // token its spawn returned). A token in the request is kept as given. Revocation is in the
  // store, so a revoked token is refused for every caller and every daemon sharing it.
  kernel::TokenWallet wallet_;
  // Nonces of verified signed requests within the skew window (replay protection).
  ReplayCache replay_;
  AuthFailureLog auth_failures_;
};

}  // namespace custos::server
