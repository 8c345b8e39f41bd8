/* check_llm_client.c: luact.llm.chat over real HTTP on loopback against
 * lc-mockllm: the three wire formats, streaming, errors by kind, retries
 * (Retry-After, 503 then success, caps), timeouts (stall, idle), cut and
 * malformed streams, size limits, overlap of concurrent calls, cancellation,
 * and that a key is never shown.
 *
 * Time is only ever asserted as a lower bound (a retry must not come before
 * Retry-After); nothing asserts that something was fast. */
#include <check.h>
#include <locale.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "lc.h"
#include "llm_call.h"
#include "loop.h"
#include "util_common.h"
#include "util_locale.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[8192], err[8192];

static void start(const char *script) { ck_assert_int_eq(lc_mock_start(&mock, script), 0); }

/* Runs code with BASE = "http://127.0.0.1:PORT" as a global. */
static int run(const char *code) {
  return lc_test_lua_run_once(mock.base_url, NULL, code, out, sizeof out, err, sizeof err);
}

static void stop(void) { ck_assert_int_eq(lc_mock_stop(&mock), 0); }

#define OPENAI_CALL(extra) \
  "local r, e, code, info = luact.llm.chat{model='openai:mock-gpt', base_url=BASE..'/v1', " \
  "prompt='hi', retry_base=0.01, " extra "}\n"

START_TEST(openai_text_and_usage) {
  start("[{\"match\":{\"path\":\"/v1/chat/completions\"},\"reply\":{\"openai\":{\"text\":\"Hello "
        "there\",\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14}}}}]");
  ck_assert_msg(run(OPENAI_CALL("")
                    "assert(r, e)\n"
                    "return r.text..'|'..r.finish_reason..'|'..r.usage.input..'/'..r.usage.output"
                    "..'|'..r.attempts") == 0, "%s", err);
  ck_assert_str_eq(out, "Hello there|stop|11/3|1");
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"model\":\"mock-gpt\""));
  ck_assert_ptr_nonnull(strstr(log, "\"content\":\"hi\""));
  free(log);
  stop();
}
END_TEST

START_TEST(openai_stream_deltas_and_tool_args) {
  start("[{\"reply\":{\"openai\":{\"text\":\"Let me check.\",\"fragment_bytes\":3,"
        "\"tool_calls\":[{\"id\":\"c1\",\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\","
        "\"unit\":\"C\"}}]}}}]");
  ck_assert_msg(run(OPENAI_CALL("stream=function(d) deltas[#deltas+1] = d.type .. ':' .. (d.text or d.name or '') end,"
                                "tools={{name='get_weather', parameters={type='object'}}}")
                    "" ) != 0, "stream callback needs the deltas table");
  ck_assert_msg(run("deltas = {}\n" OPENAI_CALL(
                        "stream=function(d) deltas[#deltas+1] = d.type .. ':' .. (d.text or d.name or '') end,"
                        "tools={{name='get_weather', parameters={type='object'}}}")
                    "assert(r, e)\n"
                    "local c = r.tool_calls[1]\n"
                    "return table.concat(deltas, ',') .. '|' .. r.text .. '|' .. c.name .. '|' .."
                    " c.arguments.city .. c.arguments.unit .. '|' .. r.finish_reason") == 0,
                "%s", err);
  /* Text arrives in 3-byte fragments, the tool name once, then arguments. */
  ck_assert_msg(strncmp(out, "text:Let,text: me,text: ch,text:eck,text:.,tool_call:get_weather", 63) == 0,
                "%s", out);
  ck_assert_msg(strstr(out, "|Let me check.|get_weather|OsloC|tool_calls") != NULL, "%s", out);
  stop();
}
END_TEST

