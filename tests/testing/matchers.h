#pragma once
// GoogleTest matchers for Status and Result. Deliberately no "NotOk()": a test names the reason it
// expects, e.g. EXPECT_THAT(r, StatusIs(Reason::kTokenExpired)).

#include <gmock/gmock.h>

#include "custos/core/result.h"

namespace custos::testing {

inline const Status& GetStatus(const Status& s) { return s; }
template <typename T>
const Status& GetStatus(const Result<T>& r) {
  return r.status();
}

MATCHER(IsOk, "is OK") {
  const Status& s = GetStatus(arg);
  if (!s.ok())
    *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, reason, "has reason " + std::string(ReasonName(reason))) {
  const Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.reason() == reason;
}

}  // namespace custos::testing
