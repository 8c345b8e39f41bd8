/* utf8.h: strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). */
#ifndef LC_UTF8_H
#define LC_UTF8_H

#include <stddef.h>

/* Returns 1 if s[0..n) is valid UTF-8; else 0 and *bad = offset of the
 * first invalid byte (bad may be NULL). */
int lc_utf8_valid(const char *s, size_t n, size_t *bad);

/* A copy of s[0..n) that is valid UTF-8 without NUL: each byte that
 * starts no valid sequence (a character cut short, say) and each NUL
 * becomes U+FFFD. lc_malloc'd, NUL terminated, length in *out_len (may be
 * NULL). NULL when out of memory. */
char *lc_utf8_sanitize(const char *s, size_t n, size_t *out_len);

#endif
