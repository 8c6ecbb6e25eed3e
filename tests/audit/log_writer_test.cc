#include "custos/audit/log_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "audit/fault_store.h"
#include "custos/audit/verifier.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::audit {
namespace {

using ::custos::audit::testing::FaultStore;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;
using ::testing::Each;
using ::testing::HasSubstr;

LogEntry Event(std::string name, std::string agent = "alice") {
  LogEntry e;
  e.type = "event";
  e.agent = std::move(agent);
  e.run = "r1";
  e.syscall = std::move(name);
  e.extra = {{"n", 1}};
  return e;
}

class LogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() / "custos.db";
    auto s = store::OpenSqliteStore(path_);
    ASSERT_THAT(s, IsOk());
    store_ = std::move(s).value();
  }

  std::unique_ptr<LogWriter> OpenWriter(Durability d, store::Store* s = nullptr) {
    auto w = LogWriter::Open(s != nullptr ? s : store_.get(), d, &clock_);
    EXPECT_THAT(w, IsOk());
    return w.ok() ? std::move(w).value() : nullptr;
  }

  void ExpectVerifies(int64_t entries) {
    VerifyReport r = VerifyStore(*store_);
    EXPECT_THAT(r.status, IsOk());
    EXPECT_EQ(r.entries, entries);
  }

  TempDir dir_;
  std::filesystem::path path_;
  std::unique_ptr<store::Store> store_;
  FakeClock clock_{1'700'000'000'000};
};

TEST(DurabilityTest, NamesRoundTripAndUnknownNameIsInvalidArgument) {
  for (Durability d : {Durability::kNone, Durability::kGroup, Durability::kFsync}) {
    auto parsed = ParseDurability(DurabilityName(d));
    ASSERT_THAT(parsed, IsOk());
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_EQ(DurabilityName(Durability::kGroup), "group");
  auto bad = ParseDurability("sometimes");
  EXPECT_THAT(bad, StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("expected none, group or fsync"));
}

TEST_F(LogWriterTest, OpenWithoutStoreOrClockIsInvalidArgument) {
  EXPECT_THAT(LogWriter::Open(nullptr, Durability::kGroup, &clock_),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(LogWriter::Open(store_.get(), Durability::kGroup, nullptr),
              StatusIs(Reason::kInvalidArgument));
}

TEST_F(LogWriterTest, AppendAssignsConsecutiveSeqsAndChainsFromGenesis) {
  auto w = OpenWriter(Durability::kGroup);
  auto a1 = w->Append(Event("one"));
  auto a2 = w->Append(Event("two"));
  ASSERT_THAT(a1, IsOk());
  ASSERT_THAT(a2, IsOk());
  EXPECT_EQ(a1->seq, 1);
  EXPECT_EQ(a2->seq, 2);
  EXPECT_EQ(w->last_seq(), 2);
  auto rows = store_->ReadLog({});
  ASSERT_THAT(rows, IsOk());
  ASSERT_EQ(rows->size(), 2u);
  auto e1 = DecodeEntry((*rows)[0]);
  auto e2 = DecodeEntry((*rows)[1]);
  ASSERT_THAT(e1, IsOk());
  ASSERT_THAT(e2, IsOk());
  EXPECT_EQ(e1->prev_hash, kGenesisHash);
  EXPECT_EQ(e1->hash, a1->hash);
  EXPECT_EQ(e2->prev_hash, a1->hash);
  EXPECT_EQ(e2->hash, a2->hash);
  EXPECT_EQ(a2->hash, ChainHash(a1->hash, (*rows)[1].canonical));
  EXPECT_EQ(e2->syscall, "two");
  ExpectVerifies(2);
}

TEST_F(LogWriterTest, AppendFillsTimeFromTheClockOnlyWhenZero) {
  auto w = OpenWriter(Durability::kGroup);
  ASSERT_THAT(w->Append(Event("now")), IsOk());
  LogEntry given = Event("given");
  given.time_ms = 42;
  ASSERT_THAT(w->Append(std::move(given)), IsOk());
  auto rows = store_->ReadLog({});
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ((*rows)[0].time_ms, 1'700'000'000'000);
  EXPECT_EQ((*rows)[1].time_ms, 42);
}

TEST_F(LogWriterTest, IndexColumnsAndPayloadReachTheStore) {
  auto w = OpenWriter(Durability::kGroup);
  LogEntry e = Event("file.read", "bob");
  e.type = "decision";
  e.verdict = "deny";
  e.reason = "path_not_allowed";
  e.payload = std::string("sealed\0request", 14);
  auto a = w->Append(std::move(e));
  ASSERT_THAT(a, IsOk());
  auto last = store_->LastLog();
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ((*last)->agent, "bob");
  EXPECT_EQ((*last)->verdict, "deny");
  EXPECT_EQ((*last)->reason, "path_not_allowed");
  EXPECT_EQ((*last)->type, "decision");
  EXPECT_EQ(*store_->ReadPayload(a->seq), std::string("sealed\0request", 14));
  EXPECT_THAT(DecodeEntry(**last), IsOk());
}

TEST_F(LogWriterTest, UnencodableEntryIsRejectedWithoutUsingASeq) {
  auto w = OpenWriter(Durability::kGroup);
  LogEntry bad = Event("bad");
  bad.usage = {{"cost", 0.5}};
  EXPECT_THAT(w->Append(std::move(bad)), StatusIs(Reason::kInvalidArgument));
  auto a = w->Append(Event("good"));
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->seq, 1);
}

TEST_F(LogWriterTest, ChainContinuesAfterReopen) {
  std::string head;
  {
    auto w = OpenWriter(Durability::kGroup);
    ASSERT_THAT(w->Append(Event("a")), IsOk());
    auto a = w->Append(Event("b"));
    ASSERT_THAT(a, IsOk());
    head = a->hash;
  }
  auto w = OpenWriter(Durability::kGroup);
  EXPECT_EQ(w->last_seq(), 2);
  auto a = w->Append(Event("c"));
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->seq, 3);
  auto e = DecodeEntry(**store_->LastLog());
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->prev_hash, head);
  ExpectVerifies(3);
}

