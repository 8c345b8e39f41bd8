/* check_sched.c: tasks, sleep, spawn/wait/kill, leaks, the exit contract. */
#include <check.h>
#include <string.h>

#include <lauxlib.h>

#include "l_luact.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "http.h"
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


START_TEST(a_task_made_ready_in_a_pass_runs_in_that_pass) {
  /* The child ends in a pass (after one sleep) and wakes its parent, which
   * waits on it; just before it ends it arms a timer that is due at once.
   * The parent runs in the same pass, before the loop polls and fires the
   * timer: before, each such hand-over (every tool call's luact.timeout)
   * took a pass of its own and an extra poll (probe saw 0 ticks). */
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  ticks = 0;
  ticks_at_probe = -1;
  lua_register(t.L, "tick", l_tick);
  lua_register(t.L, "arm", l_arm);
  char out[64], err[1024];
  int rc = lc_test_lua_run(&t,
      "local h = luact.spawn(function() luact.sleep(0) arm() return 7 end)\n"
      "local ok, v = luact.wait(h)\n"
      "tick()\n"
      "luact.sleep(0) -- the loop polls: the probe fires if it has not\n"
      "return tostring(ok) .. v",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "true7");
  ck_assert_int_eq(ticks_at_probe, 1);
  lc_test_lua_close(&t);
}
END_TEST

START_TEST(a_plain_yield_still_waits_for_the_next_pass) {
  /* coroutine.yield at task level asks for the next pass: the loop polls
   * (the due timer fires) before the task goes on, even though the pass
   * now runs the tasks it makes ready. */
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  ticks = 0;
  ticks_at_probe = -1;
  lua_register(t.L, "tick", l_tick);
  lua_register(t.L, "arm", l_arm);
  char out[64], err[1024];
  int rc = lc_test_lua_run(&t,
      "local h = luact.spawn(function() arm() coroutine.yield() tick() return 1 end)\n"
      "local ok = luact.wait(h)\n"
      "return tostring(ok)",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "true");
  ck_assert_int_eq(ticks_at_probe, 0);
  ck_assert_int_eq(ticks, 1);
  lc_test_lua_close(&t);
}
END_TEST


/* ---- kills and handles that reach a running task (issue 12, item 8) ----
 * Each of these closed or freed a coroutine that was on the C stack: a
 * crash or an ASan report on the old scheduler. The waiting loops below
 * count loop passes (luact.sleep(0) ends on the next pass), never time. */

START_TEST(collected_handle_leaves_its_task_running) {
  /* Only the child collects: its handle goes while it runs (the old
   * scheduler closed the running thread: SEGV). */
  const char *out = run_ok(
      "local done = false\n"
      "local function fire() luact.spawn(function()\n"
      "  collectgarbage(); collectgarbage()\n"
      "  luact.sleep(0)\n"
      "  done = true\n"
      "end) end\n"
      "fire()\n"
      "for i = 1, 100 do if done then break end luact.sleep(0) end\n"
      "return tostring(done)");
  ck_assert_str_eq(out, "true");
  /* The parent collects too, before the child starts and while it waits
   * (the old scheduler killed it). */
  out = run_ok(
      "local done = false\n"
      "local function fire() luact.spawn(function()\n"
      "  collectgarbage(); collectgarbage()\n"
      "  luact.sleep(0)\n"
      "  done = true\n"
      "end) end\n"
      "fire()\n"
      "for i = 1, 100 do if done then break end collectgarbage(); luact.sleep(0) end\n"
      "return tostring(done)");
  ck_assert_str_eq(out, "true");
}
END_TEST

START_TEST(a_task_kills_itself) {
  const char *out = run_ok(
      "local closed, after, never = false\n"
      "local h\n"
      "h = luact.spawn(function()\n"
      "  local g <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "  luact.sleep(0)\n"
      "  assert(luact.kill(h, 'myself'))\n"
      "  after = true -- runs on to its next wait, and ends there\n"
      "  luact.sleep(3600)\n"
      "  never = true\n"
      "end)\n"
      "for i = 1, 100 do if closed then break end luact.sleep(0) end\n"
      "local ok, why = luact.wait(h)\n"
      "return tostring(after) .. '|' .. tostring(never) .. '|' .. tostring(closed) .. '|' .. why");
  ck_assert_str_eq(out, "true|nil|true|already waited or killed");
}
END_TEST

