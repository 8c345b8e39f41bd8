/* http.h: one HTTP transfer on a loop through a curl easy handle, shared by
 * the LLM client and the http tool.
 *
 * Ownership: struct lc_http_op is caller-owned (embedded in a bigger op);
 * lc_http_op_init / lc_http_op_cleanup bracket its life. The request strings
 * are copied at start. The completion callback runs exactly once per
 * successful lc_http_start, from the loop (never inside a libcurl callback),
 * unless lc_http_cancel is called first; after cancel it never runs.
 *
 * Errors: op->err is 0 on a completed exchange (any HTTP status), else an
 * LC_E* code with op->errmsg: LC_ETIMEOUT (connect, idle or total; see
 * op->timeout_kind), LC_ETOOBIG (body over max_body, or kept headers over
 * LC_HTTP_MAX_HEADER_BYTES), LC_EIO (network). */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "buf.h"
#include "loop.h"

#define LC_HTTP_MAX_HEADER_BYTES (256u << 10)

struct lc_http_req {
  const char *method; /* "GET", "POST", ... (default POST with a body) */
  const char *url;
  const char *const *headers; /* "Name: value" */
  size_t n_headers;
  const char *body;
  size_t body_len;
  /* The caller keeps body valid and unchanged until the op completes, is
   * cancelled or cleaned up, so it is not copied (an LLM call's body is
   * held by the call anyway; a copy is one more body per waiting agent). */
  int body_borrowed;
  /* Don't offer compressed encodings (no Accept-Encoding). LLM calls set
   * it: their bodies are a few KB and arrive at generation speed, so
   * gzip saves no time, while asking for it costs ~9k instructions per
   * transfer in libcurl (and an inflate state when a server complies). */
  int no_compress;
  double connect_timeout_ms; /* 0 = default 10 s */
  double idle_timeout_ms;    /* no byte received for this long; 0 = off */
  double total_timeout_ms;   /* whole transfer; 0 = off */
  size_t max_body;           /* 0 = 16 MiB */
  int keep_headers;          /* collect every response header (op->headers) */
  /* AWS SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:<region>:<service>", and
   * CURLOPT_USERPWD "<key id>:<secret>"); NULL = not signed. Copied by
   * libcurl at start. */
  const char *aws_sigv4;
  const char *aws_userpwd;
};

enum lc_http_timeout { LC_HTTP_TO_NONE, LC_HTTP_TO_CONNECT, LC_HTTP_TO_IDLE, LC_HTTP_TO_TOTAL };

struct lc_http_op;
typedef void (*lc_http_done_fn)(struct lc_http_op *op, void *ud);
/* Streaming consumer for 2xx bodies: return 0 to go on, <0 to abort (the
 * transfer ends with err = LC_EINVAL and the sink's own message; with
 * LC_ENOMEM, err = LC_ENOMEM and "out of memory reading the response"). */
typedef int (*lc_http_sink_fn)(void *ud, const char *p, size_t n);

struct lc_http_op {
  struct lc_loop *loop;
  CURL *easy;
  struct curl_slist *hdrs;
  char *body_copy;
  struct lc_buf body; /* the response body (non-2xx always; 2xx unless sink) */
  lc_http_sink_fn sink;
  void *sink_ud;
  long status;
  char content_type[128];
  char retry_after[64];
  char retry_after_ms[32];
  char request_id[128];
  char amzn_error_type[128]; /* x-amzn-ErrorType (AWS names errors there) */
  /* With req->keep_headers: the final response's header lines, each
   * "Name: value\n" (CR/LF stripped), at most LC_HTTP_MAX_HEADER_BYTES. */
  struct lc_buf headers;
  int keep_headers;
  int headers_over; /* the LC_ETOOBIG came from the headers */
  int err;
  enum lc_http_timeout timeout_kind;
  char errmsg[CURL_ERROR_SIZE + 96];
  double started_ms, last_byte_ms, idle_ms;
  struct lc_timer idle_timer;
  lc_http_done_fn done;
  void *ud;
  int active;
  int sink_failed;
};

void lc_http_op_init(struct lc_http_op *op);
/* Starts the transfer. On failure returns <0 and done never runs. */
int lc_http_start(struct lc_loop *loop, struct lc_http_op *op,
                  const struct lc_http_req *req, lc_http_sink_fn sink,
                  void *sink_ud, lc_http_done_fn done, void *ud);
void lc_http_cancel(struct lc_http_op *op);
/* Frees the easy handle and buffers; cancels first if still active. */
void lc_http_op_cleanup(struct lc_http_op *op);

/* Seconds from a Retry-After value (delta-seconds or HTTP-date, measured
 * from now_s, wall-clock seconds), or -1 when it is neither. */
double lc_http_parse_retry_after(const char *v, double now_s);

/* Global libcurl init, once per process (thread-safe); lc_http_start calls
 * it, and libcurl itself is loaded on its first use (core/curl_dl.c). */
void lc_http_global_init(void);

#endif
