/* check_store.c: the run store (runtime/store): runs and their statuses,
 * journals with CRCs and contiguous seqs, group commit, the integrity
 * errors a damaged file gives, and luact journal export/import.
 *
 * A conformance loop: the cases that are not about SQLite's file run
 * twice, in TCase "sqlite" (a file) and "pg" (a fresh database on a real
 * PostgreSQL this suite starts, tests/util_pg.h); the same bodies, only
 * the store's path differs. */
#include <check.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "effect.h"
#include "lc.h"
#include "loop.h"
#include "store.h"
#include "store_rows.h"
#include "util_common.h"
#include "util_durable.h"
#include "util_pg.h"

static char dir[256], path[320], path2[320]; /* path2: a second, empty store */
static char err[1024];
static struct lc_store *st;
static struct lc_pg pg; /* the "pg" TCase's server (started in the parent) */
static int on_pg;

static void setup(void) {
  lc_dur_tmpdir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/runs.db", dir);
  snprintf(path2, sizeof path2, "%s/b.db", dir);
  st = NULL;
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
}

static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&pg), 0); }
static void pg_down(void) { lc_pg_stop(&pg); }

static void setup_pg(void) {
  on_pg = 1;
  lc_dur_tmpdir(dir, sizeof dir);
  ck_assert_msg(pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  ck_assert_int_eq(lc_pg_newdb(&pg, path, sizeof path), 0);
  ck_assert_int_eq(lc_pg_newdb(&pg, path2, sizeof path2), 0);
  st = NULL;
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
}

static void teardown(void) {
  lc_store_close(st);
  lc_dur_rmrf(dir);
}

static void create(const char *id, long lines) {
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "%s", id);
  r.script = "/x/agent.lua";
  r.args = "[\"a\"]";
  r.status = "running";
  char h[128];
  snprintf(h, sizeof h, "{\"type\":\"header\",\"format\":1,\"run\":\"%s\"}", id);
  ck_assert_msg(lc_store_run_create(st, &r, h, strlen(h), err, sizeof err) == 0, "%s", err);
  for (long s = 2; s <= lines; s++) {
    char l[128];
    snprintf(l, sizeof l, "{\"type\":\"intent\",\"id\":\"1#%ld\",\"kind\":\"tool\"}", s - 1);
    ck_assert_msg(lc_store_journal_append_now(st, id, s, l, strlen(l), err, sizeof err) == 0,
                  "%s", err);
  }
}

struct seen {
  long n, last_seq;
  char first[256];
};

static int on_line(void *ud, long seq, const char *text, size_t len) {
  struct seen *s = ud;
  ck_assert_int_eq(seq, s->last_seq + 1);
  s->last_seq = seq;
  if (!s->n++) snprintf(s->first, sizeof s->first, "%.*s", (int)len, text);
  return 0;
}

static int read_journal(const char *id, struct seen *s, long *last) {
  memset(s, 0, sizeof *s);
  return lc_store_journal_read(st, id, on_line, s, last, err, sizeof err);
}

static int count_runs(void *ud, const struct lc_run_row *r) {
  char *order = ud;
  strcat(order, r->id);
  strcat(order, " ");
  return 0;
}

START_TEST(runs_and_statuses) {
  create("r1", 3);
  create("r2", 1);
  struct lc_run_row r;
  ck_assert_int_eq(lc_store_run_get(st, "r1", &r, err, sizeof err), 0);
  ck_assert_str_eq(r.status, "running");
  ck_assert_str_eq(r.script, "/x/agent.lua");
  ck_assert_str_eq(r.args, "[\"a\"]");
  ck_assert(r.created > 0 && r.updated >= r.created);
  lc_run_row_free(&r);
  ck_assert_int_eq(lc_store_run_get(st, "nope", &r, err, sizeof err), LC_ENOTFOUND);
  /* An id is taken once. */
  struct lc_run_row dup;
  memset(&dup, 0, sizeof dup);
  snprintf(dup.id, sizeof dup.id, "r1");
  dup.status = "running";
  ck_assert_int_eq(lc_store_run_create(st, &dup, "{}", 2, err, sizeof err), LC_ESTATE);

  ck_assert_int_eq(lc_store_run_set_status(st, "r1", "waiting_input", NULL, NULL, "Order?", 0,
                                           err, sizeof err),
                   0);
  ck_assert_int_eq(lc_store_run_get(st, "r1", &r, err, sizeof err), 0);
  ck_assert_str_eq(r.status, "waiting_input");
  ck_assert_str_eq(r.question, "Order?");
  lc_run_row_free(&r);
  ck_assert_int_eq(lc_store_run_set_status(st, "r2", "finished", "{\"ok\":true}", NULL, NULL, 0,
                                           err, sizeof err),
                   0);
  ck_assert_int_eq(lc_store_run_get(st, "r2", &r, err, sizeof err), 0);
  ck_assert_str_eq(r.result, "{\"ok\":true}");
  ck_assert_ptr_null(r.question);
  lc_run_row_free(&r);

  char order[64] = "";
  ck_assert_int_eq(lc_store_run_list(st, 0, count_runs, order, err, sizeof err), 0);
  ck_assert_str_eq(order, "r2 r1 "); /* newest (updated) first */
  order[0] = '\0';
  ck_assert_int_eq(lc_store_run_list(st, 1, count_runs, order, err, sizeof err), 0);
  ck_assert_str_eq(order, "r2 ");

  /* Cancelling a waiting run cancels it; again is harmless; an ended run
   * stays as it ended. */
  char was[32];
  ck_assert_int_eq(lc_store_run_cancel(st, "r1", was, sizeof was, err, sizeof err), 0);
  ck_assert_str_eq(was, "waiting_input");
  ck_assert_int_eq(lc_store_run_cancel(st, "r1", was, sizeof was, err, sizeof err), 0);
  ck_assert_str_eq(was, "cancelled");
  ck_assert_int_eq(lc_store_run_get(st, "r1", &r, err, sizeof err), 0);
  ck_assert_str_eq(r.status, "cancelled");
  lc_run_row_free(&r);
  ck_assert_int_eq(lc_store_run_cancel(st, "r2", was, sizeof was, err, sizeof err), 0);
  ck_assert_str_eq(was, "finished");
  ck_assert_int_eq(lc_store_run_get(st, "r2", &r, err, sizeof err), 0);
  ck_assert_str_eq(r.status, "finished");
  lc_run_row_free(&r);
  ck_assert_int_ne(lc_store_run_cancel(st, "nope", was, sizeof was, err, sizeof err), 0);

  struct seen s;
  long last = 0;
  ck_assert_msg(read_journal("r1", &s, &last) == 0, "%s", err);
  ck_assert_int_eq(s.n, 3);
  ck_assert_int_eq(last, 3);
  ck_assert_str_eq(s.first, "{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}");
  /* A seq is written once. */
  ck_assert_int_eq(lc_store_journal_append_now(st, "r1", 3, "{}", 2, err, sizeof err), LC_ESTATE);
}
END_TEST

/* ---- group commit ---- */

struct client {
  struct lc_store_client c;
  atomic_ulong newest;
  atomic_int errors;
};

static void on_committed(void *ud, unsigned long ticket, int e) {
  struct client *k = ud;
  if (e) atomic_fetch_add(&k->errors, 1);
  else if (ticket > atomic_load(&k->newest)) atomic_store(&k->newest, ticket);
}

START_TEST(group_commit_takes_many_lines_per_commit) {
  enum { CLIENTS = 5, LINES = 60 };
  static struct client k[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    memset(&k[i], 0, sizeof k[i]);
    k[i].c.committed = on_committed;
    k[i].c.ud = &k[i];
    snprintf(k[i].c.run_id, sizeof k[i].c.run_id, "g%d", i);
    struct lc_run_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "g%d", i);
    r.status = "running";
    ck_assert_int_eq(lc_store_append_run(st, &k[i].c, &r, 1, "{\"type\":\"x\",\"n\":1}", 18),
                     0);
  }
  /* Interleaved, as concurrent runs queue them; nobody waits. */
  for (long s = 2; s <= LINES; s++)
    for (int i = 0; i < CLIENTS; i++) {
      char l[64];
      int n = snprintf(l, sizeof l, "{\"type\":\"x\",\"n\":%ld}", s);
      ck_assert_int_eq(lc_store_append(st, &k[i].c, s, (unsigned long)s, l, (size_t)n), 0);
    }
  lc_store_flush(st);
  long lines, commits;
  lc_store_stats(st, &lines, &commits);
  ck_assert_int_eq(lines, CLIENTS * (LINES + 1)); /* a run's row counts as one */
  ck_assert_int_ge(commits, 1);
  ck_assert_msg(commits < lines / 4, "%ld commits for %ld lines", commits, lines);
  for (int i = 0; i < CLIENTS; i++) {
    ck_assert_int_eq(atomic_load(&k[i].errors), 0);
    ck_assert_uint_eq(atomic_load(&k[i].newest), LINES);
    struct seen s;
    long last;
    ck_assert_msg(read_journal(k[i].c.run_id, &s, &last) == 0, "%s", err);
    ck_assert_int_eq(last, LINES);
  }
}
END_TEST

/* Waits (polling, up to a minute: a failure, not a measure) until client
 * k has heard of its line want. */
static void await_newest(struct client *k, unsigned long want) {
  double until = lc_test_mono_s() + 60;
  while (atomic_load(&k->newest) < want) {
    ck_assert_msg(lc_test_mono_s() < until, "line %lu of %s never committed (newest %lu)", want,
                  k->c.run_id, (unsigned long)atomic_load(&k->newest));
    lc_test_nap_ms(2);
  }
}

