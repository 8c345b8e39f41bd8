/* crons.h: LangGraph's cron jobs for `luact serve` (docs/serve.md, Crons):
 * a 5-field cron expression and a run to create at each of its times,
 * kept in the daemon's tables (d_crons) and fired by one thread of the
 * daemon.
 *
 * Exactly once per tick: the run a tick creates carries the tick in its
 * Idempotency-Key (d_runs' unique (tenant, idem)), so a second daemon on
 * the same PostgreSQL, or this one again after a crash between creating
 * the run and moving the cron on, cannot create it twice; the cron moves
 * on with a conditional UPDATE (WHERE next_run_at = the tick). A daemon
 * down over several ticks fires the missed ones once, then the next time
 * after now. No HTTP here: apiruns.c routes and replies. */
#ifndef LC_CRONS_H
#define LC_CRONS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <time.h>

struct lc_serve;

/* A parsed expression: minute, hour, day of month, month, day of week
 * (0 = Sunday) as bit sets; *_star: the field began with '*' (Vixie's
 * rule: when neither day field did, a day matches either of them). */
struct lc_cron {
  unsigned long long min;
  unsigned long hour, dom;
  unsigned mon, dow;
  int dom_star, dow_star;
};

/* Parses expr (5 fields, or @yearly @annually @monthly @weekly @daily
 * @midnight @hourly). 0, or LC_EINVAL with the reason in err. */
int lc_cron_parse(const char *expr, struct lc_cron *c, char *err, size_t n);
/* The first time (UTC) strictly after `after` that c matches, in whole
 * minutes; -1 when none in the next 9 years (e.g. "0 0 30 2 *"). */
time_t lc_cron_next(const struct lc_cron *c, time_t after);

/* The cron routes: METHOD /runs/crons[/SEG...] (seg: the parts after
 * "crons"), or POST /threads/{thread}/runs/crons (thread: already checked
 * to be the tenant's). Returns the HTTP status and in *out the body (NULL:
 * none), or for a status >= 400 {"detail": why}. The caller owns *out. */
unsigned lc_crons_route(struct lc_serve *s, const char *method, char **seg, int nseg,
                        const char *tenant, const char *thread, const cJSON *body, int body_ok,
                        cJSON **out);

/* Makes a run as POST /runs does (d_runs' row, metrics, log, queued):
 * the texts are JSON (input, metadata, stream_mode may be NULL), idem an
 * Idempotency-Key or NULL. run (33 bytes) gets its id. 0; LC_ESTATE: the
 * key is taken; LC_ENOTFOUND: no such agent; else LC_E*, err says. Used by
 * the cron ticks and state.fork (tstate.c). */
int lc_crons_make_run(struct lc_serve *s, const char *tenant, const char *thread,
                      const char *agent, const char *input, const char *metadata,
                      const char *idem, const char *multitask, const char *stream_mode,
                      char run[33], char *err, size_t n);

/* The firing thread: started once the daemon has recovered its runs,
 * stopped when it stops accepting work. The clock is the real one, or
 * (tests) the number of seconds in the file $LUACT_CRON_CLOCK_FILE, read
 * at each look; $LUACT_CRON_POLL_MS (default 1000) is how often it looks. */
int lc_crons_start(struct lc_serve *s, char *err, size_t n);
void lc_crons_stop(void);

#endif
