// Key rotation of the flight log (docs/spec/flight-log.md §10, decision 011): LogWriter::Rotate,
// the rotation statement's signatures, the chain of keys, per-size checkpoint signers, recovery
// after a crash between the statement and the next checkpoint, and the stable origin.

#include "custos/audit/key_rotation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "custos/audit/entry_proof.h"
#include "custos/audit/log_writer.h"
#include "custos/audit/stored_tree.h"
#include "custos/audit/verifier.h"
#include "custos/core/encoding.h"
#include "custos/crypto/key_store.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;

crypto::SigningKey KeyFrom(uint8_t b) {
  std::array<uint8_t, 32> seed{};
  seed.fill(b);
  return crypto::KeyStore::FromSeedForTest(seed).value();
}

LogEntry Event(int i) {
  LogEntry e;
  e.type = "event";
  e.syscall = "tick";
  e.extra = {{"i", i}};
  return e;
}

NoteVerifier Pin(const crypto::SigningKey& k) {
  return MakeNoteVerifier(KeyName(k.verifying_key()), k.verifying_key()).value();
}

class KeyRotationTest : public ::testing::Test {
 protected:
  void SetUp() override { Reset("custos.db"); }
  // A fresh store in another file.
  void Reset(const std::string& name) {
    store_.reset();
    path_ = dir_.path() / name;
    store_ = store::OpenSqliteStore(path_).value();
  }

  Result<std::unique_ptr<LogWriter>> OpenWith(const crypto::SigningKey& key) {
    CheckpointOptions cp;
    cp.key = &key;
    cp.every_entries = 0;
    cp.every_ms = 0;
    return LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock(), std::move(cp));
  }

  void AppendN(LogWriter& w, int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_THAT(w.Append(Event(i)), IsOk());
    }
  }

  VerifyReport Verify(std::vector<NoteVerifier> trusted = {}) {
    VerifyOptions o;
    o.merkle = true;
    o.trusted = std::move(trusted);
    return VerifyStore(*store_, o);
  }

  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }

  // Appends `r` as an ordinary entry (no checks), as a forger with write access to the writer
  // could; returns its seq.
  int64_t AppendStatement(LogWriter& w, const KeyRotation& r) {
    Result<Appended> a = w.Append(RotationEntry(r));
    EXPECT_THAT(a, IsOk());
    return a.ok() ? a->seq : 0;
  }

  // The tree size and root of everything appended so far (signs a checkpoint).
  std::pair<uint64_t, MerkleHash> Head(LogWriter& w) {
    SignedCheckpoint c = w.Checkpoint().value();
    return {c.checkpoint.size, c.checkpoint.root};
  }

  TempDir dir_;
  std::filesystem::path path_;
  std::unique_ptr<store::Store> store_;
  crypto::SigningKey k0_ = KeyFrom(1), k1_ = KeyFrom(2), k2_ = KeyFrom(3);
};

TEST_F(KeyRotationTest, RotateThenVerifyAcceptsTheLogAndCheckpointsSwitchKeys) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 5);
    Result<KeyRotation> r = w->Rotate(&k1_);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->seq, 6);
    EXPECT_EQ(r->tree_size, 5u);
    AppendN(*w, 3);
    SignedCheckpoint c = w->Checkpoint().value();
    EXPECT_EQ(c.checkpoint.size, 9u);
    // The origin stays the first key's; the signer is the new key.
    EXPECT_EQ(c.checkpoint.origin, LogOrigin(k0_.verifying_key()));
    EXPECT_THAT(CheckCheckpointSigner(c.note, 9, k1_.verifying_key(), {}), IsOk());
    EXPECT_THAT(CheckCheckpointSigner(c.note, 9, k0_.verifying_key(), {}),
                StatusIs(Reason::kCheckpointWrongSigner));
  }
  const VerifyReport rep = Verify({Pin(k0_), Pin(k1_)});
  ASSERT_THAT(rep.status, IsOk()) << rep.status.ToString();
  EXPECT_EQ(rep.entries, 9);
  ASSERT_EQ(rep.rotations.size(), 1u);
  EXPECT_EQ(rep.rotations[0].seq, 6);
  EXPECT_THAT(Verify().status, IsOk());
  EXPECT_EQ(StoredOrigin(*store_).value(), LogOrigin(k0_.verifying_key()));

  // The chain read back from the store agrees.
  KeyChain chain = ReadKeyChain(*store_).value();
  EXPECT_EQ(chain.KeyAt(5)->bytes(), k0_.verifying_key().bytes());
  EXPECT_EQ(chain.KeyAt(6)->bytes(), k1_.verifying_key().bytes());

  // A restart continues with the new key; the old one is refused.
  EXPECT_THAT(OpenWith(k0_), StatusIs(Reason::kKeyError));
  {
    auto w = OpenWith(k1_).value();
    AppendN(*w, 2);
  }
  EXPECT_THAT(Verify({Pin(k0_), Pin(k1_)}).status, IsOk());
  // Inclusion proofs use the current key.
  EXPECT_THAT(ProveEntry(*store_, k1_.verifying_key(), 3), IsOk());
}

