/* mcp.c: an MCP client session: stdio or Streamable HTTP transport, the
 * version negotiation, requests with ids, timeouts and cancellation. */
#include "mcp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "conv.h"
#include "http.h"
#include "jsonrpc.h"
#include "lc.h"
#include "loop.h"
#include "sse.h"

extern char **environ;

/* Junk lines on a stdio server's stdout tolerated before the session is
 * declared broken (servers that log one banner line to stdout exist). */
#define MAX_BAD_LINES 16
#define MAX_UNKNOWN_IDS 256
/* Notifications: a bucket of FLOOD_BURST refilled at FLOOD_RATE a second;
 * a server past it is cut off (it would starve every other agent). */
#define FLOOD_RATE 2000.0
#define FLOOD_BURST 10000.0
#define STDERR_TAIL 1024

enum state { ST_DISCOVER, ST_INIT, ST_READY, ST_DEAD };

/* Requests in flight are found by id through this many chains: with 1,000
 * agents on one session, a walk of every pending request per answer was
 * the session's largest cost. */
#define PBUCKETS 1024

struct pending {
  struct pending *next, **prevp; /* m->pending, unlinked in O(1) */
  struct pending *hnext;         /* m->by_id[id % PBUCKETS] */
  struct lc_mcp *m;
  long long id;
  lc_mcp_reply_fn fn;
  void *ud;
  struct lc_timer timer;
  int internal; /* the handshake's own requests */
  int text_ok;  /* fn takes lc_mcp_reply.text */
};

/* One queued outgoing request before the handshake ended. */
struct queued {
  struct queued *next;
  cJSON *msg;
};

/* An inbound message waiting for the next pass (HTTP bodies are read in
 * libcurl callbacks, where nothing may be dispatched). */
struct inmsg {
  struct inmsg *next;
  size_t n;
  char text[];
};

/* SSE streams resumed (a GET with Last-Event-ID) at most this many times
 * per request, and the standalone GET stream reopened at most this many
 * times in a row without an event: a server that keeps closing them at
 * once is not polled forever. Without a retry: field we wait RETRY_MS. */
#define MAX_RESUMES 8
#define MAX_GET_EMPTY 3
#define RETRY_MS 1000
#define MAX_RETRY_MS 60000
/* A floor under the server's retry: a hostile `retry: 0` on a stream it
 * keeps closing would otherwise be a busy loop of GETs. */
#define MIN_RETRY_MS 100

/* One HTTP exchange: a POST, or a GET stream (2025-11-25): the standalone
 * one (id -1) that carries the server's own requests and notifications, or
 * the resumption of request id's SSE stream the server closed early. */
struct post {
  struct post *next;
  struct lc_mcp *m;
  struct lc_http_op op;
  struct lc_sse sse;
  struct lc_buf json; /* a JSON answer's body */
  char *body;
  long long id; /* the request it carries or resumes, -1 for others */
  int is_sse;
  int decided;
  int get;          /* a GET stream (body NULL) */
  int events;       /* events seen on this connection */
  int resumes;      /* GETs made for it so far */
  char *last_id;    /* the stream's last event id, for Last-Event-ID */
  long retry;       /* the server's retry: in ms, -1 if none */
  struct lc_timer timer; /* the wait before the next GET */
  unsigned gen;     /* the OAuth token generation it was sent with */
  int parked;       /* waiting for an authorization (oauth.c) */
};

struct lc_mcp {
  struct lc_loop *loop;
  struct lc_mcp_events ev;
  enum state st;
  char version[16];
  const char *max_version;
  cJSON *info;
  char dead[512];
  size_t max_message;
  long long next_id;
  struct pending *pending;
  struct pending *by_id[PBUCKETS];
  struct queued *queue, **queue_tail;
  struct lc_timer hs_timer; /* handshake deadline */
  struct lc_timer in_timer; /* dispatch of inbox (HTTP) */
  struct lc_timer ready_timer; /* reports ready / failure on a later pass */
  int ready_rc;
  int ready_sent;
  char ready_msg[512];
  struct inmsg *inbox, **inbox_tail;
  long n_in, n_bad, n_unknown, n_abandoned;
  char first_bad[160];
  double flood_tokens, flood_at;
  int in_dispatch; /* a callback is running: free is refused */
  /* stdio */
  pid_t pid;
  struct lc_child ch; /* the server process, once has_child */
  int has_child;
  int infd, outfd, errfd;
  struct lc_fdwatch w_out, w_err, w_in;
  int w_in_on;
  struct lc_buf outq; /* bytes for the child's stdin */
  struct lc_timer out_timer; /* one write for the requests of a pass */
  struct lc_jr_split split;
  char errtail[STDERR_TAIL];
  size_t errtail_len;
  int exited, exit_status;
  /* http */
  char *url;
  char **headers;
  size_t n_headers;
  char *session_id;
  struct post *posts;
  int get_empty; /* standalone GET streams in a row that brought nothing */
  struct lc_oauth *oauth; /* NULL: no authorization configured */
  double hs_ms;           /* the handshake deadline, for its restart */
  int hs_paused;          /* stopped while the user authorizes */
};

static void die(struct lc_mcp *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int send_msg(struct lc_mcp *m, cJSON *msg, long long id);
static void dispatch(struct lc_mcp *m, const char *p, size_t n);

/* ---- small helpers ---- */

/* What a request that could not go out says: out of memory is not the
 * server's fault. */
static const char *send_failed(int rc) {
  return rc == LC_ENOMEM ? "out of memory: cannot send the MCP request"
                         : "cannot send to the MCP server";
}

static void ready_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_mcp *m = t->ud;
  if (m->ready_sent) return;
  m->ready_sent = 1;
  if (m->ev.ready) m->ev.ready(m->ev.ud, m->ready_rc, m->ready_msg);
}

/* The handshake ended: tell the owner on the next pass (lc_mcp_open
 * promises ready never runs inside it). */
static void set_ready(struct lc_mcp *m, int rc, const char *msg) {
  if (m->ready_sent || lc_timer_active(&m->ready_timer)) return;
  m->ready_rc = rc;
  snprintf(m->ready_msg, sizeof m->ready_msg, "%s", msg ? msg : "");
  lc_timer_start(m->loop, &m->ready_timer, 0);
}

static void pending_link(struct lc_mcp *m, struct pending *p) {
  p->next = m->pending;
  if (p->next) p->next->prevp = &p->next;
  p->prevp = &m->pending;
  m->pending = p;
  struct pending **b = &m->by_id[(unsigned long long)p->id % PBUCKETS];
  p->hnext = *b;
  *b = p;
}

static void pending_unlink(struct lc_mcp *m, struct pending *p) {
  if (p->prevp) {
    *p->prevp = p->next;
    if (p->next) p->next->prevp = p->prevp;
    p->prevp = NULL;
    p->next = NULL;
    for (struct pending **pp = &m->by_id[(unsigned long long)p->id % PBUCKETS]; *pp;
         pp = &(*pp)->hnext)
      if (*pp == p) {
        *pp = p->hnext;
        break;
      }
  }
  lc_timer_stop(m->loop, &p->timer);
}

static struct pending *pending_find(struct lc_mcp *m, long long id) {
  if (id < 0) return NULL;
  for (struct pending *p = m->by_id[(unsigned long long)id % PBUCKETS]; p; p = p->hnext)
    if (p->id == id) return p;
  return NULL;
}

static void reply(struct lc_mcp *m, struct pending *p,
                  const struct lc_mcp_reply *r) {
  pending_unlink(m, p);
  lc_mcp_reply_fn fn = p->fn;
  void *ud = p->ud;
  lc_free(p);
  m->in_dispatch++;
  if (fn) fn(ud, r);
  m->in_dispatch--;
}

static void fail_all(struct lc_mcp *m, int rc, const char *msg) {
  while (m->pending) {
    struct lc_mcp_reply r = {.rc = rc, .message = msg};
    reply(m, m->pending, &r);
  }
  while (m->queue) {
    struct queued *q = m->queue;
    m->queue = q->next;
    cJSON_Delete(q->msg);
    lc_free(q);
  }
  m->queue_tail = &m->queue;
}

/* ---- stdio transport ---- */

