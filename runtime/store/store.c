/* store.c: the run store over SQLite (store.h): schema and its version,
 * runs, journal lines with CRCs, and the group-commit writer thread. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lc.h"
#include "store_pending.h"
#include "store_pg.h"
#include "store_rows.h"

#define SCHEMA_VERSION 1
#define BUSY_MS 10000
#define QUICK_CHECK_MAX (16L << 20)

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runs("
    "  id TEXT PRIMARY KEY, script TEXT, script_sha256 TEXT, args TEXT, cwd TEXT,"
    "  status TEXT NOT NULL, result TEXT, error TEXT, question TEXT,"
    "  created REAL NOT NULL, updated REAL NOT NULL, pid INTEGER NOT NULL DEFAULT 0,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS runs_updated ON runs(updated);"
    "CREATE TABLE IF NOT EXISTS journal("
    "  run_id TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL, crc INTEGER NOT NULL,"
    "  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;";

struct fwait {
  const void *ud;
  struct fwait *next;
};

struct lc_store {
  /* A PostgreSQL URL: every call goes to store_pg.c (the rest unused). */
  struct lc_pgstore *pg;
  char *path;
  enum lc_store_sync sync;
  /* Connected on first use (lc_store_open only remembers the path), so a
   * run that makes no effect never touches the file. */
  pthread_mutex_t openmu;
  int opened, open_rc;
  char open_err[1024];
  sqlite3 *db; /* the callers' connection (runs, reads, *_now) */
  pthread_mutex_t dbmu;
  /* the writer thread and its own connection */
  sqlite3 *wdb;
  sqlite3_stmt *wins; /* the writer's INSERT INTO journal, prepared once */
  /* Its multi-row INSERTs (INS_WIDE and INS_NARROW rows), prepared on
   * first use; single: this group goes one row at a time (a multi-row
   * INSERT failed on one client's line: which one, only rows say). */
  sqlite3_stmt *wins_wide, *wins_narrow;
  int single;
  sqlite3_stmt *wcancel; /* the writer's cancel_requested query, prepared once */
  sqlite3_stmt *wbegin, *wcommit; /* its BEGIN IMMEDIATE and COMMIT, prepared once */
  pthread_t writer;
  int writer_on;
  pthread_mutex_t mu;
  pthread_cond_t cv, idle;
  struct lc_store_pending *head, **tail;
  int stop, busy, failed, flushing;
  unsigned long taken, done; /* groups taken by the writer, and finished (notified) */
  struct fwait *fwaits; /* clients in lc_store_flush_client */
  long lines, commits;
  /* The queue: its length, how many of it are not lazy, and when its
   * oldest item came (monotonic ms): lazy lines wait for a larger group
   * until then + LC_STORE_LAZY_MS. */
  long nq, urgent;
  double since;
  int wtimed; /* the writer waits for more lazy lines, until a deadline */
  /* With LC_STORE_SYNC_FULL, a group of lazy lines only (nobody waits for
   * them, and a crash may lose them: docs/journal.md) commits without the
   * WAL's fsync: wsync is the writer connection's synchronous now, its
   * PRAGMAs prepared once. unsynced: such a commit since the WAL's last
   * fsync; any later full commit, or wal_sync for a flush or the close,
   * makes those frames durable too (one file, written in order). syncreq:
   * flushes waiting for that. */
  int wsync_normal, unsynced, syncreq;
  long wal_syncs; /* lc_store_wal_syncs */
  sqlite3_stmt *wsync_full_st, *wsync_normal_st;
  double lazy_ms; /* LC_STORE_LAZY_MS, or $LUACT_STORE_LAZY_MS (tests) */
  double lazy_long_ms; /* LC_STORE_LAZY_LONG_MS (or $LUACT_STORE_LAZY_LONG_MS), >= lazy_ms */
  /* The writer's cancel check (notify) only when another connection wrote
   * since the writer's last commit: a cancel is such a write, from `luact
   * runs cancel` (another process) or this process's callers' connection.
   * wdv: the writer connection's data version (SQLITE_FCNTL_DATA_VERSION:
   * its pager's, moved by its own commits and, at the start of its next
   * transaction, by anyone else's) right after its last commit; wdv_ok: it
   * has one. others_wrote: this group's BEGIN saw another version (or
   * none could be read: then it checks, as it always did). */
  unsigned wdv;
  int wdv_ok, others_wrote;
  atomic_long cancel_checks; /* lc_store_cancel_checks */
};

static int dberr(sqlite3 *db, char *err, size_t errlen, const char *what) {
  snprintf(err, errlen, "store: %s: %s", what, sqlite3_errmsg(db));
  int c = sqlite3_errcode(db);
  return c == SQLITE_CORRUPT || c == SQLITE_NOTADB ? LC_EINVAL : LC_EIO;
}

/* ---- opening ---- */

const char *lc_store_default_path(char *buf, size_t n) {
  const char *e = getenv("LUACT_STORE");
  if (e && *e) {
    snprintf(buf, n, "%s", e);
    return buf;
  }
  const char *x = getenv("XDG_DATA_HOME");
  const char *h = getenv("HOME");
  if (x && *x) snprintf(buf, n, "%s/luact/runs.db", x);
  else if (h && *h) snprintf(buf, n, "%s/.local/share/luact/runs.db", h);
  else return NULL;
  return buf;
}

/* mkdir -p of path's folder. */
static int make_parent(const char *path) {
  char d[4096];
  snprintf(d, sizeof d, "%s", path);
  char *slash = strrchr(d, '/');
  if (!slash || slash == d) return 0;
  *slash = '\0';
  for (char *p = d + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(d, 0700) && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(d, 0700) && errno != EEXIST ? -1 : 0;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
  char *m = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &m) == SQLITE_OK) return 0;
  snprintf(err, errlen, "store: %s", m ? m : sqlite3_errmsg(db));
  int c = sqlite3_errcode(db);
  sqlite3_free(m);
  return c == SQLITE_CORRUPT || c == SQLITE_NOTADB ? LC_EINVAL : LC_EIO;
}

