/* check_control.c: parallel, map, race, timeout, select: results, failure
 * propagation, cancellation, and that nothing is left behind. Overlap is
 * shown by completion order, never by measuring time. */
#include <check.h>
#include <lauxlib.h>
#include <string.h>

#include "lc.h"
#include "loop.h"
#include "sched.h"
#include "util_lua.h"
#include "util_mock.h"

static char out[2048], err[2048];

static int run(const char *code) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t); /* asserts no task, timer or transfer is left */
  return rc;
}

START_TEST(parallel_keeps_keys_and_overlaps) {
  ck_assert_msg(run(
      "local log = {}\n"
      "local function after(name)\n" /* yields until name is logged: order by sync, not by timers */
      "  for _ = 1, 1000 do if table.concat(log):find(name, 1, true) then return end luact.sleep(0) end\n"
      "  error('waited for ' .. name .. ' in vain')\n"
      "end\n"
      "local r = luact.parallel{\n"
      "  a = function() after('b'); log[#log+1] = 'a'; return 1 end,\n"
      "  b = function() luact.sleep(0); log[#log+1] = 'b'; return 2, 3 end,\n"
      "  c = function() log[#log+1] = 'c'; return 'x' end }\n"
      "return r.a .. '|' .. r.b[1] .. r.b[2] .. '|' .. r.c .. '|' .. table.concat(log)") == 0, "%s", err);
  /* b finishes before a although a started first: they ran concurrently. */
  ck_assert_str_eq(out, "1|23|x|cba");
}
END_TEST

START_TEST(parallel_failure_cancels_siblings_and_names_branch) {
  ck_assert_msg(run(
      "local closed = 0\n"
      "local function slow()\n"
      "  local g <close> = setmetatable({}, {__close = function() closed = closed + 1 end})\n"
      "  luact.sleep(3600)\n"
      "end\n"
      "local ok, e = pcall(luact.parallel, { fetch = slow, parse = function() error('no parse') end, other = slow })\n"
      "assert(not ok)\n"
      "return e .. '|closed=' .. closed") == 0, "%s", err);
  ck_assert_msg(strstr(out, "branch parse failed") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "no parse") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "|closed=2") != NULL, "%s", out);
}
END_TEST

START_TEST(map_bounds_concurrency_and_keeps_order) {
  ck_assert_msg(run(
      "local inflight, peak = 0, 0\n"
      "local r = luact.map({5,4,3,2,1,0}, function(x, i)\n"
      "  inflight = inflight + 1; peak = math.max(peak, inflight)\n"
      "  luact.sleep(x / 1000)\n"
      "  inflight = inflight - 1\n"
      "  return x * 10 + i\n"
      "end, {concurrency = 2})\n"
      "return table.concat(r, ',') .. '|peak=' .. peak") == 0, "%s", err);
  ck_assert_str_eq(out, "51,42,33,24,15,6|peak=2");
}
END_TEST

START_TEST(map_failure_reports_item) {
  ck_assert_msg(run(
      "local ok, e = pcall(luact.map, {1,2,3}, function(x) if x == 2 then error('two') end luact.sleep(1) end)\n"
      "return e") == 0, "%s", err);
  ck_assert_msg(strstr(out, "item 2 failed") != NULL, "%s", out);
}
END_TEST

START_TEST(race_first_wins_losers_cancelled) {
  ck_assert_msg(run(
      "local cancelled = false\n"
      "local v, key = luact.race{\n"
      "  slow = function() local g <close> = setmetatable({}, {__close=function() cancelled = true end}) luact.sleep(3600) end,\n"
      "  fast = function() luact.sleep(0) return 'won' end }\n"
      "return v .. key .. tostring(cancelled)") == 0, "%s", err);
  ck_assert_str_eq(out, "wonfasttrue");
}
END_TEST

START_TEST(race_all_fail) {
  ck_assert_int_ne(run("luact.race{ function() error('x1') end, function() error('x2') end }"), 0);
  ck_assert_msg(strstr(err, "every branch failed") != NULL, "%s", err);
}
END_TEST

