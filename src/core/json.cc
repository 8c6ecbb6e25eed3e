#include "custos/core/json.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <new>
#include <string>

#include "custos/core/encoding.h"

namespace custos {
namespace {

constexpr size_t kNpos = static_cast<size_t>(-1);

// Returns the length (1-4) of the well-formed UTF-8 sequence starting at s[i], or 0 if the bytes
// there are not one (truncated, overlong, surrogate, above U+10FFFF, stray continuation byte).
// Table 3-7 of the Unicode Standard, "Well-Formed UTF-8 Byte Sequences".
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80)
    return 1;
  const size_t left = s.size() - i;
  const auto cont = [&](size_t k) { return (b(i + k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) {
    return (left >= 2 && cont(1)) ? 2 : 0;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3)
      return 0;
    const uint8_t c1 = b(i + 1);
    const uint8_t lo = (c == 0xE0) ? 0xA0 : 0x80;  // E0 80..9F would be overlong
    const uint8_t hi = (c == 0xED) ? 0x9F : 0xBF;  // ED A0..BF would be a surrogate
    return (c1 >= lo && c1 <= hi && cont(2)) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4)
      return 0;
    const uint8_t c1 = b(i + 1);
    const uint8_t lo = (c == 0xF0) ? 0x90 : 0x80;  // F0 80..8F would be overlong
    const uint8_t hi = (c == 0xF4) ? 0x8F : 0xBF;  // F4 90.. would exceed U+10FFFF
    return (c1 >= lo && c1 <= hi && cont(2) && cont(3)) ? 4 : 0;
  }
  return 0;  // 80..C1 (continuation or overlong lead) and F5..FF never start a sequence.
}

// Offset of the first byte that does not start a well-formed sequence, or kNpos.
size_t FirstInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Fast path over ASCII runs, which is almost all real traffic.
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0)
      return i;
    i += n;
  }
  return kNpos;
}

// Reads the 4 hex digits of a \u escape at s[i..i+4); -1 if they are not hex or missing.
int32_t ReadHex4(std::string_view s, size_t i) {
  if (i + 4 > s.size())
    return -1;
  int32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int h = HexDigitValue(s[i + k]);
    if (h < 0)
      return -1;
    v = v * 16 + h;
  }
  return v;
}

std::string AtByte(size_t offset) { return " at byte " + std::to_string(offset); }

// One pass over the raw text enforcing what nlohmann's parser does not (depth, string size) or
// reports too vaguely (invalid UTF-8, lone surrogate escapes), each with the byte offset. Syntax
// errors are left to the parser: when the scan meets one it stops and returns OK.
Status PreScan(std::string_view text, const JsonLimits& limits) {
  int depth = 0;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = i;
      size_t decoded = 0;
      ++i;
      while (true) {
        if (i >= n)
          return Status::Ok();  // Unterminated: the parser reports it.
        const char d = text[i];
        if (d == '"') {
          ++i;
          break;
        }
        if (d == '\\') {
          if (i + 1 >= n)
            return Status::Ok();
          if (text[i + 1] != 'u') {
            decoded += 1;
            i += 2;
          } else {
            const int32_t v = ReadHex4(text, i + 2);
            if (v < 0)
              return Status::Ok();  // Bad escape: a syntax error.
            if (v >= 0xD800 && v <= 0xDBFF) {
              const bool paired = i + 7 < n && text[i + 6] == '\\' && text[i + 7] == 'u';
              const int32_t lo = paired ? ReadHex4(text, i + 8) : -1;
              if (lo < 0xDC00 || lo > 0xDFFF) {
                return Status(Reason::kInvalidUtf8,
                              "unpaired UTF-16 surrogate escape in string" + AtByte(i));
              }
              decoded += 4;
              i += 12;
            } else if (v >= 0xDC00 && v <= 0xDFFF) {
              return Status(Reason::kInvalidUtf8,
                            "unpaired UTF-16 surrogate escape in string" + AtByte(i));
            } else {
              decoded += v < 0x80 ? 1 : (v < 0x800 ? 2 : 3);
              i += 6;
            }
          }
        } else if (static_cast<uint8_t>(d) >= 0x80) {
          const size_t len = Utf8SequenceLength(text, i);
          if (len == 0) {
            return Status(Reason::kInvalidUtf8, "invalid UTF-8 in string" + AtByte(i));
          }
          decoded += len;
          i += len;
        } else {
          decoded += 1;
          ++i;
        }
        if (decoded > limits.max_string_bytes) {
          return Status(Reason::kPayloadTooLarge, "string exceeds " +
                                                      std::to_string(limits.max_string_bytes) +
                                                      " bytes" + AtByte(start));
        }
      }
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > limits.max_depth) {
        return Status(Reason::kNestingTooDeep,
                      "nesting exceeds depth " + std::to_string(limits.max_depth) + AtByte(i));
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0)
        --depth;
    } else if (static_cast<uint8_t>(c) >= 0x80) {
      const size_t len = Utf8SequenceLength(text, i);
      if (len == 0)
        return Status(Reason::kInvalidUtf8, "invalid UTF-8" + AtByte(i));
      i += len;
      continue;
    }
    ++i;
  }
  return Status::Ok();
}

