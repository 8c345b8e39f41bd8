/* apideltas.c: live token deltas of runs, in memory (apideltas.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apideltas.h"
#include "llm.h"
#include "serve.h"

/* ---- live token deltas ----
 *
 * The journal records an LLM call's whole result, not its token deltas, so
 * deltas live here, in memory, per run (fed by the journal's delta hook on
 * the run's thread, read by stream threads). A delta's SSE id is "N.0.k":
 * the k-th delta after journal line N, so it sorts after line N ("N") and
 * before line N+1 and the terminal events ("N.1", "N.2"). Deltas under
 * lines after `start` are all here (this process ran them); deltas under
 * earlier lines may have gone to clients of an earlier process or an
 * evicted buffer: a stream passing those lines says so with one luact/gap
 * event and never sends an id twice. */

enum { DL_MAX_ITEMS = 65536, DL_MAX_BYTES = 4 << 20, DL_KEEP_ENDED = 256 };

pthread_mutex_t lc_api_deltas_mu = PTHREAD_MUTEX_INITIALIZER;
atomic_int lc_api_tok_streams;
static struct lc_deltas *dl_runs; /* newest first */
static unsigned long dl_serial;

static void dl_free(struct lc_deltas *d) {
  for (struct lc_delta_item *i = d->head, *n; i; i = n) {
    n = i->next;
    free(i->text);
    free(i->tool_id);
    free(i);
  }
  free(d);
}

struct lc_deltas *lc_api_deltas_find(const char *run) {
  for (struct lc_deltas *d = dl_runs; d; d = d->next)
    if (!strcmp(d->run, run)) return d;
  return NULL;
}

struct lc_deltas *lc_api_deltas_open(struct lc_serve *s, const char *run, long from) {
  pthread_mutex_lock(&lc_api_deltas_mu);
  struct lc_deltas *d = lc_api_deltas_find(run);
  if (!d && (d = calloc(1, sizeof *d))) {
    d->s = s;
    d->serial = ++dl_serial;
    snprintf(d->run, sizeof d->run, "%s", run);
    /* A resumed execution writes its resume line (from + 1) before any
     * delta; deltas under lines up to `from` were another execution's. A
     * new run has no line before its header. */
    d->start = from > 0 ? from + 1 : 0;
    d->full_at = LONG_MAX;
    d->next = dl_runs;
    dl_runs = d;
  }
  /* Else: an answered run executing again in this process; its earlier
   * deltas are all here. */
  if (d) d->running = 1;
  /* Keep the newest ended buffers only. */
  int ended = 0;
  for (struct lc_deltas **p = &dl_runs; *p;) {
    if (!(*p)->running && ++ended > DL_KEEP_ENDED) {
      struct lc_deltas *x = *p;
      *p = x->next;
      dl_free(x);
    } else {
      p = &(*p)->next;
    }
  }
  pthread_mutex_unlock(&lc_api_deltas_mu);
  return d;
}

void lc_api_deltas_close(struct lc_deltas *d) {
  if (!d) return;
  pthread_mutex_lock(&lc_api_deltas_mu);
  d->running = 0;
  pthread_mutex_unlock(&lc_api_deltas_mu);
}

void lc_api_delta(void *ud, long seq, const char *eff, const struct lc_llm_delta *dd) {
  struct lc_deltas *d = ud;
  if (!d) return;
  size_t len = dd->text ? dd->len : 0;
  if (dd->kind == LC_DELTA_TOOL_START && dd->name) len = strlen(dd->name);
  pthread_mutex_lock(&lc_api_deltas_mu);
  long k = seq == d->last_base ? d->last_k + 1 : 1;
  if (d->full_at != LONG_MAX || d->nitems >= DL_MAX_ITEMS || d->bytes + len > DL_MAX_BYTES) {
    if (d->full_at == LONG_MAX) d->full_at = seq; /* streams announce the rest as a gap */
    pthread_mutex_unlock(&lc_api_deltas_mu);
    return;
  }
  struct lc_delta_item *i = calloc(1, sizeof *i);
  const char *src = dd->kind == LC_DELTA_TOOL_START ? dd->name : dd->text;
  if (i && (i->text = malloc(len + 1))) {
    if (len) memcpy(i->text, src, len);
    i->text[len] = 0;
    if (dd->kind == LC_DELTA_TOOL_START && dd->id) i->tool_id = strdup(dd->id);
    i->base = seq;
    i->k = k;
    i->kind = (int)dd->kind;
    i->index = dd->index;
    snprintf(i->eff, sizeof i->eff, "%s", eff ? eff : "");
    if (d->tail) d->tail->next = i;
    else d->head = i;
    d->tail = i;
    d->last_base = seq;
    d->last_k = k;
    d->nitems++;
    d->bytes += len + sizeof *i;
  } else {
    free(i);
    if (d->full_at == LONG_MAX) d->full_at = seq;
  }
  pthread_mutex_unlock(&lc_api_deltas_mu);
  if (atomic_load(&lc_api_tok_streams) > 0) lc_serve_notify(d->s); /* streams waiting at the tail */
}