START_TEST(a_task_kills_its_parent) {
  /* The parent waits on the child; the child kills the parent (whose
   * kill kills the child first) while the root waits on the parent. */
  const char *out = run_ok(
      "local log = {}\n"
      "local ph\n"
      "ph = luact.spawn(function()\n"
      "  local g <close> = setmetatable({}, {__close = function() log[#log+1] = 'parent closed' end})\n"
      "  local c = luact.spawn(function()\n"
      "    local g2 <close> = setmetatable({}, {__close = function() log[#log+1] = 'child closed' end})\n"
      "    luact.sleep(0)\n"
      "    luact.kill(ph, 'from child')\n"
      "    log[#log+1] = 'child on'\n"
      "    luact.sleep(3600)\n"
      "  end)\n"
      "  luact.wait(c)\n"
      "  log[#log+1] = 'parent never'\n"
      "end)\n"
      "local ok, why = luact.wait(ph)\n"
      "for i = 1, 100 do if #log == 3 then break end luact.sleep(0) end\n"
      "collectgarbage()\n"
      "return tostring(ok) .. '|' .. why .. '|' .. table.concat(log, ',')");
  ck_assert_str_eq(out, "nil|already waited or killed|parent closed,child on,child closed");
}
END_TEST

START_TEST(a_task_kills_the_ancestor_that_started_it) {
  /* luact.timeout starts its work inside the caller's own resume: the work
   * kills the caller while both are on the C stack. */
  const char *out = run_ok(
      "local log = {}\n"
      "local ph\n"
      "ph = luact.spawn(function()\n"
      "  local ok, e = pcall(luact.timeout, 5, function()\n"
      "    luact.kill(ph, 'by work')\n"
      "    log[#log+1] = 'work on'\n"
      "    luact.sleep(3600)\n"
      "  end)\n"
      "  log[#log+1] = 'caught ' .. tostring(e)\n"
      "  luact.sleep(3600)\n"
      "  log[#log+1] = 'parent never'\n"
      "end)\n"
      "for i = 1, 100 do if #log == 2 then break end luact.sleep(0) end\n"
      "luact.sleep(0)\n"
      "return table.concat(log, ',')");
  ck_assert_str_eq(out, "work on,caught by work");
}
END_TEST

START_TEST(killing_a_handle_its_parent_waits_on) {
  const char *out = run_ok(
      "local h = luact.spawn(function() luact.sleep(3600) end)\n"
      "luact.spawn(function() luact.kill(h, 'by sibling') end)\n"
      "local ok, why = luact.wait(h)\n"
      "return tostring(ok) .. '|' .. why");
  ck_assert_str_eq(out, "nil|already waited or killed");
}
END_TEST

START_TEST(group_kill_from_a_member) {
  /* "The first one done cancels the rest", from inside the winner. */
  const char *out = run_ok(
      "local g = luact.group()\n"
      "local closed, winner = 0\n"
      "for i = 1, 3 do\n"
      "  g:spawn(function()\n"
      "    local c <close> = setmetatable({}, {__close = function() closed = closed + 1 end})\n"
      "    luact.sleep(i == 2 and 0 or 3600)\n"
      "    winner = i\n"
      "    g:kill('lost')\n"
      "    return 'won'\n"
      "  end)\n"
      "end\n"
      "local r = g:next()\n"
      "for i = 1, 100 do if closed == 3 then break end luact.sleep(0) end\n"
      "return tostring(r) .. '|' .. winner .. '|' .. closed .. '|' .. g:pending()");
  ck_assert_str_eq(out, "nil|2|3|0");
}
END_TEST

