/* llm_anthropic.c: adapter for the Anthropic Messages API: system prompt at
 * the top level, tool_use / tool_result content blocks, SSE events with
 * names (message_start ... message_stop, ping, error). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "jsonw.h"
#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

#define DEFAULT_MAX_TOKENS 4096

/* ---- request ---- */

/* The body is written straight to text (jsonw.h), in the member order the
 * cJSON tree used to have. */

/* Adds "cache_control" to the block just written: the writer's buffer
 * ends with that block's '}', which is taken back. */
static void cache_mark(struct lc_jsonw *w) {
  if (w->err || !w->b->len || w->b->data[w->b->len - 1] != '}')
    return;
  w->b->len--;
  lc_buf_puts(w->b, ",\"cache_control\":{\"type\":\"ephemeral\"}}");
}

static void text_block(struct lc_jsonw *w, const char *s, size_t n) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "text");
  lc_jsonw_key(w, "text");
  lc_jsonw_str(w, s, n);
  lc_jsonw_obj_end(w);
}

/* An image block: base64 bytes or a URL source. */
static void image_block(struct lc_jsonw *w, const struct lc_llm_part *p) {
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  lc_jsonw_cstr(w, "image");
  lc_jsonw_key(w, "source");
  lc_jsonw_obj(w);
  lc_jsonw_key(w, "type");
  if (p->url) {
    lc_jsonw_cstr(w, "url");
    lc_jsonw_key(w, "url");
    lc_jsonw_cstr(w, p->url);
  } else {
    lc_jsonw_cstr(w, "base64");
    lc_jsonw_key(w, "media_type");
    lc_jsonw_cstr(w, p->media_type);
    lc_jsonw_key(w, "data");
    lc_accum_w_base64(w, "", p->data, p->data_len);
  }
  lc_jsonw_obj_end(w);
  lc_jsonw_obj_end(w);
}

/* A message's content blocks (into an open array): its text, then its
 * parts; with cache, the last block carries an ephemeral cache_control. */
static int content_blocks(struct lc_jsonw *w, const struct lc_llm_msg *m,
                          int cache, char *err, size_t errlen) {
  size_t tlen = lc_accum_msg_len(m);
  if (m->content && (tlen || !m->n_parts)) {
    text_block(w, m->content, tlen);
    if (cache && !m->n_parts)
      cache_mark(w);
  }
  for (size_t i = 0; i < m->n_parts; i++) {
    const struct lc_llm_part *p = &m->parts[i];
    if (p->kind == LC_PART_IMAGE) {
      if (lc_llm_image_check(p, LC_PROV_ANTHROPIC, err, errlen))
        return LC_EINVAL;
      image_block(w, p);
    } else {
      text_block(w, p->text ? p->text : "", p->text ? p->text_len : 0);
    }
    if (cache && i + 1 == m->n_parts)
      cache_mark(w);
  }
  return 0;
}

/* The thinking blocks of a turn (a JSON array kept from its response). */
static int write_thinking(struct lc_jsonw *w, const char *state, char *err,
                          size_t errlen) {
  char perr[96];
  cJSON *a = lc_json_parse(state, strlen(state), perr, sizeof perr);
  if (!cJSON_IsArray(a)) {
    cJSON_Delete(a);
    snprintf(err, errlen, "reasoning_state is not a JSON array");
    return LC_EINVAL;
  }
  const cJSON *b;
  cJSON_ArrayForEach(b, a) {
    if (cJSON_IsObject(b))
      lc_jsonw_cjson(w, b);
  }
  cJSON_Delete(a);
  return 0;
}

/* Closes the user message that collects tool results, if one is open. */
static void close_results(struct lc_jsonw *w, int *open) {
  if (!*open)
    return;
  lc_jsonw_arr_end(w);
  lc_jsonw_obj_end(w);
  *open = 0;
}

