#include "custos/audit/verifier.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audit/entry_scan_internal.h"
#include "custos/audit/key_rotation.h"
#include "custos/audit/log_entry.h"
#include "custos/crypto/sha256.h"

namespace custos::audit {
namespace {

using internal::EntryLayout;
using internal::kHashHexLen;
using internal::ScanEntry;
using internal::ScanMode;

// Rows per ReadLog page: large enough that per-query overhead vanishes, small enough to bound
// memory (~10 MB of rows).
constexpr int64_t kPageRows = 16384;

std::string Short(std::string_view hash) {
  return std::string(hash.substr(0, 16)) + (hash.size() > 16 ? "..." : "");
}

std::string Str(int64_t v) { return std::to_string(v); }

// After a gap at the row that failed, a look at the next row can tell a swap from a deletion.
void RefineGap(VerifyReport* r, std::string_view failed_canonical,
               std::string_view next_canonical) {
  if (r->status.reason() != Reason::kLogGap) {
    return;
  }
  Result<EntryLayout> found = ScanEntry(failed_canonical, ScanMode::kCanonical);
  Result<EntryLayout> next = ScanEntry(next_canonical, ScanMode::kCanonical);
  if (!found.ok() || !next.ok() || found->seq <= r->first_bad_seq ||
      next->seq != r->first_bad_seq) {
    return;
  }
  r->status = Status(Reason::kLogGap,
                     "log entries " + Str(r->first_bad_seq) + " and " + Str(found->seq) +
                         " are out of order: entry " + Str(found->seq) + " appears where " +
                         Str(r->first_bad_seq) + " was expected and is followed by it (reordered)");
}

}  // namespace

namespace internal {

// What can be checked about one entry without knowing its predecessor: its canonical shape, its
// seq and prev_hash, and whether its stored hash recomputes. Independent per entry, so VerifyStore
// runs it on several threads.
struct EntryCheck {
  Status scan_error;  // not OK if the bytes are not an entry in canonical form
  int64_t seq = 0;
  size_t prev_hash_pos = 0;
  bool hash_well_formed = false;
  bool hash_matches = false;
  char computed[kHashHexLen] = {};
  MerkleHash leaf;  // only if asked for
  // With leaves: a key rotation statement (verified signatures) or why it does not verify.
  std::shared_ptr<const KeyRotation> rotation;
  Status rotation_error;
};

namespace {

void CheckEntry(const store::LogRow& row, EntryCheck* c, bool leaf = false) {
  if (leaf) {
    c->leaf = MerkleLeafHash(row.canonical);
    // Only the top-level syscall member can read exactly this (a string holds its quotes
    // escaped); a nested "syscall" key in extra is ruled out by decoding.
    if (row.canonical.find("\"syscall\":\"identity.rotate\"") != std::string::npos) {
      Result<LogEntry> e = DecodeEntry(row);
      if (!e.ok()) {
        c->rotation_error = e.status();  // fail closed: never skip a statement unread
      } else if (IsRotationEntry(*e)) {
        Result<KeyRotation> r = OpenRotation(*e);
        if (r.ok()) {
          c->rotation = std::make_shared<const KeyRotation>(std::move(r).value());
        } else {
          c->rotation_error = r.status();
        }
      }
    }
  }
  Result<EntryLayout> l = ScanEntry(row.canonical, ScanMode::kCanonical);
  if (!l.ok()) {
    c->scan_error = l.status();
    return;
  }
  c->seq = l->seq;
  c->prev_hash_pos = l->prev_hash_pos;
  c->hash_well_formed = IsHashHex(row.hash);
  uint8_t prev_bytes[32];
  DecodeHashHex(std::string_view(row.canonical.data() + l->prev_hash_pos, kHashHexLen), prev_bytes);
  thread_local crypto::Sha256Hasher hasher;
  hasher.Update(std::span<const uint8_t>(prev_bytes, sizeof prev_bytes));
  hasher.Update(row.canonical);
  const crypto::Digest d = hasher.Finish();
  EncodeHashHex(d.bytes.data(), c->computed);
  c->hash_matches =
      c->hash_well_formed && std::memcmp(c->computed, row.hash.data(), kHashHexLen) == 0;
}

}  // namespace
}  // namespace internal

bool ChainVerifier::Add(const store::LogRow& row) {
  if (!report_.status.ok()) {
    return false;
  }
  internal::EntryCheck check;
  internal::CheckEntry(row, &check);
  return AddChecked(row, check);
}

bool ChainVerifier::AddChecked(const store::LogRow& row, const internal::EntryCheck& check) {
  if (!report_.status.ok()) {
    return false;
  }
  auto fail = [&](Reason reason, int64_t bad, std::string msg) {
    report_.status = Status(reason, std::move(msg));
    report_.first_bad_seq = bad;
    return false;
  };
  if (!check.scan_error.ok()) {
    return fail(Reason::kLogCorrupt, expect_seq_,
                "log entry " + Str(expect_seq_) + " (row seq " + Str(row.seq) +
                    ") is malformed: " + std::string(check.scan_error.message()));
  }
  const int64_t seq = check.seq;
  if (seq > expect_seq_) {
    return fail(Reason::kLogGap, expect_seq_,
                "log entry " + Str(expect_seq_) + " is missing: found entry " + Str(seq) +
                    " where " + Str(expect_seq_) + " was expected (entries " + Str(expect_seq_) +
                    ".." + Str(seq - 1) + " were deleted, or the log was reordered)");
  }
  if (seq < expect_seq_) {
    return fail(Reason::kLogGap, expect_seq_,
                "found entry " + Str(seq) + " where " + Str(expect_seq_) +
                    " was expected: an entry was inserted, duplicated or reordered");
  }
  if (row.seq != seq) {
    return fail(Reason::kLogCorrupt, seq,
                "log row " + Str(row.seq) + " holds entry " + Str(seq) +
                    ": its seq column disagrees with the entry");
  }
  if (!check.hash_well_formed) {
    return fail(Reason::kLogCorrupt, seq,
                "log entry " + Str(seq) + " has a malformed hash (not 64 lowercase hex digits)");
  }
  if (!check.hash_matches) {
    return fail(Reason::kLogCorrupt, seq,
                "log entry " + Str(seq) + " was changed: its contents hash to " +
                    Short(std::string_view(check.computed, kHashHexLen)) + ", not the stored " +
                    Short(row.hash));
  }
  const std::string_view prev(row.canonical.data() + check.prev_hash_pos, kHashHexLen);
  if (prev != prev_hash_) {
    return fail(Reason::kLogGap, seq,
                "log entry " + Str(seq) + " does not follow entry " + Str(seq - 1) +
                    ": its prev_hash " + Short(prev) + " is not " +
                    (seq == 1 ? std::string("the genesis hash")
                              : "entry " + Str(seq - 1) + "'s hash " + Short(prev_hash_)) +
                    " (an entry was inserted or replaced before it)");
  }
  prev_hash_.assign(row.hash);
  ++expect_seq_;
  ++report_.entries;
  return true;
}

VerifyReport ChainVerifier::Finish() const {
  VerifyReport r = report_;
  r.head_hash = prev_hash_;
  return r;
}

namespace {

// Runs CheckEntry over `rows` on up to hardware_concurrency threads (this one included).
void CheckInParallel(const std::vector<store::LogRow>& rows,
                     std::vector<internal::EntryCheck>* checks, bool leaves) {
  constexpr size_t kMinRowsPerThread = 2048;
  const size_t hw = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t threads = std::clamp<size_t>(rows.size() / kMinRowsPerThread, 1, hw);
  const size_t chunk = (rows.size() + threads - 1) / threads;
  auto run = [&](size_t begin) {
    const size_t end = std::min(rows.size(), begin + chunk);
    for (size_t i = begin; i < end; ++i) {
      internal::CheckEntry(rows[i], &(*checks)[i], leaves);
    }
  };
  std::vector<std::thread> workers;
  for (size_t t = 1; t < threads; ++t) {
    workers.emplace_back(run, t * chunk);
  }
  run(0);
  for (std::thread& w : workers) {
    w.join();
  }
}

std::string_view Bytes(const MerkleHash& h) {
  return std::string_view(reinterpret_cast<const char*>(h.bytes.data()), h.bytes.size());
}

struct StoredCheckpoint {
  int64_t id = 0;
  Checkpoint checkpoint;
  std::string note;
};

// The store's checkpoints, parsed, by size (signatures are checked by TreeChecker).
Result<std::vector<StoredCheckpoint>> LoadCheckpoints(store::Store& store) {
  std::vector<StoredCheckpoint> out;
  int64_t from = 1;
  while (true) {
    CUSTOS_ASSIGN_OR_RETURN(std::vector<store::CheckpointRow> rows,
                            store.ReadCheckpoints(from, 1024));
    for (const store::CheckpointRow& row : rows) {
      const std::string name = "stored checkpoint " + Str(row.id) + " (size " + Str(row.size) + ")";
      Result<SignedNote> n = ParseSignedNote(row.note);
      Result<Checkpoint> c = n.ok() ? ParseCheckpointBody(n->text) : Result<Checkpoint>(n.status());
      if (!c.ok()) {
        return Status(Reason::kLogCorrupt,
                      name + " is malformed: " + std::string(c.status().message()));
      }
      if (c->size != static_cast<uint64_t>(row.size)) {
        return Status(Reason::kLogCorrupt, name + " says size " + std::to_string(c->size));
      }
      out.push_back(StoredCheckpoint{row.id, std::move(c).value(), row.note});
    }
    if (rows.size() < 1024) {
      break;
    }
    from = rows.back().id + 1;
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const StoredCheckpoint& a, const StoredCheckpoint& b) {
                     return a.checkpoint.size < b.checkpoint.size;
                   });
  return out;
}

// Rebuilds the tree leaf by leaf and compares it with the stored nodes and checkpoints.
class TreeChecker {
 public:
  TreeChecker(store::Store& store, std::vector<StoredCheckpoint> checkpoints,
              std::vector<NoteVerifier> trusted)
      : store_(store), checkpoints_(std::move(checkpoints)), trusted_(std::move(trusted)) {
    if (!checkpoints_.empty()) {
      origin_ = checkpoints_.front().checkpoint.origin;
    }
  }

