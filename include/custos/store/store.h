#pragma once
// Store is the kernel's one persistence interface (DESIGN.md "Store"): flight-log rows, handles
// and their sealed payloads, heap objects, approvals, mailboxes and spawned agents. The embedded
// backend is SQLite in WAL mode (sqlite_store.h); a PostgreSQL backend will implement the same
// interface. Every write a decision depends on is one transaction; nothing assumes one process
// (two processes may open one SQLite store: approvals answered by `custos approvals` reach a
// waiting `custos run`).
//
// Errors are kStoreError (I/O, busy past the timeout), kNotFound, kAlreadyExists,
// kVersionConflict; messages never contain payload bytes.
//
// Thread-safe: one connection per calling thread inside the implementation, or a mutex.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "custos/core/json.h"
#include "custos/core/result.h"

namespace custos::store {

// How AppendLog makes rows durable.
enum class Sync : uint8_t {
  kNone = 0,  // handed to the OS (survives a process crash, not power loss)
  kFull = 1,  // fsync'd before AppendLog returns
};

// One flight-log row. `canonical` is the entry's canonical JSON (what `hash` covers); the other
// fields are copies for indexing and must agree with it.
struct LogRow {
  int64_t seq = 0;
  std::string hash;  // hex
  std::string canonical;
  int64_t time_ms = 0;
  std::string agent, run, type, verdict, reason;
  // Sealed (AEAD) request or result bytes kept beside the row in the same transaction; not part of
  // `canonical` (the entry carries only their hash). "" if none.
  std::string payload;
};

// One node of the flight log's RFC 9162 Merkle tree: the hash (32 raw bytes) of the perfect subtree
// of 2^level leaves that starts at leaf index << level. Leaves are level 0 (leaf i = entry i + 1).
struct MerkleNode {
  int level = 0;  // 0..55
  uint64_t index = 0;
  std::string hash;
};

// A signed checkpoint note (docs/spec/checkpoint.md) of the first `size` entries. Every one is
// kept, in the order stored (`id`), so old checkpoints stay available for consistency proofs.
struct CheckpointRow {
  int64_t id = 0;
  int64_t size = 0;
  std::string note;
  int64_t time_ms = 0;
};

struct LogQuery {
  int64_t from_seq = 1;             // inclusive
  int64_t limit = 1000;             // max rows
  std::string agent, run, verdict;  // "" = any
  bool with_payloads = false;       // also fill LogRow::payload ("" if the row has none)
};

// A value the kernel holds for a handle.
struct HandleRecord {
  std::string id;  // "h_" + 26 base32
  std::string owner_agent;
  std::string run;
  std::string content_hash;  // SHA-256 hex of the plaintext
  Json labels;               // LabelSet::ToJson()
  std::string kind;          // "file" | "http" | "tool" | "model" | "secret" | "message" | ...
  std::string sealed;        // AEAD-sealed content (binary); empty for secret handles
  std::string meta;          // JSON text, e.g. {"secret":"github_token"} (never secret bytes)
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0 = never
};

struct HeapObject {
  std::string id;
  std::string type;
  int64_t version = 0;
  Json value;
  Json labels;
  std::string owner_run;
  int64_t updated_ms = 0;
};

// One operation of an atomic heap batch.
struct HeapOp {
  enum class Kind { kPut, kDelete } kind = Kind::kPut;
  HeapObject object;              // for kPut: id/type/value/labels; version is ignored
  int64_t expected_version = -1;  // -1: no check; 0: must not exist; N: must be at version N
};

struct Approval {
  std::string id;
  std::string agent, run;
  std::string syscall, target;
  std::string rule;
  std::string question;
  std::string state;  // "pending" | "approved" | "denied" | "expired"
  std::string answered_by;
  std::string note;
  int64_t created_ms = 0, deadline_ms = 0, answered_ms = 0;
};

struct MailMessage {
  int64_t id = 0;
  std::string run, from_agent, to_agent;
  std::string handle;  // the message content is a handle, so labels travel with it
  int64_t sent_ms = 0;
};

// The use caveats of one token block (docs/spec/capability-token.md): at most `max_uses` uses in
// all (0: no cap) and at most `rate_count` uses per fixed window of `rate_window_ms` (0: no rate).
struct TokenUseLimits {
  int64_t max_uses = 0;
  int64_t rate_count = 0;
  int64_t rate_window_ms = 0;
};

struct AgentRecord {
  std::string name, run, parent;
  Json syscalls;  // array of syscall names
  Json budget;    // carved limits
  int64_t created_ms = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Flight log. Appends rows and the Merkle nodes they complete in one transaction, all or none;
  // rows must continue the sequence (the first row's seq = last + 1, then consecutive), else
  // kLogGap and nothing is written. Nodes are stored as given (the audit module computes them);
  // kInvalidArgument for a hash that is not 32 bytes or a level above 55, kAlreadyExists for a
  // node already stored.
  virtual Status AppendLog(const std::vector<LogRow>& rows, const std::vector<MerkleNode>& nodes,
                           Sync sync) = 0;
  // Rows only, no Merkle nodes (tests, tools; LogWriter::Open catches the tree up).
  Status AppendLog(const std::vector<LogRow>& rows, Sync sync) { return AppendLog(rows, {}, sync); }
  // Makes every row appended so far durable, as if each had been appended with Sync::kFull.
  virtual Status SyncLog() = 0;
  // Rows in seq order, filtered by the non-empty fields of `q`. `payload` is left empty unless
  // q.with_payloads (one query instead of a ReadPayload() per row, for replay). kInvalidArgument
  // if q.limit <= 0.
  virtual Result<std::vector<LogRow>> ReadLog(const LogQuery& q) = 0;
  virtual Result<std::optional<LogRow>> LastLog() = 0;
  virtual Result<int64_t> LogCount() = 0;
  // The sealed payload stored with row `seq` (kNotFound if none).
  virtual Result<std::string> ReadPayload(int64_t seq) = 0;

