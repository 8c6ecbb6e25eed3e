// The flight-log writer.
//
// Work is split so the single writer thread does only store I/O:
//   caller thread, no lock:  fill time_ms, encode the entry canonically with zero seq and
//                            prev_hash (the expensive part, run in parallel by all callers),
//                            noting where those two values sit;
//   caller thread, `mu_`:    take the next seq, patch seq and prev_hash into the text, hash it,
//                            advance the chain head, enqueue the row; seq order = chain order =
//                            queue order, because all three happen under one lock;
//   writer thread:           swap the whole queue out and append it in one store transaction
//                            (group commit), then release the callers whose rows it holds.
// Because the chain is computed at enqueue, kNone can return the seq and hash immediately.

#include "custos/audit/log_writer.h"

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "audit/entry_scan_internal.h"
#include "audit/log_entry_internal.h"
#include "custos/audit/stored_tree.h"
#include "custos/crypto/sha256.h"

namespace custos::audit {
namespace {

// Callers block (even in kNone) once this many rows wait for the writer, so memory stays bounded
// when appends outpace the store.
constexpr size_t kMaxQueuedRows = 16384;

Status AsStoreError(const Status& s) {
  if (s.reason() == Reason::kStoreError) {
    return s;
  }
  return Status(Reason::kStoreError, "flight log append failed: " + s.ToString());
}

}  // namespace

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kNone:
      return "none";
    case Durability::kGroup:
      return "group";
    case Durability::kFsync:
      return "fsync";
  }
  return "unknown";
}

Result<Durability> ParseDurability(std::string_view name) {
  if (name == "none") {
    return Durability::kNone;
  }
  if (name == "group") {
    return Durability::kGroup;
  }
  if (name == "fsync") {
    return Durability::kFsync;
  }
  return Status(Reason::kInvalidArgument, "unknown durability '" + std::string(name.substr(0, 32)) +
                                              "' (expected none, group or fsync)");
}

struct LogWriter::Impl {
  Impl(store::Store* s, Durability d, const Clock* c, CheckpointOptions cp)
      : store(s), durability(d), clock(c), checkpoints(std::move(cp)), key(checkpoints.key) {}

  bool signs() const { return checkpoints.key != nullptr; }

  // Adds the leaves of `rows` to the frontier and returns the nodes to store with them.
  // Writer thread (or Open, before it starts).
  std::vector<store::MerkleNode> NodesFor(const std::vector<store::LogRow>& rows) {
    node_buf.clear();
    for (const store::LogRow& r : rows) {
      frontier.Append(MerkleLeafHash(r.canonical), &node_buf);
    }
    return ToStoreNodes(node_buf);
  }

  // Signs and stores a checkpoint of the frontier (everything written). REQUIRES: mu held,
  // signs(), written_seq == frontier.size(); releases mu while signing and storing.
  Status SignLocked(std::unique_lock<std::mutex>& lock) {
    audit::Checkpoint c;
    c.origin = origin;
    c.size = frontier.size();
    c.root = frontier.Root();
    const crypto::SigningKey* signer = key;  // the key current at this size
    lock.unlock();
    Result<std::string> note = SignCheckpoint(c, KeyName(signer->verifying_key()), *signer);
    Status s = note.status();
    if (note.ok()) {
      // A FULL commit: it also syncs the WAL frames of the rows it covers (kNone).
      s = store->PutCheckpoint(static_cast<int64_t>(c.size), *note, clock->NowMillis());
    }
    lock.lock();
    if (!s.ok()) {
      return s;
    }
    cp_size = static_cast<int64_t>(c.size);
    durable_seq = std::max(durable_seq, cp_size);
    last_cp = SignedCheckpoint{c, std::move(note).value()};
    cp_cv.notify_all();
    flush_cv.notify_all();
    return Status::Ok();
  }

  // REQUIRES: mu held.
  bool TimerArmed() const { return signs() && checkpoints.every_ms > 0 && written_seq > cp_size; }
  std::chrono::steady_clock::time_point TimerDeadline() const {
    return uncovered_since + std::chrono::milliseconds(checkpoints.every_ms);
  }