START_TEST(failed_select_leaves_no_link) {
  /* A bad item found on the first pass, then one found on a later pass
   * (a sibling killed it meanwhile): each time the other handles stayed
   * linked to the select's collected state. */
  const char *out = run_ok(
      "local a = luact.spawn(function() luact.sleep(0) return 1 end)\n"
      "local ok, e = pcall(luact.select, {a, 'x'})\n"
      "collectgarbage(); collectgarbage()\n"
      "local ok2, v = luact.wait(a)\n"
      "local b = luact.spawn(function() luact.sleep(0) luact.sleep(0) return 2 end)\n"
      "local c = luact.spawn(function() luact.sleep(3600) end)\n"
      "luact.spawn(function() luact.kill(c) end)\n"
      "local ok3, e3 = pcall(luact.select, {b, c})\n"
      "collectgarbage(); collectgarbage()\n"
      "local ok4, w = luact.wait(b)\n"
      "return tostring(ok) .. '|' .. e:match('item 2 is not a task handle') .. '|' .. v ..\n"
      "  '|' .. tostring(ok3) .. '|' .. e3:match('item 2 was already waited or killed') .. '|' .. w");
  ck_assert_str_eq(out, "false|item 2 is not a task handle|1|false|item 2 was already waited or killed|2");
}
END_TEST

START_TEST(spawn_with_many_arguments) {
  /* A new coroutine has room for about 40 values. */
  const char *out = run_ok(
      "local t = {} for i = 1, 200 do t[i] = i end\n"
      "local h = luact.spawn(function(...) return select('#', ...) + select(200, ...) end, table.unpack(t))\n"
      "local ok, n = luact.wait(h)\n"
      "return tostring(n)");
  ck_assert_str_eq(out, "400");
}
END_TEST

/* ---- schedulers on a loop they do not own (the daemon's workers) ---- */

/* Two Lua states, each with its own scheduler on one shared loop, driven
 * by lc_sched_step: the second state's task sleeps and ends while the
 * first state's task still waits (on an hour: no race with the clock),
 * each keeps its own globals, and freeing one scheduler leaves the loop
 * and the other alone. */
START_TEST(two_states_share_one_loop) {
  lc_http_global_init();
  long live0 = lc_alloc_live();
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  lua_State *L[2];
  struct lc_sched *s[2];
  struct lc_task *t[2];
  static const char *const code[2] = {
      "who = 'a' luact.sleep(3600) return who",
      "who = 'b' for i = 1, 3 do luact.sleep(0.01) end B_DONE = true return who"};
  for (int i = 0; i < 2; i++) {
    L[i] = lc_lua_newstate();
    ck_assert_ptr_nonnull(L[i]);
    lc_lua_setup(L[i]);
    ck_assert_int_eq(lc_sched_new_on(L[i], loop, &s[i]), 0);
    ck_assert_ptr_eq(lc_sched_loop(s[i]), loop);
    ck_assert_int_eq(luaL_loadstring(L[i], code[i]), LUA_OK);
    ck_assert_int_eq(lc_sched_spawn(s[i], L[i], 0, NULL, &t[i]), 0);
  }
  while (lc_task_state(t[1]) != LC_TASK_DONE) {
    int busy = 0;
    for (int i = 0; i < 2; i++)
      if (lc_task_state(t[i]) != LC_TASK_DONE) busy |= lc_sched_step(s[i]);
    if (lc_task_state(t[1]) == LC_TASK_DONE) break; /* a's timer is an hour away */
    long pending = lc_loop_run_once(loop, busy ? 0 : -1);
    ck_assert_msg(pending > 0 || lc_sched_ready(s[0]) || lc_sched_ready(s[1]),
                  "nothing pending and nothing ready");
  }
  /* b's three sleeps ended on the loop a's hour-long sleep holds. */
  ck_assert_int_eq(lc_task_state(t[0]), LC_TASK_WAITING);
  ck_assert_int_eq(lc_task_status(t[1]), LUA_OK);
  ck_assert_str_eq(lua_tostring(lc_task_thread(t[1]), 1), "b");
  /* Globals are per state: a sees its own who and no B_DONE. */
  lua_getglobal(L[0], "who");
  lua_getglobal(L[0], "B_DONE");
  ck_assert_str_eq(lua_tostring(L[0], -2), "a");
  ck_assert(lua_isnil(L[0], -1));
  lua_pop(L[0], 2);
  lua_getglobal(L[1], "B_DONE");
  ck_assert(lua_toboolean(L[1], -1));
  lua_pop(L[1], 1);
  for (int i = 0; i < 2; i++) {
    lc_task_release(t[i]);
    lc_sched_free(s[i]);
    ck_assert_int_eq(lc_loop_pending(loop), 0);
    lua_close(L[i]);
  }
  lc_loop_free(loop); /* still there after both schedulers: they borrowed it */
  ck_assert_int_eq(lc_alloc_live(), live0);
}
END_TEST

