/* ndjson.c: incremental NDJSON line splitter (see ndjson.h). */
#include "ndjson.h"

#include <stdio.h>
#include <string.h>

#include "lc.h"

void lc_ndjson_init(struct lc_ndjson *p, size_t max_line) {
  memset(p, 0, sizeof *p);
  p->max_line = max_line ? max_line : (size_t)1 << 20;
  /* + 1 for a trailing CR that is stripped before the length counts. */
  lc_buf_init(&p->line, p->max_line + 1);
}

void lc_ndjson_free(struct lc_ndjson *p) { lc_buf_free(&p->line); }

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
      return 0;
  return 1;
}

static int emit(struct lc_ndjson *p, lc_ndjson_fn cb, void *ud) {
  size_t n = p->line.len;
  if (n && p->line.data[n - 1] == '\r')
    n--;
  int rc = 0;
  if (n > p->max_line) {
    p->failed = LC_ETOOBIG;
    snprintf(p->err, sizeof p->err, "NDJSON line over the size limit");
    return LC_ETOOBIG;
  }
  if (n && !blank(p->line.data, n)) {
    p->line.data[n] = '\0';
    rc = cb ? cb(ud, p->line.data, n) : 0;
  }
  lc_buf_reset(&p->line);
  return rc;
}

int lc_ndjson_feed(struct lc_ndjson *p, const char *buf, size_t n,
                   lc_ndjson_fn cb, void *ud) {
  if (p->failed)
    return p->failed;
  size_t i = 0;
  while (i < n) {
    const char *nl = memchr(buf + i, '\n', n - i);
    size_t j = nl ? (size_t)(nl - buf) : n;
    if (j > i) {
      int rc = lc_buf_append(&p->line, buf + i, j - i);
      if (rc) {
        p->failed = rc;
        snprintf(p->err, sizeof p->err, "%s",
                 rc == LC_ETOOBIG ? "NDJSON line over the size limit"
                                  : "out of memory");
        return rc;
      }
    }
    if (!nl)
      break;
    int rc = emit(p, cb, ud);
    if (rc)
      return rc;
    i = j + 1;
  }
  return 0;
}

int lc_ndjson_end(struct lc_ndjson *p, lc_ndjson_fn cb, void *ud) {
  if (p->failed)
    return p->failed;
  if (p->line.len == 0)
    return 0;
  return emit(p, cb, ud);
}
