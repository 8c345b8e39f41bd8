/* check_fleet_queue.c: the fleet's claim path on a real PostgreSQL
 * (runtime/daemon/fleet.c, the queue of schema 5 in store_pg.c: the
 * runs' lease rows): a claim reads the queue index, and a run that ended
 * leaves it, so that claims do not slow down as runs pile up; a claim
 * and its hand-back write one row each.
 * (check_fleet holds the fault cases: leases, takeovers, fencing.) */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_durable.h"
#include "util_pg.h"

static struct lc_pg pg;
static char url[300], dir[256];
/* daemon k's pid (0: none) and log; the fixture's daemon is 0 */
static pid_t pids[3];
static char logs[3][300];
#define pid pids[0]
#define logp logs[0]

static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&pg), 0); }
static void pg_down(void) { lc_pg_stop(&pg); }

static long count(const char *sql) {
  char *v = lc_pg_value(url, sql);
  long n = v ? atol(v) : -1;
  free(v);
  return n;
}

static int ports[3];

/* Daemon k on the database at u, with args. */
static void start_on(int k, const char *u, const char *args) {
  snprintf(logs[k], sizeof logs[k], "%s/log%d", dir, k);
  char agents[300];
  snprintf(agents, sizeof agents, "%s/agents", dir);
  ck_assert_msg(lc_pg_daemon_start(u, args, agents, logs[k], NULL, &pids[k], &ports[k]) == 0,
                "daemon %d exited at start", k);
}

/* Daemon k with args. */
static void start_k(int k, const char *args) { start_on(k, url, args); }

static void start(void) { start_k(0, "--poll-ms 100 --max-runs 4"); }

/* Stops daemon k; what a sanitizer build of it reported fails the case. */
static void stop_k(int k, int sig) {
  if (!pids[k]) return;
  kill(pids[k], sig);
  waitpid(pids[k], NULL, 0);
  pids[k] = 0;
  char *t = lc_test_read_file(logs[k], NULL);
  int bad = t && (strstr(t, "Sanitizer") || strstr(t, "runtime error:"));
  if (bad) fprintf(stderr, "%s\n", t);
  free(t);
  ck_assert_msg(!bad, "daemon %d's log has a sanitizer report", k);
}

/* Waits (60 s at most) until the log of daemon k says what. */
static void await_log(int k, const char *what) {
  double until = lc_test_mono_s() + 60;
  for (;;) {
    char *t = lc_test_read_file(logs[k], NULL);
    int found = t && strstr(t, what);
    free(t);
    if (found) return;
    ck_assert_msg(lc_test_mono_s() < until, "daemon %d never logged %s", k, what);
    lc_test_nap_ms(20);
  }
}

/* Waits (120 s at most) until a count query reaches n. */
static void await_count(const char *sql, long n, const char *what) {
  double until = lc_test_mono_s() + 120;
  long c;
  while ((c = count(sql)) < n) {
    ck_assert_msg(lc_test_mono_s() < until, "%s: %ld of %ld", what, c, n);
    lc_test_nap_ms(20);
  }
}

/* SIGTERM, and its exit: the server then has its statistics. */
static void stop(void) { stop_k(0, SIGTERM); }

static void setup_files(void) {
  ck_assert_msg(pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  ck_assert_int_eq(lc_pg_newdb(&pg, url, sizeof url), 0);
  snprintf(dir, sizeof dir, "/tmp/lc_fq_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char p[400];
  snprintf(p, sizeof p, "%s/agents", dir);
  mkdir(p, 0700);
  lc_dur_write(p, "echo.lua", "return function(input, ctx) luact.now() return {ok = true} end\n");
  /* journals a line every 50 ms: long enough to be cancelled in */
  lc_dur_write(p, "slow.lua",
               "return function(input, ctx)\n"
               "  for i = 1, input.steps do luact.sleep(0.05); luact.now() end\n"
               "  return {done = input.steps}\n"
               "end\n");
  lc_dur_write(p, "asker.lua",
               "return function(input, ctx) return {answer = luact.ask('more?')} end\n");
}

static void setup(void) {
  setup_files();
  start();
}

static void teardown(void) {
  for (int k = 0; k < 3; k++) stop_k(k, SIGKILL);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
}

/* Runs queued in the database (as POST /runs leaves them on a fleet) are
 * claimed a few at a time (--max-runs 4) through the queue index, and
 * each leaves it when it ends; runs of a daemon that ended without saying
 * so (pstatus still pending, a terminal row) are passed over. */
START_TEST(claims_use_the_queue_index_and_ended_runs_leave_it) {
  char e[512];
  /* claims for free slots only: the count of claims below is the bound */
  stop_k(0, SIGTERM);
  start_k(0, "--poll-ms 100 --max-runs 4 --claim-ahead 0");
  ck_assert_msg(lc_pg_sql(url,
                          "INSERT INTO d_runs(id, tenant, agent, input, created) "
                          "SELECT 'q' || i, 'default', 'echo', '{}', i FROM "
                          "generate_series(1, 40) i;"
                          /* ended elsewhere, its daemon gone before it said so */
                          "INSERT INTO d_runs(id, tenant, agent, input, created) "
                          "VALUES('old', 'default', 'echo', '{}', 0);"
                          "INSERT INTO runs(id, status, created, updated) "
                          "VALUES('old', 'finished', 0, 0);",
                          e, sizeof e) == 0,
                "%s", e);
  double until = lc_test_mono_s() + 120;
  while (count("SELECT count(*) FROM runs WHERE status = 'finished'") < 41) {
    ck_assert_msg(lc_test_mono_s() < until, "the runs did not finish");
    lc_test_nap_ms(50);
  }
  stop();
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id LIKE 'q%' AND status = 'finished'"),
                   40);
  /* every run ran once, and each one that ended here left the index */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id LIKE 'q%' AND qstate = 'ended'"),
                   40);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE seq = 1"), 40);
  /* every lease handed back (they ride on the next claim statement) */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE owner IS NOT NULL"), 0);
  /* each queued run has its lease row (the queue) from the start; the
   * 40 were claimed once each, the one that ended elsewhere never */
  ck_assert_int_eq(count("SELECT count(*) FROM leases"), 41);
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id LIKE 'q%' AND epoch = 1"), 40);
  ck_assert_int_eq(count("SELECT epoch FROM leases WHERE run_id = 'old'"), 0);
  ck_assert_int_gt(count("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE "
                         "indexrelname = 'leases_queued'"),
                   0);
  /* never more than the free slots in one claim (4, none ahead): 40 runs
   * took 10 or more */
  char *t = lc_test_read_file(logp, NULL);
  const char *p = t ? strstr(t, "\"claims 40 in ") : NULL;
  ck_assert_msg(p, "no fleet_stats line for 40 claims: %s", t ? t : "(no log)");
  p = strchr(p, '(');
  ck_assert_ptr_nonnull(p);
  ck_assert_int_ge(atol(p + 1), 10);
  free(t);
}
END_TEST

