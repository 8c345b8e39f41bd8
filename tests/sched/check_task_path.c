/* check_task_path.c: a task's path ("1.2.1": its place in the spawn tree)
 * names its effects in journals, so it must read the same whatever the
 * tree's depth and numbers. It lives in the task's own block now (no
 * second allocation per spawn): built from the parent's, at every depth. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "l_state.h"
#include "lc.h"
#include "sched.h"

static struct lc_task *spawn(struct lc_sched *s, lua_State *L, struct lc_task *parent) {
  struct lc_task *t;
  ck_assert_int_eq(luaL_loadstring(L, "return 1"), LUA_OK);
  ck_assert_int_eq(lc_sched_spawn(s, L, 0, parent, &t), 0);
  return t;
}

START_TEST(paths_at_every_depth) {
  lua_State *L = lc_lua_newstate();
  ck_assert_ptr_nonnull(L);
  struct lc_sched *s;
  ck_assert_int_eq(lc_sched_new(L, &s), 0);
  struct lc_task *roots[12];
  for (int i = 0; i < 12; i++) roots[i] = spawn(s, L, NULL);
  ck_assert_str_eq(lc_task_path(roots[0]), "1");
  ck_assert_str_eq(lc_task_path(roots[11]), "12");
  struct lc_task *a = spawn(s, L, roots[11]);
  struct lc_task *b = spawn(s, L, roots[11]);
  ck_assert_str_eq(lc_task_path(a), "12.1");
  ck_assert_str_eq(lc_task_path(b), "12.2");
  /* A chain 200 deep: each path is its parent's, a dot and 1. */
  char want[1024];
  snprintf(want, sizeof want, "12.2");
  struct lc_task *p = b;
  for (int d = 0; d < 200; d++) {
    p = spawn(s, L, p);
    strcat(want, ".1");
    ck_assert_str_eq(lc_task_path(p), want);
  }
  /* Numbers past one digit, under a deep parent. */
  struct lc_task *c = NULL;
  for (int i = 0; i < 1000; i++) c = spawn(s, L, p);
  strcat(want, ".1000");
  ck_assert_str_eq(lc_task_path(c), want);
  lc_sched_free(s);
  lua_close(L);
}
END_TEST

Suite *task_path_suite(void) {
  Suite *s = suite_create("task_path");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, paths_at_every_depth);
  suite_add_tcase(s, tc);
  return s;
}
