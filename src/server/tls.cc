#include "server/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <string>

namespace custos::server {
namespace {

namespace ssl = boost::asio::ssl;

// The newest OpenSSL error as text, so a bad file says why ("no start line", "key values
// mismatch") instead of a bare failure.
std::string OpenSslError(const boost::system::error_code& ec) {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    return buf;
  }
  return ec.message();
}

// Mozilla's "intermediate" TLS 1.2 suites: forward secret AEAD only.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

Result<std::shared_ptr<ssl::context>> MakeTlsContext(const std::filesystem::path& cert,
                                                     const std::filesystem::path& key) {
  struct stat st {};
  if (::stat(key.c_str(), &st) != 0)
    return Status(Reason::kTlsConfigError, "the TLS key file does not exist", key.string());
  if (!S_ISREG(st.st_mode))
    return Status(Reason::kTlsConfigError, "the TLS key is not a regular file", key.string());
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status(Reason::kTlsConfigError,
                  std::string("the TLS key file has mode ") + mode +
                      "; it must be readable only by its owner (chmod 600)",
                  key.string());
  }
  if (::stat(cert.c_str(), &st) != 0)
    return Status(Reason::kTlsConfigError, "the TLS certificate file does not exist",
                  cert.string());
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                  SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1)
    return Status(Reason::kTlsConfigError, "OpenSSL rejected the TLS 1.2 cipher list");
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert.string(), ec);
  if (ec) {
    return Status(Reason::kTlsConfigError,
                  "cannot load the TLS certificate chain (PEM): " + OpenSslError(ec),
                  cert.string());
  }
  ctx->use_private_key_file(key.string(), ssl::context::pem, ec);
  if (ec) {
    return Status(Reason::kTlsConfigError,
                  "cannot load the TLS private key (PEM): " + OpenSslError(ec), key.string());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return Status(Reason::kTlsConfigError,
                  "the TLS private key does not match the certificate: " + OpenSslError(ec),
                  key.string());
  }
  return ctx;
}

}  // namespace custos::server
