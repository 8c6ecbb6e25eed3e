// custos policy check / custos explain.

#include <cstdio>
#include <cstdlib>

#include "cli/cli.h"
#include "cli/kernel_session.h"
#include "custos/kernel/token_wallet.h"
#include "custos/policy/policy.h"

namespace custos::cli {

void RegisterPolicy(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* policy = app.add_subcommand("policy", "Work with policy files");
  policy->require_subcommand(1);
  auto* check = policy->add_subcommand("check", "Validate a policy file (TOML or JSON)");
  static std::string check_file;
  check->add_option("FILE", check_file, "Policy file")->required();
  check->callback([exit_code] {
    Result<std::shared_ptr<const policy::Policy>> p = policy::Policy::LoadFile(check_file);
    if (!p.ok()) {
      *exit_code = Fail(p.status());
      return;
    }
    std::printf("ok: policy '%.*s' (%s), sha256 %.*s%s\n", static_cast<int>((*p)->name().size()),
                (*p)->name().data(), check_file.c_str(), static_cast<int>((*p)->hash().size()),
                (*p)->hash().data(), (*p)->observe_mode() ? ", observe mode" : "");
    *exit_code = 0;
  });

  auto* explain = app.add_subcommand(
      "explain",
      "Say why an action would be allowed or denied, without performing or recording it");
  static std::string policy_file, agent, run = "explain", kind, target, labels_csv, args_json;
  static std::vector<std::string> inputs;
  explain->add_option("--policy", policy_file, "Policy file")->required();
  explain->add_option("--agent", agent, "Agent name")->required();
  explain->add_option("--kind", kind, "Syscall kind, e.g. file.read")->required();
  explain->add_option("--target", target, "Target (path, URL, tool, model, secret, ...)");
  explain->add_option("--run", run, "Run id");
  explain->add_option("--labels", labels_csv, "Labels of the data involved, comma separated");
  explain->add_option("--args", args_json, "Syscall args as a JSON object");
  auto* json_out = explain->add_flag("--json")->description("Print the decision as JSON");
  explain->callback([&g, exit_code, json_out] {
    Json call = {{"agent", agent}, {"run", run}, {"kind", kind}};
    if (!target.empty())
      call["target"] = target;
    if (!args_json.empty()) {
      Result<Json> a = ParseUntrustedJson(args_json);
      if (!a.ok()) {
        *exit_code = Fail(a.status().WithAtPrefix("--args"));
        return;
      }
      call["args"] = *a;
    }
    if (!labels_csv.empty()) {
      Json l = Json::array();
      size_t start = 0;
      while (start <= labels_csv.size()) {
        size_t comma = labels_csv.find(',', start);
        if (comma == std::string::npos)
          comma = labels_csv.size();
        if (comma > start)
          l.push_back(labels_csv.substr(start, comma - start));
        start = comma + 1;
      }
      call["labels"] = l;
    }
    Result<kernel::Syscall> sc = kernel::ParseSyscall(call);
    if (!sc.ok()) {
      *exit_code = Fail(sc.status());
      return;
    }
    // A scratch kernel: explain never touches the user's log.
    Result<KernelSession> session = KernelSession::OpenScratch(policy_file);
    if (!session.ok()) {
      *exit_code = Fail(session.status());
      return;
    }
    (void)g;
    // Explain decides as if the agent presented the token the policy grants it (unless the
    // request names one), so the answer is about the policy, not about a missing token.
    kernel::TokenWallet wallet(session->kernel());
    wallet.Attach(*sc);
    Decision d = session->kernel().Explain(*sc);
    if (*json_out) {
      kernel::SyscallResult r;
      r.id = "explain";
      r.decision = d;
      Json j = r.ToJson();
      j.erase("receipt");
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s %s %s by %s\n", std::string(VerdictName(d.verdict)).c_str(), kind.c_str(),
                  target.c_str(), agent.c_str());
      std::printf("  stage:  %s\n  rule:   %s\n  reason: %.*s\n", d.stage.c_str(),
                  d.rule.empty() ? "-" : d.rule.c_str(),
                  static_cast<int>(ReasonName(d.reason).size()), ReasonName(d.reason).data());
      if (!d.explanation.empty())
        std::printf("  why:    %s\n", d.explanation.c_str());
      if (!d.suggestion.empty())
        std::printf("  to allow it, a policy could say:\n%s\n", d.suggestion.c_str());
    }
    *exit_code = d.allowed() ? 0 : ExitCodeOf(d.reason);
  });
}

}  // namespace custos::cli
