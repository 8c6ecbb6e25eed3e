#include "custos/core/decision.h"

namespace custos {

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kAllow:
      return "allow";
    case Verdict::kRequireApproval:
      return "require_approval";
    case Verdict::kDeny:
      return "deny";
  }
  return "deny";
}

}  // namespace custos
