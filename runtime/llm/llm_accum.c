/* llm_accum.c: builds a normalised response from what an adapter parsed,
 * and holds the error classification the three adapters share. */
#include "llm_accum.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conv.h"
#include "jsonr.h"
#include "jsonw.h"
#include "cnum.h"
#include "lc.h"
#include "utf8.h"

/* <think> splitter states: before the tag, just after it (blank lines are
 * dropped), inside, after </think> (blank lines dropped), plain text. */
enum { THINK_START, THINK_IN0, THINK_IN, THINK_AFTER, THINK_PASS };

void lc_accum_init(struct lc_llm_accum *a) {
  memset(a, 0, sizeof *a);
  lc_buf_init(&a->text, LC_ACCUM_MAX_TEXT);
  lc_buf_init(&a->reasoning, LC_ACCUM_MAX_TEXT);
  lc_buf_init(&a->think_pend, LC_ACCUM_MAX_TEXT);
  a->next_key = 1 << 24; /* far above any real provider index */
}

void lc_accum_free(struct lc_llm_accum *a) {
  lc_buf_free(&a->text);
  lc_buf_free(&a->reasoning);
  lc_buf_free(&a->think_pend);
  for (size_t i = 0; i < a->n_calls; i++) {
    lc_free(a->calls[i].id);
    lc_free(a->calls[i].name);
    lc_buf_free(&a->calls[i].args);
  }
  lc_free(a->calls);
  a->calls = NULL;
  a->n_calls = a->cap_calls = 0;
  lc_free(a->finish_raw);
  lc_free(a->model);
  lc_free(a->id);
  lc_free(a->request_id);
  lc_free(a->err_type);
  a->finish_raw = a->model = a->id = a->request_id = a->err_type = NULL;
}

void lc_accum_set_cb(struct lc_llm_accum *a, lc_llm_delta_fn cb, void *ud) {
  a->cb = cb;
  a->ud = ud;
}

int lc_accum_fail(struct lc_llm_accum *a, enum lc_llm_err kind,
                  const char *type, const char *fmt, ...) {
  if (a->err)
    return LC_EINVAL; /* the first error is the cause */
  a->err = kind;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->errmsg, sizeof a->errmsg, fmt, ap);
  va_end(ap);
  lc_free(a->err_type);
  a->err_type = type ? lc_strdup(type) : NULL;
  return LC_EINVAL;
}

int lc_accum_fail_json(struct lc_llm_accum *a, const cJSON *root) {
  if (a->err)
    return LC_EINVAL;
  char *s = cJSON_PrintUnformatted(root);
  struct lc_llm_response tmp;
  lc_llm_response_init(&tmp);
  lc_accum_classify(0, s ? s : "", s ? strlen(s) : 0, &tmp);
  cJSON_free(s);
  lc_accum_fail(a, tmp.err ? tmp.err : LC_LLM_ESERVER, tmp.err_type, "%s",
                tmp.err_message ? tmp.err_message : "error in stream");
  lc_llm_response_free(&tmp);
  return LC_EINVAL;
}

static void emit(struct lc_llm_accum *a, enum lc_llm_delta_kind k, int index,
                 const char *id, const char *name, const char *s, size_t n) {
  if (!a->cb)
    return;
  struct lc_llm_delta d = {k, index, id, name, s, n};
  a->cb(a->ud, &d);
}

static int append(struct lc_llm_accum *a, struct lc_buf *b, const char *s,
                  size_t n, const char *what) {
  int rc = lc_buf_append(b, s, n);
  if (rc == LC_ETOOBIG)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "%s over the size limit",
                         what);
  if (rc)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  return 0;
}

static int text_raw(struct lc_llm_accum *a, const char *s, size_t n) {
  if (n == 0)
    return 0;
  int rc = append(a, &a->text, s, n, "response text");
  if (!rc)
    emit(a, LC_DELTA_TEXT, 0, NULL, NULL, s, n);
  return rc;
}

int lc_accum_reasoning(struct lc_llm_accum *a, const char *s, size_t n) {
  if (a->err)
    return LC_EINVAL;
  if (n == 0)
    return 0;
  int rc = append(a, &a->reasoning, s, n, "reasoning text");
  if (!rc)
    emit(a, LC_DELTA_REASONING, 0, NULL, NULL, s, n);
  return rc;
}

static int is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static size_t skip_ws(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
    i++;
  return i;
}

