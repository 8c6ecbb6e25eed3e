#include "custos/audit/verifier.h"

#include <cstring>
#include <future>
#include <string>

#include "audit/entry_scan_internal.h"
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

bool ChainVerifier::Add(const store::LogRow& row) {
  if (!report_.status.ok()) {
    return false;
  }
  auto fail = [&](Reason reason, int64_t bad, std::string msg) {
    report_.status = Status(reason, std::move(msg));
    report_.first_bad_seq = bad;
    return false;
  };
  Result<EntryLayout> l = ScanEntry(row.canonical, ScanMode::kCanonical);
  if (!l.ok()) {
    return fail(Reason::kLogCorrupt, expect_seq_,
                "log entry " + Str(expect_seq_) + " (row seq " + Str(row.seq) +
                    ") is malformed: " + std::string(l.status().message()));
  }
  const int64_t seq = l->seq;
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
  if (!internal::IsHashHex(row.hash)) {
    return fail(Reason::kLogCorrupt, seq,
                "log entry " + Str(seq) + " has a malformed hash (not 64 lowercase hex digits)");
  }
  const std::string_view prev(row.canonical.data() + l->prev_hash_pos, kHashHexLen);
  uint8_t prev_bytes[32];
  internal::DecodeHashHex(prev, prev_bytes);
  thread_local crypto::Sha256Hasher hasher;
  hasher.Update(std::span<const uint8_t>(prev_bytes, sizeof prev_bytes));
  hasher.Update(row.canonical);
  const crypto::Digest d = hasher.Finish();
  char computed[kHashHexLen];
  internal::EncodeHashHex(d.bytes.data(), computed);
  if (std::memcmp(computed, row.hash.data(), kHashHexLen) != 0) {
    return fail(Reason::kLogCorrupt, seq,
                "log entry " + Str(seq) + " was changed: its contents hash to " +
                    Short(std::string_view(computed, kHashHexLen)) + ", not the stored " +
                    Short(row.hash));
  }
  if (prev != prev_hash_) {
    return fail(
        Reason::kLogGap, seq,
        "log entry " + Str(seq) + " does not follow entry " + Str(seq - 1) + ": its prev_hash " +
            Short(prev) + " is not " +
            (seq == 1 ? std::string("the genesis hash") : "entry " + Str(seq - 1) + "'s hash ") +
            (seq == 1 ? "" : Short(prev_hash_)) + " (an entry was inserted or replaced before it)");
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

VerifyReport VerifyStore(store::Store& store) {
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
    for (size_t i = 0; i < page->size(); ++i) {
      if (v.Add((*page)[i])) {
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
    if (!more) {
      return v.Finish();
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
