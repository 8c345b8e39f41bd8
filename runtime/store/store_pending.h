/* store_pending.h: an item of a run store's write queue (store.c's
 * SQLite writer, store_pg.c's PostgreSQL one): a line, or a run's
 * creation with its first line.
 *
 * Ownership: an item owns its text and its row copy; lc_store_pending_free
 * frees one item. The queues (and their locks) stay each store's own. */
#ifndef LC_STORE_PENDING_H
#define LC_STORE_PENDING_H

#include <stddef.h>

#include "store.h"

struct lc_store_pending {
  struct lc_store_client c;     /* copied: the client may go before the commit */
  struct lc_store_client *orig; /* the client itself: alive until committed */
  int err;                      /* this item's client failed (errno-like): not written */
  struct lc_run_row *create;    /* a run to create before its lines (copied) */
  long seq;
  unsigned long ticket;
  char *text;
  size_t len;
  int lazy; /* lc_store_append_lazy's: may wait for a larger group */
  struct lc_store_pending *next;
};

/* A line (text copied); NULL: no memory. */
struct lc_store_pending *lc_store_pending_line(const struct lc_store_client *c, long seq,
                                               unsigned long ticket, const char *text,
                                               size_t len);
/* Run r's creation (copied) followed by its header line (seq 1, ticket;
 * copied), linked: the chain to queue whole (*last: its end). NULL: no
 * memory (nothing allocated). */
struct lc_store_pending *lc_store_pending_create(const struct lc_store_client *c,
                                                 const struct lc_run_row *r,
                                                 unsigned long ticket, const char *header,
                                                 size_t len, struct lc_store_pending **last);
void lc_store_pending_free(struct lc_store_pending *p);

#endif
