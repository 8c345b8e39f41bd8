/* http_tool.c: the built-in HTTP tool's request checks, header assembly and
 * response access, over one runtime/llm/http.c transfer. */
#include "http_tool.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lc.h"

void lc_http_tool_init(struct lc_http_tool_call *c) {
  memset(c, 0, sizeof *c);
  lc_http_op_init(&c->op);
}

void lc_http_tool_cleanup(struct lc_http_tool_call *c) {
  c->active = 0;
  lc_http_op_cleanup(&c->op); /* cancels first when still active */
}

int lc_http_tool_check_url(const char *url, char *err, size_t errlen) {
  size_t n = strlen(url);
  if (n == 0 || n > LC_HTTP_TOOL_MAX_URL) {
    snprintf(err, errlen, "URL must be 1 to %d bytes", LC_HTTP_TOOL_MAX_URL);
    return LC_EINVAL;
  }
  /* The scheme is checked on the text first, so that a URL without one is
   * never guessed at ("example.com" is not http://example.com here). */
  if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
    snprintf(err, errlen, "only http:// and https:// URLs are allowed: '%.200s'", url);
    return LC_EINVAL;
  }
  CURLU *u = curl_url();
  if (!u) return LC_ENOMEM;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  char *host = NULL;
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  int rc = 0;
  if (uc != CURLUE_OK || !host || !*host) {
    snprintf(err, errlen, "malformed URL '%.200s': %s", url,
             uc != CURLUE_OK ? curl_url_strerror(uc) : "no host");
    rc = LC_EINVAL;
  }
  curl_free(host);
  curl_url_cleanup(u);
  return rc;
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char ch) {
  return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

int lc_http_tool_check_header(const char *name, size_t name_len,
                              const char *value, size_t value_len, char *err,
                              size_t errlen) {
  if (name_len == 0 || name_len > 256) {
    snprintf(err, errlen, "header name must be 1 to 256 bytes");
    return LC_EINVAL;
  }
  for (size_t i = 0; i < name_len; i++) {
    if (!is_tchar((unsigned char)name[i])) {
      snprintf(err, errlen, "header name '%.*s' has a character not allowed in HTTP names",
               (int)(name_len > 64 ? 64 : name_len), name);
      return LC_EINVAL;
    }
  }
  /* CR or LF would let a value start a new header (or a new request). */
  for (size_t i = 0; i < value_len; i++) {
    if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') {
      snprintf(err, errlen, "header '%.*s': value contains CR, LF or NUL",
               (int)(name_len > 64 ? 64 : name_len), name);
      return LC_EINVAL;
    }
  }
  return 0;
}

/* Splits "Name: value" and checks both halves. */
static int check_line(const char *line, size_t *name_len, char *err, size_t errlen) {
  const char *colon = strchr(line, ':');
  if (!colon) {
    snprintf(err, errlen, "header '%.64s' is not \"Name: value\"", line);
    return LC_EINVAL;
  }
  *name_len = (size_t)(colon - line);
  return lc_http_tool_check_header(line, *name_len, colon + 1, strlen(colon + 1), err,
                                   errlen);
}

static int has_header(const struct lc_http_tool_req *req, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->n_headers; i++)
    if (strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':') return 1;
  return 0;
}

/* Called by http.c from the loop when the exchange ends. Header names are
 * lower-cased once here, so every reader sees one spelling. */
static void on_done(struct lc_http_op *op, void *ud) {
  struct lc_http_tool_call *c = ud;
  c->active = 0;
  char *p = op->headers.data, *end = p ? p + op->headers.len : NULL;
  while (p && p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *colon = memchr(p, ':', (size_t)((nl ? nl : end) - p));
    for (char *q = p; colon && q < colon; q++) *q = (char)tolower((unsigned char)*q);
    p = nl ? nl + 1 : end;
  }
  c->done(c, c->ud);
}

