/* dstore.c: the daemon's tables in the run store's SQLite file, or in its
 * PostgreSQL database (a fleet of daemons, docs/serve.md).
 *
 * One SQL text serves both stores: callers write SQLite's ? placeholders
 * and pg_exec numbers them $1, $2 ... with typed parameters (s: text,
 * d: float8, i: int8, so that length(?) or seq > ? resolve). Where the
 * dialects differ, only here: the schema (REAL is float4 in PostgreSQL,
 * WITHOUT ROWID is SQLite's) and d_runs' rowid, a real column in
 * PostgreSQL so that api.c's "ORDER BY created DESC, rowid DESC" reads the
 * same on both. */
#include "dstore.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnum.h"
#include "lc.h"
#include "store_pg.h"

struct lc_dstore {
  sqlite3 *db;
  PGconn *pg; /* instead of db for a PostgreSQL URL */
  char *url;
  char *session; /* SQL run on each new PostgreSQL connection, or NULL */
  pthread_mutex_t mu;
};

/* PostgreSQL: the same tables; the columns daemon.c adds with ALTER TABLE
 * to older SQLite files are here from the start (its ALTERs then fail
 * harmlessly, as they do on a SQLite file that has them). */
static const char pg_schema[] =
    "SELECT pg_advisory_xact_lock(108117097099117);" /* one daemon creates them */
    "CREATE TABLE IF NOT EXISTS d_threads("
    "  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,"
    "  updated DOUBLE PRECISION NOT NULL, metadata TEXT NOT NULL DEFAULT '{}', vals TEXT);"
    "CREATE TABLE IF NOT EXISTS d_runs("
    "  id TEXT PRIMARY KEY, thread_id TEXT, tenant TEXT NOT NULL, agent TEXT NOT NULL,"
    "  input TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}', idem TEXT,"
    "  multitask TEXT, stream_mode TEXT, created DOUBLE PRECISION NOT NULL,"
    "  started INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,"
    "  pstatus TEXT NOT NULL DEFAULT 'pending', perror TEXT, ctx TEXT,"
    "  asked INTEGER NOT NULL DEFAULT 0, rowid BIGSERIAL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS d_runs_idem ON d_runs(tenant, idem) WHERE idem IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS d_runs_thread ON d_runs(thread_id, created);"
    "CREATE TABLE IF NOT EXISTS d_items("
    "  tenant TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,"
    "  PRIMARY KEY(tenant, ns, key));";

static void no_notice(void *ud, const char *m) {
  (void)ud;
  (void)m;
}

static void pg_err(PGconn *c, PGresult *r, char *err, size_t errlen) {
  const char *m = r ? PQresultErrorMessage(r) : NULL;
  if (!m || !*m) m = PQerrorMessage(c);
  snprintf(err, errlen, "store: %s", m && *m ? m : "error");
  size_t l = strlen(err);
  while (l && err[l - 1] == '\n') err[--l] = '\0';
}

/* The connection, made again when the server ended it. */
static int pg_conn(struct lc_dstore *d, char *err, size_t errlen) {
  if (PQstatus(d->pg) == CONNECTION_OK) return 0;
  PQreset(d->pg);
  if (PQstatus(d->pg) != CONNECTION_OK) {
    pg_err(d->pg, NULL, err, errlen);
    return LC_EIO;
  }
  PQsetNoticeProcessor(d->pg, no_notice, NULL);
  if (d->session) PQclear(PQexec(d->pg, d->session));
  return 0;
}