  // Patches seq and prev_hash into a pre-encoded entry, hashes it and enqueues it.
  // REQUIRES: mu held, no failure, not stopping.
  // Sets *parity to the done_cv the caller should wait on.
  // A deferred entry does not wake the writer: the caller's next waiting append will.
  Appended ChainAndEnqueue(store::LogRow row, const internal::EntryLayout& layout, int* parity,
                           bool wake = true) {
    const int64_t seq = ++last_seq;
    std::string& text = row.canonical;
    std::memcpy(text.data() + layout.prev_hash_pos, head_hex, internal::kHashHexLen);
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, seq);
    text.replace(layout.seq_pos, layout.seq_len, digits, end - digits);

    hasher.Update(std::span<const uint8_t>(head_bytes, sizeof head_bytes));
    hasher.Update(text);
    crypto::Digest d = hasher.Finish();
    std::memcpy(head_bytes, d.bytes.data(), sizeof head_bytes);
    internal::EncodeHashHex(head_bytes, head_hex);

    row.seq = seq;
    row.hash.assign(head_hex, internal::kHashHexLen);
    Appended out{seq, row.hash};
    queue.push_back(std::move(row));
    *parity = queue_parity;
    if (wake && writer_idle) {
      work_cv.notify_one();
    }
    return out;
  }

  // REQUIRES: mu held.
  Status FailureFor(int64_t seq) const {
    if (seq >= failed_from) {
      return failure;
    }
    return Status::Ok();
  }

  // REQUIRES: mu held.
  Status Unavailable() const {
    return Status(Reason::kUnavailable,
                  stopping ? "the flight log writer is shutting down"
                           : "the flight log writer stopped after a store error: " +
                                 std::string(failure.message()));
  }

  // REQUIRES: mu held (released while the store is written).
  void Fail(std::unique_lock<std::mutex>& lock, const Status& s, int64_t from_seq) {
    (void)lock;
    failure = AsStoreError(s);
    failed_from = from_seq;
    NotifyProgress(0);
    NotifyProgress(1);
    space_cv.notify_all();
    cp_cv.notify_all();
  }

  // Wakes the callers of the batch with `parity` and any Flush().
  // REQUIRES: mu held.
  void NotifyProgress(int parity) {
    done_cv[parity].notify_all();
    flush_cv.notify_all();
  }

  void Run() {
    std::unique_lock lock(mu);
    std::vector<store::LogRow> batch;
    auto has_work = [&] {
      return !queue.empty() || stopping || flush_target > durable_seq || cp_request > cp_size;
    };
    while (true) {
      writer_idle = true;
      bool timer_fired = false;
      if (TimerArmed()) {
        timer_fired = !work_cv.wait_until(lock, TimerDeadline(), has_work);
      } else {
        work_cv.wait(lock, has_work);
      }
      writer_idle = false;
      if (failed_from != INT64_MAX) {
        return;
      }
      if (!queue.empty()) {
        batch.swap(queue);
        // Entries queued from now on are the next batch and wait on the other condition
        // variable, so finishing this batch wakes only its own callers.
        const int parity = queue_parity;
        queue_parity ^= 1;
        space_cv.notify_all();
        const int64_t first = batch.front().seq, last = batch.back().seq;
        int64_t committed = written_seq;
        const bool was_covered = written_seq == cp_size;
        lock.unlock();
        Status s;
        if (durability == Durability::kFsync) {
          // One fsync'd transaction per entry, each caller released as soon as its own is done.
          std::vector<store::LogRow> one(1);
          for (store::LogRow& row : batch) {
            one[0] = std::move(row);
            s = store->AppendLog(one, NodesFor(one), store::Sync::kFull);
            if (!s.ok()) {
              break;
            }
            lock.lock();
            committed = written_seq = durable_seq = one[0].seq;
            NotifyProgress(parity);
            lock.unlock();
          }
        } else {
          s = store->AppendLog(
              batch, NodesFor(batch),
              durability == Durability::kGroup ? store::Sync::kFull : store::Sync::kNone);
        }
        batch.clear();
        lock.lock();
        if (!s.ok()) {
          Fail(lock, s, durability == Durability::kFsync ? committed + 1 : first);
          return;
        }
        if (was_covered) {
          uncovered_since = std::chrono::steady_clock::now();
        }
        written_seq = last;
        if (durability != Durability::kNone) {
          durable_seq = last;
        }
        NotifyProgress(parity);
        // Under a steady stream of batches the writer is never idle, so both triggers are
        // checked here too.
        if (signs() && ((checkpoints.every_entries > 0 &&
                         written_seq - cp_size >= checkpoints.every_entries) ||
                        (TimerArmed() && std::chrono::steady_clock::now() >= TimerDeadline()))) {
          if (Status cs = SignLocked(lock); !cs.ok()) {
            Fail(lock, cs, written_seq + 1);
            return;
          }
        }
        continue;  // take whatever queued meanwhile before syncing or stopping
      }
      if (flush_target > durable_seq || (stopping && durable_seq < written_seq)) {
        const int64_t target = written_seq;
        lock.unlock();
        Status s = store->SyncLog();
        lock.lock();
        if (!s.ok()) {
          Fail(lock, s, durable_seq + 1);
          return;
        }
        durable_seq = std::max(durable_seq, target);
        flush_cv.notify_all();
        continue;
      }
      if (signs() && written_seq > cp_size &&
          (cp_request > cp_size || stopping || timer_fired ||
           (TimerArmed() && std::chrono::steady_clock::now() >= TimerDeadline()))) {
        if (Status cs = SignLocked(lock); !cs.ok()) {
          Fail(lock, cs, written_seq + 1);
          return;
        }
        continue;
      }
      if (stopping) {
        return;
      }
    }
  }

  store::Store* const store;
  const Durability durability;
  const Clock* const clock;
  const CheckpointOptions checkpoints;
  std::string origin;  // fixed in Open

  // Writer thread only (and Open, before the thread starts).
  CompactRange frontier;                                  // the tree of written_seq leaves
  std::vector<MerkleNodeRef> node_buf;                    // scratch for NodesFor
  std::chrono::steady_clock::time_point uncovered_since;  // first commit past cp_size

  mutable std::mutex mu;
  std::condition_variable work_cv;            // the writer waits for rows, a flush or stop
  std::condition_variable done_cv[2];         // Append() waits for its batch (by parity) or failure
  std::condition_variable flush_cv;           // Flush() waits for durable progress or failure
  std::condition_variable space_cv;           // callers wait for room in the queue
  std::vector<store::LogRow> queue;           // guarded by mu
  int queue_parity = 0;                       // guarded by mu; done_cv of the entries now queued
  bool writer_idle = false;                   // guarded by mu
  bool stopping = false;                      // guarded by mu
  int64_t last_seq = 0;                       // guarded by mu; last seq handed out
  uint8_t head_bytes[32] = {};                // guarded by mu; hash of last_seq
  char head_hex[internal::kHashHexLen] = {};  // guarded by mu
  crypto::Sha256Hasher hasher;                // guarded by mu
  int64_t written_seq = 0;                    // guarded by mu; committed to the store
  int64_t durable_seq = 0;                    // guarded by mu; committed and fsync'd
  int64_t flush_target = 0;                   // guarded by mu; Flush() wants durable_seq >= this
  Status failure;                             // guarded by mu
  int64_t failed_from = INT64_MAX;            // guarded by mu; first seq that was not written
  std::condition_variable cp_cv;              // Checkpoint() waits for cp_size or failure
  int64_t cp_size = 0;                        // guarded by mu; size of the latest checkpoint
  int64_t cp_request = 0;                     // guarded by mu; Checkpoint() wants cp_size >= this
  SignedCheckpoint last_cp;                   // guarded by mu; valid if cp_size > 0
  const crypto::SigningKey* key;              // guarded by mu; current signer (null: none)
  bool rotating = false;                      // guarded by mu; Rotate() holds appends back
  std::thread thread;
};

