/* fdwait.h: a task waiting, on its loop, for an eventfd that another
 * thread writes when a job of the task's is done (an SQL query, a
 * retrieval job, an offloaded file read).
 *
 * The binding embeds a struct lc_fdwait in its to-be-closed op, starts it
 * (the fd watched: a failure after it leaves nothing waiting), then waits
 * and yields; when the fd becomes readable it is read (reset), unwatched
 * and the task woken. A kill unwatches it and then calls on_cancel (the
 * job's own cancel, optional). Whoever owns the fd closes it, after
 * lc_fdwait_stop (the number could be reused at once).
 *
 * Ownership: the struct is the caller's and must stay put while it
 * watches. Errors: lc_loop_watch's (LC_ENOMEM; LC_EIO when epoll refuses). */
#ifndef LC_FDWAIT_H
#define LC_FDWAIT_H

#include "loop.h"
#include "offload.h"
#include "sched.h"

struct lc_fdwait {
  struct lc_wait wait; /* first: the scheduler's cancel finds the struct */
  struct lc_fdwatch w;
  struct lc_loop *loop;
  struct lc_task *task;
  int watching;
  void (*on_cancel)(struct lc_fdwait *fw); /* after the unwatch; NULL: none */
};

/* Watches fd on loop for task. on_cancel may be set before or after. */
int lc_fdwait_start(struct lc_fdwait *fw, struct lc_task *task, struct lc_loop *loop, int fd);
/* Makes the task wait for the fd (then the caller yields); again when
 * woken early (the fd not yet written), still watching. */
void lc_fdwait_wait(struct lc_fdwait *fw);
/* Stops watching; idempotent, safe on a zeroed struct. */
void lc_fdwait_stop(struct lc_fdwait *fw);

/* A task's job on the offload pool (offload.h), watched from its loop:
 * the job is made, its fd watched, then it is queued (so a failure
 * leaves no job running) and the task made to wait. From the start the
 * job owns arg, whatever the outcome. 0, LC_ENOMEM, or LC_EIO (no eventfd,
 * no watch, or no thread: *step names it). Then the caller yields; its
 * continuation asks lc_offload_wait_done (0: it waits again, yield once
 * more), reads lc_offload_arg(ow->job), and lc_offload_wait_close ends
 * it (a job still running finishes on its thread). A zeroed struct is a
 * closed one. */
struct lc_offload_wait {
  struct lc_offload *job;
  struct lc_fdwait fw;
};
int lc_offload_wait_start(struct lc_offload_wait *ow, struct lc_task *task, struct lc_loop *loop,
                          lc_offload_fn fn, void (*free_arg)(void *), void *arg,
                          const char **step);
int lc_offload_wait_done(struct lc_offload_wait *ow);
void lc_offload_wait_close(struct lc_offload_wait *ow);

#endif
