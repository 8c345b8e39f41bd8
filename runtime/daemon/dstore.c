/* dstore.c: the daemon's tables in the run store's SQLite file, or in its
 * PostgreSQL database (a fleet of daemons, docs/serve.md).
 *
 * One SQL text serves both stores: callers write SQLite's ? placeholders
 * and pg_exec numbers them $1, $2 ... with typed parameters (s: text,
 * d: float8, i: int8, so that length(?) or seq > ? resolve). Where the
 * dialects differ, only here: the schema (REAL is float4 in PostgreSQL,
 * WITHOUT ROWID is SQLite's) and d_runs' rowid, a real column in
 * PostgreSQL so that the routes' "ORDER BY created DESC, rowid DESC" reads the
 * same on both. On SQLite, writes are group-committed (below); on
 * PostgreSQL each statement commits alone, on one connection. */
#include "dstore.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnum.h"
#include "lc.h"
#include "pq_dl.h"
#include "store_pg.h"

/* Writes are group-committed: a writing statement is prepared and bound
 * on the write connection, queued, and stepped by the committer thread
 * with every other write queued by then, in one transaction (one fsync of
 * the WAL for the group); the caller gets its result once that
 * transaction is committed. Reads run at once on a connection of their
 * own, so they see committed rows only and never wait for an fsync. */
union arg {
  char *s; /* copied, NULL binds NULL */
  double d;
  long i;
};

struct job {
  const char *sql, *spec; /* the caller's, alive while it waits */
  union arg *args;
  sqlite3_stmt *st;
  cJSON *rows; /* wanted: not NULL (an empty array to fill) */
  int rc, done;
  char err[256];
  struct job *next;
};

struct lc_dstore {
  sqlite3 *db;        /* writes: the committer's alone */
  sqlite3 *rdb;       /* reads */
  pthread_mutex_t wmu, rmu;
  pthread_mutex_t qmu; /* the queue, job.done */
  pthread_cond_t work, done;
  struct job *head, **tail;
  int stop;
  pthread_t committer;
  long groups, writes; /* stats (under qmu) */
  PGconn *pg;     /* instead of the above for a PostgreSQL URL */
  char *session;  /* SQL run on each new PostgreSQL connection, or NULL */
  /* Behind a proxy (lc_pgstore_proxied): the same settings as one
   * statement made local to the transaction (set_config(..., true)), run
   * before each statement in its transaction instead, NULL when none */
  char *local;
  int proxied;
  atomic_long unprepared; /* slot statements sent unprepared (proxied, refused) */
  char owner[160]; /* the lease owner fenced writes require ("": any) */
  pthread_mutex_t mu; /* the PostgreSQL connection */
  /* lc_dstore_exec_prepared's statements (under mu): each prepared on
   * the connection of generation gen (raised by every reset) at mono at */
  struct prep {
    char name[40];
    char *sql; /* numbered; NULL: none */
    double at;
    long gen, pgen;
  } prep[LC_DSTORE_SLOTS];
  long gen;
  long pgen; /* raised by lc_dstore_replan */
  unsigned long nprep; /* names made so far */
  unsigned tag;        /* in the names: this connection's, at random */
  int noprep; /* the server refused a prepared statement: none from then on */
};

static double mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

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
    /* the fleet's queue is the runs' lease rows (the run store's schema
     * 5, store_pg.c): each run's is made with it, by the store's trigger */
    "DO $$ BEGIN IF to_regprocedure('leases_enqueue()') IS NOT NULL AND NOT EXISTS ("
    "  SELECT 1 FROM pg_trigger WHERE tgname = 'd_runs_enqueue') THEN"
    "  CREATE TRIGGER d_runs_enqueue AFTER INSERT ON d_runs FOR EACH ROW"
    "   EXECUTE FUNCTION leases_enqueue();"
    "  CREATE TRIGGER d_runs_deleted AFTER UPDATE OF deleted ON d_runs FOR EACH ROW"
    "   WHEN (NEW.deleted <> 0 AND OLD.deleted = 0) EXECUTE FUNCTION leases_enqueue();"
    " END IF; END $$;"
    "CREATE TABLE IF NOT EXISTS d_items("
    "  tenant TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,"
    "  PRIMARY KEY(tenant, ns, key));"
    "CREATE TABLE IF NOT EXISTS d_crons("
    "  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, thread_id TEXT, agent TEXT NOT NULL,"
    "  schedule TEXT NOT NULL, payload TEXT NOT NULL DEFAULT '{}',"
    "  metadata TEXT NOT NULL DEFAULT '{}', end_time DOUBLE PRECISION,"
    "  next_run_at DOUBLE PRECISION, last_run_id TEXT, created DOUBLE PRECISION NOT NULL,"
    "  updated DOUBLE PRECISION NOT NULL);"
    "CREATE INDEX IF NOT EXISTS d_crons_next ON d_crons(next_run_at);"
    "CREATE INDEX IF NOT EXISTS d_crons_tenant ON d_crons(tenant, created);"
    "CREATE TABLE IF NOT EXISTS d_inbox("
    "  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL,"
    "  answer TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);";

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
  d->gen++; /* its prepared statements are gone */
  if (PQstatus(d->pg) != CONNECTION_OK) {
    pg_err(d->pg, NULL, err, errlen);
    return LC_EIO;
  }
  PQsetNoticeProcessor(d->pg, no_notice, NULL);
  if (d->session && !d->local) PQclear(PQexec(d->pg, d->session));
  return 0;
}

