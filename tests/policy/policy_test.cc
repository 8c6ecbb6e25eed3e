#include "custos/policy/policy.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>

#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::policy {
namespace {

using custos::testing::IsOk;
using custos::testing::StatusIs;
using labels::Confidentiality;
using labels::Integrity;
using labels::LabelSet;
using ::testing::HasSubstr;

using ::custos::testing::SourceDir;

std::shared_ptr<const Policy> Load(std::string_view text) {
  Result<std::shared_ptr<const Policy>> r = Policy::LoadString(text, "test.toml");
  if (!r.ok()) {
    throw std::runtime_error(r.status().ToString());
  }
  return std::move(r).value();
}

std::shared_ptr<const Policy> LoadFull(const char* name = "full.toml") {
  Result<std::shared_ptr<const Policy>> r =
      Policy::LoadFile(SourceDir() / "tests/policy/testdata" / name);
  if (!r.ok()) {
    throw std::runtime_error(r.status().ToString());
  }
  return std::move(r).value();
}

Request Req(std::string_view agent, SyscallKind kind, std::string_view target,
            const LabelSet* labels = nullptr) {
  Request r;
  r.agent = agent;
  r.kind = kind;
  r.target = target;
  r.labels = labels;
  return r;
}

Request Net(std::string_view agent, std::string_view host, uint16_t port,
            std::string_view address = "", const LabelSet* labels = nullptr) {
  Request r = Req(agent, SyscallKind::kNetworkSend, "", labels);
  r.host = host;
  r.port = port;
  r.address = address;
  return r;
}

class FullPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override { policy_ = LoadFull(); }

  Decision Decide(const Request& r) const { return policy_->Decide(r); }
  Decision Decide(SyscallKind k, std::string_view target, std::string_view agent = "coder",
                  const LabelSet* labels = nullptr) const {
    return policy_->Decide(Req(agent, k, target, labels));
  }
  FlowResult Flow(const Request& r) const { return policy_->FlowDecide(r); }

  std::shared_ptr<const Policy> policy_;
};

// ---- metadata --------------------------------------------------------------------------------

TEST_F(FullPolicyTest, ExposesNameModeAndHash) {
  EXPECT_EQ(policy_->name(), "full-example");
  EXPECT_FALSE(policy_->observe_mode());
  EXPECT_EQ(policy_->hash().size(), 64u);
}

TEST_F(FullPolicyTest, ObserveModeStillReturnsTheRealDecision) {
  auto p = Load(R"(
[policy]
name = "o"
mode = "observe"
[agents.a]
syscalls = ["file.read"]
)");
  EXPECT_TRUE(p->observe_mode());
  Decision d = p->Decide(Req("a", SyscallKind::kFileRead, "/etc/passwd"));
  EXPECT_EQ(d.verdict, Verdict::kDeny);
  EXPECT_EQ(d.reason, Reason::kPathNotAllowed);
}

// ---- agents ----------------------------------------------------------------------------------

TEST_F(FullPolicyTest, UnknownAgentIsDeniedWithUnknownAgent) {
  Decision d = Decide(SyscallKind::kFileRead, "/srv/work/a", "mallory");
  EXPECT_EQ(d.verdict, Verdict::kDeny);
  EXPECT_EQ(d.reason, Reason::kUnknownAgent);
  EXPECT_EQ(d.stage, "policy");
  EXPECT_EQ(d.rule, "agents");
}

TEST_F(FullPolicyTest, SyscallOutsideTheAgentsSetIsCapabilityMissing) {
  Decision d = Decide(SyscallKind::kFileWrite, "/srv/work/a", "reviewer");
  EXPECT_EQ(d.reason, Reason::kCapabilityMissing);
  EXPECT_EQ(d.rule, "agents.reviewer.syscalls");
  EXPECT_THAT(d.suggestion, HasSubstr("\"file.write\""));
}

