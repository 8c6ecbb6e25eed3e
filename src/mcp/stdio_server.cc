#include "custos/mcp/stdio_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "custos/crypto/sha256.h"
#include "custos/mcp/era.h"

extern char** environ;

namespace custos::mcp {
namespace {

constexpr size_t kStderrKeep = 64 * 1024;
constexpr size_t kStderrExcerpt = 512;
constexpr int64_t kMaxBackoffMs = 10'000;
constexpr int64_t kHealthyAfterMs = 10'000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status Unavailable(const ServerConfig& c, const std::string& why) {
  return Status(Reason::kMcpServerUnavailable, "MCP server '" + c.name + "' " + why);
}

void CloseFd(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

}  // namespace

bool IsSupportedVersion(std::string_view v) {
  for (std::string_view s : kSupportedVersions) {
    if (s == v)
      return true;
  }
  return false;
}

struct StdioServer::Proc {
  pid_t pid = -1;
  int in_fd = -1;  // our end of the child's stdin
  int out_fd = -1;
  int err_fd = -1;
  int64_t started_ms = 0;
  std::thread reader;
  std::thread err_reader;
  std::mutex err_mu;
  std::string stderr_kept;
  size_t stderr_total = 0;
  bool exited = false;  // guarded by StdioServer::mu_
  int64_t notif_window_ms = 0;
  int64_t notif_count = 0;
  int64_t notif_dropped = 0;

  ~Proc() {
    for (int* fd : {&in_fd, &out_fd, &err_fd})
      CloseFd(*fd);
  }
};

StdioServer::StdioServer(ServerConfig config, Callbacks callbacks)
    : config_(std::move(config)), cb_(std::move(callbacks)) {}

StdioServer::~StdioServer() {
  Stop();
  std::vector<std::shared_ptr<Proc>> old;
  {
    std::lock_guard lock(mu_);
    old.swap(old_procs_);
    if (proc_)
      old.push_back(proc_);
    proc_.reset();
  }
  for (auto& p : old) {
    if (p->reader.joinable())
      p->reader.join();
    if (p->err_reader.joinable())
      p->err_reader.join();
  }
}

std::string StdioServer::protocol_version() const {
  std::lock_guard lock(mu_);
  return version_;
}
Json StdioServer::capabilities() const {
  std::lock_guard lock(mu_);
  return capabilities_;
}
Json StdioServer::server_info() const {
  std::lock_guard lock(mu_);
  return server_info_;
}
int64_t StdioServer::restarts() const {
  std::lock_guard lock(mu_);
  return restarts_ < 0 ? 0 : restarts_;
}

Status StdioServer::Spawn() {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0)
    return Unavailable(config_, std::string("cannot create a pipe: ") + std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return Unavailable(config_, "cannot create a pipe");
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]})
      ::close(fd);
    return Unavailable(config_, "cannot create a pipe");
  }
  // The environment is built from scratch: allow-listed names copied, fixed values set.
  std::vector<std::string> env_strings;
  for (const std::string& n : config_.env) {
    if (config_.set_env.count(n) != 0)
      continue;
    if (const char* v = std::getenv(n.c_str()))
      env_strings.push_back(n + "=" + v);
  }
  for (const auto& [k, v] : config_.set_env)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = config_.argv;
  std::vector<char*> argv;
  for (std::string& a : argv_copy)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addchdir_np(&fa, config_.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    for (int fd : {in[1], out[0], err[0]})
      ::close(fd);
    return Unavailable(config_, "cannot be started: " + std::string(std::strerror(rc)));
  }
  // Our write end never blocks: a server that stops reading fails the call at its deadline.
  ::fcntl(in[1], F_SETFL, ::fcntl(in[1], F_GETFL) | O_NONBLOCK);
  auto p = std::make_shared<Proc>();
  p->pid = pid;
  p->in_fd = in[1];
  p->out_fd = out[0];
  p->err_fd = err[0];
  p->started_ms = NowMs();
  {
    std::lock_guard lock(mu_);
    if (proc_)
      old_procs_.push_back(proc_);
    proc_ = p;
    ++restarts_;
  }
  p->reader = std::thread([this, p] { ReadLoop(p); });
  p->err_reader = std::thread([this, p] { StderrLoop(p); });
  return Status::Ok();
}

