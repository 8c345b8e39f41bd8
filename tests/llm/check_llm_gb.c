/* check_llm_gb.c: the Gemini and Bedrock adapters beyond the recordings:
 * the event-stream decoder's framing and CRC checks, errors by kind and
 * the providers' own retry hints (Gemini RetryInfo, x-amzn-ErrorType,
 * exceptions inside a ConverseStream), both Gemini stream framings from
 * the mock, thoughtSignature echo, SigV4 signing and credentials, and
 * keys kept out of URLs, logs and error text. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "eventstream.h"
#include "lc.h"
#include "llm.h"
#include "llm_bedrock.h"
#include "sigv4.h"
#include "llm_call.h"
#include "loop.h"
#include "secrets.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

/* ---- event-stream decoder ---- */

struct es_seen {
  int n;
  struct lc_buf payloads;
  char types[8][32];
};

static int es_cb(void *ud, const struct lc_es_msg *m) {
  struct es_seen *s = ud;
  size_t n;
  const char *t = lc_es_header_str(m, ":event-type", &n);
  if (s->n < 8) snprintf(s->types[s->n], sizeof s->types[0], "%.*s", (int)n, t ? t : "");
  s->n++;
  lc_buf_append(&s->payloads, m->payload, m->payload_len);
  lc_buf_append(&s->payloads, "|", 1);
  return 0;
}

static void three_frames(struct lc_buf *b) {
  const char *names[] = {":event-type", ":content-type", ":message-type"};
  const char *v1[] = {"messageStart", "application/json", "event"};
  const char *v2[] = {"contentBlockDelta", "application/json", "event"};
  const char *v3[] = {"messageStop", "application/json", "event"};
  lc_buf_init(b, 0);
  ck_assert_int_eq(lc_es_encode(b, names, v1, 3, "{\"role\":\"assistant\"}", 20), 0);
  ck_assert_int_eq(lc_es_encode(b, names, v2, 3, "{\"delta\":{\"text\":\"hi\"}}", 23), 0);
  ck_assert_int_eq(lc_es_encode(b, names, v3, 3, "", 0), 0);
}

START_TEST(es_roundtrip_split_anywhere) {
  struct lc_buf b;
  three_frames(&b);
  for (size_t cut = 0; cut <= b.len; cut++) {
    struct lc_es p;
    struct es_seen s;
    memset(&s, 0, sizeof s);
    lc_es_init(&p, 0);
    ck_assert_int_eq(lc_es_feed(&p, b.data, cut, es_cb, &s), 0);
    ck_assert_int_eq(lc_es_feed(&p, b.data + cut, b.len - cut, es_cb, &s), 0);
    ck_assert_int_eq(lc_es_end(&p), 0);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.types[1], "contentBlockDelta");
    ck_assert_str_eq(s.payloads.data, "{\"role\":\"assistant\"}|{\"delta\":{\"text\":\"hi\"}}||");
    lc_buf_free(&s.payloads);
    lc_es_free(&p);
  }
  lc_buf_free(&b);
}
END_TEST

/* Feeds b whole; returns feed's code, and p's message in err. */
static int es_try(const struct lc_buf *b, size_t max, char *err, size_t errlen) {
  struct lc_es p;
  struct es_seen s;
  memset(&s, 0, sizeof s);
  lc_es_init(&p, max);
  int rc = lc_es_feed(&p, b->data, b->len, es_cb, &s);
  snprintf(err, errlen, "%s", p.err);
  lc_buf_free(&s.payloads);
  lc_es_free(&p);
  return rc;
}

START_TEST(es_prelude_crc_checked) {
  struct lc_buf b;
  three_frames(&b);
  char err[128];
  b.data[8] ^= 1; /* the prelude CRC itself */
  ck_assert_int_eq(es_try(&b, 0, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "prelude CRC"), "%s", err);
  b.data[8] ^= 1;
  b.data[3] ^= 4; /* the total length: the prelude CRC catches it */
  ck_assert_int_eq(es_try(&b, 0, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "prelude CRC"), "%s", err);
  lc_buf_free(&b);
}
END_TEST

START_TEST(es_message_crc_checked) {
  struct lc_buf b;
  three_frames(&b);
  char err[128];
  size_t first = ((size_t)(unsigned char)b.data[2] << 8) | (unsigned char)b.data[3];
  b.data[first - 6] ^= 0x20; /* a payload byte of the first message */
  ck_assert_int_eq(es_try(&b, 0, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "message CRC"), "%s", err);
  lc_buf_free(&b);
}
END_TEST

START_TEST(es_bad_lengths_and_types) {
  char err[128];
  /* Headers longer than the message, with a valid prelude CRC. */
  unsigned char pre[16] = {0, 0, 0, 16, 0, 0, 0, 9};
  uint32_t c = lc_es_crc32(0, pre, 8);
  pre[8] = (unsigned char)(c >> 24), pre[9] = (unsigned char)(c >> 16);
  pre[10] = (unsigned char)(c >> 8), pre[11] = (unsigned char)c;
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_append(&b, pre, 16);
  ck_assert_int_eq(es_try(&b, 0, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "do not add up"), "%s", err);
  /* An unknown header type (a valid frame otherwise). */
  lc_buf_reset(&b);
  const char *n[] = {"x"}, *v[] = {"y"};
  ck_assert_int_eq(lc_es_encode(&b, n, v, 1, "{}", 2), 0);
  b.data[12 + 2] = 42;
  uint32_t mc = lc_es_crc32(0, b.data, b.len - 4);
  b.data[b.len - 4] = (char)(mc >> 24), b.data[b.len - 3] = (char)(mc >> 16);
  b.data[b.len - 2] = (char)(mc >> 8), b.data[b.len - 1] = (char)mc;
  ck_assert_int_eq(es_try(&b, 0, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "unknown type"), "%s", err);
  /* Over the size limit: refused from the prelude, before buffering. */
  lc_buf_reset(&b);
  ck_assert_int_eq(lc_es_encode(&b, n, v, 1, "{\"long\":\"xxxxxxxxxxxxxxxx\"}", 26), 0);
  ck_assert_int_eq(es_try(&b, 32, err, sizeof err), LC_ETOOBIG);
  lc_buf_free(&b);
}
END_TEST

START_TEST(es_cut_inside_a_message) {
  struct lc_buf b;
  three_frames(&b);
  struct lc_es p;
  lc_es_init(&p, 0);
  ck_assert_int_eq(lc_es_feed(&p, b.data, b.len - 3, NULL, NULL), 0);
  ck_assert_int_eq(lc_es_end(&p), 1);
  lc_es_free(&p);
  lc_buf_free(&b);
}
END_TEST

/* ---- Gemini parsing ---- */

static int feed_all(const struct lc_llm_adapter *ad, const char *s, struct lc_llm_response *r) {
  struct lc_llm_stream *st = ad->stream_new();
  lc_llm_response_init(r);
  ad->stream_feed(st, s, strlen(s), NULL, NULL);
  int rc = ad->stream_end(st, r);
  ad->stream_free(st);
  return rc;
}

