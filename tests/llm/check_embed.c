/* check_embed.c: embeddings. Every recorded embeddings exchange in
 * shared/fixtures/llm2 served from loopback (status, headers, body byte
 * for byte, matched on the recorded path) and read by the real client;
 * the request we send held against the recorded one; hostile responses
 * (wrong dimensions, NaN, cut base64, missing rows) refused with a clear
 * message; batching, retries, and record/replay of the journal. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "effect.h"
#include "embed.h"
#include "embed_call.h"
#include "lc.h"
#include "loop.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static const char *fixtures2(void) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/../shared/fixtures/llm2", lc_test_source_dir());
  return buf;
}

struct conf_case {
  const char *id;
  enum lc_llm_provider prov;
  int legacy, base64, dims_req;
  const char *model, *input;
  size_t dims;          /* expected per row; 0 = an error */
  double first, last;   /* expected values (from Python's own decoding) */
  const char *err_kind; /* for the error fixture */
};

static const struct conf_case cases[] = {
    {"openai-embeddings-float-01", LC_PROV_OPENAI, 0, 0, 0, "text-embedding-ada-002",
     "Hello world", 1536, -0.005540426, -0.0070824116, NULL},
    {"openai-embeddings-base64-01", LC_PROV_OPENAI, 0, 1, 0, "text-embedding-3-small",
     "The capital of France is Paris.", 1536, 0.031128916889429092, 0.019402403384447098, NULL},
    {"openai-embeddings-dimensions-01", LC_PROV_OPENAI, 0, 0, 256, "text-embedding-3-small",
     "Hello world", 256, -0.0039325873, 0.0011830473, NULL},
    {"openai-embeddings-error-404-01", LC_PROV_OPENAI, 0, 1, 0, "text-embedding-4-ultra",
     "Test with unknown model", 0, 0, 0, "bad_request"},
    {"vllm-embeddings-base64-float64-01", LC_PROV_OPENAI, 0, 1, 0,
     "intfloat/e5-mistral-7b-instruct", "Tell me a joke about opentelemetry", 4096,
     0.0016355514526367188, 0.01079559326171875, NULL},
    {"ollama-embed-01", LC_PROV_OLLAMA, 0, 0, 0, "nomic-embed-text", "Hello, world!", 768,
     0.015991924, 0.007620321, NULL},
    {"ollama-embeddings-legacy-01", LC_PROV_OLLAMA, 1, 0, 0, "llama3", "all-minilm", 4096,
     -0.07757184654474258, 0.21410991251468658, NULL},
    {"gemini-batchembedcontents-01", LC_PROV_GEMINI, 0, 0, 768, "gemini-embedding-001",
     "Some text goes here", 768, -0.01530608, -0.032271363, NULL},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static void on_done(struct lc_embed_call *c, void *ud) { *(int *)ud = 1; }

static struct lc_embed_request *new_req(enum lc_llm_provider p, const char *model,
                                        const char *base, const char *const *in, size_t n) {
  struct lc_embed_request *q = lc_calloc(1, sizeof *q);
  ck_assert_ptr_nonnull(q);
  q->provider = p;
  q->model = lc_strdup(model);
  q->base_url = lc_strdup(base);
  q->api_key = lc_strdup("test-key");
  q->input = lc_calloc(n, sizeof *q->input);
  q->input_len = lc_calloc(n, sizeof *q->input_len);
  for (size_t i = 0; i < n; i++) {
    q->input[i] = lc_strdup(in[i]);
    q->input_len[i] = strlen(in[i]);
  }
  q->n_input = n;
  return q;
}

/* Runs q (owned) on a fresh loop to completion; the call is the caller's. */
static struct lc_embed_call *run(struct lc_embed_request *q, const struct lc_llm_opts *o,
                                 struct lc_journal *j) {
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_embed_call *c;
  ck_assert_int_eq(lc_embed_call_start(loop, q, o, on_done, &done, &c), 0);
  lc_free(q);
  while (!done) {
    if (j && lc_journal_idle(j)) continue;
    lc_loop_run_once(loop, -1);
  }
  /* The loop goes; the result stays with the call. */
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
  return c;
}

START_TEST(conformance_over_loopback) {
  const struct conf_case *k = &cases[_i];
  char path[600];
  snprintf(path, sizeof path, "%s/%s.json", fixtures2(), k->id);
  size_t flen;
  char *ftext = lc_test_read_file(path, &flen);
  ck_assert_msg(ftext != NULL, "missing fixture %s", path);
  cJSON *fx = cJSON_Parse(ftext);
  free(ftext);
  const cJSON *rq = cJSON_GetObjectItem(fx, "request");
  const char *rpath = cJSON_GetObjectItem(rq, "path")->valuestring;
  char script[2048];
  /* Gemini's key must arrive as x-goog-api-key (and the exact path, so
   * never as ?key=): the rule matches only then. */
  snprintf(script, sizeof script,
           "[{\"match\":{\"path\":\"%s\"%s},\"reply\":{\"fixture\":\"%s\"}}]", rpath,
           k->prov == LC_PROV_GEMINI ? ",\"headers\":{\"x-goog-api-key\":\"test-key\"}" : "",
           path);
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, script), 0);
  char base[128];
  snprintf(base, sizeof base, "%s%s", m.base_url,
           k->prov == LC_PROV_OPENAI   ? "/v1"
           : k->prov == LC_PROV_GEMINI ? "/v1beta"
                                       : "");
  const char *in[] = {k->input};
  struct lc_embed_request *q = new_req(k->prov, k->model, base, in, 1);
  q->legacy = k->legacy;
  q->base64 = k->base64;
  q->dimensions = k->dims_req;
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.max_attempts = 1;
  struct lc_embed_call *c = run(q, &o, NULL);
  const struct lc_embed_result *r = lc_embed_call_result(c);
  if (k->dims) {
    ck_assert_msg(r->err == LC_LLM_OK, "%s: %s", k->id, r->err_message);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_uint_eq(r->dims, k->dims);
    ck_assert_msg(fabs(r->rows[0] - k->first) < 1e-7 && fabs(r->rows[k->dims - 1] - k->last) < 1e-7,
                  "%s: got %g .. %g", k->id, r->rows[0], r->rows[k->dims - 1]);
    for (size_t i = 0; i < r->dims; i++) ck_assert(isfinite(r->rows[i]));
    /* Every value as the recording has it, where it is decimal text. */
    const char *bt = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "response"), "body_text")->valuestring;
    cJSON *rj = cJSON_Parse(bt);
    const cJSON *v = cJSON_GetObjectItem(rj, "embedding");
    if (!v) v = cJSON_GetArrayItem(cJSON_GetObjectItem(rj, "embeddings"), 0);
    if (!v) v = cJSON_GetArrayItem(cJSON_GetObjectItem(rj, "data"), 0);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItem(v, cJSON_HasObjectItem(v, "values") ? "values" : "embedding");
    ck_assert_ptr_nonnull(v);
    if (cJSON_IsArray(v)) {
      ck_assert_uint_eq((size_t)cJSON_GetArraySize(v), r->dims);
      size_t i = 0;
      for (const cJSON *x = v->child; x; x = x->next, i++)
        ck_assert_msg(r->rows[i] == (float)x->valuedouble, "%s: value %zu", k->id, i);
    }
    cJSON_Delete(rj);
  } else {
    ck_assert_str_eq(lc_llm_err_name(r->err), k->err_kind);
    ck_assert_int_eq(r->http_status, 404);
    ck_assert_ptr_nonnull(strstr(r->err_message, "does not exist"));
    ck_assert_ptr_eq(r->rows, NULL);
  }
  ck_assert_int_eq(r->attempts, 1);
  lc_embed_call_free(c);

  /* What we sent holds what the recorded client sent. */
  ck_assert_int_eq(lc_mock_count_requests(&m, rpath), 1);
  char *sent = lc_mock_request_body(&m, 0);
  ck_assert_ptr_nonnull(sent);
  cJSON *sj = cJSON_Parse(sent);
  cJSON_free(sent);
  const cJSON *rb = cJSON_GetObjectItem(rq, "body");
  if (k->prov == LC_PROV_GEMINI) {
    /* Nothing in it is left to chance: the whole body as recorded
     * (requests[].model "models/...", content.parts[].text,
     * outputDimensionality). */
    char *a = cJSON_PrintUnformatted(sj), *b = cJSON_PrintUnformatted(rb);
    ck_assert_msg(cJSON_Compare(sj, rb, 1), "sent %s\nrecorded %s", a, b);
    cJSON_free(a);
    cJSON_free(b);
    cJSON_Delete(sj);
    cJSON_Delete(fx);
    ck_assert_int_eq(lc_mock_stop(&m), 0);
    return;
  }
  ck_assert_str_eq(cJSON_GetObjectItem(sj, "model")->valuestring,
                   cJSON_GetObjectItem(rb, "model")->valuestring);
  const char *field = k->legacy ? "prompt" : "input";
  const cJSON *a = cJSON_GetObjectItem(sj, field), *b = cJSON_GetObjectItem(rb, field);
  if (cJSON_IsArray(a)) a = a->child; /* one input: a list of one here */
  if (cJSON_IsArray(b)) b = b->child;
  ck_assert_str_eq(a->valuestring, b->valuestring);
  const cJSON *rd = cJSON_GetObjectItem(rb, "dimensions");
  if (rd) ck_assert_int_eq(cJSON_GetObjectItem(sj, "dimensions")->valueint, rd->valueint);
  const cJSON *re = cJSON_GetObjectItem(rb, "encoding_format");
  if (re)
    ck_assert_str_eq(cJSON_GetObjectItem(sj, "encoding_format")->valuestring, re->valuestring);
  cJSON_Delete(sj);
  cJSON_Delete(fx);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* Every recording in shared/fixtures/llm2 is claimed by exactly one
 * suite that serves it from loopback and reads it through the client:
 * embeddings here (cases[]), Gemini and Bedrock chat in
 * check_conformance_gb.c, the rest (Responses, DeepSeek, OpenAI and
 * Anthropic images) in check_conformance_llm2.c. A new file that fits
 * none fails here instead of going unread (docs/llm.md has the table). */
