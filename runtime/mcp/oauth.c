/* oauth.c: the MCP client's OAuth 2.1 authorization (see oauth.h): the
 * discovery, registration and token steps as one state machine on the
 * loop, one lc_http transfer at a time. */
#include "oauth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "buf.h"
#include "conv.h"
#include "http.h"
#include "lc.h"
#include "loop.h"
#include "sha256.h"

#define MAX_DOC (64u << 10)  /* a metadata document or a token answer */
#define MAX_FLOWS 3 /* authorizations or refreshes in a row without a success */
#define MAX_CANDIDATES 3
#define STEP_TIMEOUT_MS 30000.0

enum step {
  S_IDLE,
  S_PRM,       /* GET protected resource metadata */
  S_AS,        /* GET authorization server metadata */
  S_REGISTER,  /* POST dynamic client registration */
  S_USER,      /* waiting for lc_oauth_redirect */
  S_TOKEN,     /* POST the token endpoint (code or client_credentials) */
  S_REFRESH    /* POST the token endpoint (refresh_token) */
};

struct lc_oauth {
  struct lc_loop *loop;
  struct lc_oauth_events ev;
  enum step step;
  struct lc_http_op op;
  int op_live;
  struct lc_timer kick; /* runs the next step, or done, on a later pass */
  int kick_done;        /* the kick reports done (rc below) */
  int done_rc;
  char why[512];
  char *failed; /* a flow that cannot succeed: later challenges get this */
  /* configuration */
  char *server_url, *client_id_cfg, *secret_cfg, *cimd_url, *client_name,
      *redirect_uri, *scope_cfg;
  int client_credentials, interactive;
  /* discovery */
  char *cand[MAX_CANDIDATES];
  int n_cand, i_cand;
  int legacy;        /* no PRM: the 2025-03-26 rules */
  char *prm_url;     /* from WWW-Authenticate */
  char *resource;    /* the RFC 8707 resource */
  char *as_url;      /* the issuer asked for */
  char *prm_scopes;  /* scopes_supported, space-separated */
  int have_as;       /* endpoints known */
  char *authz_ep, *token_ep, *reg_ep;
  int as_cimd;       /* client_id_metadata_document_supported */
  int as_basic, as_post, as_none, as_methods_listed;
  /* the client */
  char *client_id, *client_secret;
  char auth_method[24]; /* client_secret_basic | client_secret_post | none */
  /* this flow */
  char *scope;       /* requested now (NULL: omitted) */
  char *granted;     /* what the last authorization asked for */
  char verifier[64], state[32];
  char *req_body;
  /* the token */
  char *access, *refresh, *header;
  unsigned gen;
  int flows; /* authorizations since the last success */
};

/* ---- small helpers ---- */

static void zfree(char *s) {
  if (!s) return;
  volatile char *v = s;
  while (*v) *v++ = 0;
  lc_free(s);
}

static char *dupn(const char *s) { return s ? lc_strdup(s) : NULL; }

static void setstr(char **dst, const char *s) {
  zfree(*dst);
  *dst = dupn(s);
}

static int b64(const unsigned char *in, size_t n, char *out, size_t cap,
               int url) {
  const char *tab = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789+/";
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    int chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
    for (int j = 0; j < 4; j++) {
      if (k + 1 >= cap) return -1;
      if (j < chars) out[k++] = tab[(v >> (18 - 6 * j)) & 63];
      else if (!url) out[k++] = '=';
    }
  }
  out[k] = '\0';
  return 0;
}

static int random_b64url(char *out, size_t cap, size_t nbytes) {
  unsigned char r[48];
  if (nbytes > sizeof r) return -1;
  size_t got = 0;
  while (got < nbytes) {
    ssize_t k = getrandom(r + got, nbytes - got, 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += (size_t)k;
  }
  return b64(r, nbytes, out, cap, 1);
}

/* Percent-encodes s for a query or form value (RFC 3986 unreserved kept). */
static void pct(struct lc_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
      lc_buf_append(b, s, 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      lc_buf_append(b, e, 3);
    }
  }
}

static void param(struct lc_buf *b, const char *k, const char *v) {
  if (!v) return;
  if (b->len) lc_buf_append(b, "&", 1);
  lc_buf_puts(b, k);
  lc_buf_append(b, "=", 1);
  pct(b, v);
}

/* Printable ASCII only (a token or an id goes into a header or a URL). */
static int printable(const char *s, size_t max) {
  size_t n = 0;
  for (; *s; s++, n++)
    if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e || n >= max)
      return 0;
  return n > 0;
}

/* A server's text flattened for an error message: printable, cut. */
static void flat(char *out, size_t cap, const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    out[k++] = c < 0x20 || c > 0x7e ? ' ' : (char)c;
  }
  out[k] = '\0';
}

/* scheme://authority of url into out; the path (without query, fragment
 * or trailing '/') into path. 0, or -1 when url is not http(s). */
static int split_url(const char *url, char *origin, size_t ocap, char *path,
                     size_t pcap) {
  const char *p;
  if (!strncasecmp(url, "https://", 8)) p = url + 8;
  else if (!strncasecmp(url, "http://", 7)) p = url + 7;
  else return -1;
  size_t a = strcspn(p, "/?#");
  if (a == 0) return -1;
  size_t on = (size_t)(p - url) + a;
  if (on + 1 > ocap) return -1;
  memcpy(origin, url, on);
  origin[on] = '\0';
  const char *q = p + a;
  size_t pn = *q == '/' ? strcspn(q, "?#") : 0;
  while (pn && q[pn - 1] == '/') pn--;
  if (pn + 1 > pcap) return -1;
  memcpy(path, q, pn);
  path[pn] = '\0';
  return 0;
}

