#pragma once
// Key rotation statements of the flight log (docs/spec/flight-log.md §10, decision 011).
//
// When the kernel's identity key is replaced, the log records an `event` entry with `syscall`
// "identity.rotate" whose `extra` is the statement
//   {origin, tree_size, root, old_key, old_key_id, new_key, new_key_id,
//    old_signature, new_signature}
// (keys and signatures lowercase hex). Both keys sign the same message,
//   "custos/v1/key_rotation\0" || CanonicalJson(extra without the two signatures)
// (crypto::SignContext::kKeyRotation), so the old key hands over to the new one and the new one
// accepts; a statement signed by one key only is rejected. `tree_size` is the number of entries
// before the statement and `root` their Merkle root. Checkpoints of a tree of size n are signed by
// the key current at n: the new key of the last statement with seq <= n, else the log's first key.
//
// Errors: a malformed statement or a signature that does not verify is kRotationInvalid with the
// entry's seq in the message.
//
// Thread-compatible (free functions and values).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/log_entry.h"
#include "custos/audit/merkle.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"
#include "custos/store/store.h"

namespace custos::audit {

inline constexpr char kRotationEvent[] = "identity.rotate";

// The note key name of a log signing key: "custos/<key id>". Before any rotation it is also the
// origin of a log created with that key.
std::string KeyName(const crypto::VerifyingKey& key);

struct KeyRotation {
  int64_t seq = 0;  // the statement's entry (0 before it is appended)
  std::string origin;
  uint64_t tree_size = 0;
  MerkleHash root;
  std::array<uint8_t, 32> old_key{};  // Ed25519 public keys
  std::array<uint8_t, 32> new_key{};
  crypto::Signature old_signature;
  crypto::Signature new_signature;
};

// The bytes both keys sign (without the domain prefix, which Sign/Verify add).
Result<std::string> RotationMessage(const KeyRotation& r);
// A statement handing `origin`'s log over from `old_key` to `new_key` after `tree_size` entries
// whose root is `root`, signed by both. kInvalidArgument if the keys are the same.
Result<KeyRotation> SignRotation(std::string origin, uint64_t tree_size, const MerkleHash& root,
                                 const crypto::SigningKey& old_key,
                                 const crypto::SigningKey& new_key);
// The log entry recording `r` (type "event", syscall "identity.rotate").
LogEntry RotationEntry(const KeyRotation& r);

// True if the entry claims to be a rotation statement (type "event", syscall "identity.rotate").
bool IsRotationEntry(const LogEntry& e);
// Parses (kRotationInvalid if malformed: missing or unknown keys, bad hex, a key id that is not
// its key's) and verifies both signatures (kRotationInvalid naming the key whose signature does
// not verify). Does not check the tree, the origin or the chain of keys.
Result<KeyRotation> OpenRotation(const LogEntry& e);

// The log's signing keys over time, built from its rotation statements in seq order.
class KeyChain {
 public:
  // `first` may be unknown (a log with no rotation: whoever signed its checkpoints).
  explicit KeyChain(std::optional<crypto::VerifyingKey> first = std::nullopt)
      : first_(std::move(first)) {}
  // Appends a verified statement. kRotationInvalid if its old key is not the current key or its
  // seq does not follow the previous statement's.
  Status Add(KeyRotation r);
  // The key current for a tree of `size` entries; nullopt if that is the unknown first key.
  std::optional<crypto::VerifyingKey> KeyAt(uint64_t size) const;
  const std::vector<KeyRotation>& rotations() const { return rotations_; }
  // Every key of the chain that is known, first to last.
  std::vector<crypto::VerifyingKey> Keys() const;

 private:
  std::optional<crypto::VerifyingKey> first_;
  std::vector<KeyRotation> rotations_;
};

// The log's rotation statements, each opened (OpenRotation), checked against the tree before it
// and chained (kRotationInvalid otherwise). Reads every entry: O(n), for rare paths (audit show,
// consistency with an old checkpoint, finishing an interrupted rotation); `audit verify` gets the
// same from its single pass.
Result<KeyChain> ReadKeyChain(store::Store& st);

// Checks that a checkpoint note of a tree of `size` entries is signed by `current` (the key
// current at that size) under KeyName(current): kCheckpointWrongSigner if it carries no signature
// by that key (e.g. only the old key's after a rotation), kTokenInvalid if that signature is bad.
// With `trusted` non-empty, `current` must also be one of them (kKeyError otherwise).
Status CheckCheckpointSigner(std::string_view note, uint64_t size,
                             const crypto::VerifyingKey& current,
                             const std::vector<NoteVerifier>& trusted);

}  // namespace custos::audit
