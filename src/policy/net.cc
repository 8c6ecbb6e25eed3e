#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "policy/net_internal.h"

namespace custos::policy::internal {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool IEndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && IEquals(s.substr(s.size() - suffix.size()), suffix);
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = Lower(c);
  }
  return out;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// Parses a decimal in [lo, hi]; false on anything else (signs, spaces, leading zeros allowed only
// for "0").
bool ParseDecimal(std::string_view s, int lo, int hi, int* out) {
  if (!AllDigits(s) || s.size() > 6 || (s.size() > 1 && s[0] == '0')) {
    return false;
  }
  int v = 0;
  for (char c : s) {
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) {
    return false;
  }
  *out = v;
  return true;
}

IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.v4 = true;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

IpAddress V6(std::initializer_list<uint8_t> leading) {
  IpAddress ip;
  size_t i = 0;
  for (uint8_t b : leading) {
    ip.bytes[i++] = b;
  }
  return ip;
}

bool In(const IpAddress& a, const IpAddress& net, int len) { return IpInPrefix(a, net, len); }

// The IPv4 address embedded in a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address.
bool EmbeddedV4(const IpAddress& a, IpAddress* out) {
  if (a.v4) {
    return false;
  }
  static const IpAddress kNat64 = V6({0x00, 0x64, 0xff, 0x9b});
  static const IpAddress k6to4 = V6({0x20, 0x02});
  if (In(a, kNat64, 96)) {
    *out = V4(a.bytes[12], a.bytes[13], a.bytes[14], a.bytes[15]);
    return true;
  }
  if (In(a, k6to4, 16)) {
    *out = V4(a.bytes[2], a.bytes[3], a.bytes[4], a.bytes[5]);
    return true;
  }
  return false;
}

bool IsPublicV4(const IpAddress& a) {
  struct Net {
    IpAddress ip;
    int len;
  };
  static const Net kNonPublic[] = {
      {V4(0, 0, 0, 0), 8},     {V4(10, 0, 0, 0), 8},      {V4(100, 64, 0, 0), 10},
      {V4(127, 0, 0, 0), 8},   {V4(169, 254, 0, 0), 16},  {V4(172, 16, 0, 0), 12},
      {V4(192, 0, 0, 0), 24},  {V4(192, 0, 2, 0), 24},    {V4(192, 168, 0, 0), 16},
      {V4(198, 18, 0, 0), 15}, {V4(198, 51, 100, 0), 24}, {V4(203, 0, 113, 0), 24},
      {V4(224, 0, 0, 0), 4},   {V4(240, 0, 0, 0), 4},
  };
  for (const Net& n : kNonPublic) {
    if (In(a, n.ip, n.len)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool ParseIp(std::string_view text, IpAddress* out) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf)) {
    return false;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, ip.bytes.data()) != 1) {
      return false;
    }
    ip.v4 = true;
  } else {
    if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) {
      return false;
    }
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip.bytes.data(), kMapped, sizeof(kMapped)) == 0) {
      ip = V4(ip.bytes[12], ip.bytes[13], ip.bytes[14], ip.bytes[15]);
    }
  }
  *out = ip;
  return true;
}

std::string FormatIp(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(ip.v4 ? AF_INET : AF_INET6, ip.bytes.data(), buf, sizeof(buf)) == nullptr) {
    return "?";
  }
  return buf;
}

bool IpInPrefix(const IpAddress& a, const IpAddress& net, int prefix_len) {
  if (a.v4 != net.v4 || prefix_len < 0 || prefix_len > a.bits()) {
    return false;
  }
  const int full = prefix_len / 8;
  if (std::memcmp(a.bytes.data(), net.bytes.data(), static_cast<size_t>(full)) != 0) {
    return false;
  }
  const int rest = prefix_len % 8;
  if (rest == 0) {
    return true;
  }
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (net.bytes[full] & mask);
}

bool IsLoopbackAddress(const IpAddress& a) {
  if (a.v4) {
    return a.bytes[0] == 127;
  }
  static const IpAddress kLoop = [] {
    IpAddress ip;
    ip.bytes[15] = 1;
    return ip;
  }();
  return a == kLoop;
}

