/* check_http_tool.c: luact.http over real HTTP on loopback against
 * lc-mockllm used as a plain HTTP server: methods and JSON both ways,
 * headers both ways, status codes, the Idempotency-Key header, overlap of
 * concurrent requests (seen by the server, not timed), timeouts, cancelled
 * requests, stalls, cut bodies, the size cap, refused URLs and connections.
 *
 * Every run ends with lc_test_lua_close, which asserts that no task, timer
 * or transfer is left and that lc_ allocations balance. */
#include <arpa/inet.h>
#include <check.h>
#include <lua.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[8192], err[8192];

static void start(const char *script) { ck_assert_int_eq(lc_mock_start(&mock, script), 0); }
static void stop(void) { ck_assert_int_eq(lc_mock_stop(&mock), 0); }

/* Runs code with BASE = "http://127.0.0.1:PORT" as a global. */
static int run_base(const char *base, const char *code) {
  return lc_test_lua_run_once(base, NULL, code, out, sizeof out, err, sizeof err);
}

static int run(const char *code) { return run_base(mock.base_url, code); }

START_TEST(get_and_post_json) {
  start("[{\"match\":{\"method\":\"GET\",\"path\":\"/items/7\"},"
        "  \"reply\":{\"json\":{\"id\":7,\"name\":\"lamp\",\"tags\":[\"a\",\"b\"]},"
        "             \"headers\":{\"X-Served-By\":\"mock\",\"ETag\":\"v1\"}}},"
        " {\"match\":{\"method\":\"POST\",\"path\":\"/items\",\"body_contains\":\"\\\"name\\\":\\\"desk\\\"\"},"
        "  \"reply\":{\"status\":201,\"json\":{\"created\":true}}},"
        " {\"match\":{\"path\":\"/text\"},\"reply\":{\"body\":\"plain words\","
        "  \"headers\":{\"Content-Type\":\"text/plain; charset=utf-8\"}}}]");
  ck_assert_msg(run("local r = assert(luact.http.request{url=BASE..'/items/7',"
                    "  headers={['X-Trace']='t-1', Accept='application/json'}})\n"
                    "local p = assert(luact.http.post(BASE..'/items', {name='desk', legs=4}))\n"
                    "local t = assert(luact.http.get(BASE..'/text'))\n"
                    "return table.concat({r.status, r.json.name, r.json.tags[2],"
                    "  r.headers['x-served-by'], r.headers['etag'], r.headers['content-type'],"
                    "  p.status, tostring(p.json.created), t.body, tostring(t.json)}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "200|lamp|b|mock|v1|application/json|201|true|plain words|nil");
  char *log = lc_mock_requests(&mock);
  /* Request headers arrive, a table body went as JSON with its type. */
  ck_assert_ptr_nonnull(strstr(log, "\"x-trace\":\"t-1\""));
  ck_assert_ptr_nonnull(strstr(log, "\"content-type\":\"application/json\""));
  ck_assert_ptr_nonnull(strstr(log, "\"legs\":4"));
  free(log);
  stop();
}
END_TEST

START_TEST(string_body_methods_and_head) {
  start("[{\"match\":{\"method\":\"PUT\",\"path\":\"/doc\"},\"reply\":{\"status\":204}},"
        " {\"match\":{\"method\":\"HEAD\"},\"reply\":{\"body\":\"not sent for HEAD\","
        "  \"headers\":{\"X-Len\":\"17\"}}},"
        " {\"match\":{\"method\":\"DELETE\"},\"reply\":{\"status\":200,\"body\":\"gone\"}}]");
  ck_assert_msg(run("local a = assert(luact.http.request{method='put', url=BASE..'/doc',"
                    "  body='raw text', headers={['Content-Type']='text/plain'}})\n"
                    "local h = assert(luact.http.request{method='HEAD', url=BASE..'/doc'})\n"
                    "local d = assert(luact.http.request{method='DELETE', url=BASE..'/doc'})\n"
                    "return a.status .. '|' .. a.body .. '|' .. h.status .. '|' .. h.body .. '|'"
                    "  .. h.headers['x-len'] .. '|' .. d.body") == 0, "%s", err);
  ck_assert_str_eq(out, "204||200||17|gone");
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"method\":\"PUT\""));
  ck_assert_ptr_nonnull(strstr(log, "\"body\":\"raw text\""));
  ck_assert_ptr_nonnull(strstr(log, "\"content-type\":\"text/plain\""));
  free(log);
  stop();
}
END_TEST