/* Runs the <think> splitter over think_pend until it needs more bytes. */
static int think_step(struct lc_llm_accum *a) {
  static const char open[] = "<think>", close[] = "</think>";
  struct lc_buf *p = &a->think_pend;
  for (;;) {
    const char *s = p->data ? p->data : "";
    size_t n = p->len;
    if (a->think_state == THINK_START) {
      size_t w = skip_ws(s, n), r = n - w;
      if (r == 0)
        return 0;
      if (r < 7 && memcmp(s + w, open, r) == 0)
        return 0; /* maybe a tag */
      if (r >= 7 && memcmp(s + w, open, 7) == 0) {
        lc_buf_consume(p, w + 7);
        a->think_state = THINK_IN0;
        continue;
      }
      a->think_state = THINK_PASS; /* ordinary text: hand it all over */
      int rc = text_raw(a, s, n);
      lc_buf_reset(p);
      return rc;
    }
    if (a->think_state == THINK_IN0) {
      size_t w = skip_ws(s, n);
      lc_buf_consume(p, w);
      if (p->len == 0)
        return 0;
      a->think_state = THINK_IN;
      continue;
    }
    if (a->think_state == THINK_IN) {
      const char *end = n >= 8 ? memmem(s, n, close, 8) : NULL;
      if (end) {
        size_t k = (size_t)(end - s), t = k;
        while (t && is_ws(s[t - 1]))
          t--; /* blank lines before the tag */
        int rc = t ? lc_accum_reasoning(a, s, t) : 0;
        if (rc)
          return rc;
        lc_buf_consume(p, k + 8);
        a->think_state = THINK_AFTER;
        continue;
      }
      /* Keep a tail that may be the start of "</think>". */
      size_t keep = n < 7 ? n : 7;
      while (keep && memcmp(s + n - keep, close, keep) != 0)
        keep--;
      while (keep < n && is_ws(s[n - keep - 1]))
        keep++; /* maybe trailing */
      int rc = n - keep ? lc_accum_reasoning(a, s, n - keep) : 0;
      lc_buf_consume(p, n - keep);
      return rc;
    }
    if (a->think_state == THINK_AFTER) {
      size_t w = skip_ws(s, n); /* the blank lines after </think> */
      lc_buf_consume(p, w);
      if (p->len == 0)
        return 0;
      a->think_state = THINK_PASS;
      continue;
    }
    int rc = text_raw(a, s, n);
    lc_buf_reset(p);
    return rc;
  }
}

int lc_accum_text(struct lc_llm_accum *a, const char *s, size_t n) {
  if (a->err)
    return LC_EINVAL;
  if (!a->split_think || a->think_state == THINK_PASS)
    return text_raw(a, s, n);
  if (n == 0)
    return 0;
  int rc = append(a, &a->think_pend, s, n, "response text");
  return rc ? rc : think_step(a);
}

struct lc_accum_call *lc_accum_call_by_key(struct lc_llm_accum *a, int key) {
  for (size_t i = 0; i < a->n_calls; i++)
    if (a->calls[i].key == key)
      return &a->calls[i];
  return NULL;
}

int lc_accum_key_by_id(const struct lc_llm_accum *a, const char *id) {
  for (size_t i = 0; i < a->n_calls; i++)
    if (a->calls[i].id && id && strcmp(a->calls[i].id, id) == 0)
      return a->calls[i].key;
  return -1;
}

int lc_accum_last_key(const struct lc_llm_accum *a) {
  return a->n_calls ? a->calls[a->n_calls - 1].key : -1;
}

int lc_accum_fresh_key(struct lc_llm_accum *a) { return a->next_key++; }

static struct lc_accum_call *new_call(struct lc_llm_accum *a, int key) {
  if (a->n_calls == a->cap_calls) {
    size_t cap = a->cap_calls ? a->cap_calls * 2 : 4;
    if (cap > 4096) {
      lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "too many tool calls");
      return NULL;
    }
    struct lc_accum_call *c = lc_realloc(a->calls, cap * sizeof *c);
    if (!c) {
      lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
      return NULL;
    }
    a->calls = c;
    a->cap_calls = cap;
  }
  struct lc_accum_call *c = &a->calls[a->n_calls++];
  memset(c, 0, sizeof *c);
  c->key = key;
  lc_buf_init(&c->args, LC_ACCUM_MAX_TEXT);
  return c;
}

static int set_if_empty(struct lc_llm_accum *a, char **dst, const char *s) {
  if (*dst || !s || !*s)
    return 0;
  *dst = lc_strdup(s);
  return *dst ? 0 : lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
}

int lc_accum_tool_start(struct lc_llm_accum *a, int key, const char *id,
                        const char *name) {
  if (a->err)
    return LC_EINVAL;
  struct lc_accum_call *c = lc_accum_call_by_key(a, key);
  int fresh = !c;
  if (!c && !(c = new_call(a, key)))
    return LC_EINVAL;
  if (set_if_empty(a, &c->id, id) || set_if_empty(a, &c->name, name))
    return LC_EINVAL;
  if (name && !*name)
    c->empty_name = 1;
  if (fresh)
    emit(a, LC_DELTA_TOOL_START, (int)(c - a->calls), c->id, c->name, NULL, 0);
  return 0;
}

int lc_accum_tool_start_n(struct lc_llm_accum *a, int key, const char *id,
                          const char *name, size_t name_len) {
  if (!name || !memchr(name, '\0', name_len))
    return lc_accum_tool_start(a, key, id, name);
  if (a->err)
    return LC_EINVAL;
  struct lc_buf b;
  lc_buf_init(&b, LC_ACCUM_MAX_TEXT);
  int rc = 0;
  for (size_t i = 0; !rc && i < name_len; i++)
    rc = name[i] ? lc_buf_append(&b, name + i, 1) : lc_buf_puts(&b, "\\u0000");
  if (rc) {
    lc_buf_free(&b);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  }
  rc = lc_accum_tool_start(a, key, id, b.data);
  lc_buf_free(&b);
  return rc;
}

