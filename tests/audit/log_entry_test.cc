#include "custos/audit/log_entry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "audit/entry_scan_internal.h"
#include "audit/log_entry_internal.h"
#include "custos/core/encoding.h"
#include "custos/crypto/sha256.h"
#include "testing/matchers.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::HasSubstr;

LogEntry Sample() {
  LogEntry e;
  e.seq = 7;
  e.prev_hash = std::string(64, 'a');
  e.time_ms = 1700000000123;
  e.type = "decision";
  e.agent = "alice";
  e.run = "r1";
  e.syscall_id = "req-1";
  e.syscall = "file.read";
  e.target = "/work/notes.txt";
  e.verdict = "allow";
  e.stage = "policy";
  e.rule = "read-notes";
  e.reason = "ok";
  e.explanation = "rule read-notes allows it";
  e.labels = {"trusted", "private"};
  e.req_hash = std::string(64, 'b');
  e.policy_hash = std::string(64, 'c');
  e.usage = {{"tool_calls", 1}};
  e.extra = Json::object();
  return e;
}

store::LogRow RowOf(const LogEntry& e) {
  auto canonical = EncodeCanonical(e);
  EXPECT_THAT(canonical, IsOk());
  LogEntry hashed = e;
  hashed.hash = ChainHash(e.prev_hash, *canonical);
  return ToRow(hashed, *canonical);
}

TEST(LogEntryTest, CanonicalEncodingHasEveryFieldButHashInSortedOrder) {
  auto c = EncodeCanonical(Sample());
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(*c,
            "{\"agent\":\"alice\",\"blob\":\"\",\"decision_seq\":0,"
            "\"explanation\":\"rule read-notes allows it\",\"extra\":{},"
            "\"labels\":[\"trusted\",\"private\"],\"policy_hash\":\"" +
                std::string(64, 'c') + "\",\"prev_hash\":\"" + std::string(64, 'a') +
                "\",\"reason\":\"ok\",\"req_hash\":\"" + std::string(64, 'b') +
                "\",\"res_hash\":\"\",\"rule\":\"read-notes\",\"run\":\"r1\",\"seq\":7,"
                "\"stage\":\"policy\",\"syscall\":\"file.read\",\"syscall_id\":\"req-1\","
                "\"target\":\"/work/notes.txt\",\"time_ms\":1700000000123,\"type\":\"decision\","
                "\"usage\":{\"tool_calls\":1},\"v\":1,\"verdict\":\"allow\"}");
}

// The definition in docs/spec/flight-log.md: CanonicalJson of a Json object of every field but
// hash. EncodeCanonical writes the same bytes without building the object.
Result<std::string> ReferenceEncoding(const LogEntry& e) {
  Json labels = Json::array();
  for (const auto& l : e.labels) {
    labels.push_back(l);
  }
  Json j = {{"v", kLogEntryVersion},
            {"seq", e.seq},
            {"prev_hash", e.prev_hash},
            {"time_ms", e.time_ms},
            {"type", e.type},
            {"agent", e.agent},
            {"run", e.run},
            {"syscall_id", e.syscall_id},
            {"syscall", e.syscall},
            {"target", e.target},
            {"verdict", e.verdict},
            {"stage", e.stage},
            {"rule", e.rule},
            {"reason", e.reason},
            {"explanation", e.explanation},
            {"labels", labels},
            {"req_hash", e.req_hash},
            {"res_hash", e.res_hash},
            {"blob", e.blob},
            {"decision_seq", e.decision_seq},
            {"policy_hash", e.policy_hash},
            {"usage", e.usage},
            {"extra", e.extra}};
  return CanonicalJson(j);
}

std::string RandomString(std::mt19937& rng) {
  static const std::string kPieces[] = {"a",
                                        "Z",
                                        "0",
                                        " ",
                                        "\"",
                                        "\\",
                                        "/",
                                        "\n",
                                        "\t",
                                        "\r",
                                        "\b",
                                        "\f",
                                        std::string(1, '\0'),
                                        "\x01",
                                        "\x1f",
                                        "\x7f",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x94\x92",
                                        "seq",
                                        "\"seq\":",
                                        "{",
                                        "}",
                                        "[",
                                        "]",
                                        ","};
  std::string s;
  // Mostly short, sometimes long enough for the scanner's 16-byte fast path.
  const int n = static_cast<int>(rng() % 8 == 0 ? rng() % 80 : rng() % 12);
  for (int i = 0; i < n; ++i) {
    s += kPieces[rng() % std::size(kPieces)];
  }
  return s;
}