static void lazy_line(struct client *k, long seq) {
  char l[64];
  snprintf(l, sizeof l, "{\"type\":\"result\",\"n\":%ld}", seq);
  char *t = lc_strdup(l);
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(lc_store_append_lazy(st, &k->c, seq, (unsigned long)seq, t, strlen(t)), 0);
}

/* Lines nobody waits for (a pure effect's: lc_store_append_lazy) wait in
 * the queue for a larger group: with the wait set to ten minutes, 300 of
 * them are committed in one group with the next line that is not lazy
 * (another run's), then a full group (LC_STORE_LAZY_MAX) goes by itself,
 * and a flush takes the rest. Nothing is lost or reordered. */
START_TEST(lazy_lines_wait_for_a_group) {
  lc_store_close(st);
  setenv("LUACT_STORE_LAZY_MS", "600000", 1);
  int rc = lc_store_open(path, LC_STORE_SYNC_NORMAL, &st, err, sizeof err);
  unsetenv("LUACT_STORE_LAZY_MS");
  ck_assert_int_eq(rc, 0);
  static struct client k[2];
  for (int i = 0; i < 2; i++) {
    memset(&k[i], 0, sizeof k[i]);
    k[i].c.committed = on_committed;
    k[i].c.ud = &k[i];
    snprintf(k[i].c.run_id, sizeof k[i].c.run_id, "z%d", i);
    struct lc_run_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "z%d", i);
    r.status = "running";
    ck_assert_int_eq(lc_store_append_run(st, &k[i].c, &r, 1, "{\"type\":\"header\"}", 17), 0);
    await_newest(&k[i], 1);
  }
  long lines0, commits0, lines, commits;
  lc_store_stats(st, &lines0, &commits0);
  for (long q = 2; q <= 301; q++) lazy_line(&k[0], q);
  ck_assert_int_eq(lc_store_append(st, &k[1].c, 2, 2, "{\"type\":\"intent\"}", 17), 0);
  await_newest(&k[1], 2);
  ck_assert_uint_eq(atomic_load(&k[0].newest), 301); /* notified before z1: same group */
  lc_store_stats(st, &lines, &commits);
  ck_assert_int_eq(lines - lines0, 301);
  ck_assert_int_eq(commits - commits0, 1);
  /* A full group goes without a flush. */
  for (long q = 302; q < 302 + LC_STORE_LAZY_MAX + 10; q++) lazy_line(&k[0], q);
  await_newest(&k[0], 301 + LC_STORE_LAZY_MAX);
  lc_store_flush(st);
  ck_assert_uint_eq(atomic_load(&k[0].newest), 301 + LC_STORE_LAZY_MAX + 10);
  ck_assert_int_eq(atomic_load(&k[0].errors), 0);
  struct seen sn;
  long last;
  ck_assert_msg(read_journal("z0", &sn, &last) == 0, "%s", err); /* no gap: seqs in order */
  ck_assert_int_eq(last, 301 + LC_STORE_LAZY_MAX + 10);
  ck_assert_int_eq(sn.n, last);
}
END_TEST

/* The writer asks whether a run was cancelled only when another
 * connection wrote since its own last commit (the file's data version):
 * ten commits with no other writer ask nothing; a cancel through a
 * second connection to the file (as `luact runs cancel` from another
 * process) and one through the store's own callers' connection are each
 * seen at the next commit; after them the commits ask nothing again. */
struct cclient {
  struct client k;
  atomic_int cancelled;
};

static void on_cancel(void *ud) {
  struct cclient *c = ud;
  atomic_fetch_add(&c->cancelled, 1);
}

START_TEST(cancel_check_only_after_another_connection_wrote) {
  static struct cclient k[2];
  for (int i = 0; i < 2; i++) {
    memset(&k[i], 0, sizeof k[i]);
    k[i].k.c.committed = on_committed;
    k[i].k.c.cancel = on_cancel;
    k[i].k.c.ud = &k[i];
    snprintf(k[i].k.c.run_id, sizeof k[i].k.c.run_id, "c%d", i);
    struct lc_run_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "c%d", i);
    r.status = "running";
    r.pid = (long)getpid(); /* live: a cancel asks it to stop */
    ck_assert_int_eq(lc_store_append_run(st, &k[i].k.c, &r, 1, "{\"type\":\"header\"}", 17), 0);
    await_newest(&k[i].k, 1);
  }
  long c0 = lc_store_cancel_checks(st);
  for (long q = 2; q <= 11; q++) {
    ck_assert_int_eq(lc_store_append(st, &k[0].k.c, q, (unsigned long)q, "{}", 2), 0);
    await_newest(&k[0].k, (unsigned long)q);
  }
  ck_assert_int_eq(lc_store_cancel_checks(st) - c0, 0);
  /* Another connection to the file cancels c0. */
  struct lc_store *other = NULL;
  char was[32];
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &other, err, sizeof err), 0);
  ck_assert_msg(lc_store_run_cancel(other, "c0", was, sizeof was, err, sizeof err) == 0, "%s",
                err);
  lc_store_close(other);
  ck_assert_int_eq(atomic_load(&k[0].cancelled), 0);
  ck_assert_int_eq(lc_store_append(st, &k[0].k.c, 12, 12, "{}", 2), 0);
  await_newest(&k[0].k, 12);
  ck_assert_int_eq(atomic_load(&k[0].cancelled), 1);
  /* The callers' connection of this store cancels c1. */
  ck_assert_msg(lc_store_run_cancel(st, "c1", was, sizeof was, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(lc_store_append(st, &k[1].k.c, 2, 2, "{}", 2), 0);
  await_newest(&k[1].k, 2);
  ck_assert_int_eq(atomic_load(&k[1].cancelled), 1);
  long c1 = lc_store_cancel_checks(st);
  for (long q = 13; q <= 17; q++) {
    ck_assert_int_eq(lc_store_append(st, &k[0].k.c, q, (unsigned long)q, "{}", 2), 0);
    await_newest(&k[0].k, (unsigned long)q);
  }
  ck_assert_int_eq(lc_store_cancel_checks(st) - c1, 0);
  /* Each is still cancelled (the column stays set): asked again only
   * when something else writes. */
  ck_assert_int_eq(atomic_load(&k[0].cancelled), 1);
  ck_assert_int_eq(atomic_load(&k[0].k.errors) + atomic_load(&k[1].k.errors), 0);
}
END_TEST

/* Lazy lines that come slowly wait past the short window (LAZY_MS) for
 * LC_STORE_LAZY_LINES of them, up to the long one (LAZY_LONG_MS): five
 * lines 20 ms apart, with a 1 ms short window and a ten-minute long one,
 * are one commit (the flush's), not five; then LC_STORE_LAZY_LINES lines
 * go by themselves, without a flush. (The naps only space the lines: a
 * slower machine spaces them more, which changes nothing here.) */
START_TEST(slow_lazy_lines_share_a_commit) {
  lc_store_close(st);
  setenv("LUACT_STORE_LAZY_MS", "1", 1);
  setenv("LUACT_STORE_LAZY_LONG_MS", "600000", 1);
  int rc = lc_store_open(path, LC_STORE_SYNC_NORMAL, &st, err, sizeof err);
  unsetenv("LUACT_STORE_LAZY_MS");
  unsetenv("LUACT_STORE_LAZY_LONG_MS");
  ck_assert_int_eq(rc, 0);
  static struct client k;
  memset(&k, 0, sizeof k);
  k.c.committed = on_committed;
  k.c.ud = &k;
  snprintf(k.c.run_id, sizeof k.c.run_id, "w0");
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "w0");
  r.status = "running";
  ck_assert_int_eq(lc_store_append_run(st, &k.c, &r, 1, "{\"type\":\"header\"}", 17), 0);
  await_newest(&k, 1);
  long lines0, commits0, lines, commits;
  lc_store_stats(st, &lines0, &commits0);
  long q = 2;
  for (; q <= 6; q++) {
    lazy_line(&k, q);
    lc_test_nap_ms(20);
  }
  lc_store_flush(st);
  lc_store_stats(st, &lines, &commits);
  ck_assert_int_eq(lines - lines0, 5);
  ck_assert_int_eq(commits - commits0, 1);
  ck_assert_uint_eq(atomic_load(&k.newest), 6);
  /* Enough lines: committed without a flush (the writer is woken). */
  for (; q < 7 + LC_STORE_LAZY_LINES; q++) lazy_line(&k, q);
  await_newest(&k, (unsigned long)q - 1);
  lc_store_stats(st, &lines, &commits);
  ck_assert_int_eq(commits - commits0, 2);
  ck_assert_int_eq(atomic_load(&k.errors), 0);
  struct seen sn;
  long last;
  ck_assert_msg(read_journal("w0", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, q - 1);
  ck_assert_int_eq(sn.n, last);
}
END_TEST

/* With --store-sync full, a group of lazy lines only (nobody waits for
 * them; a crash may lose them, docs/journal.md) commits without the WAL's
 * fsync; any other line's group has it and covers what came before; a
 * flush after lazy-only commits syncs the WAL once (it promises what a
 * full commit does), and a flush with nothing unsynced does not. */
START_TEST(lazy_only_groups_skip_the_fsync) {
  lc_store_close(st);
  setenv("LUACT_STORE_LAZY_MS", "600000", 1);
  int rc = lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err);
  unsetenv("LUACT_STORE_LAZY_MS");
  ck_assert_int_eq(rc, 0);
  static struct client k;
  memset(&k, 0, sizeof k);
  k.c.committed = on_committed;
  k.c.ud = &k;
  snprintf(k.c.run_id, sizeof k.c.run_id, "s0");
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "s0");
  r.status = "running";
  ck_assert_int_eq(lc_store_append_run(st, &k.c, &r, 1, "{\"type\":\"header\"}", 17), 0);
  await_newest(&k, 1);
  ck_assert_int_eq(lc_store_wal_syncs(st), 1); /* the run and its header: synced */
  /* A full group of lazy lines goes by itself, without a sync. */
  long q = 2;
  for (; q < 2 + LC_STORE_LAZY_MAX; q++) lazy_line(&k, q);
  await_newest(&k, (unsigned long)q - 1);
  long lines, commits;
  lc_store_stats(st, &lines, &commits);
  ck_assert_int_eq(commits, 2);
  ck_assert_int_eq(lc_store_wal_syncs(st), 1);
  /* A flush syncs what that commit left, once. */
  lc_store_flush(st);
  ck_assert_int_eq(lc_store_wal_syncs(st), 2);
  lc_store_flush(st);
  lc_store_flush_client(st, &k);
  ck_assert_int_eq(lc_store_wal_syncs(st), 2);
  /* Lazy lines again, then one that is waited for: one group, synced. */
  for (; q < 12 + LC_STORE_LAZY_MAX; q++) lazy_line(&k, q);
  ck_assert_int_eq(lc_store_append(st, &k.c, q, (unsigned long)q, "{\"type\":\"intent\"}", 17), 0);
  await_newest(&k, (unsigned long)q);
  ck_assert_int_eq(lc_store_wal_syncs(st), 3);
  lc_store_flush_client(st, &k);
  ck_assert_int_eq(lc_store_wal_syncs(st), 3);
  /* Lazy lines committed unsynced, then flush_client: synced. */
  for (q++; q < 13 + 2 * LC_STORE_LAZY_MAX; q++) lazy_line(&k, q);
  await_newest(&k, (unsigned long)q - 1);
  ck_assert_int_eq(lc_store_wal_syncs(st), 3);
  lc_store_flush_client(st, &k);
  ck_assert_int_eq(lc_store_wal_syncs(st), 4);
  ck_assert_int_eq(atomic_load(&k.errors), 0);
  struct seen sn;
  long last;
  ck_assert_msg(read_journal("s0", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, q - 1);
  ck_assert_int_eq(sn.n, last);
}
END_TEST

