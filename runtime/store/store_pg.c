/* store_pg.c: the run store on PostgreSQL through libpq (store_pg.h).
 *
 * The same rows as the SQLite store (store.c), so that `luact runs`,
 * `luact journal` and the daemon read either alike; the schema is applied
 * by numbered migrations under an advisory lock (several daemons may start
 * at once). The writer thread and its group commit follow store.c's; the
 * two are kept apart on purpose (store.c's SQLite path is tuned on its
 * own). What both do alike above the SQL (checksums, row decoding, the
 * journal's integrity checks) is store_rows.c's. Every libpq call here
 * blocks: none is made on an event loop. */
#include "store_pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cnum.h"
#include "lc.h"
#include "pq_dl.h"
#include "store_pending.h"
#include "store_rows.h"

/* Migrations: migration[i] takes the schema from version i to i + 1. A
 * database at a version above PG_SCHEMA_VERSION is refused. */
static const char *const migration[] = {
    /* 1: the runs and their journals (store.h), as in SQLite. */
    "CREATE TABLE IF NOT EXISTS runs("
    "  id TEXT PRIMARY KEY, script TEXT, script_sha256 TEXT, args TEXT, cwd TEXT,"
    "  status TEXT NOT NULL, result TEXT, error TEXT, question TEXT,"
    "  created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,"
    "  pid BIGINT NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS runs_updated ON runs(updated);"
    "CREATE TABLE IF NOT EXISTS journal("
    "  run_id TEXT NOT NULL, seq BIGINT NOT NULL, line TEXT NOT NULL, crc BIGINT NOT NULL,"
    "  PRIMARY KEY(run_id, seq));",
    /* 2: leases for a fleet of daemons (docs/serve.md): a run's owner,
     * its epoch (raised by every claim) and the lease's expiry (seconds
     * since the epoch, the database's clock). A row of its own, not
     * columns of runs: a run is claimed before its row exists. */
    "CREATE TABLE IF NOT EXISTS leases("
    "  run_id TEXT PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0,"
    "  lease_until DOUBLE PRECISION);"
    "CREATE INDEX IF NOT EXISTS leases_owner ON leases(owner);"
    /* which lease wrote each line (0: none): an audit of the fencing */
    "ALTER TABLE journal ADD COLUMN IF NOT EXISTS epoch BIGINT NOT NULL DEFAULT 0;",
    /* 3: the fleet's queue (fleet.c's claim): the daemon's runs that may
     * still be claimed, oldest first, so that a claim reads a few index
     * entries instead of joining every run ever made. A run that ended
     * leaves it (fleet.c marks d_runs.pstatus 'ended'; its row in runs
     * decides what it is). d_runs is the daemon's table (dstore.c): when
     * it is not there yet, dstore.c makes the index with it. */
    "DO $$ BEGIN IF to_regclass('d_runs') IS NOT NULL THEN"
    "  UPDATE d_runs d SET pstatus = 'ended' FROM runs r WHERE r.id = d.id"
    "   AND d.pstatus = 'pending' AND r.status IN ('finished', 'failed', 'cancelled');"
    "  CREATE INDEX IF NOT EXISTS d_runs_queued ON d_runs(created)"
    "   WHERE pstatus = 'pending' AND deleted = 0;"
    " END IF; END $$;",
    /* 4: a claimed run leaves the queue index (fleet.c: d_runs.pstatus
     * 'claimed' until its lease is handed back), and so does a run that
     * waits for an answer ('waiting' until answered), so that a claim no
     * longer reads past every run the fleet is executing or waiting on; a
     * claim finds the runs whose lease ran out through the expiry of the
     * live leases instead. */
    "CREATE INDEX IF NOT EXISTS leases_expiry ON leases(lease_until) WHERE owner IS NOT NULL;"
    "DO $$ BEGIN IF to_regclass('d_runs') IS NOT NULL THEN"
    "  UPDATE d_runs d SET pstatus = 'claimed' FROM leases l WHERE l.run_id = d.id"
    "   AND d.pstatus = 'pending' AND l.owner IS NOT NULL AND l.lease_until IS NOT NULL;"
    "  UPDATE d_runs d SET pstatus = 'waiting' FROM runs r WHERE r.id = d.id"
    "   AND d.pstatus = 'pending' AND r.status = 'waiting_input';"
    " END IF; END $$;",
    /* 5: the queue lives in the lease row (qstate: 'pending' queued,
     * 'claimed' under a lease, 'waiting' for an answer, 'ended'; created:
     * the queue's order), so that a claim writes one row (the lease) and
     * its hand-back one, as a queue without leases writes its job's row
     * (pg-boss: fetch, complete). Every queued run has its lease row from
     * the start: leases_enqueue, a trigger on the daemon's d_runs, makes
     * it with the run (the daemon attaches it: dstore.c; here too for a
     * database made by an older daemon). The queue index moves to leases;
     * d_runs.pstatus keeps what a client sees of a run that never
     * started (pending, failed, cancelled). */
    "ALTER TABLE leases ADD COLUMN IF NOT EXISTS qstate TEXT,"
    "  ADD COLUMN IF NOT EXISTS created DOUBLE PRECISION;"
    "CREATE INDEX IF NOT EXISTS leases_queued ON leases(created) WHERE qstate = 'pending';"
    "CREATE OR REPLACE FUNCTION leases_enqueue() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    "  IF TG_OP = 'INSERT' THEN"
    "   INSERT INTO leases(run_id, qstate, created) VALUES(NEW.id, CASE WHEN NEW.deleted <> 0"
    "    THEN 'ended' WHEN NEW.pstatus IN ('pending', 'claimed') THEN 'pending' WHEN"
    "    NEW.pstatus = 'waiting' THEN 'waiting' ELSE 'ended' END,"
    "    NEW.created) ON CONFLICT(run_id) DO UPDATE SET qstate = EXCLUDED.qstate,"
    "    created = EXCLUDED.created;"
    "  ELSE" /* deleted: out of the queue */
    "   UPDATE leases SET qstate = 'ended' WHERE run_id = NEW.id AND qstate IN ('pending', 'waiting');"
    "  END IF;"
    "  RETURN NULL;"
    " END $f$;"
    "DO $$ BEGIN IF to_regclass('d_runs') IS NOT NULL THEN"
    /* (a lease the cancel of a queued run took: out of the queue) */
    "  INSERT INTO leases(run_id, qstate, created) SELECT d.id, CASE WHEN EXISTS (SELECT 1"
    "   FROM leases c WHERE c.run_id = d.id AND c.owner = 'cancelled') THEN 'ended'"
    "   ELSE d.pstatus END, d.created FROM d_runs d"
    "   WHERE d.pstatus IN ('pending', 'claimed', 'waiting') AND d.deleted = 0"
    "   ON CONFLICT(run_id) DO UPDATE SET qstate = EXCLUDED.qstate, created = EXCLUDED.created;"
    "  UPDATE d_runs SET pstatus = 'pending' WHERE pstatus IN ('claimed', 'waiting');"
    "  DROP INDEX IF EXISTS d_runs_queued;"
    "  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'd_runs_enqueue') THEN"
    "   CREATE TRIGGER d_runs_enqueue AFTER INSERT ON d_runs FOR EACH ROW"
    "    EXECUTE FUNCTION leases_enqueue();"
    "   CREATE TRIGGER d_runs_deleted AFTER UPDATE OF deleted ON d_runs FOR EACH ROW"
    "    WHEN (NEW.deleted <> 0 AND OLD.deleted = 0) EXECUTE FUNCTION leases_enqueue();"
    "  END IF;"
    " END IF; END $$;",
};
#define PG_SCHEMA_VERSION ((int)(sizeof migration / sizeof migration[0]))
/* The server ends a session idle this long (ms) inside a transaction
 * (conn_ok says why). */