namespace {

constexpr int64_t kRecoveryPageRows = 4096;
constexpr std::string_view kOriginMeta = "log.origin";

// The parsed checkpoint of a stored note. kLogCorrupt if the note is not a checkpoint.
Result<audit::Checkpoint> ParseStoredCheckpoint(const store::CheckpointRow& row) {
  Result<SignedNote> n = ParseSignedNote(row.note);
  Result<audit::Checkpoint> c =
      n.ok() ? ParseCheckpointBody(n->text) : Result<audit::Checkpoint>(n.status());
  if (!c.ok()) {
    return Status(Reason::kLogCorrupt, "stored checkpoint " + std::to_string(row.id) +
                                           " is malformed: " + std::string(c.status().message()));
  }
  if (c->size != static_cast<uint64_t>(row.size)) {
    return Status(Reason::kLogCorrupt, "stored checkpoint " + std::to_string(row.id) +
                                           " is filed under size " + std::to_string(row.size) +
                                           " but its note says " + std::to_string(c->size));
  }
  return c;
}

// True if `note` carries a valid signature by `key` under its key name or, as checkpoints were
// signed before decision 011, under the log's origin.
bool SignedBy(std::string_view note, const crypto::VerifyingKey& key, const std::string& origin) {
  for (const std::string& name : {KeyName(key), origin}) {
    Result<NoteVerifier> v = MakeNoteVerifier(name, key);
    if (v.ok() && OpenCheckpoint(note, std::span(&*v, 1)).ok()) {
      return true;
    }
  }
  return false;
}

// The log's stored origin (see CheckpointOptions), storing it on first use.
Result<std::string> ResolveOrigin(store::Store& st, const std::string& wanted,
                                  const crypto::SigningKey& key) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<std::string> stored, st.GetMeta(std::string(kOriginMeta)));
  if (!stored) {
    CUSTOS_ASSIGN_OR_RETURN(std::vector<store::CheckpointRow> first, st.ReadCheckpoints(1, 1));
    if (!first.empty()) {
      CUSTOS_ASSIGN_OR_RETURN(audit::Checkpoint c, ParseStoredCheckpoint(first.front()));
      stored = c.origin;
    } else {
      stored = wanted.empty() ? KeyName(key.verifying_key()) : wanted;
    }
    CUSTOS_RETURN_IF_ERROR(st.PutMeta(std::string(kOriginMeta), *stored));
  }
  if (!wanted.empty() && wanted != *stored) {
    return Status(Reason::kKeyError, "this flight log's origin is " + *stored + ", not " + wanted);
  }
  return *stored;
}

}  // namespace