START_TEST(anthropic_and_ollama_streams) {
  start("[{\"match\":{\"path\":\"/v1/messages\"},\"reply\":{\"anthropic\":{\"text\":\"Bonjour "
        "le monde\",\"fragment_bytes\":4}}},"
        "{\"match\":{\"path\":\"/api/chat\"},\"reply\":{\"ollama\":{\"text\":\"Hallo Welt\","
        "\"tool_calls\":[{\"name\":\"t\",\"arguments\":{\"a\":1}}]}}}]");
  ck_assert_msg(run("local n = 0\n"
                    "local a = assert(luact.llm.chat{model='anthropic:claude-x', base_url=BASE, api_key='sk-test',"
                    " prompt='hi', stream=function(d) n = n + 1 end})\n"
                    "local o = assert(luact.llm.chat{model='ollama:llama3.1:8b', base_url=BASE, prompt='hi',"
                    " stream=true})\n"
                    "return a.text .. '|' .. tostring(n > 3) .. '|' .. o.text .. '|' .."
                    " o.tool_calls[1].name .. o.tool_calls[1].arguments.a") == 0, "%s", err);
  ck_assert_str_eq(out, "Bonjour le monde|true|Hallo Welt|t1");
  char *log = lc_mock_requests(&mock);
  /* The key is sent (redacted by the mock's log), the model has no prefix. */
  ck_assert_ptr_nonnull(strstr(log, "\"x-api-key\":\"<redacted>\""));
  ck_assert_ptr_nonnull(strstr(log, "\"model\":\"llama3.1:8b\""));
  ck_assert_ptr_null(strstr(log, "sk-test"));
  free(log);
  stop();
}
END_TEST

START_TEST(retry_after_is_honoured) {
  start("[{\"times\":1,\"reply\":{\"status\":429,\"retry_after\":1,\"json\":{\"error\":{\"message\":"
        "\"slow down\",\"type\":\"rate_limit_error\"}}}},"
        "{\"reply\":{\"openai\":{\"text\":\"ok\"}}}]");
  ck_assert_msg(run(OPENAI_CALL("") "assert(r, e) return r.text .. r.attempts") == 0, "%s", err);
  ck_assert_str_eq(out, "ok2");
  char *log = lc_mock_requests(&mock);
  double t0 = lc_test_json_num(log, "time_ms", 0), t1 = lc_test_json_num(log, "time_ms", 1);
  free(log);
  /* The second attempt may not come before the server said it could. */
  ck_assert_msg(t1 - t0 >= 1000.0, "retried after %.0f ms", t1 - t0);
  stop();
}
END_TEST

START_TEST(server_errors_then_success) {
  start("[{\"times\":2,\"reply\":{\"status\":503,\"body\":\"upstream connect error\","
        "\"headers\":{\"content-type\":\"text/plain\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"third time\"}}}]");
  ck_assert_msg(run(OPENAI_CALL("") "assert(r, e) return r.text .. r.attempts") == 0, "%s", err);
  ck_assert_str_eq(out, "third time3");
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 3);
  stop();
}
END_TEST

START_TEST(attempts_are_capped) {
  start("[{\"reply\":{\"status\":500,\"json\":{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}}}]");
  ck_assert_msg(run(OPENAI_CALL("retries=2")
                    "assert(not r) return code .. '|' .. info.attempts .. '|' .. e") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "server|3|", 9) == 0, "%s", out);
  ck_assert_msg(strstr(out, "boom") && strstr(out, "gave up after 3 attempts"), "%s", out);
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 3);
  stop();
}
END_TEST

START_TEST(long_retry_after_is_not_waited_out) {
  start("[{\"reply\":{\"status\":429,\"retry_after\":3600,\"json\":{\"error\":{\"message\":\"later\"}}}}]");
  ck_assert_msg(run(OPENAI_CALL("max_retry_after=5")
                    "assert(not r) return code .. '|' .. info.attempts .. '|' .. info.retry_after") == 0, "%s", err);
  ck_assert_str_eq(out, "rate_limit|1|3600.0");
  stop();
}
END_TEST

