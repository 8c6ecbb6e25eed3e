// custos approvals list | approve ID | deny ID: a person answers what a waiting syscall asked.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cli/cli.h"
#include "custos/core/clock.h"
#include "custos/store/store.h"

namespace custos::cli {
namespace {

std::string WhoAmI() {
  const char* u = std::getenv("USER");
  return std::string("human:") + (u != nullptr ? u : std::to_string(::getuid()));
}

}  // namespace

void RegisterApprovals(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* approvals = app.add_subcommand("approvals", "List and answer pending human approvals");
  approvals->require_subcommand(1);
  static std::string state = "pending", id, note;

  auto open = [&g]() -> Result<std::unique_ptr<store::Store>> {
    const std::filesystem::path db = ResolveDataDir(g) / "custos.db";
    if (!std::filesystem::exists(db))
      return Status(Reason::kNotFound, "no store at " + db.string());
    return store::OpenSqliteStore(db);
  };

  auto* list = approvals->add_subcommand("list", "List approvals");
  list->add_option("--state", state, "pending | approved | denied | all");
  list->callback([open, exit_code] {
    Result<std::unique_ptr<store::Store>> st = open();
    if (!st.ok()) {
      *exit_code = Fail(st.status());
      return;
    }
    Result<std::vector<store::Approval>> list = (*st)->ListApprovals(state == "all" ? "" : state);
    if (!list.ok()) {
      *exit_code = Fail(list.status());
      return;
    }
    if (list->empty())
      std::printf("no %s approvals\n", state.c_str());
    for (const store::Approval& a : *list) {
      std::printf("%s  %-8s %s wants %s %s (rule %s)\n    %s\n", a.id.c_str(), a.state.c_str(),
                  a.agent.c_str(), a.syscall.c_str(), a.target.c_str(), a.rule.c_str(),
                  a.question.c_str());
    }
    *exit_code = 0;
  });

  for (const bool approve : {true, false}) {
    auto* cmd =
        approvals->add_subcommand(approve ? "approve" : "deny",
                                  approve ? "Approve a pending request" : "Deny a pending request");
    cmd->add_option("ID", id, "Approval id")->required();
    cmd->add_option("--note", note, "A note recorded with the answer");
    cmd->callback([open, exit_code, approve] {
      Result<std::unique_ptr<store::Store>> st = open();
      if (!st.ok()) {
        *exit_code = Fail(st.status());
        return;
      }
      Status s = (*st)->AnswerApproval(id, approve, WhoAmI(), note, SystemClock().NowMillis());
      if (!s.ok()) {
        *exit_code = Fail(s);
        return;
      }
      std::printf("%s %s\n", approve ? "approved" : "denied", id.c_str());
      *exit_code = 0;
    });
  }
}

}  // namespace custos::cli