  Status Start() { return CheckCheckpointsAt(0); }

  // The leaves of one page of verified entries.
  Status AddPage(const std::vector<internal::EntryCheck>& checks, size_t count) {
    refs_.clear();
    for (size_t i = 0; i < count; ++i) {
      if (!checks[i].rotation_error.ok()) {
        bad_seq_ = checks[i].seq;
        return checks[i].rotation_error;
      }
      if (checks[i].rotation) {
        CUSTOS_RETURN_IF_ERROR(AddRotation(*checks[i].rotation));
      }
      range_.Append(checks[i].leaf, &refs_);
      CUSTOS_RETURN_IF_ERROR(CheckCheckpointsAt(range_.size()));
    }
    // Nodes of each level completed by this page have consecutive indexes.
    std::vector<std::vector<const MerkleNodeRef*>> by_level;
    for (const MerkleNodeRef& r : refs_) {
      if (by_level.size() <= static_cast<size_t>(r.level)) {
        by_level.resize(r.level + 1);
      }
      by_level[r.level].push_back(&r);
    }
    for (const std::vector<const MerkleNodeRef*>& level : by_level) {
      if (level.empty()) {
        continue;
      }
      const int lv = level.front()->level;
      CUSTOS_ASSIGN_OR_RETURN(
          std::vector<std::string> stored,
          store_.ReadMerkleNodes(lv, level.front()->index, static_cast<int64_t>(level.size())));
      for (size_t i = 0; i < level.size(); ++i) {
        const MerkleNodeRef& r = *level[i];
        if (i < stored.size() && stored[i] == Bytes(r.hash)) {
          ++nodes_;
          continue;
        }
        const uint64_t first = (r.index << r.level) + 1, last = (r.index + 1) << r.level;
        const std::string what = "the stored Merkle node (" + std::to_string(r.level) + ", " +
                                 std::to_string(r.index) + ") over entries " +
                                 std::to_string(first) + ".." + std::to_string(last);
        bad_seq_ = static_cast<int64_t>(first);
        return Status(Reason::kLogCorrupt,
                      what + (i >= stored.size()
                                  ? " is missing (a store written before the tree was kept gets "
                                    "it at the next kernel start or `custos audit checkpoint`)"
                                  : " differs from the one recomputed from them"));
      }
    }
    return Status::Ok();
  }

