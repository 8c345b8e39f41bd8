/* lc.c: allocation wrappers with failure injection (C and Lua), the Lua
 * state constructor, checked number conversions, clocks, random numbers. */
#include "lc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Atomic long fail_after;  /* 0 = off; else fail when it reaches 1 */
static _Atomic long live_blocks;

static int should_fail(void) {
  long n = atomic_load(&fail_after);
  if (n <= 0) return 0;
  if (atomic_fetch_sub(&fail_after, 1) == 1) return 1;
  return 0;
}

long lc_alloc_fail_after(long n) { return atomic_exchange(&fail_after, n); }
long lc_alloc_live(void) { return atomic_load(&live_blocks); }

void *lc_malloc(size_t n) {
  if (should_fail()) return NULL;
  void *p = malloc(n ? n : 1);
  if (p) atomic_fetch_add(&live_blocks, 1);
  return p;
}

void *lc_calloc(size_t n, size_t size) {
  if (should_fail()) return NULL;
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p) atomic_fetch_add(&live_blocks, 1);
  return p;
}

void *lc_realloc(void *p, size_t n) {
  if (!p) return lc_malloc(n);
  if (should_fail()) return NULL;
  return realloc(p, n ? n : 1);
}

void lc_free(void *p) {
  if (!p) return;
  atomic_fetch_sub(&live_blocks, 1);
  free(p);
}

/* ---- checked conversions of script numbers ---- */

int lc_dbl_to_long(double v, long lo, long hi, long *out) {
  /* (double)LONG_MAX rounds up to 2^63, which does not fit: the last test
   * keeps the cast defined. NaN fails every comparison. */
  if (!(v >= (double)lo && v <= (double)hi && v < 0x1p63)) return LC_EINVAL;
  long l = (long)v;
  if (l < lo || l > hi) return LC_EINVAL;
  *out = l;
  return 0;
}

int lc_dbl_to_size(double v, size_t hi, size_t *out) {
  if (!(v >= 0 && v <= (double)hi && v < 0x1p64)) return LC_EINVAL;
  size_t z = (size_t)v;
  if (z > hi) return LC_EINVAL;
  *out = z;
  return 0;
}

char *lc_strndup(const char *s, size_t n) {
  char *d = lc_malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *lc_strdup(const char *s) { return s ? lc_strndup(s, strlen(s)) : NULL; }

double lc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double lc_wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t lc_rand64(void) {
  static _Thread_local uint64_t s;
  if (s == 0) {
    if (getrandom(&s, sizeof s, 0) != sizeof s || s == 0)
      s = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull | 1;
  }
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

size_t lc_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  size_t row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t cur = row[j];
      size_t sub = prev + (a[i - 1] != b[j - 1]);
      size_t del = row[j] + 1, ins = row[j - 1] + 1;
      row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      prev = cur;
    }
  }
  return row[lb];
}
