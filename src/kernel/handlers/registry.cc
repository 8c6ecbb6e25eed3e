#include <array>

#include "custos/core/json.h"
#include "kernel/handlers/handlers.h"

namespace custos::kernel {

Status EffectHandler::Resolve(SyscallContext& ctx, Services&) const {
  ctx.target = ctx.call.target;
  return Status::Ok();
}
void EffectHandler::Egress(const SyscallContext&, Services&, std::string*) const {}
bool EffectHandler::CarriesRawData(const SyscallContext&) const { return false; }
bool EffectHandler::ReadOnly(const SyscallContext&) const { return false; }
budget::Amounts EffectHandler::MaxCost(const SyscallContext&, Services&) const { return {}; }

Json TextFrame(std::string_view bytes, size_t max_bytes) {
  Json f = {{"size", bytes.size()}};
  std::string_view shown = bytes.substr(0, max_bytes);
  // A cut may split a UTF-8 sequence: drop up to three trailing bytes before calling it binary.
  for (int i = 0; i < 3 && shown.size() < bytes.size() && !IsValidUtf8(shown) && !shown.empty();
       ++i) {
    shown.remove_suffix(1);
  }
  if (IsValidUtf8(shown)) {
    f["text"] = std::string(shown);
    if (shown.size() < bytes.size())
      f["truncated"] = true;
  } else {
    f["binary"] = true;  // not text: read it with context.read or pass the handle on
  }
  return f;
}

namespace {

std::array<std::unique_ptr<EffectHandler>, kSyscallKindCount> BuildRegistry() {
  std::array<std::unique_ptr<EffectHandler>, kSyscallKindCount> r;
  auto set = [&](SyscallKind k, std::unique_ptr<EffectHandler> h) {
    r[static_cast<size_t>(k)] = std::move(h);
  };
  set(SyscallKind::kModelCall, MakeModelCallHandler());
  set(SyscallKind::kContextRead, MakeContextReadHandler());
  set(SyscallKind::kToolDescribe, MakeToolDescribeHandler());
  set(SyscallKind::kToolInvoke, MakeToolInvokeHandler());
  set(SyscallKind::kToolResponse, MakeToolResponseHandler());
  set(SyscallKind::kSecretOpen, MakeSecretOpenHandler());
  set(SyscallKind::kNetworkSend, MakeNetworkSendHandler());
  set(SyscallKind::kFileRead, MakeFileReadHandler());
  set(SyscallKind::kFileWrite, MakeFileWriteHandler());
  set(SyscallKind::kFilePatch, MakeFilePatchHandler());
  for (SyscallKind k :
       {SyscallKind::kMemoryAlloc, SyscallKind::kMemoryRead, SyscallKind::kMemoryWrite,
        SyscallKind::kMemoryDelete, SyscallKind::kMemoryQuery, SyscallKind::kMemoryBatch}) {
    set(k, MakeMemoryHandler(k));
  }
  set(SyscallKind::kHumanApprove, MakeHumanApproveHandler());
  set(SyscallKind::kAgentSpawn, MakeAgentSpawnHandler());
  set(SyscallKind::kAgentSend, MakeAgentSendHandler());
  set(SyscallKind::kAgentRecv, MakeAgentRecvHandler());
  set(SyscallKind::kAuditCommit, MakeAuditCommitHandler());
  set(SyscallKind::kAssert, MakeAssertHandler());
  for (const auto& h : r)
    CUSTOS_CHECK(h != nullptr);
  return r;
}

}  // namespace

const EffectHandler& HandlerFor(SyscallKind kind) {
  static const auto registry = BuildRegistry();
  return *registry[static_cast<size_t>(kind)];
}

}  // namespace custos::kernel