/* exec, again while the database is busy (up to BUSY_MS): SQLite returns
 * SQLITE_BUSY without calling the busy handler in some cases, e.g. while
 * another connection recovers the WAL of a process that was killed. */
static double mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int exec_busy(sqlite3 *db, const char *sql, char *err, size_t errlen) {
  double until = mono_ms() + BUSY_MS;
  int rc;
  while ((rc = exec(db, sql, err, errlen)) != 0 && mono_ms() < until &&
         ((sqlite3_errcode(db) & 0xff) == SQLITE_BUSY || (sqlite3_errcode(db) & 0xff) == SQLITE_LOCKED))
    sqlite3_sleep(20);
  return rc;
}

/* Busy: again every 0.2 ms up to BUSY_MS. sqlite3_busy_timeout's backoff
 * sleeps up to 100 ms a try: with two writers on the file (the writer
 * thread and a status update, or luact serve's own tables) the loser slept
 * long after the lock was free. */
static int short_busy(void *ud, int n) {
  (void)ud;
  if ((double)n * 0.2 >= BUSY_MS) return 0;
  struct timespec ts = {0, 200000L};
  nanosleep(&ts, NULL);
  return 1;
}

static int connect(const char *path, enum lc_store_sync sync, sqlite3 **out, char *err,
                   size_t errlen) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                               SQLITE_OPEN_EXRESCODE,
                           NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "store: cannot open %s: %s", path,
             db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return LC_EIO;
  }
  sqlite3_busy_handler(db, short_busy, NULL);
  sqlite3_extended_result_codes(db, 1);
  int d = 1;
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &d);
  /* A new store gets 16 KiB pages (an existing one keeps its own: this is
   * a no-op once the file has a page). Journal rows are keyed (run, seq)
   * and arrive interleaved across runs, and an LLM intent runs to
   * kilobytes: at 4 KiB the table spilled to overflow pages and half-empty
   * leaves; 16 KiB cut the writer's insert CPU by ~40% and the file by half
   * for the same lines (docs/BENCHMARKS.md). */
  rc = exec_busy(db, "PRAGMA page_size=16384", err, errlen);
  if (!rc) rc = exec_busy(db, "PRAGMA journal_mode=WAL", err, errlen);
  if (!rc)
    rc = exec_busy(db, sync == LC_STORE_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                                    : "PRAGMA synchronous=FULL",
                   err, errlen);
  if (rc) {
    /* A file that is not a database (or a damaged one) says so here; a
     * busy one is not damaged. */
    char m[512];
    snprintf(m, sizeof m, "%s", err);
    snprintf(err, errlen, "store %s: %s%s", path, rc == LC_EINVAL ? "integrity error: " : "", m);
    sqlite3_close(db);
    return rc;
  }
  *out = db;
  return 0;
}

static int check_file(struct lc_store *s, char *err, size_t errlen) {
  /* quick_check reads the whole file, about 1 ms a MiB when cached
   * (docs/journal.md): at every first connect while the store is small;
   * in luact run that is on the writer thread, never the loop. A file cut
   * short is refused by SQLite itself when it opens (its header counts more
   * pages than the file holds), at any size; a damaged page in a larger
   * store is reported by its readers (SQLite's page checks, and every
   * journal line has its CRC). */
  struct stat stt;
  if (stat(s->path, &stt) == 0 && stt.st_size > QUICK_CHECK_MAX) return 0;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "store %s: integrity error: %s", s->path, sqlite3_errmsg(s->db));
    return LC_EINVAL;
  }
  int rc = 0;
  char first[400] = "";
  int rows = 0;
  int r;
  double until = mono_ms() + BUSY_MS;
  while ((r = sqlite3_step(st)) == SQLITE_ROW || (r & 0xff) == SQLITE_BUSY) {
    if ((r & 0xff) == SQLITE_BUSY) { /* busy, not damaged: again (see exec_busy) */
      if (mono_ms() >= until) break;
      sqlite3_sleep(20);
      sqlite3_reset(st);
      rows = 0;
      continue;
    }
    const char *t = (const char *)sqlite3_column_text(st, 0);
    if (rows++ == 0) snprintf(first, sizeof first, "%s", t ? t : "");
  }
  if ((r & 0xff) == SQLITE_BUSY) {
    snprintf(err, errlen, "store %s: %s", s->path, sqlite3_errmsg(s->db));
    rc = LC_EIO;
  } else if (r != SQLITE_DONE) {
    snprintf(err, errlen, "store %s: integrity error: %s", s->path, sqlite3_errmsg(s->db));
    rc = LC_EINVAL;
  } else if (rows != 1 || strcmp(first, "ok")) {
    snprintf(err, errlen, "store %s: integrity error: quick_check: %s%s", s->path, first,
             rows > 1 ? " (and more)" : "");
    rc = LC_EINVAL;
  }
  sqlite3_finalize(st);
  return rc;
}

static int check_schema(struct lc_store *s, char *err, size_t errlen) {
  int rc = exec_busy(s->db, "BEGIN IMMEDIATE", err, errlen);
  if (rc) return rc;
  rc = exec(s->db, schema_sql, err, errlen);
  sqlite3_stmt *st = NULL;
  if (!rc && sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key='schema_version'", -1,
                                &st, NULL) != SQLITE_OK)
    rc = dberr(s->db, err, errlen, "reading the schema version");
  if (!rc) {
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
      int v = atoi((const char *)sqlite3_column_text(st, 0));
      if (v > SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "store %s: schema version %d is newer than this luact knows (%d): "
                 "use a newer luact",
                 s->path, v, SCHEMA_VERSION);
        rc = LC_EINVAL;
      }
    } else if (r == SQLITE_DONE) {
      char sql[128];
      snprintf(sql, sizeof sql, "INSERT INTO meta VALUES('schema_version','%d')", SCHEMA_VERSION);
      sqlite3_finalize(st);
      st = NULL;
      rc = exec(s->db, sql, err, errlen);
    } else {
      rc = dberr(s->db, err, errlen, "reading the schema version");
    }
  }
  sqlite3_finalize(st);
  char e2[64];
  if (!rc) rc = exec(s->db, "COMMIT", err, errlen);
  else exec(s->db, "ROLLBACK", e2, sizeof e2);
  return rc;
}

