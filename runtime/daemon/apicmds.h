/* apicmds.h: the Agent Protocol's thread commands for `luact serve`
 * (apicmds.c): POST /threads/{id}/commands and the same commands over the
 * thread stream's WebSocket (wsconn.c). run.start (a new run; the answer
 * when the thread's run waits for one; input for the thread's active run),
 * input.respond, input.inject (inbox.c), state.get, and tstate.c's
 * state.listCheckpoints, state.fork and agent.getTree.
 *
 * Runs on apiwork.c's workers (the store). Ownership: the envelope
 * returned is the caller's; params and body are borrowed. */
#ifndef LC_APICMDS_H
#define LC_APICMDS_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>

struct lc_serve;

/* The protocol's command answer: {"type": "success", "id", "result"}
 * (takes result) or, result NULL, {"type": "error", "id", "error",
 * "message"}. id (may be NULL: null) is copied. */
cJSON *lc_api_cmd_env(const cJSON *id, cJSON *result, const char *error, const char *message);
/* Runs one command of tenant on thread (c NULL: a WebSocket's). Returns
 * its envelope, or NULL when the request itself is refused: *code the
 * HTTP status (404: no such thread; 422: not a command) and why. */
cJSON *lc_api_command_exec(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const char *thread, const cJSON *body, unsigned *code, char *why,
                           size_t wn);
/* POST /threads/{id}/commands. */
enum MHD_Result lc_api_command_route(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *tenant, const char *thread, const cJSON *body,
                                     int body_ok);

#endif