static int write_msgs(const struct lc_llm_request *req, struct lc_jsonw *w,
                      struct lc_buf *sys, char *err, size_t errlen) {
  /* open: the last message written is a user turn whose content array is
   * still open, so tool results (and a user text after them) join it:
   * roles must alternate. */
  int open = 0;
  lc_jsonw_key(w, "messages");
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_msgs; i++) {
    const struct lc_llm_msg *m = &req->msgs[i];
    const char *text = m->content ? m->content : "";
    size_t tlen = lc_accum_msg_len(m);
    if (m->role == LC_ROLE_SYSTEM) { /* top-level, several joined */
      if ((sys->len && lc_buf_puts(sys, "\n\n")) ||
          lc_buf_append(sys, text, tlen))
        return LC_ENOMEM;
    } else if (m->role == LC_ROLE_USER) {
      int cache = req->cache_control && i + 1 == req->n_msgs;
      if (m->n_parts || cache) {
        if (!open) {
          lc_jsonw_obj(w);
          lc_jsonw_key(w, "role");
          lc_jsonw_cstr(w, "user");
          lc_jsonw_key(w, "content");
          lc_jsonw_arr(w);
        }
        if (content_blocks(w, m, cache, err, errlen))
          return LC_EINVAL;
        if (!open) {
          lc_jsonw_arr_end(w);
          lc_jsonw_obj_end(w);
        }
      } else if (open) {
        text_block(w, text, tlen);
      } else {
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "role");
        lc_jsonw_cstr(w, "user");
        lc_jsonw_key(w, "content");
        lc_jsonw_str(w, text, tlen);
        lc_jsonw_obj_end(w);
      }
    } else if (m->role == LC_ROLE_ASSISTANT) {
      if (!m->n_tool_calls && !tlen)
        continue; /* Anthropic rejects empty */
      close_results(w, &open);
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "role");
      lc_jsonw_cstr(w, "assistant");
      lc_jsonw_key(w, "content");
      /* Thinking blocks go back first, unchanged (their signature is
       * checked by the API), when the turn had tool calls. */
      int think = m->reasoning_state && m->n_tool_calls &&
                  m->reasoning_prov == (signed char)LC_PROV_ANTHROPIC;
      if (!m->n_tool_calls) {
        lc_jsonw_str(w, text, tlen);
      } else {
        lc_jsonw_arr(w);
        if (think && write_thinking(w, m->reasoning_state, err, errlen))
          return LC_EINVAL;
        if (tlen)
          text_block(w, text, tlen);
        for (size_t k = 0; k < m->n_tool_calls; k++) {
          const struct lc_llm_tool_call *c = &m->tool_calls[k];
          lc_jsonw_obj(w);
          lc_jsonw_key(w, "type");
          lc_jsonw_cstr(w, "tool_use");
          lc_jsonw_key(w, "id");
          lc_jsonw_cstr(w, c->id);
          lc_jsonw_key(w, "name");
          lc_jsonw_cstr(w, c->name);
          lc_jsonw_key(w, "input");
          if (lc_accum_w_args_object(w, c, err, errlen))
            return LC_EINVAL;
          lc_jsonw_obj_end(w);
        }
        lc_jsonw_arr_end(w);
      }
      lc_jsonw_obj_end(w);
    } else { /* tool result: consecutive ones share one user message */
      if (!open) {
        lc_jsonw_obj(w);
        lc_jsonw_key(w, "role");
        lc_jsonw_cstr(w, "user");
        lc_jsonw_key(w, "content");
        lc_jsonw_arr(w);
        open = 1;
      }
      lc_jsonw_obj(w);
      lc_jsonw_key(w, "type");
      lc_jsonw_cstr(w, "tool_result");
      lc_jsonw_key(w, "tool_use_id");
      lc_jsonw_cstr(w, m->tool_call_id);
      lc_jsonw_key(w, "content");
      if (m->n_parts) {
        lc_jsonw_arr(w);
        if (content_blocks(w, m, 0, err, errlen))
          return LC_EINVAL;
        lc_jsonw_arr_end(w);
      } else {
        lc_jsonw_str(w, text, tlen);
      }
      if (m->is_error) {
        lc_jsonw_key(w, "is_error");
        lc_jsonw_bool(w, 1);
      }
      lc_jsonw_obj_end(w);
      if (req->cache_control && i + 1 == req->n_msgs)
        cache_mark(w);
    }
  }
  close_results(w, &open);
  lc_jsonw_arr_end(w);
  if (sys->len) {
    lc_jsonw_key(w, "system");
    if (req->cache_control) {
      lc_jsonw_arr(w);
      text_block(w, sys->data, sys->len);
      cache_mark(w);
      lc_jsonw_arr_end(w);
    } else {
      lc_jsonw_str(w, sys->data, sys->len);
    }
  }
  return 0;
}

