/* apireq.c: a request's reply and its connection's suspension (apireq.h). */
#include <stdlib.h>
#include <string.h>

#include "apireq.h"
#include "secrets.h"
#include "serve.h"

/* The request whose route runs on this thread (a worker): its replies are
 * left in it instead of queued (libmicrohttpd queues a reply only from its
 * own callbacks). NULL on libmicrohttpd's threads. */
_Thread_local struct lc_api_req *lc_api_cur_rq;
/* Connections this file suspended and has not resumed yet: none may be
 * left when libmicrohttpd stops. */
atomic_int lc_api_suspended;

void lc_api_suspend(struct MHD_Connection *c) {
  atomic_fetch_add(&lc_api_suspended, 1);
  MHD_suspend_connection(c);
}

void lc_api_resume(struct MHD_Connection *c) {
  MHD_resume_connection(c);
  atomic_fetch_sub(&lc_api_suspended, 1);
}

/* Queues r (or leaves it for the request being routed); takes r. */
enum MHD_Result lc_api_send(struct MHD_Connection *c, unsigned code,
                                 struct MHD_Response *r) {
  if (lc_api_cur_rq) {
    if (lc_api_cur_rq->resp) MHD_destroy_response(lc_api_cur_rq->resp);
    lc_api_cur_rq->resp = r;
    lc_api_cur_rq->code = code;
    return MHD_YES;
  }
  enum MHD_Result ok = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ok;
}

/* ---- replies ---- */

enum MHD_Result lc_api_reply_text(struct MHD_Connection *c, unsigned code, const char *type,
                                  char *text, size_t len) {
  /* takes ownership of text (malloc'd) */
  struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", type);
  return lc_api_send(c, code, r);
}

/* Takes ownership of body (NULL: an empty 204-style reply). */
enum MHD_Result lc_api_reply_json(struct MHD_Connection *c, unsigned code, cJSON *body) {
  if (!body) return lc_api_reply_text(c, code, "application/json", strdup(""), 0);
  char *t = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (!t) return MHD_NO;
  size_t n = lc_secrets_scrub(t, strlen(t), LC_SCRUB_JSON);
  char *m = malloc(n + 1);
  if (m) memcpy(m, t, n + 1);
  cJSON_free(t);
  return m ? lc_api_reply_text(c, code, "application/json", m, n) : MHD_NO;
}

enum MHD_Result lc_api_reply_err(struct lc_serve *s, struct MHD_Connection *c, unsigned code,
                                 const char *msg) {
  atomic_fetch_add(&s->http_errors, 1);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "detail", msg);
  return lc_api_reply_json(c, code, o);
}

/* The route's connection goes back to libmicrohttpd with what the route
 * left (a worker, the request's item; it may be freed at once after). */
int lc_api_hand_back(struct lc_api_req *rq) {
  lc_work_unpark(&rq->work);
  lc_api_resume(rq->c);
  return LC_WORK_HANDED;
}
