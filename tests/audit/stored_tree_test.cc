// The Merkle tree the log writer persists, its automatic checkpoints, recovery on Open, and the
// full verification of tree and checkpoints (docs/spec/checkpoint.md §4.0, flight-log.md §8).

#include "custos/audit/stored_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "custos/audit/key_rotation.h"
#include "custos/audit/log_writer.h"
#include "custos/audit/verifier.h"
#include "custos/crypto/key_store.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;

MATCHER_P2(StatusWith, reason, substring,
           "has reason " + std::string(ReasonName(reason)) + " and says " + substring) {
  const Status& s = ::custos::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.reason() == reason && s.ToString().find(substring) != std::string::npos;
}

constexpr char kOrigin[] = "custos/stored-tree-test";

crypto::SigningKey KeyFrom(uint8_t b) {
  std::array<uint8_t, 32> seed{};
  seed.fill(b);
  return crypto::KeyStore::FromSeedForTest(seed).value();
}

LogEntry Event(int i) {
  LogEntry e;
  e.type = "event";
  e.agent = "alice";
  e.run = "r1";
  e.syscall = "tick";
  e.extra = {{"i", i}};
  return e;
}

class StoredTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() / "custos.db";
    store_ = store::OpenSqliteStore(path_).value();
  }

  CheckpointOptions Cp(int64_t every_entries, int64_t every_ms = 0) {
    CheckpointOptions cp;
    cp.key = &key_;
    cp.origin = kOrigin;
    cp.every_entries = every_entries;
    cp.every_ms = every_ms;
    return cp;
  }

  std::unique_ptr<LogWriter> Open(CheckpointOptions cp) {
    auto w = LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock(), std::move(cp));
    EXPECT_THAT(w, IsOk());
    return w.ok() ? std::move(w).value() : nullptr;
  }

  void AppendN(LogWriter& w, int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_THAT(w.Append(Event(i)), IsOk());
    }
  }

  VerifyReport FullVerify(std::vector<NoteVerifier> trusted = {}) {
    VerifyOptions o;
    o.merkle = true;
    o.trusted = std::move(trusted);
    return VerifyStore(*store_, o);
  }

  NoteVerifier Trusted() const {
    return MakeNoteVerifier(KeyName(key_.verifying_key()), key_.verifying_key()).value();
  }

  // Runs SQL on a second connection (what an attacker with the file would do).
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }

  TempDir dir_;
  std::filesystem::path path_;
  std::unique_ptr<store::Store> store_;
  crypto::SigningKey key_ = KeyFrom(7);
};