int lc_accum_tool_args(struct lc_llm_accum *a, int key, const char *s,
                       size_t n) {
  if (a->err)
    return LC_EINVAL;
  struct lc_accum_call *c = lc_accum_call_by_key(a, key);
  if (!c) { /* arguments before any start: open the call anyway */
    if (lc_accum_tool_start(a, key, NULL, NULL))
      return LC_EINVAL;
    c = lc_accum_call_by_key(a, key);
  }
  if (n == 0)
    return 0;
  int rc = append(a, &c->args, s, n, "tool arguments");
  if (!rc)
    emit(a, LC_DELTA_TOOL_ARGS, (int)(c - a->calls), c->id, c->name, s, n);
  return rc;
}

void lc_accum_finish(struct lc_llm_accum *a, enum lc_llm_finish f,
                     const char *raw) {
  a->finish = f;
  lc_free(a->finish_raw);
  a->finish_raw = raw ? lc_strdup(raw) : NULL;
}

int lc_accum_set_once(char **dst, const char *s) {
  if (*dst || !s)
    return 0;
  *dst = lc_strdup(s);
  return *dst ? 0 : LC_ENOMEM;
}

static void move_str(char **dst, char **src) {
  if (!*dst) {
    *dst = *src;
    *src = NULL;
  }
}

/* Token counts are the provider's word: a negative one, or one past what
 * any model reads or writes in a call, is not a count. Either would reach
 * the rate governor's token schedule (shared by every task: a count of
 * 1e15 pushes it centuries ahead, a negative one erases its backlog) and
 * the run's totals, so it is taken as not reported (0). */
#define USAGE_MAX 100000000L
static void sane_usage(struct lc_llm_usage *u) {
  long *v[] = {&u->input, &u->output, &u->cached, &u->cache_write, &u->reasoning};
  for (size_t i = 0; i < LC_ARRAY_LEN(v); i++)
    if (*v[i] < 0 || *v[i] > USAGE_MAX)
      *v[i] = 0;
  if (u->cached > u->input)
    u->cached = u->input; /* cached is part of input (llm.h) */
  if (!(u->cost >= 0 && u->cost < 1e9))
    u->cost = 0, u->has_cost = 0;
}

int lc_accum_build(struct lc_llm_accum *a, struct lc_llm_response *out) {
  move_str(&out->model, &a->model);
  move_str(&out->id, &a->id);
  move_str(&out->request_id, &a->request_id);
  if (!a->err && a->split_think && a->think_pend.len) {
    /* Flush what the splitter held back at the end of the answer. */
    struct lc_buf *p = &a->think_pend;
    if (a->think_state == THINK_IN || a->think_state == THINK_IN0)
      lc_accum_reasoning(a, p->data, p->len);
    else if (a->think_state == THINK_START)
      text_raw(a, p->data, p->len);
    lc_buf_reset(p);
  }
  size_t n = a->n_calls;
  struct lc_llm_tool_call *calls = NULL;
  if (!a->err && n) {
    calls = lc_calloc(n, sizeof *calls);
    if (!calls)
      lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  }
  for (size_t i = 0; calls && i < n && !a->err; i++) {
    struct lc_accum_call *c = &a->calls[i];
    struct lc_llm_tool_call *t = &calls[i];
    /* A call named "" is the model's mistake, which the engine answers
     * with an Observation; a call with no name at all is a bad response. */
    if (!c->name && c->empty_name && !(c->name = lc_strdup(""))) {
      lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
      break;
    }
    if (!c->name) {
      lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "tool call %zu has no name", i);
      break;
    }
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "call_%zu", i);
    t->id = c->id ? c->id : lc_strdup(idbuf);
    c->id = NULL;
    t->name = c->name;
    c->name = NULL;
    const char *s = c->args.data ? c->args.data : "";
    size_t w = skip_ws(s, c->args.len);
    t->args_json =
        w == c->args.len ? lc_strdup("{}") : lc_strndup(s, c->args.len);
    if (!t->id || !t->args_json) {
      lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
      break;
    }
    char err[64];
    /* Invalid arguments are not a transport error: the engine tells the
     * model, so args stays NULL and args_json keeps what it wrote. */
    t->args =
        lc_json_parse(t->args_json, strlen(t->args_json), err, sizeof err);
  }
  if (a->err) {
    if (calls) {
      for (size_t i = 0; i < n; i++)
        lc_llm_tool_call_free(&calls[i]);
      lc_free(calls);
    }
    out->err = a->err;
    lc_free(out->err_message);
    out->err_message = lc_strdup(a->errmsg);
    move_str(&out->err_type, &a->err_type);
    return LC_EINVAL;
  }
  out->tool_calls = calls;
  out->n_tool_calls = n;
  if (a->text.len)
    out->text = lc_buf_steal(&a->text, &out->text_len);
  if (a->reasoning.len)
    out->reasoning = lc_buf_steal(&a->reasoning, NULL);
  out->finish = a->finish;
  /* Some servers (Ollama, OpenRouter) end a tool-calling turn with "stop"
   * or with no reason at all: what matters to the loop is that there are
   * calls to run. finish_raw keeps their word. */
  if (n && (out->finish == LC_FINISH_NONE || out->finish == LC_FINISH_STOP))
    out->finish = LC_FINISH_TOOL_CALLS;
  move_str(&out->finish_raw, &a->finish_raw);
  out->usage = a->usage;
  sane_usage(&out->usage);
  out->err = LC_LLM_OK;
  return 0;
}

