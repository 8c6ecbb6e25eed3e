// The syscall pipeline (DESIGN.md "One request, end to end"):
//
//   capability → resolve → inputs → token → policy → labels → budget → token use → [approval]
//     → record(decision) → effect → record(outcome)
//
// Parse and schema run before (ParseSyscall). The decision entry is appended before the effect
// starts (INV-4); a refusal is recorded the same way and the effect never runs (INV-1). Any
// failure on the way is a recorded deny (INV-7).

#include "kernel/pipeline.h"

#include <optional>
#include <thread>

#include "custos/core/json.h"
#include "custos/crypto/random.h"
#include "custos/crypto/sha256.h"
#include "kernel/approval.h"
#include "kernel/effect_handler.h"
#include "kernel/stages/stages.h"

namespace custos::kernel {
namespace {

std::vector<std::string> LabelNames(const labels::LabelSet& l) { return l.Names(); }

// Everything that reaches a log entry or the caller goes through the vault's redaction first, so
// a secret that appears in a target or an explanation is never written out (INV-6).
std::string Redact(const Services& s, std::string_view text) {
  return s.vault()->scanner().Redact(text);
}

void RedactDecision(const Services& s, Decision* d) {
  d->explanation = Redact(s, d->explanation);
  d->suggestion = Redact(s, d->suggestion);
  d->at = Redact(s, d->at);  // a pointer names the caller's own keys
}

// A frame carries bytes the effect produced (a file, a response, a heap value, a message): any
// secret value in it, in keys or values, is redacted before the caller sees it (INV-6).
Json RedactJson(const Services& s, const Json& j) { return s.vault()->scanner().RedactJson(j); }

// Every caller-supplied string of an entry (names, ids, target, labels, details) is redacted at
// the one place entries are written, so no path into the log can skip it (INV-6).
void RedactEntry(const Services& s, audit::LogEntry* e) {
  e->agent = Redact(s, e->agent);
  e->run = Redact(s, e->run);
  e->syscall_id = Redact(s, e->syscall_id);
  e->syscall = Redact(s, e->syscall);
  e->target = Redact(s, e->target);
  e->explanation = Redact(s, e->explanation);
  for (std::string& l : e->labels)
    l = Redact(s, l);
  e->extra = RedactJson(s, e->extra);
}

audit::LogEntry DecisionEntry(const SyscallContext& ctx, const std::string& id, Services& s) {
  audit::LogEntry e;
  e.time_ms = ctx.now_ms;
  e.type = "decision";
  e.agent = ctx.call.agent;
  e.run = ctx.call.run;
  e.syscall_id = id;
  e.syscall = std::string(SyscallName(ctx.call.kind));
  e.target = Redact(s, ctx.target.empty() ? ctx.call.target : ctx.target);
  e.verdict = std::string(VerdictName(ctx.decision.verdict));
  e.stage = ctx.decision.stage;
  e.rule = ctx.decision.rule;
  e.reason = std::string(ReasonName(ctx.decision.reason));
  e.explanation = ctx.decision.explanation;  // already redacted
  e.labels = LabelNames(ctx.input_labels);
  e.policy_hash = std::string(ctx.policy->hash());
  // The request itself is sealed beside the entry; the entry holds only its hash. The sealed
  // request keeps the capability token it carried (a key between "target" and "v" in canonical
  // order), so a replay re-runs the token checks (kernel/replay.h); the token never reaches the
  // entry's readable fields.
  Result<std::string> canonical = CanonicalRequest(ctx.call);
  std::string req;
  if (canonical.ok()) {
    req = std::move(canonical).value();
    if (!ctx.call.token.empty()) {
      std::string token = ",\"token\":";
      AppendCanonicalString(ctx.call.token, &token);
      req.insert(req.rfind(",\"v\":"), token);
    }
  } else {
    Json j = ctx.call.ToJson();
    if (!ctx.call.token.empty())
      j["token"] = ctx.call.token;
    req = j.dump();
  }
  e.req_hash = crypto::Sha256(req).Hex();
  e.payload = s.SealPayload(req, e.req_hash);
  if (!ctx.observed.is_null())
    e.extra["observed"] = ctx.observed;  // what a replay needs from the world (environment.h)
  return e;
}

// Appends and fills the receipt; a log failure turns the result into a deny (fail closed).
// `defer`: queue without waiting for durability (the caller's next Record waits for both).
bool Record(audit::LogEntry entry, Services& s, SyscallResult* out, bool decision,
            bool defer = false) {
  RedactEntry(s, &entry);
  Result<audit::Appended> a =
      defer ? s.log().AppendDeferred(std::move(entry)) : s.log().Append(std::move(entry));
  if (!a.ok()) {
    out->decision = Decision::Deny("record", a.status());
    return false;
  }
  if (decision) {
    out->receipt.decision_seq = a->seq;
    out->receipt.decision_hash = a->hash;
  } else {
    out->receipt.outcome_seq = a->seq;
    out->receipt.outcome_hash = a->hash;
  }
  return true;
}

}  // namespace

Pipeline::Pipeline() {
  stages_.push_back(std::make_unique<CapabilityStage>());
  stages_.push_back(std::make_unique<ResolveStage>());
  stages_.push_back(std::make_unique<InputsStage>());
  stages_.push_back(std::make_unique<TokenAuthorizeStage>());
  stages_.push_back(std::make_unique<PolicyStage>());
  stages_.push_back(std::make_unique<LabelsStage>());
  stages_.push_back(std::make_unique<BudgetStage>());
  stages_.push_back(std::make_unique<TokenUseStage>());
}

Pipeline::~Pipeline() = default;

SyscallResult Pipeline::RecordParseFailure(const Status& st, const Json* raw,
                                           const std::string& kind_name, Services& s,
                                           const std::string& stage) const {
  const CallPin pin(s);  // one policy + vault snapshot for the whole call
  SyscallResult out;
  out.id = crypto::RandomId("s_");
  out.decision = Decision::Deny(stage, st);
  RedactDecision(s, &out.decision);
  audit::LogEntry e;
  e.time_ms = s.clock().NowMillis();
  e.type = "decision";
  e.syscall_id = out.id;
  e.syscall = kind_name;
  e.verdict = "deny";
  e.stage = stage;
  e.reason = std::string(ReasonName(st.reason()));
  e.explanation = out.decision.explanation;
  e.policy_hash = std::string(s.policy()->hash());
  e.extra = {{"at", std::string(st.at())}};
  if (raw != nullptr) {
    // Identify the caller if the envelope said who it was (bounded, identifiers only).
    auto str = [&](const char* k) -> std::string {
      auto it = raw->find(k);
      return (it != raw->end() && it->is_string()) ? it->get<std::string>().substr(0, 128) : "";
    };
    e.agent = Redact(s, str("agent"));
    e.run = Redact(s, str("run"));
    const std::string bytes = raw->dump();
    e.req_hash = crypto::Sha256(bytes).Hex();
    e.payload = s.SealPayload(bytes, e.req_hash);
  }
  Record(std::move(e), s, &out, /*decision=*/true);
  return out;
}

void Pipeline::Decide(SyscallContext& ctx, Services& s) const {
  ctx.policy = s.policy();
  ctx.now_ms = s.clock().NowMillis();
  StageVerdict verdict = StageVerdict::kContinue;
  bool needs_approval = false;
  // Observe mode (rollout): a would-be deny from policy or labels is remembered and the later
  // stages still run, so the call is allowed only if the budget (INV-3) lets it through; it is
  // recorded with its would-deny reason, so `audit inspect` shows what enforcement would refuse.
  // Secret bytes in egress are never waived (INV-6).
  std::optional<Decision> would_deny;
  for (const auto& stage : stages_) {
    verdict = stage->Run(ctx, s);
    if (verdict == StageVerdict::kDeny) {
      if (ctx.policy->observe_mode() && !would_deny &&
          (ctx.decision.stage == "policy" || ctx.decision.stage == "labels") &&
          ctx.decision.reason != Reason::kSecretInEgress) {
        would_deny = ctx.decision;
        verdict = StageVerdict::kContinue;
        continue;
      }
      break;
    }
    if (verdict == StageVerdict::kNeedsApproval)
      needs_approval = true;
  }
  if (verdict != StageVerdict::kDeny) {
    if (would_deny) {
      ctx.decision = *would_deny;
      ctx.decision.verdict = Verdict::kAllow;
      ctx.decision.explanation = "observe mode, would deny: " + ctx.decision.explanation;
    } else if (!needs_approval) {
      ctx.decision.verdict = Verdict::kAllow;
      ctx.decision.reason = Reason::kOk;
    }
  }
  RedactDecision(s, &ctx.decision);
}

Decision Pipeline::Explain(const Syscall& call, Services& s) const {
  const CallPin pin(s);  // one policy + vault snapshot for the whole call
  SyscallContext ctx(call);
  ctx.explain = true;
  Decide(ctx, s);
  if (ctx.reservation)
    s.ledger().Cancel(*ctx.reservation).IgnoreError();
  return ctx.decision;
}

SyscallResult Pipeline::Execute(const Syscall& call, Services& s, const ExecuteHooks* hooks) const {
  const CallPin pin(s);  // one policy + vault snapshot for the whole call
  SyscallContext ctx(call);
  ctx.hooks = hooks;
  SyscallResult out;
  out.id = call.id.empty() ? crypto::RandomId("s_") : Redact(s, call.id);

  Decide(ctx, s);

  if (ctx.decision.verdict == Verdict::kRequireApproval) {
    // Record that a person was asked, then wait for the answer; the final verdict is a second
    // decision entry that points at this one.
    Result<std::string> approval = [&]() -> Result<std::string> {
      store::Approval a;
      a.id = crypto::RandomId("a_");
      a.agent = Redact(s, call.agent);  // the person reading approvals sees no secret either
      a.run = Redact(s, call.run);
      a.syscall = std::string(SyscallName(call.kind));
      a.target = Redact(s, ctx.target);
      a.rule = ctx.decision.rule;
      a.question = call.intent.empty() ? ctx.decision.explanation : Redact(s, call.intent);
      a.state = "pending";
      a.created_ms = ctx.now_ms;
      a.deadline_ms = ctx.now_ms + ctx.policy->ApprovalTimeoutMs(ctx.decision.rule);
      CUSTOS_RETURN_IF_ERROR(s.store().PutApproval(a));
      return a.id;
    }();
    if (!approval.ok()) {
      ctx.decision = Decision::Deny("approval", approval.status());
    } else {
      ctx.approval_id = *approval;
      out.approval_id = *approval;
      audit::LogEntry pending = DecisionEntry(ctx, out.id, s);
      pending.extra["approval_id"] = *approval;
      if (!Record(std::move(pending), s, &out, true)) {
        if (ctx.reservation)
          s.ledger().Cancel(*ctx.reservation).IgnoreError();
        return out;
      }
      const int64_t first_seq = out.receipt.decision_seq;
      ctx.decision = WaitForApproval(ctx, s);
      ctx.decision_entry.seq = first_seq;
    }
  }

  audit::LogEntry entry = DecisionEntry(ctx, out.id, s);
  if (!ctx.approval_id.empty()) {
    entry.decision_seq = ctx.decision_entry.seq;
    entry.extra["approval_id"] = ctx.approval_id;
  }
  out.decision = ctx.decision;
  // INV-4 is about effects on the world: a read-only effect changes nothing and nothing is
  // released before the outcome, which waits and commits after the decision, so one fsync
  // covers both entries (decision 036). Every other decision is durable before its effect.
  const EffectHandler& handler = HandlerFor(call.kind);
  const bool defer = ctx.decision.allowed() && handler.ReadOnly(ctx);
  const bool recorded = Record(std::move(entry), s, &out, true, defer);
  // The decision is in the log (or the log failed: a deny). A deferred one is durable only with
  // the outcome, so its hook waits for that.
  if (hooks != nullptr && hooks->on_decision && (!defer || !recorded))
    hooks->on_decision(out);
  if (!recorded) {
    if (ctx.reservation)
      s.ledger().Cancel(*ctx.reservation).IgnoreError();
    return out;
  }
  if (!ctx.decision.allowed()) {
    if (ctx.reservation)
      s.ledger().Cancel(*ctx.reservation).IgnoreError();
    return out;
  }

  // The effect. Its failure is recorded as the outcome and reported as a deny at stage "effect".
  const int64_t started = s.clock().MonotonicNanos();
  Result<EffectOutput> effect = handler.Perform(ctx, s);
  audit::LogEntry outcome;
  outcome.time_ms = s.clock().NowMillis();
  outcome.type = "outcome";
  outcome.agent = call.agent;
  outcome.run = call.run;
  outcome.syscall_id = out.id;
  outcome.syscall = std::string(SyscallName(call.kind));
  outcome.target = Redact(s, ctx.target);
  outcome.decision_seq = out.receipt.decision_seq;
  outcome.policy_hash = std::string(ctx.policy->hash());
  outcome.stage = "effect";

  budget::Amounts used;
  if (effect.ok()) {
    EffectOutput& o = *effect;
    used = o.usage;
    // INV-5: the output carries the join of everything it was derived from.
    labels::LabelSet out_labels = ctx.input_labels.Join(o.labels);
    if (o.handle) {
      out.handle = HandleInfo{o.handle->id, labels::LabelSet::FromJson(o.handle->labels).value(),
                              o.handle->content_hash, o.handle->kind, 0};
    } else if (o.content) {
      Result<store::HandleRecord> h =
          s.MintHandle(call.agent, call.run, o.kind, *o.content, out_labels, o.meta);
      if (!h.ok()) {
        effect = h.status();
      } else {
        out.handle = HandleInfo{h->id, out_labels, h->content_hash, o.kind,
                                static_cast<int64_t>(o.content->size())};
      }
    }
    if (effect.ok())
      out.frame = RedactJson(s, o.frame);
  }
  if (ctx.reservation) {
    Status settle = s.ledger().Settle(*ctx.reservation, used);
    if (!settle.ok() && effect.ok())
      effect = settle;  // over-use is reported, never hidden
  }
  out.usage = used;
  outcome.usage = Json::object();
  for (int i = 0; i < budget::kResourceCount; ++i) {
    if (used.v[i] != 0) {
      outcome.usage[std::string(budget::ResourceName(static_cast<budget::Resource>(i)))] =
          used.v[i];
    }
  }
  outcome.extra = {{"duration_us", (s.clock().MonotonicNanos() - started) / 1000}};
  if (effect.ok()) {
    outcome.verdict = "allow";
    outcome.reason = "ok";
    if (out.handle) {
      outcome.blob = out.handle->id;
      outcome.res_hash = out.handle->content_hash;
      outcome.labels = LabelNames(out.handle->labels);
    }
  } else {
    Decision failed = Decision::Deny("effect", effect.status(), ctx.decision.rule);
    RedactDecision(s, &failed);
    outcome.verdict = "deny";
    outcome.reason = std::string(ReasonName(failed.reason));
    outcome.explanation = failed.explanation;
    out.decision = failed;
    out.frame = nullptr;
    out.handle.reset();
  }
  Record(std::move(outcome), s, &out, /*decision=*/false);
  if (defer && hooks != nullptr && hooks->on_decision)
    hooks->on_decision(out);
  return out;
}

}  // namespace custos::kernel