/* Rows written to the queue and lease tables (leases, d_runs) since the
 * server started: inserts, updates, deletes of each, as "ins upd del" of
 * leases then of d_runs. */
static void queue_writes(long w[6]) {
  char *v = lc_pg_value(url, "SELECT string_agg(concat_ws(' ', n_tup_ins, n_tup_upd, n_tup_del), "
                             "' ' ORDER BY relname DESC) FROM pg_stat_user_tables WHERE relname "
                             "IN ('leases', 'd_runs')");
  ck_assert_ptr_nonnull(v);
  ck_assert_int_eq(sscanf(v, "%ld %ld %ld %ld %ld %ld", &w[0], &w[1], &w[2], &w[3], &w[4], &w[5]),
                   6);
  free(v);
}

static void sql_ok(const char *sql);

static long sum6(const long w[6], const long w0[6]) {
  long n = 0;
  for (int i = 0; i < 6; i++) n += w[i] - w0[i];
  return n;
}

/* A claim writes one row per run (its lease row: owner, epoch, expiry,
 * out of the queue) and its hand-back one, as pg-boss's fetch and
 * complete write its job's row once each; they wrote four (the lease row
 * and the queue row of d_runs, each twice). Runs without a thread write
 * nothing else to these tables while they execute (no context to keep),
 * so the rows the daemon wrote there, from its start to its exit, are
 * its claims' and hand-backs'. (The server's table statistics: each
 * backend adds its counts when its transactions end, and at its exit.) */
START_TEST(claim_and_hand_back_write_one_row_each) {
  enum { N = 40 };
  stop(); /* the schema is made; the daemon below claims alone */
  long w0[6], w[6];
  queue_writes(w0);
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) "
         "SELECT 'w' || i, 'default', 'echo', '{}', i FROM generate_series(1, 40) i");
  /* the enqueue's own rows counted (its backend reported them) */
  double until = lc_test_mono_s() + 60;
  do {
    ck_assert_msg(lc_test_mono_s() < until, "the inserts never showed in the statistics");
    lc_test_nap_ms(20);
    queue_writes(w);
  } while (w[3] - w0[3] < N);
  long enq = sum6(w, w0);
  fprintf(stderr, "row writes to queue N runs: %ld (%.1f per run)\n", enq, (double)enq / N);
  memcpy(w0, w, sizeof w0);
  /* a lease long enough that no renewal writes; one claim per free slot
   * (no claim-ahead, no hand-back of runs that waited) */
  start_k(0, "--poll-ms 100 --max-runs 4 --claim-ahead 0 --lease 600");
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", N, "the runs finished");
  stop();
  /* every lease handed back (the rows below are all there is) */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE owner IS NOT NULL"), 0);
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'ended' AND epoch = 1"), N);
  /* The daemon's backends report at their exit: at least a claim and a
   * hand-back per run, when all is in. */
  until = lc_test_mono_s() + 60;
  do {
    ck_assert_msg(lc_test_mono_s() < until, "the claims never showed in the statistics");
    lc_test_nap_ms(20);
    queue_writes(w);
  } while (sum6(w, w0) < 2 * N);
  await_count("SELECT 1 - count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
              "backend_type = 'client backend' AND pid <> pg_backend_pid()",
              1, "the daemon's sessions ended");
  queue_writes(w);
  long rows = sum6(w, w0);
  fprintf(stderr, "row writes to claim and hand back %d runs: %ld (%.2f per run); leases ins %ld "
                  "upd %ld, d_runs upd %ld\n",
          N, rows, (double)rows / N, w[0] - w0[0], w[1] - w0[1], w[4] - w0[4]);
  /* one row a claim, one a hand-back: the lease row, updated */
  ck_assert_int_eq(w[0] - w0[0], 0);     /* no lease row made by a claim */
  ck_assert_int_eq(w[4] - w0[4], 0);     /* the queue row of d_runs untouched */
  ck_assert_int_eq(w[3] - w0[3], 0);
  ck_assert_int_le(rows, 2 * N);
}
END_TEST

/* The names of this database's other sessions, sorted, distinct. */
static char *session_names(void) {
  return lc_pg_value(url, "SELECT string_agg(DISTINCT application_name, ',' ORDER BY "
                          "application_name) FROM pg_stat_activity WHERE datname = "
                          "current_database() AND backend_type = 'client backend' AND pid <> "
                          "pg_backend_pid()");
}

/* Each of a daemon's connections names itself in pg_stat_activity (an
 * operator's first question of a busy server: whose sessions are these),
 * and a name the user set in the URL wins. */
START_TEST(sessions_say_which_connection_they_are) {
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) "
         "VALUES ('n1', 'default', 'echo', '{}', 1)");
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", 1, "the run finished");
  char *v = session_names();
  ck_assert_str_eq(v ? v : "", "luact daemon,luact fleet,luact listen,luact store");
  free(v);
  stop();
  await_count("SELECT 1 - count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
              "backend_type = 'client backend' AND pid <> pg_backend_pid()",
              1, "the daemon's sessions ended");
  char named[400];
  snprintf(named, sizeof named, "%s?application_name=shop", url);
  start_on(0, named, "--poll-ms 100");
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) "
         "VALUES ('n2', 'default', 'echo', '{}', 2)");
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", 2, "the run finished");
  v = session_names();
  ck_assert_str_eq(v ? v : "", "shop");
  free(v);
}
END_TEST

/* Index entries read through the leases' secondary indexes (the live
 * leases' expiry, the owner) since the server started. */
static long lease_index_reads(void) {
  return count("SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE "
               "indexrelname IN ('leases_expiry', 'leases_owner')");
}

/* Every fenced write finds its run's lease row by its key. The fences
 * compared "owner = $n", and with statistics that said few leases had an
 * owner (made while the runs were queued, as a fleet's first ANALYZE
 * sees them) the planner read the row through the live leases' index
 * instead: each journal line, run row and status read all of the
 * daemon's live leases (pg-bench: fenced writes 5x slower), one entry at
 * least per fenced write. Little else here reads those indexes (no
 * renewal within the lease, one rescue). */
START_TEST(fences_read_the_lease_row_by_its_key) {
  enum { N = 40 };
  stop(); /* the schema is made */
  /* the fleet's past: runs that ended (lease rows with no owner) */
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created, pstatus) "
         "SELECT 'old' || i, 'default', 'slow', '{}', i, 'failed' FROM generate_series(1, 4000) i;"
         "INSERT INTO d_runs(id, tenant, agent, input, created) "
         "SELECT 'k' || i, 'default', 'slow', '{\"steps\": 3}', 4000 + i FROM "
         "generate_series(1, 40) i;"
         "ANALYZE leases");
  long r0 = lease_index_reads(); /* a count: there at once */
  ck_assert_msg(r0 >= 0, "no statistics");
  /* No renewal within the lease; a rescue (which reads the expiry index
   * of the live leases) only at the first claim: the poll is a minute,
   * and freed slots claim on their own. */
  start_k(0, "--poll-ms 60000 --max-runs 8 --claim-ahead 0 --lease 600");
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", N, "the runs finished");
  stop();
  /* each ended session has reported its reads */
  await_count("SELECT 1 - count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
              "backend_type = 'client backend' AND pid <> pg_backend_pid()",
              1, "the daemon's sessions ended");
  long fenced = count("SELECT count(*) FROM journal WHERE run_id LIKE 'k%'") + 2 * N;
  long reads = lease_index_reads() - r0;
  fprintf(stderr, "lease index entries read by %ld fenced writes: %ld\n", fenced, reads);
  /* read through them, each fenced write read its own entry at least */
  ck_assert_msg(reads < fenced, "%ld lease index entries read for %ld fenced writes", reads,
                fenced);
}
END_TEST

