#include "custos/server/server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "server/tls.h"

namespace custos::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using unix_socket = net::local::stream_protocol;

template <class T>
struct IsTls : std::false_type {};
template <class S>
struct IsTls<beast::ssl_stream<S>> : std::true_type {};

namespace {

// How often an audit tail polls the log for new entries.
constexpr auto kTailPoll = std::chrono::milliseconds(100);

std::string Serialize(const HttpResponse& r, bool keep_alive, bool stream) {
  std::string out;
  out.reserve(r.body.size() + 192);
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += std::string(http::obsolete_reason(http::int_to_status(static_cast<unsigned>(r.status))));
  out += "\r\nServer: custosd\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\n";
  for (const auto& [k, v] : r.headers) {
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  if (stream) {
    // Server-sent events: the body runs until the connection closes.
    out += "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    return out;
  }
  out += "Content-Length: ";
  out += std::to_string(r.body.size());
  out += keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  out += r.body;
  return out;
}

bool IsLoopback(const net::ip::address& a) { return a.is_loopback(); }

}  // namespace

struct Server::Impl {
  Api* api = nullptr;
  Metrics* metrics = nullptr;
  ServerOptions options;
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> in_flight{0};  // requests handed to workers, until their response is written
  std::atomic<int64_t> streams{0};    // streamed calls running (decision 028)
  std::atomic<bool> draining{false};
  uint16_t port = 0;
  std::filesystem::path socket_path;
  std::once_flag shutdown_once;
  // Declared last: destroyed first, while the counters above still exist for the sessions' dtors.
  net::io_context ioc;
  net::thread_pool workers;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<unix_socket::acceptor> unix_acceptor;
  std::shared_ptr<net::ssl::context> tls;  // set: the TCP listener speaks only TLS
  net::strand<net::io_context::executor_type> accept_strand;
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;

  explicit Impl(int threads_hint, int worker_count)
      : ioc(threads_hint),
        workers(static_cast<size_t>(worker_count)),
        accept_strand(net::make_strand(ioc)) {}

  template <class Acceptor>
  void Accept(Acceptor& acceptor);
};

namespace {

// One connection. `Socket` is a plain tcp/unix socket or a TLS stream over TCP; timeouts,
// cancellation and close act on its lowest layer (the OS socket).
template <class Socket>
class Session : public std::enable_shared_from_this<Session<Socket>> {
  static constexpr bool kTls = IsTls<Socket>::value;

 public:
  Session(Server::Impl& srv, Socket socket, std::optional<PeerCred> peer)
      : srv_(srv),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        tick_timer_(socket_.get_executor()),
        expire_timer_(socket_.get_executor()),
        peer_(peer) {
    srv_.connections.fetch_add(1);
    srv_.metrics->ConnectionOpened();
  }
  ~Session() {
    srv_.connections.fetch_sub(1);
    srv_.metrics->ConnectionClosed();
  }

  void Start() {
    if constexpr (kTls) {
      Handshake();
    } else {
      ReadHeader();
    }
  }

