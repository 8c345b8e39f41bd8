/* rerank.c: rerank request bodies and response parsing (rerank.h). */
#include "rerank.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "llm_accum.h"
#include "secrets.h"

static const struct {
  const char *name, *base, *key_env, *key_env2;
} provs[LC_RERANK__COUNT] = {
    [LC_RERANK_COHERE] = {"cohere", "https://api.cohere.com", "COHERE_API_KEY", "CO_API_KEY"},
    [LC_RERANK_JINA] = {"jina", "https://api.jina.ai", "JINA_API_KEY", NULL},
    [LC_RERANK_VOYAGE] = {"voyage", "https://api.voyageai.com", "VOYAGE_API_KEY", NULL},
    [LC_RERANK_TEI] = {"tei", NULL, "TEI_API_KEY", NULL},
    [LC_RERANK_VLLM] = {"vllm", NULL, "VLLM_API_KEY", NULL},
};

const char *lc_rerank_provider_name(enum lc_rerank_provider p) {
  return (unsigned)p < LC_RERANK__COUNT ? provs[p].name : "?";
}

int lc_rerank_provider_from(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < LC_RERANK__COUNT; i++)
    if (!strcmp(name, provs[i].name)) return i;
  if (!strcmp(name, "llamacpp")) return LC_RERANK_VLLM;
  return -1;
}

void lc_rerank_request_free(struct lc_rerank_request *q) {
  if (!q) return;
  lc_free(q->model);
  lc_free(q->base_url);
  lc_free(q->api_key);
  lc_free(q->query);
  for (size_t i = 0; i < q->n_docs; i++) lc_free(q->docs[i]);
  lc_free(q->docs);
  lc_free(q->doc_len);
  memset(q, 0, sizeof *q);
}

void lc_rerank_result_init(struct lc_rerank_result *r) {
  memset(r, 0, sizeof *r);
  r->retry_after_s = -1;
}

void lc_rerank_result_free(struct lc_rerank_result *r) {
  if (!r) return;
  lc_free(r->hits);
  lc_free(r->model);
  lc_free(r->err_message);
  lc_free(r->err_type);
  lc_rerank_result_init(r);
}

int lc_rerank_resolve(struct lc_rerank_request *q, char *err, size_t errlen) {
  if ((unsigned)q->provider >= LC_RERANK__COUNT) {
    snprintf(err, errlen, "rerank: unknown provider");
    return LC_EINVAL;
  }
  const char *pn = provs[q->provider].name;
  if (!q->base_url || !*q->base_url) {
    lc_free(q->base_url);
    q->base_url = NULL;
    if (!provs[q->provider].base) {
      snprintf(err, errlen, "rerank: %s is a server of your own: give its base_url", pn);
      return LC_EINVAL;
    }
    if (!(q->base_url = lc_strdup(provs[q->provider].base))) return LC_ENOMEM;
  }
  if (!q->api_key || !*q->api_key) {
    const char *k = getenv(provs[q->provider].key_env);
    if ((!k || !*k) && provs[q->provider].key_env2) k = getenv(provs[q->provider].key_env2);
    lc_free(q->api_key);
    q->api_key = NULL;
    if (k && *k && !(q->api_key = lc_strdup(k))) return LC_ENOMEM;
  }
  /* Hosted services refuse a request without a key: say so before sending. */
  if (!q->api_key && provs[q->provider].base &&
      !strcmp(q->base_url, provs[q->provider].base)) {
    snprintf(err, errlen, "rerank: %s needs an API key (api_key or %s)", pn,
             provs[q->provider].key_env);
    return LC_EINVAL;
  }
  if (q->api_key) lc_secret_add(q->api_key, strlen(q->api_key));
  return 0;
}

size_t lc_rerank_batch_limit(const struct lc_rerank_request *q) {
  size_t lim = q->provider == LC_RERANK_TEI ? LC_RERANK_TEI_MAX_BATCH : LC_RERANK_MAX_BATCH;
  return q->max_batch && q->max_batch < lim ? q->max_batch : lim;
}

size_t lc_rerank_next_batch(const struct lc_rerank_request *q, size_t from) {
  size_t lim = lc_rerank_batch_limit(q), n = 0, bytes = 0;
  while (from + n < q->n_docs && n < lim) {
    size_t b = q->doc_len[from + n];
    if (n && bytes + b > LC_RERANK_MAX_BATCH_BYTES) break;
    bytes += b;
    n++;
  }
  return n;
}

