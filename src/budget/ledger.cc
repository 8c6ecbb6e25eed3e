#include "custos/budget/ledger.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace custos::budget {
namespace {

// Shard counts are powers of two so a hash picks a shard with a mask. 64 account shards keep
// lookups of distinct agents from contending; reservation shards are picked by id, which is
// sequential, so consecutive reservations land on different shards.
constexpr size_t kAccountShards = 64;
constexpr size_t kReservationShards = 64;

constexpr std::string_view kResourceNames[kResourceCount] = {
    "model_tokens_in", "model_tokens_out", "tool_calls", "wall_ms", "net_bytes_out", "spend_micros",
};

struct AccountKeyHash {
  size_t operator()(const AccountKey& k) const {
    size_t h = std::hash<std::string_view>()(k.agent);
    // Combine so that ("ab","c") and ("a","bc") differ.
    return h ^ (std::hash<std::string_view>()(k.run) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};

std::string AccountName(const AccountKey& k) { return k.agent + "/" + k.run; }

// Returns the first resource whose amount is negative, if any.
const char* FirstNegative(const Amounts& a) {
  for (int i = 0; i < kResourceCount; ++i) {
    if (a.v[i] < 0) {
      return kResourceNames[i].data();
    }
  }
  return nullptr;
}

}  // namespace

std::string_view ResourceName(Resource r) {
  int i = static_cast<int>(r);
  if (i < 0 || i >= kResourceCount) {
    return "unknown";
  }
  return kResourceNames[i];
}

bool Amounts::IsZero() const {
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x == 0; });
}

struct Ledger::Impl {
  // One budget account. Accounts are never freed while the ledger lives, so reservations hold raw
  // pointers to them.
  struct Account {
    explicit Account(AccountKey k) : key(std::move(k)) {}
    const AccountKey key;
    std::mutex mu;
    Amounts limit;        // guarded by mu
    Amounts used;         // guarded by mu
    Amounts reserved;     // guarded by mu; includes carves held for open children
    bool closed = false;  // guarded by mu; a closed child takes no new reservations
    // For a child: its parent and the carve held there. Immutable after creation.
    Account* parent = nullptr;
    Amounts carve;
  };

  struct AccountShard {
    mutable std::shared_mutex mu;
    std::unordered_map<AccountKey, std::unique_ptr<Account>, AccountKeyHash> accounts;
  };

  struct Reservation {
    Account* account;
    Amounts max;
  };

  struct ReservationShard {
    std::mutex mu;
    std::unordered_map<ReservationId, Reservation> reservations;
  };

  AccountShard& ShardFor(const AccountKey& key) {
    return account_shards[AccountKeyHash()(key) & (kAccountShards - 1)];
  }
  const AccountShard& ShardFor(const AccountKey& key) const {
    return account_shards[AccountKeyHash()(key) & (kAccountShards - 1)];
  }

  Account* Find(const AccountKey& key) const {
    const AccountShard& shard = ShardFor(key);
    std::shared_lock lock(shard.mu);
    auto it = shard.accounts.find(key);
    return it == shard.accounts.end() ? nullptr : it->second.get();
  }

  // Inserts a new account; returns nullptr if the key already exists.
  Account* Insert(const AccountKey& key, const Amounts& limit, Account* parent,
                  const Amounts& carve) {
    AccountShard& shard = ShardFor(key);
    std::unique_lock lock(shard.mu);
    auto [it, inserted] = shard.accounts.try_emplace(key, nullptr);
    if (!inserted) {
      return nullptr;
    }
    it->second = std::make_unique<Account>(key);
    Account* a = it->second.get();
    a->limit = limit;
    a->parent = parent;
    a->carve = carve;
    return a;
  }

  // The status for a request of `want` that does not fit account `a`.
  // REQUIRES: a->mu held.
  static Status Exhausted(const Account& a, int i, const Amounts& want, std::string_view what) {
    return Status(Reason::kBudgetExhausted, std::string(what) + " " + std::to_string(want.v[i]) +
                                                " " + std::string(kResourceNames[i]) +
                                                " exceeds the budget of " + AccountName(a.key) +
                                                ": limit " + std::to_string(a.limit.v[i]) +
                                                ", used " + std::to_string(a.used.v[i]) +
                                                ", reserved " + std::to_string(a.reserved.v[i]));
  }

