// Validation of policy documents: every error names its reason, the key path in the message and
// the place in Status::at() (file:line:col for TOML, file:/json/pointer for JSON).

#include <gtest/gtest.h>

#include <string>

#include "custos/policy/policy.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::policy {
namespace {

using custos::testing::IsOk;
using custos::testing::StatusIs;
using ::testing::HasSubstr;

// The head every case builds on; two agents, no other sections. 4 lines.
constexpr std::string_view kHead =
    "[policy]\n"
    "name = \"t\"\n"
    "[agents.a]\n"
    "syscalls = [\"*\"]\n";

Status LoadError(std::string_view text, std::string_view origin = "p.toml") {
  Result<std::shared_ptr<const Policy>> r = Policy::LoadString(text, origin);
  if (r.ok()) {
    return Status::Ok();
  }
  return r.status();
}

Status LoadWithHead(std::string_view rest) {
  return LoadError(std::string(kHead) + std::string(rest));
}

TEST(PolicyLoaderTest, MinimalPolicyLoads) {
  EXPECT_THAT(Policy::LoadString(kHead, "p.toml"), IsOk());
}

TEST(PolicyLoaderTest, UnknownKeyReportsKeyPathLineAndColumn) {
  Status s = LoadWithHead("[fs]\nread = []\n  reed = [\"/a\"]\n");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_EQ(s.at(), "p.toml:7:3");
  EXPECT_THAT(std::string(s.message()), HasSubstr("fs.reed: unknown key"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("did you mean \"read\""));
}

TEST(PolicyLoaderTest, UnknownKeysAreCaughtAtEveryLevel) {
  EXPECT_THAT(LoadError("[policy]\nname = \"t\"\nmod = \"observe\"\n"),
              StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_THAT(LoadWithHead("[network]\nconnect = []\n"), StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_THAT(LoadWithHead("[agents.b]\nsyscalls = []\nspawns = []\n"),
              StatusIs(Reason::kPolicyUnknownKey));
  Status when =
      LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"allow\"\nwhen = { tool = \"x\" }\n");
  EXPECT_THAT(when, StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_THAT(std::string(when.message()), HasSubstr("rules[0].when.tool"));
  EXPECT_EQ(when.at(), "p.toml:8:10");
  EXPECT_THAT(LoadWithHead("[[tools.registry]]\nname = \"t\"\ncommand = [\"/x\"]\nenv = {}\n"),
              StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_THAT(LoadWithHead("[budgets.default]\ntokens = 1\n"), StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_THAT(LoadWithHead("[budgets.big]\ntool_calls = 1\n"), StatusIs(Reason::kPolicyUnknownKey));
}

TEST(PolicyLoaderTest, UnknownKeyInJsonReportsThePointer) {
  Status s = LoadError(R"({"policy":{"name":"t"},"fs":{"read":[],"reed":[]}})", "p.json");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_EQ(s.at(), "p.json:/fs/reed");
  EXPECT_THAT(std::string(s.message()), HasSubstr("fs.reed"));
}

TEST(PolicyLoaderTest, WrongTypeReportsTheValuePosition) {
  Status s = LoadWithHead("[fs]\nread = \"/a/**\"\n");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyWrongType));
  EXPECT_EQ(s.at(), "p.toml:6:8");
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("fs.read: expected an array of strings, got a string"));
  Status elem = LoadWithHead("[fs]\nread = [\"/a\", 7]\n");
  EXPECT_THAT(elem, StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(std::string(elem.message()), HasSubstr("fs.read[1]"));
  EXPECT_EQ(elem.at(), "p.toml:6:15");
}

TEST(PolicyLoaderTest, WrongTypesEverywhere) {
  EXPECT_THAT(LoadError("[policy]\nname = 3\n"), StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadError("policy = \"x\"\n"), StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[budgets.default]\ntool_calls = \"10\"\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[budgets.default]\ntool_calls = 1.5\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[budgets.default]\nunlimited = 1\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadError("rules = { id = \"x\" }\n[policy]\nname = \"t\"\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[[tools.registry]]\nname = \"t\"\ncommand = \"/bin/x\"\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[[tools.registry]]\nname = \"t\"\ncommand = [\"/x\"]\n"
                           "input_schema = \"[1,2]\"\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[[tools.registry]]\nname = \"t\"\ncommand = [\"/x\"]\n"
                           "input_schema = { type = \"number\", minimum = 0.5 }\n"),
              StatusIs(Reason::kPolicyWrongType));
  EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"allow\"\nwhen = { target = 5 }\n"),
              StatusIs(Reason::kPolicyWrongType));
  Status date = LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"allow\"\nmessage = 2024-01-01\n");
  EXPECT_THAT(date, StatusIs(Reason::kPolicyWrongType));
  EXPECT_EQ(date.at(), "p.toml:8:11");
}

TEST(PolicyLoaderTest, BadGlobsAreBadPatterns) {
  Status s = LoadWithHead("[fs]\nread = [\"/ok/**\", \"/etc/[a-z]*\"]\n");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(std::string(s.message()), HasSubstr("fs.read[1]"));
  EXPECT_EQ(s.at(), "p.toml:6:19");
  for (std::string_view bad :
       {"relative/**", "/a/../b", "/a//b", "/a/./b", "/a/", "/a/***", "~root/x", "*/x"}) {
    EXPECT_THAT(LoadWithHead("[fs]\nwrite = [\"" + std::string(bad) + "\"]\n"),
                StatusIs(Reason::kPolicyBadPattern))
        << bad;
  }
  EXPECT_THAT(LoadWithHead("[models]\nallow = [\"gpt-{4,5}\"]\n"),
              StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"deny\"\n"
                           "when = { syscall = [\"file.read\"], target = \"etc/passwd\" }\n"),
              StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(LoadWithHead("[[approvals]]\nid = \"r\"\nsyscall = [\"tool.invoke\"]\n"
                           "target = \"a\\\\b\"\n"),
              StatusIs(Reason::kPolicyBadPattern));
}

TEST(PolicyLoaderTest, BadHostPatternsAndCidrsAreBadPatterns) {
  for (std::string_view bad : {"api.example.com",    // no port
                               "foo.*.com:443",      // inner wildcard
                               "*example.com:443",   // not a label wildcard
                               "10.0.0.1/8:*",       // host bits set
                               "10.0.0.0/33:*",      // prefix too long
                               "::1:8080",           // unbracketed IPv6
                               "[::1:8080",          // unclosed
                               "[::1]8080",          // missing ':'
                               "host:0",             // port 0
                               "host:65536",         // port too large
                               "host:http",          // named port
                               "bad_char!.com:443",  // character
                               "a..b:443",           // empty label
                               "1.2.3:443",          // shorthand IPv4
                               ":443"}) {
    Status s = LoadWithHead("[net]\nconnect = [\"" + std::string(bad) + "\"]\n");
    EXPECT_THAT(s, StatusIs(Reason::kPolicyBadPattern)) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("net.connect[0]")) << bad;
  }
  EXPECT_THAT(LoadWithHead("[net]\ninternal = [\"10.0.0.0/40\"]\n"),
              StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(LoadWithHead("[net]\ndeny = [\"*.*\"]\n"), StatusIs(Reason::kPolicyBadPattern));
  EXPECT_THAT(LoadWithHead("[net]\nconnect = [\"*:443\", \"[fd00::/8]:*\", \"10.0.0.0/8:*\", "
                           "\"127.0.0.1:*\", \"[::1]:8080\", \"*.example.com:443\"]\n"
                           "deny = [\"evil.example\", \"192.0.2.0/24\", \"[fe80::/10]\"]\n"
                           "internal = [\"::1\", \"fd00::/8\", \"db\", \"*.corp\"]\n"),
              IsOk());
}

TEST(PolicyLoaderTest, BadToolPatternsAreBadPatterns) {
  for (std::string_view bad : {"sh*ll", "shell.*.x", "*.exec", "two words", "shell.", ""}) {
    EXPECT_THAT(LoadWithHead("[tools]\nallow = [\"" + std::string(bad) + "\"]\n"),
                StatusIs(Reason::kPolicyBadPattern))
        << bad;
  }
  EXPECT_THAT(LoadWithHead("[tools]\nallow = [\"*\", \"shell.*\", \"github.create_issue\"]\n"),
              IsOk());
}

TEST(PolicyLoaderTest, DuplicateIdsAcrossRulesFlowsAndApprovals) {
  Status s = LoadWithHead(
      "[[flows]]\nid = \"same\"\nfrom = [\"untrusted\"]\nto = [\"model\"]\n"
      "[[rules]]\nid = \"same\"\neffect = \"deny\"\n");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyDuplicateRule));
  EXPECT_EQ(s.at(), "p.toml:10:6");
  EXPECT_THAT(std::string(s.message()), HasSubstr("rules[0].id: duplicate id \"same\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("p.toml:6:6"));
  EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"deny\"\n"
                           "[[rules]]\nid = \"r\"\neffect = \"allow\"\n"),
              StatusIs(Reason::kPolicyDuplicateRule));
  EXPECT_THAT(LoadWithHead("[[approvals]]\nid = \"x\"\nsyscall = [\"file.write\"]\n"
                           "[[rules]]\nid = \"x\"\neffect = \"deny\"\n"),
              StatusIs(Reason::kPolicyDuplicateRule));
}

