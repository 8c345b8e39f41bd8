/* check_offload.c: the shared pool runs jobs off the caller's thread and
 * says so through each job's eventfd; a job released while queued never
 * runs (its argument is freed at once); one released while running
 * finishes on its thread and frees itself there; one released after it
 * finished, or before it was started, is freed by the release. Jobs are held in place with pipes
 * and the pool's hold, never with sleeps. */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "lc.h"
#include "offload.h"

struct arg {
  int started;      /* the job writes a byte to it first (-1: none) */
  int gate;         /* then reads a byte from it (-1: none) */
  int freed_fd;     /* free_arg writes a byte to it (-1: none) */
  atomic_int ran;
  atomic_int freed;
  pthread_t th;     /* where it ran */
};

static void job(void *p) {
  struct arg *a = p;
  char b;
  if (a->started >= 0) ck_assert_int_eq(write(a->started, "s", 1), 1);
  if (a->gate >= 0) ck_assert_int_eq(read(a->gate, &b, 1), 1);
  a->th = pthread_self();
  atomic_fetch_add(&a->ran, 1);
}

static void job_free(void *p) {
  struct arg *a = p;
  atomic_fetch_add(&a->freed, 1);
  if (a->freed_fd >= 0) ck_assert_int_eq(write(a->freed_fd, "f", 1), 1);
}

static void wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  ck_assert_int_eq(poll(&p, 1, -1), 1);
}

START_TEST(jobs_run_on_the_pool_and_signal_their_fd) {
  enum { N = 32 };
  static struct arg a[N];
  struct lc_offload *j[N];
  int fd[N];
  for (int i = 0; i < N; i++) {
    a[i] = (struct arg){.started = -1, .gate = -1, .freed_fd = -1};
    ck_assert_int_eq(lc_offload_submit(job, job_free, &a[i], &j[i], &fd[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    wait_readable(fd[i]);
    ck_assert(lc_offload_done(j[i]));
    ck_assert_ptr_eq(lc_offload_arg(j[i]), &a[i]);
    ck_assert_int_eq(atomic_load(&a[i].ran), 1);
    ck_assert(!pthread_equal(a[i].th, pthread_self()));
    ck_assert_int_eq(atomic_load(&a[i].freed), 0); /* ours until released */
    lc_offload_release(j[i]);
    ck_assert_int_eq(atomic_load(&a[i].freed), 1); /* the release freed it */
  }
  lc_offload_release(NULL);
}
END_TEST

START_TEST(released_while_queued_never_runs) {
  lc_offload_test_hold(1);
  struct arg a = {.started = -1, .gate = -1, .freed_fd = -1},
             b = {.started = -1, .gate = -1, .freed_fd = -1};
  struct lc_offload *ja, *jb;
  int fa, fb;
  ck_assert_int_eq(lc_offload_submit(job, job_free, &a, &ja, &fa), 0);
  ck_assert_int_eq(lc_offload_submit(job, job_free, &b, &jb, &fb), 0);
  ck_assert(!lc_offload_done(ja));
  lc_offload_release(ja); /* out of the queue: freed here, never run */
  ck_assert_int_eq(atomic_load(&a.freed), 1);
  lc_offload_test_hold(0);
  wait_readable(fb); /* the one queued behind it runs */
  lc_offload_release(jb);
  ck_assert_int_eq(atomic_load(&a.ran), 0);
  ck_assert_int_eq(atomic_load(&b.ran), 1);
  ck_assert_int_eq(atomic_load(&b.freed), 1);
}
END_TEST

START_TEST(released_while_running_frees_itself_on_its_thread) {
  int started[2], gate[2], freed[2];
  ck_assert_int_eq(pipe(started), 0);
  ck_assert_int_eq(pipe(gate), 0);
  ck_assert_int_eq(pipe(freed), 0);
  struct arg a = {.started = started[1], .gate = gate[0], .freed_fd = freed[1]};
  struct lc_offload *j;
  int fd;
  char b;
  ck_assert_int_eq(lc_offload_submit(job, job_free, &a, &j, &fd), 0);
  ck_assert_int_eq(read(started[0], &b, 1), 1); /* running: it waits on its gate */
  lc_offload_release(j);
  ck_assert_int_eq(atomic_load(&a.freed), 0); /* not under its feet */
  ck_assert_int_eq(write(gate[1], "g", 1), 1); /* let it finish */
  /* A read, not a poll: it orders the pipe's write before our close. */
  ck_assert_int_eq(read(freed[0], &b, 1), 1); /* ... and free itself */
  ck_assert_int_eq(atomic_load(&a.ran), 1);
  ck_assert_int_eq(atomic_load(&a.freed), 1);
  close(started[0]), close(started[1]), close(gate[0]), close(gate[1]);
  close(freed[0]), close(freed[1]);
}
END_TEST

/* A job made and not started (its caller failed to watch its fd) is
 * freed by the release, at once: nothing of it runs on or waits for a
 * pool thread (lua_oom's files_tool counted it as leaked when the job was
 * queued before the watch and then freed itself on its thread). */
START_TEST(released_before_its_start_is_freed_at_once) {
  struct arg a = {.started = -1, .gate = -1, .freed_fd = -1};
  struct lc_offload *j;
  int fd;
  ck_assert_int_eq(lc_offload_new(job, job_free, &a, &j, &fd), 0);
  ck_assert_int_ge(fd, 0);
  lc_offload_release(j);
  ck_assert_int_eq(atomic_load(&a.freed), 1);
  ck_assert_int_eq(atomic_load(&a.ran), 0);
  /* and one that is started runs as before */
  struct arg b = {.started = -1, .gate = -1, .freed_fd = -1};
  ck_assert_int_eq(lc_offload_new(job, job_free, &b, &j, &fd), 0);
  ck_assert_int_eq(lc_offload_start(j), 0);
  wait_readable(fd);
  lc_offload_release(j);
  ck_assert_int_eq(atomic_load(&b.ran), 1);
  ck_assert_int_eq(atomic_load(&b.freed), 1);
}
END_TEST

Suite *offload_suite(void) {
  Suite *s = suite_create("offload");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, jobs_run_on_the_pool_and_signal_their_fd);
  tcase_add_test(tc, released_while_queued_never_runs);
  tcase_add_test(tc, released_while_running_frees_itself_on_its_thread);
  tcase_add_test(tc, released_before_its_start_is_freed_at_once);
  suite_add_tcase(s, tc);
  return s;
}