int lc_rerank_build(const struct lc_rerank_request *q, size_t from, size_t n,
                    struct lc_llm_http *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if ((unsigned)q->provider >= LC_RERANK__COUNT || !q->base_url) {
    snprintf(err, errlen, "rerank: provider or base_url not resolved");
    return LC_EINVAL;
  }
  if (!n || from + n > q->n_docs || !q->query) {
    snprintf(err, errlen, "rerank: empty batch");
    return LC_EINVAL;
  }
  int tei = q->provider == LC_RERANK_TEI, voyage = q->provider == LC_RERANK_VOYAGE;
  int whole = from == 0 && n == q->n_docs;
  cJSON *root = cJSON_CreateObject(), *arr;
  if (!root) goto nomem;
  if (!tei && !cJSON_AddStringToObject(root, "model", q->model ? q->model : "")) goto nomem;
  if (!cJSON_AddStringToObject(root, "query", q->query)) goto nomem;
  if (!(arr = cJSON_AddArrayToObject(root, tei ? "texts" : "documents"))) goto nomem;
  for (size_t i = 0; i < n; i++) {
    cJSON *s = cJSON_CreateString(q->docs[from + i]);
    if (!s) goto nomem;
    cJSON_AddItemToArray(arr, s);
  }
  /* Several batches: every score is needed for the merge. */
  if (whole && q->top_n && q->top_n < n && !tei &&
      !cJSON_AddNumberToObject(root, voyage ? "top_k" : "top_n", (double)q->top_n))
    goto nomem;
  if (tei) {
    /* Raw scores are logits; the default sigmoid keeps 0..1 like the others. */
    if (!cJSON_AddBoolToObject(root, "truncate", q->truncate)) goto nomem;
    if (!cJSON_AddBoolToObject(root, "return_text", 0)) goto nomem;
  } else if (voyage) {
    if (!cJSON_AddBoolToObject(root, "truncation", q->truncate)) goto nomem;
    if (!cJSON_AddBoolToObject(root, "return_documents", 0)) goto nomem;
  } else if (q->provider == LC_RERANK_JINA) {
    /* Jina sends every document back unless told not to; Cohere v2 never
     * does, and vLLM's and llama.cpp's servers are sent only what they
     * document. */
    if (!cJSON_AddBoolToObject(root, "return_documents", 0)) goto nomem;
  }
  int rc = lc_accum_http_body(out, root); /* takes root */
  const char *path = q->provider == LC_RERANK_COHERE ? "/v2/rerank" : tei ? "/rerank" : "/v1/rerank";
  if (!rc) rc = lc_accum_http_url(out, q->base_url, path);
  if (!rc) rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc) rc = lc_accum_http_header(out, "Accept: application/json");
  if (!rc && q->api_key && *q->api_key)
    rc = lc_accum_http_header(out, "Authorization: Bearer %s", q->api_key);
  if (rc) {
    lc_llm_http_free(out);
    snprintf(err, errlen, rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
nomem:
  cJSON_Delete(root);
  snprintf(err, errlen, "out of memory");
  return LC_ENOMEM;
}

/* ---- parsing ---- */

static int bad(struct lc_rerank_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad(struct lc_rerank_result *r, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->err = LC_LLM_EBADRESP;
  lc_free(r->err_message);
  r->err_message = lc_strdup(msg);
  return LC_EINVAL;
}

/* Results a batch must carry: top_n when it was sent (lc_rerank_build),
 * else one per document. A server may send more than top_n (not all
 * honour it), never more than the documents. */
static size_t whole_top(const struct lc_rerank_request *q, size_t from, size_t n) {
  int whole = from == 0 && n == q->n_docs;
  if (whole && q->top_n && q->top_n < n && q->provider != LC_RERANK_TEI) return q->top_n;
  return n;
}

int lc_rerank_parse(const struct lc_rerank_request *q, const char *body, size_t len,
                    size_t from, size_t n, struct lc_rerank_result *out) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (!root) return bad(out, "rerank: the response is not whole JSON (%zu bytes)", len);
  const cJSON *list = NULL;
  const char *lname = q->provider == LC_RERANK_TEI      ? "a JSON list"
                      : q->provider == LC_RERANK_VOYAGE ? "\"data\""
                                                        : "\"results\"";
  if (q->provider == LC_RERANK_TEI) list = cJSON_IsArray(root) ? root : NULL;
  else if (cJSON_IsObject(root))
    list = cJSON_GetObjectItemCaseSensitive(root, q->provider == LC_RERANK_VOYAGE ? "data" : "results");
  int rc = 0;
  unsigned char *seen = NULL;
  size_t n0 = out->n;
  if (!cJSON_IsArray(list)) {
    rc = bad(out, "rerank: the response has no %s of results", lname);
    goto done;
  }
  size_t cnt = (size_t)cJSON_GetArraySize(list);
  size_t want = whole_top(q, from, n);
  if (cnt > n) {
    rc = bad(out, "rerank: %zu results for %zu documents", cnt, n);
    goto done;
  }
  struct lc_rerank_hit *h = lc_realloc(out->hits, (n0 + cnt + 1) * sizeof *h);
  if (h) out->hits = h; /* grown or not, still the result's */
  seen = lc_calloc(n ? n : 1, 1);
  if (!seen || !h) {
    rc = LC_ENOMEM;
    goto done;
  }
  const char *sname = q->provider == LC_RERANK_TEI ? "score" : "relevance_score";
  size_t k = 0;
  for (const cJSON *e = list->child; e; e = e->next, k++) {
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(e, "index");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(e, sname);
    if (!cJSON_IsObject(e)) {
      rc = bad(out, "rerank: result %zu is not an object", k);
      break;
    }
    if (!cJSON_IsNumber(ix) || ix->valuedouble < 0 || ix->valuedouble >= (double)n ||
        ix->valuedouble != floor(ix->valuedouble)) {
      rc = bad(out, "rerank: result %zu has index %s, not 0..%zu", k,
               cJSON_IsNumber(ix) ? "out of range" : "missing", n - 1);
      break;
    }
    size_t i = (size_t)ix->valuedouble;
    if (seen[i]++) {
      rc = bad(out, "rerank: result %zu repeats index %zu", k, i);
      break;
    }
    if (!cJSON_IsNumber(sc) || !isfinite(sc->valuedouble)) {
      rc = bad(out, "rerank: result %zu (index %zu) has %s \"%s\"", k, i,
               cJSON_IsNumber(sc) ? "a non-finite" : "no numeric", sname);
      break;
    }
    out->hits[n0 + k].index = from + i;
    out->hits[n0 + k].score = sc->valuedouble;
  }
  /* Checked after the entries, whose faults say more. */
  if (!rc && cnt < want) rc = bad(out, "rerank: %zu results, %zu expected", cnt, want);
  if (!rc) {
    out->n = n0 + cnt;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(m) && !out->model && !(out->model = lc_strdup(m->valuestring))) rc = LC_ENOMEM;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(u, "total_tokens");
    if (!cJSON_IsNumber(t)) {
      const cJSON *bu = cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(root, "meta"), "billed_units");
      t = cJSON_GetObjectItemCaseSensitive(bu, "search_units");
    }
    if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble < 1e15)
      out->tokens += (long)t->valuedouble;
  }