START_TEST(non_retryable_errors_are_not_retried) {
  start("[{\"match\":{\"body_contains\":\"auth\"},\"reply\":{\"status\":401,\"json\":{\"error\":"
        "{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}},"
        "{\"reply\":{\"status\":400,\"json\":{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens\","
        "\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}}}]");
  ck_assert_msg(run("local function call(p) return luact.llm.chat{model='openai:m', base_url=BASE..'/v1', prompt=p} end\n"
                    "local _, e1, c1, i1 = call('auth')\n"
                    "local _, e2, c2, i2 = call('long')\n"
                    "return c1 .. i1.attempts .. '|' .. c2 .. i2.attempts .. '|' .. e1") == 0, "%s", err);
  ck_assert_str_eq(out, "auth1|context_length1|Incorrect API key provided");
  stop();
}
END_TEST

START_TEST(stalled_stream_times_out) {
  /* Stalls after the first bytes: text was already delivered, so it is an
   * error, not a retry that would repeat it. */
  start("[{\"reply\":{\"stall_after_bytes\":700,\"openai\":{\"text\":\"a long answer that stalls\",\"fragment_bytes\":2}}}]");
  ck_assert_msg(run("local got = ''\n" OPENAI_CALL("idle_timeout=0.3, stream=function(d) got = got .. (d.text or '') end")
                    "assert(not r) return code .. '|' .. info.attempts .. '|' .. tostring(#got > 0) .. '|' .. e") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "timeout|1|true|idle timeout", 27) == 0, "%s", out);
  stop();
}
END_TEST

START_TEST(stall_before_any_byte_is_retried) {
  start("[{\"times\":1,\"reply\":{\"stall_after_bytes\":0,\"openai\":{\"text\":\"x\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"second\"}}}]");
  ck_assert_msg(run(OPENAI_CALL("idle_timeout=0.2, stream=true") "assert(r, e) return r.text .. r.attempts") == 0, "%s", err);
  ck_assert_str_eq(out, "second2");
  stop();
}
END_TEST

START_TEST(cut_stream_is_an_error_not_a_short_answer) {
  start("[{\"reply\":{\"cut_after_bytes\":150,\"openai\":{\"text\":\"this answer will be cut off in the middle\",\"fragment_bytes\":4}}}]");
  ck_assert_msg(run(OPENAI_CALL("retries=0, stream=function() end")
                    "return tostring(r) .. '|' .. code .. '|' .. e") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "nil|", 4) == 0, "%s", out);
  ck_assert_msg(strstr(out, "network") || strstr(out, "bad_response"), "%s", out);
  stop();
}
END_TEST

START_TEST(malformed_and_html_bodies) {
  start("[{\"match\":{\"body_contains\":\"malformed\"},\"reply\":{\"malformed\":true,\"openai\":{\"text\":\"x\"}}},"
        "{\"match\":{\"body_contains\":\"html\"},\"reply\":{\"status\":502,\"headers\":{\"content-type\":\"text/html\"},"
        "\"body\":\"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\"}},"
        "{\"match\":{\"body_contains\":\"okpage\"},\"reply\":{\"headers\":{\"content-type\":\"text/html\"},\"body\":\"<html>hi</html>\"}}]");
  ck_assert_msg(run("local function call(p, s) return luact.llm.chat{model='openai:m', base_url=BASE..'/v1', prompt=p, retries=0, stream=s} end\n"
                    "local a, e1, c1 = call('malformed')\n"
                    "local b, e2, c2 = call('malformed', true)\n"
                    "local c, e3, c3 = call('html')\n"
                    "local d, e4, c4 = call('okpage')\n"
                    "return c1 .. '|' .. c2 .. '|' .. c3 .. '|' .. c4 .. '|' .. e3") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "bad_response|bad_response|server|bad_response|", 46) == 0, "%s", out);
  ck_assert_msg(strstr(out, "502") != NULL, "%s", out);
  stop();
}
END_TEST

