/* utf8.c: strict UTF-8 validation and repair. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#include "lc.h"

int lc_utf8_valid(const char *str, size_t n, size_t *bad) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    /* Eight ASCII bytes at a time (most text is ASCII): a chunk with any
     * high bit goes byte by byte from its start, so 'bad' is the same. */
    while (n - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned c = s[i];
    size_t len;
    unsigned min, cp;
    if (c < 0x80) { i++; continue; }
    else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else goto fail;
    if (i + len > n) goto fail;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) goto fail;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto fail;
    i += len;
  }
  return 1;
fail:
  if (bad) *bad = i;
  return 0;
}

char *lc_utf8_sanitize(const char *str, size_t n, size_t *out_len) {
  /* Worst case: every byte becomes the 3-byte U+FFFD. */
  if (n > (SIZE_MAX - 1) / 3) return NULL;
  char *o = lc_malloc(n * 3 + 1);
  if (!o) return NULL;
  size_t w = 0, i = 0;
  while (i < n) {
    size_t bad;
    if (lc_utf8_valid(str + i, n - i, &bad)) bad = n - i;
    size_t keep = 0; /* copy the valid run, NULs excepted */
    while (keep < bad && str[i + keep]) keep++;
    memcpy(o + w, str + i, keep);
    w += keep;
    i += keep;
    if (i < n) { /* one invalid byte (or a NUL) */
      memcpy(o + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i++;
    }
  }
  o[w] = '\0';
  if (out_len) *out_len = w;
  return o;
}
