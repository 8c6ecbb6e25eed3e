// End-to-end tests of `custos token mint|inspect|attenuate|verify|revoke` and of tokens in
// `custos run` scripts.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "custos/core/json.h"
#include "custos/core/reason.h"
#include "integration/cli_runner.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

class TokenCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "root";
    std::filesystem::create_directories(root_ / "out");
    std::ofstream(root_ / "hello.txt") << "hello\n";
    policy_ = (dir_.path() / "policy.toml").string();
    std::ofstream(policy_) << R"([policy]
name = "token-cli-test"

[agents.a]
syscalls = ["file.read", "memory.alloc"]

[agents.b]
syscalls = ["file.read"]

[fs]
read = [")" + root_.string() + R"(/**"]
)";
    data_ = (dir_.path() / "data").string();
  }

  CliResult Token(std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--data-dir", data_, "token"});
    return RunCustos(args, in);
  }

  // One file.read line by agent `agent` in run r1, with `token` if given.
  std::string ReadLine(const std::string& agent, const std::string& token) {
    Json j = {{"agent", agent},
              {"run", "r1"},
              {"kind", "file.read"},
              {"target", (root_ / "hello.txt").string()}};
    if (!token.empty()) {
      j["token"] = token;
    }
    return j.dump() + "\n";
  }

  Json RunOne(const std::string& line) {
    CliResult r = RunCustos({"--data-dir", data_, "run", "--policy", policy_}, line);
    EXPECT_EQ(r.code, 0) << r.err;
    return Json::parse(r.out.empty() ? "{}" : r.out.substr(0, r.out.find('\n')));
  }

  TempDir dir_;
  std::filesystem::path root_;
  std::string policy_, data_;
};

TEST_F(TokenCliTest, MintInspectAttenuateVerifyRevoke) {
  CliResult mint = Token({"mint", "--policy", policy_, "--agent", "a", "--run", "r1"});
  ASSERT_EQ(mint.code, 0) << mint.err;
  const std::string token = Trim(mint.out);
  ASSERT_FALSE(token.empty());

  CliResult inspect = Token({"inspect", token});
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("block 0 (authority)"));
  EXPECT_THAT(inspect.out, HasSubstr("right(\"file.read\");"));
  EXPECT_THAT(inspect.out, HasSubstr("check if principal(\"a\");"));
  EXPECT_THAT(inspect.out, HasSubstr("revocation id: "));
  EXPECT_THAT(inspect.out, HasSubstr("root key: ed25519/"));

  // Offline attenuation needs only the public key.
  const std::string root_line = inspect.out.substr(inspect.out.find("ed25519/"));
  const std::string root_key = root_line.substr(0, root_line.find('\n'));
  CliResult att = RunCustos({"token", "attenuate", token, "--root-key", root_key, "--block",
                             "check if operation(\"memory.alloc\");"});
  ASSERT_EQ(att.code, 0) << att.err;
  const std::string narrow = Trim(att.out);
  CliResult inspect2 = Token({"inspect", narrow});
  EXPECT_THAT(inspect2.out, HasSubstr("block 1\n"));
  EXPECT_THAT(inspect2.out, HasSubstr("check if operation(\"memory.alloc\");"));

  // verify: signatures, and the authorizer for a described request.
  EXPECT_EQ(Token({"verify", token}).code, 0);
  CliResult ok = Token(
      {"verify", token, "--kind", "file.read", "--target", "/x", "--agent", "a", "--run", "r1"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("authorized"));
  CliResult no = Token(
      {"verify", narrow, "--kind", "file.read", "--target", "/x", "--agent", "a", "--run", "r1"});
  EXPECT_EQ(no.code, ExitCodeOf(Reason::kTokenCheckFailed));
  EXPECT_THAT(no.err, HasSubstr("block 1, check 0"));
  CliResult forged =
      RunCustos({"token", "verify", token, "--root-key", "ed25519/" + std::string(64, '1')});
  EXPECT_EQ(forged.code, ExitCodeOf(Reason::kTokenInvalid)) << forged.err;

  // The token works in a script; after revoke it does not.
  Json before = RunOne(ReadLine("a", token));
  EXPECT_EQ(before["decision"]["verdict"], "allow") << before.dump();
  CliResult revoke = Token({"revoke", token, "--policy", policy_, "--note", "test"});
  ASSERT_EQ(revoke.code, 0) << revoke.err;
  // The revocation is in the flight log too (replay and audit see it), by its id.
  const std::string revoked_id = Trim(revoke.out).substr(std::string("revoked ").size());
  ASSERT_EQ(revoked_id.size(), 128u) << revoke.out;
  CliResult log = RunCustos({"--data-dir", data_, "audit", "export", "--format", "jsonl"});
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_THAT(log.out, HasSubstr("\"token.revoke\""));
  EXPECT_THAT(log.out, HasSubstr(revoked_id));
  Json after = RunOne(ReadLine("a", token));
  EXPECT_EQ(after["decision"]["reason"], "token_revoked") << after.dump();
  // The attenuated token contains the revoked block, so it is revoked too.
  Json derived = RunOne(ReadLine("a", narrow));
  EXPECT_EQ(derived["decision"]["reason"], "token_revoked") << derived.dump();
}

