/* apiwork.h: where the HTTP side of `luact serve` does work that may
 * block (store reads and commits), so that libmicrohttpd's few polling
 * threads never do: a fixed pool of worker threads, and a set of parked
 * items (open streams, waits, WebSockets) that run again on every run
 * change (lc_serve_notify and the runner's broadcasts) and every 250 ms.
 * An open stream or wait holds no thread, only its item.
 *
 * An item is embedded in its owner. Its run function runs on a worker,
 * one run at a time per item; it returns LC_WORK_HANDED when it gave the
 * item away (resumed its connection: the owner may be freed at once, so
 * the pool touches it no more; a parked item must have left the set by
 * lc_work_unpark first), else LC_WORK_KEEP (a parked item stays parked;
 * one that was not is dropped, unless want_park asks for it to be
 * parked). */
#ifndef LC_APIWORK_H
#define LC_APIWORK_H

#include <stddef.h>

struct lc_serve;

enum { LC_WORK_KEEP = 0, LC_WORK_HANDED = 1 };

struct lc_work {
  int (*run)(struct lc_work *w);
  void (*free_fn)(struct lc_work *w); /* lc_work_kill: frees the owner */
  /* under the pool's lock */
  int state; /* idle, queued, running */
  int again, parked, dead;
  int want_park; /* set by run: park after this run (and run again now) */
  struct lc_work *qnext, *prev, *next;
};

/* Starts nworkers workers and the ticker (s: for its run changes). */
int lc_work_start(struct lc_serve *s, int nworkers, char *err, size_t n);
/* Stops the ticker and the workers once the queue is empty. */
void lc_work_stop(void);
/* Runs w once, soon (w not parked). */
void lc_work_submit(struct lc_work *w);
/* Parks w and runs it soon. */
void lc_work_park(struct lc_work *w);
/* From w's run, before it gives w away (resumes its connection): w
 * leaves the parked set and the pool; run then returns LC_WORK_HANDED. */
void lc_work_unpark(struct lc_work *w);
/* Runs a parked w soon (again after its current run, if running). */
void lc_work_kick(struct lc_work *w);
/* Runs every parked item soon. */
void lc_work_kick_all(void);
/* A parked w is done: free_fn runs now, or after its current run. */
void lc_work_kill(struct lc_work *w);
/* Parked items now. */
int lc_work_parked(void);

#endif
