/* check_mockllm.c: lc-mockllm, driven with plain blocking libcurl calls
 * (and raw sockets where byte-level framing matters): every generator in
 * every format, fixtures, sequencing, faults, control endpoints, limits and
 * 200 concurrent requests. Waits are on I/O with deadlines, never sleeps. */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eventstream.h"
#include "lc.h"
#include "util_common.h"
#include "util_mock.h"

/* ---- a small blocking HTTP client ---- */

struct res {
  CURLcode rc;
  long code;
  char *body;
  size_t len;
  char *head; /* raw response header lines */
  size_t head_len;
  double total_s;
  long connects; /* new connections this transfer opened */
};

struct opts {
  const char *method;             /* default: POST with body, else GET */
  const char *body;
  const char *const *headers;     /* NULL-terminated */
  long timeout_ms;                /* default 20 s */
  long low_speed_s;               /* give up after this long under 1 B/s */
  CURL *reuse;                    /* keep-alive: an easy handle kept by the caller */
};

static size_t on_bytes(char *p, size_t size, size_t n, void *ud) {
  char **buf = ud;
  size_t *len = (size_t *)(buf + 1);
  char *q = realloc(*buf, *len + size * n + 1);
  ck_assert_ptr_nonnull(q);
  memcpy(q + *len, p, size * n);
  *len += size * n;
  q[*len] = '\0';
  *buf = q;
  return size * n;
}

struct acc {
  char *p;
  size_t len;
};

static void http(struct lc_mock *m, const char *path, const struct opts *o, struct res *r) {
  memset(r, 0, sizeof *r);
  CURL *h = o && o->reuse ? o->reuse : curl_easy_init();
  ck_assert_ptr_nonnull(h);
  char url[512];
  snprintf(url, sizeof url, "%s%s", m->base_url, path);
  struct acc body = {0}, head = {0};
  struct curl_slist *hl = NULL;
  for (int i = 0; o && o->headers && o->headers[i]; i++) hl = curl_slist_append(hl, o->headers[i]);
  hl = curl_slist_append(hl, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_bytes);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_bytes);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &head);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o && o->timeout_ms ? o->timeout_ms : 20000L);
  if (o && o->low_speed_s) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->low_speed_s);
  }
  if (o && o->body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, o->body);
  else curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  if (o && o->method) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, o->method);
  r->rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
  curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &r->total_s);
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hl);
  if (!(o && o->reuse)) curl_easy_cleanup(h);
  r->body = body.p ? body.p : calloc(1, 1);
  r->len = body.len;
  r->head = head.p ? head.p : calloc(1, 1);
  r->head_len = head.len;
}

static void res_free(struct res *r) {
  free(r->body);
  free(r->head);
}

static void post(struct lc_mock *m, const char *path, const char *body, struct res *r) {
  struct opts o = {.body = body};
  http(m, path, &o, r);
}

static cJSON *stats(struct lc_mock *m) {
  char *s = lc_mock_stats(m);
  ck_assert_ptr_nonnull(s);
  cJSON *j = cJSON_Parse(s);
  free(s);
  ck_assert_ptr_nonnull(j);
  return j;
}

static long stat_num(struct lc_mock *m, const char *key) {
  cJSON *j = stats(m);
  long v = (long)cJSON_GetObjectItem(j, key)->valuedouble;
  cJSON_Delete(j);
  return v;
}

static void start(struct lc_mock *m, const char *script) {
  ck_assert_int_eq(lc_mock_start(m, script), 0);
}

static void stop(struct lc_mock *m) { ck_assert_int_eq(lc_mock_stop(m), 0); }

/* ---- wire parsers, just enough to check framing ---- */

/* SSE body -> array of {"event": name or null, "data": text}. Fails the test
 * on a line that is neither. Also checks that the body ends an event. */
static cJSON *sse_parse(const char *body) {
  cJSON *arr = cJSON_CreateArray();
  const char *p = body;
  size_t blen = strlen(body);
  ck_assert_msg(blen >= 2 && strcmp(body + blen - 2, "\n\n") == 0, "stream does not end an event");
  while (*p) {
    const char *end = strstr(p, "\n\n");
    ck_assert_ptr_nonnull(end);
    cJSON *ev = cJSON_CreateObject();
    for (const char *l = p; l < end;) {
      const char *nl = memchr(l, '\n', (size_t)(end - l));
      if (!nl) nl = end;
      if (strncmp(l, "event: ", 7) == 0) {
        char *name = strndup(l + 7, (size_t)(nl - l - 7));
        cJSON_AddStringToObject(ev, "event", name);
        free(name);
      } else if (strncmp(l, "data: ", 6) == 0) {
        char *d = strndup(l + 6, (size_t)(nl - l - 6));
        cJSON_AddStringToObject(ev, "data", d);
        free(d);
      } else
        ck_abort_msg("bad SSE line: %.*s", (int)(nl - l), l);
      l = nl + 1;
    }
    cJSON_AddItemToArray(arr, ev);
    p = end + 2;
  }
  return arr;
}