  // Merkle tree nodes (written by AppendLog). kNotFound if node (level, index) is not stored.
  virtual Result<std::string> ReadMerkleNode(int level, uint64_t index) = 0;
  // Up to `limit` consecutive nodes of `level` from `index` on, stopping at the first missing.
  virtual Result<std::vector<std::string>> ReadMerkleNodes(int level, uint64_t index,
                                                           int64_t limit) = 0;
  // Number of leaves (level-0 nodes) stored: the size of the tree the nodes cover.
  virtual Result<int64_t> MerkleLeafCount() = 0;

  // Checkpoints. PutCheckpoint keeps every note (kInvalidArgument if size < 0).
  virtual Status PutCheckpoint(int64_t size, const std::string& note, int64_t time_ms) = 0;
  // Checkpoints with id >= from_id in id order, at most `limit`.
  virtual Result<std::vector<CheckpointRow>> ReadCheckpoints(int64_t from_id, int64_t limit) = 0;
  // The checkpoint of the largest size (the latest stored among equals), nullopt if none.
  virtual Result<std::optional<CheckpointRow>> LatestCheckpoint() = 0;

  // Handles. PutHandle is kAlreadyExists if the id exists; GetHandle kNotFound if missing.
  // With Sync::kNone the row is committed but not fsync'd: it becomes durable with the next kFull
  // commit of this store (the kernel mints a call's handles that way and the call's outcome entry,
  // which the caller waits for, makes them durable; decision 037).
  virtual Status PutHandle(const HandleRecord& h, Sync sync) = 0;
  virtual Result<HandleRecord> GetHandle(const std::string& id) = 0;

  // Typed heap (memory.*). Put with expected_version implements compare-and-swap.
  virtual Result<HeapObject> HeapGet(const std::string& run, const std::string& id) = 0;
  // Applies every op or none, in order (a later op sees the earlier ones); returns the objects as
  // written. A put's version is the previous version + 1 (the first is 1); a deleted object is
  // returned with version 0 and a null value. kVersionConflict names the id, the expected and the
  // actual version (0 = absent); deleting a missing object is kNotFound.
  virtual Result<std::vector<HeapObject>> HeapApply(const std::string& run,
                                                    const std::vector<HeapOp>& ops,
                                                    int64_t now_ms) = 0;
  // Objects of `type` ("" = any) in id order.
  virtual Result<std::vector<HeapObject>> HeapQuery(const std::string& run, const std::string& type,
                                                    int64_t limit) = 0;

  // Approvals. PutApproval creates one (kAlreadyExists if the id is taken; kInvalidArgument
  // unless state is one of the four names). ListApprovals("") lists every state, oldest first.
  virtual Status PutApproval(const Approval& a) = 0;
  virtual Result<Approval> GetApproval(const std::string& id) = 0;
  virtual Result<std::vector<Approval>> ListApprovals(const std::string& state) = 0;
  // Moves a pending approval to approved/denied. kFailedPrecondition... is kNotFound if missing,
  // kAlreadyExists if it was already answered or expired.
  virtual Status AnswerApproval(const std::string& id, bool approve, const std::string& by,
                                const std::string& note, int64_t now_ms) = 0;

  // Mailboxes between agents of one run (FIFO per (run, recipient)). SendMail assigns the id
  // (m.id is ignored); RecvMail removes and returns the oldest message, nullopt if none.
  virtual Status SendMail(const MailMessage& m) = 0;
  virtual Result<std::optional<MailMessage>> RecvMail(const std::string& run,
                                                      const std::string& to_agent) = 0;

  // Spawned agents. PutAgent is kAlreadyExists if (run, name) exists.
  virtual Status PutAgent(const AgentRecord& a) = 0;
  virtual Result<std::optional<AgentRecord>> GetAgent(const std::string& run,
                                                      const std::string& name) = 0;

  // Capability token revocations, by revocation id (a block's signature in lowercase hex).
  // RevokeToken is idempotent (revoking twice keeps the first record). FirstRevoked returns the
  // first of `ids` that is revoked, or nullopt: one read, so every use of a token can check all
  // of its block ids (a revoked block revokes every token that contains it).
  virtual Status RevokeToken(const std::string& revocation_id, const std::string& note,
                             int64_t at_ms) = 0;
  virtual Result<std::optional<std::string>> FirstRevoked(std::span<const std::string> ids) = 0;

  // Counts one use against a token block's use caveats, atomically across threads and processes
  // sharing the store: kTokenUsesExhausted if `limits.max_uses` uses were already counted,
  // kTokenRateLimited if the current window is full; nothing is counted then. The window starts
  // at the first use after the previous window ended. With `dry_run` it only checks (explain).
  virtual Status CountTokenUse(const std::string& caveat_id, const TokenUseLimits& limits,
                               int64_t now_ms, bool dry_run) = 0;

  // Small key/value metadata (e.g. "log.genesis").
  virtual Status PutMeta(const std::string& key, const std::string& value) = 0;
  virtual Result<std::optional<std::string>> GetMeta(const std::string& key) = 0;
};

// Opens (creating if needed) the SQLite store at `path` (WAL, busy timeout 5 s). ":memory:" is
// accepted for tests.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path);

}  // namespace custos::store
