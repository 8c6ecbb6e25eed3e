// custos audit verify | inspect | export | checkpoint | prove | consistency.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <span>

#include "cli/cli.h"
#include "custos/audit/checkpoint.h"
#include "custos/audit/entry_proof.h"
#include "custos/audit/key_rotation.h"
#include "custos/audit/log_entry.h"
#include "custos/audit/log_writer.h"
#include "custos/audit/merkle.h"
#include "custos/audit/sealed_payload.h"
#include "custos/audit/stored_tree.h"
#include "custos/audit/verifier.h"
#include "custos/core/json.h"
#include "custos/crypto/key_store.h"
#include "custos/kernel/identity_rotation.h"
#include "custos/store/store.h"

namespace custos::cli {
namespace {

Result<std::unique_ptr<store::Store>> OpenExistingStore(const GlobalOptions& g) {
  const std::filesystem::path db = ResolveDataDir(g) / "custos.db";
  if (!std::filesystem::exists(db)) {
    return Status(Reason::kNotFound, "no flight log at " + db.string() + " (run something first)");
  }
  return store::OpenSqliteStore(db);
}

void PrintReport(const audit::VerifyReport& r, bool merkle) {
  if (r.status.ok()) {
    std::printf("verified: %lld entries, hash chain intact, head %s\n",
                static_cast<long long>(r.entries), r.head_hash.c_str());
    if (merkle) {
      std::printf("merkle: root %s, %lld stored nodes match, %lld checkpoints match\n",
                  r.root.Hex().c_str(), static_cast<long long>(r.merkle_nodes),
                  static_cast<long long>(r.checkpoints));
      for (const audit::KeyRotation& k : r.rotations) {
        std::printf("key rotation at entry %lld: custos/%s -> custos/%s (signed by both)\n",
                    static_cast<long long>(k.seq),
                    crypto::VerifyingKey::FromBytes(k.old_key)->id().hex.c_str(),
                    crypto::VerifyingKey::FromBytes(k.new_key)->id().hex.c_str());
      }
    }
  } else {
    std::printf(
        "FAILED at entry %lld: %s\n  (%lld entries before it verified, last good head %s)\n",
        static_cast<long long>(r.first_bad_seq), r.status.ToString().c_str(),
        static_cast<long long>(r.entries), r.head_hash.c_str());
  }
}

// The current identity, after finishing a rotation a crash interrupted.
Result<crypto::SigningKey> LoadIdentity(const GlobalOptions& g) {
  CUSTOS_RETURN_IF_ERROR(
      kernel::FinishInterruptedRotation(ResolveDataDir(g), PassphraseFromEnv()).status());
  return crypto::KeyStore::Load(ResolveDataDir(g) / "identity.key", PassphraseFromEnv());
}

using audit::LatestCheckpoint;
using audit::OpenOwnCheckpoint;

std::string OriginOf(const crypto::VerifyingKey& key) { return audit::LogOrigin(key); }

Json HexList(const std::vector<audit::MerkleHash>& hashes) {
  Json a = Json::array();
  for (const audit::MerkleHash& h : hashes) {
    a.push_back(h.Hex());
  }
  return a;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(Reason::kIoError, "cannot read", path);
  }
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Opens the log writer on the store, which recovers it (builds missing Merkle nodes, checks
// entries after the latest checkpoint, signs a checkpoint of the whole log if it is not covered
// yet), and returns the checkpoint of the whole log.
Status CmdCheckpoint(const GlobalOptions& g, bool verifier_key_only) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey key, LoadIdentity(g));
  if (verifier_key_only) {
    CUSTOS_ASSIGN_OR_RETURN(
        audit::NoteVerifier v,
        audit::MakeNoteVerifier(OriginOf(key.verifying_key()), key.verifying_key()));
    std::printf("%s\n", audit::VerifierKeyString(v).c_str());
    return Status::Ok();
  }
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenExistingStore(g));
  audit::CheckpointOptions cp;
  cp.key = &key;  // the origin is the log's stored one
  CUSTOS_ASSIGN_OR_RETURN(
      std::unique_ptr<audit::LogWriter> writer,
      audit::LogWriter::Open(st.get(), audit::Durability::kGroup, &SystemClock(), std::move(cp)));
  CUSTOS_ASSIGN_OR_RETURN(audit::SignedCheckpoint c, writer->Checkpoint());
  std::fputs(c.note.c_str(), stdout);
  return Status::Ok();
}