START_TEST(oversized_body_is_refused) {
  start("[{\"reply\":{\"openai\":{\"text\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}}}]");
  ck_assert_msg(run(OPENAI_CALL("max_response_bytes=64") "return code .. '|' .. e") == 0, "%s", err);
  ck_assert_msg(strncmp(out, "bad_response|", 13) == 0 && strstr(out, "64 bytes"), "%s", out);
  stop();
}
END_TEST

START_TEST(refused_connection_is_a_network_error) {
  start("[]");
  char closed_port_url[64];
  snprintf(closed_port_url, sizeof closed_port_url, "%s", mock.base_url);
  stop();
  snprintf(mock.base_url, sizeof mock.base_url, "%s", closed_port_url);
  ck_assert_msg(run(OPENAI_CALL("retries=1") "return code .. info.attempts") == 0, "%s", err);
  ck_assert_str_eq(out, "network2");
}
END_TEST

START_TEST(concurrent_calls_overlap) {
  /* Each reply waits 300 ms at the server. If the client ran the calls one
   * after another the server would never see two at once. */
  start("[{\"reply\":{\"delay_ms\":300,\"openai\":{\"echo\":true}}}]");
  ck_assert_msg(run("local r = luact.parallel{\n"
                    "  a = function() return assert(luact.llm.chat{model='openai:m', base_url=BASE..'/v1', prompt='one'}).text end,\n"
                    "  b = function() return assert(luact.llm.chat{model='openai:m', base_url=BASE..'/v1', prompt='two'}).text end }\n"
                    "return r.a .. r.b") == 0, "%s", err);
  ck_assert_str_eq(out, "onetwo");
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(lc_test_json_num(stats, "peak_in_flight", 0) == 2, "%s", stats);
  free(stats);
  stop();
}
END_TEST

START_TEST(timeout_cancels_the_transfer) {
  start("[{\"reply\":{\"delay_ms\":60000,\"openai\":{\"text\":\"late\"}}}]");
  ck_assert_msg(run("local v, e, code = luact.timeout(0.2, function()\n"
                    "  return luact.llm.chat{model='openai:m', base_url=BASE..'/v1', prompt='x'} end)\n"
                    "return tostring(v) .. '|' .. code") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|timeout");
  /* lc_test_lua_close already asserted that no transfer is left; the mock
   * saw exactly one request. */
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 1);
  stop();
}
END_TEST

START_TEST(config_errors_are_clear_and_keys_hidden) {
  start("[]");
  unsetenv("ANTHROPIC_API_KEY");
  unsetenv("OPENAI_API_KEY");
  unsetenv("OPENAI_BASE_URL");
  ck_assert_msg(run("local r, e, code = luact.llm.chat{model='anthropic:claude', prompt='x'}\n"
                    "local r2, e2, code2 = luact.llm.chat{model='openai:gpt-4o-mini', prompt='x'}\n"
                    "return code .. '|' .. e .. '|' .. code2 .. '|' .. e2") == 0, "%s", err);
  ck_assert_msg(strstr(out, "config|ANTHROPIC_API_KEY is not set") != NULL, "%s", out);
  ck_assert_msg(strstr(out, "config|OPENAI_API_KEY is not set") != NULL, "%s", out);
  ck_assert_int_ne(run("luact.llm.chat{model='nope:x', prompt='x'}"), 0);
  ck_assert_msg(strstr(err, "provider:model") != NULL, "%s", err);
  ck_assert_int_ne(run("luact.llm.chat{model='openai:x', messages={{role='robot', content='x'}}}"), 0);
  ck_assert_msg(strstr(err, "messages[1].role") != NULL, "%s", err);
  /* A key given in the call never shows up in an error message. */
  ck_assert_msg(run("local r, e = luact.llm.chat{model='openai:m', base_url=BASE..'/v1', api_key='sk-SECRET123',"
                    " prompt='x', retries=0}\n return e") == 0, "%s", err);
  ck_assert_ptr_null(strstr(out, "SECRET"));
  stop();
}
END_TEST