int lc_oauth_url_ok(const char *url) {
  char origin[512], path[2048];
  if (!url || split_url(url, origin, sizeof origin, path, sizeof path) < 0)
    return 0;
  for (const char *s = url; *s; s++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f) return 0;
  const char *host = strstr(origin, "://") + 3;
  if (strchr(host, '@')) return 0; /* user info: refused */
  if (!strncasecmp(origin, "https://", 8)) return 1;
  size_t hn = strcspn(host, ":");
  if (host[0] == '[') hn = strcspn(host, "]") + 1;
  if ((hn == 9 && !strncasecmp(host, "localhost", 9)) ||
      (hn == 5 && !strncmp(host, "[::1]", 5)))
    return 1;
  /* 127.0.0.0/8 in dotted decimal only */
  if (hn >= 9 && !strncmp(host, "127.", 4)) {
    int dots = 0;
    for (size_t i = 0; i < hn; i++) {
      if (host[i] == '.') dots++;
      else if (host[i] < '0' || host[i] > '9') return 0;
    }
    return dots == 3;
  }
  return 0;
}

/* ---- the WWW-Authenticate parser ---- */

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == ',')) p++;
  return p;
}

static int tchar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

int lc_oauth_parse_challenge(const char *hdr, size_t n,
                             struct lc_oauth_challenge *c) {
  memset(c, 0, sizeof *c);
  if (!hdr) return 0;
  const char *p = hdr, *e = hdr + n;
  int in_bearer = 0, found = 0;
  while (p < e) {
    p = skip_ws(p, e);
    const char *t = p;
    while (p < e && tchar(*p)) p++;
    size_t tn = (size_t)(p - t);
    if (!tn) {
      p++; /* junk: skip a byte */
      continue;
    }
    const char *q = p;
    while (q < e && (*q == ' ' || *q == '\t')) q++;
    if (q < e && *q == '=') {
      /* auth-param name=value (or a token68 ending in '=': treated alike) */
      q++;
      while (q < e && (*q == ' ' || *q == '\t')) q++;
      char val[1024];
      size_t vn = 0;
      if (q < e && *q == '"') {
        q++;
        while (q < e && *q != '"') {
          if (*q == '\\' && q + 1 < e) q++;
          if (vn + 1 < sizeof val) val[vn++] = *q;
          q++;
        }
        if (q < e) q++;
      } else {
        while (q < e && *q != ',' && *q != ' ' && *q != '\t') {
          if (vn + 1 < sizeof val) val[vn++] = *q;
          q++;
        }
      }
      val[vn] = '\0';
      p = q;
      if (!in_bearer) continue;
      char *dst = NULL;
      size_t cap = 0;
      if (tn == 17 && !strncasecmp(t, "resource_metadata", 17))
        dst = c->resource_metadata, cap = sizeof c->resource_metadata;
      else if (tn == 5 && !strncasecmp(t, "scope", 5))
        dst = c->scope, cap = sizeof c->scope;
      else if (tn == 5 && !strncasecmp(t, "error", 5))
        dst = c->error, cap = sizeof c->error;
      else if (tn == 17 && !strncasecmp(t, "error_description", 17))
        dst = c->error_description, cap = sizeof c->error_description;
      if (dst && !dst[0]) {
        /* control characters never survive into a value */
        size_t k = 0;
        for (size_t i = 0; i < vn && k + 1 < cap; i++)
          dst[k++] = (unsigned char)val[i] < 0x20 || val[i] == 0x7f ? ' ' : val[i];
        dst[k] = '\0';
      }
    } else {
      /* a scheme name starts a new challenge */
      if (found && in_bearer) break; /* the first Bearer challenge only */
      in_bearer = tn == 6 && !strncasecmp(t, "Bearer", 6);
      if (in_bearer) found = 1;
      p = q;
    }
  }
  return found;
}

/* ---- flow control ---- */

static void start_step(struct lc_oauth *o);
static void authorize_now(struct lc_oauth *o);

static void kick_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_oauth *o = t->ud;
  if (o->kick_done) {
    o->kick_done = 0;
    o->step = S_IDLE;
    if (o->ev.done) o->ev.done(o->ev.ud, o->done_rc, o->why);
    return;
  }
  start_step(o);
}

/* Ends the flow on a later pass with rc (0: a token) and why. fatal: the
 * session will not get a token from this server (later challenges fail at
 * once with the same message). */
static void finish(struct lc_oauth *o, int rc, int fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish(struct lc_oauth *o, int rc, int fatal, const char *fmt,
                   ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->why, sizeof o->why, fmt, ap);
  va_end(ap);
  lc_oauth_scrub(o, o->why, sizeof o->why);
  if (fatal && rc) {
    lc_free(o->failed);
    o->failed = lc_strdup(o->why);
  }
  o->done_rc = rc;
  o->kick_done = 1;
  o->step = S_IDLE;
  lc_timer_stop(o->loop, &o->kick);
  lc_timer_start(o->loop, &o->kick, 0);
}

#define FAIL(o, ...) finish(o, LC_EINVAL, 1, "MCP authorization: " __VA_ARGS__)

static void http_done(struct lc_http_op *op, void *ud);

/* Starts a transfer; body NULL = GET. The body is form-encoded unless
 * json. basic: "Authorization: Basic" with the client's credentials. */
