/* llm.c: the normalised LLM model: names, classification, model specs and
 * the free functions for requests and responses. The network client lives
 * in llm_call.c; provider mapping in llm_openai.c, llm_anthropic.c and
 * llm_ollama.c. */
#include "llm.h"

#include "http.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jsonw.h"
#include "lc.h"
#include "secrets.h"
#include "sha256.h"

#include <stdio.h>
#include <sys/stat.h>

const struct lc_llm_adapter *lc_llm_adapter_for(enum lc_llm_provider p) {
  switch (p) {
  case LC_PROV_OPENAI: return &lc_llm_openai;
  case LC_PROV_ANTHROPIC: return &lc_llm_anthropic;
  case LC_PROV_OLLAMA: return &lc_llm_ollama;
  case LC_PROV_OPENAI_RESPONSES: return &lc_llm_openai_responses;
  case LC_PROV_GEMINI: return &lc_llm_gemini;
  case LC_PROV_BEDROCK: return &lc_llm_bedrock;
  default: return NULL;
  }
}

int lc_llm_parse_model(const char *spec, enum lc_llm_provider *p,
                       char **model) {
  static const struct {
    const char *name;
    enum lc_llm_provider p;
  } provs[] = {{"openai", LC_PROV_OPENAI},
               {"anthropic", LC_PROV_ANTHROPIC},
               {"ollama", LC_PROV_OLLAMA},
               {"openai-responses", LC_PROV_OPENAI_RESPONSES},
               {"gemini", LC_PROV_GEMINI},
               {"bedrock", LC_PROV_BEDROCK}};
  if (!spec || !p || !model)
    return LC_EINVAL;
  *model = NULL;
  const char *colon = strchr(spec, ':');
  if (!colon || colon[1] == '\0')
    return LC_EINVAL;
  size_t n = (size_t)(colon - spec);
  for (size_t i = 0; i < LC_ARRAY_LEN(provs); i++) {
    if (strlen(provs[i].name) == n && memcmp(spec, provs[i].name, n) == 0) {
      /* Everything after the first colon is the model: "llama3.1:8b". */
      char *m = lc_strdup(colon + 1);
      if (!m)
        return LC_ENOMEM;
      *p = provs[i].p;
      *model = m;
      return 0;
    }
  }
  return LC_EINVAL;
}

const char *lc_llm_err_name(enum lc_llm_err e) {
  static const char *names[LC_LLM_E__COUNT] = {
      [LC_LLM_OK] = "ok",
      [LC_LLM_EAUTH] = "auth",
      [LC_LLM_ERATE] = "rate_limit",
      [LC_LLM_EQUOTA] = "quota",
      [LC_LLM_EOVERLOADED] = "overloaded",
      [LC_LLM_ESERVER] = "server",
      [LC_LLM_EBADREQ] = "bad_request",
      [LC_LLM_ECONTEXT] = "context_length",
      [LC_LLM_ETIMEOUT] = "timeout",
      [LC_LLM_ENETWORK] = "network",
      [LC_LLM_EBADRESP] = "bad_response",
      [LC_LLM_ECANCEL] = "cancelled",
      [LC_LLM_ECONFIG] = "config",
  };
  if ((unsigned)e >= LC_LLM_E__COUNT)
    return "unknown";
  return names[e];
}

const char *lc_llm_finish_name(enum lc_llm_finish f) {
  switch (f) {
  case LC_FINISH_NONE: return "none";
  case LC_FINISH_STOP: return "stop";
  case LC_FINISH_LENGTH: return "length";
  case LC_FINISH_TOOL_CALLS: return "tool_calls";
  case LC_FINISH_CONTENT_FILTER: return "content_filter";
  case LC_FINISH_OTHER: return "other";
  }
  return "other";
}

const char *lc_llm_role_name(enum lc_llm_role r) {
  switch (r) {
  case LC_ROLE_SYSTEM: return "system";
  case LC_ROLE_USER: return "user";
  case LC_ROLE_ASSISTANT: return "assistant";
  case LC_ROLE_TOOL: return "tool";
  }
  return "unknown";
}

