/* llm_openai.c: adapter for OpenAI Chat Completions and the servers that
 * speak it (Groq, Together, OpenRouter, vLLM, llama.cpp, Ollama /v1, LM
 * Studio), including their quirks: no tool-call index (Ollama /v1), id and
 * name repeated in every chunk (OpenRouter), reasoning_content (llama.cpp),
 * usage in a final chunk without choices. */
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "jsonr.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

/* ---- request ---- */

/* The body is written straight to text (jsonw.h): a cJSON tree of the whole
 * history cost a node allocation per value on every call. Member order is
 * the one the tree had, so the bytes are the same. */

static void write_call(struct lc_jsonw *w, const struct lc_llm_tool_call *c) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "function");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "name");
  lc_jsonw_cstr(w, c->name);
  /* OpenAI wants the arguments as the string the model wrote. */
  lc_jsonw_key(w, "arguments");
  if (c->args_json && *c->args_json) {
    lc_jsonw_cstr(w, c->args_json);
  } else if (c->args) {
    char *printed = cJSON_PrintUnformatted(c->args);
    lc_jsonw_cstr(w, printed && *printed ? printed : "{}");
    cJSON_free(printed);
  } else {
    lc_jsonw_cstr(w, "{}");
  }
  lc_jsonw_obj_end(w);
  lc_jsonw_key(w, "id");
  lc_jsonw_cstr(w, c->id);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "function");
  lc_jsonw_obj_end(w);
}

