#pragma once
// ForwardingStore passes every Store call to an inner store. Test doubles that inject faults derive
// from it and override only the calls they break, so a new Store method is forwarded in one place.

#include "custos/store/store.h"

namespace custos::testing {

class ForwardingStore : public store::Store {
 public:
  explicit ForwardingStore(store::Store* inner) : inner_(inner) {}

  using store::Store::AppendLog;
  Status AppendLog(const std::vector<store::LogRow>& rows,
                   const std::vector<store::MerkleNode>& nodes, store::Sync sync) override {
    return inner_->AppendLog(rows, nodes, sync);
  }
  Status SyncLog() override { return inner_->SyncLog(); }
  Result<std::vector<store::LogRow>> ReadLog(const store::LogQuery& q) override {
    return inner_->ReadLog(q);
  }
  Result<std::optional<store::LogRow>> LastLog() override { return inner_->LastLog(); }
  Result<int64_t> LogCount() override { return inner_->LogCount(); }
  Result<std::string> ReadPayload(int64_t seq) override { return inner_->ReadPayload(seq); }
  Result<std::string> ReadMerkleNode(int level, uint64_t index) override {
    return inner_->ReadMerkleNode(level, index);
  }
  Result<std::vector<std::string>> ReadMerkleNodes(int level, uint64_t index,
                                                   int64_t limit) override {
    return inner_->ReadMerkleNodes(level, index, limit);
  }
  Result<int64_t> MerkleLeafCount() override { return inner_->MerkleLeafCount(); }
  Status PutCheckpoint(int64_t size, const std::string& note, int64_t time_ms) override {
    return inner_->PutCheckpoint(size, note, time_ms);
  }
  Result<std::vector<store::CheckpointRow>> ReadCheckpoints(int64_t from_id,
                                                            int64_t limit) override {
    return inner_->ReadCheckpoints(from_id, limit);
  }
  Result<std::optional<store::CheckpointRow>> LatestCheckpoint() override {
    return inner_->LatestCheckpoint();
  }
  Status PutHandle(const store::HandleRecord& h, store::Sync sync) override {
    return inner_->PutHandle(h, sync);
  }
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
};

}  // namespace custos::testing
