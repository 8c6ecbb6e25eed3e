#include "custos/budget/ledger.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "testing/matchers.h"

namespace custos::budget {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

Amounts Make(std::initializer_list<std::pair<Resource, int64_t>> items) {
  Amounts a;
  for (auto [r, v] : items) {
    a[r] = v;
  }
  return a;
}

const AccountKey kAlice{"alice", "run-1"};
const AccountKey kBob{"bob", "run-1"};

TEST(ResourceNameTest, NamesAreSnakeCaseWireNames) {
  EXPECT_EQ(ResourceName(Resource::kModelTokensIn), "model_tokens_in");
  EXPECT_EQ(ResourceName(Resource::kModelTokensOut), "model_tokens_out");
  EXPECT_EQ(ResourceName(Resource::kToolCalls), "tool_calls");
  EXPECT_EQ(ResourceName(Resource::kWallMs), "wall_ms");
  EXPECT_EQ(ResourceName(Resource::kNetBytesOut), "net_bytes_out");
  EXPECT_EQ(ResourceName(Resource::kSpendMicros), "spend_micros");
}

TEST(AmountsTest, IsZeroOnlyWhenEveryResourceIsZero) {
  EXPECT_TRUE(Amounts{}.IsZero());
  EXPECT_FALSE(Make({{Resource::kSpendMicros, 1}}).IsZero());
}

TEST(LedgerTest, OpenTwiceKeepsTheFirstLimit) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 5}})), IsOk());
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 99}})), IsOk());
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->limit[Resource::kToolCalls], 5);
}

TEST(LedgerTest, AccountsAreKeyedByAgentAndRun) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 1}})), IsOk());
  EXPECT_THAT(ledger.Get(AccountKey{"alice", "run-2"}), StatusIs(Reason::kNotFound));
  EXPECT_THAT(ledger.Get(kBob), StatusIs(Reason::kNotFound));
}

TEST(LedgerTest, ReserveOnMissingAccountIsNotFound) {
  Ledger ledger;
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}})),
              StatusIs(Reason::kNotFound));
}

TEST(LedgerTest, ReserveWithinLimitHoldsTheAmount) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 5}})), IsOk());
  auto id = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 3}}));
  ASSERT_THAT(id, IsOk());
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->reserved[Resource::kToolCalls], 3);
  EXPECT_EQ(st->used[Resource::kToolCalls], 0);
}

TEST(LedgerTest, ReserveBeyondLimitIsBudgetExhaustedNamingResourceAndAmounts) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 5}})), IsOk());
  auto first = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 2}}));
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(ledger.Settle(*first, Make({{Resource::kToolCalls, 1}})), IsOk());
  ASSERT_THAT(ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 2}})), IsOk());
  auto r = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 3}}));
  EXPECT_THAT(r, StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr("tool_calls"), HasSubstr("limit 5"), HasSubstr("used 1"),
                    HasSubstr("reserved 2"), HasSubstr("alice/run-1")));
}

TEST(LedgerTest, ReserveIsAllOrNothingAcrossResources) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 5}, {Resource::kNetBytesOut, 100}})),
              IsOk());
  auto r = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}, {Resource::kNetBytesOut, 101}}));
  EXPECT_THAT(r, StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("net_bytes_out"));
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_TRUE(st->reserved.IsZero());
}

TEST(LedgerTest, ZeroLimitRefusesAnyPositiveAmount) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Amounts{}), IsOk());
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kWallMs, 1}})),
              StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(ledger.Reserve(kAlice, Amounts{}), IsOk());
}

TEST(LedgerTest, UnlimitedLimitAcceptsHugeReservationsWithoutOverflow) {
  Ledger ledger;
  Amounts unlimited;
  unlimited.v.fill(kUnlimited);
  ASSERT_THAT(ledger.Open(kAlice, unlimited), IsOk());
  Amounts huge;
  huge.v.fill(kUnlimited / 2);
  auto a = ledger.Reserve(kAlice, huge);
  ASSERT_THAT(a, IsOk());
  auto b = ledger.Reserve(kAlice, huge);
  ASSERT_THAT(b, IsOk());
  // 2 * (max/2) + 2 > max: the third must be refused, not wrap around.
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kSpendMicros, 2}})),
              StatusIs(Reason::kBudgetExhausted));
}

