/* l_native.c: Lua binding for native functions: luact.native.declare returns
 * a callable "luact.NativeFn" whose arguments are checked against its C
 * signature (ffi_fn.h).
 *
 *   local pow = native.declare{lib = "libm.so.6", symbol = "pow",
 *                              signature = "double(double, double)"}
 *   pow(2, 10)          --> 1024.0
 *   pow:describe()      --> "double pow(double, double)"
 *   pow:args_schema()   --> {type = "array", prefixItems = {...}, ...}
 *   pow:close()         -- or let __gc / <close> do it
 *
 * Errors follow STYLE.md section 3. Misuse raises: bad declare fields, a bad
 * signature, an argument the signature rejects (wrong type, count or range),
 * calling a closed function. Operational failures return nil, message, code:
 * library or symbol not found ("not_found"), a result that cannot be
 * returned such as invalid UTF-8 or NaN ("native_result"), out of memory
 * ("nomem").
 *
 * Values: arguments go through conv.h, except integers beyond +/-2^53, which
 * are passed as exact decimal text (JSON numbers are doubles). Results: a
 * void function returns true (nil would read as failure); integer results
 * are Lua integers (a uint64 above math.maxinteger stays a decimal string);
 * NULL strings are luact.json.null; with buffer[N] parameters the result is
 * {["return"] = r, buffers = {"...", ...}}. */
#include "l_opts.h"
#include "l_native.h"

#include <lauxlib.h>
#include <string.h>

#include "conv.h"
#include "ffi_fn.h"
#include "lc.h"

#define NATIVEFN_MT "luact.NativeFn"
#define JSONBOX_MT "luact.native.jsonbox"

/* Lives inside the userdata; fn == NULL means closed (or never opened). */
struct native_ud {
  struct lc_ffi_fn *fn;
};

/* Holds a cJSON tree while Lua calls that may raise run; closing it (as a
 * to-be-closed slot, or by __gc) deletes the tree. */
struct jsonbox {
  cJSON *j;
};

/* The one close path for __gc, __close and :close(); tolerates repeats and
 * half-built objects. */
static void native_close(struct native_ud *u) {
  if (u->fn) {
    lc_ffi_free(u->fn);
    u->fn = NULL;
  }
}

/* [-0, +0, -] __gc / __close / close(). */
static int l_fn_close(lua_State *L) {
  native_close(luaL_checkudata(L, 1, NATIVEFN_MT));
  return 0;
}

static struct native_ud *check_open(lua_State *L) {
  struct native_ud *u = luaL_checkudata(L, 1, NATIVEFN_MT);
  if (!u->fn) luaL_error(L, "attempt to use a closed native function");
  return u;
}

static int l_box_close(lua_State *L) {
  struct jsonbox *b = luaL_checkudata(L, 1, JSONBOX_MT);
  cJSON_Delete(b->j);
  b->j = NULL;
  return 0;
}

/* [-0, +1, m] Pushes an empty box marked to-be-closed. */
static struct jsonbox *push_box(lua_State *L) {
  struct jsonbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->j = NULL;
  luaL_setmetatable(L, JSONBOX_MT);
  lua_toclose(L, -1);
  return b;
}

/* [-0, +1, m] A returned scalar; integer results given as decimal text (past
 * 2^53) become Lua integers when they fit. */
static void push_ret(lua_State *L, const struct lc_ffi_fn *fn, const cJSON *r) {
  if (cJSON_IsString(r) && lc_ffi_returns_integer(fn)) {
    if (lua_stringtonumber(L, r->valuestring)) {
      if (lua_isinteger(L, -1)) return;
      lua_pop(L, 1); /* a uint64 past math.maxinteger: keep it exact as text */
    }
    lua_pushstring(L, r->valuestring);
    return;
  }
  if (cJSON_IsNumber(r) && !lc_ffi_returns_integer(fn)) {
    lua_pushnumber(L, r->valuedouble); /* pow(2, 10) is 1024.0, not 1024 */
    return;
  }
  if (lc_ffi_returns_void(fn) && !lc_ffi_nbuffers(fn)) {
    lua_pushboolean(L, 1);
    return;
  }
  lc_conv_push_json(L, r);
}

