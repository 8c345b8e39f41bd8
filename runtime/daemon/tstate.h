/* tstate.h: writes to a thread's state, LangGraph's names for them
 * (docs/serve.md, Threads): updateState (POST /threads/{id}/state with
 * "values": merged into the thread's values, which the thread's next run
 * gets as ctx.values) and patchState (PATCH /threads/{id}/state: merged
 * into the metadata the thread's current state shows, the thread's). A
 * luact thread's state is its values and metadata, not a graph's
 * checkpoints: as_node has nothing to name and no checkpoint is made. */
#ifndef LC_TSTATE_H
#define LC_TSTATE_H

#include <cjson/cJSON.h>

struct lc_serve;

/* method: POST (update values) or PATCH (metadata); thread: the tenant's,
 * checked. Returns the HTTP status; *out the body (NULL: none) or, for a
 * status >= 400, {"detail": why}. The caller owns *out. */
unsigned lc_tstate_route(struct lc_serve *s, const char *method, const char *tenant,
                         const char *thread, const cJSON *body, int body_ok, cJSON **out);

/* The protocol's thread commands on a thread's state and runs (POST
 * /threads/{id}/commands; thread: the tenant's, checked):
 * state.listCheckpoints {limit, before} (a checkpoint is a finished run of
 * the thread, newest first), state.fork {checkpoint_id, input} (a new
 * thread holding that checkpoint's values and metadata, and a run of the
 * checkpoint's agent on it with input: {run_id, thread_id}), agent.getTree
 * {run_id} (a run is one agent: the root alone). Returns the result, or
 * NULL with *code the protocol's error code and msg why; NULL with *code
 * NULL: not one of these methods. */
cJSON *lc_tstate_command(struct lc_serve *s, const char *tenant, const char *thread,
                         const char *method, const cJSON *params, const char **code, char *msg,
                         size_t n);

#endif
