// agent.spawn / agent.send / agent.recv. A child's capabilities are a subset of its parent's and
// its budget is carved out of the parent's account; messages travel as handles, so their labels
// travel with them.

#include "kernel/handlers/handlers.h"

namespace custos::kernel {
namespace {

// 9999-12-31T23:59:59Z: later deadlines (an unlimited wall clock) add no time check.
constexpr int64_t kLastDatalogDateMs = 253402300799000;

std::string DatalogString(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

// The block agent.spawn appends to the parent's token for the child (docs/spec/
// capability-token.md "Attenuation by agent.spawn"): only this agent, only these kinds, only
// targets under these prefixes, and never past the child's wall-clock deadline.
Result<std::string> SpawnBlock(const std::string& child, SyscallSet syscalls,
                               const std::vector<std::string>& prefixes, int64_t deadline_ms) {
  for (const std::string& p : prefixes) {
    for (char c : p) {
      if (static_cast<unsigned char>(c) < 0x20) {
        return Status(Reason::kSchemaViolation, "a resource prefix contains a control character",
                      "/args/resources");
      }
    }
  }
  std::string b = "check if agent(" + DatalogString(child) + ");\n";
  std::string ops;
  for (SyscallKind k : AllSyscalls()) {
    if (syscalls.Contains(k)) {
      ops += (ops.empty() ? "" : " or ") + std::string("operation(") +
             DatalogString(SyscallName(k)) + ")";
    }
  }
  b += ops.empty() ? "reject if operation($op);\n" : "check if " + ops + ";\n";
  if (!prefixes.empty()) {
    b += "check if ";
    for (size_t i = 0; i < prefixes.size(); ++i) {
      b += (i == 0 ? "" : " or ") + std::string("resource($r), $r.starts_with(") +
           DatalogString(prefixes[i]) + ")";
    }
    b += ";\n";
  }
  if (deadline_ms < kLastDatalogDateMs) {
    b += "check if time($time), $time <= " + DatalogDate(deadline_ms) + ";\n";
  }
  return b;
}

class AgentSpawnHandler final : public EffectHandler {
 public:
  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    const std::string& child = ctx.target;
    // The name may be a policy agent (spawn lists name templates); what must not exist yet is a
    // child of that name in this run, or the caller itself. An agent that already acted in the
    // run has a budget account, so OpenChild below refuses it too.
    CUSTOS_ASSIGN_OR_RETURN(std::optional<store::AgentRecord> existing,
                            s.store().GetAgent(ctx.call.run, child));
    if (existing || child == ctx.call.agent) {
      return Status(Reason::kAlreadyExists, "agent '" + child + "' already exists in this run",
                    "/target");
    }
    AgentState state{child, ctx.principal, {}, ctx.call.agent};
    const Json& names = ctx.call.args.at("syscalls");
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string at = "/args/syscalls/" + std::to_string(i);
      if (!names[i].is_string())
        return Status(Reason::kSchemaViolation, "syscall names are strings", at);
      std::optional<SyscallKind> k = SyscallFromName(names[i].get<std::string>());
      if (!k)
        return Status(Reason::kUnknownSyscall, "unknown syscall in spawn", at);
      // Attenuation only: a child never holds what its parent does not.
      if (!ctx.syscalls.Contains(*k)) {
        return Status(Reason::kCapabilityMissing,
                      "parent '" + ctx.call.agent + "' cannot grant " +
                          names[i].get<std::string>() + " (it does not hold it)",
                      at);
      }
      state.syscalls.Add(*k);
    }
    budget::Amounts carve;
    Json carved = Json::object();
    if (ctx.call.args.contains("budget")) {
      const Json& b = ctx.call.args.at("budget");
      for (auto it = b.begin(); it != b.end(); ++it) {
        const std::string at = "/args/budget/" + JsonPointerToken(it.key());
        int r = -1;
        for (int i = 0; i < budget::kResourceCount; ++i) {
          if (budget::ResourceName(static_cast<budget::Resource>(i)) == it.key())
            r = i;
        }
        if (r < 0)
          return Status(Reason::kUnknownField, "unknown budget resource '" + it.key() + "'", at);
        if (!it->is_number_integer() || it->get<int64_t>() < 0) {
          return Status(Reason::kSchemaViolation, "budget amounts are non-negative integers", at);
        }
        carve.v[r] = it->get<int64_t>();
        carved[it.key()] = carve.v[r];
      }
    }
    // The child's wall clock cannot outlive the parent's remaining time. It is a deadline, not
    // carved from the parent (see Services::SetWallDeadline).
    CUSTOS_ASSIGN_OR_RETURN(budget::AccountStatus parent, s.ledger().Get(ctx.account));
    const int64_t parent_left = std::max<int64_t>(0, s.WallRemainingMs(ctx.account, parent));
    const int64_t asked = carve[budget::Resource::kWallMs];
    const int64_t wall = asked == 0 ? parent_left : std::min(asked, parent_left);
    carve[budget::Resource::kWallMs] = 0;
    carved["wall_ms"] = wall;
    const int64_t now = s.clock().NowMillis();
    const int64_t deadline = wall >= budget::kUnlimited - now ? budget::kUnlimited : now + wall;
    // The child's token: the parent's, attenuated. Biscuit blocks only add checks, so the child
    // can never hold more than the parent's token grants, whatever this block says.
    std::vector<std::string> prefixes;
    if (ctx.call.args.contains("resources")) {
      const Json& rs = ctx.call.args.at("resources");
      for (size_t i = 0; i < rs.size(); ++i) {
        if (!rs[i].is_string() || rs[i].get_ref<const std::string&>().empty()) {
          return Status(Reason::kSchemaViolation, "resource prefixes are non-empty strings",
                        "/args/resources/" + std::to_string(i));
        }
        prefixes.push_back(rs[i].get<std::string>());
      }
    }
    int64_t token_deadline = deadline;
    if (ctx.call.args.contains("ttl_ms")) {
      const int64_t ttl = ctx.call.args.at("ttl_ms").get<int64_t>();
      if (ttl <= 0) {
        return Status(Reason::kSchemaViolation, "ttl_ms is a positive integer", "/args/ttl_ms");
      }
      token_deadline = std::min(token_deadline, now + ttl);
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string block,
                            SpawnBlock(child, state.syscalls, prefixes, token_deadline));
    if (ctx.token == nullptr) {
      return Status(Reason::kInternal, "agent.spawn reached its effect without a verified token");
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string child_token,
                            s.tokens().Attenuate(ctx.call.token, *ctx.token, block));
    budget::AccountKey child_key{child, ctx.call.run};
    CUSTOS_RETURN_IF_ERROR(s.ledger().OpenChild(ctx.account, child_key, carve));
    s.SetWallDeadline(child_key, deadline);
    if (Status st = s.RegisterChild(ctx.call.run, state, carved); !st.ok()) {
      // The child never came to be: give the carve back to the parent.
      s.ledger().CloseChild(child_key).IgnoreError();
      return st;
    }
    EffectOutput out;
    Json granted = Json::array();
    for (SyscallKind k : AllSyscalls()) {
      if (state.syscalls.Contains(k))
        granted.push_back(SyscallName(k));
    }
    out.frame = {{"agent", child},
                 {"parent", ctx.call.agent},
                 {"syscalls", granted},
                 {"budget", carved},
                 {"token", child_token}};
    return out;
  }
};

class AgentSendHandler final : public EffectHandler {
 public:
  bool CarriesRawData(const SyscallContext& ctx) const override {
    return ctx.call.args.contains("message");
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    if (!s.FindAgent(*ctx.policy, ctx.call.run, ctx.target).ok()) {
      return Status(Reason::kUnknownAgent, "no agent '" + ctx.target + "' in run " + ctx.call.run,
                    "/target");
    }
    std::string content;
    if (ctx.call.args.contains("message")) {
      content = ctx.call.args.at("message").get<std::string>();
    } else if (ctx.input_handles.size() == 1) {
      CUSTOS_ASSIGN_OR_RETURN(content, s.Unseal(ctx.input_handles[0]));
    } else {
      return Status(Reason::kSchemaViolation,
                    "agent.send needs 'message' or exactly one input handle", "/args/message");
    }
    if (content.size() > s.options().max_effect_bytes) {
      return Status(Reason::kPayloadTooLarge, "message exceeds the effect size cap",
                    "/args/message");
    }
    // The recipient gets its own handle with the same content and (at least) the same labels.
    CUSTOS_ASSIGN_OR_RETURN(store::HandleRecord h,
                            s.MintHandle(ctx.target, ctx.call.run, "message", content,
                                         ctx.input_labels, Json{{"from", ctx.call.agent}}));
    store::MailMessage m;
    m.run = ctx.call.run;
    m.from_agent = ctx.call.agent;
    m.to_agent = ctx.target;
    m.handle = h.id;
    m.sent_ms = ctx.now_ms;
    CUSTOS_RETURN_IF_ERROR(s.store().SendMail(m));
    EffectOutput out;
    out.frame = {{"to", ctx.target}, {"size", content.size()}};
    return out;
  }
};

class AgentRecvHandler final : public EffectHandler {
 public:
  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    CUSTOS_ASSIGN_OR_RETURN(std::optional<store::MailMessage> m,
                            s.store().RecvMail(ctx.call.run, ctx.call.agent));
    if (!m)
      return Status(Reason::kMailboxEmpty, "no message is waiting for " + ctx.call.agent);
    CUSTOS_ASSIGN_OR_RETURN(store::HandleRecord h,
                            s.LoadHandle(m->handle, ctx.call.agent, ctx.call.run));
    CUSTOS_ASSIGN_OR_RETURN(std::string content, s.Unseal(h));
    CUSTOS_ASSIGN_OR_RETURN(labels::LabelSet l, labels::LabelSet::FromJson(h.labels));
    EffectOutput out;
    out.handle = h;
    out.frame = {{"from", m->from_agent}, {"handle", h.id}, {"labels", l.ToJson()}};
    if (l.confidentiality() != labels::Confidentiality::kSecret) {
      out.frame["message"] = TextFrame(content, s.options().max_frame_bytes);
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<EffectHandler> MakeAgentSpawnHandler() {
  return std::make_unique<AgentSpawnHandler>();
}
std::unique_ptr<EffectHandler> MakeAgentSendHandler() {
  return std::make_unique<AgentSendHandler>();
}
std::unique_ptr<EffectHandler> MakeAgentRecvHandler() {
  return std::make_unique<AgentRecvHandler>();
}

}  // namespace custos::kernel
