/* sql.c: the SQL tool's core: a connection with its own thread, one bound
 * statement per query with capped JSON results under a deadline and
 * resource limits, trusted setup scripts, the authorizer that keeps
 * pointers, files and unbounded resources away from the model. */
#include "sql.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

/* Appends to a fixed buffer, silently stopping at its end (messages only). */
static void cat(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cat(char *dst, size_t cap, const char *fmt, ...) {
  size_t used = strlen(dst);
  if (used + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst + used, cap - used, fmt, ap);
  va_end(ap);
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* ---- base64 (RFC 4648, padded) for BLOB values both ways ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t n) {
  size_t outlen = 4 * ((n + 2) / 3);
  char *o = malloc(outlen + 1); /* handed to cJSON, which uses malloc */
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    o[j++] = b64chars[(v >> 18) & 63];
    o[j++] = b64chars[(v >> 12) & 63];
    o[j++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
    o[j++] = i + 2 < n ? b64chars[v & 63] : '=';
  }
  o[j] = '\0';
  return o;
}

static int b64_val(int c) {
  const char *q = c ? strchr(b64chars, c) : NULL;
  return q ? (int)(q - b64chars) : -1;
}

/* Returns a malloc'd buffer (length *n) or NULL if s is not padded base64. */
static unsigned char *b64_decode(const char *s, size_t *n) {
  size_t len = strlen(s);
  if (len % 4) return NULL;
  unsigned char *o = malloc(len / 4 * 3 + 1);
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      if (s[i + k] == '=' && i + 4 == len && k >= 2) {
        v[k] = 0;
        pad++;
      } else if (pad || (v[k] = b64_val((unsigned char)s[i + k])) < 0) {
        free(o);
        return NULL;
      }
    }
    unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
                 (unsigned)v[2] << 6 | (unsigned)v[3];
    o[j++] = (unsigned char)(x >> 16);
    if (pad < 2) o[j++] = (unsigned char)(x >> 8);
    if (pad < 1) o[j++] = (unsigned char)x;
  }
  *n = j;
  return o;
}

static cJSON *b64_object(const void *p, size_t n) {
  char *s = b64_encode(p, n);
  cJSON *o = cJSON_CreateObject();
  cJSON *v = s ? cJSON_CreateString(s) : NULL;
  free(s);
  if (!o || !v) {
    cJSON_Delete(o);
    cJSON_Delete(v);
    return NULL;
  }
  cJSON_AddItemToObject(o, "$base64", v);
  return o;
}

/* ---- connection and job state ---- */

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };
enum { KIND_QUERY, KIND_SCRIPT };

/* Everything below db->mu is shared between the owner's thread and the SQL
 * thread; the rest of struct lc_sql_db is used by one thread at a time (the
 * SQL thread while a job runs, the opener/closer when none can). Both
 * structs use plain malloc, not lc_malloc (so does everything the SQL
 * thread allocates): whichever thread lets go last
 * frees them, possibly after a test's allocation-count check. */
struct lc_sql_job {
  struct lc_sql_db *db; /* holds a reference */
  struct lc_sql_job *next;
  int kind;
  char *sql;
  cJSON *params;
  struct lc_sql_opts opts;
  double deadline_ms; /* monotonic */
  int efd;            /* -1 for blocking callers */
  /* under db->mu */
  int state;
  int refs; /* submitter + queue/thread */
  /* written by the SQL thread before state = JOB_DONE */
  int rc;
  cJSON *result;
  char err[512];
};

struct lc_sql_db {
  struct sqlite3 *h;
  unsigned flags;
  size_t max_length, max_temp;
  sqlite3_int64 max_pages, page_size; /* read-write growth cap */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* queue changed, or a job is done */
  pthread_t thread;
  int thread_started;
  int refs;    /* owner + thread + jobs; under mu */
  int closing; /* under mu */
  struct lc_sql_job *head, *tail, *running; /* under mu */
  atomic_int stop; /* the running job is cancelled */
  /* Used only by the thread running a job: */
  double deadline_ms;
  int timed_out, temp_full, trusted;
  char denied[96];
  int denied_rc;
  size_t temp_used; /* bytes in open temp files (capfile) */
};

static void db_free(struct lc_sql_db *db) {
  sqlite3_close_v2(db->h); /* statements are finalized on every path */
  pthread_mutex_destroy(&db->mu);
  pthread_cond_destroy(&db->cv);
  free(db);
}

/* Drops one reference; db->mu held. Returns 1 when it was the last: the
 * caller unlocks and calls db_free. */
static int db_unref_locked(struct lc_sql_db *db) { return --db->refs == 0; }

static void job_free(struct lc_sql_job *j) {
  if (j->efd >= 0) close(j->efd);
  free(j->sql);
  cJSON_Delete(j->params);
  cJSON_Delete(j->result);
  free(j);
}

/* Drops one job reference with db->mu held; a freed job drops its db
 * reference. Returns 1 when that was the db's last. */
static int job_unref_locked(struct lc_sql_job *j) {
  if (--j->refs > 0) return 0;
  struct lc_sql_db *db = j->db;
  job_free(j);
  return db_unref_locked(db);
}

/* Marks j done with db->mu held and tells its waiter. */
static void job_done_locked(struct lc_sql_job *j) {
  j->state = JOB_DONE;
  if (j->efd >= 0) {
    uint64_t one = 1;
    ssize_t n = write(j->efd, &one, sizeof one); /* an eventfd never blocks here */
    (void)n;
  }
  pthread_cond_broadcast(&j->db->cv);
}

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- temp-storage cap: a VFS shim over the default one ----
 *
 * Sorts that spill, recursive-CTE queues, DISTINCT/GROUP BY tables and temp
 * tables all live in temporary files the connection opens through its VFS.
 * The shim counts the bytes of every temp file of the connection that is
 * running a job (the SQL thread sets cur_db) and refuses a write past
 * db->max_temp with SQLITE_FULL. Main database, journal and WAL files pass
 * through untouched. */

static _Thread_local struct lc_sql_db *cur_db;
static sqlite3_vfs *base_vfs;
static sqlite3_vfs cap_vfs;
static pthread_once_t cap_once = PTHREAD_ONCE_INIT;
static int cap_ok;

struct capfile {
  sqlite3_file base;
  struct lc_sql_db *owner; /* NULL: not a temp file */
  sqlite3_int64 size;      /* bytes counted for this file */
  sqlite3_file *real;      /* follows this struct (szOsFile) */
};

static int cap_close(sqlite3_file *f) {
  struct capfile *c = (struct capfile *)f;
  if (c->owner) c->owner->temp_used -= (size_t)c->size;
  return c->real->pMethods ? c->real->pMethods->xClose(c->real) : SQLITE_OK;
}
static int cap_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
  struct capfile *c = (struct capfile *)f;
  return c->real->pMethods->xRead(c->real, p, n, off);
}
static int cap_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
  struct capfile *c = (struct capfile *)f;
  if (c->owner && off + n > c->size) {
    sqlite3_int64 grow = off + n - c->size;
    if (c->owner->temp_used + (size_t)grow > c->owner->max_temp) {
      c->owner->temp_full = 1;
      return SQLITE_FULL;
    }
    c->owner->temp_used += (size_t)grow;
    c->size = off + n;
  }
  return c->real->pMethods->xWrite(c->real, p, n, off);
}
static int cap_truncate(sqlite3_file *f, sqlite3_int64 size) {
  struct capfile *c = (struct capfile *)f;
  if (c->owner && size < c->size) {
    c->owner->temp_used -= (size_t)(c->size - size);
    c->size = size;
  }
  return c->real->pMethods->xTruncate(c->real, size);
}
#define FWD(name, sig, args)                                          \
  static int cap_##name sig {                                         \
    struct capfile *c = (struct capfile *)f;                          \
    return c->real->pMethods->x##name args;                           \
  }