TEST_F(StoredTreeTest, WriterStoresEveryPerfectSubtreeSoProofsMatchAnInMemoryTree) {
  {
    auto w = Open(Cp(0));
    AppendN(*w, 37);
  }
  MerkleTree mem;
  store::LogQuery q;
  q.limit = 100;
  for (const store::LogRow& r : store_->ReadLog(q).value()) {
    mem.Append(MerkleLeafHash(r.canonical));
  }
  Result<StoreNodeSource> src = OpenStoredTree(store_.get());
  ASSERT_THAT(src, IsOk());
  ASSERT_EQ(src->size(), 37u);
  for (uint64_t n = 1; n <= 37; ++n) {
    EXPECT_EQ(RootAt(*src, n).value(), RootAt(mem, n).value()) << n;
    for (uint64_t i = 0; i < n; i += 5) {
      EXPECT_EQ(InclusionProof(*src, i, n).value(), InclusionProof(mem, i, n).value());
      // The batched read (one query) gives the same proof.
      EXPECT_EQ(StoredInclusionProof(*src, i, n).value(), InclusionProof(mem, i, n).value());
    }
    EXPECT_EQ(ConsistencyProof(*src, 1 + n / 2, n).value(),
              ConsistencyProof(mem, 1 + n / 2, n).value());
  }
  // Proofs beyond the tree are precise errors.
  EXPECT_THAT(InclusionProof(*src, 37, 37), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(InclusionProof(*src, 0, 38), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(StoredInclusionProof(*src, 37, 37), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(StoredInclusionProof(*src, 0, 38), StatusIs(Reason::kInvalidArgument));
  // A node the proof needs is gone: the batched read names the loss.
  Sql("DELETE FROM merkle WHERE id = (SELECT max(id) FROM merkle);");
  bool lost = false;
  for (uint64_t i = 0; i < 37; ++i) {
    Result<std::vector<MerkleHash>> p = StoredInclusionProof(*src, i, 37);
    lost = lost || (!p.ok() && p.status().reason() == Reason::kLogCorrupt);
    EXPECT_TRUE(p.ok() || p.status().reason() == Reason::kLogCorrupt) << p.status().ToString();
  }
  EXPECT_TRUE(lost);
  EXPECT_THAT(ConsistencyProof(*src, 5, 40), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(src->Node(6, 0), StatusIs(Reason::kInvalidArgument));
}

TEST_F(StoredTreeTest, CheckpointsEveryNEntriesAndOnCloseAreAllKeptAndVerify) {
  {
    auto w = Open(Cp(10));
    AppendN(*w, 35);
  }
  auto cps = store_->ReadCheckpoints(1, 100);
  ASSERT_THAT(cps, IsOk());
  std::vector<int64_t> sizes;
  for (const store::CheckpointRow& c : *cps) {
    sizes.push_back(c.size);
  }
  // Batches may hold several entries, so a count trigger fires at the first commit past it.
  ASSERT_GE(sizes.size(), 2u);
  EXPECT_EQ(sizes.back(), 35);  // the close covers the tail
  for (size_t i = 1; i < sizes.size(); ++i) {
    EXPECT_LT(sizes[i - 1], sizes[i]);
  }
  VerifyReport r = FullVerify({Trusted()});
  ASSERT_THAT(r.status, IsOk());
  EXPECT_EQ(r.entries, 35);
  EXPECT_EQ(r.checkpoints, static_cast<int64_t>(sizes.size()));
  EXPECT_GE(r.merkle_nodes, 35 + 34 - 6);  // every leaf and every completed subtree
}

TEST_F(StoredTreeTest, TimeTriggerSignsWithoutFurtherAppends) {
  auto w = Open(Cp(0, 20));
  AppendN(*w, 3);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::optional<store::CheckpointRow> latest;
  while (std::chrono::steady_clock::now() < deadline) {
    latest = store_->LatestCheckpoint().value();
    if (latest && latest->size == 3) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->size, 3);
}

TEST_F(StoredTreeTest, TimeTriggerAlsoFiresUnderASteadyStreamOfAppends) {
  auto w = Open(Cp(0, 10));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; !stop.load(); ++i) {
        ASSERT_THAT(w->Append(Event(i)), IsOk());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Counted while the writer is still busy (the close adds one more).
  const size_t during = store_->ReadCheckpoints(1, 1000).value().size();
  stop = true;
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_GE(during, 2u);
}

TEST_F(StoredTreeTest, CheckpointCallReturnsANoteCoveringEverythingAppended) {
  auto w = Open(Cp(0));
  AppendN(*w, 5);
  Result<SignedCheckpoint> c = w->Checkpoint();
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->checkpoint.size, 5u);
  const NoteVerifier v = Trusted();
  Result<OpenedCheckpoint> o = OpenCheckpoint(c->note, std::span(&v, 1));
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->checkpoint.root, RootAt(OpenStoredTree(store_.get()).value(), 5).value());
  // Without a key there are no checkpoints to ask for.
  w.reset();
  auto plain = LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock());
  ASSERT_THAT(plain, IsOk());
  EXPECT_THAT((*plain)->Checkpoint(), StatusIs(Reason::kNoCheckpoint));
}

TEST_F(StoredTreeTest, OpenBuildsTheNodesOfRowsWrittenWithoutThemAndReCheckpoints) {
  {
    auto w = Open(Cp(0));
    AppendN(*w, 9);
  }
  // Simulate rows whose nodes are missing (an older store): drop the tree above leaf 4.
  Sql("DELETE FROM merkle WHERE (id & 72057594037927935) >= 4 AND (id >> 56) = 0;"
      "DELETE FROM merkle WHERE (id >> 56) > 0 AND (((id & 72057594037927935) + 1) << (id >> 56)) "
      "> 4;"
      "DELETE FROM checkpoints;");
  EXPECT_EQ(store_->MerkleLeafCount().value(), 4);
  {
    auto w = Open(Cp(0));
    ASSERT_NE(w, nullptr);
  }
  EXPECT_EQ(store_->MerkleLeafCount().value(), 9);
  auto latest = store_->LatestCheckpoint().value();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->size, 9);
  EXPECT_THAT(FullVerify({Trusted()}).status, IsOk());
}

