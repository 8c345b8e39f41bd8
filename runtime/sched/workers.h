/* workers.h: up to N worker threads, each with its own loop, scheduler and
 * Lua state, running the same script (as wrk runs its script per thread).
 * The script starts on worker 1 alone. The others start when it first asks
 * which worker it is (lc_workers_spread, behind luact.worker), so a script
 * written for workers runs on all of them while any other script runs once:
 * N copies of a script that does not split its work would repeat its side
 * effects. Nothing Lua is shared; workers meet only through the few
 * process-wide primitives below (a barrier and named sum/max reductions),
 * which block the calling thread and so belong at the start or end of a
 * script. A worker that ends (fails, or returns without meeting) breaks
 * them: the others get an error instead of waiting forever.
 *
 * Ownership: lc_workers_run owns the threads; it returns when all are done. */
#ifndef LC_WORKERS_H
#define LC_WORKERS_H

/* Per-thread body: returns the worker's exit code. */
typedef int (*lc_worker_fn)(int id, void *ud);

/* Runs fn as worker 1 on the calling thread, with up to count workers in
 * all; joins whichever others were started and returns the exit code of
 * the first worker that failed, or 0. */
int lc_workers_run(int count, lc_worker_fn fn, void *ud);

/* On worker 1, the first call decides the run's worker count: with
 * why_not NULL, workers 2..count start now (each runs fn from the top);
 * otherwise the run stays on one worker, and if more were asked for,
 * stderr says so with why_not. Later calls, and calls on other workers,
 * change nothing. Returns the count in effect. */
int lc_workers_spread(const char *why_not);

/* The calling thread's worker id (1-based) and the count in effect; 1/1
 * before lc_workers_spread and on threads lc_workers_run did not start. */
int lc_worker_id(void);
int lc_worker_count(void);

/* Blocks until every worker has called it. Returns 0, or the id of a
 * worker that ended its run first (it failed, or never calls this): the
 * workers can no longer all meet, so every waiting and later call returns
 * at once with that id instead of waiting forever. */
int lc_worker_barrier(void);
/* Adds / maxes value into the named process-wide slot, waits for every
 * worker, and puts the combined value in *out (all workers get the same
 * one). name is at most LC_WORKER_NAME_MAX bytes (the caller checks). Returns
 * 0; like lc_worker_barrier, the id of a worker gone; or LC_ETOOBIG when
 * the run already uses LC_WORKER_NAMES names. */
#define LC_WORKER_NAME_MAX 63
#define LC_WORKER_NAMES 64
int lc_worker_reduce(const char *name, double value, int is_max, double *out);
/* The calling worker has ended its run with exit code rc: breaks the
 * meeting points (called by lc_workers_run for each worker). */
void lc_worker_leave(int rc);

#endif
