/* wsconn.c: the thread stream's WebSocket connections (wsconn.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apicmds.h"
#include "apireq.h"
#include "apisse.h"
#include "apiview.h"
#include "apiwork.h"
#include "lc.h"
#include "secrets.h"
#include "serve.h"
#include "ws.h"
#include "wsconn.h"

/* ---- the thread stream's WebSocket ----
 *
 * GET /threads/{id}/stream with Upgrade: websocket (the Agent Protocol's
 * WebSocket transport): after the 101, the socket is ours. One thread
 * (ws_loop) reads and writes every WebSocket: frames in (ws.c's parser),
 * frames out from a per-connection buffer. Commands and subscriptions run
 * on the workers (ws_job, the connection's parked item): the same
 * commands as POST /threads/{id}/commands plus subscription.subscribe /
 * unsubscribe, whose events are those of POST /threads/{id}/stream, one
 * text message each. Keep-alive: a ping when nothing came for a while; a
 * peer that answers nothing, a frame left half sent, or a reader too slow
 * for what is queued is cut off. */

enum { WS_MAX_SUBS = 8, WS_MAX_CMDS = 32, WS_OUT_CAP = 1 << 20, WS_FILL_BELOW = 256 << 10 };

struct wsc {
  struct lc_work work; /* ws_job; parked for the connection's life */
  struct lc_serve *s;
  struct MHD_UpgradeResponseHandle *urh;
  int fd;
  char tenant[128], thread[65];
  /* the loop's */
  struct lc_ws_parser p;
  double last_rx, ping_at, stall_at, shut_at;
  int ping_out, shut, dead;
  int closing; /* the loop queued a close: what comes in after is not read */
  unsigned char *pre; /* bytes read by libmicrohttpd past the request */
  size_t npre;
  struct wsc *lnext;
  /* under mu */
  pthread_mutex_t mu;
  unsigned char *out;
  size_t olen, ooff, ocap;
  char *cmds[WS_MAX_CMDS];
  size_t cmdlen[WS_MAX_CMDS];
  int ncmd, close_queued;
  /* the worker's (ws_job) */
  struct lc_stream *subs[WS_MAX_SUBS];
  char subid[WS_MAX_SUBS][16];
  int nextsub;
};

static struct {
  int ep, efd, stop, started;
  pthread_t th;
  pthread_mutex_t mu; /* pending */
  struct wsc *pending, *all;
} wl = {.ep = -1, .efd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void ws_wake(void) {
  uint64_t one = 1;
  ssize_t w = write(wl.efd, &one, sizeof one);
  (void)w;
}

/* Appends a frame (any thread; under x->mu); 1 if it did. After a close,
 * nothing. */
static int ws_put_locked(struct wsc *x, int op, const void *data, size_t len) {
  if (x->close_queued) return 0;
  if (x->ooff && x->ooff == x->olen) x->olen = x->ooff = 0;
  if (x->olen + len + 14 > x->ocap) {
    if (x->ooff) { /* the sent part goes first */
      memmove(x->out, x->out + x->ooff, x->olen - x->ooff);
      x->olen -= x->ooff;
      x->ooff = 0;
    }
    if (x->olen + len + 14 > x->ocap) {
      size_t cap = (x->olen + len + 14) * 2;
      unsigned char *b = realloc(x->out, cap);
      if (!b) return 0;
      x->out = b;
      x->ocap = cap;
    }
  }
  x->olen += lc_ws_frame(x->out + x->olen, op, data, len);
  if (op == LC_WS_OP_CLOSE) x->close_queued = 1;
  return 1;
}

static void ws_send(struct wsc *x, int op, const void *data, size_t len) {
  pthread_mutex_lock(&x->mu);
  int put = ws_put_locked(x, op, data, len);
  pthread_mutex_unlock(&x->mu);
  if (put) ws_wake();
}

static void ws_close(struct wsc *x, int code, const char *reason) {
  unsigned char b[125];
  size_t n = strlen(reason);
  if (n > sizeof b - 2) n = sizeof b - 2;
  b[0] = (unsigned char)(code >> 8);
  b[1] = (unsigned char)code;
  memcpy(b + 2, reason, n);
  ws_send(x, LC_WS_OP_CLOSE, b, n + 2);
}

static void ws_send_json(struct wsc *x, cJSON *o) {
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!t) return;
  lc_secrets_scrub(t, strlen(t) + 1, LC_SCRUB_JSON); /* never a secret */
  ws_send(x, LC_WS_OP_TEXT, t, strlen(t));
  cJSON_free(t);
}