Status StdioServer::Start() {
  std::lock_guard start_lock(start_mu_);
  std::vector<std::shared_ptr<Proc>> to_join;
  {
    std::lock_guard lock(mu_);
    if (proc_ && !proc_->exited && !version_.empty())
      return Status::Ok();
    const int64_t now = NowMs();
    if (now < next_start_ms_) {
      return Unavailable(config_, "is down (" + last_exit_ + "); next restart attempt in " +
                                      std::to_string(next_start_ms_ - now) + " ms");
    }
    version_.clear();
    stateless_ = false;
    to_join.swap(old_procs_);
    if (proc_ && proc_->exited) {
      to_join.push_back(proc_);
      proc_.reset();
    }
  }
  for (auto& p : to_join) {
    if (p->reader.joinable())
      p->reader.join();
    if (p->err_reader.joinable())
      p->err_reader.join();
  }
  CUSTOS_RETURN_IF_ERROR(Spawn());
  bool modern = false;
  if (!skip_discover_) {
    Status probe = Discover(&modern);
    if (!probe.ok()) {
      // The server died on (or ignored) a request before initialize, as some 2025-era servers
      // do: start it again at once and speak the 2025 eras with it from now on.
      skip_discover_ = true;
      if (cb_.on_event) {
        cb_.on_event("mcp.server.discover_failed",
                     {{"server", config_.name}, {"error", std::string(probe.message())}});
      }
      {
        std::unique_lock lock(mu_);
        std::shared_ptr<Proc> p = proc_;
        cv_.wait_for(lock, std::chrono::seconds(2), [&] { return !p || p->exited; });
        next_start_ms_ = 0;
        to_join.swap(old_procs_);
        if (proc_ && proc_->exited) {
          to_join.push_back(proc_);
          proc_.reset();
        }
      }
      for (auto& p : to_join) {
        if (p->reader.joinable())
          p->reader.join();
        if (p->err_reader.joinable())
          p->err_reader.join();
      }
      CUSTOS_RETURN_IF_ERROR(Spawn());
    }
  }
  if (!modern)
    CUSTOS_RETURN_IF_ERROR(Initialize());
  if (cb_.on_event) {
    cb_.on_event("mcp.server.started", {{"server", config_.name},
                                        {"protocol_version", protocol_version()},
                                        {"restarts", restarts()}});
  }
  return Status::Ok();
}

Json StdioServer::WithEnvelope(const Json& params) const {
  Json offered;
  {
    std::lock_guard lock(mu_);
    offered = offered_;
  }
  return WithGatewayEnvelope(params, offered);
}

void StdioServer::OfferClientCapabilities(const Json& capabilities) {
  std::lock_guard lock(mu_);
  offered_ = capabilities.is_object() ? capabilities : Json::object();
}

Status StdioServer::Discover(bool* modern) {
  *modern = false;
  Result<Message> d =
      CallLocked("server/discover", WithEnvelope(Json::object()), config_.startup_timeout_ms);
  if (!d.ok())
    return d.status();
  if (d->type != Message::Type::kResponse || !d->result.is_object())
    return Status::Ok();  // -32601 and the like: a 2025-era server
  const Json& r = d->result;
  const Json versions = r.value("supportedVersions", Json());
  bool offered = false;
  if (versions.is_array()) {
    for (const Json& v : versions)
      offered = offered || (v.is_string() && v.get_ref<const std::string&>() == kStatelessVersion);
  }
  if (!offered)
    return Status::Ok();
  Json info = Json::object();
  if (r.contains("_meta") && r["_meta"].is_object() && r["_meta"].contains(kMetaServerInfo))
    info = r["_meta"][std::string(kMetaServerInfo)];
  std::lock_guard lock(mu_);
  version_ = std::string(kStatelessVersion);
  stateless_ = true;
  capabilities_ = r.value("capabilities", Json::object());
  server_info_ = std::move(info);
  *modern = true;
  return Status::Ok();
}

