#pragma once
// TLS for testing::RawConnection (OpenSSL, blocking), and a self-signed certificate maker, for
// custosd's TLS tests. The client verifies the server's certificate against `ca_file` and checks
// that it names 127.0.0.1, so a test passes only over a properly authenticated TLS channel.
//
// Confined: one connection per thread.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "testing/http_client.h"

namespace custos::testing {

class TlsLayer : public ConnectionLayer {
 public:
  TlsLayer(SSL_CTX* ctx, SSL* ssl) : ctx_(ctx), ssl_(ssl) {}
  ~TlsLayer() override {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  ssize_t Send(const char* data, size_t n) override {
    return SSL_write(ssl_, data, static_cast<int>(n));
  }
  ssize_t Recv(char* data, size_t n) override { return SSL_read(ssl_, data, static_cast<int>(n)); }
  bool Pending() const override { return SSL_pending(ssl_) > 0; }
  std::string version() const { return SSL_get_version(ssl_); }

 private:
  SSL_CTX* ctx_;
  SSL* ssl_;
};

// Runs a TLS handshake on `c` (verifying the peer against `ca_file` and the IP 127.0.0.1).
// Returns "" on success (and layers `c`), else the OpenSSL error. `*version` gets e.g. "TLSv1.3".
inline std::string StartTls(RawConnection& c, const std::filesystem::path& ca_file,
                            std::string* version = nullptr, int max_proto = 0) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (max_proto != 0)
    SSL_CTX_set_max_proto_version(ctx, max_proto);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    SSL_CTX_free(ctx);
    return "cannot load CA file";
  }
  SSL* ssl = SSL_new(ctx);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
  SSL_set_fd(ssl, c.fd());
  if (SSL_connect(ssl) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return buf;
  }
  auto layer = std::make_unique<TlsLayer>(ctx, ssl);
  if (version != nullptr)
    *version = layer->version();
  c.SetLayer(std::move(layer));
  return "";
}

// Writes a self-signed P-256 certificate for 127.0.0.1/localhost to DIR/cert.pem and its key to
// DIR/key.pem (mode 0600), using the openssl CLI. False if the CLI failed.
inline bool MakeSelfSignedCert(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=custosd-test -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" +
      (dir / "key.pem").string() + "' -out '" + (dir / "cert.pem").string() + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0)
    return false;
  return ::chmod((dir / "key.pem").c_str(), 0600) == 0;
}

}  // namespace custos::testing
