#pragma once
// Signed checkpoints of the flight log in the C2SP tlog-checkpoint / signed-note formats
// (docs/spec/checkpoint.md is normative):
//   body  = <origin>\n<decimal tree size>\n<base64 root hash>\n[<extension line>\n]...
//   note  = body \n (— <key name> <base64(key hash[4] || signature[64])>\n)+
// where the em dash is U+2014 and, for Ed25519 (signature type 0x01),
//   key hash = SHA-256(<key name> || "\n" || 0x01 || public key)[0:4].
// The signature is plain Ed25519 over the body (crypto::SignContext::kCheckpointNote), so any
// standard note verifier (Go's sumdb/note, python3-nacl, ...) accepts Custos checkpoints.
//
// OpenCheckpoint() verifies every signature whose (name, key hash) matches a known key; a bad one
// rejects the note (kTokenInvalid); signatures by unknown keys are reported but not trusted; at
// least one known key, and every required one, must have signed (else kKeyError). Malformed text,
// base64, sizes, or more than 100 signatures give kInvalidArgument naming the line; invalid
// UTF-8 gives kInvalidUtf8. Never a crash, never a "verified" on bad data.
//
// Thread-compatible (free functions and values).

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "custos/audit/merkle.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"

namespace custos::audit {

inline constexpr size_t kMaxNoteBytes = 1 << 20;
inline constexpr size_t kMaxNoteSignatures = 100;
inline constexpr uint8_t kNoteSigTypeEd25519 = 0x01;

struct Checkpoint {
  std::string origin;  // e.g. "custos/<identity key id>"
  uint64_t size = 0;
  MerkleHash root;
  std::vector<std::string> extensions;  // optional extra body lines, opaque
  bool operator==(const Checkpoint&) const = default;
};

// The checkpoint body. kInvalidArgument if the origin or an extension line is empty or holds a
// control character.
Result<std::string> CheckpointBody(const Checkpoint& c);
// Parses a body (origin, size without leading zeros, base64 of exactly 32 bytes, extensions).
Result<Checkpoint> ParseCheckpointBody(std::string_view body);

// A public key trusted to sign notes under `name`.
struct NoteVerifier {
  std::string name;
  std::array<uint8_t, 4> key_hash{};
  crypto::VerifyingKey key;
};

// kInvalidArgument if `name` is empty or holds (Unicode) whitespace, a control character or '+';
// kInvalidUtf8 if it is not UTF-8.
Result<NoteVerifier> MakeNoteVerifier(std::string_view name, const crypto::VerifyingKey& key);
// The verifier key text "<name>+<hex key hash>+<base64(0x01 || public key)>" that Go's
// note.NewVerifier reads, and its parser (checks the hash matches; kKeyError for a bad key).
std::string VerifierKeyString(const NoteVerifier& v);
Result<NoteVerifier> ParseVerifierKeyString(std::string_view vkey);

struct NoteSignature {
  std::string name;
  std::array<uint8_t, 4> key_hash{};
  std::string signature;  // the bytes after the key hash (64 for Ed25519)
};

struct SignedNote {
  std::string text;  // the signed body, ending in "\n"
  std::vector<NoteSignature> signatures;
};

// Splits a note into text and signature lines (syntax only; nothing is verified).
Result<SignedNote> ParseSignedNote(std::string_view note);
// One signature line ("— name base64\n") by `key` over `text` under `name`.
Result<std::string> SignNoteLine(std::string_view text, std::string_view name,
                                 const crypto::SigningKey& key);
// The note for `c` signed by `key` under `name`.
Result<std::string> SignCheckpoint(const Checkpoint& c, std::string_view name,
                                   const crypto::SigningKey& key);
// Adds a (co)signature by `key` under `name` to an existing note (e.g. a witness).
Result<std::string> CosignNote(std::string_view note, std::string_view name,
                               const crypto::SigningKey& key);

struct OpenedCheckpoint {
  Checkpoint checkpoint;
  std::vector<std::string> verified_by;  // names of known keys whose signature verified
  std::vector<std::string> unknown;      // names on signatures by keys not in `known`
};

// Verifies `note` against `known` keys and parses its body. Every name in `required` must be
// among the verified signers.
Result<OpenedCheckpoint> OpenCheckpoint(std::string_view note, std::span<const NoteVerifier> known,
                                        std::span<const std::string> required = {});

}  // namespace custos::audit
