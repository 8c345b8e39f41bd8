/* child.c: see child.h. */
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static atomic_int force_poll;
static atomic_int no_pidfd; /* the kernel said ENOSYS once: do not ask again */

void lc_child_force_poll(int on) { atomic_store(&force_poll, on); }

int lc_child_open(struct lc_child *c, struct lc_loop *loop, pid_t pid) {
  memset(c, 0, sizeof *c);
  c->loop = loop;
  c->pid = pid;
  c->pidfd = -1;
  if (!atomic_load(&force_poll) && !atomic_load(&no_pidfd)) {
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (c->pidfd < 0 && errno == ENOSYS) atomic_store(&no_pidfd, 1);
  }
  return 0;
}

/* 1 when the status is taken (or lost to the kernel), 0 if not ended. */
static int take(struct lc_child *c, int block) {
  if (c->reaped) return 1;
  siginfo_t si;
  for (;;) {
    memset(&si, 0, sizeof si);
    int flags = WEXITED | (block ? 0 : WNOHANG);
    int r = c->pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, flags)
                          : waitid(P_PID, (id_t)c->pid, &si, flags);
    if (r == 0) break;
    if (errno == EINTR) continue;
    if (errno == ECHILD) {
      /* SIGCHLD ignored (a program may set it): the kernel reaped it. */
      c->reaped = c->lost = 1;
      return 1;
    }
    return 0;
  }
  if (si.si_pid == 0) return 0; /* WNOHANG: not yet */
  c->reaped = 1;
  c->status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : (si.si_status & 0x7f);
  return 1;
}

static void ended(struct lc_child *c) {
  lc_child_unwatch(c);
  if (c->on_exit) c->on_exit(c, c->ud);
}

static void on_pidfd(struct lc_loop *loop, struct lc_fdwatch *w, unsigned ev) {
  (void)loop;
  (void)ev;
  struct lc_child *c = w->ud;
  if (take(c, 0)) ended(c);
}

static void on_poll(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_child *c = t->ud;
  if (take(c, 0)) ended(c);
  else if (lc_timer_start(loop, &c->poll, LC_CHILD_POLL_MS) < 0)
    lc_child_kill(c, SIGKILL); /* no timer, no watch: end it rather than lose it */
}

int lc_child_watch(struct lc_child *c, lc_child_fn on_exit, void *ud) {
  c->on_exit = on_exit;
  c->ud = ud;
  int rc;
  if (c->pidfd >= 0) {
    c->w = (struct lc_fdwatch){.fd = c->pidfd, .events = LC_READ, .cb = on_pidfd, .ud = c};
    rc = lc_loop_watch(c->loop, &c->w);
  } else {
    lc_timer_init(&c->poll, on_poll, c);
    rc = lc_timer_start(c->loop, &c->poll, LC_CHILD_POLL_MS);
  }
  if (rc < 0) return rc == LC_ENOMEM ? LC_ENOMEM : LC_EIO;
  c->watching = 1;
  return 0;
}

void lc_child_unwatch(struct lc_child *c) {
  if (!c->watching) return;
  if (c->pidfd >= 0) lc_loop_unwatch(c->loop, &c->w);
  else lc_timer_stop(c->loop, &c->poll);
  c->watching = 0;
}

void lc_child_kill(struct lc_child *c, int sig) {
  if (c->reaped) return;
  if (c->pidfd >= 0) syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0);
  else kill(c->pid, sig); /* unreaped: the pid is still this child's */
}

int lc_child_reap(struct lc_child *c, int block) { return take(c, block); }

void lc_child_close(struct lc_child *c) {
  lc_child_unwatch(c);
  if (c->pidfd >= 0) close(c->pidfd);
  c->pidfd = -1;
}