static void stdio_stop(struct lc_mcp *m) {
  if (m->outfd >= 0) {
    lc_loop_unwatch(m->loop, &m->w_out);
    close(m->outfd);
    m->outfd = -1;
  }
  if (m->errfd >= 0) {
    lc_loop_unwatch(m->loop, &m->w_err);
    close(m->errfd);
    m->errfd = -1;
  }
  if (m->infd >= 0) {
    if (m->w_in_on) lc_loop_unwatch(m->loop, &m->w_in);
    m->w_in_on = 0;
    close(m->infd);
    m->infd = -1;
  }
  if (m->has_child) {
    lc_child_unwatch(&m->ch);
    if (!m->exited) {
      /* SIGKILL then reap: the wait is the kernel tearing the process
       * down, never the server's own doing. */
      lc_child_kill(&m->ch, SIGKILL);
      lc_child_reap(&m->ch, 1);
      m->exited = 1;
    }
    lc_child_close(&m->ch);
    m->has_child = 0;
  }
}

static void errtail_add(struct lc_mcp *m, const char *p, size_t n) {
  if (n >= STDERR_TAIL - 1) {
    p += n - (STDERR_TAIL - 1);
    n = STDERR_TAIL - 1;
  }
  if (m->errtail_len + n > STDERR_TAIL - 1) {
    size_t drop = m->errtail_len + n - (STDERR_TAIL - 1);
    memmove(m->errtail, m->errtail + drop, m->errtail_len - drop);
    m->errtail_len -= drop;
  }
  memcpy(m->errtail + m->errtail_len, p, n);
  m->errtail_len += n;
  m->errtail[m->errtail_len] = '\0';
}

/* The last line of the child's stderr, flattened, for error messages. */
static const char *errtail_line(struct lc_mcp *m, char *out, size_t n) {
  size_t len = m->errtail_len;
  while (len && (m->errtail[len - 1] == '\n' || m->errtail[len - 1] == '\r'))
    len--;
  size_t start = len;
  while (start && m->errtail[start - 1] != '\n') start--;
  size_t k = 0;
  for (size_t i = start; i < len && k + 1 < n; i++) {
    unsigned char c = (unsigned char)m->errtail[i];
    out[k++] = c < 0x20 ? ' ' : (char)c;
  }
  out[k] = '\0';
  return out;
}

static int line_cb(void *ud, const char *line, size_t n) {
  struct lc_mcp *m = ud;
  dispatch(m, line, n);
  return m->st == ST_DEAD ? 1 : 0;
}

static void child_gone(struct lc_mcp *m) {
  char tail[300];
  errtail_line(m, tail, sizeof tail);
  char st[64];
  if (!m->exited) snprintf(st, sizeof st, "closed its stdout");
  else if (WIFEXITED(m->exit_status))
    snprintf(st, sizeof st, "exited with status %d",
             WEXITSTATUS(m->exit_status));
  else if (WIFSIGNALED(m->exit_status))
    snprintf(st, sizeof st, "was killed by signal %d",
             WTERMSIG(m->exit_status));
  else snprintf(st, sizeof st, "exited");
  if (m->n_bad)
    die(m, "MCP server %s after writing %ld non-JSON-RPC line(s) to stdout "
           "(first: %s)%s%s",
        st, m->n_bad, m->first_bad, tail[0] ? "; stderr: " : "", tail);
  else
    die(m, "MCP server %s%s%s", st, tail[0] ? "; stderr: " : "", tail);
}

static void drain_err(struct lc_mcp *m) {
  char buf[4096];
  for (;;) {
    ssize_t k = read(m->errfd, buf, sizeof buf);
    if (k > 0) {
      errtail_add(m, buf, (size_t)k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k == 0 || (k < 0 && errno != EAGAIN)) {
      lc_loop_unwatch(m->loop, &m->w_err);
      close(m->errfd);
      m->errfd = -1;
    }
    return;
  }
}

/* Watcher of the child's stderr (from the loop). */
static void on_err(struct lc_loop *loop, struct lc_fdwatch *w, unsigned ev) {
  drain_err(w->ud);
}

/* Reads what stdout has; 1 when it reached EOF. Bounded per call so that
 * one chatty server cannot hold the loop. */
static int drain_out(struct lc_mcp *m, int all) {
  char buf[16384];
  for (int rounds = 0; all || rounds < 8; rounds++) {
    ssize_t k = read(m->outfd, buf, sizeof buf);
    if (k > 0) {
      int rc = lc_jr_split_feed(&m->split, buf, (size_t)k, line_cb, m);
      if (m->st == ST_DEAD) return 0;
      if (rc == LC_ETOOBIG) {
        die(m, "MCP server sent a message over %zu bytes", m->max_message);
        return 0;
      }
      if (rc < 0) {
        die(m, "out of memory reading the MCP server");
        return 0;
      }
      /* A short read drained the pipe: the watch is level-triggered, so
       * what comes later wakes us again; reading on would only be an
       * EAGAIN, one system call per answer. */
      if (!all && (size_t)k < sizeof buf) return 0;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) return 0;
    return 1;
  }
  return 0;
}

/* Watcher of the child's stdout (from the loop). */
static void on_out(struct lc_loop *loop, struct lc_fdwatch *w, unsigned ev) {
  struct lc_mcp *m = w->ud;
  if (drain_out(m, 0) && m->st != ST_DEAD) {
    lc_loop_unwatch(m->loop, &m->w_out);
    close(m->outfd);
    m->outfd = -1;
    if (m->errfd >= 0) drain_err(m);
    /* The child watch will say how it ended; if it already did, say it now. */
    if (m->exited || !m->has_child) child_gone(m);
  }
}

/* The child ended (from the loop, child.c). */
static void on_child_exit(struct lc_child *c, void *ud) {
  struct lc_mcp *m = ud;
  m->exited = 1;
  m->exit_status = c->lost ? 0 : c->status;
  /* Whatever it wrote before it ended still counts. */
  if (m->outfd >= 0) drain_out(m, 1);
  if (m->errfd >= 0) drain_err(m);
  if (m->st != ST_DEAD) child_gone(m);
}

static void flush_in(struct lc_mcp *m) {
  while (m->outq.len && m->infd >= 0) {
    ssize_t k = send(m->infd, m->outq.data, m->outq.len, MSG_NOSIGNAL);
    if (k > 0) {
      lc_buf_consume(&m->outq, (size_t)k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) break;
    /* EPIPE: the child stopped reading; its exit will be reported. */
    lc_buf_reset(&m->outq);
    break;
  }
  int want = m->outq.len > 0;
  if (want && !m->w_in_on) {
    if (lc_loop_watch(m->loop, &m->w_in) == 0) m->w_in_on = 1;
  } else if (!want && m->w_in_on) {
    lc_loop_unwatch(m->loop, &m->w_in);
    m->w_in_on = 0;
  }
}

/* 0 ms timer (from the loop, after the pass's tasks ran): the requests
 * they made go out in one write. */
static void out_fire(struct lc_loop *loop, struct lc_timer *t) { flush_in(t->ud); }

/* Watcher of the child's stdin (from the loop): writable again. */
static void on_in(struct lc_loop *loop, struct lc_fdwatch *w, unsigned ev) {
  flush_in(w->ud);
}

static int nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Builds the child's environment: the script's entries, then PATH and
 * HOME from ours unless given. Pointers into cfg and environ. */
static char **child_env(const char *const *env) {
  size_t n = 0;
  while (env && env[n]) n++;
  char **e = lc_calloc(n + 3, sizeof *e);
  if (!e) return NULL;
  int has_path = 0, has_home = 0;
  for (size_t i = 0; i < n; i++) {
    e[i] = (char *)env[i];
    if (!strncmp(env[i], "PATH=", 5)) has_path = 1;
    if (!strncmp(env[i], "HOME=", 5)) has_home = 1;
  }
  for (char **p = environ; p && *p; p++) {
    if (!has_path && !strncmp(*p, "PATH=", 5)) e[n++] = *p, has_path = 1;
    if (!has_home && !strncmp(*p, "HOME=", 5)) e[n++] = *p, has_home = 1;
  }
  return e;
}

static int stdio_start(struct lc_mcp *m, const struct lc_mcp_config *cfg,
                       char *err, size_t errlen) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
  /* stdin is a socket so that writing to a dead server is EPIPE, never
   * SIGPIPE (send with MSG_NOSIGNAL). */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
      pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0) {
    snprintf(err, errlen, "cannot make pipes: %s", strerror(errno));
    goto fail;
  }
  shutdown(in[0], SHUT_RD);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (posix_spawn_file_actions_init(&fa)) goto nomem;
  if (posix_spawnattr_init(&at)) {
    posix_spawn_file_actions_destroy(&fa);
    goto nomem;
  }
  int rc = posix_spawn_file_actions_adddup2(&fa, in[1], 0);
  rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, er[1], 2);
  /* Nothing but its three descriptors: not our sockets, journals or the
   * other servers' pipes. */
  rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  rc = rc ? rc : posix_spawnattr_setsigmask(&at, &none);
  rc = rc ? rc : posix_spawnattr_setsigdefault(&at, &all);
  rc = rc ? rc
          : posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
  char **envp = rc ? NULL : child_env(cfg->env);
  if (!rc && !envp) rc = ENOMEM;
  if (!rc)
    rc = posix_spawnp(&m->pid, cfg->argv[0], &fa, &at,
                      (char *const *)cfg->argv, envp);
  lc_free(envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc) {
    snprintf(err, errlen, "cannot start MCP server '%s': %s", cfg->argv[0],
             strerror(rc));
    goto fail;
  }
  close(in[1]);
  close(out[1]);
  close(er[1]);
  m->infd = in[0];
  m->outfd = out[0];
  m->errfd = er[0];
  lc_child_open(&m->ch, m->loop, m->pid);
  m->has_child = 1; /* from here the close kills and reaps it */
  if (nonblock(m->infd) < 0 || nonblock(m->outfd) < 0 || nonblock(m->errfd) < 0) {
    snprintf(err, errlen, "cannot watch the MCP server: %s", strerror(errno));
    return LC_EIO;
  }
  m->w_out = (struct lc_fdwatch){.fd = m->outfd, .events = LC_READ,
                                 .cb = on_out, .ud = m};
  m->w_err = (struct lc_fdwatch){.fd = m->errfd, .events = LC_READ,
                                 .cb = on_err, .ud = m};
  m->w_in = (struct lc_fdwatch){.fd = m->infd, .events = LC_WRITE,
                                .cb = on_in, .ud = m};
  int wrc = lc_loop_watch(m->loop, &m->w_out);
  if (!wrc) wrc = lc_loop_watch(m->loop, &m->w_err);
  if (!wrc) wrc = lc_child_watch(&m->ch, on_child_exit, m);
  if (wrc < 0) {
    snprintf(err, errlen, "%scannot watch the MCP server", wrc == LC_ENOMEM ? "out of memory: " : "");
    return wrc == LC_ENOMEM ? LC_ENOMEM : LC_EIO;
  }
  return 0;
