#pragma once
// Server is custosd's transport (decision 014): asynchronous HTTP/1.1 with keep-alive on a
// loopback TCP port and/or a Unix domain socket, on a small fixed pool of I/O threads running one
// event loop. Every request is handed to a separate worker pool, because a kernel call can block
// (group commit, a pending approval); I/O threads only parse, time out and write, so a slow kernel
// call never stalls accepting or other connections.
//
// Limits, each answered with the stable error body and then a closed connection:
//   body over max_body_bytes → 413 payload_too_large; header bytes over max_header_bytes or more
//   than max_headers fields → 431 headers_too_large; headers (or body) not complete within
//   header_timeout_ms (body_timeout_ms) → 408 request_timeout (a keep-alive connection that sent
//   nothing is closed silently); more than max_connections open → 503 unavailable; bytes that are
//   not HTTP/1.1 → 400 malformed_http.
// A client that disconnects mid-request costs nothing but its buffers: the request never reaches
// the kernel, so the log has no half-recorded call.
//
// TLS (decision 021): with tls_cert/tls_key set, the TCP listener speaks only TLS (1.2 minimum,
// 1.3 preferred; see tls.h). The handshake runs under header_timeout_ms like the headers do; a
// failed or timed-out handshake closes the connection without a response, except plain HTTP sent
// to the TLS port, which gets a plain-text 400 malformed_http saying to use https. The Unix socket
// never uses TLS.
//
// Binding: a loopback address may be plain or TLS; any other address needs TLS *and* a TCP auth
// method (API keys or agent keys for signed requests), else kInsecureBind naming what is missing.
// The socket file is created 0600; a stale file (nobody accepting) is replaced, a live one is
// kAlreadyExists.
//
// Thread-safe: Shutdown() may be called from any thread (e.g. a signal thread), once or more.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "custos/core/result.h"
#include "custos/server/api.h"
#include "custos/server/metrics.h"
#include "custos/server/server_config.h"

namespace custos::server {

// A mount is a path the transport hands to a handler outside the Api (the MCP gateway's
// Streamable HTTP front at /mcp, mounted by the binary: server may not include mcp). The request
// gets the same limits, timeouts and connection cap as every other; the handler runs on a worker
// and answers through the MountStream, then or later, from any thread.
struct MountRequest {
  std::string method;
  std::string target;                                        // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::optional<PeerCred> peer;  // set on the Unix socket
};

// How a mount answers. Exactly one of: Respond() once (the connection stays open for the next
// request), or Begin() with a streamed head (no Content-Length; the connection closes when End()
// is called or the client goes away), then Write() any number of times, then End().
// Thread-safe: every call is queued onto the connection's strand and never blocks.
// REQUIRES: the owner releases its streams before the Server is destroyed.
class MountStream {
 public:
  virtual ~MountStream() = default;
  virtual void Respond(HttpResponse response) = 0;
  virtual void Begin(HttpResponse head) = 0;
  virtual void Write(std::string chunk) = 0;
  virtual void End() = 0;
  // True once the client closed the connection (seen while streaming) or a write failed.
  virtual bool closed() const = 0;
  // `fn` runs (once, on the I/O thread) when the connection closes after Begin().
  virtual void OnClose(std::function<void()> fn) = 0;
};

struct Mount {
  std::string path;  // "/mcp": the exact path, with or without a query, and nothing below it
  std::function<void(MountRequest, std::shared_ptr<MountStream>)> handler;
  // The handler authenticates its callers itself (e.g. OAuth); custosd then does not require its
  // own credentials for this path.
  bool self_authenticated = false;
};

struct ServerOptions {
  std::string listen;            // "HOST:PORT" (port 0 = any free port), "" = no TCP
  std::filesystem::path socket;  // "" = no Unix socket
  int threads = 2;
  int workers = 16;
  ServerLimits limits;
  std::filesystem::path tls_cert;  // both set: TLS on the TCP listener; both empty: plain HTTP
  std::filesystem::path tls_key;
  bool tcp_auth = false;  // at least one API key or agent key exists (non-loopback binds need it)
  std::vector<Mount> mounts;  // checked before the Api's routes
};

// Checks a "HOST:PORT" listen address against the binding rule above, without binding.
// kInvalidArgument for a malformed address; kInsecureBind for a non-loopback address without TLS
// or without a TCP auth method (the message says which).
Status CheckListenAddress(const std::string& listen, bool tls, bool tcp_auth);

class Server {
 public:
  // Binds and starts serving. REQUIRES: `api` and `metrics` outlive the Server. `api` may be null
  // when only mounts are served (anything else is then 404 route_not_found).
  // Errors: kInsecureBind, kInvalidArgument (a bad listen address), kTlsConfigError (see tls.h),
  // kAlreadyExists (a live socket file), kIoError (bind/listen failed), kInvalidArgument if
  // neither listener is configured or only one of tls_cert/tls_key is set.
  static Result<std::unique_ptr<Server>> Start(Api* api, Metrics* metrics, ServerOptions options);
  ~Server();  // Shutdown()

  // The bound TCP port (useful with port 0), 0 without TCP.
  uint16_t tcp_port() const;
  const std::filesystem::path& socket_path() const;

  // Graceful stop: stop accepting, let requests already handed to the kernel finish and their
  // responses be written (up to drain_timeout_ms), then close every connection, join the threads
  // and remove the socket file. Idempotent.
  void Shutdown();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::server
