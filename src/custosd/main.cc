// custosd — the Custos kernel as a local daemon: one policy, flight log and budget for every agent
// process, over HTTP/JSON on a loopback port and a Unix socket (`custos serve` is the same).

#include "cli/cli.h"

int main(int argc, char** argv) {
  using namespace custos::cli;
  CLI::App app{"custosd — the Custos agent security kernel as a local HTTP/JSON service"};
  GlobalOptions g;
  app.add_option("--data-dir", g.data_dir,
                 "Data directory (keys, store, log, config.toml, api_keys); default $CUSTOS_HOME, "
                 "else $XDG_DATA_HOME/custos, else ~/.local/share/custos")
      ->envname("CUSTOS_DATA_DIR");
  int exit_code = 0;
  AddServeOptions(&app, g, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return exit_code;
}