static const char *ev_str(const cJSON *ev, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(ev, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- tests ---- */

START_TEST(starts_and_stops_cleanly) {
  struct lc_mock m;
  start(&m, "[]");
  ck_assert_int_gt(m.port, 0);
  ck_assert(strncmp(m.base_url, "http://127.0.0.1:", 17) == 0);
  ck_assert_int_eq(stat_num(&m, "requests"), 0);
  stop(&m);
  ck_assert_int_eq(system(LC_BINARY_DIR "/lc-mockllm --help >/dev/null"), 0);
  ck_assert_int_ne(system(LC_BINARY_DIR "/lc-mockllm --bogus 2>/dev/null"), 0);
  /* A script with a typo is refused at start, naming the key. */
  ck_assert_int_ne(lc_mock_start(&m, "[{\"reply\": {\"delay\": 5}}]"), 0);
}
END_TEST

START_TEST(openai_nonstream) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"body_contains\": \"weather\"}, \"reply\": {\"openai\": {\"tool_calls\": ["
            "{\"id\": \"call_1\", \"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}},"
            "{\"name\": \"broken\", \"arguments\": \"{\\\"a\\\": \"}]}}},"
            "{\"reply\": {\"openai\": {\"text\": \"Hello!\", \"usage\": {\"prompt_tokens\": 7,"
            " \"completion_tokens\": 2, \"total_tokens\": 9}}}}]");
  struct res r;
  post(&m, "/v1/chat/completions", "{\"model\": \"gpt-x\", \"messages\": []}", &r);
  ck_assert_int_eq(r.code, 200);
  cJSON *j = cJSON_Parse(r.body);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "gpt-x");
  cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "stop");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")->valuestring,
                   "Hello!");
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valueint, 9);
  ck_assert(strstr(r.head, "Content-Length: ") != NULL);
  cJSON_Delete(j);
  res_free(&r);

  post(&m, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"weather?\"}]}", &r);
  j = cJSON_Parse(r.body);
  ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(ch, "finish_reason")->valuestring, "tool_calls");
  cJSON *msg = cJSON_GetObjectItem(ch, "message");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
  cJSON *tc = cJSON_GetObjectItem(msg, "tool_calls");
  ck_assert_int_eq(cJSON_GetArraySize(tc), 2);
  cJSON *t0 = cJSON_GetArrayItem(tc, 0);
  ck_assert_str_eq(cJSON_GetObjectItem(t0, "id")->valuestring, "call_1");
  ck_assert_str_eq(cJSON_GetObjectItem(t0, "type")->valuestring, "function");
  cJSON *fn = cJSON_GetObjectItem(t0, "function");
  ck_assert_str_eq(cJSON_GetObjectItem(fn, "name")->valuestring, "get_weather");
  ck_assert_str_eq(cJSON_GetObjectItem(fn, "arguments")->valuestring, "{\"city\":\"Oslo\"}");
  fn = cJSON_GetObjectItem(cJSON_GetArrayItem(tc, 1), "function");
  ck_assert_str_eq(cJSON_GetObjectItem(fn, "arguments")->valuestring, "{\"a\": ");
  cJSON_Delete(j);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(openai_stream) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"openai\": {\"text\": \"Grüße aus Oslo, heute sonnig.\", \"fragment_bytes\": 3,"
            " \"tool_calls\": [{\"name\": \"a\", \"arguments\": {\"q\": \"xyz\", \"n\": 12345}},"
            " {\"name\": \"b\", \"arguments\": {}}]}}}]");
  struct res r;
  post(&m, "/v1/chat/completions",
       "{\"stream\": true, \"stream_options\": {\"include_usage\": true}, \"messages\": []}", &r);
  ck_assert_int_eq(r.code, 200);
  ck_assert(strstr(r.head, "text/event-stream") != NULL);
  ck_assert(strstr(r.head, "Transfer-Encoding: chunked") != NULL);
  cJSON *evs = sse_parse(r.body);
  int n = cJSON_GetArraySize(evs);
  ck_assert_str_eq(ev_str(cJSON_GetArrayItem(evs, n - 1), "data"), "[DONE]");
  char text[256] = "", args[2][128] = {"", ""}, finish[32] = "";
  int usage_seen = 0, text_chunks = 0;
  for (int i = 0; i < n - 1; i++) {
    cJSON *c = cJSON_Parse(ev_str(cJSON_GetArrayItem(evs, i), "data"));
    ck_assert_msg(c != NULL, "chunk %d not JSON", i);
    ck_assert_str_eq(cJSON_GetObjectItem(c, "object")->valuestring, "chat.completion.chunk");
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "choices"), 0);
    if (!ch) {
      ck_assert_int_eq(i, n - 2); /* the usage chunk comes last */
      ck_assert(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "usage"), "total_tokens") != NULL);
      usage_seen = 1;
    } else {
      cJSON *d = cJSON_GetObjectItem(ch, "delta");
      cJSON *content = cJSON_GetObjectItem(d, "content");
      if (cJSON_IsString(content) && *content->valuestring) {
        strcat(text, content->valuestring);
        text_chunks++;
      }
      cJSON *t;
      cJSON_ArrayForEach(t, cJSON_GetObjectItem(d, "tool_calls")) {
        int idx = cJSON_GetObjectItem(t, "index")->valueint;
        ck_assert(idx == 0 || idx == 1);
        strcat(args[idx], cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "arguments")->valuestring);
      }
      cJSON *fr = cJSON_GetObjectItem(ch, "finish_reason");
      if (cJSON_IsString(fr)) {
        ck_assert_str_eq(finish, ""); /* exactly one chunk finishes */
        snprintf(finish, sizeof finish, "%s", fr->valuestring);
      }
    }
    cJSON_Delete(c);
  }
  ck_assert_str_eq(text, "Grüße aus Oslo, heute sonnig.");
  ck_assert_int_ge(text_chunks, 9); /* split into 3-byte fragments */
  cJSON *a0 = cJSON_Parse(args[0]);
  ck_assert_ptr_nonnull(a0);
  ck_assert_int_eq(cJSON_GetObjectItem(a0, "n")->valueint, 12345);
  cJSON_Delete(a0);
  ck_assert_str_eq(args[1], "{}");
  ck_assert(usage_seen);
  ck_assert_str_eq(finish, "tool_calls");
  cJSON_Delete(evs);
  res_free(&r);

  /* Without include_usage there is no usage chunk, as on the real API. */
  post(&m, "/v1/chat/completions", "{\"stream\": true, \"messages\": []}", &r);
  ck_assert(strstr(r.body, "\"usage\"") == NULL);
  ck_assert(strstr(r.body, "data: [DONE]\n\n") != NULL);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(anthropic_both) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"anthropic\": {\"text\": \"Let me add.\", \"fragment_bytes\": 4,"
            " \"usage\": {\"input_tokens\": 30, \"output_tokens\": 12},"
            " \"tool_calls\": [{\"id\": \"toolu_1\", \"name\": \"plus\", \"arguments\": {\"a\": 1, \"b\": 2}},"
            " {\"name\": \"noargs\"}]}}}]");
  struct res r;
  post(&m, "/v1/messages", "{\"model\": \"claude-x\", \"max_tokens\": 10, \"messages\": []}", &r);
  ck_assert_int_eq(r.code, 200);
  cJSON *j = cJSON_Parse(r.body);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "message");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "stop_reason")->valuestring, "tool_use");
  cJSON *content = cJSON_GetObjectItem(j, "content");
  ck_assert_int_eq(cJSON_GetArraySize(content), 3);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 0), "text")->valuestring, "Let me add.");
  cJSON *tu = cJSON_GetArrayItem(content, 1);
  ck_assert_str_eq(cJSON_GetObjectItem(tu, "type")->valuestring, "tool_use");
  ck_assert_str_eq(cJSON_GetObjectItem(tu, "id")->valuestring, "toolu_1");
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(tu, "input"), "b")->valueint, 2);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "input_tokens")->valueint, 30);
  cJSON_Delete(j);
  res_free(&r);

  post(&m, "/v1/messages", "{\"stream\": true, \"messages\": []}", &r);
  ck_assert_int_eq(r.code, 200);
  cJSON *evs = sse_parse(r.body);
  int n = cJSON_GetArraySize(evs);
  ck_assert_str_eq(ev_str(cJSON_GetArrayItem(evs, 0), "event"), "message_start");
  ck_assert_str_eq(ev_str(cJSON_GetArrayItem(evs, n - 2), "event"), "message_delta");
  ck_assert_str_eq(ev_str(cJSON_GetArrayItem(evs, n - 1), "event"), "message_stop");
  char text[128] = "", args[3][128] = {"", "", ""};
  int starts = 0, stops = 0, in_tokens = 0, out_tokens = 0;
  const char *stop_reason = "";
  cJSON *ev;
  cJSON *keep = cJSON_CreateArray();
  cJSON_ArrayForEach(ev, evs) {
    cJSON *d = cJSON_Parse(ev_str(ev, "data"));
    ck_assert_ptr_nonnull(d);
    cJSON_AddItemToArray(keep, d);
    /* every data payload names the same type as its event line */
    ck_assert_str_eq(cJSON_GetObjectItem(d, "type")->valuestring, ev_str(ev, "event"));
    const char *type = ev_str(ev, "event");
    if (!strcmp(type, "message_start"))
      in_tokens = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "message"), "usage"),
                                      "input_tokens")->valueint;
    if (!strcmp(type, "content_block_start")) starts++;
    if (!strcmp(type, "content_block_stop")) stops++;
    if (!strcmp(type, "content_block_delta")) {
      int idx = cJSON_GetObjectItem(d, "index")->valueint;
      cJSON *dl = cJSON_GetObjectItem(d, "delta");
      if (!strcmp(cJSON_GetObjectItem(dl, "type")->valuestring, "text_delta"))
        strcat(text, cJSON_GetObjectItem(dl, "text")->valuestring);
      else
        strcat(args[idx], cJSON_GetObjectItem(dl, "partial_json")->valuestring);
    }
    if (!strcmp(type, "message_delta")) {
      stop_reason = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "delta"), "stop_reason")->valuestring;
      out_tokens = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "usage"), "output_tokens")->valueint;
    }
  }
  ck_assert_int_eq(starts, 3);
  ck_assert_int_eq(stops, 3);
  ck_assert_str_eq(text, "Let me add.");
  ck_assert_str_eq(args[1], "{\"a\":1,\"b\":2}");
  ck_assert_str_eq(args[2], ""); /* no-argument tools stream only "" (as recorded) */
  ck_assert_str_eq(stop_reason, "tool_use");
  ck_assert_int_eq(in_tokens, 30);
  ck_assert_int_eq(out_tokens, 12);
  cJSON_Delete(keep);
  cJSON_Delete(evs);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(ollama_both) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"ollama\": {\"text\": \"one two three\", \"fragment_bytes\": 4,"
            " \"tool_calls\": [{\"name\": \"w\", \"arguments\": {\"city\": \"Rome\"}}]}}}]");
  struct res r;
  post(&m, "/api/chat", "{\"model\": \"llama3\", \"stream\": false, \"messages\": []}", &r);
  ck_assert_int_eq(r.code, 200);
  cJSON *j = cJSON_Parse(r.body);
  ck_assert_ptr_nonnull(j);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "done")));
  ck_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "llama3");
  cJSON *msg = cJSON_GetObjectItem(j, "message");
  ck_assert_str_eq(cJSON_GetObjectItem(msg, "content")->valuestring, "one two three");
  cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0), "function");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(fn, "arguments"), "city")->valuestring, "Rome");
  ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "eval_count")));
  cJSON_Delete(j);
  res_free(&r);

  /* No "stream" key: Ollama's native API streams NDJSON by default. */
  post(&m, "/api/chat", "{\"model\": \"llama3\", \"messages\": []}", &r);
  ck_assert(strstr(r.head, "application/x-ndjson") != NULL);
  char text[64] = "";
  int lines = 0, done = 0, tools = 0;
  for (char *line = r.body, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = '\0';
    ck_assert_msg(!done, "line after done:true");
    cJSON *l = cJSON_Parse(line);
    ck_assert_msg(l != NULL, "NDJSON line not JSON: %s", line);
    cJSON *lm = cJSON_GetObjectItem(l, "message");
    strcat(text, cJSON_GetObjectItem(lm, "content")->valuestring);
    if (cJSON_GetObjectItem(lm, "tool_calls")) tools++;
    done = cJSON_IsTrue(cJSON_GetObjectItem(l, "done"));
    if (done) ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(l, "prompt_eval_count")));
    lines++;
    cJSON_Delete(l);
  }
  ck_assert(done);
  ck_assert_str_eq(text, "one two three");
  ck_assert_int_eq(tools, 1);
  ck_assert_int_ge(lines, 5);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(echo_last_user_or_tool) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"path\": \"/v1/chat/completions\"}, \"reply\": {\"openai\": {\"echo\": true}}},"
            " {\"match\": {\"path\": \"/v1/messages\"}, \"reply\": {\"anthropic\": {\"echo\": true}}},"
            " {\"match\": {\"path\": \"/api/chat\"}, \"reply\": {\"ollama\": {\"echo\": true}}}]");
  struct res r;
  post(&m, "/v1/chat/completions",
       "{\"messages\": [{\"role\": \"user\", \"content\": \"first\"}, {\"role\": \"assistant\", \"content\": \"x\"},"
       " {\"role\": \"tool\", \"tool_call_id\": \"c\", \"content\": \"42 degrees\"}]}", &r);
  ck_assert(strstr(r.body, "\"content\":\"42 degrees\"") != NULL);
  res_free(&r);
  post(&m, "/v1/messages",
       "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"tool_result\", \"tool_use_id\": \"t\","
       " \"content\": [{\"type\": \"text\", \"text\": \"sum is 3\"}]}]}]}", &r);
  ck_assert(strstr(r.body, "\"text\":\"sum is 3\"") != NULL);
  res_free(&r);
  post(&m, "/api/chat", "{\"stream\": false, \"messages\": [{\"role\": \"user\", \"content\": \"ping\"}]}", &r);
  ck_assert(strstr(r.body, "\"content\":\"ping\"") != NULL);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(serves_fixtures) {
  const char *ids[] = {"openai-chat-text-stream-01", "anthropic-error-429-retry-after-01",
                       "ollama-chat-text-stream-01", "openai-error-503-upstream-01"};
  char script[4096];
  int n = snprintf(script, sizeof script, "[");
  for (size_t i = 0; i < 4; i++)
    n += snprintf(script + n, sizeof script - (size_t)n,
                  "%s{\"match\": {\"path\": \"/f%zu\"}, \"reply\": {\"fixture\": \"%s/%s.json\"}}",
                  i ? "," : "", i, lc_test_fixtures_dir(), ids[i]);
  snprintf(script + n, sizeof script - (size_t)n, "]");
  struct lc_mock m;
  start(&m, script);
  for (size_t i = 0; i < 4; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", lc_test_fixtures_dir(), ids[i]);
    char *text = lc_test_read_file(path, NULL);
    ck_assert_ptr_nonnull(text);
    cJSON *fx = cJSON_Parse(text);
    free(text);
    cJSON *resp = cJSON_GetObjectItem(fx, "response");
    char url[16];
    snprintf(url, sizeof url, "/f%zu", i);
    struct res r;
    post(&m, url, "{}", &r);
    ck_assert_int_eq(r.code, cJSON_GetObjectItem(resp, "status")->valueint);
    ck_assert_str_eq(r.body, cJSON_GetObjectItem(resp, "body_text")->valuestring); /* byte-exact */
    const char *ct = cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "headers"), "content-type")->valuestring;
    ck_assert_msg(strstr(r.head, ct) != NULL, "content-type %s missing", ct);
    if (i == 1) ck_assert(strstr(r.head, "retry-after: 4\r\n") != NULL);
    res_free(&r);
    cJSON_Delete(fx);
  }
  stop(&m);
}
END_TEST

