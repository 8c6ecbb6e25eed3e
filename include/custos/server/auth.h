#pragma once
// Authenticator answers "who is calling?" for every custosd request (decision 015):
//  - on the Unix socket, the peer's uid from SO_PEERCRED, mapped to an agent by [server.peers];
//  - on either transport, `Authorization: Bearer <api key>`, where the key file holds only the
//    SHA-256 of each key (keys are 256 random bits, so a plain hash is enough at rest; the key
//    itself is printed once by `custos apikey add AGENT`).
// A caller that matches neither is kUnauthenticated; nothing falls back to a default identity.
// Admin endpoints additionally need the identity to be listed in [server] admins.
//
// API key file DATA_DIR/api_keys (0600), one key per line: `sha256-hex agent created-ms`.
//
// Thread-compatible: an Authenticator is immutable once loaded (the server swaps whole instances
// on reload).

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "custos/core/result.h"
#include "custos/server/server_config.h"

namespace custos::server {

struct Identity {
  std::string agent;
  bool admin = false;
  std::string via;  // "peer uid=1000 pid=42" or "api key 1a2b3c4d" (hash prefix, never the key)
};

struct PeerCred {
  uint32_t uid = 0;
  int32_t pid = 0;
};

inline constexpr char kApiKeyFileName[] = "api_keys";

// Mints a new key for `agent`, appends its hash to DATA_DIR/api_keys (created 0600) and returns
// the key ("ck_" + 52 base32 chars). The key is not stored anywhere: the caller shows it once.
// kInvalidArgument for an empty or non-identifier agent name; kIoError if the file cannot be
// written.
Result<std::string> AddApiKey(const std::filesystem::path& data_dir, const std::string& agent);

class Authenticator {
 public:
  // Reads the key file (missing = no keys) and takes peers/admins from `config`.
  // kIoError / kKeyError (a malformed line, or a key file readable by group/others).
  static Result<Authenticator> Load(const std::filesystem::path& data_dir,
                                    const ServerConfig& config);

  // kUnauthenticated if the uid is not mapped.
  Result<Identity> FromPeer(const PeerCred& peer) const;
  // `authorization` is the whole header value. kUnauthenticated if absent, not Bearer, or unknown.
  Result<Identity> FromAuthorization(std::string_view authorization) const;

  size_t key_count() const { return keys_.size(); }

 private:
  std::map<std::string, std::string> keys_;  // sha256 hex → agent
  std::map<uint32_t, std::string> peers_;
  std::set<std::string> admins_;
};

}  // namespace custos::server
