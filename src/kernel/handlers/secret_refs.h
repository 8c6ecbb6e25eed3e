#pragma once
// Secret handle references — "{{h_<26 characters>}}" in a value an effect sends out (a
// network.send header, an MCP tool's argument). At the effect boundary, and only there, each
// reference is replaced by the secret's value, if
//   * the handle is a secret handle of the calling agent and run (else kForeignHandle,
//     kUnknownHandle, kHandleExpired or kInvalidArgument), and
//   * the secret's policy (`[secrets.<name>] agents` and `destinations`) allows this agent to
//     send it to `destination` ("host:port", or "mcp:<server>"; "" takes no secrets) — else
//     kSecretNotAllowed.
// The first refusal fails the effect; nothing is substituted then. The decision that allowed the
// syscall recorded the references, never the values.
//
// Thread-safe (stateless).

#include <string>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "kernel/context.h"
#include "kernel/services.h"

namespace custos::kernel {

// Checks every reference in `value` (a string, or every string of a JSON value) without
// substituting: for the resolve stage, so a refused reference is a recorded deny.
Status CheckSecretRefs(const Json& value, const SyscallContext& ctx, Services& s,
                       const std::string& destination);

// `value` with its references substituted; *found (optional) says whether it had any.
Result<std::string> SubstituteSecretRefs(std::string value, const SyscallContext& ctx, Services& s,
                                         const std::string& destination, bool* found = nullptr);

// The same over every string of a JSON value (object keys are left alone).
Result<Json> SubstituteSecretRefsInJson(Json value, const SyscallContext& ctx, Services& s,
                                        const std::string& destination, bool* found = nullptr);

}  // namespace custos::kernel