/* ---- shared helpers ---- */

enum lc_llm_finish lc_accum_map_finish(const char *raw) {
  static const struct {
    const char *raw;
    enum lc_llm_finish f;
  } map[] = {
      {"stop", LC_FINISH_STOP},
      {"end_turn", LC_FINISH_STOP},
      {"stop_sequence", LC_FINISH_STOP},
      {"eos", LC_FINISH_STOP},
      {"length", LC_FINISH_LENGTH},
      {"max_tokens", LC_FINISH_LENGTH},
      {"model_context_window_exceeded", LC_FINISH_LENGTH},
      {"tool_calls", LC_FINISH_TOOL_CALLS},
      {"function_call", LC_FINISH_TOOL_CALLS},
      {"tool_use", LC_FINISH_TOOL_CALLS},
      {"content_filter", LC_FINISH_CONTENT_FILTER},
      {"refusal", LC_FINISH_CONTENT_FILTER},
  };
  if (!raw || !*raw)
    return LC_FINISH_NONE;
  for (size_t i = 0; i < LC_ARRAY_LEN(map); i++)
    if (strcmp(raw, map[i].raw) == 0)
      return map[i].f;
  return LC_FINISH_OTHER;
}

const char *lc_accum_str(const cJSON *obj, const char *key) {
  const cJSON *v =
      cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

long lc_accum_long(const cJSON *obj, const char *key, long dflt) {
  const cJSON *v =
      cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!cJSON_IsNumber(v))
    return dflt;
  double d = v->valuedouble;
  if (!(d >= -9e15 && d <= 9e15))
    return dflt; /* NaN or absurd */
  return (long)d;
}

char *lc_accum_own(char *cjson_str) {
  if (!cjson_str)
    return NULL;
  char *s = lc_strdup(cjson_str);
  cJSON_free(cjson_str);
  return s;
}

char *lc_accum_print(const cJSON *v) {
  if (cJSON_IsString(v))
    return lc_strdup(v->valuestring);
  return lc_accum_own(cJSON_PrintUnformatted(v));
}

static int has_ci(const char *hay, const char *needle) {
  return hay && strcasestr(hay, needle) != NULL;
}

static int eq(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

enum lc_llm_err lc_accum_kind(int status, const char *type, const char *code,
                              const char *msg) {
  enum lc_llm_err k;
  if (status) {
    k = lc_llm_err_from_status(status);
  } else { /* in-band error: only the provider's words tell the kind */
    k = LC_LLM_ESERVER;
    if (has_ci(type, "invalid_request") || has_ci(type, "not_found"))
      k = LC_LLM_EBADREQ;
    if (has_ci(type, "authentication") || has_ci(type, "permission") ||
        eq(code, "invalid_api_key"))
      k = LC_LLM_EAUTH;
    if (has_ci(type, "rate_limit") || eq(code, "rate_limit_exceeded"))
      k = LC_LLM_ERATE;
    if (has_ci(type, "timeout"))
      k = LC_LLM_ETIMEOUT;
  }
  if (k == LC_LLM_OK)
    return k;
  int quota = eq(type, "insufficient_quota") ||
              eq(code, "insufficient_quota") || has_ci(code, "billing_") ||
              has_ci(type, "billing_") ||
              has_ci(msg, "exceeded your current quota") ||
              has_ci(msg, "check your plan and billing") ||
              has_ci(msg, "credit balance is too low");
  if (quota && (k == LC_LLM_ERATE || k == LC_LLM_EBADREQ || k == LC_LLM_EAUTH ||
                k == LC_LLM_ESERVER))
    return LC_LLM_EQUOTA;
  if (has_ci(type, "overloaded") || eq(msg, "Overloaded"))
    if (k == LC_LLM_ESERVER || k == LC_LLM_EOVERLOADED || status == 0)
      return LC_LLM_EOVERLOADED;
  if (k == LC_LLM_EBADREQ || (status == 0 && k != LC_LLM_ERATE)) {
    static const char *ctx[] = {"context_length_exceeded",
                                "context length",
                                "context window",
                                "prompt is too long",
                                "maximum context",
                                "exceed_context_size",
                                "context size",
                                "too many tokens",
                                "input is too long"};
    for (size_t i = 0; i < LC_ARRAY_LEN(ctx); i++)
      if (has_ci(code, ctx[i]) || has_ci(type, ctx[i]) || has_ci(msg, ctx[i]))
        return LC_LLM_ECONTEXT;
  }
  return k;
}

/* Appends one code point's bytes or '?' for an invalid sequence. */
char *lc_accum_excerpt(const char *body, size_t len, size_t max) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  size_t i = 0;
  while (i < len && isspace((unsigned char)body[i]))
    i++;
  int html = i < len && body[i] == '<';
  int in_tag = 0, space = 0, cut = 0;
  while (i < len) {
    unsigned char c = (unsigned char)body[i];
    if (html && c == '<') {
      in_tag = 1, i++;
      continue;
    }
    if (in_tag) {
      if (c == '>')
        in_tag = 0, space = 1;
      i++;
      continue;
    }
    if (c < 0x20 || c == 0x7f || c == ' ') {
      space = 1, i++;
      continue;
    }
    size_t clen = c < 0x80    ? 1
                  : c >= 0xF0 ? 4
                  : c >= 0xE0 ? 3
                  : c >= 0xC0 ? 2
                              : 1;
    const char *bytes = body + i;
    if (clen > len - i || (c >= 0x80 && !lc_utf8_valid(bytes, clen, NULL)))
      bytes = "?", clen = 1;
    size_t need = (space && b.len ? 1 : 0) + clen;
    if (b.len + need > max) {
      cut = 1;
      break;
    }
    if (space && b.len)
      lc_buf_append(&b, " ", 1);
    space = 0;
    lc_buf_append(&b, bytes, clen);
    i += bytes == body + i ? clen : 1;
  }
  if (cut)
    lc_buf_append(&b, "...", 3);
  if (!b.data)
    lc_buf_append(&b, "", 0);
  return lc_buf_steal(&b, NULL);
}