FWD(Sync, (sqlite3_file *f, int fl), (c->real, fl))
FWD(FileSize, (sqlite3_file *f, sqlite3_int64 *s), (c->real, s))
FWD(Lock, (sqlite3_file *f, int l), (c->real, l))
FWD(Unlock, (sqlite3_file *f, int l), (c->real, l))
FWD(CheckReservedLock, (sqlite3_file *f, int *o), (c->real, o))
FWD(FileControl, (sqlite3_file *f, int op, void *a), (c->real, op, a))
FWD(SectorSize, (sqlite3_file *f), (c->real))
FWD(DeviceCharacteristics, (sqlite3_file *f), (c->real))
FWD(ShmMap, (sqlite3_file *f, int i, int sz, int e, void volatile **p),
    (c->real, i, sz, e, p))
FWD(ShmLock, (sqlite3_file *f, int o, int n, int fl), (c->real, o, n, fl))
FWD(ShmUnmap, (sqlite3_file *f, int d), (c->real, d))
FWD(Fetch, (sqlite3_file *f, sqlite3_int64 o, int n, void **p),
    (c->real, o, n, p))
FWD(Unfetch, (sqlite3_file *f, sqlite3_int64 o, void *p), (c->real, o, p))
#undef FWD
static void cap_ShmBarrier(sqlite3_file *f) {
  struct capfile *c = (struct capfile *)f;
  c->real->pMethods->xShmBarrier(c->real);
}

static const sqlite3_io_methods cap_methods = {
    3,           cap_close,       cap_read,
    cap_write,   cap_truncate,    cap_Sync,
    cap_FileSize, cap_Lock,       cap_Unlock,
    cap_CheckReservedLock, cap_FileControl, cap_SectorSize,
    cap_DeviceCharacteristics, cap_ShmMap, cap_ShmLock,
    cap_ShmBarrier, cap_ShmUnmap, cap_Fetch,
    cap_Unfetch};

#define TEMP_FILES                                                \
  (SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL |               \
   SQLITE_OPEN_SUBJOURNAL | SQLITE_OPEN_TRANSIENT_DB)

static int cap_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                    int flags, int *out) {
  (void)vfs;
  struct capfile *c = (struct capfile *)f;
  memset(c, 0, sizeof *c);
  c->real = (sqlite3_file *)(c + 1);
  int rc = base_vfs->xOpen(base_vfs, name, c->real, flags, out);
  if (rc != SQLITE_OK) return rc; /* pMethods stays NULL: no xClose */
  if ((flags & TEMP_FILES) || !name) c->owner = cur_db;
  c->base.pMethods = &cap_methods;
  return SQLITE_OK;
}

static void cap_init(void) {
  base_vfs = sqlite3_vfs_find(NULL);
  if (!base_vfs || base_vfs->iVersion < 1) return;
  cap_vfs = *base_vfs;
  cap_vfs.iVersion = base_vfs->iVersion < 3 ? base_vfs->iVersion : 3;
  cap_vfs.szOsFile = (int)sizeof(struct capfile) + base_vfs->szOsFile;
  cap_vfs.zName = "luact-capped";
  cap_vfs.pNext = NULL;
  cap_vfs.xOpen = cap_open;
  cap_ok = sqlite3_vfs_register(&cap_vfs, 0) == SQLITE_OK;
}

/* ---- the authorizer: what a model can never reach ---- */

/* Pragmas that only report, even when given an argument (a table name). */
static const char *const introspect_pragmas[] = {
    "table_info",  "table_xinfo",      "index_info",        "index_xinfo",
    "index_list",  "foreign_key_list", "foreign_key_check", "integrity_check",
    "quick_check", NULL};
/* Pragmas that change the file or the connection even without a value. */
static const char *const acting_pragmas[] = {
    "optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory", NULL};
/* Pragmas that tell the host's file paths: never, in either mode. */
static const char *const path_pragmas[] = {
    "database_list", "temp_store_directory", "data_store_directory", NULL};
/* Functions that hand out or take pointers (fts3_tokenizer, fts5), load
 * code (load_extension), touch files (the CLI's readfile, writefile, edit,
 * zipfile, fsdir, in case a host registers them), write to the process's
 * log (sqlite_log), or parse caller-made internal pages (rtreenode,
 * rtreedepth). */
static const char *const denied_functions[] = {
    "fts3_tokenizer", "fts5",       "load_extension", "readfile",
    "writefile",      "edit",       "zipfile",        "zipfile_cds",
    "fsdir",          "sqlar_compress", "sqlar_uncompress", "sqlite_log",
    "rtreenode",      "rtreedepth", NULL};
/* Virtual tables that expose raw pages (deleted rows included) or the
 * connection's internals, or reach files. */
static const char *const denied_tables[] = {
    "sqlite_dbpage", "dbstat", "sqlite_stmt", "zipfile", "fsdir", NULL};

static int in_list(const char *const *list, const char *s) {
  for (; s && *list; list++)
    if (strcasecmp(*list, s) == 0) return 1;
  return 0;
}

static int deny(struct lc_sql_db *db, int rc, const char *fmt, const char *a,
                const char *b) {
  snprintf(db->denied, sizeof db->denied, fmt, a ? a : "?", b ? b : "");
  db->denied_rc = rc;
  return SQLITE_DENY;
}

/* sqlite3_set_authorizer callback, on every connection, called by SQLite
 * on the SQL thread while it prepares a statement (views and triggers
 * included). SQLITE_OPEN_READONLY already stops writes to the file; this
 * stops what no model may do in either mode. */
