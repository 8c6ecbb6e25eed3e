// The flight-log test vectors (docs/spec/vectors/flight-log-chain.json, format in
// docs/spec/flight-log.md) are generated here and compared with the checked-in file, so the
// encoding cannot drift silently. After an intended change, regenerate with
//   CUSTOS_REGEN_VECTORS=1 ./custos_audit_test --gtest_filter='FlightLogVectorsTest.*'

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "custos/audit/log_entry.h"
#include "custos/audit/verifier.h"
#include "testing/matchers.h"
#include "testing/vector_file.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;

std::filesystem::path VectorPath() { return testing::VectorFile("flight-log-chain.json"); }

// The entries the vectors cover: an event, a decision, its outcome, and a deny whose strings
// exercise every escaping rule of canonical JSON.
std::vector<LogEntry> VectorEntries() {
  std::vector<LogEntry> out;

  LogEntry start;
  start.time_ms = 1'700'000'000'000;
  start.type = "event";
  start.syscall = "kernel.start";
  start.policy_hash = "5d41402abc4b2a76b9719d911017c592a3f0c1b2e5d6f7a8091a2b3c4d5e6f70";
  start.extra = {{"durability", "group"}, {"identity", "k_7f3a"}, {"policy", "default"}};
  out.push_back(start);

  LogEntry decision;
  decision.time_ms = 1'700'000'000'250;
  decision.type = "decision";
  decision.agent = "researcher";
  decision.run = "run-1";
  decision.syscall_id = "req-0001";
  decision.syscall = "file.read";
  decision.target = "/work/notes/plan.md";
  decision.verdict = "allow";
  decision.stage = "policy";
  decision.rule = "read-notes";
  decision.reason = "ok";
  decision.explanation = "rule read-notes allows file.read on /work/notes/**";
  decision.labels = {"trusted", "private"};
  decision.req_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  decision.policy_hash = start.policy_hash;
  out.push_back(decision);

  LogEntry outcome = decision;
  outcome.time_ms = 1'700'000'000'262;
  outcome.type = "outcome";
  outcome.explanation = "";
  outcome.res_hash = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
  outcome.blob = "h_abcdefghijklmnopqrstuvwxyz";
  outcome.decision_seq = 2;
  outcome.usage = {{"net_bytes_out", 0}, {"tool_calls", 1}, {"wall_ms", 12}};
  out.push_back(outcome);

  LogEntry deny;
  deny.time_ms = 1'700'000'000'300;
  deny.type = "decision";
  deny.agent = "researcher";
  deny.run = "run-1";
  deny.syscall_id = "req-0002";
  deny.syscall = "network.send";
  deny.target = "https://example.com/upload?q=\"x\"";
  deny.verdict = "deny";
  deny.stage = "labels";
  deny.rule = "no-private-egress";
  deny.reason = "flow_violation";
  deny.explanation = std::string("inputs labelled private may not reach external hosts\n\ttab, ") +
                     "backslash \\, bell \x07, nul " + std::string(1, '\0') +
                     ", DEL \x7f, caf\xc3\xa9, \xf0\x9f\x94\x92";
  deny.labels = {"untrusted", "private", "external", "source:example.com"};
  deny.req_hash = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";
  deny.policy_hash = start.policy_hash;
  deny.usage = {{"tool_calls", 0}};
  deny.extra = {{"suggestion", "[[allow]] syscall = \"network.send\""}, {"depth", -1}};
  out.push_back(deny);
  return out;
}

Json GenerateVectors() {
  Json entries = Json::array();
  std::string prev = kGenesisHash;
  int64_t seq = 0;
  for (LogEntry e : VectorEntries()) {
    e.seq = ++seq;
    e.prev_hash = prev;
    Result<std::string> canonical = EncodeCanonical(e);
    EXPECT_THAT(canonical, IsOk());
    e.hash = ChainHash(prev, *canonical);
    store::LogRow row = ToRow(e, *canonical);
    Result<Json> fields = ParseUntrustedJson(*canonical);
    EXPECT_THAT(fields, IsOk());
    entries.push_back({{"fields", *fields},
                       {"canonical", *canonical},
                       {"hash", e.hash},
                       {"jsonl", ToJsonLine(row)}});
    prev = e.hash;
  }
  return {
      {"description",
       "Custos flight-log chain vectors (docs/spec/flight-log.md). For each entry: canonical = "
       "CanonicalJson(fields); hash = SHA-256(hex-decode(fields.prev_hash) || canonical); the "
       "first prev_hash is the genesis hash; each later prev_hash is the previous hash; jsonl is "
       "the export line."},
      {"version", kLogEntryVersion},
      {"genesis_hash", kGenesisHash},
      {"entries", entries},
  };
}

TEST(FlightLogVectorsTest, CheckedInVectorsMatchTheImplementation) {
  const Json generated = GenerateVectors();
  testing::ExpectVectorFileMatches(VectorPath(), generated, "docs/spec/flight-log.md");
}

// Checks the checked-in vectors independently of the generator, the way an external verifier
// would: re-encode, re-hash, follow the chain, verify the JSONL.
TEST(FlightLogVectorsTest, CheckedInVectorsVerifyIndependently) {
  Json v = Json::parse(testing::ReadVectorFile(VectorPath()), nullptr, false);
  ASSERT_TRUE(v.is_object());
  ASSERT_GE(v["entries"].size(), 3u);
  std::string prev = v["genesis_hash"];
  EXPECT_EQ(prev, kGenesisHash);
  std::string jsonl;
  int64_t seq = 0;
  for (const Json& e : v["entries"]) {
    const std::string canonical = e["canonical"];
    auto encoded = CanonicalJson(e["fields"]);
    ASSERT_THAT(encoded, IsOk());
    EXPECT_EQ(*encoded, canonical);
    EXPECT_EQ(e["fields"]["prev_hash"], prev);
    EXPECT_EQ(e["fields"]["seq"], ++seq);
    EXPECT_EQ(ChainHash(prev, canonical), e["hash"]);
    store::LogRow row;
    row.seq = seq;
    row.hash = e["hash"];
    row.canonical = canonical;
    row.time_ms = e["fields"]["time_ms"];
    row.agent = e["fields"]["agent"];
    row.run = e["fields"]["run"];
    row.type = e["fields"]["type"];
    row.verdict = e["fields"]["verdict"];
    row.reason = e["fields"]["reason"];
    auto decoded = DecodeEntry(row);
    ASSERT_THAT(decoded, IsOk());
    auto again = EncodeCanonical(*decoded);
    ASSERT_THAT(again, IsOk());
    EXPECT_EQ(*again, canonical);
    EXPECT_EQ(ToJsonLine(row), e["jsonl"]);
    jsonl += e["jsonl"].get<std::string>() + "\n";
    prev = e["hash"];
  }
  VerifyReport r = VerifyJsonl(jsonl);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_EQ(r.entries, seq);
  EXPECT_EQ(r.head_hash, prev);
}

}  // namespace
}  // namespace custos::audit