static int fail(lua_State *L, const char *msg, const char *code) {
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

/* [-0, +(1|3), e] fn(...): checks the arguments, calls, converts the result.
 * Raises on misuse; nil, msg, code when the call itself fails. */
static int l_fn_call(lua_State *L) {
  struct native_ud *u = check_open(L);
  int nargs = lua_gettop(L) - 1;
  struct jsonbox *box = push_box(L); /* owns the argument array */
  if (!(box->j = cJSON_CreateArray())) return luaL_error(L, "out of memory");
  char err[512];
  for (int i = 2; i <= nargs + 1; i++) {
    cJSON *item = NULL;
    if (lua_isinteger(L, i)) {
      lua_Integer v = lua_tointeger(L, i);
      if (v >= (1LL << 53) || v <= -(1LL << 53)) {
        /* A double would round it; ffi_fn.h takes exact decimal text. */
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%lld", (long long)v);
        item = cJSON_CreateString(tmp);
      } else {
        item = cJSON_CreateNumber((double)v);
      }
      if (!item) return luaL_error(L, "out of memory");
    } else if (lc_conv_to_json(L, i, &item, err, sizeof err) != 0) {
      /* The box frees the array when the error unwinds. */
      return luaL_error(L, "bad argument #%d to '%s' (%s)", i - 1,
                        lc_ffi_describe(u->fn), err);
    }
    cJSON_AddItemToArray(box->j, item);
  }
  cJSON *res = NULL;
  int rc = lc_ffi_call(u->fn, box->j, &res, err, sizeof err);
  cJSON_Delete(box->j);
  box->j = res; /* the box owns the result while it is pushed */
  if (rc == LC_EINVAL) return luaL_error(L, "%s", err);
  if (rc == LC_ENOMEM) return fail(L, err, "nomem");
  if (rc) return fail(L, err, "native_result");
  if (lc_ffi_nbuffers(u->fn)) {
    lua_createtable(L, 0, 2);
    push_ret(L, u->fn, cJSON_GetObjectItemCaseSensitive(res, "return"));
    lua_setfield(L, -2, "return");
    lc_conv_push_json(L, cJSON_GetObjectItemCaseSensitive(res, "buffers"));
    lua_setfield(L, -2, "buffers");
  } else {
    push_ret(L, u->fn, res);
  }
  return 1; /* the box is closed on return */
}

static int l_fn_describe(lua_State *L) {
  lua_pushstring(L, lc_ffi_describe(check_open(L)->fn));
  return 1;
}

/* [-0, +1, m] fn:args_schema(): the JSON Schema of the argument list (a
 * tuple, buffers excluded), for building tool schemas. */
static int l_fn_args_schema(lua_State *L) {
  struct native_ud *u = check_open(L);
  struct jsonbox *box = push_box(L);
  if (!(box->j = lc_ffi_args_schema(u->fn))) return luaL_error(L, "out of memory");
  lc_conv_push_json(L, box->j);
  return 1; /* the box is closed on return */
}

static int l_fn_tostring(lua_State *L) {
  struct native_ud *u = luaL_checkudata(L, 1, NATIVEFN_MT);
  if (u->fn) lua_pushfstring(L, "native function: %s", lc_ffi_describe(u->fn));
  else lua_pushliteral(L, "native function (closed)");
  return 1;
}

/* Reads a required string field (table form) or positional argument. */
static const char *get_field(lua_State *L, int pos, const char *name) {
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, name); /* stays on the stack: keeps the string alive */
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "declare: field '%s' must be a string (got %s)", name,
                 luaL_typename(L, -1));
  } else {
    luaL_checkstring(L, pos);
    lua_pushvalue(L, pos);
  }
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (memchr(s, 0, len)) luaL_error(L, "declare: '%s' contains a NUL byte", name);
  return s;
}

/* [-0, +(1|3), e] declare{lib=, symbol=, signature=} or
 * declare(lib, symbol, signature). */
static int l_declare(lua_State *L) {
  if (!lua_istable(L, 1) && lua_type(L, 1) != LUA_TSTRING)
    luaL_argerror(L, 1, "expected a table {lib=, symbol=, signature=} or "
                        "lib, symbol, signature");
  if (lua_istable(L, 1)) lc_l_check_opts(L, 1, "luact.native.declare");
  const char *lib = get_field(L, 1, "lib");
  const char *sym = get_field(L, 2, "symbol");
  const char *sig = get_field(L, 3, "signature");
  /* Created closed first, so nothing leaks if setting it up raises. */
  struct native_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->fn = NULL;
  luaL_setmetatable(L, NATIVEFN_MT);
  char err[512];
  int rc = lc_ffi_open(lib, sym, sig, &u->fn, err, sizeof err);
  if (rc == LC_ENOTFOUND) return fail(L, err, "not_found");
  if (rc == LC_ENOMEM) return fail(L, err, "nomem");
  if (rc) return luaL_error(L, "declare: %s", err);
  return 1;
}

static const luaL_Reg nativefn_methods[] = {
    {"close", l_fn_close},
    {"describe", l_fn_describe},
    {"args_schema", l_fn_args_schema},
    {NULL, NULL},
};

static const luaL_Reg nativefn_meta[] = {
    {"__call", l_fn_call},
    {"__gc", l_fn_close},
    {"__close", l_fn_close},
    {"__tostring", l_fn_tostring},
    {NULL, NULL},
};

static const luaL_Reg native_funcs[] = {
    {"declare", l_declare},
    {NULL, NULL},
};

int lc_open_native(lua_State *L) {
  if (luaL_newmetatable(L, NATIVEFN_MT)) {
    luaL_setfuncs(L, nativefn_meta, 0);
    luaL_newlib(L, nativefn_methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "luact.NativeFn");
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, JSONBOX_MT)) {
    lua_pushcfunction(L, l_box_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_box_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, native_funcs);
  return 1;
}