TEST_F(KeyRotationTest, RotationDuringConcurrentAppendsSplitsTheLogCleanly) {
  {
    CheckpointOptions cp;
    cp.key = &k0_;
    cp.every_entries = 16;  // automatic checkpoints race the rotation too
    cp.every_ms = 1;
    auto w =
        LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock(), std::move(cp)).value();
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&w, &go, t] {
        while (!go.load()) {
          std::this_thread::yield();
        }
        for (int i = 0; i < 100; ++i) {
          EXPECT_THAT(w->Append(Event(t * 1000 + i)), IsOk());
        }
      });
    }
    go = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    Result<KeyRotation> r = w->Rotate(&k1_);
    ASSERT_THAT(r, IsOk());
    for (std::thread& t : threads) {
      t.join();
    }
    EXPECT_EQ(w->last_seq(), 401);
  }
  const VerifyReport rep = Verify({Pin(k0_), Pin(k1_)});
  ASSERT_THAT(rep.status, IsOk()) << rep.status.ToString();
  EXPECT_EQ(rep.entries, 401);
  ASSERT_EQ(rep.rotations.size(), 1u);
  EXPECT_GE(rep.checkpoints, 2);
}

TEST_F(KeyRotationTest, RotateTwiceChainsTheKeysAndPinsEveryOne) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 2);
    ASSERT_THAT(w->Rotate(&k1_), IsOk());
    AppendN(*w, 2);
    ASSERT_THAT(w->Rotate(&k2_), IsOk());
    AppendN(*w, 2);
  }
  VerifyReport rep = Verify({Pin(k0_), Pin(k1_), Pin(k2_)});
  ASSERT_THAT(rep.status, IsOk()) << rep.status.ToString();
  ASSERT_EQ(rep.rotations.size(), 2u);
  EXPECT_EQ(rep.rotations[0].seq, 3);
  EXPECT_EQ(rep.rotations[1].seq, 6);
  // A key of the chain that is not pinned is refused, naming the statement that introduced it.
  rep = Verify({Pin(k0_), Pin(k1_)});
  EXPECT_THAT(rep.status, StatusIs(Reason::kKeyError));
  EXPECT_EQ(rep.first_bad_seq, 6);
  rep = Verify({Pin(k1_), Pin(k2_)});
  EXPECT_THAT(rep.status, StatusIs(Reason::kKeyError));
  EXPECT_EQ(rep.first_bad_seq, 3);
  EXPECT_THAT(OpenWith(k1_), StatusIs(Reason::kKeyError));
  EXPECT_THAT(OpenWith(k2_), IsOk());
}