Status CmdProve(const GlobalOptions& g, int64_t seq) {
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenExistingStore(g));
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey key, LoadIdentity(g));
  CUSTOS_ASSIGN_OR_RETURN(audit::EntryInclusion p,
                          audit::ProveEntry(*st, key.verifying_key(), seq));
  std::printf("%s\n", p.ToJson().dump(2).c_str());
  return Status::Ok();
}

Status CmdConsistency(const GlobalOptions& g, const std::string& old_file) {
  CUSTOS_ASSIGN_OR_RETURN(std::string old_note, ReadFile(old_file));
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenExistingStore(g));
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey key, LoadIdentity(g));
  CUSTOS_ASSIGN_OR_RETURN(std::string origin, audit::StoredOrigin(*st));
  Result<audit::Checkpoint> opened = OpenOwnCheckpoint(old_note, key.verifying_key(), origin);
  if (!opened.ok()) {
    // Signed before a rotation? It must then carry the key current at its size.
    CUSTOS_ASSIGN_OR_RETURN(audit::KeyChain chain, audit::ReadKeyChain(*st));
    for (const crypto::VerifyingKey& k : chain.Keys()) {
      Result<audit::Checkpoint> c = OpenOwnCheckpoint(old_note, k, origin);
      if (c.ok()) {
        const std::optional<crypto::VerifyingKey> at = chain.KeyAt(c->size);
        if (at && at->bytes() != k.bytes()) {
          return Status(Reason::kCheckpointWrongSigner,
                        "the old checkpoint (size " + std::to_string(c->size) + ") is signed by " +
                            audit::KeyName(k) + ", not by " + audit::KeyName(*at) +
                            ", the key current at that size");
        }
        opened = std::move(c);
        break;
      }
    }
  }
  CUSTOS_ASSIGN_OR_RETURN(audit::Checkpoint old, std::move(opened));
  CUSTOS_ASSIGN_OR_RETURN(audit::StoreNodeSource tree, audit::OpenStoredTree(st.get()));
  CUSTOS_ASSIGN_OR_RETURN(LatestCheckpoint latest,
                          audit::LoadLatestCheckpoint(*st, key.verifying_key(), tree));
  const uint64_t m = old.size, n = latest.checkpoint.size;
  if (m > n) {
    return Status(Reason::kInvalidArgument, "the old checkpoint (size " + std::to_string(m) +
                                                ") is newer than the latest (size " +
                                                std::to_string(n) + ")");
  }
  std::vector<audit::MerkleHash> proof;
  if (m == 0) {
    // The empty tree is a prefix of every tree; only its root needs checking.
    if (old.root != audit::MerkleEmptyRoot()) {
      return Status(Reason::kLogCorrupt, "the old checkpoint's root is not the empty tree's");
    }
  } else {
    CUSTOS_ASSIGN_OR_RETURN(proof, audit::ConsistencyProof(tree, m, n));
    CUSTOS_RETURN_IF_ERROR(audit::VerifyConsistency(m, n, proof, old.root, latest.checkpoint.root));
  }
  const Json out = {{"type", "consistency"},
                    {"old_size", m},
                    {"new_size", n},
                    {"old_root", old.root.Hex()},
                    {"new_root", latest.checkpoint.root.Hex()},
                    {"proof", HexList(proof)},
                    {"checkpoint", latest.note}};
  std::printf("%s\n", out.dump(2).c_str());
  return Status::Ok();
}

