#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "custos/store/store.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::store {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

LogRow Row(int64_t seq, std::string agent = "alice", std::string run = "r1",
           std::string verdict = "allow") {
  LogRow r;
  r.seq = seq;
  r.hash = std::string(64, 'a' + static_cast<char>(seq % 6));
  r.canonical = "{\"seq\":" + std::to_string(seq) + "}";
  r.time_ms = 1000 + seq;
  r.agent = std::move(agent);
  r.run = std::move(run);
  r.type = "decision";
  r.verdict = std::move(verdict);
  r.reason = "ok";
  return r;
}

std::vector<int64_t> Seqs(const std::vector<LogRow>& rows) {
  std::vector<int64_t> out;
  for (const auto& r : rows) {
    out.push_back(r.seq);
  }
  return out;
}

// Runs one SQL statement on the store's file with a separate raw connection, returning the first
// column of the first row as text ("" if none).
std::string RawQuery(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* c = nullptr;
  EXPECT_EQ(sqlite3_open(db.c_str(), &c), SQLITE_OK);
  sqlite3_busy_timeout(c, 5000);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(c, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(c);
  std::string out;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  }
  EXPECT_TRUE(rc == SQLITE_ROW || rc == SQLITE_DONE) << sqlite3_errmsg(c);
  sqlite3_finalize(s);
  sqlite3_close(c);
  return out;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() / "custos.db";
    auto s = OpenSqliteStore(path_);
    ASSERT_THAT(s, IsOk());
    store_ = std::move(s).value();
  }

  std::unique_ptr<Store> OpenSecond() {
    auto s = OpenSqliteStore(path_);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(s).value() : nullptr;
  }

  TempDir dir_;
  std::filesystem::path path_;
  std::unique_ptr<Store> store_;
};

// --- Opening ---

TEST_F(SqliteStoreTest, OpenCreatesSchemaVersionOneInWalMode) {
  EXPECT_EQ(RawQuery(path_, "SELECT value FROM meta WHERE key = 'schema_version'"), "1");
  EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndSchema) {
  ASSERT_THAT(store_->AppendLog({Row(1), Row(2)}, Sync::kFull), IsOk());
  ASSERT_THAT(store_->PutMeta("log.genesis", "x"), IsOk());
  store_.reset();
  auto again = OpenSqliteStore(path_);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT((*again)->LogCount(), IsOk());
  EXPECT_EQ(*(*again)->LogCount(), 2);
  EXPECT_EQ(*(*again)->GetMeta("log.genesis"), std::optional<std::string>("x"));
}

TEST_F(SqliteStoreTest, OpenRefusesAStoreWithAnotherSchemaVersion) {
  store_.reset();
  RawQuery(path_, "UPDATE meta SET value = '2' WHERE key = 'schema_version'");
  auto s = OpenSqliteStore(path_);
  EXPECT_THAT(s, StatusIs(Reason::kStoreError));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("schema version 2"));
}

TEST(SqliteStoreOpenTest, UnwritableLocationIsStoreError) {
  EXPECT_THAT(OpenSqliteStore("/nonexistent-dir/custos.db"), StatusIs(Reason::kStoreError));
}

TEST(SqliteStoreOpenTest, InMemoryStoreWorksForReadsAndWrites) {
  auto s = OpenSqliteStore(":memory:");
  ASSERT_THAT(s, IsOk());
  ASSERT_THAT((*s)->AppendLog({Row(1)}, Sync::kNone), IsOk());
  auto last = (*s)->LastLog();
  ASSERT_THAT(last, IsOk());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->seq, 1);
}

// --- Flight log ---

TEST_F(SqliteStoreTest, EmptyLogHasNoLastRowAndCountZero) {
  auto last = store_->LastLog();
  ASSERT_THAT(last, IsOk());
  EXPECT_FALSE(last->has_value());
  EXPECT_EQ(*store_->LogCount(), 0);
}

