/* check_num_range.c: numbers from scripts that become integers (counts,
 * byte sizes, milliseconds) are range-checked first. A double cast to an
 * integer type it does not fit (1e300, inf, NaN) is undefined: it came
 * out as LONG_MIN on x86, so a limit of 1e300 tokens was a negative one
 * and a timeout of 1e300 s a negative curl timeout. */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "util_lua.h"

static char out[2048], err[2048];

/* Runs code, which returns pcall's message; out holds it. */
static void run(const char *code) {
  int rc = lc_test_lua_run_once(NULL, NULL, code, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
}

#define CFG "model = 'openai:m', base_url = 'http://127.0.0.1:9/v1', retries = 0, "

START_TEST(react_limits_out_of_range) {
  static const char *const vals[] = {"1e300", "math.huge", "0/0", "-1"};
  for (size_t i = 0; i < LC_ARRAY_LEN(vals); i++) {
    char code[512];
    snprintf(code, sizeof code,
             "local ok, e = pcall(luact.react, {" CFG "question = 'q', tools = {},"
             " limits = {steps = %s}})\n"
             "return tostring(ok) .. ' ' .. tostring(e)", vals[i]);
    run(code);
    ck_assert_msg(strstr(out, "false") == out && strstr(out, "limits.steps"), "%s: %s", vals[i], out);
  }
}
END_TEST

START_TEST(pal_limits_and_sandbox_out_of_range) {
  run("local ok, e = pcall(luact.pal, {" CFG "question = 'q', limits = {tokens = 1e300}})\n"
      "return tostring(ok) .. ' ' .. tostring(e)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "limits.tokens must be a number from 0"), "%s", out);
  run("local ok, e = pcall(luact.pal, {" CFG "question = 'q', sandbox = {memory = 1e300}})\n"
      "return tostring(ok) .. ' ' .. tostring(e)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "sandbox.memory must be a number from 1"), "%s", out);
  run("local ok, e = pcall(luact.pal, {" CFG "question = 'q', sandbox = {time = 1e300}})\n"
      "return tostring(ok) .. ' ' .. tostring(e)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "sandbox.time must be a number from 1"), "%s", out);
}
END_TEST

START_TEST(sandbox_run_opts_out_of_range) {
  static const char *const opts[] = {"instr_limit = 1e300", "mem_limit = 0/0", "wall_ms = 1e300",
                                     "output_limit = math.huge"};
  for (size_t i = 0; i < LC_ARRAY_LEN(opts); i++) {
    char code[512];
    snprintf(code, sizeof code,
             "local ok, e = pcall(luact.sandbox.run, 'return 1', {%s})\n"
             "return tostring(ok) .. ' ' .. tostring(e)", opts[i]);
    run(code);
    ck_assert_msg(strstr(out, "false") == out && strstr(out, "sandbox.run: opts."), "%s: %s", opts[i], out);
  }
}
END_TEST

START_TEST(llm_timeouts_and_limits_out_of_range) {
  static const char *const opts[] = {"timeout = 1e300", "connect_timeout = 0/0",
                                     "retry_base = -1", "max_tokens = 1 << 40",
                                     "max_response_bytes = -1"};
  for (size_t i = 0; i < LC_ARRAY_LEN(opts); i++) {
    char code[512];
    snprintf(code, sizeof code,
             "local ok, e = pcall(luact.llm.chat, {" CFG "messages = {{role = 'user', content = 'x'}}, %s})\n"
             "return tostring(ok) .. ' ' .. tostring(e)", opts[i]);
    run(code);
    ck_assert_msg(strstr(out, "false") == out && strstr(out, "must be a number from 0"), "%s: %s", opts[i], out);
  }
  run("local ok, e = pcall(luact.llm.limits, {openai = {rpm = 0/0}})\n"
      "return tostring(ok) .. ' ' .. tostring(e)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "luact.llm.limits"), "%s", out);
}
END_TEST

START_TEST(sleep_and_timeout_bounds) {
  run("local r = {}\n"
      "for _, v in ipairs{1e300, math.huge, 0/0, -1} do\n"
      "  local ok, e = pcall(luact.sleep, v); r[#r+1] = tostring(ok) .. ':' .. tostring(e:match('seconds must be >= 0 and < 1e9') ~= nil)\n"
      "end\n"
      "r[#r+1] = luact.timeout(1e300, function() luact.sleep(0) return 'no timer' end)\n"
      "r[#r+1] = luact.timeout(math.huge, function() return 'forever' end)\n"
      "return table.concat(r, ',')");
  ck_assert_str_eq(out, "false:true,false:true,false:true,false:true,no timer,forever");
}
END_TEST

/* NaN is no count and no timeout: Lua checks of the form 'x <= 0' or
 * 'x < 1' let it through (a tool whose timeout never fires, a map with
 * concurrency NaN that spawned nothing and returned {}). */
START_TEST(lua_options_refuse_nan) {
  run("local r = {}\n"
      "local function refused(f, ...) local ok, e = pcall(f, ...) r[#r+1] = tostring(not ok) end\n"
      "refused(luact.tool, {name = 't', fn = function() end, timeout = 0/0})\n"
      "refused(luact.map, {1, 2}, function(x) return x end, {concurrency = 0/0})\n"
      "refused(luact.tools.code, {sandbox = {time = 0/0}})\n"
      "refused(luact.tools.http, {base_url = 'http://127.0.0.1:9', timeout = 0/0})\n"
      "return table.concat(r, ',')");
  ck_assert_str_eq(out, "true,true,true,true");
}
END_TEST

START_TEST(checked_conversions) {
  long l = 7;
  size_t z = 7;
  ck_assert_int_eq(lc_dbl_to_long(1e300, 0, LONG_MAX, &l), LC_EINVAL);
  ck_assert_int_eq(lc_dbl_to_long(0x1p63, 0, LONG_MAX, &l), LC_EINVAL); /* (double)LONG_MAX */
  ck_assert_int_eq(lc_dbl_to_long(0.0 / 0.0, 0, 10, &l), LC_EINVAL);
  ck_assert_int_eq(lc_dbl_to_long(-1, 0, 10, &l), LC_EINVAL);
  ck_assert_int_eq(l, 7);
  ck_assert_int_eq(lc_dbl_to_long(9.9, 0, 10, &l), 0);
  ck_assert_int_eq(l, 9);
  ck_assert_int_eq(lc_dbl_to_long(-0x1p63, LONG_MIN, 0, &l), 0);
  ck_assert(l == LONG_MIN);
  ck_assert_int_eq(lc_dbl_to_size(0x1p64, SIZE_MAX, &z), LC_EINVAL);
  ck_assert_int_eq(lc_dbl_to_size(-0.5, SIZE_MAX, &z), LC_EINVAL);
  ck_assert_int_eq(lc_dbl_to_size(1.0 / 0.0, SIZE_MAX, &z), LC_EINVAL);
  ck_assert_int_eq(lc_dbl_to_size(4096, SIZE_MAX, &z), 0);
  ck_assert_uint_eq(z, 4096);
}
END_TEST

/* The MCP server's HTTP port and reply status are range-checked before
 * their cast to int: 2^32 (a port) wrapped to 0, a free port, and 2^32 +
 * 200 (a status) to 200; both were taken without a word. */
START_TEST(mcp_http_port_and_status_out_of_range) {
  run("local ok, e = pcall(luact.mcp._http, 1 << 32, 'tttttttttttttttt')\n"
      "if ok and e then e:close() end\n"
      "return tostring(ok) .. ' ' .. tostring(e)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "not a port (0 to 65535)"), "%s", out);
  run("local ok, e = pcall(luact.mcp.serve, 'x', {http = (1 << 32) + 80, token = 't'})\n"
      "return tostring(ok) .. ' ' .. tostring(e)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "'http' must be a port number"), "%s", out);
  run("local srv = assert(luact.mcp._http(0, 'tttttttttttttttt'))\n"
      "local ok, e = pcall(srv.reply, srv, 1, (1 << 32) + 200)\n"
      "local ok2, e2 = pcall(srv.reply, srv, 1, -1)\n"
      "srv:close()\n"
      "return tostring(ok) .. ' ' .. tostring(e) .. ' | ' .. tostring(ok2) .. ' ' .. tostring(e2)");
  ck_assert_msg(strstr(out, "false") == out && strstr(out, "| false") &&
                    strstr(out, "not an HTTP status (100 to 599)"),
                "%s", out);
}
END_TEST

Suite *num_range_suite(void) {
  Suite *s = suite_create("num_range");
  TCase *tc = tcase_create("bindings");
  tcase_add_test(tc, react_limits_out_of_range);
  tcase_add_test(tc, pal_limits_and_sandbox_out_of_range);
  tcase_add_test(tc, sandbox_run_opts_out_of_range);
  tcase_add_test(tc, llm_timeouts_and_limits_out_of_range);
  tcase_add_test(tc, sleep_and_timeout_bounds);
  tcase_add_test(tc, lua_options_refuse_nan);
  tcase_add_test(tc, checked_conversions);
  tcase_add_test(tc, mcp_http_port_and_status_out_of_range);
  suite_add_tcase(s, tc);
  return s;
}