// `audit show SEQ`: the entry and its sealed payload, opened with the identity.
Status CmdShow(const GlobalOptions& g, int64_t seq) {
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenExistingStore(g));
  store::LogQuery q;
  q.from_seq = seq;
  q.limit = 1;
  CUSTOS_ASSIGN_OR_RETURN(std::vector<store::LogRow> rows, st->ReadLog(q));
  if (seq < 1 || rows.empty() || rows[0].seq != seq) {
    return Status(Reason::kNotFound, "no log entry " + std::to_string(seq));
  }
  CUSTOS_ASSIGN_OR_RETURN(audit::LogEntry e, audit::DecodeEntry(rows[0]));
  if (audit::ChainHash(e.prev_hash, rows[0].canonical) != rows[0].hash) {
    return Status(Reason::kLogCorrupt,
                  "log entry " + std::to_string(seq) + " does not match its hash");
  }
  Json out = {{"entry", Json::parse(rows[0].canonical)}, {"hash", rows[0].hash}};
  Result<std::string> sealed = st->ReadPayload(seq);
  if (!sealed.ok() && sealed.status().reason() != Reason::kNotFound) {
    return sealed.status();
  }
  if (sealed.ok()) {
    CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey key, LoadIdentity(g));
    Result<std::string> opened = audit::OpenPayload(audit::DerivePayloadKey(key), e, *sealed);
    if (!opened.ok() && opened.status().reason() == Reason::kPayloadUnreadable) {
      // Sealed before a rotation: one of the retired identities opens it (the associated data
      // binds the payload to its entry, so no other key can).
      CUSTOS_ASSIGN_OR_RETURN(std::vector<crypto::SigningKey> retired,
                              kernel::LoadRetiredKeys(ResolveDataDir(g), PassphraseFromEnv()));
      for (const crypto::SigningKey& k : retired) {
        Result<std::string> o = audit::OpenPayload(audit::DerivePayloadKey(k), e, *sealed);
        if (o.ok() || o.status().reason() != Reason::kPayloadUnreadable) {
          opened = std::move(o);
          break;
        }
      }
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string plain, std::move(opened));
    Result<Json> j = ParseUntrustedJson(plain);
    out["payload"] = j.ok() ? *j : Json(plain);
  } else {
    out["payload"] = nullptr;
  }
  std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  return Status::Ok();
}

// The verifier keys in `path`, one per line as `audit checkpoint --verifier-key` prints them;
// blank lines and lines starting with '#' are skipped.
Result<std::vector<audit::NoteVerifier>> ReadTrustedKeys(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::vector<audit::NoteVerifier> keys;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    Result<audit::NoteVerifier> v = audit::ParseVerifierKeyString(line);
    if (!v.ok()) {
      return Status(v.status().reason(), path + ":" + std::to_string(line_no) + ": " +
                                             std::string(v.status().message()));
    }
    keys.push_back(std::move(v).value());
  }
  if (keys.empty()) {
    return Status(Reason::kKeyError, "no verifier keys in " + path);
  }
  return keys;
}

