/* check_hostile_http.c: the hostile corpus for luact.tools.http. Each case
 * is one request a model could send to a tool whose base_url is
 * BASE/api, run against lc-mockllm on loopback (started per case); each
 * checks a clear refusal or a correct bounded result, and that the host is
 * intact: alive() makes a good request through a fresh tool afterwards,
 * lc_test_lua_run_once asserts no task, timer or transfer is left and
 * lc_ allocations balance, and the server's log shows that nothing went
 * outside /api/ and no injected header arrived.
 *
 * Globals for each case: BASE, T (the tool), try(tool, args) -> "status:json"
 * or "code:message", alive(). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cjson/cJSON.h"
#include "lc.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];

/* Everything under /api/ answers with the path it saw; /admin must never
 * be reached; /api/redir sends the client to /admin; /api/big is 2000
 * bytes; /api/slow waits longer than any case does. */
static const char script[] =
    "[{\"match\":{\"path_prefix\":\"/api/redir\"},\"reply\":{\"status\":302,"
    "   \"headers\":{\"Location\":\"/admin/steal\"},\"body\":\"moved\"}},"
    " {\"match\":{\"path_prefix\":\"/api/away\"},\"reply\":{\"status\":301,"
    "   \"headers\":{\"Location\":\"http://evil.example/steal\"},\"body\":\"moved\"}},"
    " {\"match\":{\"path_prefix\":\"/api/big\"},\"reply\":{\"body\":\"%s\","
    "   \"headers\":{\"Content-Type\":\"text/plain\"}}},"
    " {\"match\":{\"path_prefix\":\"/api/slow\"},\"reply\":{\"delay_ms\":60000,\"json\":{}}},"
    " {\"match\":{\"path_prefix\":\"/api/\"},\"reply\":{\"json\":{\"ok\":true}}},"
    " {\"reply\":{\"status\":418,\"body\":\"outside\"}}]";

static const char prelude[] =
    "T = luact.tools.http{base_url = BASE .. '/api', allow_methods = {'GET', 'POST'},"
    "  max_body = 1000, timeout = 5}\n"
    "function try(tool, args)\n"
    "  local r, msg, code = tool(args)\n"
    "  if r == nil then return tostring(code) .. ':' .. tostring(msg) end\n"
    "  return r.status .. ':' .. luact.json.encode(r.json or r.body)\n"
    "end\n"
    "function tries(tool, list)\n"
    "  local o = {}\n"
    "  for i, a in ipairs(list) do o[i] = try(tool, a) end\n"
    "  return table.concat(o, '\\n')\n"
    "end\n"
    "function alive()\n"
    "  local t = luact.tools.http{base_url = BASE .. '/api'}\n"
    "  assert(try(t, {path = '/alive'}) == '200:{\"ok\":true}', 'host damaged')\n"
    "  return 'alive'\n"
    "end\n";

struct hcase {
  const char *name;
  const char *code;  /* returns a string; must contain want */
  const char *want;
  const char *want2; /* a second substring, or NULL */
};

#define REFUSED "tool_error:tool http failed: path must stay under "
#define BADCHAR "tool_error:tool http failed: path must not contain spaces, control characters"