#define IDLE_TX_MS "2000"
/* pg_advisory_xact_lock key for migrations ("luact" in ASCII). */
#define MIGRATE_LOCK "108117097099116"

/* A list of run ids: the fenced runs of a group whose lease another
 * daemon took (their lines dropped, their clients told EPERM), and the
 * store's dead runs. */
struct lost {
  char run_id[65];
  struct lost *next;
};

struct fence {
  char run_id[65];
  long epoch;
  struct fence *next;
};

struct lc_pgstore {
  char *url;
  pthread_mutex_t openmu;
  int opened, open_rc;
  char open_err[1024];
  PGconn *db; /* the callers' connection */
  pthread_mutex_t dbmu;
  PGconn *wdb; /* the writer's */
  pthread_t writer;
  int writer_on;
  pthread_mutex_t mu;
  pthread_cond_t cv, idle;
  struct lc_store_pending *head, **tail;
  int stop, busy, failed;
  long lines, commits;
  atomic_long trips; /* the writer's round trips */
  pthread_mutex_t fmu;
  struct fence *fences;
  /* the lease owner every fence also requires ("": epoch only) */
  char owner[160];
  /* runs a failed group held: nothing more of them is written (a run
   * whose creation failed must not add lines to another run's journal) */
  struct lost *dead;
  /* the URL is a proxy's (lc_pgstore_proxied): no session settings, each
   * transaction sets its own (begin_tx) */
  int proxied;
};

int lc_store_is_pg(const char *path) {
  return path && (!strncmp(path, "postgres://", 11) || !strncmp(path, "postgresql://", 13));
}

/* The URL without its password, for messages (the store's path). */
void lc_pgstore_redact(const char *url, char *out, size_t n) {
  const char *at = strchr(url, '@');
  const char *scheme = strstr(url, "://");
  const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
  if (at && colon && colon < at)
    snprintf(out, n, "%.*s:***%s", (int)(colon - url), url, at);
  else
    snprintf(out, n, "%s", url);
}

/* ---- queries ---- */

static int is_conn_lost(PGconn *c) { return PQstatus(c) != CONNECTION_OK; }

/* The statement failed because the session ended or is ending (08:
 * connection exceptions; 57P01-3: the server or an administrator ends
 * it), whatever libpq has noticed yet. */
static int ended(PGconn *c, PGresult *r) {
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  return is_conn_lost(c) || (st && (!strncmp(st, "08", 2) || !strncmp(st, "57P0", 4)));
}

static void set_err(PGconn *c, PGresult *r, char *err, size_t errlen, const char *what) {
  if (!err || !errlen) return;
  const char *m = r ? PQresultErrorMessage(r) : NULL;
  if (!m || !*m) m = PQerrorMessage(c);
  snprintf(err, errlen, "store: %s: %s", what, m && *m ? m : "error");
  size_t l = strlen(err);
  while (l && (err[l - 1] == '\n' || err[l - 1] == ' ')) err[--l] = '\0';
}

static void no_notice(void *ud, const char *m) {
  (void)ud;
  (void)m;
}

/* LUACT_PG_POOLER (docs/serve.md): 1 "transaction" (a proxy, whatever it
 * looks like), 0 "session" or "none" (as a direct connection), -1 unset
 * or anything else (lc_pgstore_proxied finds out). */
static int pooler_said(void) {
  const char *how = getenv("LUACT_PG_POOLER");
  if (how && !strcmp(how, "transaction")) return 1;
  if (how && (!strcmp(how, "session") || !strcmp(how, "none"))) return 0;
  return -1;
}

struct pg_conn *lc_pg_connect_as(const char *url, const char *name) {
  const char *const keys[] = {"dbname", "fallback_application_name", NULL};
  const char *const values[] = {url, name, NULL};
  return PQconnectdbParams(keys, values, 1); /* dbname: the whole URL */
}

/* A connection that is there: made the first time, reset after it was
 * lost (a server restart, pg_terminate_backend). */
static int conn_ok(PGconn **c, const char *url, char *err, size_t errlen) {
  int fresh = !*c || is_conn_lost(*c);
  if (!*c) *c = lc_pg_connect_as(url, "luact store");
  else if (is_conn_lost(*c)) PQreset(*c);
  /* The server's notices ("relation exists, skipping") are not errors.
   * A transaction left open by a process that stalled (SIGSTOP) holds its
   * lease row locked FOR SHARE, and the daemon that takes the run over
   * would wait for it for as long as the stall lasts: the server ends such
   * a session after 2 s idle inside a transaction (ours send BEGIN to
   * COMMIT without pause). */
  if (fresh && *c && !is_conn_lost(*c)) {
    PQsetNoticeProcessor(*c, no_notice, NULL);
    /* In the session only on a direct connection: behind a proxy the
     * server connection is shared, and each transaction of ours sets it
     * locally instead (begin_tx). One statement either way. */
    char pid[16];
    int said = pooler_said(); /* the user's word first (lc_pgstore_proxied) */
    snprintf(pid, sizeof pid, "%d", said < 0 ? PQbackendPID(*c) : 0); /* 0: as direct */
    const char *v[] = {pid};
    if (said != 1)
      PQclear(PQexecParams(*c,
                           "SELECT CASE WHEN pg_backend_pid() = $1::int OR $1::int = 0 THEN "
                           "set_config('idle_in_transaction_session_timeout', '" IDLE_TX_MS
                           "', false) END",
                           1, NULL, v, NULL, NULL, 0));
  }
  if (!*c) {
    if (!lc_pq_available()) {
      snprintf(err, errlen, "store: libpq could not be loaded (a PostgreSQL store needs libpq5)");
      return LC_EIO;
    }
    snprintf(err, errlen, "store: out of memory");
    return LC_ENOMEM;
  }
  if (is_conn_lost(*c)) {
    char u[512];
    lc_pgstore_redact(url, u, sizeof u);
    snprintf(err, errlen, "store %s: cannot connect: %s", u, PQerrorMessage(*c));
    size_t l = strlen(err);
    while (l && err[l - 1] == '\n') err[--l] = '\0';
    return LC_EIO;
  }
  return 0;
}

/* Set by q() on each failure: was it the session ending? (the writer
 * then sends its group again on a new connection) */
static _Thread_local int last_ended;
/* ... or was it a deadlock or serialization failure, which rolled the
 * transaction back whole: sent again, it may well pass. A claim (which
 * upserts several lease rows in one statement) and a group commit (which
 * locks its runs' lease rows FOR SHARE, to check their epochs) can wait
 * on each other when a lease ran out while its owner was still writing;
 * the server then aborts one of the two. */
static _Thread_local int last_again;
/* Statements sent by this thread (the writer's round trips without
 * pipeline mode). */
static _Thread_local long sent_here;

static int again_state(const char *state) {
  return state && (!strcmp(state, "40P01") || !strcmp(state, "40001"));
}