TEST_F(TokenCliTest, RunAttachesGrantedTokensAndRefusesForeignOnes) {
  // No token in the line: `custos run` attaches the grant for the line's agent.
  EXPECT_EQ(RunOne(ReadLine("a", ""))["decision"]["verdict"], "allow");
  // A's token presented by B fails the principal check.
  CliResult mint = Token({"mint", "--policy", policy_, "--agent", "a"});
  ASSERT_EQ(mint.code, 0) << mint.err;
  Json r = RunOne(ReadLine("b", Trim(mint.out)));
  EXPECT_EQ(r["decision"]["reason"], "token_check_failed") << r.dump();
  EXPECT_THAT(r["decision"]["explanation"].get<std::string>(), HasSubstr("principal(\"a\")"));
  // Garbage is token_invalid, not a crash.
  Json g = RunOne(ReadLine("a", "AAAA"));
  EXPECT_EQ(g["decision"]["reason"], "token_invalid") << g.dump();
}

TEST_F(TokenCliTest, MintFromDatalogAndBadInputs) {
  CliResult mint = Token({"mint", "--policy", policy_, "--datalog",
                          "right(\"file.read\");\ncheck if principal(\"b\");\n"});
  ASSERT_EQ(mint.code, 0) << mint.err;
  EXPECT_EQ(RunOne(ReadLine("b", Trim(mint.out)))["decision"]["verdict"], "allow");
  CliResult bad = Token({"mint", "--policy", policy_, "--datalog", "allow if true;"});
  EXPECT_EQ(bad.code, ExitCodeOf(Reason::kInvalidArgument)) << bad.err;
  CliResult unknown = Token({"mint", "--policy", policy_, "--agent", "ghost"});
  EXPECT_EQ(unknown.code, ExitCodeOf(Reason::kUnknownAgent)) << unknown.err;
  CliResult garbage = Token({"inspect", "%%%"});
  EXPECT_EQ(garbage.code, ExitCodeOf(Reason::kTokenInvalid)) << garbage.err;
  CliResult revoke_id = Token({"revoke", std::string(128, 'a'), "--policy", policy_});
  EXPECT_EQ(revoke_id.code, 0) << revoke_id.err;
  EXPECT_EQ(Trim(revoke_id.out), "revoked " + std::string(128, 'a'));
  CliResult revoke_junk = Token({"revoke", "not a token", "--policy", policy_});
  EXPECT_EQ(revoke_junk.code, ExitCodeOf(Reason::kTokenInvalid)) << revoke_junk.err;
  CliResult revoke_no_policy = Token({"revoke", std::string(128, 'a')});
  EXPECT_NE(revoke_no_policy.code, 0);
}

}  // namespace
}  // namespace custos::testing