// Step 4 of recovery: the writer's key is the new key of the last rotation after the latest
// checkpoint, else the latest checkpoint's signer.
Status LogWriter::CheckCurrentKey(Impl& w, int64_t last_seq, int64_t covered,
                                  const std::string& latest_note,
                                  const std::vector<KeyRotation>& rotations) {
  const crypto::VerifyingKey& mine = w.key->verifying_key();
  const StoreNodeSource tree(w.store, static_cast<uint64_t>(last_seq));
  KeyChain chain;
  for (const KeyRotation& r : rotations) {
    const std::string at = "key rotation statement at seq " + std::to_string(r.seq);
    if (r.origin != w.origin) {
      return Status(Reason::kRotationInvalid,
                    at + " names origin " + r.origin + ", not this log's " + w.origin);
    }
    CUSTOS_ASSIGN_OR_RETURN(MerkleHash root, RootAt(tree, r.tree_size));
    if (r.tree_size != static_cast<uint64_t>(r.seq - 1) || root != r.root) {
      return Status(Reason::kRotationInvalid,
                    at + " does not name the tree of the entries before it");
    }
    CUSTOS_RETURN_IF_ERROR(chain.Add(r));
  }
  if (!rotations.empty() && !latest_note.empty()) {
    const crypto::VerifyingKey old = crypto::VerifyingKey::FromBytes(rotations[0].old_key).value();
    if (!SignedBy(latest_note, old, w.origin)) {
      return Status(Reason::kRotationInvalid, "key rotation statement at seq " +
                                                  std::to_string(rotations[0].seq) +
                                                  " hands over from " + KeyName(old) +
                                                  ", which did not sign the checkpoint before it");
    }
  }
  if (!rotations.empty()) {
    const crypto::VerifyingKey current = *chain.KeyAt(static_cast<uint64_t>(last_seq));
    if (current.bytes() != mine.bytes()) {
      return Status(Reason::kKeyError, "the flight log was rotated to " + KeyName(current) +
                                           " at seq " + std::to_string(rotations.back().seq) +
                                           " but this key is " + KeyName(mine) +
                                           " (install the rotated identity)");
    }
    return Status::Ok();
  }
  if (!latest_note.empty() && !SignedBy(latest_note, mine, w.origin)) {
    return Status(Reason::kKeyError,
                  "the latest checkpoint (size " + std::to_string(covered) +
                      ") is not signed by this key, " + KeyName(mine) +
                      ": the identity was replaced without a rotation statement (use `custos "
                      "identity rotate`)");
  }
  return Status::Ok();
}

