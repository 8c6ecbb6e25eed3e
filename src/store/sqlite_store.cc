// The SQLite backend of Store.
//
// Two connections: every write goes through `writer_` under `write_mu_`, in a BEGIN IMMEDIATE
// transaction (so a read-check-write like the log's sequence check or a heap CAS is atomic across
// processes); reads go through `reader_` under `read_mu_`, so a reader never waits for a log
// commit's fsync. In WAL mode a reader sees every transaction committed before its statement
// started. An in-memory store (":memory:") is private to one connection, so it uses `writer_`
// for both.
//
// Durability: the write connection runs with synchronous=FULL (the WAL is fsync'd at each commit)
// except while appending log rows with Sync::kNone, which switches it to synchronous=NORMAL (no
// fsync at commit; the WAL is still fsync'd before each checkpoint, so a power loss can lose the
// tail of the log but never corrupts the file). SyncLog() makes such rows durable with one FULL
// commit: fsync flushes every frame of the WAL file, not only the last transaction's.

#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <utility>

#include "custos/store/merkle_batch.h"
#include "custos/store/store.h"
#include "store/sqlite_conn_internal.h"

namespace custos::store {
namespace {

using internal::Connection;
using internal::Stmt;
using internal::WriteTxn;

constexpr int kSchemaVersion = 1;

// Version 1. A later version adds a migration step in Migrate(); columns are never reused. The
// merkle and checkpoints tables were added to version 1 without a bump: they are new tables
// (CREATE IF NOT EXISTS adds them to an older file), and LogWriter::Open builds the nodes of rows
// written before them.
//
// merkle.id packs a node's position as level << 56 | index, so one level's nodes are one
// contiguous rowid range and a node lookup is one b-tree probe.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log(
  seq INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  canonical TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  agent TEXT NOT NULL,
  run TEXT NOT NULL,
  type TEXT NOT NULL,
  verdict TEXT NOT NULL,
  reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_by_run ON log(run, seq);
CREATE TABLE IF NOT EXISTS log_payload(seq INTEGER PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS merkle(id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  size INTEGER NOT NULL,
  note TEXT NOT NULL,
  time_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_by_size ON checkpoints(size, id);
CREATE TABLE IF NOT EXISTS handles(
  id TEXT PRIMARY KEY,
  owner_agent TEXT NOT NULL,
  run TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  labels TEXT NOT NULL,
  kind TEXT NOT NULL,
  sealed BLOB NOT NULL,
  meta TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heap(
  run TEXT NOT NULL,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  version INTEGER NOT NULL,
  value TEXT NOT NULL,
  labels TEXT NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY(run, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS heap_by_type ON heap(run, type, id);
CREATE TABLE IF NOT EXISTS approvals(
  id TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  run TEXT NOT NULL,
  syscall TEXT NOT NULL,
  target TEXT NOT NULL,
  rule TEXT NOT NULL,
  question TEXT NOT NULL,
  state TEXT NOT NULL,
  answered_by TEXT NOT NULL,
  note TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL,
  answered_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS approvals_by_state ON approvals(state, created_ms, id);
CREATE TABLE IF NOT EXISTS mail(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run TEXT NOT NULL,
  from_agent TEXT NOT NULL,
  to_agent TEXT NOT NULL,
  handle TEXT NOT NULL,
  sent_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS mail_by_box ON mail(run, to_agent, id);
CREATE TABLE IF NOT EXISTS agents(
  run TEXT NOT NULL,
  name TEXT NOT NULL,
  parent TEXT NOT NULL,
  syscalls TEXT NOT NULL,
  budget TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY(run, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revocations(
  id TEXT PRIMARY KEY,
  note TEXT NOT NULL,
  revoked_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS token_uses(
  id TEXT PRIMARY KEY,
  uses INTEGER NOT NULL,
  window_start_ms INTEGER NOT NULL,
  window_uses INTEGER NOT NULL) WITHOUT ROWID;
)sql";

constexpr char kLogColumns[] = "seq, hash, canonical, time_ms, agent, run, type, verdict, reason";
constexpr char kHeapColumns[] = "id, type, version, value, labels, updated_ms";
constexpr char kApprovalColumns[] =
    "id, agent, run, syscall, target, rule, question, state, answered_by, note, created_ms, "
    "deadline_ms, answered_ms";

constexpr int kMaxMerkleLevel = 55;
constexpr uint64_t kMaxMerkleIndex = (uint64_t{1} << 56) - 1;

int64_t MerkleId(int level, uint64_t index) {
  return static_cast<int64_t>((static_cast<uint64_t>(level) << 56) | index);
}

bool IsUniqueViolation(int rc) {
  return rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE;
}

Result<std::string> JsonText(const Json& j, std::string_view what) {
  try {
    return j.dump();
  } catch (const Json::exception&) {
    return Status(Reason::kInvalidArgument,
                  std::string(what) + " holds a string that is not UTF-8");
  }
}

Result<Json> JsonColumn(const std::string& text, std::string_view what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status(Reason::kStoreError, "stored " + std::string(what) + " is not valid JSON");
  }
  return j;
}

LogRow ReadLogRow(const Stmt& s) {
  LogRow r;
  r.seq = s.Int(0);
  r.hash = s.Text(1);
  r.canonical = s.Text(2);
  r.time_ms = s.Int(3);
  r.agent = s.Text(4);
  r.run = s.Text(5);
  r.type = s.Text(6);
  r.verdict = s.Text(7);
  r.reason = s.Text(8);
  return r;
}

Result<HeapObject> ReadHeapObject(const Stmt& s, const std::string& run) {
  HeapObject o;
  o.id = s.Text(0);
  o.type = s.Text(1);
  o.version = s.Int(2);
  CUSTOS_ASSIGN_OR_RETURN(o.value, JsonColumn(s.Text(3), "heap value"));
  CUSTOS_ASSIGN_OR_RETURN(o.labels, JsonColumn(s.Text(4), "heap labels"));
  o.updated_ms = s.Int(5);
  o.owner_run = run;
  return o;
}

Approval ReadApproval(const Stmt& s) {
  Approval a;
  a.id = s.Text(0);
  a.agent = s.Text(1);
  a.run = s.Text(2);
  a.syscall = s.Text(3);
  a.target = s.Text(4);
  a.rule = s.Text(5);
  a.question = s.Text(6);
  a.state = s.Text(7);
  a.answered_by = s.Text(8);
  a.note = s.Text(9);
  a.created_ms = s.Int(10);
  a.deadline_ms = s.Int(11);
  a.answered_ms = s.Int(12);
  return a;
}

bool IsApprovalState(std::string_view s) {
  return s == "pending" || s == "approved" || s == "denied" || s == "expired";
}

class SqliteStore final : public Store, public MerkleBatchReader {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::filesystem::path& path) {
    const std::string p = path.string();
    CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer, Connection::Open(p));
    CUSTOS_RETURN_IF_ERROR(CreateSchema(*writer, p));
    std::unique_ptr<Connection> reader;
    if (p != ":memory:") {
      CUSTOS_ASSIGN_OR_RETURN(reader, Connection::Open(p));
      CUSTOS_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only=1"));
    }
    return std::unique_ptr<Store>(new SqliteStore(std::move(writer), std::move(reader)));
  }

  // --- Flight log ---

  using Store::AppendLog;

  Status AppendLog(const std::vector<LogRow>& rows, const std::vector<MerkleNode>& nodes,
                   Sync sync) override {
    if (rows.empty() && nodes.empty()) {
      return Status::Ok();
    }
    for (const MerkleNode& n : nodes) {
      if (n.level < 0 || n.level > kMaxMerkleLevel || n.index > kMaxMerkleIndex ||
          n.hash.size() != 32) {
        return Status(Reason::kInvalidArgument,
                      "Merkle node (" + std::to_string(n.level) + ", " + std::to_string(n.index) +
                          ") is out of range or its hash is not 32 bytes");
      }
    }
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i].seq != rows[i - 1].seq + 1) {
        return Status(Reason::kLogGap, "log rows to append are not consecutive: seq " +
                                           std::to_string(rows[i].seq) + " follows seq " +
                                           std::to_string(rows[i - 1].seq));
      }
    }
    std::lock_guard lock(write_mu_);
    CUSTOS_RETURN_IF_ERROR(SetSyncLocked(sync));
    CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(*writer_));
    CUSTOS_ASSIGN_OR_RETURN(int64_t last, LastSeqLocked());
    if (!rows.empty() && rows.front().seq != last + 1) {
      return Status(Reason::kLogGap, "log append starts at seq " +
                                         std::to_string(rows.front().seq) +
                                         " but the log ends at seq " + std::to_string(last) +
                                         " (expected " + std::to_string(last + 1) + ")");
    }
    for (const LogRow& r : rows) {
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt ins,
          writer_->Prepare("INSERT INTO log(seq, hash, canonical, time_ms, agent, run, type, "
                           "verdict, reason) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
      ins.Bind(1, r.seq)
          .BindText(2, r.hash)
          .BindText(3, r.canonical)
          .Bind(4, r.time_ms)
          .BindText(5, r.agent)
          .BindText(6, r.run)
          .BindText(7, r.type)
          .BindText(8, r.verdict)
          .BindText(9, r.reason);
      CUSTOS_RETURN_IF_ERROR(ins.Run());
      if (!r.payload.empty()) {
        CUSTOS_ASSIGN_OR_RETURN(
            Stmt pay, writer_->Prepare("INSERT INTO log_payload(seq, payload) VALUES(?1, ?2)"));
        pay.Bind(1, r.seq).BindBlob(2, r.payload);
        CUSTOS_RETURN_IF_ERROR(pay.Run());
      }
    }
    for (const MerkleNode& n : nodes) {
      CUSTOS_ASSIGN_OR_RETURN(Stmt ins,
                              writer_->Prepare("INSERT INTO merkle(id, hash) VALUES(?1, ?2)"));
      ins.Bind(1, MerkleId(n.level, n.index)).BindBlob(2, n.hash);
      Status st = ins.Run();
      if (!st.ok()) {
        if (IsUniqueViolation(ins.last_code())) {
          return Status(Reason::kAlreadyExists, "Merkle node (" + std::to_string(n.level) + ", " +
                                                    std::to_string(n.index) +
                                                    ") is already stored");
        }
        return st;
      }
    }
    return txn.Commit();
  }

  Result<std::string> ReadMerkleNode(int level, uint64_t index) override {
    if (level < 0 || level > kMaxMerkleLevel || index > kMaxMerkleIndex) {
      return Status(Reason::kInvalidArgument, "Merkle node position out of range");
    }
    return WithReader([&](Connection& c) -> Result<std::string> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT hash FROM merkle WHERE id = ?1"));
      s.Bind(1, MerkleId(level, index));
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return Status(Reason::kNotFound, "Merkle node (" + std::to_string(level) + ", " +
                                             std::to_string(index) + ") is not stored");
      }
      return s.Text(0);
    });
  }

  Result<std::vector<std::string>> ReadMerkleNodesAt(
      std::span<const std::pair<int, uint64_t>> at) override {
    if (at.size() > 256) {
      return Status(Reason::kInvalidArgument, "at most 256 Merkle nodes per batch");
    }
    std::vector<int64_t> ids;
    ids.reserve(at.size());
    for (const auto& [level, index] : at) {
      if (level < 0 || level > kMaxMerkleLevel || index > kMaxMerkleIndex) {
        return Status(Reason::kInvalidArgument, "Merkle node position out of range");
      }
      ids.push_back(MerkleId(level, index));
    }
    if (ids.empty()) {
      return std::vector<std::string>{};
    }
    // One statement per batch size (cached by its text): id IN (?1, ..., ?n).
    std::string sql = "SELECT id, hash FROM merkle WHERE id IN (";
    for (size_t i = 0; i < ids.size(); ++i) {
      sql += (i == 0 ? "?" : ",?") + std::to_string(i + 1);
    }
    sql += ")";
    return WithReader([&](Connection& c) -> Result<std::vector<std::string>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
      for (size_t i = 0; i < ids.size(); ++i) {
        s.Bind(static_cast<int>(i + 1), ids[i]);
      }
      std::vector<std::string> out(ids.size());
      std::vector<bool> found(ids.size(), false);
      while (true) {
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          break;
        }
        const int64_t id = s.Int(0);
        for (size_t i = 0; i < ids.size(); ++i) {
          if (ids[i] == id && !found[i]) {
            out[i] = s.Text(1);
            found[i] = true;
          }
        }
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        if (!found[i]) {
          return Status(Reason::kNotFound, "Merkle node (" + std::to_string(at[i].first) + ", " +
                                               std::to_string(at[i].second) + ") is not stored");
        }
      }
      return out;
    });
  }