int lc_llm_err_retryable(enum lc_llm_err e) {
  return e == LC_LLM_ERATE || e == LC_LLM_EOVERLOADED || e == LC_LLM_ESERVER ||
         e == LC_LLM_ETIMEOUT || e == LC_LLM_ENETWORK;
}

enum lc_llm_err lc_llm_err_from_status(int status) {
  if (status >= 200 && status < 300)
    return LC_LLM_OK;
  switch (status) {
  case 401:
  case 403: return LC_LLM_EAUTH;
  case 402: return LC_LLM_EQUOTA; /* payment required (OpenRouter credits) */
  case 408: return LC_LLM_ETIMEOUT;
  case 429: return LC_LLM_ERATE;
  case 503:
  case 529: return LC_LLM_EOVERLOADED;
  }
  if (status >= 500 && status < 600)
    return LC_LLM_ESERVER;
  if (status >= 400 && status < 500)
    return LC_LLM_EBADREQ;
  return LC_LLM_EBADRESP; /* 1xx/3xx or garbage: not an answer we can use */
}

double lc_llm_retry_after_s(const char *name, const char *value, double now_s) {
  if (!name || !value)
    return -1;
  if (strcasecmp(name, "retry-after-ms") == 0) {
    double ms = lc_http_parse_retry_after(value, now_s);
    return ms < 0 ? -1 : ms / 1000.0;
  }
  if (strcasecmp(name, "retry-after") != 0)
    return -1;
  return lc_http_parse_retry_after(value, now_s);
}

void lc_llm_tool_call_free(struct lc_llm_tool_call *c) {
  if (!c)
    return;
  lc_free(c->id);
  lc_free(c->name);
  lc_free(c->args_json);
  cJSON_Delete(c->args);
  lc_free(c->signature);
  c->signature = NULL;
  c->id = c->name = c->args_json = NULL;
  c->args = NULL;
}

static void calls_free(struct lc_llm_tool_call *calls, size_t n) {
  for (size_t i = 0; i < n; i++)
    lc_llm_tool_call_free(&calls[i]);
  lc_free(calls);
}

void lc_llm_wire_drop(struct lc_llm_wire *c) {
  lc_free(c->data);
  c->data = NULL;
  c->len = 0;
}

int lc_llm_wire_put(struct lc_jsonw *w, const struct lc_llm_wire *c,
                    enum lc_llm_provider p) {
  if (!c->data || c->prov != (signed char)p)
    return 0;
  lc_jsonw_raw(w, c->data, c->len);
  return 1;
}

void lc_llm_wire_keep(struct lc_llm_wire *c, enum lc_llm_provider p,
                      const struct lc_jsonw *w, size_t mark) {
  lc_llm_wire_drop(c);
  if (w->err || mark > w->b->len)
    return;
  size_t n = w->b->len - mark;
  if (!(c->data = lc_malloc(n ? n : 1)))
    return;
  memcpy(c->data, w->b->data + mark, n);
  c->len = n;
  c->prov = (signed char)p;
}

void lc_llm_prefix_drop(struct lc_llm_request *q) {
  lc_free(q->prefix.data);
  memset(&q->prefix, 0, sizeof q->prefix);
}

void lc_llm_prefix_cut(struct lc_llm_request *q, size_t keep) {
  struct lc_llm_prefix *pc = &q->prefix;
  if (keep >= pc->n_msgs)
    return;
  if (keep + 1 == pc->n_msgs && pc->last_at != LC_LLM_PREFIX_NO_LAST) {
    /* Also while lent: the bytes up to last_at are the same. */
    pc->len = pc->last_at;
    pc->n_msgs = keep;
    pc->last_at = LC_LLM_PREFIX_NO_LAST;
    return;
  }
  lc_llm_prefix_drop(q);
}

void lc_llm_prefix_give_back(struct lc_llm_request *q, char **body) {
  struct lc_llm_prefix *pc = &q->prefix;
  if (!*body || pc->lent != *body || pc->data)
    return;
  pc->data = *body;
  pc->lent = NULL;
  *body = NULL;
}

/* FNV-1a, 64 bits, over bytes; scalars and pointers a word at a time
 * (change detection, not a defence against chosen inputs). */
