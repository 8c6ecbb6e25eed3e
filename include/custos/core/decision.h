#pragma once
// Decision is the value every syscall ends in: the same value is returned to the caller, written
// to the flight log and shown by `custos explain`. A default-constructed Decision is a Deny with
// reason internal_error: a decision that was never made fails closed (INV-7).
//
// Thread-compatible.

#include <string>
#include <string_view>

#include "custos/core/reason.h"
#include "custos/core/status.h"

namespace custos {

enum class Verdict : uint8_t { kDeny = 0, kAllow = 1, kRequireApproval = 2 };

std::string_view VerdictName(Verdict v);  // "deny" | "allow" | "require_approval"

// The stage that decided: parse, schema, capability, policy, labels, budget, approval, effect.
struct Decision {
  Verdict verdict = Verdict::kDeny;
  std::string stage = "internal";
  std::string rule;  // policy rule id, or "" when no rule decided (e.g. a schema error)
  Reason reason = Reason::kInternal;
  std::string explanation;  // which condition failed, with the actual value (never secret bytes)
  std::string suggestion;   // for a deny: a policy snippet that would allow it
  std::string at;           // JSON pointer / file:line when the input was at fault

  bool allowed() const { return verdict == Verdict::kAllow; }

  static Decision Allow(std::string stage, std::string rule) {
    Decision d;
    d.verdict = Verdict::kAllow;
    d.stage = std::move(stage);
    d.rule = std::move(rule);
    d.reason = Reason::kOk;
    return d;
  }
  static Decision Deny(std::string stage, const Status& s, std::string rule = {},
                       std::string suggestion = {}) {
    Decision d;
    d.stage = std::move(stage);
    d.rule = std::move(rule);
    d.reason = s.ok() ? Reason::kInternal : s.reason();
    d.explanation = std::string(s.message());
    d.at = std::string(s.at());
    d.suggestion = std::move(suggestion);
    return d;
  }
};

}  // namespace custos
