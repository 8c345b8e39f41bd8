/* llm_openai.c: adapter for OpenAI Chat Completions and the servers that
 * speak it (Groq, Together, OpenRouter, vLLM, llama.cpp, Ollama /v1, LM
 * Studio), including their quirks: no tool-call index (Ollama /v1), id and
 * name repeated in every chunk (OpenRouter), reasoning_content (llama.cpp),
 * usage in a final chunk without choices. */
#include <stddef.h>
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
 * history cost a node allocation per value on every call. The members that
 * stay the same between turns come before "messages", so a conversation's
 * next body extends the last one (llm.h, the body prefix cache). */

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

static int write_msg(struct lc_jsonw *w, const struct lc_llm_msg *m,
                     char *err, size_t errlen) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "role");
  lc_jsonw_cstr(w, lc_llm_role_name(m->role));
  lc_jsonw_key(w, "content");
  if (m->n_parts && m->role != LC_ROLE_ASSISTANT) {
    /* Parts: text and image_url entries (chat takes images in user
     * turns; a tool result with parts is sent the same way, which
     * compatible servers that refuse it answer with a 400). */
    lc_jsonw_arr(w);
    if (m->content) {
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "type");
      lc_jsonw_cstr(w, "text");
      lc_jsonw_key(w, "text");
      lc_jsonw_str(w, m->content, lc_accum_msg_len(m));
      lc_jsonw_obj_end(w);
    }
    for (size_t i = 0; i < m->n_parts; i++) {
      const struct lc_llm_part *p = &m->parts[i];
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "type");
      if (p->kind == LC_PART_IMAGE) {
        if (lc_llm_image_check(p, LC_PROV_OPENAI, err, errlen))
          return LC_EINVAL;
        lc_jsonw_cstr(w, "image_url");
        lc_jsonw_key(w, "image_url");
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "url");
        lc_accum_w_image_url(w, p);
        if (p->detail[0]) {
          lc_jsonw_key(w, "detail");
          lc_jsonw_cstr(w, p->detail);
        }
        lc_jsonw_obj_end(w);
      } else {
        lc_jsonw_cstr(w, "text");
        lc_jsonw_key(w, "text");
        lc_jsonw_str(w, p->text ? p->text : "", p->text ? p->text_len : 0);
      }
      lc_jsonw_obj_end(w);
    }
    lc_jsonw_arr_end(w);
  } else if (m->content)
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
  return 0;
}

/* Everything before "messages": what stays the same from turn to turn, so
 * a cached body (llm.h) is extended by appending messages. */