TEST_F(KeyRotationTest, ForgedRotationSignedOnlyByTheNewKeyIsRejected) {
  int64_t seq = 0;
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 3);
    auto [size, root] = Head(*w);
    // The forger holds only k1: both signatures by k1.
    KeyRotation r = SignRotation(LogOrigin(k0_.verifying_key()), size, root, k2_, k1_).value();
    r.old_key = k0_.verifying_key().bytes();
    std::string msg = RotationMessage(r).value();
    r.old_signature = k1_.Sign(crypto::SignContext::kKeyRotation,
                               std::span(reinterpret_cast<const uint8_t*>(msg.data()), msg.size()))
                          .value();
    r.new_signature = r.old_signature;
    seq = AppendStatement(*w, r);
  }
  const VerifyReport rep = Verify();
  EXPECT_THAT(rep.status, StatusIs(Reason::kRotationInvalid));
  EXPECT_EQ(rep.first_bad_seq, seq);
  EXPECT_NE(rep.status.ToString().find("old key"), std::string::npos) << rep.status.ToString();
}

TEST_F(KeyRotationTest, EachBadSignatureIsNamedWithTheSeq) {
  for (const bool bad_old : {true, false}) {
    Reset(bad_old ? "old.db" : "new.db");
    int64_t seq = 0;
    {
      auto w = OpenWith(k0_).value();
      AppendN(*w, 2);
      auto [size, root] = Head(*w);
      KeyRotation r = SignRotation(LogOrigin(k0_.verifying_key()), size, root, k0_, k1_).value();
      (bad_old ? r.old_signature : r.new_signature).bytes[7] ^= 1;
      seq = AppendStatement(*w, r);
    }
    const VerifyReport rep = Verify();
    EXPECT_THAT(rep.status, StatusIs(Reason::kRotationInvalid));
    EXPECT_EQ(rep.first_bad_seq, seq);
    EXPECT_NE(rep.status.ToString().find(bad_old ? "old key" : "new key"), std::string::npos)
        << rep.status.ToString();
    // Recovery refuses it too while it is not covered by a checkpoint.
    Sql("DELETE FROM checkpoints WHERE size >= " + std::to_string(seq) + ";");
    EXPECT_THAT(OpenWith(k1_), StatusIs(Reason::kRotationInvalid));
  }
}

TEST_F(KeyRotationTest, StatementNamingAnotherTreeOrAStaleOldKeyIsRejected) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 2);
    auto [size, root] = Head(*w);
    // Signed by both, but over a tree of one entry fewer.
    AppendStatement(*w,
                    SignRotation(LogOrigin(k0_.verifying_key()), size - 1, root, k0_, k1_).value());
  }
  VerifyReport rep = Verify();
  EXPECT_THAT(rep.status, StatusIs(Reason::kRotationInvalid));
  EXPECT_EQ(rep.first_bad_seq, 3);

  Reset("stale.db");
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 2);
    ASSERT_THAT(w->Rotate(&k1_), IsOk());
    auto [size, root] = Head(*w);
    // k0 is no longer current: it cannot hand over again.
    AppendStatement(*w, SignRotation(LogOrigin(k0_.verifying_key()), size, root, k0_, k2_).value());
  }
  rep = Verify();
  EXPECT_THAT(rep.status, StatusIs(Reason::kRotationInvalid));
  EXPECT_EQ(rep.first_bad_seq, 4);
}

TEST_F(KeyRotationTest, CheckpointAfterTheRotationSignedByTheOldKeyIsRejected) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 3);
    ASSERT_THAT(w->Rotate(&k1_), IsOk());
    AppendN(*w, 1);
  }
  Checkpoint c;
  c.origin = LogOrigin(k0_.verifying_key());
  c.size = 5;
  c.root = RootAt(OpenStoredTree(store_.get()).value(), 5).value();
  ASSERT_THAT(
      store_->PutCheckpoint(5, SignCheckpoint(c, KeyName(k0_.verifying_key()), k0_).value(), 1),
      IsOk());
  VerifyReport rep = Verify({Pin(k0_), Pin(k1_)});
  EXPECT_THAT(rep.status, StatusIs(Reason::kCheckpointWrongSigner));
  EXPECT_EQ(rep.first_bad_seq, 5);
  EXPECT_THAT(Verify().status, StatusIs(Reason::kCheckpointWrongSigner));
  // The new key signing before the rotation is just as wrong.
  Sql("DELETE FROM checkpoints WHERE size = 5;");
  c.size = 2;
  c.root = RootAt(OpenStoredTree(store_.get()).value(), 2).value();
  ASSERT_THAT(
      store_->PutCheckpoint(2, SignCheckpoint(c, KeyName(k1_.verifying_key()), k1_).value(), 1),
      IsOk());
  rep = Verify({Pin(k0_), Pin(k1_)});
  EXPECT_THAT(rep.status, StatusIs(Reason::kCheckpointWrongSigner));
  EXPECT_EQ(rep.first_bad_seq, 2);
}

