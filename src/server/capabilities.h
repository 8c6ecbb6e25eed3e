#pragma once
// MatchCapabilities answers POST /v1/request_capabilities: which of the syscalls an agent holds,
// and which registered tools the policy lets it invoke, look relevant to a goal written in plain
// words. Matching is by keyword overlap only (no model), so it is deterministic and cheap; it
// proposes, it never grants: every candidate is still decided by the kernel when used.
//
// Thread-safe: a pure function of its arguments.

#include <string>
#include <vector>

#include "custos/policy/policy.h"

namespace custos::server {

struct Candidate {
  std::string kind;    // syscall kind, e.g. "tool.invoke"
  std::string target;  // tool name for tool.invoke, else ""
  std::string description;
  int score = 0;    // number of goal words that matched
  std::string why;  // the matched words, space-separated
};

// Candidates with score > 0, best first (ties by kind then target), at most `limit`. An unknown
// agent gets none.
std::vector<Candidate> MatchCapabilities(const policy::Policy& policy, const std::string& agent,
                                         const std::string& goal, size_t limit);

}  // namespace custos::server
