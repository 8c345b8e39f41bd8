/* oauth.h: the MCP client's authorization (MCP 2025-06-18 / 2025-11-25
 * "Authorization", and the 2025-03-26 fallbacks): from a 401 or 403 of the
 * MCP server to a bearer token, on the loop through lc_http.
 *
 *   WWW-Authenticate (resource_metadata, scope, error)
 *   -> Protected Resource Metadata (RFC 9728: the header's URL, else
 *      /.well-known/oauth-protected-resource with the server's path, then
 *      without it; none at all: the 2025-03-26 rules, the server's origin
 *      is the authorization server)
 *   -> Authorization Server Metadata (RFC 8414, then OpenID discovery, in
 *      the spec's order for an issuer with and without a path; none on the
 *      2025-03-26 path: /authorize, /token, /register at the origin)
 *   -> client: pre-registered id (and secret), a Client ID Metadata
 *      Document URL when the server supports it, or Dynamic Client
 *      Registration (RFC 7591)
 *   -> authorization code with PKCE S256 and RFC 8707 `resource` (the
 *      user-agent step is the owner's: events.authorize gets the URL and
 *      lc_oauth_redirect the URL the browser was sent back to), or the
 *      client_credentials grant
 *   -> token; refresh_token on a later 401; step-up on 403
 *      insufficient_scope with the union of the scopes.
 *
 * Tokens and secrets live in this object only: never logged, never put in
 * an error message (lc_oauth_scrub takes them out of any text), freed with
 * it (zeroed first).
 *
 * Every endpoint must be https, or http on a loopback host (localhost,
 * 127.0.0.0/8, [::1]); documents are at most 64 KiB and checked field by
 * field (the issuer must be the one asked for).
 *
 * Callbacks run from the loop (never inside this API's calls, never inside
 * a libcurl callback). Ownership: the owner frees with lc_oauth_free,
 * never from inside a callback. */
#ifndef LC_OAUTH_H
#define LC_OAUTH_H

#include <stddef.h>

struct lc_loop;
struct lc_oauth;

struct lc_oauth_config {
  const char *client_id;     /* pre-registered; NULL: CIMD or DCR */
  const char *client_secret; /* with client_id; NULL: a public client */
  const char *client_metadata_url; /* CIMD: an https URL used as client_id */
  const char *client_name;   /* for DCR; NULL = "luact" */
  const char *redirect_uri;  /* NULL = "http://127.0.0.1/callback" */
  const char *scope;         /* NULL: chosen from the challenge/metadata */
  int client_credentials;    /* the client_credentials grant (no user) */
  int interactive;           /* the owner handles events.authorize */
};

struct lc_oauth_events {
  /* The user-agent step: send the user to url; then lc_oauth_redirect. */
  void (*authorize)(void *ud, const char *url);
  /* The flow ended: rc 0 with a token (lc_oauth_header), or <0 and why. */
  void (*done)(void *ud, int rc, const char *why);
  void *ud;
};

/* server_url is the MCP endpoint (the resource). <0 with err on a bad
 * config (copied). */
int lc_oauth_new(struct lc_loop *loop, const char *server_url,
                 const struct lc_oauth_config *cfg,
                 const struct lc_oauth_events *ev, struct lc_oauth **out,
                 char *err, size_t errlen);
/* The MCP server answered status (401 or 403) with this WWW-Authenticate
 * (NULL if none) to a request sent with token generation gen. Returns 1
 * when a flow runs (started now or already running; events.done will
 * run), 0 when the caller may resend at once (a newer token exists), and
 * <0 when nothing will help (err says why: a 403 that is not
 * insufficient_scope, a scope asked for already, too many attempts, a
 * flow that failed before). */
int lc_oauth_challenge(struct lc_oauth *o, long status, const char *www_auth,
                       unsigned gen, char *err, size_t errlen);
/* The user-agent step's answer: the redirect URL (or the bare code), or
 * NULL with why (the user refused, the callback failed). */
void lc_oauth_redirect(struct lc_oauth *o, const char *redirect,
                       const char *why);
/* "Authorization: Bearer ..." (borrowed, valid until the next flow ends)
 * or NULL; the generation it belongs to (0 = none yet). */
const char *lc_oauth_header(const struct lc_oauth *o);
unsigned lc_oauth_gen(const struct lc_oauth *o);
/* A request with the current token succeeded: resets the attempt count. */
void lc_oauth_ok(struct lc_oauth *o);
/* Whether a flow is running (1) and is waiting on the user agent (2). */
int lc_oauth_busy(const struct lc_oauth *o);
/* Replaces every occurrence of the secret, the access token and the
 * refresh token in s (NUL-terminated, in place) by "[redacted]" (cut to
 * fit n). */
void lc_oauth_scrub(const struct lc_oauth *o, char *s, size_t n);
void lc_oauth_free(struct lc_oauth *o);

/* ---- the parsers (exposed for tests and the fuzz target) ---- */

/* A Bearer challenge's parameters (RFC 6750 section 3, RFC 9728 section
 * 5.1): values unquoted and unescaped, cut to their buffers; "" if absent.
 * Returns 1 when a Bearer challenge was found, 0 when not (other schemes
 * are skipped), never fails on junk. */
struct lc_oauth_challenge {
  char resource_metadata[1024];
  char scope[1024];
  char error[64];
  char error_description[256];
};
int lc_oauth_parse_challenge(const char *hdr, size_t n,
                             struct lc_oauth_challenge *c);
/* Whether url is https, or http with a loopback host (and no user info). */
int lc_oauth_url_ok(const char *url);

#endif