static char *code_str(const cJSON *v) {
  if (cJSON_IsString(v))
    return lc_strdup(v->valuestring);
  if (cJSON_IsNumber(v)) {
    char tmp[32];
    double d = v->valuedouble; /* a provider's: 1e300 is no long */
    if (d >= -9e15 && d <= 9e15) snprintf(tmp, sizeof tmp, "%ld", (long)d);
    else lc_cnum_fmt(tmp, sizeof tmp, "%g", d);
    return lc_strdup(tmp);
  }
  return NULL;
}

void lc_accum_classify(int status, const char *body, size_t len,
                       struct lc_llm_response *out) {
  char err[96];
  const char *type = NULL, *msg = NULL;
  char *code = NULL;
  cJSON *root = len ? lc_json_parse(body, len, err, sizeof err) : NULL;
  if (cJSON_IsObject(root)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(e)) { /* OpenAI, Anthropic, Groq, Together */
      msg = lc_accum_str(e, "message");
      type = lc_accum_str(e, "type");
      code = code_str(cJSON_GetObjectItemCaseSensitive(e, "code"));
    } else if (cJSON_IsString(e)) { /* Ollama */
      msg = e->valuestring;
    } else {
      msg = lc_accum_str(root, "message");
      type = lc_accum_str(root, "type");
    }
    if (!out->request_id && lc_accum_str(root, "request_id"))
      out->request_id = lc_strdup(lc_accum_str(root, "request_id"));
  }
  lc_free(out->err_message);
  if (msg && *msg) {
    out->err_message = lc_strdup(msg);
  } else if (len == 0) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "HTTP %d with an empty body", status);
    out->err_message = lc_strdup(tmp);
  } else { /* not JSON (HTML page, text/plain) or no message in it */
    out->err_message = lc_accum_excerpt(body, len, 200);
  }
  out->err = lc_accum_kind(status, type, code, out->err_message);
  if (out->err == LC_LLM_OK)
    out->err = LC_LLM_EBADRESP;
  lc_free(out->err_type);
  out->err_type = NULL;
  if (code && *code)
    out->err_type = lc_strdup(code);
  else if (type)
    out->err_type = lc_strdup(type);
  lc_free(code);
  cJSON_Delete(root);
}

/* out->err = EBADRESP, "malformed <what>: <why>[: <excerpt>]". */
static void body_fail(const char *body, size_t len, size_t w, const char *what,
                      const char *why, struct lc_llm_response *out) {
  out->err = LC_LLM_EBADRESP;
  lc_free(out->err_message);
  char *ex = w < len ? lc_accum_excerpt(body, len, 120) : NULL;
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_printf(&b, "malformed %s: %s", what, why);
  if (ex && *ex) {
    lc_buf_puts(&b, ": ");
    lc_buf_puts(&b, ex);
  }
  lc_free(ex);
  out->err_message = lc_buf_steal(&b, NULL);
}

cJSON *lc_accum_parse_body(const char *body, size_t len, const char *what,
                           struct lc_llm_response *out) {
  char err[96];
  size_t w = skip_ws(body, len);
  cJSON *root = NULL;
  const char *why = NULL;
  if (w == len) {
    why = "empty body";
  } else if (body[w] == '<') {
    why = "an HTML page";
  } else {
    root = lc_json_parse(body, len, err, sizeof err);
    if (root && !cJSON_IsObject(root)) {
      cJSON_Delete(root);
      root = NULL;
      snprintf(err, sizeof err, "JSON is not an object");
    }
    if (!root)
      why = err;
  }
  if (root)
    return root;
  body_fail(body, len, w, what, why, out);
  return NULL;
}

int lc_accum_walk_body(const char *body, size_t len, const char *what,
                       lc_jsonr_walk_fn walk, void *ud,
                       struct lc_llm_response *out) {
  char err[128] = "";
  size_t w = skip_ws(body, len);
  const char *why = err;
  int is_obj = 0;
  if (w == len)
    why = "empty body";
  else if (body[w] == '<')
    why = "an HTML page";
  else if (!lc_jsonr_walk(body, len, walk, ud, &is_obj, err, sizeof err) &&
           is_obj)
    return 0;
  else if (!is_obj && !err[0])
    why = "JSON is not an object";
  body_fail(body, len, w, what, why, out);
  return LC_EINVAL;
}

/* ---- request building ---- */

