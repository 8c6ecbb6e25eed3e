#include "custos/audit/stored_tree.h"

#include <algorithm>
#include <string>
#include <utility>

#include "custos/store/merkle_batch.h"

namespace custos::audit {

Result<MerkleHash> HashFromBytes(std::string_view bytes, std::string_view what) {
  MerkleHash h;
  if (bytes.size() != h.bytes.size()) {
    return Status(Reason::kLogCorrupt,
                  std::string(what) + " is " + std::to_string(bytes.size()) + " bytes, not 32");
  }
  std::copy(bytes.begin(), bytes.end(), h.bytes.begin());
  return h;
}

Result<MerkleHash> StoreNodeSource::Node(int level, uint64_t index) const {
  if (level < 0 || level >= 64 || ((index + 1) << level) > size_ || (index + 1) << level == 0) {
    return Status(Reason::kInvalidArgument, "Merkle node (" + std::to_string(level) + ", " +
                                                std::to_string(index) + ") is outside a tree of " +
                                                std::to_string(size_) + " leaves");
  }
  Result<std::string> bytes = store_->ReadMerkleNode(level, index);
  if (!bytes.ok()) {
    if (bytes.status().reason() == Reason::kNotFound) {
      return Status(Reason::kLogCorrupt, "the store lacks Merkle node (" + std::to_string(level) +
                                             ", " + std::to_string(index) + ") of a tree of " +
                                             std::to_string(size_) + " leaves");
    }
    return bytes.status();
  }
  return HashFromBytes(
      *bytes, "stored Merkle node (" + std::to_string(level) + ", " + std::to_string(index) + ")");
}

namespace {

// Records the nodes a tree algorithm asks for (and answers with zero hashes): which nodes an
// inclusion proof reads depends only on the index and size, never on the hashes.
class RecordingSource final : public NodeSource {
 public:
  explicit RecordingSource(uint64_t size) : size_(size) {}
  uint64_t size() const override { return size_; }
  Result<MerkleHash> Node(int level, uint64_t index) const override {
    at_.emplace_back(level, index);
    return MerkleHash{};
  }
  const std::vector<std::pair<int, uint64_t>>& at() const { return at_; }

 private:
  uint64_t size_;
  mutable std::vector<std::pair<int, uint64_t>> at_;
};

// Answers from nodes fetched beforehand (in the order RecordingSource saw them).
class FetchedSource final : public NodeSource {
 public:
  FetchedSource(uint64_t size, const std::vector<std::pair<int, uint64_t>>& at,
                std::vector<MerkleHash> hashes)
      : size_(size), at_(at), hashes_(std::move(hashes)) {}
  uint64_t size() const override { return size_; }
  Result<MerkleHash> Node(int level, uint64_t index) const override {
    for (size_t i = 0; i < at_.size(); ++i) {
      if (at_[i].first == level && at_[i].second == index) {
        return hashes_[i];
      }
    }
    return Status(Reason::kInvalidArgument, "Merkle node not prefetched");
  }

 private:
  uint64_t size_;
  const std::vector<std::pair<int, uint64_t>>& at_;
  std::vector<MerkleHash> hashes_;
};

}  // namespace

Result<std::vector<MerkleHash>> StoredInclusionProof(const StoreNodeSource& src, uint64_t index,
                                                     uint64_t size) {
  auto* batch = dynamic_cast<store::MerkleBatchReader*>(src.store());
  RecordingSource rec(src.size());
  // Range errors (index >= size, size > tree) come from this first pass, as they would.
  CUSTOS_RETURN_IF_ERROR(InclusionProof(rec, index, size).status());
  if (batch == nullptr || rec.at().empty() || rec.at().size() > 256) {
    return InclusionProof(src, index, size);
  }
  Result<std::vector<std::string>> bytes = batch->ReadMerkleNodesAt(rec.at());
  if (!bytes.ok()) {
    if (bytes.status().reason() == Reason::kNotFound) {
      return Status(Reason::kLogCorrupt, "the store lacks a Merkle node of a tree of " +
                                             std::to_string(src.size()) +
                                             " leaves: " + std::string(bytes.status().message()));
    }
    return bytes.status();
  }
  std::vector<MerkleHash> hashes;
  hashes.reserve(bytes->size());
  for (size_t i = 0; i < bytes->size(); ++i) {
    CUSTOS_ASSIGN_OR_RETURN(
        MerkleHash h,
        HashFromBytes((*bytes)[i], "stored Merkle node (" + std::to_string(rec.at()[i].first) +
                                       ", " + std::to_string(rec.at()[i].second) + ")"));
    hashes.push_back(h);
  }
  return InclusionProof(FetchedSource(src.size(), rec.at(), std::move(hashes)), index, size);
}

Result<StoreNodeSource> OpenStoredTree(store::Store* store) {
  CUSTOS_ASSIGN_OR_RETURN(int64_t leaves, store->MerkleLeafCount());
  return StoreNodeSource(store, static_cast<uint64_t>(leaves));
}

std::vector<store::MerkleNode> ToStoreNodes(const std::vector<MerkleNodeRef>& nodes) {
  std::vector<store::MerkleNode> out;
  out.reserve(nodes.size());
  for (const MerkleNodeRef& n : nodes) {
    out.push_back(store::MerkleNode{
        n.level, n.index,
        std::string(reinterpret_cast<const char*>(n.hash.bytes.data()), n.hash.bytes.size())});
  }
  return out;
}

}  // namespace custos::audit