static void request(struct lc_oauth *o, const char *url, char *body, int json,
                    int basic) {
  lc_http_op_cleanup(&o->op);
  lc_http_op_init(&o->op);
  zfree(o->req_body);
  o->req_body = body;
  const char *h[4];
  size_t nh = 0;
  char auth[1400];
  h[nh++] = "Accept: application/json";
  if (body)
    h[nh++] = json ? "Content-Type: application/json"
                   : "Content-Type: application/x-www-form-urlencoded";
  if (basic) {
    struct lc_buf cred;
    lc_buf_init(&cred, 0);
    pct(&cred, o->client_id);
    lc_buf_append(&cred, ":", 1);
    pct(&cred, o->client_secret ? o->client_secret : "");
    int bad = !cred.data || b64((unsigned char *)cred.data, cred.len, auth + 21,
                                sizeof auth - 21, 0) < 0;
    if (cred.data) memset(cred.data, 0, cred.len);
    lc_buf_free(&cred);
    if (bad) {
      FAIL(o, "the client credentials are too long");
      return;
    }
    memcpy(auth, "Authorization: Basic ", 21);
    h[nh++] = auth;
  }
  struct lc_http_req req = {.method = body ? "POST" : "GET",
                            .url = url,
                            .headers = h,
                            .n_headers = nh,
                            .body = body,
                            .body_len = body ? strlen(body) : 0,
                            .body_borrowed = 1,
                            .max_body = MAX_DOC,
                            .total_timeout_ms = STEP_TIMEOUT_MS,
                            .keep_headers = 0};
  int rc = lc_http_start(o->loop, &o->op, &req, NULL, NULL, http_done, o);
  memset(auth, 0, sizeof auth);
  if (rc < 0) {
    FAIL(o, "cannot start a request to %.200s", url);
    return;
  }
  o->op_live = 1;
}

/* The body as JSON object, or NULL with the flow failed (what names the
 * document). */
static cJSON *body_json(struct lc_oauth *o, const char *what) {
  char err[128];
  cJSON *j = o->op.body.len ? lc_json_parse(o->op.body.data, o->op.body.len,
                                            err, sizeof err)
                            : NULL;
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    FAIL(o, "the %s is not a JSON object", what);
    return NULL;
  }
  return j;
}

static const char *jstr(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- discovery ---- */

static void add_cand(struct lc_oauth *o, const char *a, const char *b,
                     const char *c) {
  if (o->n_cand >= MAX_CANDIDATES) return;
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *s = lc_malloc(n);
  if (!s) return;
  snprintf(s, n, "%s%s%s", a, b, c);
  o->cand[o->n_cand++] = s;
}

static void clear_cand(struct lc_oauth *o) {
  for (int i = 0; i < o->n_cand; i++) lc_free(o->cand[i]);
  o->n_cand = o->i_cand = 0;
}

static void prm_candidates(struct lc_oauth *o) {
  clear_cand(o);
  char origin[512], path[2048];
  if (o->prm_url) {
    add_cand(o, o->prm_url, "", "");
    return;
  }
  if (split_url(o->server_url, origin, sizeof origin, path, sizeof path) < 0)
    return;
  if (path[0]) add_cand(o, origin, "/.well-known/oauth-protected-resource", path);
  add_cand(o, origin, "/.well-known/oauth-protected-resource", "");
}

static void as_candidates(struct lc_oauth *o) {
  clear_cand(o);
  char origin[512], path[2048];
  if (split_url(o->as_url, origin, sizeof origin, path, sizeof path) < 0)
    return;
  if (o->legacy) path[0] = '\0'; /* 2025-03-26: the origin, path dropped */
  if (path[0]) {
    add_cand(o, origin, "/.well-known/oauth-authorization-server", path);
    add_cand(o, origin, "/.well-known/openid-configuration", path);
    add_cand(o, origin, path, "/.well-known/openid-configuration");
  } else {
    add_cand(o, origin, "/.well-known/oauth-authorization-server", "");
    add_cand(o, origin, "/.well-known/openid-configuration", "");
  }
}

/* The scopes of a JSON array of strings, space-separated (NULL if none). */
static char *scope_list(const cJSON *a) {
  if (!cJSON_IsArray(a)) return NULL;
  struct lc_buf b;
  lc_buf_init(&b, 4096);
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    if (!cJSON_IsString(e) || !e->valuestring[0] || strpbrk(e->valuestring, " \"\\") ||
        !printable(e->valuestring, 256))
      continue;
    if (b.len) lc_buf_append(&b, " ", 1);
    lc_buf_puts(&b, e->valuestring);
  }
  char *s = b.len ? lc_strndup(b.data, b.len) : NULL;
  lc_buf_free(&b);
  return s;
}

/* The PRM's resource must name this server: same origin, and the server's
 * path at or below the resource's (RFC 9728 section 3.3; a resource for
 * the whole origin covers /mcp). */
static int resource_covers(const char *resource, const char *server) {
  char o1[512], p1[2048], o2[512], p2[2048];
  if (split_url(resource, o1, sizeof o1, p1, sizeof p1) < 0 ||
      split_url(server, o2, sizeof o2, p2, sizeof p2) < 0 ||
      strcasecmp(o1, o2))
    return 0;
  size_t n = strlen(p1);
  return !strncmp(p1, p2, n) && (p2[n] == '\0' || p2[n] == '/');
}