TEST(LedgerTest, SettleChargesActualAndRefundsTheRest) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kModelTokensOut, 1000}})), IsOk());
  auto id = ledger.Reserve(kAlice, Make({{Resource::kModelTokensOut, 800}}));
  ASSERT_THAT(id, IsOk());
  ASSERT_THAT(ledger.Settle(*id, Make({{Resource::kModelTokensOut, 300}})), IsOk());
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->used[Resource::kModelTokensOut], 300);
  EXPECT_EQ(st->reserved[Resource::kModelTokensOut], 0);
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kModelTokensOut, 700}})), IsOk());
}

TEST(LedgerTest, SettleBeyondReservationChargesOnlyTheReservationAndSaysSo) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kNetBytesOut, 1000}})), IsOk());
  auto id = ledger.Reserve(kAlice, Make({{Resource::kNetBytesOut, 100}}));
  ASSERT_THAT(id, IsOk());
  Status s = ledger.Settle(*id, Make({{Resource::kNetBytesOut, 5000}}));
  EXPECT_THAT(s, StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("net_bytes_out used 5000 of 100 reserved"),
                                              HasSubstr("charged the reservation")));
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->used[Resource::kNetBytesOut], 100);
  EXPECT_EQ(st->reserved[Resource::kNetBytesOut], 0);
}

TEST(LedgerTest, ReservationIsConsumedByExactlyOneSettleOrCancel) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 5}})), IsOk());
  auto id = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}}));
  ASSERT_THAT(id, IsOk());
  ASSERT_THAT(ledger.Settle(*id, Make({{Resource::kToolCalls, 1}})), IsOk());
  EXPECT_THAT(ledger.Settle(*id, Make({{Resource::kToolCalls, 1}})), StatusIs(Reason::kNotFound));
  EXPECT_THAT(ledger.Cancel(*id), StatusIs(Reason::kNotFound));
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->used[Resource::kToolCalls], 1);
}

TEST(LedgerTest, CancelReleasesWithoutCharging) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 1}})), IsOk());
  auto id = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}}));
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}})),
              StatusIs(Reason::kBudgetExhausted));
  ASSERT_THAT(ledger.Cancel(*id), IsOk());
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_TRUE(st->used.IsZero());
  EXPECT_TRUE(st->reserved.IsZero());
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}})), IsOk());
}

TEST(LedgerTest, UnknownReservationIsNotFound) {
  Ledger ledger;
  EXPECT_THAT(ledger.Settle(12345, Amounts{}), StatusIs(Reason::kNotFound));
  EXPECT_THAT(ledger.Cancel(12345), StatusIs(Reason::kNotFound));
}

TEST(LedgerTest, NegativeAmountsAreInvalidArgument) {
  Ledger ledger;
  EXPECT_THAT(ledger.Open(kAlice, Make({{Resource::kWallMs, -1}})),
              StatusIs(Reason::kInvalidArgument));
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kWallMs, 10}})), IsOk());
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kWallMs, -5}})),
              StatusIs(Reason::kInvalidArgument));
  auto id = ledger.Reserve(kAlice, Make({{Resource::kWallMs, 5}}));
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(ledger.Settle(*id, Make({{Resource::kWallMs, -1}})),
              StatusIs(Reason::kInvalidArgument));
  // A rejected Settle leaves the reservation open.
  EXPECT_THAT(ledger.Settle(*id, Make({{Resource::kWallMs, 5}})), IsOk());
  EXPECT_THAT(ledger.OpenChild(kAlice, kBob, Make({{Resource::kWallMs, -1}})),
              StatusIs(Reason::kInvalidArgument));
}

TEST(LedgerTest, OpenChildCarvesTheChildLimitOutOfTheParent) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 10}})), IsOk());
  ASSERT_THAT(ledger.OpenChild(kAlice, kBob, Make({{Resource::kToolCalls, 4}})), IsOk());
  auto parent = ledger.Get(kAlice);
  ASSERT_THAT(parent, IsOk());
  EXPECT_EQ(parent->reserved[Resource::kToolCalls], 4);
  auto child = ledger.Get(kBob);
  ASSERT_THAT(child, IsOk());
  EXPECT_EQ(child->limit[Resource::kToolCalls], 4);
  // The parent has 6 left, the child 4: 11 in total cannot be reserved.
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 7}})),
              StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 6}})), IsOk());
  EXPECT_THAT(ledger.Reserve(kBob, Make({{Resource::kToolCalls, 5}})),
              StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(ledger.Reserve(kBob, Make({{Resource::kToolCalls, 4}})), IsOk());
}