/* ---- Gemini and Bedrock ---- */

START_TEST(gemini_three_framings) {
  struct lc_mock m;
  start(&m, "[{\"reply\":{\"gemini\":{\"text\":\"abcdefghij\",\"fragment_bytes\":4,"
            "\"thoughts\":\"hm\",\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"x\":1},"
            "\"signature\":\"U0lH\"}]}}}]");
  /* SSE: data-only events ended by CRLF CRLF, no end marker. */
  struct res r;
  post(&m, "/v1beta/models/g:streamGenerateContent?alt=sse", "{}", &r);
  ck_assert_int_eq(r.code, 200);
  ck_assert_ptr_nonnull(strstr(r.head, "text/event-stream"));
  int events = 0;
  for (const char *p = r.body; *p; events++) {
    ck_assert_msg(strncmp(p, "data: {", 7) == 0, "%s", p);
    const char *e = strstr(p, "\r\n\r\n");
    ck_assert_ptr_nonnull(e);
    p = e + 4;
  }
  ck_assert_int_eq(events, 1 + 3 + 1); /* thought, 3 text pieces, the calls */
  ck_assert_ptr_null(strstr(r.body, "[DONE]"));
  ck_assert_ptr_nonnull(strstr(r.body, "\"thought\":true"));
  ck_assert_ptr_nonnull(strstr(r.body, "\"thoughtSignature\":\"U0lH\""));
  res_free(&r);
  /* Without alt=sse: one JSON array. */
  post(&m, "/v1beta/models/g:streamGenerateContent", "{}", &r);
  ck_assert_msg(r.body[0] == '[' && r.body[r.len - 1] == ']', "%s", r.body);
  ck_assert_ptr_nonnull(strstr(r.body, "\n,\r\n{"));
  cJSON *arr = cJSON_Parse(r.body);
  ck_assert_int_eq(cJSON_GetArraySize(arr), 5);
  cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 4), "candidates"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(last, "finishReason")->valuestring, "STOP");
  cJSON_Delete(arr);
  res_free(&r);
  /* Not streamed: one GenerateContentResponse. */
  post(&m, "/v1beta/models/g:generateContent", "{}", &r);
  cJSON *o = cJSON_Parse(r.body);
  cJSON *parts = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
                                         cJSON_GetObjectItem(o, "candidates"), 0), "content"), "parts");
  ck_assert_int_eq(cJSON_GetArraySize(parts), 3); /* thought, text, call */
  cJSON_Delete(o);
  res_free(&r);
  stop(&m);
}
END_TEST