int lc_dstore_session(struct lc_dstore *d, const char *sql, const char *local) {
  if (!d->pg) return 0;
  pthread_mutex_lock(&d->mu);
  free(d->session);
  free(d->local);
  d->session = strdup(sql);
  d->local = NULL;
  int ok = d->session != NULL;
  /* Behind a proxy a SET would stay on the server connection for the
   * next client (a transaction pooler's: synchronous_commit = off on
   * someone's journal commits): local to each statement's transaction
   * there, and nothing prepared (a prepared statement is session state
   * too; under a shared name another client could run ours). */
  if (ok && d->proxied) {
    ok = (d->local = strdup(local)) != NULL;
  } else if (ok) {
    PGresult *r = PQexec(d->pg, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
  }
  pthread_mutex_unlock(&d->mu);
  return ok ? 0 : LC_EIO;
}

int lc_dstore_proxied(struct lc_dstore *d) { return d->pg && d->proxied; }

long lc_dstore_unprepared(struct lc_dstore *d) { return d->pg ? atomic_load(&d->unprepared) : 0; }

static int res_ok(const PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* q with d->local before it, in one transaction and one round trip (a
 * pipeline to one sync: the server commits at the sync, so both
 * statements are one implicit transaction, which a transaction pooler
 * keeps on one server connection). Without pipeline mode, BEGIN and
 * COMMIT around them. The statement's result, or the first error. */
static PGresult *local_run(struct lc_dstore *d, const char *q, int np, const Oid *types,
                           const char *const *vals) {
  PGconn *c = d->pg;
  if (!lc_pq_has_pipeline()) {
    PGresult *r = PQexec(c, "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) return r;
    PQclear(r);
    r = PQexec(c, d->local);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      PQclear(r);
      r = PQexecParams(c, q, np, types, vals, NULL, NULL, 0);
    }
    int done = res_ok(r);
    PGresult *e = PQexec(c, done ? "COMMIT" : "ROLLBACK");
    if (done) {
      if (PQresultStatus(e) == PGRES_COMMAND_OK) {
        PQclear(e);
        return r;
      }
      PQclear(r);
      return e; /* the commit failed: so did the statement */
    }
    PQclear(e);
    return r;
  }
  if (!PQenterPipelineMode(c)) return NULL;
  int sent = PQsendQueryParams(c, d->local, 0, NULL, NULL, NULL, NULL, 0) &&
             PQsendQueryParams(c, q, np, types, vals, NULL, NULL, 0) && PQpipelineSync(c);
  PGresult *out = NULL, *r;
  /* each statement's result then NULL (after an error, PIPELINE_ABORTED
   * for the next), then the sync's; a lost connection: NULL early */
  for (int i = 0; sent && i < 2; i++) {
    if (!(r = PQgetResult(c))) {
      sent = 0;
      break;
    }
    if (!out && (!res_ok(r) || i == 1)) out = r; /* the first error, or the statement's */
    else PQclear(r);
    while ((r = PQgetResult(c))) PQclear(r);
  }
  if (sent) {
    r = PQgetResult(c);
    sent = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
  }
  if (!PQexitPipelineMode(c) || !sent) {
    /* answers left unread: the session cannot go on in step (made again
     * by pg_run, which sees it bad) */
    if (PQstatus(c) == CONNECTION_OK) {
      PQreset(c);
      d->gen++;
    }
    if (out && res_ok(out)) {
      PQclear(out); /* committed or not: unknown, as a lost commit's answer */
      out = NULL;
    }
  }
  return out;
}

/* 32 random bits (the clock and the address space's as a fallback). */
static unsigned pg_tag(void) {
  unsigned t = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(&t, sizeof t, 1, f) != 1) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t = (unsigned)ts.tv_nsec ^ (unsigned)ts.tv_sec ^ (unsigned)(uintptr_t)&ts;
  }
  if (f) fclose(f);
  return t;
}

