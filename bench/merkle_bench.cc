// Merkle tree benchmarks: frontier and full-tree appends, inclusion / consistency proof
// generation and verification on an in-memory tree, checkpoint signing and verification.
//
//   ./merkle_bench --benchmark_filter=Merkle

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/merkle.h"
#include "custos/crypto/keys.h"

namespace custos::audit {
namespace {

MerkleHash LeafFor(uint64_t i) {
  MerkleHash h;
  for (size_t k = 0; k < 8; ++k) {
    h.bytes[k] = static_cast<uint8_t>(i >> (8 * k));
  }
  return h;
}

// One tree per size, built once and shared by the proof benchmarks.
const MerkleTree& TreeOfSize(uint64_t n) {
  static std::vector<std::pair<uint64_t, MerkleTree>> trees;
  for (const auto& [size, tree] : trees) {
    if (size == n) {
      return tree;
    }
  }
  MerkleTree t;
  for (uint64_t i = 0; i < n; ++i) {
    t.Append(LeafFor(i));
  }
  trees.emplace_back(n, std::move(t));
  return trees.back().second;
}

void BM_MerkleLeafHash_300Bytes(benchmark::State& state) {
  const std::string entry(300, 'e');
  for (auto _ : state) {
    benchmark::DoNotOptimize(MerkleLeafHash(entry));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleLeafHash_300Bytes);

void BM_MerkleCompactRange_Append(benchmark::State& state) {
  CompactRange cr;
  uint64_t i = 0;
  for (auto _ : state) {
    cr.Append(LeafFor(i++));
  }
  benchmark::DoNotOptimize(cr.Root());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleCompactRange_Append);

void BM_MerkleTree_Append(benchmark::State& state) {
  MerkleTree t;
  uint64_t i = 0;
  for (auto _ : state) {
    t.Append(LeafFor(i++));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleTree_Append);

void BM_MerkleInclusionProof_Generate(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  const MerkleTree& t = TreeOfSize(n);
  uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(InclusionProof(t, i, n));
    i = (i + 7919) % n;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleInclusionProof_Generate)->Arg(1 << 20)->Arg(10'000'000);

void BM_MerkleInclusionProof_Verify(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  const MerkleTree& t = TreeOfSize(n);
  const MerkleHash root = t.Root();
  const uint64_t i = n / 3;
  const std::vector<MerkleHash> proof = *InclusionProof(t, i, n);
  for (auto _ : state) {
    benchmark::DoNotOptimize(VerifyInclusion(i, n, LeafFor(i), proof, root));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleInclusionProof_Verify)->Arg(1 << 20)->Arg(10'000'000);

void BM_MerkleConsistencyProof_GenerateAndVerify(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  const MerkleTree& t = TreeOfSize(n);
  const uint64_t m = n / 3 + 1;
  const MerkleHash old_root = *RootAt(t, m), new_root = t.Root();
  for (auto _ : state) {
    Result<std::vector<MerkleHash>> p = ConsistencyProof(t, m, n);
    benchmark::DoNotOptimize(VerifyConsistency(m, n, *p, old_root, new_root));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleConsistencyProof_GenerateAndVerify)->Arg(10'000'000);

void BM_MerkleCheckpoint_SignAndOpen(benchmark::State& state) {
  const crypto::SigningKey key = crypto::SigningKey::Generate().value();
  const NoteVerifier v = MakeNoteVerifier("custos/bench", key.verifying_key()).value();
  Checkpoint c{"custos/bench", 1'000'000, LeafFor(1), {}};
  for (auto _ : state) {
    std::string note = SignCheckpoint(c, v.name, key).value();
    benchmark::DoNotOptimize(OpenCheckpoint(note, std::span(&v, 1)));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleCheckpoint_SignAndOpen);

}  // namespace
}  // namespace custos::audit
BENCHMARK_MAIN();
