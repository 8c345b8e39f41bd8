/* mock_http.c: one HTTP/1.1 connection: parse requests (split reads,
 * pipelining, Expect: 100-continue, body limit), answer them and write the
 * response with the scripted faults (delay, pacing, cut, stall).
 *
 * Every wait also watches the server's stop pipe, so SIGTERM ends a stalled
 * or paced response at once instead of after its timeout. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mock.h"

#define HEADER_LIMIT (64 * 1024)
#define IDLE_TIMEOUT_MS (120 * 1000)
#define IO_TIMEOUT_MS (30 * 1000)
#define DRAIN_MS 2000

struct conn {
  struct mock_server *srv;
  int fd;
  struct mbuf in;
};

/* 1 = fd ready, 0 = timeout, -1 = server stopping or poll failed. */
static int wait_fd(struct conn *c, short events, int timeout_ms) {
  struct pollfd p[2] = {{c->fd, events, 0}, {c->srv->stop_fd, POLLIN, 0}};
  double end = mock_now_ms() + timeout_ms;
  for (;;) {
    int left = timeout_ms < 0 ? -1 : (int)(end - mock_now_ms());
    if (timeout_ms >= 0 && left < 0) left = 0;
    int r = poll(p, 2, left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || p[1].revents) return -1;
    return r > 0;
  }
}

/* A pause that ends early only when the server stops (-1). */
static int pause_ms(struct conn *c, long ms) {
  if (ms <= 0) return 0;
  struct pollfd p = {c->srv->stop_fd, POLLIN, 0};
  double end = mock_now_ms() + ms;
  for (;;) {
    double left = end - mock_now_ms();
    if (left <= 0) return 0;
    int r = poll(&p, 1, (int)left + 1);
    if (r > 0) return -1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

/* Appends what the socket has to c->in: >0 bytes, 0 EOF, -1 error/timeout/stop. */
static long read_more(struct conn *c, int timeout_ms) {
  char tmp[16384];
  for (;;) {
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n > 0) {
      mbuf_add(&c->in, tmp, (size_t)n);
      return n;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (wait_fd(c, POLLIN, timeout_ms) <= 0) return -1;
  }
}

static int send_all(struct conn *c, const void *p, size_t n) {
  const char *s = p;
  while (n > 0) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    if (w > 0) {
      s += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_fd(c, POLLOUT, IO_TIMEOUT_MS) <= 0) return -1;
      continue;
    }
    return -1;
  }
  return 0;
}

static const char *reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 408: return "Request Timeout";
  case 413: return "Payload Too Large";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 529: return "Overloaded";
  default: return "Status";
  }
}

/* Holds a stalled response open until the client hangs up, the server
 * stops, or max_ms passes, discarding anything the client sends. */
