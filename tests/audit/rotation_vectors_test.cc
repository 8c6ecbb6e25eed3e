// Key rotation test vectors (docs/spec/vectors/flight-log-rotation.json, format in
// docs/spec/flight-log.md §10.4): a log that rotates twice, its checkpoints, the pinned keys, and
// tampered variants, each with the reason and seq a verifier must report. Generated here from
// fixed seeds and times, compared with the checked-in file, and every variant is also verified by
// the C++ verifier (imported into a store) with the expected result. Regenerate with
//   CUSTOS_REGEN_VECTORS=1 ./custos_audit_test --gtest_filter='RotationVectorsTest.*'
// tools/verify_log.py --rotation-vectors checks the same file independently.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "custos/audit/key_rotation.h"
#include "custos/audit/log_entry.h"
#include "custos/audit/merkle.h"
#include "custos/audit/stored_tree.h"
#include "custos/audit/verifier.h"
#include "custos/core/encoding.h"
#include "custos/crypto/key_store.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"
#include "testing/vector_file.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;

std::vector<uint8_t> Seed(uint8_t first) {
  std::vector<uint8_t> seed(32);
  for (size_t i = 0; i < seed.size(); ++i) {
    seed[i] = static_cast<uint8_t>(first + i);
  }
  return seed;
}

// The three keys of the log: seeds 0x21.., 0x41.., 0x61.. (test keys only).
const std::vector<uint8_t>& SeedOf(int k) {
  static const std::vector<uint8_t> seeds[3] = {Seed(0x21), Seed(0x41), Seed(0x61)};
  return seeds[k];
}
const crypto::SigningKey& Key(int k) {
  static const crypto::SigningKey keys[3] = {crypto::KeyStore::FromSeedForTest(SeedOf(0)).value(),
                                             crypto::KeyStore::FromSeedForTest(SeedOf(1)).value(),
                                             crypto::KeyStore::FromSeedForTest(SeedOf(2)).value()};
  return keys[k];
}
std::string VKey(int k) {
  const crypto::VerifyingKey& v = Key(k).verifying_key();
  return VerifierKeyString(MakeNoteVerifier(KeyName(v), v).value());
}

// Builds a log entry by entry (chain, tree, checkpoints) without a store, so a variant can differ
// from the genuine log in exactly one respect and still chain.
class LogBuilder {
 public:
  explicit LogBuilder(std::string origin) : origin_(std::move(origin)) {}

  void Add(LogEntry e) {
    e.seq = static_cast<int64_t>(rows_.size()) + 1;
    e.prev_hash = prev_;
    e.time_ms = 1'767'225'600'000 + e.seq * 1000;
    const std::string canonical = EncodeCanonical(e).value();
    e.hash = ChainHash(prev_, canonical);
    rows_.push_back(ToRow(e, canonical));
    tree_.Append(MerkleLeafHash(canonical));
    prev_ = e.hash;
  }
  void Event(const std::string& name, int i) {
    LogEntry e;
    e.type = "event";
    e.syscall = name;
    e.extra = {{"i", i}};
    Add(std::move(e));
  }
  // A statement from `from` to `to`; `edit` may change it (and its entry) before it is added.
  void Rotate(int from, int to, const std::function<void(KeyRotation&, LogEntry&)>& edit) {
    KeyRotation r = SignRotation(origin_, tree_.size(), tree_.Root(), Key(from), Key(to)).value();
    LogEntry e = RotationEntry(r);
    if (edit) {
      edit(r, e);
    }
    Add(std::move(e));
  }
  void CheckpointBy(int k) {
    Checkpoint c;
    c.origin = origin_;
    c.size = tree_.size();
    c.root = tree_.Root();
    notes_.push_back(SignCheckpoint(c, KeyName(Key(k).verifying_key()), Key(k)).value());
  }
  std::string Jsonl() const {
    std::string out;
    for (const store::LogRow& r : rows_) {
      out += ToJsonLine(r) + "\n";
    }
    return out;
  }
  const std::vector<store::LogRow>& rows() const { return rows_; }
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::string origin_;
  std::string prev_ = kGenesisHash;
  MerkleTree tree_;
  std::vector<store::LogRow> rows_;
  std::vector<std::string> notes_;
};

