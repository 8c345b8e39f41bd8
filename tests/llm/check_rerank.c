/* check_rerank.c: reranking through a provider's rerank API. Each wire
 * format (Cohere /v2/rerank, Jina/vLLM/llama.cpp /v1/rerank, Voyage
 * /v1/rerank with top_k and data, TEI /rerank with texts) over real HTTP
 * against lc-mockllm's deterministic reranker; batching past a provider's
 * limit merges to the same answer as one batch; retries; a hostile corpus
 * of responses refused with a clear message and nothing half-taken; the
 * journal replays with no call; luact.llm.rerank and retrieval's
 * rerank = {provider=...}. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "effect.h"
#include "lc.h"
#include "loop.h"
#include "rerank.h"
#include "rerank_call.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

static void on_done(struct lc_rerank_call *c, void *ud) { *(int *)ud = 1; }

static const char *const pets[] = {
    "Stock markets fell sharply on Tuesday.",
    "Cats purr when they are content and relaxed.",
    "A recipe for bread needs flour, water and yeast.",
    "Kittens and cats purr; dogs bark.",
    "The train to Lyon leaves at noon.",
};
#define N_PETS 5

static struct lc_rerank_request *new_req(enum lc_rerank_provider p, const char *base,
                                         const char *query, const char *const *docs, size_t n) {
  struct lc_rerank_request *q = lc_calloc(1, sizeof *q);
  ck_assert_ptr_nonnull(q);
  q->provider = p;
  q->model = lc_strdup("rr-model");
  q->base_url = lc_strdup(base);
  q->api_key = lc_strdup("rr-key");
  q->query = lc_strdup(query);
  q->docs = lc_calloc(n, sizeof *q->docs);
  q->doc_len = lc_calloc(n, sizeof *q->doc_len);
  for (size_t i = 0; i < n; i++) {
    q->docs[i] = lc_strdup(docs[i]);
    q->doc_len[i] = strlen(docs[i]);
  }
  q->n_docs = n;
  return q;
}

static struct lc_rerank_call *run(struct lc_rerank_request *q, const struct lc_llm_opts *o,
                                  struct lc_journal *j) {
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_rerank_call *c;
  ck_assert_int_eq(lc_rerank_call_start(loop, q, o, on_done, &done, &c), 0);
  lc_free(q);
  while (!done) {
    if (j && lc_journal_idle(j)) continue;
    lc_loop_run_once(loop, -1);
  }
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
  return c;
}

static struct lc_llm_opts quick(void) {
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.base_delay_ms = 1;
  return o;
}

/* ---- each wire format over loopback ---- */

struct wire_case {
  enum lc_rerank_provider p;
  const char *path;      /* the route the request must reach */
  const char *must_send; /* a field of that format's body */
  const char *must_not;  /* a field of another format */
};

static const struct wire_case wires[] = {
    {LC_RERANK_COHERE, "/v2/rerank", "\"top_n\":2", "\"texts\""},
    {LC_RERANK_JINA, "/v1/rerank", "\"return_documents\":false", "\"top_k\""},
    {LC_RERANK_VLLM, "/v1/rerank", "\"top_n\":2", "\"return_documents\""},
    {LC_RERANK_VOYAGE, "/v1/rerank", "\"top_k\":2", "\"top_n\""},
    {LC_RERANK_TEI, "/rerank", "\"texts\":[", "\"documents\""},
};