struct es_log {
  char types[64][32];
  int n;
};

static int es_type(void *ud, const struct lc_es_msg *msg) {
  struct es_log *l = ud;
  size_t n;
  const char *t = lc_es_header_str(msg, ":event-type", &n);
  if (!t) t = lc_es_header_str(msg, ":exception-type", &n);
  if (l->n < 64) snprintf(l->types[l->n++], 32, "%.*s", (int)n, t ? t : "?");
  return 0;
}

START_TEST(bedrock_event_stream) {
  struct lc_mock m;
  char script[8400];
  snprintf(script, sizeof script,
           "[{\"match\":{\"path\":\"/fx\"},\"reply\":{\"fixture\":"
           "\"%s/../llm2/bedrock-conversestream-tooluse-01.json\"}},"
           "{\"match\":{\"path\":\"/model/m/converse-stream\"},\"times\":1,\"reply\":{\"bedrock\":"
           "{\"text\":\"hello\",\"fragment_bytes\":2,\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"x\":1}}]}}},"
           "{\"match\":{\"path\":\"/model/m/converse-stream\"},\"times\":1,\"reply\":{\"bedrock\":"
           "{\"text\":\"hello\"},\"malformed\":true}},"
           "{\"match\":{\"path\":\"/model/m/converse-stream\"},\"reply\":{\"bedrock\":"
           "{\"text\":\"hi\",\"exception\":{\"type\":\"throttlingException\"}}}},"
           "{\"reply\":{\"bedrock\":{\"text\":\"plain\"}}}]",
           lc_test_fixtures_dir());
  start(&m, script);
  struct res r;
  post(&m, "/model/m/converse-stream", "{}", &r);
  ck_assert_ptr_nonnull(strstr(r.head, "application/vnd.amazon.eventstream"));
  struct es_log l = {0};
  struct lc_es p;
  lc_es_init(&p, 0);
  ck_assert_int_eq(lc_es_feed(&p, r.body, r.len, es_type, &l), 0); /* CRCs hold */
  ck_assert_int_eq(lc_es_end(&p), 0);
  lc_es_free(&p);
  const char *want[] = {"messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
                        "contentBlockStop", "contentBlockStart", "contentBlockDelta",
                        "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
                        "contentBlockStop", "messageStop", "metadata"};
  ck_assert_int_eq(l.n, 13);
  for (int i = 0; i < 13; i++) ck_assert_str_eq(l.types[i], want[i]);
  res_free(&r);
  /* malformed: the same framing, a message CRC that fails. */
  post(&m, "/model/m/converse-stream", "{}", &r);
  lc_es_init(&p, 0);
  ck_assert_int_eq(lc_es_feed(&p, r.body, r.len, NULL, NULL), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(p.err, "CRC"));
  lc_es_free(&p);
  res_free(&r);
  /* An exception message ends the stream. */
  post(&m, "/model/m/converse-stream", "{}", &r);
  memset(&l, 0, sizeof l);
  lc_es_init(&p, 0);
  ck_assert_int_eq(lc_es_feed(&p, r.body, r.len, es_type, &l), 0);
  lc_es_free(&p);
  ck_assert_str_eq(l.types[l.n - 1], "throttlingException");
  res_free(&r);
  /* Not streamed: Converse JSON. */
  post(&m, "/model/m/converse", "{}", &r);
  ck_assert_ptr_nonnull(strstr(r.body, "\"output\":{\"message\":{\"content\":[{\"text\":\"plain\"}]"));
  res_free(&r);
  /* A binary fixture (body_base64) served byte for byte. */
  post(&m, "/fx", "{}", &r);
  ck_assert_int_eq(r.len, 4734);
  lc_es_init(&p, 0);
  memset(&l, 0, sizeof l);
  ck_assert_int_eq(lc_es_feed(&p, r.body, r.len, es_type, &l), 0);
  ck_assert_int_eq(lc_es_end(&p), 0);
  lc_es_free(&p);
  ck_assert_str_eq(l.types[l.n - 1], "metadata");
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(times_sequence_and_reset) {
  struct lc_mock m;
  start(&m, "[{\"times\": 2, \"reply\": {\"status\": 503, \"body\": \"{\\\"error\\\": \\\"busy\\\"}\"}},"
            " {\"reply\": {\"openai\": {\"text\": \"ok\"}}}]");
  long codes[4];
  for (int i = 0; i < 4; i++) {
    struct res r;
    post(&m, "/v1/chat/completions", "{}", &r);
    codes[i] = r.code;
    res_free(&r);
  }
  ck_assert_int_eq(codes[0], 503);
  ck_assert_int_eq(codes[1], 503);
  ck_assert_int_eq(codes[2], 200);
  ck_assert_int_eq(codes[3], 200);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/v1/chat/completions"), 4);
  /* /_reset re-arms "times" and clears the log */
  ck_assert_int_eq(lc_mock_reset(&m), 0);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/v1/chat/completions"), 0);
  struct res r;
  post(&m, "/v1/chat/completions", "{}", &r);
  ck_assert_int_eq(r.code, 503);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(retry_after_and_headers) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"status\": 429, \"retry_after\": 7, \"headers\": {\"x-ratelimit-remaining-requests\": \"0\"},"
            " \"json\": {\"error\": {\"type\": \"rate_limit_error\"}}}}]");
  struct res r;
  post(&m, "/v1/chat/completions", "{}", &r);
  ck_assert_int_eq(r.code, 429);
  ck_assert(strstr(r.head, "Retry-After: 7\r\n") != NULL);
  ck_assert(strstr(r.head, "x-ratelimit-remaining-requests: 0\r\n") != NULL);
  ck_assert_str_eq(r.body, "{\"error\":{\"type\":\"rate_limit_error\"}}");
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(delay_and_latency) {
  struct lc_mock m;
  const char *args[] = {"--latency-ms", "150", NULL};
  ck_assert_int_eq(lc_mock_start_args(&m, "[{\"match\": {\"path\": \"/slow\"}, \"reply\": {\"delay_ms\": 400, \"body\": \"{}\"}},"
                                          " {\"match\": {\"path\": \"/fast\"}, \"reply\": {\"delay_ms\": 0, \"body\": \"{}\"}},"
                                          " {\"reply\": {\"body\": \"{}\"}}]", args), 0);
  struct res r;
  post(&m, "/slow", "{}", &r);
  ck_assert_int_eq(r.code, 200);
  ck_assert_msg(r.total_s >= 0.4, "took %.3f s", r.total_s);
  res_free(&r);
  post(&m, "/other", "{}", &r);
  ck_assert_msg(r.total_s >= 0.15, "took %.3f s", r.total_s);
  res_free(&r);
  post(&m, "/fast", "{}", &r);
  ck_assert_int_eq(r.code, 200);
  res_free(&r);
  /* What each response was given, from the log: a rule's delay_ms of 0
   * wins over --latency-ms (timing /fast would be an upper bound). */
  char *log = lc_mock_requests(&m);
  cJSON *l = cJSON_Parse(log);
  ck_assert_int_eq(cJSON_GetArraySize(l), 3);
  const long want[] = {400, 150, 0};
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq((long)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(l, i), "delay_ms")),
                     want[i]);
  cJSON_Delete(l);
  free(log);
  stop(&m);
}
END_TEST

