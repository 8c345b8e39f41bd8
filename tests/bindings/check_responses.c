/* check_responses.c: the openai-responses: provider end to end over
 * loopback against lc-mockllm's Responses generator: text, reasoning
 * (summary shown, encrypted item kept and passed back unchanged before the
 * turn's calls, with the calls' item ids), function calls and
 * function_call_output, stateless requests, images as input_image, the
 * stream's end (a stream cut before response.completed is an error),
 * faults and retries, and luact.react in native mode through it. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static struct lc_mock mock;
static char out[16384], err[8192];

static void start(const char *script) { ck_assert_int_eq(lc_mock_start(&mock, script), 0); }
static void stop(void) { ck_assert_int_eq(lc_mock_stop(&mock), 0); }

/* A 1x1 PNG. */
static const char prelude[] =
    "PNG = '\\137PNG\\r\\n\\26\\n\\0\\0\\0\\rIHDR\\0\\0\\0\\1\\0\\0\\0\\1\\8\\6\\0\\0\\0'\n"
    "function opts(t)\n"
    "  t.model = t.model or 'openai-responses:mock-gpt'; t.base_url = BASE; t.retries = t.retries or 0\n"
    "  t.api_key = 'k'\n"
    "  return t\n"
    "end\n";

static int run(const char *code) {
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  return lc_test_lua_run_once(base, prelude, code, out, sizeof out, err, sizeof err);
}

#define TURN1                                                                          \
  "\"reasoning\":\"Need the weather.\",\"encrypted_content\":\"gAAAA-opaque\","      \
  "\"tool_calls\":[{\"id\":\"call_1\",\"name\":\"weather\",\"arguments\":{\"city\":\"Oslo\"}}," \
  "{\"id\":\"call_2\",\"name\":\"weather\",\"arguments\":{\"city\":\"Bergen\"}}],"     \
  "\"usage\":{\"input_tokens\":50,\"input_tokens_details\":{\"cached_tokens\":32},"    \
  "\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":12}}"

static const char turn1_code[] =
    "local r = assert(luact.llm.chat(opts{prompt='Weather?', stream=STREAM,\n"
    "  reasoning_effort='low', reasoning_summary='auto',\n"
    "  tools={{name='weather', parameters={type='object', properties={city={type='string'}}}}}}))\n"
    "local tc = r.tool_calls\n"
    "return table.concat({r.text or '-', r.reasoning, r.finish_reason, #tc, tc[1].id, tc[1].name,\n"
    "  tc[1].arguments.city, tc[2].arguments.city, tc[1].signature:sub(1, 3),\n"
    "  r.usage.input, r.usage.cached, r.usage.reasoning,\n"
    "  (r.reasoning_state:find('gAAAA-opaque', 1, true)) and 'enc' or 'noenc'}, '|')";

static void turn1(int stream) {
  start("[{\"reply\":{\"responses\":{" TURN1 "}}}]");
  char code[4096];
  snprintf(code, sizeof code, "STREAM = %s\n%s", stream ? "true" : "false", turn1_code);
  ck_assert_msg(run(code) == 0, "%s", err);
  ck_assert_str_eq(out, "-|Need the weather.|tool_calls|2|call_1|weather|Oslo|Bergen|fc_|50|32|12|enc");
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/responses"), 1);
  /* stateless, encrypted reasoning asked for, reasoning settings sent */
  lc_mock_assert_request_has(&mock, 0, "\"store\":false");
  lc_mock_assert_request_has(&mock, 0, "\"include\":[\"reasoning.encrypted_content\"]");
  lc_mock_assert_request_has(&mock, 0, "\"reasoning\":{\"effort\":\"low\",\"summary\":\"auto\"}");
  lc_mock_assert_request_has(&mock, 0, "\"tools\":[{\"type\":\"function\",\"name\":\"weather\"");
  stop();
}

START_TEST(calls_and_reasoning_nonstream) { turn1(0); }
END_TEST

START_TEST(calls_and_reasoning_stream) { turn1(1); }
END_TEST

/* The second turn sends the reasoning item back unchanged, then the calls
 * with their item ids, then the outputs. */