 private:
  void Arm(int64_t ms) {
    timed_out_ = false;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec)
        return;  // cancelled: the read finished in time
      self->timed_out_ = true;
      beast::error_code ignored;
      beast::get_lowest_layer(self->socket_).cancel(ignored);
    });
  }

  // The TLS handshake, under the header timeout (a client that opens a connection and sends
  // nothing, or a trickle of handshake bytes, is closed like a slowloris).
  void Handshake() {
    Arm(srv_.options.limits.header_timeout_ms);
    if constexpr (kTls) {
      socket_.async_handshake(
          net::ssl::stream_base::server,
          [self = this->shared_from_this()](beast::error_code ec) { self->OnHandshake(ec); });
    }
  }

  void OnHandshake(beast::error_code ec) {
    timer_.cancel();
    if (!ec) {
      handshake_done_ = true;
      ReadHeader();
      return;
    }
    srv_.metrics->TlsHandshakeFailed();
    if (!timed_out_ && ec.category() == net::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST) {
      // Plain HTTP on the TLS port: say so in plain text (nothing has been encrypted yet), then
      // close. Nothing reached the API.
      out_ = Serialize(
          ErrorResponse(Status(Reason::kMalformedHttp, "this port speaks TLS: use https://")),
          false, false);
      srv_.metrics->RequestStarted();
      srv_.metrics->RequestFinished("unmatched", 400, 0);
      net::async_write(
          beast::get_lowest_layer(socket_), net::buffer(out_),
          [self = this->shared_from_this()](beast::error_code, size_t) { self->CloseSocket(); });
      return;
    }
    CloseSocket();  // garbage, a timeout, or a client that gave up: no response is possible
  }

  void ReadHeader() {
    if (srv_.draining.load()) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(srv_.options.limits.max_header_bytes));
    parser_->body_limit(srv_.options.limits.max_body_bytes);
    Arm(srv_.options.limits.header_timeout_ms);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Maps a read failure to its response (or a silent close).
  void OnReadError(beast::error_code ec) {
    timer_.cancel();
    const bool started = parser_ && parser_->got_some();
    if (timed_out_) {
      if (started || buffer_.size() > 0) {
        Reject(Status(Reason::kRequestTimeout, "the request did not arrive in time"));
      } else {
        Close();  // an idle keep-alive connection
      }
      return;
    }
    if (ec == http::error::body_limit) {
      Reject(Status(
          Reason::kPayloadTooLarge,
          "the body exceeds " + std::to_string(srv_.options.limits.max_body_bytes) + " bytes",
          "/body"));
    } else if (ec == http::error::header_limit) {
      Reject(Status(
          Reason::kHeadersTooLarge,
          "the headers exceed " + std::to_string(srv_.options.limits.max_header_bytes) + " bytes",
          "/headers"));
    } else if (ec == http::error::end_of_stream || ec == net::error::eof ||
               ec == net::error::connection_reset || ec == net::error::operation_aborted ||
               !started) {
      Close();  // the client went away (possibly mid-request): nothing reached the kernel
    } else if (ec == http::error::partial_message) {
      Close();
    } else {
      Reject(Status(Reason::kMalformedHttp, "not a valid HTTP/1.1 request: " + ec.message()));
    }
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    const auto& h = parser_->get();
    if (static_cast<size_t>(std::distance(h.begin(), h.end())) > srv_.options.limits.max_headers) {
      timer_.cancel();
      Reject(
          Status(Reason::kHeadersTooLarge,
                 "more than " + std::to_string(srv_.options.limits.max_headers) + " header fields",
                 "/headers"));
      return;
    }
    if (parser_->is_done()) {
      OnBody({});
      return;
    }
    timer_.cancel();
    Arm(srv_.options.limits.body_timeout_ms);
    if (auto it = h.find(http::field::expect);
        it != h.end() && beast::iequals(it->value(), "100-continue")) {
      // curl and others wait for this before sending a body over 1 KiB; the body cap has already
      // been checked against Content-Length by the parser.
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(socket_, net::buffer(kContinue),
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) {
                           self->OnReadError(ec);
                           return;
                         }
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    timer_.cancel();
    http::request<http::string_body> msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    if (auto it = msg.find(http::field::content_type); it != msg.end())
      req.content_type = std::string(it->value());
    if (auto it = msg.find(http::field::authorization); it != msg.end())
      req.authorization = std::string(it->value());
    if (auto it = msg.find(http::field::accept); it != msg.end())
      req.accept = std::string(it->value());
    for (auto [name, field] : {std::pair{"Custos-Agent", &req.signed_headers.agent},
                               std::pair{"Custos-Timestamp", &req.signed_headers.timestamp},
                               std::pair{"Custos-Nonce", &req.signed_headers.nonce},
                               std::pair{"Custos-Signature", &req.signed_headers.signature}}) {
      if (auto it = msg.find(name); it != msg.end())
        *field = std::string(it->value());
    }
    req.body = std::move(msg.body());
    req.peer = peer_;
    req.transport = kTls ? "tls" : peer_ ? "unix" : "tcp";
    if (const Mount* mount = FindMount(req.target)) {
      StartMount(*mount, msg, std::move(req));
      return;
    }
    srv_.in_flight.fetch_add(1);
    srv_.metrics->RequestStarted();
    const auto t0 = std::chrono::steady_clock::now();
    net::post(srv_.workers, [self = this->shared_from_this(), req = std::move(req), t0]() mutable {
      HttpResponse r =
          self->srv_.api != nullptr
              ? self->srv_.api->Handle(req)
              : ErrorResponse(Status(Reason::kRouteNotFound, "no route for this path", "/path"));
      if (r.events) {
        if (self->srv_.streams.fetch_add(1) >=
            static_cast<int64_t>(self->srv_.options.limits.max_streams)) {
          self->srv_.streams.fetch_sub(1);
          std::string route = std::move(r.route);
          r = ErrorResponse(Status(Reason::kUnavailable,
                                   "too many streamed calls (max " +
                                       std::to_string(self->srv_.options.limits.max_streams) +
                                       "); retry, or call without streaming"));
          r.route = std::move(route);
        } else {
          self->RunEvents(std::move(r), t0);
          self->srv_.streams.fetch_sub(1);
          return;
        }
      }
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
      self->srv_.metrics->RequestFinished(r.route, r.status, us);
      net::post(self->socket_.get_executor(),
                [self, r = std::move(r)]() mutable { self->Respond(std::move(r)); });
    });
  }

  class Sink;

  // On a worker: a streamed call (decision 028). The head and every event are queued on the
  // strand in order; the call runs here, to its recorded outcome, whatever the client does.
  void RunEvents(HttpResponse r, std::chrono::steady_clock::time_point t0) {
    std::shared_ptr<EventSource> events = r.events;
    r.events.reset();
    net::post(socket_.get_executor(),
              [self = this->shared_from_this(), r = std::move(r), events, t0]() mutable {
                self->BeginEvents(std::move(r), events, t0);
              });
    Sink sink(this->shared_from_this());
    events->Run(sink);
    net::post(socket_.get_executor(), [self = this->shared_from_this()] {
      self->events_done_ = true;
      self->Enqueue(std::string(), true);
    });
  }

  // On the strand: the head, the client-gone probe and the progress and overall timers.
  void BeginEvents(HttpResponse head, std::shared_ptr<EventSource> events,
                   std::chrono::steady_clock::time_point t0) {
    events_ = std::move(events);
    mount_counted_ = false;
    mount_began_ = true;
    stream_ = true;
    mount_t0_ = t0;
    mount_route_ = head.route;
    Enqueue(Serialize(head, false, true), false);
    socket_.async_read_some(net::buffer(probe_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec)
                                self->MountClosed();
                            });
    ArmTick();
    expire_timer_.expires_after(std::chrono::milliseconds(srv_.options.limits.stream_timeout_ms));
    expire_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->mount_closed_ || self->events_done_ || !self->events_)
        return;
      Sink sink(self);
      self->events_->Expire(sink);
      // Expire() queued its event through the sink (a post): end after it.
      net::post(self->socket_.get_executor(), [self] { self->Enqueue(std::string(), true); });
    });
  }

  void ArmTick() {
    tick_timer_.expires_after(std::chrono::milliseconds(srv_.options.limits.stream_progress_ms));
    tick_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->mount_closed_ || self->events_done_ || !self->events_)
        return;
      Sink sink(self);
      self->events_->Tick(sink);
      self->ArmTick();
    });
  }

  void Respond(HttpResponse r) {
    const bool keep = keep_alive_ && !srv_.draining.load() && !r.stream_tail;
    out_ = Serialize(r, keep, r.stream_tail);
    if (r.stream_tail) {
      tail_from_ = r.tail_from_seq;
      tail_agent_ = r.tail_agent;
      last_beat_ = std::chrono::steady_clock::now();
    }
    const bool tail = r.stream_tail;
    net::async_write(socket_, net::buffer(out_),
                     [self = this->shared_from_this(), keep, tail](beast::error_code ec, size_t) {
                       self->srv_.in_flight.fetch_sub(1);
                       if (ec) {
                         self->Close();
                       } else if (tail) {
                         self->TailTick();
                       } else if (keep) {
                         self->ReadHeader();
                       } else {
                         self->Close();
                       }
                     });
  }

  // Answers an error the transport found itself, then closes the connection.
  void Reject(const Status& s) {
    HttpResponse r = ErrorResponse(s);
    srv_.metrics->RequestStarted();
    srv_.metrics->RequestFinished("unmatched", r.status, 0);
    out_ = Serialize(r, false, false);
    net::async_write(
        socket_, net::buffer(out_),
        [self = this->shared_from_this()](beast::error_code, size_t) { self->Close(); });
  }

  // One step of GET /v1/audit/tail: read new entries on a worker, write them (or a heartbeat).
  void TailTick() {
    if (srv_.draining.load()) {
      Close();
      return;
    }
    net::post(srv_.workers, [self = this->shared_from_this()]() {
      int64_t from = self->tail_from_;
      std::string events = self->srv_.api->TailEvents(&from, self->tail_agent_, 256);
      net::post(self->socket_.get_executor(), [self, from, events = std::move(events)]() mutable {
        self->tail_from_ = from;
        const auto now = std::chrono::steady_clock::now();
        if (events.empty() &&
            now - self->last_beat_ >=
                std::chrono::milliseconds(self->srv_.options.limits.sse_heartbeat_ms)) {
          events = ": heartbeat\n\n";
        }
        if (events.empty()) {
          self->TailWait();
          return;
        }
        self->last_beat_ = now;
        self->out_ = std::move(events);
        net::async_write(self->socket_, net::buffer(self->out_),
                         [self](beast::error_code ec, size_t) {
                           if (ec) {
                             self->Close();
                           } else {
                             self->TailWait();
                           }
                         });
      });
    });
  }

  void TailWait() {
    timer_.expires_after(kTailPoll);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->TailTick();
    });
  }

  const Mount* FindMount(std::string_view target) const {
    const std::string_view path = target.substr(0, target.find('?'));
    for (const Mount& m : srv_.options.mounts) {
      if (path == m.path)
        return &m;
    }
    return nullptr;
  }

  class Stream;

  void StartMount(const Mount& mount, const http::request<http::string_body>& msg,
                  HttpRequest&& req) {
    MountRequest mr;
    mr.method = std::move(req.method);
    mr.target = std::move(req.target);
    mr.body = std::move(req.body);
    mr.peer = req.peer;
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (char& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      mr.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    srv_.in_flight.fetch_add(1);
    srv_.metrics->RequestStarted();
    mount_counted_ = false;  // per request: a keep-alive connection serves several
    mount_began_ = false;
    mount_t0_ = std::chrono::steady_clock::now();
    mount_route_ = mount.path;
    auto stream = std::make_shared<Stream>(this->shared_from_this());
    net::post(srv_.workers, [handler = mount.handler, mr = std::move(mr), stream]() mutable {
      handler(std::move(mr), std::move(stream));
    });
  }

  // On the strand: queue bytes; `then` runs after they (and all before them) are written.
  void Enqueue(std::string bytes, bool last) {
    if (mount_closed_ || close_after_queue_)
      return;  // gone, or already ended: later bytes are dropped
    queue_.push_back(std::move(bytes));
    if (last)
      close_after_queue_ = true;
    if (!writing_)
      WriteNext();
  }

  void WriteNext() {
    if (queue_.empty()) {
      writing_ = false;
      if (close_after_queue_)
        MountClosed();
      return;
    }
    writing_ = true;
    out_ = std::move(queue_.front());
    queue_.pop_front();
    net::async_write(socket_, net::buffer(out_),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->MountClosed();
                         return;
                       }
                       self->WriteNext();
                     });
  }

  void MountFinished(int status) {
    if (mount_counted_)
      return;
    mount_counted_ = true;
    srv_.in_flight.fetch_sub(1);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - mount_t0_)
                        .count();
    srv_.metrics->RequestFinished(mount_route_, status, us);
  }

  void MountRespond(HttpResponse r) {
    if (mount_closed_ || mount_began_)
      return;
    MountFinished(r.status);
    const bool keep = keep_alive_ && !srv_.draining.load();
    out_ = Serialize(r, keep, false);
    net::async_write(socket_, net::buffer(out_),
                     [self = this->shared_from_this(), keep](beast::error_code ec, size_t) {
                       if (ec || !keep) {
                         self->MountClosed();
                       } else {
                         self->ReadHeader();
                       }
                     });
  }

  void MountBegin(HttpResponse head) {
    if (mount_closed_ || mount_began_)
      return;
    mount_began_ = true;
    MountFinished(head.status);
    Enqueue(Serialize(head, false, true), false);
    // The client sends nothing more on a streamed response: a read that completes means it left.
    socket_.async_read_some(net::buffer(probe_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec)
                                self->MountClosed();
                            });
  }

  void MountClosed() {
    if (mount_closed_)
      return;
    mount_closed_ = true;
    closed_flag_->store(true);
    // A streamed call answered 200 (its head went out); a mount that never began, 499.
    MountFinished(stream_ ? 200 : 499);
    queue_.clear();
    tick_timer_.cancel();
    expire_timer_.cancel();
    events_.reset();
    Close();
    if (on_close_) {
      auto fn = std::move(on_close_);
      on_close_ = nullptr;
      fn();
    }
  }

  void Close() {
    if constexpr (kTls) {
      if (handshake_done_ && !closing_) {
        // Send close_notify so a client reading to EOF (audit tail) sees a clean end; a peer
        // that never answers it is cut off after a second.
        closing_ = true;
        timer_.expires_after(std::chrono::seconds(1));
        timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
          if (!ec)
            self->CloseSocket();
        });
        socket_.async_shutdown(
            [self = this->shared_from_this()](beast::error_code) { self->CloseSocket(); });
        return;
      }
      if (closing_)
        return;
    }
    CloseSocket();
  }

  void CloseSocket() {
    beast::error_code ec;
    timer_.cancel();
    auto& s = beast::get_lowest_layer(socket_);
    s.shutdown(net::socket_base::shutdown_send, ec);
    s.close(ec);
  }

  Server::Impl& srv_;
  Socket socket_;
  net::steady_timer timer_;
  net::steady_timer tick_timer_;    // a streamed call's progress ticks
  net::steady_timer expire_timer_;  // a streamed call's overall timeout
  std::optional<PeerCred> peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool timed_out_ = false;
  bool keep_alive_ = false;
  bool handshake_done_ = false;  // TLS only
  bool closing_ = false;         // TLS only: close_notify sent
  std::string out_;
  int64_t tail_from_ = 0;
  std::string tail_agent_;
  std::chrono::steady_clock::time_point last_beat_;
  // A mounted route's response (on the strand).
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool close_after_queue_ = false;
  bool mount_began_ = false;
  bool mount_closed_ = false;
  bool mount_counted_ = false;
  std::function<void()> on_close_;
  std::shared_ptr<std::atomic<bool>> closed_flag_ = std::make_shared<std::atomic<bool>>(false);
  std::chrono::steady_clock::time_point mount_t0_;
  std::string mount_route_;
  char probe_[64];
  // A streamed call (on the strand): its source while it streams, and whether Run() returned.
  std::shared_ptr<EventSource> events_;
  bool stream_ = false;
  bool events_done_ = false;
};

