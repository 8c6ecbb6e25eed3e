#pragma once
// Pure text transforms for file.patch: a unified diff (one file's hunks) or a list of exact
// replacements, applied to the file's current contents. Nothing is fuzzy: every context and
// removed line must match byte for byte (CR included), and a failure applies nothing.
//
// ApplyUnifiedDiff reads `diff -u` / `git diff` output for ONE file. Lines before the first "@@"
// (diff/index/---/+++ headers, mail headers) are ignored; a second file header after a hunk is
// kInvalidArgument. A hunk applies at its stated line; if its old lines do not match there, it
// applies at the single other place (after the previous hunk) where they match exactly, as
// GNU patch does with an offset; no match or several matches fail with kInvalidArgument naming the
// hunk and the first line that differs at the stated place. "\ No newline at end of file" is
// honoured on both sides. An empty line inside a hunk counts as an empty context line (editors
// strip the lone space). Error messages quote only text from the diff (truncated), never from the
// file, which may hold secrets the caller may not read.
//
// ApplyEdits finds every `old_text` in `original` (not in the partly edited text), each exactly
// once, non-overlapping and non-empty, and replaces them all at once. Violations are
// kInvalidArgument naming the edit by index.
//
// Thread-safe: pure functions.

#include <string>
#include <string_view>
#include <vector>

#include "custos/core/result.h"

namespace custos::effects {

Result<std::string> ApplyUnifiedDiff(std::string_view original, std::string_view diff);

struct Edit {
  std::string old_text;
  std::string new_text;
};

Result<std::string> ApplyEdits(std::string_view original, const std::vector<Edit>& edits);

}  // namespace custos::effects
