/* rerank_call.c: a rerank call on the loop: batches, governor, retries,
 * journal (rerank_call.h). */
#include "rerank_call.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "batch_call.h"
#include "governor.h"
#include "lc.h"
#include "sha256.h"

/* The batches, governor, retries and journal framing are batch_call.c's. */
struct lc_rerank_call {
  struct lc_batch_call b; /* first: the kind's hooks get &b */
  struct lc_rerank_request q; /* owned */
  struct lc_rerank_result res;
  lc_rerank_done_fn done;
  void *ud;
};

static struct lc_rerank_call *of(struct lc_batch_call *b) { return (struct lc_rerank_call *)b; }

/* ---- journal ---- */

/* The query and documents go in by their SHA-256: a replay still compares
 * them one by one, and the journal does not carry a second copy of every
 * passage (often large, sometimes confidential) next to the scores. */
static cJSON *request_json(struct lc_batch_call *b) {
  const struct lc_rerank_request *q = &of(b)->q;
  cJSON *o = cJSON_CreateObject(), *in = o ? cJSON_AddArrayToObject(o, "documents_sha256") : NULL;
  if (!in) goto nomem;
  char hex[65];
  cJSON_AddStringToObject(o, "provider", lc_rerank_provider_name(q->provider));
  cJSON_AddStringToObject(o, "model", q->model ? q->model : "");
  lc_sha256_hex(q->query, strlen(q->query), hex);
  cJSON_AddStringToObject(o, "query_sha256", hex);
  for (size_t i = 0; i < q->n_docs; i++) {
    lc_sha256_hex(q->docs[i], q->doc_len[i], hex);
    cJSON *s = cJSON_CreateString(hex);
    if (!s) goto nomem;
    cJSON_AddItemToArray(in, s);
  }
  if (q->top_n) cJSON_AddNumberToObject(o, "top_n", (double)q->top_n);
  if (q->truncate) cJSON_AddBoolToObject(o, "truncate", 1);
  return o;
nomem:
  cJSON_Delete(o);
  return NULL;
}

/* The hits as [[index, score], ...], best first: doubles round-trip
 * through cJSON's printing exactly. */
static int record(struct lc_batch_call *b, cJSON *body) {
  const struct lc_rerank_result *r = &of(b)->res;
  cJSON *hits = cJSON_AddArrayToObject(body, "hits");
  if (!hits) return LC_ENOMEM;
  for (size_t i = 0; i < r->n; i++) {
    cJSON *p = cJSON_CreateArray();
    if (!p) return LC_ENOMEM;
    cJSON_AddItemToArray(hits, p);
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)r->hits[i].index));
    cJSON_AddItemToArray(p, cJSON_CreateNumber(r->hits[i].score));
  }
  if (r->model) cJSON_AddStringToObject(body, "model", r->model);
  return 0;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Replay: the recorded hits into the result. A journal's hits are checked
 * like a provider's: the file may have been edited. */
static int replay(struct lc_batch_call *b, const cJSON *res) {
  struct lc_rerank_call *c = of(b);
  struct lc_rerank_result *r = &c->res;
  const cJSON *hits = cJSON_GetObjectItemCaseSensitive(res, "hits");
  size_t n = cJSON_IsArray(hits) ? (size_t)cJSON_GetArraySize(hits) : 0;
  size_t want = c->q.top_n && c->q.top_n < c->q.n_docs ? c->q.top_n : c->q.n_docs;
  if (!cJSON_IsArray(hits) || n != want)
    return lc_batch_call_replay_bad(b, "no usable recorded scores");
  unsigned char *seen = lc_calloc(c->q.n_docs ? c->q.n_docs : 1, 1);
  if (!seen || !(r->hits = lc_calloc(n ? n : 1, sizeof *r->hits))) {
    lc_free(seen);
    return LC_ENOMEM;
  }
  int rc = 0;
  size_t k = 0;
  for (const cJSON *p = hits->child; p && !rc; p = p->next, k++) {
    const cJSON *ix = cJSON_GetArrayItem(p, 0), *sc = cJSON_GetArrayItem(p, 1);
    if (!cJSON_IsNumber(ix) || !cJSON_IsNumber(sc) || ix->valuedouble < 0 ||
        ix->valuedouble >= (double)c->q.n_docs || ix->valuedouble != (double)(size_t)ix->valuedouble ||
        seen[(size_t)ix->valuedouble]++ || !isfinite(sc->valuedouble))
      rc = lc_batch_call_replay_bad(b, "a recorded score is out of range, repeated or not finite");
    else
      r->hits[k] = (struct lc_rerank_hit){(size_t)ix->valuedouble, sc->valuedouble};
  }
  lc_free(seen);
  if (rc) return rc;
  r->n = n;
  const char *m = jstr(res, "model");
  if (m && !(r->model = lc_strdup(m))) return LC_ENOMEM;
  const cJSON *tok = lc_effect_member(b->eff, "tokens");
  long t; /* the journal's number, range-checked (a crafted 1e300) */
  if (cJSON_IsNumber(tok) && lc_dbl_to_long(tok->valuedouble, 0, 1000000000000000L, &t) == 0)
    r->tokens = t;
  return 0;
}

