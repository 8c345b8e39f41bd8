/* effect.c: the effect journal: identity, intent and result lines,
 * replay lookup and comparison, in-doubt rules, fsync policy. */
#include "effect.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "jcanon.h"
#include "lc.h"
#include "loop.h"
#include "secrets.h"
#include "store.h"
#include "jsonw.h"
#include "sha256.h"
#include "utf8.h"

#define FORMAT_VERSION 1

struct entry {
  char *id;
  cJSON *intent;
  cJSON *result; /* NULL: intent without result (crash, or cut file) */
  long line;     /* of the intent */
  struct entry *next;
};

struct scope {
  const void *task;
  char *path;
  size_t path_len;
  unsigned long children;
  struct scope *next;
};

struct lc_journal {
  enum lc_journal_mode mode;
  enum lc_journal_sync sync;
  char *path;
  FILE *f; /* record */
  FILE *input;
  char run_id[33];
  char script_hash[65];  /* now */
  char recorded_script_hash[65];
  struct entry **buckets;
  size_t nbuckets;
  struct scope *scopes;
  enum lc_journal_fail failed;
  char err[2048];
  long results; /* result lines written: their order */
  struct lc_journal_deferred *deferred;
  long begun, replayed, ran;
  size_t nentries;
  long load_cmps; /* id comparisons made while loading (tests) */
  /* Syncing off the loop thread (with a loop attached): lines are written
   * and flushed on the loop thread; a writer thread fsyncs, one fsync for
   * every line written by then (group commit), and tells the loop through
   * an eventfd; the task that needs a line durable waits for it. Line
   * numbers count lines written; 'want' is the newest asked to be durable,
   * 'synced' the newest known to be. */
  struct lc_loop *loop;
  pthread_mutex_t wmu;
  pthread_cond_t wcv;
  pthread_t writer;
  int writer_on, wstop, werr;
  unsigned long lines, want, synced;
  int efd; /* eventfd: the writer made progress */
  struct lc_fdwatch ew;
  int ew_on;
  /* In ticket order (so tasks wake in the order their lines were
   * written: that order is what a replay gives back, see order in
   * docs/journal.md), and its last one. */
  struct lc_journal_waiter *waiters, *waiters_tail;
  /* Resume (opts.resume): the loaded journal answers, new lines append. */
  int resume;
  /* A store journal: lines go to the store's writer (group commit); its
   * callback moves 'synced' and writes the eventfd, as the writer thread
   * does for a file. */
  struct lc_store *store;
  struct lc_store_client sc;
  long seq; /* the store's line number of the last line */
  atomic_int cancel_req;
  int wait_input;
  char *question;
  /* A store journal's header, until its run is created (first line). */
  int created;
  char *hdr_script, *hdr_args;
  lc_journal_delta_fn delta_fn; /* live token deltas (luact serve) */
  void *delta_ud;
};

/* ---- small helpers ---- */

static size_t hash_str(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static struct entry *find(const struct lc_journal *j, const char *id) {
  if (!j->nbuckets) return NULL;
  for (struct entry *e = j->buckets[hash_str(id) & (j->nbuckets - 1)]; e; e = e->next)
    if (strcmp(e->id, id) == 0) return e;
  return NULL;
}

/* find, counting the comparisons (the loader's cost, for tests). */
static struct entry *find_counted(struct lc_journal *j, const char *id) {
  if (!j->nbuckets) return NULL;
  for (struct entry *e = j->buckets[hash_str(id) & (j->nbuckets - 1)]; e; e = e->next) {
    j->load_cmps++;
    if (strcmp(e->id, id) == 0) return e;
  }
  return NULL;
}

/* Adds e to the table, doubling it past one entry per bucket, so loading
 * n effects costs O(n) (a scan of the earlier entries per line made 80k
 * intents take 24 s). */
static int table_put(struct lc_journal *j, struct entry *e) {
  if (j->nentries + 1 > j->nbuckets) {
    size_t nb = j->nbuckets ? j->nbuckets * 2 : 64;
    struct entry **t = lc_calloc(nb, sizeof *t);
    if (!t) return LC_ENOMEM;
    for (size_t b = 0; b < j->nbuckets; b++)
      while (j->buckets[b]) {
        struct entry *x = j->buckets[b];
        j->buckets[b] = x->next;
        size_t k = hash_str(x->id) & (nb - 1);
        x->next = t[k];
        t[k] = x;
      }
    lc_free(j->buckets);
    j->buckets = t;
    j->nbuckets = nb;
  }
  size_t k = hash_str(e->id) & (j->nbuckets - 1);
  e->next = j->buckets[k];
  j->buckets[k] = e;
  j->nentries++;
  return 0;
}

long lc_journal_load_compares(const struct lc_journal *j) { return j->load_cmps; }

static int file_hash(const char *path, char out[65]) {
  FILE *f = fopen(path, "rb");
  if (!f) return LC_EIO;
  struct lc_sha256 s;
  unsigned char buf[8192], d[32];
  size_t n;
  lc_sha256_init(&s);
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) lc_sha256_update(&s, buf, n);
  int bad = ferror(f);
  fclose(f);
  if (bad) return LC_EIO;
  lc_sha256_final(&s, d);
  lc_sha256_to_hex(d, out);
  return 0;
}

void lc_journal_fail(struct lc_journal *j, enum lc_journal_fail why, const char *msg) {
  if (j->failed) return;
  j->failed = why;
  snprintf(j->err, sizeof j->err, "%s", msg);
}

/* Sets the failure with a formatted message; returns code. */
static int failf(struct lc_journal *j, enum lc_journal_fail why, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(struct lc_journal *j, enum lc_journal_fail why, int code, const char *fmt, ...) {
  if (j->failed) return code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->err, sizeof j->err, fmt, ap);
  va_end(ap);
  j->failed = why;
  return code;
}

static int fsync_file(int fd) {
  /* EINVAL: a pipe or special file, which cannot be synced (and need
   * not be). */
  return fsync(fd) != 0 && errno != EINVAL ? errno : 0;
}

/* The writer thread: fsyncs up to the newest line asked for, then says so
 * through the eventfd. Exits when told to and nothing is owed. */
static void *writer_main(void *p) {
  struct lc_journal *j = p;
  pthread_mutex_lock(&j->wmu);
  for (;;) {
    while (!j->wstop && j->want <= j->synced) pthread_cond_wait(&j->wcv, &j->wmu);
    if (j->want <= j->synced) break; /* stopping, nothing owed */
    unsigned long target = j->want;
    pthread_mutex_unlock(&j->wmu);
    int err = fsync_file(fileno(j->f));
    pthread_mutex_lock(&j->wmu);
    if (err && !j->werr) j->werr = err;
    j->synced = target;
    uint64_t one = 1;
    ssize_t w = write(j->efd, &one, sizeof one); /* cannot block: counter */
    (void)w;
  }
  pthread_mutex_unlock(&j->wmu);
  return NULL;
}

static void writer_stop(struct lc_journal *j) {
  if (!j->writer_on) return;
  pthread_mutex_lock(&j->wmu);
  j->wstop = 1;
  pthread_cond_signal(&j->wcv);
  pthread_mutex_unlock(&j->wmu);
  pthread_join(j->writer, NULL);
  j->writer_on = 0;
}

static int store_create(struct lc_journal *j);

/* A store journal's lines: the writer committed up to ticket (store.h). */
static void store_committed(void *ud, unsigned long ticket, int err) {
  struct lc_journal *j = ud;
  pthread_mutex_lock(&j->wmu);
  if (!err && ticket > j->synced) j->synced = ticket; /* a failed group wrote nothing */
  if (err && !j->werr) j->werr = err;
  pthread_mutex_unlock(&j->wmu);
  uint64_t one = 1;
  ssize_t w = write(j->efd, &one, sizeof one); /* cannot block: counter */
  (void)w;
}

static void store_cancel(void *ud) {
  struct lc_journal *j = ud;
  atomic_store(&j->cancel_req, 1);
}

void lc_journal_request_cancel(struct lc_journal *j) { store_cancel(j); }

/* 1 when lines can be made durable off the calling thread. */
static int syncs_off_thread(const struct lc_journal *j) { return j->writer_on || j->store; }

/* Makes every line written so far durable on this thread. */
static int sync_inline(struct lc_journal *j) {
  if (j->store) {
    lc_store_flush_client(j->store, j);
    pthread_mutex_lock(&j->wmu);
    int err = j->werr;
    pthread_mutex_unlock(&j->wmu);
    return err;
  }
  return fsync_file(fileno(j->f));
}

