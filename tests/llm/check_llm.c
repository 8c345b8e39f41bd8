/* check_llm.c: the normalised model's helpers (names, classification,
 * model specs, Retry-After) and adapter behaviour the recordings lack:
 * errors inside streams, malformed and non-JSON bodies, quirky tool-call
 * chunking, the <think> splitter. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

START_TEST(parse_model) {
  enum lc_llm_provider p;
  char *m;
  ck_assert_int_eq(lc_llm_parse_model("openai:gpt-4o-mini", &p, &m), 0);
  ck_assert_int_eq(p, LC_PROV_OPENAI);
  ck_assert_str_eq(m, "gpt-4o-mini");
  lc_free(m);
  ck_assert_int_eq(
      lc_llm_parse_model("anthropic:claude-3-5-haiku-latest", &p, &m), 0);
  ck_assert_int_eq(p, LC_PROV_ANTHROPIC);
  ck_assert_str_eq(m, "claude-3-5-haiku-latest");
  lc_free(m);
  ck_assert_int_eq(lc_llm_parse_model("ollama:llama3.1:8b", &p, &m), 0);
  ck_assert_int_eq(p, LC_PROV_OLLAMA);
  ck_assert_str_eq(m, "llama3.1:8b");
  lc_free(m);
  ck_assert_int_eq(lc_llm_parse_model("gemini:gemini-2.5-flash", &p, &m), 0);
  ck_assert_int_eq(p, LC_PROV_GEMINI);
  ck_assert_str_eq(m, "gemini-2.5-flash");
  lc_free(m);
  ck_assert_int_eq(lc_llm_parse_model("bedrock:anthropic.claude-3-haiku-20240307-v1:0", &p, &m), 0);
  ck_assert_int_eq(p, LC_PROV_BEDROCK);
  ck_assert_str_eq(m, "anthropic.claude-3-haiku-20240307-v1:0");
  lc_free(m);
  ck_assert_int_eq(lc_llm_parse_model("vertex:pro", &p, &m), LC_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(lc_llm_parse_model("openai:", &p, &m), LC_EINVAL);
  ck_assert_int_eq(lc_llm_parse_model("gpt-4o", &p, &m), LC_EINVAL);
  ck_assert_int_eq(lc_llm_parse_model(":x", &p, &m), LC_EINVAL);
  ck_assert_int_eq(lc_llm_parse_model("OpenAI:x", &p, &m), LC_EINVAL);
  ck_assert_int_eq(lc_llm_parse_model(NULL, &p, &m), LC_EINVAL);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(names) {
  static const char *errs[] = {
      "ok",           "auth",        "rate_limit",     "quota",   "overloaded",
      "server",       "bad_request", "context_length", "timeout", "network",
      "bad_response", "cancelled",   "config"};
  for (int e = 0; e < LC_LLM_E__COUNT; e++)
    ck_assert_str_eq(lc_llm_err_name((enum lc_llm_err)e), errs[e]);
  ck_assert_str_eq(lc_llm_err_name(LC_LLM_E__COUNT), "unknown");
  ck_assert_str_eq(lc_llm_finish_name(LC_FINISH_NONE), "none");
  ck_assert_str_eq(lc_llm_finish_name(LC_FINISH_STOP), "stop");
  ck_assert_str_eq(lc_llm_finish_name(LC_FINISH_LENGTH), "length");
  ck_assert_str_eq(lc_llm_finish_name(LC_FINISH_TOOL_CALLS), "tool_calls");
  ck_assert_str_eq(lc_llm_finish_name(LC_FINISH_CONTENT_FILTER),
                   "content_filter");
  ck_assert_str_eq(lc_llm_finish_name(LC_FINISH_OTHER), "other");
  ck_assert_str_eq(lc_llm_role_name(LC_ROLE_SYSTEM), "system");
  ck_assert_str_eq(lc_llm_role_name(LC_ROLE_USER), "user");
  ck_assert_str_eq(lc_llm_role_name(LC_ROLE_ASSISTANT), "assistant");
  ck_assert_str_eq(lc_llm_role_name(LC_ROLE_TOOL), "tool");
  ck_assert_ptr_eq(lc_llm_adapter_for(LC_PROV_OPENAI), &lc_llm_openai);
  ck_assert_ptr_eq(lc_llm_adapter_for(LC_PROV_ANTHROPIC), &lc_llm_anthropic);
  ck_assert_ptr_eq(lc_llm_adapter_for(LC_PROV_OLLAMA), &lc_llm_ollama);
  ck_assert_ptr_null(lc_llm_adapter_for(LC_PROV__COUNT));
  ck_assert_str_eq(lc_llm_openai.name, "openai");
  ck_assert_str_eq(lc_llm_anthropic.api_key_env, "ANTHROPIC_API_KEY");
  ck_assert_str_eq(lc_llm_ollama.base_url_env, "OLLAMA_HOST");
  ck_assert_ptr_null(lc_llm_ollama.api_key_env);
}
END_TEST

START_TEST(retryable_and_status) {
  for (int e = 0; e < LC_LLM_E__COUNT; e++) {
    int want = e == LC_LLM_ERATE || e == LC_LLM_EOVERLOADED ||
               e == LC_LLM_ESERVER || e == LC_LLM_ETIMEOUT ||
               e == LC_LLM_ENETWORK;
    ck_assert_int_eq(lc_llm_err_retryable((enum lc_llm_err)e), want);
  }
  ck_assert_int_eq(lc_llm_err_from_status(200), LC_LLM_OK);
  ck_assert_int_eq(lc_llm_err_from_status(401), LC_LLM_EAUTH);
  ck_assert_int_eq(lc_llm_err_from_status(403), LC_LLM_EAUTH);
  ck_assert_int_eq(lc_llm_err_from_status(429), LC_LLM_ERATE);
  ck_assert_int_eq(lc_llm_err_from_status(529), LC_LLM_EOVERLOADED);
  ck_assert_int_eq(lc_llm_err_from_status(503), LC_LLM_EOVERLOADED);
  ck_assert_int_eq(lc_llm_err_from_status(500), LC_LLM_ESERVER);
  ck_assert_int_eq(lc_llm_err_from_status(502), LC_LLM_ESERVER);
  ck_assert_int_eq(lc_llm_err_from_status(400), LC_LLM_EBADREQ);
  ck_assert_int_eq(lc_llm_err_from_status(404), LC_LLM_EBADREQ);
  ck_assert_int_eq(lc_llm_err_from_status(422), LC_LLM_EBADREQ);
  ck_assert_int_eq(lc_llm_err_from_status(408), LC_LLM_ETIMEOUT);
  ck_assert_int_eq(lc_llm_err_from_status(302), LC_LLM_EBADRESP);
}
END_TEST

START_TEST(retry_after) {
  ck_assert(lc_llm_retry_after_s("Retry-After", "4", 0) == 4);
  ck_assert(lc_llm_retry_after_s("retry-after", " 1.5", 0) == 1.5);
  ck_assert(fabs(lc_llm_retry_after_s("retry-after-ms", "250", 0) - 0.25) <
            1e-12);
  ck_assert(lc_llm_retry_after_s("retry-after", "soon", 0) < 0);
  ck_assert(lc_llm_retry_after_s("retry-after", "3x", 0) < 0);
  ck_assert(lc_llm_retry_after_s("retry-after", "-1", 0) < 0);
  ck_assert(lc_llm_retry_after_s("x-ratelimit-reset-tokens", "0s", 0) < 0);
  /* HTTP-date relative to now; a date in the past means "now" */
  double at = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
  ck_assert(lc_llm_retry_after_s("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT",
                                 at - 30) == 30);
  ck_assert(lc_llm_retry_after_s("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT",
                                 at + 30) == 0);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert(r.retry_after_s < 0);
  ck_assert_int_eq(r.err, LC_LLM_OK);
}
END_TEST

