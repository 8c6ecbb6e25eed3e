#pragma once
// TokenAuthority is the kernel's half of capability tokens (docs/spec/capability-token.md,
// decision 008): it holds the token root key, mints grants, attenuates for agent.spawn, verifies a
// presented token (with a repeat-sight cache of the signature verification) and authorizes one
// request with the kernel as the Biscuit authorizer.
//
// Verification and authorization are split because the request's resource and labels are known
// only after the resolve and inputs stages: Verify() runs in the capability stage, Authorize() in
// the authorize stage.
//
// Thread-safe: the cache is sharded and locked per shard; everything else is immutable.

#include <array>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "custos/caps/builder.h"
#include "custos/caps/datalog_engine.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"
#include "custos/kernel/kernel.h"
#include "custos/store/store.h"

namespace custos::kernel {

// A caveat block's use limits, counted in the store under the block's revocation id.
struct TokenCaveat {
  size_t block = 0;
  std::string id;  // the block's revocation id
  store::TokenUseLimits limits;
};

// What the kernel learns from a token once, on first sight.
struct VerifiedToken {
  caps::PreparedToken prepared;
  std::vector<std::string> revocation_ids;  // authority first
  std::vector<TokenCaveat> caveats;
  bool wants_args_digest = false;  // some block names the args_digest predicate
};

// The request facts the authorizer adds (the "ambient" facts).
struct TokenRequest {
  std::string_view operation;
  std::string_view resource;  // canonical target; "" adds no resource fact
  std::string_view agent;
  std::string_view principal;
  std::string_view run;
  int64_t now_ms = 0;
  std::vector<std::string> labels;
  std::string args_digest;  // filled only when the token wants it
};

// The token root key of a kernel whose identity is `identity` (decision 008): an Ed25519 key
// derived for this one purpose, BLAKE2b-256(key = identity seed, "custos/v1/token-root").
caps::SecretKey DeriveTokenRoot(const crypto::SigningKey& identity);
// The public token root of the kernel in `data_dir` (loads identity.key; for the CLI's offline
// token commands). kKeyError as crypto::KeyStore::Load says.
Result<caps::PublicKey> TokenRootOf(const std::filesystem::path& data_dir,
                                    const std::optional<std::string>& passphrase);

// Decodes and verifies a token (text form) against `root`, with no cache, and extracts what the
// kernel needs: prepared Datalog, revocation ids, caveats. kTokenInvalid / kPayloadTooLarge as the
// caps layer reports, or kTokenInvalid for a malformed max_uses / rate caveat.
Result<std::shared_ptr<const VerifiedToken>> VerifyToken(std::string_view token,
                                                         const caps::PublicKey& root);

// True for text shaped like a revocation id (lowercase hex of a block signature: 128 digits for
// Ed25519, up to 144 for DER ECDSA); a token's text never is.
bool IsRevocationId(std::string_view text);

// Runs the kernel's authorizer over `token` for `request` (see TokenAuthority::Authorize).
Status AuthorizeToken(const VerifiedToken& token, const TokenRequest& request);

// A bounded, sharded LRU map from SHA-256(root key || token bytes) to the verified token. Only
// successes are cached; a token that fails verification is verified again on its next sight.
class TokenCache {
 public:
  explicit TokenCache(size_t capacity);
  std::shared_ptr<const VerifiedToken> Find(const std::array<uint8_t, 32>& key);
  void Insert(const std::array<uint8_t, 32>& key, std::shared_ptr<const VerifiedToken> value);
  size_t size() const;

  static constexpr size_t kShards = 16;  // a key's shard is its last byte modulo kShards

 private:
  struct KeyHash {
    size_t operator()(const std::array<uint8_t, 32>& k) const;
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<std::pair<std::array<uint8_t, 32>, std::shared_ptr<const VerifiedToken>>> lru;
    std::unordered_map<std::array<uint8_t, 32>, decltype(lru)::iterator, KeyHash> index;
  };
  size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

class TokenAuthority {
 public:
  static constexpr size_t kDefaultCacheEntries = 4096;

  explicit TokenAuthority(caps::SecretKey root, size_t cache_entries = kDefaultCacheEntries);

  const caps::PublicKey& root_public_key() const { return root_.public_key(); }

  // The authority block Grant mints for `agent` with `syscalls` (already narrowed to the policy)
  // and `options`, expiring at `now_ms + ttl_ms`. kInvalidArgument for a bad option.
  static Result<std::string> GrantDatalog(std::string_view agent, std::string_view run,
                                          const std::vector<std::string>& syscalls,
                                          const GrantOptions& options, int64_t now_ms);

  // Mints a token (text form) whose authority block is `datalog`.
  Result<std::string> Mint(std::string_view datalog) const;
  // Appends `datalog` as a new block to `token` (text form), verifying it first.
  Result<std::string> Attenuate(std::string_view token, std::string_view datalog) const;
  // The same for a token this authority verified (`verified` from Verify(token)): no second
  // signature verification (agent.spawn attenuates the caller's already verified token).
  Result<std::string> Attenuate(std::string_view token, const VerifiedToken& verified,
                                std::string_view datalog) const;

  // Decodes and verifies `token` (text form) against the root key, through the cache; *hit (if
  // given) tells whether the cache answered. kTokenInvalid / kPayloadTooLarge as caps says.
  Result<std::shared_ptr<const VerifiedToken>> Verify(std::string_view token, bool* hit = nullptr);

  // Runs the authorizer for `request` over `token`: kCapabilityMissing when no right matches the
  // operation, kTokenExpired when a failed check tests time, kTokenCheckFailed for any other
  // failed check (the message names block and check), kTokenInvalid when Datalog execution fails
  // (the message starts with the engine's error name, e.g. too_many_facts).
  Status Authorize(const VerifiedToken& token, const TokenRequest& request) const;

  size_t cached_tokens() const { return cache_.size(); }

 private:
  caps::SecretKey root_;
  mutable TokenCache cache_;
};

// The Datalog date literal for `ms` since the Unix epoch (RFC 3339, seconds, UTC).
std::string DatalogDate(int64_t ms);

}  // namespace custos::kernel
