/* sql.h: the built-in SQL tool: one SQLite connection with its own thread,
 * one statement per query, parameters always bound (never spliced into the
 * SQL text), every query under a deadline and resource limits.
 *
 * Threads: each open connection owns one SQL thread, the only thread that
 * steps its statements (open and the final close run elsewhere, when no
 * query can run). Queries are jobs queued to that thread in order, so a
 * connection is never used by two threads at once and a slow query never
 * blocks the caller's event loop. lc_sql_submit queues a job and hands back
 * an eventfd that turns readable when it is done; lc_sql_query is the
 * blocking form (tests, scripts outside a task).
 *
 * Ownership: lc_sql_open returns a heap connection the caller owns until
 * lc_sql_close. A job is owned by its submitter until lc_sql_job_release;
 * the connection and its thread keep what they still use alive on their own
 * (reference counts under the connection's mutex), so close and release
 * never wait for a running query and never free memory the thread uses.
 * Query results are new cJSON trees owned by the caller (cJSON_Delete).
 *
 * Errors: functions return 0 or a negative code with text in the caller's
 * err buffer: LC_SQL_EREADONLY (write refused in read-only mode),
 * LC_SQL_EPARAMS (parameters do not match the statement), LC_SQL_ESQL
 * (SQLite refused or failed the statement), LC_SQL_EDENIED (a function,
 * table, pragma or statement the tool never allows), LC_SQL_ETIMEOUT (the
 * deadline passed), LC_SQL_ECANCELLED (cancelled or closed), LC_SQL_ELIMIT
 * (a length or temporary-storage limit), LC_EINVAL (bad arguments),
 * LC_ESTATE (closed), LC_ENOMEM. lc_sql_errcode maps a code to the stable
 * string scripts and the model see.
 *
 * Values: cJSON keeps numbers as doubles and prints them with 15
 * significant digits, so big integers are not exact as cJSON numbers. They
 * travel as cJSON Raw nodes holding the decimal literal, both ways: result
 * integers of 16 digits or more are Raw (printed JSON stays exact; check
 * cJSON_IsRaw), and a Raw decimal parameter binds as the exact int64. BLOBs,
 * and TEXT that is not valid UTF-8 or holds NUL bytes, come back as
 * {"$base64": "..."}; the same one-key object binds a BLOB parameter. Reals
 * with an integral value print as JSON integers. */
#ifndef LC_SQL_H
#define LC_SQL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "lc.h"

#define LC_SQL_EREADONLY (-20)
#define LC_SQL_EPARAMS (-21)
#define LC_SQL_ESQL (-22)
#define LC_SQL_EDENIED (-23)
#define LC_SQL_ETIMEOUT (-24)
#define LC_SQL_ECANCELLED (-25)
#define LC_SQL_ELIMIT (-26)

/* Open flags. Neither: read-write, the file must exist. */
#define LC_SQL_READONLY 0x1u /* SQLITE_OPEN_READONLY + per-statement checks */
#define LC_SQL_CREATE 0x2u   /* read-write, create the file if missing */

#define LC_SQL_DEFAULT_MAX_ROWS 1000
#define LC_SQL_DEFAULT_MAX_BYTES (1024 * 1024)
#define LC_SQL_DEFAULT_TIMEOUT_S 60.0
#define LC_SQL_BUSY_TIMEOUT_MS 5000
/* Largest string, BLOB or row (SQLITE_LIMIT_LENGTH): bounds what one value
 * (randomblob, zeroblob, printf, replace, group_concat...) can cost. */
#define LC_SQL_DEFAULT_MAX_LENGTH (4 * 1024 * 1024)
/* Bytes of temporary files (sorts, recursive CTE queues, temp tables) one
 * connection may hold at once. */
#define LC_SQL_DEFAULT_MAX_TEMP (64 * 1024 * 1024)
/* Bytes a read-write connection may grow its database file by
 * (PRAGMA max_page_count, which only trusted scripts may change). */