/* The "tools" array, through the wire cache (llm.h). Messages are not
 * cached here: tool results merge into one user turn, so a message's bytes
 * depend on its neighbours. The cast is the cache's one write. */
static void write_tools(struct lc_jsonw *w, const struct lc_llm_request *req) {
  /* A cache breakpoint on the last tool is not kept in the wire cache. */
  int mark = req->cache_control;
  if (!mark && lc_llm_wire_put(w, &req->tools_wire, LC_PROV_ANTHROPIC))
    return;
  size_t at = lc_jsonw_value_at(w);
  lc_jsonw_arr(w);
  for (size_t i = 0; i < req->n_tools; i++) {
    const struct lc_llm_tool *t = &req->tools[i];
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "name");
    lc_jsonw_cstr(w, t->name);
    if (t->description) {
      lc_jsonw_key(w, "description");
      lc_jsonw_cstr(w, t->description);
    }
    lc_jsonw_key(w, "input_schema");
    lc_accum_w_schema(w, t, "{\"type\":\"object\"}");
    lc_jsonw_obj_end(w);
    if (mark && i + 1 == req->n_tools)
      cache_mark(w);
  }
  lc_jsonw_arr_end(w);
  if (req->cache_wire && !mark)
    lc_llm_wire_keep(&((struct lc_llm_request *)req)->tools_wire,
                     LC_PROV_ANTHROPIC, w, at);
}

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  struct lc_buf body, sys;
  lc_buf_init(&sys, 0);
  struct lc_jsonw jw, *w = &jw;
  if (lc_accum_body_begin(out, req, &body, w, err, errlen))
    return LC_EINVAL;
  if (lc_llm_images_check(req, LC_PROV_ANTHROPIC, err, errlen)) {
    lc_buf_free(&body);
    return LC_EINVAL;
  }
  lc_jsonw_key(w, "max_tokens");
  lc_jsonw_num(w, (req->set & LC_SET_MAX_TOKENS) ? req->max_tokens
                                                 : DEFAULT_MAX_TOKENS);
  int mrc = write_msgs(req, w, &sys, err, errlen);
  lc_buf_free(&sys);
  if (mrc) {
    lc_buf_free(&body);
    if (mrc == LC_ENOMEM)
      snprintf(err, errlen, "out of memory");
    return mrc;
  }
  /* tool_choice "none" is expressed by the choice, the tools stay listed so
   * that earlier tool_use blocks still refer to known tools. */
  if (req->n_tools) {
    lc_jsonw_key(w, "tools");
    write_tools(w, req);
  }
  if (req->tool_choice != LC_TOOL_CHOICE_AUTO) {
    lc_jsonw_key(w, "tool_choice");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    if (req->tool_choice == LC_TOOL_CHOICE_NONE) {
      lc_jsonw_cstr(w, "none");
    } else if (req->tool_choice == LC_TOOL_CHOICE_REQUIRED) {
      lc_jsonw_cstr(w, "any");
    } else {
      lc_jsonw_cstr(w, "tool");
      lc_jsonw_key(w, "name");
      lc_jsonw_cstr(w, req->tool_choice_name);
    }
    lc_jsonw_obj_end(w);
  }
  if (req->set & LC_SET_TEMPERATURE) {
    lc_jsonw_key(w, "temperature");
    lc_jsonw_num(w, req->temperature);
  }
  if (req->set & LC_SET_TOP_P) {
    lc_jsonw_key(w, "top_p");
    lc_jsonw_num(w, req->top_p);
  }
  if (req->set & LC_SET_TOP_K) {
    lc_jsonw_key(w, "top_k");
    lc_jsonw_num(w, req->top_k);
  }
  /* seed: the Messages API has none, so it is not sent. */
  if (req->n_stop) {
    lc_jsonw_key(w, "stop_sequences");
    lc_jsonw_arr(w);
    for (size_t i = 0; i < req->n_stop; i++)
      lc_jsonw_cstr(w, req->stop[i]);
    lc_jsonw_arr_end(w);
  }
  /* Structured outputs (beta): a schema is enforced; plain "JSON" has no
   * Anthropic equivalent and is left to the prompt. */
  int beta = req->format == LC_FORMAT_JSON_SCHEMA;
  if (beta) {
    lc_jsonw_key(w, "output_format");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "json_schema");
    lc_jsonw_key(w, "schema");
    if (req->response_schema)
      lc_jsonw_cjson(w, req->response_schema);
    else
      lc_jsonw_raw(w, "{}", 2);
    lc_jsonw_obj_end(w);
  }
  if (req->thinking_budget > 0) {
    lc_jsonw_key(w, "thinking");
    lc_jsonw_obj(w);
    lc_jsonw_key(w, "type");
    lc_jsonw_cstr(w, "enabled");
    lc_jsonw_key(w, "budget_tokens");
    lc_jsonw_num(w, req->thinking_budget);
    lc_jsonw_obj_end(w);
  }
  if (req->stream) {
    lc_jsonw_key(w, "stream");
    lc_jsonw_bool(w, 1);
  }
  lc_jsonw_obj_end(w);
  const char *base = req->base_url && *req->base_url
                         ? req->base_url
                         : lc_llm_anthropic.default_base_url;
  int rc = lc_jsonw_finish(w);
  if (!rc)
    rc = lc_accum_http_body_buf(out, &body);
  lc_buf_free(&body);
  if (!rc)
    rc = lc_accum_http_url(out, base, "/v1/messages");
  if (!rc)
    rc = lc_accum_http_header(out, "Content-Type: application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "Accept: %s",
                              req->stream ? "text/event-stream"
                                          : "application/json");
  if (!rc)
    rc = lc_accum_http_header(out, "anthropic-version: 2023-06-01");
  if (!rc && beta)
    rc = lc_accum_http_header(out,
                              "anthropic-beta: structured-outputs-2025-11-13");
  if (!rc && req->api_key && *req->api_key)
    rc = lc_accum_http_header(out, "x-api-key: %s", req->api_key);
  if (rc) {
    lc_llm_http_free(out);
    snprintf(err, errlen,
             rc == LC_ETOOBIG ? "header too long" : "out of memory");
  }
  return rc;
}

