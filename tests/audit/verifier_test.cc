#include "custos/audit/verifier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "audit/fault_store.h"
#include "custos/audit/log_entry.h"
#include "custos/audit/log_writer.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::audit {
namespace {

using ::custos::audit::testing::FaultStore;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;
using ::testing::HasSubstr;

class VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() / "custos.db";
    auto s = store::OpenSqliteStore(path_);
    ASSERT_THAT(s, IsOk());
    store_ = std::move(s).value();
  }

  // Appends `n` entries through a real writer; returns their hashes (index 0 = seq 1).
  std::vector<std::string> Fill(int n, Durability d = Durability::kGroup) {
    auto w = LogWriter::Open(store_.get(), d, &clock_);
    EXPECT_THAT(w, IsOk());
    std::vector<std::string> hashes;
    for (int i = 0; i < n; ++i) {
      LogEntry e;
      e.type = "event";
      e.agent = "alice";
      e.run = "r1";
      e.syscall = "tick";
      e.extra = {{"i", i}};
      auto a = (*w)->Append(std::move(e));
      EXPECT_THAT(a, IsOk());
      hashes.push_back(a.ok() ? a->hash : "");
    }
    EXPECT_THAT((*w)->Flush(), IsOk());
    return hashes;
  }

  std::vector<store::LogRow> Rows() {
    store::LogQuery q;
    q.limit = 1'000'000;
    auto rows = store_->ReadLog(q);
    EXPECT_THAT(rows, IsOk());
    return rows.ok() ? *rows : std::vector<store::LogRow>{};
  }

  std::string Jsonl() {
    std::string out;
    for (const auto& r : Rows()) {
      out += ToJsonLine(r);
      out += '\n';
    }
    return out;
  }

  // Tampering goes around the store, as an attacker with file access would.
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  TempDir dir_;
  std::filesystem::path path_;
  std::unique_ptr<store::Store> store_;
  FakeClock clock_;
};

TEST_F(VerifierTest, EmptyLogVerifiesWithGenesisHead) {
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_EQ(r.entries, 0);
  EXPECT_EQ(r.first_bad_seq, 0);
  EXPECT_EQ(r.head_hash, kGenesisHash);
  EXPECT_THAT(VerifyJsonl("").status, IsOk());
}

TEST_F(VerifierTest, IntactLogVerifiesAndReportsTheHead) {
  auto hashes = Fill(25);
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_EQ(r.entries, 25);
  EXPECT_EQ(r.first_bad_seq, 0);
  EXPECT_EQ(r.head_hash, hashes.back());
}

TEST_F(VerifierTest, VerifyStorePagesThroughLogsLargerThanOnePage) {
  auto hashes = Fill(40'000, Durability::kNone);
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_EQ(r.entries, 40'000);
  EXPECT_EQ(r.head_hash, hashes.back());
}

// Large pages are checked on several threads; the first bad entry must still be the one reported.
TEST_F(VerifierTest, TamperingDeepInALargeLogIsReportedAtTheRightSeq) {
  Fill(40'000, Durability::kNone);
  Sql("DELETE FROM log WHERE seq = 35000");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 35'000);
  EXPECT_EQ(r.entries, 34'999);
  Sql("UPDATE log SET canonical = replace(canonical, '\"tick\"', '\"tock\"') WHERE seq = 20001");
  r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 20'001);
  EXPECT_EQ(r.entries, 20'000);
}

TEST_F(VerifierTest, ChangedEntryIsLogCorruptAtThatSeq) {
  Fill(10);
  Sql("UPDATE log SET canonical = replace(canonical, '\"tick\"', '\"tock\"') WHERE seq = 6");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 6);
  EXPECT_EQ(r.entries, 5);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("log entry 6 was changed"));
}

TEST_F(VerifierTest, ChangedHashColumnIsLogCorrupt) {
  Fill(3);
  Sql("UPDATE log SET hash = '" + std::string(64, '0') + "' WHERE seq = 2");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 2);
}

TEST_F(VerifierTest, ChangedAndRehashedEntryBreaksTheLinkToItsSuccessor) {
  Fill(5);
  auto rows = Rows();
  std::string forged = rows[2].canonical;
  forged.replace(forged.find("\"tick\""), 6, "\"tock\"");
  std::string forged_hash = ChainHash(rows[1].hash, forged);
  Sql("UPDATE log SET canonical = '" + forged + "', hash = '" + forged_hash + "' WHERE seq = 3");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 4);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("log entry 4 does not follow entry 3"));
}

TEST_F(VerifierTest, DeletedEntryIsLogGapNamingTheMissingSeq) {
  Fill(10);
  Sql("DELETE FROM log WHERE seq = 4");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 4);
  EXPECT_EQ(r.entries, 3);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("log entry 4 is missing: found entry 5 where 4 was expected"));
}

TEST_F(VerifierTest, DeletedFirstEntryIsLogGapAtSeqOne) {
  Fill(3);
  Sql("DELETE FROM log WHERE seq = 1");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 1);
}

TEST_F(VerifierTest, ReorderedEntriesAreLogGapSayingOutOfOrder) {
  Fill(6);
  // Swap the contents of rows 3 and 4, leaving the seq column in order.
  Sql("UPDATE log SET seq = -3 WHERE seq = 3; UPDATE log SET seq = 3 WHERE seq = 4; "
      "UPDATE log SET seq = 4 WHERE seq = -3;");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 3);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("log entries 3 and 4 are out of order"));
}