static int pg_open(const char *url, const char *name, struct lc_dstore *d, char *err,
                   size_t errlen) {
  d->pg = lc_pg_connect_as(url, name);
  if (!d->pg || PQstatus(d->pg) != CONNECTION_OK) {
    if (d->pg) pg_err(d->pg, NULL, err, errlen);
    else snprintf(err, errlen, "store: %s", PQerrorMessage(NULL)); /* no libpq: says so */
    PQfinish(d->pg);
    return LC_EIO;
  }
  PQsetNoticeProcessor(d->pg, no_notice, NULL);
  /* Behind a proxy nothing is prepared: a prepared statement is session
   * state, which a transaction pooler's server connection keeps for its
   * next client (that client could even run ours under its name). */
  int px = lc_pgstore_proxied(d->pg);
  if (px < 0) {
    pg_err(d->pg, NULL, err, errlen);
    PQfinish(d->pg);
    return LC_EIO;
  }
  d->proxied = d->noprep = px == 1;
  d->tag = pg_tag();
  /* Tables there already: no DDL (CREATE INDEX IF NOT EXISTS still locks
   * its table, behind the other daemons' writes). */
  PGresult *r = PQexec(d->pg, "SELECT to_regclass('d_items') IS NOT NULL AND "
                              "to_regclass('d_inbox') IS NOT NULL"); /* d_inbox came last */
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

/* Runs q (already numbered) with np typed parameters; slot >= 0: as
 * lc_dstore_exec_prepared's statement slot. */
static int pg_run(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *q,
                  int np, const Oid *types, const char *const *vals, int slot, double replan_s);

/* The va_list's parameters as text, typed as spec says; then pg_run.
 * extra (may be 0): more text parameters after them. */
static int pg_exec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                   const char *spec, va_list ap, int extra, const char *const *xv, int slot,
                   double replan_s) {
  enum { MAXP = 32 };
  int np = spec ? (int)strlen(spec) : 0;
  if (np + extra > MAXP) {
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
  for (int k = 0; k < extra; k++) {
    vals[np + k] = xv[k];
    types[np + k] = 25;
  }
  char *q = numbered(sql);
  if (!q) return LC_ENOMEM;
  int rc = pg_run(d, rows, err, errlen, q, np + extra, types, vals, slot, replan_s);
  free(q);
  return rc;
}

/* Runs q as slot's prepared statement (under d->mu): prepared first when
 * it is not on this connection, is another text, is replan_s old, or was
 * prepared before the last lc_dstore_replan. */
static PGresult *prep_run(struct lc_dstore *d, int slot, double replan_s, const char *q, int np,
                          const Oid *types, const char *const *vals) {
  struct prep *p = &d->prep[slot];
  double now = mono_s();
  int have = p->sql && p->gen == d->gen;
  if (!have || strcmp(p->sql, q) || now - p->at >= replan_s || p->pgen != d->pgen) {
    if (have) { /* the old plan goes (a failure: the next prepare says) */
      char dq[64];
      snprintf(dq, sizeof dq, "DEALLOCATE %s", p->name);
      PQclear(PQexec(d->pg, dq));
    }
    free(p->sql);
    p->sql = NULL;
    /* a name no other process gives: behind a proxy this connection's
     * server session may be another client's, which must never run ours */
    snprintf(p->name, sizeof p->name, "lc_p%08x_%lu", d->tag, ++d->nprep);
    PGresult *r = PQprepare(d->pg, p->name, q, np, types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) return r;
    PQclear(r);
    p->sql = strdup(q); /* out of memory: prepared again next time */
    p->at = now;
    p->gen = d->gen;
    p->pgen = d->pgen;
  }
  return PQexecPrepared(d->pg, p->name, np, vals, NULL, NULL, 0);
}

static int pg_run(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *q,
                  int np, const Oid *types, const char *const *vals, int slot, double replan_s) {
  pthread_mutex_lock(&d->mu);
  int rc = pg_conn(d, err, errlen);
  PGresult *r = NULL;
  for (int attempt = 0; !rc && attempt < 2; attempt++) {
    PQclear(r);
    int prepared = slot >= 0 && slot < LC_DSTORE_SLOTS && !d->noprep;
    if (!prepared && slot >= 0) atomic_fetch_add(&d->unprepared, 1);
    r = prepared  ? prep_run(d, slot, replan_s, q, np, types, vals)
        : d->local ? local_run(d, q, np, types, vals)
                   : PQexecParams(d->pg, q, np, types, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) break;
    /* A connection the server ended: once more on a new one (a statement
     * that fails so was not committed: autocommit). */
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* A prepared statement the server does not have (26000) or has
     * already (42P05): a transaction-pooling proxy sends each statement
     * to any of its connections. Unprepared from then on. */
    if (prepared && state && (!strcmp(state, "26000") || !strcmp(state, "42P05"))) {
      d->noprep = 1;
      attempt--; /* not a failure of the statement: it did not run */
      continue;
    }
    /* the session ended (08: connection exceptions, 57P0x: terminated),
     * whether or not libpq has noticed yet */
    int gone = PQstatus(d->pg) != CONNECTION_OK ||
               (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P0", 4)));
    if (attempt == 0 && gone) {
      if (PQstatus(d->pg) == CONNECTION_OK) {
        PQreset(d->pg);
        d->gen++;
      }
      if (pg_conn(d, err, errlen) == 0) continue;
    }
    /* A deadlock or serialization failure aborted the statement whole
     * (a claim and a fenced write waiting on each other's lease rows):
     * once more. */
    if (attempt == 0 && state && (!strcmp(state, "40P01") || !strcmp(state, "40001"))) continue;
    rc = state && !strncmp(state, "23", 2) ? LC_ESTATE : LC_EIO;
    pg_err(d->pg, r, err, errlen);
  }
  pthread_mutex_unlock(&d->mu);
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
    "  created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY(tenant, ns, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS d_crons("
    "  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, thread_id TEXT, agent TEXT NOT NULL,"
    "  schedule TEXT NOT NULL, payload TEXT NOT NULL DEFAULT '{}',"
    "  metadata TEXT NOT NULL DEFAULT '{}', end_time REAL, next_run_at REAL, last_run_id TEXT,"
    "  created REAL NOT NULL, updated REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS d_crons_next ON d_crons(next_run_at);"
    "CREATE INDEX IF NOT EXISTS d_crons_tenant ON d_crons(tenant, created);"
    "CREATE TABLE IF NOT EXISTS d_inbox("
    "  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL,"
    "  answer TEXT NOT NULL, created REAL NOT NULL);";

/* Steps st to the end: rows (when not NULL) get the result rows. */
static int step_all(sqlite3 *db, sqlite3_stmt *st, cJSON *rows, char *err, size_t errlen) {
  for (;;) {
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) return 0;
    if (s != SQLITE_ROW) {
      snprintf(err, errlen, "store: %s", sqlite3_errmsg(db));
      return (s == SQLITE_CONSTRAINT) ? LC_ESTATE : LC_EIO;
    }
    if (!rows) continue;
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
    cJSON_AddItemToArray(rows, o);
  }
}

/* The committer: takes every queued write, runs them in one transaction,
 * commits, and wakes their callers. A statement that fails on a
 * constraint is undone alone (SQLite's statement rollback) and the others
 * commit; a failure that ends the transaction fails the whole group. */
static void *committer(void *ud) {
  struct lc_dstore *d = ud;
  pthread_mutex_lock(&d->qmu);
  for (;;) {
    while (!d->head && !d->stop) pthread_cond_wait(&d->work, &d->qmu);
    if (!d->head) break;
    struct job *g = d->head;
    d->head = NULL;
    d->tail = &d->head;
    pthread_mutex_unlock(&d->qmu);
    pthread_mutex_lock(&d->wmu);
    char err[256] = "";
    int grc = 0;
    if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
      snprintf(err, sizeof err, "store: %s", sqlite3_errmsg(d->db));
      grc = LC_EIO;
    }
    long n = 0;
    for (struct job *j = g; j; j = j->next, n++) {
      if (!grc && sqlite3_prepare_v2(d->db, j->sql, -1, &j->st, NULL) != SQLITE_OK) {
        j->rc = LC_EIO;
        snprintf(j->err, sizeof j->err, "store: %s", sqlite3_errmsg(d->db));
        continue;
      }
      if (!grc) {
        for (int k = 0; j->spec && j->spec[k]; k++) {
          if (j->spec[k] == 's') {
            if (j->args[k].s) sqlite3_bind_text(j->st, k + 1, j->args[k].s, -1, SQLITE_STATIC);
            else sqlite3_bind_null(j->st, k + 1);
          } else if (j->spec[k] == 'd') {
            sqlite3_bind_double(j->st, k + 1, j->args[k].d);
          } else {
            sqlite3_bind_int64(j->st, k + 1, j->args[k].i);
          }
        }
        j->rc = step_all(d->db, j->st, j->rows, j->err, sizeof j->err);
        /* Not just this statement undone: the transaction is gone. */
        if (j->rc && sqlite3_get_autocommit(d->db)) {
          grc = LC_EIO;
          snprintf(err, sizeof err, "%s", j->err);
        }
      }
      sqlite3_finalize(j->st);
      j->st = NULL;
    }
    if (!grc && sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
      snprintf(err, sizeof err, "store: %s", sqlite3_errmsg(d->db));
      grc = LC_EIO;
    }
    if (grc && !sqlite3_get_autocommit(d->db))
      sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&d->wmu);
    pthread_mutex_lock(&d->qmu);
    for (struct job *j = g; j; j = j->next) {
      if (grc) {
        j->rc = grc;
        snprintf(j->err, sizeof j->err, "%s", err);
      }
      j->done = 1;
    }
    d->groups++;
    d->writes += n;
    pthread_cond_broadcast(&d->done);
  }
  pthread_mutex_unlock(&d->qmu);
  return NULL;
}

