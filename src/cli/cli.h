#pragma once
// Shared pieces of the `custos` command line: where the data directory is, how a Status becomes
// an exit code, and the subcommand registrars (one file per command family).
//
// Exit codes (README "Exit codes"): 0 success; 2 usage error; 10 + the reason's class for a
// failure (e.g. 13 permission_denied, 22 data_loss: `audit verify` found tampering).

#include <CLI/CLI.hpp>
#include <filesystem>
#include <optional>
#include <string>

#include "custos/core/status.h"

namespace custos::cli {

struct GlobalOptions {
  std::string data_dir;  // --data-dir
};

// --data-dir, else $CUSTOS_HOME, else $XDG_DATA_HOME/custos, else ~/.local/share/custos.
std::filesystem::path ResolveDataDir(const GlobalOptions& g);

// Prints "custos: <reason>: <message> (at ...)" to stderr and returns the exit code.
int Fail(const Status& s);

// Passphrase for an encrypted identity: $CUSTOS_PASSPHRASE if set.
std::optional<std::string> PassphraseFromEnv();

// Each registrar adds its subcommands; *exit_code receives the command's result.
void RegisterInit(CLI::App& app, GlobalOptions& g, int* exit_code);
void RegisterPolicy(CLI::App& app, GlobalOptions& g, int* exit_code);
void RegisterRun(CLI::App& app, GlobalOptions& g, int* exit_code);
void RegisterAudit(CLI::App& app, GlobalOptions& g, int* exit_code);
// audit replay | fork-replay. REQUIRES: RegisterAudit ran (adds to its `audit` subcommand).
void RegisterAuditReplay(CLI::App& app, GlobalOptions& g, int* exit_code);
void RegisterApprovals(CLI::App& app, GlobalOptions& g, int* exit_code);
void RegisterDemo(CLI::App& app, GlobalOptions& g, int* exit_code);
void RegisterToken(CLI::App& app, GlobalOptions& g, int* exit_code);
// `custos serve` (custosd in-process) and `custos apikey add`.
void RegisterServe(CLI::App& app, GlobalOptions& g, int* exit_code);
// The daemon's flags and action on `cmd`: a `serve` subcommand, or custosd's top-level app.
void AddServeOptions(CLI::App* cmd, GlobalOptions& g, int* exit_code);
void RegisterMcp(CLI::App& app, GlobalOptions& g, int* exit_code);

}  // namespace custos::cli
