// Deterministic replay of the flight log (kernel/replay.h). Entries are read, their payloads
// opened and parsed on a helper thread one chunk ahead; decisions run in log order on the
// caller's thread, through the kernel's own Pipeline::Decide against a private Services whose
// Environment answers from the record.

#include "custos/kernel/replay.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <unordered_map>
#include <unordered_set>

#include "custos/audit/log_entry.h"
#include "custos/core/clock.h"
#include "custos/crypto/sha256.h"
#include "custos/kernel/syscall.h"
#include "kernel/context.h"
#include "kernel/effect_handler.h"
#include "kernel/environment.h"
#include "kernel/pipeline.h"
#include "kernel/replay_entry_internal.h"
#include "kernel/services.h"

namespace custos::kernel {

std::string DecisionKey::Short() const {
  return std::string(VerdictName(verdict)) + ":" +
         (rule.empty() ? std::string(ReasonName(reason)) : rule);
}

std::string_view ReplayStatusName(ReplayStatus s) {
  switch (s) {
    case ReplayStatus::kSame:
      return "same";
    case ReplayStatus::kChanged:
      return "changed";
    case ReplayStatus::kSkipped:
      return "skipped";
    case ReplayStatus::kUnknown:
      return "unknown";
  }
  return "unknown";
}

namespace {

constexpr int64_t kChunkRows = 4096;

Json KeyJson(const DecisionKey& k) {
  return {{"verdict", std::string(VerdictName(k.verdict))},
          {"stage", k.stage},
          {"rule", k.rule},
          {"reason", std::string(ReasonName(k.reason))}};
}

}  // namespace

Json ReplayReport::ToJson() const {
  Json out = {{"entries", entries},      {"decisions", decisions},     {"same", same},
              {"changed", changed},      {"skipped", skipped},         {"unknown", unknown},
              {"diverged", diverged},    {"substituted", substituted}, {"policy_hash", policy_hash},
              {"elapsed_us", elapsed_us}};
  Json list = Json::array();
  for (const ReplayedDecision& d : decisions_out) {
    Json j = {{"seq", d.seq},
              {"syscall", d.syscall},
              {"agent", d.agent},
              {"run", d.run},
              {"target", d.target},
              {"status", std::string(ReplayStatusName(d.status))},
              {"recorded", KeyJson(d.recorded)}};
    if (d.status == ReplayStatus::kSkipped) {
      j["skip"] = {{"reason", std::string(ReasonName(d.skip.reason()))},
                   {"message", std::string(d.skip.message())}};
    } else {
      j["replayed"] = KeyJson(d.replayed);
    }
    if (d.diverged_after > 0)
      j["diverged_after"] = d.diverged_after;
    if (!d.effect.empty())
      j["effect"] = d.effect;
    if (d.behavior >= 0)
      j["behavior"] = d.behavior;
    list.push_back(std::move(j));
  }
  out["decisions_out"] = std::move(list);
  Json t = Json::array();
  for (const auto& [k, n] : transitions)
    t.push_back({{"transition", k}, {"count", n}});
  out["transitions"] = std::move(t);
  out["warnings"] = warnings;
  return out;
}

namespace {

// The decision stages in pipeline order; anything after them (approval, record, effect) ranks
// last, a schema failure first.
int StageRank(std::string_view stage) {
  static constexpr std::string_view kOrder[] = {"capability", "resolve", "inputs",
                                                "policy",     "labels",  "budget"};
  for (int i = 0; i < 6; ++i) {
    if (kOrder[i] == stage)
      return i;
  }
  return stage == "schema" ? -1 : 6;
}

Reason ReasonOf(std::string_view name) { return ReasonFromName(name).value_or(Reason::kInternal); }

Verdict VerdictOf(std::string_view name) {
  if (name == "allow")
    return Verdict::kAllow;
  if (name == "require_approval")
    return Verdict::kRequireApproval;
  return Verdict::kDeny;
}

DecisionKey KeyOf(const audit::LogEntry& e) {
  return {VerdictOf(e.verdict), e.stage, e.rule, ReasonOf(e.reason)};
}

DecisionKey KeyOf(const Decision& d) { return {d.verdict, d.stage, d.rule, d.reason}; }

// What the recorded decision being replayed saw, for the RecordedEnvironment.
struct Facts {
  const audit::LogEntry* entry = nullptr;
  const std::unordered_set<std::string>* substituted = nullptr;

