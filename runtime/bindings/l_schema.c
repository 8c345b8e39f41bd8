/* l_schema.c: luact.schema: compile a JSON schema once, validate values
 * against it with messages a model can act on. */
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "conv.h"
#include "jsonw.h"
#include "l_state.h"
#include "l_luact.h"
#include "lc.h"
#include "schema.h"
#include "utf8.h"

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

/* Would lc_conv_to_json turn the scalar at idx into a JSON value of one of
 * types (0 = any), with nothing else to check? The same tests as
 * conv.c's to_json: a string without NUL bytes and valid UTF-8, a finite
 * number. Anything else (tables, null, userdata) is left to the full
 * path. */
static int scalar_ok(lua_State *L, int idx, unsigned types) {
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      return !types || (types & LC_SCHEMA_T_BOOL);
    case LUA_TNUMBER: {
      if (lua_isinteger(L, idx)) /* any integer is integral as a double */
        return !types || (types & (LC_SCHEMA_T_NUM | LC_SCHEMA_T_INT));
      double d = lua_tonumber(L, idx);
      if (!isfinite(d)) return 0;
      return !types || (types & LC_SCHEMA_T_NUM) ||
             ((types & LC_SCHEMA_T_INT) && d == floor(d));
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (memchr(s, 0, len) || !lc_utf8_valid(s, len, NULL)) return 0;
      return !types || (types & LC_SCHEMA_T_STR);
    }
    default:
      return 0;
  }
}

/* 1 when the value at idx is certainly valid against s, checked where it
 * is (no cJSON copy: every tool call's arguments pass here); 0 when only
 * the full path can tell. Only says 1 where conv + lc_schema_validate
 * would accept: a plain table (no metatable: an array mark would make it
 * an array) of string keys, each valid UTF-8 text, whose values are
 * scalars of their property's type, with every required key present. */
static int flat_valid(lua_State *L, int idx, const struct lc_schema *s) {
  if (!lc_schema_flat(s) || lua_type(L, idx) != LUA_TTABLE) return 0;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_checkstack(L, 3)) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* key value */
    size_t kl;
    unsigned types;
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING || /* no lua_tolstring on a number key */
        !(k = lua_tolstring(L, -2, &kl)) || memchr(k, 0, kl) ||
        !lc_utf8_valid(k, kl, NULL) || !lc_schema_flat_key(s, k, kl, &types) ||
        !scalar_ok(L, -1, types)) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  const char *r;
  for (size_t i = 0; (r = lc_schema_flat_required(s, i)); i++) {
    int absent = lua_getfield(L, idx, r) == LUA_TNIL; /* no metatable: raw */
    lua_pop(L, 1);
    if (absent) return 0;
  }
  return 1;
}

/* [-1, +1, m] Under lua_pcall: the string at the light userdata. */
static int push_text(lua_State *L) {
  lua_pushstring(L, lua_touserdata(L, 1));
  return 1;
}

/* The full path: the value copied to cJSON, checked by schema.c. */
static int validate_full(lua_State *L, struct schema_box *b) {
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
  /* Pushing the text allocates and may raise: text is ours until it is
   * on the stack, so the push runs protected. */
  lua_pushnil(L);
  lua_pushcfunction(L, push_text);
  lua_pushlightuserdata(L, text);
  int st = lua_pcall(L, 1, 1, 0);
  lc_free(text);
  if (st != LUA_OK) return lua_error(L); /* its error, out of memory */
  lua_pushliteral(L, "invalid");
  return 3;
}

void *lc_l_schema_box(lua_State *L, int idx) { return luaL_testudata(L, idx, SCHEMA_MT); }

int lc_l_schema_valid(lua_State *L, void *box, int vidx) {
  struct schema_box *b = box;
  if (!b || !b->s) return 0;
  if (flat_valid(L, vidx, b->s)) return 1;
  cJSON *j = NULL;
  char err[512];
  if (lc_conv_to_json(L, vidx, &j, err, sizeof err)) return 0;
  struct lc_schema_errors errs;
  memset(&errs, 0, sizeof errs);
  int rc = lc_schema_validate(b->s, j, &errs);
  cJSON_Delete(j);
  lc_schema_errors_free(&errs);
  return rc == 0;
}

/* Keys of a flat table written by lc_l_schema_valid_text (more: the
 * general path). */
#define FLAT_TEXT_KEYS 16

struct fkey {
  const char *k;
  size_t kl;
  int vi; /* the value's stack index */
};

/* As conv.c's tkey_cmp: bytewise, a prefix first. */
static int fkey_less(const struct fkey *x, const struct fkey *y) {
  int c = memcmp(x->k, y->k, x->kl < y->kl ? x->kl : y->kl);
  return c ? c < 0 : x->kl < y->kl;
}