// Extracts "syntax error while parsing value - invalid literal" from nlohmann's what(), dropping
// the "last read: '...'" excerpt, which quotes input bytes (INV-6: messages carry no input).
std::string DescribeParseError(const char* what) {
  std::string_view w(what);
  const size_t col = w.find("column ");
  size_t start = col == std::string_view::npos ? std::string_view::npos : w.find(": ", col);
  if (start == std::string_view::npos)
    return "syntax error";
  start += 2;
  size_t end = w.find("; last read", start);
  if (end == std::string_view::npos)
    end = w.size();
  return std::string(w.substr(start, end - start));
}

Status EncodeCanonical(const Json& v, std::string* out) {
  switch (v.type()) {
    case Json::value_t::null:
      out->append("null");
      return Status::Ok();
    case Json::value_t::boolean:
      out->append(v.get_ref<const Json::boolean_t&>() ? "true" : "false");
      return Status::Ok();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: {
      char buf[24];
      const auto r =
          v.is_number_unsigned()
              ? std::to_chars(buf, buf + sizeof buf, v.get_ref<const Json::number_unsigned_t&>())
              : std::to_chars(buf, buf + sizeof buf, v.get_ref<const Json::number_integer_t&>());
      out->append(buf, r.ptr);
      return Status::Ok();
    }
    case Json::value_t::number_float:
      return Status(Reason::kInvalidArgument, "canonical JSON does not allow floats");
    case Json::value_t::binary:
      return Status(Reason::kInvalidArgument, "canonical JSON does not allow binary values");
    case Json::value_t::discarded:
      return Status(Reason::kInvalidArgument, "canonical JSON cannot encode a discarded value");
    case Json::value_t::string: {
      const auto& s = v.get_ref<const Json::string_t&>();
      if (!IsValidUtf8(s))
        return Status(Reason::kInvalidUtf8, "string is not valid UTF-8");
      AppendCanonicalString(s, out);
      return Status::Ok();
    }
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const Json& e : v) {
        if (!first)
          out->push_back(',');
        first = false;
        CUSTOS_RETURN_IF_ERROR(EncodeCanonical(e, out));
      }
      out->push_back(']');
      return Status::Ok();
    }
    case Json::value_t::object: {
      // Json's object_t is std::map<std::string, Json, std::less<>>. std::string compares through
      // char_traits<char>::lt, which the standard defines as unsigned char comparison, so map
      // order is exactly byte order: no re-sort is needed.
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.get_ref<const Json::object_t&>()) {
        if (!first)
          out->push_back(',');
        first = false;
        if (!IsValidUtf8(key))
          return Status(Reason::kInvalidUtf8, "key is not valid UTF-8");
        AppendCanonicalString(key, out);
        out->push_back(':');
        CUSTOS_RETURN_IF_ERROR(EncodeCanonical(value, out));
      }
      out->push_back('}');
      return Status::Ok();
    }
  }
  return Status(Reason::kInternal, "unknown JSON value type");
}

}  // namespace

bool IsValidUtf8(std::string_view s) { return FirstInvalidUtf8(s) == kNpos; }

Result<Json> ParseUntrustedJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status(Reason::kPayloadTooLarge, "JSON document of " + std::to_string(text.size()) +
                                                " bytes exceeds " +
                                                std::to_string(limits.max_bytes));
  }
  CUSTOS_RETURN_IF_ERROR(PreScan(text, limits));
  try {
    return Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::parse_error& e) {
    // e.byte counts characters read, 1-based; report a 0-based offset within the text.
    const size_t offset = e.byte == 0 ? 0 : std::min<size_t>(e.byte - 1, text.size());
    return Status(Reason::kMalformedJson,
                  "malformed JSON" + AtByte(offset) + ": " + DescribeParseError(e.what()));
  } catch (const std::bad_alloc&) {
    return Status(Reason::kInternal, "out of memory while parsing JSON");
  } catch (const std::exception& e) {
    return Status(Reason::kInternal, std::string("JSON parser failed: ") + e.what());
  }
}

Result<std::string> CanonicalJson(const Json& value) {
  std::string out;
  CUSTOS_RETURN_IF_ERROR(EncodeCanonical(value, &out));
  return out;
}

void AppendCanonicalString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->reserve(out->size() + s.size() + 2);
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out->append(esc, sizeof esc);
      }
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

std::string JsonPointerToken(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (const char c : key) {
    if (c == '~') {
      out.append("~0");
    } else if (c == '/') {
      out.append("~1");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace custos