/* A cancel asked in the database (cancel_requested, as `luact runs
 * cancel` or another daemon leaves it) stops a run this daemon runs: the
 * run store's writer reads the flag for each group it commits (one
 * statement for the group's runs). */
START_TEST(cancel_asked_in_the_database_stops_the_run) {
  char e[512];
  ck_assert_msg(lc_pg_sql(url,
                          "INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
                          " ('s1', 'default', 'slow', '{\"steps\": 2000}', 1),"
                          " ('s2', 'default', 'slow', '{\"steps\": 3}', 2);",
                          e, sizeof e) == 0,
                "%s", e);
  double until = lc_test_mono_s() + 120;
  while (count("SELECT count(*) FROM journal WHERE run_id = 's1'") < 3 ||
         count("SELECT count(*) FROM runs WHERE id = 's2' AND status = 'finished'") < 1) {
    ck_assert_msg(lc_test_mono_s() < until, "the runs did not start");
    lc_test_nap_ms(50);
  }
  ck_assert_msg(lc_pg_sql(url, "UPDATE runs SET cancel_requested = 1 WHERE id = 's1'", e,
                          sizeof e) == 0,
                "%s", e);
  while (count("SELECT count(*) FROM runs WHERE id = 's1' AND status = 'cancelled'") < 1) {
    ck_assert_msg(lc_test_mono_s() < until, "the run was not cancelled");
    ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id = 's1' AND status = 'finished'"), 0);
    lc_test_nap_ms(50);
  }
  /* the run still ran well short of its 2,000 steps */
  ck_assert_int_lt(count("SELECT count(*) FROM journal WHERE run_id = 's1'"), 1500);
}
END_TEST

/* A lease that ran out while its daemon still runs the run (its renewals
 * failed: pg-bench saw them time out behind the journal writer's row locks
 * with --lease 2) is not claimed again by that daemon: it ran the run twice
 * at once, and the lease_lost of the older claim stopped the newer one,
 * which ended "cancelled" with nobody asking. The next renewal takes the
 * lease up again. */
START_TEST(own_run_out_lease_is_not_claimed_again) {
  char e[512];
  ck_assert_msg(lc_pg_sql(url,
                          "INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
                          " ('s1', 'default', 'slow', '{\"steps\": 60}', 1);",
                          e, sizeof e) == 0,
                "%s", e);
  double until = lc_test_mono_s() + 120;
  while (count("SELECT count(*) FROM journal WHERE run_id = 's1'") < 3) {
    ck_assert_msg(lc_test_mono_s() < until, "the run did not start");
    lc_test_nap_ms(20);
  }
  ck_assert_msg(lc_pg_sql(url, "UPDATE leases SET lease_until = 0 WHERE run_id = 's1'", e,
                          sizeof e) == 0,
                "%s", e);
  while (count("SELECT count(*) FROM runs WHERE id = 's1' AND status IN ('finished', "
               "'failed', 'cancelled')") < 1) {
    ck_assert_msg(lc_test_mono_s() < until, "the run did not end");
    lc_test_nap_ms(50);
  }
  char *st = lc_pg_value(url, "SELECT status FROM runs WHERE id = 's1'");
  ck_assert_str_eq(st, "finished");
  free(st);
  ck_assert_int_eq(count("SELECT epoch FROM leases WHERE run_id = 's1'"), 1);
  stop();
  char *t = lc_test_read_file(logp, NULL);
  ck_assert_msg(t && !strstr(t, "lease_lost"), "%s", t ? t : "(no log)");
  free(t);
}
END_TEST

static size_t sink(char *p, size_t sz, size_t n, void *ud) {
  (void)p, (void)ud;
  return sz * n;
}

/* An HTTP request to daemon k; its status code (0: no answer), the body
 * in *out when out is given (malloc'd). */
static size_t keep(char *p, size_t sz, size_t n, void *ud) {
  char **b = ud;
  size_t old = *b ? strlen(*b) : 0;
  char *nb = realloc(*b, old + sz * n + 1);
  if (!nb) return 0;
  memcpy(nb + old, p, sz * n);
  nb[old + sz * n] = '\0';
  *b = nb;
  return sz * n;
}

static long http(int k, const char *method, const char *path, char **out) {
  CURL *c = curl_easy_init();
  char u[160];
  snprintf(u, sizeof u, "http://127.0.0.1:%d%s", ports[k], path);
  curl_easy_setopt(c, CURLOPT_URL, u);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (!strcmp(method, "POST")) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, out ? keep : sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  return code;
}

/* A POST of a JSON body to daemon k; its status code. */
static long http_post(int k, const char *path, const char *body) {
  CURL *c = curl_easy_init();
  char u[160];
  snprintf(u, sizeof u, "http://127.0.0.1:%d%s", ports[k], path);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, u);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  return code;
}

static double value_d(const char *sql) {
  char *v = lc_pg_value(url, sql);
  double d = v ? atof(v) : -1;
  free(v);
  return d;
}

static void sql_ok(const char *sql) {
  char e[512];
  ck_assert_msg(lc_pg_sql(url, sql, e, sizeof e) == 0, "%s: %s", sql, e);
}

/* One long run and two short ones for a daemon with one slot and
 * --claim-ahead 2: the long one runs, the short ones are claimed ahead. */
static void queue_long_and_two_ahead(int steps) {
  char q[600];
  snprintf(q, sizeof q,
           "INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
           " ('s1', 'default', 'slow', '{\"steps\": %d}', 1),"
           " ('a1', 'default', 'slow', '{\"steps\": 2}', 2),"
           " ('a2', 'default', 'slow', '{\"steps\": 2}', 3);",
           steps);
  sql_ok(q);
  await_count("SELECT count(*) FROM leases WHERE owner IS NOT NULL", 3, "3 runs claimed");
  await_count("SELECT count(*) FROM journal WHERE run_id = 's1'", 3, "the long run started");
  /* claimed ahead: not started (no run row), shown as pending */
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id IN ('a1', 'a2')"), 0);
  char *body = NULL;
  ck_assert_int_eq(http(0, "GET", "/runs/a1", &body), 200);
  ck_assert_msg(body && strstr(body, "\"status\":\"pending\""), "%s", body ? body : "");
  free(body);
}