nomem:
  snprintf(err, errlen, "out of memory");
fail:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0) close(in[i]);
    if (out[i] >= 0) close(out[i]);
    if (er[i] >= 0) close(er[i]);
  }
  return LC_EIO;
}

static int stdio_send(struct lc_mcp *m, const char *text) {
  if (m->infd < 0) return LC_EIO;
  if (lc_buf_puts(&m->outq, text) < 0 || lc_buf_append(&m->outq, "\n", 1) < 0)
    return LC_ENOMEM;
  flush_in(m);
  return 0;
}

/* ---- HTTP transport ---- */

static void post_free(struct lc_mcp *m, struct post *p) {
  for (struct post **pp = &m->posts; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  lc_timer_stop(m->loop, &p->timer);
  lc_http_op_cleanup(&p->op);
  lc_sse_free(&p->sse);
  lc_buf_free(&p->json);
  lc_free(p->body);
  lc_free(p->last_id);
  lc_free(p);
}

/* 0, or LC_ENOMEM: the message was not kept, or it was but no timer will
 * dispatch it (the caller ends the transfer: post_done dispatches the
 * inbox). A lost answer would surface as "ended without an answer". */
static int inbox_push(struct lc_mcp *m, const char *p, size_t n) {
  struct inmsg *x = lc_malloc(sizeof *x + n + 1);
  if (!x) return LC_ENOMEM;
  x->next = NULL;
  x->n = n;
  memcpy(x->text, p, n);
  x->text[n] = '\0';
  *m->inbox_tail = x;
  m->inbox_tail = &x->next;
  if (!lc_timer_active(&m->in_timer) && lc_timer_start(m->loop, &m->in_timer, 0) < 0)
    return LC_ENOMEM;
  return 0;
}

/* 0 ms timer (from the loop): dispatches what HTTP bodies brought. */
static void in_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_mcp *m = t->ud;
  while (m->inbox && m->st != ST_DEAD) {
    struct inmsg *x = m->inbox;
    m->inbox = x->next;
    if (!m->inbox) m->inbox_tail = &m->inbox;
    dispatch(m, x->text, x->n);
    lc_free(x);
  }
}

static int sse_cb(void *ud, const struct lc_sse_event *ev) {
  struct post *p = ud;
  p->events++;
  return ev->data_len ? inbox_push(p->m, ev->data, ev->data_len) : 0;
}

/* lc_http sink (inside libcurl's write callback): only buffers. */
static int post_sink(void *ud, const char *data, size_t n) {
  struct post *p = ud;
  if (!p->decided) {
    p->decided = 1;
    p->is_sse = !strncasecmp(p->op.content_type, "text/event-stream", 17);
  }
  /* the code goes back to http.c, which tells out of memory apart */
  int rc = p->is_sse ? lc_sse_feed(&p->sse, data, n, sse_cb, p) : lc_buf_append(&p->json, data, n);
  return rc < 0 ? rc : 0;
}

static void capture_session(struct lc_mcp *m, struct post *p) {
  const char *h = p->op.headers.data;
  if (!h) return;
  while (*h) {
    const char *eol = strchr(h, '\n');
    size_t len = eol ? (size_t)(eol - h) : strlen(h);
    if (len > 15 && !strncasecmp(h, "mcp-session-id:", 15)) {
      const char *v = h + 15;
      size_t vn = len - 15;
      while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
      while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\r')) vn--;
      /* visible ASCII only (the spec's rule), so it is safe in a header */
      int ok = vn > 0 && vn < 256;
      for (size_t i = 0; ok && i < vn; i++)
        if (v[i] < 0x21 || v[i] > 0x7e) ok = 0;
      if (ok && !m->session_id) m->session_id = lc_strndup(v, vn);
    }
    if (!eol) break;
    h = eol + 1;
  }
}

static int http_start(struct lc_mcp *m, struct post *p);

/* Keeps what lets a closed stream be resumed: its last event id and the
 * server's retry: (the parser itself is reset for the next connection). */
static void stream_note(struct post *p) {
  if (p->sse.id.len) {
    char *id = lc_strndup(p->sse.id.data, p->sse.id.len);
    if (id) {
      lc_free(p->last_id);
      p->last_id = id;
    }
  }
  if (p->sse.retry >= 0) p->retry = p->sse.retry;
}

/* The retry: wait is over: GET the stream again (from the loop). */
static void get_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct post *p = t->ud;
  struct lc_mcp *m = p->m;
  long long id = p->id;
  /* The answer came another way, or the caller gave up, meanwhile. */
  struct pending *pd = id >= 0 ? pending_find(m, id) : NULL;
  if (m->st == ST_DEAD || (id >= 0 && !pd)) {
    post_free(m, p);
    return;
  }
  if (http_start(m, p) < 0) {
    post_free(m, p);
    if (pd) {
      struct lc_mcp_reply r = {
          .rc = LC_EIO, .message = "cannot resume the MCP server's SSE stream"};
      reply(m, pd, &r);
    }
  }
}

/* p's stream ended: it is opened again as a GET with Last-Event-ID after
 * the server's retry: delay (2025-11-25, "resumability"). p is linked. */