START_TEST(status_codes_are_responses) {
  start("[{\"match\":{\"path\":\"/missing\"},\"reply\":{\"status\":404,"
        "  \"json\":{\"error\":\"no such item\"}}},"
        " {\"match\":{\"path\":\"/boom\"},\"reply\":{\"status\":503,\"retry_after\":3,"
        "  \"body\":\"busy\",\"headers\":{\"Content-Type\":\"text/plain\"}}}]");
  ck_assert_msg(run("local a = assert(luact.http.get(BASE..'/missing'))\n"
                    "local b = assert(luact.http.get(BASE..'/boom'))\n"
                    "return a.status .. '|' .. a.json.error .. '|' .. b.status .. '|' .. b.body"
                    "  .. '|' .. b.headers['retry-after']") == 0, "%s", err);
  ck_assert_str_eq(out, "404|no such item|503|busy|3");
  /* Each request went once: a status is an answer, not a retry. */
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/boom"), 1);
  stop();
}
END_TEST

START_TEST(idempotency_key_is_sent) {
  start("[{\"reply\":{\"status\":201,\"json\":{\"ok\":true}}}]");
  ck_assert_msg(run("assert(luact.http.post(BASE..'/charges', {amount=5},"
                    "  {idempotency_key='run-1/branch-2/seq-3'}))\n"
                    "assert(luact.http.post(BASE..'/plain', {amount=5}))\n"
                    "local ok, e = pcall(luact.http.request, {url=BASE, idempotency_key='a\\r\\nX: y'})\n"
                    "return tostring(ok) .. '|' .. tostring(e)") == 0, "%s", err);
  ck_assert_msg(strstr(out, "false|") && strstr(out, "CR, LF"), "%s", out);
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"idempotency-key\":\"run-1/branch-2/seq-3\""));
  /* Only the first request carries one. */
  const char *first = strstr(log, "idempotency-key");
  ck_assert_ptr_null(strstr(first + 1, "idempotency-key"));
  free(log);
  stop();
}
END_TEST

START_TEST(concurrent_requests_overlap) {
  /* Each reply waits 300 ms at the server; run one after another, the
   * server would never see more than one in flight. */
  start("[{\"reply\":{\"delay_ms\":300,\"json\":{\"ok\":true}}}]");
  ck_assert_msg(run("local r = luact.map({'a', 'b', 'c'}, function(x)\n"
                    "  return assert(luact.http.get(BASE..'/slow/'..x)).status end)\n"
                    "return table.concat(r, ',')") == 0, "%s", err);
  ck_assert_str_eq(out, "200,200,200");
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(lc_test_json_num(stats, "peak_in_flight", 0) == 3, "%s", stats);
  free(stats);
  stop();
}
END_TEST

START_TEST(timeouts_and_cancellation_leave_nothing) {
  start("[{\"match\":{\"path\":\"/slow\"},\"reply\":{\"delay_ms\":20000,\"json\":{}}},"
        " {\"reply\":{\"json\":{\"ok\":true}}}]");
  /* luact.timeout kills the task mid-transfer: the transfer must go with it
   * (run's teardown asserts no transfer is left); a later request works. */
  ck_assert_msg(run("local r, msg, code = luact.timeout(0.2, function()\n"
                    "  return luact.http.get(BASE..'/slow') end)\n"
                    "assert(r == nil and code == 'timeout', tostring(msg))\n"
                    "local r2, msg2, code2 = luact.http.get(BASE..'/slow', {timeout=0.2})\n"
                    "assert(r2 == nil, 'expected a timeout')\n"
                    "local ok = assert(luact.http.get(BASE..'/fine'))\n"
                    "return code2 .. '|' .. ok.status .. '|' .. msg2") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "timeout|200|", 12) == 0, "%s", out);
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/slow"), 2);
  stop();
}
END_TEST

START_TEST(stall_is_a_timeout) {
  start("[{\"reply\":{\"body\":\"0123456789abcdef\",\"stall_after_bytes\":5,"
        "  \"headers\":{\"Content-Type\":\"text/plain\"}}}]");
  ck_assert_msg(run("local r, msg, code = luact.http.get(BASE..'/stall', {timeout=0.3})\n"
                    "return tostring(r) .. '|' .. code") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|timeout");
  stop();
}
END_TEST

START_TEST(cut_body_is_an_error) {
  start("[{\"reply\":{\"body\":\"{\\\"items\\\":[1,2,3,4,5,6,7,8,9]}\",\"cut_after_bytes\":8}}]");
  ck_assert_msg(run("local r, msg, code = luact.http.get(BASE..'/cut')\n"
                    "return tostring(r) .. '|' .. code .. '|' .. msg") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "nil|network|", 12) == 0, "%s", out);
  stop();
}
END_TEST