START_TEST(wire_format_over_loopback) {
  const struct wire_case *w = &wires[_i];
  char script[512];
  /* The key must arrive as a bearer token: the rule matches only then. */
  snprintf(script, sizeof script,
           "[{\"match\":{\"path\":\"%s\",\"headers\":{\"authorization\":\"Bearer rr-key\"}},"
           "\"reply\":{\"rerank\":{}}}]",
           w->path);
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, script), 0);
  struct lc_rerank_request *q = new_req(w->p, m.base_url, "why do cats purr", pets, N_PETS);
  q->top_n = 2;
  struct lc_llm_opts o = quick();
  o.retry.max_attempts = 1;
  struct lc_rerank_call *c = run(q, &o, NULL);
  const struct lc_rerank_result *r = lc_rerank_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s: %s", lc_rerank_provider_name(w->p), r->err_message);
  ck_assert_uint_eq(r->n, 2);
  /* The two cat passages, best first (TEI returns all five: cut here). */
  ck_assert_uint_eq(r->hits[0].index + r->hits[1].index, 1 + 3);
  ck_assert(r->hits[0].index == 1 || r->hits[0].index == 3);
  ck_assert(r->hits[0].score >= r->hits[1].score && r->hits[1].score > 0.5);
  lc_rerank_call_free(c);
  lc_mock_assert_request_has(&m, 0, w->must_send);
  lc_mock_assert_request_has(&m, 0, "\"query\":\"why do cats purr\"");
  char *body = lc_mock_request_body(&m, 0);
  ck_assert_msg(!strstr(body, w->must_not), "%s sent %s: %s", lc_rerank_provider_name(w->p),
                w->must_not, body);
  ck_assert_int_eq(w->p == LC_RERANK_TEI, strstr(body, "\"model\"") == NULL);
  cJSON_free(body);
  ck_assert_int_eq(lc_mock_count_requests(&m, w->path), 1);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* 70 documents to TEI (32 a request): batches of 32, 32, 6, every score
 * asked for (no top_n on the wire), merged into the same answer, best
 * first, as vLLM's single batch gives. */
START_TEST(batches_merge_like_one_request) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"match\":{\"path\":\"/rerank\"},\"reply\":{\"rerank\":"
                                     "{\"max_batch\":32}}},"
                                     " {\"reply\":{\"rerank\":{}}}]"),
                   0);
  enum { N = 70 };
  static char texts[N][64];
  const char *docs[N];
  for (int i = 0; i < N; i++) {
    snprintf(texts[i], sizeof texts[i], "%s number %d", pets[i % N_PETS], i % 9);
    docs[i] = texts[i];
  }
  struct lc_rerank_request *q = new_req(LC_RERANK_TEI, m.base_url, "cats purr number 3", docs, N);
  q->top_n = 10;
  struct lc_rerank_call *c = run(q, NULL, NULL);
  const struct lc_rerank_result *r = lc_rerank_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_int_eq(lc_rerank_call_requests(c), 3);
  ck_assert_uint_eq(r->n, 10);
  for (size_t i = 1; i < r->n; i++) ck_assert(r->hits[i - 1].score >= r->hits[i].score);
  for (int b = 0; b < 3; b++) {
    char *sent = lc_mock_request_body(&m, b);
    cJSON *sj = cJSON_Parse(sent);
    cJSON_free(sent);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(sj, "texts")), b < 2 ? 32 : 6);
    cJSON_Delete(sj);
  }
  struct lc_rerank_request *q1 = new_req(LC_RERANK_VLLM, m.base_url, "cats purr number 3", docs, N);
  q1->top_n = 10;
  struct lc_rerank_call *c1 = run(q1, NULL, NULL);
  const struct lc_rerank_result *r1 = lc_rerank_call_result(c1);
  ck_assert_msg(r1->err == LC_LLM_OK, "%s", r1->err_message);
  ck_assert_int_eq(lc_rerank_call_requests(c1), 1);
  ck_assert_uint_eq(r1->n, 10);
  for (size_t i = 0; i < 10; i++) {
    ck_assert_uint_eq(r->hits[i].index, r1->hits[i].index);
    ck_assert(r->hits[i].score == r1->hits[i].score);
  }
  lc_rerank_call_free(c);
  lc_rerank_call_free(c1);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* A 429 with Retry-After and a 503: retried like chat and embed; a 401 is
 * not retried and its message carries no key. */
