/* eval_main.c: `luact eval`: the command's process around the Lua half
 * (runtime/lua/eval_cli.lua). Lua plans the run from the arguments (which
 * subcommand, which journal); C opens that journal (record for a new run,
 * replay for --replay: every effect answered from the stored run, no
 * connection opened), runs luact.eval.cli_run as the root task on a
 * scheduler, and turns the result and the journal's verdict into the exit
 * code: 0 all passed, 100 a case failed, 1 error, 2 bad configuration. */
#include "eval_main.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "effect.h"
#include "l_effect.h"
#include "l_luact.h"
#include "l_engine.h"
#include "l_state.h"
#include "sched.h"

/* Prints "luact eval: <msg>" with control characters other than newline
 * and tab shown as '?': a message can quote a journal's recorded text or
 * a case id, and an escape sequence must not reach the terminal. */
static void print_error(const char *msg) {
  fputs("luact eval: ", stderr);
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
    fputc((*p < 32 && *p != '\n' && *p != '\t') || *p == 127 ? '?' : *p, stderr);
  fputc('\n', stderr);
}

/* [-0, +1, e] luact.eval.<name> */
static void push_eval_fn(lua_State *L, const char *name) {
  lua_getglobal(L, "luact");
  lua_getfield(L, -1, "eval");
  lua_getfield(L, -1, name);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* The plan's field as a string, or NULL (the plan table stays on the
 * stack, so the string stays alive). */
static const char *plan_str(lua_State *L, int plan, const char *k) {
  lua_getfield(L, plan, k);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);
  return s;
}

static int run_plan(lua_State *L, int plan) {
  const char *mode = plan_str(L, plan, "journal_mode");
  const char *jpath = plan_str(L, plan, "journal");
  const char *script = plan_str(L, plan, "script");
  enum lc_journal_mode jm = !mode                     ? LC_JOURNAL_OFF
                            : !strcmp(mode, "record") ? LC_JOURNAL_RECORD
                            : !strcmp(mode, "replay") ? LC_JOURNAL_REPLAY
                                                      : LC_JOURNAL_OFF;
  struct lc_journal *jr = NULL;
  char jerr[1024];
  if (lc_journal_open(jm, jpath, script ? script : "eval", &jr, jerr, sizeof jerr)) {
    print_error(jerr);
    return 1;
  }
  /* A run's journal is its record: every line synced is too slow for
   * thousands of cases and buys nothing (a lost line is re-run). */
  lc_journal_set_sync(jr, LC_JOURNAL_SYNC_NONE);
  struct lc_sched *s;
  if (lc_sched_new(L, &s)) {
    fprintf(stderr, "luact eval: cannot create the scheduler\n");
    lua_close(L);
    lc_journal_free(jr);
    return 1;
  }
  /* After the scheduler: attaching registers the replay's idle hook on it
   * (replayed model calls complete in their recorded order when every
   * task waits). */
  if (jm != LC_JOURNAL_OFF) lc_l_journal_attach(L, jr);
  push_eval_fn(L, "cli_run");
  lua_pushvalue(L, plan);
  struct lc_task *t;
  int rc;
  if (lc_sched_spawn(s, L, 1, NULL, &t)) {
    fprintf(stderr, "luact eval: out of memory\n");
    rc = 1;
  } else if (lc_sched_run(s, t)) {
    print_error(lc_sched_error(s));
    rc = 1;
  } else if (lc_task_status(t) != LUA_OK) {
    const char *msg = lua_tostring(lc_task_thread(t), -1);
    print_error(msg ? msg : "(error object is not a string)");
    rc = 1;
  } else {
    lua_State *co = lc_task_thread(t);
    rc = lua_isinteger(co, 1) ? (int)(lua_tointeger(co, 1) & 0xff) : 1;
  }
  lc_sched_free(s);
  lua_settop(L, 0);
  if (lc_journal_failed(jr) != LC_JOURNAL_OK) {
    print_error(lc_journal_error(jr));
    if (rc != 2) rc = 1;
  }
  /* The state goes before the journal (closing may cancel effects); the
   * caller closes it, so the journal is freed after. */
  lua_close(L);
  lc_journal_free(jr);
  return rc;
}

int lc_eval_main(int argc, char **argv) {
  lua_State *L = lc_lua_newstate(); /* logs and aborts on a panic */
  if (!L) {
    fprintf(stderr, "luact eval: cannot create a Lua state\n");
    return 1;
  }
  lc_lua_setup(L);
  struct lc_run_opts ro = {.quiet = 1};
  lc_l_set_run_opts(L, &ro);
  push_eval_fn(L, "cli_plan");
  lua_createtable(L, argc, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  if (lc_lua_pcall(L, 1, 1) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    print_error(m ? m : "error");
    lua_close(L);
    return 1;
  }
  int plan = lua_gettop(L);
  if (!lua_istable(L, plan)) {
    int rc = lua_isinteger(L, plan) ? (int)(lua_tointeger(L, plan) & 0xff) : 1;
    lua_close(L);
    return rc;
  }
  return run_plan(L, plan);
}
