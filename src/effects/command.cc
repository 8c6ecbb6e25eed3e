#include "custos/effects/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <string>

#include "effects/fd_internal.h"

namespace custos::effects {
namespace {

using internal::ErrnoMessage;
using internal::UniqueFd;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = 64 * 1024;
constexpr int kDrainIdleMs = 50;

bool ValidEnvName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
    return false;
  }
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

Status Validate(const std::vector<std::string>& argv, const CommandOptions& opt) {
  if (argv.empty()) {
    return Status(Reason::kInvalidArgument, "argv is empty");
  }
  if (argv[0].empty() || argv[0][0] != '/') {
    return Status(Reason::kInvalidArgument, "argv[0] must be an absolute path", "/0");
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].find('\0') != std::string::npos) {
      return Status(Reason::kInvalidArgument, "argument contains a NUL byte",
                    "/" + std::to_string(i));
    }
  }
  for (const std::string& name : opt.inherit_env) {
    if (!ValidEnvName(name)) {
      return Status(Reason::kInvalidArgument, "invalid environment variable name");
    }
  }
  for (const auto& [name, value] : opt.set_env) {
    if (!ValidEnvName(name)) {
      return Status(Reason::kInvalidArgument, "invalid environment variable name");
    }
    if (value.find('\0') != std::string::npos) {
      return Status(Reason::kInvalidArgument, "environment value of " + name + " has a NUL byte");
    }
  }
  if (opt.working_dir.empty() || opt.working_dir[0] != '/' ||
      opt.working_dir.find('\0') != std::string::npos) {
    return Status(Reason::kInvalidArgument, "working_dir must be an absolute path");
  }
  return Status::Ok();
}

std::vector<std::string> BuildEnv(const CommandOptions& opt) {
  std::map<std::string, std::string> env;
  for (const std::string& name : opt.inherit_env) {
    if (const char* v = std::getenv(name.c_str())) {
      env[name] = v;
    }
  }
  for (const auto& [name, value] : opt.set_env) {
    env[name] = value;
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [name, value] : env) {
    out.push_back(name + "=" + value);
  }
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Status(Reason::kIoError, ErrnoMessage("pipe2", errno));
  }
  *read_end = UniqueFd(fds[0]);
  *write_end = UniqueFd(fds[1]);
  return Status::Ok();
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Owns the spawn attribute objects for the duration of one posix_spawn call.
class SpawnConfig {
 public:
  SpawnConfig() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnConfig() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnConfig(const SpawnConfig&) = delete;
  SpawnConfig& operator=(const SpawnConfig&) = delete;

