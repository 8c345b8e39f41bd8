/* fdwait.c: see fdwait.h. */
#include "fdwait.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "lc.h"

void lc_fdwait_stop(struct lc_fdwait *fw) {
  if (fw->watching) lc_loop_unwatch(fw->loop, &fw->w);
  fw->watching = 0;
}

static void on_readable(struct lc_loop *loop, struct lc_fdwatch *w, unsigned events) {
  struct lc_fdwait *fw = w->ud;
  (void)loop;
  (void)events;
  uint64_t n;
  if (read(w->fd, &n, sizeof n) < 0 && errno == EAGAIN) return; /* spurious */
  lc_fdwait_stop(fw);
  lc_task_wake(fw->task, &fw->wait);
}

static void on_cancel(struct lc_wait *w) {
  struct lc_fdwait *fw = (struct lc_fdwait *)((char *)w - offsetof(struct lc_fdwait, wait));
  lc_fdwait_stop(fw);
  if (fw->on_cancel) fw->on_cancel(fw);
}

int lc_fdwait_start(struct lc_fdwait *fw, struct lc_task *task, struct lc_loop *loop, int fd) {
  fw->task = task;
  fw->loop = loop;
  fw->wait.cancel = on_cancel;
  fw->w = (struct lc_fdwatch){.fd = fd, .events = LC_READ, .cb = on_readable, .ud = fw};
  int rc = lc_loop_watch(loop, &fw->w);
  if (rc) return rc;
  fw->watching = 1;
  return 0;
}

void lc_fdwait_wait(struct lc_fdwait *fw) { lc_task_wait(fw->task, &fw->wait); }

int lc_offload_wait_start(struct lc_offload_wait *ow, struct lc_task *task, struct lc_loop *loop,
                          lc_offload_fn fn, void (*free_arg)(void *), void *arg,
                          const char **step) {
  int fd, rc = lc_offload_new(fn, free_arg, arg, &ow->job, &fd);
  if (rc) {
    *step = "cannot make an eventfd";
    return rc;
  }
  if ((rc = lc_fdwait_start(&ow->fw, task, loop, fd))) {
    *step = "cannot watch its job";
    return rc == LC_ENOMEM ? rc : LC_EIO;
  }
  if ((rc = lc_offload_start(ow->job))) {
    *step = "cannot start a thread";
    return rc;
  }
  lc_fdwait_wait(&ow->fw);
  return 0;
}

int lc_offload_wait_done(struct lc_offload_wait *ow) {
  if (lc_offload_done(ow->job)) return 1;
  lc_fdwait_wait(&ow->fw); /* woken early: wait on */
  return 0;
}

/* Stops watching before the release can close the fd (its number could
 * be reused at once). */
void lc_offload_wait_close(struct lc_offload_wait *ow) {
  lc_fdwait_stop(&ow->fw);
  lc_offload_release(ow->job);
  ow->job = NULL;
}
