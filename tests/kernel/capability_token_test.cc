// The kernel's capability tokens (INV-2, docs/spec/capability-token.md): every syscall presents a
// Biscuit token from Kernel::Grant or agent.spawn; forged, damaged, expired, revoked and
// out-of-scope tokens are refused with precise reasons; caveats (max_uses, rate, single use bound
// to one action) are counted in the store.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/builder.h"
#include "custos/caps/token_text.h"
#include "custos/core/clock.h"
#include "custos/crypto/sha256.h"
#include "custos/kernel/token_authority.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::CallJson;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::custos::testing::StatusIs;
using ::custos::testing::WriteFileOrDie;
using ::testing::HasSubstr;

class CapabilityTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "a.txt", "alpha");
    ASSERT_TRUE(h_.Open(h_.Spec()));
  }

  // A file.read of ws/a.txt by `agent` presenting exactly `token`.
  SyscallResult ReadWith(const std::string& token, const std::string& agent = "worker",
                         const std::string& run = "run-1") {
    Json j = CallJson(agent, "file.read", (h_.ws() / "a.txt").string(), Json::object(), {}, run);
    j["token"] = token;
    return h_.ExecRaw(j);
  }

  std::string Grant(const std::string& agent, const GrantOptions& o = {},
                    const std::string& run = "run-1") {
    Result<std::string> t = h_.kernel().Grant(agent, run, o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : "";
  }

  std::string Attenuate(const std::string& token, const std::string& block) {
    Result<caps::PublicKey> root = caps::PublicKey::FromString(h_.kernel().token_root_public_key());
    EXPECT_TRUE(root.ok());
    Result<std::vector<uint8_t>> bytes = caps::DecodeToken(token);
    EXPECT_TRUE(bytes.ok());
    Result<std::vector<uint8_t>> out = caps::Attenuate(*bytes, *root, block);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? caps::EncodeToken(*out) : "";
  }

  // Declared before h_ so it outlives the kernel: the log writer's checkpoint timer reads the
  // clock until the kernel is closed.
  FakeClock clock_;
  KernelHarness h_;
};

TEST_F(CapabilityTokenTest, GrantedTokenAllowsTheAgentsSyscalls) {
  EXPECT_THAT(ReadWith(Grant("worker")), IsAllowed());
}

TEST_F(CapabilityTokenTest, MissingTokenIsRefusedWithTokenMissing) {
  SyscallResult r =
      h_.ExecRaw(CallJson("worker", "file.read", (h_.ws() / "a.txt").string(), Json::object()));
  EXPECT_THAT(r, IsDenied(Reason::kTokenMissing, "capability"));
  // The refusal is recorded like any other (INV-4).
  const std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  const audit::LogEntry* e = testing::FindDecision(entries);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->reason, "token_missing");
}

TEST_F(CapabilityTokenTest, TokenOfAnotherRootIsTokenInvalid) {
  const caps::SecretKey other = caps::SecretKey::Generate();
  Result<std::vector<uint8_t>> forged =
      caps::Mint(other, "right(\"file.read\");\ncheck if principal(\"worker\");\n");
  ASSERT_TRUE(forged.ok());
  SyscallResult r = ReadWith(caps::EncodeToken(*forged));
  EXPECT_THAT(r, IsDenied(Reason::kTokenInvalid, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("invalid_signature"));
}

TEST_F(CapabilityTokenTest, DamagedTokensAreRefusedPrecisely) {
  const std::string good = Grant("worker");
  std::vector<uint8_t> bytes = caps::DecodeToken(good).value();

  // Truncated.
  std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + bytes.size() / 2);
  EXPECT_THAT(ReadWith(caps::EncodeToken(truncated)),
              IsDenied(Reason::kTokenInvalid, "capability"));
  // Every single-bit flip in a sample of positions.
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::vector<uint8_t> flipped = bytes;
    flipped[i] ^= 0x10;
    SyscallResult r = ReadWith(caps::EncodeToken(flipped));
    EXPECT_THAT(r, IsDenied(Reason::kTokenInvalid, "capability")) << "flip at " << i;
  }
  // Not base64url at all.
  EXPECT_THAT(ReadWith("not a token!"), IsDenied(Reason::kTokenInvalid, "capability"));
  // Over the envelope's cap: refused at the schema stage before anything is decoded.
  EXPECT_THAT(ReadWith(std::string(20000, 'A')), IsDenied(Reason::kPayloadTooLarge, "schema"));
}

