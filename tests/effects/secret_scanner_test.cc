#include "custos/effects/secret_scanner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "testing/matchers.h"

namespace custos::effects {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// Independent reference encoders, so the test does not trust the scanner's own.
std::string B64(std::string_view in, bool url_safe = false, bool pad = true) {
  const char* a = url_safe ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                           : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
  }
  if (in.size() - i == 1) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {a[v >> 18], a[(v >> 12) & 63]};
    if (pad) {
      out += "==";
    }
  } else if (in.size() - i == 2) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63]};
    if (pad) {
      out += "=";
    }
  }
  return out;
}

std::string Hex(std::string_view in, bool upper) {
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (char c : in) {
    out += d[uint8_t(c) >> 4];
    out += d[uint8_t(c) & 15];
  }
  return out;
}

std::string PercentAll(std::string_view in) {
  std::string out;
  for (char c : in) {
    out += "%" + Hex(std::string(1, c), true);
  }
  return out;
}

constexpr std::string_view kToken = "sk-live-4f9a8b7c6d5e";

SecretScanner Make() {
  auto s = SecretScanner::Create(
      {{"openai_key", std::string(kToken)}, {"db_password", "correct horse battery staple"}});
  EXPECT_THAT(s, IsOk());
  return std::move(s).value();
}

TEST(SecretScannerTest, RefusesShortSecretsAndBadNames) {
  EXPECT_THAT(SecretScanner::Create({{"k", "1234567"}}), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SecretScanner::Create({{"", "12345678"}}), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SecretScanner::Create({{"bad]name", "12345678"}}),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SecretScanner::Create({{"a", "12345678"}, {"a", "87654321"}}),
              StatusIs(Reason::kInvalidArgument));
  auto ok = SecretScanner::Create({{"k", "12345678"}});
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->size(), 1u);
}

TEST(SecretScannerTest, EmptyScannerFindsNothing) {
  auto s = SecretScanner::Create({});
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->FindIn("anything at all"), std::nullopt);
  EXPECT_EQ(s->Redact("anything at all"), "anything at all");
}

TEST(SecretScannerTest, FindsRawValue) {
  SecretScanner s = Make();
  EXPECT_EQ(s.FindIn("Authorization: Bearer " + std::string(kToken) + "\r\n"), "openai_key");
  EXPECT_EQ(s.FindIn(std::string(kToken)), "openai_key");
  EXPECT_EQ(s.FindIn("pw=correct horse battery staple;"), "db_password");
}

TEST(SecretScannerTest, IgnoresNearMisses) {
  SecretScanner s = Make();
  EXPECT_EQ(s.FindIn(""), std::nullopt);
  EXPECT_EQ(s.FindIn("sk-live-4f9a8b7c6d5"), std::nullopt);   // truncated
  EXPECT_EQ(s.FindIn("SK-LIVE-4F9A8B7C6D5E"), std::nullopt);  // raw match is case-sensitive
  EXPECT_EQ(s.FindIn(std::string(100000, 'a')), std::nullopt);
}

TEST(SecretScannerTest, FindsBase64AtEveryAlignment) {
  SecretScanner s = Make();
  for (size_t prefix = 0; prefix < 6; ++prefix) {
    for (size_t suffix = 0; suffix < 3; ++suffix) {
      std::string blob = std::string(prefix, 'P') + std::string(kToken) + std::string(suffix, 'S');
      EXPECT_EQ(s.FindIn("data=" + B64(blob)), "openai_key") << prefix << "/" << suffix;
      EXPECT_EQ(s.FindIn(B64(blob, false, false)), "openai_key") << prefix << "/" << suffix;
    }
  }
}

TEST(SecretScannerTest, FindsUrlSafeBase64) {
  // Bytes chosen so the standard and URL-safe encodings differ ('+' and '/' vs '-' and '_').
  const std::string secret = "\xfb\xff\xbf\xfb\xef\xbe\xfa\xfb\xfc";
  auto s = SecretScanner::Create({{"bin", secret}});
  ASSERT_THAT(s, IsOk());
  for (size_t prefix = 0; prefix < 3; ++prefix) {
    std::string blob = std::string(prefix, 'x') + secret;
    std::string url = B64(blob, true);
    ASSERT_NE(url, B64(blob, false));
    EXPECT_EQ(s->FindIn(url), "bin") << prefix;
    EXPECT_EQ(s->FindIn(B64(blob, false)), "bin") << prefix;
  }
}

TEST(SecretScannerTest, FindsHexInAnyCase) {
  SecretScanner s = Make();
  EXPECT_EQ(s.FindIn("x=" + Hex(kToken, false)), "openai_key");
  EXPECT_EQ(s.FindIn("x=" + Hex(kToken, true)), "openai_key");
  std::string mixed = Hex(kToken, false);
  for (size_t i = 0; i < mixed.size(); i += 3) {
    mixed[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(mixed[i])));
  }
  EXPECT_EQ(s.FindIn(mixed), "openai_key");
}

TEST(SecretScannerTest, FindsPercentEncodedForms) {
  SecretScanner s = Make();
  EXPECT_EQ(s.FindIn("q=" + PercentAll(kToken)), "openai_key");
  EXPECT_EQ(s.FindIn("q=correct%20horse%20battery%20staple&x=1"), "db_password");
  EXPECT_EQ(s.FindIn("q=sk%2dlive%2D4f9a8b7c6d5e"), "openai_key");  // partial, mixed case
  // Double-encoded.
  EXPECT_EQ(s.FindIn("q=correct%2520horse%2520battery%2520staple"), "db_password");
  // Base64 whose '+', '/' and '=' were percent-encoded, as in a query string.
  const std::string secret = "\xfb\xff\xbf\xfb\xef\xbe\xfa\xfb\xfc";
  auto bin = SecretScanner::Create({{"bin", secret}});
  ASSERT_THAT(bin, IsOk());
  std::string b64 = B64("zz" + secret);
  std::string encoded;
  for (char c : b64) {
    if (c == '+' || c == '/' || c == '=') {
      encoded += "%" + Hex(std::string(1, c), false);
    } else {
      encoded += c;
    }
  }
  ASSERT_NE(encoded, b64);
  EXPECT_EQ(bin->FindIn("token=" + encoded), "bin");
}