static void write_msg(struct lc_jsonw *w, const struct lc_llm_msg *m) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "role");
  lc_jsonw_cstr(w, lc_llm_role_name(m->role));
  lc_jsonw_key(w, "content");
  if (m->content)
    lc_jsonw_str(w, m->content, lc_accum_msg_len(m));
  else if (m->role == LC_ROLE_TOOL)
    lc_jsonw_cstr(w, "");
  else
    lc_jsonw_null(w);
  if (m->role == LC_ROLE_ASSISTANT && m->n_tool_calls) {
    lc_jsonw_key(w, "tool_calls");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < m->n_tool_calls; i++)
      write_call(w, &m->tool_calls[i]);
    lc_jsonw_arr_end(w);
  }
  if (m->role == LC_ROLE_TOOL) {
    lc_jsonw_key(w, "tool_call_id");
    lc_jsonw_cstr(w, m->tool_call_id);
  }
  lc_jsonw_obj_end(w);
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!req->model || !*req->model) {
    snprintf(err, errlen, "no model given");
    return LC_EINVAL;
  }
  struct lc_buf body;
  lc_buf_init(&body, 0);
  struct lc_jsonw jw, *w = &jw;
  lc_jsonw_init(w, &body);
  /* Most bodies fit: fewer reallocations. A failure shows up later. */
  (void)lc_buf_reserve(&body, 4096);
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "model");
  lc_jsonw_cstr(w, req->model);
  lc_jsonw_key(w, "messages");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_msgs; i++)
    write_msg(w, &req->msgs[i]);
  lc_jsonw_arr_end(w);
  if (req->n_tools) {
    lc_jsonw_key(w, "tools");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < req->n_tools; i++)
      lc_accum_w_function_tool(w, &req->tools[i], 1);
    lc_jsonw_arr_end(w);
  }
  switch (req->tool_choice) {
  case LC_TOOL_CHOICE_AUTO: break;
  case LC_TOOL_CHOICE_NONE:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_cstr(w, "none");
    break;
  case LC_TOOL_CHOICE_REQUIRED:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_cstr(w, "required");
    break;
  case LC_TOOL_CHOICE_NAMED:
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "function");
    lc_jsonw_key(w, "function");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, req->tool_choice_name);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
    break;
  }
  if (req->format == LC_FORMAT_JSON) {
    lc_jsonw_key(w, "response_format");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "json_object");
    lc_jsonw_obj_end(w);
  } else if (req->format == LC_FORMAT_JSON_SCHEMA) {
    lc_jsonw_key(w, "response_format");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "json_schema");
    lc_jsonw_key(w, "json_schema");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, req->response_schema_name ? req->response_schema_name
                                               : "response");
    lc_jsonw_key(w, "schema");
    if (req->response_schema)
      lc_jsonw_cjson(w, req->response_schema);
    else
      lc_jsonw_raw(w, "{}", 2);
    lc_jsonw_key(w, "strict");
    lc_jsonw_bool(w, 1);
    lc_jsonw_obj_end(w);
    lc_jsonw_obj_end(w);
  }
  /* top_k: api.openai.com rejects it; compatible servers that take it are
   * reached through their own extras, so it is not sent. */
  lc_accum_write_sampling(w, req, NULL, "max_tokens");
  if (req->stream) {
    lc_jsonw_key(w, "stream");
    lc_jsonw_bool(w, 1);
    lc_jsonw_key(w, "stream_options");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "include_usage");
    lc_jsonw_bool(w, 1);
    lc_jsonw_obj_end(w);
  }
  lc_jsonw_obj_end(w);
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_openai.default_base_url;
  int rc = lc_jsonw_finish(w);
  if (!rc)
    rc = lc_accum_http_body_buf(out, &body);
  lc_buf_free(&body);
  if (!rc)
    rc = lc_accum_http_url(out, base, "/chat/completions");
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "text/event-stream"
                                          : "application/json");
  if (!rc && req->api_key && *req->api_key)
    rc = lc_accum_http_header(out, "Authorization: Bearer %s", req->api_key);
  if (rc) {
    lc_llm_http_free(out);
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* Responses are read with the pull reader (jsonr.h), no cJSON tree: a
 * first pass checks the whole text and notes where the top-level members
 * start, then each part is read where it is. Lookups take a member's first
 * occurrence and accept the same types as the tree walk did, so answers
 * and error messages are those of the cJSON version. */

enum { K_ERROR, K_CHOICES, K_ID, K_MODEL, K_USAGE, K_N };
static const char *const top_keys[K_N] = {"error", "choices", "id", "model",
                                          "usage"};
#define NONE LC_JSONR_NONE

/* Second-pass state over text already checked. */
struct rd {
  struct lc_jsonr it; /* walks arrays */
  struct lc_jsonr pt; /* point reads at an offset */
  /* Strings handed on as C strings, NUL-terminated. Sized once for the
   * whole text, twice over (see str_at), so it never moves and earlier
   * pointers stay valid. */
  struct lc_buf arena;
  int oom;
};

static void rd_init(struct rd *d, const char *s, size_t n) {
  lc_jsonr_init(&d->it, s, n);
  lc_jsonr_init(&d->pt, s, n);
  lc_buf_init(&d->arena, 0);
  d->oom = 0;
}

static enum lc_jsonr_type type_at(struct rd *d, size_t off) {
  if (off == NONE)
    return LC_JSONR_BAD;
  lc_jsonr_seek(&d->pt, off);
  return lc_jsonr_peek(&d->pt);
}

/* The string at off, or NULL when absent or not a string. As cJSON's
 * valuestring was, it ends at a NUL (from \u0000). cstr: copied to the
 * arena and NUL-terminated; else it may point into the text. */
static const char *str_at(struct rd *d, size_t off, size_t *len, int cstr) {
  if (type_at(d, off) != LC_JSONR_STRING)
    return NULL;
  struct lc_buf *b = &d->arena;
  /* Each string is read at most once, so all of them take at most n bytes
   * (decoded + NUL <= escaped + quotes); this one at most n - off + 1. */
  size_t room = d->pt.n - off + 1;
  if (!b->data && lc_buf_reserve(b, 2 * d->pt.n + 2))
    room = (size_t)-1;
  if (b->len + room > b->cap) { /* out of memory (never out of room) */
    d->oom = 1;
    return NULL;
  }
  const char *s;
  size_t n;
  char *mark = b->data + b->len;
  if (lc_jsonr_str(&d->pt, b, &s, &n))
    return NULL; /* checked already: cannot happen */
  if (s == mark) { /* decoded: may hold a NUL */
    n = strnlen(s, n);
  } else if (cstr) {
    memcpy(mark, s, n);
    b->len += n;
    s = mark;
  }
  if (cstr) {
    b->data[b->len++] = '\0';
  }
  *len = n;
  return s;
}

static const char *cstr_at(struct rd *d, size_t off) {
  size_t n;
  return str_at(d, off, &n, 1);
}

/* 1 and *v for a number at off. */
static int num_at(struct rd *d, size_t off, double *v) {
  return type_at(d, off) == LC_JSONR_NUMBER && !lc_jsonr_num(&d->pt, v);
}

/* 1 when off holds an object; its members keys[] indexed into offs. */
static int obj_at(struct rd *d, size_t off, const char *const *keys, size_t n,
                  size_t *offs) {
  if (type_at(d, off) != LC_JSONR_OBJECT || lc_jsonr_obj(&d->pt) ||
      lc_jsonr_index(&d->pt, keys, n, offs)) {
    for (size_t i = 0; i < n; i++)
      offs[i] = NONE;
    return 0;
  }
  return 1;
}

/* lc_accum_long on the value at off. */
static long long_at(struct rd *d, size_t off, long dflt) {
  double v;
  if (!num_at(d, off, &v) || !(v >= -9e15 && v <= 9e15))
    return dflt; /* not a number, NaN or absurd */
  return (long)v;
}

/* lc_accum_long: member key of the object at off. */
static long long_in(struct rd *d, size_t off, const char *key, long dflt) {
  size_t at;
  return obj_at(d, off, &key, 1, &at) ? long_at(d, at, dflt) : dflt;
}

static void usage(struct lc_llm_accum *a, struct rd *d, size_t off) {
  static const char *const keys[] = {"prompt_tokens", "completion_tokens",
                                     "prompt_tokens_details",
                                     "completion_tokens_details", "cost"};
  size_t o[5];
  if (!obj_at(d, off, keys, 5, o))
    return;
  a->usage.input = long_at(d, o[0], a->usage.input);
  a->usage.output = long_at(d, o[1], a->usage.output);
  a->usage.cached = long_in(d, o[2], "cached_tokens", a->usage.cached);
  a->usage.reasoning = long_in(d, o[3], "reasoning_tokens", a->usage.reasoning);
  double cost;
  if (num_at(d, o[4], &cost)) {
    a->usage.cost = cost;
    a->usage.has_cost = 1;
  }
}

/* Which accumulator slot a tool_calls[] entry belongs to. */
static int call_key(struct lc_llm_accum *a, struct rd *d, size_t ix_off,
                    const char *id) {
  double ix;
  if (num_at(d, ix_off, &ix) && ix >= 0 && ix < 1e6) {
    int key = (int)ix;
    struct lc_accum_call *c = lc_accum_call_by_key(a, key);
    /* A server that gives every call index 0 but a new id. */
    if (c && id && *id && c->id && strcmp(c->id, id) != 0) {
      int k = lc_accum_key_by_id(a, id);
      return k >= 0 ? k : lc_accum_fresh_key(a);
    }
    return key;
  }
  /* No index (Ollama /v1): a new id is a new call, else continue the last. */
  if (id && *id) {
    int k = lc_accum_key_by_id(a, id);
    return k >= 0 ? k : lc_accum_fresh_key(a);
  }
  int k = lc_accum_last_key(a);
  return k >= 0 ? k : lc_accum_fresh_key(a);
}

/* Arguments given as a JSON value instead of text: printed as cJSON
 * prints it (rare, so the value is parsed into a tree here). */
static int args_value(struct lc_llm_accum *a, struct rd *d, int key,
                      size_t off) {
  lc_jsonr_seek(&d->pt, off);
  lc_jsonr_skip(&d->pt);
  char err[96];
  cJSON *v = lc_json_parse(d->pt.s + off, d->pt.pos - off, err, sizeof err);
  char *s = v ? lc_accum_print(v) : NULL;
  cJSON_Delete(v);
  int rc = s ? lc_accum_tool_args(a, key, s, strlen(s)) : LC_ENOMEM;
  lc_free(s);
  return rc;
}

static int tool_calls(struct lc_llm_accum *a, struct rd *d, size_t off,
                      int whole) {
  static const char *const tc_keys[] = {"id", "function", "index"};
  static const char *const fn_keys[] = {"name", "arguments"};
  struct lc_jsonr *it = &d->it;
  lc_jsonr_seek(it, off);
  lc_jsonr_arr(it);
  int i = 0;
  while (lc_jsonr_item(it) == 1) {
    size_t t[3], f[2];
    if (lc_jsonr_peek(it) != LC_JSONR_OBJECT)
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                           "tool call is not an object");
    lc_jsonr_obj(it);
    lc_jsonr_index(it, tc_keys, 3, t);
    const char *id = cstr_at(d, t[0]);
    obj_at(d, t[1], fn_keys, 2, f);
    const char *name = cstr_at(d, f[0]);
    /* A whole message lists each call once: its position is its key. */
    int key = whole ? i : call_key(a, d, t[2], id);
    i++;
    if (lc_accum_tool_start(a, key, id, name))
      return LC_EINVAL;
    enum lc_jsonr_type at_args = type_at(d, f[1]);
    if (at_args == LC_JSONR_STRING) {
      size_t n;
      const char *s = cstr_at(d, f[1]);
      n = s ? strlen(s) : 0;
      if (s && lc_accum_tool_args(a, key, s, n))
        return LC_EINVAL;
    } else if (at_args != LC_JSONR_BAD && at_args != LC_JSONR_NULL) {
      if (args_value(a, d, key, f[1])) /* an object instead of text */
        return LC_EINVAL;
    }
  }
  return 0;
}