// What a streamed call writes through: each write is posted to the connection's strand.
template <class Socket>
class Session<Socket>::Sink final : public EventSink {
 public:
  explicit Sink(std::shared_ptr<Session> s) : s_(std::move(s)) {}
  void Write(std::string events) override {
    net::post(s_->socket_.get_executor(),
              [s = s_, e = std::move(events)]() mutable { s->Enqueue(std::move(e), false); });
  }
  bool closed() const override { return s_->closed_flag_->load(); }

 private:
  std::shared_ptr<Session> s_;
};

// The handle a mount answers through: every call is posted to the connection's strand.
template <class Socket>
class Session<Socket>::Stream final : public MountStream {
 public:
  explicit Stream(std::shared_ptr<Session> s) : s_(std::move(s)), closed_(s_->closed_flag_) {}
  void Respond(HttpResponse r) override {
    net::post(s_->socket_.get_executor(),
              [s = s_, r = std::move(r)]() mutable { s->MountRespond(std::move(r)); });
  }
  void Begin(HttpResponse head) override {
    net::post(s_->socket_.get_executor(),
              [s = s_, h = std::move(head)]() mutable { s->MountBegin(std::move(h)); });
  }
  void Write(std::string chunk) override {
    net::post(s_->socket_.get_executor(),
              [s = s_, c = std::move(chunk)]() mutable { s->Enqueue(std::move(c), false); });
  }
  void End() override {
    net::post(s_->socket_.get_executor(), [s = s_] {
      if (!s->mount_began_) {
        s->MountClosed();
        return;
      }
      s->Enqueue(std::string(), true);
    });
  }
  bool closed() const override { return closed_->load(); }
  void OnClose(std::function<void()> fn) override {
    net::post(s_->socket_.get_executor(), [s = s_, fn = std::move(fn)]() mutable {
      if (s->mount_closed_) {
        fn();
      } else {
        s->on_close_ = std::move(fn);
      }
    });
  }