Status StdioServer::Initialize() {
  Json client_caps = Json::object();
  for (const std::string& c : config_.client_capabilities)
    client_caps[c] = Json::object();
  Json params = {{"protocolVersion", std::string(kLatestVersion)},
                 {"capabilities", client_caps},
                 {"clientInfo", {{"name", "custos-mcp-gateway"}, {"version", "0.1.0"}}}};
  Result<Message> init = CallLocked("initialize", params, config_.startup_timeout_ms);
  if (!init.ok())
    return init.status();
  if (init->type != Message::Type::kResponse) {
    Stop();
    return Unavailable(config_, "refused initialize: " + init->error_message.substr(0, 256));
  }
  const Json& r = init->result;
  const std::string v =
      r.is_object() && r.contains("protocolVersion") && r.at("protocolVersion").is_string()
          ? r.at("protocolVersion").get<std::string>()
          : "";
  if (!IsSupportedVersion(v)) {
    Stop();
    return Status(Reason::kMcpVersionUnsupported,
                  "MCP server '" + config_.name + "' speaks protocol version '" + v.substr(0, 32) +
                      "', which the gateway does not");
  }
  {
    std::lock_guard lock(mu_);
    version_ = v;
    stateless_ = false;
    capabilities_ = r.value("capabilities", Json::object());
    server_info_ = r.value("serverInfo", Json::object());
  }
  return Notify("notifications/initialized", nullptr);
}

void StdioServer::KillProc(const std::shared_ptr<Proc>& p) {
  if (p && p->pid > 0)
    ::kill(-p->pid, SIGKILL);
}

void StdioServer::Stop() {
  std::shared_ptr<Proc> p;
  {
    std::lock_guard lock(mu_);
    p = proc_;
    version_.clear();
    if (listen_id_ != 0 && !listen_acked_)
      listen_answer_ = Unavailable(config_, "was stopped");
    listen_id_ = 0;  // ended by us: not reported
    listen_acked_ = false;
    cv_.notify_all();
  }
  KillProc(p);
}

Result<Message> StdioServer::Listen(const Json& params) {
  CUSTOS_RETURN_IF_ERROR(Start());
  if (!stateless()) {
    return Message::Error(nullptr, kMethodNotFound,
                          "MCP server '" + config_.name + "' speaks " + protocol_version() +
                              ", which has no subscriptions/listen");
  }
  std::lock_guard call_lock(listen_call_mu_);
  CancelListen();
  int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    listen_id_ = id;
    listen_acked_ = false;
    listen_answer_.reset();
  }
  const int64_t deadline = NowMs() + config_.timeout_ms;
  Status w = WriteLine(
      Message::Request(id, "subscriptions/listen", WithEnvelope(params)).Serialize(), deadline);
  std::unique_lock lock(mu_);
  if (!w.ok()) {
    if (listen_id_ == id)
      listen_id_ = 0;
    return w;
  }
  cv_.wait_until(lock, std::chrono::steady_clock::time_point(std::chrono::milliseconds(deadline)),
                 [&] { return listen_answer_.has_value(); });
  if (listen_answer_.has_value()) {
    Result<Message> answer = std::move(*listen_answer_);
    listen_answer_.reset();
    return answer;
  }
  lock.unlock();
  CancelListen();
  return Unavailable(config_, "did not acknowledge subscriptions/listen within " +
                                  std::to_string(config_.timeout_ms) + " ms");
}

void StdioServer::StopListening() {
  std::lock_guard call_lock(listen_call_mu_);
  CancelListen();
}

void StdioServer::CancelListen() {
  int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = listen_id_;
    listen_id_ = 0;
    listen_acked_ = false;
  }
  if (id != 0) {
    (void)WriteLine(Message::Notification("notifications/cancelled",
                                          {{"requestId", id}, {"reason", "closed by the gateway"}})
                        .Serialize(),
                    NowMs() + 100);
  }
}

bool StdioServer::TakeListenNotification(Message* n) {
  const bool ack = n->method == "notifications/subscriptions/acknowledged";
  const Json id = TakeSubscriptionId(n);
  if (id.is_null())
    return !ack;  // an unstamped notification passes; an unstamped acknowledgement is nobody's
  if (listen_id_ == 0 || id != Json(listen_id_))
    return false;  // stamped by a stream that ended
  if (ack) {
    if (!listen_acked_) {
      listen_acked_ = true;
      listen_answer_ = Message::Response(id, n->params);
      cv_.notify_all();
    }
    return false;
  }
  return listen_acked_;
}

void StdioServer::ListenEnded(const std::string& why) {
  if (cb_.on_event)
    cb_.on_event("mcp.server.listen_ended", {{"server", config_.name}, {"why", why}});
}