START_TEST(request_free_releases_all) {
  struct lc_llm_request q;
  memset(&q, 0, sizeof q);
  q.model = lc_strdup("m");
  q.api_key = lc_strdup("k");
  q.msgs = lc_calloc(2, sizeof *q.msgs);
  q.n_msgs = 2;
  q.msgs[0].content = lc_strdup("hi");
  q.msgs[1].tool_calls = lc_calloc(1, sizeof *q.msgs[1].tool_calls);
  q.msgs[1].n_tool_calls = 1;
  q.msgs[1].tool_calls[0].id = lc_strdup("c");
  q.msgs[1].tool_calls[0].args = cJSON_CreateObject();
  q.tools = lc_calloc(1, sizeof *q.tools);
  q.n_tools = 1;
  q.tools[0].name = lc_strdup("t");
  q.tools[0].schema = cJSON_CreateObject();
  q.stop = lc_calloc(1, sizeof *q.stop);
  q.n_stop = 1;
  q.stop[0] = lc_strdup("\n");
  lc_llm_request_free(&q);
  ck_assert_int_eq(lc_alloc_live(), 0);
  ck_assert_ptr_null(q.model);
}
END_TEST

/* ---- adapter behaviour beyond the recordings ---- */

static int run_stream(const struct lc_llm_adapter *ad, const char *s,
                      struct lc_llm_response *r) {
  struct lc_llm_stream *st = ad->stream_new();
  lc_llm_response_init(r);
  int frc = ad->stream_feed(st, s, strlen(s), NULL, NULL);
  int rc = ad->stream_end(st, r);
  ad->stream_free(st);
  if (frc)
    ck_assert_int_eq(rc, LC_EINVAL);
  return rc;
}