/* Busy: again every 0.2 ms for up to 10 s (sqlite3_busy_timeout's backoff
 * sleeps up to 100 ms a try, long after the run store's writer let go). */
static int short_busy(void *ud, int n) {
  (void)ud;
  if (n >= 50000) return 0;
  struct timespec ts = {0, 200000L};
  nanosleep(&ts, NULL);
  return 1;
}

static int open_conn(const char *path, const char *prag, sqlite3 **db, char *err, size_t errlen) {
  if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, *db ? sqlite3_errmsg(*db) : "?");
    sqlite3_close(*db);
    *db = NULL;
    return LC_EIO;
  }
  sqlite3_busy_handler(*db, short_busy, NULL);
  char *m = NULL;
  if (sqlite3_exec(*db, prag, NULL, NULL, &m) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, m ? m : "pragma");
    sqlite3_free(m);
    sqlite3_close(*db);
    *db = NULL;
    return LC_EIO;
  }
  return 0;
}

int lc_dstore_open(const char *path, const char *name, int sync_full, struct lc_dstore **out,
                   char *err, size_t errlen) {
  struct lc_dstore *d = calloc(1, sizeof *d);
  if (!d) return LC_ENOMEM;
  if (lc_store_is_pg(path)) {
    int rc = pg_open(path, name, d, err, errlen);
    if (rc) {
      free(d);
      return rc;
    }
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return 0;
  }
  const char *prag = sync_full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";
  char *m = NULL;
  if (open_conn(path, prag, &d->db, err, errlen)) {
    free(d);
    return LC_EIO;
  }
  if (sqlite3_exec(d->db, schema, NULL, NULL, &m) != SQLITE_OK ||
      open_conn(path, prag, &d->rdb, err, errlen)) {
    if (m) snprintf(err, errlen, "%s: %s", path, m);
    sqlite3_free(m);
    sqlite3_close(d->db);
    free(d);
    return LC_EIO;
  }
  pthread_mutex_init(&d->wmu, NULL);
  pthread_mutex_init(&d->rmu, NULL);
  pthread_mutex_init(&d->qmu, NULL);
  pthread_cond_init(&d->work, NULL);
  pthread_cond_init(&d->done, NULL);
  d->tail = &d->head;
  if (pthread_create(&d->committer, NULL, committer, d)) {
    snprintf(err, errlen, "cannot start the store's committer");
    sqlite3_close(d->rdb);
    sqlite3_close(d->db);
    free(d);
    return LC_ENOMEM;
  }
  *out = d;
  return 0;
}

