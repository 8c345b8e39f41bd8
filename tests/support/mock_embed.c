/* mock_embed.c: an embeddings generator for the mock: OpenAI's
 * /v1/embeddings (float or base64), Ollama's /api/embed and Gemini's
 * models/{model}:batchEmbedContents (chosen by the path), vectors by
 * feature hashing of the lower-cased words (so texts that share words are
 * near each other, deterministically, with no model). Reply spec:
 * {"embeddings": {"dims": 64}}. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static void vector_of(const char *s, int dims, float *v) {
  memset(v, 0, (size_t)dims * sizeof *v);
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    while (*p && !isalnum(*p) && *p < 0x80) p++;
    if (!*p) break;
    uint32_t h = 2166136261u;
    while (*p && (isalnum(*p) || *p >= 0x80)) {
      h ^= (uint32_t)tolower(*p++);
      h *= 16777619u;
    }
    v[h % (uint32_t)dims] += (h >> 31) ? -1.0f : 1.0f;
  }
  double n = 0;
  for (int i = 0; i < dims; i++) n += (double)v[i] * v[i];
  if (n == 0) {
    v[0] = 1;
    return;
  }
  for (int i = 0; i < dims; i++) v[i] = (float)(v[i] / sqrt(n));
}

static char *b64(const float *v, int dims) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = (size_t)dims * 4, o = 0;
  unsigned char *p = malloc(n);
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  for (int i = 0; i < dims; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; k++) p[i * 4 + k] = (unsigned char)(u >> (8 * k));
  }
  for (size_t i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    out[o++] = t[w >> 18 & 63];
    out[o++] = t[w >> 12 & 63];
    out[o++] = i + 1 < n ? t[w >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[w & 63] : '=';
  }
  out[o] = 0;
  free(p);
  return out;
}

/* Gemini: {"requests":[{"model","content":{"parts":[{"text"}]},
 * "outputDimensionality"?}]} -> {"embeddings":[{"values":[...]}]}, no
 * usage (as the service answers). A request naming another model than
 * the path, or more than 100 requests, is Gemini's 400. */
static void mock_gen_gemini_embeddings(int dims, const struct mock_request *req,
                                       struct mock_response *r) {
  const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(req->json, "requests");
  const char *colon = strrchr(req->path, ':'), *slash = strstr(req->path, "/models/");
  int n = cJSON_IsArray(reqs) ? cJSON_GetArraySize(reqs) : 0;
  const char *why = !n ? "requests is empty" : n > 100 ? "at most 100 requests can be in one batch"
                                                      : NULL;
  const cJSON *e;
  cJSON_ArrayForEach(e, reqs) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "model");
    if (!why && (!slash || colon < slash + 8 || !cJSON_IsString(m) || strncmp(m->valuestring, "models/", 7) ||
                 strlen(m->valuestring + 7) != (size_t)(colon - slash - 8) ||
                 strncmp(m->valuestring + 7, slash + 8, (size_t)(colon - slash - 8))))
      why = "Model name in request does not match the model in the URL";
  }
  if (why) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(err, "code", 400);
    cJSON_AddStringToObject(err, "message", why);
    cJSON_AddStringToObject(err, "status", "INVALID_ARGUMENT");
    mock_resp_json(r, 400, root);
    cJSON_Delete(root);
    return;
  }
  cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "embeddings");
  float *v = NULL;
  cJSON_ArrayForEach(e, reqs) {
    int d = dims;
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(e, "outputDimensionality");
    if (cJSON_IsNumber(want) && want->valuedouble >= 1 && want->valuedouble <= 4096)
      d = (int)want->valuedouble;
    v = realloc(v, (size_t)d * sizeof *v);
    const cJSON *part = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "content"), "parts"), 0);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
    vector_of(cJSON_IsString(t) ? t->valuestring : "", d, v);
    cJSON *o = cJSON_CreateObject(), *vals = cJSON_AddArrayToObject(o, "values");
    for (int k = 0; k < d; k++) cJSON_AddItemToArray(vals, cJSON_CreateNumber(v[k]));
    cJSON_AddItemToArray(list, o);
  }
  free(v);
  mock_resp_json(r, 200, root);
  cJSON_Delete(root);
}

