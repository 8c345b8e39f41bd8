/* http.c: curl easy setup for one transfer, response capture with a size
 * limit, idle timeout, and completion through the loop. */
#include "http.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cnum.h"
#include "lc.h"
#include "sigv4.h"

/* ---- easy handle pool ----
 * A few reset easy handles per thread: curl_easy_init + curl_easy_cleanup
 * cost about 12k instructions per transfer (a multi-KB calloc and the
 * handle's setup), curl_easy_reset a fraction of that. A reset handle keeps
 * nothing of its last transfer that matters: options, our header list and
 * credentials are gone, and connections, DNS and TLS session caches live in
 * the loop's multi handle, not in the easy handle. Per thread (each worker
 * has its own loop) and without lc_malloc, so the allocator's live-block
 * count that tests check is unchanged; a thread-exit destructor frees it. */
#define POOL_MAX 32
static _Thread_local CURL *pool[POOL_MAX];
static _Thread_local int npool;
static pthread_key_t pool_key;

static void pool_drain(void *unused) {
  (void)unused;
  while (npool > 0) curl_easy_cleanup(pool[--npool]);
}

static CURL *easy_get(void) {
  if (npool > 0) return pool[--npool];
  return curl_easy_init();
}

static void easy_put(CURL *e) {
  if (npool == POOL_MAX) {
    curl_easy_cleanup(e);
    return;
  }
  curl_easy_reset(e);
  /* Any non-NULL value arms the destructor for this thread. */
  if (npool == 0) pthread_setspecific(pool_key, (void *)1);
  pool[npool++] = e;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  pthread_key_create(&pool_key, pool_drain);
}
void lc_http_global_init(void) { pthread_once(&global_once, global_init); }

void lc_http_op_init(struct lc_http_op *op) {
  memset(op, 0, sizeof *op);
  lc_buf_init(&op->body, 0);
  lc_buf_init(&op->headers, LC_HTTP_MAX_HEADER_BYTES);
  lc_timer_init(&op->idle_timer, NULL, op);
}

static int is_2xx(long st) { return st >= 200 && st < 300; }

/* CURLOPT_WRITEFUNCTION: only buffers or feeds the sink; never touches Lua. */
static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  struct lc_http_op *op = ud;
  size_t len = size * n;
  op->last_byte_ms = lc_now_ms();
  if (op->sink && is_2xx(op->status)) {
    int rc = op->sink(op->sink_ud, p, len);
    if (rc < 0) {
      if (rc == LC_ENOMEM) op->err = LC_ENOMEM; /* not the stream's fault */
      else op->sink_failed = 1;
      return 0; /* aborts with CURLE_WRITE_ERROR */
    }
    return len;
  }
  int rc = lc_buf_append(&op->body, p, len);
  if (rc) {
    op->err = rc;
    return 0;
  }
  return len;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n && isspace((unsigned char)*v)) v++, n--;
  while (n && isspace((unsigned char)v[n - 1])) n--;
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

/* CURLOPT_HEADERFUNCTION: status line resets (100 Continue, redirects). */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct lc_http_op *op = ud;
  size_t len = size * n;
  op->last_byte_ms = lc_now_ms();
  if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
    const char *sp = memchr(p, ' ', len);
    op->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    op->content_type[0] = op->retry_after[0] = op->retry_after_ms[0] = '\0';
    op->amzn_error_type[0] = '\0';
    lc_buf_reset(&op->headers);
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon) return len;
  if (op->keep_headers) {
    size_t keep = len;
    while (keep && (p[keep - 1] == '\r' || p[keep - 1] == '\n')) keep--;
    int rc = lc_buf_append(&op->headers, p, keep);
    if (!rc) rc = lc_buf_append(&op->headers, "\n", 1);
    if (rc) {
      op->err = rc;
      op->headers_over = rc == LC_ETOOBIG;
      return 0; /* aborts the transfer */
    }
  }
  size_t klen = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vlen = len - klen - 1;
#define HDR(name, field)                                           \
  if (klen == sizeof(name) - 1 && strncasecmp(p, name, klen) == 0) \
    copy_value(op->field, sizeof op->field, v, vlen);
  HDR("content-type", content_type)
  HDR("retry-after", retry_after)
  HDR("retry-after-ms", retry_after_ms)
  HDR("x-request-id", request_id)
  HDR("request-id", request_id)
  HDR("x-amzn-requestid", request_id)
  HDR("x-amzn-errortype", amzn_error_type)
#undef HDR
  return len;
}