/* Runs claimed ahead of a free slot hold leases like running ones: they
 * are renewed, and at a SIGTERM they are handed back at once (before the
 * grace period of the run still going), so another daemon runs them
 * while the first one is still finishing. */
START_TEST(claimed_ahead_runs_are_renewed_and_handed_back_on_sigterm) {
  stop_k(0, SIGTERM); /* the fixture's */
  start_k(0, "--poll-ms 100 --max-runs 1 --claim-ahead 2 --lease 2 --grace 60");
  queue_long_and_two_ahead(2000);
  double u0 = value_d("SELECT lease_until FROM leases WHERE run_id = 'a1'");
  double until = lc_test_mono_s() + 60;
  while (value_d("SELECT lease_until FROM leases WHERE run_id = 'a1'") < u0 + 0.2) {
    ck_assert_msg(lc_test_mono_s() < until, "the claimed-ahead lease was not renewed");
    lc_test_nap_ms(50);
  }
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE owner IS NOT NULL AND epoch = 1"), 3);
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id IN ('a1', 'a2')"), 0);
  /* claimed: out of the queue index, running or not */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'claimed'"), 3);
  kill(pids[0], SIGTERM);
  await_count("SELECT count(*) FROM leases WHERE run_id IN ('a1', 'a2') AND owner IS NULL", 2,
              "the claimed-ahead leases handed back");
  /* handed back: queued again (the same statement) */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id IN ('a1', 'a2') AND qstate = "
                         "'pending'"),
                   2);
  int st;
  ck_assert_msg(waitpid(pids[0], &st, WNOHANG) == 0, "the daemon exited before handing back");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id = 's1' AND owner IS NOT NULL"),
                   1);
  start_k(1, "--poll-ms 100 --max-runs 4 --claim-ahead 0 --lease 2");
  await_count("SELECT count(*) FROM runs WHERE id IN ('a1', 'a2') AND status = 'finished'", 2,
              "the handed-back runs finished");
  /* run once each, by the second daemon only (the lease's second epoch) */
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id IN ('a1', 'a2') AND epoch <> 2"),
                   0);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id IN ('a1', 'a2') AND seq = 1"), 2);
  await_log(0, "fleet_drain");
}
END_TEST

/* A daemon killed with runs claimed ahead: they are claimable once its
 * leases run out, and run once, by the daemon that took them. */
START_TEST(claimed_ahead_runs_are_taken_over_after_sigkill) {
  stop_k(0, SIGTERM); /* the fixture's */
  start_k(0, "--poll-ms 100 --max-runs 1 --claim-ahead 2 --lease 2");
  queue_long_and_two_ahead(40);
  double lease_end = value_d("SELECT max(lease_until) FROM leases WHERE run_id IN ('a1', 'a2')");
  stop_k(0, SIGKILL);
  /* out of the queue index: found again through their leases' expiry */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'claimed'"), 3);
  double killed = value_d("SELECT extract(epoch FROM clock_timestamp())");
  start_k(1, "--poll-ms 100 --max-runs 4 --claim-ahead 0 --lease 2");
  await_count("SELECT count(*) FROM leases WHERE run_id IN ('a1', 'a2') AND epoch = 2", 2,
              "the claimed-ahead runs taken over");
  double taken = value_d("SELECT extract(epoch FROM clock_timestamp())");
  fprintf(stderr, "claimed-ahead runs taken over %.2f s after the kill (lease 2 s, ran out "
                  "%.2f s after it)\n", taken - killed, lease_end - killed);
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", 3, "the runs finished");
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id IN ('a1', 'a2') AND epoch <> 2"),
                   0);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE seq = 1"), 3);
  ck_assert_int_eq(count("SELECT count(*) FROM journal j WHERE EXISTS (SELECT 1 FROM journal k "
                         "WHERE k.run_id = j.run_id AND k.epoch > j.epoch AND k.seq < j.seq)"),
                   0);
}
END_TEST

/* Runs being executed are out of the queue index (pstatus 'claimed'), so
 * a claim reads the queued runs at its head, not past every run of the
 * fleet in progress; a run queued behind 6 running ones is claimed and
 * runs, and the index then holds nothing. */
START_TEST(claimed_runs_leave_the_queue_index) {
  stop_k(0, SIGTERM);
  start_k(0, "--poll-ms 100 --max-runs 7 --claim-ahead 0");
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) "
         "SELECT 'r' || i, 'default', 'slow', '{\"steps\": 2000}', i FROM generate_series(1, 6) i");
  await_count("SELECT count(*) FROM runs WHERE id LIKE 'r%' AND status = 'running'", 6,
              "6 runs running");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'claimed'"), 6);
  /* what the index holds (its predicate) */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'pending'"), 0);
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('new', 'default', 'echo', '{}', 100)");
  await_count("SELECT count(*) FROM runs WHERE id = 'new' AND status = 'finished'", 1,
              "the queued run finished");
  await_count("SELECT count(*) FROM leases WHERE run_id = 'new' AND qstate = 'ended'", 1,
              "the run left the index");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'pending'"), 0);
}
END_TEST

/* A claimed run whose row says it ended, its daemon gone before it
 * handed the lease back: the next claim lets the lease go and takes the
 * run out of the claimed ones (it is never claimed, and never read again
 * through the leases' expiry). */
START_TEST(dead_daemons_ended_run_is_let_go) {
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('gone', 'default', 'echo', '{}', 1);"
         "INSERT INTO runs(id, status, created, updated) VALUES('gone', 'finished', 0, 0);"
         "UPDATE leases SET owner = 'dead:1:0', epoch = 1, lease_until = 0, qstate = 'claimed' "
         "WHERE run_id = 'gone';"
         "INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('next', 'default', 'echo', '{}', 2)");
  await_count("SELECT count(*) FROM runs WHERE id = 'next' AND status = 'finished'", 1,
              "a claim ran");
  await_count("SELECT count(*) FROM leases WHERE run_id = 'gone' AND qstate = 'ended'", 1,
              "the ended run let go");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id = 'gone' AND owner IS NULL "
                         "AND epoch = 1"),
                   1);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id = 'gone'"), 0);
  /* one that waited for an answer: out of the claimed runs, waiting */
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('asked', 'default', 'echo', '{}', 3);"
         "INSERT INTO runs(id, status, created, updated) VALUES('asked', 'waiting_input', 0, 0);"
         "UPDATE leases SET owner = 'dead:1:0', epoch = 1, lease_until = 0, qstate = 'claimed' "
         "WHERE run_id = 'asked';"
         "INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('next2', 'default', 'echo', '{}', 4)");
  await_count("SELECT count(*) FROM leases WHERE run_id = 'asked' AND qstate = 'waiting'", 1,
              "the waiting run let go");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id = 'asked' AND owner IS NULL"),
                   1);
}
END_TEST

