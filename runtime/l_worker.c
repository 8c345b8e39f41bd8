/* l_worker.c: luact.worker: id, count, barrier, sum, max. */
#include <lauxlib.h>

#include "l_luact.h"
#include "workers.h"

static int l_barrier(lua_State *L) {
  lc_worker_barrier();
  return 0;
}

/* sum(name, x) / max(name, x): process-wide reductions; every worker must
 * call with the same name; all get the combined value. Blocks the thread. */
static int l_sum(lua_State *L) {
  lua_pushnumber(L, lc_worker_reduce(luaL_checkstring(L, 1), luaL_checknumber(L, 2), 0));
  return 1;
}

static int l_max(lua_State *L) {
  lua_pushnumber(L, lc_worker_reduce(luaL_checkstring(L, 1), luaL_checknumber(L, 2), 1));
  return 1;
}

static const luaL_Reg worker_funcs[] = {
    {"barrier", l_barrier}, {"sum", l_sum}, {"max", l_max}, {NULL, NULL}};

int lc_open_worker(lua_State *L) {
  luaL_newlib(L, worker_funcs);
  lua_pushinteger(L, lc_worker_id());
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, lc_worker_count());
  lua_setfield(L, -2, "count");
  return 1;
}