 private:
  std::shared_ptr<Session> s_;
  std::shared_ptr<std::atomic<bool>> closed_;
};

// SO_PEERCRED of a Unix-socket peer; nullopt on TCP (or if the kernel will not say).
template <class Socket>
std::optional<PeerCred> PeerOf(Socket& s) {
  if constexpr (std::is_same_v<typename Socket::protocol_type, unix_socket>) {
    struct ucred cred {};
    socklen_t len = sizeof(cred);
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
      return std::nullopt;  // unauthenticated unless it sends an API key
    return PeerCred{static_cast<uint32_t>(cred.uid), static_cast<int32_t>(cred.pid)};
  } else {
    return std::nullopt;
  }
}

}  // namespace

template <class Acceptor>
void Server::Impl::Accept(Acceptor& acceptor) {
  acceptor.async_accept(
      net::make_strand(ioc), [this, &acceptor](beast::error_code ec, auto socket) {
        if (ec == net::error::operation_aborted || !acceptor.is_open())
          return;  // shutting down
        if (!ec) {
          using Socket = decltype(socket);
          if (connections.load() >= static_cast<int64_t>(options.limits.max_connections)) {
            // Over the cap: a precise 503, written without reading the request, then close. (On
            // a TLS listener the client cannot read plain text, so it just sees the close.)
            metrics->ConnectionRejected();
            if (std::is_same_v<typename Socket::protocol_type, tcp> && tls) {
              beast::error_code ignored;
              socket.close(ignored);
              Accept(acceptor);
              return;
            }
            auto s = std::make_shared<Socket>(std::move(socket));
            auto text = std::make_shared<std::string>(Serialize(
                ErrorResponse(Status(Reason::kUnavailable,
                                     "too many connections (max " +
                                         std::to_string(options.limits.max_connections) + ")")),
                false, false));
            net::async_write(*s, net::buffer(*text), [s, text](beast::error_code, size_t) {
              beast::error_code ignored;
              s->shutdown(net::socket_base::shutdown_send, ignored);
              s->close(ignored);
            });
          } else if constexpr (std::is_same_v<typename Socket::protocol_type, tcp>) {
            // No Nagle: a streamed response is a head then one write per event, and Nagle would
            // hold each small write until the previous one is acknowledged (a delayed ACK: up to
            // 40 ms per event).
            beast::error_code nodelay_ec;
            socket.set_option(tcp::no_delay(true), nodelay_ec);
            if (tls) {
              using Tls = beast::ssl_stream<Socket>;
              std::make_shared<Session<Tls>>(*this, Tls(std::move(socket), *tls), std::nullopt)
                  ->Start();
            } else {
              std::make_shared<Session<Socket>>(*this, std::move(socket), std::nullopt)->Start();
            }
          } else {
            std::optional<PeerCred> peer = PeerOf(socket);
            std::make_shared<Session<Socket>>(*this, std::move(socket), peer)->Start();
          }
        }
        // Accept errors (e.g. EMFILE) are transient: keep accepting.
        Accept(acceptor);
      });
}