static void *writer_main(void *p);

int lc_store_open(const char *path, enum lc_store_sync sync, struct lc_store **out, char *err,
                  size_t errlen) {
  *out = NULL;
  struct lc_store *s = lc_calloc(1, sizeof *s);
  if (!s || !(s->path = lc_strdup(path))) {
    lc_free(s);
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  s->sync = sync;
  if (lc_store_is_pg(path)) {
    /* lc_store_path names it in messages: without a password. */
    char red[2048];
    lc_pgstore_redact(path, red, sizeof red);
    char *rp = lc_strdup(red);
    if (rp) {
      lc_free(s->path);
      s->path = rp;
    }
    int rc = lc_pgstore_open(path, &s->pg, err, errlen);
    if (rc) {
      lc_free(s->path);
      lc_free(s);
      return rc;
    }
    *out = s;
    return 0;
  }
  pthread_mutex_init(&s->openmu, NULL);
  pthread_mutex_init(&s->dbmu, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca; /* the writer's timed wait is on the monotonic clock */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&s->idle, NULL);
  s->tail = &s->head;
  const char *lz = getenv("LUACT_STORE_LAZY_MS");
  s->lazy_ms = lz && *lz ? atof(lz) : LC_STORE_LAZY_MS;
  const char *ll = getenv("LUACT_STORE_LAZY_LONG_MS");
  s->lazy_long_ms = ll && *ll ? atof(ll) : LC_STORE_LAZY_LONG_MS;
  if (s->lazy_long_ms < s->lazy_ms || s->lazy_ms <= 0) s->lazy_long_ms = s->lazy_ms;
  *out = s;
  return 0;
}

/* Connects the callers' connection and checks the file, once. */
static int ensure(struct lc_store *s, char *err, size_t errlen) {
  pthread_mutex_lock(&s->openmu);
  if (!s->opened) {
    s->opened = 1;
    char *e = s->open_err;
    size_t n = sizeof s->open_err;
    int rc = 0;
    if (make_parent(s->path)) {
      snprintf(e, n, "store: cannot create the folder of %s: %s", s->path, strerror(errno));
      rc = LC_EIO;
    }
    if (!rc) rc = connect(s->path, s->sync, &s->db, e, n);
    if (!rc) rc = check_file(s, e, n);
    if (!rc) rc = check_schema(s, e, n);
    s->open_rc = rc;
  }
  int rc = s->open_rc;
  if (rc && err) snprintf(err, errlen, "%s", s->open_err);
  pthread_mutex_unlock(&s->openmu);
  return rc;
}

int lc_store_connect(struct lc_store *s, char *err, size_t errlen) {
  if (s->pg) return lc_pgstore_connect(s->pg, err, errlen);
  return ensure(s, err, errlen);
}

const char *lc_store_path(const struct lc_store *s) { return s->path; }

void lc_store_close(struct lc_store *s) {
  if (!s) return;
  if (s->pg) {
    lc_pgstore_close(s->pg);
    lc_free(s->path);
    lc_free(s);
    return;
  }
  if (s->writer_on) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
  }
  /* For the benchmark: fsyncs per group commit (scripts/durable-bench). */
  const char *stats = getenv("LUACT_STORE_STATS");
  if (stats && *stats == '1' && s->commits)
    fprintf(stderr, "luact: store: %ld lines in %ld group commits\n", s->lines, s->commits);
  while (s->head) {
    struct lc_store_pending *x = s->head;
    s->head = x->next;
    lc_store_pending_free(x);
  }
  sqlite3_finalize(s->wins);
  sqlite3_finalize(s->wins_wide);
  sqlite3_finalize(s->wins_narrow);
  sqlite3_finalize(s->wcancel);
  sqlite3_finalize(s->wbegin);
  sqlite3_finalize(s->wcommit);
  sqlite3_finalize(s->wsync_full_st);
  sqlite3_finalize(s->wsync_normal_st);
  sqlite3_close(s->wdb);
  sqlite3_close(s->db);
  pthread_mutex_destroy(&s->openmu);
  pthread_mutex_destroy(&s->dbmu);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->idle);
  lc_free(s->path);
  lc_free(s);
}

/* ---- runs ---- */