TEST_F(FullPolicyTest, AgentSpecsCarrySyscallsSpawnAndBudgets) {
  const AgentSpec* coder = policy_->FindAgent("coder");
  ASSERT_NE(coder, nullptr);
  EXPECT_TRUE(coder->syscalls.Contains(SyscallKind::kFileRead));
  EXPECT_FALSE(coder->syscalls.Contains(SyscallKind::kMemoryDelete));
  EXPECT_EQ(coder->may_spawn, std::vector<std::string>{"helper-*"});
  EXPECT_EQ(coder->budget.spend_micros, 5'000'000);   // the agent's own
  EXPECT_EQ(coder->budget.model_tokens_in, 500'000);  // [budgets.default]
  const AgentSpec* reviewer = policy_->FindAgent("reviewer");
  ASSERT_NE(reviewer, nullptr);
  EXPECT_EQ(reviewer->budget.tool_calls, 0);  // 0 means none allowed
  EXPECT_EQ(reviewer->budget.model_tokens_in, 100'000);
  const AgentSpec* ops = policy_->FindAgent("ops");
  ASSERT_NE(ops, nullptr);
  EXPECT_EQ(ops->syscalls.bits(), SyscallSet::All().bits());
  EXPECT_EQ(ops->budget.wall_ms, 60'000);
  EXPECT_EQ(ops->budget.model_tokens_in, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(policy_->FindAgent("nobody"), nullptr);
}

TEST(PolicyBudgetTest, MissingLimitsUseBuiltinFiniteDefaults) {
  auto p = Load(R"(
[policy]
name = "b"
[agents.a]
syscalls = []
)");
  const AgentSpec* a = p->FindAgent("a");
  ASSERT_NE(a, nullptr);
  EXPECT_GT(a->budget.model_tokens_in, 0);
  EXPECT_LT(a->budget.model_tokens_in, std::numeric_limits<int64_t>::max());
  EXPECT_LT(a->budget.spend_micros, std::numeric_limits<int64_t>::max());
}

TEST_F(FullPolicyTest, SpawnAllowsOnlyListedChildren) {
  Decision ok = Decide(SyscallKind::kAgentSpawn, "helper-1");
  EXPECT_EQ(ok.verdict, Verdict::kAllow);
  EXPECT_EQ(ok.rule, "agents.coder.spawn");
  Decision no = Decide(SyscallKind::kAgentSpawn, "ops");
  EXPECT_EQ(no.verdict, Verdict::kDeny);
  EXPECT_EQ(no.reason, Reason::kNoMatchingRule);
  EXPECT_EQ(no.rule, "agents.coder.spawn");
  EXPECT_EQ(no.suggestion, "[agents.coder]\nspawn = [\"ops\"]");
}

TEST(PolicySpawnTest, SpawnPatternsMatchChildNames) {
  auto p = Load(R"(
[policy]
name = "s"
[agents.lead]
syscalls = ["agent.spawn"]
spawn = ["worker-*", "critic"]
[agents.solo]
syscalls = ["agent.spawn"]
)");
  EXPECT_EQ(p->Decide(Req("lead", SyscallKind::kAgentSpawn, "worker-1")).rule, "agents.lead.spawn");
  EXPECT_EQ(p->Decide(Req("lead", SyscallKind::kAgentSpawn, "critic")).verdict, Verdict::kAllow);
  EXPECT_EQ(p->Decide(Req("lead", SyscallKind::kAgentSpawn, "critic2")).reason,
            Reason::kNoMatchingRule);
  EXPECT_EQ(p->Decide(Req("solo", SyscallKind::kAgentSpawn, "worker-1")).reason,
            Reason::kNoMatchingRule);
}

TEST_F(FullPolicyTest, KernelInternalSyscallsAreAllowed) {
  Decision d = Decide(SyscallKind::kMemoryWrite, "obj-1");
  EXPECT_EQ(d.verdict, Verdict::kAllow);
  EXPECT_EQ(d.rule, "kernel.internal");
  EXPECT_EQ(d.reason, Reason::kOk);
}

// ---- fs --------------------------------------------------------------------------------------

TEST_F(FullPolicyTest, FsReadAllowsPathsUnderReadGlobs) {
  Decision d = Decide(SyscallKind::kFileRead, "/srv/work/src/main.cc");
  EXPECT_EQ(d.verdict, Verdict::kAllow);
  EXPECT_EQ(d.stage, "policy");
  EXPECT_EQ(d.rule, "fs.read");
  EXPECT_EQ(Decide(SyscallKind::kFileRead, "/etc/hosts").rule, "fs.read");
}

TEST_F(FullPolicyTest, FsReadDenialNamesThePathAndSuggestsAGlob) {
  Decision d = Decide(SyscallKind::kFileRead, "/etc/shadow");
  EXPECT_EQ(d.verdict, Verdict::kDeny);
  EXPECT_EQ(d.reason, Reason::kPathNotAllowed);
  EXPECT_EQ(d.rule, "fs.read");
  EXPECT_EQ(d.explanation, "path /etc/shadow matches no fs.read glob");
  EXPECT_EQ(d.suggestion, "[fs]\nread = [\"/etc/shadow\"]");
}

TEST_F(FullPolicyTest, FileWriteAndPatchUseFsWrite) {
  EXPECT_EQ(Decide(SyscallKind::kFileWrite, "/srv/work/out.txt").rule, "fs.write");
  EXPECT_EQ(Decide(SyscallKind::kFilePatch, "/srv/work/src/a.cc").rule, "fs.write");
  EXPECT_EQ(Decide(SyscallKind::kFileWrite, "/tmp/agent-7/x").rule, "fs.write");
  Decision d = Decide(SyscallKind::kFileWrite, "/etc/hosts");  // readable, not writable
  EXPECT_EQ(d.reason, Reason::kPathNotAllowed);
  EXPECT_EQ(d.rule, "fs.write");
  EXPECT_EQ(d.suggestion, "[fs]\nwrite = [\"/etc/hosts\"]");
  EXPECT_EQ(Decide(SyscallKind::kFilePatch, "/usr/share/dict/words").reason,
            Reason::kPathNotAllowed);
}

TEST_F(FullPolicyTest, FsDenyBeatsReadWriteAndRules) {
  for (SyscallKind k : {SyscallKind::kFileRead, SyscallKind::kFileWrite}) {
    Decision d = Decide(k, "/srv/work/app/.env");
    EXPECT_EQ(d.verdict, Verdict::kDeny);
    EXPECT_EQ(d.reason, Reason::kDeniedByRule);
    EXPECT_EQ(d.rule, "fs.deny");
    EXPECT_THAT(d.explanation, HasSubstr("\"**/.env\""));
  }
  // Rule dict-for-all allows /usr/share/dict/**, but the deny list comes first.
  EXPECT_EQ(Decide(SyscallKind::kFileRead, "/usr/share/dict/.env").rule, "fs.deny");
  EXPECT_EQ(Decide(SyscallKind::kFileRead, "/srv/work/keys/id_ed25519").rule, "fs.deny");
}

TEST_F(FullPolicyTest, NonCanonicalPathsAreDenied) {
  for (std::string_view p : {"/srv/work/../../etc/shadow", "srv/work/a", "/srv/work/./a",
                             "/srv//work/a", "/srv/work/", ""}) {
    Decision d = Decide(SyscallKind::kFileRead, p);
    EXPECT_EQ(d.verdict, Verdict::kDeny) << p;
    EXPECT_EQ(d.reason, Reason::kPathNotAllowed) << p;
  }
}

TEST(PolicyFsTest, TildeExpandsToHomeAtLoadTime) {
  ::setenv("HOME", "/home/tester", 1);
  auto p = Load(R"(
[policy]
name = "t"
[agents.a]
syscalls = ["file.read"]
[fs]
read = ["~/proj/**"]
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/home/tester/proj/x")).rule, "fs.read");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/root/proj/x")).reason,
            Reason::kPathNotAllowed);
}

// ---- net -------------------------------------------------------------------------------------

TEST_F(FullPolicyTest, NetConnectAllowsExactHostAndPort) {
  Decision d = Decide(Net("coder", "api.github.com", 443));
  EXPECT_EQ(d.verdict, Verdict::kAllow);
  EXPECT_EQ(d.rule, "net.connect");
  EXPECT_EQ(Decide(Net("coder", "API.GitHub.com.", 443)).verdict, Verdict::kAllow);
}

TEST_F(FullPolicyTest, NetConnectDenialNamesHostPortAndSuggestsAnEntry) {
  Decision d = Decide(Net("coder", "api.github.com", 80));
  EXPECT_EQ(d.reason, Reason::kHostNotAllowed);
  EXPECT_EQ(d.rule, "net.connect");
  EXPECT_EQ(d.explanation, "host:port api.github.com:80 matches no net.connect entry");
  EXPECT_EQ(d.suggestion, "[net]\nconnect = [\"api.github.com:80\"]");
  EXPECT_EQ(Decide(Net("coder", "evil2.example", 443)).suggestion,
            "[net]\nconnect = [\"evil2.example:443\"]");
}

TEST_F(FullPolicyTest, WildcardDomainMatchesOneOrMoreLabels) {
  EXPECT_EQ(Decide(Net("coder", "raw.githubusercontent.com", 443)).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "a.b.githubusercontent.com", 443)).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "githubusercontent.com", 443)).reason, Reason::kHostNotAllowed);
  EXPECT_EQ(Decide(Net("coder", "evilgithubusercontent.com", 443)).reason, Reason::kHostNotAllowed);
}