START_TEST(retries_like_chat) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"match\":{\"body_contains\":\"busy\"},\"times\":1,\"reply\":"
                        "{\"status\":429,\"headers\":{\"retry-after\":\"0\"},\"json\":{\"message\":"
                        "\"slow down\"}}},"
                        " {\"match\":{\"body_contains\":\"busy\"},\"times\":1,\"reply\":"
                        "{\"status\":503,\"json\":{\"message\":\"overloaded\"}}},"
                        " {\"match\":{\"body_contains\":\"denied\"},\"reply\":{\"status\":401,"
                        "\"json\":{\"message\":\"invalid api token rr-secret-77\"}}},"
                        " {\"reply\":{\"rerank\":{}}}]"),
      0);
  struct lc_llm_opts o = quick();
  struct lc_rerank_call *c = run(new_req(LC_RERANK_COHERE, m.base_url, "busy cats", pets, N_PETS), &o, NULL);
  const struct lc_rerank_result *r = lc_rerank_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_int_eq(lc_rerank_call_requests(c), 3);
  ck_assert_uint_eq(r->n, N_PETS);
  ck_assert_int_eq(r->tokens, 1); /* Cohere's billed search units */
  lc_rerank_call_free(c);

  struct lc_rerank_request *q = new_req(LC_RERANK_COHERE, m.base_url, "denied", pets, N_PETS);
  lc_free(q->api_key);
  q->api_key = lc_strdup("rr-secret-77");
  c = run(q, &o, NULL);
  r = lc_rerank_call_result(c);
  ck_assert_str_eq(lc_llm_err_name(r->err), "auth");
  ck_assert_int_eq(lc_rerank_call_requests(c), 1);
  ck_assert_ptr_null(strstr(r->err_message, "rr-secret-77"));
  ck_assert_uint_eq(r->n, 0);
  lc_rerank_call_free(c);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* ---- hostile responses ---- */

struct bad_case {
  enum lc_rerank_provider p;
  const char *body;
  size_t n, top_n;
  const char *needle;
};

static const struct bad_case bads[] = {
    {LC_RERANK_COHERE, "{\"results\":[{\"index\":3,\"relevance_score\":0.5}]}", 3, 0,
     "index out of range"},
    {LC_RERANK_COHERE, "{\"results\":[{\"index\":-1,\"relevance_score\":0.5}]}", 1, 0,
     "index out of range"},
    {LC_RERANK_COHERE, "{\"results\":[{\"index\":0.5,\"relevance_score\":0.5}]}", 1, 0,
     "index out of range"},
    {LC_RERANK_COHERE, "{\"results\":[{\"index\":\"0\",\"relevance_score\":0.5}]}", 1, 0,
     "index missing"},
    {LC_RERANK_JINA,
     "{\"results\":[{\"index\":0,\"relevance_score\":0.5},{\"index\":0,\"relevance_score\":0.4}]}",
     2, 0, "repeats index 0"},
    {LC_RERANK_JINA, "{\"results\":[{\"index\":0,\"relevance_score\":1e999}]}", 1, 0,
     "non-finite"},
    {LC_RERANK_JINA, "{\"results\":[{\"index\":0,\"relevance_score\":NaN}]}", 1, 0,
     "not whole JSON"},
    {LC_RERANK_JINA, "{\"results\":[{\"index\":0}]}", 1, 0, "no numeric \"relevance_score\""},
    {LC_RERANK_JINA, "{\"results\":[{\"index\":0,\"relevance_score\":\"0.9\"}]}", 1, 0,
     "no numeric"},
    {LC_RERANK_VLLM, "{\"results\":[{\"index\":0,\"relevance_score\":0.5},",
     1, 0, "not whole JSON"},
    {LC_RERANK_VLLM,
     "{\"results\":[{\"index\":0,\"relevance_score\":0.5},{\"index\":1,\"relevance_score\":0.4}]}",
     1, 0, "2 results for 1 documents"},
    {LC_RERANK_VLLM, "{\"results\":[{\"index\":0,\"relevance_score\":0.5}]}", 2, 0,
     "1 results, 2 expected"},
    {LC_RERANK_VLLM, "{\"results\":[{\"index\":0,\"relevance_score\":0.5}]}", 3, 2,
     "1 results, 2 expected"},
    {LC_RERANK_VLLM, "{\"results\":{\"index\":0}}", 1, 0, "no \"results\""},
    {LC_RERANK_VLLM, "{\"results\":[7]}", 1, 0, "not an object"},
    {LC_RERANK_VOYAGE, "{\"results\":[{\"index\":0,\"relevance_score\":0.5}]}", 1, 0,
     "no \"data\""},
    {LC_RERANK_TEI, "{\"results\":[]}", 1, 0, "no a JSON list"},
    {LC_RERANK_TEI, "[{\"index\":0,\"relevance_score\":0.5}]", 1, 0, "no numeric \"score\""},
    {LC_RERANK_TEI, "<html>bad gateway</html>", 1, 0, "not whole JSON"},
    {LC_RERANK_TEI, "", 1, 0, "not whole JSON"},
};