static void write_head(struct lc_jsonw *w, const struct lc_llm_request *req) {
  if (req->n_tools) {
    lc_jsonw_key(w, "tools");
    lc_accum_w_function_tools(w, req, 1);
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
  if (req->reasoning_effort && *req->reasoning_effort) {
    lc_jsonw_key(w, "reasoning_effort");
    lc_jsonw_cstr(w, req->reasoning_effort);
  }
  if (req->cache_key && *req->cache_key) {
    lc_jsonw_key(w, "prompt_cache_key");
    lc_jsonw_cstr(w, req->cache_key);
  }
  if (req->stream) {
    lc_jsonw_key(w, "stream");
    lc_jsonw_bool(w, 1);
    lc_jsonw_key(w, "stream_options");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "include_usage");
    lc_jsonw_bool(w, 1);
    lc_jsonw_obj_end(w);
  }
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (lc_llm_images_check(req, LC_PROV_OPENAI, err, errlen))
    return LC_EINVAL;
  int rc = lc_accum_chat_body(out, req, LC_PROV_OPENAI, write_head, write_msg,
                              err, errlen);
  if (rc)
    return rc;
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_openai.default_base_url;
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
    /* The body goes back to the prefix it came from (llm.h): the cast is
     * the cache's one write. */
    if (req->cache_wire)
      lc_llm_prefix_give_back((struct lc_llm_request *)req, &out->body);
    lc_llm_http_free(out);
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* Responses are read with the pull reader (jsonr.h), no cJSON tree. One
 * walk checks the whole text and notes where the values that matter start
 * (struct found); then those values are read where they are. Lookups take
 * a member's first occurrence and accept the same types as the tree walk
 * did, so answers and error messages are those of the cJSON version. */

#define NONE LC_JSONR_NONE

struct key {
  const char *s;
  size_t n;
};
#define KEY(s) {s, sizeof(s) - 1}

enum { K_ERROR, K_CHOICES, K_ID, K_MODEL, K_USAGE, K_N };
static const struct key top_keys[K_N] = {KEY("error"), KEY("choices"),
                                         KEY("id"), KEY("model"),
                                         KEY("usage")};
enum { C_INDEX, C_MESSAGE, C_DELTA, C_FINISH, C_N };
static const struct key choice_keys[C_N] = {
    KEY("index"), KEY("message"), KEY("delta"), KEY("finish_reason")};
enum { M_REASONING_CONTENT, M_REASONING, M_CONTENT, M_TOOL_CALLS, M_N };
static const struct key msg_keys[M_N] = {KEY("reasoning_content"),
                                         KEY("reasoning"), KEY("content"),
                                         KEY("tool_calls")};
enum { T_ID, T_FUNCTION, T_INDEX, T_NAME, T_ARGS, T_N };
static const struct key tc_keys[3] = {KEY("id"), KEY("function"),
                                      KEY("index")};
static const struct key fn_keys[2] = {KEY("name"), KEY("arguments")};
enum { U_PROMPT, U_COMPLETION, U_PDETAILS, U_CDETAILS, U_COST, U_CACHED,
       U_REASONING, U_N };
static const struct key usage_keys[5] = {
    KEY("prompt_tokens"), KEY("completion_tokens"),
    KEY("prompt_tokens_details"), KEY("completion_tokens_details"),
    KEY("cost")};
static const struct key cached_key[1] = {KEY("cached_tokens")};
static const struct key reasoning_key[1] = {KEY("reasoning_tokens")};

/* Where the values of one completion (or chunk) start, NONE if absent. */
struct found {
  int whole;          /* the choice's "message" (else its "delta") */
  size_t top[K_N];
  size_t choice;      /* the first choice with index 0 */
  size_t c[C_N];      /* its members */
  size_t m[M_N];      /* its message's (delta's) members */
  size_t (*tc)[T_N];  /* its tool calls, when tool_calls is an array */
  size_t ntc, cap_tc;
  int tc_bad;         /* an entry that is not an object ends the list */
  size_t u[U_N];
  struct lc_jsonr pt; /* point reads over the same text */
  /* Strings handed on as C strings, NUL-terminated. Sized once for the
   * whole text, twice over (see str_at), so it never moves and earlier
   * pointers stay valid. */
  struct lc_buf arena;
  int oom;
  size_t str_full; /* the last str_at string's decoded length (NULs kept) */
};

static void none(size_t *o, size_t n) {
  for (size_t i = 0; i < n; i++)
    o[i] = NONE;
}

static void found_init(struct found *f, const char *s, size_t n, int whole) {
  memset(f, 0, offsetof(struct found, pt));
  f->whole = whole;
  none(f->top, K_N);
  f->choice = NONE;
  none(f->c, C_N);
  none(f->m, M_N);
  none(f->u, U_N);
  lc_jsonr_init(&f->pt, s, n);
  lc_buf_init(&f->arena, 0);
  f->oom = 0;
}

static void found_free(struct found *f) {
  lc_free(f->tc);
  lc_buf_free(&f->arena);
}

/* Index of the current member's name in keys, -1 if none. */
static int key_of(const struct lc_jsonr *r, const struct key *keys, int n) {
  if (!r->key)
    return -1;
  for (int i = 0; i < n; i++)
    if (keys[i].n == r->klen && memcmp(keys[i].s, r->key, r->klen) == 0)
      return i;
  return -1;
}

/* Walks the members of the object just entered: where the first
 * occurrence of each keys[i] starts goes to offs[i]. sub(r, f, i) may read
 * that value (returns 0) or leave it (1) to be skipped, like the rest. */
static int members(struct lc_jsonr *r, struct found *f, const struct key *keys,
                   int n, size_t *offs,
                   int (*sub)(struct lc_jsonr *, struct found *, int)) {
  int rc;
  while ((rc = lc_jsonr_member(r)) == 1) {
    int k = key_of(r, keys, n);
    if (k >= 0 && offs[k] == NONE) {
      lc_jsonr_peek(r); /* past the whitespace */
      offs[k] = r->pos;
      if (sub && (rc = sub(r, f, k)) != 1) {
        if (rc < 0)
          return rc;
        continue; /* read by sub */
      }
    }
    if (lc_jsonr_skip(r))
      return r->err;
  }
  return rc;
}

static enum lc_jsonr_type type_at(struct found *f, size_t off) {
  if (off == NONE)
    return LC_JSONR_BAD;
  lc_jsonr_seek(&f->pt, off);
  return lc_jsonr_peek(&f->pt);
}

/* 1 and *v for a number at off. */
static int num_at(struct found *f, size_t off, double *v) {
  return type_at(f, off) == LC_JSONR_NUMBER && !lc_jsonr_num(&f->pt, v);
}

/* lc_accum_long on the value at off. */
static long long_at(struct found *f, size_t off, long dflt) {
  double v;
  if (!num_at(f, off, &v) || !(v >= -9e15 && v <= 9e15))
    return dflt; /* not a number, NaN or absurd */
  return (long)v;
}

/* ---- the walk ---- */

static int sub_fn(struct lc_jsonr *r, struct found *f, int k) {
  (void)r, (void)f, (void)k;
  return 1;
}

static int sub_tc(struct lc_jsonr *r, struct found *f, int k) {
  if (k != T_FUNCTION || lc_jsonr_peek(r) != LC_JSONR_OBJECT)
    return 1;
  if (lc_jsonr_obj(r))
    return r->err;
  return members(r, f, fn_keys, 2, &f->tc[f->ntc - 1][T_NAME], sub_fn);
}

static int tool_call_list(struct lc_jsonr *r, struct found *f) {
  int rc;
  if (lc_jsonr_arr(r))
    return r->err;
  while ((rc = lc_jsonr_item(r)) == 1) {
    if (f->tc_bad || lc_jsonr_peek(r) != LC_JSONR_OBJECT) {
      f->tc_bad = 1;
      if (lc_jsonr_skip(r))
        return r->err;
      continue;
    }
    if (f->ntc == f->cap_tc) {
      size_t cap = f->cap_tc ? 2 * f->cap_tc : 4;
      void *p = lc_realloc(f->tc, cap * sizeof *f->tc);
      if (!p)
        return LC_ENOMEM;
      f->tc = p;
      f->cap_tc = cap;
    }
    size_t *t = f->tc[f->ntc++];
    none(t, T_N);
    if (lc_jsonr_obj(r) || (rc = members(r, f, tc_keys, 3, t, sub_tc)) < 0)
      return r->err ? r->err : rc;
  }
  return rc;
}

static int sub_msg(struct lc_jsonr *r, struct found *f, int k) {
  if (k != M_TOOL_CALLS || lc_jsonr_peek(r) != LC_JSONR_ARRAY)
    return 1;
  return tool_call_list(r, f);
}

static int sub_choice(struct lc_jsonr *r, struct found *f, int k) {
  if (k != (f->whole ? C_MESSAGE : C_DELTA) ||
      lc_jsonr_peek(r) != LC_JSONR_OBJECT)
    return 1;
  if (lc_jsonr_obj(r))
    return r->err;
  return members(r, f, msg_keys, M_N, f->m, sub_msg);
}

/* choices, an array (or an object: cJSON's iteration took its members
 * too): finds the first element whose "index" is 0 or missing. */
static int choice_list(struct lc_jsonr *r, struct found *f) {
  int arr = lc_jsonr_peek(r) == LC_JSONR_ARRAY, rc;
  if (arr ? lc_jsonr_arr(r) : lc_jsonr_obj(r))
    return r->err;
  while ((rc = arr ? lc_jsonr_item(r) : lc_jsonr_member(r)) == 1) {
    enum lc_jsonr_type t = lc_jsonr_peek(r);
    size_t at = r->pos;
    if (f->choice != NONE || t != LC_JSONR_OBJECT) {
      if (lc_jsonr_skip(r))
        return r->err;
      if (f->choice == NONE)
        f->choice = at; /* not an object: index 0, nothing in it */
      continue;
    }
    if (lc_jsonr_obj(r) || (rc = members(r, f, choice_keys, C_N, f->c,
                                         sub_choice)) < 0)
      return r->err ? r->err : rc;
    if (long_at(f, f->c[C_INDEX], 0) == 0) {
      f->choice = at;
    } else { /* another choice (n > 1): forget what it held */
      none(f->c, C_N);
      none(f->m, M_N);
      f->ntc = 0;
      f->tc_bad = 0;
    }
  }
  return rc;
}

static int sub_usage(struct lc_jsonr *r, struct found *f, int k) {
  if ((k != U_PDETAILS && k != U_CDETAILS) ||
      lc_jsonr_peek(r) != LC_JSONR_OBJECT)
    return 1;
  if (lc_jsonr_obj(r))
    return r->err;
  return k == U_PDETAILS
             ? members(r, f, cached_key, 1, &f->u[U_CACHED], NULL)
             : members(r, f, reasoning_key, 1, &f->u[U_REASONING], NULL);
}

static int sub_top(struct lc_jsonr *r, struct found *f, int k) {
  enum lc_jsonr_type t = lc_jsonr_peek(r);
  if (k == K_CHOICES && (t == LC_JSONR_ARRAY || t == LC_JSONR_OBJECT))
    return choice_list(r, f);
  if (k == K_USAGE && t == LC_JSONR_OBJECT) {
    if (lc_jsonr_obj(r))
      return r->err;
    return members(r, f, usage_keys, 5, f->u, sub_usage);
  }
  return 1;
}

/* lc_jsonr_walk_fn over a completion or chunk. */
static int walk(struct lc_jsonr *r, void *ud) {
  return members(r, ud, top_keys, K_N, ((struct found *)ud)->top, sub_top);
}

/* ---- reading what the walk found ---- */

/* The string at off, or NULL when absent or not a string. As cJSON's
 * valuestring was, it ends at a NUL (from \u0000). cstr: copied to the
 * arena and NUL-terminated; else it may point into the text. */
static const char *str_at(struct found *f, size_t off, size_t *len, int cstr) {
  if (type_at(f, off) != LC_JSONR_STRING)
    return NULL;
  struct lc_buf *b = &f->arena;
  /* Each string is read at most once, so all of them take at most n bytes
   * (decoded + NUL <= escaped + quotes); this one at most n - off + 1. */
  size_t room = f->pt.n - off + 1;
  if (!b->data && lc_buf_reserve(b, 2 * f->pt.n + 2))
    room = (size_t)-1;
  if (b->len + room > b->cap) { /* out of memory (never out of room) */
    f->oom = 1;
    return NULL;
  }
  const char *s;
  size_t n;
  char *mark = b->data + b->len;
  if (lc_jsonr_str(&f->pt, b, &s, &n))
    return NULL; /* checked already: cannot happen */
  f->str_full = n;
  if (s == mark) { /* decoded: may hold a NUL */
    n = strnlen(s, n);
  } else if (cstr) {
    memcpy(mark, s, n);
    b->len += n;
    s = mark;
  }
  if (cstr)
    b->data[b->len++] = '\0';
  *len = n;
  return s;
}

static const char *cstr_at(struct found *f, size_t off) {
  size_t n;
  return str_at(f, off, &n, 1);
}

static void usage(struct lc_llm_accum *a, struct found *f) {
  if (type_at(f, f->top[K_USAGE]) != LC_JSONR_OBJECT)
    return;
  const size_t *u = f->u;
  a->usage.input = long_at(f, u[U_PROMPT], a->usage.input);
  a->usage.output = long_at(f, u[U_COMPLETION], a->usage.output);
  a->usage.cached = long_at(f, u[U_CACHED], a->usage.cached);
  a->usage.reasoning = long_at(f, u[U_REASONING], a->usage.reasoning);
  double cost;
  if (num_at(f, u[U_COST], &cost)) {
    a->usage.cost = cost;
    a->usage.has_cost = 1;
  }
}

/* Which accumulator slot a tool_calls[] entry belongs to. */
static int call_key(struct lc_llm_accum *a, struct found *f, size_t ix_off,
                    const char *id) {
  double ix;
  if (num_at(f, ix_off, &ix) && ix >= 0 && ix < 1e6) {
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
static int args_value(struct lc_llm_accum *a, struct found *f, int key,
                      size_t off) {
  lc_jsonr_seek(&f->pt, off);
  lc_jsonr_skip(&f->pt);
  char err[96];
  cJSON *v = lc_json_parse(f->pt.s + off, f->pt.pos - off, err, sizeof err);
  char *s = v ? lc_accum_print(v) : NULL;
  cJSON_Delete(v);
  int rc = s ? lc_accum_tool_args(a, key, s, strlen(s)) : LC_ENOMEM;
  lc_free(s);
  return rc;
}

static int tool_calls(struct lc_llm_accum *a, struct found *f, int whole) {
  for (size_t i = 0; i < f->ntc; i++) {
    const size_t *t = f->tc[i];
    const char *id = cstr_at(f, t[T_ID]);
    /* name and arguments were found only in a "function" object */
    const char *name = cstr_at(f, t[T_NAME]);
    size_t name_full = name ? f->str_full : 0;
    /* A whole message lists each call once: its position is its key. */
    int key = whole ? (int)i : call_key(a, f, t[T_INDEX], id);
    if (lc_accum_tool_start_n(a, key, id, name, name_full))
      return LC_EINVAL;
    enum lc_jsonr_type ty = type_at(f, t[T_ARGS]);
    if (ty == LC_JSONR_STRING) {
      const char *s = cstr_at(f, t[T_ARGS]);
      if (s && lc_accum_tool_args(a, key, s, strlen(s)))
        return LC_EINVAL;
    } else if (ty != LC_JSONR_BAD && ty != LC_JSONR_NULL) {
      if (args_value(a, f, key, t[T_ARGS])) /* an object instead of text */
        return LC_EINVAL;
    }
  }
  if (f->tc_bad)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "tool call is not an object");
  return 0;
}

/* One choice's message (whole) or delta (stream). */
static int choice_part(struct lc_llm_accum *a, struct found *f, int whole) {
  const size_t *m = f->m;
  size_t n;
  const char *s;
  if ((s = str_at(f, m[M_REASONING_CONTENT], &n, 0)) ||
      (s = str_at(f, m[M_REASONING], &n, 0)))
    if (lc_accum_reasoning(a, s, n))
      return LC_EINVAL;
  if ((s = str_at(f, m[M_CONTENT], &n, 0)) && lc_accum_text(a, s, n))
    return LC_EINVAL;
  if (type_at(f, m[M_TOOL_CALLS]) == LC_JSONR_ARRAY &&
      tool_calls(a, f, whole))
    return LC_EINVAL;
  return a->err ? LC_EINVAL : 0;
}

/* An "error" member that is not null (some servers send "error": null). */
static int has_error(struct found *f) {
  enum lc_jsonr_type t = type_at(f, f->top[K_ERROR]);
  return t != LC_JSONR_BAD && t != LC_JSONR_NULL;
}

static void meta(struct lc_llm_accum *a, struct found *f) {
  if (!a->id)
    lc_accum_set_once(&a->id, cstr_at(f, f->top[K_ID]));
  if (!a->model)
    lc_accum_set_once(&a->model, cstr_at(f, f->top[K_MODEL]));
}

static void finish(struct lc_llm_accum *a, struct found *f) {
  const char *fr = cstr_at(f, f->c[C_FINISH]);
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
  struct found f;
  found_init(&f, body, len, 1);
  if (lc_accum_walk_body(body, len, "chat completion", walk, &f, out)) {
    found_free(&f);
    return LC_EINVAL;
  }
  struct lc_llm_accum a;
  lc_accum_init(&a);
  if (has_error(&f)) {
    fail_error(&a, body, len);
  } else if (type_at(&f, f.top[K_CHOICES]) != LC_JSONR_ARRAY) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat completion: no choices array");
  } else if (f.choice == NONE) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed chat completion: no choice");
  } else {
    meta(&a, &f);
    if (type_at(&f, f.c[C_MESSAGE]) != LC_JSONR_OBJECT)
      lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                    "malformed chat completion: choice has no message");
    else
      choice_part(&a, &f, 1);
    finish(&a, &f);
    usage(&a, &f);
  }
  if (f.oom)
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL, "out of memory");
  found_free(&f);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  return rc;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  lc_accum_classify(status, body, len, out);
  lc_llm_response_scrub(out); /* the body may echo the key */
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
  int is_obj;
  int is_err_event = ev->event_len == 5 && memcmp(ev->event, "error", 5) == 0;
  struct found f;
  found_init(&f, ev->data, ev->data_len, 0);
  if (lc_jsonr_walk(ev->data, ev->data_len, walk, &f, &is_obj, err,
                    sizeof err)) {
    found_free(&f);
    if (is_err_event)
      return lc_accum_fail(a, LC_LLM_ESERVER, NULL,
                           "error event in stream: %.200s", ev->data);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream chunk: %s",
                         err);
  }
  int rc = 0;
  if (is_err_event || (is_obj && has_error(&f))) {
    rc = fail_error(a, ev->data, ev->data_len);
  } else if (!is_obj) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                       "stream chunk is not an object");
  } else {
    meta(a, &f);
    if (f.choice != NONE) {
      if (type_at(&f, f.c[C_DELTA]) == LC_JSONR_OBJECT)
        rc = choice_part(a, &f, 0);
      finish(a, &f);
    }
    usage(a, &f);
  }
  if (f.oom)
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  found_free(&f);
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