/* A run that waits for an answer leaves the queue index ('waiting', not
 * read by any claim: a fleet with ten thousand agents waiting for people
 * claims as fast as an idle one), and its answer, sent to another daemon,
 * queues it again in the statement that makes it running: it resumes. */
START_TEST(waiting_runs_leave_the_queue_index_until_answered) {
  start_k(1, "--poll-ms 100 --max-runs 4");
  ck_assert_int_eq(http_post(0, "/threads", "{\"thread_id\": \"tw\"}"), 200);
  ck_assert_int_eq(http_post(0, "/threads/tw/runs", "{\"assistant_id\": \"asker\", \"input\": {}}"),
                   200);
  await_count("SELECT count(*) FROM d_runs d JOIN runs r ON r.id = d.id JOIN leases l ON "
              "l.run_id = d.id WHERE d.thread_id = 'tw' AND r.status = 'waiting_input' AND "
              "l.qstate = 'waiting'",
              1, "the run waits, out of the queue index");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE qstate = 'pending'"), 0);
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE owner IS NOT NULL"), 0);
  ck_assert_int_eq(http_post(1, "/threads/tw/runs",
                             "{\"assistant_id\": \"asker\", \"command\": {\"resume\": \"yes\"}}"),
                   200);
  await_count("SELECT count(*) FROM d_runs d JOIN runs r ON r.id = d.id JOIN leases l ON "
              "l.run_id = d.id WHERE d.thread_id = 'tw' AND r.status = 'finished' AND r.result "
              "LIKE '%yes%' AND l.qstate = 'ended'",
              1, "the answered run finished and left the index");
}
END_TEST

/* A run that ended in doubt just as a claim read it (its status written,
 * then its lease handed back, both after the claim's snapshot) is not
 * claimed again: the claim's re-check reads the run's status, not only
 * the lease. Here the ending is one open transaction, committed while a
 * claim waits for the lease row it locks. */
START_TEST(run_ended_in_doubt_meanwhile_is_not_claimed) {
  stop_k(0, SIGTERM); /* the schema is made */
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('x', 'default', 'slow', '{\"steps\": 1}', 1),"
         " ('z', 'default', 'slow', '{\"steps\": 1}', 2);"
         "INSERT INTO runs(id, status, created, updated) VALUES('x', 'running', 0, 0);"
         "UPDATE leases SET owner = 'gone', epoch = 1, lease_until = 0 WHERE run_id = 'x';");
  PGconn *t = PQconnectdb(url);
  ck_assert_int_eq(PQstatus(t), CONNECTION_OK);
  PGresult *r = PQexec(t, "BEGIN; UPDATE runs SET status = 'in_doubt' WHERE id = 'x';"
                          "UPDATE leases SET owner = NULL, lease_until = NULL WHERE run_id = 'x'");
  ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  start_k(1, "--poll-ms 100 --max-runs 4 --claim-ahead 0");
  int committed = 0;
  double until = lc_test_mono_s() + 60;
  while (count("SELECT count(*) FROM runs WHERE id = 'z' AND status = 'finished'") < 1) {
    ck_assert_msg(lc_test_mono_s() < until, "z did not finish");
    if (!committed && count("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'") > 0) {
      r = PQexec(t, "COMMIT"); /* the claim waits for the lease row: the run ends now */
      PQclear(r);
      committed = 1;
    }
    lc_test_nap_ms(5);
  }
  if (!committed) PQclear(PQexec(t, "COMMIT"));
  PQfinish(t);
  await_count("SELECT 1 - count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
              "wait_event_type = 'Lock'", 1, "a claim still waits");
  char *st = lc_pg_value(url, "SELECT status FROM runs WHERE id = 'x'");
  ck_assert_str_eq(st ? st : "", "in_doubt");
  free(st);
  ck_assert_int_eq(count("SELECT epoch FROM leases WHERE run_id = 'x'"), 1);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id = 'x'"), 0);
}
END_TEST

/* Cancelling through the API takes a run out of the queue: a run claimed
 * ahead here (resumed: it has a run row), one queued in the database, and
 * one waiting for an answer are never claimed after, leave the queue index
 * (no 'pending' d_runs row), and the claimed one's lease goes back. */
START_TEST(cancelled_queued_runs_leave_the_queue_index) {
  stop_k(0, SIGTERM);
  start_k(0, "--poll-ms 100 --max-runs 1 --claim-ahead 1 --lease 2");
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('s1', 'default', 'slow', '{\"steps\": 40}', 1),"
         " ('c1', 'default', 'slow', '{\"steps\": 1}', 2),"
         " ('c2', 'default', 'slow', '{\"steps\": 1}', 3),"
         " ('w1', 'default', 'slow', '{\"steps\": 1}', 0);"
         "INSERT INTO runs(id, status, created, updated) VALUES('c1', 'running', 0, 0),"
         " ('w1', 'waiting_input', 0, 0);");
  await_count("SELECT count(*) FROM leases WHERE run_id IN ('s1', 'c1') AND owner IS NOT NULL", 2,
              "s1 and c1 claimed");
  await_count("SELECT count(*) FROM journal WHERE run_id = 's1'", 2, "s1 started");
  ck_assert_int_eq(http(0, "POST", "/runs/c1/cancel", NULL), 202);
  ck_assert_int_eq(http(0, "POST", "/runs/c2/cancel", NULL), 202);
  ck_assert_int_eq(http(0, "POST", "/runs/w1/cancel", NULL), 202);
  /* a run queued after them: once it ran, the claims have passed them */
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('z', 'default', 'slow', '{\"steps\": 1}', 10)");
  await_count("SELECT count(*) FROM runs WHERE id IN ('s1', 'z') AND status = 'finished'", 2,
              "s1 and z finished");
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id IN ('c1', 'c2', 'w1')"), 0);
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id IN ('c1', 'w1') AND status = "
                         "'cancelled'"),
                   2);
  /* c2 has no run row, or a cancelled one: c1's cancel frees the slot
   * ahead, and a claim can take c2 just before its own cancel arrives;
   * that cancel then writes c2's row as cancelled, which keeps the
   * holder from starting it (lc_fleet_cancel_pending). Either way it
   * never ran (no journal, above). */
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id = 'c2' AND status <> 'cancelled'"),
                   0);
  /* (with the queue drained, the leases of runs that end are handed back
   * together, within HAND_BACK_S) */
  await_count("SELECT (count(*) = 0)::int FROM leases WHERE qstate IN ('pending', 'claimed')", 1,
              "the queue index empty");
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id = 'c1' AND owner IS NOT NULL"),
                   0);
  stop();
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE owner IS NOT NULL AND owner <> "
                         "'cancelled'"),
                   0);
}
END_TEST

/* A cancel sent to one daemon of a run another daemon claimed ahead (not
 * started): the run never starts there, and shows cancelled. */