START_TEST(oversize_is_refused_not_truncated) {
  char script[4096];
  char big[2100];
  memset(big, 'x', 2000);
  big[2000] = '\0';
  snprintf(script, sizeof script,
           "[{\"reply\":{\"body\":\"%s\",\"headers\":{\"Content-Type\":\"text/plain\"}}}]", big);
  start(script);
  ck_assert_msg(run("local r, msg, code = luact.http.get(BASE..'/big', {max_body=100})\n"
                    "local ok = assert(luact.http.get(BASE..'/big', {max_body=5000}))\n"
                    "return tostring(r) .. '|' .. code .. '|' .. #ok.body .. '|' .. msg") == 0,
                "%s", err);
  ck_assert_msg(strncmp(out, "nil|too_large|2000|", 19) == 0, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "100 bytes"));
  stop();
}
END_TEST

START_TEST(bad_urls_are_refused) {
  start("[{\"reply\":{\"json\":{}}}]");
  ck_assert_msg(run("local out = {}\n"
                    "for _, u in ipairs{'ftp://127.0.0.1/x', 'file:///etc/passwd', 'gopher://h/',"
                    "    'no scheme at all', 'http://', BASE:gsub('^http', 'ws'), 'http://a b/'} do\n"
                    "  local r, msg, code = luact.http.get(u)\n"
                    "  out[#out + 1] = tostring(r) .. ':' .. tostring(code)\n"
                    "end\n"
                    "local _, msg = luact.http.get('file:///etc/passwd')\n"
                    "return table.concat(out, ',') .. '|' .. msg") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "nil:bad_url,nil:bad_url,nil:bad_url,nil:bad_url,nil:bad_url,"
                             "nil:bad_url,nil:bad_url|", 84) == 0, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "only http:// and https://"));
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(lc_test_json_num(stats, "requests", 0) == 0, "%s", stats);
  free(stats);
  stop();
}
END_TEST

START_TEST(refused_connection_is_network) {
  /* A port that was free a moment ago and has no listener now. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t al = sizeof a;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  close(fd);
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%d", ntohs(a.sin_port));
  ck_assert_msg(run_base(base, "local r, msg, code = luact.http.get(BASE..'/x')\n"
                               "return tostring(r) .. '|' .. code") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|network");
}
END_TEST

START_TEST(misuse_raises) {
  start("[]");
  ck_assert_msg(run("local cases = {\n"
                    "  function() return luact.http.request{} end,\n"
                    "  function() return luact.http.request{url=BASE, headers={['Bad Name']='x'}} end,\n"
                    "  function() return luact.http.request{url=BASE, headers={X='a\\nb'}} end,\n"
                    "  function() return luact.http.request{url=BASE, body=function() end} end,\n"
                    "  function() return luact.http.request{url=BASE, body={f=print}} end,\n"
                    "  function() return luact.http.request{url=BASE, timeout=-1} end,\n"
                    "  function() return luact.http.request{url=BASE, max_body=0} end,\n"
                    "  function() return luact.http.request{url=BASE, method='GE T'} end,\n"
                    "}\n"
                    "local msgs = {}\n"
                    "for i, f in ipairs(cases) do\n"
                    "  local ok, e = pcall(f)\n"
                    "  assert(not ok, 'case ' .. i .. ' did not raise')\n"
                    "  msgs[#msgs + 1] = e\n"
                    "end\n"
                    "local co = coroutine.wrap(function() return pcall(luact.http.get, BASE) end)\n"
                    "local ok, e = co()\n"
                    "assert(not ok and e:find('luact task'), e)\n"
                    "return table.concat(msgs, '\\n')") == 0, "%s", err);
  ck_assert_ptr_nonnull(strstr(out, "'url' must be a string"));
  ck_assert_ptr_nonnull(strstr(out, "not allowed in HTTP names"));
  ck_assert_ptr_nonnull(strstr(out, "body cannot be sent as JSON"));
  ck_assert_ptr_nonnull(strstr(out, "bad HTTP method"));
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(lc_test_json_num(stats, "requests", 0) == 0, "%s", stats);
  free(stats);
  stop();
}
END_TEST

Suite *http_tool_suite(void) {
  Suite *s = suite_create("http_tool");
  TCase *tc = tcase_create("loopback");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, get_and_post_json);
  tcase_add_test(tc, string_body_methods_and_head);
  tcase_add_test(tc, status_codes_are_responses);
  tcase_add_test(tc, idempotency_key_is_sent);
  tcase_add_test(tc, concurrent_requests_overlap);
  tcase_add_test(tc, timeouts_and_cancellation_leave_nothing);
  tcase_add_test(tc, stall_is_a_timeout);
  tcase_add_test(tc, cut_body_is_an_error);
  tcase_add_test(tc, oversize_is_refused_not_truncated);
  tcase_add_test(tc, bad_urls_are_refused);
  tcase_add_test(tc, refused_connection_is_network);
  tcase_add_test(tc, misuse_raises);
  suite_add_tcase(s, tc);
  return s;
}