TEST_F(VerifierTest, InsertedEntryIsLogGap) {
  Fill(4);
  // Shift entries 3.. up by one and insert a forged entry at 3 that links to entry 2.
  auto rows = Rows();
  std::string forged = rows[2].canonical;
  forged.replace(forged.find("\"tick\""), 6, "\"evil\"");
  std::string forged_hash = ChainHash(rows[1].hash, forged);
  Sql("UPDATE log SET seq = seq + 100 WHERE seq >= 3; UPDATE log SET seq = seq - 99 WHERE seq "
      ">= 103; INSERT INTO log(seq, hash, canonical, time_ms, agent, run, type, verdict, reason) "
      "VALUES(3, '" +
      forged_hash + "', '" + forged + "', 0, 'alice', 'r1', 'event', '', '')");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 4);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("found entry 3 where 4 was expected"));
}

TEST_F(VerifierTest, SeqColumnThatDisagreesWithTheEntryIsLogCorrupt) {
  Fill(3);
  auto rows = Rows();
  store::LogRow bad = rows[1];
  bad.seq = 7;
  ChainVerifier v;
  ASSERT_TRUE(v.Add(rows[0]));
  EXPECT_FALSE(v.Add(bad));
  VerifyReport r = v.Finish();
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 2);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("seq column disagrees"));
}

TEST_F(VerifierTest, MalformedEntryIsLogCorrupt) {
  Fill(3);
  Sql("UPDATE log SET canonical = '{\"not\":\"an entry\"}' WHERE seq = 2");
  VerifyReport r = VerifyStore(*store_);
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 2);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("is malformed"));
}

TEST_F(VerifierTest, FirstEntryMustLinkToGenesis) {
  Fill(2);
  auto rows = Rows();
  // A chain that starts from somewhere else: entry 1 re-linked to a non-genesis predecessor.
  std::string relinked = rows[0].canonical;
  relinked.replace(relinked.find(kGenesisHash), 64, std::string(64, '1'));
  store::LogRow first = rows[0];
  first.canonical = relinked;
  first.hash = ChainHash(std::string(64, '1'), relinked);
  ChainVerifier v;
  EXPECT_FALSE(v.Add(first));
  VerifyReport r = v.Finish();
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 1);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("the genesis hash"));
}

TEST_F(VerifierTest, ChainVerifierIgnoresRowsAfterTheFirstError) {
  Fill(3);
  auto rows = Rows();
  ChainVerifier v;
  EXPECT_TRUE(v.Add(rows[0]));
  EXPECT_FALSE(v.Add(rows[2]));
  EXPECT_FALSE(v.Add(rows[1]));
  VerifyReport r = v.Finish();
  EXPECT_EQ(r.entries, 1);
  EXPECT_EQ(r.first_bad_seq, 2);
  EXPECT_EQ(r.head_hash, rows[0].hash);
}

TEST_F(VerifierTest, StoreReadFailureIsNeverReportedAsSuccess) {
  Fill(3);
  FaultStore faulty(store_.get());
  faulty.fail_read = true;
  VerifyReport r = VerifyStore(faulty);
  EXPECT_THAT(r.status, StatusIs(Reason::kStoreError));
}

// --- JSONL ---

TEST_F(VerifierTest, JsonlExportVerifies) {
  auto hashes = Fill(12);
  std::string text = Jsonl();
  VerifyReport r = VerifyJsonl(text);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_EQ(r.entries, 12);
  EXPECT_EQ(r.head_hash, hashes.back());
  // The final newline is optional.
  text.pop_back();
  EXPECT_THAT(VerifyJsonl(text).status, IsOk());
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

TEST_F(VerifierTest, JsonlChangedLineIsLogCorrupt) {
  Fill(5);
  auto lines = Lines(Jsonl());
  lines[3].replace(lines[3].find("\"tick\""), 6, "\"tock\"");
  VerifyReport r = VerifyJsonl(Join(lines));
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 4);
}

TEST_F(VerifierTest, JsonlDeletedLineIsLogGap) {
  Fill(5);
  auto lines = Lines(Jsonl());
  lines.erase(lines.begin() + 1);
  VerifyReport r = VerifyJsonl(Join(lines));
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 2);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("log entry 2 is missing"));
}

TEST_F(VerifierTest, JsonlSwappedLinesAreLogGapSayingOutOfOrder) {
  Fill(5);
  auto lines = Lines(Jsonl());
  std::swap(lines[1], lines[2]);
  VerifyReport r = VerifyJsonl(Join(lines));
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 2);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("log entries 2 and 3 are out of order"));
}

TEST_F(VerifierTest, JsonlDuplicatedLineIsLogGap) {
  Fill(4);
  auto lines = Lines(Jsonl());
  lines.insert(lines.begin() + 2, lines[1]);
  VerifyReport r = VerifyJsonl(Join(lines));
  EXPECT_THAT(r.status, StatusIs(Reason::kLogGap));
  EXPECT_EQ(r.first_bad_seq, 3);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("found entry 2 where 3 was expected"));
}

TEST_F(VerifierTest, JsonlLineWithoutHashOrWithExtraBytesIsLogCorrupt) {
  Fill(3);
  auto rows = Rows();
  auto lines = Lines(Jsonl());
  std::vector<std::string> no_hash = lines;
  no_hash[1] = rows[1].canonical;
  VerifyReport r = VerifyJsonl(Join(no_hash));
  EXPECT_THAT(r.status, StatusIs(Reason::kLogCorrupt));
  EXPECT_EQ(r.first_bad_seq, 2);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("JSONL line 2"));
  std::vector<std::string> crlf = lines;
  crlf[0] += "\r";
  EXPECT_THAT(VerifyJsonl(Join(crlf)).status, StatusIs(Reason::kLogCorrupt));
  EXPECT_THAT(VerifyJsonl(Join(lines) + "\n").status, StatusIs(Reason::kLogCorrupt));
}

}  // namespace
}  // namespace custos::audit