int lc_accum_http_url(struct lc_llm_http *out, const char *base,
                      const char *path) {
  size_t n = strlen(base);
  while (n && base[n - 1] == '/')
    n--;
  struct lc_buf b;
  lc_buf_init(&b, 0);
  if (lc_buf_append(&b, base, n) || lc_buf_puts(&b, path)) {
    lc_buf_free(&b);
    return LC_ENOMEM;
  }
  lc_free(out->url);
  out->url = lc_buf_steal(&b, NULL);
  return out->url ? 0 : LC_ENOMEM;
}

/* Credentials can be long: AWS session tokens and Bedrock's short-term
 * API keys run past 1 KB, a gateway's JWT too. */
#define HEADER_MAX ((size_t)64 << 10)

int lc_accum_http_header(struct lc_llm_http *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= HEADER_MAX)
    return LC_ETOOBIG;
  char **h = lc_realloc(out->headers, (out->n_headers + 1) * sizeof *h);
  if (!h)
    return LC_ENOMEM;
  out->headers = h;
  if (!(h[out->n_headers] = lc_malloc((size_t)n + 1)))
    return LC_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(h[out->n_headers], (size_t)n + 1, fmt, ap);
  va_end(ap);
  out->n_headers++;
  return 0;
}

int lc_accum_http_body(struct lc_llm_http *out, cJSON *root) {
  char *s = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!s)
    return LC_ENOMEM;
  lc_free(out->body);
  out->body = lc_accum_own(s);
  if (!out->body)
    return LC_ENOMEM;
  out->body_len = strlen(out->body);
  return 0;
}

int lc_accum_http_body_buf(struct lc_llm_http *out, struct lc_buf *b) {
  lc_free(out->body);
  out->body = lc_buf_steal(b, &out->body_len);
  return out->body ? 0 : LC_ENOMEM;
}

size_t lc_accum_msg_len(const struct lc_llm_msg *m) {
  if (!m->content)
    return 0;
  size_t n = strlen(m->content);
  return m->content_len > n ? m->content_len : n;
}

void lc_accum_w_schema(struct lc_jsonw *w, const struct lc_llm_tool *t,
                       const char *dflt) {
  if (t->schema_json)
    lc_jsonw_raw(w, t->schema_json, strlen(t->schema_json));
  else if (t->schema)
    lc_jsonw_cjson(w, t->schema);
  else
    lc_jsonw_raw(w, dflt, strlen(dflt));
}

int lc_accum_w_args_object(struct lc_jsonw *w,
                           const struct lc_llm_tool_call *c, char *err,
                           size_t errlen) {
  cJSON *o = lc_accum_args_object(c, err, errlen);
  if (!o)
    return LC_EINVAL;
  lc_jsonw_cjson(w, o);
  cJSON_Delete(o);
  return 0;
}

cJSON *lc_accum_args_object(const struct lc_llm_tool_call *c, char *err,
                            size_t errlen) {
  cJSON *o = NULL;
  if (c->args) {
    o = cJSON_Duplicate(c->args, 1);
  } else {
    const char *s = c->args_json ? c->args_json : "";
    size_t n = strlen(s);
    if (skip_ws(s, n) == n)
      return cJSON_CreateObject();
    char perr[96];
    o = lc_json_parse(s, n, perr, sizeof perr);
    if (!o) {
      snprintf(err, errlen, "arguments of tool call %s are not JSON: %s",
               c->id ? c->id : "?", perr);
      return NULL;
    }
  }
  if (o && !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    snprintf(err, errlen, "arguments of tool call %s are not an object",
             c->id ? c->id : "?");
    return NULL;
  }
  if (!o)
    snprintf(err, errlen, "out of memory");
  return o;
}

/* ---- stream state ---- */

struct lc_llm_stream *lc_accum_stream_new(void) {
  struct lc_llm_stream *st = lc_calloc(1, sizeof *st);
  if (!st)
    return NULL;
  lc_sse_init(&st->sse, LC_STREAM_MAX_EVENT);
  lc_ndjson_init(&st->nd, LC_STREAM_MAX_EVENT);
  lc_accum_init(&st->acc);
  return st;
}

void lc_accum_stream_free(struct lc_llm_stream *st) {
  if (!st)
    return;
  if (st->ext_free)
    st->ext_free(st->ext);
  lc_sse_free(&st->sse);
  lc_ndjson_free(&st->nd);
  lc_accum_free(&st->acc);
  lc_free(st);
}

int lc_accum_stream_end(struct lc_llm_stream *st, struct lc_llm_response *out,
                        const char *marker) {
  if (!st->done)
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL,
                  "stream ended before %s (cut short)", marker);
  lc_accum_set_cb(&st->acc, NULL, NULL);
  return lc_accum_build(&st->acc, out);
}

int lc_accum_sse_feed(struct lc_llm_stream *st, const char *data, size_t len,
                      lc_llm_delta_fn cb, void *ud, lc_sse_fn on_event) {
  if (st->acc.err)
    return LC_EINVAL;
  lc_accum_set_cb(&st->acc, cb, ud);
  int rc = lc_sse_feed(&st->sse, data, len, on_event, st);
  if (rc && st->sse.failed)
    lc_accum_fail(&st->acc, LC_LLM_EBADRESP, NULL, "%s", st->sse.err);
  return st->acc.err ? LC_EINVAL : 0;
}