START_TEST(cancel_reaches_a_run_claimed_ahead_elsewhere) {
  stop_k(0, SIGTERM);
  start_k(1, "--poll-ms 100 --max-runs 1 --claim-ahead 1 --lease 2");
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('s1', 'default', 'slow', '{\"steps\": 40}', 1),"
         " ('c1', 'default', 'slow', '{\"steps\": 1}', 2)");
  await_count("SELECT count(*) FROM leases WHERE run_id IN ('s1', 'c1') AND owner IS NOT NULL", 2,
              "s1 and c1 claimed");
  start_k(0, "--poll-ms 100 --max-runs 1 --claim-ahead 0 --lease 2");
  ck_assert_int_eq(http(0, "POST", "/runs/c1/cancel", NULL), 202);
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('z', 'default', 'slow', '{\"steps\": 1}', 10)");
  await_count("SELECT count(*) FROM runs WHERE id IN ('s1', 'z') AND status = 'finished'", 2,
              "s1 and z finished");
  /* z was claimed after c1 by the same one-slot daemon: c1's turn is past */
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id = 'c1'"), 0);
  char *st = lc_pg_value(url, "SELECT status FROM runs WHERE id = 'c1'");
  ck_assert_str_eq(st ? st : "", "cancelled");
  free(st);
  ck_assert_int_eq(count("SELECT count(*) FROM d_runs WHERE id = 'c1' AND pstatus IN ('pending', 'claimed')"), 0);
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id = 'c1' AND qstate IN ('pending', 'claimed')"), 0);
  char *body = NULL;
  ck_assert_int_eq(http(1, "GET", "/runs/c1", &body), 200);
  ck_assert_msg(body && strstr(body, "\"luact_status\":\"cancelled\""), "%s", body ? body : "");
  free(body);
  stop_k(1, SIGTERM);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id = 'c1'"), 0);
}
END_TEST

/* `luact runs cancel` (the run store's cancel, no daemon involved) of a
 * waiting run of a fleet takes it out of the queue index as well. */
START_TEST(runs_cancel_command_takes_a_waiting_run_out_of_the_queue) {
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('w2', 'default', 'slow', '{\"steps\": 1}', 1);"
         "INSERT INTO runs(id, status, created, updated) VALUES('w2', 'waiting_input', 0, 0);");
  char cmd[800];
  snprintf(cmd, sizeof cmd, "%s/luact runs cancel w2 --store '%s' >/dev/null", LC_BINARY_DIR, url);
  ck_assert_int_eq(system(cmd), 0);
  char *st = lc_pg_value(url, "SELECT status FROM runs WHERE id = 'w2'");
  ck_assert_str_eq(st ? st : "", "cancelled");
  free(st);
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id = 'w2' AND qstate IN ('pending', 'claimed', 'waiting')"), 0);
}
END_TEST

/* The largest batch daemon k's claims took (its run_claimed lines). */
static int largest_claim(int k) {
  char *t = lc_test_read_file(logs[k], NULL);
  int most = 0;
  for (const char *p = t; p && (p = strstr(p, " us for ")); p++) {
    int n = atoi(p + 8);
    if (n > most) most = n;
  }
  free(t);
  return most;
}

/* Four long runs keep the fixture's daemon (4 slots, the default
 * claim-ahead) busy; three short runs queued then (a shallow queue) all
 * go to a second, idle daemon: the busy one claimed none ahead, as its
 * claims found the queue no deeper than its free slots. */
START_TEST(shallow_queue_goes_to_the_idle_daemon) {
  stop_k(0, SIGTERM); /* the fixture's, again with a short lease (renewals below) */
  start_k(0, "--poll-ms 100 --max-runs 4 --lease 2");
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) SELECT 'long' || i, "
         "'default', 'slow', '{\"steps\": 4000}', i FROM generate_series(1, 4) i");
  await_count("SELECT count(*) FROM journal WHERE run_id LIKE 'long%' AND seq = 1", 4,
              "the long runs started");
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) SELECT 'shallow' || i, "
         "'default', 'slow', '{\"steps\": 1}', 10 + i FROM generate_series(1, 3) i");
  /* The busy daemon has looked at the queue since: a renewal after the
   * insert, and then another one (its loop claims right after a renewal,
   * so the first one's claim is over by the second). */
  for (int round = 0; round < 2; round++) {
    double u0 = value_d("SELECT lease_until FROM leases WHERE run_id = 'long1'");
    double until = lc_test_mono_s() + 60;
    while (value_d("SELECT lease_until FROM leases WHERE run_id = 'long1'") <= u0) {
      ck_assert_msg(lc_test_mono_s() < until, "the long run's lease was not renewed");
      lc_test_nap_ms(20);
    }
  }
  start_k(1, "--poll-ms 100 --max-runs 4");
  await_count("SELECT count(*) FROM leases WHERE run_id LIKE 'shallow%'", 3,
              "the short runs claimed");
  await_count("SELECT count(*) FROM runs WHERE id LIKE 'shallow%' AND status = 'finished'", 3,
              "the short runs finished");
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id LIKE 'long%' AND status = "
                         "'running'"),
                   4);
  char *t = lc_test_read_file(logs[0], NULL);
  ck_assert_msg(t && !strstr(t, "shallow"), "the busy daemon claimed a short run: %s",
                t ? t : "");
  free(t);
  /* each ran once, under the one claim (the idle daemon's) */
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id LIKE 'shallow%' AND "
                         "(epoch <> 1 OR seq = 1)"),
                   3);
}
END_TEST

/* A queue deeper than the slots: the default claim-ahead grows while
 * claims come back full, so claims take batches larger than the free
 * slots (more than 4 + the old default's 1); every run runs once. */
START_TEST(deep_queue_claims_batches_beyond_the_free_slots) {
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) SELECT 'deep' || i, "
         "'default', 'echo', '{}', i FROM generate_series(1, 300) i");
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", 300, "the runs finished");
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE seq = 1"), 300);
  stop();
  int most = largest_claim(0);
  fprintf(stderr, "deep queue: largest claim %d runs (4 slots)\n", most);
  ck_assert_msg(most >= 8, "largest claim %d runs", most);
}
END_TEST

/* Runs claimed ahead (a deep queue while one daemon with one slot was
 * alone) that then wait for that slot past --ahead-wait-ms are handed
 * back, and a second daemon runs them, once each, while the first one's
 * long run still goes. */
