/* child.h: a child process watched from the loop, never waited for.
 *
 * The end of a child comes through its pidfd (Linux 5.3+) when the kernel
 * gives one; where it does not (valgrind 3.19 knows no pidfd_open; some
 * container runtimes refuse it), a timer polls waitid(WNOHANG) every
 * LC_CHILD_POLL_MS. Either way the pid stays ours until lc_child_reap
 * takes its status, so signals never reach a recycled pid.
 *
 * Ownership: struct lc_child is the caller's (embedded in its job); it
 * must stay put while it watches. Errors: negative LC_E* codes. */
#ifndef LC_CHILD_H
#define LC_CHILD_H

#include <sys/types.h>

#include "loop.h"

#define LC_CHILD_POLL_MS 20

struct lc_child;
typedef void (*lc_child_fn)(struct lc_child *c, void *ud);

struct lc_child {
  struct lc_loop *loop;
  pid_t pid;
  int pidfd; /* -1: polled */
  struct lc_fdwatch w;
  struct lc_timer poll;
  int watching;
  int reaped;
  int lost;   /* reaped by the kernel (the child's SIGCHLD ignored): no status */
  int status; /* as waitpid's: exit code << 8, or the signal */
  lc_child_fn on_exit;
  void *ud;
};

/* Takes pid (a child of this process, not yet reaped) onto loop. 0. */
int lc_child_open(struct lc_child *c, struct lc_loop *loop, pid_t pid);
/* Calls on_exit once, from the loop, after the child has ended and been
 * reaped (c->status, c->lost set). 0 or LC_ENOMEM. */
int lc_child_watch(struct lc_child *c, lc_child_fn on_exit, void *ud);
void lc_child_unwatch(struct lc_child *c);
/* Sends sig unless the child has been reaped. */
void lc_child_kill(struct lc_child *c, int sig);
/* Takes the status if the child has ended: 1, else 0 (block: waits for
 * the end, for a child that was sent SIGKILL: the kernel's teardown). */
int lc_child_reap(struct lc_child *c, int block);
/* Stops watching and closes the pidfd; reaps nothing. */
void lc_child_close(struct lc_child *c);

/* Tests: 1 makes lc_child_open poll as if the kernel had no pidfd. */
void lc_child_force_poll(int on);

#endif
