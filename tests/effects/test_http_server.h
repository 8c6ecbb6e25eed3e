#pragma once
// A tiny HTTP/1.1 server on 127.0.0.1, port 0, for hermetic client tests. Each connection gets
// one canned response chosen by the request path, then is closed. Every request is recorded.
//
// Routes:
//   /ok               200 "hello"
//   /echo             200, body = method, then each header line, a blank line, then the body
//   /redirect/N       302 to /redirect/N-1; /redirect/0 is 200 "done"
//   /to?u=URL         302 to URL (taken verbatim from the query)
//   /see-other        303 to /echo;  /temporary 307 to /echo;  /found 302 to /echo
//   /slow             waits (until the server stops) before answering
//   /huge             200 with a 1 MiB body and Content-Length
//   /stream           200 with a 1 MiB body, no Content-Length (read to close)
//   /big-headers      200 with 200 KiB of headers
//   anything else     404
//
// Confined to the test thread, except the accept loop and per-connection threads it owns.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace custos::effects::test_support {

struct RecordedRequest {
  std::string method;
  std::string target;
  std::string head;  // request line and headers as received
  std::string body;
};

class TestHttpServer {
 public:
  TestHttpServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestHttpServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    accept_thread_.join();
    for (std::thread& t : workers_) {
      t.join();
    }
    ::close(listen_fd_);
  }

  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  uint16_t port() const { return port_; }

  std::vector<RecordedRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
          return;
        }
      }
      pollfd p = {listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      workers_.emplace_back([this, fd] {
        Serve(fd);
        ::close(fd);
      });
    }
  }

  static bool ReadRequest(int fd, RecordedRequest* req) {
    std::string data;
    char buf[4096];
    size_t head_end = std::string::npos;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return false;
      }
      data.append(buf, static_cast<size_t>(n));
    }
    req->head = data.substr(0, head_end + 2);
    size_t sp1 = req->head.find(' ');
    size_t sp2 = req->head.find(' ', sp1 + 1);
    req->method = req->head.substr(0, sp1);
    req->target = req->head.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t content_length = 0;
    std::string lower = req->head;
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    size_t cl = lower.find("\r\ncontent-length:");
    if (cl != std::string::npos) {
      content_length = std::stoul(lower.substr(cl + 17));
    }
    req->body = data.substr(head_end + 4);
    while (req->body.size() < content_length) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return false;
      }
      req->body.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  static void SendAll(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
  }

  static std::string Response(int status, const std::string& extra_headers, const std::string& body,
                              bool with_length = true) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " X\r\nConnection: close\r\n";
    out += extra_headers;
    if (with_length) {
      out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    out += "\r\n";
    out += body;
    return out;
  }

  void Serve(int fd) {
    RecordedRequest req;
    if (!ReadRequest(fd, &req)) {
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    const std::string& t = req.target;
    if (t == "/ok") {
      SendAll(fd, Response(200, "", "hello"));
    } else if (t == "/echo") {
      size_t first_line_end = req.head.find("\r\n");
      std::string headers = req.head.substr(first_line_end + 2);
      SendAll(fd, Response(200, "", req.method + "\n" + headers + "\n" + req.body));
    } else if (t.starts_with("/redirect/")) {
      int n = std::stoi(t.substr(10));
      if (n == 0) {
        SendAll(fd, Response(200, "", "done"));
      } else {
        SendAll(fd, Response(302, "Location: /redirect/" + std::to_string(n - 1) + "\r\n", ""));
      }
    } else if (t.starts_with("/to?u=")) {
      SendAll(fd, Response(302, "Location: " + t.substr(6) + "\r\n", ""));
    } else if (t == "/see-other") {
      SendAll(fd, Response(303, "Location: /echo\r\n", ""));
    } else if (t == "/temporary") {
      SendAll(fd, Response(307, "Location: /echo\r\n", ""));
    } else if (t == "/found") {
      SendAll(fd, Response(302, "Location: /echo\r\n", ""));
    } else if (t == "/slow") {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(10), [this] { return stopping_; });
      lock.unlock();
      SendAll(fd, Response(200, "", "late"));
    } else if (t == "/huge") {
      SendAll(fd, Response(200, "", std::string(1 << 20, 'h')));
    } else if (t == "/stream") {
      SendAll(fd, Response(200, "", std::string(1 << 20, 's'), false));
    } else if (t == "/big-headers") {
      std::string headers;
      for (int i = 0; i < 2000; ++i) {
        headers += "X-Filler-" + std::to_string(i) + ": " + std::string(90, 'f') + "\r\n";
      }
      SendAll(fd, Response(200, headers, "ok"));
    } else {
      SendAll(fd, Response(404, "", "not found"));
    }
    ::shutdown(fd, SHUT_WR);
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::vector<std::thread> workers_;  // touched only by the accept thread until it has joined
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<RecordedRequest> requests_;
};

}  // namespace custos::effects::test_support
