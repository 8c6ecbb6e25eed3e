#include "custos/audit/merkle.h"

#include <bit>
#include <string>

namespace custos::audit {
namespace {

// Largest power of two strictly below n. REQUIRES: n >= 2.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

std::string U(uint64_t v) { return std::to_string(v); }

uint64_t ShiftRight(uint64_t v, int s) { return s >= 64 ? 0 : v >> s; }

// Expected inclusion proof length for (index, size) (RFC 9162 §2.1.3.1 shape).
size_t InclusionLength(uint64_t index, uint64_t size) {
  const int inner = std::bit_width(index ^ (size - 1));
  const int border = std::popcount(ShiftRight(index, inner));
  return static_cast<size_t>(inner + border);
}

Status PathInto(const NodeSource& src, uint64_t index, uint64_t begin, uint64_t end,
                std::vector<MerkleHash>* out) {
  // Iterative PATH(m, D[begin:end]): collect siblings top-down, then reverse to leaf-first order.
  std::vector<MerkleHash> top_down;
  while (end - begin > 1) {
    const uint64_t k = SplitPoint(end - begin);
    if (index < begin + k) {
      CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, SubtreeHash(src, begin + k, end));
      top_down.push_back(h);
      end = begin + k;
    } else {
      CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, SubtreeHash(src, begin, begin + k));
      top_down.push_back(h);
      begin += k;
    }
  }
  out->assign(top_down.rbegin(), top_down.rend());
  return Status::Ok();
}

}  // namespace

MerkleHash MerkleLeafHash(std::string_view canonical) {
  crypto::Sha256Hasher h;
  const uint8_t prefix = 0x00;
  h.Update(std::span<const uint8_t>(&prefix, 1));
  h.Update(canonical);
  return h.Finish();
}

MerkleHash MerkleNodeHash(const MerkleHash& left, const MerkleHash& right) {
  uint8_t buf[65];
  buf[0] = 0x01;
  std::copy(left.bytes.begin(), left.bytes.end(), buf + 1);
  std::copy(right.bytes.begin(), right.bytes.end(), buf + 33);
  return crypto::Sha256(std::span<const uint8_t>(buf, sizeof(buf)));
}

MerkleHash MerkleEmptyRoot() { return crypto::Sha256(std::string_view()); }

// ---- CompactRange ----

Result<CompactRange> CompactRange::FromSource(const NodeSource& src, uint64_t size) {
  if (size > src.size()) {
    return Status(Reason::kInvalidArgument,
                  "tree size " + U(size) + " is beyond the " + U(src.size()) + " leaves available");
  }
  CompactRange r;
  // One perfect subtree per set bit of size, largest first.
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    if (((size >> level) & 1) == 0) {
      continue;
    }
    CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, src.Node(level, begin >> level));
    r.roots_.push_back(h);
    begin += uint64_t{1} << level;
  }
  r.size_ = size;
  return r;
}

void CompactRange::Append(const MerkleHash& leaf_hash, std::vector<MerkleNodeRef>* completed) {
  roots_.push_back(leaf_hash);
  if (completed != nullptr) {
    completed->push_back(MerkleNodeRef{0, size_, leaf_hash});
  }
  // Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
  int level = 0;
  for (uint64_t s = size_; (s & 1) != 0; s >>= 1) {
    MerkleHash right = roots_.back();
    roots_.pop_back();
    roots_.back() = MerkleNodeHash(roots_.back(), right);
    ++level;
    if (completed != nullptr) {
      completed->push_back(MerkleNodeRef{level, size_ >> level, roots_.back()});
    }
  }
  ++size_;
}

MerkleHash CompactRange::Root() const {
  if (roots_.empty()) {
    return MerkleEmptyRoot();
  }
  MerkleHash acc = roots_.back();
  for (size_t i = roots_.size() - 1; i-- > 0;) {
    acc = MerkleNodeHash(roots_[i], acc);
  }
  return acc;
}

// ---- Proof generation ----

