#pragma once
// A data directory whose flight log the `custos` CLI writes (file reads under a temp root), for
// the audit CLI tests; plus direct SQLite edits, as an attacker with file access would make them.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "custos/core/json.h"
#include "custos/crypto/key_store.h"
#include "integration/cli_runner.h"
#include "testing/temp_dir.h"

namespace custos::testing {

inline void WriteText(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

inline void ExecSql(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(h);
}

class AuditLogCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "root");
    WriteText(dir_.path() / "root" / "hello.txt", "hello\n");
    policy_ = (dir_.path() / "policy.toml").string();
    WriteText(policy_,
              "[policy]\nname = \"audit-cli-test\"\n\n[agents.a]\nsyscalls = "
              "[\"file.read\"]\n\n[fs]\nread = [\"" +
                  (dir_.path() / "root").string() + "/**\"]\n");
    data_ = (dir_.path() / "data").string();
  }

  // Appends `n` decisions (and outcomes) to the log.
  void RunReads(int n) {
    std::string script;
    for (int i = 0; i < n; ++i) {
      script += Json{{"agent", "a"},
                     {"run", "r1"},
                     {"kind", "file.read"},
                     {"target", (dir_.path() / "root" / "hello.txt").string()},
                     {"args", Json::object()}}
                    .dump() +
                "\n";
    }
    CliResult r = RunCustos({"--data-dir", data_, "run", "--policy", policy_}, script);
    ASSERT_EQ(r.code, 0) << r.err;
  }

  CliResult Audit(std::vector<std::string> args) {
    args.insert(args.begin(), {"--data-dir", data_, "audit"});
    return RunCustos(args);
  }

  crypto::SigningKey Identity() {
    return crypto::KeyStore::Load(std::filesystem::path(data_) / "identity.key", std::nullopt)
        .value();
  }

  TempDir dir_;
  std::string policy_, data_;
};

}  // namespace custos::testing
