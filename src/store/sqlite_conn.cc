#include <utility>

#include "store/sqlite_conn_internal.h"

namespace custos::store::internal {
namespace {

constexpr int kBusyTimeoutMs = 5000;

}  // namespace

Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Stmt& Stmt::Bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
  return *this;
}

Stmt& Stmt::BindText(int i, std::string_view v) {
  int rc = sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
  return *this;
}

Stmt& Stmt::BindBlob(int i, std::string_view v) {
  // A zero-length blob with a null pointer would bind NULL; keep it an empty blob.
  static const char kEmpty = 0;
  int rc = sqlite3_bind_blob64(stmt_, i, v.empty() ? &kEmpty : v.data(), v.size(), SQLITE_STATIC);
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
  return *this;
}

Result<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) {
    last_rc_ = bind_rc_;
    return conn_->Error("binding a parameter", bind_rc_);
  }
  last_rc_ = sqlite3_step(stmt_);
  if (last_rc_ == SQLITE_ROW) {
    return true;
  }
  if (last_rc_ == SQLITE_DONE) {
    return false;
  }
  last_rc_ = sqlite3_extended_errcode(conn_->db());
  return conn_->Error("executing a statement", last_rc_);
}

Status Stmt::Run() {
  CUSTOS_ASSIGN_OR_RETURN(bool row, Step());
  (void)row;
  return Status::Ok();
}

std::string Stmt::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path) {
  sqlite3* db = nullptr;
  // NOMUTEX: the store serialises access to each connection itself.
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status(Reason::kStoreError, "cannot open store " + path + ": " + msg);
  }
  auto conn = std::unique_ptr<Connection>(new Connection(db));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  if (path != ":memory:") {
    // journal_mode returns a row with the resulting mode; insist on WAL.
    CUSTOS_ASSIGN_OR_RETURN(Stmt wal, conn->Prepare("PRAGMA journal_mode=WAL"));
    CUSTOS_ASSIGN_OR_RETURN(bool row, wal.Step());
    if (!row || wal.Text(0) != "wal") {
      return Status(Reason::kStoreError, "cannot put store " + path + " in WAL mode");
    }
  }
  CUSTOS_RETURN_IF_ERROR(conn->Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"));
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) {
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db_);
}

Status Connection::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status(Reason::kStoreError, "store statement failed: " + msg);
  }
  return Status::Ok();
}

Result<Stmt> Connection::Prepare(std::string_view sql) {
  auto it = cache_.find(std::string(sql));
  if (it != cache_.end()) {
    return Stmt(this, it->second);
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Error("preparing a statement", rc);
  }
  cache_.emplace(std::string(sql), stmt);
  return Stmt(this, stmt);
}

Status Connection::Error(std::string_view what, int rc) const {
  std::string msg = "store error ";
  msg += what;
  msg += ": ";
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    msg += "the database stayed locked for longer than the busy timeout (" +
           std::to_string(kBusyTimeoutMs) + " ms): ";
  }
  msg += sqlite3_errmsg(db_);
  return Status(Reason::kStoreError, std::move(msg));
}

Result<WriteTxn> WriteTxn::Begin(Connection& conn) {
  CUSTOS_ASSIGN_OR_RETURN(Stmt begin, conn.Prepare("BEGIN IMMEDIATE"));
  CUSTOS_RETURN_IF_ERROR(begin.Run());
  return WriteTxn(&conn);
}

WriteTxn::~WriteTxn() {
  if (open_ && !sqlite3_get_autocommit(conn_->db())) {
    // Nothing useful can be done with a failed rollback: the connection reports the next error.
    conn_->Exec("ROLLBACK").IgnoreError();
  }
}

Status WriteTxn::Commit() {
  CUSTOS_ASSIGN_OR_RETURN(Stmt commit, conn_->Prepare("COMMIT"));
  Status s = commit.Run();
  if (s.ok()) {
    open_ = false;
  }
  return s;
}

}  // namespace custos::store::internal