Status StdioServer::WriteLine(const std::string& line, int64_t deadline_ms) {
  std::lock_guard wl(write_mu_);
  std::shared_ptr<Proc> p;
  {
    std::lock_guard lock(mu_);
    p = proc_;
    if (!p || p->exited)
      return Unavailable(config_, "is not running");
  }
  std::string buf = line + "\n";
  size_t off = 0;
  while (off < buf.size()) {
    const ssize_t n = ::write(p->in_fd, buf.data() + off, buf.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int64_t left = deadline_ms - NowMs();
      if (left <= 0)
        return Unavailable(config_, "does not read its input (write timed out)");
      pollfd pfd{p->in_fd, POLLOUT, 0};
      ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      continue;
    }
    return Unavailable(config_, "closed its input");
  }
  return Status::Ok();
}

Result<Message> StdioServer::Call(const std::string& method, const Json& params,
                                  const std::function<void(int64_t)>& on_sent) {
  CUSTOS_RETURN_IF_ERROR(Start());
  if (!stateless())
    return CallLocked(method, params, config_.timeout_ms, on_sent);
  // The stateless era: methods it removed are not sent; every request carries the envelope.
  if (!IsStatelessMethod(method)) {
    return Message::Error(nullptr, kMethodNotFound,
                          "'" + method.substr(0, 64) + "' does not exist in protocol revision " +
                              std::string(kStatelessVersion) + ", which server '" + config_.name +
                              "' speaks");
  }
  CUSTOS_ASSIGN_OR_RETURN(Message reply,
                          CallLocked(method, WithEnvelope(params), config_.timeout_ms, on_sent));
  return FromServerEra(method, true, std::move(reply));
}

bool StdioServer::stateless() const {
  std::lock_guard lock(mu_);
  return stateless_;
}

void StdioServer::Cancel(int64_t id, const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second->done)
      return;
    it->second->done = true;
    it->second->result = Status(Reason::kMcpCancelled, "the request was cancelled: " + reason);
    cv_.notify_all();
  }
  (void)WriteLine(
      Message::Notification("notifications/cancelled", {{"requestId", id}, {"reason", reason}})
          .Serialize(),
      NowMs() + 100);
}

Result<Message> StdioServer::CallLocked(const std::string& method, const Json& params,
                                        int64_t timeout_ms,
                                        const std::function<void(int64_t)>& on_sent) {
  auto pending = std::make_shared<Pending>();
  int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    pending_[id] = pending;
  }
  const int64_t deadline = NowMs() + timeout_ms;
  Status w = WriteLine(Message::Request(id, method, params).Serialize(), deadline);
  if (!w.ok()) {
    std::lock_guard lock(mu_);
    pending_.erase(id);
    return w;
  }
  if (on_sent)
    on_sent(id);
  std::unique_lock lock(mu_);
  const bool answered = cv_.wait_until(
      lock, std::chrono::steady_clock::time_point(std::chrono::milliseconds(deadline)),
      [&] { return pending->done; });
  pending_.erase(id);
  if (answered)
    return std::move(pending->result);
  std::shared_ptr<Proc> p = proc_;
  lock.unlock();
  // Tell the server, then treat it as hung: the next call restarts it after the back-off.
  (void)WriteLine(
      Message::Notification("notifications/cancelled", {{"requestId", id}, {"reason", "timeout"}})
          .Serialize(),
      NowMs() + 100);
  KillProc(p);
  return Unavailable(config_, "did not answer " + method + " within " + std::to_string(timeout_ms) +
                                  " ms; it is being restarted");
}

Status StdioServer::Notify(const std::string& method, const Json& params) {
  return WriteLine(Message::Notification(method, params).Serialize(), NowMs() + config_.timeout_ms);
}

Status StdioServer::Respond(const Message& response) {
  return WriteLine(response.Serialize(), NowMs() + config_.timeout_ms);
}