static void stall(struct conn *c, long max_ms) {
  double end = mock_now_ms() + max_ms;
  char tmp[4096];
  for (;;) {
    double left = end - mock_now_ms();
    if (left <= 0) return;
    if (wait_fd(c, POLLIN, (int)left) <= 0) return;
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

/* Writes one body piece, framed when chunked. */
static int send_piece(struct conn *c, const struct mock_response *r, const char *p, size_t n) {
  if (n == 0) return 0;
  if (!r->chunked) return send_all(c, p, n);
  char hdr[32];
  int h = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
  if (send_all(c, hdr, (size_t)h) < 0 || send_all(c, p, n) < 0) return -1;
  return send_all(c, "\r\n", 2);
}

/* Returns 0 when the connection may serve another request, -1 to close.
 * A response to HEAD carries the headers a GET would get and no body
 * (RFC 9110 9.3.2): a body there would be read as the next response on a
 * kept-alive connection. */
static int send_response(struct conn *c, struct mock_response *r, int keep_alive,
                         int head_only) {
  if (pause_ms(c, r->delay_ms) < 0) return -1;
  int close_after = r->close || !keep_alive;
  struct mbuf h = {0};
  mbuf_printf(&h, "HTTP/1.1 %d %s\r\n", r->status, reason(r->status));
  for (size_t i = 0; i < r->nheaders; i++)
    mbuf_printf(&h, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
  if (r->chunked) mbuf_puts(&h, "Transfer-Encoding: chunked\r\n");
  else mbuf_printf(&h, "Content-Length: %zu\r\n", r->body.len);
  mbuf_printf(&h, "Connection: %s\r\n\r\n", close_after ? "close" : "keep-alive");
  int rc = send_all(c, h.p, h.len);
  mbuf_free(&h);
  if (rc < 0) return -1;
  if (head_only) return close_after ? -1 : 0;

  /* The body goes out in pieces: fixed chunk_bytes, else the generator's
   * event boundaries, else whole. Cut and stall limits count body bytes. */
  size_t limit = r->body.len;
  int cut = 0, stalled = 0;
  if (r->cut_after_bytes >= 0 && (size_t)r->cut_after_bytes < limit) {
    limit = (size_t)r->cut_after_bytes;
    cut = 1;
  }
  if (r->stall_after_bytes >= 0 && (size_t)r->stall_after_bytes <= limit &&
      (size_t)r->stall_after_bytes < r->body.len) {
    limit = (size_t)r->stall_after_bytes;
    stalled = 1;
    cut = 0;
  }
  size_t off = 0, mark = 0;
  while (off < limit) {
    size_t end;
    if (r->chunk_bytes > 0) {
      end = off + (size_t)r->chunk_bytes;
    } else {
      while (mark < r->nmarks && r->marks[mark] <= off) mark++;
      end = mark < r->nmarks ? r->marks[mark] : r->body.len;
    }
    if (end > limit) end = limit;
    if (off > 0 && pause_ms(c, r->gap_ms) < 0) return -1;
    if (send_piece(c, r, r->body.p + off, end - off) < 0) return -1;
    off = end;
  }
  if (stalled) {
    stall(c, r->stall_max_ms);
    return -1;
  }
  if (cut) {
    /* Leave Content-Length unmet / the chunked terminator off. */
    return -1;
  }
  if (r->chunked && send_all(c, "0\r\n\r\n", 5) < 0) return -1;
  return close_after ? -1 : 0;
}

/* After an error reply on a connection whose request body we won't read:
 * stop writing and swallow input for a moment so the client sees the reply
 * rather than a reset (what servers call a lingering close). */
static void linger_close(struct conn *c) {
  shutdown(c->fd, SHUT_WR);
  double end = mock_now_ms() + DRAIN_MS;
  char tmp[16384];
  for (;;) {
    double left = end - mock_now_ms();
    if (left <= 0) return;
    if (wait_fd(c, POLLIN, (int)left) <= 0) return;
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

static void reply_error_and_close(struct conn *c, int status, const char *msg) {
  struct mock_response r;
  mock_resp_init(&r);
  mock_resp_error(&r, status, "mock_http_error", msg);
  r.close = 1;
  send_response(c, &r, 0, 0);
  mock_resp_free(&r);
  linger_close(c);
}

static char *trim(char *s, char *e) {
  while (s < e && (*s == ' ' || *s == '\t')) s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
  *e = '\0';
  return s;
}

/* Parses the head (request line + headers, NUL-terminated in place).
 * Returns 0 or an HTTP status for a malformed head. */
static int parse_head(char *head, struct mock_request *req, int *http10) {
  char *eol = strstr(head, "\r\n");
  if (!eol) return 400;
  *eol = '\0';
  char *sp1 = strchr(head, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) return 400;
  *http10 = strcmp(sp2 + 1, "HTTP/1.0") == 0;
  req->method = xstrndup(head, (size_t)(sp1 - head));
  req->target = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
  size_t plen = strcspn(req->target, "?");
  req->path = xstrndup(req->target, plen);
  char *line = eol + 2;
  while (*line) {
    char *e = strstr(line, "\r\n");
    if (!e) e = line + strlen(line);
    char *colon = memchr(line, ':', (size_t)(e - line));
    if (!colon || colon == line) return 400;
    char *next = *e ? e + 2 : e;
    *colon = '\0';
    char *v = trim(colon + 1, e);
    req->headers = xrealloc(req->headers, (req->nheaders + 1) * sizeof *req->headers);
    req->headers[req->nheaders].name = xstrdup(line);
    req->headers[req->nheaders].value = xstrdup(v);
    req->nheaders++;
    line = next;
  }
  return 0;
}

static int has_token(const char *v, const char *tok) {
  return v && strcasestr(v, tok) != NULL;
}

/* Reads, answers and writes one request. 0 = keep the connection, -1 = close. */
static int serve_one(struct conn *c) {
  struct mock_server *srv = c->srv;
  char *hend;
  while (!(hend = c->in.p ? memmem(c->in.p, c->in.len, "\r\n\r\n", 4) : NULL)) {
    if (c->in.len > HEADER_LIMIT) {
      reply_error_and_close(c, 431, "request head too large");
      return -1;
    }
    if (read_more(c, c->in.len ? IO_TIMEOUT_MS : IDLE_TIMEOUT_MS) <= 0) return -1;
  }
  size_t head_len = (size_t)(hend - c->in.p) + 4;
  char *head = xstrndup(c->in.p, head_len - 2); /* keep one CRLF for the parser */
  struct mock_request req = {0};
  int http10 = 0;
  int bad = parse_head(head, &req, &http10);
  free(head);
  if (bad) {
    mock_request_free(&req);
    reply_error_and_close(c, bad, "malformed request head");
    return -1;
  }

  const char *te = mock_req_header(&req, "Transfer-Encoding");
  if (te && strcasecmp(te, "identity") != 0) {
    mock_request_free(&req);
    reply_error_and_close(c, 501, "chunked request bodies are not supported");
    return -1;
  }
  const char *cl = mock_req_header(&req, "Content-Length");
  unsigned long long body_len = 0;
  if (cl) {
    char *end;
    errno = 0;
    body_len = strtoull(cl, &end, 10);
    if (errno || end == cl || *end) {
      mock_request_free(&req);
      reply_error_and_close(c, 400, "bad Content-Length");
      return -1;
    }
  }
  if (body_len > srv->max_body) {
    /* With Expect: 100-continue the client has not sent the body and won't. */
    mock_request_free(&req);
    reply_error_and_close(c, 413, "request body over the mock's --max-body limit");
    return -1;
  }
  if (has_token(mock_req_header(&req, "Expect"), "100-continue") &&
      c->in.len < head_len + body_len &&
      send_all(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0) {
    mock_request_free(&req);
    return -1;
  }
  while (c->in.len < head_len + body_len) {
    if (read_more(c, IO_TIMEOUT_MS) <= 0) {
      mock_request_free(&req);
      return -1;
    }
  }
  req.body = xstrndup(c->in.p + head_len, (size_t)body_len);
  req.body_len = (size_t)body_len;
  req.json = body_len ? cJSON_ParseWithLength(req.body, req.body_len) : NULL;
  /* Keep any pipelined bytes of the next request. */
  size_t used = head_len + (size_t)body_len;
  memmove(c->in.p, c->in.p + used, c->in.len - used + 1);
  c->in.len -= used;

  const char *conn_hdr = mock_req_header(&req, "Connection");
  int keep_alive = http10 ? has_token(conn_hdr, "keep-alive") : !has_token(conn_hdr, "close");

  struct mock_response resp;
  mock_resp_init(&resp);
  int control = strncmp(req.path, "/_", 2) == 0;
  if (control) {
    mock_control(srv, &req, &resp);
  } else {
    pthread_mutex_lock(&srv->lock);
    srv->requests++;
    if (++srv->in_flight > srv->peak_in_flight) srv->peak_in_flight = srv->in_flight;
    pthread_mutex_unlock(&srv->lock);
    mock_answer(srv, &req, &resp);
    mock_log_request(srv, &req, resp.delay_ms);
  }
  int head_only = strcasecmp(req.method, "HEAD") == 0;
  mock_request_free(&req);
  int rc = send_response(c, &resp, keep_alive, head_only);
  mock_resp_free(&resp);
  if (!control) {
    pthread_mutex_lock(&srv->lock);
    srv->in_flight--;
    pthread_mutex_unlock(&srv->lock);
  }
  return rc;
}

void *mock_conn_main(void *arg) {
  struct mock_conn_arg *a = arg;
  struct conn c = {.srv = a->srv, .fd = a->fd};
  free(a);
  while (serve_one(&c) == 0) {
  }
  close(c.fd);
  mbuf_free(&c.in);
  pthread_mutex_lock(&c.srv->lock);
  c.srv->live_conns--;
  pthread_cond_broadcast(&c.srv->conns_cv);
  pthread_mutex_unlock(&c.srv->lock);
  return NULL;
}