/* One client's conflicting line fails that client only: the writer
 * commits the rest of its group without it. It used to roll the whole
 * group back and fail every run whose lines were in it (in the daemon,
 * other users' runs). Another connection holds the write lock while the
 * lines are queued, so the conflict and b's line are surely in one group. */
START_TEST(conflicting_line_fails_only_its_client) {
  create("a", 2); /* a's line 2 is there already */
  create("b", 1);
  static struct client ka, kb;
  memset(&ka, 0, sizeof ka);
  memset(&kb, 0, sizeof kb);
  ka.c.committed = kb.c.committed = on_committed;
  ka.c.ud = &ka;
  kb.c.ud = &kb;
  snprintf(ka.c.run_id, sizeof ka.c.run_id, "a");
  snprintf(kb.c.run_id, sizeof kb.c.run_id, "b");
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  ck_assert_int_eq(lc_store_append(st, &kb.c, 2, 1, "{\"n\":2}", 7), 0);
  ck_assert_int_eq(lc_store_append(st, &ka.c, 2, 1, "{\"dup\":2}", 9), 0); /* conflicts */
  ck_assert_int_eq(lc_store_append(st, &kb.c, 3, 2, "{\"n\":3}", 7), 0);
  ck_assert_int_eq(lc_store_append(st, &ka.c, 3, 2, "{\"n\":3}", 7), 0);
  ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&ka.errors), 1);
  ck_assert_int_eq(atomic_load(&kb.errors), 0);
  ck_assert_uint_eq(atomic_load(&kb.newest), 2);
  struct seen s;
  long last;
  ck_assert_msg(read_journal("b", &s, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 3);
  ck_assert_msg(read_journal("a", &s, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 2); /* a's own line 2, no line 3 after the failed one */
  /* a writes nothing more; b and the store go on. */
  ck_assert_int_eq(lc_store_append(st, &ka.c, 4, 3, "{}", 2), LC_EIO);
  ck_assert_int_eq(lc_store_append(st, &kb.c, 4, 3, "{\"n\":4}", 7), 0);
  lc_store_flush(st);
  ck_assert_uint_eq(atomic_load(&kb.newest), 3);
  ck_assert_int_eq(atomic_load(&kb.errors), 0);
  ck_assert_msg(read_journal("b", &s, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 4);
}
END_TEST

/* The writer INSERTs up to 16 lines per statement: a conflict inside
 * such a statement (a's line among 20 of b's and 5 of c's, in one group)
 * still fails a alone; the group goes again a row at a time to find it,
 * and the writer's next groups go 16 at a time again. */
START_TEST(conflict_in_a_wide_insert_fails_only_its_client) {
  create("a", 2);
  create("b", 1);
  create("c", 1);
  static struct client ka, kb, kc;
  struct client *ks[] = {&ka, &kb, &kc};
  const char *ids[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    memset(ks[i], 0, sizeof *ks[i]);
    ks[i]->c.committed = on_committed;
    ks[i]->c.ud = ks[i];
    snprintf(ks[i]->c.run_id, sizeof ks[i]->c.run_id, "%s", ids[i]);
  }
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  for (long q = 2; q <= 11; q++)
    ck_assert_int_eq(lc_store_append(st, &kb.c, q, (unsigned long)q, "{\"n\":1}", 7), 0);
  ck_assert_int_eq(lc_store_append(st, &ka.c, 2, 2, "{\"dup\":2}", 9), 0); /* conflicts */
  for (long q = 12; q <= 21; q++)
    ck_assert_int_eq(lc_store_append(st, &kb.c, q, (unsigned long)q, "{\"n\":1}", 7), 0);
  for (long q = 2; q <= 6; q++)
    ck_assert_int_eq(lc_store_append(st, &kc.c, q, (unsigned long)q, "{\"n\":1}", 7), 0);
  ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&ka.errors), 1);
  ck_assert_int_eq(atomic_load(&kb.errors) + atomic_load(&kc.errors), 0);
  ck_assert_uint_eq(atomic_load(&kb.newest), 21);
  ck_assert_uint_eq(atomic_load(&kc.newest), 6);
  struct seen sn;
  long last;
  ck_assert_msg(read_journal("b", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 21);
  ck_assert_int_eq(sn.n, 21);
  ck_assert_msg(read_journal("c", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 6);
  ck_assert_msg(read_journal("a", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 2); /* its own line 2 */
  /* The next group, wide again, commits b's next 40. */
  for (long q = 22; q <= 61; q++)
    ck_assert_int_eq(lc_store_append(st, &kb.c, q, (unsigned long)q, "{\"n\":1}", 7), 0);
  lc_store_flush(st);
  ck_assert_uint_eq(atomic_load(&kb.newest), 61);
  ck_assert_msg(read_journal("b", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 61);
  ck_assert_int_eq(sn.n, 61);
}
END_TEST

/* A run whose id is taken fails alone too, with the run queued after it. */
START_TEST(taken_run_id_fails_only_its_client) {
  create("taken", 1);
  static struct client kt, kn;
  memset(&kt, 0, sizeof kt);
  memset(&kn, 0, sizeof kn);
  kt.c.committed = kn.c.committed = on_committed;
  kt.c.ud = &kt;
  kn.c.ud = &kn;
  snprintf(kt.c.run_id, sizeof kt.c.run_id, "taken");
  snprintf(kn.c.run_id, sizeof kn.c.run_id, "new");
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  r.status = "running";
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  snprintf(r.id, sizeof r.id, "taken");
  ck_assert_int_eq(lc_store_append_run(st, &kt.c, &r, 1, "{\"h\":1}", 7), 0);
  snprintf(r.id, sizeof r.id, "new");
  ck_assert_int_eq(lc_store_append_run(st, &kn.c, &r, 1, "{\"h\":1}", 7), 0);
  ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&kt.errors), 1);
  ck_assert_int_eq(atomic_load(&kn.errors), 0);
  ck_assert_uint_eq(atomic_load(&kn.newest), 1);
  struct seen s;
  long last;
  ck_assert_msg(read_journal("new", &s, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 1);
}
END_TEST

/* The CRC stored with each line is zlib's crc32 of its text, whatever
 * the length (the writer computes it eight bytes at a time now; stores
 * written before must still read back). Reference: bytewise. */
static uint32_t ref_crc(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xffffffffu;
}

/* The carry-less-multiply CRC (where the CPU has it) and the tables give
 * the reference's CRC for every length around the 16- and 64-byte steps,
 * at every alignment, on random bytes (NULs and high bytes too). */
START_TEST(crc32_hw_matches_portable) {
  static unsigned char buf[1200];
  unsigned seed = 11;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)rand_r(&seed);
  int was = lc_store_crc32_set_hw(1);
  for (size_t off = 0; off < 16; off++)
    for (size_t n = 0; n + off <= sizeof buf; n += (n < 300 ? 1 : 37)) {
      uint32_t want = ref_crc(buf + off, n);
      lc_store_crc32_set_hw(1);
      uint32_t hw = lc_store_crc32((const char *)buf + off, n);
      lc_store_crc32_set_hw(0);
      uint32_t sw = lc_store_crc32((const char *)buf + off, n);
      ck_assert_msg(hw == want && sw == want, "n=%zu off=%zu: hw %08x tables %08x want %08x", n,
                    off, hw, sw, want);
    }
  ck_assert_uint_eq(lc_store_crc32("123456789", 9), 0xcbf43926u);
  lc_store_crc32_set_hw(was);
}
END_TEST

START_TEST(line_crc_is_zlib_crc32) {
  create("c", 1);
  static struct client k;
  memset(&k, 0, sizeof k);
  k.c.committed = on_committed;
  k.c.ud = &k;
  snprintf(k.c.run_id, sizeof k.c.run_id, "c");
  static char text[3100]; /* lengths below start at text + i, i < 16 */
  unsigned seed = 7;
  for (size_t i = 0; i < sizeof text; i++) text[i] = (char)(' ' + rand_r(&seed) % 94);
  static const size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 1001, 2999};
  enum { N = sizeof lens / sizeof *lens };
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(lc_store_append(st, &k.c, 2 + i, 1 + (unsigned)i, text + i, lens[i]), 0);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&k.errors), 0);
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  sqlite3_stmt *q;
  ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT seq, crc FROM journal WHERE run_id='c' AND seq>1 "
                                         "ORDER BY seq", -1, &q, NULL), SQLITE_OK);
  int n = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    int i = (int)sqlite3_column_int64(q, 0) - 2;
    ck_assert_uint_eq((uint32_t)sqlite3_column_int64(q, 1),
                      ref_crc((const unsigned char *)text + i, lens[i]));
    n++;
  }
  sqlite3_finalize(q);
  sqlite3_close(h);
  ck_assert_int_eq(n, N);
  struct seen sn;
  long last;
  ck_assert_msg(read_journal("c", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, N + 1);
}
END_TEST

