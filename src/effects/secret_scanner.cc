#include "custos/effects/secret_scanner.h"

#include <string.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "custos/core/encoding.h"

namespace custos::effects {
namespace {

constexpr uint32_t kEmpty = 0xffffffffu;

void WipeString(std::string* s) {
  if (!s->empty()) {
    explicit_bzero(s->data(), s->size());
  }
  s->clear();
}

uint64_t Load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

size_t HashSlot(uint64_t key, size_t mask) {
  return static_cast<size_t>((key * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

uint32_t PairOf(const char* p) {
  return static_cast<uint32_t>(static_cast<unsigned char>(p[0])) |
         (static_cast<uint32_t>(static_cast<unsigned char>(p[1])) << 8);
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = Lower(c);
  }
  return out;
}

bool IsHex(char c) { return HexDigitValue(c) >= 0; }

// Base64 of `bytes` without padding; the last character may encode a partial group.
std::string Base64NoPad(std::string_view bytes, bool url_safe) {
  const char* alphabet = url_safe
                             ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(ch);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) {
    out += alphabet[(acc << (6 - bits)) & 63];
  }
  acc = 0;
  return out;
}

// The characters of the base64 encoding of `value` that depend only on its bytes when it starts
// `align` bytes into a 3-byte group: stable wherever the value sits inside a larger encoding.
std::string Base64Inner(std::string_view value, size_t align, bool url_safe) {
  std::string prefixed(align, '\0');
  prefixed.append(value);
  std::string enc = Base64NoPad(prefixed, url_safe);
  size_t begin = (8 * align + 5) / 6;
  size_t end = 8 * (align + value.size()) / 6;
  std::string inner = enc.substr(begin, end - begin);
  WipeString(&prefixed);
  WipeString(&enc);
  return inner;
}

std::string HexLower(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size() * 2);
  for (char ch : value) {
    unsigned char b = static_cast<unsigned char>(ch);
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// Decodes every valid %XX once. `map` gets, for each output byte and for the end, the offset in
// the original input (composed with `prev_map` when decoding an already decoded view).
bool PercentDecode(std::string_view in, const std::vector<size_t>& prev_map, std::string* out,
                   std::vector<size_t>* map) {
  out->resize(in.size());
  map->resize(in.size() + 1);
  char* o = out->data();
  size_t* m = map->data();
  const bool compose = !prev_map.empty();
  size_t k = 0;
  bool decoded_any = false;
  for (size_t i = 0; i < in.size();) {
    m[k] = compose ? prev_map[i] : i;
    if (in[i] == '%' && i + 2 < in.size() && IsHex(in[i + 1]) && IsHex(in[i + 2])) {
      o[k++] = static_cast<char>(HexDigitValue(in[i + 1]) * 16 + HexDigitValue(in[i + 2]));
      i += 3;
      decoded_any = true;
    } else {
      o[k++] = in[i++];
    }
  }
  m[k] = compose ? prev_map[in.size()] : in.size();
  out->resize(k);
  map->resize(k + 1);
  return decoded_any;
}

}  // namespace

void SecretScanner::Table::Build() {
  size_t size = 16;
  while (size < patterns.size() * 2) {
    size *= 2;
  }
  keys.assign(size, 0);
  heads.assign(size, kEmpty);
  next.assign(patterns.size(), kEmpty);
  first_pairs.assign(65536 / 64, 0);
  const size_t mask = size - 1;
  for (uint32_t j = 0; j < patterns.size(); ++j) {
    const std::string& p = patterns[j].bytes;
    uint64_t key = Load8(p.data());
    size_t slot = HashSlot(key, mask);
    while (heads[slot] != kEmpty && keys[slot] != key) {
      slot = (slot + 1) & mask;
    }
    keys[slot] = key;
    next[j] = heads[slot];
    heads[slot] = j;
    uint32_t pair = PairOf(p.data());
    first_pairs[pair >> 6] |= uint64_t{1} << (pair & 63);
  }
}

void SecretScanner::Table::Wipe() {
  for (Pattern& p : patterns) {
    WipeString(&p.bytes);
  }
  if (!keys.empty()) {
    explicit_bzero(keys.data(), keys.size() * sizeof(uint64_t));
  }
  if (!first_pairs.empty()) {
    explicit_bzero(first_pairs.data(), first_pairs.size() * sizeof(uint64_t));
  }
}

Result<SecretScanner> SecretScanner::Create(
    const std::vector<std::pair<std::string, std::string>>& secrets) {
  if (secrets.size() > kMaxSecrets) {
    return Status(Reason::kInvalidArgument,
                  "more than " + std::to_string(kMaxSecrets) + " secrets");
  }
  SecretScanner s;
  std::set<std::string> seen;
  for (size_t i = 0; i < secrets.size(); ++i) {
    const auto& [name, value] = secrets[i];
    const std::string at = "/" + std::to_string(i);
    if (!ValidName(name)) {
      return Status(Reason::kInvalidArgument, "secret name must match [A-Za-z0-9_.:-]{1,64}", at);
    }
    if (!seen.insert(name).second) {
      return Status(Reason::kInvalidArgument, "secret name " + name + " is repeated", at);
    }
    if (value.size() < kMinSecretBytes) {
      return Status(Reason::kInvalidArgument,
                    "secret " + name + " is shorter than " + std::to_string(kMinSecretBytes) +
                        " bytes; it would match by chance",
                    at);
    }
    if (value.find('\n') != std::string::npos) {
      s.spans_lines_ = true;
    }
    const auto id = static_cast<uint32_t>(s.names_.size());
    s.names_.push_back(name);
    std::vector<std::string> exact = {value};
    for (size_t align = 0; align < 3; ++align) {
      exact.push_back(Base64Inner(value, align, false));
      exact.push_back(Base64Inner(value, align, true));
    }
    std::sort(exact.begin(), exact.end());
    for (size_t k = 0; k < exact.size(); ++k) {
      if (k == 0 || exact[k] != exact[k - 1]) {
        s.exact_.patterns.push_back({exact[k], id});
      }
    }
    for (std::string& e : exact) {
      WipeString(&e);
    }
    s.folded_.patterns.push_back({HexLower(value), id});
  }
  s.exact_.Build();
  s.folded_.Build();
  size_t longest = 0;
  for (const Table* t : {&s.exact_, &s.folded_}) {
    for (const Pattern& p : t->patterns) {
      longest = std::max(longest, p.bytes.size());
    }
  }
  // Three rounds of percent-decoding: one decoded byte can come from up to 3^3 input bytes.
  s.max_span_ = longest * 27;
  return s;
}

SecretScanner::SecretScanner(SecretScanner&&) noexcept = default;

SecretScanner& SecretScanner::operator=(SecretScanner&& o) noexcept {
  if (this != &o) {
    exact_.Wipe();
    folded_.Wipe();
    names_ = std::move(o.names_);
    exact_ = std::move(o.exact_);
    folded_ = std::move(o.folded_);
    max_span_ = o.max_span_;
    spans_lines_ = o.spans_lines_;
  }
  return *this;
}

SecretScanner::~SecretScanner() {
  exact_.Wipe();
  folded_.Wipe();
}

void SecretScanner::Scan(const Table& table, std::string_view view, const std::vector<size_t>& map,
                         bool first, std::vector<Match>* out) {
  if (view.size() < 8 || table.patterns.empty()) {
    return;
  }
  const char* data = view.data();
  const size_t n = view.size();
  const size_t mask = table.heads.size() - 1;
  for (size_t i = 0; i + 8 <= n; ++i) {
    uint32_t pair = PairOf(data + i);
    if ((table.first_pairs[pair >> 6] & (uint64_t{1} << (pair & 63))) == 0) {
      continue;
    }
    uint64_t key = Load8(data + i);
    size_t slot = HashSlot(key, mask);
    while (table.heads[slot] != kEmpty && table.keys[slot] != key) {
      slot = (slot + 1) & mask;
    }
    for (uint32_t j = table.heads[slot]; j != kEmpty; j = table.next[j]) {
      const Pattern& p = table.patterns[j];
      if (p.bytes.size() <= n - i && std::memcmp(data + i, p.bytes.data(), p.bytes.size()) == 0) {
        size_t end = i + p.bytes.size();
        out->push_back({map.empty() ? i : map[i], map.empty() ? end : map[end], p.secret});
        if (first) {
          return;
        }
      }
    }
  }
}

void SecretScanner::ScanAll(std::string_view input, bool first, std::vector<Match>* out) const {
  const std::vector<size_t> identity;
  auto scan_view = [&](std::string_view view, const std::vector<size_t>& map) {
    Scan(exact_, view, map, first, out);
    if (first && !out->empty()) {
      return;
    }
    std::string lowered = LowerCopy(view);
    Scan(folded_, lowered, map, first, out);
  };
  scan_view(input, identity);
  if (input.find('%') == std::string_view::npos) {
    return;
  }
  std::string current;
  std::vector<size_t> current_map;
  std::string decoded;
  std::vector<size_t> decoded_map;
  for (int round = 0; round < 3; ++round) {
    if (first && !out->empty()) {
      return;
    }
    std::string_view source = round == 0 ? input : std::string_view(current);
    if (!PercentDecode(source, current_map, &decoded, &decoded_map)) {
      return;
    }
    scan_view(decoded, decoded_map);
    std::swap(current, decoded);
    std::swap(current_map, decoded_map);
  }
}

std::optional<std::string> SecretScanner::FindIn(std::string_view bytes) const {
  std::vector<Match> matches;
  ScanAll(bytes, true, &matches);
  if (matches.empty()) {
    return std::nullopt;
  }
  return names_[matches.front().secret];
}

std::vector<std::pair<size_t, size_t>> SecretScanner::Spans(std::string_view text) const {
  std::vector<Match> matches;
  ScanAll(text, false, &matches);
  std::sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  std::vector<std::pair<size_t, size_t>> out;
  for (const Match& m : matches) {
    if (!out.empty() && m.begin < out.back().second) {
      out.back().second = std::max(out.back().second, m.end);
    } else {
      out.emplace_back(m.begin, m.end);
    }
  }
  return out;
}

Json SecretScanner::RedactJson(const Json& j) const {
  if (j.is_string())
    return Redact(j.get_ref<const std::string&>());
  if (j.is_array()) {
    Json out = Json::array();
    for (const Json& v : j)
      out.push_back(RedactJson(v));
    return out;
  }
  if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      out[Redact(it.key())] = RedactJson(*it);
    return out;
  }
  return j;
}

std::string SecretScanner::Redact(std::string_view text) const {
  std::vector<Match> matches;
  ScanAll(text, false, &matches);
  if (matches.empty()) {
    return std::string(text);
  }
  std::sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  size_t k = 0;
  while (k < matches.size()) {
    Match m = matches[k++];
    while (k < matches.size() && matches[k].begin < m.end) {
      m.end = std::max(m.end, matches[k].end);
      ++k;
    }
    out.append(text.substr(pos, m.begin - pos));
    out += "[redacted:";
    out += names_[m.secret];
    out += ']';
    pos = m.end;
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace custos::effects
