/* util_lua.c: run Lua chunks as luact tasks in tests. */
#include "util_lua.h"

#include <check.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "l_luact.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"

void lc_test_lua_open(struct lc_test_lua *t) {
  lc_http_global_init();
  t->live_before = lc_alloc_live();
  t->L = lc_lua_newstate();
  ck_assert_ptr_nonnull(t->L);
  lc_lua_setup(t->L);
  ck_assert_int_eq(lc_sched_new(t->L, &t->s), 0);
}

int lc_test_lua_run(struct lc_test_lua *t, const char *code, char *out, size_t outlen,
                    char *err, size_t errlen) {
  lua_State *L = t->L;
  if (out && outlen) out[0] = '\0';
  if (err && errlen) err[0] = '\0';
  if (luaL_loadbufferx(L, code, strlen(code), "=test", "t") != LUA_OK) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  struct lc_task *task;
  ck_assert_int_eq(lc_sched_spawn(t->s, L, 0, NULL, &task), 0);
  int rc = lc_sched_run(t->s, task);
  lua_State *co = lc_task_thread(task);
  int failed = 0;
  if (rc) {
    snprintf(err, errlen, "%s", lc_sched_error(t->s));
    failed = 1;
  } else if (lc_task_status(task) != LUA_OK) {
    const char *m = lua_tostring(co, -1);
    snprintf(err, errlen, "%s", m ? m : "(non-string error)");
    failed = 1;
  } else if (out && lua_gettop(co) >= 1 && lua_type(co, 1) == LUA_TSTRING) {
    snprintf(out, outlen, "%s", lua_tostring(co, 1));
  }
  lc_task_release(task);
  return failed;
}

void lc_test_lua_close(struct lc_test_lua *t) {
  /* Let finished handles be collected so their timers and transfers stop. */
  lua_gc(t->L, LUA_GCCOLLECT);
  ck_assert_int_eq(lc_sched_live_tasks(t->s), 0);
  ck_assert_int_eq(lc_loop_transfers(lc_sched_loop(t->s)), 0);
  ck_assert_int_eq(lc_loop_timers(lc_sched_loop(t->s)), 0);
  lc_sched_free(t->s);
  lua_close(t->L);
  ck_assert_int_eq(lc_alloc_live(), t->live_before);
}

int lc_test_lua_run_once(const char *base, const char *prelude, const char *code, char *out,
                         size_t outlen, char *err, size_t errlen) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  if (base) {
    lua_pushstring(t.L, base);
    lua_setglobal(t.L, "BASE");
  }
  if (!prelude) prelude = "";
  size_t n = strlen(prelude) + strlen(code) + 1;
  char *all = malloc(n);
  ck_assert_ptr_nonnull(all);
  snprintf(all, n, "%s%s", prelude, code);
  int rc = lc_test_lua_run(&t, all, out, outlen, err, errlen);
  free(all);
  lc_test_lua_close(&t); /* no task, timer or transfer may be left */
  return rc;
}