// Recovery (see the header). REQUIRES: the writer thread has not started.
Status LogWriter::Recover(Impl& w, int64_t last_seq) {
  store::Store& st = *w.store;
  // 1. The tree covers exactly the rows: build the nodes of rows that have none.
  CUSTOS_ASSIGN_OR_RETURN(int64_t leaves, st.MerkleLeafCount());
  if (leaves > last_seq) {
    return Status(Reason::kLogCorrupt, "the stored Merkle tree has " + std::to_string(leaves) +
                                           " leaves but the log has " + std::to_string(last_seq) +
                                           " entries (log rows were removed)");
  }
  CUSTOS_ASSIGN_OR_RETURN(
      w.frontier, CompactRange::FromSource(StoreNodeSource(w.store, static_cast<uint64_t>(leaves)),
                                           static_cast<uint64_t>(leaves)));
  store::LogQuery q;
  q.from_seq = leaves + 1;
  q.limit = kRecoveryPageRows;
  while (q.from_seq <= last_seq) {
    CUSTOS_ASSIGN_OR_RETURN(std::vector<store::LogRow> rows, st.ReadLog(q));
    if (rows.empty() || rows.front().seq != q.from_seq) {
      return Status(Reason::kLogGap, "log entry " + std::to_string(q.from_seq) + " is missing");
    }
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i].seq != rows[i - 1].seq + 1) {
        return Status(Reason::kLogGap,
                      "log entry " + std::to_string(rows[i - 1].seq + 1) + " is missing");
      }
    }
    CUSTOS_RETURN_IF_ERROR(st.AppendLog({}, w.NodesFor(rows), store::Sync::kFull));
    q.from_seq = rows.back().seq + 1;
  }

  // 2. The latest checkpoint must be a prefix of the log, with the stored tree's root.
  CUSTOS_ASSIGN_OR_RETURN(std::optional<store::CheckpointRow> latest, st.LatestCheckpoint());
  int64_t covered = 0;
  std::string latest_note;
  std::vector<KeyRotation> rotations;  // statements after the latest checkpoint
  if (latest) {
    CUSTOS_ASSIGN_OR_RETURN(audit::Checkpoint c, ParseStoredCheckpoint(*latest));
    if (latest->size > last_seq) {
      return Status(Reason::kLogGap,
                    "checkpoint " + std::to_string(latest->id) + " covers " +
                        std::to_string(latest->size) + " entries but the log has only " +
                        std::to_string(last_seq) +
                        ": signed entries were removed; refusing to extend (and re-sign) a "
                        "shorter log");
    }
    CUSTOS_ASSIGN_OR_RETURN(
        MerkleHash root, RootAt(StoreNodeSource(w.store, static_cast<uint64_t>(last_seq)), c.size));
    if (root != c.root) {
      return Status(Reason::kLogCorrupt, "the log's first " + std::to_string(c.size) +
                                             " entries do not match checkpoint " +
                                             std::to_string(latest->id) + "'s root");
    }
    covered = latest->size;
    latest_note = latest->note;
    w.cp_size = covered;
    w.last_cp = SignedCheckpoint{c, latest->note};
  }

  // 3. Entries after it: hash chain and leaves.
  std::string prev_hex = kGenesisHash;
  q.from_seq = std::max<int64_t>(1, covered);
  bool first = covered > 0;
  while (q.from_seq <= last_seq) {
    CUSTOS_ASSIGN_OR_RETURN(std::vector<store::LogRow> rows, st.ReadLog(q));
    const int64_t leaf_from = std::max(q.from_seq, covered + 1);
    CUSTOS_ASSIGN_OR_RETURN(
        std::vector<std::string> stored_leaves,
        st.ReadMerkleNodes(0, static_cast<uint64_t>(leaf_from - 1), kRecoveryPageRows));
    int64_t expect = q.from_seq;
    for (const store::LogRow& row : rows) {
      const std::string at = "log entry " + std::to_string(expect);
      if (row.seq != expect) {
        return Status(Reason::kLogGap, at + " is missing");
      }
      ++expect;
      Result<internal::EntryLayout> l =
          internal::ScanEntry(row.canonical, internal::ScanMode::kCanonical);
      if (!l.ok()) {
        return Status(Reason::kLogCorrupt, at + " is malformed: " + l.status().ToString());
      }
      std::string_view prev(row.canonical.data() + l->prev_hash_pos, internal::kHashHexLen);
      if (l->seq != row.seq || ChainHash(prev, row.canonical) != row.hash) {
        return Status(Reason::kLogCorrupt, at + " does not match its hash");
      }
      if (first) {
        first = false;  // entry `covered` itself only provides the chain head
        prev_hex = row.hash;
        continue;
      }
      if (prev != prev_hex) {
        return Status(Reason::kLogGap, at + " does not follow the entry before it");
      }
      prev_hex = row.hash;
      const size_t leaf_pos = static_cast<size_t>(row.seq - leaf_from);
      const MerkleHash leaf = MerkleLeafHash(row.canonical);
      if (leaf_pos >= stored_leaves.size() ||
          stored_leaves[leaf_pos] !=
              std::string_view(reinterpret_cast<const char*>(leaf.bytes.data()), 32)) {
        return Status(Reason::kLogCorrupt, at + "'s stored Merkle leaf does not match it");
      }
      if (row.type == "event" && row.canonical.find(kRotationEvent) != std::string::npos) {
        CUSTOS_ASSIGN_OR_RETURN(LogEntry e, DecodeEntry(row));
        if (IsRotationEntry(e)) {
          CUSTOS_ASSIGN_OR_RETURN(KeyRotation r, OpenRotation(e));
          rotations.push_back(std::move(r));
        }
      }
    }
    if (rows.empty()) {
      return Status(Reason::kLogGap, "log entry " + std::to_string(q.from_seq) + " is missing");
    }
    q.from_seq = rows.back().seq + 1;
  }

  // 4. The writer's key must be the log's current key.
  if (w.signs()) {
    CUSTOS_RETURN_IF_ERROR(CheckCurrentKey(w, last_seq, covered, latest_note, rotations));
  }

  // 5. Cover everything with a fresh checkpoint.
  if (w.signs() && last_seq > covered) {
    std::unique_lock lock(w.mu);
    return w.SignLocked(lock);
  }
  return Status::Ok();
}