  // Reserves `want` on `a` for every resource or for none.
  // REQUIRES: a->mu held.
  static Status ReserveLocked(Account& a, const Amounts& want, std::string_view what) {
    for (int i = 0; i < kResourceCount; ++i) {
      // used + reserved <= limit always holds, so the subtraction cannot overflow.
      if (want.v[i] > a.limit.v[i] - a.used.v[i] - a.reserved.v[i]) {
        return Exhausted(a, i, want, what);
      }
    }
    for (int i = 0; i < kResourceCount; ++i) {
      a.reserved.v[i] += want.v[i];
    }
    return Status::Ok();
  }

  ReservationShard& ReservationShardFor(ReservationId id) {
    return reservation_shards[id & (kReservationShards - 1)];
  }

  // Removes and returns a reservation, so exactly one Settle/Cancel consumes it.
  std::optional<Reservation> Take(ReservationId id) {
    ReservationShard& shard = ReservationShardFor(id);
    std::lock_guard lock(shard.mu);
    auto it = shard.reservations.find(id);
    if (it == shard.reservations.end()) {
      return std::nullopt;
    }
    Reservation r = it->second;
    shard.reservations.erase(it);
    return r;
  }

  AccountShard account_shards[kAccountShards];
  ReservationShard reservation_shards[kReservationShards];
  std::atomic<ReservationId> next_id{1};
};

Ledger::Ledger() : impl_(std::make_unique<Impl>()) {}
Ledger::~Ledger() = default;

Status Ledger::Open(const AccountKey& key, const Amounts& limit) {
  if (const char* r = FirstNegative(limit)) {
    return Status(Reason::kInvalidArgument,
                  std::string("negative ") + r + " limit for account " + AccountName(key));
  }
  if (impl_->Find(key) != nullptr) {
    return Status::Ok();
  }
  // A concurrent Open may have won the race; either way the account now exists.
  impl_->Insert(key, limit, nullptr, Amounts{});
  return Status::Ok();
}

Result<ReservationId> Ledger::Reserve(const AccountKey& key, const Amounts& max) {
  if (const char* r = FirstNegative(max)) {
    return Status(Reason::kInvalidArgument, std::string("negative ") + r + " reservation");
  }
  Impl::Account* a = impl_->Find(key);
  if (a == nullptr) {
    return Status(Reason::kNotFound, "no budget account " + AccountName(key));
  }
  {
    std::lock_guard lock(a->mu);
    if (a->closed) {
      return Status(Reason::kNotFound, "budget account " + AccountName(key) + " is closed");
    }
    CUSTOS_RETURN_IF_ERROR(Impl::ReserveLocked(*a, max, "reserving"));
  }
  ReservationId id = impl_->next_id.fetch_add(1, std::memory_order_relaxed);
  Impl::ReservationShard& shard = impl_->ReservationShardFor(id);
  std::lock_guard lock(shard.mu);
  shard.reservations.emplace(id, Impl::Reservation{a, max});
  return id;
}

Status Ledger::Settle(ReservationId id, const Amounts& actual) {
  if (const char* r = FirstNegative(actual)) {
    return Status(Reason::kInvalidArgument,
                  std::string("negative actual ") + r + " for reservation " + std::to_string(id));
  }
  std::optional<Impl::Reservation> res = impl_->Take(id);
  if (!res) {
    return Status(Reason::kNotFound, "no open reservation " + std::to_string(id));
  }
  Impl::Account& a = *res->account;
  std::string over;  // resources used beyond the reservation
  std::lock_guard lock(a.mu);
  for (int i = 0; i < kResourceCount; ++i) {
    int64_t charged = std::min(actual.v[i], res->max.v[i]);
    if (actual.v[i] > res->max.v[i]) {
      over += (over.empty() ? "" : ", ") + std::string(kResourceNames[i]) + " used " +
              std::to_string(actual.v[i]) + " of " + std::to_string(res->max.v[i]) + " reserved";
    }
    a.reserved.v[i] -= res->max.v[i];
    a.used.v[i] += charged;
  }
  if (!over.empty()) {
    return Status(Reason::kBudgetExhausted, "effect exceeded its reservation on " +
                                                AccountName(a.key) + " (" + over +
                                                "); charged the reservation");
  }
  return Status::Ok();
}

