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
// Merkle tree: the writer keeps the tree's frontier (CompactRange) and stores each entry's leaf
// and every perfect subtree it completes in the same transaction as the rows (O(log n) per
// entry, never a rebuild; audit/stored_tree.h reads them back).
//
// Checkpoints: with a CheckpointOptions key, the writer thread signs a C2SP checkpoint
// (docs/spec/checkpoint.md) of everything committed every `every_entries` entries or `every_ms`
// milliseconds after the first entry not yet covered, whichever comes first, and on Checkpoint().
// A checkpoint is signed after the commit that made its entries durable (its own store write is
// fsync'd, which in kNone also syncs the rows it covers), so callers never wait for a signature
// and no checkpoint ever covers a row that is not on disk. Every checkpoint is kept.
//
// Recovery on Open (docs/decisions/010-flight-log-recovery.md). The store commits rows, payloads
// and nodes atomically, so a crash leaves a prefix of whole batches; Open then
//  - refuses (kLogCorrupt) to extend a last row whose hash does not recompute;
//  - builds the Merkle nodes of rows that have none (rows written before the tree was stored, or
//    appended without nodes), so the tree always covers exactly the rows;
//  - refuses (kLogGap) a store whose latest checkpoint covers more entries than the log holds
//    (entries were removed after they were signed: re-signing a shorter tree would sign a fork),
//    and (kLogCorrupt) one whose checkpoint root is not the stored tree's root at that size;
//  - checks the hash chain and leaves of every entry after the latest checkpoint (kLogCorrupt /
//    kLogGap naming the first bad one: such an entry cannot come from a crash, so it is evidence
//    and is never truncated away);
//  - checks that the writer's key is the log's current key (decision 011): the new key of the last
//    rotation statement after the latest checkpoint (each verified, kRotationInvalid), else the
//    key that signed the latest checkpoint; another key is kKeyError (an identity replaced without
//    a rotation statement, or a rotation whose key was not installed);
//  - signs a checkpoint of the whole log if it is not covered yet (with a key).
// At most 16384 entries wait for the writer; beyond that Append blocks (in every mode), so memory
// stays bounded. The destructor drains the queue, syncs it in kNone, and signs a final checkpoint
// if the last entries are not covered.
//
// Thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/key_rotation.h"
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

// Automatic checkpoints. Without a key the writer signs nothing (Checkpoint() is then
// kNoCheckpoint), but still keeps the Merkle tree.
//
// The origin (the checkpoint body's first line) is fixed for the life of a log and survives key
// rotations (decision 011): it is kept in the store's metadata (`log.origin`). A log without one
// takes its first stored checkpoint's origin (logs written before the origin was stored), else
// `origin` if given, else KeyName(key) ("custos/<key id>" of the first key); a given origin that
// differs from the stored one is kKeyError. Notes are signed under KeyName(current key).
struct CheckpointOptions {
  const crypto::SigningKey* key = nullptr;  // must outlive the writer
  std::string origin;                       // "" = the stored origin, or KeyName(key) for a new log
  int64_t every_entries = 1000;             // 0: never by count
  int64_t every_ms = 1000;                  // 0: never by time
};

struct SignedCheckpoint {
  Checkpoint checkpoint;
  std::string note;
};

class LogWriter {
 public:
  // `store` must outlive the writer. kInvalidArgument if the checkpoint intervals are negative or
  // a key is given without an origin; recovery errors as described above.
  static Result<std::unique_ptr<LogWriter>> Open(store::Store* store, Durability durability,
                                                 const Clock* clock,
                                                 CheckpointOptions checkpoints = {});
  ~LogWriter();  // drains the queue and stops the thread

  // Fills seq, prev_hash, hash (and time_ms when 0), records the entry, and waits per the mode.
  // An entry that cannot be encoded (EncodeCanonical's errors) is refused without using a seq.
  Result<Appended> Append(LogEntry entry);
  // Chains and queues the entry like Append() and returns its seq and hash at once, without
  // waking the writer or waiting for durability. The entry becomes durable with the batch of the
  // next Append() or Flush() that waits — entries commit in seq order, so a later entry's
  // durability implies this one's. For a caller that must append again before anything may
  // depend on this entry: the pipeline defers the decision of a read-only syscall and waits on
  // its outcome, so one fsync covers both (decision 036). Errors as Append().
  // REQUIRES: the caller later waits (Append or Flush) before it acknowledges anything.
  Result<Appended> AppendDeferred(LogEntry entry);
  // Waits until everything appended so far is durable (fsync'd), whatever the mode, and returns
  // the last entry's seq and hash (0 and kGenesisHash for an empty log).
  Result<Appended> Flush();
  // Flush(), then a signed checkpoint of at least everything appended before the call (one
  // already stored is reused); the writer thread signs it. kNoCheckpoint without a key or on an
  // empty log; the writer's failure status if it stopped.
  Result<SignedCheckpoint> Checkpoint();
  // The last sequence number handed out (not necessarily durable in kNone).
  int64_t last_seq() const;
  // The log's origin ("" for a writer without a key).
  const std::string& origin() const;

  // Hands the log over to `new_key` (docs/spec/flight-log.md §10): holds back new appends,
  // checkpoints everything so far with the current key, appends a rotation statement signed by
  // both keys (tree size and root of the entries before it), and from then on signs checkpoints
  // with `new_key`; returns once the statement is durable and a checkpoint by `new_key` covers it.
  // kNoCheckpoint for a writer without a key; kInvalidArgument for the same key; the writer's
  // failure status if the store fails (the writer then stops, as for any append).
  // REQUIRES: `new_key` outlives the writer.
  Result<KeyRotation> Rotate(const crypto::SigningKey* new_key);

 private:
  struct Impl;
  Result<Appended> AppendImpl(LogEntry entry, bool wait);
  static Status Recover(Impl& w, int64_t last_seq);
  static Status CheckCurrentKey(Impl& w, int64_t last_seq, int64_t covered,
                                const std::string& latest_note,
                                const std::vector<KeyRotation>& rotations);
  explicit LogWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::audit