#define FP_INIT 0xcbf29ce484222325ull
#define FP_PRIME 0x100000001b3ull
static unsigned long long fp_u64(unsigned long long h, unsigned long long v) {
  h = (h ^ v) * FP_PRIME;
  return h ^ (h >> 31);
}
static unsigned long long fp_ptr(unsigned long long h, const void *p) {
  return fp_u64(h, (unsigned long long)(uintptr_t)p);
}
static unsigned long long fp_dbl(unsigned long long h, double d) {
  unsigned long long v;
  memcpy(&v, &d, sizeof v);
  return fp_u64(h, v);
}
/* A string by content; NULL apart from "". */
static unsigned long long fp_str(unsigned long long h, const char *s) {
  if (!s)
    return fp_u64(h, 0xffu);
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * FP_PRIME;
  return fp_u64(h, 0);
}

unsigned long long lc_llm_request_head_fp(const struct lc_llm_request *q) {
  unsigned long long h = FP_INIT;
  h = fp_str(h, q->model);
  h = fp_u64(h, q->n_tools);
  h = fp_ptr(h, q->tools);
  for (size_t i = 0; i < q->n_tools; i++) {
    const struct lc_llm_tool *t = &q->tools[i];
    /* Names by content; the long texts and trees by identity (llm.h). */
    h = fp_str(h, t->name);
    h = fp_ptr(h, t->description);
    h = fp_ptr(h, t->schema);
    h = fp_ptr(h, t->schema_json);
    h = fp_u64(h, (unsigned long long)t->strict);
  }
  h = fp_u64(h, (unsigned long long)q->tool_choice);
  h = fp_str(h, q->tool_choice_name);
  h = fp_u64(h, q->set);
  if (q->set & LC_SET_TEMPERATURE)
    h = fp_dbl(h, q->temperature);
  if (q->set & LC_SET_TOP_P)
    h = fp_dbl(h, q->top_p);
  if (q->set & LC_SET_TOP_K)
    h = fp_u64(h, (unsigned long long)q->top_k);
  if (q->set & LC_SET_MAX_TOKENS)
    h = fp_u64(h, (unsigned long long)q->max_tokens);
  if (q->set & LC_SET_SEED)
    h = fp_u64(h, (unsigned long long)q->seed);
  h = fp_u64(h, q->n_stop);
  for (size_t i = 0; i < q->n_stop; i++)
    h = fp_str(h, q->stop[i]);
  h = fp_u64(h, (unsigned long long)q->format);
  h = fp_ptr(h, q->response_schema);
  h = fp_str(h, q->response_schema_name);
  h = fp_str(h, q->reasoning_effort);
  h = fp_str(h, q->reasoning_summary);
  h = fp_u64(h, (unsigned long long)q->thinking_budget);
  h = fp_str(h, q->cache_key);
  h = fp_u64(h, (unsigned long long)q->cache_control);
  h = fp_str(h, q->previous_response_id);
  h = fp_u64(h, (unsigned long long)q->store);
  return fp_u64(h, q->stream != 0);
}

void lc_llm_msg_free(struct lc_llm_msg *m) {
  if (!m)
    return;
  lc_free(m->content);
  calls_free(m->tool_calls, m->n_tool_calls);
  lc_free(m->tool_call_id);
  lc_free(m->name);
  for (size_t i = 0; i < m->n_parts; i++)
    lc_llm_part_free(&m->parts[i]);
  lc_free(m->parts);
  lc_free(m->reasoning_state);
  memset(m, 0, sizeof *m);
}

void lc_llm_request_copy_settings(struct lc_llm_request *dst,
                                  const struct lc_llm_request *src) {
  dst->provider = src->provider;
  dst->set = src->set;
  dst->temperature = src->temperature;
  dst->top_p = src->top_p;
  dst->top_k = src->top_k;
  dst->max_tokens = src->max_tokens;
  dst->seed = src->seed;
  dst->stream = src->stream;
  dst->thinking_budget = src->thinking_budget;
  dst->cache_control = src->cache_control;
  dst->store = src->store;
}