/* A run's row and its first line go in one transaction: a process killed
 * between two groups must never leave a run without a journal (nothing
 * could resume it: "run R has no journal"). The writer used to commit a
 * creation that happened to end the queue by itself, and later one that
 * a flush caught before its header was queued (on PostgreSQL, any run's
 * flush: a fleet's daemon SIGKILLed then left such a run to the next
 * claim). Each child queues runs without pause while another thread
 * flushes, and is killed from here at a random moment, so the kill lands
 * between two of its writer's commits. */
static int collect_id(void *ud, const struct lc_run_row *r) {
  cJSON_AddItemToArray(ud, cJSON_CreateString(r->id));
  return 0;
}

/* Another run's flush, as a daemon's runs make at their start and end
 * (on PostgreSQL a client's flush is the whole queue's). */
static void *keep_flushing(void *cs) {
  for (;;) lc_store_flush(cs);
  return NULL;
}

START_TEST(run_never_committed_without_its_first_line) {
  unsigned seed = 12345;
  for (int round = 0; round < 20; round++) {
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
      struct lc_store *cs;
      char e[256];
      if (lc_store_open(path, LC_STORE_SYNC_NORMAL, &cs, e, sizeof e) ||
          lc_store_connect(cs, e, sizeof e))
        _exit(1);
      static struct lc_store_client c;
      pthread_t ft;
      if (pthread_create(&ft, NULL, keep_flushing, cs)) _exit(1);
      for (long i = 0;; i++) {
        if (i == 1) { /* one run surely in: the kill may come from now on */
          lc_store_flush(cs);
          if (write(ready[1], "r", 1) != 1) _exit(1);
        }
        snprintf(c.run_id, sizeof c.run_id, "x%d_%ld", round, i);
        struct lc_run_row r;
        memset(&r, 0, sizeof r);
        snprintf(r.id, sizeof r.id, "%s", c.run_id);
        r.status = "running";
        if (lc_store_append_run(cs, &c, &r, 1, "{\"type\":\"header\"}", 17)) _exit(1);
      }
    }
    close(ready[1]);
    char b;
    ck_assert_int_eq(read(ready[0], &b, 1), 1); /* connected: now it queues */
    close(ready[0]);
    struct timespec ts = {0, (long)(2 + rand_r(&seed) % 30) * 1000000L}; /* the fault's moment */
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    ck_assert_int_eq(lc_dur_wait(pid), 137);
  }
  cJSON *ids = cJSON_CreateArray();
  ck_assert_int_eq(lc_store_run_list(st, 0, collect_id, ids, err, sizeof err), 0);
  ck_assert_int_ge(cJSON_GetArraySize(ids), 20);
  int bad = 0;
  cJSON *id;
  cJSON_ArrayForEach(id, ids) {
    struct seen sn;
    long last;
    if (read_journal(id->valuestring, &sn, &last) != 0 && bad++ < 3) fprintf(stderr, "%s\n", err);
  }
  cJSON_Delete(ids);
  ck_assert_int_eq(bad, 0);
}
END_TEST

/* ---- integrity ---- */

static void sql(const char *q) {
  if (on_pg) {
    ck_assert_msg(lc_pg_sql(path, q, err, sizeof err) == 0, "%s: %s", q, err);
    return;
  }
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  char *e = NULL;
  ck_assert_msg(sqlite3_exec(h, q, NULL, NULL, &e) == SQLITE_OK, "%s: %s", q, e);
  sqlite3_close(h);
}

START_TEST(flipped_byte_in_a_line_names_it) {
  create("r", 4);
  /* Same length, one byte different, CRC as it was. */
  sql("UPDATE journal SET line = replace(line, '1#2', '1#3') WHERE run_id = 'r' AND seq = 3");
  struct seen s;
  long last;
  ck_assert_int_eq(read_journal("r", &s, &last), LC_EINVAL);
  ck_assert_msg(strstr(err, "integrity error") && strstr(err, "line 3"), "%s", err);
  /* The CLI says it too, and refuses to resume from it. */
  char *out = NULL, *e2 = NULL;
  ck_assert_int_eq(lc_dur_sh(dir, &out, &e2, "\"$LUACT\" runs show r --store '%s'", path), 1);
  ck_assert_msg(strstr(e2, "line 3"), "%s", e2);
  free(out);
  free(e2);
  ck_assert_int_ne(lc_dur_sh(dir, NULL, &e2, "\"$LUACT\" runs resume r --store '%s'", path), 0);
  ck_assert_msg(strstr(e2, "integrity error"), "%s", e2);
  free(e2);
}
END_TEST

START_TEST(seq_gap_is_an_integrity_error) {
  create("r", 5);
  sql("DELETE FROM journal WHERE run_id = 'r' AND seq = 3");
  struct seen s;
  long last;
  ck_assert_int_eq(read_journal("r", &s, &last), LC_EINVAL);
  ck_assert_msg(strstr(err, "integrity error") && strstr(err, "no line 3"), "%s", err);
}
END_TEST

/* A store file with enough pages that cutting it loses some. */
static void fill_and_close(void) {
  for (int i = 0; i < 40; i++) {
    char id[16];
    snprintf(id, sizeof id, "f%d", i);
    create(id, 30);
  }
  lc_store_close(st);
  st = NULL;
}

static void connect_fails(const char *want) {
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_int_ne(lc_store_connect(st, err, sizeof err), 0);
  ck_assert_msg(strstr(err, want), "%s", err);
  /* Every later call fails the same way. */
  struct lc_run_row r;
  char e2[1024];
  ck_assert_int_ne(lc_store_run_get(st, "f1", &r, e2, sizeof e2), 0);
  ck_assert_str_eq(e2, err);
}

START_TEST(truncated_file_refused_at_connect) {
  fill_and_close();
  FILE *f = fopen(path, "r+");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  ck_assert_int_gt(size, 16384);
  ck_assert_int_eq(truncate(path, size / 2), 0);
  connect_fails("integrity error");
  char *e2 = NULL;
  ck_assert_int_eq(lc_dur_sh(dir, NULL, &e2, "\"$LUACT\" runs list --store runs.db"), 1);
  ck_assert_msg(strstr(e2, "integrity error"), "%s", e2);
  free(e2);
}
END_TEST

/* A store past quick_check's 16 MiB cut short is refused at connect too:
 * SQLite compares the pages its header counts with the file's size when
 * it opens. Guards the choice to keep quick_check for small stores only
 * (docs/journal.md): truncation needs no full read at any size. */
START_TEST(truncated_large_file_refused_at_connect) {
  create("f1", 2);
  lc_store_close(st);
  st = NULL;
  sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9000) "
      "INSERT INTO journal SELECT 'big', i, printf('%.2000c', 'x'), 0 FROM n");
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_gt(sb.st_size, 16L << 20); /* past quick_check's limit */
  /* whole, it connects (no quick_check at this size) */
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_msg(lc_store_connect(st, err, sizeof err) == 0, "%s", err);
  lc_store_close(st);
  st = NULL;
  ck_assert_int_eq(truncate(path, sb.st_size / 4 * 3), 0);
  connect_fails("integrity error");
}
END_TEST

START_TEST(garbage_file_refused_at_connect) {
  lc_store_close(st);
  st = NULL;
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 8192; i++) fputc((i * 7919) & 0xff, f);
  fclose(f);
  connect_fails("integrity error");
}
END_TEST

