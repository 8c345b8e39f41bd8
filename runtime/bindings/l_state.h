/* l_state.h: a luact Lua state: the allocator every state uses (with
 * failure injection for out-of-memory tests), the panic handler, and
 * checked conversions of script numbers for bindings (lc_dbl_to_long and
 * friends in lc.h do the arithmetic). */
#ifndef LC_L_STATE_H
#define LC_L_STATE_H

#include <stddef.h>

struct lua_State;

/* The lua_Alloc of every luact state: plain realloc/free, plus a test hook
 * that fails the Nth growing allocation from now (0 = never), as
 * lc_alloc_fail_after does for lc_malloc. */
void *lc_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
long lc_lua_alloc_fail_after(long n); /* returns as lc_alloc_fail_after */
/* A Lua state on lc_lua_alloc whose panic handler (an error outside any
 * protected call: a bug) logs and aborts. NULL when out of memory. */
struct lua_State *lc_lua_newstate(void);

/* [-0, +0, v] lc_dbl_to_long / lc_dbl_to_size for a binding: the converted value, or raises
 * "<what> must be a number from <lo> to <hi>". */
long lc_lua_checklong(struct lua_State *L, double v, long lo, long hi, const char *what);
size_t lc_lua_checksize(struct lua_State *L, double v, size_t lo, size_t hi, const char *what);

/* luaL_checkudata without its lookup of the metatable by name (a string
 * interned and compared on every call: a per-call cost of every tool
 * call): the metatable is also kept in the registry under the pointer
 * key. A mismatch goes to luaL_checkudata for its usual error. */
void *lc_lua_checkud(struct lua_State *L, int idx, const void *key, const char *tname);
/* lc_lua_checkud for a C function (or its continuation) that holds the
 * type's metatable as upvalue 'up': compared with it, no registry lookup
 * (a method called per tool call did that ~5 times). Without that upvalue
 * it is lc_lua_checkud. */
void *lc_lua_checkud_up(struct lua_State *L, int idx, int up, const void *key,
                        const char *tname);

#endif
