/* api.c: the HTTP side of `luact serve`: libmicrohttpd's daemon, each
 * request's life (its body, its route on a worker, its reply), bearer auth
 * by tenant, the dispatch to the route families and the routes that need
 * no store (/healthz, /readyz, /info).
 *
 * Event-driven: libmicrohttpd's few polling threads (epoll, a small pool)
 * only move bytes. A request's route runs on a worker of apiwork.c while
 * its connection is suspended; the reply is queued when it resumes
 * (apireq.h). A wait or a stream holds no thread: it is a parked item
 * (apiwork.h) that looks again on every run change and every 250 ms
 * (apiruns.c, apisse.c). WebSockets live on one thread of their own after
 * the upgrade (wsconn.c). Store reads and commits happen on workers only,
 * in bounded batches. Runs execute on threads of their own (daemon.c);
 * nothing here touches a Lua state. Limits: --max-conns is libmicrohttpd's
 * connection limit, and streams, waits and WebSockets together stay under
 * --max-streams (< --max-conns), so /healthz and run creation always find
 * a connection.
 *
 * The routes, by file: apiagents.c (agents, assistants), apithreads.c
 * (threads, their state and history), apiruns.c (runs and waits),
 * apicmds.c (the protocol's thread commands), apisse.c (streams; token
 * deltas in apideltas.c), apistore.c (LangGraph's store), apimetrics.c
 * (/metrics), wsconn.c (the WebSocket); apiview.c shows rows as JSON. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "apiagents.h"
#include "apimetrics.h"
#include "apireq.h"
#include "apiruns.h"
#include "apistore.h"
#include "apithreads.h"
#include "apiview.h"
#include "apiwork.h"
#include "lc.h"
#include "serve.h"
#include "wsconn.h"

/* ---- auth ---- */

static const char *tenant_of(struct lc_serve *s, struct MHD_Connection *c) {
  if (s->no_auth) return "default";
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7)) return NULL;
  const char *tok = h + 7;
  size_t n = strlen(tok);
  const char *found = NULL;
  for (int i = 0; i < s->ntokens; i++) {
    const char *t = s->tokens[i].token;
    size_t m = strlen(t);
    unsigned char diff = (unsigned char)(m != n);
    for (size_t k = 0; k < n && k < m; k++) diff |= (unsigned char)(t[k] ^ tok[k]);
    if (!diff) found = s->tokens[i].tenant;
  }
  return found;
}

static enum MHD_Result route(struct lc_serve *s, struct MHD_Connection *c, const char *url,
                             const char *method, struct lc_api_req *rq) {
  atomic_fetch_add(&s->http_requests, 1);
  if (!strcmp(url, "/healthz")) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    return lc_api_reply_json(c, 200, o);
  }
  const char *tenant = tenant_of(s, c);
  if (!tenant) {
    atomic_fetch_add(&s->auth_rejected, 1);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof "{\"detail\":\"a valid bearer token is required\"}" - 1,
        (void *)"{\"detail\":\"a valid bearer token is required\"}", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    MHD_add_response_header(r, "Content-Type", "application/json");
    atomic_fetch_add(&s->http_errors, 1);
    return lc_api_send(c, 401, r);
  }
  if (!strcmp(url, "/readyz")) {
    int ok = atomic_load(&s->ready) && lc_dstore_ping(s->ds) == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ok ? "ready" : "not ready");
    return lc_api_reply_json(c, ok ? 200 : 503, o);
  }
  if (!strcmp(url, "/metrics")) return lc_api_metrics(s, c);
  if (!strcmp(url, "/info") || !strcmp(url, "/ok")) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", LUACT_VERSION);
    cJSON_AddBoolToObject(o, "ok", 1);
    return lc_api_reply_json(c, 200, o);
  }
  /* Segments of the path (no percent-decoding needed: ids are plain). */
  char path[1024];
  snprintf(path, sizeof path, "%s", url);
  char *seg[16];
  int nseg = 0;
  for (char *p = strtok(path, "/"); p && nseg < 16; p = strtok(NULL, "/")) seg[nseg++] = p;
  if (!nseg) return lc_api_reply_err(s, c, 404, "no such route");
  cJSON *body = NULL;
  int body_ok = 1;
  if (rq->len) {
    body = cJSON_ParseWithLength(rq->body, rq->len);
    body_ok = body != NULL;
  }
  enum MHD_Result res;
  if (!strcmp(seg[0], "agents") || !strcmp(seg[0], "assistants")) {
    if (!body_ok) res = lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    else res = lc_api_agent_routes(s, c, method, seg, nseg, body);
  } else if (!strcmp(seg[0], "threads")) {
    res = lc_api_thread_routes(s, c, method, seg, nseg, tenant, body, body_ok);
  } else if (!strcmp(seg[0], "runs")) {
    res = lc_api_run_routes(s, c, method, seg + 1, nseg - 1, tenant, NULL, body, body_ok);
  } else if (!strcmp(seg[0], "store")) {
    if (!body_ok) res = lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    else res = lc_api_store_routes(s, c, method, seg, nseg, tenant, body);
  } else {
    res = lc_api_reply_err(s, c, 404, "no such route");
  }
  cJSON_Delete(body);
  return res;
}