void mock_gen_embeddings(const cJSON *spec, const struct mock_request *req,
                         struct mock_response *r) {
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "dims");
  int dims = cJSON_IsNumber(d) && d->valuedouble >= 1 && d->valuedouble <= 4096 ? (int)d->valuedouble : 64;
  const cJSON *want = cJSON_GetObjectItemCaseSensitive(req->json, "dimensions");
  if (cJSON_IsNumber(want) && want->valuedouble >= 1 && want->valuedouble <= 4096)
    dims = (int)want->valuedouble;
  int gemini = strstr(req->path, ":batchEmbedContents") != NULL;
  if (gemini) {
    mock_gen_gemini_embeddings(dims, req, r);
    return;
  }
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(req->json, "input");
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(req->json, "model");
  const cJSON *enc = cJSON_GetObjectItemCaseSensitive(req->json, "encoding_format");
  int base64 = cJSON_IsString(enc) && !strcmp(enc->valuestring, "base64");
  int ollama = strstr(req->path, "/api/embed") != NULL;
  float *v = malloc((size_t)dims * sizeof *v);
  cJSON *root = cJSON_CreateObject();
  cJSON *list = cJSON_AddArrayToObject(root, ollama ? "embeddings" : "data");
  long words = 0;
  int n = cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 1;
  for (int i = 0; i < n; i++) {
    const cJSON *s = cJSON_IsArray(in) ? cJSON_GetArrayItem(in, i) : in;
    vector_of(cJSON_IsString(s) ? s->valuestring : "", dims, v);
    words += cJSON_IsString(s) ? (long)strlen(s->valuestring) / 4 + 1 : 1;
    cJSON *vec;
    if (base64 && !ollama) {
      char *t = b64(v, dims);
      vec = cJSON_CreateString(t);
      free(t);
    } else {
      vec = cJSON_CreateArray();
      for (int k = 0; k < dims; k++) cJSON_AddItemToArray(vec, cJSON_CreateNumber(v[k]));
    }
    if (ollama) {
      cJSON_AddItemToArray(list, vec);
    } else {
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "object", "embedding");
      cJSON_AddNumberToObject(e, "index", i);
      cJSON_AddItemToObject(e, "embedding", vec);
      cJSON_AddItemToArray(list, e);
    }
  }
  cJSON_AddStringToObject(root, "model", cJSON_IsString(model) ? model->valuestring : "mock-embed");
  if (ollama) {
    cJSON_AddNumberToObject(root, "prompt_eval_count", (double)words);
  } else {
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)words);
    cJSON_AddNumberToObject(u, "total_tokens", (double)words);
  }
  mock_resp_json(r, 200, root);
  cJSON_Delete(root);
  free(v);
}

/* ---- rerank ---- */

struct rr_hit {
  int index;
  double score;
};

static int rr_cmp(const void *a, const void *b) {
  const struct rr_hit *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return x->index - y->index;
}

/* A reranker by path: /v2/rerank is Cohere's ({results:[{index,
 * relevance_score}], meta}), /v1/rerank Jina's/vLLM's ({model, results,
 * usage}) or Voyage's ({data, model, usage}) when the body asks with
 * top_k or the spec says {"format": "voyage"}, /rerank TEI's ([{index,
 * score}]). The score is (1 + cosine) / 2 of the feature-hashed query
 * and document (mock_gen_embeddings' vectors), so documents sharing the
 * query's words rank first; ties by index. top_n/top_k honoured; a
 * request over {"max_batch": n} documents gets the provider's 413/422. */
