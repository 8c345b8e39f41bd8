/* rwork.h: a collection's thread. Every job that touches the collection's
 * SQLite handle or its vector index (an add's transaction and its HNSW
 * inserts, a save's fsync, a rebuild, a large search) runs on it, one at
 * a time, in the order submitted, so the loop thread never waits for
 * them and no two threads touch the store at once.
 *
 * Ownership: lc_rwork_new takes the store. The owner (the Lua userdata),
 * the thread and every job hold a reference; whoever lets go last frees
 * the store. A job's arg is the submitter's until submit, then the
 * job's: free_arg runs exactly once, when the job is freed.
 *
 * Cancelling: a queued job is dropped (it never runs: an add is then not
 * in at all); a running one runs to its end (an add commits whole) and is
 * freed when it ends, never waited for. Closing drops the queued jobs and
 * leaves a running one to finish; only an idle thread is joined.
 *
 * Threads: lc_rwork_* may be called from the owner's thread only, except
 * lc_rwork_dims (any thread). Between jobs (lc_rwork_idle) the owner's
 * thread may use the store itself: the thread is parked and only the
 * owner's thread submits. */
#ifndef LC_RWORK_H
#define LC_RWORK_H

#include <stddef.h>

#include "rstore.h"

struct lc_rwork;
struct lc_rjob;

typedef void (*lc_rjob_fn)(struct lc_rstore *s, void *arg);

/* Takes s (closed on failure too). 0 or LC_ENOMEM. The thread starts with
 * the first job. s may be NULL: the first job then opens the store (its
 * fn gets NULL) and the owner hands it over with lc_rwork_adopt once that
 * job is done, so even opening (which may rebuild the index) runs off the
 * owner's thread. */
int lc_rwork_new(struct lc_rstore *s, struct lc_rwork **out);
/* The owner lets go (see above). NULL is a no-op. */
void lc_rwork_close(struct lc_rwork *w);
/* 1 when no job is queued or running: the caller may use the store. */
int lc_rwork_idle(struct lc_rwork *w);
/* Takes s, opened by a job that is done, before any other is queued. */
void lc_rwork_adopt(struct lc_rwork *w, struct lc_rstore *s);
/* The store, for use between jobs only. */
struct lc_rstore *lc_rwork_store(struct lc_rwork *w);
/* The collection's dimension count as of the last job (any thread). */
size_t lc_rwork_dims(struct lc_rwork *w);
/* Runs fn(store, arg) on the calling thread; the caller checked idle. */
void lc_rwork_inline(struct lc_rwork *w, lc_rjob_fn fn, void *arg);

/* A job for fn(store, arg), not queued yet; *fd becomes readable when it
 * is done (owned by the job), so the caller can watch it before the job
 * can end. Takes arg whatever the result. 0 or LC_ENOMEM. fn NULL closes
 * the store on the thread (closing a WAL database checkpoints and syncs
 * it); the jobs after it, and the owner between jobs, then see a NULL
 * store. */
int lc_rwork_submit(struct lc_rwork *w, lc_rjob_fn fn, void (*free_arg)(void *),
                    void *arg, struct lc_rjob **job, int *fd);
/* Queues it (the thread starts with the first). 0, LC_ENOMEM or
 * LC_ESTATE (closed); on failure the caller still releases it. */
int lc_rwork_start(struct lc_rjob *j);
/* 1 once the job ran or was dropped. */
int lc_rwork_done(struct lc_rjob *j);
/* 1 when it was dropped (cancelled while queued, or the collection was
 * closed first): fn never ran. */
int lc_rwork_dropped(struct lc_rjob *j);
/* The job's arg; read it only once done. */
void *lc_rwork_arg(struct lc_rjob *j);
/* Drops a queued job; a running one runs on. */
void lc_rwork_cancel(struct lc_rjob *j);
/* The submitter lets go: cancel, then drop its reference. */
void lc_rwork_release(struct lc_rjob *j);

#endif