static void stream_again(struct lc_mcp *m, struct post *p) {
  lc_http_op_cleanup(&p->op);
  lc_http_op_init(&p->op);
  lc_sse_free(&p->sse);
  lc_sse_init(&p->sse, m->max_message);
  lc_buf_free(&p->json);
  lc_buf_init(&p->json, m->max_message);
  lc_free(p->body);
  p->body = NULL;
  p->get = 1;
  p->decided = p->is_sse = p->events = 0;
  p->resumes++;
  long ms = p->retry >= 0 ? p->retry : RETRY_MS;
  if (ms > MAX_RETRY_MS) ms = MAX_RETRY_MS;
  if (ms < MIN_RETRY_MS) ms = MIN_RETRY_MS;
  lc_timer_start(m->loop, &p->timer, (double)ms);
}

static void post_link(struct lc_mcp *m, struct post *p) {
  p->next = m->posts;
  m->posts = p;
}

static void post_unlink(struct lc_mcp *m, struct post *p) {
  for (struct post **pp = &m->posts; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  p->next = NULL;
}

/* ---- authorization hooks (the logic is oauth.c's) ---- */

/* Every WWW-Authenticate value of p's answer, joined with ", ". */
static void www_authenticate(struct post *p, char *out, size_t cap) {
  const char *h = p->op.headers.data;
  size_t k = 0;
  out[0] = '\0';
  while (h && *h) {
    const char *eol = strchr(h, '\n');
    size_t len = eol ? (size_t)(eol - h) : strlen(h);
    if (len > 17 && !strncasecmp(h, "www-authenticate:", 17)) {
      const char *v = h + 17;
      size_t vn = len - 17;
      while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
      if (k && k + 2 < cap) out[k++] = ',', out[k++] = ' ';
      for (size_t i = 0; i < vn && k + 1 < cap; i++) out[k++] = v[i];
      out[k] = '\0';
    }
    if (!eol) break;
    h = eol + 1;
  }
}

/* p's transfer is over; it goes out again later (or now). */
static void post_reset(struct lc_mcp *m, struct post *p) {
  lc_http_op_cleanup(&p->op);
  lc_http_op_init(&p->op);
  lc_sse_free(&p->sse);
  lc_sse_init(&p->sse, m->max_message);
  lc_buf_free(&p->json);
  lc_buf_init(&p->json, m->max_message);
  p->decided = p->is_sse = p->events = 0;
}

/* A 401 or 403 with authorization configured (from post_done): 1 when p
 * is taken care of (parked until the token, or resent with a newer one),
 * 0 with why set when the request fails. */
static int auth_challenge(struct lc_mcp *m, struct post *p, char *why,
                          size_t whylen) {
  char wa[4096];
  www_authenticate(p, wa, sizeof wa);
  int rc = lc_oauth_challenge(m->oauth, p->op.status, wa[0] ? wa : NULL,
                              p->gen, why, whylen);
  if (rc < 0) return 0;
  post_reset(m, p);
  if (rc == 1) {
    p->parked = 1;
    return 1;
  }
  int hrc = http_start(m, p);
  if (hrc == 0) return 1;
  snprintf(why, whylen, "%s", send_failed(hrc));
  return 0;
}

/* oauth.c's done (from the loop): the parked requests go out with the
 * token, or fail with why. */
static void auth_done(void *ud, int rc, const char *why) {
  struct lc_mcp *m = ud;
  int hrc = 0; /* the last resend's failure */
  for (struct post *p = m->posts; p; p = p->next) {
    if (!p->parked) continue;
    int one = rc == 0 && m->st != ST_DEAD ? http_start(m, p) : LC_EIO;
    if (one) hrc = one;
    p->parked = one == 0 ? 0 : 2;
  }
  for (;;) {
    struct post *p = m->posts;
    while (p && p->parked != 2) p = p->next;
    if (!p) break;
    long long id = p->id;
    post_free(m, p);
    struct pending *pd = id >= 0 ? pending_find(m, id) : NULL;
    if (pd) {
      struct lc_mcp_reply r = {.rc = rc ? LC_ESTATE : hrc == LC_ENOMEM ? LC_ENOMEM : LC_EIO,
                               .message = rc ? why : send_failed(hrc)};
      reply(m, pd, &r);
    }
  }
}

/* oauth.c's user-agent step (from the loop). */
static void auth_authorize(void *ud, const char *url) {
  struct lc_mcp *m = ud;
  if (lc_timer_active(&m->hs_timer)) {
    lc_timer_stop(m->loop, &m->hs_timer);
    m->hs_paused = 1;
  }
  if (m->ev.authorize && m->st != ST_DEAD) m->ev.authorize(m->ev.ud, url);
  else lc_oauth_redirect(m->oauth, NULL, "nobody to ask");
}

void lc_mcp_authorized(struct lc_mcp *m, const char *redirect, const char *why) {
  if (!m->oauth) return;
  if (m->hs_paused && m->st != ST_READY && m->st != ST_DEAD)
    lc_timer_start(m->loop, &m->hs_timer, m->hs_ms);
  m->hs_paused = 0;
  lc_oauth_redirect(m->oauth, redirect, why);
}

/* lc_http completion (from the loop). */
static void post_done(struct lc_http_op *op, void *ud) {
  struct post *p = ud;
  struct lc_mcp *m = p->m;
  long long id = p->id;
  int get = p->get;
  const char *what = get ? "resuming the SSE stream: " : "";
  char why[400] = "";
  int auth_failed = 0;
  if (op->err) {
    snprintf(why, sizeof why, "MCP HTTP transfer failed: %s%.300s", what,
             op->errmsg);
  } else if (m->oauth && (op->status == 401 || op->status == 403)) {
    /* oauth.c decides: authorize (the post waits), resend now with a
     * newer token, or fail with its reason */
    if (auth_challenge(m, p, why, sizeof why)) return;
    auth_failed = 1;
  } else if (op->status == 404 && m->session_id && !get) {
    snprintf(why, sizeof why, "MCP server lost the session (HTTP 404)");
  } else if (op->status < 200 || op->status > 299) {
    char body[160];
    size_t n = op->body.len < sizeof body - 1 ? op->body.len : sizeof body - 1;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)op->body.data[i];
      body[i] = c < 0x20 ? ' ' : (char)c;
    }
    body[n] = '\0';
    snprintf(why, sizeof why, "MCP server answered %sHTTP %ld%s%s%s", what,
             op->status, n ? ": " : "", body,
             op->status == 401 && !m->oauth
                 ? " (it wants authorization: give connect an auth table)"
                 : "");
  } else {
    if (m->oauth && p->gen) lc_oauth_ok(m->oauth);
    if (!get && (m->st == ST_INIT || m->st == ST_DISCOVER)) capture_session(m, p);
    if (!p->is_sse && p->json.len && inbox_push(m, p->json.data, p->json.len) < 0)
      snprintf(why, sizeof why, "out of memory reading the MCP server's answer");
  }
  if (m->oauth) lc_oauth_scrub(m->oauth, why, sizeof why);
  if (p->is_sse) stream_note(p);
  /* Out of the list while the inbox runs: a callback there may cancel
   * request id, which would free the post under us. */
  post_unlink(m, p);
  /* The inbox goes first: a request's answer may be in it. */
  in_fire(m->loop, &m->in_timer);
  if (m->st == ST_DEAD) {
    post_free(m, p);
    return;
  }
  if (get && id < 0) {
    /* The standalone stream: reopened when it ended cleanly (the server
     * may close it any time); a refusal (405: not offered) ends it. */
    m->get_empty = p->events ? 0 : m->get_empty + 1;
    if (!why[0] && m->get_empty < MAX_GET_EMPTY) {
      post_link(m, p);
      stream_again(m, p);
    } else {
      post_free(m, p);
    }
    return;
  }
  struct pending *pd = id >= 0 ? pending_find(m, id) : NULL;
  /* An SSE answer stream that ended before the answer, with an event id to
   * resume from: GET it again (the call's own timeout still runs). */
  if (!why[0] && pd && p->is_sse && p->last_id && p->resumes < MAX_RESUMES) {
    post_link(m, p);
    stream_again(m, p);
    return;
  }
  post_free(m, p);
  if (!pd) return;
  if (why[0]) {
    struct lc_mcp_reply r = {.rc = auth_failed ? LC_ESTATE : LC_EIO, .message = why};
    reply(m, pd, &r);
    if (strstr(why, "lost the session")) die(m, "%s", why);
  } else {
    /* The stream ended without the answer and without an event id to
     * resume from (or after MAX_RESUMES resumptions). */
    struct lc_mcp_reply r = {
        .rc = LC_EIO,
        .message = "MCP server ended the HTTP response without an answer"};
    reply(m, pd, &r);
  }
}