TEST_F(FullPolicyTest, CidrEntryAllowsIpLiteralsInside) {
  EXPECT_EQ(Decide(Net("coder", "10.20.3.4", 5432)).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "10.20.3.4", 5432, "10.20.3.4")).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "10.21.0.1", 5432)).reason, Reason::kHostNotAllowed);
  EXPECT_EQ(Decide(Net("coder", "10.20.3.4", 5433)).reason, Reason::kHostNotAllowed);
}

TEST_F(FullPolicyTest, Ipv6LiteralsAndCidrs) {
  EXPECT_EQ(Decide(Net("coder", "::1", 9000, "::1")).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "[::1]", 9000)).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "0:0::1", 9000)).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "::1", 9001)).reason, Reason::kHostNotAllowed);
  EXPECT_EQ(Decide(Net("coder", "fd00:1:2::5", 22, "fd00:1:2::5")).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "fd00:2::5", 22)).reason, Reason::kHostNotAllowed);
  Decision d = Decide(Net("coder", "fd00:2::5", 22));
  EXPECT_EQ(d.suggestion, "[net]\nconnect = [\"[fd00:2::5]:22\"]");
}

TEST_F(FullPolicyTest, DnsRebindingToPrivateAddressIsDenied) {
  EXPECT_EQ(Decide(Net("coder", "api.github.com", 443, "140.82.112.5")).verdict, Verdict::kAllow);
  for (std::string_view addr : {"127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.9", "100.64.0.1",
                                "::1", "fd12::1", "::ffff:127.0.0.1"}) {
    Decision d = Decide(Net("coder", "api.github.com", 443, addr));
    EXPECT_EQ(d.verdict, Verdict::kDeny) << addr;
    EXPECT_EQ(d.reason, Reason::kAddressNotAllowed) << addr;
    EXPECT_THAT(d.explanation, HasSubstr("not a public address")) << addr;
    EXPECT_EQ(d.suggestion, "[net]\ninternal = [\"api.github.com\"]") << addr;
  }
}

TEST_F(FullPolicyTest, InternalHostsMayResolveToPrivateAddresses) {
  EXPECT_EQ(Decide(Net("coder", "db.internal", 5432, "10.1.1.1")).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "localhost", 8080, "127.0.0.1")).verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(Net("coder", "localhost", 8080, "::1")).verdict, Verdict::kAllow);
}

TEST_F(FullPolicyTest, MetadataAddressNeedsAnEntryNamingTheIp) {
  // 169.254.169.254:80 is listed explicitly.
  EXPECT_EQ(Decide(Net("coder", "169.254.169.254", 80, "169.254.169.254")).verdict,
            Verdict::kAllow);
  // ... but not for port 443, and an internal name resolving there is still refused.
  Decision d = Decide(Net("coder", "db.internal", 5432, "169.254.169.254"));
  EXPECT_EQ(d.reason, Reason::kAddressNotAllowed);
  EXPECT_THAT(d.explanation, HasSubstr("link-local"));
}

TEST(PolicyNetTest, SpecialAddressesAreDeniedBehindWildcards) {
  auto p = Load(R"(
[policy]
name = "n"
[agents.a]
syscalls = ["network.send"]
[net]
connect = ["*:443", "*.corp.example:443"]
internal = ["*.corp.example"]
)");
  EXPECT_EQ(p->Decide(Net("a", "example.com", 443, "93.184.216.34")).verdict, Verdict::kAllow);
  struct Case {
    std::string_view addr;
    std::string_view cls;
  };
  for (const Case& c :
       {Case{"169.254.169.254", "link-local"}, Case{"fe80::1", "link-local"},
        Case{"100.100.100.200", "cloud metadata"}, Case{"fd00:ec2::254", "cloud metadata"},
        Case{"0.0.0.0", "unspecified"}, Case{"::", "unspecified"}, Case{"224.0.0.251", "multicast"},
        Case{"ff02::1", "multicast"}, Case{"::ffff:169.254.1.1", "link-local"}}) {
    for (std::string_view host : {"example.com", "x.corp.example"}) {
      Decision d = p->Decide(Net("a", host, 443, c.addr));
      EXPECT_EQ(d.reason, Reason::kAddressNotAllowed) << host << " " << c.addr;
      EXPECT_THAT(d.explanation, HasSubstr(std::string(c.cls))) << c.addr;
    }
  }
  // The internal name may resolve to a private address; a public name may not.
  EXPECT_EQ(p->Decide(Net("a", "x.corp.example", 443, "10.9.9.9")).verdict, Verdict::kAllow);
  EXPECT_EQ(p->Decide(Net("a", "example.com", 443, "10.9.9.9")).reason, Reason::kAddressNotAllowed);
  // "*" does not cover private IP literals either.
  EXPECT_EQ(p->Decide(Net("a", "10.9.9.9", 443, "10.9.9.9")).reason, Reason::kAddressNotAllowed);
  EXPECT_EQ(p->Decide(Net("a", "example.com", 443, "not-an-ip")).reason,
            Reason::kAddressNotAllowed);
}

TEST_F(FullPolicyTest, NetDenyBeatsConnectByHostAndByAddress) {
  Decision d = Decide(Net("coder", "evil.example", 443));
  EXPECT_EQ(d.reason, Reason::kDeniedByRule);
  EXPECT_EQ(d.rule, "net.deny");
  EXPECT_EQ(Decide(Net("coder", "a.tracker.example", 8443)).rule, "net.deny");
  // An allowed name resolving into a denied range.
  Decision r = Decide(Net("coder", "api.github.com", 443, "192.0.2.10"));
  EXPECT_EQ(r.rule, "net.deny");
  EXPECT_THAT(r.explanation, HasSubstr("192.0.2.10"));
}

TEST_F(FullPolicyTest, IsInternalHostCoversLoopbackAndTheInternalList) {
  EXPECT_TRUE(policy_->IsInternalHost("localhost"));
  EXPECT_TRUE(policy_->IsInternalHost("web.localhost"));
  EXPECT_TRUE(policy_->IsInternalHost("127.0.0.1"));
  EXPECT_TRUE(policy_->IsInternalHost("::1"));
  EXPECT_TRUE(policy_->IsInternalHost("db.internal"));
  EXPECT_TRUE(policy_->IsInternalHost("a.b.corp.example"));
  EXPECT_FALSE(policy_->IsInternalHost("corp.example"));
  EXPECT_FALSE(policy_->IsInternalHost("api.github.com"));
  EXPECT_FALSE(policy_->IsInternalHost("10.0.0.1"));
  EXPECT_FALSE(policy_->IsInternalHost(""));
}

