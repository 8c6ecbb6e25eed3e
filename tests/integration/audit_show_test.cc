// `custos audit show SEQ` opens a sealed payload for the identity's owner; `inspect` and `export`
// never show it (docs/spec/flight-log.md §9).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "custos/core/json.h"
#include "custos/core/reason.h"
#include "integration/cli_runner.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "TOPSECRET-sealed-payload-31337";

void Write(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

class AuditShowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_ = (dir_.path() / "policy.toml").string();
    Write(policy_, "[policy]\nname = \"show-test\"\n\n[agents.a]\nsyscalls = [\"memory.alloc\"]\n");
    data_ = (dir_.path() / "data").string();
    ASSERT_EQ(RunCustos({"--data-dir", data_, "init"}, "", kEnv).code, 0);
    const std::string script = Json{{"agent", "a"},
                                    {"run", "r1"},
                                    {"kind", "memory.alloc"},
                                    {"target", "note"},
                                    {"args", {{"value", kSecret}}}}
                                   .dump() +
                               "\n";
    CliResult r = RunCustos({"--data-dir", data_, "run", "--policy", policy_}, script, kEnv);
    ASSERT_EQ(r.code, 0) << r.err;
    // The seq of the memory.alloc decision, from the (redacted) export.
    CliResult e = RunCustos({"--data-dir", data_, "audit", "export"}, "", kEnv);
    ASSERT_EQ(e.code, 0) << e.err;
    export_ = e.out;
    std::istringstream lines(e.out);
    for (std::string line; std::getline(lines, line);) {
      const Json j = Json::parse(line);
      if (j["type"] == "decision" && j["syscall"] == "memory.alloc") {
        seq_ = std::to_string(j["seq"].get<int64_t>());
      }
    }
    ASSERT_FALSE(seq_.empty());
  }

  static constexpr char kEnv[] = "CUSTOS_PASSPHRASE=right-horse-battery";
  TempDir dir_;
  std::string policy_, data_, seq_, export_;
};

TEST_F(AuditShowTest, InspectAndExportNeverShowThePayloadButShowDoesForTheOwner) {
  EXPECT_THAT(export_, Not(HasSubstr(kSecret)));
  CliResult inspect = RunCustos({"--data-dir", data_, "audit", "inspect"}, "", kEnv);
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, Not(HasSubstr(kSecret)));

  CliResult show = RunCustos({"--data-dir", data_, "audit", "show", seq_}, "", kEnv);
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr(kSecret));
  EXPECT_THAT(show.out, HasSubstr("\"syscall\": \"memory.alloc\""));
}

TEST_F(AuditShowTest, WrongPassphraseOrAnotherIdentityFailsPrecisely) {
  CliResult wrong = RunCustos({"--data-dir", data_, "audit", "show", seq_}, "",
                              "CUSTOS_PASSPHRASE=wrong-passphrase");
  EXPECT_EQ(wrong.code, ExitCodeOf(Reason::kKeyError)) << wrong.out << wrong.err;
  EXPECT_THAT(wrong.out + wrong.err, Not(HasSubstr(kSecret)));

  // The same log under another identity: the payload key differs.
  const std::string other = (dir_.path() / "other").string();
  ASSERT_EQ(RunCustos({"--data-dir", other, "init"}, "", kEnv).code, 0);
  std::filesystem::copy_file(std::filesystem::path(data_) / "custos.db",
                             std::filesystem::path(other) / "custos.db");
  CliResult foreign = RunCustos({"--data-dir", other, "audit", "show", seq_}, "", kEnv);
  EXPECT_EQ(foreign.code, ExitCodeOf(Reason::kPayloadUnreadable)) << foreign.out << foreign.err;
  EXPECT_THAT(foreign.err, HasSubstr("payload_unreadable"));
  EXPECT_THAT(foreign.out + foreign.err, Not(HasSubstr(kSecret)));

  CliResult missing = RunCustos({"--data-dir", data_, "audit", "show", "99999"}, "", kEnv);
  EXPECT_EQ(missing.code, ExitCodeOf(Reason::kNotFound));
}

}  // namespace
}  // namespace custos::testing