START_TEST(gemini_retry_info_is_a_rate_limit_with_its_delay) {
  /* A per-minute quota: "exceeded your current quota" and a RetryInfo. */
  const char *body =
      "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please check "
      "your plan and billing details.\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":["
      "{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[]},"
      "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"23.5s\"}]}}";
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  lc_llm_gemini.parse_error(429, body, strlen(body), &r);
  ck_assert_str_eq(lc_llm_err_name(r.err), "rate_limit");
  ck_assert(r.retry_after_s > 23.49 && r.retry_after_s < 23.51);
  ck_assert_str_eq(r.err_type, "RESOURCE_EXHAUSTED");
  lc_llm_response_free(&r);
  /* The same without RetryInfo is a billing stop. */
  const char *q = "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, "
                  "please check your plan and billing details.\",\"status\":\"RESOURCE_EXHAUSTED\"}}";
  lc_llm_response_init(&r);
  lc_llm_gemini.parse_error(429, q, strlen(q), &r);
  ck_assert_str_eq(lc_llm_err_name(r.err), "quota");
  ck_assert(r.retry_after_s < 0);
  lc_llm_response_free(&r);
}
END_TEST

START_TEST(gemini_errors_by_kind) {
  static const struct {
    int status;
    const char *body, *kind, *type;
  } cases[] = {
      /* The JSON-array stream endpoint wraps errors in an array. */
      {400, "[{\"error\":{\"code\":400,\"message\":\"API key expired.\",\"status\":\"INVALID_ARGUMENT\","
            "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_EXPIRED\"}]}}]",
       "auth", "API_KEY_EXPIRED"},
      {400, "{\"error\":{\"code\":400,\"message\":\"The input token count (1200000) exceeds the maximum "
            "number of tokens allowed (1048576).\",\"status\":\"INVALID_ARGUMENT\"}}",
       "context_length", "INVALID_ARGUMENT"},
      {403, "{\"error\":{\"code\":403,\"message\":\"denied\",\"status\":\"PERMISSION_DENIED\"}}", "auth",
       "PERMISSION_DENIED"},
      {503, "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\","
            "\"status\":\"UNAVAILABLE\"}}",
       "overloaded", "UNAVAILABLE"},
      {500, "{\"error\":{\"code\":500,\"message\":\"Internal error\",\"status\":\"INTERNAL\"}}", "server",
       "INTERNAL"},
      {502, "<html><body>Bad Gateway</body></html>", "server", NULL},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(cases); i++) {
    struct lc_llm_response r;
    lc_llm_response_init(&r);
    lc_llm_gemini.parse_error(cases[i].status, cases[i].body, strlen(cases[i].body), &r);
    ck_assert_msg(strcmp(lc_llm_err_name(r.err), cases[i].kind) == 0, "case %zu: %s", i,
                  lc_llm_err_name(r.err));
    if (cases[i].type) ck_assert_str_eq(r.err_type, cases[i].type);
    lc_llm_response_free(&r);
  }
}
END_TEST

START_TEST(gemini_array_framing_is_strict) {
  struct lc_llm_response r;
  const char *ok = "\r\n [ {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a]\\\"}\"}]}}]}\n,\r\n"
                   "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}]}\n]\n";
  ck_assert_int_eq(feed_all(&lc_llm_gemini, ok, &r), 0);
  ck_assert_str_eq(r.text, "a]\"}b"); /* brackets inside strings are text */
  lc_llm_response_free(&r);
  static const char *bad[] = {
      "[{\"candidates\":[]}]x",              /* after the closing ] */
      "[\"text\"]",                          /* an element that is not an object */
      "[{\"candidates\":[]},]",              /* a trailing comma */
      "[{\"candidates\":[]} {\"a\":1}]",     /* no comma */
      "[{\"candidates\":[]}",                /* no closing ] */
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
    ck_assert_int_eq(feed_all(&lc_llm_gemini, bad[i], &r), LC_EINVAL);
    ck_assert_msg(r.err == LC_LLM_EBADRESP, "case %zu", i);
    lc_llm_response_free(&r);
  }
}
END_TEST

START_TEST(gemini_in_band_errors_and_blocked_prompts) {
  struct lc_llm_response r;
  /* A JSON error served as a 200 stream (bare object). */
  ck_assert_int_eq(feed_all(&lc_llm_gemini,
                            "{\n  \"error\": {\"code\": 429, \"message\": \"slow down\", "
                            "\"status\": \"RESOURCE_EXHAUSTED\"}\n}\n",
                            &r),
                   LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(r.err_message, "slow down"));
  /* Classified as Gemini's own error at its code: a rate limit. */
  ck_assert_str_eq(lc_llm_err_name(r.err), "rate_limit");
  ck_assert_str_eq(r.err_type, "RESOURCE_EXHAUSTED");
  lc_llm_response_free(&r);
  /* In the array framing, with a RetryInfo: its delay is kept. */
  ck_assert_int_eq(feed_all(&lc_llm_gemini,
                            "[{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\","
                            "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
                            "\"retryDelay\":\"5s\"}]}}]",
                            &r),
                   LC_EINVAL);
  ck_assert_str_eq(lc_llm_err_name(r.err), "rate_limit");
  ck_assert(r.retry_after_s == 5);
  lc_llm_response_free(&r);
  /* An error event in the middle of an SSE stream. */
  ck_assert_int_eq(feed_all(&lc_llm_gemini,
                            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\r\n\r\n"
                            "data: {\"error\":{\"code\":500,\"message\":\"boom\",\"status\":\"INTERNAL\"}}\r\n\r\n",
                            &r),
                   LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(r.err_message, "boom"));
  ck_assert_ptr_null(r.text);
  lc_llm_response_free(&r);
  /* A refused prompt: no candidates, a blockReason. */
  const char *blk = "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":"
                    "{\"promptTokenCount\":7,\"totalTokenCount\":7}}";
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_gemini.parse(blk, strlen(blk), &r), 0);
  ck_assert_int_eq(r.finish, LC_FINISH_CONTENT_FILTER);
  ck_assert_str_eq(r.finish_raw, "SAFETY");
  ck_assert_int_eq(r.usage.input, 7);
  lc_llm_response_free(&r);
  /* MAX_TOKENS is a length stop. */
  const char *mx = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":"
                   "\"MAX_TOKENS\"}]}";
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_gemini.parse(mx, strlen(mx), &r), 0);
  ck_assert_int_eq(r.finish, LC_FINISH_LENGTH);
  lc_llm_response_free(&r);
}
END_TEST

/* ---- Gemini requests ---- */

static void req_init(struct lc_llm_request *q, enum lc_llm_provider p) {
  memset(q, 0, sizeof *q);
  q->provider = p;
  q->model = lc_strdup("m-1");
  q->msgs = lc_calloc(8, sizeof *q->msgs);
}

static struct lc_llm_msg *msg(struct lc_llm_request *q, enum lc_llm_role role, const char *t) {
  struct lc_llm_msg *m = &q->msgs[q->n_msgs++];
  m->role = role;
  m->content = t ? lc_strdup(t) : NULL;
  return m;
}

static void call(struct lc_llm_msg *m, const char *id, const char *name, const char *sig) {
  m->tool_calls = lc_realloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *m->tool_calls);
  struct lc_llm_tool_call *c = &m->tool_calls[m->n_tool_calls++];
  memset(c, 0, sizeof *c);
  c->id = lc_strdup(id);
  c->name = lc_strdup(name);
  c->args_json = lc_strdup("{\"q\":1}");
  c->signature = sig ? lc_strdup(sig) : NULL;
}

START_TEST(gemini_request_echoes_signatures_and_names_results) {
  struct lc_llm_request q;
  req_init(&q, LC_PROV_GEMINI);
  msg(&q, LC_ROLE_SYSTEM, "be brief");
  msg(&q, LC_ROLE_USER, "hi");
  struct lc_llm_msg *a = msg(&q, LC_ROLE_ASSISTANT, NULL);
  call(a, "call_0", "lookup", "c2lnLzEr");
  call(a, "fc-7", "fetch", NULL);
  msg(&q, LC_ROLE_TOOL, "one")->tool_call_id = lc_strdup("call_0");
  struct lc_llm_msg *t2 = msg(&q, LC_ROLE_TOOL, "bad");
  t2->tool_call_id = lc_strdup("fc-7");
  t2->is_error = 1;
  q.api_key = lc_strdup("AIzaSyTESTKEY-0123456789");
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_int_eq(lc_llm_gemini.build(&q, &h, err, sizeof err), 0);
  ck_assert_str_eq(
      h.body,
      "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]},{\"role\":\"model\",\"parts\":"
      "[{\"functionCall\":{\"name\":\"lookup\",\"args\":{\"q\":1}},\"thoughtSignature\":\"c2lnLzEr\"},"
      "{\"functionCall\":{\"name\":\"fetch\",\"args\":{\"q\":1},\"id\":\"fc-7\"}}]},{\"role\":\"user\","
      "\"parts\":[{\"functionResponse\":{\"name\":\"lookup\",\"response\":{\"output\":\"one\"}}},"
      "{\"functionResponse\":{\"name\":\"fetch\",\"response\":{\"error\":\"bad\"},\"id\":\"fc-7\"}}]}],"
      "\"systemInstruction\":{\"parts\":[{\"text\":\"be brief\"}]}}");
  ck_assert_str_eq(h.url, "https://generativelanguage.googleapis.com/v1beta/models/m-1:generateContent");
  ck_assert_ptr_null(strstr(h.url, "AIza"));
  int found = 0;
  for (size_t i = 0; i < h.n_headers; i++)
    found |= strcmp(h.headers[i], "x-goog-api-key: AIzaSyTESTKEY-0123456789") == 0;
  ck_assert(found);
  lc_llm_http_free(&h);
  /* A result whose call is unknown and that has no name cannot be sent. */
  lc_free(q.msgs[3].tool_call_id);
  q.msgs[3].tool_call_id = lc_strdup("nope");
  ck_assert_int_eq(lc_llm_gemini.build(&q, &h, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "nope"));
  lc_llm_request_free(&q);
}
END_TEST