TEST_F(KeyRotationTest, CrashBetweenStatementAndNextCheckpointIsRecoveredWithTheNewKey) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 4);
    ASSERT_THAT(w->Rotate(&k1_), IsOk());
  }
  // As if killed after the statement's commit, before the new key's checkpoint.
  Sql("DELETE FROM checkpoints WHERE size >= 5;");
  ASSERT_EQ(store_->LatestCheckpoint().value()->size, 4);
  // The old key may not sign past the statement (decision 010: refuse, never truncate).
  EXPECT_THAT(OpenWith(k0_), StatusIs(Reason::kKeyError));
  {
    auto w = OpenWith(k1_).value();  // recovery signs the uncovered statement with k1
    EXPECT_EQ(store_->LatestCheckpoint().value()->size, 5);
    AppendN(*w, 1);
  }
  EXPECT_THAT(Verify({Pin(k0_), Pin(k1_)}).status, IsOk());
}

TEST_F(KeyRotationTest, IdentityReplacedWithoutAStatementIsRefused) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 2);
  }
  EXPECT_THAT(OpenWith(k1_), StatusIs(Reason::kKeyError));
}

TEST_F(KeyRotationTest, OriginIsStoredAndLogsWithoutItKeepTheirFirstCheckpointsOrigin) {
  {
    auto w = OpenWith(k0_).value();
    AppendN(*w, 2);
    EXPECT_EQ(w->origin(), LogOrigin(k0_.verifying_key()));
  }
  EXPECT_EQ(store_->GetMeta("log.origin").value(), LogOrigin(k0_.verifying_key()));
  // A log written before the origin was stored.
  Sql("DELETE FROM meta WHERE key = 'log.origin';");
  {
    auto w = OpenWith(k0_).value();
    EXPECT_EQ(w->origin(), LogOrigin(k0_.verifying_key()));
    ASSERT_THAT(w->Rotate(&k1_), IsOk());
    EXPECT_EQ(w->origin(), LogOrigin(k0_.verifying_key()));
  }
  // A caller asking for another origin is refused.
  CheckpointOptions cp;
  cp.key = &k1_;
  cp.origin = "custos/other";
  EXPECT_THAT(LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock(), std::move(cp)),
              StatusIs(Reason::kKeyError));
}

TEST_F(KeyRotationTest, StatementFieldsAreCheckedOnOpen) {
  auto [size, root] = std::pair<uint64_t, MerkleHash>{0, MerkleEmptyRoot()};
  KeyRotation r = SignRotation("custos/x", size, root, k0_, k1_).value();
  LogEntry e = RotationEntry(r);
  e.seq = 1;
  EXPECT_THAT(OpenRotation(e), IsOk());
  LogEntry missing = e;
  missing.extra.erase("old_signature");
  EXPECT_THAT(OpenRotation(missing), StatusIs(Reason::kRotationInvalid));
  LogEntry wrong_id = e;
  wrong_id.extra["new_key_id"] = "0000000000000000";
  EXPECT_THAT(OpenRotation(wrong_id), StatusIs(Reason::kRotationInvalid));
  LogEntry upper = e;
  std::string hex = upper.extra["root"].get<std::string>();
  for (char& ch : hex) {
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  upper.extra["root"] = hex;
  EXPECT_THAT(OpenRotation(upper), StatusIs(Reason::kRotationInvalid));
  EXPECT_THAT(SignRotation("custos/x", 0, root, k0_, k0_), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos::audit
