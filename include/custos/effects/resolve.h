#pragma once
// ResolveHost turns a host name into the addresses the kernel will check (ClassifyAddress, net
// policy) and then pin for the connection (http_client.h), so the address that was checked is the
// one that is used. An IP literal is returned as-is (canonicalised) without a lookup.
//
// Failure modes: kInvalidArgument (host or port not acceptable, see CanonicalHost in url.h),
// kNotFound (the name does not exist or has no address), kEffectFailed (resolver failure,
// e.g. no DNS server reachable). getaddrinfo(3) has no timeout parameter: a lookup is bounded by
// the resolver configuration (resolv.conf timeout x attempts).
//
// Thread-safe: getaddrinfo is thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/result.h"
#include "custos/effects/address.h"

namespace custos::effects {

// Returns the distinct addresses of `host` (IPv4 and IPv6, resolver order, canonical text).
// REQUIRES: port != 0.
Result<std::vector<std::string>> ResolveHost(std::string_view host, uint16_t port);

}  // namespace custos::effects
