#pragma once
// Network patterns for policy: IP addresses, host patterns and host:port endpoints, plus the
// address classification that the DNS-rebinding guard relies on. Everything here is a pure
// function on strings; matching never allocates (IP text is copied to a stack buffer for
// inet_pton).
//
// Thread-compatible: compiled patterns are immutable.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos::policy::internal {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are stored as IPv4, so a
// pattern written either way covers both spellings.
struct IpAddress {
  bool v4 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses bytes[0..4)

  int bits() const { return v4 ? 32 : 128; }
  bool operator==(const IpAddress&) const = default;
};

// Parses an IP literal with inet_pton. Accepts "[v6]" brackets. No zone ids, no shorthand IPv4
// forms ("127.1"): those are hostnames, and DNS-level checks apply to them.
bool ParseIp(std::string_view text, IpAddress* out);
std::string FormatIp(const IpAddress& ip);

// True if the first `prefix_len` bits of `a` equal those of `net` (same family).
bool IpInPrefix(const IpAddress& a, const IpAddress& net, int prefix_len);

// A globally routable unicast address: not loopback, private (RFC 1918, ULA), CGNAT, link-local,
// documentation, benchmarking, reserved, multicast or unspecified. NAT64 and 6to4 addresses are
// judged by the IPv4 address they embed; Teredo is never public.
bool IsPublicAddress(const IpAddress& a);

// Addresses that reach the host itself or its cloud control plane: link-local (169.254.0.0/16,
// fe80::/10), cloud metadata (100.100.100.200, fd00:ec2::254), unspecified and "this network"
// (0.0.0.0/8, ::), multicast (224.0.0.0/4, ff00::/8) and broadcast. A connection to one needs a
// net.connect entry naming the IP or a CIDR that covers it.
bool IsSpecialAddress(const IpAddress& a);
// The human name of the class IsSpecialAddress() found ("link-local", "cloud metadata", ...).
std::string_view SpecialAddressClass(const IpAddress& a);

bool IsLoopbackAddress(const IpAddress& a);

// A request host, normalised once per decision: trailing dot and IPv6 brackets removed, and
// parsed as an IP when it is one.
struct HostInfo {
  std::string_view name;
  bool is_ip = false;
  IpAddress ip;
};
HostInfo MakeHostInfo(std::string_view host);

// A host pattern as written in policy:
//   "*"             any host
//   "*.example.com" any host with one or more labels before ".example.com"
//   "example.com"   exactly that host (case-insensitive)
//   "10.1.2.3", "::1", "[::1]"            that IP literal
//   "10.0.0.0/8", "fd00::/8"              any IP literal in the CIDR
class HostPattern {
 public:
  enum class Kind : uint8_t { kAny, kExact, kSuffix, kIp, kCidr };

  // Errors: kPolicyBadPattern, with the problem in the message.
  static Result<HostPattern> Parse(std::string_view text);

  bool MatchesHost(const HostInfo& host) const;
  // For kIp/kCidr: true if `addr` is inside. False for name patterns.
  bool CoversAddress(const IpAddress& addr) const;
  bool is_ip() const { return kind_ == Kind::kIp || kind_ == Kind::kCidr; }
  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }

 private:
  Kind kind_ = Kind::kAny;
  std::string text_;    // as written, lowercased
  std::string suffix_;  // kSuffix: ".example.com"; kExact: the host
  IpAddress ip_;
  int prefix_len_ = 0;
};

// host:port. Port "*" (any) or 1..65535. IPv6 hosts are bracketed: "[::1]:8080",
// "[fd00::/8]:*". When `port_required` is false a bare host pattern means any port.
class Endpoint {
 public:
  static Result<Endpoint> Parse(std::string_view text, bool port_required);

  bool Matches(const HostInfo& host, uint16_t port) const {
    return (port_ < 0 || port_ == port) && host_.MatchesHost(host);
  }
  bool PortMatches(uint16_t port) const { return port_ < 0 || port_ == port; }
  const HostPattern& host() const { return host_; }
  const std::string& text() const { return text_; }

 private:
  HostPattern host_;
  int port_ = -1;  // -1: any
  std::string text_;
};

// Splits "host:port" / "[v6]:port" as found in Request::destination. False if malformed.
bool SplitHostPort(std::string_view text, std::string_view* host, uint16_t* port);

// Formats host and port for a net.connect entry ("[::1]:8080" for IPv6 literals).
std::string FormatEndpoint(std::string_view host, uint16_t port);

}  // namespace custos::policy::internal
