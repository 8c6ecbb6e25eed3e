#pragma once
// Authenticator answers "who is calling?" for every custosd request (decision 015):
//  - on the Unix socket, the peer's uid from SO_PEERCRED, mapped to an agent by [server.peers];
//  - on either transport, `Authorization: Bearer <api key>`, where the key file holds only the
//    SHA-256 of each key (keys are 256 random bits, so a plain hash is enough at rest; the key
//    itself is printed once by `custos apikey add AGENT`).
//  - on either transport, a request signed by the agent's Ed25519 key (decision 022): headers
//    Custos-Agent, Custos-Timestamp (unix seconds), Custos-Nonce and Custos-Signature (hex) over
//    CanonicalRequest(); public keys are registered by `custos agentkey add AGENT PUBKEY`.
// A caller that matches none is kUnauthenticated; nothing falls back to a default identity.
// Admin endpoints additionally need the identity to be listed in [server] admins.
//
// API key file DATA_DIR/api_keys (0600), one key per line: `sha256-hex agent created-ms`.
// Agent key file DATA_DIR/agent_keys (0600; refused if group/others may write it), one public key
// per line: `agent ed25519-public-key-hex created-ms`. An agent may have several keys.
//
// Thread-compatible: an Authenticator is immutable once loaded (the server swaps whole instances
// on reload).

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "custos/core/result.h"
#include "custos/crypto/keys.h"
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

inline constexpr char kAgentKeyFileName[] = "agent_keys";
// A signed request's timestamp may differ from the server's clock by at most this much.
inline constexpr int64_t kSignatureSkewSeconds = 60;

// Registers `public_key_hex` (64 hex chars, a canonical Ed25519 point) for `agent` in
// DATA_DIR/agent_keys (created 0600) and returns its KeyId. kInvalidArgument for a bad agent name
// or key; kIoError if the file cannot be written.
Result<std::string> AddAgentKey(const std::filesystem::path& data_dir, const std::string& agent,
                                const std::string& public_key_hex);

// The four headers of a signed request, as sent ("" when absent).
struct SignedHeaders {
  std::string agent, timestamp, nonce, signature;
  bool any() const {
    return !agent.empty() || !timestamp.empty() || !nonce.empty() || !signature.empty();
  }
};

// What the agent signs, under SignContext::kSignedRequest (so the signed bytes are
// "custos/v1/signed_request\0" followed by this):
//   "custos-request-v1\n" METHOD "\n" TARGET "\n" AGENT "\n" TIMESTAMP "\n" NONCE "\n"
//   lowercase-hex(SHA-256(body))
// TARGET is the request target exactly as sent (path and query).
std::string CanonicalRequest(std::string_view method, std::string_view target,
                             std::string_view agent, std::string_view timestamp,
                             std::string_view nonce, std::string_view body);

// ReplayCache remembers the (agent, nonce) pairs of verified signed requests until their
// timestamp leaves the skew window, so a captured request cannot be sent again. Memory is bounded
// by `max_entries`; when it is full of live nonces new signed requests are refused (kUnavailable)
// rather than admitted unchecked.
// Thread-safe.
class ReplayCache {
 public:
  explicit ReplayCache(size_t max_entries = 100'000) : max_(max_entries) {}
  // kNonceReplayed if the pair is already held; kUnavailable if the cache is full.
  Status Admit(const std::string& agent, const std::string& nonce, int64_t timestamp_s,
               int64_t now_s);
  size_t size() const;

 private:
  size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, int64_t> seen_;  // GUARDED_BY(mu_): agent\nnonce → expiry
  std::multimap<int64_t, std::string> by_expiry_;  // GUARDED_BY(mu_)
};

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
  // Verifies a signed request at server time `now_s` (unix seconds). kSignatureInvalid (malformed
  // headers, or no registered key of the agent verifies the signature), kUnknownAgentKey (the
  // agent has no key), kSignatureStale (timestamp more than kSignatureSkewSeconds away). The
  // caller must still pass the nonce through a ReplayCache.
  Result<Identity> FromSignature(const SignedHeaders& h, std::string_view method,
                                 std::string_view target, std::string_view body,
                                 int64_t now_s) const;

  size_t key_count() const { return keys_.size(); }
  size_t agent_key_count() const { return agent_keys_.size(); }

 private:
  Status LoadAgentKeys(const std::filesystem::path& file);

  std::map<std::string, std::string> keys_;                      // sha256 hex → agent
  std::multimap<std::string, crypto::VerifyingKey> agent_keys_;  // agent → public keys
  std::map<uint32_t, std::string> peers_;
  std::set<std::string> admins_;
};

}  // namespace custos::server