/* Frees a closed connection (lc_work_kill: the loop let it go). */
static void ws_free(struct lc_work *w) {
  struct wsc *x = (struct wsc *)((char *)w - offsetof(struct wsc, work));
  for (int i = 0; i < WS_MAX_SUBS; i++)
    if (x->subs[i]) lc_stream_free(x->subs[i]);
  for (int i = 0; i < x->ncmd; i++) free(x->cmds[i]);
  lc_ws_parser_free(&x->p);
  free(x->pre);
  free(x->out);
  pthread_mutex_destroy(&x->mu);
  atomic_fetch_sub(&x->s->sse_clients, 1);
  free(x);
}

static cJSON *ws_subscribe(struct wsc *x, const cJSON *id, const cJSON *params) {
  const char *why = NULL;
  int ap = lc_stream_channels(params, &why);
  if (!ap) return lc_api_cmd_env(id, NULL, "invalid_argument", why);
  int k = 0;
  while (k < WS_MAX_SUBS && x->subs[k]) k++;
  if (k == WS_MAX_SUBS) return lc_api_cmd_env(id, NULL, "invalid_argument", "too many subscriptions");
  cJSON *row = lc_stream_thread_pick(x->s, x->tenant, x->thread);
  struct lc_stream *e = lc_stream_new(x->s, NULL, x->tenant, row, ap & lc_stream_channel_bit("messages") ? LC_STREAM_TOK_TUPLE : 0, 1,
                          NULL, ap, x->thread);
  cJSON_Delete(row);
  if (!e) return lc_api_cmd_env(id, NULL, "unknown_error", "out of memory");
  x->subs[k] = e;
  snprintf(x->subid[k], sizeof x->subid[k], "sub-%d", ++x->nextsub);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "subscriptionId", x->subid[k]);
  return lc_api_cmd_env(id, r, NULL, NULL);
}

static cJSON *ws_command(struct wsc *x, const char *text, size_t len) {
  cJSON *b = cJSON_ParseWithLength(text, len);
  if (!b) return lc_api_cmd_env(NULL, NULL, "invalid_argument", "a command is JSON");
  const cJSON *id = cJSON_GetObjectItem(b, "id");
  const char *m = jstr(b, "method");
  const cJSON *params = cJSON_GetObjectItem(b, "params");
  cJSON *env;
  if (!cJSON_IsNumber(id) || id->valuedouble < 0 || !m || (params && !cJSON_IsObject(params))) {
    env = lc_api_cmd_env(cJSON_IsNumber(id) ? id : NULL, NULL, "invalid_argument",
                  "a command is {\"id\": N, \"method\": M, \"params\": {...}}");
  } else if (!strcmp(m, "subscription.subscribe")) {
    env = ws_subscribe(x, id, params);
  } else if (!strcmp(m, "subscription.unsubscribe")) {
    const char *sid = jstr(params, "subscriptionId");
    int k = 0;
    while (k < WS_MAX_SUBS && !(x->subs[k] && sid && !strcmp(x->subid[k], sid))) k++;
    if (k == WS_MAX_SUBS) {
      env = lc_api_cmd_env(id, NULL, "no_such_subscription", "no such subscription");
    } else {
      lc_stream_free(x->subs[k]);
      x->subs[k] = NULL;
      env = lc_api_cmd_env(id, cJSON_CreateObject(), NULL, NULL);
    }
  } else {
    unsigned code = 0;
    char why[200];
    env = lc_api_command_exec(x->s, NULL, x->tenant, x->thread, b, &code, why, sizeof why);
    if (!env) env = lc_api_cmd_env(id, NULL, code == 404 ? "not_found" : "invalid_argument", why);
  }
  cJSON_Delete(b);
  return env;
}

/* A WebSocket's item (a worker): its commands, then its subscriptions'
 * new events while the client keeps up. */
