#pragma once
// Inclusion proofs of stored entries against the latest signed checkpoint, the one algorithm behind
// `custos audit prove` and custosd's GET /v1/audit/prove/{seq}: read the latest stored checkpoint,
// check its signature (this log's current key, under its key name "custos/<key id>", with the log's
// stored origin, decision 011) and that the stored tree's
// root at its size is the signed root, then build the proof from stored nodes (O(log n) reads) and
// verify it against the signed root before handing it out.
//
// Errors: kNoCheckpoint (none stored), kInvalidArgument (seq outside the checkpoint), kLogGap (the
// log is shorter than the checkpoint, or the entry is missing), kLogCorrupt (roots differ),
// kKeyError / kTokenInvalid (the checkpoint is not signed by this log's key), store errors.
//
// Thread-safe if the store is.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/merkle.h"
#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"
#include "custos/store/store.h"

namespace custos::audit {

// The checkpoint origin of a new log whose first key is `key` ("custos/<key id>").
std::string LogOrigin(const crypto::VerifyingKey& key);
// The origin of the log in `st`: its stored `log.origin`, else its first checkpoint's origin
// (logs written before the origin was stored); kNoCheckpoint if it has neither.
Result<std::string> StoredOrigin(store::Store& st);

// Opens `note` as a checkpoint of the log with `origin`, signed by `key` under KeyName(key).
Result<Checkpoint> OpenOwnCheckpoint(std::string_view note, const crypto::VerifyingKey& key,
                                     std::string_view origin);

struct LatestCheckpoint {
  std::string note;
  Checkpoint checkpoint;
};

// The stored checkpoint of the largest size, signature-verified by `key` (the current key), whose
// root the stored tree
// `tree` reproduces at that size.
Result<LatestCheckpoint> LoadLatestCheckpoint(store::Store& st, const crypto::VerifyingKey& key,
                                              const NodeSource& tree);

struct EntryInclusion {
  int64_t seq = 0;
  std::string agent;      // the entry's agent (for callers that may only see their own)
  std::string canonical;  // the entry's canonical encoding (its leaf input)
  MerkleHash leaf;
  std::vector<MerkleHash> proof;
  LatestCheckpoint latest;

  // {"type":"inclusion","seq","leaf_index","tree_size","canonical","leaf_hash","root","proof",
  //  "checkpoint"} — the proof format of docs/spec/checkpoint.md.
  Json ToJson() const;
};

Result<EntryInclusion> ProveEntry(store::Store& st, const crypto::VerifyingKey& key, int64_t seq);

}  // namespace custos::audit
