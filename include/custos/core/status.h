#pragma once
// Status is an error value: a Reason, a human message, and where the problem is (`at`: a JSON
// pointer for requests, "file:line:col" for policy, a path for files). An OK status carries no
// allocation. Status is [[nodiscard]]; drop one only with IgnoreError(), so grep finds every place
// that does.
//
// Messages never contain secret bytes (INV-6): code that builds one from data it does not control
// quotes at most a bounded, redacted excerpt.
//
// Thread-compatible.

#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "custos/core/reason.h"

namespace custos {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Reason reason, std::string message, std::string at = {});

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  Reason reason() const { return rep_ ? rep_->reason : Reason::kOk; }
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }
  std::string_view at() const { return rep_ ? std::string_view(rep_->at) : ""; }

  // Returns a copy whose `at` is prefixed with `prefix` (JSON pointer composition).
  Status WithAtPrefix(std::string_view prefix) const;

  // "reason_name: message (at ...)".
  std::string ToString() const;

  void IgnoreError() const {}

  Status(const Status& o) : rep_(o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr) {}
  Status& operator=(const Status& o) {
    rep_ = o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

 private:
  struct Rep {
    Reason reason;
    std::string message;
    std::string at;
  };
  std::unique_ptr<Rep> rep_;
};

std::ostream& operator<<(std::ostream& os, const Status& s);

}  // namespace custos

// Evaluates `expr` (a Status or Result); on error returns its Status from the enclosing function.
#define CUSTOS_RETURN_IF_ERROR(expr)                            \
  do {                                                          \
    auto custos_status_ = ::custos::internal::ToStatus((expr)); \
    if (!custos_status_.ok())                                   \
      return custos_status_;                                    \
  } while (0)

#define CUSTOS_CONCAT_INNER_(a, b) a##b
#define CUSTOS_CONCAT_(a, b) CUSTOS_CONCAT_INNER_(a, b)

// CUSTOS_ASSIGN_OR_RETURN(auto x, FunctionReturningResult());
#define CUSTOS_ASSIGN_OR_RETURN(lhs, expr) \
  CUSTOS_ASSIGN_OR_RETURN_IMPL_(CUSTOS_CONCAT_(custos_result_, __LINE__), lhs, expr)
#define CUSTOS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok())                                      \
    return std::move(tmp).status();                   \
  lhs = std::move(tmp).value()

// Guards an internal invariant (never input): aborts with a message.
#define CUSTOS_CHECK(cond)                                        \
  do {                                                            \
    if (!(cond))                                                  \
      ::custos::internal::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (0)

namespace custos::internal {
[[noreturn]] void CheckFailed(const char* cond, const char* file, int line);
inline const Status& ToStatus(const Status& s) { return s; }
}  // namespace custos::internal
