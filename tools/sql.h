/* sql.h: the built-in SQL tool: one SQLite connection, one statement per
 * query, parameters always bound (never spliced into the SQL text).
 *
 * Ownership: struct lc_sql_db is caller-owned (embedded, or inside a Lua
 * userdata); lc_sql_open fills it and lc_sql_close releases the connection.
 * lc_sql_close is idempotent and safe on a zeroed or half-opened struct.
 * Do not move an open struct: the read-only authorizer holds its address.
 * Query results are new cJSON trees owned by the caller (cJSON_Delete).
 *
 * Errors: functions return 0 or a negative code with text in the caller's
 * err buffer: LC_SQL_EREADONLY (write refused in read-only mode),
 * LC_SQL_EPARAMS (parameters do not match the statement), LC_SQL_ESQL
 * (SQLite refused or failed the statement), LC_EINVAL (bad arguments),
 * LC_ESTATE (closed), LC_ENOMEM. lc_sql_errcode maps a code to the stable
 * string scripts and the model see ("readonly", "bad_params", "sql_error").
 *
 * Values: cJSON keeps numbers as doubles and prints them with 15
 * significant digits, so big integers are not exact as cJSON numbers. They
 * travel as cJSON Raw nodes holding the decimal literal, both ways: result
 * integers of 16 digits or more are Raw (printed JSON stays exact; check
 * cJSON_IsRaw), and a Raw decimal parameter binds as the exact int64. BLOBs, and TEXT that is not valid UTF-8 or holds
 * NUL bytes, come back as {"$base64": "..."}; the same one-key object binds a
 * BLOB parameter. Reals with an integral value print as JSON integers. */
#ifndef LC_SQL_H
#define LC_SQL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "lc.h"

#define LC_SQL_EREADONLY (-20)
#define LC_SQL_EPARAMS (-21)
#define LC_SQL_ESQL (-22)

/* Open flags. Neither: read-write, the file must exist. */
#define LC_SQL_READONLY 0x1u /* SQLITE_OPEN_READONLY + per-statement checks */
#define LC_SQL_CREATE 0x2u   /* read-write, create the file if missing */

#define LC_SQL_DEFAULT_MAX_ROWS 1000
#define LC_SQL_DEFAULT_MAX_BYTES (1024 * 1024)
#define LC_SQL_BUSY_TIMEOUT_MS 5000

struct sqlite3;

struct lc_sql_db {
  struct sqlite3 *db; /* NULL when closed */
  unsigned flags;
  /* Set by the read-only authorizer when it denies an action, so that the
   * error names what was refused instead of SQLite's "not authorized". */
  char denied[96];
};

struct lc_sql_opts {
  size_t max_rows;  /* 0 = LC_SQL_DEFAULT_MAX_ROWS */
  size_t max_bytes; /* 0 = LC_SQL_DEFAULT_MAX_BYTES; approximate JSON size */
};

/* Opens path into *db (which must not hold an open connection). Sets a busy
 * timeout, turns foreign keys and defensive mode on, and in read-only mode
 * installs an authorizer that denies ATTACH, DETACH and PRAGMA writes. */
int lc_sql_open(struct lc_sql_db *db, const char *path, unsigned flags,
                char *err, size_t errlen);
void lc_sql_close(struct lc_sql_db *db);

/* Runs exactly one statement. sql may end with whitespace, ';' and comments;
 * anything else after the first statement is refused ("multiple statements
 * are not allowed"). params: NULL, a JSON array (positional ?, ?NNN) or an
 * object (named :name, @name, $name; keys with or without the prefix); the
 * statement's parameters and the given ones must match exactly. params is
 * borrowed.
 *
 * On success *result is a new tree:
 *   {columns:[...], rows:[{col: val}...], row_count, truncated,
 *    changes, last_insert_id}
 * Rows stop at opts->max_rows or when the approximate JSON size would pass
 * opts->max_bytes; truncated is then true (never a silent cut). Duplicate
 * column names get a suffix (id, id_2) so every row key is unique.
 * changes counts rows this statement changed (0 for reads and DDL);
 * last_insert_id is the connection's sqlite3_last_insert_rowid. */
int lc_sql_query(struct lc_sql_db *db, const char *sql, const cJSON *params,
                 const struct lc_sql_opts *opts, cJSON **result, char *err,
                 size_t errlen);

/* Runs a trusted multi-statement script (schema + seed data). Refused with
 * LC_SQL_EREADONLY on a read-only connection. Never give it model output. */
int lc_sql_exec_script(struct lc_sql_db *db, const char *sql, char *err,
                       size_t errlen);

/* Stable code for a return value: "readonly", "bad_params", "sql_error",
 * "closed", "no_memory", "invalid". */
const char *lc_sql_errcode(int rc);

#endif
