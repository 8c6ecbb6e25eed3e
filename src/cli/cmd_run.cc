// custos run: executes an agent script (JSON lines of syscalls) against a policy and prints one
// result per line. The way to use the kernel without writing C++.

#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "cli/config.h"
#include "cli/kernel_session.h"
#include "custos/kernel/token_wallet.h"

namespace custos::cli {

void RegisterRun(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* run =
      app.add_subcommand("run", "Run an agent script of syscalls (JSON lines) through the kernel");
  static std::string policy_file, script = "-", agent, run_id, durability;
  run->add_option("--policy", policy_file, "Policy file")->required();
  run->add_option("--script", script, "Script file, or - for standard input (default)");
  run->add_option("--agent", agent, "Agent for lines that name none");
  run->add_option("--run", run_id, "Run id for lines that name none");
  run->add_option(
         "--durability", durability,
         "none | group | fsync (default: [log] durability in DATA_DIR/config.toml, else group)")
      ->check(CLI::IsMember({"none", "group", "fsync"}));
  auto* fail_on_deny =
      run->add_flag("--fail-on-deny")->description("Exit non-zero if any syscall was denied");
  run->callback([&g, exit_code, fail_on_deny] {
    Result<Config> config = LoadConfig(ResolveDataDir(g));
    if (!config.ok()) {
      *exit_code = Fail(config.status());
      return;
    }
    Result<audit::Durability> d = durability.empty() ? Result<audit::Durability>(config->durability)
                                                     : audit::ParseDurability(durability);
    if (!d.ok()) {
      *exit_code = Fail(d.status());
      return;
    }
    Result<KernelSession> session = KernelSession::Open(ResolveDataDir(g), policy_file, *d);
    if (!session.ok()) {
      *exit_code = Fail(session.status());
      return;
    }
    std::ifstream file;
    std::istream* in = &std::cin;
    if (script != "-") {
      file.open(script);
      if (!file) {
        *exit_code = Fail(Status(Reason::kIoError, "cannot read script", script));
        return;
      }
      in = &file;
    }
    std::string line;
    int64_t lineno = 0, denied = 0;
    kernel::TokenWallet wallet(session->kernel());
    while (std::getline(*in, line)) {
      ++lineno;
      if (line.empty() || line[0] == '#')
        continue;
      std::string text = line;
      // Fill in the agent and run for scripts that leave them to the command line, and the
      // capability token for lines that carry none (granted from the policy, or the token a
      // spawn returned for a child).
      Result<Json> j = ParseUntrustedJson(line);
      if (j.ok() && j->is_object()) {
        if (!agent.empty() && !j->contains("agent"))
          (*j)["agent"] = agent;
        if (!run_id.empty() && !j->contains("run"))
          (*j)["run"] = run_id;
        wallet.Attach(*j);
        text = j->dump();
      }
      kernel::SyscallResult r = session->kernel().ExecuteJson(text);
      if (j.ok())
        wallet.Observe(*j, r);
      if (!r.decision.allowed())
        ++denied;
      Json out = r.ToJson();
      out["line"] = lineno;
      std::printf("%s\n", out.dump().c_str());
      std::fflush(stdout);
    }
    Result<audit::Appended> committed = session->kernel().Commit();
    if (!committed.ok()) {
      *exit_code = Fail(committed.status());
      return;
    }
    std::fprintf(stderr, "custos: %lld syscalls, %lld denied; log head %lld %s\n",
                 static_cast<long long>(lineno), static_cast<long long>(denied),
                 static_cast<long long>(committed->seq), committed->hash.c_str());
    *exit_code = (*fail_on_deny && denied > 0) ? ExitCodeOf(Reason::kNoMatchingRule) : 0;
  });
}

}  // namespace custos::cli