  Status Finish(int64_t entries) {
    CUSTOS_RETURN_IF_ERROR(CheckCheckpointsAt(range_.size()));
    // A log without rotations: its checkpoints need a signature by any trusted key.
    for (size_t i : unsigned_) {
      const StoredCheckpoint& c = checkpoints_[i];
      if (trusted_.empty()) {
        continue;
      }
      Result<OpenedCheckpoint> o = OpenCheckpoint(c.note, trusted_);
      if (!o.ok()) {
        bad_seq_ = static_cast<int64_t>(c.checkpoint.size);
        return Status(o.status().reason(), "stored checkpoint " + Str(c.id) + " (size " +
                                               std::to_string(c.checkpoint.size) +
                                               "): " + std::string(o.status().message()));
      }
    }
    unsigned_.clear();
    if (next_cp_ < checkpoints_.size()) {
      const StoredCheckpoint& c = checkpoints_[next_cp_];
      bad_seq_ = entries + 1;
      return Status(Reason::kLogGap, "stored checkpoint " + Str(c.id) + " covers " +
                                         std::to_string(c.checkpoint.size) +
                                         " entries but the log has only " + Str(entries) +
                                         ": signed entries were removed");
    }
    CUSTOS_ASSIGN_OR_RETURN(int64_t leaves, store_.MerkleLeafCount());
    if (leaves != entries) {
      bad_seq_ = std::min(leaves, entries) + 1;
      return Status(Reason::kLogCorrupt, "the stored Merkle tree has " + Str(leaves) +
                                             " leaves but the log has " + Str(entries) +
                                             " entries");
    }
    return Status::Ok();
  }

