#include "custos/effects/patch.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace custos::effects {
namespace {

constexpr size_t kExcerptBytes = 60;

// A bounded, printable rendering of text the caller supplied (never of file contents).
std::string Excerpt(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kExcerptBytes; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kExcerptBytes) {
    out += "...";
  }
  out += '"';
  return out;
}

// Splits on '\n'. `*final_newline` tells whether the text ended with one (true for "").
std::vector<std::string_view> SplitLines(std::string_view text, bool* final_newline) {
  std::vector<std::string_view> lines;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) {
      lines.push_back(text.substr(i));
      *final_newline = false;
      return lines;
    }
    lines.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  *final_newline = true;
  return lines;
}

struct Hunk {
  std::string header;
  size_t old_start = 0;
  size_t old_count = 1;
  size_t new_start = 0;
  size_t new_count = 1;
  std::vector<std::string_view> old_lines;
  std::vector<std::string_view> new_lines;
  bool old_no_newline = false;
  bool new_no_newline = false;
};

bool ParseNumber(std::string_view s, size_t* i, size_t* out) {
  size_t start = *i;
  uint64_t v = 0;
  while (*i < s.size() && s[*i] >= '0' && s[*i] <= '9' && *i - start < 9) {
    v = v * 10 + static_cast<uint64_t>(s[*i] - '0');
    ++*i;
  }
  if (*i == start || (*i < s.size() && s[*i] >= '0' && s[*i] <= '9')) {
    return false;
  }
  *out = static_cast<size_t>(v);
  return true;
}

// "@@ -a[,b] +c[,d] @@[ section]"
bool ParseHeader(std::string_view line, Hunk* h) {
  size_t i = 0;
  auto expect = [&](std::string_view lit) {
    if (line.substr(i, lit.size()) != lit) {
      return false;
    }
    i += lit.size();
    return true;
  };
  if (!expect("@@ -") || !ParseNumber(line, &i, &h->old_start)) {
    return false;
  }
  if (i < line.size() && line[i] == ',') {
    ++i;
    if (!ParseNumber(line, &i, &h->old_count)) {
      return false;
    }
  }
  if (!expect(" +") || !ParseNumber(line, &i, &h->new_start)) {
    return false;
  }
  if (i < line.size() && line[i] == ',') {
    ++i;
    if (!ParseNumber(line, &i, &h->new_count)) {
      return false;
    }
  }
  if (!expect(" @@")) {
    return false;
  }
  h->header = std::string(line.substr(0, i));
  return true;
}

Status DiffError(std::string message) {
  return Status(Reason::kInvalidArgument, std::move(message));
}

Result<std::vector<Hunk>> ParseDiff(std::string_view diff) {
  bool unused = false;
  std::vector<std::string_view> lines = SplitLines(diff, &unused);
  std::vector<Hunk> hunks;
  size_t i = 0;
  while (i < lines.size() && !lines[i].starts_with("@@ ")) {
    ++i;  // preamble: diff/index/---/+++ or mail headers
  }
  while (i < lines.size()) {
    std::string_view line = lines[i];
    if (line.empty()) {
      ++i;  // blank lines between or after hunks
      continue;
    }
    if (!line.starts_with("@@ ")) {
      if (line.starts_with("--- ") || line.starts_with("diff ") || line.starts_with("+++ ")) {
        return DiffError("the diff touches more than one file (line " + std::to_string(i + 1) +
                         ")");
      }
      return DiffError("unexpected line " + std::to_string(i + 1) +
                       " between hunks: " + Excerpt(line));
    }
    Hunk h;
    const std::string label = "hunk " + std::to_string(hunks.size() + 1);
    if (!ParseHeader(line, &h)) {
      return DiffError(label + ": malformed header " + Excerpt(line));
    }
    ++i;
    char last_op = 0;
    while (h.old_lines.size() < h.old_count || h.new_lines.size() < h.new_count ||
           (i < lines.size() && lines[i].starts_with("\\"))) {
      if (i >= lines.size()) {
        return DiffError(label + " " + h.header + ": truncated (fewer lines than its header says)");
      }
      std::string_view l = lines[i];
      char op = l.empty() ? ' ' : l[0];
      std::string_view text = l.empty() ? l : l.substr(1);
      if (op == '\\') {
        if (last_op == 0) {
          return DiffError(label + ": \"\\ No newline\" marker before any line");
        }
        if (last_op != '+') {
          h.old_no_newline = true;
        }
        if (last_op != '-') {
          h.new_no_newline = true;
        }
        ++i;
        continue;
      }
      bool to_old = op == ' ' || op == '-';
      bool to_new = op == ' ' || op == '+';
      if (!to_old && !to_new) {
        return DiffError(label + " " + h.header + ": unexpected line " + std::to_string(i + 1) +
                         ": " + Excerpt(l));
      }
      if ((to_old && h.old_no_newline) || (to_new && h.new_no_newline)) {
        return DiffError(label + ": a line follows the \"\\ No newline at end of file\" marker");
      }
      if (to_old) {
        h.old_lines.push_back(text);
      }
      if (to_new) {
        h.new_lines.push_back(text);
      }
      if (h.old_lines.size() > h.old_count || h.new_lines.size() > h.new_count) {
        return DiffError(label + " " + h.header + ": more lines than its header says (line " +
                         std::to_string(i + 1) + ")");
      }
      last_op = op;
      ++i;
    }
    hunks.push_back(std::move(h));
  }
  if (hunks.empty()) {
    return DiffError("the diff has no hunks");
  }
  return hunks;
}

