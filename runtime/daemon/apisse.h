/* apisse.h: event streams of `luact serve` (apisse.c): a run's SSE stream
 * (POST /runs/stream, GET /runs/{id}/stream), a thread's (GET
 * /threads/{id}/stream: its runs in turn; POST: the Agent Protocol's
 * channels), and a WebSocket's subscriptions (wsconn.c), all read from the
 * journal: SSE ids are journal line numbers ("N"), a run's terminal events
 * "N.1" and "N.2", token deltas "N.0.k" (apideltas.h); a thread's are
 * prefixed "RUN:". Last-Event-ID resumes after one.
 *
 * A stream holds no thread: its content reader suspends its connection
 * when nothing is buffered and parks the stream (apiwork.h); on a worker
 * lc_stream_fill appends what is new and the connection resumes. Streams,
 * waits and WebSockets together stay under --max-streams (sse_clients).
 * Ownership: a struct lc_stream with a connection belongs to its response
 * (freed by libmicrohttpd through lc_stream_free); one without (c NULL: a
 * WebSocket's subscription) to its WebSocket, which calls lc_stream_free. */
#ifndef LC_APISSE_H
#define LC_APISSE_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>

#include "apiwork.h"

struct lc_serve;
struct lc_delta_item;

struct lc_stream {
  struct lc_serve *s;
  struct lc_work work;       /* parked while its connection is suspended */
  struct MHD_Connection *c;  /* NULL: a WebSocket's subscription */
  char tenant[128];          /* the thread's runs are this tenant's only */
  char run[65], thread[65];
  long seq;   /* last journal line sent */
  int sub;    /* last terminal event sent after seq (0: none) */
  int meta, gap, done, tokens; /* tokens: 0, or LC_STREAM_TOK_MESSAGES / LC_STREAM_TOK_TUPLE */
  long dk;                     /* last token delta sent after line seq (0: none) */
  int gap_full;                /* the cap's gap announced */
  long llm_from;               /* the run's first LLM intent line (0: not looked up yet,
                                  LONG_MAX: none) */
  unsigned long dl_serial;     /* cursor: the last delta item looked at, valid while */
  const struct lc_delta_item *dl_at; /* its buffer (dl_serial) lives; under lc_api_deltas_mu */
  int thread_mode;             /* GET /threads/{id}/stream: the thread's runs in turn */
  int ap;                      /* POST /threads/{id}/stream: the channels (bits), 0: not */
  char acc_eff[64];            /* "messages": the message being accumulated */
  char *acc;
  size_t acc_len;
  char *buf;
  size_t len, off, cap;
  double last_send; /* monotonic seconds */
};

enum { LC_STREAM_TOK_MESSAGES = 1, LC_STREAM_TOK_TUPLE = 2 };

/* A stream's state (c NULL: a WebSocket's subscription, which does not
 * count as a stream of its own). row: the run to start at (NULL: the
 * thread's first); tokens: 0 or LC_STREAM_TOK_*; thread_mode: go on with the
 * thread's later runs; last: a Last-Event-ID to resume after (without a
 * thread's run prefix), or NULL; ap: the protocol's channels (bits), 0:
 * not. NULL when out of memory. */
struct lc_stream *lc_stream_new(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                          const cJSON *row, int tokens, int thread_mode, const char *last, int ap,
                          const char *thread);
/* Appends what is new to e->buf (a worker: reads the store). */
void lc_stream_fill(struct lc_stream *e);
/* Frees e (libmicrohttpd's response free callback; idempotent per e). */
void lc_stream_free(void *cls);
/* The channel's bit, 0 for an unknown one. */
int lc_stream_channel_bit(const char *ch);
/* The channels of a subscription ({"channels": [...]}) as bits; 0 with
 * why set when they are not valid. */
int lc_stream_channels(const cJSON *body, const char **why);
/* The token form a stream_mode asks for (LC_STREAM_TOK_*, or 0), from the
 * body's stream_mode or the query string's. */
int lc_stream_wants_tokens(const cJSON *sm);
int lc_stream_query_tokens(struct MHD_Connection *c);
/* Where a thread's stream starts: the oldest run still to go, else the
 * newest; NULL: none (the caller's). */
cJSON *lc_stream_thread_pick(struct lc_serve *s, const char *tenant, const char *thread);
/* A run's stream, from Last-Event-ID. */
enum MHD_Result lc_stream_stream_run(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                                  const cJSON *row, int tokens);
/* GET (body NULL) or POST (the protocol's channels) /threads/{id}/stream. */
enum MHD_Result lc_stream_stream_thread(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *tenant, const char *thread, const cJSON *body);

#endif
