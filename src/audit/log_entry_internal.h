#pragma once
// The writer's entry point into the canonical encoder: the same bytes as EncodeCanonical(), plus
// where seq and prev_hash were written, so the writer can patch them in under its lock without
// scanning the text again.
//
// Thread-safe: a free function.

#include <string>

#include "audit/entry_scan_internal.h"
#include "custos/audit/log_entry.h"

namespace custos::audit::internal {

// Fills layout->seq, seq_pos, seq_len, prev_hash_pos and extra_end (the JSONL fields stay 0).
Result<std::string> EncodeCanonicalWithLayout(const LogEntry& e, EntryLayout* layout);

}  // namespace custos::audit::internal
