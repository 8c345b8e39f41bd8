/* check_workers.c: `luact run --workers N`: a script that uses luact.worker
 * runs on every worker in its own state, one that does not runs once;
 * luact.worker.sum/max/barrier combine; exit codes. Runs the real binary as
 * a subprocess. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char out[4096];

/* Runs the script with the run store off (a durable run is journaled on
 * one worker: see durable_run_stays_on_one_worker). */
static int run_cli(const char *args, const char *script) {
  char path[] = "/tmp/lc-workers-XXXXXX.lua";
  int fd = mkstemps(path, 4);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, script, strlen(script)), (ssize_t)strlen(script));
  close(fd);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/luact run %s %s %s 2>&1", LC_BINARY_DIR,
           strstr(args, "--store") ? "" : "--no-store", args, path);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  unlink(path);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(each_worker_runs_and_results_combine) {
  int rc = run_cli("--workers 3",
                   "local w = luact.worker\n"
                   "local ids = w.sum('ids', w.id)\n"
                   "local n = w.sum('n', 1)\n"
                   "local again = w.sum('ids', w.id * 10)\n"
                   "local top = w.max('top', w.id)\n"
                   "if w.id == 1 then print(string.format('%d %d %d %d %d', w.count, ids, n, again, top)) end\n");
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(out, "3 6 3 60 3\n");
}
END_TEST

START_TEST(worker_states_are_separate) {
  /* A global set by one worker is invisible to the others. */
  int rc = run_cli("--workers 2",
                   "if luact.worker.id == 1 then shared = 'one' end\n"
                   "luact.worker.barrier()\n"
                   "local seen = luact.worker.sum('seen', shared and 1 or 0)\n"
                   "if luact.worker.id == 2 then print('seen', seen) end\n");
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(out, "seen\t1.0\n");
}
END_TEST

START_TEST(a_failing_worker_fails_the_run) {
  int rc = run_cli("--workers 2", "if luact.worker.id == 2 then error('worker two broke') end\n");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(out, "worker two broke") != NULL, "%s", out);
  ck_assert_int_eq(run_cli("--workers 0", "return 0"), 2);
  ck_assert_int_eq(run_cli("--workers auto", "return luact.worker.count >= 1 and 0 or 1"), 0);
}
END_TEST

/* Worker 2 fails before the sum the others wait in: they are released
 * with an error naming it, and the run exits with worker 2's failure
 * (pthread_barrier_wait kept them waiting forever). */
START_TEST(a_failing_worker_releases_the_others) {
  int rc = run_cli("--workers 3",
                   "local w = luact.worker\n"
                   "if w.id == 2 then error('worker two broke') end\n"
                   "local n = w.sum('n', 1)\n"
                   "print('unreached', n)\n");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(out, "worker two broke") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "luact.worker.sum: worker 2 has ended") != NULL, "%s", out);
  ck_assert_ptr_null(strstr(out, "unreached"));
  /* The same when it waits in a barrier, and when the worker that is gone
   * ended without error. */
  rc = run_cli("--workers 2", "local w = luact.worker\n"
                              "if w.id == 1 then return 0 end\n"
                              "w.barrier()\nprint('unreached')\n");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(out, "luact.worker.barrier: worker 1 has ended") != NULL, "%s", out);
  ck_assert_ptr_null(strstr(out, "unreached"));
}
END_TEST

/* Past the 64 names a run can combine, and with a name too long for its
 * slot, sum raised nothing and returned the worker's own value as if it
 * were the total. */
START_TEST(reduce_limits_raise) {
  int rc = run_cli("--workers 2", "local w = luact.worker\n"
                                  "local t = 0\n"
                                  "for i = 1, 70 do t = t + w.sum('n' .. i, 1) end\n"
                                  "print('total', t)\n");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(out, "luact.worker.sum: a run combines at most 64 names"), "%s", out);
  ck_assert_ptr_null(strstr(out, "total"));
  rc = run_cli("--workers 2", "local w = luact.worker\n"
                              "print('total', w.sum(string.rep('x', 64), 1))\n");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(out, "name must be 1-63 bytes"), "%s", out);
  rc = run_cli("--workers 2", "local w = luact.worker\n"
                              "local v = w.sum(string.rep('x', 63), 1)\n"
                              "if w.id == 1 then print('total', v) end\n");
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(out, "total\t2.0\n");
}
END_TEST

START_TEST(default_is_one_worker_per_core) {
  char want[64];
  snprintf(want, sizeof want, "%ld %ld\n", sysconf(_SC_NPROCESSORS_ONLN),
           sysconf(_SC_NPROCESSORS_ONLN));
  int rc = run_cli("", "local w = luact.worker\n"
                       "local n = w.sum('n', 1)\n"
                       "if w.id == 1 then print(w.count, math.tointeger(n)) end\n");
  ck_assert_int_eq(rc, 0);
  /* print separates with a tab */
  for (char *p = want; *p; p++)
    if (*p == ' ') *p = '\t';
  ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(a_script_without_luact_worker_runs_once) {
  int rc = run_cli("--workers 3", "assert(luact.no_such_field == nil)\nprint('side effect')\n"
                                  "luact.sleep(0.001)\nprint('done')\n");
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(out, "side effect\ndone\n");
}
END_TEST

START_TEST(luact_worker_after_a_wait_stays_on_one_worker) {
  /* Starting the others now would repeat the print and the sleep: the run
   * stays on one worker, says why on stderr, and the script sees count 1. */
  int rc = run_cli("--workers 3", "print('before')\nluact.sleep(0.001)\n"
                                  "local w = luact.worker\n"
                                  "print('after', w.id, w.count, w.sum('x', 5))\n");
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(strstr(out, "before\n") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "after\t1\t1\t5.0\n") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "running on one worker, not 3") != NULL, "%s", out);
  ck_assert_ptr_null(strstr(strstr(out, "before\n") + 1, "before\n"));
}
END_TEST

/* A durable run (the default) keeps its one journal on worker 1: the first
 * use of luact.worker does not spread it, and stderr says how to. */
START_TEST(durable_run_stays_on_one_worker) {
  char store[] = "/tmp/lc-workers-store-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(store));
  char args[256];
  snprintf(args, sizeof args, "--workers 2 --store %s/runs.db", store);
  int rc = run_cli(args, "local w = luact.worker\nluact.now()\nprint(w.count, w.sum('n', 1))\n");
  ck_assert_msg(rc == 0, "%s", out);
  ck_assert_msg(strstr(out, "1\t1"), "%s", out);
  ck_assert_msg(strstr(out, "--no-store"), "%s", out);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", store);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *workers_suite(void) {
  Suite *s = suite_create("workers");
  TCase *tc = tcase_create("cli");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, durable_run_stays_on_one_worker);
  tcase_add_test(tc, each_worker_runs_and_results_combine);
  tcase_add_test(tc, worker_states_are_separate);
  tcase_add_test(tc, a_failing_worker_fails_the_run);
  tcase_add_test(tc, a_failing_worker_releases_the_others);
  tcase_add_test(tc, reduce_limits_raise);
  tcase_add_test(tc, default_is_one_worker_per_core);
  tcase_add_test(tc, a_script_without_luact_worker_runs_once);
  tcase_add_test(tc, luact_worker_after_a_wait_stays_on_one_worker);
  suite_add_tcase(s, tc);
  return s;
}
