#include "custos/core/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "testing/matchers.h"

namespace custos {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::HasSubstr;

std::string Canon(const Json& j) {
  Result<std::string> r = CanonicalJson(j);
  EXPECT_THAT(r, IsOk());
  return r.ok() ? *r : std::string();
}

std::string CanonText(std::string_view text) {
  Result<Json> j = ParseUntrustedJson(text);
  EXPECT_THAT(j, IsOk());
  return j.ok() ? Canon(*j) : std::string();
}

TEST(ParseUntrustedJsonTest, ParsesObject) {
  Result<Json> j = ParseUntrustedJson(R"({"a": [1, 2, {"b": null}], "c": "x"})");
  ASSERT_THAT(j, IsOk());
  EXPECT_EQ((*j)["a"][1], 2);
  EXPECT_EQ((*j)["c"], "x");
}

TEST(ParseUntrustedJsonTest, OversizeDocumentIsPayloadTooLarge) {
  JsonLimits limits;
  limits.max_bytes = 8;
  EXPECT_THAT(ParseUntrustedJson(R"({"a":12})", limits), IsOk());
  EXPECT_THAT(ParseUntrustedJson(R"({"a":123})", limits), StatusIs(Reason::kPayloadTooLarge));
}

TEST(ParseUntrustedJsonTest, SizeIsCheckedBeforeSyntax) {
  JsonLimits limits;
  limits.max_bytes = 4;
  EXPECT_THAT(ParseUntrustedJson("{{{{{{{{", limits), StatusIs(Reason::kPayloadTooLarge));
}

TEST(ParseUntrustedJsonTest, MalformedReportsByteOffset) {
  Result<Json> j = ParseUntrustedJson(R"({"a": tru})");
  ASSERT_THAT(j, StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("at byte"));
}

TEST(ParseUntrustedJsonTest, MalformedOffsetPointsAtTheBadByte) {
  Result<Json> j = ParseUntrustedJson("[1,2,x]");
  ASSERT_THAT(j, StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("at byte 5"));
}

TEST(ParseUntrustedJsonTest, MalformedMessageDoesNotQuoteInput) {
  Result<Json> j = ParseUntrustedJson(R"({"k": sekrit})");
  ASSERT_THAT(j, StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(std::string(j.status().message()), ::testing::Not(HasSubstr("sekrit")));
}

TEST(ParseUntrustedJsonTest, EmptyAndTrailingGarbageAreMalformed) {
  EXPECT_THAT(ParseUntrustedJson(""), StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(ParseUntrustedJson("{} {}"), StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(ParseUntrustedJson("[1,]"), StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(ParseUntrustedJson(R"(["unterminated)"), StatusIs(Reason::kMalformedJson));
  EXPECT_THAT(ParseUntrustedJson("{\"a\":\"\x01\"}"), StatusIs(Reason::kMalformedJson));
}

TEST(ParseUntrustedJsonTest, CommentsAreMalformed) {
  EXPECT_THAT(ParseUntrustedJson("[1 /* c */]"), StatusIs(Reason::kMalformedJson));
}

TEST(ParseUntrustedJsonTest, DepthAtLimitIsAccepted) {
  JsonLimits limits;
  limits.max_depth = 4;
  EXPECT_THAT(ParseUntrustedJson("[[[[1]]]]", limits), IsOk());
  EXPECT_THAT(ParseUntrustedJson(R"({"a":{"b":[{"c":1}]}})", limits), IsOk());
}

TEST(ParseUntrustedJsonTest, DeepNestingIsRejected) {
  JsonLimits limits;
  limits.max_depth = 4;
  EXPECT_THAT(ParseUntrustedJson("[[[[[1]]]]]", limits), StatusIs(Reason::kNestingTooDeep));
  EXPECT_THAT(ParseUntrustedJson(R"({"a":{"b":[{"c":[]}]}})", limits),
              StatusIs(Reason::kNestingTooDeep));
}

TEST(ParseUntrustedJsonTest, VeryDeepNestingIsRejectedWithDefaultLimits) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(ParseUntrustedJson(deep), StatusIs(Reason::kNestingTooDeep));
}

TEST(ParseUntrustedJsonTest, BracketsInsideStringsDoNotCountAsNesting) {
  JsonLimits limits;
  limits.max_depth = 1;
  EXPECT_THAT(ParseUntrustedJson(R"(["[[[[{{{{\"]]"])", limits), IsOk());
}

TEST(ParseUntrustedJsonTest, InvalidUtf8InStringIsInvalidUtf8) {
  EXPECT_THAT(ParseUntrustedJson("[\"a\xff\"]"), StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(ParseUntrustedJson("[\"\xc0\xaf\"]"), StatusIs(Reason::kInvalidUtf8));  // overlong
  EXPECT_THAT(ParseUntrustedJson("[\"\xed\xa0\x80\"]"), StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(ParseUntrustedJson("{\"\xe2\x82\":1}"), StatusIs(Reason::kInvalidUtf8));
}

TEST(ParseUntrustedJsonTest, InvalidUtf8OutsideStringIsInvalidUtf8) {
  Result<Json> j = ParseUntrustedJson("[1,\xff]");
  ASSERT_THAT(j, StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("at byte 3"));
}

TEST(ParseUntrustedJsonTest, UnpairedSurrogateEscapeIsInvalidUtf8) {
  EXPECT_THAT(ParseUntrustedJson(R"(["\ud800"])"), StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(ParseUntrustedJson(R"(["\udc00"])"), StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(ParseUntrustedJson(R"(["\ud800\u0041"])"), StatusIs(Reason::kInvalidUtf8));
}

TEST(ParseUntrustedJsonTest, PairedSurrogateEscapeDecodesToUtf8) {
  Result<Json> j = ParseUntrustedJson(R"(["\ud83d\ude00"])");
  ASSERT_THAT(j, IsOk());
  EXPECT_EQ((*j)[0], "\xf0\x9f\x98\x80");
}

TEST(ParseUntrustedJsonTest, LongStringIsPayloadTooLarge) {
  JsonLimits limits;
  limits.max_string_bytes = 4;
  EXPECT_THAT(ParseUntrustedJson(R"(["abcd"])", limits), IsOk());
  EXPECT_THAT(ParseUntrustedJson(R"(["abcde"])", limits), StatusIs(Reason::kPayloadTooLarge));
  EXPECT_THAT(ParseUntrustedJson(R"({"abcde":1})", limits), StatusIs(Reason::kPayloadTooLarge));
}

TEST(ParseUntrustedJsonTest, StringLimitCountsDecodedBytes) {
  JsonLimits limits;
  limits.max_string_bytes = 4;
  // Four escapes of one byte each: 24 raw bytes, 4 decoded.
  EXPECT_THAT(ParseUntrustedJson(R"(["\u0041\u0042\n\t"])", limits), IsOk());
  EXPECT_THAT(ParseUntrustedJson(R"(["\ud83d\ude00"])", limits), IsOk());
  EXPECT_THAT(ParseUntrustedJson(R"(["\u20ac\u20ac"])", limits),
              StatusIs(Reason::kPayloadTooLarge));
}

TEST(ParseUntrustedJsonTest, LargeIntegerBecomesFloatAndIsNotCanonical) {
  Result<Json> j = ParseUntrustedJson("[123456789012345678901234567890]");
  ASSERT_THAT(j, IsOk());
  EXPECT_THAT(CanonicalJson(*j), StatusIs(Reason::kInvalidArgument));
}

TEST(CanonicalJsonTest, Scalars) {
  EXPECT_EQ(Canon(Json(nullptr)), "null");
  EXPECT_EQ(Canon(Json(true)), "true");
  EXPECT_EQ(Canon(Json(false)), "false");
  EXPECT_EQ(Canon(Json(0)), "0");
  EXPECT_EQ(Canon(Json(-42)), "-42");
  EXPECT_EQ(Canon(Json(INT64_MIN)), "-9223372036854775808");
  EXPECT_EQ(Canon(Json(UINT64_MAX)), "18446744073709551615");
  EXPECT_EQ(Canon(Json("")), R"("")");
}

TEST(CanonicalJsonTest, NoWhitespaceAndKeysSorted) {
  EXPECT_EQ(CanonText(R"( { "b" : 1 , "a" : [ 1 , 2 ] , "c" : { } } )"),
            R"({"a":[1,2],"b":1,"c":{}})");
}

TEST(CanonicalJsonTest, NestedObjectsAreSorted) {
  EXPECT_EQ(CanonText(R"({"z":{"y":1,"x":{"b":2,"a":1}},"a":[{"d":1,"c":2}]})"),
            R"({"a":[{"c":2,"d":1}],"z":{"x":{"a":1,"b":2},"y":1}})");
}

TEST(CanonicalJsonTest, KeysSortByBytesNotCodePointsOrCase) {
  // 'B' (0x42) < 'a' (0x61) < 0x7f < 'é' (0xc3 0xa9) < '😀' (0xf0 ...).
  Json j = {{"\xc3\xa9", 1}, {"a", 2}, {"B", 3}, {"\xf0\x9f\x98\x80", 4}, {"\x7f", 5}, {"aa", 6}};
  EXPECT_EQ(Canon(j),
            "{\"B\":3,\"a\":2,\"aa\":6,\"\x7f\":5,\"\xc3\xa9\":1,\"\xf0\x9f\x98\x80\":4}");
}

TEST(CanonicalJsonTest, EscapesAreMinimal) {
  EXPECT_EQ(Canon(Json("q\"b\\s/")), R"("q\"b\\s/")");
  EXPECT_EQ(Canon(Json("\b\f\n\r\t")), R"("\b\f\n\r\t")");
  EXPECT_EQ(Canon(Json(std::string("\x00\x01\x1f", 3))), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(Canon(Json("\x0b\x1b")), R"("\u000b\u001b")");
  EXPECT_EQ(Canon(Json(" \x7f")), "\" \x7f\"");
}

TEST(CanonicalJsonTest, UnicodePassesThroughUnescaped) {
  EXPECT_EQ(Canon(Json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(CanonText(R"(["\u00e9\u2028"])"), "[\"\xc3\xa9\xe2\x80\xa8\"]");
}

TEST(CanonicalJsonTest, EscapedInputCanonicalizesToMinimalForm) {
  EXPECT_EQ(CanonText(R"(["\u0041\/\u001F\u0022"])"), R"(["A/\u001f\""])");
}

TEST(CanonicalJsonTest, EqualValuesEncodeIdentically) {
  EXPECT_EQ(CanonText(R"({"b":[1,{"y":2,"x":"1"}],"a":true})"),
            CanonText("{\n\"a\" : true,\"b\":[ 1 ,{\"x\":\"\\u0031\",\"y\":2}]}"));
}

TEST(CanonicalJsonTest, FloatIsRejected) {
  EXPECT_THAT(CanonicalJson(Json(1.5)), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalJson(Json(1.0)), StatusIs(Reason::kInvalidArgument));
  Result<Json> j = ParseUntrustedJson(R"({"a":{"b":[1,2.0]}})");
  ASSERT_THAT(j, IsOk());
  EXPECT_THAT(CanonicalJson(*j), StatusIs(Reason::kInvalidArgument));
}

TEST(CanonicalJsonTest, BinaryIsRejected) {
  EXPECT_THAT(CanonicalJson(Json::binary({1, 2, 3})), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(CanonicalJson(Json{{"a", Json::binary({1})}}), StatusIs(Reason::kInvalidArgument));
}

TEST(CanonicalJsonTest, InvalidUtf8StringIsRejected) {
  EXPECT_THAT(CanonicalJson(Json("\xff")), StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(CanonicalJson(Json{{"\xc0\x80", 1}}), StatusIs(Reason::kInvalidUtf8));
}

TEST(AppendCanonicalStringTest, AppendsWithQuotes) {
  std::string out = "x";
  AppendCanonicalString("a\nb", &out);
  EXPECT_EQ(out, "x\"a\\nb\"");
}

TEST(IsValidUtf8Test, AcceptsWellFormed) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));
  EXPECT_TRUE(IsValidUtf8("\xc2\x80"));          // U+0080
  EXPECT_TRUE(IsValidUtf8("\xdf\xbf"));          // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xe0\xa0\x80"));      // U+0800
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xee\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidUtf8("\xef\xbf\xbf"));      // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xf0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST(IsValidUtf8Test, RejectsOverlongEncodings) {
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // U+0000 in 2 bytes
  EXPECT_FALSE(IsValidUtf8("\xc1\xbf"));          // U+007F in 2 bytes
  EXPECT_FALSE(IsValidUtf8("\xe0\x9f\xbf"));      // U+07FF in 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xf0\x8f\xbf\xbf"));  // U+FFFF in 4 bytes
}

TEST(IsValidUtf8Test, RejectsSurrogates) {
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));              // U+D800
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));              // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\xbd\xed\xb8\x80"));  // CESU-8 pair
}

TEST(IsValidUtf8Test, RejectsAboveMaxCodePoint) {
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(IsValidUtf8Test, RejectsTruncatedAndStraySequences) {
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("a\xbf"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f\x98"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82x"));
  EXPECT_FALSE(IsValidUtf8("\xc3\xc3\xa9"));
}

TEST(JsonPointerTokenTest, EscapesTildeThenSlash) {
  EXPECT_EQ(JsonPointerToken("a/b~c"), "a~1b~0c");
  EXPECT_EQ(JsonPointerToken("~1"), "~01");
  EXPECT_EQ(JsonPointerToken(""), "");
}

}  // namespace
}  // namespace custos
