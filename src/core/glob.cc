#include "custos/core/glob.h"

#include <string>

namespace custos {
namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

bool IsWildcard(char c) { return c == '*' || c == '?'; }

}  // namespace

Result<Glob> Glob::Compile(std::string_view pattern, char separator) {
  if (pattern.empty())
    return Status(Reason::kPolicyBadPattern, "empty glob pattern");
  bool literal = true;
  size_t star_run = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    switch (c) {
      case '[':
      case ']':
      case '{':
      case '}':
      case '\\':
        return Status(Reason::kPolicyBadPattern,
                      std::string("glob '") + std::string(pattern) + "': '" + c + "' at offset " +
                          std::to_string(i) + " is not supported (no classes or escapes)");
      case '\0':
        return Status(Reason::kPolicyBadPattern, "glob contains a NUL byte");
      default:
        break;
    }
    if (c == '*') {
      if (++star_run > 2) {
        return Status(Reason::kPolicyBadPattern, "glob '" + std::string(pattern) +
                                                     "': more than two '*' in a row at offset " +
                                                     std::to_string(i));
      }
    } else {
      star_run = 0;
    }
    if (IsWildcard(c))
      literal = false;
  }
  return Glob(std::string(pattern), separator, literal);
}

// Iterative matcher with two backtrack points, which keeps it O(|pattern| * |text|) worst case and
// allocation-free:
//  - the latest `*`: it may grow over non-separator bytes only;
//  - the latest `**`: it may grow over anything, and once reached it supersedes every earlier
//    wildcard (whatever they could absorb, it can too), so earlier points are forgotten.
// When the `*` cannot grow (end of text or a separator) the `**` grows instead and the pattern is
// replayed from just after it. A `<sep>**<sep>` segment is matched as `<sep>` followed by "nothing
// or any run ending in a separator"; it grows separator to separator.
bool Glob::Matches(std::string_view text) const {
  if (literal_)
    return text == pattern_;
  const std::string_view p = pattern_;
  const size_t np = p.size();
  const size_t nt = text.size();
  size_t pi = 0;
  size_t ti = 0;
  size_t star_p = kNone;   // pattern index just after the latest `*`
  size_t star_t = 0;       // text index where that `*`'s match currently ends
  size_t dstar_p = kNone;  // pattern index just after the latest `**` (or `**<sep>`)
  size_t dstar_t = 0;
  bool dstar_segment = false;  // the latest `**` is a whole `<sep>**<sep>` segment

  while (true) {
    if (pi < np) {
      const char c = p[pi];
      if (c == '*') {
        if (pi + 1 < np && p[pi + 1] == '*') {
          dstar_segment = pi > 0 && p[pi - 1] == sep_ && pi + 2 < np && p[pi + 2] == sep_;
          dstar_p = pi + (dstar_segment ? 3 : 2);
          dstar_t = ti;
          star_p = kNone;
          pi = dstar_p;
          continue;
        }
        star_p = pi + 1;
        star_t = ti;
        pi = star_p;
        continue;
      }
      if (ti < nt && (c == text[ti] || (c == '?' && text[ti] != sep_))) {
        ++pi;
        ++ti;
        continue;
      }
    } else if (ti == nt) {
      return true;
    }
    // Mismatch: grow the latest `*` if it can, else the latest `**`, else fail.
    if (star_p != kNone && star_t < nt && text[star_t] != sep_) {
      ++star_t;
      pi = star_p;
      ti = star_t;
      continue;
    }
    star_p = kNone;
    if (dstar_p == kNone)
      return false;
    if (dstar_segment) {
      const size_t next = text.find(sep_, dstar_t);
      if (next == std::string_view::npos)
        return false;
      dstar_t = next + 1;
    } else {
      if (dstar_t >= nt)
        return false;
      ++dstar_t;
    }
    pi = dstar_p;
    ti = dstar_t;
  }
}

std::string_view Glob::literal_prefix() const {
  const std::string_view p = pattern_;
  const size_t first = p.find_first_of("*?");
  return first == std::string_view::npos ? p : p.substr(0, first);
}

}  // namespace custos