  int64_t bad_seq() const { return bad_seq_; }
  int64_t nodes() const { return nodes_; }
  int64_t checkpoints_checked() const { return static_cast<int64_t>(next_cp_); }
  const std::vector<KeyRotation>& rotations() const { return chain_.rotations(); }
  MerkleHash root() const { return range_.Root(); }

 private:
  Status CheckCheckpointsAt(uint64_t size) {
    while (next_cp_ < checkpoints_.size() && checkpoints_[next_cp_].checkpoint.size <= size) {
      const StoredCheckpoint& c = checkpoints_[next_cp_];
      if (c.checkpoint.size == size && c.checkpoint.root != range_.Root()) {
        bad_seq_ = static_cast<int64_t>(size);
        return Status(Reason::kLogCorrupt, "stored checkpoint " + Str(c.id) + " (size " +
                                               std::to_string(size) +
                                               ") does not match the root of the log's first " +
                                               std::to_string(size) + " entries");
      }
      if (c.checkpoint.size < size) {
        break;  // unreachable: sizes are checked as each leaf is added
      }
      if (chain_.rotations().empty()) {
        unsigned_.push_back(next_cp_);  // its key is known at the first rotation, or never
      } else {
        CUSTOS_RETURN_IF_ERROR(CheckSigner(c, *chain_.KeyAt(size)));
      }
      ++next_cp_;
    }
    return Status::Ok();
  }

  Status CheckSigner(const StoredCheckpoint& c, const crypto::VerifyingKey& key) {
    Status s = CheckCheckpointSigner(c.note, c.checkpoint.size, key, trusted_);
    if (!s.ok()) {
      bad_seq_ = static_cast<int64_t>(c.checkpoint.size);
      return Status(s.reason(), "stored checkpoint " + Str(c.id) + ": " + std::string(s.message()));
    }
    return Status::Ok();
  }

  // A verified statement at the current position (its entry not yet added to the tree).
  Status AddRotation(const KeyRotation& r) {
    bad_seq_ = r.seq;
    const std::string at = "key rotation statement at seq " + Str(r.seq);
    if (r.tree_size != range_.size() || r.root != range_.Root()) {
      return Status(Reason::kRotationInvalid,
                    at + " names the tree of size " + std::to_string(r.tree_size) + " root " +
                        Short(r.root.Hex()) + ", not the " + std::to_string(range_.size()) +
                        " entries before it");
    }
    if (!origin_.empty() && r.origin != origin_) {
      return Status(Reason::kRotationInvalid,
                    at + " names origin " + r.origin + ", not this log's " + origin_);
    }
    const bool first = chain_.rotations().empty();
    CUSTOS_RETURN_IF_ERROR(chain_.Add(r));
    if (!trusted_.empty()) {
      for (const crypto::VerifyingKey& k : {crypto::VerifyingKey::FromBytes(r.old_key).value(),
                                            crypto::VerifyingKey::FromBytes(r.new_key).value()}) {
        bool pinned = false;
        for (const NoteVerifier& t : trusted_) {
          pinned = pinned || (t.name == KeyName(k) && t.key.bytes() == k.bytes());
        }
        if (!pinned) {
          return Status(Reason::kKeyError,
                        at + ": key " + KeyName(k) + " is not a trusted key (--trusted-keys)");
        }
      }
    }
    if (first) {
      // The checkpoints before the first statement were signed by its old key.
      const crypto::VerifyingKey old = crypto::VerifyingKey::FromBytes(r.old_key).value();
      for (size_t i : unsigned_) {
        CUSTOS_RETURN_IF_ERROR(CheckSigner(checkpoints_[i], old));
      }
      unsigned_.clear();
    }
    bad_seq_ = 0;
    return Status::Ok();
  }

