/* workers.h: N worker threads, each with its own loop, scheduler and Lua
 * state, running the same script (as wrk runs its script per thread).
 * Nothing Lua is shared; workers meet only through the few process-wide
 * primitives below (a barrier and named sum/max reductions), which block
 * the calling thread and so belong at the start or end of a script.
 *
 * Ownership: lc_workers_run owns the threads; it returns when all are done. */
#ifndef LC_WORKERS_H
#define LC_WORKERS_H

struct lc_workers;

/* Per-thread body: returns the worker's exit code. */
typedef int (*lc_worker_fn)(int id, int count, void *ud);

/* Runs fn on count threads (ids 1..count) and returns the first non-zero
 * exit code, or 0. count == 1 runs on the calling thread. */
int lc_workers_run(int count, lc_worker_fn fn, void *ud);

/* The calling thread's worker id (1-based) and the worker count; 1/1 on a
 * thread that lc_workers_run did not start. */
int lc_worker_id(void);
int lc_worker_count(void);

/* Blocks until every worker has called it. */
void lc_worker_barrier(void);
/* Adds / maxes value into the named process-wide slot, waits for every
 * worker, and returns the combined value (all workers get the same one). */
double lc_worker_reduce(const char *name, double value, int is_max);

#endif