START_TEST(paced_body) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"chunk_bytes\": 10, \"gap_ms\": 40, \"body\": \"0123456789abcdefghijABCDEFGHIJ!\"}}]");
  struct res r;
  post(&m, "/x", "{}", &r);
  ck_assert_int_eq(r.rc, CURLE_OK);
  ck_assert_str_eq(r.body, "0123456789abcdefghijABCDEFGHIJ!");
  ck_assert_msg(r.total_s >= 0.12, "4 pieces, 3 gaps of 40 ms, took %.3f s", r.total_s);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(cut_mid_body) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"path\": \"/plain\"}, \"reply\": {\"cut_after_bytes\": 5, \"body\": \"{\\\"long\\\": \\\"body\\\"}\"}},"
            " {\"match\": {\"path\": \"/sse\"}, \"reply\": {\"cut_after_bytes\": 40, \"openai\": {\"text\": \"a long streamed answer\"}}}]");
  struct res r;
  post(&m, "/plain", "{}", &r);
  ck_assert_int_eq(r.code, 200);
  ck_assert_int_eq(r.rc, CURLE_PARTIAL_FILE);
  ck_assert_int_eq(r.len, 5);
  res_free(&r);
  post(&m, "/sse", "{\"stream\": true}", &r);
  ck_assert_int_eq(r.code, 200);
  ck_assert_msg(r.rc == CURLE_PARTIAL_FILE || r.rc == CURLE_RECV_ERROR, "rc %d", r.rc);
  ck_assert_int_eq(r.len, 40);
  ck_assert(strstr(r.body, "[DONE]") == NULL);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(stall_until_client_gives_up) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"stall_after_bytes\": 30, \"openai\": {\"text\": \"stalls after the first event\"}}}]");
  struct opts o = {.body = "{\"stream\": true}", .low_speed_s = 1};
  struct res r;
  http(&m, "/v1/chat/completions", &o, &r);
  ck_assert_int_eq(r.code, 200);
  ck_assert_int_eq(r.rc, CURLE_OPERATION_TIMEDOUT);
  ck_assert_int_eq(r.len, 30);
  res_free(&r);
  /* The server notices the hang-up and ends the request: drive until it
   * does (each check is a round trip), with a deadline. */
  long in_flight = -1;
  for (int i = 0; i < 2000 && in_flight != 0; i++) in_flight = stat_num(&m, "in_flight");
  ck_assert_int_eq(in_flight, 0);
  stop(&m);
}
END_TEST