bool MatchesAt(const std::vector<std::string_view>& file, bool file_final_newline, const Hunk& h,
               size_t at) {
  if (at + h.old_lines.size() > file.size()) {
    return false;
  }
  for (size_t k = 0; k < h.old_lines.size(); ++k) {
    if (file[at + k] != h.old_lines[k]) {
      return false;
    }
  }
  if (h.old_no_newline && (at + h.old_lines.size() != file.size() || file_final_newline)) {
    return false;
  }
  return true;
}

Status Mismatch(const std::vector<std::string_view>& file, const Hunk& h, size_t hunk_index,
                size_t stated, size_t pos, size_t matches) {
  std::string label = "hunk " + std::to_string(hunk_index + 1) + " (" + h.header + ")";
  if (stated < pos && matches == 0) {
    return DiffError(label + ": starts at line " + std::to_string(stated + 1) +
                     ", inside the previous hunk, and matches nowhere after it");
  }
  if (matches > 1) {
    return DiffError(label + ": its lines do not match at line " + std::to_string(stated + 1) +
                     " and match " + std::to_string(matches) + " other places; ambiguous");
  }
  for (size_t k = 0; k < h.old_lines.size(); ++k) {
    if (stated + k >= file.size()) {
      return DiffError(label + ": expects line " + std::to_string(stated + k + 1) + " " +
                       Excerpt(h.old_lines[k]) + " but the file has only " +
                       std::to_string(file.size()) + " lines");
    }
    if (file[stated + k] != h.old_lines[k]) {
      return DiffError(label + ": line " + std::to_string(stated + k + 1) +
                       " of the file does not match the diff's " + Excerpt(h.old_lines[k]));
    }
  }
  if (h.old_lines.empty()) {
    return DiffError(label + ": insertion point " + std::to_string(stated) +
                     " is outside the file or before the previous hunk");
  }
  return DiffError(label + ": the file's end-of-file newline does not match the diff");
}

}  // namespace

Result<std::string> ApplyUnifiedDiff(std::string_view original, std::string_view diff) {
  CUSTOS_ASSIGN_OR_RETURN(std::vector<Hunk> hunks, ParseDiff(diff));
  bool orig_final_newline = true;
  std::vector<std::string_view> file = SplitLines(original, &orig_final_newline);
  std::vector<std::string_view> out;
  out.reserve(file.size());
  bool final_newline = orig_final_newline;
  size_t pos = 0;
  for (size_t k = 0; k < hunks.size(); ++k) {
    const Hunk& h = hunks[k];
    // An empty old side names the line after which to insert; otherwise the first old line.
    size_t stated = h.old_lines.empty() ? h.old_start : (h.old_start == 0 ? 0 : h.old_start - 1);
    size_t at = 0;
    if (stated >= pos && MatchesAt(file, orig_final_newline, h, stated)) {
      at = stated;
    } else {
      size_t matches = 0;
      if (!h.old_lines.empty()) {
        for (size_t c = pos; c + h.old_lines.size() <= file.size(); ++c) {
          if (MatchesAt(file, orig_final_newline, h, c)) {
            ++matches;
            at = c;
          }
        }
      }
      if (matches != 1) {
        return Mismatch(file, h, k, stated, pos, matches);
      }
    }
    out.insert(out.end(), file.begin() + static_cast<ptrdiff_t>(pos),
               file.begin() + static_cast<ptrdiff_t>(at));
    out.insert(out.end(), h.new_lines.begin(), h.new_lines.end());
    pos = at + h.old_lines.size();
    if (pos == file.size()) {
      final_newline = h.new_lines.empty() ? true : !h.new_no_newline;
    }
  }
  out.insert(out.end(), file.begin() + static_cast<ptrdiff_t>(pos), file.end());
  size_t total = 0;
  for (std::string_view l : out) {
    total += l.size() + 1;
  }
  std::string result;
  result.reserve(total);
  for (size_t k = 0; k < out.size(); ++k) {
    result.append(out[k]);
    if (k + 1 < out.size() || final_newline) {
      result += '\n';
    }
  }
  return result;
}

Result<std::string> ApplyEdits(std::string_view original, const std::vector<Edit>& edits) {
  struct Span {
    size_t start;
    size_t end;
    size_t index;
  };
  std::vector<Span> spans;
  spans.reserve(edits.size());
  for (size_t k = 0; k < edits.size(); ++k) {
    const std::string at = "/" + std::to_string(k);
    const std::string& old_text = edits[k].old_text;
    if (old_text.empty()) {
      return Status(Reason::kInvalidArgument, "edit " + std::to_string(k) + ": old_text is empty",
                    at);
    }
    size_t first = original.find(old_text);
    if (first == std::string_view::npos) {
      return Status(Reason::kInvalidArgument,
                    "edit " + std::to_string(k) + ": old_text " + Excerpt(old_text) +
                        " does not occur in the file",
                    at);
    }
    if (original.find(old_text, first + 1) != std::string_view::npos) {
      return Status(Reason::kInvalidArgument,
                    "edit " + std::to_string(k) + ": old_text " + Excerpt(old_text) +
                        " occurs more than once; add context to make it unique",
                    at);
    }
    spans.push_back({first, first + old_text.size(), k});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.start < b.start; });
  for (size_t k = 1; k < spans.size(); ++k) {
    if (spans[k].start < spans[k - 1].end) {
      return Status(Reason::kInvalidArgument,
                    "edit " + std::to_string(spans[k].index) + " overlaps edit " +
                        std::to_string(spans[k - 1].index),
                    "/" + std::to_string(spans[k].index));
    }
  }
  std::string result;
  size_t pos = 0;
  for (const Span& s : spans) {
    result.append(original.substr(pos, s.start - pos));
    result.append(edits[s.index].new_text);
    pos = s.end;
  }
  result.append(original.substr(pos));
  return result;
}

}  // namespace custos::effects