static const struct hcase cases[] = {
    /* Issue 12 item 7a. */
    {"dotdot_semicolon",
     "return tries(T, {{path = '/..;/admin'}, {path = '/x/..;jsessionid=1/../admin'},"
     "  {path = '/.;/x'}}) .. '|' .. alive()",
     REFUSED, "under http://127.0.0.1"},
    {"double_encoded_dots",
     "return tries(T, {{path = '/%252e%252e/admin'}, {path = '/%252E%252E%252Fadmin'}})"
     " .. '|' .. alive()",
     REFUSED, "however they are encoded\n" REFUSED},
    {"triple_encoded_dots",
     "return tries(T, {{path = '/%25252e%25252e/admin'}, {path = '/%2525252e./admin'}})"
     " .. '|' .. alive()",
     REFUSED, "encoded\n" REFUSED},
    {"too_many_encodings",
     "return try(T, {path = '/a%2525252525252541'}) .. '|' .. alive()",
     "tool_error:tool http failed: path is percent-encoded more than 4 times over|alive",
     NULL},
    {"encoded_slash_and_dots",
     "return tries(T, {{path = '/..%2fadmin'}, {path = '/%2e%2e%2fadmin'},"
     "  {path = '/x%2f..%2f..%2fadmin'}}) .. '|' .. alive()",
     REFUSED, NULL},
    {"mixed_case_encodings",
     "return tries(T, {{path = '/%2E%2e/admin'}, {path = '/.%2E/admin'}, {path = '/%2e./admin'},"
     "  {path = '/%2E/admin'}}) .. '|' .. alive()",
     REFUSED, NULL},
    {"backslashes",
     "return tries(T, {{path = '/..\\\\admin'}, {path = '/%5c..%5cadmin'}, {path = '/%255c'}})"
     " .. '|' .. alive()",
     BADCHAR, "also percent-encoded"},
    {"overlong_utf8_dots",
     "return tries(T, {{path = '/%c0%ae%c0%ae/admin'}, {path = '/%e0%80%ae./admin'}})"
     " .. '|' .. alive()",
     "tool_error:tool http failed: path is not UTF-8 once percent-decoded (byte 1)", NULL},
    {"plain_dotdot_and_dot",
     "return tries(T, {{path = '/../admin'}, {path = '/x/../../admin'}, {path = '/./x'},"
     "  {path = '/x/..'}}) .. '|' .. alive()",
     REFUSED, NULL},
    {"host_scheme_port_switch",
     "return tries(T, {{path = '@evil.example/x'}, {path = 'http://evil.example/x'},"
     "  {path = ':8080/x'}, {path = '.evil.example/x'}, {path = ''}}) .. '|' .. alive()",
     "tool_error:tool http failed: path must start with '/'", NULL},
    {"userinfo_and_double_slash_stay_on_host",
     /* These are paths on the right host: the server says so. */
     "return tries(T, {{path = '/@evil.example/x'}, {path = '//evil.example/x'},"
     "  {path = '/x@evil.example:80'}}) .. '|' .. alive()",
     "200:{\"ok\":true}\n200:{\"ok\":true}\n200:{\"ok\":true}|alive", NULL},
    {"url_rechecked_as_sent",
     /* The binding's own check: a URL built any other way is compared,
      * after curl's dot-segment removal, with the base it must stay under. */
     "local out = {}\n"
     "for _, u in ipairs{BASE .. '/api/../admin', BASE .. '/apix/y', BASE:gsub(':%d+$', ':1') .. '/api/x',"
     "    'https://' .. BASE:sub(8) .. '/api/x', BASE:gsub('//', '//user@') .. '/api/x',"
     "    BASE:gsub('127.0.0.1', 'localhost') .. '/api/x'} do\n"
     "  local r, msg, code = luact.http.request{url = u, under = BASE .. '/api'}\n"
     "  out[#out + 1] = tostring(code)\n"
     "end\n"
     "local ok = assert(luact.http.request{url = BASE .. '/api/x/../y', under = BASE .. '/api/'})\n"
     "return table.concat(out, ',') .. '|' .. ok.status .. '|' .. alive()",
     "bad_url,bad_url,bad_url,bad_url,bad_url,bad_url|200|alive", NULL},
    {"redirect_not_followed",
     "return tries(T, {{path = '/redir'}, {path = '/away'}}) .. '|' .. alive()",
     "302:\"moved\"\n301:\"moved\"|alive", NULL},
    {"crlf_in_path",
     "return tries(T, {{path = '/x\\r\\nX-Injected: 1'}, {path = '/x%0d%0aX-Injected:%201'},"
     "  {path = '/x%250d%250aX-Injected:%201'}, {path = '/x\\0/y'}}) .. '|' .. alive()",
     BADCHAR, NULL},
    {"crlf_and_injection_in_query",
     /* Query keys and values are percent-encoded, never spliced. */
     "return tries(T, {{path = '/q', query = {q = 'a\\r\\nX-Injected: 1', ['a&admin=1'] = 'x#y'}}})"
     " .. '|' .. alive()",
     "200:{\"ok\":true}|alive", NULL},
    {"header_injection_via_model_value",
     /* A script that builds a header from the model's arguments: the value
      * is checked before anything is sent. */
     "local t = luact.tools.http{base_url = BASE .. '/api', allow_methods = {'POST'},"
     "  idempotency_key = function(args) return 'k-' .. tostring(args.body.ref) end}\n"
     "return try(t, {method = 'POST', path = '/orders', body = {ref = 'a\\r\\nX-Injected: 1'}})"
     " .. '|' .. alive()",
     "tool_error:tool http failed: ", "value contains CR, LF or NUL"},
    {"method_smuggling",
     "return tries(T, {{method = 'GET / HTTP/1.1\\r\\nX-Injected: 1', path = '/x'},"
     "  {method = 'DELETE', path = '/x'}}) .. '|' .. alive()",
     "invalid_arguments:invalid arguments for http: $.method: must be one of \"GET\", \"POST\"",
     NULL},
    {"oversized_response_capped",
     "return try(T, {path = '/big'}) .. '|' .. alive()",
     "too_large", "1000 bytes"},
    {"slow_response_times_out",
     "local t = luact.tools.http{base_url = BASE .. '/api', timeout = 0.3}\n"
     "return try(t, {path = '/slow'}) .. '|' .. alive()",
     "tool_error:tool http failed: GET /slow failed (timeout)", NULL},
    {"very_long_path",
     "return try(T, {path = '/' .. string.rep('a', 9000)}) .. '|' .. alive()",
     "tool_error:tool http failed: path is longer than 8192 bytes|alive", NULL},
    {"non_utf8_and_bad_escapes",
     "return tries(T, {{path = '/\\255x'}, {path = '/100%'}, {path = '/%zz'}}) .. '|' .. alive()",
     "invalid_arguments:invalid arguments for http: value is not JSON: string is not valid "
     "UTF-8 (byte 1) at $.path\n"
     "tool_error:tool http failed: path has a '%' that does not start a %XX escape\n"
     "tool_error:tool http failed: path has a '%' that does not start a %XX escape|alive",
     NULL},
    {"legit_escapes_still_work",
     "return tries(T, {{path = '/files/100%25'}, {path = '/caf%C3%A9'}, {path = '/a.b/..c/...'}})"
     " .. '|' .. alive()",
     "200:{\"ok\":true}\n200:{\"ok\":true}\n200:{\"ok\":true}|alive", NULL},
};

