/* utf8.h: strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). */
#ifndef LC_UTF8_H
#define LC_UTF8_H

#include <stddef.h>

/* Returns 1 if s[0..n) is valid UTF-8; else 0 and *bad = offset of the
 * first invalid byte (bad may be NULL). */
int lc_utf8_valid(const char *s, size_t n, size_t *bad);

#endif
