#pragma once
// LogWriter is the single writer of the flight log (INV-4). Callers hand it entries; each is
// given the next sequence number and its chain hash in one total order as it is queued (under the
// queue lock; the canonical encoding itself runs on the caller's thread, in parallel); one writer
// thread batches whatever is queued into one store transaction (group commit) and releases each
// caller according to the durability mode:
//   kFsync: every entry is its own fsync'd transaction before its caller is released;
//   kGroup: entries queued together share one fsync'd transaction; each caller is released after
//           its batch is durable (the default);
//   kNone:  the caller is released as soon as the entry is queued; a crash may lose the tail of
//           the log (the log stays verifiable: it is just shorter).
// Append() returns the entry's seq and hash. If the store fails, Append returns kStoreError, the
// writer stops accepting entries (every later Append fails with kUnavailable: fail closed), and no
// partial batch is left in the store.
//
// On Open the writer reads the last row so the chain continues across restarts, and refuses
// (kLogCorrupt) to extend a last row whose hash does not recompute. At most 16384 entries wait
// for the writer; beyond that Append blocks (in every mode), so memory stays bounded. The
// destructor drains the queue and, in kNone, syncs it.
//
// Thread-safe.

#include <cstdint>
#include <memory>
#include <string>

#include "custos/audit/log_entry.h"
#include "custos/core/clock.h"
#include "custos/core/result.h"
#include "custos/store/store.h"

namespace custos::audit {

enum class Durability : uint8_t { kNone = 0, kGroup = 1, kFsync = 2 };
std::string_view DurabilityName(Durability d);
Result<Durability> ParseDurability(std::string_view name);  // "none" | "group" | "fsync"

struct Appended {
  int64_t seq = 0;
  std::string hash;
};

class LogWriter {
 public:
  // `store` must outlive the writer.
  static Result<std::unique_ptr<LogWriter>> Open(store::Store* store, Durability durability,
                                                 const Clock* clock);
  ~LogWriter();  // drains the queue and stops the thread

  // Fills seq, prev_hash, hash (and time_ms when 0), records the entry, and waits per the mode.
  // An entry that cannot be encoded (EncodeCanonical's errors) is refused without using a seq.
  Result<Appended> Append(LogEntry entry);
  // Waits until everything appended so far is durable (fsync'd), whatever the mode, and returns
  // the last entry's seq and hash (0 and kGenesisHash for an empty log).
  Result<Appended> Flush();
  // The last sequence number handed out (not necessarily durable in kNone).
  int64_t last_seq() const;

 private:
  struct Impl;
  explicit LogWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::audit
