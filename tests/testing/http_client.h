#pragma once
// A minimal blocking HTTP/1.1 client over TCP or a Unix socket, for custosd tests and the load
// benchmark: it writes exactly the bytes it is given (so tests can send malformed or slow
// requests) and reads one response (Content-Length or until close). Not a general HTTP client.
//
// Confined: one RawConnection per thread.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>

namespace custos::testing {

struct HttpReply {
  int status = 0;                              // 0: no (complete) response
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
};

// What sits between a RawConnection and its socket: nothing (plain), or TLS (tls_client.h).
class ConnectionLayer {
 public:
  virtual ~ConnectionLayer() = default;
  virtual ssize_t Send(const char* data, size_t n) = 0;  // <= 0: failed
  virtual ssize_t Recv(char* data, size_t n) = 0;        // <= 0: closed or failed
  virtual bool Pending() const = 0;                      // decrypted bytes already buffered
};

class RawConnection {
 public:
  static RawConnection Tcp(uint16_t port) {
    RawConnection c;
    c.fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c.fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      c.Close();
    int one = 1;
    if (c.fd_ >= 0)
      ::setsockopt(c.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
  }
  static RawConnection Unix(const std::string& path) {
    RawConnection c;
    c.fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (::connect(c.fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      c.Close();
    return c;
  }
  RawConnection() = default;
  RawConnection(RawConnection&& o) noexcept
      : fd_(o.fd_), buf_(std::move(o.buf_)), layer_(std::move(o.layer_)) {
    o.fd_ = -1;
  }
  RawConnection& operator=(RawConnection&& o) noexcept {
    Close();
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    layer_ = std::move(o.layer_);
    o.fd_ = -1;
    return *this;
  }
  ~RawConnection() { Close(); }

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // From now on every byte goes through `layer` (e.g. after a TLS handshake on fd()).
  void SetLayer(std::unique_ptr<ConnectionLayer> layer) { layer_ = std::move(layer); }
  void Close() {
    layer_.reset();
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = layer_ ? layer_->Send(bytes.data() + off, bytes.size() - off)
                               : ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // The bytes of one request with Content-Length; `headers` are extra "Name: value\r\n" lines.
  static std::string Format(const std::string& method, const std::string& target,
                            const std::string& body = "", const std::string& headers = "",
                            const std::string& content_type = "application/json") {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: custosd\r\n" + headers;
    if (!body.empty() || method == "POST") {
      r += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
    }
    return r + "\r\n" + body;
  }

  // Reads one response; status 0 if the peer closed first or `timeout_ms` passed.
  HttpReply Read(int timeout_ms = 10'000) {
    HttpReply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(timeout_ms))
        return r;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12)
      return r;
    const int status = std::atoi(status_line.c_str() + 9);
    while (line_end != std::string::npos && line_end < head.size()) {
      const size_t next = head.find("\r\n", line_end + 2);
      const std::string line = head.substr(
          line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ')
          ++v;
        r.headers[name] = line.substr(v);
      }
      line_end = next;
    }
    auto cl = r.headers.find("content-length");
    if (cl != r.headers.end()) {
      const size_t n = std::stoul(cl->second);
      while (buf_.size() < n) {
        if (!Fill(timeout_ms))
          return r;
      }
      r.body = buf_.substr(0, n);
      buf_.erase(0, n);
    } else {
      while (Fill(timeout_ms)) {
      }
      r.body = std::move(buf_);
      buf_.clear();
    }
    r.status = status;
    return r;
  }

  // Reads whatever arrives within `timeout_ms` (for streams); "" at close or timeout.
  std::string ReadSome(int timeout_ms) {
    if (buf_.empty() && !Fill(timeout_ms))
      return "";
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

  // True if the peer closed the connection within `timeout_ms`.
  bool WaitClosed(int timeout_ms) {
    while (Fill(timeout_ms)) {
    }
    return closed_;
  }

  HttpReply Call(const std::string& method, const std::string& target, const std::string& body = "",
                 const std::string& headers = "") {
    if (!Send(Format(method, target, body, headers)))
      return {};
    return Read();
  }

 private:
  bool Fill(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (!(layer_ && layer_->Pending()) && ::poll(&p, 1, timeout_ms) <= 0)
      return false;
    char tmp[16384];
    const ssize_t n = layer_ ? layer_->Recv(tmp, sizeof(tmp)) : ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  std::unique_ptr<ConnectionLayer> layer_;
  bool closed_ = false;
};

}  // namespace custos::testing
