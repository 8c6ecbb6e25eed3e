#include "cli/demo_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace custos::cli {

DemoHttpServer::~DemoHttpServer() { Stop(); }

bool DemoHttpServer::Start() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0)
    return false;
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd_, 16) != 0) {
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
  return true;
}

void DemoHttpServer::Stop() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

void DemoHttpServer::Serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0)
      continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0)
      continue;
    ++requests_;
    // Read the head, then as much body as Content-Length says (bounded).
    std::string req;
    char buf[4096];
    size_t body_at = std::string::npos;
    size_t want = 0;
    while (req.size() < (1 << 20)) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 2000) <= 0)
        break;
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0)
        break;
      req.append(buf, static_cast<size_t>(n));
      if (body_at == std::string::npos) {
        size_t end = req.find("\r\n\r\n");
        if (end == std::string::npos)
          continue;
        body_at = end + 4;
        size_t cl = req.find("Content-Length:");
        if (cl == std::string::npos)
          cl = req.find("content-length:");
        if (cl != std::string::npos && cl < end)
          want = std::strtoul(req.c_str() + cl + 15, nullptr, 10);
      }
      if (req.size() >= body_at + want)
        break;
    }
    std::string status = "404 Not Found", body = "not found\n";
    const size_t sp1 = req.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
    if (sp2 != std::string::npos) {
      const std::string method = req.substr(0, sp1);
      const std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
      if (method == "GET" && pages_.count(path) != 0) {
        status = "200 OK";
        body = pages_.at(path);
      } else if (method == "POST") {
        bytes_posted_ +=
            static_cast<int64_t>(body_at == std::string::npos ? 0 : req.size() - body_at);
        status = "200 OK";
        body = "thanks\n";
      }
    }
    std::string resp = "HTTP/1.1 " + status + "\r\nContent-Type: text/plain\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    ::close(c);
  }
}

}  // namespace custos::cli