START_TEST(bit_flip_in_a_page_refused) {
  fill_and_close();
  /* A flipped bit in the b-tree of the journal (past the header page). */
  FILE *f = fopen(path, "r+");
  ck_assert_ptr_nonnull(f);
  int flipped = 0;
  for (long off = 4096 * 2; off < 4096 * 6; off += 4096) {
    fseek(f, off + 8, SEEK_SET); /* a page header's cell count/first cell */
    int c = fgetc(f);
    fseek(f, off + 8, SEEK_SET);
    fputc(c ^ 0x40, f);
    flipped++;
  }
  fclose(f);
  ck_assert_int_gt(flipped, 0);
  connect_fails("integrity error");
}
END_TEST

/* A store another process holds locked is busy, not damaged: it used to
 * be reported as "integrity error: database is locked". */
START_TEST(locked_store_is_not_an_integrity_error) {
  create("r", 1);
  lc_store_close(st);
  st = NULL;
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(h, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; "
                                   "UPDATE runs SET updated = 0", NULL, NULL, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_int_ne(lc_store_connect(st, err, sizeof err), 0);
  ck_assert_msg(strstr(err, "locked") && !strstr(err, "integrity"), "%s", err);
  sqlite3_close(h);
}
END_TEST

START_TEST(newer_schema_refused) {
  create("r", 1);
  lc_store_close(st);
  st = NULL;
  sql("UPDATE meta SET value = '999' WHERE key = 'schema_version'");
  connect_fails("schema version 999 is newer");
}
END_TEST

/* ---- the journal's writer failing under a run ---- */

/* The store refuses the run's creation (its id is taken); an effect that
 * waited for its intent to be durable must not run. It used to: the
 * journal failed only when the loop read the writer's eventfd, and
 * lc_journal_durable said "durable" meanwhile; the run then also wrote its
 * final status over the other run's row. */
START_TEST(writer_failure_stops_the_effect) {
  create("taken", 2);
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct lc_journal *j;
  struct lc_journal_opts o = {.mode = LC_JOURNAL_RECORD, .store = st, .run_id = "taken"};
  ck_assert_msg(lc_journal_open_with(&o, &j, err, sizeof err) == 0, "%s", err);
  lc_journal_set_loop(j, loop);
  struct lc_effect_op op;
  struct lc_effect_who w = {&op, "1", 1};
  struct lc_effect_desc d = {.kind = "tool", .name = "charge", .cls = LC_EFFECT_AT_MOST_ONCE,
                             .waits = 1};
  ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_RUN);
  ck_assert_uint_gt(op.ticket, 0);
  lc_store_flush(st); /* the writer has tried (and failed) */
  ck_assert_int_eq(lc_journal_durable(j, op.ticket), 1);
  ck_assert_int_eq(lc_journal_failed(j), LC_JOURNAL_EIO);
  ck_assert_int_eq(lc_journal_has_run(j), 0);
  lc_effect_cancel(&op, "stopped");
  lc_journal_set_loop(j, NULL);
  lc_journal_free(j);
  lc_loop_free(loop);
  struct seen s;
  long last;
  ck_assert_int_eq(read_journal("taken", &s, &last), 0);
  ck_assert_int_eq(last, 2); /* the other run's journal is untouched */
}
END_TEST

/* ---- luact journal export / import ---- */

START_TEST(export_import_round_trip) {
  lc_dur_write(dir, "t.lua",
               "local a = luact.effect('tool', 'a', {n = 1}, 'idempotent', function(c) return "
               "c.idempotency_key end)\n"
               "local b = luact.now()\n"
               "return luact.json.encode{a, luact.effect('tool', 'b', {s = 'é\\n\"'}, "
               "'at_most_once', function() return {x = {1, 2.5, 'z'}} end)}\n");
  char *out = NULL, *e = NULL;
  ck_assert_int_eq(lc_dur_sh(dir, NULL, &e, "\"$LUACT\" run --quiet --run-id rt --store '%s' "
                                            "t.lua", path),
                   0);
  free(e);
  ck_assert_int_eq(lc_dur_sh(dir, NULL, NULL, "\"$LUACT\" journal export rt --store '%s' -o x.jsonl", path), 0);
  ck_assert_int_eq(lc_dur_sh(dir, &out, &e, "\"$LUACT\" journal import x.jsonl --store '%s'", path2), 0);
  /* header, a's intent and result, luact.now's one line (a pure effect),
   * b's intent and result */
  ck_assert_msg(strstr(out, "run rt imported (6 lines)"), "%s%s", out, e);
  free(out);
  free(e);
  ck_assert_int_eq(lc_dur_sh(dir, NULL, NULL, "\"$LUACT\" journal export rt --store '%s' -o y.jsonl", path2), 0);
  ck_assert_int_eq(lc_dur_sh(dir, NULL, NULL, "cmp x.jsonl y.jsonl"), 0);
  ck_assert_int_eq(lc_dur_lines(dir, "x.jsonl"), 6);
  /* Importing it again is refused: the id is taken. */
  ck_assert_int_eq(lc_dur_sh(dir, NULL, &e, "\"$LUACT\" journal import x.jsonl --store '%s'", path2), 1);
  ck_assert_msg(strstr(e, "exists already"), "%s", e);
  free(e);
  /* The imported run replays from the file with the same answer. */
  ck_assert_int_eq(lc_dur_sh(dir, &out, NULL, "\"$LUACT\" run --quiet --replay y.jsonl t.lua"), 0);
  free(out);
}
END_TEST

/* ---- PostgreSQL only ---- */

/* A daemon that lost its lease (another daemon claimed the run: the row's
 * epoch went up) cannot write a line or a status of that run any more. */
START_TEST(pg_fenced_writes_fail_after_takeover) {
  create("f", 2);
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('f', 'me', 7)");
  ck_assert_int_eq(lc_store_fence(st, "f", 7), 0);
  static struct client k;
  memset(&k, 0, sizeof k);
  k.c.committed = on_committed;
  k.c.ud = &k;
  snprintf(k.c.run_id, sizeof k.c.run_id, "f");
  ck_assert_int_eq(lc_store_append(st, &k.c, 3, 1, "{\"n\":3}", 7), 0);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&k.errors), 0);
  ck_assert_uint_eq(atomic_load(&k.newest), 1);
  ck_assert_int_eq(lc_store_run_set_status(st, "f", "running", NULL, NULL, NULL, 1, err, sizeof err),
                   0);
  sql("UPDATE leases SET epoch = 8, owner = 'other' WHERE run_id = 'f'"); /* another daemon claimed it */
  ck_assert_int_eq(lc_store_append(st, &k.c, 4, 2, "{\"n\":4}", 7), 0);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&k.errors), 1);
  ck_assert_uint_eq(atomic_load(&k.newest), 1);
  ck_assert_int_eq(lc_store_run_set_status(st, "f", "finished", "1", NULL, NULL, 0, err, sizeof err),
                   LC_ESTATE);
  ck_assert_msg(strstr(err, "taken by another daemon"), "%s", err);
  struct seen sn;
  long last;
  ck_assert_int_eq(read_journal("f", &sn, &last), 0);
  ck_assert_int_eq(last, 3);
  struct lc_run_row r;
  ck_assert_int_eq(lc_store_run_get(st, "f", &r, err, sizeof err), 0);
  ck_assert_str_eq(r.status, "running");
  lc_run_row_free(&r);
  /* Other runs of the same writer are not held up by it. */
  create("g", 1);
}
END_TEST

static void pq_ok(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", q, PQerrorMessage(c));
  PQclear(r);
}

static void await_lock_wait(void) {
  double until = lc_test_mono_s() + 60;
  for (;;) {
    char *v = lc_pg_value(path, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                "'Lock' AND query LIKE '%FOR SHARE%'");
    int n = v ? atoi(v) : 0;
    free(v);
    if (n > 0) return;
    ck_assert_msg(lc_test_mono_s() < until, "the writer never waited for a lease row");
    lc_test_nap_ms(10);
  }
}

/* The journal writer locks each fenced run's lease row FOR SHARE in its
 * group's transaction, in the group's order, while a renewal or a claim
 * elsewhere updates lease rows in its own order. When the two deadlock
 * (pg-bench saw it with 2 daemons and --lease 2: runs failed with
 * "cannot create the run in the store") the server aborts the writer's
 * transaction: its group is sent again, not failed. Here: the writer holds
 * a's row and waits for b's, which another session holds and which then
 * asks for a's. */
