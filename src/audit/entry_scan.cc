#include <cstring>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "audit/entry_scan_internal.h"

namespace custos::audit::internal {
namespace {

enum class Kind : uint8_t { kString, kInt, kObject, kArray, kPrevHash, kSeq, kHash };

struct Key {
  std::string_view quoted;  // the key with its quotes and the colon: "agent":
  Kind kind;
};

// The entry's keys in canonical (byte) order. "hash" appears only in JSONL lines.
constexpr Key kKeys[] = {
    {"\"agent\":", Kind::kString},
    {"\"blob\":", Kind::kString},
    {"\"decision_seq\":", Kind::kInt},
    {"\"explanation\":", Kind::kString},
    {"\"extra\":", Kind::kObject},
    {"\"hash\":", Kind::kHash},
    {"\"labels\":", Kind::kArray},
    {"\"policy_hash\":", Kind::kString},
    {"\"prev_hash\":", Kind::kPrevHash},
    {"\"reason\":", Kind::kString},
    {"\"req_hash\":", Kind::kString},
    {"\"res_hash\":", Kind::kString},
    {"\"rule\":", Kind::kString},
    {"\"run\":", Kind::kString},
    {"\"seq\":", Kind::kSeq},
    {"\"stage\":", Kind::kString},
    {"\"syscall\":", Kind::kString},
    {"\"syscall_id\":", Kind::kString},
    {"\"target\":", Kind::kString},
    {"\"time_ms\":", Kind::kInt},
    {"\"type\":", Kind::kString},
    {"\"usage\":", Kind::kObject},
    {"\"v\":", Kind::kInt},
    {"\"verdict\":", Kind::kString},
};

constexpr int kMaxDepth = 64;

Status Corrupt(std::string what, size_t at) {
  return Status(Reason::kLogCorrupt,
                "entry is not in canonical form: " + what + " at byte " + std::to_string(at));
}

// Byte classes, by table: verification is bound by these per-byte loops and the hash.
struct Tables {
  int8_t hex[256];  // value of a lowercase hex digit, else -1
  bool plain[256];  // a string byte that needs no attention (not '"', '\\', or < 0x20)
  constexpr Tables() : hex(), plain() {
    for (int c = 0; c < 256; ++c) {
      hex[c] = -1;
      plain[c] = c >= 0x20 && c != '"' && c != '\\';
    }
    for (int c = '0'; c <= '9'; ++c) {
      hex[c] = static_cast<int8_t>(c - '0');
    }
    for (int c = 'a'; c <= 'f'; ++c) {
      hex[c] = static_cast<int8_t>(c - 'a' + 10);
    }
  }
};
constexpr Tables kTables;

int HexDigit(char c) { return kTables.hex[static_cast<uint8_t>(c)]; }

class Scanner {
 public:
  explicit Scanner(std::string_view t) : t_(t) {}

  bool Eat(char c) {
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  // Keys are short: an inline byte loop beats a call to memcmp here.
  bool EatLiteral(std::string_view lit) {
    if (t_.size() - i_ < lit.size()) {
      return false;
    }
    const char* p = t_.data() + i_;
    for (size_t k = 0; k < lit.size(); ++k) {
      if (p[k] != lit[k]) {
        return false;
      }
    }
    i_ += lit.size();
    return true;
  }

  // A string in canonical escaping: only \" \\ \b \f \n \r \t and \u00xx (lowercase) for the
  // other control characters; no raw control characters.
  Status SkipString() {
    if (!Eat('"')) {
      return Corrupt("expected a string", i_);
    }
    while (i_ < t_.size()) {
      SkipPlainBytes();
      if (i_ >= t_.size()) {
        break;
      }
      const auto c = static_cast<uint8_t>(t_[i_]);
      if (c == '"') {
        ++i_;
        return Status::Ok();
      }
      if (c < 0x20) {
        return Corrupt("raw control character in a string", i_);
      }
      if (c != '\\') {
        ++i_;
        continue;
      }
      if (i_ + 1 >= t_.size()) {
        break;
      }
      const char e = t_[i_ + 1];
      if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        i_ += 2;
        continue;
      }
      if (e != 'u' || i_ + 6 > t_.size() || t_[i_ + 2] != '0' || t_[i_ + 3] != '0' ||
          (t_[i_ + 4] != '0' && t_[i_ + 4] != '1') || HexDigit(t_[i_ + 5]) < 0) {
        return Corrupt("non-canonical escape in a string", i_);
      }
      const int code = (t_[i_ + 4] - '0') * 16 + HexDigit(t_[i_ + 5]);
      if (code == '\b' || code == '\f' || code == '\n' || code == '\r' || code == '\t') {
        return Corrupt("non-canonical escape in a string", i_);
      }
      i_ += 6;
    }
    return Corrupt("unterminated string", i_);
  }

  // An integer in canonical form: -?(0|[1-9][0-9]*), at most 19 digits.
  Status SkipInt(int64_t* value, bool allow_negative) {
    const size_t start = i_;
    const bool negative = allow_negative && Eat('-');
    const size_t digits = i_;
    while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') {
      ++i_;
    }
    const size_t n = i_ - digits;
    if (n == 0 || n > 19 || (n > 1 && t_[digits] == '0') ||
        (negative && n == 1 && t_[digits] == '0')) {
      return Corrupt("expected a canonical integer", start);
    }
    if (value != nullptr) {
      uint64_t v = 0;
      for (size_t k = digits; k < i_; ++k) {
        v = v * 10 + static_cast<uint64_t>(t_[k] - '0');
      }
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        return Corrupt("integer out of range", start);
      }
      *value = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
    }
    return Status::Ok();
  }