/* Every request the server saw stayed under /api/ and carried no injected
 * header. */
static void assert_server_clean(const char *name) {
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(log);
  cJSON *a = cJSON_Parse(log);
  ck_assert_ptr_nonnull(a);
  const cJSON *r;
  cJSON_ArrayForEach(r, a) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "path");
    ck_assert_msg(cJSON_IsString(p) && strncmp(p->valuestring, "/api/", 5) == 0,
                  "%s: the server saw %s", name, cJSON_IsString(p) ? p->valuestring : "?");
    const char *v = p->valuestring;
    const char *bad[] = {"/../", "/./", "/..;", "/.;", "%2e", "%2E", "%5c", "%5C", "\\"};
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++)
      ck_assert_msg(!strstr(v, bad[i]), "%s: the server saw %s", name, v);
    size_t n = strlen(v);
    ck_assert_msg(!(n >= 3 && !strcmp(v + n - 3, "/..")), "%s: the server saw %s", name, v);
  }
  ck_assert_msg(!strstr(log, "x-injected") && !strstr(log, "X-Injected:"),
                "%s: injected header arrived: %s", name, log);
  cJSON_Delete(a);
  free(log);
}

START_TEST(hostile_http) {
  const struct hcase *h = &cases[_i];
  static char sc[sizeof script + 2100];
  char big[2001];
  memset(big, 'x', 2000);
  big[2000] = '\0';
  snprintf(sc, sizeof sc, script, big);
  ck_assert_int_eq(lc_mock_start(&mock, sc), 0);
  int rc = lc_test_lua_run_once(mock.base_url, prelude, h->code, out, sizeof out, err,
                                sizeof err);
  ck_assert_msg(rc == 0, "%s: %s", h->name, err);
  ck_assert_msg(strstr(out, h->want) != NULL, "%s:\n got [%.3000s]\n want [%s]", h->name, out,
                h->want);
  ck_assert_msg(!h->want2 || strstr(out, h->want2), "%s:\n got [%.3000s]\n want [%s]",
                h->name, out, h->want2);
  ck_assert_msg(strstr(out, "alive") != NULL, "%s: host check did not run", h->name);
  assert_server_clean(h->name);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
}
END_TEST

Suite *hostile_http_suite(void) {
  Suite *s = suite_create("hostile_http");
  TCase *tc = tcase_create("corpus");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, hostile_http, 0, (int)LC_ARRAY_LEN(cases));
  suite_add_tcase(s, tc);
  return s;
}
