// One Kernel shared by many threads (TSan runs this binary in `make test-sanitize`): mixed memory,
// file and context syscalls, then the flight log must verify and account for every call.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "custos/audit/verifier.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::CallJson;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::custos::testing::WriteFileOrDie;

constexpr int kThreads = 8;
constexpr int kRounds = 12;  // each round is 6 syscalls

TEST(KernelConcurrencyTest, MixedSyscallsFromManyThreadsLeaveAVerifiableLog) {
  KernelHarness h;
  for (int t = 0; t < kThreads; ++t) {
    WriteFileOrDie(h.ws() / ("file-" + std::to_string(t) + ".txt"),
                   "contents of file " + std::to_string(t));
  }
  ASSERT_TRUE(h.Open(h.Spec()));
  ASSERT_TRUE(
      h.Worker("memory.alloc", "counter", {{"id", "counter"}, {"value", 0}}).decision.allowed());

  std::atomic<int> calls{0}, allowed{0}, counter_writes{0}, unexpected{0};
  std::vector<std::string> failures[kThreads];
  auto run = [&](int t) {
    auto check = [&](const SyscallResult& r, std::initializer_list<Reason> ok_denials) {
      calls.fetch_add(1);
      if (r.decision.allowed()) {
        allowed.fetch_add(1);
        if (r.receipt.outcome_seq <= r.receipt.decision_seq) {
          unexpected.fetch_add(1);
          failures[t].push_back("outcome not after decision: " + r.ToJson().dump());
        }
        return true;
      }
      for (Reason reason : ok_denials) {
        if (r.decision.reason == reason)
          return false;
      }
      unexpected.fetch_add(1);
      failures[t].push_back(r.ToJson().dump());
      return false;
    };
    const std::string file = (h.ws() / ("file-" + std::to_string(t) + ".txt")).string();
    for (int i = 0; i < kRounds; ++i) {
      const std::string id = "obj-" + std::to_string(t) + "-" + std::to_string(i);
      check(h.Exec(CallJson("worker", "memory.alloc", "item", {{"id", id}, {"value", i}})), {});
      check(h.Exec(CallJson("worker", "memory.read", id)), {});
      SyscallResult read = h.Exec(CallJson("worker", "file.read", file));
      if (check(read, {})) {
        SyscallResult ctx = h.Exec(CallJson("worker", "context.read", read.handle->id));
        if (check(ctx, {}) && ctx.frame["text"] != "contents of file " + std::to_string(t)) {
          unexpected.fetch_add(1);
          failures[t].push_back("context.read returned another thread's data");
        }
      }
      // Unconditional writes retry on conflict; under contention they may still give up.
      if (check(h.Exec(CallJson("worker", "memory.write", "counter", {{"value", t * 1000 + i}})),
                {Reason::kVersionConflict})) {
        counter_writes.fetch_add(1);
      }
      check(h.Exec(CallJson("worker", "memory.query", "item", {{"limit", 5}})), {});
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back(run, t);
  for (std::thread& th : threads)
    th.join();

  for (int t = 0; t < kThreads; ++t) {
    for (const std::string& f : failures[t])
      ADD_FAILURE() << "thread " << t << ": " << f;
  }
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(calls.load(), kThreads * kRounds * 6);
  EXPECT_GT(counter_writes.load(), 0);

  // Every object each thread allocated is there, and the counter's version counts its writes.
  SyscallResult all = h.Worker("memory.query", "item", {{"limit", 1000}});
  ASSERT_TRUE(all.decision.allowed());
  EXPECT_EQ(all.frame["objects"].size(), static_cast<size_t>(kThreads * kRounds));
  EXPECT_EQ(h.Worker("memory.read", "counter").frame["version"], 1 + counter_writes.load());

  // The log verifies, and holds one decision per call and one outcome per allowed call.
  ASSERT_TRUE(h.kernel().Commit().ok());
  audit::VerifyReport report = audit::VerifyStore(h.kernel().store());
  EXPECT_THAT(report.status, IsOk());
  std::map<std::string, int> by_type;
  for (const audit::LogEntry& e : h.Log())
    by_type[e.type]++;
  // + the counter alloc, the final query and read (three decisions and three outcomes).
  EXPECT_EQ(by_type["decision"], calls.load() + 3);
  EXPECT_EQ(by_type["outcome"], allowed.load() + 3);
}

}  // namespace
}  // namespace custos::kernel
