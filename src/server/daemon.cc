#include "custos/server/daemon.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "custos/kernel/kernel.h"
#include "custos/policy/policy.h"
#include "custos/server/api.h"
#include "custos/server/auth.h"
#include "custos/server/metrics.h"
#include "custos/server/server.h"
#include "custos/server/server_config.h"

namespace custos::server {

Status RunDaemon(const DaemonOptions& o) {
  // Signals are taken synchronously by this thread (sigwait below); every thread started from
  // here inherits the mask, so no handler ever runs on an I/O or kernel thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CUSTOS_ASSIGN_OR_RETURN(ServerConfig config, LoadServerConfig(o.data_dir));
  if (o.listen)
    config.listen = *o.listen;
  if (o.socket) {
    config.socket = *o.socket;
  } else if (config.socket.empty()) {
    config.socket = DefaultSocketPath(o.data_dir).string();
  }
  if (o.threads)
    config.threads = *o.threads;
  if (o.workers)
    config.workers = *o.workers;
  if (o.tls_cert)
    config.tls_cert = *o.tls_cert;
  if (o.tls_key)
    config.tls_key = *o.tls_key;

  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const policy::Policy> p,
                          policy::Policy::LoadFile(o.policy_file));
  CUSTOS_ASSIGN_OR_RETURN(Authenticator auth, Authenticator::Load(o.data_dir, config));
  kernel::KernelOptions ko;
  ko.data_dir = o.data_dir;
  ko.policy = std::move(p);
  ko.durability = o.durability.value_or(audit::Durability::kGroup);
  ko.passphrase = o.passphrase;
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<kernel::Kernel> kernel,
                          kernel::Kernel::Open(std::move(ko)));

  const size_t key_count = auth.key_count();
  const size_t agent_key_count = auth.agent_key_count();
  auto authenticator = std::make_shared<const Authenticator>(std::move(auth));
  DaemonOptions::Mounted mounted;
  if (o.mounts) {
    CUSTOS_ASSIGN_OR_RETURN(mounted, o.mounts(*kernel));
  }
  Metrics metrics;
  ApiOptions ao;
  ao.data_dir = o.data_dir;
  ao.policy_file = o.policy_file;
  ao.config = config;
  Api api(kernel.get(), &metrics, ao, authenticator);
  ServerOptions so;
  so.listen = config.listen;
  so.socket = config.socket;
  so.threads = config.threads;
  so.workers = config.workers;
  so.limits = config.limits;
  so.tls_cert = config.tls_cert;
  so.tls_key = config.tls_key;
  so.tcp_auth = key_count > 0 || agent_key_count > 0;
  for (Mount& m : mounted.mounts) {
    if (m.self_authenticated) {
      so.mounts.push_back(std::move(m));
      continue;
    }
    // Authenticated like the API (the keys as loaded at start; a reload does not change them).
    auto inner = std::move(m.handler);
    m.handler = [authenticator, inner, &api](MountRequest req, std::shared_ptr<MountStream> out) {
      std::string authorization;
      for (const auto& [k, v] : req.headers) {
        if (k == "authorization")
          authorization = v;
      }
      Result<Identity> who = req.peer ? authenticator->FromPeer(*req.peer)
                                      : authenticator->FromAuthorization(authorization);
      if (!who.ok() && req.peer && !authorization.empty())
        who = authenticator->FromAuthorization(authorization);
      if (!who.ok()) {
        std::string claimed;
        if (authorization.rfind("Bearer ", 0) == 0) {
          claimed = AuthFailureLog::KeyHint(std::string_view(authorization).substr(7));
        } else if (req.peer) {
          claimed = "uid:" + std::to_string(req.peer->uid);
        }
        api.NoteAuthFailure(who.status().reason(), req.peer ? "unix" : "tcp", claimed);
        HttpResponse r = ErrorResponse(who.status());
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        out->Respond(std::move(r));
        return;
      }
      inner(std::move(req), std::move(out));
    };
    so.mounts.push_back(std::move(m));
  }
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Start(&api, &metrics, so));
  if (server->tcp_port() != 0) {
    std::string host = config.listen.substr(0, config.listen.rfind(':'));
    std::printf("custosd: listening on %s %s:%u\n", config.tls_cert.empty() ? "tcp" : "tls",
                host.c_str(), server->tcp_port());
  }
  if (!server->socket_path().empty())
    std::printf("custosd: listening on unix %s\n", server->socket_path().c_str());
  std::printf("custosd: ready (%zu API keys, %zu agent keys, %zu socket peers)\n", key_count,
              agent_key_count, config.peers.size());
  std::fflush(stdout);

  while (true) {
    // Wake once a second to write a due summary of refused authentication (decision 029).
    const struct timespec tick = {1, 0};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    api.FlushAuthFailuresIfDue();
    if (sig < 0)
      continue;  // EAGAIN (the second passed) or EINTR
    if (sig == SIGHUP) {
      Result<Json> r = api.Reload();
      if (r.ok()) {
        std::fprintf(stderr, "custosd: reloaded policy %s\n", r->dump().c_str());
      } else {
        std::fprintf(stderr, "custosd: reload rejected, the old policy keeps serving: %s\n",
                     r.status().ToString().c_str());
      }
      continue;
    }
    break;  // SIGTERM / SIGINT
  }
  std::fprintf(stderr, "custosd: draining\n");
  if (mounted.stop)
    mounted.stop();
  server->Shutdown();
  api.FlushAuthFailures();  // the last window, before the final commit
  Result<audit::Appended> committed = kernel->Commit();
  if (!committed.ok())
    return committed.status();
  std::fprintf(stderr, "custosd: stopped; log committed through entry %lld\n",
               static_cast<long long>(committed->seq));
  return Status::Ok();
}

}  // namespace custos::server
