#pragma once
// Biscuit is a parsed, signature-verified Biscuit token (format versions 3 to 6, signature payload
// versions 0 and 1, Ed25519 and secp256r1 keys, sealed and attenuable proofs, third-party blocks).
// A Biscuit value only exists once every check of the token layer passed, in this order:
//   1. size cap (kMaxTokenBytes), protobuf decoding, block-count cap;
//   2. the root key: the caller's, or the one the resolver returns for the token's rootKeyId;
//   3. each block's signature by the previous next key (authority: by the root key), and each
//      external signature of a third-party block;
//   4. the proof: the secret key matches the last next key, or the final signature verifies;
//   5. each block's Datalog payload decodes, its version is supported and first-party symbols do
//      not overlap.
// Datalog is decoded only as far as symbols and public keys; authorization is a separate layer.
//
// On failure FromBytes returns kTokenInvalid (kPayloadTooLarge for size caps) and, when `error` is
// not null, sets *error to the precise FormatError; on success *error is kNone.
//
// Thread-compatible: a Biscuit is an immutable value.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "custos/caps/format_error.h"
#include "custos/caps/public_key.h"
#include "custos/core/result.h"

namespace custos::caps {

// One block of a verified token.
struct Block {
  std::vector<uint8_t> payload;  // the serialized Datalog block, exactly as signed
  PublicKey next_key;            // verifies the following block (or the seal)
  std::vector<uint8_t> signature;
  uint32_t signature_version = 0;           // SignedBlock.version: 0 or 1
  std::optional<PublicKey> external_key;    // set for third-party blocks
  std::vector<uint8_t> external_signature;  // empty unless external_key is set

  // Decoded from the payload.
  uint32_t version = 0;  // Block.version, in [kMinBlockVersion, kMaxBlockVersion]
  std::vector<std::string> symbols;
  std::vector<PublicKey> public_keys;  // the block's additions to the public key table
  std::optional<std::string> context;
};

// Returns the root public key for a token's optional rootKeyId, or nullopt if it is unknown.
using RootKeyResolver = std::function<std::optional<PublicKey>(std::optional<uint32_t>)>;

class Biscuit {
 public:
  static constexpr size_t kMaxTokenBytes = 64 * 1024;
  static constexpr size_t kMaxBlocks = 64;
  static constexpr uint32_t kMinBlockVersion = 3;
  static constexpr uint32_t kMaxBlockVersion = 6;

  static Result<Biscuit> FromBytes(std::span<const uint8_t> bytes, const PublicKey& root,
                                   FormatError* error = nullptr);
  static Result<Biscuit> FromBytes(std::span<const uint8_t> bytes, const RootKeyResolver& root,
                                   FormatError* error = nullptr);

  std::optional<uint32_t> root_key_id() const { return root_key_id_; }
  // blocks()[0] is the authority block.
  const std::vector<Block>& blocks() const { return blocks_; }
  bool sealed() const { return sealed_; }

  // One id per block, authority first: the lowercase hex of the block's signature. Revoking an id
  // revokes every token that contains that block, hence every token derived from it.
  std::vector<std::string> RevocationIds() const;

 private:
  Biscuit() = default;
  std::optional<uint32_t> root_key_id_;
  std::vector<Block> blocks_;
  bool sealed_ = false;
};

}  // namespace custos::caps
