/* http_tool.h: the built-in HTTP tool: one request over runtime/llm/http.c with
 * a checked URL (http/https only) and header list, every response header
 * kept, a response size cap (an error, never a cut) and an optional
 * Idempotency-Key header. Lua-free; tools/l_http.c binds it.
 *
 * Ownership: struct lc_http_tool_call is caller-owned (it lives inside a
 * Lua userdata) and must not move while a request is active.
 * lc_http_tool_init / lc_http_tool_cleanup bracket its life; cleanup
 * cancels an active request, is idempotent and safe right after init. The
 * request's strings are borrowed and copied by lc_http_tool_start.
 *
 * Completion: as http.h: done runs exactly once, from the loop, after a
 * successful start, unless cleanup comes first (then never).
 *
 * Errors: lc_http_tool_start returns LC_EINVAL (bad URL, method or header;
 * err says which and why), LC_ENOMEM or LC_ESTATE (already active); done
 * then never runs. After done, lc_http_tool_result gives 0 for any HTTP
 * status, or LC_ETIMEOUT, LC_ETOOBIG, LC_EIO with a message;
 * lc_http_tool_errcode maps every code to the stable string that scripts
 * and models see: "timeout", "too_large", "network", "bad_url". */
#ifndef LC_HTTP_TOOL_H
#define LC_HTTP_TOOL_H

#include <stddef.h>

#include "http.h"
#include "loop.h"

#define LC_HTTP_TOOL_DEFAULT_TIMEOUT_MS 30000.0
#define LC_HTTP_TOOL_DEFAULT_MAX_BODY (10u << 20)
#define LC_HTTP_TOOL_MAX_URL 8192

struct lc_http_tool_req {
  const char *method;          /* NULL: GET, or POST when there is a body */
  const char *url;             /* absolute http:// or https:// URL */
  const char *const *headers;  /* "Name: value", checked at start */
  size_t n_headers;
  const char *body;            /* NULL: no body */
  size_t body_len;
  const char *content_type;    /* sent unless headers has Content-Type */
  const char *idempotency_key; /* sent as Idempotency-Key when non-NULL */
  double timeout_ms;           /* whole exchange; 0 = the default */
  double connect_timeout_ms;   /* 0 = http.c's default (10 s) */
  size_t max_body;             /* 0 = LC_HTTP_TOOL_DEFAULT_MAX_BODY */
};

struct lc_http_tool_call;
typedef void (*lc_http_tool_done_fn)(struct lc_http_tool_call *c, void *ud);

struct lc_http_tool_call {
  struct lc_http_op op;
  lc_http_tool_done_fn done;
  void *ud;
  int active;
};

/* One response header; name is lower-case, value trimmed. Both point into
 * the call and stay valid until the next start or cleanup. */
struct lc_http_tool_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

void lc_http_tool_init(struct lc_http_tool_call *c);
int lc_http_tool_start(struct lc_loop *loop, struct lc_http_tool_call *c,
                       const struct lc_http_tool_req *req,
                       lc_http_tool_done_fn done, void *ud, char *err,
                       size_t errlen);
void lc_http_tool_cleanup(struct lc_http_tool_call *c);

/* After done: 0 or the transfer's error code, with *msg set to its text
 * (owned by the call). */
int lc_http_tool_result(const struct lc_http_tool_call *c, const char **msg);
long lc_http_tool_status(const struct lc_http_tool_call *c);
const char *lc_http_tool_body(const struct lc_http_tool_call *c, size_t *len);
const char *lc_http_tool_content_type(const struct lc_http_tool_call *c);
/* Iterates response headers in arrival order: start with *pos = 0; returns
 * 1 and fills h, or 0 at the end. */
int lc_http_tool_next_header(const struct lc_http_tool_call *c, size_t *pos,
                             struct lc_http_tool_header *h);

/* 0 for an absolute http/https URL with a host; LC_EINVAL and a message
 * (naming what is wrong) otherwise. */
int lc_http_tool_check_url(const char *url, char *err, size_t errlen);
/* A path a model gives, to be appended to a base URL: 0 when it starts
 * with '/' and names something under the base however a server decodes
 * it. Every percent-decoding of it (repeated while %XX escapes remain, at
 * most LC_HTTP_TOOL_MAX_DECODES times) is checked: no control characters,
 * space, '\\', '?' or '#'; no "." or ".." segment, also with a ";param"
 * tail ("/..;/") or spelt with escapes ("%2e%2e", "%252e%252e",
 * "..%2f"); decoded bytes must be UTF-8 (no overlong "%c0%ae"); a raw '%'
 * must start an escape. LC_EINVAL and a message a model can act on
 * otherwise. base is only used in messages. */
#define LC_HTTP_TOOL_MAX_DECODES 4
int lc_http_tool_check_path(const char *base, const char *path, size_t len,
                            char *err, size_t errlen);
/* 0 when url, parsed as curl will send it (dot segments removed), has the
 * scheme, host, port and user info of base and a path at or below base's
 * path; LC_EINVAL naming the difference otherwise, LC_ENOMEM. */
int lc_http_tool_check_under(const char *url, const char *base, char *err,
                             size_t errlen);
/* 0 when name is an HTTP token and value has no CR, LF or NUL. */
int lc_http_tool_check_header(const char *name, size_t name_len,
                              const char *value, size_t value_len, char *err,
                              size_t errlen);
/* Is this Content-Type JSON (application/json or any +json type)? */
int lc_http_tool_is_json(const char *content_type);
/* "timeout", "too_large", "network", "bad_url", "nomem", "state". */
const char *lc_http_tool_errcode(int rc);

#endif
