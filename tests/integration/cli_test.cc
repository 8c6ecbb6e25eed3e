// End-to-end tests of the `custos` command line: policy check, explain, run, audit verify (and
// tamper detection), export, approvals answered from a second process, kill -9 during a run, the
// demo, and the generated reason-code document.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "custos/core/json.h"
#include "custos/core/reason.h"
#include "integration/cli_runner.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

void Write(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

std::string PolicyFor(const std::filesystem::path& root) {
  return R"([policy]
name = "cli-test"

[agents.a]
syscalls = ["file.read", "file.write", "memory.alloc", "memory.read", "audit.commit"]

[budgets.default]
model_tokens_in = 1000
model_tokens_out = 1000
tool_calls = 10
wall_ms = 600000
net_bytes_out = 100000
spend_micros = 0

[fs]
read = [")" +
         root.string() + R"(/**"]
write = [")" +
         root.string() + R"(/out/**"]

[[approvals]]
id = "writes-need-a-person"
syscall = ["file.write"]
target = ")" +
         root.string() + R"(/out/approved/**"
timeout_ms = 20000
)";
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "root" / "out" / "approved");
    Write(dir_.path() / "root" / "hello.txt", "hello\n");
    policy_ = (dir_.path() / "policy.toml").string();
    Write(policy_, PolicyFor(dir_.path() / "root"));
    data_ = (dir_.path() / "data").string();
  }

  std::string Line(const std::string& kind, const std::string& target,
                   const Json& args = Json::object()) {
    return Json{{"agent", "a"}, {"run", "r1"}, {"kind", kind}, {"target", target}, {"args", args}}
               .dump() +
           "\n";
  }

  // An empty durability leaves it to the data directory's config.toml.
  CliResult Run(const std::string& script, const std::string& durability = "group") {
    std::vector<std::string> args = {"--data-dir", data_, "run", "--policy", policy_};
    if (!durability.empty()) {
      args.push_back("--durability");
      args.push_back(durability);
    }
    return RunCustos(args, script);
  }

  TempDir dir_;
  std::string policy_, data_;
};

TEST_F(CliTest, PolicyCheckAcceptsAValidPolicy) {
  CliResult r = RunCustos({"policy", "check", policy_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok: policy 'cli-test'"));
}

TEST_F(CliTest, PolicyCheckReportsUnknownKeyWithLineAndColumn) {
  const std::string bad = (dir_.path() / "bad.toml").string();
  Write(bad, "[policy]\nname = \"x\"\n\n[fs]\nreed = [\"/tmp/**\"]\n");
  CliResult r = RunCustos({"policy", "check", bad});
  EXPECT_EQ(r.code, ExitCodeOf(Reason::kPolicyUnknownKey));
  EXPECT_THAT(r.err, HasSubstr("policy_unknown_key"));
  EXPECT_THAT(r.err, HasSubstr("bad.toml:5:"));
  EXPECT_THAT(r.err, HasSubstr("reed"));
}

TEST_F(CliTest, ExplainSaysWhyAndSuggestsASnippet) {
  CliResult r = RunCustos({"explain", "--policy", policy_, "--agent", "a", "--kind", "file.read",
                           "--target", "/etc/passwd"});
  EXPECT_EQ(r.code, ExitCodeOf(Reason::kPathNotAllowed)) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("deny file.read /etc/passwd"));
  EXPECT_THAT(r.out, HasSubstr("path_not_allowed"));
  EXPECT_THAT(r.out, HasSubstr("/etc/passwd"));
  EXPECT_THAT(r.out, HasSubstr("[fs]"));
}

TEST_F(CliTest, RunPrintsOneResultPerLineAndTheLogVerifies) {
  const std::string script = Line("file.read", (dir_.path() / "root" / "hello.txt").string()) +
                             Line("file.read", "/etc/shadow") + "{not json\n" +
                             Line("memory.alloc", "note", {{"value", {{"x", 1}}}});
  CliResult r = Run(script);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<Json> results;
  std::istringstream lines(r.out);
  for (std::string l; std::getline(lines, l);)
    results.push_back(Json::parse(l));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0]["decision"]["verdict"], "allow");
  EXPECT_EQ(results[0]["frame"]["text"], "hello\n");
  EXPECT_EQ(results[1]["decision"]["reason"], "path_not_allowed");
  EXPECT_EQ(results[2]["decision"]["reason"], "malformed_json");
  EXPECT_EQ(results[3]["decision"]["verdict"], "allow");

  CliResult v = RunCustos({"--data-dir", data_, "audit", "verify"});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("verified:"));

  CliResult inspect = RunCustos({"--data-dir", data_, "audit", "inspect"});
  EXPECT_EQ(inspect.code, 0);
  EXPECT_THAT(inspect.out, HasSubstr("denials by rule"));
  EXPECT_THAT(inspect.out, HasSubstr("path_not_allowed"));

  // The export verifies on its own, and a changed byte in it does not.
  const std::string exported = (dir_.path() / "log.jsonl").string();
  ASSERT_EQ(RunCustos({"--data-dir", data_, "audit", "export", "--out", exported}).code, 0);
  EXPECT_EQ(RunCustos({"audit", "verify", "--jsonl", exported}).code, 0);
  std::string text = ReadAll(exported);
  const size_t pos = text.find("path_not_allowed");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 16, "path_not_alloweX");
  Write(exported, text);
  CliResult tampered = RunCustos({"audit", "verify", "--jsonl", exported});
  EXPECT_EQ(tampered.code, ExitCodeOf(Reason::kLogCorrupt)) << tampered.out;
}