int lc_accum_sse_end(struct lc_llm_stream *st, struct lc_llm_response *out,
                     const char *marker) {
  lc_sse_end(&st->sse);
  return lc_accum_stream_end(st, out, marker);
}

void lc_accum_write_sampling(struct lc_jsonw *w, const struct lc_llm_request *req,
                             const char *top_k_key, const char *max_tokens_key) {
  if (req->set & LC_SET_TEMPERATURE) {
    lc_jsonw_key(w, "temperature");
    lc_jsonw_num(w, req->temperature);
  }
  if (req->set & LC_SET_TOP_P) {
    lc_jsonw_key(w, "top_p");
    lc_jsonw_num(w, req->top_p);
  }
  if (top_k_key && (req->set & LC_SET_TOP_K)) {
    lc_jsonw_key(w, top_k_key);
    lc_jsonw_num(w, req->top_k);
  }
  if (req->set & LC_SET_MAX_TOKENS) {
    lc_jsonw_key(w, max_tokens_key);
    lc_jsonw_num(w, req->max_tokens);
  }
  if (req->set & LC_SET_SEED) {
    lc_jsonw_key(w, "seed");
    lc_jsonw_num(w, (double)req->seed);
  }
  if (req->n_stop) {
    lc_jsonw_key(w, "stop");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < req->n_stop; i++)
      lc_jsonw_cstr(w, req->stop[i]);
    lc_jsonw_arr_end(w);
  }
}

static void w_function_tool(struct lc_jsonw *w, const struct lc_llm_tool *t,
                            int with_strict) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "function");
  lc_jsonw_key(w, "function");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "name");
  lc_jsonw_cstr(w, t->name);
  if (t->description) {
    lc_jsonw_key(w, "description");
    lc_jsonw_cstr(w, t->description);
  }
  lc_jsonw_key(w, "parameters");
  lc_accum_w_schema(w, t, "{}");
  if (with_strict && t->strict) {
    lc_jsonw_key(w, "strict");
    lc_jsonw_bool(w, 1);
  }
  lc_jsonw_obj_end(w);
  lc_jsonw_obj_end(w);
}

void lc_accum_w_function_tools(struct lc_jsonw *w, const struct lc_llm_request *req,
                               int with_strict) {
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_tools; i++)
    w_function_tool(w, &req->tools[i], with_strict);
  lc_jsonw_arr_end(w);
}

/* Most bodies fit: fewer reallocations; one byte under 4 KiB so the
 * buffer's NUL does not double it to 8. A failure shows up later. */
#define BODY_RESERVE 4095

int lc_accum_body_begin(struct lc_llm_http *out, const struct lc_llm_request *req,
                        struct lc_buf *body, struct lc_jsonw *w, char *err,
                        size_t errlen) {
  memset(out, 0, sizeof *out);
  lc_buf_init(body, 0);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  lc_jsonw_init(w, body);
  (void)lc_buf_reserve(body, BODY_RESERVE);
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "model");
  lc_jsonw_cstr(w, req->model);
  return 0;
}

/* ---- chat bodies and the prefix cache ---- */

/* A fresh body up to the open "messages" array. */
static void chat_open(struct lc_buf *body, struct lc_jsonw *w,
                      const struct lc_llm_request *req, lc_accum_head_fn head) {
  lc_buf_init(body, 0);
  lc_jsonw_init(w, body);
  (void)lc_buf_reserve(body, BODY_RESERVE);
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "model");
  lc_jsonw_cstr(w, req->model);
  head(w, req);
  lc_jsonw_key(w, "messages");
  lc_jsonw_arr(w);
}

/* Messages [from, n_msgs); *last_at becomes the length before the last
 * one when it is written here. */
static int chat_msgs(struct lc_jsonw *w, const struct lc_llm_request *req,
                     size_t from, lc_accum_msg_fn msg, size_t *last_at,
                     char *err, size_t errlen) {
  for (size_t i = from; i < req->n_msgs; i++) {
    if (i + 1 == req->n_msgs)
      *last_at = w->b->len;
    if (msg(w, &req->msgs[i], err, errlen))
      return LC_EINVAL;
  }
  return 0;
}

/* Takes the request's prefix (pc, left empty) into body when it was built
 * for this provider and head and covers no more messages than there are;
 * else frees it and starts body fresh. *from is the first message still
 * to write. The last message covered is written again past the end and
 * compared: when it changed (text mode replaces its scratchpad) the body
 * goes back to before it. Returns 0, or msg's failure (body is then the
 * caller's to free). */