/* Writes one line (takes line): to the file, flushed, or queued for the
 * store's writer. sync: the line must become durable: with ticket (the
 * caller will wait) and a loop attached, by the writer thread, *ticket set
 * to the line's number for lc_journal_durable / lc_journal_wait; otherwise
 * here. */
static int write_text_t(struct lc_journal *j, struct lc_buf *bp, int sync,
                        unsigned long *ticket, int lazy);

static int write_line_t(struct lc_journal *j, cJSON *line, int sync, unsigned long *ticket) {
  /* jsonw, not cJSON's printer: numbers must read back as the same double. */
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  if (line) lc_jsonw_cjson(&w, line);
  cJSON_Delete(line);
  if (!line || lc_jsonw_finish(&w)) {
    lc_buf_free(&b);
    return failf(j, LC_JOURNAL_EIO, LC_ENOMEM, "journal: out of memory writing %s", j->path);
  }
  return write_text_t(j, &b, sync, ticket, 0);
}

/* write_line_t for a line that is JSON text already (takes and frees *bp).
 * lazy: nobody waits for the line (a pure effect's one line): the store's
 * writer may hold it for a larger group (lc_store_append_lazy). */
static int write_text_t(struct lc_journal *j, struct lc_buf *bp, int sync,
                        unsigned long *ticket, int lazy) {
  struct lc_buf b = *bp;
  lc_buf_init(bp, 0);
  /* Last line before disk: a key echoed into an error or a result (a
   * provider's 401, a tool's output) is never journaled. */
  b.len = lc_secrets_scrub(b.data, b.len, LC_SCRUB_JSON);
  int bad, err = 0;
  if (j->store && !j->created && store_create(j)) {
    lc_buf_free(&b);
    return LC_EIO;
  }
  if (j->store && lazy && !sync) {
    /* The store takes the bytes as they are: no copy, and no shrinking
     * reallocation (lc_buf_steal's) for a line held a few ms. */
    size_t len = b.len;
    char *text = b.data;
    lc_buf_init(&b, 0);
    int rc = text ? lc_store_append_lazy(j->store, &j->sc, j->seq + 1, j->lines + 1, text, len)
                  : LC_ENOMEM;
    bad = rc != 0;
    err = rc == LC_ENOMEM ? ENOMEM : EIO;
    if (!bad) j->seq++;
  } else if (j->store) {
    int rc = lc_store_append(j->store, &j->sc, j->seq + 1, j->lines + 1, b.data, b.len);
    bad = rc != 0;
    err = rc == LC_ENOMEM ? ENOMEM : EIO;
    if (!bad) j->seq++;
  } else {
    bad = fwrite(b.data, 1, b.len, j->f) != b.len || fputc('\n', j->f) == EOF ||
          fflush(j->f) != 0;
    err = bad ? errno : 0;
  }
  lc_buf_free(&b);
  if (!bad) j->lines++;
  if (!bad && sync && ticket && j->loop && !j->store && !j->writer_on && j->efd >= 0)
    j->writer_on = pthread_create(&j->writer, NULL, writer_main, j) == 0;
  if (!bad && sync && ticket && j->loop && syncs_off_thread(j)) {
    if (!j->store) {
      pthread_mutex_lock(&j->wmu);
      j->want = j->lines;
      pthread_cond_signal(&j->wcv);
      pthread_mutex_unlock(&j->wmu);
    }
    *ticket = j->lines;
  } else if (!bad && sync) {
    err = sync_inline(j);
    bad = err != 0;
  }
  if (bad)
    return failf(j, LC_JOURNAL_EIO, LC_EIO, "journal: cannot write %s: %s",
                 j->store ? lc_store_path(j->store) : j->path, strerror(err));
  return 0;
}

static int write_line(struct lc_journal *j, cJSON *line, int sync) {
  return write_line_t(j, line, sync, NULL);
}

/* ---- waiting for durability ---- */

static void ew_watch(struct lc_journal *j, int on);

/* Loop callback (lc_loop_run_once): the writer made progress. Fails the
 * journal if an fsync failed, then wakes the waiters it satisfied (all of
 * them on failure: they find the journal failed). */
static void on_synced(struct lc_loop *loop, struct lc_fdwatch *w, unsigned events) {
  (void)loop;
  (void)events;
  struct lc_journal *j = w->ud;
  uint64_t n;
  ssize_t r = read(j->efd, &n, sizeof n);
  (void)r;
  pthread_mutex_lock(&j->wmu);
  unsigned long synced = j->synced;
  int werr = j->werr;
  pthread_mutex_unlock(&j->wmu);
  if (werr)
    failf(j, LC_JOURNAL_EIO, LC_EIO, "journal: cannot sync %s: %s", j->path, strerror(werr));
  /* The satisfied ones are a prefix (ticket order), fired oldest first;
   * the head is read again after each fire (it may unwait others). */
  while (j->waiters && (werr || j->waiters->ticket <= synced)) {
    struct lc_journal_waiter *x = j->waiters;
    if (!(j->waiters = x->next)) j->waiters_tail = NULL;
    x->queued = 0;
    x->fire(x);
  }
  ew_watch(j, j->waiters != NULL);
}

static void ew_watch(struct lc_journal *j, int on) {
  if (on == j->ew_on || !j->loop) return;
  if (on) {
    j->ew.fd = j->efd;
    j->ew.events = LC_READ;
    j->ew.cb = on_synced;
    j->ew.ud = j;
    if (lc_loop_watch(j->loop, &j->ew) == 0) j->ew_on = 1;
  } else {
    lc_loop_unwatch(j->loop, &j->ew);
    j->ew_on = 0;
  }
}

void lc_journal_set_loop(struct lc_journal *j, struct lc_loop *loop) {
  if (j->ew_on) ew_watch(j, 0);
  j->loop = loop;
}

int lc_journal_durable(struct lc_journal *j, unsigned long ticket) {
  if (!ticket || !syncs_off_thread(j)) return 1;
  pthread_mutex_lock(&j->wmu);
  int done = j->synced >= ticket || j->werr;
  int werr = j->werr;
  pthread_mutex_unlock(&j->wmu);
  /* Failed before the loop heard of it (on_synced): fail the journal now,
   * or the caller would run an effect whose intent was never written. */
  if (werr && !j->failed)
    failf(j, LC_JOURNAL_EIO, LC_EIO, "journal: cannot sync %s: %s", j->path, strerror(werr));
  return done;
}

int lc_journal_wait(struct lc_journal *j, struct lc_journal_waiter *w) {
  if (!j->loop || !syncs_off_thread(j)) return LC_ESTATE;
  w->queued = 1;
  if (!j->waiters_tail || j->waiters_tail->ticket <= w->ticket) { /* the usual case */
    w->next = NULL;
    if (j->waiters_tail)
      j->waiters_tail->next = w;
    else
      j->waiters = w;
    j->waiters_tail = w;
  } else {
    struct lc_journal_waiter **pp = &j->waiters;
    while ((*pp)->ticket <= w->ticket) pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
  }
  ew_watch(j, 1);
  if (!j->ew_on) {
    lc_journal_unwait(j, w);
    return LC_EIO;
  }
  return 0;
}

void lc_journal_unwait(struct lc_journal *j, struct lc_journal_waiter *w) {
  if (!w->queued) return;
  struct lc_journal_waiter *prev = NULL;
  for (struct lc_journal_waiter **pp = &j->waiters; *pp; prev = *pp, pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      if (j->waiters_tail == w) j->waiters_tail = prev;
      break;
    }
  w->queued = 0;
  ew_watch(j, j->waiters != NULL);
}

int lc_journal_sync_now(struct lc_journal *j, unsigned long ticket) {
  if (lc_journal_durable(j, ticket)) return 0;
  int err = sync_inline(j);
  if (err)
    return failf(j, LC_JOURNAL_EIO, LC_EIO, "journal: cannot sync %s: %s", j->path,
                 strerror(err));
  return 0;
}

