/* check_llm_build.c: request building. Each provider's body for a
 * normalised request equal to a recorded tool-result follow-up must match
 * the recorded request on the fields that matter; every request field maps;
 * the API key goes in a header and never in the body. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "jsonw.h"
#include "llm.h"
#include "util_common.h"

#define KEY "sk-test-DO-NOT-LEAK-123"

static cJSON *fixture_request(const char *id) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.json", lc_test_fixtures_dir(), id);
  size_t n;
  char *s = lc_test_read_file(path, &n);
  ck_assert_ptr_nonnull(s);
  cJSON *fx = cJSON_ParseWithLength(s, n);
  free(s);
  cJSON *body =
      cJSON_DetachItemFromObject(cJSON_GetObjectItem(fx, "request"), "body");
  cJSON_Delete(fx);
  return body;
}

static struct lc_llm_msg msg(enum lc_llm_role role, const char *content) {
  struct lc_llm_msg m;
  memset(&m, 0, sizeof m);
  m.role = role;
  m.content = content ? lc_strdup(content) : NULL;
  m.content_len = content ? strlen(content) : 0;
  return m;
}

static void fill_call(struct lc_llm_tool_call *c, const char *id,
                      const char *name, const char *args_json) {
  c->id = id ? lc_strdup(id) : NULL;
  c->name = lc_strdup(name);
  c->args_json = lc_strdup(args_json);
  c->args = cJSON_Parse(args_json);
}

static struct lc_llm_tool_call *one_call(const char *id, const char *name,
                                         const char *args_json) {
  struct lc_llm_tool_call *c = lc_calloc(1, sizeof *c);
  fill_call(c, id, name, args_json);
  return c;
}

/* Builds, checks the key is only in a header, returns the parsed body. */
static cJSON *build(const struct lc_llm_adapter *ad,
                    const struct lc_llm_request *q, struct lc_llm_http *h) {
  char err[256] = "";
  ck_assert_msg(ad->build(q, h, err, sizeof err) == 0, "build: %s", err);
  ck_assert_ptr_nonnull(h->url);
  ck_assert_uint_eq(h->body_len, strlen(h->body));
  ck_assert_msg(strstr(h->body, KEY) == NULL, "key in body");
  ck_assert(strstr(h->url, KEY) == NULL);
  cJSON *b = cJSON_ParseWithLength(h->body, h->body_len);
  ck_assert_ptr_nonnull(b);
  return b;
}

static int has_header(const struct lc_llm_http *h, const char *line) {
  for (size_t i = 0; i < h->n_headers; i++)
    if (strcmp(h->headers[i], line) == 0)
      return 1;
  return 0;
}

static int header_count_with(const struct lc_llm_http *h, const char *sub) {
  int n = 0;
  for (size_t i = 0; i < h->n_headers; i++)
    n += strstr(h->headers[i], sub) != NULL;
  return n;
}

static void same(const cJSON *got, const cJSON *want, const char *what) {
  char *g = cJSON_PrintUnformatted(got), *w = cJSON_PrintUnformatted(want);
  ck_assert_msg(cJSON_Compare(got, want, 1), "%s:\n got %s\nwant %s", what, g,
                w);
  free(g);
  free(w);
}

