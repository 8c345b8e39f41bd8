/* l_state.c: the Lua allocator with failure injection, the panic
 * handler, and checked number conversions for bindings (l_state.h). */
#include "l_state.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "lc.h"

/* ---- the Lua allocator ---- */

static _Atomic long lua_fail_after; /* as fail_after, for Lua's allocations */
/* The request that failed last, so that Lua's retry of it fails too. */
static _Thread_local struct { void *ptr; size_t osize, nsize; int set; } last;

long lc_lua_alloc_fail_after(long n) {
  last.set = 0; /* a failure Lua did not retry must not hit a later call */
  return atomic_exchange(&lua_fail_after, n);
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

void *lc_lua_checkud_up(lua_State *L, int idx, int up, const void *key, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_getmetatable(L, idx)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(up)); /* none: 0 */
    lua_pop(L, 1);
    if (same) return p;
  }
  return lc_lua_checkud(L, idx, key, tname);
}

void *lc_lua_checkud(lua_State *L, int idx, const void *key, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_getmetatable(L, idx)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same) return p;
  }
  return luaL_checkudata(L, idx, tname);
}