/* ---- response ---- */

/* input counts every prompt token, cached ones included (llm.h). */
static void usage(struct lc_llm_accum *a, const cJSON *u) {
  if (!cJSON_IsObject(u))
    return;
  long in = lc_accum_long(u, "input_tokens", -1);
  long rd = lc_accum_long(u, "cache_read_input_tokens", 0);
  long wr = lc_accum_long(u, "cache_creation_input_tokens", 0);
  if (in >= 0) {
    a->usage.input = in + rd + wr;
    a->usage.cached = rd;
    a->usage.cache_write = wr;
  }
  a->usage.output = lc_accum_long(u, "output_tokens", a->usage.output);
}

static int is_error(const cJSON *root) {
  const char *t = lc_accum_str(root, "type");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  return (t && strcmp(t, "error") == 0) || (e && !cJSON_IsNull(e));
}

static void stop_reason(struct lc_llm_accum *a, const cJSON *o) {
  const char *sr = lc_accum_str(o, "stop_reason");
  if (sr)
    lc_accum_finish(a, lc_accum_map_finish(sr), sr);
}

static int keep_block(cJSON **state, const cJSON *b) {
  if (!*state && !(*state = cJSON_CreateArray()))
    return LC_ENOMEM;
  cJSON *c = cJSON_Duplicate(b, 1);
  if (!c || !cJSON_AddItemToArray(*state, c)) {
    cJSON_Delete(c);
    return LC_ENOMEM;
  }
  return 0;
}

