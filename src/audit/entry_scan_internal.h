#pragma once
// An exact scanner for the canonical form of a log entry (docs/spec/flight-log.md). Canonical
// JSON sorts keys, so an entry is always the same key sequence in the same order; the scanner
// walks that sequence, skipping each value by its syntax (strings with their escapes, integers,
// nested containers with strings inside them), and reports where seq and prev_hash are. It does not
// build a JSON tree, so verification and the writer's hot path stay cheap, yet it cannot be fooled
// by a value that merely contains the text `"seq":` (inside a string that quote would be escaped;
// inside `extra` or `usage` it is at depth 2).
//
// Thread-safe: free functions.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "custos/core/result.h"

namespace custos::audit::internal {

// Where the chain-relevant values sit in an entry's text.
struct EntryLayout {
  int64_t seq = 0;
  size_t seq_pos = 0, seq_len = 0;  // the digits of seq
  size_t prev_hash_pos = 0;         // the 64 hex digits of prev_hash
  size_t extra_end = 0;             // just past extra's value, where a JSONL line puts "hash"
  // Only when scanning a JSONL line: the member `,"hash":"<64 hex>"` occupies
  // [hash_member_pos, hash_member_end) and the digits start at hash_pos.
  size_t hash_member_pos = 0, hash_member_end = 0, hash_pos = 0;
};

enum class ScanMode {
  kCanonical,  // an entry's canonical text (no "hash")
  kJsonLine,   // a JSONL export line: canonical plus "hash" between "extra" and "labels"
};

inline constexpr size_t kHashHexLen = 64;

// Scans `text`. kLogCorrupt (message says which key or byte is wrong) unless it is exactly one
// object with the entry's keys in canonical order, seq a non-negative integer in canonical form,
// and prev_hash (and hash, for kJsonLine) 64 lowercase hex digits.
Result<EntryLayout> ScanEntry(std::string_view text, ScanMode mode);

// True if `s` is exactly 64 lowercase hex digits.
bool IsHashHex(std::string_view s);

// Decodes 64 lowercase hex digits into 32 bytes. REQUIRES: IsHashHex(hex).
void DecodeHashHex(std::string_view hex, uint8_t out[32]);
// Encodes 32 bytes as 64 lowercase hex digits into `out`.
void EncodeHashHex(const uint8_t bytes[32], char out[kHashHexLen]);

}  // namespace custos::audit::internal