// After the whole log verified (chain, stored tree, stored checkpoints): opens `note` requiring a
// signature by one of `trusted`, and checks that its tree is the first `size` entries of the log.
Status VerifyCheckpoint(store::Store& st, std::string_view note,
                        const std::vector<audit::NoteVerifier>& trusted, int64_t log_entries,
                        const std::vector<audit::KeyRotation>& rotations) {
  CUSTOS_ASSIGN_OR_RETURN(audit::OpenedCheckpoint o, audit::OpenCheckpoint(note, trusted));
  const audit::Checkpoint& c = o.checkpoint;
  if (!rotations.empty()) {
    // A log that rotated: the key current at this size must have signed it.
    audit::KeyChain chain;
    for (const audit::KeyRotation& r : rotations) {
      CUSTOS_RETURN_IF_ERROR(chain.Add(r));
    }
    CUSTOS_RETURN_IF_ERROR(
        audit::CheckCheckpointSigner(note, c.size, *chain.KeyAt(c.size), trusted));
  }
  if (c.size > static_cast<uint64_t>(log_entries)) {
    return Status(Reason::kLogGap, "log truncated: the checkpoint covers " +
                                       std::to_string(c.size) + " entries but the log has only " +
                                       std::to_string(log_entries) + "; entries after " +
                                       std::to_string(log_entries) +
                                       " were removed after the checkpoint was signed");
  }
  // The stored tree was just checked node by node against the entries.
  const audit::StoreNodeSource tree(&st, static_cast<uint64_t>(log_entries));
  CUSTOS_ASSIGN_OR_RETURN(audit::MerkleHash root, audit::RootAt(tree, c.size));
  if (root != c.root) {
    return Status(Reason::kLogCorrupt, "the log's first " + std::to_string(c.size) +
                                           " entries do not match the checkpoint's root");
  }
  std::string signers;
  for (const std::string& name : o.verified_by) {
    signers += (signers.empty() ? "" : ", ") + name;
  }
  std::printf("checkpoint %llu verified (signed by %s)\n", static_cast<unsigned long long>(c.size),
              signers.c_str());
  return Status::Ok();
}

// `audit verify --trusted-keys FILE [--from-checkpoint NOTE]`: the hash chain, then the stored
// (or given) checkpoint against the pinned keys.
int CmdVerifyTrusted(const GlobalOptions& g, const std::string& keys_file,
                     const std::string& note_file) {
  Result<std::vector<audit::NoteVerifier>> trusted = ReadTrustedKeys(keys_file);
  if (!trusted.ok()) {
    return Fail(trusted.status());
  }
  std::optional<std::string> note;
  if (!note_file.empty()) {
    Result<std::string> text = ReadFile(note_file);
    if (!text.ok()) {
      return Fail(text.status());
    }
    note = std::move(text).value();
  }
  Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
  if (!st.ok()) {
    return Fail(st.status());
  }
  audit::VerifyOptions opts;
  opts.merkle = true;
  opts.trusted = *trusted;
  const audit::VerifyReport r = audit::VerifyStore(**st, opts);
  PrintReport(r, true);
  if (!r.status.ok()) {
    return ExitCodeOf(r.status.reason());
  }
  // Every stored checkpoint's root matched; now each must be signed by a pinned key.
  int64_t from_id = 1;
  std::optional<store::CheckpointRow> latest;
  while (true) {
    Result<std::vector<store::CheckpointRow>> rows = (*st)->ReadCheckpoints(from_id, 1024);
    if (!rows.ok()) {
      return Fail(rows.status());
    }
    for (store::CheckpointRow& row : *rows) {
      Result<audit::OpenedCheckpoint> o = audit::OpenCheckpoint(row.note, *trusted);
      if (!o.ok()) {
        const Status s(o.status().reason(), "stored checkpoint " + std::to_string(row.id) +
                                                " (size " + std::to_string(row.size) +
                                                "): " + std::string(o.status().message()));
        std::printf("checkpoint FAILED: %s\n", s.ToString().c_str());
        return Fail(s);
      }
      if (!latest || row.size >= latest->size) {
        latest = std::move(row);
      }
    }
    if (rows->size() < 1024) {
      break;
    }
    from_id = rows->back().id + 1;
  }
  if (!note) {
    if (!latest) {
      return Fail(Status(Reason::kNoCheckpoint,
                         "no stored checkpoint to verify (run `custos audit checkpoint` or pass "
                         "--from-checkpoint)"));
    }
    note = latest->note;
  }
  const Status s = VerifyCheckpoint(**st, *note, *trusted, r.entries, r.rotations);
  if (!s.ok()) {
    std::printf("checkpoint FAILED: %s\n", s.ToString().c_str());
    return Fail(s);
  }
  return 0;
}

}  // namespace

