#pragma once
// HttpSend performs one HTTP(S) exchange, following redirects only with the caller's consent, and
// connects only to addresses the caller approved. It is the network half of net.send: the kernel
// decides (policy, address class, secrets) and this code makes the decision hold on the wire.
//
// Guarantees:
//   * Pinned address. The request connects to `req.pinned_ip` and nowhere else: the host is mapped
//     to it with CURLOPT_RESOLVE (no DNS lookup happens, which defeats DNS rebinding), the socket
//     callback refuses to connect to any other address, and CURLINFO_PRIMARY_IP is checked again
//     after the exchange. Any disagreement is kAddressNotAllowed (fail closed).
//   * Redirects. libcurl never follows a Location. On a 301/302/303/307/308 with a Location, the
//     target is resolved against the current URL and offered to `opt.on_redirect`, which returns
//     the pinned IP for that hop (after its own policy check) or an error that HttpSend returns
//     unchanged. Each hop is a fresh connection pinned to its own IP. Without a hook the 3xx
//     response itself is returned. More than `opt.max_redirects` hops is kRedirectDenied, and so
//     is an https -> http downgrade unless `opt.allow_https_downgrade`. 303 (and 301/302 after
//     POST) continue as GET without a body; 307/308 resend the method and body. Headers marked
//     `sensitive`, and Authorization, Cookie and Proxy-Authorization always, are dropped as soon
//     as a hop leaves the original origin (scheme, host, port), so credentials do not follow a
//     redirect to another party.
//   * Only http and https, no proxy (environment proxies ignored), TLS peer and host verification
//     on, no cookies, no .netrc, no automatic decompression (the body cap counts wire bytes).
//   * Bounds. `opt.total_timeout` covers the whole chain and `opt.connect_timeout` each connect:
//     either is kEffectTimeout. A body over `opt.max_body_bytes` or response headers over
//     `opt.max_header_bytes` abort the transfer with kPayloadTooLarge.
//   * Requests are validated first (kInvalidArgument): method one of GET HEAD POST PUT PATCH
//     DELETE OPTIONS; no body on GET/HEAD; header names are RFC 9110 tokens, values have no CR,
//     LF or NUL; headers that would change framing, routing or the pinned host (Host,
//     Content-Length, Transfer-Encoding, Connection, Upgrade, TE, Trailer, Keep-Alive,
//     Proxy-Connection, Expect) are refused.
// Any HTTP status is a successful exchange (the kernel decides what a 404 means); transport
// failures are kEffectFailed. Messages name the host, never the path or query (they may carry
// secrets).
//
// Thread-safe: each call uses its own libcurl handles; libcurl's global state is initialised once.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/result.h"
#include "custos/effects/url.h"

namespace custos::effects {

struct HttpHeader {
  std::string name;
  std::string value;
  // Dropped on a redirect to another origin. Authorization, Cookie and Proxy-Authorization are
  // always treated as sensitive.
  bool sensitive = false;
};

struct HttpRequest {
  std::string method = "GET";
  Url url;
  std::vector<HttpHeader> headers;
  std::string body;
  // The address the kernel approved for url.host (a bare IPv4 or IPv6 literal). For an IP-literal
  // host it must be that same address.
  std::string pinned_ip;
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds total_timeout{30'000};
  size_t max_body_bytes = size_t{10} << 20;
  size_t max_header_bytes = size_t{64} << 10;
  int max_redirects = 5;
  bool allow_https_downgrade = false;
  // Called for each redirect hop with the resolved next URL; returns the IP to pin for it, or the
  // Status to fail with (e.g. kRedirectDenied, kHostNotAllowed). Null: redirects are not followed.
  std::function<Result<std::string>(const Url& next)> on_redirect;
  // Extra CA bundle file for TLS verification (tests, private CAs); empty means the system store.
  std::string ca_file;
};

struct HttpResponse {
  int status = 0;
  std::vector<HttpHeader> headers;  // of the final response, in order, as received
  std::string body;
  std::string primary_ip;       // the address the final hop connected to
  Url effective_url;            // the URL of the final hop
  int redirects = 0;            // hops followed
  uint64_t bytes_sent = 0;      // request headers and bodies, all hops
  uint64_t bytes_received = 0;  // response headers and bodies, all hops

  // The first header named `name` (ASCII case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

Result<HttpResponse> HttpSend(const HttpRequest& req, const HttpOptions& opt);

}  // namespace custos::effects