TEST_F(FullPolicyTest, NetworkSendWithoutHostIsDenied) {
  EXPECT_EQ(Decide(Net("coder", "", 443)).reason, Reason::kHostNotAllowed);
}

// ---- tools -----------------------------------------------------------------------------------

TEST_F(FullPolicyTest, ToolsAllowExactAndPrefixPatterns) {
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "fs.read_file").rule, "tools.allow");
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "git.status").rule, "tools.allow");
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "git.remote.add").rule, "tools.allow");
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "git").reason, Reason::kToolNotAllowed);
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "gitx.status").reason, Reason::kToolNotAllowed);
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "fs.read_file2").reason, Reason::kToolNotAllowed);
}

TEST_F(FullPolicyTest, UnknownToolsFailClosedForInvokeAndDescribe) {
  for (SyscallKind k : {SyscallKind::kToolInvoke, SyscallKind::kToolDescribe}) {
    Decision d = Decide(k, "rm_rf");
    EXPECT_EQ(d.verdict, Verdict::kDeny);
    EXPECT_EQ(d.reason, Reason::kToolNotAllowed);
    EXPECT_EQ(d.rule, "tools.allow");
    EXPECT_EQ(d.explanation, "tool rm_rf matches no tools.allow pattern");
    EXPECT_EQ(d.suggestion, "[tools]\nallow = [\"rm_rf\"]");
  }
  EXPECT_EQ(Decide(SyscallKind::kToolDescribe, "search").rule, "tools.allow");
}

TEST_F(FullPolicyTest, ToolsDenyBeatsAllow) {
  Decision d = Decide(SyscallKind::kToolInvoke, "git.push_force");
  EXPECT_EQ(d.reason, Reason::kToolNotAllowed);
  EXPECT_EQ(d.rule, "tools.deny");
}

TEST_F(FullPolicyTest, RegistryBecomesToolSpecs) {
  ASSERT_EQ(policy_->tools().size(), 2u);
  const ToolSpec* shell = policy_->FindTool("shell.exec");
  ASSERT_NE(shell, nullptr);
  EXPECT_EQ(shell->command.front(), "/usr/bin/env");
  EXPECT_EQ(shell->timeout_ms, 30'000);
  EXPECT_EQ(shell->input_schema["properties"]["cmd"]["maxLength"], 4096);
  EXPECT_EQ(shell->labels, (std::vector<std::string>{"untrusted", "external", "source:shell"}));
  const ToolSpec* search = policy_->FindTool("search");
  ASSERT_NE(search, nullptr);
  EXPECT_EQ(search->input_schema["type"], "object");  // parsed from a JSON string
  EXPECT_EQ(search->timeout_ms, 10'000);
  EXPECT_EQ(search->labels, (std::vector<std::string>{"untrusted", "external"}));
  EXPECT_EQ(policy_->FindTool("git.status"), nullptr);
}

// ---- models ----------------------------------------------------------------------------------

TEST_F(FullPolicyTest, ModelsAllowGlobs) {
  EXPECT_EQ(Decide(SyscallKind::kModelCall, "gpt-4o-mini").rule, "models.allow");
  EXPECT_EQ(Decide(SyscallKind::kModelCall, "claude-3.5-sonnet").rule, "models.allow");
  EXPECT_EQ(Decide(SyscallKind::kModelCall, "local/llama/3-8b").rule, "models.allow");
  Decision d = Decide(SyscallKind::kModelCall, "mistral-large");
  EXPECT_EQ(d.reason, Reason::kModelNotAllowed);
  EXPECT_EQ(d.rule, "models.allow");
  EXPECT_EQ(d.suggestion, "[models]\nallow = [\"mistral-large\"]");
}

TEST_F(FullPolicyTest, FindModelReturnsTheFirstMatchingEndpoint) {
  const ModelEndpoint* m = policy_->FindModel("gpt-4o");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->url, "https://api.openai.com/v1");
  EXPECT_EQ(m->micros_per_1k_tokens_in, 2500);
  EXPECT_EQ(m->micros_per_1k_tokens_out, 10000);
  const ModelEndpoint* local = policy_->FindModel("local/qwen");
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->micros_per_1k_tokens_in, 0);
  EXPECT_EQ(policy_->FindModel("claude-3"), nullptr);
}

// ---- secrets ---------------------------------------------------------------------------------

TEST_F(FullPolicyTest, SecretsOpenForListedAgentsAndDestinations) {
  Request r = Req("coder", SyscallKind::kSecretOpen, "openai_key");
  EXPECT_EQ(Decide(r).rule, "secrets.openai_key");
  r.destination = "api.openai.com:443";
  EXPECT_EQ(Decide(r).verdict, Verdict::kAllow);
  r.destination = "evil.example:443";
  Decision d = Decide(r);
  EXPECT_EQ(d.reason, Reason::kSecretNotAllowed);
  EXPECT_EQ(d.rule, "secrets.openai_key");
  EXPECT_EQ(d.suggestion, "[secrets.openai_key]\ndestinations = [\"evil.example:443\"]");
  r.destination = "api.openai.com";
  EXPECT_EQ(Decide(r).reason, Reason::kSecretNotAllowed);  // not host:port

  Request gh = Req("coder", SyscallKind::kSecretOpen, "github_token");
  gh.destination = "objects.githubusercontent.com:443";
  EXPECT_EQ(Decide(gh).verdict, Verdict::kAllow);
}

TEST_F(FullPolicyTest, SecretsDenyOtherAgentsAndUnknownSecrets) {
  Decision other = Decide(SyscallKind::kSecretOpen, "openai_key", "ops");
  EXPECT_EQ(other.reason, Reason::kSecretNotAllowed);
  EXPECT_EQ(other.suggestion, "[secrets.openai_key]\nagents = [\"ops\"]");
  EXPECT_EQ(Decide(SyscallKind::kSecretOpen, "github_token", "ops").verdict, Verdict::kAllow);
  Decision unknown = Decide(SyscallKind::kSecretOpen, "aws_key");
  EXPECT_EQ(unknown.reason, Reason::kSecretNotAllowed);
  EXPECT_EQ(unknown.rule, "secrets");
}

TEST_F(FullPolicyTest, SecretSpecsAreExposed) {
  ASSERT_EQ(policy_->secrets().size(), 2u);
  const SecretSpec* s = policy_->FindSecret("github_token");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->source, "file:/run/secrets/github");
  EXPECT_EQ(s->agents, (std::vector<std::string>{"coder", "ops"}));
  EXPECT_EQ(s->destinations.size(), 2u);
  EXPECT_EQ(policy_->FindSecret("nope"), nullptr);
}

