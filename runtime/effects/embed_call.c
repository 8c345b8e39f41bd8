/* embed_call.c: an embeddings call on the loop: batches, governor,
 * retries, journal (embed_call.h). */
#include "embed_call.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "batch_call.h"
#include "governor.h"
#include "lc.h"
#include "secrets.h"
#include "sha256.h"

/* The batches, governor, retries and journal framing are batch_call.c's. */
struct lc_embed_call {
  struct lc_batch_call b; /* first: the kind's hooks get &b */
  struct lc_embed_request q; /* owned */
  struct lc_embed_result res;
  lc_embed_done_fn done;
  void *ud;
};

static struct lc_embed_call *of(struct lc_batch_call *b) { return (struct lc_embed_call *)b; }

/* ---- journal ---- */

/* The inputs go in by their SHA-256: a replay still compares them one by
 * one, and the journal does not carry a second copy of every document
 * (often large, sometimes confidential) next to the vectors. */
static cJSON *request_json(struct lc_batch_call *b) {
  const struct lc_embed_request *q = &of(b)->q;
  cJSON *o = cJSON_CreateObject(), *in = o ? cJSON_AddArrayToObject(o, "input_sha256") : NULL;
  if (!in) goto nomem;
  cJSON_AddStringToObject(o, "provider", lc_embed_provider_name(q->provider));
  cJSON_AddStringToObject(o, "model", q->model ? q->model : "");
  for (size_t i = 0; i < q->n_input; i++) {
    char hex[65];
    lc_sha256_hex(q->input[i], q->input_len[i], hex);
    cJSON *s = cJSON_CreateString(hex);
    if (!s) goto nomem;
    cJSON_AddItemToArray(in, s);
  }
  if (q->dimensions) cJSON_AddNumberToObject(o, "dimensions", q->dimensions);
  if (q->base64) cJSON_AddBoolToObject(o, "base64", 1);
  if (q->legacy) cJSON_AddBoolToObject(o, "legacy", 1);
  if (q->task_type) cJSON_AddStringToObject(o, "task_type", q->task_type);
  return o;
nomem:
  cJSON_Delete(o);
  return NULL;
}

/* The vectors go into the journal as one base64 string of little-endian
 * float32s: exact, and a third of the size of decimal text. */