  // An object or array, skipped by bracket matching (strings inside are skipped exactly).
  Status SkipContainer(char open) {
    char stack[kMaxDepth];
    int depth = 0;
    if (!Eat(open)) {
      return Corrupt(open == '{' ? "expected an object" : "expected an array", i_);
    }
    stack[depth++] = open == '{' ? '}' : ']';
    while (depth > 0) {
      if (i_ >= t_.size()) {
        return Corrupt("unterminated container", i_);
      }
      const char c = t_[i_];
      if (c == '"') {
        CUSTOS_RETURN_IF_ERROR(SkipString());
        continue;
      }
      if (c == '{' || c == '[') {
        if (depth == kMaxDepth) {
          return Corrupt("nesting too deep", i_);
        }
        stack[depth++] = c == '{' ? '}' : ']';
      } else if (c == '}' || c == ']') {
        if (stack[depth - 1] != c) {
          return Corrupt("mismatched bracket", i_);
        }
        --depth;
      } else if (static_cast<uint8_t>(c) <= 0x20) {
        return Corrupt("whitespace or control character outside a string", i_);
      }
      ++i_;
    }
    return Status::Ok();
  }

  Status HashHex(size_t* pos) {
    if (!Eat('"') || t_.size() - i_ < kHashHexLen + 1 || !IsHashHex(t_.substr(i_, kHashHexLen)) ||
        t_[i_ + kHashHexLen] != '"') {
      return Corrupt("expected 64 lowercase hex digits", i_);
    }
    *pos = i_;
    i_ += kHashHexLen + 1;
    return Status::Ok();
  }

  // Advances over bytes that need no attention inside a string (not '"', '\\' or a control
  // character): 16 at a time where SSE2 exists, then one table lookup per byte.
  void SkipPlainBytes() {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i max_control = _mm_set1_epi8(0x1f);
    while (t_.size() - i_ >= 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t_.data() + i_));
      // Unsigned v <= 0x1f  <=>  min(v, 0x1f) == v.
      const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, max_control), v);
      const __m128i special = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), control);
      const int mask = _mm_movemask_epi8(special);
      if (mask != 0) {
        i_ += static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
        return;
      }
      i_ += 16;
    }
#endif
    while (i_ < t_.size() && kTables.plain[static_cast<uint8_t>(t_[i_])]) {
      ++i_;
    }
  }

  size_t pos() const { return i_; }
  bool AtEnd() const { return i_ == t_.size(); }

 private:
  std::string_view t_;
  size_t i_ = 0;
};

}  // namespace

bool IsHashHex(std::string_view s) {
  if (s.size() != kHashHexLen) {
    return false;
  }
  int8_t any_bad = 0;  // -1 has the sign bit set; OR-ing keeps the loop branch-free
  for (char c : s) {
    any_bad |= HexDigit(c);
  }
  return any_bad >= 0;
}

void DecodeHashHex(std::string_view hex, uint8_t out[32]) {
  for (size_t i = 0; i < 32; ++i) {
    out[i] = static_cast<uint8_t>(HexDigit(hex[2 * i]) << 4 | HexDigit(hex[2 * i + 1]));
  }
}

void EncodeHashHex(const uint8_t bytes[32], char out[kHashHexLen]) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
}

Result<EntryLayout> ScanEntry(std::string_view text, ScanMode mode) {
  Scanner s(text);
  EntryLayout l;
  if (!s.Eat('{')) {
    return Corrupt("expected '{'", 0);
  }
  bool first = true;
  for (const Key& key : kKeys) {
    if (key.kind == Kind::kHash && mode != ScanMode::kJsonLine) {
      continue;
    }
    const size_t member = s.pos();
    if (!first && !s.Eat(',')) {
      return Corrupt("expected ',' before " + std::string(key.quoted), s.pos());
    }
    first = false;
    if (!s.EatLiteral(key.quoted)) {
      return Corrupt("expected key " + std::string(key.quoted.substr(0, key.quoted.size() - 1)),
                     s.pos());
    }
    switch (key.kind) {
      case Kind::kString:
        CUSTOS_RETURN_IF_ERROR(s.SkipString());
        break;
      case Kind::kInt:
        CUSTOS_RETURN_IF_ERROR(s.SkipInt(nullptr, /*allow_negative=*/true));
        break;
      case Kind::kObject:
        CUSTOS_RETURN_IF_ERROR(s.SkipContainer('{'));
        if (key.quoted == "\"extra\":") {
          l.extra_end = s.pos();
        }
        break;
      case Kind::kArray:
        CUSTOS_RETURN_IF_ERROR(s.SkipContainer('['));
        break;
      case Kind::kPrevHash:
        CUSTOS_RETURN_IF_ERROR(s.HashHex(&l.prev_hash_pos));
        break;
      case Kind::kHash:
        CUSTOS_RETURN_IF_ERROR(s.HashHex(&l.hash_pos));
        l.hash_member_pos = member;
        l.hash_member_end = s.pos();
        break;
      case Kind::kSeq:
        l.seq_pos = s.pos();
        CUSTOS_RETURN_IF_ERROR(s.SkipInt(&l.seq, /*allow_negative=*/false));
        l.seq_len = s.pos() - l.seq_pos;
        break;
    }
  }
  if (!s.Eat('}')) {
    return Corrupt("expected '}' after the last key", s.pos());
  }
  if (!s.AtEnd()) {
    return Corrupt("trailing bytes after the entry", s.pos());
  }
  return l;
}

}  // namespace custos::audit::internal