/* A Gemini 3 text signature comes back as reasoning_state and goes out
 * again on the replayed turn's text (and only to Gemini). */
START_TEST(gemini_text_signature_round_trip) {
  const char *body = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"4\",\"thoughtSignature\":"
                     "\"VFNJRw==\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}]}";
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_gemini.parse(body, strlen(body), &r), 0);
  ck_assert_str_eq(r.reasoning_state, "[{\"thoughtSignature\":\"VFNJRw==\"}]");
  struct lc_llm_request q;
  req_init(&q, LC_PROV_GEMINI);
  msg(&q, LC_ROLE_USER, "2+2?");
  struct lc_llm_msg *a = msg(&q, LC_ROLE_ASSISTANT, r.text);
  a->reasoning_state = lc_strdup(r.reasoning_state);
  a->reasoning_prov = LC_PROV_GEMINI;
  msg(&q, LC_ROLE_USER, "and 3+3?");
  struct lc_llm_http h;
  char err[128];
  ck_assert_int_eq(lc_llm_gemini.build(&q, &h, err, sizeof err), 0);
  ck_assert_ptr_nonnull(strstr(h.body, "{\"role\":\"model\",\"parts\":[{\"text\":\"4\",\"thoughtSignature\":\"VFNJRw==\"}]}"));
  lc_llm_http_free(&h);
  /* State another provider wrote is not Gemini's to send. */
  a->reasoning_prov = LC_PROV_ANTHROPIC;
  ck_assert_int_eq(lc_llm_gemini.build(&q, &h, err, sizeof err), 0);
  ck_assert_ptr_null(strstr(h.body, "thoughtSignature"));
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  /* Streamed: the signature on a trailing empty text part. */
  struct lc_llm_response s;
  ck_assert_int_eq(feed_all(&lc_llm_gemini,
                            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"4\"}]}}]}\r\n\r\n"
                            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\",\"thoughtSignature\":"
                            "\"U0lH\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n",
                            &s),
                   0);
  ck_assert_str_eq(s.text, "4");
  ck_assert_str_eq(s.reasoning_state, "[{\"thoughtSignature\":\"U0lH\"}]");
  lc_llm_response_free(&s);
  lc_llm_response_free(&r);
}
END_TEST

/* ---- images ---- */

static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                    'I', 'H', 'D', 'R'};

static void add_png(struct lc_llm_msg *m) {
  m->parts = lc_realloc(m->parts, (m->n_parts + 1) * sizeof *m->parts);
  char err[128];
  ck_assert_int_eq(lc_llm_part_image_bytes(&m->parts[m->n_parts++], png, sizeof png, NULL, err,
                                           sizeof err), 0);
}

static int build_err(const struct lc_llm_adapter *ad, struct lc_llm_request *q, char *err,
                     size_t n) {
  struct lc_llm_http h;
  int rc = ad->build(q, &h, err, n);
  if (!rc) lc_llm_http_free(&h);
  return rc;
}

START_TEST(images_in_each_form) {
  /* Gemini: inlineData after the text, in the user turn. */
  struct lc_llm_request q;
  req_init(&q, LC_PROV_GEMINI);
  add_png(msg(&q, LC_ROLE_USER, "What is this?"));
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_int_eq(lc_llm_gemini.build(&q, &h, err, sizeof err), 0);
  ck_assert_str_eq(h.body, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"What is this?\"},"
                           "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":"
                           "\"iVBORw0KGgoAAAANSUhEUg==\"}}]}]}");
  lc_llm_http_free(&h);
  /* A URL, or an image in a tool result: refused, never sent. */
  struct lc_llm_msg *t = msg(&q, LC_ROLE_TOOL, "shot");
  t->name = lc_strdup("camera");
  add_png(t);
  ck_assert_int_eq(build_err(&lc_llm_gemini, &q, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "user messages only"), "%s", err);
  lc_llm_request_free(&q);
  req_init(&q, LC_PROV_GEMINI);
  struct lc_llm_msg *u = msg(&q, LC_ROLE_USER, NULL);
  u->parts = lc_calloc(1, sizeof *u->parts);
  ck_assert_int_eq(lc_llm_part_image_url(&u->parts[0], "https://example.com/a.png", err, sizeof err), 0);
  u->n_parts = 1;
  ck_assert_int_eq(build_err(&lc_llm_gemini, &q, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "not URLs"), "%s", err);
  lc_llm_request_free(&q);

  /* Bedrock: image bytes in a user turn and in a tool result. */
  req_init(&q, LC_PROV_BEDROCK);
  q.api_key = lc_strdup("bedrock-key-0123456789");
  q.base_url = lc_strdup("http://127.0.0.1:1");
  add_png(msg(&q, LC_ROLE_USER, NULL)); /* no text: the image alone */
  struct lc_llm_msg *a = msg(&q, LC_ROLE_ASSISTANT, NULL);
  call(a, "tu1", "camera", NULL);
  t = msg(&q, LC_ROLE_TOOL, "shot");
  t->tool_call_id = lc_strdup("tu1");
  add_png(t);
  ck_assert_int_eq(lc_llm_bedrock.build(&q, &h, err, sizeof err), 0);
  const char *img = "{\"image\":{\"format\":\"png\",\"source\":{\"bytes\":\"iVBORw0KGgoAAAANSUhEUg==\"}}}";
  char want[1024];
  snprintf(want, sizeof want,
           "{\"messages\":[{\"role\":\"user\",\"content\":[%s]},{\"role\":\"assistant\",\"content\":"
           "[{\"toolUse\":{\"toolUseId\":\"tu1\",\"name\":\"camera\",\"input\":{\"q\":1}}}]},"
           "{\"role\":\"user\",\"content\":[{\"toolResult\":{\"toolUseId\":\"tu1\",\"content\":"
           "[{\"text\":\"shot\"},%s]}}]}],\"inferenceConfig\":{}}",
           img, img);
  ck_assert_str_eq(h.body, want);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  /* Over Bedrock's 3.75 MB per image: refused. */
  req_init(&q, LC_PROV_BEDROCK);
  q.api_key = lc_strdup("bedrock-key-0123456789");
  u = msg(&q, LC_ROLE_USER, "big");
  size_t big = 4u << 20;
  unsigned char *bytes = lc_calloc(1, big);
  memcpy(bytes, png, sizeof png);
  u->parts = lc_calloc(1, sizeof *u->parts);
  ck_assert_int_eq(lc_llm_part_image_bytes(&u->parts[0], bytes, big, NULL, err, sizeof err), 0);
  u->n_parts = 1;
  lc_free(bytes);
  ck_assert_int_eq(build_err(&lc_llm_bedrock, &q, err, sizeof err), LC_EINVAL);
  ck_assert_msg(strstr(err, "3.75 MB"), "%s", err);
  lc_llm_request_free(&q);
}
END_TEST

/* ---- Bedrock ---- */

START_TEST(bedrock_error_type_header_decides_the_kind) {
  static const struct {
    int status;
    const char *hdr, *kind, *type;
  } cases[] = {
      {429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", "rate_limit",
       "ThrottlingException"},
      {400, "ServiceQuotaExceededException", "rate_limit", "ServiceQuotaExceededException"},
      {429, "ModelNotReadyException:x", "overloaded", "ModelNotReadyException"},
      {403, "AccessDeniedException:x", "auth", "AccessDeniedException"},
      {408, "ModelTimeoutException:x", "timeout", "ModelTimeoutException"},
      {400, "ValidationException:x", "bad_request", "ValidationException"},
      {400, "SomethingNewException:x", "bad_request", "SomethingNewException"},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(cases); i++) {
    struct lc_llm_response r;
    lc_llm_response_init(&r);
    const char *body = "{\"message\":\"m\"}";
    lc_llm_bedrock.parse_error(cases[i].status, body, strlen(body), &r);
    lc_llm_bedrock_error_type(cases[i].hdr, &r);
    ck_assert_msg(strcmp(lc_llm_err_name(r.err), cases[i].kind) == 0, "case %zu: %s", i,
                  lc_llm_err_name(r.err));
    ck_assert_str_eq(r.err_type, cases[i].type);
    ck_assert_str_eq(r.err_message, "m");
    lc_llm_response_free(&r);
  }
  /* "Input is too long" is the context window, whatever the status said. */
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  const char *body = "{\"message\":\"Input is too long for requested model.\"}";
  lc_llm_bedrock.parse_error(400, body, strlen(body), &r);
  lc_llm_bedrock_error_type("ValidationException", &r);
  ck_assert_str_eq(lc_llm_err_name(r.err), "context_length");
  lc_llm_response_free(&r);
}
END_TEST