START_TEST(hostile_response_refused) {
  const struct bad_case *b = &bads[_i];
  static const char *const docs[] = {"a", "b", "c"};
  struct lc_rerank_request *q = new_req(b->p, "http://h", "q", docs, b->n);
  q->top_n = b->top_n;
  struct lc_rerank_result r;
  lc_rerank_result_init(&r);
  /* One good batch first: a bad second batch must leave it as it was. */
  ck_assert_int_eq(lc_rerank_parse(q, b->p == LC_RERANK_TEI ? "[]" : b->p == LC_RERANK_VOYAGE
                                                                  ? "{\"data\":[]}"
                                                                  : "{\"results\":[]}",
                                   b->p == LC_RERANK_TEI ? 2 : b->p == LC_RERANK_VOYAGE ? 11 : 14,
                                   0, 0, &r),
                   0);
  ck_assert_int_eq(lc_rerank_parse(q, b->body, strlen(b->body), 0, b->n, &r), LC_EINVAL);
  ck_assert_int_eq(r.err, LC_LLM_EBADRESP);
  ck_assert_msg(strstr(r.err_message, b->needle) != NULL, "case %d: %s", _i, r.err_message);
  ck_assert_uint_eq(r.n, 0); /* nothing half-taken */
  lc_rerank_result_free(&r);
  lc_rerank_request_free(q);
  lc_free(q);
}
END_TEST

/* The same corpus over HTTP: a clear bad_response, never a retry storm or
 * a crash; a body cut mid-transfer by the server too. */