void lc_dstore_close(struct lc_dstore *d) {
  if (!d) return;
  if (d->pg) {
    PQfinish(d->pg);
    for (int k = 0; k < LC_DSTORE_SLOTS; k++) free(d->prep[k].sql);
    free(d->session);
    free(d->local);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return;
  }
  pthread_mutex_lock(&d->qmu);
  d->stop = 1; /* what is queued still commits */
  pthread_cond_signal(&d->work);
  pthread_mutex_unlock(&d->qmu);
  pthread_join(d->committer, NULL);
  sqlite3_close(d->rdb);
  sqlite3_close(d->db);
  pthread_mutex_destroy(&d->wmu);
  pthread_mutex_destroy(&d->rmu);
  pthread_mutex_destroy(&d->qmu);
  pthread_cond_destroy(&d->work);
  pthread_cond_destroy(&d->done);
  free(d);
}

static void bind_all(sqlite3_stmt *st, const char *spec, va_list ap) {
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
}

/* lc_dstore_exec with its parameters in ap (ended here). */
static int vexec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                 const char *spec, va_list ap) {
  if (rows) *rows = NULL;
  if (d->pg) {
    int rc = pg_exec(d, rows, err, errlen, sql, spec, ap, 0, NULL, -1, 0);
    va_end(ap);
    return rc;
  }
  /* A read runs now, on the read connection. */
  pthread_mutex_lock(&d->rmu);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(d->rdb, sql, -1, &st, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(d->rdb));
    pthread_mutex_unlock(&d->rmu);
    va_end(ap);
    return LC_EIO;
  }
  if (sqlite3_stmt_readonly(st)) {
    bind_all(st, spec, ap);
    va_end(ap);
    cJSON *arr = rows ? cJSON_CreateArray() : NULL;
    int rc = step_all(d->rdb, st, arr, err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->rmu);
    if (rc) cJSON_Delete(arr);
    else if (rows) *rows = arr;
    return rc;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->rmu);
  /* A write joins the next group: its parameters copied, prepared by the
   * committer (the write connection is never waited for here). */
  struct job j;
  memset(&j, 0, sizeof j);
  j.sql = sql;
  j.spec = spec;
  size_t na = spec ? strlen(spec) : 0;
  union arg argv[16];
  j.args = na <= 16 ? argv : calloc(na, sizeof *j.args);
  if (!j.args) {
    va_end(ap);
    return LC_ENOMEM;
  }
  int oom = 0;
  for (size_t k = 0; k < na; k++) {
    if (spec[k] == 's') {
      const char *v = va_arg(ap, const char *);
      j.args[k].s = v ? strdup(v) : NULL;
      oom |= v && !j.args[k].s;
    } else if (spec[k] == 'd') {
      j.args[k].d = va_arg(ap, double);
    } else {
      j.args[k].i = va_arg(ap, long);
    }
  }
  va_end(ap);
  if (rows) j.rows = cJSON_CreateArray();
  if (oom) {
    j.rc = LC_ENOMEM;
    j.done = 1;
    snprintf(j.err, sizeof j.err, "out of memory");
  }
  pthread_mutex_lock(&d->qmu);
  if (!j.done) {
    *d->tail = &j;
    d->tail = &j.next;
    pthread_cond_signal(&d->work);
  }
  while (!j.done) pthread_cond_wait(&d->done, &d->qmu);
  pthread_mutex_unlock(&d->qmu);
  for (size_t k = 0; k < na; k++)
    if (spec[k] == 's') free(j.args[k].s);
  if (j.args != argv) free(j.args);
  if (j.rc) {
    snprintf(err, errlen, "%s", j.err);
    cJSON_Delete(j.rows);
  } else if (rows) {
    *rows = j.rows;
  }
  return j.rc;
}