/* lc_sched_on_ready: the hook runs when the ready queue goes from empty
 * to not empty (a spawn, a timer's wake), once per such change, and never
 * while the scheduler only waits: a caller driving many schedulers steps
 * only those the hook named. */
static int readied;
static void count_ready(void *ud) {
  (void)ud;
  readied++;
}

START_TEST(on_ready_names_a_scheduler_with_work) {
  lc_http_global_init();
  long live0 = lc_alloc_live();
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  lua_State *L = lc_lua_newstate();
  ck_assert_ptr_nonnull(L);
  lc_lua_setup(L);
  struct lc_sched *s;
  ck_assert_int_eq(lc_sched_new_on(L, loop, &s), 0);
  readied = 0;
  lc_sched_on_ready(s, count_ready, NULL);
  /* Two spawns: one change from empty. */
  struct lc_task *t[2];
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(luaL_loadstring(L, "luact.sleep(0.01) luact.sleep(0.01)"), LUA_OK);
    ck_assert_int_eq(lc_sched_spawn(s, L, 0, NULL, &t[i]), 0);
  }
  ck_assert_int_eq(readied, 1);
  /* Both run to their first sleep: nothing is ready, the hook is quiet. */
  ck_assert_int_eq(lc_sched_step(s), 0);
  ck_assert_int_eq(readied, 1);
  /* Each wake that finds the queue empty names it again. */
  int steps = 0;
  while (lc_task_state(t[0]) != LC_TASK_DONE || lc_task_state(t[1]) != LC_TASK_DONE) {
    int before = readied;
    lc_loop_run_once(loop, -1);
    if (readied == before) continue; /* nothing woke: no step needed */
    ck_assert_int_eq(readied, before + 1);
    lc_sched_step(s);
    steps++;
  }
  ck_assert_int_ge(steps, 2);
  ck_assert_int_le(steps, 4); /* 4 sleeps; two may end in one poll */
  lc_sched_on_ready(s, NULL, NULL);
  for (int i = 0; i < 2; i++) lc_task_release(t[i]);
  lc_sched_free(s);
  lua_close(L);
  lc_loop_free(loop);
  ck_assert_int_eq(lc_alloc_live(), live0);
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
  tcase_add_test(tc, a_task_made_ready_in_a_pass_runs_in_that_pass);
  tcase_add_test(tc, a_plain_yield_still_waits_for_the_next_pass);
  tcase_add_test(tc, collected_handle_leaves_its_task_running);
  tcase_add_test(tc, a_task_kills_itself);
  tcase_add_test(tc, a_task_kills_its_parent);
  tcase_add_test(tc, a_task_kills_the_ancestor_that_started_it);
  tcase_add_test(tc, killing_a_handle_its_parent_waits_on);
  tcase_add_test(tc, group_kill_from_a_member);
  tcase_add_test(tc, failed_select_leaves_no_link);
  tcase_add_test(tc, spawn_with_many_arguments);
  tcase_add_test(tc, two_states_share_one_loop);
  tcase_add_test(tc, on_ready_names_a_scheduler_with_work);
  suite_add_tcase(s, tc);
  return s;
}