  // True if the recorded decision ran `stage` (a deny stops the stages after it; any other verdict,
  // observe mode included, ran them all).
  bool Ran(std::string_view stage) const {
    return entry->verdict != "deny" || StageRank(entry->stage) >= StageRank(stage);
  }
  bool DeniedAt(std::string_view stage) const {
    return entry->verdict == "deny" && entry->stage == stage;
  }
};

// The world as the recorded decision saw it (kernel/environment.h).
class RecordedEnvironment final : public Environment {
 public:
  explicit RecordedEnvironment(const Facts* f) : f_(f) {}

  // A decision that got past resolve had its canonical path as the entry's target; one refused
  // at resolve failed with the recorded reason (the pure checks of a handler's Resolve fail the
  // same way either side of this call). A call refused before resolve never asked.
  Result<std::string> CanonicalPath(SyscallContext&, const std::string&, bool) const override {
    const audit::LogEntry& e = *f_->entry;
    if (f_->DeniedAt("resolve"))
      return Status(ReasonOf(e.reason), "as recorded: " + e.explanation);
    if (f_->Ran("resolve"))
      return e.target;
    return Status(Reason::kReplayFactUnknown,
                  "history never resolved this path: the call was refused at stage " + e.stage);
  }

  Result<std::vector<std::string>> ResolveHost(SyscallContext&, const std::string& host,
                                               uint16_t) const override {
    const Json& extra = f_->entry->extra;
    auto obs = extra.find("observed");
    if (obs != extra.end() && obs->is_object()) {
      if (auto a = obs->find("address"); a != obs->end() && a->is_string()) {
        if (a->get_ref<const std::string&>().empty())
          return std::vector<std::string>{};
        return std::vector<std::string>{a->get<std::string>()};
      }
      if (auto er = obs->find("resolve_error"); er != obs->end() && er->is_string()) {
        return Status(ReasonFromName(er->get<std::string>()).value_or(Reason::kEffectFailed),
                      "as recorded: host " + host + " did not resolve");
      }
    }
    return Status(Reason::kReplayFactUnknown, "the record holds no resolved address for " + host);
  }

  // The recorded scan's answer when the egress is what history sent; the vault of this process
  // when the scan never ran or a Behavior rule changed an input's bytes.
  std::optional<std::string> FindSecret(SyscallContext& ctx, const SecretVault& vault,
                                        std::string_view egress) const override {
    bool changed = false;
    for (const store::HandleRecord& h : ctx.input_handles)
      changed = changed || f_->substituted->count(h.id) != 0;
    const audit::LogEntry& e = *f_->entry;
    if (!changed && f_->Ran("labels")) {
      if (!f_->DeniedAt("labels") || e.reason != "secret_in_egress")
        return std::nullopt;
      // "... contains the value of secret 'NAME'; ..."
      const size_t at = e.explanation.find("secret '");
      const size_t end = at == std::string::npos ? at : e.explanation.find('\'', at + 8);
      return end == std::string::npos ? std::string("(as recorded)")
                                      : e.explanation.substr(at + 8, end - at - 8);
    }
    return vault.scanner().FindIn(egress);
  }

 private:
  const Facts* f_;
};

// One log entry, decoded ahead of its replay.
struct Decoded {
  audit::LogEntry e;
  std::optional<Syscall> call;  // decision entries whose payload parsed
  Status parse;                 // the request's parse/schema failure: replayed as the kernel's deny
  Status skip;                  // why the decision cannot be replayed
  std::optional<store::HandleRecord> handle;  // outcome entries that name a handle
};

class Decoder {
 public:
  Decoder(store::Store& log, crypto::AeadKey key) : log_(log), key_(std::move(key)) {}

  // Reads the chunk of rows from `from_seq` and decodes it, split over `threads` threads.
  Result<std::vector<Decoded>> Read(int64_t from_seq, int threads) {
    store::LogQuery q;
    q.from_seq = from_seq;
    q.limit = kChunkRows;
    q.with_payloads = true;
    CUSTOS_ASSIGN_OR_RETURN(std::vector<store::LogRow> rows, log_.ReadLog(q));
    std::vector<Decoded> out(rows.size());
    const size_t parts = static_cast<size_t>(std::max(1, threads));
    const size_t per = (rows.size() + parts - 1) / parts;
    std::vector<std::future<Status>> helpers;
    for (size_t p = 1; p < parts && p * per < rows.size(); ++p) {
      helpers.push_back(std::async(std::launch::async, [&, p] {
        return DecodeRange(rows, p * per, std::min(rows.size(), (p + 1) * per), &out);
      }));
    }
    Status first = DecodeRange(rows, 0, std::min(rows.size(), per), &out);
    for (std::future<Status>& h : helpers) {
      Status st = h.get();
      if (first.ok() && !st.ok())
        first = st;
    }
    if (!first.ok())
      return first;
    return out;
  }