int lc_dstore_session(struct lc_dstore *d, const char *sql) {
  if (!d->pg) return 0;
  pthread_mutex_lock(&d->mu);
  free(d->session);
  d->session = strdup(sql);
  PGresult *r = PQexec(d->pg, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  pthread_mutex_unlock(&d->mu);
  return d->session && ok ? 0 : LC_EIO;
}

static int pg_open(const char *url, struct lc_dstore *d, char *err, size_t errlen) {
  d->pg = PQconnectdb(url);
  if (!d->pg || PQstatus(d->pg) != CONNECTION_OK) {
    if (d->pg) pg_err(d->pg, NULL, err, errlen);
    PQfinish(d->pg);
    return LC_EIO;
  }
  PQsetNoticeProcessor(d->pg, no_notice, NULL);
  /* Tables there already: no DDL (CREATE INDEX IF NOT EXISTS still locks
   * its table, behind the other daemons' writes). */
  PGresult *r = PQexec(d->pg, "SELECT to_regclass('d_items') IS NOT NULL");
  int have = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
             PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (have) return 0;
  r = PQexec(d->pg, "BEGIN");
  PQclear(r);
  r = PQexec(d->pg, pg_schema);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) pg_err(d->pg, r, err, errlen);
  PQclear(r);
  r = PQexec(d->pg, ok ? "COMMIT" : "ROLLBACK");
  PQclear(r);
  if (!ok) {
    PQfinish(d->pg);
    return LC_EIO;
  }
  return 0;
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS d_threads("
    "  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,"
    "  metadata TEXT NOT NULL DEFAULT '{}', vals TEXT);"
    "CREATE TABLE IF NOT EXISTS d_runs("
    "  id TEXT PRIMARY KEY, thread_id TEXT, tenant TEXT NOT NULL, agent TEXT NOT NULL,"
    "  input TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}', idem TEXT,"
    "  multitask TEXT, stream_mode TEXT, created REAL NOT NULL, started INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS d_runs_idem ON d_runs(tenant, idem) WHERE idem IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS d_runs_thread ON d_runs(thread_id, created);"
    "CREATE TABLE IF NOT EXISTS d_items("
    "  tenant TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY(tenant, ns, key)) WITHOUT ROWID;";

int lc_dstore_open(const char *path, int sync_full, struct lc_dstore **out, char *err,
                   size_t errlen) {
  struct lc_dstore *d = calloc(1, sizeof *d);
  if (!d) return LC_ENOMEM;
  if (lc_store_is_pg(path)) {
    int rc = pg_open(path, d, err, errlen);
    if (rc) {
      free(d);
      return rc;
    }
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return 0;
  }
  if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, d->db ? sqlite3_errmsg(d->db) : "?");
    sqlite3_close(d->db);
    free(d);
    return LC_EIO;
  }
  sqlite3_busy_timeout(d->db, 10000);
  char *m = NULL;
  const char *prag = sync_full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";
  if (sqlite3_exec(d->db, prag, NULL, NULL, &m) != SQLITE_OK ||
      sqlite3_exec(d->db, schema, NULL, NULL, &m) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, m ? m : "schema");
    sqlite3_free(m);
    sqlite3_close(d->db);
    free(d);
    return LC_EIO;
  }
  pthread_mutex_init(&d->mu, NULL);
  *out = d;
  return 0;
}