void StdioServer::ReadLoop(std::shared_ptr<Proc> p) {
  std::string buf;
  char chunk[65536];
  std::string why;
  for (;;) {
    const ssize_t n = ::read(p->out_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(buf.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
      if (line.empty())
        continue;
      Result<Message> m = ParseMessage(line, config_.max_message_bytes);
      if (!m.ok()) {
        why = "sent an invalid message (" + std::string(m.status().message()) + ")";
        break;
      }
      if (m->is_response()) {
        if (!m->id.is_number_integer())
          continue;  // not one of ours
        const int64_t id = m->id.get<int64_t>();
        bool listen_ended = false;
        {
          std::lock_guard lock(mu_);
          auto it = pending_.find(id);
          if (id == listen_id_) {
            // The listen stream's only response: a refusal, or the server ending the stream.
            listen_ended = listen_acked_;
            if (!listen_acked_)
              listen_answer_ = std::move(m).value();
            listen_id_ = 0;
            listen_acked_ = false;
            cv_.notify_all();
          } else if (it != pending_.end()) {  // else a late answer to a call that timed out
            it->second->done = true;
            it->second->result = std::move(m).value();
            cv_.notify_all();
          }
        }
        if (listen_ended)
          ListenEnded("the server ended the stream");
      } else if (m->is_notification()) {
        {
          std::lock_guard lock(mu_);
          if (!TakeListenNotification(&*m))
            continue;
        }
        const int64_t now = NowMs();
        if (now - p->notif_window_ms >= 1000) {
          if (p->notif_dropped > 0 && cb_.on_event) {
            cb_.on_event("mcp.server.notification_flood",
                         {{"server", config_.name}, {"dropped", p->notif_dropped}});
          }
          p->notif_window_ms = now;
          p->notif_count = 0;
          p->notif_dropped = 0;
        }
        if (++p->notif_count > config_.max_notifications_per_sec) {
          ++p->notif_dropped;
          continue;
        }
        if (cb_.on_notification)
          cb_.on_notification(*m, 0);
      } else if (cb_.on_request) {
        cb_.on_request(*m, 0);
      }
    }
    if (!why.empty())
      break;
    buf.erase(0, start);
    if (buf.size() > config_.max_message_bytes) {
      why = "sent a message over " + std::to_string(config_.max_message_bytes) + " bytes";
      break;
    }
  }
  if (!why.empty())
    KillProc(p);
  OnExit(p, why);
}

void StdioServer::StderrLoop(std::shared_ptr<Proc> p) {
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(p->err_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    std::lock_guard lock(p->err_mu);
    p->stderr_total += static_cast<size_t>(n);
    const size_t room = kStderrKeep - std::min(kStderrKeep, p->stderr_kept.size());
    p->stderr_kept.append(chunk, std::min(room, static_cast<size_t>(n)));
  }
}

void StdioServer::OnExit(const std::shared_ptr<Proc>& p, const std::string& why) {
  // Reap first: the exit status goes into the reason every pending call receives.
  KillProc(p);  // the group: children of the server must not outlive it
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(p->pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  std::string exit_text =
      r < 0                 ? "exited"
      : WIFEXITED(status)   ? "exited with status " + std::to_string(WEXITSTATUS(status))
      : WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                            : "exited";
  if (!why.empty())
    exit_text = why + "; " + exit_text;
  const int64_t lived = NowMs() - p->started_ms;
  bool listen_ended = false;
  {
    std::lock_guard lock(mu_);
    p->exited = true;  // fds close with the last reference (a writer may still hold one)
    if (proc_ == p) {
      version_.clear();
      if (listen_id_ != 0) {
        listen_ended = listen_acked_;
        if (!listen_acked_)
          listen_answer_ = Unavailable(config_, exit_text);
        listen_id_ = 0;
        listen_acked_ = false;
      }
      last_exit_ = exit_text;
      backoff_ms_ = lived >= kHealthyAfterMs ? 100 : std::min(backoff_ms_ * 2, kMaxBackoffMs);
      next_start_ms_ = NowMs() + backoff_ms_;
      for (auto& [id, pend] : pending_) {
        if (!pend->done) {
          pend->done = true;
          pend->result = Unavailable(config_, exit_text);
        }
      }
      cv_.notify_all();
    }
  }
  if (listen_ended)
    ListenEnded(exit_text);
  if (cb_.on_event) {
    // Give the stderr reader a moment to drain, then report its digest and an excerpt.
    for (int i = 0; i < 50; ++i) {
      pollfd pfd{p->err_fd, POLLIN, 0};
      if (::poll(&pfd, 1, 0) == 0)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::string kept;
    size_t total = 0;
    {
      std::lock_guard lock(p->err_mu);
      kept = p->stderr_kept;
      total = p->stderr_total;
    }
    const std::string excerpt =
        kept.size() > kStderrExcerpt ? kept.substr(kept.size() - kStderrExcerpt) : kept;
    cb_.on_event(
        "mcp.server.exited",
        {{"server", config_.name},
         {"why", exit_text},
         {"lived_ms", lived},
         {"stderr_bytes", total},
         {"stderr_sha256", crypto::Sha256(kept).Hex()},
         {"stderr_excerpt", Json(excerpt).dump(-1, ' ', true, Json::error_handler_t::replace)}});
  }
}

}  // namespace custos::mcp