/* A raw connection, for byte-level framing tests. */
static int dial(struct lc_mock *m) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)m->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Reads until EOF or until `want` bytes, with a deadline. */
static char *read_all(int fd, size_t want, size_t *len) {
  char *buf = calloc(1, 65536);
  size_t n = 0;
  while (n < 65535 && n < want) {
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    ssize_t k = read(fd, buf + n, 65535 - n);
    if (k <= 0) break;
    n += (size_t)k;
  }
  *len = n;
  return buf;
}

/* Reads until `needle` shows up (deadline 10 s). */
static void read_until(int fd, const char *needle) {
  char buf[8192];
  size_t n = 0;
  while (n < sizeof buf - 1) {
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
    ck_assert_int_gt(k, 0);
    n += (size_t)k;
    buf[n] = '\0';
    if (strstr(buf, needle)) return;
  }
  ck_abort_msg("never saw %s", needle);
}

START_TEST(stop_while_stalled) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"stall_after_bytes\": 2, \"body\": \"{}xyz\"}}]");
  int fd = dial(&m);
  const char *req = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
  ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  read_until(fd, "\r\n\r\n{}");
  /* SIGTERM must end the held connection at once and exit 0. */
  stop(&m);
  size_t len;
  char *rest = read_all(fd, SIZE_MAX, &len);
  ck_assert_int_eq(len, 0); /* EOF, nothing more sent */
  free(rest);
  close(fd);
}
END_TEST

START_TEST(malformed_bodies) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"stream\": true}, \"reply\": {\"malformed\": true, \"openai\": {\"text\": \"x\"}}},"
            " {\"reply\": {\"malformed\": true, \"anthropic\": {\"text\": \"x\"}}}]");
  struct res r;
  post(&m, "/v1/messages", "{}", &r);
  ck_assert_int_eq(r.code, 200);
  cJSON *j = cJSON_Parse(r.body);
  ck_assert_ptr_null(j);
  res_free(&r);
  post(&m, "/v1/chat/completions", "{\"stream\": true}", &r);
  cJSON *evs = sse_parse(r.body); /* framing intact ... */
  cJSON *first = cJSON_Parse(ev_str(cJSON_GetArrayItem(evs, 0), "data"));
  ck_assert_ptr_null(first); /* ... payload broken */
  cJSON_Delete(evs);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(body_limit_413) {
  struct lc_mock m;
  const char *args[] = {"--max-body", "1000", NULL};
  ck_assert_int_eq(lc_mock_start_args(&m, "[{\"reply\": {\"body\": \"{}\"}}]", args), 0);
  char *big = malloc(5001);
  memset(big, 'a', 5000);
  big[5000] = '\0';
  const char *expect[] = {"Expect: 100-continue", NULL};
  const char *no_expect[] = {"Expect:", NULL};
  struct opts o = {.body = big, .headers = expect};
  struct res r;
  http(&m, "/v1/chat/completions", &o, &r);
  ck_assert_int_eq(r.code, 413);
  res_free(&r);
  o.headers = no_expect;
  http(&m, "/v1/chat/completions", &o, &r);
  ck_assert_int_eq(r.code, 413);
  res_free(&r);
  big[900] = '\0';
  http(&m, "/v1/chat/completions", &o, &r);
  ck_assert_int_eq(r.code, 200);
  res_free(&r);
  free(big);
  stop(&m);
}
END_TEST

START_TEST(unmatched_is_500) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"path\": \"/only\"}, \"reply\": {\"body\": \"{}\"}}]");
  struct res r;
  post(&m, "/v1/chat/completions", "{}", &r);
  ck_assert_int_eq(r.code, 500);
  cJSON *j = cJSON_Parse(r.body);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "type")->valuestring, "mock_no_rule");
  ck_assert(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
                   "POST /v1/chat/completions") != NULL);
  cJSON_Delete(j);
  res_free(&r);
  ck_assert_int_eq(stat_num(&m, "unmatched"), 1);
  ck_assert_int_eq(stat_num(&m, "requests"), 1);
  stop(&m);
}
END_TEST