TEST(PolicyLoaderTest, ReservedAndMalformedIdsAreInvalid) {
  for (std::string_view id :
       {"fs.read", "default", "secrets.x", "agents.a.spawn", "has space", ""}) {
    EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"" + std::string(id) + "\"\neffect = \"deny\"\n"),
                StatusIs(Reason::kPolicyInvalid))
        << id;
  }
}

TEST(PolicyLoaderTest, UnknownSyscallsAreInvalid) {
  Status s = LoadError(
      "[policy]\nname = \"t\"\n[agents.a]\nsyscalls = [\"file.read\", \"file.delete\"]\n");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("agents.a.syscalls[1]: unknown syscall \"file.delete\""));
  EXPECT_EQ(s.at(), "p.toml:4:26");
  EXPECT_THAT(
      LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"deny\"\nwhen = { syscall = [\"exec\"] }\n"),
      StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[approvals]]\nid = \"r\"\nsyscall = [\"net.send\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[flows]]\nid = \"f\"\nfrom = [\"secret\"]\nto = [\"syscall:exec\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
}

TEST(PolicyLoaderTest, UndefinedAgentReferencesAreInvalid) {
  EXPECT_THAT(LoadWithHead("[secrets.k]\nsource = \"env:K\"\nagents = [\"ghost\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(
      LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"deny\"\nwhen = { agent = \"ghost\" }\n"),
      StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[approvals]]\nid = \"r\"\nsyscall = [\"*\"]\nagents = [\"ghost\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
  // Secrets may name an agent defined further down.
  EXPECT_THAT(LoadError("[policy]\nname = \"t\"\n[secrets.k]\nsource = \"env:K\"\n"
                        "agents = [\"z\"]\n[agents.z]\nsyscalls = []\n"),
              IsOk());
}