START_TEST(bedrock_request_shape) {
  struct lc_llm_request q;
  req_init(&q, LC_PROV_BEDROCK);
  free(q.model);
  q.model = lc_strdup("anthropic.claude-3-haiku-20240307-v1:0");
  msg(&q, LC_ROLE_SYSTEM, "sys");
  msg(&q, LC_ROLE_USER, "hi");
  struct lc_llm_msg *a = msg(&q, LC_ROLE_ASSISTANT, "let me look");
  call(a, "tooluse_1", "lookup", NULL);
  struct lc_llm_msg *t = msg(&q, LC_ROLE_TOOL, "failed");
  t->tool_call_id = lc_strdup("tooluse_1");
  t->is_error = 1;
  msg(&q, LC_ROLE_USER, "and?");
  q.set = LC_SET_MAX_TOKENS;
  q.max_tokens = 100;
  q.api_key = lc_strdup("bedrock-api-key-0123456789");
  q.base_url = lc_strdup("https://bedrock-runtime.eu-west-1.amazonaws.com/");
  q.stream = 1;
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_int_eq(lc_llm_bedrock.build(&q, &h, err, sizeof err), 0);
  ck_assert_str_eq(
      h.body,
      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]},{\"role\":\"assistant\","
      "\"content\":[{\"text\":\"let me look\"},{\"toolUse\":{\"toolUseId\":\"tooluse_1\",\"name\":"
      "\"lookup\",\"input\":{\"q\":1}}}]},{\"role\":\"user\",\"content\":[{\"toolResult\":{"
      "\"toolUseId\":\"tooluse_1\",\"content\":[{\"text\":\"failed\"}],\"status\":\"error\"}},"
      "{\"text\":\"and?\"}]}],\"system\":[{\"text\":\"sys\"}],\"inferenceConfig\":{\"maxTokens\":100}}");
  ck_assert_str_eq(h.url, "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
                          "anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
  ck_assert_ptr_null(h.aws_sigv4); /* a bearer key, not signed */
  lc_llm_http_free(&h);
  /* Two assistant replies in a row share one turn (roles alternate). */
  msg(&q, LC_ROLE_ASSISTANT, "first");
  msg(&q, LC_ROLE_ASSISTANT, "second");
  ck_assert_int_eq(lc_llm_bedrock.build(&q, &h, err, sizeof err), 0);
  ck_assert_ptr_nonnull(strstr(h.body, "{\"text\":\"and?\"}]},{\"role\":\"assistant\",\"content\":"
                                       "[{\"text\":\"first\"},{\"text\":\"second\"}]}]"));
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
}
END_TEST

/* Temporary credentials: an STS session token (and a short-term Bedrock
 * API key) runs past 1 KB, and must go out whole. */
START_TEST(bedrock_long_session_token) {
  char tok[2049];
  memset(tok, 'T', sizeof tok - 1);
  tok[sizeof tok - 1] = '\0';
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0123456789", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  setenv("AWS_SESSION_TOKEN", tok, 1);
  setenv("AWS_REGION", "eu-central-1", 1);
  unsetenv("AWS_BEARER_TOKEN_BEDROCK");
  struct lc_llm_request q;
  req_init(&q, LC_PROV_BEDROCK);
  msg(&q, LC_ROLE_USER, "hi");
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_msg(lc_llm_bedrock.build(&q, &h, err, sizeof err) == 0, "%s", err);
  ck_assert_str_eq(h.url, "https://bedrock-runtime.eu-central-1.amazonaws.com/model/m-1/converse");
  ck_assert_str_eq(h.aws_sigv4, "aws:amz:eu-central-1:bedrock");
  int found = 0;
  for (size_t i = 0; i < h.n_headers; i++)
    found |= strncmp(h.headers[i], "x-amz-security-token: TTTT", 26) == 0 &&
             strlen(h.headers[i]) == 22 + sizeof tok - 1;
  ck_assert(found);
  lc_llm_http_free(&h);
  /* A long bearer key as well. */
  q.api_key = lc_strdup(tok);
  ck_assert_msg(lc_llm_bedrock.build(&q, &h, err, sizeof err) == 0, "%s", err);
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
}
END_TEST

/* One Bedrock stream with an exception frame after some text. */
START_TEST(bedrock_stream_exception_is_an_error_of_its_kind) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  const char *n[] = {":event-type", ":content-type", ":message-type"};
  const char *v[] = {"contentBlockDelta", "application/json", "event"};
  ck_assert_int_eq(lc_es_encode(&b, n, v, 3, "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"hi\"}}", 45), 0);
  const char *xn[] = {":exception-type", ":content-type", ":message-type"};
  const char *xv[] = {"throttlingException", "application/json", "exception"};
  const char *p = "{\"message\":\"Too many requests, please wait before trying again.\"}";
  ck_assert_int_eq(lc_es_encode(&b, xn, xv, 3, p, strlen(p)), 0);
  struct lc_llm_stream *st = lc_llm_bedrock.stream_new();
  ck_assert_int_eq(lc_llm_bedrock.stream_feed(st, b.data, b.len, NULL, NULL), LC_EINVAL);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_bedrock.stream_end(st, &r), LC_EINVAL);
  lc_llm_bedrock.stream_free(st);
  ck_assert_str_eq(lc_llm_err_name(r.err), "rate_limit");
  ck_assert_str_eq(r.err_type, "ThrottlingException");
  ck_assert_ptr_nonnull(strstr(r.err_message, "Too many requests"));
  ck_assert_ptr_null(r.text);
  lc_llm_response_free(&r);
  lc_buf_free(&b);
}
END_TEST

/* Extended thinking through Bedrock (Anthropic models): the reasoning
 * blocks, signature included, are kept as reasoning_state, streamed or
 * not, and go back first in the replayed turn. */
static void es_event(struct lc_buf *b, const char *type, const char *payload) {
  const char *n[] = {":event-type", ":content-type", ":message-type"};
  const char *v[] = {type, "application/json", "event"};
  ck_assert_int_eq(lc_es_encode(b, n, v, 3, payload, strlen(payload)), 0);
}

START_TEST(bedrock_reasoning_round_trip) {
  const char *want_state = "[{\"reasoningContent\":{\"reasoningText\":{\"text\":\"Let me think\","
                           "\"signature\":\"c2ln\"}}}]";
  struct lc_buf b;
  lc_buf_init(&b, 0);
  es_event(&b, "messageStart", "{\"role\":\"assistant\"}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"text\":\"Let me\"}}}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"text\":\" think\"}}}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"signature\":\"c2ln\"}}}");
  es_event(&b, "contentBlockStop", "{\"contentBlockIndex\":0}");
  es_event(&b, "contentBlockStart", "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":\"tu1\",\"name\":\"f\"}}}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{}\"}}}");
  es_event(&b, "messageStop", "{\"stopReason\":\"tool_use\"}");
  es_event(&b, "metadata", "{\"usage\":{\"inputTokens\":3,\"outputTokens\":4}}");
  struct lc_llm_stream *st = lc_llm_bedrock.stream_new();
  for (size_t i = 0; i < b.len; i++) /* bytewise */
    ck_assert_int_eq(lc_llm_bedrock.stream_feed(st, b.data + i, 1, NULL, NULL), 0);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_bedrock.stream_end(st, &r), 0);
  lc_llm_bedrock.stream_free(st);
  lc_buf_free(&b);
  ck_assert_str_eq(r.reasoning, "Let me think");
  ck_assert_str_eq(r.reasoning_state, want_state);
  ck_assert_uint_eq(r.n_tool_calls, 1);
  /* Not streamed: the same block, verbatim. */
  const char *body = "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"reasoningContent\":"
                     "{\"reasoningText\":{\"text\":\"Let me think\",\"signature\":\"c2ln\"}}},{\"toolUse\":"
                     "{\"toolUseId\":\"tu1\",\"name\":\"f\",\"input\":{}}}]}},\"stopReason\":\"tool_use\"}";
  struct lc_llm_response w;
  lc_llm_response_init(&w);
  ck_assert_int_eq(lc_llm_bedrock.parse(body, strlen(body), &w), 0);
  ck_assert_str_eq(w.reasoning_state, want_state);
  lc_llm_response_free(&w);
  /* Replayed: the block first in the assistant turn; thinking asked for. */
  struct lc_llm_request q;
  req_init(&q, LC_PROV_BEDROCK);
  q.api_key = lc_strdup("bedrock-key-0123456789");
  q.base_url = lc_strdup("http://127.0.0.1:1");
  q.thinking_budget = 2048;
  q.cache_control = 1;
  msg(&q, LC_ROLE_SYSTEM, "sys");
  msg(&q, LC_ROLE_USER, "hi");
  struct lc_llm_msg *a = msg(&q, LC_ROLE_ASSISTANT, NULL);
  call(a, "tu1", "f", NULL);
  a->reasoning_state = lc_strdup(r.reasoning_state);
  a->reasoning_prov = LC_PROV_BEDROCK;
  msg(&q, LC_ROLE_TOOL, "done")->tool_call_id = lc_strdup("tu1");
  struct lc_llm_http h;
  char err[128];
  ck_assert_int_eq(lc_llm_bedrock.build(&q, &h, err, sizeof err), 0);
  ck_assert_str_eq(
      h.body,
      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]},{\"role\":\"assistant\","
      "\"content\":[{\"reasoningContent\":{\"reasoningText\":{\"text\":\"Let me think\",\"signature\":"
      "\"c2ln\"}}},{\"toolUse\":{\"toolUseId\":\"tu1\",\"name\":\"f\",\"input\":{\"q\":1}}}]},"
      "{\"role\":\"user\",\"content\":[{\"toolResult\":{\"toolUseId\":\"tu1\",\"content\":[{\"text\":"
      "\"done\"}]}},{\"cachePoint\":{\"type\":\"default\"}}]}],\"system\":[{\"text\":\"sys\"},"
      "{\"cachePoint\":{\"type\":\"default\"}}],\"inferenceConfig\":{},\"additionalModelRequestFields\":"
      "{\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}}}");
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
  lc_llm_response_free(&r);
}
END_TEST

