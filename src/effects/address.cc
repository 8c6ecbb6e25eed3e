#include "custos/effects/address.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace custos::effects {
namespace {

constexpr uint32_t V4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

bool InV4(uint32_t addr, uint32_t net, int prefix) {
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return (addr & mask) == net;
}

AddressClass ClassifyV4(uint32_t a) {
  static constexpr uint32_t kMetadata[] = {
      V4(169, 254, 169, 254), V4(169, 254, 170, 2), V4(169, 254, 169, 253),
      V4(100, 100, 100, 200), V4(192, 0, 0, 192),   V4(168, 63, 129, 16),
  };
  for (uint32_t m : kMetadata) {
    if (a == m) {
      return AddressClass::kMetadata;
    }
  }
  if (InV4(a, V4(0, 0, 0, 0), 8)) {
    return AddressClass::kUnspecified;
  }
  if (InV4(a, V4(127, 0, 0, 0), 8)) {
    return AddressClass::kLoopback;
  }
  if (InV4(a, V4(10, 0, 0, 0), 8) || InV4(a, V4(172, 16, 0, 0), 12) ||
      InV4(a, V4(192, 168, 0, 0), 16) || InV4(a, V4(100, 64, 0, 0), 10)) {
    return AddressClass::kPrivate;
  }
  if (InV4(a, V4(169, 254, 0, 0), 16)) {
    return AddressClass::kLinkLocal;
  }
  if (InV4(a, V4(224, 0, 0, 0), 4)) {
    return AddressClass::kMulticast;
  }
  if (InV4(a, V4(192, 0, 0, 0), 24) || InV4(a, V4(192, 0, 2, 0), 24) ||
      InV4(a, V4(192, 88, 99, 0), 24) || InV4(a, V4(198, 18, 0, 0), 15) ||
      InV4(a, V4(198, 51, 100, 0), 24) || InV4(a, V4(203, 0, 113, 0), 24) ||
      InV4(a, V4(240, 0, 0, 0), 4)) {
    return AddressClass::kReserved;
  }
  return AddressClass::kPublic;
}

uint32_t V4At(const uint8_t* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

bool AllZero(const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) {
      return false;
    }
  }
  return true;
}

AddressClass ClassifyV6(const uint8_t* b) {
  static constexpr uint8_t kAwsMetadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                               0,    0,    0,    0,    0, 0, 0x02, 0x54};
  if (std::memcmp(b, kAwsMetadata, 16) == 0) {
    return AddressClass::kMetadata;
  }
  if (AllZero(b, 16)) {
    return AddressClass::kUnspecified;
  }
  if (AllZero(b, 15) && b[15] == 1) {
    return AddressClass::kLoopback;
  }
  if (AllZero(b, 10) && b[10] == 0xff && b[11] == 0xff) {
    return ClassifyV4(V4At(b + 12));  // ::ffff:a.b.c.d, IPv4-mapped
  }
  if (AllZero(b, 12)) {
    return ClassifyV4(V4At(b + 12));  // ::a.b.c.d, IPv4-compatible (deprecated)
  }
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    if (AllZero(b + 4, 8)) {
      return ClassifyV4(V4At(b + 12));  // 64:ff9b::/96 NAT64 well-known prefix
    }
    if (b[4] == 0x00 && b[5] == 0x01) {
      return AddressClass::kPrivate;  // 64:ff9b:1::/48 local-use NAT64
    }
  }
  if (b[0] == 0x20 && b[1] == 0x02) {
    return ClassifyV4(V4At(b + 2));  // 2002::/16 6to4
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
    return AddressClass::kLinkLocal;
  }
  if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)) {
    return AddressClass::kPrivate;
  }
  if (b[0] == 0xff) {
    return AddressClass::kMulticast;
  }
  if ((b[0] & 0xe0) != 0x20) {
    return AddressClass::kReserved;  // outside 2000::/3 global unicast
  }
  if (b[0] == 0x20 && b[1] == 0x01 && (b[2] & 0xfe) == 0x00) {
    return AddressClass::kReserved;  // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...)
  }
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) {
    return AddressClass::kReserved;  // documentation
  }
  return AddressClass::kPublic;
}

bool IsBareIpText(std::string_view ip) {
  if (ip.empty() || ip.size() > 45) {
    return false;
  }
  for (char c : ip) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == '.' || c == ':';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> CanonicalIp(std::string_view ip) {
  if (!IsBareIpText(ip)) {
    return std::nullopt;
  }
  std::string text(ip);
  uint8_t buf[16];
  char out[INET6_ADDRSTRLEN];
  if (text.find(':') != std::string::npos) {
    if (::inet_pton(AF_INET6, text.c_str(), buf) != 1) {
      return std::nullopt;
    }
    ::inet_ntop(AF_INET6, buf, out, sizeof out);
    return std::string(out);
  }
  if (::inet_pton(AF_INET, text.c_str(), buf) != 1) {
    return std::nullopt;
  }
  ::inet_ntop(AF_INET, buf, out, sizeof out);
  if (text != out) {
    return std::nullopt;  // e.g. leading zeros: one spelling only
  }
  return std::string(out);
}

AddressClass ClassifyAddress(std::string_view ip) {
  std::optional<std::string> canon = CanonicalIp(ip);
  if (!canon) {
    return AddressClass::kInvalid;
  }
  uint8_t buf[16];
  if (canon->find(':') != std::string::npos) {
    ::inet_pton(AF_INET6, canon->c_str(), buf);
    return ClassifyV6(buf);
  }
  ::inet_pton(AF_INET, canon->c_str(), buf);
  return ClassifyV4(V4At(buf));
}

std::string_view AddressClassName(AddressClass c) {
  switch (c) {
    case AddressClass::kInvalid:
      return "invalid";
    case AddressClass::kPublic:
      return "public";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kLinkLocal:
      return "link_local";
    case AddressClass::kMetadata:
      return "metadata";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kReserved:
      return "reserved";
  }
  return "invalid";
}

}  // namespace custos::effects