TEST_F(CapabilityTokenTest, OversizedTokenTextIsPayloadTooLarge) {
  // The caps layer's own cap (64 KiB of token), for callers that skip the envelope.
  EXPECT_THAT(caps::DecodeToken(std::string(100000, 'A')), StatusIs(Reason::kPayloadTooLarge));
}

TEST_F(CapabilityTokenTest, ReorderedOrDuplicatedBlocksAreRefused) {
  const std::string two = Attenuate(Grant("worker"), "check if operation(\"file.read\");\n");
  const std::string three = Attenuate(two, "check if agent(\"worker\");\n");
  ASSERT_THAT(ReadWith(three), IsAllowed());
  // Splice: a block taken from one token onto another token of the same root breaks the chain.
  const std::string other = Attenuate(Grant("worker"), "check if run(\"run-1\");\n");
  const std::vector<uint8_t> a = caps::DecodeToken(three).value();
  const std::vector<uint8_t> b = caps::DecodeToken(other).value();
  // Tokens are protobuf; swapping whole serialized tokens' tails is the simplest reorder that stays
  // decodable: the result must still be refused, as a bad signature or a decoding error.
  std::vector<uint8_t> mixed(a.begin(), a.begin() + a.size() / 2);
  mixed.insert(mixed.end(), b.begin() + b.size() / 2, b.end());
  EXPECT_THAT(ReadWith(caps::EncodeToken(mixed)), IsDenied(Reason::kTokenInvalid, "capability"));
  // Duplicating the whole token's bytes (two authority blocks worth) is no token either.
  std::vector<uint8_t> doubled = a;
  doubled.insert(doubled.end(), a.begin(), a.end());
  EXPECT_THAT(ReadWith(caps::EncodeToken(doubled)), IsDenied(Reason::kTokenInvalid, "capability"));
}

