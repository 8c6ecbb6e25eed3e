#pragma once
// Token builders: Mint a Biscuit token from a root secret key and an authority block written in
// Datalog text, Attenuate it offline with a further block (typically checks), and Seal it.
//
// Tokens are Biscuit v3 protobuf, every block at the current block version (kBlockVersion) and
// signature payload version 1 (which binds each block to the previous block's signature), Ed25519
// keys throughout. Each block is signed by the previous block's ephemeral key (the authority by
// the root key) and carries a fresh ephemeral next key; an attenuable token's proof holds the
// last ephemeral secret, a sealed one the final signature, after which no block can be added.
//
// Symbols are interned as the decoder resolves them (datalog.h): the default symbols keep their
// indices and a block declares only the strings that no earlier first-party block declared, so the
// first-party table never overlaps; `trusting <key>` scopes index the public keys of first-party
// blocks, a key already declared is reused. Block text may contain facts, rules, checks and
// `trusting` scopes, not policies (`allow if` / `deny if`).
//
// Errors: Reason::kInvalidArgument for Datalog text that does not parse or has policies, for a
// sealed token or one whose proof key is not Ed25519 given to Attenuate or Seal, and for a secret
// key of the wrong size; the errors of Biscuit::FromBytes for a token that does not verify against
// the root public key.
//
// Thread-compatible: SecretKey is an immutable value; the functions keep no state.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/public_key.h"
#include "custos/core/result.h"

namespace custos::caps {

// An Ed25519 secret key for signing Biscuit payloads as they are, without Custos's
// domain-separation prefix. It keeps libsodium's expanded form (seed then public key, 64 bytes) so
// signing does not re-derive it; that memory is wiped when the key is destroyed or moved from.
class SecretKey {
 public:
  static constexpr size_t kSeedBytes = 32;

  // A fresh key from the system's secure random source.
  static SecretKey Generate();
  // Fails with kInvalidArgument unless `seed` has kSeedBytes bytes.
  static Result<SecretKey> FromSeed(std::span<const uint8_t> seed);

  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  ~SecretKey();

  const PublicKey& public_key() const { return public_key_; }
  // The seed, e.g. for a token's proof. Treat as secret.
  std::span<const uint8_t> seed() const { return std::span(secret_).first<kSeedBytes>(); }
  // The 64-byte Ed25519 signature of `message`.
  std::vector<uint8_t> Sign(std::span<const uint8_t> message) const;

 private:
  static constexpr size_t kSecretBytes = 64;  // crypto_sign_SECRETKEYBYTES
  SecretKey(const std::array<uint8_t, kSecretBytes>& secret, PublicKey public_key)
      : secret_(secret), public_key_(std::move(public_key)) {}
  void Wipe();
  std::array<uint8_t, kSecretBytes> secret_{};
  PublicKey public_key_;
};

// The block version new blocks are written with (the highest the decoder accepts).
inline constexpr uint32_t kBlockVersion = Biscuit::kMaxBlockVersion;

// Mints an attenuable token whose authority block is `authority_datalog`.
Result<std::vector<uint8_t>> Mint(const SecretKey& root, std::string_view authority_datalog,
                                  std::optional<uint32_t> root_key_id = std::nullopt);

// Appends a first-party block written in `block_datalog` to an attenuable token, signed with the
// ephemeral secret from the token's proof; the root secret key is not needed. The token is first
// verified against `root` (Biscuit::FromBytes).
Result<std::vector<uint8_t>> Attenuate(std::span<const uint8_t> token, const PublicKey& root,
                                       std::string_view block_datalog);

// Attenuate for a token the caller has already verified: `verified` must be the result of
// Biscuit::FromBytes(token, root) for these exact bytes (a kernel's verification cache holds it).
// Skips the signature verification, which dominates Attenuate's cost; the proof's secret is still
// checked against the last block's next key. kInvalidArgument if the token does not parse, is
// sealed, has a different number of blocks than `verified` or its proof does not match.
Result<std::vector<uint8_t>> AttenuateVerified(std::span<const uint8_t> token,
                                               const Biscuit& verified,
                                               std::string_view block_datalog);

// Replaces an attenuable token's proof with the final signature: the result still verifies but
// can no longer be attenuated.
Result<std::vector<uint8_t>> Seal(std::span<const uint8_t> token, const PublicKey& root);

}  // namespace custos::caps
