#pragma once
// FormatError names why a serialized Biscuit was rejected before any Datalog ran: the token layer's
// own vocabulary, finer than custos::Reason. Each maps to one Reason (kPayloadTooLarge for size
// caps, kTokenInvalid otherwise) and to the error kind the Biscuit samples expect, so the
// conformance test can assert the exact kind and the kernel can still speak in Reasons.
//
// Numbers are append-only, as Reason's.
//
// Thread-safe: constant data only.

#include <cstdint>
#include <string>
#include <string_view>

#include "custos/core/status.h"

namespace custos::caps {

enum class FormatError : uint8_t {
  kNone = 0,
  // The bytes are not a Biscuit / Block protobuf, or a required field is missing.
  kDeserialization = 1,
  // A signature has the wrong length or encoding for its algorithm.
  kBlockSignatureDeserialization = 2,
  // A signature (block, external or sealing) does not verify, or the proof's secret key does not
  // match the last block's next key.
  kInvalidSignature = 3,
  // A public key has the wrong size or is not a valid point for its algorithm.
  kInvalidKey = 4,
  // The token names a root key id the verifier does not know.
  kUnknownRootKey = 5,
  // A block's Datalog version or a signature payload version is outside the supported range.
  kUnsupportedVersion = 6,
  // Two first-party blocks declare the same symbol.
  kSymbolTableOverlap = 7,
  // The token or one of its parts exceeds a size cap (bytes, blocks, symbols, keys).
  kPayloadTooLarge = 8,
  // The authority block carries an external signature (meaningless there).
  kExternalSignatureOnAuthority = 9,
};

// snake_case name, e.g. "invalid_signature".
std::string_view FormatErrorName(FormatError e);

// The Status the token layer returns for `e`: Reason kPayloadTooLarge for kPayloadTooLarge,
// kTokenInvalid otherwise; the message is "<name>: <detail>" and `at` names the part of the token
// (e.g. "/blocks/1/signature"). REQUIRES: e != kNone.
Status FormatErrorStatus(FormatError e, std::string_view detail, std::string at = {});

}  // namespace custos::caps