Result<std::unique_ptr<LogWriter>> LogWriter::Open(store::Store* store, Durability durability,
                                                   const Clock* clock,
                                                   CheckpointOptions checkpoints) {
  if (store == nullptr || clock == nullptr) {
    return Status(Reason::kInvalidArgument, "LogWriter needs a store and a clock");
  }
  if (checkpoints.every_entries < 0 || checkpoints.every_ms < 0 ||
      (checkpoints.key == nullptr && !checkpoints.origin.empty())) {
    return Status(Reason::kInvalidArgument,
                  "checkpoint intervals must not be negative and an origin needs a signing key");
  }
  auto impl = std::make_unique<Impl>(store, durability, clock, std::move(checkpoints));
  if (impl->signs()) {
    CUSTOS_ASSIGN_OR_RETURN(impl->origin,
                            ResolveOrigin(*store, impl->checkpoints.origin, *impl->key));
  }
  CUSTOS_ASSIGN_OR_RETURN(std::optional<store::LogRow> last, store->LastLog());
  std::string head = kGenesisHash;
  if (last.has_value()) {
    // Check the row the chain continues from, so a damaged tail is not silently extended.
    Result<internal::EntryLayout> l =
        internal::ScanEntry(last->canonical, internal::ScanMode::kCanonical);
    if (!l.ok()) {
      return Status(Reason::kLogCorrupt, "last log entry " + std::to_string(last->seq) + ": " +
                                             std::string(l.status().message()));
    }
    std::string_view prev(last->canonical.data() + l->prev_hash_pos, internal::kHashHexLen);
    if (l->seq != last->seq || ChainHash(prev, last->canonical) != last->hash) {
      return Status(Reason::kLogCorrupt, "last log entry " + std::to_string(last->seq) +
                                             " does not match its hash; refusing to extend it");
    }
    head = last->hash;
    impl->last_seq = impl->written_seq = impl->durable_seq = last->seq;
  }
  CUSTOS_RETURN_IF_ERROR(Recover(*impl, impl->last_seq));
  std::memcpy(impl->head_hex, head.data(), internal::kHashHexLen);
  internal::DecodeHashHex(head, impl->head_bytes);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<LogWriter>(new LogWriter(std::move(impl)));
}

