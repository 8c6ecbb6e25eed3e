// The Merkle / checkpoint test vectors (docs/spec/vectors/merkle-checkpoint.json, format in
// docs/spec/checkpoint.md) are generated here from fixed leaves and a fixed seed key, and
// compared with the checked-in file. After an intended change, regenerate with
//   CUSTOS_REGEN_VECTORS=1 ./custos_audit_test --gtest_filter='CheckpointVectorsTest.*'

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/merkle.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "custos/crypto/key_store.h"
#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;

std::filesystem::path VectorPath() { return testing::VectorFile("merkle-checkpoint.json"); }

std::vector<uint8_t> Seed(uint8_t first) {
  std::vector<uint8_t> seed(32);
  for (size_t i = 0; i < seed.size(); ++i) {
    seed[i] = static_cast<uint8_t>(first + i);
  }
  return seed;
}

Json HexList(const std::vector<MerkleHash>& v) {
  Json a = Json::array();
  for (const MerkleHash& h : v) {
    a.push_back(h.Hex());
  }
  return a;
}

Json KeyJson(const std::vector<uint8_t>& seed, const NoteVerifier& v) {
  return {{"seed", HexEncode(seed)},
          {"name", v.name},
          {"public", HexEncode(v.key.bytes())},
          {"key_hash", HexEncode(v.key_hash)},
          {"verifier_key", VerifierKeyString(v)}};
}

Json GenerateVectors() {
  const std::vector<std::string> inputs = {"",
                                           "custos",
                                           R"({"seq":1})",
                                           "\xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80",
                                           "line\nbreak",
                                           std::string(100, 'x'),
                                           R"({"agent":"a","seq":7,"verdict":"deny"})"};
  Json leaves = Json::array();
  MerkleTree tree;
  for (const std::string& in : inputs) {
    const MerkleHash h = MerkleLeafHash(in);
    tree.Append(h);
    leaves.push_back({{"input", in}, {"leaf_hash", h.Hex()}});
  }
  const uint64_t n = tree.size();
  Json roots = Json::array();
  for (uint64_t s = 0; s <= n; ++s) {
    roots.push_back({{"size", s}, {"root", RootAt(tree, s)->Hex()}});
  }
  Json inclusion = Json::array();
  for (uint64_t s = 1; s <= n; ++s) {
    for (uint64_t i = 0; i < s; ++i) {
      inclusion.push_back(
          {{"leaf_index", i}, {"tree_size", s}, {"proof", HexList(*InclusionProof(tree, i, s))}});
    }
  }
  Json consistency = Json::array();
  for (uint64_t s = 1; s <= n; ++s) {
    for (uint64_t m = 1; m <= s; ++m) {
      consistency.push_back(
          {{"old_size", m}, {"new_size", s}, {"proof", HexList(*ConsistencyProof(tree, m, s))}});
    }
  }

  const std::vector<uint8_t> log_seed = Seed(1), witness_seed = Seed(101);
  const crypto::SigningKey log_key = crypto::KeyStore::FromSeedForTest(log_seed).value();
  const crypto::SigningKey witness_key = crypto::KeyStore::FromSeedForTest(witness_seed).value();
  const NoteVerifier log =
      MakeNoteVerifier("custos/" + log_key.id().hex, log_key.verifying_key()).value();
  const NoteVerifier witness =
      MakeNoteVerifier("witness.example/w1", witness_key.verifying_key()).value();
  Checkpoint c;
  c.origin = log.name;
  c.size = n;
  c.root = tree.Root();
  const std::string note = SignCheckpoint(c, log.name, log_key).value();
  const std::string cosigned = CosignNote(note, witness.name, witness_key).value();

  return {{"description",
           "Custos Merkle tree (RFC 9162) and C2SP checkpoint vectors; docs/spec/checkpoint.md. "
           "Hashes are lowercase hex; the test keys' seeds are given so signatures can be "
           "re-made (Ed25519 is deterministic)."},
          {"version", 1},
          {"leaves", leaves},
          {"roots", roots},
          {"inclusion", inclusion},
          {"consistency", consistency},
          {"log_key", KeyJson(log_seed, log)},
          {"witness_key", KeyJson(witness_seed, witness)},
          {"checkpoint",
           {{"origin", c.origin},
            {"size", c.size},
            {"root", c.root.Hex()},
            {"body", CheckpointBody(c).value()},
            {"note", note},
            {"cosigned_note", cosigned}}}};
}

TEST(CheckpointVectorsTest, CheckedInVectorsMatchTheImplementation) {
  const Json generated = GenerateVectors();
  testing::ExpectVectorFileMatches(VectorPath(), generated, "docs/spec/checkpoint.md");
}

// The checked-in file verifies with the verification functions alone.
TEST(CheckpointVectorsTest, CheckedInVectorsVerify) {
  const Json v = Json::parse(testing::ReadVectorFile(VectorPath()));
  auto hash = [](const Json& h) {
    MerkleHash d;
    const std::vector<uint8_t> b = HexDecode(h.get<std::string>()).value();
    std::copy(b.begin(), b.end(), d.bytes.begin());
    return d;
  };
  auto hashes = [&](const Json& a) {
    std::vector<MerkleHash> out;
    for (const Json& h : a) {
      out.push_back(hash(h));
    }
    return out;
  };
  std::vector<MerkleHash> leaves, roots;
  for (const Json& l : v["leaves"]) {
    leaves.push_back(hash(l["leaf_hash"]));
  }
  for (const Json& r : v["roots"]) {
    roots.push_back(hash(r["root"]));
  }
  for (const Json& p : v["inclusion"]) {
    const uint64_t i = p["leaf_index"], s = p["tree_size"];
    EXPECT_THAT(VerifyInclusion(i, s, leaves[i], hashes(p["proof"]), roots[s]), IsOk());
  }
  for (const Json& p : v["consistency"]) {
    const uint64_t m = p["old_size"], s = p["new_size"];
    EXPECT_THAT(VerifyConsistency(m, s, hashes(p["proof"]), roots[m], roots[s]), IsOk());
  }
  Result<NoteVerifier> log =
      ParseVerifierKeyString(v["log_key"]["verifier_key"].get<std::string>());
  Result<NoteVerifier> w =
      ParseVerifierKeyString(v["witness_key"]["verifier_key"].get<std::string>());
  ASSERT_THAT(log, IsOk());
  ASSERT_THAT(w, IsOk());
  const std::vector<NoteVerifier> both = {*log, *w};
  Result<OpenedCheckpoint> o =
      OpenCheckpoint(v["checkpoint"]["cosigned_note"].get<std::string>(), both);
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->verified_by.size(), 2u);
  EXPECT_EQ(o->checkpoint.root, roots.back());
}

}  // namespace
}  // namespace custos::audit
