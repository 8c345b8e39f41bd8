/* embed.c: embeddings request bodies and response parsing (embed.h). */
#include "embed.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "llm_accum.h"
#include "secrets.h"

void lc_embed_request_free(struct lc_embed_request *q) {
  if (!q) return;
  lc_free(q->model);
  lc_free(q->base_url);
  lc_free(q->api_key);
  for (size_t i = 0; i < q->n_input; i++) lc_free(q->input[i]);
  lc_free(q->input);
  lc_free(q->input_len);
  lc_free(q->task_type);
  memset(q, 0, sizeof *q);
}

void lc_embed_result_init(struct lc_embed_result *r) {
  memset(r, 0, sizeof *r);
  r->retry_after_s = -1;
}

void lc_embed_result_free(struct lc_embed_result *r) {
  if (!r) return;
  lc_free(r->rows);
  lc_free(r->model);
  lc_free(r->err_message);
  lc_free(r->err_type);
  lc_embed_result_init(r);
}

const char *lc_embed_provider_name(enum lc_llm_provider p) {
  return p == LC_PROV_OLLAMA ? "ollama" : p == LC_PROV_GEMINI ? "gemini" : "openai";
}

size_t lc_embed_batch_limit(const struct lc_embed_request *q) {
  if (q->provider == LC_PROV_OLLAMA && q->legacy) return 1;
  size_t lim = q->provider == LC_PROV_OLLAMA   ? LC_EMBED_OLLAMA_MAX_BATCH
               : q->provider == LC_PROV_GEMINI ? LC_EMBED_GEMINI_MAX_BATCH
                                               : LC_EMBED_OPENAI_MAX_BATCH;
  return q->max_batch && q->max_batch < lim ? q->max_batch : lim;
}

size_t lc_embed_next_batch(const struct lc_embed_request *q, size_t from) {
  size_t lim = lc_embed_batch_limit(q), n = 0, bytes = 0;
  while (from + n < q->n_input && n < lim) {
    size_t b = q->input_len[from + n];
    if (n && bytes + b > LC_EMBED_MAX_BATCH_BYTES) break;
    bytes += b;
    n++;
  }
  return n;
}

static int add_input(cJSON *arr, const char *s, size_t n) {
  /* cJSON strings are NUL-terminated: inputs are checked UTF-8 without
   * NUL by whoever filled the request. */
  (void)n;
  cJSON *v = cJSON_CreateString(s);
  if (!v) return LC_ENOMEM;
  cJSON_AddItemToArray(arr, v);
  return 0;
}

/* "/models/" + model (percent-encoded, a leading "models/" dropped) +
 * ":batchEmbedContents", as the Gemini chat adapter forms its URLs: a
 * model name is the script's, and must not reach into the path. */
static char *gemini_path(const char *model) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  if (strncmp(model, "models/", 7) == 0) model += 7;
  int rc = lc_buf_puts(&b, "/models/");
  for (const char *m = model; !rc && *m; m++) {
    unsigned char c = (unsigned char)*m;
    int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_' || c == '~';
    rc = keep ? lc_buf_append(&b, m, 1) : lc_buf_printf(&b, "%%%02X", c);
  }
  if (!rc) rc = lc_buf_puts(&b, ":batchEmbedContents");
  char *s = rc ? NULL : lc_buf_steal(&b, NULL);
  lc_buf_free(&b);
  return s;
}

/* {"requests":[{"model":"models/M","content":{"parts":[{"text":T}]},
 *   "outputDimensionality":D,"taskType":K}, ...]}: one request per input,
 * each naming the model again (Gemini refuses a mismatch). */
static cJSON *gemini_body(const struct lc_embed_request *q, size_t from, size_t n) {
  const char *model = q->model ? q->model : "";
  if (strncmp(model, "models/", 7) == 0) model += 7;
  size_t ml = strlen(model) + 8;
  char *full = lc_malloc(ml);
  cJSON *root = cJSON_CreateObject();
  cJSON *reqs = root ? cJSON_AddArrayToObject(root, "requests") : NULL;
  if (!full || !reqs) goto nomem;
  snprintf(full, ml, "models/%s", model);
  for (size_t i = 0; i < n; i++) {
    cJSON *r = cJSON_CreateObject(), *content, *parts, *part;
    if (!r) goto nomem;
    cJSON_AddItemToArray(reqs, r);
    if (!cJSON_AddStringToObject(r, "model", full) ||
        !(content = cJSON_AddObjectToObject(r, "content")) ||
        !(parts = cJSON_AddArrayToObject(content, "parts")) || !(part = cJSON_CreateObject()))
      goto nomem;
    cJSON_AddItemToArray(parts, part);
    if (!cJSON_AddStringToObject(part, "text", q->input[from + i])) goto nomem;
    if (q->dimensions > 0 && !cJSON_AddNumberToObject(r, "outputDimensionality", q->dimensions))
      goto nomem;
    if (q->task_type && !cJSON_AddStringToObject(r, "taskType", q->task_type)) goto nomem;
  }
  lc_free(full);
  return root;
nomem:
  lc_free(full);
  cJSON_Delete(root);
  return NULL;
}

