#pragma once
// ClassifyAddress sorts an IP address into the class net policy reasons about, so the kernel can
// refuse loopback, private, link-local and cloud-metadata destinations unless a rule names them.
// It errs towards the restrictive class: anything special-purpose that is not ordinary internet
// unicast is never kPublic.
//
// IPv4: 0/8 unspecified ("this network", which Linux routes to the local host); 127/8 loopback;
// 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT) private; 169.254/16 link-local;
// 224/4 multicast; 192.0.0/24, 192.0.2/24, 192.88.99/24, 198.18/15, 198.51.100/24, 203.0.113/24,
// 240/4 and 255.255.255.255 reserved. Metadata endpoints take precedence over their range:
// 169.254.169.254 (AWS, GCP, Azure, OpenStack, ...), 169.254.170.2 (AWS ECS), 169.254.169.253
// (AWS DNS), 100.100.100.200 (Alibaba), 192.0.0.192 (Oracle), 168.63.129.16 (Azure WireServer).
// IPv6: :: unspecified; ::1 loopback; fe80::/10 link-local; fc00::/7 and fec0::/10 private;
// ff00::/8 multicast; fd00:ec2::254 (AWS) metadata; an IPv4 address embedded by ::ffff:0:0/96
// (mapped), ::/96 (compatible), 64:ff9b::/96 (NAT64) or 2002::/16 (6to4) is classified as that
// IPv4 address; 64:ff9b:1::/48 (local NAT64) private; 2001::/32 (Teredo), 2001:db8::/32, 100::/64,
// 2001:10::/28, 2001:20::/28 and everything outside 2000::/3 reserved.
// Input must be a bare textual address (no brackets, no zone id): otherwise kInvalid.
//
// Thread-safe: pure functions.

#include <optional>
#include <string>
#include <string_view>

namespace custos::effects {

enum class AddressClass {
  kInvalid,  // not an IP address
  kPublic,   // ordinary internet unicast
  kLoopback,
  kPrivate,  // RFC 1918, CGNAT, unique-local
  kLinkLocal,
  kMetadata,     // a cloud instance-metadata endpoint
  kUnspecified,  // 0.0.0.0/8, ::
  kMulticast,
  kReserved,  // documentation, benchmarking, broadcast, unallocated and other special ranges
};

AddressClass ClassifyAddress(std::string_view ip);

// "public", "loopback", ... for messages and policy explanations.
std::string_view AddressClassName(AddressClass c);

// The canonical text of an IP address (inet_ntop form: IPv6 lowercase and compressed), or nullopt
// if `ip` is not a bare IPv4/IPv6 address. Two spellings of one address give one string.
std::optional<std::string> CanonicalIp(std::string_view ip);

}  // namespace custos::effects
