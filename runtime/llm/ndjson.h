/* ndjson.h: incremental newline-delimited JSON line splitter.
 *
 * Feeds arbitrary byte fragments and calls back once per complete line
 * (without its "\n" or a trailing "\r"); blank lines are skipped. A final
 * line without a newline is delivered by lc_ndjson_end. The splitter does
 * not parse JSON: the callback does.
 *
 * Ownership: struct lc_ndjson is caller-owned; lc_ndjson_free releases its
 * buffer. Line pointers are borrowed for the callback and NUL-terminated.
 *
 * Errors: a line over max_line bytes fails with LC_ETOOBIG (p->err set; the
 * splitter stays failed), never a truncation. A callback returning non-zero
 * stops the feed, which returns that value. */
#ifndef LC_NDJSON_H
#define LC_NDJSON_H

#include <stddef.h>

#include "buf.h"

typedef int (*lc_ndjson_fn)(void *ud, const char *line, size_t len);

struct lc_ndjson {
  struct lc_buf line;
  size_t max_line;
  int failed;
  char err[128];
};

/* max_line: 0 = 1 MiB. */
void lc_ndjson_init(struct lc_ndjson *p, size_t max_line);
int lc_ndjson_feed(struct lc_ndjson *p, const char *buf, size_t n,
                   lc_ndjson_fn cb, void *ud);
/* Delivers a final unterminated line, if any. 0 or the callback's value. */
int lc_ndjson_end(struct lc_ndjson *p, lc_ndjson_fn cb, void *ud);
void lc_ndjson_free(struct lc_ndjson *p);

#endif
