#include "custos/caps/token_text.h"

#include <array>

#include "custos/caps/biscuit.h"

namespace custos::caps {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 0..63 for alphabet characters, -1 otherwise.
constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (int8_t& v : t) {
    v = -1;
  }
  for (int i = 0; i < 64; ++i) {
    t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}
constexpr std::array<int8_t, 256> kDecode = MakeDecodeTable();

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

Status Invalid(const std::string& why) {
  return Status(Reason::kTokenInvalid, "token text is not URL-safe base64: " + why);
}

}  // namespace

std::string EncodeToken(std::span<const uint8_t> token) {
  std::string out;
  out.reserve((token.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= token.size(); i += 3) {
    const uint32_t v = (uint32_t{token[i]} << 16) | (uint32_t{token[i + 1]} << 8) | token[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const size_t rest = token.size() - i; rest > 0) {
    uint32_t v = uint32_t{token[i]} << 16;
    if (rest == 2) {
      v |= uint32_t{token[i + 1]} << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::vector<uint8_t>> DecodeToken(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && IsSpace(text.back())) {
    text.remove_suffix(1);
  }
  // Checked before any work: the text of a token over the cap is over the cap itself.
  if (text.size() > (Biscuit::kMaxTokenBytes + 2) / 3 * 4) {
    return Status(
        Reason::kPayloadTooLarge,
        "token text exceeds " + std::to_string(Biscuit::kMaxTokenBytes) + " bytes once decoded");
  }
  if (text.empty()) {
    return Invalid("empty");
  }
  size_t pad = 0;
  while (!text.empty() && text.back() == '=' && pad < 2) {
    text.remove_suffix(1);
    ++pad;
  }
  if (pad > 0 && (text.size() + pad) % 4 != 0) {
    return Invalid("misplaced padding");
  }
  if (text.size() % 4 == 1) {
    return Invalid("truncated");
  }
  std::vector<uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const int8_t v = kDecode[static_cast<uint8_t>(text[i])];
    if (v < 0) {
      return Invalid("character at offset " + std::to_string(i) + " is outside the alphabet");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xff));
    }
  }
  // The leftover bits of the last character must be zero (one encoding per token).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return Invalid("non-canonical final character");
  }
  return out;
}

}  // namespace custos::caps