void lc_llm_request_move_reasoning(struct lc_llm_request *dst,
                                   struct lc_llm_request *src) {
  char **from[] = {&src->reasoning_effort, &src->reasoning_summary,
                   &src->cache_key, &src->previous_response_id};
  char **to[] = {&dst->reasoning_effort, &dst->reasoning_summary,
                 &dst->cache_key, &dst->previous_response_id};
  for (size_t i = 0; i < LC_ARRAY_LEN(from); i++) {
    lc_free(*to[i]);
    *to[i] = *from[i];
    *from[i] = NULL;
  }
}

void lc_llm_request_free(struct lc_llm_request *r) {
  if (!r)
    return;
  lc_free(r->model);
  lc_free(r->base_url);
  lc_free(r->api_key);
  for (size_t i = 0; i < r->n_msgs; i++)
    lc_llm_msg_free(&r->msgs[i]);
  lc_free(r->msgs);
  lc_llm_wire_drop(&r->tools_wire);
  lc_llm_prefix_drop(r);
  for (size_t i = 0; i < r->n_tools; i++) {
    const struct lc_llm_tool *t = &r->tools[i];
    if (!(t->borrowed & LC_LLM_TOOL_BORROWED_TEXT)) {
      lc_free(t->name);
      lc_free(t->description);
    }
    if (!(t->borrowed & LC_LLM_TOOL_BORROWED_SCHEMA))
      cJSON_Delete(t->schema);
    lc_free(t->schema_json);
  }
  lc_free(r->tools);
  lc_free(r->tool_choice_name);
  for (size_t i = 0; i < r->n_stop; i++)
    lc_free(r->stop[i]);
  lc_free(r->stop);
  cJSON_Delete(r->response_schema);
  lc_free(r->response_schema_name);
  lc_free(r->reasoning_effort);
  lc_free(r->reasoning_summary);
  lc_free(r->cache_key);
  lc_free(r->previous_response_id);
  memset(r, 0, sizeof *r);
}

void lc_llm_request_delete(struct lc_llm_request *r) {
  lc_llm_request_free(r);
  lc_free(r);
}

void lc_llm_response_init(struct lc_llm_response *r) {
  memset(r, 0, sizeof *r);
  r->retry_after_s = -1;
}

void lc_llm_response_free(struct lc_llm_response *r) {
  if (!r)
    return;
  lc_free(r->text);
  lc_free(r->reasoning);
  lc_free(r->reasoning_state);
  calls_free(r->tool_calls, r->n_tool_calls);
  lc_free(r->finish_raw);
  lc_free(r->model);
  lc_free(r->id);
  lc_free(r->request_id);
  lc_free(r->err_message);
  lc_free(r->err_type);
  lc_llm_response_init(r);
}

int lc_llm_response_nomem(struct lc_llm_response *r) {
  lc_llm_response_free(r);
  r->err = LC_LLM_EBADRESP;
  r->err_message = lc_strdup("out of memory");
  return LC_EINVAL;
}

void lc_llm_response_scrub(struct lc_llm_response *r) {
  if (!r) return;
  lc_secrets_scrub_str(r->err_message);
  lc_secrets_scrub_str(r->err_type);
}

void lc_llm_http_free(struct lc_llm_http *h) {
  if (!h)
    return;
  lc_free(h->url);
  for (size_t i = 0; i < h->n_headers; i++)
    lc_free(h->headers[i]);
  lc_free(h->headers);
  lc_free(h->body);
  lc_free(h->aws_sigv4);
  if (h->aws_userpwd) /* holds the secret key */
    memset(h->aws_userpwd, 0, strlen(h->aws_userpwd));
  lc_free(h->aws_userpwd);
  memset(h, 0, sizeof *h);
}

/* ---- images ---- */

const char *lc_llm_image_sniff(const void *data, size_t len) {
  const unsigned char *b = data;
  if (!b)
    return NULL;
  if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
    return "image/png";
  if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
    return "image/jpeg";
  if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
    return "image/gif";
  if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
    return "image/webp";
  return NULL;
}

