#pragma once
// FakeHttpServer is a tiny HTTP/1.1 server on 127.0.0.1, port 0, for hermetic kernel tests
// (network.send, model.call). Each connection carries one request; the response comes from a
// handler chosen by the test, then the connection is closed. Every request is recorded, so a test
// can assert that a denied call never reached the wire (INV-1).
//
// Ready-made handlers: EchoHandler (method, headers and body back), OpenAiHandler (an
// OpenAI-compatible POST /v1/chat/completions), RedirectHandler (302 to a fixed URL).
//
// Thread-safe: the handler runs on per-connection threads the server owns; requests() copies
// under a lock.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "custos/core/json.h"

namespace custos::testing {

struct HttpExchange {
  std::string method;
  std::string target;
  std::string head;  // request line and headers as received
  std::string body;
};

struct CannedResponse {
  int status = 200;
  std::string headers;  // extra header lines, each ending in "\r\n"
  std::string body;
  bool content_length = true;    // false: no Content-Length, the body ends when the server closes
  bool hold_until_stop = false;  // answer only when the server stops (or after 10 s): a hung peer
};

class FakeHttpServer {
 public:
  using Handler = std::function<CannedResponse(const HttpExchange&)>;

  explicit FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 256);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~FakeHttpServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_.store(true);
    }
    stop_cv_.notify_all();
    accept_thread_.join();
    for (std::thread& t : workers_) {
      t.join();
    }
    ::close(listen_fd_);
  }

  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  uint16_t port() const { return port_; }
  // "127.0.0.1:PORT", as net.connect and secret destinations spell it.
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url(const std::string& path) const { return "http://" + host_port() + path; }

  std::vector<HttpExchange> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }

 private:
  void AcceptLoop() {
    while (!stopping_.load()) {
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

  static bool ReadRequest(int fd, HttpExchange* req) {
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
    const size_t sp1 = req->head.find(' ');
    const size_t sp2 = req->head.find(' ', sp1 + 1);
    req->method = req->head.substr(0, sp1);
    req->target = req->head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string lower = req->head;
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    size_t content_length = 0;
    const size_t cl = lower.find("\r\ncontent-length:");
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

  void Serve(int fd) {
    HttpExchange req;
    if (!ReadRequest(fd, &req)) {
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    const CannedResponse r = handler_(req);
    if (r.hold_until_stop) {
      std::unique_lock<std::mutex> lock(mu_);
      stop_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return stopping_.load(); });
    }
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " X\r\nConnection: close\r\n";
    out += r.headers;
    if (r.content_length) {
      out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    }
    out += "\r\n" + r.body;
    SendAll(fd, out);
    ::shutdown(fd, SHUT_WR);
  }

  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::vector<std::thread> workers_;  // touched only by the accept thread until it has joined
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  std::vector<HttpExchange> requests_;
};

// 200 with "METHOD\n<header lines>\n<body>".
inline FakeHttpServer::Handler EchoHandler() {
  return [](const HttpExchange& req) {
    const size_t first_line_end = req.head.find("\r\n");
    CannedResponse r;
    r.headers = "Content-Type: text/plain\r\n";
    r.body = req.method + "\n" + req.head.substr(first_line_end + 2) + "\n" + req.body;
    return r;
  };
}

// A fixed 200 text body.
inline FakeHttpServer::Handler TextHandler(std::string body) {
  return [body = std::move(body)](const HttpExchange&) {
    CannedResponse r;
    r.headers = "Content-Type: text/plain\r\n";
    r.body = body;
    return r;
  };
}

// 302 to `location` for every request.
inline FakeHttpServer::Handler RedirectHandler(std::string location) {
  return [location = std::move(location)](const HttpExchange&) {
    CannedResponse r;
    r.status = 302;
    r.headers = "Location: " + location + "\r\n";
    return r;
  };
}

// An OpenAI-compatible chat endpoint: POST /v1/chat/completions answers `content` and reports
// `prompt_tokens` / `completion_tokens` as usage; anything else is 404.
inline FakeHttpServer::Handler OpenAiHandler(std::string content, int64_t prompt_tokens,
                                             int64_t completion_tokens) {
  return [content = std::move(content), prompt_tokens, completion_tokens](const HttpExchange& req) {
    CannedResponse r;
    if (req.method != "POST" || req.target != "/v1/chat/completions") {
      r.status = 404;
      r.body = "not found";
      return r;
    }
    const Json body = {
        {"id", "chatcmpl-test"},
        {"object", "chat.completion"},
        {"choices", Json::array({{{"index", 0},
                                  {"message", {{"role", "assistant"}, {"content", content}}},
                                  {"finish_reason", "stop"}}})},
        {"usage",
         {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}}}};
    r.headers = "Content-Type: application/json\r\n";
    r.body = body.dump();
    return r;
  };
}

}  // namespace custos::testing
