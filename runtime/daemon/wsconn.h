/* wsconn.h: the thread stream's WebSocket for `luact serve` (wsconn.c):
 * GET /threads/{id}/stream with Upgrade: websocket, the Agent Protocol's
 * WebSocket transport. ws.c is the framing (no I/O); this is the
 * connections: after the 101 the socket is ours, and one thread (the
 * WebSocket loop) reads and writes every WebSocket. Commands (apicmds.h,
 * plus subscription.subscribe / unsubscribe whose events are apisse.h's,
 * one text message each) run on apiwork.c's workers, in the connection's
 * parked item. A WebSocket counts as a stream (--max-streams). Keep-alive:
 * a ping when nothing came for a while; a peer that answers nothing, a
 * frame left half sent, or a reader too slow for what is queued is cut
 * off. Stopping, each gets a close 1001 and 2 s to take the rest. */
#ifndef LC_WSCONN_H
#define LC_WSCONN_H

#include <microhttpd.h>
#include <stddef.h>

struct lc_serve;

/* Does the request ask for a WebSocket (Upgrade: websocket)? */
int lc_wsconn_is_upgrade(struct MHD_Connection *c);
/* The upgrade's answer (a worker's route, lc_api_cur_rq set): 101, or 400,
 * 404, 426, 503. The thread may not exist yet (run.start creates it)
 * unless another tenant has it. */
enum MHD_Result lc_wsconn_upgrade(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *tenant, const char *thread);
/* Starts the WebSocket loop: 0, or LC_EIO with err. */
int lc_wsconn_start(struct lc_serve *s, char *err, size_t n);
/* Closes every WebSocket (1001) and ends the loop. */
void lc_wsconn_stop(void);

#endif