static void new_run_id(char out[33]) {
  uint64_t a = lc_rand64(), b = lc_rand64();
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

/* ---- loading (replay) ---- */

static void free_entry(struct entry *e) {
  if (!e) return;
  lc_free(e->id);
  if (e->result != e->intent) cJSON_Delete(e->result); /* one line: both */
  cJSON_Delete(e->intent);
  lc_free(e);
}

static const char *str_member(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A result line that answers its effect: not a cancelled one (the effect
 * may or may not have happened) and not a `luact runs resolve --not-run`
 * (a person found it did not happen: it runs on resume). */
static int answered(const cJSON *result) {
  return result && !cJSON_GetObjectItemCaseSensitive(result, "cancelled") &&
         !cJSON_GetObjectItemCaseSensitive(result, "resolved");
}

/* Settled as not having happened by a person (luact runs resolve
 * --not-run): an at-most-once effect may then run, once. */
static int resolved_not_run(const cJSON *result) {
  const cJSON *r = result ? cJSON_GetObjectItemCaseSensitive(result, "resolved") : NULL;
  return cJSON_IsString(r) && !strcmp(r->valuestring, "not_run");
}

/* A result line's order: the next result line written gets a later one. */
static void note_order(struct lc_journal *j, const cJSON *line) {
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(line, "order");
  long ord; /* a crafted journal's 1e300 is no long: refused, not cast */
  if (cJSON_IsNumber(o) && lc_dbl_to_long(o->valuedouble, 0, 1000000000000000L, &ord) == 0 &&
      ord > j->results)
    j->results = ord;
}

/* One parsed line into the journal's state: the header, a resume mark, an
 * intent or a result. Returns 0, LC_EINVAL (message in err) or LC_ENOMEM.
 * Takes line. */
static int take_line(struct lc_journal *j, const char *where, long lineno, cJSON *line,
                     int *have_header, char *err, size_t errlen) {
  const char *type = str_member(line, "type");
  if (!*have_header) {
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(line, "format");
    const char *run = str_member(line, "run");
    if (!type || strcmp(type, "header") || !run || !cJSON_IsNumber(fmt)) {
      snprintf(err, errlen, "journal %s line %ld: expected the header line "
               "{\"type\":\"header\",\"format\":1,\"run\":...}", where, lineno);
      cJSON_Delete(line);
      return LC_EINVAL;
    }
    if (fmt->valueint != FORMAT_VERSION) {
      snprintf(err, errlen, "journal %s: format %d is not supported (this luact reads %d)",
               where, fmt->valueint, FORMAT_VERSION);
      cJSON_Delete(line);
      return LC_EINVAL;
    }
    snprintf(j->run_id, sizeof j->run_id, "%s", run);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(line, "script");
    const char *sh = sc ? str_member(sc, "sha256") : NULL;
    if (sh) snprintf(j->recorded_script_hash, sizeof j->recorded_script_hash, "%s", sh);
    *have_header = 1;
    cJSON_Delete(line);
    return 0;
  }
  if (type && strcmp(type, "resume") == 0) {
    /* A later run continued this one: under this script, if it changed
     * with --allow-script-change. */
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(line, "script");
    const char *sh = sc ? str_member(sc, "sha256") : NULL;
    if (sh) snprintf(j->recorded_script_hash, sizeof j->recorded_script_hash, "%s", sh);
    cJSON_Delete(line);
    return 0;
  }
  const char *id = str_member(line, "id");
  if (!type || !id || (strcmp(type, "intent") && strcmp(type, "result"))) {
    snprintf(err, errlen, "journal %s line %ld: expected an intent or result line with an id",
             where, lineno);
    cJSON_Delete(line);
    return LC_EINVAL;
  }
  if (strcmp(type, "intent") == 0) {
    struct entry *dup = find_counted(j, id);
    if (dup) {
      snprintf(err, errlen, "journal %s line %ld: effect %s already has an intent (line %ld)",
               where, lineno, id, dup->line);
      cJSON_Delete(line);
      return LC_EINVAL;
    }
    struct entry *e = lc_calloc(1, sizeof *e);
    if (!e || !(e->id = lc_strdup(id)) || table_put(j, e)) {
      free_entry(e);
      cJSON_Delete(line);
      return LC_ENOMEM;
    }
    e->intent = line;
    e->line = lineno;
    return 0;
  }
  struct entry *e = find_counted(j, id);
  if (!e && str_member(line, "kind")) {
    /* A one-line effect: its result line holds its intent too (a pure
     * effect's; lc_effect_begin). */
    const char *cls = str_member(line, "class");
    if (!cls || strcmp(cls, "pure")) {
      snprintf(err, errlen,
               "journal %s line %ld: effect %s has its intent in its result line, which only "
               "a pure effect has", where, lineno, id);
      cJSON_Delete(line);
      return LC_EINVAL;
    }
    if (!(e = lc_calloc(1, sizeof *e)) || !(e->id = lc_strdup(id)) || table_put(j, e)) {
      free_entry(e);
      cJSON_Delete(line);
      return LC_ENOMEM;
    }
    e->intent = e->result = line;
    e->line = lineno;
    note_order(j, line);
    return 0;
  }
  if (e && str_member(line, "kind")) {
    snprintf(err, errlen, "journal %s line %ld: effect %s already has an intent (line %ld)",
             where, lineno, id, e->line);
    cJSON_Delete(line);
    return LC_EINVAL;
  }
  /* A result may follow a cancelled or not-run one: a resumed run ran the
   * effect again. */
  if (!e || (e->result && answered(e->result))) {
    snprintf(err, errlen, "journal %s line %ld: result for %s %s", where, lineno, id,
             e ? "appears twice" : "has no intent before it");
    cJSON_Delete(line);
    return LC_EINVAL;
  }
  note_order(j, line);
  if (e->result != e->intent) cJSON_Delete(e->result); /* a one-line effect keeps its intent */
  e->result = line;
  return 0;
}

/* Parses one line's text; torn_tail: a line that does not parse is the
 * cut end of a crash (the caller knows it is the last and has no newline). */
static int parse_line(struct lc_journal *j, const char *where, long lineno, const char *buf,
                      size_t len, int *have_header, char *err, size_t errlen) {
  const char *end = NULL;
  cJSON *line = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
  if (!line || (size_t)(end - buf) != len || !cJSON_IsObject(line)) {
    long at = (long)((line ? end : cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : buf) - buf);
    int obj = line && cJSON_IsObject(line);
    cJSON_Delete(line);
    if (line && !obj) snprintf(err, errlen, "journal %s line %ld: not a JSON object", where, lineno);
    else snprintf(err, errlen, "journal %s line %ld: invalid JSON at byte %ld", where, lineno, at);
    return LC_EINVAL;
  }
  return take_line(j, where, lineno, line, have_header, err, errlen);
}

/* Parses the file into entries and the bucket table. *torn gets the
 * offset where a torn last line starts (-1: none). */
static int load(struct lc_journal *j, long *torn_at, char *err, size_t errlen) {
  *torn_at = -1;
  FILE *f = fopen(j->path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open journal %s: %s", j->path, strerror(errno));
    return LC_EIO;
  }
  char *buf = NULL;
  size_t bcap = 0;
  ssize_t len;
  long lineno = 0, off = 0;
  int rc = 0, have_header = 0;
  while ((len = getline(&buf, &bcap, f)) >= 0) {
    lineno++;
    long line_off = off;
    off += (long)len;
    int torn = len == 0 || buf[len - 1] != '\n';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    if (len == 0) continue;
    rc = parse_line(j, j->path, lineno, buf, (size_t)len, &have_header, err, errlen);
    if (rc == LC_EINVAL && torn && fgetc(f) == EOF) {
      /* A crash mid-write leaves a last line without its newline: that
       * effect simply has no (complete) record. */
      rc = 0;
      *torn_at = line_off;
      break;
    }
    if (rc) break;
  }
  free(buf);
  fclose(f);
  if (!rc && !have_header) {
    snprintf(err, errlen, "journal %s is empty (no header line)", j->path);
    rc = LC_EINVAL;
  }
  if (rc == LC_ENOMEM) snprintf(err, errlen, "out of memory loading %s", j->path);
  return rc;
}

/* The store's journal lines, as load reads a file's. */
struct store_load {
  struct lc_journal *j;
  int have_header;
  char *err;
  size_t errlen;
};

static int store_line(void *ud, long seq, const char *text, size_t len) {
  struct store_load *x = ud;
  char where[128];
  snprintf(where, sizeof where, "of run %s", x->j->sc.run_id);
  return parse_line(x->j, where, seq, text, len, &x->have_header, x->err, x->errlen);
}

/* ---- open / close ---- */

static void utc_now(char when[32]) {
  time_t now = time(NULL);
  struct tm tm;
  strftime(when, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}

/* A run id names files and rows and goes into keys: letters, digits and
 * ._- only, 1 to 64 of them. */
static int run_id_ok(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 64) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return 0;
  return 1;
}

static cJSON *header_json(const struct lc_journal *j, const char *script_path,
                          const char *args_json) {
  char when[32];
  utc_now(when);
  cJSON *h = cJSON_CreateObject(), *sc = NULL;
  int ok = h && cJSON_AddStringToObject(h, "type", "header") &&
           cJSON_AddNumberToObject(h, "format", FORMAT_VERSION) &&
           cJSON_AddStringToObject(h, "run", j->run_id) &&
           cJSON_AddStringToObject(h, "luact", LUACT_VERSION) &&
           (sc = cJSON_AddObjectToObject(h, "script")) &&
           (!script_path || cJSON_AddStringToObject(sc, "path", script_path)) &&
           (!j->script_hash[0] || cJSON_AddStringToObject(sc, "sha256", j->script_hash)) &&
           cJSON_AddStringToObject(h, "started", when);
  if (ok && args_json) {
    cJSON *a = cJSON_Parse(args_json);
    ok = cJSON_IsArray(a);
    if (ok) cJSON_AddItemToObject(h, "args", a);
    else cJSON_Delete(a);
  }
  if (!ok) {
    cJSON_Delete(h);
    return NULL;
  }
  return h;
}

/* The header as a line of text (jsonw, scrubbed), for the store. */
static int header_text(const struct lc_journal *j, const char *script_path,
                       const char *args_json, struct lc_buf *b) {
  cJSON *h = header_json(j, script_path, args_json);
  if (!h) return LC_ENOMEM;
  struct lc_jsonw w;
  lc_jsonw_init(&w, b);
  lc_jsonw_cjson(&w, h);
  cJSON_Delete(h);
  if (lc_jsonw_finish(&w)) return LC_ENOMEM;
  b->len = lc_secrets_scrub(b->data, b->len, LC_SCRUB_JSON);
  return 0;
}

/* A store journal's run is created with its first line, by the store's
 * writer (a run that makes no effect never touches the store): queues the
 * row and the header. */
static int store_create(struct lc_journal *j) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  char cwd[4096];
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "%s", j->run_id);
  r.script = j->hdr_script;
  r.script_sha256 = j->script_hash[0] ? j->script_hash : NULL;
  r.args = j->hdr_args ? j->hdr_args : "[]";
  r.cwd = getcwd(cwd, sizeof cwd) ? cwd : NULL;
  r.status = "running";
  r.pid = (long)getpid();
  int rc = header_text(j, j->hdr_script, j->hdr_args, &b);
  if (!rc) rc = lc_store_append_run(j->store, &j->sc, &r, j->lines + 1, b.data, b.len);
  lc_buf_free(&b);
  if (rc) return failf(j, LC_JOURNAL_EIO, rc, "journal: cannot queue run %s for %s", j->run_id,
                       lc_store_path(j->store));
  j->seq = 1;
  j->lines++;
  j->created = 1;
  return 0;
}

