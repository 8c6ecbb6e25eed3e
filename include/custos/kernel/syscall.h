#pragma once
// Syscall is one request from an agent (DESIGN.md "One request, end to end"), and SyscallResult
// is the kernel's answer. The JSON shapes are the wire format of `custos run` scripts and of the
// daemon's /v1/syscall (docs/syscalls.md):
//   {"v":1, "id":"...", "agent":"...", "run":"...", "kind":"file.read", "target":"/x",
//    "args":{...}, "inputs":["h_..."], "labels":["untrusted"], "token":"...", "intent":"..."}
// ParseSyscall() is the parse + schema stages: it checks the envelope and the kind's argument
// schema and reports the first problem with a JSON pointer in Status::at() — unknown fields
// (kUnknownField), missing or mistyped fields (kSchemaViolation), oversize values
// (kPayloadTooLarge), unknown kinds (kUnknownSyscall).
//
// Thread-compatible.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "custos/budget/ledger.h"
#include "custos/core/decision.h"
#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/core/syscall_kind.h"
#include "custos/labels/label_set.h"

namespace custos::kernel {

inline constexpr int kSyscallVersion = 1;
inline constexpr size_t kMaxTargetBytes = 4096;
inline constexpr size_t kMaxInputs = 64;

struct Syscall {
  int v = kSyscallVersion;
  std::string id;  // caller's request id; generated if empty
  std::string agent;
  std::string run;
  SyscallKind kind = SyscallKind::kAssert;
  std::string target;
  Json args = Json::object();
  std::vector<std::string> inputs;  // handle ids
  std::optional<labels::LabelSet> declared_labels;
  std::string token;
  std::string intent;

  Json ToJson() const;
};

// Parses and schema-checks a syscall. For an unknown kind, *kind_name receives the raw name so the
// refusal can be recorded with it.
Result<Syscall> ParseSyscall(const Json& j, std::string* kind_name = nullptr);
Result<Syscall> ParseSyscallText(std::string_view text, const JsonLimits& limits = {});
// The schema stage on its own, for Syscall values built in code rather than parsed: the same
// checks (and errors) ParseSyscall applies after reading the envelope.
Status ValidateSyscall(const Syscall& s);
// The request's canonical JSON (what its req_hash covers): equal to CanonicalJson(s.ToJson()).
Result<std::string> CanonicalRequest(const Syscall& s);

struct HandleInfo {
  std::string id;
  labels::LabelSet labels;
  std::string content_hash;
  std::string kind;
  int64_t size = 0;
};

struct Receipt {
  int64_t decision_seq = 0;
  std::string decision_hash;
  int64_t outcome_seq = 0;
  std::string outcome_hash;
};

struct SyscallResult {
  std::string id;
  Decision decision;
  std::optional<HandleInfo> handle;
  Json frame;  // bounded output for the caller; null when there is none
  budget::Amounts usage;
  Receipt receipt;
  std::string approval_id;  // set while/after a human approval was involved

  Json ToJson() const;
};

}  // namespace custos::kernel
