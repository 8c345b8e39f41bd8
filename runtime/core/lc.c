/* lc.c: allocation wrappers with failure injection (C and Lua), the Lua
 * state constructor, checked number conversions, clocks, random numbers. */
#include "lc.h"

#include <lauxlib.h>
#include <lua.h>
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

void lc_alloc_fail_after(long n) { atomic_store(&fail_after, n); }
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

/* ---- the Lua allocator ---- */

static _Atomic long lua_fail_after; /* as fail_after, for Lua's allocations */
/* The request that failed last, so that Lua's retry of it fails too. */
static _Thread_local struct { void *ptr; size_t osize, nsize; int set; } last;

void lc_lua_alloc_fail_after(long n) {
  last.set = 0; /* a failure Lua did not retry must not hit a later call */
  atomic_store(&lua_fail_after, n);
}

/* lua_Alloc of every luact state (lc_lua_newstate); called by Lua for every
 * allocation. Only a growing request can be made to fail: the manual says
 * Lua assumes a shrinking one never does, and nsize == 0 always frees. */
void *lc_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (!ptr || nsize > osize) {
    /* Lua answers a failure with an emergency collection and asks again
     * for the same block: that retry fails too, or the injected failure
     * would never be seen. */
    if (last.set) {
      last.set = 0;
      if (last.ptr == ptr && last.osize == osize && last.nsize == nsize) return NULL;
    }
    long n = atomic_load(&lua_fail_after);
    if (n > 0 && atomic_fetch_sub(&lua_fail_after, 1) == 1) {
      last.ptr = ptr;
      last.osize = osize;
      last.nsize = nsize;
      last.set = 1;
      return NULL;
    }
  }
  return realloc(ptr, nsize);
}

/* An error outside every protected call: a bug in luact, never a script's
 * doing. Log it and stop before Lua's state is used any further. */
static int lua_panic(lua_State *L) {
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  fprintf(stderr, "luact: unprotected Lua error (a bug): %s\n",
          msg ? msg : "(error object is not a string)");
  fflush(stderr);
  abort();
  return 0;
}

struct lua_State *lc_lua_newstate(void) {
  lua_State *L = lua_newstate(lc_lua_alloc, NULL);
  if (L) lua_atpanic(L, lua_panic);
  return L;
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

long lc_lua_checklong(struct lua_State *L, double v, long lo, long hi, const char *what) {
  long out = 0;
  if (lc_dbl_to_long(v, lo, hi, &out)) {
    char msg[256]; /* lua_pushfstring has no %ld */
    snprintf(msg, sizeof msg, "%s must be a number from %ld to %ld", what, lo, hi);
    luaL_error(L, "%s", msg);
  }
  return out;
}

size_t lc_lua_checksize(struct lua_State *L, double v, size_t lo, size_t hi, const char *what) {
  size_t out = 0;
  if (lc_dbl_to_size(v, hi, &out) || out < lo) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s must be a number from %zu to %zu", what, lo, hi);
    luaL_error(L, "%s", msg);
  }
  return out;
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
