// End-to-end tests of `custos audit checkpoint | prove | consistency`: checkpoints signed by the
// data directory's identity, inclusion and consistency proofs that verify independently of the
// CLI, and refusals for forged or tampered checkpoints and entries outside the tree.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/merkle.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "custos/core/reason.h"
#include "custos/crypto/key_store.h"
#include "integration/audit_log_fixture.h"
#include "integration/cli_runner.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<audit::MerkleHash> Hashes(const Json& a) {
  std::vector<audit::MerkleHash> out;
  for (const Json& h : a) {
    std::vector<uint8_t> b = HexDecode(h.get<std::string>()).value();
    audit::MerkleHash d;
    std::copy(b.begin(), b.end(), d.bytes.begin());
    out.push_back(d);
  }
  return out;
}

audit::MerkleHash Hash(const Json& h) { return Hashes(Json::array({h}))[0]; }

class AuditCheckpointCliTest : public AuditLogCliTest {
 protected:
  crypto::VerifyingKey IdentityKey() { return Identity().verifying_key(); }

  audit::NoteVerifier Verifier() {
    const crypto::VerifyingKey k = IdentityKey();
    return audit::MakeNoteVerifier("custos/" + k.id().hex, k).value();
  }
};

TEST_F(AuditCheckpointCliTest, CheckpointIsASignedNoteOverTheWholeLog) {
  RunReads(3);
  CliResult c = Audit({"checkpoint"});
  ASSERT_EQ(c.code, 0) << c.err;
  const audit::NoteVerifier v = Verifier();
  EXPECT_THAT(c.out, StartsWith(v.name + "\n"));
  Result<audit::OpenedCheckpoint> o = audit::OpenCheckpoint(c.out, std::span(&v, 1));
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->checkpoint.origin, v.name);
  EXPECT_GE(o->checkpoint.size, 3u);
  EXPECT_EQ(Audit({"verify"}).code, 0);
}

TEST_F(AuditCheckpointCliTest, ProveGivesAnInclusionProofThatVerifies) {
  RunReads(4);
  ASSERT_EQ(Audit({"checkpoint"}).code, 0);
  const audit::NoteVerifier v = Verifier();
  for (const std::string seq : {"1", "2", "5"}) {
    CliResult p = Audit({"prove", seq});
    ASSERT_EQ(p.code, 0) << p.err;
    const Json j = Json::parse(p.out);
    EXPECT_EQ(j["seq"], std::stoll(seq));
    Result<audit::OpenedCheckpoint> o =
        audit::OpenCheckpoint(j["checkpoint"].get<std::string>(), std::span(&v, 1));
    ASSERT_THAT(o, IsOk());
    const audit::MerkleHash leaf = audit::MerkleLeafHash(j["canonical"].get<std::string>());
    EXPECT_EQ(leaf, Hash(j["leaf_hash"]));
    EXPECT_THAT(audit::VerifyInclusion(j["leaf_index"].get<uint64_t>(), o->checkpoint.size, leaf,
                                       Hashes(j["proof"]), o->checkpoint.root),
                IsOk());
  }
  CliResult beyond = Audit({"prove", "1000"});
  EXPECT_EQ(beyond.code, ExitCodeOf(Reason::kInvalidArgument));
  EXPECT_THAT(beyond.err, HasSubstr("not in the latest checkpoint"));
  EXPECT_EQ(Audit({"prove", "0"}).code, ExitCodeOf(Reason::kInvalidArgument));
}

TEST_F(AuditCheckpointCliTest, EveryRunEndsCheckpointedAndProveWithoutOneIsNoCheckpoint) {
  RunReads(1);
  // The kernel signs a checkpoint of the whole log when it shuts down.
  EXPECT_EQ(Audit({"prove", "1"}).code, 0);
  ExecSql(data_ + "/custos.db", "DELETE FROM checkpoints");
  CliResult p = Audit({"prove", "1"});
  EXPECT_EQ(p.code, ExitCodeOf(Reason::kNoCheckpoint));
  EXPECT_THAT(p.err, HasSubstr("audit checkpoint"));
}

TEST_F(AuditCheckpointCliTest, ConsistencyFromAnOldCheckpointVerifies) {
  RunReads(2);
  CliResult first = Audit({"checkpoint"});
  ASSERT_EQ(first.code, 0) << first.err;
  const std::string old_file = (dir_.path() / "old.note").string();
  WriteText(old_file, first.out);
  RunReads(3);
  ASSERT_EQ(Audit({"checkpoint"}).code, 0);

  CliResult c = Audit({"consistency", old_file});
  ASSERT_EQ(c.code, 0) << c.err;
  const Json j = Json::parse(c.out);
  const uint64_t m = j["old_size"], n = j["new_size"];
  EXPECT_LT(m, n);
  EXPECT_THAT(
      audit::VerifyConsistency(m, n, Hashes(j["proof"]), Hash(j["old_root"]), Hash(j["new_root"])),
      IsOk());
  const audit::NoteVerifier v = Verifier();
  EXPECT_EQ(audit::OpenCheckpoint(first.out, std::span(&v, 1))->checkpoint.root,
            Hash(j["old_root"]));
}

TEST_F(AuditCheckpointCliTest, TamperedOrForkedOldCheckpointsAreRefused) {
  RunReads(2);
  CliResult first = Audit({"checkpoint"});
  ASSERT_EQ(first.code, 0) << first.err;
  RunReads(2);
  ASSERT_EQ(Audit({"checkpoint"}).code, 0);
  const audit::NoteVerifier v = Verifier();
  const audit::Checkpoint genuine = audit::OpenCheckpoint(first.out, std::span(&v, 1))->checkpoint;

  // Changed byte: the signature no longer verifies.
  std::string tampered = first.out;
  tampered.replace(tampered.find('\n') + 1, 1, "9");
  const std::string tampered_file = (dir_.path() / "tampered.note").string();
  WriteText(tampered_file, tampered);
  CliResult t = Audit({"consistency", tampered_file});
  EXPECT_EQ(t.code, ExitCodeOf(Reason::kTokenInvalid)) << t.err;

  // Signed by another key: unknown key.
  crypto::SigningKey other = crypto::SigningKey::Generate().value();
  const std::string other_file = (dir_.path() / "other.note").string();
  WriteText(other_file, audit::SignCheckpoint(genuine, v.name, other).value());
  EXPECT_EQ(Audit({"consistency", other_file}).code, ExitCodeOf(Reason::kKeyError));

  // A fork signed by the real identity (another root at the same size): not a prefix.
  crypto::SigningKey identity =
      crypto::KeyStore::Load(std::filesystem::path(data_) / "identity.key", std::nullopt).value();
  audit::Checkpoint fork = genuine;
  fork.root = audit::MerkleLeafHash("another history");
  const std::string fork_file = (dir_.path() / "fork.note").string();
  WriteText(fork_file, audit::SignCheckpoint(fork, v.name, identity).value());
  CliResult f = Audit({"consistency", fork_file});
  EXPECT_EQ(f.code, ExitCodeOf(Reason::kLogCorrupt)) << f.err;

  // Truncated note and a missing file.
  const std::string trunc_file = (dir_.path() / "trunc.note").string();
  WriteText(trunc_file, first.out.substr(0, first.out.size() / 2));
  EXPECT_EQ(Audit({"consistency", trunc_file}).code, ExitCodeOf(Reason::kInvalidArgument));
  EXPECT_EQ(Audit({"consistency", (dir_.path() / "none").string()}).code,
            ExitCodeOf(Reason::kIoError));
}

}  // namespace
}  // namespace custos::testing