/* ---- the batches ---- */

/* The provider's endpoint and key (its environment variable). */
static int resolve(struct lc_batch_call *b, char *err, size_t cap) {
  struct lc_rerank_call *c = of(b);
  int rc = lc_rerank_resolve(&c->q, err, cap);
  if (!rc) b->gov = lc_governor_for(b->provider, c->q.base_url, c->q.api_key);
  return rc;
}

static size_t next_batch(struct lc_batch_call *b, size_t from) {
  return lc_rerank_next_batch(&of(b)->q, from);
}

static int build(struct lc_batch_call *b, size_t from, size_t n, struct lc_llm_http *h,
                 char *err, size_t cap) {
  return lc_rerank_build(&of(b)->q, from, n, h, err, cap);
}

static void parse(struct lc_batch_call *b, const char *body, size_t len) {
  lc_rerank_parse(&of(b)->q, body, len, b->from, b->batch, &of(b)->res);
}

static void parse_error(struct lc_batch_call *b, int status, const char *body, size_t len) {
  lc_rerank_parse_error(&of(b)->q, status, body, len, &of(b)->res);
}

/* The batches' scores merged, sorted and cut to top_n. */
static void settle(struct lc_batch_call *b) {
  struct lc_rerank_call *c = of(b);
  if (c->res.err != LC_LLM_OK) {
    lc_free(c->res.hits);
    c->res.hits = NULL;
    c->res.n = 0;
  } else {
    lc_rerank_finish(&c->q, &c->res);
  }
}

static void on_done(struct lc_batch_call *b) { of(b)->done(of(b), of(b)->ud); }

static const struct lc_batch_kind rerank_kind = {
    .effect = "rerank", .items = "documents", .tokens_key = "tokens",
    .request_json = request_json, .record = record, .replay = replay, .resolve = resolve,
    .next_batch = next_batch, .build = build, .parse = parse, .parse_error = parse_error,
    .settle = settle, .done = on_done};

int lc_rerank_call_start(struct lc_loop *loop, struct lc_rerank_request *q,
                         const struct lc_llm_opts *o, lc_rerank_done_fn done, void *ud,
                         struct lc_rerank_call **out) {
  struct lc_rerank_call *c = lc_calloc(1, sizeof *c);
  if (!c) {
    lc_rerank_request_free(q);
    return LC_ENOMEM;
  }
  c->q = *q;
  memset(q, 0, sizeof *q);
  lc_rerank_result_init(&c->res);
  c->done = done;
  c->ud = ud;
  c->b.kind = &rerank_kind;
  c->b.res = LC_BATCH_RES(&c->res, tokens);
  c->b.total = c->q.n_docs;
  c->b.provider = lc_rerank_provider_name(c->q.provider);
  c->b.model = c->q.model;
  if (lc_batch_call_start(&c->b, loop, o)) {
    lc_rerank_call_free(c);
    return LC_ENOMEM;
  }
  *out = c;
  return 0;
}

const struct lc_rerank_result *lc_rerank_call_result(const struct lc_rerank_call *c) {
  return &c->res;
}

int lc_rerank_call_requests(const struct lc_rerank_call *c) { return c->b.requests; }

void lc_rerank_call_free(struct lc_rerank_call *c) {
  if (!c) return;
  lc_batch_call_cleanup(&c->b);
  lc_rerank_result_free(&c->res);
  lc_rerank_request_free(&c->q);
  lc_free(c);
}
