// RFC 9162 Merkle hashing, frontier, proofs and their verification, checked against the RFC 6962
// reference vectors and a naive recursive implementation written straight from the RFC.

#include "custos/audit/merkle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/matchers.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

constexpr uint64_t kN = 40;

// RFC 9162 §2.1.1 MTH, recursively.
MerkleHash NaiveRoot(const std::vector<MerkleHash>& leaves, uint64_t begin, uint64_t end) {
  if (end == begin) {
    return MerkleEmptyRoot();
  }
  if (end - begin == 1) {
    return leaves[begin];
  }
  uint64_t k = 1;
  while (k * 2 < end - begin) {
    k *= 2;
  }
  return MerkleNodeHash(NaiveRoot(leaves, begin, begin + k), NaiveRoot(leaves, begin + k, end));
}

// RFC 9162 §2.1.3.1 PATH.
std::vector<MerkleHash> NaivePath(const std::vector<MerkleHash>& leaves, uint64_t m, uint64_t begin,
                                  uint64_t end) {
  if (end - begin <= 1) {
    return {};
  }
  uint64_t k = 1;
  while (k * 2 < end - begin) {
    k *= 2;
  }
  std::vector<MerkleHash> p;
  if (m < k) {
    p = NaivePath(leaves, m, begin, begin + k);
    p.push_back(NaiveRoot(leaves, begin + k, end));
  } else {
    p = NaivePath(leaves, m - k, begin + k, end);
    p.push_back(NaiveRoot(leaves, begin, begin + k));
  }
  return p;
}

// RFC 9162 §2.1.4.1 SUBPROOF.
std::vector<MerkleHash> NaiveSubproof(const std::vector<MerkleHash>& leaves, uint64_t m,
                                      uint64_t begin, uint64_t end, bool b) {
  if (m == end - begin) {
    if (b) {
      return {};
    }
    return {NaiveRoot(leaves, begin, end)};
  }
  uint64_t k = 1;
  while (k * 2 < end - begin) {
    k *= 2;
  }
  std::vector<MerkleHash> p;
  if (m <= k) {
    p = NaiveSubproof(leaves, m, begin, begin + k, b);
    p.push_back(NaiveRoot(leaves, begin + k, end));
  } else {
    p = NaiveSubproof(leaves, m - k, begin + k, end, false);
    p.push_back(NaiveRoot(leaves, begin, begin + k));
  }
  return p;
}

std::vector<MerkleHash> TestLeaves(uint64_t n) {
  std::vector<MerkleHash> out;
  for (uint64_t i = 0; i < n; ++i) {
    out.push_back(MerkleLeafHash("entry-" + std::to_string(i)));
  }
  return out;
}

MerkleTree TreeOf(const std::vector<MerkleHash>& leaves) {
  MerkleTree t;
  for (const MerkleHash& h : leaves) {
    t.Append(h);
  }
  return t;
}

MerkleHash Flip(MerkleHash h, size_t byte) {
  h.bytes[byte % 32] ^= 0x01;
  return h;
}