START_TEST(reasoning_passed_back) {
  start("[{\"match\":{\"body_contains\":\"function_call_output\"},"
        "\"reply\":{\"responses\":{\"text\":\"Sunny in both.\"}}},"
        "{\"reply\":{\"responses\":{" TURN1 "}}}]");
  ck_assert_msg(run("local tools = {{name='weather', parameters={type='object'}}}\n"
                    "local r = assert(luact.llm.chat(opts{prompt='Weather?', tools=tools,\n"
                    "  reasoning_summary='auto'}))\n"
                    "local msgs = {{role='user', content='Weather?'},\n"
                    "  {role='assistant', tool_calls=r.tool_calls, reasoning_state=r.reasoning_state}}\n"
                    "for _, c in ipairs(r.tool_calls) do\n"
                    "  msgs[#msgs+1] = {role='tool', tool_call_id=c.id, content='sunny'} end\n"
                    "local r2 = assert(luact.llm.chat(opts{messages=msgs, tools=tools,\n"
                    "  reasoning_summary='auto', stream=true}))\n"
                    "return r2.text .. '|' .. r2.finish_reason") == 0,
                "%s", err);
  ck_assert_str_eq(out, "Sunny in both.|stop");
  char *b = lc_mock_request_body(&mock, 1);
  ck_assert_ptr_nonnull(b);
  const char *rs = strstr(b, "\"type\":\"reasoning\"");
  const char *enc = strstr(b, "\"encrypted_content\":\"gAAAA-opaque\"");
  const char *fc = strstr(b, "\"type\":\"function_call\",\"call_id\":\"call_1\"");
  const char *fc_id = strstr(b, "\"id\":\"fc_");
  const char *out1 = strstr(b, "\"type\":\"function_call_output\",\"call_id\":\"call_1\"");
  ck_assert_msg(rs && enc && fc && fc_id && out1 && rs < fc && fc < out1, "%s", b);
  /* the output-only status is not sent back */
  ck_assert_msg(strstr(b, "\"status\"") == NULL, "%s", b);
  cJSON_free(b);
  stop();
}
END_TEST

START_TEST(previous_response_id_is_stateful) {
  start("[{\"reply\":{\"responses\":{\"text\":\"ok\",\"id\":\"resp_2\"}}}]");
  /* its own governor, configurable by its name */
  ck_assert_msg(run("luact.llm.limits{['openai-responses'] = {rpm = 6000}}\n"
                    "local r = assert(luact.llm.chat(opts{prompt='more', previous_response_id='resp_1',\n"
                    "  cache_key='tenant-7'}))\n"
                    "return r.text .. '|' .. r.id") == 0,
                "%s", err);
  ck_assert_str_eq(out, "ok|resp_2");
  lc_mock_assert_request_has(&mock, 0, "\"previous_response_id\":\"resp_1\"");
  lc_mock_assert_request_has(&mock, 0, "\"store\":true");
  lc_mock_assert_request_has(&mock, 0, "\"prompt_cache_key\":\"tenant-7\"");
  stop();
}
END_TEST

START_TEST(images_as_input_image) {
  start("[{\"reply\":{\"responses\":{\"text\":\"A dot.\"}}}]");
  ck_assert_msg(run("local r = assert(luact.llm.chat(opts{system='Be brief.', prompt='What is this?',\n"
                    "  images={{data=PNG, detail='low'}, 'https://example.org/cat.jpg'}}))\n"
                    "return r.text") == 0,
                "%s", err);
  ck_assert_str_eq(out, "A dot.");
  lc_mock_assert_request_has(&mock, 0, "\"instructions\":\"Be brief.\"");
  lc_mock_assert_request_has(&mock, 0,
                             "{\"type\":\"input_text\",\"text\":\"What is this?\"},"
                             "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBORw0KGgo");
  lc_mock_assert_request_has(&mock, 0, "\"detail\":\"low\"");
  lc_mock_assert_request_has(&mock, 0,
                             "{\"type\":\"input_image\",\"image_url\":\"https://example.org/cat.jpg\","
                             "\"detail\":\"auto\"}");
  stop();
}
END_TEST

