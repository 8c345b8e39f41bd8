/* mcp_httpd.h: the Streamable HTTP side of `luact mcp serve`: one POST
 * endpoint (/mcp) on a loopback address, bearer-token auth, Origin check,
 * JSON answers, or SSE when a call reports progress. libmicrohttpd runs
 * in external-epoll mode on our loop (its epoll fd is one of our watchers;
 * no thread of its own), and is loaded with dlopen on first use so that a
 * run that never serves does not load it.
 *
 * Flow: each authorised POST, GET or DELETE is handed to on_msg with a
 * request id, its method, its Mcp-Session-Id and Last-Event-ID headers and
 * its body;
 * the connection is suspended until lc_mcp_httpd_reply(id, ...) gives its
 * answer (exactly once; 202 with no body for notifications), or streams
 * events before it (lc_mcp_httpd_event: the answer is then an SSE stream). Requests that
 * fail the checks are answered here (401, 403, 404, 405, 413) and never
 * reach on_msg.
 *
 * Ownership: the server is the caller's (lc_mcp_httpd_free, which also
 * drops unanswered requests). on_msg's body is borrowed for the call. */
#ifndef LC_MCP_HTTPD_H
#define LC_MCP_HTTPD_H

#include <stddef.h>

struct lc_loop;
struct lc_mcp_httpd;

/* One request as on_msg sees it (every pointer borrowed for the call;
 * session and last_event_id NULL when absent, "" when over 200 bytes). */
struct lc_mcp_httpd_msg {
  const char *method; /* "POST", "GET" or "DELETE" */
  const char *session, *last_event_id;
  const char *body;
  size_t n;
};
typedef void (*lc_mcp_httpd_fn)(void *ud, long id,
                                const struct lc_mcp_httpd_msg *m);

/* Listens on 127.0.0.1:port (0 = any free port). token: the bearer token
 * every request must carry (required, copied). <0 with err on failure. */
int lc_mcp_httpd_start(struct lc_loop *loop, int port, const char *token,
                       size_t max_body, lc_mcp_httpd_fn on_msg, void *ud,
                       struct lc_mcp_httpd **out, char *err, size_t errlen);
int lc_mcp_httpd_port(const struct lc_mcp_httpd *h);
/* Answers request id (unknown or answered ids are ignored). status 202
 * sends no body. */
void lc_mcp_httpd_reply(struct lc_mcp_httpd *h, long id, int status,
                        const char *body, size_t n);
/* Sends body as one SSE event (`data: body`, after `id: event_id` and
 * `retry: retry_ms` when given) on request id's response, which becomes a
 * text/event-stream; lc_mcp_httpd_reply then sends its body as the last
 * event and ends the stream (its status is not used; an empty body just
 * ends it). LC_EINVAL for an unknown or answered id (the client went) or
 * a body or event id with a line break. */
int lc_mcp_httpd_event(struct lc_mcp_httpd *h, long id, const char *event_id,
                       int retry_ms, const char *body, size_t n);
/* The answer to request id (JSON or SSE) will carry
 * `Mcp-Session-Id: sid` (copied). LC_EINVAL for an unknown id or a sid
 * that is not visible ASCII. */
int lc_mcp_httpd_session(struct lc_mcp_httpd *h, long id, const char *sid);
void lc_mcp_httpd_free(struct lc_mcp_httpd *h);

#endif