START_TEST(every_llm2_fixture_is_claimed) {
  static const char *const llm2_prefixes[] = {"responses-", "deepseek-responses-",
                                              "openai-chat-image-", "anthropic-image-"};
  DIR *d = opendir(fixtures2());
  ck_assert_ptr_nonnull(d);
  int n_embed = 0, n_gb = 0, n_llm2 = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n <= 5 || strcmp(e->d_name + n - 5, ".json")) continue;
    char id[256];
    snprintf(id, sizeof id, "%.*s", (int)(n - 5), e->d_name);
    int claims = 0;
    if (strstr(id, "embed")) {
      int found = 0;
      for (int i = 0; i < N_CASES; i++) found |= !strcmp(cases[i].id, id);
      ck_assert_msg(found, "embeddings recording %s has no case in check_embed.c", id);
      n_embed++;
      claims++;
    }
    if (!strstr(id, "embed") && (!strncmp(id, "gemini-", 7) || !strncmp(id, "bedrock-", 8))) {
      n_gb++;
      claims++;
    }
    for (size_t k = 0; k < sizeof llm2_prefixes / sizeof *llm2_prefixes; k++)
      if (!strncmp(id, llm2_prefixes[k], strlen(llm2_prefixes[k]))) {
        n_llm2++;
        claims++;
        break;
      }
    ck_assert_msg(claims == 1, "recording %s is claimed by %d suites", id, claims);
  }
  closedir(d);
  ck_assert_int_eq(n_embed, N_CASES);
  /* The counts the other suites assert for their share. */
  ck_assert_int_eq(n_gb, 19);
  ck_assert_int_eq(n_llm2, 21);
  ck_assert_int_eq(n_embed + n_gb + n_llm2, 48);
}
END_TEST