Json RandomObject(std::mt19937& rng, int depth) {
  Json o = Json::object();
  const int n = static_cast<int>(rng() % 4);
  for (int i = 0; i < n; ++i) {
    const std::string key = RandomString(rng);
    switch (rng() % (depth > 0 ? 5 : 3)) {
      case 0:
        o[key] = static_cast<int64_t>(rng()) - (1LL << 31);
        break;
      case 1:
        o[key] = RandomString(rng);
        break;
      case 2:
        o[key] = (rng() % 2) == 0;
        break;
      case 3:
        o[key] = RandomObject(rng, depth - 1);
        break;
      default:
        o[key] = Json::array({RandomString(rng), 1, nullptr});
    }
  }
  return o;
}

TEST(LogEntryTest, EncodingEqualsCanonicalJsonOfTheFieldObjectOnRandomEntries) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    LogEntry e;
    e.seq = static_cast<int64_t>(rng());
    e.prev_hash = std::string(64, "0123456789abcdef"[rng() % 16]);
    e.time_ms = static_cast<int64_t>(rng()) * 1000 - 5;
    e.decision_seq = static_cast<int64_t>(rng() % 3) - 1;
    for (std::string* s :
         {&e.type, &e.agent, &e.run, &e.syscall_id, &e.syscall, &e.target, &e.verdict, &e.stage,
          &e.rule, &e.reason, &e.explanation, &e.req_hash, &e.res_hash, &e.blob, &e.policy_hash}) {
      *s = RandomString(rng);
    }
    const int labels = static_cast<int>(rng() % 4);
    for (int k = 0; k < labels; ++k) {
      e.labels.push_back(RandomString(rng));
    }
    e.usage = RandomObject(rng, 1);
    e.extra = RandomObject(rng, 2);
    auto fast = EncodeCanonical(e);
    auto reference = ReferenceEncoding(e);
    ASSERT_THAT(fast, IsOk());
    ASSERT_THAT(reference, IsOk());
    ASSERT_EQ(*fast, *reference) << "entry " << i;
    // The scanner finds the chain values where the encoder says it wrote them.
    auto l = internal::ScanEntry(*fast, internal::ScanMode::kCanonical);
    ASSERT_THAT(l, IsOk()) << *fast;
    EXPECT_EQ(l->seq, e.seq);
    internal::EntryLayout written;
    ASSERT_THAT(internal::EncodeCanonicalWithLayout(e, &written), IsOk());
    EXPECT_EQ(written.seq, l->seq);
    EXPECT_EQ(written.seq_pos, l->seq_pos);
    EXPECT_EQ(written.seq_len, l->seq_len);
    EXPECT_EQ(written.prev_hash_pos, l->prev_hash_pos);
    EXPECT_EQ(written.extra_end, l->extra_end);
  }
}

TEST(LogEntryTest, CanonicalEncodingEscapesMinimally) {
  LogEntry e = Sample();
  e.explanation = "quote \" backslash \\ newline \n nul " + std::string(1, '\0') + " é";
  auto c = EncodeCanonical(e);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(*c, HasSubstr(R"("explanation":"quote \" backslash \\ newline \n nul \u0000 é")"));
}

TEST(LogEntryTest, FloatsInUsageOrExtraAreInvalidArgument) {
  LogEntry e = Sample();
  e.usage = {{"cost", 0.5}};
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidArgument));
  e = Sample();
  e.extra = {{"nested", {{"x", 1.25}}}};
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidArgument));
}

TEST(LogEntryTest, NonObjectUsageAndMalformedPrevHashAreInvalidArgument) {
  LogEntry e = Sample();
  e.usage = Json::array();
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidArgument));
  e = Sample();
  e.prev_hash = std::string(64, 'A');
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidArgument));
  e.prev_hash = "abc";
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidArgument));
}

TEST(LogEntryTest, DetailsNestedDeeperThanReadersAcceptAreInvalidArgument) {
  LogEntry e = Sample();
  Json deep = 1;
  for (int i = 0; i < 16; ++i) {
    deep = Json{{"d", deep}};
  }
  e.extra = deep;  // 16 levels: accepted, and decodes back
  auto c = EncodeCanonical(e);
  ASSERT_THAT(c, IsOk());
  store::LogRow row = RowOf(e);
  EXPECT_THAT(DecodeEntry(row), IsOk());
  EXPECT_THAT(internal::ScanEntry(*c, internal::ScanMode::kCanonical), IsOk());
  e.extra = Json{{"d", deep}};  // 17 levels
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidArgument));
}

TEST(LogEntryTest, LargeEntriesDecode) {
  LogEntry e = Sample();
  e.explanation = std::string(3 << 20, 'x');
  EXPECT_THAT(DecodeEntry(RowOf(e)), IsOk());
}

