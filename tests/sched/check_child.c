/* check_child.c: child.c watches a child's end from the loop, through its
 * pidfd or, where the kernel gives none (valgrind, some containers), by
 * polling: both ways give the same exit status, signal and kill, and a
 * status lost to an ignored SIGCHLD is said so. The loop runs until the
 * callback comes (no sleeps, no upper time bound). */
#include <check.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "loop.h"

struct seen {
  int calls;
  struct lc_child *c;
};

static void on_exit_cb(struct lc_child *c, void *ud) {
  struct seen *s = ud;
  s->calls++;
  s->c = c;
}

/* Forks a child that waits for a byte on fd (-1: none) then _exit(code). */
static pid_t child_waiting(int fd, int code) {
  pid_t p = fork();
  ck_assert_int_ge(p, 0);
  if (p == 0) {
    char b;
    if (fd >= 0) (void)!read(fd, &b, 1);
    _exit(code);
  }
  return p;
}

static void run_until(struct lc_loop *l, const struct seen *s) {
  while (!s->calls) lc_loop_run_once(l, -1);
}

/* exit codes, a signal, lc_child_kill, each with a pidfd and polled */
START_TEST(status_signal_and_kill_both_ways) {
  for (int poll = 0; poll < 2; poll++) {
    lc_child_force_poll(poll);
    struct lc_loop *l;
    ck_assert_int_eq(lc_loop_new(&l), 0);
    /* 1: an exit code, after the watch started (the child waits for it) */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct lc_child c;
    struct seen s = {0};
    pid_t pid = child_waiting(p[0], 7);
    ck_assert_int_eq(lc_child_open(&c, l, pid), 0);
    ck_assert_int_eq(c.pidfd < 0, poll);
    ck_assert_int_eq(lc_child_watch(&c, on_exit_cb, &s), 0);
    ck_assert_int_eq(lc_child_reap(&c, 0), 0); /* still running */
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    run_until(l, &s);
    ck_assert_int_eq(s.calls, 1);
    ck_assert(c.reaped && !c.lost);
    ck_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 7);
    lc_child_kill(&c, SIGKILL); /* reaped: sends nothing, the pid may be reused */
    lc_child_close(&c);
    /* 2: killed by the watcher's owner */
    s = (struct seen){0};
    pid = child_waiting(p[0], 0);
    ck_assert_int_eq(lc_child_open(&c, l, pid), 0);
    ck_assert_int_eq(lc_child_watch(&c, on_exit_cb, &s), 0);
    lc_child_kill(&c, SIGUSR1); /* default: terminate; the runner handles SIGTERM */
    run_until(l, &s);
    ck_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGUSR1);
    lc_child_close(&c);
    /* 3: unwatched, killed and reaped by a blocking reap (a close path) */
    pid = child_waiting(p[0], 0);
    ck_assert_int_eq(lc_child_open(&c, l, pid), 0);
    ck_assert_int_eq(lc_child_watch(&c, on_exit_cb, &s), 0);
    lc_child_unwatch(&c);
    lc_child_kill(&c, SIGKILL);
    ck_assert_int_eq(lc_child_reap(&c, 1), 1);
    ck_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1); /* reaped: not ours any more */
    lc_child_close(&c);
    close(p[0]);
    close(p[1]);
    lc_loop_free(l);
  }
  lc_child_force_poll(0);
}
END_TEST

/* SIGCHLD ignored: the kernel reaps the child, and the watch says the
 * status was lost instead of waiting for ever. */
START_TEST(ignored_sigchld_is_lost_not_hung) {
  struct sigaction old, ign = {.sa_handler = SIG_IGN};
  sigaction(SIGCHLD, &ign, &old);
  for (int poll = 0; poll < 2; poll++) {
    lc_child_force_poll(poll);
    struct lc_loop *l;
    ck_assert_int_eq(lc_loop_new(&l), 0);
    struct lc_child c;
    struct seen s = {0};
    ck_assert_int_eq(lc_child_open(&c, l, child_waiting(-1, 3)), 0);
    ck_assert_int_eq(lc_child_watch(&c, on_exit_cb, &s), 0);
    run_until(l, &s);
    ck_assert(c.reaped && c.lost);
    lc_child_close(&c);
    lc_loop_free(l);
  }
  lc_child_force_poll(0);
  sigaction(SIGCHLD, &old, NULL);
}
END_TEST

Suite *child_suite(void) {
  Suite *s = suite_create("child");
  TCase *tc = tcase_create("child");
  tcase_add_test(tc, status_signal_and_kill_both_ways);
  tcase_add_test(tc, ignored_sigchld_is_lost_not_hung);
  suite_add_tcase(s, tc);
  return s;
}