void mock_gen_rerank(const cJSON *spec, const struct mock_request *req, struct mock_response *r) {
  int tei = strlen(req->path) >= 7 && !strcmp(req->path + strlen(req->path) - 7, "/rerank") &&
            !strstr(req->path, "/v1/rerank") && !strstr(req->path, "/v2/rerank");
  int cohere = strstr(req->path, "/v2/rerank") != NULL;
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(spec, "format");
  const cJSON *topk = cJSON_GetObjectItemCaseSensitive(req->json, "top_k");
  int voyage = !tei && !cohere &&
               ((cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "voyage")) || topk);
  const cJSON *q = cJSON_GetObjectItemCaseSensitive(req->json, "query");
  const cJSON *docs = cJSON_GetObjectItemCaseSensitive(req->json, tei ? "texts" : "documents");
  const cJSON *top = voyage ? topk : cJSON_GetObjectItemCaseSensitive(req->json, "top_n");
  const cJSON *mb = cJSON_GetObjectItemCaseSensitive(spec, "max_batch");
  int n = cJSON_IsArray(docs) ? cJSON_GetArraySize(docs) : 0;
  if (!cJSON_IsString(q) || !n || (cJSON_IsNumber(mb) && n > mb->valueint)) {
    cJSON *root = cJSON_CreateObject();
    const char *msg = !n ? "documents must not be empty" : "batch size too large";
    if (tei) {
      cJSON_AddStringToObject(root, "error", msg);
      cJSON_AddStringToObject(root, "error_type", "Validation");
    } else {
      cJSON_AddStringToObject(root, "message", msg);
    }
    mock_resp_json(r, tei ? 413 : 400, root);
    cJSON_Delete(root);
    return;
  }
  enum { D = 256 };
  float qv[D], dv[D];
  vector_of(q->valuestring, D, qv);
  struct rr_hit *h = calloc((size_t)n, sizeof *h);
  long words = (long)strlen(q->valuestring) / 4 + 1;
  for (int i = 0; i < n; i++) {
    const cJSON *d = cJSON_GetArrayItem(docs, i);
    vector_of(cJSON_IsString(d) ? d->valuestring : "", D, dv);
    double s = 0;
    for (int k = 0; k < D; k++) s += (double)qv[k] * dv[k];
    h[i].index = i;
    /* Rounded so the JSON text and the double agree exactly. */
    h[i].score = round((1 + s) / 2 * 1e6) / 1e6;
    words += cJSON_IsString(d) ? (long)strlen(d->valuestring) / 4 + 1 : 1;
  }
  qsort(h, (size_t)n, sizeof *h, rr_cmp);
  int keep = cJSON_IsNumber(top) && top->valueint >= 1 && top->valueint < n ? top->valueint : n;
  cJSON *list = cJSON_CreateArray();
  for (int i = 0; i < keep; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "index", h[i].index);
    cJSON_AddNumberToObject(e, tei ? "score" : "relevance_score", h[i].score);
    cJSON_AddItemToArray(list, e);
  }
  free(h);
  if (tei) {
    mock_resp_json(r, 200, list);
    cJSON_Delete(list);
    return;
  }
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(req->json, "model");
  cJSON *root = cJSON_CreateObject();
  if (cohere) {
    cJSON_AddStringToObject(root, "id", "mock-rerank");
    cJSON_AddItemToObject(root, "results", list);
    cJSON *meta = cJSON_AddObjectToObject(root, "meta");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(meta, "billed_units"), "search_units", 1);
  } else {
    if (voyage) cJSON_AddStringToObject(root, "object", "list");
    cJSON_AddItemToObject(root, voyage ? "data" : "results", list);
    cJSON_AddStringToObject(root, "model", cJSON_IsString(model) ? model->valuestring : "mock-rerank");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(root, "usage"), "total_tokens", (double)words);
  }
  mock_resp_json(r, 200, root);
  cJSON_Delete(root);
}
