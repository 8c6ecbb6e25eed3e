// Crash safety of the flight log (INV-4, docs/decisions/010-flight-log-recovery.md): a child
// process appends with group commit, a stored Merkle tree and frequent signed checkpoints, and
// reports every seq whose Append() returned; the parent SIGKILLs it at a random moment (hundreds
// of times), reopens the store through LogWriter::Open (recovery: catch the tree up, check the
// tail, re-checkpoint), and verifies the whole log: chain, every stored Merkle node, every
// checkpoint's root and signature. Every acknowledged seq must be in it.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "custos/audit/log_writer.h"
#include "custos/audit/verifier.h"
#include "custos/crypto/key_store.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::TempDir;

constexpr int kCrashIterations = 300;
constexpr int kIterationsPerLog = 30;  // a fresh log every so often keeps verification cheap
constexpr int kChildAppenders = 4;
constexpr int kMaxKillDelayMs = 40;
constexpr auto kTimeBudget = std::chrono::seconds(75);

crypto::SigningKey TestKey() {
  std::array<uint8_t, 32> seed{};
  seed.fill(0x42);
  return crypto::KeyStore::FromSeedForTest(seed).value();
}

CheckpointOptions Checkpoints(const crypto::SigningKey& key) {
  CheckpointOptions cp;
  cp.key = &key;
  cp.origin = "custos/crash-test";
  cp.every_entries = 64;  // many checkpoints, so kills land between entry and checkpoint
  cp.every_ms = 5;
  return cp;
}

// Runs in the forked child: appends until killed. Never returns.
[[noreturn]] void AppendUntilKilled(const std::filesystem::path& db, int ack_fd) {
  auto store = store::OpenSqliteStore(db);
  if (!store.ok()) {
    _exit(2);
  }
  const crypto::SigningKey key = TestKey();
  auto writer = LogWriter::Open(store->get(), Durability::kGroup, &SystemClock(), Checkpoints(key));
  if (!writer.ok()) {
    _exit(3);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kChildAppenders; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        LogEntry e;
        e.type = "event";
        e.agent = "crash-" + std::to_string(t);
        e.run = "r1";
        e.syscall = "tick";
        e.extra = {{"i", i}};
        auto a = (*writer)->Append(std::move(e));
        if (!a.ok()) {
          _exit(4);
        }
        int64_t seq = a->seq;
        // 8-byte writes to a pipe are atomic (< PIPE_BUF).
        if (write(ack_fd, &seq, sizeof seq) != static_cast<ssize_t>(sizeof seq)) {
          _exit(5);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  _exit(0);
}

TEST(LogCrashTest, SigkillDuringGroupCommitLosesNoAcknowledgedEntryAndKeepsTreeAndCheckpoints) {
  TempDir dir;
  const crypto::SigningKey key = TestKey();
  const NoteVerifier trusted =
      MakeNoteVerifier(KeyName(key.verifying_key()), key.verifying_key()).value();
  std::mt19937 rng(20240601);
  int64_t max_acked_overall = 0;
  int iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int iter = 0; iter < kCrashIterations; ++iter) {
    if (std::chrono::steady_clock::now() - start > kTimeBudget) {
      break;  // a slow machine (sanitizers, loaded CI) still ends in time; the floor is below
    }
    ++iterations;
    const std::filesystem::path db =
        dir.path() / ("custos-" + std::to_string(iter / kIterationsPerLog) + ".db");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      AppendUntilKilled(db, fds[1]);
    }
    close(fds[1]);
    // Collect acks while the child runs so it never blocks on a full pipe.
    std::vector<int64_t> acked;
    std::thread reader([&] {
      int64_t seq;
      while (read(fds[0], &seq, sizeof seq) == static_cast<ssize_t>(sizeof seq)) {
        acked.push_back(seq);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (kMaxKillDelayMs + 1)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    reader.join();
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "child exited on its own with " << WEXITSTATUS(status) << " in iteration " << iter;

    auto store = store::OpenSqliteStore(db);
    ASSERT_THAT(store, IsOk()) << "iteration " << iter;
    {
      // Recovery, as the next kernel start does it: afterwards a checkpoint covers everything.
      auto writer =
          LogWriter::Open(store->get(), Durability::kGroup, &SystemClock(), Checkpoints(key));
      ASSERT_THAT(writer, IsOk()) << "iteration " << iter;
    }
    VerifyOptions opts;
    opts.merkle = true;
    opts.trusted = {trusted};
    VerifyReport r = VerifyStore(**store, opts);
    ASSERT_THAT(r.status, IsOk()) << "iteration " << iter;
    auto latest = (*store)->LatestCheckpoint();
    ASSERT_THAT(latest, IsOk());
    if (r.entries > 0) {
      ASSERT_TRUE(latest->has_value());
      EXPECT_EQ((*latest)->size, r.entries) << "iteration " << iter;
      EXPECT_GE(r.checkpoints, 1);
    }
    // The log is 1..entries without gaps (verified), so a seq is present iff <= entries.
    for (int64_t seq : acked) {
      ASSERT_LE(seq, r.entries) << "acknowledged seq " << seq << " lost in iteration " << iter;
    }
    for (int64_t seq : acked) {
      max_acked_overall = std::max(max_acked_overall, seq);
    }
  }
  // The children made progress: the test exercised real appends, not only startup.
  RecordProperty("max_acked_seq", static_cast<int>(max_acked_overall));
  RecordProperty("kills", iterations);
  EXPECT_GE(iterations, 100);
  EXPECT_GT(max_acked_overall, kIterationsPerLog);
}

}  // namespace
}  // namespace custos::audit