 private:
  Status DecodeRange(std::vector<store::LogRow>& rows, size_t from, size_t to,
                     std::vector<Decoded>* out) {
    for (size_t i = from; i < to; ++i) {
      Decoded& d = (*out)[i];
      if (!internal::ReadEntryFast(rows[i], &d.e)) {
        CUSTOS_ASSIGN_OR_RETURN(d.e, audit::DecodeEntry(rows[i]));
      }
      if (d.e.type == "decision") {
        OpenRequest(&d, std::move(rows[i].payload));
      } else if (d.e.type == "outcome" && !d.e.blob.empty()) {
        Result<store::HandleRecord> h = log_.GetHandle(d.e.blob);
        if (h.ok())
          d.handle = std::move(h).value();
      }
    }
    return Status::Ok();
  }

  void OpenRequest(Decoded* d, std::string sealed) {
    if (d->e.req_hash.empty()) {
      d->skip = Status(Reason::kNotFound, "the entry has no request payload (it was not JSON)");
      return;
    }
    if (sealed.empty()) {
      d->skip = Status(Reason::kNotFound, "no payload is stored with this entry");
      return;
    }
    Result<std::string> plain = key_.Open(sealed, d->e.req_hash);
    if (!plain.ok()) {
      d->skip = Status(Reason::kKeyError,
                       "the request payload does not open with this identity's payload key");
      return;
    }
    if (crypto::Sha256(*plain).Hex() != d->e.req_hash) {
      d->skip = Status(Reason::kLogCorrupt, "the request payload does not match req_hash");
      return;
    }
    // The kernel seals only requests that parsed as JSON within its limits, and the bytes are
    // authenticated: no untrusted-input pre-scan is needed here.
    Json j = Json::parse(*plain, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      d->skip = Status(Reason::kLogCorrupt, "the request payload is not JSON");
      return;
    }
    Result<Syscall> call = ParseSyscall(j);
    if (!call.ok()) {
      d->parse = call.status();
      return;
    }
    d->call = std::move(call).value();
  }

  store::Store& log_;
  const crypto::AeadKey key_;
};

// Kinds whose result is an existing or specially minted handle (context.read returns its input,
// agent.recv the message handle, secret.open and a declassifying human.approve mint with labels
// of their own): their recorded labels stand as they are. Every other result carries the join of
// the call's inputs (INV-5).
bool KeepsOwnLabels(SyscallKind k) {
  return k == SyscallKind::kContextRead || k == SyscallKind::kAgentRecv ||
         k == SyscallKind::kSecretOpen || k == SyscallKind::kHumanApprove;
}

budget::Amounts UsageOf(const Json& usage) {
  budget::Amounts a;
  for (int i = 0; i < budget::kResourceCount; ++i) {
    auto it = usage.find(std::string(budget::ResourceName(static_cast<budget::Resource>(i))));
    if (it != usage.end() && it->is_number_integer())
      a.v[i] = it->get<int64_t>();
  }
  return a;
}

// A call whose effect the replay still expects (its outcome, or a person's answer).
struct OpenCall {
  explicit OpenCall(Syscall c) : call(std::move(c)), ctx(call) {}
  Syscall call;
  SyscallContext ctx;  // refers to `call`: OpenCall never moves (held by unique_ptr)
  DecisionKey replayed;
  const BehaviorRule* behavior = nullptr;
  std::string target;  // recorded target of the decision
};

class Replayer {
 public:
  Replayer(const ReplayOptions& o, Services& s, FakeClock& clock, Facts& facts,
           ReplayReport& report)
      : o_(o), s_(s), clock_(clock), facts_(facts), r_(report) {
    facts_.substituted = &substituted_;
  }

  void Process(Decoded& d) {
    ++r_.entries;
    const audit::LogEntry& e = d.e;
    if (e.type == "event") {
      if (e.syscall == "kernel.start") {
        // A new kernel process: its ledger, run clocks and agent cache start empty.
        s_.ForgetProcessState();
        open_.clear();
        awaiting_answer_.clear();
      } else if (e.syscall == "token.revoke") {
        Revoke(e);
      }
      return;
    }
    if (e.type == "outcome") {
      Outcome(d);
      return;
    }
    if (e.type != "decision")
      return;
    ++r_.decisions;
    if (e.decision_seq != 0 && e.extra.contains("approval_id")) {
      Answer(d);
    } else {
      DecideEntry(d);
    }
  }