#define LC_SQL_DEFAULT_MAX_GROWTH (256 * 1024 * 1024)
/* Longest SQL text a query may have; trusted scripts are not limited. */
#define LC_SQL_MAX_SQL_LENGTH (64 * 1024)

struct lc_sql_db;
struct lc_sql_job;

struct lc_sql_limits {
  size_t max_length; /* 0 = LC_SQL_DEFAULT_MAX_LENGTH */
  size_t max_temp;   /* 0 = LC_SQL_DEFAULT_MAX_TEMP */
  size_t max_growth; /* 0 = LC_SQL_DEFAULT_MAX_GROWTH (read-write only) */
};

struct lc_sql_opts {
  size_t max_rows;  /* 0 = LC_SQL_DEFAULT_MAX_ROWS */
  size_t max_bytes; /* 0 = LC_SQL_DEFAULT_MAX_BYTES; approximate JSON size */
  double timeout;   /* seconds from submission; 0 = LC_SQL_DEFAULT_TIMEOUT_S */
};

/* Opens path into *out and starts its SQL thread. Every connection gets:
 * defensive mode, untrusted schema, no extension loading, the authorizer
 * (see docs/sql.md: denied functions, tables, pragmas, ATTACH/DETACH,
 * VACUUM), the limits above, a progress handler for the deadline and a
 * temp-storage cap. lim may be NULL. */
int lc_sql_open(const char *path, unsigned flags,
                const struct lc_sql_limits *lim, struct lc_sql_db **out,
                char *err, size_t errlen);
/* Ends the owner's use: queued jobs fail with LC_SQL_ECANCELLED, a running
 * one is interrupted; never waits for it. NULL is a no-op. */
void lc_sql_close(struct lc_sql_db *db);
int lc_sql_readonly(const struct lc_sql_db *db);

/* Runs exactly one statement and blocks until it is done. sql may end with
 * whitespace, ';' and comments; anything else after the first statement is
 * refused ("multiple statements are not allowed"). params: NULL, a JSON
 * array (positional ?, ?NNN) or an object (named :name, @name, $name; keys
 * with or without the prefix); the statement's parameters and the given
 * ones must match exactly. params is borrowed.
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

/* Queues the same query without waiting. Takes ownership of params (also
 * on failure); copies sql. On success *job is the caller's and *fd is an
 * eventfd owned by the job that turns readable once it is done; it stays
 * open until lc_sql_job_release (stop watching it first). */
int lc_sql_submit(struct lc_sql_db *db, const char *sql, size_t sqllen,
                  cJSON *params, const struct lc_sql_opts *opts,
                  struct lc_sql_job **job, int *fd, char *err, size_t errlen);
int lc_sql_job_done(struct lc_sql_job *job);
/* Once done: the query's return code; moves the result tree to *result
 * (the first call only) and copies the message to err. */
int lc_sql_job_finish(struct lc_sql_job *job, cJSON **result, char *err,
                      size_t errlen);
/* Stops the job: a queued one never runs, a running one is interrupted (it
 * finishes with LC_SQL_ECANCELLED soon after). Safe from the owner's thread
 * at any time before release. */
void lc_sql_job_cancel(struct lc_sql_job *job);
/* Cancels the job if it is not done and drops the caller's reference. */
void lc_sql_job_release(struct lc_sql_job *job);

/* Runs a trusted multi-statement script (schema + seed data), blocking.
 * Pragmas are allowed here; functions and tables the tool denies are not.
 * Refused with LC_SQL_EREADONLY on a read-only connection. Never give it
 * model output. */
int lc_sql_exec_script(struct lc_sql_db *db, const char *sql, char *err,
                       size_t errlen);

/* Stable code for a return value: "readonly", "bad_params", "sql_error",
 * "denied", "timeout", "cancelled", "limit", "closed", "no_memory",
 * "invalid". */
const char *lc_sql_errcode(int rc);

#endif