  Result<std::vector<std::string>> ReadMerkleNodes(int level, uint64_t index,
                                                   int64_t limit) override {
    if (level < 0 || level > kMaxMerkleLevel || index > kMaxMerkleIndex || limit <= 0) {
      return Status(Reason::kInvalidArgument, "Merkle node range out of range");
    }
    return WithReader([&](Connection& c) -> Result<std::vector<std::string>> {
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("SELECT id, hash FROM merkle WHERE id >= ?1 AND id <= ?2 ORDER BY id "
                            "LIMIT ?3"));
      s.Bind(1, MerkleId(level, index)).Bind(2, MerkleId(level, kMaxMerkleIndex)).Bind(3, limit);
      std::vector<std::string> out;
      int64_t expect = MerkleId(level, index);
      while (true) {
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row || s.Int(0) != expect) {
          break;
        }
        out.push_back(s.Text(1));
        ++expect;
      }
      return out;
    });
  }

  Result<int64_t> MerkleLeafCount() override {
    return WithReader([&](Connection& c) -> Result<int64_t> {
      // Leaves are stored in order without gaps (AppendLog's callers append them in order), so
      // the count is the largest leaf index + 1; max(id) over the level-0 range is one probe.
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("SELECT coalesce(max(id) + 1, 0) FROM merkle WHERE id < ?1"));
      s.Bind(1, MerkleId(1, 0));
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      return row ? s.Int(0) : int64_t{0};
    });
  }

  Status PutCheckpoint(int64_t size, const std::string& note, int64_t time_ms) override {
    if (size < 0) {
      return Status(Reason::kInvalidArgument, "checkpoint size must not be negative");
    }
    return WithWriter([&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("INSERT INTO checkpoints(size, note, time_ms) VALUES(?1, ?2, ?3)"));
      s.Bind(1, size).BindText(2, note).Bind(3, time_ms);
      CUSTOS_RETURN_IF_ERROR(s.Run());
      return txn.Commit();
    });
  }

  Result<std::vector<CheckpointRow>> ReadCheckpoints(int64_t from_id, int64_t limit) override {
    if (limit <= 0) {
      return Status(Reason::kInvalidArgument, "checkpoint query limit must be positive");
    }
    return WithReader([&](Connection& c) -> Result<std::vector<CheckpointRow>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id, size, note, time_ms FROM checkpoints "
                                                "WHERE id >= ?1 ORDER BY id LIMIT ?2"));
      s.Bind(1, from_id).Bind(2, limit);
      std::vector<CheckpointRow> out;
      while (true) {
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          break;
        }
        out.push_back(CheckpointRow{s.Int(0), s.Int(1), s.Text(2), s.Int(3)});
      }
      return out;
    });
  }

  Result<std::optional<CheckpointRow>> LatestCheckpoint() override {
    return WithReader([&](Connection& c) -> Result<std::optional<CheckpointRow>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT id, size, note, time_ms FROM checkpoints "
                                                "ORDER BY size DESC, id DESC LIMIT 1"));
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return std::optional<CheckpointRow>();
      }
      return std::optional<CheckpointRow>(CheckpointRow{s.Int(0), s.Int(1), s.Text(2), s.Int(3)});
    });
  }

  Status SyncLog() override {
    std::lock_guard lock(write_mu_);
    CUSTOS_RETURN_IF_ERROR(SetSyncLocked(Sync::kFull));
    CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(*writer_));
    // Any FULL commit fsyncs the WAL file, which holds every frame not yet checkpointed (and
    // checkpoints fsync in NORMAL mode too). Record what is now known durable.
    CUSTOS_ASSIGN_OR_RETURN(
        Stmt s, writer_->Prepare("INSERT OR REPLACE INTO meta(key, value) "
                                 "SELECT 'log_synced_seq', coalesce(max(seq), 0) FROM log"));
    CUSTOS_RETURN_IF_ERROR(s.Run());
    return txn.Commit();
  }

  Result<std::vector<LogRow>> ReadLog(const LogQuery& q) override {
    if (q.limit <= 0) {
      return Status(Reason::kInvalidArgument, "log query limit must be positive");
    }
    std::string sql = std::string("SELECT ") + kLogColumns;
    if (q.with_payloads) {
      sql += ", (SELECT payload FROM log_payload WHERE log_payload.seq = log.seq)";
    }
    sql += " FROM log WHERE seq >= ?1";
    if (!q.agent.empty()) {
      sql += " AND agent = ?2";
    }
    if (!q.run.empty()) {
      sql += " AND run = ?3";
    }
    if (!q.verdict.empty()) {
      sql += " AND verdict = ?4";
    }
    sql += " ORDER BY seq LIMIT ?5";
    return WithReader([&](Connection& c) -> Result<std::vector<LogRow>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
      s.Bind(1, q.from_seq).Bind(5, q.limit);
      if (!q.agent.empty()) {
        s.BindText(2, q.agent);
      }
      if (!q.run.empty()) {
        s.BindText(3, q.run);
      }
      if (!q.verdict.empty()) {
        s.BindText(4, q.verdict);
      }
      std::vector<LogRow> rows;
      rows.reserve(static_cast<size_t>(std::min<int64_t>(q.limit, 16384)));
      while (true) {
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          break;
        }
        rows.push_back(ReadLogRow(s));
        if (q.with_payloads) {
          rows.back().payload = s.Text(9);  // NULL reads as ""
        }
      }
      return rows;
    });
  }

  Result<std::optional<LogRow>> LastLog() override {
    return WithReader([&](Connection& c) -> Result<std::optional<LogRow>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kLogColumns +
                                                " FROM log ORDER BY seq DESC LIMIT 1"));
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return std::optional<LogRow>();
      }
      return std::optional<LogRow>(ReadLogRow(s));
    });
  }

  Result<int64_t> LogCount() override {
    return WithReader([&](Connection& c) -> Result<int64_t> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT count(*) FROM log"));
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      return row ? s.Int(0) : int64_t{0};
    });
  }

  Result<std::string> ReadPayload(int64_t seq) override {
    return WithReader([&](Connection& c) -> Result<std::string> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT payload FROM log_payload WHERE seq = ?1"));
      s.Bind(1, seq);
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return Status(Reason::kNotFound,
                      "no payload is stored with log entry " + std::to_string(seq));
      }
      return s.Text(0);
    });
  }

  // --- Handles ---

  Status PutHandle(const HandleRecord& h, Sync sync) override {
    CUSTOS_ASSIGN_OR_RETURN(std::string labels, JsonText(h.labels, "handle labels"));
    return WithWriter(sync, [&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("INSERT INTO handles(id, owner_agent, run, content_hash, labels, kind, "
                            "sealed, meta, created_ms, expires_ms) "
                            "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
      s.BindText(1, h.id)
          .BindText(2, h.owner_agent)
          .BindText(3, h.run)
          .BindText(4, h.content_hash)
          .BindText(5, labels)
          .BindText(6, h.kind)
          .BindBlob(7, h.sealed)
          .BindText(8, h.meta)
          .Bind(9, h.created_ms)
          .Bind(10, h.expires_ms);
      Status st = s.Run();
      if (!st.ok() && IsUniqueViolation(s.last_code())) {
        return Status(Reason::kAlreadyExists, "handle " + h.id + " already exists");
      }
      CUSTOS_RETURN_IF_ERROR(st);
      return txn.Commit();
    });
  }

  Result<HandleRecord> GetHandle(const std::string& id) override {
    return WithReader([&](Connection& c) -> Result<HandleRecord> {
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("SELECT id, owner_agent, run, content_hash, labels, kind, sealed, "
                            "meta, created_ms, expires_ms FROM handles WHERE id = ?1"));
      s.BindText(1, id);
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return Status(Reason::kNotFound, "no handle " + id);
      }
      HandleRecord h;
      h.id = s.Text(0);
      h.owner_agent = s.Text(1);
      h.run = s.Text(2);
      h.content_hash = s.Text(3);
      CUSTOS_ASSIGN_OR_RETURN(h.labels, JsonColumn(s.Text(4), "handle labels"));
      h.kind = s.Text(5);
      h.sealed = s.Text(6);
      h.meta = s.Text(7);
      h.created_ms = s.Int(8);
      h.expires_ms = s.Int(9);
      return h;
    });
  }

  // --- Heap ---

  Result<HeapObject> HeapGet(const std::string& run, const std::string& id) override {
    return WithReader([&](Connection& c) -> Result<HeapObject> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kHeapColumns +
                                                " FROM heap WHERE run = ?1 AND id = ?2"));
      s.BindText(1, run).BindText(2, id);
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return Status(Reason::kNotFound, "no object " + id + " in run " + run);
      }
      return ReadHeapObject(s, run);
    });
  }

  Result<std::vector<HeapObject>> HeapApply(const std::string& run, const std::vector<HeapOp>& ops,
                                            int64_t now_ms) override {
    // Encode outside the lock; reject bad input before touching the database.
    std::vector<std::pair<std::string, std::string>> texts(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      const HeapOp& op = ops[i];
      if (op.object.id.empty()) {
        return Status(Reason::kInvalidArgument, "heap op " + std::to_string(i) + " has no id");
      }
      if (op.expected_version < -1) {
        return Status(Reason::kInvalidArgument,
                      "heap op on " + op.object.id + " has expected_version " +
                          std::to_string(op.expected_version) + " (must be -1, 0 or a version)");
      }
      if (op.kind == HeapOp::Kind::kPut) {
        CUSTOS_ASSIGN_OR_RETURN(texts[i].first, JsonText(op.object.value, "heap value"));
        CUSTOS_ASSIGN_OR_RETURN(texts[i].second, JsonText(op.object.labels, "heap labels"));
      }
    }
    return WithWriter([&](Connection& c) -> Result<std::vector<HeapObject>> {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      std::vector<HeapObject> written;
      written.reserve(ops.size());
      for (size_t i = 0; i < ops.size(); ++i) {
        const HeapOp& op = ops[i];
        const std::string& id = op.object.id;
        int64_t current = 0;  // 0: absent
        std::string current_type;
        {
          CUSTOS_ASSIGN_OR_RETURN(
              Stmt s, c.Prepare("SELECT version, type FROM heap WHERE run = ?1 AND id = ?2"));
          s.BindText(1, run).BindText(2, id);
          CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
          if (row) {
            current = s.Int(0);
            current_type = s.Text(1);
          }
        }
        if (op.expected_version != -1 && op.expected_version != current) {
          return Status(Reason::kVersionConflict, "heap object " + id + ": expected version " +
                                                      std::to_string(op.expected_version) +
                                                      ", actual " + std::to_string(current) +
                                                      (current == 0 ? " (absent)" : ""));
        }
        HeapObject out;
        out.id = id;
        out.owner_run = run;
        out.updated_ms = now_ms;
        if (op.kind == HeapOp::Kind::kPut) {
          CUSTOS_ASSIGN_OR_RETURN(
              Stmt s, c.Prepare("INSERT OR REPLACE INTO heap(run, id, type, version, value, "
                                "labels, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
          s.BindText(1, run)
              .BindText(2, id)
              .BindText(3, op.object.type)
              .Bind(4, current + 1)
              .BindText(5, texts[i].first)
              .BindText(6, texts[i].second)
              .Bind(7, now_ms);
          CUSTOS_RETURN_IF_ERROR(s.Run());
          out.type = op.object.type;
          out.version = current + 1;
          out.value = op.object.value;
          out.labels = op.object.labels;
        } else {
          if (current == 0) {
            return Status(Reason::kNotFound, "no object " + id + " in run " + run + " to delete");
          }
          CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("DELETE FROM heap WHERE run = ?1 AND id = ?2"));
          s.BindText(1, run).BindText(2, id);
          CUSTOS_RETURN_IF_ERROR(s.Run());
          out.type = current_type;
          out.version = 0;  // absent, as expected_version 0 means
        }
        written.push_back(std::move(out));
      }
      CUSTOS_RETURN_IF_ERROR(txn.Commit());
      return written;
    });
  }

  Result<std::vector<HeapObject>> HeapQuery(const std::string& run, const std::string& type,
                                            int64_t limit) override {
    if (limit <= 0) {
      return Status(Reason::kInvalidArgument, "heap query limit must be positive");
    }
    std::string sql = std::string("SELECT ") + kHeapColumns + " FROM heap WHERE run = ?1" +
                      (type.empty() ? "" : " AND type = ?2") + " ORDER BY id LIMIT ?3";
    return WithReader([&](Connection& c) -> Result<std::vector<HeapObject>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
      s.BindText(1, run).Bind(3, limit);
      if (!type.empty()) {
        s.BindText(2, type);
      }
      std::vector<HeapObject> out;
      while (true) {
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          break;
        }
        CUSTOS_ASSIGN_OR_RETURN(HeapObject o, ReadHeapObject(s, run));
        out.push_back(std::move(o));
      }
      return out;
    });
  }

  // --- Approvals ---

  Status PutApproval(const Approval& a) override {
    if (!IsApprovalState(a.state)) {
      return Status(Reason::kInvalidArgument,
                    "approval state must be pending, approved, denied or expired");
    }
    return WithWriter([&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(Stmt s,
                              c.Prepare(std::string("INSERT INTO approvals(") + kApprovalColumns +
                                        ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                        "?10, ?11, ?12, ?13)"));
      s.BindText(1, a.id)
          .BindText(2, a.agent)
          .BindText(3, a.run)
          .BindText(4, a.syscall)
          .BindText(5, a.target)
          .BindText(6, a.rule)
          .BindText(7, a.question)
          .BindText(8, a.state)
          .BindText(9, a.answered_by)
          .BindText(10, a.note)
          .Bind(11, a.created_ms)
          .Bind(12, a.deadline_ms)
          .Bind(13, a.answered_ms);
      Status st = s.Run();
      if (!st.ok() && IsUniqueViolation(s.last_code())) {
        return Status(Reason::kAlreadyExists, "approval " + a.id + " already exists");
      }
      CUSTOS_RETURN_IF_ERROR(st);
      return txn.Commit();
    });
  }

  Result<Approval> GetApproval(const std::string& id) override {
    return WithReader([&](Connection& c) -> Result<Approval> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(std::string("SELECT ") + kApprovalColumns +
                                                " FROM approvals WHERE id = ?1"));
      s.BindText(1, id);
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return Status(Reason::kNotFound, "no approval " + id);
      }
      return ReadApproval(s);
    });
  }

  Result<std::vector<Approval>> ListApprovals(const std::string& state) override {
    std::string sql = std::string("SELECT ") + kApprovalColumns + " FROM approvals" +
                      (state.empty() ? "" : " WHERE state = ?1") + " ORDER BY created_ms, id";
    return WithReader([&](Connection& c) -> Result<std::vector<Approval>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
      if (!state.empty()) {
        s.BindText(1, state);
      }
      std::vector<Approval> out;
      while (true) {
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          break;
        }
        out.push_back(ReadApproval(s));
      }
      return out;
    });
  }

  Status AnswerApproval(const std::string& id, bool approve, const std::string& by,
                        const std::string& note, int64_t now_ms) override {
    return WithWriter([&](Connection& c) -> Status {
      // The write lock is held from BEGIN IMMEDIATE on, so two processes answering at once are
      // serialised and the second sees the first's answer.
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      {
        CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT state FROM approvals WHERE id = ?1"));
        s.BindText(1, id);
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) {
          return Status(Reason::kNotFound, "no approval " + id);
        }
        std::string state = s.Text(0);
        if (state != "pending") {
          return Status(Reason::kAlreadyExists, "approval " + id + " is already " + state);
        }
      }
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt u, c.Prepare("UPDATE approvals SET state = ?2, answered_by = ?3, note = ?4, "
                            "answered_ms = ?5 WHERE id = ?1 AND state = 'pending'"));
      u.BindText(1, id)
          .BindText(2, approve ? "approved" : "denied")
          .BindText(3, by)
          .BindText(4, note)
          .Bind(5, now_ms);
      CUSTOS_RETURN_IF_ERROR(u.Run());
      return txn.Commit();
    });
  }

  // --- Mail ---

  Status SendMail(const MailMessage& m) override {
    return WithWriter([&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("INSERT INTO mail(run, from_agent, to_agent, handle, sent_ms) "
                            "VALUES(?1, ?2, ?3, ?4, ?5)"));
      s.BindText(1, m.run)
          .BindText(2, m.from_agent)
          .BindText(3, m.to_agent)
          .BindText(4, m.handle)
          .Bind(5, m.sent_ms);
      CUSTOS_RETURN_IF_ERROR(s.Run());
      return txn.Commit();
    });
  }

  Result<std::optional<MailMessage>> RecvMail(const std::string& run,
                                              const std::string& to_agent) override {
    return WithWriter([&](Connection& c) -> Result<std::optional<MailMessage>> {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      std::optional<MailMessage> out;
      {
        CUSTOS_ASSIGN_OR_RETURN(
            Stmt s, c.Prepare("DELETE FROM mail WHERE id = (SELECT id FROM mail WHERE run = ?1 "
                              "AND to_agent = ?2 ORDER BY id LIMIT 1) "
                              "RETURNING id, run, from_agent, to_agent, handle, sent_ms"));
        s.BindText(1, run).BindText(2, to_agent);
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (row) {
          MailMessage m;
          m.id = s.Int(0);
          m.run = s.Text(1);
          m.from_agent = s.Text(2);
          m.to_agent = s.Text(3);
          m.handle = s.Text(4);
          m.sent_ms = s.Int(5);
          out = std::move(m);
          // RETURNING yields its rows before the delete is final: step to completion.
          CUSTOS_ASSIGN_OR_RETURN(bool more, s.Step());
          (void)more;
        }
      }
      CUSTOS_RETURN_IF_ERROR(txn.Commit());
      return out;
    });
  }

  // --- Agents ---

  Status PutAgent(const AgentRecord& a) override {
    CUSTOS_ASSIGN_OR_RETURN(std::string syscalls, JsonText(a.syscalls, "agent syscalls"));
    CUSTOS_ASSIGN_OR_RETURN(std::string budget, JsonText(a.budget, "agent budget"));
    return WithWriter([&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("INSERT INTO agents(run, name, parent, syscalls, budget, created_ms) "
                            "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"));
      s.BindText(1, a.run)
          .BindText(2, a.name)
          .BindText(3, a.parent)
          .BindText(4, syscalls)
          .BindText(5, budget)
          .Bind(6, a.created_ms);
      Status st = s.Run();
      if (!st.ok() && IsUniqueViolation(s.last_code())) {
        return Status(Reason::kAlreadyExists,
                      "agent " + a.name + " already exists in run " + a.run);
      }
      CUSTOS_RETURN_IF_ERROR(st);
      return txn.Commit();
    });
  }

  Result<std::optional<AgentRecord>> GetAgent(const std::string& run,
                                              const std::string& name) override {
    return WithReader([&](Connection& c) -> Result<std::optional<AgentRecord>> {
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt s, c.Prepare("SELECT name, run, parent, syscalls, budget, created_ms FROM agents "
                            "WHERE run = ?1 AND name = ?2"));
      s.BindText(1, run).BindText(2, name);
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return std::optional<AgentRecord>();
      }
      AgentRecord a;
      a.name = s.Text(0);
      a.run = s.Text(1);
      a.parent = s.Text(2);
      CUSTOS_ASSIGN_OR_RETURN(a.syscalls, JsonColumn(s.Text(3), "agent syscalls"));
      CUSTOS_ASSIGN_OR_RETURN(a.budget, JsonColumn(s.Text(4), "agent budget"));
      a.created_ms = s.Int(5);
      return std::optional<AgentRecord>(std::move(a));
    });
  }

  // --- Token revocations and use caveats ---

  Status RevokeToken(const std::string& revocation_id, const std::string& note,
                     int64_t at_ms) override {
    return WithWriter([&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(Stmt s,
                              c.Prepare("INSERT OR IGNORE INTO revocations(id, note, revoked_ms) "
                                        "VALUES(?1, ?2, ?3)"));
      s.BindText(1, revocation_id).BindText(2, note).Bind(3, at_ms);
      CUSTOS_RETURN_IF_ERROR(s.Run());
      return txn.Commit();
    });
  }

  Result<std::optional<std::string>> FirstRevoked(std::span<const std::string> ids) override {
    if (ids.empty()) {
      return std::optional<std::string>();
    }
    // One statement for the whole chain: "?1, ?2, ..." (a token has at most 64 blocks).
    std::string sql = "SELECT id FROM revocations WHERE id IN (";
    for (size_t i = 0; i < ids.size(); ++i) {
      sql += (i == 0 ? "?" : ", ?") + std::to_string(i + 1);
    }
    sql += ") LIMIT 1";
    return WithReader([&](Connection& c) -> Result<std::optional<std::string>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare(sql));
      for (size_t i = 0; i < ids.size(); ++i) {
        s.BindText(static_cast<int>(i + 1), ids[i]);
      }
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return std::optional<std::string>();
      }
      return std::optional<std::string>(s.Text(0));
    });
  }

  Status CountTokenUse(const std::string& caveat_id, const TokenUseLimits& limits, int64_t now_ms,
                       bool dry_run) override {
    return WithWriter([&](Connection& c) -> Status {
      // BEGIN IMMEDIATE: the read, the check and the write are one step for every process.
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      int64_t uses = 0;
      int64_t window_start = now_ms;
      int64_t window_uses = 0;
      {
        CUSTOS_ASSIGN_OR_RETURN(
            Stmt s, c.Prepare("SELECT uses, window_start_ms, window_uses FROM token_uses "
                              "WHERE id = ?1"));
        s.BindText(1, caveat_id);
        CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (row) {
          uses = s.Int(0);
          window_start = s.Int(1);
          window_uses = s.Int(2);
        }
      }
      if (limits.max_uses > 0 && uses >= limits.max_uses) {
        return Status(
            Reason::kTokenUsesExhausted,
            "the token allows " + std::to_string(limits.max_uses) + " use(s); all are used");
      }
      if (limits.rate_count > 0 && limits.rate_window_ms > 0) {
        if (now_ms >= window_start + limits.rate_window_ms || now_ms < window_start) {
          window_start = now_ms;
          window_uses = 0;
        }
        if (window_uses >= limits.rate_count) {
          return Status(Reason::kTokenRateLimited,
                        "the token allows " + std::to_string(limits.rate_count) + " use(s) per " +
                            std::to_string(limits.rate_window_ms) + " ms; the window resets in " +
                            std::to_string(window_start + limits.rate_window_ms - now_ms) + " ms");
        }
      }
      if (dry_run) {
        return Status::Ok();
      }
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt u, c.Prepare("INSERT OR REPLACE INTO token_uses(id, uses, window_start_ms, "
                            "window_uses) VALUES(?1, ?2, ?3, ?4)"));
      u.BindText(1, caveat_id).Bind(2, uses + 1).Bind(3, window_start).Bind(4, window_uses + 1);
      CUSTOS_RETURN_IF_ERROR(u.Run());
      return txn.Commit();
    });
  }

  // --- Metadata ---

  Status PutMeta(const std::string& key, const std::string& value) override {
    return WithWriter([&](Connection& c) -> Status {
      CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
      CUSTOS_ASSIGN_OR_RETURN(Stmt s,
                              c.Prepare("INSERT OR REPLACE INTO kv(key, value) VALUES(?1, ?2)"));
      s.BindText(1, key).BindText(2, value);
      CUSTOS_RETURN_IF_ERROR(s.Run());
      return txn.Commit();
    });
  }

  Result<std::optional<std::string>> GetMeta(const std::string& key) override {
    return WithReader([&](Connection& c) -> Result<std::optional<std::string>> {
      CUSTOS_ASSIGN_OR_RETURN(Stmt s, c.Prepare("SELECT value FROM kv WHERE key = ?1"));
      s.BindText(1, key);
      CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) {
        return std::optional<std::string>();
      }
      return std::optional<std::string>(s.Text(0));
    });
  }

 private:
  SqliteStore(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader)
      : writer_(std::move(writer)), reader_(std::move(reader)) {}

  static Status CreateSchema(Connection& c, const std::string& path) {
    CUSTOS_ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(c));
    CUSTOS_RETURN_IF_ERROR(c.Exec(kSchema));
    CUSTOS_ASSIGN_OR_RETURN(Stmt get,
                            c.Prepare("SELECT value FROM meta WHERE key = 'schema_version'"));
    CUSTOS_ASSIGN_OR_RETURN(bool row, get.Step());
    if (row) {
      const int64_t version = get.Int(0);
      if (version != kSchemaVersion) {
        return Status(Reason::kStoreError,
                      "store " + path + " has schema version " + std::to_string(version) +
                          "; this build reads version " + std::to_string(kSchemaVersion));
      }
    } else {
      CUSTOS_ASSIGN_OR_RETURN(
          Stmt put, c.Prepare("INSERT INTO meta(key, value) VALUES('schema_version', ?1)"));
      put.Bind(1, kSchemaVersion);
      CUSTOS_RETURN_IF_ERROR(put.Run());
    }
    return txn.Commit();
  }

  // Switches the write connection's synchronous mode if needed (outside any transaction).
  // REQUIRES: write_mu_ held.
  Status SetSyncLocked(Sync sync) {
    if (sync == writer_sync_) {
      return Status::Ok();
    }
    CUSTOS_ASSIGN_OR_RETURN(Stmt s,
                            writer_->Prepare(sync == Sync::kFull ? "PRAGMA synchronous=FULL"
                                                                 : "PRAGMA synchronous=NORMAL"));
    CUSTOS_RETURN_IF_ERROR(s.Run());
    writer_sync_ = sync;
    return Status::Ok();
  }

  // REQUIRES: write_mu_ held, inside a write transaction.
  Result<int64_t> LastSeqLocked() {
    CUSTOS_ASSIGN_OR_RETURN(Stmt s, writer_->Prepare("SELECT coalesce(max(seq), 0) FROM log"));
    CUSTOS_ASSIGN_OR_RETURN(bool row, s.Step());
    return row ? s.Int(0) : int64_t{0};
  }

  // Runs `fn` on the write connection with synchronous=FULL: every write other than a kNone log
  // append or handle is durable when it returns.
  template <typename F>
  auto WithWriter(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    return WithWriter(Sync::kFull, std::forward<F>(fn));
  }
  // The same with the given sync; a kNone commit is made durable by the next kFull one (one fsync
  // flushes every frame of the WAL).
  template <typename F>
  auto WithWriter(Sync sync, F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    std::lock_guard lock(write_mu_);
    Status s = SetSyncLocked(sync);
    if (!s.ok()) {
      return s;
    }
    return fn(*writer_);
  }

  template <typename F>
  auto WithReader(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    if (reader_ == nullptr) {
      std::lock_guard lock(write_mu_);
      return fn(*writer_);
    }
    std::lock_guard lock(read_mu_);
    return fn(*reader_);
  }

  std::mutex write_mu_;
  const std::unique_ptr<Connection> writer_;  // guarded by write_mu_
  Sync writer_sync_ = Sync::kFull;            // guarded by write_mu_
  std::mutex read_mu_;
  const std::unique_ptr<Connection> reader_;  // guarded by read_mu_; null for ":memory:"
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path) {
  return SqliteStore::Open(path);
}

}  // namespace custos::store
