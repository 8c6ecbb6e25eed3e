#pragma once
// The TLS server context of custosd's TCP listener (decision 021): OpenSSL through Asio, TLS 1.2
// minimum (1.3 preferred by OpenSSL's own negotiation), TLS 1.2 suites restricted to ECDHE with
// AES-GCM or ChaCha20-Poly1305, no compression, no renegotiation, no session tickets.
//
// Thread-compatible: the context is built once and then only read by handshakes.

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>

#include "custos/core/result.h"

namespace custos::server {

// Loads a PEM certificate chain and private key. kTlsConfigError (with the file as `at`) if a
// file is missing or unreadable, is not PEM, the key does not match the certificate, or the key
// file is not a regular file readable only by its owner (mode 0600 or 0400).
Result<std::shared_ptr<boost::asio::ssl::context>> MakeTlsContext(const std::filesystem::path& cert,
                                                                  const std::filesystem::path& key);

}  // namespace custos::server