TEST_F(SqliteStoreTest, AppendLogRoundTripsEveryColumn) {
  LogRow r = Row(1, "bob", "run-7", "deny");
  r.canonical = "{\"x\":\"\xc3\xa9\\u0000\"}";
  ASSERT_THAT(store_->AppendLog({r}, Sync::kFull), IsOk());
  auto rows = store_->ReadLog({});
  ASSERT_THAT(rows, IsOk());
  ASSERT_EQ(rows->size(), 1u);
  const LogRow& got = (*rows)[0];
  EXPECT_EQ(got.seq, 1);
  EXPECT_EQ(got.hash, r.hash);
  EXPECT_EQ(got.canonical, r.canonical);
  EXPECT_EQ(got.time_ms, r.time_ms);
  EXPECT_EQ(got.agent, "bob");
  EXPECT_EQ(got.run, "run-7");
  EXPECT_EQ(got.type, "decision");
  EXPECT_EQ(got.verdict, "deny");
  EXPECT_EQ(got.reason, "ok");
}

TEST_F(SqliteStoreTest, FirstAppendMustStartAtSeqOne) {
  Status s = store_->AppendLog({Row(2)}, Sync::kFull);
  EXPECT_THAT(s, StatusIs(Reason::kLogGap));
  EXPECT_THAT(std::string(s.message()), HasSubstr("starts at seq 2 but the log ends at seq 0"));
}

TEST_F(SqliteStoreTest, AppendThatSkipsASeqIsLogGapAndWritesNothing) {
  ASSERT_THAT(store_->AppendLog({Row(1), Row(2)}, Sync::kFull), IsOk());
  Status s = store_->AppendLog({Row(4), Row(5)}, Sync::kFull);
  EXPECT_THAT(s, StatusIs(Reason::kLogGap));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(expected 3)"));
  EXPECT_EQ(*store_->LogCount(), 2);
}

TEST_F(SqliteStoreTest, AppendThatRepeatsASeqIsLogGap) {
  ASSERT_THAT(store_->AppendLog({Row(1), Row(2)}, Sync::kFull), IsOk());
  EXPECT_THAT(store_->AppendLog({Row(2)}, Sync::kFull), StatusIs(Reason::kLogGap));
}

TEST_F(SqliteStoreTest, NonConsecutiveBatchIsLogGapAndWritesNothing) {
  Status s = store_->AppendLog({Row(1), Row(3)}, Sync::kFull);
  EXPECT_THAT(s, StatusIs(Reason::kLogGap));
  EXPECT_THAT(std::string(s.message()), HasSubstr("seq 3 follows seq 1"));
  EXPECT_EQ(*store_->LogCount(), 0);
}

TEST_F(SqliteStoreTest, AppendIsAllOrNothingWhenARowFailsMidBatch) {
  ASSERT_THAT(store_->AppendLog({Row(1)}, Sync::kFull), IsOk());
  // A trigger makes the third row of the next batch fail inside the transaction.
  RawQuery(path_,
           "CREATE TRIGGER fail_row BEFORE INSERT ON log WHEN NEW.seq = 4 "
           "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  Status s = store_->AppendLog({Row(2), Row(3), Row(4), Row(5)}, Sync::kFull);
  EXPECT_THAT(s, StatusIs(Reason::kStoreError));
  EXPECT_THAT(std::string(s.message()), HasSubstr("injected failure"));
  EXPECT_EQ(*store_->LogCount(), 1);
  auto last = store_->LastLog();
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ((*last)->seq, 1);
  // The store keeps working after the failed batch.
  RawQuery(path_, "DROP TRIGGER fail_row");
  EXPECT_THAT(store_->AppendLog({Row(2), Row(3), Row(4)}, Sync::kFull), IsOk());
}

TEST_F(SqliteStoreTest, BothSyncModesPersistAcrossReopen) {
  ASSERT_THAT(store_->AppendLog({Row(1), Row(2)}, Sync::kNone), IsOk());
  ASSERT_THAT(store_->AppendLog({Row(3)}, Sync::kFull), IsOk());
  ASSERT_THAT(store_->AppendLog({Row(4)}, Sync::kNone), IsOk());
  ASSERT_THAT(store_->SyncLog(), IsOk());
  EXPECT_EQ(RawQuery(path_, "SELECT value FROM meta WHERE key = 'log_synced_seq'"), "4");
  // A non-log write after a kNone append runs with synchronous=FULL again.
  ASSERT_THAT(store_->PutMeta("k", "v"), IsOk());
  store_.reset();
  auto again = OpenSqliteStore(path_);
  ASSERT_THAT(again, IsOk());
  auto rows = (*again)->ReadLog({});
  ASSERT_THAT(rows, IsOk());
  EXPECT_THAT(Seqs(*rows), ElementsAre(1, 2, 3, 4));
}

TEST_F(SqliteStoreTest, EmptyAppendIsANoOp) {
  EXPECT_THAT(store_->AppendLog({}, Sync::kFull), IsOk());
  EXPECT_EQ(*store_->LogCount(), 0);
}

TEST_F(SqliteStoreTest, ReadLogPagesFromSeqWithLimit) {
  std::vector<LogRow> rows;
  for (int i = 1; i <= 10; ++i) {
    rows.push_back(Row(i));
  }
  ASSERT_THAT(store_->AppendLog(rows, Sync::kNone), IsOk());
  LogQuery q;
  q.from_seq = 4;
  q.limit = 3;
  auto page = store_->ReadLog(q);
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Seqs(*page), ElementsAre(4, 5, 6));
  q.from_seq = 9;
  page = store_->ReadLog(q);
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Seqs(*page), ElementsAre(9, 10));
  q.limit = 0;
  EXPECT_THAT(store_->ReadLog(q), StatusIs(Reason::kInvalidArgument));
}

