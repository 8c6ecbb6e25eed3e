#pragma once
// FaultStore forwards to a real store and can be told to fail or slow down log calls, and counts
// the batches AppendLog receives, so tests can observe group commit and fail-closed behaviour.

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "custos/store/store.h"

namespace custos::audit::testing {

class FaultStore final : public store::Store {
 public:
  explicit FaultStore(store::Store* inner) : inner_(inner) {}

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

  Status AppendLog(const std::vector<store::LogRow>& rows, store::Sync sync) override {
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
    return inner_->AppendLog(rows, sync);
  }
  Status SyncLog() override {
    ++sync_log_calls_;
    if (fail_sync.load()) {
      return Status(Reason::kStoreError, "injected sync failure");
    }
    return inner_->SyncLog();
  }
  Result<std::vector<store::LogRow>> ReadLog(const store::LogQuery& q) override {
    if (fail_read.load()) {
      return Status(Reason::kStoreError, "injected read failure");
    }
    return inner_->ReadLog(q);
  }
  Result<std::optional<store::LogRow>> LastLog() override {
    if (fail_read.load()) {
      return Status(Reason::kStoreError, "injected read failure");
    }
    return inner_->LastLog();
  }
  Result<int64_t> LogCount() override { return inner_->LogCount(); }
  Result<std::string> ReadPayload(int64_t seq) override { return inner_->ReadPayload(seq); }
  Status PutHandle(const store::HandleRecord& h) override { return inner_->PutHandle(h); }
  Result<store::HandleRecord> GetHandle(const std::string& id) override {
    return inner_->GetHandle(id);
  }
  Result<store::HeapObject> HeapGet(const std::string& run, const std::string& id) override {
    return inner_->HeapGet(run, id);
  }
  Result<std::vector<store::HeapObject>> HeapApply(const std::string& run,
                                                   const std::vector<store::HeapOp>& ops,
                                                   int64_t now_ms) override {
    return inner_->HeapApply(run, ops, now_ms);
  }
  Result<std::vector<store::HeapObject>> HeapQuery(const std::string& run, const std::string& type,
                                                   int64_t limit) override {
    return inner_->HeapQuery(run, type, limit);
  }
  Status PutApproval(const store::Approval& a) override { return inner_->PutApproval(a); }
  Result<store::Approval> GetApproval(const std::string& id) override {
    return inner_->GetApproval(id);
  }
  Result<std::vector<store::Approval>> ListApprovals(const std::string& state) override {
    return inner_->ListApprovals(state);
  }
  Status AnswerApproval(const std::string& id, bool approve, const std::string& by,
                        const std::string& note, int64_t now_ms) override {
    return inner_->AnswerApproval(id, approve, by, note, now_ms);
  }
  Status SendMail(const store::MailMessage& m) override { return inner_->SendMail(m); }
  Result<std::optional<store::MailMessage>> RecvMail(const std::string& run,
                                                     const std::string& to_agent) override {
    return inner_->RecvMail(run, to_agent);
  }
  Status PutAgent(const store::AgentRecord& a) override { return inner_->PutAgent(a); }
  Result<std::optional<store::AgentRecord>> GetAgent(const std::string& run,
                                                     const std::string& name) override {
    return inner_->GetAgent(run, name);
  }
  Status PutMeta(const std::string& key, const std::string& value) override {
    return inner_->PutMeta(key, value);
  }
  Result<std::optional<std::string>> GetMeta(const std::string& key) override {
    return inner_->GetMeta(key);
  }
  Status RevokeToken(const std::string& id, const std::string& note, int64_t at_ms) override {
    return inner_->RevokeToken(id, note, at_ms);
  }
  Result<std::optional<std::string>> FirstRevoked(std::span<const std::string> ids) override {
    return inner_->FirstRevoked(ids);
  }
  Status CountTokenUse(const std::string& id, const store::TokenUseLimits& limits, int64_t now_ms,
                       bool dry_run) override {
    return inner_->CountTokenUse(id, limits, now_ms, dry_run);
  }

 private:
  store::Store* inner_;
  mutable std::mutex mu_;
  std::vector<size_t> batch_sizes_;
  std::vector<store::Sync> syncs_;
  std::atomic<int> sync_log_calls_{0};
};

}  // namespace custos::audit::testing
