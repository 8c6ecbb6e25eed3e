// End-to-end tests of `custos audit verify --trusted-keys FILE [--from-checkpoint NOTE]`: the
// hash chain, then a checkpoint signed by a pinned key whose tree must be a prefix of the log.
// Refusals: an untrusted signer (key_error), a truncated tail (log_gap), a changed entry
// (log_corrupt), a checkpoint whose root is not the log's (log_corrupt).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
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
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string LogTable(const std::string& db) {
  sqlite3* h = nullptr;
  sqlite3_open(db.c_str(), &h);
  sqlite3_stmt* st = nullptr;
  std::string name;
  sqlite3_prepare_v2(h,
                     "SELECT name FROM sqlite_master WHERE type='table' AND sql LIKE '%canonical%'",
                     -1, &st, nullptr);
  if (sqlite3_step(st) == SQLITE_ROW)
    name = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(h);
  return name;
}

class AuditTrustedKeysTest : public AuditLogCliTest {
 protected:
  void SetUp() override {
    AuditLogCliTest::SetUp();
    db_ = data_ + "/custos.db";
    keys_ = (dir_.path() / "trusted.keys").string();
  }

  // A log of a few entries, a stored checkpoint over all of them, and the identity's verifier key
  // pinned in keys_ (after a comment and a blank line).
  void LogWithCheckpoint() {
    RunReads(4);
    CliResult c = Audit({"checkpoint"});
    ASSERT_EQ(c.code, 0) << c.err;
    checkpoint_ = c.out;
    CliResult k = Audit({"checkpoint", "--verifier-key"});
    ASSERT_EQ(k.code, 0) << k.err;
    vkey_ = k.out.substr(0, k.out.find('\n'));
    WriteText(keys_, "# pinned signers\n\n" + k.out);
  }

  uint64_t CheckpointSize() {
    const crypto::VerifyingKey k = Identity().verifying_key();
    const audit::NoteVerifier v = audit::MakeNoteVerifier("custos/" + k.id().hex, k).value();
    return audit::OpenCheckpoint(checkpoint_, std::span(&v, 1)).value().checkpoint.size;
  }

  std::string db_, keys_, checkpoint_, vkey_;
};

TEST_F(AuditTrustedKeysTest, GenuineLogAndCheckpointVerify) {
  LogWithCheckpoint();
  CliResult v = Audit({"verify", "--trusted-keys", keys_});
  ASSERT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("hash chain intact"));
  EXPECT_THAT(v.out, HasSubstr("checkpoint " + std::to_string(CheckpointSize()) +
                               " verified (signed by custos/"));

  // Entries appended after the checkpoint do not invalidate it: its tree is a prefix.
  RunReads(2);
  CliResult later = Audit({"verify", "--trusted-keys", keys_});
  EXPECT_EQ(later.code, 0) << later.out << later.err;
}

TEST_F(AuditTrustedKeysTest, FromCheckpointVerifiesAGivenNote) {
  LogWithCheckpoint();
  const std::string old_note = (dir_.path() / "old.note").string();
  WriteText(old_note, checkpoint_);
  RunReads(2);
  ASSERT_EQ(Audit({"checkpoint"}).code, 0);
  CliResult v = Audit({"verify", "--trusted-keys", keys_, "--from-checkpoint", old_note});
  ASSERT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("checkpoint " + std::to_string(CheckpointSize()) + " verified"));

  // A note signed by the pinned key whose root is not the log's: corrupt.
  audit::Checkpoint fork;
  const crypto::SigningKey id = Identity();
  fork.origin = "custos/" + id.verifying_key().id().hex;
  fork.size = CheckpointSize();
  fork.root = audit::MerkleLeafHash("another history");
  const std::string fork_note = (dir_.path() / "fork.note").string();
  WriteText(fork_note, audit::SignCheckpoint(fork, fork.origin, id).value());
  CliResult f = Audit({"verify", "--trusted-keys", keys_, "--from-checkpoint", fork_note});
  EXPECT_EQ(f.code, ExitCodeOf(Reason::kLogCorrupt)) << f.out << f.err;
  EXPECT_THAT(f.err, HasSubstr("do not match the checkpoint's root"));

  // --from-checkpoint needs --trusted-keys.
  EXPECT_NE(Audit({"verify", "--from-checkpoint", old_note}).code, 0);
}

TEST_F(AuditTrustedKeysTest, CheckpointByAnUntrustedKeyIsAKeyError) {
  LogWithCheckpoint();
  // Same name, another key: the pinned key does not match the signature.
  const crypto::SigningKey other = crypto::SigningKey::Generate().value();
  const std::string name = vkey_.substr(0, vkey_.find('+'));
  WriteText(keys_,
            audit::VerifierKeyString(audit::MakeNoteVerifier(name, other.verifying_key()).value()) +
                "\n");
  CliResult v = Audit({"verify", "--trusted-keys", keys_});
  EXPECT_EQ(v.code, ExitCodeOf(Reason::kKeyError)) << v.out << v.err;
  // The chain verified; the stored checkpoint (size 10) is the first thing that fails.
  EXPECT_THAT(v.out, HasSubstr("(10 entries before it verified"));
  EXPECT_THAT(v.out, HasSubstr("signed by no trusted key"));
  EXPECT_THAT(v.out, Not(HasSubstr(" verified (signed by")));

  // An empty or malformed key file is refused before anything is verified.
  WriteText(keys_, "# nothing\n");
  EXPECT_EQ(Audit({"verify", "--trusted-keys", keys_}).code, ExitCodeOf(Reason::kKeyError));
  WriteText(keys_, "not a key\n");
  EXPECT_NE(Audit({"verify", "--trusted-keys", keys_}).code, 0);
}