// Edits the SQLite store directly, as an attacker with file access would.
void Exec(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(h);
}

std::string LogTable(const std::string& db) {
  sqlite3* h = nullptr;
  sqlite3_open(db.c_str(), &h);
  sqlite3_stmt* st = nullptr;
  std::string name;
  sqlite3_prepare_v2(h,
                     "SELECT name FROM sqlite_master WHERE type='table' AND sql LIKE '%canonical%'",
                     -1, &st, nullptr);
  if (sqlite3_step(st) == SQLITE_ROW)
    name = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(h);
  return name;
}

TEST_F(CliTest, AuditVerifyDetectsChangedRemovedAndReorderedEntries) {
  std::string script;
  for (int i = 0; i < 10; ++i)
    script += Line("file.read", "/etc/hostname-" + std::to_string(i));
  ASSERT_EQ(Run(script).code, 0);
  const std::string db = data_ + "/custos.db";
  const std::string table = LogTable(db);
  ASSERT_FALSE(table.empty());
  const std::string copy = (dir_.path() / "copy.db").string();

  auto verify_after = [&](const std::string& sql) {
    std::filesystem::copy_file(db, copy, std::filesystem::copy_options::overwrite_existing);
    Exec(copy, sql);
    std::filesystem::path d2 = dir_.path() / "d2";
    std::filesystem::remove_all(d2);
    std::filesystem::create_directories(d2);
    std::filesystem::copy_file(copy, d2 / "custos.db");
    return RunCustos({"--data-dir", d2.string(), "audit", "verify"});
  };
  CliResult changed =
      verify_after("UPDATE " + table +
                   " SET canonical = replace(canonical, 'hostname-3', 'hostname-X') "
                   "WHERE canonical LIKE '%hostname-3%'");
  EXPECT_EQ(changed.code, ExitCodeOf(Reason::kLogCorrupt)) << changed.out;
  EXPECT_THAT(changed.out, HasSubstr("FAILED at entry"));

  CliResult removed = verify_after("DELETE FROM " + table + " WHERE seq = 5");
  EXPECT_EQ(removed.code, ExitCodeOf(Reason::kLogGap)) << removed.out;
  EXPECT_THAT(removed.out, HasSubstr("FAILED at entry"));
}

