/* l_schema.c: luact.schema: compile a JSON schema once, validate values
 * against it with messages a model can act on. */
#include <lauxlib.h>
#include <string.h>

#include "conv.h"
#include "l_luact.h"
#include "lc.h"
#include "schema.h"

#define SCHEMA_MT "luact.Schema"
static char schema_mt_key;

struct schema_box {
  struct lc_schema *s;
};

static int schema_gc(lua_State *L) {
  struct schema_box *b = luaL_checkudata(L, 1, SCHEMA_MT);
  lc_schema_free(b->s);
  b->s = NULL;
  return 0;
}

/* compile(schema_table) -> Schema | nil, message, "schema" */
static int l_compile(lua_State *L) {
  luaL_checkany(L, 1);
  struct schema_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->s = NULL;
  luaL_setmetatable(L, SCHEMA_MT);
  cJSON *j = NULL;
  char err[512];
  if (lc_conv_to_json(L, 1, &j, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushfstring(L, "schema is not JSON: %s", err);
    lua_pushliteral(L, "schema");
    return 3;
  }
  int rc = lc_schema_compile(j, &b->s, err, sizeof err);
  cJSON_Delete(j);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushliteral(L, "schema");
    return 3;
  }
  return 1;
}

/* luaL_checkudata without its lookup of the metatable by name (a string
 * interned and compared on every call: a per-call cost of every tool
 * call): the metatable is also kept under a pointer key. A mismatch goes
 * to luaL_checkudata for its usual error. */
static void *check_ud(lua_State *L, int idx, const void *key, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_getmetatable(L, idx)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same) return p;
  }
  return luaL_checkudata(L, idx, tname);
}

/* Schema:validate(value) -> true | nil, message (one line per error),
 * "invalid" */
static int l_validate(lua_State *L) {
  struct schema_box *b = check_ud(L, 1, &schema_mt_key, SCHEMA_MT);
  luaL_argcheck(L, b->s != NULL, 1, "schema is closed");
  luaL_checkany(L, 2);
  cJSON *j = NULL;
  char err[512];
  if (lc_conv_to_json(L, 2, &j, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushfstring(L, "value is not JSON: %s", err);
    lua_pushliteral(L, "invalid");
    return 3;
  }
  struct lc_schema_errors errs;
  memset(&errs, 0, sizeof errs);
  int rc = lc_schema_validate(b->s, j, &errs);
  cJSON_Delete(j);
  if (rc == 0) {
    lc_schema_errors_free(&errs);
    lua_pushboolean(L, 1);
    return 1;
  }
  char *text = rc == LC_EINVAL ? lc_schema_errors_format(&errs) : NULL;
  lc_schema_errors_free(&errs);
  if (!text) return luaL_error(L, "out of memory");
  lua_pushnil(L);
  lua_pushstring(L, text);
  lc_free(text);
  lua_pushliteral(L, "invalid");
  return 3;
}

static const luaL_Reg schema_methods[] = {{"validate", l_validate}, {NULL, NULL}};
static const luaL_Reg schema_funcs[] = {{"compile", l_compile}, {NULL, NULL}};

int lc_open_schema(lua_State *L) {
  if (luaL_newmetatable(L, SCHEMA_MT)) {
    lua_pushcfunction(L, schema_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, schema_gc);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, schema_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &schema_mt_key);
  luaL_newlib(L, schema_funcs);
  return 1;
}