TEST_F(AuditTrustedKeysTest, TruncatedTailIsALogGap) {
  LogWithCheckpoint();
  const std::string table = LogTable(db_);
  ASSERT_FALSE(table.empty());
  const uint64_t size = CheckpointSize();
  ASSERT_GE(size, 3u);
  // The last two entries vanish: the hash chain of what remains is intact.
  ExecSql(db_, "DELETE FROM " + table + " WHERE seq > " + std::to_string(size - 2));
  // The stored checkpoints alone reveal it, even without pinned keys.
  CliResult plain = Audit({"verify"});
  EXPECT_EQ(plain.code, ExitCodeOf(Reason::kLogGap)) << plain.out << plain.err;
  EXPECT_THAT(plain.out, HasSubstr("signed entries were removed"));
  CliResult v = Audit({"verify", "--trusted-keys", keys_});
  EXPECT_EQ(v.code, ExitCodeOf(Reason::kLogGap)) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("were removed"));
  EXPECT_THAT(v.out, Not(HasSubstr(" verified (signed by")));
}

TEST_F(AuditTrustedKeysTest, ChangedEntryIsCorrupt) {
  LogWithCheckpoint();
  const std::string table = LogTable(db_);
  ASSERT_FALSE(table.empty());
  ExecSql(db_, "UPDATE " + table +
                   " SET canonical = replace(canonical, 'hello.txt', 'hellX.txt') WHERE seq = "
                   "(SELECT MIN(seq) FROM " +
                   table + " WHERE canonical LIKE '%hello.txt%')");
  CliResult v = Audit({"verify", "--trusted-keys", keys_});
  EXPECT_EQ(v.code, ExitCodeOf(Reason::kLogCorrupt)) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("FAILED at entry"));
  EXPECT_THAT(v.out, Not(HasSubstr(" verified (signed by")));
}

TEST_F(AuditTrustedKeysTest, WitnessCosignatureIsVerifiedWhenItsKeyIsPinned) {
  LogWithCheckpoint();
  const crypto::SigningKey witness = crypto::SigningKey::Generate().value();
  const std::string cosigned =
      audit::CosignNote(checkpoint_, "witness.example/w1", witness).value();
  const std::string note = (dir_.path() / "cosigned.note").string();
  WriteText(note, cosigned);
  const std::string witness_vkey = audit::VerifierKeyString(
      audit::MakeNoteVerifier("witness.example/w1", witness.verifying_key()).value());

  // Log key and witness pinned: both signatures verify.
  WriteText(keys_, vkey_ + "\n" + witness_vkey + "\n");
  CliResult both = Audit({"verify", "--trusted-keys", keys_, "--from-checkpoint", note});
  ASSERT_EQ(both.code, 0) << both.out << both.err;
  EXPECT_THAT(both.out, HasSubstr("witness.example/w1"));

  // The witness alone pinned: its cosignature is enough for the given note, but the stored
  // checkpoints (signed by the log key only) are not signed by a pinned key.
  WriteText(keys_, witness_vkey + "\n");
  CliResult only = Audit({"verify", "--trusted-keys", keys_, "--from-checkpoint", note});
  EXPECT_EQ(only.code, ExitCodeOf(Reason::kKeyError)) << only.out << only.err;

  // A forged witness line (right name and key hash, wrong signature) rejects the note.
  const std::string forged_witness =
      audit::CosignNote(checkpoint_, "witness.example/w1", crypto::SigningKey::Generate().value())
          .value();
  // Same key hash as the pinned witness: take its line's key hash, keep the forged signature.
  const std::string pinned_line = cosigned.substr(cosigned.rfind("\xe2\x80\x94"));
  const std::string forged_line = forged_witness.substr(forged_witness.rfind("\xe2\x80\x94"));
  const std::string prefix = "\xe2\x80\x94 witness.example/w1 ";
  std::vector<uint8_t> pinned_raw =
      Base64Decode(pinned_line.substr(prefix.size(), pinned_line.size() - prefix.size() - 1))
          .value();
  std::vector<uint8_t> forged_raw =
      Base64Decode(forged_line.substr(prefix.size(), forged_line.size() - prefix.size() - 1))
          .value();
  std::copy(pinned_raw.begin(), pinned_raw.begin() + 4, forged_raw.begin());
  const std::string bad = checkpoint_ + prefix + Base64Encode(forged_raw) + "\n";
  WriteText(note, bad);
  WriteText(keys_, vkey_ + "\n" + witness_vkey + "\n");
  CliResult f = Audit({"verify", "--trusted-keys", keys_, "--from-checkpoint", note});
  EXPECT_EQ(f.code, ExitCodeOf(Reason::kTokenInvalid)) << f.out << f.err;
}

}  // namespace
}  // namespace custos::testing
