/* mcp_httpd.c: `luact mcp serve --http`: libmicrohttpd in external-epoll
 * mode on our loop, loaded with dlopen, one suspended connection per
 * request until the script answers it (or streams SSE events before it). */
#include "mcp_httpd.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "lc.h"
#include "loop.h"
#include "secrets.h"

static struct {
  struct MHD_Daemon *(*start_daemon)(unsigned int, uint16_t,
                                     MHD_AcceptPolicyCallback, void *,
                                     MHD_AccessHandlerCallback, void *, ...);
  void (*stop_daemon)(struct MHD_Daemon *);
  const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *,
                                                 enum MHD_DaemonInfoType, ...);
  enum MHD_Result (*run)(struct MHD_Daemon *);
  enum MHD_Result (*get_timeout)(struct MHD_Daemon *, MHD_UNSIGNED_LONG_LONG *);
  const char *(*lookup)(struct MHD_Connection *, enum MHD_ValueKind,
                        const char *);
  enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned int,
                                    struct MHD_Response *);
  void (*suspend)(struct MHD_Connection *);
  void (*resume)(struct MHD_Connection *);
  struct MHD_Response *(*from_buffer)(size_t, void *,
                                      enum MHD_ResponseMemoryMode);
  struct MHD_Response *(*from_callback)(uint64_t, size_t,
                                        MHD_ContentReaderCallback, void *,
                                        MHD_ContentReaderFreeCallback);
  void (*destroy_response)(struct MHD_Response *);
  enum MHD_Result (*add_header)(struct MHD_Response *, const char *,
                                const char *);
} mhd;
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static int mhd_ok;
static char mhd_err[256];

static void mhd_load(void) {
  void *h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(mhd_err, sizeof mhd_err, "cannot load libmicrohttpd: %s", dlerror());
    return;
  }
#define SYM(field, name)                                            \
  if (!(*(void **)&mhd.field = dlsym(h, name))) {                   \
    snprintf(mhd_err, sizeof mhd_err, "libmicrohttpd has no %s", name); \
    return;                                                         \
  }
  SYM(start_daemon, "MHD_start_daemon");
  SYM(stop_daemon, "MHD_stop_daemon");
  SYM(get_daemon_info, "MHD_get_daemon_info");
  SYM(run, "MHD_run");
  SYM(get_timeout, "MHD_get_timeout");
  SYM(lookup, "MHD_lookup_connection_value");
  SYM(queue_response, "MHD_queue_response");
  SYM(suspend, "MHD_suspend_connection");
  SYM(resume, "MHD_resume_connection");
  SYM(from_buffer, "MHD_create_response_from_buffer");
  SYM(from_callback, "MHD_create_response_from_callback");
  SYM(destroy_response, "MHD_destroy_response");
  SYM(add_header, "MHD_add_response_header");
#undef SYM
  mhd_ok = 1;
}

/* One POST: its body, then (after the script answers) its response. */
struct hreq {
  struct hreq *next, **prev;
  struct lc_mcp_httpd *h;
  struct MHD_Connection *conn;
  long id;
  struct lc_buf body;
  int status; /* answer ready when non-zero */
  char *answer;
  size_t answer_len;
  int delivered, suspended, too_big;
  /* An SSE answer (lc_mcp_httpd_event): events not yet read by MHD, and
   * whether the last one (the answer) is in. */
  int streaming, queued, finished;
  struct lc_buf out;
  size_t out_off;
  char *session; /* Mcp-Session-Id of the answer, or NULL */
};

struct lc_mcp_httpd {
  struct lc_loop *loop;
  struct MHD_Daemon *d;
  struct lc_fdwatch w;
  struct lc_timer timer;
  char *token;
  size_t max_body;
  lc_mcp_httpd_fn on_msg;
  void *ud;
  long next_id;
  struct hreq *reqs; /* delivered, waiting for their answer */
  int port;
  int running; /* inside MHD_run */
};

static void kick(struct lc_mcp_httpd *h);
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max);

static enum MHD_Result respond(struct MHD_Connection *c, int status,
                               const char *body, size_t n, int json,
                               const char *session) {
  struct MHD_Response *r =
      mhd.from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  if (json) mhd.add_header(r, "Content-Type", "application/json");
  if (session) mhd.add_header(r, "Mcp-Session-Id", session);
  if (status == 401) mhd.add_header(r, "WWW-Authenticate", "Bearer");
  enum MHD_Result rc = mhd.queue_response(c, (unsigned)status, r);
  mhd.destroy_response(r);
  return rc;
}

