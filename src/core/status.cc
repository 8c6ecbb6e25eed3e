#include "custos/core/status.h"

#include <cstdio>
#include <cstdlib>

namespace custos {

Status::Status(Reason reason, std::string message, std::string at) {
  if (reason == Reason::kOk)
    return;  // An OK status never carries a message.
  rep_ = std::make_unique<Rep>(Rep{reason, std::move(message), std::move(at)});
}

Status Status::WithAtPrefix(std::string_view prefix) const {
  if (ok())
    return Status();
  return Status(rep_->reason, rep_->message, std::string(prefix) + rep_->at);
}

std::string Status::ToString() const {
  if (ok())
    return "ok";
  std::string out(ReasonName(rep_->reason));
  out += ": ";
  out += rep_->message;
  if (!rep_->at.empty()) {
    out += " (at ";
    out += rep_->at;
    out += ")";
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

namespace internal {
void CheckFailed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "CUSTOS_CHECK failed: %s at %s:%d\n", cond, file, line);
  std::abort();
}
}  // namespace internal

}  // namespace custos