static unsigned be16(const unsigned char *b) { return (unsigned)b[0] << 8 | b[1]; }
static unsigned le16(const unsigned char *b) { return (unsigned)b[1] << 8 | b[0]; }
static unsigned long be32u(const unsigned char *b) {
  return (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 | (unsigned long)b[2] << 8 | b[3];
}

int lc_llm_image_dims(const void *data, size_t len, unsigned long *w, unsigned long *h) {
  const unsigned char *b = data;
  *w = *h = 0;
  const char *mt = lc_llm_image_sniff(data, len);
  if (!mt)
    return 0;
  if (strcmp(mt, "image/png") == 0) { /* IHDR is the first chunk */
    if (len < 24 || memcmp(b + 12, "IHDR", 4) != 0)
      return 0;
    *w = be32u(b + 16), *h = be32u(b + 20);
  } else if (strcmp(mt, "image/gif") == 0) { /* the logical screen */
    if (len < 10)
      return 0;
    *w = le16(b + 6), *h = le16(b + 8);
  } else if (strcmp(mt, "image/webp") == 0) {
    if (len >= 30 && memcmp(b + 12, "VP8X", 4) == 0) {
      *w = 1 + (b[24] | (unsigned long)b[25] << 8 | (unsigned long)b[26] << 16);
      *h = 1 + (b[27] | (unsigned long)b[28] << 8 | (unsigned long)b[29] << 16);
    } else if (len >= 25 && memcmp(b + 12, "VP8L", 4) == 0 && b[20] == 0x2f) {
      unsigned long v = b[21] | (unsigned long)b[22] << 8 | (unsigned long)b[23] << 16 |
                        (unsigned long)b[24] << 24;
      *w = 1 + (v & 0x3fff), *h = 1 + ((v >> 14) & 0x3fff);
    } else if (len >= 30 && memcmp(b + 12, "VP8 ", 4) == 0 && b[23] == 0x9d &&
               b[24] == 0x01 && b[25] == 0x2a) {
      *w = le16(b + 26) & 0x3fff, *h = le16(b + 28) & 0x3fff;
    } else {
      return 0;
    }
  } else { /* JPEG: the first start-of-frame segment */
    size_t i = 2;
    while (i + 4 <= len) {
      if (b[i] != 0xff)
        return 0;
      unsigned m = b[i + 1];
      if (m == 0xff) { /* fill byte */
        i++;
        continue;
      }
      if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { /* no length */
        i += 2;
        continue;
      }
      if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
        if (i + 9 > len)
          return 0;
        *h = be16(b + i + 5), *w = be16(b + i + 7);
        break;
      }
      if (m == 0xd9 || m == 0xda) /* end, or scan data before any frame */
        return 0;
      size_t seg = be16(b + i + 2);
      if (seg < 2)
        return 0;
      i += 2 + seg;
    }
  }
  return *w && *h;
}

int lc_llm_image_gif_frames(const void *data, size_t len) {
  const unsigned char *b = data;
  if (len < 13 || !lc_llm_image_sniff(data, len) || memcmp(b, "GIF", 3) != 0)
    return 0;
  size_t i = 13;
  if (b[10] & 0x80) /* global colour table */
    i += 3u << ((b[10] & 7) + 1);
  int frames = 0;
  while (i < len) {
    unsigned char t = b[i++];
    if (t == 0x3b) /* trailer */
      break;
    if (t == 0x2c) { /* image descriptor (9 bytes), local table, LZW size */
      if (i + 9 > len)
        break;
      unsigned char f = b[i + 8];
      i += 9;
      if (f & 0x80)
        i += 3u << ((f & 7) + 1);
      i++;
      frames++;
    } else if (t == 0x21) { /* extension: its label */
      i++;
    } else {
      break;
    }
    while (i < len && b[i]) /* data sub-blocks up to the empty one */
      i += 1u + b[i];
    i++;
  }
  return frames;
}

void lc_llm_part_free(struct lc_llm_part *p) {
  if (!p)
    return;
  lc_free(p->text);
  lc_free(p->data);
  lc_free(p->url);
  memset(p, 0, sizeof *p);
}

int lc_llm_part_text(struct lc_llm_part *p, const char *text, size_t len) {
  memset(p, 0, sizeof *p);
  p->kind = LC_PART_TEXT;
  if (!(p->text = lc_strndup(text ? text : "", text ? len : 0)))
    return LC_ENOMEM;
  p->text_len = text ? len : 0;
  return 0;
}

static int img_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
  return LC_EINVAL;
}

