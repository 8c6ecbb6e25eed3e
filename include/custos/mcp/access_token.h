#pragma once
// AccessTokenVerifier checks OAuth 2.1 bearer access tokens on the MCP HTTP front, which acts as
// a resource server (MCP authorization spec; RFC 9068-style JWTs; RFC 8707 audience). A token is
// accepted only if all of these hold, else kMcpTokenInvalid with which one failed:
//   * it is a compact JWS (three base64url parts) whose header `alg` is ES256 (P-256, via OpenSSL)
//     or EdDSA (Ed25519, via libsodium) — `none`, HS* and anything else are refused;
//   * its signature verifies with a key of the issuer's JWKS (by `kid`, or the only key of that
//     type when the token names none): a file read at load, or a document fetched from the
//     issuer (`fetch_jwks`) at start, again once `refresh_s` passed, and when a token names a
//     key the set lacks (a rotation), at most once per `retry_s` so tokens with made-up kids
//     cannot make the front hammer the issuer; a failed fetch keeps the keys it has (none at
//     first: every token is refused, naming the fetch error);
//   * `aud` (string or array) contains the configured resource URI, `iss` equals the configured
//     issuer, `exp` is present and in the future and `nbf` (if present) is not, both with
//     `leeway_s` of clock skew.
// Verified tokens are never forwarded anywhere: the gateway sends servers no Authorization.
//
// Thread-safe: Verify() from many threads (a refetch replaces the key set under a lock).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::mcp {

struct AccessTokenConfig {
  std::string resource;  // this endpoint's resource URI, e.g. "http://127.0.0.1:7310/mcp"
  std::string issuer;    // the authorization server's issuer
  Json jwks;             // {"keys":[{kty:"OKP",crv:"Ed25519",x}, {kty:"EC",crv:"P-256",x,y}]}
  // Instead of `jwks`: fetches the issuer's JWKS document (its keys of other types, such as RSA,
  // are skipped; the set must hold at least one usable key).
  std::function<Result<std::string>()> fetch_jwks;
  int64_t refresh_s = 3600;
  int64_t retry_s = 30;
  int64_t leeway_s = 60;
};

struct AccessToken {
  std::string subject;  // `sub`, "" if absent
  std::string scope;
  Json claims;
};

class AccessTokenVerifier {
 public:
  // kMcpConfigError for a JWKS without usable keys or a malformed key. With fetch_jwks, the first
  // fetch happens here (at `now_s`); its failure is not an error (see above).
  static Result<AccessTokenVerifier> Create(AccessTokenConfig config, int64_t now_s);

  // `now_s`: Unix seconds.
  Result<AccessToken> Verify(std::string_view token, int64_t now_s) const;

  const AccessTokenConfig& config() const { return config_; }

  struct Key;
  struct KeySet;

 private:
  using Keys = std::vector<std::shared_ptr<const Key>>;
  // Fetches the JWKS again unless one was tried less than retry_s ago; true if the set changed.
  bool Reload(int64_t now_s) const;

  AccessTokenConfig config_;
  std::shared_ptr<KeySet> keys_;
};

// base64url without padding (RFC 7515 §2).
std::string Base64UrlEncode(std::string_view bytes);
Result<std::string> Base64UrlDecode(std::string_view text);

}  // namespace custos::mcp
