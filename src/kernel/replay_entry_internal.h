#pragma once
// A fast reader of one log entry's canonical text for replay (kernel/replay.h). Canonical JSON
// (docs/spec/flight-log.md §2) is one object with the 23 fields in sorted order, strings escaped
// only as CanonicalJson escapes them; the reader walks that text once, building a JSON tree only
// for non-empty `extra`, `usage` and `labels` values. It accepts only that exact shape: on false
// the caller decodes with audit::DecodeEntry, which reports the precise error. It checks form,
// not the hash chain (that is `audit verify`).
//
// Thread-safe: a free function.

#include "custos/audit/log_entry.h"
#include "custos/store/store.h"

namespace custos::kernel::internal {

// Fills *e from row, except prev_hash and hash (replay does not need them), and returns true; or
// returns false (e unspecified) if the text is not in the exact canonical shape this reader knows.
bool ReadEntryFast(const store::LogRow& row, audit::LogEntry* e);

}  // namespace custos::kernel::internal
