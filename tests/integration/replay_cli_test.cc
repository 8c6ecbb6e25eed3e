// `custos audit replay` and `fork-replay` on the demo's log: the demo replays with no difference
// under its own policy; a policy without the shell flow rule lets the injected shell call through;
// a behavior file that poisons the web page changes nothing the demo's flows did not already stop.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "custos/core/json.h"
#include "integration/cli_runner.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

class ReplayCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    base_ = (dir_->path() / "demo").string();
    CliResult r = RunCustos({"--data-dir", base_, "demo"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string Data() { return base_ + "/data"; }
  static std::string PolicyPath() { return base_ + "/policy.toml"; }

  static std::string Write(const std::string& name, const std::string& body) {
    const std::string p = (dir_->path() / name).string();
    std::ofstream(p, std::ios::binary | std::ios::trunc) << body;
    return p;
  }

  static TempDir* dir_;
  static std::string base_;
};

TempDir* ReplayCliTest::dir_ = nullptr;
std::string ReplayCliTest::base_;

TEST_F(ReplayCliTest, DemoLogReplaysWithNoDifference) {
  CliResult r = RunCustos({"audit", "replay", Data(), "--policy", PolicyPath()});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("changed 0, unknown 0, skipped 0"));

  CliResult j = RunCustos({"audit", "replay", Data(), "--policy", PolicyPath(), "--json"});
  ASSERT_EQ(j.code, 0) << j.out << j.err;
  Json report = Json::parse(j.out);
  EXPECT_EQ(report["decisions"], 12);
  EXPECT_EQ(report["same"], 12);
}

TEST_F(ReplayCliTest, ForkWithoutTheShellFlowLetsTheInjectedCallThrough) {
  std::string policy = ReadAll(PolicyPath());
  const std::string block =
      "[[flows]]\nid = \"no-untrusted-to-shell\"\nfrom = [\"untrusted\"]\nto = "
      "[\"tool:shell.*\"]\naction = \"deny\"\nmessage = \"text from the web never drives a "
      "shell\"\n";
  const size_t at = policy.find(block);
  ASSERT_NE(at, std::string::npos) << policy;
  policy.erase(at, block.size());
  const std::string fork = Write("fork.toml", policy);

  CliResult r = RunCustos({"audit", "fork-replay", Data(), "--policy", fork, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  Json report = Json::parse(r.out);
  ASSERT_EQ(report["transitions"].size(), 1u) << report.dump(2);
  EXPECT_EQ(report["transitions"][0]["transition"],
            "deny:no-untrusted-to-shell → allow:tools.allow");
  EXPECT_EQ(report["transitions"][0]["count"], 1);
  EXPECT_EQ(report["changed"], 1);

  // Text output: the entry line and the summary.
  CliResult t = RunCustos({"audit", "fork-replay", Data(), "--policy", fork});
  EXPECT_EQ(t.code, 0) << t.out << t.err;
  EXPECT_THAT(t.out, HasSubstr("tool.invoke shell.exec"));
  EXPECT_THAT(t.out, HasSubstr("[effect unknown]"));
  EXPECT_THAT(t.out, HasSubstr("deny:no-untrusted-to-shell → allow:tools.allow  ×1"));

  // The same log is no longer "deterministic" under the fork's policy: replay skips it all.
  CliResult d = RunCustos({"audit", "replay", Data(), "--policy", fork});
  EXPECT_EQ(d.code, 0) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("skipped: replay_policy_mismatch"));
}

TEST_F(ReplayCliTest, BehaviorThatFailsTheWebFetchDropsTheLaterCallsOnThePage) {
  // The web page fetch fails: the handle the injected shell call passed never exists.
  const std::string behavior = Write(
      "behavior.json",
      R"({"results": [{"match": {"syscall": "network.send", "target": "http://127.0.0.1:*/news"},
                        "fail": "effect_failed"}]})");
  CliResult r = RunCustos(
      {"audit", "replay", Data(), "--policy", PolicyPath(), "--behavior", behavior, "--json"});
  Json report = Json::parse(r.out);
  EXPECT_EQ(report["substituted"], 1) << report.dump(2);
  // The shell call named the page's handle, which the kernel no longer knows: still a deny,
  // now at the inputs stage.
  bool found = false;
  for (const Json& d : report["decisions_out"]) {
    if (d["syscall"] == "tool.invoke") {
      found = true;
      EXPECT_EQ(d["replayed"]["reason"], "unknown_handle") << d.dump();
    }
  }
  EXPECT_TRUE(found) << report.dump(2);
  EXPECT_EQ(r.code, 16) << "a determinism check that differs fails";

  CliResult bad = RunCustos({"audit", "replay", Data(), "--policy", PolicyPath(), "--behavior",
                             Write("bad.json", R"({"results": [{"match": {}}]})")});
  EXPECT_EQ(bad.code, 11) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("invalid_argument"));
}

}  // namespace
}  // namespace custos::testing