/* Constant-time comparison: the token must not leak through timing. */
static int token_ok(const struct lc_mcp_httpd *h, const char *auth) {
  if (!auth || strncasecmp(auth, "Bearer ", 7)) return 0;
  const char *t = auth + 7;
  size_t a = strlen(t), b = strlen(h->token);
  unsigned char diff = (unsigned char)(a != b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)(t[i < a ? i : 0] ^ h->token[i]);
  return diff == 0;
}

/* A browser page must not reach a loopback server (DNS rebinding): only
 * loopback origins, or none (non-browser clients). */
static int origin_ok(const char *o) {
  if (!o) return 1;
  return !strncmp(o, "http://127.0.0.1", 16) || !strncmp(o, "http://localhost", 16) ||
         !strncmp(o, "http://[::1]", 12);
}

/* A request header the script may see: bounded (it is the client's); an
 * over-long one is "", which names no session and no event. */
static const char *header(struct MHD_Connection *c, const char *name) {
  const char *v = mhd.lookup(c, MHD_HEADER_KIND, name);
  return v && strlen(v) > 200 ? "" : v;
}

static void hreq_unlink(struct hreq *r) {
  if (!r->prev) return;
  *r->prev = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = NULL;
  r->next = NULL;
}

/* MHD access handler (inside MHD_run, from our loop): never calls Lua;
 * on_msg only queues for the script. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls) {
  struct lc_mcp_httpd *h = cls;
  struct hreq *r = *con_cls;
  if (!r) {
    if (strcmp(url, "/mcp")) return respond(c, 404, "", 0, 0, NULL);
    if (!origin_ok(mhd.lookup(c, MHD_HEADER_KIND, "Origin")))
      return respond(c, 403, "", 0, 0, NULL);
    if (!token_ok(h, mhd.lookup(c, MHD_HEADER_KIND, "Authorization")))
      return respond(c, 401, "", 0, 0, NULL);
    /* GET (a session's stream) and DELETE (its end) go to the script
     * too, which answers 405 when it has no session for them. */
    if (strcmp(method, "POST") && strcmp(method, "GET") && strcmp(method, "DELETE"))
      return respond(c, 405, "", 0, 0, NULL);
    r = lc_calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->h = h;
    r->conn = c;
    lc_buf_init(&r->body, h->max_body);
    lc_buf_init(&r->out, h->max_body); /* a client that does not read */
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!r->too_big && lc_buf_append(&r->body, upload, *upload_size) < 0)
      r->too_big = 1;
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->too_big) return respond(c, 413, "", 0, 0, NULL);
  if (r->streaming) {
    if (r->queued) return MHD_YES;
    r->queued = 1;
    struct MHD_Response *resp =
        mhd.from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, r, NULL);
    if (!resp) return MHD_NO;
    mhd.add_header(resp, "Content-Type", "text/event-stream");
    mhd.add_header(resp, "Cache-Control", "no-cache");
    if (r->session) mhd.add_header(resp, "Mcp-Session-Id", r->session);
    enum MHD_Result rc = mhd.queue_response(c, 200, resp);
    mhd.destroy_response(resp);
    return rc;
  }
  if (r->status) {
    enum MHD_Result rc = respond(c, r->status, r->answer ? r->answer : "",
                                 r->answer_len, r->status != 202 && r->answer_len,
                                 r->session);
    return rc;
  }
  if (r->delivered) return MHD_YES; /* resumed without an answer: wait */
  r->delivered = 1;
  r->id = ++h->next_id;
  r->next = h->reqs;
  r->prev = &h->reqs;
  if (h->reqs) h->reqs->prev = &r->next;
  h->reqs = r;
  mhd.suspend(c);
  r->suspended = 1;
  struct lc_mcp_httpd_msg m = {
      .method = method,
      .session = header(c, "Mcp-Session-Id"),
      .last_event_id = header(c, "Last-Event-ID"),
      .body = r->body.data ? r->body.data : "",
      .n = r->body.len,
  };
  h->on_msg(h->ud, r->id, &m);
  return MHD_YES;
}