Result<MerkleHash> SubtreeHash(const NodeSource& src, uint64_t begin, uint64_t end) {
  if (begin > end || end > src.size()) {
    return Status(Reason::kInvalidArgument, "subtree [" + U(begin) + ", " + U(end) +
                                                ") is outside the tree of size " + U(src.size()));
  }
  if (begin == end) {
    return MerkleEmptyRoot();
  }
  // Peel perfect subtrees off the left; the right remainder recurses (at most 64 steps).
  std::vector<MerkleHash> parts;
  while (begin < end) {
    const uint64_t n = end - begin;
    // The largest perfect subtree aligned at `begin` that fits: in RFC 9162's split the left
    // part [begin, begin + k) with k = bit_floor(n) when n is a power of two, else SplitPoint.
    const uint64_t k = std::has_single_bit(n) ? n : SplitPoint(n);
    if ((begin & (k - 1)) != 0) {
      return Status(Reason::kInvalidArgument,
                    "range starting at " + U(begin) + " is not a subtree of the log's tree");
    }
    const int level = std::countr_zero(k);
    CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, src.Node(level, begin >> level));
    parts.push_back(h);
    begin += k;
  }
  MerkleHash acc = parts.back();
  for (size_t i = parts.size() - 1; i-- > 0;) {
    acc = MerkleNodeHash(parts[i], acc);
  }
  return acc;
}

Result<MerkleHash> RootAt(const NodeSource& src, uint64_t size) {
  return SubtreeHash(src, 0, size);
}

Result<std::vector<MerkleHash>> InclusionProof(const NodeSource& src, uint64_t index,
                                               uint64_t size) {
  if (size > src.size()) {
    return Status(Reason::kInvalidArgument,
                  "tree size " + U(size) + " exceeds the " + U(src.size()) + " leaves available");
  }
  if (index >= size) {
    return Status(Reason::kInvalidArgument,
                  "leaf index " + U(index) + " is beyond the tree of size " + U(size));
  }
  std::vector<MerkleHash> proof;
  CUSTOS_RETURN_IF_ERROR(PathInto(src, index, 0, size, &proof));
  return proof;
}

Result<std::vector<MerkleHash>> ConsistencyProof(const NodeSource& src, uint64_t m, uint64_t n) {
  if (n > src.size()) {
    return Status(Reason::kInvalidArgument,
                  "tree size " + U(n) + " exceeds the " + U(src.size()) + " leaves available");
  }
  if (m == 0 || m > n) {
    return Status(Reason::kInvalidArgument,
                  "consistency proof needs 0 < m <= n, got m=" + U(m) + " n=" + U(n));
  }
  // SUBPROOF(m, D[begin:end], b), iteratively; hashes are collected top-down and reversed.
  std::vector<MerkleHash> top_down;
  uint64_t begin = 0, end = n;
  bool whole = true;  // b: the old tree is exactly this subtree's left part so far
  while (true) {
    const uint64_t size = end - begin;
    const uint64_t mm = m - begin;
    if (mm == size) {
      if (!whole) {
        CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, SubtreeHash(src, begin, end));
        top_down.push_back(h);
      }
      break;
    }
    const uint64_t k = SplitPoint(size);
    if (mm <= k) {
      CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, SubtreeHash(src, begin + k, end));
      top_down.push_back(h);
      end = begin + k;
    } else {
      CUSTOS_ASSIGN_OR_RETURN(MerkleHash h, SubtreeHash(src, begin, begin + k));
      top_down.push_back(h);
      begin += k;
      whole = false;
    }
  }
  return std::vector<MerkleHash>(top_down.rbegin(), top_down.rend());
}

// ---- Verification ----