void lc_run_row_free(struct lc_run_row *r) {
  free(r->script);
  free(r->script_sha256);
  free(r->args);
  free(r->cwd);
  free(r->status);
  free(r->result);
  free(r->error);
  free(r->question);
  memset(r, 0, sizeof *r);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

#define RUN_COLS LC_STORE_RUN_COLS

static void row_from(sqlite3_stmt *st, struct lc_run_row *r) {
  const char *text[9];
  for (int i = 0; i < 9; i++) text[i] = (const char *)sqlite3_column_text(st, i);
  lc_store_row_fill(r, text, sqlite3_column_double(st, 9), sqlite3_column_double(st, 10),
                    (long)sqlite3_column_int64(st, 11), sqlite3_column_int(st, 12));
}

/* keep: NULL, or where the statement is kept prepared between calls (the
 * writer's: parsing the INSERT again for every line was an eighth of the
 * whole process's instructions at 1,000 concurrent agents). */
static int insert_line(sqlite3 *db, sqlite3_stmt **keep, const char *run_id, long seq,
                       const char *text, size_t len) {
  sqlite3_stmt *st = keep ? *keep : NULL;
  int rc = st ? SQLITE_OK
              : sqlite3_prepare_v2(db,
                                   "INSERT INTO journal(run_id, seq, line, crc) VALUES(?,?,?,?)",
                                   -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, lc_store_crc32(text, len));
    rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  if (keep && st) {
    sqlite3_reset(st); /* (its error, if any, is rc already) */
    sqlite3_clear_bindings(st); /* the texts were SQLITE_STATIC */
    *keep = st;
  } else {
    sqlite3_finalize(st);
  }
  return rc;
}

/* Rows per multi-row INSERT: a statement's own work (its start, halt,
 * reset: ~3,000 of a row's ~12,000 instructions, callgrind) shared by
 * that many lines; a group's rest goes INS_NARROW, then 1 at a time. */
#define INS_WIDE 16
#define INS_NARROW 4

/* One INSERT of the k lines v[0..k) (journal lines, not creations), its
 * statement prepared into *keep the first time. SQLite's code. */
static int insert_rows(sqlite3 *db, sqlite3_stmt **keep, struct lc_store_pending **v, int k) {
  if (!*keep) {
    /* OR ROLLBACK: a conflict ends the transaction (the caller goes again
     * a row at a time), so SQLite keeps no statement journal to undo half
     * a statement (a copy of each page it touches: ~2,500 instructions a
     * line, callgrind, with the default ABORT). */
    static const char head[] =
        "INSERT OR ROLLBACK INTO journal(run_id, seq, line, crc) VALUES(?,?,?,?)";
    char sql[sizeof head + INS_WIDE * 10];
    size_t n = sizeof head - 1;
    memcpy(sql, head, n);
    for (int i = 1; i < k; i++, n += 10) memcpy(sql + n, ",(?,?,?,?)", 10);
    sql[n] = '\0';
    int rc = sqlite3_prepare_v2(db, sql, (int)n, keep, NULL);
    if (rc != SQLITE_OK) {
      *keep = NULL;
      return rc;
    }
  }
  sqlite3_stmt *st = *keep;
  for (int i = 0; i < k; i++) {
    struct lc_store_pending *p = v[i];
    sqlite3_bind_text(st, 4 * i + 1, p->c.run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4 * i + 2, p->seq);
    sqlite3_bind_text(st, 4 * i + 3, p->text, (int)p->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4 * i + 4, lc_store_crc32(p->text, p->len));
  }
  int rc = sqlite3_step(st);
  rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* the texts were SQLITE_STATIC */
  return rc;
}

/* INSERTs the run row (status running unless given) on db. */
static int insert_run(sqlite3 *db, const struct lc_run_row *r, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = 0;
  double t = lc_store_now_s();
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO runs(id, script, script_sha256, args, cwd, status, "
                         "created, updated, pid) VALUES(?,?,?,?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return dberr(db, err, errlen, "creating the run");
  bind_text(st, 1, r->id);
  bind_text(st, 2, r->script);
  bind_text(st, 3, r->script_sha256);
  bind_text(st, 4, r->args);
  bind_text(st, 5, r->cwd);
  bind_text(st, 6, r->status ? r->status : "running");
  sqlite3_bind_double(st, 7, t);
  sqlite3_bind_double(st, 8, t);
  sqlite3_bind_int64(st, 9, r->pid);
  int x = sqlite3_step(st);
  if (x == SQLITE_CONSTRAINT_PRIMARYKEY) {
    snprintf(err, errlen, "store: a run with id %s exists already", r->id);
    rc = LC_ESTATE;
  } else if (x != SQLITE_DONE) {
    rc = dberr(db, err, errlen, "creating the run");
  }
  sqlite3_finalize(st);
  return rc;
}

int lc_store_run_create(struct lc_store *s, const struct lc_run_row *r, const char *header,
                        size_t header_len, char *err, size_t errlen) {
  if (s->pg) return lc_pgstore_run_create(s->pg, r, header, header_len, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  pthread_mutex_lock(&s->dbmu);
  int rc = exec_busy(s->db, "BEGIN IMMEDIATE", err, errlen);
  if (!rc) {
    rc = insert_run(s->db, r, err, errlen);
    if (!rc && insert_line(s->db, NULL, r->id, 1, header, header_len) != SQLITE_OK)
      rc = dberr(s->db, err, errlen, "writing the journal header");
    char e2[64];
    if (!rc) rc = exec(s->db, "COMMIT", err, errlen);
    else exec(s->db, "ROLLBACK", e2, sizeof e2);
  }
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_store_run_get(struct lc_store *s, const char *id, struct lc_run_row *out, char *err,
                     size_t errlen) {
  if (s->pg) return lc_pgstore_run_get(s->pg, id, out, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT " RUN_COLS " FROM runs WHERE id=?", -1, &st, NULL) !=
      SQLITE_OK) {
    rc = dberr(s->db, err, errlen, "reading a run");
  } else {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int x = sqlite3_step(st);
    if (x == SQLITE_ROW) row_from(st, out);
    else if (x == SQLITE_DONE) {
      snprintf(err, errlen, "no run %s in %s", id, s->path);
      rc = LC_ENOTFOUND;
    } else {
      rc = dberr(s->db, err, errlen, "reading a run");
    }
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_store_run_set_status(struct lc_store *s, const char *id, const char *status,
                            const char *result, const char *error, const char *question,
                            long pid, char *err, size_t errlen) {
  if (s->pg) return lc_pgstore_run_set_status(s->pg, id, status, result, error, question, pid, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(s->db,
                         "UPDATE runs SET status=?, result=?, error=?, question=?, pid=?, "
                         "updated=?, cancel_requested=CASE WHEN ?='running' THEN "
                         "cancel_requested ELSE 0 END WHERE id=?",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = dberr(s->db, err, errlen, "updating a run");
  } else {
    bind_text(st, 1, status);
    bind_text(st, 2, result);
    bind_text(st, 3, error);
    bind_text(st, 4, question);
    sqlite3_bind_int64(st, 5, pid);
    sqlite3_bind_double(st, 6, lc_store_now_s());
    bind_text(st, 7, status);
    bind_text(st, 8, id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = dberr(s->db, err, errlen, "updating a run");
    else if (sqlite3_changes(s->db) == 0) {
      snprintf(err, errlen, "no run %s in %s", id, s->path);
      rc = LC_ENOTFOUND;
    }
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_store_run_cancel(struct lc_store *s, const char *id, char *was, size_t waslen, char *err,
                        size_t errlen) {
  if (s->pg) return lc_pgstore_run_cancel(s->pg, id, was, waslen, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  struct lc_run_row r;
  int rc = lc_store_run_get(s, id, &r, err, errlen);
  if (rc) return rc;
  snprintf(was, waslen, "%s", r.status ? r.status : "");
  const char *st = r.status ? r.status : "";
  int terminal = lc_store_status_terminal(st);
  int live = !strcmp(st, "running") && lc_store_pid_alive(r.pid);
  lc_run_row_free(&r);
  if (terminal) return 0; /* idempotent: nothing to do */
  pthread_mutex_lock(&s->dbmu);
  const char *sql = live ? "UPDATE runs SET cancel_requested=1, updated=? WHERE id=?"
                         : "UPDATE runs SET status='cancelled', pid=0, question=NULL, updated=? "
                           "WHERE id=?";
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
    rc = dberr(s->db, err, errlen, "cancelling a run");
  } else {
    sqlite3_bind_double(q, 1, lc_store_now_s());
    sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) rc = dberr(s->db, err, errlen, "cancelling a run");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_store_run_list(struct lc_store *s, long limit,
                      int (*fn)(void *ud, const struct lc_run_row *r), void *ud, char *err,
                      size_t errlen) {
  if (s->pg) return lc_pgstore_run_list(s->pg, limit, fn, ud, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT " RUN_COLS " FROM runs ORDER BY created DESC, id LIMIT ?", -1,
                         &st, NULL) != SQLITE_OK) {
    rc = dberr(s->db, err, errlen, "listing runs");
  } else {
    sqlite3_bind_int64(st, 1, limit > 0 ? limit : -1);
    int x;
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
      struct lc_run_row r;
      row_from(st, &r);
      int stop = fn(ud, &r);
      lc_run_row_free(&r);
      if (stop) break;
    }
    if (x != SQLITE_ROW && x != SQLITE_DONE) rc = dberr(s->db, err, errlen, "listing runs");
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

/* ---- journal ---- */

int lc_store_journal_read(struct lc_store *s, const char *run_id,
                          int (*fn)(void *ud, long seq, const char *text, size_t len), void *ud,
                          long *last, char *err, size_t errlen) {
  if (s->pg) return lc_pgstore_journal_read(s->pg, run_id, fn, ud, last, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  *last = 0;
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT seq, line, crc FROM journal WHERE run_id=? ORDER BY seq", -1,
                         &st, NULL) != SQLITE_OK) {
    rc = dberr(s->db, err, errlen, "reading a journal");
  } else {
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    int x;
    long want = 1;
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
      long seq = (long)sqlite3_column_int64(st, 0);
      const char *text = (const char *)sqlite3_column_text(st, 1);
      size_t len = (size_t)sqlite3_column_bytes(st, 1);
      uint32_t crc = (uint32_t)sqlite3_column_int64(st, 2);
      if ((rc = lc_store_line_check(s->path, run_id, want, seq, text, len, crc, err, errlen)))
        break;
      *last = seq;
      want++;
      /* The callback runs with the lock held: it must not call back in. */
      if ((rc = fn(ud, seq, text, len)) != 0) break;
    }
    if (!rc && x != SQLITE_DONE) rc = dberr(s->db, err, errlen, "reading a journal");
    if (!rc && *last == 0) rc = lc_store_no_journal(s->path, run_id, err, errlen);
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

int lc_store_journal_append_now(struct lc_store *s, const char *run_id, long seq,
                                const char *text, size_t len, char *err, size_t errlen) {
  if (s->pg) return lc_pgstore_journal_append_now(s->pg, run_id, seq, text, len, err, errlen);
  if (ensure(s, err, errlen)) return s->open_rc;
  pthread_mutex_lock(&s->dbmu);
  int rc = 0;
  int x = insert_line(s->db, NULL, run_id, seq, text, len);
  if (x == SQLITE_CONSTRAINT_PRIMARYKEY) {
    snprintf(err, errlen, "store: run %s already has journal line %ld", run_id, seq);
    rc = LC_ESTATE;
  } else if (x != SQLITE_OK) {
    rc = dberr(s->db, err, errlen, "appending to a journal");
  }
  pthread_mutex_unlock(&s->dbmu);
  return rc;
}

/* ---- the writer: group commit ---- */

/* Queues the chain p..last (linked through next; one client's); starts
 * the writer thread on the first item. */
static int enqueue(struct lc_store *s, struct lc_store_pending *p, struct lc_store_pending *last) {
  pthread_mutex_lock(&s->mu);
  /* A client whose line failed writes nothing more (its journal would have
   * a gap); other clients go on. */
  int failed = s->failed || p->orig->failed;
  if (!failed && !s->writer_on) {
    if (pthread_create(&s->writer, NULL, writer_main, s)) failed = 1;
    else s->writer_on = 1;
  }
  if (!failed) {
    if (!s->head) s->since = mono_ms();
    *s->tail = p;
    s->tail = &last->next;
    for (struct lc_store_pending *x = p; x; x = x->next) {
      s->nq++;
      s->urgent += !x->lazy;
    }
    /* A lazy line does not wake a writer that waits for more lazy lines
     * already (until a full group): not a futex wake per line. */
    if (!p->lazy || !s->wtimed || s->nq >= LC_STORE_LAZY_MAX || s->nq == LC_STORE_LAZY_LINES)
      pthread_cond_signal(&s->cv); /* the last: the writer may be in its longer wait */
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

int lc_store_append_run(struct lc_store *s, const struct lc_store_client *c,
                        const struct lc_run_row *r, unsigned long ticket, const char *header,
                        size_t len) {
  if (s->pg) return lc_pgstore_append_run(s->pg, c, r, ticket, header, len);
  struct lc_store_pending *last, *p = lc_store_pending_create(c, r, ticket, header, len, &last);
  return p ? enqueue(s, p, last) : LC_ENOMEM;
}

int lc_store_append(struct lc_store *s, const struct lc_store_client *c, long seq,
                    unsigned long ticket, const char *text, size_t len) {
  if (s->pg) return lc_pgstore_append(s->pg, c, seq, ticket, text, len);
  struct lc_store_pending *p = lc_store_pending_line(c, seq, ticket, text, len);
  return p ? enqueue(s, p, p) : LC_ENOMEM;
}

int lc_store_append_lazy(struct lc_store *s, const struct lc_store_client *c, long seq,
                         unsigned long ticket, char *text, size_t len) {
  if (s->pg) {
    int rc = lc_pgstore_append(s->pg, c, seq, ticket, text, len);
    lc_free(text);
    return rc;
  }
  struct lc_store_pending *p = lc_calloc(1, sizeof *p);
  if (!p) {
    lc_free(text);
    return LC_ENOMEM;
  }
  p->text = text;
  p->len = len;
  p->lazy = 1;
  p->c = *c;
  p->orig = (struct lc_store_client *)c;
  p->seq = seq;
  p->ticket = ticket;
  return enqueue(s, p, p);
}

/* Under s->mu: waits until no commit of lazy lines is left without the
 * WAL's fsync (the writer syncs it: wal_sync). A flush promises what a
 * full commit does. */
static void await_synced(struct lc_store *s) {
  if (!s->unsynced) return;
  s->syncreq++;
  pthread_cond_signal(&s->cv);
  while (s->unsynced && !s->failed && s->writer_on) pthread_cond_wait(&s->idle, &s->mu);
  s->syncreq--;
}

void lc_store_flush(struct lc_store *s) {
  if (s->pg) {
    lc_pgstore_flush(s->pg);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->flushing++; /* lazy lines go now */
  pthread_cond_signal(&s->cv);
  while (s->head || s->busy) pthread_cond_wait(&s->idle, &s->mu);
  await_synced(s);
  s->flushing--;
  pthread_mutex_unlock(&s->mu);
}

void lc_store_flush_client(struct lc_store *s, const void *ud) {
  if (s->pg) { /* its writer's queue is short: all of it */
    lc_pgstore_flush(s->pg);
    return;
  }
  pthread_mutex_lock(&s->mu);
  /* Lazy lines go now (lazy_hold); the wait is for this client's lines. */
  struct fwait me = {ud, s->fwaits};
  s->fwaits = &me;
  pthread_cond_signal(&s->cv);
  for (;;) {
    int queued = 0;
    for (struct lc_store_pending *p = s->head; p && !queued; p = p->next) queued = p->c.ud == ud;
    if (!queued) break;
    pthread_cond_wait(&s->idle, &s->mu);
  }
  /* Its last lines are in a group taken by now: wait for that group's end
   * (groups go one after the other). */
  unsigned long g = s->taken;
  while (s->done < g) pthread_cond_wait(&s->idle, &s->mu);
  await_synced(s);
  for (struct fwait **p = &s->fwaits; *p; p = &(*p)->next)
    if (*p == &me) {
      *p = me.next;
      break;
    }
  pthread_mutex_unlock(&s->mu);
}

/* The group the writer takes (under s->mu): everything queued. A run's
 * creation and its first line are queued together (lc_store_append_run),
 * so no group can commit a run without a journal, which nothing could
 * resume. NULL: nothing queued. */
static struct lc_store_pending *take_group(struct lc_store *s) {
  struct lc_store_pending *g = s->head;
  s->head = NULL;
  s->tail = &s->head;
  s->nq = s->urgent = 0;
  return g;
}

/* Under s->mu: 1 (and *until) while the queue holds only lazy lines that
 * may wait for more: no other line, flush, close, full group or deadline.
 * Past lazy_ms a queue of fewer than LC_STORE_LAZY_LINES waits on until
 * lazy_long_ms: a commit's fixed cost (BEGIN, the WAL's pages, the
 * writer's wake-up, the cancel check) is shared by more lines where they
 * come slowly; where they come fast nothing changes. */
static int lazy_hold(const struct lc_store *s, double *until) {
  if (!s->head || s->urgent || s->stop || s->flushing || s->fwaits ||
      s->nq >= LC_STORE_LAZY_MAX)
    return 0;
  double now = mono_ms();
  *until = s->since + s->lazy_ms;
  if (now < *until) return 1;
  if (s->nq >= LC_STORE_LAZY_LINES) return 0;
  *until = s->since + s->lazy_long_ms;
  return now < *until;
}

long lc_store_wal_syncs(const struct lc_store *s) {
  if (s->pg) return 0;
  pthread_mutex_lock((pthread_mutex_t *)&s->mu);
  long n = s->wal_syncs;
  pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
  return n;
}

long lc_store_cancel_checks(const struct lc_store *s) {
  return s->pg ? 0 : atomic_load(&s->cancel_checks);
}

long lc_store_writer_trips(const struct lc_store *s) {
  return s->pg ? lc_pgstore_writer_trips(s->pg) : 0;
}

void lc_store_stats(const struct lc_store *s, long *lines, long *commits) {
  if (s->pg) {
    lc_pgstore_stats(s->pg, lines, commits);
    return;
  }
  pthread_mutex_lock((pthread_mutex_t *)&s->mu);
  if (lines) *lines = s->lines;
  if (commits) *commits = s->commits;
  pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}

/* Errors of one line (its client's), not of the store: another run's
 * lines in the same group are written without it. */
static int one_clients_error(int sqlite_rc) {
  int c = sqlite_rc & 0xff;
  return c == SQLITE_CONSTRAINT || c == SQLITE_TOOBIG || c == SQLITE_MISMATCH ||
         c == SQLITE_RANGE;
}

/* Commits one group; returns an errno-like code (0 on success) for the
 * whole group. A line that fails by itself (a conflict: one run's line
 * that is there already, a run id taken) fails only its client: the
 * transaction is rolled back and the group tried again without that
 * client's items (p->err set), so each retry drops one client. The
 * writer's connection is made here, on the writer thread, the first time. */
/* exec (retry: exec_busy) for the writer's statements run on every group: prepared
 * once (sqlite3_exec parsed BEGIN and COMMIT again for each commit, and at
 * one client every journal line is a commit of its own). */
static int step_busy(sqlite3 *db, sqlite3_stmt **st, const char *sql, int retry, char *err,
                     size_t errlen) {
  if (!*st && sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
    *st = NULL;
    return retry ? exec_busy(db, sql, err, errlen) : exec(db, sql, err, errlen);
  }
  double until = mono_ms() + BUSY_MS;
  for (;;) {
    int rc = sqlite3_step(*st);
    sqlite3_reset(*st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    int c = rc & 0xff;
    if (retry && (c == SQLITE_BUSY || c == SQLITE_LOCKED) && mono_ms() < until) {
      sqlite3_sleep(20);
      continue;
    }
    snprintf(err, errlen, "store: %s", sqlite3_errmsg(db));
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB ? LC_EINVAL : LC_EIO;
  }
}

static int commit_group(struct lc_store *s, struct lc_store_pending *g, int full) {
  char err[1024];
  if (!s->wdb) {
    if (ensure(s, NULL, 0)) return EIO; /* the file, checked once */
    if (connect(s->path, s->sync, &s->wdb, err, sizeof err)) return EIO;
    s->wsync_normal = s->sync == LC_STORE_SYNC_NORMAL;
  }
  /* Set between transactions: it applies to the next COMMIT. */
  if (s->sync == LC_STORE_SYNC_FULL && s->wsync_normal == full) {
    if (full ? step_busy(s->wdb, &s->wsync_full_st, "PRAGMA synchronous=FULL", 1, err, sizeof err)
             : step_busy(s->wdb, &s->wsync_normal_st, "PRAGMA synchronous=NORMAL", 1, err,
                         sizeof err))
      return EIO;
    s->wsync_normal = !full;
  }
  for (;;) {
    if (step_busy(s->wdb, &s->wbegin, "BEGIN IMMEDIATE", 1, err, sizeof err)) return EIO;
    /* The transaction has its snapshot now: anyone else's commit since
     * ours has moved the version. A retry compares with the same wdv. */
    unsigned dv = 0;
    s->others_wrote = !s->wdv_ok ||
                      sqlite3_file_control(s->wdb, "main", SQLITE_FCNTL_DATA_VERSION, &dv) !=
                          SQLITE_OK ||
                      dv != s->wdv;
    struct lc_store_pending *bad = NULL;
    int global = 0, again = 0;
    for (struct lc_store_pending *p = g; p && !bad && !again;) {
      if (p->err) {
        p = p->next;
        continue;
      }
      if (p->create) {
        int rc = insert_run(s->wdb, p->create, err, sizeof err);
        if (rc) bad = p, global = rc != LC_ESTATE;
        p = p->next;
        continue;
      }
      /* The lines from here to the next creation, up to INS_WIDE. */
      struct lc_store_pending *v[INS_WIDE], *q = p;
      int m = 0;
      for (; q && m < INS_WIDE && !q->create && !s->single; q = q->next)
        if (!q->err) v[m++] = q;
      int k = m == INS_WIDE ? INS_WIDE : m >= INS_NARROW ? INS_NARROW : 0;
      if (k) {
        int rc = insert_rows(s->wdb, k == INS_WIDE ? &s->wins_wide : &s->wins_narrow, v, k);
        if (rc != SQLITE_OK && one_clients_error(rc)) again = s->single = 1; /* rows tell */
        else if (rc != SQLITE_OK) bad = p, global = 1;
        p = v[k - 1]->next;
        continue;
      }
      int rc = insert_line(s->wdb, &s->wins, p->c.run_id, p->seq, p->text, p->len);
      if (rc != SQLITE_OK) bad = p, global = !one_clients_error(rc);
      p = p->next;
    }
    if (!bad && !again && !step_busy(s->wdb, &s->wcommit, "COMMIT", 0, err, sizeof err)) {
      s->single = 0;
      s->wdv_ok = sqlite3_file_control(s->wdb, "main", SQLITE_FCNTL_DATA_VERSION, &s->wdv) ==
                  SQLITE_OK;
      return 0;
    }
    char e2[64];
    exec(s->wdb, "ROLLBACK", e2, sizeof e2);
    if (again) continue; /* the same group, a row at a time */
    s->single = 0;
    if (!bad || global) return EIO;
    /* That client's items fail, the rest go again. */
    for (struct lc_store_pending *p = g; p; p = p->next)
      if (p->orig == bad->orig) p->err = EIO;
  }
}

/* After a commit: each client hears of its newest line in the group (the
 * last one it queued: lines of one client are queued in ticket order), and
 * of a cancel asked for its run. A small pointer set keeps it linear in
 * the group's size. */
static void notify(struct lc_store *s, struct lc_store_pending *g, long n, int err) {
  struct lc_store_pending **v = lc_malloc((size_t)n * sizeof *v);
  size_t cap = 16;
  while (cap < (size_t)n * 2) cap *= 2;
  const void **seen = lc_calloc(cap, sizeof *seen);
  if (!v || !seen) { /* no memory: tell every line (still correct, slower) */
    for (struct lc_store_pending *p = g; p; p = p->next)
      if (p->c.committed) p->c.committed(p->c.ud, p->ticket, err ? err : p->err);
    lc_free(v);
    lc_free(seen);
    return;
  }
  long k = 0;
  for (struct lc_store_pending *p = g; p; p = p->next) v[k++] = p;
  /* Prepared once: at one client every effect is a commit of its own, and
   * preparing it was a SQL parse per commit. */
  if (!err && !s->wcancel &&
      sqlite3_prepare_v2(s->wdb, "SELECT cancel_requested FROM runs WHERE id=?", -1,
                         &s->wcancel, NULL) != SQLITE_OK)
    s->wcancel = NULL;
  /* Nobody else wrote since the writer's last commit: no cancel can
   * have been asked (it was ~8% of a commit's instructions, per client). */
  sqlite3_stmt *st = err || !s->others_wrote ? NULL : s->wcancel;
  for (long i = n - 1; i >= 0; i--) {
    struct lc_store_pending *p = v[i];
    size_t h = ((uintptr_t)p->c.ud >> 4) & (cap - 1);
    while (seen[h] && seen[h] != p->c.ud) h = (h + 1) & (cap - 1);
    if (seen[h] || p->create) continue; /* a later line of this client reported */
    seen[h] = p->c.ud;
    /* a failed client's items all carry its error, the last one too */
    if (p->c.committed) p->c.committed(p->c.ud, p->ticket, err ? err : p->err);
    if (st && !p->err && p->c.cancel) {
      atomic_fetch_add(&s->cancel_checks, 1);
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, p->c.run_id, -1, SQLITE_STATIC);
      if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0)) p->c.cancel(p->c.ud);
    }
  }
  if (st) sqlite3_reset(st); /* no read transaction held open */
  lc_free(v);
  lc_free(seen);
}

/* fsyncs the WAL (s->mu held on entry and exit, released meanwhile):
 * for a flush or the close after commits of lazy lines that had none. */
static void wal_sync(struct lc_store *s) {
  pthread_mutex_unlock(&s->mu);
  sqlite3_file *f = NULL;
  int rc = sqlite3_file_control(s->wdb, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
  if (rc == SQLITE_OK && f && f->pMethods) rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
  else rc = SQLITE_ERROR; /* no WAL file to sync: report, never pretend */
  pthread_mutex_lock(&s->mu);
  if (rc != SQLITE_OK) s->failed = 1;
  else s->unsynced = 0, s->wal_syncs++;
  pthread_cond_broadcast(&s->idle);
}

static void *writer_main(void *arg) {
  struct lc_store *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    struct lc_store_pending *g = NULL;
    double until;
    for (;;) {
      if (lazy_hold(s, &until)) {
        struct timespec ts;
        ts.tv_sec = (time_t)(until / 1000);
        ts.tv_nsec = (long)((until - (double)ts.tv_sec * 1000) * 1e6);
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        s->wtimed = 1;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        s->wtimed = 0;
        continue;
      }
      if ((g = take_group(s)) || s->stop) break;
      if (s->syncreq && s->unsynced && !s->failed) {
        wal_sync(s);
        continue;
      }
      pthread_cond_wait(&s->cv, &s->mu);
    }
    if (!g) { /* stopping, nothing queued */
      if (s->unsynced && !s->failed) wal_sync(s);
      break;
    }
    /* The WAL's fsync only where someone counts on it: a line that is
     * not lazy (waited for, or a run's creation), a flush, the close. */
    int full = s->flushing || s->fwaits || s->stop;
    for (struct lc_store_pending *p = g; p && !full; p = p->next) full = !p->lazy || p->create;
    s->busy = 1;
    /* Lines a client queued before it heard that an earlier one failed. */
    for (struct lc_store_pending *p = g; p; p = p->next)
      if (p->orig->failed) p->err = EIO;
    s->taken++;
    pthread_mutex_unlock(&s->mu);
    int err = s->failed ? EIO : commit_group(s, g, full);
    long n = 0, written = 0;
    pthread_mutex_lock(&s->mu);
    for (struct lc_store_pending *p = g; p; p = p->next) {
      n++;
      written += !p->err;
      /* before the client hears (notify): its next append is refused */
      if (p->err) p->orig->failed = 1;
    }
    /* The counts too: a client that heard of its line reads them. */
    if (err) s->failed = 1;
    else {
      s->lines += written;
      s->commits += written > 0;
      if (written && s->sync == LC_STORE_SYNC_FULL) {
        s->unsynced = !full;
        s->wal_syncs += full;
      }
    }
    pthread_mutex_unlock(&s->mu);
    notify(s, g, n, err);
    while (g) {
      struct lc_store_pending *x = g;
      g = g->next;
      lc_store_pending_free(x);
    }
    pthread_mutex_lock(&s->mu);
    s->busy = 0;
    s->done = s->taken;
    /* lc_store_flush waits for the queue's end, lc_store_flush_client for
     * its own group's. */
    pthread_cond_broadcast(&s->idle);
  }
  s->busy = 0;
  pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---- PostgreSQL only (store_pg.c) ---- */

int lc_store_fence(struct lc_store *s, const char *run_id, long epoch) {
  if (!s->pg) return 0;
  if (!epoch) {
    lc_pgstore_unfence(s->pg, run_id);
    return 0;
  }
  return lc_pgstore_fence(s->pg, run_id, epoch);
}

void lc_store_fence_owner(struct lc_store *s, const char *owner) {
  if (s->pg) lc_pgstore_fence_owner(s->pg, owner);
}

long lc_store_fence_of(struct lc_store *s, const char *run_id) {
  return s->pg ? lc_pgstore_fence_of(s->pg, run_id) : 0;
}

int lc_store_is_pg_store(const struct lc_store *s) { return s->pg != NULL; }
