#pragma once
// ServerConfig is custosd's part of DATA_DIR/config.toml (decision 007: machine settings, not
// policy). Every key is optional; command-line flags override the file.
//
//   [server]
//   listen = "127.0.0.1:7300"      # TCP, loopback only (decision 014); "" = no TCP listener
//   socket = "/run/user/1000/custos.sock"   # default $XDG_RUNTIME_DIR/custos.sock, else DATA_DIR
//   threads = 2                    # I/O threads running the event loop
//   workers = 16                   # kernel calls run here, never on an I/O thread
//   max_connections = 256          # beyond it: 503 unavailable, then close
//   max_body_bytes = 1048576       # larger: 413 payload_too_large
//   max_header_bytes = 16384       # larger: 431 headers_too_large
//   max_headers = 64               # more header fields: 431
//   header_timeout_ms = 10000      # headers not complete in time: 408, close (slowloris); a
//                                  # keep-alive connection idle this long is closed silently
//   body_timeout_ms = 30000
//   max_streams = 32               # streamed invokes/syscalls at once (each holds a worker and a
//                                  # connection); beyond it: 503 unavailable
//   stream_progress_ms = 1000      # a streamed call sends a progress event this often
//   stream_timeout_ms = 300000     # a stream still open this long ends with an error event
//   auth_failure_summary_ms = 10000   # refused authentication: one log entry per interval
//   admins = ["ops"]               # identities allowed on admin endpoints
//   [server.peers]                 # Unix-socket peers: uid → agent identity (SO_PEERCRED)
//   "1000" = "researcher"
//   [server.tls]                   # TLS on the TCP listener (decision 021); both keys required
//   cert = "tls/cert.pem"          # PEM certificate chain; relative paths are under DATA_DIR
//   key = "tls/key.pem"            # PEM private key; refused unless only the owner can read it
//
// Unknown keys and wrong types are errors with file:line:col (like policy errors).
//
// Thread-compatible.

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "custos/core/result.h"

namespace custos::server {

struct ServerLimits {
  size_t max_connections = 256;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 * 1024;
  size_t max_headers = 64;
  int64_t header_timeout_ms = 10'000;
  int64_t body_timeout_ms = 30'000;
  int64_t sse_heartbeat_ms = 15'000;    // audit tail: a comment line this often keeps proxies open
  int64_t drain_timeout_ms = 10'000;    // SIGTERM: how long in-flight requests may still finish
  size_t max_streams = 32;              // streamed calls (decision 028) open at once
  int64_t stream_progress_ms = 1'000;   // progress (or keep-alive) event interval of a stream
  int64_t stream_timeout_ms = 300'000;  // a stream's overall bound; the call itself runs on
  // Refused authentication is written to the flight log as one summary per this interval
  // (decision 029).
  int64_t auth_failure_summary_ms = 10'000;
};

struct ServerConfig {
  std::string listen;  // "HOST:PORT", "" = none
  std::string socket;  // path, "" = none
  int threads = 2;
  int workers = 16;
  ServerLimits limits;
  std::set<std::string> admins;
  std::map<uint32_t, std::string> peers;  // uid → agent
  std::filesystem::path tls_cert;         // "" = plain HTTP (loopback only)
  std::filesystem::path tls_key;
};

// Reads the [server] table of DATA_DIR/config.toml; a missing file or table gives defaults
// (socket left empty: DefaultSocketPath() is applied by the daemon).
Result<ServerConfig> LoadServerConfig(const std::filesystem::path& data_dir);

// $XDG_RUNTIME_DIR/custos.sock if that variable is set, else DATA_DIR/custos.sock.
std::filesystem::path DefaultSocketPath(const std::filesystem::path& data_dir);

}  // namespace custos::server
