#pragma once
// ServerHarness runs a real custosd Server in-process over a KernelHarness kernel: TCP on a free
// loopback port and a Unix socket in the temp dir, three API keys (worker, reader, lead = admin),
// and this process's uid mapped to "worker" on the socket. Tests talk to it over real sockets
// with testing::RawConnection.
//
// Confined to the test thread (the server's own threads are internal).

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "custos/server/api.h"
#include "custos/server/auth.h"
#include "custos/server/metrics.h"
#include "custos/server/server.h"
#include "testing/http_client.h"
#include "testing/kernel_fixture.h"
#include "testing/tls_client.h"

namespace custos::testing {

class ServerHarness {
 public:
  // Call before Start(): serve TLS on the TCP listener with a fresh self-signed certificate
  // (ca_file() verifies it). Tcp() then returns connections that have completed the handshake.
  void UseTls() { tls_ = true; }
  std::filesystem::path ca_file() const { return kh_.root() / "tls" / "cert.pem"; }

  // Opens the kernel with `spec` (or with `policy_text` if given) and serves with `limits`.
  bool Start(const PolicySpec& spec, server::ServerLimits limits = {}, int workers = 4,
             const std::string& policy_text = "") {
    policy_text_ = policy_text.empty() ? MakePolicy(spec) : policy_text;
    policy_file_ = kh_.root() / "policy.toml";
    WriteFileOrDie(policy_file_, policy_text_);
    if (!kh_.Open(policy_text_))
      return false;
    data_dir_ = kh_.root() / "data";
    for (const char* agent : {"worker", "reader", "lead", "helper"}) {
      Result<std::string> k = server::AddApiKey(data_dir_, agent);
      if (!k.ok()) {
        ADD_FAILURE() << k.status();
        return false;
      }
      keys_[agent] = *k;
    }
    config_.admins = {"lead"};
    config_.peers = {{static_cast<uint32_t>(::getuid()), "worker"}};
    config_.limits = limits;
    Result<server::Authenticator> auth = server::Authenticator::Load(data_dir_, config_);
    if (!auth.ok()) {
      ADD_FAILURE() << auth.status();
      return false;
    }
    server::ApiOptions ao;
    ao.data_dir = data_dir_;
    ao.policy_file = policy_file_;
    ao.config = config_;
    api_ = std::make_unique<server::Api>(
        &kh_.kernel(), &metrics_, ao,
        std::make_shared<const server::Authenticator>(std::move(auth).value()));
    server::ServerOptions so;
    so.listen = "127.0.0.1:0";
    so.socket = kh_.root() / "custos.sock";
    so.threads = 2;
    so.workers = workers;
    so.limits = limits;
    so.tcp_auth = true;
    if (tls_) {
      if (!MakeSelfSignedCert(kh_.root() / "tls")) {
        ADD_FAILURE() << "openssl req failed";
        return false;
      }
      so.tls_cert = kh_.root() / "tls" / "cert.pem";
      so.tls_key = kh_.root() / "tls" / "key.pem";
    }
    Result<std::unique_ptr<server::Server>> s = server::Server::Start(api_.get(), &metrics_, so);
    if (!s.ok()) {
      ADD_FAILURE() << s.status();
      return false;
    }
    server_ = std::move(s).value();
    return true;
  }
  ~ServerHarness() { server_.reset(); }

  RawConnection Tcp() {
    RawConnection c = RawConnection::Tcp(server_->tcp_port());
    if (tls_) {
      const std::string err = StartTls(c, ca_file());
      if (!err.empty())
        ADD_FAILURE() << "TLS handshake: " << err;
    }
    return c;
  }
  // A TCP connection without the TLS handshake, even on a TLS listener.
  RawConnection PlainTcp() { return RawConnection::Tcp(server_->tcp_port()); }
  RawConnection Unix() { return RawConnection::Unix(server_->socket_path().string()); }
  std::string Auth(const std::string& agent) {
    return "Authorization: Bearer " + keys_.at(agent) + "\r\n";
  }
  // One request on a fresh TCP connection as `agent` ("" = no credentials).
  HttpReply Call(const std::string& agent, const std::string& method, const std::string& target,
                 const std::string& body = "") {
    RawConnection c = Tcp();
    return c.Call(method, target, body, agent.empty() ? "" : Auth(agent));
  }

  KernelHarness& kernel() { return kh_; }
  server::Server& server() { return *server_; }
  server::Api& api() { return *api_; }
  server::Metrics& metrics() { return metrics_; }
  const std::filesystem::path& policy_file() const { return policy_file_; }
  const std::string& policy_text() const { return policy_text_; }
  const std::string& key(const std::string& agent) const { return keys_.at(agent); }
  const std::filesystem::path& data_dir() const { return data_dir_; }

 private:
  KernelHarness kh_;
  bool tls_ = false;
  std::filesystem::path policy_file_, data_dir_;
  std::string policy_text_;
  std::map<std::string, std::string> keys_;
  server::ServerConfig config_;
  server::Metrics metrics_;
  std::unique_ptr<server::Api> api_;
  std::unique_ptr<server::Server> server_;
};

// The error reason of a reply's body, "" if it has none.
inline std::string ErrorReason(const HttpReply& r) {
  Result<Json> j = ParseUntrustedJson(r.body);
  if (!j.ok() || !j->is_object() || !j->contains("error"))
    return "";
  return (*j)["error"].value("reason", "");
}

inline Json BodyJson(const HttpReply& r) {
  Result<Json> j = ParseUntrustedJson(r.body);
  return j.ok() ? *j : Json();
}

}  // namespace custos::testing
