#pragma once
// PublicKey is a Biscuit public key: an algorithm (Ed25519, or ECDSA secp256r1 with SHA-256) and
// its canonical bytes (32 bytes for Ed25519, a 33-byte compressed SEC1 point for secp256r1).
// Biscuit signs raw payloads, not Custos's domain-separated messages, so these keys live here
// rather than in crypto::VerifyingKey, whose semantics stay unchanged.
//
// FromBytes rejects keys of the wrong size and secp256r1 points not on the curve (kInvalidKey).
// Verify returns kNone, kBlockSignatureDeserialization (wrong signature length or DER) or
// kInvalidSignature.
//
// Thread-safe: immutable after construction.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "custos/caps/format_error.h"
#include "custos/core/result.h"

namespace custos::caps {

// Values are the protobuf enum numbers, which are also signed into block payloads.
enum class Algorithm : uint8_t { kEd25519 = 0, kSecp256r1 = 1 };

class PublicKey {
 public:
  static Result<PublicKey> FromBytes(Algorithm algorithm, std::span<const uint8_t> bytes);
  // Parses "ed25519/<hex>" or "secp256r1/<hex>", the form samples and Datalog text use.
  static Result<PublicKey> FromString(std::string_view text);

  Algorithm algorithm() const { return algorithm_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  // "ed25519/<hex>" or "secp256r1/<hex>".
  std::string ToString() const;

  FormatError Verify(std::span<const uint8_t> message, std::span<const uint8_t> signature) const;

  bool operator==(const PublicKey&) const = default;

 private:
  PublicKey(Algorithm algorithm, std::vector<uint8_t> bytes)
      : algorithm_(algorithm), bytes_(std::move(bytes)) {}
  Algorithm algorithm_;
  std::vector<uint8_t> bytes_;
};

// True when `secret` (a 32-byte Ed25519 seed or secp256r1 scalar) is the private half of `key`.
// Used to check an attenuable token's proof; the secret is only read, never kept.
bool SecretMatchesPublicKey(std::span<const uint8_t> secret, const PublicKey& key);

}  // namespace custos::caps
