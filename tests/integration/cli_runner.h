#pragma once
// Runs the `custos` binary (path from $CUSTOS_BIN, set by CMake) — or any program — for
// integration tests and captures its exit code, stdout and stderr.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace custos::testing {

struct CliResult {
  int code = -1;
  std::string out, err;
};

inline std::string CustosBin() {
  const char* b = std::getenv("CUSTOS_BIN");
#ifdef CUSTOS_BIN_PATH
  return b != nullptr ? b : CUSTOS_BIN_PATH;
#else
  return b != nullptr ? b : "custos";
#endif
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

// Runs `program` with `args` (shell-quoted here), optional stdin text, in `env` (NAME=value pairs).
inline CliResult RunProgram(const std::string& program, const std::vector<std::string>& args,
                            const std::string& stdin_text = "", const std::string& env = "") {
  char dir_tmpl[] = "/tmp/custos-cli-XXXXXX";
  const std::string dir = ::mkdtemp(dir_tmpl);
  const std::string in = dir + "/in", out = dir + "/out", err = dir + "/err";
  {
    std::ofstream f(in, std::ios::binary);
    f << stdin_text;
  }
  std::string cmd = env + " " + Quote(program);
  for (const std::string& a : args)
    cmd += " " + Quote(a);
  cmd += " <" + in + " >" + out + " 2>" + err;
  CliResult r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  std::system(("rm -rf " + Quote(dir)).c_str());
  return r;
}

// Runs custos with `args`, optional stdin text, in `env` (NAME=value pairs).
inline CliResult RunCustos(const std::vector<std::string>& args, const std::string& stdin_text = "",
                           const std::string& env = "") {
  return RunProgram(CustosBin(), args, stdin_text, env);
}

}  // namespace custos::testing