LogWriter::LogWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogWriter::~LogWriter() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_one();
  impl_->thread.join();
  // Wake anyone still waiting (a caller racing the destructor is a bug, but must not hang).
  impl_->done_cv[0].notify_all();
  impl_->done_cv[1].notify_all();
  impl_->flush_cv.notify_all();
  impl_->space_cv.notify_all();
}

namespace {

// Encodes `entry` with seq 0 and an all-zero prev_hash; ChainAndEnqueue writes the real values in
// under the lock (the layout records where they go).
Result<store::LogRow> PrepareRow(LogEntry entry, const Clock& clock,
                                 internal::EntryLayout* layout) {
  if (entry.time_ms == 0) {
    entry.time_ms = clock.NowMillis();
  }
  entry.seq = 0;
  entry.prev_hash = kGenesisHash;
  CUSTOS_ASSIGN_OR_RETURN(std::string canonical,
                          internal::EncodeCanonicalWithLayout(entry, layout));
  store::LogRow row;
  row.canonical = std::move(canonical);
  row.time_ms = entry.time_ms;
  row.agent = std::move(entry.agent);
  row.run = std::move(entry.run);
  row.type = std::move(entry.type);
  row.verdict = std::move(entry.verdict);
  row.reason = std::move(entry.reason);
  row.payload = std::move(entry.payload);
  return row;
}

}  // namespace

Result<Appended> LogWriter::Append(LogEntry entry) { return AppendImpl(std::move(entry), true); }

Result<Appended> LogWriter::AppendDeferred(LogEntry entry) {
  return AppendImpl(std::move(entry), false);
}

Result<Appended> LogWriter::AppendImpl(LogEntry entry, bool wait) {
  Impl& w = *impl_;
  internal::EntryLayout layout;
  CUSTOS_ASSIGN_OR_RETURN(store::LogRow row, PrepareRow(std::move(entry), *w.clock, &layout));

  std::unique_lock lock(w.mu);
  w.space_cv.wait(lock, [&] {
    return (w.queue.size() < kMaxQueuedRows && !w.rotating) || w.failed_from != INT64_MAX ||
           w.stopping;
  });
  if (w.failed_from != INT64_MAX || w.stopping) {
    return w.Unavailable();
  }
  int parity = 0;
  Appended a = w.ChainAndEnqueue(std::move(row), layout, &parity, /*wake=*/wait);
  if (!wait || w.durability == Durability::kNone) {
    return a;
  }
  w.done_cv[parity].wait(lock, [&] { return w.durable_seq >= a.seq || w.failed_from <= a.seq; });
  CUSTOS_RETURN_IF_ERROR(w.FailureFor(a.seq));
  return a;
}