/* Runs sql with n text parameters (NULL binds NULL). Returns the result
 * (the caller's PQclear) when it succeeded, else NULL with err set and
 * *code the error (LC_ESTATE for a unique violation, else LC_EIO). When
 * retry is set and the connection was lost, it is made again and the
 * statement sent once more (only for statements that are safe twice). */
static PGresult *q(PGconn **c, const char *url, int retry, const char *sql, int n,
                   const char *const *v, int *code, char *err, size_t errlen) {
  last_ended = last_again = 0;
  for (int attempt = 0;; attempt++) {
    int rc = conn_ok(c, url, err, errlen);
    if (rc) {
      *code = rc;
      last_ended = 1;
      return NULL;
    }
    PGresult *r = PQexecParams(*c, sql, n, NULL, v, NULL, NULL, 0);
    sent_here++;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (retry && attempt < 3 && ended(*c, r)) {
      if (!is_conn_lost(*c)) PQreset(*c);
      PQclear(r);
      continue;
    }
    /* One statement on its own (retry is only given outside a
     * transaction): aborted whole, so sent again. */
    if (retry && attempt < 3 && again_state(state)) {
      PQclear(r);
      continue;
    }
    set_err(*c, r, err, errlen, "query");
    *code = state && !strcmp(state, "23505") ? LC_ESTATE : LC_EIO;
    last_ended = ended(*c, r);
    last_again = again_state(state);
    PQclear(r);
    return NULL;
  }
}

/* A statement whose result is not needed; 0 or the error. */
static int qx(PGconn **c, const char *url, int retry, const char *sql, int n,
              const char *const *v, char *err, size_t errlen) {
  int code = 0;
  PGresult *r = q(c, url, retry, sql, n, v, &code, err, errlen);
  PQclear(r);
  return r ? 0 : code;
}

int lc_pgstore_proxied(struct pg_conn *c) {
  /* Said by the user: a session pooler keeps a client's session as its
   * own (LISTEN and prepared statements work there), and a proxy that
   * passes the server's key on is not seen below. */
  int said = pooler_said();
  if (said >= 0) return said;
  /* A proxy answers the connection's start with a backend key of its own
   * (it routes cancels itself), so the server process that runs our
   * statements is not the one libpq was told of. */
  PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
  int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
               ? atoi(PQgetvalue(r, 0, 0)) != PQbackendPID(c)
               : -1;
  PQclear(r);
  return rc;
}

/* BEGIN on *c; behind a proxy, with the settings a direct connection has
 * in its session (conn_ok) made local to the transaction: there the
 * server connection goes to other clients after the COMMIT. */
static int begin_tx(struct lc_pgstore *s, PGconn **c, int retry, char *err, size_t errlen) {
  int rc = qx(c, s->url, retry, "BEGIN", 0, NULL, err, errlen);
  if (!rc && s->proxied) {
    rc = qx(c, s->url, 0, "SET LOCAL idle_in_transaction_session_timeout = " IDLE_TX_MS, 0, NULL,
            err, errlen);
    if (rc && !is_conn_lost(*c)) { /* no transaction left open: as a failed BEGIN */
      int was_ended = last_ended, was_again = last_again;
      char e2[64];
      qx(c, s->url, 0, "ROLLBACK", 0, NULL, e2, sizeof e2);
      last_ended = was_ended;
      last_again = was_again;
    }
  }
  return rc;
}

/* ---- opening and the schema ---- */

static int migrate(struct lc_pgstore *s, char *err, size_t errlen) {
  int rc = begin_tx(s, &s->db, 1, err, errlen);
  if (rc) return rc;
  /* One daemon migrates at a time; the others then see the new version. */
  rc = qx(&s->db, s->url, 0, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", 0, NULL, err,
          errlen);
  if (!rc)
    rc = qx(&s->db, s->url, 0,
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)", 0, NULL,
            err, errlen);
  int v = 0, code = 0;
  if (!rc) {
    PGresult *r = q(&s->db, s->url, 0, "SELECT value FROM meta WHERE key='schema_version'", 0,
                    NULL, &code, err, errlen);
    if (!r) rc = code;
    else if (PQntuples(r) > 0) v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
  }
  if (!rc && v > PG_SCHEMA_VERSION) {
    char u[512];
    lc_pgstore_redact(s->url, u, sizeof u);
    snprintf(err, errlen,
             "store %s: schema version %d is newer than this luact knows (%d): use a newer luact",
             u, v, PG_SCHEMA_VERSION);
    rc = LC_EINVAL;
  }
  for (int i = v; !rc && i < PG_SCHEMA_VERSION; i++) {
    /* Several statements: the simple protocol (no parameters). */
    PGresult *r = PQexec(s->db, migration[i]);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      set_err(s->db, r, err, errlen, "migrating the schema");
      rc = LC_EIO;
    }
    PQclear(r);
  }
  if (!rc && v < PG_SCHEMA_VERSION) {
    char ver[16];
    snprintf(ver, sizeof ver, "%d", PG_SCHEMA_VERSION);
    const char *p[] = {ver};
    rc = qx(&s->db, s->url, 0,
            "INSERT INTO meta VALUES('schema_version', $1) ON CONFLICT(key) DO UPDATE SET "
            "value=EXCLUDED.value",
            1, p, err, errlen);
  }
  char e2[64];
  if (!rc) rc = qx(&s->db, s->url, 0, "COMMIT", 0, NULL, err, errlen);
  else qx(&s->db, s->url, 0, "ROLLBACK", 0, NULL, e2, sizeof e2);
  return rc;
}

static void *writer_main(void *p);

int lc_pgstore_open(const char *url, struct lc_pgstore **out, char *err, size_t errlen) {
  *out = NULL;
  struct lc_pgstore *s = lc_calloc(1, sizeof *s);
  if (!s || !(s->url = lc_strdup(url))) {
    lc_free(s);
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  pthread_mutex_init(&s->openmu, NULL);
  pthread_mutex_init(&s->dbmu, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->fmu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_cond_init(&s->idle, NULL);
  s->tail = &s->head;
  *out = s;
  return 0;
}

/* Connects and migrates, once; a failure is kept and repeated. */
static int ensure(struct lc_pgstore *s, char *err, size_t errlen) {
  pthread_mutex_lock(&s->openmu);
  if (!s->opened) {
    s->opened = 1;
    pthread_mutex_lock(&s->dbmu);
    int rc = conn_ok(&s->db, s->url, s->open_err, sizeof s->open_err);
    if (!rc) s->proxied = lc_pgstore_proxied(s->db) == 1;
    if (!rc) rc = migrate(s, s->open_err, sizeof s->open_err);
    pthread_mutex_unlock(&s->dbmu);
    s->open_rc = rc;
  }
  int rc = s->open_rc;
  if (rc && err) snprintf(err, errlen, "%s", s->open_err);
  pthread_mutex_unlock(&s->openmu);
  return rc;
}

int lc_pgstore_connect(struct lc_pgstore *s, char *err, size_t errlen) {
  return ensure(s, err, errlen);
}

void lc_pgstore_close(struct lc_pgstore *s) {
  if (!s) return;
  if (s->writer_on) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
  }
  while (s->head) {
    struct lc_store_pending *x = s->head;
    s->head = x->next;
    lc_store_pending_free(x);
  }
  while (s->dead) {
    struct lost *x = s->dead;
    s->dead = x->next;
    lc_free(x);
  }
  while (s->fences) {
    struct fence *f = s->fences;
    s->fences = f->next;
    lc_free(f);
  }
  if (s->wdb) PQfinish(s->wdb);
  if (s->db) PQfinish(s->db);
  pthread_mutex_destroy(&s->openmu);
  pthread_mutex_destroy(&s->dbmu);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->fmu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->idle);
  lc_free(s->url);
  lc_free(s);
}