/* One choice's message (whole) or delta (stream), an object at off. */
static int choice_part(struct lc_llm_accum *a, struct rd *d, size_t off,
                       int whole) {
  static const char *const keys[] = {"reasoning_content", "reasoning",
                                     "content", "tool_calls"};
  size_t o[4], n;
  const char *s;
  obj_at(d, off, keys, 4, o);
  if ((s = str_at(d, o[0], &n, 0)) || (s = str_at(d, o[1], &n, 0)))
    if (lc_accum_reasoning(a, s, n))
      return LC_EINVAL;
  if ((s = str_at(d, o[2], &n, 0)) && lc_accum_text(a, s, n))
    return LC_EINVAL;
  if (type_at(d, o[3]) == LC_JSONR_ARRAY && tool_calls(a, d, o[3], whole))
    return LC_EINVAL;
  return a->err ? LC_EINVAL : 0;
}

/* An "error" member that is not null (some servers send "error": null). */
static int has_error(struct rd *d, const size_t *top) {
  enum lc_jsonr_type t = type_at(d, top[K_ERROR]);
  return t != LC_JSONR_BAD && t != LC_JSONR_NULL;
}

/* Members of a choice, found while looking for it. */
enum { C_INDEX, C_MESSAGE, C_DELTA, C_FINISH, C_N };

