#pragma once
// Factory functions for the effect handlers, one file per family. registry.cc maps kinds to them.

#include <memory>

#include "kernel/effect_handler.h"

namespace custos::kernel {

// Frames shown to the caller are bounded; the full value stays behind its handle.
Json TextFrame(std::string_view bytes, size_t max_bytes);

std::unique_ptr<EffectHandler> MakeFileReadHandler();
std::unique_ptr<EffectHandler> MakeFileWriteHandler();
std::unique_ptr<EffectHandler> MakeFilePatchHandler();
std::unique_ptr<EffectHandler> MakeNetworkSendHandler();
std::unique_ptr<EffectHandler> MakeModelCallHandler();
std::unique_ptr<EffectHandler> MakeToolDescribeHandler();
std::unique_ptr<EffectHandler> MakeToolInvokeHandler();
std::unique_ptr<EffectHandler> MakeToolResponseHandler();
std::unique_ptr<EffectHandler> MakeSecretOpenHandler();
std::unique_ptr<EffectHandler> MakeMemoryHandler(SyscallKind kind);
std::unique_ptr<EffectHandler> MakeHumanApproveHandler();
std::unique_ptr<EffectHandler> MakeAgentSpawnHandler();
std::unique_ptr<EffectHandler> MakeAgentSendHandler();
std::unique_ptr<EffectHandler> MakeAgentRecvHandler();
std::unique_ptr<EffectHandler> MakeContextReadHandler();
std::unique_ptr<EffectHandler> MakeAuditCommitHandler();
std::unique_ptr<EffectHandler> MakeAssertHandler();

}  // namespace custos::kernel