START_TEST(openai_error_inside_stream) {
  struct lc_llm_response r;
  const char *s = "data: "
                  "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{"
                  "\"content\":\"Hi\"}}]}\n\n"
                  "data: {\"error\":{\"message\":\"The server had an "
                  "error\",\"type\":\"server_error\"}}\n\n"
                  "data: [DONE]\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_openai, s, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_ESERVER);
  ck_assert_str_eq(r.err_message, "The server had an error");
  ck_assert_str_eq(r.err_type, "server_error");
  ck_assert_ptr_null(r.text);
  lc_llm_response_free(&r);
  /* an "event: error" line with a rate-limit payload */
  s = "event: error\ndata: {\"error\":{\"message\":\"slow "
      "down\",\"code\":\"rate_limit_exceeded\"}}\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_openai, s, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_ERATE);
  lc_llm_response_free(&r);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(anthropic_error_event) {
  struct lc_llm_response r;
  const char *s =
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":"
      "\"c\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
      "event: content_block_start\ndata: "
      "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{"
      "\"type\":\"text\",\"text\":\"\"}}\n\n"
      "event: content_block_delta\ndata: "
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
      "\"text_delta\",\"text\":\"Hel\"}}\n\n"
      "event: error\ndata: "
      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
      "\"message\":\"Overloaded\"}}\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_anthropic, s, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_EOVERLOADED);
  ck_assert_str_eq(r.err_message, "Overloaded");
  ck_assert_str_eq(r.err_type, "overloaded_error");
  lc_llm_response_free(&r);
  /* feed reports the error at once, and keeps refusing */
  struct lc_llm_stream *st = lc_llm_anthropic.stream_new();
  ck_assert_int_eq(lc_llm_anthropic.stream_feed(st, s, strlen(s), NULL, NULL),
                   LC_EINVAL);
  ck_assert_int_eq(lc_llm_anthropic.stream_feed(st, "\n", 1, NULL, NULL),
                   LC_EINVAL);
  lc_llm_anthropic.stream_free(st);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(anthropic_thinking_stream) {
  struct lc_llm_response r;
  const char *s =
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\","
      "\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":100,\"cache_"
      "creation_input_tokens\":7,\"output_tokens\":1}}}\n\n"
      "event: content_block_start\ndata: "
      "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{"
      "\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
      "event: content_block_delta\ndata: "
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
      "\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n"
      "event: content_block_delta\ndata: "
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
      "\"signature_delta\",\"signature\":\"abc\"}}\n\n"
      "event: content_block_start\ndata: "
      "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{"
      "\"type\":\"text\",\"text\":\"\"}}\n\n"
      "event: content_block_delta\ndata: "
      "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
      "\"text_delta\",\"text\":\"ok\"}}\n\n"
      "event: message_delta\ndata: "
      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},"
      "\"usage\":{\"output_tokens\":9}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_anthropic, s, &r), 0);
  ck_assert_str_eq(r.reasoning, "hmm");
  ck_assert_str_eq(r.text, "ok");
  ck_assert_int_eq(r.finish, LC_FINISH_LENGTH);
  ck_assert_int_eq(r.usage.input, 112);
  ck_assert_int_eq(r.usage.cached, 100);
  ck_assert_int_eq(r.usage.cache_write, 7);
  ck_assert_int_eq(r.usage.output, 9);
  lc_llm_response_free(&r);
}
END_TEST

START_TEST(ollama_error_line) {
  struct lc_llm_response r;
  const char *s = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\","
                  "\"content\":\"a\"},\"done\":false}\n"
                  "{\"error\":\"an error was encountered while running the "
                  "model: unexpected EOF\"}\n";
  ck_assert_int_eq(run_stream(&lc_llm_ollama, s, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_ESERVER);
  ck_assert(strstr(r.err_message, "unexpected EOF") != NULL);
  lc_llm_response_free(&r);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

/* OpenAI whole bodies read by the pull reader: wrong types, escapes, first
 * occurrence of a duplicate key, n > 1, strictness; the answers the cJSON
 * version gave. */
static void oa(const char *body, int want_rc, const char *want) {
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  int rc = lc_llm_openai.parse(body, strlen(body), &r);
  ck_assert_msg(rc == want_rc, "%s: rc %d (%s)", body, rc, r.err_message);
  if (rc) {
    /* an in-band error object keeps its own kind */
    ck_assert_int_eq(r.err, strstr(body, "\"error\"") ? LC_LLM_ESERVER
                                                      : LC_LLM_EBADRESP);
    ck_assert_msg(strstr(r.err_message, want) != NULL, "%s: %s", body,
                  r.err_message);
  } else if (want) {
    ck_assert_msg(r.text && strcmp(r.text, want) == 0, "%s: text %s", body,
                  r.text);
  } else {
    ck_assert_ptr_null(r.text);
  }
  lc_llm_response_free(&r);
}

START_TEST(openai_body_edges) {
  oa("{\"choices\":{}}", LC_EINVAL, "no choices array");
  oa("{\"choices\":\"x\"}", LC_EINVAL, "no choices array");
  oa("{\"choices\":[]}", LC_EINVAL, "no choice");
  oa("{\"choices\":[{\"index\":1}]}", LC_EINVAL, "no choice");
  oa("{\"choices\":[{\"message\":\"x\"}]}", LC_EINVAL, "choice has no message");
  oa("{\"choices\":[7]}", LC_EINVAL, "choice has no message");
  oa("{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{\"name\":"
     "\"f\"}},1]}}]}",
     LC_EINVAL, "tool call is not an object");
  oa("{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{}}]}}]}",
     LC_EINVAL, "tool call 0 has no name");
  oa("{\"choices\":[{\"message\":{\"content\":5}}]}", 0, NULL);
  oa("{\"choices\":[{\"message\":{\"content\":\"a\"}}]} x", LC_EINVAL,
     "trailing data after JSON at byte 42");
  oa("{\"choices\":[{\"message\":{\"content\":\"a\"}}]}\n", 0, "a");
  oa("{\"choices\":[{\"message\":{\"content\":\"a\\ud800\"}}]}", LC_EINVAL,
     "invalid JSON");
  oa("{\"choices\":[{\"message\":{\"content\":\"a\\x\"}}]}", LC_EINVAL,
     "invalid JSON");
  oa("{\"choices\":[{\"message\":{\"content\":\"a\"}}],}", LC_EINVAL,
     "invalid JSON");
  oa("{\"choices\":[{\"message\":{\"content\":\"a\"}}]", LC_EINVAL,
     "invalid JSON");
  /* Stricter than cJSON was: it took "1." (and "01", raw control
   * characters in strings, bad \u hex digits); RFC 8259 does not. */
  oa("{\"choices\":[{\"message\":{\"content\":1.}}]}", LC_EINVAL,
     "invalid JSON");
  oa("\"text\"", LC_EINVAL, "JSON is not an object");
  oa("null", LC_EINVAL, "JSON is not an object");
  oa("{\"error\":{\"message\":\"boom\"},\"choices\":[]}", LC_EINVAL, "boom");
  oa("{\"error\":null,\"choices\":[{\"message\":{\"content\":\"a\"}}]}", 0,
     "a");
  /* escapes; the first of two "content"; index 0 wherever it stands */
  oa("{\"choices\":[{\"index\":1,\"message\":{\"content\":\"b\"}},"
     "{\"message\":{\"content\":\"\\u00e9\\ud83d\\ude00\\n\\/\","
     "\"content\":\"no\"},\"index\":0}]}",
     0, "\xC3\xA9\xF0\x9F\x98\x80\n/");
  oa("{\"choices\":[{\"message\":{\"con\\u0074ent\":\"k\"}}]}", 0, "k");

  struct lc_llm_response r;
  lc_llm_response_init(&r);
  const char *b =
      "{\"id\":\"i1\",\"id\":\"i2\",\"model\":\"m\\\"1\",\"choices\":[{"
      "\"finish_reason\":\"tool_calls\",\"message\":{\"reasoning\":\"r2\","
      "\"reasoning_content\":\"r1\",\"tool_calls\":[{\"id\":\"c1\","
      "\"function\":{\"name\":\"f\",\"arguments\":{\"a\": [1, 2]}}},"
      "{\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"x\\\":\\\"\\\\n\\\"}\"}}"
      "]}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4.0,"
      "\"prompt_tokens_details\":{\"cached_tokens\":2},\"cost\":0.5}}";
  ck_assert_int_eq(lc_llm_openai.parse(b, strlen(b), &r), 0);
  ck_assert_str_eq(r.id, "i1");
  ck_assert_str_eq(r.model, "m\"1");
  ck_assert_str_eq(r.reasoning, "r1");
  ck_assert_int_eq(r.n_tool_calls, 2);
  ck_assert_str_eq(r.tool_calls[0].id, "c1");
  ck_assert_str_eq(r.tool_calls[0].args_json, "{\"a\":[1,2]}");
  ck_assert_str_eq(r.tool_calls[1].id, "call_1");
  ck_assert_str_eq(r.tool_calls[1].args_json, "{\"x\":\"\\n\"}");
  ck_assert_ptr_nonnull(r.tool_calls[1].args);
  ck_assert_int_eq(r.finish, LC_FINISH_TOOL_CALLS);
  ck_assert_int_eq(r.usage.input, 3);
  ck_assert_int_eq(r.usage.output, 4);
  ck_assert_int_eq(r.usage.cached, 2);
  ck_assert_int_eq(r.usage.has_cost, 1);
  lc_llm_response_free(&r);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(malformed_bodies) {
  const struct lc_llm_adapter *ads[] = {&lc_llm_openai, &lc_llm_anthropic,
                                        &lc_llm_ollama};
  const char *html = "<!DOCTYPE html><html><head><title>Welcome</title></head>"
                     "<body><h1>Captive portal</h1></body></html>";
  for (size_t i = 0; i < 3; i++) {
    struct lc_llm_response r;
    lc_llm_response_init(&r);
    ck_assert_int_eq(ads[i]->parse("{\"id\": \"x\", ", 12, &r), LC_EINVAL);
    ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
    ck_assert(strstr(r.err_message, "invalid JSON") != NULL);
    lc_llm_response_free(&r);
    ck_assert_int_eq(ads[i]->parse("{\"a\":\"\xC3\x28\"}", 10, &r), LC_EINVAL);
    ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
    ck_assert(strstr(r.err_message, "invalid UTF-8") != NULL);
    lc_llm_response_free(&r);
    ck_assert_int_eq(ads[i]->parse(html, strlen(html), &r), LC_EINVAL);
    ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
    ck_assert_msg(
        strstr(r.err_message, "an HTML page: Welcome Captive portal") != NULL,
        "%s", r.err_message);
    lc_llm_response_free(&r);
    ck_assert_int_eq(ads[i]->parse("", 0, &r), LC_EINVAL);
    ck_assert(strstr(r.err_message, "empty body") != NULL);
    lc_llm_response_free(&r);
    ck_assert_int_eq(ads[i]->parse("[1,2]", 5, &r), LC_EINVAL);
    ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
    lc_llm_response_free(&r);
    ck_assert_int_eq(ads[i]->parse("{}", 2, &r),
                     LC_EINVAL); /* no answer in it */
    ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
    lc_llm_response_free(&r);
  }
  /* a malformed chunk in a stream */
  struct lc_llm_response r;
  ck_assert_int_eq(run_stream(&lc_llm_openai,
                              "data: {\"choices\":[\n\ndata: [DONE]\n\n", &r),
                   LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
  ck_assert(strstr(r.err_message, "malformed stream chunk") != NULL);
  lc_llm_response_free(&r);
  ck_assert_int_eq(run_stream(&lc_llm_anthropic,
                              "event: ping\ndata: {\"type\": \"ping\"}\n\n",
                              &r),
                   LC_EINVAL);
  ck_assert(strstr(r.err_message, "stream ended before message_stop") != NULL);
  lc_llm_response_free(&r);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

/* SIZE_MAX in a parse_error call below means "strlen of the literal". */
#define parse_error(st, body, n, r)                                            \
  parse_error(st, body, (n) == SIZE_MAX ? strlen(body) : (n), r)

START_TEST(error_bodies) {
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  const char *html =
      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
      "<center><h1>502 Bad "
      "Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
      "</body>\r\n</html>\r\n";
  lc_llm_openai.parse_error(502, html, strlen(html), &r);
  ck_assert_int_eq(r.err, LC_LLM_ESERVER);
  ck_assert_str_eq(r.err_message, "502 Bad Gateway 502 Bad Gateway nginx");
  ck_assert_ptr_null(r.err_type);
  lc_llm_response_free(&r);
  lc_llm_anthropic.parse_error(500, "", 0, &r);
  ck_assert_int_eq(r.err, LC_LLM_ESERVER);
  ck_assert_str_eq(r.err_message, "HTTP 500 with an empty body");
  lc_llm_response_free(&r);
  /* a long text body is cut to a short, valid excerpt */
  char big[2000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = "ab\xC3\xA9 "[i % 5];
  lc_llm_ollama.parse_error(500, big, sizeof big, &r);
  ck_assert_uint_le(strlen(r.err_message), 203);
  ck_assert(strstr(r.err_message, "...") != NULL);
  lc_llm_response_free(&r);
  /* credit and quota wording, Anthropic's 413, OpenRouter's 402 */
  lc_llm_anthropic.parse_error(
      400,
      "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
      "\"message\":\"Your credit balance is too low to access the Anthropic "
      "API.\"}}",
      SIZE_MAX, &r);
  ck_assert_int_eq(r.err, LC_LLM_EQUOTA);
  lc_llm_response_free(&r);
  lc_llm_openai.parse_error(
      402, "{\"error\":{\"message\":\"Insufficient credits\",\"code\":402}}",
      SIZE_MAX, &r);
  ck_assert_int_eq(r.err, LC_LLM_EQUOTA);
  ck_assert_str_eq(r.err_type, "402");
  lc_llm_response_free(&r);
  /* a numeric code past long's range is written as the number, not cast
   * (undefined; LONG_MIN's digits on x86) */
  lc_llm_openai.parse_error(
      400, "{\"error\":{\"message\":\"odd\",\"code\":1e300}}", SIZE_MAX, &r);
  ck_assert_str_eq(r.err_type, "1e+300");
  lc_llm_response_free(&r);
  lc_llm_openai.parse_error(
      400,
      "{\"error\":{\"message\":\"request (9000 tokens) exceeds the available "
      "context size (4096 tokens)\",\"type\":\"exceed_context_size_error\"}}",
      SIZE_MAX, &r);
  ck_assert_int_eq(r.err, LC_LLM_ECONTEXT);
  lc_llm_response_free(&r);
  /* a 2xx body that is an error envelope */
  const char *env =
      "{\"error\":{\"message\":\"Rate limit\",\"type\":\"rate_limit_error\"}}";
  ck_assert_int_eq(lc_llm_openai.parse(env, strlen(env), &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_ERATE);
  lc_llm_response_free(&r);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

START_TEST(openai_calls_without_index) {
  /* Ollama /v1 style: two whole calls in two chunks, no index */
  struct lc_llm_response r;
  const char *s =
      "data: "
      "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{"
      "\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]}}]}\n\n"
      "data: "
      "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{"
      "\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_openai, s, &r), 0);
  ck_assert_uint_eq(r.n_tool_calls, 2);
  ck_assert_str_eq(r.tool_calls[0].name, "f");
  ck_assert_str_eq(r.tool_calls[0].args_json, "{\"x\":1}");
  ck_assert_str_eq(r.tool_calls[1].id, "b");
  ck_assert_int_eq(r.finish, LC_FINISH_TOOL_CALLS);
  ck_assert_str_eq(r.finish_raw, "stop");
  lc_llm_response_free(&r);
  /* every call at index 0 but with its own id */
  s = "data: "
      "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\","
      "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n"
      "data: "
      "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"b\","
      "\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n"
      "data: [DONE]\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_openai, s, &r), 0);
  ck_assert_uint_eq(r.n_tool_calls, 2);
  ck_assert_str_eq(r.tool_calls[1].name, "g");
  lc_llm_response_free(&r);
  /* invalid arguments are kept as written, args NULL, no error */
  s = "data: "
      "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\","
      "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":\"}}]},\"finish_"
      "reason\":\"length\"}]}\n\n"
      "data: [DONE]\n\n";
  ck_assert_int_eq(run_stream(&lc_llm_openai, s, &r), 0);
  ck_assert_str_eq(r.tool_calls[0].args_json, "{\"x\":");
  ck_assert_ptr_null(r.tool_calls[0].args);
  ck_assert_int_eq(r.finish, LC_FINISH_LENGTH);
  lc_llm_response_free(&r);
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

/* The <think> splitter gives the same text/reasoning whatever the split. */
static void think_case(const char *in, const char *want_text,
                       const char *want_reason) {
  size_t n = strlen(in);
  for (size_t a = 0; a <= n; a++) {
    for (size_t b = a; b <= n; b++) {
      struct lc_llm_accum acc;
      lc_accum_init(&acc);
      acc.split_think = 1;
      lc_accum_text(&acc, in, a);
      lc_accum_text(&acc, in + a, b - a);
      lc_accum_text(&acc, in + b, n - b);
      struct lc_llm_response r;
      lc_llm_response_init(&r);
      ck_assert_int_eq(lc_accum_build(&acc, &r), 0);
      lc_accum_free(&acc);
      ck_assert_msg((want_text == NULL && r.text == NULL) ||
                        (want_text && r.text && strcmp(r.text, want_text) == 0),
                    "%zu/%zu: text [%s]", a, b, r.text);
      ck_assert_msg((want_reason == NULL && r.reasoning == NULL) ||
                        (want_reason && r.reasoning &&
                         strcmp(r.reasoning, want_reason) == 0),
                    "%zu/%zu: reasoning [%s]", a, b, r.reasoning);
      lc_llm_response_free(&r);
    }
  }
}

START_TEST(think_splitter) {
  think_case(
      "<think>\nlet me see </thin k>\n</think>\n\nHello <think>x</think>",
      "Hello <think>x</think>", "let me see </thin k>");
  think_case("<think>\n\n</think>\n\n", NULL, NULL);
  think_case("  <think>a</think>b", "b", "a");
  think_case("<thinking>no", "<thinking>no", NULL);
  think_case("<thi", "<thi", NULL);
  think_case("Plain <think>", "Plain <think>", NULL);
  think_case("<think>cut off", NULL, "cut off");
  ck_assert_int_eq(lc_alloc_live(), 0);
}
END_TEST

Suite *llm_suite(void) {
  Suite *s = suite_create("llm");
  TCase *tc = tcase_create("model");
  tcase_add_test(tc, parse_model);
  tcase_add_test(tc, names);
  tcase_add_test(tc, retryable_and_status);
  tcase_add_test(tc, retry_after);
  tcase_add_test(tc, request_free_releases_all);
  suite_add_tcase(s, tc);
  tc = tcase_create("adapters");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, openai_error_inside_stream);
  tcase_add_test(tc, anthropic_error_event);
  tcase_add_test(tc, anthropic_thinking_stream);
  tcase_add_test(tc, ollama_error_line);
  tcase_add_test(tc, malformed_bodies);
  tcase_add_test(tc, openai_body_edges);
  tcase_add_test(tc, error_bodies);
  tcase_add_test(tc, openai_calls_without_index);
  tcase_add_test(tc, think_splitter);
  suite_add_tcase(s, tc);
  return s;
}
