#include "custos/core/encoding.h"

#include <array>
#include <cstdint>
#include <string>

namespace custos {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kBase32Alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Reverse lookup tables: 0xFF marks a byte outside the alphabet.
constexpr std::array<uint8_t, 256> ReverseTable(const char* alphabet, size_t n) {
  std::array<uint8_t, 256> t{};
  for (auto& v : t)
    v = 0xFF;
  for (size_t i = 0; i < n; ++i)
    t[static_cast<uint8_t>(alphabet[i])] = static_cast<uint8_t>(i);
  return t;
}

constexpr auto kHexReverse = ReverseTable(kHexDigits, 16);
constexpr auto kBase32Reverse = ReverseTable(kBase32Alphabet, 32);
constexpr auto kBase64Reverse = ReverseTable(kBase64Alphabet, 64);

Status BadChar(std::string_view what, size_t offset) {
  return Status(Reason::kInvalidArgument,
                std::string(what) + ": invalid character at offset " + std::to_string(offset));
}

}  // namespace

std::string HexEncode(std::span<const uint8_t> bytes) {
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kHexDigits[bytes[i] >> 4];
    out[2 * i + 1] = kHexDigits[bytes[i] & 0xF];
  }
  return out;
}

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

Result<std::vector<uint8_t>> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return Status(Reason::kInvalidArgument, "hex: odd length " + std::to_string(hex.size()));
  }
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t hi = kHexReverse[static_cast<uint8_t>(hex[2 * i])];
    if (hi == 0xFF)
      return BadChar("hex", 2 * i);
    const uint8_t lo = kHexReverse[static_cast<uint8_t>(hex[2 * i + 1])];
    if (lo == 0xFF)
      return BadChar("hex", 2 * i + 1);
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string Base32Encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (const uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kBase32Alphabet[(buffer >> bits) & 0x1F]);
    }
  }
  if (bits > 0)
    out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 0x1F]);
  return out;
}

Result<std::vector<uint8_t>> Base32Decode(std::string_view s) {
  // An unpadded encoding of n bytes has ceil(8n/5) characters; lengths 1, 3 and 6 mod 8 are never
  // produced.
  const size_t rem = s.size() % 8;
  if (rem == 1 || rem == 3 || rem == 6) {
    return Status(Reason::kInvalidArgument,
                  "base32: impossible length " + std::to_string(s.size()));
  }
  std::vector<uint8_t> out;
  out.reserve(s.size() * 5 / 8);
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t v = kBase32Reverse[static_cast<uint8_t>(s[i])];
    if (v == 0xFF)
      return BadChar("base32", i);
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(buffer >> bits));
    }
  }
  // Leftover bits must be zero, or two strings would decode to the same bytes.
  if ((buffer & ((1u << bits) - 1)) != 0) {
    return Status(Reason::kInvalidArgument, "base32: non-zero trailing bits");
  }
  return out;
}

std::string Base64Encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8 | bytes[i + 2];
    out.push_back(kBase64Alphabet[v >> 18]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 6) & 0x3F]);
    out.push_back(kBase64Alphabet[v & 0x3F]);
  }
  const size_t left = bytes.size() - i;
  if (left == 1) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    out.push_back(kBase64Alphabet[v >> 18]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.append("==");
  } else if (left == 2) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8;
    out.push_back(kBase64Alphabet[v >> 18]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 6) & 0x3F]);
    out.push_back('=');
  }
  return out;
}

Result<std::vector<uint8_t>> Base64Decode(std::string_view s) {
  if (s.size() % 4 != 0) {
    return Status(Reason::kInvalidArgument,
                  "base64: length " + std::to_string(s.size()) + " is not a multiple of 4");
  }
  size_t pad = 0;
  if (!s.empty() && s.back() == '=')
    pad = (s.size() >= 2 && s[s.size() - 2] == '=') ? 2 : 1;
  const size_t data_chars = s.size() - pad;
  std::vector<uint8_t> out;
  out.reserve(s.size() / 4 * 3);
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < data_chars; ++i) {
    const uint8_t v = kBase64Reverse[static_cast<uint8_t>(s[i])];
    if (v == 0xFF)
      return BadChar("base64", i);  // includes '=' before the final padding
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(buffer >> bits));
    }
  }
  if ((buffer & ((1u << bits) - 1)) != 0) {
    return Status(Reason::kInvalidArgument, "base64: non-zero trailing bits");
  }
  return out;
}

}  // namespace custos