/* MHD content reader for an SSE answer (inside MHD_run): what is
 * buffered, else the end once the answer went, else the connection is
 * suspended until the next event resumes it. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct hreq *r = cls;
  (void)pos;
  if (r->out_off < r->out.len) {
    size_t k = r->out.len - r->out_off;
    if (k > max) k = max;
    memcpy(buf, r->out.data + r->out_off, k);
    r->out_off += k;
    if (r->out_off == r->out.len) r->out_off = r->out.len = 0;
    return (ssize_t)k;
  }
  if (r->finished) return MHD_CONTENT_READER_END_OF_STREAM;
  mhd.suspend(r->conn);
  r->suspended = 1;
  return 0;
}

/* MHD completion: the connection is done with this request. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  struct hreq *r = *con_cls;
  if (!r) return;
  hreq_unlink(r);
  lc_buf_free(&r->body);
  lc_buf_free(&r->out);
  lc_free(r->answer);
  lc_free(r->session);
  lc_free(r);
  *con_cls = NULL;
}

static void run_now(struct lc_mcp_httpd *h) {
  if (h->running) return;
  h->running = 1;
  mhd.run(h->d);
  h->running = 0;
  kick(h);
}

/* Watcher of MHD's epoll fd (from the loop). */
static void on_fd(struct lc_loop *loop, struct lc_fdwatch *w, unsigned ev) {
  run_now(w->ud);
}

/* MHD's own timeouts, and a pass after a resume (from the loop). */
static void on_timer(struct lc_loop *loop, struct lc_timer *t) {
  run_now(t->ud);
}

static void kick(struct lc_mcp_httpd *h) {
  MHD_UNSIGNED_LONG_LONG ms = 0;
  if (mhd.get_timeout(h->d, &ms) == MHD_YES)
    lc_timer_start(h->loop, &h->timer, (double)(ms > 60000 ? 60000 : ms));
  else lc_timer_stop(h->loop, &h->timer);
}

int lc_mcp_httpd_start(struct lc_loop *loop, int port, const char *token,
                       size_t max_body, lc_mcp_httpd_fn on_msg, void *ud,
                       struct lc_mcp_httpd **out, char *err, size_t errlen) {
  *out = NULL;
  if (!token || strlen(token) < 16) {
    snprintf(err, errlen, "a bearer token of at least 16 characters is required");
    return LC_EINVAL;
  }
  pthread_once(&mhd_once, mhd_load);
  if (!mhd_ok) {
    snprintf(err, errlen, "%s", mhd_err);
    return LC_EIO;
  }
  struct lc_mcp_httpd *h = lc_calloc(1, sizeof *h);
  if (!h || !(h->token = lc_strdup(token))) {
    lc_free(h);
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  h->loop = loop;
  h->on_msg = on_msg;
  h->ud = ud;
  h->max_body = max_body ? max_body : (4u << 20);
  lc_timer_init(&h->timer, on_timer, h);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
  h->d = mhd.start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port,
                          NULL, NULL, on_access, h, MHD_OPTION_SOCK_ADDR, &sin,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
                          MHD_OPTION_END);
  if (!h->d) {
    snprintf(err, errlen, "cannot listen on 127.0.0.1:%d", port);
    lc_free(h->token);
    lc_free(h);
    return LC_EIO;
  }
  const union MHD_DaemonInfo *i = mhd.get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
  const union MHD_DaemonInfo *p = mhd.get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->port = p ? p->port : port;
  h->w = (struct lc_fdwatch){.fd = i ? i->epoll_fd : -1, .events = LC_READ,
                             .cb = on_fd, .ud = h};
  if (!i || lc_loop_watch(loop, &h->w) < 0) {
    snprintf(err, errlen, "cannot watch the HTTP server");
    mhd.stop_daemon(h->d);
    lc_free(h->token);
    lc_free(h);
    return LC_EIO;
  }
  kick(h);
  *out = h;
  return 0;
}

int lc_mcp_httpd_port(const struct lc_mcp_httpd *h) { return h->port; }

/* Appends "[id: event_id\n][retry: ms\n]data: body" to r's SSE answer
 * and wakes its connection. */
