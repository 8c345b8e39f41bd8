/* l_files.c: Lua binding of the files tool: luact.files.root() ->
 * luact.FilesRoot with read/list/close. */
#include <lauxlib.h>

#include "l_opts.h"
#include "l_luact.h"
#include <lua.h>
#include <string.h>

#include "conv.h"
#include "files.h"
#include "l_files.h"

#define ROOT_MT "luact.FilesRoot"

static char box_key; /* registry key of the scratch box metatable */

/* Scratch results live in a box userdata while Lua may raise, so a memory
 * error while pushing them never leaks (lauxlib.c newbox). */
struct box {
  char *content; /* lc_malloc'd */
  cJSON *list;
};

static void box_clear(struct box *b) {
  lc_free(b->content);
  cJSON_Delete(b->list);
  b->content = NULL;
  b->list = NULL;
}

static int l_box_gc(lua_State *L) {
  struct box *b = lua_touserdata(L, 1);
  if (b) box_clear(b);
  return 0;
}

/* [-0, +1, m] */
static struct box *newbox(lua_State *L) {
  struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->content = NULL;
  b->list = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &box_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &box_key);
  }
  lua_setmetatable(L, -2);
  return b;
}

/* [-0, +3, m] nil, message, code */
static int push_fail(lua_State *L, const char *msg, int rc) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, lc_files_errcode(rc));
  return 3;
}

static struct lc_files_root *checkroot(lua_State *L) {
  struct lc_files_root *r = luaL_checkudata(L, 1, ROOT_MT);
  if (r->fd < 0) luaL_error(L, "attempt to use a closed luact.FilesRoot");
  return r;
}

/* The relative path argument; model-supplied paths with NUL bytes are an
 * operational failure (returned), not a script bug. */
static const char *checkrel(lua_State *L, int idx, int *has_nul) {
  size_t n;
  const char *s = luaL_optlstring(L, idx, ".", &n);
  *has_nul = memchr(s, 0, n) != NULL;
  return s;
}

static size_t opt_size(lua_State *L, int idx, const char *name) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t v = 0;
  if (lua_getfield(L, idx, name) != LUA_TNIL) {
    int ok;
    lua_Integer i = lua_tointegerx(L, -1, &ok);
    if (!ok || i <= 0)
      luaL_error(L, "option %s must be a positive integer", name);
    v = (size_t)i;
  }
  lua_pop(L, 1);
  return v;
}

/* root:read(rel [, {max_bytes=}]) -> string, or nil, msg, code */
static int l_read(lua_State *L) {
  struct lc_files_root *r = checkroot(L);
  int nul;
  const char *rel = checkrel(L, 2, &nul);
  if (lua_istable(L, 3)) lc_l_check_opts(L, 3, "root:read");
  size_t max = opt_size(L, 3, "max_bytes");
  if (nul) return push_fail(L, "path contains a NUL byte", LC_EINVAL);
  lua_settop(L, 3);
  struct box *b = newbox(L); /* 4 */
  char err[512];
  size_t len;
  int rc = lc_files_read(r, rel, max, &b->content, &len, err, sizeof err);
  if (rc) return push_fail(L, err, rc);
  lua_pushlstring(L, b->content, len);
  box_clear(b);
  return 1;
}

/* root:list([rel [, {max_entries=}]]) -> {{name=, type=, size=}...}, or
 * nil, msg, code */
static int l_list(lua_State *L) {
  struct lc_files_root *r = checkroot(L);
  int nul;
  const char *rel = checkrel(L, 2, &nul);
  if (lua_istable(L, 3)) lc_l_check_opts(L, 3, "root:list");
  size_t max = opt_size(L, 3, "max_entries");
  if (nul) return push_fail(L, "path contains a NUL byte", LC_EINVAL);
  lua_settop(L, 3);
  struct box *b = newbox(L); /* 4 */
  char err[512];
  int rc = lc_files_list(r, rel, max, &b->list, err, sizeof err);
  if (rc) return push_fail(L, err, rc);
  lc_conv_push_json(L, b->list);
  box_clear(b);
  return 1;
}

/* close(), __close and __gc: idempotent; safe on a root whose open failed
 * (fd is -1 from the start). */
static int l_close(lua_State *L) {
  lc_files_close_root(luaL_checkudata(L, 1, ROOT_MT));
  return 0;
}

static int l_tostring(lua_State *L) {
  struct lc_files_root *r = luaL_checkudata(L, 1, ROOT_MT);
  lua_pushstring(L, r->fd < 0 ? "luact.FilesRoot (closed)"
                              : "luact.FilesRoot");
  return 1;
}

/* files.root(path) -> luact.FilesRoot, or nil, msg, code */
static int l_root(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  /* Userdata first, closed, then the fd (liolib.c newprefile). */
  struct lc_files_root *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->fd = -1;
  luaL_setmetatable(L, ROOT_MT);
  char err[512];
  int rc = lc_files_open_root(r, path, err, sizeof err);
  if (rc) return push_fail(L, err, rc);
  return 1;
}

static const luaL_Reg root_methods[] = {
    {"read", l_read}, {"list", l_list}, {"close", l_close}, {NULL, NULL}};

static const luaL_Reg root_meta[] = {{"__gc", l_close},
                                     {"__close", l_close},
                                     {"__tostring", l_tostring},
                                     {"__index", NULL},
                                     {NULL, NULL}};

static const luaL_Reg files_funcs[] = {{"root", l_root}, {NULL, NULL}};

int lc_open_files(lua_State *L) {
  lc_l_class(L, ROOT_MT, root_meta, root_methods);
  luaL_newlib(L, files_funcs);
  return 1;
}
