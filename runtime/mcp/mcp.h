/* mcp.h: one MCP client session on a loop: a stdio server (a child process
 * on pipes) or a Streamable HTTP server (POSTs through lc_http, JSON or SSE
 * answers), the version negotiation, and JSON-RPC requests with timeouts
 * and cancellation. No thread ever blocks: pipes, the child's pidfd and
 * transfers are loop events.
 *
 * Negotiation: server/discover first (2026-07-28, stateless: every request
 * then carries the version and capabilities in params._meta); a server that
 * does not know it gets initialize with 2025-11-25 and may answer 2025-11-25
 * or 2025-06-18 (or 2025-03-26; then notifications/initialized; over HTTP
 * the Mcp-Session-Id and MCP-Protocol-Version headers, and a standalone GET
 * SSE stream for the server's own messages). An SSE answer stream the
 * server closes before the answer is resumed with GET and Last-Event-ID
 * after its retry: delay.
 *
 * Ownership: the session is the caller's (lc_mcp_free). Params passed to
 * lc_mcp_call / lc_mcp_notify / lc_mcp_respond are taken (deleted even on
 * failure). Trees handed to callbacks are borrowed for the call.
 *
 * Callbacks run from the loop, never inside a libcurl callback. A reply
 * callback runs exactly once per successful lc_mcp_call, unless
 * lc_mcp_cancel is called first; lc_mcp_free runs the pending ones with
 * LC_ECANCEL. Callbacks must not free the session. */
#ifndef LC_MCP_H
#define LC_MCP_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "oauth.h"

struct lc_loop;
struct lc_mcp;

#define LC_MCP_V_STATELESS "2026-07-28"
#define LC_MCP_V_2025_11 "2025-11-25"
#define LC_MCP_V_2025_06 "2025-06-18"
/* Accepted from a server, never offered: the same wire as 2025-06-18 for
 * what luact sends (it never sends batches). */
#define LC_MCP_V_2025_03 "2025-03-26"

struct lc_mcp_config {
  /* stdio: argv[0] is looked up in PATH; env "K=V" entries are the child's
   * whole environment, plus PATH and HOME from ours unless given. */
  const char *const *argv; /* NULL-terminated */
  const char *const *env;  /* NULL-terminated, may be NULL */
  /* Streamable HTTP */
  const char *url;
  const char *const *headers; /* "Name: value", NULL-terminated, may be NULL */
  size_t max_message;         /* one message; 0 = 4 MiB */
  double connect_timeout_ms;  /* handshake deadline; 0 = 30 s */
  /* Test hook: the newest revision to offer (NULL = 2026-07-28). */
  const char *max_version;
  /* HTTP: authorize on a 401 (oauth.h); NULL = never (a 401 fails). */
  const struct lc_oauth_config *auth;
};

struct lc_mcp_reply {
  int rc;                /* 0, LC_EINVAL (JSON-RPC error), LC_ETIMEOUT,
                          * LC_EIO (server gone), LC_ECANCEL (session freed),
                          * LC_ESTATE (not authorized: config.auth failed) */
  const cJSON *result;   /* rc == 0 */
  long long code;        /* JSON-RPC error code when rc == LC_EINVAL */
  const char *message;   /* error text when rc != 0 */
  /* Non-NULL when the callback may keep the result tree instead of
   * copying it: it copies *take and sets *take = NULL; the tree is then
   * its own (cJSON_Delete). */
  cJSON **take;
  /* rc == 0 and result NULL: the result was exactly
   * {"content":[{"type":"text","text":TEXT}]}, TEXT (text_len bytes,
   * valid UTF-8, no control bytes, borrowed for the call) read without a
   * tree. Only for a request made with text_ok (lc_mcp_call_text). */
  const char *text;
  size_t text_len;
};
typedef void (*lc_mcp_reply_fn)(void *ud, const struct lc_mcp_reply *r);

struct lc_mcp_events {
  /* The handshake ended: rc 0 (lc_mcp_version says which) or an error. */
  void (*ready)(void *ud, int rc, const char *msg);
  /* A notification from the server (progress, list_changed, message...). */
  void (*notification)(void *ud, const char *method, const cJSON *params);
  /* A request from the server other than ping. The handler answers exactly
   * once, now or later, with lc_mcp_respond / lc_mcp_respond_error, using
   * the id it was given (copy it: it is borrowed). NULL: method not found. */
  void (*request)(void *ud, const cJSON *id, const char *method,
                  const cJSON *params);
  /* The session is dead (child exited, protocol violation, HTTP session
   * lost); pending replies have already run with LC_EIO. */
  void (*closed)(void *ud, const char *why);
  /* The authorization's user-agent step (config.auth): send the user to
   * url, then lc_mcp_authorized. The handshake deadline is paused until
   * then (a person may take a while). */
  void (*authorize)(void *ud, const char *url);
  void *ud;
};

/* Starts the transport and the handshake; events.ready runs later (never
 * inside this call). <0 with err on a bad config or a failed spawn. */
int lc_mcp_open(struct lc_loop *loop, const struct lc_mcp_config *cfg,
                const struct lc_mcp_events *ev, struct lc_mcp **out,
                char *err, size_t errlen);
/* Sends a request; fn runs once with the answer. timeout_ms 0 = none.
 * Before ready, requests wait for the handshake. progress_token non-zero
 * adds params._meta.progressToken = that number. *id_out gets the id. */
int lc_mcp_call(struct lc_mcp *m, const char *method, cJSON *params,
                double timeout_ms, long long progress_token,
                lc_mcp_reply_fn fn, void *ud, long long *id_out);
/* lc_mcp_call with params given as the JSON text of an object (n bytes,
 * borrowed): written into the request as is, no tree built, when the
 * session is ready. LC_EINVAL when the text is not JSON. text_ok: fn
 * takes a reply's text (lc_mcp_reply.text) for a result of one text item. */
int lc_mcp_call_text(struct lc_mcp *m, const char *method, const char *params, size_t n,
                     double timeout_ms, long long progress_token, int text_ok,
                     lc_mcp_reply_fn fn, void *ud, long long *id_out);
/* The caller no longer wants request id: fn never runs, and the server is
 * told (notifications/cancelled with the reason). */
void lc_mcp_cancel(struct lc_mcp *m, long long id, const char *reason);
int lc_mcp_notify(struct lc_mcp *m, const char *method, cJSON *params);
int lc_mcp_respond(struct lc_mcp *m, const cJSON *id, cJSON *result);
int lc_mcp_respond_error(struct lc_mcp *m, const cJSON *id, int code,
                         const char *message);
/* The answer to events.authorize: the URL the browser was redirected to
 * (or the bare code), or NULL with why. */
void lc_mcp_authorized(struct lc_mcp *m, const char *redirect, const char *why);
/* Negotiated revision ("" before ready), the server's initialize or
 * discover result (NULL before ready), and why it died (NULL if alive). */
const char *lc_mcp_version(const struct lc_mcp *m);
const cJSON *lc_mcp_server_info(const struct lc_mcp *m);
const char *lc_mcp_dead(const struct lc_mcp *m);
/* Counters for tests: messages read, bad lines skipped, unknown ids. */
void lc_mcp_stats(const struct lc_mcp *m, long *in, long *bad, long *unknown);
/* The stdio server's pid (-1 for HTTP or once reaped). */
int lc_mcp_pid(const struct lc_mcp *m);
/* Kills the child (stdio) or ends the transfers and the HTTP session,
 * runs the pending replies with LC_ECANCEL, frees everything. */
void lc_mcp_free(struct lc_mcp *m);

#endif
