#pragma once
// MerkleBatchReader is an optional capability of a store: many stored Merkle nodes, by position,
// in one query (an inclusion proof needs ~log2(n) nodes at different levels, which point reads
// would fetch one round trip each). Callers find it with dynamic_cast and fall back to
// Store::ReadMerkleNode without it.
//
// Thread-safe as the store is.

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "custos/core/result.h"

namespace custos::store {

class MerkleBatchReader {
 public:
  virtual ~MerkleBatchReader() = default;
  // The hashes at `at` (level, index), in the same order. kNotFound naming the first position
  // that is not stored; kInvalidArgument for a position out of range or more than 256 positions.
  virtual Result<std::vector<std::string>> ReadMerkleNodesAt(
      std::span<const std::pair<int, uint64_t>> at) = 0;
};

}  // namespace custos::store
