#pragma once
// A parser for the Biscuit Datalog text an authorizer is written in: facts, rules, checks
// (`check if`, `check all`, `reject if`), policies (`allow if`, `deny if`), block-level `trusting`
// scopes and the expression language (operators with the specification's precedence, methods
// such as `.starts_with()`, `.contains()`, `.matches()`, `.length()`, `.type()`, `.get()`,
// `.intersection()`, `.union()`, `.all($p -> ...)`, `.any($p -> ...)`, `.try_or()`,
// `.extern::name(...)`, and the literals: integers, strings, RFC 3339 dates, `hex:` bytes,
// booleans, null, sets, arrays, maps).
// `&&` and `||` are encoded lazily (right operand as a closure), as current Biscuit does.
//
// Statements end with `;`; `//` starts a comment to the end of the line. Errors are
// Reason::kInvalidArgument with a message "parse error at <line>:<col>: <what>".
//
// Thread-safe: a pure function.

#include <string_view>

#include "custos/caps/datalog_engine.h"
#include "custos/core/result.h"

namespace custos::caps {

Result<AuthorizerCode> ParseAuthorizerCode(std::string_view text);

}  // namespace custos::caps
