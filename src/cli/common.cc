// The helpers every `custos` command (and custosd) shares: the data directory, exit codes, the
// identity passphrase.

#include <cstdio>
#include <cstdlib>

#include "cli/cli.h"
#include "custos/core/reason.h"

namespace custos::cli {

std::filesystem::path ResolveDataDir(const GlobalOptions& g) {
  if (!g.data_dir.empty())
    return g.data_dir;
  if (const char* h = std::getenv("CUSTOS_HOME"); h != nullptr && *h != '\0')
    return h;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    return std::filesystem::path(x) / "custos";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/") / ".local" / "share" / "custos";
}

int Fail(const Status& s) {
  std::fprintf(stderr, "custos: %s\n", s.ToString().c_str());
  return ExitCodeOf(s.reason());
}

std::optional<std::string> PassphraseFromEnv() {
  const char* p = std::getenv("CUSTOS_PASSPHRASE");
  if (p == nullptr)
    return std::nullopt;
  return std::string(p);
}

}  // namespace custos::cli
