/* http_tool.c: the built-in HTTP tool's request checks, header assembly and
 * response access, over one runtime/llm/http.c transfer. */
#include "http_tool.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lc.h"
#include "utf8.h"

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

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One spelling of the path: what no server may see in it. */
static int check_layer(const char *base, const char *p, size_t n, int decoded,
                       char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '\\' || c == '?' || c == '#') {
      snprintf(err, errlen, "path must not contain spaces, control characters, "
               "'\\', '?' or '#'%s (give query parameters in 'query')",
               decoded ? ", also percent-encoded" : "");
      return LC_EINVAL;
    }
    if (!decoded && c == '%' &&
        (i + 2 >= n || hexval((unsigned char)p[i + 1]) < 0 ||
         hexval((unsigned char)p[i + 2]) < 0)) {
      snprintf(err, errlen, "path has a '%%' that does not start a %%XX escape");
      return LC_EINVAL;
    }
  }
  size_t bad;
  if (!lc_utf8_valid(p, n, &bad)) {
    snprintf(err, errlen, "path is not UTF-8%s (byte %zu)",
             decoded ? " once percent-decoded" : "", bad);
    return LC_EINVAL;
  }
  /* Servers that take ";params" off a segment (Tomcat, Jetty, Spring) see
   * "..;x" as "..", so the part before ';' counts. */
  for (size_t s = 0; s <= n;) {
    size_t e = s;
    while (e < n && p[e] != '/') e++;
    size_t core = s;
    while (core < e && p[core] != ';') core++;
    size_t cl = core - s;
    if ((cl == 1 && p[s] == '.') || (cl == 2 && p[s] == '.' && p[s + 1] == '.')) {
      snprintf(err, errlen, "path must stay under %.200s: '.' and '..' segments "
               "are refused, however they are encoded", base);
      return LC_EINVAL;
    }
    s = e + 1;
  }
  return 0;
}

int lc_http_tool_check_path(const char *base, const char *path, size_t len,
                            char *err, size_t errlen) {
  if (len == 0 || path[0] != '/') {
    snprintf(err, errlen, "path must start with '/'; it is appended to %.200s", base);
    return LC_EINVAL;
  }
  if (len > LC_HTTP_TOOL_MAX_URL) {
    snprintf(err, errlen, "path is longer than %d bytes", LC_HTTP_TOOL_MAX_URL);
    return LC_EINVAL;
  }
  char *a = lc_malloc(len + 1), *b = lc_malloc(len + 1);
  int rc = LC_ENOMEM;
  if (!a || !b) goto out;
  memcpy(a, path, len);
  size_t n = len;
  /* A proxy, a framework and an application may each decode once, so
   * every decoding is checked, not just the first. */
  for (int round = 0;; round++) {
    if ((rc = check_layer(base, a, n, round > 0, err, errlen))) goto out;
    size_t m = 0;
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
      int hi, lo;
      if (a[i] == '%' && i + 2 < n &&
          (hi = hexval((unsigned char)a[i + 1])) >= 0 &&
          (lo = hexval((unsigned char)a[i + 2])) >= 0) {
        b[m++] = (char)(hi * 16 + lo);
        i += 2;
        changed = 1;
      } else {
        b[m++] = a[i];
      }
    }
    if (!changed) break;
    if (round == LC_HTTP_TOOL_MAX_DECODES) {
      snprintf(err, errlen, "path is percent-encoded more than %d times over",
               LC_HTTP_TOOL_MAX_DECODES);
      rc = LC_EINVAL;
      goto out;
    }
    char *t = a;
    a = b;
    b = t;
    n = m;
  }
  rc = 0;
out:
  if (rc == LC_ENOMEM) snprintf(err, errlen, "out of memory");
  lc_free(a);
  lc_free(b);
  return rc;
}

/* The parts of a URL that name where a request goes. */
struct origin {
  char *scheme, *host, *port, *user, *password, *path;
};

static void origin_free(struct origin *o) {
  curl_free(o->scheme);
  curl_free(o->host);
  curl_free(o->port);
  curl_free(o->user);
  curl_free(o->password);
  curl_free(o->path);
}

static int origin_of(const char *url, struct origin *o) {
  memset(o, 0, sizeof *o);
  CURLU *u = curl_url();
  if (!u) return LC_ENOMEM;
  /* Parsed as CURLOPT_URL does it: dot segments go, as on the wire. */
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &o->host, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_PATH, &o->path, 0);
  if (uc == CURLUE_OK) {
    curl_url_get(u, CURLUPART_USER, &o->user, 0); /* absent: stays NULL */
    curl_url_get(u, CURLUPART_PASSWORD, &o->password, 0);
  }
  curl_url_cleanup(u);
  if (uc == CURLUE_OUT_OF_MEMORY) return LC_ENOMEM;
  return uc == CURLUE_OK ? 0 : LC_EINVAL;
}

static int same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcasecmp(a, b) == 0);
}

int lc_http_tool_check_under(const char *url, const char *base, char *err,
                             size_t errlen) {
  struct origin u, b;
  int rc = origin_of(url, &u), rb = origin_of(base, &b);
  if (rc || rb) {
    rc = rc == LC_ENOMEM || rb == LC_ENOMEM ? LC_ENOMEM : LC_EINVAL;
    if (rc == LC_ENOMEM) snprintf(err, errlen, "out of memory");
    else snprintf(err, errlen, "malformed URL '%.200s'", rb ? base : url);
    goto out;
  }
  rc = LC_EINVAL;
  if (!same(u.scheme, b.scheme) || !same(u.host, b.host) || !same(u.port, b.port)) {
    snprintf(err, errlen, "URL '%.200s' is not on %s://%s:%s", url, b.scheme, b.host,
             b.port);
    goto out;
  }
  /* User info is compared exactly: it can carry credentials. */
  if (!((!u.user && !b.user) || (u.user && b.user && !strcmp(u.user, b.user))) ||
      !((!u.password && !b.password) ||
        (u.password && b.password && !strcmp(u.password, b.password)))) {
    snprintf(err, errlen, "URL '%.200s' has other user info than %.200s", url, base);
    goto out;
  }
  size_t bl = strlen(b.path);
  while (bl > 0 && b.path[bl - 1] == '/') bl--;
  if (strncmp(u.path, b.path, bl) != 0 || (u.path[bl] != '/' && u.path[bl] != '\0')) {
    snprintf(err, errlen, "URL '%.200s' resolves to %.200s, outside %.200s", url,
             u.path, base);
    goto out;
  }
  rc = 0;
out:
  origin_free(&u);
  origin_free(&b);
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