Result<Appended> LogWriter::Flush() {
  Impl& w = *impl_;
  std::unique_lock lock(w.mu);
  Appended a{w.last_seq, std::string(w.head_hex, internal::kHashHexLen)};
  CUSTOS_RETURN_IF_ERROR(w.FailureFor(a.seq));
  if (w.durable_seq >= a.seq) {
    return a;
  }
  if (w.stopping) {
    return w.Unavailable();
  }
  w.flush_target = std::max(w.flush_target, a.seq);
  if (w.writer_idle) {
    w.work_cv.notify_one();
  }
  w.flush_cv.wait(lock, [&] { return w.durable_seq >= a.seq || w.failed_from <= a.seq; });
  CUSTOS_RETURN_IF_ERROR(w.FailureFor(a.seq));
  return a;
}

Result<SignedCheckpoint> LogWriter::Checkpoint() {
  Impl& w = *impl_;
  if (!w.signs()) {
    return Status(Reason::kNoCheckpoint, "this log writer has no checkpoint signing key");
  }
  CUSTOS_ASSIGN_OR_RETURN(Appended a, Flush());
  if (a.seq == 0) {
    return Status(Reason::kNoCheckpoint, "the flight log is empty: nothing to checkpoint");
  }
  std::unique_lock lock(w.mu);
  if (w.cp_size < a.seq) {
    if (w.stopping) {
      return w.Unavailable();
    }
    w.cp_request = std::max(w.cp_request, a.seq);
    if (w.writer_idle) {
      w.work_cv.notify_one();
    }
    w.cp_cv.wait(lock, [&] { return w.cp_size >= a.seq || w.failed_from != INT64_MAX; });
    if (w.cp_size < a.seq) {
      return w.Unavailable();
    }
  }
  return w.last_cp;
}

int64_t LogWriter::last_seq() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_seq;
}

const std::string& LogWriter::origin() const { return impl_->origin; }

Result<KeyRotation> LogWriter::Rotate(const crypto::SigningKey* new_key) {
  Impl& w = *impl_;
  if (!w.signs()) {
    return Status(Reason::kNoCheckpoint, "this log writer has no signing key to rotate");
  }
  if (new_key == nullptr) {
    return Status(Reason::kInvalidArgument, "no new key");
  }
  {
    std::lock_guard lock(w.mu);
    if (w.rotating) {
      return Status(Reason::kUnavailable, "a key rotation is already under way");
    }
    w.rotating = true;  // Append() waits from now on
  }
  struct Release {
    Impl& w;
    ~Release() {
      std::lock_guard lock(w.mu);
      w.rotating = false;
      w.space_cv.notify_all();
    }
  } release{w};
  // 1. Everything before the statement is checkpointed by the old key (nothing can be appended
  //    meanwhile: every entry queued before `rotating` was set is covered).
  if (last_seq() > 0) {
    CUSTOS_RETURN_IF_ERROR(Checkpoint().status());
  }
  // 2. The statement, signed by both keys over the tree it follows.
  internal::EntryLayout layout;
  std::unique_lock lock(w.mu);
  CUSTOS_RETURN_IF_ERROR(w.FailureFor(w.last_seq + 1));
  if (w.stopping) {
    return w.Unavailable();
  }
  const uint64_t size = static_cast<uint64_t>(w.last_seq);
  const MerkleHash root = size == 0 ? MerkleEmptyRoot() : w.last_cp.checkpoint.root;
  if (size != 0 && w.last_cp.checkpoint.size != size) {
    return Status(Reason::kUnavailable, "entries were appended during the rotation");
  }
  CUSTOS_ASSIGN_OR_RETURN(KeyRotation r, SignRotation(w.origin, size, root, *w.key, *new_key));
  CUSTOS_ASSIGN_OR_RETURN(store::LogRow row, PrepareRow(RotationEntry(r), *w.clock, &layout));
  // 3. From the statement on, checkpoints are signed by the new key.
  w.key = new_key;
  int parity = 0;
  const Appended a = w.ChainAndEnqueue(std::move(row), layout, &parity);
  r.seq = a.seq;
  lock.unlock();
  CUSTOS_RETURN_IF_ERROR(Flush().status());
  CUSTOS_RETURN_IF_ERROR(Checkpoint().status());
  return r;
}

}  // namespace custos::audit
