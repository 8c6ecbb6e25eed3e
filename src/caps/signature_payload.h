#pragma once
// The byte strings Biscuit signatures cover (SPECIFICATIONS.md "Signature"), written once so the
// builder signs exactly what the verifier checks. Internal to the caps module.
//
// Thread-safe: pure functions.

#include <cstdint>
#include <span>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/public_key.h"

namespace custos::caps::internal {

// The signature version new blocks are written with.
inline constexpr uint32_t kSignatureVersion = 1;

// Version 1 block payload:
//   "\0BLOCK\0\0VERSION\0" 1(LE32) "\0PAYLOAD\0" payload "\0ALGORITHM\0" alg(LE32)
//   "\0NEXTKEY\0" key ["\0PREVSIG\0" previous signature ["\0EXTERNALSIG\0" external signature]]
// The previous signature binds a non-authority block to its token; `external_signature` is null
// for a first-party block.
std::vector<uint8_t> BlockSignaturePayloadV1(std::span<const uint8_t> payload,
                                             const PublicKey& next_key,
                                             std::span<const uint8_t> previous_sig, bool authority,
                                             const std::vector<uint8_t>* external_signature);

// What block `b`'s signature covers, for its signature version (0, deprecated upstream:
// payload || [external signature] || alg(LE32) || next key; or 1, above).
std::vector<uint8_t> BlockSignaturePayload(const Block& b, std::span<const uint8_t> previous_sig,
                                           bool authority);

// What a third party signs (version 1 only): its block bound to the previous block's signature.
std::vector<uint8_t> ExternalSignaturePayload(const Block& b,
                                              std::span<const uint8_t> previous_sig);

// The sealing signature covers the last block: payload || alg(LE32) || next key || its signature.
std::vector<uint8_t> SealPayload(const Block& b);

}  // namespace custos::caps::internal