START_TEST(hostile_over_http) {
  struct lc_mock m;
  ck_assert_int_eq(
      lc_mock_start(&m, "[{\"match\":{\"body_contains\":\"cut\"},\"reply\":{\"rerank\":{},"
                        "\"cut_after_bytes\":20}},"
                        " {\"match\":{\"body_contains\":\"dup\"},\"reply\":{\"json\":{\"results\":"
                        "[{\"index\":1,\"relevance_score\":0.5},{\"index\":1,\"relevance_score\":0.4}]}}},"
                        " {\"reply\":{\"json\":{\"results\":[{\"index\":9,\"relevance_score\":0.5}]}}}]"),
      0);
  struct lc_llm_opts o = quick();
  o.retry.max_attempts = 2;
  const char *queries[] = {"dup", "range", "cut"};
  const char *needles[] = {"repeats index 1", "index out of range", ""};
  for (int i = 0; i < 3; i++) {
    struct lc_rerank_call *c = run(new_req(LC_RERANK_VLLM, m.base_url, queries[i], pets, N_PETS), &o, NULL);
    const struct lc_rerank_result *r = lc_rerank_call_result(c);
    ck_assert_msg(r->err != LC_LLM_OK, "%s accepted", queries[i]);
    ck_assert_msg(strstr(r->err_message, needles[i]), "%s: %s", queries[i], r->err_message);
    ck_assert_uint_eq(r->n, 0);
    ck_assert_ptr_null(r->hits);
    lc_rerank_call_free(c);
  }
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

/* Out of memory at every allocation of a parse: LC_ENOMEM (or success),
 * the earlier batch's hits as they were, nothing leaked. */
START_TEST(parse_out_of_memory) {
  static const char body[] =
      "{\"results\":[{\"index\":1,\"relevance_score\":0.9},{\"index\":0,\"relevance_score\":0.1}],"
      "\"model\":\"m\",\"usage\":{\"total_tokens\":3}}";
  static const char *const docs[] = {"a", "b"};
  struct lc_rerank_request *q = new_req(LC_RERANK_JINA, "http://h", "q", docs, 2);
  long live0 = lc_alloc_live();
  int finished = 0;
  for (long n = 1; n < 100 && !finished; n++) {
    struct lc_rerank_result r;
    lc_rerank_result_init(&r);
    lc_alloc_fail_after(n);
    int rc = lc_rerank_parse(q, body, strlen(body), 0, 2, &r);
    lc_alloc_fail_after(0);
    ck_assert_msg(rc == 0 || rc == LC_ENOMEM, "n=%ld rc=%d %s", n, rc, r.err_message);
    if (rc == 0) {
      finished = 1;
      ck_assert_uint_eq(r.n, 2);
      ck_assert_int_eq(r.tokens, 3);
    } else {
      ck_assert_uint_eq(r.n, 0);
    }
    lc_rerank_result_free(&r);
    ck_assert_int_eq(lc_alloc_live(), live0);
  }
  ck_assert(finished);
  lc_rerank_request_free(q);
  lc_free(q);
}
END_TEST

/* ---- journal ---- */

static unsigned long seqno;
static void next_id(void *ud, struct lc_effect_who *w) {
  w->task = ud;
  w->path = "1";
  w->seq = ++seqno;
}

START_TEST(journal_replays_offline) {
  char jpath[128];
  snprintf(jpath, sizeof jpath, "/tmp/lc_rerank_%ld.jsonl", (long)getpid());
  char err[512];
  struct lc_journal *j;
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\":{\"rerank\":{}}}]"), 0);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, jpath, NULL, &j, err, sizeof err), 0);
  struct lc_llm_opts o = quick();
  o.effect = (struct lc_effect_src){.j = j, .next = next_id, .ud = &seqno};
  seqno = 0;
  struct lc_rerank_request *q = new_req(LC_RERANK_JINA, m.base_url, "cats purr", pets, N_PETS);
  q->top_n = 3;
  struct lc_rerank_call *c = run(q, &o, j);
  const struct lc_rerank_result *r = lc_rerank_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  struct lc_rerank_hit rec[3];
  ck_assert_uint_eq(r->n, 3);
  memcpy(rec, r->hits, sizeof rec);
  lc_rerank_call_free(c);
  lc_journal_free(j);
  ck_assert_int_eq(lc_mock_stop(&m), 0);

  /* Replay: no server at all; the same hits, bit for bit. */
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, jpath, NULL, &j, err, sizeof err), 0);
  o.effect.j = j;
  seqno = 0;
  q = new_req(LC_RERANK_JINA, "http://127.0.0.1:1", "cats purr", pets, N_PETS);
  q->top_n = 3;
  c = run(q, &o, j);
  r = lc_rerank_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_int_eq(lc_rerank_call_requests(c), 0);
  ck_assert_uint_eq(r->n, 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_uint_eq(r->hits[i].index, rec[i].index);
    ck_assert(r->hits[i].score == rec[i].score);
  }
  lc_rerank_call_free(c);
  long begun, replayed, ran;
  lc_journal_counts(j, &begun, &replayed, &ran);
  ck_assert_int_eq(replayed, 1);
  ck_assert_int_eq(ran, 0);
  lc_journal_free(j);

  /* A crafted journal's token count past long's range: the hits replay,
   * the count is refused (0), never cast (LONG_MIN on x86 before). */
  {
    size_t n;
    char *text = lc_test_read_file(jpath, &n);
    ck_assert_ptr_nonnull(text);
    char *at = strstr(text, "\"tokens\":");
    ck_assert_ptr_nonnull(at);
    at += strlen("\"tokens\":");
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
  q = new_req(LC_RERANK_JINA, "http://127.0.0.1:1", "cats purr", pets, N_PETS);
  q->top_n = 3;
  c = run(q, &o, j);
  r = lc_rerank_call_result(c);
  ck_assert_msg(r->err == LC_LLM_OK, "%s", r->err_message);
  ck_assert_uint_eq(r->n, 3);
  ck_assert_int_eq(r->tokens, 0);
  lc_rerank_call_free(c);
  lc_journal_free(j);

  /* Another document: a mismatch, never a silent answer. */
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, jpath, NULL, &j, err, sizeof err), 0);
  o.effect.j = j;
  seqno = 0;
  const char *other[] = {pets[0], pets[1], pets[2], pets[3], "changed"};
  q = new_req(LC_RERANK_JINA, "http://127.0.0.1:1", "cats purr", other, N_PETS);
  q->top_n = 3;
  c = run(q, &o, j);
  ck_assert_int_eq(lc_rerank_call_result(c)->err, LC_LLM_ECONFIG);
  ck_assert_int_eq(lc_journal_failed(j), LC_JOURNAL_MISMATCH);
  lc_rerank_call_free(c);
  lc_journal_free(j);
  unlink(jpath);
}
END_TEST

