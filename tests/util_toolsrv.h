/* util_toolsrv.h: a loopback HTTP tool server that counts its calls, for
 * the suites that check the effect rules under faults (check_fleet).
 *
 *   POST /charge       body {"run": RUN} with an Idempotency-Key header:
 *                      the first call with a key makes one charge, every
 *                      later call with it replays that charge (the server
 *                      dedupes by key, as a payment API does); a call
 *                      without the header makes a charge every time.
 *   POST /notify/RUN   an at-most-once effect: every call is one
 *                      notification, counted per RUN.
 *   POST /wait/NAME    answers once /open/NAME has come (a gate, so a
 *   POST /open/NAME    test orders two calls' answers without timing).
 *
 * Both answer 200 {"ok":true} (the same body every time, so a run's output
 * does not depend on which call it got). One thread accepts, one thread
 * per connection serves it (a client stalled mid-request holds only its
 * own thread, for at most the 5 s receive timeout). Ownership: the server
 * is the caller's until lc_toolsrv_stop, which waits for every thread. */
#ifndef LC_TEST_UTIL_TOOLSRV_H
#define LC_TEST_UTIL_TOOLSRV_H

struct lc_toolsrv;

/* Listens on 127.0.0.1 (a free port, in *port); 0 or -1. */
int lc_toolsrv_start(struct lc_toolsrv **out, int *port);
void lc_toolsrv_stop(struct lc_toolsrv *t);
/* Charges made for run (distinct keys it was called with, plus one per
 * call without a key) and calls received for it in all. */
void lc_toolsrv_charges(struct lc_toolsrv *t, const char *run, long *charges, long *calls);
/* Notifications received for run. */
long lc_toolsrv_notified(struct lc_toolsrv *t, const char *run);
/* Whole requests that fit no route, too big ones, and connections that
 * stopped sending without ending (expected 0). */
long lc_toolsrv_bad(struct lc_toolsrv *t);
/* Connections that ended before a whole request (a caller killed while
 * sending): not calls, and not counted as bad. */
long lc_toolsrv_cut(struct lc_toolsrv *t);

#endif