bool IsPublicAddress(const IpAddress& a) {
  if (a.v4) {
    return IsPublicV4(a);
  }
  IpAddress embedded;
  if (EmbeddedV4(a, &embedded)) {
    return IsPublicV4(embedded);
  }
  static const IpAddress kGlobal = V6({0x20});
  static const IpAddress kDoc = V6({0x20, 0x01, 0x0d, 0xb8});
  static const IpAddress kTeredo = V6({0x20, 0x01, 0x00, 0x00});
  static const IpAddress kOrchid = V6({0x20, 0x01, 0x00, 0x10});
  if (!In(a, kGlobal, 3)) {
    return false;
  }
  return !In(a, kDoc, 32) && !In(a, kTeredo, 32) && !In(a, kOrchid, 28);
}

std::string_view SpecialAddressClass(const IpAddress& a) {
  if (a.v4) {
    if (In(a, V4(169, 254, 0, 0), 16)) {
      return "link-local";
    }
    if (a == V4(100, 100, 100, 200)) {
      return "cloud metadata";
    }
    if (In(a, V4(0, 0, 0, 0), 8)) {
      return "unspecified";
    }
    if (In(a, V4(224, 0, 0, 0), 4)) {
      return "multicast";
    }
    if (a == V4(255, 255, 255, 255)) {
      return "broadcast";
    }
    return "";
  }
  IpAddress embedded;
  if (EmbeddedV4(a, &embedded)) {
    return SpecialAddressClass(embedded);
  }
  static const IpAddress kUnspecified;
  static const IpAddress kLinkLocal = V6({0xfe, 0x80});
  static const IpAddress kMulticast = V6({0xff});
  static const IpAddress kEc2 = [] {
    IpAddress ip = V6({0xfd, 0x00, 0x0e, 0xc2});
    ip.bytes[14] = 0x02;
    ip.bytes[15] = 0x54;
    return ip;
  }();
  if (a == kUnspecified) {
    return "unspecified";
  }
  if (In(a, kLinkLocal, 10)) {
    return "link-local";
  }
  if (In(a, kMulticast, 8)) {
    return "multicast";
  }
  if (a == kEc2) {
    return "cloud metadata";
  }
  return "";
}

bool IsSpecialAddress(const IpAddress& a) { return !SpecialAddressClass(a).empty(); }

HostInfo MakeHostInfo(std::string_view host) {
  HostInfo info;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  info.name = host;
  info.is_ip = ParseIp(host, &info.ip);
  return info;
}

namespace {

Status Bad(std::string_view text, std::string_view why) {
  return Status(Reason::kPolicyBadPattern,
                "bad host pattern \"" + std::string(text) + "\": " + std::string(why));
}

// Hostname labels: [a-z0-9_-]{1,63}, joined by '.', at most 253 bytes.
Status CheckHostname(std::string_view original, std::string_view host) {
  if (host.empty()) {
    return Bad(original, "empty host");
  }
  if (host.size() > 253) {
    return Bad(original, "longer than 253 bytes");
  }
  size_t start = 0;
  std::string_view last_label;
  while (true) {
    const size_t dot = host.find('.', start);
    const std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) {
      return Bad(original, "empty label (\"..\" or a leading/trailing dot)");
    }
    if (label.size() > 63) {
      return Bad(original, "a label is longer than 63 bytes");
    }
    for (char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (c == '*') {
        return Bad(original, "'*' is only allowed alone or as a leading \"*.\" label");
      }
      if (!ok) {
        return Bad(original, std::string("character '") + c + "' is not allowed in a host");
      }
    }
    last_label = label;
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  if (AllDigits(last_label)) {
    return Bad(original, "looks like an IP address but is not a valid one");
  }
  return Status::Ok();
}

}  // namespace

