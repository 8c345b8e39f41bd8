/* offload.h: short blocking work (a file's read, a directory's listing)
 * on a shared pool of threads, so that a loop never waits for a disk.
 *
 * A job is a function and its argument. The pool runs it on one of its
 * threads (started on first use, up to LC_OFFLOAD_THREADS, as jobs queue;
 * they block every signal and live as long as the process), then makes
 * the job's eventfd readable: the submitter watches that fd on its loop.
 * Jobs run in no particular order; work that must keep an order has a
 * thread of its own (the SQL tool's connections, retrieval's collections).
 *
 * Ownership: a job holds two references, the submitter's and the pool's.
 * lc_offload_release drops the submitter's: a job still queued is dropped
 * without running; a running one finishes on its thread and is freed
 * there; a finished one (its fd was written) is freed by the release,
 * so a caller that waited for its job leaves nothing behind. Freeing
 * runs the free function given on the argument and closes the fd. So a function must not touch
 * anything its submitter may free meanwhile (duplicate an fd, copy a
 * path). Errors: LC_ENOMEM; LC_EIO when no thread could ever be started. */
#ifndef LC_OFFLOAD_H
#define LC_OFFLOAD_H

#define LC_OFFLOAD_THREADS 4

struct lc_offload;
typedef void (*lc_offload_fn)(void *arg);

/* A job for fn(arg), not queued yet. On success *out is the submitter's
 * reference and *fd the eventfd that becomes readable once fn has
 * returned (watch it before the start: a failure then leaves no job
 * running, and the release frees it at once). On failure free_arg(arg)
 * has run (when given). */
int lc_offload_new(lc_offload_fn fn, void (*free_arg)(void *), void *arg,
                   struct lc_offload **out, int *fd);
/* Queues it: 0, or LC_EIO (no thread; release it then). */
int lc_offload_start(struct lc_offload *j);
/* Both at once; on failure nothing is left (*out NULL). */
int lc_offload_submit(lc_offload_fn fn, void (*free_arg)(void *), void *arg,
                      struct lc_offload **out, int *fd);
/* 1 once fn has returned (what it wrote to arg is visible then). */
int lc_offload_done(const struct lc_offload *j);
void *lc_offload_arg(struct lc_offload *j);
/* Drops the submitter's reference (see above). NULL is a no-op. */
void lc_offload_release(struct lc_offload *j);

/* Tests: while held, queued jobs wait (none starts); releasing the hold
 * lets them run. Shows that a caller does not wait for its job. */
void lc_offload_test_hold(int on);

#endif
