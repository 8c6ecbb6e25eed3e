// custos audit replay | fork-replay: re-decide the flight log with the kernel's pipeline
// (kernel/replay.h, docs/replay.md).

#include <cstdio>
#include <string>

#include "cli/cli.h"
#include "custos/crypto/key_store.h"
#include "custos/kernel/replay.h"
#include "custos/store/store.h"

namespace custos::cli {
namespace {

struct ReplayArgs {
  std::string dir;  // positional DATA_DIR, else --data-dir
  std::string policy;
  std::string behavior;
  bool json = false;
  bool all = false;
};

void PrintText(const kernel::ReplayReport& r, bool fork, const std::string& dir) {
  std::printf("%s of %s: %lld entries, %lld decisions under policy %.12s in %.1f ms\n",
              fork ? "fork-replay" : "replay", dir.c_str(), static_cast<long long>(r.entries),
              static_cast<long long>(r.decisions), r.policy_hash.c_str(), r.elapsed_us / 1000.0);
  std::printf("  same %lld, changed %lld, unknown %lld, skipped %lld",
              static_cast<long long>(r.same), static_cast<long long>(r.changed),
              static_cast<long long>(r.unknown), static_cast<long long>(r.skipped));
  if (r.diverged > 0)
    std::printf(", diverged %lld", static_cast<long long>(r.diverged));
  if (r.substituted > 0)
    std::printf(", results substituted %lld", static_cast<long long>(r.substituted));
  std::printf("\n");
  for (const kernel::ReplayedDecision& d : r.decisions_out) {
    const std::string head = "seq " + std::to_string(d.seq) + " " + d.syscall + " " +
                             d.target.substr(0, 60) + " (" + d.agent + "/" + d.run + ")";
    if (d.status == kernel::ReplayStatus::kSkipped) {
      std::printf("%s  skipped: %.*s: %s\n", head.c_str(),
                  static_cast<int>(ReasonName(d.skip.reason()).size()),
                  ReasonName(d.skip.reason()).data(), std::string(d.skip.message()).c_str());
      continue;
    }
    std::string line = head + "  " + d.recorded.Short();
    if (d.status != kernel::ReplayStatus::kSame)
      line += " → " + d.replayed.Short();
    if (d.status == kernel::ReplayStatus::kUnknown)
      line += "  [unknown: a fact history never observed]";
    if (!d.effect.empty())
      line += "  [effect " + d.effect + "]";
    if (d.behavior >= 0)
      line += "  [result from behavior[" + std::to_string(d.behavior) + "]]";
    if (d.diverged_after > 0)
      line += "  [diverged after seq " + std::to_string(d.diverged_after) + "]";
    std::printf("%s\n", line.c_str());
  }
  if (!r.transitions.empty()) {
    std::printf("transitions:\n");
    for (const auto& [t, n] : r.transitions)
      std::printf("  %s  ×%lld\n", t.c_str(), static_cast<long long>(n));
  }
  for (const std::string& w : r.warnings)
    std::printf("warning: %s\n", w.c_str());
}

int RunReplay(const GlobalOptions& g, const ReplayArgs& a, bool fork) {
  GlobalOptions where = g;
  if (!a.dir.empty())
    where.data_dir = a.dir;
  const std::filesystem::path dir = ResolveDataDir(where);
  const std::filesystem::path db = dir / "custos.db";
  if (!std::filesystem::exists(db))
    return Fail(Status(Reason::kNotFound, "no flight log at " + db.string()));
  Result<std::shared_ptr<const policy::Policy>> policy = policy::Policy::LoadFile(a.policy);
  if (!policy.ok())
    return Fail(policy.status());
  std::optional<kernel::Behavior> behavior;
  if (!a.behavior.empty()) {
    Result<kernel::Behavior> b = kernel::Behavior::LoadFile(a.behavior);
    if (!b.ok())
      return Fail(b.status());
    behavior = std::move(b).value();
  }
  Result<crypto::SigningKey> key =
      crypto::KeyStore::Load(dir / "identity.key", PassphraseFromEnv());
  if (!key.ok())
    return Fail(key.status());
  Result<std::unique_ptr<store::Store>> st = store::OpenSqliteStore(db);
  if (!st.ok())
    return Fail(st.status());
  kernel::ReplayOptions o;
  o.policy = *policy;
  o.fork = fork;
  o.behavior = behavior ? &*behavior : nullptr;
  o.keep_same = a.all;
  o.decode_threads = 2;
  Result<kernel::ReplayReport> r = kernel::ReplayLog(**st, std::move(key).value(), o);
  if (!r.ok())
    return Fail(r.status());
  if (a.json) {
    std::printf("%s\n", r->ToJson().dump().c_str());
  } else {
    PrintText(*r, fork, dir.string());
  }
  // A determinism check fails when a decision came out differently or could not be decided; a
  // fork is expected to differ.
  if (!fork && (r->changed > 0 || r->unknown > 0)) {
    if (!a.json) {
      std::fprintf(stderr, "custos: replay_mismatch: %lld decision(s) replay differently\n",
                   static_cast<long long>(r->changed + r->unknown));
    }
    return 10 + static_cast<int>(InfoOf(Reason::kReplayMismatch).cls);
  }
  return 0;
}

void AddCommon(CLI::App* cmd, ReplayArgs& a, const char* policy_help) {
  cmd->add_option("data_dir", a.dir, "Data directory whose log to replay (default: --data-dir)");
  cmd->add_option("--policy", a.policy, policy_help)->required();
  cmd->add_option("--behavior", a.behavior,
                  "JSON file of substitute effect results (docs/replay.md)");
  cmd->add_flag("--json", a.json, "Print the report as one JSON object");
  cmd->add_flag("--all", a.all, "List every decision, not only those that differ");
}

}  // namespace

void RegisterAuditReplay(CLI::App& app, GlobalOptions& g, int* exit_code) {
  CLI::App* audit = app.get_subcommand("audit");
  auto args = std::make_shared<ReplayArgs>();
  auto* replay = audit->add_subcommand(
      "replay", "Re-decide every recorded decision; report any that comes out differently");
  AddCommon(replay, *args, "The policy the log was recorded under");
  replay->callback([&g, args, exit_code] { *exit_code = RunReplay(g, *args, /*fork=*/false); });

  auto fargs = std::make_shared<ReplayArgs>();
  auto* fork = audit->add_subcommand(
      "fork-replay", "Re-decide the log under another policy; report what would change");
  AddCommon(fork, *fargs, "The other policy");
  fork->callback([&g, fargs, exit_code] { *exit_code = RunReplay(g, *fargs, /*fork=*/true); });
}

}  // namespace custos::cli
