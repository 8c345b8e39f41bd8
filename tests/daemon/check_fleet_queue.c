/* check_fleet_queue.c: the fleet's claim path on a real PostgreSQL
 * (runtime/daemon/fleet.c, the queue index of schema 3 in store_pg.c):
 * a claim reads d_runs through the queue index, and a run that ended
 * leaves the index, so that claims do not slow down as runs pile up.
 * (check_fleet holds the fault cases: leases, takeovers, fencing.) */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_pg.h"

static struct lc_pg pg;
static char url[300], dir[256], logp[300];
static pid_t pid;

static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&pg), 0); }
static void pg_down(void) { lc_pg_stop(&pg); }

static long count(const char *sql) {
  char *v = lc_pg_value(url, sql);
  long n = v ? atol(v) : -1;
  free(v);
  return n;
}

static const char *daemon_args = "--poll-ms 100 --max-runs 4";

static void start(void) {
  snprintf(logp, sizeof logp, "%s/log", dir);
  char agents[300];
  snprintf(agents, sizeof agents, "%s/agents", dir);
  int port;
  ck_assert_msg(lc_pg_daemon_start(url, daemon_args, agents, logp, NULL, &pid, &port) == 0,
                "the daemon exited at start");
}

/* SIGTERM, and its exit: the server then has its statistics. */
static void stop(void) {
  if (!pid) return;
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  pid = 0;
}

static void setup(void) {
  ck_assert_msg(pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  ck_assert_int_eq(lc_pg_newdb(&pg, url, sizeof url), 0);
  snprintf(dir, sizeof dir, "/tmp/lc_fq_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char p[400];
  snprintf(p, sizeof p, "%s/agents", dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/agents/echo.lua", dir);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs("return function(input, ctx) luact.now() return {ok = true} end\n", f);
  fclose(f);
  /* journals a line every 50 ms: long enough to be cancelled in */
  snprintf(p, sizeof p, "%s/agents/slow.lua", dir);
  f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs("return function(input, ctx)\n"
        "  for i = 1, input.steps do luact.sleep(0.05); luact.now() end\n"
        "  return {done = input.steps}\n"
        "end\n",
        f);
  fclose(f);
  start();
}

static void teardown(void) {
  stop();
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
  ck_assert_int_eq(count("SELECT count(*) FROM d_runs WHERE id LIKE 'q%' AND pstatus = 'ended'"),
                   40);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE seq = 1"), 40);
  /* every lease handed back (they ride on the next claim statement) */
  ck_assert_int_eq(count("SELECT count(*) FROM leases WHERE owner IS NOT NULL"), 0);
  ck_assert_int_eq(count("SELECT count(*) FROM leases"), 40);
  ck_assert_int_gt(count("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE "
                         "indexrelname = 'd_runs_queued'"),
                   0);
  /* never more than the free slots in one claim: 40 runs took 10 or more */
  char *t = lc_test_read_file(logp, NULL);
  const char *p = t ? strstr(t, "\"claims 40 in ") : NULL;
  ck_assert_msg(p, "no fleet_stats line for 40 claims: %s", t ? t : "(no log)");
  p = strchr(p, '(');
  ck_assert_ptr_nonnull(p);
  ck_assert_int_ge(atol(p + 1), 10);
  free(t);
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

Suite *fleet_queue_suite(void) {
  Suite *s = suite_create("fleet_queue");
  TCase *tc = tcase_create("pg");
  tcase_set_timeout(tc, 180);
  tcase_add_unchecked_fixture(tc, pg_up, pg_down);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, claims_use_the_queue_index_and_ended_runs_leave_it);
  tcase_add_test(tc, cancel_asked_in_the_database_stops_the_run);
  tcase_add_test(tc, own_run_out_lease_is_not_claimed_again);
  suite_add_tcase(s, tc);
  return s;
}