  store::Store& store_;
  std::vector<StoredCheckpoint> checkpoints_;
  std::vector<NoteVerifier> trusted_;
  std::string origin_;            // the first checkpoint's
  KeyChain chain_;                // the log's keys, from its rotation statements so far
  std::vector<size_t> unsigned_;  // checkpoints whose signer is not known yet
  size_t next_cp_ = 0;
  CompactRange range_;
  std::vector<MerkleNodeRef> refs_;
  int64_t nodes_ = 0;
  int64_t bad_seq_ = 0;
};

}  // namespace

VerifyReport VerifyStore(store::Store& store, const VerifyOptions& options) {
  // Reading a page from SQLite costs about as much as verifying it, so the next page is fetched
  // on another thread while this one is checked (the store is thread-safe).
  using Page = Result<std::vector<store::LogRow>>;
  auto fetch = [&store](int64_t from_seq) {
    store::LogQuery q;
    q.from_seq = from_seq;
    q.limit = kPageRows;
    return store.ReadLog(q);
  };
  ChainVerifier v;
  std::optional<TreeChecker> tree;
  auto tree_failure = [&](const Status& s, int64_t bad) {
    VerifyReport r = v.Finish();
    r.status = s;
    r.first_bad_seq = bad;
    return r;
  };
  if (options.merkle) {
    Result<std::vector<StoredCheckpoint>> cps = LoadCheckpoints(store);
    if (!cps.ok()) {
      return tree_failure(cps.status(), 0);
    }
    tree.emplace(store, std::move(cps).value(), options.trusted);
    // Checkpoints of size 0 are checked against the empty tree before any entry.
    if (Status s = tree->Start(); !s.ok()) {
      return tree_failure(s, tree->bad_seq());
    }
  }
  std::future<Page> next = std::async(std::launch::async, fetch, int64_t{1});
  while (true) {
    Page page = next.get();
    if (!page.ok()) {
      VerifyReport r = v.Finish();
      r.status = page.status();
      return r;
    }
    const bool more = static_cast<int64_t>(page->size()) == kPageRows;
    if (more) {
      next = std::async(std::launch::async, fetch, page->back().seq + 1);
    }
    std::vector<internal::EntryCheck> checks(page->size());
    CheckInParallel(*page, &checks, options.merkle);
    for (size_t i = 0; i < page->size(); ++i) {
      if (v.AddChecked((*page)[i], checks[i])) {
        continue;
      }
      VerifyReport r = v.Finish();
      if (i + 1 < page->size()) {
        RefineGap(&r, (*page)[i].canonical, (*page)[i + 1].canonical);
      } else if (more) {
        Page following = next.get();
        if (following.ok() && !following->empty()) {
          RefineGap(&r, (*page)[i].canonical, (*following)[0].canonical);
        }
      }
      return r;
    }
    if (tree) {
      if (Status s = tree->AddPage(checks, checks.size()); !s.ok()) {
        return tree_failure(s, tree->bad_seq());
      }
    }
    if (!more) {
      VerifyReport r = v.Finish();
      if (tree) {
        if (Status s = tree->Finish(r.entries); !s.ok()) {
          return tree_failure(s, tree->bad_seq());
        }
        r.merkle_nodes = tree->nodes();
        r.checkpoints = tree->checkpoints_checked();
        r.rotations = tree->rotations();
        r.root = tree->root();
      }
      return r;
    }
  }
}

VerifyReport VerifyJsonl(std::string_view text) {
  ChainVerifier v;
  store::LogRow row, prev_row;
  size_t line_no = 0;
  size_t pos = 0;
  bool failed = false;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? text.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (failed) {
      // One more line, to tell a swap from a deletion.
      Result<internal::EntryLayout> l = ScanEntry(line, ScanMode::kJsonLine);
      VerifyReport r = v.Finish();
      if (l.ok()) {
        std::string canonical(line.substr(0, l->hash_member_pos));
        canonical.append(line.substr(l->hash_member_end));
        RefineGap(&r, prev_row.canonical, canonical);
      }
      return r;
    }
    Result<internal::EntryLayout> l = ScanEntry(line, ScanMode::kJsonLine);
    if (!l.ok()) {
      VerifyReport r = v.Finish();
      r.first_bad_seq = r.entries + 1;
      r.status = Status(Reason::kLogCorrupt,
                        "JSONL line " + std::to_string(line_no) +
                            " is not a flight-log entry: " + std::string(l.status().message()));
      return r;
    }
    row.seq = l->seq;
    row.hash.assign(line.substr(l->hash_pos, kHashHexLen));
    row.canonical.assign(line.substr(0, l->hash_member_pos));
    row.canonical.append(line.substr(l->hash_member_end));
    if (!v.Add(row)) {
      failed = true;
      prev_row = row;
    }
  }
  return v.Finish();
}

}  // namespace custos::audit