/* ---- hostile responses ---- */

struct bad_case {
  const char *body;
  size_t want;
  int dims_req;
  const char *needle;
};

static const struct bad_case bads[] = {
    /* rows of different lengths */
    {"{\"data\":[{\"index\":0,\"embedding\":[1,2,3]},{\"index\":1,\"embedding\":[1,2]}]}", 2, 0,
     "row 1 has 2 values, the others 3"},
    /* not what dimensions asked for */
    {"{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}", 1, 4, "3 values, 4 were asked for"},
    /* an overflowing number (JSON has no NaN literal; 1e999 is inf) */
    {"{\"data\":[{\"index\":0,\"embedding\":[1,1e999,3]}]}", 1, 0, "value 1 is not a finite"},
    /* NaN inside base64 float32: 00 00 c0 7f */
    {"{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAwH8=\"}]}", 1, 0, "value 1 is not a finite"},
    /* base64 cut mid-quantum */
    {"{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAAwH\"}]}", 1, 0, "cut or malformed"},
    /* base64 cut at a quantum but not at a value */
    {"{\"data\":[{\"index\":0,\"embedding\":\"AACAPwAA\"}]}", 1, 0, "no whole number of values"},
    /* foreign byte in base64 */
    {"{\"data\":[{\"index\":0,\"embedding\":\"AACA*wAAgD8=\"}]}", 1, 0, "cut or malformed"},
    /* fewer rows than inputs */
    {"{\"data\":[{\"index\":0,\"embedding\":[1]}]}", 2, 0, "1 vectors for 2 inputs"},
    /* the same index twice */
    {"{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":0,\"embedding\":[2]}]}", 2, 0,
     "repeated index"},
    /* a string where a number goes */
    {"{\"embeddings\":[[1,\"2\"]]}", 1, 0, "value 1 is not a number"},
    /* an empty vector */
    {"{\"embeddings\":[[]]}", 1, 0, "has 0 values"},
    /* not JSON */
    {"<html>bad gateway</html>", 1, 0, "not a JSON object"},
    {"{\"object\":\"list\"}", 1, 0, "no \"data\""},
};