 private:
  ReplayedDecision Start(const audit::LogEntry& e) {
    ReplayedDecision out;
    out.seq = e.seq;
    out.syscall = e.syscall;
    out.agent = e.agent;
    out.run = e.run;
    out.target = e.target;
    out.recorded = KeyOf(e);
    auto it = diverged_runs_.find(e.run);
    if (it != diverged_runs_.end())
      out.diverged_after = it->second;
    return out;
  }

  void Skip(ReplayedDecision out, Status why) {
    out.status = ReplayStatus::kSkipped;
    out.skip = std::move(why);
    Finish(std::move(out));
  }

  void Finish(ReplayedDecision out) {
    switch (out.status) {
      case ReplayStatus::kSame:
        ++r_.same;
        break;
      case ReplayStatus::kChanged:
        ++r_.changed;
        ++r_.transitions[out.recorded.Short() + " → " + out.replayed.Short()];
        break;
      case ReplayStatus::kSkipped:
        ++r_.skipped;
        break;
      case ReplayStatus::kUnknown:
        ++r_.unknown;
        break;
    }
    if (out.diverged_after > 0)
      ++r_.diverged;
    if (out.behavior >= 0)
      ++r_.substituted;
    if (out.status != ReplayStatus::kSame || o_.keep_same || out.diverged_after > 0 ||
        out.behavior >= 0) {
      r_.decisions_out.push_back(std::move(out));
    }
  }

  void DecideEntry(Decoded& d) {
    const audit::LogEntry& e = d.e;
    ReplayedDecision out = Start(e);
    if (!d.skip.ok())
      return Skip(std::move(out), d.skip);
    if (!o_.fork && e.policy_hash != s_.policy()->hash()) {
      return Skip(std::move(out), Status(Reason::kReplayPolicyMismatch,
                                         "recorded under policy " + e.policy_hash.substr(0, 12) +
                                             ", not the replayed " +
                                             std::string(s_.policy()->hash()).substr(0, 12)));
    }
    clock_.Set(e.time_ms);
    facts_.entry = &e;
    std::unique_ptr<OpenCall> c;
    if (!d.parse.ok()) {
      out.replayed = KeyOf(Decision::Deny("schema", d.parse));
    } else {
      c = std::make_unique<OpenCall>(std::move(*d.call));
      c->target = e.target;
      pipeline_.Decide(c->ctx, s_);
      out.replayed = KeyOf(c->ctx.decision);
      c->replayed = out.replayed;
    }
    if (e.verdict == "require_approval") {
      // The first entry of an approval: the person's answer comes in a later entry.
      Classify(&out);
      if (c)
        awaiting_answer_[e.seq] = std::move(c);
      return Finish(std::move(out));
    }
    Settle(e, std::move(c), &out);
  }

  // The entry that records a person's answer to an earlier require_approval (decision_seq).
  void Answer(Decoded& d) {
    const audit::LogEntry& e = d.e;
    ReplayedDecision out = Start(e);
    auto it = awaiting_answer_.find(e.decision_seq);
    if (it == awaiting_answer_.end()) {
      return Skip(std::move(out), Status(Reason::kNotFound, "its approval request (entry " +
                                                                std::to_string(e.decision_seq) +
                                                                ") was not replayed"));
    }
    std::unique_ptr<OpenCall> c = std::move(it->second);
    awaiting_answer_.erase(it);
    // Asked again, the kernel asks the person again, and the person answers as recorded; a
    // replayed allow or deny needs nobody.
    out.replayed = c->replayed.verdict == Verdict::kRequireApproval ? KeyOf(e) : c->replayed;
    Settle(e, std::move(c), &out);
  }

  void Classify(ReplayedDecision* out) {
    if (out->replayed.reason == Reason::kReplayFactUnknown) {
      out->status = ReplayStatus::kUnknown;
    } else {
      out->status = out->replayed == out->recorded ? ReplayStatus::kSame : ReplayStatus::kChanged;
    }
  }

  void Diverge(const std::string& run, int64_t seq) { diverged_runs_.emplace(run, seq); }

