#pragma once
// FaultStore forwards to a real store and can be told to fail or slow down log calls, and counts
// the batches AppendLog receives, so tests can observe group commit and fail-closed behaviour.

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "testing/forwarding_store.h"

namespace custos::audit::testing {

class FaultStore final : public custos::testing::ForwardingStore {
 public:
  explicit FaultStore(store::Store* inner) : ForwardingStore(inner) {}

  std::atomic<bool> fail_append{false};
  std::atomic<bool> fail_sync{false};
  std::atomic<bool> fail_read{false};
  std::atomic<int> append_delay_ms{0};

  std::vector<size_t> batch_sizes() const {
    std::lock_guard lock(mu_);
    return batch_sizes_;
  }
  std::vector<store::Sync> syncs() const {
    std::lock_guard lock(mu_);
    return syncs_;
  }
  int sync_log_calls() const { return sync_log_calls_.load(); }

  using store::Store::AppendLog;
  Status AppendLog(const std::vector<store::LogRow>& rows,
                   const std::vector<store::MerkleNode>& nodes, store::Sync sync) override {
    if (append_delay_ms.load() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(append_delay_ms.load()));
    }
    if (fail_append.load()) {
      return Status(Reason::kStoreError, "injected append failure");
    }
    {
      std::lock_guard lock(mu_);
      batch_sizes_.push_back(rows.size());
      syncs_.push_back(sync);
    }
    return ForwardingStore::AppendLog(rows, nodes, sync);
  }
  Status SyncLog() override {
    ++sync_log_calls_;
    if (fail_sync.load()) {
      return Status(Reason::kStoreError, "injected sync failure");
    }
    return ForwardingStore::SyncLog();
  }
  Result<std::vector<store::LogRow>> ReadLog(const store::LogQuery& q) override {
    if (fail_read.load()) {
      return Status(Reason::kStoreError, "injected read failure");
    }
    return ForwardingStore::ReadLog(q);
  }
  Result<std::optional<store::LogRow>> LastLog() override {
    if (fail_read.load()) {
      return Status(Reason::kStoreError, "injected read failure");
    }
    return ForwardingStore::LastLog();
  }

 private:
  mutable std::mutex mu_;
  std::vector<size_t> batch_sizes_;
  std::vector<store::Sync> syncs_;
  std::atomic<int> sync_log_calls_{0};
};

}  // namespace custos::audit::testing