TEST_F(LogWriterTest, OpenRefusesToExtendATamperedLastEntry) {
  {
    auto w = OpenWriter(Durability::kGroup);
    ASSERT_THAT(w->Append(Event("a")), IsOk());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE log SET canonical = replace(canonical, 'alice', 'mallo')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto w = LogWriter::Open(store_.get(), Durability::kGroup, &clock_);
  EXPECT_THAT(w, StatusIs(Reason::kLogCorrupt));
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("refusing to extend"));
}

TEST_F(LogWriterTest, OpenFailsWithTheStoreErrorWhenTheLastRowCannotBeRead) {
  FaultStore faulty(store_.get());
  faulty.fail_read = true;
  EXPECT_THAT(LogWriter::Open(&faulty, Durability::kGroup, &clock_), StatusIs(Reason::kStoreError));
}

TEST_F(LogWriterTest, ConcurrentAppendersGetUniqueConsecutiveSeqsInEveryMode) {
  for (Durability d : {Durability::kNone, Durability::kGroup, Durability::kFsync}) {
    TempDir dir;
    auto s = store::OpenSqliteStore(dir.path() / "c.db");
    ASSERT_THAT(s, IsOk());
    auto w = OpenWriter(d, s->get());
    constexpr int kThreads = 8;
    constexpr int kPerThread = 40;
    std::vector<std::vector<int64_t>> seqs(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto a = w->Append(Event("e", "agent-" + std::to_string(t)));
          seqs[t].push_back(a.ok() ? a->seq : -1);
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    ASSERT_THAT(w->Flush(), IsOk());
    std::set<int64_t> all;
    for (const auto& v : seqs) {
      // Each thread's own appends are ordered.
      EXPECT_TRUE(std::is_sorted(v.begin(), v.end())) << DurabilityName(d);
      all.insert(v.begin(), v.end());
    }
    EXPECT_EQ(all.size(), size_t{kThreads * kPerThread}) << DurabilityName(d);
    EXPECT_EQ(*all.begin(), 1) << DurabilityName(d);
    EXPECT_EQ(*all.rbegin(), kThreads * kPerThread) << DurabilityName(d);
    VerifyReport r = VerifyStore(**s);
    EXPECT_THAT(r.status, IsOk()) << DurabilityName(d);
    EXPECT_EQ(r.entries, kThreads * kPerThread) << DurabilityName(d);
  }
}

TEST_F(LogWriterTest, GroupModeSharesOneFsyncedTransactionAmongQueuedEntries) {
  FaultStore slow(store_.get());
  slow.append_delay_ms = 20;
  auto w = OpenWriter(Durability::kGroup, &slow);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        EXPECT_THAT(w->Append(Event("e")), IsOk());
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  std::vector<size_t> sizes = slow.batch_sizes();
  EXPECT_GT(*std::max_element(sizes.begin(), sizes.end()), 1u);
  EXPECT_LT(sizes.size(), 40u);
  EXPECT_THAT(slow.syncs(), Each(store::Sync::kFull));
}

TEST_F(LogWriterTest, DeferredEntryCommitsWithTheNextWaitingAppendInOneTransaction) {
  FaultStore counting(store_.get());
  auto w = OpenWriter(Durability::kGroup, &counting);
  // A waited append first: when it returns, the writer thread is idle (it holds the lock from
  // its commit until it waits again), so nothing but a wake-up can start another batch.
  ASSERT_THAT(w->Append(Event("first")), IsOk());
  auto deferred = w->AppendDeferred(Event("decision"));
  ASSERT_THAT(deferred, IsOk());
  EXPECT_EQ(deferred->seq, 2);
  EXPECT_EQ(deferred->hash.size(), 64u);
  // Queued, not written: a deferred entry does not wake the writer.
  EXPECT_EQ(*store_->LogCount(), 1);
  auto waited = w->Append(Event("outcome"));
  ASSERT_THAT(waited, IsOk());
  EXPECT_EQ(waited->seq, 3);
  // Released only once both are durable, by one fsync'd transaction.
  EXPECT_EQ(*store_->LogCount(), 3);
  EXPECT_EQ(counting.batch_sizes(), (std::vector<size_t>{1, 2}));
  EXPECT_THAT(counting.syncs(), Each(store::Sync::kFull));
  ExpectVerifies(3);
}

TEST_F(LogWriterTest, DeferredEntryIsDurableAfterFlush) {
  auto w = OpenWriter(Durability::kGroup);
  auto deferred = w->AppendDeferred(Event("alone"));
  ASSERT_THAT(deferred, IsOk());
  auto f = w->Flush();
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->seq, 1);
  EXPECT_EQ(f->hash, deferred->hash);
  EXPECT_EQ(*store_->LogCount(), 1);
  ExpectVerifies(1);
}