TEST(PolicyLoaderTest, SpawnListsChildNamePatterns) {
  // Children are run-scoped agents named by their parent, not policy agents.
  EXPECT_THAT(LoadWithHead("spawn = [\"helper\", \"worker-*\", \"w?\"]\n"), IsOk());
  for (std::string_view bad : {"", "a.b", "has space", "x[1]", "***"}) {
    EXPECT_THAT(LoadWithHead("spawn = [\"" + std::string(bad) + "\"]\n"),
                StatusIs(Reason::kPolicyBadPattern))
        << bad;
  }
}

TEST(PolicyLoaderTest, OtherInvalidValues) {
  EXPECT_THAT(LoadError("[agents.a]\nsyscalls = []\n"), StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadError("[policy]\nname = \"\"\n"), StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadError("[policy]\nname = \"t\"\nmode = \"audit\"\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadError("[policy]\nname = \"t\"\n[agents.\"bad name\"]\nsyscalls = []\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[agents.b]\nspawn = []\n"), StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[budgets.default]\ntool_calls = -1\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[secrets.k]\nsource = \"vault:k\"\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[secrets.k]\nsource = \"file:relative\"\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[secrets.k]\nsource = \"env:\"\n"), StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[models.endpoints]]\npattern = \"x\"\nurl = \"ftp://x\"\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"permit\"\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"r\"\neffect = \"deny\"\ntimeout_ms = 5\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[rules]]\nid = \"r\"\n"), StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[flows]]\nid = \"f\"\nfrom = []\nto = [\"model\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[flows]]\nid = \"f\"\nfrom = [\"Bad Label\"]\nto = [\"model\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[tools.registry]]\nname = \"t\"\ncommand = []\n"),
              StatusIs(Reason::kPolicyInvalid));
  EXPECT_THAT(LoadWithHead("[[tools.registry]]\nname = \"t\"\ncommand = [\"/x\"]\n"
                           "[[tools.registry]]\nname = \"t\"\ncommand = [\"/y\"]\n"),
              StatusIs(Reason::kPolicyInvalid));
}