static void prm_done(struct lc_oauth *o) {
  long st = o->op.status;
  if (o->op.err || st < 200 || st > 299) {
    if (o->prm_url) {
      if (o->op.err)
        FAIL(o, "cannot fetch the protected resource metadata %.200s: %.200s",
             o->prm_url, o->op.errmsg);
      else
        FAIL(o, "the protected resource metadata %.200s answered HTTP %ld",
             o->prm_url, st);
      return;
    }
    if (++o->i_cand < o->n_cand) {
      start_step(o);
      return;
    }
    /* No PRM anywhere: 2025-03-26, the server's origin authorizes. */
    o->legacy = 1;
    setstr(&o->as_url, o->server_url);
    o->step = S_AS;
    as_candidates(o);
    start_step(o);
    return;
  }
  cJSON *j = body_json(o, "protected resource metadata");
  if (!j) return;
  const char *res = jstr(j, "resource");
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(j, "authorization_servers");
  const cJSON *first = cJSON_IsArray(as) ? cJSON_GetArrayItem(as, 0) : NULL;
  if (!res || !resource_covers(res, o->server_url)) {
    FAIL(o, "the protected resource metadata names resource '%.200s', not "
            "this server (%.200s)",
         res ? res : "(none)", o->server_url);
  } else if (!cJSON_IsString(first) || !lc_oauth_url_ok(first->valuestring)) {
    FAIL(o, "the protected resource metadata lists no usable authorization "
            "server (https, or http on loopback)");
  } else {
    setstr(&o->resource, res);
    if (o->as_url && strcmp(o->as_url, first->valuestring)) {
      /* another authorization server: a client registered with the old
       * one means nothing there */
      zfree(o->client_id);
      zfree(o->client_secret);
      zfree(o->refresh);
      o->client_id = o->client_secret = o->refresh = NULL;
    }
    setstr(&o->as_url, first->valuestring);
    zfree(o->prm_scopes);
    o->prm_scopes = scope_list(cJSON_GetObjectItemCaseSensitive(j, "scopes_supported"));
    o->step = S_AS;
    as_candidates(o);
    start_step(o);
  }
  cJSON_Delete(j);
}

/* Trailing '/' aside, the same string. */
static int same_issuer(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  while (na && a[na - 1] == '/') na--;
  while (nb && b[nb - 1] == '/') nb--;
  return na == nb && !strncmp(a, b, na);
}

static void after_as(struct lc_oauth *o);

static void as_done(struct lc_oauth *o) {
  long st = o->op.status;
  if (o->op.err || st < 200 || st > 299) {
    if (++o->i_cand < o->n_cand) {
      start_step(o);
      return;
    }
    if (!o->legacy) {
      char last[240];
      if (o->op.err) snprintf(last, sizeof last, "%.200s", o->op.errmsg);
      else snprintf(last, sizeof last, "HTTP %ld", st);
      FAIL(o, "no authorization server metadata for %.200s (RFC 8414 and "
              "OpenID discovery; the last answer: %s)",
           o->as_url, last);
      return;
    }
    /* 2025-03-26 without metadata: the default endpoints at the origin */
    char origin[512], path[2048];
    if (split_url(o->server_url, origin, sizeof origin, path, sizeof path) < 0) {
      FAIL(o, "cannot read the server URL");
      return;
    }
    char buf[600];
    snprintf(buf, sizeof buf, "%s/authorize", origin);
    setstr(&o->authz_ep, buf);
    snprintf(buf, sizeof buf, "%s/token", origin);
    setstr(&o->token_ep, buf);
    snprintf(buf, sizeof buf, "%s/register", origin);
    setstr(&o->reg_ep, buf);
    o->as_methods_listed = 0;
    o->as_cimd = 0;
    o->have_as = 1;
    after_as(o);
    return;
  }
  cJSON *j = body_json(o, "authorization server metadata");
  if (!j) return;
  const char *iss = jstr(j, "issuer");
  const char *az = jstr(j, "authorization_endpoint");
  const char *tk = jstr(j, "token_endpoint");
  const char *rg = jstr(j, "registration_endpoint");
  const cJSON *ccm = cJSON_GetObjectItemCaseSensitive(j, "code_challenge_methods_supported");
  int s256 = 0;
  const cJSON *e, *arr = cJSON_IsArray(ccm) ? ccm : NULL;
  cJSON_ArrayForEach(e, arr) {
    if (cJSON_IsString(e) && !strcmp(e->valuestring, "S256")) s256 = 1;
  }
  /* On the 2025-03-26 path the document sits at the origin and its issuer
   * need not be it; with a PRM the issuer must be the server listed. */
  if (!o->legacy && (!iss || !same_issuer(iss, o->as_url))) {
    FAIL(o, "the authorization server metadata's issuer '%.200s' is not "
            "'%.200s' (RFC 8414 section 3.3)",
         iss ? iss : "(none)", o->as_url);
  } else if (!o->client_credentials && (!az || !lc_oauth_url_ok(az))) {
    FAIL(o, "the authorization endpoint '%.200s' is missing or not https "
            "(http only on loopback)",
         az ? az : "(none)");
  } else if (!tk || !lc_oauth_url_ok(tk)) {
    FAIL(o, "the token endpoint '%.200s' is missing or not https (http "
            "only on loopback)",
         tk ? tk : "(none)");
  } else if (rg && !lc_oauth_url_ok(rg)) {
    FAIL(o, "the registration endpoint '%.200s' is not https (http only "
            "on loopback)",
         rg);
  } else if (!o->client_credentials && !s256) {
    FAIL(o, "the authorization server does not list PKCE S256 in "
            "code_challenge_methods_supported; refusing to authorize");
  } else {
    setstr(&o->authz_ep, az);
    setstr(&o->token_ep, tk);
    setstr(&o->reg_ep, rg);
    o->as_cimd = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        j, "client_id_metadata_document_supported"));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "token_endpoint_auth_methods_supported");
    o->as_methods_listed = cJSON_IsArray(m);
    o->as_basic = o->as_post = o->as_none = 0;
    arr = o->as_methods_listed ? m : NULL;
    cJSON_ArrayForEach(e, arr) {
      if (!cJSON_IsString(e)) continue;
      if (!strcmp(e->valuestring, "client_secret_basic")) o->as_basic = 1;
      if (!strcmp(e->valuestring, "client_secret_post")) o->as_post = 1;
      if (!strcmp(e->valuestring, "none")) o->as_none = 1;
    }
    o->have_as = 1;
    after_as(o);
  }
  cJSON_Delete(j);
}

/* How the client authenticates at the token endpoint when the registration
 * did not say: basic unless only post is offered (RFC 8414's default is
 * basic); a public client: none. */
