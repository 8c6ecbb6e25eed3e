#include "custos/audit/entry_proof.h"

#include <span>

#include "custos/audit/key_rotation.h"
#include "custos/audit/stored_tree.h"

namespace custos::audit {

std::string LogOrigin(const crypto::VerifyingKey& key) { return KeyName(key); }

Result<std::string> StoredOrigin(store::Store& st) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<std::string> meta, st.GetMeta("log.origin"));
  if (meta) {
    return *meta;
  }
  CUSTOS_ASSIGN_OR_RETURN(std::vector<store::CheckpointRow> first, st.ReadCheckpoints(1, 1));
  if (first.empty()) {
    return Status(Reason::kNoCheckpoint, "no checkpoint yet (run `custos audit checkpoint`)");
  }
  CUSTOS_ASSIGN_OR_RETURN(SignedNote n, ParseSignedNote(first.front().note));
  CUSTOS_ASSIGN_OR_RETURN(Checkpoint c, ParseCheckpointBody(n.text));
  return c.origin;
}

Result<Checkpoint> OpenOwnCheckpoint(std::string_view note, const crypto::VerifyingKey& key,
                                     std::string_view origin) {
  CUSTOS_ASSIGN_OR_RETURN(NoteVerifier v, MakeNoteVerifier(KeyName(key), key));
  const std::vector<std::string> required = {v.name};
  CUSTOS_ASSIGN_OR_RETURN(OpenedCheckpoint o, OpenCheckpoint(note, std::span(&v, 1), required));
  if (o.checkpoint.origin != origin) {
    return Status(Reason::kKeyError, "checkpoint origin " + o.checkpoint.origin +
                                         " is not this log's (" + std::string(origin) + ")");
  }
  return o.checkpoint;
}

Result<LatestCheckpoint> LoadLatestCheckpoint(store::Store& st, const crypto::VerifyingKey& key,
                                              const NodeSource& tree) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<store::CheckpointRow> row, st.LatestCheckpoint());
  if (!row) {
    return Status(Reason::kNoCheckpoint, "no checkpoint yet (run `custos audit checkpoint`)");
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string origin, StoredOrigin(st));
  CUSTOS_ASSIGN_OR_RETURN(Checkpoint c, OpenOwnCheckpoint(row->note, key, origin));
  if (c.size > tree.size()) {
    return Status(Reason::kLogGap, "the latest checkpoint covers " + std::to_string(c.size) +
                                       " entries but the log has " + std::to_string(tree.size()) +
                                       " (truncated log)");
  }
  CUSTOS_ASSIGN_OR_RETURN(MerkleHash root, RootAt(tree, c.size));
  if (root != c.root) {
    return Status(Reason::kLogCorrupt, "the log's first " + std::to_string(c.size) +
                                           " entries do not match the latest checkpoint's root");
  }
  return LatestCheckpoint{row->note, c};
}

Result<EntryInclusion> ProveEntry(store::Store& st, const crypto::VerifyingKey& key, int64_t seq) {
  CUSTOS_ASSIGN_OR_RETURN(StoreNodeSource tree, OpenStoredTree(&st));
  CUSTOS_ASSIGN_OR_RETURN(LatestCheckpoint latest, LoadLatestCheckpoint(st, key, tree));
  const uint64_t size = latest.checkpoint.size;
  if (seq < 1 || static_cast<uint64_t>(seq) > size) {
    return Status(Reason::kInvalidArgument, "entry " + std::to_string(seq) +
                                                " is not in the latest checkpoint (entries 1.." +
                                                std::to_string(size) + ")");
  }
  store::LogQuery q;
  q.from_seq = seq;
  q.limit = 1;
  CUSTOS_ASSIGN_OR_RETURN(std::vector<store::LogRow> rows, st.ReadLog(q));
  if (rows.empty() || rows[0].seq != seq) {
    return Status(Reason::kLogGap, "log entry " + std::to_string(seq) + " is missing");
  }
  EntryInclusion out;
  out.seq = seq;
  out.agent = rows[0].agent;
  out.canonical = std::move(rows[0].canonical);
  const uint64_t index = static_cast<uint64_t>(seq - 1);
  CUSTOS_ASSIGN_OR_RETURN(out.proof, StoredInclusionProof(tree, index, size));
  out.leaf = MerkleLeafHash(out.canonical);
  // The proof comes from stored nodes: check it leads to the signed root before handing it out.
  CUSTOS_RETURN_IF_ERROR(VerifyInclusion(index, size, out.leaf, out.proof, latest.checkpoint.root));
  out.latest = std::move(latest);
  return out;
}

Json EntryInclusion::ToJson() const {
  Json hashes = Json::array();
  for (const MerkleHash& h : proof)
    hashes.push_back(h.Hex());
  return Json{{"type", "inclusion"},
              {"seq", seq},
              {"leaf_index", seq - 1},
              {"tree_size", latest.checkpoint.size},
              {"canonical", canonical},
              {"leaf_hash", leaf.Hex()},
              {"root", latest.checkpoint.root.Hex()},
              {"proof", hashes},
              {"checkpoint", latest.note}};
}

}  // namespace custos::audit