static int sse_push(struct lc_mcp_httpd *h, struct hreq *r, const char *event_id,
                    int retry_ms, const char *body, size_t n) {
  /* one data line: a line break would split the event */
  if (memchr(body, '\n', n) || memchr(body, '\r', n)) return LC_EINVAL;
  if (event_id && strpbrk(event_id, "\r\n")) return LC_EINVAL;
  char head[64];
  if (retry_ms > 0) {
    int k = snprintf(head, sizeof head, "retry: %d\n", retry_ms);
    if (lc_buf_append(&r->out, head, (size_t)k) < 0) return LC_ENOMEM;
  }
  if (event_id && (lc_buf_append(&r->out, "id: ", 4) < 0 ||
                   lc_buf_append(&r->out, event_id, strlen(event_id)) < 0 ||
                   lc_buf_append(&r->out, "\n", 1) < 0))
    return LC_ENOMEM;
  if (lc_buf_append(&r->out, "data: ", 6) < 0) return LC_ENOMEM;
  size_t at = r->out.len;
  if (lc_buf_append(&r->out, body, n) < 0) return LC_ENOMEM;
  /* A tool's output may echo a key (secrets.h): never to the client. */
  r->out.len = at + lc_secrets_scrub(r->out.data + at, n, LC_SCRUB_JSON);
  if (lc_buf_append(&r->out, "\n\n", 2) < 0) return LC_ENOMEM;
  r->streaming = 1;
  if (r->suspended) {
    r->suspended = 0;
    mhd.resume(r->conn);
  }
  lc_timer_start(h->loop, &h->timer, 0);
  return 0;
}

int lc_mcp_httpd_event(struct lc_mcp_httpd *h, long id, const char *event_id,
                       int retry_ms, const char *body, size_t n) {
  struct hreq *r = h->reqs;
  while (r && r->id != id) r = r->next;
  if (!r || r->status || r->finished) return LC_EINVAL;
  return sse_push(h, r, event_id, retry_ms, body, n);
}

int lc_mcp_httpd_session(struct lc_mcp_httpd *h, long id, const char *sid) {
  struct hreq *r = h->reqs;
  while (r && r->id != id) r = r->next;
  if (!r || r->status || r->queued || !*sid) return LC_EINVAL;
  for (const char *p = sid; *p; p++)
    if (*p < 0x21 || *p > 0x7e) return LC_EINVAL; /* the spec's visible ASCII */
  char *copy = lc_strdup(sid);
  if (!copy) return LC_ENOMEM;
  lc_free(r->session);
  r->session = copy;
  return 0;
}

void lc_mcp_httpd_reply(struct lc_mcp_httpd *h, long id, int status,
                        const char *body, size_t n) {
  struct hreq *r = h->reqs;
  while (r && r->id != id) r = r->next;
  if (!r || r->status) return;
  if (r->streaming) {
    /* the answer is the stream's last event */
    hreq_unlink(r);
    if (n && sse_push(h, r, NULL, 0, body, n) < 0) r->out_off = r->out.len = 0;
    r->finished = 1;
    if (r->suspended) {
      r->suspended = 0;
      mhd.resume(r->conn);
    }
    lc_timer_start(h->loop, &h->timer, 0);
    return;
  }
  r->status = status;
  if (n) {
    r->answer = lc_malloc(n);
    if (r->answer) {
      memcpy(r->answer, body, n);
      r->answer_len = lc_secrets_scrub(r->answer, n, LC_SCRUB_JSON); /* as sse_push */
    } else {
      r->status = 500;
    }
  }
  hreq_unlink(r);
  if (r->suspended) {
    r->suspended = 0;
    mhd.resume(r->conn);
  }
  /* MHD finishes it on its next run: a pass from now. */
  lc_timer_start(h->loop, &h->timer, 0);
}

void lc_mcp_httpd_free(struct lc_mcp_httpd *h) {
  if (!h) return;
  lc_loop_unwatch(h->loop, &h->w);
  lc_timer_stop(h->loop, &h->timer);
  /* Suspended connections must be resumed before the daemon stops. */
  while (h->reqs) {
    struct hreq *r = h->reqs;
    hreq_unlink(r);
    if (r->suspended) {
      r->suspended = 0;
      if (r->streaming) r->finished = 1;
      else r->status = 503;
      mhd.resume(r->conn);
    }
  }
  mhd.stop_daemon(h->d);
  lc_free(h->token);
  lc_free(h);
}