TEST(LogEntryTest, InvalidUtf8InAStringFieldIsRejected) {
  LogEntry e = Sample();
  e.target = "\xff";
  EXPECT_THAT(EncodeCanonical(e), StatusIs(Reason::kInvalidUtf8));
}

TEST(LogEntryTest, ChainHashIsSha256OfPrevHashBytesThenCanonical) {
  const std::string prev(64, 'f');
  const std::string canonical = "{\"x\":1}";
  auto prev_bytes = HexDecode(prev);
  ASSERT_THAT(prev_bytes, IsOk());
  std::string input(prev_bytes->begin(), prev_bytes->end());
  input += canonical;
  EXPECT_EQ(ChainHash(prev, canonical), crypto::Sha256(input).Hex());
  // The genesis predecessor is 32 zero bytes.
  EXPECT_EQ(ChainHash(kGenesisHash, canonical),
            crypto::Sha256(std::string(32, '\0') + canonical).Hex());
}

TEST(LogEntryTest, ChainHashOfMalformedPrevHashIsEmptySoItNeverVerifies) {
  EXPECT_EQ(ChainHash("xyz", "{}"), "");
  EXPECT_EQ(ChainHash(std::string(64, 'F'), "{}"), "");
}

TEST(LogEntryTest, DecodeEntryRoundTripsEveryField) {
  LogEntry in = Sample();
  in.blob = "h_abc";
  in.res_hash = std::string(64, 'd');
  in.decision_seq = 6;
  in.extra = {{"approval_id", "a_1"}, {"n", -3}};
  store::LogRow row = RowOf(in);
  auto out = DecodeEntry(row);
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->seq, 7);
  EXPECT_EQ(out->prev_hash, in.prev_hash);
  EXPECT_EQ(out->hash, row.hash);
  EXPECT_EQ(out->time_ms, in.time_ms);
  EXPECT_EQ(out->type, in.type);
  EXPECT_EQ(out->agent, in.agent);
  EXPECT_EQ(out->run, in.run);
  EXPECT_EQ(out->syscall_id, in.syscall_id);
  EXPECT_EQ(out->syscall, in.syscall);
  EXPECT_EQ(out->target, in.target);
  EXPECT_EQ(out->verdict, in.verdict);
  EXPECT_EQ(out->stage, in.stage);
  EXPECT_EQ(out->rule, in.rule);
  EXPECT_EQ(out->reason, in.reason);
  EXPECT_EQ(out->explanation, in.explanation);
  EXPECT_EQ(out->labels, in.labels);
  EXPECT_EQ(out->req_hash, in.req_hash);
  EXPECT_EQ(out->res_hash, in.res_hash);
  EXPECT_EQ(out->blob, in.blob);
  EXPECT_EQ(out->decision_seq, 6);
  EXPECT_EQ(out->policy_hash, in.policy_hash);
  EXPECT_EQ(out->usage, in.usage);
  EXPECT_EQ(out->extra, in.extra);
}

TEST(LogEntryTest, DecodeEntryRejectsAnythingMalformedWithLogCorrupt) {
  const store::LogRow good = RowOf(Sample());
  auto with = [&](std::string canonical) {
    store::LogRow r = good;
    r.canonical = std::move(canonical);
    return r;
  };
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string c = good.canonical;
    size_t at = c.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    c.replace(at, from.size(), to);
    return with(c);
  };
  struct Case {
    const char* name;
    store::LogRow row;
    const char* message;
  } cases[] = {
      {"not json", with("{"), "not valid JSON"},
      {"not an object", with("[]"), "not a JSON object"},
      {"missing field", replace("\"blob\":\"\",", ""), "missing field blob"},
      {"unknown field", replace("{\"agent\"", "{\"aaa\":1,\"agent\""), "unknown field aaa"},
      {"wrong type", replace("\"rule\":\"read-notes\"", "\"rule\":5"), "rule is not a string"},
      {"float", replace("\"decision_seq\":0", "\"decision_seq\":0.5"), "not an integer"},
      {"version", replace("\"v\":1", "\"v\":2"), "unsupported entry version 2"},
      {"whitespace", replace("\"v\":1", "\"v\": 1"), "not in canonical form"},
      {"labels type", replace("[\"trusted\",\"private\"]", "[1]"), "labels holds a non-string"},
  };
  for (const Case& c : cases) {
    auto r = DecodeEntry(c.row);
    EXPECT_THAT(r, StatusIs(Reason::kLogCorrupt)) << c.name;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message)) << c.name;
  }
}

TEST(LogEntryTest, DecodeEntryRejectsRowColumnsThatDisagreeWithTheEntry) {
  store::LogRow row = RowOf(Sample());
  row.agent = "mallory";
  auto r = DecodeEntry(row);
  EXPECT_THAT(r, StatusIs(Reason::kLogCorrupt));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("index columns disagree"));
}