int lc_llm_part_image_bytes(struct lc_llm_part *p, const void *data, size_t len,
                            const char *media_type, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->kind = LC_PART_IMAGE;
  if (!data || len == 0)
    return img_err(err, errlen, "image: empty");
  if (len > LC_LLM_IMAGE_MAX)
    return img_err(err, errlen, "image: larger than 20 MB");
  const char *mt = lc_llm_image_sniff(data, len);
  if (!mt)
    return img_err(err, errlen,
                   "image: not PNG, JPEG, GIF or WebP (the formats every provider takes)");
  /* "image/jpg" is a common misspelling; the bytes decide anyway. */
  if (media_type && *media_type && strcasecmp(media_type, mt) != 0 &&
      !(strcasecmp(media_type, "image/jpg") == 0 && strcmp(mt, "image/jpeg") == 0))
    return img_err(err, errlen, "image: media type does not match the bytes");
  if (!(p->data = lc_malloc(len)))
    return LC_ENOMEM;
  memcpy(p->data, data, len);
  p->data_len = len;
  snprintf(p->media_type, sizeof p->media_type, "%s", mt);
  lc_sha256_hex(data, len, p->sha256);
  return 0;
}

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* Standard or URL-safe base64, padding optional; NULL when malformed. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len) {
  while (n && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return NULL;
  unsigned char *o = lc_malloc(n / 4 * 3 + 3);
  if (!o)
    return NULL;
  size_t k = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_val((unsigned char)s[i]);
    if (v < 0) {
      lc_free(o);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[k++] = (unsigned char)(acc >> bits);
    }
  }
  *out_len = k;
  return o;
}

char *lc_llm_base64(const void *data, size_t n, size_t *out_len) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *b = data;
  size_t m = (n + 2) / 3 * 4;
  char *o = lc_malloc(m + 1);
  if (!o)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)b[i] << 16;
    if (i + 1 < n) v |= (unsigned)b[i + 1] << 8;
    if (i + 2 < n) v |= b[i + 2];
    o[k++] = tab[(v >> 18) & 63];
    o[k++] = tab[(v >> 12) & 63];
    o[k++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    o[k++] = i + 2 < n ? tab[v & 63] : '=';
  }
  o[k] = '\0';
  if (out_len)
    *out_len = k;
  return o;
}