int lc_dstore_exec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                   const char *spec, ...) {
  va_list ap;
  va_start(ap, spec);
  return vexec(d, rows, err, errlen, sql, spec, ap);
}

/* The fence: the run's lease row, locked FOR SHARE so that a claim (which
 * updates it) waits for this statement's commit, and a claim committed
 * first is seen (the lock reads the newest version of the row). The
 * owner is compared with IS NOT DISTINCT FROM, which no index serves, so
 * that the row is found by its key: with "owner = $n" the planner read it
 * through the live leases' index (owner IS NOT NULL) when its statistics
 * said few leases had an owner, every fence reading all of the daemon's
 * leases (pg-bench: fenced writes 5x slower, docs/BENCHMARKS.md). */
#define FENCE_PG                                                                          \
  "EXISTS(SELECT 1 FROM leases WHERE run_id = $%d AND epoch = $%d::bigint AND ($%d::text IS " \
  "NULL OR owner IS NOT DISTINCT FROM $%d) FOR SHARE)"

void lc_dstore_fence_owner(struct lc_dstore *d, const char *owner) {
  pthread_mutex_lock(&d->mu);
  snprintf(d->owner, sizeof d->owner, "%s", owner ? owner : "");
  pthread_mutex_unlock(&d->mu);
}

int lc_dstore_exec_fenced(struct lc_dstore *d, const char *run_id, long epoch, cJSON **rows,
                          char *err, size_t errlen, const char *sql, const char *spec, ...) {
  if (rows) *rows = NULL;
  const char *at = strstr(sql, LC_DSTORE_FENCE);
  int np = spec ? (int)strlen(spec) : 0;
  int fenced = d->pg && epoch > 0;
  char cond[200];
  if (fenced) snprintf(cond, sizeof cond, FENCE_PG, np + 1, np + 2, np + 3, np + 3);
  else snprintf(cond, sizeof cond, "1 = 1");
  size_t n = strlen(sql) + strlen(cond) + 1;
  char *q = at ? malloc(n) : NULL;
  if (!q) {
    snprintf(err, errlen, at ? "out of memory" : "store: a fenced statement without its fence");
    return at ? LC_ENOMEM : LC_EINVAL;
  }
  snprintf(q, n, "%.*s%s%s", (int)(at - sql), sql, cond, at + strlen(LC_DSTORE_FENCE));
  va_list ap;
  va_start(ap, spec);
  int rc;
  if (fenced) {
    char ep[24];
    snprintf(ep, sizeof ep, "%ld", epoch);
    char ob[160];
    pthread_mutex_lock(&d->mu);
    memcpy(ob, d->owner, sizeof ob);
    pthread_mutex_unlock(&d->mu);
    const char *xv[] = {run_id, ep, ob[0] ? ob : NULL};
    rc = pg_exec(d, rows, err, errlen, q, spec, ap, 3, xv, -1, 0);
    va_end(ap);
  } else {
    rc = vexec(d, rows, err, errlen, q, spec, ap); /* ends ap */
  }
  free(q);
  return rc;
}