TEST(MerkleTest, EmptyTreeRootIsSha256OfNothing) {
  EXPECT_EQ(MerkleEmptyRoot().Hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(CompactRange().Root(), MerkleEmptyRoot());
  EXPECT_EQ(MerkleTree().Root(), MerkleEmptyRoot());
}

// The RFC 6962 reference vectors (certificate-transparency merkle_tree_test): eight leaves and
// the root of every prefix.
TEST(MerkleTest, RootsMatchTheRfc6962ReferenceVectors) {
  const std::vector<std::string> inputs = {
      std::string(),
      std::string("\x00", 1),
      "\x10",
      "\x20\x21",
      "\x30\x31",
      "\x40\x41\x42\x43",
      "\x50\x51\x52\x53\x54\x55\x56\x57",
      "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
  const std::vector<std::string> roots = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  CompactRange cr;
  MerkleTree tree;
  for (size_t i = 0; i < inputs.size(); ++i) {
    cr.Append(MerkleLeafHash(inputs[i]));
    tree.Append(MerkleLeafHash(inputs[i]));
    EXPECT_EQ(cr.Root().Hex(), roots[i]) << "size " << i + 1;
    EXPECT_EQ(tree.Root().Hex(), roots[i]) << "size " << i + 1;
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    Result<MerkleHash> r = RootAt(tree, i + 1);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->Hex(), roots[i]);
  }
}

TEST(MerkleTest, LeafAndNodeHashesAreDomainSeparated) {
  const MerkleHash a = MerkleLeafHash("a"), b = MerkleLeafHash("b");
  std::string raw(1, '\x00');
  raw += "a";
  EXPECT_EQ(a, crypto::Sha256(raw));
  std::string node(1, '\x01');
  node.append(reinterpret_cast<const char*>(a.bytes.data()), 32);
  node.append(reinterpret_cast<const char*>(b.bytes.data()), 32);
  EXPECT_EQ(MerkleNodeHash(a, b), crypto::Sha256(node));
  EXPECT_NE(MerkleNodeHash(a, b), MerkleNodeHash(b, a));
}

TEST(MerkleTest, HandBuiltTreeOfThreeLeaves) {
  const std::vector<MerkleHash> l = TestLeaves(3);
  const MerkleHash root = MerkleNodeHash(MerkleNodeHash(l[0], l[1]), l[2]);
  MerkleTree t = TreeOf(l);
  EXPECT_EQ(t.Root(), root);
  Result<std::vector<MerkleHash>> p = InclusionProof(t, 2, 3);
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ((*p)[0], MerkleNodeHash(l[0], l[1]));
  p = InclusionProof(t, 0, 3);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(*p, (std::vector<MerkleHash>{l[1], l[2]}));
  p = ConsistencyProof(t, 2, 3);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(*p, (std::vector<MerkleHash>{l[2]}));
}

TEST(MerkleTest, RootOfEverySizeMatchesTheNaiveRecursiveMth) {
  const std::vector<MerkleHash> leaves = TestLeaves(kN);
  CompactRange cr;
  MerkleTree tree;
  for (uint64_t n = 1; n <= kN; ++n) {
    cr.Append(leaves[n - 1]);
    tree.Append(leaves[n - 1]);
    const MerkleHash want = NaiveRoot(leaves, 0, n);
    EXPECT_EQ(cr.Root(), want) << n;
    EXPECT_EQ(tree.Root(), want) << n;
    EXPECT_EQ(cr.size(), n);
  }
  for (uint64_t n = 0; n <= kN; ++n) {
    Result<MerkleHash> r = RootAt(tree, n);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(*r, NaiveRoot(leaves, 0, n)) << n;
  }
}

TEST(MerkleTest, EveryInclusionProofUpTo40MatchesTheRfcAndVerifies) {
  const std::vector<MerkleHash> leaves = TestLeaves(kN);
  const MerkleTree tree = TreeOf(leaves);
  for (uint64_t n = 1; n <= kN; ++n) {
    const MerkleHash root = NaiveRoot(leaves, 0, n);
    for (uint64_t i = 0; i < n; ++i) {
      Result<std::vector<MerkleHash>> p = InclusionProof(tree, i, n);
      ASSERT_THAT(p, IsOk());
      ASSERT_EQ(*p, NaivePath(leaves, i, 0, n)) << i << "/" << n;
      EXPECT_THAT(VerifyInclusion(i, n, leaves[i], *p, root), IsOk()) << i << "/" << n;
      // Another leaf, another index, another size or another root fails.
      EXPECT_THAT(VerifyInclusion(i, n, leaves[(i + 1) % kN], *p, root),
                  StatusIs(Reason::kLogCorrupt));
      EXPECT_THAT(VerifyInclusion(i, n, leaves[i], *p, Flip(root, i)),
                  StatusIs(Reason::kLogCorrupt));
      if (n > 1) {
        const uint64_t j = (i + 1) % n;
        const Status s = VerifyInclusion(j, n, leaves[i], *p, root);
        EXPECT_FALSE(s.ok()) << i << "->" << j << "/" << n;
      }
    }
  }
}

TEST(MerkleTest, EveryConsistencyProofUpTo40MatchesTheRfcAndVerifies) {
  const std::vector<MerkleHash> leaves = TestLeaves(kN);
  const MerkleTree tree = TreeOf(leaves);
  for (uint64_t n = 1; n <= kN; ++n) {
    const MerkleHash new_root = NaiveRoot(leaves, 0, n);
    for (uint64_t m = 1; m <= n; ++m) {
      const MerkleHash old_root = NaiveRoot(leaves, 0, m);
      Result<std::vector<MerkleHash>> p = ConsistencyProof(tree, m, n);
      ASSERT_THAT(p, IsOk());
      ASSERT_EQ(*p, NaiveSubproof(leaves, m, 0, n, true)) << m << "->" << n;
      EXPECT_THAT(VerifyConsistency(m, n, *p, old_root, new_root), IsOk()) << m << "->" << n;
      EXPECT_THAT(VerifyConsistency(m, n, *p, Flip(old_root, m), new_root),
                  StatusIs(Reason::kLogCorrupt));
      EXPECT_THAT(VerifyConsistency(m, n, *p, old_root, Flip(new_root, n)),
                  StatusIs(Reason::kLogCorrupt));
    }
  }
}

TEST(MerkleTest, EveryTamperedProofHashIsRejected) {
  const std::vector<MerkleHash> leaves = TestLeaves(kN);
  const MerkleTree tree = TreeOf(leaves);
  for (uint64_t n = 2; n <= kN; ++n) {
    const MerkleHash root = NaiveRoot(leaves, 0, n);
    for (uint64_t i = 0; i < n; ++i) {
      std::vector<MerkleHash> p = *InclusionProof(tree, i, n);
      for (size_t k = 0; k < p.size(); ++k) {
        std::vector<MerkleHash> bad = p;
        bad[k] = Flip(bad[k], k);
        EXPECT_THAT(VerifyInclusion(i, n, leaves[i], bad, root), StatusIs(Reason::kLogCorrupt));
      }
      std::vector<MerkleHash> longer = p;
      longer.push_back(root);
      EXPECT_THAT(VerifyInclusion(i, n, leaves[i], longer, root),
                  StatusIs(Reason::kInvalidArgument));
      if (!p.empty()) {
        p.pop_back();
        EXPECT_THAT(VerifyInclusion(i, n, leaves[i], p, root), StatusIs(Reason::kInvalidArgument));
      }
    }
    for (uint64_t m = 1; m < n; ++m) {
      const MerkleHash old_root = NaiveRoot(leaves, 0, m);
      std::vector<MerkleHash> p = *ConsistencyProof(tree, m, n);
      for (size_t k = 0; k < p.size(); ++k) {
        std::vector<MerkleHash> bad = p;
        bad[k] = Flip(bad[k], k);
        EXPECT_THAT(VerifyConsistency(m, n, bad, old_root, root), StatusIs(Reason::kLogCorrupt))
            << m << "->" << n << " hash " << k;
      }
      p.push_back(root);
      EXPECT_THAT(VerifyConsistency(m, n, p, old_root, root), StatusIs(Reason::kInvalidArgument));
    }
  }
}

TEST(MerkleTest, OutOfRangeArgumentsAreInvalidArgument) {
  const std::vector<MerkleHash> leaves = TestLeaves(5);
  const MerkleTree tree = TreeOf(leaves);
  const MerkleHash root = tree.Root();
  EXPECT_THAT(InclusionProof(tree, 5, 5), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(InclusionProof(tree, 0, 6), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(InclusionProof(tree, 0, 0), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ConsistencyProof(tree, 3, 2), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ConsistencyProof(tree, 0, 2), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ConsistencyProof(tree, 2, 6), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(RootAt(tree, 6), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SubtreeHash(tree, 1, 3), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SubtreeHash(tree, 3, 2), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(tree.Node(3, 0), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(tree.Node(-1, 0), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyInclusion(5, 5, leaves[0], {}, root), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyInclusion(0, 0, leaves[0], {}, root), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyConsistency(0, 5, {}, root, root), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyConsistency(6, 5, {}, root, root), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyConsistency(5, 5, std::vector<MerkleHash>{root}, root, root),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyConsistency(5, 5, {}, root, leaves[0]), StatusIs(Reason::kLogCorrupt));
  EXPECT_THAT(VerifyConsistency(2, 5, {}, root, root), StatusIs(Reason::kInvalidArgument));
  // Huge sizes are handled without overflow or crash.
  const uint64_t max = ~uint64_t{0};
  EXPECT_THAT(VerifyInclusion(max - 1, max, leaves[0], {}, root),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(VerifyConsistency(max - 1, max, {}, root, root), StatusIs(Reason::kInvalidArgument));
  const std::vector<MerkleHash> many(200, root);
  EXPECT_THAT(VerifyInclusion(1, 2, leaves[0], many, root), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos::audit