TEST_F(StoredTreeTest, OpenRefusesACheckpointNewerThanTheLog) {
  {
    auto w = Open(Cp(0));
    AppendN(*w, 6);
  }
  // Signed entries removed from the end (rows and their nodes, as a consistent truncation).
  Sql("DELETE FROM log WHERE seq > 4;"
      "DELETE FROM merkle WHERE (id >> 56) = 0 AND id >= 4;"
      "DELETE FROM merkle WHERE (id >> 56) > 0 AND (((id & 72057594037927935) + 1) << (id >> 56)) "
      "> 4;");
  auto w = LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock(), Cp(0));
  EXPECT_THAT(w, StatusWith(Reason::kLogGap, "covers 6 entries but the log has only 4"));
  VerifyReport r = FullVerify();
  EXPECT_THAT(r.status, StatusWith(Reason::kLogGap, "signed entries were removed"));
}

TEST_F(StoredTreeTest, OpenRefusesATailEntryThatDoesNotChainInsteadOfTruncatingIt) {
  {
    auto w = Open(Cp(0));
    AppendN(*w, 4);
  }
  Sql("DELETE FROM checkpoints WHERE size = 4;");
  // Entry 3 (after the latest checkpoint, if any) changed: evidence, never truncated away.
  Sql("UPDATE log SET canonical = replace(canonical, '\"i\":2', '\"i\":9') WHERE seq = 3;");
  auto w = LogWriter::Open(store_.get(), Durability::kGroup, &SystemClock(), Cp(0));
  EXPECT_THAT(w, StatusWith(Reason::kLogCorrupt, "log entry 3"));
  EXPECT_EQ(store_->LogCount().value(), 4);
}

TEST_F(StoredTreeTest, VerifyNamesAChangedNodeAMissingNodeAndAForeignCheckpoint) {
  {
    auto w = Open(Cp(0));
    AppendN(*w, 8);
  }
  ASSERT_THAT(FullVerify({Trusted()}).status, IsOk());

  // A checkpoint signed by a key the verifier does not trust.
  const crypto::SigningKey other = KeyFrom(9);
  Checkpoint c;
  c.origin = kOrigin;
  c.size = 8;
  c.root = RootAt(OpenStoredTree(store_.get()).value(), 8).value();
  ASSERT_THAT(store_->PutCheckpoint(8, SignCheckpoint(c, kOrigin, other).value(), 1), IsOk());
  EXPECT_THAT(FullVerify({Trusted()}).status, StatusIs(Reason::kKeyError));
  Sql("DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints);");

  // A checkpoint with a root that is not the log's.
  c.root = MerkleEmptyRoot();
  ASSERT_THAT(
      store_->PutCheckpoint(8, SignCheckpoint(c, KeyName(key_.verifying_key()), key_).value(), 1),
      IsOk());
  EXPECT_THAT(FullVerify({Trusted()}).status,
              StatusWith(Reason::kLogCorrupt, "does not match the root"));
  Sql("DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints);");

  // A malformed stored checkpoint.
  ASSERT_THAT(store_->PutCheckpoint(3, "not a note", 1), IsOk());
  EXPECT_THAT(FullVerify().status, StatusWith(Reason::kLogCorrupt, "malformed"));
  Sql("DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints);");

  // An interior node changed: proofs from it would be wrong.
  Sql("UPDATE merkle SET hash = zeroblob(32) WHERE id = (1 << 56) | 2;");
  VerifyReport r = FullVerify();
  EXPECT_THAT(r.status, StatusWith(Reason::kLogCorrupt, "(1, 2) over entries 5..6 differs"));
  EXPECT_EQ(r.first_bad_seq, 5);
  Sql("DELETE FROM merkle WHERE id = (1 << 56) | 2;");
  EXPECT_THAT(FullVerify().status, StatusWith(Reason::kLogCorrupt, "is missing"));
}

TEST_F(StoredTreeTest, StoreRejectsMalformedAndDuplicateNodes) {
  EXPECT_THAT(store_->AppendLog({}, {store::MerkleNode{0, 0, "short"}}, store::Sync::kNone),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(
      store_->AppendLog({}, {store::MerkleNode{56, 0, std::string(32, 'a')}}, store::Sync::kNone),
      StatusIs(Reason::kInvalidArgument));
  ASSERT_THAT(
      store_->AppendLog({}, {store::MerkleNode{0, 0, std::string(32, 'a')}}, store::Sync::kNone),
      IsOk());
  EXPECT_THAT(
      store_->AppendLog({}, {store::MerkleNode{0, 0, std::string(32, 'b')}}, store::Sync::kNone),
      StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(store_->ReadMerkleNode(0, 1), StatusIs(Reason::kNotFound));
  EXPECT_THAT(store_->PutCheckpoint(-1, "x", 0), StatusIs(Reason::kInvalidArgument));
}

}  // namespace
}  // namespace custos::audit