TEST(PolicyLoaderTest, BadFlowTargetsAreBadPatterns) {
  for (std::string_view bad :
       {"shell", "tool:", "tool:sh*", "net:foo.*.com", "file.write:rel", "secret:[x]", "disk:/x"}) {
    EXPECT_THAT(LoadWithHead("[[flows]]\nid = \"f\"\nfrom = [\"untrusted\"]\nto = [\"" +
                             std::string(bad) + "\"]\n"),
                StatusIs(Reason::kPolicyBadPattern))
        << bad;
  }
}

TEST(PolicyLoaderTest, ParseErrorsCarryThePosition) {
  Status s = LoadError("[policy]\nname = \"t\"\nfs = [\n");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyParseError));
  EXPECT_THAT(std::string(s.at()), HasSubstr("p.toml:"));
  Status dup = LoadError("[policy]\nname = \"t\"\nname = \"u\"\n");
  EXPECT_THAT(dup, StatusIs(Reason::kPolicyParseError));
  EXPECT_EQ(dup.at().substr(0, 8), "p.toml:3");
  EXPECT_THAT(LoadError("{\"policy\": {\"name\": \"t\",}}", "p.json"),
              StatusIs(Reason::kPolicyParseError));
}

TEST(PolicyLoaderTest, DuplicateJsonKeysAreRejected) {
  Status s = LoadError(R"({"policy":{"name":"t"},"agents":{"a":{"syscalls":["*"]}},
                          "rules":[{"id":"r","effect":"deny","effect":"allow"}]})",
                       "p.json");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyParseError));
  EXPECT_EQ(s.at(), "p.json:/rules/0/effect");
}

TEST(PolicyLoaderTest, JsonErrorsUseJsonPointers) {
  Status s = LoadError(
      R"({"policy":{"name":"t"},"agents":{"a":{"syscalls":["*"]}},"fs":{"read":["/a","rel"]}})",
      "p.json");
  EXPECT_THAT(s, StatusIs(Reason::kPolicyBadPattern));
  EXPECT_EQ(s.at(), "p.json:/fs/read/1");
  EXPECT_THAT(std::string(s.message()), HasSubstr("fs.read[1]"));
  EXPECT_THAT(LoadError("[1,2]", "p.json"), StatusIs(Reason::kPolicyParseError));
  EXPECT_THAT(LoadError("{\"policy\":[]}", "p.json"), StatusIs(Reason::kPolicyWrongType));
}

TEST(PolicyLoaderTest, LoadFileChoosesTheFormatByExtension) {
  custos::testing::TempDir dir;
  const std::string json = R"({"policy":{"name":"j"}})";
  for (const char* name : {"p.json", "p.txt"}) {
    const auto path = dir.path() / name;
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(json.c_str(), f);
    std::fclose(f);
    Result<std::shared_ptr<const Policy>> p = Policy::LoadFile(path);
    ASSERT_THAT(p, IsOk()) << name;
    EXPECT_EQ((*p)->name(), "j");
  }
  const auto bad = dir.path() / "p.toml";
  FILE* f = std::fopen(bad.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("[policy]\nname = \"t\"\nbogus = 1\n", f);
  std::fclose(f);
  Status s = Policy::LoadFile(bad).status();
  EXPECT_THAT(s, StatusIs(Reason::kPolicyUnknownKey));
  EXPECT_EQ(s.at(), bad.string() + ":3:1");
}

TEST(PolicyLoaderTest, HomeMustBeSetForTilde) {
  const char* saved = std::getenv("HOME");
  const std::string keep = saved ? saved : "";
  ::unsetenv("HOME");
  EXPECT_THAT(LoadWithHead("[fs]\nread = [\"~/x\"]\n"), StatusIs(Reason::kPolicyInvalid));
  if (saved) {
    ::setenv("HOME", keep.c_str(), 1);
  }
}

}  // namespace
}  // namespace custos::policy