/* A route on a worker, its connection suspended (handler). */
static int route_job(struct lc_work *w) {
  struct lc_api_req *rq = (struct lc_api_req *)((char *)w - offsetof(struct lc_api_req, work));
  lc_api_cur_rq = rq;
  enum MHD_Result r = route(rq->s, rq->c, rq->url, rq->method, rq);
  lc_api_cur_rq = NULL;
  if (rq->work.want_park) return LC_WORK_KEEP; /* a wait: parked (wait_job) */
  if (r != MHD_YES && rq->resp) { /* the connection is to be closed */
    MHD_destroy_response(rq->resp);
    rq->resp = NULL;
  }
  return lc_api_hand_back(rq);
}

/* Routes answered on libmicrohttpd's thread: no store, no lock held long. */
static int inline_route(const char *url) {
  return !strcmp(url, "/healthz") || !strcmp(url, "/info") || !strcmp(url, "/ok");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)version;
  struct lc_serve *s = cls;
  struct lc_api_req *rq = *con_cls;
  if (!rq) {
    rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    *con_cls = rq;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && atol(cl) > s->max_body) rq->too_big = 1;
    return MHD_YES;
  }
  if (rq->handed) {
    /* Resumed: the route ran on a worker and left its reply (none: it
     * failed, and the connection is closed). */
    if (!rq->resp) return MHD_NO;
    struct MHD_Response *r = rq->resp;
    rq->resp = NULL;
    enum MHD_Result ok = MHD_queue_response(c, rq->code, r);
    MHD_destroy_response(r);
    return ok;
  }
  if (*upload_size) {
    if (!rq->too_big && rq->len + *upload_size > (size_t)s->max_body) {
      rq->too_big = 1;
      free(rq->body);
      rq->body = NULL;
      rq->len = 0;
    }
    if (!rq->too_big) {
      char *b = realloc(rq->body, rq->len + *upload_size + 1);
      if (!b) return MHD_NO;
      memcpy(b + rq->len, upload, *upload_size);
      rq->body = b;
      rq->len += *upload_size;
      b[rq->len] = 0;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (rq->too_big) {
    atomic_fetch_add(&s->body_rejected, 1);
    return lc_api_reply_err(s, c, 413, "the request body is over --max-body");
  }
  if (atomic_load(&s->stopping)) return lc_api_reply_err(s, c, 503, "shutting down");
  if (inline_route(url)) return route(s, c, url, method, rq);
  rq->s = s;
  rq->c = c;
  rq->url = strdup(url);
  rq->method = strdup(method);
  if (!rq->url || !rq->method) return MHD_NO;
  rq->handed = 1;
  rq->work.run = route_job;
  lc_api_suspend(c); /* before the submit: only then may a worker resume it */
  lc_work_submit(&rq->work);
  return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  struct lc_api_req *rq = *con_cls;
  if (rq) {
    free(rq->body);
    free(rq->url);
    free(rq->method);
    if (rq->resp) MHD_destroy_response(rq->resp);
    cJSON_Delete(rq->wait_row);
    if (rq->ws_slot) atomic_fetch_sub(&rq->s->sse_clients, 1); /* never upgraded */
    free(rq);
  }
  *con_cls = NULL;
}

static unsigned pool_size(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 2 ? 2 : n > 4 ? 4 : (unsigned)n;
}

int lc_api_start(struct lc_serve *s, char *err, size_t n) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)s->port);
  inet_pton(AF_INET, s->host, &a.sin_addr);
  int rc = lc_work_start(s, s->http_workers > 0 ? s->http_workers : 16, err, n);
  if (rc) return rc;
  if ((rc = lc_wsconn_start(s, err, n))) {
    lc_work_stop();
    return rc;
  }
  /* A few polling threads with epoll; suspend/resume for streams and
   * waits; upgrade for the WebSocket. */
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
          MHD_ALLOW_UPGRADE | MHD_USE_ITC,
      (uint16_t)s->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
      MHD_OPTION_THREAD_POOL_SIZE, pool_size(), MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)s->max_conns, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->conn_timeout_s,
      MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
      MHD_OPTION_END);
  if (!d) {
    snprintf(err, n, "cannot listen on %s:%d", s->host, s->port);
    lc_wsconn_stop();
    lc_work_stop();
    return LC_EIO;
  }
  s->http = d;
  if (s->port == 0) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (i) s->port = i->port;
  }
  return 0;
}

void lc_api_quiesce(struct lc_serve *s) {
  if (s->http) {
    MHD_socket fd = MHD_quiesce_daemon(s->http);
    (void)fd; /* closed by MHD_stop_daemon */
  }
}

void lc_api_stop(struct lc_serve *s) {
  if (!s->http) return;
  /* stopping is set: parked streams end, waits answer, WebSockets close
   * (1001). libmicrohttpd may not stop with a connection suspended. */
  lc_wsconn_stop();
  for (int i = 0; i < 400 && atomic_load(&lc_api_suspended) > 0; i++) {
    lc_work_kick_all();
    lc_serve_wait_change(s, 25);
  }
  if (atomic_load(&lc_api_suspended) > 0) {
    /* libmicrohttpd would abort: leave it to the process's exit. */
    lc_serve_log(s, "error", "http_stop", NULL, "connections still suspended");
    s->http = NULL;
    return;
  }
  MHD_stop_daemon(s->http);
  s->http = NULL;
  lc_work_stop();
}
