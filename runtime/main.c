/* main.c: the luact command line. CLI only: parsing, then calls into the
 * runtime. Errors go to stderr; the exit code says how it went. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "l_luact.h"
#include "sched.h"

static const char usage_main[] =
    "usage: luact <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.lua [ARGS...]   run a Lua agent script with the luact module\n"
    "\n"
    "options:\n"
    "  -h, --help      show this help (also: luact <command> --help)\n"
    "  -V, --version   print the version\n"
    "\n"
    "environment:\n"
    "  OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL,\n"
    "  OLLAMA_HOST   provider keys and endpoints (keys are never printed)\n";

static const char usage_run[] =
    "usage: luact run [options] FILE.lua [ARGS...]\n"
    "\n"
    "Runs FILE.lua as a luact task. The script gets ARGS as `arg` (arg[0] is\n"
    "the script) and as `...`; `luact` is preloaded (require \"luact\" also\n"
    "works). Exit code: 0 when the script returns nothing, true or 0; the\n"
    "number it returns; 1 when it raises an error or returns false or\n"
    "nil, message (the message goes to stderr).\n"
    "\n"
    "options:\n"
    "  -h, --help   show this help\n";

/* Decides the exit code from the root task's results (on its stack). */
static int exit_code_from(lua_State *co) {
  int n = lua_gettop(co);
  if (n == 0) return 0;
  int t = lua_type(co, 1);
  if (t == LUA_TNUMBER && lua_isinteger(co, 1)) return (int)(lua_tointeger(co, 1) & 0xff);
  if (t == LUA_TBOOLEAN && lua_toboolean(co, 1)) return 0;
  if ((t == LUA_TBOOLEAN || t == LUA_TNIL) && n >= 2) {
    const char *msg = lua_tostring(co, 2);
    fprintf(stderr, "luact: %s\n", msg ? msg : "script failed");
    return 1;
  }
  if (t == LUA_TBOOLEAN || (t == LUA_TNIL && n == 1)) return t == LUA_TNIL ? 0 : 1;
  return 0;
}

static int cmd_run(int argc, char **argv) {
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage_run, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    fprintf(stderr, "luact run: unknown option '%s' (see luact run --help)\n", argv[i]);
    return 2;
  }
  if (i >= argc) {
    fputs(usage_run, stderr);
    return 2;
  }
  const char *file = argv[i];
  lc_http_global_init();
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "luact: cannot create a Lua state\n");
    return 1;
  }
  lc_lua_setup(L);
  struct lc_sched *s;
  if (lc_sched_new(L, &s)) {
    fprintf(stderr, "luact: cannot create the scheduler\n");
    lua_close(L);
    return 1;
  }
  /* arg table like lua.c: arg[0] = script, arg[1..] = arguments. */
  lua_createtable(L, argc - i - 1, 1);
  for (int k = i; k < argc; k++) {
    lua_pushstring(L, argv[k]);
    lua_rawseti(L, -2, k - i);
  }
  lua_setglobal(L, "arg");
  int rc;
  /* Text only: a binary chunk could crash the VM. */
  if (luaL_loadfilex(L, file, "t") != LUA_OK) {
    fprintf(stderr, "luact: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else {
    for (int k = i + 1; k < argc; k++) lua_pushstring(L, argv[k]);
    struct lc_task *t;
    if (lc_sched_spawn(s, L, argc - i - 1, NULL, &t)) {
      fprintf(stderr, "luact: out of memory\n");
      rc = 1;
    } else if (lc_sched_run(s, t)) {
      fprintf(stderr, "luact: %s\n", lc_sched_error(s));
      rc = 1;
    } else if (lc_task_status(t) != LUA_OK) {
      lua_State *co = lc_task_thread(t);
      const char *msg = lua_tostring(co, -1);
      fprintf(stderr, "luact: %s\n", msg ? msg : "(error object is not a string)");
      rc = 1;
    } else {
      rc = exit_code_from(lc_task_thread(t));
    }
  }
  lc_sched_free(s);
  lua_close(L);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("luact %s\n", LUACT_VERSION);
    return 0;
  }
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  fprintf(stderr, "luact: unknown command '%s' (see luact --help)\n", cmd);
  return 2;
}