/* Streamed reasoning (audit 18): blocks are joined in buffers (one cJSON
 * string rebuilt per delta made a stream of small deltas quadratic: 11 s
 * of the loop's thread for a 16 MB stream), many deltas of several blocks
 * come back whole and in order, a redacted block keeps its data, and more
 * than 1024 blocks (found by a linear search per delta) is a bad
 * response, as for Anthropic's thinking blocks. */
START_TEST(bedrock_streamed_reasoning_blocks) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  es_event(&b, "messageStart", "{\"role\":\"assistant\"}");
  for (int i = 0; i < 3000; i++)
    es_event(&b, "contentBlockDelta", i % 2 ? "{\"contentBlockIndex\":2,\"delta\":{\"reasoningContent\":{\"text\":\"b\"}}}"
                                            : "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"text\":\"a\"}}}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"signature\":\"s0\"}}}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":3,\"delta\":{\"reasoningContent\":{\"redactedContent\":\"cmVk\"}}}");
  es_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":3,\"delta\":{\"reasoningContent\":{\"redactedContent\":\"YWN0\"}}}");
  es_event(&b, "messageStop", "{\"stopReason\":\"end_turn\"}");
  es_event(&b, "metadata", "{\"usage\":{\"inputTokens\":3,\"outputTokens\":4}}");
  struct lc_llm_stream *st = lc_llm_bedrock.stream_new();
  ck_assert_int_eq(lc_llm_bedrock.stream_feed(st, b.data, b.len, NULL, NULL), 0);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_bedrock.stream_end(st, &r), 0);
  lc_llm_bedrock.stream_free(st);
  char want[8192];
  char as[1501], bs[1501];
  memset(as, 'a', 1500);
  memset(bs, 'b', 1500);
  as[1500] = bs[1500] = '\0';
  snprintf(want, sizeof want,
           "[{\"reasoningContent\":{\"reasoningText\":{\"text\":\"%s\",\"signature\":\"s0\"}}},"
           "{\"reasoningContent\":{\"reasoningText\":{\"text\":\"%s\"}}},"
           "{\"reasoningContent\":{\"redactedContent\":\"cmVkYWN0\"}}]", as, bs);
  ck_assert_str_eq(r.reasoning_state, want);
  ck_assert_uint_eq(strlen(r.reasoning), 3000);
  lc_llm_response_free(&r);
  /* 1025 blocks: refused */
  lc_buf_reset(&b);
  char ev[160];
  for (int i = 0; i <= 1024; i++) {
    snprintf(ev, sizeof ev, "{\"contentBlockIndex\":%d,\"delta\":{\"reasoningContent\":{\"text\":\"t\"}}}", i);
    es_event(&b, "contentBlockDelta", ev);
  }
  es_event(&b, "messageStop", "{\"stopReason\":\"end_turn\"}");
  es_event(&b, "metadata", "{\"usage\":{\"inputTokens\":3,\"outputTokens\":4}}");
  st = lc_llm_bedrock.stream_new();
  lc_llm_bedrock.stream_feed(st, b.data, b.len, NULL, NULL);
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_bedrock.stream_end(st, &r), LC_EINVAL);
  lc_llm_bedrock.stream_free(st);
  ck_assert_str_eq(lc_llm_err_name(r.err), "bad_response");
  ck_assert_msg(strstr(r.err_message, "more than 1024 reasoning blocks"), "%s", r.err_message);
  lc_llm_response_free(&r);
  lc_buf_free(&b);
}
END_TEST

/* Usage counts a provider reports (audit 18): negative, or past any
 * model's reach, are taken as not reported. They fed the rate governor's
 * shared token schedule (1e15 tokens pushed every later call centuries
 * out) and the run's totals as they came. */
START_TEST(usage_counts_that_are_not_counts) {
  static const struct {
    const struct lc_llm_adapter *ad;
    const char *body;
  } cases[] = {
      {&lc_llm_openai_responses,
       "{\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":-5,\"output_tokens\":"
       "900000000000000,\"input_tokens_details\":{\"cached_tokens\":-1},\"output_tokens_details\":"
       "{\"reasoning_tokens\":-7}}}"},
      {&lc_llm_gemini,
       "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"STOP\"}],"
       "\"usageMetadata\":{\"promptTokenCount\":-3,\"candidatesTokenCount\":800000000000,"
       "\"thoughtsTokenCount\":-2,\"cachedContentTokenCount\":-9}}"},
      {&lc_llm_bedrock,
       "{\"output\":{\"message\":{\"content\":[{\"text\":\"x\"}]}},\"stopReason\":\"end_turn\","
       "\"usage\":{\"inputTokens\":-4,\"outputTokens\":-1,\"cacheReadInputTokens\":-8000000000000}}"},
      {&lc_llm_openai,
       "{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}],\"usage\":"
       "{\"prompt_tokens\":-9000000000000,\"completion_tokens\":-1}}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct lc_llm_response r;
    lc_llm_response_init(&r);
    ck_assert_int_eq(cases[i].ad->parse(cases[i].body, strlen(cases[i].body), &r), 0);
    ck_assert_msg(r.usage.input == 0 && r.usage.output == 0 && r.usage.cached == 0 &&
                      r.usage.reasoning == 0 && r.usage.cache_write == 0,
                  "%s: in %ld out %ld cached %ld reasoning %ld write %ld", cases[i].ad->name,
                  r.usage.input, r.usage.output, r.usage.cached, r.usage.reasoning,
                  r.usage.cache_write);
    lc_llm_response_free(&r);
  }
  /* Real counts stay as they came. */
  const char *ok = "{\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":4334,"
                   "\"output_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":4331}}}";
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  ck_assert_int_eq(lc_llm_openai_responses.parse(ok, strlen(ok), &r), 0);
  ck_assert_int_eq(r.usage.input, 4334);
  ck_assert_int_eq(r.usage.cached, 4331);
  ck_assert_int_eq(r.usage.output, 12);
  lc_llm_response_free(&r);
}
END_TEST

START_TEST(gemini_thinking_budget) {
  struct lc_llm_request q;
  req_init(&q, LC_PROV_GEMINI);
  msg(&q, LC_ROLE_USER, "hi");
  q.thinking_budget = 1024;
  struct lc_llm_http h;
  char err[128];
  ck_assert_int_eq(lc_llm_gemini.build(&q, &h, err, sizeof err), 0);
  ck_assert_ptr_nonnull(strstr(h.body, "\"generationConfig\":{\"thinkingConfig\":{\"includeThoughts\":true,"
                                       "\"thinkingBudget\":1024}}"));
  lc_llm_http_free(&h);
  lc_llm_request_free(&q);
}
END_TEST

/* ---- through the client and the mock ---- */

static void on_done(struct lc_llm_call *c, void *ud) { (void)c, *(int *)ud = 1; }

struct run {
  struct lc_buf text;
  int tool_starts;
};