int lc_http_tool_start(struct lc_loop *loop, struct lc_http_tool_call *c,
                       const struct lc_http_tool_req *req,
                       lc_http_tool_done_fn done, void *ud, char *err,
                       size_t errlen) {
  if (c->active) {
    snprintf(err, errlen, "a request is already active");
    return LC_ESTATE;
  }
  int rc = lc_http_tool_check_url(req->url, err, errlen);
  if (rc) return rc;
  if (req->method) {
    size_t n = strlen(req->method);
    int ok = n > 0 && n <= 32;
    for (size_t i = 0; ok && i < n; i++) ok = is_tchar((unsigned char)req->method[i]);
    if (!ok) {
      snprintf(err, errlen, "bad HTTP method '%.40s'", req->method);
      return LC_EINVAL;
    }
  }
  for (size_t i = 0; i < req->n_headers; i++) {
    size_t nl;
    if ((rc = check_line(req->headers[i], &nl, err, errlen))) return rc;
  }
  if (req->idempotency_key) {
    if (has_header(req, "idempotency-key")) {
      snprintf(err, errlen, "give idempotency_key or an Idempotency-Key header, not both");
      return LC_EINVAL;
    }
    size_t kl = strlen(req->idempotency_key);
    if (kl == 0 || kl > 255) {
      snprintf(err, errlen, "idempotency_key must be 1 to 255 bytes");
      return LC_EINVAL;
    }
    if ((rc = lc_http_tool_check_header("Idempotency-Key", 15, req->idempotency_key, kl, err,
                                        errlen)))
      return rc;
  }
  /* The header array: the caller's lines plus what we add. http.c copies
   * them into its own list, so these live only until start returns. */
  const char **hdrs = lc_calloc(req->n_headers + 2, sizeof *hdrs);
  char *ct = NULL, *ik = NULL;
  size_t nh = 0;
  rc = LC_ENOMEM;
  if (!hdrs) goto out;
  for (size_t i = 0; i < req->n_headers; i++) hdrs[nh++] = req->headers[i];
  if (req->body && req->content_type && !has_header(req, "content-type")) {
    size_t n = strlen(req->content_type) + 16;
    if (!(ct = lc_malloc(n))) goto out;
    snprintf(ct, n, "Content-Type: %s", req->content_type);
    hdrs[nh++] = ct;
  }
  if (req->idempotency_key) {
    size_t n = strlen(req->idempotency_key) + 20;
    if (!(ik = lc_malloc(n))) goto out;
    snprintf(ik, n, "Idempotency-Key: %s", req->idempotency_key);
    hdrs[nh++] = ik;
  }
  struct lc_http_req hr = {
      .method = req->method,
      .url = req->url,
      .headers = hdrs,
      .n_headers = nh,
      .body = req->body,
      .body_len = req->body_len,
      .connect_timeout_ms = req->connect_timeout_ms,
      .total_timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : LC_HTTP_TOOL_DEFAULT_TIMEOUT_MS,
      .max_body = req->max_body ? req->max_body : LC_HTTP_TOOL_DEFAULT_MAX_BODY,
      .keep_headers = 1,
  };
  c->done = done;
  c->ud = ud;
  rc = lc_http_start(loop, &c->op, &hr, NULL, NULL, on_done, c);
  if (rc == 0) c->active = 1;
out:
  if (rc == LC_ENOMEM) snprintf(err, errlen, "out of memory");
  else if (rc) snprintf(err, errlen, "could not start the transfer");
  lc_free(ik);
  lc_free(ct);
  lc_free(hdrs);
  return rc;
}

int lc_http_tool_result(const struct lc_http_tool_call *c, const char **msg) {
  *msg = c->op.err ? c->op.errmsg : "";
  return c->op.err;
}

long lc_http_tool_status(const struct lc_http_tool_call *c) { return c->op.status; }

const char *lc_http_tool_body(const struct lc_http_tool_call *c, size_t *len) {
  *len = c->op.body.len;
  return c->op.body.data ? c->op.body.data : "";
}

const char *lc_http_tool_content_type(const struct lc_http_tool_call *c) {
  return c->op.content_type;
}

int lc_http_tool_next_header(const struct lc_http_tool_call *c, size_t *pos,
                             struct lc_http_tool_header *h) {
  const char *data = c->op.headers.data;
  size_t len = c->op.headers.len;
  while (data && *pos < len) {
    const char *p = data + *pos;
    const char *nl = memchr(p, '\n', len - *pos);
    size_t line = nl ? (size_t)(nl - p) : len - *pos;
    *pos += line + (nl ? 1 : 0);
    const char *colon = memchr(p, ':', line);
    if (!colon || colon == p) continue; /* obs-fold continuations: dropped */
    const char *v = colon + 1, *ve = p + line;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    h->name = p;
    h->name_len = (size_t)(colon - p);
    h->value = v;
    h->value_len = (size_t)(ve - v);
    return 1;
  }
  return 0;
}

int lc_http_tool_is_json(const char *ct) {
  if (!ct) return 0;
  size_t n = strcspn(ct, ";");
  while (n && isspace((unsigned char)ct[n - 1])) n--;
  if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
  return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

const char *lc_http_tool_errcode(int rc) {
  switch (rc) {
    case LC_ETIMEOUT: return "timeout";
    case LC_ETOOBIG: return "too_large";
    case LC_EINVAL: return "bad_url";
    case LC_ENOMEM: return "nomem";
    case LC_ESTATE: return "state";
    default: return "network";
  }
}