START_TEST(tool_round_trip_messages) {
  start("[{\"reply\":{\"openai\":{\"text\":\"It is 12C in Oslo\"}}}]");
  ck_assert_msg(run("local r = assert(luact.llm.chat{model='openai:m', base_url=BASE..'/v1', messages={\n"
                    "  {role='user', content='weather?'},\n"
                    "  {role='assistant', tool_calls={{id='c1', name='get_weather', arguments={city='Oslo'}}}},\n"
                    "  {role='tool', tool_call_id='c1', name='get_weather', content={temp=12}}},\n"
                    "  tools={{name='get_weather', description='w', parameters={type='object', properties={city={type='string'}}}}}})\n"
                    "return r.text") == 0, "%s", err);
  ck_assert_str_eq(out, "It is 12C in Oslo");
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"tool_call_id\":\"c1\""));
  ck_assert_ptr_nonnull(strstr(log, "get_weather"));
  free(log);
  stop();
}
END_TEST

START_TEST(rate_governor_spaces_requests) {
  /* 300 rpm = one request per 200 ms for this provider and key, shared by
   * every task: five concurrent calls must reach the server one at a time.
   * The mock logs when it read a request (not when it was sent), from its
   * own start: a busy mock reads late, which can shorten any gap between
   * two reads (26 ms was seen) but never brings request i before i * 200 ms
   * after the mock started, since the first send came after that. */
  start("[{\"reply\":{\"openai\":{\"echo\":true}}}]");
  ck_assert_msg(run("luact.llm.limits{openai = {rpm = 300}}\n"
                    "local fns = {}\n"
                    "for i = 1, 5 do fns[i] = function() return assert(luact.llm.chat{model='openai:m',"
                    " base_url=BASE..'/v1', prompt='p'..i}).text end end\n"
                    "return table.concat(luact.parallel(fns), ',')") == 0, "%s", err);
  ck_assert_str_eq(out, "p1,p2,p3,p4,p5");
  char *log = lc_mock_requests(&mock);
  for (int i = 1; i < 5; i++) {
    double at = lc_test_json_num(log, "time_ms", i);
    ck_assert_msg(at >= 200.0 * i - 1, "request %d came %.1f ms after the mock started", i, at);
  }
  free(log);
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(lc_test_json_num(stats, "peak_in_flight", 0) == 1, "%s", stats);
  free(stats);
  stop();
}
END_TEST


/* ---- the C client on a borrowed request ---- */

static void on_call_done(struct lc_llm_call *c, void *ud) {
  (void)c;
  (*(int *)ud)++;
}

static struct lc_llm_msg text_msg(enum lc_llm_role role, const char *s) {
  struct lc_llm_msg m = {.role = role};
  m.content = lc_strdup(s);
  m.content_len = strlen(s);
  return m;
}

/* lc_llm_call_start_borrowed: the endpoint resolved from the environment
 * stays the call's (the caller's request is not written, its empty base
 * URL is not freed), a retry resends the same bytes, the body prefix goes
 * back to the caller's request, and a second call on the same request
 * (prefix warm) sends the same body again. */