static void pick_method(struct lc_oauth *o) {
  if (!o->client_secret) snprintf(o->auth_method, sizeof o->auth_method, "none");
  else if (o->as_methods_listed && !o->as_basic && o->as_post)
    snprintf(o->auth_method, sizeof o->auth_method, "client_secret_post");
  else snprintf(o->auth_method, sizeof o->auth_method, "client_secret_basic");
}

static void register_client(struct lc_oauth *o) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "client_name", o->client_name);
  cJSON *gt = cJSON_AddArrayToObject(j, "grant_types");
  if (o->client_credentials) {
    cJSON_AddItemToArray(gt, cJSON_CreateString("client_credentials"));
  } else {
    cJSON *ru = cJSON_AddArrayToObject(j, "redirect_uris");
    cJSON_AddItemToArray(ru, cJSON_CreateString(o->redirect_uri));
    cJSON_AddItemToArray(gt, cJSON_CreateString("authorization_code"));
    cJSON_AddItemToArray(gt, cJSON_CreateString("refresh_token"));
    cJSON *rt = cJSON_AddArrayToObject(j, "response_types");
    cJSON_AddItemToArray(rt, cJSON_CreateString("code"));
  }
  const char *want = !o->as_methods_listed || o->as_basic ? "client_secret_basic"
                     : o->as_post                         ? "client_secret_post"
                                                          : "none";
  cJSON_AddStringToObject(j, "token_endpoint_auth_method", want);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  char *body = text ? lc_strdup(text) : NULL;
  cJSON_free(text);
  if (!body) {
    FAIL(o, "out of memory");
    return;
  }
  o->step = S_REGISTER;
  request(o, o->reg_ep, body, 1, 0);
}

static void register_done(struct lc_oauth *o) {
  long st = o->op.status;
  if (o->op.err) {
    FAIL(o, "client registration at %.200s failed: %.200s", o->reg_ep,
         o->op.errmsg);
    return;
  }
  if (st < 200 || st > 299) {
    char body[200];
    flat(body, sizeof body, o->op.body.data ? o->op.body.data : "", o->op.body.len);
    FAIL(o, "client registration at %.200s answered HTTP %ld%s%s", o->reg_ep, st,
         body[0] ? ": " : "", body);
    return;
  }
  cJSON *j = body_json(o, "client registration answer");
  if (!j) return;
  const char *id = jstr(j, "client_id");
  const char *sec = jstr(j, "client_secret");
  const char *m = jstr(j, "token_endpoint_auth_method");
  if (!id || !printable(id, 1024)) {
    FAIL(o, "the client registration answer has no usable client_id");
  } else if (sec && !printable(sec, 1024)) {
    FAIL(o, "the client registration answer has an unusable client_secret");
  } else {
    setstr(&o->client_id, id);
    setstr(&o->client_secret, sec);
    if (m && (!strcmp(m, "client_secret_basic") || !strcmp(m, "client_secret_post") ||
              !strcmp(m, "none")) &&
        (sec || !strcmp(m, "none")))
      snprintf(o->auth_method, sizeof o->auth_method, "%s", m);
    else pick_method(o);
    cJSON_Delete(j);
    if (o->client_credentials) start_step(o);
    else authorize_now(o);
    return;
  }
  cJSON_Delete(j);
}

/* Endpoints known: a client, then the grant. */
static void after_as(struct lc_oauth *o) {
  if (!o->client_id) {
    if (o->client_id_cfg) {
      setstr(&o->client_id, o->client_id_cfg);
      setstr(&o->client_secret, o->secret_cfg);
      pick_method(o);
    } else if (o->cimd_url && o->as_cimd && !o->client_credentials) {
      /* the document's URL is the client id; a public client */
      setstr(&o->client_id, o->cimd_url);
      snprintf(o->auth_method, sizeof o->auth_method, "none");
    } else if (o->reg_ep) {
      register_client(o);
      return;
    } else {
      FAIL(o, "the authorization server offers no dynamic client "
              "registration%s: give auth.client_id (pre-registered)%s",
           o->as_cimd ? " (it accepts Client ID Metadata Documents)" : "",
           o->as_cimd ? " or auth.client_metadata_url" : "");
      return;
    }
  }
  if (o->client_credentials) {
    o->step = S_TOKEN;
    start_step(o);
  } else {
    authorize_now(o);
  }
}

/* ---- the grant ---- */

/* No scope from the script or the challenge: the PRM's scopes_supported
 * (all of them), else none (the scope parameter is left out). */
static void default_scope(struct lc_oauth *o) {
  if (!o->scope && o->prm_scopes) o->scope = lc_strdup(o->prm_scopes);
}