START_TEST(pg_writer_retries_a_deadlocked_group) {
  create("x", 1);
  create("a", 1);
  create("b", 1);
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('x', 'me', 1), ('a', 'me', 1), "
      "('b', 'me', 1)");
  static struct client kx, ka, kb;
  struct client *ks[] = {&kx, &ka, &kb};
  const char *ids[] = {"x", "a", "b"};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(lc_store_fence(st, ids[i], 1), 0);
    memset(ks[i], 0, sizeof *ks[i]);
    ks[i]->c.committed = on_committed;
    ks[i]->c.ud = ks[i];
    snprintf(ks[i]->c.run_id, sizeof ks[i]->c.run_id, "%s", ids[i]);
  }
  PGconn *t1 = PQconnectdb(path), *t2 = PQconnectdb(path);
  ck_assert_int_eq(PQstatus(t1), CONNECTION_OK);
  ck_assert_int_eq(PQstatus(t2), CONNECTION_OK);
  pq_ok(t1, "BEGIN");
  pq_ok(t1, "UPDATE leases SET lease_until = 1 WHERE run_id = 'x'");
  pq_ok(t2, "BEGIN");
  pq_ok(t2, "UPDATE leases SET lease_until = 1 WHERE run_id = 'b'");
  /* the writer's first group waits for x: a and b queue behind it, as one */
  ck_assert_int_eq(lc_store_append(st, &kx.c, 2, 1, "{\"n\":2}", 7), 0);
  await_lock_wait();
  ck_assert_int_eq(lc_store_append(st, &ka.c, 2, 1, "{\"n\":2}", 7), 0);
  ck_assert_int_eq(lc_store_append(st, &kb.c, 2, 1, "{\"n\":2}", 7), 0);
  pq_ok(t1, "COMMIT");
  double until = lc_test_mono_s() + 60;
  while (atomic_load(&kx.newest) < 1) {
    ck_assert_msg(lc_test_mono_s() < until, "x's line never committed");
    lc_test_nap_ms(10);
  }
  await_lock_wait(); /* the group of a and b: a's row held, b's awaited */
  /* the cycle; the writer waited first, so its deadlock check runs first
   * and its transaction is the one aborted */
  PGresult *r = PQexec(t2, "UPDATE leases SET lease_until = 2 WHERE run_id = 'a'");
  int t2_ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  pq_ok(t2, t2_ok ? "COMMIT" : "ROLLBACK");
  PQfinish(t1);
  PQfinish(t2);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&ka.errors), 0);
  ck_assert_int_eq(atomic_load(&kb.errors), 0);
  struct seen sn;
  long last;
  ck_assert_int_eq(read_journal("a", &sn, &last), 0);
  ck_assert_int_eq(last, 2);
  ck_assert_int_eq(read_journal("b", &sn, &last), 0);
  ck_assert_int_eq(last, 2);
}
END_TEST

/* ---- the writer's group in one round trip (libpq pipeline mode) ---- */

static void client_for(struct client *k, const char *id) {
  memset(k, 0, sizeof *k);
  k->c.committed = on_committed;
  k->c.ud = k;
  snprintf(k->c.run_id, sizeof k->c.run_id, "%s", id);
}

static void append_n(struct client *k, long from, long to) {
  for (long q = from; q <= to; q++) {
    char l[64];
    int n = snprintf(l, sizeof l, "{\"type\":\"x\",\"n\":%ld}", q);
    ck_assert_int_eq(lc_store_append(st, &k->c, q, (unsigned long)q, l, (size_t)n), 0);
  }
}

/* Holds the writer: x's lease row is locked by t1, so the group with x's
 * line waits; what is queued meanwhile goes in the next group, whole. */
static PGconn *hold_writer(struct client *kx) {
  PGconn *t1 = PQconnectdb(path);
  ck_assert_int_eq(PQstatus(t1), CONNECTION_OK);
  pq_ok(t1, "BEGIN");
  pq_ok(t1, "UPDATE leases SET lease_until = 1 WHERE run_id = 'x'");
  append_n(kx, 2, 2);
  await_lock_wait();
  return t1;
}

static void release_writer(PGconn *t1, struct client *kx) {
  pq_ok(t1, "COMMIT");
  PQfinish(t1);
  double until = lc_test_mono_s() + 60;
  while (atomic_load(&kx->newest) < 2) {
    ck_assert_msg(lc_test_mono_s() < until, "x's line never committed");
    lc_test_nap_ms(10);
  }
}

/* Every group the writer commits is one round trip to the server: BEGIN,
 * the lines with their fences, COMMIT and a sync sent together (it was a
 * statement and a round trip each: BEGIN, a fence check per run, a line
 * each, COMMIT). */
START_TEST(pg_group_commit_is_one_round_trip) {
  const char *ids[] = {"a", "b", "c"};
  static struct client k[3];
  for (int i = 0; i < 3; i++) {
    create(ids[i], 1);
    client_for(&k[i], ids[i]);
  }
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('a', 'me', 1), ('b', 'me', 1), "
      "('c', 'me', 1)");
  for (int i = 0; i < 3; i++) ck_assert_int_eq(lc_store_fence(st, ids[i], 1), 0);
  for (int i = 0; i < 3; i++) append_n(&k[i], 2, 4);
  lc_store_flush(st);
  long lines, commits;
  lc_store_stats(st, &lines, &commits);
  ck_assert_int_eq(lines, 9);
  ck_assert_int_ge(commits, 1);
  ck_assert_int_eq(lc_store_writer_trips(st), commits);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(atomic_load(&k[i].errors), 0);
    struct seen sn;
    long last;
    ck_assert_int_eq(read_journal(ids[i], &sn, &last), 0);
    ck_assert_int_eq(last, 4);
  }
}
END_TEST

/* The fence in a pipelined group: a run whose lease another daemon took
 * loses every line it has in the group (its client told so), the other
 * runs of the same group are committed. */
START_TEST(pg_pipelined_group_still_fences) {
  create("x", 1);
  create("a", 1);
  create("b", 1);
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('x', 'me', 1), ('a', 'me', 1), "
      "('b', 'me', 1)");
  static struct client kx, ka, kb;
  client_for(&kx, "x");
  client_for(&ka, "a");
  client_for(&kb, "b");
  ck_assert_int_eq(lc_store_fence(st, "x", 1), 0);
  ck_assert_int_eq(lc_store_fence(st, "a", 1), 0);
  ck_assert_int_eq(lc_store_fence(st, "b", 1), 0);
  PGconn *t1 = hold_writer(&kx);
  append_n(&ka, 2, 3);
  append_n(&kb, 2, 3);
  append_n(&ka, 4, 4);
  sql("UPDATE leases SET epoch = 2, owner = 'other' WHERE run_id = 'b'"); /* taken over */
  long trips0 = lc_store_writer_trips(st);
  release_writer(t1, &kx);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&kb.errors), 1);
  ck_assert_uint_eq(atomic_load(&kb.newest), 0);
  ck_assert_int_eq(atomic_load(&ka.errors), 0);
  ck_assert_uint_eq(atomic_load(&ka.newest), 4);
  struct seen sn;
  long last;
  ck_assert_int_eq(read_journal("b", &sn, &last), 0);
  ck_assert_int_eq(last, 1); /* not one line of the group */
  ck_assert_int_eq(read_journal("a", &sn, &last), 0);
  ck_assert_int_eq(last, 4);
  /* a's and b's lines went as one group, in one round trip (the trips
   * before it: x's, still waiting when counted) */
  ck_assert_int_eq(lc_store_writer_trips(st) - trips0, 1);
}
END_TEST

/* A run claimed and then lost before its row was made (its daemon
 * stalled; another daemon took it): its creation and first line, one
 * group, write nothing, and its client hears of it. */
START_TEST(pg_fenced_out_creation_makes_no_row) {
  create("x", 1); /* the schema */
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('n', 'other', 2)");
  ck_assert_int_eq(lc_store_fence(st, "n", 1), 0);
  static struct client k;
  client_for(&k, "n");
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "n");
  r.status = "running";
  ck_assert_int_eq(lc_store_append_run(st, &k.c, &r, 1, "{\"type\":\"x\",\"n\":1}", 18), 0);
  append_n(&k, 2, 2);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&k.errors), 1);
  ck_assert_uint_eq(atomic_load(&k.newest), 0);
  char *v = lc_pg_value(path, "SELECT count(*) FROM runs WHERE id = 'n'");
  ck_assert_str_eq(v ? v : "", "0");
  free(v);
  v = lc_pg_value(path, "SELECT count(*) FROM journal WHERE run_id = 'n'");
  ck_assert_str_eq(v ? v : "", "0");
  free(v);
}
END_TEST

/* A claim by another daemon that gave the run the same epoch again: the
 * fleet's lease statements commit without waiting for the WAL flush, so
 * a server crash can lose this daemon's claim (epoch 7 back to 6), and
 * the next claim, elsewhere, raises it to 7 once more. The fences also
 * require this daemon's name as the lease's owner: its line, its status
 * and a run creation all write nothing under the other daemon's lease at
 * "its" epoch. */
START_TEST(pg_fence_requires_the_owner) {
  create("f", 2);
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('f', 'me', 7), ('n', 'other', 3)");
  lc_store_fence_owner(st, "me");
  ck_assert_int_eq(lc_store_fence(st, "f", 7), 0);
  static struct client k;
  client_for(&k, "f");
  ck_assert_int_eq(lc_store_append(st, &k.c, 3, 1, "{\"n\":3}", 7), 0);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&k.errors), 0); /* ours: written */
  ck_assert_int_eq(lc_store_run_set_status(st, "f", "running", NULL, NULL, NULL, 1, err, sizeof err),
                   0);
  sql("UPDATE leases SET owner = 'other' WHERE run_id = 'f'"); /* epoch 7 still */
  ck_assert_int_eq(lc_store_append(st, &k.c, 4, 2, "{\"n\":4}", 7), 0);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&k.errors), 1);
  ck_assert_int_eq(lc_store_run_set_status(st, "f", "finished", "1", NULL, NULL, 0, err, sizeof err),
                   LC_ESTATE);
  struct seen sn;
  long last;
  ck_assert_int_eq(read_journal("f", &sn, &last), 0);
  ck_assert_int_eq(last, 3);
  /* a creation under another daemon's lease at the epoch we were given */
  ck_assert_int_eq(lc_store_fence(st, "n", 3), 0);
  static struct client kn;
  client_for(&kn, "n");
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "n");
  r.status = "running";
  ck_assert_int_eq(lc_store_append_run(st, &kn.c, &r, 1, "{\"type\":\"x\",\"n\":1}", 18), 0);
  append_n(&kn, 2, 2);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&kn.errors), 1);
  char *v = lc_pg_value(path, "SELECT count(*) FROM runs WHERE id = 'n'");
  ck_assert_str_eq(v ? v : "", "0");
  free(v);
  /* with no owner set, the epoch alone decides (a store outside a fleet) */
  lc_store_fence_owner(st, NULL);
  ck_assert_int_eq(lc_store_run_set_status(st, "f", "finished", "1", NULL, NULL, 0, err, sizeof err),
                   0);
}
END_TEST