TEST_F(LogWriterTest, DeferredEntryLostToAStoreFailureFailsTheNextWaitingAppend) {
  FaultStore faulty(store_.get());
  auto w = OpenWriter(Durability::kGroup, &faulty);
  ASSERT_THAT(w->Append(Event("first")), IsOk());  // the writer is idle from here on
  ASSERT_THAT(w->AppendDeferred(Event("decision")), IsOk());
  faulty.fail_append = true;
  // The waiting append shares the failed batch: its caller learns the deferred entry is lost.
  EXPECT_THAT(w->Append(Event("outcome")), StatusIs(Reason::kStoreError));
  faulty.fail_append = false;
  EXPECT_THAT(w->AppendDeferred(Event("later")), StatusIs(Reason::kUnavailable));
  EXPECT_EQ(*store_->LogCount(), 1);
}

TEST_F(LogWriterTest, FsyncModeCommitsEveryEntryAloneWithFullSync) {
  FaultStore slow(store_.get());
  slow.append_delay_ms = 5;
  auto w = OpenWriter(Durability::kFsync, &slow);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        EXPECT_THAT(w->Append(Event("e")), IsOk());
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_THAT(slow.batch_sizes(), Each(1u));
  EXPECT_EQ(slow.batch_sizes().size(), 20u);
  EXPECT_THAT(slow.syncs(), Each(store::Sync::kFull));
}

TEST_F(LogWriterTest, NoneModeReturnsBeforeTheWriteAndFlushMakesItDurable) {
  FaultStore slow(store_.get());
  slow.append_delay_ms = 300;
  auto w = OpenWriter(Durability::kNone, &slow);
  auto a = w->Append(Event("fast"));
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->seq, 1);
  EXPECT_EQ(a->hash.size(), 64u);
  // Released while the (slow) store write is still pending.
  EXPECT_EQ(*store_->LogCount(), 0);
  auto f = w->Flush();
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->seq, 1);
  EXPECT_EQ(f->hash, a->hash);
  EXPECT_EQ(*store_->LogCount(), 1);
  EXPECT_THAT(slow.syncs(), Each(store::Sync::kNone));
  EXPECT_GE(slow.sync_log_calls(), 1);
}