static int authorizer(void *ud, int action, const char *a1, const char *a2,
                      const char *dbname, const char *trigger) {
  struct lc_sql_db *db = ud;
  (void)dbname;
  (void)trigger;
  int ro = (db->flags & LC_SQL_READONLY) != 0;
  switch (action) {
    case SQLITE_ATTACH:
      return deny(db, ro ? LC_SQL_EREADONLY : LC_SQL_EDENIED, "ATTACH%s%s",
                  "", "");
    case SQLITE_DETACH:
      return deny(db, ro ? LC_SQL_EREADONLY : LC_SQL_EDENIED, "DETACH%s%s",
                  "", "");
    case SQLITE_FUNCTION:
      if (in_list(denied_functions, a2))
        return deny(db, LC_SQL_EDENIED, "function %s()%s", a2, "");
      return SQLITE_OK;
    case SQLITE_READ:
    case SQLITE_UPDATE:
    case SQLITE_INSERT:
    case SQLITE_DELETE:
      if (in_list(denied_tables, a1))
        return deny(db, LC_SQL_EDENIED, "table %s%s", a1, "");
      return SQLITE_OK;
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_VTABLE:
      if (in_list(denied_tables, a2))
        return deny(db, LC_SQL_EDENIED, "module %s%s", a2, "");
      return SQLITE_OK;
    case SQLITE_PRAGMA:
      if (db->trusted) return SQLITE_OK;
      if (in_list(path_pragmas, a1))
        return deny(db, LC_SQL_EDENIED, "PRAGMA %s%s", a1, "");
      if (in_list(acting_pragmas, a1) ||
          (a2 && !in_list(introspect_pragmas, a1)))
        return deny(db, ro ? LC_SQL_EREADONLY : LC_SQL_EDENIED, "PRAGMA %s%s",
                    a1, a2 ? " with a value" : "");
      return SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

/* Progress handler (every 1000 VM steps) and busy handler: stop at the
 * deadline or when cancelled. Returning nonzero interrupts the statement. */
static int progress(void *ud) {
  struct lc_sql_db *db = ud;
  if (atomic_load(&db->stop)) return 1;
  if (db->deadline_ms > 0 && mono_ms() > db->deadline_ms) {
    db->timed_out = 1;
    return 1;
  }
  return 0;
}

static int busy(void *ud, int n) {
  if (progress(ud) || n * 10 >= LC_SQL_BUSY_TIMEOUT_MS) return 0;
  sqlite3_sleep(10); /* as SQLite's own busy_timeout, but it can be stopped */
  return 1;
}

/* Per-connection limits (scripts lift the SQL length while they run: they
 * are trusted and may be long). */
static void set_limits(struct lc_sql_db *db) {
  sqlite3 *h = db->h;
  sqlite3_limit(h, SQLITE_LIMIT_LENGTH, (int)db->max_length);
  sqlite3_limit(h, SQLITE_LIMIT_SQL_LENGTH, LC_SQL_MAX_SQL_LENGTH);
  sqlite3_limit(h, SQLITE_LIMIT_COLUMN, 200);
  sqlite3_limit(h, SQLITE_LIMIT_EXPR_DEPTH, 100);
  sqlite3_limit(h, SQLITE_LIMIT_COMPOUND_SELECT, 50);
  sqlite3_limit(h, SQLITE_LIMIT_VDBE_OP, 100000);
  sqlite3_limit(h, SQLITE_LIMIT_FUNCTION_ARG, 32);
  sqlite3_limit(h, SQLITE_LIMIT_ATTACHED, 0); /* also stops VACUUM [INTO] */
  sqlite3_limit(h, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000);
  sqlite3_limit(h, SQLITE_LIMIT_VARIABLE_NUMBER, 999);
  sqlite3_limit(h, SQLITE_LIMIT_TRIGGER_DEPTH, 16);
  sqlite3_limit(h, SQLITE_LIMIT_WORKER_THREADS, 0);
}

/* ---- linear replacements for SQLite's quadratic string functions ----
 *
 * SQLite's instr(), replace() and two-argument trim()/ltrim()/rtrim() try
 * every position against the whole needle or character set: hostile
 * arguments near the length limit cost hours of CPU inside one call, where
 * neither the progress handler nor sqlite3_interrupt can reach (trim of
 * 100 000 characters against a set of 100 000 took 92 s). These keep
 * SQLite 3.40's results exactly (a differential test compares them) in
 * linear time; they are registered on every connection, overriding the
 * built-ins. */

/* instr(X, Y): SQLite's candidate positions are byte 0 and, for text,
 * every byte that is not a UTF-8 continuation byte. A needle that starts
 * with a non-continuation byte can only match at candidates, so the first
 * memmem match is the answer; one that starts with a continuation byte can
 * only match at byte 0. */
static void fn_instr(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int th = sqlite3_value_type(argv[0]), tn = sqlite3_value_type(argv[1]);
  if (th == SQLITE_NULL || tn == SQLITE_NULL) return;
  sqlite3_value *c1 = NULL, *c2 = NULL;
  const unsigned char *hay, *nee;
  int nh, nn, text;
  if (th == SQLITE_BLOB && tn == SQLITE_BLOB) {
    hay = sqlite3_value_blob(argv[0]);
    nee = sqlite3_value_blob(argv[1]);
    text = 0;
  } else if (th != SQLITE_BLOB && tn != SQLITE_BLOB) {
    hay = sqlite3_value_text(argv[0]);
    nee = sqlite3_value_text(argv[1]);
    text = 1;
  } else { /* as SQLite: copies, read as text */
    c1 = sqlite3_value_dup(argv[0]);
    c2 = sqlite3_value_dup(argv[1]);
    hay = c1 ? sqlite3_value_text(c1) : NULL;
    nee = c2 ? sqlite3_value_text(c2) : NULL;
    text = 1;
  }
  nh = c1 ? sqlite3_value_bytes(c1) : sqlite3_value_bytes(argv[0]);
  nn = c2 ? sqlite3_value_bytes(c2) : sqlite3_value_bytes(argv[1]);
  sqlite3_int64 n = 1;
  if (nn > 0) {
    if (!nee || (nh && !hay)) {
      sqlite3_result_error_nomem(ctx);
      goto out;
    }
    if (nn > nh) {
      n = 0;
    } else if (text && (nee[0] & 0xc0) == 0x80) {
      n = memcmp(hay, nee, (size_t)nn) == 0 ? 1 : 0;
    } else {
      const unsigned char *m = memmem(hay, (size_t)nh, nee, (size_t)nn);
      if (!m) {
        n = 0;
      } else if (!text) {
        n = 1 + (m - hay);
      } else if (m != hay) {
        n = 2; /* byte 0, then each candidate in 1 .. m-1 */
        for (const unsigned char *p = hay + 1; p < m; p++)
          n += (*p & 0xc0) != 0x80;
      }
    }
  }
  sqlite3_result_int64(ctx, n);
out:
  sqlite3_value_free(c1);
  sqlite3_value_free(c2);
}

/* replace(X, Y, Z): leftmost non-overlapping matches, as SQLite's byte
 * loop finds them; an empty Y (or one starting with a NUL byte, as SQLite
 * reads it) gives X back. Else the result is text, refused past the length
 * limit. */
static void fn_replace(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  const unsigned char *s = sqlite3_value_text(argv[0]);
  if (!s) return;
  size_t ns = (size_t)sqlite3_value_bytes(argv[0]);
  const unsigned char *pat = sqlite3_value_text(argv[1]);
  if (!pat) return;
  if (pat[0] == 0) { /* X itself, after reading it as text, as SQLite */
    sqlite3_result_value(ctx, argv[0]);
    return;
  }
  size_t np = (size_t)sqlite3_value_bytes(argv[1]);
  const unsigned char *rep = sqlite3_value_text(argv[2]);
  if (!rep) return;
  size_t nr = (size_t)sqlite3_value_bytes(argv[2]);
  size_t count = 0;
  for (const unsigned char *p = s, *m;
       (m = memmem(p, ns - (size_t)(p - s), pat, np)); p = m + np)
    count++;
  sqlite3_int64 nout = (sqlite3_int64)ns +
                       (sqlite3_int64)count * ((sqlite3_int64)nr - (sqlite3_int64)np);
  int lim = sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1);
  if (nout > lim) {
    sqlite3_result_error_toobig(ctx);
    return;
  }
  char *out = sqlite3_malloc64((sqlite3_uint64)nout + 1);
  if (!out) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  char *o = out;
  const unsigned char *p = s, *m;
  while ((m = memmem(p, ns - (size_t)(p - s), pat, np))) {
    memcpy(o, p, (size_t)(m - p));
    o += m - p;
    memcpy(o, rep, nr);
    o += nr;
    p = m + np;
  }
  memcpy(o, p, ns - (size_t)(p - s));
  o += ns - (size_t)(p - s);
  *o = '\0';
  sqlite3_result_text64(ctx, out, (sqlite3_uint64)(o - out), sqlite3_free,
                        SQLITE_UTF8);
}

/* One character of a trim set, as SQLite splits it: a lead byte and the
 * continuation bytes after it; idx is its first place in the set. */
struct tchar {
  const unsigned char *p;
  int len, idx;
};

static int tchar_cmp(const void *a, const void *b) {
  const struct tchar *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  int c = memcmp(x->p, y->p, (size_t)x->len);
  if (c) return c;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The set index of the character p[0..len) or INT_MAX. */
static int tchar_find(const struct tchar *set, int n, const unsigned char *p,
                      int len) {
  int lo = 0, hi = n;
  while (lo < hi) { /* first entry >= (len, p) */
    int mid = lo + (hi - lo) / 2;
    int c = set[mid].len != len ? (set[mid].len < len ? -1 : 1)
                                : memcmp(set[mid].p, p, (size_t)len);
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < n && set[lo].len == len && memcmp(set[lo].p, p, (size_t)len) == 0)
    return set[lo].idx; /* the smallest idx sorts first */
  return INT_MAX;
}

#define TRIM_MAX_LENS 8 /* valid UTF-8 has 4 character lengths */
#define TRIM_MAX_SCAN 100000000.0

/* trim/ltrim/rtrim(X, Y). SQLite removes, while one matches, the first
 * character of Y (in Y's order) that X starts (ends) with. Looking each
 * length up in a sorted set gives the same character in O(log |Y|). A set
 * with more than TRIM_MAX_LENS lengths (only invalid UTF-8 makes one)
 * uses SQLite's own scan when it is small enough and is refused if not. */
static void fn_trim(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int flags = (int)(intptr_t)sqlite3_user_data(ctx);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const unsigned char *x = sqlite3_value_text(argv[0]);
  if (!x) return;
  int nx = sqlite3_value_bytes(argv[0]);
  const unsigned char *y = sqlite3_value_text(argv[1]);
  if (!y) return;
  int ny = sqlite3_value_bytes(argv[1]);
  struct tchar *set = NULL;
  int n = 0, lens[TRIM_MAX_LENS], nlens = 0, brute = 0;
  if (ny > 0) {
    set = sqlite3_malloc64(sizeof *set * (sqlite3_uint64)ny);
    if (!set) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    for (const unsigned char *p = y; *p;) { /* SQLite reads y to its NUL */
      const unsigned char *q = p++;
      if (*q >= 0xc0)
        while ((*p & 0xc0) == 0x80) p++;
      set[n].p = q;
      set[n].len = (int)(p - q);
      set[n].idx = n;
      int seen = 0;
      for (int k = 0; k < nlens && !seen; k++) seen = lens[k] == set[n].len;
      if (!seen) {
        if (nlens < TRIM_MAX_LENS) lens[nlens++] = set[n].len;
        else brute = 1;
      }
      n++;
    }
  }
  if (brute && (double)nx * (double)ny > TRIM_MAX_SCAN) {
    sqlite3_free(set);
    sqlite3_result_error(ctx, "trim(): character set too costly", -1);
    return;
  }
  /* brute keeps Y's order for SQLite's own scan; else sort for lookups. */
  if (!brute && n > 1) qsort(set, (size_t)n, sizeof *set, tchar_cmp);
  for (int side = 1; side <= 2; side++) {
    if (!(flags & side)) continue;
    while (nx > 0 && n > 0) {
      int best = INT_MAX, blen = 0;
      if (brute) {
        for (int i = 0; i < n && best == INT_MAX; i++) {
          int l = set[i].len;
          const unsigned char *at = side == 1 ? x : x + nx - l;
          if (l <= nx && memcmp(at, set[i].p, (size_t)l) == 0) {
            best = i;
            blen = l;
          }
        }
      } else {
        for (int k = 0; k < nlens; k++) {
          int l = lens[k];
          if (l > nx) continue;
          int i = tchar_find(set, n, side == 1 ? x : x + nx - l, l);
          if (i < best) {
            best = i;
            blen = l;
          }
        }
      }
      if (best == INT_MAX) break;
      if (side == 1) x += blen;
      nx -= blen;
    }
  }
  sqlite3_free(set);
  sqlite3_result_text(ctx, (const char *)x, nx, SQLITE_TRANSIENT);
}

/* Registers the replacements on connection h. */
static int register_linear(sqlite3 *h) {
  const int f = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  int rc = sqlite3_create_function(h, "instr", 2, f, NULL, fn_instr, NULL, NULL);
  if (!rc) rc = sqlite3_create_function(h, "replace", 3, f, NULL, fn_replace, NULL, NULL);
  if (!rc) rc = sqlite3_create_function(h, "ltrim", 2, f, (void *)1, fn_trim, NULL, NULL);
  if (!rc) rc = sqlite3_create_function(h, "rtrim", 2, f, (void *)2, fn_trim, NULL, NULL);
  if (!rc) rc = sqlite3_create_function(h, "trim", 2, f, (void *)3, fn_trim, NULL, NULL);
  return rc;
}

/* One integer from a PRAGMA that reports one (page_count, page_size). */
static sqlite3_int64 pragma_int(sqlite3 *h, const char *sql) {
  sqlite3_stmt *st = NULL;
  sqlite3_int64 v = -1;
  if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Read-write: the file may grow by at most grow bytes while this
 * connection is open; past that, writes fail with SQLITE_FULL (a "limit"
 * error). Only trusted scripts may change it afterwards. */
static int cap_growth(struct lc_sql_db *db, size_t grow) {
  sqlite3_int64 pages = pragma_int(db->h, "PRAGMA page_count");
  sqlite3_int64 size = pragma_int(db->h, "PRAGMA page_size");
  if (pages < 0 || size <= 0) return LC_SQL_ESQL;
  sqlite3_int64 max = pages + (sqlite3_int64)(grow / (size_t)size) + 1;
  if (max > 0xfffffffe) max = 0xfffffffe;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)max);
  if (pragma_int(db->h, sql) < 0) return LC_SQL_ESQL;
  db->max_pages = max;
  db->page_size = size;
  return 0;
}

static void *sql_thread(void *arg);

int lc_sql_open(const char *path, unsigned flags,
                const struct lc_sql_limits *lim, struct lc_sql_db **out,
                char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  if (out) *out = NULL;
  if (!out || !path) return fail(err, errlen, LC_EINVAL, "no database path");
  if ((flags & LC_SQL_READONLY) && (flags & LC_SQL_CREATE))
    return fail(err, errlen, LC_EINVAL, "readonly and create exclude each other");
  pthread_once(&cap_once, cap_init);
  if (!cap_ok)
    return fail(err, errlen, LC_SQL_ESQL, "cannot register the SQL tool's VFS");
  int oflags = (flags & LC_SQL_READONLY)
                   ? SQLITE_OPEN_READONLY
                   : SQLITE_OPEN_READWRITE |
                         ((flags & LC_SQL_CREATE) ? SQLITE_OPEN_CREATE : 0);
  /* Each connection has its own mutex-free use: only one thread at a time. */
  oflags |= SQLITE_OPEN_NOMUTEX;
  sqlite3 *h = NULL;
  int rc = sqlite3_open_v2(path, &h, oflags, cap_vfs.zName);
  if (rc != SQLITE_OK) {
    int r = fail(err, errlen, LC_SQL_ESQL, "cannot open %s: %s", path,
                 h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
    sqlite3_close(h);
    return r;
  }
  struct lc_sql_db *db = calloc(1, sizeof *db);
  if (!db) {
    sqlite3_close(h);
    return fail(err, errlen, LC_ENOMEM, "out of memory");
  }
  db->h = h;
  db->flags = flags;
  db->max_length = lim && lim->max_length ? lim->max_length
                                          : LC_SQL_DEFAULT_MAX_LENGTH;
  if (db->max_length > 0x7fffffff) db->max_length = 0x7fffffff;
  db->max_temp = lim && lim->max_temp ? lim->max_temp : LC_SQL_DEFAULT_MAX_TEMP;
  pthread_mutex_init(&db->mu, NULL);
  pthread_cond_init(&db->cv, NULL);
  db->refs = 1;
  sqlite3_extended_result_codes(h, 1);
  sqlite3_busy_handler(h, busy, db);
  sqlite3_progress_handler(h, 1000, progress, db);
  sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_FKEY, 1, (int *)NULL);
  /* Defensive: no writable_schema, no sqlite_dbpage writes, no shadow
   * table writes. Untrusted schema: functions with side effects cannot
   * hide in views or triggers. No extension loading, not even from C. */
  sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
  sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
  sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
  sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
  sqlite3_enable_load_extension(h, 0);
  set_limits(db);
  if (register_linear(h) != SQLITE_OK) {
    db_free(db);
    return fail(err, errlen, LC_ENOMEM, "out of memory");
  }
  sqlite3_set_authorizer(h, authorizer, db);
  /* Read the header now so that "not a database" is an open error rather
   * than a surprise on the first query. */
  char *msg = NULL;
  if (sqlite3_exec(h, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL,
                   &msg) != SQLITE_OK) {
    int r = fail(err, errlen, LC_SQL_ESQL, "cannot open %s: %s", path,
                 msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
    db_free(db);
    return r;
  }
  if (!(flags & LC_SQL_READONLY)) {
    size_t grow = lim && lim->max_growth ? lim->max_growth
                                         : LC_SQL_DEFAULT_MAX_GROWTH;
    db->trusted = 1; /* our own pragma, past the authorizer */
    int rc2 = cap_growth(db, grow);
    db->trusted = 0;
    if (rc2) {
      db_free(db);
      return fail(err, errlen, rc2, "cannot open %s: %s", path,
                  sqlite3_errmsg(h));
    }
  }
  db->refs = 2; /* owner + thread */
  if (pthread_create(&db->thread, NULL, sql_thread, db) != 0) {
    db_free(db);
    return fail(err, errlen, LC_ENOMEM, "cannot start the SQL thread");
  }
  db->thread_started = 1;
  *out = db;
  return 0;
}

int lc_sql_readonly(const struct lc_sql_db *db) {
  return db && (db->flags & LC_SQL_READONLY);
}

void lc_sql_close(struct lc_sql_db *db) {
  if (!db) return;
  pthread_mutex_lock(&db->mu);
  db->closing = 1;
  for (struct lc_sql_job *j; (j = db->head);) {
    db->head = j->next;
    j->rc = fail(j->err, sizeof j->err, LC_SQL_ECANCELLED, "database closed");
    job_done_locked(j);
    job_unref_locked(j); /* the queue's; never the db's last (ours) */
  }
  db->tail = NULL;
  int running = db->running != NULL;
  if (running) {
    /* Under mu: the thread cannot finish (and the handle cannot close)
     * before sqlite3_interrupt returns. */
    atomic_store(&db->stop, 1);
    sqlite3_interrupt(db->h);
  }
  pthread_cond_broadcast(&db->cv);
  pthread_mutex_unlock(&db->mu);
  /* An idle thread exits at once; a running one is never waited for. */
  if (running) pthread_detach(db->thread);
  else pthread_join(db->thread, NULL);
  pthread_mutex_lock(&db->mu);
  int last = db_unref_locked(db);
  pthread_mutex_unlock(&db->mu);
  if (last) db_free(db);
}
/* ---- parameters ---- */

/* Binds one JSON value to parameter i; label names it in messages. */
static int bind_one(sqlite3_stmt *st, int i, const cJSON *v, const char *label,
                    char *err, size_t errlen) {
  int rc;
  if (cJSON_IsNull(v)) {
    rc = sqlite3_bind_null(st, i);
  } else if (cJSON_IsBool(v)) {
    rc = sqlite3_bind_int(st, i, cJSON_IsTrue(v) ? 1 : 0);
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    /* Integral values inside the int64 range bind as integers so that
     * `id = ?` compares as INTEGER; others (1.5, 1e300) stay REAL. */
    if (d == trunc(d) && d >= -0x1p63 && d < 0x1p63)
      rc = sqlite3_bind_int64(st, i, (sqlite3_int64)d);
    else
      rc = sqlite3_bind_double(st, i, d);
  } else if (cJSON_IsString(v)) {
    /* params are borrowed for the whole call, so no copy is needed. */
    rc = sqlite3_bind_text(st, i, v->valuestring, -1, SQLITE_STATIC);
  } else if (cJSON_IsRaw(v)) {
    const char *s = v->valuestring;
    char *end = NULL;
    errno = 0;
    long long x = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno || isspace((unsigned char)*s))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "%s: raw value is not a 64-bit decimal integer", label);
    rc = sqlite3_bind_int64(st, i, x);
  } else if (cJSON_IsObject(v)) {
    const cJSON *c = v->child;
    if (!c || c->next || strcmp(c->string, "$base64") != 0 ||
        !cJSON_IsString(c))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "%s is an object; nested objects and arrays are not allowed "
                  "(a BLOB is {\"$base64\": \"...\"})",
                  label);
    size_t n = 0;
    unsigned char *blob = b64_decode(c->valuestring, &n);
    if (!blob)
      return fail(err, errlen, LC_SQL_EPARAMS, "%s: $base64 is not valid base64",
                  label);
    rc = sqlite3_bind_blob64(st, i, blob, n, SQLITE_TRANSIENT);
    free(blob);
  } else if (cJSON_IsArray(v)) {
    return fail(err, errlen, LC_SQL_EPARAMS,
                "%s is an array; nested arrays and objects are not allowed",
                label);
  } else {
    return fail(err, errlen, LC_SQL_EPARAMS, "%s has an unsupported type",
                label);
  }
  if (rc == SQLITE_NOMEM) return fail(err, errlen, LC_ENOMEM, "out of memory");
  if (rc != SQLITE_OK)
    return fail(err, errlen, LC_SQL_EPARAMS, "%s: %s", label, sqlite3_errstr(rc));
  return 0;
}