int lc_llm_part_image_data_url(struct lc_llm_part *p, const char *url,
                               size_t len, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->kind = LC_PART_IMAGE;
  if (!url || len < 5 || strncasecmp(url, "data:", 5) != 0)
    return img_err(err, errlen, "image: not a data: URL");
  const char *comma = memchr(url, ',', len);
  if (!comma)
    return img_err(err, errlen, "image: data: URL without a comma");
  size_t hl = (size_t)(comma - url);
  /* Only base64 payloads: a percent-encoded image is not worth the risk. */
  if (hl < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
    return img_err(err, errlen, "image: data: URL is not ;base64");
  char mt[32] = "";
  size_t ml = hl - 5 - 7;
  const char *semi = memchr(url + 5, ';', ml);
  if (semi)
    ml = (size_t)(semi - (url + 5));
  if (ml >= sizeof mt)
    return img_err(err, errlen, "image: data: URL media type too long");
  memcpy(mt, url + 5, ml);
  mt[ml] = '\0';
  /* Refused by its length before anything is decoded or allocated. */
  if ((len - hl - 1) / 4 * 3 > (size_t)LC_LLM_IMAGE_MAX + 3)
    return img_err(err, errlen, "image: larger than 20 MB");
  size_t n = 0;
  unsigned char *bytes = b64_decode(comma + 1, len - hl - 1, &n);
  if (!bytes)
    return img_err(err, errlen, "image: data: URL is not valid base64");
  int rc = lc_llm_part_image_bytes(p, bytes, n, mt, err, errlen);
  lc_free(bytes);
  return rc;
}

static int is_loopback_http(const char *url) {
  static const char *const ok[] = {"http://127.0.0.1:", "http://127.0.0.1/",
                                   "http://localhost:", "http://localhost/",
                                   "http://[::1]:", "http://[::1]/"};
  for (size_t i = 0; i < LC_ARRAY_LEN(ok); i++)
    if (strncasecmp(url, ok[i], strlen(ok[i])) == 0)
      return 1;
  return 0;
}

int lc_llm_part_image_url(struct lc_llm_part *p, const char *url,
                          char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->kind = LC_PART_IMAGE;
  if (!url)
    return img_err(err, errlen, "image: no URL");
  size_t len = strlen(url);
  if (len >= 5 && strncasecmp(url, "data:", 5) == 0)
    return lc_llm_part_image_data_url(p, url, len, err, errlen);
  if (strncasecmp(url, "https://", 8) != 0 && !is_loopback_http(url))
    return img_err(err, errlen, "image: URL must be https:// or data:");
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
      return img_err(err, errlen, "image: URL holds spaces or control characters");
  if (len > 8192)
    return img_err(err, errlen, "image: URL longer than 8192 bytes");
  if (!(p->url = lc_strndup(url, len)))
    return LC_ENOMEM;
  /* The extension is only a hint (the provider fetches and decides). */
  const char *q = strpbrk(url + 8, "?#");
  size_t end = q ? (size_t)(q - url) : len;
  static const struct { const char *ext, *mt; } exts[] = {
      {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
      {".gif", "image/gif"}, {".webp", "image/webp"}};
  for (size_t i = 0; i < LC_ARRAY_LEN(exts); i++) {
    size_t el = strlen(exts[i].ext);
    if (end > el && strncasecmp(url + end - el, exts[i].ext, el) == 0)
      snprintf(p->media_type, sizeof p->media_type, "%s", exts[i].mt);
  }
  lc_sha256_hex(url, len, p->sha256);
  return 0;
}

int lc_llm_part_image_file(struct lc_llm_part *p, const char *path,
                           char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->kind = LC_PART_IMAGE;
  if (!path)
    return img_err(err, errlen, "image: no path");
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (err && errlen)
      snprintf(err, errlen, "image: cannot open %s", path);
    return LC_EINVAL;
  }
  /* A regular file only: a FIFO or a device would block the loop's
   * thread or never end. */
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    if (err && errlen)
      snprintf(err, errlen, "image: %s is not a regular file", path);
    return LC_EINVAL;
  }
  struct lc_buf b;
  lc_buf_init(&b, 0);
  char chunk[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > LC_LLM_IMAGE_MAX) {
      rc = img_err(err, errlen, "image: larger than 20 MB");
      break;
    }
    if (lc_buf_append(&b, chunk, n) != 0) {
      rc = LC_ENOMEM;
      break;
    }
  }
  if (!rc && ferror(f)) {
    if (err && errlen)
      snprintf(err, errlen, "image: cannot read %s", path);
    rc = LC_EINVAL;
  }
  fclose(f);
  if (!rc)
    rc = lc_llm_part_image_bytes(p, b.data, b.len, NULL, err, errlen);
  lc_buf_free(&b);
  return rc;
}