static void collect(void *ud, const struct lc_llm_delta *d) {
  struct run *x = ud;
  if (d->kind == LC_DELTA_TEXT) lc_buf_append(&x->text, d->text, d->len);
  if (d->kind == LC_DELTA_TOOL_START) x->tool_starts++;
}

/* Runs q (owned) against the mock; returns the response (lc_free it). */
static struct lc_llm_response *run_call(struct lc_llm_request *q, struct lc_retry_policy *pol,
                                        struct run *x) {
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  if (pol) o.retry = *pol;
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *c;
  ck_assert_int_eq(lc_llm_call_start(loop, q, &o, x ? collect : NULL, x, on_done, &done, &c), 0);
  while (!done) lc_loop_run_once(loop, -1);
  struct lc_llm_response *r = lc_llm_call_take_response(c);
  lc_llm_call_free(c);
  lc_loop_free(loop);
  return r;
}

static struct lc_llm_request *mock_req(enum lc_llm_provider p, const struct lc_mock *m,
                                       int stream) {
  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  req_init(q, p);
  char base[128];
  snprintf(base, sizeof base, "%s%s", m->base_url, p == LC_PROV_GEMINI ? "/v1beta" : "");
  q->base_url = lc_strdup(base);
  q->stream = stream;
  msg(q, LC_ROLE_USER, "hi");
  return q;
}

static void resp_delete(struct lc_llm_response *r) {
  lc_llm_response_free(r);
  lc_free(r);
}

START_TEST(gemini_both_framings_from_the_mock) {
  for (int arr = 0; arr < 2; arr++) {
    char script[512];
    snprintf(script, sizeof script,
             "[{\"reply\":{\"gemini\":{\"text\":\"héllo wörld, in pieces\",\"thoughts\":\"hmm\","
             "\"fragment_bytes\":3,\"json_array\":%s,\"tool_calls\":[{\"name\":\"f\",\"arguments\":"
             "{\"a\":1},\"signature\":\"U0lH\"}]}}}]",
             arr ? "true" : "false");
    struct lc_mock m;
    ck_assert_int_eq(lc_mock_start(&m, script), 0);
    struct run x = {0};
    struct lc_llm_response *r = run_call(mock_req(LC_PROV_GEMINI, &m, 1), NULL, &x);
    ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
    ck_assert_str_eq(r->text, "héllo wörld, in pieces");
    ck_assert_str_eq(x.text.data, "héllo wörld, in pieces");
    ck_assert_str_eq(r->reasoning, "hmm");
    ck_assert_uint_eq(r->n_tool_calls, 1);
    ck_assert_str_eq(r->tool_calls[0].signature, "U0lH");
    ck_assert_int_eq(r->finish, LC_FINISH_TOOL_CALLS);
    ck_assert_int_eq(x.tool_starts, 1);
    ck_assert_int_eq(lc_mock_count_requests(&m, "/v1beta/models/m-1:streamGenerateContent?alt=sse"), 1);
    resp_delete(r);
    lc_buf_free(&x.text);
    ck_assert_int_eq(lc_mock_stop(&m), 0);
  }
}
END_TEST

START_TEST(gemini_retry_info_longer_than_allowed_is_not_waited) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"times\":1,\"reply\":{\"status\":429,\"json\":{\"error\":{\"code\":429,"
                        "\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
                        "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3600s\"}]}}}},"
                        "{\"reply\":{\"gemini\":{\"text\":\"ok\"}}}]"),
      0);
  struct lc_retry_policy pol;
  lc_retry_policy_default(&pol);
  pol.max_retry_after_ms = 1000; /* an hour is not waited out */
  struct lc_llm_response *r = run_call(mock_req(LC_PROV_GEMINI, &m, 0), &pol, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "rate_limit");
  ck_assert(r->retry_after_s == 3600);
  ck_assert_int_eq(r->attempts, 1);
  resp_delete(r);
  /* A short one is honoured: the second attempt answers. */
  ck_assert_int_eq(
      lc_mock_set_script(&m, "[{\"times\":1,\"reply\":{\"status\":429,\"json\":{\"error\":{\"code\":429,"
                             "\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
                             "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"0.01s\"}]}}}},"
                             "{\"reply\":{\"gemini\":{\"text\":\"ok\"}}}]"),
      0);
  r = run_call(mock_req(LC_PROV_GEMINI, &m, 0), &pol, NULL);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_str_eq(r->text, "ok");
  ck_assert_int_eq(r->attempts, 2);
  resp_delete(r);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

START_TEST(bedrock_stream_and_retry_from_the_mock) {
  struct lc_mock m;
  /* A 400 that x-amzn-ErrorType names a quota to retry, then a stream. */
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"times\":1,\"reply\":{\"status\":400,\"headers\":{\"x-amzn-ErrorType\":"
                        "\"ServiceQuotaExceededException:http://internal.amazon.com/coral/\"},"
                        "\"json\":{\"message\":\"Too many tokens per day\"},\"retry_after\":0}},"
                        "{\"reply\":{\"bedrock\":{\"text\":\"Hi there\",\"fragment_bytes\":2,"
                        "\"tool_calls\":[{\"name\":\"get\",\"arguments\":{\"city\":\"Oslo\"}}]}}}]"),
      0);
  struct run x = {0};
  struct lc_llm_request *q = mock_req(LC_PROV_BEDROCK, &m, 1);
  q->api_key = lc_strdup("bedrock-key-0123456789");
  struct lc_llm_response *r = run_call(q, NULL, &x);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_int_eq(r->attempts, 2);
  ck_assert_str_eq(r->text, "Hi there");
  ck_assert_str_eq(x.text.data, "Hi there");
  ck_assert_uint_eq(r->n_tool_calls, 1);
  ck_assert_str_eq(r->tool_calls[0].args_json, "{\"city\":\"Oslo\"}");
  ck_assert_int_eq(r->finish, LC_FINISH_TOOL_CALLS);
  ck_assert_int_gt(r->usage.input, 0);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/model/m-1/converse-stream"), 2);
  resp_delete(r);
  lc_buf_free(&x.text);
  /* A corrupted frame (malformed) is a bad response, not a short answer. */
  ck_assert_int_eq(lc_mock_set_script(&m, "[{\"reply\":{\"bedrock\":{\"text\":\"Hi there\"},"
                                          "\"malformed\":true}}]"),
                   0);
  q = mock_req(LC_PROV_BEDROCK, &m, 1);
  q->api_key = lc_strdup("bedrock-key-0123456789");
  struct lc_retry_policy pol;
  lc_retry_policy_default(&pol);
  pol.max_attempts = 1;
  r = run_call(q, &pol, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "bad_response");
  ck_assert_msg(strstr(r->err_message, "CRC"), "%s", r->err_message);
  resp_delete(r);
  /* An exception frame mid-stream: its kind, not retried after deltas. */
  ck_assert_int_eq(lc_mock_set_script(&m, "[{\"reply\":{\"bedrock\":{\"text\":\"Hi\",\"exception\":"
                                          "{\"type\":\"modelStreamErrorException\",\"message\":\"oops\"}}}}]"),
                   0);
  q = mock_req(LC_PROV_BEDROCK, &m, 1);
  q->api_key = lc_strdup("bedrock-key-0123456789");
  struct run y = {0};
  r = run_call(q, NULL, &y);
  ck_assert_str_eq(lc_llm_err_name(r->err), "server");
  ck_assert_str_eq(r->err_type, "ModelStreamErrorException");
  ck_assert_int_eq(r->attempts, 1);
  resp_delete(r);
  lc_buf_free(&y.text);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* The mock's transport faults on both new stream formats: bodies in odd
 * pieces read the same; a body cut mid-stream is an error, never a short
 * answer. */