TEST_F(SqliteStoreTest, ReadLogFiltersByAgentRunAndVerdict) {
  ASSERT_THAT(store_->AppendLog({Row(1, "alice", "r1", "allow"), Row(2, "bob", "r1", "deny"),
                                 Row(3, "alice", "r2", "deny"), Row(4, "alice", "r1", "deny")},
                                Sync::kNone),
              IsOk());
  LogQuery q;
  q.agent = "alice";
  EXPECT_THAT(Seqs(*store_->ReadLog(q)), ElementsAre(1, 3, 4));
  q.run = "r1";
  EXPECT_THAT(Seqs(*store_->ReadLog(q)), ElementsAre(1, 4));
  q.verdict = "deny";
  EXPECT_THAT(Seqs(*store_->ReadLog(q)), ElementsAre(4));
  LogQuery by_run;
  by_run.run = "r2";
  EXPECT_THAT(Seqs(*store_->ReadLog(by_run)), ElementsAre(3));
  LogQuery by_verdict;
  by_verdict.verdict = "deny";
  EXPECT_THAT(Seqs(*store_->ReadLog(by_verdict)), ElementsAre(2, 3, 4));
}

TEST_F(SqliteStoreTest, PayloadIsStoredBesideItsRowAndReadSeparately) {
  LogRow r = Row(1);
  r.payload = std::string("sealed\0bytes", 12);
  ASSERT_THAT(store_->AppendLog({r, Row(2)}, Sync::kFull), IsOk());
  auto p = store_->ReadPayload(1);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(*p, r.payload);
  EXPECT_THAT(store_->ReadPayload(2), StatusIs(Reason::kNotFound));
  auto rows = store_->ReadLog({});
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ((*rows)[0].payload, "");
}

TEST_F(SqliteStoreTest, ReadLogWithPayloadsReturnsEachRowsPayloadInOneQuery) {
  LogRow r = Row(1);
  r.payload = std::string("sealed\0bytes", 12);
  LogRow r3 = Row(3);
  r3.payload = "third";
  ASSERT_THAT(store_->AppendLog({r, Row(2), r3}, Sync::kNone), IsOk());
  LogQuery q;
  q.with_payloads = true;
  auto rows = store_->ReadLog(q);
  ASSERT_THAT(rows, IsOk());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].payload, r.payload);
  EXPECT_EQ((*rows)[1].payload, "");
  EXPECT_EQ((*rows)[2].payload, "third");
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileCannotBothAppendTheSameSeq) {
  auto other = OpenSecond();
  ASSERT_NE(other, nullptr);
  ASSERT_THAT(store_->AppendLog({Row(1)}, Sync::kFull), IsOk());
  EXPECT_THAT(other->AppendLog({Row(1)}, Sync::kFull), StatusIs(Reason::kLogGap));
  EXPECT_THAT(other->AppendLog({Row(2)}, Sync::kFull), IsOk());
  auto last = store_->LastLog();
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ((*last)->seq, 2);
}

// --- Handles ---