void lc_dstore_close(struct lc_dstore *d) {
  if (!d) return;
  if (d->pg) PQfinish(d->pg);
  free(d->session);
  sqlite3_close(d->db);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

/* SQLite's ? as $1, $2 ... (outside quotes). NULL: no memory. */
static char *numbered(const char *sql) {
  size_t n = strlen(sql), k = 0;
  char *o = malloc(n * 4 + 1);
  if (!o) return NULL;
  int nth = 0;
  char quote = 0;
  for (const char *p = sql; *p; p++) {
    if (quote) {
      if (*p == quote) quote = 0;
    } else if (*p == '\'' || *p == '"') {
      quote = *p;
    } else if (*p == '?') {
      k += (size_t)sprintf(o + k, "$%d", ++nth);
      continue;
    }
    o[k++] = *p;
  }
  o[k] = '\0';
  return o;
}

static int pg_exec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                   const char *spec, va_list ap) {
  enum { MAXP = 32 };
  int np = spec ? (int)strlen(spec) : 0;
  if (np > MAXP) {
    snprintf(err, errlen, "store: too many parameters");
    return LC_EINVAL;
  }
  const char *vals[MAXP];
  Oid types[MAXP];
  char nums[MAXP][40];
  for (int k = 0; k < np; k++) {
    if (spec[k] == 's') {
      vals[k] = va_arg(ap, const char *);
      types[k] = 25; /* text */
    } else if (spec[k] == 'd') {
      lc_cnum_fmt(nums[k], sizeof nums[k], "%.17g", va_arg(ap, double));
      vals[k] = nums[k];
      types[k] = 701; /* float8 */
    } else {
      snprintf(nums[k], sizeof nums[k], "%ld", va_arg(ap, long));
      vals[k] = nums[k];
      types[k] = 20; /* int8 */
    }
  }
  char *q = numbered(sql);
  if (!q) return LC_ENOMEM;
  pthread_mutex_lock(&d->mu);
  int rc = pg_conn(d, err, errlen);
  PGresult *r = NULL;
  for (int attempt = 0; !rc && attempt < 2; attempt++) {
    PQclear(r);
    r = PQexecParams(d->pg, q, np, types, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) break;
    /* A connection the server ended: once more on a new one (a statement
     * that fails so was not committed: autocommit). */
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* the session ended (08: connection exceptions, 57P0x: terminated),
     * whether or not libpq has noticed yet */
    int gone = PQstatus(d->pg) != CONNECTION_OK ||
               (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P0", 4)));
    if (attempt == 0 && gone) {
      if (PQstatus(d->pg) == CONNECTION_OK) PQreset(d->pg);
      if (pg_conn(d, err, errlen) == 0) continue;
    }
    rc = state && !strncmp(state, "23", 2) ? LC_ESTATE : LC_EIO;
    pg_err(d->pg, r, err, errlen);
  }
  pthread_mutex_unlock(&d->mu);
  free(q);
  if (rc) {
    PQclear(r);
    return rc;
  }
  if (rows) {
    cJSON *arr = cJSON_CreateArray();
    int nr = PQntuples(r), nf = PQnfields(r);
    for (int i = 0; i < nr; i++) {
      cJSON *o = cJSON_CreateObject();
      for (int c = 0; c < nf; c++) {
        const char *name = PQfname(r, c);
        if (PQgetisnull(r, i, c)) {
          cJSON_AddNullToObject(o, name);
          continue;
        }
        const char *v = PQgetvalue(r, i, c);
        switch (PQftype(r, c)) {
          case 20: case 21: case 23: case 700: case 701: case 1700: /* integers, floats */
            cJSON_AddNumberToObject(o, name, lc_cnum_strtod(v, NULL));
            break;
          case 16: cJSON_AddNumberToObject(o, name, v[0] == 't'); break; /* bool */
          default: cJSON_AddStringToObject(o, name, v);
        }
      }
      cJSON_AddItemToArray(arr, o);
    }
    *rows = arr;
  }
  PQclear(r);
  return 0;
}

int lc_dstore_exec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                   const char *spec, ...) {
  if (rows) *rows = NULL;
  if (d->pg) {
    va_list ap;
    va_start(ap, spec);
    int rc = pg_exec(d, rows, err, errlen, sql, spec, ap);
    va_end(ap);
    return rc;
  }
  pthread_mutex_lock(&d->mu);
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(d->db));
    pthread_mutex_unlock(&d->mu);
    return LC_EIO;
  }
  va_list ap;
  va_start(ap, spec);
  for (int k = 0; spec && spec[k]; k++) {
    if (spec[k] == 's') {
      const char *s = va_arg(ap, const char *);
      if (s) sqlite3_bind_text(st, k + 1, s, -1, SQLITE_TRANSIENT);
      else sqlite3_bind_null(st, k + 1);
    } else if (spec[k] == 'd') {
      sqlite3_bind_double(st, k + 1, va_arg(ap, double));
    } else {
      sqlite3_bind_int64(st, k + 1, va_arg(ap, long));
    }
  }
  va_end(ap);
  cJSON *arr = rows ? cJSON_CreateArray() : NULL;
  for (;;) {
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) break;
    if (s != SQLITE_ROW) {
      rc = (s == SQLITE_CONSTRAINT) ? LC_ESTATE : LC_EIO;
      snprintf(err, errlen, "store: %s", sqlite3_errmsg(d->db));
      break;
    }
    if (!arr) continue;
    cJSON *o = cJSON_CreateObject();
    int n = sqlite3_column_count(st);
    for (int c = 0; c < n; c++) {
      const char *name = sqlite3_column_name(st, c);
      switch (sqlite3_column_type(st, c)) {
        case SQLITE_NULL: cJSON_AddNullToObject(o, name); break;
        case SQLITE_INTEGER:
        case SQLITE_FLOAT: cJSON_AddNumberToObject(o, name, sqlite3_column_double(st, c)); break;
        default: cJSON_AddStringToObject(o, name, (const char *)sqlite3_column_text(st, c));
      }
    }
    cJSON_AddItemToArray(arr, o);
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  if (rc) cJSON_Delete(arr);
  else if (rows) *rows = arr;
  return rc;
}

int lc_dstore_ping(struct lc_dstore *d) {
  char err[256];
  cJSON *r = NULL;
  int rc = lc_dstore_exec(d, &r, err, sizeof err, "SELECT count(*) AS n FROM d_threads", "");
  cJSON_Delete(r);
  return rc;
}