static void complete(struct lc_http_op *op, CURLcode res) {
  op->active = 0;
  lc_timer_stop(op->loop, &op->idle_timer);
  if (op->err == 0 && res != CURLE_OK) {
    if (op->sink_failed) {
      op->err = LC_EINVAL;
      snprintf(op->errmsg, sizeof op->errmsg, "stream rejected by its parser");
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
      double connect = 0;
      curl_easy_getinfo(op->easy, CURLINFO_CONNECT_TIME, &connect);
      op->err = LC_ETIMEOUT;
      op->timeout_kind = connect > 0 ? LC_HTTP_TO_TOTAL : LC_HTTP_TO_CONNECT;
    } else {
      op->err = res == CURLE_OUT_OF_MEMORY ? LC_ENOMEM : LC_EIO;
    }
    if (!op->errmsg[0] || op->err != LC_EINVAL) {
      /* "<curl's words>: <curl's detail>", cut to the buffer. */
      char detail[sizeof op->errmsg];
      memcpy(detail, op->errmsg, sizeof detail);
      const char *what = curl_easy_strerror(res);
      size_t n = strlen(what), cap = sizeof op->errmsg - 1;
      if (n > cap) n = cap;
      memcpy(op->errmsg, what, n);
      if (detail[0] && n + 2 < cap) {
        memcpy(op->errmsg + n, ": ", 2);
        n += 2;
        size_t d = strnlen(detail, sizeof detail);
        if (d > cap - n) d = cap - n;
        memcpy(op->errmsg + n, detail, d);
        n += d;
      }
      op->errmsg[n] = '\0';
    }
  } else if (op->err == LC_ENOMEM) {
    /* a callback could not keep a header or the body: not curl's "Failed
     * writing" */
    snprintf(op->errmsg, sizeof op->errmsg, "out of memory reading the response");
  } else if (op->err == LC_ETOOBIG) {
    if (op->headers_over)
      snprintf(op->errmsg, sizeof op->errmsg, "response headers over %zu bytes",
               op->headers.limit);
    else
      snprintf(op->errmsg, sizeof op->errmsg, "response body over %zu bytes",
               op->body.limit);
  }
  op->done(op, op->ud);
}

/* Loop completion callback (from check_multi_info, not a libcurl callback). */
static void on_done(void *ud, CURL *e, CURLcode res) { complete(ud, res); }

/* Idle timer: fires when no byte arrived for idle_ms. Removing the handle
 * here is allowed: this runs from the loop, not from libcurl. */
static void on_idle(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_http_op *op = t->ud;
  double quiet = lc_now_ms() - op->last_byte_ms;
  if (quiet < op->idle_ms) {
    lc_timer_start(loop, &op->idle_timer, op->idle_ms - quiet);
    return;
  }
  lc_loop_remove_easy(loop, op->easy);
  op->err = LC_ETIMEOUT;
  op->timeout_kind = LC_HTTP_TO_IDLE;
  snprintf(op->errmsg, sizeof op->errmsg, "no data received for %.0f ms (idle timeout)",
           op->idle_ms);
  complete(op, CURLE_OK);
}