TEST_F(CliTest, ApprovalAnsweredFromAnotherProcessReleasesTheWaitingSyscall) {
  const std::string target = (dir_.path() / "root" / "out" / "approved" / "x.txt").string();
  CliResult result;
  std::thread runner([&] { result = Run(Line("file.write", target, {{"content", "ok"}})); });
  // Wait for the pending approval to appear, then approve it as a person would.
  std::string id;
  for (int i = 0; i < 200 && id.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CliResult list = RunCustos({"--data-dir", data_, "approvals", "list"});
    const size_t pos = list.out.find("a_");
    if (list.code == 0 && pos != std::string::npos)
      id = list.out.substr(pos, 28);
  }
  ASSERT_FALSE(id.empty()) << "no pending approval appeared";
  CliResult ok = RunCustos({"--data-dir", data_, "approvals", "approve", id, "--note", "fine"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  runner.join();
  ASSERT_EQ(result.code, 0) << result.err;
  Json j = Json::parse(result.out.substr(0, result.out.find('\n')));
  EXPECT_EQ(j["decision"]["verdict"], "allow") << result.out;
  EXPECT_EQ(ReadAll(target), "ok");
  // Answering twice is refused.
  EXPECT_EQ(RunCustos({"--data-dir", data_, "approvals", "deny", id}).code,
            ExitCodeOf(Reason::kAlreadyExists));
}

TEST_F(CliTest, KillNineNeverLeavesALogThatFailsVerificationOrLosesAnAcknowledgedEntry) {
  std::string script;
  for (int i = 0; i < 3000; ++i)
    script += Line("file.read", (dir_.path() / "root" / "hello.txt").string());
  const std::string script_file = (dir_.path() / "script.jsonl").string();
  Write(script_file, script);
  std::mt19937 rng(42);
  constexpr int kKills = 12;
  for (int i = 0; i < kKills; ++i) {
    const std::string out = (dir_.path() / "out.jsonl").string();
    const std::string cmd = Quote(CustosBin()) + " --data-dir " + Quote(data_) + " run --policy " +
                            Quote(policy_) + " --script " + Quote(script_file) + " >" + Quote(out) +
                            " 2>/dev/null & echo $!";
    FILE* p = ::popen(cmd.c_str(), "r");
    int pid = 0;
    ASSERT_EQ(std::fscanf(p, "%d", &pid), 1);
    ::pclose(p);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 400));
    ::kill(pid, SIGKILL);
    for (int w = 0; w < 100 && ::kill(pid, 0) == 0; ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CliResult v = RunCustos({"--data-dir", data_, "audit", "verify"});
    ASSERT_EQ(v.code, 0) << "kill " << i << ": " << v.out << v.err;
    // Every result the run printed (acknowledged) has its decision entry in the log.
    int64_t max_acked = 0;
    std::istringstream lines(ReadAll(out));
    for (std::string l; std::getline(lines, l);) {
      Result<Json> j = ParseUntrustedJson(l);
      if (!j.ok())
        continue;  // the last line may be cut by the kill
      max_acked = std::max<int64_t>(max_acked, (*j)["receipt"].value("decision_seq", int64_t{0}));
    }
    const size_t pos = v.out.find("verified: ");
    ASSERT_NE(pos, std::string::npos);
    const int64_t entries = std::stoll(v.out.substr(pos + 10));
    EXPECT_GE(entries, max_acked) << "kill " << i << " lost acknowledged entries";
  }
}

TEST_F(CliTest, DurabilityComesFromTheDataDirConfigAndBadConfigIsRefused) {
  std::filesystem::create_directories(data_);
  Write(data_ + "/config.toml", "[log]\ndurability = \"fsync\"\n");
  ASSERT_EQ(Run(Line("file.read", (dir_.path() / "root" / "hello.txt").string()), "").code, 0);
  CliResult exported = RunCustos({"--data-dir", data_, "audit", "export"});
  EXPECT_THAT(exported.out, HasSubstr("\"durability\":\"fsync\""));

  Write(data_ + "/config.toml", "[log]\ndurabilty = \"none\"\n");
  CliResult bad = Run(Line("file.read", "/etc/passwd"), "");
  EXPECT_EQ(bad.code, ExitCodeOf(Reason::kPolicyUnknownKey));
  EXPECT_THAT(bad.err, HasSubstr("config.toml:2:"));
}

TEST_F(CliTest, CheckpointIntervalComesFromTheDataDirConfig) {
  std::filesystem::create_directories(data_);
  const std::string read = Line("file.read", (dir_.path() / "root" / "hello.txt").string());
  // Defaults (1000 entries / 1000 ms): a short run is covered by the checkpoint at shutdown.
  ASSERT_EQ(Run(read + read).code, 0);
  CliResult one = RunCustos({"--data-dir", data_, "audit", "verify"});
  ASSERT_EQ(one.code, 0) << one.out << one.err;
  EXPECT_THAT(one.out, HasSubstr(", 1 checkpoints match"));

  // Every 2 entries: each group-commit batch past two entries is checkpointed.
  Write(data_ + "/config.toml", "[log]\ncheckpoint_every_entries = 2\ncheckpoint_every_ms = 0\n");
  ASSERT_EQ(Run(read + read + read + read).code, 0);
  CliResult many = RunCustos({"--data-dir", data_, "audit", "verify"});
  ASSERT_EQ(many.code, 0) << many.out << many.err;
  EXPECT_THAT(many.out, ::testing::Not(HasSubstr(", 1 checkpoints match")));
  EXPECT_THAT(many.out, ::testing::Not(HasSubstr(", 2 checkpoints match")));

  Write(data_ + "/config.toml", "[log]\ndurability = \"group\"\ncheckpoint_every_ms = -5\n");
  CliResult bad = Run(read, "");
  EXPECT_EQ(bad.code, ExitCodeOf(Reason::kPolicyWrongType));
  EXPECT_THAT(bad.err, HasSubstr("config.toml:3:"));
}

TEST(CliDemoTest, DemoBlocksTheExfiltrationAndVerifiesItsLog) {
  TempDir dir;
  CliResult r = RunCustos({"--data-dir", (dir.path() / "demo").string(), "demo"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("flight log: VERIFIED"));
  EXPECT_THAT(r.out, HasSubstr("collector received 0 requests, 0 bytes"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("NOT AS EXPECTED")));
}

TEST(CliReasonsTest, ReasonCodeDocumentIsCurrent) {
  const char* src = std::getenv("CUSTOS_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  CliResult r = RunCustos({"reasons", "--markdown"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, ReadAll(std::string(src) + "/docs/reason-codes.md"))
      << "regenerate with: build/custos reasons --markdown > docs/reason-codes.md";
}

TEST(CliUsageTest, UnknownSubcommandIsAUsageError) {
  EXPECT_EQ(RunCustos({"frobnicate"}).code, 2);
  EXPECT_EQ(RunCustos({"--help"}).code, 0);
}

}  // namespace
}  // namespace custos::testing