/* An error in the middle of a pipelined group (a line at a seq another
 * line holds) aborts the rest of it and its COMMIT: nothing of the group
 * is written, every client in it hears of it, what was committed before
 * stays, and the writer's next group goes through. */
START_TEST(pg_error_mid_pipeline_fails_the_group_cleanly) {
  create("x", 1);
  create("a", 1);
  create("b", 1);
  create("c", 1);
  sql("INSERT INTO leases(run_id, owner, epoch) VALUES('x', 'me', 1)");
  static struct client kx, ka, kb, kc, kd;
  client_for(&kx, "x");
  client_for(&ka, "a");
  client_for(&kb, "b");
  client_for(&kc, "c");
  ck_assert_int_eq(lc_store_fence(st, "x", 1), 0);
  append_n(&ka, 2, 2); /* acknowledged before the bad group */
  lc_store_flush(st);
  ck_assert_uint_eq(atomic_load(&ka.newest), 2);
  sql("INSERT INTO journal(run_id, seq, line, crc) VALUES('b', 2, 'another line', 1)");
  PGconn *t1 = hold_writer(&kx);
  append_n(&ka, 3, 4);
  append_n(&kb, 2, 2); /* the conflict, mid-group */
  append_n(&kc, 2, 3);
  release_writer(t1, &kx);
  lc_store_flush(st);
  ck_assert_int_ge(atomic_load(&ka.errors), 1);
  ck_assert_int_ge(atomic_load(&kb.errors), 1);
  ck_assert_int_ge(atomic_load(&kc.errors), 1);
  ck_assert_uint_eq(atomic_load(&ka.newest), 2);
  struct seen sn;
  long last;
  ck_assert_int_eq(read_journal("a", &sn, &last), 0);
  ck_assert_int_eq(last, 2); /* what was acknowledged, no more */
  ck_assert_int_eq(read_journal("c", &sn, &last), 0);
  ck_assert_int_eq(last, 1);
  /* the writer's session is usable: another run's group commits */
  create("d", 1);
  client_for(&kd, "d");
  append_n(&kd, 2, 3);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&kd.errors), 0);
  ck_assert_int_eq(read_journal("d", &sn, &last), 0);
  ck_assert_int_eq(last, 3);
}
END_TEST

/* The server ends the store's connections (pg_terminate_backend, as an
 * administrator or a failover does): the next calls connect again. */
START_TEST(pg_connection_killed_is_made_again) {
  create("a", 2);
  static struct client k;
  memset(&k, 0, sizeof k);
  k.c.committed = on_committed;
  k.c.ud = &k;
  snprintf(k.c.run_id, sizeof k.c.run_id, "a");
  ck_assert_int_eq(lc_store_append(st, &k.c, 3, 1, "{\"n\":3}", 7), 0);
  lc_store_flush(st);
  char *n = lc_pg_value(pg.url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() IS NOT TRUE AND datname "
                                "LIKE 't%' AND pid <> pg_backend_pid()");
  ck_assert_ptr_nonnull(n);
  ck_assert_int_ge(atoi(n), 2); /* the callers' and the writer's */
  free(n);
  ck_assert_int_eq(lc_store_append(st, &k.c, 4, 2, "{\"n\":4}", 7), 0);
  lc_store_flush(st);
  ck_assert_int_eq(atomic_load(&k.errors), 0);
  ck_assert_uint_eq(atomic_load(&k.newest), 2);
  struct seen sn;
  long last;
  ck_assert_msg(read_journal("a", &sn, &last) == 0, "%s", err);
  ck_assert_int_eq(last, 4);
}
END_TEST

/* A database at schema version 1 (before leases) is migrated at start,
 * its runs kept. */
START_TEST(pg_migrates_version_1) {
  lc_store_close(st);
  st = NULL;
  sql("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "INSERT INTO meta VALUES('schema_version', '1');"
      "CREATE TABLE runs(id TEXT PRIMARY KEY, script TEXT, script_sha256 TEXT, args TEXT,"
      " cwd TEXT, status TEXT NOT NULL, result TEXT, error TEXT, question TEXT,"
      " created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,"
      " pid BIGINT NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE journal(run_id TEXT NOT NULL, seq BIGINT NOT NULL, line TEXT NOT NULL,"
      " crc BIGINT NOT NULL, PRIMARY KEY(run_id, seq));"
      "INSERT INTO runs(id, status, created, updated) VALUES('old', 'finished', 1, 1);");
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_msg(lc_store_connect(st, err, sizeof err) == 0, "%s", err);
  char *v = lc_pg_value(path, "SELECT value FROM meta WHERE key = 'schema_version'");
  ck_assert_str_eq(v, "5");
  free(v);
  v = lc_pg_value(path, "SELECT status FROM runs WHERE id = 'old'");
  ck_assert_str_eq(v, "finished");
  free(v);
  v = lc_pg_value(path, "SELECT count(*) FROM leases");
  ck_assert_str_eq(v, "0");
  free(v);
}
END_TEST

/* The tables of schema version 2 (the run store's and a daemon's d_runs,
 * as far as the migrations read them) at schema_version v, then more. */
static void schema_2_tables(const char *v, const char *more) {
  char q[4096];
  snprintf(q, sizeof q,
           "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
           "INSERT INTO meta VALUES('schema_version', '%s');"
           "CREATE TABLE runs(id TEXT PRIMARY KEY, script TEXT, script_sha256 TEXT, args TEXT,"
           " cwd TEXT, status TEXT NOT NULL, result TEXT, error TEXT, question TEXT,"
           " created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,"
           " pid BIGINT NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0);"
           "CREATE TABLE journal(run_id TEXT NOT NULL, seq BIGINT NOT NULL, line TEXT NOT NULL,"
           " crc BIGINT NOT NULL, epoch BIGINT NOT NULL DEFAULT 0, PRIMARY KEY(run_id, seq));"
           "CREATE TABLE leases(run_id TEXT PRIMARY KEY, owner TEXT,"
           " epoch BIGINT NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION);"
           "CREATE TABLE d_runs(id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL,"
           " deleted INTEGER NOT NULL DEFAULT 0, pstatus TEXT NOT NULL DEFAULT 'pending');%s",
           v, more);
  sql(q);
}

/* A database at schema version 2 with a daemon's runs: migration 3 gives
 * the fleet's claim its queue index and takes the runs that ended out of
 * it; queued and running ones stay in (the queue is in the lease rows
 * since schema 5: its index there, d_runs' dropped). */
START_TEST(pg_migrates_version_2_queue_index) {
  lc_store_close(st);
  st = NULL;
  schema_2_tables("2",
      "INSERT INTO d_runs(id, created) VALUES('done', 1), ('going', 2), ('queued', 3);"
      "INSERT INTO runs(id, status, created, updated) VALUES('done', 'finished', 1, 1),"
      " ('going', 'running', 2, 2);");
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_msg(lc_store_connect(st, err, sizeof err) == 0, "%s", err);
  char *v = lc_pg_value(path, "SELECT value FROM meta WHERE key = 'schema_version'");
  ck_assert_str_eq(v, "5");
  free(v);
  v = lc_pg_value(path, "SELECT count(*) FROM pg_indexes WHERE indexname = 'd_runs_queued'");
  ck_assert_str_eq(v, "0");
  free(v);
  v = lc_pg_value(path, "SELECT count(*) FROM pg_indexes WHERE indexname = 'leases_queued'");
  ck_assert_str_eq(v, "1");
  free(v);
  v = lc_pg_value(path, "SELECT string_agg(id || '=' || pstatus, ',' ORDER BY created) FROM d_runs");
  ck_assert_str_eq(v, "done=ended,going=pending,queued=pending");
  free(v);
  v = lc_pg_value(path, "SELECT string_agg(run_id || '=' || qstate || '@' || created, ',' "
                        "ORDER BY created) FROM leases");
  ck_assert_str_eq(v, "going=pending@2,queued=pending@3");
  free(v);
}
END_TEST

/* A database at schema version 3 with a fleet's runs: migration 4 takes
 * the runs under a lease ('claimed') and those waiting for an answer
 * ('waiting') out of the queue index and makes the
 * leases' expiry index; queued runs and runs whose lease was handed back
 * stay as they were (schema 5 keeps these states in the lease rows, and
 * takes the run whose lease a cancel took out of the queue). */