/* A refused image is the script's mistake: it raises, nothing is sent. */
START_TEST(bad_images_raise) {
  start("[{\"reply\":{\"responses\":{\"text\":\"no\"}}}]");
  static const char *const bad[][2] = {
      {"images={{data='GIF8 not an image'}}", "not PNG, JPEG, GIF or WebP"},
      {"images={'http://example.org/x.png'}", "must be https:// or data:"},
      {"images={'data:image/png;base64,@@@@'}", "not valid base64"},
      {"images={{data=PNG, media_type='image/jpeg'}}", "does not match the bytes"},
      {"images={'/nonexistent/luact.png'}", "cannot open"},
      {"images={{data=PNG, detail='ultra'}}", "detail must be"},
      {"images={{data=PNG, url='https://x/y.png'}}", "exactly one of"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char code[512];
    snprintf(code, sizeof code, "return luact.llm.chat(opts{prompt='x', %s})", bad[i][0]);
    ck_assert_int_eq(run(code), 1);
    ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
  }
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/responses"), 0);
  stop();
}
END_TEST

/* No [DONE] in this format: a stream that stops before response.completed
 * is an error, never a short answer. */
START_TEST(cut_stream_is_an_error) {
  start("[{\"reply\":{\"responses\":{\"text\":\"a long enough answer to cut\"},"
        "\"cut_after_bytes\":900}}]");
  ck_assert_msg(run("local r, msg, code = luact.llm.chat(opts{prompt='x', stream=true})\n"
                    "return tostring(r) .. '|' .. code .. '|' .. msg") == 0,
                "%s", err);
  ck_assert_msg(strncmp(out, "nil|", 4) == 0, "%s", out);
  ck_assert_msg(strstr(out, "|network|") || strstr(out, "|bad_response|"), "%s", out);
  stop();
}
END_TEST

START_TEST(malformed_stream_is_bad_response) {
  start("[{\"reply\":{\"responses\":{\"text\":\"hi\"},\"malformed\":true}}]");
  ck_assert_msg(run("local r, msg, code = luact.llm.chat(opts{prompt='x', stream=true})\n"
                    "return tostring(r) .. '|' .. code") == 0,
                "%s", err);
  ck_assert_str_eq(out, "nil|bad_response");
  stop();
}
END_TEST

/* 429 with Retry-After, then the answer: retried as the other adapters. */
START_TEST(rate_limit_retried) {
  start("[{\"times\":1,\"reply\":{\"status\":429,\"retry_after\":0,"
        "\"json\":{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\","
        "\"code\":\"rate_limit_exceeded\"}}}},"
        "{\"reply\":{\"responses\":{\"text\":\"fine\"}}}]");
  ck_assert_msg(run("local r = assert(luact.llm.chat(opts{prompt='x', retries=2, stream=true}))\n"
                    "return r.text .. '|' .. r.attempts") == 0,
                "%s", err);
  ck_assert_str_eq(out, "fine|2");
  stop();
}
END_TEST

/* An in-stream failure (response.failed) keeps its kind. */
START_TEST(failed_response_keeps_its_kind) {
  start("[{\"reply\":{\"headers\":{\"content-type\":\"text/event-stream\"},\"body\":"
        "\"event: response.created\\ndata: {\\\"type\\\":\\\"response.created\\\",\\\"response\\\":"
        "{\\\"id\\\":\\\"r1\\\",\\\"status\\\":\\\"in_progress\\\",\\\"output\\\":[]}}\\n\\n"
        "event: response.failed\\ndata: {\\\"type\\\":\\\"response.failed\\\",\\\"response\\\":"
        "{\\\"id\\\":\\\"r1\\\",\\\"status\\\":\\\"failed\\\",\\\"output\\\":[],\\\"error\\\":"
        "{\\\"code\\\":\\\"server_error\\\",\\\"message\\\":\\\"boom\\\"}}}\\n\\n\"}}]");
  ck_assert_msg(run("local r, msg, code = luact.llm.chat(opts{prompt='x', stream=true})\n"
                    "return tostring(r) .. '|' .. code .. '|' .. msg") == 0,
                "%s", err);
  ck_assert_str_eq(out, "nil|server|boom");
  stop();
}
END_TEST

/* luact.react in native mode through the Responses adapter. */
START_TEST(react_native_through_responses) {
  start("[{\"match\":{\"body_contains\":\"function_call_output\"},"
        "\"reply\":{\"responses\":{\"tool_calls\":[{\"id\":\"f1\",\"name\":\"finish\","
        "\"arguments\":{\"answer\":\"3 km\"}}]}}},"
        "{\"reply\":{\"responses\":{\"reasoning\":\"Search first.\",\"encrypted_content\":\"enc-1\","
        "\"tool_calls\":[{\"id\":\"c1\",\"name\":\"search\",\"arguments\":{\"q\":\"Colorado\"}}]}}}]");
  ck_assert_msg(run("local search = luact.tool{name='search', description='Search.',\n"
                    "  params={type='object', properties={q={type='string'}}, required={'q'}},\n"
                    "  fn=function(a) return 'result for ' .. a.q end}\n"
                    "local r = luact.react(opts{question='How long?', tools={search}, mode='native',\n"
                    "  stream=true, reasoning_summary='auto', verbose=false})\n"
                    "return table.concat({r.status, r.answer, #r.steps, r.steps[1].action,\n"
                    "  r.steps[1].observation}, '|')") == 0,
                "%s", err);
  ck_assert_str_eq(out, "finished|3 km|2|search|result for Colorado");
  ck_assert_int_eq(lc_mock_count_requests(&mock, "/v1/responses"), 2);
  char *b = lc_mock_request_body(&mock, 1);
  const char *rs = strstr(b, "\"encrypted_content\":\"enc-1\"");
  const char *fc = strstr(b, "\"type\":\"function_call\",\"call_id\":\"c1\"");
  const char *fo = strstr(b, "\"type\":\"function_call_output\",\"call_id\":\"c1\","
                             "\"output\":\"result for Colorado\"");
  ck_assert_msg(rs && fc && fo && rs < fc && fc < fo, "%s", b);
  cJSON_free(b);
  stop();
}
END_TEST

Suite *responses_suite(void) {
  Suite *s = suite_create("responses");
  TCase *tc = tcase_create("responses");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, calls_and_reasoning_nonstream);
  tcase_add_test(tc, calls_and_reasoning_stream);
  tcase_add_test(tc, reasoning_passed_back);
  tcase_add_test(tc, previous_response_id_is_stateful);
  tcase_add_test(tc, images_as_input_image);
  tcase_add_test(tc, bad_images_raise);
  tcase_add_test(tc, cut_stream_is_an_error);
  tcase_add_test(tc, malformed_stream_is_bad_response);
  tcase_add_test(tc, rate_limit_retried);
  tcase_add_test(tc, failed_response_keeps_its_kind);
  tcase_add_test(tc, react_native_through_responses);
  suite_add_tcase(s, tc);
  return s;
}