TEST(PolicySecretTest, RulesCannotWidenASecretsAgentsOrDestinations) {
  auto p = Load(R"(
[policy]
name = "s"
[agents.a]
syscalls = ["secret.open"]
[agents.b]
syscalls = ["secret.open"]
[secrets.k]
source = "env:K"
agents = ["a"]
destinations = ["api.x.com:443"]
[[rules]]
id = "open-all"
effect = "allow"
when = { syscall = ["secret.open"] }
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kSecretOpen, "k")).rule, "open-all");
  EXPECT_EQ(p->Decide(Req("b", SyscallKind::kSecretOpen, "k")).reason, Reason::kSecretNotAllowed);
  Request r = Req("a", SyscallKind::kSecretOpen, "k");
  r.destination = "evil.example:443";
  EXPECT_EQ(p->Decide(r).reason, Reason::kSecretNotAllowed);
}

TEST(PolicySecretTest, McpDestinationsNameGatewayServersByGlob) {
  auto p = Load(R"(
[policy]
name = "s"
[agents.a]
syscalls = ["secret.open"]
[secrets.k]
source = "env:K"
agents = ["a"]
destinations = ["api.x.com:443", "mcp:gh-*"]
)");
  Request r = Req("a", SyscallKind::kSecretOpen, "k");
  r.destination = "mcp:gh-prod";
  EXPECT_TRUE(p->Decide(r).allowed());
  r.destination = "mcp:other";
  Decision d = p->Decide(r);
  EXPECT_EQ(d.reason, Reason::kSecretNotAllowed);
  EXPECT_THAT(d.explanation, HasSubstr("MCP server other matches no"));
  EXPECT_EQ(d.suggestion, "[secrets.k]\ndestinations = [\"mcp:other\"]");
  r.destination = "api.x.com:443";
  EXPECT_TRUE(p->Decide(r).allowed()) << "endpoints still match as before";
  EXPECT_THAT(Policy::LoadString(R"(
[policy]
name = "s"
[agents.a]
syscalls = ["secret.open"]
[secrets.k]
source = "env:K"
agents = ["a"]
destinations = ["mcp:gh[1]"]
)",
                                 "test.toml"),
              StatusIs(Reason::kPolicyBadPattern));
}

// ---- rules -----------------------------------------------------------------------------------

constexpr std::string_view kRulesHeader = R"(
[policy]
name = "r"
[agents.a]
syscalls = ["*"]
[agents.b]
syscalls = ["*"]
[fs]
read = ["/data/**"]
)";

TEST(PolicyRulesTest, FirstMatchWins) {
  auto deny_first = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "deny-x"
effect = "deny"
when = { syscall = ["file.read"], target = "/data/x/**" }
message = "x is off limits"
[[rules]]
id = "allow-data"
effect = "allow"
when = { syscall = ["file.read"], target = "/data/**" }
)");
  Decision d = deny_first->Decide(Req("a", SyscallKind::kFileRead, "/data/x/1"));
  EXPECT_EQ(d.reason, Reason::kDeniedByRule);
  EXPECT_EQ(d.rule, "deny-x");
  EXPECT_EQ(d.explanation, "rule 'deny-x' denies file.read /data/x/1: x is off limits");
  EXPECT_THAT(d.suggestion, HasSubstr("test.toml:"));
  EXPECT_EQ(deny_first->Decide(Req("a", SyscallKind::kFileRead, "/data/y")).rule, "allow-data");

  auto allow_first = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "allow-data"
effect = "allow"
when = { syscall = ["file.read"], target = "/data/**" }
[[rules]]
id = "deny-x"
effect = "deny"
when = { syscall = ["file.read"], target = "/data/x/**" }
)");
  EXPECT_EQ(allow_first->Decide(Req("a", SyscallKind::kFileRead, "/data/x/1")).rule, "allow-data");
}

TEST(PolicyRulesTest, FirstMatchWinsAcrossExactAndGlobTargets) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "glob-first"
effect = "deny"
when = { target = "/data/*" }
[[rules]]
id = "exact-second"
effect = "allow"
when = { target = "/data/f" }
[[rules]]
id = "any-third"
effect = "allow"
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/data/f")).rule, "glob-first");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/data/g/h")).rule, "any-third");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kMemoryRead, "m")).rule, "any-third");
}

TEST(PolicyRulesTest, RuleAllowsBeyondTheDomainSection) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "etc-hosts"
effect = "allow"
when = { syscall = ["file.read"], target = ["/etc/hosts", "/etc/resolv.conf"] }
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/etc/resolv.conf")).rule, "etc-hosts");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/etc/passwd")).reason,
            Reason::kPathNotAllowed);
}

TEST(PolicyRulesTest, DenyListBeatsRule) {
  auto p = Load(std::string(kRulesHeader) + R"(
[tools]
allow = ["*"]
deny = ["shell.*"]
[net]
deny = ["evil.example:*"]
[[rules]]
id = "allow-everything"
effect = "allow"
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kToolInvoke, "shell.exec")).rule, "tools.deny");
  EXPECT_EQ(p->Decide(Net("a", "evil.example", 443)).rule, "net.deny");
  EXPECT_EQ(p->Decide(Net("a", "good.example", 443)).rule, "allow-everything");
}

TEST(PolicyRulesTest, NetworkTargetsAreUrlGlobs) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "gh-issues"
effect = "allow"
when = { syscall = ["network.send"], target = "https://api.github.com/repos/*/*/issues/**" }
)");
  Request r = Net("a", "api.github.com", 443);
  r.target = "https://api.github.com/repos/acme/app/issues/7/comments";
  EXPECT_EQ(p->Decide(r).rule, "gh-issues");
  r.target = "https://api.github.com/repos/acme/app/pulls/7";
  EXPECT_EQ(p->Decide(r).reason, Reason::kHostNotAllowed);
}

TEST(PolicyRulesTest, RulesCannotBypassTheAddressGuard) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "any-net"
effect = "allow"
when = { syscall = ["network.send"] }
)");
  EXPECT_EQ(p->Decide(Net("a", "example.com", 443, "93.184.216.34")).rule, "any-net");
  EXPECT_EQ(p->Decide(Net("a", "example.com", 443, "127.0.0.1")).reason,
            Reason::kAddressNotAllowed);
  EXPECT_EQ(p->Decide(Net("a", "example.com", 443, "169.254.169.254")).reason,
            Reason::kAddressNotAllowed);
}

