/* buf.c: growable byte buffer. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"

void lc_buf_init(struct lc_buf *b, size_t limit) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->limit = limit;
}

static int grow(struct lc_buf *b, size_t need) {
  if (b->limit && need > b->limit) return LC_ETOOBIG;
  if (need + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need + 1) cap *= 2;
  char *p = lc_realloc(b->data, cap);
  if (!p) return LC_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int lc_buf_append(struct lc_buf *b, const void *p, size_t n) {
  int rc = grow(b, b->len + n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int lc_buf_reserve(struct lc_buf *b, size_t n) { return grow(b, b->len + n); }

int lc_buf_puts(struct lc_buf *b, const char *s) {
  return lc_buf_append(b, s, strlen(s));
}

int lc_buf_printf(struct lc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return LC_EINVAL;
  if ((size_t)n < sizeof tmp) return lc_buf_append(b, tmp, (size_t)n);
  int rc = grow(b, b->len + (size_t)n);
  if (rc) return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void lc_buf_consume(struct lc_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void lc_buf_reset(struct lc_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

char *lc_buf_steal(struct lc_buf *b, size_t *len) {
  if (!b->data && grow(b, 0)) return NULL;
  if (!b->data) return NULL;
  char *p = b->data;
  if (len) *len = b->len;
  p[b->len] = '\0';
  /* A stolen string is usually kept (an observation, a message): give
   * back the doubling slack, e.g. 256 bytes for a 15-byte tool result.
   * A shrinking realloc stays in place. */
  if (b->cap - b->len > 64) {
    char *fit = lc_realloc(p, b->len + 1);
    if (fit) p = fit;
  }
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void lc_buf_free(struct lc_buf *b) {
  lc_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