START_TEST(hostile_response_refused) {
  const struct bad_case *b = &bads[_i];
  struct lc_embed_request q = {.provider = LC_PROV_OPENAI, .dimensions = b->dims_req};
  struct lc_embed_result r;
  lc_embed_result_init(&r);
  ck_assert_int_eq(lc_embed_parse(&q, b->body, strlen(b->body), b->want, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
  ck_assert_msg(strstr(r.err_message, b->needle) != NULL, "case %d: %s", _i, r.err_message);
  ck_assert_uint_eq(r.n, 0); /* nothing half-taken */
  lc_embed_result_free(&r);
}
END_TEST

START_TEST(base64_round_trip) {
  unsigned char in[10] = {0, 1, 2, 250, 251, 252, 253, 254, 255, 7};
  for (size_t n = 0; n <= 10; n++) {
    char enc[32];
    unsigned char out[16];
    lc_embed_b64_encode(in, n, enc);
    ck_assert_int_eq(lc_embed_b64_decode(enc, strlen(enc), out), (long)n);
    ck_assert_int_eq(memcmp(in, out, n), 0);
  }
  unsigned char out[8];
  ck_assert_int_eq(lc_embed_b64_decode("AA=A", 4, out), -1); /* data after '=' */
  ck_assert_int_eq(lc_embed_b64_decode("A===", 4, out), -1);
}
END_TEST

/* ---- batching, retries, journal ---- */

static const char batch_script[] =
    "[{\"match\":{\"path\":\"/v1/embeddings\",\"body_contains\":\"\\\"t0\\\"\"},"
    "  \"reply\":{\"json\":{\"data\":[{\"index\":1,\"embedding\":[0,1]},"
    "                                {\"index\":0,\"embedding\":[1,0]}],\"usage\":{\"prompt_tokens\":2}}}},"
    " {\"match\":{\"path\":\"/v1/embeddings\",\"body_contains\":\"\\\"t2\\\"\"},"
    "  \"reply\":{\"json\":{\"data\":[{\"index\":0,\"embedding\":[2,0]},"
    "                                {\"index\":1,\"embedding\":[3,0]}],\"usage\":{\"prompt_tokens\":2}}}},"
    " {\"match\":{\"path\":\"/v1/embeddings\",\"body_contains\":\"\\\"t4\\\"\"},\"times\":1,"
    "  \"reply\":{\"status\":429,\"headers\":{\"retry-after\":\"0\"},"
    "            \"json\":{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}}},"
    " {\"match\":{\"path\":\"/v1/embeddings\",\"body_contains\":\"\\\"t4\\\"\"},"
    "  \"reply\":{\"json\":{\"data\":[{\"index\":0,\"embedding\":[4,0]}],\"usage\":{\"prompt_tokens\":1}}}}]";

static const char *const five[] = {"t0", "t1", "t2", "t3", "t4"};

static void check_five(const struct lc_embed_result *r) {
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_uint_eq(r->n, 5);
  ck_assert_uint_eq(r->dims, 2);
  /* Rows in input order, placed by their index within each batch. */
  const float want[10] = {1, 0, 0, 1, 2, 0, 3, 0, 4, 0};
  for (int i = 0; i < 10; i++) ck_assert_msg(r->rows[i] == want[i], "value %d", i);
}

START_TEST(batches_in_order_with_retry) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, batch_script), 0);
  char base[128];
  snprintf(base, sizeof base, "%s/v1", m.base_url);
  struct lc_embed_request *q = new_req(LC_PROV_OPENAI, "emb", base, five, 5);
  q->max_batch = 2;
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.base_delay_ms = 1;
  struct lc_embed_call *c = run(q, &o, NULL);
  const struct lc_embed_result *r = lc_embed_call_result(c);
  check_five(r);
  ck_assert_int_eq(r->input_tokens, 5);
  ck_assert_int_eq(lc_embed_call_requests(c), 4); /* 3 batches, one retried */
  lc_embed_call_free(c);
  ck_assert_int_eq(lc_mock_count_requests(&m, "/v1/embeddings"), 4);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

static unsigned long seqno;
static void next_id(void *ud, struct lc_effect_who *w) {
  w->task = ud;
  w->path = "1";
  w->seq = ++seqno;
}