static int is_positional(const char *name) { return !name || name[0] == '?'; }

/* Index of the statement parameter a JSON object key names, or 0. */
static int key_index(sqlite3_stmt *st, const char *key) {
  if (key[0] == ':' || key[0] == '@' || key[0] == '$')
    return sqlite3_bind_parameter_index(st, key);
  static const char prefixes[] = ":@$";
  char buf[256];
  for (const char *p = prefixes; *p; p++) {
    if ((size_t)snprintf(buf, sizeof buf, "%c%s", *p, key) >= sizeof buf)
      return 0;
    int i = sqlite3_bind_parameter_index(st, buf);
    if (i) return i;
  }
  return 0;
}

static int bind_named(sqlite3_stmt *st, int n, const cJSON *params, char *err,
                      size_t errlen) {
  char missing[256] = "", unexpected[256] = "", expected[256] = "";
  for (int i = 1; i <= n; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i);
    if (is_positional(name))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "statement uses positional parameter %s; pass params as an "
                  "array",
                  name ? name : "?");
    cat(expected, sizeof expected, "%s%s", i > 1 ? ", " : "", name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!v) v = cJSON_GetObjectItemCaseSensitive(params, name + 1);
    if (!v) {
      cat(missing, sizeof missing, "%s%s", missing[0] ? ", " : "", name);
      continue;
    }
    char label[128];
    snprintf(label, sizeof label, "parameter %s", name);
    int rc = bind_one(st, i, v, label, err, errlen);
    if (rc) return rc;
  }
  for (const cJSON *c = params->child; c; c = c->next)
    if (!key_index(st, c->string))
      cat(unexpected, sizeof unexpected, "%s'%s'", unexpected[0] ? ", " : "",
          c->string);
  if (missing[0] || unexpected[0]) {
    snprintf(err, errlen, "parameter mismatch: statement expects %d named "
             "parameter(s) (%s), got %d",
             n, n ? expected : "none", cJSON_GetArraySize(params));
    if (missing[0]) cat(err, errlen, "; missing %s", missing);
    if (unexpected[0]) cat(err, errlen, "; unexpected %s", unexpected);
    return LC_SQL_EPARAMS;
  }
  return 0;
}