static void authorize_now(struct lc_oauth *o) {
  default_scope(o);
  if (!o->interactive) {
    FAIL(o, "the server needs a user's authorization and no "
            "auth.authorize callback was given");
    return;
  }
  unsigned char d[32];
  char ch[64];
  if (random_b64url(o->verifier, sizeof o->verifier, 32) < 0 ||
      random_b64url(o->state, sizeof o->state, 16) < 0) {
    FAIL(o, "no randomness for PKCE");
    return;
  }
  struct lc_sha256 h;
  lc_sha256_init(&h);
  lc_sha256_update(&h, o->verifier, strlen(o->verifier));
  lc_sha256_final(&h, d);
  b64(d, 32, ch, sizeof ch, 1);
  struct lc_buf q;
  lc_buf_init(&q, 0);
  param(&q, "response_type", "code");
  param(&q, "client_id", o->client_id);
  param(&q, "redirect_uri", o->redirect_uri);
  param(&q, "code_challenge", ch);
  param(&q, "code_challenge_method", "S256");
  param(&q, "state", o->state);
  param(&q, "resource", o->resource);
  if (o->scope && o->scope[0]) param(&q, "scope", o->scope);
  struct lc_buf u;
  lc_buf_init(&u, 0);
  lc_buf_puts(&u, o->authz_ep);
  lc_buf_append(&u, strchr(o->authz_ep, '?') ? "&" : "?", 1);
  if (q.data) lc_buf_append(&u, q.data, q.len);
  lc_buf_append(&u, "", 1);
  lc_buf_free(&q);
  setstr(&o->granted, o->scope);
  o->flows++;
  o->step = S_USER;
  if (!u.data) {
    lc_buf_free(&u);
    FAIL(o, "out of memory");
    return;
  }
  if (o->ev.authorize) o->ev.authorize(o->ev.ud, u.data);
  lc_buf_free(&u);
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The value of k in url's query, percent-decoded into out (cut to cap);
 * 1 if present. */
static int query_get(const char *url, const char *k, char *out, size_t cap) {
  const char *q = strchr(url, '?');
  if (!q) return 0;
  q++;
  size_t kn = strlen(k);
  while (*q && *q != '#') {
    size_t n = strcspn(q, "&#");
    if (n > kn && !strncmp(q, k, kn) && q[kn] == '=') {
      size_t o = 0;
      for (size_t i = kn + 1; i < n && o + 1 < cap; i++) {
        char c = q[i];
        if (c == '+') c = ' ';
        else if (c == '%' && i + 2 < n && hexv(q[i + 1]) >= 0 &&
                 hexv(q[i + 2]) >= 0) {
          c = (char)(hexv(q[i + 1]) * 16 + hexv(q[i + 2]));
          i += 2;
        }
        out[o++] = c;
      }
      out[o] = '\0';
      return 1;
    }
    q += n;
    if (*q == '&') q++;
  }
  return 0;
}

static void token_request(struct lc_oauth *o, const char *grant,
                          const char *code) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  param(&b, "grant_type", grant);
  if (code) {
    param(&b, "code", code);
    param(&b, "redirect_uri", o->redirect_uri);
    param(&b, "code_verifier", o->verifier);
  }
  if (!strcmp(grant, "refresh_token")) param(&b, "refresh_token", o->refresh);
  param(&b, "resource", o->resource);
  if (!code && o->scope && o->scope[0] && strcmp(grant, "refresh_token"))
    param(&b, "scope", o->scope);
  int basic = !strcmp(o->auth_method, "client_secret_basic");
  if (!basic) param(&b, "client_id", o->client_id);
  if (!strcmp(o->auth_method, "client_secret_post"))
    param(&b, "client_secret", o->client_secret);
  lc_buf_append(&b, "", 1);
  char *body = b.data ? lc_strdup(b.data) : NULL;
  if (b.data) memset(b.data, 0, b.len);
  lc_buf_free(&b);
  if (!body) {
    FAIL(o, "out of memory");
    return;
  }
  request(o, o->token_ep, body, 0, basic);
}

static void token_done(struct lc_oauth *o) {
  long st = o->op.status;
  int refreshing = o->step == S_REFRESH;
  if (o->op.err) {
    FAIL(o, "the token endpoint %.200s failed: %.200s", o->token_ep, o->op.errmsg);
    return;
  }
  if (st < 200 || st > 299) {
    char err[64] = "", desc[200] = "";
    char ec[128];
    cJSON *j = o->op.body.len ? lc_json_parse(o->op.body.data, o->op.body.len,
                                              ec, sizeof ec)
                              : NULL;
    const char *e = jstr(j, "error"), *d = jstr(j, "error_description");
    if (e) flat(err, sizeof err, e, strlen(e));
    if (d) flat(desc, sizeof desc, d, strlen(d));
    cJSON_Delete(j);
    if (refreshing) {
      /* the refresh token is spent: a full authorization instead */
      zfree(o->refresh);
      o->refresh = NULL;
      o->step = S_IDLE;
      after_as(o);
      return;
    }
    FAIL(o, "the token endpoint refused (HTTP %ld)%s%s%s%s", st,
         err[0] ? ": " : "", err, desc[0] ? ": " : "", desc);
    return;
  }
  cJSON *j = body_json(o, "token answer");
  if (!j) return;
  const char *at = jstr(j, "access_token");
  const char *tt = jstr(j, "token_type");
  const char *rt = jstr(j, "refresh_token");
  if (!at || !printable(at, 8192)) {
    FAIL(o, "the token answer has no usable access_token");
  } else if (!tt || strcasecmp(tt, "bearer")) {
    FAIL(o, "the token answer's token_type is '%.40s', not Bearer",
         tt ? tt : "(none)");
  } else if (rt && !printable(rt, 8192)) {
    FAIL(o, "the token answer has an unusable refresh_token");
  } else {
    size_t n = strlen(at) + 32;
    char *hdr = lc_malloc(n);
    if (!hdr) {
      FAIL(o, "out of memory");
    } else {
      snprintf(hdr, n, "Authorization: Bearer %s", at);
      zfree(o->header);
      o->header = hdr;
      setstr(&o->access, at);
      if (rt) setstr(&o->refresh, rt);
      o->gen++;
      finish(o, 0, 0, "authorized");
    }
  }
  cJSON_Delete(j);
}

static void http_done(struct lc_http_op *op, void *ud) {
  struct lc_oauth *o = ud;
  o->op_live = 0;
  zfree(o->req_body); /* sent: a next step may start a new one */
  o->req_body = NULL;
  switch (o->step) {
  case S_PRM: prm_done(o); break;
  case S_AS: as_done(o); break;
  case S_REGISTER: register_done(o); break;
  case S_TOKEN:
  case S_REFRESH: token_done(o); break;
  default: break;
  }
}

