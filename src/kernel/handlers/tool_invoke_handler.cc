// tool.invoke: runs the tool's configured command with an empty environment, the call's arguments
// as JSON on standard input, a timeout and output caps. Its output is labeled as the tool's
// configuration says (untrusted + external by default) and names its source.
// A target owned by a registered ToolProvider (tool_provider.h, e.g. an MCP server behind the
// gateway) is performed by that provider instead, still only here, after the recorded decision.

#include <optional>

#include "custos/effects/command.h"
#include "kernel/handlers/handlers.h"
#include "kernel/handlers/secret_refs.h"
#include "kernel/stream_redactor.h"

namespace custos::kernel {
namespace {

constexpr size_t kMaxStderrExcerpt = 512;

labels::LabelSet ToolLabels(const policy::ToolSpec& tool) {
  labels::LabelSet l = labels::LabelSet::Untrusted();
  l.AddTag("external");
  if (!tool.labels.empty()) {
    Result<labels::LabelSet> configured = labels::LabelSet::Parse(tool.labels);
    if (configured.ok())
      l = *configured;  // validated at policy load
  }
  l.AddTag("source:tool:" + tool.name);
  return l;
}

class ToolInvokeHandler final : public EffectHandler {
 public:
  Status Resolve(SyscallContext& ctx, Services& s) const override {
    ctx.target = ctx.call.target;
    if (std::shared_ptr<ToolProvider> p = s.FindToolProvider(ctx.target)) {
      CUSTOS_RETURN_IF_ERROR(p->Check(ctx.target));
      // Secret handle references are checked before anything is decided allowed.
      return CheckSecretRefs(ctx.call.args.value("arguments", Json::object()), ctx, s,
                             p->SecretDestination(ctx.target));
    }
    return Status::Ok();
  }

  bool CarriesRawData(const SyscallContext& ctx) const override {
    return ctx.call.args.contains("arguments");
  }

  void Egress(const SyscallContext& ctx, Services& s, std::string* out) const override {
    if (ctx.call.args.contains("arguments"))
      *out += ctx.call.args["arguments"].dump();
    if (s.FindToolProvider(ctx.target) != nullptr)
      return;  // a provider receives the arguments only, never the inputs' contents
    for (const store::HandleRecord& h : ctx.input_handles) {
      Result<std::string> c = s.Unseal(h);
      if (c.ok())
        *out += *c;
    }
  }

  budget::Amounts MaxCost(const SyscallContext&, Services&) const override {
    budget::Amounts a;
    a[budget::Resource::kToolCalls] = 1;
    return a;
  }

  Result<EffectOutput> Perform(SyscallContext& ctx, Services& s) const override {
    if (std::shared_ptr<ToolProvider> p = s.FindToolProvider(ctx.target))
      return PerformByProvider(*p, ctx, s);
    const policy::ToolSpec* tool = ctx.policy->FindTool(ctx.target);
    if (tool == nullptr || tool->command.empty()) {
      return Status(Reason::kToolNotAllowed, "tool '" + ctx.target + "' has no registered command");
    }
    Json input = {{"tool", tool->name},
                  {"arguments", ctx.call.args.value("arguments", Json::object())}};
    Json inputs = Json::array();
    for (const store::HandleRecord& h : ctx.input_handles) {
      CUSTOS_ASSIGN_OR_RETURN(std::string c, s.Unseal(h));
      inputs.push_back({{"handle", h.id}, {"content", c}});
    }
    if (!inputs.empty())
      input["inputs"] = inputs;
    effects::CommandOptions opt;
    opt.timeout = std::chrono::milliseconds(tool->timeout_ms);
    opt.max_stdout_bytes = s.options().max_effect_bytes;
    opt.max_stderr_bytes = 64 * 1024;
    opt.inherit_env = {"PATH", "LANG"};
    // A watcher (custosd streaming, execute_hooks.h) sees the byte count and, unless the output
    // is secret, its text redacted as it comes; the vault stays pinned for the whole call.
    const ExecuteHooks* hooks = ctx.hooks;
    const labels::LabelSet out_labels = ctx.input_labels.Join(ToolLabels(*tool));
    const std::shared_ptr<const SecretVault> vault = s.vault();
    std::optional<StreamRedactor> redactor;
    if (hooks != nullptr && hooks->on_output &&
        out_labels.confidentiality() != labels::Confidentiality::kSecret) {
      redactor.emplace(
          vault->scanner(), s.options().max_frame_bytes,
          [hooks, &out_labels](std::string_view text) { hooks->on_output(text, out_labels); });
    }
    int64_t produced = 0;
    if (hooks != nullptr && (hooks->on_output_bytes || redactor)) {
      opt.on_stdout = [hooks, &redactor, &produced](std::string_view bytes) {
        produced += static_cast<int64_t>(bytes.size());
        if (redactor)
          redactor->Feed(bytes);
        if (hooks->on_output_bytes)
          hooks->on_output_bytes(produced);
      };
    }
    CUSTOS_ASSIGN_OR_RETURN(effects::CommandResult r,
                            effects::RunCommand(tool->command, input.dump(), opt));
    if (redactor && !r.signaled && r.exit_code == 0)
      redactor->Finish();  // complete now: the held-back tail is redacted as a whole
    if (r.signaled || r.exit_code != 0) {
      std::string why = r.signaled ? "killed by signal " + std::to_string(r.signal)
                                   : "exited with status " + std::to_string(r.exit_code);
      const std::string excerpt = r.stderr_data.substr(0, kMaxStderrExcerpt);
      return Status(Reason::kEffectFailed,
                    "tool '" + tool->name + "' " + why + (excerpt.empty() ? "" : ": " + excerpt));
    }
    EffectOutput out;
    out.kind = "tool";
    out.labels = ToolLabels(*tool);
    out.usage[budget::Resource::kToolCalls] = 1;
    out.meta = {{"tool", tool->name}, {"duration_ms", r.duration.count()}};
    out.frame = TextFrame(r.stdout_data, s.options().max_frame_bytes);
    out.frame["tool"] = tool->name;
    out.frame["exit_code"] = r.exit_code;
    out.content = std::move(r.stdout_data);
    return out;
  }

 private:
  static Result<EffectOutput> PerformByProvider(ToolProvider& p, SyscallContext& ctx, Services& s) {
    CUSTOS_ASSIGN_OR_RETURN(
        Json arguments, SubstituteSecretRefsInJson(ctx.call.args.value("arguments", Json::object()),
                                                   ctx, s, p.SecretDestination(ctx.target)));
    ToolCall call{ctx.target, std::move(arguments), ctx.call.agent, ctx.call.run};
    CUSTOS_ASSIGN_OR_RETURN(ToolOutput r, p.Invoke(call));
    if (r.content.size() > s.options().max_effect_bytes) {
      return Status(Reason::kPayloadTooLarge,
                    "tool '" + ctx.target + "' returned more than the effect size cap");
    }
    EffectOutput out;
    out.kind = "tool";
    out.labels = std::move(r.labels);
    out.usage[budget::Resource::kToolCalls] = 1;
    out.meta = std::move(r.meta);
    out.meta["tool"] = ctx.target;
    out.frame = std::move(r.frame);
    out.content = std::move(r.content);
    return out;
  }
};

}  // namespace

std::unique_ptr<EffectHandler> MakeToolInvokeHandler() {
  return std::make_unique<ToolInvokeHandler>();
}

}  // namespace custos::kernel