static int bind_params(sqlite3_stmt *st, const cJSON *params, char *err,
                       size_t errlen) {
  int n = sqlite3_bind_parameter_count(st);
  if (!params || cJSON_IsNull(params)) {
    if (n == 0) return 0;
    return fail(err, errlen, LC_SQL_EPARAMS,
                "parameter mismatch: statement expects %d parameter(s), got "
                "none",
                n);
  }
  if (cJSON_IsObject(params)) return bind_named(st, n, params, err, errlen);
  if (!cJSON_IsArray(params))
    return fail(err, errlen, LC_SQL_EPARAMS,
                "params must be a JSON array or object");
  for (int i = 1; i <= n; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i);
    if (!is_positional(name))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "statement uses named parameter %s; pass params as an object",
                  name);
  }
  int given = cJSON_GetArraySize(params);
  if (given != n)
    return fail(err, errlen, LC_SQL_EPARAMS,
                "parameter mismatch: statement expects %d positional "
                "parameter(s), got %d",
                n, given);
  int i = 1;
  for (const cJSON *c = params->child; c; c = c->next, i++) {
    char label[64];
    snprintf(label, sizeof label, "parameter %d", i);
    int rc = bind_one(st, i, c, label, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

/* ---- statements ---- */

/* Is the rest of the SQL only whitespace, semicolons and comments? */
static const char *extra_text(const char *p) {
  while (*p) {
    if (isspace((unsigned char)*p) || *p == ';') {
      p++;
    } else if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *e = strstr(p + 2, "*/");
      p = e ? e + 2 : p + strlen(p); /* SQLite ends an open comment at EOF */
    } else {
      return p;
    }
  }
  return NULL;
}

/* The error for a failed prepare, step or script: the authorizer's reason
 * when it was the cause, the deadline, a limit, else SQLite's message (msg
 * when sqlite3_exec gave one). Runs on the SQL thread. */
static int sql_fail(struct lc_sql_db *db, const char *msg, char *err,
                    size_t errlen) {
  if (db->denied[0]) {
    if (db->denied_rc == LC_SQL_EREADONLY)
      return fail(err, errlen, LC_SQL_EREADONLY,
                  "read-only database: %s is not allowed", db->denied);
    return fail(err, errlen, LC_SQL_EDENIED,
                "%s is not allowed in the SQL tool", db->denied);
  }
  int code = sqlite3_errcode(db->h);
  if (!msg) msg = sqlite3_errmsg(db->h);
  if (code == SQLITE_NOMEM) return fail(err, errlen, LC_ENOMEM, "out of memory");
  if ((code & 0xff) == SQLITE_INTERRUPT) {
    if (db->timed_out)
      return fail(err, errlen, LC_SQL_ETIMEOUT,
                  "query stopped at its deadline (timed out)");
    return fail(err, errlen, LC_SQL_ECANCELLED, "query cancelled");
  }
  if ((code & 0xff) == SQLITE_TOOBIG)
    return fail(err, errlen, LC_SQL_ELIMIT,
                "%s (limits: %zu bytes per value or row, %d bytes of SQL)",
                msg, db->max_length, LC_SQL_MAX_SQL_LENGTH);
  if ((code & 0xff) == SQLITE_FULL && db->temp_full)
    return fail(err, errlen, LC_SQL_ELIMIT,
                "temporary storage limit reached (%zu bytes for sorting, "
                "recursion and temp tables)",
                db->max_temp);
  /* The statement's rollback has already shrunk the file again, so say
   * both causes rather than guess. */
  if ((code & 0xff) == SQLITE_FULL && db->max_pages)
    return fail(err, errlen, LC_SQL_ELIMIT,
                "%s (this connection may grow the database to %lld bytes)",
                msg, (long long)(db->max_pages * db->page_size));
  if ((code & 0xff) == SQLITE_READONLY)
    return fail(err, errlen, LC_SQL_EREADONLY, "read-only database: %s", msg);
  return fail(err, errlen, LC_SQL_ESQL, "%s", msg);
}

/* cJSON prints numbers beyond int range with 15 significant digits, so only
 * integers below 10^15 print exactly; larger ones go out as Raw literals. */
static int exact_number(sqlite3_int64 v) {
  return v > -1000000000000000LL && v < 1000000000000000LL;
}

/* One cell as JSON; adds its approximate printed size to *bytes. */
static cJSON *cell(sqlite3_stmt *st, int i, size_t *bytes) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: {
      sqlite3_int64 v = sqlite3_column_int64(st, i);
      *bytes += 20;
      if (exact_number(v)) return cJSON_CreateNumber((double)v);
      char b[32];
      snprintf(b, sizeof b, "%lld", (long long)v);
      return cJSON_CreateRaw(b);
    }
    case SQLITE_FLOAT:
      *bytes += 24;
      return cJSON_CreateNumber(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
      const char *p = (const char *)sqlite3_column_text(st, i);
      size_t n = (size_t)sqlite3_column_bytes(st, i);
      if (!p) return NULL; /* NOMEM */
      if (!memchr(p, 0, n) && lc_utf8_valid(p, n, NULL)) {
        *bytes += n + 2;
        return cJSON_CreateString(p);
      }
      *bytes += 4 * ((n + 2) / 3) + 14;
      return b64_object(p, n);
    }
    case SQLITE_BLOB: {
      const void *p = sqlite3_column_blob(st, i);
      size_t n = (size_t)sqlite3_column_bytes(st, i);
      *bytes += 4 * ((n + 2) / 3) + 14;
      return b64_object(p ? p : "", n);
    }
    default:
      *bytes += 4;
      return cJSON_CreateNull();
  }
}