TEST(PolicyRulesTest, AgentAndLabelConditions) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "b-only"
effect = "deny"
when = { syscall = ["file.read"], agent = "b" }
[[rules]]
id = "tainted"
effect = "deny"
when = { syscall = ["memory.write"], labels_reach = ["untrusted"] }
[[rules]]
id = "clean-only"
effect = "allow"
when = { syscall = ["agent.send"], labels_below = ["trusted", "private"] }
)");
  EXPECT_EQ(p->Decide(Req("b", SyscallKind::kFileRead, "/data/x")).rule, "b-only");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/data/x")).rule, "fs.read");

  const LabelSet untrusted = LabelSet::Untrusted();
  const LabelSet poisoned(Integrity::kPoisonedSuspect, Confidentiality::kPublic, {"external"});
  const LabelSet clean;
  const LabelSet priv(Integrity::kTrusted, Confidentiality::kPrivate);
  const LabelSet secret(Integrity::kTrusted, Confidentiality::kSecret);
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kMemoryWrite, "o", &untrusted)).rule, "tainted");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kMemoryWrite, "o", &poisoned)).rule, "tainted");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kMemoryWrite, "o", &clean)).rule, "kernel.internal");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kMemoryWrite, "o")).rule, "kernel.internal");

  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kAgentSend, "b", &clean)).rule, "clean-only");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kAgentSend, "b", &priv)).rule, "clean-only");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kAgentSend, "b", &secret)).rule, "kernel.internal");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kAgentSend, "b", &untrusted)).rule, "kernel.internal");
}

TEST(PolicyRulesTest, RuleCanDenyKernelInternalSyscalls) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "no-delete"
effect = "deny"
when = { syscall = ["memory.delete"] }
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kMemoryDelete, "o")).reason, Reason::kDeniedByRule);
}

TEST(PolicyRulesTest, ToolTargetsUseDotSeparatedGlobs) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "gh-one-level"
effect = "allow"
when = { syscall = ["tool.invoke"], target = "github.*" }
[[rules]]
id = "mcp-deep"
effect = "allow"
when = { syscall = ["tool.invoke"], target = "mcp.**" }
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kToolInvoke, "github.create_issue")).rule,
            "gh-one-level");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kToolInvoke, "github.issues.create")).reason,
            Reason::kToolNotAllowed);
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kToolInvoke, "mcp.fs.read")).rule, "mcp-deep");
}

TEST(PolicyRulesTest, RequireApprovalRuleCarriesItsTimeout) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[rules]]
id = "ask"
effect = "require_approval"
when = { syscall = ["file.read"], target = "/data/pii/**" }
timeout_ms = 1234
message = "PII"
)");
  Decision d = p->Decide(Req("a", SyscallKind::kFileRead, "/data/pii/1"));
  EXPECT_EQ(d.verdict, Verdict::kRequireApproval);
  EXPECT_EQ(d.reason, Reason::kApprovalRequired);
  EXPECT_EQ(d.rule, "ask");
  EXPECT_THAT(d.explanation, HasSubstr("PII"));
  EXPECT_EQ(p->ApprovalTimeoutMs("ask"), 1234);
}

// ---- approvals -------------------------------------------------------------------------------

TEST_F(FullPolicyTest, ApprovalTurnsAnAllowIntoRequireApproval) {
  Decision d = Decide(SyscallKind::kToolInvoke, "git.commit");
  EXPECT_EQ(d.verdict, Verdict::kRequireApproval);
  EXPECT_EQ(d.reason, Reason::kApprovalRequired);
  EXPECT_EQ(d.rule, "approve-git-writes");
  EXPECT_THAT(d.explanation, HasSubstr("allowed by tools.allow"));
  EXPECT_EQ(policy_->ApprovalTimeoutMs("approve-git-writes"), 900'000);
  // Other tools and other agents are unaffected.
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "git.status").verdict, Verdict::kAllow);
  EXPECT_EQ(Decide(SyscallKind::kToolInvoke, "git.commit", "ops").rule, "tools.allow");
}

TEST(PolicyApprovalTest, ApprovalsApplyAfterRuleAllowsButNeverLiftADeny) {
  auto p = Load(std::string(kRulesHeader) + R"(
[[approvals]]
id = "approve-data-reads"
syscall = ["file.read"]
target = "/data/**"
[[rules]]
id = "allow-etc"
effect = "allow"
when = { syscall = ["file.read"], target = "/etc/*" }
[[approvals]]
id = "approve-etc"
syscall = ["file.read"]
target = ["/etc/hosts"]
agents = ["b"]
)");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/data/x")).rule, "approve-data-reads");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/etc/hosts")).rule, "allow-etc");
  Decision b = p->Decide(Req("b", SyscallKind::kFileRead, "/etc/hosts"));
  EXPECT_EQ(b.verdict, Verdict::kRequireApproval);
  EXPECT_EQ(b.rule, "approve-etc");
  EXPECT_EQ(p->Decide(Req("a", SyscallKind::kFileRead, "/var/x")).verdict, Verdict::kDeny);
}

TEST_F(FullPolicyTest, ApprovalTimeoutDefaultsToThePolicyValue) {
  EXPECT_EQ(policy_->ApprovalTimeoutMs("no-such-rule"), 120'000);
  EXPECT_EQ(policy_->ApprovalTimeoutMs("gated-model"), 45'000);
  EXPECT_EQ(policy_->ApprovalTimeoutMs("untrusted-writes"), 600'000);
}

TEST_F(FullPolicyTest, LabelConditionedRuleRequiresApprovalForTaintedModelCalls) {
  const LabelSet untrusted = LabelSet::Untrusted();
  EXPECT_EQ(Decide(SyscallKind::kModelCall, "gpt-4o-large", "coder", &untrusted).verdict,
            Verdict::kRequireApproval);
  EXPECT_EQ(Decide(SyscallKind::kModelCall, "gpt-4o-large").rule, "models.allow");
}

// ---- flows -----------------------------------------------------------------------------------

TEST_F(FullPolicyTest, FlowUntrustedToShellIsDenied) {
  const LabelSet untrusted(Integrity::kUntrusted, Confidentiality::kPublic, {"external"});
  FlowResult f = Flow(Req("coder", SyscallKind::kToolInvoke, "shell.exec", &untrusted));
  EXPECT_EQ(f.verdict, Verdict::kDeny);
  EXPECT_EQ(f.rule, "untrusted-to-shell");
  EXPECT_THAT(f.explanation,
              HasSubstr("flow 'untrusted-to-shell' forbids untrusted -> tool:shell.*"));
  EXPECT_THAT(f.explanation, HasSubstr("must not drive a shell"));
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kToolInvoke, "search", &untrusted)).verdict,
            Verdict::kAllow);
  const LabelSet trusted;
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kToolInvoke, "shell.exec", &trusted)).verdict,
            Verdict::kAllow);
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kToolInvoke, "shell.exec")).verdict, Verdict::kAllow);
}