/* ---- fences ---- */

static long fence_of(struct lc_pgstore *s, const char *run_id) {
  long e = 0;
  pthread_mutex_lock(&s->fmu);
  for (struct fence *f = s->fences; f; f = f->next)
    if (!strcmp(f->run_id, run_id)) {
      e = f->epoch;
      break;
    }
  pthread_mutex_unlock(&s->fmu);
  return e;
}

long lc_pgstore_fence_of(struct lc_pgstore *s, const char *run_id) {
  return fence_of(s, run_id);
}

void lc_pgstore_fence_owner(struct lc_pgstore *s, const char *owner) {
  pthread_mutex_lock(&s->fmu);
  snprintf(s->owner, sizeof s->owner, "%s", owner ? owner : "");
  pthread_mutex_unlock(&s->fmu);
}

/* The owner the fences require, copied to buf: a parameter (NULL: any). */
static const char *owner_of(struct lc_pgstore *s, char buf[160]) {
  pthread_mutex_lock(&s->fmu);
  memcpy(buf, s->owner, 160);
  pthread_mutex_unlock(&s->fmu);
  return buf[0] ? buf : NULL;
}

int lc_pgstore_fence(struct lc_pgstore *s, const char *run_id, long epoch) {
  pthread_mutex_lock(&s->fmu);
  struct fence *f = s->fences;
  while (f && strcmp(f->run_id, run_id)) f = f->next;
  if (!f && (f = lc_calloc(1, sizeof *f))) {
    snprintf(f->run_id, sizeof f->run_id, "%s", run_id);
    f->next = s->fences;
    s->fences = f;
  }
  if (f) f->epoch = epoch;
  pthread_mutex_unlock(&s->fmu);
  return f ? 0 : LC_ENOMEM;
}

void lc_pgstore_unfence(struct lc_pgstore *s, const char *run_id) {
  pthread_mutex_lock(&s->fmu);
  for (struct fence **p = &s->fences; *p; p = &(*p)->next)
    if (!strcmp((*p)->run_id, run_id)) {
      struct fence *f = *p;
      *p = f->next;
      lc_free(f);
      break;
    }
  pthread_mutex_unlock(&s->fmu);
}

/* ---- runs ---- */

#define RUN_COLS LC_STORE_RUN_COLS

static void row_from(PGresult *r, int i, struct lc_run_row *o) {
  const char *text[9] = {PQgetvalue(r, i, 0)}; /* the key: never NULL */
  for (int c = 1; c < 9; c++) text[c] = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
  lc_store_row_fill(o, text, lc_cnum_strtod(PQgetvalue(r, i, 9), NULL),
                    lc_cnum_strtod(PQgetvalue(r, i, 10), NULL), atol(PQgetvalue(r, i, 11)),
                    atoi(PQgetvalue(r, i, 12)));
}

/* The run's row (status running unless given). retry: a lost connection's
 * second attempt may find the row its first attempt committed. */
static int insert_run(PGconn **c, const char *url, const struct lc_run_row *r, int again,
                      char *err, size_t errlen) {
  char t[40], pid[24];
  lc_cnum_fmt(t, sizeof t, "%.17g", lc_store_now_s());
  snprintf(pid, sizeof pid, "%ld", r->pid);
  const char *v[] = {r->id, r->script, r->script_sha256, r->args, r->cwd,
                     r->status ? r->status : "running", t, t, pid};
  int rc = qx(c, url, 0,
              again ? "INSERT INTO runs(id, script, script_sha256, args, cwd, status, created, "
                      "updated, pid) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING"
                    : "INSERT INTO runs(id, script, script_sha256, args, cwd, status, created, "
                      "updated, pid) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
              9, v, err, errlen);
  if (rc == LC_ESTATE) snprintf(err, errlen, "store: a run with id %s exists already", r->id);
  return rc;
}

/* One journal line. The same line again (a retried group whose commit's
 * answer was lost) is no error; another line at that seq is LC_ESTATE. */
static int insert_line(PGconn **c, const char *url, const char *run_id, long seq,
                       const char *text, size_t len, long epoch, char *err, size_t errlen) {
  char sq[24], crc[16], ep[24];
  snprintf(sq, sizeof sq, "%ld", seq);
  snprintf(ep, sizeof ep, "%ld", epoch);
  snprintf(crc, sizeof crc, "%u", (unsigned)lc_store_crc32(text, len));
  char *t = lc_malloc(len + 1);
  if (!t) return LC_ENOMEM;
  memcpy(t, text, len);
  t[len] = '\0';
  const char *v[] = {run_id, sq, t, crc, ep};
  int code = 0;
  PGresult *r = q(c, url, 0,
                  "INSERT INTO journal(run_id, seq, line, crc, epoch) VALUES($1,$2,$3,$4,$5) "
                  "ON CONFLICT(run_id, seq) DO UPDATE SET crc=EXCLUDED.crc "
                  "WHERE journal.crc=EXCLUDED.crc AND journal.line=EXCLUDED.line RETURNING seq",
                  5, v, &code, err, errlen);
  lc_free(t);
  if (!r) return code;
  int n = PQntuples(r);
  PQclear(r);
  if (n == 0) {
    snprintf(err, errlen, "store: run %s already has journal line %ld", run_id, seq);
    return LC_ESTATE;
  }
  return 0;
}