  // Kernel::Revoke wrote the store, then this event: from here on the replay's private store
  // refuses the block as the real one did (the capability stage reads FirstRevoked).
  void Revoke(const audit::LogEntry& e) {
    auto id = e.extra.find("revocation_id");
    if (id == e.extra.end() || !id->is_string()) {
      r_.warnings.push_back("entry " + std::to_string(e.seq) +
                            ": token.revoke names no revocation_id; it is not replayed");
      return;
    }
    Status st = s_.store().RevokeToken(id->get<std::string>(), "replayed", e.time_ms);
    if (!st.ok())
      r_.warnings.push_back("entry " + std::to_string(e.seq) + ": " + st.ToString());
  }

  // Final verdicts: keeps the call open for its outcome, or accounts for an effect that history
  // and the replay disagree on.
  void Settle(const audit::LogEntry& e, std::unique_ptr<OpenCall> c, ReplayedDecision* out) {
    Classify(out);
    const bool now =
        out->replayed.verdict == Verdict::kAllow && out->status != ReplayStatus::kUnknown;
    const bool then = e.verdict == "allow";
    const bool reserved = c != nullptr && c->ctx.reservation.has_value();
    if (now && then) {
      if (o_.behavior != nullptr) {
        c->behavior = o_.behavior->Match(e.seq, e.syscall, e.agent, e.run, e.target);
        if (c->behavior != nullptr)
          out->behavior = static_cast<int>(c->behavior->index);
      }
      open_[e.seq] = std::move(c);
    } else if (now) {
      // Refused in history, allowed now: nobody knows what the effect would have returned. It is
      // charged what it reserved (the most it could have used) and its run diverges.
      if (reserved)
        s_.ledger().Settle(*c->ctx.reservation, c->ctx.reserve).IgnoreError();
      out->effect = "unknown";
      Diverge(e.run, e.seq);
    } else {
      if (reserved)
        s_.ledger().Cancel(*c->ctx.reservation).IgnoreError();
      if (then) {
        dropped_.insert(e.seq);  // its recorded outcome does not happen under this replay
        out->effect = out->status == ReplayStatus::kUnknown ? "unknown" : "dropped";
        Diverge(e.run, e.seq);
      } else if (out->replayed.verdict == Verdict::kRequireApproval) {
        out->effect = "unknown";  // a person might have approved it
        Diverge(e.run, e.seq);
      }
    }
    Finish(std::move(*out));
  }

  void Outcome(Decoded& d) {
    const audit::LogEntry& e = d.e;
    if (dropped_.erase(e.decision_seq) != 0)
      return;
    auto it = open_.find(e.decision_seq);
    if (it == open_.end()) {
      // Its decision was skipped: the recorded result stands (no budget to settle).
      if (e.verdict == "allow" && !e.blob.empty())
        MintRecorded(d, nullptr);
      return;
    }
    std::unique_ptr<OpenCall> c = std::move(it->second);
    open_.erase(it);
    clock_.Set(e.time_ms);
    const BehaviorRule* rule = c->behavior;
    bool ok = e.verdict == "allow";
    budget::Amounts usage = UsageOf(e.usage);
    if (rule != nullptr) {
      if (rule->usage)
        usage = *rule->usage;
      if (rule->fail)
        ok = false;
      else if (rule->labels || rule->content)
        ok = true;
    }
    if (c->ctx.reservation)
      s_.ledger().Settle(*c->ctx.reservation, usage).IgnoreError();
    if (!ok)
      return;
    if (c->call.kind == SyscallKind::kAgentSpawn) {
      // The one effect on kernel state later decisions read directly: the child's capability,
      // account and deadline. It touches only this replay's private store and ledger.
      Result<EffectOutput> spawned = HandlerFor(SyscallKind::kAgentSpawn).Perform(c->ctx, s_);
      if (!spawned.ok()) {
        r_.warnings.push_back(
            "entry " + std::to_string(e.seq) +
            ": the replay could not re-create the spawned agent: " + spawned.status().ToString());
      }
    }
    if (!e.blob.empty())
      MintRecorded(d, c.get());
  }