START_TEST(claimed_ahead_runs_that_waited_are_handed_back) {
  stop_k(0, SIGTERM); /* the fixture's */
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created) VALUES"
         " ('s1', 'default', 'slow', '{\"steps\": 4000}', 1);"
         "INSERT INTO d_runs(id, tenant, agent, input, created) SELECT 'w' || i, "
         "'default', 'slow', '{\"steps\": 1}', 10 + i FROM generate_series(1, 6) i");
  start_k(0, "--poll-ms 100 --max-runs 1 --lease 4 --ahead-wait-ms 300");
  await_log(0, "handed back: they waited");
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id LIKE 'w%'"), 0);
  start_k(1, "--poll-ms 100 --max-runs 4 --claim-ahead 0");
  await_count("SELECT count(*) FROM runs WHERE id LIKE 'w%' AND status = 'finished'", 6,
              "the handed-back runs finished");
  ck_assert_int_eq(count("SELECT count(*) FROM runs WHERE id = 's1' AND status = 'running'"), 1);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE run_id LIKE 'w%' AND seq = 1"), 6);
  /* some claimed first by the busy daemon, and each run under its last
   * claim only (the idle daemon's) */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE run_id LIKE 'w%' AND epoch >= 2") > 0,
                   1);
  ck_assert_int_eq(count("SELECT count(*) FROM journal j JOIN leases l ON l.run_id = j.run_id "
                         "WHERE j.run_id LIKE 'w%' AND j.epoch <> l.epoch"),
                   0);
  char *t = lc_test_read_file(logs[1], NULL);
  ck_assert_msg(t && strstr(t, "\"w1\""), "w1 not claimed by the idle daemon");
  free(t);
}
END_TEST

/* ---- the claims' plans (a server with pg_stat_statements) ---- */

static void pg_up_stats(void) {
  setenv("PG_TMP_OPTS",
         "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on",
         1);
  pg_up();
  unsetenv("PG_TMP_OPTS");
}

#define CLAIMS_SQL(what)                                                                     \
  "SELECT " what " FROM pg_stat_statements WHERE query LIKE '%q AS MATERIALIZED%' AND dbid = " \
  "(SELECT oid FROM pg_database WHERE datname = current_database())"

/* A fleet's claims are prepared statements of its connection, planned
 * once and reused (a generic plan) instead of planned at every claim:
 * planning was half of a claim's server time. An idle daemon claims
 * every poll; its tables do not grow, and each claim text is planned
 * once however often it runs. */
START_TEST(claims_are_planned_once) {
  stop();
  sql_ok("CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset()");
  start_k(0, "--poll-ms 50 --max-runs 4");
  await_count(CLAIMS_SQL("coalesce(sum(calls), 0)"), 20, "claims");
  stop();
  long calls = count(CLAIMS_SQL("coalesce(sum(calls), 0)"));
  long plans = count(CLAIMS_SQL("coalesce(sum(plans), 0)"));
  long texts = count(CLAIMS_SQL("count(*)"));
  fprintf(stderr, "claims: %ld statements, %ld plans (%ld texts)\n", calls, plans, texts);
  /* with and without the rescue (n is the same: 4): two texts, each
   * planned once */
  ck_assert_int_ge(calls, 20);
  ck_assert_int_le(texts, 2);
  ck_assert_int_le(plans, texts);
}
END_TEST

/* The claim plans the server's auto_explain wrote to its log from offset
 * on, as one character each: 'S' reads leases, d_runs or runs
 * sequentially; 'Q' reads all the claimed runs again for each run it
 * updates (a subquery of the CTE c per row, its filter on the row's id:
 * 130 ms of a 400-run claim); 'M' merges two tables read in full, in key
 * order (12 ms a claim with 4,000 runs); 'E' its rescue reads every live
 * lease of the expiry index (no index condition: a heap row per live
 * lease at every rescue); '.' none of these. */
/* Whether a claim plan's rescue (its CTE stale) reads the lease rows
 * through the expiry index without an index condition. */
static int rescue_reads_all_leases(const char *plan) {
  const char *st = strstr(plan, "CTE stale");
  if (!st) return 0;
  const char *end = strstr(st, "CTE x");
  for (const char *p = st; (p = strstr(p, "Index Scan using leases_expiry on leases ")) &&
                           (!end || p < end);
       p++) {
    const char *nl = strchr(p, '\n');
    const char *next = nl ? strchr(nl + 1, '\n') : NULL;
    if (!nl || !next || !memmem(nl, (size_t)(next - nl), "Index Cond", 10)) return 1;
  }
  return 0;
}

static void claim_plans(long offset, char *out, size_t n) {
  char path[300];
  snprintf(path, sizeof path, "%s/server.log", pg.dir);
  size_t len = 0;
  char *t = lc_test_read_file(path, &len);
  ck_assert_ptr_nonnull(t);
  size_t k = 0;
  const char *p = len > (size_t)offset ? t + offset : t + len;
  while (k + 1 < n && (p = strstr(p, "duration: "))) {
    p += 10;
    const char *end = strstr(p, "duration: ");
    char *c = strndup(p, end ? (size_t)(end - p) : strlen(p));
    ck_assert_ptr_nonnull(c);
    if (strstr(c, "q AS MATERIALIZED"))
      out[k++] = strstr(c, "Seq Scan on leases ") || strstr(c, "Seq Scan on d_runs ") ||
                         strstr(c, "Seq Scan on runs ")
                     ? 'S'
                 : strstr(c, "Filter: (id = l") ? 'Q'
                 : strstr(c, "Merge ")           ? 'M'
                 : rescue_reads_all_leases(c)    ? 'E'
                                                  : '.';
    free(c);
  }
  out[k] = '\0';
  free(t);
}

static long log_size(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/server.log", pg.dir);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  return (long)st.st_size;
}

/* Polls the server log (another process writes it: there is no event to
 * wait on) until it holds at least n claim plans since offset. */
static void await_plans(long offset, size_t n, char *out, size_t len, const char *what) {
  double until = lc_test_mono_s() + 60;
  for (;;) {
    claim_plans(offset, out, len);
    if (strlen(out) >= n) return;
    ck_assert_msg(lc_test_mono_s() < until, "%s: %s", what, out);
    lc_test_nap_ms(50);
  }
}

/* A plan suits the tables' sizes when it is made: one made while they
 * were empty read them sequentially once they had grown (0.6 ms to
 * 238 ms a claim at 60,000 runs). The fleet connection plans without
 * sequential scans of tables (enable_seqscan off: every claim reads an
 * index), and the daemon plans its claims again when their tables have
 * grown (fleet.c, watch_sizes). The plans the daemon's claims ran with
 * are the server's (auto_explain, in its log): on the indexes while the
 * tables are empty and after 40,000 ended runs and 500 under another
 * daemon's leases were added; and the claims were planned again after
 * the growth (pg_stat_statements). Autovacuum is off for these tables:
 * its ANALYZE would make the plans again on its own. */
