#pragma once
// ReplayLog re-decides every recorded decision of a flight log with the kernel's own decision
// pipeline (Pipeline::Decide, the same stages as Execute) and reports each one that comes out
// differently (docs/replay.md, docs/decisions/012-deterministic-replay.md).
//
// A replay never performs an effect and never writes the log it reads: it runs the stages against
// a private Services (an in-memory store, its own budget ledger, a clock set to each entry's
// time_ms) whose world is the record:
//  - the request is the sealed payload beside the decision entry, opened with the identity;
//  - the canonical path and the resolved address are what the recorded decision saw (its target
//    and extra.observed), never today's filesystem or DNS; a fact the record does not hold (a
//    call refused before it resolved anything, now allowed under a fork) is reported as unknown
//    (kReplayFactUnknown), never guessed;
//  - handles come into being at the outcomes that minted them, with the recorded labels (joined
//    with the replayed inputs' labels, or replaced by a Behavior rule), so later decisions see
//    the labels history produced;
//  - budgets are rebuilt by reserving at each decision and settling the recorded usage at its
//    outcome; agent.spawn is re-applied to the private state; a `kernel.start` entry starts a
//    fresh process state, as a restart did;
//  - a human's answer to a require_approval is taken from the record;
//  - the capability token is the one the sealed request carried, verified with the token root
//    derived from `identity` (decision 008); a `token.revoke` event revokes its block in the
//    private store from that entry on, and max_uses / rate caveats are counted again there over
//    the replayed history (a revocation the log never recorded cannot be replayed).
// Under another policy (fork) a call whose verdict changes has no recorded result (it was refused
// in history), or its recorded result no longer happens: the replay marks it and every later
// decision of the same run `diverged` (they may depend on a result nobody knows), decides them
// anyway, and counts them apart.
//
// Errors: kNotFound (no log), kLogCorrupt (an entry does not decode), kStoreError. An entry that
// cannot be replayed (no payload, a payload that does not open, a different policy in a
// determinism check) is reported as skipped with its reason, never dropped silently.
//
// Thread-compatible: one call replays one log; it uses `options.decode_threads` helper threads
// to read, open and parse entries ahead of the decisions, which run in log order on the caller's
// thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "custos/core/decision.h"
#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"
#include "custos/kernel/replay_behavior.h"
#include "custos/policy/policy.h"
#include "custos/store/store.h"

namespace custos::kernel {

// The parts of a decision a replay compares (the explanation is prose and is not compared).
struct DecisionKey {
  Verdict verdict = Verdict::kDeny;
  std::string stage, rule;
  Reason reason = Reason::kInternal;

  bool operator==(const DecisionKey&) const = default;
  // "deny:no_matching_rule", "allow:net.connect": the verdict and the rule, or the reason when
  // no rule decided.
  std::string Short() const;
};

enum class ReplayStatus {
  kSame,     // decided as recorded
  kChanged,  // decided differently
  kSkipped,  // not replayable; `skip` says why
  kUnknown,  // needs a fact about the world history never observed (kReplayFactUnknown)
};
std::string_view ReplayStatusName(ReplayStatus s);  // "same" | "changed" | "skipped" | "unknown"

struct ReplayedDecision {
  int64_t seq = 0;
  std::string syscall, agent, run, target;  // as recorded (target redacted)
  ReplayStatus status = ReplayStatus::kSame;
  DecisionKey recorded;
  DecisionKey replayed;  // unset when skipped
  Status skip;           // why it was skipped (its reason is the stable code)
  // > 0: this decision follows, in its run, decision `diverged_after` whose effect is unknown or
  // no longer happens under the replay; its own verdict may rest on results nobody knows.
  int64_t diverged_after = 0;
  std::string effect;  // "unknown" (allowed now, refused in history), "dropped", or ""
  int behavior = -1;   // index of the Behavior rule that replaced this call's result, or -1
};

struct ReplayReport {
  int64_t entries = 0;    // log entries read
  int64_t decisions = 0;  // decision entries
  int64_t same = 0, changed = 0, skipped = 0, unknown = 0;
  int64_t diverged = 0;  // decisions with diverged_after > 0 (also counted above)
  int64_t substituted = 0;
  std::string policy_hash;
  // Every decision that is not kSame (all of them with ReplayOptions::keep_same), in log order.
  std::vector<ReplayedDecision> decisions_out;
  // "deny:no_matching_rule → allow:net.docs" → count, over kChanged decisions.
  std::map<std::string, int64_t> transitions;
  std::vector<std::string> warnings;
  int64_t elapsed_us = 0;

  bool clean() const { return changed == 0 && unknown == 0 && skipped == 0; }
  Json ToJson() const;
};

struct ReplayOptions {
  std::shared_ptr<const policy::Policy> policy;  // required
  // false: determinism check; a decision recorded under another policy hash is skipped
  // (kReplayPolicyMismatch). true: decide everything under `policy` (fork-replay).
  bool fork = false;
  const Behavior* behavior = nullptr;  // may be null
  bool keep_same = false;
  // Threads that read, open and parse entries one chunk ahead of the decisions (0: inline,
  // on the caller's thread; 2 uses both cores of a small machine while decisions run).
  int decode_threads = 1;
  // Where notices go (e.g. a policy secret with no value here); default: dropped.
  std::function<void(const std::string&)> notice;
};

// Replays the log in `log`. `identity` is the kernel identity that sealed the payloads (its
// derived keys open them); it is consumed.
Result<ReplayReport> ReplayLog(store::Store& log, crypto::SigningKey identity,
                               const ReplayOptions& options);

}  // namespace custos::kernel
