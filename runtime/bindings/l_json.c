/* l_json.c: luact.json: encode / decode / null / array, backed by cJSON
 * through conv.c. */
#include <lauxlib.h>
#include <string.h>

#include "buf.h"
#include "conv.h"
#include "l_luact.h"
#include "lc.h"
#include "utf8.h"

/* encode(value [, {pretty=true}]) -> string | nil, message, "json" */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  int pretty = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  /* The tree and its text are held by a box while Lua calls may raise. */
  struct lc_conv_box *box = lc_conv_box_push(L);
  char err[256];
  int rc = lc_conv_to_json(L, 1, &box->tree, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "not enough memory");
  if (rc) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.encode: %s", err);
    lua_pushliteral(L, "json");
    return 3;
  }
  box->text = pretty ? cJSON_Print(box->tree) : cJSON_PrintUnformatted(box->tree);
  if (!box->text) return luaL_error(L, "not enough memory");
  lua_pushstring(L, box->text);
  lc_conv_box_clear(box);
  return 1;
}

/* decode(text) -> value | nil, message, "json" */
static int l_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char err[256];
  struct lc_conv_box *box = lc_conv_box_push(L); /* before the tree */
  box->tree = lc_json_parse(s, n, err, sizeof err);
  if (!box->tree) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.decode: %s", err);
    lua_pushliteral(L, "json");
    return 3;
  }
  lc_conv_push_json(L, box->tree); /* may raise: the box frees the tree */
  lc_conv_box_clear(box);
  return 1;
}

/* A scratch buffer per state for _encodable: its text is thrown away. */
#define SCRATCH_MT "luact.JsonScratch"
static char scratch_key;

static int scratch_gc(lua_State *L) {
  lc_buf_free(luaL_checkudata(L, 1, SCRATCH_MT));
  return 0;
}

/* [-0, +0, m] The state's scratch buffer (Lua-owned: a raise leaks nothing). */
static struct lc_buf *scratch(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key);
  struct lc_buf *b = lua_touserdata(L, -1);
  lua_pop(L, 1); /* the registry keeps it */
  if (b) return b;
  b = lua_newuserdatauv(L, sizeof *b, 0);
  lc_buf_init(b, 0);
  if (luaL_newmetatable(L, SCRATCH_MT)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &scratch_key);
  return b;
}

/* _encodable(value) -> true | nil, message: would encode succeed (same
 * rules, same message)? Builds no string: a Lua string is only checked
 * (no NUL, valid UTF-8); anything else is written to a scratch buffer. */
static int l_encodable(lua_State *L) {
  luaL_checkany(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    if (!memchr(s, 0, n) && lc_utf8_valid(s, n, NULL)) {
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  struct lc_buf *b = scratch(L);
  lc_buf_reset(b);
  char err[256];
  int rc = lc_conv_to_text(L, 1, b, err, sizeof err);
  if (b->cap > 65536) lc_buf_free(b); /* keep a small one only */
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.encode: %s", err);
    return 2;
  }
  lua_pushboolean(L, 1);
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
    {"encode", l_encode}, {"decode", l_decode}, {"array", l_array},
    {"_encodable", l_encodable}, /* taken away by tool.lua */
    {NULL, NULL}};

int lc_open_json(lua_State *L) {
  luaL_newlib(L, json_funcs);
  lc_conv_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}