static int chat_resume(struct lc_llm_prefix *pc, const struct lc_llm_request *req,
                       enum lc_llm_provider p, unsigned long long fp,
                       struct lc_buf *body, struct lc_jsonw *w,
                       lc_accum_head_fn head, lc_accum_msg_fn msg,
                       size_t *from, size_t *last_at, char *err, size_t errlen) {
  struct lc_llm_prefix old = *pc;
  memset(pc, 0, sizeof *pc);
  if (!old.data || old.prov != (signed char)p || old.fp != fp ||
      old.n_msgs > req->n_msgs || old.len + 1 > old.cap) {
    lc_free(old.data);
    chat_open(body, w, req, head);
    *from = 0;
    *last_at = LC_LLM_PREFIX_NO_LAST;
    return 0;
  }
  lc_buf_init(body, 0);
  body->data = old.data;
  body->len = old.len;
  body->cap = old.cap;
  body->data[body->len] = '\0';
  *from = old.n_msgs;
  *last_at = old.last_at;
  lc_jsonw_reopen(w, body, 2, old.n_msgs > 0);
  if (old.n_msgs == 0 || old.last_at == LC_LLM_PREFIX_NO_LAST)
    return 0;
  size_t was = old.last_at + (old.n_msgs > 1); /* past its comma */
  size_t at = lc_jsonw_value_at(w);
  if (msg(w, &req->msgs[old.n_msgs - 1], err, errlen))
    return LC_EINVAL;
  if (w->err)
    return 0; /* lc_jsonw_finish reports it */
  size_t n = body->len - at;
  if (n == old.len - was && memcmp(body->data + was, body->data + at, n) == 0) {
    body->len = old.len;
  } else {
    body->len = old.last_at;
    *from = old.n_msgs - 1;
  }
  body->data[body->len] = '\0';
  lc_jsonw_reopen(w, body, 2, *from > 0);
  return 0;
}

#ifdef LUACT_DEBUG_CHECKS
/* The cached body must be the one a fresh build writes. */
static void chat_check(const struct lc_llm_request *req, lc_accum_head_fn head,
                       lc_accum_msg_fn msg, const char *got, size_t n) {
  struct lc_buf b;
  struct lc_jsonw w;
  char e[256];
  size_t last_at;
  chat_open(&b, &w, req, head);
  int rc = chat_msgs(&w, req, 0, msg, &last_at, e, sizeof e);
  lc_jsonw_arr_end(&w);
  lc_jsonw_obj_end(&w);
  if (!rc && !lc_jsonw_finish(&w) &&
      (b.len != n || memcmp(b.data, got, n) != 0)) {
    fprintf(stderr,
            "luact: a cached request body differs from a fresh build (a "
            "message or tool changed without lc_llm_prefix_cut/drop)\n"
            "cached: %.*s\nfresh:  %.*s\n",
            (int)n, got, (int)b.len, b.data);
    abort();
  }
  lc_buf_free(&b);
}
#endif

int lc_accum_chat_body(struct lc_llm_http *out, const struct lc_llm_request *req,
                       enum lc_llm_provider p, lc_accum_head_fn head,
                       lc_accum_msg_fn msg, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  struct lc_buf body;
  struct lc_jsonw jw, *w = &jw;
  /* The cast is the cache's one write (llm.h). */
  struct lc_llm_prefix *pc =
      req->cache_wire ? &((struct lc_llm_request *)req)->prefix : NULL;
  unsigned long long fp = 0;
  size_t from = 0, last_at = LC_LLM_PREFIX_NO_LAST;
  int rc = 0;
  if (pc) {
    fp = lc_llm_request_head_fp(req);
    rc = chat_resume(pc, req, p, fp, &body, w, head, msg, &from, &last_at,
                     err, errlen);
  } else {
    chat_open(&body, w, req, head);
  }
  if (!rc)
    rc = chat_msgs(w, req, from, msg, &last_at, err, errlen);
  size_t len = body.len; /* the prefix: up to the end of the last message */
  lc_jsonw_arr_end(w);
  lc_jsonw_obj_end(w);
  if (!rc && (rc = lc_jsonw_finish(w)))
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "request too large" : "out of memory");
  if (rc) {
    lc_buf_free(&body); /* pc is empty: dropped */
    return rc;
  }
  /* The body waits with the agent for the whole call: no slack (a
   * shrinking realloc stays in place). The next build grows it. */
  char *fit = lc_realloc(body.data, body.len + 1);
  if (fit) {
    body.data = fit;
    body.cap = body.len + 1;
  }
  out->body = body.data;
  out->body_len = body.len;
  if (pc) {
    *pc = (struct lc_llm_prefix){.lent = body.data,
                                 .len = len,
                                 .cap = body.cap,
                                 .last_at = last_at,
                                 .n_msgs = req->n_msgs,
                                 .fp = fp,
                                 .prov = (signed char)p};
#ifdef LUACT_DEBUG_CHECKS
    chat_check(req, head, msg, out->body, out->body_len);
#endif
  }
  return 0;
}

void lc_accum_w_base64(struct lc_jsonw *w, const char *prefix,
                       const void *data, size_t n) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  /* Base64 and the prefixes used (media types we sniffed) need no
   * escaping: raw is exact. */
  int rc = lc_buf_printf(&b, "\"%s", prefix);
  size_t bn = 0;
  char *b64 = rc ? NULL : lc_llm_base64(data, n, &bn);
  if (!b64 || lc_buf_append(&b, b64, bn) || lc_buf_append(&b, "\"", 1)) {
    lc_jsonw_raw(w, "\"\"", 2);
    w->err = LC_ENOMEM;
  } else {
    lc_jsonw_raw(w, b.data, b.len);
  }
  lc_free(b64);
  lc_buf_free(&b);
}

void lc_accum_w_image_url(struct lc_jsonw *w, const struct lc_llm_part *p) {
  if (p->url) {
    lc_jsonw_cstr(w, p->url);
    return;
  }
  char pre[64];
  snprintf(pre, sizeof pre, "data:%s;base64,", p->media_type);
  lc_accum_w_base64(w, pre, p->data, p->data_len);
}