/* Unique keys for the row objects: a repeated column name gets _2, _3... */
static int column_keys(sqlite3_stmt *st, int ncol, char **keys) {
  for (int i = 0; i < ncol; i++) {
    const char *name = sqlite3_column_name(st, i);
    if (!name) return LC_ENOMEM;
    size_t sz = strlen(name) + 24;
    keys[i] = malloc(sz);
    if (!keys[i]) return LC_ENOMEM;
    snprintf(keys[i], sz, "%s", name);
    for (int suffix = 2;; suffix++) {
      int dup = 0;
      for (int k = 0; k < i && !dup; k++) dup = strcmp(keys[k], keys[i]) == 0;
      if (!dup) break;
      snprintf(keys[i], sz, "%s_%d", name, suffix);
    }
  }
  return 0;
}

static int run(struct lc_sql_db *db, sqlite3_stmt *st,
               const struct lc_sql_opts *opts, cJSON **result, char *err,
               size_t errlen) {
  size_t max_rows = opts && opts->max_rows ? opts->max_rows
                                           : LC_SQL_DEFAULT_MAX_ROWS;
  size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes
                                             : LC_SQL_DEFAULT_MAX_BYTES;
  int ncol = sqlite3_column_count(st);
  char **keys = calloc((size_t)ncol + 1, sizeof *keys);
  cJSON *res = cJSON_CreateObject();
  cJSON *cols = cJSON_AddArrayToObject(res, "columns");
  cJSON *rows = cJSON_AddArrayToObject(res, "rows");
  int rc = 0;
  if (!keys || !res || !cols || !rows || column_keys(st, ncol, keys)) {
    rc = fail(err, errlen, LC_ENOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < ncol; i++) {
    cJSON *s = cJSON_CreateString(keys[i]);
    if (!s) {
      rc = fail(err, errlen, LC_ENOMEM, "out of memory");
      goto out;
    }
    cJSON_AddItemToArray(cols, s);
  }
  sqlite3_int64 before = sqlite3_total_changes64(db->h);
  size_t bytes = 64, nrows = 0;
  int truncated = 0;
  for (;;) {
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) break;
    if (s != SQLITE_ROW) {
      rc = sql_fail(db, NULL, err, errlen);
      goto out;
    }
    /* One row past the cap tells us there was more: truncated, not silent. */
    if (nrows == max_rows) {
      truncated = 1;
      break;
    }
    size_t rb = 2;
    cJSON *row = cJSON_CreateObject();
    for (int i = 0; row && i < ncol; i++) {
      cJSON *v = cell(st, i, &rb);
      if (!v) {
        cJSON_Delete(row);
        row = NULL;
        break;
      }
      rb += strlen(keys[i]) + 4;
      cJSON_AddItemToObject(row, keys[i], v);
    }
    if (!row) {
      rc = fail(err, errlen, LC_ENOMEM, "out of memory");
      goto out;
    }
    if (bytes + rb > max_bytes) {
      cJSON_Delete(row);
      truncated = 1;
      break;
    }
    bytes += rb;
    cJSON_AddItemToArray(rows, row);
    nrows++;
  }
  /* sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE, so
   * it would be stale for a SELECT or DDL; only report it if this statement
   * changed something. */
  sqlite3_int64 changes = 0;
  if (!sqlite3_stmt_readonly(st) && sqlite3_total_changes64(db->h) != before)
    changes = sqlite3_changes64(db->h);
  sqlite3_int64 lid = sqlite3_last_insert_rowid(db->h);
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)lid);
  if (!cJSON_AddNumberToObject(res, "row_count", (double)nrows) ||
      !cJSON_AddBoolToObject(res, "truncated", truncated) ||
      !cJSON_AddNumberToObject(res, "changes", (double)changes) ||
      !(exact_number(lid)
            ? cJSON_AddNumberToObject(res, "last_insert_id", (double)lid)
            : cJSON_AddRawToObject(res, "last_insert_id", b)))
    rc = fail(err, errlen, LC_ENOMEM, "out of memory");