Result<HostPattern> HostPattern::Parse(std::string_view text) {
  HostPattern p;
  p.text_ = ToLower(text);
  const std::string_view t = p.text_;
  if (t.empty()) {
    return Bad(text, "empty");
  }
  if (t == "*") {
    p.kind_ = Kind::kAny;
    return p;
  }
  if (const size_t slash = t.find('/'); slash != std::string_view::npos) {
    const std::string_view ip_text = t.substr(0, slash);
    if (!ParseIp(ip_text, &p.ip_)) {
      return Bad(text, "the CIDR network is not an IP address");
    }
    const bool mapped = p.ip_.v4 && ip_text.find(':') != std::string_view::npos;
    int len = 0;
    if (!ParseDecimal(t.substr(slash + 1), 0, mapped ? 128 : p.ip_.bits(), &len)) {
      return Bad(text, "the CIDR prefix length must be 0.." + std::to_string(p.ip_.bits()));
    }
    if (mapped) {
      if (len < 96) {
        return Bad(text, "an IPv4-mapped CIDR needs a prefix of at least 96");
      }
      len -= 96;
    }
    IpAddress masked;
    masked.v4 = p.ip_.v4;
    for (int i = 0; i < len; ++i) {
      masked.bytes[i / 8] |= static_cast<uint8_t>(p.ip_.bytes[i / 8] & (0x80 >> (i % 8)));
    }
    if (!(masked == p.ip_)) {
      return Bad(text, "host bits are set after the prefix (did you mean " + FormatIp(masked) +
                           "/" + std::to_string(len) + "?)");
    }
    p.kind_ = Kind::kCidr;
    p.prefix_len_ = len;
    return p;
  }
  if (ParseIp(t, &p.ip_)) {
    p.kind_ = Kind::kIp;
    return p;
  }
  if (t.find(':') != std::string_view::npos || t.front() == '[') {
    return Bad(text, "not a valid IP address");
  }
  if (t.size() > 2 && t[0] == '*' && t[1] == '.') {
    CUSTOS_RETURN_IF_ERROR(CheckHostname(text, t.substr(2)));
    p.kind_ = Kind::kSuffix;
    p.suffix_ = std::string(t.substr(1));
    return p;
  }
  CUSTOS_RETURN_IF_ERROR(CheckHostname(text, t));
  p.kind_ = Kind::kExact;
  p.suffix_ = std::string(t);
  return p;
}

bool HostPattern::MatchesHost(const HostInfo& host) const {
  switch (kind_) {
    case Kind::kAny:
      return !host.name.empty();
    case Kind::kExact:
      return !host.is_ip && IEquals(host.name, suffix_);
    case Kind::kSuffix:
      return !host.is_ip && host.name.size() > suffix_.size() && IEndsWith(host.name, suffix_);
    case Kind::kIp:
      return host.is_ip && host.ip == ip_;
    case Kind::kCidr:
      return host.is_ip && IpInPrefix(host.ip, ip_, prefix_len_);
  }
  return false;
}

bool HostPattern::CoversAddress(const IpAddress& addr) const {
  if (kind_ == Kind::kIp) {
    return addr == ip_;
  }
  if (kind_ == Kind::kCidr) {
    return IpInPrefix(addr, ip_, prefix_len_);
  }
  return false;
}

Result<Endpoint> Endpoint::Parse(std::string_view text, bool port_required) {
  const std::string lower = ToLower(text);
  std::string_view t = lower;
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  auto bad = [&](std::string_view why) {
    return Status(Reason::kPolicyBadPattern,
                  "bad endpoint \"" + std::string(text) + "\": " + std::string(why));
  };
  if (!t.empty() && t.front() == '[') {
    const size_t close = t.find(']');
    if (close == std::string_view::npos) {
      return bad("unclosed '['");
    }
    host = t.substr(1, close - 1);
    const std::string_view rest = t.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return bad("expected ':port' after ']'");
      }
      port = rest.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = t.find(':');
    if (colon != t.rfind(':')) {
      return bad("IPv6 addresses must be bracketed, e.g. \"[::1]:8080\" or \"[fd00::/8]:*\"");
    }
    if (colon == std::string_view::npos) {
      host = t;
    } else {
      host = t.substr(0, colon);
      port = t.substr(colon + 1);
      has_port = true;
    }
  }
  Endpoint e;
  if (!has_port) {
    if (port_required) {
      return bad("a port is required: \"host:443\", or \"host:*\" for any port");
    }
    e.port_ = -1;
  } else if (port == "*") {
    e.port_ = -1;
  } else {
    int v = 0;
    if (!ParseDecimal(port, 1, 65535, &v)) {
      return bad("the port must be '*' or 1..65535");
    }
    e.port_ = v;
  }
  Result<HostPattern> hp = HostPattern::Parse(host);
  if (!hp.ok()) {
    return bad(hp.status().message());
  }
  e.host_ = std::move(hp).value();
  e.text_ = lower;
  return e;
}

bool SplitHostPort(std::string_view text, std::string_view* host, uint16_t* port) {
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    h = text.substr(0, close + 1);
    p = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return false;
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  int v = 0;
  if (h.empty() || !ParseDecimal(p, 0, 65535, &v)) {
    return false;
  }
  *host = h;
  *port = static_cast<uint16_t>(v);
  return true;
}

std::string FormatEndpoint(std::string_view host, uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos && host.front() != '[') {
    out.append("[").append(host).append("]");
  } else {
    out.append(host);
  }
  out.append(":").append(std::to_string(port));
  return out;
}

}  // namespace custos::policy::internal