TEST_F(FullPolicyTest, FlowPrivateToExternalNetIsDenied) {
  const LabelSet priv(Integrity::kTrusted, Confidentiality::kPrivate);
  EXPECT_EQ(Flow(Net("coder", "api.github.com", 443, "", &priv)).rule, "private-egress");
  EXPECT_EQ(Flow(Net("coder", "db.internal", 5432, "", &priv)).verdict, Verdict::kAllow);
  EXPECT_EQ(Flow(Net("coder", "x.corp.example", 443, "", &priv)).verdict, Verdict::kAllow);
  EXPECT_EQ(Flow(Net("coder", "localhost", 8080, "", &priv)).verdict, Verdict::kAllow);
  // secret reaches private, so secret data is caught too.
  const LabelSet secret(Integrity::kTrusted, Confidentiality::kSecret);
  EXPECT_EQ(Flow(Net("coder", "api.github.com", 443, "", &secret)).rule, "private-egress");
}

TEST_F(FullPolicyTest, FlowSecretToModelIsDenied) {
  const LabelSet secret(Integrity::kTrusted, Confidentiality::kSecret);
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kModelCall, "gpt-4o", &secret)).rule, "secret-to-model");
  const LabelSet priv(Integrity::kTrusted, Confidentiality::kPrivate);
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kModelCall, "gpt-4o", &priv)).verdict, Verdict::kAllow);
}

TEST_F(FullPolicyTest, FlowRequireApprovalForFileWritesAndAgentTargets) {
  const LabelSet untrusted = LabelSet::Untrusted();
  for (SyscallKind k : {SyscallKind::kFileWrite, SyscallKind::kFilePatch}) {
    FlowResult f = Flow(Req("coder", k, "/srv/work/a.txt", &untrusted));
    EXPECT_EQ(f.verdict, Verdict::kRequireApproval);
    EXPECT_EQ(f.rule, "untrusted-writes");
  }
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kFileWrite, "/tmp/agent-1/a", &untrusted)).verdict,
            Verdict::kAllow);
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kAgentSend, "reviewer", &untrusted)).verdict,
            Verdict::kRequireApproval);
  EXPECT_EQ(Flow(Req("coder", SyscallKind::kAgentSend, "ops", &untrusted)).verdict,
            Verdict::kAllow);
}

TEST(PolicyFlowTest, EveryTargetKindMatchesItsSyscalls) {
  auto p = Load(R"(
[policy]
name = "f"
[agents.a]
syscalls = ["*"]
[[flows]]
id = "to-host"
from = ["external"]
to = ["net:*.partner.example:443"]
[[flows]]
id = "to-model"
from = ["external"]
to = ["model:gpt-*"]
[[flows]]
id = "to-secret"
from = ["external"]
to = ["secret:prod_*"]
[[flows]]
id = "to-syscall"
from = ["external"]
to = ["syscall:memory.delete"]
[[flows]]
id = "to-agent"
from = ["external"]
to = ["agent:admin"]
)");
  const LabelSet ext(Integrity::kTrusted, Confidentiality::kPublic, {"external"});
  EXPECT_EQ(p->FlowDecide(Net("a", "api.partner.example", 443, "", &ext)).rule, "to-host");
  EXPECT_EQ(p->FlowDecide(Net("a", "api.partner.example", 80, "", &ext)).verdict, Verdict::kAllow);
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kModelCall, "gpt-4o", &ext)).rule, "to-model");
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kModelCall, "claude", &ext)).verdict,
            Verdict::kAllow);
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kSecretOpen, "prod_db", &ext)).rule, "to-secret");
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kSecretOpen, "dev_db", &ext)).verdict,
            Verdict::kAllow);
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kMemoryDelete, "o", &ext)).rule, "to-syscall");
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kAgentSend, "admin", &ext)).rule, "to-agent");
  // A target kind never matches other syscalls.
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kFileRead, "admin", &ext)).verdict,
            Verdict::kAllow);
  // Labels that do not reach `from` never match.
  const LabelSet plain;
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kModelCall, "gpt-4o", &plain)).verdict,
            Verdict::kAllow);
}

TEST(PolicyFlowTest, DenyBeatsRequireApprovalWhateverTheOrder) {
  auto p = Load(R"(
[policy]
name = "f"
[agents.a]
syscalls = ["*"]
[[flows]]
id = "ask-first"
from = ["untrusted"]
to = ["tool:*"]
action = "require_approval"
[[flows]]
id = "deny-second"
from = ["untrusted"]
to = ["tool:shell.*"]
)");
  const LabelSet untrusted = LabelSet::Untrusted();
  EXPECT_EQ(p->FlowDecide(Req("a", SyscallKind::kToolInvoke, "shell.sh", &untrusted)).rule,
            "deny-second");
  FlowResult ask = p->FlowDecide(Req("a", SyscallKind::kToolInvoke, "search", &untrusted));
  EXPECT_EQ(ask.verdict, Verdict::kRequireApproval);
  EXPECT_EQ(ask.rule, "ask-first");
  EXPECT_THAT(ask.explanation, HasSubstr("requires a person to approve untrusted -> tool:*"));
}

// ---- format equivalence and hash -------------------------------------------------------------

TEST(PolicyHashTest, TomlAndJsonOfTheSameDocumentAreEquivalent) {
  auto toml = LoadFull("full.toml");
  auto json = LoadFull("full.json");
  EXPECT_EQ(toml->hash(), json->hash());
  EXPECT_EQ(toml->name(), json->name());
  const LabelSet untrusted = LabelSet::Untrusted();
  const Request reqs[] = {
      Req("coder", SyscallKind::kFileRead, "/srv/work/a"),
      Req("coder", SyscallKind::kFileRead, "/etc/shadow"),
      Req("coder", SyscallKind::kFileWrite, "/srv/work/.bashrc"),
      Req("coder", SyscallKind::kToolInvoke, "git.commit"),
      Req("coder", SyscallKind::kModelCall, "gpt-4o-large", &untrusted),
      Net("coder", "api.github.com", 443, "127.0.0.1"),
      Req("ops", SyscallKind::kSecretOpen, "openai_key"),
  };
  for (const Request& r : reqs) {
    Decision a = toml->Decide(r);
    Decision b = json->Decide(r);
    EXPECT_EQ(a.verdict, b.verdict) << r.target;
    EXPECT_EQ(a.rule, b.rule) << r.target;
    EXPECT_EQ(a.reason, b.reason) << r.target;
  }
  EXPECT_EQ(toml->FindTool("shell.exec")->input_schema, json->FindTool("shell.exec")->input_schema);
}