START_TEST(claim_plans_follow_the_tables_growth) {
  stop();
  sql_ok("ALTER TABLE leases SET (autovacuum_enabled = false);"
         "ALTER TABLE d_runs SET (autovacuum_enabled = false);"
         "ALTER TABLE runs SET (autovacuum_enabled = false);"
         "CREATE EXTENSION pg_stat_statements;"
         "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET session_preload_libraries = "
         "''auto_explain''', current_database()); EXECUTE format('ALTER DATABASE %I SET "
         "auto_explain.log_min_duration = 0', current_database()); END $$;");
  long off = log_size();
  start_k(0, "--poll-ms 100 --max-runs 4");
  char plans[512];
  await_plans(off, 3, plans, sizeof plans, "no claim plans in the server log");
  ck_assert_msg(!strpbrk(plans, "SQME"), "claims on the empty tables: %s", plans);
  /* the claim texts so far, and their plans */
  char *ids = lc_pg_value(url, CLAIMS_SQL("string_agg(queryid::text, ',')"));
  ck_assert_ptr_nonnull(ids);
  char pq[600];
  snprintf(pq, sizeof pq, "%s AND queryid IN (%s)", CLAIMS_SQL("coalesce(sum(plans), 0)"), ids);
  free(ids);
  long before = count(pq);
  sql_ok("INSERT INTO d_runs(id, tenant, agent, input, created, thread_id) SELECT 'e' || i, "
         "'default', 'echo', '{}', i, 't' || (i % 5000) FROM generate_series(1, 40000) i;"
         "INSERT INTO runs(id, status, created, updated) SELECT 'e' || i, 'finished', 0, 0 "
         "FROM generate_series(1, 40000) i;"
         "UPDATE leases SET qstate = 'ended', epoch = 1 WHERE run_id LIKE 'e%';"
         "INSERT INTO d_runs(id, tenant, agent, input, created, thread_id) SELECT 'c' || i, "
         "'default', 'echo', '{}', 50000 + i, 't' || (i % 7) FROM generate_series(1, 500) i;"
         "INSERT INTO runs(id, status, created, updated) SELECT 'c' || i, 'running', 0, 0 "
         "FROM generate_series(1, 500) i;"
         "UPDATE leases SET qstate = 'claimed', epoch = 1, owner = 'other', lease_until = "
         "extract(epoch FROM now()) + 3600 WHERE run_id LIKE 'c%';");
  off = log_size();
  /* the same texts planned again for the new sizes (an idle daemon's
   * claims are planned once each otherwise: claims_are_planned_once),
   * then six claims on the indexes */
  await_count(pq, before + 1, "plans after the growth");
  await_plans(off, 6, plans, sizeof plans, "claims after the growth");
  fprintf(stderr, "claim plans after the growth: %s (%ld plans before it, %ld now)\n", plans,
          before, count(pq));
  ck_assert_msg(!strpbrk(plans, "SQME"), "a claim after the growth read a table in full: %s",
                plans);
  stop();
}
END_TEST

/* A fleet's first hour: the statistics were taken while every run was
 * queued (an ANALYZE after the first burst of runs), and most of those
 * runs have ended since. A claim planned on them (as a generic plan is,
 * once, and kept) judged that most leases it read would pass, and merged
 * the whole of d_runs with the whole of runs at every claim, sorting what
 * passed: 12 ms a claim with 4,000 runs, against 0.3 ms (pg-bench, runs
 * of 4 s). A run's conditions are a subquery per lease row that the
 * planner cannot flatten (fleet.c, CLAIMABLE_RUN), so the queue index
 * drives every claim in its order and the LIMIT stops it, whatever the
 * statistics say. Its rescue reads only the expired leases of the expiry
 * index ('E': it read all of them, as its clock was a volatile filter). */
START_TEST(claims_read_the_queue_in_its_order) {
  stop();
  sql_ok("ALTER TABLE leases SET (autovacuum_enabled = false);"
         "ALTER TABLE d_runs SET (autovacuum_enabled = false);"
         "ALTER TABLE runs SET (autovacuum_enabled = false);"
         "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET session_preload_libraries = "
         "''auto_explain''', current_database()); EXECUTE format('ALTER DATABASE %I SET "
         "auto_explain.log_min_duration = 0', current_database()); END $$;"
         "INSERT INTO d_runs(id, tenant, agent, input, created) SELECT 'f' || i, 'default', "
         "'echo', '{}', i FROM generate_series(1, 4000) i;"
         "ANALYZE leases, d_runs;"
         "INSERT INTO runs(id, status, created, updated) SELECT 'f' || i, 'finished', 0, 0 "
         "FROM generate_series(1, 3900) i;"
         "ANALYZE runs;"
         "UPDATE leases SET qstate = 'ended', epoch = 1 WHERE run_id IN (SELECT id FROM runs)");
  long off = log_size();
  start_k(0, "--poll-ms 100 --max-runs 400");
  /* the 100 runs still queued are claimed, run and end */
  await_count("SELECT count(*) FROM runs WHERE status = 'finished'", 4000, "runs finished");
  char plans[512];
  await_plans(off, 6, plans, sizeof plans, "no claim plans in the server log");
  fprintf(stderr, "claim plans on the first hour's statistics: %s\n", plans);
  ck_assert_msg(!strpbrk(plans, "SQME"), "a claim read the tables in full: %s", plans);
  stop();
}
END_TEST

Suite *fleet_queue_suite(void) {
  Suite *s = suite_create("fleet_queue");
  TCase *tc = tcase_create("pg");
  tcase_set_timeout(tc, 180);
  tcase_add_unchecked_fixture(tc, pg_up, pg_down);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, claims_use_the_queue_index_and_ended_runs_leave_it);
  tcase_add_test(tc, claim_and_hand_back_write_one_row_each);
  tcase_add_test(tc, fences_read_the_lease_row_by_its_key);
  tcase_add_test(tc, sessions_say_which_connection_they_are);
  tcase_add_test(tc, claimed_runs_leave_the_queue_index);
  tcase_add_test(tc, dead_daemons_ended_run_is_let_go);
  tcase_add_test(tc, waiting_runs_leave_the_queue_index_until_answered);
  tcase_add_test(tc, cancel_asked_in_the_database_stops_the_run);
  tcase_add_test(tc, own_run_out_lease_is_not_claimed_again);
  tcase_add_test(tc, run_ended_in_doubt_meanwhile_is_not_claimed);
  tcase_add_test(tc, cancelled_queued_runs_leave_the_queue_index);
  tcase_add_test(tc, claimed_ahead_runs_are_taken_over_after_sigkill);
  tcase_add_test(tc, cancel_reaches_a_run_claimed_ahead_elsewhere);
  tcase_add_test(tc, runs_cancel_command_takes_a_waiting_run_out_of_the_queue);
  tcase_add_test(tc, claimed_ahead_runs_are_renewed_and_handed_back_on_sigterm);
  tcase_add_test(tc, shallow_queue_goes_to_the_idle_daemon);
  tcase_add_test(tc, deep_queue_claims_batches_beyond_the_free_slots);
  tcase_add_test(tc, claimed_ahead_runs_that_waited_are_handed_back);
  suite_add_tcase(s, tc);
  /* on a server with pg_stat_statements loaded */
  TCase *tp = tcase_create("plans");
  tcase_set_timeout(tp, 180);
  tcase_add_unchecked_fixture(tp, pg_up_stats, pg_down);
  tcase_add_checked_fixture(tp, setup, teardown);
  tcase_add_test(tp, claims_are_planned_once);
  tcase_add_test(tp, claim_plans_follow_the_tables_growth);
  tcase_add_test(tp, claims_read_the_queue_in_its_order);
  suite_add_tcase(s, tp);
  return s;
}