/* A journal edited to hold a repeated index is refused on replay. */
START_TEST(journal_edited_is_refused) {
  char jpath[128];
  snprintf(jpath, sizeof jpath, "/tmp/lc_rerank_ed_%ld.jsonl", (long)getpid());
  char err[512];
  struct lc_journal *j;
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\":{\"rerank\":{}}}]"), 0);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, jpath, NULL, &j, err, sizeof err), 0);
  struct lc_llm_opts o = quick();
  o.effect = (struct lc_effect_src){.j = j, .next = next_id, .ud = &seqno};
  seqno = 0;
  struct lc_rerank_call *c = run(new_req(LC_RERANK_JINA, m.base_url, "cats", pets, 2), &o, j);
  ck_assert_int_eq(lc_rerank_call_result(c)->err, LC_LLM_OK);
  lc_rerank_call_free(c);
  lc_journal_free(j);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  size_t len;
  char *text = lc_test_read_file(jpath, &len);
  ck_assert_ptr_nonnull(text);
  /* The two hits are [[1,s],[0,t]] (cats first): make both index 1. */
  char *p = strstr(text, "\"hits\":[[1,");
  ck_assert_ptr_nonnull(p);
  char *second = strstr(p + 10, "],[0,");
  ck_assert_ptr_nonnull(second);
  second[3] = '1';
  FILE *f = fopen(jpath, "w");
  fwrite(text, 1, len, f);
  fclose(f);
  free(text);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, jpath, NULL, &j, err, sizeof err), 0);
  o.effect.j = j;
  seqno = 0;
  c = run(new_req(LC_RERANK_JINA, "http://127.0.0.1:1", "cats", pets, 2), &o, j);
  ck_assert_int_eq(lc_rerank_call_result(c)->err, LC_LLM_ECONFIG);
  ck_assert_int_eq(lc_journal_failed(j), LC_JOURNAL_MISMATCH);
  lc_rerank_call_free(c);
  lc_journal_free(j);
  unlink(jpath);
}
END_TEST