START_TEST(stream_faults_from_the_mock) {
  static const struct {
    enum lc_llm_provider p;
    const char *gen;
  } cases[] = {{LC_PROV_GEMINI, "gemini"}, {LC_PROV_BEDROCK, "bedrock"}};
  for (size_t k = 0; k < 2; k++) {
    char script[1024];
    snprintf(script, sizeof script,
             "[{\"times\":1,\"reply\":{\"%s\":{\"text\":\"one two three four five six\","
             "\"fragment_bytes\":4},\"chunk_bytes\":7}},"
             "{\"reply\":{\"%s\":{\"text\":\"one two three four five six\",\"fragment_bytes\":4},"
             "\"cut_after_bytes\":400}}]",
             cases[k].gen, cases[k].gen);
    struct lc_mock m;
    ck_assert_int_eq(lc_mock_start(&m, script), 0);
    struct lc_llm_request *q = mock_req(cases[k].p, &m, 1);
    q->api_key = lc_strdup("key-0123456789abcdef");
    struct lc_llm_response *r = run_call(q, NULL, NULL);
    ck_assert_msg(r->err == LC_LLM_OK, "%s: %s", cases[k].gen, r->err_message);
    ck_assert_str_eq(r->text, "one two three four five six");
    resp_delete(r);
    struct lc_retry_policy pol;
    lc_retry_policy_default(&pol);
    pol.max_attempts = 1;
    q = mock_req(cases[k].p, &m, 1);
    q->api_key = lc_strdup("key-0123456789abcdef");
    struct run x = {0};
    r = run_call(q, &pol, &x);
    ck_assert_msg(r->err == LC_LLM_ENETWORK || r->err == LC_LLM_EBADRESP, "%s: %s", cases[k].gen,
                  lc_llm_err_name(r->err));
    ck_assert_ptr_null(r->text);
    ck_assert_uint_gt(x.text.len, 0); /* some text had streamed: cut, not empty */
    resp_delete(r);
    lc_buf_free(&x.text);
    ck_assert_int_eq(lc_mock_stop(&m), 0);
  }
}
END_TEST

/* Forked (environment): SigV4 from the AWS variables, secrets registered,
 * an echoed key scrubbed, a missing credential or region refused. */
START_TEST(bedrock_sigv4_from_the_environment) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"match\":{\"headers\":{\"x-amz-date\":\"*\",\"authorization\":\"*\","
                                     "\"x-amz-security-token\":\"*\"}},\"times\":1,"
                                     "\"reply\":{\"bedrock\":{\"text\":\"signed\"}}},"
                                     "{\"reply\":{\"echo_credentials\":true}}]"),
                   0);
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0123456789", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN0123456789", 1);
  setenv("AWS_REGION", "us-west-2", 1);
  unsetenv("AWS_BEARER_TOKEN_BEDROCK");
  struct lc_llm_response *r = run_call(mock_req(LC_PROV_BEDROCK, &m, 0), NULL, NULL);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_str_eq(r->text, "signed");
  resp_delete(r);
  char *log = lc_mock_requests(&m);
  ck_assert_ptr_null(strstr(log, "wJalrXUtnFEMI"));
  ck_assert_ptr_null(strstr(log, "FwoGZXIvYXdz"));
  free(log);
  /* The proxy that echoes the Authorization header: the key id is gone. */
  struct lc_retry_policy pol;
  lc_retry_policy_default(&pol);
  pol.max_attempts = 1;
  r = run_call(mock_req(LC_PROV_BEDROCK, &m, 0), &pol, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "auth");
  ck_assert_msg(!strstr(r->err_message, "AKIDEXAMPLE0123456789"), "%s", r->err_message);
  ck_assert_msg(strstr(r->err_message, "AWS4-HMAC-SHA256"), "%s", r->err_message);
  resp_delete(r);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  /* No region: refused before sending (config), naming the variable. */
  unsetenv("AWS_REGION");
  unsetenv("AWS_DEFAULT_REGION");
  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  req_init(q, LC_PROV_BEDROCK);
  msg(q, LC_ROLE_USER, "hi");
  r = run_call(q, NULL, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "config");
  ck_assert_ptr_nonnull(strstr(r->err_message, "AWS_REGION"));
  resp_delete(r);
  /* No credentials at all against AWS: refused, naming them. */
  setenv("AWS_REGION", "us-west-2", 1);
  unsetenv("AWS_ACCESS_KEY_ID");
  q = lc_calloc(1, sizeof *q);
  req_init(q, LC_PROV_BEDROCK);
  msg(q, LC_ROLE_USER, "hi");
  r = run_call(q, NULL, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "config");
  ck_assert_ptr_nonnull(strstr(r->err_message, "AWS_ACCESS_KEY_ID"));
  resp_delete(r);
}
END_TEST

/* SigV4 itself (audit 18): AWS's published post-vanilla vector, and the
 * canonical path of a percent-escaped Bedrock model id encoded once more. */
START_TEST(sigv4_known_vector_and_double_encoding) {
  char *auth, *date;
  ck_assert_int_eq(lc_sigv4_sign("aws:amz:us-east-1:service",
                                 "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "POST",
                                 "https://example.amazonaws.com/", NULL, 0, "", 0,
                                 (time_t)1440938160, &auth, &date),
                   0);
  ck_assert_str_eq(auth, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
                         "us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
                         "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  ck_assert_str_eq(date, "x-amz-date: 20150830T123600Z");
  lc_free(auth);
  lc_free(date);
  char *cp = lc_sigv4_canonical_path("/model/anthropic.claude-v2%3A1/converse");
  ck_assert_str_eq(cp, "/model/anthropic.claude-v2%253A1/converse");
  lc_free(cp);
  ck_assert_int_eq(lc_sigv4_needed("https://bedrock-runtime.us-east-1.amazonaws.com/model/a%3A0/converse"), 1);
  ck_assert_int_eq(lc_sigv4_needed("https://bedrock-runtime.us-east-1.amazonaws.com/model/us.a-v2/converse"), 0);
  /* Content type and session token signed, a non-default port kept in
   * host: checked against an independent implementation (Python's hmac
   * and hashlib, AWS's documented algorithm) for these inputs. */
  const char *h[] = {"Content-Type: application/json", "x-amz-security-token: TOKEN123"};
  ck_assert_int_eq(lc_sigv4_sign("aws:amz:us-west-2:bedrock", "AKID:SECRET", "POST",
                                 "http://127.0.0.1:8080/model/a.b-v1%3A0/converse", h, 2,
                                 "{}", 2, (time_t)1765000000, &auth, &date),
                   0);
  ck_assert_str_eq(auth, "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20251206/us-west-2/"
                         "bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                         "x-amz-security-token, Signature=3f1b1e447461a625825fe4a6fe569369b45b56f546b17b88920eeac05a1c458a");
  lc_free(auth);
  lc_free(date);
}
END_TEST

/* A Bedrock model id holding ':' (nearly all of them) signed with the
 * AWS variables: the signature the server received is the one over the
 * path encoded twice, which AWS checks. libcurl 7.88 (Debian 12) signed
 * the path as sent and every such call was refused. */
START_TEST(bedrock_sigv4_model_id_with_colon) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\":{\"echo_credentials\":true}}]"), 0);
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0123456789", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN0123456789", 1);
  setenv("AWS_REGION", "us-west-2", 1);
  unsetenv("AWS_BEARER_TOKEN_BEDROCK");
  struct lc_llm_request *q = mock_req(LC_PROV_BEDROCK, &m, 0);
  lc_free(q->model);
  q->model = lc_strdup("us.anthropic.claude-3-7-sonnet-20250219-v1:0");
  /* what will be sent (build is deterministic) */
  struct lc_llm_http h;
  char err[256];
  ck_assert_int_eq(lc_llm_bedrock.build(q, &h, err, sizeof err), 0);
  struct lc_retry_policy pol;
  lc_retry_policy_default(&pol);
  pol.max_attempts = 1;
  struct lc_llm_response *r = run_call(q, &pol, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "auth");
  const char *sig = strstr(r->err_message, "Signature=");
  ck_assert_msg(sig != NULL, "%s", r->err_message);
  char *log = lc_mock_requests(&m);
  cJSON *jl = cJSON_Parse(log);
  const cJSON *e0 = cJSON_GetArrayItem(jl, 0);
  ck_assert_str_eq(cJSON_GetObjectItem(e0, "path")->valuestring,
                   "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse");
  const cJSON *hd = cJSON_GetObjectItem(e0, "headers");
  const char *stamp = cJSON_GetObjectItem(hd, "x-amz-date")->valuestring;
  struct tm tm = {0};
  ck_assert_ptr_nonnull(strptime(stamp, "%Y%m%dT%H%M%SZ", &tm));
  char *auth, *date;
  ck_assert_int_eq(lc_sigv4_sign(h.aws_sigv4, h.aws_userpwd, "POST", h.url,
                                 (const char *const *)h.headers, h.n_headers, h.body, h.body_len,
                                 timegm(&tm), &auth, &date),
                   0);
  const char *want = strstr(auth, "Signature=");
  ck_assert_msg(strncmp(sig, want, 10 + 64) == 0, "server got %.80s\nAWS wants %s", sig, want);
  ck_assert_ptr_nonnull(strstr(r->err_message, "x-amz-security-token"));
  lc_free(auth);
  lc_free(date);
  cJSON_Delete(jl);
  free(log);
  lc_llm_http_free(&h);
  resp_delete(r);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

