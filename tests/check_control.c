/* check_control.c: parallel, map, race, timeout, select: results, failure
 * propagation, cancellation, and that nothing is left behind. Overlap is
 * shown by completion order, never by measuring time. */
#include <check.h>
#include <string.h>

#include "util_lua.h"

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
      "local r = luact.parallel{\n"
      "  a = function() luact.sleep(0.03); log[#log+1] = 'a'; return 1 end,\n"
      "  b = function() luact.sleep(0.01); log[#log+1] = 'b'; return 2, 3 end,\n"
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
  tcase_add_test(tc, misuse_raises);
  tcase_add_test(tc, thousands_of_tasks);
  suite_add_tcase(s, tc);
  return s;
}