int lc_dstore_exec_prepared(struct lc_dstore *d, int slot, double replan_s, cJSON **rows,
                            char *err, size_t errlen, const char *sql, const char *spec, ...) {
  va_list ap;
  va_start(ap, spec);
  if (!d->pg) return vexec(d, rows, err, errlen, sql, spec, ap); /* ends ap */
  if (rows) *rows = NULL;
  int rc = pg_exec(d, rows, err, errlen, sql, spec, ap, 0, NULL, slot, replan_s);
  va_end(ap);
  return rc;
}

void lc_dstore_replan(struct lc_dstore *d) {
  if (!d->pg) return;
  pthread_mutex_lock(&d->mu);
  d->pgen++;
  pthread_mutex_unlock(&d->mu);
}

void lc_dstore_prepared_name(struct lc_dstore *d, int slot, char *name, size_t n) {
  if (n) *name = '\0';
  if (!d->pg || slot < 0 || slot >= LC_DSTORE_SLOTS) return;
  pthread_mutex_lock(&d->mu);
  if (d->prep[slot].sql && d->prep[slot].gen == d->gen) snprintf(name, n, "%s", d->prep[slot].name);
  pthread_mutex_unlock(&d->mu);
}

int lc_dstore_ping(struct lc_dstore *d) {
  char err[256];
  cJSON *r = NULL;
  int rc = lc_dstore_exec(d, &r, err, sizeof err, "SELECT count(*) AS n FROM d_threads", "");
  cJSON_Delete(r);
  return rc;
}

void lc_dstore_stats(struct lc_dstore *d, long *groups, long *writes) {
  if (d->pg) { /* no groups: each statement commits alone */
    *groups = *writes = 0;
    return;
  }
  pthread_mutex_lock(&d->qmu);
  *groups = d->groups;
  *writes = d->writes;
  pthread_mutex_unlock(&d->qmu);
}