int lc_embed_build(const struct lc_embed_request *q, size_t from, size_t n,
                   struct lc_llm_http *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (q->provider != LC_PROV_OPENAI && q->provider != LC_PROV_OLLAMA &&
      q->provider != LC_PROV_GEMINI) {
    snprintf(err, errlen, "embeddings: provider not supported (use openai, ollama or gemini)");
    return LC_EINVAL;
  }
  if (!n || from + n > q->n_input) {
    snprintf(err, errlen, "embeddings: empty batch");
    return LC_EINVAL;
  }
  if (q->provider == LC_PROV_GEMINI) {
    if (!q->model || !*q->model) {
      snprintf(err, errlen, "embeddings: no model given");
      return LC_EINVAL;
    }
    cJSON *root = gemini_body(q, from, n);
    char *path = gemini_path(q->model);
    const char *base = q->base_url && *q->base_url ? q->base_url : lc_llm_gemini.default_base_url;
    int rc = root && path ? 0 : LC_ENOMEM;
    if (!rc) rc = lc_accum_http_body(out, root); /* takes root */
    else cJSON_Delete(root);
    if (!rc) rc = lc_accum_http_url(out, base, path);
    lc_free(path);
    if (!rc) rc = lc_accum_http_header(out, "Content-Type: application/json");
    if (!rc) rc = lc_accum_http_header(out, "Accept: application/json");
    /* In a header, never in the URL (?key=), where proxies and error
     * messages would show it. */
    if (!rc && q->api_key && *q->api_key) {
      lc_secret_add(q->api_key, strlen(q->api_key));
      rc = lc_accum_http_header(out, "x-goog-api-key: %s", q->api_key);
    }
    if (rc) {
      lc_llm_http_free(out);
      snprintf(err, errlen, rc == LC_ETOOBIG ? "header too long" : "out of memory");
    }
    return rc;
  }
  cJSON *root = cJSON_CreateObject();
  if (!root || !cJSON_AddStringToObject(root, "model", q->model ? q->model : "")) goto nomem;
  int rc = 0;
  if (q->provider == LC_PROV_OLLAMA && q->legacy) {
    if (!cJSON_AddStringToObject(root, "prompt", q->input[from])) goto nomem;
  } else {
    cJSON *arr = cJSON_AddArrayToObject(root, "input");
    if (!arr) goto nomem;
    for (size_t i = 0; i < n; i++)
      if (add_input(arr, q->input[from + i], q->input_len[from + i])) goto nomem;
    if (q->dimensions > 0 &&
        !cJSON_AddNumberToObject(root, "dimensions", q->dimensions))
      goto nomem;
    if (q->provider == LC_PROV_OPENAI &&
        !cJSON_AddStringToObject(root, "encoding_format", q->base64 ? "base64" : "float"))
      goto nomem;
  }
  rc = lc_accum_http_body(out, root); /* takes root */
  root = NULL;
  const char *path = q->provider == LC_PROV_OPENAI ? "/embeddings"
                     : q->legacy                   ? "/api/embeddings"
                                                   : "/api/embed";
  const char *base = q->base_url && *q->base_url ? q->base_url
                     : q->provider == LC_PROV_OPENAI ? lc_llm_openai.default_base_url
                                                     : lc_llm_ollama.default_base_url;
  if (!rc) rc = lc_accum_http_url(out, base, path);
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

/* ---- base64 ---- */

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long lc_embed_b64_decode(const char *s, size_t len, unsigned char *out) {
  if (len % 4) return -1; /* cut: a whole vector is always padded */
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4], pad = 0;
    for (int k = 0; k < 4; k++) {
      unsigned char c = (unsigned char)s[i + k];
      if (c == '=' && i + 4 == len && k >= 2) {
        v[k] = 0;
        pad++;
      } else if (pad || (v[k] = b64val(c)) < 0) {
        return -1; /* data after '=' or a foreign byte */
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    out[o++] = (unsigned char)(w >> 16);
    if (pad < 2) out[o++] = (unsigned char)(w >> 8);
    if (pad < 1) out[o++] = (unsigned char)w;
  }
  return (long)o;
}

void lc_embed_b64_encode(const unsigned char *p, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)p[i] << 16;
    if (i + 1 < n) w |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) w |= p[i + 2];
    out[o++] = tab[w >> 18 & 63];
    out[o++] = tab[w >> 12 & 63];
    out[o++] = i + 1 < n ? tab[w >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tab[w & 63] : '=';
  }
  out[o] = 0;
}