static int ws_job(struct lc_work *w) {
  struct wsc *x = (struct wsc *)((char *)w - offsetof(struct wsc, work));
  char *cmds[WS_MAX_CMDS];
  size_t lens[WS_MAX_CMDS];
  pthread_mutex_lock(&x->mu);
  int n = x->ncmd;
  memcpy(cmds, x->cmds, sizeof cmds);
  memcpy(lens, x->cmdlen, sizeof lens);
  x->ncmd = 0;
  pthread_mutex_unlock(&x->mu);
  for (int i = 0; i < n; i++) {
    ws_send_json(x, ws_command(x, cmds[i], lens[i]));
    free(cmds[i]);
  }
  if (atomic_load(&x->s->stopping)) {
    ws_close(x, LC_WS_CLOSE_GOING_AWAY, "server stopping");
    return LC_WORK_KEEP;
  }
  for (int k = 0; k < WS_MAX_SUBS; k++) {
    struct lc_stream *e = x->subs[k];
    for (int round = 0; e && round < 4; round++) {
      pthread_mutex_lock(&x->mu);
      size_t pending = x->olen - x->ooff;
      pthread_mutex_unlock(&x->mu);
      if (pending > WS_FILL_BELOW) break; /* the next tick, once it drained */
      lc_stream_fill(e);
      if (!e->len) break;
      for (size_t off = 0; off < e->len;) {
        size_t m = strlen(e->buf + off);
        ws_send(x, LC_WS_OP_TEXT, e->buf + off, m);
        off += m + 1;
      }
      e->len = e->off = 0;
    }
  }
  return LC_WORK_KEEP;
}

/* The loop lets a connection go: libmicrohttpd closes its socket; the
 * loop's sweep frees it (lc_work_kill) once it is off the list. */
