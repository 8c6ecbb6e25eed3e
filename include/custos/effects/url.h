#pragma once
// Url is a strictly parsed http(s) URL in one canonical form, so that the string policy checks is
// the string the HTTP client sends. ParseUrl accepts only what it can normalise unambiguously and
// refuses the rest with kInvalidArgument:
//   * scheme http or https (any case); no other scheme, no scheme-relative input;
//   * no userinfo ("user:pass@"), no backslash, no control byte, space or non-ASCII byte anywhere,
//     at most kMaxUrlBytes;
//   * host: a DNS name of [a-z0-9-] labels (1-63 bytes, no leading/trailing '-', 253 bytes in all,
//     no trailing dot; lowercased; punycode "xn--" labels pass as ASCII), a dotted-quad IPv4
//     literal in canonical form (no leading zeros, no octal/hex/integer forms: a host whose last
//     label is numeric must be one), or a bracketed IPv6 literal without a zone id, stored without
//     brackets in inet_ntop form;
//   * port 1-65535, defaulting to 80/443;
//   * path: dot segments removed (RFC 3986 5.2.4), and a percent-encoded dot segment ("%2e%2e")
//     is refused; '%' must start a valid escape; an empty path becomes "/". The query is kept as
//     written; the fragment is dropped (it is never sent).
//
// Thread-compatible value type.

#include <cstdint>
#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos::effects {

inline constexpr size_t kMaxUrlBytes = 8192;

struct Url {
  std::string scheme;          // "http" or "https"
  std::string host;            // lowercase DNS name, dotted quad, or IPv6 text without brackets
  uint16_t port = 0;           // never 0 after parsing
  std::string path_and_query;  // starts with '/'
  bool host_is_ip = false;

  // "scheme://host[:port]/path?query"; the port only when not the scheme default; IPv6 bracketed.
  std::string ToString() const;
  // The host as it appears in a URL or a Host header: IPv6 in brackets.
  std::string HostForUrl() const;
  // Whether `o` has the same scheme, host and port (the same origin, RFC 6454).
  bool SameOrigin(const Url& o) const;
  bool operator==(const Url&) const = default;
};

Result<Url> ParseUrl(std::string_view text);

// Resolves a redirect target (a Location header value) against `base`, RFC 3986 section 5.2:
// absolute http(s) URLs, "//host/..." and relative paths/queries. The result obeys every ParseUrl
// rule.
Result<Url> ResolveReference(const Url& base, std::string_view reference);

// Validates a bare host (a DNS name or IPv4 literal as above, or an unbracketed IPv6 literal) and
// returns its canonical form; kInvalidArgument otherwise.
Result<std::string> CanonicalHost(std::string_view host);

}  // namespace custos::effects