static int record(struct lc_batch_call *b, cJSON *body) {
  const struct lc_embed_result *r = &of(b)->res;
  size_t nb = r->n * r->dims * 4;
  unsigned char *le = lc_malloc(nb ? nb : 1);
  char *b64 = lc_malloc(4 * ((nb + 2) / 3) + 1);
  if (!le || !b64) {
    lc_free(le);
    lc_free(b64);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < r->n * r->dims; i++) {
    uint32_t u;
    memcpy(&u, &r->rows[i], 4);
    le[i * 4] = (unsigned char)u;
    le[i * 4 + 1] = (unsigned char)(u >> 8);
    le[i * 4 + 2] = (unsigned char)(u >> 16);
    le[i * 4 + 3] = (unsigned char)(u >> 24);
  }
  lc_embed_b64_encode(le, nb, b64);
  lc_free(le);
  cJSON_AddNumberToObject(body, "n", (double)r->n);
  cJSON_AddNumberToObject(body, "dims", (double)r->dims);
  cJSON_AddStringToObject(body, "vectors_f32le", b64);
  if (r->model) cJSON_AddStringToObject(body, "model", r->model);
  lc_free(b64);
  return 0;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Replay: the recorded vectors into the result. A journal's vectors are
 * checked like a provider's: the file may have been edited. */
static int replay(struct lc_batch_call *b, const cJSON *res) {
  struct lc_embed_call *c = of(b);
  struct lc_embed_result *r = &c->res;
  const char *v = jstr(res, "vectors_f32le");
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(res, "n");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(res, "dims");
  if (!v || !cJSON_IsNumber(n) || !cJSON_IsNumber(d) || n->valuedouble != (double)c->q.n_input ||
      d->valuedouble < 1 || d->valuedouble > LC_EMBED_MAX_DIMS) {
    char msg[700];
    snprintf(msg, sizeof msg, "replay: effect %s has no usable recorded vectors", b->eff->id);
    lc_journal_fail(b->eff->j, LC_JOURNAL_MISMATCH, msg);
    return LC_EINVAL;
  }
  size_t dims = (size_t)d->valuedouble, len = strlen(v);
  unsigned char *raw = lc_malloc(len / 4 * 3 + 3);
  if (!raw) return LC_ENOMEM;
  long nb = lc_embed_b64_decode(v, len, raw);
  int rc = 0;
  if (nb != (long)(c->q.n_input * dims * 4)) {
    rc = lc_batch_call_replay_bad(b, "recorded vectors are cut");
  } else if (!(r->rows = lc_malloc(nb ? (size_t)nb : 1))) {
    rc = LC_ENOMEM;
  } else {
    for (size_t i = 0; i < (size_t)nb / 4; i++) {
      uint32_t u = (uint32_t)raw[i * 4] | (uint32_t)raw[i * 4 + 1] << 8 |
                   (uint32_t)raw[i * 4 + 2] << 16 | (uint32_t)raw[i * 4 + 3] << 24;
      memcpy(&r->rows[i], &u, 4);
      if ((u & 0x7f800000u) == 0x7f800000u) {
        rc = lc_batch_call_replay_bad(b, "recorded vector holds NaN or inf");
        break;
      }
    }
    r->n = c->q.n_input;
    r->dims = dims;
  }
  lc_free(raw);
  const char *m = jstr(res, "model");
  if (!rc && m && !(r->model = lc_strdup(m))) rc = LC_ENOMEM;
  const cJSON *tok = lc_effect_member(b->eff, "input_tokens");
  long t; /* the journal's number, range-checked (a crafted 1e300) */
  if (cJSON_IsNumber(tok) && lc_dbl_to_long(tok->valuedouble, 0, 1000000000000000L, &t) == 0)
    r->input_tokens = t;
  return rc;
}

/* ---- the batches ---- */

/* Endpoint and key resolve exactly as chat's do. */
static int resolve(struct lc_batch_call *b, char *err, size_t cap) {
  struct lc_embed_call *c = of(b);
  struct lc_llm_request tmp = {.provider = c->q.provider, .base_url = c->q.base_url,
                               .api_key = c->q.api_key};
  if (tmp.api_key) lc_secret_add(tmp.api_key, strlen(tmp.api_key));
  int rc = lc_llm_resolve_endpoint(&tmp, err, cap);
  c->q.base_url = tmp.base_url;
  c->q.api_key = tmp.api_key;
  if (!rc) b->gov = lc_governor_for(b->provider, c->q.base_url, c->q.api_key);
  return rc;
}

static size_t next_batch(struct lc_batch_call *b, size_t from) {
  return lc_embed_next_batch(&of(b)->q, from);
}

static int build(struct lc_batch_call *b, size_t from, size_t n, struct lc_llm_http *h,
                 char *err, size_t cap) {
  return lc_embed_build(&of(b)->q, from, n, h, err, cap);
}

static void parse(struct lc_batch_call *b, const char *body, size_t len) {
  lc_embed_parse(&of(b)->q, body, len, b->batch, &of(b)->res);
}

static void parse_error(struct lc_batch_call *b, int status, const char *body, size_t len) {
  lc_embed_parse_error(&of(b)->q, status, body, len, &of(b)->res);
}

static void settle(struct lc_batch_call *b) {
  struct lc_embed_result *r = &of(b)->res;
  if (r->err != LC_LLM_OK) {
    lc_free(r->rows);
    r->rows = NULL;
    r->n = r->dims = 0;
  }
}

static void on_done(struct lc_batch_call *b) { of(b)->done(of(b), of(b)->ud); }

static const struct lc_batch_kind embed_kind = {
    .effect = "embed", .items = "inputs", .tokens_key = "input_tokens",
    .request_json = request_json, .record = record, .replay = replay, .resolve = resolve,
    .next_batch = next_batch, .build = build, .parse = parse, .parse_error = parse_error,
    .settle = settle, .done = on_done};

int lc_embed_call_start(struct lc_loop *loop, struct lc_embed_request *q,
                        const struct lc_llm_opts *o, lc_embed_done_fn done, void *ud,
                        struct lc_embed_call **out) {
  struct lc_embed_call *c = lc_calloc(1, sizeof *c);
  if (!c) {
    lc_embed_request_free(q);
    return LC_ENOMEM;
  }
  c->q = *q;
  memset(q, 0, sizeof *q);
  lc_embed_result_init(&c->res);
  c->done = done;
  c->ud = ud;
  c->b.kind = &embed_kind;
  c->b.res = LC_BATCH_RES(&c->res, input_tokens);
  c->b.total = c->q.n_input;
  c->b.provider = lc_embed_provider_name(c->q.provider);
  c->b.model = c->q.model;
  if (lc_batch_call_start(&c->b, loop, o)) {
    lc_embed_call_free(c);
    return LC_ENOMEM;
  }
  *out = c;
  return 0;
}

const struct lc_embed_result *lc_embed_call_result(const struct lc_embed_call *c) {
  return &c->res;
}

int lc_embed_call_requests(const struct lc_embed_call *c) { return c->b.requests; }

void lc_embed_call_free(struct lc_embed_call *c) {
  if (!c) return;
  lc_batch_call_cleanup(&c->b);
  lc_embed_result_free(&c->res);
  lc_embed_request_free(&c->q);
  lc_free(c);
}
