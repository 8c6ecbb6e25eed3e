#pragma once
// HttpGet fetches one small document over HTTP(S) with libcurl, for configuration the gateway
// reads at run time (an OAuth issuer's JWKS). The URL must already be checked (config.cc:
// http:// only to a loopback host); certificates are verified, redirects are not followed, the
// body is capped at `max_bytes` and the whole exchange at `timeout_ms`. Anything but a 200 with
// a body within the cap is kMcpServerUnavailable naming the URL and what happened.
//
// Thread-safe: each call uses its own handle.

#include <cstddef>
#include <cstdint>
#include <string>

#include "custos/core/result.h"

namespace custos::mcp {

Result<std::string> HttpGet(const std::string& url, size_t max_bytes, int64_t timeout_ms);

}  // namespace custos::mcp
