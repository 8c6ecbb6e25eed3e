#include "custos/effects/url.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "custos/core/encoding.h"

namespace custos::effects {
namespace {

Status UrlError(std::string message) {
  return Status(Reason::kInvalidArgument, std::move(message));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return HexDigitValue(c) >= 0; }
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool IsUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '-' || c == '.' ||
         c == '_' || c == '~';
}
// Printable ASCII that RFC 3986 does not allow unencoded; we encode it so there is one spelling.
bool MustEncode(char c) { return std::strchr("\"<>^`{|}", c) != nullptr; }

uint16_t DefaultPort(std::string_view scheme) { return scheme == "https" ? 443 : 80; }

// True when every byte of `s` is a decimal digit (and there is at least one).
bool AllDigits(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!IsDigit(c)) {
      return false;
    }
  }
  return true;
}

bool LooksNumeric(std::string_view label) {
  if (AllDigits(label)) {
    return true;
  }
  if (label.size() >= 2 && label[0] == '0' && label[1] == 'x') {
    for (char c : label.substr(2)) {
      if (!IsHex(c)) {
        return false;
      }
    }
    return true;
  }
  return false;
}

Result<std::string> CanonicalHostImpl(std::string_view host, bool* is_ip) {
  *is_ip = false;
  if (host.empty()) {
    return UrlError("empty host");
  }
  if (host.find(':') != std::string_view::npos) {
    std::string text(host);
    unsigned char addr[16];
    if (host.size() > 45 || ::inet_pton(AF_INET6, text.c_str(), addr) != 1) {
      return UrlError("invalid IPv6 literal (zone ids are not accepted)");
    }
    char buf[INET6_ADDRSTRLEN];
    ::inet_ntop(AF_INET6, addr, buf, sizeof buf);
    *is_ip = true;
    return std::string(buf);
  }
  if (host.size() > 253) {
    return UrlError("host name exceeds 253 bytes");
  }
  std::string out;
  out.reserve(host.size());
  for (char c : host) {
    char l = Lower(c);
    if (!((l >= 'a' && l <= 'z') || IsDigit(l) || l == '-' || l == '.')) {
      return UrlError("host may contain only [a-z0-9.-] (IDN hosts must be punycode)");
    }
    out += l;
  }
  std::vector<std::string_view> labels;
  size_t i = 0;
  for (;;) {
    size_t j = out.find('.', i);
    std::string_view label(out.data() + i, (j == std::string::npos ? out.size() : j) - i);
    if (label.empty()) {
      return UrlError("host has an empty label (leading, trailing or double dot)");
    }
    if (label.size() > 63) {
      return UrlError("host label exceeds 63 bytes");
    }
    if (label.front() == '-' || label.back() == '-') {
      return UrlError("host label starts or ends with '-'");
    }
    labels.push_back(label);
    if (j == std::string::npos) {
      break;
    }
    i = j + 1;
  }
  if (LooksNumeric(labels.back())) {
    // Resolvers read "127.1", "0x7f.0.0.1" or "2130706433" as addresses: only the dotted quad
    // spelling is accepted, so policy sees the address that will be used.
    if (labels.size() != 4) {
      return UrlError("numeric host must be a dotted-quad IPv4 address");
    }
    for (std::string_view l : labels) {
      if (!AllDigits(l) || l.size() > 3 || (l.size() > 1 && l[0] == '0') ||
          std::stoi(std::string(l)) > 255) {
        return UrlError("numeric host must be a canonical dotted-quad IPv4 address");
      }
    }
    *is_ip = true;
  }
  return out;
}

// Checks escapes and spelling of a path or query and returns its normal form: unreserved escapes
// decoded, other escapes in upper-case hex, unsafe printable bytes encoded.
Result<std::string> NormalizeEscapes(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) {
        return UrlError("'%' does not start a valid escape");
      }
      char decoded = static_cast<char>(HexDigitValue(s[i + 1]) * 16 + HexDigitValue(s[i + 2]));
      if (IsUnreserved(decoded)) {
        out += decoded;
      } else {
        out += '%';
        out += kHex[(static_cast<unsigned char>(decoded) >> 4) & 15];
        out += kHex[static_cast<unsigned char>(decoded) & 15];
      }
      i += 2;
    } else if (MustEncode(c)) {
      out += '%';
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 15];
      out += kHex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
  return out;
}

// A segment that decodes to "." or ".." only through escapes would be undone by the server.
bool IsEncodedDotSegment(std::string_view seg) {
  if (seg.find('%') == std::string_view::npos) {
    return false;
  }
  std::string decoded;
  for (size_t i = 0; i < seg.size(); ++i) {
    if (seg[i] == '%' && i + 2 < seg.size() && seg[i + 1] == '2' && Lower(seg[i + 2]) == 'e') {
      decoded += '.';
      i += 2;
    } else {
      decoded += seg[i];
    }
  }
  return decoded == "." || decoded == "..";
}