START_TEST(journal_replays_offline) {
  char jpath[128];
  snprintf(jpath, sizeof jpath, "/tmp/lc_embed_%ld.jsonl", (long)getpid());
  char err[512];
  struct lc_journal *j;
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, batch_script), 0);
  char base[128];
  snprintf(base, sizeof base, "%s/v1", m.base_url);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, jpath, NULL, &j, err, sizeof err), 0);
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.base_delay_ms = 1;
  o.effect = (struct lc_effect_src){.j = j, .next = next_id, .ud = &seqno};
  seqno = 0;
  struct lc_embed_request *q = new_req(LC_PROV_OPENAI, "emb", base, five, 5);
  q->max_batch = 2;
  struct lc_embed_call *c = run(q, &o, j);
  check_five(lc_embed_call_result(c));
  lc_embed_call_free(c);
  lc_journal_free(j);
  ck_assert_int_eq(lc_mock_stop(&m), 0);

  /* Replay: no server at all; the same vectors. */
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, jpath, NULL, &j, err, sizeof err), 0);
  o.effect.j = j;
  seqno = 0;
  q = new_req(LC_PROV_OPENAI, "emb", "http://127.0.0.1:1/v1", five, 5);
  q->max_batch = 2;
  c = run(q, &o, j);
  check_five(lc_embed_call_result(c));
  ck_assert_int_eq(lc_embed_call_requests(c), 0);
  lc_embed_call_free(c);
  long begun, replayed, ran;
  lc_journal_counts(j, &begun, &replayed, &ran);
  ck_assert_int_eq(replayed, 1);
  ck_assert_int_eq(ran, 0);
  lc_journal_free(j);

  /* A crafted journal's token count past long's range: the vectors
   * replay, the count is refused (0), never cast (float-cast-overflow
   * before; LONG_MIN tokens on x86). */
  {
    size_t n;
    char *text = lc_test_read_file(jpath, &n);
    ck_assert_ptr_nonnull(text);
    char *at = strstr(text, "\"input_tokens\":");
    ck_assert_ptr_nonnull(at);
    at += strlen("\"input_tokens\":");
    size_t digits = strspn(at, "0123456789");
    FILE *f = fopen(jpath, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%.*s1e300%s", (int)(at - text), text, at + digits);
    fclose(f);
    free(text);
  }
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, jpath, NULL, &j, err, sizeof err), 0);
  o.effect.j = j;
  seqno = 0;
  q = new_req(LC_PROV_OPENAI, "emb", "http://127.0.0.1:1/v1", five, 5);
  q->max_batch = 2;
  c = run(q, &o, j);
  check_five(lc_embed_call_result(c));
  ck_assert_int_eq(lc_embed_call_result(c)->input_tokens, 0);
  lc_embed_call_free(c);
  lc_journal_free(j);

  /* Replay with different input: a mismatch, never a silent answer. */
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, jpath, NULL, &j, err, sizeof err), 0);
  o.effect.j = j;
  seqno = 0;
  const char *other[] = {"t0", "t1", "t2", "t3", "changed"};
  q = new_req(LC_PROV_OPENAI, "emb", "http://127.0.0.1:1/v1", other, 5);
  c = run(q, &o, j);
  ck_assert_int_eq(lc_embed_call_result(c)->err, LC_LLM_ECONFIG);
  ck_assert_int_eq(lc_journal_failed(j), LC_JOURNAL_MISMATCH);
  lc_embed_call_free(c);
  lc_journal_free(j);
  unlink(jpath);
}
END_TEST

/* Out of memory at allocation N (one case per N) of a recorded call, up
 * to its journal line: the call completes or start fails, and nothing is
 * leaked. Allocations of the vectors' journal encoding once leaked the
 * base64 buffer when the buffer before it failed. */
static struct lc_mock oom_mock;
static void oom_mock_up(void) {
  ck_assert_int_eq(lc_mock_start(&oom_mock, batch_script), 0);
}
static void oom_mock_down(void) { lc_mock_stop(&oom_mock); }

START_TEST(recorded_call_out_of_memory) {
  char jpath[128], err[512], base[128];
  snprintf(jpath, sizeof jpath, "/tmp/lc_embed_oom_%ld.jsonl", (long)getpid());
  snprintf(base, sizeof base, "%s/v1", oom_mock.base_url);
  long live0 = lc_alloc_live();
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct lc_journal *j;
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, jpath, NULL, &j, err, sizeof err), 0);
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.max_attempts = 1;
  o.effect = (struct lc_effect_src){.j = j, .next = next_id, .ud = &seqno};
  const char *two[] = {"t0", "t1"}; /* one batch, answered at once */
  struct lc_embed_request *q = new_req(LC_PROV_OPENAI, "emb", base, two, 2);
  int done = 0;
  struct lc_embed_call *c = NULL;
  lc_alloc_fail_after(_i);
  int rc = lc_embed_call_start(loop, q, &o, on_done, &done, &c);
  lc_free(q);
  while (rc == 0 && !done) {
    if (lc_journal_idle(j)) continue;
    lc_loop_run_once(loop, -1);
  }
  lc_alloc_fail_after(0);
  ck_assert(rc == 0 || rc == LC_ENOMEM);
  lc_embed_call_free(c);
  lc_journal_free(j);
  lc_loop_free(loop);
  unlink(jpath);
  ck_assert_int_eq(lc_alloc_live(), live0);
}
END_TEST

/* ---- Gemini ---- */

/* The request for a batch: the path with the model percent-encoded (a
 * model name cannot reach into the path or the query), the key in
 * x-goog-api-key only, one request per input naming the model. */