int lc_pgstore_run_create(struct lc_pgstore *s, const struct lc_run_row *r, const char *header,
                          size_t header_len, char *err, size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  pthread_mutex_lock(&s->dbmu);
  int rc = 0;
  /* Again on a new connection when the session ended on the way (the
   * second time a row there already may be this one's, committed before
   * the answer was lost: its header line then must match). */
  for (int attempt = 0; attempt < 3; attempt++) {
    rc = begin_tx(s, &s->db, 1, err, errlen);
    if (!rc) {
      rc = insert_run(&s->db, s->url, r, attempt > 0, err, errlen);
      if (!rc) rc = insert_line(&s->db, s->url, r->id, 1, header, header_len,
                                fence_of(s, r->id), err, errlen);
      char e2[64];
      if (!rc) rc = qx(&s->db, s->url, 0, "COMMIT", 0, NULL, err, errlen);
      int gone = rc && (last_ended || is_conn_lost(s->db)); /* before ROLLBACK resets it */
      if (rc && !is_conn_lost(s->db)) qx(&s->db, s->url, 0, "ROLLBACK", 0, NULL, e2, sizeof e2);
      if (rc && !gone) break;
    }
    if (!rc) break;
    if (!is_conn_lost(s->db)) PQreset(s->db);
  }
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_pgstore_run_get(struct lc_pgstore *s, const char *id, struct lc_run_row *out, char *err,
                       size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&s->dbmu);
  const char *v[] = {id};
  int code = 0, rc = 0;
  PGresult *r = q(&s->db, s->url, 1, "SELECT " RUN_COLS " FROM runs WHERE id=$1", 1, v, &code,
                  err, errlen);
  if (!r) rc = code;
  else if (PQntuples(r) == 0) {
    char u[512];
    lc_pgstore_redact(s->url, u, sizeof u);
    snprintf(err, errlen, "no run %s in %s", id, u);
    rc = LC_ENOTFOUND;
  } else {
    row_from(r, 0, out);
  }
  PQclear(r);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_pgstore_run_set_status(struct lc_pgstore *s, const char *id, const char *status,
                              const char *result, const char *error, const char *question,
                              long pid, char *err, size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  char p[24], t[40], ep[24];
  snprintf(p, sizeof p, "%ld", pid);
  lc_cnum_fmt(t, sizeof t, "%.17g", lc_store_now_s());
  long epoch = fence_of(s, id);
  snprintf(ep, sizeof ep, "%ld", epoch);
  char ob[160];
  const char *v[] = {status, result, error, question, p, t, id, ep, owner_of(s, ob)};
  pthread_mutex_lock(&s->dbmu);
  int code = 0, rc = 0;
  /* Fenced: only while the run's epoch is still the one this process was
   * given (docs/serve.md, leases); epoch 0 is unfenced. */
  PGresult *r = q(&s->db, s->url, 1,
                  "UPDATE runs SET status=$1, result=$2, error=$3, question=$4, pid=$5, "
                  "updated=$6, cancel_requested=CASE WHEN $1='running' THEN cancel_requested "
                  "ELSE 0 END WHERE id=$7 AND ($8::bigint=0 OR EXISTS(SELECT 1 FROM leases "
                  "WHERE run_id=$7 AND epoch=$8::bigint AND ($9::text IS NULL OR owner IS NOT DISTINCT FROM $9) FOR SHARE)) "
                  /* A terminal status is written once: q() sends the statement
                   * again when the session ended before its reply, and the
                   * first one may have committed. */
                  "AND NOT (status = $1 AND $1 IN ('finished', 'failed', 'cancelled'))",
                  9, v, &code, err, errlen);
  if (!r) rc = code;
  else if (atol(PQcmdTuples(r)) == 0) {
    PQclear(r);
    r = q(&s->db, s->url, 1,
          "SELECT coalesce((SELECT epoch FROM leases WHERE run_id=$1), 0), status FROM runs "
          "WHERE id=$1",
          1, v + 6, &code, err, errlen);
    char u[512];
    lc_pgstore_redact(s->url, u, sizeof u);
    if (!r) rc = code;
    else if (PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 1), status) &&
             lc_store_status_terminal(status) &&
             (epoch == 0 || atol(PQgetvalue(r, 0, 0)) == epoch)) {
      rc = 0; /* already so, under our lease: the repeat of a committed write */
    } else if (PQntuples(r) == 0) {
      snprintf(err, errlen, "no run %s in %s", id, u);
      rc = LC_ENOTFOUND;
    } else {
      snprintf(err, errlen, "store: run %s was taken by another daemon (lease epoch %s, ours %ld)",
               id, PQgetvalue(r, 0, 0), epoch);
      rc = LC_ESTATE;
    }
  }
  PQclear(r);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_pgstore_run_cancel(struct lc_pgstore *s, const char *id, char *was, size_t waslen,
                          char *err, size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  struct lc_run_row r;
  int rc = lc_pgstore_run_get(s, id, &r, err, errlen);
  if (rc) return rc;
  snprintf(was, waslen, "%s", r.status ? r.status : "");
  char st[32]; /* the row is freed below */
  snprintf(st, sizeof st, "%s", r.status ? r.status : "");
  int terminal = lc_store_status_terminal(st);
  lc_run_row_free(&r);
  if (terminal) return 0;
  /* Who runs it may be another machine: a run with a live lease (or, with
   * no lease, a live local pid) is asked to stop at its next effect; any
   * other is cancelled here. One statement decides, so a daemon claiming
   * it meanwhile cannot be overwritten. */
  char t[40];
  lc_cnum_fmt(t, sizeof t, "%.17g", lc_store_now_s());
  pthread_mutex_lock(&s->dbmu);
  int live = 0;
  if (!strcmp(st, "running")) {
    const char *v[] = {id};
    int code = 0;
    PGresult *x = q(&s->db, s->url, 1,
                    "SELECT r.pid, coalesce(l.owner IS NOT NULL AND l.lease_until > "
                    "extract(epoch FROM clock_timestamp()), false), l.run_id IS NOT NULL "
                    "FROM runs r LEFT JOIN leases l ON l.run_id = r.id WHERE r.id=$1",
                    1, v, &code, err, errlen);
    if (!x) rc = code;
    else if (PQntuples(x)) {
      /* Executing somewhere: a process took it (pid, set when it starts
       * or resumes it; 0 after an answer) and, on a fleet, its lease is
       * live (the pid may be another machine's); without leases, the
       * local pid is alive. A run claimed but still queued is not. */
      long pid = atol(PQgetvalue(x, 0, 0));
      int leased = PQgetvalue(x, 0, 1)[0] == 't', fleet = PQgetvalue(x, 0, 2)[0] == 't';
      live = fleet ? pid > 0 && leased : lc_store_pid_alive(pid);
    }
    PQclear(x);
  }
  if (!rc) {
    const char *v[] = {t, id};
    rc = qx(&s->db, s->url, 1,
            live ? "UPDATE runs SET cancel_requested=1, updated=$1 WHERE id=$2"
                 : "UPDATE runs SET status='cancelled', pid=0, question=NULL, updated=$1 "
                   "WHERE id=$2",
            2, v, err, errlen);
  }
  if (!rc && !live) {
    /* A fleet's run leaves the queue with it (its lease row's qstate,
     * schema 5): a waiting run cancelled here stayed in the queue index
     * for ever, read by every claim (schema 3). */
    const char *v[] = {id};
    char e2[256];
    qx(&s->db, s->url, 1, "UPDATE leases SET qstate = 'ended' WHERE run_id = $1 AND qstate IN "
                          "('pending', 'claimed', 'waiting')",
       1, v, e2, sizeof e2);
  }
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_pgstore_run_list(struct lc_pgstore *s, long limit,
                        int (*fn)(void *ud, const struct lc_run_row *r), void *ud, char *err,
                        size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  char l[24];
  snprintf(l, sizeof l, "%ld", limit);
  const char *v[] = {limit > 0 ? l : NULL}; /* LIMIT NULL: all */
  pthread_mutex_lock(&s->dbmu);
  int code = 0, rc = 0;
  PGresult *r = q(&s->db, s->url, 1,
                  "SELECT " RUN_COLS " FROM runs ORDER BY created DESC, id LIMIT $1::bigint", 1, v,
                  &code, err, errlen);
  if (!r) rc = code;
  else {
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
      struct lc_run_row row;
      row_from(r, i, &row);
      int stop = fn(ud, &row);
      lc_run_row_free(&row);
      if (stop) break;
    }
  }
  PQclear(r);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

/* ---- journal ---- */

int lc_pgstore_journal_read(struct lc_pgstore *s, const char *run_id,
                            int (*fn)(void *ud, long seq, const char *text, size_t len), void *ud,
                            long *last, char *err, size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  *last = 0;
  char u[512];
  lc_pgstore_redact(s->url, u, sizeof u);
  const char *v[] = {run_id};
  pthread_mutex_lock(&s->dbmu);
  int code = 0, rc = 0;
  PGresult *r = q(&s->db, s->url, 1,
                  "SELECT seq, line, crc FROM journal WHERE run_id=$1 ORDER BY seq", 1, v, &code,
                  err, errlen);
  if (!r) rc = code;
  else {
    int n = PQntuples(r);
    long want = 1;
    for (int i = 0; i < n; i++) {
      long seq = atol(PQgetvalue(r, i, 0));
      const char *text = PQgetvalue(r, i, 1);
      size_t len = (size_t)PQgetlength(r, i, 1);
      uint32_t crc = (uint32_t)strtoul(PQgetvalue(r, i, 2), NULL, 10);
      if ((rc = lc_store_line_check(u, run_id, want, seq, text, len, crc, err, errlen))) break;
      *last = seq;
      want++;
      if ((rc = fn(ud, seq, text, len)) != 0) break;
    }
    if (!rc && *last == 0) rc = lc_store_no_journal(u, run_id, err, errlen);
  }
  PQclear(r);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_pgstore_journal_append_now(struct lc_pgstore *s, const char *run_id, long seq,
                                  const char *text, size_t len, char *err, size_t errlen) {
  if (ensure(s, err, errlen)) return s->open_rc;
  pthread_mutex_lock(&s->dbmu);
  int rc = insert_line(&s->db, s->url, run_id, seq, text, len, fence_of(s, run_id), err,
                     errlen);
  if (rc && rc != LC_ESTATE && is_conn_lost(s->db)) /* the same line again is no error */
    rc = insert_line(&s->db, s->url, run_id, seq, text, len, fence_of(s, run_id), err,
                     errlen);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

/* ---- the writer: group commit ---- */

/* Queues the chain p..last (linked through next). */
static int enqueue(struct lc_pgstore *s, struct lc_store_pending *p,
                   struct lc_store_pending *last) {
  pthread_mutex_lock(&s->mu);
  int failed = s->failed;
  if (!failed && !s->writer_on) {
    if (pthread_create(&s->writer, NULL, writer_main, s)) failed = 1;
    else s->writer_on = 1;
  }
  if (!failed) {
    *s->tail = p;
    s->tail = &last->next;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  if (failed) {
    for (struct lc_store_pending *n; p; p = n) {
      n = p->next;
      lc_store_pending_free(p);
    }
    return LC_EIO;
  }
  return 0;
}

int lc_pgstore_append_run(struct lc_pgstore *s, const struct lc_store_client *c,
                          const struct lc_run_row *r, unsigned long ticket, const char *header,
                          size_t len) {
  struct lc_store_pending *last, *p = lc_store_pending_create(c, r, ticket, header, len, &last);
  return p ? enqueue(s, p, last) : LC_ENOMEM;
}

int lc_pgstore_append(struct lc_pgstore *s, const struct lc_store_client *c, long seq,
                      unsigned long ticket, const char *text, size_t len) {
  struct lc_store_pending *p = lc_store_pending_line(c, seq, ticket, text, len);
  return p ? enqueue(s, p, p) : LC_ENOMEM;
}

void lc_pgstore_flush(struct lc_pgstore *s) {
  pthread_mutex_lock(&s->mu);
  pthread_cond_signal(&s->cv);
  while (s->head || s->busy) pthread_cond_wait(&s->idle, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

/* Everything queued (a run's creation and its first line are queued
 * together: store.h). NULL: nothing queued. */
static struct lc_store_pending *take_group(struct lc_pgstore *s) {
  struct lc_store_pending *g = s->head;
  s->head = NULL;
  s->tail = &s->head;
  return g;
}

long lc_pgstore_writer_trips(const struct lc_pgstore *s) {
  return atomic_load(&((struct lc_pgstore *)s)->trips);
}

void lc_pgstore_stats(const struct lc_pgstore *s, long *lines, long *commits) {
  pthread_mutex_lock((pthread_mutex_t *)&s->mu);
  if (lines) *lines = s->lines;
  if (commits) *commits = s->commits;
  pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}


static int is_lost(const struct lost *l, const char *run_id) {
  for (; l; l = l->next)
    if (!strcmp(l->run_id, run_id)) return 1;
  return 0;
}

/* Checks each fenced run of the group once, locking its row FOR SHARE: a
 * claim by another daemon (an UPDATE of the row) then waits for this
 * commit, and one that came first is seen here. */
static int check_fences(struct lc_pgstore *s, struct lc_store_pending *g, struct lost **lost,
                        char *err, size_t errlen) {
  struct lost *checked = NULL;
  int rc = 0;
  for (struct lc_store_pending *p = g; p && !rc; p = p->next) {
    if (p->create || is_lost(checked, p->c.run_id) || is_lost(*lost, p->c.run_id)) continue;
    long epoch = fence_of(s, p->c.run_id);
    if (!epoch) continue;
    char ep[24];
    snprintf(ep, sizeof ep, "%ld", epoch);
    char ob[160];
    const char *v[] = {p->c.run_id, ep, owner_of(s, ob)};
    int code = 0;
    PGresult *r = q(&s->wdb, s->url, 0,
                    "SELECT 1 FROM leases WHERE run_id=$1 AND epoch=$2::bigint AND ($3::text IS "
                    "NULL OR owner IS NOT DISTINCT FROM $3) FOR SHARE",
                    3, v,
                    &code,
                    err, errlen);
    if (!r) {
      rc = code;
      break;
    }
    struct lost *x = lc_calloc(1, sizeof *x);
    if (!x) {
      PQclear(r);
      rc = LC_ENOMEM;
      break;
    }
    snprintf(x->run_id, sizeof x->run_id, "%s", p->c.run_id);
    if (PQntuples(r) == 0) {
      x->next = *lost;
      *lost = x;
    } else {
      x->next = checked;
      checked = x;
    }
    PQclear(r);
  }
  while (checked) {
    struct lost *x = checked;
    checked = x->next;
    lc_free(x);
  }
  return rc;
}

/* Without pipeline mode (libpq before 14): a statement, and a round trip,
 * at a time. */
static int commit_group_seq_(struct lc_pgstore *s, struct lc_store_pending *g, int again,
                             struct lost **lost);

static int commit_group_seq(struct lc_pgstore *s, struct lc_store_pending *g, int again,
                            struct lost **lost) {
  long before = sent_here;
  int rc = commit_group_seq_(s, g, again, lost);
  atomic_fetch_add(&s->trips, sent_here - before);
  return rc;
}

static int commit_group_seq_(struct lc_pgstore *s, struct lc_store_pending *g, int again,
                             struct lost **lost) {
  char err[1024];
  if (conn_ok(&s->wdb, s->url, err, sizeof err)) return EIO;
  /* libpq learns that the server ended the connection when it next uses
   * it: a BEGIN that fails so is retried by the caller. */
  if (begin_tx(s, &s->wdb, 0, err, sizeof err))
    return last_ended || is_conn_lost(s->wdb) ? ECONNRESET : EIO;
  int bad = check_fences(s, g, lost, err, sizeof err) != 0;
  for (struct lc_store_pending *p = g; p && !bad; p = p->next) {
    if (is_lost(*lost, p->c.run_id) || is_lost(s->dead, p->c.run_id)) continue;
    if (p->create) bad = insert_run(&s->wdb, s->url, p->create, again, err, sizeof err) != 0;
    else
      bad = insert_line(&s->wdb, s->url, p->c.run_id, p->seq, p->text, p->len,
                        fence_of(s, p->c.run_id), err, sizeof err) != 0;
  }
  if (bad || qx(&s->wdb, s->url, 0, "COMMIT", 0, NULL, err, sizeof err)) {
    int gone = last_ended || is_conn_lost(s->wdb), retry_it = last_again; /* before ROLLBACK */
    char e2[64];
    if (!is_conn_lost(s->wdb)) qx(&s->wdb, s->url, 0, "ROLLBACK", 0, NULL, e2, sizeof e2);
    if (gone && !is_conn_lost(s->wdb)) PQreset(s->wdb);
    return gone ? ECONNRESET : retry_it ? EAGAIN : EIO;
  }
  return 0;
}


/* (Every fence compares the owner with IS NOT DISTINCT FROM, which no
 * index serves: the lease row is then read by its key, never through the
 * live leases' index, which the planner picked for "owner = $n" when its
 * statistics said few leases had an owner, reading all of a daemon's.)
 *
 * The journal line insert of the pipelined group: written only while the
 * run's lease still has the epoch given ($5; 0: not fenced), its lease row
 * locked FOR SHARE till the commit (a claim elsewhere waits for it, and
 * one that came first is seen), so a fenced-out line returns no row. The
 * same line again (a retried group whose commit's answer was lost) is no
 * error; another line at that seq fails the statement (crc NULL: 23502),
 * which aborts the pipeline before its COMMIT. */
#define PIPE_LINE_SQL                                                                        \
  "INSERT INTO journal(run_id, seq, line, crc, epoch) SELECT $1, $2::bigint, $3, $4::bigint," \
  " $5::bigint WHERE $5::bigint = 0 OR EXISTS (SELECT 1 FROM leases WHERE run_id = $1 AND"   \
  " epoch = $5::bigint AND ($6::text IS NULL OR owner IS NOT DISTINCT FROM $6) FOR SHARE) ON CONFLICT(run_id,"   \
  " seq) DO UPDATE SET crc = CASE WHEN"                                                       \
  " journal.crc = EXCLUDED.crc AND journal.line = EXCLUDED.line THEN EXCLUDED.crc END"        \
  " RETURNING seq"

/* A run's creation, fenced as its lines are ($10: the epoch, 0: none): a
 * daemon that lost the run before its row was made (it stalled with the
 * run claimed) makes no row; the run's first line, in the same group, is
 * fenced out too and tells its client. (Without pipeline mode the fence
 * check before the group skips the run whole.) */
#define PIPE_RUN_SQL(again)                                                                  \
  ((again) ? "INSERT INTO runs(id, script, script_sha256, args, cwd, status, created, "      \
             "updated, pid) SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9 WHERE $10::bigint = 0 OR "     \
             "EXISTS (SELECT 1 FROM leases WHERE run_id = $1 AND epoch = $10::bigint AND "   \
             "($11::text IS NULL OR owner IS NOT DISTINCT FROM $11) FOR SHARE) ON CONFLICT DO NOTHING"          \
           : "INSERT INTO runs(id, script, script_sha256, args, cwd, status, created, "      \
             "updated, pid) SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9 WHERE $10::bigint = 0 OR "     \
             "EXISTS (SELECT 1 FROM leases WHERE run_id = $1 AND epoch = $10::bigint AND "   \
             "($11::text IS NULL OR owner IS NOT DISTINCT FROM $11) FOR SHARE)")

static int pipe_send(struct lc_pgstore *s, const char *sql, int n, const char *const *v) {
  return PQsendQueryParams(s->wdb, sql, n, NULL, v, NULL, NULL, 0);
}

/* A group in one round trip (libpq's pipeline mode): BEGIN, each run's
 * creation and each line, COMMIT, one sync. The fence is in each line's
 * statement (PIPE_LINE_SQL), so nothing waits for an answer midway; a
 * fenced run whose line comes back empty lost its lease (its lines are
 * dropped, its client told EPERM, the rest committed, as before). Any
 * error aborts the pipeline: the server skips the rest and the COMMIT,
 * the transaction is rolled back, nothing of the group is written. */
static int commit_group_pipe(struct lc_pgstore *s, struct lc_store_pending *g, int again,
                             struct lost **lost) {
  char err[1024];
  if (conn_ok(&s->wdb, s->url, err, sizeof err)) return EIO;
  if (!PQenterPipelineMode(s->wdb)) return is_conn_lost(s->wdb) ? ECONNRESET : EIO;
  long n = 0;
  for (struct lc_store_pending *p = g; p; p = p->next) n++;
  char ob[160];
  const char *owner = owner_of(s, ob);
  /* what each statement was: its pending, or NULL for BEGIN and COMMIT */
  struct lc_store_pending **what = lc_malloc((size_t)(n + 3) * sizeof *what);
  int sent = 0, bad = !what;
  if (!bad) {
    what[sent++] = NULL;
    bad = !pipe_send(s, "BEGIN", 0, NULL);
  }
  if (!bad && s->proxied) { /* begin_tx's setting, in the same round trip */
    what[sent++] = NULL;
    bad = !pipe_send(s, "SET LOCAL idle_in_transaction_session_timeout = " IDLE_TX_MS, 0, NULL);
  }
  for (struct lc_store_pending *p = g; p && !bad; p = p->next) {
    if (is_lost(s->dead, p->c.run_id)) continue;
    if (p->create) {
      const struct lc_run_row *r = p->create;
      char t[40], pid[24], ep[24];
      lc_cnum_fmt(t, sizeof t, "%.17g", lc_store_now_s());
      snprintf(pid, sizeof pid, "%ld", r->pid);
      snprintf(ep, sizeof ep, "%ld", fence_of(s, p->c.run_id));
      const char *v[] = {r->id, r->script, r->script_sha256, r->args, r->cwd,
                         r->status ? r->status : "running", t, t, pid, ep, owner};
      bad = !pipe_send(s, PIPE_RUN_SQL(again), 11, v);
    } else {
      char sq[24], crc[16], ep[24];
      snprintf(sq, sizeof sq, "%ld", p->seq);
      snprintf(ep, sizeof ep, "%ld", fence_of(s, p->c.run_id));
      snprintf(crc, sizeof crc, "%u", (unsigned)lc_store_crc32(p->text, p->len));
      char *t = lc_malloc(p->len + 1); /* text parameters end with a NUL */
      if (!t) {
        bad = 1;
        break;
      }
      memcpy(t, p->text, p->len);
      t[p->len] = '\0';
      const char *v[] = {p->c.run_id, sq, t, crc, ep, owner};
      bad = !pipe_send(s, PIPE_LINE_SQL, 6, v); /* copied into libpq's buffer */
      lc_free(t);
    }
    if (!bad) what[sent++] = p;
  }
  if (!bad) {
    what[sent++] = NULL;
    bad = !pipe_send(s, "COMMIT", 0, NULL);
  }
  int synced = !bad && PQpipelineSync(s->wdb);
  atomic_fetch_add(&s->trips, 1);
  /* The answers, in order: each statement's result then NULL; after an
   * error, PIPELINE_ABORTED for the rest; then the sync's. */
  int failed = bad, gone = 0, retry_it = 0, committed = 0;
  for (int i = 0; synced && i < sent; i++) {
    PGresult *r = PQgetResult(s->wdb);
    if (!r) { /* the connection went away under the pipeline */
      failed = gone = 1;
      break;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_FATAL_ERROR) {
      const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      failed = 1; /* a line at a taken seq (23502), a taken run id, a deadlock... */
      gone |= ended(s->wdb, r);
      retry_it |= again_state(state);
    } else if (st == PGRES_TUPLES_OK && what[i] && !what[i]->create && PQntuples(r) == 0 &&
               !is_lost(*lost, what[i]->c.run_id)) {
      struct lost *x = lc_calloc(1, sizeof *x); /* fenced out: its lease is gone */
      if (x) {
        snprintf(x->run_id, sizeof x->run_id, "%s", what[i]->c.run_id);
        x->next = *lost;
        *lost = x;
      } else {
        failed = 1;
      }
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      failed = 1; /* PIPELINE_ABORTED, after the error above */
    } else if (i == sent - 1) {
      committed = 1;
    }
    PQclear(r);
    while ((r = PQgetResult(s->wdb))) PQclear(r); /* up to this statement's NULL */
  }
  if (synced && !gone) {
    PGresult *r = PQgetResult(s->wdb); /* the sync's */
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) failed = gone = 1;
    PQclear(r);
  }
  lc_free(what);
  if (!gone && !PQexitPipelineMode(s->wdb)) gone = 1;
  gone |= is_conn_lost(s->wdb);
  if (!failed && committed) return 0;
  /* A lost line's run was dropped from the group, not failed: only an
   * error above fails it. The transaction is open and aborted (or the
   * session gone): rolled back, or the session made again. */
  if (gone) {
    PQreset(s->wdb);
    return ECONNRESET;
  }
  char e2[64];
  qx(&s->wdb, s->url, 0, "ROLLBACK", 0, NULL, e2, sizeof e2);
  atomic_fetch_add(&s->trips, 1);
  return retry_it ? EAGAIN : EIO;
}

static int commit_group_once(struct lc_pgstore *s, struct lc_store_pending *g, int again,
                             struct lost **lost) {
  return lc_pq_has_pipeline() ? commit_group_pipe(s, g, again, lost)
                              : commit_group_seq(s, g, again, lost);
}

/* One transaction per group; a connection lost on the way (a restarted
 * server, pg_terminate_backend) is made again and the group sent again
 * (so is a group the server aborted to break a deadlock),
 * a few times with a short backoff: its lines are idempotent
 * (insert_line), its runs' rows too. */
static int commit_group(struct lc_pgstore *s, struct lc_store_pending *g, struct lost **lost) {
  if (ensure(s, NULL, 0)) return EIO;
  int rc = commit_group_once(s, g, 0, lost);
  for (int attempt = 1; (rc == ECONNRESET || rc == EAGAIN) && attempt < 6; attempt++) {
    while (*lost) {
      struct lost *x = *lost;
      *lost = x->next;
      lc_free(x);
    }
    struct timespec ts = {0, 20000000L * attempt};
    nanosleep(&ts, NULL);
    rc = commit_group_once(s, g, 1, lost);
  }
  return rc ? EIO : 0;
}

static void notify(struct lc_pgstore *s, struct lc_store_pending *g, long n, int err,
                   const struct lost *lost) {
  struct lc_store_pending **v = lc_malloc((size_t)n * sizeof *v);
  size_t cap = 16;
  while (cap < (size_t)n * 2) cap *= 2;
  const void **seen = lc_calloc(cap, sizeof *seen);
  if (!v || !seen) {
    for (struct lc_store_pending *p = g; p; p = p->next)
      if (p->c.committed)
        p->c.committed(p->c.ud, p->ticket,
                       err                         ? err
                       : is_lost(s->dead, p->c.run_id) ? EIO
                       : is_lost(lost, p->c.run_id)    ? EPERM
                                                       : 0);
    lc_free(v);
    lc_free(seen);
    return;
  }
  long k = 0;
  for (struct lc_store_pending *p = g; p; p = p->next) v[k++] = p;
  /* Which of the group's runs were asked to stop (by any daemon): one
   * statement for the group, not one per run. */
  PGresult *cr = NULL;
  /* a text[] literal: each id quoted, its " and \ escaped */
  char *arr = err ? NULL : lc_malloc((size_t)n * (2 * sizeof v[0]->c.run_id + 3) + 3);
  if (arr) {
    size_t o = 0;
    arr[o++] = '{';
    for (long i = 0; i < n; i++) {
      if (!v[i]->c.cancel || v[i]->create) continue;
      if (o > 1) arr[o++] = ',';
      arr[o++] = '"';
      for (const char *c = v[i]->c.run_id; *c; c++) {
        if (*c == '"' || *c == '\\') arr[o++] = '\\';
        arr[o++] = *c;
      }
      arr[o++] = '"';
    }
    arr[o++] = '}';
    arr[o] = '\0';
    if (o > 2) {
      const char *pv[] = {arr};
      int code = 0;
      char e2[256];
      cr = q(&s->wdb, s->url, 1,
             "SELECT id FROM runs WHERE id = ANY($1::text[]) AND cancel_requested <> 0", 1, pv,
             &code, e2, sizeof e2);
    }
    lc_free(arr);
  }
  for (long i = n - 1; i >= 0; i--) {
    struct lc_store_pending *p = v[i];
    size_t h = ((uintptr_t)p->c.ud >> 4) & (cap - 1);
    while (seen[h] && seen[h] != p->c.ud) h = (h + 1) & (cap - 1);
    if (seen[h] || p->create) continue;
    seen[h] = p->c.ud;
    int e = err                         ? err
            : is_lost(s->dead, p->c.run_id) ? EIO
            : is_lost(lost, p->c.run_id)    ? EPERM
                                            : 0;
    if (p->c.committed) p->c.committed(p->c.ud, p->ticket, e);
    if (!e && p->c.cancel && cr)
      for (int t = 0; t < PQntuples(cr); t++)
        if (!strcmp(PQgetvalue(cr, t, 0), p->c.run_id)) {
          p->c.cancel(p->c.ud);
          break;
        }
  }
  PQclear(cr);
  lc_free(v);
  lc_free(seen);
}

static void *writer_main(void *arg) {
  struct lc_pgstore *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    struct lc_store_pending *g;
    while (!(g = take_group(s)) && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    if (!g) break;
    s->busy = 1;
    pthread_mutex_unlock(&s->mu);
    struct lost *lost = NULL;
    int err = commit_group(s, g, &lost);
    long n = 0;
    for (struct lc_store_pending *p = g; p; p = p->next) {
      n++;
      if (err && !is_lost(s->dead, p->c.run_id)) { /* only the writer thread reads it */
        struct lost *x = lc_calloc(1, sizeof *x);
        if (x) {
          snprintf(x->run_id, sizeof x->run_id, "%s", p->c.run_id);
          x->next = s->dead;
          s->dead = x;
        }
      }
    }
    /* The counts before the clients hear (they may read them then).
     * Unlike a SQLite file, a database that failed a group may take the
     * next (the connection is made again): only this group's clients
     * heard the error, nothing is latched. */
    if (!err) {
      pthread_mutex_lock(&s->mu);
      s->lines += n;
      s->commits++;
      pthread_mutex_unlock(&s->mu);
    }
    notify(s, g, n, err, lost);
    while (lost) {
      struct lost *x = lost;
      lost = x->next;
      lc_free(x);
    }
    while (g) {
      struct lc_store_pending *x = g;
      g = g->next;
      lc_store_pending_free(x);
    }
    pthread_mutex_lock(&s->mu);
    s->busy = 0;
    if (!s->head) pthread_cond_broadcast(&s->idle);
  }
  s->busy = 0;
  pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}