int lc_http_start(struct lc_loop *loop, struct lc_http_op *op,
                  const struct lc_http_req *req, lc_http_sink_fn sink,
                  void *sink_ud, lc_http_done_fn done, void *ud) {
  if (op->active) return LC_ESTATE;
  lc_http_global_init();
  /* Reuse the easy handle across retries: it keeps nothing but options. */
  if (!op->easy) op->easy = easy_get();
  else curl_easy_reset(op->easy);
  if (!op->easy) return LC_ENOMEM;
  curl_slist_free_all(op->hdrs);
  op->hdrs = NULL;
  lc_free(op->body_copy);
  op->body_copy = NULL;
  lc_buf_reset(&op->body);
  lc_buf_reset(&op->headers);
  op->keep_headers = req->keep_headers;
  op->headers_over = 0;
  op->body.limit = req->max_body ? req->max_body : 16u << 20;
  op->status = 0;
  op->err = 0;
  op->sink_failed = 0;
  op->timeout_kind = LC_HTTP_TO_NONE;
  op->errmsg[0] = op->content_type[0] = op->retry_after[0] = '\0';
  op->retry_after_ms[0] = op->request_id[0] = op->amzn_error_type[0] = '\0';
  op->loop = loop;
  op->sink = sink;
  op->sink_ud = sink_ud;
  op->done = done;
  op->ud = ud;

  CURL *e = op->easy;
  for (size_t i = 0; i < req->n_headers; i++) {
    struct curl_slist *h = curl_slist_append(op->hdrs, req->headers[i]);
    if (!h) return LC_ENOMEM;
    op->hdrs = h;
  }
  /* libcurl adds "Expect: 100-continue" to POSTs over 1 MiB; one
   * round-trip less. Below that the header would only cost header
   * matching in libcurl on every request. */
  if (req->body && req->body_len >= (1u << 20)) {
    struct curl_slist *h = curl_slist_append(op->hdrs, "Expect:");
    if (!h) return LC_ENOMEM;
    op->hdrs = h;
  }
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
  if (req->body) {
    const char *body = req->body;
    if (!req->body_borrowed) {
      op->body_copy = lc_malloc(req->body_len ? req->body_len : 1);
      if (!op->body_copy) return LC_ENOMEM;
      memcpy(op->body_copy, req->body, req->body_len);
      body = op->body_copy;
    }
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  }
  if (req->aws_sigv4 && req->aws_userpwd && lc_sigv4_needed(req->url)) {
    /* A path with percent-escapes (a Bedrock model id's ':'): libcurl
     * before 8.14 signs it as sent where AWS wants it encoded once more
     * (sigv4.h), so it is signed here, now, like libcurl would. */
    char *auth = NULL, *date = NULL;
    int src = lc_sigv4_sign(req->aws_sigv4, req->aws_userpwd, req->method ? req->method : "POST",
                            req->url, req->headers, req->n_headers, req->body,
                            req->body ? req->body_len : 0, time(NULL), &auth, &date);
    struct curl_slist *h = src ? NULL : curl_slist_append(op->hdrs, auth);
    if (h) op->hdrs = h;
    struct curl_slist *h2 = h ? curl_slist_append(op->hdrs, date) : NULL;
    if (h2) op->hdrs = h2;
    lc_free(auth);
    lc_free(date);
    if (!h2) return src == LC_EINVAL ? LC_EINVAL : LC_ENOMEM;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
  } else if (req->aws_sigv4 && req->aws_userpwd) {
    /* libcurl signs the request (Authorization, x-amz-date) itself. */
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, req->aws_sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, req->aws_userpwd);
  }
  if (req->method) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
  /* A HEAD answer has no body whatever its Content-Length says. */
  if (req->method && strcasecmp(req->method, "HEAD") == 0)
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errmsg);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  /* Removing a transfer whose name is still being resolved would otherwise
   * join the resolver thread, blocking the loop (every task of the worker)
   * for as long as getaddrinfo takes; with it, libcurl leaves that thread
   * to finish on its own (7.87+). */
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  /* libcurl's default 16 KiB receive buffer is allocated per transfer and
   * held while the agent waits: at 10,000 waiting agents 4 KiB cost 28 MB
   * more than 1 KiB. 1 KiB is libcurl's minimum; a bigger answer takes a
   * few more reads (a microsecond each) while a model takes seconds. */
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
  if (!req->no_compress) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000));
  if (req->total_timeout_ms > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->total_timeout_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "luact/" LUACT_VERSION);

  op->started_ms = op->last_byte_ms = lc_now_ms();
  op->idle_ms = req->idle_timeout_ms;
  op->idle_timer.cb = on_idle;
  op->idle_timer.ud = op;
  int rc = lc_loop_add_easy(loop, e, on_done, op);
  if (rc) return rc;
  if (op->idle_ms > 0 && lc_timer_start(loop, &op->idle_timer, op->idle_ms) < 0) {
    lc_loop_remove_easy(loop, e);
    return LC_ENOMEM;
  }
  op->active = 1;
  return 0;
}

void lc_http_cancel(struct lc_http_op *op) {
  if (!op->active) return;
  lc_timer_stop(op->loop, &op->idle_timer);
  lc_loop_remove_easy(op->loop, op->easy);
  op->active = 0;
}

void lc_http_op_cleanup(struct lc_http_op *op) {
  lc_http_cancel(op);
  if (op->easy) easy_put(op->easy);
  op->easy = NULL;
  curl_slist_free_all(op->hdrs);
  op->hdrs = NULL;
  lc_free(op->body_copy);
  op->body_copy = NULL;
  lc_buf_free(&op->body);
  lc_buf_free(&op->headers);
}

double lc_http_parse_retry_after(const char *v, double now_s) {
  if (!v || !*v) return -1;
  char *end;
  double d = lc_cnum_strtod(v, &end); /* "1.5" in any locale */
  if (end != v) {
    while (isspace((unsigned char)*end)) end++;
    if (*end == '\0') return d >= 0 ? d : -1;
  }
  time_t t = curl_getdate(v, NULL);
  if (t < 0) return -1;
  double delta = (double)t - now_s;
  return delta > 0 ? delta : 0;
}