TEST_F(SqliteStoreTest, HandleRoundTripsIncludingBinarySealedBytes) {
  HandleRecord h;
  h.id = "h_abcdefghijklmnopqrstuvwxyz";
  h.owner_agent = "alice";
  h.run = "r1";
  h.content_hash = std::string(64, 'f');
  h.labels = Json::array({"untrusted", "private", "external"});
  h.kind = "http";
  h.sealed = std::string("\x00\x01\xff\x00", 4);
  h.meta = R"({"url":"https://example.com"})";
  h.created_ms = 5;
  h.expires_ms = 10;
  ASSERT_THAT(store_->PutHandle(h, Sync::kFull), IsOk());
  auto got = store_->GetHandle(h.id);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->owner_agent, "alice");
  EXPECT_EQ(got->run, "r1");
  EXPECT_EQ(got->content_hash, h.content_hash);
  EXPECT_EQ(got->labels, h.labels);
  EXPECT_EQ(got->kind, "http");
  EXPECT_EQ(got->sealed, h.sealed);
  EXPECT_EQ(got->meta, h.meta);
  EXPECT_EQ(got->created_ms, 5);
  EXPECT_EQ(got->expires_ms, 10);
}

TEST_F(SqliteStoreTest, HandleWrittenWithoutSyncIsCommittedAndLaterWritesSyncAgain) {
  HandleRecord h;
  h.id = "h_nosync";
  h.labels = Json::array({"untrusted"});
  ASSERT_THAT(store_->PutHandle(h, Sync::kNone), IsOk());
  EXPECT_THAT(store_->GetHandle(h.id), IsOk());
  // The next full commit (here a log row) runs with synchronous=FULL again and covers it.
  ASSERT_THAT(store_->AppendLog({Row(1)}, Sync::kFull), IsOk());
  store_.reset();
  auto reopened = OpenSqliteStore(path_);
  ASSERT_THAT(reopened, IsOk());
  auto got = (*reopened)->GetHandle(h.id);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->labels, h.labels);
}

TEST_F(SqliteStoreTest, DuplicateHandleIsAlreadyExistsAndMissingIsNotFound) {
  HandleRecord h;
  h.id = "h_1";
  h.labels = Json::array();
  ASSERT_THAT(store_->PutHandle(h, Sync::kFull), IsOk());
  EXPECT_THAT(store_->PutHandle(h, Sync::kFull), StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(store_->GetHandle("h_2"), StatusIs(Reason::kNotFound));
}

TEST_F(SqliteStoreTest, HandleWithInvalidUtf8LabelsIsInvalidArgument) {
  HandleRecord h;
  h.id = "h_1";
  h.labels = Json::array({std::string("\xff")});
  EXPECT_THAT(store_->PutHandle(h, Sync::kFull), StatusIs(Reason::kInvalidArgument));
}

// --- Heap ---

HeapOp Put(std::string id, Json value, int64_t expected = -1, std::string type = "note") {
  HeapOp op;
  op.object.id = std::move(id);
  op.object.type = std::move(type);
  op.object.value = std::move(value);
  op.object.labels = Json::array({"trusted", "public"});
  op.expected_version = expected;
  return op;
}

HeapOp Delete(std::string id, int64_t expected = -1) {
  HeapOp op;
  op.kind = HeapOp::Kind::kDelete;
  op.object.id = std::move(id);
  op.expected_version = expected;
  return op;
}

TEST_F(SqliteStoreTest, HeapVersionsStartAtOneAndIncrement) {
  auto w = store_->HeapApply("r1", {Put("a", {{"n", 1}}, 0)}, 100);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ((*w)[0].version, 1);
  EXPECT_EQ((*w)[0].owner_run, "r1");
  w = store_->HeapApply("r1", {Put("a", {{"n", 2}}, 1)}, 200);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ((*w)[0].version, 2);
  w = store_->HeapApply("r1", {Put("a", {{"n", 3}})}, 300);  // no check
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ((*w)[0].version, 3);
  auto got = store_->HeapGet("r1", "a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->version, 3);
  EXPECT_EQ(got->value, Json({{"n", 3}}));
  EXPECT_EQ(got->type, "note");
  EXPECT_EQ(got->labels, Json::array({"trusted", "public"}));
  EXPECT_EQ(got->updated_ms, 300);
}

TEST_F(SqliteStoreTest, HeapCasOnStaleVersionIsVersionConflictNamingIdExpectedAndActual) {
  ASSERT_THAT(store_->HeapApply("r1", {Put("a", 1, 0)}, 1), IsOk());
  ASSERT_THAT(store_->HeapApply("r1", {Put("a", 2, 1)}, 1), IsOk());
  auto r = store_->HeapApply("r1", {Put("a", 3, 1)}, 1);
  EXPECT_THAT(r, StatusIs(Reason::kVersionConflict));
  EXPECT_THAT(
      std::string(r.status().message()),
      AllOf(HasSubstr("heap object a"), HasSubstr("expected version 1"), HasSubstr("actual 2")));
}

TEST_F(SqliteStoreTest, HeapExpectedVersionZeroMeansMustNotExist) {
  ASSERT_THAT(store_->HeapApply("r1", {Put("a", 1, 0)}, 1), IsOk());
  auto r = store_->HeapApply("r1", {Put("a", 1, 0)}, 1);
  EXPECT_THAT(r, StatusIs(Reason::kVersionConflict));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("expected version 0, actual 1"));
  auto missing = store_->HeapApply("r1", {Put("b", 1, 4)}, 1);
  EXPECT_THAT(missing, StatusIs(Reason::kVersionConflict));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("actual 0 (absent)"));
}

