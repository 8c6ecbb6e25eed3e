#pragma once
// The flight log's Merkle tree as persisted in the store (docs/spec/checkpoint.md "Stored tree"):
// LogWriter adds, in the same transaction as each batch of rows, the leaf of every entry and every
// perfect subtree the batch completes, so the store holds every node of every perfect subtree.
// StoreNodeSource reads them, so proofs and tree heads cost O(log n) point reads and a restart
// never rehashes the log.
//
// Errors: a node that is missing or not 32 bytes is kLogCorrupt (the store lost part of the tree);
// store failures pass through as kStoreError.
//
// Thread-safe if the store is (the source holds no mutable state).

#include <cstdint>
#include <vector>

#include "custos/audit/merkle.h"
#include "custos/core/result.h"
#include "custos/store/store.h"

namespace custos::audit {

class StoreNodeSource final : public NodeSource {
 public:
  // The tree of the first `size` leaves. `store` must outlive the source.
  StoreNodeSource(store::Store* store, uint64_t size) : store_(store), size_(size) {}
  uint64_t size() const override { return size_; }
  Result<MerkleHash> Node(int level, uint64_t index) const override;
  store::Store* store() const { return store_; }

 private:
  store::Store* store_;
  uint64_t size_;
};

// InclusionProof(src, index, size) with every stored node it needs read in one query when the
// store is a store::MerkleBatchReader (SQLite is), else node by node. Same result and errors.
Result<std::vector<MerkleHash>> StoredInclusionProof(const StoreNodeSource& src, uint64_t index,
                                                     uint64_t size);

// A source over the store's whole tree (size = MerkleLeafCount()).
Result<StoreNodeSource> OpenStoredTree(store::Store* store);

// The store's form of nodes CompactRange::Append completed.
std::vector<store::MerkleNode> ToStoreNodes(const std::vector<MerkleNodeRef>& nodes);

// 32 raw bytes as a MerkleHash; kLogCorrupt naming `what` if the size is wrong.
Result<MerkleHash> HashFromBytes(std::string_view bytes, std::string_view what);

}  // namespace custos::audit