Status VerifyInclusion(uint64_t index, uint64_t size, const MerkleHash& leaf_hash,
                       std::span<const MerkleHash> proof, const MerkleHash& root) {
  if (index >= size) {
    return Status(Reason::kInvalidArgument,
                  "leaf index " + U(index) + " is beyond the tree of size " + U(size));
  }
  const size_t want = InclusionLength(index, size);
  if (proof.size() != want) {
    return Status(Reason::kInvalidArgument, "inclusion proof for leaf " + U(index) +
                                                " in a tree of size " + U(size) + " has " +
                                                std::to_string(want) + " hashes, got " +
                                                std::to_string(proof.size()));
  }
  uint64_t fn = index, sn = size - 1;
  MerkleHash r = leaf_hash;
  for (const MerkleHash& p : proof) {
    if (sn == 0) {
      return Status(Reason::kInvalidArgument, "inclusion proof is too long");
    }
    if ((fn & 1) != 0 || fn == sn) {
      r = MerkleNodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = MerkleNodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) {
    return Status(Reason::kInvalidArgument, "inclusion proof is too short");
  }
  if (r != root) {
    return Status(Reason::kLogCorrupt, "inclusion proof for leaf " + U(index) +
                                           " does not lead to the root of the tree of size " +
                                           U(size));
  }
  return Status::Ok();
}

Status VerifyConsistency(uint64_t m, uint64_t n, std::span<const MerkleHash> proof,
                         const MerkleHash& old_root, const MerkleHash& new_root) {
  if (m == 0 || m > n) {
    return Status(Reason::kInvalidArgument,
                  "consistency proof needs 0 < m <= n, got m=" + U(m) + " n=" + U(n));
  }
  if (m == n) {
    if (!proof.empty()) {
      return Status(Reason::kInvalidArgument,
                    "consistency proof between equal sizes must be empty");
    }
    if (old_root != new_root) {
      return Status(Reason::kLogCorrupt, "trees of equal size " + U(n) + " have different roots");
    }
    return Status::Ok();
  }
  const int shift = std::countr_zero(m);
  const size_t inner = static_cast<size_t>(std::bit_width((m - 1) ^ (n - 1)) - shift);
  const size_t border =
      static_cast<size_t>(std::popcount(ShiftRight(m - 1, std::bit_width((m - 1) ^ (n - 1)))));
  const size_t want = (std::has_single_bit(m) ? 0 : 1) + inner + border;
  if (proof.size() != want) {
    return Status(Reason::kInvalidArgument, "consistency proof from size " + U(m) + " to " + U(n) +
                                                " has " + std::to_string(want) + " hashes, got " +
                                                std::to_string(proof.size()));
  }
  // RFC 9162 §2.1.4.2.
  std::vector<MerkleHash> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(m)) {
    path.push_back(old_root);
  }
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = m - 1, sn = n - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  MerkleHash fr = path[0], sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const MerkleHash& c = path[i];
    if (sn == 0) {
      return Status(Reason::kInvalidArgument, "consistency proof is too long");
    }
    if ((fn & 1) != 0 || fn == sn) {
      fr = MerkleNodeHash(c, fr);
      sr = MerkleNodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = MerkleNodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) {
    return Status(Reason::kInvalidArgument, "consistency proof is too short");
  }
  if (fr != old_root) {
    return Status(Reason::kLogCorrupt,
                  "consistency proof does not lead to the old root (size " + U(m) + ")");
  }
  if (sr != new_root) {
    return Status(Reason::kLogCorrupt,
                  "consistency proof does not lead to the new root (size " + U(n) + ")");
  }
  return Status::Ok();
}

// ---- MerkleTree ----

void MerkleTree::Append(const MerkleHash& leaf_hash) {
  if (levels_.empty()) {
    levels_.emplace_back();
  }
  levels_[0].push_back(leaf_hash);
  // Complete every perfect subtree the new leaf closes.
  for (size_t k = 0; levels_[k].size() % 2 == 0; ++k) {
    const std::vector<MerkleHash>& lv = levels_[k];
    MerkleHash parent = MerkleNodeHash(lv[lv.size() - 2], lv[lv.size() - 1]);
    if (levels_.size() == k + 1) {
      levels_.emplace_back();
    }
    levels_[k + 1].push_back(parent);
  }
}

Result<MerkleHash> MerkleTree::Node(int level, uint64_t index) const {
  if (level < 0 || static_cast<size_t>(level) >= levels_.size() ||
      index >= levels_[static_cast<size_t>(level)].size()) {
    return Status(Reason::kInvalidArgument, "no perfect subtree at level " + std::to_string(level) +
                                                " index " + U(index) + " in a tree of size " +
                                                U(size()));
  }
  return levels_[static_cast<size_t>(level)][index];
}

MerkleHash MerkleTree::Root() const {
  Result<MerkleHash> r = RootAt(*this, size());
  CUSTOS_CHECK(r.ok());
  return *r;
}

}  // namespace custos::audit