TEST_F(SqliteStoreTest, HeapBatchIsAllOrNothing) {
  ASSERT_THAT(store_->HeapApply("r1", {Put("a", 1, 0)}, 1), IsOk());
  auto r = store_->HeapApply("r1", {Put("b", 1, 0), Put("a", 2, 7)}, 2);
  EXPECT_THAT(r, StatusIs(Reason::kVersionConflict));
  EXPECT_THAT(store_->HeapGet("r1", "b"), StatusIs(Reason::kNotFound));
  EXPECT_EQ(store_->HeapGet("r1", "a")->version, 1);
}

TEST_F(SqliteStoreTest, HeapBatchOpsSeeEarlierOpsOfTheSameBatch) {
  auto r =
      store_->HeapApply("r1", {Put("a", 1, 0), Put("a", 2, 1), Delete("a", 2), Put("a", 3, 0)}, 5);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].version, 1);
  EXPECT_EQ((*r)[1].version, 2);
  EXPECT_EQ((*r)[2].version, 0);
  EXPECT_TRUE((*r)[2].value.is_null());
  EXPECT_EQ((*r)[3].version, 1);
}

TEST_F(SqliteStoreTest, HeapDeleteRemovesAndMissingDeleteIsNotFound) {
  ASSERT_THAT(store_->HeapApply("r1", {Put("a", 1, 0)}, 1), IsOk());
  EXPECT_THAT(store_->HeapApply("r1", {Delete("a", 5)}, 1), StatusIs(Reason::kVersionConflict));
  auto d = store_->HeapApply("r1", {Delete("a", 1)}, 1);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ((*d)[0].type, "note");
  EXPECT_THAT(store_->HeapGet("r1", "a"), StatusIs(Reason::kNotFound));
  EXPECT_THAT(store_->HeapApply("r1", {Delete("a")}, 1), StatusIs(Reason::kNotFound));
}

TEST_F(SqliteStoreTest, HeapRejectsOpsWithoutIdOrWithBadExpectedVersion) {
  EXPECT_THAT(store_->HeapApply("r1", {Put("", 1)}, 1), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(store_->HeapApply("r1", {Put("a", 1, -2)}, 1), StatusIs(Reason::kInvalidArgument));
}

TEST_F(SqliteStoreTest, HeapIsScopedByRun) {
  ASSERT_THAT(store_->HeapApply("r1", {Put("a", 1, 0)}, 1), IsOk());
  EXPECT_THAT(store_->HeapGet("r2", "a"), StatusIs(Reason::kNotFound));
  ASSERT_THAT(store_->HeapApply("r2", {Put("a", 2, 0)}, 1), IsOk());
  EXPECT_EQ(store_->HeapGet("r1", "a")->value, Json(1));
}

TEST_F(SqliteStoreTest, HeapQueryFiltersByTypeInIdOrderWithLimit) {
  ASSERT_THAT(store_->HeapApply("r1",
                                {Put("c", 1, 0, "todo"), Put("a", 2, 0, "todo"),
                                 Put("b", 3, 0, "note"), Put("d", 4, 0, "todo")},
                                1),
              IsOk());
  ASSERT_THAT(store_->HeapApply("r2", {Put("e", 5, 0, "todo")}, 1), IsOk());
  auto todos = store_->HeapQuery("r1", "todo", 2);
  ASSERT_THAT(todos, IsOk());
  ASSERT_EQ(todos->size(), 2u);
  EXPECT_EQ((*todos)[0].id, "a");
  EXPECT_EQ((*todos)[1].id, "c");
  auto all = store_->HeapQuery("r1", "", 100);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->size(), 4u);
  EXPECT_THAT(store_->HeapQuery("r1", "todo", 0), StatusIs(Reason::kInvalidArgument));
}