START_TEST(borrowed_request_retries_and_reuse) {
  start("[{\"times\":1,\"reply\":{\"status\":503,\"body\":\"busy\","
        "\"headers\":{\"content-type\":\"text/plain\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"fine\"}}}]");
  lc_http_global_init();
  long live = lc_alloc_live();
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  ck_assert_int_eq(setenv("OPENAI_BASE_URL", base, 1), 0); /* forked case */
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_OPENAI;
  q.model = lc_strdup("mock-gpt");
  char *empty = lc_strdup("");
  q.base_url = empty;
  q.cache_wire = 1;
  q.msgs = lc_calloc(2, sizeof *q.msgs);
  q.msgs[0] = text_msg(LC_ROLE_SYSTEM, "Be \"brief\".");
  q.msgs[1] = text_msg(LC_ROLE_USER, "hi\nthere");
  q.n_msgs = 2;
  q.tools = lc_calloc(1, sizeof *q.tools);
  q.tools[0].name = lc_strdup("t");
  q.tools[0].schema_json = lc_strdup("{\"type\":\"object\"}");
  q.n_tools = 1;

  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.base_delay_ms = 1;
  o.retry.max_delay_ms = 5;
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *call;
  ck_assert_int_eq(lc_llm_call_start_borrowed(loop, &q, &o, NULL, NULL, on_call_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  const struct lc_llm_response *r = lc_llm_call_response(call);
  ck_assert_int_eq(r->err, LC_LLM_OK);
  ck_assert_str_eq(r->text, "fine");
  ck_assert_int_eq(r->attempts, 2);
  ck_assert_str_eq(lc_llm_call_request(call)->base_url, base);
  /* The caller's request: as it was, caches filled. */
  ck_assert_ptr_eq(q.base_url, empty);
  ck_assert_str_eq(q.base_url, "");
  ck_assert_ptr_null(q.api_key);
  ck_assert_uint_eq(q.n_msgs, 2);
  /* The body, the request's prefix buffer (llm.h), came back to it when
   * the call completed; the tools are in it, not cached apart. */
  ck_assert_ptr_nonnull(q.prefix.data);
  ck_assert_ptr_null(q.prefix.lent);
  ck_assert_uint_eq(q.prefix.n_msgs, 2);
  ck_assert_ptr_null(q.tools_wire.data);
  lc_llm_call_free(call);

  /* Again on the same request, caches warm; then grown by one message. */
  done = 0;
  ck_assert_int_eq(lc_llm_call_start_borrowed(loop, &q, &o, NULL, NULL, on_call_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  ck_assert_str_eq(lc_llm_call_response(call)->text, "fine");
  lc_llm_call_free(call);
  q.msgs = lc_realloc(q.msgs, 3 * sizeof *q.msgs);
  q.msgs[2] = text_msg(LC_ROLE_USER, "more");
  q.n_msgs = 3;
  done = 0;
  ck_assert_int_eq(lc_llm_call_start_borrowed(loop, &q, &o, NULL, NULL, on_call_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  ck_assert_str_eq(lc_llm_call_response(call)->text, "fine");
  lc_llm_call_free(call);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);

  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 4);
  char *b0 = lc_mock_request_body(&mock, 0), *b1 = lc_mock_request_body(&mock, 1),
       *b2 = lc_mock_request_body(&mock, 2), *b3 = lc_mock_request_body(&mock, 3);
  ck_assert_ptr_nonnull(b0);
  ck_assert_str_eq(b0, b1); /* the retry */
  ck_assert_str_eq(b0, b2); /* the warm build */
  ck_assert_ptr_nonnull(strstr(b0, "\"content\":\"Be \\\"brief\\\".\""));
  ck_assert_ptr_nonnull(strstr(b0, "\"tools\":[{\"type\":\"function\""));
  ck_assert_ptr_nonnull(strstr(b3, "{\"role\":\"user\",\"content\":\"hi\\nthere\"},"
                                   "{\"role\":\"user\",\"content\":\"more\"}]"));
  cJSON_free(b0);
  cJSON_free(b1);
  cJSON_free(b2);
  cJSON_free(b3);
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), live);
  stop();
}
END_TEST

/* A call cancelled while its body (the request's prefix buffer) is in
 * flight gives the buffer back intact; the next call on the grown request
 * extends it and sends exactly the body a build from scratch writes. */
START_TEST(borrowed_request_cancelled_then_again) {
  start("[{\"times\":1,\"reply\":{\"delay_ms\":60000,\"openai\":{\"text\":\"late\"}}},"
        "{\"reply\":{\"openai\":{\"text\":\"fine\"}}}]");
  lc_http_global_init();
  long live = lc_alloc_live();
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_OPENAI;
  q.model = lc_strdup("mock-gpt");
  q.base_url = lc_strdup(base);
  q.cache_wire = 1;
  q.stream = 1;
  q.msgs = lc_calloc(3, sizeof *q.msgs);
  q.msgs[0] = text_msg(LC_ROLE_SYSTEM, "Be \"brief\".");
  q.msgs[1] = text_msg(LC_ROLE_USER, "caf\xc3\xa9 \x01\n");
  q.n_msgs = 2;
  q.tools = lc_calloc(1, sizeof *q.tools);
  q.tools[0].name = lc_strdup("t");
  q.tools[0].schema_json = lc_strdup("{\"type\":\"object\"}");
  q.n_tools = 1;
  q.tool_choice = LC_TOOL_CHOICE_REQUIRED;

  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *call;
  ck_assert_int_eq(lc_llm_call_start_borrowed(loop, &q, NULL, NULL, NULL, on_call_done, &done, &call), 0);
  /* In flight: the call holds the buffer, the request only its address. */
  ck_assert_ptr_null(q.prefix.data);
  ck_assert_ptr_nonnull(q.prefix.lent);
  while (lc_mock_count_requests(&mock, "/v1/chat/completions") < 1) lc_loop_run_once(loop, 10);
  lc_llm_call_free(call); /* cancels */
  ck_assert_int_eq(done, 0);
  ck_assert_ptr_nonnull(q.prefix.data);
  ck_assert_ptr_null(q.prefix.lent);
  ck_assert_uint_eq(q.prefix.n_msgs, 2);

  q.msgs[2] = text_msg(LC_ROLE_TOOL, "r\u00e9sult \"q\"");
  q.msgs[2].tool_call_id = lc_strdup("c1");
  q.n_msgs = 3;
  ck_assert_int_eq(lc_llm_call_start_borrowed(loop, &q, NULL, NULL, NULL, on_call_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  ck_assert_int_eq(lc_llm_call_response(call)->err, LC_LLM_OK);
  ck_assert_str_eq(lc_llm_call_response(call)->text, "fine");
  lc_llm_call_free(call);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);

  q.cache_wire = 0;
  struct lc_llm_http h;
  char msg[256] = "";
  ck_assert_int_eq(lc_llm_openai.build(&q, &h, msg, sizeof msg), 0);
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/chat/completions"), 2);
  char *b1 = lc_mock_request_body(&mock, 1);
  ck_assert_ptr_nonnull(b1);
  ck_assert_str_eq(b1, h.body);
  cJSON_free(b1);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), live);
  stop();
}
END_TEST

/* Under a decimal-comma locale the request body still says 0.7: it once
 * went out as "temperature":0,7 (invalid JSON; the mock then logs the body
 * as a string). The reply's numbers are read with '.' too. */
START_TEST(wire_numbers_ignore_the_locale) {
  start("[{\"reply\":{\"openai\":{\"text\":\"ok\",\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1,\"total_tokens\":2,\"cost\":0.25}}}}]");
  lc_test_comma_locale();
  ck_assert_msg(run(OPENAI_CALL("temperature=0.7, top_p=0.95")
                    "assert(r, e)\n"
                    "return r.text .. '|' .. string.format('%d', r.usage.cost * 100)") == 0, "%s", err);
  lc_test_locale_done();
  ck_assert_str_eq(out, "ok|25");
  char *log = lc_mock_requests(&mock);
  ck_assert_msg(strstr(log, "\"temperature\":0.7") && strstr(log, "\"top_p\":0.95"), "%s", log);
  free(log);
  stop();
}
END_TEST

/* os.setlocale only reports: a script cannot switch the process-wide
 * locale under the other worker threads (nil is Lua's "cannot be
 * honoured"), though the locale exists and C could switch to it. */
START_TEST(scripts_cannot_set_the_locale) {
  start("[]");
  const char *name = lc_test_comma_locale();
  setlocale(LC_ALL, "C");
  char code[512];
  snprintf(code, sizeof code,
           "return table.concat({tostring(os.setlocale('%s')), tostring(os.setlocale('%s', 'numeric')),\n"
           "  os.setlocale(), os.setlocale(nil, 'numeric'), tostring(0.5),\n"
           "  tostring(select(2, pcall(os.setlocale, nil, 'bogus')):match('invalid option') ~= nil)}, '|')",
           name, name);
  int rc = run(code);
  char now[64];
  snprintf(now, sizeof now, "%s", setlocale(LC_ALL, NULL));
  lc_test_locale_done();
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "nil|nil|C|C|0.5|true");
  ck_assert_str_eq(now, "C");
  stop();
}
END_TEST

