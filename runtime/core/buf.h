/* buf.h: growable byte buffer with an optional hard size limit.
 *
 * Ownership: the struct is caller-owned (usually embedded); lc_buf_free
 * releases the bytes. data is always NUL-terminated after a successful append
 * so it can be handed to string functions, but may contain NULs itself. */
#ifndef LC_BUF_H
#define LC_BUF_H

#include <stddef.h>

struct lc_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t limit; /* 0 = unlimited; appends past it fail with LC_ETOOBIG */
};

void lc_buf_init(struct lc_buf *b, size_t limit);
int lc_buf_append(struct lc_buf *b, const void *p, size_t n);
int lc_buf_puts(struct lc_buf *b, const char *s);
/* Room for n more bytes (plus the NUL) without a later reallocation. */
int lc_buf_reserve(struct lc_buf *b, size_t n);
int lc_buf_printf(struct lc_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lc_buf_consume(struct lc_buf *b, size_t n); /* drop n bytes from the front */
void lc_buf_reset(struct lc_buf *b);             /* len = 0, keeps memory */
/* Hands the bytes to the caller (who lc_free's them) and empties b; more
 * than 64 bytes of slack are given back first (the string is usually kept). */
char *lc_buf_steal(struct lc_buf *b, size_t *len);
void lc_buf_free(struct lc_buf *b);

#endif
