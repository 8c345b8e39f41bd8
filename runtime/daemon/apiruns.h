/* apiruns.h: runs over HTTP for `luact serve` (apiruns.c): creating a run
 * (LangGraph's runs.create, a thread's run, the protocol's resume command
 * that answers a waiting run), the run routes (POST /runs, /runs/wait,
 * /runs/stream, /runs/batch, /runs/search, a run's GET, DELETE, cancel,
 * join and stream, and the same under /threads/{id}/runs) and waits,
 * which park the request (apiwork.h) until the run ends or asks.
 *
 * Both run on apiwork.c's workers (they read and commit the store). */
#ifndef LC_APIRUNS_H
#define LC_APIRUNS_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>

struct lc_serve;

/* Creates (or finds: the same Idempotency-Key, or the answer to a waiting
 * run) a run of tenant; thread may be NULL (stateless), c NULL (a
 * WebSocket's command: no headers). Returns the HTTP code: 200 with *out
 * the run's d_runs row (the caller's), or 404/409/422/500 with msg why. A
 * new run is committed before this returns and then queued. */
unsigned lc_api_create_run(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const char *thread, const cJSON *body, cJSON **out, char *msg,
                           size_t n);
/* The run routes: seg are the parts after "runs"; thread: the tenant's
 * thread they are under (checked), or NULL. A wait parks the request. */
enum MHD_Result lc_api_run_routes(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *method, char **seg, int nseg, const char *tenant,
                                  const char *thread, const cJSON *body, int body_ok);

#endif