// Concurrent read-modify-write with CAS from threads on two store instances (as two processes
// would): every successful increment is counted exactly once.
TEST_F(SqliteStoreTest, ConcurrentCasIncrementsFromTwoStoresLoseNoUpdate) {
  auto other = OpenSecond();
  ASSERT_NE(other, nullptr);
  ASSERT_THAT(store_->HeapApply("r1", {Put("counter", 0, 0)}, 1), IsOk());
  constexpr int kThreads = 8;
  constexpr int kIncrements = 25;
  std::atomic<int> conflicts{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Store* s = t % 2 == 0 ? store_.get() : other.get();
    threads.emplace_back([&, s] {
      for (int done = 0; done < kIncrements;) {
        auto cur = s->HeapGet("r1", "counter");
        if (!cur.ok()) {
          failed = true;
          return;
        }
        auto w = s->HeapApply("r1", {Put("counter", cur->value.get<int>() + 1, cur->version)}, 1);
        if (w.ok()) {
          ++done;
        } else if (w.status().reason() == Reason::kVersionConflict) {
          ++conflicts;
        } else {
          failed = true;
          return;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  ASSERT_FALSE(failed.load());
  auto final_obj = store_->HeapGet("r1", "counter");
  ASSERT_THAT(final_obj, IsOk());
  EXPECT_EQ(final_obj->value.get<int>(), kThreads * kIncrements);
  EXPECT_EQ(final_obj->version, 1 + kThreads * kIncrements);
}

// --- Approvals ---

Approval Pending(std::string id, int64_t created = 1) {
  Approval a;
  a.id = std::move(id);
  a.agent = "alice";
  a.run = "r1";
  a.syscall = "file.write";
  a.target = "/tmp/x";
  a.rule = "ask-before-write";
  a.question = "may alice write /tmp/x?";
  a.state = "pending";
  a.created_ms = created;
  a.deadline_ms = created + 1000;
  return a;
}

TEST_F(SqliteStoreTest, ApprovalRoundTripsAndDuplicateIsAlreadyExists) {
  ASSERT_THAT(store_->PutApproval(Pending("a_1")), IsOk());
  auto a = store_->GetApproval("a_1");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->state, "pending");
  EXPECT_EQ(a->syscall, "file.write");
  EXPECT_EQ(a->question, "may alice write /tmp/x?");
  EXPECT_EQ(a->deadline_ms, 1001);
  EXPECT_THAT(store_->PutApproval(Pending("a_1")), StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(store_->GetApproval("a_2"), StatusIs(Reason::kNotFound));
}

TEST_F(SqliteStoreTest, ApprovalWithUnknownStateIsInvalidArgument) {
  Approval a = Pending("a_1");
  a.state = "maybe";
  EXPECT_THAT(store_->PutApproval(a), StatusIs(Reason::kInvalidArgument));
}

TEST_F(SqliteStoreTest, AnswerMovesPendingToApprovedOrDeniedOnce) {
  ASSERT_THAT(store_->PutApproval(Pending("a_1")), IsOk());
  ASSERT_THAT(store_->PutApproval(Pending("a_2")), IsOk());
  ASSERT_THAT(store_->AnswerApproval("a_1", true, "carol", "fine", 50), IsOk());
  ASSERT_THAT(store_->AnswerApproval("a_2", false, "dave", "no", 60), IsOk());
  auto a1 = store_->GetApproval("a_1");
  EXPECT_EQ(a1->state, "approved");
  EXPECT_EQ(a1->answered_by, "carol");
  EXPECT_EQ(a1->note, "fine");
  EXPECT_EQ(a1->answered_ms, 50);
  EXPECT_EQ(store_->GetApproval("a_2")->state, "denied");
  Status again = store_->AnswerApproval("a_1", false, "eve", "", 70);
  EXPECT_THAT(again, StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(std::string(again.message()), HasSubstr("already approved"));
  EXPECT_EQ(store_->GetApproval("a_1")->answered_by, "carol");
  EXPECT_THAT(store_->AnswerApproval("a_9", true, "x", "", 1), StatusIs(Reason::kNotFound));
}

TEST_F(SqliteStoreTest, ExpiredApprovalCannotBeAnswered) {
  Approval a = Pending("a_1");
  a.state = "expired";
  ASSERT_THAT(store_->PutApproval(a), IsOk());
  EXPECT_THAT(store_->AnswerApproval("a_1", true, "carol", "", 5),
              StatusIs(Reason::kAlreadyExists));
}

TEST_F(SqliteStoreTest, ListApprovalsByStateOldestFirst) {
  ASSERT_THAT(store_->PutApproval(Pending("a_3", 30)), IsOk());
  ASSERT_THAT(store_->PutApproval(Pending("a_1", 10)), IsOk());
  ASSERT_THAT(store_->PutApproval(Pending("a_2", 20)), IsOk());
  ASSERT_THAT(store_->AnswerApproval("a_2", true, "carol", "", 25), IsOk());
  auto pending = store_->ListApprovals("pending");
  ASSERT_THAT(pending, IsOk());
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].id, "a_1");
  EXPECT_EQ((*pending)[1].id, "a_3");
  EXPECT_EQ(store_->ListApprovals("approved")->size(), 1u);
  EXPECT_EQ(store_->ListApprovals("")->size(), 3u);
}

TEST_F(SqliteStoreTest, ApprovalAnsweredThroughASecondStoreIsSeenByTheFirst) {
  auto other = OpenSecond();
  ASSERT_NE(other, nullptr);
  ASSERT_THAT(store_->PutApproval(Pending("a_1")), IsOk());
  ASSERT_EQ(other->GetApproval("a_1")->state, "pending");
  ASSERT_THAT(other->AnswerApproval("a_1", true, "carol", "ok", 9), IsOk());
  EXPECT_EQ(store_->GetApproval("a_1")->state, "approved");
  EXPECT_THAT(store_->AnswerApproval("a_1", false, "dave", "", 10),
              StatusIs(Reason::kAlreadyExists));
}

TEST_F(SqliteStoreTest, ConcurrentAnswersFromTwoStoresHaveExactlyOneWinner) {
  auto other = OpenSecond();
  ASSERT_NE(other, nullptr);
  constexpr int kApprovals = 20;
  for (int i = 0; i < kApprovals; ++i) {
    ASSERT_THAT(store_->PutApproval(Pending("a_" + std::to_string(i))), IsOk());
  }
  std::atomic<int> wins{0}, losses{0}, errors{0};
  auto answer = [&](Store* s, bool approve) {
    for (int i = 0; i < kApprovals; ++i) {
      Status st =
          s->AnswerApproval("a_" + std::to_string(i), approve, approve ? "yes" : "no", "", 1);
      if (st.ok()) {
        ++wins;
      } else if (st.reason() == Reason::kAlreadyExists) {
        ++losses;
      } else {
        ++errors;
      }
    }
  };
  std::thread t1(answer, store_.get(), true);
  std::thread t2(answer, other.get(), false);
  t1.join();
  t2.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wins.load(), kApprovals);
  EXPECT_EQ(losses.load(), kApprovals);
  for (int i = 0; i < kApprovals; ++i) {
    auto a = store_->GetApproval("a_" + std::to_string(i));
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(a->answered_by, a->state == "approved" ? "yes" : "no");
  }
}

// A real second process (as `custos approvals approve` is to a waiting `custos run`).
TEST_F(SqliteStoreTest, ApprovalAnsweredByAnotherProcessReachesTheWaiter) {
  ASSERT_THAT(store_->PutApproval(Pending("a_1")), IsOk());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = OpenSqliteStore(path_);
    int code = s.ok() && (*s)->AnswerApproval("a_1", true, "operator", "", 42).ok() ? 0 : 1;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto a = store_->GetApproval("a_1");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->state, "approved");
  EXPECT_EQ(a->answered_by, "operator");
}

// --- Mail ---

MailMessage Mail(std::string run, std::string from, std::string to, std::string handle) {
  MailMessage m;
  m.run = std::move(run);
  m.from_agent = std::move(from);
  m.to_agent = std::move(to);
  m.handle = std::move(handle);
  m.sent_ms = 7;
  return m;
}

TEST_F(SqliteStoreTest, MailIsFifoPerRunAndRecipient) {
  ASSERT_THAT(store_->SendMail(Mail("r1", "alice", "bob", "h_1")), IsOk());
  ASSERT_THAT(store_->SendMail(Mail("r1", "alice", "carol", "h_2")), IsOk());
  ASSERT_THAT(store_->SendMail(Mail("r2", "alice", "bob", "h_3")), IsOk());
  ASSERT_THAT(store_->SendMail(Mail("r1", "carol", "bob", "h_4")), IsOk());
  std::vector<std::string> got;
  while (true) {
    auto m = store_->RecvMail("r1", "bob");
    ASSERT_THAT(m, IsOk());
    if (!m->has_value()) {
      break;
    }
    EXPECT_EQ((*m)->run, "r1");
    EXPECT_EQ((*m)->to_agent, "bob");
    EXPECT_EQ((*m)->sent_ms, 7);
    EXPECT_GT((*m)->id, 0);
    got.push_back((*m)->from_agent + ":" + (*m)->handle);
  }
  EXPECT_THAT(got, ElementsAre("alice:h_1", "carol:h_4"));
  EXPECT_EQ((*store_->RecvMail("r1", "carol"))->handle, "h_2");
  EXPECT_EQ((*store_->RecvMail("r2", "bob"))->handle, "h_3");
  EXPECT_FALSE(store_->RecvMail("r2", "bob")->has_value());
}

TEST_F(SqliteStoreTest, ConcurrentReceiversFromTwoStoresGetEachMessageOnce) {
  auto other = OpenSecond();
  ASSERT_NE(other, nullptr);
  constexpr int kMessages = 60;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_THAT(store_->SendMail(Mail("r1", "alice", "bob", "h_" + std::to_string(i))), IsOk());
  }
  std::mutex mu;
  std::vector<std::string> received;
  std::atomic<bool> failed{false};
  auto recv = [&](Store* s) {
    while (true) {
      auto m = s->RecvMail("r1", "bob");
      if (!m.ok()) {
        failed = true;
        return;
      }
      if (!m->has_value()) {
        return;
      }
      std::lock_guard lock(mu);
      received.push_back((*m)->handle);
    }
  };
  std::thread t1(recv, store_.get());
  std::thread t2(recv, other.get());
  t1.join();
  t2.join();
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(received.size(), size_t{kMessages});
  EXPECT_EQ(std::set<std::string>(received.begin(), received.end()).size(), size_t{kMessages});
}

// --- Agents and metadata ---

TEST_F(SqliteStoreTest, AgentRoundTripsAndDuplicateIsAlreadyExists) {
  AgentRecord a;
  a.name = "worker";
  a.run = "r1";
  a.parent = "alice";
  a.syscalls = Json::array({"file.read"});
  a.budget = {{"tool_calls", 3}};
  a.created_ms = 11;
  ASSERT_THAT(store_->PutAgent(a), IsOk());
  auto got = store_->GetAgent("r1", "worker");
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->parent, "alice");
  EXPECT_EQ((*got)->syscalls, a.syscalls);
  EXPECT_EQ((*got)->budget, a.budget);
  EXPECT_EQ((*got)->created_ms, 11);
  EXPECT_THAT(store_->PutAgent(a), StatusIs(Reason::kAlreadyExists));
  EXPECT_FALSE(store_->GetAgent("r2", "worker")->has_value());
}