START_TEST(request_log_redacts_keys) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"body\": \"{}\"}}]");
  const char *hdrs[] = {"Authorization: Bearer sk-secret-123", "x-api-key: sk-ant-secret-456",
                        "anthropic-version: 2023-06-01", NULL};
  struct opts o = {.body = "{\"model\": \"m\", \"messages\": [1]}", .headers = hdrs};
  struct res r;
  http(&m, "/v1/messages?beta=true", &o, &r);
  res_free(&r);
  o.body = "not json";
  o.headers = NULL;
  http(&m, "/second", &o, &r);
  res_free(&r);
  char *log = lc_mock_requests(&m);
  ck_assert_ptr_nonnull(log);
  ck_assert(strstr(log, "secret") == NULL);
  cJSON *arr = cJSON_Parse(log);
  free(log);
  ck_assert_int_eq(cJSON_GetArraySize(arr), 2); /* control calls are not logged */
  cJSON *e0 = cJSON_GetArrayItem(arr, 0), *e1 = cJSON_GetArrayItem(arr, 1);
  ck_assert_str_eq(cJSON_GetObjectItem(e0, "method")->valuestring, "POST");
  ck_assert_str_eq(cJSON_GetObjectItem(e0, "path")->valuestring, "/v1/messages?beta=true");
  cJSON *h = cJSON_GetObjectItem(e0, "headers");
  ck_assert_str_eq(cJSON_GetObjectItem(h, "authorization")->valuestring, "<redacted>");
  ck_assert_str_eq(cJSON_GetObjectItem(h, "x-api-key")->valuestring, "<redacted>");
  ck_assert_str_eq(cJSON_GetObjectItem(h, "anthropic-version")->valuestring, "2023-06-01");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e0, "body"), "model")->valuestring, "m");
  ck_assert_str_eq(cJSON_GetObjectItem(e1, "body")->valuestring, "not json");
  ck_assert(cJSON_GetObjectItem(e1, "time_ms")->valuedouble >= cJSON_GetObjectItem(e0, "time_ms")->valuedouble);
  cJSON_Delete(arr);
  stop(&m);
}
END_TEST

START_TEST(script_replace) {
  struct lc_mock m;
  start(&m, "[]");
  struct res r;
  post(&m, "/a", "{}", &r);
  ck_assert_int_eq(r.code, 500);
  res_free(&r);
  ck_assert_int_eq(lc_mock_set_script(&m, "{\"rules\": [{\"reply\": {\"status\": 201, \"body\": \"{}\"}}]}"), 0);
  post(&m, "/a", "{}", &r);
  ck_assert_int_eq(r.code, 201);
  res_free(&r);
  /* A bad script is refused with 400 and the old one stays. */
  ck_assert_int_ne(lc_mock_set_script(&m, "[{\"reply\": {\"fixture\": \"/nonexistent.json\"}}]"), 0);
  ck_assert_int_ne(lc_mock_set_script(&m, "[{\"match\": {\"pathh\": \"/x\"}, \"reply\": {}}]"), 0);
  ck_assert_int_ne(lc_mock_set_script(&m, "{not json"), 0);
  post(&m, "/a", "{}", &r);
  ck_assert_int_eq(r.code, 201);
  res_free(&r);
  stop(&m);
}
END_TEST

START_TEST(matching_fields) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"method\": \"GET\"}, \"reply\": {\"status\": 201}},"
            " {\"match\": {\"headers\": {\"X-Tenant\": \"blue\"}}, \"reply\": {\"status\": 202}},"
            " {\"match\": {\"headers\": {\"x-any\": \"*\"}}, \"reply\": {\"status\": 203}},"
            " {\"match\": {\"path_prefix\": \"/v1/\", \"stream\": true}, \"reply\": {\"status\": 204}},"
            " {\"match\": {\"path\": \"/v1/chat/completions\", \"body_contains\": \"needle\"}, \"reply\": {\"status\": 205}},"
            " {\"match\": {\"path_prefix\": \"/v1/\"}, \"reply\": {\"status\": 206}}]");
  struct { const char *path, *body, *hdr; long want; } cases[] = {
      {"/z", NULL, NULL, 201},
      {"/z", "{}", "X-Tenant: blue", 202},
      {"/z", "{}", "X-Tenant: red", 500},
      {"/z", "{}", "X-Any: 1", 203},
      {"/v1/x", "{\"stream\": true}", NULL, 204},
      {"/v1/chat/completions", "{\"q\": \"a needle here\"}", NULL, 205},
      {"/v1/chat/completions", "{\"q\": \"hay\"}", NULL, 206},
      {"/v2/x", "{}", NULL, 500},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *hdrs[] = {cases[i].hdr, NULL};
    struct opts o = {.body = cases[i].body, .headers = hdrs};
    struct res r;
    http(&m, cases[i].path, &o, &r);
    ck_assert_msg(r.code == cases[i].want, "case %zu: %ld", i, r.code);
    res_free(&r);
  }
  stop(&m);
}
END_TEST

START_TEST(split_and_pipelined_requests) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"openai\": {\"echo\": true}}}]");
  const char *body = "{\"messages\": [{\"role\": \"user\", \"content\": \"bytewise\"}]}";
  const char *fmt = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s";
  char req[512], two[1100];
  int n = snprintf(req, sizeof req, fmt, "", strlen(body), body);
  int k = snprintf(two, sizeof two, "%s", req);
  snprintf(two + k, sizeof two - (size_t)k, fmt, "Connection: close\r\n", strlen(body), body);
  int fd = dial(&m);
  /* One byte per write: the server must assemble the request across reads.
   * Then two requests in one write (pipelined), the second asking to close
   * so that reading to EOF collects all three answers. */
  for (int i = 0; i < n; i++) ck_assert_int_eq(write(fd, req + i, 1), 1);
  ck_assert_int_eq(write(fd, two, strlen(two)), (ssize_t)strlen(two));
  size_t len;
  char *got = read_all(fd, SIZE_MAX, &len);
  close(fd);
  int answers = 0;
  for (char *p = got; (p = strstr(p, "HTTP/1.1 200 OK")); p++) answers++;
  ck_assert_int_eq(answers, 3);
  int echoes = 0;
  for (char *p = got; (p = strstr(p, "\"content\":\"bytewise\"")); p++) echoes++;
  ck_assert_int_eq(echoes, 3);
  free(got);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/v1/chat/completions"), 3);
  stop(&m);
}
END_TEST