/* Runs the current step (from the kick timer or a completion). */
static void start_step(struct lc_oauth *o) {
  switch (o->step) {
  case S_PRM:
  case S_AS:
    if (o->i_cand >= o->n_cand) {
      FAIL(o, "cannot build a metadata URL from %.200s",
           o->step == S_PRM ? o->server_url : o->as_url);
      return;
    }
    if (!lc_oauth_url_ok(o->cand[o->i_cand])) {
      FAIL(o, "refusing metadata URL %.200s (https, or http on loopback)",
           o->cand[o->i_cand]);
      return;
    }
    request(o, o->cand[o->i_cand], NULL, 0, 0);
    return;
  case S_TOKEN:
    default_scope(o);
    setstr(&o->granted, o->scope);
    o->flows++;
    token_request(o, "client_credentials", NULL);
    return;
  case S_REFRESH:
    /* counted too: a server that takes no token but keeps refreshing
     * would otherwise be asked forever */
    o->flows++;
    token_request(o, "refresh_token", NULL);
    return;
  case S_IDLE:
    after_as(o);
    return;
  default:
    return;
  }
}

/* ---- public ---- */

int lc_oauth_new(struct lc_loop *loop, const char *server_url,
                 const struct lc_oauth_config *cfg,
                 const struct lc_oauth_events *ev, struct lc_oauth **out,
                 char *err, size_t errlen) {
  *out = NULL;
  if (cfg->client_metadata_url && strncmp(cfg->client_metadata_url, "https://", 8)) {
    snprintf(err, errlen, "auth.client_metadata_url must be an https URL");
    return LC_EINVAL;
  }
  if (cfg->client_id && !printable(cfg->client_id, 1024)) {
    snprintf(err, errlen, "auth.client_id must be printable ASCII");
    return LC_EINVAL;
  }
  if (cfg->redirect_uri && !lc_oauth_url_ok(cfg->redirect_uri)) {
    snprintf(err, errlen,
             "auth.redirect_uri must be https, or http on a loopback host");
    return LC_EINVAL;
  }
  struct lc_oauth *o = lc_calloc(1, sizeof *o);
  if (!o) {
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  o->loop = loop;
  o->ev = *ev;
  lc_http_op_init(&o->op);
  lc_timer_init(&o->kick, kick_fire, o);
  o->server_url = lc_strdup(server_url);
  /* the resource until a PRM names one: the URL without its fragment */
  o->resource = lc_strndup(server_url, strcspn(server_url, "#"));
  o->client_id_cfg = dupn(cfg->client_id);
  o->secret_cfg = dupn(cfg->client_secret);
  o->cimd_url = dupn(cfg->client_metadata_url);
  o->client_name = lc_strdup(cfg->client_name ? cfg->client_name : "luact");
  o->redirect_uri =
      lc_strdup(cfg->redirect_uri ? cfg->redirect_uri : "http://127.0.0.1/callback");
  o->scope_cfg = dupn(cfg->scope);
  o->client_credentials = cfg->client_credentials;
  o->interactive = cfg->interactive;
  if (!o->server_url || !o->resource || !o->client_name || !o->redirect_uri ||
      (cfg->client_id && !o->client_id_cfg) ||
      (cfg->client_secret && !o->secret_cfg) ||
      (cfg->client_metadata_url && !o->cimd_url) || (cfg->scope && !o->scope_cfg)) {
    lc_oauth_free(o);
    snprintf(err, errlen, "out of memory");
    return LC_ENOMEM;
  }
  *out = o;
  return 0;
}

/* Whether every scope of want is in have (space-separated lists). */
static int scopes_within(const char *want, const char *have) {
  if (!want) return 1;
  const char *p = want;
  while (*p) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (!n) break;
    int found = 0;
    for (const char *h = have ? have : ""; *h;) {
      while (*h == ' ') h++;
      size_t m = strcspn(h, " ");
      if (m == n && !strncmp(h, p, n)) found = 1;
      h += m;
    }
    if (!found) return 0;
    p += n;
  }
  return 1;
}

/* have plus the scopes of add it lacks. */
static char *scope_union(const char *have, const char *add) {
  struct lc_buf b;
  lc_buf_init(&b, 8192);
  if (have) lc_buf_puts(&b, have);
  const char *p = add ? add : "";
  while (*p) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (!n) break;
    char one[256];
    if (n < sizeof one) {
      memcpy(one, p, n);
      one[n] = '\0';
      if (!scopes_within(one, b.data ? b.data : "")) {
        if (b.len) lc_buf_append(&b, " ", 1);
        lc_buf_append(&b, p, n);
      }
    }
    p += n;
  }
  char *s = b.len ? lc_strndup(b.data, b.len) : NULL;
  lc_buf_free(&b);
  return s;
}