START_TEST(gemini_key_required_and_kept_out_of_errors) {
  unsetenv("GEMINI_API_KEY");
  unsetenv("GOOGLE_API_KEY");
  unsetenv("GOOGLE_GEMINI_BASE_URL");
  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  req_init(q, LC_PROV_GEMINI);
  msg(q, LC_ROLE_USER, "hi");
  struct lc_llm_response *r = run_call(q, NULL, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "config");
  ck_assert_ptr_nonnull(strstr(r->err_message, "GEMINI_API_KEY"));
  resp_delete(r);
  /* A proxy that echoes the x-goog-api-key: scrubbed from the message. */
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\":{\"status\":400,\"headers\":{\"content-type\":"
                                     "\"text/plain\"},\"body\":\"bad key AIzaSyLEAKED-0123456789xyz\"}}]"),
                   0);
  setenv("GEMINI_API_KEY", "AIzaSyLEAKED-0123456789xyz", 1);
  q = mock_req(LC_PROV_GEMINI, &m, 1);
  r = run_call(q, NULL, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "bad_request");
  ck_assert_msg(!strstr(r->err_message, "AIzaSyLEAKED"), "%s", r->err_message);
  resp_delete(r);
  char *log = lc_mock_requests(&m);
  ck_assert_ptr_null(strstr(log, "AIzaSyLEAKED"));
  free(log);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* GOOGLE_API_KEY, which Google's SDKs read, is the key when
 * GEMINI_API_KEY is unset; GEMINI_API_KEY wins when both are; the error
 * without either names both. The mock answers only the expected key. */
START_TEST(gemini_key_from_google_api_key) {
  unsetenv("GOOGLE_GEMINI_BASE_URL");
  static const struct {
    const char *gemini, *google, *sent;
  } cases[] = {
      {NULL, "AIzaSyGOOGLE-0123456789abc", "AIzaSyGOOGLE-0123456789abc"},
      {"AIzaSyGEMINI-0123456789abc", "AIzaSyGOOGLE-0123456789abc", "AIzaSyGEMINI-0123456789abc"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char script[512];
    snprintf(script, sizeof script,
             "[{\"match\":{\"headers\":{\"x-goog-api-key\":\"%s\"}},"
             "\"reply\":{\"gemini\":{\"text\":\"keyed\"}}},"
             "{\"reply\":{\"status\":403,\"json\":{\"error\":{\"code\":403,\"message\":\"wrong key\","
             "\"status\":\"PERMISSION_DENIED\"}}}}]",
             cases[k].sent);
    struct lc_mock m;
    ck_assert_int_eq(lc_mock_start(&m, script), 0);
    if (cases[k].gemini) setenv("GEMINI_API_KEY", cases[k].gemini, 1);
    else unsetenv("GEMINI_API_KEY");
    setenv("GOOGLE_API_KEY", cases[k].google, 1);
    struct lc_llm_response *r = run_call(mock_req(LC_PROV_GEMINI, &m, 0), NULL, NULL);
    ck_assert_msg(r->err == LC_LLM_OK, "case %zu: %s", k, r->err_message);
    ck_assert_str_eq(r->text, "keyed");
    resp_delete(r);
    ck_assert_int_eq(lc_mock_stop(&m), 0);
  }
  unsetenv("GEMINI_API_KEY");
  unsetenv("GOOGLE_API_KEY");
  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  req_init(q, LC_PROV_GEMINI);
  msg(q, LC_ROLE_USER, "hi");
  struct lc_llm_response *r = run_call(q, NULL, NULL);
  ck_assert_str_eq(lc_llm_err_name(r->err), "config");
  ck_assert_msg(strstr(r->err_message, "GEMINI_API_KEY") && strstr(r->err_message, "GOOGLE_API_KEY"),
                "%s", r->err_message);
  resp_delete(r);
}
END_TEST

/* luact.llm.limits governs the new providers as the others: 600 rpm is
 * one request per 100 ms, so three concurrent calls arrive one at a time
 * (a lower bound only; the mock logs arrivals). openai-responses has its
 * own bucket, named by its prefix (audit 18: only its acceptance of the
 * setting was tested). */
START_TEST(rate_governor_covers_the_new_adapters) {
  const char *provs[] = {"gemini", "bedrock", "openai-responses"};
  const char *scripts[] = {"[{\"reply\":{\"gemini\":{\"echo\":true}}}]",
                           "[{\"reply\":{\"bedrock\":{\"echo\":true}}}]",
                           "[{\"reply\":{\"responses\":{\"echo\":true}}}]"};
  const char *paths[] = {"/v1beta", "", "/v1"};
  for (int k = 0; k < 3; k++) {
    struct lc_mock m;
    ck_assert_int_eq(lc_mock_start(&m, scripts[k]), 0);
    char base[160], code[1024], out[4096], err[4096];
    snprintf(base, sizeof base, "%s%s", m.base_url, paths[k]);
    snprintf(code, sizeof code,
             "luact.llm.limits{['%s'] = {rpm = 600}}\n"
             "local fns = {}\n"
             "for i = 1, 3 do fns[i] = function() return assert(luact.llm.chat{model='%s:m',"
             " base_url=BASE, api_key='k-0123456789abc', prompt='p'..i}).text end end\n"
             "return table.concat(luact.parallel(fns), ',')",
             provs[k], provs[k]);
    ck_assert_msg(lc_test_lua_run_once(base, "", code, out, sizeof out, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_str_eq(out, "p1,p2,p3");
    char *log = lc_mock_requests(&m);
    /* The mock's times are reads from its start: a busy mock reads late
     * and shortens gaps (26 ms was seen), but request i cannot be read
     * before i * 100 ms (see llm_client rate_governor_spaces_requests). */
    for (int i = 1; i < 3; i++) {
      double at = lc_test_json_num(log, "time_ms", i);
      ck_assert_msg(at >= 100.0 * i - 1, "%s: request %d came %.1f ms after the mock started",
                    provs[k], i, at);
    }
    free(log);
    ck_assert_int_eq(lc_mock_stop(&m), 0);
  }
}
END_TEST

Suite *llm_gb_suite(void) {
  Suite *s = suite_create("llm_gb");
  TCase *tc = tcase_create("eventstream");
  tcase_add_test(tc, es_roundtrip_split_anywhere);
  tcase_add_test(tc, es_prelude_crc_checked);
  tcase_add_test(tc, es_message_crc_checked);
  tcase_add_test(tc, es_bad_lengths_and_types);
  tcase_add_test(tc, es_cut_inside_a_message);
  suite_add_tcase(s, tc);
  tc = tcase_create("adapters");
  tcase_add_test(tc, gemini_retry_info_is_a_rate_limit_with_its_delay);
  tcase_add_test(tc, gemini_errors_by_kind);
  tcase_add_test(tc, gemini_array_framing_is_strict);
  tcase_add_test(tc, gemini_in_band_errors_and_blocked_prompts);
  tcase_add_test(tc, gemini_request_echoes_signatures_and_names_results);
  tcase_add_test(tc, images_in_each_form);
  tcase_add_test(tc, gemini_text_signature_round_trip);
  tcase_add_test(tc, bedrock_reasoning_round_trip);
  tcase_add_test(tc, bedrock_streamed_reasoning_blocks);
  tcase_add_test(tc, usage_counts_that_are_not_counts);
  tcase_add_test(tc, gemini_thinking_budget);
  tcase_add_test(tc, bedrock_error_type_header_decides_the_kind);
  tcase_add_test(tc, bedrock_request_shape);
  tcase_add_test(tc, bedrock_long_session_token);
  tcase_add_test(tc, bedrock_stream_exception_is_an_error_of_its_kind);
  suite_add_tcase(s, tc);
  tc = tcase_create("client");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, gemini_both_framings_from_the_mock);
  tcase_add_test(tc, gemini_retry_info_longer_than_allowed_is_not_waited);
  tcase_add_test(tc, bedrock_stream_and_retry_from_the_mock);
  tcase_add_test(tc, bedrock_sigv4_from_the_environment);
  tcase_add_test(tc, bedrock_sigv4_model_id_with_colon);
  tcase_add_test(tc, sigv4_known_vector_and_double_encoding);
  tcase_add_test(tc, gemini_key_required_and_kept_out_of_errors);
  tcase_add_test(tc, gemini_key_from_google_api_key);
  tcase_add_test(tc, rate_governor_covers_the_new_adapters);
  tcase_add_test(tc, stream_faults_from_the_mock);
  suite_add_tcase(s, tc);
  return s;
}