/* The first element of choices (members too, when it is an object, as
 * cJSON's iteration went) whose "index" is 0 or missing: n > 1 keeps the
 * first. Its members go to c (all NONE when it is not an object). */
static size_t first_choice(struct rd *d, size_t off, size_t *c) {
  static const char *const keys[C_N] = {"index", "message", "delta",
                                        "finish_reason"};
  struct lc_jsonr *it = &d->it;
  enum lc_jsonr_type t = type_at(d, off);
  if (t != LC_JSONR_ARRAY && t != LC_JSONR_OBJECT)
    return NONE;
  lc_jsonr_seek(it, off);
  t == LC_JSONR_ARRAY ? lc_jsonr_arr(it) : lc_jsonr_obj(it);
  while ((t == LC_JSONR_ARRAY ? lc_jsonr_item(it) : lc_jsonr_member(it)) ==
         1) {
    size_t at = (lc_jsonr_peek(it), it->pos);
    if (lc_jsonr_peek(it) == LC_JSONR_OBJECT) {
      lc_jsonr_obj(it);
      lc_jsonr_index(it, keys, C_N, c);
    } else {
      lc_jsonr_skip(it);
      for (size_t i = 0; i < C_N; i++)
        c[i] = NONE;
    }
    if (long_at(d, c[C_INDEX], 0) == 0)
      return at;
  }
  return NONE;
}

static void meta(struct lc_llm_accum *a, struct rd *d, const size_t *top) {
  if (!a->id)
    lc_accum_set_once(&a->id, cstr_at(d, top[K_ID]));
  if (!a->model)
    lc_accum_set_once(&a->model, cstr_at(d, top[K_MODEL]));
}

static void finish(struct lc_llm_accum *a, struct rd *d, size_t off) {
  const char *fr = cstr_at(d, off);
  if (fr)
    lc_accum_finish(a, lc_accum_map_finish(fr), fr);
}

