#pragma once
// Thin RAII layer over one SQLite connection: a statement cache, a statement guard that always
// resets, and a write transaction that rolls back unless committed. Errors become kStoreError
// statuses carrying SQLite's message (SQLite messages never quote bound values, so no payload
// bytes reach them).
//
// Confined: a Connection and its statements are used by one thread at a time (the store holds a
// mutex around each connection).

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "custos/core/result.h"

namespace custos::store::internal {

class Connection;

// A cached prepared statement, reset and unbound when the guard goes out of scope so no read
// transaction is left open.
class Stmt {
 public:
  Stmt(Connection* conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& o) noexcept
      : conn_(o.conn_), stmt_(o.stmt_), bind_rc_(o.bind_rc_), last_rc_(o.last_rc_) {
    o.stmt_ = nullptr;
  }
  Stmt& operator=(Stmt&&) = delete;

  // Parameters are 1-based. Text and blobs are bound without copying: they must outlive Step().
  Stmt& Bind(int i, int64_t v);
  Stmt& BindText(int i, std::string_view v);
  Stmt& BindBlob(int i, std::string_view v);

  // Steps once: true if a row is available, false when done.
  Result<bool> Step();
  // Steps a statement that returns no rows.
  Status Run();
  // The extended result code of the last Step() (e.g. SQLITE_CONSTRAINT_PRIMARYKEY).
  int last_code() const { return last_rc_; }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  Connection* conn_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
  int last_rc_ = SQLITE_OK;
};

class Connection {
 public:
  // Opens `path` (created if missing) and applies the connection pragmas: busy_timeout 5000 ms,
  // journal_mode WAL (for files), synchronous FULL, foreign keys off.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without results.
  Status Exec(const char* sql);
  // Returns the cached statement for `sql`, preparing it on first use.
  Result<Stmt> Prepare(std::string_view sql);

  // kStoreError describing the connection's last error, prefixed with `what`.
  Status Error(std::string_view what, int rc) const;

  sqlite3* db() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// A write transaction (BEGIN IMMEDIATE: takes the write lock up front, waiting up to the busy
// timeout, so a read-then-write never fails with SQLITE_BUSY_SNAPSHOT). Rolls back on
// destruction unless Commit() succeeded.
class WriteTxn {
 public:
  static Result<WriteTxn> Begin(Connection& conn);
  ~WriteTxn();
  WriteTxn(WriteTxn&& o) noexcept : conn_(o.conn_), open_(o.open_) { o.open_ = false; }
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  WriteTxn& operator=(WriteTxn&&) = delete;

  Status Commit();

 private:
  explicit WriteTxn(Connection* conn) : conn_(conn), open_(true) {}
  Connection* conn_;
  bool open_;
};

}  // namespace custos::store::internal