Status ResignWith(KeyRotation& r, LogEntry& e, int old_signer, int new_signer) {
  CUSTOS_ASSIGN_OR_RETURN(std::string msg, RotationMessage(r));
  const std::span<const uint8_t> m(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  CUSTOS_ASSIGN_OR_RETURN(r.old_signature,
                          Key(old_signer).Sign(crypto::SignContext::kKeyRotation, m));
  CUSTOS_ASSIGN_OR_RETURN(r.new_signature,
                          Key(new_signer).Sign(crypto::SignContext::kKeyRotation, m));
  e = RotationEntry(r);
  return Status::Ok();
}

struct Variant {
  std::string name;
  std::string description;
  std::string reason;  // "" for the genuine log
  int64_t seq = 0;
  LogBuilder log{""};
  std::vector<std::string> trusted;
};

// Entries 1-3, checkpoint 3 (k0); rotation k0->k1 at 4, checkpoint 4 (k1); entry 5; rotation
// k1->k2 at 6, checkpoint 6 (k2); entry 7, checkpoint 7 (k2).
struct Edits {
  std::function<void(KeyRotation&, LogEntry&)> first, second;
  int cp3 = 0, cp4 = 1;
};
LogBuilder Build(const Edits& x) {
  LogBuilder b(KeyName(Key(0).verifying_key()));
  b.Event("kernel.start", 1);
  b.Event("policy.reload", 2);
  b.Event("tick", 3);
  b.CheckpointBy(x.cp3);
  b.Rotate(0, 1, x.first);
  b.CheckpointBy(x.cp4);
  b.Event("tick", 5);
  b.Rotate(1, 2, x.second);
  b.CheckpointBy(2);
  b.Event("tick", 7);
  b.CheckpointBy(2);
  return b;
}

std::vector<Variant> Variants() {
  const std::vector<std::string> all = {VKey(0), VKey(1), VKey(2)};
  std::vector<Variant> v;
  v.push_back({"genuine", "a log spanning two rotations, every checkpoint by the current key", "",
               0, Build({}), all});
  v.push_back(
      {"rotation_signed_by_new_key_only",
       "the first statement's old_signature is made by the new key (a forger without the "
       "old key)",
       "rotation_invalid", 4,
       Build({.first = [](KeyRotation& r, LogEntry& e) { ResignWith(r, e, 1, 1).IgnoreError(); }}),
       all});
  v.push_back({"rotation_missing_old_signature",
               "the first statement carries only the new key's signature", "rotation_invalid", 4,
               Build({.first = [](KeyRotation&, LogEntry& e) { e.extra.erase("old_signature"); }}),
               all});
  v.push_back({"rotation_bad_new_signature",
               "the second statement's new_signature has one bit flipped", "rotation_invalid", 6,
               Build({.second =
                          [](KeyRotation& r, LogEntry& e) {
                            r.new_signature.bytes[0] ^= 1;
                            e.extra["new_signature"] = HexEncode(r.new_signature.bytes);
                          }}),
               all});
  v.push_back({"rotation_wrong_tree",
               "the first statement (signed by both keys) names a tree of 2 entries, not 3",
               "rotation_invalid", 4,
               Build({.first =
                          [](KeyRotation& r, LogEntry& e) {
                            r.tree_size = 2;
                            ResignWith(r, e, 0, 1).IgnoreError();
                          }}),
               all});
  v.push_back({"rotation_old_key_not_current",
               "the second statement hands over from k0 (no longer current) to k2, signed by both",
               "rotation_invalid", 6,
               Build({.second =
                          [](KeyRotation& r, LogEntry& e) {
                            r.old_key = Key(0).verifying_key().bytes();
                            ResignWith(r, e, 0, 2).IgnoreError();
                          }}),
               all});
  v.push_back({"checkpoint_after_rotation_by_old_key",
               "the checkpoint of size 4 (after the first rotation) is signed by k0",
               "checkpoint_wrong_signer", 4, Build({.cp4 = 0}), all});
  v.push_back({"checkpoint_before_rotation_by_new_key",
               "the checkpoint of size 3 (before the first rotation) is signed by k1",
               "checkpoint_wrong_signer", 3, Build({.cp3 = 1}), all});
  v.push_back({"new_key_not_trusted",
               "the genuine log, with k2 missing from the trusted keys",
               "key_error",
               6,
               Build({}),
               {VKey(0), VKey(1)}});
  return v;
}

// The JSONL of `v`, or for "rotation_statement_edited" the genuine one with the first statement's
// tree_size changed in place (not re-hashed).
Json GenerateVectors() {
  Json keys = Json::array();
  for (int k = 0; k < 3; ++k) {
    const crypto::VerifyingKey& v = Key(k).verifying_key();
    keys.push_back({{"seed", HexEncode(SeedOf(k))},
                    {"name", KeyName(v)},
                    {"key_id", v.id().hex},
                    {"public", HexEncode(v.bytes())},
                    {"verifier_key", VKey(k)}});
  }
  Json variants = Json::array();
  for (const Variant& v : Variants()) {
    variants.push_back({{"name", v.name},
                        {"description", v.description},
                        {"log", v.log.Jsonl()},
                        {"checkpoints", v.log.notes()},
                        {"trusted_keys", v.trusted},
                        {"reason", v.reason},
                        {"seq", v.seq}});
  }
  // One variant that is not re-chained: the edit shows as a changed entry.
  std::string edited = Variants()[0].log.Jsonl();
  const size_t at = edited.find("\"tree_size\":3");
  EXPECT_NE(at, std::string::npos);
  edited.replace(at, 13, "\"tree_size\":2");
  variants.push_back({{"name", "rotation_statement_edited"},
                      {"description", "the first statement's tree_size edited without re-hashing"},
                      {"log", edited},
                      {"checkpoints", Variants()[0].log.notes()},
                      {"trusted_keys", Variants()[0].trusted},
                      {"reason", "log_corrupt"},
                      {"seq", 4}});
  return {{"description",
           "Custos flight-log key rotation vectors (docs/spec/flight-log.md section 10). Each "
           "variant is an exported log (JSONL), its checkpoint notes and the pinned verifier "
           "keys; a verifier must accept the one with reason \"\" and reject every other with "
           "that reason at that seq (for a checkpoint, its tree size)."},
          {"version", 1},
          {"origin", KeyName(Key(0).verifying_key())},
          {"keys", keys},
          {"variants", variants}};
}

TEST(RotationVectorsTest, CheckedInVectorsMatchTheImplementation) {
  testing::ExpectVectorFileMatches(testing::VectorFile("flight-log-rotation.json"),
                                   GenerateVectors(), "docs/spec/flight-log.md section 10");
}

// Every variant, imported into a store, gets the expected verdict from VerifyStore.
TEST(RotationVectorsTest, CxxVerifierGivesEachVariantItsReason) {
  const Json doc = GenerateVectors();
  for (const Json& v : doc["variants"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    testing::TempDir dir;
    auto st = store::OpenSqliteStore(dir.path() / "custos.db").value();
    std::vector<store::LogRow> rows;
    const std::string text = v["log"].get<std::string>();
    size_t pos = 0;
    CompactRange range;
    std::vector<MerkleNodeRef> refs;
    while (pos < text.size()) {
      const size_t nl = text.find('\n', pos);
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      Json j = Json::parse(line);
      store::LogRow row;
      row.seq = j["seq"].get<int64_t>();
      row.hash = j["hash"].get<std::string>();
      row.type = j["type"].get<std::string>();
      row.time_ms = j["time_ms"].get<int64_t>();
      row.agent = j["agent"].get<std::string>();
      row.run = j["run"].get<std::string>();
      row.verdict = j["verdict"].get<std::string>();
      row.reason = j["reason"].get<std::string>();
      j.erase("hash");
      row.canonical = CanonicalJson(j).value();
      range.Append(MerkleLeafHash(row.canonical), &refs);
      rows.push_back(std::move(row));
    }
    ASSERT_THAT(st->AppendLog(rows, ToStoreNodes(refs), store::Sync::kFull), IsOk());
    for (const Json& note : v["checkpoints"]) {
      const Checkpoint c =
          ParseCheckpointBody(ParseSignedNote(note.get<std::string>()).value().text).value();
      ASSERT_THAT(st->PutCheckpoint(static_cast<int64_t>(c.size), note.get<std::string>(), 1),
                  IsOk());
    }
    VerifyOptions o;
    o.merkle = true;
    for (const Json& k : v["trusted_keys"]) {
      o.trusted.push_back(ParseVerifierKeyString(k.get<std::string>()).value());
    }
    const VerifyReport r = VerifyStore(*st, o);
    const std::string want = v["reason"].get<std::string>();
    if (want.empty()) {
      EXPECT_THAT(r.status, IsOk());
      EXPECT_EQ(r.rotations.size(), 2u);
    } else {
      EXPECT_EQ(ReasonName(r.status.reason()), want) << r.status.ToString();
      EXPECT_EQ(r.first_bad_seq, v["seq"].get<int64_t>()) << r.status.ToString();
    }
  }
}

}  // namespace
}  // namespace custos::audit
