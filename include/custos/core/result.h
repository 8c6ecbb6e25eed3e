#pragma once
// Result<T> holds a T or a non-OK Status. It is [[nodiscard]]; `Result<T>()` does not exist, so
// `return {};` does not compile. Building a Result from an OK Status is a bug and aborts.
// value() on an error aborts: check ok() first, or use CUSTOS_ASSIGN_OR_RETURN.
//
// Thread-compatible.

#include <optional>
#include <type_traits>
#include <utility>

#include "custos/core/status.h"

namespace custos {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result() = delete;
  Result(const T& v) : value_(v) {}           // NOLINT: implicit by design, as absl::StatusOr
  Result(T&& v) : value_(std::move(v)) {}     // NOLINT
  Result(Status s) : status_(std::move(s)) {  // NOLINT
    CUSTOS_CHECK(!status_.ok());
  }
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Status> &&
                                                    !std::is_same_v<std::decay_t<U>, Result>>>
  Result(U&& u) : value_(T(std::forward<U>(u))) {}  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  const T& value() const& {
    CUSTOS_CHECK(ok());
    return *value_;
  }
  T& value() & {
    CUSTOS_CHECK(ok());
    return *value_;
  }
  T value() && {
    CUSTOS_CHECK(ok());
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  void IgnoreError() const {}

 private:
  Status status_;
  std::optional<T> value_;
};

namespace internal {
template <typename T>
const Status& ToStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace custos