static void ws_finish(struct wsc *x) {
  epoll_ctl(wl.ep, EPOLL_CTL_DEL, x->fd, NULL);
  x->dead = 1;
  MHD_upgrade_action(x->urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* Received bytes (the loop). */
static void ws_input(struct wsc *x, const unsigned char *b, size_t n) {
  x->last_rx = lc_api_mono();
  x->ping_out = 0;
  if (x->shut || x->closing) return; /* after our close: only waiting for theirs */
  while (n) {
    size_t used = 0;
    int rc = lc_ws_feed(&x->p, b, n, &used);
    b += used;
    n -= used;
    if (rc < 0) {
      x->closing = 1;
      ws_close(x, -rc, -rc == LC_WS_CLOSE_TOO_BIG ? "message too big"
                       : -rc == LC_WS_CLOSE_BAD_DATA ? "invalid UTF-8"
                                                     : "protocol error");
      return;
    }
    if (rc == LC_WS_NEED) break;
    if (rc == LC_WS_PING) {
      ws_send(x, LC_WS_OP_PONG, x->p.data, x->p.len);
    } else if (rc == LC_WS_CLOSED) {
      int code = x->p.close_code ? x->p.close_code : LC_WS_CLOSE_NORMAL;
      x->closing = 1;
      ws_close(x, code, ""); /* the echo (RFC 6455 5.5.1) */
      return;
    } else if (rc == LC_WS_MESSAGE) {
      if (x->p.op != LC_WS_OP_TEXT) {
        x->closing = 1;
        ws_close(x, LC_WS_CLOSE_UNSUPPORTED, "commands are text");
        return;
      }
      pthread_mutex_lock(&x->mu);
      int full = x->ncmd == WS_MAX_CMDS;
      char *t = full ? NULL : malloc(x->p.len + 1);
      if (t) {
        memcpy(t, x->p.data, x->p.len);
        t[x->p.len] = 0;
        x->cmdlen[x->ncmd] = x->p.len;
        x->cmds[x->ncmd++] = t;
      }
      pthread_mutex_unlock(&x->mu);
      if (!t) {
        x->closing = 1;
        ws_close(x, LC_WS_CLOSE_POLICY, "too many commands pending");
        return;
      }
      lc_work_kick(&x->work);
    }
  }
}

/* Reads what there is (the loop); 0, or -1 when the connection is done. */
static int ws_read(struct wsc *x) {
  unsigned char b[16384];
  if (x->shut == 2) return 0; /* the peer is gone: only our close to send */
  for (int i = 0; i < 4; i++) {
    ssize_t k = recv(x->fd, b, sizeof b, 0);
    if (k > 0) {
      ws_input(x, b, (size_t)k);
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (k < 0 && errno == EINTR) continue;
    /* EOF or an error. A frame cut short is a protocol error; a close we
     * queued still goes out (the peer may only have half closed). */
    if (k == 0 && !x->shut) {
      if (!x->closing && lc_ws_mid_frame(&x->p)) {
        x->closing = 1;
        ws_close(x, LC_WS_CLOSE_PROTOCOL, "truncated frame");
      }
      if (x->closing) {
        x->shut_at = lc_api_mono();
        x->shut = 2; /* done once it is out */
        return 0;
      }
    }
    return -1;
  }
  return 0;
}

/* Sends what is queued, keeps time (the loop); 0, or -1: done. Stopping,
 * a client gets 2 s at most to take the rest. */
static int ws_service(struct wsc *x, double now, int stop) {
  struct lc_serve *s = x->s;
  double limit = stop && s->conn_timeout_s > 2 ? 2 : s->conn_timeout_s;
  double every = s->conn_timeout_s / 2.0 < 15 ? s->conn_timeout_s / 2.0 : 15;
  if (!x->shut && !x->ping_out && now - x->last_rx >= every) {
    ws_send(x, LC_WS_OP_PING, "", 0);
    x->ping_out = 1;
    x->ping_at = now;
  }
  if (!x->shut && x->ping_out && now - x->ping_at > (s->conn_timeout_s > every ? s->conn_timeout_s : every))
    return -1; /* nothing came back */
  if (!x->shut && !x->closing && lc_ws_mid_frame(&x->p) && now - x->last_rx > s->conn_timeout_s) {
    x->closing = 1;
    ws_close(x, LC_WS_CLOSE_PROTOCOL, "incomplete frame");
  }
  pthread_mutex_lock(&x->mu);
  int err = 0;
  while (x->ooff < x->olen) {
    ssize_t k = send(x->fd, x->out + x->ooff, x->olen - x->ooff, MSG_NOSIGNAL);
    if (k > 0) {
      x->ooff += (size_t)k;
      x->stall_at = now;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    err = 1;
    break;
  }
  size_t pending = x->olen - x->ooff;
  int closed = x->close_queued;
  pthread_mutex_unlock(&x->mu);
  if (err) return -1;
  if (!pending) x->stall_at = now;
  if (pending && now - x->stall_at > limit) return -1; /* a slow client */
  if (closed && !pending && x->shut != 1) {
    /* Our close is out: the peer's close, or its EOF, ends it. */
    shutdown(x->fd, SHUT_WR);
    if (!x->shut) x->shut_at = now;
    if (x->shut == 2) return -1;
    x->shut = 1;
  }
  if (x->shut == 1 && now - x->shut_at > 2) return -1;
  struct epoll_event ev = {.events = (pending ? EPOLLOUT : 0) |
                                     (pending > WS_OUT_CAP || x->shut == 2 ? 0 : EPOLLIN),
                           .data.ptr = x};
  epoll_ctl(wl.ep, EPOLL_CTL_MOD, x->fd, &ev);
  return 0;
}

static void *ws_loop(void *arg) {
  (void)arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(wl.ep, evs, 64, 100);
    double now = lc_api_mono();
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) {
        uint64_t v;
        ssize_t r = read(wl.efd, &v, sizeof v);
        (void)r;
        continue;
      }
      struct wsc *x = evs[i].data.ptr;
      if (x->dead) continue;
      if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && ws_read(x) < 0) ws_finish(x);
    }
    pthread_mutex_lock(&wl.mu);
    struct wsc *add = wl.pending;
    wl.pending = NULL;
    int stop = wl.stop;
    pthread_mutex_unlock(&wl.mu);
    while (add) {
      struct wsc *x = add;
      add = x->lnext;
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = x};
      x->lnext = wl.all;
      wl.all = x;
      if (epoll_ctl(wl.ep, EPOLL_CTL_ADD, x->fd, &ev)) {
        ws_finish(x);
        continue;
      }
      if (x->npre) ws_input(x, x->pre, x->npre);
      lc_work_park(&x->work); /* subscriptions follow run changes */
    }
    for (struct wsc **pp = &wl.all; *pp;) {
      struct wsc *x = *pp;
      if (!x->dead && stop) ws_close(x, LC_WS_CLOSE_GOING_AWAY, "server stopping");
      if (!x->dead && ws_service(x, now, stop) < 0) ws_finish(x);
      if (x->dead) {
        *pp = x->lnext;
        lc_work_kill(&x->work); /* now, or after its run on a worker */
        continue;
      }
      pp = &x->lnext;
    }
    if (stop && !wl.all) break;
  }
  return NULL;
}

