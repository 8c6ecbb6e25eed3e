#pragma once
// Human approvals: a pending approval lives in the store, so a person can answer it from another
// process (`custos approvals approve ID`); the waiting syscall polls until it is answered or its
// deadline passes. A deadline that passes is recorded as a denial by timeout (fail closed).
//
// Thread-safe.

#include <string>

#include "custos/core/decision.h"
#include "custos/core/result.h"
#include "kernel/context.h"
#include "kernel/services.h"

namespace custos::kernel {

// Waits for approval `id`. Returns OK if approved; kApprovalDenied or kApprovalTimeout otherwise.
// *answered_by receives who answered.
Status AwaitApproval(const std::string& id, Services& s, std::string* answered_by);

// The decision after waiting for ctx.approval_id: allow at stage "approval" or a deny.
Decision WaitForApproval(const SyscallContext& ctx, Services& s);

}  // namespace custos::kernel
