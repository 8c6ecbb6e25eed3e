#include "custos/core/syscall_kind.h"

#include <iterator>

namespace custos {
namespace {

struct Row {
  SyscallKind kind;
  std::string_view name;
  bool external;
};

constexpr Row kRows[] = {
#define CUSTOS_SYSCALL_ROW(e, name, external) {SyscallKind::e, name, external},
    CUSTOS_SYSCALLS(CUSTOS_SYSCALL_ROW)
#undef CUSTOS_SYSCALL_ROW
};

constexpr SyscallKind kKinds[] = {
#define CUSTOS_SYSCALL_KIND(e, name, external) SyscallKind::e,
    CUSTOS_SYSCALLS(CUSTOS_SYSCALL_KIND)
#undef CUSTOS_SYSCALL_KIND
};

}  // namespace

std::string_view SyscallName(SyscallKind k) {
  const auto i = static_cast<size_t>(k);
  return i < std::size(kRows) ? kRows[i].name : std::string_view("unknown");
}

std::optional<SyscallKind> SyscallFromName(std::string_view name) {
  for (const Row& r : kRows) {
    if (r.name == name)
      return r.kind;
  }
  return std::nullopt;
}

std::span<const SyscallKind> AllSyscalls() { return kKinds; }

bool IsExternalEffect(SyscallKind k) {
  const auto i = static_cast<size_t>(k);
  return i < std::size(kRows) ? kRows[i].external
                              : true;  // unknown: treat as external (fail closed)
}

}  // namespace custos