TEST(SecretScannerTest, RedactsEverySpelling) {
  SecretScanner s = Make();
  std::string text = "a " + std::string(kToken) + " b " + B64(kToken) + " c " + Hex(kToken, true) +
                     " d correct%20horse%20battery%20staple e";
  std::string red = s.Redact(text);
  EXPECT_EQ(s.FindIn(red), std::nullopt) << red;
  EXPECT_THAT(red, HasSubstr("a [redacted:openai_key] b "));
  EXPECT_THAT(red, HasSubstr(" d [redacted:db_password] e"));
  EXPECT_THAT(red, Not(HasSubstr("4f9a8b7c6d5e")));
  EXPECT_THAT(red, Not(HasSubstr(Hex(kToken, true))));
  EXPECT_EQ(s.Redact("nothing here"), "nothing here");
}

TEST(SecretScannerTest, RedactsTheWholeBase64Span) {
  SecretScanner s = Make();
  std::string red = s.Redact("<" + B64(kToken) + ">");
  EXPECT_THAT(red, HasSubstr("[redacted:openai_key]"));
  EXPECT_EQ(s.FindIn(red), std::nullopt);
}

TEST(SecretScannerTest, OverlappingSecretsMergeIntoOneRedaction) {
  auto s = SecretScanner::Create({{"outer", "AAAABBBBCCCC"}, {"inner", "BBBBCCCCDDDD"}});
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->Redact("x AAAABBBBCCCCDDDD y"), "x [redacted:outer] y");
}

TEST(SecretScannerTest, SafeToShareBetweenThreads) {
  SecretScanner s = Make();
  std::string haystack(64 * 1024, '.');
  haystack.replace(40000, kToken.size(), kToken);
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (s.FindIn(haystack) == "openai_key") {
          found.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(found.load(), 200);
}

TEST(SecretScannerTest, ScansAMegabyteAgainstAHundredSecretsQuickly) {
  std::vector<std::pair<std::string, std::string>> secrets;
  for (int i = 0; i < 100; ++i) {
    secrets.emplace_back("s" + std::to_string(i), "secret-value-" + std::to_string(i * 7919));
  }
  auto s = SecretScanner::Create(secrets);
  ASSERT_THAT(s, IsOk());
  std::string text;
  while (text.size() < (1 << 20)) {
    text += "The quick brown fox jumps over the lazy dog 0123456789 %20 secret-value ";
  }
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s->FindIn(text), std::nullopt);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(5));  // linear, not quadratic; bench/ has numbers
  text += "secret-value-" + std::to_string(99 * 7919);
  EXPECT_EQ(s->FindIn(text), "s99");
}

TEST(SecretScannerTest, SpansAreWhatRedactReplacesAndMaxSpanCoversEverySpelling) {
  const SecretScanner s = Make();
  const std::string raw = "a " + std::string(kToken) + " b ";
  const std::string hex = "68" + Hex(kToken, false);  // digits, then the hex spelling
  const std::string text = raw + hex;
  const auto spans = s.Spans(text);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], std::make_pair(size_t{2}, size_t{2} + kToken.size()));
  EXPECT_EQ(spans[1].second, text.size());
  // The longest pattern is the hex spelling of the longest value, three rounds of
  // percent-encoding can make each of its bytes 27.
  const size_t longest = 2 * std::string_view("correct horse battery staple").size();
  EXPECT_EQ(s.MaxSpanBytes(), 27 * longest);
  EXPECT_FALSE(s.SpansLines());
  auto pem = SecretScanner::Create({{"pem", "-----BEGIN KEY-----\nMIIBVQ==\n"}});
  ASSERT_THAT(pem, IsOk());
  EXPECT_TRUE(pem->SpansLines());
  auto none = SecretScanner::Create({});
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(none->MaxSpanBytes(), 0u);
  EXPECT_TRUE(none->Spans(text).empty());
}

TEST(SecretScannerTest, MovedScannerStillWorks) {
  SecretScanner a = Make();
  SecretScanner b = std::move(a);
  EXPECT_EQ(b.FindIn(std::string(kToken)), "openai_key");
  SecretScanner c = Make();
  c = std::move(b);
  EXPECT_EQ(c.FindIn(std::string(kToken)), "openai_key");
}

TEST(SecretScannerTest, RedactJsonRedactsEveryStringKeysIncludedAndKeepsOtherValues) {
  SecretScanner s = Make();
  const std::string t(kToken);
  const Json in = {{"a", t}, {t, 1}, {"list", Json::array({t, 2, true, nullptr})}, {"n", 3.5}};
  const Json out = s.RedactJson(in);
  EXPECT_EQ(out.dump().find(t), std::string::npos) << out.dump();
  EXPECT_EQ(out["a"], "[redacted:openai_key]");
  EXPECT_EQ(out["[redacted:openai_key]"], 1);
  EXPECT_EQ(out["list"], Json::array({"[redacted:openai_key]", 2, true, nullptr}));
  EXPECT_EQ(out["n"], 3.5);
}

}  // namespace
}  // namespace custos::effects
