/* l_eval.c: the C half of luact.eval: POSIX extended regular expressions
 * (the `regex` assertion; Lua patterns are not what eval files expect) and
 * SHA-256 (prompt versions). The rest of luact eval is Lua
 * (runtime/lua/eval*.lua). */
#include <lauxlib.h>
#include <regex.h>
#include <string.h>

#include "l_luact.h"
#include "secrets.h"
#include "sha256.h"

/* regex(pattern, subject [, {icase=}]) -> start, end | nil; raises on a
 * bad pattern (the eval file's mistake). REG_STARTEND: the subject may
 * hold NULs (model output) and is matched whole. */
static int l_regex(lua_State *L) {
  const char *pat = luaL_checkstring(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int icase = 0;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "icase");
    icase = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  regex_t re;
  int rc = regcomp(&re, pat, REG_EXTENDED | (icase ? REG_ICASE : 0));
  if (rc) {
    char msg[256];
    regerror(rc, &re, msg, sizeof msg);
    regfree(&re); /* POSIX leaves this undefined after a failure; glibc allows it */
    return luaL_error(L, "luact.eval.regex: bad pattern '%s': %s", pat, msg);
  }
  regmatch_t m[1];
  m[0].rm_so = 0;
  m[0].rm_eo = (regoff_t)n;
  rc = regexec(&re, s, 1, m, REG_STARTEND);
  regfree(&re); /* before any push: a push may raise */
  if (rc) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)m[0].rm_so + 1);
  lua_pushinteger(L, (lua_Integer)m[0].rm_eo);
  return 2;
}

/* sha256(text) -> lower-case hex */
static int l_sha256(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char hex[65];
  lc_sha256_hex(s, n, hex);
  lua_pushstring(L, hex);
  return 1;
}

/* scrub(text [, "json"]) -> text without a known secret (secrets.h): the
 * reports and the terminal table hold model and tool output, which may
 * echo a key. The copy lives in a luaL_Buffer, so a raise leaks nothing. */
static int l_scrub(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int json = lua_isstring(L, 2) && !strcmp(lua_tostring(L, 2), "json");
  if (!lc_secrets_any()) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  luaL_pushresultsize(&b, lc_secrets_scrub(p, n, json ? LC_SCRUB_JSON : LC_SCRUB_TEXT));
  return 1;
}

static const luaL_Reg eval_funcs[] = {
    {"regex", l_regex}, {"sha256", l_sha256}, {"scrub", l_scrub}, {NULL, NULL}};

int lc_open_eval(lua_State *L) {
  luaL_newlib(L, eval_funcs);
  return 1;
}