  // Brings the handle an outcome names into the private store, with the recorded labels (or the
  // Behavior's) joined with the replayed call's inputs.
  void MintRecorded(const Decoded& d, const OpenCall* c) {
    const audit::LogEntry& e = d.e;
    store::HandleRecord h;
    if (d.handle) {
      h = *d.handle;
    } else {
      h.id = e.blob;
      h.owner_agent = e.agent;
      h.run = e.run;
      h.content_hash = e.res_hash;
    }
    const BehaviorRule* rule = c != nullptr ? c->behavior : nullptr;
    labels::LabelSet l;
    if (rule != nullptr && rule->labels) {
      l = *rule->labels;
    } else {
      Result<labels::LabelSet> parsed = labels::LabelSet::Parse(e.labels);
      if (!parsed.ok()) {
        r_.warnings.push_back("entry " + std::to_string(e.seq) +
                              ": recorded labels do not parse; handle " + e.blob +
                              " is left out of the replay");
        return;
      }
      l = std::move(parsed).value();
    }
    if (c != nullptr && !KeepsOwnLabels(c->call.kind))
      l.JoinWith(c->ctx.input_labels);
    h.labels = l.ToJson();
    if (rule != nullptr && rule->content) {
      h.sealed = s_.SealHandleContent(*rule->content, h.id);
      h.content_hash = crypto::Sha256(*rule->content).Hex();
      substituted_.insert(h.id);
    }
    Status st = s_.store().PutHandle(h, store::Sync::kFull);
    if (!st.ok() && st.reason() != Reason::kAlreadyExists) {
      r_.warnings.push_back("entry " + std::to_string(e.seq) + ": " + st.ToString());
    }
  }

  const ReplayOptions& o_;
  Services& s_;
  FakeClock& clock_;
  Facts& facts_;
  ReplayReport& r_;
  Pipeline pipeline_;
  std::unordered_map<int64_t, std::unique_ptr<OpenCall>> open_;             // by decision seq
  std::unordered_map<int64_t, std::unique_ptr<OpenCall>> awaiting_answer_;  // by request seq
  std::unordered_set<int64_t> dropped_;
  std::unordered_map<std::string, int64_t> diverged_runs_;  // run → first diverging decision
  std::unordered_set<std::string> substituted_;             // handles whose bytes a rule replaced
};

}  // namespace

Result<ReplayReport> ReplayLog(store::Store& log, crypto::SigningKey identity,
                               const ReplayOptions& options) {
  if (!options.policy)
    return Status(Reason::kInvalidArgument, "a replay needs a policy");
  const auto started = std::chrono::steady_clock::now();
  ReplayReport report;
  report.policy_hash = std::string(options.policy->hash());
  Decoder decoder(log, crypto::AeadKey::DeriveFrom(identity, "payloads"));

  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> scratch,
                          store::OpenSqliteStore(":memory:"));
  FakeClock clock(0);
  KernelOptions ko;
  ko.policy = options.policy;
  ko.clock = &clock;
  ko.durability = audit::Durability::kNone;
  ko.notice = [&report, &options](const std::string& m) {
    report.warnings.push_back(m);
    if (options.notice)
      options.notice(m);
  };
  // Never Start()ed: no log writer, so nothing it does can reach a log.
  Services services(std::move(ko), std::move(scratch),
                    std::make_unique<crypto::SigningKey>(std::move(identity)));
  services.SetPolicy(options.policy);
  Facts facts;
  RecordedEnvironment env(&facts);
  services.UseEnvironment(&env);
  Replayer replayer(options, services, clock, facts, report);
  {
    const CallPin pin(services);  // one policy + vault snapshot for the whole replay
    auto launch = [&](int64_t from) {
      return std::async(
          options.decode_threads > 0 ? std::launch::async : std::launch::deferred,
          [&decoder, from, &options] { return decoder.Read(from, options.decode_threads); });
    };
    std::future<Result<std::vector<Decoded>>> next = launch(1);
    // A processed chunk is freed beside the next one's decisions: its JSON trees are thousands of
    // small blocks allocated by a decoding thread, and freeing them was ~10% of the decide thread.
    std::future<void> disposed;
    while (true) {
      Result<std::vector<Decoded>> chunk = next.get();
      if (!chunk.ok())
        return chunk.status();
      const bool more = chunk->size() == static_cast<size_t>(kChunkRows);
      if (more)
        next = launch(chunk->back().e.seq + 1);
      for (Decoded& d : *chunk)
        replayer.Process(d);
      if (disposed.valid())
        disposed.get();
      disposed = std::async(
          options.decode_threads > 0 ? std::launch::async : std::launch::deferred,
          [done = std::move(chunk)]() mutable { std::vector<Decoded> drop = std::move(*done); });
      if (!more)
        break;
    }
  }
  report.elapsed_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
  return report;
}

}  // namespace custos::kernel