int lc_llm_image_check(const struct lc_llm_part *p, enum lc_llm_provider prov,
                       char *err, size_t errlen) {
  if (p->kind != LC_PART_IMAGE)
    return 0;
  /* What each provider documents (2025): the four formats everywhere
   * (checked when the part was made); per image, Anthropic 5 MB; OpenAI
   * 50 MB per request (our 20 MB per image is below it); Ollama takes only
   * base64 bytes, no URLs. Gemini (inlineData, 20 MB per request, no
   * arbitrary URLs) and Bedrock (bytes only, 3.75 MB) are the lead's. */
  unsigned long w = 0, h = 0;
  if (p->data)
    lc_llm_image_dims(p->data, p->data_len, &w, &h);
  switch (prov) {
  case LC_PROV_OPENAI:
  case LC_PROV_OPENAI_RESPONSES: /* "PNG, JPEG, WEBP, non-animated GIF" */
    if (p->data && lc_llm_image_gif_frames(p->data, p->data_len) > 1)
      return img_err(err, errlen, "image: OpenAI takes no animated GIF");
    break;
  case LC_PROV_ANTHROPIC:
    if (p->data && p->data_len > 5u * 1024u * 1024u)
      return img_err(err, errlen, "image: Anthropic takes at most 5 MB per image");
    if (w > 8000 || h > 8000)
      return img_err(err, errlen, "image: Anthropic takes at most 8000x8000 pixels");
    break;
  case LC_PROV_OLLAMA:
    if (!p->data)
      return img_err(err, errlen, "image: Ollama takes image bytes, not URLs");
    break;
  case LC_PROV_GEMINI: /* inlineData; fileData wants Files API URIs */
    if (!p->data)
      return img_err(err, errlen, "image: Gemini takes image bytes (inlineData), not URLs");
    /* Its documented image types are PNG, JPEG, WebP, HEIC and HEIF: a
     * GIF is refused by the API ("invalid input file"). */
    if (strcmp(p->media_type, "image/gif") == 0)
      return img_err(err, errlen, "image: Gemini takes PNG, JPEG or WebP images, not GIF");
    break;
  case LC_PROV_BEDROCK: /* Converse: source.bytes only, 3.75 MB each */
    if (!p->data)
      return img_err(err, errlen, "image: Bedrock takes image bytes, not URLs");
    if (p->data_len > 3932160u)
      return img_err(err, errlen, "image: Bedrock takes at most 3.75 MB per image");
    if (w > 8000 || h > 8000)
      return img_err(err, errlen, "image: Bedrock takes at most 8000x8000 pixels");
    break;
  default:
    break;
  }
  if (!p->data && !p->url)
    return img_err(err, errlen, "image: neither bytes nor URL");
  return 0;
}

int lc_llm_images_check(const struct lc_llm_request *req, enum lc_llm_provider prov,
                        char *err, size_t errlen) {
  /* Per request, as each provider documents it: OpenAI (chat and
   * Responses) 500 images and a 50 MB payload; Anthropic 100 images and a
   * 32 MB request; Bedrock Converse 20 images. Bytes are counted as sent
   * (base64); the text around them is not, so this is a floor. */
  size_t n = 0, max_n = 0, bytes = 0, max_bytes = 0;
  const char *who = NULL;
  switch (prov) {
  case LC_PROV_OPENAI:
  case LC_PROV_OPENAI_RESPONSES:
    max_n = 500, max_bytes = (size_t)50 << 20, who = "OpenAI";
    break;
  case LC_PROV_ANTHROPIC:
    max_n = 100, max_bytes = (size_t)32 << 20, who = "Anthropic";
    break;
  case LC_PROV_BEDROCK:
    max_n = 20, who = "Bedrock";
    break;
  default:
    return 0;
  }
  for (size_t i = 0; i < req->n_msgs; i++) {
    const struct lc_llm_msg *m = &req->msgs[i];
    for (size_t k = 0; k < m->n_parts; k++) {
      const struct lc_llm_part *p = &m->parts[k];
      if (p->kind != LC_PART_IMAGE)
        continue;
      n++;
      bytes += p->data ? (p->data_len + 2) / 3 * 4 : (p->url ? strlen(p->url) : 0);
    }
  }
  /* Anthropic: past 20 images in one request, 2000x2000 pixels each. */
  if (prov == LC_PROV_ANTHROPIC && n > 20) {
    for (size_t i = 0; i < req->n_msgs; i++)
      for (size_t k = 0; k < req->msgs[i].n_parts; k++) {
        const struct lc_llm_part *p = &req->msgs[i].parts[k];
        unsigned long w, h;
        if (p->kind == LC_PART_IMAGE && p->data &&
            lc_llm_image_dims(p->data, p->data_len, &w, &h) && (w > 2000 || h > 2000)) {
          snprintf(err, errlen, "image: Anthropic takes at most 2000x2000 pixels per image "
                                "in a request of more than 20 images (one is %lux%lu)", w, h);
          return LC_EINVAL;
        }
      }
  }
  if (max_n && n > max_n) {
    snprintf(err, errlen, "image: %s takes at most %zu images per request (this one has %zu)",
             who, max_n, n);
    return LC_EINVAL;
  }
  if (max_bytes && bytes > max_bytes) {
    snprintf(err, errlen, "image: %s takes at most %zu MB of images per request (this one "
                          "has %zu bytes as base64)", who, max_bytes >> 20, bytes);
    return LC_EINVAL;
  }
  return 0;
}
