#pragma once
// LogEntry is one record of the flight log (docs/spec/flight-log.md is normative):
//   canonical = CanonicalJson(every field below except `hash`)
//   hash      = SHA-256(prev_hash_bytes || canonical)            (hash chain)
//   leaf      = SHA-256(0x00 || canonical)                       (RFC 9162 Merkle leaf, issue 4)
// The first entry's prev_hash is 64 '0' characters. Payloads are never inline: only their hashes
// and the id of the sealed blob. Strings that could carry secret bytes (target, explanation) are
// redacted by the kernel before they reach an entry (INV-6).
//
// Thread-compatible.

#include <cstdint>
#include <string>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/store/store.h"

namespace custos::audit {

inline constexpr int kLogEntryVersion = 1;
inline constexpr char kGenesisHash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct LogEntry {
  // Assigned by the writer.
  int64_t seq = 0;
  std::string prev_hash;
  std::string hash;

  int64_t time_ms = 0;
  std::string type;  // "decision" | "outcome" | "event"
  std::string agent, run;
  std::string syscall_id;  // the caller's request id
  std::string syscall;     // kind name, or the event name for type "event"
  std::string target;      // redacted
  std::string verdict;     // "allow" | "deny" | "require_approval" ("" for events)
  std::string stage, rule, reason, explanation;
  std::vector<std::string> labels;
  std::string req_hash, res_hash;  // SHA-256 hex of the payloads, "" if none
  std::string blob;                // handle / sealed blob id, "" if none
  int64_t decision_seq = 0;        // outcome: the decision entry it settles
  std::string policy_hash;
  Json usage = Json::object();  // integers only
  Json extra = Json::object();  // event details, integers and strings only

  // Not encoded: sealed request/result bytes that ToRow() moves into LogRow::payload, stored in
  // the same transaction as the row.
  std::string payload;
};

// The canonical encoding (without `hash`). kInvalidArgument if `usage`/`extra` hold floats, are
// not objects or nest deeper than 16 levels, or if prev_hash is not 64 lowercase hex digits;
// kInvalidUtf8 if a string is not UTF-8.
Result<std::string> EncodeCanonical(const LogEntry& e);
// Hash over prev_hash (hex, decoded) and canonical, as lowercase hex. "" if prev_hash_hex is not 64
// lowercase hex digits (never equal to a real hash, so a check against it fails closed).
std::string ChainHash(std::string_view prev_hash_hex, std::string_view canonical);
// Parses a row's canonical JSON back into an entry (hash copied from the row). kLogCorrupt on any
// malformed or missing field.
Result<LogEntry> DecodeEntry(const store::LogRow& row);
// The row to store for an entry whose seq/prev_hash/hash are set.
store::LogRow ToRow(const LogEntry& e, std::string canonical);
// JSONL export line: canonical fields plus "hash" (docs/spec/flight-log.md section 5), no newline.
// A row whose canonical text is malformed is exported as-is, without "hash", so the export never
// hides corruption: VerifyJsonl rejects that line.
std::string ToJsonLine(const store::LogRow& row);

}  // namespace custos::audit