/* The in-band error object: classified from its cJSON tree as before
 * (rare), or from the text if cJSON refuses what the reader took. */
static int fail_error(struct lc_llm_accum *a, const char *s, size_t n) {
  char err[96];
  cJSON *root = lc_json_parse(s, n, err, sizeof err);
  if (root) {
    lc_accum_fail_json(a, root);
    cJSON_Delete(root);
    return LC_EINVAL;
  }
  struct lc_llm_response tmp;
  lc_llm_response_init(&tmp);
  lc_accum_classify(0, s, n, &tmp);
  lc_accum_fail(a, tmp.err ? tmp.err : LC_LLM_ESERVER, tmp.err_type, "%s",
                tmp.err_message ? tmp.err_message : "error in stream");
  lc_llm_response_free(&tmp);
  return LC_EINVAL;
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  size_t top[K_N];
  if (lc_accum_index_body(body, len, "chat completion", top_keys, K_N, top,
                          out))
    return LC_EINVAL;
  struct lc_llm_accum a;
  lc_accum_init(&a);
  struct rd d;
  rd_init(&d, body, len);
  size_t c[C_N];
  size_t choice = first_choice(&d, top[K_CHOICES], c);
  if (has_error(&d, top)) {
    fail_error(&a, body, len);
  } else if (type_at(&d, top[K_CHOICES]) != LC_JSONR_ARRAY) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat completion: no choices array");
  } else if (choice == NONE) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat completion: no choice");
  } else {
    meta(&a, &d, top);
    if (type_at(&d, c[C_MESSAGE]) != LC_JSONR_OBJECT)
      lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                    "malformed chat completion: choice has no message");
    else
      choice_part(&a, &d, c[C_MESSAGE], 1);
    finish(&a, &d, c[C_FINISH]);
    usage(&a, &d, top[K_USAGE]);
  }
  if (d.oom)
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL, "out of memory");
  lc_buf_free(&d.arena);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  return rc;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  lc_accum_classify(status, body, len, out);
}

/* ---- streaming ---- */

static int on_event(void *ud, const struct lc_sse_event *ev) {
  struct lc_llm_stream *st = ud;
  struct lc_llm_accum *a = &st->acc;
  if (st->done)
    return 0; /* nothing counts after [DONE] */
  if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
    st->done = 1;
    return 0;
  }
  char err[128];
  size_t top[K_N];
  int is_obj;
  int is_err_event = ev->event_len == 5 && memcmp(ev->event, "error", 5) == 0;
  if (lc_jsonr_check_index(ev->data, ev->data_len, top_keys, K_N, top, &is_obj,
                           err, sizeof err)) {
    if (is_err_event)
      return lc_accum_fail(a, LC_LLM_ESERVER, NULL,
                           "error event in stream: %.200s", ev->data);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream chunk: %s",
                         err);
  }
  struct rd d;
  rd_init(&d, ev->data, ev->data_len);
  int rc = 0;
  if (is_err_event || (is_obj && has_error(&d, top))) {
    rc = fail_error(a, ev->data, ev->data_len);
  } else if (!is_obj) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                       "stream chunk is not an object");
  } else {
    size_t c[C_N];
    meta(a, &d, top);
    if (first_choice(&d, top[K_CHOICES], c) != NONE) {
      if (type_at(&d, c[C_DELTA]) == LC_JSONR_OBJECT)
        rc = choice_part(a, &d, c[C_DELTA], 0);
      finish(a, &d, c[C_FINISH]);
    }
    usage(a, &d, top[K_USAGE]);
  }
  if (d.oom)
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  lc_buf_free(&d.arena);
  return rc;
}

static struct lc_llm_stream *stream_new(void) { return lc_accum_stream_new(); }

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  return lc_accum_sse_feed(st, data, len, cb, ud, on_event);
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  return lc_accum_sse_end(st, out, "[DONE]");
}

const struct lc_llm_adapter lc_llm_openai = {
    .name = "openai",
    .default_base_url = "https://api.openai.com/v1",
    .base_url_env = "OPENAI_BASE_URL",
    .api_key_env = "OPENAI_API_KEY",
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = lc_accum_stream_free,
};