START_TEST(openai_toolresult_matches_recording) {
  cJSON *rec = fixture_request("openai-chat-toolresult-stream-01");
  const cJSON *rtool = cJSON_GetArrayItem(cJSON_GetObjectItem(rec, "tools"), 0);
  const cJSON *rfn = cJSON_GetObjectItem(rtool, "function");
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_OPENAI;
  q.model = lc_strdup("gpt-4o-mini");
  q.api_key = lc_strdup(KEY);
  q.stream = 1;
  q.n_msgs = 3;
  q.msgs = lc_calloc(3, sizeof *q.msgs);
  q.msgs[0] = msg(LC_ROLE_USER,
                  "What is the capital of the UK? Use the tool, then answer.");
  q.msgs[1] = msg(LC_ROLE_ASSISTANT, NULL);
  q.msgs[1].tool_calls = one_call("call_ZR5UUuTt3pf61kjwAJIYdVMj",
                                  "get_capital", "{\"country\":\"UK\"}");
  q.msgs[1].n_tool_calls = 1;
  q.msgs[2] = msg(LC_ROLE_TOOL, "London");
  q.msgs[2].tool_call_id = lc_strdup("call_ZR5UUuTt3pf61kjwAJIYdVMj");
  q.msgs[2].name = lc_strdup("get_capital");
  q.n_tools = 1;
  q.tools = lc_calloc(1, sizeof *q.tools);
  q.tools[0].name = lc_strdup("get_capital");
  q.tools[0].description = lc_strdup("");
  q.tools[0].schema =
      cJSON_Duplicate(cJSON_GetObjectItem(rfn, "parameters"), 1);
  q.tools[0].strict = 1;

  struct lc_llm_http h;
  cJSON *b = build(&lc_llm_openai, &q, &h);
  ck_assert_str_eq(h.url, "https://api.openai.com/v1/chat/completions");
  ck_assert(has_header(&h, "Authorization: Bearer " KEY));
  ck_assert(has_header(&h, "Content-Type: application/json"));
  ck_assert(has_header(&h, "Accept: text/event-stream"));
  same(cJSON_GetObjectItem(b, "model"), cJSON_GetObjectItem(rec, "model"),
       "model");
  same(cJSON_GetObjectItem(b, "messages"), cJSON_GetObjectItem(rec, "messages"),
       "messages");
  same(cJSON_GetObjectItem(b, "tools"), cJSON_GetObjectItem(rec, "tools"),
       "tools");
  same(cJSON_GetObjectItem(b, "stream"), cJSON_GetObjectItem(rec, "stream"),
       "stream");
  same(cJSON_GetObjectItem(b, "stream_options"),
       cJSON_GetObjectItem(rec, "stream_options"), "stream_options");
  /* tool_choice "auto" is the default: we leave it out */
  ck_assert_ptr_null(cJSON_GetObjectItem(b, "tool_choice"));
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  cJSON_Delete(rec);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(anthropic_toolresult_matches_recording) {
  cJSON *rec = fixture_request("anthropic-messages-toolresult-nonstream-01");
  const cJSON *rtools = cJSON_GetObjectItem(rec, "tools");
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_ANTHROPIC;
  q.model = lc_strdup("claude-3-5-haiku-20241022");
  q.api_key = lc_strdup(KEY);
  q.set = LC_SET_MAX_TOKENS;
  q.max_tokens = 1024;
  q.n_msgs = 3;
  q.msgs = lc_calloc(3, sizeof *q.msgs);
  q.msgs[0] = msg(LC_ROLE_USER,
                  "What is the weather and current time in San Francisco?");
  q.msgs[1] =
      msg(LC_ROLE_ASSISTANT,
          "I'll help you get the weather and current time in San Francisco.");
  q.msgs[1].tool_calls = one_call("call_1", "get_weather",
                                  "{\"location\": \"San Francisco, CA\"}");
  q.msgs[1].n_tool_calls = 1;
  q.msgs[2] = msg(LC_ROLE_TOOL, "Sunny and 65 degrees Fahrenheit");
  q.msgs[2].tool_call_id = lc_strdup("call_1");
  q.msgs[2].name = lc_strdup("get_weather");
  q.n_tools = 2;
  q.tools = lc_calloc(2, sizeof *q.tools);
  for (int i = 0; i < 2; i++) {
    const cJSON *t = cJSON_GetArrayItem(rtools, i);
    q.tools[i].name = lc_strdup(cJSON_GetObjectItem(t, "name")->valuestring);
    q.tools[i].description =
        lc_strdup(cJSON_GetObjectItem(t, "description")->valuestring);
    q.tools[i].schema =
        cJSON_Duplicate(cJSON_GetObjectItem(t, "input_schema"), 1);
  }
  struct lc_llm_http h;
  cJSON *b = build(&lc_llm_anthropic, &q, &h);
  ck_assert_str_eq(h.url, "https://api.anthropic.com/v1/messages");
  ck_assert(has_header(&h, "x-api-key: " KEY));
  ck_assert(has_header(&h, "anthropic-version: 2023-06-01"));
  ck_assert(has_header(&h, "Content-Type: application/json"));
  ck_assert_int_eq(header_count_with(&h, "Authorization"), 0);
  same(cJSON_GetObjectItem(b, "model"), cJSON_GetObjectItem(rec, "model"),
       "model");
  same(cJSON_GetObjectItem(b, "max_tokens"),
       cJSON_GetObjectItem(rec, "max_tokens"), "max_tokens");
  same(cJSON_GetObjectItem(b, "messages"), cJSON_GetObjectItem(rec, "messages"),
       "messages");
  same(cJSON_GetObjectItem(b, "tools"), rtools, "tools");
  ck_assert_ptr_null(cJSON_GetObjectItem(b, "stream"));
  ck_assert_ptr_null(cJSON_GetObjectItem(b, "system"));
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  cJSON_Delete(rec);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(ollama_toolresult_matches_recording) {
  cJSON *rec = fixture_request("ollama-chat-toolresult-nonstream-01");
  const cJSON *rmsgs = cJSON_GetObjectItem(rec, "messages");
  const cJSON *rtool = cJSON_GetArrayItem(cJSON_GetObjectItem(rec, "tools"), 0);
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.provider = LC_PROV_OLLAMA;
  q.model = lc_strdup("qwen3:8b");
  q.base_url = lc_strdup("localhost:11434");
  q.n_msgs = 3;
  q.msgs = lc_calloc(3, sizeof *q.msgs);
  q.msgs[0] = msg(LC_ROLE_USER, "Which date do we have today?");
  q.msgs[1] = msg(LC_ROLE_ASSISTANT, "");
  q.msgs[1].tool_calls = one_call("call_0", "getTime", "{}");
  q.msgs[1].n_tool_calls = 1;
  q.msgs[2] = msg(LC_ROLE_TOOL,
                  "2010-08-13 20:15:00.033067589 +0100 CET m=+32.849928139");
  q.msgs[2].tool_call_id = lc_strdup("call_0");
  q.msgs[2].name = lc_strdup("getTime");
  q.n_tools = 1;
  q.tools = lc_calloc(1, sizeof *q.tools);
  const cJSON *fn = cJSON_GetObjectItem(rtool, "function");
  q.tools[0].name = lc_strdup("getTime");
  q.tools[0].description =
      lc_strdup(cJSON_GetObjectItem(fn, "description")->valuestring);
  q.tools[0].schema = cJSON_Duplicate(cJSON_GetObjectItem(fn, "parameters"), 1);
  struct lc_llm_http h;
  cJSON *b = build(&lc_llm_ollama, &q, &h);
  ck_assert_str_eq(h.url, "http://localhost:11434/api/chat");
  ck_assert_int_eq(header_count_with(&h, "Authorization"), 0);
  ck_assert(has_header(&h, "Accept: application/json"));
  same(cJSON_GetObjectItem(b, "model"), cJSON_GetObjectItem(rec, "model"),
       "model");
  same(cJSON_GetObjectItem(b, "stream"), cJSON_GetObjectItem(rec, "stream"),
       "stream");
  same(cJSON_GetObjectItem(b, "tools"), cJSON_GetObjectItem(rec, "tools"),
       "tools");
  const cJSON *bm = cJSON_GetObjectItem(b, "messages");
  ck_assert_int_eq(cJSON_GetArraySize(bm), 3);
  same(cJSON_GetArrayItem(bm, 0), cJSON_GetArrayItem(rmsgs, 0), "user message");
  /* arguments as an object, no call id: exactly as recorded */
  same(cJSON_GetArrayItem(bm, 1), cJSON_GetArrayItem(rmsgs, 1),
       "assistant message");
  const cJSON *tm = cJSON_GetArrayItem(bm, 2),
              *rm = cJSON_GetArrayItem(rmsgs, 2);
  same(cJSON_GetObjectItem(tm, "role"), cJSON_GetObjectItem(rm, "role"),
       "tool role");
  same(cJSON_GetObjectItem(tm, "content"), cJSON_GetObjectItem(rm, "content"),
       "tool content");
  /* newer Ollama matches results to calls by name (the recording predates it)
   */
  ck_assert_str_eq(cJSON_GetObjectItem(tm, "tool_name")->valuestring,
                   "getTime");
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  cJSON_Delete(rec);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

/* A request with every optional field set. */
static void full_request(struct lc_llm_request *q, enum lc_llm_provider p) {
  memset(q, 0, sizeof *q);
  q->provider = p;
  q->model = lc_strdup("m1");
  q->api_key = lc_strdup(KEY);
  q->n_msgs = 6;
  q->msgs = lc_calloc(6, sizeof *q->msgs);
  q->msgs[0] = msg(LC_ROLE_SYSTEM, "Be brief.");
  q->msgs[1] = msg(LC_ROLE_SYSTEM, "Use tools.");
  q->msgs[2] = msg(LC_ROLE_USER, "hi");
  q->msgs[3] = msg(LC_ROLE_ASSISTANT, NULL);
  q->msgs[3].n_tool_calls = 2;
  q->msgs[3].tool_calls = lc_calloc(2, sizeof(struct lc_llm_tool_call));
  fill_call(&q->msgs[3].tool_calls[0], "c1", "f", "{\"a\":1}");
  fill_call(&q->msgs[3].tool_calls[1], "c2", "g", "");
  q->msgs[4] = msg(LC_ROLE_TOOL, "r1");
  q->msgs[4].tool_call_id = lc_strdup("c1");
  q->msgs[4].name = lc_strdup("f");
  q->msgs[5] = msg(LC_ROLE_TOOL, "boom");
  q->msgs[5].tool_call_id = lc_strdup("c2");
  q->msgs[5].name = lc_strdup("g");
  q->msgs[5].is_error = 1;
  q->n_tools = 1;
  q->tools = lc_calloc(1, sizeof *q->tools);
  q->tools[0].name = lc_strdup("f");
  q->tools[0].schema = cJSON_Parse("{\"type\":\"object\"}");
  q->tool_choice = LC_TOOL_CHOICE_NAMED;
  q->tool_choice_name = lc_strdup("f");
  q->set = LC_SET_TEMPERATURE | LC_SET_TOP_P | LC_SET_TOP_K |
           LC_SET_MAX_TOKENS | LC_SET_SEED;
  q->temperature = 0.5;
  q->top_p = 0.9;
  q->top_k = 40;
  q->max_tokens = 100;
  q->seed = 42;
  q->n_stop = 1;
  q->stop = lc_calloc(1, sizeof *q->stop);
  q->stop[0] = lc_strdup("END");
  q->format = LC_FORMAT_JSON_SCHEMA;
  q->response_schema = cJSON_Parse("{\"type\":\"object\"}");
  q->stream = 1;
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  ck_assert_msg(cJSON_IsNumber(v), "%s missing", k);
  return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  ck_assert_msg(cJSON_IsString(v), "%s missing", k);
  return v->valuestring;
}

START_TEST(openai_every_field) {
  struct lc_llm_request q;
  full_request(&q, LC_PROV_OPENAI);
  q.base_url = lc_strdup("http://127.0.0.1:8080/v1/");
  struct lc_llm_http h;
  cJSON *b = build(&lc_llm_openai, &q, &h);
  ck_assert_str_eq(h.url, "http://127.0.0.1:8080/v1/chat/completions");
  const cJSON *m = cJSON_GetObjectItem(b, "messages");
  ck_assert_int_eq(cJSON_GetArraySize(m), 6);
  ck_assert_str_eq(str(cJSON_GetArrayItem(m, 0), "role"), "system");
  const cJSON *tc = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "tool_calls");
  ck_assert_str_eq(
      str(cJSON_GetObjectItem(cJSON_GetArrayItem(tc, 1), "function"),
          "arguments"),
      "{}");
  ck_assert_str_eq(str(cJSON_GetArrayItem(m, 5), "tool_call_id"), "c2");
  const cJSON *ch = cJSON_GetObjectItem(b, "tool_choice");
  ck_assert_str_eq(str(ch, "type"), "function");
  ck_assert_str_eq(str(cJSON_GetObjectItem(ch, "function"), "name"), "f");
  ck_assert(num(b, "temperature") == 0.5);
  ck_assert(num(b, "top_p") == 0.9);
  ck_assert(num(b, "max_tokens") == 100);
  ck_assert(num(b, "seed") == 42);
  ck_assert_str_eq(
      cJSON_GetArrayItem(cJSON_GetObjectItem(b, "stop"), 0)->valuestring,
      "END");
  const cJSON *rf = cJSON_GetObjectItem(b, "response_format");
  ck_assert_str_eq(str(rf, "type"), "json_schema");
  ck_assert_str_eq(str(cJSON_GetObjectItem(rf, "json_schema"), "name"),
                   "response");
  ck_assert(cJSON_IsTrue(
      cJSON_GetObjectItem(cJSON_GetObjectItem(rf, "json_schema"), "strict")));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(
      cJSON_GetObjectItem(b, "stream_options"), "include_usage")));
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  /* other choices, JSON mode, no key: no Authorization header */
  lc_free(q.api_key);
  q.api_key = NULL;
  q.tool_choice = LC_TOOL_CHOICE_REQUIRED;
  q.format = LC_FORMAT_JSON;
  q.stream = 0;
  b = build(&lc_llm_openai, &q, &h);
  ck_assert_int_eq(header_count_with(&h, "Authorization"), 0);
  ck_assert(has_header(&h, "Accept: application/json"));
  ck_assert_str_eq(str(b, "tool_choice"), "required");
  ck_assert_str_eq(str(cJSON_GetObjectItem(b, "response_format"), "type"),
                   "json_object");
  ck_assert_ptr_null(cJSON_GetObjectItem(b, "stream"));
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  q.tool_choice = LC_TOOL_CHOICE_NONE;
  b = build(&lc_llm_openai, &q, &h);
  ck_assert_str_eq(str(b, "tool_choice"), "none");
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(anthropic_every_field) {
  struct lc_llm_request q;
  full_request(&q, LC_PROV_ANTHROPIC);
  q.msgs[4].content_len = 2;
  struct lc_llm_http h;
  cJSON *b = build(&lc_llm_anthropic, &q, &h);
  ck_assert_str_eq(str(b, "system"), "Be brief.\n\nUse tools.");
  const cJSON *m = cJSON_GetObjectItem(b, "messages");
  ck_assert_int_eq(cJSON_GetArraySize(m),
                   3); /* user, assistant, merged results */
  const cJSON *asst = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content");
  ck_assert_int_eq(cJSON_GetArraySize(asst), 2); /* no empty text block */
  ck_assert_str_eq(str(cJSON_GetArrayItem(asst, 1), "type"), "tool_use");
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(
                       cJSON_GetArrayItem(asst, 1), "input")),
                   0);
  const cJSON *res = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "content");
  ck_assert_str_eq(str(cJSON_GetArrayItem(m, 2), "role"), "user");
  ck_assert_int_eq(cJSON_GetArraySize(res), 2);
  ck_assert_str_eq(str(cJSON_GetArrayItem(res, 0), "tool_use_id"), "c1");
  ck_assert_ptr_null(
      cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "is_error"));
  ck_assert(cJSON_IsTrue(
      cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "is_error")));
  const cJSON *ch = cJSON_GetObjectItem(b, "tool_choice");
  ck_assert_str_eq(str(ch, "type"), "tool");
  ck_assert_str_eq(str(ch, "name"), "f");
  ck_assert(num(b, "temperature") == 0.5);
  ck_assert(num(b, "top_p") == 0.9);
  ck_assert(num(b, "top_k") == 40);
  ck_assert(num(b, "max_tokens") == 100);
  ck_assert_ptr_null(cJSON_GetObjectItem(b, "seed"));
  ck_assert_str_eq(
      cJSON_GetArrayItem(cJSON_GetObjectItem(b, "stop_sequences"), 0)
          ->valuestring,
      "END");
  ck_assert_str_eq(str(cJSON_GetObjectItem(b, "output_format"), "type"),
                   "json_schema");
  ck_assert(has_header(&h, "anthropic-beta: structured-outputs-2025-11-13"));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "stream")));
  ck_assert(has_header(&h, "Accept: text/event-stream"));
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  /* defaults: max_tokens 4096; required -> any; none -> none */
  q.set = 0;
  q.tool_choice = LC_TOOL_CHOICE_REQUIRED;
  q.format = LC_FORMAT_TEXT;
  b = build(&lc_llm_anthropic, &q, &h);
  ck_assert(num(b, "max_tokens") == 4096);
  ck_assert_str_eq(str(cJSON_GetObjectItem(b, "tool_choice"), "type"), "any");
  ck_assert_int_eq(header_count_with(&h, "anthropic-beta"), 0);
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  q.tool_choice = LC_TOOL_CHOICE_NONE;
  b = build(&lc_llm_anthropic, &q, &h);
  ck_assert_str_eq(str(cJSON_GetObjectItem(b, "tool_choice"), "type"), "none");
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  /* arguments that are not JSON cannot become an input object */
  lc_free(q.msgs[3].tool_calls[0].args_json);
  cJSON_Delete(q.msgs[3].tool_calls[0].args);
  q.msgs[3].tool_calls[0].args = NULL;
  q.msgs[3].tool_calls[0].args_json = lc_strdup("{\"a\":");
  char err[256];
  ck_assert_int_eq(lc_llm_anthropic.build(&q, &h, err, sizeof err), LC_EINVAL);
  ck_assert(strstr(err, "c1") != NULL);
  ck_assert_ptr_null(h.body);
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(ollama_every_field) {
  struct lc_llm_request q;
  full_request(&q, LC_PROV_OLLAMA);
  struct lc_llm_http h;
  cJSON *b = build(&lc_llm_ollama, &q, &h);
  ck_assert_str_eq(h.url, "http://127.0.0.1:11434/api/chat");
  ck_assert(has_header(&h, "Authorization: Bearer " KEY)); /* Ollama Cloud */
  ck_assert(has_header(&h, "Accept: application/x-ndjson"));
  const cJSON *m = cJSON_GetObjectItem(b, "messages");
  ck_assert_int_eq(cJSON_GetArraySize(m), 6);
  const cJSON *tc = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "tool_calls");
  const cJSON *a0 = cJSON_GetObjectItem(
      cJSON_GetObjectItem(cJSON_GetArrayItem(tc, 0), "function"), "arguments");
  ck_assert(cJSON_IsObject(a0));
  ck_assert(num(a0, "a") == 1);
  ck_assert_str_eq(str(cJSON_GetArrayItem(m, 5), "tool_name"), "g");
  const cJSON *o = cJSON_GetObjectItem(b, "options");
  ck_assert(num(o, "temperature") == 0.5);
  ck_assert(num(o, "top_p") == 0.9);
  ck_assert(num(o, "top_k") == 40);
  ck_assert(num(o, "num_predict") == 100);
  ck_assert(num(o, "seed") == 42);
  ck_assert_str_eq(
      cJSON_GetArrayItem(cJSON_GetObjectItem(o, "stop"), 0)->valuestring,
      "END");
  ck_assert(cJSON_IsObject(cJSON_GetObjectItem(b, "format")));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "stream")));
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b, "tools")), 1);
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  q.format = LC_FORMAT_JSON;
  q.tool_choice = LC_TOOL_CHOICE_NONE;
  q.stream = 0;
  q.set = 0;
  q.n_stop = 0;
  b = build(&lc_llm_ollama, &q, &h);
  ck_assert_str_eq(str(b, "format"), "json");
  ck_assert_ptr_null(
      cJSON_GetObjectItem(b, "tools")); /* no tool_choice in Ollama */
  ck_assert_ptr_null(cJSON_GetObjectItem(b, "options"));
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(b, "stream")));
  cJSON_Delete(b);
  lc_llm_http_free(&h);
  q.n_stop = 1;
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(ollama_host_forms) {
  static const char *cases[][2] = {
      {"127.0.0.1:11434", "http://127.0.0.1:11434/api/chat"},
      {"http://gpu-box:8000", "http://gpu-box:8000/api/chat"},
      {"https://ollama.com", "https://ollama.com/api/chat"},
      {"https://ollama.com/", "https://ollama.com/api/chat"},
      {"gpu-box", "http://gpu-box:11434/api/chat"},
      {"[::1]:9999", "http://[::1]:9999/api/chat"},
      {"[::1]", "http://[::1]:11434/api/chat"},
      {"", "http://127.0.0.1:11434/api/chat"},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(cases); i++) {
    struct lc_llm_request q;
    memset(&q, 0, sizeof q);
    q.model = lc_strdup("m");
    q.base_url = lc_strdup(cases[i][0]);
    struct lc_llm_http h;
    cJSON *b = build(&lc_llm_ollama, &q, &h);
    ck_assert_str_eq(h.url, cases[i][1]);
    cJSON_Delete(b);
    lc_llm_http_free(&h);
    lc_llm_request_free(&q);
  }
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(missing_model) {
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  struct lc_llm_http h;
  char err[128];
  ck_assert_int_eq(lc_llm_openai.build(&q, &h, err, sizeof err), LC_EINVAL);
  ck_assert_str_eq(err, "no model given");
  ck_assert_int_eq(lc_llm_anthropic.build(&q, &h, err, sizeof err), LC_EINVAL);
  ck_assert_int_eq(lc_llm_ollama.build(&q, &h, err, sizeof err), LC_EINVAL);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST


/* ---- the body prefix cache ---- */

static const struct lc_llm_adapter *const adapters[] = {
    &lc_llm_openai, &lc_llm_anthropic, &lc_llm_ollama};
static const enum lc_llm_provider provs[] = {LC_PROV_OPENAI, LC_PROV_ANTHROPIC,
                                             LC_PROV_OLLAMA};

static void same_bytes(const char *a, size_t na, const char *b, size_t nb,
                       const char *what) {
  ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "%s differs:\n%.*s\n%.*s",
                what, (int)na, a, (int)nb, b);
}

/* The body built from scratch (no cache), copied out (malloc). */
static char *body_fresh(const struct lc_llm_adapter *ad,
                        struct lc_llm_request *q, size_t *len) {
  int fill = q->cache_wire;
  q->cache_wire = 0;
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_msg(ad->build(q, &h, err, sizeof err) == 0, "build: %s", err);
  q->cache_wire = fill;
  char *b = malloc(h.body_len + 1);
  ck_assert_ptr_nonnull(b);
  memcpy(b, h.body, h.body_len + 1);
  *len = h.body_len;
  lc_llm_http_free(&h);
  return b;
}

/* Builds q through its cache, checks the body is the one a build from
 * scratch writes and, for the adapters with a prefix, that it is the
 * cache's lent buffer covering every message; then gives it back as a
 * call does. */
static void build_cached(const struct lc_llm_adapter *ad,
                         struct lc_llm_request *q, const char *what) {
  size_t n_ref;
  char *ref = body_fresh(ad, q, &n_ref);
  struct lc_llm_prefix before = q->prefix;
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_msg(ad->build(q, &h, err, sizeof err) == 0, "build: %s", err);
  same_bytes(ref, n_ref, h.body, h.body_len, what);
  free(ref);
  if (ad != &lc_llm_anthropic && q->cache_wire) {
    ck_assert_ptr_eq(q->prefix.lent, h.body);
    ck_assert_ptr_null(q->prefix.data);
    ck_assert_uint_eq(q->prefix.n_msgs, q->n_msgs);
    ck_assert_int_eq(q->prefix.prov, (int)q->provider);
    /* The prefix ends where the last message does: "]}" follows. */
    ck_assert_uint_eq(q->prefix.len + 2, h.body_len);
    char *body = h.body;
    lc_llm_prefix_give_back(q, &h.body);
    ck_assert_ptr_null(h.body);
    ck_assert_ptr_eq(q->prefix.data, body);
    ck_assert_ptr_null(q->prefix.lent);
    /* The cache holds no slack while the agent waits. */
    ck_assert_uint_eq(q->prefix.cap, n_ref + 1);
  } else {
    /* Anthropic, or not asked: another provider's prefix stays as it was. */
    ck_assert_ptr_eq(q->prefix.data, before.data);
    ck_assert_ptr_eq(q->prefix.lent, before.lent);
    ck_assert_uint_eq(q->prefix.n_msgs, before.n_msgs);
  }
  lc_llm_http_free(&h);
}

/* Appends an assistant message (escapes, a NUL kept by its length, a
 * call) and its tool result (control byte, unicode, quotes). */
static void grow(struct lc_llm_request *q, int turn) {
  q->msgs = lc_realloc(q->msgs, (q->n_msgs + 2) * sizeof *q->msgs);
  ck_assert_ptr_nonnull(q->msgs);
  char id[16];
  snprintf(id, sizeof id, "c%d", 10 + turn);
  struct lc_llm_msg *a = &q->msgs[q->n_msgs++];
  *a = msg(LC_ROLE_ASSISTANT, "say \"x\"\tthen\n\\ y");
  a->content[3] = '\0'; /* "say\0..." with the length kept */
  a->n_tool_calls = 1;
  a->tool_calls = one_call(id, "f", "{\"a\":[1,2,{\"b\":null}],\"s\":\"\\u00e9\\n\"}");
  struct lc_llm_msg *t = &q->msgs[q->n_msgs++];
  *t = msg(LC_ROLE_TOOL, "\x01 ctl \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ </x>");
  t->tool_call_id = lc_strdup(id);
  t->name = lc_strdup("f");
}

static void add_second_tool(struct lc_llm_request *q) {
  /* A second tool given as text, and strict, to cover both schema forms. */
  q->tools = lc_realloc(q->tools, 2 * sizeof *q->tools);
  memset(&q->tools[1], 0, sizeof q->tools[1]);
  q->tools[1].name = lc_strdup("g");
  q->tools[1].description = lc_strdup("the \"g\" tool");
  q->tools[1].schema_json = lc_strdup("{\"type\":\"object\",\"properties\":{}}");
  q->tools[1].strict = 1;
  q->n_tools = 2;
}

/* Over several turns the body built by extending the cached prefix is
 * byte for byte the one built from scratch, for every provider, streaming
 * or not, with tools, tool_choice, sampling and a response format; a
 * change the cache sees (head, last message) or is told about (cut, drop)
 * rebuilds; a prefix another provider built is not used; a body never
 * given back only costs a rebuild. */
START_TEST(prefix_same_body) {
  const struct lc_llm_adapter *ad = adapters[_i % 3];
  struct lc_llm_request q;
  full_request(&q, provs[_i % 3]);
  q.stream = _i >= 3;
  q.base_url = lc_strdup("http://127.0.0.1:8080/v1");
  add_second_tool(&q);

  build_cached(ad, &q, "not asked to cache"); /* cache_wire off */
  ck_assert_ptr_null(q.tools_wire.data);
  q.cache_wire = 1;
  build_cached(ad, &q, "cold");
  /* OpenAI and Ollama: the tools are in the prefix, not kept apart. */
  if (ad == &lc_llm_anthropic)
    ck_assert_ptr_nonnull(q.tools_wire.data);
  else
    ck_assert_ptr_null(q.tools_wire.data);
  build_cached(ad, &q, "warm, nothing new");
  for (int turn = 0; turn < 4; turn++) {
    grow(&q, turn);
    build_cached(ad, &q, "grown");
  }
  size_t covered = q.prefix.n_msgs;

  /* The last message replaced without a word: seen, rewritten. */
  struct lc_llm_msg *last = &q.msgs[q.n_msgs - 1];
  lc_free(last->content);
  last->content = lc_strdup("replaced");
  last->content_len = 8;
  build_cached(ad, &q, "last replaced");
  /* Cut before the last message, then replaced: only that one written. */
  lc_llm_prefix_cut(&q, q.n_msgs - 1);
  if (ad != &lc_llm_anthropic) {
    ck_assert_uint_eq(q.prefix.n_msgs, covered - 1);
    ck_assert_ptr_nonnull(q.prefix.data);
  }
  lc_free(last->content);
  last->content = lc_strdup("replaced again, longer");
  last->content_len = strlen(last->content);
  build_cached(ad, &q, "cut, then replaced");
  /* A message in the middle changed: announced by a drop. */
  lc_free(q.msgs[2].content);
  q.msgs[2].content = lc_strdup("hello \"again\"");
  q.msgs[2].content_len = strlen(q.msgs[2].content);
  lc_llm_prefix_cut(&q, 2); /* more than the last one: drops */
  ck_assert_ptr_null(q.prefix.data);
  ck_assert_uint_eq(q.prefix.n_msgs, 0);
  build_cached(ad, &q, "middle changed");

  /* Settings changed in place: the head's fingerprint sees them. */
  q.temperature = 0.25;
  build_cached(ad, &q, "temperature");
  q.stream = !q.stream;
  build_cached(ad, &q, "stream");
  q.tool_choice = LC_TOOL_CHOICE_REQUIRED;
  build_cached(ad, &q, "tool_choice");
  lc_free(q.stop[0]);
  q.stop[0] = lc_strdup("STOP");
  build_cached(ad, &q, "stop");
  q.format = LC_FORMAT_TEXT;
  build_cached(ad, &q, "format");
  /* One tool fewer: seen by the fingerprint. */
  lc_free(q.tools[1].name);
  lc_free(q.tools[1].description);
  lc_free(q.tools[1].schema_json);
  q.n_tools = 1;
  lc_llm_wire_drop(&q.tools_wire); /* Anthropic's cache is told */
  build_cached(ad, &q, "one tool fewer");
  /* A tool's schema replaced in place: the cache must be told. */
  cJSON_AddItemToObject(q.tools[0].schema, "required", cJSON_CreateArray());
  lc_llm_wire_drop(&q.tools_wire);
  lc_llm_prefix_drop(&q);
  build_cached(ad, &q, "schema changed, dropped");

  /* Another provider's prefix is not used, and theirs not ours. */
  for (int k = 0; k < 3; k++) {
    if (adapters[k] == ad)
      continue;
    q.provider = provs[k];
    build_cached(adapters[k], &q, "other provider");
    q.provider = provs[_i % 3];
    build_cached(ad, &q, "back to ours");
  }

  /* A body never given back: the next build starts afresh. */
  struct lc_llm_http h;
  char err[256];
  ck_assert_int_eq(ad->build(&q, &h, err, sizeof err), 0);
  lc_llm_http_free(&h);
  grow(&q, 9);
  build_cached(ad, &q, "after a body was kept");

  lc_llm_request_free(&q); /* frees the prefix too */
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

/* A build that fails leaves the prefix empty, never half-written: a
 * message Ollama cannot send (arguments not an object), then out of
 * memory at every allocation in turn; each success is the fresh body. */
START_TEST(prefix_failed_build_drops) {
  const struct lc_llm_adapter *ad = adapters[_i];
  struct lc_llm_request q;
  full_request(&q, provs[_i]);
  q.cache_wire = 1;
  build_cached(ad, &q, "cold");
  if (ad == &lc_llm_ollama) {
    grow(&q, 0);
    struct lc_llm_tool_call *c = &q.msgs[q.n_msgs - 2].tool_calls[0];
    lc_free(c->args_json);
    cJSON_Delete(c->args);
    c->args_json = lc_strdup("[1]");
    c->args = cJSON_Parse("[1]");
    struct lc_llm_http h;
    char err[256] = "";
    ck_assert_int_eq(ad->build(&q, &h, err, sizeof err), LC_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "object"));
    ck_assert_ptr_null(q.prefix.data);
    ck_assert_ptr_null(q.prefix.lent);
    ck_assert_uint_eq(q.prefix.n_msgs, 0);
    lc_free(c->args_json);
    cJSON_Delete(c->args);
    c->args_json = lc_strdup("{}");
    c->args = cJSON_Parse("{}");
    build_cached(ad, &q, "fixed");
  }
  for (long k = 1; k < 200; k++) {
    grow(&q, (int)k);
    struct lc_llm_http h;
    char err[256] = "";
    lc_alloc_fail_after(k);
    int rc = ad->build(&q, &h, err, sizeof err);
    lc_alloc_fail_after(0);
    if (rc == 0) {
      size_t n_ref;
      char *ref = body_fresh(ad, &q, &n_ref);
      same_bytes(ref, n_ref, h.body, h.body_len, "under failures");
      free(ref);
      lc_llm_prefix_give_back(&q, &h.body);
      lc_llm_http_free(&h);
      break;
    }
    /* Dropped, or (a header failed) the body given back whole. */
    ck_assert_ptr_null(q.prefix.lent);
    ck_assert(q.prefix.data != NULL || q.prefix.n_msgs == 0);
    build_cached(ad, &q, "after a failure");
  }
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

#ifdef LUACT_DEBUG_CHECKS
/* Debug builds catch what the cache cannot see: a message before the last
 * changed in place without lc_llm_prefix_cut/drop would be sent stale. */
START_TEST(prefix_stale_aborts_in_debug) {
  struct lc_llm_request q;
  full_request(&q, LC_PROV_OPENAI);
  q.cache_wire = 1;
  build_cached(&lc_llm_openai, &q, "cold");
  q.msgs[2].content[0] = 'X'; /* "hi" -> "Xi", same string */
  grow(&q, 0);
  struct lc_llm_http h;
  char err[256];
  lc_llm_openai.build(&q, &h, err, sizeof err); /* aborts */
}
END_TEST
#endif

/* lc_jsonw_value_at: the bytes from the mark are the value alone, also
 * after a key and between array elements. */
START_TEST(jsonw_value_at_marks_the_value) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_obj(&w);
  lc_jsonw_key(&w, "a");
  size_t at = lc_jsonw_value_at(&w);
  lc_jsonw_arr(&w);
  lc_jsonw_num(&w, 1);
  size_t at2 = lc_jsonw_value_at(&w);
  lc_jsonw_cstr(&w, "x");
  ck_assert_str_eq(b.data + at2, "\"x\"");
  lc_jsonw_arr_end(&w);
  ck_assert_str_eq(b.data + at, "[1,\"x\"]");
  char copy[8];
  memcpy(copy, b.data + at, 7);
  lc_jsonw_key(&w, "b");
  lc_jsonw_raw(&w, copy, 7);
  lc_jsonw_obj_end(&w);
  ck_assert_int_eq(lc_jsonw_finish(&w), 0);
  ck_assert_str_eq(b.data, "{\"a\":[1,\"x\"],\"b\":[1,\"x\"]}");
  lc_buf_free(&b);
}
END_TEST

Suite *llm_build_suite(void) {
  Suite *s = suite_create("llm_build");
  TCase *tc = tcase_create("recorded");
  tcase_add_test(tc, openai_toolresult_matches_recording);
  tcase_add_test(tc, anthropic_toolresult_matches_recording);
  tcase_add_test(tc, ollama_toolresult_matches_recording);
  suite_add_tcase(s, tc);
  tc = tcase_create("fields");
  tcase_add_test(tc, openai_every_field);
  tcase_add_test(tc, anthropic_every_field);
  tcase_add_test(tc, ollama_every_field);
  tcase_add_test(tc, ollama_host_forms);
  tcase_add_test(tc, missing_model);
  tcase_add_loop_test(tc, prefix_same_body, 0, 6);
  tcase_add_loop_test(tc, prefix_failed_build_drops, 0, 3);
#ifdef LUACT_DEBUG_CHECKS
  tcase_add_test_raise_signal(tc, prefix_stale_aborts_in_debug, SIGABRT);
#endif
  tcase_add_test(tc, jsonw_value_at_marks_the_value);
  suite_add_tcase(s, tc);
  return s;
}
