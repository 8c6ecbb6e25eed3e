#pragma once
// JSON at the kernel's edges: parsing untrusted text under limits, and the canonical encoding that
// log entries are hashed over.
//
// Canonical JSON (docs/spec/flight-log.md): UTF-8, object keys sorted by byte value, no
// insignificant whitespace, integers only (a float anywhere is an error), strings escaped minimally
// (only `"`, `\\` and control characters < 0x20, as \uXXXX except \b \f \n \r \t). Two equal values
// always encode to the same bytes. The \uXXXX escapes use lowercase hex (\u001f), as RFC 8785 and
// Python's json module do; everything else, including DEL and non-ASCII, passes through verbatim.
//
// Thread-safe: free functions without shared state.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "custos/core/result.h"

namespace custos {

using Json = nlohmann::json;

struct JsonLimits {
  size_t max_bytes = 1 << 20;  // whole document
  int max_depth = 32;          // nesting of arrays/objects
  size_t max_string_bytes = 1 << 20;
};

// Parses `text` as one JSON document. Errors: kPayloadTooLarge (document over max_bytes, or a
// string/key over max_string_bytes once unescaped), kInvalidUtf8 (anywhere in the text, or a
// \u escape naming an unpaired surrogate), kNestingTooDeep (more than max_depth nested
// arrays/objects; the top-level container is depth 1), kMalformedJson. Every message gives the
// 0-based byte offset ("at byte N") and never quotes the input. Comments are not accepted.
// Never throws.
Result<Json> ParseUntrustedJson(std::string_view text, const JsonLimits& limits = {});

// Encodes `value` canonically. Errors: kInvalidArgument if it holds a float or a binary value;
// kInvalidUtf8 if a string or key is not valid UTF-8 (its bytes could not be verified elsewhere).
Result<std::string> CanonicalJson(const Json& value);

// Appends the canonical encoding of a string (with quotes) to `out`.
// REQUIRES: IsValidUtf8(s) for the output to be canonical JSON; bytes are not checked here.
void AppendCanonicalString(std::string_view s, std::string* out);

// Returns true if `s` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// RFC 6901 escaping of one reference token ("~" -> "~0", "/" -> "~1").
std::string JsonPointerToken(std::string_view key);

}  // namespace custos