TEST_F(CapabilityTokenTest, TokenOfAnotherPrincipalFailsItsCheck) {
  SyscallResult r = ReadWith(Grant("worker"), "reader");
  EXPECT_THAT(r, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(r.decision.explanation,
              HasSubstr("block 0, check 0: check if principal(\"worker\")"));
}

TEST_F(CapabilityTokenTest, TokenBoundToAnotherRunFailsItsCheck) {
  SyscallResult r = ReadWith(Grant("worker", {}, "run-1"), "worker", "run-2");
  EXPECT_THAT(r, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("check if run(\"run-1\")"));
}

TEST_F(CapabilityTokenTest, NarrowGrantLacksOtherRightsAndPrefixes) {
  GrantOptions o;
  o.syscalls = {"file.read"};
  o.resource_prefixes = {(h_.ws() / "a").string()};
  const std::string t = Grant("worker", o);
  EXPECT_THAT(ReadWith(t), IsAllowed());
  // Inside the prefix but a kind the token does not grant: no right.
  Json write = CallJson("worker", "file.write", (h_.ws() / "a.txt").string(), {{"content", "x"}});
  write["token"] = t;
  EXPECT_THAT(h_.ExecRaw(write), IsDenied(Reason::kCapabilityMissing, "capability"));
  WriteFileOrDie(h_.ws() / "b.txt", "beta");
  Json other = CallJson("worker", "file.read", (h_.ws() / "b.txt").string());
  other["token"] = t;
  SyscallResult r = h_.ExecRaw(other);
  EXPECT_THAT(r, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("starts_with"));
  // The policy is still the second layer: a token cannot grant what the policy does not.
  GrantOptions beyond;
  beyond.syscalls = {"file.write"};
  EXPECT_THAT(h_.kernel().Grant("reader", "run-1", beyond), StatusIs(Reason::kCapabilityMissing));
  EXPECT_THAT(h_.kernel().Grant("ghost", "run-1"), StatusIs(Reason::kUnknownAgent));
}

TEST_F(CapabilityTokenTest, ExpiredTokenIsTokenExpired) {
  FakeClock& clock = clock_;
  KernelHarness::Options ko;
  ko.clock = &clock;
  ASSERT_TRUE(h_.Open(testing::MakePolicy(h_.Spec()), ko));
  GrantOptions o;
  o.ttl_ms = 60'000;
  const std::string t = Grant("worker", o);
  EXPECT_THAT(ReadWith(t), IsAllowed());
  clock.Advance(61'000);
  SyscallResult r = ReadWith(t);
  EXPECT_THAT(r, IsDenied(Reason::kTokenExpired, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("time($time)"));
}

TEST_F(CapabilityTokenTest, RevokedTokenIsRefusedEvenFromTheCache) {
  const std::string t = Grant("worker");
  ASSERT_THAT(ReadWith(t), IsAllowed());  // verified and cached
  ASSERT_THAT(h_.kernel().Revoke(t, "test"), IsOk());
  EXPECT_THAT(ReadWith(t), IsDenied(Reason::kTokenRevoked, "capability"));
  // Persisted: a kernel reopened over the same store refuses it too.
  ASSERT_TRUE(h_.Open(h_.Spec()));
  EXPECT_THAT(ReadWith(t), IsDenied(Reason::kTokenRevoked, "capability"));
  EXPECT_THAT(h_.kernel().Revoke("definitely not a token"), StatusIs(Reason::kTokenInvalid));
}

TEST_F(CapabilityTokenTest, SpawnAttenuatesAndParentRevocationRevokesTheChild) {
  GrantOptions o;
  o.syscalls = {"agent.spawn", "file.read", "memory.alloc"};
  const std::string parent = Grant("worker", o);
  Json spawn = CallJson("worker", "agent.spawn", "helper",
                        {{"syscalls", Json::array({"file.read", "file.write"})}});
  spawn["token"] = parent;
  SyscallResult s = h_.ExecRaw(spawn);
  ASSERT_THAT(s, IsAllowed());
  ASSERT_TRUE(s.frame.contains("token"));
  const std::string child = s.frame["token"].get<std::string>();
  EXPECT_EQ(caps::DecodeToken(child).ok(), true);

  EXPECT_THAT(ReadWith(child, "helper"), IsAllowed());
  // The spawn listed file.write and the policy lets the worker hold it, but the parent's token
  // has no such right: the child's token can never exceed its parent's.
  Json write = CallJson("helper", "file.write", (h_.out() / "c.txt").string(), {{"content", "c"}});
  write["token"] = child;
  EXPECT_THAT(h_.ExecRaw(write), IsDenied(Reason::kCapabilityMissing, "capability"));
  // Nor can the parent use the child's token (the spawn block binds the agent).
  SyscallResult as_parent = ReadWith(child, "worker");
  EXPECT_THAT(as_parent, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(as_parent.decision.explanation, HasSubstr("block 1"));
  // memory.alloc is in the parent's token but not in the spawn list: the spawn block forbids it.
  Json alloc = CallJson("helper", "memory.alloc", "note", {{"value", 1}});
  alloc["token"] = child;
  EXPECT_THAT(h_.ExecRaw(alloc), IsDenied(Reason::kCapabilityMissing, "capability"));

  // Revoking the child leaves the parent alone; revoking the parent revokes the child.
  const std::vector<std::string> child_ids =
      VerifyToken(child, caps::PublicKey::FromString(h_.kernel().token_root_public_key()).value())
          .value()
          ->revocation_ids;
  ASSERT_EQ(child_ids.size(), 2u);
  ASSERT_THAT(h_.kernel().Revoke(child_ids[1]), IsOk());
  EXPECT_THAT(ReadWith(child, "helper"), IsDenied(Reason::kTokenRevoked, "capability"));
  EXPECT_THAT(ReadWith(parent), IsAllowed());
  ASSERT_THAT(h_.kernel().Revoke(parent), IsOk());
  EXPECT_THAT(ReadWith(parent), IsDenied(Reason::kTokenRevoked, "capability"));
}

TEST_F(CapabilityTokenTest, ParentRevocationReachesAFreshChildToken) {
  const std::string parent = Grant("worker");
  Json spawn =
      CallJson("worker", "agent.spawn", "scout", {{"syscalls", Json::array({"file.read"})}});
  spawn["token"] = parent;
  SyscallResult s = h_.ExecRaw(spawn);
  ASSERT_THAT(s, IsAllowed());
  const std::string child = s.frame["token"].get<std::string>();
  ASSERT_THAT(h_.kernel().Revoke(parent), IsOk());
  SyscallResult r = ReadWith(child, "scout");
  EXPECT_THAT(r, IsDenied(Reason::kTokenRevoked, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("block 0"));
}

TEST_F(CapabilityTokenTest, SpawnNarrowsTheChildsTokenToResourcesAndATtl) {
  FakeClock& clock = clock_;
  KernelHarness::Options ko;
  ko.clock = &clock;
  ASSERT_TRUE(h_.Open(testing::MakePolicy(h_.Spec()), ko));
  WriteFileOrDie(h_.ws() / "b.txt", "beta");
  Json spawn = CallJson("worker", "agent.spawn", "helper",
                        {{"syscalls", Json::array({"file.read"})},
                         {"resources", Json::array({(h_.ws() / "a").string()})},
                         {"ttl_ms", 5000}});
  spawn["token"] = Grant("worker");
  SyscallResult s = h_.ExecRaw(spawn);
  ASSERT_THAT(s, IsAllowed());
  const std::string child = s.frame["token"].get<std::string>();
  EXPECT_THAT(ReadWith(child, "helper"), IsAllowed());
  Json other = CallJson("helper", "file.read", (h_.ws() / "b.txt").string());
  other["token"] = child;
  SyscallResult outside = h_.ExecRaw(other);
  EXPECT_THAT(outside, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(outside.decision.explanation, HasSubstr("block 1"));
  clock.Advance(6000);
  EXPECT_THAT(ReadWith(child, "helper"), IsDenied(Reason::kTokenExpired, "capability"));
  // A bad prefix is refused before anything is spawned.
  Json bad = CallJson("worker", "agent.spawn", "scout",
                      {{"syscalls", Json::array({"file.read"})}, {"resources", Json::array({7})}});
  bad["token"] = Grant("worker");
  SyscallResult r = h_.ExecRaw(bad);
  EXPECT_THAT(r, IsDenied(Reason::kSchemaViolation, "effect"));
  EXPECT_EQ(r.decision.at, "/args/resources/0");
}

TEST_F(CapabilityTokenTest, SingleUseTokenIsBoundToOneExactAction) {
  const std::string path = (h_.out() / "once.txt").string();
  const Json args = {{"content", "exactly this"}};
  const std::string digest = crypto::Sha256(CanonicalJson(args).value()).Hex();
  const std::string once =
      Attenuate(Grant("worker"), "max_uses(1);\ncheck if operation(\"file.write\"), resource(\"" +
                                     path + "\"), args_digest(\"" + digest + "\");\n");
  auto write = [&](const Json& a) {
    Json j = CallJson("worker", "file.write", path, a);
    j["token"] = once;
    return h_.ExecRaw(j);
  };
  // Explain does not use it up.
  Syscall probe = ParseSyscall(CallJson("worker", "file.write", path, args)).value();
  probe.token = once;
  EXPECT_TRUE(h_.kernel().Explain(probe).allowed());

  SyscallResult different = write({{"content", "something else"}});
  EXPECT_THAT(different, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(different.decision.explanation, HasSubstr("args_digest"));
  EXPECT_THAT(write(args), IsAllowed());
  SyscallResult again = write(args);
  EXPECT_THAT(again, IsDenied(Reason::kTokenUsesExhausted, "capability"));
  // Attenuating it further does not reset the count: it is kept under the caveat's own block.
  const std::string longer = Attenuate(once, "check if agent(\"worker\");\n");
  Json j = CallJson("worker", "file.write", path, args);
  j["token"] = longer;
  EXPECT_THAT(h_.ExecRaw(j), IsDenied(Reason::kTokenUsesExhausted, "capability"));
}

TEST_F(CapabilityTokenTest, RateCaveatLimitsUsesPerWindow) {
  FakeClock& clock = clock_;
  KernelHarness::Options ko;
  ko.clock = &clock;
  ASSERT_TRUE(h_.Open(testing::MakePolicy(h_.Spec()), ko));
  GrantOptions o;
  o.rate_count = 2;
  o.rate_window_ms = 1000;
  const std::string t = Grant("worker", o);
  EXPECT_THAT(ReadWith(t), IsAllowed());
  EXPECT_THAT(ReadWith(t), IsAllowed());
  EXPECT_THAT(ReadWith(t), IsDenied(Reason::kTokenRateLimited, "capability"));
  clock.Advance(1000);
  EXPECT_THAT(ReadWith(t), IsAllowed());
}

TEST_F(CapabilityTokenTest, MalformedCaveatIsTokenInvalid) {
  SyscallResult r = ReadWith(Attenuate(Grant("worker"), "max_uses(\"many\");\n"));
  EXPECT_THAT(r, IsDenied(Reason::kTokenInvalid, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("max_uses"));
}

TEST_F(CapabilityTokenTest, ExplodingDatalogHitsARunLimit) {
  std::string block;
  for (int i = 0; i < 40; ++i) {
    block += "n(" + std::to_string(i) + ");\n";
  }
  block += "cube($x, $y, $z) <- n($x), n($y), n($z);\n";
  SyscallResult r = ReadWith(Attenuate(Grant("worker"), block));
  EXPECT_THAT(r, IsDenied(Reason::kTokenInvalid, "capability"));
  // 64,000 derived facts pass the fact limit first; a slow build (ThreadSanitizer on a loaded
  // machine) may reach the time limit before it. Either is the run limit stopping the token.
  EXPECT_THAT(r.decision.explanation,
              ::testing::AnyOf(HasSubstr("too_many_facts"), HasSubstr("timeout")));
}

TEST_F(CapabilityTokenTest, LabelsOfInputsAreAmbientFacts) {
  // A block may refuse tainted inputs: `reject if label("untrusted")`.
  const std::string careful = Attenuate(Grant("worker"), "reject if label(\"untrusted\");\n");
  Json alloc = CallJson("worker", "memory.alloc", "note", {{"value", "x"}});
  alloc["labels"] = Json::array({"untrusted"});
  alloc["token"] = careful;
  SyscallResult r = h_.ExecRaw(alloc);
  EXPECT_THAT(r, IsDenied(Reason::kTokenCheckFailed, "capability"));
  EXPECT_THAT(r.decision.explanation, HasSubstr("reject if label(\"untrusted\")"));
  // Raw data without declared labels counts as untrusted; declared trusted data passes.
  Json clean = CallJson("worker", "memory.alloc", "note2", {{"value", "y"}});
  clean["labels"] = Json::array({"trusted"});
  clean["token"] = careful;
  EXPECT_THAT(h_.ExecRaw(clean), IsAllowed());
}

TEST(TokenCacheTest, EvictsLeastRecentlyUsedAndStaysBounded) {
  TokenCache cache(TokenCache::kShards);  // one entry per shard
  const caps::SecretKey root = caps::SecretKey::Generate();
  const std::shared_ptr<const VerifiedToken> entry =
      VerifyToken(caps::EncodeToken(caps::Mint(root, "right(\"assert\");\n").value()),
                  root.public_key())
          .value();
  std::array<uint8_t, 32> a{}, b{};
  a[31] = 3;
  b[31] = 3 + 16;  // same shard
  cache.Insert(a, entry);
  EXPECT_NE(cache.Find(a), nullptr);
  cache.Insert(b, entry);
  EXPECT_EQ(cache.Find(a), nullptr);
  EXPECT_NE(cache.Find(b), nullptr);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenTextTest, RoundTripsAndRejectsNonCanonicalText) {
  for (size_t n = 0; n < 8; ++n) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) {
      bytes[i] = static_cast<uint8_t>(0xF0 + i);
    }
    const std::string text = caps::EncodeToken(bytes);
    if (n == 0) {
      continue;
    }
    EXPECT_EQ(caps::DecodeToken(text).value(), bytes);
    std::string unpadded = text;
    while (!unpadded.empty() && unpadded.back() == '=') {
      unpadded.pop_back();
    }
    EXPECT_EQ(caps::DecodeToken(unpadded).value(), bytes);
  }
  EXPECT_THAT(caps::DecodeToken(""), StatusIs(Reason::kTokenInvalid));
  EXPECT_THAT(caps::DecodeToken("ab+/"), StatusIs(Reason::kTokenInvalid));  // standard alphabet
  EXPECT_THAT(caps::DecodeToken("A"), StatusIs(Reason::kTokenInvalid));
  EXPECT_THAT(caps::DecodeToken("AB=="), StatusIs(Reason::kTokenInvalid));  // non-zero pad bits
}

}  // namespace
}  // namespace custos::kernel