TEST(LedgerTest, CarveBeyondWhatTheParentHasLeftIsBudgetExhausted) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kSpendMicros, 100}})), IsOk());
  auto id = ledger.Reserve(kAlice, Make({{Resource::kSpendMicros, 60}}));
  ASSERT_THAT(id, IsOk());
  Status s = ledger.OpenChild(kAlice, kBob, Make({{Resource::kSpendMicros, 41}}));
  EXPECT_THAT(s, StatusIs(Reason::kBudgetExhausted));
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("carving 41 spend_micros"),
                                              HasSubstr("limit 100"), HasSubstr("reserved 60")));
  EXPECT_THAT(ledger.Get(kBob), StatusIs(Reason::kNotFound));
  EXPECT_THAT(ledger.OpenChild(kAlice, kBob, Make({{Resource::kSpendMicros, 40}})), IsOk());
}

TEST(LedgerTest, OpenChildOfMissingParentIsNotFoundAndDuplicateChildIsAlreadyExists) {
  Ledger ledger;
  EXPECT_THAT(ledger.OpenChild(kAlice, kBob, Amounts{}), StatusIs(Reason::kNotFound));
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 10}})), IsOk());
  ASSERT_THAT(ledger.OpenChild(kAlice, kBob, Make({{Resource::kToolCalls, 2}})), IsOk());
  EXPECT_THAT(ledger.OpenChild(kAlice, kBob, Make({{Resource::kToolCalls, 2}})),
              StatusIs(Reason::kAlreadyExists));
  EXPECT_THAT(ledger.OpenChild(kAlice, kAlice, Make({{Resource::kToolCalls, 2}})),
              StatusIs(Reason::kInvalidArgument));
  auto parent = ledger.Get(kAlice);
  ASSERT_THAT(parent, IsOk());
  EXPECT_EQ(parent->reserved[Resource::kToolCalls], 2);
}

TEST(LedgerTest, CloseChildChargesUsedPlusOpenReservationsAndRefundsTheRest) {
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, 10}})), IsOk());
  ASSERT_THAT(ledger.OpenChild(kAlice, kBob, Make({{Resource::kToolCalls, 6}})), IsOk());
  auto settled = ledger.Reserve(kBob, Make({{Resource::kToolCalls, 2}}));
  ASSERT_THAT(settled, IsOk());
  ASSERT_THAT(ledger.Settle(*settled, Make({{Resource::kToolCalls, 2}})), IsOk());
  auto open = ledger.Reserve(kBob, Make({{Resource::kToolCalls, 1}}));
  ASSERT_THAT(open, IsOk());

  ASSERT_THAT(ledger.CloseChild(kBob), IsOk());
  auto parent = ledger.Get(kAlice);
  ASSERT_THAT(parent, IsOk());
  EXPECT_EQ(parent->used[Resource::kToolCalls], 3);
  EXPECT_EQ(parent->reserved[Resource::kToolCalls], 0);
  EXPECT_THAT(ledger.Reserve(kBob, Make({{Resource::kToolCalls, 1}})), StatusIs(Reason::kNotFound));
  EXPECT_THAT(ledger.Settle(*open, Make({{Resource::kToolCalls, 1}})), IsOk());
  EXPECT_THAT(ledger.CloseChild(kBob), StatusIs(Reason::kNotFound));
  EXPECT_THAT(ledger.CloseChild(kAlice), StatusIs(Reason::kInvalidArgument));
}

