#pragma once
// Typed keys (Tink-style): secret bytes live in sodium_malloc'd (guard pages, mlock'd, read-only
// after construction via sodium_mprotect_readonly, wiped by sodium_free) memory and leave
// only through ExportSecret(SecretAccess), whose token only crypto::KeyStore can make, so grep for
// SecretAccess lists every raw access.
//
// Every signature is domain-separated by a SignContext: the signed message is
// "custos/v1/<context>\0" || msg, so a signature made for one purpose never verifies for another.
// One exception, kCheckpointNote (docs/decisions/005-checkpoint-note-signatures.md): C2SP signed
// notes are verified by standard tools that sign the note text itself, so under that context the
// message is signed raw, and only if it is note text (non-empty, ends in '\n', no control byte
// other than '\n'; else kInvalidArgument). Note text never contains the NUL byte that every
// domain-separated message carries, so the two kinds of signed message can never coincide.
//
// Failure modes: all-zero or short keys are rejected on load (kKeyError), and so are public keys
// that are not canonical prime-order Ed25519 points; Verify() returns kTokenInvalid on a bad
// signature; Sign() on a moved-from key is kKeyError. Keys print only their KeyId.
//
// Thread-safe: keys are immutable after construction; Sign/Verify may run concurrently.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos::crypto {

enum class SignContext : uint8_t {
  kCheckpoint = 1,  // flight-log checkpoints
  kReceipt = 2,     // per-syscall receipts
  kCapabilityToken = 3,
  kKeyRotation = 4,
  kCheckpointNote = 5,  // C2SP signed-note text, signed without prefix (see above)
  kSignedRequest = 6,   // custosd requests signed by an agent's key (decision 022)
  kTest = 100,
};
std::string_view SignContextName(SignContext c);

// First 8 bytes of SHA-256 of the public key, as 16 hex chars.
struct KeyId {
  std::string hex;
  bool operator==(const KeyId&) const = default;
};

struct Signature {
  std::array<uint8_t, 64> bytes{};
};

class SecretAccess {
 private:
  SecretAccess() = default;
  friend class KeyStore;
  friend class AeadKey;  // DeriveFrom() keys a KDF with the seed; the seed never leaves crypto.
};

class VerifyingKey {
 public:
  static Result<VerifyingKey> FromBytes(std::span<const uint8_t> bytes);  // 32 bytes
  Status Verify(SignContext ctx, std::span<const uint8_t> msg, const Signature& sig) const;
  const std::array<uint8_t, 32>& bytes() const { return pk_; }
  KeyId id() const;

 private:
  explicit VerifyingKey(const std::array<uint8_t, 32>& pk) : pk_(pk) {}
  std::array<uint8_t, 32> pk_;
};

class SigningKey {
 public:
  static Result<SigningKey> Generate();
  // From a 32-byte Ed25519 seed.
  static Result<SigningKey> FromSeed(std::span<const uint8_t> seed, SecretAccess);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey();

  Result<Signature> Sign(SignContext ctx, std::span<const uint8_t> msg) const;
  const VerifyingKey& verifying_key() const { return vk_; }
  KeyId id() const { return vk_.id(); }

  // The 32-byte seed. Only KeyStore can call this.
  std::span<const uint8_t> ExportSecret(SecretAccess) const;

 private:
  SigningKey(uint8_t* sk, VerifyingKey vk) : sk_(sk), vk_(vk) {}
  uint8_t* sk_;  // 64-byte libsodium secret key (seed || pk) in sodium_malloc memory
  VerifyingKey vk_;
};

// A 32-byte symmetric key for XChaCha20-Poly1305 (sealed payloads, keys at rest).
class AeadKey {
 public:
  static AeadKey Generate();
  // Derives a subkey with BLAKE2b keyed by the signing key's seed, for one named purpose:
  // BLAKE2b-256(key = seed, message = purpose). Deterministic; distinct purposes give
  // independent keys. REQUIRES: `key` is not moved-from.
  static AeadKey DeriveFrom(const SigningKey& key, std::string_view purpose);
  AeadKey(AeadKey&&) noexcept;
  AeadKey& operator=(AeadKey&&) noexcept;
  AeadKey(const AeadKey&) = delete;
  ~AeadKey();

  // Returns nonce(24) || ciphertext || tag(16). `ad` is authenticated, not encrypted.
  std::string Seal(std::string_view plaintext, std::string_view ad) const;
  // kKeyError-free: a wrong key, changed byte or wrong `ad` gives kLogCorrupt.
  Result<std::string> Open(std::string_view sealed, std::string_view ad) const;

 private:
  explicit AeadKey(uint8_t* k) : k_(k) {}
  uint8_t* k_;
};

}  // namespace custos::crypto