START_TEST(timeout_cancels_work) {
  ck_assert_msg(run(
      "local v, msg, code = luact.timeout(0.01, function() luact.sleep(3600) return 'never' end)\n"
      "local a, b = luact.timeout(5, function(x) return x, 'ok' end, 7)\n"
      "return tostring(v) .. '|' .. msg .. '|' .. code .. '|' .. a .. b") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|timed out after 0.01 s|timeout|7ok");
}
END_TEST

START_TEST(timeout_passes_results_and_errors) {
  ck_assert_msg(run(
      "local n = select('#', luact.timeout(1, function() return nil, 2, nil end))\n"
      "local e = { code = 7 }\n"
      "local ok, got = pcall(luact.timeout, 1, function() error(e) end)\n"
      "local ok2, msg = pcall(luact.timeout, 1, function() luact.sleep(0) error('late boom') end)\n"
      "local a, b = luact.timeout(1, function(x, y) luact.sleep(0) return y, x end, 'p', 'q')\n"
      "return n .. '|' .. tostring(not ok and got == e) .. '|' .. tostring(not ok2) .. '|' ..\n"
      "  tostring(msg:match('late boom') ~= nil) .. '|' .. a .. b") == 0, "%s", err);
  ck_assert_str_eq(out, "3|true|true|true|qp");
  ck_assert_int_ne(run("luact.timeout(-1, function() end)"), 0);
  ck_assert_msg(strstr(err, "luact.timeout: seconds must be >= 0"), "%s", err);
  ck_assert_int_ne(run("luact.timeout(0 / 0, function() end)"), 0);
  ck_assert_int_ne(run("luact.timeout(1, {})"), 0);
  ck_assert_msg(strstr(err, "luact.timeout: expected a function"), "%s", err);
  ck_assert_int_ne(run("coroutine.wrap(function() luact.timeout(1, print) end)()"), 0);
  ck_assert_msg(strstr(err, "must run inside a luact task"), "%s", err);
}
END_TEST

START_TEST(nested_timeouts) {
  ck_assert_msg(run(
      /* The inner one expires; the outer goes on. */
      "local a = luact.timeout(5, function()\n"
      "  local v, m, c = luact.timeout(0.01, function() luact.sleep(3600) end)\n"
      "  return c .. '+outer'\n"
      "end)\n"
      /* The outer one expires: the inner work is killed with it. */
      "local closed = false\n"
      "local b, bm, bc = luact.timeout(0.01, function()\n"
      "  return luact.timeout(3600, function()\n"
      "    local g <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "    luact.sleep(3600)\n"
      "  end)\n"
      "end)\n"
      /* Deeper than the scheduler starts tasks inside one another. */
      "local function nest(k, wait)\n"
      "  if k == 0 then if wait then luact.sleep(0.001) end return 'bottom' end\n"
      "  return luact.timeout(10, nest, k - 1, wait)\n"
      "end\n"
      "local e = { 'deep' }\n"
      "local function nest_err(k) if k == 0 then error(e) end return luact.timeout(10, nest_err, k - 1) end\n"
      "local ok, got = pcall(nest_err, 40)\n"
      "return table.concat({a, tostring(b), bc, tostring(closed), nest(40), nest(40, true),\n"
      "  tostring(got == e)}, '|')") == 0, "%s", err);
  ck_assert_str_eq(out, "timeout+outer|nil|timeout|true|bottom|bottom|true");
}
END_TEST

/* timers(): how many loop timers are armed now. */
static int l_timers(lua_State *L) {
  lua_pushinteger(L, lc_loop_timers(lc_sched_loop(lc_sched_get(L))));
  return 1;
}

START_TEST(timeout_arms_a_timer_only_when_the_work_waits) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lua_register(t.L, "timers", l_timers);
  ck_assert_msg(lc_test_lua_run(&t,
      "local log = {}\n"
      "local sib = luact.spawn(function() log[#log + 1] = 'sibling' end)\n"
      /* Started at once: it runs before the sibling queued earlier, and no
       * timer exists while it runs or after. */
      "local inside = luact.timeout(60, function() log[#log + 1] = 'work' return timers() end)\n"
      "local after = timers()\n"
      /* Waiting work: one timer (the sleep's fired and is gone). */
      "local waiting = luact.timeout(60, function() luact.sleep(0) return timers() end)\n"
      "assert(luact.wait(sib))\n"
      "return table.concat({inside, after, waiting, timers(), table.concat(log, ',')}, '|')",
      out, sizeof out, err, sizeof err) == 0, "%s", err);
  ck_assert_str_eq(out, "0|0|1|0|work,sibling");
  lc_test_lua_close(&t);
}
END_TEST

START_TEST(timeout_waiter_killed) {
  ck_assert_msg(run(
      "local closed = false\n"
      "local h = luact.spawn(function()\n"
      "  return luact.timeout(60, function()\n"
      "    local g <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "    luact.sleep(3600)\n"
      "  end)\n"
      "end)\n"
      "luact.sleep(0)\n"
      "assert(luact.kill(h))\n"
      "return tostring(closed)") == 0, "%s", err);
  ck_assert_str_eq(out, "true"); /* and no timer or task is left (teardown) */
}
END_TEST

/* The run ends while a task still waits in a timeout (its handle kept
 * alive): shutting down must stop the timer and free every task once. */
