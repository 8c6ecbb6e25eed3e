#pragma once
// Shaping of what /v1/invoke and /v1/expand return to an agent. The kernel already bounds every
// frame (max_frame_bytes); shaping decides how much of it a model-facing caller sees:
//   raw     — the kernel's frame unchanged;
//   handle  — no content at all, only the handle (pass it on, or /v1/expand it later);
//   summary — the first kSummaryBytes of the text, its size and the handle (the default);
//   table   — for output that is a JSON array of objects: columns and the first kTableRows rows.
// Expansion pages through a handle's content: rows of a JSON array (filter by field equality,
// project fields, offset/limit) or, for anything else, a byte range.
//
// Thread-safe: pure functions.

#include <cstddef>
#include <string>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::server {

inline constexpr size_t kSummaryBytes = 512;
inline constexpr size_t kTableRows = 20;
inline constexpr size_t kTableColumns = 32;
inline constexpr int64_t kMaxExpandRows = 1000;

// kInvalidArgument for an unknown mode name.
Result<std::string> ParseResponseMode(const Json& body);

// Returns the frame to show for `mode`. REQUIRES: mode is one ParseResponseMode accepts.
Json ShapeFrame(const Json& frame, const std::string& mode);

struct ExpandQuery {
  int64_t offset = 0;
  int64_t limit = 100;
  std::vector<std::string> fields;  // empty = all
  Json filter = Json::object();     // field → value that must be equal
};

// Parses {limit, offset, fields, filter} with JSON pointers on errors (kSchemaViolation).
Result<ExpandQuery> ParseExpandQuery(const Json& body);

// Rows of `text` (a JSON array) matching the query, or nullopt-like null Json if the text is not
// a JSON array.
Json ExpandRows(const std::string& text, const ExpandQuery& q);

}  // namespace custos::server