START_TEST(gemini_build) {
  const char *in[] = {"one", "two \"quoted\""};
  struct lc_embed_request *q =
      new_req(LC_PROV_GEMINI, "models/emb x/../y?key=1", "http://h/v1beta/", in, 2);
  q->dimensions = 3;
  q->task_type = lc_strdup("RETRIEVAL_DOCUMENT");
  struct lc_llm_http h;
  char err[256];
  ck_assert_int_eq(lc_embed_build(q, 0, 2, &h, err, sizeof err), 0);
  ck_assert_str_eq(h.url, "http://h/v1beta/models/emb%20x%2F..%2Fy%3Fkey%3D1:batchEmbedContents");
  int key = 0;
  for (size_t i = 0; i < h.n_headers; i++) key += !strcmp(h.headers[i], "x-goog-api-key: test-key");
  ck_assert_int_eq(key, 1);
  ck_assert_str_eq(h.body,
                   "{\"requests\":[{\"model\":\"models/emb x/../y?key=1\",\"content\":{\"parts\":"
                   "[{\"text\":\"one\"}]},\"outputDimensionality\":3,\"taskType\":"
                   "\"RETRIEVAL_DOCUMENT\"},{\"model\":\"models/emb x/../y?key=1\",\"content\":"
                   "{\"parts\":[{\"text\":\"two \\\"quoted\\\"\"}]},\"outputDimensionality\":3,"
                   "\"taskType\":\"RETRIEVAL_DOCUMENT\"}]}");
  lc_llm_http_free(&h);
  ck_assert_uint_eq(lc_embed_batch_limit(q), LC_EMBED_GEMINI_MAX_BATCH);
  lc_embed_request_free(q);
  lc_free(q);
}
END_TEST

/* 250 inputs: batches of 100, 100, 50 (Gemini refuses more than 100),
 * answered by lc-mockllm's Gemini embeddings, rows in input order. */
START_TEST(gemini_batches_of_100) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"match\":{\"path_prefix\":\"/v1beta/models/\","
                                     "\"headers\":{\"x-goog-api-key\":\"test-key\"}},"
                                     "\"reply\":{\"embeddings\":{\"dims\":8}}}]"),
                   0);
  char base[128];
  snprintf(base, sizeof base, "%s/v1beta", m.base_url);
  enum { N = 250 };
  static char texts[N][16];
  const char *in[N];
  for (int i = 0; i < N; i++) {
    snprintf(texts[i], sizeof texts[i], "word%d", i % 7);
    in[i] = texts[i];
  }
  struct lc_embed_request *q = new_req(LC_PROV_GEMINI, "gemini-embedding-001", base, in, N);
  q->dimensions = 32;
  q->task_type = lc_strdup("RETRIEVAL_QUERY");
  struct lc_embed_call *c = run(q, NULL, NULL);
  const struct lc_embed_result *r = lc_embed_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_uint_eq(r->n, N);
  ck_assert_uint_eq(r->dims, 32);
  ck_assert_int_eq(lc_embed_call_requests(c), 3);
  /* Same text, same row, wherever its batch; different texts differ. */
  for (int i = 0; i < N; i++)
    ck_assert_msg(!memcmp(r->rows + i * 32, r->rows + (i % 7) * 32, 32 * sizeof(float)), "row %d", i);
  ck_assert(memcmp(r->rows, r->rows + 32, 32 * sizeof(float)) != 0);
  lc_embed_call_free(c);
  const int sizes[3] = {100, 100, 50};
  for (int b = 0; b < 3; b++) {
    char *sent = lc_mock_request_body(&m, b);
    cJSON *sj = cJSON_Parse(sent);
    cJSON_free(sent);
    const cJSON *reqs = cJSON_GetObjectItem(sj, "requests");
    ck_assert_int_eq(cJSON_GetArraySize(reqs), sizes[b]);
    const cJSON *r0 = cJSON_GetArrayItem(reqs, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(r0, "taskType")->valuestring, "RETRIEVAL_QUERY");
    ck_assert_int_eq(cJSON_GetObjectItem(r0, "outputDimensionality")->valueint, 32);
    cJSON_Delete(sj);
  }
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* Gemini's error JSON (google.rpc.Status) by kind: a quota with a
 * RetryInfo delay is a rate limit whose wait is the delay (it counts as
 * a Retry-After would); an invalid key is auth, and the key it echoes
 * never reaches the message. */
START_TEST(gemini_errors_by_kind) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(
          &m,
          "[{\"match\":{\"body_contains\":\"slow\"},\"reply\":{\"status\":429,\"json\":"
          "{\"error\":{\"code\":429,\"message\":\"Quota exceeded for metric embed_content\","
          "\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
          "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"7s\"}]}}}},"
          " {\"match\":{\"body_contains\":\"badkey\"},\"reply\":{\"status\":400,\"json\":"
          "{\"error\":{\"code\":400,\"message\":\"API key not valid: gk-embed-secret-0042\","
          "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
          "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}}}]"),
      0);
  char base[128];
  snprintf(base, sizeof base, "%s/v1beta", m.base_url);
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.max_attempts = 1;
  const char *slow[] = {"slow"};
  struct lc_embed_call *c = run(new_req(LC_PROV_GEMINI, "e", base, slow, 1), &o, NULL);
  const struct lc_embed_result *r = lc_embed_call_result(c);
  ck_assert_str_eq(lc_llm_err_name(r->err), "rate_limit");
  ck_assert_str_eq(r->err_type, "RESOURCE_EXHAUSTED");
  ck_assert(r->retry_after_s == 7);
  lc_embed_call_free(c);

  const char *bad[] = {"badkey"};
  struct lc_embed_request *q = new_req(LC_PROV_GEMINI, "e", base, bad, 1);
  lc_free(q->api_key);
  q->api_key = lc_strdup("gk-embed-secret-0042");
  c = run(q, &o, NULL);
  r = lc_embed_call_result(c);
  ck_assert_str_eq(lc_llm_err_name(r->err), "auth");
  ck_assert_str_eq(r->err_type, "API_KEY_INVALID");
  ck_assert_ptr_null(strstr(r->err_message, "gk-embed-secret-0042"));
  lc_embed_call_free(c);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* Over Lua: luact.llm.embed, its misuse errors and its result table. */
