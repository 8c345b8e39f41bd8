/* apithreads.h: the thread routes of `luact serve` (apithreads.c): create
 * (with LangGraph's supersteps), search and count, GET, PATCH, DELETE,
 * state and state at a checkpoint, history, copy, the thread's streams
 * (apisse.h) and WebSocket (wsconn.h), its commands (apicmds.h), its
 * state writes (tstate.h) and its runs (apiruns.h).
 *
 * Runs on apiwork.c's workers (the store). seg are the path's parts from
 * "threads" on; tenant owns the thread (another tenant's is not found). */
#ifndef LC_APITHREADS_H
#define LC_APITHREADS_H

#include <cjson/cJSON.h>
#include <microhttpd.h>

struct lc_serve;

enum MHD_Result lc_api_thread_routes(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *method, char **seg, int nseg, const char *tenant,
                                     const cJSON *body, int body_ok);

#endif