START_TEST(pg_migrates_version_3_claimed_runs) {
  lc_store_close(st);
  st = NULL;
  schema_2_tables("3",
      "CREATE INDEX d_runs_queued ON d_runs(created) WHERE pstatus = 'pending' AND deleted = 0;"
      "INSERT INTO d_runs(id, created) VALUES('held', 1), ('back', 2), ('queued', 3),"
      " ('cancel', 4), ('asks', 5);"
      "INSERT INTO runs(id, status, created, updated) VALUES('asks', 'waiting_input', 5, 5);"
      "INSERT INTO leases VALUES('held', 'd1:1:x', 1, 1e12), ('back', NULL, 1, NULL),"
      " ('cancel', 'cancelled', 1, NULL), ('asks', NULL, 1, NULL);");
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_msg(lc_store_connect(st, err, sizeof err) == 0, "%s", err);
  char *v = lc_pg_value(path, "SELECT value FROM meta WHERE key = 'schema_version'");
  ck_assert_str_eq(v, "5");
  free(v);
  v = lc_pg_value(path, "SELECT count(*) FROM pg_indexes WHERE indexname = 'leases_expiry'");
  ck_assert_str_eq(v, "1");
  free(v);
  v = lc_pg_value(path, "SELECT string_agg(run_id || '=' || qstate, ',' ORDER BY created) FROM "
                        "leases");
  ck_assert_str_eq(v, "held=claimed,back=pending,queued=pending,cancel=ended,asks=waiting");
  free(v);
  v = lc_pg_value(path, "SELECT string_agg(run_id || '=' || coalesce(owner, '-') || ':' || epoch, "
                        "',' ORDER BY created) FROM leases");
  ck_assert_str_eq(v, "held=d1:1:x:1,back=-:1,queued=-:0,cancel=cancelled:1,asks=-:1");
  free(v);
}
END_TEST

/* A database at schema version 4 with a fleet's runs: migration 5 moves
 * the queue into the lease rows (qstate, created) in place: each run still
 * queued, claimed or waiting gets its lease row's state (a run with no
 * lease row yet gets one), d_runs' queue states go back to 'pending' (what
 * a client sees of a run not started), the queue index moves to leases,
 * and the trigger that gives each new run its lease row is there (and
 * takes a deleted run out of the queue). Ended, cancelled and deleted
 * runs stay out of the queue. */
START_TEST(pg_migrates_version_4_queue_in_leases) {
  lc_store_close(st);
  st = NULL;
  schema_2_tables("4",
      "CREATE INDEX d_runs_queued ON d_runs(created) WHERE pstatus = 'pending' AND deleted = 0;"
      "CREATE INDEX leases_expiry ON leases(lease_until) WHERE owner IS NOT NULL;"
      "INSERT INTO d_runs(id, created, pstatus, deleted) VALUES('held', 1, 'claimed', 0),"
      " ('back', 2, 'pending', 0), ('queued', 3, 'pending', 0), ('asks', 4, 'waiting', 0),"
      " ('done', 5, 'ended', 0), ('gone', 6, 'pending', 1), ('cancel', 7, 'cancelled', 0),"
      " ('failed', 8, 'failed', 0);"
      "INSERT INTO runs(id, status, created, updated) VALUES('held', 'running', 1, 1),"
      " ('asks', 'waiting_input', 4, 4), ('done', 'finished', 5, 5);"
      "INSERT INTO leases VALUES('held', 'd1:1:x', 3, 1e12), ('back', NULL, 1, NULL),"
      " ('asks', NULL, 2, NULL), ('done', NULL, 1, NULL), ('cancel', 'cancelled', 1, NULL);");
  ck_assert_int_eq(lc_store_open(path, LC_STORE_SYNC_FULL, &st, err, sizeof err), 0);
  ck_assert_msg(lc_store_connect(st, err, sizeof err) == 0, "%s", err);
  char *v = lc_pg_value(path, "SELECT value FROM meta WHERE key = 'schema_version'");
  ck_assert_str_eq(v, "5");
  free(v);
  v = lc_pg_value(path, "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
                        "WHERE indexname IN ('d_runs_queued', 'leases_queued', 'leases_expiry')");
  ck_assert_str_eq(v, "leases_expiry,leases_queued");
  free(v);
  /* the queue's state and order, in the lease rows; leases kept as they were */
  v = lc_pg_value(path, "SELECT string_agg(run_id || '=' || coalesce(qstate, '-') || '@' || "
                        "coalesce(created::text, '-') || ':' || coalesce(owner, '-') || ':' || "
                        "epoch, ',' ORDER BY run_id) FROM leases");
  ck_assert_str_eq(v, "asks=waiting@4:-:2,back=pending@2:-:1,cancel=-@-:cancelled:1,"
                      "done=-@-:-:1,held=claimed@1:d1:1:x:3,queued=pending@3:-:0");
  free(v);
  v = lc_pg_value(path, "SELECT string_agg(id || '=' || pstatus, ',' ORDER BY created) FROM d_runs");
  ck_assert_str_eq(v, "held=pending,back=pending,queued=pending,asks=pending,done=ended,"
                      "gone=pending,cancel=cancelled,failed=failed");
  free(v);
  /* a run queued from now on gets its lease row with it; one deleted
   * leaves the queue */
  sql("INSERT INTO d_runs(id, created) VALUES('new', 9);"
      "UPDATE d_runs SET deleted = 1 WHERE id = 'queued'");
  v = lc_pg_value(path, "SELECT string_agg(run_id || '=' || qstate || '@' || created, ',' ORDER "
                        "BY run_id) FROM leases WHERE run_id IN ('new', 'queued')");
  ck_assert_str_eq(v, "new=pending@9,queued=ended@3");
  free(v);
  /* what the queue index holds, oldest first */
  v = lc_pg_value(path, "SELECT string_agg(run_id, ',' ORDER BY created) FROM leases WHERE "
                        "qstate = 'pending'");
  ck_assert_str_eq(v, "back,new");
  free(v);
}
END_TEST

/* A password in the URL never reaches a message (the daemon logs
 * lc_store_path at start; errors name the store). */
START_TEST(pg_password_never_in_messages) {
  char url[400];
  const char *at = strchr(path, '@');
  ck_assert_ptr_nonnull(at);
  snprintf(url, sizeof url, "postgresql://postgres:hunter2%s", at);
  struct lc_store *s2;
  ck_assert_int_eq(lc_store_open(url, LC_STORE_SYNC_FULL, &s2, err, sizeof err), 0);
  ck_assert_msg(lc_store_connect(s2, err, sizeof err) == 0, "%s", err); /* trust: accepted */
  ck_assert_ptr_null(strstr(lc_store_path(s2), "hunter2"));
  ck_assert_ptr_nonnull(strstr(lc_store_path(s2), "***"));
  struct lc_run_row r;
  ck_assert_int_eq(lc_store_run_get(s2, "nope", &r, err, sizeof err), LC_ENOTFOUND);
  ck_assert_msg(!strstr(err, "hunter2"), "%s", err);
  lc_store_close(s2);
}
END_TEST

Suite *store_suite(void) {
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("sqlite");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  /* SQLite's writer alone: one client's failure kept to it, the CRC, flushes per client */
  tcase_add_test(tc, conflicting_line_fails_only_its_client);
  tcase_add_test(tc, conflict_in_a_wide_insert_fails_only_its_client);
  tcase_add_test(tc, taken_run_id_fails_only_its_client);
  tcase_add_test(tc, line_crc_is_zlib_crc32);
  tcase_add_test(tc, crc32_hw_matches_portable);
  tcase_add_test(tc, lazy_lines_wait_for_a_group);
  tcase_add_test(tc, lazy_only_groups_skip_the_fsync);
  tcase_add_test(tc, slow_lazy_lines_share_a_commit);
  tcase_add_test(tc, cancel_check_only_after_another_connection_wrote);
  /* the file's own: damage, locks */
  tcase_add_test(tc, truncated_file_refused_at_connect);
  tcase_add_test(tc, truncated_large_file_refused_at_connect);
  tcase_add_test(tc, garbage_file_refused_at_connect);
  tcase_add_test(tc, bit_flip_in_a_page_refused);
  tcase_add_test(tc, locked_store_is_not_an_integrity_error);
  TCase *tp = tcase_create("pg");
  tcase_set_timeout(tp, 60);
  tcase_add_unchecked_fixture(tp, pg_up, pg_down);
  tcase_add_checked_fixture(tp, setup_pg, teardown);
  tcase_add_test(tp, pg_fenced_writes_fail_after_takeover);
  tcase_add_test(tp, pg_connection_killed_is_made_again);
  tcase_add_test(tp, pg_migrates_version_1);
  tcase_add_test(tp, pg_migrates_version_2_queue_index);
  tcase_add_test(tp, pg_migrates_version_3_claimed_runs);
  tcase_add_test(tp, pg_migrates_version_4_queue_in_leases);
  tcase_add_test(tp, pg_writer_retries_a_deadlocked_group);
  tcase_add_test(tp, pg_password_never_in_messages);
  tcase_add_test(tp, pg_group_commit_is_one_round_trip);
  tcase_add_test(tp, pg_pipelined_group_still_fences);
  tcase_add_test(tp, pg_error_mid_pipeline_fails_the_group_cleanly);
  tcase_add_test(tp, pg_fenced_out_creation_makes_no_row);
  tcase_add_test(tp, pg_fence_requires_the_owner);
  /* The conformance loop: the same cases on both stores. */
  TCase *both[] = {tc, tp};
  for (int i = 0; i < 2; i++) {
    tcase_add_test(both[i], runs_and_statuses);
    tcase_add_test(both[i], group_commit_takes_many_lines_per_commit);
    tcase_add_test(both[i], run_never_committed_without_its_first_line);
    tcase_add_test(both[i], flipped_byte_in_a_line_names_it);
    tcase_add_test(both[i], seq_gap_is_an_integrity_error);
    tcase_add_test(both[i], newer_schema_refused);
    tcase_add_test(both[i], writer_failure_stops_the_effect);
    tcase_add_test(both[i], export_import_round_trip);
  }
  suite_add_tcase(s, tc);
  suite_add_tcase(s, tp);
  return s;
}
