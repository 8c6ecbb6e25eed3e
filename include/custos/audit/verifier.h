#pragma once
// Verifier checks a flight log's hash chain: every entry's hash recomputes from its canonical
// bytes and its predecessor's hash, sequence numbers run 1..n without gaps, and each entry's
// prev_hash and seq inside the canonical bytes agree with its position. It says which entry is the
// first bad one and how: changed (kLogCorrupt), removed / reordered / inserted (kLogGap).
// Never reports success on data it could not fully check.
//
// Thread-compatible.

#include <cstdint>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/key_rotation.h"
#include "custos/audit/merkle.h"
#include "custos/core/result.h"
#include "custos/store/store.h"

namespace custos::audit {

struct VerifyReport {
  int64_t entries = 0;        // entries checked
  int64_t first_bad_seq = 0;  // 0 if ok
  Status status;              // ok, or kLogCorrupt / kLogGap with the explanation
  std::string head_hash;      // hash of the last good entry
  // With VerifyOptions::merkle:
  int64_t merkle_nodes = 0;  // stored nodes found equal to the recomputed ones
  int64_t checkpoints = 0;   // stored checkpoints whose root (and signature) verified
  MerkleHash root;           // recomputed root of the whole log
  // With merkle: the log's key rotation statements (verified and chained), in seq order.
  std::vector<KeyRotation> rotations;
};

// What VerifyStore checks besides the hash chain.
struct VerifyOptions {
  // Recompute the RFC 9162 tree from the entries' canonical bytes and check that the store holds
  // exactly its nodes (every leaf and perfect subtree, none beyond the log) and that every stored
  // checkpoint's root is the root of the log prefix of its size. A missing or different node is
  // kLogCorrupt; a checkpoint larger than the log is kLogGap; a malformed one kLogCorrupt.
  bool merkle = false;
  // With merkle, key rotation statements (flight-log.md §10) are always checked: both signatures
  // (kRotationInvalid), the tree size and root they name, their origin and that their old key is
  // the current one (kRotationInvalid); and every stored checkpoint of a log that has rotated
  // must be signed by the key current at its size (kCheckpointWrongSigner, kTokenInvalid).
  // If `trusted` is not empty, every key of the chain must be one of these (kKeyError), and in a
  // log that never rotated every stored checkpoint must carry a valid signature by one of them
  // (OpenCheckpoint's errors: kKeyError, kTokenInvalid). Errors name the checkpoint or the seq.
  std::vector<NoteVerifier> trusted;
};

namespace internal {
struct EntryCheck;
}  // namespace internal

// Verifies rows incrementally, in order; call Add() for each row then Finish().
class ChainVerifier {
 public:
  // Returns false once an error is found (further rows are ignored).
  bool Add(const store::LogRow& row);
  VerifyReport Finish() const;

 private:
  // VerifyStore checks each entry's own hash on several threads, then links them here in order.
  friend VerifyReport VerifyStore(store::Store& store, const VerifyOptions& options);
  bool AddChecked(const store::LogRow& row, const internal::EntryCheck& check);

  VerifyReport report_;
  std::string prev_hash_ = "0000000000000000000000000000000000000000000000000000000000000000";
  int64_t expect_seq_ = 1;
};

// Reads the whole log from the store in pages and verifies it. The next page is read while the
// current one is checked, and entries' own hashes are checked on up to hardware_concurrency
// threads; the report is the same as feeding every row to one ChainVerifier. A store error ends
// verification with that status (never success).
VerifyReport VerifyStore(store::Store& store, const VerifyOptions& options = {});
// Verifies a JSONL export (one ToJsonLine() per line).
VerifyReport VerifyJsonl(std::string_view text);

}  // namespace custos::audit