TEST_F(SqliteStoreTest, MetaPutOverwritesAndMissingIsNullopt) {
  EXPECT_FALSE(store_->GetMeta("log.genesis")->has_value());
  ASSERT_THAT(store_->PutMeta("log.genesis", "a"), IsOk());
  ASSERT_THAT(store_->PutMeta("log.genesis", "b"), IsOk());
  EXPECT_EQ(*store_->GetMeta("log.genesis"), std::optional<std::string>("b"));
  // User metadata never collides with the schema's own bookkeeping.
  EXPECT_FALSE(store_->GetMeta("schema_version")->has_value());
}

TEST_F(SqliteStoreTest, WritesThroughOneStoreAreVisibleToReadsThroughAnother) {
  auto other = OpenSecond();
  ASSERT_NE(other, nullptr);
  ASSERT_THAT(store_->PutMeta("k", "v1"), IsOk());
  EXPECT_EQ(*other->GetMeta("k"), std::optional<std::string>("v1"));
  ASSERT_THAT(other->PutMeta("k", "v2"), IsOk());
  EXPECT_EQ(*store_->GetMeta("k"), std::optional<std::string>("v2"));
  ASSERT_THAT(store_->AppendLog({Row(1)}, Sync::kNone), IsOk());
  EXPECT_EQ(*other->LogCount(), 1);
}

}  // namespace
}  // namespace custos::store