START_TEST(shutdown_with_a_pending_timeout) {
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  ck_assert_msg(lc_test_lua_run(&t,
      "KEEP = luact.spawn(function()\n"
      "  return luact.timeout(60, function() luact.timeout(30, luact.sleep, 3600) end)\n"
      "end)\n"
      "luact.sleep(0)\n"
      "return 'left'", out, sizeof out, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(lc_sched_live_tasks(t.s), 3); /* KEEP and the two works */
  ck_assert_int_gt(lc_loop_timers(lc_sched_loop(t.s)), 0);
  long before = t.live_before;
  lc_sched_free(t.s);
  lua_close(t.L);
  ck_assert_int_eq(lc_alloc_live(), before);
}
END_TEST

/* The time runs out while the work has an HTTP transfer in flight, two
 * timeouts deep: the transfer is removed (teardown: none left). */
START_TEST(timeout_cancels_a_transfer_in_flight) {
  struct lc_mock mock;
  ck_assert_int_eq(lc_mock_start(&mock, "[{\"reply\":{\"delay_ms\":60000,\"json\":{}}}]"), 0);
  ck_assert_msg(lc_test_lua_run_once(mock.base_url, NULL,
      "local v, m, code = luact.timeout(0.2, function()\n"
      "  return luact.timeout(60, function() return luact.http.request{url = BASE .. '/slow'} end)\n"
      "end)\n"
      "return tostring(v) .. '|' .. m .. '|' .. code", out, sizeof out, err, sizeof err) == 0,
      "%s", err);
  ck_assert_str_eq(out, "nil|timed out after 0.2 s|timeout");
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/slow"), 1);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

START_TEST(misuse_raises) {
  ck_assert_int_ne(run("luact.parallel{ 1 }"), 0);
  ck_assert_msg(strstr(err, "is not a function") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.map({1}, function() end, {concurrency = 0})"), 0);
  ck_assert_int_ne(run("luact.select({})"), 0);
}
END_TEST

START_TEST(thousands_of_tasks) {
  ck_assert_msg(run(
      "local fns = {}\n"
      "for i = 1, 5000 do fns[i] = function() luact.sleep(0.001) return i end end\n"
      "local r = luact.parallel(fns)\n"
      "local sum = 0 for _, v in ipairs(r) do sum = sum + v end\n"
      "return tostring(sum)") == 0, "%s", err);
  ck_assert_str_eq(out, "12502500");
}
END_TEST


START_TEST(timeout_work_kills_its_caller) {
  /* The work (a child of the task waiting in luact.timeout) kills that
   * task after its first wait: the caller's close releases the work while
   * the work runs. It must run on to its next wait and end there. */
  ck_assert_msg(run(
      "local log = {}\n"
      "local ph\n"
      "ph = luact.spawn(function()\n"
      "  local g <close> = setmetatable({}, {__close = function() log[#log+1] = 'caller closed' end})\n"
      "  luact.timeout(5, function()\n"
      "    local w <close> = setmetatable({}, {__close = function() log[#log+1] = 'work closed' end})\n"
      "    luact.sleep(0)\n"
      "    luact.kill(ph, 'by work')\n"
      "    log[#log+1] = 'work on'\n"
      "    luact.sleep(3600)\n"
      "  end)\n"
      "  log[#log+1] = 'caller never'\n"
      "end)\n"
      "for i = 1, 100 do if #log == 3 then break end luact.sleep(0) end\n"
      "return table.concat(log, ',')") == 0, "%s", err);
  ck_assert_str_eq(out, "caller closed,work on,work closed");
}
END_TEST

Suite *control_suite(void) {
  Suite *s = suite_create("control");
  TCase *tc = tcase_create("flow");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, parallel_keeps_keys_and_overlaps);
  tcase_add_test(tc, parallel_failure_cancels_siblings_and_names_branch);
  tcase_add_test(tc, map_bounds_concurrency_and_keeps_order);
  tcase_add_test(tc, map_failure_reports_item);
  tcase_add_test(tc, race_first_wins_losers_cancelled);
  tcase_add_test(tc, race_all_fail);
  tcase_add_test(tc, timeout_cancels_work);
  tcase_add_test(tc, timeout_passes_results_and_errors);
  tcase_add_test(tc, timeout_work_kills_its_caller);
  tcase_add_test(tc, nested_timeouts);
  tcase_add_test(tc, timeout_arms_a_timer_only_when_the_work_waits);
  tcase_add_test(tc, timeout_waiter_killed);
  tcase_add_test(tc, shutdown_with_a_pending_timeout);
  tcase_add_test(tc, timeout_cancels_a_transfer_in_flight);
  tcase_add_test(tc, misuse_raises);
  tcase_add_test(tc, thousands_of_tasks);
  suite_add_tcase(s, tc);
  return s;
}
