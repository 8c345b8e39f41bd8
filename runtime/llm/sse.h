/* sse.h: incremental Server-Sent Events parser (WHATWG "event stream
 * interpretation"), fed arbitrary byte fragments.
 *
 * Rules kept: fields event/data/id/retry; several data lines joined with
 * "\n"; lines starting with ':' are comments; CRLF, CR and LF all end a line,
 * even when the CR and the LF arrive in different feeds; one space after the
 * colon is stripped; a UTF-8 BOM at the very start is dropped; an event is
 * dispatched on a blank line, and only if it had a data field. At end of
 * input an event without its blank line is discarded (lc_sse_end reports
 * whether one was pending, so callers can tell a cut stream).
 *
 * Ownership: struct lc_sse is caller-owned (usually embedded); lc_sse_free
 * releases its buffers. Event pointers passed to the callback are borrowed
 * for the duration of the call and NUL-terminated.
 *
 * Errors: an event (or a single line) over max_event bytes is an error,
 * never a truncation: feed returns LC_ETOOBIG with p->err set, and the
 * parser stays failed. A callback returning non-zero stops the feed, which
 * returns that value. */
#ifndef LC_SSE_H
#define LC_SSE_H

#include <stddef.h>

#include "buf.h"

struct lc_sse_event {
  const char *event; /* "message" when the event had no event: field */
  size_t event_len;
  const char *data; /* data lines joined with "\n" */
  size_t data_len;
  const char *id; /* last event id seen so far (persists across events) */
  size_t id_len;
  long retry; /* last valid retry: value in ms, -1 if none */
};

typedef int (*lc_sse_fn)(void *ud, const struct lc_sse_event *ev);

struct lc_sse {
  struct lc_buf line;  /* the current, unterminated line */
  struct lc_buf data;  /* data buffer of the event being built */
  struct lc_buf event; /* event type buffer */
  struct lc_buf id;    /* last event id */
  long retry;
  size_t max_event;
  int cr_seen;   /* last byte was CR: a following LF belongs to it */
  int bom_state; /* bytes of the BOM matched so far; 3 or -1 = decided */
  int has_data;  /* a data field was seen for the event being built */
  int pending;   /* some field line arrived since the last dispatch */
  int failed;
  char err[128];
};

/* max_event: limit on one event's data (and on one line); 0 = 1 MiB. */
void lc_sse_init(struct lc_sse *p, size_t max_event);
/* Parses n bytes, calling cb for every complete event. 0 or an error. */
int lc_sse_feed(struct lc_sse *p, const char *buf, size_t n, lc_sse_fn cb,
                void *ud);
/* End of input. Returns 1 if an incomplete event or line was discarded,
 * 0 if the stream ended on an event boundary. */
int lc_sse_end(struct lc_sse *p);
void lc_sse_free(struct lc_sse *p);

#endif