static struct post *post_new(struct lc_mcp *m, long long id) {
  struct post *p = lc_calloc(1, sizeof *p);
  if (!p) return NULL;
  p->m = m;
  p->id = id;
  p->retry = -1;
  lc_http_op_init(&p->op);
  lc_sse_init(&p->sse, m->max_message);
  lc_buf_init(&p->json, m->max_message);
  lc_timer_init(&p->timer, get_fire, p);
  return p;
}

/* Starts p's transfer: a POST of p->body, or a GET of the stream. */
static int http_start(struct lc_mcp *m, struct post *p) {
  const char *hdrs[40];
  size_t nh = 0;
  char sid[300], ver[64], last[300];
  if (p->get) {
    hdrs[nh++] = "Accept: text/event-stream";
    /* the id is the server's (one SSE line, so no line break); a long or
     * odd one is not sent back */
    if (p->last_id && strlen(p->last_id) < 256 && !strpbrk(p->last_id, "\r\n")) {
      snprintf(last, sizeof last, "Last-Event-ID: %s", p->last_id);
      hdrs[nh++] = last;
    }
  } else {
    hdrs[nh++] = "Content-Type: application/json";
    hdrs[nh++] = "Accept: application/json, text/event-stream";
  }
  if (m->session_id) {
    snprintf(sid, sizeof sid, "Mcp-Session-Id: %s", m->session_id);
    hdrs[nh++] = sid;
  }
  if (m->version[0]) {
    snprintf(ver, sizeof ver, "MCP-Protocol-Version: %s", m->version);
    hdrs[nh++] = ver;
  }
  p->gen = m->oauth ? lc_oauth_gen(m->oauth) : 0;
  if (p->gen) hdrs[nh++] = lc_oauth_header(m->oauth);
  for (size_t i = 0; i < m->n_headers && nh < 40; i++) hdrs[nh++] = m->headers[i];
  struct lc_http_req req = {.method = p->get ? "GET" : "POST",
                            .url = m->url,
                            .headers = hdrs,
                            .n_headers = nh,
                            .body = p->body,
                            .body_len = p->body ? strlen(p->body) : 0,
                            .body_borrowed = 1,
                            .no_compress = 1,
                            .max_body = m->max_message,
                            .keep_headers = 1};
  return lc_http_start(m->loop, &p->op, &req, post_sink, p, post_done, p);
}

static int http_send(struct lc_mcp *m, const char *text, long long id) {
  struct post *p = post_new(m, id);
  if (!p) return LC_ENOMEM;
  p->body = lc_strdup(text);
  post_link(m, p);
  int rc = p->body ? http_start(m, p) : LC_ENOMEM;
  if (rc < 0) {
    post_free(m, p);
    return rc == LC_ENOMEM ? LC_ENOMEM : LC_EIO;
  }
  return 0;
}

/* The standalone GET stream (2025-11-25 and 2025-06-18 sessions): where a
 * server sends requests and notifications outside any call of ours. A
 * server that does not offer it answers 405, and that is the end of it. */
static void get_open(struct lc_mcp *m) {
  struct post *p = post_new(m, -1);
  if (!p) return;
  p->get = 1;
  post_link(m, p);
  if (http_start(m, p) < 0) post_free(m, p);
}

static void http_stop(struct lc_mcp *m) {
  while (m->posts) post_free(m, m->posts);
  if (m->session_id && m->url && m->st != ST_DEAD) {
    /* A DELETE would end the server's session; it is a courtesy the spec
     * allows servers to refuse, and it would outlive us: skipped. */
  }
}

/* ---- messages ---- */

static int send_msg(struct lc_mcp *m, cJSON *msg, long long id) {
  char *text = cJSON_PrintUnformatted(msg);
  cJSON_Delete(msg);
  if (!text) return LC_ENOMEM;
  int rc = m->url ? http_send(m, text, id) : stdio_send(m, text);
  cJSON_free(text);
  return rc;
}

static cJSON *new_msg(const char *method) {
  cJSON *j = cJSON_CreateObject();
  if (!j) return NULL;
  cJSON_AddStringToObject(j, "jsonrpc", "2.0");
  if (method) cJSON_AddStringToObject(j, "method", method);
  return j;
}

static void die(struct lc_mcp *m, const char *fmt, ...) {
  if (m->st == ST_DEAD) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->dead, sizeof m->dead, fmt, ap);
  va_end(ap);
  enum state was = m->st;
  m->st = ST_DEAD;
  lc_timer_stop(m->loop, &m->hs_timer);
  if (!m->url) stdio_stop(m);
  fail_all(m, LC_EIO, m->dead);
  if (was != ST_READY) set_ready(m, LC_EIO, m->dead);
  else if (m->ev.closed) {
    m->in_dispatch++;
    m->ev.closed(m->ev.ud, m->dead);
    m->in_dispatch--;
  }
}

static void add_meta(struct lc_mcp *m, cJSON *params, long long progress) {
  int stateless = !strcmp(m->version, LC_MCP_V_STATELESS);
  if (!stateless && !progress) return;
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
  if (!meta) meta = cJSON_AddObjectToObject(params, "_meta");
  if (!cJSON_IsObject(meta)) return;
  if (progress) cJSON_AddNumberToObject(meta, "progressToken", (double)progress);
  if (stateless) {
    cJSON_AddStringToObject(meta, "io.modelcontextprotocol/protocolVersion",
                            m->version);
    cJSON *caps = cJSON_AddObjectToObject(
        meta, "io.modelcontextprotocol/clientCapabilities");
    if (caps) cJSON_AddObjectToObject(caps, "elicitation");
  }
}

/* HTTP: the POST that carries request id is no longer wanted (its SSE
 * stream would stay open until the server ends it). */
static void drop_post(struct lc_mcp *m, long long id) {
  for (struct post *p = m->posts; p; p = p->next)
    if (p->id == id) {
      post_free(m, p);
      return;
    }
}

static void timeout_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct pending *p = t->ud;
  struct lc_mcp *m = p->m;
  long long id = p->id;
  struct lc_mcp_reply r = {.rc = LC_ETIMEOUT,
                           .message = "MCP request timed out"};
  reply(m, p, &r);
  m->n_abandoned++;
  if (m->url) drop_post(m, id);
  /* Tell the server to stop working on it (best effort). */
  cJSON *n = new_msg("notifications/cancelled");
  cJSON *params = n ? cJSON_AddObjectToObject(n, "params") : NULL;
  if (params) {
    cJSON_AddNumberToObject(params, "requestId", (double)id);
    cJSON_AddStringToObject(params, "reason", "timed out");
    if (m->st == ST_READY) send_msg(m, n, -1);
    else cJSON_Delete(n);
  } else cJSON_Delete(n);
}

static int start_request(struct lc_mcp *m, const char *method, cJSON *params,
                         double timeout_ms, long long progress,
                         lc_mcp_reply_fn fn, void *ud, int internal,
                         long long *id_out) {
  struct pending *p = lc_calloc(1, sizeof *p);
  cJSON *msg = new_msg(method);
  if (!p || !msg) {
    lc_free(p);
    cJSON_Delete(msg);
    cJSON_Delete(params);
    return LC_ENOMEM;
  }
  if (!params) params = cJSON_CreateObject();
  long long id = ++m->next_id;
  if (progress < 0) progress = id; /* the request's own id as its token */
  cJSON_AddNumberToObject(msg, "id", (double)id);
  if (params) {
    if (m->st == ST_READY || internal) add_meta(m, params, progress);
    else if (progress) {
      /* added when the queue is flushed */
      cJSON_AddNumberToObject(params, "\x01progress", (double)progress);
    }
    cJSON_AddItemToObject(msg, "params", params);
  }
  p->m = m;
  p->id = id;
  p->fn = fn;
  p->ud = ud;
  p->internal = internal;
  lc_timer_init(&p->timer, timeout_fire, p);
  if (timeout_ms > 0 && lc_timer_start(m->loop, &p->timer, timeout_ms) < 0) {
    cJSON_Delete(msg);
    lc_free(p);
    return LC_ENOMEM;
  }
  pending_link(m, p);
  if (id_out) *id_out = id;
  if (m->st == ST_READY || internal) {
    int rc = send_msg(m, msg, id);
    if (rc < 0) {
      pending_unlink(m, p);
      lc_free(p);
      return rc;
    }
    return 0;
  }
  struct queued *q = lc_malloc(sizeof *q);
  if (!q) {
    cJSON_Delete(msg);
    pending_unlink(m, p);
    lc_free(p);
    return LC_ENOMEM;
  }
  q->next = NULL;
  q->msg = msg;
  *m->queue_tail = q;
  m->queue_tail = &q->next;
  return 0;
}

