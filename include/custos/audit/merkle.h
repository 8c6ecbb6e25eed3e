#pragma once
// RFC 9162 Merkle tree hashing over flight-log entries (docs/spec/checkpoint.md is normative):
//   leaf = SHA-256(0x00 || canonical)       node = SHA-256(0x01 || left || right)
//   MTH({}) = SHA-256("")
// CompactRange keeps only the O(log n) roots of the perfect subtrees that make up a tree of n
// leaves (the "frontier"): Append is O(log n) and Root() is the tree head, which is all a writer or
// a verifier needs. Proofs need interior hashes: they are computed over a NodeSource, an interface
// giving the hash of any perfect subtree, so that a store-backed source can be plugged in;
// MerkleTree is the in-memory one (every perfect subtree kept, about 2n hashes of memory).
//
// Leaf indexes are 0-based: entry `seq` is leaf seq - 1. Errors: an index not below the tree
// size, m > n, a size beyond the source, or a malformed proof give kInvalidArgument; a well-formed
// proof that does not lead to the expected root gives kLogCorrupt. Never a crash on bad input.
//
// Thread-compatible.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "custos/core/result.h"
#include "custos/crypto/sha256.h"

namespace custos::audit {

using MerkleHash = crypto::Digest;

// Longest proof accepted by the verifiers: a tree of at most 2^64 - 1 leaves needs 64 hashes for
// inclusion and 2 * 64 for consistency (RFC 9162 bounds are lower; these are caps, not formats).
inline constexpr size_t kMaxProofHashes = 128;

MerkleHash MerkleLeafHash(std::string_view canonical);
MerkleHash MerkleNodeHash(const MerkleHash& left, const MerkleHash& right);
MerkleHash MerkleEmptyRoot();  // SHA-256 of the empty string

// A perfect subtree's hash and position: 2^level leaves starting at leaf index << level.
struct MerkleNodeRef {
  int level = 0;
  uint64_t index = 0;
  MerkleHash hash;
};

class NodeSource;

// The frontier of an append-only tree: one perfect-subtree root per set bit of size().
class CompactRange {
 public:
  CompactRange() = default;
  // The frontier of the first `size` leaves of `src` (O(log n) Node() calls); the source's errors
  // (kInvalidArgument if size > src.size(), kNotFound / kStoreError from a store) pass through.
  static Result<CompactRange> FromSource(const NodeSource& src, uint64_t size);

  // O(log n). If `completed` is not null, appends the new leaf (level 0) and every perfect subtree
  // it completes, lowest level first: exactly the nodes a store must add for this leaf.
  void Append(const MerkleHash& leaf_hash, std::vector<MerkleNodeRef>* completed = nullptr);
  uint64_t size() const { return size_; }
  MerkleHash Root() const;  // MTH of all leaves appended so far

 private:
  uint64_t size_ = 0;
  std::vector<MerkleHash> roots_;  // largest subtree first
};

// Hashes of perfect subtrees of one append-only tree.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  // Number of leaves available.
  virtual uint64_t size() const = 0;
  // Hash of the perfect subtree of 2^level leaves starting at leaf index << level.
  // REQUIRES: level < 64 and ((index + 1) << level) <= size() (callers check; implementations
  // may return kInvalidArgument or a store error rather than crash).
  virtual Result<MerkleHash> Node(int level, uint64_t index) const = 0;
};

// MTH of leaves [begin, end) of `src`, O(log n) Node() calls. kInvalidArgument unless
// begin <= end <= src.size() and the range is a subtree of the RFC 9162 tree (every range the
// proofs below ask for is; e.g. [1, 3) is not).
Result<MerkleHash> SubtreeHash(const NodeSource& src, uint64_t begin, uint64_t end);
// The root of the tree made of the first `size` leaves.
Result<MerkleHash> RootAt(const NodeSource& src, uint64_t size);
// RFC 9162 §2.1.3.1 PATH(index, D[0:size]). kInvalidArgument unless index < size <= src.size().
Result<std::vector<MerkleHash>> InclusionProof(const NodeSource& src, uint64_t index,
                                               uint64_t size);
// RFC 9162 §2.1.4.1 PROOF(m, D[0:n]). kInvalidArgument unless 0 < m <= n <= src.size(); the
// proof for m == n is empty.
Result<std::vector<MerkleHash>> ConsistencyProof(const NodeSource& src, uint64_t m, uint64_t n);

// RFC 9162 §2.1.3.2. kInvalidArgument if index >= size or the proof has the wrong length for
// (index, size); kLogCorrupt if the path does not lead to `root`.
Status VerifyInclusion(uint64_t index, uint64_t size, const MerkleHash& leaf_hash,
                       std::span<const MerkleHash> proof, const MerkleHash& root);
// RFC 9162 §2.1.4.2, plus m == n (proof must be empty and the roots equal). kInvalidArgument if
// m == 0, m > n or the proof has the wrong length; kLogCorrupt if it does not lead to both roots.
Status VerifyConsistency(uint64_t m, uint64_t n, std::span<const MerkleHash> proof,
                         const MerkleHash& old_root, const MerkleHash& new_root);

// In-memory NodeSource: every perfect subtree of the leaves appended so far, built
// incrementally (Append is amortised O(1), worst case O(log n)).
class MerkleTree final : public NodeSource {
 public:
  void Append(const MerkleHash& leaf_hash);
  uint64_t size() const override { return levels_.empty() ? 0 : levels_[0].size(); }
  Result<MerkleHash> Node(int level, uint64_t index) const override;
  MerkleHash Root() const;  // RootAt(size())

 private:
  std::vector<std::vector<MerkleHash>> levels_;  // levels_[k][i]: subtree of 2^k leaves at i<<k
};

}  // namespace custos::audit