/* ---- parsing ---- */

static int bad(struct lc_embed_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad(struct lc_embed_result *r, const char *fmt, ...) {
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

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Room for one more row of d values in r; sets r->dims on the first. */
static float *row_slot(struct lc_embed_result *r, size_t d, size_t row_no) {
  if (r->dims && d != r->dims) {
    bad(r, "embeddings: row %zu has %zu values, the others %zu", row_no, d, r->dims);
    return NULL;
  }
  if (!d || d > LC_EMBED_MAX_DIMS) {
    bad(r, "embeddings: row %zu has %zu values (1..65536 expected)", row_no, d);
    return NULL;
  }
  float *p = lc_realloc(r->rows, (r->n + 1) * d * sizeof *p);
  if (!p) return NULL;
  r->rows = p;
  r->dims = d;
  return p + r->n * d;
}

/* One vector as a JSON array of numbers. */
static int take_array(struct lc_embed_result *r, const cJSON *a, size_t row_no) {
  size_t d = (size_t)cJSON_GetArraySize(a);
  float *dst = row_slot(r, d, row_no);
  if (!dst) return r->err ? LC_EINVAL : LC_ENOMEM;
  size_t k = 0;
  for (const cJSON *v = a->child; v; v = v->next, k++) {
    if (!cJSON_IsNumber(v)) return bad(r, "embeddings: row %zu, value %zu is not a number", row_no, k);
    double x = v->valuedouble;
    if (!isfinite(x) || fabs(x) > 3.4e38)
      return bad(r, "embeddings: row %zu, value %zu is not a finite float", row_no, k);
    dst[k] = (float)x;
  }
  r->n++;
  return 0;
}

/* One vector as base64 (float32 or float64, little-endian). */
static int take_b64(const struct lc_embed_request *q, struct lc_embed_result *r, const char *s,
                    size_t row_no) {
  size_t len = strlen(s);
  unsigned char *raw = lc_malloc(len / 4 * 3 + 3);
  if (!raw) return LC_ENOMEM;
  long nb = lc_embed_b64_decode(s, len, raw);
  if (nb < 0) {
    lc_free(raw);
    return bad(r, "embeddings: row %zu: base64 vector is cut or malformed (%zu chars)", row_no, len);
  }
  int f64 = q->b64_type == LC_EMBED_B64_F64;
  if (q->b64_type == LC_EMBED_B64_AUTO) {
    if (q->dimensions > 0) f64 = (size_t)nb == (size_t)q->dimensions * 8;
    else if (r->dims) f64 = (size_t)nb == r->dims * 8;
    else if (nb % 8 == 0 && nb >= 64) {
      f64 = 1; /* widened float32s: the low word's 29 bits are zero */
      for (long i = 0; i < nb && f64; i += 8) f64 = (le32(raw + i) & 0x1fffffffu) == 0;
    }
  }
  size_t w = f64 ? 8 : 4;
  if (nb % (long)w) {
    lc_free(raw);
    return bad(r, "embeddings: row %zu: %zu bytes is no whole number of values", row_no, (size_t)nb);
  }
  size_t d = (size_t)nb / w;
  float *dst = row_slot(r, d, row_no);
  if (!dst) {
    lc_free(raw);
    return r->err ? LC_EINVAL : LC_ENOMEM;
  }
  for (size_t k = 0; k < d; k++) {
    double x;
    if (f64) {
      uint64_t u = (uint64_t)le32(raw + k * 8) | (uint64_t)le32(raw + k * 8 + 4) << 32;
      memcpy(&x, &u, 8);
    } else {
      uint32_t u = le32(raw + k * 4);
      float f;
      memcpy(&f, &u, 4);
      x = f;
    }
    if (!isfinite(x) || fabs(x) > 3.4e38) {
      lc_free(raw);
      return bad(r, "embeddings: row %zu, value %zu is not a finite float", row_no, k);
    }
    dst[k] = (float)x;
  }
  lc_free(raw);
  r->n++;
  return 0;
}

static int take_row(const struct lc_embed_request *q, struct lc_embed_result *r, const cJSON *e,
                    size_t row_no) {
  if (cJSON_IsArray(e)) return take_array(r, e, row_no);
  if (cJSON_IsString(e)) return take_b64(q, r, e->valuestring, row_no);
  return bad(r, "embeddings: row %zu is neither a list of numbers nor base64", row_no);
}

int lc_embed_parse(const struct lc_embed_request *q, const char *body, size_t len, size_t want,
                   struct lc_embed_result *out) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return bad(out, "embeddings: the response is not a JSON object (%zu bytes)", len);
  }
  size_t n0 = out->n;
  int rc = 0;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (cJSON_IsString(m) && !out->model && !(out->model = lc_strdup(m->valuestring))) rc = LC_ENOMEM;
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
  const cJSON *embs = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(root, "embedding");
  if (rc) {
  } else if (cJSON_IsArray(data)) {
    /* OpenAI: rows carry their index; a server may send them out of
     * order, so they are placed by it and each must come exactly once. */
    size_t n = (size_t)cJSON_GetArraySize(data);
    if (n != want) {
      rc = bad(out, "embeddings: %zu vectors for %zu inputs", n, want);
    } else {
      const cJSON **by = lc_calloc(n ? n : 1, sizeof *by);
      if (!by) rc = LC_ENOMEM;
      size_t k = 0;
      for (const cJSON *e = data->child; !rc && e; e = e->next, k++) {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(e, "index");
        size_t i = k;
        if (cJSON_IsNumber(ix)) {
          if (ix->valuedouble < 0 || ix->valuedouble >= (double)n || ix->valuedouble != (double)(size_t)ix->valuedouble || by[(size_t)ix->valuedouble])
            rc = bad(out, "embeddings: row %zu has a bad or repeated index (of %zu)", k, n);
          else i = (size_t)ix->valuedouble;
        } else if (by[i]) {
          rc = bad(out, "embeddings: row %zu has a bad or repeated index (of %zu)", k, n);
        }
        if (!rc) by[i] = cJSON_GetObjectItemCaseSensitive(e, "embedding");
      }
      for (size_t i = 0; !rc && i < n; i++)
        rc = by[i] ? take_row(q, out, by[i], n0 + i)
                   : bad(out, "embeddings: row %zu has no \"embedding\"", n0 + i);
      lc_free(by);
    }
    /* a provider's number: range-checked before it is a long (1e300) */
    long pt = lc_accum_long(cJSON_GetObjectItemCaseSensitive(root, "usage"), "prompt_tokens", 0);
    if (pt > 0) out->input_tokens += pt;
  } else if (cJSON_IsArray(embs)) {
    size_t n = (size_t)cJSON_GetArraySize(embs);
    if (n != want) rc = bad(out, "embeddings: %zu vectors for %zu inputs", n, want);
    size_t k = 0;
    for (const cJSON *e = embs->child; !rc && e; e = e->next, k++) {
      /* Ollama: [[...]]; Gemini's batchEmbedContents: [{"values":[...]}] */
      const cJSON *v = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "values") : e;
      rc = cJSON_IsArray(v) ? take_array(out, v, n0 + k)
                            : bad(out, "embeddings: row %zu is not a list of numbers", n0 + k);
    }
    long pt = lc_accum_long(root, "prompt_eval_count", 0);
    if (pt > 0) out->input_tokens += pt;
  } else if (cJSON_IsArray(one)) {
    rc = want != 1 ? bad(out, "embeddings: 1 vector for %zu inputs", want)
                   : take_array(out, one, n0);
  } else {
    rc = bad(out, "embeddings: the response has no \"data\", \"embeddings\" or \"embedding\"");
  }
  if (!rc && q->dimensions > 0 && out->dims != (size_t)q->dimensions)
    rc = bad(out, "embeddings: vectors have %zu values, %zu were asked for", out->dims,
             (size_t)q->dimensions);
  cJSON_Delete(root);
  if (rc) {
    out->n = n0; /* a batch goes in whole or not at all */
    if (!n0) out->dims = 0;
  }
  if (rc == LC_ENOMEM && !out->err) {
    out->err = LC_LLM_EBADRESP;
    lc_free(out->err_message);
    out->err_message = lc_strdup("out of memory reading the embeddings");
  }
  return rc;
}

void lc_embed_parse_error(const struct lc_embed_request *q, int status, const char *body,
                          size_t len, struct lc_embed_result *out) {
  const struct lc_llm_adapter *ad = lc_llm_adapter_for(q->provider);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  if (ad) ad->parse_error(status, body, len, &r);
  if (r.err == LC_LLM_OK) r.err = lc_llm_err_from_status(status);
  lc_llm_response_scrub(&r);
  out->err = r.err;
  /* A hint in the body (Gemini's RetryInfo retryDelay) counts like a
   * Retry-After header; the transfer's header, when present, wins. */
  if (r.retry_after_s >= 0) out->retry_after_s = r.retry_after_s;
  lc_free(out->err_message);
  lc_free(out->err_type);
  out->err_message = r.err_message;
  out->err_type = r.err_type;
  r.err_message = r.err_type = NULL;
  lc_llm_response_free(&r);
}