// INV-3 under contention: kToolCalls (never charged) acts as a concurrency limit of 8 in-flight
// reservations; kModelTokensIn accumulates until exhausted. No moment may see more than the
// limit reserved or used, and every settled amount must be accounted exactly.
TEST(LedgerTest, ConcurrentReserveSettleNeverExceedsLimitAndAccountsEveryCharge) {
  constexpr int kThreads = 64;
  constexpr int kCycles = 3000;
  constexpr int64_t kInFlight = 8;
  constexpr int64_t kTokens = 200'000;
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, kInFlight},
                                        {Resource::kModelTokensIn, kTokens}})),
              IsOk());
  std::atomic<int64_t> in_flight{0}, max_in_flight{0}, charged{0}, granted{0}, refused{0};
  std::atomic<bool> violated{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kCycles; ++i) {
        int64_t max = 1 + static_cast<int64_t>(rng() % 10);
        auto id = ledger.Reserve(
            kAlice, Make({{Resource::kToolCalls, 1}, {Resource::kModelTokensIn, max}}));
        if (!id.ok()) {
          if (id.status().reason() != Reason::kBudgetExhausted) {
            violated = true;
          }
          refused.fetch_add(1);
          continue;
        }
        granted.fetch_add(1);
        int64_t now = in_flight.fetch_add(1) + 1;
        int64_t seen = max_in_flight.load();
        while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
        }
        auto st = ledger.Get(kAlice);
        if (!st.ok() ||
            st->used[Resource::kModelTokensIn] + st->reserved[Resource::kModelTokensIn] > kTokens ||
            st->reserved[Resource::kToolCalls] > kInFlight) {
          violated = true;
        }
        in_flight.fetch_sub(1);
        if (rng() % 5 == 0) {
          if (!ledger.Cancel(*id).ok()) {
            violated = true;
          }
          continue;
        }
        int64_t actual = static_cast<int64_t>(rng() % (max + 1));
        if (!ledger.Settle(*id, Make({{Resource::kModelTokensIn, actual}})).ok()) {
          violated = true;
        }
        charged.fetch_add(actual);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_FALSE(violated.load());
  EXPECT_LE(max_in_flight.load(), kInFlight);
  EXPECT_EQ(granted.load() + refused.load(), int64_t{kThreads} * kCycles);
  EXPECT_GT(granted.load(), 0);
  EXPECT_GT(refused.load(), 0);
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->used[Resource::kModelTokensIn], charged.load());
  EXPECT_LE(st->used[Resource::kModelTokensIn], kTokens);
  EXPECT_EQ(st->used[Resource::kToolCalls], 0);
  EXPECT_TRUE(st->reserved.IsZero());
}

// A small cumulative limit under 64 racing threads: exactly `limit` reservations are granted and
// charged, never one more.
TEST(LedgerTest, ConcurrentCallsAgainstASmallLimitGrantExactlyTheLimit) {
  constexpr int kThreads = 64;
  constexpr int kAttempts = 500;
  constexpr int64_t kLimit = 100;
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kToolCalls, kLimit}})), IsOk());
  std::atomic<int64_t> granted{0};
  std::atomic<bool> unexpected{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAttempts; ++i) {
        auto id = ledger.Reserve(kAlice, Make({{Resource::kToolCalls, 1}}));
        if (!id.ok()) {
          unexpected = unexpected || id.status().reason() != Reason::kBudgetExhausted;
          continue;
        }
        granted.fetch_add(1);
        unexpected = unexpected || !ledger.Settle(*id, Make({{Resource::kToolCalls, 1}})).ok();
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_FALSE(unexpected.load());
  EXPECT_EQ(granted.load(), kLimit);
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->used[Resource::kToolCalls], kLimit);
  EXPECT_EQ(st->reserved[Resource::kToolCalls], 0);
}

TEST(LedgerTest, ConcurrentCarvesNeverExceedTheParentLimit) {
  constexpr int kThreads = 64;
  constexpr int64_t kParentLimit = 100;
  Ledger ledger;
  ASSERT_THAT(ledger.Open(kAlice, Make({{Resource::kWallMs, kParentLimit}})), IsOk());
  std::atomic<int64_t> carved{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        AccountKey child{"child-" + std::to_string(t) + "-" + std::to_string(i), "run-1"};
        Status s = ledger.OpenChild(kAlice, child, Make({{Resource::kWallMs, 3}}));
        if (s.ok()) {
          carved.fetch_add(3);
          // The child spends its whole carve; nothing is left for the parent.
          auto id = ledger.Reserve(child, Make({{Resource::kWallMs, 3}}));
          if (id.ok()) {
            ledger.Settle(*id, Make({{Resource::kWallMs, 3}})).IgnoreError();
          }
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_LE(carved.load(), kParentLimit);
  EXPECT_EQ(carved.load(), 99);  // 33 carves of 3 fit in 100
  auto st = ledger.Get(kAlice);
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(st->reserved[Resource::kWallMs], 99);
  EXPECT_THAT(ledger.Reserve(kAlice, Make({{Resource::kWallMs, 2}})),
              StatusIs(Reason::kBudgetExhausted));
}

}  // namespace
}  // namespace custos::budget
