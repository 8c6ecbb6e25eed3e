#pragma once
// SyscallKind is the closed set of actions an agent can ask the kernel for. The wire name
// ("file.read") is the only spelling used in policy, requests and the log. Parsing an unknown
// name yields nullopt, which the kernel turns into a recorded deny (INV-7).
//
// Thread-safe: constant data.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace custos {

#define CUSTOS_SYSCALLS(X)                 \
  X(kModelCall, "model.call", true)        \
  X(kContextRead, "context.read", false)   \
  X(kToolDescribe, "tool.describe", false) \
  X(kToolInvoke, "tool.invoke", true)      \
  X(kToolResponse, "tool.response", false) \
  X(kSecretOpen, "secret.open", true)      \
  X(kNetworkSend, "network.send", true)    \
  X(kFileRead, "file.read", true)          \
  X(kFileWrite, "file.write", true)        \
  X(kFilePatch, "file.patch", true)        \
  X(kMemoryAlloc, "memory.alloc", false)   \
  X(kMemoryRead, "memory.read", false)     \
  X(kMemoryWrite, "memory.write", false)   \
  X(kMemoryDelete, "memory.delete", false) \
  X(kMemoryQuery, "memory.query", false)   \
  X(kMemoryBatch, "memory.batch", false)   \
  X(kHumanApprove, "human.approve", false) \
  X(kAgentSpawn, "agent.spawn", true)      \
  X(kAgentSend, "agent.send", false)       \
  X(kAgentRecv, "agent.recv", false)       \
  X(kAuditCommit, "audit.commit", false)   \
  X(kAssert, "assert", false)

enum class SyscallKind : uint8_t {
#define CUSTOS_SYSCALL_ENUM(e, name, external) e,
  CUSTOS_SYSCALLS(CUSTOS_SYSCALL_ENUM)
#undef CUSTOS_SYSCALL_ENUM
};

inline constexpr int kSyscallKindCount = 0
#define CUSTOS_SYSCALL_COUNT(e, name, external) +1
    CUSTOS_SYSCALLS(CUSTOS_SYSCALL_COUNT)
#undef CUSTOS_SYSCALL_COUNT
    ;

// "unknown" for a value outside the enum (a corrupted or hand-built kind).
std::string_view SyscallName(SyscallKind k);
std::optional<SyscallKind> SyscallFromName(std::string_view name);
std::span<const SyscallKind> AllSyscalls();
// True for syscalls whose effect reaches outside the kernel (files, network, tools, models,
// secrets, new agents). These need an explicit policy allow; kernel-internal syscalls (memory,
// mailboxes, handles, audit.commit, assert) are allowed by the agent's capability alone unless a
// rule denies them.
bool IsExternalEffect(SyscallKind k);

// A set of syscall kinds as a bitmask (kSyscallKindCount < 32).
class SyscallSet {
 public:
  constexpr SyscallSet() = default;
  static SyscallSet All() { return SyscallSet((1u << kSyscallKindCount) - 1); }
  bool Contains(SyscallKind k) const { return bits_ & Bit(k); }
  void Add(SyscallKind k) { bits_ |= Bit(k); }
  bool IsSubsetOf(SyscallSet o) const { return (bits_ & ~o.bits_) == 0; }
  SyscallSet Intersect(SyscallSet o) const { return SyscallSet(bits_ & o.bits_); }
  bool empty() const { return bits_ == 0; }
  uint32_t bits() const { return bits_; }

 private:
  explicit constexpr SyscallSet(uint32_t bits) : bits_(bits) {}
  static uint32_t Bit(SyscallKind k) { return 1u << static_cast<uint32_t>(k); }
  uint32_t bits_ = 0;
};

}  // namespace custos
