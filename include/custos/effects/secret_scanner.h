#pragma once
// SecretScanner finds the values of known secrets in outgoing or returned bytes, so the kernel can
// block egress that carries one (kSecretInEgress) and redact results before an agent sees them
// (INV-6). It recognises each secret value in these spellings:
//   * raw bytes;
//   * base64, standard and URL-safe alphabets, at any of the three byte alignments, padded or not
//     (it searches the part of the encoding that depends only on the secret's bytes, so the
//     secret may sit anywhere inside a larger encoded blob);
//   * hex, in any letter case;
//   * percent-encoding of any subset of its bytes with either hex case, nested up to three times
//     ("%2541" for "A"), including the base64 and hex spellings inside percent-encoding.
// It does not see: base64 split by line breaks, JSON "\uXXXX" escapes, or any transform an
// adversary chooses (reversal, XOR, chunking across separate messages). It is a guard against
// leaks, not a proof of their absence; the kernel's first defence is never giving agents secret
// bytes.
//
// Create() refuses (kInvalidArgument) values shorter than kMinSecretBytes (they would match by
// chance), names that are empty, repeated or outside [A-Za-z0-9_.:-]{1,64} (a name is printed in
// redactions), and more than kMaxSecrets secrets. Cost: one pass per spelling family over the
// input with an 8-byte-prefix hash table, so scanning is linear in the input and nearly
// independent of the number of secrets. Secret copies are wiped when the scanner is destroyed.
//
// Thread-safe after construction: FindIn and Redact are const and share nothing mutable.
// Move-only.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::effects {

inline constexpr size_t kMinSecretBytes = 8;
inline constexpr size_t kMaxSecrets = 1024;

class SecretScanner {
 public:
  // `secrets` holds (name, value) pairs.
  static Result<SecretScanner> Create(
      const std::vector<std::pair<std::string, std::string>>& secrets);

  SecretScanner(SecretScanner&&) noexcept;
  SecretScanner& operator=(SecretScanner&&) noexcept;
  SecretScanner(const SecretScanner&) = delete;
  SecretScanner& operator=(const SecretScanner&) = delete;
  ~SecretScanner();

  // The name of a secret whose value occurs in `bytes` in any recognised spelling, or nullopt.
  // Raw, base64 and hex spellings are looked for before percent-decoded ones.
  std::optional<std::string> FindIn(std::string_view bytes) const;

  // `text` with every occurrence of a secret, in any recognised spelling, replaced by
  // "[redacted:<name>]". Overlapping occurrences merge into one replacement (named after the one
  // that starts first).
  std::string Redact(std::string_view text) const;
  // `j` with Redact() applied to every string in it, object keys included; other values as is.
  Json RedactJson(const Json& j) const;

  // The [begin, end) byte ranges of `text` that Redact() replaces, merged, in order.
  std::vector<std::pair<size_t, size_t>> Spans(std::string_view text) const;

  // The longest stretch of input one occurrence can cover in any recognised spelling (27 times
  // the longest pattern: three rounds of percent-encoding); 0 without secrets. A stream redactor
  // that holds back this many bytes never emits part of an occurrence the next bytes complete.
  size_t MaxSpanBytes() const { return max_span_; }
  // True if some secret's value contains a line feed. Otherwise no occurrence, in any spelling,
  // contains one, so cutting text just after a '\n' never splits an occurrence.
  bool SpansLines() const { return spans_lines_; }

  size_t size() const { return names_.size(); }

 private:
  struct Pattern {
    std::string bytes;
    uint32_t secret = 0;  // index into names_
  };
  // Patterns keyed by their first 8 bytes in an open-addressing table.
  struct Table {
    std::vector<Pattern> patterns;
    std::vector<uint64_t> keys;         // slot -> prefix (valid when heads[slot] != kEmpty)
    std::vector<uint32_t> heads;        // slot -> first pattern index with that prefix
    std::vector<uint32_t> next;         // pattern index -> next pattern with the same prefix
    std::vector<uint64_t> first_pairs;  // 65536-bit filter on the first two bytes
    void Build();
    void Wipe();
  };
  struct Match {
    size_t begin;
    size_t end;
    uint32_t secret;
  };

  SecretScanner() = default;
  // Appends matches of `table` in `view`; `map`, if not empty, translates view offsets (and the
  // end offset view.size()) to offsets in the original input. Stops after the first if `first`.
  static void Scan(const Table& table, std::string_view view, const std::vector<size_t>& map,
                   bool first, std::vector<Match>* out);
  void ScanAll(std::string_view input, bool first, std::vector<Match>* out) const;

  std::vector<std::string> names_;
  Table exact_;   // raw and base64 spellings: case-sensitive
  Table folded_;  // hex spellings, lower-case; matched against lower-cased input
  size_t max_span_ = 0;
  bool spans_lines_ = false;
};

}  // namespace custos::effects