  Status Configure(int in, int out, int err, const std::string& cwd) {
    sigset_t empty;
    sigset_t all;
    sigemptyset(&empty);
    sigfillset(&all);
    bool ok = posix_spawn_file_actions_adddup2(&actions_, in, 0) == 0 &&
              posix_spawn_file_actions_adddup2(&actions_, out, 1) == 0 &&
              posix_spawn_file_actions_adddup2(&actions_, err, 2) == 0 &&
              posix_spawn_file_actions_addclosefrom_np(&actions_, 3) == 0 &&
              posix_spawn_file_actions_addchdir_np(&actions_, cwd.c_str()) == 0 &&
              posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                   POSIX_SPAWN_SETSIGDEF) == 0 &&
              posix_spawnattr_setpgroup(&attr_, 0) == 0 &&
              posix_spawnattr_setsigmask(&attr_, &empty) == 0 &&
              posix_spawnattr_setsigdefault(&attr_, &all) == 0;
    return ok ? Status::Ok() : Status(Reason::kInternal, "cannot configure posix_spawn");
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// Blocks SIGPIPE in this thread while it writes to the child, and swallows a SIGPIPE it caused.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        ::sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

struct Stream {
  UniqueFd fd;
  std::string data;
  size_t cap = 0;
  bool too_large = false;
  const std::function<void(std::string_view)>* on_data = nullptr;  // null: just collect
};

// Reads what is available. Returns false once the stream is closed or over its cap.
bool ReadAvailable(Stream* s) {
  char buf[kChunk];
  for (;;) {
    ssize_t n = ::read(s->fd.get(), buf, sizeof buf);
    if (n > 0) {
      if (static_cast<size_t>(n) > s->cap - s->data.size()) {
        s->too_large = true;
        return false;
      }
      s->data.append(buf, static_cast<size_t>(n));
      if (s->on_data != nullptr && *s->on_data) {
        (*s->on_data)(std::string_view(buf, static_cast<size_t>(n)));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      return true;
    }
    s->fd.Reset();  // EOF or error
    return false;
  }
}

}  // namespace

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, std::string_view stdin_data,
                                 const CommandOptions& opt) {
  CUSTOS_RETURN_IF_ERROR(Validate(argv, opt));
  std::vector<std::string> args = argv;
  std::vector<char*> c_args = CStrings(args);
  std::vector<std::string> env = BuildEnv(opt);
  std::vector<char*> c_env = CStrings(env);

  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  CUSTOS_RETURN_IF_ERROR(MakePipe(&in_r, &in_w));
  CUSTOS_RETURN_IF_ERROR(MakePipe(&out_r, &out_w));
  CUSTOS_RETURN_IF_ERROR(MakePipe(&err_r, &err_w));
  SpawnConfig config;
  CUSTOS_RETURN_IF_ERROR(config.Configure(in_r.get(), out_w.get(), err_w.get(), opt.working_dir));

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + opt.timeout;
  pid_t pid = 0;
  int rc =
      ::posix_spawn(&pid, c_args[0], config.actions(), config.attr(), c_args.data(), c_env.data());
  if (rc != 0) {
    if (rc == ENOENT || rc == ENOTDIR) {
      return Status(Reason::kNotFound, ErrnoMessage("cannot execute " + argv[0], rc), "/0");
    }
    return Status(Reason::kEffectFailed, ErrnoMessage("cannot execute " + argv[0], rc), "/0");
  }
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  SigpipeGuard sigpipe_guard;
  SetNonBlocking(in_w.get());
  SetNonBlocking(out_r.get());
  SetNonBlocking(err_r.get());
  Stream out{std::move(out_r), {}, opt.max_stdout_bytes, false, &opt.on_stdout};
  Stream err{std::move(err_r), {}, opt.max_stderr_bytes};
  size_t in_off = 0;
  if (stdin_data.empty()) {
    in_w.Reset();
  }

  bool exited = false;  // the leader has exited (it stays a zombie until reaped below)
  int wstatus = 0;
  bool timed_out = false;
  // Notices the leader's exit without reaping it, so its pid (= the group id) stays reserved
  // while the rest of the group is killed.
  auto check_exit = [&] {
    siginfo_t info = {};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      exited = true;
      ::kill(-pid, SIGKILL);
      in_w.Reset();
    }
  };

  for (;;) {
    if (!exited) {
      check_exit();
    }
    if (out.too_large || err.too_large) {
      break;
    }
    if (exited && !out.fd.valid() && !err.fd.valid()) {
      break;
    }
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) {
      timed_out = !exited;
      break;
    }
    int wait_ms = static_cast<int>(std::min<int64_t>(remaining, 1000));
    if (exited) {
      wait_ms = std::min(wait_ms, kDrainIdleMs);
    } else if (!pidfd.valid()) {
      wait_ms = std::min(wait_ms, 10);
    }
    struct pollfd fds[4];
    nfds_t nfds = 0;
    int in_idx = -1, out_idx = -1, err_idx = -1;
    if (in_w.valid()) {
      in_idx = static_cast<int>(nfds);
      fds[nfds++] = {in_w.get(), POLLOUT, 0};
    }
    if (out.fd.valid()) {
      out_idx = static_cast<int>(nfds);
      fds[nfds++] = {out.fd.get(), POLLIN, 0};
    }
    if (err.fd.valid()) {
      err_idx = static_cast<int>(nfds);
      fds[nfds++] = {err.fd.get(), POLLIN, 0};
    }
    if (!exited && pidfd.valid()) {
      fds[nfds++] = {pidfd.get(), POLLIN, 0};
    }
    int n = ::poll(fds, nfds, wait_ms);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &wstatus, 0);
      return Status(Reason::kInternal, ErrnoMessage("poll", errno));
    }
    if (n == 0 && exited) {
      break;  // the program is gone and its output has gone quiet: stop draining
    }
    if (in_idx >= 0 && fds[in_idx].revents != 0) {
      size_t len = std::min(kChunk, stdin_data.size() - in_off);
      ssize_t w = ::write(in_w.get(), stdin_data.data() + in_off, len);
      if (w > 0) {
        in_off += static_cast<size_t>(w);
        if (in_off == stdin_data.size()) {
          in_w.Reset();
        }
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        in_w.Reset();  // EPIPE: the program does not want more input
      }
    }
    if (out_idx >= 0 && fds[out_idx].revents != 0) {
      ReadAvailable(&out);
    }
    if (err_idx >= 0 && fds[err_idx].revents != 0) {
      ReadAvailable(&err);
    }
  }

  if (!exited) {
    ::kill(-pid, SIGKILL);
  }
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      return Status(Reason::kInternal, ErrnoMessage("waitpid", errno));
    }
  }
  if (timed_out) {
    return Status(Reason::kEffectTimeout,
                  "command timed out after " + std::to_string(opt.timeout.count()) + " ms");
  }
  if (out.too_large || err.too_large) {
    return Status(Reason::kPayloadTooLarge,
                  std::string(out.too_large ? "stdout" : "stderr") + " exceeds " +
                      std::to_string(out.too_large ? out.cap : err.cap) + " bytes");
  }
  CommandResult result;
  if (WIFSIGNALED(wstatus)) {
    result.signaled = true;
    result.signal = WTERMSIG(wstatus);
  } else {
    result.exit_code = WEXITSTATUS(wstatus);
  }
  result.stdout_data = std::move(out.data);
  result.stderr_data = std::move(err.data);
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return result;
}

}  // namespace custos::effects
