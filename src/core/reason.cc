#include "custos/core/reason.h"

#include <array>

namespace custos {
namespace {

constexpr ReasonInfo kTable[] = {
#define CUSTOS_REASON_ROW(e, n, name, cls, http, doc) \
  {Reason::e, name, ReasonClass::cls, http, doc},
    CUSTOS_REASONS(CUSTOS_REASON_ROW)
#undef CUSTOS_REASON_ROW
};

}  // namespace

std::span<const ReasonInfo> AllReasons() { return kTable; }

const ReasonInfo& InfoOf(Reason r) {
  for (const ReasonInfo& info : kTable) {
    if (info.reason == r)
      return info;
  }
  return kTable[1];  // kInternal: an out-of-table value is a bug, reported as such.
}

std::string_view ReasonName(Reason r) { return InfoOf(r).name; }

std::optional<Reason> ReasonFromName(std::string_view name) {
  for (const ReasonInfo& info : kTable) {
    if (info.name == name)
      return info.reason;
  }
  return std::nullopt;
}

std::string_view ReasonClassName(ReasonClass c) {
  switch (c) {
    case ReasonClass::kOk:
      return "ok";
    case ReasonClass::kInvalidArgument:
      return "invalid_argument";
    case ReasonClass::kUnauthenticated:
      return "unauthenticated";
    case ReasonClass::kPermissionDenied:
      return "permission_denied";
    case ReasonClass::kNotFound:
      return "not_found";
    case ReasonClass::kAlreadyExists:
      return "already_exists";
    case ReasonClass::kFailedPrecondition:
      return "failed_precondition";
    case ReasonClass::kAborted:
      return "aborted";
    case ReasonClass::kResourceExhausted:
      return "resource_exhausted";
    case ReasonClass::kDeadlineExceeded:
      return "deadline_exceeded";
    case ReasonClass::kUnavailable:
      return "unavailable";
    case ReasonClass::kInternal:
      return "internal";
    case ReasonClass::kDataLoss:
      return "data_loss";
  }
  return "internal";
}

int ExitCodeOf(Reason r) {
  const ReasonClass c = InfoOf(r).cls;
  return c == ReasonClass::kOk ? 0 : 10 + static_cast<int>(c);
}

}  // namespace custos