out:
  if (keys) {
    for (int i = 0; i < ncol; i++) free(keys[i]);
    free(keys);
  }
  if (rc) {
    cJSON_Delete(res);
    return rc;
  }
  *result = res;
  return 0;
}

/* Does the statement start with the keyword kw (after comments)? */
static int starts_with_keyword(const char *sql, const char *kw) {
  const char *p = extra_text(sql);
  size_t n = strlen(kw);
  return p && strncasecmp(p, kw, n) == 0 &&
         !(isalnum((unsigned char)p[n]) || p[n] == '_');
}

/* One query, on the SQL thread. */
static int do_query(struct lc_sql_db *db, struct lc_sql_job *j, char *err,
                    size_t errlen) {
  const char *sql = j->sql;
  /* VACUUM rewrites the whole file, and VACUUM INTO writes a new one
   * anywhere the process may write: never from a model. (LIMIT_ATTACHED 0
   * stops both too; this names the reason.) */
  if (starts_with_keyword(sql, "VACUUM"))
    return fail(err, errlen, LC_SQL_EDENIED,
                "VACUUM is not allowed in the SQL tool");
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  if (sqlite3_prepare_v3(db->h, sql, -1, 0, &st, &tail) != SQLITE_OK)
    return sql_fail(db, NULL, err, errlen);
  if (!st) return fail(err, errlen, LC_SQL_ESQL, "no SQL statement to run");
  const char *extra = tail ? extra_text(tail) : NULL;
  int rc;
  if (extra) {
    rc = fail(err, errlen, LC_SQL_ESQL,
              "multiple statements are not allowed (extra text at byte %zu: "
              "\"%.20s\")",
              (size_t)(extra - sql), extra);
  } else if ((db->flags & LC_SQL_READONLY) && !sqlite3_stmt_readonly(st)) {
    rc = fail(err, errlen, LC_SQL_EREADONLY,
              "read-only database: this statement would write");
  } else {
    rc = bind_params(st, j->params, err, errlen);
    if (rc == 0) rc = run(db, st, &j->opts, &j->result, err, errlen);
  }
  sqlite3_finalize(st);
  return rc;
}

/* A trusted script, on the SQL thread. */
static int do_script(struct lc_sql_db *db, struct lc_sql_job *j, char *err,
                     size_t errlen) {
  if (db->flags & LC_SQL_READONLY)
    return fail(err, errlen, LC_SQL_EREADONLY,
                "read-only database: scripts are not allowed");
  sqlite3_limit(db->h, SQLITE_LIMIT_SQL_LENGTH, 0x7fffffff);
  char *msg = NULL;
  int rc = 0;
  if (sqlite3_exec(db->h, j->sql, NULL, NULL, &msg) != SQLITE_OK)
    rc = sql_fail(db, msg, err, errlen);
  sqlite3_free(msg);
  sqlite3_limit(db->h, SQLITE_LIMIT_SQL_LENGTH, LC_SQL_MAX_SQL_LENGTH);
  return rc;
}

static void run_job(struct lc_sql_db *db, struct lc_sql_job *j) {
  db->deadline_ms = j->deadline_ms;
  db->timed_out = db->temp_full = 0;
  db->denied[0] = '\0';
  db->trusted = j->kind == KIND_SCRIPT;
  cur_db = db; /* temp files opened from here on count against db */
  j->err[0] = '\0';
  j->rc = j->kind == KIND_SCRIPT ? do_script(db, j, j->err, sizeof j->err)
                                 : do_query(db, j, j->err, sizeof j->err);
  cur_db = NULL;
  db->trusted = 0;
}