void RegisterAudit(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* audit = app.add_subcommand("audit", "Verify, inspect and export the flight log");
  audit->require_subcommand(1);

  auto* verify = audit->add_subcommand(
      "verify",
      "Check the hash chain (changed, removed, reordered or inserted entries) and, with "
      "--trusted-keys, that a checkpoint signed by a pinned key is a prefix of the log");
  static std::string jsonl;
  auto* jsonl_opt =
      verify->add_option("--jsonl", jsonl, "Verify an exported JSONL file instead of the store");
  static std::string trusted_keys, from_checkpoint;
  auto* trusted_opt =
      verify
          ->add_option("--trusted-keys", trusted_keys,
                       "File of verifier keys, one per line (`audit checkpoint --verifier-key`): "
                       "also verify the checkpoint, which one of them must have signed")
          ->excludes(jsonl_opt);
  verify
      ->add_option("--from-checkpoint", from_checkpoint,
                   "Verify against this checkpoint note instead of the stored latest one")
      ->needs(trusted_opt);
  verify->callback([&g, exit_code] {
    if (!trusted_keys.empty()) {
      *exit_code = CmdVerifyTrusted(g, trusted_keys, from_checkpoint);
      return;
    }
    audit::VerifyReport r;
    if (!jsonl.empty()) {
      std::ifstream in(jsonl, std::ios::binary);
      if (!in) {
        *exit_code = Fail(Status(Reason::kIoError, "cannot read", jsonl));
        return;
      }
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      r = audit::VerifyJsonl(text);
    } else {
      Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
      if (!st.ok()) {
        *exit_code = Fail(st.status());
        return;
      }
      audit::VerifyOptions opts;
      opts.merkle = true;
      r = audit::VerifyStore(**st, opts);
    }
    PrintReport(r, jsonl.empty());
    *exit_code = r.status.ok() ? 0 : ExitCodeOf(r.status.reason());
  });

  auto* inspect = audit->add_subcommand(
      "inspect", "A redacted human view: counts, denials by rule, recent entries");
  static int64_t last = 20;
  inspect->add_option("--last", last, "How many recent entries to list");
  inspect->callback([&g, exit_code] {
    Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
    if (!st.ok()) {
      *exit_code = Fail(st.status());
      return;
    }
    std::map<std::string, int64_t> by_verdict, denials_by_rule;
    std::vector<audit::LogEntry> recent;
    int64_t total = 0;
    store::LogQuery q;
    q.limit = 10000;
    while (true) {
      Result<std::vector<store::LogRow>> rows = (*st)->ReadLog(q);
      if (!rows.ok()) {
        *exit_code = Fail(rows.status());
        return;
      }
      for (const store::LogRow& row : *rows) {
        Result<audit::LogEntry> e = audit::DecodeEntry(row);
        if (!e.ok()) {
          *exit_code = Fail(e.status());
          return;
        }
        ++total;
        if (e->type == "decision") {
          ++by_verdict[e->verdict];
          if (e->verdict == "deny") {
            ++denials_by_rule[(e->rule.empty() ? e->stage : e->rule) + " (" + e->reason + ")"];
          }
        }
        recent.push_back(std::move(e).value());
        if (static_cast<int64_t>(recent.size()) > last)
          recent.erase(recent.begin());
      }
      if (rows->size() < static_cast<size_t>(q.limit))
        break;
      q.from_seq = rows->back().seq + 1;
    }
    std::printf("flight log: %lld entries\n", static_cast<long long>(total));
    std::printf("decisions:");
    for (const auto& [v, n] : by_verdict)
      std::printf(" %s=%lld", v.c_str(), static_cast<long long>(n));
    std::printf("\ndenials by rule:\n");
    for (const auto& [r, n] : denials_by_rule)
      std::printf("  %6lld  %s\n", static_cast<long long>(n), r.c_str());
    std::printf("last %zu entries (payloads are sealed; only hashes shown):\n", recent.size());
    for (const audit::LogEntry& e : recent) {
      std::printf("  #%-6lld %-8s %-14s %-8s %-12s %-18s %s%s\n", static_cast<long long>(e.seq),
                  e.type.c_str(), e.syscall.c_str(), e.verdict.c_str(), e.agent.c_str(),
                  e.reason.c_str(), e.target.substr(0, 60).c_str(),
                  e.rule.empty() ? "" : ("  [" + e.rule + "]").c_str());
    }
    *exit_code = 0;
  });

  auto* exp = audit->add_subcommand("export", "Export the log (redacted: payloads stay sealed)");
  static std::string format = "jsonl", out_file;
  exp->add_option("--format", format, "jsonl")->check(CLI::IsMember({"jsonl"}));
  exp->add_option("--out", out_file, "Output file (default: standard output)");
  exp->callback([&g, exit_code] {
    Result<std::unique_ptr<store::Store>> st = OpenExistingStore(g);
    if (!st.ok()) {
      *exit_code = Fail(st.status());
      return;
    }
    // Written beside the target and renamed into place, so a crash never leaves a torn export.
    const std::string tmp_file = out_file + ".tmp";
    FILE* out = out_file.empty() ? stdout : std::fopen(tmp_file.c_str(), "w");
    if (out == nullptr) {
      *exit_code = Fail(Status(Reason::kIoError, "cannot write", out_file));
      return;
    }
    store::LogQuery q;
    q.limit = 10000;
    while (true) {
      Result<std::vector<store::LogRow>> rows = (*st)->ReadLog(q);
      if (!rows.ok()) {
        *exit_code = Fail(rows.status());
        if (out != stdout)
          std::fclose(out);
        return;
      }
      for (const store::LogRow& row : *rows)
        std::fprintf(out, "%s\n", audit::ToJsonLine(row).c_str());
      if (rows->size() < static_cast<size_t>(q.limit))
        break;
      q.from_seq = rows->back().seq + 1;
    }
    if (out != stdout) {
      const bool ok = std::fflush(out) == 0 && ::fsync(fileno(out)) == 0;
      std::fclose(out);
      if (!ok || std::rename(tmp_file.c_str(), out_file.c_str()) != 0) {
        *exit_code = Fail(Status(Reason::kIoError, "cannot write", out_file));
        return;
      }
    }
    *exit_code = 0;
  });

  auto* checkpoint = audit->add_subcommand(
      "checkpoint", "Sign a C2SP checkpoint (origin, size, Merkle root) of the whole log");
  auto* vkey_only =
      checkpoint->add_flag("--verifier-key")
          ->description("Print the identity's note verifier key (name+hash+key) and sign nothing");
  checkpoint->callback([&g, exit_code, vkey_only] {
    const Status s = CmdCheckpoint(g, static_cast<bool>(*vkey_only));
    *exit_code = s.ok() ? 0 : Fail(s);
  });

  auto* prove = audit->add_subcommand(
      "prove", "Print an inclusion proof of entry SEQ in the latest checkpoint (JSON)");
  static int64_t prove_seq = 0;
  prove->add_option("SEQ", prove_seq, "Sequence number of the entry")->required();
  prove->callback([&g, exit_code] {
    const Status s = CmdProve(g, prove_seq);
    *exit_code = s.ok() ? 0 : Fail(s);
  });

  auto* show = audit->add_subcommand(
      "show", "Print entry SEQ and its sealed payload, decrypted with the identity (owner only)");
  static int64_t show_seq = 0;
  show->add_option("SEQ", show_seq, "Sequence number of the entry")->required();
  show->callback([&g, exit_code] {
    const Status s = CmdShow(g, show_seq);
    *exit_code = s.ok() ? 0 : Fail(s);
  });

  auto* consistency = audit->add_subcommand(
      "consistency", "Prove (and check) that an old checkpoint's tree is a prefix of the latest");
  static std::string old_checkpoint;
  consistency->add_option("OLD_CHECKPOINT", old_checkpoint, "File holding the old checkpoint note")
      ->required();
  consistency->callback([&g, exit_code] {
    const Status s = CmdConsistency(g, old_checkpoint);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace custos::cli
