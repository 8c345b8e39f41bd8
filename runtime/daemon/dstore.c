/* dstore.c: the daemon's tables in the run store's SQLite file. */
#include "dstore.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"

struct lc_dstore {
  sqlite3 *db;
  pthread_mutex_t mu;
};

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
  sqlite3_close(d->db);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

int lc_dstore_exec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                   const char *spec, ...) {
  if (rows) *rows = NULL;
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