/* ---- Lua ---- */

START_TEST(lua_rerank) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, "[{\"reply\":{\"rerank\":{}}}]"), 0);
  setenv("COHERE_API_KEY", "co-lua-key", 1);
  char out[4096], err[4096];
  int rc = lc_test_lua_run_once(
      m.base_url, NULL,
      "local luact = require 'luact'\n"
      "local docs = {'stocks fell', 'cats purr softly', 'bread and yeast', 'cats and kittens purr'}\n"
      "local r, e = luact.llm.rerank{model='cohere:rerank-v3.5', base_url=BASE,\n"
      "  query='why do cats purr', documents=docs, top_n=2}\n"
      "assert(r, e)\n"
      "assert(#r.results == 2, 'two')\n"
      "assert(r.results[1].index == 2 or r.results[1].index == 4, 'index is 1-based')\n"
      "assert(r.results[1].score >= r.results[2].score)\n"
      "local t = assert(luact.llm.rerank{provider='tei', base_url=BASE, query='cats', documents=docs})\n"
      "luact.llm.limits{cohere = {rpm = 6000}, tei = {rpm = 6000}}\n"
      "assert(#t.results == 4)\n"
      "local function raises(o, needle)\n"
      "  local ok, msg = pcall(luact.llm.rerank, o)\n"
      "  assert(not ok and msg:find(needle, 1, true), tostring(msg))\n"
      "end\n"
      "raises({model='openai:x', query='q', documents={'a'}}, 'unknown provider')\n"
      "raises({model='rerank-v3.5', query='q', documents={'a'}}, 'no provider')\n"
      "raises({model='cohere:r', query='q', documents={}}, 'empty list')\n"
      "raises({model='cohere:r', query='', documents={'a'}}, \"'query' is empty\")\n"
      "raises({model='cohere:r', documents={'a'}}, \"'query' is required\")\n"
      "raises({model='cohere:r', query='q', documents={'a', '\\xff'}}, 'documents[2] is not UTF-8')\n"
      "raises({model='cohere:r', query='q', documents={'a'}, top_n=0}, \"'top_n' must be >= 1\")\n"
      "raises({model='cohere:r', query='q', documents={'a', 'bbbb'}, max_input_bytes=3},\n"
      "  'luact.llm.rerank: documents[2] is 4 bytes, over max_input_bytes (3)')\n"
      "raises({model='cohere:r', query='q', documents={'a'}, max_batch=0}, \"'max_batch' must be >= 1\")\n"
      "raises({model='cohere:r', query='q', documents={'a'}, topn=1}, 'top_n')\n"
      "local n, e2, code = luact.llm.rerank{provider='vllm', model='m', query='q', documents={'a'}}\n"
      "assert(not n and code == 'config' and e2:find('base_url', 1, true), tostring(e2))\n"
      "return 'ok'\n",
      out, sizeof out, err, sizeof err);
  unsetenv("COHERE_API_KEY");
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "ok");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
}
END_TEST

Suite *rerank_suite(void) {
  Suite *s = suite_create("rerank");
  TCase *tc = tcase_create("wire");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, wire_format_over_loopback, 0, (int)(sizeof wires / sizeof wires[0]));
  tcase_add_test(tc, batches_merge_like_one_request);
  tcase_add_test(tc, retries_like_chat);
  suite_add_tcase(s, tc);
  tc = tcase_create("hostile");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, hostile_response_refused, 0, (int)(sizeof bads / sizeof bads[0]));
  tcase_add_test(tc, hostile_over_http);
  tcase_add_test(tc, parse_out_of_memory);
  suite_add_tcase(s, tc);
  tc = tcase_create("journal");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, journal_replays_offline);
  tcase_add_test(tc, journal_edited_is_refused);
  tcase_add_test(tc, lua_rerank);
  suite_add_tcase(s, tc);
  return s;
}
