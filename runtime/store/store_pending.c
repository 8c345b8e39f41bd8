/* store_pending.c: write queue items (store_pending.h). */
#include "store_pending.h"

#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "store_rows.h"

struct lc_store_pending *lc_store_pending_line(const struct lc_store_client *c, long seq,
                                               unsigned long ticket, const char *text,
                                               size_t len) {
  struct lc_store_pending *p = lc_calloc(1, sizeof *p);
  if (!p || !(p->text = lc_malloc(len ? len : 1))) {
    lc_free(p);
    return NULL;
  }
  memcpy(p->text, text, len);
  p->len = len;
  p->c = *c;
  p->orig = (struct lc_store_client *)c; /* store.h: the store sets its 'failed' */
  p->seq = seq;
  p->ticket = ticket;
  return p;
}

struct lc_store_pending *lc_store_pending_create(const struct lc_store_client *c,
                                                 const struct lc_run_row *r,
                                                 unsigned long ticket, const char *header,
                                                 size_t len, struct lc_store_pending **last) {
  struct lc_store_pending *p = lc_calloc(1, sizeof *p);
  struct lc_run_row *x = p ? lc_store_row_for_create(r) : NULL;
  struct lc_store_pending *h = x ? lc_store_pending_line(c, 1, ticket, header, len) : NULL;
  if (!h) {
    if (x) {
      lc_run_row_free(x);
      free(x);
    }
    lc_free(p);
    return NULL;
  }
  p->create = x;
  p->c = *c;
  p->orig = h->orig;
  p->ticket = 0; /* reports nothing by itself: its line does */
  p->next = h;
  *last = h;
  return p;
}

void lc_store_pending_free(struct lc_store_pending *p) {
  if (p->create) {
    lc_run_row_free(p->create);
    free(p->create);
  }
  lc_free(p->text);
  lc_free(p);
}