int lc_oauth_challenge(struct lc_oauth *o, long status, const char *www_auth,
                       unsigned gen, char *err, size_t errlen) {
  err[0] = '\0';
  if (o->step != S_IDLE || lc_timer_active(&o->kick)) return 1; /* joins it */
  if (gen != o->gen) return 0; /* a newer token: resend with it */
  if (o->failed) {
    snprintf(err, errlen, "%s", o->failed);
    return LC_EINVAL;
  }
  struct lc_oauth_challenge c;
  lc_oauth_parse_challenge(www_auth, www_auth ? strlen(www_auth) : 0, &c);
  if (status == 403) {
    if (strcmp(c.error, "insufficient_scope")) {
      snprintf(err, errlen, "MCP server answered HTTP 403 (forbidden%s%s)",
               c.error[0] ? ": " : "", c.error);
      return LC_EINVAL;
    }
    if (!c.scope[0] || scopes_within(c.scope, o->granted)) {
      snprintf(err, errlen,
               "MCP authorization: the server wants scope '%.200s' "
               "(insufficient_scope) and it was asked for already; not "
               "asking again",
               c.scope[0] ? c.scope : "(unnamed)");
      return LC_EINVAL;
    }
  }
  if (o->flows >= MAX_FLOWS) {
    snprintf(err, errlen,
             "MCP authorization: %d authorizations in a row were not "
             "accepted by the server; giving up",
             o->flows);
    return LC_EINVAL;
  }
  /* The scope: the script's, else the challenge's, else the PRM's list,
   * else none; a step-up adds the challenge's to what was granted. */
  char *scope;
  if (o->scope_cfg) scope = scope_union(o->scope_cfg, status == 403 ? c.scope : NULL);
  else if (status == 403) scope = scope_union(o->granted, c.scope);
  else if (c.scope[0]) scope = lc_strdup(c.scope);
  else scope = NULL; /* the PRM's scopes_supported, once known (below) */
  zfree(o->scope);
  o->scope = scope;
  o->kick_done = 0;
  if (c.resource_metadata[0]) {
    if (!lc_oauth_url_ok(c.resource_metadata)) {
      snprintf(err, errlen,
               "MCP authorization: refusing resource_metadata URL '%.200s' "
               "(https, or http on loopback)",
               c.resource_metadata);
      return LC_EINVAL;
    }
    if (!o->prm_url || strcmp(o->prm_url, c.resource_metadata)) {
      setstr(&o->prm_url, c.resource_metadata);
      o->have_as = 0; /* another document: discover again */
    }
  }
  if (o->refresh && o->access && status == 401 && o->have_as) {
    o->step = S_REFRESH;
  } else if (o->have_as) {
    o->step = S_IDLE; /* the kick goes straight to the grant (after_as) */
  } else {
    o->step = S_PRM;
    prm_candidates(o);
  }
  lc_timer_start(o->loop, &o->kick, 0);
  return 1;
}

void lc_oauth_redirect(struct lc_oauth *o, const char *redirect,
                       const char *why) {
  if (o->step != S_USER) return;
  if (!redirect) {
    FAIL(o, "the authorize callback gave no redirect: %.300s",
         why ? why : "(no reason)");
    return;
  }
  char code[2048] = "", state[128] = "", e[64] = "", d[256] = "";
  int is_url = !!strchr(redirect, '?') || !strncmp(redirect, "http", 4);
  if (!is_url) {
    if (!printable(redirect, sizeof code - 1)) {
      FAIL(o, "the authorize callback's code is not printable ASCII");
      return;
    }
    snprintf(code, sizeof code, "%s", redirect);
  } else {
    query_get(redirect, "error", e, sizeof e);
    query_get(redirect, "error_description", d, sizeof d);
    query_get(redirect, "code", code, sizeof code);
    int has_state = query_get(redirect, "state", state, sizeof state);
    if (e[0]) {
      char fe[64], fd[256];
      flat(fe, sizeof fe, e, strlen(e));
      flat(fd, sizeof fd, d, strlen(d));
      FAIL(o, "the authorization server refused: %s%s%s", fe, fd[0] ? ": " : "", fd);
      return;
    }
    if (!has_state || strcmp(state, o->state)) {
      FAIL(o, "the redirect's state does not match the request's (a "
              "forged or stale redirect)");
      return;
    }
    if (!code[0] || !printable(code, sizeof code - 1)) {
      FAIL(o, "the redirect carries no usable code");
      return;
    }
  }
  o->step = S_TOKEN;
  token_request(o, "authorization_code", code);
  memset(code, 0, sizeof code);
}

const char *lc_oauth_header(const struct lc_oauth *o) { return o->header; }
unsigned lc_oauth_gen(const struct lc_oauth *o) { return o->gen; }
void lc_oauth_ok(struct lc_oauth *o) { o->flows = 0; }
int lc_oauth_busy(const struct lc_oauth *o) {
  if (o->step == S_USER) return 2;
  return o->step != S_IDLE || (lc_timer_active(&o->kick) && !o->kick_done);
}

static void scrub_one(char *s, size_t n, const char *secret) {
  if (!secret || strlen(secret) < 4) return;
  static const char red[] = "[redacted]";
  size_t sl = strlen(secret), rl = sizeof red - 1;
  char *p;
  while ((p = strstr(s, secret))) {
    size_t tail = strlen(p + sl);
    size_t at = (size_t)(p - s);
    if (at + rl + tail + 1 > n) tail = n > at + rl + 1 ? n - at - rl - 1 : 0;
    if (at + rl + 1 > n) {
      *p = '\0';
      return;
    }
    memmove(p + rl, p + sl, tail);
    memcpy(p, red, rl);
    p[rl + tail] = '\0';
  }
}

void lc_oauth_scrub(const struct lc_oauth *o, char *s, size_t n) {
  if (!o || !s || !n) return;
  scrub_one(s, n, o->access);
  scrub_one(s, n, o->refresh);
  scrub_one(s, n, o->client_secret);
  scrub_one(s, n, o->secret_cfg);
}

void lc_oauth_free(struct lc_oauth *o) {
  if (!o) return;
  lc_timer_stop(o->loop, &o->kick);
  lc_http_op_cleanup(&o->op);
  clear_cand(o);
  char **s[] = {&o->server_url, &o->client_id_cfg, &o->secret_cfg, &o->cimd_url,
                &o->client_name, &o->redirect_uri, &o->scope_cfg, &o->prm_url,
                &o->resource, &o->as_url, &o->prm_scopes, &o->authz_ep,
                &o->token_ep, &o->reg_ep, &o->client_id, &o->client_secret,
                &o->scope, &o->granted, &o->req_body, &o->access, &o->refresh,
                &o->header, &o->failed};
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) zfree(*s[i]);
  memset(o->verifier, 0, sizeof o->verifier);
  lc_free(o);
}