TEST(PolicyHashTest, HashIsStableAndIgnoresLayout) {
  const std::string a = R"(
[policy]
name = "h"
[agents.x]
syscalls = ["file.read"]
[fs]
read = ["/a/**"]
)";
  const std::string b = R"(# same document, other layout
fs = { read = [ "/a/**" ] }
agents.x.syscalls = ["file.read"]
policy.name = "h"
)";
  const std::string c = R"({"policy":{"name":"h"},"fs":{"read":["/a/**"]},
                           "agents":{"x":{"syscalls":["file.read"]}}})";
  const std::string h = std::string(Load(a)->hash());
  EXPECT_EQ(Load(a)->hash(), h);
  EXPECT_EQ(Load(b)->hash(), h);
  EXPECT_EQ(Load(c)->hash(), h);
  EXPECT_NE(Load(a + "write = [\"/b/**\"]\n")->hash(), h);
  // The hash is lowercase hex SHA-256.
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(PolicyHashTest, HashCoversTheExpandedHome) {
  const std::string text = R"(
[policy]
name = "h"
[fs]
read = ["~/x"]
)";
  ::setenv("HOME", "/home/one", 1);
  const std::string one(Load(text)->hash());
  ::setenv("HOME", "/home/two", 1);
  const std::string two(Load(text)->hash());
  EXPECT_NE(one, two);
  const std::string literal(Load(R"(
[policy]
name = "h"
[fs]
read = ["/home/two/x"]
)")
                                ->hash());
  EXPECT_EQ(two, literal);
}

TEST(PolicyLoadTest, ExamplePoliciesLoad) {
  const auto dir = SourceDir() / "examples/policies";
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") {
      continue;
    }
    EXPECT_THAT(Policy::LoadFile(entry.path()), IsOk()) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 2u);
}

TEST(PolicyLoadTest, CodingAgentExampleDecidesAsDocumented) {
  ::setenv("HOME", "/home/dev", 1);
  Result<std::shared_ptr<const Policy>> r =
      Policy::LoadFile(SourceDir() / "examples/policies/coding-agent.toml");
  ASSERT_THAT(r, IsOk());
  const Policy& p = **r;
  EXPECT_EQ(p.Decide(Req("coder", SyscallKind::kFileRead, "/home/dev/src/project/app.py")).rule,
            "fs.read");
  EXPECT_EQ(p.Decide(Req("coder", SyscallKind::kFileRead, "/home/dev/.ssh/id_ed25519")).rule,
            "fs.deny");
  EXPECT_EQ(p.Decide(Req("coder", SyscallKind::kFileWrite,
                         "/home/dev/src/project/.github/workflows/ci.yml"))
                .rule,
            "ci-config");
  EXPECT_EQ(p.Decide(Req("coder", SyscallKind::kToolInvoke, "git.push")).rule, "approve-push");
  EXPECT_EQ(p.Decide(Req("coder", SyscallKind::kAgentSpawn, "helper-1")).verdict, Verdict::kAllow);
  EXPECT_EQ(p.Decide(Net("reviewer", "api.openai.com", 443)).rule, "agents.reviewer.syscalls");
  const LabelSet untrusted = LabelSet::Untrusted();
  EXPECT_EQ(p.FlowDecide(Req("coder", SyscallKind::kToolInvoke, "shell.exec", &untrusted)).rule,
            "untrusted-shell");
  Request open = Req("coder", SyscallKind::kSecretOpen, "github_token");
  open.destination = "api.github.com:443";
  EXPECT_EQ(p.Decide(open).verdict, Verdict::kAllow);
  EXPECT_EQ(p.FindSecret("github_token")->source, "file:/home/dev/.config/custos/github-token");
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// docs/policy.md shows examples/policies/coding-agent.toml verbatim, and every complete policy in
// the document (a ```toml block with a [policy] table) loads.
TEST(PolicyLoadTest, DocsExamplesAreCurrentAndLoad) {
  const std::string doc = ReadFile(SourceDir() / "docs/policy.md");
  ASSERT_FALSE(doc.empty());
  size_t pos = 0;
  size_t complete = 0;
  bool found_example = false;
  const std::string example = ReadFile(SourceDir() / "examples/policies/coding-agent.toml");
  while ((pos = doc.find("```toml\n", pos)) != std::string::npos) {
    const size_t start = pos + 8;
    const size_t end = doc.find("```\n", start);
    ASSERT_NE(end, std::string::npos);
    const std::string block = doc.substr(start, end - start);
    pos = end + 4;
    if (block.find("[policy]") == std::string::npos) {
      continue;
    }
    ++complete;
    EXPECT_THAT(Policy::LoadString(block, "docs/policy.md"), IsOk());
    found_example = found_example || block == example;
  }
  EXPECT_GE(complete, 1u);
  EXPECT_TRUE(found_example) << "docs/policy.md must show examples/policies/coding-agent.toml";
}

TEST(PolicyLoadTest, MissingFileIsIoError) {
  EXPECT_THAT(Policy::LoadFile("/nonexistent/policy.toml"), StatusIs(Reason::kIoError));
}

}  // namespace
}  // namespace custos::policy

namespace custos::policy {
namespace {

TEST(PolicyInternalHostTest, LoopbackIsInternalOnlyWhenNetInternalIsAbsent) {
  auto implicit =
      Policy::LoadString("[policy]\nname = \"a\"\n[net]\nconnect = [\"127.0.0.1:*\"]\n", "a.toml");
  ASSERT_TRUE(implicit.ok()) << implicit.status();
  EXPECT_TRUE((*implicit)->IsInternalHost("127.0.0.1"));
  EXPECT_TRUE((*implicit)->IsInternalHost("localhost"));
  auto explicit_empty = Policy::LoadString(
      "[policy]\nname = \"b\"\n[net]\nconnect = [\"127.0.0.1:*\"]\ninternal = []\n", "b.toml");
  ASSERT_TRUE(explicit_empty.ok()) << explicit_empty.status();
  EXPECT_FALSE((*explicit_empty)->IsInternalHost("127.0.0.1"));
  EXPECT_FALSE((*explicit_empty)->IsInternalHost("localhost"));
  auto listed = Policy::LoadString(
      "[policy]\nname = \"c\"\n[net]\ninternal = [\"127.0.0.1\", \"*.corp.example\"]\n", "c.toml");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE((*listed)->IsInternalHost("127.0.0.1"));
  EXPECT_TRUE((*listed)->IsInternalHost("git.corp.example"));
  EXPECT_FALSE((*listed)->IsInternalHost("localhost"));
}

}  // namespace
}  // namespace custos::policy