namespace {

Result<tcp::endpoint> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
    return Status(Reason::kInvalidArgument, "--listen must be HOST:PORT", "listen");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost")
    host = "127.0.0.1";
  beast::error_code ec;
  const net::ip::address addr = net::ip::make_address(host, ec);
  if (ec)
    return Status(Reason::kInvalidArgument, "not an IP address: " + host, "listen");
  const std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (*end != '\0' || port > 65535)
    return Status(Reason::kInvalidArgument, "not a port: " + port_text, "listen");
  return tcp::endpoint(addr, static_cast<uint16_t>(port));
}

Status CheckEndpoint(const tcp::endpoint& ep, bool tls, bool tcp_auth) {
  if (IsLoopback(ep.address()))
    return Status::Ok();
  std::string missing;
  if (!tls)
    missing = "TLS ([server.tls] cert and key, or --tls-cert/--tls-key)";
  if (!tcp_auth) {
    missing += missing.empty() ? "" : " and ";
    missing += "a TCP auth method (`custos apikey add AGENT` or `custos agentkey add AGENT KEY`)";
  }
  if (missing.empty())
    return Status::Ok();
  return Status(Reason::kInsecureBind,
                "refusing to listen on non-loopback " + ep.address().to_string() + " without " +
                    missing + "; use a loopback address or the Unix socket",
                "listen");
}