static int parse(const char *body, size_t len, struct lc_llm_response *out) {
  cJSON *root = lc_accum_parse_body(body, len, "message", out);
  if (!root)
    return LC_EINVAL;
  cJSON *state = NULL;
  struct lc_llm_accum a;
  lc_accum_init(&a);
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
  if (is_error(root)) {
    lc_accum_fail_json(&a, root);
  } else if (!cJSON_IsArray(content)) {
    lc_accum_fail(&a, LC_LLM_EBADRESP, NULL,
                  "malformed message: no content array");
  } else {
    lc_accum_set_once(&a.id, lc_accum_str(root, "id"));
    lc_accum_set_once(&a.model, lc_accum_str(root, "model"));
    const cJSON *b;
    int i = 0;
    cJSON_ArrayForEach(b, content) {
      const char *type = lc_accum_str(b, "type");
      const char *s;
      if (!type)
        continue;
      /* Thinking blocks (with their signature) are what a tool-use turn
       * must send back: kept whole as the reasoning state. */
      if ((strcmp(type, "thinking") == 0 ||
           strcmp(type, "redacted_thinking") == 0) &&
          keep_block(&state, b))
        lc_accum_fail(&a, LC_LLM_EBADRESP, NULL, "out of memory");
      if (strcmp(type, "text") == 0 && (s = lc_accum_str(b, "text"))) {
        lc_accum_text(&a, s, strlen(s));
      } else if (strcmp(type, "thinking") == 0 &&
                 (s = lc_accum_str(b, "thinking"))) {
        lc_accum_reasoning(&a, s, strlen(s));
      } else if (strcmp(type, "tool_use") == 0) {
        lc_accum_tool_start(&a, i, lc_accum_str(b, "id"),
                            lc_accum_str(b, "name"));
        char *args =
            lc_accum_print(cJSON_GetObjectItemCaseSensitive(b, "input"));
        if (args)
          lc_accum_tool_args(&a, i, args, strlen(args));
        lc_free(args);
      }
      i++;
    }
    stop_reason(&a, root);
    usage(&a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  }
  cJSON_Delete(root);
  int rc = lc_accum_build(&a, out);
  lc_accum_free(&a);
  if (!rc && state) {
    char *p = cJSON_PrintUnformatted(state);
    if (p && (out->reasoning_state = lc_strdup(p)) == NULL)
      rc = LC_ENOMEM;
    cJSON_free(p);
  }
  cJSON_Delete(state);
  if (rc == LC_ENOMEM) rc = lc_llm_response_nomem(out);
  return rc;
}

static void parse_error(int status, const char *body, size_t len,
                        struct lc_llm_response *out) {
  out->http_status = status;
  lc_accum_classify(status, body, len, out);
  lc_llm_response_scrub(out); /* the body may echo the key */
}

/* ---- streaming ---- */

/* The thinking blocks of a stream, assembled from their deltas: a turn
 * with tool use must send them back whole, signature included. */
struct an_think {
  int index;
  int redacted;
  struct lc_buf thinking, signature;
  char *data; /* redacted_thinking's opaque data */
};

struct an_stream {
  struct lc_llm_stream base; /* first: lc_accum_* take it */
  struct an_think *blocks;
  size_t n_blocks;
};

static struct an_think *think_of(struct an_stream *s, int index) {
  for (size_t i = 0; i < s->n_blocks; i++)
    if (s->blocks[i].index == index)
      return &s->blocks[i];
  return NULL;
}

static int think_start(struct an_stream *s, int index, const cJSON *b,
                       int redacted) {
  struct lc_llm_accum *a = &s->base.acc;
  if (think_of(s, index))
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "block %d started twice", index);
  /* Found by a linear search per delta: bounded, so never quadratic. */
  if (s->n_blocks >= 1024)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "more than 1024 thinking blocks");
  void *p = lc_realloc(s->blocks, (s->n_blocks + 1) * sizeof *s->blocks);
  if (!p)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory");
  s->blocks = p;
  struct an_think *t = &s->blocks[s->n_blocks++];
  memset(t, 0, sizeof *t);
  t->index = index;
  t->redacted = redacted;
  lc_buf_init(&t->thinking, LC_ACCUM_MAX_TEXT);
  lc_buf_init(&t->signature, LC_ACCUM_MAX_TEXT);
  const char *v;
  int rc = 0;
  if (redacted && (v = lc_accum_str(b, "data")) && !(t->data = lc_strdup(v)))
    rc = LC_ENOMEM;
  if (!redacted && (v = lc_accum_str(b, "signature")) && *v)
    rc = lc_buf_puts(&t->signature, v);
  return rc ? lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "out of memory") : 0;
}