int lc_l_schema_valid_text(lua_State *L, void *box, int vidx, struct lc_buf *out) {
  struct schema_box *b = box;
  if (!b || !b->s || !lc_schema_flat(b->s) || lua_type(L, vidx) != LUA_TTABLE) return 0;
  if (lua_getmetatable(L, vidx)) {
    lua_pop(L, 1);
    return 0;
  }
  vidx = lua_absindex(L, vidx);
  if (!lua_checkstack(L, 2 * FLAT_TEXT_KEYS + 4)) return 0;
  int base = lua_gettop(L);
  struct fkey keys[FLAT_TEXT_KEYS];
  size_t n = 0;
  /* flat_valid's walk; each key and value stays on the stack (anchored)
   * and a copy of the key goes on to lua_next */
  lua_pushnil(L);
  while (lua_next(L, vidx)) { /* ... key value */
    size_t kl;
    unsigned types;
    const char *k;
    if (n == FLAT_TEXT_KEYS || lua_type(L, -2) != LUA_TSTRING ||
        !(k = lua_tolstring(L, -2, &kl)) || memchr(k, 0, kl) || !lc_utf8_valid(k, kl, NULL) ||
        !lc_schema_flat_key(b->s, k, kl, &types) || !scalar_ok(L, -1, types)) {
      lua_settop(L, base);
      return 0;
    }
    keys[n].k = k;
    keys[n].kl = kl;
    keys[n].vi = lua_gettop(L);
    n++;
    lua_pushvalue(L, -2);
  }
  const char *r;
  for (size_t i = 0; (r = lc_schema_flat_required(b->s, i)); i++) {
    int absent = lua_getfield(L, vidx, r) == LUA_TNIL; /* no metatable: raw */
    lua_pop(L, 1);
    if (absent) {
      lua_settop(L, base);
      return 0;
    }
  }
  if (n == 0) { /* an empty table's shape is conv's to tell */
    lua_settop(L, base);
    return 0;
  }
  for (size_t i = 1; i < n; i++) { /* a few keys: insertion sort */
    struct fkey x = keys[i];
    size_t j = i;
    for (; j > 0 && fkey_less(&x, &keys[j - 1]); j--) keys[j] = keys[j - 1];
    keys[j] = x;
  }
  /* conv.c's to_text for such a table, member of an object (depth 1) */
  struct lc_jsonw w;
  lc_jsonw_reopen(&w, out, 1, 0);
  lc_jsonw_obj(&w);
  for (size_t i = 0; i < n; i++) {
    int vi = keys[i].vi;
    lc_jsonw_key(&w, keys[i].k);
    switch (lua_type(L, vi)) {
      case LUA_TBOOLEAN:
        lc_jsonw_bool(&w, lua_toboolean(L, vi));
        break;
      case LUA_TNUMBER:
        lc_jsonw_num(&w, lua_isinteger(L, vi) ? (double)lua_tointeger(L, vi) : lua_tonumber(L, vi));
        break;
      default: { /* a string (scalar_ok) */
        size_t len;
        const char *v = lua_tolstring(L, vi, &len);
        lc_jsonw_str(&w, v, len);
      }
    }
  }
  lc_jsonw_obj_end(&w);
  lua_settop(L, base);
  return w.err ? -1 : 1;
}

/* Schema:validate(value) -> true | nil, message (one line per error),
 * "invalid" */
static int l_validate(lua_State *L) {
  struct schema_box *b = lc_lua_checkud_up(L, 1, 1, &schema_mt_key, SCHEMA_MT);
  luaL_argcheck(L, b->s != NULL, 1, "schema is closed");
  luaL_checkany(L, 2);
  if (flat_valid(L, 2, b->s)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return validate_full(L, b);
}

/* For tests: Schema:_validate_full(value), validate without the flat
 * check, and Schema:_flat_valid(value) -> whether the flat check alone
 * accepts value. validate must answer as _validate_full on every value. */
static int l_validate_full(lua_State *L) {
  struct schema_box *b = lc_lua_checkud(L, 1, &schema_mt_key, SCHEMA_MT);
  luaL_argcheck(L, b->s != NULL, 1, "schema is closed");
  luaL_checkany(L, 2);
  return validate_full(L, b);
}

static int l_flat_valid(lua_State *L) {
  struct schema_box *b = lc_lua_checkud(L, 1, &schema_mt_key, SCHEMA_MT);
  luaL_argcheck(L, b->s != NULL, 1, "schema is closed");
  luaL_checkany(L, 2);
  lua_pushboolean(L, flat_valid(L, 2, b->s));
  return 1;
}

static const luaL_Reg schema_methods[] = {{"validate", l_validate},
                                          {"_validate_full", l_validate_full},
                                          {"_flat_valid", l_flat_valid},
                                          {NULL, NULL}};
static const luaL_Reg schema_funcs[] = {{"compile", l_compile}, {NULL, NULL}};

int lc_open_schema(lua_State *L) {
  if (luaL_newmetatable(L, SCHEMA_MT)) {
    lua_pushcfunction(L, schema_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, schema_gc);
    lua_setfield(L, -2, "__close");
    luaL_newlibtable(L, schema_methods);
    lua_pushvalue(L, -2); /* upvalue 1: lc_lua_checkud_up */
    luaL_setfuncs(L, schema_methods, 1);
    lua_setfield(L, -2, "__index");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &schema_mt_key);
  luaL_newlib(L, schema_funcs);
  return 1;
}