TEST(LogEntryTest, ToRowCopiesIndexColumnsAndPayload) {
  LogEntry e = Sample();
  e.hash = std::string(64, 'e');
  e.payload = "sealed";
  store::LogRow r = ToRow(e, "{}");
  EXPECT_EQ(r.seq, 7);
  EXPECT_EQ(r.hash, e.hash);
  EXPECT_EQ(r.canonical, "{}");
  EXPECT_EQ(r.time_ms, e.time_ms);
  EXPECT_EQ(r.agent, "alice");
  EXPECT_EQ(r.run, "r1");
  EXPECT_EQ(r.type, "decision");
  EXPECT_EQ(r.verdict, "allow");
  EXPECT_EQ(r.reason, "ok");
  EXPECT_EQ(r.payload, "sealed");
}

TEST(LogEntryTest, JsonLineIsCanonicalJsonOfTheFieldsPlusHash) {
  store::LogRow row = RowOf(Sample());
  std::string line = ToJsonLine(row);
  auto parsed = ParseUntrustedJson(line);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ((*parsed)["hash"], row.hash);
  auto again = CanonicalJson(*parsed);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, line);
  parsed->erase("hash");
  EXPECT_EQ(*CanonicalJson(*parsed), row.canonical);
}

// --- The canonical scanner ---

TEST(EntryScanTest, FindsSeqAndPrevHash) {
  store::LogRow row = RowOf(Sample());
  auto l = internal::ScanEntry(row.canonical, internal::ScanMode::kCanonical);
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->seq, 7);
  EXPECT_EQ(row.canonical.substr(l->seq_pos, l->seq_len), "7");
  EXPECT_EQ(row.canonical.substr(l->prev_hash_pos, 64), std::string(64, 'a'));
}

TEST(EntryScanTest, IsNotFooledBySeqLookalikesInsideValues) {
  LogEntry e = Sample();
  e.agent = "\",\"seq\":99,\"x\":\"";
  e.target = "\"prev_hash\":\"" + std::string(64, '1') + "\"";
  e.extra = {{"a", 1}, {"seq", 42}, {"prev_hash", std::string(64, '2')}};
  e.usage = {{"seq", 43}, {"nested", {{"seq", "[{"}}}};
  e.labels = {"]", "}", "\\"};
  store::LogRow row = RowOf(e);
  auto l = internal::ScanEntry(row.canonical, internal::ScanMode::kCanonical);
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->seq, 7);
  EXPECT_EQ(row.canonical.substr(l->prev_hash_pos, 64), std::string(64, 'a'));
}

TEST(EntryScanTest, RejectsNonCanonicalText) {
  const std::string good = RowOf(Sample()).canonical;
  auto mutate = [&](std::string_view from, std::string_view to) {
    std::string c = good;
    c.replace(c.find(from), from.size(), to);
    return c;
  };
  const std::string bad[] = {
      mutate("\"seq\":7", "\"seq\":07"),
      mutate("\"seq\":7", "\"seq\":-7"),
      mutate("\"seq\":7", "\"seq\":7.0"),
      mutate("\"prev_hash\":\"aaaa", "\"prev_hash\":\"Aaaa"),
      mutate(",\"blob\":\"\"", ""),
      mutate("{\"agent\"", "{ \"agent\""),
      mutate("\"run\":\"r1\",\"seq\":7", "\"seq\":7,\"run\":\"r1\""),
      mutate("\"rule\":\"read-notes\"", "\"rule\":\"read\\/notes\""),
      mutate("\"rule\":\"read-notes\"", "\"rule\":\"read\\u000anotes\""),
      mutate("\"extra\":{}", "\"extra\":{]"),
      good + " ",
      good.substr(0, good.size() - 1),
  };
  for (const std::string& c : bad) {
    EXPECT_THAT(internal::ScanEntry(c, internal::ScanMode::kCanonical),
                StatusIs(Reason::kLogCorrupt))
        << c;
  }
}

TEST(EntryScanTest, JsonLineModeLocatesTheHashMember) {
  store::LogRow row = RowOf(Sample());
  std::string line = ToJsonLine(row);
  auto l = internal::ScanEntry(line, internal::ScanMode::kJsonLine);
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(line.substr(l->hash_pos, 64), row.hash);
  std::string canonical = line.substr(0, l->hash_member_pos) + line.substr(l->hash_member_end);
  EXPECT_EQ(canonical, row.canonical);
  EXPECT_THAT(internal::ScanEntry(row.canonical, internal::ScanMode::kJsonLine),
              StatusIs(Reason::kLogCorrupt));
}

}  // namespace
}  // namespace custos::audit