/* A streamed response is capped in total, as bytes arrive: 100 tool calls
 * of ~1 KB each (every buffer far under its own cap) against
 * max_response_bytes = 20000. It once accumulated all of them. */
START_TEST(streamed_response_total_is_capped) {
  char *script = malloc(200000);
  size_t k = (size_t)sprintf(script, "[{\"reply\":{\"openai\":{\"tool_calls\":[");
  char pad[1001];
  memset(pad, 'x', 1000);
  pad[1000] = '\0';
  for (int i = 0; i < 100; i++)
    k += (size_t)sprintf(script + k, "%s{\"id\":\"c%d\",\"name\":\"f\",\"arguments\":{\"q\":\"%s\"}}",
                         i ? "," : "", i, pad);
  sprintf(script + k, "]}}}]");
  start(script);
  free(script);
  ck_assert_msg(run("local starts = 0\n" OPENAI_CALL(
                        "max_response_bytes=20000, tools={{name='f', parameters={type='object'}}},"
                        "stream=function(d) if d.type == 'tool_call' then starts = starts + 1 end end")
                    "return tostring(r) .. '|' .. tostring(code) .. '|' .. tostring(e) .. '|' .."
                    " tostring(starts < 100)") == 0, "%s", err);
  ck_assert_str_eq(out, "nil|bad_response|streamed response over 20000 bytes "
                        "(max_response_bytes)|true");
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, "\"stream\":true"));
  free(log);
  stop();
}
END_TEST

