#include "custos/effects/resolve.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <string>

#include "custos/effects/url.h"

namespace custos::effects {

Result<std::vector<std::string>> ResolveHost(std::string_view host, uint16_t port) {
  if (port == 0) {
    return Status(Reason::kInvalidArgument, "port must be from 1 to 65535");
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string name, CanonicalHost(host));
  if (std::optional<std::string> ip = CanonicalIp(name)) {
    return std::vector<std::string>{*ip};
  }
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &res);
  std::unique_ptr<struct addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  if (rc != 0) {
    std::string message = "cannot resolve " + name + ": " + ::gai_strerror(rc);
    if (rc == EAI_NONAME || rc == EAI_NODATA) {
      return Status(Reason::kNotFound, std::move(message));
    }
    return Status(Reason::kEffectFailed, std::move(message));
  }
  std::vector<std::string> out;
  for (const struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[NI_MAXHOST];
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) {
      continue;
    }
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) !=
        0) {
      continue;
    }
    std::optional<std::string> ip = CanonicalIp(buf);  // drops "%zone" suffixes
    if (ip && std::find(out.begin(), out.end(), *ip) == out.end()) {
      out.push_back(std::move(*ip));
    }
  }
  if (out.empty()) {
    return Status(Reason::kNotFound, "no usable address for " + name);
  }
  return out;
}

}  // namespace custos::effects