done:
  lc_free(seen);
  cJSON_Delete(root);
  if (rc) out->n = n0; /* a batch goes in whole or not at all */
  if (rc == LC_ENOMEM && !out->err) {
    out->err = LC_LLM_EBADRESP;
    lc_free(out->err_message);
    out->err_message = lc_strdup("out of memory reading the rerank results");
  }
  return rc;
}

void lc_rerank_parse_error(const struct lc_rerank_request *q, int status, const char *body,
                           size_t len, struct lc_rerank_result *out) {
  (void)q;
  out->err = lc_llm_err_from_status(status);
  lc_free(out->err_message);
  lc_free(out->err_type);
  out->err_message = out->err_type = NULL;
  cJSON *root = cJSON_ParseWithLength(body, len);
  const char *msg = NULL, *type = NULL;
  if (cJSON_IsObject(root)) {
    /* OpenAI-like {"error":{"message","type"}}, TEI {"error","error_type"},
     * Cohere {"message"}, FastAPI {"detail"}. */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(root, "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(root, "detail");
    if (cJSON_IsString(m)) msg = m->valuestring;
    const cJSON *t = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "type")
                                       : cJSON_GetObjectItemCaseSensitive(root, "error_type");
    if (cJSON_IsString(t)) type = t->valuestring;
  }
  char buf[600];
  snprintf(buf, sizeof buf, "rerank: HTTP %d%s%.500s", status, msg ? ": " : "", msg ? msg : "");
  out->err_message = lc_strdup(buf);
  if (type) out->err_type = lc_strdup(type);
  lc_secrets_scrub_str(out->err_message);
  lc_secrets_scrub_str(out->err_type);
  if (out->err == LC_LLM_EBADREQ && msg &&
      (strstr(msg, "too long") || strstr(msg, "context length") || strstr(msg, "maximum")))
    out->err = LC_LLM_ECONTEXT;
  cJSON_Delete(root);
}

static int by_score(const void *a, const void *b) {
  const struct lc_rerank_hit *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

void lc_rerank_finish(const struct lc_rerank_request *q, struct lc_rerank_result *out) {
  if (out->n > 1) qsort(out->hits, out->n, sizeof *out->hits, by_score);
  if (q->top_n && out->n > q->top_n) out->n = q->top_n;
}