Suite *llm_client_suite(void) {
  Suite *s = suite_create("llm_client");
  TCase *tc = tcase_create("loopback");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, openai_text_and_usage);
  tcase_add_test(tc, wire_numbers_ignore_the_locale);
  tcase_add_test(tc, scripts_cannot_set_the_locale);
  tcase_add_test(tc, openai_stream_deltas_and_tool_args);
  tcase_add_test(tc, anthropic_and_ollama_streams);
  tcase_add_test(tc, retry_after_is_honoured);
  tcase_add_test(tc, server_errors_then_success);
  tcase_add_test(tc, attempts_are_capped);
  tcase_add_test(tc, long_retry_after_is_not_waited_out);
  tcase_add_test(tc, non_retryable_errors_are_not_retried);
  tcase_add_test(tc, stalled_stream_times_out);
  tcase_add_test(tc, stall_before_any_byte_is_retried);
  tcase_add_test(tc, cut_stream_is_an_error_not_a_short_answer);
  tcase_add_test(tc, malformed_and_html_bodies);
  tcase_add_test(tc, oversized_body_is_refused);
  tcase_add_test(tc, streamed_response_total_is_capped);
  tcase_add_test(tc, refused_connection_is_a_network_error);
  tcase_add_test(tc, concurrent_calls_overlap);
  tcase_add_test(tc, timeout_cancels_the_transfer);
  tcase_add_test(tc, config_errors_are_clear_and_keys_hidden);
  tcase_add_test(tc, tool_round_trip_messages);
  tcase_add_test(tc, rate_governor_spaces_requests);
  tcase_add_test(tc, borrowed_request_retries_and_reuse);
  tcase_add_test(tc, borrowed_request_cancelled_then_again);
  suite_add_tcase(s, tc);
  return s;
}