TEST_F(LogWriterTest, FlushOnAnEmptyLogReturnsGenesis) {
  auto w = OpenWriter(Durability::kNone);
  auto f = w->Flush();
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->seq, 0);
  EXPECT_EQ(f->hash, kGenesisHash);
}

TEST_F(LogWriterTest, DestructorDrainsTheQueueAndSyncsInNoneMode) {
  FaultStore counting(store_.get());
  {
    auto w = OpenWriter(Durability::kNone, &counting);
    for (int i = 0; i < 500; ++i) {
      ASSERT_THAT(w->Append(Event("e")), IsOk());
    }
  }
  EXPECT_EQ(*store_->LogCount(), 500);
  EXPECT_GE(counting.sync_log_calls(), 1);
  ExpectVerifies(500);
}

TEST_F(LogWriterTest, StoreFailureFailsTheBatchThenFailsClosed) {
  FaultStore faulty(store_.get());
  auto w = OpenWriter(Durability::kGroup, &faulty);
  ASSERT_THAT(w->Append(Event("ok")), IsOk());
  faulty.fail_append = true;
  auto failed = w->Append(Event("lost"));
  EXPECT_THAT(failed, StatusIs(Reason::kStoreError));
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("injected append failure"));
  faulty.fail_append = false;  // even a recovered store is not written again
  auto later = w->Append(Event("after"));
  EXPECT_THAT(later, StatusIs(Reason::kUnavailable));
  EXPECT_THAT(std::string(later.status().message()), HasSubstr("stopped after a store error"));
  EXPECT_THAT(w->Flush(), StatusIs(Reason::kStoreError));
  EXPECT_EQ(*store_->LogCount(), 1);
  ExpectVerifies(1);
}

TEST_F(LogWriterTest, StoreFailureFailsEveryWaiterOfTheBatch) {
  FaultStore faulty(store_.get());
  faulty.append_delay_ms = 30;
  auto w = OpenWriter(Durability::kGroup, &faulty);
  faulty.fail_append = true;
  std::atomic<int> store_errors{0}, unavailable{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto a = w->Append(Event("e"));
      if (a.ok()) {
        ++other;
      } else if (a.status().reason() == Reason::kStoreError) {
        ++store_errors;
      } else if (a.status().reason() == Reason::kUnavailable) {
        ++unavailable;
      } else {
        ++other;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(store_errors.load(), 1);
  EXPECT_EQ(store_errors.load() + unavailable.load(), 8);
  EXPECT_EQ(*store_->LogCount(), 0);
}

TEST_F(LogWriterTest, NoneModeStoreFailureMakesLaterAppendsAndFlushFail) {
  FaultStore faulty(store_.get());
  faulty.fail_append = true;
  auto w = OpenWriter(Durability::kNone, &faulty);
  ASSERT_THAT(w->Append(Event("queued")), IsOk());  // released before the write
  EXPECT_THAT(w->Flush(), StatusIs(Reason::kStoreError));
  EXPECT_THAT(w->Append(Event("next")), StatusIs(Reason::kUnavailable));
  EXPECT_EQ(*store_->LogCount(), 0);
}

TEST_F(LogWriterTest, SyncFailureInNoneModeFailsFlush) {
  FaultStore faulty(store_.get());
  faulty.fail_sync = true;
  auto w = OpenWriter(Durability::kNone, &faulty);
  ASSERT_THAT(w->Append(Event("e")), IsOk());
  auto f = w->Flush();
  EXPECT_THAT(f, StatusIs(Reason::kStoreError));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("injected sync failure"));
  EXPECT_THAT(w->Append(Event("next")), StatusIs(Reason::kUnavailable));
}

TEST_F(LogWriterTest, AppendConflictingWithAnotherWriterFailsClosedAsStoreError) {
  auto w = OpenWriter(Durability::kGroup);
  ASSERT_THAT(w->Append(Event("mine")), IsOk());
  // Another process appends behind this writer's back.
  auto other = store::OpenSqliteStore(path_);
  ASSERT_THAT(other, IsOk());
  auto w2 = OpenWriter(Durability::kGroup, other->get());
  ASSERT_THAT(w2->Append(Event("theirs")), IsOk());
  auto r = w->Append(Event("mine again"));
  EXPECT_THAT(r, StatusIs(Reason::kStoreError));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("log_gap"));
  ExpectVerifies(2);
}

}  // namespace
}  // namespace custos::audit
