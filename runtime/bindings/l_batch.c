/* l_batch.c: checks and pushers luact.llm.embed and luact.llm.rerank
 * share (l_batch.h). */
#include "l_batch.h"

#include <lauxlib.h>
#include <string.h>

#include "l_luact.h"
#include "lc.h"
#include "utf8.h"

char *lc_l_batch_text(lua_State *L, int idx, const char *who, const char *what, size_t max,
                      const char *hint, size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING) luaL_error(L, "%s: %s must be a string", who, what);
  size_t n, bad;
  const char *s = lua_tolstring(L, idx, &n);
  if (n == 0) luaL_error(L, "%s: %s is empty", who, what);
  if (n > max)
    luaL_error(L, "%s: %s is %d bytes, over max_input_bytes (%d)%s", who, what, (int)n, (int)max,
               hint);
  if (memchr(s, 0, n) || !lc_utf8_valid(s, n, &bad))
    luaL_error(L, "%s: %s is not UTF-8 text", who, what);
  char *c = lc_strndup(s, n);
  if (!c) luaL_error(L, "out of memory");
  *len = n;
  return c;
}

lua_Integer lc_l_batch_int(lua_State *L, int idx, const char *who, const char *field,
                           lua_Integer lo, lua_Integer hi, lua_Integer dflt) {
  lua_Integer v = dflt;
  if (lua_getfield(L, idx, field) != LUA_TNIL) {
    v = luaL_checkinteger(L, -1);
    if (hi && (v < lo || v > hi))
      luaL_error(L, "%s: '%s' must be %d..%d", who, field, (int)lo, (int)hi);
    if (!hi && v < lo) luaL_error(L, "%s: '%s' must be >= %d", who, field, (int)lo);
  }
  lua_pop(L, 1);
  return v;
}

int lc_l_batch_error(lua_State *L, enum lc_llm_err err, const char *message, const char *type,
                     int http_status, int attempts) {
  lua_pushnil(L);
  lua_pushstring(L, message ? message : lc_llm_err_name(err));
  lua_pushstring(L, lc_llm_err_name(err));
  lua_createtable(L, 0, 3);
  lc_l_set_int(L, "http_status", http_status);
  lc_l_set_int(L, "attempts", attempts);
  lc_l_set_str(L, "type", type);
  return 4;
}
