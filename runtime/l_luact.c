/* l_luact.c: assembles the luact module from its submodules. */
#include "l_luact.h"

#include <lauxlib.h>
#include <lualib.h>

#include "lc.h"

static int l_now(lua_State *L) {
  lua_pushnumber(L, lc_now_ms() / 1000.0);
  return 1;
}

int luaopen_luact(lua_State *L) {
  lc_open_task(L); /* the module table starts with sleep/spawn/wait/kill */
  lua_pushliteral(L, LUACT_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushcfunction(L, l_now);
  lua_setfield(L, -2, "now");
  lc_open_json(L);
  lua_setfield(L, -2, "json");
  lc_open_llm(L);
  lua_setfield(L, -2, "llm");
  return 1;
}

void lc_lua_setup(lua_State *L) {
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luact);
  lua_setfield(L, -2, "luact");
  lua_pop(L, 1);
  luaL_requiref(L, "luact", luaopen_luact, 1);
  lua_pop(L, 1);
}
