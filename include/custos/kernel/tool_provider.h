#pragma once
// ToolProvider lets a gateway put remote tools behind the kernel without going around it: a
// tool.invoke whose target starts with a registered prefix ("fs." for an MCP server named "fs")
// is decided, labeled, budgeted and recorded like any other syscall, and its effect — the call to
// the remote server — is Invoke(), run by the kernel's effect step only after the allow decision
// is in the log (INV-1, INV-4). The kernel never calls a provider for a denied syscall.
//
// Check() runs in the resolve stage, before policy: a provider refuses tools it cannot vouch for
// (unknown, hidden after a descriptor change, unclassified) and the refusal is a recorded deny.
// Invoke() returns the bytes the kernel seals behind the output handle, the frame the caller sees
// (the kernel redacts secret values from it, INV-6) and the labels the source adds (joined with
// the inputs' labels, INV-5). A provider receives the call's arguments only: input handles are
// labels for the decision, their contents are never handed to a provider. Secret handle
// references in the arguments reach it substituted, toward SecretDestination() only.
//
// Thread-safe: the kernel calls Check() and Invoke() from any caller thread, concurrently.

#include <string>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/labels/label_set.h"

namespace custos::kernel {

struct ToolCall {
  std::string target;  // full kernel target, prefix included ("fs.read_file", "fs.resources/read")
  Json arguments;      // the syscall's args.arguments (an object)
  std::string agent;
  std::string run;
};

struct ToolOutput {
  std::string content;      // sealed behind the output handle
  Json frame;               // what the caller sees (redacted by the kernel)
  labels::LabelSet labels;  // labels the source adds (untrusted + external by default)
  Json meta = Json::object();
};

class ToolProvider {
 public:
  virtual ~ToolProvider() = default;
  // OK if `target` may be called now; otherwise the reason it may not (a recorded deny).
  virtual Status Check(const std::string& target) const = 0;
  // Performs the call. Failures are reported as a Status (recorded as the outcome).
  virtual Result<ToolOutput> Invoke(const ToolCall& call) = 0;
  // Where the call sends its arguments, as a secret destination ("mcp:<server>"): a secret
  // handle reference ("{{h_...}}") in the arguments is substituted, at the effect boundary, only
  // if the secret's policy allows this destination (else the call is a recorded deny,
  // secret_not_allowed). "" (the default): references are refused.
  virtual std::string SecretDestination(const std::string& target) const {
    (void)target;
    return "";
  }
};

}  // namespace custos::kernel
