/* apideltas.h: live token deltas of runs for `luact serve`'s streams
 * (apideltas.c).
 *
 * The journal records an LLM call's whole result, not its token deltas, so
 * deltas live in memory, one buffer per run execution in this process:
 * appended by the journal's delta hook on the run's worker
 * (lc_api_delta, serve.h), read by the streams (apisse.c) under
 * lc_api_deltas_mu. A buffer is capped (items, bytes: beyond the cap a
 * stream announces a gap) and is freed only when it is among the oldest
 * ended ones: a stream's cursor into it is checked by serial first.
 * lc_api_deltas_open/close/delta are declared in serve.h (daemon.c calls
 * them). */
#ifndef LC_APIDELTAS_H
#define LC_APIDELTAS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct lc_serve;

struct lc_delta_item {
  long base, k;
  int kind; /* enum lc_llm_delta_kind */
  int index;
  char eff[64];   /* the LLM call's effect id: the message's id */
  char *text;     /* fragment (tool start: the tool's name) */
  char *tool_id;  /* tool start: the call id */
  struct lc_delta_item *next;
};

struct lc_deltas {
  struct lc_serve *s;
  char run[65];
  long start;    /* every delta under a line >= start is here */
  long full_at;  /* LONG_MAX, or the line from which deltas were dropped (cap) */
  long last_base, last_k, nitems;
  size_t bytes;
  int running;
  unsigned long serial; /* this buffer, for a stream's cursor into it */
  struct lc_delta_item *head, *tail; /* in (base, k) order, append-only */
  struct lc_deltas *next;
};

/* Guards every buffer and item. */
extern pthread_mutex_t lc_api_deltas_mu;
/* Streams that asked for token deltas: a delta wakes the waiters (every
 * wait and stream re-reads the store) only when one is open. */
extern atomic_int lc_api_tok_streams;
/* The buffer of run, or NULL (under lc_api_deltas_mu). */
struct lc_deltas *lc_api_deltas_find(const char *run);

#endif
