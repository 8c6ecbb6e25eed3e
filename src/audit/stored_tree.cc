#include "custos/audit/stored_tree.h"

#include <algorithm>
#include <string>

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
