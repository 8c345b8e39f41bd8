/* l_json.c: luact.json: encode / decode / null / array, backed by cJSON
 * through conv.c. */
#include <lauxlib.h>
#include <string.h>

#include "conv.h"
#include "l_luact.h"

/* encode(value [, {pretty=true}]) -> string | nil, message, "json" */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  int pretty = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  cJSON *j = NULL;
  char err[256];
  if (lc_conv_to_json(L, 1, &j, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.encode: %s", err);
    lua_pushliteral(L, "json");
    return 3;
  }
  char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!s) return luaL_error(L, "out of memory");
  lua_pushstring(L, s);
  cJSON_free(s);
  return 1;
}

/* decode(text) -> value | nil, message, "json" */
static int l_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char err[256];
  cJSON *j = lc_json_parse(s, n, err, sizeof err);
  if (!j) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.decode: %s", err);
    lua_pushliteral(L, "json");
    return 3;
  }
  lc_conv_push_json(L, j);
  cJSON_Delete(j);
  return 1;
}

/* array(t) -> t, marked so that it encodes as [] even when empty. */
static int l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lc_conv_push_array_mt(L);
  lua_setmetatable(L, 1);
  return 1;
}

static const luaL_Reg json_funcs[] = {
    {"encode", l_encode}, {"decode", l_decode}, {"array", l_array}, {NULL, NULL}};

int lc_open_json(lua_State *L) {
  luaL_newlib(L, json_funcs);
  lc_conv_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}
