/* apireq.h: a request of `luact serve`'s HTTP side and its reply
 * (apireq.c; the request's life is api.c's).
 *
 * A request is libmicrohttpd's con_cls: its body, then, while its route
 * runs on a worker of apiwork.c (its connection suspended), the reply the
 * route leaves. Routes reply through lc_api_reply_* and lc_api_send: on a
 * worker (lc_api_cur_rq set) the reply is left in the request and queued
 * when the connection resumes (libmicrohttpd queues a reply only from its
 * own callbacks); on libmicrohttpd's thread it is queued at once.
 *
 * Ownership: api.c allocates a request and frees it in its completed
 * callback. The reply functions take what they are given (text, body,
 * response), on success and on failure. Errors: MHD_NO when the reply
 * could not be made (out of memory): the connection is closed. */
#ifndef LC_APIREQ_H
#define LC_APIREQ_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>

#include "apiwork.h"

struct lc_serve;

/* A request (libmicrohttpd's con_cls): its body, then, while its route
 * runs on a worker (connection suspended), the reply it leaves. */
struct lc_api_req {
  char *body;
  size_t len;
  int too_big;
  struct lc_work work; /* route_job, then wait_job for a wait */
  struct lc_serve *s;
  struct MHD_Connection *c;
  char *url, *method;
  int handed;                /* the route went to a worker */
  struct MHD_Response *resp; /* the reply left by the route (owned) */
  unsigned code;
  /* a wait: the run, what to answer, its d_runs row (owned) */
  char wait_run[65];
  int wait_kind, wait_misses;
  cJSON *wait_row;
  /* a WebSocket upgrade: its stream slot (until the upgrade takes it) */
  int ws_slot;
  char ws_tenant[128], ws_thread[65];
};

/* The request whose route runs on this thread (a worker): its replies are
 * left in it instead of queued. NULL on libmicrohttpd's threads. */
extern _Thread_local struct lc_api_req *lc_api_cur_rq;
/* Connections suspended and not resumed yet: none may be left when
 * libmicrohttpd stops (lc_api_stop waits for them). */
extern atomic_int lc_api_suspended;

/* Suspends c (counted); before the item that will resume it is queued. */
void lc_api_suspend(struct MHD_Connection *c);
void lc_api_resume(struct MHD_Connection *c);
/* Queues r (or leaves it for the request being routed); takes r. */
enum MHD_Result lc_api_send(struct MHD_Connection *c, unsigned code, struct MHD_Response *r);
/* Takes text (malloc'd). */
enum MHD_Result lc_api_reply_text(struct MHD_Connection *c, unsigned code, const char *type,
                                  char *text, size_t len);
/* Takes body (NULL: an empty reply); secrets scrubbed. */
enum MHD_Result lc_api_reply_json(struct MHD_Connection *c, unsigned code, cJSON *body);
/* {"detail": msg}; counts an HTTP error. */
enum MHD_Result lc_api_reply_err(struct lc_serve *s, struct MHD_Connection *c, unsigned code,
                                 const char *msg);
/* From a worker: rq's connection goes back to libmicrohttpd with what the
 * route left; rq may be freed at once after. Returns LC_WORK_HANDED. */
int lc_api_hand_back(struct lc_api_req *rq);

#endif