/* Resume: checks the script against the recording and appends the resume
 * mark. The file is open for appending (or the store's seq is set). */
static int resume_begin(struct lc_journal *j, const struct lc_journal_opts *o, char *err,
                        size_t errlen) {
  if (j->recorded_script_hash[0] && j->script_hash[0] &&
      strcmp(j->recorded_script_hash, j->script_hash) && !o->allow_script_change) {
    snprintf(err, errlen,
             "resume: the script has changed since run %s was recorded (sha256 %.12s..., now "
             "%.12s...): resuming it under a different script is refused (its effects may no "
             "longer match); --allow-script-change resumes anyway",
             j->run_id, j->recorded_script_hash, j->script_hash);
    return LC_EINVAL;
  }
  char when[32];
  utc_now(when);
  cJSON *l = cJSON_CreateObject(), *sc = NULL;
  if (!l || !cJSON_AddStringToObject(l, "type", "resume") ||
      !cJSON_AddStringToObject(l, "at", when) ||
      !(sc = cJSON_AddObjectToObject(l, "script")) ||
      (j->script_hash[0] && !cJSON_AddStringToObject(sc, "sha256", j->script_hash))) {
    cJSON_Delete(l);
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  int rc = write_line(j, l, 0);
  if (rc) snprintf(err, errlen, "%s", j->err);
  return rc;
}

int lc_journal_open(enum lc_journal_mode mode, const char *path, const char *script_path,
                    struct lc_journal **out, char *err, size_t errlen) {
  struct lc_journal_opts o = {.mode = mode, .path = path, .script_path = script_path};
  return lc_journal_open_with(&o, out, err, errlen);
}

int lc_journal_open_with(const struct lc_journal_opts *o, struct lc_journal **out, char *err,
                         size_t errlen) {
  *out = NULL;
  enum lc_journal_mode mode = o->mode;
  if (o->run_id && !run_id_ok(o->run_id)) {
    snprintf(err, errlen,
             "run id '%.80s' is not valid: 1 to 64 letters, digits, '.', '_' or '-'", o->run_id);
    return LC_EINVAL;
  }
  if (mode != LC_JOURNAL_OFF && !o->path && !o->store) {
    snprintf(err, errlen, "journal: a file or a store is needed to record or replay");
    return LC_EINVAL;
  }
  if (o->store && o->resume && !o->run_id) {
    snprintf(err, errlen, "journal: resuming from a store needs the run's id");
    return LC_EINVAL;
  }
  struct lc_journal *j = lc_calloc(1, sizeof *j);
  if (!j) return LC_ENOMEM;
  j->mode = mode;
  j->resume = o->resume && mode == LC_JOURNAL_RECORD;
  j->store = mode != LC_JOURNAL_OFF ? o->store : NULL;
  pthread_mutex_init(&j->wmu, NULL);
  pthread_cond_init(&j->wcv, NULL);
  j->efd = mode == LC_JOURNAL_RECORD ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (o->run_id) snprintf(j->run_id, sizeof j->run_id, "%s", o->run_id);
  else new_run_id(j->run_id);
  if (o->script_text) {
    unsigned char d[32];
    struct lc_sha256 h;
    lc_sha256_init(&h);
    lc_sha256_update(&h, o->script_text, o->script_len);
    lc_sha256_final(&h, d);
    lc_sha256_to_hex(d, j->script_hash);
  } else if (o->script_path && file_hash(o->script_path, j->script_hash)) {
    j->script_hash[0] = '\0';
  }
  j->sc.committed = store_committed;
  j->sc.cancel = store_cancel;
  j->sc.ud = j;
  snprintf(j->sc.run_id, sizeof j->sc.run_id, "%s", j->run_id);
  int rc = 0;
  const char *where = j->store ? lc_store_path(j->store) : o->path;
  if (mode != LC_JOURNAL_OFF && !(j->path = lc_strdup(where))) rc = LC_ENOMEM;
  long torn_at = -1;
  if (rc) {
    snprintf(err, errlen, "out of memory");
  } else if (mode == LC_JOURNAL_REPLAY || j->resume) {
    if (j->store) {
      struct store_load x = {.j = j, .err = err, .errlen = errlen};
      long last = 0;
      rc = lc_store_journal_read(j->store, j->run_id, store_line, &x, &last, err, errlen);
      j->seq = last;
      j->created = 1;
    } else {
      rc = load(j, &torn_at, err, errlen);
    }
    if (!rc && o->run_id && strcmp(o->run_id, j->run_id)) {
      snprintf(err, errlen, "journal %s is run %s, not %s", where, j->run_id, o->run_id);
      rc = LC_EINVAL;
    }
    snprintf(j->sc.run_id, sizeof j->sc.run_id, "%s", j->run_id);
    if (!rc && j->resume && !j->store) {
      /* Append after the last whole line: a torn one is cut off first. */
      if (!(j->f = fopen(o->path, "r+")) || fseek(j->f, 0, SEEK_END)) {
        snprintf(err, errlen, "cannot open journal %s to resume: %s", o->path, strerror(errno));
        rc = LC_EIO;
      } else if (torn_at >= 0) {
        long size = ftell(j->f);
        if (ftruncate(fileno(j->f), torn_at) || fseek(j->f, torn_at, SEEK_SET)) {
          snprintf(err, errlen, "cannot cut the torn last line of %s: %s", o->path,
                   strerror(errno));
          rc = LC_EIO;
        } else {
          fprintf(stderr,
                  "luact: journal %s: its last line was cut by a crash (%ld bytes, no "
                  "newline); that effect has no complete record and is settled by its "
                  "class\n",
                  o->path, size - torn_at);
        }
      } else if (ftell(j->f) > 0) {
        /* A whole last line whose newline the crash cut: end it, or the
         * next line would be glued to it (and the journal unreadable). */
        int last = fseek(j->f, -1, SEEK_END) == 0 ? fgetc(j->f) : EOF;
        if (fseek(j->f, 0, SEEK_END) || (last != '\n' && (fputc('\n', j->f) == EOF ||
                                                          fflush(j->f)))) {
          snprintf(err, errlen, "cannot end the last line of %s: %s", o->path, strerror(errno));
          rc = LC_EIO;
        }
      }
    }
    if (!rc && j->resume) rc = resume_begin(j, o, err, errlen);
  } else if (mode == LC_JOURNAL_RECORD) {
    if (j->store) {
      char abs[4096];
      const char *sp = o->script_path && realpath(o->script_path, abs) ? abs : o->script_path;
      if ((sp && !(j->hdr_script = lc_strdup(sp))) ||
          (o->args_json && !(j->hdr_args = lc_strdup(o->args_json)))) {
        snprintf(err, errlen, "out of memory");
        rc = LC_ENOMEM;
      }
      if (!rc && o->create_now) {
        rc = store_create(j);
        if (!rc) {
          lc_store_flush_client(j->store, j);
          pthread_mutex_lock(&j->wmu);
          int werr = j->werr, ok = j->synced >= 1;
          pthread_mutex_unlock(&j->wmu);
          if (werr || !ok) rc = LC_EIO;
        }
        if (rc) snprintf(err, errlen, "%s", j->err[0] ? j->err : "cannot create the run in the store");
      }
    } else if (!(j->f = fopen(o->path, "w"))) {
      snprintf(err, errlen, "cannot create journal %s: %s", o->path, strerror(errno));
      rc = LC_EIO;
    } else {
      cJSON *h = header_json(j, o->script_path, o->args_json);
      rc = write_line(j, h, 1);
      if (rc) snprintf(err, errlen, "%s", j->err);
    }
  }
  if (rc) {
    lc_journal_free(j);
    return rc;
  }
  *out = j;
  return 0;
}

void lc_journal_set_wait_input(struct lc_journal *j, int on) { j->wait_input = on; }
int lc_journal_wait_input(const struct lc_journal *j) { return j->wait_input; }
const char *lc_journal_question(const struct lc_journal *j) { return j->question; }

void lc_journal_wait_for_input(struct lc_journal *j, const char *question, size_t len) {
  if (j->failed) return;
  lc_free(j->question);
  j->question = lc_strndup(question ? question : "", question ? len : 0);
  lc_journal_fail(j, LC_JOURNAL_WAITING,
                  "waiting for input: luact.ask found no more input; answer with "
                  "`luact runs input RUN VALUE`");
}

void lc_journal_free(struct lc_journal *j) {
  if (!j) return;
  writer_stop(j); /* after its last fsync */
  /* The store's writer calls back into j: every line committed first. */
  if (j->store) lc_store_flush_client(j->store, j);
  if (j->ew_on) ew_watch(j, 0);
  if (j->efd >= 0) close(j->efd);
  pthread_mutex_destroy(&j->wmu);
  pthread_cond_destroy(&j->wcv);
  if (j->f) fclose(j->f);
  if (j->input) fclose(j->input);
  for (size_t b = 0; b < j->nbuckets; b++)
    while (j->buckets[b]) {
      struct entry *e = j->buckets[b];
      j->buckets[b] = e->next;
      free_entry(e);
    }
  lc_free(j->buckets);
  while (j->scopes) {
    struct scope *s = j->scopes;
    j->scopes = s->next;
    lc_free(s->path);
    lc_free(s);
  }
  lc_free(j->path);
  lc_free(j->question);
  lc_free(j->hdr_script);
  lc_free(j->hdr_args);
  lc_free(j);
}

int lc_journal_has_run(struct lc_journal *j) {
  if (!j->store || !j->created) return 0;
  if (j->resume) return 1;
  /* Created only once its first line committed: a creation the store
   * refused (an id taken meanwhile) must not touch that other run's row. */
  lc_store_flush_client(j->store, j);
  pthread_mutex_lock(&j->wmu);
  int ok = j->synced >= 1;
  pthread_mutex_unlock(&j->wmu);
  return ok;
}

enum lc_journal_mode lc_journal_mode(const struct lc_journal *j) { return j->mode; }
int lc_journal_records_fresh(const struct lc_journal *j) {
  return j->mode == LC_JOURNAL_RECORD && !j->resume && j->sync != LC_JOURNAL_SYNC_ALL;
}
void lc_journal_set_sync(struct lc_journal *j, enum lc_journal_sync s) { j->sync = s; }
const char *lc_journal_run_id(const struct lc_journal *j) { return j->run_id; }
enum lc_journal_fail lc_journal_failed(const struct lc_journal *j) { return j->failed; }
const char *lc_journal_error(const struct lc_journal *j) { return j->err; }

void lc_journal_set_delta_fn(struct lc_journal *j, lc_journal_delta_fn fn, void *ud) {
  j->delta_fn = fn;
  j->delta_ud = ud;
}

void lc_journal_delta(struct lc_journal *j, const char *effect_id, const struct lc_llm_delta *d) {
  if (j && j->delta_fn) j->delta_fn(j->delta_ud, j->seq, effect_id, d);
}

void lc_journal_set_input(struct lc_journal *j, FILE *f) {
  if (j->input) fclose(j->input);
  j->input = f;
}

FILE *lc_journal_input(const struct lc_journal *j) { return j->input; }

void lc_journal_counts(const struct lc_journal *j, long *begun, long *replayed, long *ran) {
  if (begun) *begun = j->begun;
  if (replayed) *replayed = j->replayed;
  if (ran) *ran = j->ran;
}

/* ---- live scopes ---- */

int lc_journal_scope_push(struct lc_journal *j, const void *task, const char *path,
                          unsigned long children) {
  struct scope *s = lc_calloc(1, sizeof *s);
  if (!s || !(s->path = lc_strdup(path))) {
    lc_free(s);
    return LC_ENOMEM;
  }
  s->task = task;
  s->path_len = strlen(path);
  s->children = children;
  s->next = j->scopes;
  j->scopes = s;
  return 0;
}

void lc_journal_scope_pop(struct lc_journal *j, const void *task) {
  for (struct scope **pp = &j->scopes; *pp; pp = &(*pp)->next)
    if ((*pp)->task == task) {
      struct scope *s = *pp;
      *pp = s->next;
      lc_free(s->path);
      lc_free(s);
      return;
    }
}

static int in_live_scope(const struct lc_journal *j, const struct lc_effect_who *w) {
  for (const struct scope *s = j->scopes; s; s = s->next) {
    if (s->task == w->task) return 1;
    if (strncmp(w->path, s->path, s->path_len) == 0 && w->path[s->path_len] == '.' &&
        strtoul(w->path + s->path_len + 1, NULL, 10) > s->children)
      return 1;
  }
  return 0;
}

/* ---- effects ---- */

static void derive_key(const struct lc_journal *j, const char *id, char out[33]) {
  struct lc_sha256 s;
  unsigned char d[32];
  char hex[65];
  lc_sha256_init(&s);
  lc_sha256_update(&s, j->run_id, strlen(j->run_id));
  lc_sha256_update(&s, "/", 1);
  lc_sha256_update(&s, id, strlen(id));
  lc_sha256_final(&s, d);
  lc_sha256_to_hex(d, hex);
  memcpy(out, hex, 32);
  out[32] = '\0';
}

void lc_effect_key(const struct lc_journal *j, const char *id, char out[33]) {
  derive_key(j, id, out);
}

/* "path#seq" into out (LC_EFFECT_ID_MAX), cut at the end as snprintf would
 * cut it; without printf (it was a tenth of a journaled effect's own
 * cost). */
static void format_id(char out[LC_EFFECT_ID_MAX], const char *path, unsigned long seq) {
  char num[24];
  size_t nl = 0, cap = LC_EFFECT_ID_MAX - 1;
  do num[sizeof num - 1 - nl++] = (char)('0' + seq % 10);
  while ((seq /= 10) != 0);
  size_t n = strlen(path);
  if (n > cap) n = cap;
  memcpy(out, path, n);
  if (n < cap) out[n++] = '#';
  const char *digits = num + sizeof num - nl;
  if (nl > cap - n) nl = cap - n; /* the last digits go, as with snprintf */
  memcpy(out + n, digits, nl);
  out[n + nl] = '\0';
}

int lc_effect_pass(struct lc_journal *j) {
  if (j->failed) return LC_ESTATE;
  j->begun++;
  j->ran++;
  return 0;
}

/* What a mismatch is called: a replay found a different run; a resumed
 * run found that its script no longer does what it did. */
static const char *mismatch_word(const struct lc_journal *j) {
  return j->resume ? "nondeterminism" : "replay";
}

static const char *script_note(const struct lc_journal *j) {
  if (j->recorded_script_hash[0] && j->script_hash[0] &&
      strcmp(j->recorded_script_hash, j->script_hash))
    return " (the script has changed since it was recorded)";
  return "";
}

/* Replay: compares the recorded intent with d; 0 or a mismatch failure. */
static int check_intent(struct lc_journal *j, const struct entry *en,
                        const struct lc_effect_desc *d, const char *id) {
  char diff[1200];
  const char *rk = str_member(en->intent, "kind"), *rn = str_member(en->intent, "name");
  const char *rc = str_member(en->intent, "class");
  const char *what = NULL;
  char rv[256] = "", nv[256] = "";
  if (!rk || strcmp(rk, d->kind)) {
    what = "kind";
    snprintf(rv, sizeof rv, "%s", rk ? rk : "(absent)");
    snprintf(nv, sizeof nv, "%s", d->kind);
  } else if (!rn || strcmp(rn, d->name)) {
    what = "name";
    snprintf(rv, sizeof rv, "%s", rn ? rn : "(absent)");
    snprintf(nv, sizeof nv, "%s", d->name);
  } else if (!rc || strcmp(rc, lc_effect_name(d->cls))) {
    what = "class";
    snprintf(rv, sizeof rv, "%s", rc ? rc : "(absent)");
    snprintf(nv, sizeof nv, "%s", lc_effect_name(d->cls));
  }
  if (what)
    return failf(j, LC_JOURNAL_MISMATCH, LC_EINVAL,
                 "%s: effect %s (%s %s) does not match the journal (line %ld): "
                 "%s: recorded \"%s\" / now \"%s\"%s",
                 mismatch_word(j), id, d->kind, d->name, en->line, what, rv, nv,
                 script_note(j));
  if (lc_jcanon_diff(cJSON_GetObjectItemCaseSensitive(en->intent, "request"), d->request,
                     "request", diff, sizeof diff))
    return failf(j, LC_JOURNAL_MISMATCH, LC_EINVAL,
                 "%s: effect %s (%s %s) does not match the journal (line %ld): %s%s",
                 mismatch_word(j), id, d->kind, d->name, en->line, diff, script_note(j));
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(en->intent, "hashes");
  const char *rp = h ? str_member(h, "prompt") : NULL, *rt = h ? str_member(h, "tools") : NULL;
  if ((rp || d->prompt_hash) && (!rp || !d->prompt_hash || strcmp(rp, d->prompt_hash)))
    return failf(j, LC_JOURNAL_MISMATCH, LC_EINVAL,
                 "%s: effect %s (%s %s) does not match the journal (line %ld): "
                 "hashes.prompt: recorded %s / now %s (the prompt changed)%s",
                 mismatch_word(j), id, d->kind, d->name, en->line, rp ? rp : "(absent)",
                 d->prompt_hash ? d->prompt_hash : "(absent)", script_note(j));
  if ((rt || d->tools_hash) && (!rt || !d->tools_hash || strcmp(rt, d->tools_hash)))
    return failf(j, LC_JOURNAL_MISMATCH, LC_EINVAL,
                 "%s: effect %s (%s %s) does not match the journal (line %ld): "
                 "hashes.tools: recorded %s / now %s (a tool's schema or description "
                 "changed)%s",
                 mismatch_word(j), id, d->kind, d->name, en->line, rt ? rt : "(absent)",
                 d->tools_hash ? d->tools_hash : "(absent)", script_note(j));
  return 0;
}

/* Crash points after a line: the crash comes once the line is durable (a
 * store journal's line only sits in the writer's queue until then, and
 * "after the result" must mean the result survived). */
static void crash_after(struct lc_journal *j, const char *point, const char *kind) {
  if (!lc_crash_due(point, kind)) return;
  if (j->store) lc_store_flush(j->store);
  lc_crash_now();
}

/* A pure effect is journaled as one line, its result line carrying the
 * intent's members (kind, name, class, request, hashes): its intent needs
 * no line of its own, since a pure effect with no line runs again on
 * resume, as one with an intent and no result does. Not an LLM call's
 * (luact serve numbers a call's streamed deltas after its intent line) nor
 * luact.ask's (a run waiting for a person waits on its intent). */
static int one_line(const struct lc_effect_desc *d) {
  return d->cls == LC_EFFECT_PURE && d->kind && strcmp(d->kind, "llm") && strcmp(d->kind, "input");
}

/* A line's fixed parts (keys, punctuation) go in as literal text: through
 * lc_jsonw_key each key cost a separator check, a strlen and an escape
 * scan (~250 instructions under callgrind; a one-line effect has 13). The
 * output is the same bytes. Nonzero: no memory. */
#define PUT_LIT(b, s) put((b), (s), sizeof(s) - 1)

/* lc_buf_append, inline where the room is there (pending_intent reserved
 * it): most pieces are a few bytes and a call each was ~60 instructions. */
static inline int put(struct lc_buf *b, const char *p, size_t n) {
  if (!b->data || b->len + n + 1 > b->cap || b->limit) return lc_buf_append(b, p, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

/* '"' + s escaped + '"', as lc_jsonw_cstr writes it (NULL writes ""). */
static int put_qstr(struct lc_buf *b, const char *s) {
  size_t n = s ? strlen(s) : 0;
  return put(b, "\"", 1) || (n && lc_jsonw_escape(b, s, n)) || put(b, "\"", 1);
}

/* A number as lc_jsonw_num writes it. */
static int put_num(struct lc_buf *b, double v) {
  char t[48];
  size_t n = lc_jsonw_fmt_num(v, t);
  return put(b, t, n);
}

/* The one-line effect's intent members into e->pending, the object left
 * open; in the order an intent line has them. 0 or LC_ENOMEM. */
static int pending_intent(struct lc_effect_op *e, const struct lc_effect_desc *d) {
  struct lc_buf *b = &e->pending;
  lc_buf_init(b, 0);
  /* Room for the whole line in one allocation, usually: the members
   * here, a short result and the rest end_one_line writes (was a
   * reallocation or two per line). */
  if (lc_buf_reserve(b, 320 + d->request_len + strlen(d->name ? d->name : "")))
    return LC_ENOMEM;
  if (PUT_LIT(b, "{\"type\":\"result\",\"id\":") || put_qstr(b, e->id) ||
      PUT_LIT(b, ",\"kind\":") || put_qstr(b, d->kind) || PUT_LIT(b, ",\"name\":") ||
      put_qstr(b, d->name) || PUT_LIT(b, ",\"class\":") || put_qstr(b, lc_effect_name(d->cls)))
    return LC_ENOMEM;
  if (d->request_text) {
    if (PUT_LIT(b, ",\"request\":") || put(b, d->request_text, d->request_len))
      return LC_ENOMEM;
  } else if (d->request) {
    cJSON *r = NULL;
    if (!d->request_sorted) {
      if (!(r = cJSON_Duplicate(d->request, 1))) return LC_ENOMEM;
      lc_jcanon_sort(r, 1);
    }
    struct lc_jsonw w;
    lc_jsonw_reopen(&w, b, 1, 1);
    lc_jsonw_key(&w, "request");
    lc_jsonw_cjson(&w, r ? r : d->request);
    cJSON_Delete(r);
    if (lc_jsonw_finish(&w)) return LC_ENOMEM;
  }
  if (d->prompt_hash || d->tools_hash) {
    if (PUT_LIT(b, ",\"hashes\":{") ||
        (d->prompt_hash && (PUT_LIT(b, "\"prompt\":") || put_qstr(b, d->prompt_hash))) ||
        (d->prompt_hash && d->tools_hash && PUT_LIT(b, ",")) ||
        (d->tools_hash && (PUT_LIT(b, "\"tools\":") || put_qstr(b, d->tools_hash))) ||
        PUT_LIT(b, "}"))
      return LC_ENOMEM;
  }
  return 0;
}

static int begin_desc(struct lc_journal *j, const struct lc_effect_who *who,
                      const struct lc_effect_desc *d, struct lc_effect_op *e);

int lc_effect_begin(struct lc_journal *j, const struct lc_effect_who *who,
                    const struct lc_effect_desc *d, struct lc_effect_op *e) {
  /* The request as text only: fine for a one-line effect recorded fresh;
   * a replay, a resume (it may compare) and an intent line get the tree. */
  if (!d->request_text || d->request ||
      (j->mode == LC_JOURNAL_RECORD && !j->resume && one_line(d)) || j->mode == LC_JOURNAL_OFF)
    return begin_desc(j, who, d, e);
  const char *end = NULL;
  cJSON *r = cJSON_ParseWithLengthOpts(d->request_text, d->request_len, &end, 0);
  if (!r) {
    memset(e, 0, sizeof *e);
    return failf(j, LC_JOURNAL_EIO, LC_ENOMEM, "journal: out of memory");
  }
  struct lc_effect_desc d2 = *d;
  d2.request = r;
  d2.request_sorted = 1; /* canonical text: the tree is in order */
  int rc = begin_desc(j, who, &d2, e);
  cJSON_Delete(r); /* the intent line (a reference to it) is written by now */
  return rc;
}

static int begin_desc(struct lc_journal *j, const struct lc_effect_who *who,
                      const struct lc_effect_desc *d, struct lc_effect_op *e) {
  memset(e, 0, sizeof *e);
  e->j = j;
  e->async = d->waits;
  e->cls = d->cls;
  size_t kl = d->kind ? strnlen(d->kind, sizeof e->kind - 1) : 0; /* cut, no printf */
  memcpy(e->kind, d->kind ? d->kind : "", kl);
  e->kind[kl] = '\0';
  e->t0 = lc_now_ms();
  format_id(e->id, who->path, who->seq);
  /* The key (a SHA-256) only where the intent records it: others derive
   * theirs when it is read (lc_effect_key; the Lua ctx does). */
  if (d->cls == LC_EFFECT_IDEMPOTENT) derive_key(j, e->id, e->key);
  if (atomic_load(&j->cancel_req))
    lc_journal_fail(j, LC_JOURNAL_CANCELLED,
                    "cancelled: `luact runs cancel` asked this run to stop");
  if (j->failed) return LC_ESTATE; /* the first failure stops every later effect */
  j->begun++;
  if (j->mode == LC_JOURNAL_OFF) {
    j->ran++;
    return LC_EFFECT_RUN;
  }
  if (j->resume) {
    /* What the journal holds answers; the rest runs live and is appended. */
    const struct entry *en = find(j, e->id);
    if (en) {
      int rc = check_intent(j, en, d, e->id);
      if (rc) return rc;
      if (answered(en->result)) {
        e->line = en->result;
        j->replayed++;
        return LC_EFFECT_REPLAYED;
      }
      if (d->cls == LC_EFFECT_AT_MOST_ONCE && !resolved_not_run(en->result))
        return failf(j, LC_JOURNAL_IN_DOUBT, LC_ESTATE,
                     "in_doubt: effect %s (%s %s, at_most_once, line %ld of %s) was started "
                     "but has no result: it may or may not have taken place, and it is never "
                     "run twice. A person must find out what happened and settle it with "
                     "`luact runs resolve RUN %s --result JSON` or `--not-run`",
                     e->id, d->kind, d->name, en->line, j->path, e->id);
      /* pure: again; idempotent: again, with the same key. Its intent is
       * there already: only the result is owed. */
      e->recording = 1;
      e->live = 1;
      j->ran++;
      return LC_EFFECT_RUN;
    }
  }
  if (j->mode == LC_JOURNAL_RECORD && one_line(d)) {
    /* The intent's members are kept, not written: they open the result
     * line (lc_effect_end). A crash before that leaves no line, and the
     * effect runs again on resume, as an intent without a result would
     * have made it do. */
    if (pending_intent(e, d)) {
      lc_buf_free(&e->pending);
      return failf(j, LC_JOURNAL_EIO, LC_ENOMEM, "journal: out of memory");
    }
    crash_after(j, "after_intent", d->kind);
    e->recording = 1;
    j->ran++;
    return LC_EFFECT_RUN;
  }
  if (j->mode == LC_JOURNAL_RECORD) {
    cJSON *l = cJSON_CreateObject(), *h = NULL;
    int ok = l && cJSON_AddStringToObject(l, "type", "intent") &&
             cJSON_AddStringToObject(l, "id", e->id) &&
             cJSON_AddStringToObject(l, "kind", d->kind) &&
             cJSON_AddStringToObject(l, "name", d->name) &&
             cJSON_AddStringToObject(l, "class", lc_effect_name(d->cls));
    if (ok && d->request && d->request_sorted) {
      /* a reference: deleting the line leaves the caller's tree alone */
      ok = cJSON_AddItemReferenceToObject(l, "request", (cJSON *)d->request);
    } else if (ok && d->request) {
      cJSON *r = cJSON_Duplicate(d->request, 1);
      ok = r != NULL;
      if (ok) {
        lc_jcanon_sort(r, 1);
        cJSON_AddItemToObject(l, "request", r);
      }
    }
    if (ok && (d->prompt_hash || d->tools_hash)) {
      ok = (h = cJSON_AddObjectToObject(l, "hashes")) != NULL &&
           (!d->prompt_hash || cJSON_AddStringToObject(h, "prompt", d->prompt_hash)) &&
           (!d->tools_hash || cJSON_AddStringToObject(h, "tools", d->tools_hash));
    }
    if (ok && d->cls == LC_EFFECT_IDEMPOTENT)
      ok = cJSON_AddStringToObject(l, "idempotency_key", e->key) != NULL;
    if (!ok) {
      cJSON_Delete(l);
      return failf(j, LC_JOURNAL_EIO, LC_ENOMEM, "journal: out of memory");
    }
    int sync = j->sync == LC_JOURNAL_SYNC_ALL ||
               (j->sync == LC_JOURNAL_SYNC_EFFECTFUL && d->cls == LC_EFFECT_AT_MOST_ONCE);
    unsigned long unused; /* a pure effect's line: see lc_effect_end */
    int rc = write_line_t(j, l, sync,
                          e->async                    ? &e->ticket
                          : d->cls == LC_EFFECT_PURE ? &unused
                                                     : NULL);
    if (rc) return rc;
    crash_after(j, "after_intent", d->kind);
    e->recording = 1;
    j->ran++;
    return LC_EFFECT_RUN;
  }
  /* Replay. */
  if (in_live_scope(j, who)) {
    e->live = 1;
    j->ran++;
    return LC_EFFECT_RUN;
  }
  const struct entry *en = find(j, e->id);
  if (!en)
    return failf(j, LC_JOURNAL_MISMATCH, LC_ENOTFOUND,
                 "replay: no recorded effect %s (%s %s) in %s%s", e->id, d->kind, d->name,
                 j->path, script_note(j));
  int rc = check_intent(j, en, d, e->id);
  if (rc) return rc;
  if (answered(en->result)) {
    e->line = en->result;
    j->replayed++;
    return LC_EFFECT_REPLAYED;
  }
  /* An intent without a result: the effect may or may not have happened.
   * Decided by its class, never by guessing. */
  if (d->cls == LC_EFFECT_AT_MOST_ONCE && !resolved_not_run(en->result))
    return failf(j, LC_JOURNAL_IN_DOUBT, LC_ESTATE,
                 "in_doubt: effect %s (%s %s, at_most_once, journal %s line %ld) was "
                 "started but has no result: it may or may not have taken place, and it is "
                 "never run twice. A human must find out what happened, then either add "
                 "its result line to the journal or start a fresh run",
                 e->id, d->kind, d->name, j->path, en->line);
  e->live = 1; /* pure: again; idempotent: again, with the same key */
  j->ran++;
  return LC_EFFECT_RUN;
}

/* The one line of a one-line effect: the pending intent members, then the
 * result's, as lc_effect_end writes them (takes result, error, extra). */
/* lc_effect_end_text's result text and nested counts. */
struct end_text {
  const char *result;
  size_t len;
  unsigned long effects, spawned;
};

static int end_one_line(struct lc_effect_op *e, cJSON *result, cJSON *error, cJSON *extra,
                        const struct end_text *tx) {
  struct lc_journal *j = e->j;
  struct lc_buf b = e->pending;
  lc_buf_init(&e->pending, 0);
  int bad = 0, has_latency = 0;
  if (tx) { /* text only: literal parts (what nested_extra's tree in
             * l_effect.c would write for "nested") */
    bad = PUT_LIT(&b, ",\"result\":") || put(&b, tx->result, tx->len) ||
          PUT_LIT(&b, ",\"nested\":{\"effects\":") || put_num(&b, (double)tx->effects) ||
          PUT_LIT(&b, ",\"spawned\":") || put_num(&b, (double)tx->spawned) || PUT_LIT(&b, "}");
  } else {
    struct lc_jsonw w;
    lc_jsonw_reopen(&w, &b, 1, 1);
    if (error) {
      lc_jsonw_key(&w, "error");
      lc_jsonw_cjson(&w, error);
    } else {
      lc_jsonw_key(&w, "result");
      if (result) lc_jsonw_cjson(&w, result);
      else lc_jsonw_null(&w);
    }
    for (const cJSON *c = extra ? extra->child : NULL; c; c = c->next) {
      lc_jsonw_key(&w, c->string);
      lc_jsonw_cjson(&w, c);
      has_latency |= !strcmp(c->string, "latency_ms");
    }
    bad = lc_jsonw_finish(&w);
  }
  bad = bad || PUT_LIT(&b, ",\"order\":") || put_num(&b, (double)++j->results);
  if (!bad && !has_latency) {
    /* as latency_ms() would print, without printf (lc_jsonw_fmt_milli) */
    char t[48];
    double ms = lc_now_ms() - e->t0;
    size_t n = ms >= 0 ? lc_jsonw_fmt_milli((long)(ms * 1000), t) : lc_jsonw_fmt_num(ms, t);
    bad = PUT_LIT(&b, ",\"latency_ms\":") || put(&b, t, n);
  }
  bad = bad || PUT_LIT(&b, "}");
  cJSON_Delete(result);
  cJSON_Delete(error);
  cJSON_Delete(extra);
  if (bad) {
    lc_buf_free(&b);
    return failf(j, LC_JOURNAL_EIO, LC_ENOMEM, "journal: out of memory writing %s", j->path);
  }
  /* A pure effect's line: synced only with --journal-sync all, and then by
   * the writer (nobody waits: losing it costs a repeat). */
  unsigned long unused;
  e->ticket = 0;
  int rc = write_text_t(j, &b, j->sync == LC_JOURNAL_SYNC_ALL, e->async ? &e->ticket : &unused, 1);
  if (!rc) crash_after(j, "after_result", e->kind);
  return rc;
}

int lc_effect_end(struct lc_effect_op *e, cJSON *result, cJSON *error, cJSON *extra) {
  if (!e->recording) {
    cJSON_Delete(result);
    cJSON_Delete(error);
    cJSON_Delete(extra);
    return 0;
  }
  e->recording = 0;
  struct lc_journal *j = e->j;
  lc_crash_point("before_result", e->kind);
  if (e->pending.data) return end_one_line(e, result, error, extra, NULL);
  cJSON *l = cJSON_CreateObject();
  if (!l || !cJSON_AddStringToObject(l, "type", "result") ||
      !cJSON_AddStringToObject(l, "id", e->id)) {
    cJSON_Delete(l);
    l = NULL;
  }
  if (l && error) cJSON_AddItemToObject(l, "error", error);
  else if (l) cJSON_AddItemToObject(l, "result", result ? result : cJSON_CreateNull());
  else {
    cJSON_Delete(result);
    cJSON_Delete(error);
  }
  if (l && error) cJSON_Delete(result);
  if (extra) {
    while (l && extra->child) {
      cJSON *c = extra->child;
      cJSON_DetachItemViaPointer(extra, c);
      cJSON_AddItemToObject(l, c->string, c); /* keeps c->string as the key */
    }
    cJSON_Delete(extra);
  }
  if (l) cJSON_AddNumberToObject(l, "order", (double)++j->results);
  if (l && !cJSON_GetObjectItemCaseSensitive(l, "latency_ms"))
    cJSON_AddNumberToObject(l, "latency_ms", (double)(long)((lc_now_ms() - e->t0) * 1000) / 1000);
  int sync = j->sync == LC_JOURNAL_SYNC_ALL ||
             (j->sync == LC_JOURNAL_SYNC_EFFECTFUL && e->cls != LC_EFFECT_PURE);
  e->ticket = 0;
  /* A caller that does not wait gets it durable now; except a pure
   * effect's line (synced only with --journal-sync all): losing it costs
   * a repeat, so the writer syncs it and nobody waits. */
  unsigned long unused;
  int rc = write_line_t(j, l, sync,
                        e->async                    ? &e->ticket
                        : e->cls == LC_EFFECT_PURE ? &unused
                                                   : NULL);
  if (!rc) crash_after(j, "after_result", e->kind);
  return rc;
}

int lc_effect_end_text(struct lc_effect_op *e, const char *result, size_t len,
                       unsigned long effects, unsigned long spawned) {
  if (!lc_effect_one_line_owed(e)) return LC_EINVAL;
  e->recording = 0;
  lc_crash_point("before_result", e->kind);
  struct end_text t = {result, len, effects, spawned};
  return end_one_line(e, NULL, NULL, NULL, &t);
}

void lc_effect_cancel(struct lc_effect_op *e, const char *why) {
  if (!e->recording) return;
  e->recording = 0;
  /* Written as a result line without result: replay treats it as in doubt. */
  struct lc_journal *j = e->j;
  if (e->pending.data) {
    /* One line still: the intent's members and the cancellation. */
    struct lc_buf b = e->pending;
    lc_buf_init(&e->pending, 0);
    struct lc_jsonw w;
    lc_jsonw_reopen(&w, &b, 1, 1);
    lc_jsonw_key(&w, "cancelled");
    lc_jsonw_cstr(&w, why ? why : "cancelled");
    lc_jsonw_obj_end(&w);
    if (!lc_jsonw_finish(&w)) write_text_t(j, &b, 0, NULL, 1);
    else lc_buf_free(&b);
    return;
  }
  cJSON *l = cJSON_CreateObject();
  if (l && cJSON_AddStringToObject(l, "type", "result") && cJSON_AddStringToObject(l, "id", e->id) &&
      cJSON_AddStringToObject(l, "cancelled", why ? why : "cancelled")) {
    write_line(j, l, 0);
    return;
  }
  cJSON_Delete(l);
}

const cJSON *lc_effect_member(const struct lc_effect_op *e, const char *name) {
  return e->line ? cJSON_GetObjectItemCaseSensitive(e->line, name) : NULL;
}
const cJSON *lc_effect_result(const struct lc_effect_op *e) { return lc_effect_member(e, "result"); }
const cJSON *lc_effect_error(const struct lc_effect_op *e) { return lc_effect_member(e, "error"); }

/* ---- ordered completion ---- */

void lc_journal_defer(struct lc_journal *j, const struct lc_effect_op *e,
                      struct lc_journal_deferred *d) {
  const cJSON *o = lc_effect_member(e, "order");
  d->order = cJSON_IsNumber(o) ? o->valuedouble : 0;
  d->next = j->deferred;
  d->queued = 1;
  j->deferred = d;
}

void lc_journal_undefer(struct lc_journal *j, struct lc_journal_deferred *d) {
  if (!d->queued) return;
  for (struct lc_journal_deferred **pp = &j->deferred; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  d->queued = 0;
}

int lc_journal_idle(void *journal) {
  struct lc_journal *j = journal;
  struct lc_journal_deferred *best = NULL;
  for (struct lc_journal_deferred *d = j->deferred; d; d = d->next)
    if (!best || d->order < best->order) best = d;
  if (!best) return 0;
  lc_journal_undefer(j, best);
  best->fire(best);
  return 1;
}

/* ---- bytes as JSON ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int lc_effect_add_bytes(cJSON *obj, const char *key, const char *p, size_t n) {
  if (!memchr(p, 0, n) && lc_utf8_valid(p, n, NULL)) {
    char *s = lc_strndup(p, n);
    if (!s) return LC_ENOMEM;
    cJSON *v = cJSON_CreateString(s);
    lc_free(s);
    return v && cJSON_AddItemToObject(obj, key, v) ? 0 : LC_ENOMEM;
  }
  size_t out_len = (n + 2) / 3 * 4;
  char *o = lc_malloc(out_len + 1), k[96];
  if (!o) return LC_ENOMEM;
  const unsigned char *u = (const unsigned char *)p;
  size_t w = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)u[i] << 16 | (i + 1 < n ? (uint32_t)u[i + 1] << 8 : 0) |
                 (i + 2 < n ? u[i + 2] : 0);
    o[w++] = b64[v >> 18];
    o[w++] = b64[(v >> 12) & 63];
    o[w++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
    o[w++] = i + 2 < n ? b64[v & 63] : '=';
  }
  o[w] = '\0';
  snprintf(k, sizeof k, "%s_b64", key);
  int ok = cJSON_AddStringToObject(obj, k, o) != NULL;
  lc_free(o);
  return ok ? 0 : LC_ENOMEM;
}

int lc_effect_get_bytes(const cJSON *obj, const char *key, char **out, size_t *n) {
  const char *s = str_member(obj, key);
  if (s) {
    *n = strlen(s);
    return (*out = lc_strndup(s, *n)) ? 0 : LC_ENOMEM;
  }
  char k[96];
  snprintf(k, sizeof k, "%s_b64", key);
  if (!(s = str_member(obj, k))) return LC_ENOTFOUND;
  size_t len = strlen(s);
  char *o = lc_malloc(len / 4 * 3 + 1);
  if (!o) return LC_ENOMEM;
  size_t w = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len && s[i] != '='; i++) {
    const char *q = strchr(b64, s[i]);
    if (!q || !s[i]) {
      lc_free(o);
      return LC_EINVAL;
    }
    acc = acc << 6 | (uint32_t)(q - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[w++] = (char)((acc >> bits) & 0xff);
    }
  }
  o[w] = '\0';
  *out = o;
  *n = w;
  return 0;
}

const char *lc_effect_name(enum lc_effect e) {
  switch (e) {
  case LC_EFFECT_PURE: return "pure";
  case LC_EFFECT_IDEMPOTENT: return "idempotent";
  case LC_EFFECT_AT_MOST_ONCE: return "at_most_once";
  }
  return "unknown";
}