START_TEST(lua_embed) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, batch_script), 0);
  char out[4096], err[4096];
  int rc = lc_test_lua_run_once(
      m.base_url, NULL,
      "local luact = require 'luact'\n"
      "local r, e = luact.llm.embed{model='openai:emb', base_url=BASE..'/v1', api_key='k',\n"
      "  input={'t0','t1','t2','t3','t4'}, max_batch=2, retry_base=0.001}\n"
      "assert(r, e)\n"
      "assert(#r.vectors == 5 and r.dims == 2 and r.vectors[4][1] == 3, 'rows')\n"
      "local function raises(t, needle)\n"
      "  local ok, msg = pcall(luact.llm.embed, t)\n"
      "  assert(not ok and msg:find(needle, 1, true), tostring(msg))\n"
      "end\n"
      "raises({model='openai:e', input=''}, 'input[1] is empty')\n"
      "raises({model='openai:e', input={'a', '\\xff\\xfe'}}, 'input[2] is not UTF-8')\n"
      "raises({model='openai:e', input={'a', 'b\\0c'}}, 'input[2] is not UTF-8')\n"
      "raises({model='openai:e', input=string.rep('x', 100), max_input_bytes=10},\n"
      "  'luact.llm.embed: input[1] is 100 bytes, over max_input_bytes (10): split it first')\n"
      "raises({model='openai:e', input='x', dimensions=0}, \"'dimensions' must be 1..\")\n"
      "raises({model='openai:e', input='x', max_batch=0}, \"'max_batch' must be >= 1\")\n"
      "raises({model='openai:e', input='x', max_input_bytes=0}, \"'max_input_bytes' must be >= 1\")\n"
      "raises({model='openai:e', input={}}, 'empty list')\n"
      "raises({model='anthropic:c', input='x'}, 'embeddings need provider')\n"
      "raises({model='openai:e', input='x', dimension=3}, 'dimensions')\n"
      "raises({model='openai:e', input='x', encoding='f16'}, 'encoding')\n"
      "return 'ok'\n",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "ok");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* Over Lua with gemini: the key from GEMINI_API_KEY (sent as
 * x-goog-api-key), task_type passed on, and the misuse that raises. */
START_TEST(lua_embed_gemini) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"match\":{\"path\":"
                                     "\"/v1beta/models/gemini-embedding-001:batchEmbedContents\","
                                     "\"headers\":{\"x-goog-api-key\":\"gk-lua-0042\"}},"
                                     "\"reply\":{\"embeddings\":{\"dims\":8}}}]"),
                   0);
  setenv("GEMINI_API_KEY", "gk-lua-0042", 1);
  char out[4096], err[4096];
  int rc = lc_test_lua_run_once(
      m.base_url, NULL,
      "local luact = require 'luact'\n"
      "local r, e = luact.llm.embed{model='gemini:gemini-embedding-001', base_url=BASE..'/v1beta',\n"
      "  input={'alpha beta', 'gamma'}, dimensions=16, task_type='SEMANTIC_SIMILARITY'}\n"
      "assert(r, e)\n"
      "assert(#r.vectors == 2 and r.dims == 16 and #r.vectors[2] == 16, 'rows')\n"
      "local function raises(t, needle)\n"
      "  local ok, msg = pcall(luact.llm.embed, t)\n"
      "  assert(not ok and msg:find(needle, 1, true), tostring(msg))\n"
      "end\n"
      "raises({model='openai:e', input='x', task_type='RETRIEVAL_QUERY'}, 'gemini models only')\n"
      "raises({model='gemini:e', input='x', task_type='retrieval query'}, 'Gemini task type')\n"
      "raises({model='gemini:e', input='x', encoding='base64'}, 'gemini takes neither')\n"
      "raises({model='gemini:e', input='x', task_typ='X'}, 'task_type')\n"
      "return 'ok'\n",
      out, sizeof out, err, sizeof err);
  unsetenv("GEMINI_API_KEY");
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "ok");
  lc_mock_assert_request_has(&m, 0, "\"taskType\":\"SEMANTIC_SIMILARITY\"");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* An input longer than the model takes: the provider's 400 becomes a
 * clear "context" error, not a crash or a retry. */
