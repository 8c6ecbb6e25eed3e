// StreamRedactor (kernel/stream_redactor.h): output fed in any pieces comes out exactly as the
// whole would be redacted, and no piece of a secret is emitted before it can be recognised.

#include "kernel/stream_redactor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace custos::kernel {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "sk-live-0123456789abcdef";

effects::SecretScanner Scanner() {
  Result<effects::SecretScanner> s = effects::SecretScanner::Create({{"TOKEN", kSecret}});
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(s).value();
}

// Hex and percent-encoded spellings, a secret across a line break, and plain lines.
std::string Output() {
  std::string hex;
  for (unsigned char c : std::string(kSecret)) {
    static const char* d = "0123456789abcdef";
    hex += d[c >> 4];
    hex += d[c & 15];
  }
  std::string pct;
  for (char c : std::string(kSecret))
    pct += "%" + std::string(1, "0123456789ABCDEF"[(unsigned char)c >> 4]) +
           std::string(1, "0123456789ABCDEF"[(unsigned char)c & 15]);
  // Filler longer than the hold-back window, so pieces are emitted while the output goes on.
  std::string filler;
  for (int i = 0; i < 60; ++i)
    filler += "filler line " + std::to_string(i) + " ..................................\n";
  return filler + "key=" + std::string(kSecret) + " tail\n" + filler + "hex " + hex + "\n" +
         filler + "pct " + pct + "\n" + filler + "x" + std::string(kSecret) + "y" + filler +
         "last line without newline";
}

struct Collected {
  std::vector<std::string> pieces;
  std::string all() const {
    std::string s;
    for (const std::string& p : pieces)
      s += p;
    return s;
  }
};

TEST(StreamRedactorTest, AnySplitIntoTwoGivesTheRedactionOfTheWhole) {
  const effects::SecretScanner scanner = Scanner();
  const std::string out = Output();
  const std::string want = scanner.Redact(out);
  ASSERT_THAT(want, HasSubstr("[redacted:TOKEN]"));
  ASSERT_GT(out.size(), 2 * scanner.MaxSpanBytes());
  for (size_t cut = 0; cut <= out.size(); cut += 7) {
    Collected c;
    StreamRedactor r(scanner, 1 << 20, [&](std::string_view t) { c.pieces.emplace_back(t); });
    r.Feed(std::string_view(out).substr(0, cut));
    r.Feed(std::string_view(out).substr(cut));
    r.Finish();
    ASSERT_EQ(c.all(), want) << "cut at " << cut;
  }
}

TEST(StreamRedactorTest, ByteByByteGivesTheRedactionOfTheWholeAndNeverPartOfASecret) {
  const effects::SecretScanner scanner = Scanner();
  const std::string out = Output();
  Collected c;
  StreamRedactor r(scanner, 1 << 20, [&](std::string_view t) { c.pieces.emplace_back(t); });
  for (char ch : out)
    r.Feed(std::string_view(&ch, 1));
  r.Finish();
  EXPECT_EQ(c.all(), scanner.Redact(out));
  EXPECT_GT(c.pieces.size(), 4u) << "output flows while it is written";
  for (const std::string& p : c.pieces)
    EXPECT_THAT(p, Not(HasSubstr("sk-live-")));
}

TEST(StreamRedactorTest, ASecretWithALineFeedIsHeldBackAcrossLinesYetFlowsInTheEnd) {
  // A multi-line value (a PEM key): line ends are no longer safe cuts, the window applies.
  const std::string pem = "-----BEGIN KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7\n";
  Result<effects::SecretScanner> made = effects::SecretScanner::Create({{"PEM", pem}});
  ASSERT_TRUE(made.ok()) << made.status();
  const effects::SecretScanner& scanner = *made;
  ASSERT_TRUE(scanner.SpansLines());
  std::string filler;
  while (filler.size() < 3 * scanner.MaxSpanBytes())
    filler += "filler line " + std::to_string(filler.size()) + "\n";
  const std::string out = filler + pem + filler + "x" + pem + "y\n" + filler;
  const std::string want = scanner.Redact(out);
  ASSERT_THAT(want, HasSubstr("[redacted:PEM]"));
  for (size_t step : {size_t{1}, size_t{13}, size_t{4096}}) {
    Collected c;
    StreamRedactor r(scanner, 1 << 20, [&](std::string_view t) { c.pieces.emplace_back(t); });
    for (size_t i = 0; i < out.size(); i += step)
      r.Feed(std::string_view(out).substr(i, step));
    r.Finish();
    EXPECT_EQ(c.all(), want) << "step " << step;
    EXPECT_GT(c.pieces.size(), 2u) << "step " << step;
    for (const std::string& p : c.pieces)
      EXPECT_THAT(p, Not(HasSubstr("-----BEGIN KEY-----\nMIIB"))) << "step " << step;
  }
}

TEST(StreamRedactorTest, HoldsBackTheStartOfASecretUntilItCanTell) {
  const effects::SecretScanner scanner = Scanner();
  Collected c;
  StreamRedactor r(scanner, 1 << 20, [&](std::string_view t) { c.pieces.emplace_back(t); });
  r.Feed("key=" + std::string(kSecret).substr(0, 12));
  EXPECT_THAT(c.all(), Not(HasSubstr("sk-live")));
  r.Feed(std::string(kSecret).substr(12) + "\n");
  r.Finish();
  EXPECT_EQ(c.all(), "key=[redacted:TOKEN]\n");
}

TEST(StreamRedactorTest, WithoutSecretsWholeLinesFlowAtOnceAndTheCapHolds) {
  Result<effects::SecretScanner> none = effects::SecretScanner::Create({});
  ASSERT_TRUE(none.ok());
  Collected c;
  StreamRedactor r(*none, 10, [&](std::string_view t) { c.pieces.emplace_back(t); });
  r.Feed("abc\nde");
  EXPECT_EQ(c.all(), "abc\n");  // the complete line, not the partial one
  r.Feed("f\nghijklmnop\n");
  r.Finish();
  EXPECT_EQ(c.all(), "abc\ndef\ngh");  // at most 10 bytes in all
}

}  // namespace
}  // namespace custos::kernel