static void flush_queue(struct lc_mcp *m) {
  while (m->queue && m->st == ST_READY) {
    struct queued *q = m->queue;
    m->queue = q->next;
    if (!m->queue) m->queue_tail = &m->queue;
    cJSON *id = cJSON_GetObjectItemCaseSensitive(q->msg, "id");
    cJSON *params = cJSON_GetObjectItemCaseSensitive(q->msg, "params");
    cJSON *pt = cJSON_DetachItemFromObject(params, "\x01progress");
    add_meta(m, params, pt ? (long long)pt->valuedouble : 0);
    cJSON_Delete(pt);
    long long lid = id ? (long long)id->valuedouble : -1;
    int src = send_msg(m, q->msg, lid);
    if (src < 0) {
      struct pending *p = pending_find(m, lid);
      if (p) {
        struct lc_mcp_reply r = {.rc = src == LC_ENOMEM ? LC_ENOMEM : LC_EIO,
                                 .message = send_failed(src)};
        reply(m, p, &r);
      }
    }
    lc_free(q);
  }
}

/* ---- handshake ---- */

static int known_version(const char *v) {
  return !strcmp(v, LC_MCP_V_STATELESS) || !strcmp(v, LC_MCP_V_2025_11) ||
         !strcmp(v, LC_MCP_V_2025_06) || !strcmp(v, LC_MCP_V_2025_03);
}

static void became_ready(struct lc_mcp *m, const cJSON *info) {
  cJSON_Delete(m->info);
  m->info = cJSON_Duplicate(info, 1);
  m->st = ST_READY;
  lc_timer_stop(m->loop, &m->hs_timer);
  set_ready(m, 0, NULL);
  if (m->url && strcmp(m->version, LC_MCP_V_STATELESS)) get_open(m);
  flush_queue(m);
}

static void init_reply(void *ud, const struct lc_mcp_reply *r) {
  struct lc_mcp *m = ud;
  if (m->st == ST_DEAD) return;
  if (r->rc) {
    die(m, "MCP initialize failed: %s", r->message ? r->message : "?");
    return;
  }
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->result,
                                                    "protocolVersion");
  if (!cJSON_IsString(v) || !known_version(v->valuestring) ||
      !strcmp(v->valuestring, LC_MCP_V_STATELESS)) {
    die(m, "MCP server speaks protocol revision %s; luact speaks %s, %s and %s",
        cJSON_IsString(v) ? v->valuestring : "(none)", LC_MCP_V_2025_11,
        LC_MCP_V_2025_06, LC_MCP_V_2025_03);
    return;
  }
  snprintf(m->version, sizeof m->version, "%s", v->valuestring);
  cJSON *n = new_msg("notifications/initialized");
  if (n) send_msg(m, n, -1);
  became_ready(m, r->result);
}

static void send_initialize(struct lc_mcp *m) {
  m->st = ST_INIT;
  cJSON *p = cJSON_CreateObject();
  const char *offer = LC_MCP_V_2025_11;
  if (m->max_version && !strcmp(m->max_version, LC_MCP_V_2025_06))
    offer = LC_MCP_V_2025_06;
  cJSON_AddStringToObject(p, "protocolVersion", offer);
  cJSON *caps = cJSON_AddObjectToObject(p, "capabilities");
  cJSON_AddObjectToObject(caps, "elicitation");
  cJSON *ci = cJSON_AddObjectToObject(p, "clientInfo");
  cJSON_AddStringToObject(ci, "name", "luact");
  cJSON_AddStringToObject(ci, "version", LUACT_VERSION);
  if (start_request(m, "initialize", p, 0, 0, init_reply, m, 1, NULL) < 0)
    die(m, "cannot send initialize to the MCP server");
}

static void discover_reply(void *ud, const struct lc_mcp_reply *r) {
  struct lc_mcp *m = ud;
  if (m->st == ST_DEAD) return;
  const cJSON *sv = r->rc ? NULL
                          : cJSON_GetObjectItemCaseSensitive(r->result,
                                                             "supportedVersions");
  int ok = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, sv) {
    if (cJSON_IsString(e) && !strcmp(e->valuestring, LC_MCP_V_STATELESS)) ok = 1;
  }
  if (ok) {
    snprintf(m->version, sizeof m->version, "%s", LC_MCP_V_STATELESS);
    became_ready(m, r->result);
    return;
  }
  if (r->rc == LC_EIO && m->st == ST_DEAD) return;
  /* Not a stateless server (method not found, or "not initialized"):
   * the stateful handshake. Over HTTP a refused POST is an HTTP error,
   * also a reason to fall back. */
  send_initialize(m);
}

static void hs_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_mcp *m = t->ud;
  die(m, "MCP server did not complete the handshake in time");
}

/* ---- inbound dispatch ---- */

static int flood(struct lc_mcp *m) {
  double now = lc_now_ms();
  if (m->flood_at == 0) m->flood_at = now, m->flood_tokens = FLOOD_BURST;
  m->flood_tokens += (now - m->flood_at) / 1000.0 * FLOOD_RATE;
  if (m->flood_tokens > FLOOD_BURST) m->flood_tokens = FLOOD_BURST;
  m->flood_at = now;
  if (m->flood_tokens < 1) return 1;
  m->flood_tokens -= 1;
  return 0;
}