Status Ledger::Cancel(ReservationId id) {
  std::optional<Impl::Reservation> res = impl_->Take(id);
  if (!res) {
    return Status(Reason::kNotFound, "no open reservation " + std::to_string(id));
  }
  Impl::Account& a = *res->account;
  std::lock_guard lock(a.mu);
  for (int i = 0; i < kResourceCount; ++i) {
    a.reserved.v[i] -= res->max.v[i];
  }
  return Status::Ok();
}

Status Ledger::OpenChild(const AccountKey& parent, const AccountKey& child, const Amounts& carve) {
  if (const char* r = FirstNegative(carve)) {
    return Status(Reason::kInvalidArgument,
                  std::string("negative ") + r + " carve for child " + AccountName(child));
  }
  if (parent == child) {
    return Status(Reason::kInvalidArgument,
                  "account " + AccountName(child) + " cannot be its own child");
  }
  Impl::Account* p = impl_->Find(parent);
  if (p == nullptr) {
    return Status(Reason::kNotFound, "no budget account " + AccountName(parent));
  }
  if (impl_->Find(child) != nullptr) {
    return Status(Reason::kAlreadyExists, "budget account " + AccountName(child) + " exists");
  }
  {
    std::lock_guard lock(p->mu);
    if (p->closed) {
      return Status(Reason::kNotFound, "budget account " + AccountName(parent) + " is closed");
    }
    CUSTOS_RETURN_IF_ERROR(Impl::ReserveLocked(*p, carve, "carving"));
  }
  if (impl_->Insert(child, carve, p, carve) == nullptr) {
    // Lost a race with another OpenChild of the same key: give the carve back.
    std::lock_guard lock(p->mu);
    for (int i = 0; i < kResourceCount; ++i) {
      p->reserved.v[i] -= carve.v[i];
    }
    return Status(Reason::kAlreadyExists, "budget account " + AccountName(child) + " exists");
  }
  return Status::Ok();
}

Status Ledger::CloseChild(const AccountKey& child) {
  Impl::Account* c = impl_->Find(child);
  if (c == nullptr) {
    return Status(Reason::kNotFound, "no budget account " + AccountName(child));
  }
  if (c->parent == nullptr) {
    return Status(Reason::kInvalidArgument,
                  "budget account " + AccountName(child) + " is not a child account");
  }
  // The only place two accounts are locked at once; scoped_lock avoids lock-order deadlock.
  Impl::Account& p = *c->parent;
  std::scoped_lock lock(p.mu, c->mu);
  if (c->closed) {
    return Status(Reason::kNotFound, "budget account " + AccountName(child) + " is closed");
  }
  c->closed = true;
  for (int i = 0; i < kResourceCount; ++i) {
    // Reservations still open on the child may yet be spent: charge them in full.
    int64_t charge = std::min(c->used.v[i] + c->reserved.v[i], c->carve.v[i]);
    p.reserved.v[i] -= c->carve.v[i];
    p.used.v[i] += charge;
  }
  return Status::Ok();
}

std::vector<std::pair<AccountKey, AccountStatus>> Ledger::Accounts() const {
  std::vector<std::pair<AccountKey, AccountStatus>> out;
  for (const Impl::AccountShard& shard : impl_->account_shards) {
    std::shared_lock lock(shard.mu);
    for (const auto& [key, a] : shard.accounts) {
      std::lock_guard account_lock(a->mu);
      out.emplace_back(key, AccountStatus{a->limit, a->used, a->reserved});
    }
  }
  return out;
}

Result<AccountStatus> Ledger::Get(const AccountKey& key) const {
  Impl::Account* a = impl_->Find(key);
  if (a == nullptr) {
    return Status(Reason::kNotFound, "no budget account " + AccountName(key));
  }
  std::lock_guard lock(a->mu);
  return AccountStatus{a->limit, a->used, a->reserved};
}

}  // namespace custos::budget
