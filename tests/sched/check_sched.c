/* check_sched.c: tasks, sleep, spawn/wait/kill, leaks, the exit contract. */
#include <check.h>
#include <string.h>

#include <lauxlib.h>

#include "loop.h"
#include "sched.h"
#include "util_lua.h"

static const char *run_ok(const char *code) {
  static char out[1024];
  char err[1024];
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "script failed: %s", err);
  lc_test_lua_close(&t);
  return out;
}

static const char *run_err(const char *code) {
  static char err[1024];
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  int rc = lc_test_lua_run(&t, code, NULL, 0, err, sizeof err);
  ck_assert_msg(rc != 0, "script should have failed");
  lc_test_lua_close(&t);
  return err;
}

START_TEST(sleepers_finish_in_deadline_order) {
  /* Spawned in the opposite order of their deadlines: completion order
   * shows they wait concurrently, not one after another. */
  const char *out = run_ok(
      "local order = {}\n"
      "local hs = {}\n"
      "for i, d in ipairs{0.06, 0.04, 0.02, 0.0} do\n"
      "  hs[i] = luact.spawn(function() luact.sleep(d); order[#order+1] = d end)\n"
      "end\n"
      "for _, h in ipairs(hs) do assert(luact.wait(h)) end\n"
      "return table.concat(order, ',')");
  ck_assert_str_eq(out, "0.0,0.02,0.04,0.06");
}
END_TEST

START_TEST(wait_returns_results_and_errors) {
  const char *out = run_ok(
      "local h = luact.spawn(function(a, b) return a + b, 'x' end, 2, 3)\n"
      "local ok, s, x = luact.wait(h)\n"
      "local e = luact.spawn(function() error('bad branch') end)\n"
      "local ok2, msg = luact.wait(e)\n"
      "local again, why = luact.wait(e)\n"
      "return tostring(ok)..s..x..tostring(ok2)..(msg:match('bad branch') or '?')..why");
  ck_assert_str_eq(out, "true5xfalsebad branchalready waited or killed");
}
END_TEST

START_TEST(kill_runs_to_be_closed_and_stops_timers) {
  const char *out = run_ok(
      "local closed = false\n"
      "local h = luact.spawn(function()\n"
      "  local guard <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "  luact.sleep(3600)\n"
      "end)\n"
      "luact.sleep(0)\n"
      "assert(luact.kill(h, 'enough'))\n"
      "return tostring(closed)");
  ck_assert_str_eq(out, "true");
}
END_TEST

START_TEST(plain_coroutines_cannot_wait) {
  const char *err = run_err(
      "local co = coroutine.wrap(function() luact.sleep(0.01) end)\n co()");
  ck_assert_msg(strstr(err, "must run inside a luact task") != NULL, "%s", err);
}
END_TEST

START_TEST(only_the_parent_waits) {
  const char *err = run_err(
      "local h = luact.spawn(function() luact.sleep(0.01) end)\n"
      "local other = luact.spawn(function() return luact.wait(h) end)\n"
      "local ok, e = luact.wait(other)\n"
      "luact.wait(h)\n"
      "error(e)");
  ck_assert_msg(strstr(err, "only the task that spawned it may wait") != NULL, "%s", err);
}
END_TEST

START_TEST(errors_carry_a_traceback) {
  const char *err = run_err("local function f() error('deep') end\n f()");
  ck_assert(strstr(err, "deep") != NULL);
  ck_assert_msg(strstr(err, "stack traceback") != NULL, "%s", err);
}
END_TEST

START_TEST(child_error_does_not_kill_parent) {
  const char *out = run_ok(
      "local hs = {}\n"
      "for i = 1, 50 do hs[i] = luact.spawn(function() if i % 2 == 0 then error('e'..i) end return i end) end\n"
      "local ok, bad = 0, 0\n"
      "for _, h in ipairs(hs) do if luact.wait(h) then ok = ok + 1 else bad = bad + 1 end end\n"
      "return ok .. '/' .. bad");
  ck_assert_str_eq(out, "25/25");
}
END_TEST

/* The probe: a loop timer armed from inside the crowd of ready tasks,
 * recording how many of them had run when the loop got to fire it. */
static int ticks, ticks_at_probe;
static struct lc_timer probe;
static void on_probe(struct lc_loop *l, struct lc_timer *t) {
  (void)l;
  (void)t;
  ticks_at_probe = ticks;
}
static int l_tick(lua_State *L) {
  (void)L;
  ticks++;
  return 0;
}
static int l_arm(lua_State *L) {
  lc_timer_init(&probe, on_probe, NULL);
  if (lc_timer_start(lc_sched_loop(lc_sched_get(L)), &probe, 0) < 0) luaL_error(L, "no memory");
  return 0;
}

START_TEST(a_crowd_of_ready_tasks_does_not_starve_the_loop) {
  /* 200 tasks become ready in one pass; the first arms a timer that is
   * due at once. Run back to back, all 200 would run before the loop got
   * to fire it (with real work in each, that is a second for ten
   * thousand); the pass yields to the loop after a slice of them. */
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  ticks = 0;
  ticks_at_probe = -1;
  lua_register(t.L, "tick", l_tick);
  lua_register(t.L, "arm", l_arm);
  char out[64], err[1024];
  int rc = lc_test_lua_run(&t,
      "local hs = {}\n"
      "for i = 1, 200 do hs[i] = luact.spawn(function()\n"
      "  if i == 1 then arm() end\n"
      "  tick() return i end) end\n"
      "local sum = 0\n"
      "for _, h in ipairs(hs) do local ok, v = luact.wait(h); assert(ok); sum = sum + v end\n"
      "return tostring(sum)",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "20100"); /* every task ran once, all results back */
  ck_assert_int_eq(ticks, 200);
  ck_assert_msg(ticks_at_probe >= 1 && ticks_at_probe < 200,
                "the due timer fired after %d of the 200 tasks", ticks_at_probe);
  lc_test_lua_close(&t);
}
END_TEST

Suite *sched_suite(void) {
  Suite *s = suite_create("sched");
  TCase *tc = tcase_create("tasks");
  tcase_add_test(tc, sleepers_finish_in_deadline_order);
  tcase_add_test(tc, wait_returns_results_and_errors);
  tcase_add_test(tc, kill_runs_to_be_closed_and_stops_timers);
  tcase_add_test(tc, plain_coroutines_cannot_wait);
  tcase_add_test(tc, only_the_parent_waits);
  tcase_add_test(tc, errors_carry_a_traceback);
  tcase_add_test(tc, child_error_does_not_kill_parent);
  tcase_add_test(tc, a_crowd_of_ready_tasks_does_not_starve_the_loop);
  suite_add_tcase(s, tc);
  return s;
}