static void thinks_free(struct an_stream *s) {
  for (size_t i = 0; i < s->n_blocks; i++) {
    lc_buf_free(&s->blocks[i].thinking);
    lc_buf_free(&s->blocks[i].signature);
    lc_free(s->blocks[i].data);
  }
  lc_free(s->blocks);
  s->blocks = NULL;
  s->n_blocks = 0;
}

/* The assembled blocks as the reasoning state (JSON array text). */
static int thinks_state(struct an_stream *s, struct lc_llm_response *out) {
  if (!s->n_blocks || out->err)
    return 0;
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < s->n_blocks; i++) {
    const struct an_think *t = &s->blocks[i];
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddItemToArray(a, b)) {
      cJSON_Delete(b);
      cJSON_Delete(a);
      a = NULL;
      break;
    }
    if (t->redacted) {
      cJSON_AddStringToObject(b, "type", "redacted_thinking");
      cJSON_AddStringToObject(b, "data", t->data ? t->data : "");
    } else {
      cJSON_AddStringToObject(b, "type", "thinking");
      cJSON_AddStringToObject(b, "thinking", t->thinking.data ? t->thinking.data : "");
      cJSON_AddStringToObject(b, "signature", t->signature.data ? t->signature.data : "");
    }
  }
  char *p = a ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  if (p)
    out->reasoning_state = lc_strdup(p);
  cJSON_free(p);
  return out->reasoning_state ? 0 : LC_ENOMEM;
}

/* The stream whose accumulator a is (only streams call the block
 * handlers; an_stream starts with its lc_llm_stream). */
static struct an_stream *stream_of(struct lc_llm_accum *a) {
  return (struct an_stream *)(void *)((char *)a - offsetof(struct lc_llm_stream, acc));
}

static int block_start(struct lc_llm_accum *a, const cJSON *root) {
  int ix = (int)lc_accum_long(root, "index", 0);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "content_block");
  const char *type = lc_accum_str(b, "type"), *s;
  if (!type)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                         "content block without a type");
  if (strcmp(type, "tool_use") == 0)
    return lc_accum_tool_start(a, ix, lc_accum_str(b, "id"),
                               lc_accum_str(b, "name"));
  /* Blocks may open with some content already. */
  if (strcmp(type, "text") == 0 && (s = lc_accum_str(b, "text")))
    return lc_accum_text(a, s, strlen(s));
  struct an_stream *st = stream_of(a);
  if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0) {
    int redacted = type[0] == 'r';
    if (think_start(st, ix, b, redacted))
      return LC_EINVAL;
    if (!redacted && (s = lc_accum_str(b, "thinking")) && *s) {
      if (lc_buf_puts(&think_of(st, ix)->thinking, s))
        return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "thinking over the size limit");
      return lc_accum_reasoning(a, s, strlen(s));
    }
  }
  return 0;
}

static int block_delta(struct lc_llm_accum *a, const cJSON *root) {
  int ix = (int)lc_accum_long(root, "index", 0);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
  const char *type = lc_accum_str(d, "type"), *s;
  if (!type)
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "delta without a type");
  if (strcmp(type, "text_delta") == 0 && (s = lc_accum_str(d, "text")))
    return lc_accum_text(a, s, strlen(s));
  if (strcmp(type, "input_json_delta") == 0 &&
      (s = lc_accum_str(d, "partial_json"))) {
    if (!lc_accum_call_by_key(a, ix))
      return lc_accum_fail(
          a, LC_LLM_EBADRESP, NULL,
          "input_json_delta for block %d, which is not a tool_use", ix);
    return lc_accum_tool_args(a, ix, s, strlen(s));
  }
  struct an_stream *st = stream_of(a);
  int sig = strcmp(type, "signature_delta") == 0;
  if ((sig && (s = lc_accum_str(d, "signature"))) ||
      (strcmp(type, "thinking_delta") == 0 && (s = lc_accum_str(d, "thinking")))) {
    struct an_think *t = think_of(st, ix);
    if (!t || t->redacted)
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL,
                           "%s for block %d, which is not a thinking block", type, ix);
    if (lc_buf_puts(sig ? &t->signature : &t->thinking, s))
      return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "thinking over the size limit");
    return sig ? 0 : lc_accum_reasoning(a, s, strlen(s));
  }
  return 0; /* citations_delta, ...: nothing to keep */
}