START_TEST(keep_alive_and_close) {
  struct lc_mock m;
  start(&m, "[{\"match\": {\"path\": \"/close\"}, \"reply\": {\"close\": true, \"body\": \"{}\"}},"
            " {\"reply\": {\"body\": \"{}\"}}]");
  CURL *h = curl_easy_init();
  struct opts o = {.body = "{}", .reuse = h};
  struct res r;
  http(&m, "/a", &o, &r);
  ck_assert_int_eq(r.connects, 1);
  res_free(&r);
  http(&m, "/a", &o, &r);
  ck_assert_int_eq(r.connects, 0); /* reused */
  res_free(&r);
  http(&m, "/close", &o, &r);
  ck_assert_int_eq(r.connects, 0);
  ck_assert(strstr(r.head, "Connection: close") != NULL);
  res_free(&r);
  http(&m, "/a", &o, &r);
  ck_assert_int_eq(r.connects, 1); /* the server closed the last one */
  res_free(&r);
  curl_easy_cleanup(h);
  stop(&m);
}
END_TEST

#define N_CONC 200

START_TEST(concurrent_200) {
  struct lc_mock m;
  start(&m, "[{\"reply\": {\"delay_ms\": 300, \"openai\": {\"echo\": true}}}]");
  CURLM *multi = curl_multi_init();
  for (int round = 0; round < 2; round++) {
    CURL *hs[N_CONC];
    struct acc bufs[N_CONC];
    char bodies[N_CONC][96];
    char url[128];
    snprintf(url, sizeof url, "%s/v1/chat/completions", m.base_url);
    for (int i = 0; i < N_CONC; i++) {
      memset(&bufs[i], 0, sizeof bufs[i]);
      snprintf(bodies[i], sizeof bodies[i], "{\"messages\": [{\"role\": \"user\", \"content\": \"req-%d\"}]}", i);
      hs[i] = curl_easy_init();
      curl_easy_setopt(hs[i], CURLOPT_URL, url);
      curl_easy_setopt(hs[i], CURLOPT_POSTFIELDS, bodies[i]);
      curl_easy_setopt(hs[i], CURLOPT_WRITEFUNCTION, on_bytes);
      curl_easy_setopt(hs[i], CURLOPT_WRITEDATA, &bufs[i]);
      curl_easy_setopt(hs[i], CURLOPT_TIMEOUT_MS, 30000L);
      curl_easy_setopt(hs[i], CURLOPT_NOSIGNAL, 1L);
      curl_multi_add_handle(multi, hs[i]);
    }
    int running = 1;
    while (running) {
      ck_assert_int_eq(curl_multi_perform(multi, &running), CURLM_OK);
      if (running) curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    for (int i = 0; i < N_CONC; i++) {
      long code = 0;
      curl_easy_getinfo(hs[i], CURLINFO_RESPONSE_CODE, &code);
      ck_assert_msg(code == 200, "request %d: %ld", i, code);
      char want[32];
      snprintf(want, sizeof want, "\"content\":\"req-%d\"", i);
      ck_assert_msg(bufs[i].p && strstr(bufs[i].p, want), "request %d got the wrong answer", i);
      curl_multi_remove_handle(multi, hs[i]);
      curl_easy_cleanup(hs[i]);
      free(bufs[i].p);
    }
    if (round == 0) {
      ck_assert_int_eq(stat_num(&m, "requests"), N_CONC);
      long peak = stat_num(&m, "peak_in_flight");
      ck_assert_msg(peak >= N_CONC / 2, "peak_in_flight %ld", peak);
    }
  }
  /* The server counts a request out after its last write returns, which
   * can be just after the client has the whole answer: ask until it
   * settles (bounded), then check. */
  for (int tries = 0; tries < 2000 && stat_num(&m, "in_flight") != 0; tries++) {
  }
  cJSON *s = stats(&m);
  ck_assert_int_eq((long)cJSON_GetObjectItem(s, "requests")->valuedouble, 2 * N_CONC);
  ck_assert_int_eq((long)cJSON_GetObjectItem(s, "in_flight")->valuedouble, 0);
  /* the second round rode the first round's keep-alive connections */
  ck_assert_int_le((long)cJSON_GetObjectItem(s, "connections")->valuedouble, N_CONC + N_CONC / 2 + 10);
  cJSON_Delete(s);
  curl_multi_cleanup(multi);
  stop(&m);
}
END_TEST

Suite *mockllm_suite(void) {
  Suite *s = suite_create("mockllm");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, starts_and_stops_cleanly);
  tcase_add_test(tc, openai_nonstream);
  tcase_add_test(tc, openai_stream);
  tcase_add_test(tc, anthropic_both);
  tcase_add_test(tc, ollama_both);
  tcase_add_test(tc, echo_last_user_or_tool);
  tcase_add_test(tc, serves_fixtures);
  tcase_add_test(tc, gemini_three_framings);
  tcase_add_test(tc, bedrock_event_stream);
  tcase_add_test(tc, times_sequence_and_reset);
  tcase_add_test(tc, retry_after_and_headers);
  tcase_add_test(tc, delay_and_latency);
  tcase_add_test(tc, paced_body);
  tcase_add_test(tc, cut_mid_body);
  tcase_add_test(tc, stall_until_client_gives_up);
  tcase_add_test(tc, stop_while_stalled);
  tcase_add_test(tc, malformed_bodies);
  tcase_add_test(tc, body_limit_413);
  tcase_add_test(tc, unmatched_is_500);
  tcase_add_test(tc, request_log_redacts_keys);
  tcase_add_test(tc, script_replace);
  tcase_add_test(tc, matching_fields);
  tcase_add_test(tc, split_and_pipelined_requests);
  tcase_add_test(tc, keep_alive_and_close);
  tcase_add_test(tc, concurrent_200);
  suite_add_tcase(s, tc);
  return s;
}