// RFC 3986 section 5.2.4.
std::string RemoveDotSegments(std::string_view in) {
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./")) {
      in.remove_prefix(2);
    } else if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      size_t slash = out.rfind('/');
      out.resize(slash == std::string::npos ? 0 : slash);
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t next = in.find('/', in.front() == '/' ? 1 : 0);
      if (next == std::string_view::npos) {
        next = in.size();
      }
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

}  // namespace

std::string Url::HostForUrl() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]";
  }
  return host;
}

std::string Url::ToString() const {
  std::string out = scheme + "://" + HostForUrl();
  if (port != DefaultPort(scheme)) {
    out += ":" + std::to_string(port);
  }
  out += path_and_query;
  return out;
}

bool Url::SameOrigin(const Url& o) const {
  return scheme == o.scheme && host == o.host && port == o.port;
}

Result<std::string> CanonicalHost(std::string_view host) {
  bool is_ip = false;
  return CanonicalHostImpl(host, &is_ip);
}

Result<Url> ParseUrl(std::string_view text) {
  if (text.size() > kMaxUrlBytes) {
    return UrlError("URL exceeds " + std::to_string(kMaxUrlBytes) + " bytes");
  }
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return UrlError("URL contains a control, space or non-ASCII byte");
    }
    if (c == '\\') {
      return UrlError("URL contains a backslash");
    }
  }
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return UrlError("URL must start with http:// or https://");
  }
  Url url;
  for (char c : text.substr(0, sep)) {
    url.scheme += Lower(c);
  }
  if (url.scheme != "http" && url.scheme != "https") {
    return UrlError("scheme must be http or https");
  }
  std::string_view rest = text.substr(sep + 3);
  size_t auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail = auth_end == std::string_view::npos ? "" : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) {
    return UrlError("URL must not contain userinfo");
  }
  std::string_view host_text;
  std::string_view port_text;
  bool has_port = false;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return UrlError("unterminated IPv6 literal");
    }
    host_text = authority.substr(1, close - 1);
    if (host_text.find(':') == std::string_view::npos) {
      return UrlError("brackets may hold only an IPv6 literal");
    }
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return UrlError("unexpected text after the IPv6 literal");
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    host_text = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
  }
  bool is_ip = false;
  CUSTOS_ASSIGN_OR_RETURN(url.host, CanonicalHostImpl(host_text, &is_ip));
  url.host_is_ip = is_ip;
  if (has_port) {
    if (!AllDigits(port_text) || port_text.size() > 5) {
      return UrlError("port must be a number from 1 to 65535");
    }
    int port = std::stoi(std::string(port_text));
    if (port < 1 || port > 65535) {
      return UrlError("port must be a number from 1 to 65535");
    }
    url.port = static_cast<uint16_t>(port);
  } else {
    url.port = DefaultPort(url.scheme);
  }

  tail = tail.substr(0, tail.find('#'));
  size_t q = tail.find('?');
  std::string_view path = tail.substr(0, q);
  std::string_view query = q == std::string_view::npos ? "" : tail.substr(q);
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) {
      j = path.size();
    }
    if (IsEncodedDotSegment(path.substr(i, j - i))) {
      return UrlError("path has a percent-encoded dot segment");
    }
    i = j + 1;
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string norm_path, NormalizeEscapes(path));
  CUSTOS_ASSIGN_OR_RETURN(std::string norm_query, NormalizeEscapes(query));
  url.path_and_query = RemoveDotSegments(norm_path);
  if (url.path_and_query.empty() || url.path_and_query.front() != '/') {
    url.path_and_query.insert(0, "/");
  }
  url.path_and_query += norm_query;
  return url;
}

Result<Url> ResolveReference(const Url& base, std::string_view reference) {
  reference = reference.substr(0, reference.find('#'));
  // A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) followed by ':' before any / ? #.
  size_t colon = reference.find(':');
  size_t first_delim = reference.find_first_of("/?#");
  if (colon != std::string_view::npos && colon > 0 &&
      (first_delim == std::string_view::npos || colon < first_delim)) {
    bool scheme_like = true;
    for (size_t i = 0; i < colon; ++i) {
      char c = Lower(reference[i]);
      bool ok =
          (c >= 'a' && c <= 'z') || (i > 0 && (IsDigit(c) || c == '+' || c == '-' || c == '.'));
      scheme_like = scheme_like && ok;
    }
    if (scheme_like) {
      return ParseUrl(reference);
    }
  }
  if (reference.starts_with("//")) {
    return ParseUrl(base.scheme + ":" + std::string(reference));
  }
  std::string origin = base.scheme + "://" + base.HostForUrl();
  if (base.port != DefaultPort(base.scheme)) {
    origin += ":" + std::to_string(base.port);
  }
  std::string_view base_path = base.path_and_query;
  base_path = base_path.substr(0, base_path.find('?'));
  if (reference.empty()) {
    return ParseUrl(origin + base.path_and_query);
  }
  if (reference.front() == '/') {
    return ParseUrl(origin + std::string(reference));
  }
  if (reference.front() == '?') {
    return ParseUrl(origin + std::string(base_path) + std::string(reference));
  }
  std::string_view dir = base_path.substr(0, base_path.rfind('/') + 1);
  return ParseUrl(origin + std::string(dir) + std::string(reference));
}

}  // namespace custos::effects
