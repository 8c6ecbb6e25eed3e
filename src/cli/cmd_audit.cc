// custos audit verify | inspect | export.

#include <cstdio>
#include <fstream>
#include <map>

#include "cli/cli.h"
#include "custos/audit/log_entry.h"
#include "custos/audit/verifier.h"
#include "custos/store/store.h"

namespace custos::cli {
namespace {

Result<std::unique_ptr<store::Store>> OpenExistingStore(const GlobalOptions& g) {
  const std::filesystem::path db = ResolveDataDir(g) / "custos.db";
  if (!std::filesystem::exists(db)) {
    return Status(Reason::kNotFound, "no flight log at " + db.string() + " (run something first)");
  }
  return store::OpenSqliteStore(db);
}

void PrintReport(const audit::VerifyReport& r) {
  if (r.status.ok()) {
    std::printf("verified: %lld entries, hash chain intact, head %s\n",
                static_cast<long long>(r.entries), r.head_hash.c_str());
  } else {
    std::printf("FAILED at entry %lld: %s\n  (%lld entries before it verified, last good head %s)\n",
                static_cast<long long>(r.first_bad_seq), r.status.ToString().c_str(),
                static_cast<long long>(r.entries), r.head_hash.c_str());
  }
}

}  // namespace

void RegisterAudit(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* audit = app.add_subcommand("audit", "Verify, inspect and export the flight log");
  audit->require_subcommand(1);

  auto* verify = audit->add_subcommand("verify", "Check the hash chain: changed, removed, reordered or inserted entries");
  static std::string jsonl;
  verify->add_option("--jsonl", jsonl, "Verify an exported JSONL file instead of the store");
  verify->callback([&g, exit_code] {
    audit::VerifyReport r;
    if (!jsonl.empty()) {
      std::ifstream in(jsonl, std::ios::binary);
      if (!in) {
        *exit_code = Fail(Status(Reason::kIoError, "cannot read", jsonl));
        return;
      }
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      r = audit::VerifyJsonl(text);
    } else {
      Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
      if (!st.ok()) {
        *exit_code = Fail(st.status());
        return;
      }
      r = audit::VerifyStore(**st);
    }
    PrintReport(r);
    *exit_code = r.status.ok() ? 0 : ExitCodeOf(r.status.reason());
  });

  auto* inspect = audit->add_subcommand("inspect", "A redacted human view: counts, denials by rule, recent entries");
  static int64_t last = 20;
  inspect->add_option("--last", last, "How many recent entries to list");
  inspect->callback([&g, exit_code] {
    Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
    if (!st.ok()) {
      *exit_code = Fail(st.status());
      return;
    }
    std::map<std::string, int64_t> by_verdict, denials_by_rule;
    std::vector<audit::LogEntry> recent;
    int64_t total = 0;
    store::LogQuery q;
    q.limit = 10000;
    while (true) {
      Result<std::vector<store::LogRow>> rows = (*st)->ReadLog(q);
      if (!rows.ok()) {
        *exit_code = Fail(rows.status());
        return;
      }
      for (const store::LogRow& row : *rows) {
        Result<audit::LogEntry> e = audit::DecodeEntry(row);
        if (!e.ok()) {
          *exit_code = Fail(e.status());
          return;
        }
        ++total;
        if (e->type == "decision") {
          ++by_verdict[e->verdict];
          if (e->verdict == "deny") {
            ++denials_by_rule[(e->rule.empty() ? e->stage : e->rule) + " (" + e->reason + ")"];
          }
        }
        recent.push_back(std::move(e).value());
        if (static_cast<int64_t>(recent.size()) > last) recent.erase(recent.begin());
      }
      if (rows->size() < static_cast<size_t>(q.limit)) break;
      q.from_seq = rows->back().seq + 1;
    }
    std::printf("flight log: %lld entries\n", static_cast<long long>(total));
    std::printf("decisions:");
    for (const auto& [v, n] : by_verdict) std::printf(" %s=%lld", v.c_str(), static_cast<long long>(n));
    std::printf("\ndenials by rule:\n");
    for (const auto& [r, n] : denials_by_rule) std::printf("  %6lld  %s\n", static_cast<long long>(n), r.c_str());
    std::printf("last %zu entries (payloads are sealed; only hashes shown):\n", recent.size());
    for (const audit::LogEntry& e : recent) {
      std::printf("  #%-6lld %-8s %-14s %-8s %-12s %-18s %s%s\n", static_cast<long long>(e.seq),
                  e.type.c_str(), e.syscall.c_str(), e.verdict.c_str(), e.agent.c_str(),
                  e.reason.c_str(), e.target.substr(0, 60).c_str(),
                  e.rule.empty() ? "" : ("  [" + e.rule + "]").c_str());
    }
    *exit_code = 0;
  });

  auto* exp = audit->add_subcommand("export", "Export the log (redacted: payloads stay sealed)");
  static std::string format = "jsonl", out_file;
  exp->add_option("--format", format, "jsonl")->check(CLI::IsMember({"jsonl"}));
  exp->add_option("--out", out_file, "Output file (default: standard output)");
  exp->callback([&g, exit_code] {
    Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
    if (!st.ok()) {
      *exit_code = Fail(st.status());
      return;
    }
    FILE* out = out_file.empty() ? stdout : std::fopen(out_file.c_str(), "w");
    if (out == nullptr) {
      *exit_code = Fail(Status(Reason::kIoError, "cannot write", out_file));
      return;
    }
    store::LogQuery q;
    q.limit = 10000;
    while (true) {
      Result<std::vector<store::LogRow>> rows = (*st)->ReadLog(q);
      if (!rows.ok()) {
        *exit_code = Fail(rows.status());
        if (out != stdout) std::fclose(out);
        return;
      }
      for (const store::LogRow& row : *rows) std::fprintf(out, "%s\n", audit::ToJsonLine(row).c_str());
      if (rows->size() < static_cast<size_t>(q.limit)) break;
      q.from_seq = rows->back().seq + 1;
    }
    if (out != stdout) std::fclose(out);
    *exit_code = 0;
  });
}

}  // namespace custos::cli
