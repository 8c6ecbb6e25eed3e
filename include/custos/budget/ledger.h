#pragma once
// Ledger enforces budgets (INV-3): no account's committed + reserved use ever exceeds its limit,
// under any concurrency. A syscall reserves the most it could use *before* its effect, settles the
// actual use after, and the difference is refunded, atomically (one mutex per account; accounts
// are looked up in a sharded map). Reserve() that would exceed any resource fails with
// kBudgetExhausted naming the resource, the limit, the used and the reserved amounts.
//
// Children (agent.spawn) get an account carved out of the parent's: the carve is reserved from the
// parent for the child's lifetime, so parent + children together never exceed the parent's limit.
//
// Thread-safe.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "custos/core/result.h"

namespace custos::budget {

enum class Resource : uint8_t {
  kModelTokensIn = 0,
  kModelTokensOut,
  kToolCalls,
  kWallMs,
  kNetBytesOut,
  kSpendMicros,
};
inline constexpr int kResourceCount = 6;
// A limit that never binds (a resource the policy does not budget). Arithmetic never overflows:
// used + reserved <= limit holds for every account.
inline constexpr int64_t kUnlimited = INT64_MAX;
std::string_view ResourceName(Resource r);  // "model_tokens_in", ...

struct Amounts {
  std::array<int64_t, kResourceCount> v{};
  int64_t& operator[](Resource r) { return v[static_cast<int>(r)]; }
  int64_t operator[](Resource r) const { return v[static_cast<int>(r)]; }
  bool IsZero() const;
};

// Account key: one account per (agent, run).
struct AccountKey {
  std::string agent;
  std::string run;
  bool operator==(const AccountKey&) const = default;
};

struct AccountStatus {
  Amounts limit, used, reserved;
};

using ReservationId = uint64_t;

class Ledger {
 public:
  Ledger();
  ~Ledger();

  // Creates the account if missing with `limit`; returns OK if it exists (limit unchanged).
  Status Open(const AccountKey& key, const Amounts& limit);
  // Reserves `max` atomically against every resource. kNotFound if the account does not exist.
  // Negative amounts (here, in limits, carves and actuals) are kInvalidArgument.
  Result<ReservationId> Reserve(const AccountKey& key, const Amounts& max);
  // Settles `actual` (clamped to the reservation: an effect that used more than it reserved is
  // charged the reservation and the status says so with kBudgetExhausted) and refunds the rest.
  Status Settle(ReservationId id, const Amounts& actual);
  // Releases a reservation without charging (the effect did not run).
  Status Cancel(ReservationId id);
  // Carves `carve` out of parent for a new child account whose limit is `carve`. The carve stays
  // reserved on the parent until CloseChild. kBudgetExhausted if the parent cannot cover it,
  // kNotFound if the parent does not exist, kAlreadyExists if the child does.
  Status OpenChild(const AccountKey& parent, const AccountKey& child, const Amounts& carve);
  // Ends a child account: the parent is charged what the child used plus what the child still
  // has reserved (an open reservation may yet be spent), and the rest of the carve is refunded.
  // Later Reserve()s on the child fail with kNotFound; its open reservations may still be settled
  // or cancelled. kInvalidArgument if `child` was not made by OpenChild.
  Status CloseChild(const AccountKey& child);
  Result<AccountStatus> Get(const AccountKey& key) const;
  // Every account and its status, each read under its own lock (a consistent view per account,
  // not across accounts). For metrics; O(accounts).
  std::vector<std::pair<AccountKey, AccountStatus>> Accounts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::budget