static void bad_line(struct lc_mcp *m, const char *p, size_t n,
                     const char *why) {
  if (m->n_bad++ == 0) {
    size_t k = 0;
    char *o = m->first_bad;
    for (size_t i = 0; i < n && k < 60; i++) {
      unsigned char c = (unsigned char)p[i];
      o[k++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    snprintf(o + k, sizeof m->first_bad - k, "%s: %s", n > 60 ? "..." : "",
             why);
  }
  if (m->n_bad > MAX_BAD_LINES)
    die(m, "MCP server broke the protocol: %ld bad messages (first: %s)",
        m->n_bad, m->first_bad);
}

/* The usual answer to a tool call as the SDK's servers write it,
 * {"result":{"content":[{"type":"text","text":"..."}]},"jsonrpc":"2.0","id":N}
 * byte for byte, its text without escapes or control bytes, to a request
 * made with text_ok: read without a cJSON tree (~16 allocations and the
 * tree's delete per answer). Fixed keys, no duplicates: what lc_jr_parse
 * and the caller's one-text reading make of it is certain; a line that
 * differs by one byte (whitespace, key order, an escape, more members, an
 * unknown or too long id) goes the general way, checks and all.
 * Returns 1 when it answered the request. */
static int fast_text_answer(struct lc_mcp *m, const char *p, size_t n) {
  long long id;
  const char *t;
  size_t len;
  if (!lc_jr_text_answer(p, n, &id, &t, &len)) return 0;
  struct pending *pd = pending_find(m, id);
  if (!pd || !pd->text_ok) return 0;
  m->n_in++;
  m->in_dispatch++;
  struct lc_mcp_reply r = {.rc = 0, .text = t, .text_len = len};
  reply(m, pd, &r);
  m->in_dispatch--;
  return 1;
}

static void dispatch(struct lc_mcp *m, const char *p, size_t n) {
  if (m->st == ST_DEAD) return;
  if (m->pending && fast_text_answer(m, p, n)) return;
  struct lc_jr_msg msg;
  char err[128];
  if (lc_jr_parse(p, n, &msg, err, sizeof err) < 0) {
    bad_line(m, p, n, err);
    return;
  }
  m->n_in++;
  m->in_dispatch++;
  switch (msg.kind) {
  case LC_JR_RESPONSE: {
    struct pending *pd = msg.id_num >= 0 ? pending_find(m, msg.id_num) : NULL;
    if (!pd) {
      /* A late answer to a request we gave up on is expected. */
      if (m->n_abandoned > 0) {
        m->n_abandoned--;
        break;
      }
      if (++m->n_unknown > MAX_UNKNOWN_IDS)
        die(m, "MCP server sent %ld responses to requests never made",
            m->n_unknown);
      break;
    }
    /* The result leaves the message so that the callback can keep it
     * instead of copying it (a large result is copied once less). */
    cJSON *res = msg.result ? cJSON_DetachItemViaPointer(msg.root, (cJSON *)msg.result)
                            : NULL;
    struct lc_mcp_reply r = {.rc = msg.error ? LC_EINVAL : 0,
                             .result = res,
                             .code = msg.err_code,
                             .message = msg.err_msg,
                             .take = res ? &res : NULL};
    reply(m, pd, &r);
    cJSON_Delete(res); /* NULL when the callback took it */
    break;
  }
  case LC_JR_NOTIFICATION:
    if (flood(m)) {
      die(m, "MCP server flooded the client with notifications");
      break;
    }
    if (m->ev.notification) m->ev.notification(m->ev.ud, msg.method, msg.params);
    break;
  case LC_JR_REQUEST:
    if (flood(m)) {
      die(m, "MCP server flooded the client with requests");
      break;
    }
    if (!strcmp(msg.method, "ping")) {
      lc_mcp_respond(m, msg.id, cJSON_CreateObject());
    } else if (m->ev.request) {
      m->ev.request(m->ev.ud, msg.id, msg.method, msg.params);
    } else {
      lc_mcp_respond_error(m, msg.id, -32601, "Method not found");
    }
    break;
  }
  m->in_dispatch--;
  cJSON_Delete(msg.root);
}

/* ---- public ---- */

int lc_mcp_open(struct lc_loop *loop, const struct lc_mcp_config *cfg,
                const struct lc_mcp_events *ev, struct lc_mcp **out,
                char *err, size_t errlen) {
  *out = NULL;
  if (!!cfg->url == !!(cfg->argv && cfg->argv[0])) {
    snprintf(err, errlen, "give a command or a url");
    return LC_EINVAL;
  }
  struct lc_mcp *m = lc_calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  m->loop = loop;
  m->ev = *ev;
  m->max_version = cfg->max_version;
  m->max_message = cfg->max_message ? cfg->max_message : (4u << 20);
  m->pid = -1;
  m->infd = m->outfd = m->errfd = -1;
  m->queue_tail = &m->queue;
  m->inbox_tail = &m->inbox;
  lc_buf_init(&m->outq, 0);
  lc_jr_split_init(&m->split, m->max_message);
  lc_timer_init(&m->hs_timer, hs_fire, m);
  lc_timer_init(&m->in_timer, in_fire, m);
  lc_timer_init(&m->ready_timer, ready_fire, m);
  lc_timer_init(&m->out_timer, out_fire, m);
  int rc;
  if (cfg->url) {
    if (strncmp(cfg->url, "http://", 7) && strncmp(cfg->url, "https://", 8)) {
      snprintf(err, errlen, "url must be http:// or https://");
      lc_mcp_free(m);
      return LC_EINVAL;
    }
    m->url = lc_strdup(cfg->url);
    size_t nh = 0;
    while (cfg->headers && cfg->headers[nh]) nh++;
    m->headers = lc_calloc(nh + 1, sizeof *m->headers);
    rc = m->url && m->headers ? 0 : LC_ENOMEM;
    for (size_t i = 0; !rc && i < nh; i++) {
      if (strpbrk(cfg->headers[i], "\r\n")) {
        snprintf(err, errlen, "a header contains a line break");
        rc = LC_EINVAL;
        break;
      }
      m->headers[i] = lc_strdup(cfg->headers[i]);
      if (!m->headers[i]) rc = LC_ENOMEM;
      else m->n_headers++;
    }
    if (rc == LC_ENOMEM) snprintf(err, errlen, "out of memory");
    if (!rc && cfg->auth) {
      struct lc_oauth_events oev = {
          .authorize = auth_authorize, .done = auth_done, .ud = m};
      rc = lc_oauth_new(loop, m->url, cfg->auth, &oev, &m->oauth, err, errlen);
    }
  } else {
    rc = stdio_start(m, cfg, err, errlen);
  }
  if (rc < 0) {
    lc_mcp_free(m);
    return rc;
  }
  double hs = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 30000;
  m->hs_ms = hs;
  lc_timer_start(loop, &m->hs_timer, hs);
  int stateless = !m->max_version || !strcmp(m->max_version, LC_MCP_V_STATELESS);
  if (stateless) {
    m->st = ST_DISCOVER;
    cJSON *p = cJSON_CreateObject();
    cJSON *meta = p ? cJSON_AddObjectToObject(p, "_meta") : NULL;
    if (meta) {
      cJSON_AddStringToObject(meta, "io.modelcontextprotocol/protocolVersion",
                              LC_MCP_V_STATELESS);
      cJSON_AddObjectToObject(meta, "io.modelcontextprotocol/clientCapabilities");
    }
    int src = start_request(m, "server/discover", p, 0, 0, discover_reply, m, 1, NULL);
    if (src < 0) die(m, "%s", send_failed(src));
  } else {
    send_initialize(m);
  }
  *out = m;
  return 0;
}

int lc_mcp_call(struct lc_mcp *m, const char *method, cJSON *params,
                double timeout_ms, long long progress_token,
                lc_mcp_reply_fn fn, void *ud, long long *id_out) {
  if (m->st == ST_DEAD) {
    cJSON_Delete(params);
    return LC_EIO;
  }
  return start_request(m, method, params, timeout_ms, progress_token, fn, ud,
                       0, id_out);
}

/* A method name that JSON carries as is (no escape needed). */
static int plain_method(const char *s) {
  if (!*s) return 0;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return 0;
  }
  return 1;
}

static int bput(struct lc_buf *b, const char *s) { return lc_buf_puts(b, s); }

/* The request line, written as text: params is the JSON text of an
 * object; _meta (progress token, the stateless revision's fields) is added
 * as its last member, as add_meta does on a tree. */
static int request_line(struct lc_mcp *m, struct lc_buf *b, const char *method,
                        long long id, const char *params, size_t n, long long progress) {
  int stateless = !strcmp(m->version, LC_MCP_V_STATELESS);
  int rc = bput(b, "{\"jsonrpc\":\"2.0\",\"method\":\"");
  rc = rc ? rc : bput(b, method);
  if (!rc) { /* the id by hand: a printf per request was ~1% of a call */
    char t[48] = "\",\"id\":", d[24];
    size_t k = 0, at = 7;
    unsigned long long v = id < 0 ? 0 - (unsigned long long)id : (unsigned long long)id;
    do d[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (id < 0) t[at++] = '-';
    while (k) t[at++] = d[--k];
    memcpy(t + at, ",\"params\":", 10);
    rc = lc_buf_append(b, t, at + 10);
  }
  if (rc) return rc;
  if (!stateless && !progress) {
    rc = lc_buf_append(b, params, n);
  } else {
    /* "{...}" less its "}", then ",_meta:{...}}" */
    rc = lc_buf_append(b, params, n - 1);
    rc = rc ? rc : bput(b, n > 2 ? ",\"_meta\":{" : "\"_meta\":{");
    if (!rc && progress) rc = lc_buf_printf(b, "\"progressToken\":%lld", progress);
    if (!rc && stateless)
      rc = lc_buf_printf(b, "%s\"io.modelcontextprotocol/protocolVersion\":\"%s\","
                            "\"io.modelcontextprotocol/clientCapabilities\":"
                            "{\"elicitation\":{}}",
                         progress ? "," : "", m->version);
    rc = rc ? rc : bput(b, "}}");
  }
  return rc ? rc : bput(b, "}");
}

int lc_mcp_call_text(struct lc_mcp *m, const char *method, const char *params, size_t n,
                     double timeout_ms, long long progress_token, int text_ok,
                     lc_mcp_reply_fn fn, void *ud, long long *id_out) {
  if (m->st == ST_DEAD) return LC_EIO;
  int has_meta = 0; /* from quote to quote (memchr), not byte by byte */
  for (const char *q = params, *end = params + n;
       !has_meta && (q = memchr(q, '"', (size_t)(end - q))) != NULL; q++)
    if ((size_t)(end - q) >= 7 && !memcmp(q, "\"_meta\"", 7)) has_meta = 1;
  if (m->st != ST_READY || !plain_method(method) || n < 2 || params[0] != '{' ||
      params[n - 1] != '}' || has_meta) {
    /* Before ready (queued, _meta added at the flush), or a _meta of the
     * caller's own to merge into: the tree path. */
    char err[96];
    cJSON *tree = lc_json_parse(params, n, err, sizeof err);
    if (!tree) return LC_EINVAL;
    return lc_mcp_call(m, method, tree, timeout_ms, progress_token, fn, ud, id_out);
  }
  struct pending *p = lc_calloc(1, sizeof *p);
  if (!p) return LC_ENOMEM;
  long long id = ++m->next_id;
  long long progress = progress_token < 0 ? id : progress_token;
  p->m = m;
  p->id = id;
  p->fn = fn;
  p->ud = ud;
  p->text_ok = text_ok;
  lc_timer_init(&p->timer, timeout_fire, p);
  if (timeout_ms > 0 && lc_timer_start(m->loop, &p->timer, timeout_ms) < 0) {
    lc_free(p);
    return LC_ENOMEM;
  }
  int rc;
  if (!m->url) {
    /* stdio: straight into the outgoing bytes, one copy less */
    if (m->infd < 0) rc = LC_EIO;
    else {
      size_t mark = m->outq.len;
      rc = request_line(m, &m->outq, method, id, params, n, progress);
      rc = rc ? rc : lc_buf_append(&m->outq, "\n", 1);
      if (rc) { /* no half line */
        m->outq.len = mark;
        if (m->outq.data) m->outq.data[mark] = '\0';
      }
    }
  } else {
    struct lc_buf b;
    lc_buf_init(&b, 0);
    rc = request_line(m, &b, method, id, params, n, progress);
    if (!rc) rc = http_send(m, b.data, id);
    lc_buf_free(&b);
  }
  if (rc < 0) {
    lc_timer_stop(m->loop, &p->timer);
    lc_free(p);
    return rc == LC_EIO ? LC_EIO : LC_ENOMEM;
  }
  pending_link(m, p);
  if (id_out) *id_out = id;
  if (!m->url) {
    /* Alone in flight: out now (a timer would cost this pass a second
     * poll). With others in flight, many tasks are calling: the pass's
     * requests share one write, after its tasks ran. Nothing to do while
     * the pipe is full: its watcher writes when it drains. */
    if (!m->pending->next) flush_in(m);
    else if (!m->w_in_on && !lc_timer_active(&m->out_timer) &&
             lc_timer_start(m->loop, &m->out_timer, 0) < 0)
      flush_in(m);
  }
  return 0;
}

void lc_mcp_cancel(struct lc_mcp *m, long long id, const char *reason) {
  struct pending *p = pending_find(m, id);
  if (!p) return;
  int queued = 0;
  for (struct queued **qq = &m->queue; *qq; qq = &(*qq)->next) {
    cJSON *qid = cJSON_GetObjectItemCaseSensitive((*qq)->msg, "id");
    if (qid && (long long)qid->valuedouble == id) {
      struct queued *q = *qq;
      *qq = q->next;
      if (m->queue_tail == &q->next) m->queue_tail = qq;
      cJSON_Delete(q->msg);
      lc_free(q);
      queued = 1;
      break;
    }
  }
  pending_unlink(m, p);
  lc_free(p);
  if (queued || m->st != ST_READY) return;
  m->n_abandoned++;
  if (m->url) drop_post(m, id);
  cJSON *params = cJSON_CreateObject();
  if (!params) return;
  cJSON_AddNumberToObject(params, "requestId", (double)id);
  if (reason) cJSON_AddStringToObject(params, "reason", reason);
  lc_mcp_notify(m, "notifications/cancelled", params);
}

int lc_mcp_notify(struct lc_mcp *m, const char *method, cJSON *params) {
  cJSON *n = m->st == ST_DEAD ? NULL : new_msg(method);
  if (!n) {
    cJSON_Delete(params);
    return m->st == ST_DEAD ? LC_EIO : LC_ENOMEM;
  }
  if (params) cJSON_AddItemToObject(n, "params", params);
  return send_msg(m, n, -1);
}

int lc_mcp_respond(struct lc_mcp *m, const cJSON *id, cJSON *result) {
  cJSON *n = m->st == ST_DEAD ? NULL : new_msg(NULL);
  cJSON *idc = n ? cJSON_Duplicate(id, 0) : NULL;
  if (!n || !idc || !result) {
    cJSON_Delete(n);
    cJSON_Delete(idc);
    cJSON_Delete(result);
    return m->st == ST_DEAD ? LC_EIO : LC_ENOMEM;
  }
  cJSON_AddItemToObject(n, "id", idc);
  cJSON_AddItemToObject(n, "result", result);
  return send_msg(m, n, -1);
}

int lc_mcp_respond_error(struct lc_mcp *m, const cJSON *id, int code,
                         const char *message) {
  cJSON *n = m->st == ST_DEAD ? NULL : new_msg(NULL);
  cJSON *idc = n ? cJSON_Duplicate(id, 0) : NULL;
  cJSON *e = cJSON_CreateObject();
  if (!n || !idc || !e) {
    cJSON_Delete(n);
    cJSON_Delete(idc);
    cJSON_Delete(e);
    return m->st == ST_DEAD ? LC_EIO : LC_ENOMEM;
  }
  cJSON_AddNumberToObject(e, "code", code);
  cJSON_AddStringToObject(e, "message", message ? message : "");
  cJSON_AddItemToObject(n, "id", idc);
  cJSON_AddItemToObject(n, "error", e);
  return send_msg(m, n, -1);
}

const char *lc_mcp_version(const struct lc_mcp *m) {
  return m->st == ST_READY ? m->version : "";
}
const cJSON *lc_mcp_server_info(const struct lc_mcp *m) { return m->info; }
const char *lc_mcp_dead(const struct lc_mcp *m) {
  return m->st == ST_DEAD ? m->dead : NULL;
}
void lc_mcp_stats(const struct lc_mcp *m, long *in, long *bad,
                  long *unknown) {
  if (in) *in = m->n_in;
  if (bad) *bad = m->n_bad;
  if (unknown) *unknown = m->n_unknown;
}

int lc_mcp_pid(const struct lc_mcp *m) {
  return m->exited ? -1 : (int)m->pid;
}

void lc_mcp_free(struct lc_mcp *m) {
  if (!m) return;
  m->st = ST_DEAD; /* no more sends */
  if (!m->dead[0]) snprintf(m->dead, sizeof m->dead, "MCP session closed");
  stdio_stop(m);
  http_stop(m);
  lc_oauth_free(m->oauth); /* tokens zeroed */
  m->oauth = NULL;
  fail_all(m, LC_ECANCEL, "MCP session closed");
  lc_timer_stop(m->loop, &m->hs_timer);
  lc_timer_stop(m->loop, &m->in_timer);
  lc_timer_stop(m->loop, &m->ready_timer);
  lc_timer_stop(m->loop, &m->out_timer);
  while (m->inbox) {
    struct inmsg *x = m->inbox;
    m->inbox = x->next;
    lc_free(x);
  }
  lc_buf_free(&m->outq);
  lc_jr_split_free(&m->split);
  cJSON_Delete(m->info);
  for (size_t i = 0; i < m->n_headers; i++) lc_free(m->headers[i]);
  lc_free(m->headers);
  lc_free(m->url);
  lc_free(m->session_id);
  lc_free(m);
}
