#pragma once
// Glob is a compiled path or name pattern, as written in policy:
//   `*`  matches any run of characters except the separator,
//   `**` matches any run of characters including separators (a whole `/**/` segment may match
//        nothing, so `/a/**/b` matches `/a/b`),
//   `?`  matches one character except the separator,
//   everything else matches itself. There are no character classes and no escapes; a pattern
//   containing `[`, `]`, `{`, `}` or `\` is rejected, so a pattern never means something other
//   than it reads.
// The separator is '/' for paths and '.' for tool and host names.
//
// Only a `**` with a separator on both sides collapses: `/a/**` matches `/a/` and below but not
// `/a`, and `**.example.com` does not match `example.com`. An empty pattern and runs of three or
// more `*` are rejected too.
//
// Compile errors are kPolicyBadPattern with the reason in the message. Matches() never allocates
// and runs in O(|pattern| * |text|) at worst (no exponential backtracking).
//
// Thread-compatible: a compiled Glob is immutable.

#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos {

class Glob {
 public:
  static Result<Glob> Compile(std::string_view pattern, char separator = '/');

  bool Matches(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }
  // The longest prefix without a wildcard: an index key for compiled policies.
  std::string_view literal_prefix() const;
  bool is_literal() const { return literal_; }

 private:
  Glob(std::string pattern, char sep, bool literal)
      : pattern_(std::move(pattern)), sep_(sep), literal_(literal) {}
  std::string pattern_;
  char sep_;
  bool literal_;
};

}  // namespace custos