START_TEST(overlong_input_is_context_error) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"reply\":{\"status\":400,\"json\":{\"error\":{\"message\":"
                        "\"This model's maximum context length is 8192 tokens, however you "
                        "requested 9000 tokens\",\"type\":\"invalid_request_error\",\"code\":"
                        "\"context_length_exceeded\"}}}}]"),
      0);
  char base[128];
  snprintf(base, sizeof base, "%s/v1", m.base_url);
  const char *in[] = {"long"};
  struct lc_embed_call *c = run(new_req(LC_PROV_OPENAI, "emb", base, in, 1), NULL, NULL);
  const struct lc_embed_result *r = lc_embed_call_result(c);
  ck_assert_str_eq(lc_llm_err_name(r->err), "context_length");
  ck_assert_ptr_nonnull(strstr(r->err_message, "maximum context length"));
  ck_assert_int_eq(r->attempts, 1);
  lc_embed_call_free(c);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* A provider's token counts are numbers it chose: 1e300, -5 or 1e19 are
 * no count, never cast to long (on x86 1e300 became LONG_MIN; the
 * sanitizer build with float-cast-overflow stops at the cast). */
START_TEST(hostile_usage_numbers) {
  static const char *const bodies[] = {
      "{\"data\":[{\"index\":0,\"embedding\":[1,2]}],\"usage\":{\"prompt_tokens\":1e300}}",
      "{\"data\":[{\"index\":0,\"embedding\":[1,2]}],\"usage\":{\"prompt_tokens\":-1e300}}",
      "{\"data\":[{\"index\":0,\"embedding\":[1,2]}],\"usage\":{\"prompt_tokens\":1e19}}",
      "{\"embeddings\":[[1,2]],\"prompt_eval_count\":1e300}",
      "{\"embeddings\":[[1,2]],\"prompt_eval_count\":-7}"};
  for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
    struct lc_embed_request q = {.provider = LC_PROV_OPENAI};
    struct lc_embed_result r;
    lc_embed_result_init(&r);
    ck_assert_int_eq(lc_embed_parse(&q, bodies[b], strlen(bodies[b]), 1, &r), 0);
    ck_assert_msg(r.input_tokens == 0, "body %zu: %ld tokens", b, r.input_tokens);
    lc_embed_result_free(&r);
  }
}
END_TEST

/* Out of memory at every allocation of a parse: LC_ENOMEM (or success),
 * nothing half-taken, nothing leaked. */
START_TEST(parse_out_of_memory) {
  static const char *const bodies[] = {
      "{\"data\":[{\"index\":1,\"embedding\":\"AACAPwAAgD8=\"},{\"index\":0,\"embedding\":[1,2]}],"
      "\"model\":\"m\",\"usage\":{\"prompt_tokens\":3}}",
      "{\"embeddings\":[[1,2,3],[4,5,6]],\"model\":\"m\"}"};
  for (size_t b = 0; b < 2; b++) {
    long live0 = lc_alloc_live();
    int finished = 0;
    for (long n = 1; n < 100 && !finished; n++) {
      struct lc_embed_request q = {.provider = LC_PROV_OPENAI};
      struct lc_embed_result r;
      lc_embed_result_init(&r);
      lc_alloc_fail_after(n);
      int rc = lc_embed_parse(&q, bodies[b], strlen(bodies[b]), 2, &r);
      lc_alloc_fail_after(0);
      ck_assert_msg(rc == 0 || rc == LC_ENOMEM, "n=%ld rc=%d %s", n, rc, r.err_message);
      if (rc == 0) {
        finished = 1;
        ck_assert_uint_eq(r.n, 2);
      } else {
        ck_assert_uint_eq(r.n, 0);
      }
      lc_embed_result_free(&r);
      ck_assert_int_eq(lc_alloc_live(), live0);
    }
    ck_assert(finished);
  }
}
END_TEST

Suite *embed_suite(void) {
  Suite *s = suite_create("embed");
  TCase *tc = tcase_create("conformance");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, conformance_over_loopback, 0, N_CASES);
  tcase_add_test(tc, every_llm2_fixture_is_claimed);
  suite_add_tcase(s, tc);
  tc = tcase_create("hostile");
  tcase_add_loop_test(tc, hostile_response_refused, 0, (int)(sizeof bads / sizeof bads[0]));
  tcase_add_test(tc, hostile_usage_numbers);
  tcase_add_test(tc, base64_round_trip);
  tcase_add_test(tc, parse_out_of_memory);
  suite_add_tcase(s, tc);
  tc = tcase_create("call");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, batches_in_order_with_retry);
  tcase_add_test(tc, journal_replays_offline);
  tcase_add_test(tc, lua_embed);
  tcase_add_test(tc, overlong_input_is_context_error);
  tcase_add_test(tc, lua_embed_gemini);
  tcase_add_test(tc, gemini_build);
  tcase_add_test(tc, gemini_batches_of_100);
  tcase_add_test(tc, gemini_errors_by_kind);
  suite_add_tcase(s, tc);
  tc = tcase_create("call_oom");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, oom_mock_up, oom_mock_down);
  tcase_add_loop_test(tc, recorded_call_out_of_memory, 1, 120);
  suite_add_tcase(s, tc);
  return s;
}