static int on_event(void *ud, const struct lc_sse_event *ev) {
  struct lc_llm_stream *st = ud;
  struct lc_llm_accum *a = &st->acc;
  if (st->done)
    return 0;
  char err[96];
  cJSON *root = lc_json_parse(ev->data, ev->data_len, err, sizeof err);
  if (!root) {
    if (ev->event_len == 5 && memcmp(ev->event, "error", 5) == 0)
      return lc_accum_fail(a, LC_LLM_ESERVER, NULL,
                           "error event in stream: %.200s", ev->data);
    return lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "malformed stream event: %s",
                         err);
  }
  /* The data's own "type" is authoritative; the event: line repeats it. */
  const char *type = lc_accum_str(root, "type");
  int rc = 0;
  if (!cJSON_IsObject(root) || !type) {
    rc = lc_accum_fail(a, LC_LLM_EBADRESP, NULL, "stream event without a type");
  } else if (strcmp(type, "error") == 0 || is_error(root)) {
    rc = lc_accum_fail_json(a, root);
  } else if (strcmp(type, "message_start") == 0) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
    lc_accum_set_once(&a->id, lc_accum_str(m, "id"));
    lc_accum_set_once(&a->model, lc_accum_str(m, "model"));
    usage(a, cJSON_GetObjectItemCaseSensitive(m, "usage"));
  } else if (strcmp(type, "content_block_start") == 0) {
    rc = block_start(a, root);
  } else if (strcmp(type, "content_block_delta") == 0) {
    rc = block_delta(a, root);
  } else if (strcmp(type, "message_delta") == 0) {
    stop_reason(a, cJSON_GetObjectItemCaseSensitive(root, "delta"));
    usage(a, cJSON_GetObjectItemCaseSensitive(root, "usage"));
  } else if (strcmp(type, "message_stop") == 0) {
    st->done = 1;
  } /* ping, content_block_stop and future types carry nothing we keep */
  cJSON_Delete(root);
  return rc;
}

static struct lc_llm_stream *stream_new(void) {
  struct an_stream *s = lc_calloc(1, sizeof *s);
  if (!s)
    return NULL;
  lc_sse_init(&s->base.sse, LC_STREAM_MAX_EVENT);
  lc_ndjson_init(&s->base.nd, LC_STREAM_MAX_EVENT);
  lc_accum_init(&s->base.acc);
  return &s->base;
}

static void stream_free(struct lc_llm_stream *st) {
  if (!st)
    return;
  struct an_stream *s = (struct an_stream *)st;
  thinks_free(s);
  lc_sse_free(&st->sse);
  lc_ndjson_free(&st->nd);
  lc_accum_free(&st->acc);
  lc_free(s);
}

static int stream_feed(struct lc_llm_stream *st, const char *data, size_t len,
                       lc_llm_delta_fn cb, void *ud) {
  return lc_accum_sse_feed(st, data, len, cb, ud, on_event);
}

static int stream_end(struct lc_llm_stream *st, struct lc_llm_response *out) {
  int rc = lc_accum_sse_end(st, out, "message_stop");
  if (!rc && thinks_state((struct an_stream *)st, out)) rc = lc_llm_response_nomem(out);
  return rc;
}

const struct lc_llm_adapter lc_llm_anthropic = {
    .name = "anthropic",
    .default_base_url = "https://api.anthropic.com",
    .base_url_env = "ANTHROPIC_BASE_URL",
    .api_key_env = "ANTHROPIC_API_KEY",
    .build = build,
    .parse = parse,
    .parse_error = parse_error,
    .stream_new = stream_new,
    .stream_feed = stream_feed,
    .stream_end = stream_end,
    .stream_free = stream_free,
};