/* libmicrohttpd's upgrade callback (its thread): the socket is ours. */
static void ws_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                        size_t nextra, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
  (void)c;
  struct lc_serve *s = cls;
  struct lc_api_req *rq = con_cls;
  struct wsc *x = calloc(1, sizeof *x);
  if (x && nextra && !(x->pre = malloc(nextra))) {
    free(x);
    x = NULL;
  }
  if (!x || !rq) {
    free(x);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    return; /* the stream slot goes back in completed() */
  }
  rq->ws_slot = 0; /* the connection's now */
  x->s = s;
  x->urh = urh;
  x->fd = sock;
  snprintf(x->tenant, sizeof x->tenant, "%s", rq->ws_tenant);
  snprintf(x->thread, sizeof x->thread, "%s", rq->ws_thread);
  if (nextra) memcpy(x->pre, extra, nextra);
  x->npre = nextra;
  pthread_mutex_init(&x->mu, NULL);
  lc_ws_parser_init(&x->p, (size_t)s->max_body);
  x->last_rx = x->stall_at = lc_api_mono();
  x->work.run = ws_job;
  x->work.free_fn = ws_free;
  int fl = fcntl(sock, F_GETFL);
  if (fl >= 0) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
  pthread_mutex_lock(&wl.mu);
  x->lnext = wl.pending;
  wl.pending = x;
  pthread_mutex_unlock(&wl.mu);
  ws_wake();
}

static int header_has(struct MHD_Connection *c, const char *h, const char *token) {
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, h);
  size_t n = strlen(token);
  for (const char *p = v; p && *p; p++)
    if (!strncasecmp(p, token, n) && (p == v || strchr(" ,\t", p[-1])) &&
        (!p[n] || strchr(" ,\t", p[n])))
      return 1;
  return 0;
}

int lc_wsconn_is_upgrade(struct MHD_Connection *c) { return header_has(c, "Upgrade", "websocket"); }

/* GET /threads/{id}/stream with Upgrade: websocket (a worker). The thread
 * may not exist yet (run.start creates it) unless another tenant has it. */
enum MHD_Result lc_wsconn_upgrade(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *tenant, const char *thread) {
  const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
  const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
  if (!header_has(c, "Connection", "upgrade") || !key || strlen(key) != 24)
    return lc_api_reply_err(s, c, 400, "a WebSocket upgrade needs Connection: Upgrade and a "
                                "Sec-WebSocket-Key");
  if (!ver || strcmp(ver, "13")) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Sec-WebSocket-Version", "13");
    atomic_fetch_add(&s->http_errors, 1);
    return lc_api_send(c, 426, r);
  }
  cJSON *t = lc_api_thread_row(s, tenant, thread);
  if (!t) {
    cJSON *ex = lc_api_query(s, "SELECT tenant FROM d_threads WHERE id=?", "s", thread);
    int taken = cJSON_GetArraySize(ex) > 0; /* another tenant's: not told */
    cJSON_Delete(ex);
    if (taken || strlen(thread) > 64) return lc_api_reply_err(s, c, 404, "thread not found");
  }
  cJSON_Delete(t);
  if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
    atomic_fetch_sub(&s->sse_clients, 1);
    atomic_fetch_add(&s->streams_rejected, 1);
    return lc_api_reply_err(s, c, 503, "too many streams open: retry later");
  }
  struct lc_api_req *rq = lc_api_cur_rq;
  rq->ws_slot = 1; /* given back by completed() unless the upgrade takes it */
  snprintf(rq->ws_tenant, sizeof rq->ws_tenant, "%s", tenant);
  snprintf(rq->ws_thread, sizeof rq->ws_thread, "%s", thread);
  char acc[29];
  lc_ws_accept(key, acc);
  struct MHD_Response *r = MHD_create_response_for_upgrade(ws_upgraded, s);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Upgrade", "websocket");
  MHD_add_response_header(r, "Sec-WebSocket-Accept", acc);
  return lc_api_send(c, 101, r);
}

int lc_wsconn_start(struct lc_serve *s, char *err, size_t n) {
  (void)s;
  wl.stop = 0;
  wl.ep = epoll_create1(EPOLL_CLOEXEC);
  wl.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (wl.ep < 0 || wl.efd < 0 || epoll_ctl(wl.ep, EPOLL_CTL_ADD, wl.efd, &ev) ||
      pthread_create(&wl.th, NULL, ws_loop, NULL)) {
    snprintf(err, n, "cannot start the WebSocket loop");
    if (wl.ep >= 0) close(wl.ep);
    if (wl.efd >= 0) close(wl.efd);
    wl.ep = wl.efd = -1;
    return LC_EIO;
  }
  wl.started = 1;
  return 0;
}

/* Closes every WebSocket (1001) and ends the loop. */
void lc_wsconn_stop(void) {
  if (!wl.started) return;
  pthread_mutex_lock(&wl.mu);
  wl.stop = 1;
  pthread_mutex_unlock(&wl.mu);
  ws_wake();
  pthread_join(wl.th, NULL);
  wl.started = 0;
  close(wl.ep);
  close(wl.efd);
  wl.ep = wl.efd = -1;
}