// Removes a stale socket file; kAlreadyExists if a server answers on it or it is not a socket.
Status ClearStaleSocket(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return Status::Ok();
  if (!S_ISSOCK(st.st_mode)) {
    return Status(Reason::kAlreadyExists, "exists and is not a socket; refusing to replace it",
                  path.string());
  }
  net::io_context probe_ctx;
  unix_socket::socket probe(probe_ctx);
  beast::error_code ec;
  probe.connect(unix_socket::endpoint(path.string()), ec);
  if (!ec) {
    return Status(Reason::kAlreadyExists, "another server is listening on this socket",
                  path.string());
  }
  if (::unlink(path.c_str()) != 0)
    return Status(Reason::kIoError, "cannot remove the stale socket", path.string());
  return Status::Ok();
}

}  // namespace

Status CheckListenAddress(const std::string& listen, bool tls, bool tcp_auth) {
  CUSTOS_ASSIGN_OR_RETURN(tcp::endpoint ep, ParseListen(listen));
  return CheckEndpoint(ep, tls, tcp_auth);
}

Result<std::unique_ptr<Server>> Server::Start(Api* api, Metrics* metrics, ServerOptions options) {
  if (options.listen.empty() && options.socket.empty())
    return Status(Reason::kInvalidArgument, "nothing to listen on (--listen and/or --socket)");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return Status(Reason::kInvalidArgument,
                  std::string("TLS needs both a certificate and a key (") +
                      (options.tls_cert.empty() ? "--tls-cert" : "--tls-key") + " is missing)",
                  "tls");
  }
  auto impl = std::make_unique<Impl>(std::max(1, options.threads), std::max(1, options.workers));
  impl->api = api;
  impl->metrics = metrics;
  impl->options = options;
  beast::error_code ec;
  if (!options.listen.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(tcp::endpoint ep, ParseListen(options.listen));
    CUSTOS_RETURN_IF_ERROR(CheckEndpoint(ep, !options.tls_cert.empty(), options.tcp_auth));
    if (!options.tls_cert.empty()) {
      CUSTOS_ASSIGN_OR_RETURN(impl->tls, MakeTlsContext(options.tls_cert, options.tls_key));
    }
    impl->tcp_acceptor.emplace(impl->accept_strand);
    auto& a = *impl->tcp_acceptor;
    a.open(ep.protocol(), ec);
    if (!ec)
      a.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec)
      a.bind(ep, ec);
    if (!ec)
      a.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(Reason::kIoError, "cannot listen on " + options.listen + ": " + ec.message(),
                    "listen");
    }
    impl->port = a.local_endpoint().port();
  }
  if (!options.socket.empty()) {
    if (options.socket.string().size() >= sizeof(sockaddr_un::sun_path))
      return Status(Reason::kInvalidArgument, "socket path too long", options.socket.string());
    CUSTOS_RETURN_IF_ERROR(ClearStaleSocket(options.socket));
    impl->unix_acceptor.emplace(impl->accept_strand);
    auto& a = *impl->unix_acceptor;
    // The socket file is 0600 from the moment it exists: no window where others could connect.
    const mode_t old_mask = ::umask(0177);
    a.open(unix_socket(), ec);
    if (!ec)
      a.bind(unix_socket::endpoint(options.socket.string()), ec);
    ::umask(old_mask);
    if (!ec)
      a.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(Reason::kIoError,
                    "cannot listen on " + options.socket.string() + ": " + ec.message(),
                    options.socket.string());
    }
    impl->socket_path = options.socket;
  }
  Impl* p = impl.get();
  net::post(impl->accept_strand, [p] {
    if (p->tcp_acceptor)
      p->Accept(*p->tcp_acceptor);
    if (p->unix_acceptor)
      p->Accept(*p->unix_acceptor);
  });
  impl->work.emplace(impl->ioc.get_executor());
  for (int i = 0; i < std::max(1, options.threads); ++i)
    impl->threads.emplace_back([p] { p->ioc.run(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

uint16_t Server::tcp_port() const { return impl_->port; }
const std::filesystem::path& Server::socket_path() const { return impl_->socket_path; }

void Server::Shutdown() {
  Impl* p = impl_.get();
  std::call_once(p->shutdown_once, [p] {
    p->draining.store(true);
    p->api->SetDraining();
    std::promise<void> closed;
    net::post(p->accept_strand, [p, &closed] {
      beast::error_code ec;
      if (p->tcp_acceptor)
        p->tcp_acceptor->close(ec);
      if (p->unix_acceptor)
        p->unix_acceptor->close(ec);
      closed.set_value();
    });
    closed.get_future().wait();
    // Requests already handed to the kernel finish and get their responses.
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(p->options.limits.drain_timeout_ms);
    while (p->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    p->workers.join();
    p->work.reset();
    p->ioc.stop();
    for (std::thread& t : p->threads)
      t.join();
    p->threads.clear();
    if (!p->socket_path.empty()) {
      std::error_code ec;
      std::filesystem::remove(p->socket_path, ec);
    }
  });
}

}  // namespace custos::server