/* The connection's thread: runs queued jobs in order until closed. */
static void *sql_thread(void *arg) {
  struct lc_sql_db *db = arg;
  pthread_mutex_lock(&db->mu);
  for (;;) {
    while (!db->head && !db->closing) pthread_cond_wait(&db->cv, &db->mu);
    struct lc_sql_job *j = db->head;
    if (!j) break; /* closing, nothing left */
    db->head = j->next;
    if (!db->head) db->tail = NULL;
    j->state = JOB_RUNNING;
    db->running = j;
    atomic_store(&db->stop, 0);
    pthread_mutex_unlock(&db->mu);
    run_job(db, j);
    pthread_mutex_lock(&db->mu);
    db->running = NULL;
    job_done_locked(j);
    job_unref_locked(j); /* ours; the db keeps the thread's reference */
  }
  int last = db_unref_locked(db);
  pthread_mutex_unlock(&db->mu);
  if (last) db_free(db);
  return NULL;
}

static int submit(struct lc_sql_db *db, int kind, const char *sql,
                  size_t sqllen, cJSON *params, const struct lc_sql_opts *opts,
                  int want_fd, struct lc_sql_job **out, int *fd, char *err,
                  size_t errlen) {
  if (errlen) err[0] = '\0';
  *out = NULL;
  if (!db || !sql) {
    cJSON_Delete(params);
    return fail(err, errlen, LC_EINVAL, "no SQL");
  }
  struct lc_sql_job *j = calloc(1, sizeof *j);
  if (!j) {
    cJSON_Delete(params);
    return fail(err, errlen, LC_ENOMEM, "out of memory");
  }
  j->efd = -1;
  j->params = params;
  j->kind = kind;
  if (opts) j->opts = *opts;
  j->sql = malloc(sqllen + 1);
  if (want_fd) j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!j->sql || (want_fd && j->efd < 0)) {
    job_free(j);
    return fail(err, errlen, LC_ENOMEM, "out of memory");
  }
  memcpy(j->sql, sql, sqllen);
  j->sql[sqllen] = '\0';
  /* Scripts are trusted: no deadline. Queries: from submission, so time
   * spent queued behind another query counts too. */
  double t = j->opts.timeout > 0 ? j->opts.timeout : LC_SQL_DEFAULT_TIMEOUT_S;
  if (t > 1e9) t = 1e9;
  j->deadline_ms = kind == KIND_SCRIPT ? 0 : mono_ms() + t * 1e3;
  pthread_mutex_lock(&db->mu);
  if (db->closing) {
    pthread_mutex_unlock(&db->mu);
    job_free(j);
    return fail(err, errlen, LC_ESTATE, "database is closed");
  }
  j->db = db;
  db->refs++;
  j->refs = 2; /* the caller's and the queue's */
  j->state = JOB_QUEUED;
  if (db->tail) db->tail->next = j;
  else db->head = j;
  db->tail = j;
  pthread_cond_broadcast(&db->cv);
  pthread_mutex_unlock(&db->mu);
  *out = j;
  if (fd) *fd = j->efd;
  return 0;
}

int lc_sql_submit(struct lc_sql_db *db, const char *sql, size_t sqllen,
                  cJSON *params, const struct lc_sql_opts *opts,
                  struct lc_sql_job **job, int *fd, char *err, size_t errlen) {
  return submit(db, KIND_QUERY, sql, sqllen, params, opts, 1, job, fd, err,
                errlen);
}

int lc_sql_job_done(struct lc_sql_job *j) {
  pthread_mutex_lock(&j->db->mu);
  int d = j->state == JOB_DONE;
  pthread_mutex_unlock(&j->db->mu);
  return d;
}

int lc_sql_job_finish(struct lc_sql_job *j, cJSON **result, char *err,
                      size_t errlen) {
  if (!lc_sql_job_done(j)) return fail(err, errlen, LC_ESTATE, "not done");
  /* After DONE (seen under the mutex) only this thread touches the job. */
  if (errlen) snprintf(err, errlen, "%s", j->err);
  if (result) {
    *result = j->result;
    j->result = NULL;
  }
  return j->rc;
}

void lc_sql_job_cancel(struct lc_sql_job *j) {
  struct lc_sql_db *db = j->db;
  pthread_mutex_lock(&db->mu);
  if (j->state == JOB_QUEUED) {
    struct lc_sql_job **pp = &db->head, *prev = NULL;
    while (*pp && *pp != j) {
      prev = *pp;
      pp = &(*pp)->next;
    }
    if (*pp) {
      *pp = j->next;
      if (db->tail == j) db->tail = prev;
    }
    j->rc = fail(j->err, sizeof j->err, LC_SQL_ECANCELLED, "query cancelled");
    job_done_locked(j);
    job_unref_locked(j); /* the queue's; the caller still holds one */
  } else if (j->state == JOB_RUNNING) {
    /* Under mu: the thread cannot finish the job (nor close the handle)
     * before sqlite3_interrupt returns. */
    atomic_store(&db->stop, 1);
    sqlite3_interrupt(db->h);
  }
  pthread_mutex_unlock(&db->mu);
}

void lc_sql_job_release(struct lc_sql_job *j) {
  if (!j) return;
  struct lc_sql_db *db = j->db;
  lc_sql_job_cancel(j);
  pthread_mutex_lock(&db->mu);
  int last = job_unref_locked(j);
  pthread_mutex_unlock(&db->mu);
  if (last) db_free(db);
}

/* Submits and blocks until done. */
static int run_blocking(struct lc_sql_db *db, int kind, const char *sql,
                        cJSON *params, const struct lc_sql_opts *opts,
                        cJSON **result, char *err, size_t errlen) {
  struct lc_sql_job *j;
  int rc = submit(db, kind, sql, strlen(sql), params, opts, 0, &j, NULL, err,
                  errlen);
  if (rc) return rc;
  pthread_mutex_lock(&db->mu);
  while (j->state != JOB_DONE) pthread_cond_wait(&db->cv, &db->mu);
  pthread_mutex_unlock(&db->mu);
  rc = lc_sql_job_finish(j, result, err, errlen);
  lc_sql_job_release(j);
  return rc;
}

int lc_sql_query(struct lc_sql_db *db, const char *sql, const cJSON *params,
                 const struct lc_sql_opts *opts, cJSON **result, char *err,
                 size_t errlen) {
  if (errlen) err[0] = '\0';
  if (result) *result = NULL;
  if (!db || !sql || !result) return fail(err, errlen, LC_EINVAL, "no SQL");
  cJSON *p = NULL;
  if (params && !(p = cJSON_Duplicate(params, 1)))
    return fail(err, errlen, LC_ENOMEM, "out of memory");
  return run_blocking(db, KIND_QUERY, sql, p, opts, result, err, errlen);
}

int lc_sql_exec_script(struct lc_sql_db *db, const char *sql, char *err,
                       size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!db || !sql) return fail(err, errlen, LC_EINVAL, "no SQL");
  return run_blocking(db, KIND_SCRIPT, sql, NULL, NULL, NULL, err, errlen);
}

const char *lc_sql_errcode(int rc) {
  switch (rc) {
    case 0: return "ok";
    case LC_SQL_EREADONLY: return "readonly";
    case LC_SQL_EPARAMS: return "bad_params";
    case LC_SQL_ESQL: return "sql_error";
    case LC_SQL_EDENIED: return "denied";
    case LC_SQL_ETIMEOUT: return "timeout";
    case LC_SQL_ECANCELLED: return "cancelled";
    case LC_SQL_ELIMIT: return "limit";
    case LC_ESTATE: return "closed";
    case LC_ENOMEM: return "no_memory";
    default: return "invalid";
  }
}
